//! `.sops.yaml`: finding it and choosing the creation rule for a file, as sops 3.11 does
//! (SOPS-FORMAT.md 9).
//!
//! Discovery starts at the working directory (not the file's) and walks up to 100 parents; a
//! `--config` path or `SOPS_CONFIG` wins. The rule's `path_regex` sees the file's absolute path with
//! the config directory prefix removed when the file lies below it.

use std::path::{Path, PathBuf};

use regex::Regex;

use super::rules::RULE_KEYS;
use super::store::yaml;
use super::value::{Map, Value};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {reason}")]
    Read { path: String, reason: String },
    #[error("{path}: {field}: {problem}")]
    Field {
        path: String,
        field: String,
        problem: String,
    },
    #[error("error loading config {path}: no matching creation rules found for {file}")]
    NoMatchingRule { path: String, file: String },
}

/// One creation rule, validated.
#[derive(Debug, Clone)]
pub struct CreationRule {
    pub path_regex: Option<Regex>,
    /// Age recipients per key group (one group unless `key_groups` is used).
    pub key_groups: Vec<Vec<String>>,
    pub shamir_threshold: usize,
    /// `(rule key, value)` for each crypt rule the creation rule sets.
    pub crypt: Vec<(&'static str, String)>,
    pub mac_only_encrypted: bool,
}

/// A parsed `.sops.yaml`.
#[derive(Debug, Clone, Default)]
pub struct SopsConfig {
    /// The file it was read from.
    pub path: PathBuf,
    pub creation_rules: Vec<CreationRule>,
    pub yaml_indent: Option<usize>,
    pub json_indent: Option<usize>,
}

/// Looks for `.sops.yaml` in `start` and up to 100 parent directories.
pub fn find(start: &Path) -> Option<PathBuf> {
    start
        .ancestors()
        .take(101)
        .map(|d| d.join(".sops.yaml"))
        .find(|p| p.is_file())
}

impl SopsConfig {
    pub fn load(path: &Path) -> Result<SopsConfig, ConfigError> {
        let shown = path.display().to_string();
        let bytes = std::fs::read(path).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        Self::parse(&bytes, path)
    }

    pub fn parse(bytes: &[u8], path: &Path) -> Result<SopsConfig, ConfigError> {
        let shown = path.display().to_string();
        let field_err = |field: &str, problem: &str| ConfigError::Field {
            path: shown.clone(),
            field: field.to_string(),
            problem: problem.to_string(),
        };
        let docs = yaml::parse(bytes).map_err(|e| ConfigError::Read {
            path: shown.clone(),
            reason: e.to_string(),
        })?;
        let mut cfg = SopsConfig {
            path: path.to_path_buf(),
            ..Default::default()
        };
        let Some(root) = docs.into_iter().next() else {
            return Ok(cfg);
        };
        if let Some(Value::Map(stores)) = root.get("stores") {
            let indent = |name: &str| -> Result<Option<usize>, ConfigError> {
                match stores
                    .get(name)
                    .and_then(|s| s.as_map())
                    .and_then(|m| m.get("indent"))
                {
                    None | Some(Value::Null) => Ok(None),
                    Some(Value::Int(i)) if *i > 0 => Ok(Some(*i as usize)),
                    Some(Value::Int(_)) => Ok(None),
                    Some(_) => Err(field_err(
                        &format!("stores.{name}.indent"),
                        "must be an integer",
                    )),
                }
            };
            cfg.yaml_indent = indent("yaml")?;
            cfg.json_indent = indent("json")?;
        }
        let rules = match root.get("creation_rules") {
            None | Some(Value::Null) => return Ok(cfg),
            Some(Value::Seq(s)) => s,
            Some(_) => return Err(field_err("creation_rules", "must be a list")),
        };
        for (i, r) in rules.iter().enumerate() {
            let Value::Map(m) = r else {
                return Err(field_err(
                    &format!("creation_rules[{i}]"),
                    "must be a mapping",
                ));
            };
            cfg.creation_rules.push(parse_rule(m, &|f, p| {
                field_err(&format!("creation_rules[{i}].{f}"), p)
            })?);
        }
        Ok(cfg)
    }

