//! `sealwright serve` end to end, on the embedded default: the real binary, real HTTP on
//! loopback, real bare Git repositories, and after every step the cluster played by `kubectl
//! kustomize` and the real `sops` on checkouts of the Flux repo and the platform repos.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::flux::{apply_like_flux, Applied};
use common::http;
use common::server::{checkout, Server, ADMIN};
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = "cluster:\n  name: e2e\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\nregistrations_dir: registrations\n";

/// Every secret value the tests write: none may appear anywhere but a reveal and the cluster.
const VALUES: &[&str] = &[
    "pw-9d2a1f77-first",
    "pw-5e0b3c11-second",
    "user-c0ffee42",
    "smtp-7a7a7a7a-pass",
    "api-3141592653",
];

struct Run {
    server: Server,
    tmp: tempfile::TempDir,
    /// Every response body seen (reveals excluded).
    bodies: Vec<String>,
}

impl Run {
    fn new(config: &str) -> Run {
        let tmp = tempfile::tempdir().unwrap();
        let mut server = Server::new(&tmp.path().join("srv"), config);
        server.start(&[]);
        Run {
            server,
            tmp,
            bodies: Vec::new(),
        }
    }

    fn call(&mut self, method: &str, path: &str, body: Option<Value>) -> http::Response {
        let r = match body {
            Some(b) => self.server.send(method, path, &b),
            None => http::request(&self.server.addr, method, path, Some(ADMIN), None),
        };
        self.bodies.push(r.text());
        r
    }

