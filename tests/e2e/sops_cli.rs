//! The CLI edge: identity sources as sops reads them, and no secret in any output but stdout.

use crate::common;
use common::*;

/// A file the real sops encrypted to key1.
fn sops_file(d: &std::path::Path) -> String {
    let f = d.join("s.yaml");
    std::fs::write(
        &f,
        b"token: hunter2-very-secret\nnested:\n    pin: \"0042\"\n",
    )
    .unwrap();
    let enc = ok(sops(
        d,
        None,
        &["-e", "--age", KEY1_PUB, f.to_str().unwrap()],
    ));
    let e = d.join("s.enc.yaml");
    std::fs::write(&e, enc).unwrap();
    e.to_str().unwrap().to_string()
}

const PLAIN: &[u8] = b"token: hunter2-very-secret\nnested:\n    pin: \"0042\"\n";

#[test]
fn identities_from_every_sops_source() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = sops_file(d);
    let key_text = std::fs::read_to_string(key_file(1)).unwrap();

    // SOPS_AGE_KEY_FILE
    assert_eq!(ok(sealwright(d, Some(1), &["sops", "decrypt", &f])), PLAIN);
    // SOPS_AGE_KEY (identity text, age-keygen comments included)
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env("SOPS_AGE_KEY", &key_text);
    assert_eq!(ok(c), PLAIN);
    // SOPS_AGE_KEY_CMD (split shell-style, stdout is identity text)
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env(
        "SOPS_AGE_KEY_CMD",
        format!("cat '{}'", key_file(1).display()),
    );
    assert_eq!(ok(c), PLAIN);
    // The default file under $XDG_CONFIG_HOME, then under $HOME/.config.
    let xdg = d.join("xdg/sops/age");
    std::fs::create_dir_all(&xdg).unwrap();
    std::fs::write(xdg.join("keys.txt"), &key_text).unwrap();
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env("XDG_CONFIG_HOME", d.join("xdg"));
    assert_eq!(ok(c), PLAIN);
    let home = d.join("home");
    std::fs::create_dir_all(home.join(".config/sops/age")).unwrap();
    std::fs::write(home.join(".config/sops/age/keys.txt"), &key_text).unwrap();
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env("HOME", &home);
    assert_eq!(ok(c), PLAIN);
    // Sources are merged: a wrong key in one place does not hide the right one in another.
    let mut c = sealwright(d, Some(2), &["sops", "decrypt", &f]);
    c.env("SOPS_AGE_KEY", &key_text);
    assert_eq!(ok(c), PLAIN);
    // A broken source is a clear error naming it, without the key material.
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env("SOPS_AGE_KEY", "AGE-SECRET-KEY-1NOPENOPE\n");
    let out = run(c);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("SOPS_AGE_KEY: line 1"), "{stderr}");
    assert!(!stderr.contains("NOPENOPE"), "{stderr}");
}

#[test]
fn verbose_logs_never_contain_values_or_keys() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = sops_file(d);
    let key_secret = std::fs::read_to_string(key_file(1))
        .unwrap()
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .unwrap()
        .to_string();
    let plain = d.join("p.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let runs = [
        vec!["-vvv", "sops", "decrypt", f.as_str()],
        vec![
            "-vvv",
            "sops",
            "encrypt",
            "--age",
            KEY1_PUB,
            plain.to_str().unwrap(),
        ],
        vec!["-vvv", "sops", "rotate", f.as_str()],
        vec![
            "-vvv",
            "sops",
            "set",
            f.as_str(),
            r#"["token"]"#,
            r#""hunter2-very-secret-2""#,
        ],
        vec![
            "-vvv",
            "sops",
            "decrypt",
            "--extract",
            r#"["nested"]["pin"]"#,
            f.as_str(),
        ],
    ];
    for args in runs {
        let out = run(sealwright(d, Some(1), &args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        for secret in ["hunter2-very-secret", "0042", key_secret.as_str()] {
            assert!(
                !stderr.contains(secret),
                "{args:?} logged a secret: {stderr}"
            );
        }
    }
}

#[test]
fn usage_errors_are_clear() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let plain = d.join("p.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let p = plain.to_str().unwrap();
    for (args, needle) in [
        (vec!["sops", "encrypt", p], "no age recipients given"),
        (
            vec!["sops", "encrypt", "--age", "age1bogus", p],
            "invalid age recipient",
        ),
        (
            vec![
                "sops",
                "encrypt",
                "--age",
                KEY1_PUB,
                "--encrypted-regex",
                "a",
                "--encrypted-suffix",
                "b",
                p,
            ],
            "cannot use more than one",
        ),
        (
            vec![
                "sops",
                "encrypt",
                "--age",
                KEY1_PUB,
                "--encrypted-regex",
                "(",
                p,
            ],
            "encrypted_regex: invalid regular expression",
        ),
        (
            vec!["sops", "encrypt", "--age", KEY1_PUB, "-"],
            "reading stdin needs --input-type",
        ),
        (
            vec!["sops", "decrypt", "/nonexistent/x.yaml"],
            "/nonexistent/x.yaml: error reading file",
        ),
        (vec!["sops", "set", p, "nokey", "1"], "invalid tree path"),
    ] {
        let out = run(sealwright(d, Some(1), &args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?}");
        assert!(
            stderr.contains(needle),
            "{args:?}: expected {needle:?} in {stderr}"
        );
        assert!(!stderr.contains("hunter2"), "{args:?}: {stderr}");
    }
}
