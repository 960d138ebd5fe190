//! Where a secret's generated and derived values land: a generated key is made when it first
//! appears and kept byte-for-byte after that (so an unchanged write commits nothing), rotated
//! only when asked; derived keys are re-made from their sources in the same commit, in every
//! secret of the app that reads them; and the `validate` rules and the forbidden keys are
//! checked on the whole secret as it will be committed.
//!
//! The pure half (`missing`, `complete`, `rotate`, `derive`, `validate`) runs in the round on
//! the candidate secrets; the other half runs before a write is queued: it makes the values a
//! write needs off the async workers (a 4096-bit RSA key takes seconds) and simulates the write
//! on the desired state, so bad input is refused at once with the field that is wrong.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, SystemTime};

use crate::model::SecretValue;
use crate::recipe::derive::{derive_all, Input};
use crate::recipe::PREVIOUS_SUFFIX;
use crate::spec::{invalid, Invalid, SecretSpec};

use super::{ReconcileError, Reconciler};

/// Values made ahead of a round for the keys a write will need, by filled key.
pub(super) type Fresh = BTreeMap<String, SecretValue>;

/// What a write did to the keys its rules fill, for the audit log (key names only).
#[derive(Clone, Debug, Default)]
pub(super) struct KeyNotes {
    /// Keys generated for the first time.
    pub(super) generated: Vec<String>,
    /// Keys given new values by a rotation.
    pub(super) rotated: Vec<String>,
    /// Generated keys the write set to a value of its own.
    pub(super) replaced: Vec<String>,
}

/// A rotation: new values for some generated keys (all when `keys` is empty).
#[derive(Clone, Debug)]
pub struct Rotation {
    pub keys: Vec<String>,
    pub keep_previous: bool,
}

impl Rotation {
    /// `{"keys"?: [key], "keepPrevious"?: bool}`.
    pub fn from_json(v: &serde_json::Value) -> Result<Rotation, Invalid> {
        let mut f = crate::fields::Fields::of("", v)?;
        let mut keys = Vec::new();
        if let Some(k) = f.get("keys") {
            let serde_json::Value::Array(items) = k else {
                return Err(invalid("keys", "must be a list of key names"));
            };
            for (i, item) in items.iter().enumerate() {
                let serde_json::Value::String(s) = item else {
                    return Err(invalid(format!("keys[{i}]"), "must be a key name"));
                };
                if !keys.contains(s) {
                    keys.push(s.clone());
                }
            }
        }
        let keep_previous = match f.get("keepPrevious") {
            None => false,
            Some(serde_json::Value::Bool(b)) => *b,
            Some(other) => {
                return Err(invalid(
                    "keepPrevious",
                    format!("must be true or false, not {}", crate::fields::kind(other)),
                ))
            }
        };
        f.finish()?;
        Ok(Rotation {
            keys,
            keep_previous,
        })
    }

    /// The rule keys it rotates in `s`: the listed ones, each generated, or every one.
    pub(super) fn rule_keys(&self, s: &SecretSpec) -> Result<Vec<String>, Invalid> {
        if self.keys.is_empty() {
            if s.recipe.generate.is_empty() {
                return Err(invalid(
                    "keys",
                    format!("secret {:?} has no generated key to rotate", s.name),
                ));
            }
            return Ok(s.recipe.generate.keys().cloned().collect());
        }
        let generated = s.recipe.generated_keys();
        let mut out = Vec::new();
        for (i, k) in self.keys.iter().enumerate() {
            match generated.get(k) {
                // A companion (`tls.key`, a public key) rotates with the rule that fills it.
                Some(rule)
                    if !k.ends_with(PREVIOUS_SUFFIX) || s.recipe.generate.contains_key(k) =>
                {
                    if !out.contains(rule) {
                        out.push(rule.clone());
                    }
                }
                _ => {
                    return Err(invalid(
                        format!("keys[{i}]"),
                        format!(
                            "{k:?} is not a generated key of secret {:?} ({})",
                            s.name,
                            match s.recipe.kind_of(k) {
                                crate::recipe::KeyKind::Derived => "it is derived",
                                _ if s.data.contains_key(k) => "it is set by hand",
                                _ => "it has no such key",
                            }
                        ),
                    ))
                }
            }
        }
        Ok(out)
    }
}

