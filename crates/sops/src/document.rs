//! Whole-document operations: encrypt, decrypt (with MAC check), noise-free re-encryption,
//! `set`, `rotate` and `updatekeys`, over any store.
//!
//! Data flow: bytes → [`Format::parse_plain`] / [`Format::parse_encrypted`] → branches (+ metadata)
//! → the tree walk (`walk.rs`) with a data key recovered or generated here → [`Format::emit_*`].
//! Time enters as an explicit `now` so results are deterministic under test.

use std::path::Path;

use super::agekeys::{self, Identities};
use super::cipher::{random_iv, DataKey, EncValue, ValueCipher};
use super::error::SopsError;
use super::metadata::{self, AgeEntry, KeyGroup, Metadata};
use super::rules::CryptRule;
use super::scalar::{DateTime, TypeTag};
use super::shamir;
use super::store::{binary, dotenv, json, yaml};
use super::value::{Map, Value};
use super::walk::{self, Stash};

/// A file format sops knows (INI is not supported).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Yaml,
    Json,
    Dotenv,
    Binary,
}

/// Emitter settings (`.sops.yaml` `stores:`).
#[derive(Debug, Clone, Copy)]
pub struct EmitOptions {
    /// Spaces per YAML level; sops' default is 4.
    pub yaml_indent: usize,
    /// Spaces per JSON level; `None` is sops' default of one TAB.
    pub json_indent: Option<usize>,
}

impl Default for EmitOptions {
    fn default() -> Self {
        EmitOptions {
            yaml_indent: 4,
            json_indent: None,
        }
    }
}

/// An encrypted document: the branches as stored (ciphertext strings) and the metadata.
#[derive(Clone, Debug)]
pub struct Encrypted {
    pub branches: Vec<Map>,
    pub metadata: Metadata,
}

/// Which recipients to encrypt to: one list of age recipients per key group.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySpec {
    pub groups: Vec<Vec<String>>,
    /// Groups needed to rebuild the key; 0 means all groups. Ignored for a single group.
    pub shamir_threshold: usize,
}

/// Everything an encryption needs besides the plaintext.
#[derive(Clone, Debug)]
pub struct EncryptSettings {
    pub keys: KeySpec,
    pub rule: CryptRule,
    pub mac_only_encrypted: bool,
}

/// The result of a decryption: plaintext branches plus what a later noise-free re-encryption needs.
pub struct Decrypted {
    pub branches: Vec<Map>,
    pub data_key: DataKey,
    pub stash: Stash,
    /// The MAC computed over the plaintext (uppercase hex).
    pub mac: String,
}

