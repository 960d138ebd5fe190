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
// Route table: operation id (looked up in github-ops.json for method, path regex and schemas) →
// handler. Keep it in step with the list in the module doc.

type Handler = fn(&Shared, &mut State, &Call) -> Reply;

const ROUTES: &[(&str, Handler)] = &[
    ("repos/create-in-org", create_in_org),
    ("repos/create-for-authenticated-user", create_for_user),
    ("repos/get", get_repo),
    ("repos/create-deploy-key", create_deploy_key),
    ("repos/list-deploy-keys", list_deploy_keys),
    ("repos/delete-deploy-key", delete_deploy_key),
    ("git/create-ref", create_ref),
    ("git/get-ref", get_ref),
    ("git/update-ref", update_ref),
    ("git/delete-ref", delete_ref),
    ("pulls/create", create_pull),
    ("pulls/list", list_pulls),
    ("pulls/get", get_pull),
    ("pulls/merge", merge_pull),
    ("repos/create-commit-status", create_status),
    ("repos/get-combined-status-for-ref", combined_status),
];

const DOCS: &str = "https://docs.github.com/rest";

/// One operation of github-ops.json.
struct Op {
    id: String,
    method: String,
    pattern: PathPattern,
    request_schema: Option<Value>,
    /// status → (schema, example)
    responses: BTreeMap<u16, (Option<Value>, Option<Value>)>,
}

struct Route {
    op: Op,
    handler: Handler,
}

