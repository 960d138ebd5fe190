//! Local Git servers for tests, all on 127.0.0.1 with a free port and all stopped on Drop:
//! bare repos seeded with plumbing ([`seed_bare_repo`], [`install_hook`]), a smart-HTTP server
//! that runs `git http-backend` as CGI behind axum in-process, with optional basic auth
//! ([`HttpGitServer`]), and an sshd whose `authorized_keys` lines behave like GitHub deploy keys
//! through the forced command `tests/support/git-ssh-cmd` ([`SshGitServer`]).

use std::fs::OpenOptions;
use std::future::IntoFuture;
use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::os::fd::OwnedFd;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, request, HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use axum::serve::ListenerExt;
use axum::Router;
use tokio::io::AsyncWriteExt;
use tokio::sync::watch;

const SSHD: &str = "/usr/sbin/sshd";

/// Fixed identity and date for the seed commit, so its id is the same in every run.
const SEED_ENV: [(&str, &str); 6] = [
    ("GIT_AUTHOR_NAME", "Seed"),
    ("GIT_AUTHOR_EMAIL", "seed@example.invalid"),
    ("GIT_AUTHOR_DATE", "1767225600 +0000"),
    ("GIT_COMMITTER_NAME", "Seed"),
    ("GIT_COMMITTER_EMAIL", "seed@example.invalid"),
    ("GIT_COMMITTER_DATE", "1767225600 +0000"),
];

/// How long a stopping HTTP server waits for open connections before it drops them.
const HTTP_GRACE: Duration = Duration::from_secs(5);

/// Creates ROOT/<name>.git (name like "org/repo") with `git init --bare -b main`, sets
/// http.receivepack=true; if `initial_commit`, main gets one commit containing README.md
/// ("seed\n") made with plumbing (hash-object/mktree/commit-tree/update-ref), fixed
/// author/committer env. Returns the repo path.
pub fn seed_bare_repo(root: &Path, name: &str, initial_commit: bool) -> PathBuf {
    let repo = root.join(format!("{name}.git"));
    run(
        git()
            .args(["init", "--quiet", "--bare", "-b", "main"])
            .arg(&repo),
        None,
        "git init --bare",
    );
    run(
        git_in(&repo).args(["config", "http.receivepack", "true"]),
        None,
        "git config http.receivepack",
    );
    if initial_commit {
        let blob = run(
            git_in(&repo).args(["hash-object", "-w", "--stdin"]),
            Some(b"seed\n"),
            "git hash-object",
        );
        let tree = run(
            git_in(&repo).arg("mktree"),
            Some(format!("100644 blob {blob}\tREADME.md\n").as_bytes()),
            "git mktree",
        );
        let commit = run(
            git_in(&repo)
                .args(["commit-tree", &tree, "-m", "seed"])
                .envs(SEED_ENV),
            None,
            "git commit-tree",
        );
        run(
            git_in(&repo).args(["update-ref", "refs/heads/main", &commit]),
            None,
            "git update-ref",
        );
    }
    repo
}

/// Installs an executable hook script (e.g. "pre-receive") into a bare repo.
pub fn install_hook(repo: &Path, hook: &str, script: &str) {
    let path = repo.join("hooks").join(hook);
    std::fs::create_dir_all(repo.join("hooks")).expect("create the hooks directory");
    std::fs::write(&path, script).unwrap_or_else(|e| panic!("write hook {}: {e}", path.display()));
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod hook {}: {e}", path.display()));
}

