//! The server's configuration file (`sealwright serve --config FILE`, `reconcile --once`,
//! `doctor`): the cluster, the Git host and its repositories, the registrations directory, the
//! listen address and timings. Read once at start-up and checked completely: every error names
//! the field (`host.flux_url`), unknown fields included. Credentials never live in this file:
//! they come from the environment (`SEALWRIGHT_ADMIN_TOKEN`, `SEALWRIGHT_GITHUB_TOKEN`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{bad, cluster, items, kind, ClusterConfig, ConfigError, Fields};
use crate::boundary::{Boundary, Limits};
use crate::model::ModelError;
use crate::tokens::jwt::Algorithm;
use crate::tokens::settings::ClusterCredentials;
use crate::tokens::CredentialSettings;
use sops::Value;

/// Where the platform repos and the Flux repo live.
#[derive(Debug, Clone)]
pub enum HostConfig {
    /// Bare repositories under `<data dir>/repos/<owner>/` (the embedded default).
    Local {
        owner: String,
        /// The GitRepository URL a cluster would use, with `{owner}` and `{name}` filled in.
        flux_url: String,
        /// Where the bare repositories live (default `<data dir>/repos`): outside the data dir,
        /// they are a host of their own that survives an empty data dir.
        repos_dir: Option<PathBuf>,
    },
    /// GitHub or GitHub Enterprise, through its REST API; the token comes from the environment.
    GitHub {
        api_url: String,
        owner: String,
        /// known_hosts lines Flux checks the SSH host key against.
        known_hosts: String,
        /// The login the token belongs to, when repositories are created under it rather than
        /// in an organisation.
        user: Option<String>,
        /// The least time between two content-creating API calls (GitHub asks for one second).
        min_write_interval: Duration,
    },
}

