//! The HTTP edge's extractors: who is calling (authenticated before anything else of the request
//! is read) and a JSON body with the project's limits and 422 shape. A handler says in its
//! signature what it needs, and the preamble is written once.

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use serde_json::Value;

use super::auth::Principal;
use super::{json_body, who, who_any, ApiError, ApiState};
use crate::reconcile::Actor;

/// An admin or a tenant key (a deployment token is refused with 403), with the actor that the
/// reconciler records. A missing or bad token is a 401.
pub struct Caller {
    pub principal: Principal,
    pub actor: Actor,
}

/// Any authenticated caller, deployment tokens included (the deployment routes).
pub struct AnyCaller {
    pub principal: Principal,
    pub actor: Actor,
}

impl FromRequestParts<ApiState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let (principal, actor) = who(state, parts)?;
        Ok(Caller { principal, actor })
    }
}

impl FromRequestParts<ApiState> for AnyCaller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let (principal, actor) = who_any(state, parts)?;
        Ok(AnyCaller { principal, actor })
    }
}

/// A JSON object body: at most `limits.body_bytes`, strict (a repeated key is refused), and a
/// 422 naming `body` otherwise. Read last, after the caller is known.
pub struct JsonBody(pub Value);

impl FromRequest<ApiState> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &ApiState) -> Result<Self, ApiError> {
        json_body(state, req.into_body()).await.map(JsonBody)
    }
}
