//! The `sops` metadata block (SOPS-FORMAT.md 5): reading it from a parsed document with sops
//! 3.11's rules and errors, and writing it back in 3.11's field order.
//!
//! Stores see the block as an ordinary top-level `sops` mapping; this module converts between that
//! mapping and [`Metadata`]. Key types other than age (pgp, kms, ...) cannot be used here, but their
//! entries are carried through untouched so that `set` on a mixed file keeps them.

use super::rules::{CryptRule, RuleError, RULE_KEYS};
use super::scalar::{go_format_f, parse_rfc3339};
use super::value::{Map, MapItem, Value};

/// The version sealwright writes into new files: the format it emulates (SOPS-FORMAT.md 5.1).
pub const SOPS_VERSION: &str = "3.11.0";

/// Master-key types other than age, in the order 3.11 writes them inside a key group.
const OTHER_GROUP_KEYS: [&str; 5] = ["pgp", "kms", "gcp_kms", "hckms", "azure_kv"];

#[derive(Clone, PartialEq, Eq)]
pub struct AgeEntry {
    pub recipient: String,
    /// The armored age file wrapping the data key (or this group's Shamir share).
    pub enc: String,
}

impl std::fmt::Debug for AgeEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AgeEntry({})", self.recipient)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct KeyGroup {
    pub age: Vec<AgeEntry>,
    /// Entries of other key types by metadata key (`pgp`, `kms`, `hc_vault`, ...), kept verbatim.
    pub others: Vec<(String, Vec<Value>)>,
}

impl KeyGroup {
    pub fn is_empty(&self) -> bool {
        self.age.is_empty() && self.others.iter().all(|(_, v)| v.is_empty())
    }

    pub fn recipients(&self) -> impl Iterator<Item = &str> {
        self.age.iter().map(|a| a.recipient.as_str())
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    pub key_groups: Vec<KeyGroup>,
    /// 0 when not written (one group, or "all groups").
    pub shamir_threshold: usize,
    /// As stored; [`Metadata::mac_aad`] gives the canonical form used as the MAC's AAD.
    pub last_modified: String,
    /// The encrypted MAC (`ENC[...]`), or empty.
    pub mac: String,
    /// `None` only for the binary store, which writes no rule.
    pub rule: Option<CryptRule>,
    pub mac_only_encrypted: bool,
    pub version: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MetadataError {
    #[error("sops metadata not found")]
    NotFound,
    #[error("sops metadata: `sops` must be a mapping")]
    NotAMap,
    #[error("no keys found in file")]
    NoKeys,
    #[error("sops metadata: lastmodified: not an RFC 3339 time")]
    LastModified,
    #[error("sops metadata: version string empty")]
    VersionEmpty,
    #[error("sops metadata: {field}: {problem}")]
    Field {
        field: &'static str,
        problem: &'static str,
    },
    #[error("sops metadata: {0} in the same file")]
    Rule(#[from] RuleError),
}

fn scalar_text(v: &Value) -> Option<String> {
    Some(match v {
        Value::Str(s) => s.clone(),
        Value::Time(t) => t.0.clone(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => go_format_f(*f),
        Value::Bool(b) => b.to_string(),
        _ => return None,
    })
}

fn text_field(m: &Map, field: &'static str) -> Result<String, MetadataError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(String::new()),
        Some(v) => scalar_text(v).ok_or(MetadataError::Field {
            field,
            problem: "must be a string",
        }),
    }
}

fn list_field<'a>(m: &'a Map, field: &'static str) -> Result<&'a [Value], MetadataError> {
    match m.get(field) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Seq(s)) => Ok(s),
        Some(_) => Err(MetadataError::Field {
            field,
            problem: "must be a list",
        }),
    }
}

fn read_group(m: &Map) -> Result<KeyGroup, MetadataError> {
    let mut g = KeyGroup::default();
    for entry in list_field(m, "age")? {
        let Value::Map(e) = entry else {
            return Err(MetadataError::Field {
                field: "age",
                problem: "entries must be mappings with recipient and enc",
            });
        };
        g.age.push(AgeEntry {
            recipient: text_field(e, "recipient")?.trim().to_string(),
            enc: text_field(e, "enc")?,
        });
    }
    for key in OTHER_GROUP_KEYS.iter().chain(&["hc_vault"]) {
        let list = list_field(m, key)?;
        if !list.is_empty() {
            g.others.push((key.to_string(), list.to_vec()));
        }
    }
    Ok(g)
}

impl Metadata {
    /// A fresh block for a new encryption (keys are filled in by the caller).
    pub fn new(rule: Option<CryptRule>, mac_only_encrypted: bool) -> Metadata {
        Metadata {
            key_groups: Vec::new(),
            shamir_threshold: 0,
            last_modified: String::new(),
            mac: String::new(),
            rule,
            mac_only_encrypted,
            version: SOPS_VERSION.into(),
        }
    }