/// Smart HTTP Git server, in-process: `git http-backend` (path from `git --exec-path`) as CGI
/// behind an axum server on 127.0.0.1:<free port>, running on its own tokio runtime in a
/// background std thread, so that both sync and #[tokio::test] tests can use it. Stops on Drop
/// (graceful shutdown, thread joined).
pub struct HttpGitServer {
    port: u16,
    shared: Arc<HttpShared>,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

/// What every request handler sees.
struct HttpShared {
    root: PathBuf,
    backend: PathBuf,
    auth: Option<BasicAuth>,
    receive_pack_posts: AtomicUsize,
    unauthorized: AtomicUsize,
}

struct BasicAuth {
    user: String,
    /// base64("user:pass"), compared with the token of `Authorization: Basic <token>`.
    token: String,
}

impl HttpGitServer {
    /// Serves ROOT/<org>/<repo>.git at http://127.0.0.1:PORT/<org>/<repo>.git. With
    /// Some((user, pass)), every request needs that basic auth: no/wrong credentials get 401 +
    /// `WWW-Authenticate: Basic realm="git"` like GitHub does; REMOTE_USER is passed to
    /// http-backend when authenticated.
    pub fn start(root: &Path, basic_auth: Option<(&str, &str)>) -> HttpGitServer {
        let exec_path = run(git().arg("--exec-path"), None, "git --exec-path");
        let backend = Path::new(&exec_path).join("git-http-backend");
        assert!(backend.is_file(), "{} is missing", backend.display());
        let root = std::path::absolute(root).expect("absolute path of the repos root");

        // Bound here, before the thread starts, so the port is known and already accepting
        // (into the backlog) when start() returns.
        let listener = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("bind 127.0.0.1:0 for the HTTP git server");
        listener
            .set_nonblocking(true)
            .expect("make the HTTP listener non-blocking (tokio needs it)");
        let port = listener.local_addr().expect("HTTP listener address").port();

        let shared = Arc::new(HttpShared {
            root,
            backend,
            auth: basic_auth.map(|(user, pass)| BasicAuth {
                user: user.to_owned(),
                token: base64(format!("{user}:{pass}").as_bytes()),
            }),
            receive_pack_posts: AtomicUsize::new(0),
            unauthorized: AtomicUsize::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<(), String>>();
        let app = Router::new()
            .fallback(handle_git_http)
            .with_state(shared.clone());

        let thread = std::thread::Builder::new()
            .name(format!("git-http-{port}"))
            .spawn(move || serve_http(listener, app, stop_rx, ready_tx))
            .expect("spawn the HTTP git server thread");
        match ready_rx.recv() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!("HTTP git server did not start: {e}"),
            Err(_) => panic!("HTTP git server thread died before it was ready"),
        }
        HttpGitServer {
            port,
            shared,
            stop,
            thread: Some(thread),
        }
    }

    /// `repo` like "org/repo" -> "http://127.0.0.1:PORT/org/repo.git".
    pub fn url(&self, repo: &str) -> String {
        format!("http://127.0.0.1:{}/{repo}.git", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Number of POST .../git-receive-pack requests that reached http-backend (i.e. pushes
    /// attempted with valid auth).
    pub fn receive_pack_posts(&self) -> usize {
        self.shared.receive_pack_posts.load(Ordering::SeqCst)
    }

    /// Number of requests answered 401.
    pub fn unauthorized(&self) -> usize {
        self.shared.unauthorized.load(Ordering::SeqCst)
    }
}

impl Drop for HttpGitServer {
    fn drop(&mut self) {
        // Err only means the server thread is already gone; join() below tells why.
        let _ = self.stop.send(true);
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                eprintln!(
                    "HttpGitServer on port {}: the server thread panicked",
                    self.port
                );
            }
        }
    }
}

/// Body of the server thread: a private current-thread runtime that serves until `stop` turns
/// true, then shuts down gracefully, but waits at most HTTP_GRACE for open connections.
fn serve_http(
    listener: std::net::TcpListener,
    app: Router,
    stop: watch::Receiver<bool>,
    ready: std::sync::mpsc::Sender<Result<(), String>>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("tokio runtime: {e}")));
            return;
        }
    };
    // A second handle on the listening socket, for shutdown(2) once the server is done. The
    // test process spawns children from many threads, and a child holds a copy of every fd
    // from fork until exec closes it (CLOEXEC): if that window overlaps the listener's close,
    // the port keeps accepting for a moment. shutdown acts on the socket itself, so it stops
    // listening however many copies exist. (Rust has no shutdown for a TcpListener; a
    // TcpStream over the same fd issues the same syscall.)
    let closer = match listener.try_clone() {
        Ok(l) => TcpStream::from(OwnedFd::from(l)),
        Err(e) => {
            let _ = ready.send(Err(format!("dup the listener: {e}")));
            return;
        }
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::from_std(listener) {
            Ok(l) => l,
            Err(e) => {
                let _ = ready.send(Err(format!("tokio listener: {e}")));
                return;
            }
        };
        // Without TCP_NODELAY the CGI header and body writes meet Nagle plus delayed ACK and
        // every request stalls for about 40 ms.
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                eprintln!("HttpGitServer: TCP_NODELAY: {e}");
            }
        });
        let mut graceful = stop.clone();
        let server = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async move {
            // Err = the HttpGitServer was dropped without sending: stop as well.
            let _ = graceful.wait_for(|stop| *stop).await;
        });
        let mut deadline = stop;
        let _ = ready.send(Ok(()));
        tokio::select! {
            result = server.into_future() => {
                if let Err(e) = result {
                    eprintln!("HttpGitServer: {e}");
                }
            }
            _ = async {
                let _ = deadline.wait_for(|stop| *stop).await;
                tokio::time::sleep(HTTP_GRACE).await;
            } => eprintln!("HttpGitServer: connections still open {HTTP_GRACE:?} after stop; dropping them"),
        }
    });
    // The server future, and with it the listener, is gone; see `closer` above.
    let _ = closer.shutdown(Shutdown::Both);
    // Dropping the runtime cancels whatever still runs; http-backend children are killed
    // (kill_on_drop) and reaped by tokio.
}

