//! The audit log (`GET /v1/events`) and tenant API keys (create, list, revoke): admin routes,
//! except that a tenant key reads its own tenant's events and keys.

use super::*;

#[derive(Deserialize)]
pub(super) struct EventsQuery {
    app: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
}

pub(super) async fn list_events(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    q: Result<Query<EventsQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    let limit = q.limit.unwrap_or(1000).min(10_000);
    let events = state
        .reconciler
        .events()
        .list(q.after.unwrap_or(0), limit, &|e| {
            let scoped = match &p {
                Principal::Admin => true,
                Principal::Tenant { tenant, .. } => e.tenant.as_deref() == Some(tenant),
                Principal::Deployment(_) => false,
            };
            scoped && q.app.as_ref().is_none_or(|a| e.app.as_ref() == Some(a))
        });
    ok(StatusCode::OK, json!({"events": events}))
}

pub(super) async fn create_api_key(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path(tenant): Path<String>,
) -> ApiResult {
    if !p.is_admin() {
        return Err(ApiError::forbidden(
            "creating API keys needs an admin token",
        ));
    }
    let (rec, key) = state.reconciler.create_api_key(&actor, &tenant).await?;
    use secrecy::ExposeSecret;
    ok(
        StatusCode::CREATED,
        json!({"id": rec.id, "tenant": rec.tenant, "created": rec.created,
               "key": key.expose_secret(), "note": "shown once; only its hash is stored"}),
    )
}

pub(super) async fn list_api_keys(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path(tenant): Path<String>,
) -> ApiResult {
    if !p.is_admin() {
        return Err(ApiError::forbidden("listing API keys needs an admin token"));
    }
    let keys: Vec<Value> = state
        .reconciler
        .api_keys(Some(&tenant))
        .into_iter()
        .map(|k| json!({"id": k.id, "tenant": k.tenant, "created": k.created}))
        .collect();
    ok(StatusCode::OK, json!({"apiKeys": keys}))
}

pub(super) async fn delete_api_key(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((tenant, id)): Path<(String, String)>,
) -> ApiResult {
    if !p.is_admin() {
        return Err(ApiError::forbidden(
            "revoking API keys needs an admin token",
        ));
    }
    if !state
        .reconciler
        .api_keys(Some(&tenant))
        .iter()
        .any(|k| k.id == id)
    {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("API key {id:?} of tenant {tenant:?} not found"),
        ));
    }
    state.reconciler.delete_api_key(&actor, &id).await?;
    ok(StatusCode::OK, json!({"deleted": true, "id": id}))
}
