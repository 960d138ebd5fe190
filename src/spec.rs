//! What users ask for, checked at the edge: app registrations, managed secrets and patches to
//! them, parsed from JSON (API bodies, state-repo records, configuration-directory files) with
//! errors that name the field (`environments[1].namespace`) and never a secret value.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value as Json;

pub use crate::fields::Invalid;
pub(crate) use crate::fields::{invalid, kind, Fields};
use crate::model::SecretValue;
use crate::names::{validate_data_key, validate_label};
use crate::recipe::{Policy, Recipe, RecipePatch};

/// Kubernetes refuses a Secret over 1 MiB; say so at the edge rather than at apply time.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;

/// The longest app name: `<app>-platform-deploy-key` must still be a 63-character label.
pub const MAX_APP_NAME: usize = 63 - "-platform-deploy-key".len();

/// How an app's secret changes reach its platform repo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// Pushed straight to the branch Flux follows.
    #[default]
    Commit,
    /// Pushed to a branch with a pull request into the branch Flux follows; live when merged.
    PullRequest,
}

impl Delivery {
    pub fn as_str(self) -> &'static str {
        match self {
            Delivery::Commit => "commit",
            Delivery::PullRequest => "pull-request",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EnvSpec {
    pub name: String,
    pub namespace: String,
    /// Plain configuration for the environment's Kustomization (`postBuild.substitute`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The workload manifests sealwright applies for it; `None`: the app team's files.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<crate::model::EnvSource>,
}

/// Variables sealwright sets itself in every environment Kustomization.
pub const RESERVED_VARIABLES: &[&str] = &["APP", "ENVIRONMENT", "NAMESPACE"];

/// `variables: {NAME: value}`: names as Flux's substitution takes them, values plain strings.
fn env_variables(path: &str, v: Option<&Json>) -> Result<BTreeMap<String, String>, Invalid> {
    let field = format!("{path}.variables");
    let Some(v) = v else {
        return Ok(BTreeMap::new());
    };
    let Json::Object(m) = v else {
        return Err(invalid(
            field,
            format!("must be an object of name to value, not {}", kind(v)),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in m {
        let at = format!("{field}.{k}");
        let ok = k.len() <= 253
            && k.chars()
                .next()
                .is_some_and(|c| c == '_' || c.is_ascii_alphabetic())
            && k.chars().all(|c| c == '_' || c.is_ascii_alphanumeric());
        if !ok {
            return Err(invalid(
                at,
                "is not a variable name (letters, digits and _, not starting with a digit)",
            ));
        }
        if RESERVED_VARIABLES.contains(&k.as_str()) || k.starts_with("SECRET_") {
            return Err(invalid(
                at,
                "is set by sealwright (APP, ENVIRONMENT, NAMESPACE, SECRET_*)",
            ));
        }
        let Json::String(s) = v else {
            return Err(invalid(at, format!("must be a string, not {}", kind(v))));
        };
        out.insert(k.clone(), s.clone());
    }
    Ok(out)
}

/// `source: {url, branch?, path?}`: an `https://` or `ssh://` repository, `main` and `./` by
/// default, the path inside it relative and without `..`.
fn env_source(path: &str, v: Option<&Json>) -> Result<Option<crate::model::EnvSource>, Invalid> {
    let Some(v) = v else {
        return Ok(None);
    };
    let field = format!("{path}.source");
    let mut f = Fields::of(&field, v)?;
    let url = f.str("url")?;
    if !(url.starts_with("https://") || url.starts_with("ssh://"))
        || url.contains(char::is_whitespace)
    {
        return Err(invalid(
            format!("{field}.url"),
            "must be an https:// or ssh:// URL",
        ));
    }
    let branch = f.opt_str("branch")?.unwrap_or_else(|| "main".into());
    crate::names::validate_branch(&format!("{field}.branch"), &branch)?;
    let p = f.opt_str("path")?.unwrap_or_else(|| "./".into());
    let rel = p.strip_prefix("./").unwrap_or(&p);
    if p.starts_with('/') || rel.split('/').any(|s| s == "..") || p.contains(char::is_whitespace) {
        return Err(invalid(
            format!("{field}.path"),
            "must be a path inside the repository (no leading /, no ..)",
        ));
    }
    f.finish()?;
    Ok(Some(crate::model::EnvSource {
        url,
        branch,
        path: format!("./{}", rel.trim_end_matches('/')),
    }))
}

/// A platform registration: `{name, tenant, environments: [{name, namespace}], delivery?}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct AppSpec {
    pub name: String,
    pub tenant: String,
    pub environments: Vec<EnvSpec>,
    pub delivery: Delivery,
    /// The platform repository, `owner/name` on the host; `None`: `<host owner>/<app>-platform`.
    pub repo: Option<String>,
    /// What a round does with drift in the platform repo.
    pub drift_policy: DriftPolicy,
}

/// What happens to files of sealwright's that someone else changed in the platform repo.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicy {
    /// sealwright's records win: the files are written back.
    #[default]
    Restore,
    /// The repo wins: the secrets are read back from it (a deletion deletes the secret).
    Adopt,
    /// Nothing is written until an admin resolves it.
    Report,
}

impl DriftPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            DriftPolicy::Restore => "restore",
            DriftPolicy::Adopt => "adopt",
            DriftPolicy::Report => "report",
        }
    }

