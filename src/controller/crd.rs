//! The `AppPlatformRegistration` custom resource (`sealwright.dev/v1alpha1`, cluster-scoped,
//! short name `apr`): its Rust types, from which the CRD and its OpenAPI schema are derived, the
//! conversion of a registration into the reconciler's [`AppSpec`], and its status.
//!
//! The schema refuses what it can say (names as DNS labels, at least one environment, the two
//! delivery modes, no unknown fields); everything else (the app name's length, a namespace used
//! twice, the tenant boundary) is checked by the same code as the API's, and the error becomes
//! `Ready=False` with a reason naming the field.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value as Json;

use crate::spec::{AppSpec, Invalid};

/// The API group of sealwright's resources, and the prefix of its labels and annotations.
pub const GROUP: &str = "sealwright.dev";

/// A DNS-1123 label (namespaces, environment and tenant names).
const LABEL: &str = "^[a-z0-9]([-a-z0-9]*[a-z0-9])?$";

/// An app registered the Kubernetes way. Its name is the app's name.
// The printer columns repeat `type_`, which clippy takes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sealwright.dev",
    version = "v1alpha1",
    kind = "AppPlatformRegistration",
    plural = "appplatformregistrations",
    shortname = "apr",
    category = "sealwright",
    doc = "An app registered with sealwright: its tenant, its environments and how its secrets are delivered.",
    status = "AppPlatformRegistrationStatus",
    printcolumn(
        name = "READY",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(name = "TENANT", type_ = "string", json_path = ".spec.tenant"),
    printcolumn(name = "REPO", type_ = "string", json_path = ".status.platformRepo"),
    printcolumn(
        name = "FLUX",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"FluxReady\")].status"
    ),
    printcolumn(
        name = "AGE",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AppPlatformRegistrationSpec {
    /// The tenant the app belongs to: its namespace patterns bind the environments.
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL))]
    pub tenant: String,
    /// Where the app runs: each environment's namespace receives its secrets.
    #[schemars(length(min = 1))]
    pub environments: Vec<Environment>,
    /// How secret changes reach the platform repo: `commit` (default) or `pull-request`.
    #[serde(default)]
    pub delivery: DeliveryMode,
    /// What happens to files of sealwright's changed by hand in the platform repo: `restore`
    /// (default), `adopt` or `report`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drift_policy: Option<DriftPolicyMode>,
    /// The platform repository, `owner/name` on the Git host. Defaults to
    /// `<host owner>/<app>-platform`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = "^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$"))]
    pub repo: Option<String>,
}

/// One environment of an app.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Environment {
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL))]
    pub name: String,
    #[schemars(length(min = 1, max = 63), regex(pattern = LABEL))]
    pub namespace: String,
    /// Plain configuration substituted into the environment's Kustomization (not secrets).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub variables: BTreeMap<String, String>,
    /// The workload manifests sealwright applies for this environment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<EnvironmentSource>,
}

/// A Git repository, its branch and the path of the manifests in it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct EnvironmentSource {
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
}

/// `restore`, `adopt` or `report`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DriftPolicyMode {
    Restore,
    Adopt,
    Report,
}

/// `commit` or `pull-request`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryMode {
    #[default]
    Commit,
    PullRequest,
}

/// What the controller last saw and did.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AppPlatformRegistrationStatus {
    /// The generation the conditions describe.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform_repo: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flux_repo: Option<String>,
    /// The app's age recipient (its public key).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recipient: Option<String>,
    /// The last commit that changed the app's platform repo.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_commit: Option<String>,
    /// How many secrets the app has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secrets: Option<i64>,
    /// `Ready`, `RepoReady` and `FluxReady`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// The registration as the reconciler's spec, checked by the API's own rules. Field names in
/// the error are the resource's: `metadata.name`, `spec.environments[0].namespace`.
pub fn app_spec(name: &str, spec: &AppPlatformRegistrationSpec) -> Result<AppSpec, Invalid> {
    let mut body = serde_json::json!({
        "name": name,
        "tenant": spec.tenant,
        "environments": spec.environments.iter()
            .map(|e| {
                let mut j = serde_json::json!({"name": e.name, "namespace": e.namespace});
                if !e.variables.is_empty() {
                    j["variables"] = serde_json::json!(e.variables);
                }
                if let Some(s) = &e.source {
                    j["source"] = serde_json::json!(s);
                }
                j
            })
            .collect::<Vec<_>>(),
        "delivery": match spec.delivery {
            DeliveryMode::Commit => "commit",
            DeliveryMode::PullRequest => "pull-request",
        },
    });
    if let Some(p) = spec.drift_policy {
        body["driftPolicy"] = serde_json::json!(match p {
            DriftPolicyMode::Restore => "restore",
            DriftPolicyMode::Adopt => "adopt",
            DriftPolicyMode::Report => "report",
        });
    }
    if let Some(r) = &spec.repo {
        body["repo"] = Json::from(r.as_str());
    }
    AppSpec::from_json(&body).map_err(|e| Invalid {
        field: resource_field(&e.field),
        reason: e.reason,
    })
}

