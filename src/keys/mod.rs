//! Keys sealwright holds and where they are kept: per-app age keypairs, per-app SSH deploy keys,
//! sealwright's own operator key and the cluster recipient.
//!
//! An [`AgeKey`] holds an X25519 private key: it does not implement `Debug`, hands its secret out
//! only as a `SecretString`, and is zeroised on drop (age's identity type wipes itself). Key stores
//! are a trait because the embedded default keeps files under the data dir and controller mode
//! will keep Kubernetes Secrets. The key chain (cluster key → app key → secrets) is in [`chain`].

pub mod chain;
pub mod deploy;
pub mod secrets;

pub use deploy::DeployKey;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use age::x25519;
use secrecy::{ExposeSecret, SecretString};

use crate::names::{validate_label, NameError};
use sops::scalar::DateTime;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("key store {path}: {reason}")]
    Io { path: String, reason: String },
    #[error("key file {path} is readable by group or others (mode {mode:o}); run chmod 600 on it")]
    TooOpen { path: String, mode: u32 },
    #[error("key file {path}: no AGE-SECRET-KEY-1 line, or more than one")]
    Malformed { path: String },
    #[error("key file {path}: {reason}")]
    BadDeployKey { path: String, reason: String },
    #[error(transparent)]
    BadName(#[from] NameError),
}

/// An age X25519 keypair.
pub struct AgeKey {
    identity: x25519::Identity,
}

impl AgeKey {
    pub fn generate() -> AgeKey {
        AgeKey {
            identity: x25519::Identity::generate(),
        }
    }

    /// The public key, `age1...`.
    pub fn recipient(&self) -> String {
        self.identity.to_public().to_string()
    }

    /// The private key, `AGE-SECRET-KEY-1...`.
    pub fn secret(&self) -> SecretString {
        self.identity.to_string()
    }

    /// This key as a decryption identity for the SOPS engine.
    pub fn identities(&self) -> sops::agekeys::Identities {
        let mut ids = sops::agekeys::Identities::default();
        ids.push(self.identity.clone());
        ids
    }

    /// The identity file text, in age-keygen's format (what Flux's `.agekey` entries hold).
    pub fn identity_file(&self, created: DateTime) -> SecretString {
        SecretString::from(format!(
            "# created: {}\n# public key: {}\n{}\n",
            created.rfc3339(),
            self.recipient(),
            self.secret().expose_secret()
        ))
    }

    /// Parses identity file text holding exactly one X25519 identity.
    pub fn from_identity_file(text: &str, path: &str) -> Result<AgeKey, KeyError> {
        let mut keys = text
            .lines()
            .map(|l| l.trim_end_matches('\r'))
            .filter(|l| l.starts_with("AGE-SECRET-KEY-1"));
        let malformed = || KeyError::Malformed {
            path: path.to_string(),
        };
        let line = keys.next().ok_or_else(malformed)?;
        if keys.next().is_some() {
            return Err(malformed());
        }
        let identity = line.parse::<x25519::Identity>().map_err(|_| malformed())?;
        Ok(AgeKey { identity })
    }
}

/// Where app keys live. One small trait: files here, Kubernetes Secrets in controller mode.
pub trait KeyStore: Send + Sync {
    /// The app's key, if one exists.
    fn get(&self, app: &str) -> Result<Option<AgeKey>, KeyError>;
    /// The app's key, created (and stored) first if it does not exist yet.
    fn get_or_create(&self, app: &str) -> Result<AgeKey, KeyError>;
    /// The app's SSH deploy key (read access to its platform repo), created first if needed.
    fn deploy_key(&self, app: &str) -> Result<DeployKey, KeyError>;
    /// sealwright's own key, which its encrypted state (token signing keys) is encrypted to.
    fn operator(&self) -> Result<AgeKey, KeyError>;
    /// Where the app's key is kept, for messages that tell a person what is missing.
    fn location(&self, app: &str) -> String;
}

/// The embedded default: one identity file per app, `<dir>/<app>.agekey`, and one OpenSSH key per
/// app, `<dir>/<app>.deploy-key`, all mode 0600. sealwright's own keys use names that can never
/// be app names (a leading `_` is not a DNS label): `_operator.agekey`, `_cluster.agekey`.
pub struct FileKeyStore {
    dir: PathBuf,
}