    pub fn parse(field: &str, s: &str) -> Result<DriftPolicy, Invalid> {
        match s {
            "restore" => Ok(DriftPolicy::Restore),
            "adopt" => Ok(DriftPolicy::Adopt),
            "report" => Ok(DriftPolicy::Report),
            other => Err(invalid(
                field,
                format!("{other:?} is not a drift policy (restore, adopt or report)"),
            )),
        }
    }
}

impl AppSpec {
    pub fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.environments.iter().map(|e| e.namespace.as_str())
    }

    /// The JSON form (the API's and the state repo's).
    pub fn to_json(&self) -> Json {
        let mut j = serde_json::json!({
            "name": self.name,
            "tenant": self.tenant,
            "environments": self.environments,
            "delivery": self.delivery.as_str(),
        });
        if let Some(r) = &self.repo {
            j["repo"] = Json::from(r.as_str());
        }
        if self.drift_policy != DriftPolicy::Restore {
            j["driftPolicy"] = Json::from(self.drift_policy.as_str());
        }
        j
    }

    /// The platform repository's `owner/name`: `repo`, else `<owner>/<app>-platform`.
    pub fn platform_repo(&self, owner: &str) -> String {
        self.repo
            .clone()
            .unwrap_or_else(|| format!("{owner}/{}-platform", self.name))
    }

    /// Parses and checks a registration.
    pub fn from_json(v: &Json) -> Result<AppSpec, Invalid> {
        let mut f = Fields::of("", v)?;
        let name = f.str("name")?;
        validate_app_name("name", &name)?;
        let tenant = f.str("tenant")?;
        validate_label("tenant", &tenant)?;
        let envs = f
            .get("environments")
            .ok_or_else(|| invalid("environments", "is required"))?;
        let Json::Array(items) = envs else {
            return Err(invalid(
                "environments",
                format!("must be a list, not {}", kind(envs)),
            ));
        };
        if items.is_empty() {
            return Err(invalid("environments", "needs at least one environment"));
        }
        let mut environments = Vec::new();
        let (mut names, mut namespaces) = (BTreeSet::new(), BTreeSet::new());
        for (i, e) in items.iter().enumerate() {
            let path = format!("environments[{i}]");
            let mut g = Fields::of(&path, e)?;
            let env = EnvSpec {
                name: g.str("name")?,
                namespace: g.str("namespace")?,
                variables: env_variables(&path, g.get("variables"))?,
                source: env_source(&path, g.get("source"))?,
            };
            g.finish()?;
            validate_label(&format!("{path}.name"), &env.name)?;
            validate_label(&format!("{path}.namespace"), &env.namespace)?;
            if !names.insert(env.name.clone()) {
                return Err(invalid(
                    format!("{path}.name"),
                    format!("{:?} is used by an earlier environment", env.name),
                ));
            }
            if !namespaces.insert(env.namespace.clone()) {
                return Err(invalid(
                    format!("{path}.namespace"),
                    format!("{:?} is used by an earlier environment", env.namespace),
                ));
            }
            environments.push(env);
        }
        let delivery = match f.opt_str("delivery")?.as_deref() {
            None | Some("commit") => Delivery::Commit,
            Some("pull-request") => Delivery::PullRequest,
            Some(other) => {
                return Err(invalid(
                    "delivery",
                    format!("{other:?} is not a delivery mode (commit or pull-request)"),
                ))
            }
        };
        let repo = f.opt_str("repo")?;
        if let Some(r) = &repo {
            crate::host::RepoRef::parse(r).map_err(|e| invalid("repo", e.to_string()))?;
        }
        let drift_policy = match f.opt_str("driftPolicy")? {
            None => DriftPolicy::Restore,
            Some(p) => DriftPolicy::parse("driftPolicy", &p)?,
        };
        f.finish()?;
        Ok(AppSpec {
            name,
            tenant,
            environments,
            delivery,
            repo,
            drift_policy,
        })
    }
}

