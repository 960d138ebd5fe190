//! External secrets: provider credentials (an `OPENAI_API_KEY`, a `STRIPE_KEY`) that a tenant
//! keeps once for all of its apps and that an app may override, merged into one Secret per app,
//! `app-<app>-external-secrets`, which the app's pods read with `envFrom`.
//!
//! This module owns the pure parts: the body of a `PUT` (`{key: value}`), the sealed file one
//! provider's keys are stored in (SOPS-encrypted to sealwright's operator key; the key names stay
//! readable, so listing them needs no key), and the resolution: for each (provider, key) the
//! app's value wins over the tenant's. The reconciler stores them, fans a tenant's change out to
//! its apps and commits the merged Secret (`reconcile::external`).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::keys::AgeKey;
use crate::model::SecretValue;
use crate::names::{validate_data_key, validate_label};
use crate::spec::{invalid, Invalid, MAX_SECRET_BYTES};
use sops::document::{EmitOptions, Format};
use sops::scalar::DateTime;
use sops::{Map, Value};

/// Where an effective key comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Origin {
    /// The tenant's default.
    Tenant,
    /// The app's override.
    App,
}

impl Origin {
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Tenant => "tenant",
            Origin::App => "app",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ExternalError {
    #[error("{path}: {reason}")]
    Stored { path: String, reason: String },
    #[error("{0}")]
    Sops(String),
}

/// The Secret an app's external secrets are materialised as, in each of its namespaces.
pub fn secret_name(app: &str) -> String {
    format!("app-{app}-external-secrets")
}

/// Whether `name` is the external-secrets Secret of some app (a name longer than a DNS label
/// when the app name is long, so it is recognised by its shape).
pub fn is_secret_name(name: &str) -> bool {
    name.strip_prefix("app-")
        .and_then(|r| r.strip_suffix("-external-secrets"))
        .is_some_and(|app| validate_label("app", app).is_ok())
}

/// A provider name: a DNS label (`openai`, `stripe`), since it names a file.
pub fn check_provider(provider: &str) -> Result<(), Invalid> {
    Ok(validate_label("provider", provider)?)
}

/// The body of a `PUT`: `{key: "value", ...}`, at least one key, each a Secret data key, each
/// value a string, all of them within a Secret's 1 MiB. Errors name the key, never the value.
pub fn parse_body(v: &Json) -> Result<BTreeMap<String, SecretValue>, Invalid> {
    let Json::Object(map) = v else {
        return Err(invalid(
            "body",
            "must be an object of keys and their string values, like {\"OPENAI_API_KEY\": \"...\"}",
        ));
    };
    if map.is_empty() {
        return Err(invalid(
            "body",
            "needs at least one key (DELETE removes the provider)",
        ));
    }
    let mut out = BTreeMap::new();
    let mut size = 0;
    for (k, v) in map {
        validate_data_key(k, k)?;
        let Json::String(s) = v else {
            return Err(invalid(
                k.clone(),
                format!("must be a string, not {}", crate::spec::kind(v)),
            ));
        };
        size += k.len() + s.len();
        out.insert(k.clone(), SecretValue::new(s.as_bytes().to_vec()));
    }
    if size > MAX_SECRET_BYTES {
        return Err(invalid(
            "body",
            format!("holds {size} bytes; a Secret holds at most {MAX_SECRET_BYTES}"),
        ));
    }
    Ok(out)
}

/// One provider's keys as stored: the SOPS file (values encrypted to the operator key) and its
/// key names, which the file keeps in clear.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub bytes: Arc<[u8]>,
    pub keys: Vec<String>,
    /// The age recipients it is encrypted to (the operator's), read from its metadata.
    pub recipients: Vec<String>,
}