impl FileKeyStore {
    pub fn new(dir: impl Into<PathBuf>) -> FileKeyStore {
        FileKeyStore { dir: dir.into() }
    }

    fn path(&self, app: &str) -> Result<PathBuf, KeyError> {
        validate_app_name(app)?;
        Ok(self.dir.join(format!("{app}.agekey")))
    }

    /// The directory the keys live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// sealwright's own keypair (it encrypts sealwright's state), created on first use.
    pub fn operator_key(&self) -> Result<AgeKey, KeyError> {
        get_or_create_file(&self.dir.join("_operator.agekey"), "operator")
    }

    /// The embedded default plays the cluster too: its key is created on first use and kept
    /// here, so a demo can decrypt what Flux would. A real cluster's recipient is configured
    /// instead, and its private half never reaches sealwright.
    pub fn local_cluster_key(&self) -> Result<AgeKey, KeyError> {
        get_or_create_file(&self.dir.join("_cluster.agekey"), "cluster")
    }

    /// Where [`FileKeyStore::local_cluster_key`] keeps the cluster key.
    pub fn local_cluster_key_path(&self) -> PathBuf {
        self.dir.join("_cluster.agekey")
    }
}

/// The identity file at `path`, created (0600) with a fresh key if it does not exist.
pub fn get_or_create_identity(path: &Path, what: &str) -> Result<AgeKey, KeyError> {
    get_or_create_file(path, what)
}

fn get_or_create_file(path: &Path, what: &str) -> Result<AgeKey, KeyError> {
    if let Some(k) = read_identity_file(path)? {
        return Ok(k);
    }
    let key = AgeKey::generate();
    write_identity_file(path, &key, DateTime::now_utc())?;
    tracing::info!(key = what, path = %path.display(), recipient = %key.recipient(), "created key");
    Ok(key)
}

/// App names become file and repository names: a DNS-1123 label (lowercase alphanumerics and
/// `-`, starting and ending alphanumeric, at most 63 characters).
pub fn validate_app_name(name: &str) -> Result<(), KeyError> {
    Ok(validate_label("app name", name)?)
}

pub(crate) fn io_err(path: &Path, e: std::io::Error) -> KeyError {
    KeyError::Io {
        path: path.display().to_string(),
        reason: e.to_string(),
    }
}

/// Reads an identity file, refusing one that group or others can read.
pub fn read_identity_file(path: &Path) -> Result<Option<AgeKey>, KeyError> {
    let Some(text) = read_private_file(path)? else {
        return Ok(None);
    };
    AgeKey::from_identity_file(&text, &path.display().to_string()).map(Some)
}

/// Reads a private key file (`None` if it does not exist), refusing one that group or others
/// can read: a key that others could have copied is no longer private.
pub(crate) fn read_private_file(
    path: &Path,
) -> Result<Option<zeroize::Zeroizing<String>>, KeyError> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path, e)),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(KeyError::TooOpen {
            path: path.display().to_string(),
            mode,
        });
    }
    let text = zeroize::Zeroizing::new(std::fs::read_to_string(path).map_err(|e| io_err(path, e))?);
    Ok(Some(text))
}

/// Writes an identity file atomically: a 0600 temp file in the same directory, synced, then
/// renamed into place, so a crash never leaves a partial key and no other user can ever read it.
pub fn write_identity_file(path: &Path, key: &AgeKey, created: DateTime) -> Result<(), KeyError> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
    }
    let text = key.identity_file(created);
    crate::fsutil::write_atomic(path, text.expose_secret().as_bytes(), 0o600)
        .map_err(|e| io_err(path, e))
}

impl KeyStore for FileKeyStore {
    fn operator(&self) -> Result<AgeKey, KeyError> {
        self.operator_key()
    }

    fn get(&self, app: &str) -> Result<Option<AgeKey>, KeyError> {
        read_identity_file(&self.path(app)?)
    }

    fn location(&self, app: &str) -> String {
        self.dir.join(format!("{app}.agekey")).display().to_string()
    }

    fn get_or_create(&self, app: &str) -> Result<AgeKey, KeyError> {
        let path = self.path(app)?;
        get_or_create_file(&path, app)
    }