/// An app name: a DNS label short enough for the names derived from it.
pub fn validate_app_name(field: &str, name: &str) -> Result<(), Invalid> {
    validate_label(field, name)?;
    if name.len() > MAX_APP_NAME {
        return Err(invalid(
            field,
            format!("{name:?} is too long: at most {MAX_APP_NAME} characters, so that <app>-platform-deploy-key fits in 63"),
        ));
    }
    Ok(())
}

/// One managed secret of an app, as stored: where it goes and its data.
#[derive(Clone, Debug)]
pub struct SecretSpec {
    pub name: String,
    /// The Secret's name in the cluster (defaults to `name`).
    pub target_name: String,
    /// Sorted, unique, each one a namespace of the app.
    pub target_namespaces: Vec<String>,
    pub type_: String,
    /// Every value: set by hand, generated and derived alike.
    pub data: BTreeMap<String, SecretValue>,
    /// How the generated and derived values are made, and the rules values pass.
    pub recipe: Recipe,
}

impl SecretSpec {
    /// Whether the two hold the same plaintext and go to the same places.
    pub fn same_as(&self, other: &SecretSpec) -> bool {
        self.target_name == other.target_name
            && self.target_namespaces == other.target_namespaces
            && self.type_ == other.type_
            && self.recipe == other.recipe
            && self.data.len() == other.data.len()
            && self
                .data
                .iter()
                .zip(&other.data)
                .all(|((k1, v1), (k2, v2))| k1 == k2 && v1.expose() == v2.expose())
    }

    /// [`SecretSpec::from_request`] with no server policy (no preset, no forbidden key).
    pub fn from_json(name: &str, v: &Json, app: &AppSpec) -> Result<SecretSpec, Invalid> {
        SecretSpec::from_request(name, v, app, &Policy::default())
    }

