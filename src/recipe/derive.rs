//! Derived keys: values built from other keys by a minijinja template, such as a connection
//! string from a username, a password and a host. A template reads this secret's keys by name
//! (`{{ password | urlencode }}`) and the app's other secrets through `secrets`
//! (`{{ secrets.wharf.JWT_SECRET }}`, `{{ secrets.db["tls.crt"] }}`).
//!
//! Keys are resolved lazily, each once: a derived key may read another derived key, in the same
//! secret or another, and a cycle is refused naming the keys in it. The caller passes only one
//! app's secrets, so a template cannot reach past its app. Errors name the key and the rule,
//! never a value: minijinja's own messages can quote operands, so only their kind is kept.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use base64::Engine;
use minijinja::value::{Object, Value};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, UndefinedBehavior};
use sha2::Digest;

use crate::fields::{invalid, Invalid};
use crate::model::SecretValue;

/// The longest template a rule may hold.
pub const MAX_TEMPLATE: usize = 4096;

/// The longest value a template may make (a Kubernetes Secret holds 1 MiB in all).
const MAX_OUTPUT: usize = 256 * 1024;

/// Names a template can read that are minijinja's functions, not keys.
const GLOBALS: &[&str] = &["range", "dict", "namespace", "debug"];

fn environment() -> &'static Environment<'static> {
    static ENV: std::sync::OnceLock<Environment<'static>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.set_keep_trailing_newline(true);
        env.add_filter("urlencode", urlencode);
        env.add_filter("b64encode", b64encode);
        env.add_filter("b64decode", b64decode);
        env.add_filter("sha256", sha256);
        env
    })
}

/// Percent-encodes everything but RFC 3986's unreserved characters, so a value is safe in any
/// part of a URL: user, password, path segment or query value.
pub fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn urlencode(v: String) -> String {
    percent_encode(&v)
}

fn b64encode(v: String) -> String {
    base64::engine::general_purpose::STANDARD.encode(v.as_bytes())
}

fn b64decode(v: String) -> Result<String, Error> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(v.trim().as_bytes())
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "b64decode: not base64"))?;
    String::from_utf8(bytes)
        .map_err(|_| Error::new(ErrorKind::InvalidOperation, "b64decode: not text"))
}

fn sha256(v: String) -> String {
    hex::encode(sha2::Sha256::digest(v.as_bytes()))
}

/// Whether `template` compiles; the reason names the line and the syntax problem (a template
/// is a rule, kept in the clear, so its own text may be quoted).
pub fn parse(template: &str) -> Result<(), String> {
    environment()
        .template_from_str(template)
        .map(|_| ())
        .map_err(|e| {
            let mut s = format!("is not a valid template: {}", e.kind());
            if let Some(d) = e.detail() {
                s.push_str(&format!(" ({d})"));
            }
            if let Some(line) = e.line() {
                s.push_str(&format!(" on line {line}"));
            }
            s
        })
}

/// One secret's part in a derivation: its rules and its values so far (set and generated keys;
/// derived keys are made here).
#[derive(Default)]
pub struct Input {
    pub derive: BTreeMap<String, String>,
    pub values: BTreeMap<String, SecretValue>,
}

/// A derivation that failed, in the secret whose rule failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failed {
    pub secret: String,
    pub error: Invalid,
}

type Slot = (String, String);

/// The derivation's state, shared with the objects a template reads through (minijinja's
/// objects are `'static`, so the state is owned).
struct Deriving {
    inputs: BTreeMap<String, Input>,
    memo: Mutex<Memo>,
}

#[derive(Default)]
struct Memo {
    done: BTreeMap<Slot, Arc<str>>,
    /// The keys being rendered, outermost first: reading one of them again is a cycle.
    stack: Vec<Slot>,
    /// The first problem a lookup met: minijinja itself only sees an undefined value.
    failed: Option<Failed>,
}

