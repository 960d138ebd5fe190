//! The tree walk: encrypts or decrypts every selected leaf with its path as AAD and computes the
//! MAC over the leaves' plaintexts in document order (SOPS-FORMAT.md 2.3, 3, 4).
//!
//! The walk mirrors sops' `walkBranch`/`walkSlice`: only mapping keys enter the path (list indices
//! never do), comments are leaves that use their container's path and never enter the MAC, nulls
//! are skipped. The rule decision for key-based rules is O(1) per leaf: the walk counts how many
//! keys on the current path match.
//!
//! Noise-free re-encryption: decrypting records, per leaf *position*, a digest of (AAD, type,
//! plaintext) and the original `ENC[...]` string, and per digest the IV. Encrypting again with the
//! same data key reuses the exact string when the same position holds the same plaintext, else the
//! IV of an identical (AAD, type, plaintext) triple elsewhere (identical output, so nothing leaks
//! that the file does not already show), else a fresh random IV. An IV is therefore never reused
//! for a different plaintext. Only digests are kept, never plaintext copies.

use std::collections::HashMap;
use std::fmt::Write as _;

use sha2::{Digest, Sha256, Sha512};

use super::cipher::{random_iv, EncValue, ValueCipher, IV_LEN};
use super::rules::CryptRule;
use super::scalar::{self, from_plaintext, TypeTag};
use super::value::{Map, MapItem, Value};

/// Seed of the MAC when `mac_only_encrypted` is set: SHA-256("sops").
const MAC_ONLY_SEED: [u8; 32] = [
    0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
    0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
];

/// What went wrong at one place in the tree. `path` is in `--extract` form (`["a"]["b"][0]`);
/// the error never carries a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at {path}: {kind}")]
pub struct WalkError {
    pub path: String,
    pub kind: WalkErrorKind,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WalkErrorKind {
    #[error("could not decrypt value: {0}")]
    Decrypt(#[from] super::cipher::CipherError),
    #[error("expected an encrypted string, found a value of type {0}")]
    NotAString(&'static str),
    #[error("{0}")]
    Scalar(#[from] scalar::ScalarError),
    #[error("encrypted comment matches unencrypted_comment_regex; choose a regex that cannot match ENC[...] text")]
    CommentMatchesUnencryptedRegex,
}

/// Per-leaf memory of a decryption, for noise-free re-encryption with the same data key.
#[derive(Default)]
pub struct Stash {
    by_position: HashMap<String, ([u8; 32], String)>,
    by_digest: HashMap<[u8; 32], [u8; IV_LEN]>,
}

/// Counts of what an encryption did with each encrypted leaf.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct EncryptStats {
    /// Leaves whose previous `ENC[...]` string was kept byte for byte.
    pub kept: usize,
    /// Leaves encrypted with a fresh random IV (new or changed plaintext).
    pub fresh: usize,
}

enum Mode<'s> {
    Encrypt {
        stash: Option<&'s Stash>,
        stats: EncryptStats,
    },
    Decrypt {
        record: Option<&'s mut Stash>,
    },
}

#[derive(Clone)]
enum Seg {
    Key(usize), // index into `keys`
    Index(usize),
}

struct Walker<'a, 's> {
    cipher: &'a ValueCipher,
    rule: &'a CryptRule,
    mac_only: bool,
    mode: Mode<'s>,
    hasher: Sha512,
    /// The AAD of the current container: each key followed by `:`.
    aad: String,
    /// How many keys on the current path match the rule's key predicate.
    matching: usize,
    /// sops' comment stack (maintained only for comment-regex rules).
    comments: Vec<Vec<String>>,
    keys: Vec<String>,
    segs: Vec<Seg>,
}

/// Encrypts every selected leaf of `branches` in place and returns the MAC (uppercase hex).
pub fn encrypt(
    branches: &mut [Map],
    cipher: &ValueCipher,
    rule: &CryptRule,
    mac_only: bool,
    stash: Option<&Stash>,
) -> Result<(String, EncryptStats), WalkError> {
    let mut w = Walker::new(
        cipher,
        rule,
        mac_only,
        Mode::Encrypt {
            stash,
            stats: EncryptStats::default(),
        },
    );
    for b in branches.iter_mut() {
        w.walk_map(b)?;
    }
    let stats = match w.mode {
        Mode::Encrypt { stats, .. } => stats,
        Mode::Decrypt { .. } => EncryptStats::default(),
    };
    Ok((hex_upper(&w.hasher.finalize()), stats))
}

/// Decrypts every selected leaf of `branches` in place and returns the computed MAC.
pub fn decrypt(
    branches: &mut [Map],
    cipher: &ValueCipher,
    rule: &CryptRule,
    mac_only: bool,
    record: Option<&mut Stash>,
) -> Result<String, WalkError> {
    let mut w = Walker::new(cipher, rule, mac_only, Mode::Decrypt { record });
    for b in branches.iter_mut() {
        w.walk_map(b)?;
    }
    Ok(hex_upper(&w.hasher.finalize()))
}

/// A position key for the stash: the full structural path, list indices included.
fn position_of(segs: &[Seg], keys: &[String]) -> String {
    let mut s = String::new();
    for seg in segs {
        match seg {
            Seg::Key(k) => {
                s.push_str(&keys[*k]);
                s.push('\u{1f}');
            }
            Seg::Index(i) => {
                let _ = write!(s, "\u{1e}{i}\u{1f}");
            }
        }
    }
    s
}

fn hex_upper(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02X}");
    }
    s
}

