//! The HTTP API dashboards call (axum): apps, their secrets, audit events, tenant API keys, and
//! the operational endpoints (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`).
//!
//! Every request gets a request id (taken from `x-request-id` when sane, else made up) that is in
//! its tracing span, its events and its response header. Bodies are read with a size limit and
//! parsed by [`crate::spec`], so a bad body is a 422 naming the field. Responses never
//! carry a secret value, except a reveal: admin only, and audited.

mod admin;
mod apps;
pub mod auth;
mod body;
mod cors;
mod deployments;
mod external;
mod extract;
mod metrics;
mod openapi;
mod secrets;
pub mod views;
mod webhook;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::audit::Event;
use crate::reconcile::{Actor, ReconcileError, Reconciler, Source};
use admin::*;
use apps::*;
use auth::{AdminTokens, Principal};
use extract::{Caller, JsonBody};
use secrets::*;

pub use metrics::HttpMetrics;

/// The largest body accepted by default (`limits.body_bytes`): a Secret's 1 MiB of data plus
/// room for JSON.
pub const MAX_BODY: usize = 1024 * 1024 + 64 * 1024;

/// What every handler shares.
#[derive(Clone)]
pub struct ApiState {
    pub reconciler: Reconciler,
    pub admins: Arc<AdminTokens>,
    /// Set once start-up (load and the first round) is done.
    pub ready: Arc<AtomicBool>,
    pub http: Arc<HttpMetrics>,
    /// The shared secret GitHub signs webhook deliveries with; without it they are refused.
    pub webhook_secret: Option<Arc<secrecy::SecretString>>,
    /// Refused authentications, counted per source address so the audit log gets at most one
    /// `auth.refused` event per address per minute.
    pub refusals: Arc<auth::RefusalLog>,
    /// Controller mode: secret writes for registration-declared apps go through their managed
    /// Secrets too.
    pub mirror: Option<Arc<crate::controller::SecretMirror>>,
    /// Under `tls.client_ca`: whether the API needs a client certificate, and who each one is.
    pub client_certs: Option<Arc<ClientCertPolicy>>,
    /// `cors_origins`: the origins a separately hosted dashboard may call the API from.
    pub cors_origins: Arc<Vec<String>>,
}

/// What a verified client certificate means to the API (`tls.client_auth`,
/// `tls.client_identities`).
#[derive(Debug)]
pub struct ClientCertPolicy {
    pub auth: crate::tls::ClientAuth,
    pub identities: std::collections::BTreeMap<String, crate::tls::CertIdentity>,
}

/// Marks a request the dashboard makes to the API in-process for a signed-in session: it
/// comes over no connection of its own, so there is no client certificate to ask it for (the
/// session was signed in with a token, which the request carries).
#[derive(Clone, Copy, Debug)]
pub struct Internal;

/// The router, with request ids and metrics around every route.
pub fn router(state: ApiState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .route("/openapi.json", get(openapi::document))
        .route("/v1/apps", get(list_apps).post(create_app))
        .route(
            "/v1/apps/{app}",
            get(get_app).put(put_app).delete(delete_app),
        )
        .route("/v1/apps/{app}/secrets", get(list_secrets))
        .route(
            "/v1/apps/{app}/secrets/{name}",
            get(get_secret)
                .put(put_secret)
                .patch(patch_secret)
                .delete(delete_secret),
        )
        .route(
            "/v1/apps/{app}/secrets/{name}/rotate",
            post(secrets::rotate_secret),
        )
        .route("/v1/presets", get(secrets::list_presets))
        .route("/v1/apps/{app}/drift/resolve", post(resolve_drift))
        .route("/v1/apps/{app}/external-secrets", get(external::list_app))
        .route(
            "/v1/apps/{app}/external-secrets/{provider}",
            get(external::get_app)
                .put(external::put_app)
                .delete(external::delete_app),
        )
        .route("/v1/apps/{app}/deploys", post(external::deploy))
        .route(
            "/v1/tenants/{tenant}/external-secrets",
            get(external::list_tenant),
        )
        .route(
            "/v1/tenants/{tenant}/external-secrets/{provider}",
            get(external::get_tenant)
                .put(external::put_tenant)
                .delete(external::delete_tenant),
        )
        .route("/v1/events", get(list_events))
        .route("/v1/deployments", get(deployments::list))
        .route(
            "/v1/deployments/{id}",
            get(deployments::get_one)
                .put(deployments::put)
                .delete(deployments::delete),
        )
        .route("/v1/deployments/{id}/revoke", post(deployments::revoke))
        .route("/v1/signing-keys/rotate", post(deployments::rotate_keys))
        .route("/.well-known/jwks.json", get(deployments::jwks))
        .route("/v1/webhooks/github", post(webhook::github))
        .route(
            "/v1/tenants/{tenant}/api-keys",
            post(create_api_key).get(list_api_keys),
        )
        .route(
            "/v1/tenants/{tenant}/api-keys/{id}",
            axum::routing::delete(delete_api_key),
        )
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(state.clone(), cors::layer))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            request_context,
        ))
        .with_state(state)
}

