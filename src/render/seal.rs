//! Encrypting rendered Secrets, noise-free.
//!
//! Two cases, because sealwright can open one kind of file and not the other:
//! - platform secrets are encrypted to the app key, which sealwright holds: the previous file is
//!   decrypted and re-encrypted with its data key, so values whose plaintext did not change keep
//!   their exact ciphertext, and a file with no change at all comes back byte for byte. Its data
//!   key is reused only if the file carries `sealwright.dev/seal`, an HMAC of the data key under
//!   a key derived from the app's private key: anyone can encrypt a file to the (public) app
//!   recipient with a data key of their choosing, but only sealwright can tag it, so a planted
//!   file is replaced rather than adopted;
//! - the app key and deploy key Secrets in the Flux repo are encrypted to the cluster key, whose
//!   private half sealwright never has. The plaintext's SHA-256 is written unencrypted into the
//!   annotation `sealwright.dev/fingerprint`; when the previous file carries the same fingerprint,
//!   the same recipients and the same unencrypted fields, it is kept as is. (Whoever can write
//!   the Flux repo is trusted by the cluster anyway: that repo controls Flux itself.) Publishing that hash is safe only because every
//!   such Secret contains a freshly generated 256-bit private key: the hash cannot be inverted or
//!   guessed. Never use it for user-supplied values.
//!
//! Everything is YAML with `encrypted_regex: ^(data|stringData)$`, so kustomize (and people) can
//! read `apiVersion`, `kind` and `metadata` without a key, as Flux requires.

use sha2::{Digest, Sha256};

use super::RenderError;
use crate::keys::AgeKey;
use sops::cipher::DataKey;
use sops::document::{self, EmitOptions, EncryptSettings, Format, KeySpec};
use sops::rules::CryptRule;
use sops::scalar::DateTime;
use sops::{Map, Value};

/// The annotation holding the plaintext fingerprint of a Secret encrypted to the cluster key.
pub const FINGERPRINT_ANNOTATION: &str = "sealwright.dev/fingerprint";

/// The annotation binding a platform secret's data key to sealwright (see the module docs).
pub const SEAL_ANNOTATION: &str = "sealwright.dev/seal";

/// `hmac-sha256:<hex>` of `path` and the data key, under a key derived from the app key.
fn seal_tag(app_key: &AgeKey, path: &str, data_key: &DataKey) -> String {
    use hmac::{Hmac, Mac};
    use secrecy::ExposeSecret;
    let mut derive = Sha256::new();
    derive.update(b"sealwright seal tag v1\0");
    derive.update(app_key.secret().expose_secret().as_bytes());
    let tag_key: zeroize::Zeroizing<[u8; 32]> = zeroize::Zeroizing::new(derive.finalize().into());
    let mut mac = match Hmac::<Sha256>::new_from_slice(tag_key.as_ref()) {
        Ok(m) => m,
        Err(e) => unreachable!("HMAC takes keys of any length: {e}"),
    };
    mac.update(path.as_bytes());
    mac.update(b"\0");
    mac.update(data_key.as_bytes());
    let out = mac.finalize().into_bytes();
    format!(
        "hmac-sha256:{}",
        out.iter().map(|b| format!("{b:02x}")).collect::<String>()
    )
}

const ENCRYPTED_REGEX: &str = "^(data|stringData)$";

fn settings(recipients: &[String]) -> Result<EncryptSettings, RenderError> {
    let rule =
        CryptRule::from_key("encrypted_regex", ENCRYPTED_REGEX).map_err(|e| RenderError::Sops {
            path: "(rule)".into(),
            source: sops::SopsError::from(e),
        })?;
    Ok(EncryptSettings {
        keys: KeySpec {
            groups: vec![recipients.to_vec()],
            shamir_threshold: 0,
        },
        rule,
        mac_only_encrypted: false,
    })
}

fn sops_err(path: &str) -> impl Fn(sops::SopsError) -> RenderError + '_ {
    move |source| RenderError::Sops {
        path: path.to_string(),
        source,
    }
}

