//! HTTPS end to end: `sealwright serve` with `tls:` and curl (Debian's) as the client, with
//! certificates made by the real `openssl` CLI. A rotated certificate is served without a
//! restart; under `client_auth: required` a client without a certificate is refused; a
//! certificate's subject alternative name picks the tenant it stands for.

use std::path::Path;

use serde_json::json;

use crate::common::certs::{curl, Ca};
use crate::common::http;
use crate::common::server::{Server, ADMIN};

const BASE: &str =
    "cluster:\n  name: e2e\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\n";

fn with(c: &(std::path::PathBuf, std::path::PathBuf)) -> Option<(&Path, &Path)> {
    Some((c.0.as_path(), c.1.as_path()))
}

/// Replaces `dest` with `src` in one rename, as a certificate manager does.
fn swap(src: &Path, dest: &Path) {
    let tmp = dest.with_extension("new");
    std::fs::copy(src, &tmp).unwrap();
    std::fs::rename(&tmp, dest).unwrap();
}

#[test]
fn https_serves_the_api_and_a_rotated_certificate_is_picked_up_without_a_restart() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let first = Ca::new(&pki, "first-ca");
    let (crt, key) = first.server("server-1");
    let srv = tmp.path().join("srv");
    std::fs::create_dir_all(&srv).unwrap();
    swap(&crt, &srv.join("tls.crt"));
    swap(&key, &srv.join("tls.key"));
    let mut s = Server::new(
        &srv,
        &format!("{BASE}tls:\n  cert: tls.crt\n  key: tls.key\n"),
    );
    s.start_tls(&[], &first.pem());
    let url = format!("https://{}/v1/apps", s.addr);

    let r = curl(&url, &first.pem(), None, Some(ADMIN), &[]);
    assert_eq!((r.exit, r.status), (0, 200), "{} {}", r.body, r.stderr);
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&r.body).unwrap(),
        json!({"apps": []})
    );
    // Plain HTTP to the HTTPS port gets no answer.
    assert!(
        http::try_request(&s.addr, "GET", "/healthz", None, None).map_or(true, |r| r.status != 200)
    );
    assert!(
        s.logs()
            .contains(&format!("listening on https://{}", s.addr)),
        "{}",
        s.logs()
    );
    // The tokens this server mints name it over HTTPS.
    let jwks = curl(
        &format!("https://{}/.well-known/jwks.json", s.addr),
        &first.pem(),
        None,
        None,
        &[],
    );
    assert_eq!(jwks.status, 200, "{}", jwks.body);

    // A new certificate from another CA: a rename of each file, no restart.
    let second = Ca::new(&pki, "second-ca");
    let (crt2, key2) = second.server("server-2");
    swap(&key2, &srv.join("tls.key"));
    swap(&crt2, &srv.join("tls.crt"));
    let r = curl(&url, &second.pem(), None, Some(ADMIN), &[]);
    assert_eq!(
        (r.exit, r.status),
        (0, 200),
        "the rotated certificate is served: {}",
        r.stderr
    );
    let old = curl(&url, &first.pem(), None, Some(ADMIN), &[]);
    assert_ne!(old.exit, 0, "the old CA no longer verifies the server");

    // A broken file (a rotation gone wrong) keeps the last good certificate in service.
    std::fs::write(
        srv.join("tls.crt"),
        "-----BEGIN CERTIFICATE-----\nnot base64\n",
    )
    .unwrap();
    let r = curl(&url, &second.pem(), None, Some(ADMIN), &[]);
    assert_eq!((r.exit, r.status), (0, 200), "{}", r.stderr);
    assert!(
        s.logs().contains("still serving the previous ones"),
        "{}",
        s.logs()
    );
    let key_pem = std::fs::read_to_string(srv.join("tls.key")).unwrap();
    let body: String = key_pem
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(
        !s.logs().contains(&body[..40]),
        "the key never reaches the log"
    );
}

