//! Pull-request delivery, for apps registered with `delivery: pull-request`.
//!
//! Their secret writes do not go to the branch Flux follows: they go to a branch
//! `sealwright/<time>-<random>` started from it, and into one open pull request. A write is
//! acknowledged once it is pushed there and the pull request is open (`{"committed": false,
//! "pullRequest": url}`); later writes join the same pull request until someone merges or closes
//! it. The host tells which happened — on a signed webhook, on the periodic poll, and at the start
//! of every round of the app, all three through the app's own round so that they never race a
//! write. On a merge the committed secrets are read back from the merged branch (what the
//! reviewers merged is what Flux applies, so that is the truth); on a close the proposal is
//! dropped. Either way the branch is deleted and the next write starts a new pull request.
//!
//! A new repository's set-up commit (`.sops.yaml`) goes straight to the branch: there is nothing
//! to review it against, and a pull request needs a base branch to exist.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use crate::git::{Applied, CommitMessage, Target};
use crate::host::{NewPullRequest, PullRequestState};
use crate::render::AppKeys;

use super::{
    apply_ops, plan, round_message, Actor, AppSlot, FluxScope, OwnedChange, ReconcileError,
    Reconciler, RepoHandle, SecretOp, SecretOpKind, SecretSpec, SecretState, WriteAck,
};

/// How a round attempt ended: done (every op answered), or to be tried again with these ops.
enum Round {
    Done,
    Again(Vec<SecretOp>),
}

/// Every pull-request branch sealwright makes starts with this.
pub(super) const BRANCH_PREFIX: &str = "sealwright/";

/// The open pull request of an app and what it proposes.
#[derive(Clone, Debug)]
pub(super) struct Pending {
    /// The app's whole secret set as the branch holds it.
    pub secrets: BTreeMap<String, SecretSpec>,
    pub branch: String,
    pub number: u64,
    pub url: String,
    /// The branch tip sealwright last pushed or read.
    pub head: String,
}

