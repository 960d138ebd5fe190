//! The GitHub host: GitHub's REST API (api.github.com or a GitHub Enterprise `/api/v3` base) through
//! octocrab's generic request methods, with our own small request and response types for the dozen
//! operations sealwright uses. Token auth.
//!
//! GitHub's secondary rate limits punish concurrent content-creating requests; so every POST, PATCH,
//! PUT and DELETE goes through one gate per host (serial, spaced by `min_write_interval`), and a
//! 403/429 that is a rate limit (a `retry-after` header, `x-ratelimit-remaining: 0`, or GitHub's
//! "secondary rate limit" message) is waited out and retried, a bounded number of times. File
//! contents never go through the API: they are Git commits, one push per repository per round.

use std::time::Duration;

use async_trait::async_trait;
use http::{HeaderMap, Method, StatusCode};
use octocrab::service::middleware::retry::RetryConfig;
use octocrab::Octocrab;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{
    key_material, CommitStatus, DeployKeySpec, DeployKeyState, GitHost, HostError, HostedRepo,
    NewPullRequest, PullRequest, PullRequestState, RepoRef,
};

/// How to reach GitHub.
pub struct GitHubConfig {
    /// `https://api.github.com`, or `https://HOST/api/v3` for GitHub Enterprise Server.
    pub base_url: String,
    pub token: SecretString,
    /// The login the token belongs to: repositories owned by it are created with `POST /user/repos`,
    /// all others in their organisation.
    pub user: Option<String>,
    /// The least time between two content-creating requests (GitHub asks for one second).
    pub min_write_interval: Duration,
    /// How many times a rate-limited request is retried.
    pub rate_limit_retries: u32,
    /// A rate limit that asks for a longer wait than this fails at once instead of blocking.
    pub max_rate_limit_wait: Duration,
}

impl GitHubConfig {
    pub fn new(base_url: &str, token: SecretString) -> Self {
        Self {
            base_url: base_url.to_owned(),
            token,
            user: None,
            min_write_interval: Duration::from_secs(1),
            rate_limit_retries: 3,
            max_rate_limit_wait: Duration::from_secs(300),
        }
    }
}