    /// The first rule whose `path_regex` is empty or matches `file`. `Ok(None)` when the config
    /// has no rules at all (sops treats that as no config).
    pub fn rule_for(&self, file: &Path) -> Result<Option<&CreationRule>, ConfigError> {
        if self.creation_rules.is_empty() {
            return Ok(None);
        }
        let rel = self.relative_path(file);
        self.creation_rules
            .iter()
            .find(|r| r.path_regex.as_ref().is_none_or(|re| re.is_match(&rel)))
            .map(Some)
            .ok_or_else(|| ConfigError::NoMatchingRule {
                path: self.path.display().to_string(),
                file: rel,
            })
    }

    fn relative_path(&self, file: &Path) -> String {
        let dir = self.path.parent().unwrap_or(Path::new(""));
        match file.strip_prefix(dir) {
            Ok(rel) if !dir.as_os_str().is_empty() => rel.to_string_lossy().into_owned(),
            _ => file.to_string_lossy().into_owned(),
        }
    }
}

/// A key list: a comma-separated string (items trimmed, empties dropped) or a YAML list.
fn key_list(v: &Value) -> Option<Vec<String>> {
    match v {
        Value::Str(s) => Some(
            s.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect(),
        ),
        Value::Seq(items) => items
            .iter()
            .map(|i| i.as_str().map(|s| s.trim().to_string()))
            .collect(),
        Value::Null => Some(Vec::new()),
        _ => None,
    }
}

const FOREIGN_KEYS: [&str; 6] = [
    "pgp",
    "kms",
    "gcp_kms",
    "azure_keyvault",
    "hc_vault_transit_uri",
    "hckms",
];

fn parse_rule(
    m: &Map,
    err: &dyn Fn(&str, &str) -> ConfigError,
) -> Result<CreationRule, ConfigError> {
    let path_regex = match m.get("path_regex") {
        None | Some(Value::Null) => None,
        Some(Value::Str(s)) if s.is_empty() => None,
        Some(Value::Str(s)) => Some(Regex::new(s).map_err(|e| err("path_regex", &e.to_string()))?),
        Some(_) => return Err(err("path_regex", "must be a string")),
    };
    for k in FOREIGN_KEYS {
        if m.get(k)
            .is_some_and(|v| key_list(v).is_none_or(|l| !l.is_empty()))
        {
            return Err(err(k, "only age keys are supported by sealwright"));
        }
    }
    let key_groups = match m.get("key_groups") {
        Some(Value::Seq(groups)) => groups
            .iter()
            .enumerate()
            .map(|(i, g)| group_recipients(g, &|p| err(&format!("key_groups[{i}]"), p)))
            .collect::<Result<Vec<_>, _>>()?,
        Some(Value::Null) | None => {
            let age = match m.get("age") {
                None => Vec::new(),
                Some(v) => key_list(v)
                    .ok_or_else(|| err("age", "must be a string or a list of strings"))?,
            };
            if age.is_empty() {
                Vec::new()
            } else {
                vec![age]
            }
        }
        Some(_) => return Err(err("key_groups", "must be a list")),
    };
    let shamir_threshold = match m.get("shamir_threshold") {
        None | Some(Value::Null) => 0,
        Some(Value::Int(i)) if *i >= 0 => *i as usize,
        Some(_) => return Err(err("shamir_threshold", "must be a non-negative integer")),
    };
    let mut crypt = Vec::new();
    for k in RULE_KEYS {
        match m.get(k) {
            None | Some(Value::Null) => {}
            Some(Value::Str(s)) if s.is_empty() => {}
            Some(Value::Str(s)) => crypt.push((k, s.clone())),
            Some(_) => return Err(err(k, "must be a string")),
        }
    }
    let mac_only_encrypted = match m.get("mac_only_encrypted") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(err("mac_only_encrypted", "must be true or false")),
    };
    Ok(CreationRule {
        path_regex,
        key_groups,
        shamir_threshold,
        crypt,
        mac_only_encrypted,
    })
}

