//! Deployment credentials end to end on local bare repos: tokens minted into encrypted commits,
//! read back by the real sops with every claim checked, refreshed by rounds a fake clock drives
//! (one commit per repo per round), revoked, kept across a restart without a commit, removed when
//! credentials are disabled; one broken deployment in a chunk of ten never stops the other nine.

use crate::common;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine;
use sealwright::audit::EventLog;
use sealwright::clock::FakeClock;
use sealwright::reconcile::{Actor, AppSpec, Reconciler, Source};
use sealwright::tokens::jwt::{Algorithm, TokenError};
use sealwright::tokens::settings::ClusterCredentials;
use sealwright::tokens::CredentialSettings;
use serde_json::{json, Value};

const T0: i64 = 1_900_000_000;
const WEB: &str = "0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f";
const WORKER: &str = "6a1f0c3e-1111-4e2a-8b3c-000000000002";

fn settings(enabled: bool) -> CredentialSettings {
    let mut s = CredentialSettings {
        enabled,
        api_url: "https://sealwright.test".into(),
        ..CredentialSettings::default()
    };
    s.clusters.insert(
        "edge-1".into(),
        ClusterCredentials {
            algorithm: Algorithm::EdDSA,
            ..ClusterCredentials::default()
        },
    );
    s
}

fn shop() -> AppSpec {
    AppSpec::from_json(&json!({"name": "shop", "tenant": "acme", "environments": [
        {"name": "prod", "namespace": "shop-prod"},
        {"name": "staging", "namespace": "shop-staging"}]}))
    .unwrap()
}

use common::commits;

/// The committed credentials Secret, decrypted by the real sops with the app key.
fn decrypt_committed(dir: &Path, path: &str) -> sops::Map {
    common::decrypt_committed(dir, "shop", path)
}

fn part(token: &str, i: usize) -> Value {
    let p = token.split('.').nth(i).unwrap();
    serde_json::from_slice(&B64URL.decode(p).unwrap()).unwrap()
}

fn token_in(doc: &sops::Map) -> String {
    String::from_utf8(common::flux::data_entry(doc, "access_token")).unwrap()
}

