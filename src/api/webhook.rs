//! `POST /v1/webhooks/github`: GitHub tells sealwright that a pull request changed, so that a merge
//! turns the writes it carries `committed` without waiting for the poll.
//!
//! A delivery is accepted only with a valid `X-Hub-Signature-256` (HMAC-SHA256 of the raw body
//! under the shared webhook secret, compared in constant time); bearer tokens play no part. The
//! payload is used only to find the app: what happened is asked of the GitHub API by the app's
//! own round, so a forged or replayed delivery with a valid signature can at most cause an early
//! poll.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};
use sha2::Sha256;

use super::{ok, ApiError, ApiResult, ApiState, RequestId, MAX_BODY};
use crate::reconcile::Actor;

/// Whether `signature` (`sha256=<hex>`) is the HMAC-SHA256 of `body` under `secret`.
pub fn signature_ok(secret: &SecretString, body: &[u8], signature: &str) -> bool {
    let Some(hex_sig) = signature.strip_prefix("sha256=") else {
        return false;
    };
    let Ok(expected) = hex::decode(hex_sig) else {
        return false;
    };
    let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.expose_secret().as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&expected).is_ok()
}

/// A refused delivery is logged, not recorded as an audit event: anyone who can reach the
/// endpoint could otherwise grow the event log without bound.
fn refused(rid: &RequestId, status: StatusCode, why: &str) -> ApiError {
    tracing::warn!(request_id = %rid.0, reason = why, "webhook delivery refused");
    ApiError::new(status, why)
}

pub(super) async fn github(
    State(state): State<ApiState>,
    axum::Extension(rid): axum::Extension<RequestId>,
    headers: HeaderMap,
    body: Body,
) -> ApiResult {
    let Some(secret) = state.webhook_secret.as_deref() else {
        return Err(refused(
            &rid,
            StatusCode::FORBIDDEN,
            "webhooks are not accepted: no webhook secret is configured (SEALWRIGHT_WEBHOOK_SECRET)",
        ));
    };
    let bytes = axum::body::to_bytes(body, MAX_BODY)
        .await
        .map_err(|_| ApiError::invalid("body", &format!("is larger than {MAX_BODY} bytes")))?;
    let signature = headers
        .get("x-hub-signature-256")
        .and_then(|v| v.to_str().ok());
    match signature {
        None => {
            return Err(refused(
                &rid,
                StatusCode::UNAUTHORIZED,
                "missing X-Hub-Signature-256",
            ))
        }
        Some(sig) if !signature_ok(secret, &bytes, sig) => {
            return Err(refused(
                &rid,
                StatusCode::UNAUTHORIZED,
                "X-Hub-Signature-256 does not match the body under the webhook secret",
            ))
        }
        Some(_) => {}
    }
    let event = headers
        .get("x-github-event")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let payload: Value = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::invalid("body", &format!("is not valid JSON ({e})")))?;
    match event.as_str() {
        "ping" => ok(StatusCode::OK, json!({"event": "ping", "ok": true})),
        "pull_request" => {
            let action = payload["action"].as_str().unwrap_or_default();
            let repo = payload["repository"]["full_name"]
                .as_str()
                .ok_or_else(|| ApiError::invalid("repository.full_name", "is missing"))?;
            // Only a close (merged or not) settles anything; other actions change nothing here.
            if action != "closed" {
                return ok(
                    StatusCode::ACCEPTED,
                    json!({"event": event, "action": action, "ignored": true}),
                );
            }
            let actor = Actor {
                name: "github-webhook".into(),
                request_id: Some(rid.0.clone()),
                tenant_key: None,
            };
            let app = state.reconciler.pull_request_event(&actor, repo).await?;
            ok(
                StatusCode::OK,
                json!({"event": event, "action": action, "app": app}),
            )
        }
        _ => ok(
            StatusCode::ACCEPTED,
            json!({"event": event, "ignored": true}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked_against_the_body_and_secret() {
        // The example from GitHub's "Validating webhook deliveries" documentation.
        let secret = SecretString::from("It's a Secret to Everybody".to_owned());
        let sig = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
        assert!(signature_ok(&secret, b"Hello, World!", sig));
        assert!(!signature_ok(&secret, b"Hello, World?", sig));
        assert!(!signature_ok(
            &SecretString::from("other".to_owned()),
            b"Hello, World!",
            sig
        ));
        assert!(!signature_ok(&secret, b"Hello, World!", &sig[7..]));
        assert!(!signature_ok(&secret, b"Hello, World!", "sha256=zz"));
    }
}