/// Every derived key of every input, as `(secret, key) → value`.
pub fn derive_all(inputs: BTreeMap<String, Input>) -> Result<BTreeMap<Slot, SecretValue>, Failed> {
    let d = Arc::new(Deriving {
        inputs,
        memo: Mutex::default(),
    });
    let mut out = BTreeMap::new();
    for (secret, input) in &d.inputs {
        for key in input.derive.keys() {
            let v = resolve(&d, secret, key)?;
            out.insert(
                (secret.clone(), key.clone()),
                SecretValue::new(v.as_bytes().to_vec()),
            );
        }
    }
    Ok(out)
}

fn fail(secret: &str, field: String, reason: impl Into<String>) -> Failed {
    Failed {
        secret: secret.to_owned(),
        error: invalid(field, reason),
    }
}

fn lock(d: &Deriving) -> std::sync::MutexGuard<'_, Memo> {
    d.memo.lock().unwrap_or_else(|p| p.into_inner())
}

/// The value of `secret`'s `key`: set or generated as given, or derived (once) from its rule.
fn resolve(d: &Arc<Deriving>, secret: &str, key: &str) -> Result<Arc<str>, Failed> {
    let slot = (secret.to_owned(), key.to_owned());
    let input = &d.inputs[secret];
    let Some(template) = input.derive.get(key) else {
        // The rule that reads it answers for it.
        let reader = || {
            lock(d)
                .stack
                .last()
                .cloned()
                .unwrap_or_else(|| slot.clone())
        };
        let Some(v) = input.values.get(key) else {
            let (s, k) = reader();
            return Err(fail(
                &s,
                format!("derive.{k}"),
                format!("reads the key {key:?}, which secret {secret:?} does not have"),
            ));
        };
        return std::str::from_utf8(v.expose()).map(Arc::from).map_err(|_| {
            let (s, k) = reader();
            fail(
                &s,
                format!("derive.{k}"),
                format!("reads the key {key:?}, which is not text"),
            )
        });
    };
    {
        let mut m = lock(d);
        if let Some(v) = m.done.get(&slot) {
            return Ok(v.clone());
        }
        if let Some(at) = m.stack.iter().position(|s| *s == slot) {
            let cycle: Vec<String> = m.stack[at..]
                .iter()
                .chain(std::iter::once(&slot))
                .map(|(s, k)| {
                    if s == secret {
                        k.clone()
                    } else {
                        format!("secrets.{s}.{k}")
                    }
                })
                .collect();
            return Err(fail(
                secret,
                format!("derive.{key}"),
                format!("is part of a cycle: {}", cycle.join(" → ")),
            ));
        }
        m.stack.push(slot.clone());
    }
    let ctx = Value::from_object(Keys {
        d: d.clone(),
        secret: secret.to_owned(),
        top: true,
    });
    let rendered = environment()
        .template_from_str(template)
        .and_then(|t| t.render(ctx));
    let mut m = lock(d);
    m.stack.pop();
    if let Some(f) = m.failed.take() {
        return Err(f);
    }
    let v = rendered.map_err(|e| {
        // Only the kind and the line: the detail of a failed operation can quote a value.
        let mut reason = format!("could not be rendered: {}", e.kind());
        if let Some(line) = e.line() {
            reason.push_str(&format!(" on line {line}"));
        }
        fail(secret, format!("derive.{key}"), reason)
    })?;
    if v.len() > MAX_OUTPUT {
        return Err(fail(
            secret,
            format!("derive.{key}"),
            format!("makes a value over {MAX_OUTPUT} bytes"),
        ));
    }
    let v: Arc<str> = Arc::from(v);
    m.done.insert(slot, v.clone());
    Ok(v)
}

/// What a template reads: one secret's keys, and (at the top) `secrets`.
#[derive(Debug)]
struct Keys {
    d: Arc<Deriving>,
    secret: String,
    top: bool,
}

/// `secrets`: the app's secrets by name.
#[derive(Debug)]
struct Secrets {
    d: Arc<Deriving>,
}

impl std::fmt::Debug for Deriving {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deriving")
    }
}

