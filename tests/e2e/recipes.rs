//! Generated, derived and validated secrets end to end, on the embedded default: the real
//! `sealwright serve`, real HTTP and bare Git repositories; the real `openssl` checks every key
//! and certificate sealwright generates, the real `sops` decrypts the committed files (through
//! `kubectl kustomize`, as Flux would), and values survive a restart and a hundred unrelated
//! PATCHes byte-for-byte.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::flux::apply_like_flux;
use common::server::{checkout, Server, ADMIN};
use common::*;
use serde_json::{json, Value};

const CONFIG: &str = r#"cluster:
  name: e2e
host:
  kind: local
  owner: platform
flux_repo: platform/flux
forbidden_keys:
  RAILS_MASTER_KEY: "it decrypts every Rails credential; keep it out of Git"
tenants:
  acme:
    namespaces: ["crewai-*"]
    forbidden_keys:
      AWS_SECRET_ACCESS_KEY: "use workload identity"
presets:
  postgres:
    description: new database credentials
    data: {username: crewai, host: db.internal, port: "5432", database: crewai}
    generate: {password: {kind: alphanumeric, length: 32}}
    derive: {DATABASE_URL: "postgres://{{ username | urlencode }}:{{ password | urlencode }}@{{ host }}:{{ port }}/{{ database }}"}
    validate: {DATABASE_URL: {url: {scheme: postgres, userinfo: true}}}
"#;

/// Values the test sets by hand: none may appear in a log, an answer or a commit message.
const SET: &[&str] = &["p@ss:w/rd?#%é-7f3a", "hunter2-index-91c4"];

struct Run {
    server: Server,
    tmp: tempfile::TempDir,
}

impl Run {
    fn call(&self, method: &str, path: &str, body: Value) -> common::http::Response {
        self.server.send(method, path, &body)
    }

    fn ok(&self, method: &str, path: &str, body: Value) -> Value {
        let r = self.call(method, path, body);
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    }

    /// 422 with this field; the reason is returned.
    fn refused(&self, method: &str, path: &str, body: Value, field: &str) -> String {
        let r = self.call(method, path, body);
        assert_eq!(r.status, 422, "{method} {path}: {}", r.text());
        let j = r.json();
        assert_eq!(j["field"], json!(field), "{j}");
        j["reason"].as_str().unwrap().to_owned()
    }

    fn reveal(&self, name: &str) -> BTreeMap<String, String> {
        let v = self
            .server
            .get(&format!("/v1/apps/crewai/secrets/{name}?reveal=true"));
        assert_eq!(v.status, 200, "{}", v.text());
        serde_json::from_value(v.json()["data"].clone()).unwrap()
    }

    fn head(&self) -> String {
        git_in(
            &self.server.repo("platform/crewai-platform"),
            &["rev-parse", "main"],
        )
        .trim()
        .to_owned()
    }