pub struct GitHub {
    client: Octocrab,
    user: Option<String>,
    min_write_interval: Duration,
    rate_limit_retries: u32,
    max_rate_limit_wait: Duration,
    /// Serialises content-creating requests; holds when the last one was sent.
    write_gate: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl GitHub {
    /// Builds the client. Must run inside a tokio runtime (octocrab's service stack spawns a worker).
    pub fn new(config: GitHubConfig) -> Result<Self, HostError> {
        let bad = |problem: String| HostError::BadInput {
            field: "github.base_url",
            problem,
        };
        if !(config.base_url.starts_with("https://") || config.base_url.starts_with("http://")) {
            return Err(bad(format!("{:?} must be an http(s) URL", config.base_url)));
        }
        if config.token.expose_secret().trim().is_empty() {
            return Err(HostError::BadInput {
                field: "github.token",
                problem: "is empty".into(),
            });
        }
        let client = Octocrab::builder()
            .base_uri(config.base_url.as_str())
            .map_err(|e| bad(format!("{:?} is not a valid URL: {e}", config.base_url)))?
            .personal_token(config.token.expose_secret().to_owned())
            // Retries are ours: octocrab's would repeat POSTs after a 5xx and ignore our write gate.
            .add_retry_config(RetryConfig::None)
            .set_connect_timeout(Some(Duration::from_secs(10)))
            .set_read_timeout(Some(Duration::from_secs(60)))
            .build()
            .map_err(|e| HostError::Transport {
                operation: "build the GitHub client",
                message: e.to_string(),
            })?;
        Ok(Self {
            client,
            user: config.user,
            min_write_interval: config.min_write_interval,
            rate_limit_retries: config.rate_limit_retries,
            max_rate_limit_wait: config.max_rate_limit_wait,
            write_gate: tokio::sync::Mutex::new(None),
        })
    }

    /// One request: through the write gate when it creates content, retried while rate limited.
    /// Returns the status and the JSON body (`null` when empty).
    async fn call(
        &self,
        operation: &'static str,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Value), HostError> {
        let writes = method != Method::GET;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (status, headers, text) = if writes {
                let mut last = self.write_gate.lock().await;
                if let Some(at) = *last {
                    tokio::time::sleep_until(at + self.min_write_interval).await;
                }
                let out = self.send(operation, &method, path, body).await;
                *last = Some(tokio::time::Instant::now());
                out?
            } else {
                self.send(operation, &method, path, body).await?
            };
            let json: Value = if text.trim().is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).map_err(|e| HostError::Decode {
                    operation,
                    message: format!("not JSON ({e})"),
                })?
            };
            if let Some(wait) = rate_limit_wait(status, &headers, &json, attempt) {
                if attempt > self.rate_limit_retries || wait > self.max_rate_limit_wait {
                    return Err(HostError::RateLimited {
                        operation,
                        attempts: attempt,
                    });
                }
                tracing::warn!(
                    operation,
                    status = status.as_u16(),
                    wait_ms = wait.as_millis() as u64,
                    "rate limited"
                );
                tokio::time::sleep(wait).await;
                continue;
            }
            if status == StatusCode::UNAUTHORIZED {
                return Err(HostError::Unauthorized {
                    operation,
                    status: status.as_u16(),
                    message: error_message(&json),
                });
            }
            return Ok((status, json));
        }
    }

    async fn send(
        &self,
        operation: &'static str,
        method: &Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, HeaderMap, String), HostError> {
        let transport = |e: octocrab::Error| HostError::Transport {
            operation,
            message: e.to_string(),
        };
        let uri = path.to_owned();
        let response = match *method {
            Method::GET => self.client._get(uri).await,
            Method::POST => self.client._post(uri, body).await,
            Method::PUT => self.client._put(uri, body).await,
            Method::PATCH => self.client._patch(uri, body).await,
            Method::DELETE => self.client._delete(uri, body).await,
            _ => unreachable!("only the methods above are used"),
        }
        .map_err(transport)?;
        let status = response.status();
        let headers = response.headers().clone();
        let text = self
            .client
            .body_to_string(response)
            .await
            .map_err(transport)?;
        Ok((status, headers, text))
    }

    async fn get_repo(&self, repo: &RepoRef) -> Result<Option<HostedRepo>, HostError> {
        let op = "read repository";
        let (status, json) = self
            .call(op, Method::GET, &format!("/repos/{repo}"), None)
            .await?;
        match status {
            StatusCode::OK => Ok(Some(hosted(op, json, false)?)),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(api(op, status, &json)),
        }
    }

    async fn list_keys(&self, repo: &RepoRef) -> Result<Vec<KeyJson>, HostError> {
        let op = "list deploy keys";
        let mut all = Vec::new();
        for page in 1..=10 {
            let path = format!("/repos/{repo}/keys?per_page=100&page={page}");
            let (status, json) = self.call(op, Method::GET, &path, None).await?;
            match status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(HostError::NotFound {
                        operation: op,
                        repo: repo.to_string(),
                    })
                }
                _ => return Err(api(op, status, &json)),
            }
            let keys: Vec<KeyJson> = decode(op, json)?;
            let last = keys.len() < 100;
            all.extend(keys);
            if last {
                break;
            }
        }
        Ok(all)
    }

    async fn add_key(&self, repo: &RepoRef, key: &DeployKeySpec) -> Result<u64, HostError> {
        let op = "add deploy key";
        let body = json!({"title": key.title, "key": key_material(&key.public_key), "read_only": key.read_only});
        let (status, json) = self
            .call(
                op,
                Method::POST,
                &format!("/repos/{repo}/keys"),
                Some(&body),
            )
            .await?;
        match status {
            StatusCode::CREATED => Ok(decode::<KeyJson>(op, json)?.id),
            StatusCode::NOT_FOUND => Err(HostError::NotFound {
                operation: op,
                repo: repo.to_string(),
            }),
            _ => Err(api(op, status, &json)),
        }
    }

    async fn find_open_pull(
        &self,
        repo: &RepoRef,
        pr: &NewPullRequest,
    ) -> Result<Option<PullRequest>, HostError> {
        let op = "list pull requests";
        let path = format!(
            "/repos/{repo}/pulls?state=open&head={}&base={}",
            query_escape(&format!("{}:{}", repo.owner(), pr.head)),
            query_escape(&pr.base)
        );
        let (status, json) = self.call(op, Method::GET, &path, None).await?;
        if status != StatusCode::OK {
            return Err(api(op, status, &json));
        }
        let pulls: Vec<PullJson> = decode(op, json)?;
        Ok(pulls
            .into_iter()
            .find(|p| p.head.ref_ == pr.head && p.base.ref_ == pr.base)
            .map(PullJson::into_pull))
    }
}

