//! age master keys: wrapping the data key (or a Shamir share) for each recipient, and finding the
//! identities that unwrap it, from the same places sops looks (SOPS-FORMAT.md 5.3, 6).
//!
//! Each recipient gets its own armored age file with a single X25519 stanza, exactly the framing
//! sops writes. Identities are gathered from every source and merged (sops 3.11 behaviour); the
//! `recipient` field of an entry is not used to pick one, age tries them all.

use std::io::{Read, Write};
use std::path::PathBuf;

use age::x25519;
use secrecy::{ExposeSecret, SecretString};
use zeroize::Zeroizing;

#[derive(Debug, thiserror::Error)]
pub enum AgeError {
    #[error("invalid age recipient {recipient:?}: {reason}")]
    BadRecipient {
        recipient: String,
        reason: &'static str,
    },
    #[error("{source_name}: line {line}: unknown identity type (expected AGE-SECRET-KEY-1...)")]
    UnknownIdentity { source_name: String, line: usize },
    #[error("{source_name}: line {line}: malformed age identity")]
    BadIdentity { source_name: String, line: usize },
    #[error("{source_name}: {path}: {reason}")]
    IdentityFile {
        source_name: &'static str,
        path: String,
        reason: String,
    },
    #[error("SOPS_AGE_KEY_CMD: {0}")]
    KeyCommand(String),
    #[error("could not wrap the data key with age: {0}")]
    Wrap(String),
}

/// Parses a recipient string as sops does: trimmed; X25519 `age1...` only (plugin, post-quantum and
/// SSH recipients are recognised and reported as unsupported).
pub fn parse_recipient(s: &str) -> Result<x25519::Recipient, AgeError> {
    let s = s.trim();
    let bad = |reason| AgeError::BadRecipient {
        recipient: s.to_string(),
        reason,
    };
    if s.starts_with("ssh-") {
        return Err(bad(
            "SSH recipients are not supported; use an age X25519 recipient",
        ));
    }
    if s.starts_with("age1pq1") {
        return Err(bad("post-quantum age recipients are not supported"));
    }
    if s.starts_with("age1")
        && s.matches('1').count() > 1
        && s.parse::<x25519::Recipient>().is_err()
    {
        return Err(bad("age plugin recipients are not supported"));
    }
    s.parse::<x25519::Recipient>()
        .map_err(|_| bad("not a valid X25519 age recipient (age1...)"))
}

/// Wraps `secret` for one recipient: an ASCII-armored age file, one stanza.
pub fn wrap(secret: &[u8], recipient: &x25519::Recipient) -> Result<String, AgeError> {
    let err = |e: &dyn std::fmt::Display| AgeError::Wrap(e.to_string());
    let encryptor =
        age::Encryptor::with_recipients(std::iter::once(recipient as &dyn age::Recipient))
            .map_err(|e| err(&e))?;
    let mut out = Vec::with_capacity(420);
    let armor = age::armor::ArmoredWriter::wrap_output(&mut out, age::armor::Format::AsciiArmor)
        .map_err(|e| err(&e))?;
    let mut w = encryptor.wrap_output(armor).map_err(|e| err(&e))?;
    w.write_all(secret).map_err(|e| err(&e))?;
    w.finish().and_then(|a| a.finish()).map_err(|e| err(&e))?;
    String::from_utf8(out).map_err(|e| err(&e))
}

/// Why one age entry could not be unwrapped (never secret).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UnwrapError {
    #[error("no identity matched any of the recipients")]
    NoMatch,
    #[error("malformed age file in enc: {0}")]
    Malformed(String),
}

const ARMOR_BEGIN: &str = "-----BEGIN AGE ENCRYPTED FILE-----";
const ARMOR_END: &str = "-----END AGE ENCRYPTED FILE-----";

/// Decodes the ASCII armor of an `enc` value with sops' tolerance (leading blank lines, CRLF, a
/// missing final newline; indented lines are refused). Done here rather than with age's
/// `ArmoredReader` because that reader dominated the cost of unwrapping a data key.
fn dearmor(enc: &str) -> Result<Vec<u8>, UnwrapError> {
    use base64::Engine;
    let bad = |why: &str| UnwrapError::Malformed(format!("armor: {why}"));
    let mut lines = enc
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .skip_while(|l| l.is_empty());
    if lines.next() != Some(ARMOR_BEGIN) {
        return Err(bad("missing BEGIN line"));
    }
    let mut b64 = String::with_capacity(enc.len());
    let mut ended = false;
    for line in lines.by_ref() {
        if line == ARMOR_END {
            ended = true;
            break;
        }
        if line.len() > 64 || line.starts_with(char::is_whitespace) {
            return Err(bad("malformed base64 line"));
        }
        b64.push_str(line);
    }
    if !ended || lines.any(|l| !l.trim().is_empty()) {
        return Err(bad("missing END line or trailing data"));
    }
    base64::engine::general_purpose::STANDARD
        .decode(b64)
        .map_err(|_| bad("invalid base64"))
}

