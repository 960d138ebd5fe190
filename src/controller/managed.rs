//! Managed Secrets: the Secrets labelled `sealwright.dev/managed-secret: "true"` in an app's
//! platform namespace are the app's secrets. One watch per platform namespace (the controller
//! reaches Secrets there only through the RoleBinding it made, never cluster-wide) triggers a
//! reconcile of the Secret at once:
//!
//! - a new or changed Secret is written through the reconciler (the same checks and limits as
//!   `PUT /v1/apps/{app}/secrets/{name}`): `committed: "false"` while the change is on its way,
//!   then `"true"` with `commit` (or `pull-request`);
//! - `kubectl delete` is held by the finalizer `sealwright.dev/files` until the files are gone
//!   from the platform repo; `marked-for-deletion: "true"` removes the files, then the Secret;
//! - bad input gets a Warning Event and `committed: "false"` with `error` naming the problem,
//!   never a value.
//!
//! A Secret that is absent deletes nothing: files go only on an explicit delete.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{finalizer, Event as Finalizing};
use kube::runtime::watcher;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::Instrument;

use super::names::*;
use super::{platform_namespace, Context, ControllerError};
use crate::model::SecretValue;
use crate::reconcile::{Actor, ReconcileError, WriteAck};
use crate::spec::SecretSpec;

/// Starts the watch of `app`'s platform namespace, once.
pub fn ensure_watch(ctx: &Context, app: &str) {
    let mut watches = ctx.watches();
    if watches.get(app).is_some_and(|h| !h.is_finished()) {
        return;
    }
    let shared = Arc::new(Watch {
        client: ctx.client.clone(),
        reconciler: ctx.reconciler.clone(),
        recorder: ctx.recorder.clone(),
        app: app.to_owned(),
    });
    let span = tracing::info_span!("managed_secrets", app = %app);
    watches.insert(app.to_owned(), tokio::spawn(run(shared).instrument(span)));
}

/// Stops it (the registration is going), and lets go of the Secrets it held: with the app
/// unregistered there are no files to remove, and the namespace must be free to go.
pub async fn stop_watch(ctx: &Context, app: &str) {
    if let Some(h) = ctx.watches().remove(app) {
        h.abort();
    }
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &platform_namespace(app));
    let lp = kube::api::ListParams::default().labels(&format!("{MANAGED_SECRET}=true"));
    if let Ok(list) = api.list(&lp).await {
        for s in list {
            if s.finalizers().iter().any(|f| f == FILES_FINALIZER) {
                let _ = remove_finalizer(&api, &s).await;
            }
        }
    }
}

/// Brings each managed Secret's status annotations in line with what the reconciler knows now:
/// a pull request merged (`committed: "true"` with its commit), Flux having applied the commit
/// (`applied: "true"`). A Secret whose content the reconciler does not hold yet (a change on its
/// way) or that carries an error is left to its own reconcile.
pub async fn sync_annotations(ctx: &Context, app: &str) -> Result<(), ControllerError> {
    let Ok(views) = ctx.reconciler.list_secrets(app) else {
        return Ok(());
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &platform_namespace(app));
    let lp = kube::api::ListParams::default().labels(&format!("{MANAGED_SECRET}=true"));
    for s in api.list(&lp).await? {
        let Some(v) = views.iter().find(|v| v.name == s.name_any()) else {
            continue;
        };
        let a = s.annotations();
        if a.contains_key(ERROR) || s.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let held = spec_of(&ctx.reconciler, app, &s)
            .is_ok_and(|spec| ctx.reconciler.holds_secret(app, &spec));
        if !held {
            continue;
        }
        let want = |k: &str| -> Option<String> {
            match k {
                COMMITTED => Some(if v.committed() { "true" } else { "false" }.to_owned()),
                COMMIT => v.commit.clone().filter(|_| v.committed()),
                PULL_REQUEST => v.pull_request.clone(),
                _ => v.applied.then(|| "true".to_owned()),
            }
        };
        // A commit recorded by the replica that made it stays: after a restart the reconciler
        // knows only that the secret is at or before the branch tip.
        let recorded = v.committed()
            && a.get(COMMITTED).map(String::as_str) == Some("true")
            && a.contains_key(COMMIT);
        let mut patch = serde_json::Map::new();
        for k in [COMMITTED, COMMIT, PULL_REQUEST, APPLIED] {
            if k == COMMIT && recorded {
                continue;
            }
            let w = want(k);
            if a.get(k) != w.as_ref() {
                patch.insert(k.to_owned(), w.map_or(serde_json::Value::Null, Into::into));
            }
        }
        if !patch.is_empty() {
            annotate(&api, &s, serde_json::Value::Object(patch)).await?;
        }
    }
    Ok(())
}

struct Watch {
    client: kube::Client,
    reconciler: crate::reconcile::Reconciler,
    recorder: kube::runtime::events::Recorder,
    app: String,
}

