//! The keys that sign deployment tokens, as sealwright keeps them: `signing-keys.sops.yaml` in the
//! state repo, each key's secret SOPS-encrypted to the operator key (`encrypted_regex:
//! ^secret$`; ids, algorithms and dates stay readable for review), so a clone of the state repo
//! alone cannot mint tokens.
//!
//! One key per algorithm is active and signs. Rotating retires it: a retired key still verifies until the last
//! token it can have signed has expired, and is dropped after that.

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jwt::{Algorithm, SigningKey, Verifier};
use crate::keys::AgeKey;
use crate::plain::{json_of, yaml_of};
use sops::scalar::DateTime;
use sops::{EmitOptions, Format};

/// Where the key ring lives in the state repo.
pub const PATH: &str = "signing-keys.sops.yaml";

#[derive(Debug, thiserror::Error)]
pub enum KeyRingError {
    #[error("{PATH}: {0}")]
    Sops(String),
    #[error("{PATH}: {0}")]
    Invalid(String),
}

#[derive(Clone, Debug)]
struct Entry {
    key: SigningKey,
    created: i64,
    /// `None` for the active key; a retired key verifies until then (Unix seconds).
    verify_until: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    kid: String,
    alg: String,
    created: i64,
    verify_until: Option<i64>,
    secret: String,
}

#[derive(Clone, Debug)]
pub struct KeyRing {
    entries: Vec<Entry>,
}

/// A key id: when and how it was made, and a random tail.
fn new_kid(alg: Algorithm, now: i64) -> String {
    use rand::RngCore;
    let mut b = [0u8; 4];
    rand::rngs::OsRng.fill_bytes(&mut b);
    format!(
        "{}-{now}-{}",
        alg.as_str().to_ascii_lowercase(),
        hex::encode(b)
    )
}

impl KeyRing {
    /// A ring with one fresh active key.
    pub fn new(alg: Algorithm, now: i64) -> KeyRing {
        KeyRing {
            entries: vec![Entry {
                key: SigningKey::generate(alg, &new_kid(alg, now)),
                created: now,
                verify_until: None,
            }],
        }
    }

    /// The key that signs new tokens with `alg`, if the ring has one.
    pub fn active(&self, alg: Algorithm) -> Option<&SigningKey> {
        self.entries
            .iter()
            .find(|e| e.verify_until.is_none() && e.key.alg() == alg)
            .map(|e| &e.key)
    }

    /// Makes sure `alg` has an active key (a cluster may sign with another algorithm than the
    /// default); whether one was added.
    pub fn ensure(&mut self, alg: Algorithm, now: i64) -> bool {
        if self.active(alg).is_some() {
            return false;
        }
        self.entries.push(Entry {
            key: SigningKey::generate(alg, &new_kid(alg, now)),
            created: now,
            verify_until: None,
        });
        true
    }

    /// Retires the active key of `alg` (it verifies for `token_lifetime` more, the longest a
    /// token it signed can live) and makes a new one.
    pub fn rotate(&mut self, alg: Algorithm, now: i64, token_lifetime: i64) {
        for e in &mut self.entries {
            if e.verify_until.is_none() && e.key.alg() == alg {
                e.verify_until = Some(now + token_lifetime);
            }
        }
        self.ensure(alg, now);
    }

    /// Drops retired keys whose tokens have all expired; whether any went.
    pub fn prune(&mut self, now: i64) -> bool {
        let before = self.entries.len();
        self.entries
            .retain(|e| e.verify_until.is_none_or(|until| until >= now));
        self.entries.len() != before
    }

    /// Every key id, the active ones first.
    pub fn kids(&self) -> Vec<String> {
        let (active, retired): (Vec<&Entry>, Vec<&Entry>) =
            self.entries.iter().partition(|e| e.verify_until.is_none());
        active
            .into_iter()
            .chain(retired)
            .map(|e| e.key.kid().to_owned())
            .collect()
    }

    /// What verifies tokens signed by any key of the ring.
    pub fn verifier(&self, issuer: &str, leeway_secs: i64) -> Verifier {
        let mut v = Verifier::new(issuer, leeway_secs);
        for e in &self.entries {
            v.add(e.key.verifying_key());
        }
        v
    }

    /// The file for the state repo, encrypted to `operator` (an age recipient).
    pub fn encode(&self, operator: &str, now: DateTime) -> Result<Vec<u8>, KeyRingError> {
        let keys: Vec<Stored> = self
            .entries
            .iter()
            .map(|e| Stored {
                kid: e.key.kid().to_owned(),
                alg: e.key.alg().as_str().to_owned(),
                created: e.created,
                verify_until: e.verify_until,
                secret: B64.encode(e.key.secret_bytes().as_slice()),
            })
            .collect();
        let plain = zeroize::Zeroizing::new(yaml_of(&json!({ "keys": keys })));
        let sops = |e: sops::SopsError| KeyRingError::Sops(e.to_string());
        let branches = Format::Yaml.parse_plain(&plain).map_err(sops)?;
        sops::encrypt_yaml_to(branches, operator, "^secret$", now, EmitOptions::default())
            .map_err(sops)
    }

