//! `GET /openapi.json`: the API's OpenAPI document, kept by hand in `openapi.json` beside this
//! file and served as it is. A test checks that it lists every route the router has.

use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

const OPENAPI: &str = include_str!("openapi.json");

pub(super) async fn document() -> Response {
    ([(CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn the_openapi_document_lists_every_route() {
        let doc: Value = serde_json::from_str(OPENAPI).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, methods) in [
            ("/healthz", &["get"][..]),
            ("/readyz", &["get"]),
            ("/metrics", &["get"]),
            ("/openapi.json", &["get"]),
            ("/v1/apps", &["get", "post"]),
            ("/v1/apps/{app}", &["get", "delete"]),
            ("/v1/apps/{app}/secrets", &["get"]),
            (
                "/v1/apps/{app}/secrets/{name}",
                &["get", "put", "patch", "delete"],
            ),
            ("/v1/apps/{app}/secrets/{name}/rotate", &["post"]),
            ("/v1/presets", &["get"]),
            ("/v1/apps/{app}/drift/resolve", &["post"]),
            ("/v1/events", &["get"]),
            ("/v1/tenants/{tenant}/api-keys", &["get", "post"]),
            ("/v1/tenants/{tenant}/api-keys/{id}", &["delete"]),
            ("/v1/webhooks/github", &["post"]),
            ("/v1/deployments", &["get"]),
            ("/v1/deployments/{id}", &["get", "put", "delete"]),
            ("/v1/deployments/{id}/revoke", &["post"]),
            ("/v1/signing-keys/rotate", &["post"]),
            ("/.well-known/jwks.json", &["get"]),
            ("/v1/apps/{app}/external-secrets", &["get"]),
            (
                "/v1/apps/{app}/external-secrets/{provider}",
                &["get", "put", "delete"],
            ),
            ("/v1/apps/{app}/deploys", &["post"]),
            ("/v1/tenants/{tenant}/external-secrets", &["get"]),
            (
                "/v1/tenants/{tenant}/external-secrets/{provider}",
                &["get", "put", "delete"],
            ),
        ] {
            let p = paths.get(path).unwrap_or_else(|| panic!("{path} missing"));
            for m in methods {
                assert!(p.get(*m).is_some(), "{m} {path} missing");
            }
        }
        assert_eq!(paths.len(), 25, "a documented route that the router lacks");
    }
}
