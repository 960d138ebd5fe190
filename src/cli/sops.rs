//! `sealwright sops ...`: the sops-compatible file commands.
//!
//! This is the edge where process state is read (environment, working directory, stdin) and
//! turned into plain values for the library. Errors are printed as one line naming the file, the
//! place in the document where relevant, and the cause; never a secret value.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use sops::agekeys::{Identities, IdentitySources};
use sops::config::{self, SopsConfig};
use sops::document::{self, parse_tree_path, EmitOptions, Format, KeySpec};
use sops::rules::CryptRule;
use sops::scalar::{go_format_f, DateTime};
use sops::{EncryptSettings, SopsError, Value};

#[derive(Subcommand)]
pub enum SopsCommand {
    /// Encrypt a file (to stdout unless -i)
    Encrypt(EncryptArgs),
    /// Decrypt a file (to stdout unless -i); the MAC is verified unless --ignore-mac
    Decrypt(DecryptArgs),
    /// Re-wrap the data key for the recipients of the matching .sops.yaml rule; values untouched
    Updatekeys(UpdatekeysArgs),
    /// Generate a new data key and re-encrypt every value (to stdout unless -i)
    Rotate(RotateArgs),
    /// Set one value in place; every other value keeps its exact ciphertext
    Set(SetArgs),
}

#[derive(Args)]
pub struct IoArgs {
    /// Input format (default: from the file extension)
    #[arg(long, value_parser = ["yaml", "json", "dotenv", "binary"])]
    pub input_type: Option<String>,
    /// Output format (default: the input format)
    #[arg(long, value_parser = ["yaml", "json", "dotenv", "binary"])]
    pub output_type: Option<String>,
    /// The file, or - for stdin (then --input-type is required)
    pub file: PathBuf,
}

#[derive(Args)]
pub struct EncryptArgs {
    /// age recipient(s); repeatable, comma-separated lists allowed. Replaces the .sops.yaml rule's keys.
    #[arg(long = "age", env = "SOPS_AGE_RECIPIENTS", value_name = "RECIPIENT")]
    pub age: Vec<String>,
    /// Encrypt only values under keys matching this regex
    #[arg(long, value_name = "R")]
    pub encrypted_regex: Option<String>,
    /// Leave values under keys matching this regex in clear
    #[arg(long, value_name = "R")]
    pub unencrypted_regex: Option<String>,
    /// Encrypt only values under keys ending with this suffix
    #[arg(long, value_name = "S")]
    pub encrypted_suffix: Option<String>,
    /// Leave values under keys ending with this suffix in clear (default: _unencrypted)
    #[arg(long, value_name = "S")]
    pub unencrypted_suffix: Option<String>,
    /// Encrypt only values after a comment matching this regex
    #[arg(long, value_name = "R")]
    pub encrypted_comment_regex: Option<String>,
    /// Leave values after a comment matching this regex in clear
    #[arg(long, value_name = "R")]
    pub unencrypted_comment_regex: Option<String>,
    /// Compute the MAC over encrypted values only
    #[arg(long)]
    pub mac_only_encrypted: bool,
    /// Key groups needed to decrypt (with key_groups in .sops.yaml)
    #[arg(long, value_name = "N")]
    pub shamir_threshold: Option<usize>,
    /// .sops.yaml to use (default: $SOPS_CONFIG, else the nearest one from the working directory up)
    #[arg(long, env = "SOPS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// Path used for .sops.yaml rule matching and type detection when reading stdin
    #[arg(long, value_name = "PATH")]
    pub filename_override: Option<PathBuf>,
    /// Write the result back to FILE instead of stdout
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Args)]
pub struct DecryptArgs {
    /// Print only this value or subtree, e.g. '["data"]["password"]'
    #[arg(long, value_name = "PATH")]
    pub extract: Option<String>,
    /// Do not verify the MAC
    #[arg(long)]
    pub ignore_mac: bool,
    /// Write the result back to FILE instead of stdout
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
    /// .sops.yaml whose `stores` settings apply (indentation)
    #[arg(long, env = "SOPS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Args)]
pub struct UpdatekeysArgs {
    /// Do not ask for confirmation
    #[arg(short = 'y', long = "yes")]
    pub yes: bool,
    /// Override the number of key groups needed to decrypt
    #[arg(long, value_name = "N")]
    pub shamir_threshold: Option<usize>,
    #[arg(long, env = "SOPS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[arg(long, value_parser = ["yaml", "json", "dotenv", "binary"])]
    pub input_type: Option<String>,
    pub file: PathBuf,
}

#[derive(Args)]
pub struct RotateArgs {
    /// Write the result back to FILE instead of stdout
    #[arg(short = 'i', long = "in-place")]
    pub in_place: bool,
    /// Add an age recipient to the first key group
    #[arg(long = "add-age", value_name = "RECIPIENT")]
    pub add_age: Vec<String>,
    /// Remove an age recipient from every key group
    #[arg(long = "rm-age", value_name = "RECIPIENT")]
    pub rm_age: Vec<String>,
    /// Do not verify the MAC before rotating
    #[arg(long)]
    pub ignore_mac: bool,
    #[arg(long, env = "SOPS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub io: IoArgs,
}

#[derive(Args)]
pub struct SetArgs {
    /// Do not verify the MAC before changing the file
    #[arg(long)]
    pub ignore_mac: bool,
    #[arg(long, value_parser = ["yaml", "json", "dotenv", "binary"])]
    pub input_type: Option<String>,
    #[arg(long, env = "SOPS_CONFIG", value_name = "PATH")]
    pub config: Option<PathBuf>,
    /// The encrypted file (changed in place)
    pub file: PathBuf,
    /// Where to set, e.g. '["stringData"]["password"]'
    pub path: String,
    /// The new value as JSON, e.g. '"s3cret"' or '{"a": 1}'
    pub value: String,
}

/// A failure with the file it concerns, printed as one line.
struct Failure {
    file: String,
    code: i32,
    message: String,
}

impl Failure {
    fn sops(file: &Path, e: SopsError) -> Failure {
        Failure {
            file: file.display().to_string(),
            code: e.exit_code(),
            message: e.to_string(),
        }
    }

