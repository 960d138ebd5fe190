//! The reconciler: registrations and secret writes in, encrypted commits out (DESIGN.md 4).
//!
//! It holds the desired state in memory — apps, their committed secrets and their status — and
//! owns three kinds of repository: sealwright's state repo (registrations, API keys), each app's
//! platform repo (its secrets) and the cluster's Flux repo (every app's folder). Each repository
//! has a [`Batcher`]: writes queue up while a commit is in flight, and the next commit takes them
//! all (group commit), so every caller of a round learns the same commit id. A write is answered
//! only after its commit is pushed; until then it lives in the queue, never in the desired state.
//!
//! What survives a restart is what the repositories hold: registrations come from the state repo,
//! secrets from the platform repos (decrypted with the app keys), and a full round afterwards
//! finds nothing to commit. One app's failure (its host, its repo) is recorded in its status and
//! retried with backoff by later rounds; it never stops another app's.

mod apps;
mod batch;
mod credentials;
mod deployments;
mod error;
mod external;
mod flux;
mod holders;
pub mod plan;
mod recipes;
mod review;
mod round;
mod secrets;
mod settings;
mod state;
pub mod store;
mod views;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use crate::audit::{Event, EventLog};
use crate::git::{GitEngine, Remote};
use crate::host::{DeployKeySpec, GitHost, RepoRef};
use crate::keys::{KeyError, KeyStore};
use crate::model::PlatformRepo;
use crate::render::{self, AppKeys};

pub use crate::spec::{AppSpec, Delivery, Invalid, SecretPatch, SecretSpec};
use batch::Batcher;
pub use credentials::{
    DeploymentCaller, RecoveredCredential, RefreshReport, CHUNK as CREDENTIAL_CHUNK,
};
pub use deployments::DeploymentView;
pub use error::ReconcileError;
pub use external::{DeployResult, ExternalOutcome, ExternalView, ExternalWrite};
pub use plan::OwnedChange;
pub use recipes::Rotation;
use round::{apply_ops, credential_key, round_message, Accepted, Extras, RoundMessage};
pub use settings::{Access, FluxUrl, Settings};
pub use store::{ApiKeyRecord, Source};
pub use views::{AppView, SecretView, StatusError, WriteAck};

/// Who asked, for events and commit messages (never a credential).
#[derive(Clone, Debug)]
pub struct Actor {
    pub name: String,
    pub request_id: Option<String>,
    /// The tenant whose API key made the request: its namespace patterns bind it. `None` for
    /// admins, the registrations directory and the reconciler itself.
    pub tenant_key: Option<String>,
}

impl Actor {
    pub fn new(name: &str) -> Actor {
        Actor {
            name: name.to_owned(),
            request_id: None,
            tenant_key: None,
        }
    }

    fn event(&self, action: &str) -> Event {
        let mut e = Event::new(&self.name, action);
        e.request_id = self.request_id.clone();
        e
    }
}

/// An app's platform repo as sealwright and Flux reach it.
struct RepoHandle {
    full_name: String,
    /// For host calls (pull requests).
    repo_ref: RepoRef,
    remote: Arc<Remote>,
    clone_url: String,
    flux: PlatformRepo,
}

/// What Flux says about an app's Kustomization, where controller mode reads it back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FluxStatus {
    /// `None`: not known (no Kustomization yet, still reconciling, unreadable).
    pub ready: Option<bool>,
    pub reason: String,
    pub message: String,
}

/// Files of sealwright's someone else changed: which, in which commits, by whom, and the
/// commit that restored them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftStatus {
    pub files: Vec<String>,
    pub commits: Vec<String>,
    pub authors: Vec<String>,
    pub restored_in: Option<String>,
    /// `restored`, `held` (waiting for an admin) or `adopted`.
    pub state: &'static str,
}

#[derive(Clone, Debug, Default)]
struct SecretState {
    commit: Option<String>,
    /// Flux applied a commit that contains `commit` (controller mode reads it back).
    applied: bool,
}