impl Format {
    /// By the path's suffix, like sops: `.yaml`/`.yml`, `.json`, `.env`, anything else binary.
    pub fn from_path(path: &Path) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some("yaml" | "yml") => Format::Yaml,
            Some("json") => Format::Json,
            Some("env") => Format::Dotenv,
            _ => Format::Binary,
        }
    }

    /// Parses a `--input-type`/`--output-type` value.
    pub fn parse_name(s: &str) -> Option<Format> {
        Some(match s {
            "yaml" => Format::Yaml,
            "json" => Format::Json,
            "dotenv" => Format::Dotenv,
            "binary" => Format::Binary,
            _ => return None,
        })
    }

    pub fn name(self) -> &'static str {
        match self {
            Format::Yaml => "yaml",
            Format::Json => "json",
            Format::Dotenv => "dotenv",
            Format::Binary => "binary",
        }
    }

    /// Parses a plaintext file; refuses one that already carries sops metadata.
    pub fn parse_plain(self, bytes: &[u8]) -> Result<Vec<Map>, SopsError> {
        let branches = match self {
            Format::Yaml => yaml::parse(bytes)?,
            Format::Json => vec![json::parse(bytes)?],
            Format::Dotenv => vec![dotenv::parse(bytes)?],
            Format::Binary => vec![binary::parse_plain(bytes)],
        };
        if branches.is_empty() {
            return Err(SopsError::Empty);
        }
        if self != Format::Binary && branches.iter().any(|b| b.contains_key("sops")) {
            return Err(SopsError::AlreadyEncrypted);
        }
        Ok(branches)
    }

    /// Parses an encrypted file and takes its metadata out of the branches.
    pub fn parse_encrypted(self, bytes: &[u8]) -> Result<Encrypted, SopsError> {
        let mut branches = match self {
            Format::Yaml => yaml::parse(bytes)?,
            Format::Json => vec![json::parse(bytes)?],
            Format::Dotenv => vec![dotenv::parse(bytes)?],
            Format::Binary => vec![binary::parse_encrypted(bytes)?],
        };
        if branches.is_empty() {
            return Err(SopsError::Metadata(metadata::MetadataError::NotFound));
        }
        let mut md = metadata::take_from_branches(&mut branches)?;
        if self == Format::Binary {
            // The binary store writes no crypt rule and encrypts its single value regardless.
            md.rule = None;
        }
        Ok(Encrypted {
            branches,
            metadata: md,
        })
    }

    fn single(self, branches: &[Map]) -> Result<&Map, SopsError> {
        match branches {
            [one] => Ok(one),
            _ => Err(SopsError::Unrepresentable {
                format: self.name(),
                reason: "it holds exactly one document; this one has several (YAML multi-document)",
            }),
        }
    }

    pub fn emit_plain(self, branches: &[Map], opts: EmitOptions) -> Result<Vec<u8>, SopsError> {
        Ok(match self {
            Format::Yaml => yaml::emit(branches, opts.yaml_indent).into_bytes(),
            Format::Json => json::emit(self.single(branches)?, opts.json_indent).into_bytes(),
            Format::Dotenv => dotenv::emit(self.single(branches)?)?.into_bytes(),
            Format::Binary => binary::emit_plain(self.single(branches)?)?,
        })
    }

    pub fn emit_encrypted(self, doc: &Encrypted, opts: EmitOptions) -> Result<Vec<u8>, SopsError> {
        let with_md = |nil_as_null: bool| {
            let md = Value::Map(doc.metadata.to_map(nil_as_null));
            doc.branches
                .iter()
                .map(|b| {
                    let mut b = b.clone();
                    b.items
                        .push(super::value::MapItem::Pair("sops".into(), md.clone()));
                    b
                })
                .collect::<Vec<_>>()
        };
        Ok(match self {
            Format::Yaml => yaml::emit(&with_md(false), opts.yaml_indent).into_bytes(),
            Format::Json => json::emit(self.single(&with_md(true))?, opts.json_indent).into_bytes(),
            Format::Dotenv => dotenv::emit(self.single(&with_md(false))?)?.into_bytes(),
            Format::Binary => {
                binary::emit_encrypted(self.single(&with_md(true))?, opts.json_indent).into_bytes()
            }
        })
    }
}

/// Wraps `key` for every recipient of every group (Shamir-splitting it across 2+ groups).
pub fn wrap_key_groups(key: &DataKey, spec: &KeySpec) -> Result<(Vec<KeyGroup>, usize), SopsError> {
    let groups: Vec<&Vec<String>> = spec.groups.iter().filter(|g| !g.is_empty()).collect();
    if groups.is_empty() {
        return Err(SopsError::NoRecipients);
    }
    let wrap_all = |secret: &[u8], recipients: &[String]| -> Result<KeyGroup, SopsError> {
        let mut g = KeyGroup::default();
        for r in recipients {
            let parsed = agekeys::parse_recipient(r)?;
            g.age.push(AgeEntry {
                recipient: r.trim().to_string(),
                enc: agekeys::wrap(secret, &parsed)?,
            });
        }
        Ok(g)
    };
    if groups.len() == 1 {
        return Ok((vec![wrap_all(key.as_bytes(), groups[0])?], 0));
    }
    let threshold = if spec.shamir_threshold == 0 {
        groups.len()
    } else {
        spec.shamir_threshold
    };
    let shares = shamir::split(key.as_bytes(), groups.len(), threshold)?;
    let wrapped = groups
        .iter()
        .zip(shares.iter())
        .map(|(g, share)| wrap_all(share, g))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((wrapped, threshold))
}