fn fresh(
    path: &str,
    branches: Vec<Map>,
    key: DataKey,
    recipients: &[String],
    now: DateTime,
) -> Result<Vec<u8>, RenderError> {
    let doc = document::encrypt_with_key(branches, key, &settings(recipients)?, Format::Yaml, now)
        .map_err(sops_err(path))?;
    Format::Yaml
        .emit_encrypted(&doc, EmitOptions::default())
        .map_err(sops_err(path))
}

/// Whether a previous document was written for exactly these recipients with our crypt rule.
fn same_keys(prev: &document::Encrypted, recipients: &[String]) -> bool {
    let md = &prev.metadata;
    md.recipients() == vec![recipients.to_vec()]
        && !md.has_foreign_keys()
        && md.shamir_threshold <= 1
        && md.rule().key() == "encrypted_regex"
        && md.rule().source() == ENCRYPTED_REGEX
        && !md.mac_only_encrypted
}

/// Encrypts a platform secret to `recipients` (the app key first), reusing `previous`.
pub fn with_app_key(
    path: &str,
    branches: Vec<Map>,
    recipients: &[String],
    key: &AgeKey,
    previous: Option<&[u8]>,
    now: DateTime,
) -> Result<Vec<u8>, RenderError> {
    if let Some(bytes) = previous {
        match reuse_with_key(path, &branches, recipients, key, bytes, now) {
            Ok(Some(out)) => return Ok(out),
            Ok(None) => {}
            // A file this key cannot open is never overwritten: it may be the only copy of a
            // secret under a key sealwright lost. Fail loudly instead. The reason names no value.
            Err(Reuse::Unreadable(reason)) => {
                return Err(RenderError::Unreadable {
                    path: path.to_owned(),
                    reason,
                })
            }
            // One that opens but whose data key sealwright did not choose is replaced: the
            // desired state is the source of truth, and nothing is lost.
            Err(Reuse::Unsealed(reason)) => {
                tracing::warn!(%path, %reason, "previous file not reusable; encrypting afresh")
            }
        }
    }
    let data_key = DataKey::generate();
    let mut branches = branches;
    let tag = seal_tag(key, path, &data_key);
    for b in &mut branches {
        set_annotation(b, SEAL_ANNOTATION, &tag);
    }
    fresh(path, branches, data_key, recipients, now)
}

/// Opens a platform secret that sealwright wrote: decrypts it with the app key (MAC checked) and
/// checks its seal, so a file planted with a data key of someone else's choosing is refused. The
/// plaintext Secret comes back; the error names what failed, never a value.
pub fn open_with_app_key(path: &str, bytes: &[u8], key: &AgeKey) -> Result<Map, String> {
    let doc = Format::Yaml
        .parse_encrypted(bytes)
        .map_err(|e| e.to_string())?;
    let dec = document::decrypt(&doc, &key.identities(), true).map_err(|e| e.to_string())?;
    let tag = seal_tag(key, path, &dec.data_key);
    if doc.branches.len() != 1 || annotation(&doc.branches[0], SEAL_ANNOTATION) != Some(&tag) {
        return Err("not sealed by sealwright (no valid sealwright.dev/seal)".into());
    }
    dec.branches
        .into_iter()
        .next()
        .ok_or_else(|| "holds no document".to_string())
}

/// Why a previous file is not reused.
enum Reuse {
    /// It does not parse or decrypt with the app key.
    Unreadable(String),
    /// It opens, but its data key was not chosen by sealwright.
    Unsealed(String),
}

fn reuse_with_key(
    path: &str,
    branches: &[Map],
    recipients: &[String],
    key: &AgeKey,
    bytes: &[u8],
    now: DateTime,
) -> Result<Option<Vec<u8>>, Reuse> {
    let prev = Format::Yaml
        .parse_encrypted(bytes)
        .map_err(|e| Reuse::Unreadable(e.to_string()))?;
    // Decrypted even when the recipients changed: a file the app key cannot open is not ours
    // to replace.
    let dec = document::decrypt(&prev, &key.identities(), true)
        .map_err(|e| Reuse::Unreadable(e.to_string()))?;
    if !same_keys(&prev, recipients) {
        tracing::debug!(%path, "recipients changed; encrypting afresh");
        return Ok(None);
    }
    let tag = seal_tag(key, path, &dec.data_key);
    if prev.branches.len() != 1 || annotation(&prev.branches[0], SEAL_ANNOTATION) != Some(&tag) {
        return Err(Reuse::Unsealed(
            "its data key was not chosen by sealwright (no valid sealwright.dev/seal)".into(),
        ));
    }
    let mut branches = branches.to_vec();
    for b in &mut branches {
        set_annotation(b, SEAL_ANNOTATION, &tag);
    }
    let (next, changed) = document::reencrypt(&prev, &dec, branches, now)
        .map_err(|e| Reuse::Unsealed(e.to_string()))?;
    if !changed {
        return Ok(Some(bytes.to_vec()));
    }
    Format::Yaml
        .emit_encrypted(&next, EmitOptions::default())
        .map(Some)
        .map_err(|e| Reuse::Unsealed(e.to_string()))
}

