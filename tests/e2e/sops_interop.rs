//! Interop with the real sops 3.11 binary, both directions, over a table of documents:
//! (1) sealwright encrypts → `sops decrypt` prints what it prints for its own encryption;
//! (2) `sops encrypt` → sealwright decrypts to the same bytes as `sops decrypt`;
//! plus `set`/`updatekeys`/`rotate` results that sops still decrypts with a valid MAC, and
//! tampered files that sealwright rejects with the right cause and no plaintext.

use crate::common;
use common::*;
use std::path::Path;

struct Case {
    name: &'static str,
    file: &'static str,
    content: &'static [u8],
    /// Flags for both encrypters (sops legacy `-e` form accepts all of these).
    flags: &'static [&'static str],
}

const CASES: &[Case] = &[
    Case {
        name: "k8s secret, encrypted_regex",
        file: "secret.yaml",
        content: b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: team-a\ntype: Opaque\ndata:\n  password: aHVudGVyMg==\n  user: YWRtaW4=\nstringData:\n  token: \"12345\"\n",
        flags: &["--encrypted-regex", "^(data|stringData)$"],
    },
    Case {
        name: "every YAML scalar type",
        file: "types.yaml",
        content: "s: hello\nempty: \"\"\nnul: null\ntilde: ~\nbare:\nint: 42\nneg: -7\nhex: 0x1F\noct: 0o17\nlegacy_oct: 0123\nfloat: 3.14\nwhole: 1.0\nexp: 1e3\ntiny: 1e-7\nbig: 1.5e300\ninf: .inf\nninf: -.inf\nnan: .nan\nt: true\nf: False\nyes_str: yes\non_str: on\ndate: 2024-01-01\nts: 2024-01-01T10:00:00+02:00\nts_space: 2024-01-01 10:00:00\nfrac: 2001-12-14t21:59:43.10-05:00\nquoted: \"42\"\nsq: 'single'\nunicode: h\u{e9}llo \u{2713} \u{1F600}\nliteral: |\n  line1\n  line2\nstrip: |-\n  no newline\nkeep: |+\n  kept\n\nfolded: >\n  folded text\n  more\nbinary: !!binary aGVsbG8=\ncolon: 'a: b'\nhash: 'a #b'\nlead: ' lead'\n".as_bytes(),
        flags: &[],
    },
    Case {
        name: "deep nesting and lists of maps",
        file: "deep.yaml",
        content: b"a:\n  b:\n    c:\n      d:\n        e:\n          f: deep\nlist:\n  - name: one\n    items: [1, 2, {x: y}]\n  - name: two\n    nested:\n      - - inner\n        - 2\n  - plain\n  - []\n  - {}\nempty_map: {}\nempty_list: []\n",
        flags: &[],
    },
    Case {
        name: "comments",
        file: "comments.yaml",
        content: b"# top comment\nkey: value # trailing\n# between\nmap:\n  # inside\n  a: 1\n  b: 2 # after b\n# before list\nlist:\n  - x\n  - y\n# final\n",
        flags: &[],
    },
    Case {
        name: "multi-document YAML",
        file: "multi.yaml",
        content: b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: one\nstringData:\n  a: \"1\"\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: two\ndata:\n  b: Yg==\n",
        flags: &["--encrypted-regex", "^(data|stringData)$"],
    },
    Case {
        name: "unencrypted suffix on parents and leaves",
        file: "suffix.yaml",
        content: b"secret: s\nvisible_unencrypted: v\nparent_unencrypted:\n  child: c\n  list: [1, 2]\nnum_unencrypted: 1.0\nwhen_unencrypted: 2024-01-01\n",
        flags: &[],
    },
    Case {
        name: "encrypted suffix",
        file: "esuffix.yaml",
        content: b"plain: p\npassword_secret: s\ngroup_secret:\n  inner: i\n",
        flags: &["--encrypted-suffix", "_secret"],
    },
    Case {
        name: "unencrypted regex",
        file: "uregex.yaml",
        content: b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\npublic_key: pk\nprivate_key: sk\n",
        flags: &["--unencrypted-regex", "^(apiVersion|kind|metadata|public_.*)$"],
    },
    Case {
        name: "mac only encrypted",
        file: "maconly.yaml",
        content: b"public: p\ntoken_secret: t\ncount: 3\n",
        flags: &["--mac-only-encrypted", "--encrypted-suffix", "_secret"],
    },
    Case {
        name: "encrypted comment regex",
        file: "cregex.yaml",
        content: b"plain: p\n# sops:enc\nsecret: s\n# note\nother: o\nmap:\n  # sops:enc\n  inner: i\n  visible: v\n",
        flags: &["--encrypted-comment-regex", "sops:enc"],
    },
    Case {
        name: "two recipients",
        file: "two.yaml",
        content: b"password: hunter2\n",
        // sops' --age is not repeatable (the last one wins): one comma-separated list for both.
        flags: &["--age", TWO_RECIPIENTS],
    },
    Case {
        name: "JSON types and escapes",
        file: "doc.json",
        content: "{\n  \"s\": \"<tag> & more\",\n  \"n\": 42,\n  \"f\": 1.5,\n  \"big\": 12345678901234567890,\n  \"e\": 1e3,\n  \"t\": true,\n  \"nul\": null,\n  \"empty\": \"\",\n  \"u\": \"h\u{e9}llo \u{2028} \\u0001\",\n  \"nested\": {\"list\": [1, \"two\", {\"three\": [3]}], \"obj\": {}},\n  \"arr\": []\n}\n".as_bytes(),
        flags: &[],
    },
    Case {
        name: "dotenv",
        file: "app.env",
        content: b"# comment\nDB_PASSWORD=hunter2\nEMPTY=\nQUOTED=\"a b\"\nMULTI=line1\\nline2\nSPACES = x \nURL=postgres://u:p@h/db?x=1&y=2\n",
        flags: &[],
    },
    Case {
        name: "binary",
        file: "blob.bin",
        content: b"\x00\x01\x02binary\xff\xfe\ndata\r\n\x80",
        flags: &[],
    },
];