    /// The committed file of a secret, as text.
    fn file(&self, name: &str) -> String {
        git_in(
            &self.server.repo("platform/crewai-platform"),
            &[
                "show",
                &format!("main:secrets/crewai-prod/{name}.sops.yaml"),
            ],
        )
    }
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run openssl");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The `ENC[...]` line of each key of a committed file.
fn cipher_lines(file: &str) -> BTreeMap<String, String> {
    file.lines()
        .filter(|l| l.contains("ENC[AES256_GCM"))
        .filter_map(|l| {
            let (k, v) = l.trim().split_once(": ")?;
            // The MAC covers every value: it moves with any change.
            (k != "mac").then(|| (k.trim_matches('"').to_owned(), v.to_owned()))
        })
        .collect()
}

fn crewai_body() -> Value {
    json!({
        "targetNamespaces": ["crewai-prod"],
        "data": {"OIDC_ISSUER": "https://crewai.example.com"},
        "generate": {
            "SECRET_KEY_BASE": {"kind": "alphanumeric", "length": 64},
            "ENCRYPTION_KEY": {"kind": "hex", "length": 64},
            "SESSION_TOKEN": {"kind": "token", "prefix": "sk_", "length": 40},
            "JOB_ID": {"kind": "uuid"},
            "NONCE": {"kind": "base64", "bytes": 24},
            "OIDC_KID": {"kind": "alphanumeric", "length": 12, "idPrefix": "crewai-oidc-"},
            "OIDC_PRIVATE_KEY": {"kind": "rsa", "bits": 2048, "format": "pkcs1", "publicKey": "OIDC_PUBLIC_KEY"},
            "SIGNING_ED25519": {"kind": "ed25519"},
            "SIGNING_P256": {"kind": "ecdsa-p256", "publicKey": "SIGNING_P256_PUB"}
        },
        "validate": {
            "OIDC_PRIVATE_KEY": {"pem": "rsa-private-key-pkcs1"},
            "SIGNING_ED25519": {"pem": "private-key"},
            "OIDC_ISSUER": {"url": {"scheme": "https"}}
        }
    })
}

#[test]
fn generated_derived_and_validated_secrets_checked_by_openssl_and_real_sops_and_kept_across_restarts(
) {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(&tmp.path().join("srv"), CONFIG);
    server.start(&[]);
    let r = Run { server, tmp };
    let work = r.tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    r.ok(
        "POST",
        "/v1/apps",
        json!({"name": "crewai", "tenant": "acme", "environments": [{"name": "prod", "namespace": "crewai-prod"}]}),
    );

    // The CrewAI shape: session keys, an OIDC RSA key with its kid and public half.
    let ack = r.ok("PUT", "/v1/apps/crewai/secrets/crewai", crewai_body());
    assert_eq!(ack["committed"], json!(true), "{ack}");
    let v = r.reveal("crewai");
    assert_eq!(v["SECRET_KEY_BASE"].len(), 64);
    assert!(v["SECRET_KEY_BASE"]
        .bytes()
        .all(|b| b.is_ascii_alphanumeric()));
    assert_eq!(v["ENCRYPTION_KEY"].len(), 64);
    assert!(v["ENCRYPTION_KEY"].bytes().all(|b| b.is_ascii_hexdigit()));
    assert!(v["SESSION_TOKEN"].starts_with("sk_") && v["SESSION_TOKEN"].len() == 43);
    assert!(v["OIDC_KID"].starts_with("crewai-oidc-") && v["OIDC_KID"].len() == 24);
    assert_eq!(v["JOB_ID"].len(), 36);
    use base64::Engine;
    let nonce = base64::engine::general_purpose::STANDARD
        .decode(&v["NONCE"])
        .unwrap();
    assert_eq!(nonce.len(), 24);
    let write = |name: &str, text: &str| std::fs::write(work.join(name), text).unwrap();
    write("oidc.pem", &v["OIDC_PRIVATE_KEY"]);
    write("oidc.pub", &v["OIDC_PUBLIC_KEY"]);
    write("ed.pem", &v["SIGNING_ED25519"]);
    write("p256.pem", &v["SIGNING_P256"]);
    write("p256.pub", &v["SIGNING_P256_PUB"]);
    assert!(v["OIDC_PRIVATE_KEY"].starts_with("-----BEGIN RSA PRIVATE KEY-----"));
    assert!(openssl(&work, &["rsa", "-check", "-noout", "-in", "oidc.pem"]).contains("RSA key ok"));
    assert!(openssl(&work, &["rsa", "-noout", "-text", "-in", "oidc.pem"]).contains("2048 bit"));
    // The public half is the private key's.
    let derived_pub = openssl(&work, &["pkey", "-in", "oidc.pem", "-pubout"]);
    assert_eq!(derived_pub, v["OIDC_PUBLIC_KEY"]);
    openssl(&work, &["pkey", "-pubin", "-in", "oidc.pub", "-noout"]);
    assert!(openssl(&work, &["pkey", "-in", "ed.pem", "-noout", "-text"]).contains("ED25519"));
    assert!(openssl(&work, &["pkey", "-in", "p256.pem", "-noout", "-text"]).contains("prime256v1"));
    assert_eq!(
        openssl(&work, &["pkey", "-in", "p256.pem", "-pubout"]),
        v["SIGNING_P256_PUB"]
    );

    // A self-signed TLS pair: the names and validity asked for.
    r.ok(
        "PUT",
        "/v1/apps/crewai/secrets/crewai-tls",
        json!({"targetNamespaces": ["crewai-prod"], "type": "kubernetes.io/tls",
               "generate": {"tls.crt": {"kind": "self-signed-tls", "commonName": "crewai.example.com",
                                        "dnsNames": ["crewai.example.com", "api.crewai.example.com"], "days": 30}},
               "validate": {"tls.crt": {"pem": "certificate"}, "tls.key": {"pem": "private-key"}}}),
    );
    let tls = r.reveal("crewai-tls");
    write("tls.crt", &tls["tls.crt"]);
    write("tls.key", &tls["tls.key"]);
    let text = openssl(&work, &["x509", "-noout", "-text", "-in", "tls.crt"]);
    assert!(
        text.contains("CN = crewai.example.com") || text.contains("CN=crewai.example.com"),
        "{text}"
    );
    assert!(
        text.contains("DNS:crewai.example.com, DNS:api.crewai.example.com"),
        "{text}"
    );
    assert!(text.contains("CA:FALSE"), "{text}");
    assert!(text.contains("TLS Web Server Authentication"), "{text}");
    openssl(
        &work,
        &[
            "x509",
            "-noout",
            "-checkend",
            &(29 * 86400).to_string(),
            "-in",
            "tls.crt",
        ],
    );
    let expired = Command::new("openssl")
        .args([
            "x509",
            "-noout",
            "-checkend",
            &(31 * 86400).to_string(),
            "-in",
            "tls.crt",
        ])
        .current_dir(&work)
        .output()
        .unwrap();
    assert!(!expired.status.success(), "valid for 30 days, not 31");
    assert_eq!(
        openssl(&work, &["x509", "-noout", "-pubkey", "-in", "tls.crt"]),
        openssl(&work, &["pkey", "-in", "tls.key", "-pubout"])
    );
    openssl(
        &work,
        &["verify", "-CAfile", "tls.crt", "-partial_chain", "tls.crt"],
    );

    // A preset: one click for database credentials; the write's own values win.
    let presets = r.server.get("/v1/presets").json();
    assert_eq!(
        presets["presets"][0]["name"],
        json!("postgres"),
        "{presets}"
    );
    r.ok(
        "PUT",
        "/v1/apps/crewai/secrets/db",
        json!({"targetNamespaces": ["crewai-prod"], "preset": "postgres", "data": {"username": SET[0]}}),
    );
    let db = r.reveal("db");
    assert_eq!(db["password"].len(), 32);
    let url = url::Url::parse(&db["DATABASE_URL"]).unwrap();
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8()
            .unwrap()
            .into_owned()
    };
    assert_eq!(decode(url.username()), SET[0]);
    assert_eq!(decode(url.password().unwrap()), db["password"]);
    assert_eq!(
        (url.host_str(), url.port(), url.path()),
        (Some("db.internal"), Some(5432), "/crewai")
    );
    let shown = r.server.get("/v1/apps/crewai/secrets/db").json();
    assert_eq!(shown["preset"], json!("postgres"));
    assert_eq!(shown["keyKinds"]["password"], json!("generated"));
    assert_eq!(shown["keyKinds"]["DATABASE_URL"], json!("derived"));
    assert_eq!(shown["keyKinds"]["username"], json!("set"));

