//! The platform round: every write queued for an app becomes one commit to its platform repo
//! (group commit). A round prepares (pure: the queued ops applied, the model, the message),
//! applies (the one Git write) and settles (the answers, the status, the events).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use sops::scalar::DateTime;
use tokio::sync::oneshot;

use crate::git::{ChangeSet, CommitMessage, Proposal, Snapshot, Target};
use crate::render::{self, AppKeys};
use crate::spec::{AppSpec, Delivery, SecretSpec};

use super::plan::OwnedChange;
use super::{
    credentials, external, plan, recipes, Actor, AppSlot, FluxScope, ReconcileError, Reconciler,
    RepoHandle, SecretOp, SecretOpKind, SecretState, WriteAck,
};

impl Reconciler {
    pub(super) async fn submit(
        &self,
        slot: &Arc<AppSlot>,
        actor: &Actor,
        kind: SecretOpKind,
    ) -> Result<WriteAck, ReconcileError> {
        let (tx, rx) = oneshot::channel();
        let me = self.clone();
        let for_batch = slot.clone();
        slot.batch.submit(
            SecretOp {
                kind,
                notes: Default::default(),
                actor: actor.clone(),
                reply: tx,
            },
            move |ops| async move { me.platform_round(&for_batch, ops).await },
        );
        rx.await
            .unwrap_or_else(|_| Err(ReconcileError::Internal("the commit task ended".into())))
    }

    /// One commit to an app's platform repo for every queued op (group commit): checked, then
    /// prepared without touching Git, applied in one write, and settled.
    pub(super) async fn platform_round(&self, slot: &Arc<AppSlot>, ops: Vec<SecretOp>) {
        self.inner
            .metrics
            .writes_batched
            .fetch_add(ops.len() as u64, Ordering::Relaxed);
        let _span = tracing::info_span!("platform.round", app = %slot.name, ops = ops.len());
        let (spec, keys, repo) = match self.round_inputs(slot).await {
            Ok(Some(inputs)) => inputs,
            Ok(None) => return,
            Err(refusal) => {
                for op in ops {
                    let _ = op.reply.send(Err(refusal.again()));
                }
                return;
            }
        };
        if spec.delivery == Delivery::PullRequest {
            return self.review_round(slot, ops, keys, repo).await;
        }
        let Some(mut round) = self.prepare(slot, spec, ops) else {
            return;
        };
        // Nothing asked to change and the repo has not moved since it last held our render.
        if let Some(clean) = round.clean_if_unchanged() {
            let head = self
                .inner
                .engine
                .remote_head(repo.remote.clone(), &self.inner.settings.branch)
                .await;
            if head.as_ref().ok() == Some(&Some(clean.to_owned())) {
                return self.settle_unchanged(slot, round);
            }
        }
        let render = round.render(&slot.name, &repo);
        let found = Arc::new(std::sync::Mutex::new(None));
        // An admin's resolution applies to this round; the registration's policy otherwise.
        let policy = {
            let mut d = slot.lock();
            d.drift_resolution.take().unwrap_or(d.spec.drift_policy)
        };
        let planner = self.platform_planner(
            render.model,
            keys.clone(),
            render.trusted,
            render.message,
            render.restore,
            found.clone(),
            policy,
        );
        let result = self
            .inner
            .engine
            .apply_with(
                repo.remote.clone(),
                Target::branch(&self.inner.settings.branch),
                &self.inner.settings.author,
                planner,
            )
            .await;
        let drift = found.lock().unwrap_or_else(|p| p.into_inner()).take();
        match (drift, &result) {
            (Some(d), Ok(applied)) => self.drift_restored(slot, &d, applied.commit()),
            (Some(d), Err(_)) if policy == crate::spec::DriftPolicy::Report => {
                let e = self.drift_held(slot, &d);
                for (op, _) in round.accepted {
                    let _ = op.reply.send(Err(e.again()));
                }
                return;
            }
            (Some(d), Err(_)) if policy == crate::spec::DriftPolicy::Adopt => {
                let ops: Vec<SecretOp> = round.accepted.into_iter().map(|(op, _)| op).collect();
                if let Err(e) = self.adopt_drift(slot, &d, &keys, &repo).await {
                    return self.fail_ops(slot, &repo.full_name, &e, ops);
                }
                // The same writes, over the secrets as the repo now holds them.
                return Box::pin(self.platform_round(slot, ops)).await;
            }
            _ => {}
        }
        self.settle_round(slot, &repo, round, result).await;
    }

