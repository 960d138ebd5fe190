//! Managed secrets: reading them (views, reveal) and the writes the API queues for an app's
//! next platform round, with the limits and target checks that come first.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde_json::Value as Json;

use crate::spec;
use crate::spec::{SecretPatch, SecretSpec};

use super::views::{secret_views, SecretView};
use super::{Actor, AppSlot, ReconcileError, Reconciler, Rotation, SecretOpKind, WriteAck};

impl Reconciler {
    /// The server's forbidden keys and presets.
    pub fn policy(&self) -> &crate::recipe::Policy {
        &self.inner.settings.policy
    }

    pub fn list_secrets(&self, app: &str) -> Result<Vec<SecretView>, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        Ok(secret_views(&d).into_values().collect())
    }

    pub fn secret(&self, app: &str, name: &str) -> Result<SecretView, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        secret_views(&d)
            .remove(name)
            .ok_or_else(|| ReconcileError::not_found("secret", name))
    }

    /// The values of a secret as they will be (a pull request's when one proposes them), for an
    /// audited reveal.
    pub fn reveal(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
    ) -> Result<BTreeMap<String, crate::model::SecretValue>, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        let s = d
            .desired()
            .get(name)
            .ok_or_else(|| ReconcileError::not_found("secret", name))?;
        let mut ev = actor.event("secret.revealed");
        ev.app = Some(app.to_owned());
        ev.tenant = Some(d.spec.tenant.clone());
        ev.secret = Some(name.to_owned());
        ev.keys = s.data.keys().cloned().collect();
        self.inner.events.record(ev);
        Ok(s.data.clone())
    }

    /// `PUT`: creates or replaces a secret. Answers once the commit is pushed.
    pub async fn put_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<WriteAck, ReconcileError> {
        let spec = self.parse_put(app, name, body)?;
        self.put_secret_spec(actor, app, spec).await
    }

    fn parse_put(&self, app: &str, name: &str, body: &Json) -> Result<SecretSpec, ReconcileError> {
        let slot = self.slot(app)?;
        let d = slot.lock();
        Ok(SecretSpec::from_request(
            name,
            body,
            &d.spec,
            &self.inner.settings.policy,
        )?)
    }

    /// [`Reconciler::put_secret`] for a secret already parsed (a managed Secret in controller
    /// mode): the same limits, boundary and answer.
    pub async fn put_secret_spec(
        &self,
        actor: &Actor,
        app: &str,
        spec: SecretSpec,
    ) -> Result<WriteAck, ReconcileError> {
        let prepared = self.prepare_put(app, &spec).await?;
        let slot = self.slot(app)?;
        self.submit(&slot, actor, SecretOpKind::Put(spec, prepared.fresh))
            .await
    }

    /// Every check a write of `spec` must pass (the limits, the Secret type allowlist, the
    /// targets), without writing it.
    pub fn check_secret(&self, app: &str, spec: &SecretSpec) -> Result<(), ReconcileError> {
        let slot = self.slot(app)?;
        {
            let d = slot.lock();
            let limits = &self.inner.settings.boundary.limits;
            if !d.desired().contains_key(&spec.name) && d.desired().len() >= limits.secrets_per_app
            {
                return Err(spec::invalid(
                    "name",
                    format!(
                        "app {app:?} holds {} secrets, the limit (limits.secrets_per_app); delete one first",
                        d.desired().len()
                    ),
                )
                .into());
            }
        }
        self.inner
            .settings
            .boundary
            .check_secret_type(&spec.type_)
            .map_err(|reason| spec::invalid("type", reason))?;
        self.check_limits(spec)?;
        self.check_targets(app, spec)
    }

    /// A `PUT` body as the whole secret it makes (generated and derived values included),
    /// checked ([`Reconciler::check_secret`], the rules, the forbidden keys).
    pub async fn secret_of_put(
        &self,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<SecretSpec, ReconcileError> {
        let spec = self.parse_put(app, name, body)?;
        Ok(self.prepare_put(app, &spec).await?.completed)
    }

    /// A `PATCH` body applied to the secret as it stands, checked: the whole secret after it.
    pub async fn secret_of_patch(
        &self,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<SecretSpec, ReconcileError> {
        let patch = SecretPatch::from_json(body)?;
        Ok(self.prepare_patch(app, name, &patch).await?.completed)
    }

    /// A rotation (`{"keys"?, "keepPrevious"?}`) as the whole secret it makes.
    pub async fn secret_of_rotate(
        &self,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<SecretSpec, ReconcileError> {
        let rotation = Rotation::from_json(body)?;
        Ok(self.prepare_rotate(app, name, &rotation).await?.1.completed)
    }

    /// `POST .../rotate`: new values for generated keys, in one commit with the keys derived
    /// from them.
    pub async fn rotate_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<WriteAck, ReconcileError> {
        let rotation = Rotation::from_json(body)?;
        let (keys, prepared) = self.prepare_rotate(app, name, &rotation).await?;
        let slot = self.slot(app)?;
        self.submit(
            &slot,
            actor,
            SecretOpKind::Rotate {
                name: name.to_owned(),
                keys,
                keep_previous: rotation.keep_previous,
                fresh: prepared.fresh,
            },
        )
        .await
    }

    /// What Flux says about the app's Kustomization now (controller mode), for its status.
    pub fn flux_readiness(&self, app: &str, status: super::FluxStatus) {
        if let Ok(slot) = self.slot(app) {
            slot.lock().flux = Some(status);
        }
    }

    /// Flux applied `commit` of the app's platform repo (controller mode reads it back): each
    /// secret whose last commit it contains is marked applied. Commits it cannot tell about (the
    /// repo not provisioned, a commit unknown to the cache) leave the marks as they are.
    pub async fn flux_applied(&self, app: &str, commit: &str) {
        let Ok(slot) = self.slot(app) else { return };
        let (remote, pending): (_, Vec<(String, String)>) = {
            let d = slot.lock();
            let Some(repo) = d.repo.as_ref() else { return };
            let pending = d
                .secret_state
                .iter()
                .filter(|(_, st)| !st.applied)
                .filter_map(|(n, st)| st.commit.clone().map(|c| (n.clone(), c)))
                .collect();
            (repo.remote.clone(), pending)
        };
        if pending.is_empty() {
            return;
        }
        let applied = commit.to_owned();
        let branch = self.inner.settings.branch.clone();
        let contained = self
            .inner
            .engine
            .read(remote, &branch, move |snap| {
                Ok(pending
                    .into_iter()
                    .filter(|(_, c)| snap.contains(&applied, c))
                    .collect::<Vec<_>>())
            })
            .await;
        let Ok(contained) = contained else { return };
        let mut d = slot.lock();
        for (name, c) in contained {
            if let Some(st) = d.secret_state.get_mut(&name) {
                if st.commit.as_deref() == Some(c.as_str()) {
                    st.applied = true;
                }
            }
        }
    }

    /// Whether the app already holds exactly this secret (same places, same plaintext), so a
    /// write of it would change nothing.
    pub fn holds_secret(&self, app: &str, spec: &SecretSpec) -> bool {
        self.slot(app).is_ok_and(|slot| {
            let d = slot.lock();
            let Some(held) = d.desired().get(&spec.name) else {
                return false;
            };
            if spec.recipe.is_empty() && held.recipe.is_empty() {
                return held.same_as(spec);
            }
            // As the round would complete it: kept generated values, re-derived keys.
            let mut candidate = d.desired().clone();
            let mut next = spec.clone();
            let completed = super::recipes::complete(
                &mut next,
                Some(held),
                &Default::default(),
                &mut Default::default(),
            )
            .and_then(|()| {
                candidate.insert(spec.name.clone(), next);
                super::recipes::settle(&mut candidate, &spec.name)
            });
            completed.is_ok() && candidate[&spec.name].same_as(held)
        })
    }

    /// `PATCH`: sets keys, `null` removes one.
    pub async fn patch_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
        body: &Json,
    ) -> Result<WriteAck, ReconcileError> {
        let slot = self.slot(app)?;
        let patch = SecretPatch::from_json(body)?;
        let prepared = self.prepare_patch(app, name, &patch).await?;
        self.submit(
            &slot,
            actor,
            SecretOpKind::Patch(name.to_owned(), patch, prepared.fresh),
        )
        .await
    }

    pub async fn delete_secret(
        &self,
        actor: &Actor,
        app: &str,
        name: &str,
    ) -> Result<WriteAck, ReconcileError> {
        let slot = self.slot(app)?;
        if !slot.lock().desired().contains_key(name) {
            return Err(ReconcileError::not_found("secret", name));
        }
        self.submit(&slot, actor, SecretOpKind::Delete(name.to_owned()))
            .await
    }

    /// The configured limits on one secret: keys and bytes.
    pub(super) fn check_limits(&self, spec: &SecretSpec) -> Result<(), ReconcileError> {
        let limits = &self.inner.settings.boundary.limits;
        if spec.data.len() > limits.keys_per_secret {
            return Err(spec::invalid(
                "data",
                format!(
                    "holds {} keys; the limit is {} (limits.keys_per_secret)",
                    spec.data.len(),
                    limits.keys_per_secret
                ),
            )
            .into());
        }
        let size: usize = spec
            .data
            .iter()
            .map(|(k, v)| k.len() + v.expose().len())
            .sum();
        if size > limits.value_bytes {
            return Err(spec::invalid(
                "data",
                format!(
                    "holds {size} bytes; the limit is {} (limits.value_bytes)",
                    limits.value_bytes
                ),
            )
            .into());
        }
        Ok(())
    }

    /// Two writers never claim one Secret (namespace, name): not two managed secrets, across
    /// apps or within one, and not a managed secret and a name sealwright generates (a
    /// deployment's `<name>-credentials`, the app's external secrets), whichever came first.
    pub(super) fn check_targets(&self, app: &str, spec: &SecretSpec) -> Result<(), ReconcileError> {
        for ns in &spec.target_namespaces {
            if let Some((dep, id)) = self.credentials_owner(ns, &spec.target_name) {
                return Err(ReconcileError::Conflict(format!(
                    "Secret {ns}/{} is the credentials Secret of deployment {dep:?} ({id}); give secret {:?} another targetName",
                    spec.target_name, spec.name
                )));
            }
        }
        // A Secret in a namespace is written only by an app that holds it (and, for a namespace
        // just dropped from this app's registration, by this app until its next commit).
        let candidates: BTreeSet<String> = {
            let holders = self.holders();
            spec.target_namespaces
                .iter()
                .flat_map(|ns| holders.of(ns))
                .chain([app])
                .map(str::to_owned)
                .collect()
        };
        let apps = self.apps();
        let slots: Vec<Arc<AppSlot>> = candidates
            .iter()
            .filter_map(|a| apps.get(a).cloned())
            .collect();
        drop(apps);
        for slot in slots {
            let d = slot.lock();
            if d.deleted {
                continue;
            }
            if spec.target_name == crate::external::secret_name(&slot.name) {
                if let Some(ns) = d
                    .spec
                    .namespaces()
                    .find(|n| spec.target_namespaces.iter().any(|t| t == n))
                {
                    return Err(ReconcileError::Conflict(format!(
                        "Secret {ns}/{} is reserved for the external secrets of app {:?}",
                        spec.target_name, slot.name
                    )));
                }
            }
            for other in d.desired().values() {
                if slot.name == app && other.name == spec.name {
                    continue;
                }
                if other.target_name != spec.target_name {
                    continue;
                }
                if let Some(ns) = other
                    .target_namespaces
                    .iter()
                    .find(|n| spec.target_namespaces.contains(n))
                {
                    let whose = if slot.name == app {
                        format!("secret {:?} of this app", other.name)
                    } else {
                        format!("app {:?}", slot.name)
                    };
                    return Err(ReconcileError::Conflict(format!(
                        "Secret {ns}/{} is already managed by {whose}",
                        spec.target_name
                    )));
                }
            }
        }
        Ok(())
    }
}