    // A key several services share, derived from another secret; an index URL checked.
    r.ok(
        "PUT",
        "/v1/apps/crewai/secrets/worker",
        json!({"targetNamespaces": ["crewai-prod"],
               "data": {"PIP_INDEX_URL": format!("https://deploy:{}@pypi.internal/simple/", SET[1])},
               "derive": {"SECRET_KEY_BASE": "{{ secrets.crewai.SECRET_KEY_BASE }}",
                          "DATABASE_URL": "{{ secrets.db.DATABASE_URL }}"},
               "validate": {"PIP_INDEX_URL": {"url": {"scheme": "https", "userinfo": true, "pathSuffix": "/simple/"}}}}),
    );
    let worker = r.reveal("worker");
    assert_eq!(worker["SECRET_KEY_BASE"], v["SECRET_KEY_BASE"]);
    assert_eq!(worker["DATABASE_URL"], db["DATABASE_URL"]);

    // Refusals: 422 naming the field, never the value; nothing stored changes.
    let before = r.head();
    let reason = r.refused(
        "PATCH",
        "/v1/apps/crewai/secrets/worker",
        json!({"data": {"PIP_INDEX_URL": format!("http://pypi.internal/{}", SET[1])}}),
        "data.PIP_INDEX_URL",
    );
    assert!(!reason.contains(SET[1]), "{reason}");
    r.refused(
        "PATCH",
        "/v1/apps/crewai/secrets/crewai",
        json!({"data": {"OIDC_PRIVATE_KEY": SET[1]}}),
        "data.OIDC_PRIVATE_KEY",
    );
    assert!(r
        .refused(
            "PATCH",
            "/v1/apps/crewai/secrets/worker",
            json!({"data": {"DATABASE_URL": "postgres://x"}}),
            "data.DATABASE_URL",
        )
        .contains("derived"));
    assert!(r
        .refused(
            "PUT",
            "/v1/apps/crewai/secrets/loop",
            json!({"targetNamespaces": ["crewai-prod"], "derive": {"a": "{{ b }}", "b": "{{ a }}"}}),
            "derive.a",
        )
        .contains("cycle"));
    assert!(r
        .refused(
            "PUT",
            "/v1/apps/crewai/secrets/typo",
            json!({"targetNamespaces": ["crewai-prod"], "data": {"host": "h"}, "derive": {"url": "{{ hots }}"}}),
            "derive.url",
        )
        .contains("\"hots\""));
    assert!(r
        .refused(
            "PUT",
            "/v1/apps/crewai/secrets/rails",
            json!({"targetNamespaces": ["crewai-prod"], "data": {"RAILS_MASTER_KEY": SET[1]}}),
            "data.RAILS_MASTER_KEY",
        )
        .contains("keep it out of Git"));
    assert!(r
        .refused(
            "PUT",
            "/v1/apps/crewai/secrets/aws",
            json!({"targetNamespaces": ["crewai-prod"], "data": {"AWS_SECRET_ACCESS_KEY": SET[1]}}),
            "data.AWS_SECRET_ACCESS_KEY",
        )
        .contains("workload identity"));
    r.refused(
        "PUT",
        "/v1/apps/crewai/secrets/p",
        json!({"targetNamespaces": ["crewai-prod"], "preset": "mysql"}),
        "preset",
    );
    // Deleting a secret another one derives from would break it.
    r.refused(
        "DELETE",
        "/v1/apps/crewai/secrets/db",
        json!({}),
        "secrets.worker.derive.DATABASE_URL",
    );
    r.refused(
        "POST",
        "/v1/apps/crewai/secrets/crewai/rotate",
        json!({"keys": ["OIDC_ISSUER"]}),
        "keys[0]",
    );
    assert_eq!(r.head(), before, "a refused write commits nothing");