/// `name` → `metadata.name`, anything else → `spec.<field>`.
pub fn resource_field(field: &str) -> String {
    match field {
        "name" => "metadata.name".into(),
        "" => "spec".into(),
        f => format!("spec.{f}"),
    }
}

/// One condition, with the transition time kept when the status did not change.
pub fn condition(
    previous: &[Condition],
    type_: &str,
    ok: Option<bool>,
    reason: &str,
    message: String,
    generation: Option<i64>,
    now: Time,
) -> Condition {
    let status = match ok {
        Some(true) => "True",
        Some(false) => "False",
        None => "Unknown",
    };
    let since = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(now);
    Condition {
        type_: type_.into(),
        status: status.into(),
        reason: reason.into(),
        message,
        observed_generation: generation,
        last_transition_time: since,
    }
}

/// The CRD as YAML, as `sealwright crd` prints it and `flux/crd.yaml` holds it.
pub fn crd_yaml() -> Vec<u8> {
    use kube::CustomResourceExt;
    let json: Json = serde_json::to_value(AppPlatformRegistration::crd()).unwrap_or_default();
    let mut out =
        b"# Generated by `sealwright crd`; do not edit (a test fails when it drifts).\n".to_vec();
    out.extend(crate::plain::yaml_of(&json));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(tenant: &str, ns: &[&str]) -> AppPlatformRegistrationSpec {
        AppPlatformRegistrationSpec {
            tenant: tenant.into(),
            environments: ns
                .iter()
                .enumerate()
                .map(|(i, n)| Environment {
                    name: format!("e{i}"),
                    namespace: (*n).into(),
                    variables: BTreeMap::new(),
                    source: None,
                })
                .collect(),
            delivery: DeliveryMode::Commit,
            drift_policy: None,
            repo: None,
        }
    }

    #[test]
    fn a_registration_becomes_the_apis_spec() {
        let s = app_spec("shop", &spec("acme", &["shop-dev", "shop-prod"])).unwrap();
        assert_eq!(s.name, "shop");
        assert_eq!(
            s.namespaces().collect::<Vec<_>>(),
            ["shop-dev", "shop-prod"]
        );
    }

    #[test]
    fn errors_name_the_resources_fields() {
        let e = app_spec("shop", &spec("acme", &["a", "a"])).unwrap_err();
        assert_eq!(e.field, "spec.environments[1].namespace");
        let long = "x".repeat(60);
        let e = app_spec(&long, &spec("acme", &["a"])).unwrap_err();
        assert_eq!(e.field, "metadata.name");
    }

    #[test]
    fn the_crd_says_what_the_schema_can() {
        use kube::CustomResourceExt;
        let crd = serde_json::to_value(AppPlatformRegistration::crd()).unwrap();
        assert_eq!(crd["spec"]["scope"], "Cluster");
        assert_eq!(crd["spec"]["names"]["shortNames"][0], "apr");
        let v = &crd["spec"]["versions"][0];
        assert_eq!(v["subresources"]["status"], serde_json::json!({}));
        let cols: Vec<_> = v["additionalPrinterColumns"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(cols, ["READY", "TENANT", "REPO", "FLUX", "AGE"]);
        let spec = &v["schema"]["openAPIV3Schema"]["properties"]["spec"];
        assert_eq!(
            spec["properties"]["delivery"]["enum"],
            serde_json::json!(["commit", "pull-request"])
        );
        assert_eq!(spec["properties"]["environments"]["minItems"], 1);
        let required: Vec<_> = spec["required"].as_array().unwrap().iter().collect();
        assert!(required.contains(&&serde_json::json!("tenant")));
    }

    #[test]
    fn a_condition_keeps_its_transition_time_while_unchanged() {
        let t0 = Time(k8s_openapi::jiff::Timestamp::from_second(1_000).unwrap());
        let t1 = Time(k8s_openapi::jiff::Timestamp::from_second(2_000).unwrap());
        let c = condition(
            &[],
            "Ready",
            Some(true),
            "Committed",
            "ok".into(),
            Some(1),
            t0.clone(),
        );
        let same = condition(
            std::slice::from_ref(&c),
            "Ready",
            Some(true),
            "Committed",
            "ok".into(),
            Some(2),
            t1.clone(),
        );
        assert_eq!(same.last_transition_time, t0);
        let flipped = condition(
            &[c],
            "Ready",
            Some(false),
            "Invalid",
            "no".into(),
            Some(2),
            t1.clone(),
        );
        assert_eq!(flipped.last_transition_time, t1);
    }
}
