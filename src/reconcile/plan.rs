//! The pure half of a round: desired state → the model the renderer takes; rendered files vs a
//! repository's files → a [`ChangeSet`]; secret specs before and after → what a commit message
//! says changed; and the way back, committed platform files → secret specs (after a restart; the
//! credentials and external-secrets files are told apart by their labels).
//! Nothing here does I/O.

use std::collections::{BTreeMap, BTreeSet};

use crate::git::{ChangeSet, CommitMessage, GitError, SecretChange, SecretChangeKind};
use crate::keys::AgeKey;
use crate::model::{App, Environment, ManagedSecret, PlatformRepo, SecretValue};
use crate::render::{seal, Tree};
use sops::{Map, Value};

use crate::spec::{AppSpec, SecretSpec};

/// The change that makes a repository's files in some scope equal `rendered`: a write for every
/// rendered file that is missing or different, a delete for every file of `current` (already
/// narrowed to the files sealwright owns in that scope) that is no longer rendered.
pub fn plan(current: &Tree, rendered: &Tree) -> Result<ChangeSet, GitError> {
    let mut changes = ChangeSet::new();
    for (path, bytes) in rendered {
        if current.get(path) != Some(bytes) {
            changes.write(path, bytes.clone())?;
        }
    }
    for path in current.keys() {
        if !rendered.contains_key(path) {
            changes.delete(path)?;
        }
    }
    Ok(changes)
}

/// The renderer's view of an app: environments in registration order, each secret delivered to
/// the environments whose namespace it targets. A secret none of whose namespaces is still an
/// environment of the app renders no file.
pub fn model_app<'a>(
    spec: &AppSpec,
    secrets: impl IntoIterator<Item = &'a SecretSpec>,
    repo: PlatformRepo,
) -> App {
    let environments: Vec<Environment> = spec
        .environments
        .iter()
        .map(|e| Environment {
            name: e.name.clone(),
            namespace: e.namespace.clone(),
            variables: e.variables.clone(),
            source: e.source.clone(),
        })
        .collect();
    let secrets = secrets
        .into_iter()
        .filter_map(|s| {
            let envs: Vec<String> = environments
                .iter()
                .filter(|e| s.target_namespaces.contains(&e.namespace))
                .map(|e| e.name.clone())
                .collect();
            if envs.is_empty() {
                return None;
            }
            Some(ManagedSecret {
                name: s.name.clone(),
                target_name: s.target_name.clone(),
                environments: envs,
                type_: s.type_.clone(),
                data: s.data.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
                spec: s.recipe.annotation(),
            })
        })
        .collect();
    App {
        credentials: Vec::new(),
        external: None,
        name: spec.name.clone(),
        repo,
        environments,
        secrets,
    }
}

/// Which Secret names land in which namespace: what the Flux repo's RBAC is rendered from. A
/// secret change that leaves this alone needs no Flux repo commit. Read from the specs (as
/// [`model_app`] places them), so no secret value is copied to find out.
pub fn placement<'a>(
    spec: &AppSpec,
    secrets: impl IntoIterator<Item = &'a SecretSpec>,
) -> BTreeMap<String, BTreeSet<String>> {
    let mut out: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in secrets {
        for ns in spec.namespaces() {
            if s.target_namespaces.iter().any(|t| t == ns) {
                out.entry(ns.to_owned())
                    .or_default()
                    .insert(s.target_name.clone());
            }
        }
    }
    out
}

