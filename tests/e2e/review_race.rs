//! Pull-request delivery when a reviewer merges at the worst moment: after sealwright looked at the
//! pull request and before its push to the pull request's branch landed. The GitHub API is the
//! FAKE one of `common::fake_github` (stateful, over real bare repositories, schema-checked), the
//! repositories are served by a real smart-HTTP Git server on loopback, and the reviewer's merge
//! is made through the fake's API from inside the host's `pull_request` call, which is how the
//! test hits that window every time.

use crate::common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use async_trait::async_trait;
use common::fake_github::FakeGitHub;
use sealwright::audit::EventLog;
use sealwright::host::{
    CommitStatus, DeployKeySpec, DeployKeyState, GitHost, GitHub, HostError, HostedRepo,
    NewPullRequest, PullRequest, RepoRef,
};
use sealwright::reconcile::{Access, Actor, AppSpec, FluxUrl, Source};
use secrecy::SecretString;
use serde_json::json;

const TOKEN: &str = "ghp_fake0token0review0race";
const KNOWN_HOSTS: &str =
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

/// The GitHub host, except that once armed, the next look at a pull request is followed at once
/// by a reviewer's squash merge of it (the caller still gets the answer from before the merge).
struct MergesRightAfterALook {
    github: GitHub,
    armed: AtomicBool,
}

#[async_trait]
impl GitHost for MergesRightAfterALook {
    fn kind(&self) -> &'static str {
        self.github.kind()
    }
    async fn ensure_repo(&self, repo: &RepoRef, d: &str) -> Result<HostedRepo, HostError> {
        self.github.ensure_repo(repo, d).await
    }
    async fn ensure_deploy_key(
        &self,
        repo: &RepoRef,
        key: &DeployKeySpec,
    ) -> Result<DeployKeyState, HostError> {
        self.github.ensure_deploy_key(repo, key).await
    }
    async fn open_pull_request(
        &self,
        repo: &RepoRef,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, HostError> {
        self.github.open_pull_request(repo, pr).await
    }
    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, HostError> {
        let seen = self.github.pull_request(repo, number).await?;
        if self.armed.swap(false, Ordering::SeqCst) {
            self.github
                .merge_pull_request(repo, number, &seen.head_sha, "reviewer merge")
                .await?;
        }
        Ok(seen)
    }
    async fn open_pull_requests(
        &self,
        repo: &RepoRef,
        base: &str,
    ) -> Result<Vec<PullRequest>, HostError> {
        self.github.open_pull_requests(repo, base).await
    }
    async fn delete_branch(&self, repo: &RepoRef, branch: &str) -> Result<(), HostError> {
        self.github.delete_branch(repo, branch).await
    }
    async fn merge_pull_request(
        &self,
        repo: &RepoRef,
        number: u64,
        head_sha: &str,
        title: &str,
    ) -> Result<String, HostError> {
        self.github
            .merge_pull_request(repo, number, head_sha, title)
            .await
    }
    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), HostError> {
        self.github.set_commit_status(repo, sha, status).await
    }
    async fn archive_repo(&self, repo: &RepoRef) -> Result<(), HostError> {
        self.github.archive_repo(repo).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_github_a_merge_between_the_look_and_the_push_is_settled_and_the_write_reproposed() {
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("github");
    std::fs::create_dir_all(&repos).unwrap();
    let (_git, fake, github) = FakeGitHub::over_http(&repos, TOKEN);
    let host = Arc::new(MergesRightAfterALook {
        github,
        armed: AtomicBool::new(false),
    });
    let r = common::reconciler::on_host(
        tmp.path(),
        host.clone(),
        Access::Token(SecretString::from(TOKEN.to_owned())),
        FluxUrl::HostSsh {
            known_hosts: KNOWN_HOSTS.into(),
        },
        sealwright::tokens::CredentialSettings::default(),
        Arc::new(sealwright::clock::SystemClock),
        Arc::new(EventLog::in_memory()),
    );
    let admin = Actor::new("admin");
    let spec = AppSpec::from_json(&json!({"name": "crm", "tenant": "acme",
        "delivery": "pull-request", "environments": [{"name": "prod", "namespace": "crm-prod"}]}))
    .unwrap();
    let app = r.register_app(&admin, spec, Source::Api).await.unwrap();
    assert!(app.ready, "{:?}", app.errors);

    let first = r
        .put_secret(
            &admin,
            "crm",
            "api",
            &json!({"targetNamespaces": ["crm-prod"], "data": {"key": "v1"}}),
        )
        .await
        .unwrap();
    let first_pr = first.pull_request.clone().unwrap();

    // The next write's round looks at pull request 1 (open), the reviewer merges it (with v1
    // only), then the round pushes v2 to the merged pull request's branch.
    host.armed.store(true, Ordering::SeqCst);
    let second = r
        .patch_secret(&admin, "crm", "api", &json!({"data": {"key": "v2"}}))
        .await
        .unwrap();
    assert!(!host.armed.load(Ordering::SeqCst), "the window was not hit");
    let second_pr = second.pull_request.clone().unwrap();
    assert_ne!(
        second_pr, first_pr,
        "a write is never acknowledged in a merged pull request"
    );
    assert!(!second.committed);

    // The merge of pull request 1 is settled: v1 is committed, v2 waits in pull request 2.
    let view = sealwright::api::views::secret(&r.secret("crm", "api").unwrap());
    assert_eq!(view["pendingChange"], json!("update"), "{view}");
    assert_eq!(view["pullRequest"], json!(second_pr), "{view}");
    let merged_1 = r.app("crm").unwrap().last_commit.unwrap();
    let main = common::git_in(
        &repos.join("platform/crm-platform.git"),
        &["rev-parse", "main"],
    );
    assert_eq!(main.trim(), merged_1);
    let actions: Vec<String> = r
        .events()
        .list(0, 100, &|e| e.app.as_deref() == Some("crm"))
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.pull_request.unwrap_or_default()))
        .collect();
    assert!(
        actions.contains(&format!("pull_request.merged {first_pr}")),
        "{actions:?}"
    );
    assert_eq!(
        r.reveal(&admin, "crm", "api").unwrap()["key"].expose(),
        b"v2"
    );

    // While it is open, the app cannot be switched to direct commits.
    let to_commit = AppSpec::from_json(&json!({"name": "crm", "tenant": "acme",
        "delivery": "commit", "environments": [{"name": "prod", "namespace": "crm-prod"}]}))
    .unwrap();
    let e = r.update_app(&admin, to_commit).await.unwrap_err();
    assert!(
        matches!(e, sealwright::reconcile::ReconcileError::Conflict(_)),
        "{e}"
    );
    assert!(e.to_string().contains(&second_pr), "{e}");

    // Pull request 2 holds exactly the change from v1 to v2, and merging it delivers v2.
    let number: u64 = second_pr.rsplit('/').next().unwrap().parse().unwrap();
    let repo = RepoRef::parse("platform/crm-platform").unwrap();
    let pr = host.github.pull_request(&repo, number).await.unwrap();
    let merged_2 = host
        .github
        .merge_pull_request(&repo, number, &pr.head_sha, "merge 2")
        .await
        .unwrap();
    r.poll_pull_requests().await;
    let view = sealwright::api::views::secret(&r.secret("crm", "api").unwrap());
    assert_eq!(view["committed"], json!(true), "{view}");
    assert_eq!(view["commit"], json!(merged_2), "{view}");
    assert_eq!(fake.violations(), Vec::<String>::new());
}
