//! The configuration directory as an input: one app registration per `*.yaml` file (the same
//! fields as `POST /v1/apps`), fed to the reconciler at start-up and again whenever a file
//! changes (watched with `notify`, changes settled for a moment first).
//!
//! The directory owns the registrations it declares: a new file registers an app, an edited one
//! updates it, a removed one unregisters it. A file that does not parse is reported (file and
//! field) and skipped; the app it declared keeps its last good registration, and while any file is
//! broken no registration is removed. An app registered
//! through the API is never touched from here.
//!
//! Deployments are declared the same way, one per file in `deployments/` under the directory
//! (the fields of `PUT /v1/deployments/{id}`, `id` included), and owned the same way.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::reconcile::{Actor, AppSpec, Reconciler, Source};

/// What one pass over the directory did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub registered: Vec<String>,
    pub updated: Vec<String>,
    pub removed: Vec<String>,
    /// `file: field: reason`, for files that were skipped.
    pub problems: Vec<String>,
}

/// The `*.yaml`/`*.yml` files directly in `dir`, hidden ones left out, sorted.
fn yaml_files(dir: &Path) -> Result<Vec<PathBuf>, std::io::Error> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.is_file()
                && matches!(p.extension().and_then(|x| x.to_str()), Some("yaml" | "yml"))
                && !p
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with('.'))
        })
        .collect();
    entries.sort();
    Ok(entries)
}

/// Reads every registration file of `dir`.
pub fn read_dir(dir: &Path) -> Result<(BTreeMap<String, AppSpec>, Vec<String>), std::io::Error> {
    let mut specs = BTreeMap::new();
    let mut problems = Vec::new();
    for path in yaml_files(dir)? {
        let shown = path.display().to_string();
        let parsed = std::fs::read(&path)
            .map_err(|e| crate::spec::invalid("(file)", e.to_string()))
            .and_then(|b| crate::plain::json_of(&b))
            .and_then(|j| AppSpec::from_json(&j));
        match parsed {
            Ok(spec) => {
                if specs.contains_key(&spec.name) {
                    problems.push(format!(
                        "{shown}: name: app {:?} is declared by an earlier file",
                        spec.name
                    ));
                } else {
                    specs.insert(spec.name.clone(), spec);
                }
            }
            Err(e) => problems.push(format!("{shown}: {e}")),
        }
    }
    Ok((specs, problems))
}

/// Reads every deployment file of `<dir>/deployments/` (absent: none): id → registration body.
pub fn read_deployments(dir: &Path) -> (BTreeMap<String, serde_json::Value>, Vec<String>) {
    let mut out = BTreeMap::new();
    let mut problems = Vec::new();
    let Ok(paths) = yaml_files(&dir.join("deployments")) else {
        return (out, problems);
    };
    for path in paths {
        let shown = path.display().to_string();
        let parsed = std::fs::read(&path)
            .map_err(|e| crate::spec::invalid("(file)", e.to_string()))
            .and_then(|b| crate::plain::json_of(&b))
            .and_then(|j| {
                let id = j
                    .get("id")
                    .and_then(serde_json::Value::as_str)
                    .ok_or_else(|| crate::spec::invalid("id", "is required"))?;
                let id = crate::tokens::deployment::parse_uuid("id", id)?;
                Ok((id, j))
            });
        match parsed {
            Ok((id, j)) => {
                if out.insert(id.clone(), j).is_some() {
                    problems.push(format!(
                        "{shown}: id: deployment {id} is declared by an earlier file"
                    ));
                }
            }
            Err(e) => problems.push(format!("{shown}: {e}")),
        }
    }
    (out, problems)
}

