//! What the reconciler shows: an app and its secrets (registration, status, places and
//! key names, never key material or values), a write's answer and a recorded failure.

use std::collections::BTreeMap;

use crate::spec::{AppSpec, SecretSpec};

use super::store::Source;
use super::{AppData, AppSlot, Reconciler};

impl Reconciler {
    pub(super) fn view(&self, slot: &AppSlot) -> AppView {
        let d = slot.lock();
        let s = &self.inner.settings;
        AppView {
            spec: d.spec.clone(),
            source: d.source,
            ready: d.ready(),
            recipient: d.keys.as_ref().map(|k| k.age.recipient()),
            repo: d.spec.platform_repo(&s.owner),
            platform_repo: d.repo.as_ref().map(|r| r.clone_url.clone()),
            flux_repo: self
                .inner
                .flux_clone_url
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
            last_commit: d.last_commit.clone(),
            errors: d.errors.clone(),
            secrets: d.secrets.len(),
            pull_request: d.pending.as_ref().map(|p| p.url.clone()),
            drift: d.drift.clone(),
            flux: d.flux.clone(),
        }
    }
}

/// What a write learns: the commit it is in, or the pull request that carries it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WriteAck {
    pub committed: bool,
    pub commit: Option<String>,
    pub pull_request: Option<String>,
}

impl WriteAck {
    /// The write is in `head` on the branch Flux follows (`None`: the repo has no commit yet).
    pub(super) fn at(head: Option<String>) -> WriteAck {
        WriteAck {
            committed: head.is_some(),
            commit: head,
            pull_request: None,
        }
    }

    /// The write is in this open pull request.
    pub(super) fn proposed(url: &str) -> WriteAck {
        WriteAck {
            committed: false,
            commit: None,
            pull_request: Some(url.to_owned()),
        }
    }
}

/// A recorded failure, value-free.
#[derive(Clone, Debug)]
pub struct StatusError {
    pub time: String,
    pub message: String,
}

/// A view of an app for the API: registration and status, never key material.
#[derive(Clone, Debug)]
pub struct AppView {
    pub spec: AppSpec,
    pub source: Source,
    pub ready: bool,
    pub recipient: Option<String>,
    pub repo: String,
    pub platform_repo: Option<String>,
    pub flux_repo: Option<String>,
    pub last_commit: Option<String>,
    pub errors: Vec<StatusError>,
    pub secrets: usize,
    /// The open pull request waiting for review (pull-request delivery).
    pub pull_request: Option<String>,
    /// The last drift found in its platform repo.
    pub drift: Option<super::DriftStatus>,
    /// Flux's readiness, where controller mode reads it back.
    pub flux: Option<super::FluxStatus>,
}

impl AppView {
    /// `ready`, `failed` (errors recorded, retrying) or `provisioning`.
    pub fn status(&self) -> &'static str {
        if self.ready {
            "ready"
        } else if self.errors.is_empty() {
            "provisioning"
        } else {
            "failed"
        }
    }
}

/// A view of a managed secret: names and places, values only when revealed.
#[derive(Clone, Debug)]
pub struct SecretView {
    pub name: String,
    pub target_name: String,
    pub namespaces: Vec<String>,
    pub type_: String,
    pub keys: Vec<String>,
    /// Per key: `set`, `generated` or `derived`.
    pub key_kinds: BTreeMap<String, &'static str>,
    /// The rules (`preset`, `generate`, `derive`, `validate`), no value.
    pub recipe: crate::recipe::Recipe,
    /// The commit that last changed it on the branch Flux follows.
    pub commit: Option<String>,
    /// The open pull request that changes it, and how: `create`, `update` or `delete`.
    pub pull_request: Option<String>,
    pub pending: Option<&'static str>,
    /// Flux applied a commit that contains `commit` (known in controller mode only).
    pub applied: bool,
}

impl SecretView {
    /// On the branch Flux follows, with no open pull request changing it.
    pub fn committed(&self) -> bool {
        self.commit.is_some() && self.pending.is_none()
    }
}

pub(super) fn secret_view(d: &AppData, s: &SecretSpec) -> SecretView {
    SecretView {
        name: s.name.clone(),
        target_name: s.target_name.clone(),
        namespaces: s.target_namespaces.clone(),
        type_: s.type_.clone(),
        keys: s.data.keys().cloned().collect(),
        key_kinds: s
            .data
            .keys()
            .map(|k| (k.clone(), s.recipe.kind_of(k).as_str()))
            .collect(),
        recipe: s.recipe.clone(),
        commit: d.secret_state.get(&s.name).and_then(|st| st.commit.clone()),
        pull_request: None,
        pending: None,
        applied: d.secret_state.get(&s.name).is_some_and(|st| st.applied),
    }
}

/// Every secret of an app by name: the committed ones, overlaid with what an open pull request
/// proposes (creations, updates, deletions), each marked with the pull request.
pub(super) fn secret_views(d: &AppData) -> BTreeMap<String, SecretView> {
    let mut out: BTreeMap<String, SecretView> = d
        .secrets
        .values()
        .map(|s| (s.name.clone(), secret_view(d, s)))
        .collect();
    let Some(p) = &d.pending else {
        return out;
    };
    for (name, s) in &p.secrets {
        let change = match d.secrets.get(name) {
            Some(c) if c.same_as(s) => continue,
            Some(_) => "update",
            None => "create",
        };
        let mut v = secret_view(d, s);
        v.pull_request = Some(p.url.clone());
        v.pending = Some(change);
        out.insert(name.clone(), v);
    }
    for (name, v) in out.iter_mut() {
        if !p.secrets.contains_key(name) {
            v.pull_request = Some(p.url.clone());
            v.pending = Some("delete");
        }
    }
    out
}