fn write(dir: &Path, name: &str, content: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p.to_str().unwrap().to_string()
}

const TWO_RECIPIENTS: &str = "age1r2zac9hsyxq4h296qtlgtftdnuua9j48p06rg5whzq9rwq22a5jq4ntakh,age1cazeskvw3g8clsk8qn3vsv055lyrjcg65fzjxgvtpfqc0remqswqt3khcu";

fn enc_args<'a>(tool_sub: &'a [&'a str], flags: &'a [&'a str], file: &'a str) -> Vec<&'a str> {
    let mut v: Vec<&str> = tool_sub.to_vec();
    if !flags.contains(&"--age") {
        v.extend(["--age", KEY1_PUB]);
    }
    v.extend(flags);
    v.push(file);
    v
}

/// Runs one case in both directions; returns (sealwright-encrypted bytes, reference plaintext).
fn both_directions(case: &Case) -> (Vec<u8>, Vec<u8>) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, case.file, case.content);
    let ext = Path::new(case.file).extension().unwrap().to_str().unwrap();

    // Reference: sops encrypts, sops decrypts.
    let sops_enc = ok(sops(d, None, &enc_args(&["-e"], case.flags, &input)));
    let sops_file = write(d, &format!("by-sops.{ext}"), &sops_enc);
    let reference = ok(sops(d, Some(1), &["decrypt", &sops_file]));

    // (2) sealwright decrypts what sops wrote.
    let ours = ok(sealwright(d, Some(1), &["sops", "decrypt", &sops_file]));
    assert_eq!(
        String::from_utf8_lossy(&ours),
        String::from_utf8_lossy(&reference),
        "{}: sealwright decrypt of a sops file",
        case.name
    );
    assert_eq!(ours, reference, "{}", case.name);

    // (1) sealwright encrypts, sops decrypts (and verifies the MAC).
    let sw_enc = ok(sealwright(
        d,
        None,
        &enc_args(&["sops", "encrypt"], case.flags, &input),
    ));
    let sw_file = write(d, &format!("by-sealwright.{ext}"), &sw_enc);
    let by_sops = ok(sops(d, Some(1), &["decrypt", &sw_file]));
    assert_eq!(
        String::from_utf8_lossy(&by_sops),
        String::from_utf8_lossy(&reference),
        "{}: sops decrypt of a sealwright file",
        case.name
    );
    assert_eq!(by_sops, reference, "{}", case.name);
    // And sealwright reads its own output the same way.
    let again = ok(sealwright(d, Some(1), &["sops", "decrypt", &sw_file]));
    assert_eq!(again, reference, "{}", case.name);
    (sw_enc, reference)
}