/// Brings the reconciler's configuration-owned registrations in line with `dir`.
pub async fn sync_registrations(reconciler: &Reconciler, dir: &Path) -> SyncReport {
    let mut report = SyncReport::default();
    let (specs, problems) = match read_dir(dir) {
        Ok(x) => x,
        Err(e) => {
            // An unreadable directory removes nothing.
            report.problems.push(format!("{}: {e}", dir.display()));
            return report;
        }
    };
    report.problems = problems;
    for p in &report.problems {
        tracing::error!(problem = %p, "registration file skipped");
    }
    let actor = Actor::new("config");
    let owned = reconciler.config_apps();
    // A file that does not parse may be the one declaring an app that now looks removed: while
    // any file is broken, nothing is removed.
    let any_broken = !report.problems.is_empty();
    for (name, spec) in &specs {
        match reconciler.app(name) {
            Err(_) => match reconciler.register_app(&actor, spec.clone(), Source::Config).await {
                Ok(_) => report.registered.push(name.clone()),
                Err(e) => report.problems.push(format!("app {name}: {e}")),
            },
            Ok(view) if view.source == Source::Api => report.problems.push(format!(
                "app {name}: registered through the API; the configuration directory leaves it alone"
            )),
            Ok(view) if view.spec != *spec => {
                match reconciler.update_app(&actor, spec.clone()).await {
                    Ok(_) => report.updated.push(name.clone()),
                    Err(e) => report.problems.push(format!("app {name}: {e}")),
                }
            }
            Ok(_) => {}
        }
    }
    for name in owned.keys() {
        if specs.contains_key(name) {
            continue;
        }
        if any_broken {
            continue;
        }
        match reconciler.delete_app(&actor, name, false).await {
            Ok(_) => report.removed.push(name.clone()),
            Err(e) => report.problems.push(format!("app {name}: {e}")),
        }
    }
    // Deployments after apps: they name an app, which may have just been registered.
    let (deployments, problems) = read_deployments(dir);
    let any_broken = any_broken || !problems.is_empty();
    for p in &problems {
        tracing::error!(problem = %p, "deployment file skipped");
    }
    report.problems.extend(problems);
    let owned = reconciler.config_deployments();
    for (id, body) in &deployments {
        match reconciler
            .put_deployment(&actor, id, body, Source::Config)
            .await
        {
            Ok((true, _)) => report.registered.push(format!("deployment {id}")),
            Ok((false, _)) => {}
            Err(e) => report.problems.push(format!("deployment {id}: {e}")),
        }
    }
    for id in owned.keys() {
        if deployments.contains_key(id) || any_broken {
            continue;
        }
        match reconciler
            .delete_deployment(&actor, id, Source::Config)
            .await
        {
            Ok(_) => report.removed.push(format!("deployment {id}")),
            Err(e) => report.problems.push(format!("deployment {id}: {e}")),
        }
    }
    report
}

/// Watches `dir` and re-syncs after every settled change, until the process ends. Returns an
/// error when the watch cannot be set up.
pub fn spawn_watcher(
    reconciler: Reconciler,
    dir: PathBuf,
) -> Result<tokio::task::JoinHandle<()>, notify::Error> {
    use notify::Watcher;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let mut watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
        if res.is_ok() {
            let _ = tx.send(());
        }
    })?;
    // Recursive: deployment files live in `deployments/`.
    watcher.watch(&dir, notify::RecursiveMode::Recursive)?;
    let span = tracing::info_span!("watch", dir = %dir.display());
    Ok(tokio::spawn(tracing::Instrument::instrument(
        async move {
            let _keep = watcher;
            while rx.recv().await.is_some() {
                // Editors write in several steps: wait until the directory is quiet.
                loop {
                    match tokio::time::timeout(Duration::from_millis(300), rx.recv()).await {
                        Ok(Some(())) => continue,
                        Ok(None) => return,
                        Err(_) => break,
                    }
                }
                let r = sync_registrations(&reconciler, &dir).await;
                tracing::info!(
                    registered = ?r.registered, updated = ?r.updated, removed = ?r.removed,
                    problems = r.problems.len(), "registrations reloaded"
                );
            }
        },
        span,
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_registrations_and_reports_bad_files_by_name_and_field() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("shop.yaml"),
            "name: shop\ntenant: acme\nenvironments:\n  - {name: prod, namespace: shop-prod}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("billing.yml"),
            "name: billing\ntenant: acme\nenvironments: []\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        std::fs::write(dir.path().join(".hidden.yaml"), "ignored: true").unwrap();
        let (specs, problems) = read_dir(dir.path()).unwrap();
        assert_eq!(specs.keys().collect::<Vec<_>>(), ["shop"]);
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].contains("billing.yml: environments: needs at least one"),
            "{problems:?}"
        );
    }
}
