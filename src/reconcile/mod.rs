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

mod batch;
mod credentials;
mod external;
mod holders;
pub mod plan;
mod review;
pub mod store;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use secrecy::SecretString;
use serde_json::{json, Value as Json};
use tokio::sync::oneshot;

use crate::audit::{Event, EventLog};
use crate::git::{
    ChangeSet, CommitMessage, Credentials, GitEngine, GitError, Identity, Proposal, Remote,
    Snapshot, Target,
};
use crate::host::{DeployKeySpec, GitHost, HostError, RepoRef};
use crate::keys::{KeyError, KeyStore};
use crate::model::{Cluster, PlatformRepo};
use crate::render::{self, AppKeys, RenderError, Templates, Tree};
use sops::scalar::DateTime;

use crate::spec;
pub use crate::spec::{AppSpec, Delivery, Invalid, SecretPatch, SecretSpec};
use batch::Batcher;
pub use credentials::{
    DeploymentCaller, DeploymentView, RecoveredCredential, RefreshReport, CHUNK as CREDENTIAL_CHUNK,
};
pub use external::{DeployResult, ExternalOutcome, ExternalView, ExternalWrite};
pub use plan::OwnedChange;
pub use store::{ApiKeyRecord, Source};

/// How Flux reaches the platform repos (the URL in each GitRepository).
#[derive(Clone, Debug)]
pub enum FluxUrl {
    /// A URL with `{owner}` and `{name}` filled in: the embedded default's repos live on this
    /// machine, and this says where a cluster would find them.
    Template(String),
    /// The host's SSH URL (as `ssh://`), reached with the app's read-only deploy key and checked
    /// against these known_hosts lines.
    HostSsh { known_hosts: String },
}

/// How sealwright itself pushes to the host's repositories.
#[derive(Clone)]
pub enum Access {
    /// Bare repositories on this machine.
    Local,
    /// HTTPS with a token (GitHub).
    Token(SecretString),
}

/// Where a repository sealwright writes lives: on the host, or a fixed remote.
pub struct Settings {
    pub cluster: Cluster,
    pub templates: Arc<Templates>,
    /// Platform repos are `<owner>/<app>-platform` on the host.
    pub owner: String,
    /// The branch Flux follows, in the platform repos and the Flux repo.
    pub branch: String,
    pub flux_repo: RepoRef,
    pub flux_url: FluxUrl,
    pub access: Access,
    /// The state repo (registrations, API keys).
    pub state_remote: Arc<Remote>,
    /// Commits are authored by this identity (the actor goes in the message).
    pub author: Identity,
    /// The longest wait before a failed app is tried again.
    pub max_backoff: Duration,
    /// Deployment credentials: on or off, timings and algorithms per cluster.
    pub credentials: crate::tokens::CredentialSettings,
    /// Token times are read from this clock (a fake one in tests).
    pub clock: Arc<dyn crate::clock::Clock>,
    /// The tenant boundary (reserved namespaces, tenants' patterns, Secret types) and limits.
    pub boundary: crate::boundary::Boundary,
}

#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("{what} {name:?} not found")]
    NotFound { what: &'static str, name: String },
    #[error("{0}")]
    Conflict(String),
    #[error(transparent)]
    Invalid(#[from] Invalid),
    /// The caller may not do this (a tenant key outside its tenant's namespaces).
    #[error("{field}: {reason}")]
    Forbidden { field: String, reason: String },
    /// A namespace another app holds. The message names neither that app nor its tenant: only
    /// an admin is shown them ([`ReconcileError::owner`]).
    #[error("{field}: namespace {namespace:?} is taken by another app")]
    Taken {
        field: String,
        namespace: String,
        owner_app: String,
        owner_tenant: String,
    },
    #[error("{repo}: {source}")]
    Git { repo: String, source: GitError },
    #[error("{repo}: {source}")]
    Host { repo: String, source: HostError },
    #[error("app {app}: {source}")]
    Keys { app: String, source: KeyError },
    #[error("app {app}: {source}")]
    Render { app: String, source: RenderError },
    #[error("state repo: {0}")]
    State(String),
    /// The state repo is empty while the Flux repo shows apps: sealwright refuses to start.
    #[error("{0}")]
    StateLost(String),
    /// A failed round, told to each of the callers that shared it (errors do not clone).
    #[error("{repo}: {message}")]
    Delivery { repo: String, message: String },
    #[error("app {app} is not provisioned yet: {reason}")]
    NotReady { app: String, reason: String },
    /// Something the app's recorded history needs is gone (its key, its repository): the app
    /// stops rather than start over empty. The message says what is missing and how to restore it.
    #[error("app {app}: {message}")]
    Lost { app: String, message: String },
    /// Something sealwright needs is not available now (the operator key).
    #[error("{0}")]
    Unavailable(String),
    #[error("internal: {0}")]
    Internal(String),
}

impl ReconcileError {
    /// The error again, for one more of the callers that shared a failed round.
    fn shared(&self, repo: &str) -> ReconcileError {
        let message = match self {
            ReconcileError::Git { source, .. } => source.to_string(),
            ReconcileError::Host { source, .. } => source.to_string(),
            other => other.to_string(),
        };
        ReconcileError::Delivery {
            repo: repo.to_owned(),
            message,
        }
    }

    /// The app and tenant that hold a taken namespace (for admins only).
    pub fn owner(&self) -> Option<(&str, &str)> {
        match self {
            ReconcileError::Taken {
                owner_app,
                owner_tenant,
                ..
            } => Some((owner_app, owner_tenant)),
            _ => None,
        }
    }

    fn not_found(what: &'static str, name: &str) -> Self {
        ReconcileError::NotFound {
            what,
            name: name.to_owned(),
        }
    }
}

/// What a write learns: the commit it is in, or the pull request that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAck {
    pub committed: bool,
    pub commit: Option<String>,
    pub pull_request: Option<String>,
}

impl WriteAck {
    /// The write is in `head` on the branch Flux follows (`None`: the repo has no commit yet).
    fn at(head: Option<String>) -> WriteAck {
        WriteAck {
            committed: head.is_some(),
            commit: head,
            pull_request: None,
        }
    }

    /// The write is in this open pull request.
    fn proposed(url: &str) -> WriteAck {
        WriteAck {
            committed: false,
            commit: None,
            pull_request: Some(url.to_owned()),
        }
    }

    pub fn to_json(&self) -> Json {
        let mut j = json!({"committed": self.committed});
        if let Some(c) = &self.commit {
            j["commit"] = json!(c);
        }
        if let Some(p) = &self.pull_request {
            j["pullRequest"] = json!(p);
        }
        j
    }
}

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

/// A recorded failure, value-free.
#[derive(Clone, Debug)]
pub struct StatusError {
    pub time: String,
    pub message: String,
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

#[derive(Clone, Debug, Default)]
struct SecretState {
    commit: Option<String>,
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
    Put(SecretSpec),
    Patch(String, SecretPatch),
    Delete(String),
    /// Make the repo match the desired state (start-up, periodic rounds, registration).
    Sync,
}

struct SecretOp {
    kind: SecretOpKind,
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

/// A view of an app for the API: registration and status, never key material.
#[derive(Clone, Debug)]
pub struct AppView {
    pub spec: AppSpec,
    pub source: Source,
    pub ready: bool,
    pub recipient: Option<String>,
    pub repo: String,
    pub platform_repo: Option<String>,
    pub flux_repo: Option<String>,
    pub last_commit: Option<String>,
    pub errors: Vec<StatusError>,
    pub secrets: usize,
    /// The open pull request waiting for review (pull-request delivery).
    pub pull_request: Option<String>,
}

impl AppView {
    /// `ready`, `failed` (errors recorded, retrying) or `provisioning`.
    pub fn status(&self) -> &'static str {
        if self.ready {
            "ready"
        } else if self.errors.is_empty() {
            "provisioning"
        } else {
            "failed"
        }
    }

