//! The tenant boundary and the never-destroy guarantee, against the running `sealwright serve`
//! binary on the embedded default (real bare Git repos on this machine, the real key chain):
//! every route a tenant can call × every kind of namespace, the rendered RBAC, and the faults
//! (lost and corrupt keys, a lost platform repo, a lost state repo, a corrupt blob, a torn event
//! log) after which every stored file is byte-identical and the server says what is wrong.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::flux::docs;
use common::http;
use common::server::{checkout, Server, ADMIN};
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = "cluster:\n  name: b\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\nreserved_namespaces: [vault]\ntenants:\n  acme: {namespaces: [\"acme-*\"]}\n";

fn call(s: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> http::Response {
    match body {
        Some(b) => http::send(&s.addr, method, path, Some(token), &b),
        None => http::request(&s.addr, method, path, Some(token), None),
    }
}

fn ok(s: &Server, token: &str, method: &str, path: &str, body: Option<Value>) -> Value {
    let r = call(s, token, method, path, body);
    assert!(
        r.status == 200 || r.status == 201,
        "{method} {path}: {} {}",
        r.status,
        r.text()
    );
    r.json()
}

fn tenant_key(s: &Server, tenant: &str) -> String {
    ok(
        s,
        ADMIN,
        "POST",
        &format!("/v1/tenants/{tenant}/api-keys"),
        None,
    )["key"]
        .as_str()
        .unwrap()
        .to_owned()
}

fn app(name: &str, tenant: &str, namespaces: &[&str]) -> Value {
    let envs: Vec<Value> = namespaces
        .iter()
        .enumerate()
        .map(|(i, ns)| json!({"name": format!("e{i}"), "namespace": ns}))
        .collect();
    json!({"name": name, "tenant": tenant, "environments": envs})
}

/// Three tenants' apps: acme's `shop` (acme-prod), globex's `depot` (globex-prod), and initech's
/// `tps` (initech-a, initech-b), each with a secret.
fn three_tenants(s: &Server) -> (String, String) {
    let acme = tenant_key(s, "acme");
    let globex = tenant_key(s, "globex");
    ok(
        s,
        &acme,
        "POST",
        "/v1/apps",
        Some(app("shop", "acme", &["acme-prod"])),
    );
    ok(
        s,
        &globex,
        "POST",
        "/v1/apps",
        Some(app("depot", "globex", &["globex-prod"])),
    );
    ok(
        s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("tps", "initech", &["initech-a", "initech-b"])),
    );
    for (token, a, ns) in [
        (&acme, "shop", vec!["acme-prod"]),
        (&globex, "depot", vec!["globex-prod"]),
        (&ADMIN.to_owned(), "tps", vec!["initech-a", "initech-b"]),
    ] {
        ok(
            s,
            token,
            "PUT",
            &format!("/v1/apps/{a}/secrets/db"),
            Some(json!({"targetNamespaces": ns, "data": {"password": format!("pw-{a}-7f3e")}})),
        );
    }
    (acme, globex)
}

