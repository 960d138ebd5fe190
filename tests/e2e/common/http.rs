//! The tests' HTTP client: sealwright's own (`sealwright::cli::client::exchange`, plain HTTP/1.1,
//! one request per connection), with JSON helpers. Enough to call the API over a real socket.

use std::time::Duration;

use sealwright::cli::client::exchange;

pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "status {}: body is not JSON ({e}): {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Sends one request; `token` becomes `Authorization: Bearer …`.
pub fn request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> Response {
    try_request(addr, method, path, token, body)
        .unwrap_or_else(|e| panic!("{method} {path} at {addr}: {e}"))
}

/// Like [`request`], but a connection that fails or ends early (a killed server) is an error.
pub fn try_request(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<&[u8]>,
) -> std::io::Result<Response> {
    let bearer = token.map(|t| format!("Bearer {t}"));
    let headers: Vec<(&str, &str)> = bearer
        .as_deref()
        .map(|b| ("Authorization", b))
        .into_iter()
        .collect();
    let r = exchange(addr, method, path, &headers, body, Duration::from_secs(120))?;
    Ok(Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    })
}

pub fn get(addr: &str, path: &str, token: Option<&str>) -> Response {
    request(addr, "GET", path, token, None)
}

pub fn send(
    addr: &str,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: &serde_json::Value,
) -> Response {
    let b = serde_json::to_vec(body).unwrap();
    request(addr, method, path, token, Some(&b))
}

/// Sends one request with these extra headers (a webhook delivery, say) and a raw body.
#[allow(dead_code)]
pub fn raw(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Response {
    let headers: Vec<(&str, &str)> = headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let r = exchange(
        addr,
        method,
        path,
        &headers,
        Some(body),
        Duration::from_secs(120),
    )
    .unwrap_or_else(|e| panic!("{method} {path} at {addr}: {e}"));
    Response {
        status: r.status,
        headers: r.headers,
        body: r.body,
    }
}
