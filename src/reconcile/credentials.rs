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

use super::store::DeploymentRecord;
use super::StatusError;
use super::{now_text, Actor, AppSlot, AppSpec, ReconcileError, Reconciler};
use crate::model::{Credential, SecretValue};
use crate::tokens::deployment::DeploymentSpec;
use crate::tokens::jwt::{Algorithm, Claims, TokenError, Verifier};
use crate::tokens::keyring::{self, KeyRing};
use sops::scalar::DateTime;

/// A refresh round mints this many tokens, then reports their failures, then goes on.
pub const CHUNK: usize = 10;

/// How far a token's `exp` and `iat` may be off the server's clock.
pub(super) const LEEWAY_SECS: i64 = 30;

/// A minted token and what it says.
#[derive(Clone)]
pub(super) struct Minted {
    pub(super) token: SecretString,
    pub(super) claims: Claims,
    pub(super) kid: String,
    pub(super) alg: Algorithm,
}

pub(super) struct DeploymentData {
    pub(super) record: DeploymentRecord,
    /// The token the platform repo holds (the branch Flux follows, or an open pull request).
    pub(super) current: Option<Minted>,
    pub(super) commit: Option<String>,
    pub(super) pull_request: Option<String>,
    /// Minted, waiting for its commit.
    pub(super) next: Option<Minted>,
    pub(super) last_refresh: Option<i64>,
    pub(super) last_error: Option<StatusError>,
}

impl DeploymentData {
    pub(super) fn new(record: DeploymentRecord) -> DeploymentData {
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

    pub(super) fn fail(&mut self, message: String) {
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
    pub(super) fn deployments(
        &self,
    ) -> std::sync::MutexGuard<'_, BTreeMap<String, DeploymentData>> {
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

    pub(super) fn now(&self) -> i64 {
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

    // ----- views -----

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