    /// What a round needs before it may write: the app provisioned, its committed secrets
    /// read, and its registration inside the boundary. `Ok(None)`: the app has no key or repo
    /// yet (its provisioning failed and was recorded); `Err`: what every op is told.
    async fn round_inputs(
        &self,
        slot: &Arc<AppSlot>,
    ) -> Result<Option<(AppSpec, Arc<AppKeys>, Arc<RepoHandle>)>, ReconcileError> {
        if let Err(e) = self.provision(slot).await {
            self.record_failure(slot, &e);
            return Err(ReconcileError::NotReady {
                app: slot.name.clone(),
                reason: e.to_string(),
            });
        }
        let (spec, keys, repo, deleted) = {
            let d = slot.lock();
            (d.spec.clone(), d.keys.clone(), d.repo.clone(), d.deleted)
        };
        let (Some(keys), Some(repo)) = (keys, repo) else {
            return Ok(None);
        };
        if deleted {
            return Err(ReconcileError::not_found("app", &slot.name));
        }
        if let Err(e) = self.load_committed(slot, &keys, &repo).await {
            self.record_failure(slot, &e);
            return Err(ReconcileError::NotReady {
                app: slot.name.clone(),
                reason: e.to_string(),
            });
        }
        if let Some(breach) = self.boundary_breach(&slot.name, &spec) {
            // Stored before the boundary held: nothing is written for it until it is fixed.
            let e = ReconcileError::Conflict(format!("app {}: {breach}", slot.name));
            self.record_failure(slot, &e);
            return Err(e);
        }
        Ok(Some((spec, keys, repo)))
    }

    /// Everything a round can decide without Git: the queued ops applied to the committed
    /// secrets, what changes, and the credentials and external secrets to render. `None`: no
    /// op fits any more (each was answered).
    fn prepare(&self, slot: &AppSlot, spec: AppSpec, ops: Vec<SecretOp>) -> Option<Round> {
        let (committed, clean_head) = {
            let d = slot.lock();
            (d.secrets.clone(), d.clean_head.clone())
        };
        let (candidate, accepted, names) = apply_ops(&committed, ops);
        if accepted.is_empty() {
            return None;
        }
        let changes: Vec<OwnedChange> = names
            .iter()
            .filter_map(|n| plan::secret_change(&slot.name, committed.get(n), candidate.get(n)))
            .collect();
        let extras = self.extras(slot, &spec);
        Some(Round {
            spec,
            committed,
            candidate,
            accepted,
            names,
            changes,
            extras,
            clean_head,
        })
    }

    /// A round that found the repo as its last render left it: nothing is written.
    fn settle_unchanged(&self, slot: &AppSlot, round: Round) {
        self.external_pushed(slot, &round.extras.external, true);
        let ack = WriteAck::at(round.clean_head);
        self.answer(slot, round.accepted, &round.changes, ack, None);
    }

    /// After the write: the slot takes the new state, the Flux folder follows when the
    /// secrets' placement changed, and every op is answered (or told why it failed).
    async fn settle_round(
        &self,
        slot: &AppSlot,
        repo: &RepoHandle,
        round: Round,
        result: Result<crate::git::Applied, crate::git::GitError>,
    ) {
        let Round {
            spec,
            committed,
            candidate,
            accepted,
            names,
            changes,
            extras,
            ..
        } = round;
        let applied = match result {
            Ok(applied) => applied,
            Err(source) => {
                let e = ReconcileError::Git {
                    repo: repo.full_name.clone(),
                    source,
                };
                self.extras_pushed(slot, &extras, Err(e.to_string()));
                let ops = accepted.into_iter().map(|(op, _)| op);
                return self.fail_ops(slot, &repo.full_name, &e, ops);
            }
        };
        let committed_now = matches!(applied, crate::git::Applied::Committed { .. });
        if committed_now {
            self.inner
                .metrics
                .commits_platform
                .fetch_add(1, Ordering::Relaxed);
        }
        let head = applied.commit().map(str::to_owned);
        self.extras_pushed(slot, &extras, Ok((head.clone(), None)));
        let moved = plan::placement(&spec, committed.values())
            != plan::placement(&spec, candidate.values());
        let flux_needed = {
            let mut d = slot.lock();
            d.secrets = candidate;
            for n in &names {
                if d.secrets.contains_key(n) {
                    d.secret_state.insert(
                        n.clone(),
                        SecretState {
                            commit: head.clone(),
                            applied: false,
                        },
                    );
                } else {
                    d.secret_state.remove(n);
                }
            }
            d.clean_head = head.clone();
            if committed_now || d.last_commit.is_none() {
                d.last_commit = head.clone();
            }
            if moved {
                d.flux_synced = false;
            }
            !d.flux_synced
        };
        let new_commit = if committed_now { head.clone() } else { None };
        if flux_needed {
            let scope = FluxScope::Apps(BTreeSet::from([slot.name.clone()]));
            match self.flux_commit(scope).await {
                Ok(_) => slot.lock().flux_synced = true,
                Err(e) => {
                    // The secret is committed (acknowledged); the RBAC follows in a later round.
                    tracing::warn!(app = %slot.name, error = %e, "Flux repo commit failed; will retry");
                    self.record_failure(slot, &e);
                    return self.answer(slot, accepted, &changes, WriteAck::at(head), new_commit);
                }
            }
        }
        self.clear_failure(slot);
        self.answer(slot, accepted, &changes, WriteAck::at(head), new_commit);
    }