/// The request id of the request being served, and the address it came from (when the server
/// knows it: `into_make_service_with_connect_info::<Peer>`).
#[derive(Clone, Debug)]
pub struct RequestId(pub String, pub Option<std::net::IpAddr>);

/// The verified client certificate of the connection a request came over, if any.
#[derive(Clone, Debug, Default)]
pub struct ConnCert(pub Option<Arc<crate::tls::ClientCert>>);

/// Request ids, the request's span and its metrics, and a 503 for `/v1/` until start-up is done
/// (the dashboard's router runs it too).
pub async fn request_context(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let id = req
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| {
            !v.is_empty()
                && v.len() <= 64
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        })
        .map(str::to_owned)
        .unwrap_or_else(new_request_id);
    let conn = req
        .extensions()
        .get::<axum::extract::ConnectInfo<crate::tls::Peer>>()
        .map(|c| c.0.clone());
    let internal = req.extensions().get::<Internal>().is_some();
    let peer = match (conn.as_ref(), req.extensions().get::<RequestId>()) {
        (Some(c), _) => Some(c.addr.ip()),
        // The dashboard's in-process calls carry the signed-in browser's address.
        (None, Some(r)) if internal => r.1,
        _ => None,
    };
    req.extensions_mut().insert(RequestId(id.clone(), peer));
    req.extensions_mut()
        .insert(ConnCert(conn.and_then(|c| c.client)));
    let method = req.method().clone();
    let span =
        tracing::info_span!("http", request_id = %id, method = %method, path = %req.uri().path());
    let started = std::time::Instant::now();
    // Until start-up is done (state loaded, first round), and on a controller-mode standby,
    // the reconciler has nothing to answer from: say so rather than 404 what is not loaded.
    let standing_by = !state.ready.load(Ordering::Acquire) && req.uri().path().starts_with("/v1/");
    let mut resp = if standing_by {
        let mut r = ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: starting up, or standing by while another replica holds the lease",
        )
        .into_response();
        r.headers_mut().insert(
            http::header::RETRY_AFTER,
            http::HeaderValue::from_static("2"),
        );
        r
    } else {
        use tracing::Instrument;
        next.run(req).instrument(span.clone()).await
    };
    let status = resp.status().as_u16();
    if !internal {
        // The dashboard's page was counted already; its API calls are not requests of their own.
        state
            .http
            .observe(method.as_str(), status, started.elapsed());
    }
    span.in_scope(|| tracing::info!(status, ms = started.elapsed().as_millis() as u64, "served"));
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert("x-request-id", v);
    }
    resp
}

fn new_request_id() -> String {
    use rand::RngCore;
    let mut b = [0u8; 8];
    rand::rngs::OsRng.fill_bytes(&mut b);
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An error answer: `{"error": message, "field"?, "reason"?, "requestId"}`.
pub struct ApiError {
    status: StatusCode,
    body: Value,
}

impl ApiError {
    /// The status and the JSON body (`error`, `field`, `reason`), for the dashboard's pages.
    pub fn into_parts(self) -> (StatusCode, Value) {
        (self.status, self.body)
    }

    fn new(status: StatusCode, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            body: json!({"error": message.into()}),
        }
    }

    fn invalid(field: &str, reason: &str) -> ApiError {
        ApiError {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            body: json!({"error": format!("{field}: {reason}"), "field": field, "reason": reason}),
        }
    }

    fn forbidden(what: &str) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, format!("forbidden: {what}"))
    }

    /// A reconciler error as `p` may see it: only an admin is told which app holds a taken
    /// namespace (a tenant learns that it is taken, not by whom).
    fn scoped(p: &Principal) -> impl Fn(ReconcileError) -> ApiError + '_ {
        move |e| {
            let owner = e
                .owner()
                .filter(|_| p.is_admin())
                .map(|(app, tenant)| json!({"app": app, "tenant": tenant}));
            let mut err = ApiError::from(e);
            if let Some(o) = owner {
                err.body["owner"] = o;
            }
            err
        }
    }
}