fn load_routes(ops_json: &Path) -> Vec<Route> {
    let text = std::fs::read_to_string(ops_json)
        .unwrap_or_else(|e| panic!("fake GitHub: read {}: {e}", ops_json.display()));
    let doc: Value = serde_json::from_str(&text).expect("fake GitHub: github-ops.json is not JSON");
    let ops = doc["operations"]
        .as_array()
        .expect("github-ops.json: no operations");
    ROUTES
        .iter()
        .map(|(id, handler)| {
            let o = ops
                .iter()
                .find(|o| o["operationId"] == *id)
                .unwrap_or_else(|| panic!("github-ops.json lacks operation {id}"));
            let regex = o["regex"].as_str().expect("operation without regex");
            let responses = o["responses"]
                .as_object()
                .map(|m| {
                    m.iter()
                        .filter_map(|(status, r)| {
                            let opt = |v: &Value| (!v.is_null()).then(|| v.clone());
                            Some((
                                status.parse().ok()?,
                                (opt(&r["schema"]), opt(&r["example"])),
                            ))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Route {
                op: Op {
                    id: id.to_string(),
                    method: o["method"].as_str().unwrap_or_default().to_uppercase(),
                    pattern: PathPattern::parse(regex)
                        .unwrap_or_else(|e| panic!("{id}: path regex {regex:?}: {e}")),
                    request_schema: (!o["request_schema"].is_null())
                        .then(|| o["request_schema"].clone()),
                    responses,
                },
                handler: *handler,
            }
        })
        .collect()
}

/// The ops' path regexes use only literals, `(?P<name>[^/]+)` and `(?P<name>.+)` between `^` and
/// `$`, so this tiny matcher interprets them (no regex crate among the test dependencies).
/// Anything else in a regex is refused at start, so a spec update cannot be misread silently.
struct PathPattern(Vec<Tok>);

enum Tok {
    Lit(u8),
    Param { name: String, slashes: bool },
}

impl PathPattern {
    fn parse(re: &str) -> Result<PathPattern, String> {
        let body = re
            .strip_prefix('^')
            .and_then(|r| r.strip_suffix('$'))
            .ok_or("expected ^...$")?;
        let mut toks = Vec::new();
        let mut rest = body;
        while !rest.is_empty() {
            if let Some(r) = rest
                .strip_prefix("(?P<")
                .or_else(|| rest.strip_prefix("(?<"))
            {
                let (name, r) = r.split_once('>').ok_or("unterminated group name")?;
                let (slashes, r) = if let Some(r) = r.strip_prefix("[^/]+)") {
                    (false, r)
                } else if let Some(r) = r.strip_prefix(".+)") {
                    (true, r)
                } else {
                    return Err(format!("unsupported group body in {r:?}"));
                };
                toks.push(Tok::Param {
                    name: name.to_string(),
                    slashes,
                });
                rest = r;
            } else {
                let mut chars = rest.chars();
                let c = chars.next().unwrap();
                let c = match c {
                    '\\' => chars.next().ok_or("trailing backslash")?,
                    '.' | '[' | ']' | '(' | ')' | '{' | '}' | '*' | '+' | '?' | '|' | '^' | '$' => {
                        return Err(format!("unsupported regex syntax at {rest:?}"))
                    }
                    c => c,
                };
                if !c.is_ascii() {
                    return Err("non-ASCII literal".into());
                }
                toks.push(Tok::Lit(c as u8));
                rest = chars.as_str();
            }
        }
        Ok(PathPattern(toks))
    }

    /// The captured (still percent-encoded) parameters, or None.
    fn matches(&self, path: &str) -> Option<BTreeMap<String, String>> {
        let mut spans = Vec::new();
        if !self.go(0, path.as_bytes(), 0, &mut spans) {
            return None;
        }
        let names = self.0.iter().filter_map(|t| match t {
            Tok::Param { name, .. } => Some(name.clone()),
            Tok::Lit(_) => None,
        });
        Some(
            names
                .zip(spans)
                .map(|(n, (a, b))| (n, path[a..b].to_string()))
                .collect(),
        )
    }

    /// Backtracking, greedy like the regex engine.
    fn go(&self, t: usize, s: &[u8], i: usize, spans: &mut Vec<(usize, usize)>) -> bool {
        match self.0.get(t) {
            None => i == s.len(),
            Some(Tok::Lit(c)) => s.get(i) == Some(c) && self.go(t + 1, s, i + 1, spans),
            Some(Tok::Param { slashes, .. }) => {
                let mut end = i;
                while end < s.len() && (*slashes || s[end] != b'/') {
                    end += 1;
                }
                while end > i {
                    spans.push((i, end));
                    if self.go(t + 1, s, end, spans) {
                        return true;
                    }
                    spans.pop();
                    end -= 1;
                }
                false
            }
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

// ---------------------------------------------------------------------------------------------
// Handlers: repositories

fn create_in_org(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    create_repo(
        sh,
        st,
        c,
        c.param("org").to_string(),
        true,
        "repos/create-in-org",
    )
}

fn create_for_user(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let owner = sh.opts.user_login.clone();
    create_repo(
        sh,
        st,
        c,
        owner,
        false,
        "repos/create-for-authenticated-user",
    )
}

fn create_repo(sh: &Shared, st: &mut State, c: &Call, owner: String, org: bool, op: &str) -> Reply {
    // GitHub replaces characters it does not allow in names by '-'.
    let name: String = c
        .str("name")
        .unwrap_or_default()
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || "._-".contains(ch) {
                ch
            } else {
                '-'
            }
        })
        .collect();
    let name_error = |msg: &str| {
        Reply::validation_failed(json!([{
            "resource": "Repository", "code": "custom", "field": "name", "message": msg
        }]))
    };
    if name.is_empty() || name == "." || name == ".." {
        return name_error("name is invalid");
    }
    let dir = sh.repo_dir(&owner, &name);
    if st.repos.contains_key(&(owner.clone(), name.clone())) || dir.exists() {
        return name_error("name already exists on this account");
    }

    std::fs::create_dir_all(dir.parent().unwrap()).expect("create owner dir");
    let d = dir.to_string_lossy().to_string();
    if let Err(e) = git_ok(None, &["init", "--quiet", "--bare", "-b", "main", &d])
        .and_then(|_| git_ok(Some(&dir), &["config", "http.receivepack", "true"]))
    {
        return Reply::error(500, &format!("fake GitHub: git init failed: {e}"));
    }
    let description = c.str("description").map(str::to_string);
    if c.bool("auto_init") == Some(true) {
        // GitHub's initial commit: a README holding the name and the description.
        let readme = format!(
            "# {name}\n{}",
            description
                .as_deref()
                .map(|d| format!("{d}\n"))
                .unwrap_or_default()
        );
        let res = git_in(&dir, &["hash-object", "-w", "--stdin"], readme.as_bytes())
            .and_then(|blob| {
                git_in(
                    &dir,
                    &["mktree"],
                    format!("100644 blob {blob}\tREADME.md\n").as_bytes(),
                )
            })
            .and_then(|tree| commit_tree(&dir, &tree, &[], "Initial commit", &sh.opts.user_login))
            .and_then(|commit| git_ok(Some(&dir), &["update-ref", "refs/heads/main", &commit, ""]));
        if let Err(e) = res {
            return Reply::error(500, &format!("fake GitHub: auto_init failed: {e}"));
        }
    }

    let repo = Repo {
        id: sh.new_id(),
        owner: owner.clone(),
        name: name.clone(),
        owner_is_org: org,
        private: c.bool("private").unwrap_or(false) || c.str("visibility") == Some("private"),
        description,
        homepage: c.str("homepage").map(str::to_string),
        has_discussions: c.bool("has_discussions").unwrap_or(false),
        delete_branch_on_merge: c.bool("delete_branch_on_merge").unwrap_or(false),
        default_branch: "main".into(),
        created_at: now(),
        keys: Vec::new(),
        pulls: Vec::new(),
        statuses: Vec::new(),
    };
    let body = full_repo_json(sh, sh.example(op, 201), &repo);
    st.repos.insert((owner, name), repo);
    Reply::json(201, body)
}

fn get_repo(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    Reply::json(200, full_repo_json(sh, sh.example("repos/get", 200), repo))
}

impl State {
    /// The repo, also adopting one that a test created on disk itself (seeded bare repos).
    fn repo(&mut self, sh: &Shared, owner: &str, name: &str) -> Option<&mut Repo> {
        let k = (owner.to_string(), name.to_string());
        if !self.repos.contains_key(&k) {
            let dir = sh.repo_dir(owner, name);
            if owner.contains("..") || name.contains("..") || !dir.join("HEAD").is_file() {
                return None;
            }
            let head = git_ok(Some(&dir), &["symbolic-ref", "HEAD"]).unwrap_or_default();
            self.repos.insert(
                k.clone(),
                Repo {
                    id: sh.new_id(),
                    owner: owner.into(),
                    name: name.into(),
                    owner_is_org: owner != sh.opts.user_login,
                    private: false,
                    description: None,
                    homepage: None,
                    has_discussions: false,
                    delete_branch_on_merge: false,
                    default_branch: head.strip_prefix("refs/heads/").unwrap_or("main").into(),
                    created_at: now(),
                    keys: Vec::new(),
                    pulls: Vec::new(),
                    statuses: Vec::new(),
                },
            );
        }
        self.repos.get_mut(&k)
    }
}

// ---------------------------------------------------------------------------------------------
// Handlers: deploy keys

fn create_deploy_key(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let key_error = |msg: &str| {
        Reply::validation_failed(json!([{
            "resource": "PublicKey", "code": "custom", "field": "key", "message": msg
        }]))
    };
    let Some(key) = key_material(c.str("key").unwrap_or_default()) else {
        return key_error("key is invalid. You must supply a key in OpenSSH public key format");
    };
    // GitHub refuses a key that is already used anywhere (any repo), not only on this one.
    if st
        .repos
        .values()
        .any(|r| r.keys.iter().any(|k| k.key == key))
    {
        return key_error("key is already in use");
    }
    let read_only = c.bool("read_only").unwrap_or(false);
    let line = match (&sh.opts.authorized_keys, &sh.opts.git_ssh_cmd) {
        (Some(file), Some(cmd)) => {
            let line = format!(
                "command=\"{} {} '{owner}/{name}.git' {}\",restrict {key}",
                cmd.display(),
                sh.opts.repos_root.display(),
                if read_only { "ro" } else { "rw" }
            );
            if let Err(e) = append_line(file, &line) {
                return Reply::error(500, &format!("fake GitHub: authorized_keys: {e}"));
            }
            Some(line)
        }
        _ => None,
    };
    let k = DeployKey {
        id: sh.new_id(),
        title: c.str("title").unwrap_or_default().to_string(),
        key,
        read_only,
        created_at: now(),
        line,
    };
    let body = key_json(
        sh,
        sh.example("repos/create-deploy-key", 201),
        owner,
        name,
        &k,
    );
    st.repo(sh, owner, name).unwrap().keys.push(k);
    Reply::json(201, body)
}

fn list_deploy_keys(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let template = sh.example("repos/list-deploy-keys", 200)[0].clone();
    let keys = repo
        .keys
        .iter()
        .map(|k| key_json(sh, template.clone(), owner, name, k))
        .collect();
    Reply::json(200, Value::Array(keys))
}

fn delete_deploy_key(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    let id: u64 = c.param("key_id").parse().unwrap_or(0);
    let Some(i) = repo.keys.iter().position(|k| k.id == id) else {
        return Reply::not_found();
    };
    let k = repo.keys.remove(i);
    if let (Some(file), Some(line)) = (&sh.opts.authorized_keys, &k.line) {
        if let Err(e) = remove_line(file, line) {
            return Reply::error(500, &format!("fake GitHub: authorized_keys: {e}"));
        }
    }
    Reply::empty(204)
}

/// `type base64` of an OpenSSH public key (GitHub drops the comment), or None if it is not one.
fn key_material(key: &str) -> Option<String> {
    let mut it = key.split_whitespace();
    let (kind, data) = (it.next()?, it.next()?);
    let known =
        kind.starts_with("ssh-") || kind.starts_with("ecdsa-sha2-") || kind.starts_with("sk-");
    let base64 = data.len() >= 16
        && data
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b));
    (known && base64).then(|| format!("{kind} {data}"))
}

fn append_line(file: &Path, line: &str) -> std::io::Result<()> {
    let mut text = std::fs::read_to_string(file).unwrap_or_default();
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(line);
    text.push('\n');
    std::fs::write(file, text)
}

fn remove_line(file: &Path, line: &str) -> std::io::Result<()> {
    let text = std::fs::read_to_string(file)?;
    let kept: String = text
        .lines()
        .filter(|l| *l != line)
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(file, kept)
}

// ---------------------------------------------------------------------------------------------
// Handlers: git refs. The `{ref}` path parameter is `heads/x` (GitHub prefixes `refs/`).

fn create_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let (full, sha) = (
        c.str("ref").unwrap_or_default(),
        c.str("sha").unwrap_or_default(),
    );
    if !full.starts_with("refs/") || full.matches('/').count() < 2 {
        return Reply::error(
            422,
            "Reference name must contain at least three slash-separated components.",
        );
    }
    if git_ok(None, &["check-ref-format", full]).is_err() {
        return Reply::error(422, &format!("{full} is not a valid ref name."));
    }
    let Some(kind) = object_type(&dir, sha) else {
        return Reply::error(422, "Object does not exist");
    };
    if resolve_ref(&dir, full).is_some() {
        return Reply::error(422, "Reference already exists");
    }
    // Empty old value: create only if absent; a d/f conflict (heads/a vs heads/a/b) fails too.
    if git_ok(Some(&dir), &["update-ref", full, sha, ""]).is_err() {
        return Reply::error(422, "Reference update failed");
    }
    Reply::json(
        201,
        ref_json(
            sh,
            sh.example("git/create-ref", 201),
            owner,
            name,
            full,
            sha,
            &kind,
        ),
    )
}

fn get_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    match resolve_ref(&dir, &full) {
        Some(sha) => {
            let kind = object_type(&dir, &sha).unwrap_or_else(|| "commit".into());
            Reply::json(
                200,
                ref_json(
                    sh,
                    sh.example("git/get-ref", 200),
                    owner,
                    name,
                    &full,
                    &sha,
                    &kind,
                ),
            )
        }
        None if git_ok(Some(&dir), &["for-each-ref", "--count=1"])
            .unwrap_or_default()
            .is_empty() =>
        {
            Reply::error(409, "Git Repository is empty.")
        }
        None => Reply::not_found(),
    }
}

fn update_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    let sha = c.str("sha").unwrap_or_default();
    let Some(old) = resolve_ref(&dir, &full) else {
        return Reply::error(422, "Reference does not exist");
    };
    let Some(kind) = object_type(&dir, sha) else {
        return Reply::error(422, "Object does not exist");
    };
    if c.bool("force") != Some(true) && !is_ancestor(&dir, &old, sha) {
        return Reply::error(422, "Update is not a fast forward");
    }
    // Compare-and-swap against the value just checked.
    if git_ok(Some(&dir), &["update-ref", &full, sha, &old]).is_err() {
        return Reply::error(422, "Reference cannot be updated");
    }
    Reply::json(
        200,
        ref_json(
            sh,
            sh.example("git/update-ref", 200),
            owner,
            name,
            &full,
            sha,
            &kind,
        ),
    )
}

