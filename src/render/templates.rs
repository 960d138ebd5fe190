//! The minijinja templates every generated file comes from: embedded defaults from `templates/`,
//! optionally overridden file by file from a directory named in the configuration.
//!
//! [`Templates::load`] compiles them and renders each one with a sample context, so a syntax
//! error, a missing variable (undefined variables are errors) or output that is not YAML stops
//! the process at start-up rather than at the first reconcile. Secret values never pass through
//! a template: templates place opaque tokens that the renderer swaps for the values afterwards.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

/// Every template: its file name and the embedded default.
pub const DEFAULTS: &[(&str, &str)] = &[
    (
        "platform-sops.yaml.j2",
        include_str!("../../templates/platform-sops.yaml.j2"),
    ),
    (
        "platform-secrets-kustomization.yaml.j2",
        include_str!("../../templates/platform-secrets-kustomization.yaml.j2"),
    ),
    (
        "secret.yaml.j2",
        include_str!("../../templates/secret.yaml.j2"),
    ),
    (
        "platform-checksums.yaml.j2",
        include_str!("../../templates/platform-checksums.yaml.j2"),
    ),
    (
        "platform-environment.yaml.j2",
        include_str!("../../templates/platform-environment.yaml.j2"),
    ),
    (
        "credentials-secret.yaml.j2",
        include_str!("../../templates/credentials-secret.yaml.j2"),
    ),
    (
        "external-secrets.yaml.j2",
        include_str!("../../templates/external-secrets.yaml.j2"),
    ),
    (
        "flux-apps.yaml.j2",
        include_str!("../../templates/flux-apps.yaml.j2"),
    ),
    (
        "flux-apps-kustomization.yaml.j2",
        include_str!("../../templates/flux-apps-kustomization.yaml.j2"),
    ),
    (
        "flux-app-kustomization.yaml.j2",
        include_str!("../../templates/flux-app-kustomization.yaml.j2"),
    ),
    (
        "flux-gitrepository.yaml.j2",
        include_str!("../../templates/flux-gitrepository.yaml.j2"),
    ),
    (
        "flux-sync.yaml.j2",
        include_str!("../../templates/flux-sync.yaml.j2"),
    ),
    (
        "flux-rbac.yaml.j2",
        include_str!("../../templates/flux-rbac.yaml.j2"),
    ),
    (
        "flux-age-secret.yaml.j2",
        include_str!("../../templates/flux-age-secret.yaml.j2"),
    ),
    (
        "flux-deploy-key.yaml.j2",
        include_str!("../../templates/flux-deploy-key.yaml.j2"),
    ),
    (
        "flux-sops.yaml.j2",
        include_str!("../../templates/flux-sops.yaml.j2"),
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("templates dir {dir}: {reason}")]
    Dir { dir: String, reason: String },
    #[error("template {name}: {reason}")]
    Bad { name: String, reason: String },
}

/// The compiled templates, ready to render.
pub struct Templates {
    env: Environment<'static>,
}

impl std::fmt::Debug for Templates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Templates").finish_non_exhaustive()
    }
}

fn minijinja_reason(e: &minijinja::Error) -> String {
    // The alternate form adds the line and a caret; the source of our templates holds no secret.
    let mut s = e.to_string();
    if let Some(line) = e.line() {
        if !s.contains("line") {
            s.push_str(&format!(" (line {line})"));
        }
    }
    s
}

