//! Plain (unencrypted) record files: a JSON value written as YAML through the SOPS engine's
//! emitter, and one YAML document read back as JSON. The state repo's records, the signing key
//! ring's plaintext and the registrations directory's files all go through here.

use serde_json::Value as Json;
use sops::document::{EmitOptions, Format};
use sops::{Map, Value};

use crate::spec::{invalid, Invalid};

/// JSON → YAML through the SOPS engine's emitter (plain, 2-space indent).
pub fn yaml_of(j: &Json) -> Vec<u8> {
    let Value::Map(m) = value_of(j) else {
        return Vec::new();
    };
    Format::Yaml
        .emit_plain(
            &[m],
            EmitOptions {
                yaml_indent: 2,
                json_indent: None,
            },
        )
        .unwrap_or_default()
}

fn value_of(j: &Json) -> Value {
    match j {
        Json::Null => Value::Null,
        Json::Bool(b) => Value::Bool(*b),
        Json::Number(n) => n
            .as_i64()
            .map_or_else(|| Value::Float(n.as_f64().unwrap_or_default()), Value::Int),
        Json::String(s) => Value::Str(s.clone()),
        Json::Array(a) => Value::Seq(a.iter().map(value_of).collect()),
        Json::Object(o) => Value::Map(Map::from_pairs(
            o.iter().map(|(k, v)| (k.clone(), value_of(v))),
        )),
    }
}

/// YAML (one document) → JSON, for records and configuration-directory files.
pub fn json_of(bytes: &[u8]) -> Result<Json, Invalid> {
    let docs = Format::Yaml
        .parse_plain(bytes)
        .map_err(|e| invalid("(file)", e.to_string()))?;
    match docs.as_slice() {
        [one] => Ok(json_value(&Value::Map(one.clone()))),
        _ => Err(invalid("(file)", "must hold exactly one YAML document")),
    }
}

pub fn json_value(v: &Value) -> Json {
    match v {
        Value::Null | Value::Comment(_) => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::Str(s) => Json::String(s.clone()),
        Value::Bytes(b) => Json::String(String::from_utf8_lossy(b).into_owned()),
        Value::Time(t) => Json::String(t.0.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .filter(|x| !matches!(x, Value::Comment(_)))
                .map(json_value)
                .collect(),
        ),
        Value::Map(m) => Json::Object(
            m.pairs()
                .map(|(k, v)| (k.to_owned(), json_value(v)))
                .collect(),
        ),
    }
}
