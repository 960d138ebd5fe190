//! Drift on `sealwright serve`: files of sealwright's changed in the platform repo by someone
//! else (a hand deletion, a hand edit of `.sops.yaml`) are seen by the next round, written back
//! in a commit that says it restores drift and names the drifting commit and its author, and
//! recorded: a `drift.detected` event (who, which files, never a value), the app's `drift`
//! status and the `/metrics` counter. The real `sops` reads the restored file.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::server::{checkout, Server};
use common::*;
use serde_json::json;

const CONFIG: &str = "cluster:\n  name: e2e\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\nresync_interval: 1s\n";

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=Mallory Hand", "-c", "user.email=mallory@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

fn head(bare: &Path) -> String {
    git_in(bare, &["rev-parse", "main"]).trim().to_owned()
}

fn wait_for_commit_after(bare: &Path, after: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let h = head(bare);
        if h != after {
            return h;
        }
        assert!(Instant::now() < deadline, "no round restored the drift");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn drift_is_restored_named_and_recorded_not_swallowed() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(&tmp.path().join("srv"), CONFIG);
    server.start(&[]);
    let ok = |method: &str, path: &str, body: serde_json::Value| {
        let r = server.send(method, path, &body);
        assert!(r.status == 200 || r.status == 201, "{method} {path}: {} {}", r.status, r.text());
        r.json()
    };
    ok(
        "POST",
        "/v1/apps",
        json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "staging", "namespace": "shop-staging"}, {"name": "prod", "namespace": "shop-prod"}]}),
    );
    ok(
        "PUT",
        "/v1/apps/shop/secrets/database",
        json!({"targetNamespaces": ["shop-staging", "shop-prod"], "data": {"password": "drift-pw-1f2e3d"}}),
    );
    let bare = server.repo("platform/shop-platform");
    let file = "secrets/shop-staging/database.sops.yaml";
    let original = git_in(&bare, &["show", &format!("main:{file}")]);

    // A hand deletion.
    let team = checkout(&bare, &tmp.path().join("team"));
    git(&team, &["rm", "-q", file]);
    git(&team, &["commit", "-qm", "clean up staging by hand"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let drifting = head(&bare);
    let restored = wait_for_commit_after(&bare, &drifting);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &restored]);
    assert!(
        message.starts_with(&format!("shop: restore drift in {file}")),
        "{message}"
    );
    assert!(
        message.contains(&format!("drift from {} by Mallory Hand <mallory@example.com>", &drifting[..12])),
        "{message}"
    );
    let back = git_in(&bare, &["show", &format!("main:{file}")]);
    assert_eq!(back.lines().take(6).collect::<Vec<_>>(), original.lines().take(6).collect::<Vec<_>>());
    // The cluster's view: the key chain and the real sops open the restored Secret.
    let flux = checkout(&server.repo("platform/flux"), &tmp.path().join("flux"));
    let platform = checkout(&bare, &tmp.path().join("check"));
    let applied = common::flux::apply_like_flux(
        &flux,
        &std::collections::BTreeMap::from([("shop".to_string(), platform)]),
        &server.cluster_key(),
        &tmp.path().join("sim"),
    );
    let staging = &applied[&("shop".to_string(), "shop-staging".to_string(), "database".to_string())];
    assert_eq!(staging["password"], b"drift-pw-1f2e3d");

    // Recorded: the event, the status, the metric.
    let events = server.get("/v1/events?app=shop").json();
    let ev = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "drift.detected")
        .unwrap_or_else(|| panic!("no drift.detected event: {events}"));
    assert_eq!(ev["commit"], json!(drifting), "{ev}");
    assert_eq!(ev["secret"], json!("database"), "{ev}");
    assert!(ev["detail"].as_str().unwrap().contains("mallory@example.com"), "{ev}");
    let app = server.get("/v1/apps/shop").json();
    assert_eq!(app["drift"]["files"], json!([file]), "{app}");
    assert_eq!(app["drift"]["restoredIn"], json!(restored), "{app}");
    let metrics = server.get("/metrics").text();
    assert!(metrics.contains("sealwright_drift_detected_total 1"), "{metrics}");

    // A hand edit of .sops.yaml: restored too.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(team.join(".sops.yaml"), "creation_rules: []\n").unwrap();
    git(&team, &["commit", "-qam", "loosen the rules"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let edit = head(&bare);
    let restored = wait_for_commit_after(&bare, &edit);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &restored]);
    assert!(message.starts_with("shop: restore drift in .sops.yaml"), "{message}");
    assert!(git_in(&bare, &["show", "main:.sops.yaml"]).contains("creation_rules:\n  - path_regex"));

    // A commit of the team's own files is not drift: no round writes.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(team.join("notes.md"), "ours\n").unwrap();
    git(&team, &["add", "notes.md"]);
    git(&team, &["commit", "-qm", "notes"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let notes = head(&bare);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(head(&bare), notes, "nothing of sealwright's drifted");

    // No value in any of it.
    let logs = server.logs();
    for text in [&logs, &events.to_string(), &message] {
        assert!(!text.contains("drift-pw-1f2e3d"));
    }
}