    /// What a platform round commits: the render of `model` against the branch tip. Files are
    /// reused unread only for the secrets in `trusted` and only when the tip is the commit named
    /// there (the one sealwright rendered last); everything else is re-rendered noise-free. A
    /// first commit with no secret change (`restore`) is the repo's set-up commit.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn platform_planner(
        &self,
        model: crate::model::App,
        keys: Arc<AppKeys>,
        trusted: Option<(String, BTreeSet<String>)>,
        message: RoundMessage,
        restore: bool,
        found: Arc<std::sync::Mutex<Option<Drift>>>,
        policy: crate::spec::DriftPolicy,
    ) -> impl FnMut(&Snapshot<'_>) -> Result<Option<Proposal>, crate::git::PlanError> + Send + 'static
    {
        let cluster = self.inner.settings.cluster.clone();
        let templates = self.inner.settings.templates.clone();
        let author_email = self.inner.settings.author.email().to_owned();
        move |snap: &Snapshot<'_>| {
            let mut current = snap.files_under("secrets/")?;
            if let Some(b) = snap.read(".sops.yaml")? {
                current.insert(".sops.yaml".into(), b);
            }
            // environments/ holds the app team's files beside ours: only marked ones are ours.
            let mut team = BTreeSet::new();
            for (p, b) in snap.files_under("environments/")? {
                if render::owned_platform_file(&p, &b) {
                    current.insert(p, b);
                } else {
                    team.insert(p);
                }
            }
            current.retain(|p, b| render::owned_platform_file(p, b));
            let trust = trusted
                .as_ref()
                .filter(|(head, _)| snap.commit_id().as_deref() == Some(head.as_str()));
            let keep = |k: render::Kept<'_>| {
                trust.is_some_and(|(_, names)| match k {
                    render::Kept::Secret(s) => names.contains(&s.name),
                    render::Kept::Credential(c) => {
                        names.contains(&credential_key(&c.deployment_id))
                    }
                    render::Kept::External => names.contains(EXTERNAL_KEY),
                })
            };
            let rendered = render::render_platform(
                &cluster,
                &model,
                &keys.age,
                &current,
                &templates,
                DateTime::now_utc(),
                &keep,
            )?;
            // A file of the app team's where sealwright would write one: theirs is never
            // overwritten, and the app fails until one of the two moves.
            if let Some(p) = rendered.keys().find(|p| team.contains(*p)) {
                return Err(format!(
                    "{p} is the app team's (it does not start with \"# Managed by sealwright\"): rename it, or remove the environment's source from the registration"
                )
                .into());
            }
            let changes = plan::plan(&current, &rendered)?;
            // Drift: files of sealwright's that a commit not its own changed since its last
            // render, and that this plan writes back.
            let drift = trusted.as_ref().and_then(|(clean, _)| {
                if snap.commit_id().as_deref() == Some(clean.as_str()) {
                    return None;
                }
                let ours = |p: &str| {
                    render::owned_in_platform_repo(p)
                        && (!p.starts_with("environments/") || rendered.contains_key(p))
                };
                let commits = snap.foreign_changes(clean, &author_email, &ours, 500)?;
                let touched: BTreeSet<String> = commits
                    .iter()
                    .flat_map(|c| c.paths.iter().cloned())
                    .collect();
                let files: BTreeSet<String> = touched
                    .iter()
                    .filter(|p| current.get(*p) != rendered.get(*p))
                    .cloned()
                    .collect();
                // A Secret file someone put there that sealwright did not seal: kept as it is
                // (it may hold the only copy of something), but it is drift all the same.
                let kept: Vec<String> = touched
                    .iter()
                    .filter(|p| !files.contains(*p) && p.ends_with(".sops.yaml"))
                    .filter(|p| {
                        current.get(*p).is_some_and(|b| {
                            crate::render::seal::open_with_app_key(p, b, &keys.age).is_err()
                        })
                    })
                    .cloned()
                    .collect();
                (!files.is_empty() || !kept.is_empty()).then(|| Drift {
                    commits: commits
                        .into_iter()
                        .filter(|c| {
                            c.paths
                                .iter()
                                .any(|p| files.contains(p) || kept.contains(p))
                        })
                        .collect(),
                    files: files.into_iter().collect(),
                    kept,
                })
            });
            *found.lock().unwrap_or_else(|p| p.into_inner()) = drift.clone();
            if let (Some(d), false) = (&drift, policy == crate::spec::DriftPolicy::Restore) {
                // Held (report) or to be read back (adopt): nothing of this plan is written.
                return Err(format!(
                    "drift in the platform repo ({}), driftPolicy {}",
                    d.files.join(", "),
                    policy.as_str()
                )
                .into());
            }
            // A first commit sets the repo up; later ones with no secret change restore
            // drifted files.
            let message = match (snap.commit_id(), &drift) {
                (Some(_), Some(d)) if restore => d.message(&model.name),
                (Some(_), Some(d)) => d.lines(message.for_changes(&changes)),
                (id, _) => match id {
                    None if restore => {
                        let setup = CommitMessage::new(&format!(
                            "{}: set up the platform repo (.sops.yaml, secrets/)",
                            model.name
                        ));
                        match message.touches_external(&changes) {
                            Some(line) => setup.line(line),
                            None => setup,
                        }
                    }
                    _ => message.for_changes(&changes),
                },
            };
            Ok((!changes.is_empty()).then_some(Proposal { changes, message }))
        }
    }

    /// Answers a round's ops with `ack` and records one event per changed secret, naming the
    /// commit it made (`new_commit`) or the pull request that carries it.
    pub(super) fn answer(
        &self,
        slot: &AppSlot,
        accepted: Accepted,
        changes: &[OwnedChange],
        ack: WriteAck,
        new_commit: Option<String>,
    ) {
        let tenant = slot.lock().spec.tenant.clone();
        let mut recorded = BTreeSet::new();
        for (op, touched) in accepted {
            if let Some(name) = &touched {
                if let Some(c) = changes.iter().find(|c| &c.secret == name) {
                    if recorded.insert(name.clone()) {
                        let mut ev = op.actor.event(match c.kind {
                            crate::git::SecretChangeKind::Created => "secret.created",
                            crate::git::SecretChangeKind::Updated => "secret.updated",
                            crate::git::SecretChangeKind::Deleted => "secret.deleted",
                        });
                        ev.app = Some(slot.name.clone());
                        ev.tenant = Some(tenant.clone());
                        ev.secret = Some(name.clone());
                        ev.keys = c.keys();
                        ev.namespaces = c.namespaces.clone();
                        ev.commit = new_commit.clone();
                        ev.pull_request = ack.pull_request.clone();
                        self.inner.events.record(ev.clone());
                        // Which generated keys moved, by name only.
                        for (action, keys) in [
                            ("secret.generated", &op.notes.generated),
                            ("secret.rotated", &op.notes.rotated),
                            ("secret.generated-key-replaced", &op.notes.replaced),
                        ] {
                            if !keys.is_empty() {
                                let mut e = ev.clone();
                                e.action = action.into();
                                e.keys = keys.clone();
                                self.inner.events.record(e);
                            }
                        }
                    }
                }
            }
            let _ = op.reply.send(Ok(ack.clone()));
        }
    }

    /// Drift a round found and wrote back.
    pub(super) fn drift_restored(&self, slot: &AppSlot, d: &Drift, restored_in: Option<&str>) {
        tracing::warn!(app = %slot.name, files = ?d.files, "drift restored");
        self.drift_seen(slot, d, "restored", restored_in);
    }

    /// Drift held under `driftPolicy: report`: nothing is written until an admin resolves it,
    /// and every write is told so (409).
    fn drift_held(&self, slot: &AppSlot, d: &Drift) -> ReconcileError {
        tracing::warn!(app = %slot.name, files = ?d.files, "drift held for an admin");
        self.drift_seen(slot, d, "held", None);
        let e = ReconcileError::Conflict(format!(
            "the platform repo has drift ({}); driftPolicy is report: an admin resolves it with POST /v1/apps/{}/drift/resolve {{\"action\": \"restore\" | \"adopt\"}}",
            d.files.join(", "),
            slot.name
        ));
        self.record_failure(slot, &e);
        e
    }

    /// Drift taken as the new truth (`driftPolicy: adopt`, or an admin's resolution): the
    /// secrets are read back from the repo as it is; each adoption is an event.
    pub(super) async fn adopt_drift(
        &self,
        slot: &Arc<AppSlot>,
        d: &Drift,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Result<(), ReconcileError> {
        let before: BTreeSet<String> = slot.lock().secrets.keys().cloned().collect();
        {
            let mut dl = slot.lock();
            dl.loaded = false;
            dl.clean_head = None;
            dl.read_tip = true;
        }
        self.load_committed(slot, keys, repo).await?;
        let after: BTreeSet<String> = slot.lock().secrets.keys().cloned().collect();
        self.drift_seen(slot, d, "adopted", None);
        let tenant = slot.lock().spec.tenant.clone();
        for gone in before.difference(&after) {
            let mut ev = Actor::new("reconciler").event("drift.adopted");
            ev.app = Some(slot.name.clone());
            ev.tenant = Some(tenant.clone());
            ev.secret = Some(gone.clone());
            ev.detail = Some("deleted in the platform repo: the secret is gone".into());
            self.inner.events.record(ev);
        }
        for f in &d.files {
            let Some(name) = secret_of_path(f) else {
                continue;
            };
            if after.contains(&name) {
                let mut ev = Actor::new("reconciler").event("drift.adopted");
                ev.app = Some(slot.name.clone());
                ev.tenant = Some(tenant.clone());
                ev.secret = Some(name);
                ev.detail = Some(format!("{f}: read back from the platform repo"));
                self.inner.events.record(ev);
            }
        }
        Ok(())
    }

    /// Drift seen by a round: one `drift.detected` event per drifting commit not seen before
    /// (who, which files, never what), the count in `/metrics`, and the app's status.
    fn drift_seen(
        &self,
        slot: &AppSlot,
        d: &Drift,
        state: &'static str,
        restored_in: Option<&str>,
    ) {
        let commits: Vec<String> = d.commits.iter().map(|c| c.id.clone()).collect();
        let (tenant, new) = {
            let mut dl = slot.lock();
            let new = dl.drift.as_ref().is_none_or(|s| s.commits != commits);
            dl.drift = Some(super::DriftStatus {
                files: d.files.iter().chain(&d.kept).cloned().collect(),
                commits: commits.clone(),
                authors: d.commits.iter().map(|c| c.author.clone()).collect(),
                restored_in: restored_in.map(str::to_owned),
                state,
            });
            (dl.spec.tenant.clone(), new)
        };
        if !new {
            return;
        }
        self.inner
            .metrics
            .drift_detected
            .fetch_add(1, Ordering::Relaxed);
        for c in &d.commits {
            let mut ev = Actor::new("reconciler").event("drift.detected");
            ev.app = Some(slot.name.clone());
            ev.tenant = Some(tenant.clone());
            ev.commit = Some(c.id.clone());
            let files: Vec<&String> = c
                .paths
                .iter()
                .filter(|p| d.files.contains(p) || d.kept.contains(p))
                .collect();
            if let [one] = files.as_slice() {
                ev.secret = secret_of_path(one);
            }
            ev.detail = Some(format!(
                "by {}: {}; {state}{}",
                c.author,
                files
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                restored_in
                    .map(|r| format!(" in {}", &r[..12.min(r.len())]))
                    .unwrap_or_default()
            ));
            self.inner.events.record(ev);
        }
    }

    /// A failed round: recorded in the app's status, and told to every op that shared it.
    pub(super) fn fail_ops(
        &self,
        slot: &AppSlot,
        repo: &str,
        e: &ReconcileError,
        ops: impl IntoIterator<Item = SecretOp>,
    ) {
        self.record_failure(slot, e);
        for op in ops {
            let _ = op.reply.send(Err(e.shared(repo)));
        }
    }

    /// What this app's round renders besides its managed secrets.
    pub(super) fn extras(&self, slot: &AppSlot, spec: &AppSpec) -> Extras {
        let (creds_in, external_in) = {
            let d = slot.lock();
            (d.credentials.clone(), d.external)
        };
        Extras {
            creds: self.credential_round(spec, &creds_in),
            external: self.external_round(spec, external_in),
        }
    }

    /// After a platform round: `Ok` with the commit on the branch Flux follows or the pull
    /// request carrying the round, or why it failed.
    pub(super) fn extras_pushed(
        &self,
        slot: &AppSlot,
        extras: &Extras,
        outcome: Result<(Option<String>, Option<String>), String>,
    ) {
        let pushed = outcome.is_ok();
        self.credentials_pushed(slot, &extras.creds, outcome);
        self.external_pushed(slot, &extras.external, pushed);
    }
}