/// Recovers the data key with the identities, group by group (sops' `GetDataKey`).
pub fn recover_data_key(md: &Metadata, ids: &Identities) -> Result<DataKey, SopsError> {
    let mut report = Vec::new();
    let mut parts = Vec::new();
    let needed = if md.key_groups.len() > 1 {
        if md.shamir_threshold == 0 {
            md.key_groups.len()
        } else {
            md.shamir_threshold
        }
    } else {
        1
    };
    for (gi, g) in md.key_groups.iter().enumerate() {
        let mut got = None;
        for entry in &g.age {
            match agekeys::unwrap(&entry.enc, ids) {
                Ok(secret) => {
                    got = Some(secret);
                    break;
                }
                Err(e) => report.push(format!("group {gi}: {}: {e}", entry.recipient)),
            }
        }
        if g.age.is_empty() {
            report.push(format!(
                "group {gi}: no age keys (other key types are not supported)"
            ));
        }
        if let Some(s) = got {
            parts.push(s);
            if parts.len() == needed {
                break;
            }
        }
    }
    let searched = if ids.is_empty() {
        format!(
            "; no age identities found (looked in {})",
            ids.searched.join(", ")
        )
    } else {
        String::new()
    };
    if parts.len() < needed {
        let summary = if md.key_groups.len() > 1 {
            format!(
                "the file needs {needed} of {} key groups and only {} could be decrypted",
                md.key_groups.len(),
                parts.len()
            )
        } else {
            "no master key was able to decrypt the file".to_string()
        };
        return Err(SopsError::DataKey(format!(
            "{summary}: {}{searched}",
            report.join("; ")
        )));
    }
    let secret = if md.key_groups.len() > 1 {
        shamir::combine(&parts)?
    } else {
        parts.swap_remove(0)
    };
    DataKey::from_slice(&secret).ok_or_else(|| {
        SopsError::DataKey(format!(
            "the recovered data key has {} bytes instead of 32",
            secret.len()
        ))
    })
}

fn encrypt_mac(cipher: &ValueCipher, mac: &str, md: &Metadata) -> String {
    cipher.encrypt(
        &random_iv(),
        mac.as_bytes(),
        md.mac_aad().as_bytes(),
        TypeTag::Str,
    )
}

/// sealwright's own state files: YAML `branches` encrypted to one age recipient (the operator
/// key), only the keys `encrypted_regex` matches, emitted with `opts`.
pub fn encrypt_yaml_to(
    branches: Vec<Map>,
    recipient: &str,
    encrypted_regex: &str,
    now: DateTime,
    opts: EmitOptions,
) -> Result<Vec<u8>, SopsError> {
    let settings = EncryptSettings {
        keys: KeySpec {
            groups: vec![vec![recipient.to_owned()]],
            shamir_threshold: 0,
        },
        rule: CryptRule::from_key("encrypted_regex", encrypted_regex)?,
        mac_only_encrypted: false,
    };
    let doc = encrypt(branches, &settings, Format::Yaml, now)?;
    Format::Yaml.emit_encrypted(&doc, opts)
}

/// Encrypts plaintext branches to the recipients of `settings` with a fresh data key.
pub fn encrypt(
    branches: Vec<Map>,
    settings: &EncryptSettings,
    format: Format,
    now: DateTime,
) -> Result<Encrypted, SopsError> {
    encrypt_with_key(branches, DataKey::generate(), settings, format, now)
}

/// [`encrypt`] with a data key the caller generated (for callers that must bind something to
/// the key before the document is sealed).
pub fn encrypt_with_key(
    branches: Vec<Map>,
    key: DataKey,
    settings: &EncryptSettings,
    format: Format,
    now: DateTime,
) -> Result<Encrypted, SopsError> {
    let (groups, threshold) = wrap_key_groups(&key, &settings.keys)?;
    let rule = if format == Format::Binary {
        None
    } else {
        Some(settings.rule.clone())
    };
    let mut md = Metadata::new(rule, settings.mac_only_encrypted);
    md.key_groups = groups;
    md.shamir_threshold = threshold;
    seal(branches, md, &key, None, now).map(|(doc, ..)| doc)
}

