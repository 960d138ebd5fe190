//! The dashboard in a real browser: headless Chromium (Debian's) driving `sealwright serve`'s
//! `/ui/` over loopback. A tenant signs in, creates a secret through the form and watches its
//! dot turn committed without a reload, the real sops decrypts what was committed, an edit of
//! one key is a one-value diff, no page ever holds a written value, another tenant's app is a
//! 403, a forged cross-site form post is refused, and sign-out ends the session. An admin's
//! reveal is in the events.
//!
//! Screenshots of each page go to a temp dir, or to `docs/dashboard/` with
//! `SEALWRIGHT_UPDATE_SCREENSHOTS=1` (the README shows those).

use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::common::browser::Browser;
use crate::common::server::{Server, ADMIN};
use crate::common::{decrypt_committed, git_in, http};

const CONFIG: &str =
    "cluster:\n  name: e2e\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\n";

fn shots(tmp: &std::path::Path) -> PathBuf {
    if std::env::var_os("SEALWRIGHT_UPDATE_SCREENSHOTS").is_some() {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/dashboard")
    } else {
        tmp.join("shots")
    }
}

fn register(s: &Server, app: &str, tenant: &str, envs: &[(&str, &str)]) {
    let envs: Vec<_> = envs
        .iter()
        .map(|(n, ns)| json!({"name": n, "namespace": ns}))
        .collect();
    let r = s.send(
        "POST",
        "/v1/apps",
        &json!({"name": app, "tenant": tenant, "environments": envs}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
}

fn api_key(s: &Server, tenant: &str) -> String {
    let r = s.send(
        "POST",
        &format!("/v1/tenants/{tenant}/api-keys"),
        &json!({}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json()["key"].as_str().unwrap().to_owned()
}

/// A page of another site (another port: another origin) with a form aimed at the dashboard.
fn evil_site(target: &str) -> String {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let page = format!(
        "<!doctype html><title>win a prize</title><form method=post action=\"{target}\">\
         <input name=name value=planted><input name=namespace value=shop-prod>\
         <input name=key value=k><input name=value value=v><input name=csrf value=guessed>\
         <button id=go type=submit>Claim</button></form>"
    );
    std::thread::spawn(move || {
        // Serves the page to every request until the test ends.
        for mut c in l.incoming().flatten().take(20) {
            let mut buf = [0u8; 4096];
            let _ = c.read(&mut buf);
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\ncontent-type: text/html\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
    format!("http://{addr}/")
}

#[test]
fn headless_chromium_tenant_creates_and_edits_a_secret_and_never_sees_a_value() {
    let tmp = tempfile::tempdir().unwrap();
    let shots = shots(tmp.path());
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    register(
        &s,
        "shop",
        "acme",
        &[("staging", "shop-staging"), ("prod", "shop-prod")],
    );
    register(&s, "billing", "globex", &[("prod", "billing-prod")]);
    let key = api_key(&s, "acme");
    let base = format!("http://{}", s.addr);
    let password = "pw-41c9e2-typed-in-the-browser";
    let rotated = "pw-77d0aa-edited-in-the-browser";

    let mut b = Browser::start();
    // Signed out, every page leads to the sign-in form.
    b.goto(&format!("{base}/ui/apps/shop"));
    assert!(b.url().contains("/ui/login?next="), "{}", b.url());
    b.screenshot(&shots.join("login.png"));
    b.fill("#token", "not-a-key");
    b.click("#sign-in");
    assert!(b.text("#token-error").unwrap().contains("not valid"));
    let refused = s.get("/v1/events").json();
    assert!(
        refused["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "auth.refused"
                && e["detail"]
                    .as_str()
                    .is_some_and(|d| d.starts_with("dashboard sign-in"))),
        "{refused}"
    );
    assert!(!refused.to_string().contains("not-a-key"));
    b.fill("#token", &key);
    b.click("#sign-in");
    assert!(
        b.url().ends_with("/ui/apps/shop"),
        "back where it was going: {}",
        b.url()
    );
    let cookie = b.cookie("sealwright_session").expect("a session cookie");

    // The apps page shows the tenant's own app only.
    b.goto(&format!("{base}/ui/apps"));
    let apps = b.text("#apps").unwrap();
    assert!(apps.contains("shop") && !apps.contains("billing"), "{apps}");
    b.screenshot(&shots.join("apps.png"));

    // Create through the form.
    b.goto(&format!("{base}/ui/apps/shop"));
    b.click("#new-secret");
    // A refused form: the API's error next to the field it names, and the value not sent back.
    b.fill("#name", "database");
    b.fill("#data .row:nth-of-type(1) input[name=key]", "password");
    b.fill("#data .row:nth-of-type(1) textarea[name=value]", password);
    b.click("#save");
    let err = b
        .text("#targetNamespaces-error")
        .unwrap_or_else(|| panic!("{}", b.source()));
    assert!(err.starts_with("targetNamespaces"), "{err}");
    assert!(!b.source().contains(password));
    assert_eq!(s.get("/v1/apps/shop/secrets/database").status, 404);
    b.fill("#name", "database");
    b.tick("input[name=namespace][value=shop-prod]");
    b.fill("#data .row:nth-of-type(1) input[name=key]", "username");
    b.fill("#data .row:nth-of-type(1) textarea[name=value]", "shop-app");
    b.fill("#data .row:nth-of-type(2) input[name=key]", "password");
    b.fill("#data .row:nth-of-type(2) textarea[name=value]", password);
    b.screenshot(&shots.join("secret-form.png"));
    b.click("#save");
    assert!(b.url().ends_with("/ui/apps/shop"), "{}", b.url());
    // No reload from here on: a marker on the page's window would not survive one.
    b.script("window.sealwrightTestMarker = 21; return null;");
    let dot = "tr[data-secret=database] [data-dot]";
    let committed = b.wait_text(dot, Duration::from_secs(30), |t| {
        t.starts_with("committed ")
    });
    let head = git_in(&s.repo("platform/shop-platform"), &["rev-parse", "main"]);
    assert_eq!(committed, format!("committed {}", &head.trim()[..7]));
    // The real sops decrypts what the form committed.
    let file = "secrets/shop-prod/database.sops.yaml";
    assert_eq!(value_of(&s, file, "password"), password);
    assert_eq!(value_of(&s, file, "username"), "shop-app");
    // A write from elsewhere (the API) shows up on the open page by itself, pending then committed.
    let r = http::send(
        &s.addr,
        "PUT",
        "/v1/apps/shop/secrets/smtp",
        Some(&key),
        &json!({"targetNamespaces": ["shop-staging"], "data": {"user": "mailer"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let smtp_commit = r.json()["commit"].as_str().unwrap().to_owned();
    b.wait_text(
        "tr[data-secret=smtp] [data-dot]",
        Duration::from_secs(30),
        |t| t == format!("committed {}", &smtp_commit[..7]),
    );
    assert_eq!(
        b.script("return window.sealwrightTestMarker || null;"),
        json!(21),
        "the page was not reloaded"
    );
    b.screenshot(&shots.join("secrets.png"));
    b.record_now();

    // Edit one key: the form shows keys, never values; the commit changes one value.
    b.click("tr[data-secret=database] a[href$='/edit']");
    assert!(b.source().contains("username") && !b.source().contains(password));
    b.fill("textarea[aria-label='value of password']", rotated);
    b.screenshot(&shots.join("secret-edit.png"));
    b.click("#save");
    b.wait_text(dot, Duration::from_secs(30), |t| {
        t.starts_with("committed ") && t != committed
    });
    let edit = git_in(&s.repo("platform/shop-platform"), &["rev-parse", "main"]);
    let diff = git_in(
        &s.repo("platform/shop-platform"),
        &["show", "--unified=0", "--format=", edit.trim(), "--", file],
    );
    let changed: Vec<&str> = diff
        .lines()
        .filter(|l| {
            (l.starts_with('+') || l.starts_with('-'))
                && !l.starts_with("+++")
                && !l.starts_with("---")
        })
        .filter(|l| !l.contains("mac:") && !l.contains("lastmodified:"))
        .collect();
    assert_eq!(changed.len(), 2, "one value out, one in:\n{diff}");
    assert!(
        changed.iter().all(|l| l
            .trim_start_matches(['+', '-'])
            .trim_start()
            .starts_with("password:")),
        "{diff}"
    );
    assert_eq!(value_of(&s, file, "password"), rotated);

    // Another tenant's app: a 403 page, nothing of it shown.
    b.goto(&format!("{base}/ui/apps/billing"));
    assert!(b.text("h1").unwrap().starts_with("403"), "{}", b.source());
    assert!(b.text("#error-message").unwrap().contains("another tenant"));
    b.goto(&format!("{base}/ui/apps/billing/secrets/new"));
    assert!(b.text("h1").unwrap().starts_with("403"));

    // A form on another site aimed at the dashboard is refused, and writes nothing.
    let evil = evil_site(&format!("{base}/ui/apps/shop/secrets/new"));
    b.goto(&evil);
    b.click("#go");
    assert!(b.text("h1").unwrap().starts_with("403"), "{}", b.source());
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(s.get("/v1/apps/shop/secrets/planted").status, 404);

    // The events, the external secrets and the deployments of the tenant.
    b.goto(&format!("{base}/ui/events?app=shop"));
    assert!(b.text("#events").unwrap().contains("secret.created"));
    b.screenshot(&shots.join("events.png"));
    b.goto(&format!("{base}/ui/apps/shop/external"));
    b.screenshot(&shots.join("external.png"));
    b.goto(&format!("{base}/ui/deployments"));
    b.screenshot(&shots.join("deployments.png"));
    // Tenants and keys are the admin's.
    b.goto(&format!("{base}/ui/tenants"));
    assert!(b.text("h1").unwrap().starts_with("403"));

    // Sign out: the session is gone on the server, so its cookie opens nothing.
    b.goto(&format!("{base}/ui/apps"));
    b.click("#sign-out");
    assert!(b.url().ends_with("/ui/login"), "{}", b.url());
    let replay = http::raw(
        &s.addr,
        "GET",
        "/ui/apps",
        &[("Cookie".to_owned(), format!("sealwright_session={cookie}"))],
        b"",
    );
    assert_eq!(replay.status, 303, "the old cookie is signed out");

    // No page the browser was shown held a written value.
    for (url, html) in &b.seen {
        for v in [password, rotated, "shop-app"] {
            assert!(!html.contains(v), "{url} shows a value");
        }
    }
    let logs = s.logs();
    for v in [password, rotated, key.as_str()] {
        assert!(
            !logs.contains(v),
            "a value or the signed-in key reached the log"
        );
    }
}

/// One key of a committed Secret, decrypted by the real sops.
fn value_of(s: &Server, file: &str, key: &str) -> String {
    let plain = decrypt_committed(&s.data, "shop", file);
    let field = |name: &str| match plain.get(name) {
        Some(sops::Value::Map(m)) => m.get(key).and_then(|v| v.as_str()).map(str::to_owned),
        _ => None,
    };
    if let Some(v) = field("stringData") {
        return v;
    }
    use base64::Engine;
    let v = field("data").unwrap_or_else(|| panic!("{file} has no key {key}"));
    String::from_utf8(base64::engine::general_purpose::STANDARD.decode(v).unwrap()).unwrap()
}

#[test]
fn headless_chromium_admin_reveals_a_secret_and_the_reveal_is_in_the_events() {
    let tmp = tempfile::tempdir().unwrap();
    let shots = shots(tmp.path());
    let mut s = Server::new(&tmp.path().join("srv"), CONFIG);
    s.start(&[]);
    register(&s, "shop", "acme", &[("prod", "shop-prod")]);
    api_key(&s, "acme");
    let r = s.send(
        "PUT",
        "/v1/apps/shop/secrets/api",
        &json!({"targetNamespaces": ["shop-prod"], "data": {"token": "tok-5b1f-revealed-once"}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let base = format!("http://{}", s.addr);
    let mut b = Browser::start();
    b.goto(&format!("{base}/ui/login"));
    b.fill("#token", ADMIN);
    b.click("#sign-in");
    b.goto(&format!("{base}/ui/apps/shop"));
    assert!(!b.source().contains("tok-5b1f-revealed-once"));
    b.click("tr[data-secret=api] button");
    assert!(b
        .text("#values")
        .unwrap()
        .contains("tok-5b1f-revealed-once"));
    b.goto(&format!("{base}/ui/events?action=secret.revealed"));
    let events = b.text("#events").unwrap();
    assert!(
        events.contains("secret.revealed") && events.contains("admin"),
        "{events}"
    );
    b.screenshot(&shots.join("events-admin.png"));
    // Tenants and API keys: a new key is shown once.
    b.goto(&format!("{base}/ui/tenants"));
    b.click("section[data-tenant=acme] button.new-key");
    let new_key = b
        .text("#new-key-value")
        .unwrap_or_else(|| panic!("{}", b.source()));
    assert!(new_key.len() > 20, "{new_key}");
    b.screenshot(&shots.join("tenants.png"));
    b.goto(&format!("{base}/ui/tenants"));
    assert!(!b.source().contains(&new_key), "shown once");
    // The key signs in.
    assert_eq!(http::get(&s.addr, "/v1/apps", Some(&new_key)).status, 200);
    b.goto(&format!("{base}/ui/apps"));
    b.screenshot(&shots.join("apps-admin.png"));
}
