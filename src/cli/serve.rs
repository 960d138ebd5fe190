//! `sealwright serve`, `sealwright reconcile --once` and `sealwright doctor`: assemble the
//! reconciler from the configuration file and the data directory, then serve the API, run one
//! round, or check everything without changing anything.
//!
//! The data directory of the embedded default:
//! `keys/` (app keys, `_operator.agekey`, and `cluster.agekey` when no cluster recipient is
//! configured), `repos/<owner>/<name>.git` (the local Git host), `state.git` (the state repo),
//! `cache/` (the Git engine's bare caches) and `events.jsonl` (the audit log).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};

use super::exit_code;
use crate::api::{self, auth::AdminTokens, ApiState};
use crate::audit::EventLog;
use crate::config::serve::{HostConfig, ServeConfig};
use crate::gate::WriteGate;
use crate::git::{GitEngine, Identity, Remote};
use crate::host::{GitHost, GitHub, GitHubConfig, LocalHost, RepoRef};
use crate::keys::chain::ChainRecipients;
use crate::keys::secrets::SecretKeyStore;
use crate::keys::{FileKeyStore, KeyStore};
use crate::model::Cluster;
use crate::reconcile::{Access, FluxUrl, Reconciler, Settings};
use crate::render::Templates;

#[derive(Args)]
pub struct ServeArgs {
    /// The configuration file (see examples/quickstart.yaml).
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    /// Where keys, local repositories, caches and the event log live (overrides data_dir).
    #[arg(long, value_name = "DIR", env = "SEALWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// The address to serve the API on (overrides listen).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
}

#[derive(Args)]
pub struct ReconcileArgs {
    /// Run one full round and exit (the only mode without a server).
    #[arg(long, required = true)]
    pub once: bool,
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long, value_name = "DIR", env = "SEALWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

#[derive(Args)]
pub struct DoctorArgs {
    #[arg(long, value_name = "FILE")]
    pub config: PathBuf,
    #[arg(long, value_name = "DIR", env = "SEALWRIGHT_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
}

pub(super) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("sealwright")
        .build()
        .context("start the async runtime")
}

pub fn run_serve(a: ServeArgs) -> i32 {
    exit_code(runtime().and_then(|rt| rt.block_on(serve(a))))
}

pub fn run_reconcile(a: ReconcileArgs) -> i32 {
    exit_code(runtime().and_then(|rt| rt.block_on(reconcile_once(a))))
}

pub fn run_doctor(a: DoctorArgs) -> i32 {
    exit_code(runtime().and_then(|rt| rt.block_on(doctor(a))))
}

fn default_data_dir() -> anyhow::Result<PathBuf> {
    let base = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(
            std::env::var_os("HOME").ok_or_else(|| anyhow!("HOME is not set; pass --data-dir"))?,
        )
        .join(".local/share"),
    };
    Ok(base.join("sealwright"))
}

/// Everything a command needs, built from the configuration.
pub(super) struct Assembly {
    pub(super) config: ServeConfig,
    pub(super) data_dir: PathBuf,
    pub(super) reconciler: Reconciler,
    /// Set when the embedded default plays the cluster (no recipient configured).
    cluster_key: Option<(PathBuf, String, bool)>,
    /// Controller mode: the cluster's client and the write gate its Lease opens.
    controller: Option<ControllerParts>,
}

struct ControllerParts {
    client: kube::Client,
    gate: Arc<WriteGate>,
}

