//! `sealwright serve` with the GitHub host: the real binary against a FAKE GitHub REST API (no real
//! GitHub is reachable here; `common::fake_github` is stateful, works over real bare repositories
//! and checks every request and response against GitHub's published OpenAPI schemas), with the
//! repositories served by a REAL Git smart-HTTP server on loopback that wants the token as basic
//! auth, as github.com does. After every delivered change the cluster is played by `kubectl
//! kustomize` and the real `sops` on checkouts. Tests that touch the fake say `fake_github`.
//!
//! One app takes commits; the other takes pull requests, which a reviewer merges or closes
//! through the fake, and which sealwright learns about from a signed webhook, from its poll, and
//! after a restart.

use crate::common;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::fake_github::{FakeGitHub, FakeGitHubOptions};
use common::flux::{apply_like_flux, Applied};
use common::git_servers::HttpGitServer;
use common::http;
use common::server::{checkout, Server};
use common::*;
use serde_json::{json, Value};

const TOKEN: &str = "ghp_fake0token0for0serve0e2e";
const HOOK_SECRET: &str = "whsec-3f9a-serve-e2e";
/// GitHub's published ed25519 host key: what the Flux GitRepositories are told to expect.
const KNOWN_HOSTS: &str =
    "github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";
const VALUES: &[&str] = &[
    "gh-pw-71e0c4d2",
    "gh-pw-0b5a9e33",
    "gh-key-c4c4c4c4",
    "gh-tok-99aa11bb",
];

struct World {
    tmp: tempfile::TempDir,
    repos: PathBuf,
    fake: FakeGitHub,
    _git: HttpGitServer,
    server: Server,
}

impl World {
    fn start() -> World {
        let tmp = tempfile::tempdir().unwrap();
        let repos = tmp.path().join("github");
        std::fs::create_dir_all(&repos).unwrap();
        let git = HttpGitServer::start(&repos, Some(("x-access-token", TOKEN)));
        let fake = FakeGitHub::start(FakeGitHubOptions {
            ops_json: shared().join("github-openapi/github-ops.json"),
            token: TOKEN.into(),
            repos_root: repos.clone(),
            user_login: "sealwright-bot".into(),
            ssh_url_prefix: None,
            clone_url_prefix: Some(format!("http://127.0.0.1:{}/", git.port())),
            authorized_keys: None,
            git_ssh_cmd: None,
        });
        let server = Server::new(&tmp.path().join("srv"), &config(&fake, "1h"));
        World {
            tmp,
            repos,
            fake,
            _git: git,
            server,
        }
    }

    fn run(&mut self) {
        self.server.start(&[
            ("SEALWRIGHT_GITHUB_TOKEN", TOKEN),
            ("SEALWRIGHT_WEBHOOK_SECRET", HOOK_SECRET),
        ]);
    }

    fn bare(&self, repo: &str) -> PathBuf {
        self.repos.join(format!("{repo}.git"))
    }