impl Sealed {
    /// Encrypts one provider's keys for the state repo, to the operator recipient only.
    pub fn seal(
        origin: Origin,
        owner: &str,
        provider: &str,
        data: &BTreeMap<String, SecretValue>,
        operator: &str,
        now: DateTime,
    ) -> Result<Sealed, ExternalError> {
        let sops = |e: sops::SopsError| ExternalError::Sops(e.to_string());
        let mut values = Map::new();
        for (k, v) in data {
            let text = std::str::from_utf8(v.expose())
                .map_err(|_| ExternalError::Sops(format!("{k}: the value is not UTF-8")))?;
            values.insert(k.clone(), Value::str(text));
        }
        let branch = Map::from_pairs([
            (origin.as_str(), Value::str(owner)),
            ("provider", Value::str(provider)),
            ("data", Value::Map(values)),
        ]);
        let opts = EmitOptions {
            yaml_indent: 2,
            json_indent: None,
        };
        let bytes =
            sops::encrypt_yaml_to(vec![branch], operator, "^data$", now, opts).map_err(sops)?;
        Ok(Sealed {
            bytes: bytes.into(),
            keys: data.keys().cloned().collect(),
            recipients: vec![operator.to_owned()],
        })
    }

    /// A stored file, read without decrypting: it must be ours for `origin` `owner` and
    /// `provider` (the path it was found at), and list its key names.
    pub fn from_stored(
        path: &str,
        bytes: &[u8],
        origin: Origin,
        owner: &str,
        provider: &str,
    ) -> Result<Sealed, ExternalError> {
        let bad = |reason: String| ExternalError::Stored {
            path: path.to_owned(),
            reason,
        };
        let doc = Format::Yaml
            .parse_encrypted(bytes)
            .map_err(|e| bad(e.to_string()))?;
        let [branch] = doc.branches.as_slice() else {
            return Err(bad("must hold exactly one YAML document".into()));
        };
        let field = |name: &str| branch.get(name).and_then(Value::as_str);
        if field(origin.as_str()) != Some(owner) || field("provider") != Some(provider) {
            return Err(bad(format!(
                "must name {} {owner:?} and provider {provider:?}, as its path does",
                origin.as_str()
            )));
        }
        let data = branch
            .get("data")
            .and_then(Value::as_map)
            .ok_or_else(|| bad("has no data mapping".into()))?;
        let keys: Vec<String> = data.pairs().map(|(k, _)| k.to_owned()).collect();
        if keys.is_empty() {
            return Err(bad("holds no key".into()));
        }
        Ok(Sealed {
            bytes: Arc::from(bytes),
            keys,
            recipients: doc.metadata.recipients().concat(),
        })
    }

    /// The values, decrypted with the operator key (the MAC is checked).
    pub fn open(&self, operator: &AgeKey) -> Result<BTreeMap<String, SecretValue>, ExternalError> {
        let sops = |e: sops::SopsError| ExternalError::Sops(e.to_string());
        let doc = Format::Yaml.parse_encrypted(&self.bytes).map_err(sops)?;
        let plain = sops::decrypt(&doc, &operator.identities(), true).map_err(sops)?;
        let data = plain
            .branches
            .first()
            .and_then(|b| b.get("data"))
            .and_then(Value::as_map)
            .ok_or_else(|| ExternalError::Sops("the file has no data mapping".into()))?;
        let mut out = BTreeMap::new();
        for (k, v) in data.pairs() {
            let text = v
                .as_str()
                .ok_or_else(|| ExternalError::Sops(format!("{k}: the value is not a string")))?;
            out.insert(k.to_owned(), SecretValue::new(text.as_bytes().to_vec()));
        }
        Ok(out)
    }
}

/// A provider's keys by provider name, at one level.
pub type Layer<T> = BTreeMap<String, T>;

/// One effective key: where its value comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Effective {
    pub key: String,
    pub provider: String,
    pub origin: Origin,
}

/// Two providers that would both set one key of the merged Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Clash {
    pub key: String,
    /// The one that wins (an app's override before a tenant's default, then provider order).
    pub kept: Effective,
    pub shadowed: Effective,
}