    fn deploy_key(&self, app: &str) -> Result<DeployKey, KeyError> {
        validate_app_name(app)?;
        let path = self.dir.join(format!("{app}.deploy-key"));
        if let Some(k) = deploy::read_file(&path)? {
            return Ok(k);
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
        }
        let key = DeployKey::generate(&format!("sealwright {app}-platform"));
        crate::fsutil::write_atomic(
            &path,
            key.private_openssh().expose_secret().as_bytes(),
            0o600,
        )
        .map_err(|e| io_err(&path, e))?;
        tracing::info!(app, fingerprint = %key.fingerprint(), "created deploy key");
        Ok(key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_creates_once_with_mode_0600_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path().join("keys"));
        assert!(store.get("billing").unwrap().is_none());
        let k = store.get_or_create("billing").unwrap();
        let path = dir.path().join("keys/billing.agekey");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let again = store.get_or_create("billing").unwrap();
        assert_eq!(again.recipient(), k.recipient());
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# created: "));
        assert!(text.contains(&format!("# public key: {}", k.recipient())));
        // No temp files left behind.
        assert_eq!(
            std::fs::read_dir(dir.path().join("keys")).unwrap().count(),
            1
        );
    }

    #[test]
    fn too_open_permissions_are_refused_and_nothing_is_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        let k = store.get_or_create("app").unwrap();
        let path = dir.path().join("app.agekey");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = store.get_or_create("app").err().unwrap();
        assert!(
            matches!(err, KeyError::TooOpen { mode: 0o644, .. }),
            "{err}"
        );
        assert!(!err.to_string().contains("AGE-SECRET-KEY"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            store.get("app").unwrap().unwrap().recipient(),
            k.recipient()
        );
    }

    #[test]
    fn app_names_are_dns_labels() {
        for ok in ["a", "billing-prod", "x1", &"a".repeat(63)] {
            assert!(validate_app_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Billing",
            "a/b",
            "..",
            "-a",
            "a-",
            "a_b",
            &"a".repeat(64),
        ] {
            let err = validate_app_name(bad).unwrap_err();
            assert!(err.to_string().starts_with("app name: "), "{bad}: {err}");
        }
        let store = FileKeyStore::new("/nonexistent");
        assert!(matches!(store.get("../etc"), Err(KeyError::BadName { .. })));
    }

    #[test]
    fn operator_and_local_cluster_keys_are_made_once_and_never_collide_with_apps() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        let op = store.operator_key().unwrap();
        let cl = store.local_cluster_key().unwrap();
        assert_ne!(op.recipient(), cl.recipient());
        assert_eq!(store.operator_key().unwrap().recipient(), op.recipient());
        assert_eq!(
            store.local_cluster_key().unwrap().recipient(),
            cl.recipient()
        );
        // Their file names are not app names, so no app can ever get (or overwrite) them.
        for name in ["_operator", "_cluster"] {
            assert!(validate_app_name(name).is_err());
        }
        let mode = std::fs::metadata(store.local_cluster_key_path())
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn deploy_keys_are_made_once_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let store = FileKeyStore::new(dir.path());
        let k = store.deploy_key("shop").unwrap();
        assert_eq!(
            store.deploy_key("shop").unwrap().public_openssh(),
            k.public_openssh()
        );
        let path = dir.path().join("shop.deploy-key");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(matches!(
            store.deploy_key("shop"),
            Err(KeyError::TooOpen { .. })
        ));
        assert!(matches!(
            store.deploy_key("../x"),
            Err(KeyError::BadName(_))
        ));
    }

    #[test]
    fn malformed_identity_files() {
        assert!(AgeKey::from_identity_file("# nothing\n", "f").is_err());
        let k = AgeKey::generate();
        let two = format!(
            "{}\n{}\n",
            k.secret().expose_secret(),
            k.secret().expose_secret()
        );
        assert!(AgeKey::from_identity_file(&two, "f").is_err());
        let one = k.identity_file(DateTime::from_unix(0));
        let back = AgeKey::from_identity_file(one.expose_secret(), "f").unwrap();
        assert_eq!(back.recipient(), k.recipient());
    }
}