impl HostConfig {
    pub fn owner(&self) -> &str {
        match self {
            HostConfig::Local { owner, .. } | HostConfig::GitHub { owner, .. } => owner,
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// The file this came from.
    pub path: PathBuf,
    pub cluster: ClusterConfig,
    pub host: HostConfig,
    /// `owner/name` of the Flux repo on the host.
    pub flux_repo: String,
    pub branch: String,
    /// App registration files (`*.yaml`, one app each), watched for changes.
    pub registrations_dir: Option<PathBuf>,
    pub templates_dir: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub listen: String,
    /// How often a full round runs (it also catches repositories changed behind sealwright's back).
    pub resync_interval: Duration,
    /// The longest wait before a failed app is retried.
    pub max_backoff: Duration,
    /// How often apps waiting on a pull request ask the host about it (webhooks are faster).
    pub pull_request_poll_interval: Duration,
    /// The `deployment_credentials` section (see [`credentials`]).
    pub credentials: CredentialSettings,
    /// Whether `deployment_credentials.apiUrl` was given (else it follows the listen address).
    pub api_url_explicit: bool,
    /// The tenant boundary and the limits (`namespace`, `reserved_namespaces`, `tenants`,
    /// `secret_types`, `limits`; see [`boundary`]).
    pub boundary: Boundary,
    /// `forbidden_keys` (global and per tenant) and `presets` (see [`policy`]).
    pub policy: crate::recipe::Policy,
    /// `owner/name` of the state repo on the host; `None`: a bare repo in the data dir.
    pub state_repo: Option<String>,
    /// The `controller` section: run in a Kubernetes cluster (see [`controller`]).
    pub controller: Option<ControllerConfig>,
    /// HTTPS for the API and the dashboard (`tls: {cert, key, client_ca, ...}`).
    pub tls: Option<crate::tls::TlsSettings>,
    /// Origins a separately hosted dashboard may call the API from, with a bearer token.
    pub cors_origins: Vec<String>,
}

/// Controller mode (`controller:`): registrations from `AppPlatformRegistration`s, secrets
/// from managed Secrets, keys in Secrets, and one writer elected on a Lease.
#[derive(Debug, Clone, PartialEq)]
pub struct ControllerConfig {
    /// A kubeconfig file; `None`: the pod's service account (or `$KUBECONFIG`).
    pub kubeconfig: Option<PathBuf>,
    /// The operator's namespace: keys, the Lease and sealwright's own objects live here.
    pub namespace: String,
    /// The Lease the replicas elect the writer on.
    pub lease_name: String,
    /// How long a Lease holds without renewal.
    pub lease_duration: Duration,
    /// The leader stops writing this long before its Lease could expire.
    pub lease_grace: Duration,
    /// The controller's ServiceAccount, bound in each platform namespace.
    pub service_account: String,
    /// The one ClusterRole the controller binds in platform namespaces (Secrets there).
    pub platform_role: String,
    /// How often a ready registration is looked at again (Flux readiness, drift).
    pub resync: Duration,
}

impl ServeConfig {
    pub fn load(path: &Path) -> Result<ServeConfig, ConfigError> {
        super::load_one(path, |root, base| parse(root, base, path))
    }
}

fn parse(root: &Value, base: &Path, path: &Path) -> Result<ServeConfig, ModelError> {
    let mut top = Fields::of("", root)?;
    let cluster_v = top
        .get("cluster")
        .ok_or_else(|| bad("cluster", "is required"))?;
    let cluster = cluster(cluster_v)?;
    crate::names::validate_label("cluster.name", &cluster.name)?;
    let host = match top.get("host") {
        None => HostConfig::Local {
            owner: "platform".into(),
            flux_url: DEFAULT_FLUX_URL.into(),
            repos_dir: None,
        },
        Some(v) => host(v, base)?,
    };
    crate::host::RepoRef::new(host.owner(), "x").map_err(|e| bad("host.owner", e.to_string()))?;
    let flux_repo = top
        .opt_str("flux_repo")?
        .unwrap_or_else(|| format!("{}/flux", host.owner()));
    crate::host::RepoRef::parse(&flux_repo).map_err(|e| bad("flux_repo", e.to_string()))?;
    let branch = top.opt_str("branch")?.unwrap_or_else(|| "main".into());
    crate::names::validate_branch("branch", &branch)?;
    let registrations_dir = top.opt_str("registrations_dir")?.map(|d| base.join(d));
    let templates_dir = top.opt_str("templates_dir")?.map(|d| base.join(d));
    let data_dir = top.opt_str("data_dir")?.map(|d| base.join(d));
    let listen = top
        .opt_str("listen")?
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    listen.parse::<std::net::SocketAddr>().map_err(|_| {
        bad(
            "listen",
            format!("{listen:?} is not an address like 127.0.0.1:8080"),
        )
    })?;
    let resync_interval = duration(&mut top, "resync_interval", "5m")?;
    let max_backoff = duration(&mut top, "max_backoff", "5m")?;
    let pull_request_poll_interval = duration(&mut top, "pull_request_poll_interval", "1m")?;
    let api_url_explicit = matches!(top.map.get("deployment_credentials"), Some(Value::Map(m)) if m.get("apiUrl").is_some());
    // Tokens name this server as their issuer, over HTTPS when it serves that.
    let has_tls = top
        .map
        .get("tls")
        .is_some_and(|v| !matches!(v, Value::Null));
    let base_url = format!("{}://{listen}", if has_tls { "https" } else { "http" });
    let credentials = match top.get("deployment_credentials") {
        None => CredentialSettings {
            api_url: base_url,
            ..CredentialSettings::default()
        },
        Some(v) => credentials(v, &base_url)?,
    };
    let own_namespace = top
        .map
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(crate::boundary::DEFAULT_OWN_NAMESPACE)
        .to_owned();
    let (boundary, tenant_forbidden) = boundary(&mut top, &cluster.flux_namespace)?;
    let policy = policy(&mut top, tenant_forbidden)?;
    let state_repo = top.opt_str("state_repo")?;
    if let Some(r) = &state_repo {
        crate::host::RepoRef::parse(r).map_err(|e| bad("state_repo", e.to_string()))?;
    }
    let controller = match top.get("controller") {
        None => None,
        Some(v) => Some(controller(v, base, &own_namespace)?),
    };
    if controller.is_some() && cluster.recipient.is_none() {
        return Err(bad(
            "cluster.recipient",
            "is required with controller: the cluster's age public key (its private half stays in Flux's decryption Secret)",
        ));
    }
    if controller.is_some() && state_repo.is_none() {
        return Err(bad(
            "state_repo",
            "is required with controller: a pod's disk is not kept, so the state repo must live on the Git host (owner/name)",
        ));
    }
    let tls = match top.get("tls") {
        None => None,
        Some(v) => Some(tls(v, base)?),
    };
    let cors_origins = top
        .seq("cors_origins")?
        .iter()
        .enumerate()
        .map(|(i, v)| cors_origin(&format!("cors_origins[{i}]"), v))
        .collect::<Result<Vec<_>, _>>()?;
    top.finish()?;
    Ok(ServeConfig {
        path: path.to_path_buf(),
        cluster,
        host,
        flux_repo,
        branch,
        registrations_dir,
        templates_dir,
        data_dir,
        listen,
        resync_interval,
        max_backoff,
        pull_request_poll_interval,
        credentials,
        api_url_explicit,
        boundary,
        policy,
        state_repo,
        controller,
        tls,
        cors_origins,
    })
}

/// The `tls` section:
///
/// ```yaml
/// tls:
///   cert: tls.crt                  # PEM: the certificate, then its chain
///   key: tls.key                   # PEM: PKCS#8, PKCS#1 or SEC1
///   client_ca: clients-ca.crt      # optional: client certificates are verified against it
///   client_auth: required          # with client_ca: required (default) or optional
///   client_identities:             # a certificate's subject alternative name: who it is
///     ops.example.com: admin
///     ci.acme.example: tenant:acme
/// ```
fn tls(v: &Value, base: &Path) -> Result<crate::tls::TlsSettings, ModelError> {
    use crate::tls::{CertIdentity, ClientAuth};
    let mut f = Fields::of("tls", v)?;
    let cert = base.join(f.str("cert")?);
    let key = base.join(f.str("key")?);
    let client_ca = f.opt_str("client_ca")?.map(|p| base.join(p));
    let client_auth = match f.opt_str("client_auth")? {
        None => ClientAuth::Required,
        Some(s) => ClientAuth::parse(&s).ok_or_else(|| {
            bad(
                "tls.client_auth",
                format!("{s:?} is not one of: required, optional"),
            )
        })?,
    };
    let mut client_identities = std::collections::BTreeMap::new();
    match f.get("client_identities") {
        None => {}
        Some(Value::Map(m)) => {
            for (san, who) in m.pairs() {
                let field = format!("tls.client_identities.{san}");
                let id = who
                    .as_str()
                    .and_then(CertIdentity::parse)
                    .ok_or_else(|| bad(&field, "must be admin or tenant:<tenant id>"))?;
                client_identities.insert(san.to_owned(), id);
            }
        }
        Some(other) => {
            return Err(bad(
                "tls.client_identities",
                format!(
                    "must be a mapping of subject alternative name to identity, not {}",
                    kind(other)
                ),
            ))
        }
    }
    f.finish()?;
    if client_ca.is_none() && !client_identities.is_empty() {
        return Err(bad(
            "tls.client_identities",
            "needs tls.client_ca: only a certificate verified against it may stand for someone",
        ));
    }
    if client_ca.is_none() && f_had_client_auth(v) {
        return Err(bad(
            "tls.client_auth",
            "needs tls.client_ca, which client certificates are verified against",
        ));
    }
    Ok(crate::tls::TlsSettings {
        cert,
        key,
        client_ca,
        client_auth,
        client_identities,
    })
}

fn f_had_client_auth(v: &Value) -> bool {
    matches!(v, Value::Map(m) if m.get("client_auth").is_some())
}

/// An origin as browsers send it: `scheme://host[:port]`, nothing after.
fn cors_origin(field: &str, v: &Value) -> Result<String, ModelError> {
    let s = v
        .as_str()
        .ok_or_else(|| bad(field, format!("must be a string, not {}", kind(v))))?;
    let ok = url::Url::parse(s).ok().is_some_and(|u| {
        matches!(u.scheme(), "http" | "https")
            && u.host_str().is_some()
            && u.username().is_empty()
            && u.password().is_none()
            && u.query().is_none()
            && u.fragment().is_none()
            && u.origin().ascii_serialization() == s
    });
    if !ok {
        return Err(bad(
            field,
            format!("{s:?} is not an origin like https://dashboard.example.com (a scheme, a host and a port if not the default; no path, no trailing slash, no wildcard)"),
        ));
    }
    Ok(s.to_owned())
}

type ForbiddenKeys = std::collections::BTreeMap<String, String>;

/// Keys no write may store, and the named starting points a write may take:
///
/// ```yaml
/// forbidden_keys:                     # key: why (a tenant's own list adds to this one)
///   RAILS_MASTER_KEY: "it decrypts every credential of the app; keep it out of Git"
/// tenants:
///   acme: {namespaces: ["acme-*"], forbidden_keys: {AWS_SECRET_ACCESS_KEY: "use workload identity"}}
/// presets:                            # `"preset": "postgres"` in a write
///   postgres:
///     description: new database credentials
///     data: {port: "5432"}
///     generate: {password: {kind: alphanumeric, length: 32}}
///     derive: {DATABASE_URL: "postgres://{{ username | urlencode }}:{{ password | urlencode }}@{{ host }}:{{ port }}/{{ database }}"}
/// ```
fn policy(
    top: &mut Fields<'_>,
    forbidden_by_tenant: std::collections::BTreeMap<String, ForbiddenKeys>,
) -> Result<crate::recipe::Policy, ModelError> {
    let forbidden = match top.get("forbidden_keys") {
        None => ForbiddenKeys::new(),
        Some(v) => forbidden_keys("forbidden_keys", v)?,
    };
    let mut presets = std::collections::BTreeMap::new();
    match top.get("presets") {
        None => {}
        Some(Value::Map(m)) => {
            for (name, v) in m.pairs() {
                let field = format!("presets.{name}");
                crate::names::validate_label(&field, name)?;
                let p = crate::recipe::Preset::from_json(&field, &crate::plain::json_value(v))
                    .map_err(|e| bad(e.field, e.reason))?;
                presets.insert(name.to_owned(), p);
            }
        }
        Some(other) => {
            return Err(bad(
                "presets",
                format!("must be a mapping of name to preset, not {}", kind(other)),
            ))
        }
    }
    Ok(crate::recipe::Policy {
        forbidden,
        forbidden_by_tenant,
        presets,
    })
}

fn forbidden_keys(field: &str, v: &Value) -> Result<ForbiddenKeys, ModelError> {
    let Value::Map(m) = v else {
        return Err(bad(
            field,
            format!(
                "must be a mapping of key to the reason it is forbidden, not {}",
                kind(v)
            ),
        ));
    };
    let mut out = ForbiddenKeys::new();
    for (k, reason) in m.pairs() {
        let at = format!("{field}.{k}");
        crate::names::validate_data_key(field, k)?;
        match reason {
            Value::Str(r) if !r.trim().is_empty() => {
                out.insert(k.to_owned(), r.clone());
            }
            _ => {
                return Err(bad(
                    at,
                    "needs a reason (a string), which writes are refused with",
                ))
            }
        }
    }
    Ok(out)
}

/// The `controller` section:
///
/// ```yaml
/// controller:
///   kubeconfig: kubeconfig.yaml   # default: the pod's service account
///   lease: {name: sealwright, duration: 15s, grace: 5s}
///   service_account: sealwright
///   platform_role: sealwright-platform-secrets
///   resync: 1m
/// ```
fn controller(v: &Value, base: &Path, namespace: &str) -> Result<ControllerConfig, ModelError> {
    let mut f = Fields::of("controller", v)?;
    let kubeconfig = f.opt_str("kubeconfig")?.map(|p| base.join(p));
    let (mut lease_name, mut lease_duration, mut lease_grace) = (
        "sealwright".to_owned(),
        Duration::from_secs(15),
        Duration::from_secs(5),
    );
    if let Some(l) = f.get("lease") {
        let mut g = Fields::of("controller.lease", l)?;
        if let Some(n) = g.opt_str("name")? {
            crate::names::validate_label("controller.lease.name", &n)?;
            lease_name = n;
        }
        if let Some(d) = g.opt_str("duration")? {
            lease_duration = parse_duration("controller.lease.duration", &d)?;
        }
        if let Some(d) = g.opt_str("grace")? {
            lease_grace = parse_duration("controller.lease.grace", &d)?;
        }
        g.finish()?;
        if lease_grace >= lease_duration {
            return Err(bad(
                "controller.lease.grace",
                "must be shorter than controller.lease.duration",
            ));
        }
    }
    let service_account = f
        .opt_str("service_account")?
        .unwrap_or_else(|| "sealwright".into());
    crate::names::validate_label("controller.service_account", &service_account)?;
    let platform_role = f
        .opt_str("platform_role")?
        .unwrap_or_else(|| "sealwright-platform-secrets".into());
    crate::names::validate_label("controller.platform_role", &platform_role)?;
    let resync = match f.opt_str("resync")? {
        None => Duration::from_secs(60),
        Some(d) => parse_duration("controller.resync", &d)?,
    };
    f.finish()?;
    Ok(ControllerConfig {
        kubeconfig,
        namespace: namespace.to_owned(),
        lease_name,
        lease_duration,
        lease_grace,
        service_account,
        platform_role,
        resync,
    })
}

fn parse_duration(field: &str, text: &str) -> Result<Duration, ModelError> {
    let d = humantime::parse_duration(text).map_err(|e| {
        bad(
            field,
            format!("{text:?} is not a duration like 30s or 5m ({e})"),
        )
    })?;
    if d < Duration::from_secs(1) {
        return Err(bad(field, format!("{text:?} is shorter than one second")));
    }
    Ok(d)
}

/// The tenant boundary and the limits:
///
/// ```yaml
/// namespace: sealwright-system        # where sealwright runs: reserved like flux-system
/// reserved_namespaces: [vault]        # more namespaces no app may target
/// tenants:                            # a tenant key may claim only matching namespaces
///   acme: {namespaces: ["acme-*"]}
/// secret_types: [Opaque, kubernetes.io/tls]   # the allowlist (default: see boundary.rs)
/// limits: {keys_per_secret: 1000, value_bytes: 1048576, body_bytes: 1114112, secrets_per_app: 2000}
/// ```
fn boundary(
    top: &mut Fields<'_>,
    flux_namespace: &str,
) -> Result<(Boundary, std::collections::BTreeMap<String, ForbiddenKeys>), ModelError> {
    let own = top
        .opt_str("namespace")?
        .unwrap_or_else(|| crate::boundary::DEFAULT_OWN_NAMESPACE.into());
    crate::names::validate_label("namespace", &own)?;
    let mut reserved = Vec::new();
    for (i, v) in items(top.seq("reserved_namespaces")?) {
        let field = format!("reserved_namespaces[{i}]");
        let Value::Str(ns) = v else {
            return Err(bad(field, format!("must be a string, not {}", kind(v))));
        };
        crate::names::validate_label(&field, ns)?;
        reserved.push(ns.clone());
    }
    let mut tenants = std::collections::BTreeMap::new();
    let mut tenant_forbidden = std::collections::BTreeMap::new();
    if let Some(t) = top.get("tenants") {
        let Value::Map(m) = t else {
            return Err(bad(
                "tenants",
                "must be a mapping of tenant id to {namespaces: [patterns]}",
            ));
        };
        for (id, settings) in m.pairs() {
            let at = format!("tenants.{id}");
            crate::names::validate_label(&at, id)?;
            let mut g = Fields::of(&at, settings)?;
            let mut patterns = Vec::new();
            for (i, v) in items(g.seq("namespaces")?) {
                let field = format!("{at}.namespaces[{i}]");
                let Value::Str(p) = v else {
                    return Err(bad(field, format!("must be a string, not {}", kind(v))));
                };
                crate::boundary::validate_pattern(p).map_err(|e| bad(&field, e))?;
                patterns.push(p.clone());
            }
            if let Some(v) = g.get("forbidden_keys") {
                tenant_forbidden.insert(
                    id.to_owned(),
                    forbidden_keys(&format!("{at}.forbidden_keys"), v)?,
                );
            }
            g.finish()?;
            if patterns.is_empty() {
                return Err(bad(
                    format!("{at}.namespaces"),
                    "needs at least one pattern (like acme-*)",
                ));
            }
            tenants.insert(id.to_owned(), patterns);
        }
    }
    let secret_types = match top.get("secret_types") {
        None => None,
        Some(Value::Seq(list)) => {
            let mut out = Vec::new();
            for (i, v) in items(list) {
                let field = format!("secret_types[{i}]");
                let Value::Str(t) = v else {
                    return Err(bad(field, format!("must be a string, not {}", kind(v))));
                };
                crate::spec::validate_type(t).map_err(|e| bad(&field, e.reason))?;
                out.push(t.clone());
            }
            if out.is_empty() {
                return Err(bad("secret_types", "needs at least one type (like Opaque)"));
            }
            Some(out)
        }
        Some(other) => {
            return Err(bad(
                "secret_types",
                format!("must be a list, not {}", kind(other)),
            ))
        }
    };
    let limits = match top.get("limits") {
        None => Limits::default(),
        Some(v) => limits(v)?,
    };
    Ok((
        Boundary::new(
            flux_namespace,
            &own,
            &reserved,
            tenants,
            secret_types,
            limits,
        ),
        tenant_forbidden,
    ))
}

fn limits(v: &Value) -> Result<Limits, ModelError> {
    let mut f = Fields::of("limits", v)?;
    let d = Limits::default();
    let mut n = |key: &'static str, default: usize, max: usize| -> Result<usize, ModelError> {
        match f.get(key) {
            None => Ok(default),
            Some(Value::Int(i)) if *i >= 1 && (*i as u64) <= max as u64 => Ok(*i as usize),
            Some(_) => Err(bad(
                format!("limits.{key}"),
                format!("must be a whole number from 1 to {max}"),
            )),
        }
    };
    let out = Limits {
        keys_per_secret: n("keys_per_secret", d.keys_per_secret, 100_000)?,
        // Kubernetes refuses a Secret over 1 MiB: a larger limit would only move the error.
        value_bytes: n("value_bytes", d.value_bytes, 1024 * 1024)?,
        body_bytes: n("body_bytes", d.body_bytes, 64 * 1024 * 1024)?,
        secrets_per_app: n("secrets_per_app", d.secrets_per_app, 1_000_000)?,
    };
    f.finish()?;
    Ok(out)
}

/// The `deployment_credentials` section. Its keys are the names the deployment-credentials
/// contract gives them (`refreshInterval`, `tokenDuration`), so they are camelCase here:
///
/// ```yaml
/// deployment_credentials:
///   enabled: true                 # false: mint nothing, remove every credentials file
///   apiUrl: https://sealwright.example.com   # what deployments call; the tokens' issuer
///   refreshInterval: 20m
///   tokenDuration: 1h
///   algorithm: HS256              # or EdDSA / ES256 (public keys at /.well-known/jwks.json)
///   clusters:                     # overrides by cluster id
///     eu-1: {refreshInterval: 10m, tokenDuration: 30m, algorithm: EdDSA}
/// ```
fn credentials(v: &Value, listen: &str) -> Result<CredentialSettings, ModelError> {
    const AT: &str = "deployment_credentials";
    let mut f = Fields::of(AT, v)?;
    let enabled = match f.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad(format!("{AT}.enabled"), "must be true or false")),
    };
    let api_url = f.opt_str("apiUrl")?.unwrap_or_else(|| listen.to_owned());
    if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
        return Err(bad(
            format!("{AT}.apiUrl"),
            format!("{api_url:?} must be an http(s) URL"),
        ));
    }
    let defaults = cluster_credentials(&mut f, AT, &ClusterCredentials::default())?;
    let mut clusters = std::collections::BTreeMap::new();
    if let Some(c) = f.get("clusters") {
        let Value::Map(m) = c else {
            return Err(bad(
                format!("{AT}.clusters"),
                "must be a mapping of cluster id to settings",
            ));
        };
        for (id, settings) in m.pairs() {
            let at = format!("{AT}.clusters.{id}");
            let mut g = Fields::of(&at, settings)?;
            let c = cluster_credentials(&mut g, &at, &defaults)?;
            g.finish()?;
            clusters.insert(id.to_owned(), c);
        }
    }
    f.finish()?;
    Ok(CredentialSettings {
        enabled,
        api_url,
        defaults,
        clusters,
    })
}