/// Encrypts every selected value with `key` (reusing ciphertexts from `stash` where that is
/// safe), then stamps `lastmodified` and the encrypted MAC into `md`.
fn seal(
    mut branches: Vec<Map>,
    mut md: Metadata,
    key: &DataKey,
    stash: Option<&Stash>,
    now: DateTime,
) -> Result<(Encrypted, walk::EncryptStats, String), SopsError> {
    let cipher = ValueCipher::new(key);
    let (mac, stats) = walk::encrypt(
        &mut branches,
        &cipher,
        &md.rule(),
        md.mac_only_encrypted,
        stash,
    )
    .map_err(SopsError::Encrypt)?;
    md.last_modified = now.rfc3339();
    md.mac = encrypt_mac(&cipher, &mac, &md);
    Ok((
        Encrypted {
            branches,
            metadata: md,
        },
        stats,
        mac,
    ))
}

/// Decrypts a document. With `verify_mac` the stored MAC must match the recomputed one.
pub fn decrypt(
    doc: &Encrypted,
    ids: &Identities,
    verify_mac: bool,
) -> Result<Decrypted, SopsError> {
    let key = recover_data_key(&doc.metadata, ids)?;
    decrypt_with_key(doc, key, verify_mac)
}

/// Decrypts with an already recovered data key.
pub fn decrypt_with_key(
    doc: &Encrypted,
    key: DataKey,
    verify_mac: bool,
) -> Result<Decrypted, SopsError> {
    let cipher = ValueCipher::new(&key);
    let md = &doc.metadata;
    let mut branches = doc.branches.clone();
    let mut stash = Stash::default();
    let mac = walk::decrypt(
        &mut branches,
        &cipher,
        &md.rule(),
        md.mac_only_encrypted,
        Some(&mut stash),
    )
    .map_err(SopsError::Decrypt)?;
    if verify_mac {
        let stored = if md.mac.is_empty() {
            Ok(String::new())
        } else {
            EncValue::parse(&md.mac)
                .and_then(|e| cipher.decrypt(&e, md.mac_aad().as_bytes()))
                .map(|p| String::from_utf8_lossy(&p).into_owned())
        };
        match stored {
            Err(_) => return Err(SopsError::MacUndecryptable),
            Ok(stored) if stored != mac => {
                return Err(SopsError::MacMismatch {
                    file: if stored.is_empty() {
                        "no MAC".into()
                    } else {
                        stored
                    },
                    computed: mac,
                })
            }
            Ok(_) => {}
        }
    }
    Ok(Decrypted {
        branches,
        data_key: key,
        stash,
        mac,
    })
}

/// Noise-free re-encryption: encrypts `new_plain` with the previous document's data key, keys and
/// rule, keeping the exact ciphertext of every value whose position and plaintext are unchanged.
/// When nothing changed at all, the previous document comes back as is (same `lastmodified`
/// and `mac`), so a rewrite produces no diff. Returns the document and whether it changed.
pub fn reencrypt(
    previous: &Encrypted,
    dec: &Decrypted,
    new_plain: Vec<Map>,
    now: DateTime,
) -> Result<(Encrypted, bool), SopsError> {
    let (next, stats, mac) = seal(
        new_plain,
        previous.metadata.clone(),
        &dec.data_key,
        Some(&dec.stash),
        now,
    )?;
    // Unchanged when every value kept its ciphertext, nothing was added or removed (the MAC
    // covers all plaintexts in order) and the tree has the same shape.
    if stats.fresh == 0 && mac == dec.mac && next.branches == previous.branches {
        return Ok((previous.clone(), false));
    }
    Ok((next, true))
}