/// What `prepare` decided for a platform round, carried through the write to settling.
struct Round {
    spec: AppSpec,
    /// The secrets as committed before the round, and as the round leaves them.
    committed: BTreeMap<String, SecretSpec>,
    candidate: BTreeMap<String, SecretSpec>,
    accepted: Accepted,
    /// The secrets the ops touched.
    names: BTreeSet<String>,
    changes: Vec<OwnedChange>,
    extras: Extras,
    /// The commit sealwright rendered last, if the slot knows it.
    clean_head: Option<String>,
}

impl Round {
    /// The commit the repo must still be at for this round to write nothing.
    fn clean_if_unchanged(&self) -> Option<&str> {
        let nothing_asked = self.changes.is_empty() && !self.extras.changed();
        self.clean_head.as_deref().filter(|_| nothing_asked)
    }

    /// What the write renders (pure, and only for a round that may write): the model, the
    /// commit message and the files that may be reused unread.
    fn render(&mut self, app: &str, repo: &RepoHandle) -> Render {
        let mut model = plan::model_app(&self.spec, self.candidate.values(), repo.flux.clone());
        self.extras.fill(&mut model);
        let mut unchanged: BTreeSet<String> = self
            .candidate
            .iter()
            .filter(|(n, s)| self.committed.get(*n).is_some_and(|c| c.same_as(s)))
            .map(|(n, _)| n.clone())
            .collect();
        unchanged.extend(self.extras.unchanged());
        Render {
            model,
            message: round_message(app, &self.changes, &self.accepted, &self.extras),
            trusted: self.clean_head.clone().map(|head| (head, unchanged)),
            restore: self.changes.is_empty() && !self.extras.creds.changed,
        }
    }
}