#[test]
fn every_tenant_route_against_every_kind_of_namespace() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    let (acme, _globex) = three_tenants(&s);

    // The namespace kinds, from acme's point of view.
    let own = "acme-prod";
    let kinds: [(&str, &str); 5] = [
        ("own", own),
        ("reserved", "flux-system"),
        ("another tenant's", "globex-prod"),
        ("unclaimed", "acme-new"),
        ("outside acme's patterns", "zeta-prod"),
    ];
    let reserved_too = [
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "default",
        "sealwright-system",
        "vault",
    ];

    // app create: (status, reason) per kind. One owner per namespace: even acme's own is taken.
    for (i, (kind, ns)) in kinds.iter().enumerate() {
        let r = call(
            &s,
            &acme,
            "POST",
            "/v1/apps",
            Some(app(&format!("new{i}"), "acme", &[ns])),
        );
        let want = match *kind {
            "own" => 409,
            "reserved" => 422,
            "unclaimed" => 201,
            // Outside acme's patterns, before it is even asked who holds it.
            _ => 403,
        };
        assert_eq!(r.status, want, "app create into {kind} {ns}: {}", r.text());
        let body = r.json();
        if want != 201 {
            assert_eq!(body["field"], "environments[0].namespace", "{kind}: {body}");
        }
        if *kind == "reserved" {
            assert_eq!(body["reason"], "reserved");
        }
    }
    // A tenant without patterns (globex) reaching for acme's namespace: taken, and the body
    // names neither the app nor the tenant that holds it.
    let r = call(
        &s,
        &_globex,
        "POST",
        "/v1/apps",
        Some(app("grab", "globex", &[own])),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let text = r.text();
    assert!(
        !text.contains("shop") && !text.replace("acme-prod", "").contains("acme"),
        "{text}"
    );
    assert!(r.json().get("owner").is_none(), "{text}");
    for ns in reserved_too {
        let r = call(
            &s,
            ADMIN,
            "POST",
            "/v1/apps",
            Some(app("sys", "acme", &[ns])),
        );
        assert_eq!(
            (r.status, r.json()["reason"].clone()),
            (422, json!("reserved")),
            "{ns}"
        );
    }
    // An admin is shown who holds a taken namespace.
    let r = call(
        &s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("dup", "acme", &["globex-prod"])),
    );
    assert_eq!(r.status, 409);
    assert_eq!(
        r.json()["owner"],
        json!({"app": "depot", "tenant": "globex"})
    );

    // app update: the same rules through PUT /v1/apps/{app}.
    for (kind, ns) in kinds.iter() {
        let mut namespaces = vec![own];
        if *ns != own {
            namespaces.push(ns);
        }
        let r = call(
            &s,
            &acme,
            "PUT",
            "/v1/apps/shop",
            Some(app("shop", "acme", &namespaces)),
        );
        let want = match *kind {
            "own" => 200,
            "reserved" => 422,
            "unclaimed" => 409, // new3 took acme-new above
            _ => 403,
        };
        assert_eq!(r.status, want, "app update into {kind} {ns}: {}", r.text());
    }
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/apps/shop",
        Some(app("shop", "globex", &[own])),
    );
    assert_eq!(
        r.status,
        422,
        "an app does not change tenants: {}",
        r.text()
    );

    // secret put, deployment put: only the app's own namespaces, whatever the kind.
    for (kind, ns) in kinds.iter() {
        let r = call(
            &s,
            &acme,
            "PUT",
            "/v1/apps/shop/secrets/probe",
            Some(json!({"targetNamespaces": [ns], "data": {"k": "v"}})),
        );
        assert_eq!(
            r.status,
            if *kind == "own" { 200 } else { 422 },
            "secret into {kind}: {}",
            r.text()
        );
        let r = call(
            &s,
            &acme,
            "PUT",
            "/v1/deployments/7d3f2a90-0c1e-4b6a-9f00-00000000000a",
            Some(
                json!({"name": "web", "app": "shop", "environment": "e0", "clusterId": "c1", "namespace": ns}),
            ),
        );
        let want: &[u16] = if *kind == "own" { &[200, 201] } else { &[422] };
        assert!(
            want.contains(&r.status),
            "deployment into {kind}: {} {}",
            r.status,
            r.text()
        );
    }
    // The cluster's own credentials are never a target: Secret types outside the allowlist.
    for t in [
        "bootstrap.kubernetes.io/token",
        "kubernetes.io/service-account-token",
    ] {
        let r = call(
            &s,
            ADMIN,
            "PUT",
            "/v1/apps/shop/secrets/bootstrap-token-abcdef",
            Some(json!({"targetNamespaces": [own], "type": t, "data": {"token-id": "abcdef"}})),
        );
        assert_eq!(
            (r.status, r.json()["field"].clone()),
            (422, json!("type")),
            "{t}"
        );
    }
    // Generated names are reserved: a managed secret over a deployment's credentials and the
    // reverse are 409s naming both sides, and nothing is acknowledged.
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/apps/shop/secrets/web-credentials",
        Some(json!({"targetNamespaces": [own], "data": {"k": "v"}})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    assert!(
        r.text().contains("deployment \\\"web\\\"") && r.text().contains("web-credentials"),
        "{}",
        r.text()
    );
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/deployments/7d3f2a90-0c1e-4b6a-9f00-00000000000b",
        Some(
            json!({"name": "db", "app": "shop", "environment": "e0", "clusterId": "c1", "namespace": own}),
        ),
    );
    assert_eq!(r.status, 201, "db-credentials is free: {}", r.text());
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/deployments/7d3f2a90-0c1e-4b6a-9f00-00000000000c",
        Some(
            json!({"name": "web", "app": "shop", "environment": "e0", "clusterId": "c1", "namespace": own}),
        ),
    );
    assert_eq!(r.status, 409, "two deployments, one Secret: {}", r.text());
    ok(
        &s,
        &acme,
        "PUT",
        "/v1/apps/shop/secrets/cache",
        Some(
            json!({"targetNamespaces": [own], "targetName": "api-credentials", "data": {"k": "v"}}),
        ),
    );
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/deployments/7d3f2a90-0c1e-4b6a-9f00-00000000000d",
        Some(
            json!({"name": "api", "app": "shop", "environment": "e0", "clusterId": "c1", "namespace": own}),
        ),
    );
    assert_eq!(
        r.status,
        409,
        "a deployment over a managed secret: {}",
        r.text()
    );
    assert!(r.text().contains("cache"), "{}", r.text());
    let r = call(
        &s,
        &acme,
        "PUT",
        "/v1/apps/shop/secrets/x",
        Some(
            json!({"targetNamespaces": [own], "targetName": "app-shop-external-secrets", "data": {"k": "v"}}),
        ),
    );
    assert_eq!(r.status, 409, "{}", r.text());

    // External secrets reach the app's own namespaces only.
    ok(
        &s,
        &acme,
        "PUT",
        "/v1/apps/shop/external-secrets/openai",
        Some(json!({"OPENAI_API_KEY": "sk-1"})),
    );
    let work = tmp.path().join("work");
    let shop = checkout(&s.repo("platform/shop-platform"), &work.join("shop"));
    let folders: Vec<String> = std::fs::read_dir(shop.join("secrets"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_dir())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(folders, [own], "shop's files stay in its namespaces");
    assert!(shop
        .join("secrets/acme-prod/app-shop-external-secrets.sops.yaml")
        .exists());

    // A tenant sees no server paths.
    let apps = ok(&s, &acme, "GET", "/v1/apps", None);
    for a in apps["apps"].as_array().unwrap() {
        assert!(
            a["platformRepo"].is_null() && a["fluxRepo"].is_null(),
            "{a}"
        );
    }
    assert!(!apps.to_string().contains(s.data.to_str().unwrap()));

    // RBAC follows the boundary: from the rendered Flux repo alone.
    let flux = checkout(&s.repo("platform/flux"), &work.join("flux"));
    rbac_stays_inside(
        &flux,
        "flux-system",
        &BTreeMap::from([
            ("shop", vec!["acme-prod"]),
            ("depot", vec!["globex-prod"]),
            ("tps", vec!["initech-a", "initech-b"]),
            ("new3", vec!["acme-new"]),
        ]),
    );
}

