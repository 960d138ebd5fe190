//! Playing the cluster: `kubectl kustomize` builds what Flux would build, and the real `sops`
//! decrypts each Secret the way kustomize-controller does (the resource as JSON, MAC not checked,
//! since kustomize reorders keys). Used on rendered directories and on checked-out repositories.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;
use sops::document::{EmitOptions, Format};
use sops::Map;

use super::{clean, ok, run, sops, sops_bin};

pub fn docs(bytes: &[u8]) -> Vec<Map> {
    sops::store::yaml::parse(bytes).unwrap()
}

pub fn s<'a>(m: &'a Map, path: &[&str]) -> Option<&'a str> {
    let (last, init) = path.split_last()?;
    let mut cur = m;
    for k in init {
        cur = cur.get(k)?.as_map()?;
    }
    cur.get(last)?.as_str()
}

pub fn kustomize(dir: &Path) -> Vec<u8> {
    let mut c = Command::new("kubectl");
    c.args(["kustomize", dir.to_str().unwrap()])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir);
    ok(c)
}

/// The real sops decrypting one built resource as kustomize-controller does.
pub fn flux_decrypt(resource: &Map, key_file: &Path, tmp: &Path) -> std::process::Output {
    let json = Format::Json
        .emit_plain(std::slice::from_ref(resource), EmitOptions::default())
        .unwrap();
    let f = tmp.join("resource.json");
    std::fs::write(&f, json).unwrap();
    let mut c = clean(&sops_bin(), tmp);
    c.env("SOPS_AGE_KEY_FILE", key_file).args([
        "decrypt",
        "--input-type",
        "json",
        "--output-type",
        "yaml",
        "--ignore-mac",
        f.to_str().unwrap(),
    ]);
    run(c)
}

pub fn data_entry(doc: &Map, key: &str) -> Vec<u8> {
    let b64 = s(doc, &["data", key]).unwrap_or_else(|| panic!("no data.{key}"));
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap()
}

/// The real sops with one identity file.
pub fn sops_with(cwd: &Path, key_file: &Path, args: &[&str]) -> Command {
    let mut c = sops(cwd, None, args);
    c.env("SOPS_AGE_KEY_FILE", key_file);
    c
}

/// `SECRET_<NAME>_CHECKSUM` for a Secret's name, as the checksums ConfigMap keys it.
pub fn checksum_variable(name: &str) -> String {
    format!(
        "SECRET_{}_CHECKSUM",
        name.to_ascii_uppercase().replace(['-', '.'], "_")
    )
}