#[test]
fn table_both_directions_against_real_sops() {
    for case in CASES {
        let (enc, _) = both_directions(case);
        // Every file we write carries the marker Flux's kustomize-controller greps for.
        let text = String::from_utf8_lossy(&enc);
        let marker = match Path::new(case.file).extension().unwrap().to_str().unwrap() {
            "yaml" => "mac: ENC[",
            "env" => "sops_mac=ENC[",
            _ => "\"mac\": \"ENC[",
        };
        assert!(text.contains(marker), "{}: no {marker:?} marker", case.name);
    }
}

#[test]
fn sealwright_output_looks_like_sops_output() {
    // Same structure, indentation, quoting and key order: with the ciphertexts masked, the two
    // encrypted files are identical line for line.
    let mask = |b: &[u8]| {
        let re = regex::Regex::new(r"ENC\[AES256_GCM,[^\]]*\]|-----BEGIN AGE[\s\S]*?-----END AGE ENCRYPTED FILE-----|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ").unwrap();
        let s = String::from_utf8_lossy(b).into_owned();
        // Normalise the armor lines' indentation-bearing text too.
        re.replace_all(&s, "X").into_owned()
    };
    for case in CASES.iter().filter(|c| !c.file.ends_with(".bin")) {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let input = write(d, case.file, case.content);
        let theirs = ok(sops(d, None, &enc_args(&["-e"], case.flags, &input)));
        let ours = ok(sealwright(
            d,
            None,
            &enc_args(&["sops", "encrypt"], case.flags, &input),
        ));
        assert_eq!(mask(&ours), mask(&theirs), "{}", case.name);
    }
}

#[test]
fn yaml_to_json_output_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let input = write(d, "s.yaml", b"a: 1\nb: [x, {c: true}]\n");
    let enc = ok(sealwright(
        d,
        None,
        &[
            "sops",
            "encrypt",
            "--age",
            KEY1_PUB,
            "--output-type",
            "json",
            &input,
        ],
    ));
    let f = write(d, "s.enc.json", &enc);
    let by_sops = ok(sops(d, Some(1), &["decrypt", &f]));
    let ours = ok(sealwright(d, Some(1), &["sops", "decrypt", &f]));
    assert_eq!(ours, by_sops);
    assert!(String::from_utf8(by_sops).unwrap().contains("\"c\": true"));
}

