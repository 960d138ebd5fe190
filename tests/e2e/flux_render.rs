//! `sealwright flux render` against the tools a cluster runs: the Flux CRD schemas, `kubectl
//! kustomize`, and the real `sops` playing kustomize-controller's decryption, plus golden files
//! for `examples/render.yaml`.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use common::flux::*;
use common::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/render.yaml");
const FIXTURE_KEYS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/render-keys");
const GOLDEN: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/render");

struct Rendered {
    dir: tempfile::TempDir,
}

impl Rendered {
    fn out(&self) -> PathBuf {
        self.dir.path().join("out")
    }
    fn keys(&self) -> PathBuf {
        self.dir.path().join("keys")
    }
    fn cluster_key(&self) -> PathBuf {
        self.dir.path().join("cluster.agekey")
    }
}

fn recipient_of(identity_file: &Path) -> String {
    let text = std::fs::read_to_string(identity_file).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("public key comment")
        .to_string()
}

/// Renders `examples/render.yaml` with the fixture keys (copied, mode 0600).
fn render_example() -> Rendered {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    for entry in std::fs::read_dir(FIXTURE_KEYS).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().into_string().unwrap();
        let dest = if name == "cluster.agekey" {
            dir.path().join(&name)
        } else if name.ends_with(".agekey") || name.ends_with(".deploy-key") {
            keys.join(&name)
        } else {
            continue;
        };
        std::fs::copy(entry.path(), &dest).unwrap();
        std::fs::set_permissions(&dest, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let r = Rendered { dir };
    let recipient = recipient_of(&r.cluster_key());
    let out = r.out();
    let keys = r.keys();
    ok(sealwright(
        r.dir.path(),
        None,
        &[
            "flux",
            "render",
            "--config",
            EXAMPLE,
            "--out",
            out.to_str().unwrap(),
            "--cluster-recipient",
            &recipient,
            "--keys-dir",
            keys.to_str().unwrap(),
        ],
    ));
    r
}

#[test]
fn every_flux_object_validates_against_the_flux_crd_schemas() {
    let r = render_example();
    let crd_dir = shared().join("flux-crds");
    let mut crds = Vec::new();
    for f in [
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
    ] {
        crds.extend(common::crd::load(&crd_dir.join(f)));
    }
    let mut validated = BTreeMap::<String, usize>::new();
    for (path, bytes) in files_under(&r.out()) {
        if !path.ends_with(".yaml") {
            continue;
        }
        for doc in docs(&bytes) {
            let (Some(api), Some(kind)) = (s(&doc, &["apiVersion"]), s(&doc, &["kind"])) else {
                continue;
            };
            // Only the two Flux groups have CRDs; anything else of theirs would be a version
            // Flux no longer serves.
            if !api.contains("toolkit.fluxcd.io") {
                continue;
            }
            let crd = crds
                .iter()
                .find(|c| c.api_version == api && c.kind == kind)
                .unwrap_or_else(|| panic!("{path}: {api} {kind} is not served by the Flux CRDs"));
            let report = common::crd::validate(&crd.schema, &doc);
            assert!(report.errors.is_empty(), "{path}: {:#?}", report.errors);
            // CEL rules are not evaluated by the validator: check the ones reached by hand.
            for rule in &report.cel_rules {
                assert!(
                    rule.starts_with("spec: !has(self.serviceAccountName)"),
                    "{path}: unchecked CEL rule {rule}"
                );
                let spec = doc.get("spec").unwrap().as_map().unwrap();
                assert!(!spec.contains_key("serviceAccountName"), "{path}");
            }
            *validated.entry(kind.to_string()).or_default() += 1;
        }
    }
    // apps.yaml + two per app's sync.yaml (secrets, environments); one GitRepository per app.
    assert_eq!(validated.get("Kustomization"), Some(&5), "{validated:?}");
    assert_eq!(validated.get("GitRepository"), Some(&2), "{validated:?}");
}

#[test]
fn the_crd_validator_rejects_what_flux_would() {
    let crds = common::crd::load(
        &shared().join("flux-crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml"),
    );
    let good = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: a\n  namespace: flux-system\nspec:\n  interval: 10m0s\n  prune: true\n  sourceRef:\n    kind: GitRepository\n    name: x\n";
    let v1 = crds
        .iter()
        .find(|c| c.api_version.ends_with("/v1"))
        .unwrap();
    assert!(common::crd::validate(&v1.schema, &docs(good.as_bytes())[0])
        .errors
        .is_empty());
    for (bad, words) in [
        (
            good.replace("prune: true", "prune: true\n  decrypton: {}"),
            "spec.decrypton: unknown field",
        ),
        (good.replace("10m0s", "10 minutes"), "spec.interval"),
        (
            good.replace("  prune: true\n", ""),
            "required field \"prune\"",
        ),
        (
            good.replace("kind: GitRepository", "kind: Git"),
            "spec.sourceRef.kind",
        ),
        (good.replace("name: a", "name: A"), "metadata.name"),
    ] {
        let errors = common::crd::validate(&v1.schema, &docs(bad.as_bytes())[0]).errors;
        assert!(
            errors.iter().any(|e| e.contains(words)),
            "{words}: {errors:#?}"
        );
    }
}

#[test]
fn every_rendered_directory_builds_with_kubectl_kustomize() {
    let r = render_example();
    let mut built = 0;
    for path in files_under(&r.out())
        .keys()
        .filter(|p| p.ends_with("/kustomization.yaml"))
    {
        let dir = r.out().join(path.trim_end_matches("/kustomization.yaml"));
        let out = kustomize(&dir);
        let kinds: Vec<String> = docs(&out)
            .iter()
            .map(|d| s(d, &["kind"]).unwrap().to_string())
            .collect();
        assert!(!kinds.is_empty(), "{path}");
        built += 1;
    }
    // flux/apps, two flux/apps/<app>-platform, two platform/<app>-platform/secrets.
    assert_eq!(built, 5);
    let all = docs(&kustomize(&r.out().join("flux/apps")));
    let count = |k: &str| all.iter().filter(|d| s(d, &["kind"]) == Some(k)).count();
    assert_eq!(count("Secret"), 4, "an age key and a deploy key per app");
    assert_eq!(count("GitRepository"), 2);
    assert_eq!(
        count("Kustomization"),
        4,
        "per app: its secrets and its environments"
    );
    assert_eq!(
        count("ServiceAccount"),
        8,
        "per app one for the secrets and one for environments/, a deployer per namespace"
    );
    assert_eq!(count("Namespace"), 4, "every environment namespace");
    assert_eq!(count("Role"), 8, "apply + read in each namespace");
    assert_eq!(
        count("RoleBinding"),
        16,
        "apply, read, environments and deployer in each namespace"
    );
    assert_eq!(count("ClusterRoleBinding"), 0);
}

#[test]
fn the_cluster_key_opens_the_app_keys_and_the_app_keys_open_only_their_secrets() {
    let r = render_example();
    let tmp = r.dir.path().join("flux-sim");
    std::fs::create_dir(&tmp).unwrap();
    let config = sealwright::config::Config::load(Path::new(EXAMPLE)).unwrap();
    // 1. kustomize-controller builds ./apps and decrypts each Secret with the cluster key only.
    let built = docs(&kustomize(&r.out().join("flux/apps")));
    let mut app_keys: BTreeMap<String, PathBuf> = BTreeMap::new();
    for res in built.iter().filter(|d| d.contains_key("sops")) {
        let name = s(res, &["metadata", "name"]).unwrap().to_string();
        let out = flux_decrypt(res, &r.cluster_key(), &tmp);
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let plain = &docs(&out.stdout)[0];
        assert_eq!(s(plain, &["metadata", "namespace"]), Some("flux-system"));
        if let Some(app) = name.strip_suffix("-platform-age-key") {
            assert_eq!(
                s(plain, &["metadata", "labels", "reconcile.fluxcd.io/watch"]),
                Some("Enabled")
            );
            let identity = data_entry(plain, "age.agekey");
            let stored = std::fs::read_to_string(r.keys().join(format!("{app}.agekey"))).unwrap();
            let secret_line = |t: &str| {
                t.lines()
                    .find(|l| l.starts_with("AGE-SECRET-KEY-1"))
                    .unwrap()
                    .to_string()
            };
            assert_eq!(
                secret_line(std::str::from_utf8(&identity).unwrap()),
                secret_line(&stored)
            );
            let path = tmp.join(format!("{app}.agekey"));
            std::fs::write(&path, &identity).unwrap();
            app_keys.insert(app.to_string(), path);
        } else {
            let app = name
                .strip_suffix("-platform-deploy-key")
                .expect("deploy key");
            let identity = data_entry(plain, "identity");
            let stored = std::fs::read(r.keys().join(format!("{app}.deploy-key"))).unwrap();
            assert_eq!(identity, stored);
            // The real ssh-keygen derives identity.pub from identity.
            let id_path = tmp.join("identity");
            std::fs::write(&id_path, &identity).unwrap();
            std::fs::set_permissions(&id_path, std::fs::Permissions::from_mode(0o600)).unwrap();
            let derived = ok({
                let mut c = Command::new("ssh-keygen");
                c.args(["-y", "-f", id_path.to_str().unwrap()]);
                c
            });
            let public = String::from_utf8(data_entry(plain, "identity.pub")).unwrap();
            let derived = String::from_utf8(derived).unwrap();
            let key_part = |t: &str| t.split_whitespace().take(2).collect::<Vec<_>>().join(" ");
            assert_eq!(key_part(&derived), key_part(&public));
            let known = String::from_utf8(data_entry(plain, "known_hosts")).unwrap();
            let cfg_app = config.apps.iter().find(|a| a.name == app).unwrap();
            assert_eq!(
                known.trim(),
                cfg_app.repo.known_hosts.as_deref().unwrap().trim()
            );
        }
    }
    assert_eq!(app_keys.len(), 2, "{:?}", app_keys.keys());

    // 2. Each app's Kustomization decrypts its platform repo with the key it just got.
    let mut checked = 0;
    for app in &config.apps {
        let key = &app_keys[&app.name];
        let repo = r.out().join(format!("platform/{}-platform", app.name));
        let built = docs(&kustomize(&repo.join("secrets")));
        for secret in &app.secrets {
            for ns in app.target_namespaces(secret) {
                // The file as committed, with sops' MAC check...
                let file = repo.join(format!("secrets/{ns}/{}.sops.yaml", secret.target_name));
                let plain = docs(&ok(sops_with(
                    &repo,
                    key,
                    &["decrypt", file.to_str().unwrap()],
                )));
                // ...and the built resource, the way Flux reads it.
                let res = built
                    .iter()
                    .find(|d| {
                        s(d, &["metadata", "namespace"]) == Some(ns)
                            && s(d, &["metadata", "name"]) == Some(secret.target_name.as_str())
                    })
                    .unwrap();
                let out = flux_decrypt(res, key, &tmp);
                assert!(
                    out.status.success(),
                    "{}",
                    String::from_utf8_lossy(&out.stderr)
                );
                let via_flux = docs(&out.stdout);
                for doc in [&plain[0], &via_flux[0]] {
                    assert_eq!(s(doc, &["type"]), Some(secret.type_.as_str()));
                    for (k, v) in &secret.data {
                        assert_eq!(data_entry(doc, k), v.expose(), "{}/{ns}/{k}", app.name);
                    }
                }
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 7);

    // 3. A leaked app key exposes one app, never another; the cluster key alone opens no secret.
    let shop_secret = r
        .out()
        .join("platform/shop-platform/secrets/shop-production/database.sops.yaml");
    for key in [&app_keys["billing"], &r.cluster_key()] {
        let out = run(sops_with(
            r.dir.path(),
            key,
            &["decrypt", shop_secret.to_str().unwrap()],
        ));
        assert!(!out.status.success());
        assert!(out.stdout.is_empty());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("Failed to get the data key"), "{err}");
    }
}

/// Ciphertext, age stanzas and times change on every fresh encryption: mask them.
fn masked(text: &str) -> String {
    let re = regex::Regex::new(
        r"(?s)ENC\[AES256_GCM,[^\]]*\]|-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----|lastmodified: \x22[^\x22]*\x22|hmac-sha256:[0-9a-f]{64}",
    )
    .unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        let m = &c[0];
        if m.starts_with("ENC[") {
            "ENC[<ciphertext>]".to_string()
        } else if m.starts_with("lastmodified") {
            "lastmodified: \"<time>\"".to_string()
        } else if m.starts_with("hmac-sha256:") {
            // The seal tag binds the (fresh, random) data key: it changes with the ciphertext.
            "hmac-sha256:<seal>".to_string()
        } else {
            // Keep the line structure of the block scalar: one masked line, same indentation.
            "-----BEGIN AGE ENCRYPTED FILE-----<masked>-----END AGE ENCRYPTED FILE-----".to_string()
        }
    })
    .into_owned()
}

