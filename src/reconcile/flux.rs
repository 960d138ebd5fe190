//! The Flux repo: reading it, and the round that renders every app's folder into it (the
//! GitRepository, the Kustomization and the RBAC confined to the app's namespaces).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sops::scalar::DateTime;
use tokio::sync::oneshot;

use crate::git::{ChangeSet, CommitMessage, GitError, Proposal, Remote, Snapshot, Target};
use crate::render::{self, AppKeys, Tree};
use crate::spec::AppSpec;

use super::{holders, plan, AppSlot, FluxOp, FluxScope, ReconcileError, Reconciler};

impl Reconciler {
    /// Reads the branch of the Flux repo that Flux follows.
    pub(super) async fn flux_read<T, F>(&self, read: F) -> Result<T, ReconcileError>
    where
        F: FnOnce(&Snapshot<'_>) -> Result<T, GitError> + Send + 'static,
        T: Send + 'static,
    {
        let remote = self.flux_remote().await?;
        self.inner
            .engine
            .read(remote, &self.inner.settings.branch, read)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: self.inner.settings.flux_repo.to_string(),
                source,
            })
    }

    /// The apps whose folder (`apps/<app>-platform/`) the Flux repo holds.
    pub async fn flux_apps(&self) -> Result<Vec<String>, ReconcileError> {
        self.flux_read(|snap| {
            Ok(snap
                .folders_in("apps")?
                .into_iter()
                .filter_map(|f| f.strip_suffix("-platform").map(str::to_owned))
                .collect())
        })
        .await
    }

    /// One file of the Flux repo as the branch holds it (`None` when it is not there).
    pub async fn flux_file(&self, path: &str) -> Result<Option<Vec<u8>>, ReconcileError> {
        let path = path.to_owned();
        self.flux_read(move |snap| snap.read(&path)).await
    }

    /// Whether the Flux repo holds files in `dir`.
    pub(super) async fn flux_holds(&self, dir: &str) -> Result<bool, ReconcileError> {
        let dir = dir.to_owned();
        self.flux_read(move |snap| Ok(!snap.files_in(&dir)?.is_empty()))
            .await
    }

    /// The Flux repo's remote, once it is set up.
    pub(super) fn flux_remote_known(&self) -> Option<Arc<Remote>> {
        self.inner
            .flux_remote
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(super) async fn flux_remote(&self) -> Result<Arc<Remote>, ReconcileError> {
        if let Some(r) = self.flux_remote_known() {
            return Ok(r);
        }
        // One set-up at a time: apps provisioned together all ask for it, and two `git init`s of
        // one repository race for its HEAD.lock.
        let _one = self.inner.flux_init.lock().await;
        if let Some(r) = self.flux_remote_known() {
            return Ok(r);
        }
        let s = &self.inner.settings;
        let host_err = |source| ReconcileError::Host {
            repo: s.flux_repo.to_string(),
            source,
        };
        let hosted = self
            .inner
            .host
            .ensure_repo(&s.flux_repo, "Flux repo; apps/ managed by sealwright")
            .await
            .map_err(host_err)?;
        let remote = Arc::new(
            s.access
                .remote(&hosted.push_url, &hosted.clone_url)
                .map_err(|source| ReconcileError::Git {
                    repo: hosted.full_name.clone(),
                    source,
                })?,
        );
        *self
            .inner
            .flux_remote
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(remote.clone());
        *self
            .inner
            .flux_clone_url
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(hosted.clone_url);
        Ok(remote)
    }

    pub(super) async fn flux_commit(
        &self,
        scope: FluxScope,
    ) -> Result<Option<String>, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        self.inner
            .flux
            .submit(FluxOp { scope, reply: tx }, move |ops| async move {
                me.flux_round(ops).await
            });
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    pub(super) async fn flux_round(&self, ops: Vec<FluxOp>) {
        let mut all = false;
        let mut wanted = BTreeSet::new();
        let mut replies = Vec::new();
        for op in ops {
            match op.scope {
                FluxScope::All => all = true,
                FluxScope::Apps(a) => wanted.extend(a),
            }
            replies.push(op.reply);
        }
        let result = self.flux_apply(all, wanted).await;
        for r in replies {
            let _ = r.send(match &result {
                Ok(c) => Ok(c.clone()),
                Err(e) => Err(e.shared(&self.inner.settings.flux_repo.to_string())),
            });
        }
    }

    pub(super) async fn flux_apply(
        &self,
        all: bool,
        wanted: BTreeSet<String>,
    ) -> Result<Option<String>, ReconcileError> {
        let remote = self.flux_remote().await?;
        // Apps that can be rendered (provisioned), and registered ones that cannot yet: their
        // folders are left as they are rather than pruned over a passing host failure.
        // An app is rendered only once its secrets were read from its repo: an app that is not
        // loaded (repo unreadable, key missing, host down) keeps its folder and RBAC as they are.
        let slots: Vec<Arc<AppSlot>> = self.apps().values().cloned().collect();
        let mut ready: BTreeMap<String, (crate::model::App, Arc<AppKeys>)> = BTreeMap::new();
        let mut registered: BTreeSet<String> = BTreeSet::new();
        let boundary = &self.inner.settings.boundary;
        for slot in &slots {
            let d = slot.lock();
            if d.deleted {
                continue;
            }
            registered.insert(slot.name.clone());
            if let (Some(keys), Some(repo), true) = (&d.keys, &d.repo, d.loaded) {
                let spec = reachable(&d.spec, boundary, &self.holders());
                ready.insert(
                    slot.name.clone(),
                    (
                        plan::model_app(&spec, d.secrets.values(), repo.flux.clone()),
                        keys.clone(),
                    ),
                );
            }
        }
        let s = &self.inner.settings;
        let cluster = s.cluster.clone();
        let templates = s.templates.clone();
        let summary = if all {
            "sync every app's folder".to_owned()
        } else {
            format!(
                "sync {}",
                wanted
                    .iter()
                    .map(|a| format!("apps/{}", render::platform_repo_name(a)))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let planner =
            move |snap: &Snapshot<'_>| -> Result<Option<Proposal>, crate::git::PlanError> {
                let existing: BTreeSet<String> = snap
                    .folders_in("apps")?
                    .into_iter()
                    .filter_map(|f| f.strip_suffix("-platform").map(str::to_owned))
                    .collect();
                let scope: BTreeSet<String> = if all {
                    existing
                        .iter()
                        .filter(|a| !registered.contains(*a) || ready.contains_key(*a))
                        .cloned()
                        .chain(ready.keys().cloned())
                        .collect()
                } else {
                    wanted
                        .iter()
                        .filter(|a| !registered.contains(*a) || ready.contains_key(*a))
                        .cloned()
                        .collect()
                };
                let mut current = Tree::new();
                let mut rendered = Tree::new();
                let now = DateTime::now_utc();
                for app in &scope {
                    let dir = format!("apps/{}", render::platform_repo_name(app));
                    let mut files = snap.files_in(&dir)?;
                    files.retain(|p, _| render::owned_in_flux_repo(&cluster.name, p));
                    if let Some((model, keys)) = ready.get(app) {
                        render::render_flux_app(
                            &cluster,
                            model,
                            keys,
                            &files,
                            &templates,
                            now,
                            &mut rendered,
                        )?;
                    }
                    current.extend(files);
                }
                // The list names every app whose folder will exist after this commit.
                let listed: Vec<&str> = existing
                    .iter()
                    .filter(|a| registered.contains(*a) && !scope.contains(*a))
                    .map(String::as_str)
                    .chain(
                        ready
                            .keys()
                            .filter(|a| scope.contains(*a))
                            .map(String::as_str),
                    )
                    .collect();
                rendered.extend(render::render_flux_top(&cluster, &listed, &templates)?);
                for path in [
                    format!("clusters/{}/apps.yaml", cluster.name),
                    "apps/kustomization.yaml".to_owned(),
                    ".sops.yaml".to_owned(),
                ] {
                    if let Some(b) = snap.read(&path)? {
                        current.insert(path, b);
                    }
                }
                let changes: ChangeSet = plan::plan(&current, &rendered)?;
                Ok((!changes.is_empty()).then(|| Proposal {
                    changes,
                    message: CommitMessage::new(&format!("flux: {summary}")),
                }))
            };
        let applied = self
            .inner
            .engine
            .apply_with(remote, Target::branch(&s.branch), &s.author, planner)
            .await
            .map_err(|source| ReconcileError::Git {
                repo: s.flux_repo.to_string(),
                source,
            })?;
        if matches!(applied, crate::git::Applied::Committed { .. }) {
            self.inner
                .metrics
                .commits_flux
                .fetch_add(1, Ordering::Relaxed);
        }
        let head = applied.commit().map(str::to_owned);
        *self
            .inner
            .flux_head
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = head.clone();
        Ok(head)
    }
}

/// The namespaces of a stored registration that its Flux objects may reach: the reserved ones and
/// those more than one app holds are left out, so no RBAC is ever rendered there, whatever a
/// registration stored before the boundary was enforced says.
pub(super) fn reachable(
    spec: &AppSpec,
    boundary: &crate::boundary::Boundary,
    holders: &holders::Holders,
) -> AppSpec {
    let mut out = spec.clone();
    out.environments
        .retain(|e| !boundary.is_reserved(&e.namespace) && holders.count(&e.namespace) <= 1);
    out
}
