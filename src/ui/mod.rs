//! The web dashboard at `/ui/`: server-rendered pages over the same API everyone else calls.
//!
//! Each page calls the API in-process with the signed-in session's token ([`Ui::api`]), so a
//! tenant sees and changes exactly what its key may through `/v1/`, by construction, and an
//! API error comes back with the field it names, to be shown next to that field. The pages work
//! without JavaScript; one small script of our own (`/ui/static/live.js`, no inline script,
//! nothing fetched from elsewhere) refreshes the secrets' committed dots while a page is open.
//!
//! Secret writes from a form are checked at once (a bad field is shown on the form) and then
//! committed in the background: the secrets page shows the row pending until its commit (or
//! pull request) is there. Values are write-only: no page but the audited reveal shows one, and
//! a form that is shown again after an error never carries the values back.

mod pages;
pub mod session;
mod templates;
mod writes;

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{FromRequestParts, Request};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use secrecy::ExposeSecret;
use serde_json::{json, Value};

use crate::api::{ApiState, Internal, RequestId};
use crate::render::TemplateError;
pub use templates::Pages;

/// The Content-Security-Policy of every dashboard response: our own script and style only, no
/// inline script, no framing, forms post only to us.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

const STYLE: &str = include_str!("../../static/ui/app.css");
const SCRIPT: &str = include_str!("../../static/ui/live.js");

/// What the dashboard's handlers share.
#[derive(Clone)]
pub struct Ui {
    inner: Arc<Inner>,
}

struct Inner {
    state: ApiState,
    /// The API's router, which pages call in-process.
    api: Router,
    pages: Pages,
    sessions: session::Sessions,
    writes: writes::Writes,
}

impl Ui {
    /// The dashboard over `api` (the router [`crate::api::router`] made from `state`), with
    /// its pages from `templates_dir/ui` where given.
    pub fn new(
        state: ApiState,
        api: Router,
        templates_dir: Option<&std::path::Path>,
    ) -> Result<Ui, TemplateError> {
        let dir = templates_dir.map(|d| d.join("ui"));
        Ok(Ui {
            inner: Arc::new(Inner {
                state,
                api,
                pages: Pages::load(dir.as_deref())?,
                sessions: Default::default(),
                writes: Default::default(),
            }),
        })
    }

    /// `/ui/...`, with request ids, the API's metrics and the security headers.
    pub fn router(self) -> Router {
        let api_state = self.inner.state.clone();
        Router::new()
            .route("/ui", get(|| async { Redirect::to("/ui/") }))
            .route("/ui/", get(|| async { Redirect::to("/ui/apps") }))
            .route(
                "/ui/static/app.css",
                get(|| async { asset("text/css", STYLE) }),
            )
            .route(
                "/ui/static/live.js",
                get(|| async { asset("text/javascript", SCRIPT) }),
            )
            .route("/ui/login", get(pages::login_form).post(pages::login))
            .route("/ui/logout", post(pages::logout))
            .route("/ui/apps", get(pages::apps))
            .route("/ui/apps/{app}", get(pages::app))
            .route("/ui/apps/{app}/rows", get(pages::rows))
            .route(
                "/ui/apps/{app}/secrets/new",
                get(pages::new_secret).post(pages::create_secret),
            )
            .route(
                "/ui/apps/{app}/secrets/{name}/edit",
                get(pages::edit_secret).post(pages::update_secret),
            )
            .route(
                "/ui/apps/{app}/secrets/{name}/delete",
                get(pages::confirm_delete).post(pages::delete_secret),
            )
            .route("/ui/apps/{app}/secrets/{name}/reveal", post(pages::reveal))
            .route("/ui/apps/{app}/external", get(pages::external))
            .route("/ui/deployments", get(pages::deployments))
            .route("/ui/deployments/{id}/revoke", post(pages::revoke))
            .route("/ui/events", get(pages::events))
            .route("/ui/tenants", get(pages::tenants))
            .route("/ui/tenants/{tenant}/api-keys", post(pages::create_key))
            .route(
                "/ui/tenants/{tenant}/api-keys/{id}/delete",
                post(pages::delete_key),
            )
            .layer(middleware::from_fn(security_headers))
            .layer(middleware::from_fn_with_state(
                api_state,
                crate::api::request_context,
            ))
            .with_state(self)
    }

    fn pages(&self) -> &Pages {
        &self.inner.pages
    }