async fn handle_git_http(
    State(shared): State<Arc<HttpShared>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    request: Request,
) -> Response {
    let remote_user = match &shared.auth {
        None => None,
        Some(auth) if auth.accepts(request.headers()) => Some(auth.user.as_str()),
        Some(_) => {
            shared.unauthorized.fetch_add(1, Ordering::SeqCst);
            return Response::builder()
                .status(StatusCode::UNAUTHORIZED)
                .header(header::WWW_AUTHENTICATE, "Basic realm=\"git\"")
                .header(header::CONTENT_TYPE, "text/plain")
                .body(Body::from("Authentication required\n"))
                .expect("static 401 response");
        }
    };
    let (parts, body) = request.into_parts();
    // The whole body, de-chunked: CGI needs CONTENT_LENGTH, and libgit2 always sends its POSTs
    // with `Transfer-Encoding: chunked`. No size limit (axum's 2 MB default applies only to
    // extractors such as Bytes).
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("reading the body: {e}\n")),
    };
    if parts.method == Method::POST && parts.uri.path().ends_with("/git-receive-pack") {
        shared.receive_pack_posts.fetch_add(1, Ordering::SeqCst);
    }
    match run_http_backend(&shared, &parts, remote_user, peer, body).await {
        Ok(response) => response,
        Err(e) => {
            eprintln!("HttpGitServer: {} {}: {e}", parts.method, parts.uri);
            plain(StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n"))
        }
    }
}

impl BasicAuth {
    fn accepts(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        match value.trim().split_once(' ') {
            Some((scheme, token)) => {
                scheme.eq_ignore_ascii_case("basic") && token.trim() == self.token
            }
            None => false,
        }
    }
}

/// Runs one CGI request through `git http-backend` and turns its output into a response.
/// The response body is returned whole rather than streamed; test repos are small.
async fn run_http_backend(
    shared: &HttpShared,
    parts: &request::Parts,
    remote_user: Option<&str>,
    peer: SocketAddr,
    body: Bytes,
) -> Result<Response, String> {
    let mut cmd = tokio::process::Command::new(&shared.backend);
    // A clean CGI environment; PATH stays because hooks and http-backend's own git children
    // need it.
    cmd.env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("GATEWAY_INTERFACE", "CGI/1.1")
        .env("SERVER_PROTOCOL", "HTTP/1.1")
        .env("GIT_PROJECT_ROOT", &shared.root)
        .env("GIT_HTTP_EXPORT_ALL", "1")
        .env("REQUEST_METHOD", parts.method.as_str())
        .env("PATH_INFO", parts.uri.path())
        .env("QUERY_STRING", parts.uri.query().unwrap_or(""))
        .env("CONTENT_LENGTH", body.len().to_string())
        .env("REMOTE_ADDR", peer.ip().to_string());
    if let Some(content_type) = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    {
        cmd.env("CONTENT_TYPE", content_type);
    }
    if let Some(user) = remote_user {
        cmd.env("REMOTE_USER", user).env("AUTH_TYPE", "Basic");
    }
    // The other headers as HTTP_*, as CGI servers do. This carries HTTP_CONTENT_ENCODING (git
    // gzips large upload-pack requests; http-backend inflates them itself) and HTTP_GIT_PROTOCOL
    // (protocol v2). Headers describing the body we already de-chunked, and the credentials,
    // stay out.
    for (name, value) in &parts.headers {
        if [
            header::CONTENT_TYPE,
            header::CONTENT_LENGTH,
            header::TRANSFER_ENCODING,
            header::AUTHORIZATION,
            header::CONNECTION,
        ]
        .contains(name)
        {
            continue;
        }
        if let Ok(value) = value.to_str() {
            let var = format!(
                "HTTP_{}",
                name.as_str().to_ascii_uppercase().replace('-', "_")
            );
            cmd.env(var, value);
        }
    }
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("spawn {}: {e}", shared.backend.display()))?;
    let mut stdin = child.stdin.take().expect("piped stdin");
    // Written concurrently with reading the output, so neither pipe can fill up and block.
    // A write error only means http-backend stopped reading (e.g. it answered 403 at once).
    let writer = tokio::spawn(async move {
        let _ = stdin.write_all(&body).await;
    });
    let output = child
        .wait_with_output()
        .await
        .map_err(|e| format!("wait for http-backend: {e}"))?;
    let _ = writer.await;
    if !output.stderr.is_empty() {
        eprintln!(
            "git http-backend ({} {}): {}",
            parts.method,
            parts.uri,
            String::from_utf8_lossy(&output.stderr).trim_end()
        );
    }
    cgi_response(&output.stdout).map_err(|e| format!("http-backend ({}): {e}", output.status))
}