/// Every Role and RoleBinding of every app's folder is in one of that app's namespaces, binds
/// only that app's ServiceAccount or that namespace's own ServiceAccounts, and every Kustomization
/// applies as the app's ServiceAccount: no subject of one app gets a verb in another app's
/// namespace, the Flux namespace or a reserved one.
fn rbac_stays_inside(flux: &Path, flux_ns: &str, apps: &BTreeMap<&str, Vec<&str>>) {
    let reserved = [
        "flux-system",
        "kube-system",
        "kube-public",
        "kube-node-lease",
        "default",
        "sealwright-system",
        "vault",
    ];
    for (app, namespaces) in apps {
        let dir = flux.join(format!("apps/{app}-platform"));
        let rbac =
            std::fs::read(dir.join("rbac.yaml")).unwrap_or_else(|_| panic!("{app} has rbac.yaml"));
        let mut grants = 0;
        for d in docs(&rbac) {
            let kind = common::flux::s(&d, &["kind"]).unwrap_or("").to_owned();
            let ns = common::flux::s(&d, &["metadata", "namespace"])
                .unwrap_or("")
                .to_owned();
            match kind.as_str() {
                "Role" | "RoleBinding" => {
                    grants += 1;
                    assert!(namespaces.contains(&ns.as_str()), "{app}: {kind} in {ns}");
                    assert!(
                        !reserved.contains(&ns.as_str()) && ns != flux_ns,
                        "{app}: {kind} in {ns}"
                    );
                    if kind == "RoleBinding" {
                        let Some(sops::Value::Seq(subjects)) = d.get("subjects") else {
                            panic!("{app}: a RoleBinding without subjects")
                        };
                        for sub in subjects {
                            let sub = sub.as_map().unwrap();
                            let name = common::flux::s(sub, &["name"]).unwrap();
                            assert!(
                                name == format!("{app}-platform")
                                    || name == format!("{app}-environments")
                                    || name == format!("{app}-deployer")
                                    || name == format!("system:serviceaccounts:{ns}"),
                                "{app}: {kind} in {ns} binds {name}"
                            );
                        }
                    }
                }
                // The sync's and the environments' in Flux's namespace, a deployer in each of
                // the app's.
                "ServiceAccount" => assert!(
                    ns == flux_ns || namespaces.contains(&ns.as_str()),
                    "{app}: ServiceAccount in {ns}"
                ),
                "Namespace" => {}
                other => panic!("{app}: rbac.yaml holds a {other}"),
            }
        }
        assert!(grants >= 2 * namespaces.len(), "{app}: {grants} grants");
        let sync = std::fs::read(dir.join("sync.yaml")).unwrap();
        for d in docs(&sync) {
            let sa = common::flux::s(&d, &["spec", "serviceAccountName"]);
            assert!(
                sa == Some(format!("{app}-platform").as_str())
                    || sa == Some(format!("{app}-environments").as_str()),
                "{app}: {sa:?}"
            );
            assert!(common::flux::s(&d, &["spec", "targetNamespace"]).is_none());
        }
    }
}