    /// Calls the API as the session: the token it signed in with, the page's request id (so
    /// the API's log lines and events carry it) and the browser's address.
    async fn api(
        &self,
        who: &Signed,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, ApiFailure> {
        let mut req = Request::builder()
            .method(method)
            .uri(path)
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", who.session.token.expose_secret()),
            )
            .header("x-request-id", &who.rid.0);
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let mut req = req
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        req.extensions_mut().insert(Internal);
        req.extensions_mut().insert(who.rid.clone());
        use tower::ServiceExt;
        let resp = self
            .inner
            .api
            .clone()
            .oneshot(req)
            .await
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        let status = resp.status();
        let limit = 16 * 1024 * 1024;
        let bytes = axum::body::to_bytes(resp.into_body(), limit)
            .await
            .map_err(|e| ApiFailure::internal(e.to_string()))?;
        let v: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        if status.is_success() {
            Ok(v)
        } else {
            Err(ApiFailure {
                status,
                message: v["error"]
                    .as_str()
                    .map(str::to_owned)
                    .unwrap_or_else(|| status.to_string()),
                field: v["field"].as_str().map(str::to_owned),
            })
        }
    }

    /// A page, or the error page if the template fails.
    fn page(&self, status: StatusCode, name: &str, who: Option<&Signed>, ctx: Value) -> Response {
        let mut ctx = ctx;
        if let Some(w) = who {
            ctx["who"] = json!(w.session.who());
            ctx["admin"] = json!(w.session.principal.is_admin());
            ctx["csrf"] = json!(w.session.csrf);
        }
        match self.pages().render(name, &ctx) {
            Ok(html) => html_response(status, html),
            Err(e) => {
                tracing::error!(page = name, error = %e, "a dashboard page did not render");
                html_response(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    format!("<!doctype html><title>error</title><p>the page {name} did not render; see the server log</p>"),
                )
            }
        }
    }

    /// The error page for an API failure (403 for another tenant's app, 404, ...).
    fn failure(&self, who: &Signed, f: &ApiFailure) -> Response {
        self.page(
            f.status,
            "error.html.j2",
            Some(who),
            json!({"title": f.status.canonical_reason().unwrap_or("error"), "status": f.status.as_u16(), "message": f.message}),
        )
    }
}

fn html_response(status: StatusCode, html: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        html,
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        body,
    )
        .into_response()
}

/// An API answer that was not a success, as a page shows it.
#[derive(Debug, Clone)]
pub struct ApiFailure {
    pub status: StatusCode,
    pub message: String,
    pub field: Option<String>,
}

impl ApiFailure {
    fn internal(message: String) -> ApiFailure {
        ApiFailure {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message,
            field: None,
        }
    }
}

/// The headers every dashboard response carries. Pages are never cached: they show secret
/// metadata (static assets set their own).
async fn security_headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    resp
}

/// A request from a signed-in browser: its session, the page's request id, and whether it came
/// over TLS. A request without a live session is sent to sign in (a page) or refused (a form
/// post: it may be a forged one); a form post from another origin is refused outright.
pub struct Signed {
    pub id: String,
    pub session: session::Session,
    pub rid: RequestId,
    pub tls: bool,
}

fn over_tls(parts: &axum::http::request::Parts) -> bool {
    parts
        .extensions
        .get::<axum::extract::ConnectInfo<crate::tls::Peer>>()
        .is_some_and(|c| c.0.tls)
}

/// A state-changing request that a browser says came from another origin. Browsers mark every
/// request with `Sec-Fetch-Site`; where one does not, an `Origin` naming another host counts.
/// (`Referrer-Policy: no-referrer` makes browsers send `Origin: null` even for our own forms, so
/// `null` proves nothing either way.) The CSRF token is checked besides, and SameSite=Strict
/// keeps the cookie off cross-site posts: this is one lock of three.
fn cross_site(parts: &axum::http::request::Parts) -> bool {
    if parts.method == Method::GET || parts.method == Method::HEAD {
        return false;
    }
    let header = |name: &str| parts.headers.get(name).and_then(|h| h.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return !matches!(site, "same-origin" | "none");
    }
    let (Some(host), Some(origin)) = (header("host"), header("origin")) else {
        return false;
    };
    if origin == "null" {
        return false;
    }
    url::Url::parse(origin)
        .ok()
        .and_then(|u| {
            let h = u.host_str()?.to_owned();
            Some(match u.port() {
                Some(p) => format!("{h}:{p}"),
                None => h,
            })
        })
        .is_none_or(|authority| !authority.eq_ignore_ascii_case(host))
}