/// Whether `base` holds values for `key`'s rule that `next` may keep: all its keys, made by the
/// same rule (or set by hand before the rule came, which a rule never overwrites).
fn keeps(next: &SecretSpec, key: &str, base: Option<&SecretSpec>) -> bool {
    let rule = &next.recipe.generate[key];
    base.is_some_and(|b| {
        rule.fills(key).iter().all(|k| b.data.contains_key(k))
            && b.recipe.generate.get(key).is_none_or(|r| r == rule)
    })
}

/// The rule keys of `next` that need new values: their keys are neither in the write nor kept
/// from `base`.
pub(super) fn missing(next: &SecretSpec, base: Option<&SecretSpec>) -> Vec<String> {
    next.recipe
        .generate
        .iter()
        .filter(|(key, rule)| {
            !rule.fills(key).iter().all(|k| next.data.contains_key(k)) && !keeps(next, key, base)
        })
        .map(|(key, _)| key.clone())
        .collect()
}

/// Makes the values of `keys`' rules (slow for RSA: call it off the async workers).
pub(super) fn make(
    entropy: &crate::random::Entropy,
    now: SystemTime,
    spec: &SecretSpec,
    keys: &[String],
) -> Result<Fresh, Invalid> {
    let mut out = Fresh::new();
    for key in keys {
        let rule = &spec.recipe.generate[key];
        let _span =
            tracing::debug_span!("secret.generate", secret = %spec.name, key = %key).entered();
        for (k, v) in rule
            .make(key, &mut entropy.rng(), now)
            .map_err(|e| invalid(format!("generate.{key}"), e.to_string()))?
        {
            out.insert(k, v);
        }
    }
    Ok(out)
}

/// Fills `next`'s generated keys: its own value where the write set one, else the value `base`
/// holds, else the fresh one; and carries the previous values of the last rotation. Notes which
/// keys were made and which generated keys the write replaced.
pub(super) fn complete(
    next: &mut SecretSpec,
    base: Option<&SecretSpec>,
    fresh: &Fresh,
    notes: &mut KeyNotes,
) -> Result<(), Invalid> {
    let rules: Vec<(String, Vec<String>)> = next
        .recipe
        .generate
        .iter()
        .map(|(k, r)| (k.clone(), r.fills(k)))
        .collect();
    for (key, fills) in &rules {
        for k in fills {
            let written = next.data.get(k).map(|v| v.expose());
            let held = base.and_then(|b| b.data.get(k)).map(|v| v.expose());
            if let (Some(w), Some(h)) = (written, held) {
                if w != h
                    && base
                        .is_some_and(|b| b.recipe.kind_of(k) == crate::recipe::KeyKind::Generated)
                {
                    notes.replaced.push(k.clone());
                }
            }
        }
        if fills.iter().all(|k| next.data.contains_key(k)) {
            continue;
        }
        let source = if keeps(next, key, base) {
            base.map(|b| &b.data)
        } else if fills.iter().all(|k| fresh.contains_key(k)) {
            notes.generated.extend(fills.iter().cloned());
            Some(fresh)
        } else {
            None
        };
        let Some(source) = source else {
            return Err(invalid(
                format!("generate.{key}"),
                "its value was not made for this write (the secret changed meanwhile); send the write again",
            ));
        };
        for k in fills {
            next.data
                .entry(k.clone())
                .or_insert_with(|| SecretValue::new(source[k].expose().to_vec()));
        }
    }
    // The previous values of a rotation stay until the next one (a PUT does not name them).
    if let Some(b) = base {
        for key in &b.recipe.previous {
            if !next.recipe.generate.contains_key(key) {
                continue;
            }
            next.recipe.previous.insert(key.clone());
            for k in next.recipe.generate[key].fills(key) {
                let prev = format!("{k}{PREVIOUS_SUFFIX}");
                if let Some(v) = b.data.get(&prev) {
                    next.data
                        .entry(prev)
                        .or_insert_with(|| SecretValue::new(v.expose().to_vec()));
                }
            }
        }
    }
    Ok(())
}

