//! How a reconciler is set up: the cluster, where the repositories live and how they are
//! reached, the branch, the author, the clock and the tenant boundary.

use std::sync::Arc;
use std::time::Duration;

use secrecy::SecretString;

use crate::git::{Credentials, GitError, Identity, Remote};
use crate::host::RepoRef;
use crate::model::Cluster;
use crate::render::Templates;

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

impl Access {
    /// The remote for a repository on the host: the local path, or its clone URL with the token.
    pub fn remote(&self, push_url: &str, clone_url: &str) -> Result<Remote, GitError> {
        match self {
            Access::Local => Remote::local(push_url),
            Access::Token(t) => Remote::new(clone_url, Credentials::Token(t.clone())),
        }
    }
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
    /// Its `owner/name` when it lives on the host (no app may take it as its platform repo).
    pub state_repo: Option<String>,
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
    /// Keys no write may store, and the presets writes may name.
    pub policy: crate::recipe::Policy,
    /// Where generated values come from (the OS; a seeded stream in tests).
    pub entropy: crate::random::Entropy,
}

/// `git@host:owner/name.git` (GitHub's ssh_url) → `ssh://git@host/owner/name.git`, which Flux takes.
pub(super) fn ssh_url(url: &str) -> String {
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
}