    /// Reads the block like sops 3.11's `ToInternal`.
    pub fn from_map(m: &Map) -> Result<Metadata, MetadataError> {
        let last_modified = text_field(m, "lastmodified")?;
        if parse_rfc3339(&last_modified).is_none() {
            return Err(MetadataError::LastModified);
        }
        let top = read_group(m)?;
        let key_groups = if !top.is_empty() {
            vec![top]
        } else {
            list_field(m, "key_groups")?
                .iter()
                .map(|g| match g {
                    Value::Map(gm) => read_group(gm),
                    _ => Err(MetadataError::Field {
                        field: "key_groups",
                        problem: "entries must be mappings",
                    }),
                })
                .collect::<Result<Vec<_>, _>>()?
        };
        if key_groups.iter().all(KeyGroup::is_empty) {
            return Err(MetadataError::NoKeys);
        }
        let shamir_threshold = match m.get("shamir_threshold") {
            None | Some(Value::Null) => 0,
            Some(Value::Int(i)) if *i >= 0 => *i as usize,
            Some(Value::Float(f)) if *f >= 0.0 && f.fract() == 0.0 && *f < 1e9 => *f as usize,
            Some(Value::Str(s)) => s.trim().parse().map_err(|_| MetadataError::Field {
                field: "shamir_threshold",
                problem: "must be a non-negative integer",
            })?,
            Some(_) => {
                return Err(MetadataError::Field {
                    field: "shamir_threshold",
                    problem: "must be a non-negative integer",
                })
            }
        };
        let mac_only_encrypted = match m.get("mac_only_encrypted") {
            None | Some(Value::Null) => false,
            Some(Value::Bool(b)) => *b,
            Some(Value::Str(s)) if s == "true" => true,
            Some(Value::Str(s)) if s == "false" || s.is_empty() => false,
            Some(_) => {
                return Err(MetadataError::Field {
                    field: "mac_only_encrypted",
                    problem: "must be true or false",
                })
            }
        };
        let mut rule_values = Vec::new();
        for k in RULE_KEYS {
            rule_values.push((k, text_field(m, k)?));
        }
        let rule = CryptRule::select(rule_values.iter().map(|(k, v)| (*k, v.as_str())))?;
        let version = text_field(m, "version")?;
        if version.is_empty() {
            return Err(MetadataError::VersionEmpty);
        }
        Ok(Metadata {
            key_groups,
            shamir_threshold,
            last_modified,
            mac: text_field(m, "mac")?,
            rule: Some(rule),
            mac_only_encrypted,
            version,
        })
    }

    /// The active rule (the default one when none is stored).
    pub fn rule(&self) -> CryptRule {
        self.rule.clone().unwrap_or_default()
    }

    /// The MAC's AAD: `lastmodified` re-formatted with Go's `time.RFC3339` layout.
    pub fn mac_aad(&self) -> String {
        parse_rfc3339(&self.last_modified)
            .map(|t| t.rfc3339())
            .unwrap_or_default()
    }

