//! The key store of controller mode: every key is a Kubernetes Secret in the operator's
//! namespace, so nothing lives only on the pod's disk and a pod restarted on an empty disk finds
//! every key again.
//!
//! - `<app>-platform-age-key`, data `age.agekey`: the app's age identity (age-keygen's format);
//! - `<app>-platform-deploy-key`, data `identity`: the app's SSH deploy key (OpenSSH);
//! - `sealwright-operator-age-key`, data `age.agekey`: sealwright's own key.
//!
//! A key is created with a plain create: if another replica created it first (409), that one is
//! read and used, so two replicas never hold two keys for one app, and nothing is ever
//! overwritten. The trait is synchronous (its callers run it on the blocking pool); the calls
//! to the API server run on the runtime whose handle the store keeps. Keys read once stay in
//! memory, zeroised on drop.

use std::collections::BTreeMap;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, ObjectMeta, PostParams};
use secrecy::ExposeSecret;
use sops::scalar::DateTime;

use super::{validate_app_name, AgeKey, DeployKey, KeyError, KeyStore};

/// The data key of an age identity (Flux reads keys ending in `.agekey`).
const AGE_ENTRY: &str = "age.agekey";
const DEPLOY_ENTRY: &str = "identity";
const OPERATOR_SECRET: &str = "sealwright-operator-age-key";

pub struct SecretKeyStore {
    api: Api<Secret>,
    namespace: String,
    handle: tokio::runtime::Handle,
    /// The operator key, read or made when the store is opened.
    operator: AgeKey,
    ages: Mutex<BTreeMap<String, AgeKey>>,
}

fn failed(what: &str, e: impl std::fmt::Display) -> KeyError {
    KeyError::Io {
        path: what.to_owned(),
        reason: e.to_string(),
    }
}

impl SecretKeyStore {
    /// Opens the store in `namespace`, reading (or making) the operator key first.
    pub async fn open(client: kube::Client, namespace: &str) -> Result<SecretKeyStore, KeyError> {
        let api: Api<Secret> = Api::namespaced(client, namespace);
        let where_ = format!("Secret {namespace}/{OPERATOR_SECRET}");
        let text = get_or_create(&api, OPERATOR_SECRET, AGE_ENTRY, "operator", || {
            let k = AgeKey::generate();
            let text = k.identity_file(DateTime::now_utc());
            text.expose_secret().as_bytes().to_vec()
        })
        .await
        .map_err(|e| failed(&where_, e))?;
        let operator = AgeKey::from_identity_file(&String::from_utf8_lossy(&text), &where_)?;
        Ok(SecretKeyStore {
            api,
            namespace: namespace.to_owned(),
            handle: tokio::runtime::Handle::current(),
            operator,
            ages: Mutex::new(BTreeMap::new()),
        })
    }

    fn block<T>(&self, f: impl std::future::Future<Output = T>) -> T {
        // Callers run on the blocking pool; `block_in_place` also covers a runtime worker.
        match tokio::runtime::Handle::try_current() {
            Ok(_) => tokio::task::block_in_place(|| self.handle.block_on(f)),
            Err(_) => self.handle.block_on(f),
        }
    }

    fn age_name(app: &str) -> String {
        super::chain::age_secret_name(app)
    }

    fn cached(&self, app: &str) -> Option<AgeKey> {
        let ages = self.ages.lock().unwrap_or_else(|p| p.into_inner());
        ages.get(app).map(|k| AgeKey {
            identity: k.identity.clone(),
        })
    }

    fn remember(&self, app: &str, key: &AgeKey) {
        let mut ages = self.ages.lock().unwrap_or_else(|p| p.into_inner());
        ages.insert(
            app.to_owned(),
            AgeKey {
                identity: key.identity.clone(),
            },
        );
    }
}