#[test]
fn golden_files_for_the_example_config() {
    let r = render_example();
    let got: BTreeMap<String, String> = files_under(&r.out())
        .into_iter()
        .map(|(p, b)| (p, masked(&String::from_utf8(b).unwrap())))
        .collect();
    if std::env::var_os("SEALWRIGHT_UPDATE_GOLDEN").is_some() {
        let _ = std::fs::remove_dir_all(GOLDEN);
        for (p, text) in &got {
            let dest = Path::new(GOLDEN).join(p);
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(dest, text).unwrap();
        }
    }
    let want: BTreeMap<String, String> = files_under(Path::new(GOLDEN))
        .into_iter()
        .map(|(p, b)| (p, String::from_utf8(b).unwrap()))
        .collect();
    assert_eq!(
        got.keys().collect::<Vec<_>>(),
        want.keys().collect::<Vec<_>>(),
        "the set of rendered files drifted; rerun with SEALWRIGHT_UPDATE_GOLDEN=1 if intended"
    );
    for (p, text) in &got {
        assert_eq!(
            text, &want[p],
            "{p} drifted from tests/golden/render; rerun with SEALWRIGHT_UPDATE_GOLDEN=1 if intended"
        );
    }
}

#[test]
fn golden_masking_keeps_everything_but_ciphertext() {
    let t = "a: ENC[AES256_GCM,data:x,iv:y,tag:z,type:str]\n    lastmodified: \"2026-01-01T00:00:00Z\"\nb: plain\n";
    assert_eq!(
        masked(t),
        "a: ENC[<ciphertext>]\n    lastmodified: \"<time>\"\nb: plain\n"
    );
}

#[test]
fn rendered_values_never_appear_in_clear() {
    let r = render_example();
    let config = sealwright::config::Config::load(Path::new(EXAMPLE)).unwrap();
    let all: Vec<u8> = files_under(&r.out()).into_values().flatten().collect();
    let hay = String::from_utf8_lossy(&all);
    for app in &config.apps {
        for secret in &app.secrets {
            // Short values ("shop") also occur as names; the long ones must not occur at all.
            for (k, v) in secret.data.iter().filter(|(_, v)| v.expose().len() >= 8) {
                let v = std::str::from_utf8(v.expose()).unwrap();
                let b64 = base64::engine::general_purpose::STANDARD.encode(v);
                assert!(!hay.contains(v), "{}/{k}", secret.name);
                assert!(!hay.contains(&b64), "{}/{k} (base64)", secret.name);
            }
        }
    }
    assert!(!hay.contains("AGE-SECRET-KEY"));
    assert!(!hay.contains("PRIVATE KEY-----"));
}