/// Every file of every repository (and the keys): what a fault must leave byte for byte.
fn snapshot(s: &Server) -> BTreeMap<String, Vec<u8>> {
    files_under(&s.data.join("repos"))
}

fn assert_kept(
    before: &BTreeMap<String, Vec<u8>>,
    after: &BTreeMap<String, Vec<u8>>,
    except: &str,
) {
    for (path, bytes) in before {
        if !except.is_empty() && path.starts_with(except) {
            continue;
        }
        assert!(after.get(path) == Some(bytes), "{path} changed or went");
    }
}

fn head(s: &Server, repo: &str) -> String {
    git_in(&s.repo(repo), &["rev-parse", "main"])
        .trim()
        .to_owned()
}

fn app_view(s: &Server, name: &str) -> Value {
    ok(s, ADMIN, "GET", &format!("/v1/apps/{name}"), None)
}

fn recover(s: &Server, app: &str) -> std::process::Output {
    Command::new(sealwright_bin())
        .args(["keys", "recover", "--app", app, "--cluster-identity"])
        .arg(s.cluster_key())
        .arg("--config")
        .arg(&s.config)
        .arg("--data-dir")
        .arg(&s.data)
        .output()
        .unwrap()
}

#[test]
fn a_lost_or_corrupt_key_fails_the_app_and_keys_recover_restores_it() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    three_tenants(&s);
    for i in 0..5 {
        ok(
            &s,
            ADMIN,
            "PUT",
            &format!("/v1/apps/shop/secrets/s{i}"),
            Some(json!({"targetNamespaces": ["acme-prod"], "data": {"k": format!("v{i}")}})),
        );
    }
    let key = s.data.join("keys/shop.agekey");
    let original = std::fs::read(&key).unwrap();
    for fault in ["deleted", "corrupt"] {
        s.stop();
        let before = snapshot(&s);
        let (shop_head, flux_head) = (
            head(&s, "platform/shop-platform"),
            head(&s, "platform/flux"),
        );
        match fault {
            "deleted" => std::fs::remove_file(&key).unwrap(),
            _ => std::fs::write(&key, b"AGE-SECRET-KEY-1NOTAKEY\n").unwrap(),
        }
        s.start(&[]);
        let v = app_view(&s, "shop");
        assert_eq!(v["status"], "failed", "{fault}: {v}");
        let errors = v["errors"].to_string();
        assert!(errors.contains("shop.agekey"), "{fault}: {errors}");
        if fault == "deleted" {
            assert!(errors.contains("sealwright keys recover"), "{errors}");
        }
        // Writes wait for the key: 503, nothing stored.
        let r = call(
            &s,
            ADMIN,
            "PUT",
            "/v1/apps/shop/secrets/s9",
            Some(json!({"targetNamespaces": ["acme-prod"], "data": {"k": "v"}})),
        );
        assert_eq!(r.status, 503, "{fault}: {}", r.text());
        // A full round (the resync) and a retry later: still nothing touched.
        std::thread::sleep(Duration::from_secs(3));
        s.stop();
        assert_kept(&before, &snapshot(&s), "");
        assert_eq!(head(&s, "platform/shop-platform"), shop_head);
        assert_eq!(head(&s, "platform/flux"), flux_head);
        // doctor names the way back.
        let doctor = Command::new(sealwright_bin())
            .args(["doctor", "--config"])
            .arg(&s.config)
            .arg("--data-dir")
            .arg(&s.data)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&doctor.stdout);
        assert!(
            !doctor.status.success() && text.contains("FAIL  app shop"),
            "{text}"
        );
        let out = recover(&s, "shop");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let k = std::fs::read_to_string(&key).unwrap();
        let o = String::from_utf8_lossy(&original);
        assert_eq!(k.lines().last(), o.lines().last(), "the same key");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
            0o600
        );
        if fault == "corrupt" {
            assert!(String::from_utf8_lossy(&out.stdout).contains("moved aside"));
        }
        // Recovered: ready again, and the next round commits nothing.
        s.start(&[]);
        assert_eq!(app_view(&s, "shop")["status"], "ready");
        assert_eq!(
            head(&s, "platform/shop-platform"),
            shop_head,
            "{fault}: no commit after recovery"
        );
        assert_eq!(head(&s, "platform/flux"), flux_head);
        let secrets = ok(&s, ADMIN, "GET", "/v1/apps/shop/secrets", None);
        assert_eq!(secrets["secrets"].as_array().unwrap().len(), 6);
    }
}