    /// [`AppView::to_json`] as `admin` or a tenant may see it: a tenant is not shown where the
    /// server keeps its repositories on its own disk (a local path is no URL of theirs).
    pub fn to_json_for(&self, admin: bool) -> Json {
        let mut j = self.to_json();
        if !admin {
            for k in ["platformRepo", "fluxRepo"] {
                if j[k].as_str().is_some_and(|u| !u.contains("://")) {
                    j[k] = Json::Null;
                }
            }
        }
        j
    }

    pub fn to_json(&self) -> Json {
        let mut j = self.spec.to_json();
        j["status"] = json!(self.status());
        j["ready"] = json!(self.ready);
        j["source"] = json!(self.source.as_str());
        j["recipient"] = json!(self.recipient);
        j["repo"] = json!(self.repo);
        j["platformRepo"] = json!(self.platform_repo);
        j["fluxRepo"] = json!(self.flux_repo);
        j["lastCommit"] = json!(self.last_commit);
        j["secrets"] = json!(self.secrets);
        j["pullRequest"] = json!(self.pull_request);
        j["errors"] = Json::Array(
            self.errors
                .iter()
                .map(|e| json!({"time": e.time, "message": e.message}))
                .collect(),
        );
        j
    }
}

/// A view of a managed secret: names and places, values only when revealed.
#[derive(Clone, Debug)]
pub struct SecretView {
    pub name: String,
    pub target_name: String,
    pub namespaces: Vec<String>,
    pub type_: String,
    pub keys: Vec<String>,
    /// The commit that last changed it on the branch Flux follows.
    pub commit: Option<String>,
    /// The open pull request that changes it, and how: `create`, `update` or `delete`.
    pub pull_request: Option<String>,
    pub pending: Option<&'static str>,
}

impl SecretView {
    pub fn to_json(&self) -> Json {
        json!({
            "name": self.name,
            "targetName": self.target_name,
            "namespaces": self.namespaces,
            "type": self.type_,
            "keys": self.keys,
            "committed": self.commit.is_some() && self.pending.is_none(),
            "commit": self.commit,
            "pullRequest": self.pull_request,
            "pendingChange": self.pending,
            "files": self.namespaces.iter().map(|ns| render::secret_path(ns, &self.target_name)).collect::<Vec<_>>(),
        })
    }
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
        let (head, secrets, found) = match head {
            None => (None, BTreeMap::new(), Vec::new()),
            Some(_) => match self.read_secrets(slot, keys, repo, None).await {
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
        let mut d = slot.lock();
        d.secret_state = secrets
            .keys()
            .map(|n| {
                (
                    n.clone(),
                    SecretState {
                        commit: head.clone(),
                    },
                )
            })
            .collect();
        d.secrets = secrets;
        d.last_commit = head;
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
        let repo_name = render::platform_repo_name(&name);
        let host_err = |source| ReconcileError::Host {
            repo: format!("{}/{repo_name}", s.owner),
            source,
        };
        let repo_ref = RepoRef::new(&s.owner, &repo_name).map_err(host_err)?;
        let hosted = self
            .inner
            .host
            .ensure_repo(
                &repo_ref,
                &format!("Secrets of {name}, SOPS-encrypted; managed by sealwright"),
            )
            .await
            .map_err(host_err)?;
        let remote =
            remote_for(&s.access, &hosted.push_url, &hosted.clone_url).map_err(|source| {
                ReconcileError::Git {
                    repo: hosted.full_name.clone(),
                    source,
                }
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
                url: t.replace("{owner}", &s.owner).replace("{name}", &repo_name),
                branch: s.branch.clone(),
                known_hosts: None,
            },
            FluxUrl::HostSsh { known_hosts } => PlatformRepo {
                url: ssh_url(hosted.ssh_url.as_deref().unwrap_or(&hosted.push_url)),
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

    /// Reads the branch of the Flux repo that Flux follows.
    async fn flux_read<T, F>(&self, read: F) -> Result<T, ReconcileError>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<T, GitError> + Send + 'static,
        T: Send + 'static,
    {
        let remote = self.flux_remote().await?;
        self.inner
            .engine
            .read(remote, &self.inner.settings.branch, read)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: self.inner.settings.flux_repo.to_string(),
                source,
            })
    }

    /// The apps whose folder (`apps/<app>-platform/`) the Flux repo holds.
    pub async fn flux_apps(&self) -> Result<Vec<String>, ReconcileError> {
        self.flux_read(|snap| {
            Ok(snap
                .folders_in("apps")?
                .into_iter()
                .filter_map(|f| f.strip_suffix("-platform").map(str::to_owned))
                .collect())
        })
        .await
    }

    /// One file of the Flux repo as the branch holds it (`None` when it is not there).
    pub async fn flux_file(&self, path: &str) -> Result<Option<Vec<u8>>, ReconcileError> {
        let path = path.to_owned();
        self.flux_read(move |snap| snap.read(&path)).await
    }

    /// Whether the Flux repo holds files in `dir`.
    async fn flux_holds(&self, dir: &str) -> Result<bool, ReconcileError> {
        let dir = dir.to_owned();
        self.flux_read(move |snap| Ok(!snap.files_in(&dir)?.is_empty()))
            .await
    }

    /// The Flux repo's remote, once it is set up.
    fn flux_remote_known(&self) -> Option<Arc<Remote>> {
        self.inner
            .flux_remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn flux_remote(&self) -> Result<Arc<Remote>, ReconcileError> {
        if let Some(r) = self.flux_remote_known() {
            return Ok(r);
        }
        // One set-up at a time: apps provisioned together all ask for it, and two `git init`s of
        // one repository race for its HEAD.lock.
        let _one = self.inner.flux_init.lock().await;
        if let Some(r) = self.flux_remote_known() {
            return Ok(r);
        }
        let s = &self.inner.settings;
        let host_err = |source| ReconcileError::Host {
            repo: s.flux_repo.to_string(),
            source,
        };
        let hosted = self
            .inner
            .host
            .ensure_repo(&s.flux_repo, "Flux repo; apps/ managed by sealwright")
            .await
            .map_err(host_err)?;
        let remote = Arc::new(
            remote_for(&s.access, &hosted.push_url, &hosted.clone_url).map_err(|source| {
                ReconcileError::Git {
                    repo: hosted.full_name.clone(),
                    source,
                }
            })?,
        );
        *self
            .inner
            .flux_remote
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(remote.clone());
        *self
            .inner
            .flux_clone_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hosted.clone_url);
        Ok(remote)
    }

    // ----- registrations -----

    /// Registers an app: stored in the state repo first (that is the acknowledgement), then
    /// provisioned — keys, repo, deploy key, `.sops.yaml`, Flux folder. A provisioning failure is
    /// in the returned status and retried; the registration stays.
    pub async fn register_app(
        &self,
        actor: &Actor,
        spec: AppSpec,
        source: Source,
    ) -> Result<AppView, ReconcileError> {
        if spec.delivery == Delivery::PullRequest && self.inner.host.kind() == "local" {
            // Refused rather than silently committed straight to the branch Flux follows.
            return Err(spec::invalid(
                "delivery",
                "pull-request needs a Git host with pull requests (GitHub); the local host takes commits only",
            )
            .into());
        }
        // Claims are decided one at a time: two registrations never take one namespace.
        let claims = self.inner.claims.lock().await;
        self.check_boundary(actor, &spec)?;
        let slot = {
            let mut apps = self.apps();
            if let Some(existing) = apps.get(&spec.name) {
                let d = existing.lock();
                if !d.deleted {
                    return Err(ReconcileError::Conflict(format!(
                        "app {:?} is already registered",
                        spec.name
                    )));
                }
            }
            let slot = AppSlot::new(spec.clone(), source);
            apps.insert(spec.name.clone(), slot.clone());
            self.holders().set(&spec.name, spec.namespaces());
            slot
        };
        let stored = self
            .state_commit(
                vec![(
                    store::app_path(&spec.name),
                    Some(store::encode_app(&spec, source)),
                )],
                format!(
                    "register app {} (tenant {}) by {}",
                    spec.name, spec.tenant, actor.name
                ),
            )
            .await;
        if let Err(e) = stored {
            self.apps().remove(&spec.name);
            self.holders().remove(&spec.name);
            return Err(e);
        }
        drop(claims);
        self.announce_and_reconcile(actor, "app.created", &slot, &spec)
            .await
    }

    /// Records the registration event, then brings the app in line now. A failure is in the
    /// app's status and retried later: the registration itself is stored already.
    async fn announce_and_reconcile(
        &self,
        actor: &Actor,
        action: &str,
        slot: &Arc<AppSlot>,
        spec: &AppSpec,
    ) -> Result<AppView, ReconcileError> {
        self.inner.events.record(app_event(actor, action, spec));
        if let Err(e) = self.reconcile_app(slot, true).await {
            tracing::warn!(app = %spec.name, error = %e, "reconcile failed; will retry");
        }
        self.app(&spec.name)
    }

    /// Changes a registration (a configuration-directory edit): a namespace that is no longer the
    /// app's loses its files in the next commit.
    pub async fn update_app(
        &self,
        actor: &Actor,
        spec: AppSpec,
    ) -> Result<AppView, ReconcileError> {
        let slot = self.slot(&spec.name)?;
        let (old, source) = {
            let d = slot.lock();
            (d.spec.clone(), d.source)
        };
        if old == spec {
            return self.app(&spec.name);
        }
        if let Some(url) = slot.lock().pending.as_ref().map(|p| p.url.clone()) {
            if spec.delivery != Delivery::PullRequest {
                return Err(ReconcileError::Conflict(format!(
                    "app {:?} has an open pull request ({url}); merge or close it before changing delivery",
                    spec.name
                )));
            }
        }
        if spec.delivery == Delivery::PullRequest && self.inner.host.kind() == "local" {
            return Err(spec::invalid(
                "delivery",
                "pull-request needs a Git host with pull requests (GitHub); the local host takes commits only",
            )
            .into());
        }
        let claims = self.inner.claims.lock().await;
        self.check_boundary(actor, &spec)?;
        self.state_commit(
            vec![(
                store::app_path(&spec.name),
                Some(store::encode_app(&spec, source)),
            )],
            format!("update app {} by {}", spec.name, actor.name),
        )
        .await?;
        {
            self.holders().set(&spec.name, spec.namespaces());
            let mut d = slot.lock();
            d.spec = spec.clone();
            d.clean_head = None;
            d.flux_synced = false;
            // The open pull request's branch is re-rendered too (its files may need to move).
            if let Some(p) = d.pending.as_mut() {
                p.head.clear();
            }
        }
        drop(claims);
        self.announce_and_reconcile(actor, "app.updated", &slot, &spec)
            .await
    }

    /// Unregisters an app: its Flux folder goes (Flux prunes what it applied), its platform repo
    /// stays unless `archive`. Its keys stay in the key store.
    pub async fn delete_app(
        &self,
        actor: &Actor,
        app: &str,
        archive: bool,
    ) -> Result<Option<String>, ReconcileError> {
        // One at a time with registrations: a namespace is free once its app is gone.
        let claims = self.inner.claims.lock().await;
        let slot = self.slot(app)?;
        let tenant = {
            let mut d = slot.lock();
            if d.deleted {
                return Err(ReconcileError::not_found("app", app));
            }
            d.deleted = true;
            d.spec.tenant.clone()
        };
        self.holders().remove(app);
        // The app's external-secrets overrides go with it: a later app of that name starts clean.
        // (No override write may land between listing them and forgetting them.)
        let writes = self.external_writes().await;
        let mut changes = vec![(store::app_path(app), None)];
        changes.extend(self.app_external_paths(app).into_iter().map(|p| (p, None)));
        let stored = self
            .state_commit(changes, format!("unregister app {app} by {}", actor.name))
            .await;
        if let Err(e) = stored {
            let mut d = slot.lock();
            d.deleted = false;
            self.holders().set(app, d.spec.namespaces());
            return Err(e);
        }
        self.apps().remove(app);
        self.forget_app_external(app);
        drop(writes);
        drop(claims);
        let flux = self
            .flux_commit(FluxScope::Apps(BTreeSet::from([app.to_owned()])))
            .await;
        if archive {
            let s = &self.inner.settings;
            let repo_ref =
                RepoRef::new(&s.owner, &render::platform_repo_name(app)).map_err(|source| {
                    ReconcileError::Host {
                        repo: app.to_owned(),
                        source,
                    }
                })?;
            self.inner
                .host
                .archive_repo(&repo_ref)
                .await
                .map_err(|source| ReconcileError::Host {
                    repo: repo_ref.to_string(),
                    source,
                })?;
        }
        let mut ev = actor.event("app.deleted");
        ev.app = Some(app.to_owned());
        ev.tenant = Some(tenant);
        ev.detail = archive.then(|| "platform repo archived".to_owned());
        let commit = flux?;
        ev.commit = commit.clone();
        self.inner.events.record(ev);
        Ok(commit)
    }

    /// The tenant boundary for a registration: no reserved namespace, none outside the patterns
    /// of the tenant whose key asks, and none that another app holds.
    fn check_boundary(&self, actor: &Actor, spec: &AppSpec) -> Result<(), ReconcileError> {
        let boundary = &self.inner.settings.boundary;
        for (i, env) in spec.environments.iter().enumerate() {
            let field = format!("environments[{i}].namespace");
            match boundary.check_namespace(&spec.tenant, &env.namespace, actor.tenant_key.is_some())
            {
                Ok(()) => {}
                Err(r @ crate::boundary::Refusal::Reserved) => {
                    return Err(spec::invalid(field, r.reason()).into())
                }
                Err(r) => {
                    return Err(ReconcileError::Forbidden {
                        field,
                        reason: r.reason(),
                    })
                }
            }
        }
        let taken = spec.environments.iter().enumerate().find_map(|(i, env)| {
            let holders = self.holders();
            let owner = holders.other(&env.namespace, &spec.name)?.to_owned();
            Some((i, env.namespace.clone(), owner))
        });
        if let Some((i, namespace, owner_app)) = taken {
            let owner_tenant = self
                .slot(&owner_app)
                .map(|s| s.lock().spec.tenant.clone())
                .unwrap_or_default();
            return Err(ReconcileError::Taken {
                field: format!("environments[{i}].namespace"),
                namespace,
                owner_app,
                owner_tenant,
            });
        }
        Ok(())
    }

    /// Why a stored registration breaks the boundary (one stored before it was enforced): a
    /// reserved namespace, or one another app also holds. Such an app is failed, never written.
    fn boundary_breach(&self, app: &str, spec: &AppSpec) -> Option<String> {
        let boundary = &self.inner.settings.boundary;
        if let Some(ns) = spec.namespaces().find(|n| boundary.is_reserved(n)) {
            return Some(format!(
                "namespace {ns:?} is reserved: no app may target it; change the registration"
            ));
        }
        let holders = self.holders();
        spec.namespaces().find_map(|ns| {
            let other = holders.other(ns, app)?;
            Some(format!(
                "namespace {ns:?} is also held by app {other:?}; a namespace belongs to one app: change one registration"
            ))
        })
    }

    /// Apps whose registration came from the configuration directory.
    pub fn config_apps(&self) -> BTreeMap<String, AppSpec> {
        self.apps()
            .values()
            .filter_map(|s| {
                let d = s.lock();
                (d.source == Source::Config && !d.deleted).then(|| (s.name.clone(), d.spec.clone()))
            })
            .collect()
    }

    // ----- views -----

    pub fn app(&self, app: &str) -> Result<AppView, ReconcileError> {
        let slot = self.slot(app)?;
        Ok(self.view(&slot))
    }

    pub fn list_apps(&self) -> Vec<AppView> {
        let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
        slots
            .iter()
            .filter(|s| !s.lock().deleted)
            .map(|s| self.view(s))
            .collect()
    }

    fn view(&self, slot: &AppSlot) -> AppView {
        let d = slot.lock();
        let s = &self.inner.settings;
        AppView {
            spec: d.spec.clone(),
            source: d.source,
            ready: d.ready(),
            recipient: d.keys.as_ref().map(|k| k.age.recipient()),
            repo: format!("{}/{}", s.owner, render::platform_repo_name(&slot.name)),
            platform_repo: d.repo.as_ref().map(|r| r.clone_url.clone()),
            flux_repo: self
                .inner
                .flux_clone_url
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            last_commit: d.last_commit.clone(),
            errors: d.errors.clone(),
            secrets: d.secrets.len(),
            pull_request: d.pending.as_ref().map(|p| p.url.clone()),
        }
    }

    /// The app's tenant (for scoping API keys).
    pub fn tenant_of(&self, app: &str) -> Option<String> {
        self.slot(app).ok().map(|s| s.lock().spec.tenant.clone())
    }

    pub fn list_secrets(&self, app: &str) -> Result<Vec<SecretView>, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        Ok(secret_views(&d).into_values().collect())
    }

    pub fn secret(&self, app: &str, name: &str) -> Result<SecretView, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        secret_views(&d)
            .remove(name)
            .ok_or_else(|| ReconcileError::not_found("secret", name))
    }

