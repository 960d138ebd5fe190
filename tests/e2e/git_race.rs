//! Several writers on one branch at once, each with its own bare cache as separate replicas would
//! have, pushing to the same bare repository through libgit2's local transport (real pushes with
//! real ref locking; fast enough that 150 commits race for real rather than take turns).

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use common::git_in;
use common::git_servers::{seed_bare_repo, HttpGitServer};
use sealwright::git::{
    change_ids_in, Applied, ChangeSet, CommitMessage, Credentials, GitEngine, Identity, Proposal,
    Remote, RetryPolicy, Target,
};
use secrecy::SecretString;

fn author() -> Identity {
    Identity::new("Platform Bot", "platform@example.com").unwrap()
}

/// Three writers, each with its own cache (as three replicas would be), apply 50 changes each to the
/// same branch at the same time, through libgit2's local transport. Each change writes its own file
/// and increments a shared counter file, which only comes out right if every lost race re-plans on
/// the new tip.
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_racing_writers_lose_nothing_and_keep_history_linear() {
    let dir = tempfile::tempdir().unwrap();
    let repo = dir.path().join("shop-platform.git");
    assert!(Command::new("git")
        .args(["init", "-q", "--bare", "-b", "main"])
        .arg(&repo)
        .status()
        .unwrap()
        .success());
    let remote = Arc::new(Remote::local(&repo).unwrap());
    let switches = race(dir.path(), &repo, remote, 50, 20).await;
    assert!(
        switches >= 10,
        "writers took turns instead of racing: {switches} switches"
    );
}

/// The same race through a smart-HTTP server with basic auth, where the compare-and-swap is the push
/// negotiation plus receive-pack's own old-value check. (Fewer changes: each costs several HTTP
/// round trips, each spawning `git http-backend`.)
#[tokio::test(flavor = "multi_thread", worker_threads = 3)]
async fn three_racing_writers_over_http_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repos");
    let repo = seed_bare_repo(&root, "acme/shop-platform", false);
    let server = HttpGitServer::start(&root, Some(("alice", "pw-4d1e")));
    let creds = Credentials::Basic {
        username: "alice".into(),
        password: SecretString::from("pw-4d1e".to_owned()),
    };
    let remote = Arc::new(Remote::new(&server.url("acme/shop-platform"), creds).unwrap());
    race(dir.path(), &repo, remote, 20, 150).await;
}

/// Runs the race and checks the history; returns how often consecutive commits come from different writers.
async fn race(
    dir: &Path,
    repo: &Path,
    remote: Arc<Remote>,
    changes_each: usize,
    max_pause_ms: u64,
) -> usize {
    const WRITERS: usize = 3;
    let repo = repo.to_path_buf();
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let engine = Arc::new(
            GitEngine::new(
                dir.join(format!("cache-{w}")),
                Identity::new("sealwright", "sealwright@example.com").unwrap(),
            )
            .with_retry(RetryPolicy {
                max_attempts: 60,
                base_delay: Duration::from_millis(5),
                max_delay: Duration::from_millis(150),
            }),
        );
        let remote = remote.clone();
        tasks.push(tokio::spawn(async move {
            let mut ids = Vec::new();
            let mut contended = 0;
            for c in 0..changes_each {
                // Changes arrive at random moments, as API requests do. In a tight loop the last
                // winner, whose cache already holds the tip, would win every round and the writers
                // would take turns rather than race (optimistic concurrency has no fairness; the
                // reconciler's group commit keeps real loops far from that).
                tokio::time::sleep(Duration::from_millis(rand::random::<u64>() % max_pause_ms))
                    .await;
                let message = CommitMessage::new(&format!("writer {w} change {c}"));
                ids.push(message.change_ids()[0].clone());
                let path = format!("changes/w{w}/{c:03}.txt");
                let applied = engine
                    .apply_with(
                        remote.clone(),
                        Target::branch("main"),
                        &author(),
                        move |snap| {
                            let count: u64 = match snap.read("counter")? {
                                Some(bytes) => String::from_utf8(bytes)?.trim().parse()?,
                                None => 0,
                            };
                            let mut changes = ChangeSet::new();
                            changes.write(&path, format!("{w}/{c}\n"))?;
                            changes.write("counter", format!("{}\n", count + 1))?;
                            Ok(Some(Proposal {
                                changes,
                                message: message.clone(),
                            }))
                        },
                    )
                    .await
                    .unwrap_or_else(|e| panic!("writer {w} change {c}: {e}"));
                match applied {
                    Applied::Committed { attempts, .. } => contended += (attempts > 1) as usize,
                    other => panic!("writer {w} change {c}: {other:?}"),
                }
            }
            (ids, contended)
        }));
    }
    let mut expected = Vec::new();
    let mut contended = 0;
    for t in tasks {
        let (ids, c) = t.await.unwrap();
        expected.extend(ids);
        contended += c;
    }
    let total = WRITERS * changes_each;
    assert_eq!(
        git_in(&repo, &["show", "main:counter"]).trim(),
        total.to_string()
    );
    assert_eq!(
        git_in(&repo, &["rev-list", "--count", "main"]).trim(),
        total.to_string()
    );
    assert_eq!(
        git_in(&repo, &["rev-list", "--min-parents=2", "--count", "main"]).trim(),
        "0"
    );
    // The writers really interleaved: history is not three blocks, one per writer.
    let subjects = git_in(&repo, &["log", "--format=%s", "main"]);
    let order: Vec<&str> = subjects
        .lines()
        .filter_map(|l| l.strip_prefix("writer "))
        .map(|l| &l[..1])
        .collect();
    let switches = order.windows(2).filter(|p| p[0] != p[1]).count();
    let log = git_in(&repo, &["log", "--format=%B%x00", "main"]);
    let mut seen: Vec<_> = log.split('\0').flat_map(change_ids_in).collect();
    seen.sort();
    expected.sort();
    assert_eq!(seen, expected, "every change exactly once");
    let files = git_in(&repo, &["ls-tree", "-r", "--name-only", "main", "changes/"]);
    assert_eq!(files.lines().count(), total);
    println!(
        "{contended} of {total} changes needed more than one push; {switches} writer switches"
    );
    switches
}