/// The effective keys of an app from the key names of both levels: for each (provider, key) the
/// app's wins. Two providers setting one key is a clash (refused on write; should stored state
/// hold one anyway, the app's override, then the first provider by name, wins and the clash is
/// reported).
pub fn effective(
    tenant: &Layer<Vec<String>>,
    app: &Layer<Vec<String>>,
) -> (Vec<Effective>, Vec<Clash>) {
    let mut all: Vec<Effective> = Vec::new();
    let providers: BTreeSet<&String> = tenant.keys().chain(app.keys()).collect();
    for p in providers {
        let own: BTreeSet<&String> = app.get(p).into_iter().flatten().collect();
        let keys: BTreeSet<&String> = tenant
            .get(p)
            .into_iter()
            .flatten()
            .chain(own.iter().copied())
            .collect();
        for k in keys {
            all.push(Effective {
                key: k.clone(),
                provider: p.clone(),
                origin: if own.contains(k) {
                    Origin::App
                } else {
                    Origin::Tenant
                },
            });
        }
    }
    // The app's overrides first, then provider order: the first of a key wins.
    all.sort_by(|a, b| {
        b.origin
            .cmp(&a.origin)
            .then_with(|| a.provider.cmp(&b.provider))
            .then_with(|| a.key.cmp(&b.key))
    });
    let mut seen: BTreeMap<String, Effective> = BTreeMap::new();
    let mut clashes = Vec::new();
    for e in all {
        match seen.get(&e.key) {
            Some(kept) => clashes.push(Clash {
                key: e.key.clone(),
                kept: kept.clone(),
                shadowed: e,
            }),
            None => {
                seen.insert(e.key.clone(), e);
            }
        }
    }
    (seen.into_values().collect(), clashes)
}

/// The merged Secret of an app: its data (key order) and where each key comes from.
pub struct Resolved {
    pub data: Vec<(String, SecretValue)>,
    pub origins: Vec<Effective>,
    pub clashes: Vec<Clash>,
}

impl Resolved {
    /// The origins annotation: `{"KEY": "tenant/openai", ...}`, key names and origins only.
    pub fn origins_json(&self) -> String {
        let m: BTreeMap<&str, String> = self
            .origins
            .iter()
            .map(|e| {
                (
                    e.key.as_str(),
                    format!("{}/{}", e.origin.as_str(), e.provider),
                )
            })
            .collect();
        serde_json::to_string(&m).unwrap_or_default()
    }
}

/// Merges the decrypted values of both levels (see [`effective`]).
pub fn resolve(
    tenant: &Layer<BTreeMap<String, SecretValue>>,
    app: &Layer<BTreeMap<String, SecretValue>>,
) -> Resolved {
    let names = |l: &Layer<BTreeMap<String, SecretValue>>| -> Layer<Vec<String>> {
        l.iter()
            .map(|(p, m)| (p.clone(), m.keys().cloned().collect()))
            .collect()
    };
    let (origins, clashes) = effective(&names(tenant), &names(app));
    let data = origins
        .iter()
        .filter_map(|e| {
            let level = match e.origin {
                Origin::Tenant => tenant,
                Origin::App => app,
            };
            level
                .get(&e.provider)
                .and_then(|m| m.get(&e.key))
                .map(|v| (e.key.clone(), v.clone()))
        })
        .collect();
    Resolved {
        data,
        origins,
        clashes,
    }
}

