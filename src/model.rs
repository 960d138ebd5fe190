//! The desired state: the cluster, its apps, their environments and managed secrets.
//!
//! Everything here is plain data, checked once by [`DesiredState::validate`] before anything is
//! rendered, with errors that name the field (`apps[1].secrets[0].environments[2]`). Secret
//! values are held as [`SecretValue`]: no `Debug` output of theirs, zeroised on drop.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use zeroize::Zeroizing;

use crate::keys::chain::{validate_recipient, ChainRecipients};
use crate::names::{validate_branch, validate_data_key, validate_label};

/// A secret value: bytes that never show in `Debug` output and are wiped when dropped.
#[derive(Clone)]
pub struct SecretValue(Zeroizing<Vec<u8>>);

impl SecretValue {
    pub fn new(bytes: Vec<u8>) -> SecretValue {
        SecretValue(Zeroizing::new(bytes))
    }
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretValue(<redacted>)")
    }
}

/// The cluster whose Flux repo sealwright writes.
#[derive(Clone, Debug)]
pub struct Cluster {
    /// `clusters/<name>/apps.yaml` in the Flux repo.
    pub name: String,
    /// Who can open the app keys: the cluster's recipient (+ break-glass).
    pub recipients: ChainRecipients,
    /// Where Flux runs and where the app keys' Secrets live (`flux-system`).
    pub flux_namespace: String,
    /// The GitRepository that `flux bootstrap` made for the Flux repo itself (`flux-system`).
    pub flux_source: String,
    /// The Secret holding the cluster's age key, used to decrypt the app keys (`sops-age`).
    pub decryption_secret: String,
}

/// An app's platform repo, as Flux reaches it.
#[derive(Clone, Debug)]
pub struct PlatformRepo {
    /// `ssh://` or `https://` (Flux refuses scp-style `git@host:path`).
    pub url: String,
    pub branch: String,
    /// known_hosts lines for an `ssh://` URL (`[host]:port` form for ports other than 22).
    pub known_hosts: Option<String>,
}

impl PlatformRepo {
    /// Whether Flux reaches the repo over SSH with the app's deploy key.
    pub fn is_ssh(&self) -> bool {
        self.url.starts_with("ssh://")
    }
}

#[derive(Clone, Debug)]
pub struct Environment {
    pub name: String,
    pub namespace: String,
    /// `postBuild.substitute` variables of its Kustomization (plain configuration).
    pub variables: BTreeMap<String, String>,
    /// Where its workload manifests live; `None`: the app team writes `environments/` itself.
    pub source: Option<EnvSource>,
}

/// An environment's workload manifests: a Git repository, its branch and the path in it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvSource {
    pub url: String,
    pub branch: String,
    pub path: String,
}

/// One Kubernetes Secret, delivered into the namespaces of some of the app's environments.
#[derive(Clone, Debug)]
pub struct ManagedSecret {
    pub name: String,
    /// The Secret's name in the cluster (defaults to `name`).
    pub target_name: String,
    /// Environment names; empty means every environment of the app.
    pub environments: Vec<String>,
    /// The Secret `type` (`Opaque` unless given).
    pub type_: String,
    /// Data keys and values, in the order given.
    pub data: Vec<(String, SecretValue)>,
    /// The secret's recipe (JSON, no value), kept as the `sealwright.dev/spec` annotation.
    pub spec: Option<String>,
}

#[derive(Clone, Debug)]
pub struct App {
    pub name: String,
    pub repo: PlatformRepo,
    pub environments: Vec<Environment>,
    pub secrets: Vec<ManagedSecret>,
    /// The deployments' credentials Secrets (deployment credentials).
    pub credentials: Vec<Credential>,
    /// The merged external secrets, as the Secret `app-<app>-external-secrets` in every
    /// namespace of the app; `None` when the app has none (and its files go).
    pub external: Option<ExternalSecret>,
}

/// An app's external secrets: its tenant's defaults with its own overrides.
#[derive(Clone, Debug)]
pub struct ExternalSecret {
    pub tenant: String,
    /// `{"KEY": "tenant/openai", ...}`: where each key comes from (names only).
    pub origins: String,
    /// `None` when the values cannot be read now (the operator key is unavailable): the files
    /// the repo holds are kept exactly as they are.
    pub data: Option<Vec<(String, SecretValue)>>,
}

