//! Files written by the real sops 3.11 (`../shared/sops-vectors/encrypted`) decrypt with the
//! `sealwright` binary to exactly what `sops decrypt` printed (`decrypted/`), MAC verified.

use crate::common;
use common::*;

fn decrypt_vector(name: &str) -> Vec<u8> {
    let dir = tempfile::tempdir().unwrap();
    let file = vectors().join("encrypted").join(name);
    let mut c = sealwright(
        dir.path(),
        None,
        &["sops", "decrypt", file.to_str().unwrap()],
    );
    if name.contains("shamir") {
        c.env("SOPS_AGE_KEY", both_keys_text());
    } else {
        c.env("SOPS_AGE_KEY_FILE", key_file(1));
    }
    ok(c)
}

#[test]
fn every_sops_written_vector_decrypts_byte_for_byte() {
    let mut checked = 0;
    for entry in std::fs::read_dir(vectors().join("encrypted")).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        if name.ends_with(".ini") {
            continue; // INI is optional and not supported
        }
        let expected_name = name.replacen(".enc.", ".dec.", 1);
        let expected = std::fs::read(vectors().join("decrypted").join(&expected_name)).unwrap();
        let got = decrypt_vector(&name);
        assert_eq!(
            String::from_utf8_lossy(&got),
            String::from_utf8_lossy(&expected),
            "{name}"
        );
        assert_eq!(got, expected, "{name}");
        checked += 1;
    }
    assert!(checked >= 20, "only {checked} vectors checked");
}

#[test]
fn ops_vectors_decrypt_and_verify() {
    for name in [
        "01-encrypted.enc.yaml",
        "02-after-set.enc.yaml",
        "03-after-rotate.enc.yaml",
        "04-after-updatekeys.enc.yaml",
        "05-after-rotate-add-age.enc.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = vectors().join("ops").join(name);
        let out = ok(sealwright(
            dir.path(),
            Some(1),
            &["sops", "decrypt", file.to_str().unwrap()],
        ));
        assert!(
            String::from_utf8(out).unwrap().contains("kind: Secret"),
            "{name}"
        );
    }
    // Either key works for the files re-keyed to both recipients.
    for name in [
        "04-after-updatekeys.enc.yaml",
        "05-after-rotate-add-age.enc.yaml",
    ] {
        let dir = tempfile::tempdir().unwrap();
        let file = vectors().join("ops").join(name);
        ok(sealwright(
            dir.path(),
            Some(2),
            &["sops", "decrypt", file.to_str().unwrap()],
        ));
    }
}

#[test]
fn extract_prints_a_single_value_raw() {
    let dir = tempfile::tempdir().unwrap();
    let file = vectors().join("encrypted/yaml-basic.enc.yaml");
    let out = ok(sealwright(
        dir.path(),
        Some(1),
        &[
            "sops",
            "decrypt",
            "--extract",
            r#"["stringData"]["password"]"#,
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(out, b"hunter2");
    let out = ok(sealwright(
        dir.path(),
        Some(1),
        &[
            "sops",
            "decrypt",
            "--extract",
            r#"["stringData"]["int"]"#,
            file.to_str().unwrap(),
        ],
    ));
    assert_eq!(out, b"42\n");
}