/// Double-quotes a string for YAML (JSON string syntax is valid YAML), so URLs, key lists and
/// types never change meaning whatever characters they hold.
fn quote(s: String) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\u{:04x}", c as u32))
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl Templates {
    /// The embedded defaults only.
    pub fn embedded() -> Result<Templates, TemplateError> {
        Templates::load(None)
    }

    /// The embedded defaults, with any file of the same name in `dir` taking over. Files in
    /// `dir` that match no template are errors (a typo would otherwise be silently ignored).
    /// Every template is then checked by rendering it with a sample context.
    pub fn load(dir: Option<&Path>) -> Result<Templates, TemplateError> {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_keep_trailing_newline(true);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_auto_escape_callback(|_| AutoEscape::None);
        env.add_filter("quote", quote);
        let mut sources: BTreeMap<&str, String> =
            DEFAULTS.iter().map(|(n, s)| (*n, s.to_string())).collect();
        if let Some(dir) = dir {
            let shown = dir.display().to_string();
            let entries = std::fs::read_dir(dir).map_err(|e| TemplateError::Dir {
                dir: shown.clone(),
                reason: e.to_string(),
            })?;
            for entry in entries {
                let entry = entry.map_err(|e| TemplateError::Dir {
                    dir: shown.clone(),
                    reason: e.to_string(),
                })?;
                let name = entry.file_name().to_string_lossy().into_owned();
                // `ui/` holds the dashboard's pages (the edge loads them), not files sealwright writes.
                if name.starts_with('.')
                    || name.eq_ignore_ascii_case("README.md")
                    || (name == "ui" && entry.path().is_dir())
                {
                    continue;
                }
                let Some((known, _)) = DEFAULTS.iter().find(|(n, _)| *n == name) else {
                    return Err(TemplateError::Dir {
                        dir: shown,
                        reason: format!(
                            "{name:?} is not a template sealwright uses (known: {})",
                            DEFAULTS
                                .iter()
                                .map(|(n, _)| *n)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    });
                };
                let text =
                    std::fs::read_to_string(entry.path()).map_err(|e| TemplateError::Bad {
                        name: entry.path().display().to_string(),
                        reason: e.to_string(),
                    })?;
                sources.insert(known, text);
            }
        }
        for (name, text) in sources {
            env.add_template_owned(name, text)
                .map_err(|e| TemplateError::Bad {
                    name: name.to_string(),
                    reason: minijinja_reason(&e),
                })?;
        }
        let t = Templates { env };
        t.self_check()?;
        Ok(t)
    }

    /// Renders one template.
    pub fn render<S: Serialize>(&self, name: &str, ctx: &S) -> Result<String, TemplateError> {
        let bad = |e: minijinja::Error| TemplateError::Bad {
            name: name.to_string(),
            reason: minijinja_reason(&e),
        };
        self.env
            .get_template(name)
            .map_err(bad)?
            .render(ctx)
            .map_err(bad)
    }

    /// Renders every template with a sample context and parses the result as YAML.
    fn self_check(&self) -> Result<(), TemplateError> {
        for (name, ctx) in super::sample_contexts() {
            let text = self.render(name, &ctx)?;
            sops::store::yaml::parse(text.as_bytes()).map_err(|e| TemplateError::Bad {
                name: name.to_string(),
                reason: format!("output is not YAML with the sample context: {e}"),
            })?;
            // Where secret values go: each exactly once, and only where it gets encrypted.
            let stand_ins: Vec<zeroize::Zeroizing<String>> = (0..super::values_placed(name))
                .map(|i| zeroize::Zeroizing::new(format!("c2FtcGxl{i}")))
                .collect();
            super::fill(name, &text, &stand_ins)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quote_is_a_yaml_double_quoted_string() {
        for s in [
            "plain",
            "a: b",
            "#x",
            "q\"uote",
            "back\\slash",
            "new\nline",
            "\u{1}",
        ] {
            let q = quote(s.to_string());
            let doc = format!("k: {q}\n");
            let parsed = sops::store::yaml::parse(doc.as_bytes()).unwrap();
            assert_eq!(parsed[0].get("k").unwrap().as_str(), Some(s), "{q}");
        }
    }

    #[test]
    fn embedded_templates_pass_the_start_up_check() {
        Templates::embedded().unwrap();
    }

    fn dir_with(name: &str, text: &str) -> tempfile::TempDir {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join(name), text).unwrap();
        d
    }

    #[test]
    fn an_override_replaces_its_default() {
        let d = dir_with(
            "flux-sops.yaml.j2",
            "# custom\ncreation_rules:\n  - age: {{ recipients | join(\",\") | quote }}\n",
        );
        let t = Templates::load(Some(d.path())).unwrap();
        let out = t
            .render(
                "flux-sops.yaml.j2",
                &serde_json_like(&[("recipients", vec!["age1x"])]),
            )
            .unwrap();
        assert_eq!(out, "# custom\ncreation_rules:\n  - age: \"age1x\"\n");
    }

    fn serde_json_like(pairs: &[(&str, Vec<&str>)]) -> BTreeMap<String, Vec<String>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.iter().map(|s| s.to_string()).collect()))
            .collect()
    }

    #[test]
    fn bad_templates_fail_at_load_with_their_name() {
        let cases = [
            ("flux-sync.yaml.j2", "{% if %}", "syntax"),
            ("flux-sync.yaml.j2", "name: {{ app.nmae }}\n", "undefined"),
            (
                "flux-sync.yaml.j2",
                "name: {{ no_such_var }}\n",
                "undefined",
            ),
            ("flux-sync.yaml.j2", "a: [\n", "not YAML"),
            (
                "secret.yaml.j2",
                "kind: Secret\nmetadata:\n  annotations:\n{% for i in data %}    {{ i.key }}: {{ i.value }}\n{% endfor %}data: {}\n",
                "outside data/stringData",
            ),
            (
                "flux-age-secret.yaml.j2",
                "kind: Secret\ndata: {}\n# {{ age_key }}\n",
                "placed exactly once",
            ),
        ];
        for (name, text, words) in cases {
            let d = dir_with(name, text);
            let e = Templates::load(Some(d.path())).unwrap_err().to_string();
            assert!(e.starts_with(&format!("template {name}: ")), "{e}");
            assert!(e.contains(words), "{text}: {e}");
        }
        let d = dir_with("flux-synk.yaml.j2", "x: y\n");
        let e = Templates::load(Some(d.path())).unwrap_err().to_string();
        assert!(e.contains("\"flux-synk.yaml.j2\" is not a template"), "{e}");
        let e = Templates::load(Some(Path::new("/nonexistent/tpl")))
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("templates dir /nonexistent/tpl: "), "{e}");
    }
}