impl Keys {
    fn reader(&self) -> Slot {
        lock(&self.d).stack.last().cloned().unwrap_or_default()
    }

    fn note(&self, f: Failed) {
        lock(&self.d).failed.get_or_insert(f);
    }
}

impl Object for Keys {
    fn get_value(self: &Arc<Self>, name: &Value) -> Option<Value> {
        let name = name.as_str()?;
        if self.top && name == "secrets" {
            return Some(Value::from_object(Secrets { d: self.d.clone() }));
        }
        let input = &self.d.inputs[&self.secret];
        if !input.values.contains_key(name) && !input.derive.contains_key(name) {
            if self.top && GLOBALS.contains(&name) {
                return None;
            }
            let (s, k) = self.reader();
            let what = if self.top {
                format!("reads the key {name:?}, which this secret does not have")
            } else {
                format!(
                    "reads the key {name:?} of secret {:?}, which it does not have",
                    self.secret
                )
            };
            self.note(fail(&s, format!("derive.{k}"), what));
            return None;
        }
        match resolve(&self.d, &self.secret, name) {
            Ok(v) => Some(Value::from(&*v)),
            Err(f) => {
                self.note(f);
                None
            }
        }
    }
}

impl Object for Secrets {
    fn get_value(self: &Arc<Self>, name: &Value) -> Option<Value> {
        let name = name.as_str()?;
        if self.d.inputs.contains_key(name) {
            return Some(Value::from_object(Keys {
                d: self.d.clone(),
                secret: name.to_owned(),
                top: false,
            }));
        }
        let (s, k) = lock(&self.d).stack.last().cloned().unwrap_or_default();
        let f = fail(
            &s,
            format!("derive.{k}"),
            format!("reads secrets.{name}, but the app has no secret {name:?}"),
        );
        lock(&self.d).failed.get_or_insert(f);
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(derive: &[(&str, &str)], values: &[(&str, &str)]) -> Input {
        Input {
            derive: derive
                .iter()
                .map(|(k, t)| (k.to_string(), t.to_string()))
                .collect(),
            values: values
                .iter()
                .map(|(k, v)| (k.to_string(), SecretValue::new(v.as_bytes().to_vec())))
                .collect(),
        }
    }

    fn text(out: &BTreeMap<Slot, SecretValue>, s: &str, k: &str) -> String {
        String::from_utf8(out[&(s.to_string(), k.to_string())].expose().to_vec()).unwrap()
    }

    #[test]
    fn a_connection_string_is_built_and_encoded() {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "db".to_string(),
            input(
                &[(
                    "DATABASE_URL",
                    "postgres://{{ username | urlencode }}:{{ password | urlencode }}@{{ host }}:{{ port }}/{{ database }}",
                )],
                &[
                    ("username", "app user"),
                    ("password", "p@ss:w/rd?#%é"),
                    ("host", "db.internal"),
                    ("port", "5432"),
                    ("database", "crewai"),
                ],
            ),
        );
        let out = derive_all(inputs).unwrap();
        assert_eq!(
            text(&out, "db", "DATABASE_URL"),
            "postgres://app%20user:p%40ss%3Aw%2Frd%3F%23%25%C3%A9@db.internal:5432/crewai"
        );
    }