    fn io(file: &Path, what: &str, e: std::io::Error, code: i32) -> Failure {
        Failure {
            file: file.display().to_string(),
            code,
            message: format!("{what}: {e}"),
        }
    }

    fn usage(file: &Path, message: impl Into<String>) -> Failure {
        Failure {
            file: file.display().to_string(),
            code: 1,
            message: message.into(),
        }
    }
}

type Res<T> = Result<T, Failure>;

pub fn run(cmd: SopsCommand) -> i32 {
    let res = match cmd {
        SopsCommand::Encrypt(a) => encrypt(a),
        SopsCommand::Decrypt(a) => decrypt(a),
        SopsCommand::Updatekeys(a) => updatekeys(a),
        SopsCommand::Rotate(a) => rotate(a),
        SopsCommand::Set(a) => set(a),
    };
    match res {
        Ok(()) => 0,
        Err(f) => {
            eprintln!("sealwright: {}: {}", f.file, f.message);
            f.code
        }
    }
}

fn env(k: &str) -> Option<String> {
    std::env::var(k).ok()
}

fn is_stdin(p: &Path) -> bool {
    p.as_os_str() == "-"
}

fn read_input(file: &Path) -> Res<Vec<u8>> {
    if is_stdin(file) {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(|e| Failure::io(file, "error reading stdin", e, 2))?;
        Ok(buf)
    } else {
        std::fs::read(file).map_err(|e| Failure::io(file, "error reading file", e, 2))
    }
}

fn format_of(file: &Path, name: Option<&str>) -> Res<Format> {
    match name {
        Some(n) => {
            Format::parse_name(n).ok_or_else(|| Failure::usage(file, format!("unknown type {n}")))
        }
        None if is_stdin(file) => Err(Failure::usage(file, "reading stdin needs --input-type")),
        None => Ok(Format::from_path(file)),
    }
}

/// Writes `bytes` to stdout, or atomically over `file` (a sibling temp file renamed into place,
/// keeping the file's permissions), so a failure never leaves a half-written file.
fn write_output(file: &Path, bytes: &[u8], in_place: bool) -> Res<()> {
    if !in_place || is_stdin(file) {
        let mut out = std::io::stdout().lock();
        return out
            .write_all(bytes)
            .and_then(|_| out.flush())
            .map_err(|e| Failure::io(file, "error writing output", e, 3));
    }
    write_atomic(file, bytes).map_err(|e| Failure::io(file, "error writing file", e, 3))
}

fn write_atomic(file: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Keep the file's permissions; a new file gets 0600.
    let mode = std::fs::metadata(file)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o600);
    crate::fsutil::write_atomic(file, bytes, mode)
}