/// Everything about one app; behind the slot's mutex, never held across an await.
struct AppData {
    spec: AppSpec,
    source: Source,
    /// What the platform repo holds (committed), by secret name.
    secrets: BTreeMap<String, SecretSpec>,
    secret_state: BTreeMap<String, SecretState>,
    keys: Option<Arc<AppKeys>>,
    repo: Option<Arc<RepoHandle>>,
    /// The platform branch's tip when it last held exactly the render of `secrets`.
    clean_head: Option<String>,
    /// The Flux folder matches `spec` and `secrets`' placement.
    flux_synced: bool,
    last_commit: Option<String>,
    /// Pull-request delivery: the open pull request and the secrets it proposes.
    pending: Option<review::Pending>,
    /// `secrets` (and `pending`) were read from the repo.
    loaded: bool,
    /// Deployment id → token id of the credentials files the repo holds (at `clean_head`, or on
    /// the open pull request's branch).
    credentials: BTreeMap<String, String>,
    /// The fingerprint of the external secrets the repo holds (same places), when known.
    external: Option<[u8; 32]>,
    /// What the last round made of the external secrets.
    external_outcome: Option<ExternalOutcome>,
    errors: Vec<StatusError>,
    /// The last drift a round found, for the status.
    drift: Option<DriftStatus>,
    /// Flux's readiness of the app (controller mode).
    flux: Option<FluxStatus>,
    /// An admin's resolution of held drift, for the next platform round.
    drift_resolution: Option<crate::spec::DriftPolicy>,
    /// The next read of the committed secrets takes the branch tip, whatever the policy (drift
    /// being adopted).
    read_tip: bool,
    failures: u32,
    retry_at: Option<Instant>,
    deleted: bool,
}

impl AppData {
    /// The secrets as they will be: an open pull request's proposal, else the committed ones.
    fn desired(&self) -> &BTreeMap<String, SecretSpec> {
        self.pending
            .as_ref()
            .map(|p| &p.secrets)
            .unwrap_or(&self.secrets)
    }

    fn ready(&self) -> bool {
        // A pull-request app waiting on review has its proposal pushed: that counts as in line.
        self.repo.is_some()
            && (self.clean_head.is_some() || self.pending.is_some())
            && self.flux_synced
            && self.errors.is_empty()
    }
}

struct AppSlot {
    name: String,
    batch: Batcher<SecretOp>,
    data: Mutex<AppData>,
    /// One provisioning at a time (a registration and a first write may race to it).
    provisioning: tokio::sync::Mutex<()>,
}