fn delete_ref(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    if st.repo(sh, owner, name).is_none() {
        return Reply::not_found();
    }
    let dir = sh.repo_dir(owner, name);
    let full = format!("refs/{}", c.param("ref"));
    let Some(old) = resolve_ref(&dir, &full) else {
        return Reply::error(422, "Reference does not exist");
    };
    if git_ok(Some(&dir), &["update-ref", "-d", &full, &old]).is_err() {
        return Reply::error(422, "Reference cannot be deleted");
    }
    Reply::empty(204)
}

// ---------------------------------------------------------------------------------------------
// Handlers: pull requests

fn create_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let head_arg = c.str("head").unwrap_or_default();
    let base_ref = c.str("base").unwrap_or_default().to_string();
    let invalid = |field: &str| {
        Reply::validation_failed(
            json!([{"resource": "PullRequest", "field": field, "code": "invalid"}]),
        )
    };
    // "owner:branch" names the head's owner; forks do not exist in this fake.
    let head_ref = match head_arg.split_once(':') {
        Some((o, b)) if o.eq_ignore_ascii_case(owner) => b.to_string(),
        Some(_) => return invalid("head"),
        None => head_arg.to_string(),
    };
    let Some(head_sha) = resolve_ref(&dir, &format!("refs/heads/{head_ref}")) else {
        return invalid("head");
    };
    let Some(base_sha) = resolve_ref(&dir, &format!("refs/heads/{base_ref}")) else {
        return invalid("base");
    };
    let Some(title) = c.str("title").filter(|t| !t.trim().is_empty()) else {
        return Reply::validation_failed(
            json!([{"resource": "PullRequest", "code": "missing_field", "field": "title"}]),
        );
    };
    if repo
        .pulls
        .iter()
        .any(|p| p.open && p.head_ref == head_ref && p.base_ref == base_ref)
    {
        return Reply::validation_failed(json!([{
            "resource": "PullRequest", "code": "custom",
            "message": format!("A pull request already exists for {owner}:{head_ref}.")
        }]));
    }
    if is_ancestor(&dir, &head_sha, &base_sha) {
        return Reply::validation_failed(json!([{
            "resource": "PullRequest", "code": "custom",
            "message": format!("No commits between {base_ref} and {head_ref}")
        }]));
    }
    let t = now();
    let pr = Pull {
        id: sh.new_id(),
        number: repo.pulls.len() as u64 + 1,
        title: title.to_string(),
        body: c.str("body").map(str::to_string),
        user: sh.opts.user_login.clone(),
        head_ref,
        base_ref,
        head_sha,
        base_sha,
        open: true,
        draft: c.bool("draft").unwrap_or(false),
        merged: false,
        merge_commit_sha: None,
        created_at: t.clone(),
        updated_at: t,
        closed_at: None,
        merged_at: None,
    };
    let body = pr_json(sh, sh.example("pulls/create", 201), repo, &pr);
    repo.pulls.push(pr);
    Reply::json(201, body)
}

