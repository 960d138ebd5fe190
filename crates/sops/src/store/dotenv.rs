//! The dotenv store (SOPS-FORMAT.md 7.3, 5.5, 12).
//!
//! Parsing is sops 3.11's: split on `\n` only, skip empty lines, `#` at the start of a line makes a
//! comment, otherwise the line is split at its first `=` with no trimming and no quote handling, and
//! the two characters `\n` in a value become a newline. Every value is a [`Value::Str`].
//!
//! The metadata is stored flattened in top-level `sops_*` lines. To keep the rest of the crate
//! format-agnostic, [`parse`] collects every `sops_`-prefixed line (wherever it is) and rebuilds the
//! nested `sops` map from the flat keys (`__map_k` = map key `k`, `__list_i` = list index `i`),
//! appended as the last top-level pair; all its leaves stay strings (`shamir_threshold` `"2"`,
//! `mac_only_encrypted` `"true"`), and holes in a list become [`Value::Null`]. [`emit`] does the
//! reverse: a top-level `sops` pair holding a map is flattened into `sops_<flat>=value` lines sorted
//! by byte order of the flat key, after the data lines; nulls and empty lists/maps produce no line.
//!
//! Error messages never contain document text (a malformed line may be a secret): only line numbers,
//! key names and a reason.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use thiserror::Error;

use crate::value::{Map, MapItem, Value};

/// Prefix of the flattened metadata keys.
const SOPS_PREFIX: &str = "sops_";
const MAP_SEPARATOR: &str = "__map_";
const LIST_SEPARATOR: &str = "__list_";
/// Largest list index accepted in a flattened metadata key (sops would allocate that many slots).
pub const MAX_LIST_INDEX: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DotenvError {
    /// A non-empty, non-comment line without `=` (sops: `invalid dotenv input line: <line>`; the
    /// line itself is not repeated here because it may be a secret).
    #[error("invalid dotenv input line {line}: no '=' found")]
    InvalidLine { line: usize },
    /// A line that is not valid UTF-8.
    #[error("invalid dotenv input line {line}: not valid UTF-8")]
    InvalidUtf8 { line: usize },
    /// Two flattened metadata keys disagree on the shape of a metadata entry (one makes it a value,
    /// the other a map or a list). sops 3.11 panics or silently overwrites here.
    #[error("invalid sops metadata in dotenv file: key {key} conflicts with another sops_ key")]
    MetadataConflict { key: String },
    /// A `__list_` index in a flattened metadata key that is not a number or is too large.
    #[error("invalid sops metadata in dotenv file: bad list index in key {key}")]
    MetadataListIndex { key: String },
    /// A map or list at the top level of the data (sops: same message).
    #[error("cannot use complex value in dotenv file; offending key {key}")]
    ComplexValue { key: String },
    /// A value whose bytes are not UTF-8 cannot be written into the `String` output.
    #[error("cannot write non-UTF-8 value to dotenv file; offending key {key}")]
    NonUtf8Value { key: String },
}

/// Parses a dotenv file; the `sops_*` lines, if any, become a nested `sops` map at the end.
pub fn parse(input: &[u8]) -> Result<Map, DotenvError> {
    let mut map = Map::new();
    let mut meta: Vec<(String, String)> = Vec::new();
    for (idx, line) in input.split(|&b| b == b'\n').enumerate() {
        let line_no = idx + 1;
        if line.is_empty() {
            continue;
        }
        let text =
            std::str::from_utf8(line).map_err(|_| DotenvError::InvalidUtf8 { line: line_no })?;
        if let Some(comment) = text.strip_prefix('#') {
            map.items.push(MapItem::Comment(comment.to_string()));
            continue;
        }
        let Some((key, value)) = text.split_once('=') else {
            return Err(DotenvError::InvalidLine { line: line_no });
        };
        let value = value.replace("\\n", "\n");
        match key.strip_prefix(SOPS_PREFIX) {
            Some(flat) => meta.push((flat.to_string(), value)),
            None => map
                .items
                .push(MapItem::Pair(key.to_string(), Value::Str(value))),
        }
    }
    if !meta.is_empty() {
        map.items.push(MapItem::Pair(
            "sops".to_string(),
            Value::Map(unflatten(meta)?),
        ));
    }
    Ok(map)
}

