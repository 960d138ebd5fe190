//! `sealwright flux render` and `keys generate` as a user runs them: reruns, removals, errors,
//! keys on disk, and nothing secret on the terminal.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::*;

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/render.yaml");

fn render(cwd: &Path, config: &Path, extra: &[&str]) -> std::process::Output {
    let mut args = vec![
        "flux",
        "render",
        "--config",
        config.to_str().unwrap(),
        "--out",
        "out",
        "--keys-dir",
        "keys",
    ];
    args.extend_from_slice(extra);
    run(sealwright(cwd, None, &args))
}

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn first_run_generates_keys_and_a_local_cluster_key_then_reruns_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let o = render(dir.path(), Path::new(EXAMPLE), &["-vvv"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "32 files under out: 32 created, 0 updated, 0 removed, 0 unchanged"
    );
    assert!(stderr(&o).contains("generated a local cluster key keys/_cluster.agekey"));
    for f in [
        "_cluster.agekey",
        "shop.agekey",
        "shop.deploy-key",
        "billing.agekey",
        "billing.deploy-key",
    ] {
        let mode = std::fs::metadata(dir.path().join("keys").join(f))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "{f}");
    }
    let cluster_pub = std::fs::read_to_string(dir.path().join("keys/_cluster.agekey")).unwrap();
    let cluster_pub = cluster_pub
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap()
        .to_string();
    let flux_sops = std::fs::read_to_string(dir.path().join("out/flux/.sops.yaml")).unwrap();
    assert!(flux_sops.contains(&cluster_pub));
    // Logs at -vvv name keys by recipient or fingerprint, never a private key or a value.
    for bad in [
        "AGE-SECRET-KEY",
        "PRIVATE KEY",
        "fake-db-password",
        "fake-smtp",
    ] {
        assert!(!stderr(&o).contains(bad), "{bad}");
        assert!(!stdout(&o).contains(bad), "{bad}");
    }

    let before = files_under(&dir.path().join("out"));
    let o = render(dir.path(), Path::new(EXAMPLE), &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        stdout(&o).trim(),
        "32 files under out: 0 created, 0 updated, 0 removed, 32 unchanged"
    );
    assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    assert_eq!(
        before,
        files_under(&dir.path().join("out")),
        "byte-identical"
    );
}

#[test]
fn changes_touch_only_what_changed_and_leave_others_files_alone() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("render.yaml");
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(&config, &text).unwrap();
    assert!(render(dir.path(), &config, &[]).status.success());
    // Files sealwright does not own: the app team's and flux bootstrap's.
    let team = dir.path().join("out/platform/shop-platform/staging.yaml");
    std::fs::write(&team, "replicas: 2\n").unwrap();
    let boot = dir
        .path()
        .join("out/flux/clusters/demo/flux-system/gotk-sync.yaml");
    std::fs::create_dir_all(boot.parent().unwrap()).unwrap();
    std::fs::write(&boot, "kind: Kustomization\n").unwrap();
    let staging_db = dir
        .path()
        .join("out/platform/shop-platform/secrets/shop-staging/database.sops.yaml");
    let db_before = std::fs::read_to_string(&staging_db).unwrap();

    // One value changes; one secret goes away.
    let edited = text
        .replace("password: fake-db-password-not-real", "password: fake-db-password-rotated")
        .replace(
            "      - name: payment-api-sandbox\n        target_name: payment-api\n        environments: [staging]\n        data:\n          api-key: fake-sandbox-key-1111\n",
            "",
        );
    assert_ne!(edited, text);
    std::fs::write(&config, edited).unwrap();
    let o = render(dir.path(), &config, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    // The two database files, their namespaces' checksums, the shop secrets list and the shop
    // RBAC change; the sandbox secret goes.
    assert_eq!(
        stdout(&o).trim(),
        "31 files under out: 0 created, 6 updated, 1 removed, 25 unchanged"
    );
    assert!(!dir
        .path()
        .join("out/platform/shop-platform/secrets/shop-staging/payment-api.sops.yaml")
        .exists());
    assert_eq!(std::fs::read_to_string(&team).unwrap(), "replicas: 2\n");
    assert_eq!(
        std::fs::read_to_string(&boot).unwrap(),
        "kind: Kustomization\n"
    );
    // A one-value change is a small diff: that value, the MAC and lastmodified (unless both
    // runs fell in the same second).
    let db_after = std::fs::read_to_string(&staging_db).unwrap();
    let diff: Vec<&str> = db_before
        .lines()
        .zip(db_after.lines())
        .filter(|(a, b)| a != b)
        .map(|(a, _)| a.trim_start().split(':').next().unwrap())
        .collect();
    assert_eq!(db_before.lines().count(), db_after.lines().count());
    assert!(
        diff.contains(&"password") && diff.contains(&"mac"),
        "{diff:?}"
    );
    assert!(
        diff.iter()
            .all(|k| ["password", "mac", "lastmodified"].contains(k)),
        "{diff:?}"
    );
}