    fn ok(&mut self, method: &str, path: &str, body: Option<Value>) -> Value {
        let r = self.call(method, path, body);
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// Checks out the Flux repo and the apps' platform repos and plays the cluster on them.
    fn flux_check(&self, apps: &[&str]) -> Applied {
        let work = self.tmp.path().join("checkouts");
        let flux = checkout(&self.server.repo("platform/flux"), &work.join("flux"));
        let mut platform = BTreeMap::new();
        for app in apps {
            let dir = checkout(
                &self.server.repo(&format!("platform/{app}-platform")),
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

    fn head(&self, repo: &str) -> String {
        git_in(&self.server.repo(repo), &["rev-parse", "main"])
            .trim()
            .to_string()
    }
}

fn secret<'a>(
    applied: &'a Applied,
    app: &str,
    ns: &str,
    name: &str,
) -> Option<&'a BTreeMap<String, Vec<u8>>> {
    applied.get(&(app.to_string(), ns.to_string(), name.to_string()))
}

fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
        .collect()
}

fn assert_sha(v: &Value) -> String {
    assert_eq!(v["committed"], json!(true), "{v}");
    let c = v["commit"]
        .as_str()
        .unwrap_or_else(|| panic!("no commit: {v}"));
    assert_eq!(c.len(), 40, "{v}");
    c.to_string()
}

#[test]
fn two_apps_secrets_created_updated_moved_deleted_with_the_flux_check_after_every_step() {
    let mut r = Run::new(CONFIG);
    let shop = r.ok(
        "POST",
        "/v1/apps",
        Some(json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "staging", "namespace": "shop-staging"},
            {"name": "production", "namespace": "shop-prod"}]})),
    );
    assert_eq!(shop["ready"], json!(true), "{shop}");
    assert!(shop["recipient"].as_str().unwrap().starts_with("age1"));
    // The repository URLs are ones `git clone` accepts.
    for key in ["platformRepo", "fluxRepo"] {
        let url = shop[key].as_str().unwrap();
        let dest = r.tmp.path().join(format!("clone-{key}"));
        let out = std::process::Command::new("git")
            .args(["clone", "-q", url])
            .arg(&dest)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{key} {url}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    r.ok(
        "POST",
        "/v1/apps",
        Some(
            json!({"name": "billing", "tenant": "globex", "environments": [
            {"name": "dev", "namespace": "billing-dev"}]}),
        ),
    );
    assert!(r.flux_check(&["shop", "billing"]).is_empty());

    // Create: one file per target namespace, one commit.
    let before = r.head("platform/shop-platform");
    let ack = r.ok(
        "PUT",
        "/v1/apps/shop/secrets/database",
        Some(json!({"targetNamespaces": ["shop-staging", "shop-prod"],
                    "data": {"username": "user-c0ffee42", "password": "pw-9d2a1f77-first"}})),
    );
    let commit = assert_sha(&ack);
    assert_eq!(r.head("platform/shop-platform"), commit);
    let parents = git_in(
        &r.server.repo("platform/shop-platform"),
        &["rev-list", &format!("{before}..{commit}")],
    );
    assert_eq!(parents.lines().count(), 1, "one commit for both namespaces");
    let applied = r.flux_check(&["shop", "billing"]);
    let want = data(&[
        ("password", "pw-9d2a1f77-first"),
        ("username", "user-c0ffee42"),
    ]);
    assert_eq!(
        secret(&applied, "shop", "shop-staging", "database"),
        Some(&want)
    );
    assert_eq!(
        secret(&applied, "shop", "shop-prod", "database"),
        Some(&want)
    );

    // Another app, another target name.
    let ack = r.ok(
        "PUT",
        "/v1/apps/billing/secrets/smtp",
        Some(
            json!({"targetNamespaces": ["billing-dev"], "targetName": "mail",
                    "data": {"password": "smtp-7a7a7a7a-pass"}}),
        ),
    );
    assert_sha(&ack);

    // Patch: a changed value and a removed key; the diff touches only those lines.
    let ack = r.ok(
        "PATCH",
        "/v1/apps/shop/secrets/database",
        Some(json!({"data": {"password": "pw-5e0b3c11-second", "username": null}})),
    );
    let patched = assert_sha(&ack);
    let stat = git_in(
        &r.server.repo("platform/shop-platform"),
        &["show", "--numstat", "--format=", &patched],
    );
    for line in stat.lines() {
        let parts: Vec<&str> = line.split('\t').collect();
        // password's ciphertext, username's line, the MAC, lastmodified: nothing else.
        assert!(parts[0].parse::<u32>().unwrap() <= 3, "{stat}");
        assert!(parts[1].parse::<u32>().unwrap() <= 4, "{stat}");
    }
    let applied = r.flux_check(&["shop", "billing"]);
    let want = data(&[("password", "pw-5e0b3c11-second")]);
    assert_eq!(
        secret(&applied, "shop", "shop-prod", "database"),
        Some(&want)
    );
    assert_eq!(
        secret(&applied, "billing", "billing-dev", "mail"),
        Some(&data(&[("password", "smtp-7a7a7a7a-pass")]))
    );

    // A namespace dropped from the target list loses its file.
    r.ok(
        "PUT",
        "/v1/apps/shop/secrets/database",
        Some(json!({"targetNamespaces": ["shop-prod"], "data": {"password": "pw-5e0b3c11-second", "api": "api-3141592653"}})),
    );
    let applied = r.flux_check(&["shop", "billing"]);
    assert!(secret(&applied, "shop", "shop-staging", "database").is_none());
    assert_eq!(
        secret(&applied, "shop", "shop-prod", "database"),
        Some(&data(&[
            ("api", "api-3141592653"),
            ("password", "pw-5e0b3c11-second")
        ]))
    );
    let listed = r.ok("GET", "/v1/apps/shop/secrets", None);
    assert_eq!(listed["secrets"][0]["namespaces"], json!(["shop-prod"]));
    assert_eq!(listed["secrets"][0]["keys"], json!(["api", "password"]));

    // Delete.
    let ack = r.ok("DELETE", "/v1/apps/billing/secrets/smtp", None);
    assert_sha(&ack);
    let applied = r.flux_check(&["shop", "billing"]);
    assert!(secret(&applied, "billing", "billing-dev", "mail").is_none());
    assert_eq!(applied.len(), 1);
    assert_eq!(
        r.call("GET", "/v1/apps/billing/secrets/smtp", None).status,
        404
    );

    // The audit trail: who, what, which keys and commit; never a value.
    let events = r.ok("GET", "/v1/events", None);
    let actions: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        [
            "app.created",
            "app.created",
            "secret.created",
            "secret.created",
            "secret.updated",
            "secret.updated",
            "secret.deleted"
        ]
    );
    for e in events["events"].as_array().unwrap() {
        assert_eq!(e["actor"], json!("admin"), "{e}");
        if e["action"].as_str().unwrap().starts_with("secret.") {
            assert_eq!(e["commit"].as_str().unwrap().len(), 40, "{e}");
            assert!(!e["keys"].as_array().unwrap().is_empty(), "{e}");
            assert!(e["requestId"].is_string(), "{e}");
        }
    }
    let patch_event = &events["events"][4];
    assert_eq!(patch_event["keys"], json!(["password", "username"]));
    assert_eq!(patch_event["commit"], json!(patched));

    // No-op: a restart changes nothing and finds the same state.
    let repos = [
        "platform/flux",
        "platform/shop-platform",
        "platform/billing-platform",
    ];
    let heads: Vec<String> = repos.iter().map(|x| r.head(x)).collect();
    let secrets_before = r.ok("GET", "/v1/apps/shop/secrets", None);
    r.server.stop();
    r.server.start(&[]);
    let after: Vec<String> = repos.iter().map(|x| r.head(x)).collect();
    assert_eq!(heads, after, "a restart made commits");
    assert_eq!(r.ok("GET", "/v1/apps/shop/secrets", None), secrets_before);
    let apps = r.ok("GET", "/v1/apps", None);
    assert_eq!(apps["apps"].as_array().unwrap().len(), 2);
    for a in apps["apps"].as_array().unwrap() {
        assert_eq!(a["ready"], json!(true), "{a}");
    }
    // An audited reveal is the only way a value comes back.
    let revealed = r
        .server
        .get("/v1/apps/shop/secrets/database?reveal=true")
        .json();
    assert_eq!(revealed["data"]["api"], json!("api-3141592653"));

    // Deleting an app removes its Flux folder; the platform repo stays.
    r.ok("DELETE", "/v1/apps/billing", None);
    let flux = checkout(
        &r.server.repo("platform/flux"),
        &r.tmp.path().join("flux-after"),
    );
    assert!(!flux.join("apps/billing-platform").exists());
    assert!(flux.join("apps/shop-platform").exists());
    assert!(r.server.repo("platform/billing-platform").exists());
    assert_eq!(r.call("GET", "/v1/apps/billing", None).status, 404);

    // Secrets never show in clear: not in logs, responses, commit messages or events.
    let mut haystacks = vec![("logs".to_string(), r.server.logs())];
    haystacks.push(("responses".into(), r.bodies.join("\n")));
    haystacks.push((
        "events".into(),
        std::fs::read_to_string(r.server.data.join("events.jsonl")).unwrap(),
    ));
    for repo in repos.iter().chain(["platform/billing-platform"].iter()) {
        haystacks.push((
            format!("{repo} messages"),
            git_in(&r.server.repo(repo), &["log", "--all", "--format=%B"]),
        ));
        haystacks.push((
            format!("{repo} files"),
            git_in(&r.server.repo(repo), &["log", "--all", "-p", "--format="]),
        ));
    }
    for (what, text) in &haystacks {
        for v in VALUES {
            assert!(!text.contains(v), "{v} appears in {what}");
        }
    }
}