impl From<ReconcileError> for ApiError {
    fn from(e: ReconcileError) -> ApiError {
        match &e {
            ReconcileError::NotFound { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            ReconcileError::Conflict(_) => ApiError::new(StatusCode::CONFLICT, e.to_string()),
            ReconcileError::Invalid(i) => ApiError::invalid(&i.field, &i.reason),
            ReconcileError::Forbidden { field, reason } => ApiError {
                status: StatusCode::FORBIDDEN,
                body: json!({"error": e.to_string(), "field": field, "reason": reason}),
            },
            ReconcileError::Taken { field, .. } => ApiError {
                status: StatusCode::CONFLICT,
                body: json!({"error": e.to_string(), "field": field, "reason": "taken"}),
            },
            ReconcileError::NotReady { .. }
            | ReconcileError::Unavailable(_)
            | ReconcileError::Lost { .. } => {
                ApiError::new(StatusCode::SERVICE_UNAVAILABLE, e.to_string())
            }
            ReconcileError::Internal(_) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
            }
            _ => ApiError::new(StatusCode::BAD_GATEWAY, e.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(self.body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

type ApiResult = Result<Response, ApiError>;

/// Authenticates a person's token (admin or tenant key): a deployment token is 403 here, since
/// deployments may only read deployments ([`who_any`]).
fn who(state: &ApiState, parts: &http::request::Parts) -> Result<(Principal, Actor), ApiError> {
    let (p, actor) = who_any(state, parts)?;
    if matches!(p, Principal::Deployment(_)) {
        return Err(ApiError::forbidden(
            "a deployment token may only read deployments of its own environment",
        ));
    }
    Ok((p, actor))
}

/// Authenticates any caller, or answers 401 and records the refusal (without the token).
fn who_any(state: &ApiState, parts: &http::request::Parts) -> Result<(Principal, Actor), ApiError> {
    let rid = &parts
        .extensions
        .get::<RequestId>()
        .cloned()
        .unwrap_or_else(|| RequestId(new_request_id(), None));
    let authenticated = match &state.client_certs {
        None => auth::authenticate(&parts.headers, &state.admins, &state.reconciler),
        Some(policy) => {
            let cert = parts.extensions.get::<ConnCert>().and_then(|c| c.0.clone());
            let internal = parts.extensions.get::<Internal>().is_some();
            auth::with_client_cert(
                &parts.headers,
                &state.admins,
                &state.reconciler,
                policy,
                cert.as_deref(),
                internal,
            )
        }
    };
    match authenticated {
        Ok(p) => {
            let actor = Actor {
                name: p.actor(),
                request_id: Some(rid.0.clone()),
                tenant_key: match &p {
                    Principal::Tenant { tenant, .. } => Some(tenant.clone()),
                    _ => None,
                },
            };
            Ok((p, actor))
        }
        Err(refusal) => {
            if refusal != auth::Refusal::Missing {
                tracing::info!(peer = ?rid.1, reason = %refusal.message(), "authentication refused");
                // Anyone can send a bad token: the log gets one event per address per minute,
                // with how many there were, never one per request.
                if let Some(count) = state.refusals.refused(rid.1) {
                    let mut ev = Event::new("anonymous", "auth.refused");
                    ev.request_id = Some(rid.0.clone());
                    ev.detail = Some(format!(
                        "{} (from {})",
                        refusal.message(),
                        rid.1
                            .map_or("an unknown address".to_owned(), |a| a.to_string())
                    ));
                    ev.count = Some(count);
                    state.reconciler.events().record(ev);
                }
            }
            Err(ApiError::new(StatusCode::UNAUTHORIZED, refusal.message()))
        }
    }
}

/// The app must exist (404) and belong to the caller's tenant (403).
fn app_in_scope(state: &ApiState, p: &Principal, app: &str) -> Result<(), ApiError> {
    let tenant = state
        .reconciler
        .tenant_of(app)
        .ok_or_else(|| ApiError::new(StatusCode::NOT_FOUND, format!("app {app:?} not found")))?;
    if p.may_act_for(&tenant) {
        Ok(())
    } else {
        Err(ApiError::forbidden(&format!(
            "app {app:?} belongs to another tenant"
        )))
    }
}

/// Reads a JSON body with the size limit: oversized or malformed bodies (duplicate keys
/// included) are 422s naming `body`.
async fn json_body(state: &ApiState, body: Body) -> Result<Value, ApiError> {
    json_body_or(state, body, None).await
}

/// [`json_body`], with `empty` standing for a body that is not there.
async fn json_body_or(
    state: &ApiState,
    body: Body,
    empty: Option<Value>,
) -> Result<Value, ApiError> {
    let limit = state.reconciler.settings().boundary.limits.body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::invalid(
            "body",
            &format!("is larger than {limit} bytes (limits.body_bytes)"),
        )
    })?;
    if bytes.is_empty() {
        return empty.ok_or_else(|| ApiError::invalid("body", "is empty; send a JSON object"));
    }
    body::strict_json(&bytes).map_err(|reason| ApiError::invalid("body", &reason))
}

/// A query string that does not parse is a 422 naming `query`, like every other bad input.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, ApiError> {
    q.map(|Query(v)| v)
        .map_err(|e| ApiError::invalid("query", &e.body_text()))
}

fn ok(status: StatusCode, v: Value) -> ApiResult {
    Ok((status, Json(v)).into_response())
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<ApiState>) -> Response {
    if state.ready.load(Ordering::Acquire) {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "starting\n").into_response()
    }
}

async fn metrics_text(State(state): State<ApiState>) -> Response {
    let text = metrics::render(
        &state.http,
        &state.reconciler,
        state.refusals.total.load(Ordering::Relaxed),
    );
    (
        [(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        text,
    )
        .into_response()
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "no such route")
}

#[cfg(test)]
mod tests {
    use super::*;
    use tower::ServiceExt;

    /// A router over a reconciler on empty local repos (nothing is loaded or provisioned).
    fn router_for(dir: &std::path::Path, ready: bool, webhook: Option<&str>) -> Router {
        use crate::git::{GitEngine, Identity, Remote};
        use crate::reconcile::{Access, FluxUrl, Settings};
        let state_path = dir.join("state.git");
        git2::Repository::init_bare(&state_path).unwrap();
        let settings = Settings {
            cluster: crate::model::Cluster {
                name: "t".into(),
                recipients: crate::keys::chain::ChainRecipients {
                    cluster: crate::keys::AgeKey::generate().recipient(),
                    break_glass: None,
                },
                flux_namespace: "flux-system".into(),
                flux_source: "flux-system".into(),
                decryption_secret: "sops-age".into(),
            },
            templates: Arc::new(crate::render::Templates::load(None).unwrap()),
            owner: "platform".into(),
            branch: "main".into(),
            flux_repo: crate::host::RepoRef::parse("platform/flux").unwrap(),
            flux_url: FluxUrl::Template("https://git.example.invalid/{owner}/{name}.git".into()),
            access: Access::Local,
            state_remote: Arc::new(Remote::local(&state_path).unwrap()),
            state_repo: None,
            author: Identity::new("sealwright", "sealwright@localhost").unwrap(),
            max_backoff: std::time::Duration::from_secs(60),
            credentials: crate::tokens::CredentialSettings::default(),
            clock: Arc::new(crate::clock::SystemClock),
            boundary: crate::boundary::Boundary::default(),
            policy: crate::recipe::Policy::default(),
            entropy: crate::random::Entropy::seeded(19),
        };
        let reconciler = Reconciler::new(
            settings,
            GitEngine::new(
                dir.join("cache"),
                Identity::new("s", "s@localhost").unwrap(),
            ),
            Arc::new(crate::host::LocalHost::new(dir.join("repos"))),
            Arc::new(crate::keys::FileKeyStore::new(dir.join("keys"))),
            Arc::new(crate::audit::EventLog::in_memory()),
        );
        router(ApiState {
            reconciler,
            admins: Arc::new(AdminTokens::new(&[secrecy::SecretString::from(
                "admin-token".to_owned(),
            )])),
            ready: Arc::new(AtomicBool::new(ready)),
            http: Arc::new(HttpMetrics::default()),
            webhook_secret: webhook.map(|w| Arc::new(secrecy::SecretString::from(w.to_owned()))),
            refusals: Default::default(),
            mirror: None,
            client_certs: None,
            cors_origins: Arc::new(vec!["https://dash.example.com".into()]),
        })
    }

    async fn status_of(app: &Router, method: &str, uri: &str, headers: &[(&str, &str)]) -> u16 {
        let mut req = Request::builder().method(method).uri(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from("{}")).unwrap())
            .await
            .unwrap();
        resp.status().as_u16()
    }

    async fn send(app: &Router, method: &str, uri: &str, auth: Option<&str>, body: &str) -> u16 {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(token) = auth {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        let resp = app
            .clone()
            .oneshot(req.body(Body::from(body.to_owned())).unwrap())
            .await
            .unwrap();
        resp.status().as_u16()
    }

    #[tokio::test]
    async fn the_caller_is_known_before_the_body_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let app = router_for(dir.path(), true, None);
        let bad = "{\"name\": \"a\", \"name\": \"b\"}"; // a repeated key
                                                        // No token, a wrong token, then a good one: 401, 401, and only then the body's 422.
        assert_eq!(send(&app, "POST", "/v1/apps", None, bad).await, 401);
        assert_eq!(send(&app, "POST", "/v1/apps", Some("nope"), bad).await, 401);
        assert_eq!(
            send(&app, "POST", "/v1/apps", Some("admin-token"), bad).await,
            422
        );
        assert_eq!(
            send(&app, "POST", "/v1/apps", Some("admin-token"), "").await,
            422
        );
        assert_eq!(
            send(&app, "PUT", "/v1/apps/shop/secrets/db", None, "not json").await,
            401
        );
    }

    #[tokio::test]
    async fn cors_answers_preflights_from_listed_origins_only() {
        let dir = tempfile::tempdir().unwrap();
        let app = router_for(dir.path(), true, None);
        let preflight = |origin: &'static str| {
            Request::builder()
                .method("OPTIONS")
                .uri("/v1/apps")
                .header("origin", origin)
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "authorization, content-type",
                )
                .body(Body::empty())
                .unwrap()
        };
        let ok = app
            .clone()
            .oneshot(preflight("https://dash.example.com"))
            .await
            .unwrap();
        assert_eq!(ok.status(), 204);
        let h = ok.headers();
        assert_eq!(h["access-control-allow-origin"], "https://dash.example.com");
        assert!(h["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("authorization"));
        assert!(
            h.get("access-control-allow-credentials").is_none(),
            "bearer tokens, never cookies"
        );
        let refused = app
            .clone()
            .oneshot(preflight("https://evil.example"))
            .await
            .unwrap();
        assert_eq!(refused.status(), 403);
        assert!(refused
            .headers()
            .get("access-control-allow-origin")
            .is_none());
        // A real request from a listed origin is answered with the header; others without.
        for (origin, allowed) in [
            ("https://dash.example.com", true),
            ("https://evil.example", false),
        ] {
            let resp = app
                .clone()
                .oneshot(
                    Request::builder()
                        .uri("/v1/apps")
                        .header("origin", origin)
                        .header("authorization", "Bearer admin-token")
                        .body(Body::empty())
                        .unwrap(),
                )
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            assert_eq!(
                resp.headers().get("access-control-allow-origin").is_some(),
                allowed,
                "{origin}"
            );
        }
    }

    #[tokio::test]
    async fn readyz_is_503_until_start_up_is_done_and_healthz_is_always_200() {
        let dir = tempfile::tempdir().unwrap();
        let starting = router_for(dir.path(), false, None);
        assert_eq!(status_of(&starting, "GET", "/readyz", &[]).await, 503);
        assert_eq!(
            status_of(
                &starting,
                "GET",
                "/v1/apps",
                &[("authorization", "Bearer admin-token")]
            )
            .await,
            503,
            "the API answers nothing before start-up is done"
        );
        assert_eq!(status_of(&starting, "GET", "/healthz", &[]).await, 200);
        let dir = tempfile::tempdir().unwrap();
        let ready = router_for(dir.path(), true, None);
        assert_eq!(status_of(&ready, "GET", "/readyz", &[]).await, 200);
    }

    #[tokio::test]
    async fn webhooks_need_a_configured_secret_and_a_valid_signature() {
        let dir = tempfile::tempdir().unwrap();
        let off = router_for(dir.path(), true, None);
        let sig = [
            ("x-github-event", "ping"),
            ("x-hub-signature-256", "sha256=00"),
        ];
        assert_eq!(
            status_of(&off, "POST", "/v1/webhooks/github", &sig).await,
            403
        );
        let dir = tempfile::tempdir().unwrap();
        let on = router_for(dir.path(), true, Some("s3cret"));
        assert_eq!(
            status_of(&on, "POST", "/v1/webhooks/github", &sig).await,
            401
        );
        assert_eq!(
            status_of(
                &on,
                "POST",
                "/v1/webhooks/github",
                &[("x-github-event", "ping")]
            )
            .await,
            401
        );
        // HMAC-SHA256("s3cret", "{}")
        let good = {
            use hmac::{Hmac, Mac};
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(b"s3cret").unwrap();
            mac.update(b"{}");
            format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
        };
        let headers = [
            ("x-github-event", "ping"),
            ("x-hub-signature-256", good.as_str()),
        ];
        assert_eq!(
            status_of(&on, "POST", "/v1/webhooks/github", &headers).await,
            200
        );
        // A bearer token is no substitute for the signature.
        let bearer = [
            ("x-github-event", "ping"),
            ("authorization", "Bearer admin-token"),
        ];
        assert_eq!(
            status_of(&on, "POST", "/v1/webhooks/github", &bearer).await,
            401
        );
    }
}
