//! A reconciler on the embedded default's local host (bare repos under a temp dir), or on another
//! Git host, with the deployment-credentials settings and clock a test chooses: the one set-up the
//! library-level flows share.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use sealwright::audit::EventLog;
use sealwright::clock::Clock;
use sealwright::git::{GitEngine, Identity, Remote};
use sealwright::host::{GitHost, LocalHost, RepoRef};
use sealwright::keys::chain::ChainRecipients;
use sealwright::keys::{AgeKey, FileKeyStore};
use sealwright::model::Cluster;
use sealwright::reconcile::{Access, FluxUrl, Reconciler, Settings};
use sealwright::render::Templates;
use sealwright::tokens::CredentialSettings;

/// `dir` holds `repos/` (the local host), `state.git`, `keys/` and `cache/`; a second call on the
/// same `dir` is a restart.
pub fn local(
    dir: &Path,
    credentials: CredentialSettings,
    clock: Arc<dyn Clock>,
    events: Arc<EventLog>,
) -> Reconciler {
    let host = Arc::new(LocalHost::new(dir.join("repos")));
    let flux_url = FluxUrl::Template("https://git.example.invalid/{owner}/{name}.git".into());
    on_host(
        dir,
        host,
        Access::Local,
        flux_url,
        credentials,
        clock,
        events,
    )
}

/// The same on any Git host (the fake GitHub, say): `dir` holds `state.git`, `keys/` and
/// `cache/`; sealwright pushes to the host's repos with `access` and writes `flux_url` into each
/// GitRepository.
pub fn on_host(
    dir: &Path,
    host: Arc<dyn GitHost>,
    access: Access,
    flux_url: FluxUrl,
    credentials: CredentialSettings,
    clock: Arc<dyn Clock>,
    events: Arc<EventLog>,
) -> Reconciler {
    let state_path = dir.join("state.git");
    if git2::Repository::open_bare(&state_path).is_err() {
        git2::Repository::init_bare(&state_path).unwrap();
    }
    let settings = Settings {
        cluster: Cluster {
            name: "test".into(),
            recipients: ChainRecipients {
                cluster: AgeKey::generate().recipient(),
                break_glass: None,
            },
            flux_namespace: "flux-system".into(),
            flux_source: "flux-system".into(),
            decryption_secret: "sops-age".into(),
        },
        templates: Arc::new(Templates::load(None).unwrap()),
        owner: "platform".into(),
        branch: "main".into(),
        flux_repo: RepoRef::parse("platform/flux").unwrap(),
        flux_url,
        access,
        state_remote: Arc::new(Remote::local(&state_path).unwrap()),
        state_repo: None,
        author: Identity::new("sealwright", "sealwright@localhost").unwrap(),
        max_backoff: Duration::from_secs(60),
        credentials,
        clock,
        boundary: sealwright::boundary::Boundary::default(),
        policy: sealwright::recipe::Policy::default(),
        entropy: sealwright::random::Entropy::seeded(19),
    };
    Reconciler::new(
        settings,
        GitEngine::new(
            dir.join("cache"),
            Identity::new("sealwright", "sealwright@localhost").unwrap(),
        ),
        host,
        Arc::new(FileKeyStore::new(dir.join("keys"))),
        events,
    )
}

/// The bare repository of `app`'s platform repo.
pub fn platform_repo(dir: &Path, app: &str) -> std::path::PathBuf {
    dir.join(format!("repos/platform/{app}-platform.git"))
}
