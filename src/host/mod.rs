//! Git hosts: where repositories live and what can be asked of them beyond Git itself. The
//! [`GitHost`] trait is the seam — ensure a private repository exists, ensure a read-only deploy key,
//! open, read and merge pull requests, set commit statuses — with [`GitHub`] (the REST API through
//! octocrab, GitHub Enterprise included) and [`LocalHost`] (bare repositories under the data
//! directory, the embedded default) behind it.

mod github;
mod local;

use async_trait::async_trait;

pub use github::{GitHub, GitHubConfig};
pub use local::LocalHost;

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("{field}: {problem}")]
    BadInput {
        field: &'static str,
        problem: String,
    },
    #[error("the {host} host does not support {operation}: {why}")]
    Unsupported {
        host: &'static str,
        operation: &'static str,
        why: &'static str,
    },
    #[error("{operation} {repo}: not found, or the token cannot see it")]
    NotFound {
        operation: &'static str,
        repo: String,
    },
    #[error("{operation}: the host refused the token ({status}): {message}")]
    Unauthorized {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("merge of pull request #{number} refused: its head is no longer {expected_sha}; review and merge again")]
    StaleHead { number: u64, expected_sha: String },
    #[error("pull request #{number} cannot be merged: {message}")]
    NotMergeable { number: u64, message: String },
    #[error("{operation}: still rate limited after {attempts} attempts")]
    RateLimited {
        operation: &'static str,
        attempts: u32,
    },
    #[error("{operation}: the host answered {status}: {message}")]
    Api {
        operation: &'static str,
        status: u16,
        message: String,
    },
    #[error("{operation}: {message}")]
    Transport {
        operation: &'static str,
        message: String,
    },
    #[error("{operation}: unexpected response: {message}")]
    Decode {
        operation: &'static str,
        message: String,
    },
    #[error("local host {path}: {message}")]
    Local { path: String, message: String },
}

/// A repository on a host: `owner/name`, checked against GitHub's rules.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RepoRef {
    owner: String,
    name: String,
}

impl RepoRef {
    pub fn new(owner: &str, name: &str) -> Result<Self, HostError> {
        check_repo_part("repository owner", owner)?;
        check_repo_part("repository name", name)?;
        if name.to_ascii_lowercase().ends_with(".git") {
            return Err(HostError::BadInput {
                field: "repository name",
                problem: format!("{name:?} must not end in .git"),
            });
        }
        Ok(Self {
            owner: owner.to_owned(),
            name: name.to_owned(),
        })
    }

    /// Parses `owner/name`.
    pub fn parse(full_name: &str) -> Result<Self, HostError> {
        let (owner, name) = full_name
            .split_once('/')
            .ok_or_else(|| HostError::BadInput {
                field: "repository",
                problem: format!("{full_name:?} must be owner/name"),
            })?;
        Self::new(owner, name)
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl std::fmt::Display for RepoRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.owner, self.name)
    }
}

fn check_repo_part(field: &'static str, value: &str) -> Result<(), HostError> {
    let ok = !value.is_empty()
        && value.len() <= 100
        && value != "."
        && value != ".."
        && value
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(HostError::BadInput {
            field,
            problem: format!("{value:?} must be 1 to 100 of A-Z a-z 0-9 . _ -"),
        })
    }
}

/// A repository as the host reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HostedRepo {
    pub full_name: String,
    /// What sealwright pushes to: the SSH URL on GitHub, the bare repository's path locally.
    pub push_url: String,
    /// The https clone URL (GitHub) or the local path.
    pub clone_url: String,
    pub ssh_url: Option<String>,
    pub default_branch: String,
    pub private: bool,
    /// Whether this call created it.
    pub created: bool,
}

