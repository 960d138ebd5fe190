//! Deployments: registering, removing and listing them, and revoking their tokens. Each one
//! gets a credentials Secret in its app's platform repo, minted and refreshed by the
//! credential rounds (`credentials.rs`).

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value as Json;

use crate::tokens::deployment::DeploymentSpec;
use crate::tokens::jwt::Algorithm;

use super::credentials::{DeploymentData, LEEWAY_SECS};
use super::store::{self, DeploymentRecord, Source};
use super::{Actor, ReconcileError, Reconciler, SecretOpKind};
use super::{StatusError, WriteAck};

impl Reconciler {
    /// The deployment whose credentials Secret is `<namespace>/<name>`, as `(name, id)`.
    pub(super) fn credentials_owner(
        &self,
        namespace: &str,
        name: &str,
    ) -> Option<(String, String)> {
        self.deployments()
            .values()
            .map(|d| &d.record.spec)
            .find(|s| {
                s.namespace == namespace && crate::model::credentials_secret_name(&s.name) == name
            })
            .map(|s| (s.name.clone(), s.id.clone()))
    }

    /// A deployment's `<name>-credentials` is a Secret name no one else in its namespace writes:
    /// not another deployment, not a managed secret of the app (whichever came first keeps it).
    pub(super) fn check_credentials_name(
        &self,
        spec: &DeploymentSpec,
    ) -> Result<(), ReconcileError> {
        let secret = crate::model::credentials_secret_name(&spec.name);
        let other = self
            .deployments()
            .values()
            .map(|d| &d.record.spec)
            .find(|s| s.id != spec.id && s.namespace == spec.namespace && s.name == spec.name)
            .map(|s| s.id.clone());
        if let Some(other) = other {
            return Err(ReconcileError::Conflict(format!(
                "Secret {}/{secret} is already the credentials Secret of deployment {} ({other}); give this deployment another name",
                spec.namespace, spec.name
            )));
        }
        if let Ok(slot) = self.slot(&spec.app) {
            let d = slot.lock();
            if let Some(m) = d
                .desired()
                .values()
                .find(|m| m.target_name == secret && m.target_namespaces.contains(&spec.namespace))
            {
                return Err(ReconcileError::Conflict(format!(
                    "Secret {}/{secret} is already managed secret {:?} of app {:?}; give this deployment another name",
                    spec.namespace, m.name, spec.app
                )));
            }
        }
        Ok(())
    }

    /// Registers (or replaces) a deployment: stored in the state repo, then its app's platform
    /// round mints and commits its token. Returns whether it was new, and its view after that
    /// round (a failed round is in `lastError` and retried; the registration stays).
    pub async fn put_deployment(
        &self,
        actor: &Actor,
        id: &str,
        body: &Json,
        source: Source,
    ) -> Result<(bool, DeploymentView), ReconcileError> {
        let spec = DeploymentSpec::from_json(id, body, |a| {
            self.slot(a).ok().map(|s| s.lock().spec.clone())
        })?;
        let id = spec.id.clone();
        self.check_credentials_name(&spec)?;
        let (previous, revoked) = {
            let deps = self.deployments();
            match deps.get(&id) {
                Some(d) if d.record.source != source => {
                    return Err(ReconcileError::Conflict(match d.record.source {
                        Source::Config => format!(
                            "deployment {id} is declared by the configuration directory; change it there"
                        ),
                        Source::Api => format!(
                            "deployment {id} is registered through the API; the configuration directory leaves it alone"
                        ),
                        Source::Kubernetes => format!(
                            "deployment {id} is declared in the cluster; change it there"
                        ),
                    }));
                }
                Some(d) => (Some(d.record.spec.clone()), d.record.revoked.clone()),
                None => (None, BTreeMap::new()),
            }
        };
        if previous.as_ref() == Some(&spec) {
            return self.deployment(&id).map(|v| (false, v));
        }
        let record = DeploymentRecord {
            spec: spec.clone(),
            source,
            revoked,
        };
        self.state_commit(
            vec![(
                store::deployment_path(&id),
                Some(store::encode_deployment(&record)),
            )],
            format!(
                "{} deployment {} ({}) of app {} by {}",
                if previous.is_some() {
                    "update"
                } else {
                    "register"
                },
                spec.name,
                id,
                spec.app,
                actor.name
            ),
        )
        .await?;
        {
            let mut deps = self.deployments();
            match deps.get_mut(&id) {
                Some(d) => {
                    d.record = record;
                    // The old token names the old place; the new one is minted now.
                    d.next = None;
                }
                None => {
                    deps.insert(id.clone(), DeploymentData::new(record));
                }
            }
        }
        let mut ev = actor.event(if previous.is_some() {
            "deployment.updated"
        } else {
            "deployment.created"
        });
        ev.app = Some(spec.app.clone());
        ev.tenant = self.tenant_of(&spec.app);
        ev.namespaces = vec![spec.namespace.clone()];
        ev.detail = Some(format!("deployment {} ({id})", spec.name));
        self.inner.events.record(ev);
        let mut apps = BTreeSet::from([spec.app.clone()]);
        if let Some(p) = &previous {
            apps.insert(p.app.clone());
        }
        self.sync_apps(actor, apps).await;
        self.deployment(&id).map(|v| (previous.is_none(), v))
    }