fn load_config(file: &Path, explicit: Option<&Path>) -> Res<Option<SopsConfig>> {
    let path = match explicit {
        Some(p) => Some(p.to_path_buf()),
        None => std::env::current_dir().ok().and_then(|d| config::find(&d)),
    };
    match path {
        None => Ok(None),
        Some(p) => SopsConfig::load(&p)
            .map(Some)
            .map_err(|e| Failure::sops(file, e.into())),
    }
}

fn emit_options(cfg: Option<&SopsConfig>) -> EmitOptions {
    let mut o = EmitOptions::default();
    if let Some(c) = cfg {
        if let Some(i) = c.yaml_indent {
            o.yaml_indent = i;
        }
        o.json_indent = c.json_indent;
    }
    o
}

fn absolute(p: &Path) -> PathBuf {
    std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf())
}

fn identities(file: &Path) -> Res<Identities> {
    IdentitySources::from_env(env)
        .load()
        .map_err(|e| Failure::sops(file, e.into()))
}

fn split_recipients(list: &[String]) -> Vec<String> {
    list.iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

fn encrypt(a: EncryptArgs) -> Res<()> {
    let file = a.io.file.as_path();
    let rule_path = absolute(a.filename_override.as_deref().unwrap_or(file));
    let in_fmt = match (&a.io.input_type, &a.filename_override) {
        (None, Some(o)) => Format::from_path(o),
        _ => format_of(file, a.io.input_type.as_deref())?,
    };
    let out_fmt = format_of(file, a.io.output_type.as_deref()).unwrap_or(in_fmt);
    let cfg = load_config(file, a.config.as_deref())?;
    let rule = match &cfg {
        Some(c) => c
            .rule_for(&rule_path)
            .map_err(|e| Failure::sops(file, e.into()))?,
        None => None,
    };

    let cli_keys = split_recipients(&a.age);
    let keys = if !cli_keys.is_empty() {
        KeySpec {
            groups: vec![cli_keys],
            shamir_threshold: a.shamir_threshold.unwrap_or(0),
        }
    } else if let Some(r) = rule {
        KeySpec {
            groups: r.key_groups.clone(),
            shamir_threshold: a.shamir_threshold.unwrap_or(r.shamir_threshold),
        }
    } else {
        return Err(Failure::sops(file, SopsError::NoRecipients));
    };

    // Each crypt option falls back to the rule's individually; the merged set must hold one.
    let flags = [
        ("unencrypted_suffix", &a.unencrypted_suffix),
        ("encrypted_suffix", &a.encrypted_suffix),
        ("unencrypted_regex", &a.unencrypted_regex),
        ("encrypted_regex", &a.encrypted_regex),
        ("unencrypted_comment_regex", &a.unencrypted_comment_regex),
        ("encrypted_comment_regex", &a.encrypted_comment_regex),
    ];
    let merged: Vec<(&str, String)> = flags
        .iter()
        .filter_map(|(k, v)| {
            (*v).clone()
                .or_else(|| {
                    rule.and_then(|r| {
                        r.crypt
                            .iter()
                            .find(|(rk, _)| rk == k)
                            .map(|(_, rv)| rv.clone())
                    })
                })
                .map(|v| (*k, v))
        })
        .collect();
    let crypt = CryptRule::select(merged.iter().map(|(k, v)| (*k, v.as_str())))
        .map_err(|e| Failure::sops(file, e.into()))?;
    let settings = EncryptSettings {
        keys,
        rule: crypt,
        mac_only_encrypted: a.mac_only_encrypted || rule.is_some_and(|r| r.mac_only_encrypted),
    };

    let input = read_input(file)?;
    let branches = in_fmt
        .parse_plain(&input)
        .map_err(|e| Failure::sops(file, e))?;
    let doc = document::encrypt(branches, &settings, out_fmt, DateTime::now_utc())
        .map_err(|e| Failure::sops(file, e))?;
    tracing::info!(file = %file.display(), groups = doc.metadata.key_groups.len(), "encrypted");
    let bytes = out_fmt
        .emit_encrypted(&doc, emit_options(cfg.as_ref()))
        .map_err(|e| Failure::sops(file, e))?;
    write_output(file, &bytes, a.in_place)
}

fn decrypt(a: DecryptArgs) -> Res<()> {
    let file = a.io.file.as_path();
    let in_fmt = format_of(file, a.io.input_type.as_deref())?;
    let out_fmt = format_of(file, a.io.output_type.as_deref()).unwrap_or(in_fmt);
    let input = read_input(file)?;
    let doc = in_fmt
        .parse_encrypted(&input)
        .map_err(|e| Failure::sops(file, e))?;
    let ids = identities(file)?;
    let dec = document::decrypt(&doc, &ids, !a.ignore_mac).map_err(|e| Failure::sops(file, e))?;
    let cfg = if a.config.is_some() {
        load_config(file, a.config.as_deref())?
    } else {
        None
    };
    let opts = emit_options(cfg.as_ref());
    let bytes = match &a.extract {
        None => out_fmt.emit_plain(&dec.branches, opts),
        Some(p) => parse_tree_path(p)
            .and_then(|path| document::extract(&dec.branches, &path).cloned())
            .and_then(|v| extracted_bytes(v, out_fmt, opts)),
    }
    .map_err(|e| Failure::sops(file, e))?;
    write_output(file, &bytes, a.in_place && a.extract.is_none())
}

/// What `--extract` prints: a string as its raw bytes, a mapping as a document, another value in
/// the output format's scalar form.
fn extracted_bytes(v: Value, fmt: Format, opts: EmitOptions) -> Result<Vec<u8>, SopsError> {
    let line = |s: String| {
        if fmt == Format::Json {
            s.into_bytes()
        } else {
            format!("{s}\n").into_bytes()
        }
    };
    Ok(match v {
        Value::Str(s) => s.into_bytes(),
        Value::Bytes(b) => b,
        Value::Map(m) => fmt.emit_plain(&[m], opts)?,
        Value::Int(i) => line(i.to_string()),
        Value::Uint(u) => line(u.to_string()),
        Value::Float(f) => line(go_format_f(f)),
        Value::Bool(b) => line(b.to_string()),
        Value::Null => line("null".into()),
        Value::Time(t) => line(t.0),
        Value::Comment(c) => c.into_bytes(),
        Value::Seq(_) => {
            return Err(SopsError::Unrepresentable {
                format: "--extract",
                reason: "a list cannot be printed on its own; extract one element, e.g. [0]",
            })
        }
    })
}

fn updatekeys(a: UpdatekeysArgs) -> Res<()> {
    let file = a.file.as_path();
    let fmt = format_of(file, a.input_type.as_deref())?;
    let cfg = load_config(file, a.config.as_deref())?.ok_or_else(|| {
        Failure::usage(
            file,
            "config file not found: updatekeys needs a .sops.yaml (or --config)",
        )
    })?;
    let abs = absolute(file);
    let rule = cfg
        .rule_for(&abs)
        .map_err(|e| Failure::sops(file, e.into()))?
        .ok_or_else(|| Failure::usage(file, "the .sops.yaml has no creation rules"))?;
    let input = read_input(file)?;
    let doc = fmt
        .parse_encrypted(&input)
        .map_err(|e| Failure::sops(file, e))?;
    let spec = KeySpec {
        groups: rule.key_groups.clone(),
        shamir_threshold: rule.shamir_threshold,
    };
    let current = doc.metadata.recipients();
    if current == spec.groups
        && a.shamir_threshold
            .is_none_or(|t| t == doc.metadata.shamir_threshold)
    {
        eprintln!("File {} already up to date", abs.display());
        return Ok(());
    }
    eprintln!("The following changes will be made to the file's groups:");
    for (i, (old, new)) in pad_zip(&current, &spec.groups).enumerate() {
        eprintln!("Group {}", i + 1);
        for r in new.iter().filter(|r| !old.contains(r)) {
            eprintln!("+++ {r}");
        }
        for r in old.iter().filter(|r| !new.contains(r)) {
            eprintln!("--- {r}");
        }
    }
    if !a.yes && !confirm()? {
        eprintln!("Changes not applied");
        return Ok(());
    }
    let ids = identities(file)?;
    let updated = document::update_keys(&doc, &ids, &spec, a.shamir_threshold)
        .map_err(|e| Failure::sops(file, e))?;
    if let Some(doc) = updated {
        let bytes = fmt
            .emit_encrypted(&doc, emit_options(Some(&cfg)))
            .map_err(|e| Failure::sops(file, e))?;
        write_output(file, &bytes, true)?;
        eprintln!("File {} synced with new keys", abs.display());
    }
    Ok(())
}

fn pad_zip<'a>(
    a: &'a [Vec<String>],
    b: &'a [Vec<String>],
) -> impl Iterator<Item = (&'a [String], &'a [String])> {
    let n = a.len().max(b.len());
    (0..n).map(move |i| {
        (
            a.get(i).map(Vec::as_slice).unwrap_or(&[]),
            b.get(i).map(Vec::as_slice).unwrap_or(&[]),
        )
    })
}