/// New values for `keys`' rules from `fresh`; with `keep_previous` the old ones move to
/// `<key>.previous`, without it any previous value goes.
pub(super) fn rotate(
    s: &mut SecretSpec,
    keys: &[String],
    keep_previous: bool,
    fresh: &Fresh,
    notes: &mut KeyNotes,
) -> Result<(), Invalid> {
    for key in keys {
        let Some(rule) = s.recipe.generate.get(key) else {
            return Err(invalid(
                "keys",
                format!(
                    "{key:?} is no longer a generated key of secret {:?}",
                    s.name
                ),
            ));
        };
        let fills = rule.fills(key);
        if !fills.iter().all(|k| fresh.contains_key(k)) {
            return Err(invalid(
                "keys",
                "the new values were not made for this rule (it changed meanwhile); rotate again",
            ));
        }
        for k in &fills {
            let new = SecretValue::new(fresh[k].expose().to_vec());
            let old = s.data.insert(k.clone(), new);
            let prev = format!("{k}{PREVIOUS_SUFFIX}");
            match (keep_previous, old) {
                (true, Some(old)) => {
                    s.data.insert(prev, old);
                }
                (true, None) => {}
                (false, _) => {
                    s.data.remove(&prev);
                }
            }
        }
        if keep_previous {
            s.recipe.previous.insert(key.clone());
        } else {
            s.recipe.previous.remove(key);
        }
        notes.rotated.extend(fills);
    }
    Ok(())
}

/// Re-derives every derived key of the app's secrets. Answers the secrets whose values
/// changed; an error names the rule (`derive.KEY`) and, when it is another secret's, that
/// secret.
pub(super) fn derive(
    secrets: &mut BTreeMap<String, SecretSpec>,
    writing: &str,
) -> Result<BTreeSet<String>, Invalid> {
    if secrets.values().all(|s| s.recipe.derive.is_empty()) {
        return Ok(BTreeSet::new());
    }
    let inputs = secrets
        .iter()
        .map(|(name, s)| {
            let values = s
                .data
                .iter()
                .filter(|(k, _)| !s.recipe.derive.contains_key(*k))
                .map(|(k, v)| (k.clone(), SecretValue::new(v.expose().to_vec())))
                .collect();
            (
                name.clone(),
                Input {
                    derive: s.recipe.derive.clone(),
                    values,
                },
            )
        })
        .collect();
    let made = derive_all(inputs).map_err(|f| {
        if f.secret == writing {
            f.error
        } else {
            invalid(
                format!("secrets.{}.{}", f.secret, f.error.field),
                format!(
                    "{} (a rule of secret {:?}, which this write breaks)",
                    f.error.reason, f.secret
                ),
            )
        }
    })?;
    let mut changed = BTreeSet::new();
    for ((secret, key), v) in made {
        let Some(s) = secrets.get_mut(&secret) else {
            continue;
        };
        if s.data.get(&key).map(|o| o.expose()) != Some(v.expose()) {
            s.data.insert(key, v);
            changed.insert(secret);
        }
    }
    Ok(changed)
}

/// The `validate` rules of a secret, on its values as they will be committed.
pub(super) fn validate(s: &SecretSpec) -> Result<(), Invalid> {
    for (key, check) in &s.recipe.validate {
        let field = format!("data.{key}");
        let Some(v) = s.data.get(key) else {
            return Err(invalid(
                field,
                format!("is required (validate.{key} checks it)"),
            ));
        };
        check
            .check(v.expose())
            .map_err(|reason| invalid(field, reason))?;
    }
    Ok(())
}

/// Whether an op has recipe work to do in this candidate: it brings rules (`ruled`), or some
/// secret of the app has rules (the op may touch it or its sources).
pub(super) fn involved(candidate: &BTreeMap<String, SecretSpec>, ruled: bool) -> bool {
    ruled || candidate.values().any(|s| !s.recipe.is_empty())
}

