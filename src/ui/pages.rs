//! The dashboard's pages: each handler calls the API as the session and renders a template.

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use secrecy::SecretString;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::writes::Write;
use super::{cross_site, form, over_tls, refused, session, ApiFailure, Form, Signed, Ui};
use crate::api::auth::Principal;

fn enc(s: &str) -> String {
    super::templates::encode_component(s)
}

/// Only a path of the dashboard itself is a place to go back to after signing in.
fn safe_next(next: Option<&str>) -> String {
    next.filter(|n| n.starts_with("/ui/") && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or("/ui/apps")
        .to_owned()
}

#[derive(Deserialize)]
pub(super) struct NextQuery {
    next: Option<String>,
}

type QueryResult<T> = Result<Query<T>, axum::extract::rejection::QueryRejection>;

pub(super) async fn login_form(State(ui): State<Ui>, q: QueryResult<NextQuery>) -> Response {
    let next = safe_next(q.as_ref().ok().and_then(|q| q.next.as_deref()));
    ui.page(StatusCode::OK, "login.html.j2", None, json!({"next": next}))
}

/// `POST /ui/login`: an admin token or a tenant API key opens a session. A deployment's token
/// does not (deployments have no dashboard).
pub(super) async fn login(State(ui): State<Ui>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    if cross_site(&parts) {
        return refused(&ui, "this form was not sent from a sealwright page");
    }
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return refused(&ui, "the sign-in form is too large");
    };
    let f = Form::parse(&bytes);
    let next = safe_next(f.get("next"));
    let token = f.get("token").unwrap_or("").trim().to_owned();
    let again = |message: &str| {
        ui.page(
            StatusCode::UNAUTHORIZED,
            "login.html.j2",
            None,
            json!({"next": next, "error": message}),
        )
    };
    if token.is_empty() {
        return again("token: enter an admin token or a tenant API key");
    }
    let mut headers = http::HeaderMap::new();
    let Ok(v) = format!("Bearer {token}").parse() else {
        return again("token: the token is not valid");
    };
    headers.insert(header::AUTHORIZATION, v);
    let st = &ui.inner.state;
    let principal = match crate::api::auth::authenticate(&headers, &st.admins, &st.reconciler) {
        Ok(Principal::Deployment(_)) => {
            return again("token: a deployment's token cannot sign in to the dashboard")
        }
        Ok(p) => p,
        Err(r) => {
            let peer = parts.extensions.get::<crate::api::RequestId>().cloned();
            tracing::info!(reason = %r.message(), peer = ?peer.as_ref().and_then(|p| p.1), "dashboard sign-in refused");
            // As on the API: at most one `auth.refused` event per address a minute, never the token.
            if let Some(count) = st.refusals.refused(peer.as_ref().and_then(|p| p.1)) {
                let mut ev = crate::audit::Event::new("anonymous", "auth.refused");
                ev.request_id = peer.as_ref().map(|p| p.0.clone());
                ev.detail = Some(format!("dashboard sign-in: {}", r.message()));
                ev.count = Some(count);
                st.reconciler.events().record(ev);
            }
            return again("token: the token is not valid");
        }
    };
    tracing::info!(actor = %principal.actor(), "dashboard sign-in");
    let (id, _) = ui
        .inner
        .sessions
        .create(principal, SecretString::from(token));
    (
        [(
            header::SET_COOKIE,
            session::set_cookie(&id, over_tls(&parts)),
        )],
        Redirect::to(&next),
    )
        .into_response()
}

/// `POST /ui/logout`: the session ends on the server, and the cookie is cleared.
pub(super) async fn logout(State(ui): State<Ui>, who: Signed, body: Body) -> Response {
    if let Err(r) = form(&ui, &who, body).await {
        return r;
    }
    ui.inner.sessions.end(&who.id);
    (
        [(header::SET_COOKIE, session::clear_cookie(who.tls))],
        Redirect::to("/ui/login"),
    )
        .into_response()
}

