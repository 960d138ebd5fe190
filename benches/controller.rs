//! Controller-mode benchmark (`cargo bench --bench controller`): the real `sealwright serve`
//! in controller mode against the fake Kubernetes API server on loopback (the one peer with no
//! real stand-in here), a local Git host outside its data dir:
//! 1. a controller round of 1,000 `AppPlatformRegistration`s: from their creation until every
//!    one is `Ready=True` (keys as Secrets, platform repo, platform namespace, Flux folder);
//! 2. 1,000 managed Secrets (one per app): from their creation until every one is annotated
//!    `committed: "true"`;
//! 3. a restart on an empty data dir: until every registration is looked at again and the
//!    server is ready, with the number of commits it made (must be zero).
//!
//! `APPS` in the environment shrinks it for a quick look.

#[allow(dead_code)]
#[path = "../tests/e2e/common/certs.rs"]
mod certs;
#[path = "../tests/e2e/common/crd.rs"]
mod crd;
#[path = "../tests/e2e/common/fake_apiserver.rs"]
mod fake_apiserver;
#[allow(dead_code)]
#[path = "../tests/e2e/common/http.rs"]
mod http;
#[allow(dead_code)]
#[path = "../tests/e2e/common/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::json;

fn shared() -> PathBuf {
    std::env::var_os("SEALWRIGHT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")))
}

fn sealwright_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sealwright"))
}

fn head(repo: &std::path::Path) -> String {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-parse", "--verify", "-q", "main"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn commits(repo: &std::path::Path) -> usize {
    let out = std::process::Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(["rev-list", "--count", "main"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

fn wait(what: &str, limit: Duration, done: impl Fn() -> usize, want: usize) -> Duration {
    let t0 = Instant::now();
    loop {
        let n = done();
        if n >= want {
            return t0.elapsed();
        }
        assert!(
            t0.elapsed() < limit,
            "{what}: {n} of {want} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn main() {
    let apps: usize = std::env::var("APPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000);
    let tmp = tempfile::tempdir().unwrap();
    let crd = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flux/crd.yaml"));
    let api = fake_apiserver::FakeApiServer::start(
        &crd,
        &["sealwright-system", "flux-system", "default"],
    );
    let host = tmp.path().join("host");
    std::fs::create_dir_all(&host).unwrap();
    let dir = tmp.path().join("controller");
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = api.kubeconfig(&dir);
    let config = format!(
        "cluster: {{name: bench, recipient: age1r2zac9hsyxq4h296qtlgtftdnuua9j48p06rg5whzq9rwq22a5jq4ntakh}}\n\
         host: {{kind: local, owner: platform, repos_dir: {}}}\n\
         state_repo: platform/sealwright-state\n\
         resync_interval: 1h\n\
         controller: {{kubeconfig: {}, resync: 10m}}\n",
        host.display(),
        kubeconfig.display()
    );
    let mut s = server::Server::new(&dir, &config);
    s.start(&[]);
    let name = |i: usize| format!("app{i:04}");

    let ready = |api: &fake_apiserver::FakeApiServer| {
        api.list("appplatformregistrations", "")
            .iter()
            .filter(|o| {
                o["status"]["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
            .count()
    };
    let t0 = Instant::now();
    for i in 0..apps {
        api.create(&json!({
            "apiVersion": "sealwright.dev/v1alpha1", "kind": "AppPlatformRegistration",
            "metadata": {"name": name(i)},
            "spec": {"tenant": "bench", "environments": [{"name": "prod", "namespace": format!("{}-prod", name(i))}]},
        }))
        .unwrap();
    }
    let created = t0.elapsed();
    let round = wait(
        "registrations Ready",
        Duration::from_secs(1800),
        || ready(&api),
        apps,
    );
    println!(
        "controller round: {apps} registrations Ready in {:.1} s ({:.1} ms each; created in {:.2} s)",
        (created + round).as_secs_f64(),
        (created + round).as_secs_f64() * 1000.0 / apps as f64,
        created.as_secs_f64()
    );

    use base64::Engine;
    let value = base64::engine::general_purpose::STANDARD.encode("bench-value");
    let t1 = Instant::now();
    for i in 0..apps {
        api.create(&json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "database", "namespace": format!("{}-platform", name(i)),
                "labels": {"sealwright.dev/managed-secret": "true"},
                "annotations": {"sealwright.dev/target-namespaces": format!("{}-prod", name(i))}},
            "data": {"password": value},
        }))
        .unwrap();
    }
    let committed = || {
        (0..apps)
            .filter(|i| {
                api.get("secrets", &format!("{}-platform", name(*i)), "database")
                    .is_some_and(|o| {
                        o["metadata"]["annotations"]["sealwright.dev/committed"] == "true"
                    })
            })
            .count()
    };
    let took = wait(
        "managed Secrets committed",
        Duration::from_secs(1800),
        committed,
        apps,
    );
    let took = t1.elapsed().max(took);
    println!(
        "managed Secrets: {apps} committed in {:.1} s ({:.1} ms each)",
        took.as_secs_f64(),
        took.as_secs_f64() * 1000.0 / apps as f64
    );

    let repos: Vec<PathBuf> = ["flux", "sealwright-state"]
        .iter()
        .map(|r| host.join(format!("platform/{r}.git")))
        .collect();
    let before: Vec<String> = repos.iter().map(|r| head(r)).collect();
    let platform_before: usize = (0..apps)
        .map(|i| commits(&host.join(format!("platform/{}-platform.git", name(i)))))
        .sum();
    s.stop();
    std::fs::remove_dir_all(&s.data).unwrap();
    let requests_before = api.requests().len();
    let t2 = Instant::now();
    s.start(&[]);
    let started = t2.elapsed();
    // Every registration is looked at again: its status patch or its Ready reconcile shows up as
    // a request per registration; wait until the controller has listed and settled.
    std::thread::sleep(Duration::from_secs(5));
    let after: Vec<String> = repos.iter().map(|r| head(r)).collect();
    let platform_after: usize = (0..apps)
        .map(|i| commits(&host.join(format!("platform/{}-platform.git", name(i)))))
        .sum();
    let new_commits = (before != after) as usize + platform_after - platform_before;
    println!(
        "restart on an empty data dir: ready in {:.1} s, {} requests to the API server in its first 5 s, {new_commits} commits",
        started.as_secs_f64(),
        api.requests().len() - requests_before
    );
    assert_eq!(new_commits, 0, "a restart on an empty disk committed");
    assert_eq!(ready(&api), apps);
    s.stop();
}