impl FromRequestParts<Ui> for Signed {
    type Rejection = Response;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ui: &Ui,
    ) -> Result<Self, Response> {
        let rid = parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .unwrap_or_else(|| RequestId(String::new(), None));
        if cross_site(parts) {
            return Err(refused(ui, "this form was not sent from a sealwright page"));
        }
        let found = session::cookie_id(&parts.headers)
            .and_then(|id| ui.inner.sessions.get(&id).map(|s| (id, s)));
        match found {
            Some((id, session)) => Ok(Signed {
                id,
                session,
                rid,
                tls: over_tls(parts),
            }),
            None if parts.method == Method::GET => {
                let next = parts
                    .uri
                    .path_and_query()
                    .map(|p| p.as_str())
                    .unwrap_or("/ui/apps");
                let to = format!(
                    "/ui/login?next={}",
                    url::form_urlencoded::byte_serialize(next.as_bytes()).collect::<String>()
                );
                Err(Redirect::to(&to).into_response())
            }
            None => Err(refused(
                ui,
                "no session: sign in again (a form from another site is never accepted)",
            )),
        }
    }
}

fn refused(ui: &Ui, message: &str) -> Response {
    ui.page(
        StatusCode::FORBIDDEN,
        "error.html.j2",
        None,
        json!({"title": "Forbidden", "status": 403, "message": message}),
    )
}

/// A form body: its fields in order (a field may repeat: key/value rows).
pub struct Form(pub Vec<(String, String)>);

impl Form {
    pub fn parse(bytes: &[u8]) -> Form {
        Form(
            url::form_urlencoded::parse(bytes)
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads a form post with the API's body limit, and checks its CSRF token against the session.
async fn form(ui: &Ui, who: &Signed, body: Body) -> Result<Form, Response> {
    let limit = ui
        .inner
        .state
        .reconciler
        .settings()
        .boundary
        .limits
        .body_bytes;
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ui.page(
            StatusCode::PAYLOAD_TOO_LARGE,
            "error.html.j2",
            Some(who),
            json!({"title": "Too large", "status": 413, "message": format!("the form is larger than {limit} bytes (limits.body_bytes)")}),
        )
    })?;
    let f = Form::parse(&bytes);
    if !f.get("csrf").is_some_and(|t| who.session.csrf_ok(t)) {
        return Err(refused(
            ui,
            "the form's CSRF token is missing or not this session's; reload the page and send it again",
        ));
    }
    Ok(f)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(method: &str, headers: &[(&str, &str)]) -> axum::http::request::Parts {
        let mut b = Request::builder().method(method).uri("/ui/apps");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn a_post_from_another_origin_is_cross_site() {
        assert!(!cross_site(&parts(
            "GET",
            &[("host", "a:1"), ("origin", "http://evil")]
        )));
        assert!(!cross_site(&parts(
            "POST",
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://127.0.0.1:8080")
            ]
        )));
        assert!(cross_site(&parts(
            "POST",
            &[
                ("host", "127.0.0.1:8080"),
                ("origin", "http://evil.example:8080")
            ]
        )));
        assert!(
            !cross_site(&parts(
                "POST",
                &[("host", "127.0.0.1:8080"), ("origin", "null")]
            )),
            "no-referrer: the CSRF token decides"
        );
        assert!(
            !cross_site(&parts("POST", &[("host", "127.0.0.1:8080")])),
            "no Origin: the CSRF token decides"
        );
        for site in ["cross-site", "same-site"] {
            assert!(cross_site(&parts(
                "POST",
                &[
                    ("host", "127.0.0.1:8080"),
                    ("origin", "null"),
                    ("sec-fetch-site", site)
                ]
            )));
        }
        assert!(!cross_site(&parts(
            "POST",
            &[
                ("host", "127.0.0.1:8080"),
                ("sec-fetch-site", "same-origin")
            ]
        )));
    }

    #[test]
    fn forms_keep_repeated_fields_in_order() {
        let f = Form::parse(b"key=a&value=1&key=b&value=x%3Dy&csrf=t");
        assert_eq!(f.all("key").collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(f.all("value").collect::<Vec<_>>(), ["1", "x=y"]);
        assert_eq!(f.get("csrf"), Some("t"));
    }
}
