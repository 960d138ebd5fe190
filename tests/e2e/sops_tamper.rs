//! Tampered files: sealwright rejects every alteration with the right cause and exit code, the
//! file named, and no plaintext in the message. The originals are written by the real sops.

use crate::common;
use common::*;
use std::path::Path;

const PLAIN: &[u8] = b"apiVersion: v1\nkind: Secret\nmetadata:\n    name: demo\nstringData:\n    password: hunter2supersecret\n    user: adminsecretuser\n";
const SECRETS: [&str; 2] = ["hunter2supersecret", "adminsecretuser"];

fn sops_encrypted(d: &Path) -> String {
    let input = d.join("s.yaml");
    std::fs::write(&input, PLAIN).unwrap();
    let enc = ok(sops(
        d,
        None,
        &[
            "-e",
            "--age",
            KEY1_PUB,
            "--encrypted-regex",
            "^(data|stringData)$",
            input.to_str().unwrap(),
        ],
    ));
    String::from_utf8(enc).unwrap()
}

/// Flips one base64 character of the named field in the first ENC value of the line with `key`.
fn flip(text: &str, key: &str, field: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(key))
        .unwrap();
    let start = line.find(&format!("{field}:")).unwrap() + field.len() + 1;
    let mut bytes = line.as_bytes().to_vec();
    bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
    text.replacen(line, std::str::from_utf8(&bytes).unwrap(), 1)
}

fn check(
    d: &Path,
    name: &str,
    content: &str,
    key: Option<u8>,
    extra: &[&str],
    code: i32,
    needle: &str,
) {
    let f = d.join(format!("{name}.yaml"));
    std::fs::write(&f, content).unwrap();
    let mut args = vec!["sops", "decrypt"];
    args.extend(extra);
    args.push(f.to_str().unwrap());
    let out = run(sealwright(d, key, &args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
    if code != 0 {
        assert!(
            stderr.contains(needle),
            "{name}: expected {needle:?} in {stderr}"
        );
        assert!(
            stderr.contains(&format!("{name}.yaml")),
            "{name}: file not named: {stderr}"
        );
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{name}: one line expected: {stderr}"
        );
        assert!(
            out.stdout.is_empty(),
            "{name}: printed output despite failing"
        );
    }
    for s in SECRETS {
        assert!(!stderr.contains(s), "{name}: plaintext leaked: {stderr}");
    }
}

#[test]
fn tampered_files_are_rejected_with_the_right_cause() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let good = sops_encrypted(d);
    check(d, "good", &good, Some(1), &[], 0, "");

    check(
        d,
        "data-flip",
        &flip(&good, "password:", "data"),
        Some(1),
        &[],
        25,
        r#"["stringData"]["password"]: could not decrypt value: could not decrypt with AES_GCM: message authentication failed"#,
    );
    check(
        d,
        "iv-flip",
        &flip(&good, "user:", "iv"),
        Some(1),
        &[],
        25,
        r#"["stringData"]["user"]"#,
    );
    check(
        d,
        "tag-flip",
        &flip(&good, "password:", "tag"),
        Some(1),
        &[],
        25,
        "message authentication failed",
    );
    check(
        d,
        "mac-flip",
        &flip(&good, "mac:", "data"),
        Some(1),
        &[],
        51,
        "cannot decrypt MAC",
    );

    let lm = good.lines().find(|l| l.contains("lastmodified:")).unwrap();
    check(
        d,
        "lastmodified-edit",
        &good.replace(lm, "    lastmodified: \"2001-01-01T00:00:00Z\""),
        Some(1),
        &[],
        51,
        "cannot decrypt MAC",
    );
    check(
        d,
        "lastmodified-bad",
        &good.replace(lm, "    lastmodified: \"yesterday\""),
        Some(1),
        &[],
        1,
        "lastmodified",
    );

    // An unencrypted value is covered by the MAC.
    let renamed = good.replace("name: demo", "name: demo2");
    check(d, "clear-edit", &renamed, Some(1), &[], 51, "MAC mismatch");
    check(
        d,
        "clear-edit-ignored",
        &renamed,
        Some(1),
        &["--ignore-mac"],
        0,
        "",
    );

    // Swapping two encrypted values breaks their AAD (path-bound ciphertexts).
    let pw = good.lines().find(|l| l.contains("password:")).unwrap();
    let user = good.lines().find(|l| l.contains("user:")).unwrap();
    let swapped = good
        .replace(pw, "@@PW@@")
        .replace(user, &pw.replace("password:", "user:"))
        .replace("@@PW@@", &user.replace("user:", "password:"));
    check(
        d,
        "swapped",
        &swapped,
        Some(1),
        &[],
        25,
        "message authentication failed",
    );

    let mac_line = good.lines().find(|l| l.contains("mac: ENC[")).unwrap();
    check(
        d,
        "no-mac",
        &good.replace(mac_line, "    mac: \"\""),
        Some(1),
        &[],
        51,
        "file has no MAC",
    );

    let meta_start = good.find("sops:").unwrap();
    check(
        d,
        "no-metadata",
        &good[..meta_start],
        Some(1),
        &[],
        1,
        "sops metadata not found",
    );
    check(
        d,
        "no-version",
        &good.replace("    version: 3.11.0\n", ""),
        Some(1),
        &[],
        1,
        "version string empty",
    );
    check(
        d,
        "two-rules",
        &good.replace(
            "    version: 3.11.0\n",
            "    encrypted_suffix: _x\n    version: 3.11.0\n",
        ),
        Some(1),
        &[],
        1,
        "cannot use more than one",
    );
    let age_start = good.find("    age:").unwrap();
    let lm_start = good.find("    lastmodified").unwrap();
    check(
        d,
        "no-keys",
        &format!("{}{}", &good[..age_start], &good[lm_start..]),
        Some(1),
        &[],
        1,
        "no keys found in file",
    );

    check(
        d,
        "wrong-key",
        &good,
        Some(2),
        &[],
        128,
        "no identity matched any of the recipients",
    );
    check(
        d,
        "no-identity",
        &good,
        None,
        &[],
        128,
        "no age identities found",
    );

    let plaintext_value = good.replacen(pw, "    password: notencrypted", 1);
    check(
        d,
        "plaintext-value",
        &plaintext_value,
        Some(1),
        &[],
        25,
        "does not match sops' data format",
    );
    let bad_b64 = good.replacen(
        pw,
        "    password: ENC[AES256_GCM,data:!!!,iv:AAAA,tag:AAAAAAAAAAAAAAAAAAAAAA==,type:str]",
        1,
    );
    check(d, "bad-base64", &bad_b64, Some(1), &[], 25, "base64");
    let bad_type = good.replacen("type:str]", "type:weird]", 1);
    check(
        d,
        "bad-type",
        &bad_type,
        Some(1),
        &[],
        25,
        "unknown datatype",
    );
    let not_string = good.replacen(pw, "    password: 12345", 1);
    check(
        d,
        "not-a-string",
        &not_string,
        Some(1),
        &[],
        25,
        "expected an encrypted string, found a value of type int",
    );
}