pub(super) async fn assemble(
    config_path: &Path,
    data_dir: Option<PathBuf>,
    listen: Option<SocketAddr>,
) -> anyhow::Result<Assembly> {
    let config = ServeConfig::load(config_path)?;
    let data_dir = match data_dir.or_else(|| config.data_dir.clone()) {
        Some(d) => d,
        None => default_data_dir()?,
    };
    // Everything sealwright creates from here on (keys, repositories, caches, the event log) is
    // its own alone: folders 0700, files 0600, whatever created them (libgit2 included).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    std::fs::create_dir_all(&data_dir)
        .with_context(|| format!("create the data dir {}", data_dir.display()))?;
    for dir in ["", "keys", "repos", "cache", "state.git"] {
        let d = data_dir.join(dir);
        if d.is_dir() {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700))
                .with_context(|| format!("make {} private (0700)", d.display()))?;
        }
    }
    let keys_dir = data_dir.join("keys");
    let controller = match &config.controller {
        Some(c) => Some(ControllerParts {
            client: crate::controller::client(c).await?,
            gate: Arc::new(WriteGate::closed()),
        }),
        None => None,
    };
    let store: Arc<dyn KeyStore> = match (&controller, &config.controller) {
        (Some(parts), Some(c)) => Arc::new(
            SecretKeyStore::open(parts.client.clone(), &c.namespace)
                .await
                .context("open the key store (Secrets in the operator's namespace)")?,
        ),
        _ => {
            let files = FileKeyStore::new(&keys_dir);
            // The operator key encrypts sealwright's own state; make sure it exists from the start.
            files.operator_key()?;
            Arc::new(files)
        }
    };
    let (recipient, cluster_key) = match &config.cluster.recipient {
        Some(r) => (r.clone(), None),
        None => {
            let path = keys_dir.join("cluster.agekey");
            let existed = path.exists();
            let key = crate::keys::get_or_create_identity(&path, "cluster")?;
            (key.recipient(), Some((path, key.recipient(), !existed)))
        }
    };
    let cluster = Cluster {
        name: config.cluster.name.clone(),
        recipients: ChainRecipients {
            cluster: recipient,
            break_glass: config.cluster.break_glass_recipient.clone(),
        },
        flux_namespace: config.cluster.flux_namespace.clone(),
        flux_source: config.cluster.flux_source.clone(),
        decryption_secret: config.cluster.decryption_secret.clone(),
    };
    crate::model::DesiredState {
        cluster: cluster.clone(),
        apps: Vec::new(),
    }
    .validate()
    .with_context(|| format!("config {}", config.path.display()))?;
    let templates = Arc::new(Templates::load(config.templates_dir.as_deref())?);
    let (host, access, flux_url): (Arc<dyn GitHost>, Access, FluxUrl) = match &config.host {
        HostConfig::Local {
            flux_url,
            repos_dir,
            ..
        } => (
            Arc::new(LocalHost::new(
                repos_dir.clone().unwrap_or_else(|| data_dir.join("repos")),
            )),
            Access::Local,
            FluxUrl::Template(flux_url.clone()),
        ),
        HostConfig::GitHub {
            api_url,
            known_hosts,
            user,
            min_write_interval,
            ..
        } => {
            let token = std::env::var("SEALWRIGHT_GITHUB_TOKEN")
                .ok()
                .filter(|t| !t.is_empty())
                .ok_or_else(|| {
                    anyhow!("host.kind is github: set SEALWRIGHT_GITHUB_TOKEN to a token that can create repositories in {}", config.host.owner())
                })?;
            let token = SecretString::from(token);
            let mut gh = GitHubConfig::new(api_url, token.clone());
            gh.user = user.clone();
            gh.min_write_interval = *min_write_interval;
            let gh = GitHub::new(gh)?;
            (
                Arc::new(gh),
                Access::Token(token),
                FluxUrl::HostSsh {
                    known_hosts: known_hosts.clone(),
                },
            )
        }
    };
    let mut credentials = config.credentials.clone();
    if let (Some(l), false) = (listen, config.api_url_explicit) {
        // The tokens' issuer is where this server really listens, not the file's default.
        let scheme = if config.tls.is_some() {
            "https"
        } else {
            "http"
        };
        credentials.api_url = format!("{scheme}://{l}");
    }
    crate::config::serve::credentials_from_env(&mut credentials, |k| std::env::var(k).ok())
        .with_context(|| format!("config {}", config.path.display()))?;
    if credentials.enabled {
        // Pull requests wait for a reviewer; the poll interval is the least that adds.
        let review = match config.host {
            HostConfig::GitHub { .. } => config.pull_request_poll_interval,
            HostConfig::Local { .. } => Duration::ZERO,
        };
        let warnings = credentials
            .check(review)
            .with_context(|| format!("config {}", config.path.display()))?;
        for w in warnings {
            eprintln!("sealwright: warning: {w}");
        }
    }
    let state_remote = match &config.state_repo {
        None => {
            let state_path = data_dir.join("state.git");
            ensure_bare(&state_path)?;
            Remote::local(&state_path)?
        }
        Some(name) => {
            let repo = RepoRef::parse(name)?;
            let hosted = host
                .ensure_repo(
                    &repo,
                    "sealwright's state: registrations, deployments, API keys",
                )
                .await
                .with_context(|| format!("state_repo {name}"))?;
            access.remote(&hosted.push_url, &hosted.clone_url)?
        }
    };
    let settings = Settings {
        cluster,
        templates,
        owner: config.host.owner().to_owned(),
        branch: config.branch.clone(),
        flux_repo: RepoRef::parse(&config.flux_repo)?,
        flux_url,
        access,
        state_remote: Arc::new(state_remote),
        state_repo: config.state_repo.clone(),
        author: Identity::new("sealwright", "sealwright@localhost")?,
        max_backoff: config.max_backoff,
        credentials,
        clock: Arc::new(crate::clock::SystemClock),
        boundary: config.boundary.clone(),
        policy: config.policy.clone(),
        entropy: crate::random::Entropy::os(),
    };
    let mut engine = GitEngine::new(
        data_dir.join("cache"),
        Identity::new("sealwright", "sealwright@localhost")?,
    );
    if let Some(parts) = &controller {
        engine = engine.with_gate(parts.gate.clone());
    }
    let events = Arc::new(EventLog::open(&data_dir.join("events.jsonl"))?);
    let reconciler = Reconciler::new(settings, engine, host, store, events);
    Ok(Assembly {
        config,
        data_dir,
        reconciler,
        cluster_key,
        controller,
    })
}