fn group_recipients(
    g: &Value,
    err: &dyn Fn(&str) -> ConfigError,
) -> Result<Vec<String>, ConfigError> {
    let Value::Map(m) = g else {
        return Err(err("must be a mapping"));
    };
    for k in [
        "pgp",
        "kms",
        "gcp_kms",
        "azure_keyvault",
        "hc_vault",
        "hckms",
    ] {
        if m.get(k).is_some_and(|v| {
            !matches!(v, Value::Null) && !matches!(v, Value::Seq(s) if s.is_empty())
        }) {
            return Err(err("only age keys are supported by sealwright"));
        }
    }
    let mut out: Vec<String> = match m.get("age") {
        None => Vec::new(),
        Some(v) => key_list(v).ok_or_else(|| err("age must be a list of strings"))?,
    };
    if let Some(Value::Seq(merged)) = m.get("merge") {
        for sub in merged {
            out.extend(group_recipients(sub, err)?);
        }
    }
    // Keys inside a group are de-duplicated by their string form, first occurrence kept.
    let mut seen = std::collections::HashSet::new();
    out.retain(|r| seen.insert(r.clone()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CFG: &str = r#"
creation_rules:
  - path_regex: secrets/.*\.sops\.yaml$
    encrypted_regex: ^(data|stringData)$
    age: >-
      age1aaa,
      age1bbb
  - path_regex: groups/
    shamir_threshold: 2
    key_groups:
      - age: [age1aaa, age1aaa]
      - age:
          - age1ccc
        merge:
          - age: [age1ddd]
  - age: [age1fallback]
stores:
  yaml:
    indent: 2
"#;

    #[test]
    fn rules_are_selected_in_order_on_the_relative_path() {
        let cfg = SopsConfig::parse(CFG.as_bytes(), Path::new("/repo/.sops.yaml")).unwrap();
        assert_eq!(cfg.yaml_indent, Some(2));
        let r = cfg
            .rule_for(Path::new("/repo/secrets/ns/x.sops.yaml"))
            .unwrap()
            .unwrap();
        assert_eq!(
            r.key_groups,
            vec![vec!["age1aaa".to_string(), "age1bbb".to_string()]]
        );
        assert_eq!(
            r.crypt,
            vec![("encrypted_regex", "^(data|stringData)$".to_string())]
        );
        let r = cfg
            .rule_for(Path::new("/repo/groups/x.yaml"))
            .unwrap()
            .unwrap();
        assert_eq!(r.shamir_threshold, 2);
        assert_eq!(
            r.key_groups,
            vec![
                vec!["age1aaa".to_string()],
                vec!["age1ccc".into(), "age1ddd".into()]
            ]
        );
        let r = cfg
            .rule_for(Path::new("/elsewhere/x.yaml"))
            .unwrap()
            .unwrap();
        assert_eq!(r.key_groups, vec![vec!["age1fallback".to_string()]]);
    }

    #[test]
    fn no_matching_rule_is_an_error_and_no_rules_is_no_config() {
        let cfg = SopsConfig::parse(
            b"creation_rules:\n  - path_regex: only/\n    age: age1x\n",
            Path::new("/r/.sops.yaml"),
        )
        .unwrap();
        let err = cfg.rule_for(Path::new("/r/other.yaml")).unwrap_err();
        assert!(err.to_string().contains("no matching creation rules found"));
        let empty = SopsConfig::parse(b"stores: {}\n", Path::new("/r/.sops.yaml")).unwrap();
        assert!(empty.rule_for(Path::new("/r/x.yaml")).unwrap().is_none());
    }

    #[test]
    fn bad_fields_are_named() {
        let err = SopsConfig::parse(
            b"creation_rules:\n  - path_regex: '('\n",
            Path::new("/r/.sops.yaml"),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("creation_rules[0].path_regex"),
            "{err}"
        );
        let err = SopsConfig::parse(
            b"creation_rules:\n  - pgp: ABCDEF\n",
            Path::new("/r/.sops.yaml"),
        )
        .unwrap_err();
        assert!(err.to_string().contains("pgp"), "{err}");
    }

    #[test]
    fn discovery_walks_up() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(".sops.yaml"), "creation_rules: []\n").unwrap();
        let deep = dir.path().join("a/b/c");
        std::fs::create_dir_all(&deep).unwrap();
        assert_eq!(find(&deep), Some(dir.path().join(".sops.yaml")));
    }
}
