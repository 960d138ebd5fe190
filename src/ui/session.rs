//! Dashboard sessions: signed in with an admin token or a tenant API key, kept on the server
//! (the browser holds a random id in an HttpOnly, SameSite=Strict cookie), each with its own
//! CSRF token and an expiry. Signing out removes the session here, so the cookie is worthless
//! afterwards. The token is held to call the API on the session's behalf and is never shown.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::api::auth::Principal;

/// The cookie's name.
pub const COOKIE: &str = "sealwright_session";

/// How long a session lasts from sign-in.
pub const LIFETIME: Duration = Duration::from_secs(8 * 3600);

/// The most sessions kept at once: beyond it, the oldest go first.
const MAX_SESSIONS: usize = 10_000;

#[derive(Clone)]
pub struct Session {
    pub principal: Principal,
    /// What the session signed in with; the API is called with it.
    pub token: std::sync::Arc<SecretString>,
    pub csrf: String,
    pub expires: Instant,
}

impl Session {
    /// Whether a form's CSRF token is this session's (compared in constant time).
    pub fn csrf_ok(&self, presented: &str) -> bool {
        presented.len() == self.csrf.len()
            && bool::from(presented.as_bytes().ct_eq(self.csrf.as_bytes()))
    }

    /// Who is signed in, in words for the page header.
    pub fn who(&self) -> String {
        match &self.principal {
            Principal::Admin => "admin".into(),
            Principal::Tenant { tenant, key_id } => format!("tenant {tenant} (key {key_id})"),
            Principal::Deployment(d) => format!("deployment {}", d.id),
        }
    }
}

/// The server's sessions, by the SHA-256 of their id (a memory dump shows no usable cookie).
#[derive(Default)]
pub struct Sessions {
    by_digest: Mutex<HashMap<[u8; 32], Session>>,
}

fn random_hex(n: usize) -> String {
    use rand::RngCore;
    let mut b = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(id: &str) -> [u8; 32] {
    Sha256::digest(id.as_bytes()).into()
}

impl Sessions {
    /// A new session; the id to put in the cookie.
    pub fn create(&self, principal: Principal, token: SecretString) -> (String, Session) {
        let id = random_hex(32);
        let s = Session {
            principal,
            token: std::sync::Arc::new(token),
            csrf: random_hex(24),
            expires: Instant::now() + LIFETIME,
        };
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        map.retain(|_, s| s.expires > now);
        if map.len() >= MAX_SESSIONS {
            if let Some(oldest) = map.iter().min_by_key(|(_, s)| s.expires).map(|(k, _)| *k) {
                map.remove(&oldest);
            }
        }
        map.insert(digest(&id), s.clone());
        (id, s)
    }

    /// The live session with this id.
    pub fn get(&self, id: &str) -> Option<Session> {
        let mut map = self.by_digest.lock().unwrap_or_else(|p| p.into_inner());
        let d = digest(id);
        match map.get(&d) {
            Some(s) if s.expires > Instant::now() => Some(s.clone()),
            Some(_) => {
                map.remove(&d);
                None
            }
            None => None,
        }
    }

    /// Ends a session: its cookie opens nothing afterwards.
    pub fn end(&self, id: &str) {
        self.by_digest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&digest(id));
    }
}

/// The session id in a request's `Cookie` header.
pub fn cookie_id(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == COOKIE)
        .map(|(_, v)| v.to_owned())
        .filter(|v| v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// The `Set-Cookie` value for a new session (`Secure` when served over TLS).
pub fn set_cookie(id: &str, secure: bool) -> String {
    format!(
        "{COOKIE}={id}; Path=/ui; HttpOnly; SameSite=Strict; Max-Age={}{}",
        LIFETIME.as_secs(),
        if secure { "; Secure" } else { "" }
    )
}

/// The `Set-Cookie` value that removes it.
pub fn clear_cookie(secure: bool) -> String {
    format!(
        "{COOKIE}=; Path=/ui; HttpOnly; SameSite=Strict; Max-Age=0{}",
        if secure { "; Secure" } else { "" }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_session_ends_on_sign_out_and_checks_its_csrf_token() {
        let s = Sessions::default();
        let (id, sess) = s.create(Principal::Admin, SecretString::from("t".to_owned()));
        assert!(s.get(&id).is_some());
        assert!(sess.csrf_ok(&sess.csrf.clone()));
        assert!(!sess.csrf_ok("nope"));
        assert!(!sess.csrf_ok(""));
        s.end(&id);
        assert!(s.get(&id).is_none());
    }

    #[test]
    fn the_cookie_is_http_only_strict_and_secure_under_tls() {
        let c = set_cookie(&"a".repeat(64), true);
        for part in [
            "HttpOnly",
            "SameSite=Strict",
            "Secure",
            "Path=/ui",
            "Max-Age=28800",
        ] {
            assert!(c.contains(part), "{c}");
        }
        assert!(!set_cookie("x", false).contains("Secure"));
        let mut h = http::HeaderMap::new();
        h.insert(
            http::header::COOKIE,
            format!("other=1; {COOKIE}={}", "b".repeat(64))
                .parse()
                .unwrap(),
        );
        assert_eq!(cookie_id(&h), Some("b".repeat(64)));
        h.insert(
            http::header::COOKIE,
            format!("{COOKIE}=short").parse().unwrap(),
        );
        assert_eq!(cookie_id(&h), None);
    }
}