fn tenant_key(r: &mut Run, tenant: &str) -> String {
    let k = r.ok("POST", &format!("/v1/tenants/{tenant}/api-keys"), None);
    k["key"].as_str().unwrap().to_string()
}

#[test]
fn status_codes_scopes_and_request_ids() {
    let mut r = Run::new(CONFIG);
    let addr = r.server.addr.clone();
    let envs = json!([{"name": "prod", "namespace": "shop-prod"}]);
    r.ok(
        "POST",
        "/v1/apps",
        Some(json!({"name": "shop", "tenant": "acme", "environments": envs})),
    );
    r.ok(
        "POST",
        "/v1/apps",
        Some(json!({"name": "other", "tenant": "globex", "environments": [{"name": "prod", "namespace": "other-prod"}]})),
    );
    let acme = tenant_key(&mut r, "acme");
    let put = json!({"targetNamespaces": ["shop-prod"], "data": {"k": "api-3141592653"}});

    // 401: no token, a bad token; the body says why in general terms.
    let resp = http::get(&addr, "/v1/apps", None);
    assert_eq!(resp.status, 401);
    assert_eq!(resp.header("www-authenticate"), Some("Bearer"));
    assert_eq!(http::get(&addr, "/v1/apps", Some("nope")).status, 401);
    assert_eq!(
        http::get(&addr, "/v1/apps", Some("swk_000000000000_00")).status,
        401
    );
    // Health and metrics need no token.
    assert_eq!(http::get(&addr, "/healthz", None).status, 200);
    let metrics = http::get(&addr, "/metrics", None).text();
    assert!(
        metrics.contains("sealwright_http_requests_total{method=\"GET\",code=\"401\"}"),
        "{metrics}"
    );
    assert!(
        metrics.contains("sealwright_commits_total{repo=\"platform\"}"),
        "{metrics}"
    );
    assert_eq!(
        http::get(&addr, "/openapi.json", None).json()["openapi"],
        json!("3.1.0")
    );

    // A tenant key acts on its tenant's apps only.
    let mine = http::send(&addr, "PUT", "/v1/apps/shop/secrets/db", Some(&acme), &put);
    assert_eq!(mine.status, 200, "{}", mine.text());
    assert_eq!(mine.json()["committed"], json!(true));
    let theirs = http::send(
        &addr,
        "PUT",
        "/v1/apps/other/secrets/db",
        Some(&acme),
        &json!({"targetNamespaces": ["other-prod"], "data": {"k": "v"}}),
    );
    assert_eq!(theirs.status, 403, "{}", theirs.text());
    assert_eq!(http::get(&addr, "/v1/apps/other", Some(&acme)).status, 403);
    let listed = http::get(&addr, "/v1/apps", Some(&acme)).json();
    assert_eq!(listed["apps"].as_array().unwrap().len(), 1);
    let foreign = http::send(
        &addr,
        "POST",
        "/v1/apps",
        Some(&acme),
        &json!({"name": "x", "tenant": "globex", "environments": envs}),
    );
    assert_eq!(foreign.status, 403);
    assert_eq!(
        http::get(&addr, "/v1/apps/shop/secrets/db?reveal=true", Some(&acme)).status,
        403
    );
    assert_eq!(
        http::request(
            &addr,
            "POST",
            "/v1/tenants/acme/api-keys",
            Some(&acme),
            None
        )
        .status,
        403
    );
    // Tenant events are the tenant's only.
    let ev = http::get(&addr, "/v1/events", Some(&acme)).json();
    assert!(
        ev["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant"] == json!("acme")),
        "{ev}"
    );

    // 404s.
    assert_eq!(r.call("GET", "/v1/apps/nope", None).status, 404);
    assert_eq!(r.call("GET", "/v1/apps/nope/secrets", None).status, 404);
    assert_eq!(
        r.call("GET", "/v1/apps/shop/secrets/nope", None).status,
        404
    );
    assert_eq!(
        r.call(
            "PATCH",
            "/v1/apps/shop/secrets/nope",
            Some(json!({"data": {"a": "b"}}))
        )
        .status,
        404
    );
    assert_eq!(
        r.call("DELETE", "/v1/apps/shop/secrets/nope", None).status,
        404
    );
    assert_eq!(
        r.call("PUT", "/v1/apps/nope/secrets/db", Some(put.clone()))
            .status,
        404
    );

    // 409s: the same app twice; a Secret another app already manages.
    let again = r.call(
        "POST",
        "/v1/apps",
        Some(json!({"name": "shop", "tenant": "acme", "environments": envs})),
    );
    assert_eq!(again.status, 409);
    // A namespace belongs to one app: a second app cannot claim it (an admin sees the owner).
    let clash = r.call(
        "POST",
        "/v1/apps",
        Some(json!({"name": "shop2", "tenant": "acme", "environments": [{"name": "prod", "namespace": "shop-prod"}]})),
    );
    assert_eq!(clash.status, 409, "{}", clash.text());
    assert_eq!(
        clash.json()["owner"],
        json!({"app": "shop", "tenant": "acme"})
    );

    // 422s name the field and the reason.
    for (path, method, body, field) in [
        (
            "/v1/apps",
            "POST",
            json!({"name": "Bad_Name", "tenant": "acme", "environments": envs}),
            "name",
        ),
        (
            "/v1/apps",
            "POST",
            json!({"name": "x", "tenant": "acme", "environments": []}),
            "environments",
        ),
        (
            "/v1/apps",
            "POST",
            json!({"name": "x", "tenant": "acme"}),
            "environments",
        ),
        (
            "/v1/apps/shop/secrets/db",
            "PUT",
            json!({"targetNamespaces": ["shop-prod"], "data": {}}),
            "data",
        ),
        (
            "/v1/apps/shop/secrets/db",
            "PUT",
            json!({"targetNamespaces": ["elsewhere"], "data": {"k": "v"}}),
            "targetNamespaces[0]",
        ),
        ("/v1/apps/shop/secrets/Bad", "PUT", put.clone(), "name"),
        (
            "/v1/apps/shop/secrets/db",
            "PUT",
            json!({"targetNamespaces": ["shop-prod"], "data": {"k": 42}}),
            "data.k",
        ),
        (
            "/v1/apps/shop/secrets/db",
            "PATCH",
            json!({"data": {"k": null}}),
            "data",
        ),
    ] {
        let resp = r.call(method, path, Some(body.clone()));
        assert_eq!(resp.status, 422, "{method} {path} {body}: {}", resp.text());
        assert_eq!(resp.json()["field"], json!(field), "{}", resp.text());
        assert!(resp.json()["reason"]
            .as_str()
            .is_some_and(|x| !x.is_empty()));
    }
    let not_json = http::request(
        &addr,
        "PUT",
        "/v1/apps/shop/secrets/db",
        Some(ADMIN),
        Some(b"{nope"),
    );
    assert_eq!(not_json.status, 422);
    assert_eq!(not_json.json()["field"], json!("body"));
    let huge = format!(
        "{{\"targetNamespaces\":[\"shop-prod\"],\"data\":{{\"k\":\"{}\"}}}}",
        "x".repeat(2 << 20)
    );
    let too_big = http::request(
        &addr,
        "PUT",
        "/v1/apps/shop/secrets/db",
        Some(ADMIN),
        Some(huge.as_bytes()),
    );
    assert_eq!(too_big.status, 422);
    assert_eq!(too_big.json()["field"], json!("body"));
    // Nothing was lost by the refused writes.
    let kept = r.server.get("/v1/apps/shop/secrets/db?reveal=true").json();
    assert_eq!(kept["data"], json!({"k": "api-3141592653"}));

    // Request ids: made up, or taken from the caller, and always in the response.
    let resp = http::get(&addr, "/healthz", None);
    assert_eq!(resp.header("x-request-id").map(str::len), Some(16));
    let mut s = std::net::TcpStream::connect(&addr).unwrap();
    use std::io::{Read, Write};
    write!(s, "GET /v1/apps/shop HTTP/1.1\r\nHost: x\r\nConnection: close\r\nx-request-id: trace-42\r\nAuthorization: Bearer {ADMIN}\r\n\r\n").unwrap();
    let mut raw = String::new();
    s.read_to_string(&mut raw).unwrap();
    assert!(
        raw.to_ascii_lowercase().contains("x-request-id: trace-42"),
        "{raw}"
    );
    assert!(r.server.logs().contains("trace-42"));

    // Revoked keys stop working.
    let keys = r.ok("GET", "/v1/tenants/acme/api-keys", None);
    let id = keys["apiKeys"][0]["id"].as_str().unwrap().to_string();
    assert!(!keys.to_string().contains(&acme));
    r.ok("DELETE", &format!("/v1/tenants/acme/api-keys/{id}"), None);
    assert_eq!(http::get(&addr, "/v1/apps", Some(&acme)).status, 401);
    assert!(!r.server.logs().contains(&acme), "an API key in the logs");
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_registrations_directory_is_watched() {
    let mut r = Run::new(CONFIG);
    let dir: PathBuf = r.server.dir.join("registrations");
    let file = dir.join("web.yaml");
    std::fs::write(
        &file,
        "name: web\ntenant: acme\nenvironments:\n  - {name: dev, namespace: web-dev}\n  - {name: prod, namespace: web-prod}\n",
    )
    .unwrap();
    wait_for("web to be registered", || {
        r.server.get("/v1/apps/web").status == 200
    });
    let app = r.server.get("/v1/apps/web").json();
    assert_eq!(app["source"], json!("config"));
    r.ok(
        "PUT",
        "/v1/apps/web/secrets/token",
        Some(json!({"targetNamespaces": ["web-dev", "web-prod"], "data": {"t": "api-3141592653"}})),
    );
    // Dropping an environment drops its files.
    std::fs::write(
        &file,
        "name: web\ntenant: acme\nenvironments:\n  - {name: prod, namespace: web-prod}\n",
    )
    .unwrap();
    let repo = r.server.repo("platform/web-platform");
    wait_for("web-dev's file to go", || {
        !git_in(&repo, &["ls-tree", "-r", "--name-only", "main"]).contains("secrets/web-dev/")
    });
    let applied = r.flux_check(&["web"]);
    assert_eq!(applied.len(), 1);
    assert!(secret(&applied, "web", "web-prod", "token").is_some());
    // A broken file is reported and removes nothing.
    std::fs::write(dir.join("broken.yaml"), "name: [\n").unwrap();
    std::fs::remove_file(&file).unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(r.server.get("/v1/apps/web").status, 200);
    // Fixed: now the removal goes through, and the Flux folder with it.
    std::fs::remove_file(dir.join("broken.yaml")).unwrap();
    let flux_repo = r.server.repo("platform/flux");
    wait_for("web's Flux folder to go", || {
        !git_in(&flux_repo, &["ls-tree", "-r", "--name-only", "main"])
            .contains("apps/web-platform/")
    });
    assert_eq!(r.server.get("/v1/apps/web").status, 404);
    let flux = checkout(&flux_repo, &r.tmp.path().join("f"));
    assert!(!flux.join("apps/web-platform").exists());
    assert!(
        !std::fs::read_to_string(flux.join("apps/kustomization.yaml"))
            .unwrap()
            .contains("web")
    );
    assert!(Path::new(&repo).exists(), "the platform repo is kept");
}