/// What happened to one secret, by key names only; `None` when nothing did.
pub fn secret_change<'a>(
    app: &'a str,
    before: Option<&'a SecretSpec>,
    after: Option<&'a SecretSpec>,
) -> Option<OwnedChange> {
    let (kind, spec) = match (before, after) {
        (None, None) => return None,
        (None, Some(a)) => (SecretChangeKind::Created, a),
        (Some(b), None) => (SecretChangeKind::Deleted, b),
        (Some(b), Some(a)) if b.same_as(a) => return None,
        (Some(_), Some(a)) => (SecretChangeKind::Updated, a),
    };
    let empty = BTreeMap::new();
    let old = before.map(|b| &b.data).unwrap_or(&empty);
    let new = after.map(|a| &a.data).unwrap_or(&empty);
    let added = new
        .keys()
        .filter(|k| !old.contains_key(*k))
        .cloned()
        .collect();
    let removed = old
        .keys()
        .filter(|k| !new.contains_key(*k))
        .cloned()
        .collect();
    let changed = new
        .iter()
        .filter(|(k, v)| old.get(*k).is_some_and(|o| o.expose() != v.expose()))
        .map(|(k, _)| k.clone())
        .collect();
    let mut namespaces: BTreeSet<String> = spec.target_namespaces.iter().cloned().collect();
    if let (Some(b), Some(a)) = (before, after) {
        namespaces.extend(b.target_namespaces.iter().cloned());
        namespaces.extend(a.target_namespaces.iter().cloned());
    }
    Some(OwnedChange {
        app: app.to_owned(),
        secret: spec.name.clone(),
        kind,
        namespaces: namespaces.into_iter().collect(),
        added,
        changed,
        removed,
    })
}

/// [`SecretChange`] with owned parts, for events and messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OwnedChange {
    pub app: String,
    pub secret: String,
    pub kind: SecretChangeKind,
    pub namespaces: Vec<String>,
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl OwnedChange {
    /// Every key name the change touched.
    pub fn keys(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .added
            .iter()
            .chain(&self.changed)
            .chain(&self.removed)
            .cloned()
            .collect();
        k.sort();
        k
    }

    pub fn message(&self) -> CommitMessage {
        let ns: Vec<&str> = self.namespaces.iter().map(String::as_str).collect();
        let (a, c, r) = (strs(&self.added), strs(&self.changed), strs(&self.removed));
        CommitMessage::for_secret(&SecretChange {
            app: &self.app,
            secret: &self.secret,
            namespaces: &ns,
            kind: self.kind,
            added: &a,
            changed: &c,
            removed: &r,
        })
    }
}

fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// One commit message for a round's changes to one platform repo: the change's own message when
/// there is one, else a summary subject with each change's subject and key lines in the body.
pub fn batch_message(app: &str, changes: &[OwnedChange], extra: &[&str]) -> CommitMessage {
    match (changes, extra) {
        ([one], []) => one.message(),
        ([], [first, rest @ ..]) => rest
            .iter()
            .fold(CommitMessage::new(&format!("{app}: {first}")), |m, l| {
                m.line(l)
            }),
        _ => {
            let mut msg = CommitMessage::new(&format!(
                "{app}: {} secret change{}",
                changes.len(),
                if changes.len() == 1 { "" } else { "s" }
            ));
            for line in extra {
                msg = msg.line(line);
            }
            for c in changes {
                let m = c.message();
                msg = msg.line(&format!("- {}", m.subject()));
                for (label, keys) in [
                    ("added keys", &c.added),
                    ("changed keys", &c.changed),
                    ("removed keys", &c.removed),
                ] {
                    if !keys.is_empty() {
                        msg = msg.line(&format!("  {label}: {}", keys.join(", ")));
                    }
                }
            }
            msg
        }
    }
}