/// Writes a branch as a dotenv file: `KEY=value` lines (newlines as `\n`), comments as `#text`,
/// then the flattened `sops` map (if any) as sorted `sops_*` lines.
///
/// Non-string scalars use sops 3.11's display format (SOPS-FORMAT.md 12): floats as Go
/// `FormatFloat(v, 'G', -1, 64)` with `.0` added when the result looks like an integer, bools
/// `true`/`false`, timestamps RFC 3339 without fractional seconds, integers in decimal, null as
/// `<nil>` (Go's `%v`). Maps and lists fail with [`DotenvError::ComplexValue`]; [`Value::Bytes`]
/// fails with [`DotenvError::NonUtf8Value`].
pub fn emit(branch: &Map) -> Result<String, DotenvError> {
    let mut out = String::new();
    let mut meta: Option<&Map> = None;
    for item in &branch.items {
        match item {
            MapItem::Comment(text) => {
                out.push('#');
                out.push_str(text);
                out.push('\n');
            }
            MapItem::Pair(key, Value::Map(m)) if key == "sops" && meta.is_none() => meta = Some(m),
            MapItem::Pair(key, value) => {
                let text = scalar_text(key, value)?;
                out.push_str(key);
                out.push('=');
                out.push_str(&text.replace('\n', "\\n"));
                out.push('\n');
            }
        }
    }
    if let Some(meta) = meta {
        let mut lines: Vec<(String, String)> = Vec::new();
        flatten_map(meta, &mut lines)?;
        lines.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
        for (key, value) in lines {
            out.push_str(SOPS_PREFIX);
            out.push_str(&key);
            out.push('=');
            out.push_str(&value.replace('\n', "\\n"));
            out.push('\n');
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Display format for non-string scalars (sops 3.11 `stores.ValToString`)

fn scalar_text(key: &str, value: &Value) -> Result<String, DotenvError> {
    Ok(match value {
        Value::Str(s) => s.clone(),
        Value::Null => "<nil>".to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        Value::Float(f) => go_display_float(*f),
        Value::Time(t) => rfc3339_seconds(&t.0),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err(DotenvError::NonUtf8Value {
                    key: key.to_string(),
                })
            }
        },
        Value::Map(_) | Value::Seq(_) | Value::Comment(_) => {
            return Err(DotenvError::ComplexValue {
                key: key.to_string(),
            })
        }
    })
}

/// Go `strconv.FormatFloat(f, 'G', -1, 64)`, then `FormatFloat(f, 'f', 1, 64)` if the result has
/// neither `.` nor `E` (sops' `ValToString`): `1.0`, `100000.0`, `1.234567E+06`, `1E+21`, `1E-05`.
pub(crate) fn go_display_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".to_string();
    }
    if f.is_infinite() {
        return if f > 0.0 { "+Inf" } else { "-Inf" }.to_string();
    }
    let mut out = String::new();
    if f != 0.0 {
        // Shortest round-trip digits and decimal exponent, from Rust's `{:e}` (`1.234567e6`).
        let sci = crate::scalar::go_shortest_e(f);
        let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        // Go 'G' with shortest precision: %E when exp < -4 || exp >= 6 (eprec is 6 when shortest).
        if !(-4..6).contains(&exp) {
            out.push_str(mantissa);
            out.push('E');
            out.push(if exp < 0 { '-' } else { '+' });
            let _ = write!(out, "{:02}", exp.unsigned_abs());
            return out;
        }
    }
    out.push_str(&crate::scalar::go_format_f(f));
    if !out.contains('.') {
        out.push_str(".0");
    }
    out
}

/// Go `t.Format(time.RFC3339)` from the `MarshalText` form: the same text without the fraction.
fn rfc3339_seconds(text: &str) -> String {
    match text.find('.') {
        Some(dot) => {
            let rest = &text[dot + 1..];
            let frac_len = rest.bytes().take_while(|b| b.is_ascii_digit()).count();
            format!("{}{}", &text[..dot], &rest[frac_len..])
        }
        None => text.to_string(),
    }
}

// ---------------------------------------------------------------------------------------------
// Metadata flattening (sops 3.11 `stores.Flatten` / `stores.Unflatten`)

/// One step of a flattened key path.
enum Token {
    Key(String),
    Index(usize),
}