/// The checks after an op changed `name` in `candidate`: derived keys re-made, and the rules
/// of every secret whose values moved.
pub(super) fn settle(
    candidate: &mut BTreeMap<String, SecretSpec>,
    name: &str,
) -> Result<(), Invalid> {
    let mut changed = derive(candidate, name)?;
    changed.insert(name.to_owned());
    for n in &changed {
        if let Some(s) = candidate.get(n) {
            validate(s).map_err(|e| {
                if n == name {
                    e
                } else {
                    invalid(
                        format!("secrets.{n}.{}", e.field),
                        format!("{} (secret {n:?} derives from this one)", e.reason),
                    )
                }
            })?;
        }
    }
    Ok(())
}

/// A write as it will be queued: the secret (or patch) and the values made for it, with the
/// whole secret as the round will commit it.
pub(super) struct Prepared {
    pub(super) fresh: Fresh,
    pub(super) completed: SecretSpec,
}

impl Reconciler {
    /// Makes the values `keys` of `spec` need, on a blocking thread.
    async fn make_fresh(
        &self,
        spec: &SecretSpec,
        keys: Vec<String>,
    ) -> Result<Fresh, ReconcileError> {
        if keys.is_empty() {
            return Ok(Fresh::new());
        }
        let entropy = self.inner.settings.entropy.clone();
        let now = SystemTime::UNIX_EPOCH
            + Duration::from_secs(self.inner.settings.clock.now().max(0) as u64);
        let spec = spec.clone();
        tokio::task::spawn_blocking(move || make(&entropy, now, &spec, &keys))
            .await
            .map_err(|e| ReconcileError::Internal(format!("generating values: {e}")))?
            .map_err(ReconcileError::from)
    }

    /// Simulates a write on the app's desired state: what it makes of `name` (by `apply`), its
    /// derived keys and rules, the forbidden keys and the limits.
    fn simulate(
        &self,
        app: &str,
        name: &str,
        apply: impl FnOnce(Option<&SecretSpec>) -> Result<SecretSpec, Invalid>,
    ) -> Result<SecretSpec, ReconcileError> {
        let slot = self.slot(app)?;
        let completed = {
            let d = slot.lock();
            let mut candidate = d.desired().clone();
            let next = apply(candidate.get(name))?;
            candidate.insert(name.to_owned(), next);
            settle(&mut candidate, name)?;
            let completed = candidate.remove(name).ok_or_else(|| {
                ReconcileError::Internal(format!("secret {name:?} went missing from its own write"))
            })?;
            self.inner
                .settings
                .policy
                .check_keys(&d.spec.tenant, completed.data.keys())?;
            completed
        };
        self.check_secret(app, &completed)?;
        Ok(completed)
    }

    /// A `PUT` (or a managed Secret) made ready to queue: values made and the result checked.
    pub(super) async fn prepare_put(
        &self,
        app: &str,
        spec: &SecretSpec,
    ) -> Result<Prepared, ReconcileError> {
        let need = {
            let slot = self.slot(app)?;
            let d = slot.lock();
            missing(spec, d.desired().get(&spec.name))
        };
        let fresh = self.make_fresh(spec, need).await?;
        let completed = self.simulate(app, &spec.name, |base| {
            let mut next = spec.clone();
            complete(&mut next, base, &fresh, &mut KeyNotes::default())?;
            Ok(next)
        })?;
        Ok(Prepared { fresh, completed })
    }

    /// A `PATCH` made ready to queue.
    pub(super) async fn prepare_patch(
        &self,
        app: &str,
        name: &str,
        patch: &crate::spec::SecretPatch,
    ) -> Result<Prepared, ReconcileError> {
        let (next, need) = {
            let slot = self.slot(app)?;
            let d = slot.lock();
            let base = d
                .desired()
                .get(name)
                .ok_or_else(|| ReconcileError::not_found("secret", name))?;
            let next = base.patched(patch)?;
            let need = missing(&next, Some(base));
            (next, need)
        };
        let fresh = self.make_fresh(&next, need).await?;
        let completed = self.simulate(app, name, |base| {
            let base = base.ok_or_else(|| invalid("name", "the secret was deleted meanwhile"))?;
            let mut next = base.patched(patch)?;
            complete(&mut next, Some(base), &fresh, &mut KeyNotes::default())?;
            Ok(next)
        })?;
        Ok(Prepared { fresh, completed })
    }

