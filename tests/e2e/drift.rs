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
        .args([
            "-c",
            "user.name=Mallory Hand",
            "-c",
            "user.email=mallory@example.com",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
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
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
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
        message.contains(&format!(
            "drift from {} by Mallory Hand <mallory@example.com>",
            &drifting[..12]
        )),
        "{message}"
    );
    let back = git_in(&bare, &["show", &format!("main:{file}")]);
    assert_eq!(
        back.lines().take(6).collect::<Vec<_>>(),
        original.lines().take(6).collect::<Vec<_>>()
    );
    // The cluster's view: the key chain and the real sops open the restored Secret.
    let flux = checkout(&server.repo("platform/flux"), &tmp.path().join("flux"));
    let platform = checkout(&bare, &tmp.path().join("check"));
    let applied = common::flux::apply_like_flux(
        &flux,
        &std::collections::BTreeMap::from([("shop".to_string(), platform)]),
        &server.cluster_key(),
        &tmp.path().join("sim"),
    );
    let staging = &applied[&(
        "shop".to_string(),
        "shop-staging".to_string(),
        "database".to_string(),
    )];
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
    assert!(
        ev["detail"]
            .as_str()
            .unwrap()
            .contains("mallory@example.com"),
        "{ev}"
    );
    let app = server.get("/v1/apps/shop").json();
    assert_eq!(app["drift"]["files"], json!([file]), "{app}");
    assert_eq!(app["drift"]["restoredIn"], json!(restored), "{app}");
    let metrics = server.get("/metrics").text();
    assert!(
        metrics.contains("sealwright_drift_detected_total 1"),
        "{metrics}"
    );

    // A hand edit of .sops.yaml: restored too.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(team.join(".sops.yaml"), "creation_rules: []\n").unwrap();
    git(&team, &["commit", "-qam", "loosen the rules"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let edit = head(&bare);
    let restored = wait_for_commit_after(&bare, &edit);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &restored]);
    assert!(
        message.starts_with("shop: restore drift in .sops.yaml"),
        "{message}"
    );
    assert!(git_in(&bare, &["show", "main:.sops.yaml"]).contains("creation_rules:\n  - path_regex"));

    // A hand edit made with the real sops and the app key: drift, undone.
    let key = tmp.path().join("sim/shop.agekey");
    assert!(
        key.exists(),
        "the app key, as the key chain gives it to the cluster"
    );
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    let sops_in = |args: &[&str]| {
        let out = Command::new(sops_bin())
            .env("SOPS_AGE_KEY_FILE", &key)
            .current_dir(&team)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "sops {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    sops_in(&[
        "set",
        "secrets/shop-prod/database.sops.yaml",
        r#"["data"]["password"]"#,
        r#""aGFuZC1lZGl0""#,
    ]);
    git(&team, &["add", "-A"]);
    git(&team, &["commit", "-qm", "edit prod by hand"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let edited = head(&bare);
    let restored = wait_for_commit_after(&bare, &edited);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &restored]);
    assert!(
        message.starts_with("shop: restore drift in secrets/shop-prod/database.sops.yaml"),
        "{message}"
    );
    let prod = checkout(&bare, &tmp.path().join("prod-check"));
    let dec = Command::new(sops_bin())
        .env("SOPS_AGE_KEY_FILE", &key)
        .current_dir(&prod)
        .args([
            "decrypt",
            "--extract",
            r#"["data"]["password"]"#,
            "secrets/shop-prod/database.sops.yaml",
        ])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&dec.stdout),
        "ZHJpZnQtcHctMWYyZTNk",
        "sealwright's value is back"
    );

    // A planted Secret file (encrypted with the app key, but not sealed by sealwright): drift,
    // reported, and kept as it is: it may be the only copy of something.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    let planted = team.join("secrets/shop-prod/planted.sops.yaml");
    std::fs::write(
        &planted,
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: planted\n  namespace: shop-prod\n  labels:\n    sealwright.dev/app: shop\n    sealwright.dev/secret: planted\ntype: Opaque\ndata:\n  token: cGxhbnRlZA==\n",
    )
    .unwrap();
    sops_in(&["encrypt", "-i", planted.to_str().unwrap()]);
    let planted_bytes = std::fs::read(&planted).unwrap();
    git(&team, &["add", "-A"]);
    git(&team, &["commit", "-qm", "plant a secret"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let planting = head(&bare);
    let after = wait_for_commit_after(&bare, &planting);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &after]);
    assert!(
        message.contains("kept, not sealed by sealwright: secrets/shop-prod/planted.sops.yaml"),
        "{message}"
    );
    assert_eq!(
        git_in(&bare, &["show", "main:secrets/shop-prod/planted.sops.yaml"]).as_bytes(),
        planted_bytes.as_slice()
    );
    let app = server.get("/v1/apps/shop").json();
    assert!(
        app["drift"]["files"].to_string().contains("planted"),
        "{app}"
    );

    // A commit of the team's own files is not drift: no round writes.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(team.join("notes.md"), "ours\n").unwrap();
    git(&team, &["add", "notes.md"]);
    git(&team, &["commit", "-qm", "notes"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let notes = head(&bare);
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(head(&bare), notes, "nothing of sealwright's drifted");

    // Changed while sealwright was not running: the first round after the start sees it too.
    server.stop();
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    git(&team, &["rm", "-q", "secrets/shop-prod/database.sops.yaml"]);
    git(&team, &["commit", "-qm", "drop prod while nobody looks"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let offline = head(&bare);
    server.start(&[]);
    let restored = wait_for_commit_after(&bare, &offline);
    let message = git_in(&bare, &["log", "-1", "--format=%B", &restored]);
    assert!(
        message.starts_with("shop: restore drift in secrets/shop-prod/database.sops.yaml"),
        "{message}"
    );
    assert!(message.contains(&offline[..12]), "{message}");
    let listed = server.get("/v1/apps/shop/secrets/database").json();
    assert_eq!(
        listed["namespaces"],
        json!(["shop-prod", "shop-staging"]),
        "{listed}"
    );

    // No value in any of it.
    let logs = server.logs();
    for text in [&logs, &events.to_string(), &message] {
        assert!(!text.contains("drift-pw-1f2e3d"));
    }
}

#[test]
fn report_holds_drift_for_an_admin_and_adopt_takes_the_repo_as_it_is() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(&tmp.path().join("srv"), CONFIG);
    server.start(&[]);
    let ok = |method: &str, path: &str, body: serde_json::Value| {
        let r = server.send(method, path, &body);
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    };
    for (app, policy) in [("held", "report"), ("taken", "adopt")] {
        ok(
            "POST",
            "/v1/apps",
            json!({"name": app, "tenant": "acme", "driftPolicy": policy,
                   "environments": [{"name": "prod", "namespace": format!("{app}-prod")}]}),
        );
        for s in ["database", "cache"] {
            ok(
                "PUT",
                &format!("/v1/apps/{app}/secrets/{s}"),
                json!({"targetNamespaces": [format!("{app}-prod")], "data": {"value": format!("{s}-v1-9a8b")}}),
            );
        }
    }
    assert_eq!(server.get("/v1/apps/held").json()["driftPolicy"], "report");
    let bad = server.send(
        "POST",
        "/v1/apps",
        &json!({"name": "x", "tenant": "acme", "driftPolicy": "ignore",
        "environments": [{"name": "prod", "namespace": "x-prod"}]}),
    );
    assert_eq!(bad.json()["field"], "driftPolicy", "{}", bad.text());

    // report: nothing is written, writes are a 409 naming the route, until an admin resolves.
    let bare = server.repo("platform/held-platform");
    let team = checkout(&bare, &tmp.path().join("held-team"));
    git(&team, &["rm", "-q", "secrets/held-prod/database.sops.yaml"]);
    git(&team, &["commit", "-qm", "drop the database by hand"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let drifting = head(&bare);
    let r = server.send(
        "PATCH",
        "/v1/apps/held/secrets/cache",
        &json!({"data": {"value": "cache-v2"}}),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("/v1/apps/held/drift/resolve"),
        "{}",
        r.text()
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(head(&bare), drifting, "report writes nothing");
    let app = server.get("/v1/apps/held").json();
    assert_eq!(app["drift"]["state"], "held", "{app}");
    assert_eq!(app["drift"]["commits"], json!([drifting]), "{app}");
    let events = server.get("/v1/events?app=held").json().to_string();
    assert_eq!(
        events.matches("drift.detected").count(),
        1,
        "one event, not one per round: {events}"
    );
    let bad = server.send(
        "POST",
        "/v1/apps/held/drift/resolve",
        &json!({"action": "ignore"}),
    );
    assert_eq!(bad.json()["field"], "action", "{}", bad.text());
    ok(
        "POST",
        "/v1/apps/held/drift/resolve",
        json!({"action": "restore"}),
    );
    let restored = head(&bare);
    assert_ne!(restored, drifting);
    assert!(git_in(&bare, &["ls-tree", "-r", "--name-only", "main"])
        .contains("secrets/held-prod/database.sops.yaml"));
    assert_eq!(
        server.get("/v1/apps/held").json()["drift"]["state"],
        "restored"
    );
    ok(
        "PATCH",
        "/v1/apps/held/secrets/cache",
        json!({"data": {"value": "cache-v2"}}),
    );
    let again = server.send(
        "POST",
        "/v1/apps/held/drift/resolve",
        &json!({"action": "adopt"}),
    );
    assert_eq!(again.status, 409, "nothing held any more: {}", again.text());

    // adopt: a hand deletion deletes the secret; a hand edit that decrypts is read back.
    let bare = server.repo("platform/taken-platform");
    let team = checkout(&bare, &tmp.path().join("taken-team"));
    let key = tmp.path().join("taken.agekey");
    {
        // The app key, as the cluster gets it (the key chain), to edit with the real sops.
        let flux = checkout(&server.repo("platform/flux"), &tmp.path().join("flux"));
        common::flux::apply_like_flux(
            &flux,
            &std::collections::BTreeMap::from([("taken".to_string(), team.clone())]),
            &server.cluster_key(),
            &tmp.path().join("sim"),
        );
        std::fs::copy(tmp.path().join("sim/taken.agekey"), &key).unwrap();
    }
    git(
        &team,
        &["rm", "-q", "secrets/taken-prod/database.sops.yaml"],
    );
    let cache = team.join("secrets/taken-prod/cache.sops.yaml");
    let out = Command::new(sops_bin())
        .env("SOPS_AGE_KEY_FILE", &key)
        .current_dir(&team)
        .args([
            "set",
            cache.to_str().unwrap(),
            r#"["data"]["value"]"#,
            r#""Y2FjaGUtYnktaGFuZA==""#,
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    git(
        &team,
        &["commit", "-qam", "drop the database, set the cache by hand"],
    );
    git(&team, &["push", "-q", "origin", "main"]);
    let r = server.send(
        "PATCH",
        "/v1/apps/taken/secrets/cache",
        &json!({"data": {"extra": "x"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let listed = server.get("/v1/apps/taken/secrets").json();
    let names: Vec<&str> = listed["secrets"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["cache"], "the hand deletion is adopted: {listed}");
    let cache = server
        .get("/v1/apps/taken/secrets/cache?reveal=true")
        .json();
    assert_eq!(cache["data"]["value"], "cache-by-hand", "{cache}");
    assert_eq!(cache["data"]["extra"], "x", "the write went on top");
    let events = server.get("/v1/events?app=taken").json().to_string();
    assert!(events.contains("drift.adopted"), "{events}");
    assert_eq!(
        server.get("/v1/apps/taken").json()["drift"]["state"],
        "adopted"
    );
}
