//! Who is calling: bearer tokens. Admin tokens come from the configuration (and
//! `SEALWRIGHT_ADMIN_TOKEN`); tenant API keys are created by an admin, shown once, and checked
//! against their stored hash by the reconciler. Tokens are compared as SHA-256 digests in
//! constant time and never logged. Deployments call with their own JWT, in `x-platz-token` (what
//! charts built for Platz send) or as a bearer token; it is verified with the algorithm pinned by
//! its key, and a refusal says why only in general terms.

use http::HeaderMap;
use secrecy::{ExposeSecret, SecretString};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::reconcile::{DeploymentCaller, Reconciler};
use crate::tokens::jwt::TokenError;

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Principal {
    Admin,
    Tenant {
        tenant: String,
        key_id: String,
    },
    /// A deployment, by its token: it may read deployments of its own environment, nothing else.
    Deployment(DeploymentCaller),
}

impl Principal {
    /// The actor name in events and commit messages: `admin` or `tenant:<tenant>/<key id>`.
    pub fn actor(&self) -> String {
        match self {
            Principal::Admin => "admin".into(),
            Principal::Tenant { tenant, key_id } => format!("tenant:{tenant}/{key_id}"),
            Principal::Deployment(d) => format!("deployment:{}", d.id),
        }
    }

    pub fn is_admin(&self) -> bool {
        matches!(self, Principal::Admin)
    }

    /// Whether the caller may act on `tenant`'s apps.
    pub fn may_act_for(&self, tenant: &str) -> bool {
        match self {
            Principal::Admin => true,
            Principal::Tenant { tenant: t, .. } => t == tenant,
            Principal::Deployment(_) => false,
        }
    }
}

/// Why a request is not authenticated, in general terms (the body of the 401).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    Missing,
    Malformed,
    Unknown,
    /// A deployment token that did not verify, and why in general terms.
    Token(TokenError),
    /// `tls.client_auth: required`, and the connection offered no verified certificate.
    CertificateRequired,
    /// The client certificate and the token stand for different callers.
    CertificateMismatch,
}

impl Refusal {
    pub fn message(&self) -> String {
        match self {
            Refusal::Missing => {
                "authentication required: send Authorization: Bearer <token> (or a deployment token in x-platz-token)".into()
            }
            Refusal::Malformed => "the Authorization header is not a bearer token".into(),
            Refusal::Unknown => "the token is not valid".into(),
            Refusal::Token(e) => format!("the deployment token is not accepted: {e}"),
            Refusal::CertificateRequired => "a client certificate signed by tls.client_ca is required (tls.client_auth: required)".into(),
            Refusal::CertificateMismatch => "the client certificate and the token stand for different callers".into(),
        }
    }
}

/// A compact JWS has three dot-separated parts; admin tokens and API keys have none.
fn looks_like_jwt(token: &str) -> bool {
    token.bytes().filter(|b| *b == b'.').count() == 2
}

/// The configured admin tokens, kept as digests only.
pub struct AdminTokens {
    digests: Vec<[u8; 32]>,
}

impl AdminTokens {
    pub fn new(tokens: &[SecretString]) -> AdminTokens {
        AdminTokens {
            digests: tokens
                .iter()
                .map(|t| Sha256::digest(t.expose_secret().as_bytes()).into())
                .collect(),
        }
    }

    fn matches(&self, presented: &str) -> bool {
        let d: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every digest is compared, so timing says nothing about which one matched.
        self.digests
            .iter()
            .fold(false, |acc, x| acc | bool::from(x.ct_eq(&d)))
    }
}

/// Checks the request's bearer token.
pub fn authenticate(
    headers: &HeaderMap,
    admins: &AdminTokens,
    reconciler: &Reconciler,
) -> Result<Principal, Refusal> {
    if let Some(v) = headers.get("x-platz-token") {
        let token = v.to_str().map_err(|_| Refusal::Malformed)?;
        if token.is_empty() || token.chars().any(char::is_whitespace) {
            return Err(Refusal::Malformed);
        }
        return reconciler
            .verify_token(token)
            .map(Principal::Deployment)
            .map_err(Refusal::Token);
    }
    let value = headers
        .get(http::header::AUTHORIZATION)
        .ok_or(Refusal::Missing)?;
    let text = value.to_str().map_err(|_| Refusal::Malformed)?;
    let (scheme, token) = text.split_once(' ').ok_or(Refusal::Malformed)?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(Refusal::Malformed);
    }
    // Exactly the token: one with spaces around or inside it is not the token that was issued.
    if token.is_empty() || token.chars().any(char::is_whitespace) {
        return Err(Refusal::Malformed);
    }
    if admins.matches(token) {
        return Ok(Principal::Admin);
    }
    if let Some((tenant, key_id)) = reconciler.check_api_key(token) {
        return Ok(Principal::Tenant { tenant, key_id });
    }
    if looks_like_jwt(token) {
        return reconciler
            .verify_token(token)
            .map(Principal::Deployment)
            .map_err(Refusal::Token);
    }
    Err(Refusal::Unknown)
}

