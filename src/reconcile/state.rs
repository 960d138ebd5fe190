//! sealwright's state repo rounds (registrations, deployments, external secrets) and the API
//! keys kept in it.

use std::sync::atomic::Ordering;

use secrecy::SecretString;
use tokio::sync::oneshot;

use crate::git::{ChangeSet, CommitMessage};
use crate::spec::Invalid;

use super::store::ApiKeyRecord;
use super::{now_text, store, Actor, ReconcileError, Reconciler, StateOp};

impl Reconciler {
    pub(super) async fn state_commit(
        &self,
        changes: Vec<(String, Option<Vec<u8>>)>,
        line: String,
    ) -> Result<Option<String>, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        self.inner.state.submit(
            StateOp {
                changes,
                line,
                reply: tx,
            },
            move |ops| async move { me.state_round(ops).await },
        );
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    pub(super) async fn state_round(&self, ops: Vec<StateOp>) {
        let mut changes = ChangeSet::new();
        let mut lines = Vec::new();
        let mut bad = None;
        for op in &ops {
            lines.push(op.line.clone());
            for (path, bytes) in &op.changes {
                let r = match bytes {
                    Some(b) => changes.write(path, b.clone()).map(|_| ()),
                    None => changes.delete(path).map(|_| ()),
                };
                if let Err(e) = r {
                    bad = Some(e.to_string());
                }
            }
        }
        let result = match bad {
            Some(e) => Err(ReconcileError::State(e)),
            None => {
                let subject = match lines.as_slice() {
                    [one] => one.clone(),
                    many => format!("{} registration changes", many.len()),
                };
                let mut message = CommitMessage::new(&subject);
                if lines.len() > 1 {
                    for l in &lines {
                        message = message.line(&format!("- {l}"));
                    }
                }
                let s = &self.inner.settings;
                self.inner
                    .engine
                    .apply(
                        s.state_remote.clone(),
                        &s.branch,
                        changes,
                        message,
                        &s.author,
                    )
                    .await
                    .map(|a| {
                        if matches!(a, crate::git::Applied::Committed { .. }) {
                            self.inner
                                .metrics
                                .commits_state
                                .fetch_add(1, Ordering::Relaxed);
                        }
                        a.commit().map(str::to_owned)
                    })
                    .map_err(|e| ReconcileError::State(e.to_string()))
            }
        };
        for op in ops {
            let _ = op.reply.send(match &result {
                Ok(c) => Ok(c.clone()),
                Err(e) => Err(ReconcileError::State(e.to_string())),
            });
        }
    }

    /// Creates a tenant API key; the key itself is returned once and stored only as a hash.
    pub async fn create_api_key(
        &self,
        actor: &Actor,
        tenant: &str,
    ) -> Result<(ApiKeyRecord, SecretString), ReconcileError> {
        crate::names::validate_label("tenant", tenant).map_err(Invalid::from)?;
        use rand::RngCore;
        let mut id_bytes = [0u8; 6];
        let mut secret_bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut id_bytes);
        rand::rngs::OsRng.fill_bytes(&mut secret_bytes);
        let id: String = id_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let secret: zeroize::Zeroizing<String> =
            zeroize::Zeroizing::new(secret_bytes.iter().map(|b| format!("{b:02x}")).collect());
        let key = SecretString::from(format!("swk_{id}_{}", secret.as_str()));
        let record = ApiKeyRecord {
            id: id.clone(),
            tenant: tenant.to_owned(),
            sha256: hash_key(&key),
            created: now_text(),
        };
        self.state_commit(
            vec![(
                store::api_key_path(&id),
                Some(store::encode_api_key(&record)),
            )],
            format!("create API key {id} for tenant {tenant} by {}", actor.name),
        )
        .await?;
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), record.clone());
        let mut ev = actor.event("apikey.created");
        ev.tenant = Some(tenant.to_owned());
        ev.detail = Some(format!("key id {id}"));
        self.inner.events.record(ev);
        Ok((record, key))
    }

    pub fn api_keys(&self, tenant: Option<&str>) -> Vec<ApiKeyRecord> {
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .filter(|k| tenant.is_none_or(|t| k.tenant == t))
            .cloned()
            .collect()
    }

    pub async fn delete_api_key(&self, actor: &Actor, id: &str) -> Result<(), ReconcileError> {
        let tenant = self
            .inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .map(|k| k.tenant.clone())
            .ok_or_else(|| ReconcileError::not_found("API key", id))?;
        self.state_commit(
            vec![(store::api_key_path(id), None)],
            format!("revoke API key {id} of tenant {tenant} by {}", actor.name),
        )
        .await?;
        self.inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id);
        let mut ev = actor.event("apikey.revoked");
        ev.tenant = Some(tenant);
        ev.detail = Some(format!("key id {id}"));
        self.inner.events.record(ev);
        Ok(())
    }

    /// The tenant and key id a presented API key belongs to, if it is one of ours.
    pub fn check_api_key(&self, presented: &str) -> Option<(String, String)> {
        let id = presented.strip_prefix("swk_")?.split('_').next()?;
        let keys = self
            .inner
            .api_keys
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let rec = keys.get(id)?;
        let hash = hash_key(&SecretString::from(presented.to_owned()));
        use subtle::ConstantTimeEq;
        bool::from(hash.as_bytes().ct_eq(rec.sha256.as_bytes()))
            .then(|| (rec.tenant.clone(), rec.id.clone()))
    }
}

pub(super) fn hash_key(key: &SecretString) -> String {
    use secrecy::ExposeSecret;
    use sha2::{Digest, Sha256};
    Sha256::digest(key.expose_secret().as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn api_keys_hash_and_compare() {
        let k = SecretString::from("swk_0a0b0c0d0e0f_00".to_owned());
        assert_eq!(hash_key(&k).len(), 64);
        assert_ne!(
            hash_key(&k),
            hash_key(&SecretString::from("swk_x".to_owned()))
        );
    }
}