/// `rotate`: a new data key wrapped for the same recipients (plus `add`, minus `remove`), every
/// value re-encrypted with fresh IVs, a new `lastmodified` and MAC.
pub fn rotate(
    doc: &Encrypted,
    dec: &Decrypted,
    add: &[String],
    remove: &[String],
    now: DateTime,
) -> Result<Encrypted, SopsError> {
    if doc.metadata.has_foreign_keys() {
        return Err(SopsError::ForeignKeys("non-age"));
    }
    let mut groups = doc.metadata.recipients();
    if let Some(first) = groups.first_mut() {
        for a in add {
            if !first.contains(a) {
                first.push(a.trim().to_string());
            }
        }
    }
    for g in groups.iter_mut() {
        g.retain(|r| !remove.contains(r));
    }
    let spec = KeySpec {
        groups,
        shamir_threshold: doc.metadata.shamir_threshold,
    };
    let key = DataKey::generate();
    let (key_groups, threshold) = wrap_key_groups(&key, &spec)?;
    let mut md = doc.metadata.clone();
    md.key_groups = key_groups;
    md.shamir_threshold = threshold;
    seal(dec.branches.clone(), md, &key, None, now).map(|(doc, ..)| doc)
}

/// `updatekeys`: re-wraps the same data key for the recipients of `spec`. Values, `lastmodified`,
/// `mac`, version and rule are untouched. Returns `None` when the keys already match.
pub fn update_keys(
    doc: &Encrypted,
    ids: &Identities,
    spec: &KeySpec,
    threshold_override: Option<usize>,
) -> Result<Option<Encrypted>, SopsError> {
    let current = doc.metadata.recipients();
    let wanted: Vec<Vec<String>> = spec
        .groups
        .iter()
        .map(|g| g.iter().map(|r| r.trim().to_string()).collect())
        .collect();
    // The rule's threshold is ignored (as in sops): the flag, else the file's, capped at the groups.
    let threshold = threshold_override
        .unwrap_or(doc.metadata.shamir_threshold)
        .min(wanted.len());
    if current == wanted
        && threshold == doc.metadata.shamir_threshold
        && !doc.metadata.has_foreign_keys()
    {
        return Ok(None);
    }
    let key = recover_data_key(&doc.metadata, ids)?;
    let (groups, written) = wrap_key_groups(
        &key,
        &KeySpec {
            groups: wanted,
            shamir_threshold: threshold,
        },
    )?;
    let mut out = doc.clone();
    out.metadata.key_groups = groups;
    out.metadata.shamir_threshold = written;
    Ok(Some(out))
}

/// One step of a tree path (`["a"][0]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PathSeg {
    Key(String),
    Index(usize),
}

/// Parses sops' tree path syntax: `["key"]`, `['key']` and `[0]` components.
pub fn parse_tree_path(arg: &str) -> Result<Vec<PathSeg>, SopsError> {
    let bad = |reason| SopsError::TreePath {
        path: arg.to_string(),
        reason,
    };
    let mut out = Vec::new();
    for comp in arg.split('[') {
        if comp.is_empty() {
            continue;
        }
        let inner = comp
            .strip_suffix(']')
            .ok_or_else(|| bad("a component does not end with ]"))?;
        let quoted = inner.len() >= 2
            && ((inner.starts_with('"') && inner.ends_with('"'))
                || (inner.starts_with('\'') && inner.ends_with('\'')));
        if quoted {
            out.push(PathSeg::Key(inner[1..inner.len() - 1].to_string()));
        } else {
            let i = inner
                .parse::<usize>()
                .map_err(|_| bad("a component is neither a quoted key nor a list index"))?;
            out.push(PathSeg::Index(i));
        }
    }
    if out.is_empty() {
        return Err(bad("empty path"));
    }
    Ok(out)
}

fn describe(path: &[PathSeg]) -> String {
    path.iter()
        .map(|s| match s {
            PathSeg::Key(k) => format!("[{k:?}]"),
            PathSeg::Index(i) => format!("[{i}]"),
        })
        .collect()
}

