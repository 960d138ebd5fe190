//! How a secret's values are made, beside the values set by hand: keys generated once and kept
//! (`generate`), keys built from other keys (`derive`) and rules values must pass (`validate`),
//! with the server's policy over them (`forbidden_keys`, `presets`). A recipe holds no value: it
//! is kept in the clear in the Secret file's annotation [`ANNOTATION`], so a restart rebuilds it
//! from Git.
//!
//! This module owns the rules and their JSON forms; `generate`, `derive` and `validate` apply
//! them. Where a rule's values land (kept, replaced, rotated) is the reconciler's.

pub mod derive;
pub mod generate;
pub mod validate;

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value as Json};

use crate::fields::{invalid, kind, Fields, Invalid};

pub use generate::Generate;
pub use validate::Check;

/// The annotation of a Secret file that holds its recipe (JSON, no value in it).
pub const ANNOTATION: &str = "sealwright.dev/spec";

/// The suffix of the key that keeps a rotated key's previous value (`password.previous`).
pub const PREVIOUS_SUFFIX: &str = ".previous";

/// A secret's rules. Empty for a secret whose every value is set by hand.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Recipe {
    /// The preset the write named (its rules are already merged in below).
    pub preset: Option<String>,
    pub generate: BTreeMap<String, Generate>,
    /// Key → minijinja expression over this secret's keys and `secrets.<name>.<key>`.
    pub derive: BTreeMap<String, String>,
    pub validate: BTreeMap<String, Check>,
    /// Generated keys whose value before their last rotation is kept as `<key>.previous`.
    pub previous: BTreeSet<String>,
}

/// How a key of a secret gets its value, as listings show it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyKind {
    Set,
    Generated,
    Derived,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Set => "set",
            KeyKind::Generated => "generated",
            KeyKind::Derived => "derived",
        }
    }
}

impl Recipe {
    pub fn is_empty(&self) -> bool {
        self.generate.is_empty()
            && self.derive.is_empty()
            && self.validate.is_empty()
            && self.previous.is_empty()
            && self.preset.is_none()
    }

