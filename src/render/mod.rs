//! Desired state + keys → the exact files each repository should hold.
//!
//! [`render`] is a pure function of its inputs: no I/O, no clock (the time comes in as an
//! argument). Given the same state and keys it returns byte-identical files except for SOPS
//! ciphertext; given the files the previous round produced as well, it keeps even those
//! identical (noise-free re-encryption, see [`seal`]). Which files exist:
//!
//! - Flux repo: `clusters/<cluster>/apps.yaml`, `apps/kustomization.yaml`, `.sops.yaml`, and per
//!   app `apps/<app>-platform/{kustomization,gitrepository,sync,rbac}.yaml`,
//!   `age-secret.sops.yaml` and (ssh:// repos) `deploy-key.sops.yaml`;
//! - each app's platform repo: `.sops.yaml`, `secrets/kustomization.yaml` and one
//!   `secrets/<namespace>/<name>.sops.yaml` per Secret and target namespace.
//!
//! Every file comes from a template (see [`templates`]); secret values never go through one.

pub mod checksums;
pub mod seal;
pub mod templates;

use std::collections::BTreeMap;

use base64::Engine;
use minijinja::Value as J;
use secrecy::ExposeSecret;
use zeroize::Zeroizing;

use crate::keys::chain::{age_secret_name, agekey_entry, deploy_key_secret_name};
use crate::keys::{AgeKey, DeployKey};
use crate::model::{App, Cluster, DesiredState};
use sops::scalar::DateTime;
use sops::{Map, MapItem, Value};

pub use templates::{TemplateError, Templates};

/// The files of one repository: path → bytes, in path order.
pub type Tree = BTreeMap<String, Vec<u8>>;

/// The files of the Flux repo and of every app's platform repo (keyed `<app>-platform`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Rendered {
    pub flux: Tree,
    pub platform: BTreeMap<String, Tree>,
}

/// The keys of one app.
pub struct AppKeys {
    pub age: AgeKey,
    /// Needed when the app's platform repo is reached over ssh://.
    pub deploy: Option<DeployKey>,
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{path}: {source}")]
    Sops {
        path: String,
        source: sops::SopsError,
    },
    #[error("app {app}: no {what} given to render with")]
    MissingKey { app: String, what: &'static str },
    #[error("{path}: a managed secret has the name reserved for the app's external secrets; give it another targetName")]
    Reserved { path: String },
    #[error("{path}: two Secrets of this app have this name in this namespace (a managed secret and a deployment's credentials, say); rename one")]
    Collision { path: String },
    #[error("{path}: the file in the repo does not open with the app key ({reason}); sealwright does not overwrite what it cannot read: restore the app key (sealwright keys recover) or move the file away by hand")]
    Unreadable { path: String, reason: String },
}

/// The platform repo folder name of an app: `<app>-platform`.
pub fn platform_repo_name(app: &str) -> String {
    format!("{app}-platform")
}

/// The file a Secret lives in, in its app's platform repo.
pub fn secret_path(namespace: &str, name: &str) -> String {
    format!("secrets/{namespace}/{name}.sops.yaml")
}

/// The files sealwright writes in each app's folder of the Flux repo.
pub const FLUX_APP_FILES: &[&str] = &[
    "kustomization.yaml",
    "gitrepository.yaml",
    "sync.yaml",
    "rbac.yaml",
    "age-secret.sops.yaml",
    "deploy-key.sops.yaml",
];

/// Whether sealwright owns `path` in the Flux repo of `cluster`: the repo's `.sops.yaml`,
/// `clusters/<cluster>/apps.yaml`, `apps/kustomization.yaml` and the known files of each
/// `apps/<app>-platform/` folder. Nothing else: not the `flux bootstrap` files, not other
/// clusters' `apps.yaml` in a fleet repo, not `apps/base/...` of Flux's reference layout.
pub fn owned_in_flux_repo(cluster: &str, path: &str) -> bool {
    if path == ".sops.yaml" || path == "apps/kustomization.yaml" {
        return true;
    }
    if path
        .strip_prefix("clusters/")
        .and_then(|r| r.strip_suffix("/apps.yaml"))
        == Some(cluster)
    {
        return true;
    }
    match path
        .strip_prefix("apps/")
        .map(|r| r.split('/').collect::<Vec<_>>())
    {
        Some(parts) => {
            parts.len() == 2
                && parts[0]
                    .strip_suffix("-platform")
                    .is_some_and(|app| crate::names::validate_label("app", app).is_ok())
                && FLUX_APP_FILES.contains(&parts[1])
        }
        None => false,
    }
}

/// The first line of every file sealwright writes under `environments/`, where the app team
/// writes files too: what carries it is sealwright's, what does not is never touched.
pub const MANAGED_MARKER: &[u8] = b"# Managed by sealwright";

/// `environments/README.md`: keeps the folder (and so the Flux Kustomization's path) in being.
pub const ENVIRONMENTS_README: &str = "# Managed by sealwright: the environments of this app\n\n\
Flux applies every YAML file in this folder, as a ServiceAccount that can act only in the app's\n\
namespaces. Files that start with the line above are sealwright's (one per environment with a\n\
`source` in the registration) and are rewritten from the registration; the others are yours and\n\
sealwright never edits them.\n";

/// Whether `path` is one sealwright may own in a platform repo: `.sops.yaml`,
/// `secrets/kustomization.yaml`, `secrets/<namespace>/<name>.sops.yaml`, the checksums, and
/// under `environments/` the README and `<env>.yaml` (those only when they carry
/// [`MANAGED_MARKER`]: see [`owned_platform_file`]). The rest is left alone.
pub fn owned_in_platform_repo(path: &str) -> bool {
    if path == ".sops.yaml" || path == "secrets/kustomization.yaml" {
        return true;
    }
    if let Some(f) = path.strip_prefix("environments/") {
        return f == "README.md"
            || f.strip_suffix(".yaml")
                .is_some_and(|e| crate::names::validate_label("environment", e).is_ok());
    }
    match path
        .strip_prefix("secrets/")
        .map(|r| r.split('/').collect::<Vec<_>>())
    {
        Some(parts) => {
            parts.len() == 2
                && crate::names::validate_label("namespace", parts[0]).is_ok()
                && (parts[1] == checksums::FILE
                    || parts[1].strip_suffix(".sops.yaml").is_some_and(|n| {
                        crate::names::validate_label("name", n).is_ok()
                            || crate::external::is_secret_name(n)
                    }))
        }
        None => false,
    }
}

/// Whether the file at `path`, holding `bytes`, is sealwright's in a platform repo.
pub fn owned_platform_file(path: &str, bytes: &[u8]) -> bool {
    owned_in_platform_repo(path)
        && (!path.starts_with("environments/") || bytes.starts_with(MANAGED_MARKER))
}

/// Renders everything. `previous` is what the repositories hold now (only the files this
/// function owns are looked at); pass `Rendered::default()` for a first render.
pub fn render(
    state: &DesiredState,
    keys: &BTreeMap<String, AppKeys>,
    previous: &Rendered,
    templates: &Templates,
    now: DateTime,
) -> Result<Rendered, RenderError> {
    let cluster = &state.cluster;
    let mut out = Rendered::default();
    let empty = Tree::new();
    for app in &state.apps {
        let _span = tracing::debug_span!("render", app = %app.name).entered();
        let k = keys.get(&app.name).ok_or_else(|| RenderError::MissingKey {
            app: app.name.clone(),
            what: "age key",
        })?;
        let repo = platform_repo_name(&app.name);
        let prev = previous.platform.get(&repo).unwrap_or(&empty);
        out.platform.insert(
            repo,
            render_platform(cluster, app, &k.age, prev, templates, now, &|_| false)?,
        );
        render_flux_app(
            cluster,
            app,
            k,
            &previous.flux,
            templates,
            now,
            &mut out.flux,
        )?;
    }
    let names: Vec<&str> = state.apps.iter().map(|a| a.name.as_str()).collect();
    out.flux
        .extend(render_flux_top(cluster, &names, templates)?);
    Ok(out)
}

/// The Flux repo's shared files: `clusters/<cluster>/apps.yaml`, `apps/kustomization.yaml` (one
/// entry per app in `apps`) and `.sops.yaml`.
pub fn render_flux_top(
    cluster: &Cluster,
    apps: &[&str],
    templates: &Templates,
) -> Result<Tree, RenderError> {
    let cluster_ctx = cluster_ctx(cluster);
    let mut out = Tree::new();
    // Sorted, so reordering apps in the configuration is not a change.
    let mut names = apps.to_vec();
    names.sort_unstable();
    names.dedup();
    let apps: Vec<J> = names
        .into_iter()
        .map(|n| J::from_serialize(serde_name(n)))
        .collect();
    let put = |out: &mut Tree, path: String, name: &str, ctx: J| -> Result<(), RenderError> {
        out.insert(path, templates.render(name, &ctx)?.into_bytes());
        Ok(())
    };
    put(
        &mut out,
        format!("clusters/{}/apps.yaml", cluster.name),
        "flux-apps.yaml.j2",
        ctx(&cluster_ctx, None, &[]),
    )?;
    put(
        &mut out,
        "apps/kustomization.yaml".into(),
        "flux-apps-kustomization.yaml.j2",
        ctx(&cluster_ctx, None, &[("apps", J::from(apps))]),
    )?;
    put(
        &mut out,
        ".sops.yaml".into(),
        "flux-sops.yaml.j2",
        ctx(
            &cluster_ctx,
            None,
            &[("recipients", J::from_serialize(cluster.recipients.list()))],
        ),
    )?;
    Ok(out)
}

fn serde_name(name: &str) -> BTreeMap<&'static str, String> {
    BTreeMap::from([("name", name.to_string())])
}