/// Encrypts a Secret holding key material to the cluster `recipients`, keeping `previous`
/// byte for byte when its fingerprint and recipients match.
pub fn for_cluster(
    path: &str,
    mut branches: Vec<Map>,
    recipients: &[String],
    previous: Option<&[u8]>,
    now: DateTime,
) -> Result<Vec<u8>, RenderError> {
    let plain = Format::Yaml
        .emit_plain(&branches, EmitOptions::default())
        .map_err(sops_err(path))?;
    let fingerprint = format!(
        "sha256:{}",
        Sha256::digest(&plain)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    );
    drop(zeroize::Zeroizing::new(plain));
    for b in &mut branches {
        set_annotation(b, FINGERPRINT_ANNOTATION, &fingerprint);
    }
    if let Some(bytes) = previous {
        if let Ok(prev) = Format::Yaml.parse_encrypted(bytes) {
            let kept = prev.branches.len() == 1
                && branches.len() == 1
                && annotation(&prev.branches[0], FINGERPRINT_ANNOTATION)
                    == Some(fingerprint.as_str())
                && same_keys(&prev, recipients)
                && without_data(&prev.branches[0]) == without_data(&branches[0]);
            if kept {
                return Ok(bytes.to_vec());
            }
        }
    }
    fresh(path, branches, DataKey::generate(), recipients, now)
}

/// The document without its encrypted top-level fields: what must match exactly for a file we
/// cannot decrypt to be kept.
fn without_data(doc: &Map) -> Map {
    let mut m = doc.clone();
    m.remove("data");
    m.remove("stringData");
    m
}

fn annotation<'a>(doc: &'a Map, key: &str) -> Option<&'a str> {
    doc.get("metadata")?
        .as_map()?
        .get("annotations")?
        .as_map()?
        .get(key)?
        .as_str()
}