fn digest(aad: &[u8], typ: TypeTag, plaintext: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update((aad.len() as u64).to_le_bytes());
    h.update(aad);
    h.update(typ.as_str().as_bytes());
    h.update([0]);
    h.update(plaintext);
    h.finalize().into()
}

impl<'a, 's> Walker<'a, 's> {
    fn new(cipher: &'a ValueCipher, rule: &'a CryptRule, mac_only: bool, mode: Mode<'s>) -> Self {
        let mut hasher = Sha512::new();
        if mac_only {
            hasher.update(MAC_ONLY_SEED);
        }
        Walker {
            cipher,
            rule,
            mac_only,
            mode,
            hasher,
            aad: String::new(),
            matching: 0,
            comments: Vec::new(),
            keys: Vec::new(),
            segs: Vec::new(),
        }
    }

    fn track_comments(&self) -> bool {
        self.rule.uses_comments()
    }

    fn walk_map(&mut self, map: &mut Map) -> Result<(), WalkError> {
        if self.track_comments() {
            self.comments.push(Vec::new());
        }
        for item in map.items.iter_mut() {
            match item {
                MapItem::Comment(text) => {
                    if self.track_comments() {
                        self.push_comment(text.clone());
                    }
                    let mut v = Value::Comment(std::mem::take(text));
                    self.leaf(&mut v)?;
                    *text = match v {
                        Value::Comment(t) | Value::Str(t) => t,
                        // A decrypted map comment always comes back as text; anything else would
                        // be a walk bug, so keep the stored text rather than lose it.
                        _ => String::new(),
                    };
                }
                MapItem::Pair(key, value) => {
                    let key_matches = self.rule.key_matches(key);
                    let aad_len = self.aad.len();
                    self.aad.push_str(key);
                    self.aad.push(':');
                    self.matching += usize::from(key_matches);
                    self.keys.push(key.clone());
                    self.segs.push(Seg::Key(self.keys.len() - 1));
                    let res = self.walk_value(value);
                    self.segs.pop();
                    self.keys.pop();
                    self.matching -= usize::from(key_matches);
                    self.aad.truncate(aad_len);
                    res?;
                    if self.track_comments() {
                        self.clear_level();
                    }
                }
            }
        }
        if self.track_comments() {
            self.comments.pop();
        }
        Ok(())
    }

    fn walk_seq(&mut self, seq: &mut [Value]) -> Result<(), WalkError> {
        if self.track_comments() {
            self.comments.push(Vec::new());
        }
        for (i, v) in seq.iter_mut().enumerate() {
            let is_comment = matches!(v, Value::Comment(_));
            if is_comment && self.track_comments() {
                if let Value::Comment(c) = v {
                    let c = c.clone();
                    self.push_comment(c);
                }
            }
            self.segs.push(Seg::Index(i));
            let res = self.walk_value(v);
            self.segs.pop();
            res?;
            if !is_comment && self.track_comments() {
                self.clear_level();
            }
        }
        if self.track_comments() {
            self.comments.pop();
        }
        Ok(())
    }

    fn push_comment(&mut self, c: String) {
        if let Some(level) = self.comments.last_mut() {
            level.push(c);
        }
    }

    fn clear_level(&mut self) {
        if let Some(level) = self.comments.last_mut() {
            level.clear();
        }
    }

    fn walk_value(&mut self, v: &mut Value) -> Result<(), WalkError> {
        match v {
            Value::Null => Ok(()),
            Value::Map(m) => self.walk_map(m),
            Value::Seq(s) => self.walk_seq(s),
            _ => self.leaf(v),
        }
    }

    fn err(&self, kind: impl Into<WalkErrorKind>) -> WalkError {
        WalkError {
            path: self.path_string(),
            kind: kind.into(),
        }
    }