fn list_pulls(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let q = |k: &str| c.query.get(k).map(String::as_str);
    let state = q("state").unwrap_or("open");
    // GitHub ignores a `head` filter that is not "owner:branch" (a classic client mistake).
    let head = q("head").and_then(|h| h.split_once(':'));
    let base = q("base");
    let mut hits: Vec<&Pull> = repo
        .pulls
        .iter()
        .filter(|p| match state {
            "closed" => !p.open,
            "all" => true,
            _ => p.open,
        })
        .filter(|p| head.is_none_or(|(o, b)| o.eq_ignore_ascii_case(owner) && p.head_ref == b))
        .filter(|p| base.is_none_or(|b| p.base_ref == b))
        .collect();
    let asc = q("direction") == Some("asc");
    hits.sort_by_key(|p| p.number);
    if !asc {
        hits.reverse();
    }
    let per_page: usize = q("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = q("page").and_then(|v| v.parse().ok()).unwrap_or(1).max(1);
    let template = sh.example("pulls/list", 200)[0].clone();
    let items: Vec<Value> = hits
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|p| pr_json(sh, template.clone(), repo, p))
        .collect();
    let mut reply = Reply::json(200, Value::Array(items));
    if hits.len() > page * per_page {
        let mut query: Vec<String> = c
            .query
            .iter()
            .filter(|(k, _)| k.as_str() != "page")
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        query.push(format!("page={}", page + 1));
        let next = format!(
            "{}repos/{owner}/{name}/pulls?{}",
            sh.base_url,
            query.join("&")
        );
        reply = reply.with_header("link", &format!("<{next}>; rel=\"next\""));
    }
    reply
}

fn get_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let Some(repo) = st.repo(sh, c.param("owner"), c.param("repo")) else {
        return Reply::not_found();
    };
    let n: u64 = c.param("pull_number").parse().unwrap_or(0);
    let Some(pr) = repo.pulls.iter().find(|p| p.number == n) else {
        return Reply::not_found();
    };
    Reply::json(200, pr_json(sh, sh.example("pulls/get", 200), repo, pr))
}

fn merge_pull(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let n: u64 = c.param("pull_number").parse().unwrap_or(0);
    let delete_branch = repo.delete_branch_on_merge;
    let Some(pr) = repo.pulls.iter_mut().find(|p| p.number == n) else {
        return Reply::not_found();
    };
    if !pr.open {
        return Reply::not_mergeable();
    }
    let (Some(head), Some(base)) = (
        resolve_ref(&dir, &format!("refs/heads/{}", pr.head_ref)),
        resolve_ref(&dir, &format!("refs/heads/{}", pr.base_ref)),
    ) else {
        return Reply::not_mergeable();
    };
    if c.str("sha").is_some_and(|s| s != head) {
        return Reply::error(
            409,
            "Head branch was modified. Review and try the merge again.",
        );
    }

    let merger = sh.opts.user_login.clone();
    let method = c.str("merge_method").unwrap_or("merge");
    let new = match method {
        "rebase" => rebase_commits(&dir, &base, &head),
        _ => {
            let tree = match merge_tree(&dir, &base, &head) {
                Ok(t) => t,
                Err(_) => return Reply::not_mergeable(),
            };
            let (title, message, parents) = if method == "squash" {
                let (t, m) = squash_message(&dir, &base, &head, pr);
                (t, m, vec![base.clone()])
            } else {
                let t = format!(
                    "Merge pull request #{} from {owner}/{}",
                    pr.number, pr.head_ref
                );
                (t, pr.title.clone(), vec![base.clone(), head.clone()])
            };
            let title = c.str("commit_title").map(str::to_string).unwrap_or(title);
            let message = c
                .str("commit_message")
                .map(str::to_string)
                .unwrap_or(message);
            let full = if message.is_empty() {
                title
            } else {
                format!("{title}\n\n{message}")
            };
            commit_tree(&dir, &tree, &parents, &full, &merger).map_err(|_| ())
        }
    };
    let Ok(new) = new else {
        return Reply::not_mergeable();
    };
    // Compare-and-swap: if the base moved since it was read (a push), do not clobber it.
    let base_full = format!("refs/heads/{}", pr.base_ref);
    if git_ok(Some(&dir), &["update-ref", &base_full, &new, &base]).is_err() {
        return Reply::error(
            409,
            "Base branch was modified. Review and try the merge again.",
        );
    }
    let t = now();
    pr.open = false;
    pr.merged = true;
    pr.head_sha = head.clone();
    pr.base_sha = base;
    pr.merge_commit_sha = Some(new.clone());
    pr.closed_at = Some(t.clone());
    pr.merged_at = Some(t.clone());
    pr.updated_at = t;
    if delete_branch {
        let _ = git_ok(
            Some(&dir),
            &[
                "update-ref",
                "-d",
                &format!("refs/heads/{}", pr.head_ref),
                &head,
            ],
        );
    }
    let mut body = sh.example("pulls/merge", 200);
    body["sha"] = json!(new);
    body["merged"] = json!(true);
    body["message"] = json!("Pull Request successfully merged");
    Reply::json(200, body)
}

