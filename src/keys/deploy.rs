//! Per-app SSH deploy keys: the Ed25519 keypair Flux's source-controller uses to read an app's
//! platform repo (the GitRepository's `secretRef`), registered read-only with the Git host.
//!
//! Like [`super::AgeKey`], the type has no `Debug` and hands out its private half only as a
//! `SecretString`; ssh-key's private key type zeroises itself on drop.

use std::path::Path;

use secrecy::SecretString;
use ssh_key::{Algorithm, HashAlg, LineEnding, PrivateKey};

use super::KeyError;

/// An Ed25519 SSH keypair.
pub struct DeployKey {
    key: PrivateKey,
}

impl DeployKey {
    /// A fresh keypair whose public half carries `comment` (shown in the host's deploy key list).
    pub fn generate(comment: &str) -> DeployKey {
        let mut rng = rand::rngs::OsRng;
        // Ed25519 generation with the OS RNG cannot fail; the Result only covers algorithms
        // this build does not support.
        let mut key = match PrivateKey::random(&mut rng, Algorithm::Ed25519) {
            Ok(k) => k,
            Err(e) => unreachable!("ed25519 is compiled in: {e}"),
        };
        key.set_comment(comment);
        DeployKey { key }
    }

    /// Parses an OpenSSH private key file (unencrypted, Ed25519).
    pub fn from_openssh(text: &str, path: &str) -> Result<DeployKey, KeyError> {
        let bad = |reason: String| KeyError::BadDeployKey {
            path: path.to_string(),
            reason,
        };
        let key = PrivateKey::from_openssh(text)
            .map_err(|e| bad(format!("not an OpenSSH private key ({e})")))?;
        if key.is_encrypted() {
            return Err(bad(
                "is passphrase-protected; Flux needs an unencrypted key".into(),
            ));
        }
        if key.algorithm() != Algorithm::Ed25519 {
            return Err(bad(format!(
                "is {}; sealwright deploy keys are ssh-ed25519",
                key.algorithm()
            )));
        }
        Ok(DeployKey { key })
    }

    /// The private key in OpenSSH format: what Flux's `identity` entry holds.
    pub fn private_openssh(&self) -> SecretString {
        match self.key.to_openssh(LineEnding::LF) {
            Ok(pem) => SecretString::from(pem.as_str()),
            Err(e) => unreachable!("an in-memory ed25519 key always encodes: {e}"),
        }
    }

    /// The public key line, `ssh-ed25519 AAAA... comment`: Flux's `identity.pub`, and what the
    /// Git host registers as the deploy key.
    pub fn public_openssh(&self) -> String {
        match self.key.public_key().to_openssh() {
            Ok(s) => s,
            Err(e) => unreachable!("an in-memory ed25519 public key always encodes: {e}"),
        }
    }

    /// `SHA256:...`, as `ssh-keygen -l` prints it: safe to log.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }
}

/// Reads a deploy key file (`None` if absent), refusing one others can read.
pub(crate) fn read_file(path: &Path) -> Result<Option<DeployKey>, KeyError> {
    match super::read_private_file(path)? {
        None => Ok(None),
        Some(text) => DeployKey::from_openssh(&text, &path.display().to_string()).map(Some),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn round_trips_through_openssh_text() {
        let k = DeployKey::generate("sealwright shop-platform");
        let pem = k.private_openssh();
        assert!(pem
            .expose_secret()
            .starts_with("-----BEGIN OPENSSH PRIVATE KEY-----\n"));
        let back = DeployKey::from_openssh(pem.expose_secret(), "f").unwrap();
        assert_eq!(back.public_openssh(), k.public_openssh());
        assert!(k.public_openssh().starts_with("ssh-ed25519 AAAA"));
        assert!(k.public_openssh().ends_with(" sealwright shop-platform"));
        assert!(k.fingerprint().starts_with("SHA256:"));
    }

    #[test]
    fn garbage_is_refused_without_echoing_it() {
        let err = DeployKey::from_openssh("not a key SECRETSECRET", "k.deploy-key")
            .err()
            .unwrap();
        let msg = err.to_string();
        assert!(msg.starts_with("key file k.deploy-key: "), "{msg}");
        assert!(!msg.contains("SECRETSECRET"));
    }
}
