//! The deployment routes: registrations (`PUT`/`GET`/`DELETE /v1/deployments/{id}`, `GET
//! /v1/deployments`), revocation (`POST /v1/deployments/{id}/revoke`), signing-key rotation (`POST
//! /v1/signing-keys/rotate`, admin) and the public keys (`GET /.well-known/jwks.json`).
//!
//! Who may do what: an admin anything; a tenant key what concerns its tenant's apps; a deployment
//! token only reads — its own deployment and the deployments of its environment (same tenant,
//! same environment id). A write with a deployment token is 403; a deployment of another
//! environment is 404 to it, as if it did not exist. No response carries a token.

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use super::extract::{AnyCaller, Caller};
use super::views;

use super::{json_body, ok, ApiError, ApiResult, ApiState, Principal};
use crate::reconcile::{DeploymentView, Source};

/// Whether `p` may see deployment `v` (404 otherwise, for deployments; 403 for another tenant).
fn visible(p: &Principal, v: &DeploymentView) -> bool {
    match p {
        Principal::Admin => true,
        Principal::Tenant { tenant, .. } => v.tenant.as_deref() == Some(tenant.as_str()),
        Principal::Deployment(me) => {
            v.spec.id == me.id
                || (v.spec.environment == me.environment
                    && v.tenant.is_some()
                    && v.tenant == me.tenant)
        }
    }
}

/// Deployment tokens only read.
fn no_deployment_writes(p: &Principal) -> Result<(), ApiError> {
    match p {
        Principal::Deployment(_) => Err(ApiError::forbidden(
            "a deployment token may only read deployments",
        )),
        _ => Ok(()),
    }
}

/// The deployment must exist (404) and concern the caller's tenant (403).
fn writable(state: &ApiState, p: &Principal, id: &str) -> Result<Option<DeploymentView>, ApiError> {
    no_deployment_writes(p)?;
    match state.reconciler.deployment(id) {
        Ok(v) => {
            if visible(p, &v) {
                Ok(Some(v))
            } else {
                Err(ApiError::forbidden(&format!(
                    "deployment {id} belongs to an app of another tenant"
                )))
            }
        }
        Err(_) => Ok(None),
    }
}

/// [`writable`], and the deployment must exist (404).
fn existing_writable(
    state: &ApiState,
    p: &Principal,
    id: &str,
) -> Result<DeploymentView, ApiError> {
    writable(state, p, id)?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("deployment {id:?} not found"),
        )
    })
}

pub(super) async fn list(
    State(state): State<ApiState>,
    AnyCaller { principal: p, .. }: AnyCaller,
) -> ApiResult {
    let items: Vec<Value> = state
        .reconciler
        .list_deployments()
        .iter()
        .filter(|v| visible(&p, v))
        .map(views::deployment)
        .collect();
    ok(StatusCode::OK, json!({"deployments": items}))
}

pub(super) async fn get_one(
    State(state): State<ApiState>,
    AnyCaller { principal: p, .. }: AnyCaller,
    Path(id): Path<String>,
) -> ApiResult {
    let v = state.reconciler.deployment(&id)?;
    if visible(&p, &v) {
        return ok(StatusCode::OK, views::deployment(&v));
    }
    match p {
        Principal::Deployment(_) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("deployment {:?} not found", id.to_ascii_lowercase()),
        )),
        _ => Err(ApiError::forbidden(&format!(
            "deployment {id} belongs to an app of another tenant"
        ))),
    }
}

pub(super) async fn put(
    State(state): State<ApiState>,
    AnyCaller {
        principal: p,
        actor,
    }: AnyCaller,
    Path(id): Path<String>,
    body: Body,
) -> ApiResult {
    // The body is read only once the caller may write this deployment: a caller who may not
    // learns nothing from a 422 about what the body should hold.
    writable(&state, &p, &id)?;
    let v = json_body(&state, body).await?;
    // The app named in the body must be the caller's too (checked before anything is stored).
    if let Some(app) = v.get("app").and_then(Value::as_str) {
        if let Some(tenant) = state.reconciler.tenant_of(app) {
            if !p.may_act_for(&tenant) {
                return Err(ApiError::forbidden(&format!(
                    "app {app:?} belongs to another tenant"
                )));
            }
        }
    }
    let (created, view) = state
        .reconciler
        .put_deployment(&actor, &id, &v, Source::Api)
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    ok(status, views::deployment(&view))
}

pub(super) async fn delete(
    State(state): State<ApiState>,
    AnyCaller {
        principal: p,
        actor,
    }: AnyCaller,
    Path(id): Path<String>,
) -> ApiResult {
    existing_writable(&state, &p, &id)?;
    let ack = state
        .reconciler
        .delete_deployment(&actor, &id, Source::Api)
        .await?;
    let mut j = views::ack(&ack);
    j["deleted"] = json!(true);
    ok(StatusCode::OK, j)
}

pub(super) async fn revoke(
    State(state): State<ApiState>,
    AnyCaller {
        principal: p,
        actor,
    }: AnyCaller,
    Path(id): Path<String>,
) -> ApiResult {
    existing_writable(&state, &p, &id)?;
    let (jti, view) = state
        .reconciler
        .revoke_deployment_token(&actor, &id)
        .await?;
    let mut j = views::deployment(&view);
    j["revoked"] = json!(jti.is_some());
    j["revokedTokenId"] = json!(jti);
    ok(StatusCode::OK, j)
}

pub(super) async fn rotate_keys(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
) -> ApiResult {
    if !p.is_admin() {
        return Err(ApiError::forbidden(
            "rotating signing keys needs an admin token",
        ));
    }
    let kids = state.reconciler.rotate_signing_keys(&actor).await?;
    ok(StatusCode::OK, json!({"rotated": true, "keyIds": kids}))
}

/// Public: verifiers fetch it without credentials (it holds public keys only).
pub(super) async fn jwks(State(state): State<ApiState>) -> Response {
    (
        [(http::header::CONTENT_TYPE, "application/json")],
        state.reconciler.jwks().to_string(),
    )
        .into_response()
}