/// What the merged Secret is rendered from, as a digest of the sealed files (never of values):
/// equal digests render equal Secrets, so a round can tell the repo is current without
/// decrypting anything. The tenant is in it because the Secret names it.
pub fn fingerprint(tenant: &str, t: &Layer<Sealed>, a: &Layer<Sealed>) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    let mut h = Sha256::new();
    h.update(tenant.as_bytes());
    for (origin, layer) in [(Origin::Tenant, t), (Origin::App, a)] {
        for (p, s) in layer {
            h.update([0, origin as u8]);
            h.update(p.as_bytes());
            h.update((s.bytes.len() as u64).to_be_bytes());
            h.update(&s.bytes);
        }
    }
    h.finalize().into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn names(pairs: &[(&str, &[&str])]) -> Layer<Vec<String>> {
        pairs
            .iter()
            .map(|(p, ks)| (p.to_string(), ks.iter().map(|k| k.to_string()).collect()))
            .collect()
    }

    fn values(pairs: &[(&str, &[(&str, &str)])]) -> Layer<BTreeMap<String, SecretValue>> {
        pairs
            .iter()
            .map(|(p, kvs)| {
                (
                    p.to_string(),
                    kvs.iter()
                        .map(|(k, v)| (k.to_string(), SecretValue::new(v.as_bytes().to_vec())))
                        .collect(),
                )
            })
            .collect()
    }

    type Row<'a> = (
        &'a str,
        &'a [(&'a str, &'a [(&'a str, &'a str)])],
        &'a [(&'a str, &'a [(&'a str, &'a str)])],
        &'a [(&'a str, &'a str, &'a str)],
    );

    /// Each row: tenant layer, app layer, and the merged Secret as (key, value, origin).
    #[test]
    fn the_app_wins_per_provider_and_key() {
        let rows: &[Row] = &[
            ("nothing", &[], &[], &[]),
            (
                "tenant only",
                &[("openai", &[("OPENAI_API_KEY", "t1")])],
                &[],
                &[("OPENAI_API_KEY", "t1", "tenant/openai")],
            ),
            (
                "app only",
                &[],
                &[("stripe", &[("STRIPE_KEY", "a1")])],
                &[("STRIPE_KEY", "a1", "app/stripe")],
            ),
            (
                "an override of one key keeps the provider's other keys",
                &[("openai", &[("OPENAI_API_KEY", "t1"), ("OPENAI_ORG", "t2")])],
                &[("openai", &[("OPENAI_API_KEY", "a1")])],
                &[
                    ("OPENAI_API_KEY", "a1", "app/openai"),
                    ("OPENAI_ORG", "t2", "tenant/openai"),
                ],
            ),
            (
                "an app key the tenant lacks is added",
                &[("openai", &[("OPENAI_API_KEY", "t1")])],
                &[("openai", &[("OPENAI_BASE_URL", "a2")])],
                &[
                    ("OPENAI_API_KEY", "t1", "tenant/openai"),
                    ("OPENAI_BASE_URL", "a2", "app/openai"),
                ],
            ),
            (
                "providers merge side by side",
                &[
                    ("openai", &[("OPENAI_API_KEY", "t1")]),
                    ("stripe", &[("STRIPE_KEY", "t3")]),
                ],
                &[("stripe", &[("STRIPE_KEY", "a3")])],
                &[
                    ("OPENAI_API_KEY", "t1", "tenant/openai"),
                    ("STRIPE_KEY", "a3", "app/stripe"),
                ],
            ),
            (
                "a clash across providers: the app's override, then provider order",
                &[("a-first", &[("K", "t-a")]), ("b-second", &[("K", "t-b")])],
                &[("c-third", &[("K", "a-c")])],
                &[("K", "a-c", "app/c-third")],
            ),
            (
                "a tenant-only clash: the first provider by name",
                &[("a-first", &[("K", "t-a")]), ("b-second", &[("K", "t-b")])],
                &[],
                &[("K", "t-a", "tenant/a-first")],
            ),
        ];
        for (what, tenant, app, want) in rows {
            let r = resolve(&values(tenant), &values(app));
            let got: Vec<(String, String, String)> = r
                .data
                .iter()
                .zip(&r.origins)
                .map(|((k, v), e)| {
                    assert_eq!(k, &e.key, "{what}");
                    (
                        k.clone(),
                        String::from_utf8(v.expose().to_vec()).unwrap(),
                        format!("{}/{}", e.origin.as_str(), e.provider),
                    )
                })
                .collect();
            let want: Vec<(String, String, String)> = want
                .iter()
                .map(|(k, v, o)| (k.to_string(), v.to_string(), o.to_string()))
                .collect();
            assert_eq!(got, want, "{what}");
        }
    }

    #[test]
    fn clashes_are_reported_with_the_winner() {
        let (eff, clashes) = effective(
            &names(&[("openai", &["K"]), ("stripe", &["K", "S"])]),
            &names(&[]),
        );
        assert_eq!(eff.len(), 2);
        assert_eq!(clashes.len(), 1);
        assert_eq!(clashes[0].kept.provider, "openai");
        assert_eq!(clashes[0].shadowed.provider, "stripe");
        let (_, none) = effective(&names(&[("openai", &["K"])]), &names(&[("openai", &["K"])]));
        assert!(none.is_empty(), "an override is not a clash");
    }

    #[test]
    fn the_origins_annotation_holds_names_only() {
        let r = resolve(
            &values(&[("openai", &[("OPENAI_API_KEY", "sk-value-1")])]),
            &values(&[("stripe", &[("STRIPE_KEY", "rk-value-2")])]),
        );
        let a = r.origins_json();
        assert_eq!(
            a,
            r#"{"OPENAI_API_KEY":"tenant/openai","STRIPE_KEY":"app/stripe"}"#
        );
    }

    #[test]
    fn bodies_are_checked_naming_the_key_never_the_value() {
        let ok = parse_body(&json!({"OPENAI_API_KEY": "sk-1", "A.b-c_d": ""})).unwrap();
        assert_eq!(ok.len(), 2);
        for (body, field) in [
            (json!([]), "body"),
            (json!({}), "body"),
            (json!({"bad key": "x"}), "bad key"),
            (json!({"K": 42}), "K"),
            (json!({"..": "x"}), ".."),
        ] {
            assert_eq!(parse_body(&body).err().unwrap().field, field, "{body}");
        }
        let e = parse_body(&json!({"K": ["sk-secret-value"]}))
            .err()
            .unwrap();
        assert!(!e.to_string().contains("sk-secret-value"), "{e}");
        let big = "x".repeat(MAX_SECRET_BYTES);
        assert_eq!(parse_body(&json!({"K": big})).err().unwrap().field, "body");
    }

    #[test]
    fn sealed_files_keep_names_readable_and_values_encrypted_to_the_operator_only() {
        let operator = AgeKey::generate();
        let data = values(&[(
            "openai",
            &[("OPENAI_API_KEY", "sk-sealed-77"), ("ORG", "o")],
        )])
        .remove("openai")
        .unwrap();
        let s = Sealed::seal(
            Origin::Tenant,
            "acme",
            "openai",
            &data,
            &operator.recipient(),
            DateTime::from_unix(2_000_000_000),
        )
        .unwrap();
        let text = std::str::from_utf8(&s.bytes).unwrap();
        assert!(!text.contains("sk-sealed-77"), "{text}");
        assert!(
            text.contains("tenant: acme") && text.contains("OPENAI_API_KEY"),
            "{text}"
        );
        let back = Sealed::from_stored("p", &s.bytes, Origin::Tenant, "acme", "openai").unwrap();
        assert_eq!(back.keys, ["OPENAI_API_KEY", "ORG"]);
        assert_eq!(back.recipients, [operator.recipient()]);
        let open = back.open(&operator).unwrap();
        assert_eq!(open["OPENAI_API_KEY"].expose(), b"sk-sealed-77");
        assert!(back.open(&AgeKey::generate()).is_err());
        // A file moved to another tenant's path is refused.
        assert!(Sealed::from_stored("p", &s.bytes, Origin::Tenant, "other", "openai").is_err());
        assert!(Sealed::from_stored("p", &s.bytes, Origin::App, "acme", "openai").is_err());
    }

    #[test]
    fn the_secret_name_is_recognised_by_shape() {
        let long = "a".repeat(crate::spec::MAX_APP_NAME);
        assert!(is_secret_name(&secret_name(&long)));
        assert!(secret_name(&long).len() > 63);
        assert!(is_secret_name("app-shop-external-secrets"));
        assert!(!is_secret_name("app--external-secrets"));
        assert!(!is_secret_name("shop-external-secrets"));
    }

    #[test]
    fn fingerprints_follow_the_sealed_files_and_the_tenant() {
        let s = |b: &[u8]| Sealed {
            bytes: Arc::from(b),
            keys: vec!["K".into()],
            recipients: Vec::new(),
        };
        let t: Layer<Sealed> = [("openai".to_string(), s(b"one"))].into();
        let a: Layer<Sealed> = Layer::new();
        let base = fingerprint("acme", &t, &a);
        assert_eq!(base, fingerprint("acme", &t, &a));
        assert_ne!(base, fingerprint("other", &t, &a));
        assert_ne!(base, fingerprint("acme", &a, &t), "the level counts");
        let t2: Layer<Sealed> = [("openai".to_string(), s(b"two"))].into();
        assert_ne!(base, fingerprint("acme", &t2, &a));
    }
}