/// A deployment's credentials: the Secret `<deployment name>-credentials` in its namespace,
/// holding a token that is minted again on a schedule.
#[derive(Clone, Debug)]
pub struct Credential {
    pub deployment_id: String,
    pub deployment_name: String,
    pub environment: String,
    pub cluster_id: String,
    pub namespace: String,
    /// `access_token`, `deployment_id`, `api_url`, `values.yaml`.
    pub data: Vec<(String, SecretValue)>,
}

impl Credential {
    /// The Secret's name in the cluster.
    pub fn secret_name(&self) -> String {
        credentials_secret_name(&self.deployment_name)
    }
}

/// `<deployment name>-credentials`.
pub fn credentials_secret_name(deployment: &str) -> String {
    format!("{deployment}-credentials")
}

impl App {
    /// The namespaces `secret` is delivered to, in environment order.
    pub fn target_namespaces<'a>(&'a self, secret: &'a ManagedSecret) -> Vec<&'a str> {
        self.environments
            .iter()
            .filter(|e| secret.environments.is_empty() || secret.environments.contains(&e.name))
            .map(|e| e.namespace.as_str())
            .collect()
    }
}

/// Everything sealwright should make true for one cluster.
#[derive(Clone, Debug)]
pub struct DesiredState {
    pub cluster: Cluster,
    pub apps: Vec<App>,
}

/// A field of the desired state that breaks a rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {problem}")]
pub struct ModelError {
    pub field: String,
    pub problem: String,
}

fn err(field: impl Into<String>, problem: impl Into<String>) -> ModelError {
    ModelError {
        field: field.into(),
        problem: problem.into(),
    }
}

impl From<crate::names::NameError> for ModelError {
    fn from(e: crate::names::NameError) -> ModelError {
        err(e.field, format!("{:?} {}", e.value, e.problem))
    }
}

impl DesiredState {
    /// Checks every rule that rendering and Flux rely on. Stops at the first problem.
    pub fn validate(&self) -> Result<(), ModelError> {
        let c = &self.cluster;
        validate_label("cluster.name", &c.name)?;
        validate_label("cluster.flux_namespace", &c.flux_namespace)?;
        validate_label("cluster.flux_source", &c.flux_source)?;
        validate_label("cluster.decryption_secret", &c.decryption_secret)?;
        validate_recipient("cluster.recipient", &c.recipients.cluster)
            .map_err(|e| err(e.field, e.problem))?;
        if let Some(b) = &c.recipients.break_glass {
            validate_recipient("cluster.break_glass_recipient", b)
                .map_err(|e| err(e.field, e.problem))?;
        }
        let mut app_names = BTreeSet::new();
        // (namespace, secret name) → owning app, so two apps never fight over one Secret.
        let mut targets: BTreeMap<(String, String), String> = BTreeMap::new();
        for (i, app) in self.apps.iter().enumerate() {
            let f = format!("apps[{i}]");
            validate_label(&format!("{f}.name"), &app.name)?;
            // `<app>-platform-age-key` must itself be a valid label.
            if app.name.len() > 63 - "-platform-deploy-key".len() {
                return Err(err(
                    format!("{f}.name"),
                    format!(
                        "{:?} is too long: at most {} characters, so that <app>-platform-deploy-key fits in 63",
                        app.name,
                        63 - "-platform-deploy-key".len()
                    ),
                ));
            }
            if !app_names.insert(app.name.as_str()) {
                return Err(err(
                    format!("{f}.name"),
                    format!("{:?} is used by an earlier app", app.name),
                ));
            }
            validate_repo(&format!("{f}.repo"), &app.repo)?;
            validate_app(&f, app, &mut targets)?;
        }
        Ok(())
    }
}

