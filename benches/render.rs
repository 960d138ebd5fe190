//! Render benchmark (`cargo bench --bench render`): desired state + keys → every file of the Flux
//! repo and the platform repos, in process.
//! - `examples/render.yaml` (2 apps, 26 files): a first render (everything encrypted afresh) and
//!   a rerun with the previous files (noise-free: the reconcile loop's steady state);
//! - a fleet of 100 apps × 2 environments × 3 secrets (1,000+ files), the same two ways;
//! - one app with one secret of 1,000 and of 4,000 keys (a render is linear in a secret's keys);
//! - loading and checking the embedded templates (start-up cost).

use std::collections::BTreeMap;
use std::path::Path;

use criterion::{black_box, Criterion};
use sealwright::config::Config;
use sealwright::keys::{AgeKey, DeployKey};
use sealwright::model::{App, DesiredState, Environment, ManagedSecret, PlatformRepo, SecretValue};
use sealwright::render::{render, AppKeys, Rendered, Templates};
use sops::scalar::DateTime;

fn keys_for(state: &DesiredState) -> BTreeMap<String, AppKeys> {
    state
        .apps
        .iter()
        .map(|a| {
            (
                a.name.clone(),
                AppKeys {
                    age: AgeKey::generate(),
                    deploy: a.repo.is_ssh().then(|| DeployKey::generate("bench")),
                },
            )
        })
        .collect()
}

fn fleet(cluster_recipient: String) -> DesiredState {
    let example = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/render.yaml"
    )))
    .expect("example config");
    let mut state = example.desired_state(cluster_recipient).expect("valid");
    state.apps = (0..100)
        .map(|i| App {
            credentials: Vec::new(),
            external: None,
            name: format!("app{i:03}"),
            repo: PlatformRepo {
                url: format!("ssh://git@github.com/example-org/app{i:03}-platform.git"),
                branch: "main".into(),
                known_hosts: Some("github.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl".into()),
            },
            environments: ["staging", "prod"]
                .iter()
                .map(|e| Environment {
                    name: e.to_string(),
                    namespace: format!("app{i:03}-{e}"),
                    variables: Default::default(),
                    source: None,
                })
                .collect(),
            secrets: ["db", "api", "smtp"]
                .iter()
                .map(|s| ManagedSecret {
                    name: s.to_string(),
                    target_name: s.to_string(),
                    environments: vec![],
                    type_: "Opaque".into(),
                    data: vec![
                        ("username".into(), SecretValue::new(b"service-user".to_vec())),
                        ("password".into(), SecretValue::new(b"0123456789abcdef0123456789abcdef".to_vec())),
                        ("url".into(), SecretValue::new(b"postgres://db.example.invalid:5432/app".to_vec())),
                    ],
                    spec: None,
                })
                .collect(),
        })
        .collect();
    state.validate().expect("fleet valid");
    state
}

fn count(r: &Rendered) -> usize {
    r.flux.len() + r.platform.values().map(|t| t.len()).sum::<usize>()
}

fn main() {
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(10)
        .warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(5));
    let templates = Templates::embedded().expect("templates");
    let cluster = AgeKey::generate();
    let now = DateTime::from_unix(1_700_000_000);

    c.bench_function("templates: load and check at start-up", |b| {
        b.iter(|| black_box(Templates::embedded().expect("templates")))
    });

    let example = Config::load(Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/render.yaml"
    )))
    .expect("example config")
    .desired_state(cluster.recipient())
    .expect("valid");
    let fleet = fleet(cluster.recipient());
    for (name, state) in [("example (2 apps)", &example), ("fleet (100 apps)", &fleet)] {
        let keys = keys_for(state);
        let first = render(state, &keys, &Rendered::default(), &templates, now).expect("render");
        eprintln!("{name}: {} files", count(&first));
        c.bench_function(&format!("render {name}: first render"), |b| {
            b.iter(|| black_box(render(state, &keys, &Rendered::default(), &templates, now)))
        });
        c.bench_function(&format!("render {name}: rerun with previous files"), |b| {
            b.iter(|| black_box(render(state, &keys, &first, &templates, now)))
        });
    }
    for n in [1_000usize, 4_000] {
        let mut wide = example.clone();
        wide.apps.truncate(1);
        let app = &mut wide.apps[0];
        app.secrets.truncate(1);
        app.secrets[0].data = (0..n)
            .map(|i| {
                (
                    format!("k{i:05}"),
                    SecretValue::new(format!("v{i}").into_bytes()),
                )
            })
            .collect();
        let keys = keys_for(&wide);
        c.bench_function(
            &format!("render one secret of {n} keys: first render"),
            |b| b.iter(|| black_box(render(&wide, &keys, &Rendered::default(), &templates, now))),
        );
    }
    c.final_summary();
}