#[test]
fn shamir_key_groups_from_sops_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::copy(
        vectors().join("inputs/shamir-groups.sops.yaml"),
        d.join(".sops.yaml"),
    )
    .unwrap();
    let input = write(d, "g.yaml", b"password: hunter2\nlist: [1, 2]\n");
    let enc = ok(sealwright(d, None, &["sops", "encrypt", &input]));
    let text = String::from_utf8_lossy(&enc).into_owned();
    assert!(
        text.contains("shamir_threshold: 2") && text.contains("key_groups:"),
        "{text}"
    );
    let f = write(d, "g.enc.yaml", &enc);
    // Both groups are needed: one key is not enough, for sops or for us.
    let mut c = sops(d, None, &["decrypt", &f]);
    c.env("SOPS_AGE_KEY", both_keys_text());
    let plain = ok(c);
    assert_eq!(plain, b"password: hunter2\nlist:\n    - 1\n    - 2\n");
    assert!(!run(sops(d, Some(1), &["decrypt", &f])).status.success());
    let out = run(sealwright(d, Some(1), &["sops", "decrypt", &f]));
    assert_eq!(out.status.code(), Some(128));
    assert!(String::from_utf8_lossy(&out.stderr).contains("needs 2 of 2 key groups"));
    let mut c = sealwright(d, None, &["sops", "decrypt", &f]);
    c.env("SOPS_AGE_KEY", both_keys_text());
    assert_eq!(ok(c), plain);
}

#[test]
fn creation_rules_pick_keys_and_rule_like_sops() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::write(
        d.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: secrets/.*\\.sops\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: {KEY1_PUB}\n"),
    )
    .unwrap();
    std::fs::create_dir_all(d.join("secrets/ns")).unwrap();
    let input = write(
        d,
        "secrets/ns/db.sops.yaml",
        b"kind: Secret\nmetadata:\n  name: db\nstringData:\n  p: x\n",
    );
    let ours = ok(sealwright(d, None, &["sops", "encrypt", &input]));
    let text = String::from_utf8(ours).unwrap();
    assert!(text.contains("name: db") && text.contains("encrypted_regex: ^(data|stringData)$"));
    assert!(text.contains(KEY1_PUB));
    // A file no rule matches is an error, even with --age (as in sops).
    let other = write(d, "other.yaml", b"a: b\n");
    let out = run(sealwright(
        d,
        None,
        &["sops", "encrypt", "--age", KEY1_PUB, &other],
    ));
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no matching creation rules found"));
}

fn encrypted_secret(d: &Path) -> String {
    let input = write(d, "s.yaml", b"apiVersion: v1\nkind: Secret\nmetadata:\n  name: demo\nstringData:\n  a: secret1\n  b: keep\n  c: other\n  list: [x, x, y]\n");
    let enc = ok(sealwright(
        d,
        None,
        &[
            "sops",
            "encrypt",
            "--age",
            KEY1_PUB,
            "--encrypted-regex",
            "^(data|stringData)$",
            &input,
        ],
    ));
    write(d, "s.enc.yaml", &enc)
}

fn changed_lines(a: &str, b: &str) -> Vec<String> {
    let al: Vec<&str> = a.lines().collect();
    let bl: Vec<&str> = b.lines().collect();
    assert_eq!(al.len(), bl.len(), "line count changed:\n{a}\n---\n{b}");
    al.iter()
        .zip(&bl)
        .filter(|(x, y)| x != y)
        .map(|(_, y)| y.trim_start().split(':').next().unwrap_or("").to_string())
        .collect()
}

#[test]
fn set_is_noise_free_and_sops_still_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = encrypted_secret(d);
    let before = std::fs::read_to_string(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1100)); // lastmodified has 1 s resolution
    ok(sealwright(
        d,
        Some(1),
        &["sops", "set", &f, r#"["stringData"]["a"]"#, r#""changed""#],
    ));
    let after = std::fs::read_to_string(&f).unwrap();
    assert_eq!(changed_lines(&before, &after), ["a", "lastmodified", "mac"]);
    let plain = String::from_utf8(ok(sops(d, Some(1), &["decrypt", &f]))).unwrap();
    assert!(plain.contains("a: changed") && plain.contains("b: keep"));
    // Setting the same value again changes nothing at all.
    ok(sealwright(
        d,
        Some(1),
        &["sops", "set", &f, r#"["stringData"]["a"]"#, r#""changed""#],
    ));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), after);
    // A new key is added and encrypted.
    ok(sealwright(
        d,
        Some(1),
        &["sops", "set", &f, r#"["stringData"]["new"]"#, r#"{"x": 1}"#],
    ));
    let plain = String::from_utf8(ok(sops(d, Some(1), &["decrypt", &f]))).unwrap();
    assert!(plain.contains("new:\n        x: 1"), "{plain}");
}

