//! git, as GitHub's servers would run it: on the bare repo, isolated from the user's config.

use super::*;

/// (exit code, stdout, stderr)
pub(super) fn run_git(
    dir: Option<&Path>,
    args: &[&str],
    input: Option<&[u8]>,
    env: &[(&str, String)],
) -> (i32, String, String) {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("--git-dir").arg(d);
    }
    cmd.args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (-1, String::new(), format!("cannot run git: {e}")),
    };
    if let Some(data) = input {
        use std::io::Write;
        // Small inputs (a README, a tree line, a message): no deadlock with the output pipes.
        let _ = child.stdin.take().unwrap().write_all(data);
    }
    let out = child.wait_with_output().expect("wait for git");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Trimmed stdout, or stderr as the error.
pub(super) fn git_ok(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    match run_git(dir, args, None, &[]) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!(
            "git {} exited {code}: {}",
            args.join(" "),
            err.trim()
        )),
    }
}

pub(super) fn git_in(dir: &Path, args: &[&str], input: &[u8]) -> Result<String, String> {
    match run_git(Some(dir), args, Some(input), &[]) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!(
            "git {} exited {code}: {}",
            args.join(" "),
            err.trim()
        )),
    }
}

/// A commit authored by `login` and committed by GitHub, as web merges are.
pub(super) fn commit_tree(
    dir: &Path,
    tree: &str,
    parents: &[String],
    msg: &str,
    login: &str,
) -> Result<String, String> {
    let mut args = vec!["commit-tree", tree];
    for p in parents {
        args.extend(["-p", p.as_str()]);
    }
    args.extend(["-F", "-"]);
    let email = format!("{}+{login}@users.noreply.github.com", user_id(login));
    let env = [
        ("GIT_AUTHOR_NAME", login.to_string()),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_COMMITTER_NAME", "GitHub".to_string()),
        ("GIT_COMMITTER_EMAIL", "noreply@github.com".to_string()),
    ];
    match run_git(Some(dir), &args, Some(msg.as_bytes()), &env) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!("git commit-tree exited {code}: {}", err.trim())),
    }
}

/// The sha a full ref name points at (exactly that ref, no DWIM).
pub(super) fn resolve_ref(dir: &Path, full: &str) -> Option<String> {
    git_ok(Some(dir), &["show-ref", "--verify", "--hash", full]).ok()
}

/// A commit named by a sha (prefix), branch or tag.
pub(super) fn resolve_commit(dir: &Path, spec: &str) -> Option<String> {
    git_ok(
        Some(dir),
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{spec}^{{commit}}"),
        ],
    )
    .ok()
}

/// The type of the object a full sha names (GitHub wants full shas here), or None.
pub(super) fn object_type(dir: &Path, sha: &str) -> Option<String> {
    let full = (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    full.then(|| git_ok(Some(dir), &["cat-file", "-t", sha]).ok())
        .flatten()
}

pub(super) fn is_ancestor(dir: &Path, a: &str, b: &str) -> bool {
    run_git(Some(dir), &["merge-base", "--is-ancestor", a, b], None, &[]).0 == 0
}

/// The merged tree of two commits, or Err on a conflict (or unrelated histories).
pub(super) fn merge_tree(dir: &Path, base: &str, head: &str) -> Result<String, String> {
    match run_git(
        Some(dir),
        &["merge-tree", "--write-tree", "--no-messages", base, head],
        None,
        &[],
    ) {
        (0, out, _) => Ok(out.lines().next().unwrap_or_default().to_string()),
        (1, _, _) => Err("conflict".into()),
        (code, _, err) => Err(format!("git merge-tree exited {code}: {}", err.trim())),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Now as GitHub writes times: `2011-01-26T19:01:12Z`.
pub(super) fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

pub(super) fn pct_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