/// The value at `path` in the first branch (what `--extract` prints).
pub fn extract<'a>(branches: &'a [Map], path: &[PathSeg]) -> Result<&'a Value, SopsError> {
    let not_found = || SopsError::PathNotFound(describe(path));
    let first = branches.first().ok_or_else(not_found)?;
    let (head, rest) = path.split_first().ok_or_else(not_found)?;
    let PathSeg::Key(k) = head else {
        return Err(not_found());
    };
    let mut cur = first.get(k).ok_or_else(not_found)?;
    for seg in rest {
        cur = match (seg, cur) {
            (PathSeg::Key(k), Value::Map(m)) => m.get(k),
            (PathSeg::Index(i), Value::Seq(s)) => {
                s.iter().filter(|v| !matches!(v, Value::Comment(_))).nth(*i)
            }
            _ => None,
        }
        .ok_or_else(not_found)?;
    }
    Ok(cur)
}

/// Sets `value` at `path` in the first branch, creating missing mappings on the way (sops `set`).
pub fn set_value(branches: &mut [Map], path: &[PathSeg], value: Value) -> Result<(), SopsError> {
    let first = branches
        .first_mut()
        .ok_or_else(|| SopsError::PathNotFound(describe(path)))?;
    let (head, rest) = path
        .split_first()
        .ok_or_else(|| SopsError::PathNotFound(describe(path)))?;
    let PathSeg::Key(k) = head else {
        return Err(SopsError::TreePath {
            path: describe(path),
            reason: "a document is a mapping: the first component must be a key",
        });
    };
    if !first.contains_key(k) {
        first.insert(k.clone(), Value::Null);
    }
    let Some(slot) = first.get_mut(k) else {
        return Err(SopsError::PathNotFound(describe(path)));
    };
    set_in(slot, rest, value, path)
}

fn set_in(
    slot: &mut Value,
    rest: &[PathSeg],
    value: Value,
    full: &[PathSeg],
) -> Result<(), SopsError> {
    let Some((seg, tail)) = rest.split_first() else {
        *slot = value;
        return Ok(());
    };
    let next = match seg {
        PathSeg::Key(k) => {
            if !matches!(slot, Value::Map(_)) {
                *slot = Value::Map(Map::new());
            }
            match slot {
                Value::Map(m) => {
                    if !m.contains_key(k) {
                        m.insert(k.clone(), Value::Null);
                    }
                    m.get_mut(k)
                }
                _ => None,
            }
        }
        PathSeg::Index(i) => {
            if !matches!(slot, Value::Seq(_)) {
                *slot = Value::Seq(Vec::new());
            }
            match slot {
                Value::Seq(s) => {
                    if *i == s.len() {
                        s.push(Value::Null);
                    }
                    s.get_mut(*i)
                }
                _ => None,
            }
        }
    };
    match next {
        Some(n) => set_in(n, tail, value, full),
        None => Err(SopsError::TreePath {
            path: describe(full),
            reason: "list index out of range",
        }),
    }
}