#[test]
fn updatekeys_rewraps_without_touching_values() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = encrypted_secret(d);
    let before = std::fs::read_to_string(&f).unwrap();
    std::fs::write(
        d.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: s\\.enc\\.yaml$\n    age: {KEY1_PUB},{KEY2_PUB}\n"
        ),
    )
    .unwrap();
    let out = run(sealwright(d, Some(1), &["sops", "updatekeys", "-y", &f]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("+++ {KEY2_PUB}")));
    let after = std::fs::read_to_string(&f).unwrap();
    let values = |s: &str| {
        s.lines()
            .filter(|l| l.contains("ENC[") || l.contains("lastmodified"))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    assert_eq!(values(&before), values(&after));
    ok(sops(d, Some(2), &["decrypt", &f]));
    ok(sops(d, Some(1), &["decrypt", &f]));
    // Running it again: already up to date, nothing written.
    let out = run(sealwright(d, Some(1), &["sops", "updatekeys", "-y", &f]));
    assert!(String::from_utf8_lossy(&out.stderr).contains("already up to date"));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), after);
}

#[test]
fn rotate_changes_the_data_key_and_sops_decrypts() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = encrypted_secret(d);
    let plain_before = ok(sops(d, Some(1), &["decrypt", &f]));
    let before = std::fs::read_to_string(&f).unwrap();
    ok(sealwright(d, Some(1), &["sops", "rotate", "-i", &f]));
    let after = std::fs::read_to_string(&f).unwrap();
    let encs = |s: &str| {
        s.lines()
            .filter(|l| l.contains("ENC["))
            .map(String::from)
            .collect::<Vec<_>>()
    };
    let (b, a) = (encs(&before), encs(&after));
    assert_eq!(a.len(), b.len());
    assert!(
        a.iter().zip(&b).all(|(x, y)| x != y),
        "every ciphertext must change"
    );
    assert_eq!(ok(sops(d, Some(1), &["decrypt", &f])), plain_before);
    // rotate without -i prints to stdout and leaves the file alone
    let out = ok(sealwright(d, Some(1), &["sops", "rotate", &f]));
    assert!(String::from_utf8_lossy(&out).contains("mac: ENC["));
    assert_eq!(std::fs::read_to_string(&f).unwrap(), after);
}

#[test]
fn stdin_with_input_type() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let mut c = sealwright(
        d,
        None,
        &[
            "sops",
            "encrypt",
            "--age",
            KEY1_PUB,
            "--input-type",
            "json",
            "-",
        ],
    );
    c.stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"a\": \"b\"}")
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let f = write(d, "x.json", &out.stdout);
    assert_eq!(
        ok(sops(d, Some(1), &["decrypt", &f])),
        b"{\n\t\"a\": \"b\"\n}\n"
    );
}

#[test]
fn rotate_adds_and_removes_recipients() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let f = encrypted_secret(d);
    let plain = ok(sops(d, Some(1), &["decrypt", &f]));
    ok(sealwright(
        d,
        Some(1),
        &["sops", "rotate", "-i", "--add-age", KEY2_PUB, &f],
    ));
    assert_eq!(ok(sops(d, Some(2), &["decrypt", &f])), plain);
    assert_eq!(ok(sops(d, Some(1), &["decrypt", &f])), plain);
    ok(sealwright(
        d,
        Some(2),
        &["sops", "rotate", "-i", "--rm-age", KEY1_PUB, &f],
    ));
    assert_eq!(ok(sops(d, Some(2), &["decrypt", &f])), plain);
    // key1 lost access: the new data key was never wrapped for it.
    assert!(!run(sops(d, Some(1), &["decrypt", &f])).status.success());
    assert!(!std::fs::read_to_string(&f).unwrap().contains(KEY1_PUB));
}
