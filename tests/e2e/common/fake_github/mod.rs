//! A FAKE GitHub REST API for tests: a stand-in, because no real GitHub is reachable here.
//!
//! It is *stateful* and works over *real bare repos*: creating a repository runs `git init --bare`
//! under `repos_root/<owner>/<name>.git`, refs are real refs, and merging a pull request is a real
//! merge (`git merge-tree` + `git commit-tree` + a compare-and-swap `git update-ref`), so the API
//! and the git data always agree, as they do on GitHub. Tests push and fetch with plain git
//! (file://, smart HTTP, or SSH through the deploy keys this fake writes into `authorized_keys`).
//!
//! Every request body is checked against the request schema of GitHub's published OpenAPI
//! description (`github-ops.json`, read at run time from the path given in the options), and a
//! violation is answered with GitHub's 422 "Invalid request." Every response body is built from
//! the operation's own example in that description, with the fields filled in, and is checked
//! against the response schema for its status. Both kinds of violation are recorded; tests assert
//! `violations()` is empty.
//!
//! The server is axum on `127.0.0.1:<free port>`, on its own tokio runtime in a background thread,
//! so sync and async tests can use it alike; it stops when the `FakeGitHub` is dropped.
//!
//! Implemented operations (anything else gets a 404 naming the method and path, and is recorded as
//! a violation so that a call the fake does not know cannot pass unnoticed): repos/create-in-org,
//! repos/create-for-authenticated-user, repos/get, repos/create-deploy-key, repos/list-deploy-keys,
//! repos/delete-deploy-key, git/create-ref, git/get-ref, git/update-ref, git/delete-ref,
//! pulls/create, pulls/list, pulls/get, pulls/merge, repos/create-commit-status,
//! repos/get-combined-status-for-ref.

use std::collections::{BTreeMap, HashMap};
use std::future::IntoFuture;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{json, Value};

mod git;
mod json;
mod keys;
mod openapi;
mod pulls;
mod refs;
mod repos;
mod statuses;

use git::*;
use json::*;
use keys::*;
use openapi::*;
use pulls::*;
use refs::*;
use repos::*;
use statuses::*;

/// How to start the fake.
#[derive(Clone, Debug, Default)]
pub struct FakeGitHubOptions {
    /// Path of `github-ops.json` (the operations cut from GitHub's OpenAPI description).
    pub ops_json: PathBuf,
    /// Accepted as `Authorization: Bearer <t>` or `token <t>`; anything else gets a 401.
    pub token: String,
    /// Repositories live at `repos_root/<owner>/<name>.git`.
    pub repos_root: PathBuf,
    /// The authenticated user: owner for `POST /user/repos`, author of PRs, merger.
    pub user_login: String,
    /// e.g. `ssh://root@127.0.0.1:2222/` gives `ssh_url` = prefix + `owner/name.git`.
    /// Without it, `ssh_url` has GitHub's `git@github.com:owner/name.git` form (unusable here).
    pub ssh_url_prefix: Option<String>,
    /// e.g. `http://127.0.0.1:8080/` gives `clone_url` = prefix + `owner/name.git`.
    /// Without it, `clone_url` is the bare repo's `file://` URL, which works locally.
    pub clone_url_prefix: Option<String>,
    /// Deploy keys are appended here as forced-command lines (and removed when deleted).
    pub authorized_keys: Option<PathBuf>,
    /// The forced command of those lines:
    /// `command="<git_ssh_cmd> <repos_root> '<owner>/<name>.git' rw|ro",restrict <key>`.
    pub git_ssh_cmd: Option<PathBuf>,
}