/// GitHub takes at most 140 characters of a status description.
fn truncate_description(s: &str) -> String {
    if s.chars().count() <= 140 {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(139).collect();
    out.push('…');
    out
}

/// A fresh branch name: sortable by time, unique without asking the host.
fn new_branch_name() -> String {
    use rand::RngCore;
    let mut b = [0u8; 3];
    rand::rngs::OsRng.fill_bytes(&mut b);
    // 2026-11-23T10:20:30Z → 20261123-102030
    let digits: String = crate::audit::now_rfc3339()
        .chars()
        .filter(char::is_ascii_digit)
        .take(14)
        .collect();
    let (day, time) = digits.split_at(digits.len().min(8));
    format!(
        "{BRANCH_PREFIX}{day}-{time}-{:02x}{:02x}{:02x}",
        b[0], b[1], b[2]
    )
}

impl Reconciler {
    /// One round of a pull-request app: settle its pull request, then put the queued writes on
    /// the pull request's branch (opening the pull request when there is none). When the pull
    /// request was merged or closed while this round pushed to it, the round starts over from the
    /// settled state, on a new branch.
    pub(super) async fn review_round(
        &self,
        slot: &Arc<AppSlot>,
        mut ops: Vec<SecretOp>,
        keys: Arc<AppKeys>,
        repo: Arc<RepoHandle>,
    ) {
        let actor = ops
            .first()
            .map(|op| op.actor.clone())
            .unwrap_or_else(|| Actor::new("reconciler"));
        // More than a few of those races in one round means someone keeps closing them.
        for _ in 0..3 {
            match self.review_once(slot, ops, &actor, &keys, &repo).await {
                Round::Done => return,
                Round::Again(back) => ops = back,
            }
        }
        let e = ReconcileError::Conflict(format!(
            "the pull requests of {} kept being merged or closed while this write was pushed; try again",
            repo.full_name
        ));
        self.fail_ops(slot, &repo.full_name, &e, ops);
    }

    async fn review_once(
        &self,
        slot: &Arc<AppSlot>,
        ops: Vec<SecretOp>,
        actor: &Actor,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Round {
        let fail = |e: ReconcileError, ops: Vec<SecretOp>| {
            self.fail_ops(slot, &repo.full_name, &e, ops);
            Round::Done
        };
        if let Err(e) = self.settle(slot, actor, keys, repo).await {
            return fail(e, ops);
        }
        if let Err(e) = self.set_up_branch(slot, keys, repo).await {
            return fail(e, ops);
        }
        let (spec, committed, pending, clean_head) = {
            let d = slot.lock();
            (
                d.spec.clone(),
                d.secrets.clone(),
                d.pending.clone(),
                d.clean_head.clone(),
            )
        };
        let base = pending.as_ref().map(|p| &p.secrets).unwrap_or(&committed);
        let (candidate, accepted, names) = apply_ops(base, ops);
        if accepted.is_empty() {
            return Round::Done;
        }
        let changes: Vec<OwnedChange> = names
            .iter()
            .filter_map(|n| plan::secret_change(&slot.name, base.get(n), candidate.get(n)))
            .collect();
        let main = self.inner.settings.branch.clone();
        let mut extras = self.extras(slot, &spec);
        // Nothing asked to change and nothing moved: answered without touching Git.
        if changes.is_empty() && !extras.changed() {
            let watched = match &pending {
                Some(p) => (p.branch.as_str(), Some(p.head.clone())),
                None => (main.as_str(), clean_head.clone()),
            };
            let now = self
                .inner
                .engine
                .remote_head(repo.remote.clone(), watched.0)
                .await;
            if watched.1.is_some() && now.as_ref().ok() == Some(&watched.1) {
                let ack = match &pending {
                    Some(p) => WriteAck::proposed(&p.url),
                    None => WriteAck::at(clean_head),
                };
                self.external_pushed(slot, &extras.external, true);
                self.answer(slot, accepted, &changes, ack, None);
                return Round::Done;
            }
        }
        let branch = pending
            .as_ref()
            .map(|p| p.branch.clone())
            .unwrap_or_else(new_branch_name);
        let message = round_message(&slot.name, &changes, &accepted, &extras);
        let mut model = plan::model_app(&spec, candidate.values(), repo.flux.clone());
        extras.fill(&mut model);
        let title = message.preferred().subject().to_owned();
        // On an open pull request's branch, commits not sealwright's since its last push (a
        // reviewer's) that change its files are drift: written back and reported on the PR.
        let found = Arc::new(std::sync::Mutex::new(None));
        let planner = self.platform_planner(
            model,
            keys.clone(),
            pending.as_ref().map(|p| (p.head.clone(), BTreeSet::new())),
            message,
            false,
            found.clone(),
            crate::spec::DriftPolicy::Restore,
        );
        let applied = self
            .inner
            .engine
            .apply_with(
                repo.remote.clone(),
                Target::new_branch(&branch, &main),
                &self.inner.settings.author,
                planner,
            )
            .await;
        let applied = match applied {
            Ok(a) => a,
            Err(source) => {
                let e = ReconcileError::Git {
                    repo: repo.full_name.clone(),
                    source,
                };
                self.extras_pushed(slot, &extras, Err(e.to_string()));
                return fail(e, accepted.into_iter().map(|(op, _)| op).collect());
            }
        };
        let drift = found.lock().unwrap_or_else(|p| p.into_inner()).take();
        if let (Some(d), Some(commit)) = (drift, applied.commit()) {
            self.drift_restored(slot, &d, Some(commit));
            let status = crate::host::CommitStatus {
                state: crate::host::StatusState::Failure,
                context: "sealwright/drift".into(),
                description: truncate_description(&format!(
                    "{} by {} changed sealwright's files ({}); written back. Change secrets through sealwright.",
                    d.commits.first().map_or("", |c| &c.id[..12.min(c.id.len())]),
                    d.commits.first().map_or("?", |c| c.author.as_str()),
                    d.files.join(", ")
                )),
                target_url: None,
            };
            if let Err(e) = self
                .inner
                .host
                .set_commit_status(&repo.repo_ref, commit, &status)
                .await
            {
                tracing::warn!(app = %slot.name, error = %e, "drift status not set on the pull request");
            }
        }
        match applied {
            Applied::Committed { commit, .. } => {
                self.inner
                    .metrics
                    .commits_platform
                    .fetch_add(1, Ordering::Relaxed);
                match pending {
                    Some(p) => {
                        self.after_push_to_open(
                            slot, repo, p, candidate, commit, accepted, &changes, &extras,
                        )
                        .await
                    }
                    None => {
                        let proposal = NewPullRequest {
                            title,
                            body: pull_request_body(&slot.name, &main),
                            head: branch.clone(),
                            base: main.clone(),
                        };
                        match self
                            .inner
                            .host
                            .open_pull_request(&repo.repo_ref, &proposal)
                            .await
                        {
                            Ok(pr) => {
                                slot.lock().pending = Some(Pending {
                                    secrets: candidate,
                                    branch,
                                    number: pr.number,
                                    url: pr.url.clone(),
                                    head: commit,
                                });
                                self.clear_failure(slot);
                                self.extras_pushed(slot, &extras, Ok((None, Some(pr.url.clone()))));
                                self.answer(
                                    slot,
                                    accepted,
                                    &changes,
                                    WriteAck::proposed(&pr.url),
                                    None,
                                );
                                Round::Done
                            }
                            Err(source) => {
                                // Pushed but not proposed: nothing is acknowledged, and the new
                                // branch goes again so that the next try starts clean.
                                self.delete_branch(repo, &branch).await;
                                let e = ReconcileError::Host {
                                    repo: repo.full_name.clone(),
                                    source,
                                };
                                fail(e, accepted.into_iter().map(|(op, _)| op).collect())
                            }
                        }
                    }
                }
            }
            Applied::Unchanged { .. } => match pending {
                Some(p) => {
                    let url = p.url.clone();
                    slot.lock().pending = Some(Pending {
                        secrets: candidate,
                        ..p
                    });
                    self.extras_pushed(slot, &extras, Ok((None, Some(url.clone()))));
                    self.answer(slot, accepted, &changes, WriteAck::proposed(&url), None);
                    Round::Done
                }
                None => {
                    // The base branch already holds exactly this: nothing to propose.
                    let head = self
                        .inner
                        .engine
                        .remote_head(repo.remote.clone(), &main)
                        .await
                        .unwrap_or(clean_head);
                    {
                        let mut d = slot.lock();
                        d.secrets = candidate;
                        d.clean_head = head.clone();
                    }
                    self.extras_pushed(slot, &extras, Ok((head.clone(), None)));
                    self.answer(slot, accepted, &changes, WriteAck::at(head), None);
                    Round::Done
                }
            },
        }
    }

    /// After a push to the branch of a pull request that was open when the round began: the
    /// write is acknowledged only if the pull request still is. One that was merged or closed
    /// meanwhile is settled by the next attempt (a merge may or may not hold this push), and the
    /// writes are tried again on top of that.
    #[allow(clippy::too_many_arguments)]
    async fn after_push_to_open(
        &self,
        slot: &Arc<AppSlot>,
        repo: &Arc<RepoHandle>,
        p: Pending,
        candidate: BTreeMap<String, SecretSpec>,
        commit: String,
        accepted: super::Accepted,
        changes: &[OwnedChange],
        extras: &super::Extras,
    ) -> Round {
        let state = self.inner.host.pull_request(&repo.repo_ref, p.number).await;
        match state {
            Ok(pr) if pr.state == PullRequestState::Open => {
                let url = p.url.clone();
                slot.lock().pending = Some(Pending {
                    secrets: candidate,
                    head: commit,
                    ..p
                });
                self.clear_failure(slot);
                self.extras_pushed(slot, extras, Ok((None, Some(url.clone()))));
                self.answer(slot, accepted, changes, WriteAck::proposed(&url), None);
                Round::Done
            }
            Ok(_) => Round::Again(accepted.into_iter().map(|(op, _)| op).collect()),
            Err(source) => {
                // The branch holds the writes whatever the answer: keep them proposed so that
                // a later round does not quietly revert them, but do not acknowledge them.
                slot.lock().pending = Some(Pending {
                    secrets: candidate,
                    head: commit,
                    ..p
                });
                let e = ReconcileError::Host {
                    repo: repo.full_name.clone(),
                    source,
                };
                self.fail_ops(
                    slot,
                    &repo.full_name,
                    &e,
                    accepted.into_iter().map(|(op, _)| op),
                );
                Round::Done
            }
        }
    }

    /// A repository without a commit gets its set-up commit on the base branch itself.
    async fn set_up_branch(
        &self,
        slot: &Arc<AppSlot>,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Result<(), ReconcileError> {
        if slot.lock().clean_head.is_some() {
            return Ok(());
        }
        let git = |source| ReconcileError::Git {
            repo: repo.full_name.clone(),
            source,
        };
        let main = &self.inner.settings.branch;
        let head = self
            .inner
            .engine
            .remote_head(repo.remote.clone(), main)
            .await
            .map_err(git)?;
        if head.is_some() {
            return Ok(());
        }
        let (spec, committed) = {
            let d = slot.lock();
            (d.spec.clone(), d.secrets.clone())
        };
        let model = plan::model_app(&spec, committed.values(), repo.flux.clone());
        let planner = self.platform_planner(
            model,
            keys.clone(),
            None,
            super::RoundMessage::fixed(CommitMessage::new(&format!(
                "{}: set up the platform repo",
                slot.name
            ))),
            true,
            Default::default(),
            Default::default(),
        );
        let applied = self
            .inner
            .engine
            .apply_with(
                repo.remote.clone(),
                Target::branch(main),
                &self.inner.settings.author,
                planner,
            )
            .await
            .map_err(git)?;
        if matches!(applied, Applied::Committed { .. }) {
            self.inner
                .metrics
                .commits_platform
                .fetch_add(1, Ordering::Relaxed);
        }
        let head = applied.commit().map(str::to_owned);
        let mut d = slot.lock();
        d.clean_head = head.clone();
        d.last_commit = head;
        Ok(())
    }

    /// Asks the host what became of the app's pull request; a merged one becomes the committed
    /// state (read back from the base branch), a closed one is dropped.
    async fn settle(
        &self,
        slot: &Arc<AppSlot>,
        actor: &Actor,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Result<(), ReconcileError> {
        let Some(p) = slot.lock().pending.clone() else {
            return Ok(());
        };
        let pr = self
            .inner
            .host
            .pull_request(&repo.repo_ref, p.number)
            .await
            .map_err(|source| ReconcileError::Host {
                repo: repo.full_name.clone(),
                source,
            })?;
        let proposed: Vec<String> = {
            let d = slot.lock();
            let names: BTreeSet<&String> = d.secrets.keys().chain(p.secrets.keys()).collect();
            names
                .into_iter()
                .filter(|n| match (d.secrets.get(*n), p.secrets.get(*n)) {
                    (Some(a), Some(b)) => !a.same_as(b),
                    _ => true,
                })
                .cloned()
                .collect()
        };
        // Merged into another branch (retargeted by someone) delivers nothing Flux follows.
        let merged =
            pr.state == PullRequestState::Merged && pr.base_ref == self.inner.settings.branch;
        let mut ev = actor.event(match pr.state {
            PullRequestState::Open => return Ok(()),
            _ if merged => "pull_request.merged",
            _ => "pull_request.closed",
        });
        ev.app = Some(slot.name.clone());
        ev.tenant = Some(slot.lock().spec.tenant.clone());
        ev.pull_request = Some(p.url.clone());
        if !merged {
            {
                let mut d = slot.lock();
                d.pending = None;
                // The branch's tokens and external secrets never reached the base branch: the
                // next round proposes them again.
                d.credentials.clear();
                d.external = None;
            }
            let how = match pr.state {
                PullRequestState::Merged => format!(
                    "merged into {} instead of {}",
                    pr.base_ref, self.inner.settings.branch
                ),
                _ => "closed without merging".to_owned(),
            };
            ev.detail = Some(format!(
                "{how}; its changes are dropped (secrets: {})",
                proposed.join(", ")
            ));
            self.inner.events.record(ev);
            self.delete_branch(repo, &p.branch).await;
            return Ok(());
        }
        let (head, merged, credentials) = self.read_secrets(slot, keys, repo, None).await?;
        let commit = pr.merge_commit_sha.clone().or_else(|| head.clone());
        self.adopt_credentials(slot, commit.clone(), credentials);
        let flux_needed = {
            let mut d = slot.lock();
            let names: BTreeSet<String> = d.secrets.keys().chain(merged.keys()).cloned().collect();
            for n in names {
                match (d.secrets.get(&n), merged.get(&n)) {
                    (Some(a), Some(b)) if a.same_as(b) => {}
                    (_, Some(_)) => {
                        d.secret_state.insert(
                            n,
                            SecretState {
                                commit: commit.clone(),
                                applied: false,
                            },
                        );
                    }
                    (_, None) => {
                        d.secret_state.remove(&n);
                    }
                }
            }
            let moved = plan::placement(&d.spec, d.secrets.values())
                != plan::placement(&d.spec, merged.values());
            d.secrets = merged;
            d.pending = None;
            // What the merge holds is read again by the next round's render.
            d.external = None;
            d.clean_head = head;
            d.last_commit = commit.clone();
            if moved {
                d.flux_synced = false;
            }
            moved
        };
        ev.commit = commit;
        ev.detail = Some(format!("merged (secrets: {})", proposed.join(", ")));
        self.inner.events.record(ev);
        self.delete_branch(repo, &p.branch).await;
        if flux_needed {
            let scope = FluxScope::Apps(BTreeSet::from([slot.name.clone()]));
            match self.flux_commit(scope).await {
                Ok(_) => slot.lock().flux_synced = true,
                // The merge is settled; the RBAC follows in a later round.
                Err(e) => self.record_failure(slot, &e),
            }
        }
        Ok(())
    }

    /// Best effort: a leftover branch is harmless (the next pull request uses a new name).
    async fn delete_branch(&self, repo: &RepoHandle, branch: &str) {
        if let Err(e) = self.inner.host.delete_branch(&repo.repo_ref, branch).await {
            tracing::warn!(repo = %repo.full_name, %branch, error = %e, "could not delete the pull request's branch");
        }
    }

    /// After a restart: the open pull request sealwright made, and what its branch proposes.
    pub(super) async fn load_pending(
        &self,
        slot: &Arc<AppSlot>,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
    ) -> Result<(), ReconcileError> {
        let open = self
            .inner
            .host
            .open_pull_requests(&repo.repo_ref, &self.inner.settings.branch)
            .await
            .map_err(|source| ReconcileError::Host {
                repo: repo.full_name.clone(),
                source,
            })?;
        // Only ours: a sealwright/ branch in this very repository (not a fork's, not someone
        // else's look-alike elsewhere), and the newest if (against the rules) there are several.
        let Some(pr) = open
            .into_iter()
            .filter(|p| {
                p.head_ref.starts_with(BRANCH_PREFIX)
                    && p.head_repo
                        .as_deref()
                        .is_some_and(|r| r.eq_ignore_ascii_case(&repo.full_name))
            })
            .max_by_key(|p| p.number)
        else {
            return Ok(());
        };
        let (head, secrets, credentials) = self
            .read_secrets(slot, keys, repo, Some(&pr.head_ref))
            .await?;
        if head.is_none() {
            // A branch that is gone reads as no secrets at all: adopting that would propose
            // deleting every secret. GitHub closes such a pull request; so do we, in effect.
            tracing::warn!(app = %slot.name, pull_request = %pr.url, branch = %pr.head_ref, "the pull request's branch is gone; not adopting it");
            return Ok(());
        }
        // The branch holds the newest tokens: those are what the next render starts from.
        self.adopt_credentials(slot, None, credentials);
        slot.lock().pending = Some(Pending {
            secrets,
            branch: pr.head_ref,
            number: pr.number,
            url: pr.url,
            head: head.unwrap_or(pr.head_sha),
        });
        Ok(())
    }

    /// The secrets a branch of the platform repo holds (the base branch when `None`), decrypted
    /// with the app key, and the branch tip they were read at.
    pub(super) async fn read_secrets(
        &self,
        slot: &Arc<AppSlot>,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
        branch: Option<&str>,
    ) -> Result<
        (
            Option<String>,
            BTreeMap<String, SecretSpec>,
            Vec<super::RecoveredCredential>,
        ),
        ReconcileError,
    > {
        let (head, _, secrets, credentials) =
            self.read_records(slot, keys, repo, branch, None).await?;
        Ok((head, secrets, credentials))
    }

    /// [`Reconciler::read_secrets`], read at the last commit authored by `records_of` when one
    /// is given and found (sealwright's last render: what it recorded, whatever came after),
    /// which is answered second.
    #[allow(clippy::type_complexity)]
    pub(super) async fn read_records(
        &self,
        slot: &Arc<AppSlot>,
        keys: &Arc<AppKeys>,
        repo: &Arc<RepoHandle>,
        branch: Option<&str>,
        records_of: Option<String>,
    ) -> Result<
        (
            Option<String>,
            Option<String>,
            BTreeMap<String, SecretSpec>,
            Vec<super::RecoveredCredential>,
        ),
        ReconcileError,
    > {
        let branch = branch.unwrap_or(&self.inner.settings.branch);
        let (head, baseline, files, sops_yaml) = self
            .inner
            .engine
            .read(repo.remote.clone(), branch, move |snap| {
                let baseline = records_of
                    .as_deref()
                    .and_then(|email| snap.last_authored_by(email, 1_000))
                    .filter(|b| snap.commit_id().as_deref() != Some(b.as_str()));
                let at = match &baseline {
                    Some(b) => Some(snap.at(b)?),
                    None => None,
                };
                let view = at.as_ref().unwrap_or(snap);
                Ok((
                    snap.commit_id(),
                    baseline,
                    view.files_under("secrets/")?,
                    view.read(".sops.yaml")?,
                ))
            })
            .await
            .map_err(|source| ReconcileError::Git {
                repo: repo.full_name.clone(),
                source,
            })?;
        let recipient = keys.age.recipient();
        // The repo's .sops.yaml names the app's recipient: a key that is not in it is the wrong
        // key (replaced, or another app's), and rendering with it would re-encrypt nothing.
        if let Some(text) = &sops_yaml {
            if !String::from_utf8_lossy(text).contains(&recipient) {
                return Err(ReconcileError::Lost {
                    app: slot.name.clone(),
                    message: format!(
                        "its key {} ({recipient}) is not the key {}'s .sops.yaml names; restore the right key: sealwright keys recover --app {} --cluster-identity FILE --config FILE",
                        self.inner.keys.location(&slot.name),
                        repo.full_name,
                        slot.name
                    ),
                });
            }
        }
        let spec = slot.lock().spec.clone();
        let keys = keys.clone();
        let (secrets, credentials, problems) =
            tokio::task::spawn_blocking(move || plan::recover_secrets(&spec, &keys.age, &files))
                .await
                .map_err(|e| ReconcileError::Internal(e.to_string()))?;
        for (path, problem) in problems {
            tracing::warn!(app = %slot.name, %branch, %path, %problem, "not a sealwright secret; left as it is");
        }
        Ok((
            head,
            baseline,
            secrets.into_iter().map(|s| (s.name.clone(), s)).collect(),
            credentials,
        ))
    }

    /// A pull request of `repo` (owner/name) changed on the host (a webhook): the app owning it
    /// settles it now. `None` when no app is waiting on a pull request there.
    pub async fn pull_request_event(
        &self,
        actor: &Actor,
        repo: &str,
    ) -> Result<Option<String>, ReconcileError> {
        let slot = self
            .apps()
            .values()
            .find(|s| {
                let d = s.lock();
                !d.deleted
                    && d.pending.is_some()
                    && d.repo
                        .as_ref()
                        .is_some_and(|r| r.full_name.eq_ignore_ascii_case(repo))
            })
            .cloned();
        let Some(slot) = slot else {
            return Ok(None);
        };
        self.submit(&slot, actor, SecretOpKind::Sync).await?;
        Ok(Some(slot.name.clone()))
    }

    /// The polling fallback for missed webhooks: every app waiting on a pull request asks the
    /// host about it.
    pub async fn poll_pull_requests(&self) {
        let waiting: Vec<Arc<AppSlot>> = self
            .apps()
            .values()
            .filter(|s| {
                let d = s.lock();
                !d.deleted && d.pending.is_some()
            })
            .cloned()
            .collect();
        let actor = Actor::new("reconciler");
        for slot in waiting {
            if let Err(e) = self.submit(&slot, &actor, SecretOpKind::Sync).await {
                tracing::info!(app = %slot.name, error = %e, "pull request poll failed");
            }
        }
    }
}

/// What the pull request says about itself (no values, no key names: the commits list those).
fn pull_request_body(app: &str, base: &str) -> String {
    format!(
        "Secret changes for {app}, SOPS-encrypted by sealwright. Each commit lists the secrets and \
         key names it changes; values never appear.\n\nMerging delivers them: Flux applies \
         `{base}`. Further changes for {app} are added to this pull request until it is merged \
         or closed; closing it drops them."
    )
}

#[cfg(test)]
mod tests {
    use super::super::views::secret_views;
    use super::super::{AppSlot, Source};
    use super::*;
    use crate::reconcile::AppSpec;
    use serde_json::json;

    fn secret(app: &AppSpec, name: &str, value: &str) -> SecretSpec {
        SecretSpec::from_json(
            name,
            &json!({"targetNamespaces": ["shop-prod"], "data": {"k": value}}),
            app,
        )
        .unwrap()
    }

    #[test]
    fn views_overlay_what_the_pull_request_proposes() {
        let app = AppSpec::from_json(&json!({"name": "shop", "tenant": "acme",
            "delivery": "pull-request",
            "environments": [{"name": "prod", "namespace": "shop-prod"}]}))
        .unwrap();
        let slot = AppSlot::new(app.clone(), Source::Api);
        let mut d = slot.lock();
        for (name, value) in [("kept", "a"), ("changed", "b"), ("dropped", "c")] {
            d.secrets.insert(name.into(), secret(&app, name, value));
            d.secret_state.insert(
                name.into(),
                SecretState {
                    commit: Some("c1".into()),
                    applied: false,
                },
            );
        }
        let plain = secret_views(&d);
        assert!(plain.values().all(|v| v.committed()));
        let mut proposed = d.secrets.clone();
        proposed.remove("dropped");
        proposed.insert("changed".into(), secret(&app, "changed", "b2"));
        proposed.insert("new".into(), secret(&app, "new", "d"));
        d.pending = Some(Pending {
            secrets: proposed,
            branch: "sealwright/x".into(),
            number: 7,
            url: "https://github.com/o/r/pull/7".into(),
            head: "h".into(),
        });
        let views = secret_views(&d);
        // What the API shows of each (`api::views::secret`).
        let field = |name: &str, f: &str| {
            let v = &views[name];
            match f {
                "committed" => json!(v.committed()),
                "pendingChange" => json!(v.pending),
                "pullRequest" => json!(v.pull_request),
                "commit" => json!(v.commit),
                other => panic!("{other}"),
            }
        };
        assert_eq!(field("kept", "committed"), json!(true));
        assert_eq!(field("kept", "pullRequest"), serde_json::Value::Null);
        for (name, change, commit) in [
            ("changed", "update", json!("c1")),
            ("dropped", "delete", json!("c1")),
            ("new", "create", serde_json::Value::Null),
        ] {
            assert_eq!(field(name, "committed"), json!(false), "{name}");
            assert_eq!(field(name, "pendingChange"), json!(change), "{name}");
            assert_eq!(
                field(name, "pullRequest"),
                json!("https://github.com/o/r/pull/7")
            );
            assert_eq!(field(name, "commit"), commit, "{name}");
        }
        // Writes build on the proposal; the committed set is untouched until a merge.
        assert!(d.desired().contains_key("new") && !d.desired().contains_key("dropped"));
        assert!(d.secrets.contains_key("dropped"));
    }

    #[test]
    fn branch_names_are_valid_unique_and_ours() {
        let a = new_branch_name();
        let b = new_branch_name();
        assert!(a.starts_with(BRANCH_PREFIX), "{a}");
        assert_ne!(a, b);
        crate::names::validate_branch("branch", &a).unwrap();
    }
}