    #[test]
    fn keys_chain_across_secrets_and_filters_apply() {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "wharf".to_string(),
            input(
                &[("shared", "{{ JWT_SECRET | sha256 }}")],
                &[("JWT_SECRET", "s3")],
            ),
        );
        inputs.insert(
            "api".to_string(),
            input(
                &[
                    ("jwt", "{{ secrets.wharf.shared }}"),
                    ("b64", "{{ jwt | b64encode }}"),
                    ("back", "{{ b64 | b64decode }}"),
                    ("crt", "{{ secrets.wharf[\"JWT_SECRET\"] }}"),
                ],
                &[],
            ),
        );
        let out = derive_all(inputs).unwrap();
        let h = text(&out, "wharf", "shared");
        assert_eq!(h.len(), 64);
        assert_eq!(text(&out, "api", "jwt"), h);
        assert_eq!(text(&out, "api", "back"), h);
        assert_eq!(text(&out, "api", "crt"), "s3");
    }

    #[test]
    fn cycles_are_refused_naming_the_keys() {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "a".to_string(),
            input(&[("x", "{{ y }}"), ("y", "{{ secrets.b.z }}")], &[]),
        );
        inputs.insert("b".to_string(), input(&[("z", "{{ secrets.a.x }}")], &[]));
        let f = derive_all(inputs).unwrap_err();
        assert_eq!(f.error.field, "derive.x");
        assert!(f.error.reason.contains("cycle"), "{}", f.error.reason);
        assert!(f.error.reason.contains("secrets.b.z"), "{}", f.error.reason);
        let mut inputs = BTreeMap::new();
        inputs.insert("a".to_string(), input(&[("x", "{{ x }}")], &[]));
        assert!(derive_all(inputs)
            .unwrap_err()
            .error
            .reason
            .contains("x → x"));
    }

    #[test]
    fn unknown_names_are_refused_naming_the_rule_and_never_a_value() {
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "a".to_string(),
            input(
                &[("url", "{{ password }}@{{ hots }}")],
                &[("password", "hunter2")],
            ),
        );
        let f = derive_all(inputs).unwrap_err();
        assert_eq!(
            (f.secret.as_str(), f.error.field.as_str()),
            ("a", "derive.url")
        );
        assert!(f.error.reason.contains("\"hots\""), "{}", f.error.reason);
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "a".to_string(),
            input(&[("u", "{{ secrets.nope.k }}")], &[]),
        );
        let f = derive_all(inputs).unwrap_err();
        assert!(
            f.error.reason.contains("no secret \"nope\""),
            "{}",
            f.error.reason
        );
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "a".to_string(),
            input(
                &[("u", "{{ password | b64decode }}")],
                &[("password", "hunter2")],
            ),
        );
        let f = derive_all(inputs).unwrap_err();
        assert!(!format!("{f:?}").contains("hunter2"));
        let mut inputs = BTreeMap::new();
        inputs.insert(
            "a".to_string(),
            input(&[("u", "{{ password + 1 }}")], &[("password", "hunter2")]),
        );
        let f = derive_all(inputs).unwrap_err();
        assert!(!format!("{f:?}").contains("hunter2"), "{f:?}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        assert!(parse("{{ a | urlencode }}").is_ok());
        let e = parse("ok\n{{ a ").unwrap_err();
        assert!(e.contains("line 2"), "{e}");
    }

    proptest::proptest! {
        /// Any user and password, `@:/?#%` and unicode included, come back out of a derived
        /// connection string parsed by a standard URL parser.
        #[test]
        fn a_derived_url_round_trips_any_credentials(
            user in r"[\PC@:/?#%\[\] ]{1,24}",
            password in r"\PC{0,32}",
        ) {
            let mut inputs = BTreeMap::new();
            inputs.insert(
                "db".to_string(),
                input(
                    &[("URL", "postgres://{{ user | urlencode }}:{{ password | urlencode }}@db.internal:5432/app")],
                    &[("user", &user), ("password", &password)],
                ),
            );
            let out = derive_all(inputs).unwrap();
            let url = url::Url::parse(&text(&out, "db", "URL")).unwrap();
            // The parser keeps userinfo percent-encoded; decoding it gives the original back.
            let decode = |s: &str| {
                percent_encoding::percent_decode_str(s).decode_utf8().unwrap().into_owned()
            };
            proptest::prop_assert_eq!(decode(url.username()), user);
            proptest::prop_assert_eq!(decode(url.password().unwrap_or("")), password);
            proptest::prop_assert_eq!(url.host_str(), Some("db.internal"));
            proptest::prop_assert_eq!(url.path(), "/app");
        }
    }

    #[test]
    fn only_unreserved_characters_survive_encoding() {
        assert_eq!(percent_encode("aZ09-._~ /@:"), "aZ09-._~%20%2F%40%3A");
    }
}
