//! Reconciler benchmark (`cargo bench --bench reconcile`), in one run on the embedded default
//! (local bare repos, file key store, the API on loopback):
//! 1. from empty to 1,000 apps × 10 secrets × 3 namespaces (30,000 secret files): every app
//!    registered (key, repo, `.sops.yaml`, Flux folder) and its 10 secrets written, concurrently;
//! 2. the no-op full round after it (must make zero commits);
//! 3. single-secret updates (`PATCH`, a changed value) from 50 concurrent API clients over HTTP:
//!    latency p50/p99.
//!
//! `APPS` and `WRITES` in the environment shrink it for a quick look.

#[allow(dead_code)]
#[path = "../tests/e2e/common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../tests/e2e/common/reconciler.rs"]
mod reconciler;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sealwright::api::{self, auth::AdminTokens, ApiState};
use sealwright::audit::EventLog;
use sealwright::reconcile::{Actor, AppSpec, Reconciler, Source};
use secrecy::SecretString;
use serde_json::json;

const SECRETS: usize = 10;
const TOKEN: &str = "bench-admin-token";

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    let apps = env_or("APPS", 1_000);
    let writers = 50;
    let per_writer = env_or("WRITES", 20);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let reconciler = reconciler::local(
        data,
        sealwright::tokens::CredentialSettings::default(),
        Arc::new(sealwright::clock::SystemClock),
        Arc::new(EventLog::open(&data.join("events.jsonl")).unwrap()),
    );
    let commits = |r: &Reconciler| {
        use std::sync::atomic::Ordering::Relaxed;
        let m = r.metrics();
        m.commits_platform.load(Relaxed)
            + m.commits_flux.load(Relaxed)
            + m.commits_state.load(Relaxed)
    };
    let admin = Actor::new("admin");

    // 1. From empty to apps × 10 secrets × 3 namespaces.
    let started = Instant::now();
    rt.block_on(async {
        let limit = Arc::new(tokio::sync::Semaphore::new(16));
        let mut tasks = tokio::task::JoinSet::new();
        for a in 0..apps {
            let r = reconciler.clone();
            let admin = admin.clone();
            let limit = limit.clone();
            tasks.spawn(async move {
                let _p = limit.acquire_owned().await;
                let name = format!("app{a:04}");
                let spec = AppSpec::from_json(&json!({"name": name, "tenant": "bench", "environments": [
                    {"name": "dev", "namespace": format!("{name}-dev")},
                    {"name": "staging", "namespace": format!("{name}-staging")},
                    {"name": "prod", "namespace": format!("{name}-prod")}]}))
                .unwrap();
                let view = r.register_app(&admin, spec, Source::Api).await.unwrap();
                assert!(view.ready, "{:?}", view.errors);
                let mut puts = tokio::task::JoinSet::new();
                for s in 0..SECRETS {
                    let r = r.clone();
                    let admin = admin.clone();
                    let name = name.clone();
                    puts.spawn(async move {
                        let body = json!({"targetNamespaces": [format!("{name}-dev"), format!("{name}-staging"), format!("{name}-prod")],
                            "data": {"username": format!("user-{s}"), "password": format!("pw-{a}-{s}-initial"), "url": "postgres://db:5432/x"}});
                        r.put_secret(&admin, &name, &format!("secret-{s}"), &body).await.unwrap();
                    });
                }
                while let Some(x) = puts.join_next().await {
                    x.unwrap();
                }
            });
        }
        while let Some(x) = tasks.join_next().await {
            x.unwrap();
        }
    });
    let full = started.elapsed();
    let full_commits = commits(&reconciler);
    let files: usize = reconciler
        .list_apps()
        .iter()
        .map(|a| {
            reconciler
                .list_secrets(&a.spec.name)
                .unwrap()
                .iter()
                .map(|s| s.namespaces.len())
                .sum::<usize>()
        })
        .sum();
    println!(
        "from empty: {apps} apps, {files} secret files: {:.1} s, {full_commits} commits",
        full.as_secs_f64()
    );

    // 2. The no-op full round.
    let before = commits(&reconciler);
    let started = Instant::now();
    let report = rt.block_on(reconciler.reconcile_all(true));
    let noop = started.elapsed();
    assert!(report.failed.is_empty(), "{report:?}");
    let noop_commits = commits(&reconciler) - before;
    println!(
        "no-op full round: {:.2} s, {noop_commits} commits",
        noop.as_secs_f64()
    );
    assert_eq!(noop_commits, 0);

    // 3. Single-secret updates from 50 concurrent API clients.
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let state = ApiState {
        reconciler: reconciler.clone(),
        admins: Arc::new(AdminTokens::new(&[SecretString::from(TOKEN.to_owned())])),
        ready: Arc::new(AtomicBool::new(true)),
        http: Arc::new(api::HttpMetrics::default()),
        webhook_secret: None,
        refusals: Default::default(),
        mirror: None,
        client_certs: None,
        cors_origins: Default::default(),
    };
    rt.spawn(async move { axum::serve(listener, api::router(state)).await });
    let started = Instant::now();
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                let mut lat = Vec::new();
                let mut seed = 0x9e37_79b9_7f4a_7c15u64 ^ (w as u64 + 1);
                for i in 0..per_writer {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    let app = (seed as usize) % apps;
                    let secret = (seed as usize / apps) % SECRETS;
                    let body = serde_json::to_vec(
                        &json!({"data": {"password": format!("pw-{w}-{i}-update")}}),
                    )
                    .unwrap();
                    let t = Instant::now();
                    let r = http::request(
                        &addr,
                        "PATCH",
                        &format!("/v1/apps/app{app:04}/secrets/secret-{secret}"),
                        Some(TOKEN),
                        Some(&body),
                    );
                    lat.push(t.elapsed());
                    assert_eq!(r.status, 200, "{}", r.text());
                }
                lat
            })
        })
        .collect();
    let mut lat: Vec<Duration> = handles
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .collect();
    let wall = started.elapsed();
    lat.sort();
    let pct = |p: f64| lat[((lat.len() as f64 * p).ceil() as usize).saturating_sub(1)];
    println!(
        "updates: {} PATCHes from {writers} clients in {:.1} s ({:.0}/s): p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        lat.len(),
        wall.as_secs_f64(),
        lat.len() as f64 / wall.as_secs_f64(),
        pct(0.50).as_secs_f64() * 1e3,
        pct(0.99).as_secs_f64() * 1e3,
        lat.last().unwrap().as_secs_f64() * 1e3,
    );
}