/// GitHub's default squash message: title = the only commit's subject, else the PR title, plus
/// " (#N)"; body = the only commit's body, else "* message" for every commit.
fn squash_message(dir: &Path, base: &str, head: &str, pr: &Pull) -> (String, String) {
    let log = git_ok(
        Some(dir),
        &[
            "log",
            "--reverse",
            "--format=%B%x00",
            &format!("{base}..{head}"),
        ],
    )
    .unwrap_or_default();
    let msgs: Vec<&str> = log
        .split('\0')
        .map(str::trim)
        .filter(|m| !m.is_empty())
        .collect();
    if let [only] = msgs.as_slice() {
        let (subject, body) = only.split_once('\n').unwrap_or((only, ""));
        (
            format!("{subject} (#{})", pr.number),
            body.trim().to_string(),
        )
    } else {
        let list: Vec<String> = msgs.iter().map(|m| format!("* {m}")).collect();
        (format!("{} (#{})", pr.title, pr.number), list.join("\n\n"))
    }
}

/// Rebase-merge: replays each commit of base..head onto base (cherry-picks done with
/// `merge-tree --merge-base`), keeping authors and messages. Refuses merge commits, as GitHub does.
fn rebase_commits(dir: &Path, base: &str, head: &str) -> Result<String, ()> {
    let list = git_ok(
        Some(dir),
        &[
            "rev-list",
            "--reverse",
            "--parents",
            &format!("{base}..{head}"),
        ],
    )
    .map_err(|_| ())?;
    let mut onto = base.to_string();
    for line in list.lines() {
        let ids: Vec<&str> = line.split_whitespace().collect();
        let [commit, parent] = ids.as_slice() else {
            return Err(());
        };
        let out = run_git(
            Some(dir),
            &[
                "merge-tree",
                "--write-tree",
                "--no-messages",
                &format!("--merge-base={parent}"),
                &onto,
                commit,
            ],
            None,
            &[],
        );
        if out.0 != 0 {
            return Err(());
        }
        let tree = out.1.lines().next().unwrap_or_default().to_string();
        let meta = git_ok(
            Some(dir),
            &[
                "show",
                "-s",
                "--date=raw",
                "--format=%an%x00%ae%x00%ad%x00%B",
                commit,
            ],
        )
        .map_err(|_| ())?;
        let f: Vec<&str> = meta.splitn(4, '\0').collect();
        let [an, ae, ad, msg] = f.as_slice() else {
            return Err(());
        };
        let env = [
            ("GIT_AUTHOR_NAME", an.to_string()),
            ("GIT_AUTHOR_EMAIL", ae.to_string()),
            ("GIT_AUTHOR_DATE", ad.to_string()),
            ("GIT_COMMITTER_NAME", "GitHub".to_string()),
            ("GIT_COMMITTER_EMAIL", "noreply@github.com".to_string()),
        ];
        let out = run_git(
            Some(dir),
            &["commit-tree", &tree, "-p", &onto, "-F", "-"],
            Some(msg.as_bytes()),
            &env,
        );
        if out.0 != 0 {
            return Err(());
        }
        onto = out.1.trim().to_string();
    }
    Ok(onto)
}

// ---------------------------------------------------------------------------------------------
// Handlers: commit statuses

fn create_status(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let sha_arg = c.param("sha");
    let is_hex = sha_arg.len() >= 7 && sha_arg.bytes().all(|b| b.is_ascii_hexdigit());
    let Some(sha) = is_hex.then(|| resolve_commit(&dir, sha_arg)).flatten() else {
        return Reply::error(422, &format!("No commit found for SHA: {sha_arg}"));
    };
    let s = Status {
        id: sh.new_id(),
        sha,
        state: c.str("state").unwrap_or("pending").to_string(),
        context: c.str("context").unwrap_or("default").to_string(),
        description: c.str("description").map(str::to_string),
        target_url: c.str("target_url").map(str::to_string),
        created_at: now(),
    };
    let mut body = status_json(sh, sh.example("repos/create-commit-status", 201), repo, &s);
    body["creator"] = user_json(sh, &sh.opts.user_login, false);
    repo.statuses.push(s);
    Reply::json(201, body)
}

fn combined_status(sh: &Shared, st: &mut State, c: &Call) -> Reply {
    let (owner, name) = (c.param("owner"), c.param("repo"));
    let dir = sh.repo_dir(owner, name);
    let Some(repo) = st.repo(sh, owner, name) else {
        return Reply::not_found();
    };
    let Some(sha) = resolve_commit(&dir, c.param("ref")) else {
        return Reply::not_found();
    };
    let latest = latest_per_context(&repo.statuses, &sha);
    // GitHub: failure if any is error/failure; pending if none or any pending; else success.
    let state = if latest
        .iter()
        .any(|s| s.state == "error" || s.state == "failure")
    {
        "failure"
    } else if latest.is_empty() || latest.iter().any(|s| s.state == "pending") {
        "pending"
    } else {
        "success"
    };
    let mut body = sh.example("repos/get-combined-status-for-ref", 200);
    let item = body["statuses"][0].clone();
    let statuses: Vec<Value> = latest
        .iter()
        .map(|s| status_json(sh, item.clone(), repo, s))
        .collect();
    let api = format!("{}repos/{owner}/{name}", sh.base_url);
    body["state"] = json!(state);
    body["sha"] = json!(sha);
    body["total_count"] = json!(statuses.len());
    body["statuses"] = Value::Array(statuses);
    body["commit_url"] = json!(format!("{api}/commits/{sha}"));
    body["url"] = json!(format!("{api}/commits/{sha}/status"));
    let minimal = body["repository"].take();
    body["repository"] = repo_fields(sh, minimal, repo);
    Reply::json(200, body)
}

