//! Deployment credentials inside the reconciler: the registry of deployments (state repo
//! `deployments/<id>.yaml`), the signing key ring, minting inside an app's platform round, the
//! refresh round, revocation, and verification of the tokens deployments call back with.
//!
//! A token is minted into a deployment's `next` and rendered into the app's next platform
//! commit; it becomes the deployment's `current` token (what `GET /v1/deployments/{id}` reports)
//! only once that commit is pushed. A round that fails leaves `next` for the following round, so
//! a token is never reported that the repo does not hold. Token values live in memory and in the
//! encrypted files only: never in the state repo, logs, events or commit messages.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value as Json};

use super::store::{self, DeploymentRecord, Source};
use super::{now_text, Actor, AppSlot, AppSpec, ReconcileError, Reconciler, SecretOpKind};
use super::{StatusError, WriteAck};
use crate::model::{Credential, SecretValue};
use crate::render;
use crate::tokens::deployment::DeploymentSpec;
use crate::tokens::jwt::{Algorithm, Claims, TokenError, Verifier};
use crate::tokens::keyring::{self, KeyRing};
use sops::scalar::DateTime;

/// A refresh round mints this many tokens, then reports their failures, then goes on.
pub const CHUNK: usize = 10;

/// How far a token's `exp` and `iat` may be off the server's clock.
const LEEWAY_SECS: i64 = 30;

/// A minted token and what it says.
#[derive(Clone)]
pub(super) struct Minted {
    token: SecretString,
    claims: Claims,
    kid: String,
    alg: Algorithm,
}

pub(super) struct DeploymentData {
    record: DeploymentRecord,
    /// The token the platform repo holds (the branch Flux follows, or an open pull request).
    current: Option<Minted>,
    commit: Option<String>,
    pull_request: Option<String>,
    /// Minted, waiting for its commit.
    next: Option<Minted>,
    last_refresh: Option<i64>,
    last_error: Option<StatusError>,
}

impl DeploymentData {
    fn new(record: DeploymentRecord) -> DeploymentData {
        DeploymentData {
            record,
            current: None,
            commit: None,
            pull_request: None,
            next: None,
            last_refresh: None,
            last_error: None,
        }
    }

    fn fail(&mut self, message: String) {
        self.last_error = Some(StatusError {
            time: now_text(),
            message,
        });
    }
}

/// The signing keys and what verifies with them (rebuilt when the ring changes).
#[derive(Default)]
pub(super) struct TokenKeys {
    ring: Option<KeyRing>,
    verifier: Option<Arc<Verifier>>,
}

/// The deployments of one app as one platform round delivers them.
#[derive(Default)]
pub(super) struct CredRound {
    pub models: Vec<Credential>,
    /// `credential_key`s of the tokens the repo already holds (their files may be kept unread).
    pub unchanged: BTreeSet<String>,
    /// Deployment id → token id of every credential rendered.
    pub rendered: BTreeMap<String, String>,
    /// Names of the deployments that get a new token in this round.
    pub minted: Vec<String>,
    /// Credentials files the repo holds that this render drops.
    pub removed: usize,
    /// The render differs from what the repo holds (a new token, a file to remove).
    pub changed: bool,
}

/// What a deployment caller is, once its token checks out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentCaller {
    pub id: String,
    pub environment: String,
    pub cluster_id: String,
    pub app: String,
    pub tenant: Option<String>,
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

fn time_json(t: Option<i64>) -> Json {
    t.map_or(Json::Null, |s| json!(DateTime::from_unix(s).rfc3339()))
}

impl DeploymentView {
    pub fn to_json(&self) -> Json {
        let mut j = self.spec.to_json();
        j["source"] = json!(self.source.as_str());
        j["secretName"] = json!(self.spec.secret_name());
        j["file"] = json!(render::secret_path(
            &self.spec.namespace,
            &self.spec.secret_name()
        ));
        j["credentialsEnabled"] = json!(self.enabled);
        j["algorithm"] = json!(self.algorithm.map(Algorithm::as_str));
        j["keyId"] = json!(self.key_id);
        j["issuedAt"] = time_json(self.issued_at);
        j["expiresAt"] = time_json(self.expires_at);
        j["lastRefresh"] = time_json(self.last_refresh);
        j["committed"] = json!(self.commit.is_some());
        j["commit"] = json!(self.commit);
        j["pullRequest"] = json!(self.pull_request);
        j["lastError"] = self.last_error.as_ref().map_or(
            Json::Null,
            |e| json!({"time": e.time, "message": e.message}),
        );
        j["revokedTokens"] = json!(self.revoked);
        j
    }
}

