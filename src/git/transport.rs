//! How sealwright reaches a remote: the URL kinds it accepts (a local path or `file://`, `http(s)://`,
//! `ssh://`), the credentials for each (basic auth, a token, an SSH deploy key), SSH host-key checks
//! (pinned SHA-256 fingerprints or known_hosts lines, never trust-on-first-use), and the libgit2
//! callbacks that apply them with a cap on credential attempts.

use std::cell::RefCell;
use std::rc::Rc;

use base64::Engine as _;
use git2::{CertificateCheckStatus, Cred, CredentialType, RemoteCallbacks};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};

use super::GitError;
use crate::keys::DeployKey;

/// libgit2 asks again after every refusal (up to 15 replays on HTTP); a wrong password must fail
/// fast and once, so the callback answers at most this many times per connection.
const MAX_CREDENTIAL_ATTEMPTS: u32 = 2;

/// A remote repository and how to authenticate to it. The URL never carries a password.
pub struct Remote {
    url: String,
    kind: Kind,
    credentials: Credentials,
    host_keys: Option<HostKeys>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    Local,
    Http,
    Ssh,
}

/// What to answer when the remote asks who we are.
pub enum Credentials {
    None,
    /// HTTP basic auth.
    Basic {
        username: String,
        password: SecretString,
    },
    /// An HTTP token (a GitHub PAT or installation token), sent as basic auth for `x-access-token`.
    Token(SecretString),
    /// An SSH private key in OpenSSH format (a deploy key), kept in memory only.
    SshKey(SecretString),
}

/// How an SSH server proves it is the right one.
#[derive(Clone, Debug)]
pub enum HostKeys {
    /// SHA-256 fingerprints as `ssh-keygen -l -E sha256` prints them (`SHA256:…`, no padding).
    Pinned(Vec<String>),
    /// known_hosts lines (plain or hashed host names; `[host]:port` for other ports than 22).
    KnownHosts(String),
}

