//! The external-secrets routes: a tenant's defaults (`/v1/tenants/{tenant}/external-secrets`,
//! `.../{provider}`), an app's overrides and effective set (`/v1/apps/{app}/external-secrets`,
//! `.../{provider}`), and the deploy hook (`POST /v1/apps/{app}/deploys`).
//!
//! Writes take `{key: value}`; reads list providers, key names and each key's origin, never a
//! value. An admin may do anything, a tenant key what concerns its own tenant; a deployment token
//! nothing (403).

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde_json::{json, Value};

use super::extract::{Caller, JsonBody};
use super::views;

use super::{app_in_scope, json_body_or, ok, ApiError, ApiResult, ApiState, Principal};
use crate::external::Origin;

/// The tenant must be the caller's (403).
fn tenant_in_scope(p: &Principal, tenant: &str) -> Result<(), ApiError> {
    if p.may_act_for(tenant) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&format!(
            "tenant {tenant:?} is not this key's tenant"
        )))
    }
}

fn provider_json(provider: &str, keys: &[String], origin: Origin) -> Value {
    json!({
        "provider": provider,
        "keys": keys,
        "origins": keys.iter().map(|k| (k.clone(), json!(origin.as_str()))).collect::<serde_json::Map<_, _>>(),
    })
}

pub(super) async fn list_tenant(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path(tenant): Path<String>,
) -> ApiResult {
    tenant_in_scope(&p, &tenant)?;
    let layer = state.reconciler.tenant_external(&tenant)?;
    let apps: Vec<String> = state
        .reconciler
        .list_apps()
        .into_iter()
        .filter(|a| a.spec.tenant == tenant)
        .map(|a| a.spec.name)
        .collect();
    ok(
        StatusCode::OK,
        json!({
            "tenant": tenant,
            "providers": layer.iter().map(|(p, keys)| provider_json(p, keys, Origin::Tenant)).collect::<Vec<_>>(),
            "apps": apps,
        }),
    )
}

pub(super) async fn get_tenant(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path((tenant, provider)): Path<(String, String)>,
) -> ApiResult {
    tenant_in_scope(&p, &tenant)?;
    let layer = state.reconciler.tenant_external(&tenant)?;
    let keys = layer.get(&provider).ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!("tenant {tenant:?} has no external secrets of provider {provider:?}"),
        )
    })?;
    let mut j = provider_json(&provider, keys, Origin::Tenant);
    j["tenant"] = json!(tenant);
    ok(StatusCode::OK, j)
}

pub(super) async fn put_tenant(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((tenant, provider)): Path<(String, String)>,
    JsonBody(v): JsonBody,
) -> ApiResult {
    tenant_in_scope(&p, &tenant)?;
    let w = state
        .reconciler
        .put_external(&actor, Origin::Tenant, &tenant, &provider, &v)
        .await?;
    let mut j = views::external_write(&w);
    j["tenant"] = json!(tenant);
    j["provider"] = json!(provider);
    ok(StatusCode::OK, j)
}

pub(super) async fn delete_tenant(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((tenant, provider)): Path<(String, String)>,
) -> ApiResult {
    tenant_in_scope(&p, &tenant)?;
    let w = state
        .reconciler
        .delete_external(&actor, Origin::Tenant, &tenant, &provider)
        .await?;
    let mut j = views::external_write(&w);
    j["deleted"] = json!(true);
    j["tenant"] = json!(tenant);
    j["provider"] = json!(provider);
    ok(StatusCode::OK, j)
}

pub(super) async fn list_app(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path(app): Path<String>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    ok(
        StatusCode::OK,
        views::external(&state.reconciler.app_external(&app)?, None),
    )
}

pub(super) async fn get_app(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path((app, provider)): Path<(String, String)>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let view = state.reconciler.app_external(&app)?;
    if !view.effective.iter().any(|e| e.provider == provider) {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "app {app:?} has no external secrets of provider {provider:?} (neither its own nor its tenant's)"
            ),
        ));
    }
    ok(StatusCode::OK, views::external(&view, Some(&provider)))
}

pub(super) async fn put_app(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, provider)): Path<(String, String)>,
    JsonBody(v): JsonBody,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let w = state
        .reconciler
        .put_external(&actor, Origin::App, &app, &provider, &v)
        .await?;
    let mut j = views::external_write(&w);
    j["app"] = json!(app);
    j["provider"] = json!(provider);
    ok(StatusCode::OK, j)
}

pub(super) async fn delete_app(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, provider)): Path<(String, String)>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let w = state
        .reconciler
        .delete_external(&actor, Origin::App, &app, &provider)
        .await?;
    let mut j = views::external_write(&w);
    j["deleted"] = json!(true);
    j["app"] = json!(app);
    j["provider"] = json!(provider);
    ok(StatusCode::OK, j)
}

pub(super) async fn deploy(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path(app): Path<String>,
    body: Body,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    // No body at all is a body without `tenant_id`: the 422 names that field.
    let v = json_body_or(&state, body, Some(json!({}))).await?;
    let result = state.reconciler.deploy(&actor, &app, &v).await?;
    ok(StatusCode::OK, views::deploy(&result))
}
