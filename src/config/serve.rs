//! The server's configuration file (`sealwright serve --config FILE`, `reconcile --once`,
//! `doctor`): the cluster, the Git host and its repositories, the registrations directory, the
//! listen address and timings. Read once at start-up and checked completely: every error names
//! the field (`host.flux_url`), unknown fields included. Credentials never live in this file:
//! they come from the environment (`SEALWRIGHT_ADMIN_TOKEN`, `SEALWRIGHT_GITHUB_TOKEN`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{bad, cluster, ClusterConfig, ConfigError, Fields};
use crate::model::ModelError;
use crate::sops::Value;

/// Where the platform repos and the Flux repo live.
#[derive(Debug, Clone)]
pub enum HostConfig {
    /// Bare repositories under `<data dir>/repos/<owner>/` (the embedded default).
    Local {
        owner: String,
        /// The GitRepository URL a cluster would use, with `{owner}` and `{name}` filled in.
        flux_url: String,
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
        },
        Some(v) => host(v)?,
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
    })
}

/// Where the embedded default says a cluster would reach its repos.
pub const DEFAULT_FLUX_URL: &str = "https://git.example.invalid/{owner}/{name}.git";

fn host(v: &Value) -> Result<HostConfig, ModelError> {
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
            HostConfig::Local { owner, flux_url }
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
        ] {
            let e = load(text).unwrap_err();
            assert!(e.contains(field), "{text}: {e}");
        }
    }
}