fn cluster_credentials(
    f: &mut Fields<'_>,
    at: &str,
    base: &ClusterCredentials,
) -> Result<ClusterCredentials, ModelError> {
    let mut dur = |key: &'static str, default: Duration| -> Result<Duration, ModelError> {
        match f.opt_str(key)? {
            None => Ok(default),
            Some(text) => humantime::parse_duration(&text).map_err(|e| {
                bad(
                    format!("{at}.{key}"),
                    format!("{text:?} is not a duration like 20m or 1h ({e})"),
                )
            }),
        }
    };
    let refresh_interval = dur("refreshInterval", base.refresh_interval)?;
    let token_duration = dur("tokenDuration", base.token_duration)?;
    let algorithm = match f.opt_str("algorithm")? {
        None => base.algorithm,
        Some(a) => Algorithm::parse(&a).ok_or_else(|| {
            bad(
                format!("{at}.algorithm"),
                format!("{a:?} is not one of HS256, EdDSA, ES256"),
            )
        })?,
    };
    Ok(ClusterCredentials {
        refresh_interval,
        token_duration,
        algorithm,
    })
}

/// The environment's say over deployment credentials, applied over the file's:
/// `SEALWRIGHT_DISABLE_DEPLOYMENT_CREDENTIALS=true` turns them off, and
/// `SEALWRIGHT_REFRESH_INTERVAL` / `SEALWRIGHT_TOKEN_DURATION` replace the default timings (the
/// clusters' own overrides stay).
pub fn credentials_from_env(
    c: &mut CredentialSettings,
    var: impl Fn(&str) -> Option<String>,
) -> Result<(), ModelError> {
    if let Some(v) = var("SEALWRIGHT_DISABLE_DEPLOYMENT_CREDENTIALS") {
        match v.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" => c.enabled = false,
            "false" | "0" | "no" | "" => {}
            _ => {
                return Err(bad(
                    "SEALWRIGHT_DISABLE_DEPLOYMENT_CREDENTIALS",
                    format!("{v:?} must be true or false"),
                ))
            }
        }
    }
    for (name, slot) in [
        (
            "SEALWRIGHT_REFRESH_INTERVAL",
            &mut c.defaults.refresh_interval,
        ),
        ("SEALWRIGHT_TOKEN_DURATION", &mut c.defaults.token_duration),
    ] {
        if let Some(text) = var(name).filter(|t| !t.is_empty()) {
            *slot = humantime::parse_duration(&text)
                .map_err(|e| bad(name, format!("{text:?} is not a duration ({e})")))?;
        }
    }
    Ok(())
}