/// Files of sealwright's changed behind its back since its last render, and the commits that
/// changed them (who, which files; never what).
#[derive(Clone, Debug)]
pub(super) struct Drift {
    /// Files the round writes back (or would: `report`, `adopt`).
    pub(super) files: Vec<String>,
    /// Secret files someone added that sealwright did not seal: never deleted, only reported.
    pub(super) kept: Vec<String>,
    pub(super) commits: Vec<crate::git::ForeignCommit>,
}

impl Drift {
    fn list(&self) -> String {
        let files = if self.files.is_empty() {
            &self.kept
        } else {
            &self.files
        };
        match files.as_slice() {
            [one] => one.clone(),
            [a, b] => format!("{a}, {b}"),
            [a, rest @ ..] => format!("{a} and {} more", rest.len()),
            [] => String::new(),
        }
    }

    /// A commit that only restores drift: its title says so and names the drifting commits.
    fn message(&self, app: &str) -> CommitMessage {
        let title = if self.files.is_empty() {
            format!("{app}: drift in {}, kept as it is", self.list())
        } else {
            format!("{app}: restore drift in {}", self.list())
        };
        self.lines(CommitMessage::new(&title))
    }

    /// The lines naming what drifted and where it came from.
    fn lines(&self, mut m: CommitMessage) -> CommitMessage {
        if !self.files.is_empty() {
            m = m.line(&format!("restores drift: {}", self.files.join(", ")));
        }
        if !self.kept.is_empty() {
            m = m.line(&format!(
                "kept, not sealed by sealwright: {}",
                self.kept.join(", ")
            ));
        }
        for c in &self.commits {
            m = m.line(&format!("drift from {} by {}", &c.id[..12], c.author));
        }
        m
    }
}