/// The secrets a platform repo holds, read back from its committed files with the app key: what a
/// restart starts from. Files that are not sealwright's (no valid seal, another app's label, a
/// shape that is not a Secret) are reported by path and left out; so are files whose namespace is
/// no longer one of the app's. Deployment credentials files come back apart: minted, not managed.
pub fn recover_secrets(
    app: &AppSpec,
    key: &AgeKey,
    files: &Tree,
) -> (
    Vec<SecretSpec>,
    Vec<super::RecoveredCredential>,
    Vec<(String, String)>,
) {
    let mut by_name: BTreeMap<String, SecretSpec> = BTreeMap::new();
    let mut credentials = Vec::new();
    let mut problems = Vec::new();
    for (path, bytes) in files {
        let Some((ns, _file)) = path
            .strip_prefix("secrets/")
            .and_then(|r| r.split_once('/'))
            .filter(|(_, f)| f.ends_with(".sops.yaml"))
        else {
            continue;
        };
        if !app.namespaces().any(|n| n == ns) {
            continue;
        }
        let doc = match seal::open_with_app_key(path, bytes, key) {
            Ok(d) => d,
            Err(e) => {
                problems.push((path.clone(), e));
                continue;
            }
        };
        // A deployment's credentials are minted, not managed: they are not a secret to recover.
        if is_credentials(&doc) {
            if let Some(c) = credential_of(ns, &doc) {
                credentials.push(c);
            }
            continue;
        }
        // The external secrets are rendered from the state repo's layers, not recovered.
        if label(&doc, "sealwright.dev/external-secrets").is_some() {
            continue;
        }
        match secret_of(app, ns, &doc) {
            Ok((name, target, type_, data, recipe)) => {
                let spec = by_name.entry(name.clone()).or_insert_with(|| SecretSpec {
                    name,
                    target_name: target,
                    target_namespaces: Vec::new(),
                    type_,
                    data,
                    recipe,
                });
                spec.target_namespaces.push(ns.to_owned());
            }
            Err(e) => problems.push((path.clone(), e)),
        }
    }
    for s in by_name.values_mut() {
        s.target_namespaces.sort();
    }
    (by_name.into_values().collect(), credentials, problems)
}

/// The deployment and token of a decrypted credentials file.
fn credential_of(ns: &str, doc: &Map) -> Option<super::RecoveredCredential> {
    let id = doc
        .get("metadata")?
        .as_map()?
        .get("labels")?
        .as_map()?
        .get("sealwright.dev/deployment")?
        .as_str()?;
    let b64 = doc.get("data")?.as_map()?.get("access_token")?.as_str()?;
    use base64::Engine;
    let token = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    Some(super::RecoveredCredential {
        deployment_id: id.to_owned(),
        namespace: ns.to_owned(),
        access_token: SecretValue::new(token),
    })
}

type Recovered = (
    String,
    String,
    String,
    BTreeMap<String, SecretValue>,
    crate::recipe::Recipe,
);

/// Whether a decrypted platform file is a deployment's credentials Secret.
pub fn is_credentials(doc: &Map) -> bool {
    label(doc, "sealwright.dev/deployment").is_some()
}

fn label<'a>(doc: &'a Map, name: &str) -> Option<&'a Value> {
    doc.get("metadata")
        .and_then(Value::as_map)
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_map)
        .and_then(|l| l.get(name))
}

