//! The key chain: cluster key → app key → app secrets.
//!
//! Each app's private key reaches the cluster as the Secret `<app>-platform-age-key` in the
//! Flux repo, SOPS-encrypted to the cluster recipient (and an optional break-glass recipient),
//! so only the cluster — and whoever holds the break-glass key — can open it. Flux's
//! kustomize-controller then uses that Secret to decrypt the app's platform repo. This module
//! owns the names and the contents of that Secret; `render` turns them into the file.

use secrecy::{ExposeSecret, SecretString};

use super::AgeKey;
use sops::agekeys::parse_recipient;

/// The data key Flux reads identities from: it imports every `.data` entry ending in `.agekey`.
pub const AGE_KEY_DATA_KEY: &str = "age.agekey";

/// Makes kustomize-controller re-reconcile Kustomizations that use the Secret when it changes.
pub const WATCH_LABEL: (&str, &str) = ("reconcile.fluxcd.io/watch", "Enabled");

/// The Secret holding `app`'s private key, in the Flux namespace.
pub fn age_secret_name(app: &str) -> String {
    format!("{app}-platform-age-key")
}

/// The Secret holding `app`'s deploy key, in the Flux namespace.
pub fn deploy_key_secret_name(app: &str) -> String {
    format!("{app}-platform-deploy-key")
}

/// The `age.agekey` entry: age identity-file text. It carries the public key as a comment (so a
/// human with the cluster key can tell which app it is) but no creation time, so the same key
/// always renders the same bytes.
pub fn agekey_entry(key: &AgeKey) -> SecretString {
    SecretString::from(format!(
        "# public key: {}\n{}\n",
        key.recipient(),
        key.secret().expose_secret()
    ))
}

/// Who can open the files sealwright writes for the cluster: the cluster's recipient plus,
/// optionally, a break-glass recipient kept offline by the platform team.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ChainRecipients {
    pub cluster: String,
    pub break_glass: Option<String>,
}

/// A recipient string that is not an age X25519 public key, with the field it came from.
#[derive(Debug, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct RecipientError {
    pub field: String,
    pub problem: String,
}

/// Checks that `value` is an age X25519 recipient; the error names `field`.
pub fn validate_recipient(field: &str, value: &str) -> Result<(), RecipientError> {
    parse_recipient(value)
        .map(|_| ())
        .map_err(|e| RecipientError {
            field: field.to_string(),
            problem: e.to_string(),
        })
}

impl ChainRecipients {
    /// The recipients in the order they are written into SOPS metadata.
    pub fn list(&self) -> Vec<String> {
        let mut v = vec![self.cluster.clone()];
        v.extend(self.break_glass.iter().cloned());
        v
    }
}

/// Opens an app's `age-secret.sops.yaml` from the Flux repo with the cluster's private key: the
/// app key inside, checked against the public key the file names. The error names what failed,
/// never key material.
pub fn open_age_secret(bytes: &[u8], cluster: &AgeKey) -> Result<AgeKey, String> {
    use sops::document::{self, Format};
    let doc = Format::Yaml
        .parse_encrypted(bytes)
        .map_err(|e| format!("not a SOPS file: {e}"))?;
    let dec = document::decrypt(&doc, &cluster.identities(), true).map_err(|e| {
        format!(
            "does not decrypt with the cluster identity {} ({e})",
            cluster.recipient()
        )
    })?;
    let secret = dec.branches.first().ok_or("holds no document")?;
    let text = |path: &[&str]| -> Option<String> {
        let mut v = secret.get(path[0])?;
        for p in &path[1..] {
            v = v.as_map()?.get(p)?;
        }
        v.as_str().map(str::to_owned)
    };
    let b64 =
        zeroize::Zeroizing::new(text(&["data", AGE_KEY_DATA_KEY]).ok_or("has no data.age.agekey")?);
    use base64::Engine;
    let entry = zeroize::Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(b64.as_bytes())
            .map_err(|_| "data.age.agekey is not base64")?,
    );
    let entry = std::str::from_utf8(&entry).map_err(|_| "data.age.agekey is not text")?;
    let key = AgeKey::from_identity_file(entry, "data.age.agekey").map_err(|e| e.to_string())?;
    if let Some(named) = text(&["metadata", "annotations", "sealwright.dev/public-key"]) {
        if named != key.recipient() {
            return Err(format!(
                "holds a key whose public key {} is not the {named} it is annotated with",
                key.recipient()
            ));
        }
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn agekey_entry_is_deterministic_identity_text() {
        let k = AgeKey::generate();
        let a = agekey_entry(&k);
        let b = agekey_entry(&k);
        assert_eq!(a.expose_secret(), b.expose_secret());
        let back = AgeKey::from_identity_file(a.expose_secret(), "entry").unwrap();
        assert_eq!(back.recipient(), k.recipient());
        assert!(a.expose_secret().starts_with("# public key: age1"));
    }

    #[test]
    fn recipients_are_checked_with_the_field_named() {
        let k = AgeKey::generate();
        assert!(validate_recipient("cluster.recipient", &k.recipient()).is_ok());
        let err = validate_recipient("cluster.recipient", "age1nope").unwrap_err();
        assert!(err.to_string().starts_with("cluster.recipient: "), "{err}");
        let err =
            validate_recipient("cluster.break_glass_recipient", "ssh-ed25519 AAAA").unwrap_err();
        assert!(err
            .to_string()
            .starts_with("cluster.break_glass_recipient: "));
    }

    #[test]
    fn names() {
        assert_eq!(age_secret_name("shop"), "shop-platform-age-key");
        assert_eq!(deploy_key_secret_name("shop"), "shop-platform-deploy-key");
    }
}
