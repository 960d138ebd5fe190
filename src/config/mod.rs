//! The configuration file: desired state in YAML (cluster, apps, environments, secrets) plus
//! where templates come from. Read once, checked completely, turned into [`crate::model`].
//!
//! Every error names the field as a path (`apps[0].repo.url`); unknown fields are errors too, so
//! a typo never silently drops a setting. Secret values are never part of an error message.

pub mod serve;

use std::path::{Path, PathBuf};

use crate::keys::chain::ChainRecipients;
use crate::model::{
    App, Cluster, DesiredState, Environment, ManagedSecret, ModelError, PlatformRepo, SecretValue,
};
use sops::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("config {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("config {path}: {source}")]
    Yaml {
        path: String,
        source: sops::store::yaml::YamlError,
    },
    #[error("config {path}: {source}")]
    Invalid { path: String, source: ModelError },
}

/// The parsed configuration file.
#[derive(Debug)]
pub struct Config {
    /// The cluster, with its recipient if the file names one.
    pub cluster: ClusterConfig,
    /// Overrides for the embedded templates (resolved against the config file's directory).
    pub templates_dir: Option<PathBuf>,
    pub apps: Vec<App>,
}

/// The `cluster` section. The recipient may come from the command line instead.
#[derive(Debug, Clone)]
pub struct ClusterConfig {
    pub name: String,
    pub recipient: Option<String>,
    pub break_glass_recipient: Option<String>,
    pub flux_namespace: String,
    pub flux_source: String,
    pub decryption_secret: String,
}

impl Config {
    /// Reads and parses a configuration file. Relative paths in it are relative to its directory.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load_one(path, |root, base| match root {
            Value::Map(m) => from_root(m, base),
            other => Err(bad(
                "(file)",
                format!("must be a mapping, not {}", kind(other)),
            )),
        })
    }

    /// Parses configuration text; `base` resolves relative paths.
    pub fn parse(bytes: &[u8], base: &Path) -> Result<Config, ConfigError> {
        let docs = sops::store::yaml::parse(bytes).map_err(|source| ConfigError::Yaml {
            path: "<text>".into(),
            source,
        })?;
        let invalid = |source| ConfigError::Invalid {
            path: "<text>".into(),
            source,
        };
        let root = match docs.as_slice() {
            [one] => one,
            _ => {
                return Err(invalid(bad(
                    "(file)",
                    "must hold exactly one YAML document",
                )))
            }
        };
        from_root(root, base).map_err(invalid)
    }

    /// The desired state, with the cluster recipient given (from the command line or the file).
    /// Validated completely.
    pub fn desired_state(&self, recipient: String) -> Result<DesiredState, ModelError> {
        let c = &self.cluster;
        let state = DesiredState {
            cluster: Cluster {
                name: c.name.clone(),
                recipients: ChainRecipients {
                    cluster: recipient,
                    break_glass: c.break_glass_recipient.clone(),
                },
                flux_namespace: c.flux_namespace.clone(),
                flux_source: c.flux_source.clone(),
                decryption_secret: c.decryption_secret.clone(),
            },
            apps: self.apps.clone(),
        };
        state.validate()?;
        Ok(state)
    }
}

/// Reads a configuration file holding exactly one YAML document, and parses it with `parse`
/// (given the document and the file's directory); errors carry the file's path.
fn load_one<T>(
    path: &Path,
    parse: impl FnOnce(&Value, &Path) -> Result<T, ModelError>,
) -> Result<T, ConfigError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    let base = path.parent().unwrap_or(Path::new("."));
    let docs = sops::store::yaml::parse(&bytes).map_err(|source| ConfigError::Yaml {
        path: shown.clone(),
        source,
    })?;
    let invalid = |source| ConfigError::Invalid {
        path: shown.clone(),
        source,
    };
    match docs.as_slice() {
        [one] => parse(&Value::Map(one.clone()), base).map_err(invalid),
        _ => Err(invalid(bad(
            "(file)",
            "must hold exactly one YAML document",
        ))),
    }
}

fn bad(field: impl Into<String>, problem: impl Into<String>) -> ModelError {
    ModelError {
        field: field.into(),
        problem: problem.into(),
    }
}

/// A mapping being read: remembers its path and which keys were used, so leftovers are errors.
struct Fields<'a> {
    path: String,
    map: &'a Map,
    used: Vec<&'static str>,
}

