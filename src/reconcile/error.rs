//! What can go wrong in the reconciler, as the API and the CLI are told it. Messages name
//! apps, repositories and fields, never a value.

use crate::git::GitError;
use crate::host::HostError;
use crate::keys::KeyError;
use crate::render::RenderError;
use crate::spec::Invalid;

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
    pub(super) fn shared(&self, repo: &str) -> ReconcileError {
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

    /// The same refusal for one more op of a round that wrote nothing (errors do not clone;
    /// the refusals a round can give before writing are all plain text).
    pub(super) fn again(&self) -> ReconcileError {
        match self {
            ReconcileError::NotReady { app, reason } => ReconcileError::NotReady {
                app: app.clone(),
                reason: reason.clone(),
            },
            ReconcileError::NotFound { what, name } => ReconcileError::NotFound {
                what,
                name: name.clone(),
            },
            ReconcileError::Conflict(message) => ReconcileError::Conflict(message.clone()),
            other => ReconcileError::Internal(other.to_string()),
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

    pub(super) fn not_found(what: &'static str, name: &str) -> Self {
        ReconcileError::NotFound {
            what,
            name: name.to_owned(),
        }
    }
}