#[async_trait]
impl GitHost for GitHub {
    fn kind(&self) -> &'static str {
        "github"
    }

    async fn ensure_repo(
        &self,
        repo: &RepoRef,
        description: &str,
    ) -> Result<HostedRepo, HostError> {
        if let Some(found) = self.get_repo(repo).await? {
            return Ok(found);
        }
        let op = "create repository";
        let path = if self.user.as_deref() == Some(repo.owner()) {
            "/user/repos".to_owned()
        } else {
            format!("/orgs/{}/repos", repo.owner())
        };
        let body = json!({"name": repo.name(), "description": description, "private": true, "auto_init": false});
        let (status, json) = self.call(op, Method::POST, &path, Some(&body)).await?;
        match status {
            StatusCode::CREATED => hosted(op, json, true),
            // Another replica created it between our read and our create.
            StatusCode::UNPROCESSABLE_ENTITY if error_message(&json).contains("already exists") => {
                self.get_repo(repo)
                    .await?
                    .ok_or_else(|| api(op, status, &json))
            }
            StatusCode::NOT_FOUND => Err(HostError::NotFound {
                operation: op,
                repo: format!("organisation {}", repo.owner()),
            }),
            _ => Err(api(op, status, &json)),
        }
    }

    async fn ensure_deploy_key(
        &self,
        repo: &RepoRef,
        key: &DeployKeySpec,
    ) -> Result<DeployKeyState, HostError> {
        let wanted = key_material(&key.public_key);
        if wanted.split(' ').count() != 2 || !wanted.starts_with("ssh-") {
            return Err(HostError::BadInput {
                field: "deploy key",
                problem: "must be an OpenSSH public key (`ssh-ed25519 AAAA…`)".into(),
            });
        }
        let existing = self.list_keys(repo).await?;
        if let Some(found) = existing.iter().find(|k| key_material(&k.key) == wanted) {
            if found.read_only == key.read_only {
                return Ok(DeployKeyState::Present { id: found.id });
            }
            let op = "delete deploy key";
            let (status, json) = self
                .call(
                    op,
                    Method::DELETE,
                    &format!("/repos/{repo}/keys/{}", found.id),
                    None,
                )
                .await?;
            if status != StatusCode::NO_CONTENT && status != StatusCode::NOT_FOUND {
                return Err(api(op, status, &json));
            }
            return Ok(DeployKeyState::Replaced {
                id: self.add_key(repo, key).await?,
            });
        }
        Ok(DeployKeyState::Added {
            id: self.add_key(repo, key).await?,
        })
    }

    async fn open_pull_request(
        &self,
        repo: &RepoRef,
        pr: &NewPullRequest,
    ) -> Result<PullRequest, HostError> {
        crate::names::validate_branch("pull request head", &pr.head).map_err(bad_branch)?;
        crate::names::validate_branch("pull request base", &pr.base).map_err(bad_branch)?;
        if let Some(open) = self.find_open_pull(repo, pr).await? {
            return Ok(open);
        }
        let op = "open pull request";
        let body = json!({"title": pr.title, "body": pr.body, "head": pr.head, "base": pr.base});
        let (status, json) = self
            .call(
                op,
                Method::POST,
                &format!("/repos/{repo}/pulls"),
                Some(&body),
            )
            .await?;
        match status {
            StatusCode::CREATED => Ok(decode::<PullJson>(op, json)?.into_pull()),
            StatusCode::UNPROCESSABLE_ENTITY if error_message(&json).contains("already exists") => {
                self.find_open_pull(repo, pr)
                    .await?
                    .ok_or_else(|| api(op, status, &json))
            }
            _ => Err(api(op, status, &json)),
        }
    }

    async fn pull_request(&self, repo: &RepoRef, number: u64) -> Result<PullRequest, HostError> {
        let op = "read pull request";
        let (status, json) = self
            .call(
                op,
                Method::GET,
                &format!("/repos/{repo}/pulls/{number}"),
                None,
            )
            .await?;
        match status {
            StatusCode::OK => Ok(decode::<PullJson>(op, json)?.into_pull()),
            StatusCode::NOT_FOUND => Err(HostError::NotFound {
                operation: op,
                repo: format!("{repo}#{number}"),
            }),
            _ => Err(api(op, status, &json)),
        }
    }

    async fn open_pull_requests(
        &self,
        repo: &RepoRef,
        base: &str,
    ) -> Result<Vec<PullRequest>, HostError> {
        crate::names::validate_branch("pull request base", base).map_err(bad_branch)?;
        let op = "list pull requests";
        let mut all = Vec::new();
        // Pages of 100 until a short one: a repo sealwright owns has few open pull requests.
        for page in 1..=10u32 {
            let path = format!(
                "/repos/{repo}/pulls?state=open&base={}&per_page=100&page={page}",
                query_escape(base)
            );
            let (status, json) = self.call(op, Method::GET, &path, None).await?;
            match status {
                StatusCode::OK => {}
                StatusCode::NOT_FOUND => {
                    return Err(HostError::NotFound {
                        operation: op,
                        repo: repo.to_string(),
                    })
                }
                _ => return Err(api(op, status, &json)),
            }
            let pulls: Vec<PullJson> = decode(op, json)?;
            let n = pulls.len();
            all.extend(pulls.into_iter().map(PullJson::into_pull));
            if n < 100 {
                break;
            }
        }
        Ok(all)
    }

    async fn delete_branch(&self, repo: &RepoRef, branch: &str) -> Result<(), HostError> {
        crate::names::validate_branch("branch", branch).map_err(bad_branch)?;
        let op = "delete branch";
        let path = format!("/repos/{repo}/git/refs/heads/{branch}");
        let (status, json) = self.call(op, Method::DELETE, &path, None).await?;
        match status {
            StatusCode::NO_CONTENT | StatusCode::NOT_FOUND => Ok(()),
            // GitHub answers 422 "Reference does not exist" for a branch already deleted.
            StatusCode::UNPROCESSABLE_ENTITY
                if error_message(&json).contains("Reference does not exist") =>
            {
                Ok(())
            }
            _ => Err(api(op, status, &json)),
        }
    }

    async fn merge_pull_request(
        &self,
        repo: &RepoRef,
        number: u64,
        head_sha: &str,
        title: &str,
    ) -> Result<String, HostError> {
        check_sha("head sha", head_sha)?;
        let op = "merge pull request";
        let body = json!({"merge_method": "squash", "sha": head_sha, "commit_title": title});
        let path = format!("/repos/{repo}/pulls/{number}/merge");
        let (status, json) = self.call(op, Method::PUT, &path, Some(&body)).await?;
        match status {
            StatusCode::OK => Ok(decode::<MergeJson>(op, json)?.sha),
            StatusCode::CONFLICT => Err(HostError::StaleHead {
                number,
                expected_sha: head_sha.to_owned(),
            }),
            StatusCode::METHOD_NOT_ALLOWED => Err(HostError::NotMergeable {
                number,
                message: error_message(&json),
            }),
            StatusCode::NOT_FOUND => Err(HostError::NotFound {
                operation: op,
                repo: format!("{repo}#{number}"),
            }),
            _ => Err(api(op, status, &json)),
        }
    }

    async fn set_commit_status(
        &self,
        repo: &RepoRef,
        sha: &str,
        status: &CommitStatus,
    ) -> Result<(), HostError> {
        check_sha("commit sha", sha)?;
        let op = "set commit status";
        let mut body = json!({
            "state": status.state.as_str(),
            "context": status.context,
            // GitHub truncates nothing and refuses descriptions over 140 characters.
            "description": status.description.chars().take(140).collect::<String>(),
        });
        if let Some(url) = &status.target_url {
            body["target_url"] = json!(url);
        }
        let (code, json) = self
            .call(
                op,
                Method::POST,
                &format!("/repos/{repo}/statuses/{sha}"),
                Some(&body),
            )
            .await?;
        match code {
            StatusCode::CREATED => Ok(()),
            _ => Err(api(op, code, &json)),
        }
    }

    async fn archive_repo(&self, repo: &RepoRef) -> Result<(), HostError> {
        let op = "archive repository";
        let (code, json) = self
            .call(
                op,
                Method::PATCH,
                &format!("/repos/{repo}"),
                Some(&json!({"archived": true})),
            )
            .await?;
        match code {
            StatusCode::OK | StatusCode::NOT_FOUND => Ok(()),
            _ => Err(api(op, code, &json)),
        }
    }
}

