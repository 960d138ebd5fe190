//! A small validator for Kubernetes structural schemas (a CRD's `openAPIV3Schema`), enough for
//! the Flux CRDs in `../shared/flux-crds/`: types (with `format: int32/int64/date-time`),
//! `properties` with unknown fields refused, `additionalProperties`, `required`, `items`, `enum`,
//! `pattern` (Go RE2, which the regex crate reads), min/max length, `minimum`/`maximum`, and
//! `x-kubernetes-preserve-unknown-fields`. `x-kubernetes-validations` (CEL) rules are not
//! evaluated: they are collected, so a test can check by hand the few its objects reach.
#![allow(dead_code)]

use std::path::Path;

use sops::{Map, Value};

/// The schema of one CRD version, with its group/kind.
pub struct Crd {
    pub api_version: String,
    pub kind: String,
    pub schema: Value,
}

/// Loads every served version of the CRD in `path`.
pub fn load(path: &Path) -> Vec<Crd> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let docs = sops::store::yaml::parse(&bytes).unwrap();
    let mut out = Vec::new();
    for doc in docs {
        let spec = doc.get("spec").and_then(Value::as_map).expect("spec");
        let group = spec.get("group").and_then(Value::as_str).expect("group");
        let kind = spec
            .get("names")
            .and_then(Value::as_map)
            .and_then(|n| n.get("kind"))
            .and_then(Value::as_str)
            .expect("kind");
        let Some(Value::Seq(versions)) = spec.get("versions") else {
            panic!("versions")
        };
        for v in versions {
            let v = v.as_map().expect("version");
            if v.get("served") != Some(&Value::Bool(true)) {
                continue;
            }
            let name = v.get("name").and_then(Value::as_str).expect("name");
            let schema = v
                .get("schema")
                .and_then(Value::as_map)
                .and_then(|s| s.get("openAPIV3Schema"))
                .expect("openAPIV3Schema")
                .clone();
            out.push(Crd {
                api_version: format!("{group}/{name}"),
                kind: kind.to_string(),
                schema,
            });
        }
    }
    out
}

/// What validating one object found.
#[derive(Default, Debug)]
pub struct Report {
    pub errors: Vec<String>,
    /// `path: rule` of every CEL rule on a node the object has.
    pub cel_rules: Vec<String>,
}

/// Validates `obj` against `schema`. The root `metadata` is checked as Kubernetes does for it
/// (the schema only says `type: object`): name and namespace present and DNS-1123 labels.
pub fn validate(schema: &Value, obj: &Map) -> Report {
    validate_scoped(schema, obj, true)
}

/// [`validate`], for a namespaced kind or a cluster-scoped one (no `metadata.namespace`).
pub fn validate_scoped(schema: &Value, obj: &Map, namespaced: bool) -> Report {
    let mut r = Report::default();
    // The API server knows these three on every kind, whether the schema names them or not.
    let props = schema
        .as_map()
        .and_then(|m| m.get("properties"))
        .and_then(Value::as_map);
    let mut checked = obj.clone();
    for implicit in ["apiVersion", "kind", "metadata"] {
        if props.is_none_or(|p| p.get(implicit).is_none()) {
            checked.remove(implicit);
        }
    }
    let root = Value::Map(checked);
    node(schema, &root, "", &mut r);
    match obj.get("metadata").and_then(Value::as_map) {
        None => r.errors.push("metadata: required".into()),
        Some(md) => {
            let keys: &[&str] = if namespaced {
                &["name", "namespace"]
            } else {
                &["name"]
            };
            for key in keys.iter().copied() {
                match md.get(key).and_then(Value::as_str) {
                    Some(v) if is_label(v) => {}
                    other => r
                        .errors
                        .push(format!("metadata.{key}: {other:?} is not a DNS-1123 label")),
                }
            }
        }
    }
    r
}

fn is_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn get<'a>(s: &'a Map, k: &str) -> Option<&'a Value> {
    s.get(k)
}