fn validate_app(
    f: &str,
    app: &App,
    targets: &mut BTreeMap<(String, String), String>,
) -> Result<(), ModelError> {
    if app.environments.is_empty() {
        return Err(err(
            format!("{f}.environments"),
            "needs at least one environment",
        ));
    }
    let mut env_names = BTreeSet::new();
    let mut namespaces = BTreeSet::new();
    for (j, env) in app.environments.iter().enumerate() {
        let g = format!("{f}.environments[{j}]");
        validate_label(&format!("{g}.name"), &env.name)?;
        validate_label(&format!("{g}.namespace"), &env.namespace)?;
        if !env_names.insert(env.name.as_str()) {
            return Err(err(
                format!("{g}.name"),
                format!("{:?} is used by an earlier environment", env.name),
            ));
        }
        if !namespaces.insert(env.namespace.as_str()) {
            return Err(err(
                format!("{g}.namespace"),
                format!("{:?} is used by an earlier environment", env.namespace),
            ));
        }
    }
    let mut secret_names = BTreeSet::new();
    for (k, s) in app.secrets.iter().enumerate() {
        let g = format!("{f}.secrets[{k}]");
        validate_label(&format!("{g}.name"), &s.name)?;
        validate_label(&format!("{g}.target_name"), &s.target_name)?;
        if !secret_names.insert(s.name.as_str()) {
            return Err(err(
                format!("{g}.name"),
                format!("{:?} is used by an earlier secret of this app", s.name),
            ));
        }
        if s.type_.is_empty()
            || s.type_.len() > 253
            || !s
                .type_
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_'))
        {
            return Err(err(
                format!("{g}.type"),
                format!(
                    "{:?} is not a Secret type (like Opaque or kubernetes.io/tls)",
                    s.type_
                ),
            ));
        }
        for (e, env) in s.environments.iter().enumerate() {
            if !env_names.contains(env.as_str()) {
                return Err(err(
                    format!("{g}.environments[{e}]"),
                    format!("{env:?} is not an environment of app {:?}", app.name),
                ));
            }
        }
        if s.data.is_empty() {
            return Err(err(format!("{g}.data"), "needs at least one key"));
        }
        // Kubernetes refuses these types without their keys; say so here, not at apply time.
        let required: &[&str] = match s.type_.as_str() {
            "kubernetes.io/tls" => &["tls.crt", "tls.key"],
            "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
            "kubernetes.io/dockercfg" => &[".dockercfg"],
            "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
            _ => &[],
        };
        for key in required {
            if !s.data.iter().any(|(k, _)| k == key) {
                return Err(err(
                    format!("{g}.data"),
                    format!("a Secret of type {} needs the key {key:?}", s.type_),
                ));
            }
        }
        let mut keys = BTreeSet::new();
        for (key, _) in &s.data {
            validate_data_key(&format!("{g}.data"), key)?;
            if !keys.insert(key.as_str()) {
                return Err(err(
                    format!("{g}.data"),
                    format!("key {key:?} appears twice"),
                ));
            }
        }
        for ns in app.target_namespaces(s) {
            let target = (ns.to_string(), s.target_name.clone());
            if let Some(owner) = targets.insert(target, app.name.clone()) {
                let whose = if owner == app.name {
                    "another secret of this app".to_string()
                } else {
                    format!("app {owner:?}")
                };
                return Err(err(
                    g,
                    format!(
                        "Secret {ns}/{} is already managed by {whose}",
                        s.target_name
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// Splits `ssh://[user@]host[:port]/path` into (host, port).
pub fn ssh_host_port(url: &str) -> Option<(&str, u16)> {
    let rest = url.strip_prefix("ssh://")?;
    let authority = rest.split('/').next()?;
    let hostport = authority.rsplit('@').next()?;
    if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => 22,
            None => return None,
        };
        return Some((host, port));
    }
    match hostport.split_once(':') {
        Some((h, p)) => Some((h, p.parse().ok()?)),
        None => Some((hostport, 22)),
    }
}

fn validate_repo(f: &str, repo: &PlatformRepo) -> Result<(), ModelError> {
    let url = &repo.url;
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(err(
            format!("{f}.url"),
            "must not contain spaces or control characters",
        ));
    }
    if !(url.starts_with("ssh://") || url.starts_with("https://")) {
        let hint = if url.contains('@') && url.contains(':') && !url.contains("://") {
            " (scp-style git@host:path is refused by Flux; write ssh://git@host/path)"
        } else {
            ""
        };
        return Err(err(
            format!("{f}.url"),
            format!("{url:?} must start with ssh:// or https://{hint}"),
        ));
    }
    let has_path = url
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .is_some_and(|(host, path)| !host.is_empty() && !path.is_empty());
    if !has_path {
        return Err(err(
            format!("{f}.url"),
            format!("{url:?} needs a host and a repository path"),
        ));
    }
    let authority = url
        .split_once("://")
        .map(|(_, rest)| rest.split('/').next().unwrap_or(""))
        .unwrap_or("");
    if url.starts_with("https://") && authority.contains('@') {
        // Never echo it: the user part may be a token.
        return Err(err(
            format!("{f}.url"),
            "must not carry credentials (user@ or user:token@): the URL is committed in clear",
        ));
    }
    validate_branch(&format!("{f}.branch"), &repo.branch)?;
    if repo.is_ssh() {
        let (host, port) = ssh_host_port(url)
            .filter(|(h, _)| !h.is_empty())
            .ok_or_else(|| {
                err(
                    format!("{f}.url"),
                    format!("{url:?} has no valid host:port"),
                )
            })?;
        let Some(kh) = repo.known_hosts.as_deref().filter(|k| !k.trim().is_empty()) else {
            return Err(err(
                format!("{f}.known_hosts"),
                "is required for an ssh:// URL (Flux pins the host key)",
            ));
        };
        // Flux's known_hosts check, like OpenSSH's, looks the host up as `[host]:port` when the
        // port is not 22: a plain `host` line silently fails to match there.
        let wanted = if port == 22 {
            host.to_string()
        } else {
            format!("[{host}]:{port}")
        };
        let mut any = false;
        for (n, line) in kh.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 3 {
                return Err(err(
                    format!("{f}.known_hosts"),
                    format!("line {}: expected `host keytype base64-key`", n + 1),
                ));
            }
            // Hashed entries (`|1|salt|hash`) cannot be checked here; trust them.
            if fields[0].starts_with("|1|") || fields[0].split(',').any(|h| h == wanted) {
                any = true;
            }
        }
        if !any {
            return Err(err(
                format!("{f}.known_hosts"),
                format!("has no line for {wanted:?}, the host of {url:?}"),
            ));
        }
    } else if repo.known_hosts.is_some() {
        return Err(err(
            format!("{f}.known_hosts"),
            "is only used with an ssh:// URL",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::AgeKey;

    fn state() -> DesiredState {
        DesiredState {
            cluster: Cluster {
                name: "prod".into(),
                recipients: ChainRecipients {
                    cluster: AgeKey::generate().recipient(),
                    break_glass: None,
                },
                flux_namespace: "flux-system".into(),
                flux_source: "flux-system".into(),
                decryption_secret: "sops-age".into(),
            },
            apps: vec![App {
                credentials: Vec::new(),
                external: None,
                name: "shop".into(),
                repo: PlatformRepo {
                    url: "ssh://git@example.com/acme/shop-platform.git".into(),
                    branch: "main".into(),
                    known_hosts: Some("example.com ssh-ed25519 AAAAC3Nza".into()),
                },
                environments: vec![
                    Environment {
                        name: "staging".into(),
                        namespace: "shop-staging".into(),
                        variables: Default::default(),
                        source: None,
                    },
                    Environment {
                        name: "prod".into(),
                        namespace: "shop-prod".into(),
                        variables: Default::default(),
                        source: None,
                    },
                ],
                secrets: vec![ManagedSecret {
                    name: "db".into(),
                    target_name: "db".into(),
                    environments: vec![],
                    type_: "Opaque".into(),
                    data: vec![("password".into(), SecretValue::new(b"hunter2".to_vec()))],
                    spec: None,
                }],
            }],
        }
    }

    fn fails(f: impl FnOnce(&mut DesiredState), field: &str, words: &str) {
        let mut s = state();
        f(&mut s);
        let e = s.validate().unwrap_err();
        assert_eq!(e.field, field, "{e}");
        assert!(e.problem.contains(words), "{e}");
        assert!(!e.to_string().contains("hunter2"));
        assert!(!e.to_string().contains("ghp_TOKEN"));
    }

    #[test]
    fn a_good_state_passes_and_targets_every_env_by_default() {
        let s = state();
        s.validate().unwrap();
        let app = &s.apps[0];
        assert_eq!(
            app.target_namespaces(&app.secrets[0]),
            ["shop-staging", "shop-prod"]
        );
        assert!(!format!("{:?}", app.secrets[0]).contains("hunter2"));
    }

    #[test]
    fn errors_name_the_field() {
        fails(
            |s| s.cluster.name = "Prod".into(),
            "cluster.name",
            "lowercase",
        );
        fails(
            |s| s.cluster.recipients.cluster = "age1xyz".into(),
            "cluster.recipient",
            "",
        );
        fails(
            |s| s.apps[0].name = "a/b".into(),
            "apps[0].name",
            "lowercase",
        );
        fails(
            |s| s.apps[0].name = "a".repeat(44),
            "apps[0].name",
            "too long",
        );
        fails(
            |s| {
                let a = s.apps[0].clone();
                s.apps.push(a)
            },
            "apps[1].name",
            "earlier app",
        );
        fails(
            |s| s.apps[0].environments[1].namespace = "shop-staging".into(),
            "apps[0].environments[1].namespace",
            "earlier environment",
        );
        fails(
            |s| s.apps[0].environments[0].namespace = "Shop".into(),
            "apps[0].environments[0].namespace",
            "lowercase",
        );
        fails(
            |s| s.apps[0].secrets[0].environments = vec!["dev".into()],
            "apps[0].secrets[0].environments[0]",
            "not an environment",
        );
        fails(
            |s| s.apps[0].secrets[0].target_name = "..".into(),
            "apps[0].secrets[0].target_name",
            "lowercase",
        );
        fails(
            |s| s.apps[0].secrets[0].data[0].0 = "a/b".into(),
            "apps[0].secrets[0].data",
            "letters",
        );
        fails(
            |s| s.apps[0].secrets[0].data.clear(),
            "apps[0].secrets[0].data",
            "at least one",
        );
        fails(
            |s| s.apps[0].secrets[0].type_ = "no spaces".into(),
            "apps[0].secrets[0].type",
            "Secret type",
        );
        fails(
            |s| {
                let mut other = s.apps[0].clone();
                other.name = "other".into();
                s.apps.push(other)
            },
            "apps[1].secrets[0]",
            "already managed by app \"shop\"",
        );
        fails(
            |s| s.apps[0].repo.url = "git@github.com:acme/x.git".into(),
            "apps[0].repo.url",
            "scp-style",
        );
        fails(
            |s| s.apps[0].repo.known_hosts = None,
            "apps[0].repo.known_hosts",
            "required",
        );
        fails(
            |s| s.apps[0].repo.url = "ssh://git@example.com:2222/acme/x.git".into(),
            "apps[0].repo.known_hosts",
            "[example.com]:2222",
        );
        fails(
            |s| {
                s.apps[0].repo.url = "https://bob:ghp_TOKEN@example.com/a/b.git".into();
                s.apps[0].repo.known_hosts = None;
            },
            "apps[0].repo.url",
            "credentials",
        );
        fails(
            |s| s.apps[0].secrets[0].type_ = "kubernetes.io/tls".into(),
            "apps[0].secrets[0].data",
            "tls.crt",
        );
        fails(
            |s| s.apps[0].repo.branch = "a..b".into(),
            "apps[0].repo.branch",
            "..",
        );
    }

    #[test]
    fn ssh_urls() {
        assert_eq!(
            ssh_host_port("ssh://git@example.com/a/b"),
            Some(("example.com", 22))
        );
        assert_eq!(
            ssh_host_port("ssh://git@127.0.0.1:2222/a/b"),
            Some(("127.0.0.1", 2222))
        );
        assert_eq!(ssh_host_port("ssh://[::1]:2222/a"), Some(("::1", 2222)));
        assert_eq!(ssh_host_port("https://x/y"), None);
    }
}