impl Remote {
    /// Checks the URL: an absolute local path, `file://`, `http(s)://` or `ssh://` (scp-like
    /// `git@host:path` cannot carry a port and is refused, as Flux refuses it), and no password in it.
    pub fn new(url: &str, credentials: Credentials) -> Result<Self, GitError> {
        let bad = |problem: &str| GitError::BadRemote {
            url: redact(url),
            problem: problem.to_owned(),
        };
        if url.is_empty() || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad(
                "must be non-empty, without spaces or control characters",
            ));
        }
        let kind = if url.starts_with('/') || url.starts_with("file://") {
            Kind::Local
        } else if url.starts_with("http://") || url.starts_with("https://") {
            Kind::Http
        } else if url.starts_with("ssh://") {
            Kind::Ssh
        } else {
            return Err(bad(
                "must be an absolute path, file://, http(s):// or ssh:// (scp-like host:path cannot carry a port)",
            ));
        };
        if kind != Kind::Local {
            let authority = url
                .split_once("://")
                .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
                .unwrap_or("");
            if authority
                .rsplit_once('@')
                .is_some_and(|(user, _)| user.contains(':'))
            {
                return Err(bad(
                    "must not carry a password; pass credentials separately",
                ));
            }
            if authority.is_empty() {
                return Err(bad("has no host"));
            }
        }
        match (&credentials, kind) {
            (Credentials::None, _) => {}
            (Credentials::Basic { .. } | Credentials::Token(_), Kind::Http) => {}
            (Credentials::SshKey(key), Kind::Ssh) => {
                DeployKey::from_openssh(key.expose_secret(), "the SSH private key")
                    .map_err(|_| bad("the SSH private key is not a valid OpenSSH Ed25519 key"))?;
            }
            (Credentials::SshKey(_), _) => return Err(bad("an SSH key needs an ssh:// URL")),
            (_, _) => return Err(bad("basic auth and tokens need an http(s):// URL")),
        }
        Ok(Self {
            url: url.to_owned(),
            kind,
            credentials,
            host_keys: None,
        })
    }

    /// A local bare repository (path or `file://`), no credentials.
    pub fn local(path: impl AsRef<std::path::Path>) -> Result<Self, GitError> {
        let path = path.as_ref();
        let text = path.to_str().ok_or_else(|| GitError::BadRemote {
            url: path.display().to_string(),
            problem: "is not valid UTF-8".into(),
        })?;
        Self::new(text, Credentials::None)
    }

    /// Sets how the SSH host key is checked. Required for ssh:// remotes.
    pub fn with_host_keys(mut self, host_keys: HostKeys) -> Self {
        self.host_keys = Some(host_keys);
        self
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    /// The repository's folder when the remote is on this machine.
    pub(crate) fn local_path(&self) -> Option<std::path::PathBuf> {
        if self.kind != Kind::Local {
            return None;
        }
        Some(std::path::PathBuf::from(
            self.url.strip_prefix("file://").unwrap_or(&self.url),
        ))
    }

    /// Fails before any connection when an ssh:// remote has no way to check the server's key.
    pub(crate) fn check_ready(&self) -> Result<(), GitError> {
        if self.kind == Kind::Ssh && self.host_keys.is_none() {
            return Err(GitError::BadRemote {
                url: self.url.clone(),
                problem: "an ssh:// remote needs pinned host keys or known_hosts lines (no trust on first use)".into(),
            });
        }
        Ok(())
    }

    /// The libgit2 callbacks for one connection; `state` records what the callbacks saw so that a
    /// failure can be explained (libgit2 drops the messages of errors returned from callbacks).
    pub(crate) fn callbacks<'a>(
        &'a self,
        state: &Rc<RefCell<CallbackState>>,
    ) -> RemoteCallbacks<'a> {
        let mut cb = RemoteCallbacks::new();
        let creds_state = state.clone();
        cb.credentials(move |_url, user_from_url, allowed| {
            let mut st = creds_state.borrow_mut();
            st.credential_attempts += 1;
            if st.credential_attempts > MAX_CREDENTIAL_ATTEMPTS {
                st.credentials_rejected = true;
                return Err(git2::Error::from_str("credentials rejected by the server"));
            }
            self.answer_credentials(user_from_url, allowed)
        });
        let cert_state = state.clone();
        let (host, port) = host_and_port(&self.url);
        cb.certificate_check(move |cert, _host| {
            let Some(hostkey) = cert.as_hostkey() else {
                // TLS: let libgit2 and OpenSSL verify the chain against the system's CA store.
                return Ok(CertificateCheckStatus::CertificatePassthrough);
            };
            let verdict = match &self.host_keys {
                Some(HostKeys::Pinned(pins)) => {
                    let seen = hostkey.hash_sha256().map(sha256_fingerprint_of_hash);
                    match seen {
                        Some(fp) if pins.iter().any(|p| p == &fp) => Ok(()),
                        Some(fp) => Err(format!("host key {fp} is not one of the pinned keys")),
                        None => Err("the server sent no SHA-256 host key hash".to_owned()),
                    }
                }
                Some(HostKeys::KnownHosts(lines)) => match hostkey.hostkey() {
                    Some(blob) if known_hosts_accept(lines, &host, port, blob) => Ok(()),
                    Some(blob) => Err(format!(
                        "host key {} for {} is not in known_hosts",
                        sha256_fingerprint(blob),
                        host_pattern(&host, port)
                    )),
                    None => Err("the server sent no host key".to_owned()),
                },
                None => Err("no host keys configured".to_owned()),
            };
            match verdict {
                Ok(()) => Ok(CertificateCheckStatus::CertificateOk),
                Err(why) => {
                    cert_state.borrow_mut().host_key_problem = Some(why);
                    Err(git2::Error::from_str("host key rejected"))
                }
            }
        });
        cb
    }

    fn answer_credentials(
        &self,
        user_from_url: Option<&str>,
        allowed: CredentialType,
    ) -> Result<Cred, git2::Error> {
        match &self.credentials {
            Credentials::Basic { username, password }
                if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) =>
            {
                Cred::userpass_plaintext(username, password.expose_secret())
            }
            Credentials::Token(token) if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) => {
                Cred::userpass_plaintext("x-access-token", token.expose_secret())
            }
            Credentials::SshKey(private) if allowed.contains(CredentialType::SSH_KEY) => {
                let user = user_from_url.unwrap_or("git");
                // libssh2 derives the public key from memory unreliably across backends: hand it over.
                let public =
                    DeployKey::from_openssh(private.expose_secret(), "the SSH private key")
                        .map_err(|_| git2::Error::from_str("unusable SSH key"))?
                        .public_openssh();
                Cred::ssh_key_from_memory(user, Some(&public), private.expose_secret(), None)
            }
            Credentials::SshKey(_) if allowed.contains(CredentialType::USERNAME) => {
                Cred::username(user_from_url.unwrap_or("git"))
            }
            _ => Err(git2::Error::from_str(
                "no credentials configured for this remote",
            )),
        }
    }
}