#[test]
fn a_lost_platform_repo_a_corrupt_blob_and_a_lost_state_repo_are_named_never_recreated_empty() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    three_tenants(&s);
    s.stop();

    // A platform repo gone: named, the Flux folder and RBAC of the app untouched.
    let before = snapshot(&s);
    let depot = s.repo("platform/depot-platform");
    let saved = tmp.path().join("depot-backup.git");
    std::fs::rename(&depot, &saved).unwrap();
    s.start(&[]);
    let v = app_view(&s, "depot");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["errors"].to_string().contains("depot-platform"), "{v}");
    assert_eq!(app_view(&s, "shop")["status"], "ready", "other apps go on");
    s.stop();
    assert_kept(&before, &snapshot(&s), "platform/depot-platform.git");
    // Restored from the backup: ready, nothing committed.
    std::fs::remove_dir_all(&depot).unwrap();
    std::fs::rename(&saved, &depot).unwrap();
    s.start(&[]);
    assert_eq!(app_view(&s, "depot")["status"], "ready");
    s.stop();
    assert_eq!(snapshot(&s), before);

    // A corrupt blob in a platform repo: the app fails, its Flux folder is kept as it is.
    let shop = s.repo("platform/shop-platform");
    let blob = git_in(&shop, &["rev-parse", "main:secrets/acme-prod/db.sops.yaml"])
        .trim()
        .to_owned();
    let object = shop.join("objects").join(&blob[..2]).join(&blob[2..]);
    let good = std::fs::read(&object).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&object, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&object, b"not a git object").unwrap();
    let before = snapshot(&s);
    s.start(&[]);
    let v = app_view(&s, "shop");
    assert_eq!(v["status"], "failed", "{v}");
    s.stop();
    assert_eq!(
        snapshot(&s),
        before,
        "nothing rewritten over an unreadable repo"
    );
    std::fs::write(&object, good).unwrap();

    // The state repo gone while the Flux repo lists apps: the server refuses to start.
    let before = snapshot(&s);
    let state = s.data.join("state.git");
    std::fs::rename(&state, tmp.path().join("state-backup.git")).unwrap();
    let out = Command::new(sealwright_bin())
        .env("SEALWRIGHT_ADMIN_TOKEN", ADMIN)
        .args(["serve", "--config"])
        .arg(&s.config)
        .arg("--data-dir")
        .arg(&s.data)
        .args(["--listen", &s.addr])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "started over a lost state repo");
    assert!(
        err.contains("state repo") && err.contains("restore"),
        "{err}"
    );
    assert_kept(&before, &snapshot(&s), "");
    let _ = std::fs::remove_dir_all(&state);
    std::fs::rename(tmp.path().join("state-backup.git"), &state).unwrap();
    s.start(&[]);
    let apps = ok(&s, ADMIN, "GET", "/v1/apps", None);
    assert_eq!(apps["apps"].as_array().unwrap().len(), 3);
}