fn ensure_bare(path: &Path) -> anyhow::Result<()> {
    if git2::Repository::open_bare(path).is_ok() {
        return Ok(());
    }
    let mut o = git2::RepositoryInitOptions::new();
    o.bare(true).initial_head("main").mkdir(true);
    git2::Repository::init_opts(path, &o)
        .map(|_| ())
        .with_context(|| format!("create the state repo {}", path.display()))
}

/// Loads state, applies the registrations directory and runs the first full round.
async fn start(a: &Assembly) -> anyhow::Result<()> {
    a.reconciler.load().await.context("load the state repo")?;
    if let Some(dir) = &a.config.registrations_dir {
        let r = crate::watch::sync_registrations(&a.reconciler, dir).await;
        for p in &r.problems {
            eprintln!("sealwright: registrations: {p}");
        }
    }
    let report = a.reconciler.reconcile_all(true).await;
    if !report.failed.is_empty() {
        eprintln!(
            "sealwright: first round: {} of {} apps failed (see GET /v1/apps): {}",
            report.failed.len(),
            report.apps,
            report.failed.join(", ")
        );
    }
    Ok(())
}

async fn serve(a: ServeArgs) -> anyhow::Result<()> {
    let asm = assemble(&a.config, a.data_dir, a.listen).await?;
    let listen: SocketAddr = match a.listen {
        Some(l) => l,
        None => asm.config.listen.parse()?,
    };
    println!("sealwright: data dir {}", asm.data_dir.display());
    if let Some((path, recipient, created)) = &asm.cluster_key {
        println!(
            "sealwright: no cluster recipient configured, so this server plays the cluster: its private key {} {} ({recipient}); in a real cluster only Flux holds it",
            if *created { "was created at" } else { "is at" },
            path.display()
        );
    }
    let admin = match std::env::var("SEALWRIGHT_ADMIN_TOKEN")
        .ok()
        .filter(|t| !t.is_empty())
    {
        Some(t) if t.chars().count() < api::auth::MIN_ADMIN_TOKEN => {
            bail!(
                "SEALWRIGHT_ADMIN_TOKEN is {} characters; an admin token needs at least {} (unset it to have one made)",
                t.chars().count(),
                api::auth::MIN_ADMIN_TOKEN
            )
        }
        Some(t) if t.chars().any(char::is_whitespace) => {
            bail!("SEALWRIGHT_ADMIN_TOKEN holds whitespace; a bearer token cannot carry it")
        }
        Some(t) => SecretString::from(t),
        None => {
            let t = api::auth::generate_admin_token();
            println!(
                "sealwright: admin token for this run (shown once; set SEALWRIGHT_ADMIN_TOKEN to choose one): {}",
                t.expose_secret()
            );
            t
        }
    };
    let tcp = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listen on {listen}"))?;
    let tls = match &asm.config.tls {
        Some(t) => Some(Arc::new(
            crate::tls::ReloadingConfig::new(t.clone())
                .with_context(|| format!("config {}", asm.config.path.display()))?,
        )),
        None => None,
    };
    if tls.is_none() && !listen.ip().is_loopback() {
        tracing::warn!(%listen, "serving plain HTTP on a non-loopback address: tokens and secret values cross the network unencrypted; configure tls: {{cert, key}}");
        eprintln!(
            "sealwright: WARNING: serving plain HTTP on {listen}, which is not a loopback address: tokens and secret values cross the network unencrypted. Configure tls: {{cert, key}} (README, \"TLS\")."
        );
    }
    let ready = Arc::new(AtomicBool::new(false));
    let state = ApiState {
        reconciler: asm.reconciler.clone(),
        admins: Arc::new(AdminTokens::new(&[admin])),
        ready: ready.clone(),
        http: Arc::new(api::HttpMetrics::default()),
        webhook_secret: std::env::var("SEALWRIGHT_WEBHOOK_SECRET")
            .ok()
            .filter(|t| !t.is_empty())
            .map(|t| Arc::new(SecretString::from(t))),
        refusals: Default::default(),
        mirror: asm
            .controller
            .as_ref()
            .map(|c| Arc::new(crate::controller::SecretMirror::new(c.client.clone()))),
        client_certs: asm
            .config
            .tls
            .as_ref()
            .filter(|t| t.client_ca.is_some())
            .map(|t| {
                Arc::new(api::ClientCertPolicy {
                    auth: t.client_auth,
                    identities: t.client_identities.clone(),
                })
            }),
        cors_origins: Arc::new(asm.config.cors_origins.clone()),
    };
    let api_router = api::router(state.clone());
    let dashboard = crate::ui::Ui::new(
        state,
        api_router.clone(),
        asm.config.templates_dir.as_deref(),
    )
    .with_context(|| format!("config {}", asm.config.path.display()))?;
    let app = api_router.merge(dashboard.router());
    let local = tcp.local_addr()?;
    // Serve /healthz and /readyz (503) while start-up runs.
    let mut server = match tls {
        Some(tls) => {
            println!("sealwright: listening on https://{local} (dashboard: https://{local}/ui/)");
            let listener = crate::tls::TlsListener::spawn(tcp, tls)?;
            tokio::spawn(async move {
                axum::serve(
                    listener,
                    app.into_make_service_with_connect_info::<crate::tls::Peer>(),
                )
                .with_graceful_shutdown(shutdown_signal())
                .await
            })
        }
        None => {
            println!("sealwright: listening on http://{local} (dashboard: http://{local}/ui/)");
            tokio::spawn(async move {
                axum::serve(
                    crate::tls::PlainListener(tcp),
                    app.into_make_service_with_connect_info::<crate::tls::Peer>(),
                )
                .with_graceful_shutdown(shutdown_signal())
                .await
            })
        }
    };
    // Controller mode: only the Lease's holder writes, so a standby waits here (not ready).
    let elector = match (&asm.controller, &asm.config.controller) {
        (Some(parts), Some(c)) => {
            let identity = pod_identity();
            let e = Arc::new(crate::controller::Elector::new(
                parts.client.clone(),
                &c.namespace,
                &c.lease_name,
                &identity,
                c.lease_duration,
                c.lease_grace,
                parts.gate.clone(),
            ));
            println!(
                "sealwright: controller mode: standing by for the lease {}/{} as {identity}",
                c.namespace, c.lease_name
            );
            tokio::select! {
                _ = e.acquire() => {}
                served = &mut server => return finish(served),
            }
            println!("sealwright: leading as {identity}");
            Some(e)
        }
        _ => None,
    };
    start(&asm).await?;
    ready.store(true, std::sync::atomic::Ordering::Release);
    println!("sealwright: ready");
    let _watcher = match &asm.config.registrations_dir {
        Some(dir) => Some(
            crate::watch::spawn_watcher(asm.reconciler.clone(), dir.clone())
                .with_context(|| format!("watch {}", dir.display()))?,
        ),
        None => None,
    };
    let rounds = {
        let r = asm.reconciler.clone();
        let every = asm.config.resync_interval;
        let poll_every = asm.config.pull_request_poll_interval;
        tokio::spawn(async move {
            let mut full = tokio::time::interval(every);
            full.tick().await;
            let mut retry = tokio::time::interval(Duration::from_secs(2));
            // The fallback for webhooks that never arrive.
            let mut poll = tokio::time::interval(poll_every);
            poll.tick().await;
            // Tokens are minted again when due; the tick is a small part of the interval.
            let mut refresh = tokio::time::interval(r.refresh_tick());
            refresh.tick().await;
            loop {
                tokio::select! {
                    _ = full.tick() => { r.reconcile_all(true).await; }
                    _ = retry.tick() => { r.retry_failed().await; }
                    _ = poll.tick() => { r.poll_pull_requests().await; }
                    _ = refresh.tick() => {
                        let report = r.refresh_credentials(false).await;
                        if report.minted > 0 || !report.failed.is_empty() {
                            tracing::info!(minted = report.minted, apps = report.apps, failed = report.failed.len(), "credentials refreshed");
                        }
                    }
                }
            }
        })
    };
    let controllers = match (&asm.controller, &asm.config.controller, &elector) {
        (Some(parts), Some(c), Some(e)) => {
            let ctx = crate::controller::Context::new(
                parts.client.clone(),
                asm.reconciler.clone(),
                c.clone(),
                e.identity(),
            );
            Some(tokio::spawn(crate::controller::run(ctx)))
        }
        _ => None,
    };
    let served = match &elector {
        Some(e) => tokio::select! {
            served = &mut server => {
                // A clean stop hands the Lease over at once rather than after it expires.
                e.release().await;
                served
            }
            _ = e.hold() => {
                ready.store(false, std::sync::atomic::Ordering::Release);
                rounds.abort();
                bail!("lost the lease: this replica wrote nothing since, and exits so that its restart stands by");
            }
        },
        None => server.await,
    };
    rounds.abort();
    if let Some(c) = controllers {
        c.abort();
    }
    finish(served)
}