fn latest_per_context<'a>(all: &'a [Status], sha: &str) -> Vec<&'a Status> {
    let mut latest: Vec<&Status> = Vec::new();
    for s in all.iter().filter(|s| s.sha == sha) {
        match latest.iter_mut().find(|l| l.context == s.context) {
            Some(l) => *l = s,
            None => latest.push(s),
        }
    }
    latest
}

// ---------------------------------------------------------------------------------------------
// Response bodies: each starts from the spec's example (so its shape is GitHub's) with the
// example's names, URLs and values replaced by this fake's.

/// The examples' API host, replaced by this fake's base URL so that URLs in responses work
/// (one example URL has it with http:).
const API: &str = "https://api.github.com/";
const API_HTTP: &str = "http://api.github.com/";

/// The string at a JSON pointer of an example ("" if absent).
fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer)
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string()
}

/// Replaces substrings in every string inside `v` (empty patterns are skipped).
fn substitute(v: &mut Value, subs: &[(&str, &str)]) {
    match v {
        Value::String(s) => {
            for (from, to) in subs {
                if !from.is_empty() && s.contains(from) {
                    *s = s.replace(from, to);
                }
            }
        }
        Value::Array(a) => a.iter_mut().for_each(|x| substitute(x, subs)),
        Value::Object(o) => o.values_mut().for_each(|x| substitute(x, subs)),
        _ => {}
    }
}

/// Sets `key` only where the template has it (the examples of different schemas share fields).
fn set(obj: &mut Value, key: &str, value: Value) {
    if let Some(slot) = obj.get_mut(key) {
        *slot = value;
    }
}

/// A stable id per login, so the same user has the same id in every response.
fn user_id(login: &str) -> u64 {
    let h = login.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    });
    1 + h % 90_000_000
}

/// A "Simple User" (owner, organization, PR user ...) from the repos/get example's owner.
fn user_json(sh: &Shared, login: &str, org: bool) -> Value {
    let mut u = sh.example("repos/get", 200)["owner"].clone();
    let example_login = str_at(&u, "/login");
    substitute(
        &mut u,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&example_login, login),
        ],
    );
    let id = user_id(login);
    u["login"] = json!(login);
    u["id"] = json!(id);
    u["node_id"] = json!(format!("{}_fake{id}", if org { "O" } else { "U" }));
    u["type"] = json!(if org { "Organization" } else { "User" });
    u["site_admin"] = json!(false);
    u
}

/// Fills the fields of a repository-shaped object (full, minimal, or a PR's head/base repo).
fn repo_fields(sh: &Shared, mut v: Value, r: &Repo) -> Value {
    let full_name = format!("{}/{}", r.owner, r.name);
    let example_full_name = str_at(&v, "/full_name");
    substitute(
        &mut v,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&example_full_name, &full_name),
        ],
    );
    let ssh_url = match &sh.opts.ssh_url_prefix {
        Some(p) => format!("{p}{full_name}.git"),
        None => format!("git@github.com:{full_name}.git"),
    };
    let clone_url = match &sh.opts.clone_url_prefix {
        Some(p) => format!("{p}{full_name}.git"),
        None => format!("file://{}", sh.repo_dir(&r.owner, &r.name).display()),
    };
    set(&mut v, "id", json!(r.id));
    set(&mut v, "node_id", json!(format!("R_fake{}", r.id)));
    set(&mut v, "name", json!(r.name));
    set(&mut v, "full_name", json!(full_name));
    set(&mut v, "owner", user_json(sh, &r.owner, r.owner_is_org));
    set(&mut v, "private", json!(r.private));
    set(
        &mut v,
        "visibility",
        json!(if r.private { "private" } else { "public" }),
    );
    set(&mut v, "description", json!(r.description));
    set(&mut v, "homepage", json!(r.homepage));
    set(&mut v, "fork", json!(false));
    set(&mut v, "default_branch", json!(r.default_branch));
    set(&mut v, "ssh_url", json!(ssh_url));
    set(&mut v, "clone_url", json!(clone_url));
    set(&mut v, "mirror_url", Value::Null);
    set(&mut v, "license", Value::Null);
    set(&mut v, "language", Value::Null);
    set(&mut v, "topics", json!([]));
    set(&mut v, "is_template", json!(false));
    set(&mut v, "archived", json!(false));
    set(&mut v, "disabled", json!(false));
    set(&mut v, "has_discussions", json!(r.has_discussions));
    set(
        &mut v,
        "delete_branch_on_merge",
        json!(r.delete_branch_on_merge),
    );
    set(&mut v, "template_repository", Value::Null);
    for k in ["created_at", "updated_at", "pushed_at"] {
        set(&mut v, k, json!(r.created_at));
    }
    for k in [
        "forks",
        "forks_count",
        "stargazers_count",
        "watchers",
        "watchers_count",
        "open_issues",
        "open_issues_count",
        "size",
        "subscribers_count",
        "network_count",
    ] {
        set(&mut v, k, json!(0));
    }
    set(
        &mut v,
        "permissions",
        json!({"admin": true, "maintain": true, "push": true, "triage": true, "pull": true}),
    );
    v
}

/// The full repository of repos/get and the create operations.
fn full_repo_json(sh: &Shared, template: Value, r: &Repo) -> Value {
    let mut v = repo_fields(sh, template, r);
    let o = v.as_object_mut().unwrap();
    // A new repository is no fork: no parent/source.
    o.remove("parent");
    o.remove("source");
    o.insert(
        "organization".into(),
        if r.owner_is_org {
            user_json(sh, &r.owner, true)
        } else {
            Value::Null
        },
    );
    // Two of the spec's example violations: create-in-org lacks has_discussions, get lacks
    // language.
    o.insert("has_discussions".into(), json!(r.has_discussions));
    o.insert("language".into(), Value::Null);
    v
}

