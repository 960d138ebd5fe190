//! `AppPlatformRegistration`s → the reconciler. Each registration is reconciled level-wise:
//! its spec is checked by the API's rules (the tenant boundary bound as for a tenant key), its
//! platform namespace `<app>-platform` is made (labelled as sealwright's, with the one
//! RoleBinding that lets the controller reach Secrets there), the app is registered or updated
//! with the registration as its source, and the status says what happened: `Ready`,
//! `RepoReady` and `FluxReady`, each with a reason and a message that name the field at fault.
//!
//! A finalizer holds a registration until its app is unregistered. Nothing is committed for a
//! registration the reconciler refused.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::rbac::v1::{RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizing};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use tracing::Instrument;

use super::crd::{self, AppPlatformRegistration, AppPlatformRegistrationStatus};
use super::names::{APP, MANAGED_BY, REGISTRATION_FINALIZER};
use super::{flux, managed, platform_namespace, Context, ControllerError};
use crate::reconcile::{Actor, AppView, ReconcileError, Source};

pub async fn run(ctx: Arc<Context>) {
    let api: Api<AppPlatformRegistration> = Api::all(ctx.client.clone());
    // Flux's Kustomization `<app>-platform` changing (Ready, a new applied revision) looks at
    // its registration again at once.
    let flux_ns = ctx.reconciler.settings().cluster.flux_namespace.clone();
    let resource = flux::kustomizations();
    let kustomizations =
        Api::<kube::api::DynamicObject>::namespaced_with(ctx.client.clone(), &flux_ns, &resource);
    Controller::new(api, watcher::Config::default())
        .watches_with(kustomizations, resource, watcher::Config::default(), |k| {
            k.metadata
                .name
                .as_deref()
                .and_then(|n| n.strip_suffix("-platform"))
                .map(kube::runtime::reflector::ObjectRef::new)
        })
        .run(reconcile, error_policy, ctx)
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(error = %e, "registration reconcile");
            }
        })
        .await;
}