/// Port of sops' `tokenize`: the text before the first separator is a map key, then each
/// `__map_k` is a map key and each `__list_i` a list index.
fn tokenize(flat: &str) -> Result<Vec<Token>, DotenvError> {
    #[derive(Clone, Copy)]
    enum State {
        Normal,
        Map,
        List,
    }
    let mut tokens = Vec::new();
    let mut state = State::Normal;
    let mut last_end = 0;
    let mut i = 0;
    let bytes = flat.as_bytes();
    let mut finish = |state: State, last_end: usize, i: usize| -> Result<(), DotenvError> {
        // Separators are ASCII, so these slice bounds are on char boundaries.
        let token = match state {
            State::Normal => Token::Key(flat[last_end..i].to_string()),
            State::Map => Token::Key(flat[last_end + MAP_SEPARATOR.len()..i].to_string()),
            State::List => {
                let digits = &flat[last_end + LIST_SEPARATOR.len()..i];
                match digits.parse::<usize>() {
                    Ok(n) if n <= MAX_LIST_INDEX && digits.bytes().all(|b| b.is_ascii_digit()) => {
                        Token::Index(n)
                    }
                    _ => {
                        return Err(DotenvError::MetadataListIndex {
                            key: format!("{SOPS_PREFIX}{flat}"),
                        })
                    }
                }
            }
        };
        tokens.push(token);
        Ok(())
    };
    while i < bytes.len() {
        if bytes[i..].starts_with(MAP_SEPARATOR.as_bytes()) {
            finish(state, last_end, i)?;
            last_end = i;
            state = State::Map;
            i += MAP_SEPARATOR.len();
        } else if bytes[i..].starts_with(LIST_SEPARATOR.as_bytes()) {
            finish(state, last_end, i)?;
            last_end = i;
            state = State::List;
            i += LIST_SEPARATOR.len();
        } else {
            i += 1;
        }
    }
    finish(state, last_end, i)?;
    Ok(tokens)
}

/// The tree being rebuilt from flat keys.
enum Node {
    Empty,
    Leaf(String),
    Map(BTreeMap<String, Node>),
    List(Vec<Node>),
}

fn unflatten(entries: Vec<(String, String)>) -> Result<Map, DotenvError> {
    let mut root: BTreeMap<String, Node> = BTreeMap::new();
    for (flat, value) in entries {
        let tokens = tokenize(&flat)?;
        let conflict = || DotenvError::MetadataConflict {
            key: format!("{SOPS_PREFIX}{flat}"),
        };
        let mut tokens = tokens.into_iter();
        let Some(Token::Key(first)) = tokens.next() else {
            return Err(conflict());
        };
        let mut node = root.entry(first).or_insert(Node::Empty);
        for token in tokens {
            node = match token {
                Token::Key(k) => {
                    if let Node::Empty = node {
                        *node = Node::Map(BTreeMap::new());
                    }
                    match node {
                        Node::Map(m) => m.entry(k).or_insert(Node::Empty),
                        _ => return Err(conflict()),
                    }
                }
                Token::Index(i) => {
                    if let Node::Empty = node {
                        *node = Node::List(Vec::new());
                    }
                    match node {
                        Node::List(l) => {
                            if l.len() <= i {
                                l.resize_with(i + 1, || Node::Empty);
                            }
                            &mut l[i]
                        }
                        _ => return Err(conflict()),
                    }
                }
            };
        }
        match node {
            // A repeated key: the last line wins, as in sops' Go map.
            Node::Empty | Node::Leaf(_) => *node = Node::Leaf(value),
            Node::Map(_) | Node::List(_) => return Err(conflict()),
        }
    }
    Ok(node_map(root))
}

fn node_map(map: BTreeMap<String, Node>) -> Map {
    Map {
        items: map
            .into_iter()
            .map(|(k, v)| MapItem::Pair(k, node_value(v)))
            .collect(),
    }
}

fn node_value(node: Node) -> Value {
    match node {
        Node::Empty => Value::Null,
        Node::Leaf(s) => Value::Str(s),
        Node::Map(m) => Value::Map(node_map(m)),
        Node::List(l) => Value::Seq(l.into_iter().map(node_value).collect()),
    }
}