    /// Parses the body of `PUT /v1/apps/{app}/secrets/{name}`: `{targetNamespaces,
    /// targetName?, type?, data?: {key: value}, preset?, generate?, derive?, validate?}`,
    /// checked against the app. A preset's type, values and rules come first; the body's win.
    /// Values the rules make are not here yet: the reconciler completes the secret.
    pub fn from_request(
        name: &str,
        v: &Json,
        app: &AppSpec,
        policy: &Policy,
    ) -> Result<SecretSpec, Invalid> {
        validate_label("name", name)?;
        let mut f = Fields::of("", v)?;
        let ns_v = f
            .get("targetNamespaces")
            .ok_or_else(|| invalid("targetNamespaces", "is required"))?;
        let Json::Array(items) = ns_v else {
            return Err(invalid(
                "targetNamespaces",
                format!("must be a list, not {}", kind(ns_v)),
            ));
        };
        let mut namespaces = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let Json::String(ns) = item else {
                return Err(invalid(
                    format!("targetNamespaces[{i}]"),
                    format!("must be a string, not {}", kind(item)),
                ));
            };
            namespaces.push(ns.clone());
        }
        let target_name = f.opt_str("targetName")?;
        let mut type_ = f.opt_str("type")?;
        let preset = f.opt_str("preset")?;
        let mut data = match f.get("data") {
            None => BTreeMap::new(),
            Some(data_v) => data_map(data_v, false)?
                .into_iter()
                .map(|(k, v)| {
                    v.map(|v| (k, v))
                        .ok_or_else(|| invalid("data", "is required"))
                })
                .collect::<Result<BTreeMap<_, _>, _>>()?,
        };
        let mut recipe = Recipe::from_fields(&mut f)?;
        f.finish()?;
        if let Some(p) = preset {
            let preset = policy.preset(&p)?;
            type_ = type_.or_else(|| preset.type_.clone());
            for (k, v) in &preset.data {
                data.entry(k.clone())
                    .or_insert_with(|| SecretValue::new(v.as_bytes().to_vec()));
            }
            recipe = preset.recipe.clone().overlay(recipe);
            recipe.preset = Some(p);
            recipe.check()?;
        }
        for k in data.keys() {
            if recipe.derive.contains_key(k) {
                return Err(derived_set(k));
            }
        }
        SecretSpec::from_parts(name, target_name, &namespaces, type_, data, recipe, app)
    }

    /// A secret from its parts (a managed Secret's annotations and data, or an API body),
    /// checked by the same rules; errors name the API's fields (`targetNamespaces[0]`).
    pub fn from_parts(
        name: &str,
        target_name: Option<String>,
        target_namespaces: &[String],
        type_: Option<String>,
        data: BTreeMap<String, SecretValue>,
        recipe: Recipe,
        app: &AppSpec,
    ) -> Result<SecretSpec, Invalid> {
        validate_label("name", name)?;
        if target_namespaces.is_empty() {
            return Err(invalid("targetNamespaces", "needs at least one namespace"));
        }
        let mut namespaces = BTreeSet::new();
        for (i, ns) in target_namespaces.iter().enumerate() {
            let field = format!("targetNamespaces[{i}]");
            validate_label(&field, ns)?;
            if !app.namespaces().any(|n| n == ns) {
                return Err(invalid(
                    field,
                    format!(
                        "{ns:?} is not a namespace of app {:?} (its namespaces: {})",
                        app.name,
                        app.namespaces().collect::<Vec<_>>().join(", ")
                    ),
                ));
            }
            if !namespaces.insert(ns.clone()) {
                return Err(invalid(field, format!("{ns:?} is listed twice")));
            }
        }
        let target_name = target_name.unwrap_or_else(|| name.to_owned());
        validate_label("targetName", &target_name)?;
        let type_ = type_.unwrap_or_else(|| "Opaque".to_owned());
        validate_type(&type_)?;
        for k in data.keys() {
            validate_data_key("data", k)?;
        }
        let spec = SecretSpec {
            name: name.to_owned(),
            target_name,
            target_namespaces: namespaces.into_iter().collect(),
            type_,
            data,
            recipe,
        };
        spec.check_data()?;
        Ok(spec)
    }

    /// Applies `PATCH` data (`null` removes a key) and rules, and checks the result.
    pub fn patched(&self, patch: &SecretPatch) -> Result<SecretSpec, Invalid> {
        let mut next = self.clone();
        next.recipe = self.recipe.patched(&patch.recipe)?;
        let generated = next.recipe.generated_keys();
        for (k, v) in &patch.data {
            if next.recipe.derive.contains_key(k) && v.is_some() {
                return Err(derived_set(k));
            }
            if let (None, Some(rule)) = (v, generated.get(k)) {
                return Err(invalid(
                    format!("data.{k}"),
                    format!("is generated (generate.{rule}): rotate it, or drop its rule with \"generate\": {{\"{rule}\": null}}"),
                ));
            }
        }
        // A dropped derive rule drops its value: nothing else would keep it in line.
        for (k, t) in &patch.recipe.derive {
            if t.is_none() && self.recipe.derive.contains_key(k) {
                next.data.remove(k);
            }
        }
        for (k, v) in &patch.data {
            match v {
                Some(v) => {
                    next.data.insert(k.clone(), v.clone());
                }
                None => {
                    next.data.remove(k);
                }
            }
        }
        if next.data.is_empty() && !next.recipe.fills_keys() {
            return Err(invalid(
                "data",
                "the patch would remove every key; delete the secret instead",
            ));
        }
        next.check_data()?;
        Ok(next)
    }

    fn check_data(&self) -> Result<(), Invalid> {
        if self.data.is_empty() && !self.recipe.fills_keys() {
            return Err(invalid(
                "data",
                "needs at least one key (set, generated or derived)",
            ));
        }
        let generated = self.recipe.generated_keys();
        let required: &[&str] = match self.type_.as_str() {
            "kubernetes.io/tls" => &["tls.crt", "tls.key"],
            "kubernetes.io/dockerconfigjson" => &[".dockerconfigjson"],
            "kubernetes.io/dockercfg" => &[".dockercfg"],
            "kubernetes.io/ssh-auth" => &["ssh-privatekey"],
            "kubernetes.io/basic-auth" => &[],
            _ => &[],
        };
        for key in required {
            if !self.data.contains_key(*key)
                && !generated.contains_key(*key)
                && !self.recipe.derive.contains_key(*key)
            {
                return Err(invalid(
                    "data",
                    format!("a Secret of type {} needs the key {key:?}", self.type_),
                ));
            }
        }
        let size: usize = self
            .data
            .iter()
            .map(|(k, v)| k.len() + v.expose().len())
            .sum();
        if size > MAX_SECRET_BYTES {
            return Err(invalid(
                "data",
                format!("holds {size} bytes; a Kubernetes Secret holds at most {MAX_SECRET_BYTES}"),
            ));
        }
        Ok(())
    }
}

