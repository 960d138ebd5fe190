//! Git benchmark (`cargo bench --bench git`): one commit of 1,000 new files, and one commit of a
//! single changed file in that 1,000-file tree, push included, by the engine (`GitEngine::apply`:
//! fetch, in-memory tree, commit, compare-and-swap push) and by the git CLI doing the same in a
//! working copy (write the files, `git add -A`, `git commit`, `git push`). Two transports: a local
//! bare repository, and smart HTTP with basic auth on loopback (`git http-backend`, as in the tests).
//! Each figure is the median of RUNS runs on a fresh target repository; the engine's cache and the
//! CLI's clone are made before the clock starts.

#[allow(dead_code)]
#[path = "../tests/e2e/common/git_servers.rs"]
mod git_servers;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use git_servers::{seed_bare_repo, HttpGitServer};
use sealwright::git::{ChangeSet, CommitMessage, Credentials, GitEngine, Identity, Remote};
use secrecy::SecretString;

const RUNS: usize = 9;
const FILES: usize = 1_000;

fn path_of(i: usize) -> String {
    format!("secrets/ns-{:02}/secret-{:03}.sops.yaml", i % 10, i / 10)
}

fn body(i: usize, round: usize) -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n  name: s{i}\ndata:\n  k: ENC[{round}]\n")
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["-c", "user.name=b", "-c", "user.email=b@example.com"])
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// repo name → (URL for the engine, URL for the git CLI).
type Urls = Box<dyn Fn(&str) -> (String, String)>;

struct Transport {
    name: &'static str,
    urls: Urls,
    credentials: Box<dyn Fn() -> Credentials>,
}

fn main() {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if filter.iter().any(|f| !"git".contains(f.as_str())) {
        return;
    }
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("repos");
    std::fs::create_dir_all(&root).unwrap();
    let server = HttpGitServer::start(&root, Some(("alice", "bench-pw")));
    let http_base = server.url("");
    let local_root = root.clone();
    let transports = vec![
        Transport {
            name: "local bare repo",
            urls: Box::new(move |repo| {
                let p = local_root.join(format!("{repo}.git")).display().to_string();
                (p.clone(), p)
            }),
            credentials: Box::new(|| Credentials::None),
        },
        Transport {
            name: "smart HTTP, basic auth",
            urls: Box::new(move |repo| {
                let url = http_base.replace(".git", "") + repo + ".git";
                let cli = url.replace("http://", "http://alice:bench-pw@");
                (url, cli)
            }),
            credentials: Box::new(|| Credentials::Basic {
                username: "alice".into(),
                password: SecretString::from("bench-pw".to_owned()),
            }),
        },
    ];
    let author = Identity::new("bench", "bench@example.com").unwrap();
    println!("git benchmark: median of {RUNS} runs, {FILES} files of ~90 B");
    for t in &transports {
        let mut engine_bulk = Vec::new();
        let mut engine_one = Vec::new();
        let mut cli_bulk = Vec::new();
        let mut cli_one = Vec::new();
        for run in 0..RUNS {
            // The engine.
            let name = format!("bench/engine-{}-{run}", t.name.len());
            seed_bare_repo(&root, &name, true);
            let (url, _) = (t.urls)(&name);
            let remote = Arc::new(Remote::new(&url, (t.credentials)()).unwrap());
            let engine = GitEngine::new(
                dir.path().join(format!("cache-{}-{run}", t.name.len())),
                author.clone(),
            );
            runtime
                .block_on(engine.read(remote.clone(), "main", |s| Ok(s.commit_id())))
                .unwrap();
            let mut all = ChangeSet::new();
            for i in 0..FILES {
                all.write(&path_of(i), body(i, 0)).unwrap();
            }
            let start = Instant::now();
            runtime
                .block_on(engine.apply(
                    remote.clone(),
                    "main",
                    all,
                    CommitMessage::new("bulk"),
                    &author,
                ))
                .unwrap();
            engine_bulk.push(start.elapsed());
            let mut one = ChangeSet::new();
            one.write(&path_of(FILES / 2), body(FILES / 2, 1)).unwrap();
            let start = Instant::now();
            runtime
                .block_on(engine.apply(remote, "main", one, CommitMessage::new("one"), &author))
                .unwrap();
            engine_one.push(start.elapsed());

            // The git CLI in a working copy.
            let name = format!("bench/cli-{}-{run}", t.name.len());
            seed_bare_repo(&root, &name, true);
            let (_, cli_url) = (t.urls)(&name);
            let work = dir.path().join(format!("work-{}-{run}", t.name.len()));
            let out = Command::new("git")
                .args(["clone", "-q", &cli_url])
                .arg(&work)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let start = Instant::now();
            for i in 0..FILES {
                let p = work.join(path_of(i));
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::write(p, body(i, 0)).unwrap();
            }
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-q", "-m", "bulk"]);
            git(&work, &["push", "-q", "origin", "HEAD:main"]);
            cli_bulk.push(start.elapsed());
            let start = Instant::now();
            std::fs::write(work.join(path_of(FILES / 2)), body(FILES / 2, 1)).unwrap();
            git(&work, &["add", "-A"]);
            git(&work, &["commit", "-q", "-m", "one"]);
            git(&work, &["push", "-q", "origin", "HEAD:main"]);
            cli_one.push(start.elapsed());
        }
        let ms = |d: Duration| format!("{:.1} ms", d.as_secs_f64() * 1e3);
        println!("{}:", t.name);
        println!(
            "  1,000 new files, one commit, pushed:  sealwright {:>9}   git CLI {:>9}",
            ms(median(engine_bulk)),
            ms(median(cli_bulk))
        );
        println!(
            "  1 changed file of 1,000, pushed:      sealwright {:>9}   git CLI {:>9}",
            ms(median(engine_one)),
            ms(median(cli_one))
        );
    }
}