    fn ok(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = match body {
            Some(b) => self.server.send(method, path, &b),
            None => self.server.get(path),
        };
        assert!(
            (200..300).contains(&r.status),
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    fn flux_check(&self, apps: &[&str]) -> Applied {
        let work = self.tmp.path().join("checkouts");
        let flux = checkout(&self.bare("platform/flux"), &work.join("flux"));
        let mut platform = BTreeMap::new();
        for app in apps {
            let dir = checkout(
                &self.bare(&format!("platform/{app}-platform")),
                &work.join(format!("{app}-platform")),
            );
            platform.insert(app.to_string(), dir);
        }
        apply_like_flux(
            &flux,
            &platform,
            &self.server.cluster_key(),
            &work.join("sim"),
        )
    }

    /// What a reviewer does on github.com: squash-merge the pull request.
    fn merge(&self, repo: &str, number: u64) -> String {
        let addr = self.fake.base_url();
        let addr = addr
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let r = http::send(
            &addr,
            "PUT",
            &format!("/repos/{repo}/pulls/{number}/merge"),
            Some(TOKEN),
            &json!({"merge_method": "squash"}),
        );
        assert_eq!(r.status, 200, "merge: {}", r.text());
        r.json()["sha"].as_str().unwrap().to_string()
    }

    fn webhook(&self, body: &Value, signature: Option<String>) -> http::Response {
        let bytes = serde_json::to_vec(body).unwrap();
        let mut headers = vec![("x-github-event".to_string(), "pull_request".to_string())];
        if let Some(sig) = signature {
            headers.push(("x-hub-signature-256".to_string(), sig));
        }
        http::raw(
            &self.server.addr,
            "POST",
            "/v1/webhooks/github",
            &headers,
            &bytes,
        )
    }

    fn branches(&self, repo: &str) -> Vec<String> {
        git_in(
            &self.bare(repo),
            &["for-each-ref", "--format=%(refname:short)", "refs/heads"],
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }
}

fn config(fake: &FakeGitHub, poll: &str) -> String {
    format!(
        "cluster:\n  name: e2e\nhost:\n  kind: github\n  api_url: {}\n  owner: platform\n  min_write_interval: 0s\n  known_hosts: '{KNOWN_HOSTS}'\nflux_repo: platform/flux\npull_request_poll_interval: {poll}\n",
        fake.base_url()
    )
}

fn sign(body: &Value, secret: &str) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(&serde_json::to_vec(body).unwrap());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

fn value(applied: &Applied, app: &str, ns: &str, name: &str, key: &str) -> Option<String> {
    applied
        .get(&(app.to_string(), ns.to_string(), name.to_string()))
        .and_then(|d| d.get(key))
        .map(|v| String::from_utf8(v.clone()).unwrap())
}

fn number_of(url: &str) -> u64 {
    url.rsplit('/').next().unwrap().parse().unwrap()
}

fn wait_for(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn no_values_in(what: &str, text: &str) {
    for v in VALUES {
        assert!(!text.contains(v), "{what} contains the value {v}");
    }
}

#[test]
fn serve_on_fake_github_over_http_git_commits_and_pull_requests_settled_by_webhook_poll_and_restart(
) {
    let mut w = World::start();
    w.run();

    // Two apps: one takes commits, one takes pull requests.
    for (name, delivery) in [("shop", "commit"), ("crm", "pull-request")] {
        let app = w.ok(
            "POST",
            "/v1/apps",
            Some(json!({"name": name, "tenant": "acme", "delivery": delivery,
                "environments": [{"name": "prod", "namespace": format!("{name}-prod")}]})),
        );
        assert_eq!(app["ready"], json!(true), "{app}");
        assert_eq!(app["delivery"], json!(delivery), "{app}");
        // sealwright pushes over HTTP with the token; Flux reads over SSH with the deploy key.
        let url = app["platformRepo"].as_str().unwrap();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        assert_eq!(
            w.fake
                .deploy_keys("platform", &format!("{name}-platform"))
                .len(),
            1
        );
        assert!(
            w.fake.deploy_keys("platform", &format!("{name}-platform"))[0].2,
            "read-only"
        );
    }
    let applied = w.flux_check(&["shop", "crm"]);
    assert!(applied.is_empty(), "no secrets yet: {applied:?}");

    // Commit delivery: the write is on main when answered.
    let ack = w.ok(
        "PUT",
        "/v1/apps/shop/secrets/db",
        Some(json!({"targetNamespaces": ["shop-prod"], "data": {"password": VALUES[0]}})),
    );
    assert_eq!(ack["committed"], json!(true), "{ack}");
    let commit = ack["commit"].as_str().unwrap().to_string();
    assert_eq!(
        git_in(&w.bare("platform/shop-platform"), &["rev-parse", "main"]).trim(),
        commit
    );
    let applied = w.flux_check(&["shop", "crm"]);
    assert_eq!(
        value(&applied, "shop", "shop-prod", "db", "password").as_deref(),
        Some(VALUES[0])
    );

    // Pull-request delivery: answered with the pull request; main does not move.
    let crm_main = git_in(&w.bare("platform/crm-platform"), &["rev-parse", "main"]);
    let ack = w.ok(
        "PUT",
        "/v1/apps/crm/secrets/api",
        Some(json!({"targetNamespaces": ["crm-prod"], "data": {"key": VALUES[1]}})),
    );
    assert_eq!(ack["committed"], json!(false), "{ack}");
    assert!(ack.get("commit").is_none(), "{ack}");
    let pr_url = ack["pullRequest"].as_str().unwrap().to_string();
    let ack2 = w.ok(
        "PATCH",
        "/v1/apps/crm/secrets/api",
        Some(json!({"data": {"token": VALUES[2]}})),
    );
    assert_eq!(
        ack2["pullRequest"].as_str(),
        Some(pr_url.as_str()),
        "one pull request: {ack2}"
    );
    assert_eq!(
        git_in(&w.bare("platform/crm-platform"), &["rev-parse", "main"]),
        crm_main
    );
    let view = w.ok("GET", "/v1/apps/crm/secrets/api", None);
    assert_eq!(view["committed"], json!(false), "{view}");
    assert_eq!(view["pendingChange"], json!("create"), "{view}");
    assert_eq!(view["pullRequest"].as_str(), Some(pr_url.as_str()));
    assert_eq!(view["keys"], json!(["key", "token"]));
    let app = w.ok("GET", "/v1/apps/crm", None);
    assert_eq!(app["pullRequest"].as_str(), Some(pr_url.as_str()), "{app}");
    let applied = w.flux_check(&["shop", "crm"]);
    assert_eq!(
        value(&applied, "crm", "crm-prod", "api", "key"),
        None,
        "not merged yet"
    );
    let branches = w.branches("platform/crm-platform");
    let pr_branch = branches
        .iter()
        .find(|b| b.starts_with("sealwright/"))
        .unwrap_or_else(|| panic!("no pull request branch: {branches:?}"))
        .clone();

    // A reviewer pushes to sealwright's branch and deletes a file of sealwright's: drift, written
    // back on the branch by the next round and reported on the pull request.
    let review = w.tmp.path().join("review");
    let out = std::process::Command::new("git")
        .args(["clone", "-q", "--branch", &pr_branch])
        .arg(w.bare("platform/crm-platform"))
        .arg(&review)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for args in [
        &["rm", "-q", "secrets/crm-prod/api.sops.yaml"][..],
        &[
            "-c",
            "user.name=Rita Reviewer",
            "-c",
            "user.email=rita@example.com",
            "commit",
            "-qm",
            "not this one",
        ],
        &["push", "-q", "origin", &pr_branch],
    ] {
        let out = std::process::Command::new("git")
            .args(args)
            .current_dir(&review)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let reviewer = git_in(&w.bare("platform/crm-platform"), &["rev-parse", &pr_branch]);
    let reviewer = reviewer.trim();
    w.ok(
        "PATCH",
        "/v1/apps/crm/secrets/api",
        Some(json!({"data": {"token": VALUES[2]}})),
    );
    let restored = git_in(&w.bare("platform/crm-platform"), &["rev-parse", &pr_branch]);
    let restored = restored.trim();
    assert_ne!(restored, reviewer, "written back on the branch");
    let message = git_in(
        &w.bare("platform/crm-platform"),
        &["log", "-1", "--format=%B", restored],
    );
    assert!(
        message.contains(&format!(
            "drift from {} by Rita Reviewer <rita@example.com>",
            &reviewer[..12]
        )),
        "{message}"
    );
    assert!(git_in(
        &w.bare("platform/crm-platform"),
        &["ls-tree", "-r", "--name-only", restored]
    )
    .contains("secrets/crm-prod/api.sops.yaml"));
    let statuses = w.fake.statuses("platform", "crm-platform", restored);
    assert!(
        statuses
            .iter()
            .any(|(c, s)| c == "sealwright/drift" && s == "failure"),
        "{statuses:?}"
    );

    // A reviewer merges it; the webhook says so. Unsigned or badly signed deliveries are refused.
    let merge_sha = w.merge("platform/crm-platform", number_of(&pr_url));
    let hook = json!({"action": "closed", "number": number_of(&pr_url),
        "pull_request": {"number": number_of(&pr_url), "merged": true},
        "repository": {"full_name": "platform/crm-platform"}});
    assert_eq!(w.webhook(&hook, None).status, 401);
    assert_eq!(
        w.webhook(&hook, Some(sign(&hook, "wrong-secret"))).status,
        401
    );
    let still = w.ok("GET", "/v1/apps/crm/secrets/api", None);
    assert_eq!(
        still["committed"],
        json!(false),
        "a refused delivery changes nothing: {still}"
    );
    let r = w.webhook(&hook, Some(sign(&hook, HOOK_SECRET)));
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["app"], json!("crm"));
    let view = w.ok("GET", "/v1/apps/crm/secrets/api", None);
    assert_eq!(view["committed"], json!(true), "{view}");
    assert_eq!(view["commit"].as_str(), Some(merge_sha.as_str()), "{view}");
    assert_eq!(view["pullRequest"], Value::Null, "{view}");
    let app = w.ok("GET", "/v1/apps/crm", None);
    assert_eq!(app["pullRequest"], Value::Null, "{app}");
    assert_eq!(
        app["lastCommit"].as_str(),
        Some(merge_sha.as_str()),
        "{app}"
    );
    assert!(
        !w.branches("platform/crm-platform").contains(&pr_branch),
        "the merged branch is deleted"
    );
    let applied = w.flux_check(&["shop", "crm"]);
    assert_eq!(
        value(&applied, "crm", "crm-prod", "api", "key").as_deref(),
        Some(VALUES[1])
    );
    assert_eq!(
        value(&applied, "crm", "crm-prod", "api", "token").as_deref(),
        Some(VALUES[2])
    );

    // The next change opens a new pull request; a reviewer closes it unmerged. After a restart
    // (with a quick poll) sealwright finds it open, then learns it was closed, and drops it.
    let ack = w.ok(
        "PATCH",
        "/v1/apps/crm/secrets/api",
        Some(json!({"data": {"key": VALUES[3]}})),
    );
    let second = ack["pullRequest"].as_str().unwrap().to_string();
    assert_ne!(second, pr_url);
    w.server.stop();
    std::fs::write(&w.server.config, config(&w.fake, "1s")).unwrap();
    w.run();
    let view = w.ok("GET", "/v1/apps/crm/secrets/api", None);
    assert_eq!(
        view["pullRequest"].as_str(),
        Some(second.as_str()),
        "found after restart: {view}"
    );
    assert_eq!(view["pendingChange"], json!("update"), "{view}");
    assert!(w
        .fake
        .close_pull("platform", "crm-platform", number_of(&second)));
    wait_for("the poll to see the closed pull request", || {
        w.ok("GET", "/v1/apps/crm/secrets/api", None)["pullRequest"].is_null()
    });
    let view = w.ok("GET", "/v1/apps/crm/secrets/api", None);
    assert_eq!(view["committed"], json!(true), "{view}");
    assert_eq!(view["commit"].as_str(), Some(merge_sha.as_str()), "{view}");
    let revealed = w.ok("GET", "/v1/apps/crm/secrets/api?reveal=true", None);
    assert_eq!(
        revealed["data"]["key"],
        json!(VALUES[1]),
        "the closed change is dropped"
    );

    // And a third, merged while only the poll is listening.
    let ack = w.ok(
        "PATCH",
        "/v1/apps/crm/secrets/api",
        Some(json!({"data": {"key": VALUES[3]}})),
    );
    let third = ack["pullRequest"].as_str().unwrap().to_string();
    assert!(third != second && third != pr_url, "{third}");
    let merged = w.merge("platform/crm-platform", number_of(&third));
    wait_for("the poll to see the merge", || {
        w.ok("GET", "/v1/apps/crm/secrets/api", None)["commit"].as_str() == Some(merged.as_str())
    });
    let applied = w.flux_check(&["shop", "crm"]);
    assert_eq!(
        value(&applied, "crm", "crm-prod", "api", "key").as_deref(),
        Some(VALUES[3])
    );

    // The audit trail has the whole story; nothing anywhere holds a value.
    let events = w.ok("GET", "/v1/events?limit=1000", None);
    let actions: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["app"] == json!("crm"))
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "app.created",
            "secret.created",
            "secret.updated",
            "drift.detected",
            "pull_request.merged",
            "secret.updated",
            "pull_request.closed",
            "secret.revealed",
            "secret.updated",
            "pull_request.merged"
        ],
        "{events}"
    );
    no_values_in("events", &events.to_string());
    no_values_in("logs", &w.server.logs());
    for repo in [
        "platform/crm-platform",
        "platform/shop-platform",
        "platform/flux",
    ] {
        let log = git_in(&w.bare(repo), &["log", "--all", "--format=%B"]);
        no_values_in(&format!("{repo} commit messages"), &log);
    }
    assert_eq!(w.fake.violations(), Vec::<String>::new());
}