fn derived_set(key: &str) -> Invalid {
    invalid(
        format!("data.{key}"),
        format!("is derived (derive.{key}); it cannot be set"),
    )
}

/// The body of `PATCH /v1/apps/{app}/secrets/{name}`: `{data?: {key: value | null},
/// generate?, derive?, validate?: {key: rule | null}}`.
#[derive(Debug)]
pub struct SecretPatch {
    pub data: BTreeMap<String, Option<SecretValue>>,
    pub recipe: RecipePatch,
}

impl SecretPatch {
    pub fn from_json(v: &Json) -> Result<SecretPatch, Invalid> {
        let mut f = Fields::of("", v)?;
        let data = match f.get("data") {
            None => BTreeMap::new(),
            Some(data_v) => data_map(data_v, true)?,
        };
        let recipe = RecipePatch::from_fields(&mut f)?;
        f.finish()?;
        if data.is_empty() && recipe.is_empty() {
            return Err(invalid(
                "data",
                "is required (or generate, derive, validate): the patch changes nothing",
            ));
        }
        Ok(SecretPatch { data, recipe })
    }
}

pub fn validate_type(t: &str) -> Result<(), Invalid> {
    let ok = !t.is_empty()
        && t.len() <= 253
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'/' | b'-' | b'_'));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            "type",
            format!("{t:?} is not a Secret type (like Opaque or kubernetes.io/tls)"),
        ))
    }
}

