//! The HTTP API's secret writes in controller mode: for an app registered by an
//! `AppPlatformRegistration`, a write through the API is also the labelled Secret in the app's
//! platform namespace, so `kubectl get secrets -n <app>-platform` and `GET /v1/apps/{app}/secrets`
//! show the same state. The API writes the Secret first, then has the reconciler commit it and
//! answers with that commit; the watch of the namespace then sees a Secret it already holds and
//! only annotates it (no second commit).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::{Api, DeleteParams, ObjectMeta, PostParams};

use super::names::{MANAGED_SECRET, TARGET_NAME, TARGET_NAMESPACES};
use super::{platform_namespace, ControllerError};
use crate::spec::SecretSpec;

pub struct SecretMirror {
    client: kube::Client,
}

impl SecretMirror {
    pub fn new(client: kube::Client) -> SecretMirror {
        SecretMirror { client }
    }

    fn api(&self, app: &str) -> Api<Secret> {
        Api::namespaced(self.client.clone(), &platform_namespace(app))
    }

    /// Creates or updates the managed Secret to hold `spec` (other annotations and the
    /// finalizer kept). A Secret's type cannot change in Kubernetes: that is refused.
    pub async fn put(&self, app: &str, spec: &SecretSpec) -> Result<(), ControllerError> {
        let api = self.api(app);
        let data: BTreeMap<String, ByteString> = spec
            .data
            .iter()
            .map(|(k, v)| (k.clone(), ByteString(v.expose().to_vec())))
            .collect();
        for _ in 0..5 {
            let mut s = api.get_opt(&spec.name).await?.unwrap_or_else(|| Secret {
                metadata: ObjectMeta {
                    name: Some(spec.name.clone()),
                    ..Default::default()
                },
                ..Default::default()
            });
            let existing = s.metadata.resource_version.is_some();
            if existing && s.type_.as_deref().unwrap_or("Opaque") != spec.type_ {
                return Err(ControllerError::Reconcile(format!(
                    "type: the managed Secret {}/{} is of type {}; Kubernetes cannot change a Secret's type (delete the secret first)",
                    platform_namespace(app),
                    spec.name,
                    s.type_.as_deref().unwrap_or("Opaque")
                )));
            }
            s.metadata
                .labels
                .get_or_insert_with(BTreeMap::new)
                .insert(MANAGED_SECRET.into(), "true".into());
            let a = s.metadata.annotations.get_or_insert_with(BTreeMap::new);
            a.insert(TARGET_NAMESPACES.into(), spec.target_namespaces.join(","));
            if spec.target_name == spec.name {
                a.remove(TARGET_NAME);
            } else {
                a.insert(TARGET_NAME.into(), spec.target_name.clone());
            }
            match spec.recipe.annotation() {
                Some(r) => a.insert(crate::recipe::ANNOTATION.into(), r),
                None => a.remove(crate::recipe::ANNOTATION),
            };
            s.type_ = Some(spec.type_.clone());
            s.data = Some(data.clone());
            s.string_data = None;
            let r = if existing {
                api.replace(&spec.name, &PostParams::default(), &s).await
            } else {
                api.create(&PostParams::default(), &s).await
            };
            match r {
                Ok(_) => return Ok(()),
                Err(kube::Error::Api(e)) if e.is_conflict() || e.is_already_exists() => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Err(ControllerError::Reconcile(format!(
            "the managed Secret {}/{} kept changing while it was written; try again",
            platform_namespace(app),
            spec.name
        )))
    }

    /// Deletes the managed Secret (its finalizer holds it until the files are gone).
    pub async fn delete(&self, app: &str, name: &str) -> Result<(), ControllerError> {
        match self.api(app).delete(name, &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(e)) if e.is_not_found() => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}
