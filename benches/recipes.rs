//! Generated secrets benchmark (`cargo bench --bench recipes`), on the embedded default:
//! 1. making each kind of value alone (`Generate::make`), the slow ones being RSA keys;
//! 2. a whole `PUT` that generates a 4096-bit RSA key, against a `PUT` of set values only;
//! 3. the latency of other apps' writes while such keys are being generated: the key is made
//!    on a blocking thread before the write is queued, so another app's round never waits.
//!
//! `RUNS` in the environment changes how many times each step is taken (default 5).

#[allow(dead_code)]
#[path = "../tests/e2e/common/reconciler.rs"]
mod reconciler;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sealwright::audit::EventLog;
use sealwright::random::Entropy;
use sealwright::recipe::Generate;
use sealwright::reconcile::{Actor, AppSpec, Source};
use serde_json::json;

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn stats(mut v: Vec<Duration>) -> String {
    v.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!(
        "median {:.3} ms (min {:.3}, max {:.3}, n={})",
        ms(v[v.len() / 2]),
        ms(v[0]),
        ms(*v.last().unwrap()),
        v.len()
    )
}

fn main() {
    let runs = env_or("RUNS", 5);
    // 1. Each kind alone, from the OS CSPRNG as a server runs.
    let entropy = Entropy::os();
    for (label, rule) in [
        (
            "alphanumeric 64",
            json!({"kind": "alphanumeric", "length": 64}),
        ),
        ("uuid", json!({"kind": "uuid"})),
        ("ed25519", json!({"kind": "ed25519"})),
        ("ecdsa-p256", json!({"kind": "ecdsa-p256"})),
        (
            "self-signed-tls (P-256)",
            json!({"kind": "self-signed-tls", "commonName": "a.example"}),
        ),
        ("rsa 2048", json!({"kind": "rsa", "bits": 2048})),
        ("rsa 3072", json!({"kind": "rsa", "bits": 3072})),
        ("rsa 4096", json!({"kind": "rsa", "bits": 4096})),
    ] {
        let key = if label.starts_with("self") {
            "tls.crt"
        } else {
            "k"
        };
        let g = Generate::from_json(&format!("generate.{key}"), &rule).unwrap();
        let n = if label.starts_with("rsa") {
            runs
        } else {
            runs * 20
        };
        let times: Vec<Duration> = (0..n)
            .map(|_| {
                let t = Instant::now();
                g.make(key, &mut entropy.rng(), SystemTime::now()).unwrap();
                t.elapsed()
            })
            .collect();
        println!("make {label}: {}", stats(times));
    }

    // 2. and 3. Whole writes through the reconciler.
    let dir = tempfile::tempdir().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let r = reconciler::local(
        dir.path(),
        sealwright::tokens::CredentialSettings::default(),
        Arc::new(sealwright::clock::SystemClock),
        Arc::new(EventLog::open(&dir.path().join("events.jsonl")).unwrap()),
    );
    let admin = Actor::new("admin");
    rt.block_on(async {
        for name in ["keys", "other"] {
            let spec = AppSpec::from_json(&json!({"name": name, "tenant": "bench",
                "environments": [{"name": "prod", "namespace": format!("{name}-prod")}]}))
            .unwrap();
            r.register_app(&admin, spec, Source::Api).await.unwrap();
        }
    });
    let put = |app: &str, name: &str, body: serde_json::Value| {
        let t = Instant::now();
        rt.block_on(r.put_secret(&admin, app, name, &body)).unwrap();
        t.elapsed()
    };
    let plain: Vec<Duration> = (0..runs)
        .map(|i| {
            put(
                "keys",
                &format!("plain-{i}"),
                json!({"targetNamespaces": ["keys-prod"],
                "data": {"password": format!("pw-{i}"), "user": "u"}}),
            )
        })
        .collect();
    println!("PUT of set values only: {}", stats(plain));
    let rsa: Vec<Duration> = (0..runs)
        .map(|i| {
            put("keys", &format!("oidc-{i}"), json!({"targetNamespaces": ["keys-prod"],
                "generate": {"OIDC_PRIVATE_KEY": {"kind": "rsa", "bits": 4096, "publicKey": "OIDC_PUBLIC_KEY"}}}))
        })
        .collect();
    println!("PUT generating a 4096-bit RSA key: {}", stats(rsa));
    let again: Vec<Duration> = (0..runs)
        .map(|i| {
            put("keys", &format!("oidc-{i}"), json!({"targetNamespaces": ["keys-prod"],
                "generate": {"OIDC_PRIVATE_KEY": {"kind": "rsa", "bits": 4096, "publicKey": "OIDC_PUBLIC_KEY"}}}))
        })
        .collect();
    println!(
        "the same PUT again (the key is kept, no commit): {}",
        stats(again)
    );

    // 3. Another app's writes, alone and while 4096-bit keys are generated for `keys`.
    let other = |tag: &str| -> Vec<Duration> {
        (0..runs * 4)
            .map(|i| {
                let body = json!({"data": {"password": format!("{tag}-{i}")}});
                let t = Instant::now();
                if i == 0 {
                    rt.block_on(r.put_secret(
                        &admin,
                        "other",
                        "db",
                        &json!({"targetNamespaces": ["other-prod"], "data": {"password": "x"}}),
                    ))
                    .unwrap();
                } else {
                    rt.block_on(r.patch_secret(&admin, "other", "db", &body))
                        .unwrap();
                }
                t.elapsed()
            })
            .collect()
    };
    println!("another app's writes, alone: {}", stats(other("alone")));
    let busy = {
        let r = r.clone();
        let admin = admin.clone();
        rt.spawn(async move {
            for i in 0..2 {
                r.put_secret(&admin, "keys", &format!("busy-{i}"), &json!({"targetNamespaces": ["keys-prod"],
                    "generate": {"a": {"kind": "rsa", "bits": 4096}, "b": {"kind": "rsa", "bits": 4096}}}))
                    .await
                    .unwrap();
            }
        })
    };
    std::thread::sleep(Duration::from_millis(50));
    println!(
        "another app's writes, while 4096-bit keys are generated: {}",
        stats(other("busy"))
    );
    rt.block_on(busy).unwrap();
}