    /// Unregisters a deployment: its record goes from the state repo, its credentials file
    /// from the platform repo, and its tokens stop verifying at once.
    pub async fn delete_deployment(
        &self,
        actor: &Actor,
        id: &str,
        source: Source,
    ) -> Result<WriteAck, ReconcileError> {
        let id = crate::tokens::deployment::parse_uuid("id", id)?;
        let spec = {
            let deps = self.deployments();
            let d = deps
                .get(&id)
                .ok_or_else(|| ReconcileError::not_found("deployment", &id))?;
            if d.record.source != source && source == Source::Api {
                return Err(ReconcileError::Conflict(format!(
                    "deployment {id} is declared by the configuration directory; remove it there"
                )));
            }
            d.record.spec.clone()
        };
        self.state_commit(
            vec![(store::deployment_path(&id), None)],
            format!(
                "unregister deployment {} ({id}) of app {} by {}",
                spec.name, spec.app, actor.name
            ),
        )
        .await?;
        self.deployments().remove(&id);
        let mut ev = actor.event("deployment.deleted");
        ev.app = Some(spec.app.clone());
        ev.tenant = self.tenant_of(&spec.app);
        ev.detail = Some(format!("deployment {} ({id})", spec.name));
        let ack = match self.slot(&spec.app) {
            Ok(slot) => self.submit(&slot, actor, SecretOpKind::Sync).await?,
            Err(_) => WriteAck::at(None),
        };
        ev.commit = ack.commit.clone();
        ev.pull_request = ack.pull_request.clone();
        self.inner.events.record(ev);
        Ok(ack)
    }

    /// Denies the deployment's current token until it expires, and mints a new one at once.
    /// Returns the revoked token's id (none when the deployment had no token yet).
    pub async fn revoke_deployment_token(
        &self,
        actor: &Actor,
        id: &str,
    ) -> Result<(Option<String>, DeploymentView), ReconcileError> {
        let id = crate::tokens::deployment::parse_uuid("id", id)?;
        let now = self.now();
        let (record, jti) = {
            let deps = self.deployments();
            let d = deps
                .get(&id)
                .ok_or_else(|| ReconcileError::not_found("deployment", &id))?;
            let mut record = d.record.clone();
            // Every token the repo may hold or is about to: the committed one and a staged one.
            let mut revoked_now = Vec::new();
            for m in [&d.current, &d.next].into_iter().flatten() {
                record.revoked.insert(m.claims.jti.clone(), m.claims.exp);
                revoked_now.push(m.claims.jti.clone());
            }
            // Entries past their expiry deny nothing any more.
            record.revoked.retain(|_, exp| *exp + LEEWAY_SECS >= now);
            (record, revoked_now.into_iter().next())
        };
        if jti.is_some() {
            self.state_commit(
                vec![(
                    store::deployment_path(&id),
                    Some(store::encode_deployment(&record)),
                )],
                format!(
                    "revoke the token of deployment {} ({id}) by {}",
                    record.spec.name, actor.name
                ),
            )
            .await?;
        }
        let app = record.spec.app.clone();
        if let Some(d) = self.deployments().get_mut(&id) {
            d.record.revoked = record.revoked;
            d.next = None;
        }
        let mut ev = actor.event("deployment.token_revoked");
        ev.app = Some(app.clone());
        ev.tenant = self.tenant_of(&app);
        ev.detail = Some(format!(
            "deployment {} ({id}), token id {}",
            record.spec.name,
            jti.as_deref().unwrap_or("(none yet)")
        ));
        self.inner.events.record(ev);
        self.sync_apps(actor, BTreeSet::from([app])).await;
        self.deployment(&id).map(|v| (jti, v))
    }

    pub(super) fn view_of(&self, d: &DeploymentData) -> DeploymentView {
        let s = &self.inner.settings.credentials;
        DeploymentView {
            spec: d.record.spec.clone(),
            source: d.record.source,
            tenant: None,
            enabled: s.enabled,
            algorithm: d.current.as_ref().map(|m| m.alg),
            key_id: d.current.as_ref().map(|m| m.kid.clone()),
            issued_at: d.current.as_ref().map(|m| m.claims.iat),
            expires_at: d.current.as_ref().map(|m| m.claims.exp),
            last_refresh: d.last_refresh,
            commit: d.commit.clone(),
            pull_request: d.pull_request.clone(),
            last_error: d.last_error.clone(),
            revoked: d.record.revoked.len(),
        }
    }

    pub fn deployment(&self, id: &str) -> Result<DeploymentView, ReconcileError> {
        let id = id.to_ascii_lowercase();
        let mut v = {
            let deps = self.deployments();
            let d = deps
                .get(&id)
                .ok_or_else(|| ReconcileError::not_found("deployment", &id))?;
            self.view_of(d)
        };
        v.tenant = self.tenant_of(&v.spec.app);
        Ok(v)
    }

    pub fn list_deployments(&self) -> Vec<DeploymentView> {
        let mut views: Vec<DeploymentView> = {
            let deps = self.deployments();
            deps.values().map(|d| self.view_of(d)).collect()
        };
        for v in &mut views {
            v.tenant = self.tenant_of(&v.spec.app);
        }
        views
    }

    /// Deployments declared by the configuration directory.
    pub fn config_deployments(&self) -> BTreeMap<String, DeploymentSpec> {
        self.deployments()
            .values()
            .filter(|d| d.record.source == Source::Config)
            .map(|d| (d.record.spec.id.clone(), d.record.spec.clone()))
            .collect()
    }
}

/// A deployment for the API: registration and token status, never the token.
#[derive(Clone, Debug)]
pub struct DeploymentView {
    pub spec: DeploymentSpec,
    pub source: Source,
    pub tenant: Option<String>,
    pub enabled: bool,
    pub algorithm: Option<Algorithm>,
    pub key_id: Option<String>,
    pub issued_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub last_refresh: Option<i64>,
    pub commit: Option<String>,
    pub pull_request: Option<String>,
    pub last_error: Option<StatusError>,
    pub revoked: usize,
}
