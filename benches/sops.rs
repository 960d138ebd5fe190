//! SOPS engine benchmark, in one run (`cargo bench --bench sops`):
//! 1. criterion: encrypt and decrypt of a typical Secret manifest (5 keys) and of a 1 MiB document,
//!    and that document's YAML parse and emit alone;
//! 2. 1,000 small files (read, encrypt/decrypt, write), in process, against the real `sops` binary
//!    on the same files, and against one `sealwright sops encrypt` process per file.
//!
//! Set `SOPS_BIN` to the sops binary (default: `.tools/bin/sops` from scripts/test-deps.sh) and
//! `BENCH_SOPS_FILES` to run sops on fewer files (default: all 1,000).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use criterion::{black_box, Criterion};
use secrecy::ExposeSecret;
use sops::agekeys::Identities;
use sops::document::{self, EmitOptions, EncryptSettings, Format, KeySpec};
use sops::rules::CryptRule;
use sops::scalar::DateTime;

const SECRET: &str = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: billing-db\n  namespace: billing-prod\ntype: Opaque\nstringData:\n  username: billing\n  password: 9f8e7d6c5b4a39281706f5e4d3c2b1a0\n  host: db.billing.svc.cluster.local\n  port: \"5432\"\n  url: postgres://billing:9f8e7d6c5b4a39281706f5e4d3c2b1a0@db/billing\n";

fn settings(recipient: &str) -> EncryptSettings {
    EncryptSettings {
        keys: KeySpec {
            groups: vec![vec![recipient.to_string()]],
            shamir_threshold: 0,
        },
        rule: CryptRule::from_key("encrypted_regex", "^(data|stringData)$").expect("regex"),
        mac_only_encrypted: false,
    }
}

fn big_document() -> String {
    let mut s = String::from("apiVersion: v1\nkind: Secret\nmetadata:\n  name: big\nstringData:\n");
    let mut i = 0;
    while s.len() < 1 << 20 {
        s.push_str(&format!("  key{i:06}: value-{i:06}-{}\n", "x".repeat(80)));
        i += 1;
    }
    s
}

fn encrypt_bytes(input: &[u8], st: &EncryptSettings) -> Vec<u8> {
    let branches = Format::Yaml.parse_plain(input).expect("parse");
    let doc = document::encrypt(branches, st, Format::Yaml, DateTime::now_utc()).expect("encrypt");
    Format::Yaml
        .emit_encrypted(&doc, EmitOptions::default())
        .expect("emit")
}

fn decrypt_bytes(input: &[u8], ids: &Identities) -> Vec<u8> {
    let doc = Format::Yaml.parse_encrypted(input).expect("parse");
    let dec = document::decrypt(&doc, ids, true).expect("decrypt");
    Format::Yaml
        .emit_plain(&dec.branches, EmitOptions::default())
        .expect("emit")
}

fn sops_bin() -> Option<PathBuf> {
    let p = std::env::var_os("SOPS_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/sops")));
    p.exists().then_some(p)
}

fn per_file(d: Duration, n: usize) -> f64 {
    d.as_secs_f64() * 1e6 / n as f64
}

