//! Secrets never reach the logs: every tracing event the Git engine and the GitHub host emit (at
//! TRACE, from every thread) is captured while they handle a password, a token, an SSH key and
//! secret-bearing file contents, and none of those appear — on success and on failure.

use crate::common;

use std::io::Write;
use std::sync::{Arc, Mutex};

use common::fake_github::{FakeGitHub, FakeGitHubOptions};
use common::git_servers::{seed_bare_repo, HttpGitServer};
use sealwright::git::{ChangeSet, CommitMessage, Credentials, GitEngine, Identity, Remote};
use sealwright::host::{GitHost, GitHub, GitHubConfig, RepoRef};
use secrecy::SecretString;

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    // Global (nextest runs each test in its own process): git2 work happens on blocking-pool threads.
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();

    let password = "pw-LOGCHECK-31337";
    let wrong = "pw-WRONG-LOGCHECK-4242";
    let token = "ghp_LOGCHECK_token_9876";
    let content = "password: VALUE-LOGCHECK-5150\n";

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("repos");
    seed_bare_repo(&root, "acme/shop-platform", true);
    let server = HttpGitServer::start(&root, Some(("alice", password)));
    let engine = GitEngine::new(
        dir.path().join("cache"),
        Identity::new("sw", "sw@example.com").unwrap(),
    );
    let remote = |pw: &str| {
        let creds = Credentials::Basic {
            username: "alice".into(),
            password: SecretString::from(pw.to_owned()),
        };
        Arc::new(Remote::new(&server.url("acme/shop-platform"), creds).unwrap())
    };
    let mut changes = ChangeSet::new();
    changes.write("secrets/shop/db.yaml", content).unwrap();
    let author = Identity::new("a", "a@example.com").unwrap();
    engine
        .apply(
            remote(password),
            "main",
            changes.clone(),
            CommitMessage::new("db"),
            &author,
        )
        .await
        .unwrap();
    let failed = engine
        .apply(
            remote(wrong),
            "main",
            changes,
            CommitMessage::new("db"),
            &author,
        )
        .await
        .unwrap_err();
    tracing::error!(error = %failed, "apply failed");

    let fake = FakeGitHub::start(FakeGitHubOptions {
        ops_json: common::shared().join("github-openapi/github-ops.json"),
        token: token.into(),
        repos_root: dir.path().join("gh"),
        user_login: "bot".into(),
        ..Default::default()
    });
    let mut config = GitHubConfig::new(&fake.base_url(), SecretString::from(token.to_owned()));
    config.min_write_interval = std::time::Duration::ZERO;
    let gh = GitHub::new(config).unwrap();
    gh.ensure_repo(&RepoRef::new("acme", "x").unwrap(), "")
        .await
        .unwrap();
    let mut bad = GitHubConfig::new(&fake.base_url(), SecretString::from(format!("{token}-bad")));
    bad.min_write_interval = std::time::Duration::ZERO;
    let err = GitHub::new(bad)
        .unwrap()
        .ensure_repo(&RepoRef::new("acme", "y").unwrap(), "")
        .await
        .unwrap_err();
    tracing::error!(error = %err, "host failed");

    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("pushed"), "the capture works: {logs}");
    for secret in [password, wrong, token, "VALUE-LOGCHECK-5150"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
    }
}
