//! Dashboard benchmark (`cargo bench --bench dashboard`): one app holding `SECRETS` secrets
//! (default 2,000, the per-app limit) of three keys each, on the embedded default. Measured
//! in-process through the real routers (no socket, so the figures are the server's own cost):
//! 1. the secrets page and the rows `live.js` fetches every second, against the API's
//!    `GET /v1/apps/{app}/secrets` that both call: p50/p99 per request;
//! 2. 50 open pages polling at once with nothing changing (what `live.js` does most of the
//!    time): answers per second.

#[allow(dead_code)]
#[path = "../tests/e2e/common/reconciler.rs"]
mod reconciler;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use sealwright::api::{self, auth::AdminTokens, ApiState};
use sealwright::audit::EventLog;
use sealwright::reconcile::{Actor, AppSpec, Source};
use secrecy::SecretString;
use serde_json::json;
use tower::ServiceExt;

const TOKEN: &str = "bench-admin-token-0123456789abcdef";

fn main() {
    let secrets: usize = std::env::var("SECRETS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2_000);
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = reconciler::local(
        dir.path(),
        sealwright::tokens::CredentialSettings::default(),
        Arc::new(sealwright::clock::SystemClock),
        Arc::new(EventLog::in_memory()),
    );
    let admin = Actor::new("admin");
    rt.block_on(async {
        let spec = AppSpec::from_json(&json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "staging", "namespace": "shop-staging"}, {"name": "prod", "namespace": "shop-prod"}]}))
        .unwrap();
        r.register_app(&admin, spec, Source::Api).await.unwrap();
        let mut puts = tokio::task::JoinSet::new();
        for s in 0..secrets {
            let (r, admin) = (r.clone(), admin.clone());
            puts.spawn(async move {
                let body = json!({"targetNamespaces": ["shop-staging", "shop-prod"],
                    "data": {"username": format!("user-{s}"), "password": format!("pw-{s}"), "url": "postgres://db/x"}});
                r.put_secret(&admin, "shop", &format!("secret-{s:04}"), &body).await.unwrap();
            });
        }
        while let Some(x) = puts.join_next().await {
            x.unwrap();
        }
    });
    let state = ApiState {
        reconciler: r.clone(),
        admins: Arc::new(AdminTokens::new(&[SecretString::from(TOKEN.to_owned())])),
        ready: Arc::new(AtomicBool::new(true)),
        http: Arc::new(api::HttpMetrics::default()),
        webhook_secret: None,
        refusals: Default::default(),
        mirror: None,
        client_certs: None,
        cors_origins: Default::default(),
    };
    let api_router = api::router(state.clone());
    let app = api_router.clone().merge(
        sealwright::ui::Ui::new(state, api_router, None)
            .unwrap()
            .router(),
    );
    let cookie = rt.block_on(async {
        let resp = app
            .clone()
            .oneshot(
                Request::post("/ui/login")
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body(Body::from(format!("token={TOKEN}&next=/ui/apps")))
                    .unwrap(),
            )
            .await
            .unwrap();
        let c = resp.headers()["set-cookie"].to_str().unwrap();
        c.split(';').next().unwrap().to_owned()
    });
    let get = {
        let (app, cookie) = (app.clone(), cookie.clone());
        move |path: &'static str, auth: bool| {
            let app = app.clone();
            let cookie = cookie.clone();
            async move {
                let mut req = Request::get(path);
                if auth {
                    req = req.header("authorization", format!("Bearer {TOKEN}"));
                } else {
                    req = req.header("cookie", cookie);
                }
                let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
                assert_eq!(resp.status(), 200, "{path}");
                axum::body::to_bytes(resp.into_body(), usize::MAX)
                    .await
                    .unwrap()
                    .len()
            }
        }
    };
    for (label, path, auth) in [
        (
            "API GET /v1/apps/shop/secrets",
            "/v1/apps/shop/secrets",
            true,
        ),
        ("dashboard rows (live.js)", "/ui/apps/shop/rows", false),
        ("dashboard secrets page", "/ui/apps/shop", false),
    ] {
        let mut lat = Vec::with_capacity(rounds);
        let mut bytes = 0;
        rt.block_on(async {
            for _ in 0..rounds {
                let t = Instant::now();
                bytes = get(path, auth).await;
                lat.push(t.elapsed());
            }
        });
        lat.sort();
        let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)];
        println!(
            "{label}: {secrets} secrets, {} KiB: p50 {:.1} ms, p99 {:.1} ms",
            bytes / 1024,
            pct(0.5).as_secs_f64() * 1e3,
            pct(0.99).as_secs_f64() * 1e3
        );
    }
    // What live.js sends once it holds the rows: unchanged rows are a bodiless 304.
    let tag = rt.block_on(async {
        let resp = app
            .clone()
            .oneshot(
                Request::get("/ui/apps/shop/rows")
                    .header("cookie", &cookie)
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        resp.headers()["etag"].to_str().unwrap().to_owned()
    });
    let mut lat = Vec::with_capacity(rounds);
    rt.block_on(async {
        for _ in 0..rounds {
            let t = Instant::now();
            let resp = app
                .clone()
                .oneshot(
                    Request::get("/ui/apps/shop/rows")
                        .header("cookie", &cookie)
                        .header("if-none-match", &tag)
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 304);
            lat.push(t.elapsed());
        }
    });
    lat.sort();
    println!(
        "dashboard rows unchanged (304): p50 {:.1} ms, p99 {:.1} ms",
        lat[rounds / 2].as_secs_f64() * 1e3,
        lat[((rounds as f64 * 0.99).ceil() as usize).saturating_sub(1)].as_secs_f64() * 1e3
    );
    let pages = 50;
    let started = Instant::now();
    let answered: usize = rt.block_on(async {
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..pages {
            let (app, cookie, tag) = (app.clone(), cookie.clone(), tag.clone());
            tasks.spawn(async move {
                // As live.js does once it holds the rows: If-None-Match, a 304 while unchanged.
                let mut n = 0;
                for _ in 0..rounds {
                    let req = Request::get("/ui/apps/shop/rows")
                        .header("cookie", &cookie)
                        .header("if-none-match", &tag)
                        .body(Body::empty())
                        .unwrap();
                    let resp = app.clone().oneshot(req).await.unwrap();
                    assert_eq!(resp.status(), 304);
                    n += 1;
                }
                n
            });
        }
        let mut n = 0;
        while let Some(x) = tasks.join_next().await {
            n += x.unwrap();
        }
        n
    });
    let wall = started.elapsed();
    println!(
        "{pages} open pages polling, nothing changing: {answered} answers in {:.1} s ({:.0}/s; each page asks once a second)",
        wall.as_secs_f64(),
        answered as f64 / wall.as_secs_f64().max(Duration::from_millis(1).as_secs_f64())
    );
}