#[test]
fn the_audit_log_is_bounded_against_bad_tokens_and_survives_a_torn_line() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    let log = s.data.join("events.jsonl");
    let size = std::fs::metadata(&log).unwrap().len();
    for _ in 0..300 {
        let r = http::get(&s.addr, "/v1/apps", Some("not-a-real-token"));
        assert_eq!(r.status, 401);
    }
    let refused: Vec<Value> = ok(&s, ADMIN, "GET", "/v1/events", None)["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "auth.refused")
        .cloned()
        .collect();
    assert_eq!(
        refused.len(),
        1,
        "one event per address per minute: {refused:?}"
    );
    assert!(std::fs::metadata(&log).unwrap().len() - size < 2_000);
    let metrics = http::get(&s.addr, "/metrics", None).text();
    assert!(
        metrics.contains("sealwright_auth_refused_total 300"),
        "{metrics}"
    );
    // A token with whitespace around it is not the token.
    for header in [format!("Bearer  {ADMIN}"), format!("Bearer {ADMIN} x")] {
        let r = http::raw(
            &s.addr,
            "GET",
            "/v1/apps",
            &[("Authorization".into(), header)],
            b"",
        );
        assert_eq!(r.status, 401);
    }
    // Bad query strings are 422 JSON like every other bad input.
    let r = http::get(&s.addr, "/v1/events?after=soon", Some(ADMIN));
    assert_eq!((r.status, r.json()["field"].clone()), (422, json!("query")));
    // Duplicate keys are refused, naming the key.
    let r = http::request(
        &s.addr,
        "POST",
        "/v1/apps",
        Some(ADMIN),
        Some(br#"{"name": "a", "name": "b"}"#),
    );
    assert_eq!(r.status, 422);
    assert!(r.text().contains("appears twice"), "{}", r.text());

    ok(
        &s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("shop", "acme", &["acme-prod"])),
    );
    s.kill();
    let last_id = std::fs::read_to_string(&log)
        .unwrap()
        .lines()
        .last()
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["id"]
                .as_u64()
                .unwrap()
        })
        .unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
        f.write_all(br#"{"id": 999, "actor": "admin", "act"#)
            .unwrap();
    }
    s.start(&[]);
    ok(&s, ADMIN, "DELETE", "/v1/apps/shop", None);
    let events = ok(&s, ADMIN, "GET", "/v1/events", None)["events"]
        .as_array()
        .unwrap()
        .clone();
    let deleted = events
        .iter()
        .find(|e| e["action"] == "app.deleted")
        .unwrap();
    assert!(deleted["id"].as_u64().unwrap() > last_id, "ids go on");
    // The torn line is gone, every line is one whole event, and no id is used twice.
    let text = std::fs::read_to_string(&log).unwrap();
    let mut ids = Vec::new();
    for line in text.lines() {
        let e = serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{line}: {e}"));
        ids.push(e["id"].as_u64().unwrap());
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(!ids.contains(&999));
    // Everything under the data dir is the server's alone.
    use std::os::unix::fs::PermissionsExt;
    for d in [
        "",
        "keys",
        "repos",
        "state.git",
        "repos/platform",
        "repos/platform/flux.git",
        "repos/platform/flux.git/objects",
    ] {
        let mode = std::fs::metadata(s.data.join(d))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode & 0o077, 0, "{d}: {mode:o}");
    }
}