    // Noise-free: the same write again commits nothing; unrelated PATCHes leave every
    // generated value's ciphertext as it was.
    let file = r.file("crewai");
    assert!(file.contains("sealwright.dev/spec:"), "{file}");
    let generated = cipher_lines(&file);
    let sums = |r: &Run| {
        let text = git_in(
            &r.server.repo("platform/crewai-platform"),
            &["show", "main:secrets/crewai-prod/sealwright-checksums.yaml"],
        );
        text.lines()
            .filter_map(|l| l.trim().split_once(": "))
            .filter(|(k, _)| k.contains("_CHECKSUM"))
            .map(|(k, v)| {
                (
                    k.trim_matches('"').to_owned(),
                    v.trim_matches('"').to_owned(),
                )
            })
            .collect::<BTreeMap<String, String>>()
    };
    let sums_before = sums(&r);
    assert!(
        generated.contains_key("OIDC_PRIVATE_KEY") && generated.len() >= 12,
        "{generated:?}"
    );
    for value in v
        .values()
        .filter(|x| x.len() > 8 && !x.starts_with("https://"))
    {
        assert!(
            !file.contains(value.lines().nth(1).unwrap_or(value)),
            "a value in the clear"
        );
    }
    r.ok("PUT", "/v1/apps/crewai/secrets/crewai", crewai_body());
    assert_eq!(r.head(), before);
    for i in 0..100 {
        r.ok(
            "PATCH",
            "/v1/apps/crewai/secrets/crewai",
            json!({"data": {"BUILD": format!("build-{i}")}}),
        );
    }
    let after = cipher_lines(&r.file("crewai"));
    // Pods that name a Secret's checksum restart when it changes, and only then.
    let sums_after = sums(&r);
    assert_ne!(
        sums_after["SECRET_CREWAI_CHECKSUM"],
        sums_before["SECRET_CREWAI_CHECKSUM"]
    );
    assert_eq!(
        sums_after["SECRET_CREWAI_TLS_CHECKSUM"],
        sums_before["SECRET_CREWAI_TLS_CHECKSUM"]
    );
    assert_eq!(
        sums_after["SECRET_DB_CHECKSUM"],
        sums_before["SECRET_DB_CHECKSUM"]
    );
    for (k, line) in &generated {
        assert_eq!(after.get(k), Some(line), "{k} changed");
    }