fn set_annotation(doc: &mut Map, key: &str, value: &str) {
    let Some(Value::Map(meta)) = doc.get_mut("metadata") else {
        return;
    };
    if !matches!(meta.get("annotations"), Some(Value::Map(_))) {
        meta.insert("annotations", Value::Map(Map::new()));
    }
    if let Some(Value::Map(ann)) = meta.get_mut("annotations") {
        ann.insert(key, Value::str(value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sops::store::yaml;

    fn doc(value: &str) -> Vec<Map> {
        yaml::parse(
            format!(
                "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n  namespace: n\ndata:\n  a: {value}\n  b: YmJi\n"
            )
            .as_bytes(),
        )
        .unwrap()
    }

    #[test]
    fn app_key_files_are_noise_free() {
        let key = AgeKey::generate();
        let r = vec![key.recipient()];
        let t0 = DateTime::from_unix(1_700_000_000);
        let t1 = DateTime::from_unix(1_800_000_000);
        let first = with_app_key("p", doc("YWFh"), &r, &key, None, t0).unwrap();
        let again = with_app_key("p", doc("YWFh"), &r, &key, Some(&first), t1).unwrap();
        assert_eq!(first, again, "no change, no diff");
        let changed = with_app_key("p", doc("enp6"), &r, &key, Some(&first), t1).unwrap();
        let (a, b) = (
            String::from_utf8(first.clone()).unwrap(),
            String::from_utf8(changed).unwrap(),
        );
        let diff: Vec<_> = a.lines().zip(b.lines()).filter(|(x, y)| x != y).collect();
        // The changed value, lastmodified and the MAC; b's ciphertext stays.
        assert_eq!(diff.len(), 3, "{diff:#?}");
        // Another key cannot open the previous file: never overwritten, an error naming it.
        let other = AgeKey::generate();
        let r2 = vec![other.recipient()];
        let e = with_app_key("p", doc("YWFh"), &r2, &other, Some(&first), t1).unwrap_err();
        assert!(
            matches!(e, RenderError::Unreadable { ref path, .. } if path == "p"),
            "{e}"
        );
        // A recipient added (break-glass) re-encrypts what the app key still opens.
        let r3 = vec![key.recipient(), other.recipient()];
        let widened = with_app_key("p", doc("YWFh"), &r3, &key, Some(&first), t1).unwrap();
        assert_ne!(widened, first);
    }

    #[test]
    fn a_planted_file_with_a_foreign_data_key_is_replaced_not_adopted() {
        let key = AgeKey::generate();
        let r = vec![key.recipient()];
        let t = DateTime::from_unix(1_700_000_000);
        // Someone with only the public recipient encrypts the same plaintext with their own key.
        let planted_doc =
            document::encrypt(doc("YWFh"), &settings(&r).unwrap(), Format::Yaml, t).unwrap();
        let planted = Format::Yaml
            .emit_encrypted(&planted_doc, EmitOptions::default())
            .unwrap();
        let out = with_app_key("p", doc("YWFh"), &r, &key, Some(&planted), t).unwrap();
        assert_ne!(out, planted);
        let enc = Format::Yaml.parse_encrypted(&out).unwrap();
        let dec = document::decrypt(&enc, &key.identities(), true).unwrap();
        let planted_key = document::decrypt(&planted_doc, &key.identities(), true).unwrap();
        assert_ne!(dec.data_key.as_bytes(), planted_key.data_key.as_bytes());
        // Copying a valid tag from another file does not help either: it binds path and key.
        let genuine = with_app_key("q", doc("YWFh"), &r, &key, None, t).unwrap();
        let tag_line = String::from_utf8(genuine)
            .unwrap()
            .lines()
            .find(|l| l.contains("sealwright.dev/seal:"))
            .unwrap()
            .to_string();
        assert!(tag_line.contains("hmac-sha256:"));
        let again = with_app_key("p", doc("YWFh"), &r, &key, Some(&out), t).unwrap();
        assert_eq!(again, out, "our own file is still reused");
    }

    #[test]
    fn a_cluster_file_edited_outside_data_is_repaired() {
        let cluster = AgeKey::generate();
        let r = vec![cluster.recipient()];
        let t = DateTime::from_unix(1_700_000_000);
        let first = for_cluster("p", doc("YWFh"), &r, None, t).unwrap();
        let edited = String::from_utf8(first.clone())
            .unwrap()
            .replace("namespace: n", "namespace: elsewhere");
        let out = for_cluster("p", doc("YWFh"), &r, Some(edited.as_bytes()), t).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("elsewhere"), "{out}");
    }

    #[test]
    fn cluster_files_keep_their_bytes_while_the_fingerprint_holds() {
        let cluster = AgeKey::generate();
        let r = vec![cluster.recipient()];
        let t = DateTime::from_unix(1_700_000_000);
        let first = for_cluster("p", doc("YWFh"), &r, None, t).unwrap();
        let text = String::from_utf8(first.clone()).unwrap();
        assert!(
            text.contains("sealwright.dev/fingerprint: sha256:"),
            "{text}"
        );
        assert_eq!(
            for_cluster("p", doc("YWFh"), &r, Some(&first), t).unwrap(),
            first
        );
        assert_ne!(
            for_cluster("p", doc("enp6"), &r, Some(&first), t).unwrap(),
            first
        );
        let r2 = vec![cluster.recipient(), AgeKey::generate().recipient()];
        assert_ne!(
            for_cluster("p", doc("YWFh"), &r2, Some(&first), t).unwrap(),
            first
        );
        // And the cluster key opens it, annotation and all.
        let enc = Format::Yaml.parse_encrypted(&first).unwrap();
        let dec = document::decrypt(&enc, &cluster.identities(), true).unwrap();
        let data = dec.branches[0].get("data").unwrap().as_map().unwrap();
        assert_eq!(data.get("a").unwrap().as_str(), Some("YWFh"));
    }
}