    /// Reads the file back with the operator key.
    pub fn decode(bytes: &[u8], operator: &AgeKey) -> Result<KeyRing, KeyRingError> {
        let sops = |e: sops::SopsError| KeyRingError::Sops(e.to_string());
        let doc = Format::Yaml.parse_encrypted(bytes).map_err(sops)?;
        let plain = sops::decrypt(&doc, &operator.identities(), true).map_err(sops)?;
        let text = zeroize::Zeroizing::new(
            Format::Yaml
                .emit_plain(&plain.branches, EmitOptions::default())
                .map_err(sops)?,
        );
        let j = json_of(&text).map_err(|e| KeyRingError::Invalid(e.to_string()))?;
        let stored: Vec<Stored> = serde_json::from_value(j["keys"].clone())
            .map_err(|e| KeyRingError::Invalid(format!("keys: {e}")))?;
        let mut entries = Vec::new();
        for s in stored {
            let alg = Algorithm::parse(&s.alg).ok_or_else(|| {
                KeyRingError::Invalid(format!("key {}: unknown algorithm {:?}", s.kid, s.alg))
            })?;
            let secret = zeroize::Zeroizing::new(B64.decode(&s.secret).map_err(|_| {
                KeyRingError::Invalid(format!("key {}: the secret is not base64", s.kid))
            })?);
            let key = SigningKey::from_secret(alg, &s.kid, &secret)
                .map_err(|e| KeyRingError::Invalid(format!("key {}: {e}", s.kid)))?;
            entries.push(Entry {
                key,
                created: s.created,
                verify_until: s.verify_until,
            });
        }
        let mut active = std::collections::BTreeSet::new();
        for e in entries.iter().filter(|e| e.verify_until.is_none()) {
            if !active.insert(e.key.alg()) {
                return Err(KeyRingError::Invalid(format!(
                    "two active {} keys (at most one per algorithm may lack verify_until)",
                    e.key.alg().as_str()
                )));
            }
        }
        Ok(KeyRing { entries })
    }
}

#[cfg(test)]
mod tests {
    use super::super::jwt::{Claims, TokenError};
    use super::*;

    fn claims(iat: i64, exp: i64) -> Claims {
        Claims {
            sub: "d".into(),
            env_id: "e".into(),
            cluster_id: "c".into(),
            iss: "sw".into(),
            jti: format!("j{iat}"),
            iat,
            exp,
        }
    }

    #[test]
    fn the_ring_round_trips_encrypted_to_the_operator_key_only() {
        let operator = AgeKey::generate();
        let mut ring = KeyRing::new(Algorithm::EdDSA, 1000);
        ring.rotate(Algorithm::HS256, 2000, 3600);
        ring.rotate(Algorithm::EdDSA, 2000, 3600);
        assert_eq!(ring.kids().len(), 3, "one retired, two active");
        let bytes = ring
            .encode(&operator.recipient(), DateTime::from_unix(2000))
            .unwrap();
        let text = String::from_utf8(bytes.clone()).unwrap();
        for kid in ring.kids() {
            assert!(text.contains(&kid), "ids stay readable");
        }
        assert!(text.contains("secret: ENC["), "{text}");
        assert!(!text.contains(
            &B64.encode(
                ring.active(Algorithm::HS256)
                    .unwrap()
                    .secret_bytes()
                    .as_slice()
            )
        ));
        let back = KeyRing::decode(&bytes, &operator).unwrap();
        assert_eq!(back.kids(), ring.kids());
        assert!(
            back.active(Algorithm::EdDSA).is_some(),
            "still active: another algorithm"
        );
        let token = ring
            .active(Algorithm::HS256)
            .unwrap()
            .mint(&claims(2000, 5000));
        assert!(back.verifier("sw", 0).verify(&token, 2500).is_ok());
        let e = KeyRing::decode(&bytes, &AgeKey::generate())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(PATH), "{e}");
    }

    #[test]
    fn a_rotated_key_verifies_until_its_last_token_expires() {
        let mut ring = KeyRing::new(Algorithm::HS256, 0);
        let old_token = ring
            .active(Algorithm::HS256)
            .unwrap()
            .mint(&claims(100, 3700));
        ring.rotate(Algorithm::HS256, 100, 3600);
        let new_token = ring
            .active(Algorithm::HS256)
            .unwrap()
            .mint(&claims(200, 3800));
        let v = ring.verifier("sw", 0);
        assert!(v.verify(&old_token, 3000).is_ok());
        assert!(v.verify(&new_token, 3000).is_ok());
        assert!(!ring.prune(3700), "still needed at the last token's expiry");
        assert!(ring.prune(3701));
        assert_eq!(ring.kids().len(), 1);
        assert_eq!(
            ring.verifier("sw", 0).verify(&old_token, 3000),
            Err(TokenError::UnknownKey)
        );
    }
}