/// What a round that writes renders (`Round::render`, for `platform_planner`).
struct Render {
    model: crate::model::App,
    message: RoundMessage,
    trusted: Option<(String, BTreeSet<String>)>,
    restore: bool,
}

/// The secret file's target name (`secrets/<ns>/<name>.sops.yaml` → `name`).
fn secret_of_path(path: &str) -> Option<String> {
    path.strip_prefix("secrets/")?
        .split_once('/')?
        .1
        .strip_suffix(".sops.yaml")
        .map(str::to_owned)
}

/// How an unchanged credential is named among the trusted names of a platform round (secret
/// names are DNS labels, so this cannot collide with one).
pub(super) fn credential_key(deployment_id: &str) -> String {
    format!("deployment:{deployment_id}")
}

/// How the unchanged external-secrets Secret is named among the trusted names.
pub(super) const EXTERNAL_KEY: &str = "external:";

/// What a platform round renders besides the managed secrets: the deployments' credentials and
/// the external secrets.
pub(super) struct Extras {
    pub(super) creds: credentials::CredRound,
    pub(super) external: external::ExtRound,
}

impl Extras {
    /// The render differs from what the repo holds.
    pub(super) fn changed(&self) -> bool {
        self.creds.changed || self.external.changed
    }

    /// Moves what is to be rendered into the model.
    pub(super) fn fill(&mut self, model: &mut crate::model::App) {
        model.credentials = std::mem::take(&mut self.creds.models);
        model.external = self.external.model.take();
    }