/// What the callbacks of one connection saw.
#[derive(Default)]
pub(crate) struct CallbackState {
    pub credential_attempts: u32,
    pub credentials_rejected: bool,
    pub host_key_problem: Option<String>,
    /// `refs/heads/x: reason` for every ref the server refused (push only).
    pub rejected_refs: Vec<String>,
    /// Set by the push negotiation when the remote branch is no longer where this change started.
    pub moved_to: Option<String>,
}

/// `user:pass@` would never reach an error message, but a token in a URL must not either.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => {
            let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            match authority.rsplit_once('@') {
                Some((_, host)) => format!("{scheme}://***@{host}{path}"),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

fn host_and_port(url: &str) -> (String, u16) {
    match crate::model::ssh_host_port(url) {
        Some((h, p)) => (h.to_owned(), p),
        None => (String::new(), 22),
    }
}

/// How known_hosts names a host: bare for port 22, `[host]:port` otherwise.
fn host_pattern(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    }
}

fn sha256_fingerprint_of_hash(hash: &[u8; 32]) -> String {
    format!(
        "SHA256:{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(hash)
    )
}

fn sha256_fingerprint(blob: &[u8]) -> String {
    sha256_fingerprint_of_hash(&Sha256::digest(blob).into())
}

/// Whether a known_hosts text accepts `blob` (the server's public key, SSH wire encoding) for
/// host:port. Understands comma-separated names, `[host]:port`, hashed names (`|1|salt|hmac`),
/// `@revoked` (never accepted) and skips `@cert-authority` lines (no CA support: not a match).
pub(crate) fn known_hosts_accept(text: &str, host: &str, port: u16, blob: &[u8]) -> bool {
    let wanted = host_pattern(host, port);
    let mut accepted = false;
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next().unwrap_or("");
        let marker = first.starts_with('@').then(|| first.to_owned());
        if marker.is_some() {
            first = fields.next().unwrap_or("");
        }
        let (Some(_keytype), Some(key_b64)) = (fields.next(), fields.next()) else {
            continue;
        };
        let Ok(key) = base64::engine::general_purpose::STANDARD.decode(key_b64) else {
            continue;
        };
        if !first.split(',').any(|name| host_matches(name, &wanted)) || key != blob {
            continue;
        }
        match marker.as_deref() {
            None => accepted = true,
            Some("@revoked") => return false,
            Some(_) => {}
        }
    }
    accepted
}

