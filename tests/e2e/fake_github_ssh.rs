//! The GitHub host against a FAKE GitHub REST API (no real GitHub is reachable here: the stand-in in
//! `common::fake_github` is stateful, works over real bare repositories, and checks every request
//! and response against GitHub's published OpenAPI schemas), together with a REAL sshd on loopback
//! whose forced-command authorized_keys make deploy keys per-repository and read-only or read-write,
//! as GitHub's are. Tests that touch the fake say `fake_github` in their names.

use crate::common;

use std::sync::Arc;

use common::fake_github::{FakeGitHub, FakeGitHubOptions};
use common::git_servers::SshGitServer;
use sealwright::git::{
    Applied, ChangeSet, CommitMessage, Credentials, GitEngine, GitError, HostKeys, Identity,
    Remote, Target,
};
use sealwright::host::{
    CommitStatus, DeployKeySpec, DeployKeyState, GitHost, GitHub, GitHubConfig, HostError,
    NewPullRequest, PullRequestState, RepoRef, StatusState,
};
use sealwright::keys::DeployKey;
use secrecy::SecretString;

const TOKEN: &str = "ghp_faketoken0123456789";

struct World {
    dir: tempfile::TempDir,
    ssh: SshGitServer,
    fake: FakeGitHub,
}

/// sshd plus the fake API sharing one repos folder; None (test skipped) without sshd.
fn world() -> Option<World> {
    let dir = tempfile::tempdir().unwrap();
    let repos = dir.path().join("repos");
    std::fs::create_dir_all(&repos).unwrap();
    let Some(ssh) = SshGitServer::start(&dir.path().join("sshd"), &repos) else {
        eprintln!("skipped: sshd is not available (scripts/test-deps.sh installs openssh-server)");
        return None;
    };
    let fake = FakeGitHub::start(FakeGitHubOptions {
        ops_json: common::shared().join("github-openapi/github-ops.json"),
        token: TOKEN.into(),
        repos_root: repos,
        user_login: "sealwright-bot".into(),
        ssh_url_prefix: Some(ssh.url_prefix()),
        clone_url_prefix: None,
        authorized_keys: Some(ssh.authorized_keys_path()),
        git_ssh_cmd: Some(ssh.git_ssh_cmd()),
    });
    Some(World { dir, ssh, fake })
}

fn github(world: &World, token: &str) -> GitHub {
    let mut config =
        GitHubConfig::new(&world.fake.base_url(), SecretString::from(token.to_owned()));
    config.user = Some("sealwright-bot".into());
    config.min_write_interval = std::time::Duration::ZERO;
    GitHub::new(config).unwrap()
}

fn engine(world: &World) -> GitEngine {
    GitEngine::new(
        world.dir.path().join("cache"),
        Identity::new("sealwright", "sealwright@example.com").unwrap(),
    )
}

fn ssh_remote(world: &World, url: &str, key: &DeployKey) -> Arc<Remote> {
    let remote = Remote::new(url, Credentials::SshKey(key.private_openssh())).unwrap();
    Arc::new(remote.with_host_keys(HostKeys::Pinned(vec![world.ssh.host_key_sha256()])))
}

fn author() -> Identity {
    Identity::new("Platform Bot", "platform@example.com").unwrap()
}

fn changes(path: &str, text: &str) -> ChangeSet {
    let mut c = ChangeSet::new();
    c.write(path, text).unwrap();
    c
}

