//! The Git engine against a real smart-HTTP Git server (`git http-backend` behind basic auth, started
//! by the test on loopback): commits and pushes, no-op applies, server-side refusals, bad
//! credentials, branches off a base, and three writers racing on one branch.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::git_in;
use common::git_servers::{install_hook, seed_bare_repo, HttpGitServer};
use sealwright::git::{
    change_ids_in, Applied, ChangeSet, CommitMessage, Credentials, GitEngine, GitError, Identity,
    Proposal, Remote, Target,
};
use secrecy::SecretString;

const USER: &str = "alice";
const PASSWORD: &str = "s3cret-pw-7f1c";

fn remote(server: &HttpGitServer, password: &str) -> Arc<Remote> {
    let creds = Credentials::Basic {
        username: USER.into(),
        password: SecretString::from(password.to_owned()),
    };
    Arc::new(Remote::new(&server.url("acme/shop-platform"), creds).unwrap())
}

fn engine(cache: &Path) -> GitEngine {
    GitEngine::new(
        cache,
        Identity::new("sealwright", "sealwright@example.com").unwrap(),
    )
    .with_clock(|| 1_700_000_000)
}

fn author() -> Identity {
    Identity::new("Platform Bot", "platform@example.com").unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    repo: std::path::PathBuf,
    cache: std::path::PathBuf,
    server: HttpGitServer,
}

fn setup(initial_commit: bool) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repos");
    let repo = seed_bare_repo(&root, "acme/shop-platform", initial_commit);
    let server = HttpGitServer::start(&root, Some((USER, PASSWORD)));
    let cache = dir.path().join("cache");
    Setup {
        _dir: dir,
        repo,
        cache,
        server,
    }
}

#[tokio::test]
async fn apply_commits_once_then_a_noop_makes_no_commit_and_no_push() {
    let s = setup(true);
    let engine = engine(&s.cache);
    let mut changes = ChangeSet::new();
    changes
        .write("secrets/shop/db.sops.yaml", "db: ENC[x]\n")
        .unwrap();
    changes
        .write("secrets/shop/api.sops.yaml", "api: ENC[y]\n")
        .unwrap();
    let message = CommitMessage::new("shop: add secrets db, api");
    let id = message.change_ids()[0].clone();
    let applied = engine
        .apply(
            remote(&s.server, PASSWORD),
            "main",
            changes.clone(),
            message.clone(),
            &author(),
        )
        .await
        .unwrap();
    let Applied::Committed { commit, attempts } = &applied else {
        panic!("expected a commit, got {applied:?}")
    };
    assert_eq!(*attempts, 1);
    assert_eq!(git_in(&s.repo, &["rev-parse", "main"]).trim(), commit);
    assert_eq!(
        git_in(&s.repo, &["show", "main:secrets/shop/db.sops.yaml"]),
        "db: ENC[x]\n"
    );
    assert_eq!(
        git_in(&s.repo, &["show", "main:README.md"]),
        "seed\n",
        "the parent's files stay"
    );
    let header = git_in(
        &s.repo,
        &["log", "-1", "--format=%an <%ae>|%cn <%ce>|%at|%P", "main"],
    );
    let seed = git_in(&s.repo, &["rev-parse", "main~1"]);
    assert_eq!(
        header.trim(),
        format!(
            "Platform Bot <platform@example.com>|sealwright <sealwright@example.com>|1700000000|{}",
            seed.trim()
        )
    );
    let body = git_in(&s.repo, &["log", "-1", "--format=%B", "main"]);
    assert_eq!(change_ids_in(&body), vec![id]);
    let pushes = s.server.receive_pack_posts();
    assert!(pushes >= 1);

    // Same change again: nothing to commit, nothing pushed.
    let again = engine
        .apply(
            remote(&s.server, PASSWORD),
            "main",
            changes,
            CommitMessage::new("again"),
            &author(),
        )
        .await
        .unwrap();
    assert_eq!(
        again,
        Applied::Unchanged {
            head: Some(commit.clone())
        }
    );
    assert_eq!(
        s.server.receive_pack_posts(),
        pushes,
        "a no-op apply must not push"
    );
    assert_eq!(
        git_in(&s.repo, &["rev-list", "--count", "main"]).trim(),
        "2"
    );

    // Deletes: the emptied folder disappears; reading shows the new tree.
    let mut delete = ChangeSet::new();
    delete.delete("secrets/shop/db.sops.yaml").unwrap();
    delete.delete("secrets/shop/api.sops.yaml").unwrap();
    engine
        .apply(
            remote(&s.server, PASSWORD),
            "main",
            delete,
            CommitMessage::new("shop: remove"),
            &author(),
        )
        .await
        .unwrap();
    let files = engine
        .read(remote(&s.server, PASSWORD), "main", |snap| {
            snap.files_under("")
        })
        .await
        .unwrap();
    assert_eq!(files.keys().collect::<Vec<_>>(), ["README.md"]);
}