    // A restart rebuilds the recipes from Git: values, kinds and the noise-free write hold.
    let mut r = r;
    r.server.stop();
    r.server.start(&[]);
    assert_eq!(r.reveal("crewai")["SECRET_KEY_BASE"], v["SECRET_KEY_BASE"]);
    let head = r.head();
    r.ok("PUT", "/v1/apps/crewai/secrets/crewai", {
        let mut b = crewai_body();
        b["data"]["BUILD"] = json!("build-99");
        b
    });
    assert_eq!(
        r.head(),
        head,
        "after a restart the same write is still no change"
    );
    let shown = r.server.get("/v1/apps/crewai/secrets/crewai").json();
    assert_eq!(shown["keyKinds"]["OIDC_PUBLIC_KEY"], json!("generated"));

    // Rotation: the derived keys follow in the same commit; keepPrevious keeps the overlap.
    r.ok(
        "POST",
        "/v1/apps/crewai/secrets/db/rotate",
        json!({"keys": ["password"], "keepPrevious": true}),
    );
    let rotated = r.reveal("db");
    assert_ne!(rotated["password"], db["password"]);
    assert_eq!(rotated["password.previous"], db["password"]);
    assert_ne!(rotated["DATABASE_URL"], db["DATABASE_URL"]);
    assert_eq!(r.reveal("worker")["DATABASE_URL"], rotated["DATABASE_URL"]);
    let log = git_in(
        &r.server.repo("platform/crewai-platform"),
        &["log", "-1", "--name-only", "--format=%s"],
    );
    assert!(
        log.contains("crewai-prod/db.sops.yaml") && log.contains("crewai-prod/worker.sops.yaml"),
        "{log}"
    );
    // No body at all: every generated key of the secret, without an overlap.
    let plain = common::http::request(
        &r.server.addr,
        "POST",
        "/v1/apps/crewai/secrets/db/rotate",
        Some(ADMIN),
        None,
    );
    assert_eq!(plain.status, 200, "{}", plain.text());
    let again = r.reveal("db");
    assert!(
        !again.contains_key("password.previous"),
        "{:?}",
        again.keys()
    );
    assert_ne!(again["password"], rotated["password"]);

