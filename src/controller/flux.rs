//! Flux's side read back: the Kustomization `<app>-platform` in Flux's namespace, its `Ready`
//! condition (trusted only for the generation it observed) and `lastAppliedRevision`. The
//! controller turns it into the registration's `FluxReady` and tells the reconciler which
//! platform-repo commit Flux applied, so a secret shows `applied` once that commit contains it.

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind};
use serde_json::Value as Json;

use super::Context;

/// What Flux says about an app's Kustomization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Readiness {
    /// `None`: unknown (no Kustomization yet, still reconciling, or unreadable).
    pub ready: Option<bool>,
    pub reason: String,
    pub message: String,
    /// The commit Flux last applied (the sha of `<branch>@sha1:<sha>`).
    pub applied: Option<String>,
}

pub(super) fn kustomizations() -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("kustomize.toolkit.fluxcd.io", "v1", "Kustomization"),
        "kustomizations",
    )
}

/// Reads Flux's Kustomization for `app`.
pub async fn readiness(ctx: &Context, app: &str) -> Readiness {
    let ns = ctx.reconciler.settings().cluster.flux_namespace.clone();
    let name = format!("{app}-platform");
    let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), &ns, &kustomizations());
    let r = match api.get_opt(&name).await {
        Ok(Some(k)) => of(&k.metadata.generation, &k.data, &ns, &name),
        Ok(None) => Readiness {
            ready: None,
            reason: "NotFound".into(),
            message: format!("Flux has no Kustomization {ns}/{name} yet (it appears once Flux applies the Flux repo's apps folder)"),
            applied: None,
        },
        Err(e) => Readiness {
            ready: None,
            reason: "Unreadable".into(),
            message: format!("could not read Kustomization {ns}/{name}: {e}"),
            applied: None,
        },
    };
    ctx.reconciler.flux_readiness(
        app,
        crate::reconcile::FluxStatus {
            ready: r.ready,
            reason: r.reason.clone(),
            message: r.message.clone(),
        },
    );
    if let Some(sha) = &r.applied {
        ctx.reconciler.flux_applied(app, sha).await;
    }
    r
}

/// Readiness from a Kustomization's generation and body. Pure.
pub fn of(generation: &Option<i64>, body: &Json, ns: &str, name: &str) -> Readiness {
    let status = &body["status"];
    let applied_rev = status["lastAppliedRevision"].as_str().unwrap_or_default();
    let applied = applied_rev
        .rsplit_once("sha1:")
        .map(|(_, sha)| sha.to_owned())
        .filter(|s| s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit()));
    let observed = status["observedGeneration"].as_i64();
    let ready = status["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "Ready"));
    let Some(ready) = ready else {
        return Readiness {
            ready: None,
            reason: "Progressing".into(),
            message: format!("Kustomization {ns}/{name} has no Ready condition yet"),
            applied,
        };
    };
    if generation.is_some() && observed != *generation {
        return Readiness {
            ready: None,
            reason: "Progressing".into(),
            message: format!(
                "Kustomization {ns}/{name} has not yet observed generation {}",
                generation.unwrap_or_default()
            ),
            applied,
        };
    }
    let flux_reason = ready["reason"].as_str().unwrap_or("Unknown").to_owned();
    let flux_message = ready["message"].as_str().unwrap_or_default().to_owned();
    match ready["status"].as_str() {
        Some("True") => Readiness {
            ready: Some(true),
            reason: flux_reason,
            message: format!("Flux applied {applied_rev}"),
            applied,
        },
        Some("False") => Readiness {
            ready: Some(false),
            reason: flux_reason,
            message: flux_message,
            applied,
        },
        _ => Readiness {
            ready: None,
            reason: flux_reason,
            message: flux_message,
            applied,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const SHA: &str = "0123456789abcdef0123456789abcdef01234567";

    #[test]
    fn ready_at_the_observed_generation_gives_the_applied_commit() {
        let body = json!({"status": {"observedGeneration": 2, "lastAppliedRevision": format!("main@sha1:{SHA}"),
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded", "message": "Applied"}]}});
        let r = of(&Some(2), &body, "flux-system", "shop-platform");
        assert_eq!(r.ready, Some(true));
        assert_eq!(r.applied.as_deref(), Some(SHA));
    }

    #[test]
    fn a_stale_generation_or_a_failure_is_not_ready() {
        let body = json!({"status": {"observedGeneration": 1,
            "conditions": [{"type": "Ready", "status": "True", "reason": "ReconciliationSucceeded"}]}});
        assert_eq!(of(&Some(2), &body, "f", "n").ready, None);
        let body = json!({"status": {"observedGeneration": 2,
            "conditions": [{"type": "Ready", "status": "False", "reason": "BuildFailed", "message": "kustomize build failed"}]}});
        let r = of(&Some(2), &body, "f", "n");
        assert_eq!((r.ready, r.reason.as_str()), (Some(false), "BuildFailed"));
    }
}