#[tokio::test]
async fn first_commit_to_an_empty_repository_creates_the_branch() {
    let s = setup(false);
    let engine = engine(&s.cache);
    let mut changes = ChangeSet::new();
    changes.write(".sops.yaml", "creation_rules: []\n").unwrap();
    let applied = engine
        .apply(
            remote(&s.server, PASSWORD),
            "main",
            changes,
            CommitMessage::new("init"),
            &author(),
        )
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::Committed { attempts: 1, .. }),
        "{applied:?}"
    );
    assert_eq!(
        git_in(&s.repo, &["rev-list", "--count", "main"]).trim(),
        "1"
    );
    let missing = engine
        .read(remote(&s.server, PASSWORD), "nope", |snap| {
            Ok(snap.commit_id())
        })
        .await
        .unwrap();
    assert_eq!(missing, None);
}

#[tokio::test]
async fn a_new_branch_starts_from_its_base() {
    let s = setup(true);
    let engine = engine(&s.cache);
    let mut changes = ChangeSet::new();
    changes.write("secrets/shop/db.sops.yaml", "x\n").unwrap();
    let target = Target::new_branch("sealwright/sw-change-1", "main");
    let applied = engine
        .apply_with(
            remote(&s.server, PASSWORD),
            target,
            &author(),
            move |_snap| {
                Ok(Some(Proposal {
                    changes: changes.clone(),
                    message: CommitMessage::new("shop: add secret db"),
                }))
            },
        )
        .await
        .unwrap();
    let commit = applied.commit().unwrap().to_owned();
    assert_eq!(
        git_in(&s.repo, &["rev-parse", "sealwright/sw-change-1"]).trim(),
        commit
    );
    assert_eq!(
        git_in(&s.repo, &["rev-parse", &format!("{commit}~1")]),
        git_in(&s.repo, &["rev-parse", "main"])
    );
    // Nothing to change relative to main: no branch is created.
    let empty = engine
        .apply_with(
            remote(&s.server, PASSWORD),
            Target::new_branch("sealwright/sw-change-2", "main"),
            &author(),
            |_snap| {
                let mut same = ChangeSet::new();
                same.write("README.md", "seed\n")?;
                Ok(Some(Proposal {
                    changes: same,
                    message: CommitMessage::new("nothing"),
                }))
            },
        )
        .await
        .unwrap();
    assert_eq!(empty, Applied::Unchanged { head: None });
    let branches = git_in(&s.repo, &["branch", "--list"]);
    assert!(!branches.contains("sw-change-2"), "{branches}");
}

#[tokio::test]
async fn a_refusal_by_the_server_is_a_clear_error_and_is_not_retried() {
    let s = setup(true);
    install_hook(
        &s.repo,
        "pre-receive",
        "#!/bin/sh\necho 'refs/heads/main is protected' >&2\nexit 1\n",
    );
    let before = git_in(&s.repo, &["rev-parse", "main"]);
    let engine = engine(&s.cache);
    let mut changes = ChangeSet::new();
    changes.write("a.yaml", "a\n").unwrap();
    let err = engine
        .apply(
            remote(&s.server, PASSWORD),
            "main",
            changes,
            CommitMessage::new("x"),
            &author(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GitError::PushRejected { .. }), "{err:?}");
    assert!(
        text.contains("refused the push to main") && text.contains("refs/heads/main"),
        "{text}"
    );
    assert!(text.contains("pre-receive hook declined"), "{text}");
    assert_eq!(
        s.server.receive_pack_posts(),
        1,
        "a refusal on an unmoved branch is final"
    );
    assert_eq!(git_in(&s.repo, &["rev-parse", "main"]), before);
}