fn confirm() -> Res<bool> {
    let stdin = std::io::stdin();
    if !stdin.is_terminal() {
        // Without a terminal nobody can answer; refuse rather than guess.
        return Err(Failure {
            file: "updatekeys".into(),
            code: 1,
            message: "confirmation needed and stdin is not a terminal: pass -y".into(),
        });
    }
    eprint!("Is this okay? (y/n):");
    let mut answer = String::new();
    stdin
        .read_line(&mut answer)
        .map_err(|e| Failure::io(Path::new("stdin"), "error reading answer", e, 1))?;
    Ok(answer.trim() == "y")
}

fn rotate(a: RotateArgs) -> Res<()> {
    let file = a.io.file.as_path();
    let in_fmt = format_of(file, a.io.input_type.as_deref())?;
    let out_fmt = format_of(file, a.io.output_type.as_deref()).unwrap_or(in_fmt);
    let input = read_input(file)?;
    let doc = in_fmt
        .parse_encrypted(&input)
        .map_err(|e| Failure::sops(file, e))?;
    let ids = identities(file)?;
    let dec = document::decrypt(&doc, &ids, !a.ignore_mac).map_err(|e| Failure::sops(file, e))?;
    let rotated = document::rotate(
        &doc,
        &dec,
        &split_recipients(&a.add_age),
        &split_recipients(&a.rm_age),
        DateTime::now_utc(),
    )
    .map_err(|e| Failure::sops(file, e))?;
    let cfg = if a.config.is_some() {
        load_config(file, a.config.as_deref())?
    } else {
        None
    };
    let bytes = out_fmt
        .emit_encrypted(&rotated, emit_options(cfg.as_ref()))
        .map_err(|e| Failure::sops(file, e))?;
    write_output(file, &bytes, a.in_place)
}

