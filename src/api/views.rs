//! The API's JSON for what the reconciler shows: apps, secrets, write answers, deployments and
//! external secrets. The field names are the API's contract (README "API"); the views
//! themselves hold no key material and no values, so nothing here can leak one.

use std::collections::BTreeMap;

use serde_json::{json, Value as Json};

use crate::external::{self, Effective};
use crate::reconcile::{
    AppView, DeployResult, DeploymentView, ExternalOutcome, ExternalView, ExternalWrite,
    SecretView, WriteAck,
};
use crate::render;
use crate::tokens::jwt::Algorithm;
use sops::scalar::DateTime;

/// A write's answer: committed and where, or the pull request that carries it.
pub fn ack(a: &WriteAck) -> Json {
    let mut j = json!({"committed": a.committed});
    if let Some(c) = &a.commit {
        j["commit"] = json!(c);
    }
    if let Some(p) = &a.pull_request {
        j["pullRequest"] = json!(p);
    }
    j
}

/// An app as `admin` or a tenant may see it: a tenant is not shown where the server keeps its
/// repositories on its own disk (a local path is no URL of theirs).
pub fn app(v: &AppView, admin: bool) -> Json {
    let mut j = app_full(v);
    if !admin {
        for k in ["platformRepo", "fluxRepo"] {
            if j[k].as_str().is_some_and(|u| !u.contains("://")) {
                j[k] = Json::Null;
            }
        }
    }
    j
}

fn app_full(v: &AppView) -> Json {
    let mut j = v.spec.to_json();
    j["status"] = json!(v.status());
    j["ready"] = json!(v.ready);
    j["source"] = json!(v.source.as_str());
    j["recipient"] = json!(v.recipient);
    j["repo"] = json!(v.repo);
    j["platformRepo"] = json!(v.platform_repo);
    j["fluxRepo"] = json!(v.flux_repo);
    j["lastCommit"] = json!(v.last_commit);
    j["secrets"] = json!(v.secrets);
    j["pullRequest"] = json!(v.pull_request);
    j["drift"] = match &v.drift {
        None => Json::Null,
        Some(d) => json!({
            "files": d.files,
            "commits": d.commits,
            "authors": d.authors,
            "restoredIn": d.restored_in,
            "state": d.state,
        }),
    };
    j["flux"] = match &v.flux {
        None => Json::Null,
        Some(f) => json!({"ready": f.ready, "reason": f.reason, "message": f.message}),
    };
    j["errors"] = Json::Array(
        v.errors
            .iter()
            .map(|e| json!({"time": e.time, "message": e.message}))
            .collect(),
    );
    j
}

/// A managed secret: names and places, never values.
pub fn secret(v: &SecretView) -> Json {
    let mut j = json!({
        "name": v.name,
        "targetName": v.target_name,
        "namespaces": v.namespaces,
        "type": v.type_,
        "keys": v.keys,
        "committed": v.committed(),
        "commit": v.commit,
        "applied": v.applied,
        "pullRequest": v.pull_request,
        "pendingChange": v.pending,
        "files": v.namespaces.iter().map(|ns| render::secret_path(ns, &v.target_name)).collect::<Vec<_>>(),
        "keyKinds": v.key_kinds,
    });
    if let Json::Object(rules) = v.recipe.to_json() {
        for (k, r) in rules {
            if k != "previous" {
                j[k] = r;
            }
        }
    }
    j
}

