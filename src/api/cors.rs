//! Cross-origin calls from a dashboard hosted elsewhere (`cors_origins`): a preflight from a
//! listed origin is answered, and its requests get `Access-Control-Allow-Origin`. Nothing else
//! is allowed: other origins get no CORS headers (a preflight from one is a 403), credentials
//! (cookies) are never allowed cross-origin, so the caller must send its bearer token.

use axum::extract::{Request, State};
use axum::http::{header, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::ApiState;

const METHODS: &str = "GET, POST, PUT, PATCH, DELETE";
const HEADERS: &str = "authorization, content-type, x-request-id";

pub(super) async fn layer(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let origin = req.headers().get(header::ORIGIN).cloned();
    let allowed = origin.as_ref().filter(|o| {
        o.to_str()
            .is_ok_and(|o| state.cors_origins.iter().any(|a| a == o))
    });
    let preflight = req.method() == Method::OPTIONS
        && req
            .headers()
            .contains_key(header::ACCESS_CONTROL_REQUEST_METHOD);
    if preflight {
        let Some(origin) = allowed.cloned() else {
            return (
                StatusCode::FORBIDDEN,
                [(header::VARY, HeaderValue::from_static("origin"))],
                "this origin may not call the API (cors_origins)\n",
            )
                .into_response();
        };
        return (
            StatusCode::NO_CONTENT,
            [
                (header::ACCESS_CONTROL_ALLOW_ORIGIN, origin),
                (
                    header::ACCESS_CONTROL_ALLOW_METHODS,
                    HeaderValue::from_static(METHODS),
                ),
                (
                    header::ACCESS_CONTROL_ALLOW_HEADERS,
                    HeaderValue::from_static(HEADERS),
                ),
                (
                    header::ACCESS_CONTROL_MAX_AGE,
                    HeaderValue::from_static("600"),
                ),
                (header::VARY, HeaderValue::from_static("origin")),
            ],
        )
            .into_response();
    }
    let allowed = allowed.cloned();
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.append(header::VARY, HeaderValue::from_static("origin"));
    if let Some(origin) = allowed {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
        h.insert(
            header::ACCESS_CONTROL_EXPOSE_HEADERS,
            HeaderValue::from_static("x-request-id"),
        );
    }
    resp
}