/// Unwraps an armored `enc` value with any of the identities.
pub fn unwrap(enc: &str, identities: &Identities) -> Result<Zeroizing<Vec<u8>>, UnwrapError> {
    if identities.keys.is_empty() {
        return Err(UnwrapError::NoMatch);
    }
    let binary = dearmor(enc)?;
    let decryptor = age::Decryptor::new_buffered(binary.as_slice())
        .map_err(|e| UnwrapError::Malformed(e.to_string()))?;
    let mut r = decryptor
        .decrypt(identities.keys.iter().map(|k| k as &dyn age::Identity))
        .map_err(|e| match e {
            age::DecryptError::NoMatchingKeys => UnwrapError::NoMatch,
            other => UnwrapError::Malformed(other.to_string()),
        })?;
    let mut out = Zeroizing::new(Vec::with_capacity(33));
    r.read_to_end(&mut out)
        .map_err(|e| UnwrapError::Malformed(e.to_string()))?;
    Ok(out)
}

/// A set of X25519 identities. Not `Debug`: it holds private keys.
#[derive(Default)]
pub struct Identities {
    keys: Vec<x25519::Identity>,
    /// Where they came from, for the "did not find keys in ..." part of error messages.
    pub searched: Vec<String>,
}

impl Identities {
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    pub fn push(&mut self, id: x25519::Identity) {
        self.keys.push(id);
    }

    /// Adds the identities of an identity text (age-keygen format): empty lines and `#` lines are
    /// ignored, a trailing `\r` is tolerated, any other line must be an `AGE-SECRET-KEY-1...`.
    pub fn add_text(&mut self, source_name: &str, text: &str) -> Result<(), AgeError> {
        for (i, raw) in text.split('\n').enumerate() {
            let line = raw.strip_suffix('\r').unwrap_or(raw);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if !line.starts_with("AGE-SECRET-KEY-1") {
                return Err(AgeError::UnknownIdentity {
                    source_name: source_name.to_string(),
                    line: i + 1,
                });
            }
            let id = line
                .parse::<x25519::Identity>()
                .map_err(|_| AgeError::BadIdentity {
                    source_name: source_name.to_string(),
                    line: i + 1,
                })?;
            self.keys.push(id);
        }
        Ok(())
    }
}

/// Where sops looks for age identities. Built at the edge (the CLI reads the environment) and
/// handed down, so library code never reads process state.
#[derive(Default)]
pub struct IdentitySources {
    /// `SOPS_AGE_KEY`: identity text.
    pub key: Option<SecretString>,
    /// `SOPS_AGE_KEY_FILE`.
    pub key_file: Option<PathBuf>,
    /// `SOPS_AGE_KEY_CMD`: a command (split shell-style) printing identity text.
    pub key_cmd: Option<String>,
    /// `<user config dir>/sops/age/keys.txt`; missing is fine.
    pub default_file: Option<PathBuf>,
}

impl IdentitySources {
    /// Reads the sources from an environment lookup (`std::env::var` in the CLI, a map in tests).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> IdentitySources {
        let non_empty = |k: &str| get(k).filter(|v| !v.is_empty());
        let config_dir = non_empty("XDG_CONFIG_HOME")
            .map(PathBuf::from)
            .or_else(|| non_empty("HOME").map(|h| PathBuf::from(h).join(".config")));
        IdentitySources {
            key: non_empty("SOPS_AGE_KEY").map(SecretString::from),
            key_file: non_empty("SOPS_AGE_KEY_FILE").map(PathBuf::from),
            key_cmd: non_empty("SOPS_AGE_KEY_CMD"),
            default_file: config_dir.map(|d| d.join("sops").join("age").join("keys.txt")),
        }
    }

    /// Loads and merges every identity the sources name.
    pub fn load(&self) -> Result<Identities, AgeError> {
        let mut ids = Identities::default();
        if let Some(k) = &self.key {
            ids.add_text("SOPS_AGE_KEY", k.expose_secret())?;
        }
        ids.searched.push("SOPS_AGE_KEY".into());
        if let Some(path) = &self.key_file {
            let text = read_key_file(path, "SOPS_AGE_KEY_FILE")?;
            ids.add_text("SOPS_AGE_KEY_FILE", &text)?;
        }
        ids.searched.push("SOPS_AGE_KEY_FILE".into());
        if let Some(cmd) = &self.key_cmd {
            let text = run_key_cmd(cmd)?;
            ids.add_text("SOPS_AGE_KEY_CMD", &text)?;
        }
        ids.searched.push("SOPS_AGE_KEY_CMD".into());
        if let Some(path) = &self.default_file {
            if path.exists() {
                let text = read_key_file(path, "default key file")?;
                ids.add_text(&path.display().to_string(), &text)?;
            }
            ids.searched.push(path.display().to_string());
        }
        Ok(ids)
    }
}

