//! Controller mode: sealwright in the cluster Flux manages, driven the Kubernetes way. It is an
//! input like the API and the registrations directory, and feeds the same reconciler:
//!
//! ```text
//! AppPlatformRegistration ─► registrations.rs ─► Reconciler::register_app / update_app
//!   (cluster-scoped)           │  namespace <app>-platform + RoleBinding, status, Events
//!                              └► managed.rs: one watch per platform namespace
//! managed Secret (<app>-platform) ─► Reconciler::put_secret_spec / delete_secret
//!                                    └► annotations committed / commit / error, Events
//! Flux Kustomization <app>-platform ─► flux.rs ─► FluxReady, `applied`
//! Lease ─► lease.rs ─► the write gate (only the leader writes)
//! ```
//!
//! Nothing here decides what a registration or a secret may be: the reconciler's checks (the
//! tenant boundary first) hold exactly as on the API, and their errors become conditions,
//! annotations and Warning events that name the field, never a value.

pub mod crd;
pub mod flux;
pub mod lease;
mod managed;
mod mirror;
mod registrations;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use kube::runtime::events::{Recorder, Reporter};

use crate::config::serve::ControllerConfig;
use crate::reconcile::Reconciler;

pub use lease::Elector;
pub use mirror::SecretMirror;

/// Labels and annotations (seed 003).
pub mod names {
    pub const MANAGED_SECRET: &str = "sealwright.dev/managed-secret";
    pub const TARGET_NAMESPACES: &str = "sealwright.dev/target-namespaces";
    pub const TARGET_NAME: &str = "sealwright.dev/target-name";
    pub const COMMITTED: &str = "sealwright.dev/committed";
    pub const COMMIT: &str = "sealwright.dev/commit";
    pub const PULL_REQUEST: &str = "sealwright.dev/pull-request";
    pub const APPLIED: &str = "sealwright.dev/applied";
    pub const ERROR: &str = "sealwright.dev/error";
    pub const MARKED_FOR_DELETION: &str = "sealwright.dev/marked-for-deletion";
    /// Holds a managed Secret until its files are gone from the platform repo.
    pub const FILES_FINALIZER: &str = "sealwright.dev/files";
    /// Holds a registration until its app is unregistered.
    pub const REGISTRATION_FINALIZER: &str = "sealwright.dev/registration";
    /// On the platform namespaces sealwright made: which app's it is.
    pub const APP: &str = "sealwright.dev/app";
    pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sealwright");
}

/// Records a Kubernetes Event on `reference` (a note of at most 1,000 characters, never a
/// value). A failure to record is logged, not fatal: the status says the same.
pub(crate) async fn publish(
    recorder: &Recorder,
    reference: &k8s_openapi::api::core::v1::ObjectReference,
    type_: kube::runtime::events::EventType,
    reason: &str,
    action: &str,
    note: &str,
) {
    let ev = kube::runtime::events::Event {
        type_,
        reason: reason.into(),
        note: Some(note.chars().take(1000).collect()),
        action: action.into(),
        secondary: None,
    };
    if let Err(e) = recorder.publish(&ev, reference).await {
        tracing::warn!(error = %e, "could not record an event");
    }
}

/// The platform namespace of `app`, where its managed Secrets live.
pub fn platform_namespace(app: &str) -> String {
    format!("{app}-platform")
}

#[derive(Debug, thiserror::Error)]
pub enum ControllerError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig {path}: {reason}")]
    Kubeconfig { path: String, reason: String },
    #[error("{0}")]
    Reconcile(String),
}

/// A client from the configured kubeconfig, else from the environment (in a pod: its service
/// account).
pub async fn client(config: &ControllerConfig) -> Result<kube::Client, ControllerError> {
    let cfg = match &config.kubeconfig {
        Some(path) => {
            let shown = path.display().to_string();
            let bad = |reason: String| ControllerError::Kubeconfig {
                path: shown.clone(),
                reason,
            };
            let kc = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .map_err(|e| bad(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| ControllerError::Kubeconfig {
                path: "(in-cluster or $KUBECONFIG)".into(),
                reason: e.to_string(),
            })?,
    };
    Ok(kube::Client::try_from(cfg)?)
}

/// What the controllers share.
pub struct Context {
    pub(crate) client: kube::Client,
    pub(crate) reconciler: Reconciler,
    pub(crate) config: ControllerConfig,
    pub(crate) recorder: Recorder,
    /// The managed-Secret watch of each app's platform namespace.
    watches: Mutex<BTreeMap<String, tokio::task::JoinHandle<()>>>,
}

impl Context {
    pub fn new(
        client: kube::Client,
        reconciler: Reconciler,
        config: ControllerConfig,
        identity: &str,
    ) -> Arc<Context> {
        let recorder = Recorder::new(
            client.clone(),
            Reporter {
                controller: "sealwright".into(),
                instance: Some(identity.to_owned()),
            },
        );
        Arc::new(Context {
            client,
            reconciler,
            config,
            recorder,
            watches: Mutex::new(BTreeMap::new()),
        })
    }

    fn watches(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, tokio::task::JoinHandle<()>>> {
        self.watches.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Runs the controllers until the process ends: registrations (and from them, each platform
/// namespace's managed Secrets). Call it only while holding the lease.
pub async fn run(ctx: Arc<Context>) {
    registrations::run(ctx).await
}

impl Drop for Context {
    fn drop(&mut self) {
        for (_, h) in std::mem::take(&mut *self.watches()) {
            h.abort();
        }
    }
}
