//! Deployment-credentials benchmark (`cargo bench --bench credentials`), in one run:
//! 1. mint + verify throughput for each algorithm (HS256, EdDSA, ES256);
//! 2. on local bare repos, 10,000 deployments across 100 apps: the first delivery after a restart
//!    (every token minted and committed), then one refresh round a fake clock makes due — timed,
//!    and checked to make exactly one commit per platform repo.
//!
//! `APPS` and `PER_APP` in the environment shrink it for a quick look.

#[allow(dead_code)]
#[path = "../tests/e2e/common/reconciler.rs"]
mod reconciler;

use std::sync::Arc;
use std::time::{Duration, Instant};

use sealwright::audit::EventLog;
use sealwright::clock::FakeClock;
use sealwright::git::{ChangeSet, CommitMessage, GitEngine, Identity, Remote};
use sealwright::reconcile::store::{self, DeploymentRecord};
use sealwright::reconcile::{Actor, AppSpec, Source};
use sealwright::tokens::deployment::DeploymentSpec;
use sealwright::tokens::jwt::{Algorithm, Claims, SigningKey, Verifier};
use sealwright::tokens::CredentialSettings;
use serde_json::json;

const T0: i64 = 1_900_000_000;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mint_and_verify() {
    let n = 20_000;
    for alg in [Algorithm::HS256, Algorithm::EdDSA, Algorithm::ES256] {
        let key = SigningKey::generate(alg, "bench");
        let mut v = Verifier::new("https://sealwright.bench", 30);
        v.add(key.verifying_key());
        let claims = |i: usize| Claims {
            sub: format!("00000000-0000-4000-8000-{i:012}"),
            env_id: "prod".into(),
            cluster_id: "c1".into(),
            iss: "https://sealwright.bench".into(),
            jti: format!("{i:032x}"),
            iat: T0,
            exp: T0 + 3600,
        };
        let started = Instant::now();
        let tokens: Vec<String> = (0..n).map(|i| key.mint(&claims(i))).collect();
        let minted = started.elapsed();
        let started = Instant::now();
        for t in &tokens {
            v.verify(t, T0 + 10).unwrap();
        }
        let verified = started.elapsed();
        println!(
            "{:>5}: mint {:>9.0}/s ({:.1} µs), verify {:>9.0}/s ({:.1} µs)",
            alg.as_str(),
            n as f64 / minted.as_secs_f64(),
            minted.as_secs_f64() * 1e6 / n as f64,
            n as f64 / verified.as_secs_f64(),
            verified.as_secs_f64() * 1e6 / n as f64,
        );
    }
}

fn main() {
    mint_and_verify();
    let apps = env_or("APPS", 100);
    let per_app = env_or("PER_APP", 100);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let clock = Arc::new(FakeClock::at(T0));
    let credentials = CredentialSettings {
        api_url: "https://sealwright.bench".into(),
        ..CredentialSettings::default()
    };
    let events = Arc::new(EventLog::in_memory());
    let r = reconciler::local(data, credentials.clone(), clock.clone(), events.clone());
    rt.block_on(r.load()).unwrap();
    let admin = Actor::new("admin");
    let specs: Vec<AppSpec> = (0..apps)
        .map(|a| {
            let name = format!("app{a:03}");
            AppSpec::from_json(&json!({"name": name, "tenant": "bench",
                "environments": [{"name": "prod", "namespace": format!("{name}-prod")}]}))
            .unwrap()
        })
        .collect();
    rt.block_on(async {
        for spec in &specs {
            let view = r
                .register_app(&admin, spec.clone(), Source::Api)
                .await
                .unwrap();
            assert!(view.ready, "{:?}", view.errors);
        }
    });
    // The deployments go straight into the state repo, as a restore from a clone would have them.
    let mut changes = ChangeSet::new();
    for (a, spec) in specs.iter().enumerate() {
        for d in 0..per_app {
            let id = format!("00000000-0000-4000-8{a:03}-{d:012}");
            let dep = DeploymentSpec::from_json(
                &id,
                &json!({"name": format!("d{d}"), "app": spec.name, "environment": "prod",
                    "clusterId": "c1", "namespace": format!("{}-prod", spec.name)}),
                |_| Some(spec.clone()),
            )
            .unwrap();
            let rec = DeploymentRecord {
                spec: dep,
                source: Source::Api,
                revoked: Default::default(),
            };
            changes
                .write(&store::deployment_path(&id), store::encode_deployment(&rec))
                .unwrap();
        }
    }
    let engine = GitEngine::new(
        data.join("cache2"),
        Identity::new("bench", "bench@localhost").unwrap(),
    );
    rt.block_on(engine.apply(
        Arc::new(Remote::local(data.join("state.git")).unwrap()),
        "main",
        changes,
        CommitMessage::new("bench: deployments"),
        &Identity::new("bench", "bench@localhost").unwrap(),
    ))
    .unwrap();
    let total = apps * per_app;

    // The first delivery after a restart: every token minted and committed.
    let r = reconciler::local(data, credentials, clock.clone(), events);
    let started = Instant::now();
    rt.block_on(r.load()).unwrap();
    let loaded = started.elapsed();
    let started = Instant::now();
    let first = rt.block_on(r.reconcile_all(true));
    let delivered = started.elapsed();
    assert!(first.failed.is_empty(), "{first:?}");
    assert_eq!(r.list_deployments().len(), total);
    assert!(r.list_deployments().iter().all(|d| d.commit.is_some()));
    println!(
        "restart with {total} deployments in {apps} apps: load {:.2} s, first delivery {:.2} s ({} commits)",
        loaded.as_secs_f64(),
        delivered.as_secs_f64(),
        first.commits
    );

    // One refresh round: every token is due.
    let heads = || -> Vec<usize> {
        specs
            .iter()
            .map(|s| {
                let repo =
                    git2::Repository::open_bare(reconciler::platform_repo(data, &s.name)).unwrap();
                let mut walk = repo.revwalk().unwrap();
                walk.push_ref("refs/heads/main").unwrap();
                walk.count()
            })
            .collect()
    };
    let before = heads();
    clock.advance(Duration::from_secs(20 * 60));
    let started = Instant::now();
    let report = rt.block_on(r.refresh_credentials(false));
    let refreshed = started.elapsed();
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(report.minted, total);
    let after = heads();
    let per_repo: Vec<usize> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
    assert!(
        per_repo.iter().all(|n| *n == 1),
        "commits per repo: {per_repo:?}"
    );
    assert!(r
        .list_deployments()
        .iter()
        .all(|d| d.last_refresh == Some(T0 + 1200)));
    println!(
        "refresh round: {total} tokens in {apps} repos: {:.2} s, exactly 1 commit per repo (target < 10 s)",
        refreshed.as_secs_f64()
    );
}