/// Parses CGI output: header lines, a blank line, the body. `Status: 403 Forbidden` sets the
/// status (default 200); the other headers are copied.
fn cgi_response(out: &[u8]) -> Result<Response, String> {
    let mut builder = Response::builder();
    let mut status = StatusCode::OK;
    let mut pos = 0;
    loop {
        let Some(newline) = out[pos..].iter().position(|&b| b == b'\n') else {
            return Err("output ended inside the CGI headers".into());
        };
        let line = &out[pos..pos + newline];
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        pos += newline + 1;
        if line.is_empty() {
            break;
        }
        let text = String::from_utf8_lossy(line);
        let Some((name, value)) = text.split_once(':') else {
            return Err(format!("bad CGI header line {text:?}"));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("status") {
            let code = value.split_whitespace().next().unwrap_or_default();
            status = code
                .parse::<u16>()
                .ok()
                .and_then(|c| StatusCode::from_u16(c).ok())
                .ok_or_else(|| format!("bad CGI Status {value:?}"))?;
        } else {
            let name = HeaderName::from_bytes(name.trim().as_bytes())
                .map_err(|e| format!("bad CGI header name {name:?}: {e}"))?;
            let value = HeaderValue::from_str(value)
                .map_err(|e| format!("bad CGI header value {value:?}: {e}"))?;
            builder = builder.header(name, value);
        }
    }
    builder
        .status(status)
        .body(Body::from(out[pos..].to_vec()))
        .map_err(|e| format!("building the response: {e}"))
}

fn plain(status: StatusCode, text: String) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(Body::from(text))
        .expect("plain-text response")
}

/// Standard base64 with padding (RFC 4648), enough for a basic-auth token.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | (b as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// sshd on 127.0.0.1:<free port> with its own ed25519 host key, logging in as the invoking
/// user, whose authorized_keys lines carry a forced command (tests/support/git-ssh-cmd) that
/// behaves like GitHub deploy keys.
pub struct SshGitServer {
    sshd: Child,
    port: u16,
    user: String,
    repos_root: PathBuf,
    authorized_keys: PathBuf,
    /// "ssh-ed25519 AAAA..." (no comment).
    host_public_key: String,
    host_key_sha256: String,
}