fn key_json(sh: &Shared, mut v: Value, owner: &str, name: &str, k: &DeployKey) -> Value {
    v["id"] = json!(k.id);
    v["key"] = json!(k.key);
    v["url"] = json!(format!("{}repos/{owner}/{name}/keys/{}", sh.base_url, k.id));
    v["title"] = json!(k.title);
    v["verified"] = json!(true);
    v["created_at"] = json!(k.created_at);
    v["read_only"] = json!(k.read_only);
    set(&mut v, "added_by", json!(sh.opts.user_login));
    set(&mut v, "last_used", Value::Null);
    set(&mut v, "enabled", json!(true));
    v
}

fn ref_json(
    sh: &Shared,
    mut v: Value,
    owner: &str,
    name: &str,
    full: &str,
    sha: &str,
    kind: &str,
) -> Value {
    let api = format!("{}repos/{owner}/{name}/git", sh.base_url);
    v["ref"] = json!(full);
    v["node_id"] = json!(format!("REF_fake_{full}"));
    v["url"] = json!(format!("{api}/{full}"));
    v["object"] = json!({"type": kind, "sha": sha, "url": format!("{api}/{kind}s/{sha}")});
    v
}

fn status_json(sh: &Shared, mut v: Value, r: &Repo, s: &Status) -> Value {
    set(
        &mut v,
        "url",
        json!(format!(
            "{}repos/{}/{}/statuses/{}",
            sh.base_url, r.owner, r.name, s.sha
        )),
    );
    set(&mut v, "id", json!(s.id));
    set(&mut v, "node_id", json!(format!("SC_fake{}", s.id)));
    set(&mut v, "state", json!(s.state));
    set(&mut v, "context", json!(s.context));
    set(&mut v, "description", json!(s.description));
    set(&mut v, "target_url", json!(s.target_url));
    set(&mut v, "created_at", json!(s.created_at));
    set(&mut v, "updated_at", json!(s.created_at));
    v
}

/// A pull request, full (pulls/get, pulls/create) or simple (pulls/list): the fields the
/// template lacks are not added.
fn pr_json(sh: &Shared, mut v: Value, r: &Repo, p: &Pull) -> Value {
    let dir = sh.repo_dir(&r.owner, &r.name);
    let (head, base) = if p.open {
        (
            resolve_ref(&dir, &format!("refs/heads/{}", p.head_ref))
                .unwrap_or_else(|| p.head_sha.clone()),
            resolve_ref(&dir, &format!("refs/heads/{}", p.base_ref))
                .unwrap_or_else(|| p.base_sha.clone()),
        )
    } else {
        (p.head_sha.clone(), p.base_sha.clone())
    };
    // The example's own number, sha and repo name appear inside its URLs and _links.
    let (n, ex_n) = (p.number, v["number"].to_string());
    let (ex_sha, ex_repo) = (str_at(&v, "/head/sha"), str_at(&v, "/base/repo/full_name"));
    let full_name = format!("{}/{}", r.owner, r.name);
    substitute(
        &mut v,
        &[
            (API, &sh.base_url),
            (API_HTTP, &sh.base_url),
            (&format!("/pulls/{ex_n}"), &format!("/pulls/{n}")),
            (&format!("/pull/{ex_n}"), &format!("/pull/{n}")),
            (&format!("/issues/{ex_n}"), &format!("/issues/{n}")),
            (&ex_sha, &head),
            (&ex_repo, &full_name),
        ],
    );
    set(&mut v, "id", json!(p.id));
    set(&mut v, "node_id", json!(format!("PR_fake{}", p.id)));
    set(&mut v, "number", json!(p.number));
    set(
        &mut v,
        "state",
        json!(if p.open { "open" } else { "closed" }),
    );
    set(&mut v, "locked", json!(false));
    set(&mut v, "active_lock_reason", Value::Null);
    set(&mut v, "title", json!(p.title));
    set(&mut v, "body", json!(p.body));
    set(&mut v, "user", user_json(sh, &p.user, false));
    set(&mut v, "draft", json!(p.draft));
    set(&mut v, "created_at", json!(p.created_at));
    set(&mut v, "updated_at", json!(p.updated_at));
    set(&mut v, "closed_at", json!(p.closed_at));
    set(&mut v, "merged_at", json!(p.merged_at));
    set(&mut v, "merge_commit_sha", json!(p.merge_commit_sha));
    set(
        &mut v,
        "author_association",
        json!(if p.user == r.owner { "OWNER" } else { "MEMBER" }),
    );
    // No labels, milestone, assignees or reviewers in this fake. Clearing requested_teams also
    // removes the spec example's violation (requested_teams[0] lacks `type`).
    for k in [
        "labels",
        "assignees",
        "requested_reviewers",
        "requested_teams",
    ] {
        set(&mut v, k, json!([]));
    }
    for k in ["milestone", "assignee", "auto_merge"] {
        set(&mut v, k, Value::Null);
    }
    for (side, rf, sha) in [("head", &p.head_ref, &head), ("base", &p.base_ref, &base)] {
        if let Some(s) = v.get_mut(side) {
            s["label"] = json!(format!("{}:{rf}", r.owner));
            s["ref"] = json!(rf);
            s["sha"] = json!(sha);
            s["user"] = user_json(sh, &r.owner, r.owner_is_org);
            let repo = s["repo"].take();
            s["repo"] = repo_fields(sh, repo, r);
        }
    }

    // Fields only the full pull request has.
    if v.get("merged").is_some() {
        let mergeable = p.open.then(|| merge_tree(&dir, &base, &head).is_ok());
        set(&mut v, "merged", json!(p.merged));
        set(
            &mut v,
            "merged_by",
            if p.merged {
                user_json(sh, &sh.opts.user_login, false)
            } else {
                Value::Null
            },
        );
        set(&mut v, "mergeable", json!(mergeable));
        set(&mut v, "rebaseable", json!(mergeable));
        set(
            &mut v,
            "mergeable_state",
            json!(match mergeable {
                Some(true) => "clean",
                Some(false) => "dirty",
                None => "unknown",
            }),
        );
        set(&mut v, "comments", json!(0));
        set(&mut v, "review_comments", json!(0));
        set(&mut v, "maintainer_can_modify", json!(false));
        let (commits, additions, deletions, files) = diff_stats(&dir, &base, &head);
        set(&mut v, "commits", json!(commits));
        set(&mut v, "additions", json!(additions));
        set(&mut v, "deletions", json!(deletions));
        set(&mut v, "changed_files", json!(files));
    }
    v
}

