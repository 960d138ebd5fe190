//! The `sealwright-checksums` ConfigMap of each namespace: per Secret sealwright writes there,
//! `SECRET_<NAME>_CHECKSUM`, an HMAC-SHA256 of the Secret's type and data under a key derived
//! from the app's age key. Flux substitutes it into pod templates, so a Deployment rolls out
//! exactly when a Secret it names changes. The key is the app's own, so equal values in two
//! apps give unrelated checksums, and nothing about a value can be learnt or compared from one.

use hmac::digest::KeyInit;
use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256, Sha512};

use crate::keys::AgeKey;
use crate::model::SecretValue;

/// The ConfigMap's name and the file it lives in, `secrets/<namespace>/sealwright-checksums.yaml`.
pub const NAME: &str = "sealwright-checksums";
pub const FILE: &str = "sealwright-checksums.yaml";

/// The per-app checksum key: derived from the app's age key, so it is kept (and lost) with it
/// and needs no storage of its own.
pub struct ChecksumKey(Hmac<Sha256>);

impl ChecksumKey {
    pub fn of(age: &AgeKey) -> ChecksumKey {
        use secrecy::ExposeSecret;
        // SHA-512 gives a key of exactly SHA-256's block size, which HMAC takes as it is.
        let key = Sha512::new()
            .chain_update(b"sealwright.dev/checksums v1\0")
            .chain_update(age.secret().expose_secret().as_bytes())
            .finalize();
        ChecksumKey(<Hmac<Sha256> as KeyInit>::new(&key))
    }

    /// The checksum of one Secret's type and data (keys sorted by the caller's order, which is
    /// the model's: sorted). Each field is length-prefixed, so no two Secrets encode alike.
    pub fn of_secret<'a>(
        &self,
        type_: &str,
        data: impl IntoIterator<Item = (&'a str, &'a SecretValue)>,
    ) -> String {
        let mut mac = self.0.clone();
        let mut field = |b: &[u8]| {
            mac.update(&(b.len() as u64).to_be_bytes());
            mac.update(b);
        };
        field(type_.as_bytes());
        let mut entries: Vec<(&str, &SecretValue)> = data.into_iter().collect();
        entries.sort_by(|a, b| a.0.cmp(b.0));
        for (k, v) in entries {
            field(k.as_bytes());
            field(v.expose());
        }
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

/// The ConfigMap key for a Secret: `SECRET_<NAME>_CHECKSUM`, its name upper-cased with `-` and
/// `.` as `_` (a name Flux's variable substitution accepts).
pub fn variable(secret_name: &str) -> String {
    let name: String = secret_name
        .chars()
        .map(|c| match c {
            '-' | '.' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect();
    format!("SECRET_{name}_CHECKSUM")
}

/// A checksum a file of ours already holds (kept while its Secret cannot be read).
pub fn previous(file: &[u8], variable: &str) -> Option<String> {
    let docs = sops::store::yaml::parse(file).ok()?;
    docs.first()?
        .get("data")?
        .as_map()?
        .get(variable)?
        .as_str()
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(s: &str) -> SecretValue {
        SecretValue::new(s.as_bytes().to_vec())
    }

    #[test]
    fn checksums_follow_the_values_and_differ_between_apps() {
        let (a, b) = (AgeKey::generate(), AgeKey::generate());
        let (ka, kb) = (ChecksumKey::of(&a), ChecksumKey::of(&b));
        let (p1, p2) = (v("hunter2"), v("hunter3"));
        let one = ka.of_secret("Opaque", [("password", &p1)]);
        assert_eq!(one, ka.of_secret("Opaque", [("password", &p1)]));
        assert_eq!(
            one,
            ChecksumKey::of(&a).of_secret("Opaque", [("password", &p1)])
        );
        assert_ne!(one, ka.of_secret("Opaque", [("password", &p2)]));
        assert_ne!(one, kb.of_secret("Opaque", [("password", &p1)]));
        assert_ne!(
            one,
            ka.of_secret("kubernetes.io/basic-auth", [("password", &p1)])
        );
        // Length prefixes: moving a byte from a key to its value is another Secret.
        let (x, y) = (v("bc"), v("c"));
        assert_ne!(
            ka.of_secret("Opaque", [("a", &x)]),
            ka.of_secret("Opaque", [("ab", &y)])
        );
        assert_eq!(one.len(), 32);
        assert!(!one.contains("hunter"));
    }

    #[test]
    fn variable_names_are_what_flux_substitutes() {
        assert_eq!(variable("database"), "SECRET_DATABASE_CHECKSUM");
        assert_eq!(
            variable("app-shop-external-secrets"),
            "SECRET_APP_SHOP_EXTERNAL_SECRETS_CHECKSUM"
        );
        assert_eq!(variable("web.tls"), "SECRET_WEB_TLS_CHECKSUM");
    }
}