#[test]
fn bad_configuration_names_the_field_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    let cases = [
        (
            text.replace("namespace: shop-staging", "namespace: Shop_Staging"),
            "apps[0].environments[0].namespace: \"Shop_Staging\"",
        ),
        (
            text.replace(
                "url: ssh://git@github.com/example-org/shop-platform.git",
                "url: git@github.com:example-org/shop-platform.git",
            ),
            "apps[0].repo.url",
        ),
        (
            text.replace("environments: [production]", "environments: [prod]"),
            "apps[0].secrets[1].environments[0]: \"prod\" is not an environment",
        ),
        (
            text.replace("api-key: fake-payment-key-0000", "api-key: 1234"),
            "apps[0].secrets[1].data.api-key: must be a string",
        ),
        (
            text.replace("  flux_source:", "  flux_sauce:"),
            "cluster.flux_sauce: unknown field",
        ),
        (
            text.replace("name: payment-api\n", "name: database\n"),
            "apps[0].secrets[1].name: \"database\" is used by an earlier secret",
        ),
    ];
    for (i, (config, words)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("c{i}.yaml"));
        std::fs::write(&path, config).unwrap();
        let o = render(dir.path(), &path, &[]);
        assert_eq!(o.status.code(), Some(1), "{words}");
        let err = stderr(&o);
        assert!(err.starts_with("sealwright: config "), "{err}");
        assert!(err.contains(words), "{words}: {err}");
        assert!(!err.contains("1234") && !err.contains("fake-"), "{err}");
        assert!(!dir.path().join("out").exists(), "{words}");
    }
    let o = render(
        dir.path(),
        Path::new(EXAMPLE),
        &["--cluster-recipient", "age1notakey"],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("cluster.recipient: "), "{}", stderr(&o));
    assert!(!dir.path().join("out").exists());
}

#[test]
fn a_broken_template_override_fails_before_any_key_is_made() {
    let dir = tempfile::tempdir().unwrap();
    let tpl = dir.path().join("tpl");
    std::fs::create_dir(&tpl).unwrap();
    std::fs::write(tpl.join("flux-sync.yaml.j2"), "name: {{ app.nmae }}\n").unwrap();
    let config = dir.path().join("render.yaml");
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(&config, format!("{text}templates_dir: tpl\n")).unwrap();
    let o = render(dir.path(), &config, &[]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("template flux-sync.yaml.j2: "),
        "{}",
        stderr(&o)
    );
    assert!(!dir.path().join("keys").exists());
    // A working override is used.
    std::fs::write(
        tpl.join("flux-sync.yaml.j2"),
        std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/templates/flux-sync.yaml.j2"
        ))
        .unwrap()
        .replace("interval: 10m0s", "interval: 5m0s"),
    )
    .unwrap();
    let o = render(dir.path(), &config, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let sync =
        std::fs::read_to_string(dir.path().join("out/flux/apps/shop-platform/sync.yaml")).unwrap();
    assert!(sync.contains("interval: 5m0s"), "{sync}");
}

#[test]
fn cluster_recipient_flag_overrides_and_break_glass_is_added() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("render.yaml");
    let text = std::fs::read_to_string(EXAMPLE).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "  # break_glass_recipient: age1...",
            &format!("  break_glass_recipient: {KEY2_PUB}"),
        ),
    )
    .unwrap();
    let o = render(dir.path(), &config, &["--cluster-recipient", KEY1_PUB]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(!dir.path().join("keys/_cluster.agekey").exists());
    let flux_sops = std::fs::read_to_string(dir.path().join("out/flux/.sops.yaml")).unwrap();
    assert!(
        flux_sops.contains(&format!("\"{KEY1_PUB},{KEY2_PUB}\"")),
        "{flux_sops}"
    );
    // The break-glass key alone opens both an app key and a platform secret.
    for f in [
        "out/flux/apps/shop-platform/age-secret.sops.yaml",
        "out/platform/billing-platform/secrets/billing-prod/tls.sops.yaml",
    ] {
        ok(sops(dir.path(), Some(2), &["decrypt", f]));
    }
}
