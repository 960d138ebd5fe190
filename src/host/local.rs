//! The local host of the embedded default: bare repositories under `<data dir>/repos/<owner>/<name>.git`,
//! created on demand, pushed to through the file system. It has no deploy keys (nothing to
//! authenticate) and no pull requests or commit statuses; asking for those is a clear error.

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::{
    CommitStatus, DeployKeySpec, DeployKeyState, GitHost, HostError, HostedRepo, NewPullRequest,
    PullRequest, RepoRef,
};

const NO_REVIEWS: &str = "local repositories are plain bare repositories on disk; use direct commits, or a GitHub host for pull requests";

pub struct LocalHost {
    root: PathBuf,
}

impl LocalHost {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    /// Where `repo` lives: `<root>/<owner>/<name>.git`.
    pub fn path_of(&self, repo: &RepoRef) -> PathBuf {
        self.root
            .join(repo.owner())
            .join(format!("{}.git", repo.name()))
    }

    fn unsupported(operation: &'static str) -> HostError {
        HostError::Unsupported {
            host: "local",
            operation,
            why: NO_REVIEWS,
        }
    }
}

/// Creates the bare repository with `main` as its unborn default branch, unless it exists.
fn ensure_bare(path: &Path) -> Result<bool, HostError> {
    let local = |message: String| HostError::Local {
        path: path.display().to_string(),
        message,
    };
    match git2::Repository::open_bare(path) {
        Ok(_) => return Ok(false),
        Err(e) if e.code() != git2::ErrorCode::NotFound => {
            return Err(local(e.message().to_owned()))
        }
        Err(_) => {}
    }
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| local(e.to_string()))?;
    }
    let mut options = git2::RepositoryInitOptions::new();
    options.bare(true).initial_head("main").mkdir(true);
    match git2::Repository::init_opts(path, &options) {
        Ok(_) => Ok(true),
        // Another process created it at the same moment: that is as good.
        Err(_) if git2::Repository::open_bare(path).is_ok() => Ok(false),
        Err(e) => Err(local(e.message().to_owned())),
    }
}

#[async_trait]
impl GitHost for LocalHost {
    fn kind(&self) -> &'static str {
        "local"
    }

    async fn ensure_repo(
        &self,
        repo: &RepoRef,
        _description: &str,
    ) -> Result<HostedRepo, HostError> {
        let path = self.path_of(repo);
        let for_worker = path.clone();
        let created = tokio::task::spawn_blocking(move || ensure_bare(&for_worker))
            .await
            .map_err(|e| HostError::Local {
                path: path.display().to_string(),
                message: e.to_string(),
            })??;
        let text = path.display().to_string();
        Ok(HostedRepo {
            full_name: repo.to_string(),
            push_url: text.clone(),
            clone_url: text,
            ssh_url: None,
            default_branch: "main".to_owned(),
            private: true,
            created,
        })
    }

    async fn ensure_deploy_key(
        &self,
        _repo: &RepoRef,
        _key: &DeployKeySpec,
    ) -> Result<DeployKeyState, HostError> {
        Ok(DeployKeyState::NotNeeded)
    }

    async fn open_pull_request(
        &self,
        _repo: &RepoRef,
        _pr: &NewPullRequest,
    ) -> Result<PullRequest, HostError> {
        Err(Self::unsupported("pull requests"))
    }

    async fn pull_request(&self, _repo: &RepoRef, _number: u64) -> Result<PullRequest, HostError> {
        Err(Self::unsupported("pull requests"))
    }

    async fn open_pull_requests(
        &self,
        _repo: &RepoRef,
        _base: &str,
    ) -> Result<Vec<PullRequest>, HostError> {
        Err(Self::unsupported("pull requests"))
    }

    async fn delete_branch(&self, _repo: &RepoRef, _branch: &str) -> Result<(), HostError> {
        Err(Self::unsupported(
            "branch deletion (it only serves pull requests)",
        ))
    }

    async fn merge_pull_request(
        &self,
        _: &RepoRef,
        _: u64,
        _: &str,
        _: &str,
    ) -> Result<String, HostError> {
        Err(Self::unsupported("pull requests"))
    }

    async fn set_commit_status(
        &self,
        _: &RepoRef,
        _: &str,
        _: &CommitStatus,
    ) -> Result<(), HostError> {
        Err(Self::unsupported("commit statuses"))
    }

    /// Moves the bare repository to `<root>/.archived/<owner>/<name>-<unix time>.git`: gone from
    /// where pushes go, kept on disk.
    async fn archive_repo(&self, repo: &RepoRef) -> Result<(), HostError> {
        let from = self.path_of(repo);
        if !from.exists() {
            return Ok(());
        }
        let secs = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let to = self
            .root
            .join(".archived")
            .join(repo.owner())
            .join(format!("{}-{secs}.git", repo.name()));
        let local = |e: std::io::Error| HostError::Local {
            path: from.display().to_string(),
            message: e.to_string(),
        };
        if let Some(parent) = to.parent() {
            std::fs::create_dir_all(parent).map_err(local)?;
        }
        std::fs::rename(&from, &to).map_err(local)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_bare_repos_on_demand_and_refuses_pull_requests() {
        let dir = tempfile::tempdir().unwrap();
        let host = LocalHost::new(dir.path());
        let repo = RepoRef::new("acme", "shop-platform").unwrap();
        let first = host.ensure_repo(&repo, "x").await.unwrap();
        assert!(first.created);
        assert!(Path::new(&first.push_url).join("HEAD").exists());
        let head = std::fs::read_to_string(Path::new(&first.push_url).join("HEAD")).unwrap();
        assert_eq!(head.trim(), "ref: refs/heads/main");
        assert!(!host.ensure_repo(&repo, "x").await.unwrap().created);
        let key = DeployKeySpec {
            title: "t".into(),
            public_key: "ssh-ed25519 AAAA".into(),
            read_only: true,
        };
        assert_eq!(
            host.ensure_deploy_key(&repo, &key).await.unwrap(),
            DeployKeyState::NotNeeded
        );
        let pr = NewPullRequest {
            title: "t".into(),
            body: String::new(),
            head: "x".into(),
            base: "main".into(),
        };
        let e = host
            .open_pull_request(&repo, &pr)
            .await
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("local host does not support pull requests"),
            "{e}"
        );
    }
}
