//! Deployment credentials: per-deployment JWTs that sealwright mints, refreshes on a schedule and
//! delivers as encrypted commits, and verifies when a deployment calls the API. `jwt` holds the
//! token format and the keys.

pub mod deployment;
pub mod jwt;
pub mod keyring;