fn node(schema: &Value, v: &Value, path: &str, r: &mut Report) {
    let Some(s) = schema.as_map() else {
        r.errors.push(format!("{path}: schema is not a mapping"));
        return;
    };
    let shown = if path.is_empty() { "(root)" } else { path };
    if let Some(Value::Seq(rules)) = get(s, "x-kubernetes-validations") {
        for rule in rules {
            let text = rule
                .as_map()
                .and_then(|m| m.get("rule"))
                .and_then(Value::as_str)
                .unwrap_or("?");
            r.cel_rules.push(format!("{shown}: {text}"));
        }
    }
    let ty = get(s, "type").and_then(Value::as_str);
    let preserve = get(s, "x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
    match (ty, v) {
        (Some("object"), Value::Map(m)) => object(s, m, path, preserve, r),
        (Some("array"), Value::Seq(items)) => {
            if let Some(item_schema) = get(s, "items") {
                for (i, it) in items.iter().enumerate() {
                    node(item_schema, it, &format!("{path}[{i}]"), r);
                }
            }
            bounds_len(s, items.len(), shown, r, "minItems", "maxItems");
        }
        (Some("string"), Value::Str(text)) => string(s, text, shown, r),
        (Some("integer"), Value::Int(n)) => number(s, *n as f64, shown, r),
        (Some("number"), Value::Int(n)) => number(s, *n as f64, shown, r),
        (Some("number"), Value::Float(f)) => number(s, *f, shown, r),
        (Some("boolean"), Value::Bool(_)) => {}
        (None, _) if preserve => {}
        (Some(t), other) => r
            .errors
            .push(format!("{shown}: expected {t}, got {}", other.type_name())),
        (None, _) => r.errors.push(format!("{shown}: schema without a type")),
    }
    if let Some(Value::Seq(allowed)) = get(s, "enum") {
        if !allowed.contains(v) {
            r.errors
                .push(format!("{shown}: {v:?} is not one of {allowed:?}"));
        }
    }
}

fn object(s: &Map, m: &Map, path: &str, preserve: bool, r: &mut Report) {
    let props = get(s, "properties").and_then(Value::as_map);
    let additional = get(s, "additionalProperties");
    let shown = if path.is_empty() { "(root)" } else { path };
    if let Some(Value::Seq(req)) = get(s, "required") {
        for k in req.iter().filter_map(Value::as_str) {
            if !m.contains_key(k) {
                r.errors
                    .push(format!("{shown}: required field {k:?} is missing"));
            }
        }
    }
    for (k, v) in m.pairs() {
        let child = if path.is_empty() {
            k.to_string()
        } else {
            format!("{path}.{k}")
        };
        if path.is_empty() && k == "metadata" {
            continue; // ObjectMeta: checked in validate()
        }
        if let Some(ps) = props.and_then(|p| p.get(k)) {
            node(ps, v, &child, r);
        } else if let Some(a) = additional.filter(|a| a.as_map().is_some()) {
            node(a, v, &child, r);
        } else if additional == Some(&Value::Bool(true)) || preserve {
        } else {
            r.errors.push(format!("{child}: unknown field"));
        }
    }
}

fn bounds_len(s: &Map, n: usize, shown: &str, r: &mut Report, min: &str, max: &str) {
    if let Some(Value::Int(lo)) = get(s, min) {
        if (n as i64) < *lo {
            r.errors.push(format!("{shown}: shorter than {min} {lo}"));
        }
    }
    if let Some(Value::Int(hi)) = get(s, max) {
        if (n as i64) > *hi {
            r.errors.push(format!("{shown}: longer than {max} {hi}"));
        }
    }
}

fn string(s: &Map, text: &str, shown: &str, r: &mut Report) {
    bounds_len(s, text.chars().count(), shown, r, "minLength", "maxLength");
    if let Some(p) = get(s, "pattern").and_then(Value::as_str) {
        match regex::Regex::new(p) {
            Ok(re) if re.is_match(text) => {}
            Ok(_) => r
                .errors
                .push(format!("{shown}: {text:?} does not match {p}")),
            Err(e) => r
                .errors
                .push(format!("{shown}: pattern {p} does not compile: {e}")),
        }
    }
    if get(s, "format").and_then(Value::as_str) == Some("date-time")
        && sops::scalar::parse_rfc3339(text).is_none()
    {
        r.errors.push(format!("{shown}: {text:?} is not RFC 3339"));
    }
}

fn number(s: &Map, n: f64, shown: &str, r: &mut Report) {
    let lim = |k| match get(s, k) {
        Some(Value::Int(i)) => Some(*i as f64),
        Some(Value::Float(f)) => Some(*f),
        _ => None,
    };
    if lim("minimum").is_some_and(|lo| n < lo) || lim("maximum").is_some_and(|hi| n > hi) {
        r.errors.push(format!("{shown}: {n} out of range"));
    }
    match get(s, "format").and_then(Value::as_str) {
        Some("int32") if n < i32::MIN as f64 || n > i32::MAX as f64 => {
            r.errors.push(format!("{shown}: {n} is not an int32"))
        }
        _ => {}
    }
}