impl SshGitServer {
    /// None (caller skips the test with a printed reason) when /usr/sbin/sshd or ssh-keygen is
    /// missing. All state under `dir`; repos served from `repos_root` so
    /// `ssh://USER@127.0.0.1:PORT/org/repo.git` maps to repos_root/org/repo.git. Waits until the
    /// port accepts connections. Kills sshd on Drop (zombie-aware, fast).
    pub fn start(dir: &Path, repos_root: &Path) -> Option<SshGitServer> {
        if !Path::new(SSHD).is_file() {
            eprintln!(
                "SshGitServer: {SSHD} is missing (scripts/test-deps.sh installs openssh-server)"
            );
            return None;
        }
        if !on_path("ssh-keygen") {
            eprintln!("SshGitServer: ssh-keygen is not on PATH (scripts/test-deps.sh installs it)");
            return None;
        }
        let forced = git_ssh_cmd_path();
        let mode = std::fs::metadata(&forced)
            .unwrap_or_else(|e| panic!("{}: {e}", forced.display()))
            .permissions()
            .mode();
        assert!(
            mode & 0o111 != 0,
            "{} must be executable (chmod +x)",
            forced.display()
        );

        let dir = std::path::absolute(dir).expect("absolute path of the sshd directory");
        let repos_root = std::path::absolute(repos_root).expect("absolute path of the repos root");
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
        std::fs::create_dir_all(&repos_root)
            .unwrap_or_else(|e| panic!("create {}: {e}", repos_root.display()));
        // sshd's privilege separation directory; sshd refuses to start as root without it.
        // As non-root it is not needed (and cannot be created), so the error is ignored.
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = run(Command::new("id").arg("-un"), None, "id -un");

        let host_key = dir.join("ssh_host_ed25519_key");
        let host_pub = dir.join("ssh_host_ed25519_key.pub");
        // ssh-keygen asks before overwriting; a fresh key per start.
        let _ = std::fs::remove_file(&host_key);
        let _ = std::fs::remove_file(&host_pub);
        run(
            Command::new("ssh-keygen")
                .args([
                    "-q",
                    "-t",
                    "ed25519",
                    "-N",
                    "",
                    "-C",
                    "git-servers-host",
                    "-f",
                ])
                .arg(&host_key),
            None,
            "ssh-keygen (host key)",
        );
        let host_public_key = {
            let line = std::fs::read_to_string(&host_pub).expect("read the host public key");
            let mut fields = line.split_whitespace();
            match (fields.next(), fields.next()) {
                (Some(kind), Some(blob)) => format!("{kind} {blob}"),
                _ => panic!("unexpected host public key {line:?}"),
            }
        };
        let fingerprint = run(
            Command::new("ssh-keygen")
                .args(["-l", "-E", "sha256", "-f"])
                .arg(&host_pub),
            None,
            "ssh-keygen -l",
        );
        // "256 SHA256:... comment (ED25519)"
        let host_key_sha256 = fingerprint
            .split_whitespace()
            .nth(1)
            .filter(|f| f.starts_with("SHA256:"))
            .unwrap_or_else(|| panic!("unexpected ssh-keygen -l output {fingerprint:?}"))
            .to_owned();

        let authorized_keys = dir.join("authorized_keys");
        std::fs::write(&authorized_keys, "").expect("create authorized_keys");

        // Free port: bind :0, read it, release it for sshd. If another process takes it in
        // between, sshd exits and the wait below reports it.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("find a free port for sshd")
            .port();
        let config = dir.join("sshd_config");
        let mut text = format!(
            "ListenAddress 127.0.0.1:{port}\n\
             HostKey \"{host_key}\"\n\
             PidFile none\n\
             AuthorizedKeysFile \"{authorized_keys}\"\n\
             AllowUsers {user}\n\
             PermitRootLogin prohibit-password\n\
             PubkeyAuthentication yes\n\
             PasswordAuthentication no\n\
             KbdInteractiveAuthentication no\n\
             UsePAM no\n\
             StrictModes no\n\
             AcceptEnv GIT_PROTOCOL\n\
             MaxStartups 64\n\
             LogLevel VERBOSE\n",
            host_key = host_key.display(),
            authorized_keys = authorized_keys.display(),
        );
        std::fs::write(&config, &text).expect("write sshd_config");
        // `sshd -T` validates the config and prints the effective one. OpenSSH >= 9.8 also
        // penalises sources whose connections fail or close before auth (the port probe below,
        // tests with a wrong key), and would soon refuse 127.0.0.1: switch that off where it
        // exists (older sshd rejects the keyword).
        let effective = run(
            Command::new(SSHD).arg("-T").arg("-f").arg(&config),
            None,
            "sshd -T (config check)",
        );
        if effective
            .lines()
            .any(|l| l.starts_with("persourcepenalties "))
        {
            text.push_str("PerSourcePenalties no\n");
            std::fs::write(&config, &text).expect("write sshd_config");
        }

        let log_path = dir.join("sshd.log");
        let log = std::fs::File::create(&log_path).expect("create sshd.log");
        // Absolute path: sshd re-executes itself. -D: stay in the foreground (so this Child is
        // sshd itself), -e: log to stderr.
        let sshd = Command::new(SSHD)
            .arg("-D")
            .arg("-e")
            .arg("-f")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {SSHD}: {e}"));
        let mut server = SshGitServer {
            sshd,
            port,
            user,
            repos_root,
            authorized_keys,
            host_public_key,
            host_key_sha256,
        };
        server.wait_until_serving(&log_path);
        Some(server)
    }