    /// The values of a secret as they will be (a pull request's when one proposes them), for an
    /// audited reveal.
    pub fn reveal(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
    ) -> Result<BTreeMap<String, crate::model::SecretValue>, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        let s = d
            .desired()
            .get(name)
            .ok_or_else(|| ReconcileError::not_found("secret", name))?;
        let mut ev = actor.event("secret.revealed");
        ev.app = Some(app.to_owned());
        ev.tenant = Some(d.spec.tenant.clone());
        ev.secret = Some(name.to_owned());
        ev.keys = s.data.keys().cloned().collect();
        self.inner.events.record(ev);
        Ok(s.data.clone())
    }

    // ----- secret writes -----

    /// `PUT`: creates or replaces a secret. Answers once the commit is pushed.
    pub async fn put_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<WriteAck, ReconcileError> {
        let slot = self.slot(app)?;
        let spec = {
            let d = slot.lock();
            let spec = SecretSpec::from_json(name, body, &d.spec)?;
            let limits = &self.inner.settings.boundary.limits;
            if !d.desired().contains_key(name) && d.desired().len() >= limits.secrets_per_app {
                return Err(spec::invalid(
                    "name",
                    format!(
                        "app {app:?} holds {} secrets, the limit (limits.secrets_per_app); delete one first",
                        d.desired().len()
                    ),
                )
                .into());
            }
            spec
        };
        self.inner
            .settings
            .boundary
            .check_secret_type(&spec.type_)
            .map_err(|reason| spec::invalid("type", reason))?;
        self.check_limits(&spec)?;
        self.check_targets(app, &spec)?;
        self.submit(&slot, actor, SecretOpKind::Put(spec)).await
    }