/// Where the embedded default says a cluster would reach its repos.
pub const DEFAULT_FLUX_URL: &str = "https://git.example.invalid/{owner}/{name}.git";

fn host(v: &Value, base: &Path) -> Result<HostConfig, ModelError> {
    let mut f = Fields::of("host", v)?;
    let kind = f.opt_str("kind")?.unwrap_or_else(|| "local".into());
    let owner = f.opt_str("owner")?.unwrap_or_else(|| "platform".into());
    let out = match kind.as_str() {
        "local" => {
            let flux_url = f
                .opt_str("flux_url")?
                .unwrap_or_else(|| DEFAULT_FLUX_URL.into());
            if !(flux_url.starts_with("https://") || flux_url.starts_with("ssh://"))
                || !flux_url.contains("{name}")
            {
                return Err(bad(
                    "host.flux_url",
                    format!("{flux_url:?} must be an https:// or ssh:// URL containing {{name}} (Flux refuses other URLs)"),
                ));
            }
            let repos_dir = f.opt_str("repos_dir")?.map(|d| base.join(d));
            HostConfig::Local {
                owner,
                flux_url,
                repos_dir,
            }
        }
        "github" => {
            let api_url = f
                .opt_str("api_url")?
                .unwrap_or_else(|| "https://api.github.com".into());
            if !(api_url.starts_with("https://") || api_url.starts_with("http://")) {
                return Err(bad(
                    "host.api_url",
                    format!("{api_url:?} must be an http(s) URL"),
                ));
            }
            let known_hosts = f.opt_str("known_hosts")?.ok_or_else(|| {
                bad(
                    "host.known_hosts",
                    "is required for github: the known_hosts lines Flux checks the SSH host key against",
                )
            })?;
            let user = f.opt_str("user")?;
            let min_write_interval = match f.opt_str("min_write_interval")? {
                None => Duration::from_secs(1),
                Some(text) => humantime::parse_duration(&text).map_err(|e| {
                    bad(
                        "host.min_write_interval",
                        format!("{text:?} is not a duration like 1s or 0s ({e})"),
                    )
                })?,
            };
            HostConfig::GitHub {
                api_url,
                owner,
                known_hosts,
                user,
                min_write_interval,
            }
        }
        other => {
            return Err(bad(
                "host.kind",
                format!("{other:?} is not a host kind (local or github)"),
            ))
        }
    };
    f.finish()?;
    Ok(out)
}