fn finish(served: Result<std::io::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match served {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(e).context("serve"),
        Err(e) => bail!("the server task ended: {e}"),
    }
}

/// This replica's name on the Lease: the pod's name (`POD_NAME`, from the downward API), else
/// the host name, with the process id so two processes on one host differ.
fn pod_identity() -> String {
    match std::env::var("POD_NAME").ok().filter(|n| !n.is_empty()) {
        Some(n) => n,
        None => format!(
            "{}-{}",
            rustix::system::uname().nodename().to_string_lossy(),
            std::process::id()
        ),
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}

async fn reconcile_once(a: ReconcileArgs) -> anyhow::Result<()> {
    let asm = assemble(&a.config, a.data_dir, None).await?;
    asm.reconciler.load().await.context("load the state repo")?;
    if let Some(dir) = &asm.config.registrations_dir {
        let r = crate::watch::sync_registrations(&asm.reconciler, dir).await;
        for p in &r.problems {
            eprintln!("sealwright: registrations: {p}");
        }
    }
    let report = asm.reconciler.reconcile_all(true).await;
    println!(
        "reconciled {} apps: {} commits{}",
        report.apps,
        report.commits,
        if report.failed.is_empty() {
            String::new()
        } else {
            format!(", failed: {}", report.failed.join(", "))
        }
    );
    if report.failed.is_empty() {
        Ok(())
    } else {
        bail!("{} failed", report.failed.join(", "))
    }
}

async fn doctor(a: DoctorArgs) -> anyhow::Result<()> {
    let mut failures = 0;
    let mut check = |what: &str, r: anyhow::Result<String>| match r {
        Ok(detail) => println!("ok    {what}: {detail}"),
        Err(e) => {
            failures += 1;
            println!("FAIL  {what}: {e:#}");
        }
    };
    let asm = match assemble(&a.config, a.data_dir, None).await {
        Ok(x) => {
            check("config", Ok(format!("{}", x.config.path.display())));
            x
        }
        Err(e) => {
            check("config", Err(e));
            bail!("1 check failed");
        }
    };
    check(
        "keys",
        (|| {
            let store = FileKeyStore::new(asm.data_dir.join("keys"));
            let op = store.operator_key()?;
            Ok(format!("operator key {}", op.recipient()))
        })(),
    );
    let r = &asm.reconciler;
    check(
        "state repo",
        r.load()
            .await
            .map(|_| {
                format!(
                    "{} apps, {} API keys",
                    r.list_apps().len(),
                    r.api_keys(None).len()
                )
            })
            .map_err(Into::into),
    );
    check("external secrets", r.check_external().map_err(Into::into));
    if let Some(dir) = &asm.config.registrations_dir {
        check(
            "registrations",
            crate::watch::read_dir(dir)
                .map_err(anyhow::Error::from)
                .and_then(|(specs, problems)| {
                    if problems.is_empty() {
                        Ok(format!("{} files in {}", specs.len(), dir.display()))
                    } else {
                        Err(anyhow!(problems.join("; ")))
                    }
                }),
        );
    }
    check(
        "host and flux repo",
        r.check_host().await.map_err(Into::into),
    );
    for app in r.list_apps() {
        let detail = if app.errors.is_empty() {
            Ok(format!("repo {}", app.repo))
        } else {
            Err(anyhow!(app
                .errors
                .iter()
                .map(|e| e.message.clone())
                .collect::<Vec<_>>()
                .join("; ")))
        };
        check(&format!("app {}", app.spec.name), detail);
    }
    if failures > 0 {
        bail!("{failures} check(s) failed");
    }
    Ok(())
}