#[test]
fn mutual_tls_required_refuses_a_client_without_a_certificate_and_maps_sans_to_tenants() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let server_ca = Ca::new(&pki, "server-ca");
    let (crt, key) = server_ca.server("server");
    let clients = Ca::new(&pki, "clients-ca");
    let acme = clients.issue("acme-ci", &["DNS:ci.acme.example"], "clientAuth");
    let ops = clients.issue("ops", &["email:ops@example.com"], "clientAuth");
    let nobody = clients.issue("nobody", &["URI:spiffe://e2e/nobody"], "clientAuth");
    let stranger = Ca::new(&pki.join("elsewhere"), "other-ca").issue(
        "acme-forged",
        &["DNS:ci.acme.example"],
        "clientAuth",
    );
    let config = format!(
        "{BASE}tls:\n  cert: {}\n  key: {}\n  client_ca: {}\n  client_auth: required\n  client_identities:\n    ci.acme.example: tenant:acme\n    ops@example.com: admin\n",
        crt.display(),
        key.display(),
        clients.pem().display()
    );
    let mut s = Server::new(&tmp.path().join("srv"), &config);
    s.start_tls(&[], &server_ca.pem());
    let base = format!("https://{}", s.addr);
    let ca = server_ca.pem();
    let post = |c: Option<(&Path, &Path)>, token, body: serde_json::Value| {
        curl(
            &format!("{base}/v1/apps"),
            &ca,
            c,
            token,
            &[
                "-X",
                "POST",
                "-H",
                "content-type: application/json",
                "-d",
                &body.to_string(),
            ],
        )
    };

    // No certificate: refused, even with the admin token. Probes need none.
    let r = curl(&format!("{base}/v1/apps"), &ca, None, Some(ADMIN), &[]);
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("client certificate"), "{}", r.body);
    assert_eq!(
        curl(&format!("{base}/healthz"), &ca, None, None, &[]).status,
        200
    );

    // The admin's certificate registers an app for each tenant, with no token at all.
    for (app, tenant) in [("shop", "acme"), ("billing", "globex")] {
        let r = post(
            with(&ops),
            None,
            json!({"name": app, "tenant": tenant, "environments": [{"name": "prod", "namespace": format!("{app}-prod")}]}),
        );
        assert_eq!(r.status, 201, "{}", r.body);
    }
    // The tenant's certificate sees its own tenant only.
    let r = curl(&format!("{base}/v1/apps"), &ca, with(&acme), None, &[]);
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    let names: Vec<&str> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["shop"]);
    assert_eq!(
        curl(
            &format!("{base}/v1/apps/billing"),
            &ca,
            with(&acme),
            None,
            &[]
        )
        .status,
        403
    );
    let r = post(
        with(&acme),
        None,
        json!({"name": "x", "tenant": "globex", "environments": [{"name": "p", "namespace": "x-prod"}]}),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    // What it writes is recorded as the certificate's.
    let r = curl(
        &format!("{base}/v1/apps/shop/secrets/db"),
        &ca,
        with(&acme),
        None,
        &[
            "-X",
            "PUT",
            "-H",
            "content-type: application/json",
            "-d",
            r#"{"targetNamespaces":["shop-prod"],"data":{"password":"s3cret-by-cert"}}"#,
        ],
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let ev = curl(
        &format!("{base}/v1/events?app=shop"),
        &ca,
        with(&ops),
        None,
        &[],
    );
    assert!(
        ev.body.contains("tenant:acme/cert:ci.acme.example"),
        "{}",
        ev.body
    );

    // A certificate and a token must name the same caller.
    let r = curl(
        &format!("{base}/v1/apps"),
        &ca,
        with(&acme),
        Some(ADMIN),
        &[],
    );
    assert_eq!(r.status, 401, "{}", r.body);
    assert!(r.body.contains("different callers"), "{}", r.body);
    // A certificate that maps to nobody only opens the door: the token says who.
    assert_eq!(
        curl(
            &format!("{base}/v1/apps"),
            &ca,
            with(&nobody),
            Some(ADMIN),
            &[]
        )
        .status,
        200
    );
    assert_eq!(
        curl(&format!("{base}/v1/apps"), &ca, with(&nobody), None, &[]).status,
        401
    );
    // The command line speaks HTTPS too: the tenant's certificate, no token.
    let cli = |args: &[&str], client: Option<&(std::path::PathBuf, std::path::PathBuf)>| {
        let mut c = std::process::Command::new(crate::common::sealwright_bin());
        c.env_clear()
            .args(args)
            .args(["--server", &base, "--ca-cert"])
            .arg(&ca);
        if let Some((cert, key)) = client {
            c.arg("--client-cert")
                .arg(cert)
                .arg("--client-key")
                .arg(key);
        }
        c.output().unwrap()
    };
    let out = cli(&["app", "list"], Some(&acme));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(
        listed.contains("shop") && !listed.contains("billing"),
        "{listed}"
    );
    let out = cli(&["app", "list", "--token", ADMIN], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("client certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A CA that did not sign the server's certificate: refused before anything is sent.
    let out = std::process::Command::new(crate::common::sealwright_bin())
        .env_clear()
        .args(["app", "list", "--server", &base, "--ca-cert"])
        .arg(clients.pem())
        .arg("--client-cert")
        .arg(&ops.0)
        .arg("--client-key")
        .arg(&ops.1)
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .to_lowercase()
            .contains("certificate"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A certificate from another CA, with the tenant's name in it, fails the handshake.
    let r = curl(&format!("{base}/v1/apps"), &ca, with(&stranger), None, &[]);
    assert!(r.exit != 0 || r.status != 200, "{} {}", r.status, r.stderr);
    assert_ne!(r.status, 200);
}

#[test]
fn optional_client_auth_takes_a_token_or_a_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let pki = tmp.path().join("pki");
    let server_ca = Ca::new(&pki, "server-ca");
    let (crt, key) = server_ca.server("server");
    let clients = Ca::new(&pki, "clients-ca");
    let ops = clients.issue("ops", &["DNS:ops.example.com"], "clientAuth");
    let config = format!(
        "{BASE}tls:\n  cert: {}\n  key: {}\n  client_ca: {}\n  client_auth: optional\n  client_identities:\n    ops.example.com: admin\n",
        crt.display(),
        key.display(),
        clients.pem().display()
    );
    let mut s = Server::new(&tmp.path().join("srv"), &config);
    s.start_tls(&[], &server_ca.pem());
    let url = format!("https://{}/v1/apps", s.addr);
    let ca = server_ca.pem();
    assert_eq!(curl(&url, &ca, None, Some(ADMIN), &[]).status, 200);
    assert_eq!(curl(&url, &ca, None, None, &[]).status, 401);
    assert_eq!(
        curl(&url, &ca, Some((&ops.0, &ops.1)), None, &[]).status,
        200
    );
}

#[test]
fn plain_http_on_a_non_loopback_address_warns_loudly_at_start_up() {
    let tmp = tempfile::tempdir().unwrap();
    let mut s = Server::new(&tmp.path().join("srv"), BASE);
    // Every address of this machine; the test still talks to it over loopback.
    let port = s.addr.rsplit_once(':').unwrap().1.to_owned();
    s.addr = format!("0.0.0.0:{port}");
    s.start(&[]);
    assert!(
        s.logs().contains("WARNING: serving plain HTTP on 0.0.0.0"),
        "{}",
        s.logs()
    );
}