/// Providers with their keys and each key's origin; `provider` narrows to one.
pub fn external(v: &ExternalView, provider: Option<&str>) -> Json {
    let mut by_provider: BTreeMap<&str, Vec<&Effective>> = BTreeMap::new();
    for e in &v.effective {
        if provider.is_none_or(|p| p == e.provider) {
            by_provider.entry(&e.provider).or_default().push(e);
        }
    }
    let provider_json = |p: &str, es: &[&Effective]| {
        json!({
            "provider": p,
            "keys": es.iter().map(|e| &e.key).collect::<Vec<_>>(),
            "origins": es.iter().map(|e| (e.key.clone(), json!(e.origin.as_str()))).collect::<serde_json::Map<_, _>>(),
        })
    };
    let name = external::secret_name(&v.app);
    let mut j = json!({
        "app": v.app,
        "tenant": v.tenant,
        "secretName": name,
        "files": v.namespaces.iter().map(|ns| crate::render::secret_path(ns, &name)).collect::<Vec<_>>(),
    });
    match provider {
        Some(p) => {
            let es = by_provider.get(p).cloned().unwrap_or_default();
            if let Json::Object(o) = provider_json(p, &es) {
                for (k, v) in o {
                    j[k] = v;
                }
            }
        }
        None => {
            j["providers"] = Json::Array(
                by_provider
                    .iter()
                    .map(|(p, es)| provider_json(p, es))
                    .collect(),
            );
            j["keys"] = json!(v.effective.iter().map(|e| &e.key).collect::<Vec<_>>());
            j["origins"] = Json::Object(
                v.effective
                    .iter()
                    .map(|e| (e.key.clone(), json!(e.origin.as_str())))
                    .collect(),
            );
            j["status"] = match &v.outcome {
                None => json!({"state": "pending"}),
                Some(ExternalOutcome::Injected { origins }) => {
                    json!({"state": "injected", "keyCount": origins.len()})
                }
                Some(ExternalOutcome::Empty) => json!({"state": "empty", "keyCount": 0}),
                Some(ExternalOutcome::Unavailable { reason }) => {
                    json!({"state": "skipped", "reason": reason})
                }
            };
        }
    }
    if !v.clashes.is_empty() {
        j["clashes"] = Json::Array(
            v.clashes
                .iter()
                .map(|c| json!({"key": c.key, "kept": format!("{}/{}", c.kept.origin.as_str(), c.kept.provider), "shadowed": format!("{}/{}", c.shadowed.origin.as_str(), c.shadowed.provider)}))
                .collect(),
        );
    }
    j
}

/// What a write of an external-secrets layer did, and each app's round after it.
pub fn external_write(w: &ExternalWrite) -> Json {
    json!({
        "committed": w.commit.is_some(),
        "commit": w.commit,
        "keys": w.keys,
        "apps": w.apps.iter().map(|(app, r)| {
            let mut j = match r {
                Ok(a) => ack(a),
                Err(e) => json!({"committed": false, "error": e}),
            };
            j["app"] = json!(app);
            j
        }).collect::<Vec<_>>(),
    })
}

/// What `POST /v1/apps/{app}/deploys` did.
pub fn deploy(r: &DeployResult) -> Json {
    let mut j = ack(&r.ack);
    j["app"] = json!(r.app);
    j["app_id"] = json!(r.app);
    j["tenant_id"] = json!(r.tenant);
    j["image_ref"] = json!(r.image_ref);
    let name = external::secret_name(&r.app);
    j["externalSecrets"] = match &r.outcome {
        ExternalOutcome::Injected { origins } => json!({
            "status": "injected",
            "secretName": name,
            "keyCount": origins.len(),
            "keys": origins.iter().map(|e| &e.key).collect::<Vec<_>>(),
        }),
        ExternalOutcome::Empty => json!({
            "status": "skipped",
            "secretName": name,
            "keyCount": 0,
            "reason": "no external secrets",
        }),
        ExternalOutcome::Unavailable { reason } => json!({
            "status": "skipped",
            "secretName": name,
            "reason": reason,
        }),
    };
    j
}

/// A deployment and its credentials' state, never the token.
pub fn deployment(v: &DeploymentView) -> Json {
    let mut j = v.spec.to_json();
    j["source"] = json!(v.source.as_str());
    j["secretName"] = json!(v.spec.secret_name());
    j["file"] = json!(render::secret_path(
        &v.spec.namespace,
        &v.spec.secret_name()
    ));
    j["credentialsEnabled"] = json!(v.enabled);
    j["algorithm"] = json!(v.algorithm.map(Algorithm::as_str));
    j["keyId"] = json!(v.key_id);
    j["issuedAt"] = time_json(v.issued_at);
    j["expiresAt"] = time_json(v.expires_at);
    j["lastRefresh"] = time_json(v.last_refresh);
    j["committed"] = json!(v.commit.is_some());
    j["commit"] = json!(v.commit);
    j["pullRequest"] = json!(v.pull_request);
    j["lastError"] = v.last_error.as_ref().map_or(
        Json::Null,
        |e| json!({"time": e.time, "message": e.message}),
    );
    j["revokedTokens"] = json!(v.revoked);
    j
}

/// A Unix time as RFC 3339, or null.
fn time_json(t: Option<i64>) -> Json {
    t.map_or(Json::Null, |s| json!(DateTime::from_unix(s).rfc3339()))
}