#[test]
fn the_cli_drives_a_running_server() {
    let r = Run::new(CONFIG);
    let server = format!("http://{}", r.server.addr);
    let work = r.tmp.path().join("cli");
    std::fs::create_dir_all(&work).unwrap();
    let cli = |args: &[&str]| {
        let mut c = clean(&sealwright_bin(), &work);
        c.env("SEALWRIGHT_SERVER", &server)
            .env("SEALWRIGHT_TOKEN", ADMIN)
            .env("DB_PASSWORD", "pw-9d2a1f77-first")
            .args(args);
        run(c)
    };
    let json_of = |out: &std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    let app = json_of(&cli(&[
        "app",
        "create",
        "shop",
        "--tenant",
        "acme",
        "--env",
        "prod=shop-prod",
        "--env",
        "dev=shop-dev",
    ]));
    assert_eq!(app["ready"], json!(true), "{app}");
    std::fs::write(work.join("user"), "user-c0ffee42").unwrap();
    let ack = json_of(&cli(&[
        "secret",
        "put",
        "shop",
        "db",
        "--namespace",
        "shop-prod",
        "--namespace",
        "shop-dev",
        "--from-env",
        "password=DB_PASSWORD",
        "--from-file",
        "username=user",
    ]));
    assert_sha(&ack);
    let ack = json_of(&cli(&[
        "secret", "patch", "shop", "db", "--remove", "username",
    ]));
    assert_sha(&ack);
    let listed = json_of(&cli(&["secret", "list", "shop"]));
    assert_eq!(listed["secrets"][0]["keys"], json!(["password"]));
    let shown = json_of(&cli(&["secret", "get", "shop", "db", "--reveal"]));
    assert_eq!(shown["data"]["password"], json!("pw-9d2a1f77-first"));
    let applied = r.flux_check(&["shop"]);
    assert_eq!(
        secret(&applied, "shop", "shop-dev", "db"),
        Some(&data(&[("password", "pw-9d2a1f77-first")]))
    );
    assert_eq!(
        json_of(&cli(&["app", "list"]))["apps"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    // Errors: the server's message, exit code 1.
    let out = cli(&[
        "secret",
        "put",
        "shop",
        "db",
        "--namespace",
        "elsewhere",
        "--data",
        "k=v",
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("422: targetNamespaces[0]"), "{err}");
    let out = cli(&["app", "get", "nope"]);
    assert!(String::from_utf8_lossy(&out.stderr).contains("404"));
    json_of(&cli(&["secret", "delete", "shop", "db"]));
    json_of(&cli(&["app", "delete", "shop"]));
    assert_eq!(r.server.get("/v1/apps/shop").status, 404);
    let mut c = clean(&sealwright_bin(), &work);
    c.env("SEALWRIGHT_SERVER", &server).args(["app", "list"]);
    let out = run(c);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("no token"),
        "{out:?}"
    );
}

#[test]
fn an_app_whose_repo_cannot_be_created_fails_alone_answers_503_and_recovers() {
    let mut r = Run::new(&format!("{CONFIG}max_backoff: 2s\n"));
    // A plain file where the local host would create the platform repo.
    let blocked = r.server.repo("platform/broken-platform");
    std::fs::create_dir_all(blocked.parent().unwrap()).unwrap();
    std::fs::write(&blocked, "not a repository").unwrap();
    let env = json!([{"name": "prod", "namespace": "broken-prod"}]);
    let created = r.call(
        "POST",
        "/v1/apps",
        Some(json!({"name": "broken", "tenant": "acme", "environments": env})),
    );
    assert_eq!(created.status, 201, "{}", created.text());
    let app = created.json();
    assert_eq!(app["status"], json!("failed"), "{app}");
    assert!(
        app["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("broken-platform"),
        "{app}"
    );
    let put = r.call(
        "PUT",
        "/v1/apps/broken/secrets/db",
        Some(json!({"targetNamespaces": ["broken-prod"], "data": {"password": VALUES[0]}})),
    );
    assert_eq!(put.status, 503, "{}", put.text());
    assert!(put.text().contains("not provisioned"), "{}", put.text());
    // Another app is not held up by it.
    let fine = r.ok(
        "POST",
        "/v1/apps",
        Some(json!({"name": "fine", "tenant": "acme",
            "environments": [{"name": "prod", "namespace": "fine-prod"}]})),
    );
    assert_eq!(fine["ready"], json!(true), "{fine}");
    // Once the obstacle is gone, the retry loop provisions it and writes go through.
    std::fs::remove_file(&blocked).unwrap();
    wait_for("the failed app to be retried", || {
        r.server.get("/v1/apps/broken").json()["ready"] == json!(true)
    });
    let ack = r.ok(
        "PUT",
        "/v1/apps/broken/secrets/db",
        Some(json!({"targetNamespaces": ["broken-prod"], "data": {"password": VALUES[0]}})),
    );
    assert_sha(&ack);
    let applied = r.flux_check(&["broken", "fine"]);
    assert_eq!(
        secret(&applied, "broken", "broken-prod", "db"),
        Some(&data(&[("password", VALUES[0])]))
    );
}