fn short(c: &Value) -> String {
    c.as_str().unwrap_or("").chars().take(7).collect()
}

/// A secret's committed dot: pending while a form's write runs or a pull request waits,
/// committed with its short commit id, applied once Flux applied it; failed with the reason.
fn dot(secret: Option<&Value>, write: Option<&Write>) -> Value {
    match (write, secret) {
        (Some(Write::Running(op)), _) => json!({"state": "pending", "label": match *op {
            "delete" => "pending: deleting",
            "create" => "pending: committing",
            _ => "pending: committing the change",
        }}),
        (Some(Write::Failed { op, message, .. }), _) => {
            json!({"state": "failed", "label": format!("{op} failed"), "message": message})
        }
        (None, Some(s)) if s["pendingChange"].is_string() => json!({
            "state": "pending",
            "label": format!("pending review ({})", s["pendingChange"].as_str().unwrap_or("")),
            "pullRequest": s["pullRequest"],
        }),
        (None, Some(s)) if s["applied"] == json!(true) => json!({
            "state": "applied", "label": format!("applied {}", short(&s["commit"])), "commit": s["commit"],
        }),
        (None, Some(s)) if s["committed"] == json!(true) => json!({
            "state": "committed", "label": format!("committed {}", short(&s["commit"])), "commit": s["commit"],
        }),
        _ => json!({"state": "pending", "label": "pending"}),
    }
}

/// The rows of an app's secrets page: the API's secrets with their dots, and the secrets a
/// form is creating that are not there yet.
async fn secret_rows(ui: &Ui, who: &Signed, app: &str) -> Result<Vec<Value>, ApiFailure> {
    let v = ui
        .api(
            who,
            Method::GET,
            &format!("/v1/apps/{}/secrets", enc(app)),
            None,
        )
        .await?;
    let mut writes = ui.inner.writes.of(app);
    let mut rows: Vec<Value> = Vec::new();
    for s in v["secrets"].as_array().into_iter().flatten() {
        let name = s["name"].as_str().unwrap_or("").to_owned();
        let w = writes.remove(&name);
        let mut row = s.clone();
        row["dot"] = dot(Some(s), w.as_ref());
        rows.push(row);
    }
    for (name, w) in writes {
        rows.push(json!({"name": name, "new": true, "dot": dot(None, Some(&w)), "namespaces": [], "keys": []}));
    }
    rows.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(rows)
}