#[test]
fn limits_are_enforced_at_the_edge_naming_the_limit() {
    let tmp = tempfile::tempdir().unwrap();
    let config =
        format!("{CONFIG}limits: {{keys_per_secret: 10, secrets_per_app: 3, body_bytes: 4096}}\n");
    let mut s = Server::new(&tmp.path().join("srv"), &config);
    s.start(&[]);
    ok(
        &s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("shop", "acme", &["acme-prod"])),
    );
    let many: serde_json::Map<String, Value> =
        (0..11).map(|i| (format!("k{i}"), json!("v"))).collect();
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop/secrets/big",
        Some(json!({"targetNamespaces": ["acme-prod"], "data": many})),
    );
    assert_eq!(r.status, 422);
    assert!(r.text().contains("limits.keys_per_secret"), "{}", r.text());
    for i in 0..3 {
        ok(
            &s,
            ADMIN,
            "PUT",
            &format!("/v1/apps/shop/secrets/s{i}"),
            Some(json!({"targetNamespaces": ["acme-prod"], "data": {"k": "v"}})),
        );
    }
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop/secrets/s3",
        Some(json!({"targetNamespaces": ["acme-prod"], "data": {"k": "v"}})),
    );
    assert_eq!(r.status, 422);
    assert!(r.text().contains("limits.secrets_per_app"), "{}", r.text());
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop/secrets/s0",
        Some(json!({"targetNamespaces": ["acme-prod"], "data": {"k": "x".repeat(5000)}})),
    );
    assert_eq!(r.status, 422);
    assert!(r.text().contains("limits.body_bytes"), "{}", r.text());
    let r = call(
        &s,
        ADMIN,
        "PATCH",
        "/v1/apps/shop/secrets/s0",
        Some(json!({"data": many})),
    );
    assert_eq!(
        r.status,
        422,
        "a patch is held to the limit too: {}",
        r.text()
    );
    assert_eq!(
        ok(&s, ADMIN, "GET", "/v1/apps/shop/secrets", None)["secrets"]
            .as_array()
            .unwrap()
            .len(),
        3
    );
}

