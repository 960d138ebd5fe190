//! The app routes: list, register (`POST /v1/apps`), change (`PUT /v1/apps/{app}`), read and
//! unregister. Who may act for which tenant is checked here; the rules themselves are the
//! reconciler's.

use super::views;
use super::*;

pub(super) async fn list_apps(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
) -> ApiResult {
    let apps: Vec<Value> = state
        .reconciler
        .list_apps()
        .into_iter()
        .filter(|a| p.may_act_for(&a.spec.tenant))
        .map(|a| views::app(&a, p.is_admin()))
        .collect();
    ok(StatusCode::OK, json!({"apps": apps}))
}

pub(super) async fn create_app(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    JsonBody(v): JsonBody,
) -> ApiResult {
    let spec = crate::reconcile::AppSpec::from_json(&v).map_err(ReconcileError::from)?;
    if !p.may_act_for(&spec.tenant) {
        return Err(ApiError::forbidden(&format!(
            "this key cannot register apps for tenant {:?}",
            spec.tenant
        )));
    }
    let view = state
        .reconciler
        .register_app(&actor, spec, Source::Api)
        .await
        .map_err(ApiError::scoped(&p))?;
    ok(StatusCode::CREATED, views::app(&view, p.is_admin()))
}

/// `PUT /v1/apps/{app}`: changes a registration made through the API (its environments, its
/// delivery); the tenant stays. Apps of the registrations directory are changed there (409).
pub(super) async fn put_app(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path(app): Path<String>,
    JsonBody(mut v): JsonBody,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    if let Some(obj) = v.as_object_mut() {
        match obj.get("name") {
            None => {
                obj.insert("name".into(), json!(app));
            }
            Some(n) if n == &json!(app) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "name",
                    &format!("must be {app:?}, the app in the path (an app is not renamed)"),
                ))
            }
        }
        let current = state.reconciler.app(&app)?;
        match obj.get("tenant") {
            None => {
                obj.insert("tenant".into(), json!(current.spec.tenant));
            }
            Some(t) if t == &json!(current.spec.tenant) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    "tenant",
                    &format!(
                        "must be {:?}: an app does not move between tenants",
                        current.spec.tenant
                    ),
                ))
            }
        }
        match current.source {
            Source::Api => {}
            Source::Config => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("app {app:?} is declared by the registrations directory; change it there"),
                ))
            }
            Source::Kubernetes => {
                return Err(ApiError::new(
                    StatusCode::CONFLICT,
                    format!("app {app:?} is declared by its AppPlatformRegistration; change it there (kubectl edit apr {app})"),
                ))
            }
        }
    }
    let spec = crate::reconcile::AppSpec::from_json(&v).map_err(ReconcileError::from)?;
    let view = state
        .reconciler
        .update_app(&actor, spec)
        .await
        .map_err(ApiError::scoped(&p))?;
    ok(StatusCode::OK, views::app(&view, p.is_admin()))
}

pub(super) async fn get_app(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path(app): Path<String>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    ok(
        StatusCode::OK,
        views::app(&state.reconciler.app(&app)?, p.is_admin()),
    )
}

#[derive(Deserialize)]
pub(super) struct DeleteAppQuery {
    #[serde(default)]
    archive: Option<String>,
}

/// `POST /v1/apps/{app}/drift/resolve {"action": "restore" | "adopt"}`: admin only.
pub(super) async fn resolve_drift(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path(app): Path<String>,
    JsonBody(v): JsonBody,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    if !p.is_admin() {
        return Err(ApiError::forbidden("resolving drift needs an admin token"));
    }
    let ack = state.reconciler.resolve_drift(&actor, &app, &v).await?;
    ok(StatusCode::OK, views::ack(&ack))
}

pub(super) async fn delete_app(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path(app): Path<String>,
    q: Result<Query<DeleteAppQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    app_in_scope(&state, &p, &app)?;
    let archive = match q.archive.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("archive", "must be true or false")),
    };
    if state
        .reconciler
        .app(&app)
        .is_ok_and(|v| v.source == Source::Kubernetes)
    {
        // The registration would only be made again from the resource.
        return Err(ApiError::new(
            StatusCode::CONFLICT,
            format!("app {app:?} is declared by its AppPlatformRegistration; delete that (kubectl delete apr {app})"),
        ));
    }
    let commit = state.reconciler.delete_app(&actor, &app, archive).await?;
    ok(
        StatusCode::OK,
        json!({"deleted": true, "archived": archive, "committed": true, "commit": commit}),
    )
}