/// What a refresh round did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Tokens minted.
    pub minted: usize,
    /// Platform repos the round committed to.
    pub apps: usize,
    /// Deployment id and why, for every deployment left without a fresh token.
    pub failed: Vec<(String, String)>,
}

/// A credential file read back from a platform repo at start-up.
pub struct RecoveredCredential {
    pub deployment_id: String,
    pub namespace: String,
    pub access_token: SecretValue,
}

fn random_jti() -> String {
    use rand::RngCore;
    let mut b = [0u8; 16];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

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
    fn check_credentials_name(&self, spec: &DeploymentSpec) -> Result<(), ReconcileError> {
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

    fn deployments(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, DeploymentData>> {
        self.inner
            .deployments
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn token_keys(&self) -> std::sync::MutexGuard<'_, TokenKeys> {
        self.inner
            .token_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }

    fn now(&self) -> i64 {
        self.inner.settings.clock.now()
    }

    /// A token due for replacement `slack` before its refresh time, so that the refresh timer
    /// (which ticks every `slack`) never lets one go a whole tick late.
    pub fn refresh_tick(&self) -> Duration {
        let every = self.inner.settings.credentials.shortest_interval() / 10;
        every.clamp(Duration::from_secs(1), Duration::from_secs(60))
    }

    fn due(&self, d: &DeploymentData, now: i64) -> bool {
        let Some(m) = &d.current else {
            return true;
        };
        let c = self
            .inner
            .settings
            .credentials
            .for_cluster(&d.record.spec.cluster_id);
        let slack = self.refresh_tick().as_secs() as i64;
        m.alg != c.algorithm
            || d.record.revoked.contains_key(&m.claims.jti)
            || now + slack >= m.claims.iat + c.refresh_interval.as_secs() as i64
            || now + slack >= m.claims.exp
            || m.claims.cluster_id != d.record.spec.cluster_id
            || m.claims.env_id != d.record.spec.environment
    }

    /// Mints a token for `spec` with its cluster's algorithm and lifetime.
    fn mint(&self, keys: &TokenKeys, spec: &DeploymentSpec, now: i64) -> Result<Minted, String> {
        let s = &self.inner.settings.credentials;
        let c = s.for_cluster(&spec.cluster_id);
        let key = keys
            .ring
            .as_ref()
            .and_then(|r| r.active(c.algorithm))
            .ok_or_else(|| {
                format!(
                    "no {} signing key (the key ring was not loaded)",
                    c.algorithm.as_str()
                )
            })?;
        let claims = Claims {
            sub: spec.id.clone(),
            env_id: spec.environment.clone(),
            cluster_id: spec.cluster_id.clone(),
            iss: s.api_url.clone(),
            jti: random_jti(),
            iat: now,
            exp: now + c.token_duration.as_secs() as i64,
        };
        Ok(Minted {
            token: SecretString::from(key.mint(&claims)),
            claims,
            kid: key.kid().to_owned(),
            alg: key.alg(),
        })
    }

    /// Reads the deployments and the signing keys from the state repo's records; creates the
    /// ring (or a key for an algorithm newly configured) and stores it, and drops retired keys
    /// whose tokens have all expired.
    pub(super) async fn load_credentials(
        &self,
        deployments: BTreeMap<String, DeploymentRecord>,
        signing_keys: Option<Vec<u8>>,
    ) -> Result<(), ReconcileError> {
        let s = &self.inner.settings.credentials;
        let now = self.now();
        let mut changed = false;
        let mut ring = match signing_keys {
            Some(bytes) => {
                let store = self.inner.keys.clone();
                let ring = tokio::task::spawn_blocking(move || {
                    let operator = store.operator().map_err(|e| e.to_string())?;
                    KeyRing::decode(&bytes, &operator).map_err(|e| e.to_string())
                })
                .await
                .map_err(|e| ReconcileError::Internal(e.to_string()))?
                .map_err(ReconcileError::State)?;
                Some(ring)
            }
            None if s.enabled => {
                changed = true;
                Some(KeyRing::new(s.defaults.algorithm, now))
            }
            None => None,
        };
        if let Some(r) = ring.as_mut() {
            if s.enabled {
                for alg in s.algorithms() {
                    changed |= r.ensure(alg, now);
                }
            }
            changed |= r.prune(now);
        }
        if changed {
            if let Some(r) = &ring {
                self.store_ring(r, "update the token signing keys".into())
                    .await?;
            }
        }
        self.set_ring(ring);
        *self.deployments() = deployments
            .into_iter()
            .map(|(id, r)| (id, DeploymentData::new(r)))
            .collect();
        Ok(())
    }

    fn set_ring(&self, ring: Option<KeyRing>) {
        let mut k = self.token_keys();
        k.verifier = ring
            .as_ref()
            .map(|r| Arc::new(r.verifier(&self.inner.settings.credentials.api_url, LEEWAY_SECS)));
        k.ring = ring;
    }

    async fn store_ring(&self, ring: &KeyRing, line: String) -> Result<(), ReconcileError> {
        let store = self.inner.keys.clone();
        let ring = ring.clone();
        let bytes = tokio::task::spawn_blocking(move || {
            let operator = store.operator().map_err(|e| e.to_string())?;
            ring.encode(&operator.recipient(), DateTime::now_utc())
                .map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| ReconcileError::Internal(e.to_string()))?
        .map_err(ReconcileError::State)?;
        self.state_commit(vec![(keyring::PATH.to_owned(), Some(bytes))], line)
            .await
            .map(|_| ())
    }

    /// Retires every active signing key and signs with new ones from now on; every token is
    /// minted again with them. A retired key verifies until the last token it signed expires.
    pub async fn rotate_signing_keys(&self, actor: &Actor) -> Result<Vec<String>, ReconcileError> {
        let s = &self.inner.settings.credentials;
        let now = self.now();
        let mut ring = self
            .token_keys()
            .ring
            .clone()
            .unwrap_or_else(|| KeyRing::new(s.defaults.algorithm, now));
        let lifetime = s.longest_duration().as_secs() as i64 + LEEWAY_SECS;
        for alg in s.algorithms() {
            ring.rotate(alg, now, lifetime);
        }
        self.store_ring(
            &ring,
            format!("rotate the token signing keys by {}", actor.name),
        )
        .await?;
        let kids = ring.kids();
        self.set_ring(Some(ring));
        let mut ev = actor.event("signing_keys.rotated");
        ev.detail = Some(format!("active keys now: {}", kids.join(", ")));
        self.inner.events.record(ev);
        self.refresh_credentials(true).await;
        Ok(kids)
    }

    /// The public keys that verify deployment tokens (JWKS); HS256 keys are never published.
    pub fn jwks(&self) -> Json {
        self.token_keys()
            .verifier
            .as_ref()
            .map_or_else(|| json!({"keys": []}), |v| v.jwks())
    }

    /// Checks a deployment token: signature with the pinned algorithm, issuer, expiry, and that
    /// neither the token nor its deployment was revoked.
    pub fn verify_token(&self, token: &str) -> Result<DeploymentCaller, TokenError> {
        let verifier = self.token_keys().verifier.clone();
        let verifier = verifier.ok_or(TokenError::UnknownKey)?;
        let claims = verifier.verify(token, self.now())?;
        let (spec, revoked) = {
            let deps = self.deployments();
            let d = deps.get(&claims.sub).ok_or(TokenError::Revoked)?;
            (
                d.record.spec.clone(),
                d.record.revoked.contains_key(&claims.jti),
            )
        };
        // A token of a deployment since moved to another environment or cluster speaks for a
        // place the deployment no longer is: refused like a revoked one.
        if revoked || spec.environment != claims.env_id || spec.cluster_id != claims.cluster_id {
            return Err(TokenError::Revoked);
        }
        Ok(DeploymentCaller {
            tenant: self.tenant_of(&spec.app),
            id: spec.id,
            environment: spec.environment,
            cluster_id: spec.cluster_id,
            app: spec.app,
        })
    }

    // ----- registrations -----

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

    // ----- views -----

    fn view_of(&self, d: &DeploymentData) -> DeploymentView {
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

    // ----- rounds -----

    /// The credentials an app's platform round renders: for each of its deployments the staged
    /// token, else the current one while it is fresh, else a new one. A deployment that cannot
    /// get one (its environment is gone from the app, no signing key) is skipped with its error
    /// recorded; the others go on. With credentials disabled, none: their files are removed.
    pub(super) fn credential_round(
        &self,
        app: &AppSpec,
        in_repo: &BTreeMap<String, String>,
    ) -> CredRound {
        let s = &self.inner.settings.credentials;
        let mut out = CredRound::default();
        if s.enabled {
            let now = self.now();
            let keys = self.token_keys();
            let mut deps = self.deployments();
            for d in deps.values_mut().filter(|d| d.record.spec.app == app.name) {
                let spec = d.record.spec.clone();
                if let Err(e) = spec.check_app(Some(app)) {
                    d.fail(e.to_string());
                    continue;
                }
                let token = match (&d.next, self.due(d, now)) {
                    (Some(n), _) => n.clone(),
                    (None, false) => match &d.current {
                        Some(c) => c.clone(),
                        None => continue,
                    },
                    (None, true) => match self.mint(&keys, &spec, now) {
                        Ok(m) => {
                            d.next = Some(m.clone());
                            m
                        }
                        Err(e) => {
                            d.fail(e);
                            continue;
                        }
                    },
                };
                let jti = token.claims.jti.clone();
                if in_repo.get(&spec.id) == Some(&jti) {
                    out.unchanged.insert(super::credential_key(&spec.id));
                } else {
                    out.minted.push(spec.name.clone());
                }
                out.models.push(self.credential_model(&spec, &token));
                out.rendered.insert(spec.id.clone(), jti);
            }
        }
        out.removed = in_repo
            .keys()
            .filter(|id| !out.rendered.contains_key(*id))
            .count();
        out.changed = out.rendered != *in_repo;
        out
    }

    fn credential_model(&self, spec: &DeploymentSpec, m: &Minted) -> Credential {
        let api_url = &self.inner.settings.credentials.api_url;
        let token = m.token.expose_secret();
        let values = zeroize::Zeroizing::new(crate::plain::yaml_of(&json!({
            "platz": {
                "api_url": api_url,
                "deployment": {"id": spec.id, "access_token": token},
            }
        })));
        Credential {
            deployment_id: spec.id.clone(),
            deployment_name: spec.name.clone(),
            environment: spec.environment.clone(),
            cluster_id: spec.cluster_id.clone(),
            namespace: spec.namespace.clone(),
            data: vec![
                (
                    "access_token".into(),
                    SecretValue::new(token.as_bytes().to_vec()),
                ),
                (
                    "api_url".into(),
                    SecretValue::new(api_url.as_bytes().to_vec()),
                ),
                (
                    "deployment_id".into(),
                    SecretValue::new(spec.id.as_bytes().to_vec()),
                ),
                ("values.yaml".into(), SecretValue::new(values.to_vec())),
            ],
        }
    }

    /// After a platform round: the tokens it pushed (`Ok`: the commit on the branch Flux follows,
    /// or the pull request carrying it) become current; a failure is each staged token's error.
    pub(super) fn credentials_pushed(
        &self,
        slot: &AppSlot,
        round: &CredRound,
        outcome: Result<(Option<String>, Option<String>), String>,
    ) {
        let now = self.now();
        {
            let mut deps = self.deployments();
            for (id, jti) in &round.rendered {
                let Some(d) = deps.get_mut(id) else {
                    continue;
                };
                match &outcome {
                    Ok((commit, pr)) => {
                        if d.next.as_ref().is_some_and(|n| &n.claims.jti == jti) {
                            d.current = d.next.take();
                            d.last_refresh = Some(now);
                            d.commit = commit.clone();
                            d.pull_request = pr.clone();
                        } else if d.current.as_ref().is_some_and(|c| &c.claims.jti == jti)
                            && d.commit.is_none()
                        {
                            d.commit = commit.clone();
                        }
                        if d.current.as_ref().is_some_and(|c| &c.claims.jti == jti) {
                            d.last_error = None;
                        }
                    }
                    Err(message) => {
                        if d.next.as_ref().is_some_and(|n| &n.claims.jti == jti) {
                            d.fail(format!("the new token was not committed: {message}"));
                        }
                    }
                }
            }
        }
        if outcome.is_ok() {
            slot.lock().credentials = round.rendered.clone();
        }
    }

    /// Takes the credentials files a platform repo holds (read back at start-up) as the
    /// deployments' current tokens, when they verify and belong to the deployment there; so a
    /// restart neither re-mints nor commits. Anything else is left to the next round to replace.
    pub(super) fn adopt_credentials(
        &self,
        slot: &AppSlot,
        head: Option<String>,
        found: Vec<RecoveredCredential>,
    ) {
        let verifier = self.token_keys().verifier.clone();
        let Some(verifier) = verifier else {
            return;
        };
        let now = self.now();
        let mut in_repo = BTreeMap::new();
        {
            let mut deps = self.deployments();
            for f in found {
                let Ok(text) = std::str::from_utf8(f.access_token.expose()) else {
                    continue;
                };
                // An expired token is not adopted: the round replaces it.
                let Ok(claims) = verifier.verify(text, now) else {
                    continue;
                };
                let Some(d) = deps.get_mut(&f.deployment_id) else {
                    continue;
                };
                if claims.sub != d.record.spec.id
                    || f.namespace != d.record.spec.namespace
                    || d.record.spec.app != slot.name
                {
                    continue;
                }
                let Some((kid, alg)) = crate::tokens::jwt::header_key(text) else {
                    continue;
                };
                in_repo.insert(claims.sub.clone(), claims.jti.clone());
                d.last_refresh = Some(claims.iat);
                d.commit = head.clone();
                d.current = Some(Minted {
                    token: SecretString::from(text.to_owned()),
                    claims,
                    kid,
                    alg,
                });
            }
        }
        slot.lock().credentials = in_repo;
    }

    /// Mints every due token (all of them with `force`), in chunks of [`CHUNK`]: a deployment
    /// that fails is reported after its chunk and in its status, and never stops the others.
    /// Then one platform round per app commits all of its new tokens at once.
    pub async fn refresh_credentials(&self, force: bool) -> RefreshReport {
        let mut report = RefreshReport::default();
        if !self.inner.settings.credentials.enabled {
            return report;
        }
        let _span = tracing::info_span!("credentials.refresh", force);
        let now = self.now();
        // Pruning retired keys whose tokens have all expired is part of the schedule too.
        let ring = self.token_keys().ring.clone();
        if let Some(mut ring) = ring {
            if ring.prune(now) {
                let stored = self
                    .store_ring(
                        &ring,
                        "drop token signing keys whose tokens have all expired".into(),
                    )
                    .await;
                match stored {
                    Ok(()) => self.set_ring(Some(ring)),
                    Err(e) => tracing::warn!(error = %e, "could not store the pruned key ring"),
                }
            }
        }
        let apps: BTreeMap<String, AppSpec> = {
            let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
            slots
                .iter()
                .filter_map(|s| {
                    let d = s.lock();
                    (!d.deleted).then(|| (s.name.clone(), d.spec.clone()))
                })
                .collect()
        };
        let ids: Vec<String> = self.deployments().keys().cloned().collect();
        let mut touched = BTreeSet::new();
        for chunk in ids.chunks(CHUNK) {
            let mut failed = Vec::new();
            {
                let keys = self.token_keys();
                let mut deps = self.deployments();
                for id in chunk {
                    let Some(d) = deps.get_mut(id) else {
                        continue;
                    };
                    let spec = d.record.spec.clone();
                    let minted = spec
                        .check_app(apps.get(&spec.app))
                        .map_err(|e| e.to_string())
                        .and_then(|()| {
                            if force || self.due(d, now) {
                                self.mint(&keys, &spec, now).map(Some)
                            } else {
                                Ok(None)
                            }
                        });
                    match minted {
                        Ok(Some(m)) => {
                            d.next = Some(m);
                            report.minted += 1;
                            touched.insert(spec.app.clone());
                        }
                        Ok(None) => {}
                        Err(e) => {
                            d.fail(e.clone());
                            failed.push((id.clone(), e));
                        }
                    }
                }
            }
            for (id, e) in &failed {
                tracing::warn!(deployment = %id, error = %e, "no new token for this deployment");
            }
            report.failed.extend(failed);
            // Minting is CPU work: let the API answer between chunks.
            tokio::task::yield_now().await;
        }
        report.apps = self
            .sync_apps(&Actor::new("credentials"), touched.clone())
            .await
            .len();
        // A staged token its round could not commit is a failure of that deployment too.
        let deps = self.deployments();
        for (id, d) in deps.iter() {
            if touched.contains(&d.record.spec.app) && d.next.is_some() {
                let why = d
                    .last_error
                    .as_ref()
                    .map_or_else(|| "not committed".to_owned(), |e| e.message.clone());
                if !report.failed.iter().any(|(f, _)| f == id) {
                    report.failed.push((id.clone(), why));
                }
            }
        }
        report
    }
}
