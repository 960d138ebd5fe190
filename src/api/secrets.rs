//! The secret routes of an app: list, read (values only with `reveal`), put, patch and delete.

use super::views;
use super::*;

pub(super) async fn list_secrets(
    State(state): State<ApiState>,
    Caller { principal: p, .. }: Caller,
    Path(app): Path<String>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let secrets: Vec<Value> = state
        .reconciler
        .list_secrets(&app)?
        .iter()
        .map(views::secret)
        .collect();
    ok(StatusCode::OK, json!({"app": app, "secrets": secrets}))
}

#[derive(Deserialize)]
pub(super) struct RevealQuery {
    #[serde(default)]
    reveal: Option<String>,
}

pub(super) async fn get_secret(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, name)): Path<(String, String)>,
    q: Result<Query<RevealQuery>, axum::extract::rejection::QueryRejection>,
) -> ApiResult {
    let q = query(q)?;
    app_in_scope(&state, &p, &app)?;
    let reveal = match q.reveal.as_deref() {
        None | Some("false") => false,
        Some("true") => true,
        Some(_) => return Err(ApiError::invalid("reveal", "must be true or false")),
    };
    let mut v = views::secret(&state.reconciler.secret(&app, &name)?);
    if reveal {
        if !p.is_admin() {
            return Err(ApiError::forbidden("revealing values needs an admin token"));
        }
        let data = state.reconciler.reveal(&actor, &app, &name)?;
        let mut plain = serde_json::Map::new();
        let mut b64 = serde_json::Map::new();
        for (k, val) in &data {
            match std::str::from_utf8(val.expose()) {
                Ok(s) => {
                    plain.insert(k.clone(), json!(s));
                }
                Err(_) => {
                    use base64::Engine;
                    b64.insert(
                        k.clone(),
                        json!(base64::engine::general_purpose::STANDARD.encode(val.expose())),
                    );
                }
            }
        }
        v["data"] = Value::Object(plain);
        if !b64.is_empty() {
            v["dataBase64"] = Value::Object(b64);
        }
    }
    ok(StatusCode::OK, v)
}

pub(super) async fn put_secret(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, name)): Path<(String, String)>,
    JsonBody(v): JsonBody,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let ack = match mirror_of(&state, &app) {
        Some(m) => {
            let spec = state.reconciler.secret_of_put(&app, &name, &v).await?;
            mirrored(m.put(&app, &spec).await)?;
            state.reconciler.put_secret_spec(&actor, &app, spec).await?
        }
        None => state.reconciler.put_secret(&actor, &app, &name, &v).await?,
    };
    ok(StatusCode::OK, views::ack(&ack))
}

pub(super) async fn patch_secret(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, name)): Path<(String, String)>,
    JsonBody(v): JsonBody,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    let ack = match mirror_of(&state, &app) {
        Some(m) => {
            let spec = state.reconciler.secret_of_patch(&app, &name, &v).await?;
            mirrored(m.put(&app, &spec).await)?;
            state.reconciler.put_secret_spec(&actor, &app, spec).await?
        }
        None => {
            state
                .reconciler
                .patch_secret(&actor, &app, &name, &v)
                .await?
        }
    };
    ok(StatusCode::OK, views::ack(&ack))
}

pub(super) async fn rotate_secret(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, name)): Path<(String, String)>,
    body: axum::body::Body,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    // No body rotates every generated key, like `{}`.
    let v = json_body_or(&state, body, Some(json!({}))).await?;
    let ack = match mirror_of(&state, &app) {
        Some(m) => {
            let spec = state.reconciler.secret_of_rotate(&app, &name, &v).await?;
            mirrored(m.put(&app, &spec).await)?;
            state.reconciler.put_secret_spec(&actor, &app, spec).await?
        }
        None => {
            state
                .reconciler
                .rotate_secret(&actor, &app, &name, &v)
                .await?
        }
    };
    ok(StatusCode::OK, views::ack(&ack))
}

/// The server's presets: named starting points a write can take with `"preset": NAME`.
pub(super) async fn list_presets(State(state): State<ApiState>, _caller: Caller) -> ApiResult {
    let presets: Vec<Value> = state
        .reconciler
        .policy()
        .presets
        .iter()
        .map(|(name, p)| p.to_json(name))
        .collect();
    ok(StatusCode::OK, json!({"presets": presets}))
}

pub(super) async fn delete_secret(
    State(state): State<ApiState>,
    Caller {
        principal: p,
        actor,
    }: Caller,
    Path((app, name)): Path<(String, String)>,
) -> ApiResult {
    app_in_scope(&state, &p, &app)?;
    if let Some(m) = mirror_of(&state, &app) {
        state.reconciler.secret(&app, &name)?;
        mirrored(m.delete(&app, &name).await)?;
    }
    let ack = state.reconciler.delete_secret(&actor, &app, &name).await?;
    ok(StatusCode::OK, views::ack(&ack))
}

/// Controller mode, for an app its registration declares: writes go through its managed Secret.
fn mirror_of<'a>(state: &'a ApiState, app: &str) -> Option<&'a crate::controller::SecretMirror> {
    let m = state.mirror.as_deref()?;
    state
        .reconciler
        .app(app)
        .is_ok_and(|v| v.source == crate::reconcile::Source::Kubernetes)
        .then_some(m)
}

fn mirrored(r: Result<(), crate::controller::ControllerError>) -> Result<(), ApiError> {
    r.map_err(|e| match e {
        crate::controller::ControllerError::Reconcile(m) => ApiError::new(StatusCode::CONFLICT, m),
        other => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("the managed Secret could not be written: {other}"),
        ),
    })
}
