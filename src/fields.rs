//! Reading JSON objects at the edge: [`Fields`] remembers which keys were asked for, so a
//! leftover key is an error, and [`Invalid`] names the field and the problem (never a value).

use serde_json::Value as Json;

use crate::names::NameError;

/// A field that breaks a rule, and why. Rendered as `field: reason`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Invalid {
    pub field: String,
    pub reason: String,
}

pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Invalid {
    Invalid {
        field: field.into(),
        reason: reason.into(),
    }
}

impl From<NameError> for Invalid {
    fn from(e: NameError) -> Invalid {
        invalid(e.field, format!("{:?} {}", e.value, e.problem))
    }
}

pub fn kind(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Number(_) => "a number",
        Json::String(_) => "a string",
        Json::Array(_) => "a list",
        Json::Object(_) => "an object",
    }
}

/// An object being read: remembers which keys were asked for, so leftovers are errors.
pub struct Fields<'a> {
    path: String,
    map: &'a serde_json::Map<String, Json>,
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    pub fn of(path: &str, v: &'a Json) -> Result<Fields<'a>, Invalid> {
        match v {
            Json::Object(map) => Ok(Fields {
                path: path.to_owned(),
                map,
                used: Vec::new(),
            }),
            other => Err(invalid(
                if path.is_empty() { "body" } else { path },
                format!("must be an object, not {}", kind(other)),
            )),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_owned()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    pub fn get(&mut self, key: &'static str) -> Option<&'a Json> {
        self.used.push(key);
        self.map.get(key).filter(|v| !v.is_null())
    }

    pub fn opt_str(&mut self, key: &'static str) -> Result<Option<String>, Invalid> {
        match self.get(key) {
            None => Ok(None),
            Some(Json::String(s)) => Ok(Some(s.clone())),
            Some(other) => Err(invalid(
                self.field(key),
                format!("must be a string, not {}", kind(other)),
            )),
        }
    }

    pub fn str(&mut self, key: &'static str) -> Result<String, Invalid> {
        match self.opt_str(key)? {
            Some(s) if !s.is_empty() => Ok(s),
            Some(_) => Err(invalid(self.field(key), "must not be empty")),
            None => Err(invalid(self.field(key), "is required")),
        }
    }

    pub fn finish(self) -> Result<(), Invalid> {
        for k in self.map.keys() {
            if !self.used.contains(&k.as_str()) {
                return Err(invalid(
                    self.field(k),
                    format!("unknown field (expected one of: {})", self.used.join(", ")),
                ));
            }
        }
        Ok(())
    }
}