    /// A rotation made ready to queue: the rule keys, their new values and the result.
    pub(super) async fn prepare_rotate(
        &self,
        app: &str,
        name: &str,
        rotation: &Rotation,
    ) -> Result<(Vec<String>, Prepared), ReconcileError> {
        let (spec, keys) = {
            let slot = self.slot(app)?;
            let d = slot.lock();
            let s = d
                .desired()
                .get(name)
                .ok_or_else(|| ReconcileError::not_found("secret", name))?;
            (s.clone(), rotation.rule_keys(s)?)
        };
        let fresh = self.make_fresh(&spec, keys.clone()).await?;
        let completed = self.simulate(app, name, |base| {
            let mut next = base
                .ok_or_else(|| invalid("name", "the secret was deleted meanwhile"))?
                .clone();
            rotate(
                &mut next,
                &keys,
                rotation.keep_previous,
                &fresh,
                &mut KeyNotes::default(),
            )?;
            Ok(next)
        })?;
        Ok((keys, Prepared { fresh, completed }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::{AppSpec, SecretPatch};
    use serde_json::json;

    fn app() -> AppSpec {
        AppSpec::from_json(&json!({"name": "shop", "tenant": "acme",
            "environments": [{"name": "prod", "namespace": "shop-prod"}]}))
        .unwrap()
    }

    fn secret(name: &str, body: serde_json::Value) -> SecretSpec {
        let mut b = body;
        b["targetNamespaces"] = json!(["shop-prod"]);
        SecretSpec::from_json(name, &b, &app()).unwrap()
    }

    fn text(s: &SecretSpec, k: &str) -> String {
        String::from_utf8(s.data[k].expose().to_vec()).unwrap()
    }

    fn made(s: &SecretSpec, base: Option<&SecretSpec>, seed: u64) -> SecretSpec {
        let need = missing(s, base);
        let fresh = make(
            &crate::random::Entropy::seeded(seed),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
            s,
            &need,
        )
        .unwrap();
        let mut next = s.clone();
        complete(&mut next, base, &fresh, &mut KeyNotes::default()).unwrap();
        next
    }

    #[test]
    fn a_generated_key_is_made_once_and_kept_by_later_writes() {
        let body = json!({"data": {"user": "app"},
            "generate": {"password": {"kind": "alphanumeric", "length": 32}}});
        let first = made(&secret("db", body.clone()), None, 1);
        assert_eq!(text(&first, "password").len(), 32);
        let again = made(&secret("db", body), Some(&first), 2);
        assert_eq!(text(&again, "password"), text(&first, "password"));
        // A new rule makes a new value; a hand-set value is kept under a new rule.
        let longer = made(
            &secret(
                "db",
                json!({"generate": {"password": {"kind": "alphanumeric", "length": 40}}}),
            ),
            Some(&first),
            3,
        );
        assert_eq!(text(&longer, "password").len(), 40);
        let by_hand = secret("db", json!({"data": {"password": "mine"}}));
        let ruled = made(
            &secret(
                "db",
                json!({"generate": {"password": {"kind": "hex", "length": 8}}}),
            ),
            Some(&by_hand),
            4,
        );
        assert_eq!(text(&ruled, "password"), "mine");
    }

    #[test]
    fn an_explicit_value_replaces_a_generated_one_and_is_noted() {
        let body = json!({"generate": {"password": {"kind": "hex", "length": 16}}});
        let first = made(&secret("db", body), None, 1);
        let mut next = secret(
            "db",
            json!({"data": {"password": "chosen"}, "generate": {"password": {"kind": "hex", "length": 16}}}),
        );
        let mut notes = KeyNotes::default();
        complete(&mut next, Some(&first), &Fresh::new(), &mut notes).unwrap();
        assert_eq!(text(&next, "password"), "chosen");
        assert_eq!(notes.replaced, ["password"]);
        assert!(notes.generated.is_empty());
    }

    #[test]
    fn rotation_keeps_or_drops_the_previous_value() {
        let s = made(
            &secret(
                "db",
                json!({"generate": {"password": {"kind": "hex", "length": 16}}}),
            ),
            None,
            1,
        );
        let old = text(&s, "password");
        let fresh = make(
            &crate::random::Entropy::seeded(9),
            SystemTime::UNIX_EPOCH,
            &s,
            &["password".into()],
        )
        .unwrap();
        let mut kept = s.clone();
        let mut notes = KeyNotes::default();
        rotate(&mut kept, &["password".into()], true, &fresh, &mut notes).unwrap();
        assert_eq!(text(&kept, "password.previous"), old);
        assert_ne!(text(&kept, "password"), old);
        assert!(kept.recipe.previous.contains("password"));
        assert_eq!(notes.rotated, ["password"]);
        // A later PUT that names neither keeps the overlap.
        let put = secret(
            "db",
            json!({"generate": {"password": {"kind": "hex", "length": 16}}}),
        );
        let mut after = put.clone();
        complete(
            &mut after,
            Some(&kept),
            &Fresh::new(),
            &mut KeyNotes::default(),
        )
        .unwrap();
        assert_eq!(text(&after, "password.previous"), old);
        let mut dropped = kept.clone();
        rotate(
            &mut dropped,
            &["password".into()],
            false,
            &fresh,
            &mut KeyNotes::default(),
        )
        .unwrap();
        assert!(!dropped.data.contains_key("password.previous"));
        assert!(dropped.recipe.previous.is_empty());
    }

    #[test]
    fn a_rotation_names_only_generated_keys() {
        let s = made(
            &secret(
                "tls",
                json!({"data": {"user": "u"}, "derive": {"url": "{{ user }}"},
                       "generate": {"tls.crt": {"kind": "self-signed-tls", "commonName": "a.example"}}}),
            ),
            None,
            1,
        );
        let r = |keys: &[&str]| Rotation {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            keep_previous: false,
        };
        assert_eq!(r(&["tls.key"]).rule_keys(&s).unwrap(), ["tls.crt"]);
        assert_eq!(r(&[]).rule_keys(&s).unwrap(), ["tls.crt"]);
        let e = r(&["user"]).rule_keys(&s).unwrap_err();
        assert_eq!(e.field, "keys[0]");
        assert!(e.reason.contains("set by hand"), "{e}");
        assert!(r(&["url"])
            .rule_keys(&s)
            .unwrap_err()
            .reason
            .contains("derived"));
    }

    #[test]
    fn derived_keys_follow_their_sources_across_secrets_and_a_broken_source_is_refused() {
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "wharf".to_string(),
            secret("wharf", json!({"data": {"JWT_SECRET": "one"}})),
        );
        secrets.insert(
            "api".to_string(),
            secret(
                "api",
                json!({"derive": {"JWT": "{{ secrets.wharf.JWT_SECRET }}"}}),
            ),
        );
        settle(&mut secrets, "api").unwrap();
        assert_eq!(text(&secrets["api"], "JWT"), "one");
        let p = SecretPatch::from_json(&json!({"data": {"JWT_SECRET": "two"}})).unwrap();
        let next = secrets["wharf"].patched(&p).unwrap();
        secrets.insert("wharf".into(), next);
        settle(&mut secrets, "wharf").unwrap();
        assert_eq!(text(&secrets["api"], "JWT"), "two");
        secrets.remove("wharf");
        let e = settle(&mut secrets, "wharf").unwrap_err();
        assert_eq!(e.field, "secrets.api.derive.JWT");
    }

    #[test]
    fn validation_names_the_key_and_never_the_value() {
        let s = secret(
            "gh",
            json!({"data": {"GITHUB_APP_PRIVATE_KEY": "hunter2"},
                   "validate": {"GITHUB_APP_PRIVATE_KEY": {"pem": "rsa-private-key-pkcs1"}, "url": {"minLength": 3}}}),
        );
        let e = validate(&s).unwrap_err();
        assert_eq!(e.field, "data.GITHUB_APP_PRIVATE_KEY");
        assert_eq!(e.reason, "not a PKCS#1 RSA private key");
        let mut ok = s.clone();
        ok.recipe.validate.remove("GITHUB_APP_PRIVATE_KEY");
        assert_eq!(validate(&ok).unwrap_err().field, "data.url");
    }
}