    // The CLI: compact rules, and a rotation.
    let cli = |args: &[&str]| {
        let mut c = clean(&sealwright_bin(), &work);
        c.env("SEALWRIGHT_SERVER", format!("http://{}", r.server.addr))
            .env("SEALWRIGHT_TOKEN", ADMIN)
            .args(args);
        let out = run(c);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice::<Value>(&out.stdout).unwrap()
    };
    cli(&[
        "secret",
        "put",
        "crewai",
        "cli",
        "--namespace",
        "crewai-prod",
        "--generate",
        "password=alphanumeric:32",
        "--derive",
        "INDEX_URL=https://ci:{{ password | urlencode }}@pypi.internal/simple/",
        "--validate",
        "INDEX_URL=url:https",
    ]);
    let first = r.reveal("cli");
    assert_eq!(first["password"].len(), 32);
    cli(&[
        "secret",
        "rotate",
        "crewai",
        "cli",
        "--key",
        "password",
        "--keep-previous",
    ]);
    let second = r.reveal("cli");
    assert_eq!(second["password.previous"], first["password"]);
    assert!(second["INDEX_URL"].contains(&second["password"]));

    // The cluster's view: Flux builds and decrypts with the real sops what was revealed.
    let checkouts = r.tmp.path().join("checkouts");
    let flux = checkout(&r.server.repo("platform/flux"), &checkouts.join("flux"));
    let platform = checkout(
        &r.server.repo("platform/crewai-platform"),
        &checkouts.join("crewai-platform"),
    );
    let applied = apply_like_flux(
        &flux,
        &BTreeMap::from([("crewai".to_string(), platform)]),
        &r.server.cluster_key(),
        &checkouts.join("sim"),
    );
    let key = |name: &str| {
        (
            "crewai".to_string(),
            "crewai-prod".to_string(),
            name.to_string(),
        )
    };
    let in_cluster = &applied[&key("crewai")];
    assert_eq!(
        in_cluster["OIDC_PRIVATE_KEY"],
        v["OIDC_PRIVATE_KEY"].as_bytes()
    );
    assert_eq!(
        applied[&key("db")]["DATABASE_URL"],
        again["DATABASE_URL"].as_bytes()
    );
    assert_eq!(
        applied[&key("crewai-tls")]["tls.key"],
        tls["tls.key"].as_bytes()
    );

    // The audit log names keys, never values; no value leaks into logs or commit messages.
    let events = r.server.get("/v1/events?limit=1000").json();
    let actions: Vec<&str> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"secret.generated"), "{actions:?}");
    assert!(actions.contains(&"secret.rotated"), "{actions:?}");
    let rotated_ev = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["action"] == "secret.rotated")
        .unwrap();
    assert_eq!(rotated_ev["keys"], json!(["password"]), "{rotated_ev}");
    let logs = r.server.logs();
    let messages = git_in(
        &r.server.repo("platform/crewai-platform"),
        &["log", "--format=%B"],
    );
    let events_text = events.to_string();
    let secrets: Vec<String> = [&v, &db, &rotated, &again, &first, &second, &tls]
        .iter()
        .flat_map(|m| m.values().cloned())
        .filter(|s| s.len() >= 12 && !s.starts_with("https://crewai"))
        .chain(SET.iter().map(|s| s.to_string()))
        .collect();
    for s in &secrets {
        for (what, text) in [
            ("logs", &logs),
            ("commit messages", &messages),
            ("events", &events_text),
        ] {
            let probe = s.lines().nth(1).unwrap_or(s);
            assert!(!text.contains(probe), "a value appears in the {what}");
        }
    }
}