    /// Writes the block in 3.11's struct order. `nil_lists_as_null` selects how a key group's
    /// always-written empty `hc_vault`/`age` lists appear: JSON writes Go's nil slice as `null`,
    /// YAML as `[]`.
    pub fn to_map(&self, nil_lists_as_null: bool) -> Map {
        let mut m = Map::new();
        let push = |m: &mut Map, k: &str, v: Value| m.items.push(MapItem::Pair(k.into(), v));
        let empty_list = || {
            if nil_lists_as_null {
                Value::Null
            } else {
                Value::Seq(Vec::new())
            }
        };
        if self.shamir_threshold > 0 {
            push(
                &mut m,
                "shamir_threshold",
                Value::Int(self.shamir_threshold as i64),
            );
        }
        let age_list = |g: &KeyGroup| {
            Value::Seq(
                g.age
                    .iter()
                    .map(|a| {
                        Value::Map(Map::from_pairs([
                            ("recipient", Value::str(a.recipient.clone())),
                            ("enc", Value::str(a.enc.clone())),
                        ]))
                    })
                    .collect(),
            )
        };
        let other = |g: &KeyGroup, k: &str| {
            g.others
                .iter()
                .find(|(name, _)| name == k)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let single = self.key_groups.len() == 1;
        if !single {
            let groups = self
                .key_groups
                .iter()
                .map(|g| {
                    let mut gm = Map::new();
                    for k in OTHER_GROUP_KEYS {
                        if let Some(v) = other(g, k) {
                            push(&mut gm, k, Value::Seq(v));
                        }
                    }
                    push(
                        &mut gm,
                        "hc_vault",
                        other(g, "hc_vault")
                            .map(Value::Seq)
                            .unwrap_or_else(empty_list),
                    );
                    push(
                        &mut gm,
                        "age",
                        if g.age.is_empty() {
                            empty_list()
                        } else {
                            age_list(g)
                        },
                    );
                    Value::Map(gm)
                })
                .collect();
            push(&mut m, "key_groups", Value::Seq(groups));
        }
        let g0 = self.key_groups.first().filter(|_| single);
        for k in ["kms", "gcp_kms", "hckms", "azure_kv", "hc_vault"] {
            if let Some(v) = g0.and_then(|g| other(g, k)) {
                push(&mut m, k, Value::Seq(v));
            }
        }
        if let Some(g) = g0.filter(|g| !g.age.is_empty()) {
            push(&mut m, "age", age_list(g));
        }
        push(
            &mut m,
            "lastmodified",
            Value::str(self.last_modified.clone()),
        );
        push(&mut m, "mac", Value::str(self.mac.clone()));
        if let Some(v) = g0.and_then(|g| other(g, "pgp")) {
            push(&mut m, "pgp", Value::Seq(v));
        }
        if let Some(rule) = &self.rule {
            push(&mut m, rule.key(), Value::str(rule.source()));
        }
        if self.mac_only_encrypted {
            push(&mut m, "mac_only_encrypted", Value::Bool(true));
        }
        push(&mut m, "version", Value::str(self.version.clone()));
        m
    }

    /// Every age recipient, group by group.
    pub fn recipients(&self) -> Vec<Vec<String>> {
        self.key_groups
            .iter()
            .map(|g| g.recipients().map(str::to_string).collect())
            .collect()
    }

    /// Whether any group holds a key type that sealwright cannot wrap a data key for.
    pub fn has_foreign_keys(&self) -> bool {
        self.key_groups
            .iter()
            .any(|g| g.others.iter().any(|(_, v)| !v.is_empty()))
    }
}

/// Removes the `sops` entry from every branch and reads it from the first one (as sops does).
pub fn take_from_branches(branches: &mut [Map]) -> Result<Metadata, MetadataError> {
    let mut first = None;
    for b in branches.iter_mut() {
        let v = b.remove("sops");
        if first.is_none() {
            first = Some(v);
        }
    }
    match first.flatten() {
        None | Some(Value::Null) => Err(MetadataError::NotFound),
        Some(Value::Map(m)) => Metadata::from_map(&m),
        Some(_) => Err(MetadataError::NotAMap),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Map {
        Map::from_pairs([
            (
                "age",
                Value::Seq(vec![Value::Map(Map::from_pairs([
                    ("recipient", Value::str(" age1xyz ")),
                    ("enc", Value::str("-----BEGIN AGE ENCRYPTED FILE-----\n")),
                ]))]),
            ),
            ("lastmodified", Value::str("2026-11-23T06:32:18Z")),
            ("mac", Value::str("ENC[...]")),
            ("encrypted_regex", Value::str("^(data|stringData)$")),
            ("version", Value::str("3.11.0")),
        ])
    }

    #[test]
    fn reads_and_writes_back_in_order() {
        let md = Metadata::from_map(&sample()).unwrap();
        assert_eq!(md.recipients(), vec![vec!["age1xyz".to_string()]]);
        assert_eq!(md.rule().key(), "encrypted_regex");
        let keys: Vec<_> = md
            .to_map(false)
            .pairs()
            .map(|(k, _)| k.to_string())
            .collect();
        assert_eq!(
            keys,
            ["age", "lastmodified", "mac", "encrypted_regex", "version"]
        );
    }

    #[test]
    fn errors_like_sops() {
        let mut m = sample();
        m.remove("age");
        assert_eq!(Metadata::from_map(&m).unwrap_err(), MetadataError::NoKeys);
        let mut m = sample();
        m.insert("lastmodified", Value::str(""));
        assert_eq!(
            Metadata::from_map(&m).unwrap_err(),
            MetadataError::LastModified
        );
        let mut m = sample();
        m.remove("version");
        assert_eq!(
            Metadata::from_map(&m).unwrap_err(),
            MetadataError::VersionEmpty
        );
        let mut m = sample();
        m.insert("encrypted_suffix", Value::str("_x"));
        assert!(matches!(
            Metadata::from_map(&m).unwrap_err(),
            MetadataError::Rule(RuleError::MoreThanOne)
        ));
        let mut branches = vec![Map::from_pairs([("a", Value::Int(1))])];
        assert_eq!(
            take_from_branches(&mut branches).unwrap_err(),
            MetadataError::NotFound
        );
    }

    #[test]
    fn foreign_key_entries_are_carried_through() {
        let mut m = sample();
        let pgp = Value::Seq(vec![Value::Map(Map::from_pairs([
            ("fp", Value::str("ABCDEF")),
            ("enc", Value::str("-----BEGIN PGP MESSAGE-----\n")),
        ]))]);
        m.insert("pgp", pgp.clone());
        let md = Metadata::from_map(&m).unwrap();
        assert!(md.has_foreign_keys());
        let back = md.to_map(false);
        assert_eq!(back.get("pgp"), Some(&pgp));
        assert!(back.get("age").is_some());
    }

    #[test]
    fn mac_aad_is_canonical_rfc3339() {
        let mut md = Metadata::from_map(&sample()).unwrap();
        md.last_modified = "2026-11-23T06:32:18.5+00:00".into();
        assert_eq!(md.mac_aad(), "2026-11-23T06:32:18Z");
    }

    #[test]
    fn groups_write_hc_vault_and_age_always() {
        let mut md = Metadata::from_map(&sample()).unwrap();
        md.key_groups.push(KeyGroup::default());
        md.shamir_threshold = 2;
        let m = md.to_map(true);
        let Some(Value::Seq(groups)) = m.get("key_groups") else {
            panic!()
        };
        let Value::Map(g1) = &groups[1] else { panic!() };
        assert_eq!(g1.get("hc_vault"), Some(&Value::Null));
        assert_eq!(g1.get("age"), Some(&Value::Null));
        let keys: Vec<_> = m.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys[..2], ["shamir_threshold", "key_groups"]);
    }
}