#[test]
fn encrypting_an_encrypted_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("e.yaml");
    std::fs::write(&f, sops_encrypted(d)).unwrap();
    let out = run(sealwright(
        d,
        None,
        &["sops", "encrypt", "--age", KEY1_PUB, f.to_str().unwrap()],
    ));
    assert_eq!(out.status.code(), Some(203));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already encrypted"));
}

#[test]
fn bad_plain_input_is_a_clear_error_without_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    for (name, content, code) in [
        ("empty.yaml", &b""[..], 92),
        ("list.yaml", b"- hunter2supersecret\n", 2),
        (
            "dup.yaml",
            b"a: hunter2supersecret\na: adminsecretuser\n",
            2,
        ),
        ("broken.json", b"{\"a\": \"hunter2supersecret\"", 2),
        ("bad.env", b"hunter2supersecret\n", 2),
    ] {
        let f = d.join(name);
        std::fs::write(&f, content).unwrap();
        let out = run(sealwright(
            d,
            None,
            &["sops", "encrypt", "--age", KEY1_PUB, f.to_str().unwrap()],
        ));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(code), "{name}: {stderr}");
        assert!(stderr.contains(name), "{name}: {stderr}");
        for s in SECRETS {
            assert!(!stderr.contains(s), "{name}: value leaked: {stderr}");
        }
    }
}

#[test]
fn in_place_failure_keeps_the_original_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = d.join("e.yaml");
    let good = sops_encrypted(d);
    std::fs::write(&f, &good).unwrap();
    let out = run(sealwright(
        d,
        Some(2),
        &["sops", "decrypt", "-i", f.to_str().unwrap()],
    ));
    assert!(!out.status.success());
    assert_eq!(std::fs::read_to_string(&f).unwrap(), good);
    // No stray temp files are left behind.
    assert_eq!(std::fs::read_dir(d).unwrap().count(), 2);
}