/// Commits `text` as `path` into the bare repository `repo` with the git CLI (as a person, or an
/// older sealwright, would have).
fn commit_file(repo: &Path, work: &Path, path: &str, text: &str) {
    let _ = std::fs::remove_dir_all(work);
    let git = |args: &[&str], cwd: &Path| {
        let out = Command::new("git")
            .args(args)
            .current_dir(cwd)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    git(
        &[
            "clone",
            "-q",
            repo.to_str().unwrap(),
            work.to_str().unwrap(),
        ],
        Path::new("/"),
    );
    std::fs::write(work.join(path), text).unwrap();
    git(
        &[
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "commit",
            "-qam",
            "edit",
        ],
        work,
    );
    git(&["push", "-q", "origin", "HEAD:main"], work);
}

#[test]
fn a_registration_stored_before_the_boundary_fails_loudly_and_gets_no_rbac_there() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    ok(
        &s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("legacy", "acme", &["acme-prod"])),
    );
    ok(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/legacy/secrets/db",
        Some(json!({"targetNamespaces": ["acme-prod"], "data": {"password": "pw-legacy"}})),
    );
    s.stop();
    // What an older sealwright accepted: an environment in flux-system.
    let record = "name: legacy\ntenant: acme\nenvironments:\n  - name: e0\n    namespace: acme-prod\n  - name: e1\n    namespace: flux-system\ndelivery: commit\nsource: api\n";
    commit_file(
        &s.data.join("state.git"),
        &tmp.path().join("state-work"),
        "apps/legacy.yaml",
        record,
    );
    let platform_before = files_under(&s.repo("platform/legacy-platform"));
    s.start(&[]);
    let v = app_view(&s, "legacy");
    assert_eq!(v["status"], "failed", "{v}");
    assert!(v["errors"].to_string().contains("reserved"), "{v}");
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/legacy/secrets/db",
        Some(json!({"targetNamespaces": ["acme-prod"], "data": {"password": "pw-2"}})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/legacy/secrets/sops-age",
        Some(json!({"targetNamespaces": ["flux-system"], "data": {"age.agekey": "x"}})),
    );
    assert_eq!(r.status, 409, "{}", r.text());
    s.stop();
    assert_eq!(
        files_under(&s.repo("platform/legacy-platform")),
        platform_before,
        "nothing written for it"
    );
    let flux = checkout(&s.repo("platform/flux"), &tmp.path().join("flux"));
    rbac_stays_inside(
        &flux,
        "flux-system",
        &BTreeMap::from([("legacy", vec!["acme-prod"])]),
    );
    // Fixing the registration (the directory or PUT) brings it back.
    s.start(&[]);
    ok(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/legacy",
        Some(app("legacy", "acme", &["acme-prod"])),
    );
    assert_eq!(app_view(&s, "legacy")["status"], "ready");
}

#[test]
fn a_namespace_is_held_from_registration_to_unregistration_across_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    let post = |s: &Server, name: &str, ns: &[&str]| {
        call(s, ADMIN, "POST", "/v1/apps", Some(app(name, "acme", ns))).status
    };
    ok(
        &s,
        ADMIN,
        "POST",
        "/v1/apps",
        Some(app("shop", "acme", &["acme-a", "acme-b"])),
    );
    assert_eq!(post(&s, "blog", &["acme-b"]), 409);

    // A restart rebuilds who holds what from the state repo.
    s.stop();
    s.start(&[]);
    assert_eq!(post(&s, "blog", &["acme-b"]), 409, "held after a restart");

    // An update that drops a namespace frees it, and only it.
    ok(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop",
        Some(app("shop", "acme", &["acme-a"])),
    );
    assert_eq!(post(&s, "blog", &["acme-a"]), 409);
    assert_eq!(post(&s, "blog", &["acme-b"]), 201);
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop",
        Some(app("shop", "acme", &["acme-a", "acme-b"])),
    );
    assert_eq!(r.status, 409, "blog holds it now: {}", r.text());
    assert_eq!(r.json()["owner"], json!({"app": "blog", "tenant": "acme"}));

    // A secret can target only what its app holds; unregistering frees the namespace.
    let r = call(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop/secrets/db",
        Some(json!({"targetNamespaces": ["acme-b"], "data": {"k": "v"}})),
    );
    assert_eq!(r.status, 422, "{}", r.text());
    ok(&s, ADMIN, "DELETE", "/v1/apps/blog", None);
    ok(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop",
        Some(app("shop", "acme", &["acme-a", "acme-b"])),
    );
    ok(
        &s,
        ADMIN,
        "PUT",
        "/v1/apps/shop/secrets/db",
        Some(json!({"targetNamespaces": ["acme-b"], "data": {"k": "v"}})),
    );
    s.stop();
}
