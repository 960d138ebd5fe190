//! External-secrets benchmark (`cargo bench --bench external`), in one run:
//! 1. opening one sealed provider file with the operator key, and merging two layers;
//! 2. on local bare repos, one tenant with 100 apps of 2 namespaces each: a change of the tenant's
//!    defaults fanned out to every app (timed, and checked to make exactly one commit per platform
//!    repo), an app override (one app), and the no-op full round after them (every app's set
//!    opened and compared; checked to commit nothing to any platform repo).
//!
//! `APPS` in the environment shrinks it for a quick look.

#[allow(dead_code)]
#[path = "../tests/e2e/common/reconciler.rs"]
mod reconciler;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use sealwright::audit::EventLog;
use sealwright::clock::SystemClock;
use sealwright::external::{self, Origin, Sealed};
use sealwright::keys::AgeKey;
use sealwright::model::SecretValue;
use sealwright::reconcile::{Actor, AppSpec, Source};
use sealwright::tokens::CredentialSettings;
use serde_json::json;
use sops::scalar::DateTime;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn values(prefix: &str, n: usize) -> BTreeMap<String, SecretValue> {
    (0..n)
        .map(|i| {
            (
                format!("{prefix}_KEY_{i}"),
                SecretValue::new(format!("{prefix}-value-{i}-0123456789abcdef").into_bytes()),
            )
        })
        .collect()
}

fn open_and_merge() {
    let operator = AgeKey::generate();
    let sealed = Sealed::seal(
        Origin::Tenant,
        "bench",
        "openai",
        &values("OPENAI", 5),
        &operator.recipient(),
        DateTime::from_unix(2_000_000_000),
    )
    .unwrap();
    let n = 2_000;
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(sealed.open(&operator).unwrap());
    }
    let opened = started.elapsed();
    let tenant: external::Layer<_> = ["openai", "stripe", "sentry"]
        .iter()
        .map(|p| (p.to_string(), values(&p.to_uppercase(), 5)))
        .collect();
    let app: external::Layer<_> = [("openai".to_string(), values("OPENAI", 2))].into();
    let started = Instant::now();
    for _ in 0..n {
        std::hint::black_box(external::resolve(&tenant, &app));
    }
    let merged = started.elapsed();
    println!(
        "open one sealed provider file (5 keys): {:.1} µs; merge 3 tenant providers (15 keys) with 2 overrides: {:.1} µs",
        opened.as_secs_f64() * 1e6 / n as f64,
        merged.as_secs_f64() * 1e6 / n as f64,
    );
}

fn main() {
    open_and_merge();
    let apps = env_or("APPS", 100);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let off = CredentialSettings {
        enabled: false,
        ..CredentialSettings::default()
    };
    let r = reconciler::local(
        data,
        off,
        Arc::new(SystemClock),
        Arc::new(EventLog::in_memory()),
    );
    rt.block_on(r.load()).unwrap();
    let admin = Actor::new("admin");
    let names: Vec<String> = (0..apps).map(|a| format!("app{a:03}")).collect();
    rt.block_on(async {
        for name in &names {
            let spec = AppSpec::from_json(&json!({"name": name, "tenant": "bench",
                "environments": [{"name": "prod", "namespace": format!("{name}-prod")},
                                 {"name": "dev", "namespace": format!("{name}-dev")}]}))
            .unwrap();
            let view = r.register_app(&admin, spec, Source::Api).await.unwrap();
            assert!(view.ready, "{:?}", view.errors);
        }
    });
    let heads = || -> Vec<usize> {
        names
            .iter()
            .map(|n| {
                let repo = git2::Repository::open_bare(reconciler::platform_repo(data, n)).unwrap();
                let mut walk = repo.revwalk().unwrap();
                walk.push_ref("refs/heads/main").unwrap();
                walk.count()
            })
            .collect()
    };
    let body = json!({"OPENAI_API_KEY": "sk-bench-1", "OPENAI_ORG": "org-bench",
        "OPENAI_PROJECT": "proj-bench", "OPENAI_BASE_URL": "https://api.example.invalid",
        "OPENAI_TIMEOUT": "30"});
    let before = heads();
    let started = Instant::now();
    let w = rt
        .block_on(r.put_external(&admin, Origin::Tenant, "bench", "openai", &body))
        .unwrap();
    let fanned = started.elapsed();
    assert_eq!(w.apps.len(), apps);
    assert!(w
        .apps
        .values()
        .all(|a| a.as_ref().is_ok_and(|a| a.committed)));
    let per_repo: Vec<usize> = heads().iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        per_repo.iter().all(|n| *n == 1),
        "commits per repo: {per_repo:?}"
    );
    println!(
        "tenant change (5 keys) fanned out to {apps} apps × 2 namespaces: {:.2} s, exactly 1 commit per repo",
        fanned.as_secs_f64()
    );

    let started = Instant::now();
    rt.block_on(r.put_external(
        &admin,
        Origin::App,
        &names[0],
        "openai",
        &json!({"OPENAI_API_KEY": "sk-bench-override"}),
    ))
    .unwrap();
    println!(
        "one app override (state commit + the app's commit): {:.1} ms",
        started.elapsed().as_secs_f64() * 1e3
    );

    let before = heads();
    let started = Instant::now();
    let report = rt.block_on(r.reconcile_all(true));
    let round = started.elapsed();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(heads(), before, "a no-op round commits nothing");
    println!(
        "no-op full round of {apps} apps with external secrets: {:.2} s, 0 platform commits",
        round.as_secs_f64()
    );
}