fn host_matches(name: &str, wanted: &str) -> bool {
    if let Some(hashed) = name.strip_prefix("|1|") {
        let Some((salt, hash)) = hashed.split_once('|') else {
            return false;
        };
        let b64 = base64::engine::general_purpose::STANDARD;
        let (Ok(salt), Ok(hash)) = (b64.decode(salt), b64.decode(hash)) else {
            return false;
        };
        let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
            return false;
        };
        mac.update(wanted.as_bytes());
        return mac.verify_slice(&hash).is_ok();
    }
    name == wanted
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_B64: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl";

    fn blob() -> Vec<u8> {
        base64::engine::general_purpose::STANDARD
            .decode(KEY_B64)
            .unwrap()
    }

    #[test]
    fn urls_are_checked() {
        for bad in [
            "git@github.com:org/repo.git",
            "relative/path",
            "https://user:pw@example.com/r.git",
            "ftp://x/y",
            "",
            "ssh:///nohost",
        ] {
            let e = Remote::new(bad, Credentials::None)
                .err()
                .expect(bad)
                .to_string();
            assert!(!e.contains("pw@"), "{e}");
        }
        assert!(Remote::new(
            "https://x-access-token@example.com/r.git",
            Credentials::None
        )
        .is_ok());
        let wrong = Remote::new(
            "ssh://git@example.com/r.git",
            Credentials::Token(SecretString::from("t".to_owned())),
        );
        assert!(wrong.err().unwrap().to_string().contains("http(s)"));
        let e = Remote::new(
            "ssh://git@example.com/r.git",
            Credentials::SshKey(SecretString::from("not a key".to_owned())),
        )
        .err()
        .unwrap()
        .to_string();
        assert!(
            e.contains("not a valid OpenSSH") && !e.contains("not a key"),
            "{e}"
        );
        let ssh = Remote::new("ssh://git@example.com/r.git", Credentials::None).unwrap();
        assert!(ssh
            .check_ready()
            .unwrap_err()
            .to_string()
            .contains("known_hosts"));
    }

    #[test]
    fn redaction_hides_userinfo() {
        assert_eq!(redact("https://a:b@h/x"), "https://***@h/x");
        assert_eq!(redact("https://h/x@y"), "https://h/x@y");
        assert_eq!(redact("/srv/git/x.git"), "/srv/git/x.git");
    }

    #[test]
    fn known_hosts_plain_port_and_revoked() {
        let b = blob();
        let text = format!("# comment\n[127.0.0.1]:2222,other ssh-ed25519 {KEY_B64} c\n");
        assert!(known_hosts_accept(&text, "127.0.0.1", 2222, &b));
        assert!(
            !known_hosts_accept(&text, "127.0.0.1", 22, &b),
            "port must match"
        );
        assert!(known_hosts_accept(
            &format!("github.com ssh-ed25519 {KEY_B64}"),
            "github.com",
            22,
            &b
        ));
        assert!(
            !known_hosts_accept(&text, "127.0.0.1", 2222, &b[1..]),
            "key must match"
        );
        let revoked = format!("{text}@revoked [127.0.0.1]:2222 ssh-ed25519 {KEY_B64}\n");
        assert!(!known_hosts_accept(&revoked, "127.0.0.1", 2222, &b));
        let ca = format!("@cert-authority [127.0.0.1]:2222 ssh-ed25519 {KEY_B64}\n");
        assert!(!known_hosts_accept(&ca, "127.0.0.1", 2222, &b));
    }

    #[test]
    fn known_hosts_hashed_names() {
        // Made with `ssh-keygen -H` semantics: HMAC-SHA1(salt, "[127.0.0.1]:2222").
        let salt = [7u8; 20];
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(&salt).unwrap();
        mac.update(b"[127.0.0.1]:2222");
        let b64 = base64::engine::general_purpose::STANDARD;
        let name = format!(
            "|1|{}|{}",
            b64.encode(salt),
            b64.encode(mac.finalize().into_bytes())
        );
        let text = format!("{name} ssh-ed25519 {KEY_B64}\n");
        assert!(known_hosts_accept(&text, "127.0.0.1", 2222, &blob()));
        assert!(!known_hosts_accept(&text, "127.0.0.2", 2222, &blob()));
    }

    #[test]
    fn fingerprints_look_like_ssh_keygen() {
        let fp = sha256_fingerprint(&blob());
        assert!(fp.starts_with("SHA256:") && !fp.ends_with('='), "{fp}");
        assert_eq!(fp.len(), "SHA256:".len() + 43);
    }
}