    /// Polls until sshd sends its version banner; panics with its log if it exits or is too slow.
    fn wait_until_serving(&mut self, log_path: &Path) {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        let deadline = Instant::now() + Duration::from_secs(10);
        let log = || std::fs::read_to_string(log_path).unwrap_or_default();
        loop {
            if let Ok(mut tcp) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) {
                // The banner proves it is our sshd on the port, not someone else.
                let _ = tcp.set_read_timeout(Some(Duration::from_secs(2)));
                let mut banner = [0u8; 8];
                if tcp.read_exact(&mut banner).is_ok() && banner.starts_with(b"SSH-2.0-") {
                    return;
                }
            }
            match self.sshd.try_wait() {
                Ok(Some(status)) => panic!("sshd exited ({status}) during start:\n{}", log()),
                Ok(None) => {}
                Err(e) => panic!("waiting for sshd: {e}"),
            }
            if Instant::now() > deadline {
                panic!(
                    "sshd did not answer on port {} in 10 s:\n{}",
                    self.port,
                    log()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// "ssh://USER@127.0.0.1:PORT/org/repo.git" for `repo` like "org/repo".
    pub fn url(&self, repo: &str) -> String {
        format!("{}{repo}.git", self.url_prefix())
    }

    /// "ssh://USER@127.0.0.1:PORT/"
    pub fn url_prefix(&self) -> String {
        format!("ssh://{}@127.0.0.1:{}/", self.user, self.port)
    }

    /// "SHA256:..." as `ssh-keygen -l -E sha256` prints it.
    pub fn host_key_sha256(&self) -> String {
        self.host_key_sha256.clone()
    }

    /// "[127.0.0.1]:PORT ssh-ed25519 AAAA...\n"
    pub fn known_hosts(&self) -> String {
        format!("[127.0.0.1]:{} {}\n", self.port, self.host_public_key)
    }

    pub fn authorized_keys_path(&self) -> PathBuf {
        self.authorized_keys.clone()
    }

    /// Absolute path of tests/support/git-ssh-cmd.
    pub fn git_ssh_cmd(&self) -> PathBuf {
        git_ssh_cmd_path()
    }

    /// Appends `command="<git-ssh-cmd> <repos_root> '<pattern>' rw|ro",restrict <public key>`;
    /// pattern is a shell glob over "org/repo.git" ('*' = all). sshd reads authorized_keys at
    /// every login, so this works while the server runs.
    pub fn authorize(&self, public_key_openssh: &str, repo_pattern: &str, read_write: bool) {
        let key = public_key_openssh.trim();
        assert!(
            !key.is_empty() && !key.contains('\n'),
            "authorize takes exactly one OpenSSH public key line, got {key:?}"
        );
        assert!(
            !repo_pattern.contains(['\'', '"', '\n']),
            "repo pattern {repo_pattern:?} must not contain quotes or newlines"
        );
        // sshd runs the command with the user's shell; the pattern is single-quoted so that the
        // shell does not expand '*' against $HOME.
        let line = format!(
            "command=\"{} {} '{repo_pattern}' {}\",restrict {key}\n",
            shell_quote(&self.git_ssh_cmd()),
            shell_quote(&self.repos_root),
            if read_write { "rw" } else { "ro" },
        );
        // One short O_APPEND write, so a concurrent login never sees half a line.
        OpenOptions::new()
            .append(true)
            .open(&self.authorized_keys)
            .and_then(|mut f| f.write_all(line.as_bytes()))
            .unwrap_or_else(|e| panic!("append to {}: {e}", self.authorized_keys.display()));
    }
}

impl Drop for SshGitServer {
    fn drop(&mut self) {
        let pid = self.sshd.id();
        // Processes left behind by sshd (killed after the listener) are re-parented to PID 1,
        // which in this sandbox reaps slowly: they linger as zombies for seconds. So the
        // per-connection processes are ended while the listener still lives to reap them.
        //
        // 1. Connections that are just closing (the client already exited) end by themselves
        //    within milliseconds.
        if !wait_until(Duration::from_millis(100), || descendants(pid).is_empty()) {
            // 2. Sessions still open: kill their innermost processes (git). Each parent is
            //    alive to reap its child, and an sshd session whose command died closes itself.
            let tree = descendants(pid);
            kill(
                tree.iter()
                    .filter(|&&(p, _)| !tree.iter().any(|&(_, parent)| parent == p))
                    .map(|&(p, _)| p),
            );
            wait_until(Duration::from_millis(300), || descendants(pid).is_empty());
        }
        // 3. Whatever is still there goes now, with sshd.
        let rest: Vec<u32> = descendants(pid).into_iter().map(|(p, _)| p).collect();
        kill(rest.iter().copied());
        // SIGKILL: with -D and PidFile none, sshd has nothing to clean up. wait() reaps it at
        // once, so sshd itself never lingers as a zombie.
        let _ = self.sshd.kill();
        let _ = self.sshd.wait();
        // Orphans of step 3 may stay zombies (state Z) for a while: count them as gone.
        wait_until(Duration::from_secs(2), || {
            rest.iter()
                .all(|&p| matches!(proc_state(p), None | Some('Z')))
        });
    }
}

/// Polls `done` every 5 ms until it holds or `limit` has passed; returns whether it held.
fn wait_until(limit: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if done() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// SIGKILL to the given processes (the `kill` utility: std has no kill(2) for arbitrary pids).
fn kill(pids: impl Iterator<Item = u32>) {
    let pids: Vec<String> = pids.map(|p| p.to_string()).collect();
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(&pids)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn git_ssh_cmd_path() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/support/git-ssh-cmd"
    ))
}

/// `git` isolated from the caller's environment: no GIT_DIR & co. (tests may run inside a
/// checkout or a hook), no system or global config.
fn git() -> Command {
    let mut cmd = Command::new("git");
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
        "GIT_CONFIG",
        "GIT_CONFIG_PARAMETERS",
        "GIT_CONFIG_COUNT",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null");
    cmd
}

fn git_in(repo: &Path) -> Command {
    let mut cmd = git();
    cmd.arg("-C").arg(repo);
    cmd
}

/// Runs a setup command to completion; panics with its stderr if it fails. Returns stdout,
/// trimmed.
fn run(cmd: &mut Command, stdin: Option<&[u8]>, what: &str) -> String {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap_or_else(|e| panic!("{what}: spawn: {e}"));
    if let Some(input) = stdin {
        // Small inputs only (they fit in the pipe), so writing before reading cannot block.
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(input)
            .unwrap_or_else(|e| panic!("{what}: write stdin: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("{what}: wait: {e}"));
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim_end()
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

/// Single-quotes a path for sh when it holds anything beyond plain path characters.
fn shell_quote(path: &Path) -> String {
    let s = path.to_str().expect("test paths are UTF-8");
    assert!(
        !s.contains(['"', '\n']),
        "path {s:?} cannot go into an authorized_keys command"
    );
    if s.chars()
        .all(|c| c.is_ascii_alphanumeric() || "/._-+:@,=".contains(c))
    {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The state letter of a process (R, S, Z, ...), None when it no longer exists.
fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // "pid (comm) S ppid ...": comm may hold spaces and parentheses, so split after the last ')'.
    stat.rsplit_once(')')?.1.trim_start().chars().next()
}

/// All living (not zombie) descendants of `root` as (pid, parent pid), from /proc.
fn descendants(root: u32) -> Vec<(u32, u32)> {
    let mut all = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            // "pid (comm) S ppid ...", split after the last ')' as in proc_state.
            let mut fields = stat
                .rsplit_once(')')
                .map(|(_, rest)| rest.split_whitespace());
            let state = fields.as_mut().and_then(|f| f.next());
            let ppid = fields
                .as_mut()
                .and_then(|f| f.next())
                .and_then(|p| p.parse::<u32>().ok());
            if let (Some(state), Some(ppid)) = (state, ppid) {
                if state != "Z" {
                    all.push((pid, ppid));
                }
            }
        }
    }
    let mut found: Vec<(u32, u32)> = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, ppid) in &all {
            if ppid == parent {
                found.push((pid, ppid));
                parents.push(pid);
            }
        }
    }
    found
}
