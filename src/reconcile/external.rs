//! External secrets inside the reconciler: the stored layers (state repo
//! `external-secrets/tenants/<tenant>/<provider>.sops.yaml` and
//! `external-secrets/apps/<app>/<provider>.sops.yaml`, values encrypted to the operator key), the
//! writes that change them and fan out to the apps concerned, the piece of each platform round
//! that materialises an app's merged Secret, and the deploy hook.
//!
//! Values stay sealed in memory; a round opens them with the operator key, renders, and drops
//! them. A round that cannot open them (the operator key is unavailable) keeps the files the repo
//! holds as they are and says why, and the rest of the round goes on: external secrets are best
//! effort, a deploy never fails for want of them.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use super::store;
use super::{Actor, AppSpec, ReconcileError, Reconciler, SecretOpKind, WriteAck};
use crate::external::{self, Effective, Layer, Origin, Sealed};
use crate::model::ExternalSecret;
use crate::spec::{invalid, Fields};
use sops::scalar::DateTime;

/// Every stored layer, sealed: tenants' defaults and apps' overrides, by owner then provider.
#[derive(Default)]
pub(super) struct ExternalStore {
    tenants: BTreeMap<String, Layer<Sealed>>,
    apps: BTreeMap<String, Layer<Sealed>>,
}

impl ExternalStore {
    fn level(&self, origin: Origin) -> &BTreeMap<String, Layer<Sealed>> {
        match origin {
            Origin::Tenant => &self.tenants,
            Origin::App => &self.apps,
        }
    }

    fn level_mut(&mut self, origin: Origin) -> &mut BTreeMap<String, Layer<Sealed>> {
        match origin {
            Origin::Tenant => &mut self.tenants,
            Origin::App => &mut self.apps,
        }
    }

    fn layer(&self, origin: Origin, owner: &str) -> Layer<Sealed> {
        self.level(origin).get(owner).cloned().unwrap_or_default()
    }
}

fn names(layer: &Layer<Sealed>) -> Layer<Vec<String>> {
    layer
        .iter()
        .map(|(p, s)| (p.clone(), s.keys.clone()))
        .collect()
}

/// What the last round made of an app's external secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ExternalOutcome {
    /// Materialised with these keys.
    Injected { origins: Vec<Effective> },
    /// Neither the tenant nor the app has any: no file.
    Empty,
    /// Not materialised now (why); the files the repo holds were kept as they are.
    Unavailable { reason: String },
}

/// An app's external secrets as one platform round delivers them.
pub(super) struct ExtRound {
    pub model: Option<ExternalSecret>,
    pub fingerprint: [u8; 32],
    /// The render may differ from what the repo holds (known to differ, or unknown).
    pub changed: bool,
    pub outcome: ExternalOutcome,
}

impl ExtRound {
    /// The round's commit message line about the Secret, used when the round's plan turns out
    /// to change its files.
    pub fn message(&self, app: &str) -> Option<String> {
        let name = external::secret_name(app);
        match &self.outcome {
            ExternalOutcome::Injected { origins } => Some(format!(
                "external secrets: {} in {name} ({})",
                plural(origins.len(), "key"),
                origin_counts(origins)
            )),
            ExternalOutcome::Empty => Some(format!("external secrets: {name} removed (none left)")),
            ExternalOutcome::Unavailable { .. } => None,
        }
    }
}

fn plural(n: usize, what: &str) -> String {
    format!("{n} {what}{}", if n == 1 { "" } else { "s" })
}

/// `2 from the tenant, 1 app override`.
fn origin_counts(origins: &[Effective]) -> String {
    let apps = origins.iter().filter(|e| e.origin == Origin::App).count();
    let tenant = origins.len() - apps;
    format!("{tenant} from the tenant, {}", plural(apps, "app override"))
}

/// The effective external secrets of an app, value-free (`GET`).
#[derive(Clone, Debug)]
pub struct ExternalView {
    pub app: String,
    pub tenant: String,
    pub namespaces: Vec<String>,
    pub effective: Vec<Effective>,
    pub clashes: Vec<external::Clash>,
    pub outcome: Option<ExternalOutcome>,
}

/// What a write of a layer did: the state-repo commit, and each app's round after it.
#[derive(Clone, Debug)]
pub struct ExternalWrite {
    pub commit: Option<String>,
    pub keys: Vec<String>,
    pub apps: BTreeMap<String, Result<WriteAck, String>>,
}