/// [`authenticate`] under `tls.client_ca`. A verified certificate whose subject alternative
/// name is in `tls.client_identities` authenticates on its own; with a token as well, both must
/// name the same caller (the token's key id is then the actor). A certificate that maps to
/// nobody leaves it to the token. Under `required`, a request without a certificate is refused
/// before its token is looked at, except the dashboard's in-process calls (`internal`), whose
/// session was signed in with a token.
pub fn with_client_cert(
    headers: &HeaderMap,
    admins: &AdminTokens,
    reconciler: &Reconciler,
    policy: &super::ClientCertPolicy,
    cert: Option<&crate::tls::ClientCert>,
    internal: bool,
) -> Result<Principal, Refusal> {
    use crate::tls::{CertIdentity, ClientAuth};
    if cert.is_none() && policy.auth == ClientAuth::Required && !internal {
        return Err(Refusal::CertificateRequired);
    }
    let Some((name, id)) = cert.and_then(|c| c.identity(&policy.identities)) else {
        return authenticate(headers, admins, reconciler);
    };
    let by_cert = match id {
        CertIdentity::Admin => Principal::Admin,
        CertIdentity::Tenant(t) => Principal::Tenant {
            tenant: t.clone(),
            key_id: format!("cert:{name}"),
        },
    };
    match authenticate(headers, admins, reconciler) {
        Err(Refusal::Missing) => Ok(by_cert),
        Err(e) => Err(e),
        Ok(p) => match (&by_cert, &p) {
            (Principal::Admin, Principal::Admin) => Ok(p),
            (Principal::Tenant { tenant: a, .. }, Principal::Tenant { tenant: b, .. })
                if a == b =>
            {
                Ok(p)
            }
            _ => Err(Refusal::CertificateMismatch),
        },
    }
}

/// The shortest admin token `SEALWRIGHT_ADMIN_TOKEN` may hold: 32 characters, so that a guessable
/// word is never the key to every tenant.
pub const MIN_ADMIN_TOKEN: usize = 32;

/// Refused authentications by source address. Anyone can send a bad token, so the audit log
/// must not grow by one event per request: each address gets at most one `auth.refused` event a
/// minute, carrying how many refusals it stands for. The map is pruned as it grows.
#[derive(Default)]
pub struct RefusalLog {
    windows: std::sync::Mutex<std::collections::HashMap<Option<std::net::IpAddr>, Window>>,
    /// Every refusal, for `/metrics`.
    pub total: std::sync::atomic::AtomicU64,
}

struct Window {
    last_event: std::time::Instant,
    since: u64,
}

impl RefusalLog {
    const EVERY: std::time::Duration = std::time::Duration::from_secs(60);
    const MAX_ADDRESSES: usize = 10_000;

    /// Counts a refusal from `peer`. `Some(n)` when an event is due: it stands for `n` refusals
    /// (this one and those held back since the address's last event).
    pub fn refused(&self, peer: Option<std::net::IpAddr>) -> Option<u64> {
        self.total
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let now = std::time::Instant::now();
        let mut w = self.windows.lock().unwrap_or_else(|p| p.into_inner());
        if w.len() >= Self::MAX_ADDRESSES {
            w.retain(|_, x| now.duration_since(x.last_event) < Self::EVERY);
        }
        match w.get_mut(&peer) {
            Some(x) if now.duration_since(x.last_event) < Self::EVERY => {
                x.since += 1;
                None
            }
            Some(x) => {
                let n = x.since + 1;
                x.since = 0;
                x.last_event = now;
                Some(n)
            }
            None => {
                if w.len() >= Self::MAX_ADDRESSES {
                    // Every address is fresh: count it, but add no event (a flood of sources).
                    return None;
                }
                w.insert(
                    peer,
                    Window {
                        last_event: now,
                        since: 0,
                    },
                );
                Some(1)
            }
        }
    }
}

/// A fresh admin token, for a server started without one configured.
pub fn generate_admin_token() -> SecretString {
    use rand::RngCore;
    let mut b = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut b);
    let hex: String = b.iter().map(|x| format!("{x:02x}")).collect();
    SecretString::from(format!("swa_{hex}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn admin_tokens_match_by_digest() {
        let a = AdminTokens::new(&[
            SecretString::from("one".to_owned()),
            SecretString::from("two".to_owned()),
        ]);
        assert!(a.matches("one"));
        assert!(a.matches("two"));
        assert!(!a.matches("three"));
        assert!(!a.matches(""));
        let t = generate_admin_token();
        assert!(t.expose_secret().starts_with("swa_"));
        assert_eq!(t.expose_secret().len(), 68);
    }

    #[test]
    fn principals_scope_to_their_tenant() {
        let p = Principal::Tenant {
            tenant: "acme".into(),
            key_id: "k1".into(),
        };
        assert!(p.may_act_for("acme"));
        assert!(!p.may_act_for("globex"));
        assert!(Principal::Admin.may_act_for("globex"));
        assert_eq!(p.actor(), "tenant:acme/k1");
    }
}
