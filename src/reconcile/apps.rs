//! Apps: registering, updating and unregistering them, and the tenant boundary they must keep
//! (a namespace is held by one app, reserved namespaces by none).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::audit::Event;
use crate::host::RepoRef;
use crate::spec;
use crate::spec::{AppSpec, Delivery};

use super::store::Source;
use super::views::AppView;
use super::{store, Actor, AppSlot, FluxScope, ReconcileError, Reconciler};

impl Reconciler {
    /// Registers an app: stored in the state repo first (that is the acknowledgement), then
    /// provisioned — keys, repo, deploy key, `.sops.yaml`, Flux folder. A provisioning failure is
    /// in the returned status and retried; the registration stays.
    pub async fn register_app(
        &self,
        actor: &Actor,
        spec: AppSpec,
        source: Source,
    ) -> Result<AppView, ReconcileError> {
        if spec.delivery == Delivery::PullRequest && self.inner.host.kind() == "local" {
            // Refused rather than silently committed straight to the branch Flux follows.
            return Err(spec::invalid(
                "delivery",
                "pull-request needs a Git host with pull requests (GitHub); the local host takes commits only",
            )
            .into());
        }
        // Claims are decided one at a time: two registrations never take one namespace.
        let claims = self.inner.claims.lock().await;
        self.check_boundary(actor, &spec)?;
        self.check_repo(&spec)?;
        let slot = {
            let mut apps = self.apps();
            if let Some(existing) = apps.get(&spec.name) {
                let d = existing.lock();
                if !d.deleted {
                    return Err(ReconcileError::Conflict(format!(
                        "app {:?} is already registered",
                        spec.name
                    )));
                }
            }
            let slot = AppSlot::new(spec.clone(), source);
            apps.insert(spec.name.clone(), slot.clone());
            self.holders().set(&spec.name, spec.namespaces());
            slot
        };
        let stored = self
            .state_commit(
                vec![(
                    store::app_path(&spec.name),
                    Some(store::encode_app(&spec, source)),
                )],
                format!(
                    "register app {} (tenant {}) by {}",
                    spec.name, spec.tenant, actor.name
                ),
            )
            .await;
        if let Err(e) = stored {
            self.apps().remove(&spec.name);
            self.holders().remove(&spec.name);
            return Err(e);
        }
        drop(claims);
        self.announce_and_reconcile(actor, "app.created", &slot, &spec)
            .await
    }

    /// Records the registration event, then brings the app in line now. A failure is in the
    /// app's status and retried later: the registration itself is stored already.
    pub(super) async fn announce_and_reconcile(
        &self,
        actor: &Actor,
        action: &str,
        slot: &Arc<AppSlot>,
        spec: &AppSpec,
    ) -> Result<AppView, ReconcileError> {
        self.inner.events.record(app_event(actor, action, spec));
        if let Err(e) = self.reconcile_app(slot, true).await {
            tracing::warn!(app = %spec.name, error = %e, "reconcile failed; will retry");
        }
        self.app(&spec.name)
    }

    /// Changes a registration (a configuration-directory edit): a namespace that is no longer the
    /// app's loses its files in the next commit.
    pub async fn update_app(
        &self,
        actor: &Actor,
        spec: AppSpec,
    ) -> Result<AppView, ReconcileError> {
        let slot = self.slot(&spec.name)?;
        let (old, source) = {
            let d = slot.lock();
            (d.spec.clone(), d.source)
        };
        if old == spec {
            return self.app(&spec.name);
        }
        if let Some(url) = slot.lock().pending.as_ref().map(|p| p.url.clone()) {
            if spec.delivery != Delivery::PullRequest {
                return Err(ReconcileError::Conflict(format!(
                    "app {:?} has an open pull request ({url}); merge or close it before changing delivery",
                    spec.name
                )));
            }
        }
        if spec.delivery == Delivery::PullRequest && self.inner.host.kind() == "local" {
            return Err(spec::invalid(
                "delivery",
                "pull-request needs a Git host with pull requests (GitHub); the local host takes commits only",
            )
            .into());
        }
        let claims = self.inner.claims.lock().await;
        self.check_boundary(actor, &spec)?;
        let owner = &self.inner.settings.owner;
        if old.platform_repo(owner) != spec.platform_repo(owner) {
            return Err(spec::invalid(
                "repo",
                format!(
                    "cannot change from {} to {}: the platform repo holds the app's history; register a new app for a new repo",
                    old.platform_repo(owner),
                    spec.platform_repo(owner)
                ),
            )
            .into());
        }
        self.state_commit(
            vec![(
                store::app_path(&spec.name),
                Some(store::encode_app(&spec, source)),
            )],
            format!("update app {} by {}", spec.name, actor.name),
        )
        .await?;
        {
            self.holders().set(&spec.name, spec.namespaces());
            let mut d = slot.lock();
            d.spec = spec.clone();
            d.clean_head = None;
            d.flux_synced = false;
            // The open pull request's branch is re-rendered too (its files may need to move).
            if let Some(p) = d.pending.as_mut() {
                p.head.clear();
            }
        }
        drop(claims);
        self.announce_and_reconcile(actor, "app.updated", &slot, &spec)
            .await
    }