/// The checksums ConfigMap of a namespace in a checked-out platform repo: variable → checksum.
pub fn checksums(platform: &Path, ns: &str) -> BTreeMap<String, String> {
    let path = platform
        .join("secrets")
        .join(ns)
        .join("sealwright-checksums.yaml");
    let Ok(bytes) = std::fs::read(&path) else {
        return BTreeMap::new();
    };
    let doc = &docs(&bytes)[0];
    doc.get("data")
        .and_then(|d| d.as_map())
        .map(|m| {
            m.pairs()
                .filter_map(|(k, v)| Some((k.to_owned(), v.as_str()?.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A Secret as the cluster ends up with it: (app, namespace, name) → key → value.
pub type Applied = BTreeMap<(String, String, String), BTreeMap<String, Vec<u8>>>;

/// Plays the whole key chain on checked-out repositories: builds `flux/apps` and decrypts each
/// app's age key with the cluster key only; then, per app, builds `secrets/` of its platform repo
/// and decrypts every Secret with that app key (and each committed file with `sops -d`, MAC
/// checked). Panics on any failure; returns every Secret the cluster would hold.
pub fn apply_like_flux(
    flux: &Path,
    platform: &BTreeMap<String, PathBuf>,
    cluster_key: &Path,
    tmp: &Path,
) -> Applied {
    std::fs::create_dir_all(tmp).unwrap();
    let mut out = Applied::new();
    let built = docs(&kustomize(&flux.join("apps")));
    let mut app_keys: BTreeMap<String, PathBuf> = BTreeMap::new();
    for res in built.iter().filter(|d| d.contains_key("sops")) {
        let name = s(res, &["metadata", "name"]).unwrap().to_string();
        let dec = flux_decrypt(res, cluster_key, tmp);
        assert!(
            dec.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&dec.stderr)
        );
        if let Some(app) = name.strip_suffix("-platform-age-key") {
            let plain = &docs(&dec.stdout)[0];
            let path = tmp.join(format!("{app}.agekey"));
            std::fs::write(&path, data_entry(plain, "age.agekey")).unwrap();
            app_keys.insert(app.to_string(), path);
        }
    }
    let kinds = |k: &str| {
        built
            .iter()
            .filter(|d| s(d, &["kind"]) == Some(k))
            .filter_map(|d| s(d, &["metadata", "name"]).map(str::to_owned))
            .collect::<Vec<_>>()
    };
    for app in platform.keys() {
        assert!(app_keys.contains_key(app), "no age key Secret for {app}");
        let repo = format!("{app}-platform");
        assert!(
            kinds("GitRepository").contains(&repo),
            "no GitRepository {repo}"
        );
        assert!(
            kinds("Kustomization").contains(&repo),
            "no Kustomization {repo}"
        );
    }
    for (app, dir) in platform {
        // environments/ as Flux applies it (a kustomization of every YAML file when it has
        // none): it builds, and each environment Kustomization is applied as the app's deployer.
        let envs = dir.join("environments");
        if envs.is_dir() {
            let mut files: Vec<String> = std::fs::read_dir(&envs)
                .unwrap()
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|f| f.ends_with(".yaml") || f.ends_with(".yml"))
                .collect();
            files.sort();
            if !files.is_empty() && !envs.join("kustomization.yaml").exists() {
                let build = tmp.join(format!("{app}-environments"));
                let _ = std::fs::remove_dir_all(&build);
                std::fs::create_dir_all(&build).unwrap();
                for f in &files {
                    std::fs::copy(envs.join(f), build.join(f)).unwrap();
                }
                let list: String = files.iter().map(|f| format!("  - {f}\n")).collect();
                std::fs::write(
                    build.join("kustomization.yaml"),
                    format!("resources:\n{list}"),
                )
                .unwrap();
                for d in docs(&kustomize(&build)) {
                    let ours = s(&d, &["metadata", "labels", "app.kubernetes.io/managed-by"])
                        == Some("sealwright");
                    if ours && s(&d, &["kind"]) == Some("Kustomization") {
                        assert_eq!(
                            s(&d, &["spec", "serviceAccountName"]),
                            Some(format!("{app}-deployer").as_str()),
                            "{app}: an environment Kustomization applied as its deployer"
                        );
                        assert_eq!(
                            s(&d, &["spec", "targetNamespace"]),
                            s(&d, &["metadata", "namespace"])
                        );
                    }
                }
            }
        }
        let key = &app_keys[app];
        let secrets = dir.join("secrets");
        if !secrets.join("kustomization.yaml").exists() {
            continue;
        }
        let built = docs(&kustomize(&secrets));
        // The checksums ConfigMap of each namespace: plain, watched by Flux, one key per Secret.
        for res in built
            .iter()
            .filter(|d| s(d, &["kind"]) == Some("ConfigMap"))
        {
            let ns = s(res, &["metadata", "namespace"]).unwrap();
            assert_eq!(s(res, &["metadata", "name"]), Some("sealwright-checksums"));
            assert!(
                !res.contains_key("sops"),
                "{app} {ns}: the checksums are not encrypted"
            );
            assert_eq!(
                s(res, &["metadata", "labels", "reconcile.fluxcd.io/watch"]),
                Some("Enabled")
            );
            let sums = res.get("data").and_then(|d| d.as_map()).expect("checksums");
            for secret in built.iter().filter(|d| {
                s(d, &["kind"]) == Some("Secret") && s(d, &["metadata", "namespace"]) == Some(ns)
            }) {
                let var = checksum_variable(s(secret, &["metadata", "name"]).unwrap());
                let sum = sums.get(&var).and_then(|v| v.as_str());
                assert!(
                    sum.is_some_and(|x| x.len() == 32 && x.bytes().all(|b| b.is_ascii_hexdigit())),
                    "{app} {ns}: no checksum {var}"
                );
            }
        }
        for res in built
            .into_iter()
            .filter(|d| s(d, &["kind"]) == Some("Secret"))
        {
            let ns = s(&res, &["metadata", "namespace"]).unwrap().to_string();
            let name = s(&res, &["metadata", "name"]).unwrap().to_string();
            let file = secrets.join(&ns).join(format!("{name}.sops.yaml"));
            let committed = docs(&ok(sops_with(
                dir,
                key,
                &["decrypt", file.to_str().unwrap()],
            )));
            let dec = flux_decrypt(&res, key, tmp);
            assert!(
                dec.status.success(),
                "{app} {ns}/{name}: {}",
                String::from_utf8_lossy(&dec.stderr)
            );
            let via_flux = &docs(&dec.stdout)[0];
            let mut data = BTreeMap::new();
            if let Some(m) = via_flux.get("data").and_then(|d| d.as_map()) {
                for (k, _) in m.pairs() {
                    let v = data_entry(via_flux, k);
                    assert_eq!(v, data_entry(&committed[0], k), "{app} {ns}/{name} {k}");
                    data.insert(k.to_string(), v);
                }
            }
            out.insert((app.clone(), ns, name), data);
        }
    }
    out
}