/// The value of `entry` in the Secret `name`, if the Secret exists.
async fn read(api: &Api<Secret>, name: &str, entry: &str) -> Result<Option<Vec<u8>>, String> {
    match api.get_opt(name).await {
        Ok(None) => Ok(None),
        Ok(Some(s)) => match s.data.and_then(|mut d| d.remove(entry)) {
            Some(ByteString(b)) => Ok(Some(b)),
            None => Err(format!("the Secret has no {entry:?} entry")),
        },
        Err(e) => Err(e.to_string()),
    }
}

/// Reads the entry, or creates the Secret with `make()`; a create that loses a race reads the
/// winner's.
async fn get_or_create(
    api: &Api<Secret>,
    name: &str,
    entry: &str,
    what: &str,
    make: impl FnOnce() -> Vec<u8>,
) -> Result<Vec<u8>, String> {
    if let Some(b) = read(api, name, entry).await? {
        return Ok(b);
    }
    let value = make();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([
                (
                    "app.kubernetes.io/managed-by".to_owned(),
                    "sealwright".to_owned(),
                ),
                ("sealwright.dev/key".to_owned(), what.to_owned()),
            ])),
            ..Default::default()
        },
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            entry.to_owned(),
            ByteString(value.clone()),
        )])),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => {
            tracing::info!(key = what, secret = name, "created key");
            Ok(value)
        }
        Err(kube::Error::Api(s)) if s.is_already_exists() => read(api, name, entry)
            .await?
            .ok_or_else(|| "the Secret was created and removed at once".to_owned()),
        Err(e) => Err(e.to_string()),
    }
}

impl KeyStore for SecretKeyStore {
    fn get(&self, app: &str) -> Result<Option<AgeKey>, KeyError> {
        validate_app_name(app)?;
        if let Some(k) = self.cached(app) {
            return Ok(Some(k));
        }
        let name = Self::age_name(app);
        let where_ = self.location(app);
        let Some(text) = self
            .block(read(&self.api, &name, AGE_ENTRY))
            .map_err(|e| failed(&where_, e))?
        else {
            return Ok(None);
        };
        let key = AgeKey::from_identity_file(&String::from_utf8_lossy(&text), &where_)?;
        self.remember(app, &key);
        Ok(Some(key))
    }

    fn get_or_create(&self, app: &str) -> Result<AgeKey, KeyError> {
        if let Some(k) = self.get(app)? {
            return Ok(k);
        }
        let name = Self::age_name(app);
        let where_ = self.location(app);
        let text = self
            .block(get_or_create(&self.api, &name, AGE_ENTRY, "age", || {
                let k = AgeKey::generate();
                k.identity_file(DateTime::now_utc())
                    .expose_secret()
                    .as_bytes()
                    .to_vec()
            }))
            .map_err(|e| failed(&where_, e))?;
        let key = AgeKey::from_identity_file(&String::from_utf8_lossy(&text), &where_)?;
        self.remember(app, &key);
        Ok(key)
    }

    fn deploy_key(&self, app: &str) -> Result<DeployKey, KeyError> {
        validate_app_name(app)?;
        let name = super::chain::deploy_key_secret_name(app);
        let where_ = format!("Secret {}/{name}", self.namespace);
        let text = self
            .block(get_or_create(
                &self.api,
                &name,
                DEPLOY_ENTRY,
                "deploy",
                || {
                    DeployKey::generate(&format!("sealwright {app}-platform"))
                        .private_openssh()
                        .expose_secret()
                        .as_bytes()
                        .to_vec()
                },
            ))
            .map_err(|e| failed(&where_, e))?;
        DeployKey::from_openssh(&String::from_utf8_lossy(&text), &where_)
    }

    fn operator(&self) -> Result<AgeKey, KeyError> {
        Ok(AgeKey {
            identity: self.operator.identity.clone(),
        })
    }

    fn location(&self, app: &str) -> String {
        format!("Secret {}/{}", self.namespace, Self::age_name(app))
    }
}