/// When a 403/429 is a rate limit, how long to wait before trying again.
fn rate_limit_wait(
    status: StatusCode,
    headers: &HeaderMap,
    body: &Value,
    attempt: u32,
) -> Option<Duration> {
    if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
        return None;
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<u64>().ok()) {
        return Some(Duration::from_secs(secs));
    }
    if header("x-ratelimit-remaining") == Some("0") {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let reset = header("x-ratelimit-reset")
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(now + 60);
        return Some(Duration::from_secs(reset.saturating_sub(now).max(1)));
    }
    // GitHub: without headers, wait at least a minute, and longer each time.
    let message = error_message(body).to_ascii_lowercase();
    if status == StatusCode::TOO_MANY_REQUESTS || message.contains("rate limit") {
        return Some(Duration::from_secs(
            60u64.saturating_mul(1 << attempt.min(5).saturating_sub(1)),
        ));
    }
    None
}

/// GitHub's error text: `message`, plus each `errors[].message` (or code and field).
fn error_message(body: &Value) -> String {
    let mut out = body
        .get("message")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_owned();
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        for e in errors {
            let detail = e
                .get("message")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .or_else(|| e.as_str().map(str::to_owned))
                .unwrap_or_else(|| {
                    let code = e.get("code").and_then(Value::as_str).unwrap_or("error");
                    let field = e.get("field").and_then(Value::as_str).unwrap_or("");
                    format!("{code} {field}").trim().to_owned()
                });
            if !detail.is_empty() {
                out.push_str(if out.is_empty() { "" } else { ": " });
                out.push_str(&detail);
            }
        }
    }
    if out.is_empty() {
        "(no message)".to_owned()
    } else {
        out
    }
}