async fn run(w: Arc<Watch>) {
    let api: Api<Secret> = Api::namespaced(w.client.clone(), &platform_namespace(&w.app));
    Controller::new(
        api,
        watcher::Config::default().labels(&format!("{MANAGED_SECRET}=true")),
    )
    .run(reconcile, error_policy, w)
    .for_each(|r| async move {
        if let Err(e) = r {
            tracing::debug!(error = %e, "managed secret reconcile");
        }
    })
    .await;
}

fn error_policy(_: Arc<Secret>, e: &ControllerError, _: Arc<Watch>) -> Action {
    tracing::warn!(error = %e, "managed secret: will retry");
    Action::requeue(Duration::from_secs(3))
}

fn actor(w: &Watch, s: &Secret) -> Actor {
    Actor {
        name: format!(
            "kubernetes:secret/{}/{}",
            platform_namespace(&w.app),
            s.name_any()
        ),
        request_id: None,
        tenant_key: w.reconciler.tenant_of(&w.app),
    }
}

async fn reconcile(s: Arc<Secret>, w: Arc<Watch>) -> Result<Action, ControllerError> {
    let api: Api<Secret> = Api::namespaced(w.client.clone(), &platform_namespace(&w.app));
    let span = tracing::info_span!("managed_secret", secret = %s.name_any());
    async {
        if s.annotations().get(MARKED_FOR_DELETION).map(String::as_str) == Some("true") {
            return marked_for_deletion(&w, &api, &s).await;
        }
        finalizer(&api, FILES_FINALIZER, s, |event| async {
            match event {
                Finalizing::Apply(s) => apply(&w, &api, &s).await,
                Finalizing::Cleanup(s) => {
                    remove_files(&w, &s).await.map(|_| Action::await_change())
                }
            }
        })
        .await
        .map_err(|e| ControllerError::Reconcile(e.to_string()))
    }
    .instrument(span)
    .await
}

/// The files go first, then the Secret.
async fn marked_for_deletion(
    w: &Watch,
    api: &Api<Secret>,
    s: &Secret,
) -> Result<Action, ControllerError> {
    remove_files(w, s).await?;
    if s.finalizers().iter().any(|f| f == FILES_FINALIZER) {
        remove_finalizer(api, s).await?;
    }
    match api.delete(&s.name_any(), &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(e)) if e.is_not_found() => {}
        Err(e) => return Err(e.into()),
    }
    Ok(Action::await_change())
}

async fn remove_files(w: &Watch, s: &Secret) -> Result<(), ControllerError> {
    match w
        .reconciler
        .delete_secret(&actor(w, s), &w.app, &s.name_any())
        .await
    {
        Ok(ack) => {
            tracing::info!(commit = ?ack.commit, "removed the secret's files");
            Ok(())
        }
        Err(ReconcileError::NotFound { .. }) => Ok(()),
        Err(e) => Err(ControllerError::Reconcile(e.to_string())),
    }
}

async fn remove_finalizer(api: &Api<Secret>, s: &Secret) -> Result<(), ControllerError> {
    let Some(i) = s.finalizers().iter().position(|f| f == FILES_FINALIZER) else {
        return Ok(());
    };
    let patch: json_patch::Patch = serde_json::from_value(json!([
        {"op": "test", "path": format!("/metadata/finalizers/{i}"), "value": FILES_FINALIZER},
        {"op": "remove", "path": format!("/metadata/finalizers/{i}")},
    ]))
    .map_err(|e| ControllerError::Reconcile(e.to_string()))?;
    api.patch::<Secret>(&s.name_any(), &PatchParams::default(), &Patch::Json(patch))
        .await?;
    Ok(())
}

/// The Secret as the app's secret, checked by the API's rules. Errors name the Secret's own
/// fields (the annotations, `data.KEY`, `type`).
fn spec_of(
    reconciler: &crate::reconcile::Reconciler,
    app: &str,
    s: &Secret,
) -> Result<SecretSpec, (String, String)> {
    let a = s.annotations();
    let namespaces: Vec<String> = a
        .get(TARGET_NAMESPACES)
        .map(|v| {
            v.split(',')
                .map(|n| n.trim().to_owned())
                .filter(|n| !n.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let target_name = a.get(TARGET_NAME).cloned();
    let mut data: BTreeMap<String, SecretValue> = s
        .data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), SecretValue::new(v.0.clone())))
        .collect();
    for (k, v) in s.string_data.iter().flatten() {
        data.insert(k.clone(), SecretValue::new(v.as_bytes().to_vec()));
    }
    let app = reconciler
        .app(app)
        .map_err(|e| ("metadata.namespace".to_owned(), e.to_string()))?;
    // The recipe in the same form as the committed file's annotation. A preset it names is
    // expanded like an API write's (again, harmlessly, for one the API mirrored here).
    let bad_recipe = |e: crate::spec::Invalid| {
        (
            crate::recipe::ANNOTATION.to_owned(),
            format!("{}: {}", e.field, e.reason),
        )
    };
    let mut recipe = match a.get(crate::recipe::ANNOTATION) {
        None => crate::recipe::Recipe::default(),
        Some(text) => crate::recipe::Recipe::from_annotation(text).map_err(bad_recipe)?,
    };
    let mut type_ = s.type_.clone();
    if let Some(name) = recipe.preset.clone() {
        let preset = reconciler.policy().preset(&name).map_err(bad_recipe)?;
        type_ = type_.or_else(|| preset.type_.clone());
        for (k, v) in &preset.data {
            data.entry(k.clone())
                .or_insert_with(|| SecretValue::new(v.as_bytes().to_vec()));
        }
        recipe = preset.recipe.clone().overlay(recipe);
        recipe.check().map_err(bad_recipe)?;
    }
    SecretSpec::from_parts(
        &s.name_any(),
        target_name,
        &namespaces,
        type_,
        data,
        recipe,
        &app.spec,
    )
    .map_err(|e| (secret_field(&e.field), e.reason))
}

