//! The binary store (SOPS-FORMAT.md 7.5): any file whose format sops does not know.
//!
//! Plain: the whole file is one string under the key `data` ([`Value::Str`] when it is UTF-8,
//! [`Value::Bytes`] otherwise). Encrypted: the JSON envelope `{"data": "ENC[...]", "sops": {...}}`,
//! read and written by the JSON store (tab-indented by default).

use thiserror::Error;

use super::json::{self, JsonError};
use crate::value::{Map, MapItem, Value};

/// The single key the binary store uses.
pub const DATA_KEY: &str = "data";

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum BinaryError {
    /// The encrypted envelope is not valid JSON.
    #[error(transparent)]
    Json(#[from] JsonError),
    /// No `data` key in the tree (sops: same message).
    #[error("error emitting binary store: no binary data found in tree")]
    NoData,
    /// `data` holds something other than a string (sops: same message).
    #[error("error emitting binary store: 'data' key in tree does not have a string value")]
    DataNotString,
}

/// The branch of a plain binary file: `{data: <the whole file>}`.
pub fn parse_plain(input: &[u8]) -> Map {
    let value = match std::str::from_utf8(input) {
        Ok(s) => Value::Str(s.to_string()),
        Err(_) => Value::Bytes(input.to_vec()),
    };
    Map::from_pairs([(DATA_KEY, value)])
}

/// Parses the JSON envelope of an encrypted binary file.
pub fn parse_encrypted(input: &[u8]) -> Result<Map, BinaryError> {
    Ok(json::parse(input)?)
}

/// Writes the JSON envelope of an encrypted binary file (see [`json::emit`] for `indent`).
pub fn emit_encrypted(branch: &Map, indent: Option<usize>) -> String {
    json::emit(branch, indent)
}

/// The raw bytes of the plain file: the value of the first `data` pair.
pub fn emit_plain(branch: &Map) -> Result<Vec<u8>, BinaryError> {
    let value = branch
        .items
        .iter()
        .find_map(|item| match item {
            MapItem::Pair(k, v) if k == DATA_KEY => Some(v),
            _ => None,
        })
        .ok_or(BinaryError::NoData)?;
    match value {
        Value::Str(s) => Ok(s.as_bytes().to_vec()),
        Value::Bytes(b) => Ok(b.clone()),
        _ => Err(BinaryError::DataNotString),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(rel: &str) -> Vec<u8> {
        std::fs::read(crate::testdata::shared_dir().join("sops-vectors").join(rel)).unwrap()
    }

    #[test]
    fn encrypted_vector_round_trip() {
        let bytes = read("encrypted/binary-basic.enc.bin");
        let map = parse_encrypted(&bytes).unwrap();
        let keys: Vec<&str> = map.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys, ["data", "sops"]);
        assert!(map
            .get("data")
            .unwrap()
            .as_str()
            .unwrap()
            .starts_with("ENC[AES256_GCM,"));
        assert!(!map
            .get("sops")
            .unwrap()
            .as_map()
            .unwrap()
            .contains_key("unencrypted_suffix"));
        assert_eq!(emit_encrypted(&map, None).as_bytes(), &bytes[..]);
    }

    #[test]
    fn plain_vector_round_trip() {
        let bytes = read("inputs/binary-basic.bin");
        let map = parse_plain(&bytes);
        assert_eq!(map.get("data"), Some(&Value::str("binary\0data\nline2")));
        assert_eq!(emit_plain(&map).unwrap(), bytes);
        assert_eq!(read("decrypted/binary-basic.dec.bin"), bytes);
    }

    #[test]
    fn invalid_utf8_survives() {
        let bytes = b"\x00\xff\xfe\xe2\x82 text \xc3\xa9\n".to_vec();
        let map = parse_plain(&bytes);
        assert_eq!(map.get("data"), Some(&Value::Bytes(bytes.clone())));
        assert_eq!(emit_plain(&map).unwrap(), bytes);
        assert_eq!(emit_plain(&parse_plain(b"")).unwrap(), b"");
    }

    #[test]
    fn emit_plain_errors() {
        assert_eq!(
            emit_plain(&Map::new()).unwrap_err().to_string(),
            "error emitting binary store: no binary data found in tree"
        );
        let m = Map {
            items: vec![
                MapItem::Comment("data".into()),
                MapItem::Pair("other".into(), Value::str("x")),
            ],
        };
        assert_eq!(emit_plain(&m).unwrap_err(), BinaryError::NoData);
        let m = Map::from_pairs([("data", Value::Float(1.0)), ("data", Value::str("x"))]);
        assert_eq!(emit_plain(&m).unwrap_err(), BinaryError::DataNotString);
    }

    #[test]
    fn parse_encrypted_errors_are_json_errors() {
        assert!(matches!(
            parse_encrypted(b"binary\0data"),
            Err(BinaryError::Json(_))
        ));
    }
}