fn run_tool(cmd: &mut Command) {
    let out = cmd.stdin(Stdio::null()).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn main() {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let key_text = identity.to_string().expose_secret().to_string();
    let mut ids = Identities::default();
    ids.push(identity);
    let st = settings(&recipient);

    let mut c = Criterion::default().configure_from_args();
    let secret_enc = encrypt_bytes(SECRET.as_bytes(), &st);
    c.bench_function("secret (5 keys): encrypt", |b| {
        b.iter(|| encrypt_bytes(black_box(SECRET.as_bytes()), &st))
    });
    c.bench_function("secret (5 keys): decrypt", |b| {
        b.iter(|| decrypt_bytes(black_box(&secret_enc), &ids))
    });
    let big = big_document();
    let big_enc = encrypt_bytes(big.as_bytes(), &st);
    let mut g = c.benchmark_group("1 MiB document");
    g.sample_size(10);
    g.bench_function("encrypt", |b| {
        b.iter(|| encrypt_bytes(black_box(big.as_bytes()), &st))
    });
    g.bench_function("decrypt", |b| {
        b.iter(|| decrypt_bytes(black_box(&big_enc), &ids))
    });
    // The YAML layer alone (the go-yaml port under the sops store), no cryptography.
    let big_tree = sops::store::yaml::parse(big.as_bytes()).expect("parse");
    g.bench_function("YAML parse", |b| {
        b.iter(|| sops::store::yaml::parse(black_box(big.as_bytes())))
    });
    g.bench_function("YAML emit", |b| {
        b.iter(|| sops::store::yaml::emit(black_box(&big_tree), 4))
    });
    g.finish();
    c.final_summary();

    // 1,000 small files: each a distinct Secret, read from disk, processed, written back.
    let dir = tempfile::tempdir().expect("tempdir");
    let plain_dir = dir.path().join("plain");
    let enc_dir = dir.path().join("enc");
    std::fs::create_dir_all(&plain_dir).expect("mkdir");
    std::fs::create_dir_all(&enc_dir).expect("mkdir");
    let files: Vec<PathBuf> = (0..1000)
        .map(|i| {
            let p = plain_dir.join(format!("s{i:04}.yaml"));
            std::fs::write(&p, SECRET.replace("billing-db", &format!("db-{i:04}"))).expect("write");
            p
        })
        .collect();
    let n = files.len();
    // Untimed set-up: the encrypted versions the decrypt passes (ours and sops') read.
    for f in &files {
        let out = encrypt_bytes(&std::fs::read(f).expect("read"), &st);
        std::fs::write(enc_dir.join(f.file_name().expect("name")), out).expect("write");
    }
    let enc_files: Vec<PathBuf> = files
        .iter()
        .map(|f| enc_dir.join(f.file_name().expect("name")))
        .collect();
    // Timed passes read each file and write the result to a sink, as sops writes to stdout
    // (sent to /dev/null below), so both sides do the same I/O.
    let encrypt_all = |part: &[PathBuf]| {
        for f in part {
            let out = encrypt_bytes(&std::fs::read(f).expect("read"), &st);
            std::io::sink().write_all(black_box(&out)).expect("sink");
        }
    };
    let decrypt_all = |part: &[PathBuf]| {
        for f in part {
            let out = decrypt_bytes(&std::fs::read(f).expect("read"), &ids);
            std::io::sink().write_all(black_box(&out)).expect("sink");
        }
    };
    let t = Instant::now();
    encrypt_all(&files);
    let ours_enc = t.elapsed();
    let t = Instant::now();
    decrypt_all(&enc_files);
    let ours_dec = t.elapsed();
    println!("\n1,000 small files, in process (read + parse + crypto + emit), one thread:");
    println!(
        "  sealwright encrypt: {:>9.1} µs/file",
        per_file(ours_enc, n)
    );
    println!(
        "  sealwright decrypt: {:>9.1} µs/file",
        per_file(ours_dec, n)
    );

    // The same work spread over every core, as a reconcile round batches files.
    let workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let chunk = n.div_ceil(workers);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in files.chunks(chunk) {
            s.spawn(|| encrypt_all(part));
        }
    });
    let par_enc = t.elapsed();
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in enc_files.chunks(chunk) {
            s.spawn(|| decrypt_all(part));
        }
    });
    let par_dec = t.elapsed();
    println!("1,000 small files, in process, {workers} threads:");
    println!(
        "  sealwright encrypt: {:>9.1} µs/file",
        per_file(par_enc, n)
    );
    println!(
        "  sealwright decrypt: {:>9.1} µs/file",
        per_file(par_dec, n)
    );

    let key_file = dir.path().join("key.txt");
    std::fs::write(&key_file, &key_text).expect("write key");
    let sw = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/release/sealwright");
    let sops_n: usize = std::env::var("BENCH_SOPS_FILES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n)
        .min(n);
    let tool = |bin: &Path, args: &[&str], f: &Path| {
        let mut c = Command::new(bin);
        c.args(args)
            .arg(f)
            .env("SOPS_AGE_KEY_FILE", &key_file)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .stdout(Stdio::null());
        c
    };
    let enc_args = [
        "--age",
        &recipient,
        "--encrypted-regex",
        "^(data|stringData)$",
    ];
    if sw.exists() {
        let t = Instant::now();
        for f in &files[..sops_n] {
            let mut args = vec!["sops", "encrypt"];
            args.extend(enc_args);
            run_tool(&mut tool(&sw, &args, f));
        }
        let cli = t.elapsed();
        println!(
            "  sealwright CLI, one process per file (encrypt): {:>9.1} µs/file",
            per_file(cli, sops_n)
        );
    }
    match sops_bin() {
        None => println!("  (sops binary not found: run scripts/test-deps.sh or set SOPS_BIN)"),
        Some(bin) => {
            let t = Instant::now();
            for f in &files[..sops_n] {
                let mut args = vec!["encrypt"];
                args.extend(enc_args);
                run_tool(&mut tool(&bin, &args, f));
            }
            let sops_enc = t.elapsed();
            let t = Instant::now();
            for f in &enc_files[..sops_n] {
                run_tool(&mut tool(&bin, &["decrypt"], f));
            }
            let sops_dec = t.elapsed();
            let (se, sd) = (per_file(sops_enc, sops_n), per_file(sops_dec, sops_n));
            println!("real sops {sops_n} files, one process per file:");
            println!("  sops encrypt:       {se:>9.1} µs/file");
            println!("  sops decrypt:       {sd:>9.1} µs/file");
            println!(
                "speed-up, per-file throughput, one thread: encrypt {:.0}x, decrypt {:.0}x",
                se / per_file(ours_enc, n),
                sd / per_file(ours_dec, n)
            );
            println!(
                "speed-up, per-file throughput, {workers} threads: encrypt {:.0}x, decrypt {:.0}x",
                se / per_file(par_enc, n),
                sd / per_file(par_dec, n)
            );
        }
    }
}