fn secret_of(app: &AppSpec, ns: &str, doc: &Map) -> Result<Recovered, String> {
    let text = |path: &[&str]| -> Option<&str> {
        let mut v = doc.get(path[0])?;
        for p in &path[1..] {
            v = v.as_map()?.get(p)?;
        }
        v.as_str()
    };
    if text(&["kind"]) != Some("Secret") {
        return Err("not a Secret".into());
    }
    if text(&["metadata", "labels", "sealwright.dev/app"]) != Some(app.name.as_str()) {
        return Err(format!("not labelled as a secret of app {}", app.name));
    }
    if text(&["metadata", "namespace"]) != Some(ns) {
        return Err("its namespace does not match its folder".into());
    }
    let name = text(&["metadata", "labels", "sealwright.dev/secret"])
        .ok_or("no sealwright.dev/secret label")?
        .to_owned();
    let target = text(&["metadata", "name"]).ok_or("no name")?.to_owned();
    let type_ = text(&["type"]).unwrap_or("Opaque").to_owned();
    let mut data = BTreeMap::new();
    if let Some(Value::Map(m)) = doc.get("data") {
        for (k, v) in m.pairs() {
            let b64 = v
                .as_str()
                .ok_or_else(|| format!("data.{k} is not a string"))?;
            use base64::Engine;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|_| format!("data.{k} is not base64"))?;
            data.insert(k.to_owned(), SecretValue::new(bytes));
        }
    }
    if data.is_empty() {
        return Err("no data".into());
    }
    let recipe = match text(&["metadata", "annotations", crate::recipe::ANNOTATION]) {
        None => crate::recipe::Recipe::default(),
        Some(a) => crate::recipe::Recipe::from_annotation(a)
            .map_err(|e| format!("its {} annotation: {e}", crate::recipe::ANNOTATION))?,
    };
    Ok((name, target, type_, data, recipe))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn t(files: &[(&str, &str)]) -> Tree {
        files
            .iter()
            .map(|(p, b)| (p.to_string(), b.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn plan_writes_what_differs_and_deletes_what_is_no_longer_rendered() {
        let current = t(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let rendered = t(&[("a", "1"), ("b", "two"), ("d", "4")]);
        let c = plan(&current, &rendered).unwrap();
        let writes: Vec<&str> = c.writes().map(|(p, _)| p).collect();
        assert_eq!(writes, ["b", "d"]);
        assert_eq!(c.deletes().collect::<Vec<_>>(), ["c"]);
        assert!(plan(&rendered, &rendered).unwrap().is_empty());
        assert!(plan(&Tree::new(), &Tree::new()).unwrap().is_empty());
        assert_eq!(plan(&current, &Tree::new()).unwrap().len(), 3);
    }

    fn app() -> AppSpec {
        AppSpec::from_json(&json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "staging", "namespace": "shop-staging"}, {"name": "prod", "namespace": "shop-prod"}]}))
        .unwrap()
    }

    fn secret(name: &str, ns: &[&str], data: &[(&str, &str)]) -> SecretSpec {
        let data: serde_json::Map<String, serde_json::Value> = data
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        SecretSpec::from_json(name, &json!({"targetNamespaces": ns, "data": data}), &app()).unwrap()
    }

    fn repo() -> PlatformRepo {
        PlatformRepo {
            url: "https://git.example.invalid/p/shop-platform.git".into(),
            branch: "main".into(),
            known_hosts: None,
        }
    }

    #[test]
    fn the_model_follows_environment_order_and_drops_orphaned_secrets() {
        let a = app();
        let s1 = secret("db", &["shop-prod", "shop-staging"], &[("p", "x")]);
        let mut s2 = secret("gone", &["shop-prod"], &[("p", "x")]);
        s2.target_namespaces = vec!["old-ns".into()];
        let m = model_app(&a, [&s1, &s2], repo());
        assert_eq!(m.secrets.len(), 1);
        assert_eq!(m.secrets[0].environments, ["staging", "prod"]);
        assert_eq!(
            m.target_namespaces(&m.secrets[0]),
            ["shop-staging", "shop-prod"]
        );
        let p = placement(&a, [&s1, &s2]);
        assert_eq!(p["shop-prod"].iter().collect::<Vec<_>>(), ["db"]);
    }

    #[test]
    fn secret_changes_name_keys_never_values() {
        let before = secret("db", &["shop-prod"], &[("user", "u"), ("password", "p1")]);
        let after = secret(
            "db",
            &["shop-prod", "shop-staging"],
            &[("password", "p2"), ("host", "h")],
        );
        let c = secret_change("shop", Some(&before), Some(&after)).unwrap();
        assert_eq!(c.kind, SecretChangeKind::Updated);
        assert_eq!(c.added, ["host"]);
        assert_eq!(c.changed, ["password"]);
        assert_eq!(c.removed, ["user"]);
        assert_eq!(c.namespaces, ["shop-prod", "shop-staging"]);
        assert_eq!(c.keys(), ["host", "password", "user"]);
        let text = c.message().render();
        assert!(
            text.starts_with("shop: update secret db in shop-prod, shop-staging"),
            "{text}"
        );
        assert!(!text.contains("p1") && !text.contains("p2"), "{text}");
        assert!(secret_change("shop", Some(&before), Some(&before.clone())).is_none());
        let created = secret_change("shop", None, Some(&before)).unwrap();
        assert_eq!(created.kind, SecretChangeKind::Created);
        assert_eq!(created.added, ["password", "user"]);
        let deleted = secret_change("shop", Some(&before), None).unwrap();
        assert_eq!(deleted.removed, ["password", "user"]);
        let batch = batch_message("shop", &[c.clone(), created], &[]).render();
        assert!(batch.starts_with("shop: 2 secret changes\n"), "{batch}");
        assert!(batch.contains("- shop: update secret db"), "{batch}");
        assert!(batch.contains("changed keys: password"), "{batch}");
    }

    #[test]
    fn rendered_secrets_are_recovered_and_planted_files_are_not() {
        use crate::keys::chain::ChainRecipients;
        use crate::model::Cluster;
        use crate::render::{render_platform, Templates};
        let a = app();
        let key = AgeKey::generate();
        let cluster = Cluster {
            name: "c".into(),
            recipients: ChainRecipients {
                cluster: AgeKey::generate().recipient(),
                break_glass: None,
            },
            flux_namespace: "flux-system".into(),
            flux_source: "flux-system".into(),
            decryption_secret: "sops-age".into(),
        };
        let s1 = secret(
            "db",
            &["shop-prod", "shop-staging"],
            &[("password", "p"), ("user", "u")],
        );
        let mut s2 = secret("api", &["shop-prod"], &[("token", "t")]);
        s2.target_name = "api-token".into();
        let m = model_app(&a, [&s1, &s2], repo());
        let templates = Templates::load(None).unwrap();
        let now = sops::scalar::parse_rfc3339("2026-01-01T00:00:00Z").unwrap();
        let mut files = render_platform(&cluster, &m, &key, &Tree::new(), &templates, now, &|_| {
            false
        })
        .unwrap();
        // A file encrypted to the app's public key by someone else carries no valid seal.
        let other = AgeKey::generate();
        let planted = render_platform(&cluster, &m, &other, &Tree::new(), &templates, now, &|_| {
            false
        })
        .unwrap()
        .remove("secrets/shop-prod/db.sops.yaml")
        .unwrap();
        files.insert("secrets/shop-prod/planted.sops.yaml".into(), planted);
        let (secrets, _, problems) = recover_secrets(&a, &key, &files);
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert_eq!(problems[0].0, "secrets/shop-prod/planted.sops.yaml");
        assert_eq!(secrets.len(), 2);
        let db = secrets.iter().find(|s| s.name == "db").unwrap();
        assert!(db.same_as(&s1), "{db:?}");
        let api = secrets.iter().find(|s| s.name == "api").unwrap();
        assert!(api.same_as(&s2), "{api:?}");
        // Rendering again from what was recovered, keeping nothing, changes no byte.
        let again = render_platform(
            &cluster,
            &model_app(&a, &secrets, repo()),
            &key,
            &files,
            &templates,
            now,
            &|_| false,
        )
        .unwrap();
        // The planted file stays as it is (and listed): a round never deletes what the app key
        // cannot open. Every other file is the same byte for byte.
        let list = String::from_utf8(again["secrets/kustomization.yaml"].clone()).unwrap();
        assert!(list.contains("shop-prod/planted.sops.yaml"), "{list}");
        let without_list = |t: &Tree| {
            let mut t = t.clone();
            t.remove("secrets/kustomization.yaml");
            t
        };
        assert_eq!(without_list(&again), without_list(&files));
    }
}