/// The running fake. Dropping it stops the server.
pub struct FakeGitHub {
    shared: Arc<Shared>,
    base_url: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakeGitHub {
    /// Loads the operations, binds a free loopback port and serves in a background thread.
    /// Panics (with the reason) when the options or `github-ops.json` are unusable.
    pub fn start(opts: FakeGitHubOptions) -> FakeGitHub {
        assert!(
            opts.authorized_keys.is_some() == opts.git_ssh_cmd.is_some(),
            "fake GitHub: authorized_keys and git_ssh_cmd go together (a deploy key line without \
             a forced command would grant a shell)"
        );
        std::fs::create_dir_all(&opts.repos_root).expect("fake GitHub: create repos_root");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("fake GitHub: bind");
        listener
            .set_nonblocking(true)
            .expect("fake GitHub: nonblocking");
        let base_url = format!("http://{}/", listener.local_addr().unwrap());
        let shared = Arc::new(Shared {
            routes: load_routes(&opts.ops_json),
            opts,
            base_url: base_url.clone(),
            next_id: AtomicU64::new(1000),
            state: Mutex::new(State::default()),
        });

        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let app = axum::Router::<Arc<Shared>>::new()
            .fallback(entry)
            .with_state(shared.clone());
        let thread = std::thread::Builder::new()
            .name("fake-github".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("fake GitHub: runtime");
                rt.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                    // Not a graceful shutdown: a client's idle keep-alive connection must not keep
                    // the test waiting. Dropping the runtime below cancels the connection tasks.
                    tokio::select! {
                        r = axum::serve(listener, app).into_future() => {
                            if let Err(e) = r { eprintln!("fake GitHub: server error: {e}"); }
                        }
                        _ = stopped => {}
                    }
                });
            })
            .expect("fake GitHub: spawn thread");
        FakeGitHub {
            shared,
            base_url,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// The fake over the bare repositories in `repos`, whose clone URLs a real smart-HTTP Git
    /// server on loopback serves with `token` (keep the server for as long as the fake), and the
    /// GitHub host client for it, unpaced: the in-process pull-request flows' set-up.
    pub fn over_http(
        repos: &std::path::Path,
        token: &str,
    ) -> (
        super::git_servers::HttpGitServer,
        FakeGitHub,
        sealwright::host::GitHub,
    ) {
        let git = super::git_servers::HttpGitServer::start(repos, Some(("x-access-token", token)));
        let fake = FakeGitHub::start(FakeGitHubOptions {
            ops_json: super::shared().join("github-openapi/github-ops.json"),
            token: token.into(),
            repos_root: repos.to_path_buf(),
            user_login: "sealwright-bot".into(),
            ssh_url_prefix: None,
            clone_url_prefix: Some(format!("http://127.0.0.1:{}/", git.port())),
            authorized_keys: None,
            git_ssh_cmd: None,
        });
        let mut config = sealwright::host::GitHubConfig::new(
            &fake.base_url(),
            secrecy::SecretString::from(token.to_owned()),
        );
        config.min_write_interval = std::time::Duration::ZERO;
        let github = sealwright::host::GitHub::new(config).unwrap();
        (git, fake, github)
    }

    /// `http://127.0.0.1:PORT/`, for `Octocrab::builder().base_uri(..)`.
    pub fn base_url(&self) -> String {
        self.base_url.clone()
    }

    /// Every request-schema and response-schema violation seen (and every call to a route the
    /// fake does not implement), each starting with the operation id.
    pub fn violations(&self) -> Vec<String> {
        self.shared.lock().violations.clone()
    }

    /// `(method, path+query, status)` of every request, in order.
    pub fn requests(&self) -> Vec<(String, String, u16)> {
        self.shared.lock().requests.clone()
    }

    /// The next `n` content-creating requests (POST/PATCH/PUT/DELETE) get GitHub's
    /// secondary-rate-limit answer: `status` (403 or 429), header `retry-after: <secs>`, and
    /// body `{"message":"You have exceeded a secondary rate limit...","documentation_url":...}`.
    pub fn rate_limit_next(&self, n: usize, status: u16, retry_after_secs: u64) {
        assert!(
            status == 403 || status == 429,
            "GitHub answers a secondary rate limit with 403 or 429, not {status}"
        );
        self.shared.lock().rate_limit = Some(RateLimit {
            remaining: n,
            status,
            retry_after_secs,
        });
    }

    /// `(id, key, read_only)` of the repo's deploy keys.
    pub fn deploy_keys(&self, owner: &str, repo: &str) -> Vec<(u64, String, bool)> {
        let st = self.shared.lock();
        st.repos
            .get(&(owner.to_string(), repo.to_string()))
            .map(|r| {
                r.keys
                    .iter()
                    .map(|k| (k.id, k.key.clone(), k.read_only))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// A reviewer closes pull request `number` without merging it (on github.com; the published
    /// operations here have no `pulls/update`). The head is frozen, as GitHub does. Returns
    /// whether an open pull request was closed.
    #[allow(dead_code)]
    pub fn close_pull(&self, owner: &str, repo: &str, number: u64) -> bool {
        let dir = self.shared.repo_dir(owner, repo);
        let mut st = self.shared.lock();
        let Some(r) = st.repos.get_mut(&(owner.to_string(), repo.to_string())) else {
            return false;
        };
        match r.pulls.iter_mut().find(|p| p.number == number && p.open) {
            Some(p) => {
                if let Some(sha) = resolve_ref(&dir, &format!("refs/heads/{}", p.head_ref)) {
                    p.head_sha = sha;
                }
                let t = now();
                p.open = false;
                p.closed_at = Some(t.clone());
                p.updated_at = t;
                true
            }
            None => false,
        }
    }

    /// `(context, state)` of the latest status per context on `sha` (a sha or a ref name).
    pub fn statuses(&self, owner: &str, repo: &str, sha: &str) -> Vec<(String, String)> {
        let st = self.shared.lock();
        let Some(r) = st.repos.get(&(owner.to_string(), repo.to_string())) else {
            return Vec::new();
        };
        let full = resolve_commit(&self.shared.repo_dir(owner, repo), sha)
            .unwrap_or_else(|| sha.to_string());
        latest_per_context(&r.statuses, &full)
            .into_iter()
            .map(|s| (s.context.clone(), s.state.clone()))
            .collect()
    }
}

impl Drop for FakeGitHub {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

// ---------------------------------------------------------------------------------------------
// State

#[derive(Default)]
struct State {
    repos: BTreeMap<(String, String), Repo>,
    requests: Vec<(String, String, u16)>,
    violations: Vec<String>,
    rate_limit: Option<RateLimit>,
    /// Compiled schemas by "<op id> request" / "<op id> <status>"; compiled on first use
    /// because the repository schemas are large.
    validators: HashMap<String, Arc<jsonschema::Validator>>,
}

struct RateLimit {
    remaining: usize,
    status: u16,
    retry_after_secs: u64,
}

struct Repo {
    id: u64,
    owner: String,
    name: String,
    owner_is_org: bool,
    private: bool,
    description: Option<String>,
    homepage: Option<String>,
    has_discussions: bool,
    delete_branch_on_merge: bool,
    default_branch: String,
    created_at: String,
    keys: Vec<DeployKey>,
    pulls: Vec<Pull>,
    statuses: Vec<Status>,
}

struct DeployKey {
    id: u64,
    title: String,
    key: String,
    read_only: bool,
    created_at: String,
    /// The authorized_keys line written for it, to remove on delete.
    line: Option<String>,
}

struct Pull {
    id: u64,
    number: u64,
    title: String,
    body: Option<String>,
    user: String,
    head_ref: String,
    base_ref: String,
    /// Refreshed from the branches while open (as GitHub does on push); frozen when closed.
    head_sha: String,
    base_sha: String,
    open: bool,
    draft: bool,
    merged: bool,
    merge_commit_sha: Option<String>,
    created_at: String,
    updated_at: String,
    closed_at: Option<String>,
    merged_at: Option<String>,
}

struct Status {
    id: u64,
    sha: String,
    state: String,
    context: String,
    description: Option<String>,
    target_url: Option<String>,
    created_at: String,
}

struct Shared {
    opts: FakeGitHubOptions,
    base_url: String,
    routes: Vec<Route>,
    next_id: AtomicU64,
    state: Mutex<State>,
}

impl Shared {
    /// One lock for everything: requests are served one at a time, which also makes each
    /// handler's read-check-write on the git repos atomic with respect to other API calls.
    fn lock(&self) -> MutexGuard<'_, State> {
        // A panicking handler must not take every later request down with it.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    fn repo_dir(&self, owner: &str, name: &str) -> PathBuf {
        self.opts.repos_root.join(owner).join(format!("{name}.git"))
    }

    fn example(&self, op: &str, status: u16) -> Value {
        self.routes
            .iter()
            .find(|r| r.op.id == op)
            .and_then(|r| r.op.responses.get(&status))
            .and_then(|(_, ex)| ex.clone())
            .unwrap_or_else(|| panic!("github-ops.json: {op} has no {status} example"))
    }

    /// Serves one request (on a blocking thread: handlers run git).
    fn handle(&self, method: &str, path_query: &str, auth: Option<&str>, raw: &[u8]) -> Reply {
        let (path, query) = path_query.split_once('?').unwrap_or((path_query, ""));
        let mut st = self.lock();
        let route = self.routes.iter().find_map(|r| {
            if r.op.method != method {
                return None;
            }
            r.op.pattern.matches(path).map(|p| (r, p))
        });
        let op = route.as_ref().map(|(r, _)| &r.op);
        let reply = self.respond(&mut st, method, path, query, auth, raw, route);
        if let Some(op) = op {
            check_response(&mut st, op, &reply);
        }
        st.requests
            .push((method.to_string(), path_query.to_string(), reply.status));
        reply
    }

    #[allow(clippy::too_many_arguments)]
    fn respond(
        &self,
        st: &mut State,
        method: &str,
        path: &str,
        query: &str,
        auth: Option<&str>,
        raw: &[u8],
        route: Option<(&Route, BTreeMap<String, String>)>,
    ) -> Reply {
        // Authentication comes first, as on GitHub (a bad token gets 401 even on unknown paths).
        let token = auth.and_then(|a| {
            let (scheme, t) = a.trim().split_once(' ')?;
            (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
                .then(|| t.trim())
        });
        match (auth, token) {
            (None, _) => return Reply::error(401, "Requires authentication"),
            (Some(_), Some(t)) if t == self.opts.token => {}
            _ => return Reply::error(401, "Bad credentials"),
        }

        if matches!(method, "POST" | "PATCH" | "PUT" | "DELETE") {
            if let Some(rl) = st.rate_limit.as_mut().filter(|rl| rl.remaining > 0) {
                rl.remaining -= 1;
                let secs = rl.retry_after_secs;
                return Reply::error(
                    rl.status,
                    "You have exceeded a secondary rate limit. Please wait a few minutes before \
                     you try again. If you reach out to GitHub Support for help, please include \
                     the request ID FAKE:0000:0000.",
                )
                .with_doc(
                    "https://docs.github.com/free-pro-team@latest/rest/overview/\
                     rate-limits-for-the-rest-api#about-secondary-rate-limits",
                )
                .with_header("retry-after", &secs.to_string());
            }
        }

        let Some((route, params)) = route else {
            st.violations.push(format!(
                "(no route) {method} {path}: the fake GitHub does not implement this call"
            ));
            return Reply::error(
                404,
                &format!("Not Found (fake GitHub has no route for {method} {path})"),
            );
        };
        let op = &route.op;

        let mut body = Value::Null;
        if let Some(schema) = &op.request_schema {
            if !raw.iter().all(u8::is_ascii_whitespace) {
                match serde_json::from_slice(raw) {
                    Ok(v) => body = v,
                    Err(_) => return Reply::error(400, "Problems parsing JSON"),
                }
            }
            let errors = validate(st, &format!("{} request", op.id), schema, &body);
            if !errors.is_empty() {
                for e in &errors {
                    st.violations
                        .push(format!("{} {method} {path}: request body: {e}", op.id));
                }
                return Reply::error(422, &format!("Invalid request.\n\n{}", errors.join("\n")));
            }
        }

        let call = Call {
            params: params
                .into_iter()
                .map(|(k, v)| (k, pct_decode(&v, false)))
                .collect(),
            query: query
                .split('&')
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
                    (pct_decode(k, true), pct_decode(v, true))
                })
                .collect(),
            body,
        };
        (route.handler)(self, st, &call)
    }
}

/// Validates `instance` against `schema`, compiling (and caching under `key`) on first use.
fn validate(st: &mut State, key: &str, schema: &Value, instance: &Value) -> Vec<String> {
    let validator = match st.validators.get(key) {
        Some(v) => v.clone(),
        None => match jsonschema::validator_for(schema) {
            Ok(v) => {
                let v = Arc::new(v);
                st.validators.insert(key.to_string(), v.clone());
                v
            }
            Err(e) => return vec![format!("schema of {key} does not compile: {e}")],
        },
    };
    let errors: Vec<String> = validator
        .iter_errors(instance)
        .map(|e| {
            let at = e.instance_path().to_string();
            format!("{e} at {}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    errors
}

/// Checks a response against the operation's schema for its status and records violations.
fn check_response(st: &mut State, op: &Op, reply: &Reply) {
    match op.responses.get(&reply.status) {
        Some((Some(schema), _)) => {
            let Some(body) = &reply.body else {
                st.violations.push(format!(
                    "{} {}: response has no body but the spec has a schema",
                    op.id, reply.status
                ));
                return;
            };
            for e in validate(st, &format!("{} {}", op.id, reply.status), schema, body) {
                st.violations
                    .push(format!("{} {}: response: {e}", op.id, reply.status));
            }
        }
        Some((None, _)) => {}
        // A success the spec does not list is a bug in the fake. Errors such as 401, 404 or a
        // rate limit are answered by GitHub on every endpoint although most specs omit them.
        None if reply.status < 300 => st.violations.push(format!(
            "{} {}: status not documented for this operation",
            op.id, reply.status
        )),
        None => {}
    }
}

/// What a handler sees of a request.
struct Call {
    params: BTreeMap<String, String>,
    query: BTreeMap<String, String>,
    body: Value,
}

impl Call {
    fn param(&self, k: &str) -> &str {
        self.params.get(k).map(String::as_str).unwrap_or_default()
    }
    fn str(&self, k: &str) -> Option<&str> {
        self.body.get(k).and_then(Value::as_str)
    }
    fn bool(&self, k: &str) -> Option<bool> {
        self.body.get(k).and_then(Value::as_bool)
    }
}

struct Reply {
    status: u16,
    body: Option<Value>,
    headers: Vec<(String, String)>,
}

impl Reply {
    fn json(status: u16, body: Value) -> Reply {
        Reply {
            status,
            body: Some(body),
            headers: Vec::new(),
        }
    }
    fn empty(status: u16) -> Reply {
        Reply {
            status,
            body: None,
            headers: Vec::new(),
        }
    }
    /// GitHub's error body: message, documentation_url, status (as a string, as GitHub sends it).
    fn error(status: u16, message: &str) -> Reply {
        Reply::json(
            status,
            json!({"message": message, "documentation_url": DOCS, "status": status.to_string()}),
        )
    }
    fn not_found() -> Reply {
        Reply::error(404, "Not Found")
    }
    fn not_mergeable() -> Reply {
        Reply::error(405, "Pull Request is not mergeable")
    }
    /// 422 "Validation Failed" with GitHub's `errors` array.
    fn validation_failed(errors: Value) -> Reply {
        let mut r = Reply::error(422, "Validation Failed");
        r.body.as_mut().unwrap()["errors"] = errors;
        r
    }
    fn with_doc(mut self, url: &str) -> Reply {
        if let Some(b) = self.body.as_mut() {
            b["documentation_url"] = json!(url);
        }
        self
    }
    fn with_header(mut self, k: &str, v: &str) -> Reply {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }
}

// ---------------------------------------------------------------------------------------------
// HTTP entry point: everything goes through one fallback handler, which hands the request to
// `Shared::handle` on a blocking thread (handlers run git as a subprocess).

async fn entry(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    req: axum::extract::Request,
) -> axum::response::Response {
    let method = req.method().as_str().to_string();
    let path_query = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_else(|| req.uri().path().to_string());
    let auth = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let raw = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    let s = shared.clone();
    let reply =
        tokio::task::spawn_blocking(move || s.handle(&method, &path_query, auth.as_deref(), &raw))
            .await
            .unwrap_or_else(|e| {
                let msg = format!("fake GitHub: handler panicked: {e}");
                shared.lock().violations.push(msg.clone());
                Reply::error(500, &msg)
            });

    let mut b = axum::http::Response::builder().status(reply.status);
    for (k, v) in &reply.headers {
        b = b.header(k.as_str(), v.as_str());
    }
    let body = match &reply.body {
        Some(v) => {
            b = b.header("content-type", "application/json; charset=utf-8");
            axum::body::Body::from(serde_json::to_vec(v).unwrap())
        }
        None => axum::body::Body::empty(),
    };
    b.body(body).unwrap()
}