/// A deploy key to ensure on a repository.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeployKeySpec {
    pub title: String,
    /// `ssh-ed25519 AAAA… [comment]`; keys compare by type and key material, never by comment.
    pub public_key: String,
    pub read_only: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DeployKeyState {
    /// The key was added now.
    Added { id: u64 },
    /// The key was already there, with the same access.
    Present { id: u64 },
    /// The key was there with other access; it was deleted and added again (GitHub keys are immutable).
    Replaced { id: u64 },
    /// This host needs no deploy keys (local repositories are read from disk).
    NotNeeded,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewPullRequest {
    pub title: String,
    pub body: String,
    /// The branch with the change.
    pub head: String,
    /// The branch to merge into.
    pub base: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PullRequestState {
    Open,
    Closed,
    Merged,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    pub state: PullRequestState,
    pub head_ref: String,
    pub head_sha: String,
    /// `owner/name` of the repository the head branch is in: another one for a pull request from
    /// a fork, `None` when that fork is gone.
    pub head_repo: Option<String>,
    pub base_ref: String,
    pub url: String,
    pub merge_commit_sha: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StatusState {
    Pending,
    Success,
    Failure,
    Error,
}

impl StatusState {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusState::Pending => "pending",
            StatusState::Success => "success",
            StatusState::Failure => "failure",
            StatusState::Error => "error",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommitStatus {
    pub state: StatusState,
    /// The status's name, e.g. `sealwright/reconcile`.
    pub context: String,
    pub description: String,
    pub target_url: Option<String>,
}

/// What sealwright asks of a Git host. One implementation per host kind, held as `Arc<dyn GitHost>`.
#[async_trait]
pub trait GitHost: Send + Sync {
    /// `github`, `local`: for messages.
    fn kind(&self) -> &'static str;

    /// Creates the repository, private, when it does not exist; returns it either way.
    async fn ensure_repo(&self, repo: &RepoRef, description: &str)
        -> Result<HostedRepo, HostError>;

    /// Adds the deploy key unless the same key is already there with the same access.
    async fn ensure_deploy_key(
        &self,
        repo: &RepoRef,
        key: &DeployKeySpec,
    ) -> Result<DeployKeyState, HostError>;

    /// Opens a pull request from a pushed branch, or returns the open one for the same head and base.
    async fn open_pull_request(
        &self,
        repo: &RepoRef,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, HostError>;

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, HostError>;

    /// The open pull requests into `base` (how a restart finds the one it was waiting on).
    async fn open_pull_requests(
        &self,
        repo: &RepoRef,
        base: &str,
    ) -> Result<Vec<PullRequest>, HostError>;

    /// Deletes a branch; one that is already gone is not an error (GitHub may delete merged heads).
    async fn delete_branch(&self, repo: &RepoRef, branch: &str) -> Result<(), HostError>;

    /// Squash-merges the pull request if its head is still `head_sha`; returns the merge commit.
    async fn merge_pull_request(
        &self,
        repo: &RepoRef,
        number: u64,
        head_sha: &str,
        title: &str,
    ) -> Result<String, HostError>;

    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), HostError>;

    /// Archives the repository (read-only, kept): what deleting an app does to its platform repo
    /// when asked to. Archiving a repository that does not exist is not an error.
    async fn archive_repo(&self, repo: &RepoRef) -> Result<(), HostError>;
}

/// `ssh-ed25519 AAAA… comment` → `ssh-ed25519 AAAA…`: how GitHub compares keys.
pub(crate) fn key_material(public_key: &str) -> String {
    public_key
        .split_whitespace()
        .take(2)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_refs_follow_github_rules() {
        assert_eq!(
            RepoRef::parse("acme/shop-platform").unwrap().to_string(),
            "acme/shop-platform"
        );
        for bad in [
            "acme", "acme/", "/x", "a/b/c", "a/x.git", "a/..", "a b/c", "a/é",
        ] {
            let e = RepoRef::parse(bad).unwrap_err().to_string();
            assert!(e.contains("repository"), "{bad}: {e}");
        }
    }

    #[test]
    fn keys_compare_without_comments() {
        assert_eq!(key_material("ssh-ed25519 AAAA me@host"), "ssh-ed25519 AAAA");
        assert_eq!(key_material(" ssh-ed25519   AAAA\n"), "ssh-ed25519 AAAA");
    }
}