/// (commits, additions, deletions, changed files) of base...head, as GitHub counts a PR.
fn diff_stats(dir: &Path, base: &str, head: &str) -> (u64, u64, u64, u64) {
    let commits = git_ok(
        Some(dir),
        &["rev-list", "--count", &format!("{base}..{head}")],
    )
    .ok()
    .and_then(|s| s.parse().ok())
    .unwrap_or(0);
    let numstat = git_ok(
        Some(dir),
        &["diff", "--numstat", &format!("{base}...{head}")],
    )
    .unwrap_or_default();
    let (mut add, mut del, mut files) = (0, 0, 0);
    for l in numstat.lines() {
        let mut f = l.split('\t');
        add += f.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        del += f.next().and_then(|x| x.parse::<u64>().ok()).unwrap_or(0);
        files += 1;
    }
    (commits, add, del, files)
}

// ---------------------------------------------------------------------------------------------
// git, as GitHub's servers would run it: on the bare repo, isolated from the user's config.

/// (exit code, stdout, stderr)
fn run_git(
    dir: Option<&Path>,
    args: &[&str],
    input: Option<&[u8]>,
    env: &[(&str, String)],
) -> (i32, String, String) {
    let mut cmd = Command::new("git");
    if let Some(d) = dir {
        cmd.arg("--git-dir").arg(d);
    }
    cmd.args(args)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_TERMINAL_PROMPT", "0")
        .stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => return (-1, String::new(), format!("cannot run git: {e}")),
    };
    if let Some(data) = input {
        use std::io::Write;
        // Small inputs (a README, a tree line, a message): no deadlock with the output pipes.
        let _ = child.stdin.take().unwrap().write_all(data);
    }
    let out = child.wait_with_output().expect("wait for git");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Trimmed stdout, or stderr as the error.
fn git_ok(dir: Option<&Path>, args: &[&str]) -> Result<String, String> {
    match run_git(dir, args, None, &[]) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!(
            "git {} exited {code}: {}",
            args.join(" "),
            err.trim()
        )),
    }
}

fn git_in(dir: &Path, args: &[&str], input: &[u8]) -> Result<String, String> {
    match run_git(Some(dir), args, Some(input), &[]) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!(
            "git {} exited {code}: {}",
            args.join(" "),
            err.trim()
        )),
    }
}

/// A commit authored by `login` and committed by GitHub, as web merges are.
fn commit_tree(
    dir: &Path,
    tree: &str,
    parents: &[String],
    msg: &str,
    login: &str,
) -> Result<String, String> {
    let mut args = vec!["commit-tree", tree];
    for p in parents {
        args.extend(["-p", p.as_str()]);
    }
    args.extend(["-F", "-"]);
    let email = format!("{}+{login}@users.noreply.github.com", user_id(login));
    let env = [
        ("GIT_AUTHOR_NAME", login.to_string()),
        ("GIT_AUTHOR_EMAIL", email),
        ("GIT_COMMITTER_NAME", "GitHub".to_string()),
        ("GIT_COMMITTER_EMAIL", "noreply@github.com".to_string()),
    ];
    match run_git(Some(dir), &args, Some(msg.as_bytes()), &env) {
        (0, out, _) => Ok(out.trim().to_string()),
        (code, _, err) => Err(format!("git commit-tree exited {code}: {}", err.trim())),
    }
}

/// The sha a full ref name points at (exactly that ref, no DWIM).
fn resolve_ref(dir: &Path, full: &str) -> Option<String> {
    git_ok(Some(dir), &["show-ref", "--verify", "--hash", full]).ok()
}

/// A commit named by a sha (prefix), branch or tag.
fn resolve_commit(dir: &Path, spec: &str) -> Option<String> {
    git_ok(
        Some(dir),
        &[
            "rev-parse",
            "--verify",
            "--quiet",
            "--end-of-options",
            &format!("{spec}^{{commit}}"),
        ],
    )
    .ok()
}

/// The type of the object a full sha names (GitHub wants full shas here), or None.
fn object_type(dir: &Path, sha: &str) -> Option<String> {
    let full = (sha.len() == 40 || sha.len() == 64) && sha.bytes().all(|b| b.is_ascii_hexdigit());
    full.then(|| git_ok(Some(dir), &["cat-file", "-t", sha]).ok())
        .flatten()
}

fn is_ancestor(dir: &Path, a: &str, b: &str) -> bool {
    run_git(Some(dir), &["merge-base", "--is-ancestor", a, b], None, &[]).0 == 0
}

/// The merged tree of two commits, or Err on a conflict (or unrelated histories).
fn merge_tree(dir: &Path, base: &str, head: &str) -> Result<String, String> {
    match run_git(
        Some(dir),
        &["merge-tree", "--write-tree", "--no-messages", base, head],
        None,
        &[],
    ) {
        (0, out, _) => Ok(out.lines().next().unwrap_or_default().to_string()),
        (1, _, _) => Err("conflict".into()),
        (code, _, err) => Err(format!("git merge-tree exited {code}: {}", err.trim())),
    }
}

// ---------------------------------------------------------------------------------------------
// Small helpers

/// Now as GitHub writes times: `2011-01-26T19:01:12Z`.
fn now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    // Days to civil date (Howard Hinnant's algorithm).
    let z = secs.div_euclid(86_400) + 719_468;
    let (era, doe) = (z.div_euclid(146_097), z.rem_euclid(146_097));
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    let t = secs.rem_euclid(86_400);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        t / 3600,
        t % 3600 / 60,
        t % 60
    )
}

fn pct_decode(s: &str, plus_is_space: bool) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = b
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (b[i], hex) {
            (b'%', Some(x)) => {
                out.push(x);
                i += 3;
            }
            (b'+', _) if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