    /// `POST /v1/apps/{app}/drift/resolve`: an admin's answer to drift held under
    /// `driftPolicy: report`: `restore` writes sealwright's records back, `adopt` reads the
    /// secrets back from the repo. Answers once the resulting round is done.
    pub async fn resolve_drift(
        &self,
        actor: &Actor,
        app: &str,
        body: &serde_json::Value,
    ) -> Result<super::WriteAck, ReconcileError> {
        let mut f = crate::fields::Fields::of("", body)?;
        let action = f.str("action")?;
        f.finish()?;
        let policy = match crate::spec::DriftPolicy::parse("action", &action)? {
            crate::spec::DriftPolicy::Report => {
                return Err(spec::invalid("action", "must be restore or adopt").into())
            }
            p => p,
        };
        let slot = self.slot(app)?;
        let tenant = {
            let mut d = slot.lock();
            if d.drift.as_ref().is_none_or(|s| s.state != "held") {
                return Err(ReconcileError::Conflict(format!(
                    "app {app:?} has no drift waiting to be resolved"
                )));
            }
            d.drift_resolution = Some(policy);
            d.retry_at = None;
            d.spec.tenant.clone()
        };
        let mut ev = actor.event("drift.resolved");
        ev.app = Some(app.to_owned());
        ev.tenant = Some(tenant);
        ev.detail = Some(format!("action: {}", policy.as_str()));
        self.inner.events.record(ev);
        self.submit(&slot, actor, super::SecretOpKind::Sync).await
    }

    /// Unregisters an app: its Flux folder goes (Flux prunes what it applied), its platform repo
    /// stays unless `archive`. Its keys stay in the key store.
    pub async fn delete_app(
        &self,
        actor: &Actor,
        app: &str,
        archive: bool,
    ) -> Result<Option<String>, ReconcileError> {
        // One at a time with registrations: a namespace is free once its app is gone.
        let claims = self.inner.claims.lock().await;
        let slot = self.slot(app)?;
        let tenant = {
            let mut d = slot.lock();
            if d.deleted {
                return Err(ReconcileError::not_found("app", app));
            }
            d.deleted = true;
            d.spec.tenant.clone()
        };
        self.holders().remove(app);
        // The app's external-secrets overrides go with it: a later app of that name starts clean.
        // (No override write may land between listing them and forgetting them.)
        let writes = self.external_writes().await;
        let mut changes = vec![(store::app_path(app), None)];
        changes.extend(self.app_external_paths(app).into_iter().map(|p| (p, None)));
        let stored = self
            .state_commit(changes, format!("unregister app {app} by {}", actor.name))
            .await;
        if let Err(e) = stored {
            let mut d = slot.lock();
            d.deleted = false;
            self.holders().set(app, d.spec.namespaces());
            return Err(e);
        }
        self.apps().remove(app);
        self.forget_app_external(app);
        drop(writes);
        drop(claims);
        let flux = self
            .flux_commit(FluxScope::Apps(BTreeSet::from([app.to_owned()])))
            .await;
        if archive {
            let s = &self.inner.settings;
            let full_name = slot.lock().spec.platform_repo(&s.owner);
            let repo_ref = RepoRef::parse(&full_name).map_err(|source| ReconcileError::Host {
                repo: app.to_owned(),
                source,
            })?;
            self.inner
                .host
                .archive_repo(&repo_ref)
                .await
                .map_err(|source| ReconcileError::Host {
                    repo: repo_ref.to_string(),
                    source,
                })?;
        }
        let mut ev = actor.event("app.deleted");
        ev.app = Some(app.to_owned());
        ev.tenant = Some(tenant);
        ev.detail = archive.then(|| "platform repo archived".to_owned());
        let commit = flux?;
        ev.commit = commit.clone();
        self.inner.events.record(ev);
        Ok(commit)
    }