fn read_key_file(
    path: &std::path::Path,
    source_name: &'static str,
) -> Result<Zeroizing<String>, AgeError> {
    std::fs::read_to_string(path)
        .map(Zeroizing::new)
        .map_err(|e| AgeError::IdentityFile {
            source_name,
            path: path.display().to_string(),
            reason: e.kind().to_string(),
        })
}

fn run_key_cmd(cmd: &str) -> Result<Zeroizing<String>, AgeError> {
    let argv = shell_words::split(cmd).map_err(|e| AgeError::KeyCommand(e.to_string()))?;
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| AgeError::KeyCommand("empty command".into()))?;
    let out = std::process::Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| AgeError::KeyCommand(format!("could not run {prog}: {e}")))?;
    let stdout = Zeroizing::new(out.stdout);
    if !out.status.success() {
        return Err(AgeError::KeyCommand(format!(
            "{prog} exited with {}",
            out.status
        )));
    }
    String::from_utf8(stdout.to_vec())
        .map(Zeroizing::new)
        .map_err(|_| AgeError::KeyCommand("output is not UTF-8".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrap_and_unwrap_round_trip_with_sops_framing() {
        let id = x25519::Identity::generate();
        let enc = wrap(&[7u8; 32], &id.to_public()).unwrap();
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        assert!(enc.lines().all(|l| l.len() <= 64));
        let mut ids = Identities::default();
        ids.push(id);
        assert_eq!(&*unwrap(&enc, &ids).unwrap(), &[7u8; 32]);
        let mut other = Identities::default();
        other.push(x25519::Identity::generate());
        assert_eq!(unwrap(&enc, &other).unwrap_err(), UnwrapError::NoMatch);
    }

    #[test]
    fn armor_tolerance_matches_sops() {
        let id = x25519::Identity::generate();
        let enc = wrap(&[9u8; 32], &id.to_public()).unwrap();
        let mut ids = Identities::default();
        ids.push(id);
        // Accepted: leading blank lines, CRLF, no final newline.
        for variant in [
            format!("\n\n{enc}"),
            enc.replace('\n', "\r\n"),
            enc.trim_end().to_string(),
        ] {
            assert_eq!(&*unwrap(&variant, &ids).unwrap(), &[9u8; 32]);
        }
        // Refused: indented lines, no END, trailing garbage, bad base64.
        for variant in [
            enc.replace("\n", "\n  "),
            enc.replace(ARMOR_END, ""),
            format!("{enc}garbage\n"),
            enc.replacen("YWdl", "!!!!", 1),
        ] {
            assert!(
                matches!(unwrap(&variant, &ids), Err(UnwrapError::Malformed(_))),
                "{variant}"
            );
        }
    }

    #[test]
    fn identity_text_rules() {
        let key = x25519::Identity::generate().to_string();
        let text = format!(
            "# created: now\n# public key: age1...\n\n{}\r\n",
            key.expose_secret()
        );
        let mut ids = Identities::default();
        ids.add_text("test", &text).unwrap();
        assert_eq!(ids.len(), 1);
        let err = ids.add_text("test", "  AGE-SECRET-KEY-1XYZ\n").unwrap_err();
        assert!(matches!(err, AgeError::UnknownIdentity { line: 1, .. }));
        let err = ids
            .add_text("test", "AGE-SECRET-KEY-1NOTVALID\n")
            .unwrap_err();
        assert!(!err.to_string().contains("NOTVALID"));
    }

    #[test]
    fn recipients() {
        let r = x25519::Identity::generate().to_public().to_string();
        assert!(parse_recipient(&format!("  {r} ")).is_ok());
        assert!(parse_recipient("ssh-ed25519 AAAA").is_err());
        assert!(parse_recipient("age1nope").is_err());
    }

    #[test]
    fn sources_from_env_and_cmd() {
        let key = x25519::Identity::generate();
        let secret = key.to_string().expose_secret().to_string();
        let env = |k: &str| match k {
            "SOPS_AGE_KEY_CMD" => Some(format!("printf '%s\\n' {secret}")),
            "HOME" => Some("/nonexistent-home".into()),
            _ => None,
        };
        let src = IdentitySources::from_env(env);
        assert_eq!(
            src.default_file.as_deref(),
            Some(std::path::Path::new(
                "/nonexistent-home/.config/sops/age/keys.txt"
            ))
        );
        let ids = src.load().unwrap();
        assert_eq!(ids.len(), 1);
        let bad = IdentitySources {
            key_file: Some("/nonexistent/keys.txt".into()),
            ..Default::default()
        };
        assert!(matches!(bad.load(), Err(AgeError::IdentityFile { .. })));
    }
}