    /// Every key a generate rule fills (the rule's own key and its companions), with the key
    /// that holds the rule.
    pub fn generated_keys(&self) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, rule) in &self.generate {
            for k in rule.fills(key) {
                out.insert(k, key.clone());
            }
        }
        for key in &self.previous {
            if let Some(rule) = self.generate.get(key) {
                for k in rule.fills(key) {
                    out.insert(format!("{k}{PREVIOUS_SUFFIX}"), key.clone());
                }
            }
        }
        out
    }

    /// Whether the rules give the secret any key (generated or derived).
    pub fn fills_keys(&self) -> bool {
        !self.generate.is_empty() || !self.derive.is_empty()
    }

    pub fn kind_of(&self, key: &str) -> KeyKind {
        if self.derive.contains_key(key) {
            KeyKind::Derived
        } else if self.generated_keys().contains_key(key) {
            KeyKind::Generated
        } else {
            KeyKind::Set
        }
    }

    /// The rules, as a body's fields and the annotation hold them (no value).
    pub fn to_json(&self) -> Json {
        let mut j = serde_json::Map::new();
        if let Some(p) = &self.preset {
            j.insert("preset".into(), json!(p));
        }
        if !self.generate.is_empty() {
            let m: serde_json::Map<_, _> = self
                .generate
                .iter()
                .map(|(k, r)| (k.clone(), r.to_json()))
                .collect();
            j.insert("generate".into(), Json::Object(m));
        }
        if !self.derive.is_empty() {
            j.insert("derive".into(), json!(self.derive));
        }
        if !self.validate.is_empty() {
            let m: serde_json::Map<_, _> = self
                .validate
                .iter()
                .map(|(k, c)| (k.clone(), c.to_json()))
                .collect();
            j.insert("validate".into(), Json::Object(m));
        }
        if !self.previous.is_empty() {
            j.insert("previous".into(), json!(self.previous));
        }
        Json::Object(j)
    }

    /// The annotation's text: compact JSON, keys sorted, so an unchanged recipe is unchanged
    /// bytes.
    pub fn annotation(&self) -> Option<String> {
        (!self.is_empty()).then(|| self.to_json().to_string())
    }

    /// A recipe read back from a file's annotation.
    pub fn from_annotation(text: &str) -> Result<Recipe, Invalid> {
        let v: Json = serde_json::from_str(text)
            .map_err(|e| invalid(ANNOTATION, format!("is not JSON ({e})")))?;
        let mut f = Fields::of(ANNOTATION, &v)?;
        let preset = f.opt_str("preset")?;
        let mut r = Recipe::from_fields(&mut f)?;
        r.preset = preset;
        if let Some(p) = f.get("previous") {
            let Json::Array(items) = p else {
                return Err(invalid("previous", "must be a list"));
            };
            for i in items {
                let Json::String(k) = i else {
                    return Err(invalid("previous", "must be a list of key names"));
                };
                r.previous.insert(k.clone());
            }
        }
        f.finish()?;
        Ok(r)
    }

    /// `generate`, `derive` and `validate` of a body (a write, a preset, an annotation).
    pub(crate) fn from_fields(f: &mut Fields<'_>) -> Result<Recipe, Invalid> {
        let mut r = Recipe::default();
        for (key, v) in object(f.get("generate"), "generate")? {
            crate::names::validate_data_key("generate", key)?;
            r.generate.insert(
                key.clone(),
                Generate::from_json(&format!("generate.{key}"), v)?,
            );
        }
        for (key, v) in object(f.get("derive"), "derive")? {
            crate::names::validate_data_key("derive", key)?;
            r.derive.insert(key.clone(), template(key, v)?);
        }
        for (key, v) in object(f.get("validate"), "validate")? {
            crate::names::validate_data_key("validate", key)?;
            r.validate.insert(
                key.clone(),
                Check::from_json(&format!("validate.{key}"), v)?,
            );
        }
        r.check()?;
        Ok(r)
    }

    /// `other`'s rules over these (a write over its preset): a key's rule in `other` wins.
    pub fn overlay(mut self, other: Recipe) -> Recipe {
        self.generate.extend(other.generate);
        self.derive.extend(other.derive);
        self.validate.extend(other.validate);
        self.previous.extend(other.previous);
        if other.preset.is_some() {
            self.preset = other.preset;
        }
        self
    }

    /// The rules agree with each other: a key is generated or derived, not both, and no two
    /// rules fill one key.
    pub fn check(&self) -> Result<(), Invalid> {
        let mut filled: BTreeMap<String, String> = BTreeMap::new();
        for (key, rule) in &self.generate {
            for k in rule.fills(key) {
                if let Some(other) = filled.insert(k.clone(), key.clone()) {
                    return Err(invalid(
                        format!("generate.{key}"),
                        format!("fills the key {k:?}, which generate.{other} fills too"),
                    ));
                }
                if self.derive.contains_key(&k) {
                    return Err(invalid(
                        format!("derive.{k}"),
                        format!("the key is generated (generate.{key}); it cannot be derived too"),
                    ));
                }
            }
        }
        Ok(())
    }

    /// A `PATCH`'s rules applied (`null` removes a key's rule).
    pub fn patched(&self, patch: &RecipePatch) -> Result<Recipe, Invalid> {
        let mut next = self.clone();
        for (k, r) in &patch.generate {
            match r {
                Some(r) => next.generate.insert(k.clone(), r.clone()),
                None => next.generate.remove(k),
            };
        }
        for (k, t) in &patch.derive {
            match t {
                Some(t) => next.derive.insert(k.clone(), t.clone()),
                None => next.derive.remove(k),
            };
        }
        for (k, c) in &patch.validate {
            match c {
                Some(c) => next.validate.insert(k.clone(), c.clone()),
                None => next.validate.remove(k),
            };
        }
        next.previous.retain(|k| next.generate.contains_key(k));
        next.check()?;
        Ok(next)
    }
}

/// The rules of a `PATCH` body: per key a rule, or `null` to drop the key's rule.
#[derive(Clone, Debug, Default)]
pub struct RecipePatch {
    pub generate: BTreeMap<String, Option<Generate>>,
    pub derive: BTreeMap<String, Option<String>>,
    pub validate: BTreeMap<String, Option<Check>>,
}

impl RecipePatch {
    pub fn is_empty(&self) -> bool {
        self.generate.is_empty() && self.derive.is_empty() && self.validate.is_empty()
    }

    pub(crate) fn from_fields(f: &mut Fields<'_>) -> Result<RecipePatch, Invalid> {
        let mut p = RecipePatch::default();
        for (key, v) in object(f.get("generate"), "generate")? {
            crate::names::validate_data_key("generate", key)?;
            let rule = match v {
                Json::Null => None,
                v => Some(Generate::from_json(&format!("generate.{key}"), v)?),
            };
            p.generate.insert(key.clone(), rule);
        }
        for (key, v) in object(f.get("derive"), "derive")? {
            crate::names::validate_data_key("derive", key)?;
            let t = match v {
                Json::Null => None,
                v => Some(template(key, v)?),
            };
            p.derive.insert(key.clone(), t);
        }
        for (key, v) in object(f.get("validate"), "validate")? {
            crate::names::validate_data_key("validate", key)?;
            let c = match v {
                Json::Null => None,
                v => Some(Check::from_json(&format!("validate.{key}"), v)?),
            };
            p.validate.insert(key.clone(), c);
        }
        Ok(p)
    }
}