fn set(a: SetArgs) -> Res<()> {
    let file = a.file.as_path();
    let fmt = format_of(file, a.input_type.as_deref())?;
    let path = parse_tree_path(&a.path).map_err(|e| Failure::sops(file, e))?;
    let value = document::parse_json_value(&a.value).map_err(|e| Failure::sops(file, e))?;
    let input = read_input(file)?;
    let doc = fmt
        .parse_encrypted(&input)
        .map_err(|e| Failure::sops(file, e))?;
    let ids = identities(file)?;
    let dec = document::decrypt(&doc, &ids, !a.ignore_mac).map_err(|e| Failure::sops(file, e))?;
    let mut branches = dec.branches.clone();
    document::set_value(&mut branches, &path, value).map_err(|e| Failure::sops(file, e))?;
    let (out, changed) = document::reencrypt(&doc, &dec, branches, DateTime::now_utc())
        .map_err(|e| Failure::sops(file, e))?;
    if !changed {
        tracing::info!(file = %file.display(), "value unchanged; file left as is");
        return Ok(());
    }
    let cfg = if a.config.is_some() {
        load_config(file, a.config.as_deref())?
    } else {
        None
    };
    let bytes = fmt
        .emit_encrypted(&out, emit_options(cfg.as_ref()))
        .map_err(|e| Failure::sops(file, e))?;
    write_output(file, &bytes, true)
}