    fn path_string(&self) -> String {
        let mut s = String::new();
        for seg in &self.segs {
            match seg {
                Seg::Key(k) => {
                    let _ = write!(s, "[{:?}]", self.keys[*k]);
                }
                Seg::Index(i) => {
                    let _ = write!(s, "[{i}]");
                }
            }
        }
        if s.is_empty() {
            s.push_str("the document root");
        }
        s
    }

    fn aad(&self) -> &[u8] {
        if self.aad.is_empty() {
            b":"
        } else {
            self.aad.as_bytes()
        }
    }

    fn should_encrypt(&self, is_comment: bool) -> bool {
        self.rule
            .should_encrypt(self.matching, &self.comments, is_comment)
    }

    fn leaf(&mut self, v: &mut Value) -> Result<(), WalkError> {
        let is_comment = matches!(v, Value::Comment(_));
        let encrypted = self.should_encrypt(is_comment);
        if matches!(self.mode, Mode::Encrypt { .. }) {
            self.encrypt_leaf(v, is_comment, encrypted)
        } else {
            self.decrypt_leaf(v, is_comment, encrypted)
        }
    }

    fn encrypt_leaf(
        &mut self,
        v: &mut Value,
        is_comment: bool,
        encrypted: bool,
    ) -> Result<(), WalkError> {
        let Some((plain, typ)) = scalar::plaintext(v).map_err(|e| self.err(e))? else {
            return Ok(());
        };
        if (!self.mac_only || encrypted) && !is_comment {
            self.hasher.update(&plain);
        }
        if !encrypted || plain.is_empty() {
            // Empty values are never encrypted: sops' cipher returns "" for "".
            return Ok(());
        }
        let aad = self.aad().to_vec();
        let d = digest(&aad, typ, &plain);
        let has_stash = matches!(self.mode, Mode::Encrypt { stash: Some(_), .. });
        let pos = if has_stash {
            position_of(&self.segs, &self.keys)
        } else {
            String::new()
        };
        let Mode::Encrypt { stash, stats } = &mut self.mode else {
            return Ok(());
        };
        let mut out = None;
        if let Some(st) = stash {
            if let Some((old_digest, old)) = st.by_position.get(&pos) {
                if *old_digest == d {
                    out = Some(old.clone());
                    stats.kept += 1;
                }
            }
            if out.is_none() {
                if let Some(iv) = st.by_digest.get(&d) {
                    out = Some(self.cipher.encrypt(iv, &plain, &aad, typ));
                    stats.kept += 1;
                }
            }
        }
        let enc = match out {
            Some(s) => s,
            None => {
                stats.fresh += 1;
                self.cipher.encrypt(&random_iv(), &plain, &aad, typ)
            }
        };
        drop(plain);
        if is_comment {
            if let CryptRule::UnencryptedCommentRegex(r) = self.rule {
                if r.is_match(&enc) {
                    return Err(self.err(WalkErrorKind::CommentMatchesUnencryptedRegex));
                }
            }
            *v = Value::Comment(enc);
        } else {
            *v = Value::Str(enc);
        }
        Ok(())
    }