fn duration(f: &mut Fields<'_>, key: &'static str, default: &str) -> Result<Duration, ModelError> {
    let text = f.opt_str(key)?.unwrap_or_else(|| default.into());
    let d = humantime::parse_duration(&text).map_err(|e| {
        bad(
            key,
            format!("{text:?} is not a duration like 30s or 5m ({e})"),
        )
    })?;
    if d < Duration::from_secs(1) {
        return Err(bad(key, format!("{text:?} is shorter than one second")));
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ServeConfig, String> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.yaml");
        std::fs::write(&p, text).unwrap();
        ServeConfig::load(&p).map_err(|e| e.to_string())
    }

    #[test]
    fn defaults_make_the_embedded_default() {
        let c = load("cluster: {name: quickstart}\n").unwrap();
        assert!(matches!(c.host, HostConfig::Local { ref owner, .. } if owner == "platform"));
        assert_eq!(c.flux_repo, "platform/flux");
        assert_eq!(c.branch, "main");
        assert_eq!(c.listen, "127.0.0.1:8080");
        assert_eq!(c.resync_interval, Duration::from_secs(300));
        assert!(c.cluster.recipient.is_none());
        assert!(c.credentials.enabled);
        assert_eq!(c.credentials.api_url, "http://127.0.0.1:8080");
    }

    #[test]
    fn forbidden_keys_and_presets_are_read_and_their_errors_name_the_field() {
        let example = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/generated-secrets.yaml"
        );
        let c = ServeConfig::load(Path::new(example)).unwrap();
        assert!(c.policy.forbidden("acme", "RAILS_MASTER_KEY").is_some());
        let pg = c.policy.preset("postgres").unwrap();
        assert_eq!(pg.data["port"], "5432");
        assert!(pg.recipe.derive.contains_key("DATABASE_URL"));
        let c = load(
            "cluster: {name: q}\ntenants: {acme: {namespaces: [acme-*], forbidden_keys: {AWS_KEY: use OIDC}}}\n",
        )
        .unwrap();
        assert_eq!(c.policy.forbidden("acme", "AWS_KEY"), Some("use OIDC"));
        assert_eq!(c.policy.forbidden("other", "AWS_KEY"), None);
        for (text, field) in [
            ("forbidden_keys: {K: ''}", "forbidden_keys.K:"),
            ("forbidden_keys: [K]", "forbidden_keys:"),
            (
                "presets: {pg: {generate: {password: {kind: hex}}}}",
                "presets.pg.generate.password.length:",
            ),
            (
                "presets: {pg: {derive: {url: '{{ a '}}}",
                "presets.pg.derive.url:",
            ),
            ("presets: {Bad: {data: {a: b}}}", "presets.Bad:"),
        ] {
            let e = load(&format!("cluster: {{name: q}}\n{text}\n")).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }

    #[test]
    fn credentials_per_cluster_and_from_the_environment() {
        let mut c = load(
            "cluster: {name: q}\ndeployment_credentials: {apiUrl: 'https://sw.example', refreshInterval: 10m, tokenDuration: 40m, clusters: {eu-1: {algorithm: EdDSA}, us-1: {tokenDuration: 2h}}}\n",
        )
        .unwrap()
        .credentials;
        assert_eq!(c.api_url, "https://sw.example");
        let eu = c.for_cluster("eu-1");
        assert_eq!(eu.algorithm, Algorithm::EdDSA);
        assert_eq!(
            eu.refresh_interval,
            Duration::from_secs(600),
            "inherits the defaults"
        );
        assert_eq!(
            c.for_cluster("us-1").token_duration,
            Duration::from_secs(7200)
        );
        let env = |k: &str| match k {
            "SEALWRIGHT_DISABLE_DEPLOYMENT_CREDENTIALS" => Some("true".to_owned()),
            "SEALWRIGHT_TOKEN_DURATION" => Some("90m".to_owned()),
            _ => None,
        };
        credentials_from_env(&mut c, env).unwrap();
        assert!(!c.enabled);
        assert_eq!(c.defaults.token_duration, Duration::from_secs(5400));
        let e = credentials_from_env(&mut c, |k| {
            (k == "SEALWRIGHT_REFRESH_INTERVAL").then(|| "often".to_owned())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("SEALWRIGHT_REFRESH_INTERVAL"), "{e}");
    }

    #[test]
    fn tls_and_cors_origins_are_read_relative_to_the_file() {
        let c = load("cluster: {name: q}\nlisten: '0.0.0.0:8443'\ntls:\n  cert: tls/crt.pem\n  key: tls/key.pem\n  client_ca: tls/ca.pem\n  client_identities: {ci.acme.example: 'tenant:acme', ops@example.com: admin}\ncors_origins: ['https://dash.example.com', 'http://localhost:3000']\n").unwrap();
        let t = c.tls.unwrap();
        assert!(t.cert.ends_with("tls/crt.pem") && t.cert.is_absolute());
        assert_eq!(t.client_auth, crate::tls::ClientAuth::Required);
        assert_eq!(
            t.client_identities.get("ci.acme.example"),
            Some(&crate::tls::CertIdentity::Tenant("acme".into()))
        );
        assert_eq!(
            c.cors_origins,
            ["https://dash.example.com", "http://localhost:3000"]
        );
        assert_eq!(
            c.credentials.api_url, "https://0.0.0.0:8443",
            "tokens name the server over HTTPS"
        );
        let plain = load("cluster: {name: q}\n").unwrap();
        assert!(plain.tls.is_none() && plain.cors_origins.is_empty());
    }

    #[test]
    fn errors_name_the_field() {
        for (text, field) in [
            ("cluster: {name: q}\nlisten: nowhere\n", "listen:"),
            ("cluster: {name: q}\nhost: {kind: gitlab}\n", "host.kind:"),
            (
                "cluster: {name: q}\nhost: {kind: github}\n",
                "host.known_hosts:",
            ),
            (
                "cluster: {name: q}\nhost: {flux_url: 'git@h:x'}\n",
                "host.flux_url:",
            ),
            (
                "cluster: {name: q}\nresync_interval: soon\n",
                "resync_interval:",
            ),
            ("cluster: {name: q}\nflux_repo: nope\n", "flux_repo:"),
            ("cluster: {name: Q}\n", "cluster.name:"),
            ("cluster: {name: q}\nlisen: x\n", "lisen: unknown field"),
            ("host: {}\n", "cluster: is required"),
            (
                "cluster: {name: q}\ndeployment_credentials: {refreshInterval: soon}\n",
                "deployment_credentials.refreshInterval:",
            ),
            (
                "cluster: {name: q}\ndeployment_credentials: {clusters: {eu: {algorithm: RS256}}}\n",
                "deployment_credentials.clusters.eu.algorithm:",
            ),
            (
                "cluster: {name: q}\ndeployment_credentials: {enabled: maybe}\n",
                "deployment_credentials.enabled:",
            ),
            ("cluster: {name: q}\ntls: {cert: a.pem}\n", "tls.key: is required"),
            (
                "cluster: {name: q}\ntls: {cert: a, key: b, client_auth: sometimes}\n",
                "tls.client_auth:",
            ),
            (
                "cluster: {name: q}\ntls: {cert: a, key: b, client_auth: optional}\n",
                "tls.client_auth: needs tls.client_ca",
            ),
            (
                "cluster: {name: q}\ntls: {cert: a, key: b, client_ca: c, client_identities: {ops.example.com: root}}\n",
                "tls.client_identities.ops.example.com:",
            ),
            (
                "cluster: {name: q}\ntls: {cert: a, key: b, client_identities: {x: admin}}\n",
                "tls.client_identities: needs tls.client_ca",
            ),
            ("cluster: {name: q}\ntls: {cert: a, key: b, ca: c}\n", "tls.ca: unknown field"),
            (
                "cluster: {name: q}\ncors_origins: ['https://dash.example.com/']\n",
                "cors_origins[0]:",
            ),
            ("cluster: {name: q}\ncors_origins: ['*']\n", "cors_origins[0]:"),
            (
                "cluster: {name: q}\ncors_origins: [ok, 'https://a.example']\n",
                "cors_origins[0]:",
            ),
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