async fn register(r: &Reconciler, id: &str, name: &str, env: &str, cluster: &str) {
    let ns = format!("shop-{env}");
    let (created, view) = r
        .put_deployment(
            &Actor::new("admin"),
            id,
            &json!({"name": name, "app": "shop", "environment": env, "clusterId": cluster, "namespace": ns}),
            Source::Api,
        )
        .await
        .unwrap();
    assert!(created);
    assert!(
        view.commit.is_some(),
        "acknowledged once committed: {view:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_are_committed_encrypted_read_by_real_sops_refreshed_revoked_kept_and_removed() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = Arc::new(FakeClock::at(T0));
    let events = Arc::new(EventLog::in_memory());
    let r = common::reconciler::local(dir, settings(true), clock.clone(), events.clone());
    r.load().await.unwrap();
    let admin = Actor::new("admin");
    r.register_app(&admin, shop(), Source::Api).await.unwrap();
    register(&r, WEB, "web", "prod", "c1").await;
    register(&r, WORKER, "worker", "staging", "edge-1").await;
    let repo = common::reconciler::platform_repo(dir, "shop");

    // Every key and every claim, as the cluster would read them.
    let web_path = "secrets/shop-prod/web-credentials.sops.yaml";
    let doc = decrypt_committed(dir, web_path);
    assert_eq!(
        common::flux::s(&doc, &["metadata", "name"]),
        Some("web-credentials")
    );
    assert_eq!(
        common::flux::s(&doc, &["metadata", "namespace"]),
        Some("shop-prod")
    );
    let token = token_in(&doc);
    let (header, claims) = (part(&token, 0), part(&token, 1));
    assert_eq!(header["alg"], "HS256");
    assert_eq!(header["typ"], "JWT");
    let web_view = r.deployment(WEB).unwrap();
    assert_eq!(header["kid"].as_str(), web_view.key_id.as_deref());
    assert_eq!(claims["sub"], WEB);
    assert_eq!(claims["env_id"], "prod");
    assert_eq!(claims["cluster_id"], "c1");
    assert_eq!(claims["iss"], "https://sealwright.test");
    assert_eq!(claims["iat"], T0);
    assert_eq!(claims["exp"], T0 + 3600);
    assert_eq!(claims["jti"].as_str().unwrap().len(), 32);
    assert_eq!(web_view.expires_at, Some(T0 + 3600));
    assert_eq!(web_view.last_refresh, Some(T0));
    assert_eq!(
        common::flux::data_entry(&doc, "deployment_id"),
        WEB.as_bytes()
    );
    assert_eq!(
        common::flux::data_entry(&doc, "api_url"),
        b"https://sealwright.test"
    );
    let values = String::from_utf8(common::flux::data_entry(&doc, "values.yaml")).unwrap();
    let values = &common::flux::docs(values.as_bytes())[0];
    assert_eq!(
        common::flux::s(values, &["platz", "deployment", "access_token"]),
        Some(token.as_str())
    );
    assert_eq!(
        common::flux::s(values, &["platz", "deployment", "id"]),
        Some(WEB)
    );
    assert_eq!(
        common::flux::s(values, &["platz", "api_url"]),
        Some("https://sealwright.test")
    );
    let caller = r.verify_token(&token).unwrap();
    assert_eq!(
        (caller.id.as_str(), caller.environment.as_str()),
        (WEB, "prod")
    );

    // The edge cluster signs with EdDSA, whose public key (only) is published.
    let worker = token_in(&decrypt_committed(
        dir,
        "secrets/shop-staging/worker-credentials.sops.yaml",
    ));
    assert_eq!(part(&worker, 0)["alg"], "EdDSA");
    assert_eq!(part(&worker, 1)["cluster_id"], "edge-1");
    let jwks = r.jwks();
    let kids: Vec<&str> = jwks["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids, [part(&worker, 0)["kid"].as_str().unwrap()]);

    // Not due yet: nothing minted, nothing committed.
    let before = commits(&repo);
    let report = r.refresh_credentials(false).await;
    assert_eq!((report.minted, commits(&repo)), (0, before));

    // A refresh interval later every token is minted again, all in one commit.
    clock.advance(Duration::from_secs(20 * 60));
    let report = r.refresh_credentials(false).await;
    assert_eq!(report.minted, 2, "{report:?}");
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(commits(&repo), before + 1, "one commit per repo per round");
    let refreshed = token_in(&decrypt_committed(dir, web_path));
    assert_ne!(refreshed, token);
    assert_eq!(part(&refreshed, 1)["iat"], T0 + 1200);
    assert_eq!(
        r.deployment(WEB).unwrap().expires_at,
        Some(T0 + 1200 + 3600)
    );
    assert!(
        r.verify_token(&token).is_ok(),
        "the old token lives out its time"
    );

    // Revocation denies that token at once and delivers a new one.
    let (jti, view) = r.revoke_deployment_token(&admin, WEB).await.unwrap();
    assert_eq!(jti.as_deref(), part(&refreshed, 1)["jti"].as_str());
    assert_eq!(r.verify_token(&refreshed).unwrap_err(), TokenError::Revoked);
    let after_revoke = token_in(&decrypt_committed(dir, web_path));
    assert_ne!(after_revoke, refreshed);
    assert!(r.verify_token(&after_revoke).is_ok());
    assert_eq!(view.revoked, 1);
    let state = dir.join("state.git");
    let record = common::git_in(&state, &["show", &format!("main:deployments/{WEB}.yaml")]);
    assert!(record.contains(jti.as_deref().unwrap()), "{record}");

    // A restart reads the tokens back: no commit, same expiry, revocation still in force.
    let platform_commits = commits(&repo);
    let r2 = common::reconciler::local(dir, settings(true), clock.clone(), events.clone());
    r2.load().await.unwrap();
    let round = r2.reconcile_all(true).await;
    assert_eq!(round.failed, Vec::<String>::new());
    assert_eq!(
        commits(&repo),
        platform_commits,
        "a restart commits nothing"
    );
    assert_eq!(r2.deployment(WEB).unwrap().expires_at, view.expires_at);
    assert_eq!(
        r2.verify_token(&refreshed).unwrap_err(),
        TokenError::Revoked
    );
    assert!(r2.verify_token(&after_revoke).is_ok());
    assert_eq!(r2.refresh_credentials(false).await.minted, 0);

    // Values never leave the encrypted files.
    let tokens = [&token, &worker, &refreshed, &after_revoke];
    let logs = [
        common::git_in(&repo, &["log", "--format=%B", "main"]),
        common::git_in(&state, &["log", "--format=%B", "main"]),
        serde_json::to_string(&events.list(0, 10_000, &|_| true)).unwrap(),
        common::git_in(&state, &["grep", "-h", "", "main", "--", "deployments"]),
    ];
    for t in tokens {
        for l in &logs {
            assert!(!l.contains(t.as_str()), "a token leaked into {l}");
        }
    }
    assert!(
        logs[0].contains("deployment credentials: new token for"),
        "{}",
        logs[0]
    );

    // Disabled: the next round removes every credentials file, and mints nothing.
    let r3 = common::reconciler::local(dir, settings(false), clock.clone(), events.clone());
    r3.load().await.unwrap();
    r3.reconcile_all(true).await;
    let files = common::git_in(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!files.contains("-credentials"), "{files}");
    assert_eq!(commits(&repo), platform_commits + 1);
    assert_eq!(r3.refresh_credentials(true).await.minted, 0);

    // Moving a deployment to another environment: its old token speaks for a place it left.
    let (created, moved) = r
        .put_deployment(
            &admin,
            WORKER,
            &json!({"name": "worker", "app": "shop", "environment": "prod", "clusterId": "edge-1", "namespace": "shop-prod"}),
            Source::Api,
        )
        .await
        .unwrap();
    assert!(!created && moved.commit.is_some());
    assert_eq!(r.verify_token(&worker).unwrap_err(), TokenError::Revoked);
    let files = common::git_in(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(
        files.contains("secrets/shop-prod/worker-credentials.sops.yaml"),
        "{files}"
    );
    assert!(
        !files.contains("shop-staging/worker-credentials"),
        "{files}"
    );
    // Deleting a deployment removes its file and its tokens stop verifying.
    r.delete_deployment(&admin, WORKER, Source::Api)
        .await
        .unwrap();
    assert_eq!(r.verify_token(&worker).unwrap_err(), TokenError::Revoked);
    assert!(r.deployment(WORKER).is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_broken_deployment_in_a_chunk_of_ten_does_not_stop_the_other_nine() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = Arc::new(FakeClock::at(T0));
    let r = common::reconciler::local(
        dir,
        settings(true),
        clock.clone(),
        Arc::new(EventLog::in_memory()),
    );
    r.load().await.unwrap();
    let admin = Actor::new("admin");
    r.register_app(&admin, shop(), Source::Api).await.unwrap();
    let ids: Vec<String> = (0..10)
        .map(|i| format!("00000000-0000-4000-8000-{i:012}"))
        .collect();
    for (i, id) in ids.iter().enumerate() {
        // The sixth runs in staging; the others in prod.
        let env = if i == 5 { "staging" } else { "prod" };
        register(&r, id, &format!("d{i}"), env, "c1").await;
    }
    assert_eq!(sealwright::reconcile::CREDENTIAL_CHUNK, 10, "one chunk");
    // Staging goes from the app (as a configuration edit would): d5 can no longer get a token.
    let mut spec = shop();
    spec.environments.retain(|e| e.name == "prod");
    r.update_app(&admin, spec).await.unwrap();
    let repo = common::reconciler::platform_repo(dir, "shop");
    let before = commits(&repo);
    clock.advance(Duration::from_secs(20 * 60));
    let report = r.refresh_credentials(false).await;
    assert_eq!(report.minted, 9, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, ids[5]);
    assert!(report.failed[0].1.contains("staging"), "{report:?}");
    assert_eq!(commits(&repo), before + 1, "the nine in one commit");
    for (i, id) in ids.iter().enumerate() {
        let v = r.deployment(id).unwrap();
        if i == 5 {
            let e = v.last_error.expect("the broken one says why");
            assert!(e.message.contains("environment"), "{}", e.message);
        } else {
            assert_eq!(v.expires_at, Some(T0 + 1200 + 3600), "d{i}");
            assert!(v.last_error.is_none(), "d{i}: {:?}", v.last_error);
        }
    }
}

/// The API in process (tower), over the reconciler: status and JSON body of one request.
async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    auth: Option<(&str, String)>,
    body: Option<Value>,
) -> (u16, Value) {
    use tower::ServiceExt;
    let mut req = axum::http::Request::builder().method(method).uri(uri);
    if let Some((header, value)) = auth {
        req = req.header(header, value);
    }
    let body = body.map_or_else(String::new, |b| b.to_string());
    let resp = app
        .clone()
        .oneshot(req.body(axum::body::Body::from(body)).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployment_token_scope_matrix_and_every_bad_token_is_refused() {
    use sealwright::api::{auth::AdminTokens, router, ApiState, HttpMetrics};
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = Arc::new(FakeClock::at(T0));
    let r = common::reconciler::local(
        dir,
        settings(true),
        clock.clone(),
        Arc::new(EventLog::in_memory()),
    );
    r.load().await.unwrap();
    let admin = Actor::new("admin");
    r.register_app(&admin, shop(), Source::Api).await.unwrap();
    // OWN calls; SAME shares its environment; OTHER runs in staging.
    const OWN: &str = "aaaaaaaa-0000-4000-8000-000000000001";
    const SAME: &str = "aaaaaaaa-0000-4000-8000-000000000002";
    const OTHER: &str = "aaaaaaaa-0000-4000-8000-000000000003";
    register(&r, OWN, "own", "prod", "c1").await;
    register(&r, SAME, "same", "prod", "c1").await;
    register(&r, OTHER, "other", "staging", "c1").await;
    let api = router(ApiState {
        reconciler: r.clone(),
        admins: Arc::new(AdminTokens::new(&[secrecy::SecretString::from(
            "admin-token".to_owned(),
        )])),
        ready: Arc::new(std::sync::atomic::AtomicBool::new(true)),
        http: Arc::new(HttpMetrics::default()),
        webhook_secret: None,
        refusals: Default::default(),
        mirror: None,
        client_certs: None,
        cors_origins: Default::default(),
    });
    let token = token_in(&decrypt_committed(
        dir,
        "secrets/shop-prod/own-credentials.sops.yaml",
    ));
    let body = json!({"name": "x", "app": "shop", "environment": "prod", "clusterId": "c1", "namespace": "shop-prod"});
    let secret = json!({"data": {"k": "v"}, "namespaces": ["shop-prod"]});
    // (method, path, body, status for a deployment token)
    let mut matrix: Vec<(&str, String, Option<Value>, u16)> = Vec::new();
    for (target, read) in [(OWN, 200), (SAME, 200), (OTHER, 404)] {
        matrix.push(("GET", format!("/v1/deployments/{target}"), None, read));
        matrix.push((
            "PUT",
            format!("/v1/deployments/{target}"),
            Some(body.clone()),
            403,
        ));
        matrix.push(("DELETE", format!("/v1/deployments/{target}"), None, 403));
        matrix.push((
            "POST",
            format!("/v1/deployments/{target}/revoke"),
            None,
            403,
        ));
    }
    for (method, path, body) in [
        ("GET", "/v1/apps", None),
        ("POST", "/v1/apps", Some(json!({"name": "x"}))),
        ("GET", "/v1/apps/shop", None),
        ("DELETE", "/v1/apps/shop", None),
        ("GET", "/v1/apps/shop/secrets", None),
        ("GET", "/v1/apps/shop/secrets/db", None),
        ("PUT", "/v1/apps/shop/secrets/db", Some(secret.clone())),
        ("PATCH", "/v1/apps/shop/secrets/db", Some(secret.clone())),
        ("DELETE", "/v1/apps/shop/secrets/db", None),
        ("GET", "/v1/events", None),
        ("GET", "/v1/tenants/acme/api-keys", None),
        ("POST", "/v1/tenants/acme/api-keys", None),
        ("DELETE", "/v1/tenants/acme/api-keys/k1", None),
        ("POST", "/v1/signing-keys/rotate", None),
        ("GET", "/v1/tenants/acme/external-secrets", None),
        ("GET", "/v1/tenants/acme/external-secrets/openai", None),
        (
            "PUT",
            "/v1/tenants/acme/external-secrets/openai",
            Some(json!({"K": "v"})),
        ),
        ("DELETE", "/v1/tenants/acme/external-secrets/openai", None),
        ("GET", "/v1/apps/shop/external-secrets", None),
        ("GET", "/v1/apps/shop/external-secrets/openai", None),
        (
            "PUT",
            "/v1/apps/shop/external-secrets/openai",
            Some(json!({"K": "v"})),
        ),
        ("DELETE", "/v1/apps/shop/external-secrets/openai", None),
        (
            "POST",
            "/v1/apps/shop/deploys",
            Some(json!({"tenant_id": "acme", "app_id": "shop"})),
        ),
    ] {
        matrix.push((method, path.to_owned(), body, 403));
    }
    for header in ["x-platz-token", "authorization"] {
        let auth = || {
            Some(if header == "authorization" {
                (header, format!("Bearer {token}"))
            } else {
                (header, token.clone())
            })
        };
        for (method, path, body, want) in &matrix {
            let (got, answer) = call(&api, method, path, auth(), body.clone()).await;
            assert_eq!(got, *want, "{header}: {method} {path}: {answer}");
            assert!(!answer.to_string().contains(&token));
        }
        let (status, list) = call(&api, "GET", "/v1/deployments", auth(), None).await;
        assert_eq!(status, 200);
        let mut seen: Vec<&str> = list["deployments"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["id"].as_str().unwrap())
            .collect();
        seen.sort();
        assert_eq!(seen, [OWN, SAME], "its environment only");
    }
    // What a deployment sees of itself: times and status, never the token.
    let (_, own) = call(
        &api,
        "GET",
        &format!("/v1/deployments/{OWN}"),
        Some(("x-platz-token", token.clone())),
        None,
    )
    .await;
    assert_eq!(own["expiresAt"], "2030-03-17T18:46:40Z");
    assert_eq!(own["lastRefresh"], "2030-03-17T17:46:40Z");
    assert_eq!(own["lastError"], Value::Null);
    assert_eq!(own["committed"], true);
    // The admin and the tenant's key still do everything the token may not.
    let (status, _) = call(
        &api,
        "GET",
        "/v1/apps",
        Some(("authorization", "Bearer admin-token".into())),
        None,
    )
    .await;
    assert_eq!(status, 200);
    let (status, jwks) = call(&api, "GET", "/.well-known/jwks.json", None, None).await;
    assert_eq!(status, 200);
    let keys = jwks["keys"].as_array().unwrap();
    assert_eq!(
        keys.len(),
        1,
        "the edge cluster's EdDSA key; HS256 keys are never published"
    );
    assert_eq!(
        (keys[0]["kty"].as_str(), keys[0].get("k")),
        (Some("OKP"), None)
    );

    // Refused, each with a general reason and never an echo of the token.
    let forge = |token: &str, f: &dyn Fn(&mut Value, &mut Value)| -> String {
        let (mut h, mut c) = (part(token, 0), part(token, 1));
        f(&mut h, &mut c);
        let sig = token.split('.').nth(2).unwrap();
        format!(
            "{}.{}.{sig}",
            B64URL.encode(h.to_string()),
            B64URL.encode(c.to_string())
        )
    };
    let longer = forge(&token, &|_, c| c["exp"] = json!(T0 + 999_999));
    let other_env = forge(&token, &|_, c| c["env_id"] = json!("staging"));
    let none = {
        let h = json!({"alg": "none", "typ": "JWT", "kid": part(&token, 0)["kid"]});
        let c = part(&token, 1);
        format!(
            "{}.{}.",
            B64URL.encode(h.to_string()),
            B64URL.encode(c.to_string())
        )
    };
    let wrong_key = {
        let kid = part(&token, 0)["kid"].as_str().unwrap().to_owned();
        let k = sealwright::tokens::jwt::SigningKey::generate(Algorithm::HS256, &kid);
        let claims: sealwright::tokens::jwt::Claims =
            serde_json::from_value(part(&token, 1)).unwrap();
        k.mint(&claims)
    };
    for (bad, why) in [
        (longer.as_str(), "signature"),
        (other_env.as_str(), "signature"),
        (none.as_str(), "algorithm"),
        (wrong_key.as_str(), "signature"),
        ("not-a-jwt.at.all", "well-formed"),
    ] {
        let (status, answer) = call(
            &api,
            "GET",
            &format!("/v1/deployments/{OWN}"),
            Some(("x-platz-token", bad.to_owned())),
            None,
        )
        .await;
        assert_eq!(status, 401, "{why}: {answer}");
        let msg = answer["error"].as_str().unwrap();
        assert!(msg.contains(why), "{msg}");
        assert!(!msg.contains(bad));
    }
    // Revoked: refused at once; the new token works.
    let (status, revoked) = call(
        &api,
        "POST",
        &format!("/v1/deployments/{OWN}/revoke"),
        Some(("authorization", "Bearer admin-token".into())),
        None,
    )
    .await;
    assert_eq!(status, 200, "{revoked}");
    assert_eq!(revoked["revoked"], true);
    let (status, answer) = call(
        &api,
        "GET",
        &format!("/v1/deployments/{OWN}"),
        Some(("x-platz-token", token.clone())),
        None,
    )
    .await;
    assert_eq!(status, 401);
    assert!(
        answer["error"].as_str().unwrap().contains("revoked"),
        "{answer}"
    );
    let fresh = token_in(&decrypt_committed(
        dir,
        "secrets/shop-prod/own-credentials.sops.yaml",
    ));
    let auth = || Some(("authorization", format!("Bearer {fresh}")));
    assert_eq!(
        call(&api, "GET", &format!("/v1/deployments/{OWN}"), auth(), None)
            .await
            .0,
        200
    );
    // Expired: past exp and the leeway.
    clock.advance(Duration::from_secs(3600 + 31));
    let (status, answer) = call(&api, "GET", &format!("/v1/deployments/{OWN}"), auth(), None).await;
    assert_eq!(status, 401);
    assert!(
        answer["error"].as_str().unwrap().contains("expired"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployments_declared_in_the_configuration_directory_are_owned_by_it() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("data");
    let conf = tmp.path().join("registrations");
    std::fs::create_dir_all(conf.join("deployments")).unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let r = common::reconciler::local(&dir, settings(true), clock, Arc::new(EventLog::in_memory()));
    r.load().await.unwrap();
    std::fs::write(
        conf.join("shop.yaml"),
        "name: shop\ntenant: acme\nenvironments:\n  - {name: prod, namespace: shop-prod}\n",
    )
    .unwrap();
    let file = conf.join("deployments/web.yaml");
    std::fs::write(
        &file,
        format!("id: {WEB}\nname: web\napp: shop\nenvironment: prod\nclusterId: c1\nnamespace: shop-prod\n"),
    )
    .unwrap();
    std::fs::write(conf.join("deployments/bad.yaml"), "id: nope\n").unwrap();
    let report = sealwright::watch::sync_registrations(&r, &conf).await;
    assert_eq!(report.registered, ["shop", &format!("deployment {WEB}")]);
    assert_eq!(report.problems.len(), 1, "{report:?}");
    assert!(report.problems[0].contains("bad.yaml: id:"), "{report:?}");
    let view = r.deployment(WEB).unwrap();
    assert_eq!(view.source, Source::Config);
    assert!(view.commit.is_some());
    // The API cannot take it over.
    let e = r
        .put_deployment(
            &Actor::new("admin"),
            WEB,
            &json!({"name": "web", "app": "shop", "environment": "prod", "clusterId": "c2", "namespace": "shop-prod"}),
            Source::Api,
        )
        .await
        .unwrap_err();
    assert!(e.to_string().contains("configuration directory"), "{e}");
    // Removing the file (once nothing is broken) removes the deployment and its file.
    std::fs::remove_file(conf.join("deployments/bad.yaml")).unwrap();
    std::fs::remove_file(&file).unwrap();
    let report = sealwright::watch::sync_registrations(&r, &conf).await;
    assert_eq!(report.removed, [format!("deployment {WEB}")], "{report:?}");
    assert!(r.deployment(WEB).is_err());
    let repo = common::reconciler::platform_repo(&dir, "shop");
    let files = common::git_in(&repo, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(!files.contains("web-credentials"), "{files}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotated_signing_keys_sign_new_tokens_and_old_ones_verify_until_they_expire() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let clock = Arc::new(FakeClock::at(T0));
    let r = common::reconciler::local(
        dir,
        settings(true),
        clock.clone(),
        Arc::new(EventLog::in_memory()),
    );
    r.load().await.unwrap();
    let admin = Actor::new("admin");
    r.register_app(&admin, shop(), Source::Api).await.unwrap();
    register(&r, WEB, "web", "prod", "c1").await;
    let path = "secrets/shop-prod/web-credentials.sops.yaml";
    let old = token_in(&decrypt_committed(dir, path));
    let old_kid = part(&old, 0)["kid"].as_str().unwrap().to_owned();
    let kids = r.rotate_signing_keys(&admin).await.unwrap();
    assert_eq!(
        kids.len(),
        4,
        "two active (HS256, EdDSA), two retired: {kids:?}"
    );
    let new = token_in(&decrypt_committed(dir, path));
    let new_kid = part(&new, 0)["kid"].as_str().unwrap().to_owned();
    assert_ne!(new_kid, old_kid, "re-minted with the new key at once");
    assert_eq!(
        r.deployment(WEB).unwrap().key_id.as_deref(),
        Some(new_kid.as_str())
    );
    assert!(
        r.verify_token(&old).is_ok(),
        "the retired key still verifies"
    );
    // The ring is stored encrypted: a restart verifies both, and no key is in clear.
    let state = dir.join("state.git");
    let ring = common::git_in(&state, &["show", "main:signing-keys.sops.yaml"]);
    assert!(ring.contains(&old_kid) && ring.contains(&new_kid));
    assert!(ring.contains("secret: ENC["), "{ring}");
    let r2 = common::reconciler::local(
        dir,
        settings(true),
        clock.clone(),
        Arc::new(EventLog::in_memory()),
    );
    r2.load().await.unwrap();
    assert!(r2.verify_token(&old).is_ok() && r2.verify_token(&new).is_ok());
    // Past the old token's lifetime the retired key goes from the ring at the next round.
    clock.advance(Duration::from_secs(3600 + 60));
    r2.refresh_credentials(false).await;
    let ring = common::git_in(&state, &["show", "main:signing-keys.sops.yaml"]);
    assert!(!ring.contains(&old_kid), "{ring}");
    assert!(ring.contains(&new_kid));
}