fn api(operation: &'static str, status: StatusCode, body: &Value) -> HostError {
    HostError::Api {
        operation,
        status: status.as_u16(),
        message: error_message(body),
    }
}

fn decode<T: for<'de> Deserialize<'de>>(
    operation: &'static str,
    json: Value,
) -> Result<T, HostError> {
    serde_json::from_value(json).map_err(|e| HostError::Decode {
        operation,
        message: e.to_string(),
    })
}

fn bad_branch(e: crate::names::NameError) -> HostError {
    HostError::BadInput {
        field: "branch",
        problem: e.to_string(),
    }
}

fn check_sha(field: &'static str, sha: &str) -> Result<(), HostError> {
    if sha.len() == 40 && sha.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(HostError::BadInput {
            field,
            problem: format!("{sha:?} must be 40 hex digits"),
        })
    }
}

/// Percent-encodes everything but RFC 3986 unreserved characters and `:`.
fn query_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn hosted(operation: &'static str, json: Value, created: bool) -> Result<HostedRepo, HostError> {
    let r: RepoJson = decode(operation, json)?;
    Ok(HostedRepo {
        full_name: r.full_name,
        push_url: r.ssh_url.clone(),
        clone_url: r.clone_url,
        ssh_url: Some(r.ssh_url),
        default_branch: r.default_branch.unwrap_or_else(|| "main".to_owned()),
        private: r.private,
        created,
    })
}