pub(super) async fn apps(State(ui): State<Ui>, who: Signed) -> Response {
    match ui.api(&who, Method::GET, "/v1/apps", None).await {
        Ok(v) => ui.page(
            StatusCode::OK,
            "apps.html.j2",
            Some(&who),
            json!({"apps": v["apps"], "nav": "apps"}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn app(State(ui): State<Ui>, who: Signed, Path(app): Path<String>) -> Response {
    let a = match ui
        .api(&who, Method::GET, &format!("/v1/apps/{}", enc(&app)), None)
        .await
    {
        Ok(a) => a,
        Err(f) => return ui.failure(&who, &f),
    };
    match secret_rows(&ui, &who, &app).await {
        Ok(rows) => ui.page(
            StatusCode::OK,
            "app.html.j2",
            Some(&who),
            json!({"app": a, "rows": rows, "nav": "apps"}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

/// A digest of everything the rows show: the secrets' names, places, keys and states, the
/// form writes still running, and who is looking (admins get a reveal button; the CSRF token is
/// in the forms). Cheap next to rendering, so an unchanged poll costs little. `None` when the
/// session may not see the app (the full path then answers as the API does).
fn rows_tag(ui: &Ui, who: &Signed, app: &str) -> Option<String> {
    use sha2::Digest;
    let r = &ui.inner.state.reconciler;
    let tenant = r.tenant_of(app)?;
    if !who.session.principal.may_act_for(&tenant) {
        return None;
    }
    let mut h = sha2::Sha256::new();
    let mut put = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    put(if who.session.principal.is_admin() {
        "admin"
    } else {
        "tenant"
    });
    put(&who.session.csrf);
    for v in r.list_secrets(app).ok()? {
        put(&v.name);
        put(&v.target_name);
        put(&v.type_);
        put(&v.namespaces.join("\n"));
        for (k, kind) in &v.key_kinds {
            put(k);
            put(kind);
        }
        put(&v.keys.join("\n"));
        put(v.commit.as_deref().unwrap_or("-"));
        put(v.pull_request.as_deref().unwrap_or("-"));
        put(v.pending.unwrap_or("-"));
        put(if v.applied { "applied" } else { "-" });
    }
    for (name, w) in ui.inner.writes.of(app) {
        put(&name);
        put(&format!("{w:?}"));
    }
    Some(format!("\"{}\"", hex::encode(&h.finalize()[..12])))
}

/// The rows alone, for `live.js` to swap in. It polls every second, so rows that did not change
/// since the ones it holds (`If-None-Match`) are a bodiless 304, decided before rendering.
pub(super) async fn rows(
    State(ui): State<Ui>,
    who: Signed,
    Path(app): Path<String>,
    headers: http::HeaderMap,
) -> Response {
    let tag = rows_tag(&ui, &who, &app);
    let held = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if let (Some(t), Some(h)) = (&tag, held) {
        if t == h {
            return (StatusCode::NOT_MODIFIED, [(header::ETAG, t.clone())]).into_response();
        }
    }
    let mut resp = match secret_rows(&ui, &who, &app).await {
        Ok(rows) => ui.page(
            StatusCode::OK,
            "secret-rows.html.j2",
            Some(&who),
            json!({"app": {"name": app}, "rows": rows}),
        ),
        Err(f) => return ui.failure(&who, &f),
    };
    if let Some(v) = tag.and_then(|t| t.parse().ok()) {
        resp.headers_mut().insert(header::ETAG, v);
    }
    resp
}

const TYPES: &[&str] = &[
    "Opaque",
    "kubernetes.io/basic-auth",
    "kubernetes.io/ssh-auth",
    "kubernetes.io/tls",
    "kubernetes.io/dockerconfigjson",
];

const KINDS: &[&str] = &[
    "alphanumeric",
    "hex",
    "base64",
    "token",
    "uuid",
    "ed25519",
    "rsa",
];

/// What the secret form shows: the app's namespaces to choose from, the rules that exist, and
/// what was entered (key names, never values).
async fn form_page(
    ui: &Ui,
    who: &Signed,
    app: &str,
    mode: &str,
    entered: Value,
    error: Option<&ApiFailure>,
) -> Response {
    let a = match ui
        .api(who, Method::GET, &format!("/v1/apps/{}", enc(app)), None)
        .await
    {
        Ok(a) => a,
        Err(f) => return ui.failure(who, &f),
    };
    let presets = ui
        .api(who, Method::GET, "/v1/presets", None)
        .await
        .map(|p| p["presets"].clone())
        .unwrap_or(json!([]));
    let (status, errors, general) = match error {
        None => (StatusCode::OK, json!({}), Value::Null),
        Some(f) => {
            // The field the API named, reduced to the form's input it came from.
            let field = f.field.clone().unwrap_or_default();
            let input = field.split(['.', '[']).next().unwrap_or("").to_owned();
            let input = match input.as_str() {
                "name" | "targetNamespaces" | "targetName" | "type" | "data" | "generate"
                | "derive" | "preset" => input,
                _ => String::new(),
            };
            let mut errors = Map::new();
            if !input.is_empty() {
                errors.insert(input, json!(f.message));
            }
            let general = if errors.is_empty() {
                json!(f.message)
            } else {
                Value::Null
            };
            (
                if f.status.is_client_error() {
                    f.status
                } else {
                    StatusCode::UNPROCESSABLE_ENTITY
                },
                Value::Object(errors),
                general,
            )
        }
    };
    ui.page(
        status,
        "secret-form.html.j2",
        Some(who),
        json!({
            "nav": "apps", "app": a, "mode": mode, "entered": entered, "errors": errors,
            "error": general, "presets": presets, "types": TYPES, "kinds": KINDS,
            "values_dropped": error.is_some(),
        }),
    )
}

pub(super) async fn new_secret(
    State(ui): State<Ui>,
    who: Signed,
    Path(app): Path<String>,
) -> Response {
    form_page(
        &ui,
        &who,
        &app,
        "create",
        json!({"namespaces": [], "keys": [""]}),
        None,
    )
    .await
}

/// A form's key/value, generate and derive rows, as the API's objects.
#[derive(Debug, Default)]
struct Rows {
    data: Map<String, Value>,
    generate: Map<String, Value>,
    derive: Map<String, Value>,
}

impl Rows {
    /// Adds the rows that are there to a write's body.
    fn add_to(self, body: &mut Value) {
        for (k, m) in [
            ("data", self.data),
            ("generate", self.generate),
            ("derive", self.derive),
        ] {
            if !m.is_empty() {
                body[k] = Value::Object(m);
            }
        }
    }
}

/// The rows of key/value, generate and derive inputs, as the API's objects. In an edit, an
/// empty value keeps the key as it is and a ticked `remove` drops it.
fn rules_of(f: &Form, edit: bool) -> Result<Rows, ApiFailure> {
    let invalid = |field: &str, message: String| ApiFailure {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        message: format!("{field}: {message}"),
        field: Some(field.to_owned()),
    };
    let mut data = Map::new();
    for (k, v) in f.all("key").zip(f.all("value")) {
        let k = k.trim();
        if k.is_empty() {
            if !v.is_empty() {
                return Err(invalid("data", "a value needs its key".into()));
            }
            continue;
        }
        if edit && v.is_empty() {
            continue;
        }
        if data.insert(k.to_owned(), json!(v)).is_some() {
            return Err(invalid("data", format!("the key {k:?} is given twice")));
        }
    }
    if edit {
        for k in f.all("remove") {
            data.insert(k.to_owned(), Value::Null);
        }
    }
    let mut generate = Map::new();
    for ((k, kind), size) in f
        .all("gen_key")
        .zip(f.all("gen_kind"))
        .zip(f.all("gen_size"))
    {
        let k = k.trim();
        if k.is_empty() {
            continue;
        }
        let mut rule = json!({"kind": kind});
        if !size.trim().is_empty() {
            let n: u64 = size.trim().parse().map_err(|_| {
                invalid(
                    "generate",
                    format!("{k}: the size {size:?} is not a number"),
                )
            })?;
            let what = match kind {
                "base64" => "bytes",
                "rsa" => "bits",
                _ => "length",
            };
            rule[what] = json!(n);
        }
        generate.insert(k.to_owned(), rule);
    }
    let mut derive = Map::new();
    for (k, t) in f.all("derive_key").zip(f.all("derive_template")) {
        let k = k.trim();
        if !k.is_empty() {
            derive.insert(k.to_owned(), json!(t));
        }
    }
    Ok(Rows {
        data,
        generate,
        derive,
    })
}

/// What the form had, without a single value: shown again after an error.
fn entered(f: &Form) -> Value {
    json!({
        "name": f.get("name").unwrap_or(""),
        "targetName": f.get("targetName").unwrap_or(""),
        "type": f.get("type").unwrap_or(""),
        "preset": f.get("preset").unwrap_or(""),
        "namespaces": f.all("namespace").collect::<Vec<_>>(),
        "keys": f.all("key").filter(|k| !k.trim().is_empty()).collect::<Vec<_>>(),
        "generate": f.all("gen_key").zip(f.all("gen_kind")).zip(f.all("gen_size"))
            .filter(|((k, _), _)| !k.trim().is_empty())
            .map(|((k, kind), size)| json!({"key": k, "kind": kind, "size": size})).collect::<Vec<_>>(),
        "derive": f.all("derive_key").zip(f.all("derive_template"))
            .filter(|(k, _)| !k.trim().is_empty())
            .map(|(k, t)| json!({"key": k, "template": t})).collect::<Vec<_>>(),
    })
}

fn reconcile_failure(e: crate::reconcile::ReconcileError) -> ApiFailure {
    let (status, body) = crate::api::ApiError::from(e).into_parts();
    ApiFailure {
        status,
        message: body["error"].as_str().unwrap_or("refused").to_owned(),
        field: body["field"].as_str().map(str::to_owned),
    }
}

/// Runs the API call of a checked form in the background; the row is pending meanwhile.
fn commit_in_background(
    ui: &Ui,
    who: Signed,
    app: String,
    name: String,
    op: &'static str,
    method: Method,
    body: Option<Value>,
) {
    let ticket = ui.inner.writes.start(&app, &name, op);
    let ui = ui.clone();
    tokio::spawn(async move {
        let path = format!("/v1/apps/{}/secrets/{}", enc(&app), enc(&name));
        let failure = ui
            .api(&who, method, &path, body)
            .await
            .err()
            .map(|f| f.message);
        if let Some(m) = &failure {
            tracing::info!(app = %app, secret = %name, error = %m, "a dashboard write failed");
        }
        ui.inner.writes.finish(&app, &name, ticket, failure);
    });
}

pub(super) async fn create_secret(
    State(ui): State<Ui>,
    who: Signed,
    Path(app): Path<String>,
    body: Body,
) -> Response {
    let f = match form(&ui, &who, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    // The app must be the session's to see at all (the API says 403 or 404).
    if let Err(e) = ui
        .api(&who, Method::GET, &format!("/v1/apps/{}", enc(&app)), None)
        .await
    {
        return ui.failure(&who, &e);
    }
    let name = f.get("name").unwrap_or("").trim().to_owned();
    let (u, w, a, fr) = (&ui, &who, &app, &f);
    let fail = move |e: ApiFailure| async move {
        form_page(u, w, a, "create", entered(fr), Some(&e)).await
    };
    if name.is_empty() {
        return fail(ApiFailure {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "name: is required".into(),
            field: Some("name".into()),
        })
        .await;
    }
    if ui
        .api(
            &who,
            Method::GET,
            &format!("/v1/apps/{}/secrets/{}", enc(&app), enc(&name)),
            None,
        )
        .await
        .is_ok()
    {
        return fail(ApiFailure {
            status: StatusCode::CONFLICT,
            message: format!("name: a secret {name:?} exists; edit it instead"),
            field: Some("name".into()),
        })
        .await;
    }
    let rows = match rules_of(&f, false) {
        Ok(r) => r,
        Err(e) => return fail(e).await,
    };
    let mut body = json!({"targetNamespaces": f.all("namespace").collect::<Vec<_>>()});
    for (k, field) in [
        ("targetName", "targetName"),
        ("type", "type"),
        ("preset", "preset"),
    ] {
        if let Some(v) = f.get(field).map(str::trim).filter(|v| !v.is_empty()) {
            body[k] = json!(v);
        }
    }
    rows.add_to(&mut body);
    // Checked now, so a bad field is shown on the form; committed in the background.
    if let Err(e) = ui
        .inner
        .state
        .reconciler
        .secret_of_put(&app, &name, &body)
        .await
    {
        return fail(reconcile_failure(e)).await;
    }
    let to = format!("/ui/apps/{}", enc(&app));
    commit_in_background(&ui, who, app, name, "create", Method::PUT, Some(body));
    Redirect::to(&to).into_response()
}

async fn the_secret(ui: &Ui, who: &Signed, app: &str, name: &str) -> Result<Value, ApiFailure> {
    ui.api(
        who,
        Method::GET,
        &format!("/v1/apps/{}/secrets/{}", enc(app), enc(name)),
        None,
    )
    .await
}

fn entered_of(s: &Value) -> Value {
    json!({
        "name": s["name"], "targetName": s["targetName"], "type": s["type"],
        "namespaces": s["namespaces"], "keys": s["keys"], "keyKinds": s["keyKinds"],
        "generate": [], "derive": [],
    })
}

pub(super) async fn edit_secret(
    State(ui): State<Ui>,
    who: Signed,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    match the_secret(&ui, &who, &app, &name).await {
        Ok(s) => form_page(&ui, &who, &app, "edit", entered_of(&s), None).await,
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn update_secret(
    State(ui): State<Ui>,
    who: Signed,
    Path((app, name)): Path<(String, String)>,
    body: Body,
) -> Response {
    let f = match form(&ui, &who, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let current = match the_secret(&ui, &who, &app, &name).await {
        Ok(s) => s,
        Err(e) => return ui.failure(&who, &e),
    };
    let (u, w, a, cur) = (&ui, &who, &app, &current);
    let fail = move |e: ApiFailure| async move {
        form_page(u, w, a, "edit", entered_of(cur), Some(&e)).await
    };
    let rows = match rules_of(&f, true) {
        Ok(r) => r,
        Err(e) => return fail(e).await,
    };
    let mut body = json!({});
    rows.add_to(&mut body);
    if let Err(e) = ui
        .inner
        .state
        .reconciler
        .secret_of_patch(&app, &name, &body)
        .await
    {
        return fail(reconcile_failure(e)).await;
    }
    let to = format!("/ui/apps/{}", enc(&app));
    commit_in_background(&ui, who, app, name, "update", Method::PATCH, Some(body));
    Redirect::to(&to).into_response()
}

pub(super) async fn confirm_delete(
    State(ui): State<Ui>,
    who: Signed,
    Path((app, name)): Path<(String, String)>,
) -> Response {
    match the_secret(&ui, &who, &app, &name).await {
        Ok(s) => ui.page(
            StatusCode::OK,
            "confirm.html.j2",
            Some(&who),
            json!({"nav": "apps", "app": {"name": app}, "secret": s}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn delete_secret(
    State(ui): State<Ui>,
    who: Signed,
    Path((app, name)): Path<(String, String)>,
    body: Body,
) -> Response {
    if let Err(r) = form(&ui, &who, body).await {
        return r;
    }
    if let Err(f) = the_secret(&ui, &who, &app, &name).await {
        return ui.failure(&who, &f);
    }
    let to = format!("/ui/apps/{}", enc(&app));
    commit_in_background(&ui, who, app, name, "delete", Method::DELETE, None);
    Redirect::to(&to).into_response()
}

/// An admin's reveal: the API's audited `?reveal=true`, on a page of its own (never cached).
pub(super) async fn reveal(
    State(ui): State<Ui>,
    who: Signed,
    Path((app, name)): Path<(String, String)>,
    body: Body,
) -> Response {
    if let Err(r) = form(&ui, &who, body).await {
        return r;
    }
    let path = format!("/v1/apps/{}/secrets/{}?reveal=true", enc(&app), enc(&name));
    match ui.api(&who, Method::GET, &path, None).await {
        Ok(s) => ui.page(
            StatusCode::OK,
            "reveal.html.j2",
            Some(&who),
            json!({"nav": "apps", "app": {"name": app}, "secret": s}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn external(
    State(ui): State<Ui>,
    who: Signed,
    Path(app): Path<String>,
) -> Response {
    let a = match ui
        .api(&who, Method::GET, &format!("/v1/apps/{}", enc(&app)), None)
        .await
    {
        Ok(a) => a,
        Err(f) => return ui.failure(&who, &f),
    };
    match ui
        .api(
            &who,
            Method::GET,
            &format!("/v1/apps/{}/external-secrets", enc(&app)),
            None,
        )
        .await
    {
        Ok(x) => ui.page(
            StatusCode::OK,
            "external.html.j2",
            Some(&who),
            json!({"nav": "apps", "app": a, "external": x}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn deployments(State(ui): State<Ui>, who: Signed) -> Response {
    match ui.api(&who, Method::GET, "/v1/deployments", None).await {
        Ok(v) => ui.page(
            StatusCode::OK,
            "deployments.html.j2",
            Some(&who),
            json!({"nav": "deployments", "deployments": v["deployments"]}),
        ),
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn revoke(
    State(ui): State<Ui>,
    who: Signed,
    Path(id): Path<String>,
    body: Body,
) -> Response {
    if let Err(r) = form(&ui, &who, body).await {
        return r;
    }
    match ui
        .api(
            &who,
            Method::POST,
            &format!("/v1/deployments/{}/revoke", enc(&id)),
            Some(json!({})),
        )
        .await
    {
        Ok(_) => Redirect::to("/ui/deployments").into_response(),
        Err(f) => ui.failure(&who, &f),
    }
}

#[derive(Deserialize, Default)]
pub(super) struct EventFilter {
    app: Option<String>,
    action: Option<String>,
    actor: Option<String>,
}

pub(super) async fn events(
    State(ui): State<Ui>,
    who: Signed,
    q: QueryResult<EventFilter>,
) -> Response {
    let q = q.map(|q| q.0).unwrap_or_default();
    let app = q.app.filter(|a| !a.is_empty());
    let mut path = "/v1/events?limit=10000".to_owned();
    if let Some(a) = &app {
        path.push_str(&format!("&app={}", enc(a)));
    }
    let v = match ui.api(&who, Method::GET, &path, None).await {
        Ok(v) => v,
        Err(f) => return ui.failure(&who, &f),
    };
    let action = q.action.unwrap_or_default();
    let actor = q.actor.unwrap_or_default();
    let mut events: Vec<Value> = v["events"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| {
            action.is_empty()
                || e["action"]
                    .as_str()
                    .is_some_and(|a| a.starts_with(action.as_str()))
        })
        .filter(|e| {
            actor.is_empty()
                || e["actor"]
                    .as_str()
                    .is_some_and(|a| a.contains(actor.as_str()))
        })
        .cloned()
        .collect();
    events.reverse();
    events.truncate(500);
    ui.page(
        StatusCode::OK,
        "events.html.j2",
        Some(&who),
        json!({"nav": "events", "events": events, "filter": {"app": app, "action": action, "actor": actor}}),
    )
}

/// Admin: every tenant (configured, or with apps) and its API keys; `new_key` is shown once.
async fn tenants_page(ui: &Ui, who: &Signed, new_key: Option<Value>) -> Response {
    if !who.session.principal.is_admin() {
        return ui.failure(
            who,
            &ApiFailure {
                status: StatusCode::FORBIDDEN,
                message: "forbidden: tenants and API keys are for admins".into(),
                field: None,
            },
        );
    }
    let apps = match ui.api(who, Method::GET, "/v1/apps", None).await {
        Ok(v) => v,
        Err(f) => return ui.failure(who, &f),
    };
    let mut names: std::collections::BTreeSet<String> = ui
        .inner
        .state
        .reconciler
        .settings()
        .boundary
        .tenant_ids()
        .map(str::to_owned)
        .collect();
    for a in apps["apps"].as_array().into_iter().flatten() {
        if let Some(t) = a["tenant"].as_str() {
            names.insert(t.to_owned());
        }
    }
    let mut tenants = Vec::new();
    for t in names {
        let keys = ui
            .api(
                who,
                Method::GET,
                &format!("/v1/tenants/{}/api-keys", enc(&t)),
                None,
            )
            .await;
        let apps_of: Vec<&Value> = apps["apps"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|a| a["tenant"] == json!(t))
            .map(|a| &a["name"])
            .collect();
        tenants.push(json!({"name": t, "apps": apps_of, "keys": keys.map(|k| k["keys"].clone()).unwrap_or(json!([]))}));
    }
    ui.page(
        StatusCode::OK,
        "tenants.html.j2",
        Some(who),
        json!({"nav": "tenants", "tenants": tenants, "new_key": new_key}),
    )
}

pub(super) async fn tenants(State(ui): State<Ui>, who: Signed) -> Response {
    tenants_page(&ui, &who, None).await
}

pub(super) async fn create_key(
    State(ui): State<Ui>,
    who: Signed,
    Path(tenant): Path<String>,
    body: Body,
) -> Response {
    let f = match form(&ui, &who, body).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let tenant = f
        .get("tenant")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
        .unwrap_or(tenant);
    match ui
        .api(
            &who,
            Method::POST,
            &format!("/v1/tenants/{}/api-keys", enc(&tenant)),
            Some(json!({})),
        )
        .await
    {
        Ok(k) => tenants_page(&ui, &who, Some(k)).await,
        Err(f) => ui.failure(&who, &f),
    }
}

pub(super) async fn delete_key(
    State(ui): State<Ui>,
    who: Signed,
    Path((tenant, id)): Path<(String, String)>,
    body: Body,
) -> Response {
    if let Err(r) = form(&ui, &who, body).await {
        return r;
    }
    match ui
        .api(
            &who,
            Method::DELETE,
            &format!("/v1/tenants/{}/api-keys/{}", enc(&tenant), enc(&id)),
            None,
        )
        .await
    {
        Ok(_) => Redirect::to("/ui/tenants").into_response(),
        Err(f) => ui.failure(&who, &f),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_dashboard_paths_are_places_to_return_to() {
        assert_eq!(safe_next(Some("/ui/apps/shop")), "/ui/apps/shop");
        for bad in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/v1/apps",
            "/ui\\..",
            "",
        ] {
            assert_eq!(safe_next(Some(bad)), "/ui/apps", "{bad}");
        }
    }

    #[test]
    fn the_dot_goes_pending_committed_applied_and_says_why_it_failed() {
        let s = json!({"committed": true, "commit": "0123456789abcdef", "applied": false, "pendingChange": null});
        assert_eq!(dot(Some(&s), None)["label"], "committed 0123456");
        let mut applied = s.clone();
        applied["applied"] = json!(true);
        assert_eq!(dot(Some(&applied), None)["state"], "applied");
        assert_eq!(
            dot(Some(&s), Some(&Write::Running("update")))["state"],
            "pending"
        );
        let review = json!({"committed": false, "pendingChange": "create", "pullRequest": "https://x/pull/1"});
        assert_eq!(dot(Some(&review), None)["pullRequest"], "https://x/pull/1");
        let failed = Write::Failed {
            op: "create",
            message: "m".into(),
            at: std::time::Instant::now(),
        };
        assert_eq!(dot(None, Some(&failed))["message"], "m");
    }

    #[test]
    fn form_rows_become_the_api_s_objects_and_values_are_never_shown_again() {
        let f = Form::parse(b"name=db&key=user&value=app&key=password&value=hunter2&key=&value=&gen_key=token&gen_kind=hex&gen_size=32&derive_key=url&derive_template=x%7B%7Buser%7D%7D&namespace=shop-prod");
        let Rows {
            data,
            generate,
            derive,
        } = rules_of(&f, false).unwrap();
        assert_eq!(
            Value::Object(data),
            json!({"user": "app", "password": "hunter2"})
        );
        assert_eq!(
            Value::Object(generate),
            json!({"token": {"kind": "hex", "length": 32}})
        );
        assert_eq!(Value::Object(derive), json!({"url": "x{{user}}"}));
        let shown = entered(&f).to_string();
        assert!(
            !shown.contains("hunter2") && shown.contains("password"),
            "{shown}"
        );
        // An edit keeps a key whose value is left empty, and removes a ticked one.
        let f = Form::parse(b"key=user&value=&key=password&value=new&remove=old");
        let data = rules_of(&f, true).unwrap().data;
        assert_eq!(Value::Object(data), json!({"password": "new", "old": null}));
        let e = rules_of(&Form::parse(b"key=a&value=1&key=a&value=2"), false).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("data"));
    }
}