fn object<'a>(
    v: Option<&'a Json>,
    field: &str,
) -> Result<Box<dyn Iterator<Item = (&'a String, &'a Json)> + 'a>, Invalid> {
    match v {
        None => Ok(Box::new(std::iter::empty())),
        Some(Json::Object(m)) => Ok(Box::new(m.iter())),
        Some(other) => Err(invalid(
            field,
            format!("must be an object of key to rule, not {}", kind(other)),
        )),
    }
}

fn template(key: &str, v: &Json) -> Result<String, Invalid> {
    let field = format!("derive.{key}");
    match v {
        Json::String(s) if s.trim().is_empty() => Err(invalid(field, "must not be empty")),
        Json::String(s) if s.len() > derive::MAX_TEMPLATE => Err(invalid(
            field,
            format!("is longer than {} bytes", derive::MAX_TEMPLATE),
        )),
        Json::String(s) => {
            derive::parse(s).map_err(|reason| invalid(field, reason))?;
            Ok(s.clone())
        }
        other => Err(invalid(
            field,
            format!("must be a template string, not {}", kind(other)),
        )),
    }
}

/// The server's rules over every write: keys that must never be stored, and named recipes a
/// write may start from.
#[derive(Clone, Debug, Default)]
pub struct Policy {
    /// Key → why it must not be stored, for every tenant.
    pub forbidden: BTreeMap<String, String>,
    /// Tenant → key → why, on top of the global list.
    pub forbidden_by_tenant: BTreeMap<String, BTreeMap<String, String>>,
    pub presets: BTreeMap<String, Preset>,
}

/// A named starting point for a secret: its rules, and optionally its type and plain
/// (non-secret) default values such as a port.
#[derive(Clone, Debug, Default)]
pub struct Preset {
    pub description: Option<String>,
    pub type_: Option<String>,
    pub data: BTreeMap<String, String>,
    pub recipe: Recipe,
}

impl Preset {
    /// `{description?, type?, data?: {key: plain value}, generate?, derive?, validate?}`.
    pub fn from_json(field: &str, v: &Json) -> Result<Preset, Invalid> {
        let mut f = Fields::of(field, v)?;
        let description = f.opt_str("description")?;
        let type_ = f.opt_str("type")?;
        let mut data = BTreeMap::new();
        for (k, v) in object(f.get("data"), &format!("{field}.data"))? {
            crate::names::validate_data_key(&format!("{field}.data"), k)?;
            let Json::String(s) = v else {
                return Err(invalid(
                    format!("{field}.data.{k}"),
                    format!("must be a string, not {}", kind(v)),
                ));
            };
            data.insert(k.clone(), s.clone());
        }
        let recipe = Recipe::from_fields(&mut f).map_err(|e| Invalid {
            field: format!("{field}.{}", e.field),
            reason: e.reason,
        })?;
        f.finish()?;
        if data.is_empty() && recipe.is_empty() {
            return Err(invalid(
                field,
                "needs data, generate, derive or validate: a preset must give something",
            ));
        }
        Ok(Preset {
            description,
            type_,
            data,
            recipe,
        })
    }

    /// The preset as `GET /v1/presets` shows it.
    pub fn to_json(&self, name: &str) -> Json {
        let mut j = self.recipe.to_json();
        j["name"] = json!(name);
        if let Some(d) = &self.description {
            j["description"] = json!(d);
        }
        if let Some(t) = &self.type_ {
            j["type"] = json!(t);
        }
        if !self.data.is_empty() {
            j["data"] = json!(self.data);
        }
        j
    }
}

impl Policy {
    /// Why `key` must not be stored by `tenant` (`None`: an admin's app), if it must not.
    pub fn forbidden(&self, tenant: &str, key: &str) -> Option<&str> {
        self.forbidden_by_tenant
            .get(tenant)
            .and_then(|m| m.get(key))
            .or_else(|| self.forbidden.get(key))
            .map(String::as_str)
    }

