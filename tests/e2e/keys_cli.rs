//! `sealwright keys generate` against the real `age`: what we generate, age encrypts to and
//! decrypts with.

use crate::common;
use common::*;
use std::os::unix::fs::PermissionsExt;
use std::process::Command;

#[test]
fn generated_keys_work_with_real_age() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let key = d.join("k/app.agekey");
    let out = ok(sealwright(
        d,
        None,
        &["keys", "generate", "--out", key.to_str().unwrap()],
    ));
    let recipient = String::from_utf8(out).unwrap().trim().to_string();
    assert!(recipient.starts_with("age1"), "{recipient}");
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );

    let plain = d.join("m.txt");
    std::fs::write(&plain, b"hello age").unwrap();
    let enc = d.join("m.age");
    let mut c = Command::new("age");
    c.args([
        "-r",
        &recipient,
        "-o",
        enc.to_str().unwrap(),
        plain.to_str().unwrap(),
    ]);
    ok(c);
    let mut c = Command::new("age");
    c.args(["-d", "-i", key.to_str().unwrap(), enc.to_str().unwrap()]);
    assert_eq!(ok(c), b"hello age");

    // sops accepts the identity file too.
    let s = d.join("s.yaml");
    std::fs::write(&s, b"k: v\n").unwrap();
    let encd = ok(sealwright(
        d,
        None,
        &["sops", "encrypt", "--age", &recipient, s.to_str().unwrap()],
    ));
    let e = d.join("s.enc.yaml");
    std::fs::write(&e, encd).unwrap();
    let mut c = sops(d, None, &["decrypt", e.to_str().unwrap()]);
    c.env("SOPS_AGE_KEY_FILE", &key);
    assert_eq!(ok(c), b"k: v\n");

    // An existing key is never overwritten.
    let before = std::fs::read(&key).unwrap();
    let out = run(sealwright(
        d,
        None,
        &["keys", "generate", "--out", key.to_str().unwrap()],
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("not overwriting"));
    assert_eq!(std::fs::read(&key).unwrap(), before);
}

#[test]
fn without_out_prints_the_identity_like_age_keygen() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let out = run(sealwright(d, None, &["keys", "generate"]));
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    let recipient = stderr.trim().strip_prefix("Public key: ").unwrap();
    assert!(stdout.contains(&format!("# public key: {recipient}")));
    assert!(stdout.lines().any(|l| l.starts_with("AGE-SECRET-KEY-1")));
    assert!(!stderr.contains("AGE-SECRET-KEY"));
}