/// `{key: "value"}` (and `null` values when `nulls`), with every key checked. Values are never
/// quoted in errors: only their JSON kind is.
fn data_map(v: &Json, nulls: bool) -> Result<BTreeMap<String, Option<SecretValue>>, Invalid> {
    let Json::Object(map) = v else {
        return Err(invalid(
            "data",
            format!("must be an object, not {}", kind(v)),
        ));
    };
    let mut out = BTreeMap::new();
    for (k, v) in map {
        let field = format!("data.{k}");
        validate_data_key("data", k)?;
        match v {
            Json::String(s) => {
                out.insert(k.clone(), Some(SecretValue::new(s.as_bytes().to_vec())));
            }
            Json::Null if nulls => {
                out.insert(k.clone(), None);
            }
            other => {
                let allowed = if nulls {
                    "a string or null"
                } else {
                    "a string"
                };
                return Err(invalid(
                    field,
                    format!("must be {allowed}, not {}", kind(other)),
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn app() -> AppSpec {
        AppSpec::from_json(&json!({
            "name": "shop", "tenant": "acme",
            "environments": [{"name": "staging", "namespace": "shop-staging"},
                             {"name": "prod", "namespace": "shop-prod"}]
        }))
        .unwrap()
    }

    #[test]
    fn a_registration_names_its_platform_repo_or_gets_the_default() {
        assert_eq!(app().platform_repo("platform"), "platform/shop-platform");
        assert!(
            app().to_json().get("repo").is_none(),
            "no field when defaulted"
        );
        let mut j = app().to_json();
        j["repo"] = json!("acme/shop-secrets");
        let named = AppSpec::from_json(&j).unwrap();
        assert_eq!(named.platform_repo("platform"), "acme/shop-secrets");
        assert_eq!(AppSpec::from_json(&named.to_json()).unwrap(), named);
        j["repo"] = json!("no-slash");
        assert_eq!(err_of(AppSpec::from_json(&j)).0, "repo");
    }

    fn err_of(r: Result<impl std::fmt::Debug, Invalid>) -> (String, String) {
        let e = r.expect_err("should be refused");
        (e.field, e.reason)
    }

    #[test]
    fn an_app_parses_with_defaults_and_round_trips() {
        let a = app();
        assert_eq!(a.delivery, Delivery::Commit);
        assert_eq!(AppSpec::from_json(&a.to_json()).unwrap(), a);
        let pr = AppSpec::from_json(&json!({"name": "a", "tenant": "t",
            "environments": [{"name": "e", "namespace": "n"}], "delivery": "pull-request"}))
        .unwrap();
        assert_eq!(pr.delivery, Delivery::PullRequest);
    }

    #[test]
    fn app_errors_name_the_field() {
        let base = app().to_json();
        let with = |f: &dyn Fn(&mut Json)| {
            let mut v = base.clone();
            f(&mut v);
            err_of(AppSpec::from_json(&v))
        };
        assert_eq!(with(&|v| v["name"] = json!("Shop")).0, "name");
        assert_eq!(with(&|v| v["name"] = json!("a".repeat(44))).0, "name");
        assert_eq!(with(&|v| v["name"] = json!("")).1, "must not be empty");
        assert_eq!(
            with(&|v| {
                v.as_object_mut().unwrap().remove("tenant");
            }),
            ("tenant".into(), "is required".into())
        );
        assert_eq!(with(&|v| v["environments"] = json!([])).0, "environments");
        assert_eq!(
            with(&|v| v["environments"][1]["namespace"] = json!("shop-staging")).0,
            "environments[1].namespace"
        );
        assert_eq!(
            with(&|v| v["environments"][0]["name"] = json!("a/b")).0,
            "environments[0].name"
        );
        assert_eq!(with(&|v| v["delivery"] = json!("email")).0, "delivery");
        assert_eq!(with(&|v| v["colour"] = json!("blue")).0, "colour");
        assert_eq!(err_of(AppSpec::from_json(&json!([1]))).0, "body");
    }

    #[test]
    fn a_secret_is_checked_against_its_app() {
        let a = app();
        let s = SecretSpec::from_json(
            "db",
            &json!({"targetNamespaces": ["shop-prod", "shop-staging"], "data": {"password": "hunter2"}}),
            &a,
        )
        .unwrap();
        assert_eq!(s.target_name, "db");
        assert_eq!(s.type_, "Opaque");
        assert_eq!(s.target_namespaces, ["shop-prod", "shop-staging"]);
        let bad = |v: Json| err_of(SecretSpec::from_json("db", &v, &a));
        let (f, r) = bad(json!({"targetNamespaces": ["other"], "data": {"k": "v"}}));
        assert_eq!(f, "targetNamespaces[0]");
        assert!(r.contains("not a namespace of app"), "{r}");
        assert_eq!(
            bad(json!({"targetNamespaces": [], "data": {"k": "v"}})).0,
            "targetNamespaces"
        );
        assert_eq!(
            bad(json!({"targetNamespaces": ["shop-prod"], "data": {}})).0,
            "data"
        );
        assert_eq!(bad(json!({"targetNamespaces": ["shop-prod"]})).0, "data");
        let (f, r) = bad(json!({"targetNamespaces": ["shop-prod"], "data": {"k": 123456}}));
        assert_eq!(f, "data.k");
        assert!(!r.contains("123456"), "{r}");
        assert_eq!(
            bad(json!({"targetNamespaces": ["shop-prod"], "data": {"a/b": "v"}})).0,
            "data"
        );
        assert_eq!(
            bad(json!({"targetNamespaces": ["shop-prod"], "type": "kubernetes.io/tls", "data": {"tls.crt": "x"}})).0,
            "data"
        );
        assert_eq!(
            bad(json!({"targetNamespaces": ["shop-prod"], "targetName": "X", "data": {"k": "v"}}))
                .0,
            "targetName"
        );
        let big = "x".repeat(MAX_SECRET_BYTES + 1);
        assert_eq!(
            bad(json!({"targetNamespaces": ["shop-prod"], "data": {"k": big}})).0,
            "data"
        );
        assert_eq!(
            err_of(SecretSpec::from_json("Bad", &json!({}), &a)).0,
            "name"
        );
    }

    #[test]
    fn a_patch_sets_and_removes_keys_but_never_empties() {
        let a = app();
        let s = SecretSpec::from_json(
            "db",
            &json!({"targetNamespaces": ["shop-prod"], "data": {"user": "u", "password": "p"}}),
            &a,
        )
        .unwrap();
        let p = SecretPatch::from_json(&json!({"data": {"password": null, "host": "h"}})).unwrap();
        let next = s.patched(&p).unwrap();
        assert_eq!(next.data.keys().collect::<Vec<_>>(), ["host", "user"]);
        assert!(!next.same_as(&s));
        assert!(s.same_as(&s.clone()));
        let all =
            SecretPatch::from_json(&json!({"data": {"password": null, "user": null}})).unwrap();
        assert_eq!(err_of(s.patched(&all)).0, "data");
        assert_eq!(
            err_of(SecretPatch::from_json(&json!({"data": {"k": 1}}))).0,
            "data.k"
        );
    }
}
