//! Crash safety of `sealwright serve`: the server is killed with SIGKILL at a random moment while
//! writers are busy, 24 times. After each restart every acknowledged write must be there (the
//! value acknowledged, or a later one that was being written), and the platform repo must be
//! whole: `git fsck` clean, `secrets/kustomization.yaml` listing exactly the files present,
//! every file decrypting. At the end the cluster is played on the result.

use crate::common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::flux::apply_like_flux;
use common::http;
use common::server::{checkout, Server, ADMIN};
use common::*;
use serde_json::json;

const CONFIG: &str = "cluster:\n  name: crash\nhost:\n  kind: local\n  owner: platform\n";
const TRIALS: u64 = 24;
const WRITERS: usize = 4;

/// What a writer knows about its secret: the last acknowledged value number, and the highest
/// number it ever sent.
#[derive(Default, Clone, Copy, Debug)]
struct Track {
    acked: Option<u64>,
    sent: u64,
}

fn value(writer: usize, n: u64) -> String {
    format!("crash-value-{writer}-{n:06}")
}

#[test]
fn sigkill_during_writes_never_loses_an_acknowledged_write() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(&tmp.path().join("srv"), CONFIG);
    server.start(&[]);
    let r = server.send(
        "POST",
        "/v1/apps",
        &json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "a", "namespace": "ns-a"}, {"name": "b", "namespace": "ns-b"}]}),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    let tracks: Arc<Mutex<Vec<Track>>> = Arc::new(Mutex::new(vec![Track::default(); WRITERS]));
    let repo = server.repo("platform/shop-platform");
    let mut kills_during_a_write = 0;
    let mut rng_state: u64 = 0x5eed_cafe;
    let mut next = || {
        // xorshift: deterministic delays, different for each trial.
        rng_state ^= rng_state << 13;
        rng_state ^= rng_state >> 7;
        rng_state ^= rng_state << 17;
        rng_state
    };
    for trial in 0..TRIALS {
        let addr = server.addr.clone();
        let mut handles = Vec::new();
        for w in 0..WRITERS {
            let tracks = tracks.clone();
            let addr = addr.clone();
            handles.push(std::thread::spawn(move || loop {
                let n = {
                    let mut t = tracks.lock().unwrap();
                    t[w].sent += 1;
                    t[w].sent
                };
                // Alternate between both namespaces and one, so files come and go too.
                let namespaces = if n % 3 == 0 {
                    json!(["ns-a"])
                } else {
                    json!(["ns-a", "ns-b"])
                };
                let body = serde_json::to_vec(&json!({
                    "targetNamespaces": namespaces, "data": {"value": value(w, n)}
                }))
                .unwrap();
                match http::try_request(
                    &addr,
                    "PUT",
                    &format!("/v1/apps/shop/secrets/s{w}"),
                    Some(ADMIN),
                    Some(&body),
                ) {
                    Ok(resp) if resp.status == 200 => {
                        assert_eq!(resp.json()["committed"], json!(true));
                        tracks.lock().unwrap()[w].acked = Some(n);
                    }
                    Ok(resp) => panic!("unexpected {}: {}", resp.status, resp.text()),
                    Err(_) => return,
                }
            }));
        }
        let delay = 30 + next() % 400;
        std::thread::sleep(Duration::from_millis(delay));
        let in_flight = {
            let t = tracks.lock().unwrap();
            t.iter().any(|x| x.acked != Some(x.sent))
        };
        if in_flight {
            kills_during_a_write += 1;
        }
        server.kill();
        for h in handles {
            h.join().unwrap();
        }
        let started = Instant::now();
        server.start(&[]);
        assert!(started.elapsed() < Duration::from_secs(60));

        // Every acknowledged write survived, and nothing older than it came back.
        let snapshot = tracks.lock().unwrap().clone();
        for (w, t) in snapshot.iter().enumerate() {
            let resp = server.get(&format!("/v1/apps/shop/secrets/s{w}?reveal=true"));
            let Some(acked) = t.acked else {
                continue;
            };
            assert_eq!(
                resp.status,
                200,
                "trial {trial}: s{w} acknowledged as {acked} but gone: {}",
                resp.text()
            );
            let got = resp.json()["data"]["value"].as_str().unwrap().to_string();
            let n: u64 = got.rsplit('-').next().unwrap().parse().unwrap();
            assert!(
                n >= acked && n <= t.sent,
                "trial {trial}: s{w} is {n}, acknowledged {acked}, sent up to {}",
                t.sent
            );
        }
        // The repo is whole.
        git_in(&repo, &["fsck", "--strict", "--no-dangling"]);
        let files = git_in(&repo, &["ls-tree", "-r", "--name-only", "main"]);
        let secret_files: Vec<&str> = files
            .lines()
            .filter(|f| {
                f.starts_with("secrets/")
                    && (f.ends_with(".sops.yaml") || f.ends_with("/sealwright-checksums.yaml"))
            })
            .collect();
        let kustomization = git_in(&repo, &["show", "main:secrets/kustomization.yaml"]);
        for f in &secret_files {
            let rel = f.trim_start_matches("secrets/");
            assert!(
                kustomization.contains(rel),
                "trial {trial}: {f} not listed:\n{kustomization}"
            );
        }
        let listed = kustomization
            .lines()
            .filter(|l| l.trim_start().starts_with("- "))
            .count();
        assert_eq!(
            listed,
            secret_files.len(),
            "trial {trial}:\n{kustomization}\n{files}"
        );
    }
    assert!(
        kills_during_a_write >= TRIALS / 2,
        "only {kills_during_a_write} of {TRIALS} kills hit a write in flight"
    );

    // The cluster, played on the final state, holds exactly what the API says.
    let work = tmp.path().join("check");
    let flux = checkout(&server.repo("platform/flux"), &work.join("flux"));
    let platform = BTreeMap::from([("shop".to_string(), checkout(&repo, &work.join("shop")))]);
    let applied = apply_like_flux(&flux, &platform, &server.cluster_key(), &work.join("sim"));
    for w in 0..WRITERS {
        let resp = server
            .get(&format!("/v1/apps/shop/secrets/s{w}?reveal=true"))
            .json();
        let want = resp["data"]["value"].as_str().unwrap().as_bytes().to_vec();
        for ns in resp["namespaces"].as_array().unwrap() {
            let key = (
                "shop".to_string(),
                ns.as_str().unwrap().to_string(),
                format!("s{w}"),
            );
            assert_eq!(applied[&key]["value"], want);
        }
    }
    // Nothing was ever logged in clear, across every run.
    let logs = server.logs();
    let sent = tracks.lock().unwrap().clone();
    for (w, t) in sent.iter().enumerate() {
        for n in [1, t.sent / 2, t.sent] {
            assert!(!logs.contains(&value(w, n)), "a value in the logs");
        }
    }
}