    /// Trusted names: files the repo already holds as this round renders them.
    pub(super) fn unchanged(&self) -> impl Iterator<Item = String> + '_ {
        self.creds
            .unchanged
            .iter()
            .cloned()
            .chain((!self.external.changed).then(|| EXTERNAL_KEY.to_owned()))
    }
}

/// A round's queued ops applied, in order, to a copy of `base`: the candidate secrets, the ops
/// that fit (with the secret each touched) and the names touched. An op that no longer fits (a
/// patch of a secret deleted earlier in the round) is answered on its own here.
pub(super) type Accepted = Vec<(SecretOp, Option<String>)>;

pub(super) fn apply_ops(
    base: &BTreeMap<String, SecretSpec>,
    ops: Vec<SecretOp>,
) -> (BTreeMap<String, SecretSpec>, Accepted, BTreeSet<String>) {
    let mut candidate = base.clone();
    let mut accepted = Vec::new();
    for mut op in ops {
        // Apps with no recipe pay nothing: no copy to go back to, no derivation.
        let ruled = match &op.kind {
            SecretOpKind::Put(s, _) => !s.recipe.is_empty(),
            SecretOpKind::Patch(_, p, _) => !p.recipe.is_empty(),
            _ => false,
        };
        let before = recipes::involved(&candidate, ruled).then(|| candidate.clone());
        let mut notes = recipes::KeyNotes::default();
        let outcome = match &op.kind {
            SecretOpKind::Put(s, fresh) => {
                let mut next = s.clone();
                recipes::complete(&mut next, candidate.get(&s.name), fresh, &mut notes)
                    .map(|()| {
                        candidate.insert(s.name.clone(), next);
                        Some(s.name.clone())
                    })
                    .map_err(ReconcileError::from)
            }
            SecretOpKind::Patch(name, patch, fresh) => match candidate.get(name) {
                None => Err(ReconcileError::not_found("secret", name)),
                Some(s) => s
                    .patched(patch)
                    .and_then(|mut next| {
                        recipes::complete(&mut next, Some(s), fresh, &mut notes)?;
                        Ok(next)
                    })
                    .map(|next| {
                        candidate.insert(name.clone(), next);
                        Some(name.clone())
                    })
                    .map_err(ReconcileError::from),
            },
            SecretOpKind::Rotate {
                name,
                keys,
                keep_previous,
                fresh,
            } => match candidate.get_mut(name) {
                None => Err(ReconcileError::not_found("secret", name)),
                Some(s) => recipes::rotate(s, keys, *keep_previous, fresh, &mut notes)
                    .map(|()| Some(name.clone()))
                    .map_err(ReconcileError::from),
            },
            SecretOpKind::Delete(name) => match candidate.remove(name) {
                None => Err(ReconcileError::not_found("secret", name)),
                Some(_) => Ok(Some(name.clone())),
            },
            SecretOpKind::Sync => Ok(None),
        };
        // Derived keys follow the op, and the rules it touched must still hold; a failure
        // takes the op back out whole.
        let outcome = match (outcome, &before) {
            (Ok(Some(name)), Some(_)) => recipes::settle(&mut candidate, &name)
                .map(|()| Some(name))
                .map_err(ReconcileError::from),
            (other, _) => other,
        };
        match outcome {
            Ok(touched) => {
                op.notes = notes;
                accepted.push((op, touched));
            }
            Err(e) => {
                if let Some(before) = before {
                    candidate = before;
                }
                let _ = op.reply.send(Err(e));
            }
        }
    }
    let names = accepted.iter().filter_map(|(_, t)| t.clone()).collect();
    (candidate, accepted, names)
}