#[tokio::test]
async fn a_wrong_password_fails_fast_and_is_never_shown() {
    let s = setup(true);
    let engine = engine(&s.cache);
    let mut changes = ChangeSet::new();
    changes.write("a.yaml", "a\n").unwrap();
    let err = engine
        .apply(
            remote(&s.server, "wrong-pw-91b2"),
            "main",
            changes,
            CommitMessage::new("x"),
            &author(),
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, GitError::Auth { .. }), "{err:?}");
    assert!(
        text.contains("refused the credentials") && text.contains("acme/shop-platform"),
        "{text}"
    );
    assert!(!text.contains("wrong-pw-91b2") && !format!("{err:?}").contains("wrong-pw-91b2"));
    // libgit2 alone would replay 15 times; the capped callback stops after two answers.
    assert!(
        s.server.unauthorized() <= 3,
        "{} 401s",
        s.server.unauthorized()
    );
    assert_eq!(s.server.receive_pack_posts(), 0);
}

#[tokio::test]
async fn planner_errors_and_bad_paths_are_reported_with_the_branch() {
    let s = setup(true);
    let engine = engine(&s.cache);
    let err = engine
        .apply_with(
            remote(&s.server, PASSWORD),
            Target::branch("main"),
            &author(),
            |_snap| Err("render failed: apps[0].name is empty".into()),
        )
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "planning the change for branch main: render failed: apps[0].name is empty"
    );
    let err = engine
        .apply_with(
            remote(&s.server, PASSWORD),
            Target::branch("main"),
            &author(),
            |_snap| {
                let mut c = ChangeSet::new();
                c.write("README.md/inner", "x")?;
                Ok(Some(Proposal {
                    changes: c,
                    message: CommitMessage::new("x"),
                }))
            },
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"README.md\"") && err.contains("is a file"),
        "{err}"
    );
    let err = engine
        .apply(
            remote(&s.server, PASSWORD),
            "bad..branch",
            ChangeSet::new(),
            CommitMessage::new("x"),
            &author(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("branch"), "{err}");
}

/// Someone pushes while the planner runs: the compare-and-swap push notices, the engine fetches the
/// new tip and plans again there, and both changes survive.
#[tokio::test]
async fn a_branch_moved_while_planning_is_planned_again_on_the_new_tip() {
    let s = setup(true);
    let engine = engine(&s.cache);
    let repo = s.repo.clone();
    let mut calls = 0;
    let applied = engine
        .apply_with(
            remote(&s.server, PASSWORD),
            Target::branch("main"),
            &author(),
            move |snap| {
                calls += 1;
                if calls == 1 {
                    // Another writer commits `other.yaml` to main right now.
                    let work = tempfile::tempdir()?;
                    let w = work.path().to_str().unwrap();
                    for args in [
                        vec!["clone", "-q", repo.to_str().unwrap(), w],
                        vec![
                            "-C",
                            w,
                            "-c",
                            "user.name=o",
                            "-c",
                            "user.email=o@x",
                            "commit",
                            "-q",
                            "--allow-empty",
                            "-m",
                            "other",
                        ],
                    ] {
                        assert!(Command::new("git").args(&args).status()?.success());
                    }
                    std::fs::write(work.path().join("other.yaml"), "o\n")?;
                    for args in [
                        vec!["-C", w, "add", "other.yaml"],
                        vec![
                            "-C",
                            w,
                            "-c",
                            "user.name=o",
                            "-c",
                            "user.email=o@x",
                            "commit",
                            "-q",
                            "-m",
                            "other file",
                        ],
                        vec!["-C", w, "push", "-q", "origin", "HEAD:main"],
                    ] {
                        assert!(Command::new("git").args(&args).status()?.success());
                    }
                }
                assert_eq!(
                    snap.read("other.yaml")?.is_some(),
                    calls > 1,
                    "plan {calls} sees the tip it runs on"
                );
                let mut changes = ChangeSet::new();
                changes.write("mine.yaml", "m\n")?;
                Ok(Some(Proposal {
                    changes,
                    message: CommitMessage::new("mine"),
                }))
            },
        )
        .await
        .unwrap();
    assert!(
        matches!(applied, Applied::Committed { attempts: 2, .. }),
        "{applied:?}"
    );
    assert_eq!(git_in(&s.repo, &["show", "main:other.yaml"]), "o\n");
    assert_eq!(git_in(&s.repo, &["show", "main:mine.yaml"]), "m\n");
    assert_eq!(
        git_in(&s.repo, &["rev-list", "--min-parents=2", "--count", "main"]).trim(),
        "0"
    );
    assert_eq!(
        git_in(&s.repo, &["log", "-1", "--format=%s", "main"]).trim(),
        "mine"
    );
}