impl AppSlot {
    fn new(spec: AppSpec, source: Source) -> Arc<AppSlot> {
        Arc::new(AppSlot {
            name: spec.name.clone(),
            batch: Batcher::new(),
            provisioning: tokio::sync::Mutex::new(()),
            data: Mutex::new(AppData {
                spec,
                source,
                secrets: BTreeMap::new(),
                secret_state: BTreeMap::new(),
                keys: None,
                repo: None,
                clean_head: None,
                flux_synced: false,
                last_commit: None,
                pending: None,
                loaded: false,
                credentials: BTreeMap::new(),
                external: None,
                external_outcome: None,
                errors: Vec::new(),
                drift: None,
                flux: None,
                drift_resolution: None,
                read_tip: false,
                failures: 0,
                retry_at: None,
                deleted: false,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, AppData> {
        self.data.lock().unwrap_or_else(|p| p.into_inner())
    }
}

enum SecretOpKind {
    /// The secret as written, and the values made for its generated keys.
    Put(SecretSpec, recipes::Fresh),
    Patch(String, SecretPatch, recipes::Fresh),
    /// New values for these generated keys (rule keys) of a secret.
    Rotate {
        name: String,
        keys: Vec<String>,
        keep_previous: bool,
        fresh: recipes::Fresh,
    },
    Delete(String),
    /// Make the repo match the desired state (start-up, periodic rounds, registration).
    Sync,
}

struct SecretOp {
    kind: SecretOpKind,
    /// What the round did to generated keys, for the audit log.
    notes: recipes::KeyNotes,
    actor: Actor,
    reply: oneshot::Sender<Result<WriteAck, ReconcileError>>,
}

/// A Flux repo round: these apps' folders, or every folder.
enum FluxScope {
    Apps(BTreeSet<String>),
    All,
}

struct FluxOp {
    scope: FluxScope,
    reply: oneshot::Sender<Result<Option<String>, ReconcileError>>,
}

struct StateOp {
    changes: Vec<(String, Option<Vec<u8>>)>,
    line: String,
    reply: oneshot::Sender<Result<Option<String>, ReconcileError>>,
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct Metrics {
    pub commits_platform: AtomicU64,
    pub commits_flux: AtomicU64,
    pub commits_state: AtomicU64,
    pub rounds: AtomicU64,
    pub round_failures: AtomicU64,
    pub writes_batched: AtomicU64,
    /// Rounds that found files of sealwright's changed behind its back.
    pub drift_detected: AtomicU64,
}

struct Inner {
    settings: Settings,
    engine: GitEngine,
    host: Arc<dyn GitHost>,
    keys: Arc<dyn KeyStore>,
    events: Arc<EventLog>,
    apps: Mutex<BTreeMap<String, Arc<AppSlot>>>,
    /// Which registered app holds which namespace (a leaf lock: nothing is locked under it).
    holders: Mutex<holders::Holders>,
    api_keys: Mutex<BTreeMap<String, ApiKeyRecord>>,
    flux: Arc<Batcher<FluxOp>>,
    flux_remote: Mutex<Option<Arc<Remote>>>,
    flux_clone_url: Mutex<Option<String>>,
    flux_head: Mutex<Option<String>>,
    state: Arc<Batcher<StateOp>>,
    metrics: Metrics,
    deployments: Mutex<BTreeMap<String, credentials::DeploymentData>>,
    token_keys: Mutex<credentials::TokenKeys>,
    external: Mutex<external::ExternalStore>,
    /// External secrets writes go one at a time (their clash check reads what the others write).
    external_writes: tokio::sync::Mutex<()>,
    /// Registrations and their updates go one at a time (namespace claims read each other).
    claims: tokio::sync::Mutex<()>,
    /// The Flux repo is set up (found or created on the host) once.
    flux_init: tokio::sync::Mutex<()>,
}

/// The reconciler. Cheap to clone; every clone is the same reconciler.
#[derive(Clone)]
pub struct Reconciler {
    inner: Arc<Inner>,
}

/// What a full round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoundReport {
    pub apps: usize,
    pub commits: usize,
    pub failed: Vec<String>,
}

fn now_text() -> String {
    crate::audit::now_rfc3339()
}

impl Reconciler {
    pub fn new(
        settings: Settings,
        engine: GitEngine,
        host: Arc<dyn GitHost>,
        keys: Arc<dyn KeyStore>,
        events: Arc<EventLog>,
    ) -> Reconciler {
        Reconciler {
            inner: Arc::new(Inner {
                settings,
                engine,
                host,
                keys,
                events,
                apps: Mutex::new(BTreeMap::new()),
                holders: Mutex::new(holders::Holders::default()),
                api_keys: Mutex::new(BTreeMap::new()),
                flux: Arc::new(Batcher::new()),
                flux_remote: Mutex::new(None),
                flux_clone_url: Mutex::new(None),
                flux_head: Mutex::new(None),
                state: Arc::new(Batcher::new()),
                metrics: Metrics::default(),
                deployments: Mutex::new(BTreeMap::new()),
                token_keys: Mutex::new(credentials::TokenKeys::default()),
                external: Mutex::new(external::ExternalStore::default()),
                external_writes: tokio::sync::Mutex::new(()),
                claims: tokio::sync::Mutex::new(()),
                flux_init: tokio::sync::Mutex::new(()),
            }),
        }
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn events(&self) -> &Arc<EventLog> {
        &self.inner.events
    }

    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// Loads the state repo and every app's committed secrets: what a restart starts from. Apps
    /// whose repo cannot be read now are loaded with their registration and retried by rounds.
    pub async fn load(&self) -> Result<(), ReconcileError> {
        let (head, files) = self
            .inner
            .engine
            .read(
                self.inner.settings.state_remote.clone(),
                &self.inner.settings.branch,
                |snap| Ok((snap.commit_id(), snap.files_under("")?)),
            )
            .await
            .map_err(|source| ReconcileError::Git {
                repo: "state repo".into(),
                source,
            })?;
        if head.is_none() {
            // An empty state repo is a first start only if the Flux repo agrees: apps in it mean
            // the state was lost, and starting over would drop every registration, API key,
            // deployment and external secret, and then the apps' Flux folders.
            let apps = self.flux_apps().await?;
            if !apps.is_empty() {
                return Err(ReconcileError::StateLost(format!(
                    "the state repo has no commit (it is missing or was emptied), but the Flux repo {} holds the folders of {} app(s) ({}): restore the state repo from a backup or clone (git clone --bare --mirror BACKUP <data-dir>/state.git) before sealwright starts; it does not start over empty",
                    self.inner.settings.flux_repo,
                    apps.len(),
                    apps.iter().take(5).cloned().collect::<Vec<_>>().join(", ")
                )));
            }
        }
        let records = store::decode(&files)?;
        *self
            .inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = records.api_keys;
        self.load_credentials(records.deployments, records.signing_keys)
            .await?;
        self.load_external(records.external);
        let mut tasks = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(4));
        for (name, (spec, source)) in records.apps {
            let slot = self.insert_slot(spec, source);
            let me = self.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                if let Err(e) = me.load_app(&slot).await {
                    tracing::warn!(app = %name, error = %e, "could not load the app's secrets; will retry");
                    me.record_failure(&slot, &e);
                }
            });
        }
        while tasks.join_next().await.is_some() {}
        Ok(())
    }

    fn insert_slot(&self, spec: AppSpec, source: Source) -> Arc<AppSlot> {
        self.holders().set(&spec.name, spec.namespaces());
        let slot = AppSlot::new(spec, source);
        self.apps().insert(slot.name.clone(), slot.clone());
        slot
    }

    fn apps(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Arc<AppSlot>>> {
        self.inner.apps.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn holders(&self) -> std::sync::MutexGuard<'_, holders::Holders> {
        self.inner.holders.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn slot(&self, app: &str) -> Result<Arc<AppSlot>, ReconcileError> {
        self.apps()
            .get(app)
            .cloned()
            .filter(|s| !s.lock().deleted)
            .ok_or_else(|| ReconcileError::not_found("app", app))
    }

    /// Provisions an app and reads what its platform repo holds (start-up).
    async fn load_app(&self, slot: &Arc<AppSlot>) -> Result<(), ReconcileError> {
        self.provision(slot).await?;
        let (keys, repo) = {
            let d = slot.lock();
            (d.keys.clone(), d.repo.clone())
        };
        let (Some(keys), Some(repo)) = (keys, repo) else {
            return Err(ReconcileError::Internal("provisioned without keys".into()));
        };
        self.load_committed(slot, &keys, &repo).await
    }

    /// Reads the app's committed secrets back from its platform repo (and, for pull-request
    /// delivery, its open pull request): once, before the app's first round. Until that read
    /// succeeds no round runs, because a round without it would render an empty secret set over
    /// the repo's files.
    async fn load_committed(
        &self,
        slot: &Arc<AppSlot>,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Result<(), ReconcileError> {
        if slot.lock().loaded {
            return Ok(());
        }
        // A repository with no commit holds nothing: one ref lookup instead of a fetch.
        let head = self
            .inner
            .engine
            .remote_head(repo.remote.clone(), &self.inner.settings.branch)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: repo.full_name.clone(),
                source,
            })?;
        // Commit delivery reads what sealwright last wrote, so that a change made while it was
        // not running is seen as drift by the first round (and dealt with by the policy)
        // rather than taken as the truth; `adopt` takes the repository as it is.
        let records_of = {
            let mut d = slot.lock();
            let tip = std::mem::take(&mut d.read_tip);
            (!tip
                && d.spec.delivery == Delivery::Commit
                && d.spec.drift_policy != crate::spec::DriftPolicy::Adopt)
                .then(|| self.inner.settings.author.email().to_owned())
        };
        let (head, baseline, secrets, found) = match head {
            None => (None, None, BTreeMap::new(), Vec::new()),
            Some(_) => match self.read_records(slot, keys, repo, None, records_of).await {
                Ok(x) => x,
                Err(e) => {
                    if matches!(e, ReconcileError::Lost { .. }) {
                        // The key is wrong: read it again next time (it may have been restored).
                        let mut d = slot.lock();
                        d.keys = None;
                        d.repo = None;
                    }
                    return Err(e);
                }
            },
        };
        self.adopt_credentials(slot, head.clone(), found);
        let pull_requests = slot.lock().spec.delivery == Delivery::PullRequest;
        if pull_requests {
            self.load_pending(slot, keys, repo).await?;
        }
        let changed = self.last_changes(repo, &secrets).await;
        let mut d = slot.lock();
        d.secret_state = secrets
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    SecretState {
                        // The commit that last changed it; the tip when history is too long to
                        // tell (it is at or after the real one).
                        commit: changed.get(n).cloned().or_else(|| head.clone()),
                        applied: false,
                    },
                )
            })
            .collect();
        d.secrets = secrets;
        d.last_commit = head;
        if baseline.is_some() {
            d.clean_head = baseline;
        }
        d.loaded = true;
        Ok(())
    }

    /// Makes sure the app has keys, a repo on the host (and a deploy key there when Flux uses
    /// SSH). Idempotent; cheap once done.
    async fn provision(&self, slot: &Arc<AppSlot>) -> Result<(), ReconcileError> {
        if slot.lock().repo.is_some() {
            return Ok(());
        }
        let _one_at_a_time = slot.provisioning.lock().await;
        if slot.lock().repo.is_some() {
            return Ok(());
        }
        let s = &self.inner.settings;
        let name = slot.name.clone();
        let ssh = matches!(s.flux_url, FluxUrl::HostSsh { .. });
        let full_name = slot.lock().spec.platform_repo(&s.owner);
        let host_err = |source| ReconcileError::Host {
            repo: full_name.clone(),
            source,
        };
        let repo_ref = RepoRef::parse(&full_name).map_err(host_err)?;
        let hosted = self
            .inner
            .host
            .ensure_repo(
                &repo_ref,
                &format!("Secrets of {name}, SOPS-encrypted; managed by sealwright"),
            )
            .await
            .map_err(host_err)?;
        let remote = s
            .access
            .remote(&hosted.push_url, &hosted.clone_url)
            .map_err(|source| ReconcileError::Git {
                repo: hosted.full_name.clone(),
                source,
            })?;
        let remote = Arc::new(remote);
        let keys = self
            .app_keys(&name, ssh, &hosted.full_name, &remote)
            .await?;
        if let Some(deploy) = keys.deploy.as_ref() {
            self.inner
                .host
                .ensure_deploy_key(
                    &repo_ref,
                    &DeployKeySpec {
                        title: "flux (sealwright, read-only)".into(),
                        public_key: deploy.public_openssh(),
                        read_only: true,
                    },
                )
                .await
                .map_err(host_err)?;
        }
        let flux = match &s.flux_url {
            FluxUrl::Template(t) => PlatformRepo {
                url: t
                    .replace("{owner}", repo_ref.owner())
                    .replace("{name}", repo_ref.name()),
                branch: s.branch.clone(),
                known_hosts: None,
            },
            FluxUrl::HostSsh { known_hosts } => PlatformRepo {
                url: settings::ssh_url(hosted.ssh_url.as_deref().unwrap_or(&hosted.push_url)),
                branch: s.branch.clone(),
                known_hosts: Some(known_hosts.clone()),
            },
        };
        let mut d = slot.lock();
        d.keys = Some(Arc::new(keys));
        d.repo = Some(Arc::new(RepoHandle {
            full_name: hosted.full_name,
            repo_ref,
            remote,
            clone_url: hosted.clone_url,
            flux,
        }));
        Ok(())
    }

    /// The app's keys. A key is made only for an app with no history; for one with history (its
    /// platform repo holds sealwright's files, or the Flux repo its folder) a missing key fails
    /// the app, and so does a platform repo with no commit: nothing starts over empty.
    async fn app_keys(
        &self,
        app: &str,
        ssh: bool,
        repo_name: &str,
        remote: &Arc<Remote>,
    ) -> Result<AppKeys, ReconcileError> {
        let branch = self.inner.settings.branch.clone();
        let git = |source| ReconcileError::Git {
            repo: repo_name.to_owned(),
            source,
        };
        let (head, holds_files) = self
            .inner
            .engine
            .read(remote.clone(), &branch, |snap| {
                // sealwright's first commit writes both; either one is its mark.
                let files = snap.read(".sops.yaml")?.is_some()
                    || snap.read("secrets/kustomization.yaml")?.is_some();
                Ok((snap.commit_id(), files))
            })
            .await
            .map_err(git)?;
        let flux_dir = format!("apps/{}", render::platform_repo_name(app));
        let in_flux = if head.is_none() || !holds_files {
            self.flux_holds(&flux_dir).await?
        } else {
            false
        };
        let store = self.inner.keys.clone();
        let location = store.location(app);
        if head.is_none() && in_flux {
            return Err(ReconcileError::Lost {
                app: app.to_owned(),
                message: format!(
                    "its platform repo {repo_name} has no commit (it is missing or was emptied), but the Flux repo still holds {flux_dir}/: restore the repository from a backup or clone (replacing the empty one) before sealwright goes on; nothing is recreated empty over recorded history"
                ),
            });
        }
        let history = holds_files || in_flux;
        let named = self.slot(app).is_ok_and(|s| s.lock().spec.repo.is_some());
        if named && head.is_some() && !history {
            // A repository a registration named holds someone else's commits: sealwright does
            // not move in on them.
            return Err(ReconcileError::Conflict(format!(
                "repo: {repo_name} already holds commits that are not sealwright's; name an empty repository (or leave repo out)"
            )));
        }
        let for_keys = app.to_owned();
        let keys = tokio::task::spawn_blocking(move || -> Result<Option<AppKeys>, KeyError> {
            let age = match store.get(&for_keys)? {
                Some(k) => k,
                None if history => return Ok(None),
                None => store.get_or_create(&for_keys)?,
            };
            let deploy = if ssh {
                Some(store.deploy_key(&for_keys)?)
            } else {
                None
            };
            Ok(Some(AppKeys { age, deploy }))
        })
        .await
        .map_err(|e| ReconcileError::Internal(e.to_string()))?
        .map_err(|source| ReconcileError::Keys {
            app: app.to_owned(),
            source,
        })?;
        keys.ok_or_else(|| ReconcileError::Lost {
            app: app.to_owned(),
            message: format!(
                "its key {location} is missing, but {} holds what it encrypted; no new key is made over it. Restore it from the key chain: sealwright keys recover --app {app} --cluster-identity FILE --config FILE",
                if holds_files { repo_name.to_owned() } else { format!("the Flux repo ({flux_dir}/)") }
            ),
        })
    }

    /// Which commit last changed each secret's files, read from the platform branch's history
    /// (a bounded walk; a read that fails tells nothing, and the tip stands in).
    async fn last_changes(
        &self,
        repo: &Arc<RepoHandle>,
        secrets: &BTreeMap<String, SecretSpec>,
    ) -> BTreeMap<String, String> {
        if secrets.is_empty() {
            return BTreeMap::new();
        }
        let groups: Vec<(String, Vec<String>)> = secrets
            .values()
            .map(|s| {
                let paths = s
                    .target_namespaces
                    .iter()
                    .map(|ns| render::secret_path(ns, &s.target_name))
                    .collect();
                (s.name.clone(), paths)
            })
            .collect();
        self.inner
            .engine
            .read(
                repo.remote.clone(),
                &self.inner.settings.branch,
                move |snap| Ok(snap.last_changes(&groups, 1_000)),
            )
            .await
            .unwrap_or_default()
    }

    fn record_failure(&self, slot: &AppSlot, e: &ReconcileError) {
        self.inner
            .metrics
            .round_failures
            .fetch_add(1, Ordering::Relaxed);
        let mut d = slot.lock();
        d.failures += 1;
        let backoff = Duration::from_secs(1)
            .saturating_mul(1 << d.failures.min(12))
            .min(self.inner.settings.max_backoff);
        d.retry_at = Some(Instant::now() + backoff);
        d.errors.push(StatusError {
            time: now_text(),
            message: e.to_string(),
        });
        // The last few are enough to diagnose; the rest is in the logs.
        if d.errors.len() > 5 {
            let extra = d.errors.len() - 5;
            d.errors.drain(..extra);
        }
    }

    fn clear_failure(&self, slot: &AppSlot) {
        let mut d = slot.lock();
        d.failures = 0;
        d.retry_at = None;
        d.errors.clear();
    }

    /// Brings one app fully in line: provisioned, platform repo, Flux folder.
    async fn reconcile_app(
        &self,
        slot: &Arc<AppSlot>,
        with_flux: bool,
    ) -> Result<(), ReconcileError> {
        let result = async {
            self.provision(slot).await?;
            self.submit(slot, &Actor::new("reconciler"), SecretOpKind::Sync)
                .await?;
            if with_flux && !slot.lock().flux_synced {
                self.flux_commit(FluxScope::Apps(BTreeSet::from([slot.name.clone()])))
                    .await?;
                slot.lock().flux_synced = true;
            }
            Ok(())
        }
        .await;
        match &result {
            Ok(()) => self.clear_failure(slot),
            Err(e) => {
                // Write failures inside the round recorded themselves already.
                if !matches!(
                    e,
                    ReconcileError::Git { .. } | ReconcileError::NotReady { .. }
                ) {
                    self.record_failure(slot, e);
                }
            }
        }
        result
    }

    /// A full round: every app (those in backoff only when `force`), then the whole Flux repo.
    /// An app's failure is recorded and does not stop the others.
    pub async fn reconcile_all(&self, force: bool) -> RoundReport {
        self.inner.metrics.rounds.fetch_add(1, Ordering::Relaxed);
        let before = self.commit_count();
        let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
        let now = Instant::now();
        let mut tasks = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        for slot in &slots {
            let due = {
                let d = slot.lock();
                !d.deleted && (force || d.retry_at.is_none_or(|t| t <= now))
            };
            if !due {
                continue;
            }
            let me = self.clone();
            let slot = slot.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let r = me.reconcile_app(&slot, false).await;
                (slot.name.clone(), r)
            });
        }
        let mut failed = Vec::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((name, Err(e))) = done {
                tracing::warn!(app = %name, error = %e, "app round failed");
                failed.push(name);
            }
        }
        match self.flux_commit(FluxScope::All).await {
            Ok(_) => {
                for slot in &slots {
                    let mut d = slot.lock();
                    if d.repo.is_some() && d.loaded {
                        d.flux_synced = true;
                    }
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "Flux repo round failed");
                failed.push("(flux repo)".into());
            }
        }
        failed.sort();
        RoundReport {
            apps: slots.len(),
            commits: (self.commit_count() - before) as usize,
            failed,
        }
    }

    /// Retries the apps whose backoff is over (the server calls this every few seconds).
    pub async fn retry_failed(&self) {
        let now = Instant::now();
        let due: Vec<Arc<AppSlot>> = self
            .apps()
            .values()
            .filter(|s| {
                let d = s.lock();
                !d.deleted && !d.errors.is_empty() && d.retry_at.is_none_or(|t| t <= now)
            })
            .cloned()
            .collect();
        for slot in due {
            if let Err(e) = self.reconcile_app(&slot, true).await {
                tracing::info!(app = %slot.name, error = %e, "retry failed");
            }
        }
    }

    /// Checks that the host answers and the Flux repo can be reached (for `doctor`).
    pub async fn check_host(&self) -> Result<String, ReconcileError> {
        let remote = self.flux_remote().await?;
        let s = &self.inner.settings;
        let head = self
            .inner
            .engine
            .remote_head(remote, &s.branch)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: s.flux_repo.to_string(),
                source,
            })?;
        Ok(format!(
            "{} host, Flux repo {} at {}",
            self.inner.host.kind(),
            s.flux_repo,
            head.as_deref().unwrap_or("(no commit yet)")
        ))
    }

    fn commit_count(&self) -> u64 {
        let m = &self.inner.metrics;
        m.commits_platform.load(Ordering::Relaxed)
            + m.commits_flux.load(Ordering::Relaxed)
            + m.commits_state.load(Ordering::Relaxed)
    }

    /// One platform round for each of these apps (concurrently, a few at a time), and how each
    /// went.
    async fn sync_apps(
        &self,
        actor: &Actor,
        apps: BTreeSet<String>,
    ) -> BTreeMap<String, Result<WriteAck, String>> {
        let mut tasks = tokio::task::JoinSet::new();
        let limit = Arc::new(tokio::sync::Semaphore::new(8));
        for app in apps {
            let Ok(slot) = self.slot(&app) else {
                continue;
            };
            let me = self.clone();
            let actor = actor.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _permit = limit.acquire_owned().await;
                let r = me.submit(&slot, &actor, SecretOpKind::Sync).await;
                if let Err(e) = &r {
                    tracing::warn!(app = %slot.name, error = %e, "app round failed; will retry");
                }
                (slot.name.clone(), r.map_err(|e| e.to_string()))
            });
        }
        let mut out = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            if let Ok((app, r)) = done {
                out.insert(app, r);
            }
        }
        out
    }
}