/// What `POST /v1/apps/{app}/deploys` did.
#[derive(Clone, Debug)]
pub struct DeployResult {
    pub app: String,
    pub tenant: String,
    pub image_ref: Option<String>,
    pub ack: WriteAck,
    pub outcome: ExternalOutcome,
}

/// The body of a deploy: `{tenant_id, app_id?, image_ref?}`.
struct DeployBody {
    tenant_id: String,
    image_ref: Option<String>,
}

fn deploy_body(app: &str, v: &Json) -> Result<DeployBody, super::Invalid> {
    let mut f = Fields::of("", v)?;
    let tenant_id = match f.get("tenant_id") {
        None => return Err(invalid("tenant_id", "is required (the app's tenant)")),
        Some(Json::String(s)) if s.is_empty() => {
            return Err(invalid("tenant_id", "must not be empty"))
        }
        Some(Json::String(s)) => s.clone(),
        Some(other) => {
            return Err(invalid(
                "tenant_id",
                format!("must be a string, not {}", crate::spec::kind(other)),
            ))
        }
    };
    if let Some(id) = f.opt_str("app_id")? {
        if id != app {
            return Err(invalid(
                "app_id",
                format!("{id:?} is not the app of this route ({app:?})"),
            ));
        }
    }
    let image_ref = f.opt_str("image_ref")?;
    if image_ref.as_ref().is_some_and(|r| r.len() > 1024) {
        return Err(invalid("image_ref", "is longer than 1024 characters"));
    }
    f.finish()?;
    Ok(DeployBody {
        tenant_id,
        image_ref,
    })
}

impl Reconciler {
    fn external(&self) -> std::sync::MutexGuard<'_, ExternalStore> {
        self.inner
            .external
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    /// Takes the layers the state repo holds (sealed; nothing is decrypted at start-up).
    pub(super) fn load_external(&self, records: Vec<(Origin, String, String, Sealed)>) {
        let mut store = self.external();
        *store = ExternalStore::default();
        for (origin, owner, provider, sealed) in records {
            store
                .level_mut(origin)
                .entry(owner)
                .or_default()
                .insert(provider, sealed);
        }
    }

    /// The apps a layer concerns: a tenant's apps, or the one app.
    fn apps_of(&self, origin: Origin, owner: &str) -> BTreeSet<String> {
        match origin {
            Origin::App => BTreeSet::from([owner.to_owned()]),
            Origin::Tenant => self
                .list_apps()
                .into_iter()
                .filter(|a| a.spec.tenant == owner)
                .map(|a| a.spec.name)
                .collect(),
        }
    }

    /// Checks who owns a layer: a tenant name (a DNS label), or a registered app.
    fn check_owner(&self, origin: Origin, owner: &str) -> Result<(), ReconcileError> {
        match origin {
            Origin::Tenant => {
                Ok(crate::names::validate_label("tenant", owner).map_err(super::Invalid::from)?)
            }
            Origin::App => self.slot(owner).map(|_| ()),
        }
    }

    /// A clash the write would make: one key set by two providers in the merged Secret of the
    /// tenant or of one of the apps concerned.
    fn clash_after(
        &self,
        origin: Origin,
        owner: &str,
        provider: &str,
        keys: &[String],
    ) -> Option<String> {
        // The tenant, and the apps whose merged Secret the write changes ("" stands for the
        // tenant's own set, which must be clash-free too).
        let (tenant, apps): (String, Vec<String>) = match origin {
            Origin::Tenant => (
                owner.to_owned(),
                std::iter::once(String::new())
                    .chain(self.apps_of(origin, owner))
                    .collect(),
            ),
            Origin::App => (
                self.tenant_of(owner).unwrap_or_default(),
                vec![owner.to_owned()],
            ),
        };
        let store = self.external();
        let with_write = |o: Origin, who: &str| {
            let mut l = names(&store.layer(o, who));
            if o == origin && who == owner {
                l.insert(provider.to_owned(), keys.to_vec());
            }
            l
        };
        let t = with_write(Origin::Tenant, &tenant);
        let describe = |e: &Effective, app: &str| match e.origin {
            Origin::Tenant => format!("provider {:?} of tenant {tenant:?}", e.provider),
            Origin::App => format!("provider {:?} of app {app:?}", e.provider),
        };
        apps.iter().find_map(|app| {
            let a = if app.is_empty() {
                Layer::new()
            } else {
                with_write(Origin::App, app)
            };
            let (_, clashes) = external::effective(&t, &a);
            clashes.first().map(|c| {
                format!(
                    "key {:?} would be set by both {} and {}; a key belongs to one provider (an app overrides a tenant's key under the same provider)",
                    c.key,
                    describe(&c.kept, app),
                    describe(&c.shadowed, app),
                )
            })
        })
    }