fn error_policy(_: Arc<AppPlatformRegistration>, e: &ControllerError, _: Arc<Context>) -> Action {
    tracing::warn!(error = %e, "registration: will retry");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile(
    apr: Arc<AppPlatformRegistration>,
    ctx: Arc<Context>,
) -> Result<Action, ControllerError> {
    let api: Api<AppPlatformRegistration> = Api::all(ctx.client.clone());
    let span = tracing::info_span!("registration", app = %apr.name_any());
    finalizer(&api, REGISTRATION_FINALIZER, apr, |event| async {
        match event {
            Finalizing::Apply(apr) => apply(&ctx, &apr).await,
            Finalizing::Cleanup(apr) => cleanup(&ctx, &apr).await,
        }
    })
    .instrument(span)
    .await
    .map_err(|e| ControllerError::Reconcile(e.to_string()))
}

/// Why a registration is not (yet) Ready, as its `Ready` condition says it.
struct Refusal {
    reason: &'static str,
    message: String,
}

fn actor(apr: &AppPlatformRegistration) -> Actor {
    Actor {
        name: format!("kubernetes:apr/{}", apr.name_any()),
        request_id: None,
        // Bound by the tenant's namespace patterns, as a tenant's API key is.
        tenant_key: Some(apr.spec.tenant.clone()),
    }
}

/// A reconciler refusal in the registration's own field names.
fn refusal(e: &ReconcileError) -> Option<Refusal> {
    let field = |f: &str| crd::resource_field(f);
    match e {
        ReconcileError::Invalid(i) => Some(Refusal {
            reason: "InvalidSpec",
            message: format!("{}: {}", field(&i.field), i.reason),
        }),
        ReconcileError::Forbidden { field: f, reason } => Some(Refusal {
            reason: "OutsideTenant",
            message: format!("{}: {reason}", field(f)),
        }),
        ReconcileError::Taken {
            field: f,
            namespace,
            ..
        } => Some(Refusal {
            reason: "NamespaceTaken",
            message: format!(
                "{}: namespace {namespace:?} is taken by another app",
                field(f)
            ),
        }),
        ReconcileError::Conflict(m) => Some(Refusal {
            reason: "Conflict",
            message: m.clone(),
        }),
        _ => None,
    }
}

async fn apply(ctx: &Context, apr: &AppPlatformRegistration) -> Result<Action, ControllerError> {
    let name = apr.name_any();
    let spec = match crd::app_spec(&name, &apr.spec) {
        Ok(s) => s,
        Err(e) => {
            let r = Refusal {
                reason: "InvalidSpec",
                message: format!("{}: {}", e.field, e.reason),
            };
            return refused(ctx, apr, r).await;
        }
    };
    if let Some((i, ns)) = spec
        .environments
        .iter()
        .enumerate()
        .find(|(_, e)| e.namespace.ends_with("-platform"))
    {
        let r = Refusal {
            reason: "InvalidSpec",
            message: format!(
                "spec.environments[{i}].namespace: {:?} ends in -platform, which sealwright keeps for the platform namespaces (<app>-platform) that hold plaintext Secrets",
                ns.namespace
            ),
        };
        return refused(ctx, apr, r).await;
    }
    if let Some(r) = namespace_taken(ctx, &name).await? {
        return refused(ctx, apr, r).await;
    }
    let actor = actor(apr);
    let result = match ctx.reconciler.app(&name) {
        Ok(v) if v.source != Source::Kubernetes => Err(Refusal {
            reason: "RegisteredElsewhere",
            message: format!(
                "metadata.name: app {name:?} is registered through the {}; unregister it there first",
                match v.source {
                    Source::Config => "registrations directory",
                    _ => "API",
                }
            ),
        }),
        Ok(_) => ctx.reconciler.update_app(&actor, spec).await.map_err(|e| {
            refusal(&e).unwrap_or(Refusal {
                reason: "ReconcileFailed",
                message: e.to_string(),
            })
        }),
        Err(_) => ctx
            .reconciler
            .register_app(&actor, spec, Source::Kubernetes)
            .await
            .map_err(|e| {
                refusal(&e).unwrap_or(Refusal {
                    reason: "ReconcileFailed",
                    message: e.to_string(),
                })
            }),
    };
    let view = match result {
        Ok(v) => v,
        Err(r) => return refused(ctx, apr, r).await,
    };
    ensure_namespace(ctx, &name).await?;
    managed::ensure_watch(ctx, &name);
    let fluxed = flux::readiness(ctx, &name).await;
    managed::sync_annotations(ctx, &name).await?;
    report(ctx, apr, &view, &fluxed).await?;
    Ok(if view.ready {
        Action::requeue(ctx.config.resync)
    } else {
        Action::requeue(Duration::from_secs(5))
    })
}

async fn cleanup(ctx: &Context, apr: &AppPlatformRegistration) -> Result<Action, ControllerError> {
    let name = apr.name_any();
    managed::stop_watch(ctx, &name).await;
    if ctx
        .reconciler
        .app(&name)
        .is_ok_and(|v| v.source == Source::Kubernetes)
    {
        match ctx.reconciler.delete_app(&actor(apr), &name, false).await {
            Ok(_) | Err(ReconcileError::NotFound { .. }) => {}
            Err(e) => return Err(ControllerError::Reconcile(e.to_string())),
        }
    }
    Ok(Action::await_change())
}

/// A refusal when `<app>-platform` exists and is not this app's: its Secrets are not
/// sealwright's to commit.
async fn namespace_taken(ctx: &Context, app: &str) -> Result<Option<Refusal>, ControllerError> {
    let ns_name = platform_namespace(app);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    Ok(namespaces.get_opt(&ns_name).await?.and_then(|ns| {
        (ns.labels().get(APP).map(String::as_str) != Some(app)).then(|| Refusal {
            reason: "PlatformNamespaceTaken",
            message: format!(
                "metadata.name: namespace {ns_name:?} exists and is not sealwright's platform namespace of app {app:?} (no label {APP}={app})"
            ),
        })
    }))
}

/// Makes `<app>-platform` (labelled as sealwright's) and its RoleBinding to the one ClusterRole
/// that reaches Secrets there.
async fn ensure_namespace(ctx: &Context, app: &str) -> Result<(), ControllerError> {
    let ns_name = platform_namespace(app);
    let namespaces: Api<Namespace> = Api::all(ctx.client.clone());
    if namespaces.get_opt(&ns_name).await?.is_none() {
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(ns_name.clone()),
                labels: Some(BTreeMap::from([
                    (MANAGED_BY.0.to_owned(), MANAGED_BY.1.to_owned()),
                    (APP.to_owned(), app.to_owned()),
                ])),
                ..Default::default()
            },
            ..Default::default()
        };
        match namespaces.create(&PostParams::default(), &ns).await {
            Ok(_) => tracing::info!(namespace = %ns_name, "created the platform namespace"),
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let bindings: Api<RoleBinding> = Api::namespaced(ctx.client.clone(), &ns_name);
    if bindings.get_opt("sealwright").await?.is_none() {
        let rb = RoleBinding {
            metadata: ObjectMeta {
                name: Some("sealwright".into()),
                labels: Some(BTreeMap::from([(
                    MANAGED_BY.0.to_owned(),
                    MANAGED_BY.1.to_owned(),
                )])),
                ..Default::default()
            },
            role_ref: RoleRef {
                api_group: Some("rbac.authorization.k8s.io".into()),
                kind: "ClusterRole".into(),
                name: ctx.config.platform_role.clone(),
            },
            subjects: Some(vec![Subject {
                kind: "ServiceAccount".into(),
                name: ctx.config.service_account.clone(),
                namespace: Some(ctx.config.namespace.clone()),
                ..Default::default()
            }]),
        };
        match bindings.create(&PostParams::default(), &rb).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.is_already_exists() => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn now() -> Time {
    Time(k8s_openapi::jiff::Timestamp::now())
}

/// `Ready=False` with the reason; nothing was committed. Not retried until the spec changes.
async fn refused(
    ctx: &Context,
    apr: &AppPlatformRegistration,
    r: Refusal,
) -> Result<Action, ControllerError> {
    let prev = apr.status.clone().unwrap_or_default();
    let g = apr.metadata.generation;
    let t = now();
    let status = AppPlatformRegistrationStatus {
        observed_generation: g,
        conditions: vec![
            crd::condition(
                &prev.conditions,
                "Ready",
                Some(false),
                r.reason,
                r.message.clone(),
                g,
                t.clone(),
            ),
            crd::condition(
                &prev.conditions,
                "RepoReady",
                None,
                r.reason,
                "not provisioned: the registration was refused".into(),
                g,
                t.clone(),
            ),
            crd::condition(
                &prev.conditions,
                "FluxReady",
                None,
                r.reason,
                "not provisioned: the registration was refused".into(),
                g,
                t,
            ),
        ],
        ..prev.clone()
    };
    let changed = write_status(ctx, apr, &prev, status).await?;
    if changed {
        publish(ctx, apr, EventType::Warning, "Failed", &r.message).await;
    }
    Ok(if r.reason == "ReconcileFailed" {
        Action::requeue(Duration::from_secs(10))
    } else {
        Action::await_change()
    })
}

/// The status from the app's view and Flux's readiness; Events for what changed.
async fn report(
    ctx: &Context,
    apr: &AppPlatformRegistration,
    view: &AppView,
    fluxed: &flux::Readiness,
) -> Result<(), ControllerError> {
    let prev = apr.status.clone().unwrap_or_default();
    let g = apr.metadata.generation;
    let t = now();
    let error = view.errors.last().map(|e| e.message.clone());
    let ready = crd::condition(
        &prev.conditions,
        "Ready",
        Some(view.ready),
        if view.ready {
            "Committed"
        } else if error.is_some() {
            "ReconcileFailed"
        } else {
            "Provisioning"
        },
        match (&error, view.ready) {
            (Some(e), false) => e.clone(),
            (_, true) => format!(
                "{} holds the app's files at {}",
                view.repo,
                view.last_commit.as_deref().unwrap_or("its first commit")
            ),
            (None, false) => "provisioning the keys, the platform repo and the Flux folder".into(),
        },
        g,
        t.clone(),
    );
    let repo_ok = view.platform_repo.is_some() && view.last_commit.is_some();
    let repo = crd::condition(
        &prev.conditions,
        "RepoReady",
        Some(repo_ok),
        if repo_ok { "Committed" } else { "Provisioning" },
        if repo_ok {
            format!(
                "{} at {}",
                view.repo,
                view.last_commit.as_deref().unwrap_or_default()
            )
        } else {
            format!("{} has no commit of sealwright's yet", view.repo)
        },
        g,
        t.clone(),
    );
    let flux_c = crd::condition(
        &prev.conditions,
        "FluxReady",
        fluxed.ready,
        &fluxed.reason,
        fluxed.message.clone(),
        g,
        t,
    );
    let status = AppPlatformRegistrationStatus {
        observed_generation: g,
        platform_repo: Some(view.repo.clone()),
        flux_repo: view.flux_repo.clone(),
        recipient: view.recipient.clone(),
        last_commit: view.last_commit.clone(),
        secrets: Some(i64::try_from(view.secrets).unwrap_or(i64::MAX)),
        conditions: vec![ready, repo, flux_c],
    };
    let new_commit = status.last_commit.is_some() && status.last_commit != prev.last_commit;
    let flux_now = fluxed.ready == Some(true)
        && !prev
            .conditions
            .iter()
            .any(|c| c.type_ == "FluxReady" && c.status == "True");
    let failed_now = !view.ready
        && error.is_some()
        && !prev
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.reason == "ReconcileFailed");
    write_status(ctx, apr, &prev, status.clone()).await?;
    if new_commit {
        let note = format!(
            "commit {} in {}",
            status.last_commit.as_deref().unwrap_or_default(),
            view.repo
        );
        publish(ctx, apr, EventType::Normal, "Committed", &note).await;
    }
    if flux_now {
        publish(ctx, apr, EventType::Normal, "Applied", &fluxed.message).await;
    }
    if failed_now {
        publish(
            ctx,
            apr,
            EventType::Warning,
            "Failed",
            error.as_deref().unwrap_or_default(),
        )
        .await;
    }
    Ok(())
}

/// Patches the status subresource when it changed; `true` if it did.
async fn write_status(
    ctx: &Context,
    apr: &AppPlatformRegistration,
    prev: &AppPlatformRegistrationStatus,
    status: AppPlatformRegistrationStatus,
) -> Result<bool, ControllerError> {
    if *prev == status {
        return Ok(false);
    }
    let api: Api<AppPlatformRegistration> = Api::all(ctx.client.clone());
    let mut body = serde_json::json!({ "status": status });
    // Fields that went away are removed, not left behind by the merge.
    for key in [
        "platformRepo",
        "fluxRepo",
        "recipient",
        "lastCommit",
        "secrets",
    ] {
        if body["status"].get(key).is_none() {
            body["status"][key] = serde_json::Value::Null;
        }
    }
    api.patch_status(
        &apr.name_any(),
        &PatchParams::default(),
        &Patch::Merge(body),
    )
    .await?;
    Ok(true)
}

async fn publish(
    ctx: &Context,
    apr: &AppPlatformRegistration,
    type_: EventType,
    reason: &str,
    note: &str,
) {
    super::publish(
        &ctx.recorder,
        &apr.object_ref(&()),
        type_,
        reason,
        "Reconcile",
        note,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciler_refusals_become_reasons_that_name_the_resources_field() {
        let r = refusal(&ReconcileError::Forbidden {
            field: "environments[1].namespace".into(),
            reason: "not a namespace tenant \"globex\" may claim".into(),
        })
        .unwrap();
        assert_eq!(r.reason, "OutsideTenant");
        assert!(r.message.starts_with("spec.environments[1].namespace: "));
        let r = refusal(&ReconcileError::Invalid(crate::spec::Invalid {
            field: "name".into(),
            reason: "too long".into(),
        }))
        .unwrap();
        assert_eq!(
            (r.reason, r.message.as_str()),
            ("InvalidSpec", "metadata.name: too long")
        );
        let r = refusal(&ReconcileError::Taken {
            field: "environments[0].namespace".into(),
            namespace: "shop-dev".into(),
            owner_app: "shop".into(),
            owner_tenant: "acme".into(),
        })
        .unwrap();
        assert_eq!(r.reason, "NamespaceTaken");
        assert!(
            !r.message.contains("acme"),
            "another tenant's name is not shown: {}",
            r.message
        );
        // Failures that are not refusals are retried, not reported as the spec's fault.
        assert!(refusal(&ReconcileError::Internal("x".into())).is_none());
    }
}