    /// The tenant boundary for a registration: no reserved namespace, none outside the patterns
    /// of the tenant whose key asks, and none that another app holds.
    pub(super) fn check_boundary(
        &self,
        actor: &Actor,
        spec: &AppSpec,
    ) -> Result<(), ReconcileError> {
        let boundary = &self.inner.settings.boundary;
        for (i, env) in spec.environments.iter().enumerate() {
            let field = format!("environments[{i}].namespace");
            match boundary.check_namespace(&spec.tenant, &env.namespace, actor.tenant_key.is_some())
            {
                Ok(()) => {}
                Err(r @ crate::boundary::Refusal::Reserved) => {
                    return Err(spec::invalid(field, r.reason()).into())
                }
                Err(r) => {
                    return Err(ReconcileError::Forbidden {
                        field,
                        reason: r.reason(),
                    })
                }
            }
        }
        let taken = spec.environments.iter().enumerate().find_map(|(i, env)| {
            let holders = self.holders();
            let owner = holders.other(&env.namespace, &spec.name)?.to_owned();
            Some((i, env.namespace.clone(), owner))
        });
        if let Some((i, namespace, owner_app)) = taken {
            let owner_tenant = self
                .slot(&owner_app)
                .map(|s| s.lock().spec.tenant.clone())
                .unwrap_or_default();
            return Err(ReconcileError::Taken {
                field: format!("environments[{i}].namespace"),
                namespace,
                owner_app,
                owner_tenant,
            });
        }
        Ok(())
    }

    /// A platform repo belongs to one app, and is never the Flux repo or the state repo: an app
    /// writing into another's repo would reach its secrets.
    pub(super) fn check_repo(&self, spec: &AppSpec) -> Result<(), ReconcileError> {
        let s = &self.inner.settings;
        let repo = spec.platform_repo(&s.owner);
        if !repo.starts_with(&format!("{}/", s.owner)) {
            // Only the repositories sealwright manages: a tenant may not point it at another.
            return Err(spec::invalid(
                "repo",
                format!(
                    "{repo} is not under {}, the host owner sealwright manages",
                    s.owner
                ),
            )
            .into());
        }
        if repo == s.flux_repo.to_string() {
            return Err(spec::invalid("repo", format!("{repo} is the Flux repo")).into());
        }
        if s.state_repo.as_deref() == Some(repo.as_str()) {
            return Err(spec::invalid("repo", format!("{repo} is sealwright's state repo")).into());
        }
        let apps = self.apps();
        let other = apps.iter().find(|(name, slot)| {
            **name != spec.name && {
                let d = slot.lock();
                !d.deleted && d.spec.platform_repo(&s.owner) == repo
            }
        });
        if other.is_some() {
            return Err(ReconcileError::Conflict(format!(
                "repo: {repo} is the platform repo of another app; a platform repo belongs to one app"
            )));
        }
        Ok(())
    }

    /// Why a stored registration breaks the boundary (one stored before it was enforced): a
    /// reserved namespace, or one another app also holds. Such an app is failed, never written.
    pub(super) fn boundary_breach(&self, app: &str, spec: &AppSpec) -> Option<String> {
        let boundary = &self.inner.settings.boundary;
        if let Some(ns) = spec.namespaces().find(|n| boundary.is_reserved(n)) {
            return Some(format!(
                "namespace {ns:?} is reserved: no app may target it; change the registration"
            ));
        }
        let holders = self.holders();
        spec.namespaces().find_map(|ns| {
            let other = holders.other(ns, app)?;
            Some(format!(
                "namespace {ns:?} is also held by app {other:?}; a namespace belongs to one app: change one registration"
            ))
        })
    }

    /// Apps whose registration came from the configuration directory.
    pub fn config_apps(&self) -> BTreeMap<String, AppSpec> {
        self.apps()
            .values()
            .filter_map(|s| {
                let d = s.lock();
                (d.source == Source::Config && !d.deleted).then(|| (s.name.clone(), d.spec.clone()))
            })
            .collect()
    }

    pub fn app(&self, app: &str) -> Result<AppView, ReconcileError> {
        let slot = self.slot(app)?;
        Ok(self.view(&slot))
    }

    pub fn list_apps(&self) -> Vec<AppView> {
        let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
        slots
            .iter()
            .filter(|s| !s.lock().deleted)
            .map(|s| self.view(s))
            .collect()
    }

    /// The app's tenant (for scoping API keys).
    pub fn tenant_of(&self, app: &str) -> Option<String> {
        self.slot(app).ok().map(|s| s.lock().spec.tenant.clone())
    }
}

pub(super) fn app_event(actor: &Actor, action: &str, spec: &AppSpec) -> Event {
    let mut ev = actor.event(action);
    ev.app = Some(spec.name.clone());
    ev.tenant = Some(spec.tenant.clone());
    ev.namespaces = spec.namespaces().map(str::to_owned).collect();
    ev
}