/// A round's commit message, with and without its line about the external-secrets Secret: which
/// one is true shows only once the plan says whether that Secret's files change (a restart, say,
/// re-renders them without knowing whether they differ).
#[derive(Clone)]
pub(super) struct RoundMessage {
    plain: CommitMessage,
    /// The files' name (`/<secret>.sops.yaml`), the message with the line, and the line.
    external: Option<(String, CommitMessage, String)>,
}

impl RoundMessage {
    pub(super) fn fixed(message: CommitMessage) -> RoundMessage {
        RoundMessage {
            plain: message,
            external: None,
        }
    }

    /// Whether a plan writes or deletes one of the external-secrets files.
    pub(super) fn touches_external(&self, changes: &ChangeSet) -> Option<&str> {
        let (suffix, _, line) = self.external.as_ref()?;
        let hit = |p: &str| p.starts_with("secrets/") && p.ends_with(suffix.as_str());
        (changes.writes().any(|(p, _)| hit(p)) || changes.deletes().any(hit)).then_some(line)
    }

    /// The message for a plan with these changes.
    pub(super) fn for_changes(&self, changes: &ChangeSet) -> CommitMessage {
        match (&self.external, self.touches_external(changes)) {
            (Some((_, with, _)), Some(_)) => with.clone(),
            _ => self.plain.clone(),
        }
    }

    /// Before any plan (a pull request's title): the one naming all the round may change.
    pub(super) fn preferred(&self) -> &CommitMessage {
        self.external.as_ref().map_or(&self.plain, |(_, m, _)| m)
    }
}

/// A round's commit message: its changes (or, with none, a restore of drifted files) and who
/// asked for them.
pub(super) fn round_message(
    app: &str,
    changes: &[OwnedChange],
    accepted: &Accepted,
    extras: &Extras,
) -> RoundMessage {
    let creds = &extras.creds;
    let mut extra: Vec<String> = Vec::new();
    match creds.minted.as_slice() {
        [] => {}
        few @ [_] | few @ [_, _] | few @ [_, _, _] => extra.push(format!(
            "deployment credentials: new token for {}",
            few.join(", ")
        )),
        many => extra.push(format!(
            "deployment credentials: new tokens for {} deployments",
            many.len()
        )),
    }
    let removed = creds.removed;
    if removed > 0 {
        extra.push(format!("deployment credentials: {removed} removed"));
    }
    let build = |mut extra: Vec<String>| {
        if changes.is_empty() && extra.is_empty() {
            extra.push("restore the files sealwright owns".into());
        }
        let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
        let message = plan::batch_message(app, changes, &extra);
        with_actors(message, accepted.iter().map(|(op, _)| &op.actor))
    };
    let external = extras.external.message(app).map(|line| {
        let mut with = extra.clone();
        with.push(line.clone());
        let suffix = format!("/{}.sops.yaml", crate::external::secret_name(app));
        (suffix, build(with), line)
    });
    RoundMessage {
        plain: build(extra),
        external,
    }
}

/// The actors of a round, as a message line (names only).
pub(super) fn with_actors<'a>(
    message: CommitMessage,
    actors: impl Iterator<Item = &'a Actor>,
) -> CommitMessage {
    let mut names: Vec<&str> = actors.map(|a| a.name.as_str()).collect();
    names.sort_unstable();
    names.dedup();
    if names.is_empty() {
        return message;
    }
    message.line(&format!("by: {}", names.join(", ")))
}