#[tokio::test]
async fn fake_github_end_to_end_repo_key_ssh_push_pull_request_merge_fetch() {
    let Some(w) = world() else { return };
    let gh: Arc<dyn GitHost> = Arc::new(github(&w, TOKEN));
    let repo = RepoRef::new("acme", "shop-platform").unwrap();

    let hosted = gh.ensure_repo(&repo, "secrets of shop").await.unwrap();
    assert!(hosted.created && hosted.private, "{hosted:?}");
    assert_eq!(hosted.push_url, w.ssh.url("acme/shop-platform"));
    assert!(
        !gh.ensure_repo(&repo, "secrets of shop")
            .await
            .unwrap()
            .created,
        "idempotent"
    );

    let key = DeployKey::generate("shop-platform");
    let spec = DeployKeySpec {
        title: "sealwright shop".into(),
        public_key: key.public_openssh(),
        read_only: false,
    };
    let DeployKeyState::Added { id } = gh.ensure_deploy_key(&repo, &spec).await.unwrap() else {
        panic!("expected a new key")
    };
    assert_eq!(
        gh.ensure_deploy_key(&repo, &spec).await.unwrap(),
        DeployKeyState::Present { id }
    );
    assert_eq!(w.fake.deploy_keys("acme", "shop-platform").len(), 1);

    // Push the first commit over SSH with the deploy key, host key pinned.
    let engine = engine(&w);
    let remote = ssh_remote(&w, &hosted.push_url, &key);
    let first = engine
        .apply(
            remote.clone(),
            "main",
            changes(".sops.yaml", "creation_rules: []\n"),
            CommitMessage::new("init"),
            &author(),
        )
        .await
        .unwrap();
    assert!(matches!(first, Applied::Committed { .. }), "{first:?}");

    // A change as a pull request: branch off main, open, status, stale merge refused, merge.
    let branch = "sealwright/sw-shop-db";
    let pushed = engine
        .apply_with(
            remote.clone(),
            Target::new_branch(branch, "main"),
            &author(),
            |_snap| {
                Ok(Some(sealwright::git::Proposal {
                    changes: changes("secrets/shop/db.sops.yaml", "db: ENC[x]\n"),
                    message: CommitMessage::new("shop: add secret db in shop"),
                }))
            },
        )
        .await
        .unwrap();
    let head = pushed.commit().unwrap().to_owned();
    let new_pr = NewPullRequest {
        title: "shop: add secret db".into(),
        body: "Opened by sealwright.".into(),
        head: branch.into(),
        base: "main".into(),
    };
    let pr = gh.open_pull_request(&repo, &new_pr).await.unwrap();
    assert_eq!(
        (pr.state, pr.head_sha.as_str()),
        (PullRequestState::Open, head.as_str())
    );
    assert_eq!(
        gh.open_pull_request(&repo, &new_pr).await.unwrap().number,
        pr.number,
        "idempotent"
    );
    let status = CommitStatus {
        state: StatusState::Success,
        context: "sealwright/render".into(),
        description: "rendered and encrypted".into(),
        target_url: None,
    };
    gh.set_commit_status(&repo, &head, &status).await.unwrap();
    assert_eq!(
        w.fake.statuses("acme", "shop-platform", &head),
        vec![("sealwright/render".to_owned(), "success".to_owned())]
    );
    let stale = first.commit().unwrap();
    let err = gh
        .merge_pull_request(&repo, pr.number, stale, "merge")
        .await
        .unwrap_err();
    assert!(matches!(err, HostError::StaleHead { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&format!("#{}", pr.number)),
        "{err}"
    );
    let merged = gh
        .merge_pull_request(&repo, pr.number, &head, "shop: add secret db")
        .await
        .unwrap();
    let after = gh.pull_request(&repo, pr.number).await.unwrap();
    assert_eq!(after.state, PullRequestState::Merged);
    assert_eq!(after.merge_commit_sha.as_deref(), Some(merged.as_str()));

    // Fetch main over SSH: the squash merge is there.
    let (tip, db) = engine
        .read(remote.clone(), "main", |snap| {
            Ok((snap.commit_id(), snap.read("secrets/shop/db.sops.yaml")?))
        })
        .await
        .unwrap();
    assert_eq!(tip.as_deref(), Some(merged.as_str()));
    assert_eq!(db.as_deref(), Some(&b"db: ENC[x]\n"[..]));

    // Merging again is refused as GitHub does (405).
    let again = gh
        .merge_pull_request(&repo, pr.number, &head, "x")
        .await
        .unwrap_err();
    assert!(matches!(again, HostError::NotMergeable { .. }), "{again:?}");

    assert_eq!(
        w.fake.violations(),
        Vec::<String>::new(),
        "requests and responses must match GitHub's schemas"
    );
}

#[tokio::test]
async fn fake_github_read_only_deploy_key_can_fetch_but_not_push() {
    let Some(w) = world() else { return };
    let gh = github(&w, TOKEN);
    let repo = RepoRef::new("acme", "billing-platform").unwrap();
    let hosted = gh.ensure_repo(&repo, "").await.unwrap();
    let rw = DeployKey::generate("rw");
    let ro = DeployKey::generate("ro");
    for (key, read_only) in [(&rw, false), (&ro, true)] {
        let spec = DeployKeySpec {
            title: format!("read_only={read_only}"),
            public_key: key.public_openssh(),
            read_only,
        };
        gh.ensure_deploy_key(&repo, &spec).await.unwrap();
    }
    let engine = engine(&w);
    engine
        .apply(
            ssh_remote(&w, &hosted.push_url, &rw),
            "main",
            changes("a.yaml", "a\n"),
            CommitMessage::new("a"),
            &author(),
        )
        .await
        .unwrap();
    let ro_remote = ssh_remote(&w, &hosted.push_url, &ro);
    let files = engine
        .read(ro_remote.clone(), "main", |snap| snap.files_under(""))
        .await
        .unwrap();
    assert!(files.contains_key("a.yaml"));
    let err = engine
        .apply(
            ro_remote,
            "main",
            changes("b.yaml", "b\n"),
            CommitMessage::new("b"),
            &author(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("marked as read only"), "{text}");
    assert!(!text.contains("PRIVATE KEY"), "{text}");

    // Upgrading the key's access replaces it (GitHub deploy keys cannot be edited).
    let spec = DeployKeySpec {
        title: "now rw".into(),
        public_key: ro.public_openssh(),
        read_only: false,
    };
    assert!(matches!(
        gh.ensure_deploy_key(&repo, &spec).await.unwrap(),
        DeployKeyState::Replaced { .. }
    ));
    assert_eq!(w.fake.violations(), Vec::<String>::new());
}

#[tokio::test]
async fn ssh_host_keys_are_checked_by_pin_and_by_known_hosts() {
    let Some(w) = world() else { return };
    let gh = github(&w, TOKEN);
    let repo = RepoRef::new("acme", "pins").unwrap();
    let hosted = gh.ensure_repo(&repo, "").await.unwrap();
    let key = DeployKey::generate("k");
    let spec = DeployKeySpec {
        title: "k".into(),
        public_key: key.public_openssh(),
        read_only: true,
    };
    gh.ensure_deploy_key(&repo, &spec).await.unwrap();
    let engine = engine(&w);
    let with = |keys: HostKeys| {
        Arc::new(
            Remote::new(&hosted.push_url, Credentials::SshKey(key.private_openssh()))
                .unwrap()
                .with_host_keys(keys),
        )
    };
    let read = |remote: Arc<Remote>| engine.read(remote, "main", |snap| Ok(snap.commit_id()));

    let wrong_pin = HostKeys::Pinned(vec![
        "SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA".into()
    ]);
    let err = read(with(wrong_pin)).await.unwrap_err();
    assert!(matches!(err, GitError::HostKey { .. }), "{err:?}");
    assert!(
        err.to_string().contains(&w.ssh.host_key_sha256()),
        "names the key it saw: {err}"
    );

    assert_eq!(
        read(with(HostKeys::KnownHosts(w.ssh.known_hosts())))
            .await
            .unwrap(),
        None
    );
    let other_port = w.ssh.known_hosts().replace("]:", "]:1");
    let err = read(with(HostKeys::KnownHosts(other_port)))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not in known_hosts"), "{err}");
}

#[tokio::test]
async fn fake_github_rate_limits_are_waited_out_then_given_up() {
    let Some(w) = world() else { return };
    let gh = github(&w, TOKEN);
    let repo = RepoRef::new("acme", "limited").unwrap();
    w.fake.rate_limit_next(1, 403, 1);
    let hosted = gh.ensure_repo(&repo, "").await.unwrap();
    assert!(hosted.created);
    let statuses: Vec<u16> = w
        .fake
        .requests()
        .into_iter()
        .filter(|(m, _, _)| m == "POST")
        .map(|(_, _, s)| s)
        .collect();
    assert_eq!(
        statuses,
        vec![403, 201],
        "the limited create was retried once"
    );

    w.fake.rate_limit_next(10, 429, 1);
    let mut config = GitHubConfig::new(&w.fake.base_url(), SecretString::from(TOKEN.to_owned()));
    config.min_write_interval = std::time::Duration::ZERO;
    config.rate_limit_retries = 1;
    let impatient = GitHub::new(config).unwrap();
    let err = impatient
        .ensure_repo(&RepoRef::new("acme", "limited-2").unwrap(), "")
        .await
        .unwrap_err();
    assert!(
        matches!(err, HostError::RateLimited { attempts: 2, .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn fake_github_bad_token_is_a_clear_error_without_the_token() {
    let Some(w) = world() else { return };
    let gh = github(&w, "ghp_wrongtoken_5e3a");
    let err = gh
        .ensure_repo(&RepoRef::new("acme", "x").unwrap(), "")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        matches!(err, HostError::Unauthorized { status: 401, .. }),
        "{err:?}"
    );
    assert!(text.contains("Bad credentials"), "{text}");
    assert!(
        !text.contains("ghp_wrongtoken_5e3a")
            && !format!("{err:?}").contains("ghp_wrongtoken_5e3a")
    );
}