    fn decrypt_leaf(
        &mut self,
        v: &mut Value,
        is_comment: bool,
        encrypted: bool,
    ) -> Result<(), WalkError> {
        if encrypted {
            let text = match v {
                Value::Str(s) | Value::Comment(s) => s.as_str(),
                other => return Err(self.err(WalkErrorKind::NotAString(other.type_name()))),
            };
            if !text.is_empty() {
                let aad = self.aad().to_vec();
                let parsed = EncValue::parse(text);
                let decrypted = parsed.and_then(|e| self.cipher.decrypt(&e, &aad).map(|p| (e, p)));
                match decrypted {
                    Ok((e, plain)) => {
                        if let Mode::Decrypt { record: Some(st) } = &mut self.mode {
                            let d = digest(&aad, e.typ, &plain);
                            let iv: Option<[u8; IV_LEN]> = e.iv.as_slice().try_into().ok();
                            let pos = position_of(&self.segs, &self.keys);
                            st.by_position.insert(pos, (d, text.to_string()));
                            if let Some(iv) = iv {
                                st.by_digest.insert(d, iv);
                            }
                        }
                        let typ = e.typ;
                        let value =
                            from_plaintext(plain.to_vec(), typ).map_err(|err| self.err(err))?;
                        *v = value;
                    }
                    // sops keeps a comment that does not decrypt as it is (it may predate
                    // comment encryption); values must decrypt.
                    Err(_) if is_comment => {}
                    Err(e) => return Err(self.err(e)),
                }
            }
        }
        // Comments never enter the MAC; with mac_only_encrypted only encrypted values do.
        if matches!(v, Value::Comment(_)) || (self.mac_only && !encrypted) {
            return Ok(());
        }
        match scalar::plaintext(v) {
            Ok(Some((plain, _))) => self.hasher.update(&plain),
            Ok(None) => {}
            Err(e) => return Err(self.err(e)),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cipher::DataKey;

    fn doc() -> Vec<Map> {
        vec![Map::from_pairs([
            ("a", Value::str("hunter2")),
            ("n", Value::Int(42)),
            ("nothing", Value::Null),
            ("empty", Value::str("")),
            (
                "list",
                Value::Seq(vec![
                    Value::str("x"),
                    Value::Comment(" c".into()),
                    Value::Bool(true),
                ]),
            ),
            ("k_unencrypted", Value::Float(1.0)),
        ])]
    }

    #[test]
    fn mac_covers_values_in_order_and_skips_comments_and_nulls() {
        let key = DataKey::generate();
        let c = ValueCipher::new(&key);
        let mut d = doc();
        let (mac, stats) = encrypt(&mut d, &c, &CryptRule::default(), false, None).unwrap();
        let want = hex_upper(&Sha512::digest(b"hunter242xTrue1"));
        assert_eq!(mac, want);
        assert_eq!(stats.fresh, 5); // a, n, x, comment, true
        assert_eq!(d[0].get("empty"), Some(&Value::str("")));
        assert_eq!(d[0].get("k_unencrypted"), Some(&Value::Float(1.0)));
        let back = decrypt(&mut d, &c, &CryptRule::default(), false, None).unwrap();
        assert_eq!(back, want);
        assert_eq!(d, doc());
    }

    #[test]
    fn aad_is_the_key_path_without_list_indices() {
        let key = DataKey::generate();
        let c = ValueCipher::new(&key);
        let mut d = vec![Map::from_pairs([(
            "list",
            Value::Seq(vec![Value::Map(Map::from_pairs([(
                "nested",
                Value::str("x"),
            )]))]),
        )])];
        encrypt(&mut d, &c, &CryptRule::default(), false, None).unwrap();
        let Some(Value::Seq(s)) = d[0].get("list") else {
            panic!()
        };
        let Value::Map(m) = &s[0] else { panic!() };
        let e = EncValue::parse(m.get("nested").unwrap().as_str().unwrap()).unwrap();
        assert_eq!(&*c.decrypt(&e, b"list:nested:").unwrap(), b"x");
    }

    #[test]
    fn stash_keeps_unchanged_ciphertexts_and_refreshes_changed_ones() {
        let key = DataKey::generate();
        let c = ValueCipher::new(&key);
        let rule = CryptRule::default();
        let mut enc = doc();
        encrypt(&mut enc, &c, &rule, false, None).unwrap();
        let before = enc.clone();
        let mut stash = Stash::default();
        let mut plain = enc.clone();
        decrypt(&mut plain, &c, &rule, false, Some(&mut stash)).unwrap();
        plain[0].insert("a", Value::str("changed"));
        let (_, stats) = encrypt(&mut plain, &c, &rule, false, Some(&stash)).unwrap();
        assert_eq!(stats, EncryptStats { kept: 4, fresh: 1 });
        for (k, v) in before[0].pairs() {
            if k == "a" {
                assert_ne!(plain[0].get(k), Some(v));
            } else {
                assert_eq!(plain[0].get(k), Some(v), "{k}");
            }
        }
    }

    #[test]
    fn errors_name_the_path_and_never_the_value() {
        let key = DataKey::generate();
        let c = ValueCipher::new(&key);
        let mut d = vec![Map::from_pairs([(
            "data",
            Value::Map(Map::from_pairs([("password", Value::str("hunter2"))])),
        )])];
        let err = decrypt(&mut d, &c, &CryptRule::default(), false, None).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(r#"["data"]["password"]"#), "{msg}");
        assert!(!msg.contains("hunter2"), "{msg}");
        let mut d = vec![Map::from_pairs([("n", Value::Int(3))])];
        let err = decrypt(&mut d, &c, &CryptRule::default(), false, None).unwrap_err();
        assert_eq!(err.kind, WalkErrorKind::NotAString("int"));
    }

    #[test]
    fn uint64_cannot_be_encrypted() {
        let key = DataKey::generate();
        let mut d = vec![Map::from_pairs([("big", Value::Uint(u64::MAX))])];
        let err = encrypt(
            &mut d,
            &ValueCipher::new(&key),
            &CryptRule::default(),
            false,
            None,
        )
        .unwrap_err();
        assert!(err.to_string().contains("uint64"));
    }
}