#[derive(Deserialize)]
struct RepoJson {
    full_name: String,
    ssh_url: String,
    clone_url: String,
    default_branch: Option<String>,
    private: bool,
}

#[derive(Deserialize)]
struct KeyJson {
    id: u64,
    key: String,
    read_only: bool,
}

#[derive(Deserialize)]
struct BranchJson {
    #[serde(rename = "ref")]
    ref_: String,
    sha: String,
    repo: Option<RepoNameJson>,
}

#[derive(Deserialize)]
struct RepoNameJson {
    full_name: String,
}

#[derive(Deserialize)]
struct PullJson {
    number: u64,
    state: String,
    merged_at: Option<String>,
    html_url: String,
    merge_commit_sha: Option<String>,
    head: BranchJson,
    base: BranchJson,
}

impl PullJson {
    fn into_pull(self) -> PullRequest {
        let state = if self.merged_at.is_some() {
            PullRequestState::Merged
        } else if self.state == "open" {
            PullRequestState::Open
        } else {
            PullRequestState::Closed
        };
        PullRequest {
            number: self.number,
            state,
            head_ref: self.head.ref_,
            head_repo: self.head.repo.map(|r| r.full_name),
            head_sha: self.head.sha,
            base_ref: self.base.ref_,
            url: self.html_url,
            // GitHub fills this with a test-merge commit while the PR is open; it means something only once merged.
            merge_commit_sha: if state == PullRequestState::Merged {
                self.merge_commit_sha
            } else {
                None
            },
        }
    }
}

#[derive(Deserialize)]
struct MergeJson {
    sha: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn rate_limits_are_told_apart_from_permission_errors() {
        let none = Value::Null;
        let forbidden = json!({"message": "Resource not accessible by integration"});
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), &forbidden, 1),
            None
        );
        assert_eq!(
            rate_limit_wait(
                StatusCode::FORBIDDEN,
                &headers(&[("retry-after", "7")]),
                &none,
                1
            ),
            Some(Duration::from_secs(7))
        );
        let secondary = json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes."});
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &HeaderMap::new(), &secondary, 2),
            Some(Duration::from_secs(120))
        );
        assert!(
            rate_limit_wait(StatusCode::TOO_MANY_REQUESTS, &HeaderMap::new(), &none, 1).is_some()
        );
        let primary = headers(&[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "0")]);
        assert_eq!(
            rate_limit_wait(StatusCode::FORBIDDEN, &primary, &none, 1),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            rate_limit_wait(StatusCode::OK, &headers(&[("retry-after", "7")]), &none, 1),
            None
        );
    }

    #[test]
    fn github_error_texts_are_kept() {
        let body = json!({"message": "Validation Failed", "errors": [
            {"resource": "Repository", "code": "custom", "field": "name", "message": "name already exists on this account"},
            {"resource": "PullRequest", "code": "missing_field", "field": "head"}
        ]});
        assert_eq!(
            error_message(&body),
            "Validation Failed: name already exists on this account: missing_field head"
        );
        assert_eq!(error_message(&Value::Null), "(no message)");
    }

    #[test]
    fn queries_are_escaped() {
        assert_eq!(
            query_escape("acme:sealwright/change-1"),
            "acme:sealwright%2Fchange-1"
        );
        assert_eq!(query_escape("a b&c"), "a%20b%26c");
    }
}
