//! Shared test support: where the real `sops`/`age` binaries and the shared vectors are, and
//! helpers to run them and the `sealwright` binary with a controlled environment.
#![allow(dead_code)]

pub mod browser;
pub mod certs;
pub mod crd;
pub mod fake_apiserver;
pub mod fake_github;
pub mod flux;
pub mod git_servers;
pub mod http;
pub mod reconciler;
pub mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub fn shared() -> PathBuf {
    std::env::var_os("SEALWRIGHT_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared")))
}

pub fn vectors() -> PathBuf {
    shared().join("sops-vectors")
}

pub fn key_file(n: u8) -> PathBuf {
    vectors().join(format!("keys/key{n}.agekey"))
}

pub const KEY1_PUB: &str = "age1r2zac9hsyxq4h296qtlgtftdnuua9j48p06rg5whzq9rwq22a5jq4ntakh";
pub const KEY2_PUB: &str = "age1cazeskvw3g8clsk8qn3vsv055lyrjcg65fzjxgvtpfqc0remqswqt3khcu";

/// The real sops 3.11 binary: `$SOPS_BIN`, else the one `scripts/test-deps.sh` installs.
pub fn sops_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("SOPS_BIN") {
        return PathBuf::from(p);
    }
    let local = PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin/sops"));
    assert!(
        local.exists(),
        "the real sops binary is missing: run scripts/test-deps.sh (or set SOPS_BIN)"
    );
    local
}

pub fn sealwright_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_sealwright"))
}

/// A command with a clean environment: no inherited SOPS_* variables, HOME pointing at an empty
/// directory (so no default key file is found by accident), cwd as given.
pub fn clean(bin: &Path, cwd: &Path) -> Command {
    let mut c = Command::new(bin);
    c.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", cwd)
        .env("SOPS_DISABLE_VERSION_CHECK", "1")
        .current_dir(cwd)
        .stdin(Stdio::null());
    c
}

pub fn run(mut c: Command) -> Output {
    c.output().expect("spawn")
}

/// Runs and asserts success, returning stdout.
pub fn ok(c: Command) -> Vec<u8> {
    let dbg = format!("{c:?}");
    let out = run(c);
    assert!(
        out.status.success(),
        "{dbg} failed ({}):\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

pub fn sops(cwd: &Path, key: Option<u8>, args: &[&str]) -> Command {
    let mut c = clean(&sops_bin(), cwd);
    if let Some(k) = key {
        c.env("SOPS_AGE_KEY_FILE", key_file(k));
    }
    c.args(args);
    c
}

pub fn sealwright(cwd: &Path, key: Option<u8>, args: &[&str]) -> Command {
    let mut c = clean(&sealwright_bin(), cwd);
    if let Some(k) = key {
        c.env("SOPS_AGE_KEY_FILE", key_file(k));
    }
    c.args(args);
    c
}

/// Identity text of both vector keys (for files that need both, like Shamir ones).
pub fn both_keys_text() -> String {
    let mut s = std::fs::read_to_string(key_file(1)).unwrap();
    s.push_str(&std::fs::read_to_string(key_file(2)).unwrap());
    s
}

/// Every file under `root`, by `/`-separated path relative to it.
pub fn files_under(root: &Path) -> std::collections::BTreeMap<String, Vec<u8>> {
    let mut out = std::collections::BTreeMap::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(root).unwrap().to_str().unwrap().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

/// `git --git-dir REPO ARGS…` (the git CLI inspecting a bare repository the way a reviewer would);
/// its stdout, or a panic with its stderr.
pub fn git_in(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("git prints UTF-8 here")
}

/// How many commits `main` of a bare repository has.
pub fn commits(repo: &Path) -> usize {
    git_in(repo, &["rev-list", "--count", "main"])
        .trim()
        .parse()
        .unwrap()
}

/// A file `main` of `app`'s platform repo holds, if it does.
pub fn committed(dir: &Path, app: &str, path: &str) -> Option<Vec<u8>> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(reconciler::platform_repo(dir, app))
        .args(["show", &format!("main:{path}")])
        .output()
        .unwrap();
    out.status.success().then_some(out.stdout)
}

/// A committed Secret of `app`, decrypted by the real sops with the app key.
pub fn decrypt_committed(dir: &Path, app: &str, path: &str) -> sops::Map {
    let enc = committed(dir, app, path).unwrap_or_else(|| panic!("{app}: no {path}"));
    let work = tempfile::tempdir().unwrap();
    let f = work.path().join("secret.sops.yaml");
    std::fs::write(&f, enc).unwrap();
    let key = dir.join(format!("keys/{app}.agekey"));
    let plain = ok(flux::sops_with(
        work.path(),
        &key,
        &["decrypt", f.to_str().unwrap()],
    ));
    flux::docs(&plain).remove(0)
}