/// The API's field names → the managed Secret's.
fn secret_field(field: &str) -> String {
    if field.starts_with("targetNamespaces") {
        TARGET_NAMESPACES.to_owned()
    } else if field == "targetName" {
        TARGET_NAME.to_owned()
    } else if field == "name" {
        "metadata.name".to_owned()
    } else {
        field.to_owned()
    }
}

async fn apply(w: &Watch, api: &Api<Secret>, s: &Secret) -> Result<Action, ControllerError> {
    let spec = match spec_of(&w.reconciler, &w.app, s) {
        Ok(spec) => spec,
        Err((field, reason)) => return bad_input(w, api, s, &format!("{field}: {reason}")).await,
    };
    let a = s.annotations();
    let held = w.reconciler.holds_secret(&w.app, &spec);
    if held && a.get(COMMITTED).map(String::as_str) == Some("true") && a.get(ERROR).is_none() {
        return Ok(Action::await_change());
    }
    if !held {
        annotate(
            api,
            s,
            json!({COMMITTED: "false", COMMIT: null, PULL_REQUEST: null, APPLIED: null}),
        )
        .await?;
    }
    match w
        .reconciler
        .put_secret_spec(&actor(w, s), &w.app, spec)
        .await
    {
        Ok(ack) => {
            committed(w, api, s, &ack).await?;
            Ok(Action::await_change())
        }
        Err(e) => match &e {
            ReconcileError::Invalid(i) => {
                bad_input(
                    w,
                    api,
                    s,
                    &format!("{}: {}", secret_field(&i.field), i.reason),
                )
                .await
            }
            ReconcileError::Forbidden { .. }
            | ReconcileError::Conflict(_)
            | ReconcileError::Taken { .. } => bad_input(w, api, s, &e.to_string()).await,
            _ => Err(ControllerError::Reconcile(e.to_string())),
        },
    }
}

async fn committed(
    w: &Watch,
    api: &Api<Secret>,
    s: &Secret,
    ack: &WriteAck,
) -> Result<(), ControllerError> {
    // The commit that changed this secret (a write that changed nothing is answered with the
    // branch tip, which may be a later commit).
    let own = w
        .reconciler
        .secret(&w.app, &s.name_any())
        .ok()
        .and_then(|v| v.commit);
    let commit = if ack.commit.is_some() {
        own.or(ack.commit.clone())
    } else {
        None
    };
    let patch = match (&commit, &ack.pull_request) {
        (_, Some(pr)) => json!({COMMITTED: "false", PULL_REQUEST: pr, ERROR: null}),
        (Some(c), None) => json!({COMMITTED: "true", COMMIT: c, PULL_REQUEST: null, ERROR: null}),
        (None, None) => json!({COMMITTED: "false", ERROR: null}),
    };
    annotate(api, s, patch).await?;
    if let Some(c) = &commit {
        let note = format!("commit {c}");
        publish(w, s, EventType::Normal, "Committed", &note).await;
    }
    Ok(())
}

/// A Warning Event and the `error` annotation; not retried until the Secret changes.
async fn bad_input(
    w: &Watch,
    api: &Api<Secret>,
    s: &Secret,
    problem: &str,
) -> Result<Action, ControllerError> {
    let a = s.annotations();
    if a.get(ERROR).map(String::as_str) != Some(problem) {
        annotate(api, s, json!({COMMITTED: "false", ERROR: problem})).await?;
        publish(w, s, EventType::Warning, "Invalid", problem).await;
    }
    Ok(Action::await_change())
}

async fn annotate(
    api: &Api<Secret>,
    s: &Secret,
    annotations: serde_json::Value,
) -> Result<(), ControllerError> {
    api.patch(
        &s.name_any(),
        &PatchParams::default(),
        &Patch::Merge(json!({"metadata": {"annotations": annotations}})),
    )
    .await?;
    Ok(())
}

async fn publish(w: &Watch, s: &Secret, type_: EventType, reason: &str, note: &str) {
    super::publish(
        &w.recorder,
        &s.object_ref(&()),
        type_,
        reason,
        "Commit",
        note,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_name_the_managed_secrets_own_fields() {
        assert_eq!(secret_field("targetNamespaces[1]"), TARGET_NAMESPACES);
        assert_eq!(secret_field("targetName"), TARGET_NAME);
        assert_eq!(secret_field("name"), "metadata.name");
        assert_eq!(secret_field("data.password"), "data.password");
        assert_eq!(secret_field("type"), "type");
    }
}