fn flatten_map(map: &Map, out: &mut Vec<(String, String)>) -> Result<(), DotenvError> {
    for (key, value) in map.pairs() {
        flatten_value(value, key.to_string(), out)?;
    }
    Ok(())
}

fn flatten_value(
    value: &Value,
    path: String,
    out: &mut Vec<(String, String)>,
) -> Result<(), DotenvError> {
    let text = match value {
        Value::Map(m) => {
            for (key, v) in m.pairs() {
                flatten_value(v, format!("{path}{MAP_SEPARATOR}{key}"), out)?;
            }
            return Ok(());
        }
        Value::Seq(items) => {
            let elements = items.iter().filter(|v| !matches!(v, Value::Comment(_)));
            for (i, v) in elements.enumerate() {
                flatten_value(v, format!("{path}{LIST_SEPARATOR}{i}"), out)?;
            }
            return Ok(());
        }
        Value::Null | Value::Comment(_) => return Ok(()),
        Value::Str(s) => s.clone(),
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Uint(u) => u.to_string(),
        // sops writes `shamir_threshold` (its only numeric field, a float64 after its JSON round
        // trip) with `%.0f`.
        Value::Float(f) if f.is_finite() => format!("{f:.0}"),
        Value::Float(f) => go_display_float(*f),
        Value::Time(t) => rfc3339_seconds(&t.0),
        Value::Bytes(b) => match std::str::from_utf8(b) {
            Ok(s) => s.to_string(),
            Err(_) => {
                return Err(DotenvError::NonUtf8Value {
                    key: format!("{SOPS_PREFIX}{path}"),
                })
            }
        },
    };
    out.push((path, text));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::value::Timestamp;
    use std::path::PathBuf;

    fn vectors() -> PathBuf {
        crate::testdata::shared_dir().join("sops-vectors")
    }

    fn read(rel: &str) -> Vec<u8> {
        std::fs::read(vectors().join(rel)).unwrap()
    }

    fn seq_len(v: Option<&Value>) -> usize {
        match v {
            Some(Value::Seq(s)) => s.len(),
            other => panic!("not a list: {other:?}"),
        }
    }

    #[test]
    fn vectors_round_trip_byte_for_byte() {
        let mut n = 0;
        for dir in ["encrypted", "decrypted"] {
            for entry in std::fs::read_dir(vectors().join(dir)).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap();
                if !(name.starts_with("dotenv-") && name.ends_with(".env")) {
                    continue;
                }
                let bytes = std::fs::read(&path).unwrap();
                let map = parse(&bytes).unwrap();
                assert_eq!(
                    emit(&map).unwrap().as_bytes(),
                    &bytes[..],
                    "{}",
                    path.display()
                );
                n += 1;
            }
        }
        assert_eq!(n, 4);
    }

    #[test]
    fn input_normalises_like_sops() {
        let map = parse(&read("inputs/dotenv-basic.env")).unwrap();
        let expected = String::from_utf8(read("decrypted/dotenv-basic.dec.env")).unwrap();
        assert_eq!(emit(&map).unwrap(), expected);
        assert_eq!(map.get("MULTI"), Some(&Value::str("line1\nline2")));
        assert_eq!(map.get("QUOTED"), Some(&Value::str("\"quoted value\"")));
        assert_eq!(map.get("SPACES "), Some(&Value::str(" spaced ")));
        assert_eq!(map.get("EQ"), Some(&Value::str("a=b")));
        assert_eq!(map.get("EMPTY"), Some(&Value::str("")));
        assert_eq!(map.items[0], MapItem::Comment(" comment line".into()));
        assert!(!map.contains_key("sops"));
    }

    #[test]
    fn metadata_is_unflattened() {
        let map = parse(&read("encrypted/dotenv-basic.enc.env")).unwrap();
        let (last_key, _) = map.pairs().last().unwrap();
        assert_eq!(last_key, "sops");
        assert!(map.pairs().all(|(k, _)| !k.starts_with("sops_")));
        let sops = map.get("sops").unwrap().as_map().unwrap();
        assert_eq!(sops.get("version"), Some(&Value::str("3.11.0")));
        assert_eq!(
            sops.get("unencrypted_suffix"),
            Some(&Value::str("_unencrypted"))
        );
        let Some(Value::Seq(age)) = sops.get("age") else {
            panic!("no age list")
        };
        assert_eq!(age.len(), 1);
        let entry = age[0].as_map().unwrap();
        let enc = entry.get("enc").unwrap().as_str().unwrap();
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        assert!(entry
            .get("recipient")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("age1"));
    }

    #[test]
    fn metadata_key_groups_are_unflattened() {
        let map = parse(&read("encrypted/dotenv-groups-shamir.enc.env")).unwrap();
        let sops = map.get("sops").unwrap().as_map().unwrap();
        assert_eq!(sops.get("shamir_threshold"), Some(&Value::str("2")));
        let Some(Value::Seq(groups)) = sops.get("key_groups") else {
            panic!("no key_groups")
        };
        assert_eq!(groups.len(), 2);
        for g in groups {
            let g = g.as_map().unwrap();
            assert_eq!(seq_len(g.get("age")), 1);
        }
        assert!(!sops.contains_key("age"));
    }

    #[test]
    fn metadata_emit_types_nulls_and_order() {
        let group = |r: &str| {
            Value::Map(Map::from_pairs([
                ("hc_vault", Value::Null),
                (
                    "age",
                    Value::Seq(vec![Value::Map(Map::from_pairs([
                        ("recipient", Value::str(r)),
                        ("enc", Value::str("line1\nline2\n")),
                    ]))]),
                ),
            ]))
        };
        let sops = Map::from_pairs([
            ("shamir_threshold", Value::Int(2)),
            ("key_groups", Value::Seq(vec![group("r1"), group("r2")])),
            ("kms", Value::Seq(vec![])),
            ("lastmodified", Value::str("2026-01-01T00:00:00Z")),
            ("mac", Value::str("")),
            ("mac_only_encrypted", Value::Bool(true)),
            ("version", Value::str("3.11.0")),
        ]);
        let branch = Map::from_pairs([("A", Value::str("x")), ("sops", Value::Map(sops))]);
        let out = emit(&branch).unwrap();
        assert_eq!(
            out,
            "A=x\n\
             sops_key_groups__list_0__map_age__list_0__map_enc=line1\\nline2\\n\n\
             sops_key_groups__list_0__map_age__list_0__map_recipient=r1\n\
             sops_key_groups__list_1__map_age__list_0__map_enc=line1\\nline2\\n\n\
             sops_key_groups__list_1__map_age__list_0__map_recipient=r2\n\
             sops_lastmodified=2026-01-01T00:00:00Z\n\
             sops_mac=\n\
             sops_mac_only_encrypted=true\n\
             sops_shamir_threshold=2\n\
             sops_version=3.11.0\n"
        );
        // A float threshold (metadata that came from JSON) is written as an integer.
        let b = Map::from_pairs([(
            "sops",
            Value::Map(Map::from_pairs([("shamir_threshold", Value::Float(2.0))])),
        )]);
        assert_eq!(emit(&b).unwrap(), "sops_shamir_threshold=2\n");
        // And it parses back to nested strings.
        let back = parse(out.as_bytes()).unwrap();
        let sops = back.get("sops").unwrap().as_map().unwrap();
        assert_eq!(sops.get("mac_only_encrypted"), Some(&Value::str("true")));
        assert_eq!(sops.get("mac"), Some(&Value::str("")));
        assert_eq!(emit(&back).unwrap(), out);
    }

    #[test]
    fn sops_lines_anywhere_and_comments_kept() {
        let map = parse(b"sops_version=3.11.0\n#c\nA=1\nsops_mac=m\n").unwrap();
        assert_eq!(
            map.items,
            vec![
                MapItem::Comment("c".into()),
                MapItem::Pair("A".into(), Value::str("1")),
                MapItem::Pair(
                    "sops".into(),
                    Value::Map(Map::from_pairs([
                        ("mac", Value::str("m")),
                        ("version", Value::str("3.11.0")),
                    ]))
                ),
            ]
        );
        assert_eq!(
            emit(&map).unwrap(),
            "#c\nA=1\nsops_mac=m\nsops_version=3.11.0\n"
        );
    }

    #[test]
    fn unflatten_edge_cases() {
        // Holes become nulls; repeated keys: last wins.
        let map = parse(b"sops_age__list_1__map_enc=e\nsops_mac=a\nsops_mac=b\n").unwrap();
        let sops = map.get("sops").unwrap().as_map().unwrap();
        assert_eq!(sops.get("mac"), Some(&Value::str("b")));
        let Some(Value::Seq(age)) = sops.get("age") else {
            panic!()
        };
        assert_eq!(age[0], Value::Null);
        assert_eq!(
            age[1],
            Value::Map(Map::from_pairs([("enc", Value::str("e"))]))
        );
        // Tokenizer corner cases follow sops: `a___map_b` is key `a_` then `b`.
        let map = parse(b"sops_a___map_b=1\nsops_=2\n").unwrap();
        let sops = map.get("sops").unwrap().as_map().unwrap();
        assert_eq!(sops.get(""), Some(&Value::str("2")));
        assert_eq!(
            sops.get("a_"),
            Some(&Value::Map(Map::from_pairs([("b", Value::str("1"))])))
        );
        // Conflicts and bad indexes are errors (in either order), naming only the key.
        for bad in [
            &b"sops_age=x\nsops_age__list_0=y\n"[..],
            b"sops_age__list_0=y\nsops_age=x\n",
            b"sops_age__list_0=y\nsops_age__map_k=x\n",
            b"sops_age__map_k=x\nsops_age__list_0__map_enc=x\n",
        ] {
            let e = parse(bad).unwrap_err();
            assert!(matches!(e, DotenvError::MetadataConflict { .. }), "{e}");
            assert!(!e.to_string().contains("=x"), "{e}");
        }
        for bad in [
            &b"sops_age__list_x=1\n"[..],
            b"sops_age__list_=1\n",
            b"sops_age__list_-1=1\n",
            b"sops_age__list_+1=1\n",
            b"sops_age__list_99999999999999999999999=1\n",
            b"sops_age__list_4097=1\n",
        ] {
            assert!(matches!(
                parse(bad),
                Err(DotenvError::MetadataListIndex { .. })
            ));
        }
    }

    #[test]
    fn parse_details() {
        // CR stays in the value, `\n` becomes a newline, only the first `=` splits.
        let map = parse(b"A=1\r\nB=x\\ny\\\\nz\n\n\n=v\nC==\n# \n#\n").unwrap();
        assert_eq!(map.get("A"), Some(&Value::str("1\r")));
        assert_eq!(map.get("B"), Some(&Value::str("x\ny\\\nz")));
        assert_eq!(map.get(""), Some(&Value::str("v")));
        assert_eq!(map.get("C"), Some(&Value::str("=")));
        assert_eq!(map.items[4], MapItem::Comment(" ".into()));
        assert_eq!(map.items[5], MapItem::Comment("".into()));
        assert_eq!(parse(b"").unwrap(), Map::new());
        assert_eq!(parse(b"\n\n").unwrap(), Map::new());
        // `export` is not understood, spaces are kept.
        let map = parse(b"export X = 1").unwrap();
        assert_eq!(map.get("export X "), Some(&Value::str(" 1")));
    }

    #[test]
    fn parse_errors_do_not_echo_lines() {
        let e = parse(b"A=1\n\nhunter2\n").unwrap_err();
        assert_eq!(e, DotenvError::InvalidLine { line: 3 });
        assert!(!e.to_string().contains("hunter2"));
        assert_eq!(e.to_string(), "invalid dotenv input line 3: no '=' found");
        let e = parse(b"A=1\nB=\xff\xfe\n").unwrap_err();
        assert_eq!(e, DotenvError::InvalidUtf8 { line: 2 });
        assert!(parse(b"A=1\n\r\n").is_err());
    }

    #[test]
    fn emit_display_format() {
        let branch = Map {
            items: vec![
                MapItem::Pair("f1".into(), Value::Float(1.0)),
                MapItem::Pair("f2".into(), Value::Float(2.75)),
                MapItem::Pair("f3".into(), Value::Float(1e21)),
                MapItem::Pair("f4".into(), Value::Float(100000.0)),
                MapItem::Pair("f5".into(), Value::Float(1234567.0)),
                MapItem::Pair("f6".into(), Value::Float(0.0001)),
                MapItem::Pair("f7".into(), Value::Float(0.00001234)),
                MapItem::Pair("f8".into(), Value::Float(-0.0)),
                MapItem::Pair("f9".into(), Value::Float(f64::INFINITY)),
                MapItem::Pair("f10".into(), Value::Float(1.5e300)),
                MapItem::Pair("b".into(), Value::Bool(false)),
                MapItem::Pair("i".into(), Value::Int(-5)),
                MapItem::Pair("u".into(), Value::Uint(u64::MAX)),
                MapItem::Pair("n".into(), Value::Null),
                MapItem::Pair(
                    "t".into(),
                    Value::Time(Timestamp("2001-12-14T21:59:43.1-05:00".into())),
                ),
                MapItem::Pair(
                    "t2".into(),
                    Value::Time(Timestamp("2024-01-01T00:00:00Z".into())),
                ),
                MapItem::Pair("bytes".into(), Value::Bytes(b"ok\n".to_vec())),
                MapItem::Comment(" c".into()),
            ],
        };
        assert_eq!(
            emit(&branch).unwrap(),
            "f1=1.0\nf2=2.75\nf3=1E+21\nf4=100000.0\nf5=1.234567E+06\nf6=0.0001\n\
             f7=1.234E-05\nf8=-0.0\nf9=+Inf\nf10=1.5E+300\nb=false\ni=-5\n\
             u=18446744073709551615\nn=<nil>\nt=2001-12-14T21:59:43-05:00\n\
             t2=2024-01-01T00:00:00Z\nbytes=ok\\n\n# c\n"
        );
        assert_eq!(go_display_float(0.0), "0.0");
        assert_eq!(go_display_float(f64::NAN), "NaN");
        assert_eq!(go_display_float(123456.0), "123456.0");
        assert_eq!(go_display_float(1e-5), "1E-05");
        assert_eq!(go_display_float(5e-324), "5E-324");
    }

    #[test]
    fn emit_errors() {
        for v in [
            Value::Map(Map::new()),
            Value::Seq(vec![]),
            Value::Comment("x".into()),
        ] {
            let b = Map::from_pairs([("K", v)]);
            assert_eq!(
                emit(&b).unwrap_err().to_string(),
                "cannot use complex value in dotenv file; offending key K"
            );
        }
        let b = Map::from_pairs([("K", Value::Bytes(b"\xffhunter2".to_vec()))]);
        let e = emit(&b).unwrap_err();
        assert_eq!(e, DotenvError::NonUtf8Value { key: "K".into() });
        assert!(!e.to_string().contains("hunter2"));
        // A `sops` pair that is not a map is ordinary data.
        let b = Map::from_pairs([("sops", Value::str("x"))]);
        assert_eq!(emit(&b).unwrap(), "sops=x\n");
    }

    #[test]
    fn no_panics_on_odd_input() {
        let samples: &[&[u8]] = &[
            b"sops___list_0=1",
            b"sops___map_=1",
            b"sops_a__list_0__list_0__list_1=1\nsops_a__list_0__list_0__list_0=2",
            b"sops_a__map___map___map_=1",
            b"sops___list_",
            b"=\n=\n=",
            b"sops_\xff=1",
            b"#\xff",
        ];
        for s in samples {
            if let Ok(m) = parse(s) {
                let _ = emit(&m);
            }
        }
    }

    mod props {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            #[test]
            fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
                if let Ok(m) = parse(&bytes) {
                    let _ = emit(&m);
                }
            }

            #[test]
            fn flat_sops_keys_never_panic(
                parts in proptest::collection::vec(
                    prop_oneof!["__map_", "__list_", "[0-9]{1,2}", "[a-z_]{0,3}"], 0..8),
                n in 1..4usize,
            ) {
                let line = format!("sops_{}=v\n", parts.concat());
                let input = line.repeat(n) + &format!("sops_{}=w\n", parts[..parts.len() / 2].concat());
                if let Ok(m) = parse(input.as_bytes()) {
                    let _ = emit(&m);
                }
            }

            #[test]
            fn data_lines_round_trip(
                k in "[^=\n#][^=\n]{0,10}",
                v in "[^\n\\\\]{0,20}(\n[^\n\\\\]{0,5})?",
            ) {
                prop_assume!(!k.starts_with("sops_"));
                let m = Map::from_pairs([(k, Value::Str(v))]);
                let out = emit(&m).unwrap();
                prop_assert_eq!(parse(out.as_bytes()).unwrap(), m);
            }
        }
    }
}