    /// `PATCH`: sets keys, `null` removes one.
    pub async fn patch_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<WriteAck, ReconcileError> {
        let slot = self.slot(app)?;
        let patch = SecretPatch::from_json(body)?;
        {
            let d = slot.lock();
            let s = d
                .desired()
                .get(name)
                .ok_or_else(|| ReconcileError::not_found("secret", name))?;
            self.check_limits(&s.patched(&patch)?)?;
        }
        self.submit(&slot, actor, SecretOpKind::Patch(name.to_owned(), patch))
            .await
    }

    pub async fn delete_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
    ) -> Result<WriteAck, ReconcileError> {
        let slot = self.slot(app)?;
        if !slot.lock().desired().contains_key(name) {
            return Err(ReconcileError::not_found("secret", name));
        }
        self.submit(&slot, actor, SecretOpKind::Delete(name.to_owned()))
            .await
    }

    /// The configured limits on one secret: keys and bytes.
    fn check_limits(&self, spec: &SecretSpec) -> Result<(), ReconcileError> {
        let limits = &self.inner.settings.boundary.limits;
        if spec.data.len() > limits.keys_per_secret {
            return Err(spec::invalid(
                "data",
                format!(
                    "holds {} keys; the limit is {} (limits.keys_per_secret)",
                    spec.data.len(),
                    limits.keys_per_secret
                ),
            )
            .into());
        }
        let size: usize = spec
            .data
            .iter()
            .map(|(k, v)| k.len() + v.expose().len())
            .sum();
        if size > limits.value_bytes {
            return Err(spec::invalid(
                "data",
                format!(
                    "holds {size} bytes; the limit is {} (limits.value_bytes)",
                    limits.value_bytes
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Two writers never claim one Secret (namespace, name): not two managed secrets, across
    /// apps or within one, and not a managed secret and a name sealwright generates (a
    /// deployment's `<name>-credentials`, the app's external secrets), whichever came first.
    fn check_targets(&self, app: &str, spec: &SecretSpec) -> Result<(), ReconcileError> {
        for ns in &spec.target_namespaces {
            if let Some((dep, id)) = self.credentials_owner(ns, &spec.target_name) {
                return Err(ReconcileError::Conflict(format!(
                    "Secret {ns}/{} is the credentials Secret of deployment {dep:?} ({id}); give secret {:?} another targetName",
                    spec.target_name, spec.name
                )));
            }
        }
        // A Secret in a namespace is written only by an app that holds it (and, for a namespace
        // just dropped from this app's registration, by this app until its next commit).
        let candidates: BTreeSet<String> = {
            let holders = self.holders();
            spec.target_namespaces
                .iter()
                .flat_map(|ns| holders.of(ns))
                .chain([app])
                .map(str::to_owned)
                .collect()
        };
        let apps = self.apps();
        let slots: Vec<Arc<AppSlot>> = candidates
            .iter()
            .filter_map(|a| apps.get(a).cloned())
            .collect();
        drop(apps);
        for slot in slots {
            let d = slot.lock();
            if d.deleted {
                continue;
            }
            if spec.target_name == crate::external::secret_name(&slot.name) {
                if let Some(ns) = d
                    .spec
                    .namespaces()
                    .find(|n| spec.target_namespaces.iter().any(|t| t == n))
                {
                    return Err(ReconcileError::Conflict(format!(
                        "Secret {ns}/{} is reserved for the external secrets of app {:?}",
                        spec.target_name, slot.name
                    )));
                }
            }
            for other in d.desired().values() {
                if slot.name == app && other.name == spec.name {
                    continue;
                }
                if other.target_name != spec.target_name {
                    continue;
                }
                if let Some(ns) = other
                    .target_namespaces
                    .iter()
                    .find(|n| spec.target_namespaces.contains(n))
                {
                    let whose = if slot.name == app {
                        format!("secret {:?} of this app", other.name)
                    } else {
                        format!("app {:?}", slot.name)
                    };
                    return Err(ReconcileError::Conflict(format!(
                        "Secret {ns}/{} is already managed by {whose}",
                        spec.target_name
                    )));
                }
            }
        }
        Ok(())
    }

    async fn submit(
        &self,
        slot: &Arc<AppSlot>,
        actor: &Actor,
        kind: SecretOpKind,
    ) -> Result<WriteAck, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let for_batch = slot.clone();
        slot.batch.submit(
            SecretOp {
                kind,
                actor: actor.clone(),
                reply: tx,
            },
            move |ops| async move { me.platform_round(&for_batch, ops).await },
        );
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    /// One commit to an app's platform repo for every queued op (group commit).
    async fn platform_round(&self, slot: &Arc<AppSlot>, ops: Vec<SecretOp>) {
        self.inner
            .metrics
            .writes_batched
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let _span = tracing::info_span!("platform.round", app = %slot.name, ops = ops.len());
        if let Err(e) = self.provision(slot).await {
            self.record_failure(slot, &e);
            let msg = e.to_string();
            for op in ops {
                let _ = op.reply.send(Err(ReconcileError::NotReady {
                    app: slot.name.clone(),
                    reason: msg.clone(),
                }));
            }
            return;
        }
        let (spec, keys, repo, deleted) = {
            let d = slot.lock();
            (d.spec.clone(), d.keys.clone(), d.repo.clone(), d.deleted)
        };
        let (Some(keys), Some(repo)) = (keys, repo) else {
            return;
        };
        if deleted {
            for op in ops {
                let _ = op
                    .reply
                    .send(Err(ReconcileError::not_found("app", &slot.name)));
            }
            return;
        }
        if let Err(e) = self.load_committed(slot, &keys, &repo).await {
            self.record_failure(slot, &e);
            for op in ops {
                let _ = op.reply.send(Err(ReconcileError::NotReady {
                    app: slot.name.clone(),
                    reason: e.to_string(),
                }));
            }
            return;
        }
        if let Some(breach) = self.boundary_breach(&slot.name, &spec) {
            // Stored before the boundary held: nothing is written for it until it is fixed.
            let message = format!("app {}: {breach}", slot.name);
            self.record_failure(slot, &ReconcileError::Conflict(message.clone()));
            for op in ops {
                let _ = op
                    .reply
                    .send(Err(ReconcileError::Conflict(message.clone())));
            }
            return;
        }
        if spec.delivery == Delivery::PullRequest {
            return self.review_round(slot, ops, keys, repo).await;
        }
        let (committed, clean_head) = {
            let d = slot.lock();
            (d.secrets.clone(), d.clean_head.clone())
        };
        let (candidate, accepted, names) = apply_ops(&committed, ops);
        if accepted.is_empty() {
            return;
        }
        let changes: Vec<OwnedChange> = names
            .iter()
            .filter_map(|n| plan::secret_change(&slot.name, committed.get(n), candidate.get(n)))
            .collect();
        let mut extras = self.extras(slot, &spec);
        // Nothing asked to change and the repo has not moved since it last held our render.
        if changes.is_empty() && !extras.changed() && clean_head.is_some() {
            let head = self
                .inner
                .engine
                .remote_head(repo.remote.clone(), &self.inner.settings.branch)
                .await;
            if let Ok(head) = head {
                if head == clean_head {
                    self.external_pushed(slot, &extras.external, true);
                    self.answer(slot, accepted, &changes, WriteAck::at(head), None);
                    return;
                }
            }
        }
        let mut model = plan::model_app(&spec, candidate.values(), repo.flux.clone());
        extras.fill(&mut model);
        let mut unchanged: BTreeSet<String> = candidate
            .iter()
            .filter(|(n, s)| committed.get(*n).is_some_and(|c| c.same_as(s)))
            .map(|(n, _)| n.clone())
            .collect();
        unchanged.extend(extras.unchanged());
        let restore = changes.is_empty() && !extras.creds.changed;
        let message = round_message(&slot.name, &changes, &accepted, &extras);
        let trusted = clean_head.clone().map(|head| (head, unchanged));
        let planner = self.platform_planner(model, keys.clone(), trusted, message, restore);
        let result = self
            .inner
            .engine
            .apply_with(
                repo.remote.clone(),
                Target::branch(&self.inner.settings.branch),
                &self.inner.settings.author,
                planner,
            )
            .await;
        match result {
            Ok(applied) => {
                let committed_now = matches!(applied, crate::git::Applied::Committed { .. });
                if committed_now {
                    self.inner
                        .metrics
                        .commits_platform
                        .fetch_add(1, Ordering::Relaxed);
                }
                let head = applied.commit().map(str::to_owned);
                self.extras_pushed(slot, &extras, Ok((head.clone(), None)));
                let old_placement = plan::placement(&spec, committed.values());
                let new_placement = plan::placement(&spec, candidate.values());
                let flux_needed = {
                    let mut d = slot.lock();
                    d.secrets = candidate;
                    for n in &names {
                        if d.secrets.contains_key(n) {
                            d.secret_state.insert(
                                n.clone(),
                                SecretState {
                                    commit: head.clone(),
                                },
                            );
                        } else {
                            d.secret_state.remove(n);
                        }
                    }
                    d.clean_head = head.clone();
                    if committed_now || d.last_commit.is_none() {
                        d.last_commit = head.clone();
                    }
                    if old_placement != new_placement {
                        d.flux_synced = false;
                    }
                    !d.flux_synced
                };
                if flux_needed {
                    let scope = FluxScope::Apps(BTreeSet::from([slot.name.clone()]));
                    match self.flux_commit(scope).await {
                        Ok(_) => slot.lock().flux_synced = true,
                        Err(e) => {
                            // The secret is committed (acknowledged); the RBAC follows in a
                            // later round.
                            tracing::warn!(app = %slot.name, error = %e, "Flux repo commit failed; will retry");
                            self.record_failure(slot, &e);
                            let new_commit = if committed_now { head.clone() } else { None };
                            self.answer(slot, accepted, &changes, WriteAck::at(head), new_commit);
                            return;
                        }
                    }
                }
                self.clear_failure(slot);
                let new_commit = if committed_now { head.clone() } else { None };
                self.answer(slot, accepted, &changes, WriteAck::at(head), new_commit);
            }
            Err(source) => {
                let e = ReconcileError::Git {
                    repo: repo.full_name.clone(),
                    source,
                };
                self.extras_pushed(slot, &extras, Err(e.to_string()));
                self.fail_ops(
                    slot,
                    &repo.full_name,
                    &e,
                    accepted.into_iter().map(|(op, _)| op),
                );
            }
        }
    }

    /// What a platform round commits: the render of `model` against the branch tip. Files are
    /// reused unread only for the secrets in `trusted` and only when the tip is the commit named
    /// there (the one sealwright rendered last); everything else is re-rendered noise-free. A
    /// first commit with no secret change (`restore`) is the repo's set-up commit.
    fn platform_planner(
        &self,
        model: crate::model::App,
        keys: Arc<AppKeys>,
        trusted: Option<(String, BTreeSet<String>)>,
        message: RoundMessage,
        restore: bool,
    ) -> impl FnMut(&Snapshot<'_>) -> Result<Option<Proposal>, crate::git::PlanError> + Send + 'static
    {
        let cluster = self.inner.settings.cluster.clone();
        let templates = self.inner.settings.templates.clone();
        move |snap: &Snapshot<'_>| {
            let mut current = snap.files_under("secrets/")?;
            if let Some(b) = snap.read(".sops.yaml")? {
                current.insert(".sops.yaml".into(), b);
            }
            current.retain(|p, _| render::owned_in_platform_repo(p));
            let trust = trusted
                .as_ref()
                .filter(|(head, _)| snap.commit_id().as_deref() == Some(head.as_str()));
            let keep = |k: render::Kept<'_>| {
                trust.is_some_and(|(_, names)| match k {
                    render::Kept::Secret(s) => names.contains(&s.name),
                    render::Kept::Credential(c) => {
                        names.contains(&credential_key(&c.deployment_id))
                    }
                    render::Kept::External => names.contains(EXTERNAL_KEY),
                })
            };
            let rendered = render::render_platform(
                &cluster,
                &model,
                &keys.age,
                &current,
                &templates,
                DateTime::now_utc(),
                &keep,
            )?;
            let changes = plan::plan(&current, &rendered)?;
            // A first commit sets the repo up; later ones with no secret change restore
            // drifted files.
            let message = match snap.commit_id() {
                None if restore => {
                    let setup = CommitMessage::new(&format!(
                        "{}: set up the platform repo (.sops.yaml, secrets/)",
                        model.name
                    ));
                    match message.touches_external(&changes) {
                        Some(line) => setup.line(line),
                        None => setup,
                    }
                }
                _ => message.for_changes(&changes),
            };
            Ok((!changes.is_empty()).then_some(Proposal { changes, message }))
        }
    }

    /// Answers a round's ops with `ack` and records one event per changed secret, naming the
    /// commit it made (`new_commit`) or the pull request that carries it.
    fn answer(
        &self,
        slot: &AppSlot,
        accepted: Accepted,
        changes: &[OwnedChange],
        ack: WriteAck,
        new_commit: Option<String>,
    ) {
        let tenant = slot.lock().spec.tenant.clone();
        let mut recorded = BTreeSet::new();
        for (op, touched) in accepted {
            if let Some(name) = &touched {
                if let Some(c) = changes.iter().find(|c| &c.secret == name) {
                    if recorded.insert(name.clone()) {
                        let mut ev = op.actor.event(match c.kind {
                            crate::git::SecretChangeKind::Created => "secret.created",
                            crate::git::SecretChangeKind::Updated => "secret.updated",
                            crate::git::SecretChangeKind::Deleted => "secret.deleted",
                        });
                        ev.app = Some(slot.name.clone());
                        ev.tenant = Some(tenant.clone());
                        ev.secret = Some(name.clone());
                        ev.keys = c.keys();
                        ev.namespaces = c.namespaces.clone();
                        ev.commit = new_commit.clone();
                        ev.pull_request = ack.pull_request.clone();
                        self.inner.events.record(ev);
                    }
                }
            }
            let _ = op.reply.send(Ok(ack.clone()));
        }
    }

    /// A failed round: recorded in the app's status, and told to every op that shared it.
    fn fail_ops(
        &self,
        slot: &AppSlot,
        repo: &str,
        e: &ReconcileError,
        ops: impl IntoIterator<Item = SecretOp>,
    ) {
        self.record_failure(slot, e);
        for op in ops {
            let _ = op.reply.send(Err(e.shared(repo)));
        }
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

    /// What this app's round renders besides its managed secrets.
    fn extras(&self, slot: &AppSlot, spec: &AppSpec) -> Extras {
        let (creds_in, external_in) = {
            let d = slot.lock();
            (d.credentials.clone(), d.external)
        };
        Extras {
            creds: self.credential_round(spec, &creds_in),
            external: self.external_round(spec, external_in),
        }
    }

    /// After a platform round: `Ok` with the commit on the branch Flux follows or the pull
    /// request carrying the round, or why it failed.
    fn extras_pushed(
        &self,
        slot: &AppSlot,
        extras: &Extras,
        outcome: Result<(Option<String>, Option<String>), String>,
    ) {
        let pushed = outcome.is_ok();
        self.credentials_pushed(slot, &extras.creds, outcome);
        self.external_pushed(slot, &extras.external, pushed);
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

    // ----- the Flux repo -----

    async fn flux_commit(&self, scope: FluxScope) -> Result<Option<String>, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        self.inner
            .flux
            .submit(FluxOp { scope, reply: tx }, move |ops| async move {
                me.flux_round(ops).await
            });
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    async fn flux_round(&self, ops: Vec<FluxOp>) {
        let mut all = false;
        let mut wanted = BTreeSet::new();
        let mut replies = Vec::new();
        for op in ops {
            match op.scope {
                FluxScope::All => all = true,
                FluxScope::Apps(a) => wanted.extend(a),
            }
            replies.push(op.reply);
        }
        let result = self.flux_apply(all, wanted).await;
        for r in replies {
            let _ = r.send(match &result {
                Ok(c) => Ok(c.clone()),
                Err(e) => Err(e.shared(&self.inner.settings.flux_repo.to_string())),
            });
        }
    }

    async fn flux_apply(
        &self,
        all: bool,
        wanted: BTreeSet<String>,
    ) -> Result<Option<String>, ReconcileError> {
        let remote = self.flux_remote().await?;
        // Apps that can be rendered (provisioned), and registered ones that cannot yet: their
        // folders are left as they are rather than pruned over a passing host failure.
        // An app is rendered only once its secrets were read from its repo: an app that is not
        // loaded (repo unreadable, key missing, host down) keeps its folder and RBAC as they are.
        let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
        let mut ready: BTreeMap<String, (crate::model::App, Arc<AppKeys>)> = BTreeMap::new();
        let mut registered: BTreeSet<String> = BTreeSet::new();
        let boundary = &self.inner.settings.boundary;
        for slot in &slots {
            let d = slot.lock();
            if d.deleted {
                continue;
            }
            registered.insert(slot.name.clone());
            if let (Some(keys), Some(repo), true) = (&d.keys, &d.repo, d.loaded) {
                let spec = reachable(&d.spec, boundary, &self.holders());
                ready.insert(
                    slot.name.clone(),
                    (
                        plan::model_app(&spec, d.secrets.values(), repo.flux.clone()),
                        keys.clone(),
                    ),
                );
            }
        }
        let s = &self.inner.settings;
        let cluster = s.cluster.clone();
        let templates = s.templates.clone();
        let summary = if all {
            "sync every app's folder".to_owned()
        } else {
            format!(
                "sync {}",
                wanted
                    .iter()
                    .map(|a| format!("apps/{}", render::platform_repo_name(a)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let planner =
            move |snap: &Snapshot<'_>| -> Result<Option<Proposal>, crate::git::PlanError> {
                let existing: BTreeSet<String> = snap
                    .folders_in("apps")?
                    .into_iter()
                    .filter_map(|f| f.strip_suffix("-platform").map(str::to_owned))
                    .collect();
                let scope: BTreeSet<String> = if all {
                    existing
                        .iter()
                        .filter(|a| !registered.contains(*a) || ready.contains_key(*a))
                        .cloned()
                        .chain(ready.keys().cloned())
                        .collect()
                } else {
                    wanted
                        .iter()
                        .filter(|a| !registered.contains(*a) || ready.contains_key(*a))
                        .cloned()
                        .collect()
                };
                let mut current = Tree::new();
                let mut rendered = Tree::new();
                let now = DateTime::now_utc();
                for app in &scope {
                    let dir = format!("apps/{}", render::platform_repo_name(app));
                    let mut files = snap.files_in(&dir)?;
                    files.retain(|p, _| render::owned_in_flux_repo(&cluster.name, p));
                    if let Some((model, keys)) = ready.get(app) {
                        render::render_flux_app(
                            &cluster,
                            model,
                            keys,
                            &files,
                            &templates,
                            now,
                            &mut rendered,
                        )?;
                    }
                    current.extend(files);
                }
                // The list names every app whose folder will exist after this commit.
                let listed: Vec<&str> = existing
                    .iter()
                    .filter(|a| registered.contains(*a) && !scope.contains(*a))
                    .map(String::as_str)
                    .chain(
                        ready
                            .keys()
                            .filter(|a| scope.contains(*a))
                            .map(String::as_str),
                    )
                    .collect();
                rendered.extend(render::render_flux_top(&cluster, &listed, &templates)?);
                for path in [
                    format!("clusters/{}/apps.yaml", cluster.name),
                    "apps/kustomization.yaml".to_owned(),
                    ".sops.yaml".to_owned(),
                ] {
                    if let Some(b) = snap.read(&path)? {
                        current.insert(path, b);
                    }
                }
                let changes: ChangeSet = plan::plan(&current, &rendered)?;
                Ok((!changes.is_empty()).then(|| Proposal {
                    changes,
                    message: CommitMessage::new(&format!("flux: {summary}")),
                }))
            };
        let applied = self
            .inner
            .engine
            .apply_with(remote, Target::branch(&s.branch), &s.author, planner)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: s.flux_repo.to_string(),
                source,
            })?;
        if matches!(applied, crate::git::Applied::Committed { .. }) {
            self.inner
                .metrics
                .commits_flux
                .fetch_add(1, Ordering::Relaxed);
        }
        let head = applied.commit().map(str::to_owned);
        *self
            .inner
            .flux_head
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = head.clone();
        Ok(head)
    }

    // ----- the state repo -----

    async fn state_commit(
        &self,
        changes: Vec<(String, Option<Vec<u8>>)>,
        line: String,
    ) -> Result<Option<String>, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        self.inner.state.submit(
            StateOp {
                changes,
                line,
                reply: tx,
            },
            move |ops| async move { me.state_round(ops).await },
        );
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    async fn state_round(&self, ops: Vec<StateOp>) {
        let mut changes = ChangeSet::new();
        let mut lines = Vec::new();
        let mut bad = None;
        for op in &ops {
            lines.push(op.line.clone());
            for (path, bytes) in &op.changes {
                let r = match bytes {
                    Some(b) => changes.write(path, b.clone()).map(|_| ()),
                    None => changes.delete(path).map(|_| ()),
                };
                if let Err(e) = r {
                    bad = Some(e.to_string());
                }
            }
        }
        let result = match bad {
            Some(e) => Err(ReconcileError::State(e)),
            None => {
                let subject = match lines.as_slice() {
                    [one] => one.clone(),
                    many => format!("{} registration changes", many.len()),
                };
                let mut message = CommitMessage::new(&subject);
                if lines.len() > 1 {
                    for l in &lines {
                        message = message.line(&format!("- {l}"));
                    }
                }
                let s = &self.inner.settings;
                self.inner
                    .engine
                    .apply(
                        s.state_remote.clone(),
                        &s.branch,
                        changes,
                        message,
                        &s.author,
                    )
                    .await
                    .map(|a| {
                        if matches!(a, crate::git::Applied::Committed { .. }) {
                            self.inner
                                .metrics
                                .commits_state
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        a.commit().map(str::to_owned)
                    })
                    .map_err(|e| ReconcileError::State(e.to_string()))
            }
        };
        for op in ops {
            let _ = op.reply.send(match &result {
                Ok(c) => Ok(c.clone()),
                Err(e) => Err(ReconcileError::State(e.to_string())),
            });
        }
    }

    // ----- tenant API keys -----

    /// Creates a tenant API key; the key itself is returned once and stored only as a hash.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        tenant: &str,
    ) -> Result<(ApiKeyRecord, SecretString), ReconcileError> {
        crate::names::validate_label("tenant", tenant).map_err(Invalid::from)?;
        use rand::RngCore;
        let mut id_bytes = [0u8; 6];
        let mut secret_bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(secret_bytes.iter().map(|b| format!("{b:02x}")).collect());
        let key = SecretString::from(format!("swk_{id}_{}", secret.as_str()));
        let record = ApiKeyRecord {
            id: id.clone(),
            tenant: tenant.to_owned(),
            sha256: hash_key(&key),
            created: now_text(),
        };
        self.state_commit(
            vec![(
                store::api_key_path(&id),
                Some(store::encode_api_key(&record)),
            )],
            format!("create API key {id} for tenant {tenant} by {}", actor.name),
        )
        .await?;
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), record.clone());
        let mut ev = actor.event("apikey.created");
        ev.tenant = Some(tenant.to_owned());
        ev.detail = Some(format!("key id {id}"));
        self.inner.events.record(ev);
        Ok((record, key))
    }

    pub fn api_keys(&self, tenant: Option<&str>) -> Vec<ApiKeyRecord> {
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .cloned()
            .collect()
    }

    pub async fn delete_api_key(&self, actor: &Actor, id: &str) -> Result<(), ReconcileError> {
        let tenant = self
            .inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|k| k.tenant.clone())
            .ok_or_else(|| ReconcileError::not_found("API key", id))?;
        self.state_commit(
            vec![(store::api_key_path(id), None)],
            format!("revoke API key {id} of tenant {tenant} by {}", actor.name),
        )
        .await?;
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let mut ev = actor.event("apikey.revoked");
        ev.tenant = Some(tenant);
        ev.detail = Some(format!("key id {id}"));
        self.inner.events.record(ev);
        Ok(())
    }

    /// The tenant and key id a presented API key belongs to, if it is one of ours.
    pub fn check_api_key(&self, presented: &str) -> Option<(String, String)> {
        let id = presented.strip_prefix("swk_")?.split('_').next()?;
        let keys = self
            .inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let rec = keys.get(id)?;
        let hash = hash_key(&SecretString::from(presented.to_owned()));
        use subtle::ConstantTimeEq;
        bool::from(hash.as_bytes().ct_eq(rec.sha256.as_bytes()))
            .then(|| (rec.tenant.clone(), rec.id.clone()))
    }
}

/// The namespaces of a stored registration that its Flux objects may reach: the reserved ones and
/// those more than one app holds are left out, so no RBAC is ever rendered there, whatever a
/// registration stored before the boundary was enforced says.
fn reachable(
    spec: &AppSpec,
    boundary: &crate::boundary::Boundary,
    holders: &holders::Holders,
) -> AppSpec {
    let mut out = spec.clone();
    out.environments
        .retain(|e| !boundary.is_reserved(&e.namespace) && holders.count(&e.namespace) <= 1);
    out
}

fn app_event(actor: &Actor, action: &str, spec: &AppSpec) -> Event {
    let mut ev = actor.event(action);
    ev.app = Some(spec.name.clone());
    ev.tenant = Some(spec.tenant.clone());
    ev.namespaces = spec.namespaces().map(str::to_owned).collect();
    ev
}

/// How an unchanged credential is named among the trusted names of a platform round (secret
/// names are DNS labels, so this cannot collide with one).
fn credential_key(deployment_id: &str) -> String {
    format!("deployment:{deployment_id}")
}

/// How the unchanged external-secrets Secret is named among the trusted names.
const EXTERNAL_KEY: &str = "external:";

/// What a platform round renders besides the managed secrets: the deployments' credentials and
/// the external secrets.
struct Extras {
    creds: credentials::CredRound,
    external: external::ExtRound,
}

impl Extras {
    /// The render differs from what the repo holds.
    fn changed(&self) -> bool {
        self.creds.changed || self.external.changed
    }

    /// Moves what is to be rendered into the model.
    fn fill(&mut self, model: &mut crate::model::App) {
        model.credentials = std::mem::take(&mut self.creds.models);
        model.external = self.external.model.take();
    }

    /// Trusted names: files the repo already holds as this round renders them.
    fn unchanged(&self) -> impl Iterator<Item = String> + '_ {
        self.creds
            .unchanged
            .iter()
            .cloned()
            .chain((!self.external.changed).then(|| EXTERNAL_KEY.to_owned()))
    }
}

/// A round's queued ops applied, in order, to a copy of `base`: the candidate secrets, the ops
/// that fit (with the secret each touched) and the names touched. An op that no longer fits (a
/// patch of a secret deleted earlier in the round) is answered on its own here.
type Accepted = Vec<(SecretOp, Option<String>)>;

fn apply_ops(
    base: &BTreeMap<String, SecretSpec>,
    ops: Vec<SecretOp>,
) -> (BTreeMap<String, SecretSpec>, Accepted, BTreeSet<String>) {
    let mut candidate = base.clone();
    let mut accepted = Vec::new();
    for op in ops {
        let outcome = match &op.kind {
            SecretOpKind::Put(s) => {
                candidate.insert(s.name.clone(), s.clone());
                Ok(Some(s.name.clone()))
            }
            SecretOpKind::Patch(name, patch) => match candidate.get(name) {
                None => Err(ReconcileError::not_found("secret", name)),
                Some(s) => s
                    .patched(patch)
                    .map(|next| {
                        candidate.insert(name.clone(), next);
                        Some(name.clone())
                    })
                    .map_err(ReconcileError::from),
            },
            SecretOpKind::Delete(name) => match candidate.remove(name) {
                None => Err(ReconcileError::not_found("secret", name)),
                Some(_) => Ok(Some(name.clone())),
            },
            SecretOpKind::Sync => Ok(None),
        };
        match outcome {
            Ok(touched) => accepted.push((op, touched)),
            Err(e) => {
                let _ = op.reply.send(Err(e));
            }
        }
    }
    let names = accepted.iter().filter_map(|(_, t)| t.clone()).collect();
    (candidate, accepted, names)
}

fn hash_key(key: &SecretString) -> String {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    Sha256::digest(key.expose_secret().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn secret_view(d: &AppData, s: &SecretSpec) -> SecretView {
    SecretView {
        name: s.name.clone(),
        target_name: s.target_name.clone(),
        namespaces: s.target_namespaces.clone(),
        type_: s.type_.clone(),
        keys: s.data.keys().cloned().collect(),
        commit: d.secret_state.get(&s.name).and_then(|st| st.commit.clone()),
        pull_request: None,
        pending: None,
    }
}

/// Every secret of an app by name: the committed ones, overlaid with what an open pull request
/// proposes (creations, updates, deletions), each marked with the pull request.
fn secret_views(d: &AppData) -> BTreeMap<String, SecretView> {
    let mut out: BTreeMap<String, SecretView> = d
        .secrets
        .values()
        .map(|s| (s.name.clone(), secret_view(d, s)))
        .collect();
    let Some(p) = &d.pending else {
        return out;
    };
    for (name, s) in &p.secrets {
        let change = match d.secrets.get(name) {
            Some(c) if c.same_as(s) => continue,
            Some(_) => "update",
            None => "create",
        };
        let mut v = secret_view(d, s);
        v.pull_request = Some(p.url.clone());
        v.pending = Some(change);
        out.insert(name.clone(), v);
    }
    for (name, v) in out.iter_mut() {
        if !p.secrets.contains_key(name) {
            v.pull_request = Some(p.url.clone());
            v.pending = Some("delete");
        }
    }
    out
}

/// A round's commit message, with and without its line about the external-secrets Secret: which
/// one is true shows only once the plan says whether that Secret's files change (a restart, say,
/// re-renders them without knowing whether they differ).
#[derive(Clone)]
struct RoundMessage {
    plain: CommitMessage,
    /// The files' name (`/<secret>.sops.yaml`), the message with the line, and the line.
    external: Option<(String, CommitMessage, String)>,
}

impl RoundMessage {
    fn fixed(message: CommitMessage) -> RoundMessage {
        RoundMessage {
            plain: message,
            external: None,
        }
    }

    /// Whether a plan writes or deletes one of the external-secrets files.
    fn touches_external(&self, changes: &ChangeSet) -> Option<&str> {
        let (suffix, _, line) = self.external.as_ref()?;
        let hit = |p: &str| p.starts_with("secrets/") && p.ends_with(suffix.as_str());
        (changes.writes().any(|(p, _)| hit(p)) || changes.deletes().any(hit)).then_some(line)
    }

    /// The message for a plan with these changes.
    fn for_changes(&self, changes: &ChangeSet) -> CommitMessage {
        match (&self.external, self.touches_external(changes)) {
            (Some((_, with, _)), Some(_)) => with.clone(),
            _ => self.plain.clone(),
        }
    }

    /// Before any plan (a pull request's title): the one naming all the round may change.
    fn preferred(&self) -> &CommitMessage {
        self.external.as_ref().map_or(&self.plain, |(_, m, _)| m)
    }
}

/// A round's commit message: its changes (or, with none, a restore of drifted files) and who
/// asked for them.
fn round_message(
    app: &str,
    changes: &[OwnedChange],
    accepted: &Accepted,
    extras: &Extras,
) -> RoundMessage {
    let creds = &extras.creds;
    let mut extra: Vec<String> = Vec::new();
    match creds.minted.as_slice() {
        [] => {}
        few @ [_] | few @ [_, _] | few @ [_, _, _] => extra.push(format!(
            "deployment credentials: new token for {}",
            few.join(", ")
        )),
        many => extra.push(format!(
            "deployment credentials: new tokens for {} deployments",
            many.len()
        )),
    }
    let removed = creds.removed;
    if removed > 0 {
        extra.push(format!("deployment credentials: {removed} removed"));
    }
    let build = |mut extra: Vec<String>| {
        if changes.is_empty() && extra.is_empty() {
            extra.push("restore the files sealwright owns".into());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let message = plan::batch_message(app, changes, &extra);
        with_actors(message, accepted.iter().map(|(op, _)| &op.actor))
    };
    let external = extras.external.message(app).map(|line| {
        let mut with = extra.clone();
        with.push(line.clone());
        let suffix = format!("/{}.sops.yaml", crate::external::secret_name(app));
        (suffix, build(with), line)
    });
    RoundMessage {
        plain: build(extra),
        external,
    }
}

/// The actors of a round, as a message line (names only).
fn with_actors<'a>(
    message: CommitMessage,
    actors: impl Iterator<Item = &'a Actor>,
) -> CommitMessage {
    let mut names: Vec<&str> = actors.map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return message;
    }
    message.line(&format!("by: {}", names.join(", ")))
}

fn remote_for(access: &Access, push_url: &str, clone_url: &str) -> Result<Remote, GitError> {
    match access {
        Access::Local => Remote::local(push_url),
        Access::Token(t) => Remote::new(clone_url, Credentials::Token(t.clone())),
    }
}

/// `git@host:owner/name.git` (GitHub's ssh_url) → `ssh://git@host/owner/name.git`, which Flux takes.
fn ssh_url(url: &str) -> String {
    if url.contains("://") {
        return url.to_owned();
    }
    match url.split_once(':') {
        Some((userhost, path)) => format!("ssh://{userhost}/{path}"),
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scp_style_ssh_urls_become_ssh_urls() {
        assert_eq!(
            ssh_url("git@github.com:acme/shop-platform.git"),
            "ssh://git@github.com/acme/shop-platform.git"
        );
        assert_eq!(
            ssh_url("ssh://git@h:2222/a/b.git"),
            "ssh://git@h:2222/a/b.git"
        );
    }

    #[test]
    fn api_keys_hash_and_compare() {
        let k = SecretString::from("swk_0a0b0c0d0e0f_00".to_owned());
        assert_eq!(hash_key(&k).len(), 64);
        assert_ne!(
            hash_key(&k),
            hash_key(&SecretString::from("swk_x".to_owned()))
        );
    }
}