    /// Refuses a secret holding a forbidden key, naming the key and the configured reason.
    pub fn check_keys<'a>(
        &self,
        tenant: &str,
        keys: impl IntoIterator<Item = &'a String>,
    ) -> Result<(), Invalid> {
        for k in keys {
            if let Some(reason) = self.forbidden(tenant, k) {
                return Err(invalid(
                    format!("data.{k}"),
                    format!("this key must not be stored here: {reason}"),
                ));
            }
        }
        Ok(())
    }

    pub fn preset(&self, name: &str) -> Result<&Preset, Invalid> {
        self.presets.get(name).ok_or_else(|| {
            invalid(
                "preset",
                if self.presets.is_empty() {
                    format!("{name:?} is not a preset (the server has none)")
                } else {
                    format!(
                        "{name:?} is not a preset (the presets: {})",
                        self.presets.keys().cloned().collect::<Vec<_>>().join(", ")
                    )
                },
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(v: Json) -> Result<Recipe, Invalid> {
        let mut f = Fields::of("", &v)?;
        let r = Recipe::from_fields(&mut f)?;
        Ok(r)
    }

    #[test]
    fn a_recipe_round_trips_through_its_annotation() {
        let mut r = recipe(json!({
            "generate": {"password": {"kind": "alphanumeric", "length": 32},
                          "signing": {"kind": "rsa", "bits": 2048, "format": "pkcs1", "publicKey": "signing.pub"}},
            "derive": {"url": "postgres://{{ user | urlencode }}:{{ password | urlencode }}@db/app"},
            "validate": {"url": {"url": {"scheme": "postgres"}}}
        }))
        .unwrap();
        r.preset = Some("postgres".into());
        r.previous.insert("password".into());
        let text = r.annotation().unwrap();
        assert!(!text.contains('\n'));
        assert_eq!(Recipe::from_annotation(&text).unwrap(), r);
        assert_eq!(r.kind_of("signing.pub"), KeyKind::Generated);
        assert_eq!(r.kind_of("password.previous"), KeyKind::Generated);
        assert_eq!(r.kind_of("url"), KeyKind::Derived);
        assert_eq!(r.kind_of("user"), KeyKind::Set);
        assert_eq!(Recipe::default().annotation(), None);
    }

    #[test]
    fn rules_that_disagree_are_refused_by_field() {
        let e = recipe(json!({
            "generate": {"k": {"kind": "hex", "length": 8}},
            "derive": {"k": "{{ a }}"}
        }))
        .unwrap_err();
        assert_eq!(e.field, "derive.k");
        let e = recipe(json!({
            "generate": {"tls.crt": {"kind": "self-signed-tls", "commonName": "a"},
                         "tls.key": {"kind": "hex", "length": 8}}
        }))
        .unwrap_err();
        assert!(e.reason.contains("tls.key"), "{e}");
        let e = recipe(json!({"derive": {"k": "{{ a "}})).unwrap_err();
        assert_eq!(e.field, "derive.k");
        let e = recipe(json!({"generate": []})).unwrap_err();
        assert_eq!(e.field, "generate");
    }

    #[test]
    fn a_patch_sets_and_drops_rules() {
        let r = recipe(json!({"generate": {"a": {"kind": "uuid"}}, "derive": {"b": "{{ a }}"}}))
            .unwrap();
        let v = json!({"generate": {"a": null, "c": {"kind": "hex", "length": 4}}, "derive": {"b": null}});
        let mut f = Fields::of("", &v).unwrap();
        let p = RecipePatch::from_fields(&mut f).unwrap();
        let next = r.patched(&p).unwrap();
        assert_eq!(next.generate.keys().collect::<Vec<_>>(), ["c"]);
        assert!(next.derive.is_empty());
    }

    #[test]
    fn forbidden_keys_name_their_reason_and_tenants_add_their_own() {
        let mut p = Policy::default();
        p.forbidden.insert(
            "RAILS_MASTER_KEY".into(),
            "it decrypts every credential".into(),
        );
        p.forbidden_by_tenant
            .entry("acme".into())
            .or_default()
            .insert(
                "AWS_SECRET_ACCESS_KEY".into(),
                "use workload identity".into(),
            );
        let keys = ["RAILS_MASTER_KEY".to_string()];
        let e = p.check_keys("other", &keys).unwrap_err();
        assert_eq!(e.field, "data.RAILS_MASTER_KEY");
        assert!(e.reason.contains("it decrypts every credential"));
        let aws = ["AWS_SECRET_ACCESS_KEY".to_string()];
        assert!(p.check_keys("other", &aws).is_ok());
        assert!(p.check_keys("acme", &aws).is_err());
        assert!(p.preset("nope").unwrap_err().reason.contains("has none"));
    }

    #[test]
    fn a_preset_needs_something_and_names_its_fields() {
        let e = Preset::from_json("presets.pg", &json!({})).unwrap_err();
        assert_eq!(e.field, "presets.pg");
        let e = Preset::from_json(
            "presets.pg",
            &json!({"generate": {"password": {"kind": "alphanumeric"}}}),
        )
        .unwrap_err();
        assert_eq!(e.field, "presets.pg.generate.password.length");
        let p = Preset::from_json(
            "presets.pg",
            &json!({"data": {"port": "5432"}, "generate": {"password": {"kind": "alphanumeric", "length": 24}}}),
        )
        .unwrap();
        assert_eq!(p.to_json("pg")["data"]["port"], "5432");
    }
}