    /// Sets one provider's keys of a tenant (defaults) or of an app (overrides), replacing the
    /// provider's keys there; then every app concerned gets one platform round.
    pub async fn put_external(
        &self,
        actor: &Actor,
        origin: Origin,
        owner: &str,
        provider: &str,
        body: &Json,
    ) -> Result<ExternalWrite, ReconcileError> {
        self.check_owner(origin, owner)?;
        external::check_provider(provider)?;
        let data = external::parse_body(body)?;
        let keys: Vec<String> = data.keys().cloned().collect();
        // One layer write at a time, so that two writes cannot both pass the clash check (and an
        // app's unregistration cannot slip between the check of its owner and the commit).
        let one = self.inner.external_writes.lock().await;
        self.check_owner(origin, owner)?;
        if let Some(clash) = self.clash_after(origin, owner, provider, &keys) {
            return Err(ReconcileError::Conflict(clash));
        }
        let store = self.inner.keys.clone();
        let (o, p) = (owner.to_owned(), provider.to_owned());
        let sealed = tokio::task::spawn_blocking(move || {
            let operator = store
                .operator()
                .map_err(|e| format!("the operator key is unavailable ({e})"))?;
            Sealed::seal(
                origin,
                &o,
                &p,
                &data,
                &operator.recipient(),
                DateTime::now_utc(),
            )
            .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ReconcileError::Internal(e.to_string()))?
        .map_err(|reason| {
            ReconcileError::Unavailable(format!("external secrets cannot be stored: {reason}"))
        })?;
        // A replaced operator key would split the layers between two keys, the older ones
        // unreadable for good: refused until the right key is back.
        if let Some(mismatch) = self.operator_mismatch(&sealed.recipients) {
            return Err(ReconcileError::Unavailable(format!(
                "external secrets cannot be stored: {mismatch}"
            )));
        }
        let existed = self
            .external()
            .level(origin)
            .get(owner)
            .is_some_and(|l| l.contains_key(provider));
        let commit = self
            .state_commit(
                vec![(
                    store::external_path(origin, owner, provider),
                    Some(sealed.bytes.to_vec()),
                )],
                format!(
                    "{} external secrets {provider} of {} {owner} (keys: {}) by {}",
                    if existed { "update" } else { "set" },
                    origin.as_str(),
                    keys.join(", "),
                    actor.name
                ),
            )
            .await?;
        self.external()
            .level_mut(origin)
            .entry(owner.to_owned())
            .or_default()
            .insert(provider.to_owned(), sealed);
        // The fan-out waits for every app's round: other layer writes need not.
        drop(one);
        self.record_layer_event(
            actor,
            "external_secret.updated",
            origin,
            owner,
            provider,
            &keys,
            &commit,
        );
        let apps = self.sync_apps(actor, self.apps_of(origin, owner)).await;
        Ok(ExternalWrite { commit, keys, apps })
    }

    /// Removes one provider of a tenant or of an app (an app's removal lets the tenant's defaults
    /// through again); every app concerned gets one platform round.
    pub async fn delete_external(
        &self,
        actor: &Actor,
        origin: Origin,
        owner: &str,
        provider: &str,
    ) -> Result<ExternalWrite, ReconcileError> {
        self.check_owner(origin, owner)?;
        external::check_provider(provider)?;
        let one = self.inner.external_writes.lock().await;
        let keys = self
            .external()
            .level(origin)
            .get(owner)
            .and_then(|l| l.get(provider))
            .map(|s| s.keys.clone())
            .ok_or_else(|| {
                ReconcileError::not_found(
                    "external secrets provider",
                    &format!("{provider} of {} {owner}", origin.as_str()),
                )
            })?;
        let commit = self
            .state_commit(
                vec![(store::external_path(origin, owner, provider), None)],
                format!(
                    "remove external secrets {provider} of {} {owner} by {}",
                    origin.as_str(),
                    actor.name
                ),
            )
            .await?;
        {
            let mut store = self.external();
            let level = store.level_mut(origin);
            if let Some(l) = level.get_mut(owner) {
                l.remove(provider);
                if l.is_empty() {
                    level.remove(owner);
                }
            }
        }
        drop(one);
        self.record_layer_event(
            actor,
            "external_secret.deleted",
            origin,
            owner,
            provider,
            &keys,
            &commit,
        );
        let apps = self.sync_apps(actor, self.apps_of(origin, owner)).await;
        Ok(ExternalWrite { commit, keys, apps })
    }

    #[allow(clippy::too_many_arguments)]
    fn record_layer_event(
        &self,
        actor: &Actor,
        action: &str,
        origin: Origin,
        owner: &str,
        provider: &str,
        keys: &[String],
        commit: &Option<String>,
    ) {
        let mut ev = actor.event(action);
        match origin {
            Origin::Tenant => ev.tenant = Some(owner.to_owned()),
            Origin::App => {
                ev.app = Some(owner.to_owned());
                ev.tenant = self.tenant_of(owner);
            }
        }
        ev.provider = Some(provider.to_owned());
        ev.keys = keys.to_vec();
        ev.key_count = Some(keys.len());
        ev.commit = commit.clone();
        ev.detail = Some(format!("{} level", origin.as_str()));
        self.inner.events.record(ev);
    }

    /// A tenant's providers and their keys (defaults only).
    pub fn tenant_external(&self, tenant: &str) -> Result<Layer<Vec<String>>, ReconcileError> {
        crate::names::validate_label("tenant", tenant).map_err(super::Invalid::from)?;
        Ok(names(&self.external().layer(Origin::Tenant, tenant)))
    }

    /// An app's effective external secrets: every key, its provider and its origin.
    pub fn app_external(&self, app: &str) -> Result<ExternalView, ReconcileError> {
        let slot = self.slot(app)?;
        let (spec, outcome) = {
            let d = slot.lock();
            (d.spec.clone(), d.external_outcome.clone())
        };
        let (t, a) = {
            let store = self.external();
            (
                names(&store.layer(Origin::Tenant, &spec.tenant)),
                names(&store.layer(Origin::App, app)),
            )
        };
        let (effective, clashes) = external::effective(&t, &a);
        Ok(ExternalView {
            app: app.to_owned(),
            tenant: spec.tenant.clone(),
            namespaces: spec.namespaces().map(str::to_owned).collect(),
            effective,
            clashes,
            outcome,
        })
    }

    /// For `doctor`: every stored provider file opens with the operator key (names the ones
    /// that do not, never a value).
    pub fn check_external(&self) -> Result<String, ReconcileError> {
        let all: Vec<(Origin, String, String, Sealed)> = {
            let store = self.external();
            [Origin::Tenant, Origin::App]
                .into_iter()
                .flat_map(|o| {
                    store.level(o).iter().flat_map(move |(owner, layer)| {
                        layer
                            .iter()
                            .map(move |(p, s)| (o, owner.clone(), p.clone(), s.clone()))
                    })
                })
                .collect()
        };
        if all.is_empty() {
            return Ok("none stored".into());
        }
        let operator = self.inner.keys.operator().map_err(|e| {
            ReconcileError::Unavailable(format!("the operator key is unavailable ({e})"))
        })?;
        let bad: Vec<String> = all
            .iter()
            .filter_map(|(o, owner, p, s)| {
                s.open(&operator)
                    .err()
                    .map(|e| format!("{} ({e})", store::external_path(*o, owner, p)))
            })
            .collect();
        if bad.is_empty() {
            Ok(format!(
                "{} provider file{}, all open with the operator key",
                all.len(),
                if all.len() == 1 { "" } else { "s" }
            ))
        } else {
            Err(ReconcileError::Unavailable(format!(
                "the operator key cannot open: {}",
                bad.join("; ")
            )))
        }
    }

    /// Why the operator key `now` (its recipients) is not the one the stored layers are
    /// encrypted to, if it is not: the key file was replaced (a lost key is created anew).
    fn operator_mismatch(&self, now: &[String]) -> Option<String> {
        let store = self.external();
        [Origin::Tenant, Origin::App].into_iter().find_map(|o| {
            store.level(o).iter().find_map(|(owner, layer)| {
                layer.iter().find_map(|(p, s)| {
                    (!s.recipients.is_empty() && !s.recipients.iter().any(|r| now.contains(r)))
                        .then(|| {
                            format!(
                                "the operator key ({}) is not the key the stored external secrets are encrypted to ({}, {} {owner:?}, provider {p:?}); restore the operator key file",
                                now.join(", "),
                                s.recipients.join(", "),
                                o.as_str(),
                            )
                        })
                })
            })
        })
    }

    /// Holds off layer writes while an app's overrides are removed with it.
    pub(super) async fn external_writes(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.inner.external_writes.lock().await
    }

    /// The app's own overrides (for removing them with the app).
    pub(super) fn app_external_paths(&self, app: &str) -> Vec<String> {
        self.external()
            .layer(Origin::App, app)
            .keys()
            .map(|p| store::external_path(Origin::App, app, p))
            .collect()
    }

    pub(super) fn forget_app_external(&self, app: &str) {
        self.external().apps.remove(app);
    }

    /// The piece of an app's platform round that materialises its external secrets. `in_repo` is
    /// the fingerprint of what the repo is known to hold.
    pub(super) fn external_round(&self, spec: &AppSpec, in_repo: Option<[u8; 32]>) -> ExtRound {
        let (t, a) = {
            let store = self.external();
            (
                store.layer(Origin::Tenant, &spec.tenant),
                store.layer(Origin::App, &spec.name),
            )
        };
        let fingerprint = external::fingerprint(&spec.tenant, &t, &a);
        if t.is_empty() && a.is_empty() {
            return ExtRound {
                model: None,
                fingerprint,
                // Unknown (a restart, a settled pull request) counts as changed: a stale file
                // must go, and only a render shows whether there is one.
                changed: in_repo != Some(fingerprint),
                outcome: ExternalOutcome::Empty,
            };
        }
        let opened = self.open_layers(&t, &a);
        match opened {
            Ok((tv, av)) => {
                let r = external::resolve(&tv, &av);
                for c in &r.clashes {
                    tracing::warn!(app = %spec.name, key = %c.key, kept = %c.kept.provider, shadowed = %c.shadowed.provider, "two providers set one external secret key; the first wins");
                }
                ExtRound {
                    model: Some(ExternalSecret {
                        tenant: spec.tenant.clone(),
                        origins: r.origins_json(),
                        data: Some(r.data),
                    }),
                    fingerprint,
                    changed: in_repo != Some(fingerprint),
                    outcome: ExternalOutcome::Injected { origins: r.origins },
                }
            }
            Err(reason) => {
                tracing::warn!(app = %spec.name, %reason, "external secrets not materialised; the files the repo holds are kept");
                ExtRound {
                    model: Some(ExternalSecret {
                        tenant: spec.tenant.clone(),
                        origins: String::new(),
                        data: None,
                    }),
                    fingerprint,
                    changed: false,
                    outcome: ExternalOutcome::Unavailable { reason },
                }
            }
        }
    }

    /// Both layers' values, decrypted with the operator key; why not, value-free.
    #[allow(clippy::type_complexity)]
    fn open_layers(
        &self,
        t: &Layer<Sealed>,
        a: &Layer<Sealed>,
    ) -> Result<
        (
            Layer<BTreeMap<String, crate::model::SecretValue>>,
            Layer<BTreeMap<String, crate::model::SecretValue>>,
        ),
        String,
    > {
        let operator = self
            .inner
            .keys
            .operator()
            .map_err(|e| format!("the operator key is unavailable ({e})"))?;
        if let Some(mismatch) = self.operator_mismatch(&[operator.recipient()]) {
            return Err(mismatch);
        }
        let open = |layer: &Layer<Sealed>, level: &str| {
            layer
                .iter()
                .map(|(p, s)| {
                    s.open(&operator).map(|v| (p.clone(), v)).map_err(|e| {
                        format!("the operator key cannot open the {level}'s provider {p:?} ({e})")
                    })
                })
                .collect::<Result<Layer<_>, String>>()
        };
        Ok((open(t, "tenant")?, open(a, "app")?))
    }

    /// After a platform round: what the repo now holds, and the outcome for views and deploys.
    pub(super) fn external_pushed(&self, slot: &super::AppSlot, round: &ExtRound, pushed: bool) {
        let mut d = slot.lock();
        if pushed && !matches!(round.outcome, ExternalOutcome::Unavailable { .. }) {
            d.external = Some(round.fingerprint);
        }
        d.external_outcome = Some(round.outcome.clone());
    }

    /// `POST /v1/apps/{app}/deploys`: checks the body (`tenant_id` must be the app's tenant),
    /// then one platform round resolves and commits the app's external secrets. Their absence or
    /// an unavailable operator key does not fail the deploy: an `external_secret.skipped` event
    /// says why; a materialised set is an `external_secret.injected` event (key names and count).
    pub async fn deploy(
        &self,
        actor: &Actor,
        app: &str,
        body: &Json,
    ) -> Result<DeployResult, ReconcileError> {
        let slot = self.slot(app)?;
        let b = deploy_body(app, body)?;
        let tenant = slot.lock().spec.tenant.clone();
        if b.tenant_id != tenant {
            return Err(ReconcileError::Conflict(format!(
                "tenant_id {:?} is not the tenant of app {app:?}",
                b.tenant_id
            )));
        }
        let ack = self.submit(&slot, actor, SecretOpKind::Sync).await?;
        let (outcome, namespaces) = {
            let d = slot.lock();
            (
                d.external_outcome
                    .clone()
                    .unwrap_or(ExternalOutcome::Unavailable {
                        reason: "no round has resolved them yet".into(),
                    }),
                d.spec.namespaces().map(str::to_owned).collect::<Vec<_>>(),
            )
        };
        let image = b
            .image_ref
            .as_deref()
            .map(|r| format!(" for image {r}"))
            .unwrap_or_default();
        let mut ev = match &outcome {
            ExternalOutcome::Injected { origins } => {
                let mut ev = actor.event("external_secret.injected");
                ev.keys = origins.iter().map(|e| e.key.clone()).collect();
                ev.key_count = Some(origins.len());
                ev.namespaces = namespaces;
                ev.detail = Some(format!(
                    "{} in {} ({}){image}",
                    plural(origins.len(), "key"),
                    external::secret_name(app),
                    origin_counts(origins)
                ));
                ev
            }
            ExternalOutcome::Empty => {
                let mut ev = actor.event("external_secret.skipped");
                ev.key_count = Some(0);
                ev.detail = Some(format!(
                    "no external secrets: neither tenant {tenant} nor app {app} has any{image}"
                ));
                ev
            }
            ExternalOutcome::Unavailable { reason } => {
                let mut ev = actor.event("external_secret.skipped");
                ev.detail = Some(format!("{reason}{image}"));
                ev
            }
        };
        ev.app = Some(app.to_owned());
        ev.tenant = Some(tenant.clone());
        ev.commit = ack.commit.clone();
        ev.pull_request = ack.pull_request.clone();
        self.inner.events.record(ev);
        Ok(DeployResult {
            app: app.to_owned(),
            tenant,
            image_ref: b.image_ref,
            ack,
            outcome,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deploy_bodies_name_the_field() {
        let field = |v: Json| deploy_body("shop", &v).err().map(|e| e.field);
        assert_eq!(field(json!({"app_id": "shop"})), Some("tenant_id".into()));
        assert_eq!(field(json!({"tenant_id": ""})), Some("tenant_id".into()));
        assert_eq!(field(json!({"tenant_id": 7})), Some("tenant_id".into()));
        assert_eq!(field(json!({"tenant_id": null})), Some("tenant_id".into()));
        assert_eq!(
            field(json!({"tenant_id": "acme", "app_id": "other"})),
            Some("app_id".into())
        );
        assert_eq!(
            field(json!({"tenant_id": "acme", "tenantId": "x"})),
            Some("tenantId".into())
        );
        assert_eq!(field(json!([])), Some("body".into()));
        let ok = deploy_body(
            "shop",
            &json!({"tenant_id": "acme", "app_id": "shop", "image_ref": "ghcr.io/acme/shop:1.2"}),
        )
        .unwrap();
        assert_eq!(ok.tenant_id, "acme");
        assert_eq!(ok.image_ref.as_deref(), Some("ghcr.io/acme/shop:1.2"));
    }

    #[test]
    fn round_messages_count_keys_by_origin_without_values() {
        let e = |k: &str, o| Effective {
            key: k.into(),
            provider: "openai".into(),
            origin: o,
        };
        let r = ExtRound {
            model: None,
            fingerprint: [0; 32],
            changed: true,
            outcome: ExternalOutcome::Injected {
                origins: vec![
                    e("A", Origin::Tenant),
                    e("B", Origin::App),
                    e("C", Origin::Tenant),
                ],
            },
        };
        assert_eq!(
            r.message("shop").unwrap(),
            "external secrets: 3 keys in app-shop-external-secrets (2 from the tenant, 1 app override)"
        );
        let unavailable = ExtRound {
            outcome: ExternalOutcome::Unavailable { reason: "x".into() },
            ..r
        };
        assert_eq!(unavailable.message("shop"), None);
    }
}