impl<'a> Fields<'a> {
    fn of(path: &str, v: &'a Value) -> Result<Fields<'a>, ModelError> {
        match v {
            Value::Map(map) => Ok(Fields {
                path: path.to_string(),
                map,
                used: Vec::new(),
            }),
            other => Err(bad(path, format!("must be a mapping, not {}", kind(other)))),
        }
    }

    fn field(&self, key: &str) -> String {
        if self.path.is_empty() {
            key.to_string()
        } else {
            format!("{}.{key}", self.path)
        }
    }

    fn get(&mut self, key: &'static str) -> Option<&'a Value> {
        self.used.push(key);
        self.map.get(key).filter(|v| !matches!(v, Value::Null))
    }

    fn opt_str(&mut self, key: &'static str) -> Result<Option<String>, ModelError> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Str(s)) => Ok(Some(s.clone())),
            Some(other) => Err(bad(
                self.field(key),
                format!("must be a string, not {}", kind(other)),
            )),
        }
    }

    fn str(&mut self, key: &'static str) -> Result<String, ModelError> {
        self.opt_str(key)?
            .ok_or_else(|| bad(self.field(key), "is required"))
    }

    pub(crate) fn seq(&mut self, key: &'static str) -> Result<&'a [Value], ModelError> {
        match self.get(key) {
            None => Ok(&[]),
            Some(Value::Seq(items)) => Ok(items),
            Some(other) => Err(bad(
                self.field(key),
                format!("must be a list, not {}", kind(other)),
            )),
        }
    }

    /// Every key of the mapping must have been asked for.
    fn finish(self) -> Result<(), ModelError> {
        for (k, _) in self.map.pairs() {
            if !self.used.contains(&k) {
                return Err(bad(
                    self.field(k),
                    format!("unknown field (expected one of: {})", self.used.join(", ")),
                ));
            }
        }
        Ok(())
    }
}

pub(crate) fn kind(v: &Value) -> &'static str {
    match v {
        Value::Map(_) => "a mapping",
        Value::Seq(_) => "a list",
        Value::Str(_) | Value::Bytes(_) => "a string",
        Value::Bool(_) => "a boolean (quote it to make it a string)",
        Value::Int(_) | Value::Uint(_) | Value::Float(_) => {
            "a number (quote it to make it a string)"
        }
        Value::Time(_) => "a timestamp (quote it to make it a string)",
        Value::Null => "null",
        Value::Comment(_) => "a comment",
    }
}

pub(crate) fn items(v: &[Value]) -> impl Iterator<Item = (usize, &Value)> {
    v.iter()
        .filter(|x| !matches!(x, Value::Comment(_)))
        .enumerate()
}

fn from_root(root: &Map, base: &Path) -> Result<Config, ModelError> {
    let root_value = Value::Map(root.clone());
    let mut top = Fields::of("", &root_value)?;
    let cluster_v = top
        .get("cluster")
        .ok_or_else(|| bad("cluster", "is required"))?;
    let cluster = cluster(cluster_v)?;
    let templates_dir = top.opt_str("templates_dir")?.map(|d| base.join(d));
    let mut apps = Vec::new();
    for (i, a) in items(top.seq("apps")?) {
        apps.push(app(&format!("apps[{i}]"), a)?);
    }
    top.finish()?;
    Ok(Config {
        cluster,
        templates_dir,
        apps,
    })
}

fn cluster(v: &Value) -> Result<ClusterConfig, ModelError> {
    let mut f = Fields::of("cluster", v)?;
    let c = ClusterConfig {
        name: f.str("name")?,
        recipient: f.opt_str("recipient")?,
        break_glass_recipient: f.opt_str("break_glass_recipient")?,
        flux_namespace: f
            .opt_str("flux_namespace")?
            .unwrap_or_else(|| "flux-system".into()),
        flux_source: f
            .opt_str("flux_source")?
            .unwrap_or_else(|| "flux-system".into()),
        decryption_secret: f
            .opt_str("decryption_secret")?
            .unwrap_or_else(|| "sops-age".into()),
    };
    f.finish()?;
    Ok(c)
}

fn app(path: &str, v: &Value) -> Result<App, ModelError> {
    let mut f = Fields::of(path, v)?;
    let name = f.str("name")?;
    let repo_v = f
        .get("repo")
        .ok_or_else(|| bad(format!("{path}.repo"), "is required"))?;
    let mut r = Fields::of(&format!("{path}.repo"), repo_v)?;
    let repo = PlatformRepo {
        url: r.str("url")?,
        branch: r.opt_str("branch")?.unwrap_or_else(|| "main".into()),
        known_hosts: r.opt_str("known_hosts")?,
    };
    r.finish()?;
    let mut environments = Vec::new();
    for (j, e) in items(f.seq("environments")?) {
        let mut g = Fields::of(&format!("{path}.environments[{j}]"), e)?;
        environments.push(Environment {
            name: g.str("name")?,
            namespace: g.str("namespace")?,
            variables: Default::default(),
            source: None,
        });
        g.finish()?;
    }
    let mut secrets = Vec::new();
    for (k, s) in items(f.seq("secrets")?) {
        secrets.push(secret(&format!("{path}.secrets[{k}]"), s)?);
    }
    f.finish()?;
    Ok(App {
        credentials: Vec::new(),
        external: None,
        name,
        repo,
        environments,
        secrets,
    })
}

fn secret(path: &str, v: &Value) -> Result<ManagedSecret, ModelError> {
    let mut f = Fields::of(path, v)?;
    let name = f.str("name")?;
    let target_name = f.opt_str("target_name")?.unwrap_or_else(|| name.clone());
    let mut environments = Vec::new();
    for (e, x) in items(f.seq("environments")?) {
        match x {
            Value::Str(s) => environments.push(s.clone()),
            other => {
                return Err(bad(
                    format!("{path}.environments[{e}]"),
                    format!("must be a string, not {}", kind(other)),
                ))
            }
        }
    }
    let type_ = f.opt_str("type")?.unwrap_or_else(|| "Opaque".into());
    let mut data = Vec::new();
    match f.get("data") {
        None => {}
        Some(Value::Map(m)) => {
            for (key, value) in m.pairs() {
                match value {
                    Value::Str(s) => {
                        data.push((key.to_string(), SecretValue::new(s.as_bytes().to_vec())))
                    }
                    Value::Bytes(b) => data.push((key.to_string(), SecretValue::new(b.clone()))),
                    // The kind only, never the value: this is a secret.
                    other => {
                        return Err(bad(
                            format!("{path}.data.{key}"),
                            format!("must be a string, not {}", kind(other)),
                        ))
                    }
                }
            }
        }
        Some(other) => {
            return Err(bad(
                format!("{path}.data"),
                format!("must be a mapping, not {}", kind(other)),
            ))
        }
    }
    f.finish()?;
    Ok(ManagedSecret {
        name,
        target_name,
        environments,
        type_,
        data,
        spec: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
cluster:
  name: demo
  recipient: age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p
apps:
  - name: shop
    repo:
      url: ssh://git@example.com/acme/shop-platform.git
      known_hosts: "example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    environments:
      - {name: staging, namespace: shop-staging}
      - {name: prod, namespace: shop-prod}
    secrets:
      # comments are fine anywhere
      - name: db
        environments: [staging]
        data:
          password: "1234"
          user: shop
"#;

    #[test]
    fn parses_with_defaults() {
        let c = Config::parse(GOOD.as_bytes(), Path::new("/etc/sw")).unwrap();
        assert_eq!(c.cluster.flux_namespace, "flux-system");
        assert_eq!(c.cluster.decryption_secret, "sops-age");
        let app = &c.apps[0];
        assert_eq!(app.repo.branch, "main");
        assert_eq!(app.secrets[0].target_name, "db");
        assert_eq!(app.secrets[0].type_, "Opaque");
        assert_eq!(app.secrets[0].data[0].1.expose(), b"1234");
        let state = c
            .desired_state(c.cluster.recipient.clone().unwrap())
            .unwrap();
        assert_eq!(state.apps.len(), 1);
    }

    fn error_of(yaml: &str) -> String {
        Config::parse(yaml.as_bytes(), Path::new("."))
            .expect_err("should fail")
            .to_string()
    }

    #[test]
    fn errors_name_the_field_and_never_the_value() {
        let e = error_of(&GOOD.replace("password: \"1234\"", "password: 1234"));
        assert!(
            e.contains("apps[0].secrets[0].data.password: must be a string, not a number"),
            "{e}"
        );
        assert!(!e.contains("1234"), "{e}");
        let e = error_of(&GOOD.replace("known_hosts:", "knownhosts:"));
        assert!(e.contains("apps[0].repo.knownhosts: unknown field"), "{e}");
        let e = error_of(&GOOD.replace("  name: demo\n", ""));
        assert!(e.contains("cluster.name: is required"), "{e}");
        let e = error_of("apps: []\n");
        assert!(e.contains("cluster: is required"), "{e}");
        let e = error_of("cluster: [1]\n");
        assert!(e.contains("cluster: must be a mapping, not a list"), "{e}");
        let e = error_of("a: b\n---\nc: d\n");
        assert!(e.contains("exactly one YAML document"), "{e}");
        let e = error_of("cluster: {name: x\n");
        assert!(e.starts_with("config <text>: yaml:"), "{e}");
        let e = error_of(&GOOD.replace("  name: demo\n", "  name: demo\n  name: again\n"));
        assert!(e.contains("mapping key \"name\" already defined"), "{e}");
    }

    #[test]
    fn model_rules_apply_with_field_names() {
        let c = Config::parse(
            GOOD.replace("environments: [staging]", "environments: [dev]")
                .as_bytes(),
            Path::new("."),
        )
        .unwrap();
        let e = c
            .desired_state(c.cluster.recipient.clone().unwrap())
            .unwrap_err();
        assert_eq!(e.field, "apps[0].secrets[0].environments[0]");
    }

    #[test]
    fn templates_dir_is_relative_to_the_file() {
        let c = Config::parse(
            format!("{GOOD}templates_dir: tpl\n").as_bytes(),
            Path::new("/etc/sw"),
        )
        .unwrap();
        assert_eq!(c.templates_dir.unwrap(), Path::new("/etc/sw/tpl"));
    }
}