/// Parses the JSON value of `sops set` into a tree value (objects become mappings).
pub fn parse_json_value(text: &str) -> Result<Value, SopsError> {
    let wrapped = format!("{{\"v\":{text}}}");
    let mut m = json::parse(wrapped.as_bytes()).map_err(|e| SopsError::SetValue(e.to_string()))?;
    m.remove("v")
        .ok_or_else(|| SopsError::SetValue("no value".into()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agekeys::Identities;
    use crate::value::MapItem;

    fn setup() -> (Identities, EncryptSettings) {
        let id = age::x25519::Identity::generate();
        let recipient = id.to_public().to_string();
        let mut ids = Identities::default();
        ids.push(id);
        let settings = EncryptSettings {
            keys: KeySpec {
                groups: vec![vec![recipient]],
                shamir_threshold: 0,
            },
            rule: CryptRule::from_key("encrypted_regex", "^(data|stringData)$").unwrap(),
            mac_only_encrypted: false,
        };
        (ids, settings)
    }

    fn secret(pairs: &[(&str, &str)]) -> Vec<Map> {
        let data = Map::from_pairs(pairs.iter().map(|(k, v)| (*k, Value::str(*v))));
        vec![Map::from_pairs([
            ("kind", Value::str("Secret")),
            ("stringData", Value::Map(data)),
        ])]
    }

    fn emitted(doc: &Encrypted) -> String {
        String::from_utf8(
            Format::Yaml
                .emit_encrypted(doc, EmitOptions::default())
                .unwrap(),
        )
        .unwrap()
    }

    fn enc_strings(doc: &Encrypted) -> Vec<String> {
        let Some(Value::Map(m)) = doc.branches[0].get("stringData") else {
            panic!("no stringData")
        };
        m.pairs()
            .map(|(_, v)| v.as_str().unwrap_or_default().to_string())
            .collect()
    }

    #[test]
    fn reencrypt_keeps_unchanged_ciphertexts_byte_for_byte() {
        let (ids, st) = setup();
        let t0 = DateTime::from_unix(1_700_000_000);
        let t1 = DateTime::from_unix(1_700_000_100);
        let prev = encrypt(
            secret(&[("a", "1"), ("b", "2"), ("c", "3")]),
            &st,
            Format::Yaml,
            t0,
        )
        .unwrap();
        let dec = decrypt(&prev, &ids, true).unwrap();

        // Nothing changed: the very same document comes back, lastmodified and mac included.
        let (same, changed) = reencrypt(&prev, &dec, dec.branches.clone(), t1).unwrap();
        assert!(!changed);
        assert_eq!(emitted(&same), emitted(&prev));

        // One value changed: only that ciphertext differs, plus lastmodified and mac.
        let (next, changed) = reencrypt(
            &prev,
            &dec,
            secret(&[("a", "1"), ("b", "two"), ("c", "3")]),
            t1,
        )
        .unwrap();
        assert!(changed);
        let (old, new) = (enc_strings(&prev), enc_strings(&next));
        assert_eq!(old[0], new[0]);
        assert_ne!(old[1], new[1]);
        assert_eq!(old[2], new[2]);
        let diff: Vec<_> = emitted(&prev)
            .lines()
            .zip(emitted(&next).lines())
            .filter(|(x, y)| x != y)
            .map(|(_, y)| y.trim_start().split(':').next().unwrap().to_string())
            .collect();
        assert_eq!(diff, ["b", "lastmodified", "mac"]);
        assert_eq!(next.metadata.key_groups, prev.metadata.key_groups);
        assert!(decrypt(&next, &ids, true).is_ok());
    }

    #[test]
    fn reencrypt_never_reuses_an_iv_for_a_different_plaintext() {
        let (ids, st) = setup();
        let now = DateTime::from_unix(1_700_000_000);
        let prev = encrypt(secret(&[("a", "x"), ("b", "y")]), &st, Format::Yaml, now).unwrap();
        let dec = decrypt(&prev, &ids, true).unwrap();
        // Swap the values: same paths, different plaintexts -> both need fresh IVs.
        let (next, _) = reencrypt(&prev, &dec, secret(&[("a", "y"), ("b", "x")]), now).unwrap();
        let iv = |s: &str| EncValue::parse(s).unwrap().iv;
        let old_ivs: Vec<_> = enc_strings(&prev).iter().map(|s| iv(s)).collect();
        for s in enc_strings(&next) {
            assert!(
                !old_ivs.contains(&iv(&s)),
                "an IV was reused for a different plaintext"
            );
        }
        let back = decrypt(&next, &ids, true).unwrap();
        assert_eq!(back.branches, secret(&[("a", "y"), ("b", "x")]));
    }

    #[test]
    fn reencrypt_keeps_values_that_moved_position() {
        let (ids, st) = setup();
        let now = DateTime::from_unix(1_700_000_000);
        let list = |items: &[&str]| {
            vec![Map::from_pairs([(
                "stringData",
                Value::Map(Map::from_pairs([(
                    "list",
                    Value::Seq(items.iter().map(|s| Value::str(*s)).collect()),
                )])),
            )])]
        };
        let prev = encrypt(list(&["p", "q"]), &st, Format::Yaml, now).unwrap();
        let dec = decrypt(&prev, &ids, true).unwrap();
        let (next, _) = reencrypt(&prev, &dec, list(&["new", "p", "q"]), now).unwrap();
        let items = |d: &Encrypted| -> Vec<String> {
            let Some(Value::Map(m)) = d.branches[0].get("stringData") else {
                panic!()
            };
            let Some(Value::Seq(s)) = m.get("list") else {
                panic!()
            };
            s.iter().map(|v| v.as_str().unwrap().to_string()).collect()
        };
        let (old, new) = (items(&prev), items(&next));
        assert_eq!(
            &new[1..],
            &old[..],
            "inserting at the front must not re-encrypt the rest"
        );
    }

    #[test]
    fn shamir_groups_need_the_threshold() {
        let a = age::x25519::Identity::generate();
        let b = age::x25519::Identity::generate();
        let c = age::x25519::Identity::generate();
        let st = EncryptSettings {
            keys: KeySpec {
                groups: [&a, &b, &c]
                    .iter()
                    .map(|i| vec![i.to_public().to_string()])
                    .collect(),
                shamir_threshold: 2,
            },
            rule: CryptRule::default(),
            mac_only_encrypted: false,
        };
        let doc = encrypt(
            secret(&[("k", "v")]),
            &st,
            Format::Yaml,
            DateTime::from_unix(0),
        )
        .unwrap();
        assert_eq!(doc.metadata.shamir_threshold, 2);
        let mut two = Identities::default();
        two.push(a);
        two.push(c);
        assert!(decrypt(&doc, &two, true).is_ok());
        let mut one = Identities::default();
        one.push(b);
        let err = decrypt(&doc, &one, true).err().unwrap();
        assert_eq!(err.exit_code(), 128);
        assert!(err.to_string().contains("needs 2 of 3 key groups"), "{err}");
    }

    #[test]
    fn update_keys_keeps_values_and_mac() {
        let (ids, st) = setup();
        let doc = encrypt(
            secret(&[("k", "v")]),
            &st,
            Format::Yaml,
            DateTime::from_unix(0),
        )
        .unwrap();
        let extra = age::x25519::Identity::generate();
        let mut spec = st.keys.clone();
        spec.groups[0].push(extra.to_public().to_string());
        let out = update_keys(&doc, &ids, &spec, None).unwrap().unwrap();
        assert_eq!(out.branches, doc.branches);
        assert_eq!(out.metadata.mac, doc.metadata.mac);
        assert_eq!(out.metadata.last_modified, doc.metadata.last_modified);
        let mut only_extra = Identities::default();
        only_extra.push(extra);
        assert!(decrypt(&out, &only_extra, true).is_ok());
        assert!(update_keys(&out, &ids, &spec, None).unwrap().is_none());
    }

    #[test]
    fn tree_paths_set_and_extract() {
        let path = parse_tree_path(r#"["a"]['b'][0]"#).unwrap();
        assert_eq!(
            path,
            [
                PathSeg::Key("a".into()),
                PathSeg::Key("b".into()),
                PathSeg::Index(0)
            ]
        );
        for bad in ["", "a", r#"["a""#, "[x]", "[-1]"] {
            assert!(parse_tree_path(bad).is_err(), "{bad}");
        }
        let mut doc = vec![Map::new()];
        set_value(
            &mut doc,
            &path,
            parse_json_value(r#"{"x": [1, "y"]}"#).unwrap(),
        )
        .unwrap();
        let got = extract(&doc, &parse_tree_path(r#"["a"]["b"][0]["x"][1]"#).unwrap()).unwrap();
        assert_eq!(got, &Value::str("y"));
        let err = set_value(
            &mut doc,
            &parse_tree_path(r#"["a"]["b"][5]"#).unwrap(),
            Value::Null,
        );
        assert!(err.is_err());
        assert!(matches!(doc[0].items[0], MapItem::Pair(..)));
        assert!(parse_json_value("not json").is_err());
    }
}
