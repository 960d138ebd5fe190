//! The SOPS document model: an ordered tree of typed values plus comments, shared by every store
//! (YAML, JSON, dotenv, binary) and by the crypto walk.
//!
//! A file holds one or more *branches* (one per YAML document; exactly one for the other formats).
//! A branch is a [`Map`]. Order is kept exactly as in the input because it matters for the MAC.
//! Comments are items of their container (SOPS-FORMAT.md 1.1): a [`MapItem::Comment`] in a mapping,
//! a [`Value::Comment`] element in a sequence. The metadata block is an ordinary top-level `sops`
//! entry while a document is being parsed or emitted; [`crate::metadata`] takes it out.

use std::fmt;

/// One node of a document tree.
#[derive(Clone, PartialEq)]
pub enum Value {
    /// YAML `null`/`~`/empty, JSON `null`. Never encrypted, never hashed.
    Null,
    Bool(bool),
    /// Signed 64-bit integer (YAML ints; JSON numbers are floats in sops 3.11).
    Int(i64),
    /// YAML integers in `2^63 ..= 2^64-1`: go-yaml decodes them as uint64 and sops refuses to
    /// encrypt them (`unknown type: uint64`), but they must survive a parse/emit round trip.
    Uint(u64),
    Float(f64),
    Str(String),
    /// A string whose bytes are not UTF-8 (YAML `!!binary`, the binary store). Typed `str` in SOPS.
    Bytes(Vec<u8>),
    /// A YAML timestamp, held in Go's `Time.MarshalText` form (RFC 3339, fraction only if non-zero).
    Time(Timestamp),
    Map(Map),
    Seq(Vec<Value>),
    /// A comment inside a sequence (text after the `#`). In mappings comments are [`MapItem::Comment`].
    Comment(String),
}

/// An ordered mapping with interleaved comments.
#[derive(Clone, PartialEq, Default)]
pub struct Map {
    pub items: Vec<MapItem>,
}

#[derive(Clone, PartialEq)]
pub enum MapItem {
    Pair(String, Value),
    /// Comment text without the leading `#` (so `# hi` is stored as ` hi`).
    Comment(String),
}

/// A timestamp in canonical RFC 3339 text, as Go's `time.Time.MarshalText` writes it.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct Timestamp(pub String);

impl Map {
    pub fn new() -> Self {
        Map { items: Vec::new() }
    }

    /// The value of the first pair with this key.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.items.iter().find_map(|i| match i {
            MapItem::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.items.iter_mut().find_map(|i| match i {
            MapItem::Pair(k, v) if k == key => Some(v),
            _ => None,
        })
    }

    /// Replaces the value of `key` in place, or appends the pair.
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.items.push(MapItem::Pair(key, value)),
        }
    }

    /// Removes every pair with this key and returns the first one's value.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let mut found = None;
        self.items.retain_mut(|i| match i {
            MapItem::Pair(k, v) if k == key => {
                if found.is_none() {
                    found = Some(std::mem::replace(v, Value::Null));
                }
                false
            }
            _ => true,
        });
        found
    }

    pub fn pairs(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.items.iter().filter_map(|i| match i {
            MapItem::Pair(k, v) => Some((k.as_str(), v)),
            MapItem::Comment(_) => None,
        })
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Builds a comment-free map from pairs (handy for metadata and tests).
    pub fn from_pairs<K: Into<String>>(pairs: impl IntoIterator<Item = (K, Value)>) -> Self {
        Map {
            items: pairs
                .into_iter()
                .map(|(k, v)| MapItem::Pair(k.into(), v))
                .collect(),
        }
    }
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    /// The name sops' Go code would give this value's type in an error message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "nil",
            Value::Bool(_) => "bool",
            Value::Int(_) => "int",
            Value::Uint(_) => "uint64",
            Value::Float(_) => "float64",
            Value::Str(_) | Value::Bytes(_) => "string",
            Value::Time(_) => "time.Time",
            Value::Map(_) => "map",
            Value::Seq(_) => "list",
            Value::Comment(_) => "comment",
        }
    }
}

// Deliberately value-free: these types carry decrypted secrets, so `{:?}` must never print them
// (a stray `dbg!` or an error built with `{:?}` would otherwise leak plaintext).
impl fmt::Debug for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Map(m) => m.fmt(f),
            Value::Seq(s) => write!(f, "Seq(len={})", s.len()),
            other => write!(f, "{}(<redacted>)", other.type_name()),
        }
    }
}

impl fmt::Debug for Map {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.items.iter().map(|i| match i {
                MapItem::Pair(k, _) => k.as_str(),
                MapItem::Comment(_) => "#",
            }))
            .finish()
    }
}

impl fmt::Debug for MapItem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MapItem::Pair(k, v) => write!(f, "{k}: {v:?}"),
            MapItem::Comment(_) => f.write_str("#<redacted>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_prints_values() {
        let m = Map::from_pairs([("password", Value::str("hunter2"))]);
        let shown = format!("{:?} {:?}", m, Value::Map(m.clone()));
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("password"));
    }

    #[test]
    fn insert_replaces_in_place_and_remove_takes_all() {
        let mut m = Map::from_pairs([("a", Value::Int(1)), ("b", Value::Int(2))]);
        m.insert("a", Value::Int(3));
        assert_eq!(m.get("a"), Some(&Value::Int(3)));
        m.items.push(MapItem::Pair("a".into(), Value::Int(4)));
        assert_eq!(m.remove("a"), Some(Value::Int(3)));
        assert!(!m.contains_key("a"));
        assert_eq!(m.pairs().count(), 1);
    }
}
