//! The dashboard's HTML templates (minijinja, HTML auto-escaping on): embedded defaults from
//! `templates/ui/`, each overridable by a file of the same name in `<templates_dir>/ui/`. They
//! are compiled at start-up, so a syntax error stops the server before it serves a page.

use std::collections::BTreeMap;
use std::path::Path;

use minijinja::{AutoEscape, Environment, UndefinedBehavior};
use serde::Serialize;

use crate::render::TemplateError;

/// Every page template: its file name and the embedded default.
pub const PAGES: &[(&str, &str)] = &[
    (
        "base.html.j2",
        include_str!("../../templates/ui/base.html.j2"),
    ),
    (
        "login.html.j2",
        include_str!("../../templates/ui/login.html.j2"),
    ),
    (
        "apps.html.j2",
        include_str!("../../templates/ui/apps.html.j2"),
    ),
    (
        "app.html.j2",
        include_str!("../../templates/ui/app.html.j2"),
    ),
    (
        "secret-rows.html.j2",
        include_str!("../../templates/ui/secret-rows.html.j2"),
    ),
    (
        "secret-form.html.j2",
        include_str!("../../templates/ui/secret-form.html.j2"),
    ),
    (
        "confirm.html.j2",
        include_str!("../../templates/ui/confirm.html.j2"),
    ),
    (
        "reveal.html.j2",
        include_str!("../../templates/ui/reveal.html.j2"),
    ),
    (
        "external.html.j2",
        include_str!("../../templates/ui/external.html.j2"),
    ),
    (
        "deployments.html.j2",
        include_str!("../../templates/ui/deployments.html.j2"),
    ),
    (
        "events.html.j2",
        include_str!("../../templates/ui/events.html.j2"),
    ),
    (
        "tenants.html.j2",
        include_str!("../../templates/ui/tenants.html.j2"),
    ),
    (
        "error.html.j2",
        include_str!("../../templates/ui/error.html.j2"),
    ),
];

pub struct Pages {
    env: Environment<'static>,
}

impl std::fmt::Debug for Pages {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pages").finish_non_exhaustive()
    }
}

fn bad(name: &str, e: impl ToString) -> TemplateError {
    TemplateError::Bad {
        name: name.to_owned(),
        reason: e.to_string(),
    }
}

impl Pages {
    /// The embedded pages, with `dir` (`<templates_dir>/ui`) taking over file by file. A file
    /// there that is no page is an error (a typo would otherwise be ignored).
    pub fn load(dir: Option<&Path>) -> Result<Pages, TemplateError> {
        let mut sources: BTreeMap<&str, String> =
            PAGES.iter().map(|(n, s)| (*n, s.to_string())).collect();
        if let Some(dir) = dir.filter(|d| d.is_dir()) {
            let shown = dir.display().to_string();
            let dir_err = |e: std::io::Error| TemplateError::Dir {
                dir: shown.clone(),
                reason: e.to_string(),
            };
            for entry in std::fs::read_dir(dir).map_err(dir_err)? {
                let entry = entry.map_err(dir_err)?;
                let name = entry.file_name().to_string_lossy().into_owned();
                if name.starts_with('.') {
                    continue;
                }
                let Some((known, _)) = PAGES.iter().find(|(n, _)| *n == name) else {
                    return Err(TemplateError::Dir {
                        dir: shown.clone(),
                        reason: format!(
                            "{name:?} is not a dashboard page (known: {})",
                            PAGES.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
                        ),
                    });
                };
                let text = std::fs::read_to_string(entry.path()).map_err(|e| bad(&name, e))?;
                sources.insert(known, text);
            }
        }
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Chainable);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        // Everything a page shows is escaped: names and messages come from users.
        env.set_auto_escape_callback(|_| AutoEscape::Html);
        env.add_filter("short", |s: String| s.chars().take(7).collect::<String>());
        env.add_filter("urlencode", |s: String| encode_component(&s));
        for (name, text) in sources {
            env.add_template_owned(name, text)
                .map_err(|e| bad(name, e))?;
        }
        for (name, _) in PAGES {
            env.get_template(name).map_err(|e| bad(name, e))?;
        }
        Ok(Pages { env })
    }

    pub fn render<S: Serialize>(&self, name: &str, ctx: S) -> Result<String, TemplateError> {
        self.env
            .get_template(name)
            .and_then(|t| t.render(ctx))
            .map_err(|e| bad(name, e))
    }
}

/// Percent-encodes a path segment or a query value: the one encoder derived keys use too.
pub fn encode_component(s: &str) -> String {
    crate::recipe::derive::percent_encode(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_page_renders_with_an_empty_context_and_escapes_what_it_shows() {
        let p = Pages::load(None).unwrap();
        for (name, _) in PAGES {
            p.render(name, minijinja::context! {}).unwrap();
        }
        let html = p
            .render(
                "error.html.j2",
                minijinja::context! { title => "x", message => "<script>alert(1)</script>" },
            )
            .unwrap();
        assert!(html.contains("&lt;script&gt;"), "{html}");
        assert!(!html.contains("<script>alert"), "{html}");
    }

    #[test]
    fn components_are_percent_encoded() {
        assert_eq!(encode_component("shop-prod.x_~"), "shop-prod.x_~");
        assert_eq!(encode_component("a b/c?d"), "a%20b%2Fc%3Fd");
    }

    #[test]
    fn an_unknown_file_in_the_override_dir_is_an_error() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("aps.html.j2"), "x").unwrap();
        let e = Pages::load(Some(d.path())).unwrap_err().to_string();
        assert!(e.contains("not a dashboard page"), "{e}");
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("error.html.j2"), "custom {{ message }}").unwrap();
        let p = Pages::load(Some(d.path())).unwrap();
        assert_eq!(
            p.render("error.html.j2", minijinja::context! { message => "m" })
                .unwrap(),
            "custom m"
        );
    }
}