/// The recipients of an app's platform secrets: its own key, plus break-glass if configured.
pub fn app_recipients(cluster: &Cluster, app_key: &AgeKey) -> Vec<String> {
    let mut v = vec![app_key.recipient()];
    v.extend(cluster.recipients.break_glass.iter().cloned());
    v
}

/// The files of one app's platform repo. `keep(secret)` true means the secret did not change
/// since `prev` was rendered from it with these keys and templates: its files in `prev` are taken
/// as they are, without the decryption that proving so would cost (the reconciler knows it).
pub fn render_platform(
    cluster: &Cluster,
    app: &App,
    key: &AgeKey,
    prev: &Tree,
    templates: &Templates,
    now: DateTime,
    keep: &dyn Fn(Kept<'_>) -> bool,
) -> Result<Tree, RenderError> {
    let cluster_ctx = cluster_ctx(cluster);
    let app_ctx = app_ctx(app);
    let recipients = app_recipients(cluster, key);
    let mut tree = Tree::new();
    let sops_yaml = templates.render(
        "platform-sops.yaml.j2",
        &ctx(
            &cluster_ctx,
            Some(&app_ctx),
            &[("recipients", J::from_serialize(&recipients))],
        ),
    )?;
    tree.insert(".sops.yaml".into(), sops_yaml.into_bytes());
    let external_name = crate::external::secret_name(&app.name);
    if app.external.is_some() {
        // One file, two Secrets: writing either over the other would lose it.
        if let Some(s) = app.secrets.iter().find(|s| s.target_name == external_name) {
            if let Some(ns) = app.target_namespaces(s).first() {
                return Err(RenderError::Reserved {
                    path: secret_path(ns, &external_name),
                });
            }
        }
    }
    if let Some(crate::model::ExternalSecret { data: None, .. }) = &app.external {
        // The values cannot be read now: what the repo holds stays, untouched.
        for env in &app.environments {
            let path = secret_path(&env.namespace, &external_name);
            if let Some(bytes) = prev.get(&path) {
                tree.insert(path, bytes.clone());
            }
        }
    }
    // One encrypted Secret file: its template's own variables, then `data` with value tokens.
    let mut file = |path: String,
                    template: &str,
                    own: Vec<(&str, J)>,
                    entries: &[(String, crate::model::SecretValue)],
                    kept: bool|
     -> Result<(), RenderError> {
        // One file, two Secrets: either one would silently lose the other.
        if tree.contains_key(&path) {
            return Err(RenderError::Collision { path });
        }
        let bytes = match prev.get(&path).filter(|_| kept) {
            Some(bytes) => bytes.clone(),
            None => {
                let _span = tracing::debug_span!("secret", %path).entered();
                let values: Vec<Zeroizing<String>> =
                    entries.iter().map(|(_, v)| b64(v.expose())).collect();
                let data: Vec<J> = entries
                    .iter()
                    .enumerate()
                    .map(|(i, (k, _))| {
                        J::from_serialize(BTreeMap::from([("key", k.clone()), ("value", token(i))]))
                    })
                    .collect();
                let mut vars = own;
                vars.push(("data", J::from(data)));
                let text = templates.render(template, &ctx(&cluster_ctx, Some(&app_ctx), &vars))?;
                let branches = fill(template, &text, &values)?;
                seal::with_app_key(
                    &path,
                    branches,
                    &recipients,
                    key,
                    prev.get(&path).map(Vec::as_slice),
                    now,
                )?
            }
        };
        tree.insert(path, bytes);
        Ok(())
    };
    for secret in &app.secrets {
        let kept = keep(Kept::Secret(secret));
        for ns in app.target_namespaces(secret) {
            file(
                secret_path(ns, &secret.target_name),
                "secret.yaml.j2",
                vec![("secret", secret_ctx(secret)), ("namespace", J::from(ns))],
                &secret.data,
                kept,
            )?;
        }
    }
    for cred in &app.credentials {
        file(
            secret_path(&cred.namespace, &cred.secret_name()),
            "credentials-secret.yaml.j2",
            vec![("deployment", credential_ctx(cred))],
            &cred.data,
            keep(Kept::Credential(cred)),
        )?;
    }
    if let Some(
        ext @ crate::model::ExternalSecret {
            data: Some(data), ..
        },
    ) = &app.external
    {
        let kept = keep(Kept::External);
        for env in &app.environments {
            file(
                secret_path(&env.namespace, &external_name),
                "external-secrets.yaml.j2",
                vec![
                    ("external", external_ctx(&external_name, ext)),
                    ("namespace", J::from(env.namespace.as_str())),
                ],
                data,
                kept,
            )?;
        }
    }
    // Per namespace, a checksum of every Secret written there (pods restart on a change).
    let ck = checksums::ChecksumKey::of(key);
    let mut sums: BTreeMap<&str, BTreeMap<String, String>> = BTreeMap::new();
    for secret in &app.secrets {
        let sum = ck.of_secret(
            &secret.type_,
            secret.data.iter().map(|(k, v)| (k.as_str(), v)),
        );
        for ns in app.target_namespaces(secret) {
            sums.entry(ns)
                .or_default()
                .insert(checksums::variable(&secret.target_name), sum.clone());
        }
    }
    for cred in &app.credentials {
        sums.entry(&cred.namespace).or_default().insert(
            checksums::variable(&cred.secret_name()),
            ck.of_secret("Opaque", cred.data.iter().map(|(k, v)| (k.as_str(), v))),
        );
    }
    if let Some(ext) = &app.external {
        let var = checksums::variable(&external_name);
        for env in &app.environments {
            let sum = match &ext.data {
                Some(data) => {
                    Some(ck.of_secret("Opaque", data.iter().map(|(k, v)| (k.as_str(), v))))
                }
                // Unreadable now: its file stays, and so does its checksum.
                None => prev
                    .get(&format!("secrets/{}/{}", env.namespace, checksums::FILE))
                    .and_then(|b| checksums::previous(b, &var)),
            };
            if let Some(sum) = sum {
                sums.entry(&env.namespace)
                    .or_default()
                    .insert(var.clone(), sum);
            }
        }
    }
    for (ns, entries) in sums {
        let items: Vec<J> = entries
            .into_iter()
            .map(|(key, value)| J::from_serialize(BTreeMap::from([("key", key), ("value", value)])))
            .collect();
        let text = templates.render(
            "platform-checksums.yaml.j2",
            &ctx(
                &cluster_ctx,
                Some(&app_ctx),
                &[("namespace", J::from(ns)), ("checksums", J::from(items))],
            ),
        )?;
        tree.insert(
            format!("secrets/{ns}/{}", checksums::FILE),
            text.into_bytes(),
        );
    }
    // A Secret file this round would delete is deleted only if the app key opens it: one that
    // does not decrypt may be the only copy of a secret under a key sealwright lost, so it stays
    // byte for byte (and listed, as it was).
    for (path, bytes) in prev {
        if path.ends_with(".sops.yaml")
            && path.starts_with("secrets/")
            && !tree.contains_key(path)
            && seal::open_with_app_key(path, bytes, key).is_err()
        {
            tracing::warn!(%path, app = %app.name, "does not open with the app key; kept as it is");
            tree.insert(path.clone(), bytes.clone());
        }
    }
    let mut files: Vec<String> = tree
        .keys()
        .filter_map(|p| p.strip_prefix("secrets/").map(str::to_owned))
        .collect();
    files.sort();
    let kust = templates.render(
        "platform-secrets-kustomization.yaml.j2",
        &ctx(
            &cluster_ctx,
            Some(&app_ctx),
            &[("files", J::from_serialize(&files))],
        ),
    )?;
    tree.insert("secrets/kustomization.yaml".into(), kust.into_bytes());
    // The environments: a README that keeps the folder, and one file per sourced environment.
    tree.insert(
        "environments/README.md".into(),
        ENVIRONMENTS_README.as_bytes().to_vec(),
    );
    for env in &app.environments {
        let Some(source) = &env.source else { continue };
        let variables: Vec<J> = env
            .variables
            .iter()
            .map(|(k, v)| J::from_serialize(BTreeMap::from([("key", k), ("value", v)])))
            .collect();
        let env_ctx = J::from_serialize(BTreeMap::from([
            ("name", J::from(env.name.as_str())),
            ("namespace", J::from(env.namespace.as_str())),
            ("source", J::from_serialize(source)),
            ("variables", J::from(variables)),
        ]));
        let text = templates.render(
            "platform-environment.yaml.j2",
            &ctx(&cluster_ctx, Some(&app_ctx), &[("env", env_ctx)]),
        )?;
        tree.insert(format!("environments/{}.yaml", env.name), text.into_bytes());
    }
    Ok(tree)
}

/// The files of one app's folder in the Flux repo, added to `out`. `prev` is the Flux repo as it
/// is (only this app's folder is looked at).
#[allow(clippy::too_many_arguments)]
pub fn render_flux_app(
    cluster: &Cluster,
    app: &App,
    keys: &AppKeys,
    prev: &Tree,
    templates: &Templates,
    now: DateTime,
    out: &mut Tree,
) -> Result<(), RenderError> {
    let dir = format!("apps/{}", platform_repo_name(&app.name));
    let cluster_ctx = cluster_ctx(cluster);
    let app_ctx = app_ctx(app);
    let recipients = cluster.recipients.list();
    let age_secret = age_secret_name(&app.name);
    let deploy_secret = deploy_key_secret_name(&app.name);
    // The plain (unencrypted) files: template, file name, the template's own variables.
    let plain: [(&str, &str, (&str, J)); 3] = [
        (
            "flux-gitrepository.yaml.j2",
            "gitrepository.yaml",
            ("deploy_key_secret", J::from(deploy_secret.as_str())),
        ),
        (
            "flux-sync.yaml.j2",
            "sync.yaml",
            ("age_key_secret", J::from(age_secret.as_str())),
        ),
        (
            "flux-rbac.yaml.j2",
            "rbac.yaml",
            ("namespaces", J::from_serialize(rbac_namespaces(app))),
        ),
    ];
    let mut files = Vec::new();
    for (template, file, var) in plain {
        let text = templates.render(template, &ctx(&cluster_ctx, Some(&app_ctx), &[var]))?;
        out.insert(format!("{dir}/{file}"), text.into_bytes());
        files.push(file);
    }

    // The key chain: the app's private key, readable only with the cluster key.
    let path = format!("{dir}/age-secret.sops.yaml");
    let text = templates.render(
        "flux-age-secret.yaml.j2",
        &ctx(
            &cluster_ctx,
            Some(&app_ctx),
            &[
                ("age_key_secret", J::from(age_secret.as_str())),
                ("app_recipient", J::from(keys.age.recipient())),
                ("age_key", J::from(token(0))),
            ],
        ),
    )?;
    let entry = agekey_entry(&keys.age);
    let values = [b64(entry.expose_secret().as_bytes())];
    let branches = fill("flux-age-secret.yaml.j2", &text, &values)?;
    let bytes = seal::for_cluster(
        &path,
        branches,
        &recipients,
        prev.get(&path).map(Vec::as_slice),
        now,
    )?;
    out.insert(path, bytes);
    files.push("age-secret.sops.yaml");

    if app.repo.is_ssh() {
        let deploy = keys
            .deploy
            .as_ref()
            .ok_or_else(|| RenderError::MissingKey {
                app: app.name.clone(),
                what: "deploy key",
            })?;
        let path = format!("{dir}/deploy-key.sops.yaml");
        let text = templates.render(
            "flux-deploy-key.yaml.j2",
            &ctx(
                &cluster_ctx,
                Some(&app_ctx),
                &[
                    ("deploy_key_secret", J::from(deploy_secret.as_str())),
                    ("deploy_key_fingerprint", J::from(deploy.fingerprint())),
                    ("identity", J::from(token(0))),
                    ("identity_pub", J::from(token(1))),
                    ("known_hosts", J::from(token(2))),
                ],
            ),
        )?;
        let known_hosts = normalise_known_hosts(app.repo.known_hosts.as_deref().unwrap_or(""));
        let values = [
            b64(deploy.private_openssh().expose_secret().as_bytes()),
            b64(format!("{}\n", deploy.public_openssh()).as_bytes()),
            b64(known_hosts.as_bytes()),
        ];
        let branches = fill("flux-deploy-key.yaml.j2", &text, &values)?;
        let bytes = seal::for_cluster(
            &path,
            branches,
            &recipients,
            prev.get(&path).map(Vec::as_slice),
            now,
        )?;
        out.insert(path, bytes);
        files.push("deploy-key.sops.yaml");
    }

    files.sort_unstable();
    let text = templates.render(
        "flux-app-kustomization.yaml.j2",
        &ctx(
            &cluster_ctx,
            Some(&app_ctx),
            &[("files", J::from_serialize(&files))],
        ),
    )?;
    out.insert(format!("{dir}/kustomization.yaml"), text.into_bytes());
    Ok(())
}

/// One line per entry, surrounding blank space trimmed, ending in a newline.
fn normalise_known_hosts(text: &str) -> String {
    let mut s: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    s.push('\n');
    s
}

fn b64(bytes: &[u8]) -> Zeroizing<String> {
    Zeroizing::new(base64::engine::general_purpose::STANDARD.encode(bytes))
}

#[derive(serde::Serialize)]
struct RbacNamespace {
    name: String,
    secrets: Vec<String>,
}

/// Every environment namespace of the app, with the Secrets delivered there. The template gives
/// a namespace with none no reader Role: a Role with empty `resourceNames` would grant every
/// Secret of the namespace.
fn rbac_namespaces(app: &App) -> Vec<RbacNamespace> {
    app.environments
        .iter()
        .map(|env| {
            let mut secrets: Vec<String> = app
                .secrets
                .iter()
                .filter(|s| app.target_namespaces(s).contains(&env.namespace.as_str()))
                .map(|s| s.target_name.clone())
                .collect();
            secrets.sort();
            RbacNamespace {
                name: env.namespace.clone(),
                secrets,
            }
        })
        .collect()
}

/// The stand-in a template places where the `i`-th secret value goes. Secret values never go
/// through minijinja (whose strings cannot be wiped); [`fill`] puts them into the parsed tree.
fn token(i: usize) -> String {
    format!("{TOKEN_PREFIX}{i}{TOKEN_SUFFIX}")
}

const TOKEN_PREFIX: &str = "sealwright-value-";
const TOKEN_SUFFIX: &str = "-7a0c1e5d";

/// The `i` of `token(i)`, if `s` is exactly one.
fn token_index(s: &str) -> Option<usize> {
    let digits = s.strip_prefix(TOKEN_PREFIX)?.strip_suffix(TOKEN_SUFFIX)?;
    // Only the canonical form (no sign, no leading zero) is a token.
    let i: usize = digits.parse().ok()?;
    (token(i) == s).then_some(i)
}

/// How many secret values a template places (checked at start-up with stand-in values).
pub(crate) fn values_placed(template: &str) -> usize {
    match template {
        "secret.yaml.j2" | "flux-age-secret.yaml.j2" => 1,
        "credentials-secret.yaml.j2" => 4,
        "external-secrets.yaml.j2" => 2,
        "flux-deploy-key.yaml.j2" => 3,
        _ => 0,
    }
}

/// Parses a rendered template and replaces each token by its value. Every token must appear
/// exactly once, as a whole scalar, under the document's top-level `data` or `stringData` (the
/// only places the encryption rule covers): otherwise a custom template dropped, duplicated or
/// exposed a value.
pub(crate) fn fill(
    template: &str,
    text: &str,
    values: &[Zeroizing<String>],
) -> Result<Vec<Map>, TemplateError> {
    let bad = |reason: String| TemplateError::Bad {
        name: template.to_string(),
        reason,
    };
    let mut branches = sops::store::yaml::parse(text.as_bytes())
        .map_err(|e| bad(format!("output is not YAML: {e}")))?;
    // (times placed, times placed where it is not encrypted)
    let mut seen = vec![(0usize, 0usize); values.len()];
    fn walk(
        v: &mut Value,
        encrypted: bool,
        values: &[Zeroizing<String>],
        seen: &mut [(usize, usize)],
    ) {
        match v {
            Value::Str(s) => {
                // Read the index out of the token rather than compare against every token:
                // a secret's cost stays linear in its keys.
                if let Some(i) = token_index(s).filter(|&i| i < values.len()) {
                    seen[i].0 += 1;
                    if encrypted {
                        s.clone_from(&values[i]);
                    } else {
                        seen[i].1 += 1;
                    }
                }
            }
            Value::Map(m) => {
                for item in &mut m.items {
                    if let MapItem::Pair(_, v) = item {
                        walk(v, encrypted, values, seen);
                    }
                }
            }
            Value::Seq(items) => items
                .iter_mut()
                .for_each(|x| walk(x, encrypted, values, seen)),
            _ => {}
        }
    }
    for b in &mut branches {
        for item in &mut b.items {
            if let MapItem::Pair(k, v) = item {
                let encrypted = k == "data" || k == "stringData";
                walk(v, encrypted, values, &mut seen);
            }
        }
    }
    for (i, (placed, exposed)) in seen.iter().enumerate() {
        if *exposed > 0 {
            return Err(bad(format!(
                "secret value #{i} is placed outside data/stringData, where it would be committed unencrypted"
            )));
        }
        if *placed != 1 {
            return Err(bad(format!(
                "secret value #{i} must be placed exactly once as a whole YAML value (it was placed {placed} times)"
            )));
        }
    }
    Ok(branches)
}

// Contexts. Each template gets `cluster`, `app` (except the cluster-wide ones) and its own
// variables; the same builders serve the start-up check, so a template that uses a variable its
// real context lacks fails there.

fn cluster_ctx(c: &Cluster) -> J {
    J::from_serialize(BTreeMap::from([
        ("name", J::from(c.name.as_str())),
        ("flux_namespace", J::from(c.flux_namespace.as_str())),
        ("flux_source", J::from(c.flux_source.as_str())),
        ("decryption_secret", J::from(c.decryption_secret.as_str())),
        ("recipients", J::from_serialize(c.recipients.list())),
    ]))
}

fn app_ctx(a: &App) -> J {
    let envs: Vec<J> = a
        .environments
        .iter()
        .map(|e| {
            J::from_serialize(BTreeMap::from([
                ("name", e.name.as_str()),
                ("namespace", e.namespace.as_str()),
            ]))
        })
        .collect();
    J::from_serialize(BTreeMap::from([
        ("name", J::from(a.name.as_str())),
        (
            "repo",
            J::from_serialize(BTreeMap::from([
                ("url", J::from(a.repo.url.as_str())),
                ("branch", J::from(a.repo.branch.as_str())),
                ("is_ssh", J::from(a.repo.is_ssh())),
            ])),
        ),
        ("environments", J::from(envs)),
    ]))
}

/// What a platform render asks of its caller for each file: may the file the branch holds now be
/// reused as it is (without decrypting it)?
#[derive(Clone, Copy, Debug)]
pub enum Kept<'a> {
    Secret(&'a crate::model::ManagedSecret),
    Credential(&'a crate::model::Credential),
    /// The app's external-secrets Secret (all of its namespaces).
    External,
}

fn external_ctx(secret_name: &str, e: &crate::model::ExternalSecret) -> J {
    J::from_serialize(BTreeMap::from([
        ("secret_name", secret_name.to_owned()),
        ("tenant", e.tenant.clone()),
        ("origins", e.origins.clone()),
    ]))
}

fn credential_ctx(c: &crate::model::Credential) -> J {
    J::from_serialize(BTreeMap::from([
        ("id", c.deployment_id.clone()),
        ("name", c.deployment_name.clone()),
        ("secret_name", c.secret_name()),
        ("namespace", c.namespace.clone()),
        ("environment", c.environment.clone()),
        ("cluster_id", c.cluster_id.clone()),
    ]))
}

fn secret_ctx(s: &crate::model::ManagedSecret) -> J {
    J::from_serialize(BTreeMap::from([
        ("name", J::from(s.name.as_str())),
        ("target_name", J::from(s.target_name.as_str())),
        ("type", J::from(s.type_.as_str())),
        ("environments", J::from_serialize(&s.environments)),
        ("spec", J::from(s.spec.clone())),
    ]))
}

fn ctx(cluster: &J, app: Option<&J>, extra: &[(&str, J)]) -> J {
    let mut m: BTreeMap<String, J> = BTreeMap::new();
    m.insert("cluster".into(), cluster.clone());
    if let Some(a) = app {
        m.insert("app".into(), a.clone());
    }
    for (k, v) in extra {
        m.insert(k.to_string(), v.clone());
    }
    J::from_serialize(m)
}

/// One context per template, shaped exactly like the real ones, for the start-up check.
fn sample_contexts() -> Vec<(&'static str, J)> {
    use crate::keys::chain::ChainRecipients;
    use crate::model::{Environment, ManagedSecret, PlatformRepo, SecretValue};
    const R: &str = "age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p";
    let cluster = Cluster {
        name: "sample".into(),
        recipients: ChainRecipients {
            cluster: R.into(),
            break_glass: Some(R.into()),
        },
        flux_namespace: "flux-system".into(),
        flux_source: "flux-system".into(),
        decryption_secret: "sops-age".into(),
    };
    let secret = ManagedSecret {
        name: "db".into(),
        target_name: "db".into(),
        environments: vec!["prod".into()],
        type_: "Opaque".into(),
        data: vec![("password".into(), SecretValue::new(b"x".to_vec()))],
        spec: Some(r#"{"generate":{"password":{"kind":"alphanumeric","length":32}}}"#.into()),
    };
    let app = App {
        credentials: Vec::new(),
        external: None,
        name: "sample".into(),
        repo: PlatformRepo {
            url: "ssh://git@example.com/org/sample-platform.git".into(),
            branch: "main".into(),
            known_hosts: Some("example.com ssh-ed25519 AAAA".into()),
        },
        environments: vec![Environment {
            name: "prod".into(),
            namespace: "sample-prod".into(),
            variables: Default::default(),
            source: None,
        }],
        secrets: vec![secret.clone()],
    };
    let c = cluster_ctx(&cluster);
    let a = app_ctx(&app);
    let recipients = J::from_serialize([R, R]);
    let data = J::from(vec![J::from_serialize(BTreeMap::from([
        ("key", "password".to_string()),
        ("value", token(0)),
    ]))]);
    let files = J::from_serialize(["sample-prod/db.sops.yaml"]);
    vec![
        (
            "platform-sops.yaml.j2",
            ctx(&c, Some(&a), &[("recipients", recipients.clone())]),
        ),
        (
            "platform-secrets-kustomization.yaml.j2",
            ctx(&c, Some(&a), &[("files", files.clone())]),
        ),
        (
            "platform-environment.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[(
                    "env",
                    J::from_serialize(BTreeMap::from([
                        ("name", J::from("prod")),
                        ("namespace", J::from("sample-prod")),
                        (
                            "source",
                            J::from_serialize(crate::model::EnvSource {
                                url: "https://git.example/sample/app.git".into(),
                                branch: "main".into(),
                                path: "./deploy/prod".into(),
                            }),
                        ),
                        (
                            "variables",
                            J::from(vec![J::from_serialize(BTreeMap::from([
                                ("key", "LOG_LEVEL"),
                                ("value", "info"),
                            ]))]),
                        ),
                    ])),
                )],
            ),
        ),
        (
            "platform-checksums.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    ("namespace", J::from("sample-prod")),
                    (
                        "checksums",
                        J::from(vec![J::from_serialize(BTreeMap::from([
                            ("key", "SECRET_DB_CHECKSUM"),
                            ("value", "00112233445566778899aabbccddeeff"),
                        ]))]),
                    ),
                ],
            ),
        ),
        (
            "secret.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    ("secret", secret_ctx(&secret)),
                    ("namespace", J::from("sample-prod")),
                    ("data", data),
                ],
            ),
        ),
        (
            "credentials-secret.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    (
                        "deployment",
                        credential_ctx(&crate::model::Credential {
                            deployment_id: "0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f".into(),
                            deployment_name: "web".into(),
                            environment: "prod".into(),
                            cluster_id: "eu-1".into(),
                            namespace: "sample-prod".into(),
                            data: Vec::new(),
                        }),
                    ),
                    (
                        "data",
                        J::from(
                            ["access_token", "deployment_id", "api_url", "values.yaml"]
                                .iter()
                                .enumerate()
                                .map(|(i, k)| {
                                    J::from_serialize(BTreeMap::from([
                                        ("key", k.to_string()),
                                        ("value", token(i)),
                                    ]))
                                })
                                .collect::<Vec<_>>(),
                        ),
                    ),
                ],
            ),
        ),
        (
            "external-secrets.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    (
                        "external",
                        external_ctx(
                            "app-sample-external-secrets",
                            &crate::model::ExternalSecret {
                                tenant: "acme".into(),
                                origins: r#"{"A":"tenant/openai","B":"app/stripe"}"#.into(),
                                data: None,
                            },
                        ),
                    ),
                    ("namespace", J::from("sample-prod")),
                    (
                        "data",
                        J::from(
                            ["A", "B"]
                                .iter()
                                .enumerate()
                                .map(|(i, k)| {
                                    J::from_serialize(BTreeMap::from([
                                        ("key", k.to_string()),
                                        ("value", token(i)),
                                    ]))
                                })
                                .collect::<Vec<_>>(),
                        ),
                    ),
                ],
            ),
        ),
        ("flux-apps.yaml.j2", ctx(&c, None, &[])),
        (
            "flux-apps-kustomization.yaml.j2",
            ctx(
                &c,
                None,
                &[(
                    "apps",
                    J::from(vec![J::from_serialize(serde_name("sample"))]),
                )],
            ),
        ),
        (
            "flux-app-kustomization.yaml.j2",
            ctx(&c, Some(&a), &[("files", J::from_serialize(["sync.yaml"]))]),
        ),
        (
            "flux-gitrepository.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[("deploy_key_secret", J::from("sample-platform-deploy-key"))],
            ),
        ),
        (
            "flux-sync.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[("age_key_secret", J::from("sample-platform-age-key"))],
            ),
        ),
        (
            "flux-rbac.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[("namespaces", J::from_serialize(rbac_namespaces(&app)))],
            ),
        ),
        (
            "flux-age-secret.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    ("age_key_secret", J::from("sample-platform-age-key")),
                    ("app_recipient", J::from(R)),
                    ("age_key", J::from(token(0))),
                ],
            ),
        ),
        (
            "flux-deploy-key.yaml.j2",
            ctx(
                &c,
                Some(&a),
                &[
                    ("deploy_key_secret", J::from("sample-platform-deploy-key")),
                    ("deploy_key_fingerprint", J::from("SHA256:sample")),
                    ("identity", J::from(token(0))),
                    ("identity_pub", J::from(token(1))),
                    ("known_hosts", J::from(token(2))),
                ],
            ),
        ),
        (
            "flux-sops.yaml.j2",
            ctx(&c, None, &[("recipients", recipients)]),
        ),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::chain::ChainRecipients;
    use crate::model::{Environment, ManagedSecret, PlatformRepo, SecretValue};

    fn state(cluster: &AgeKey) -> DesiredState {
        DesiredState {
            cluster: Cluster {
                name: "prod".into(),
                recipients: ChainRecipients {
                    cluster: cluster.recipient(),
                    break_glass: None,
                },
                flux_namespace: "flux-system".into(),
                flux_source: "flux-system".into(),
                decryption_secret: "sops-age".into(),
            },
            apps: vec![
                App {
                    credentials: Vec::new(),
                    external: None,
                    name: "shop".into(),
                    repo: PlatformRepo {
                        url: "ssh://git@example.com/acme/shop-platform.git".into(),
                        branch: "main".into(),
                        known_hosts: Some("example.com ssh-ed25519 AAAAC3Nza".into()),
                    },
                    environments: vec![
                        Environment {
                            name: "staging".into(),
                            namespace: "shop-staging".into(),
                            variables: Default::default(),
                            source: None,
                        },
                        Environment {
                            name: "prod".into(),
                            namespace: "shop-prod".into(),
                            variables: Default::default(),
                            source: None,
                        },
                    ],
                    secrets: vec![ManagedSecret {
                        name: "db".into(),
                        target_name: "db".into(),
                        environments: vec!["prod".into()],
                        type_: "Opaque".into(),
                        data: vec![
                            ("user".into(), SecretValue::new(b"shop".to_vec())),
                            (
                                "password".into(),
                                SecretValue::new(b"hunter2-xyzzy".to_vec()),
                            ),
                        ],
                        spec: None,
                    }],
                },
                App {
                    credentials: Vec::new(),
                    external: None,
                    name: "blog".into(),
                    repo: PlatformRepo {
                        url: "https://git.example.com/acme/blog-platform.git".into(),
                        branch: "main".into(),
                        known_hosts: None,
                    },
                    environments: vec![Environment {
                        name: "prod".into(),
                        namespace: "blog".into(),
                        variables: Default::default(),
                        source: None,
                    }],
                    secrets: vec![],
                },
            ],
        }
    }

    fn keys() -> BTreeMap<String, AppKeys> {
        BTreeMap::from([
            (
                "shop".to_string(),
                AppKeys {
                    age: AgeKey::generate(),
                    deploy: Some(DeployKey::generate("t")),
                },
            ),
            (
                "blog".to_string(),
                AppKeys {
                    age: AgeKey::generate(),
                    deploy: None,
                },
            ),
        ])
    }

    fn text(tree: &Tree, path: &str) -> String {
        String::from_utf8(
            tree.get(path)
                .unwrap_or_else(|| panic!("no {path}"))
                .clone(),
        )
        .unwrap()
    }

    /// Blanks out what differs between two encryptions of the same plaintext.
    fn mask(s: &str) -> String {
        let re = regex::Regex::new(
            r"(?s)ENC\[[^\]]*\]|-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----|hmac-sha256:[0-9a-f]{64}",
        )
        .unwrap();
        re.replace_all(s, "<ciphertext>").into_owned()
    }

    #[test]
    fn the_file_set_and_its_shape() {
        let ck = AgeKey::generate();
        let st = state(&ck);
        let k = keys();
        let t = Templates::embedded().unwrap();
        let now = DateTime::from_unix(1_700_000_000);
        let out = render(&st, &k, &Rendered::default(), &t, now).unwrap();
        let flux: Vec<&str> = out.flux.keys().map(String::as_str).collect();
        assert_eq!(
            flux,
            [
                ".sops.yaml",
                "apps/blog-platform/age-secret.sops.yaml",
                "apps/blog-platform/gitrepository.yaml",
                "apps/blog-platform/kustomization.yaml",
                "apps/blog-platform/rbac.yaml",
                "apps/blog-platform/sync.yaml",
                "apps/kustomization.yaml",
                "apps/shop-platform/age-secret.sops.yaml",
                "apps/shop-platform/deploy-key.sops.yaml",
                "apps/shop-platform/gitrepository.yaml",
                "apps/shop-platform/kustomization.yaml",
                "apps/shop-platform/rbac.yaml",
                "apps/shop-platform/sync.yaml",
                "clusters/prod/apps.yaml",
            ]
        );
        let shop: Vec<&str> = out.platform["shop-platform"]
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            shop,
            [
                ".sops.yaml",
                "environments/README.md",
                "secrets/kustomization.yaml",
                "secrets/shop-prod/db.sops.yaml",
                "secrets/shop-prod/sealwright-checksums.yaml"
            ]
        );
        // The checksums: plain, one per Secret, unchanged when the Secret is.
        let sums = text(
            &out.platform["shop-platform"],
            "secrets/shop-prod/sealwright-checksums.yaml",
        );
        assert!(
            sums.contains("reconcile.fluxcd.io/watch: Enabled"),
            "{sums}"
        );
        assert!(sums.contains("\"SECRET_DB_CHECKSUM\": \""), "{sums}");
        assert!(!sums.contains("hunter2"), "{sums}");
        let again = render(&st, &k, &out, &t, now).unwrap();
        assert_eq!(
            again.platform["shop-platform"]["secrets/shop-prod/sealwright-checksums.yaml"],
            out.platform["shop-platform"]["secrets/shop-prod/sealwright-checksums.yaml"]
        );
        assert!(flux
            .iter()
            .chain(&shop)
            .all(|p| owned_in_flux_repo("prod", p) || owned_in_platform_repo(p)));
        // https: no deploy key, no secretRef; no secrets: no reader Role, an empty list.
        let blog_rbac = text(&out.flux, "apps/blog-platform/rbac.yaml");
        assert!(blog_rbac.contains("blog-platform-apply"), "{blog_rbac}");
        assert!(!blog_rbac.contains("blog-platform-secrets"), "{blog_rbac}");
        let shop_rbac = text(&out.flux, "apps/shop-platform/rbac.yaml");
        // shop-staging gets no secret: apply rights, but no reader Role there.
        assert_eq!(
            shop_rbac
                .matches("name: shop-platform-secrets\n  namespace: shop-prod")
                .count(),
            2
        );
        assert_eq!(
            shop_rbac
                .matches("name: shop-platform-secrets\n  namespace: shop-staging")
                .count(),
            0
        );
        assert_eq!(
            shop_rbac
                .matches("name: shop-platform-apply\n  namespace: shop-staging")
                .count(),
            2
        );
        let blog_git = text(&out.flux, "apps/blog-platform/gitrepository.yaml");
        assert!(!blog_git.contains("secretRef"), "{blog_git}");
        assert!(
            text(&out.platform["blog-platform"], "secrets/kustomization.yaml")
                .contains("resources: []")
        );
        assert!(text(&out.flux, "apps/kustomization.yaml")
            .contains("  - blog-platform\n  - shop-platform\n"));
        // Values are base64 in data, and never in clear anywhere.
        for tree in std::iter::once(&out.flux).chain(out.platform.values()) {
            for (p, bytes) in tree {
                let s = String::from_utf8_lossy(bytes);
                assert!(!s.contains("hunter2"), "{p}");
                assert!(!s.contains("AGE-SECRET-KEY"), "{p}");
                assert!(!s.contains("OPENSSH PRIVATE"), "{p}");
            }
        }
        let enc = Format::Yaml
            .parse_encrypted(&out.platform["shop-platform"]["secrets/shop-prod/db.sops.yaml"])
            .unwrap();
        let dec = sops::document::decrypt(&enc, &k["shop"].age.identities(), true).unwrap();
        let data = dec.branches[0].get("data").unwrap().as_map().unwrap();
        assert_eq!(
            data.get("password").unwrap().as_str(),
            Some("aHVudGVyMi14eXp6eQ==")
        );
    }

    use sops::document::Format;

    #[test]
    fn credentials_are_a_secret_of_their_own_template_reused_only_when_kept() {
        let ck = AgeKey::generate();
        let mut st = state(&ck);
        let app = &mut st.apps[0];
        app.credentials.push(crate::model::Credential {
            deployment_id: "0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f".into(),
            deployment_name: "web".into(),
            environment: "prod".into(),
            cluster_id: "eu-1".into(),
            namespace: "shop-prod".into(),
            data: vec![
                ("access_token".into(), SecretValue::new(b"tok-1".to_vec())),
                ("deployment_id".into(), SecretValue::new(b"0b7e".to_vec())),
            ],
        });
        let k = keys();
        let t = Templates::embedded().unwrap();
        let now = DateTime::from_unix(1_700_000_000);
        let app = &st.apps[0];
        let key = &k["shop"].age;
        let first =
            render_platform(&st.cluster, app, key, &Tree::new(), &t, now, &|_| false).unwrap();
        let path = "secrets/shop-prod/web-credentials.sops.yaml";
        let doc = seal::open_with_app_key(path, &first[path], key).unwrap();
        let label = doc
            .get("metadata")
            .and_then(|m| m.as_map())
            .and_then(|m| m.get("labels"))
            .and_then(|l| l.as_map())
            .and_then(|l| l.get("sealwright.dev/deployment"))
            .and_then(|v| v.as_str());
        assert_eq!(label, Some("0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f"));
        assert!(text(&first, "secrets/kustomization.yaml")
            .contains("shop-prod/web-credentials.sops.yaml"));
        assert!(!text(&first, path).contains("tok-1"));
        // A new token: re-rendered unless the caller says the file may be kept as it is.
        let mut next = app.clone();
        next.credentials[0].data[0].1 = SecretValue::new(b"tok-2".to_vec());
        let kept = render_platform(&st.cluster, &next, key, &first, &t, now, &|k| {
            matches!(k, Kept::Credential(_))
        })
        .unwrap();
        assert_eq!(kept[path], first[path]);
        let fresh = render_platform(&st.cluster, &next, key, &first, &t, now, &|_| false).unwrap();
        let doc = seal::open_with_app_key(path, &fresh[path], key).unwrap();
        let token = doc
            .get("data")
            .and_then(|d| d.as_map())
            .and_then(|d| d.get("access_token"))
            .and_then(|v| v.as_str())
            .map(str::to_owned);
        assert_eq!(token.as_deref(), Some(b64(b"tok-2").as_str()));
    }

    #[test]
    fn external_secrets_go_to_every_namespace_kept_as_is_when_unreadable_and_never_over_a_managed_secret(
    ) {
        let ck = AgeKey::generate();
        let mut st = state(&ck);
        st.apps[0].external = Some(crate::model::ExternalSecret {
            tenant: "acme".into(),
            origins: r#"{"OPENAI_API_KEY":"tenant/openai"}"#.into(),
            data: Some(vec![(
                "OPENAI_API_KEY".into(),
                SecretValue::new(b"sk-render-1".to_vec()),
            )]),
        });
        let k = keys();
        let t = Templates::embedded().unwrap();
        let now = DateTime::from_unix(1_700_000_000);
        let key = &k["shop"].age;
        let app = &st.apps[0];
        let first =
            render_platform(&st.cluster, app, key, &Tree::new(), &t, now, &|_| false).unwrap();
        for ns in ["shop-staging", "shop-prod"] {
            let path = format!("secrets/{ns}/app-shop-external-secrets.sops.yaml");
            assert!(owned_in_platform_repo(&path));
            assert!(!text(&first, &path).contains("sk-render-1"));
            assert!(text(&first, &path)
                .contains(r#"sealwright.dev/origins: '{"OPENAI_API_KEY":"tenant/openai"}'"#));
            let doc = seal::open_with_app_key(&path, &first[&path], key).unwrap();
            let v = doc
                .get("data")
                .and_then(|d| d.as_map())
                .and_then(|d| d.get("OPENAI_API_KEY"));
            assert_eq!(
                v.and_then(|v| v.as_str()),
                Some(b64(b"sk-render-1").as_str())
            );
        }
        // Unreadable now: the files stay byte for byte; with none, they go.
        let mut unreadable = app.clone();
        if let Some(e) = unreadable.external.as_mut() {
            e.data = None;
        }
        let kept =
            render_platform(&st.cluster, &unreadable, key, &first, &t, now, &|_| false).unwrap();
        let path = "secrets/shop-prod/app-shop-external-secrets.sops.yaml";
        assert_eq!(kept[path], first[path]);
        let mut none = app.clone();
        none.external = None;
        let gone = render_platform(&st.cluster, &none, key, &first, &t, now, &|_| false).unwrap();
        assert!(!gone.contains_key(path));
        // A managed secret with the reserved name is an error, not a silent overwrite.
        let mut clash = app.clone();
        clash.secrets[0].target_name = "app-shop-external-secrets".into();
        let e = render_platform(&st.cluster, &clash, key, &Tree::new(), &t, now, &|_| false)
            .unwrap_err();
        assert!(matches!(e, RenderError::Reserved { .. }), "{e}");
    }

    #[test]
    fn deterministic_and_noise_free() {
        let ck = AgeKey::generate();
        let st = state(&ck);
        let k = keys();
        let t = Templates::embedded().unwrap();
        let now = DateTime::from_unix(1_700_000_000);
        let a = render(&st, &k, &Rendered::default(), &t, now).unwrap();
        let b = render(&st, &k, &Rendered::default(), &t, now).unwrap();
        let trees = |r: &Rendered| {
            let mut v: Vec<(String, String)> = r
                .flux
                .iter()
                .map(|(p, b)| (format!("flux/{p}"), mask(&String::from_utf8_lossy(b))))
                .collect();
            for (repo, tree) in &r.platform {
                v.extend(
                    tree.iter()
                        .map(|(p, b)| (format!("{repo}/{p}"), mask(&String::from_utf8_lossy(b)))),
                );
            }
            v
        };
        assert_eq!(
            trees(&a),
            trees(&b),
            "same input, same files but for ciphertext"
        );
        let later = DateTime::from_unix(1_800_000_000);
        let c = render(&st, &k, &a, &t, later).unwrap();
        assert_eq!(a, c, "with the previous files, byte-identical");
    }

    #[test]
    fn a_template_that_drops_duplicates_or_exposes_a_value_is_an_error() {
        let x = || vec![Zeroizing::new("x".to_string())];
        let e = fill("secret.yaml.j2", "data: {}\n", &x()).unwrap_err();
        assert!(
            e.to_string().starts_with("template secret.yaml.j2: "),
            "{e}"
        );
        let twice = format!("data:\n  a: {}\n  b: {}\n", token(0), token(0));
        assert!(fill("t", &twice, &x()).is_err());
        let exposed = format!("metadata:\n  annotations:\n    a: {}\n", token(0));
        let e = fill("t", &exposed, &x()).unwrap_err().to_string();
        assert!(e.contains("outside data/stringData"), "{e}");
        let ok = fill("t", &format!("stringData:\n  a: {}\n", token(0)), &x()).unwrap();
        let sd = ok[0].get("stringData").unwrap().as_map().unwrap();
        assert_eq!(sd.get("a").unwrap().as_str(), Some("x"));
    }

    #[test]
    fn ownership() {
        assert!(owned_in_flux_repo("prod", "clusters/prod/apps.yaml"));
        assert!(!owned_in_flux_repo("prod", "clusters/other/apps.yaml"));
        assert!(!owned_in_flux_repo("prod", "apps/base/podinfo.yaml"));
        assert!(!owned_in_flux_repo("prod", "apps/README.md"));
        assert!(!owned_in_flux_repo("prod", "apps/x-platform/extra.yaml"));
        assert!(!owned_in_platform_repo("secrets/README.md"));
        assert!(!owned_in_platform_repo("secrets/ns/deep/a.sops.yaml"));
        assert!(!owned_in_flux_repo(
            "prod",
            "clusters/prod/flux-system/gotk-sync.yaml"
        ));
        assert!(!owned_in_flux_repo("prod", "clusters/prod/other.yaml"));
        assert!(owned_in_flux_repo("prod", "apps/x-platform/sync.yaml"));
        assert!(owned_in_platform_repo("secrets/ns/a.sops.yaml"));
        assert!(!owned_in_platform_repo("staging.yaml"));
    }

    #[test]
    fn every_template_has_a_sample_context() {
        let names: Vec<&str> = sample_contexts().iter().map(|(n, _)| *n).collect();
        for (n, _) in templates::DEFAULTS {
            assert!(names.contains(n), "{n}");
        }
    }
}
