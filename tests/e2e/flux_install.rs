//! `flux/`, the folder that installs sealwright with Flux: it builds with `kubectl kustomize`,
//! every object validates against the Kubernetes 1.37 schemas with `kubernetes-validate`
//! (strict), its configuration loads, its Deployment is locked down, and its RBAC is least
//! privilege: no Secret reachable cluster-wide, and the only role the controller may bind is
//! the platform namespaces' one. `authorized` is also used by the controller tests to check
//! every request the controller made against these rules.

use std::path::PathBuf;
use std::process::Command;

use serde_json::{json, Value};

use crate::common::fake_apiserver::Access;
use crate::common::flux::{docs, kustomize};

pub fn flux_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flux"))
}

/// The built install, as JSON objects.
pub fn built() -> Vec<Value> {
    let yaml = kustomize(&flux_dir());
    docs(&yaml)
        .into_iter()
        .map(|m| {
            let bytes = sops::document::Format::Json
                .emit_plain(
                    &[m],
                    sops::document::EmitOptions {
                        yaml_indent: 2,
                        json_indent: Some(2),
                    },
                )
                .unwrap();
            serde_json::from_slice(&bytes).unwrap()
        })
        .collect()
}

fn of_kind<'a>(objs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objs.iter().filter(|o| o["kind"] == kind).collect()
}

fn named<'a>(objs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    objs.iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in flux/"))
}

fn strs(v: &Value) -> Vec<&str> {
    v.as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

fn rule_allows(rule: &Value, a: &Access) -> bool {
    let any = |field: &str, want: &str| {
        let list = strs(&rule[field]);
        list.contains(&"*") || list.contains(&want)
    };
    let names = strs(&rule["resourceNames"]);
    any("apiGroups", &a.group)
        && any("resources", &a.resource)
        && any("verbs", &a.verb)
        && (names.is_empty() || a.name.as_deref().is_some_and(|n| names.contains(&n)))
}

fn is_subject(binding: &Value, sa: &str, ns: &str) -> bool {
    binding["subjects"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|s| s["kind"] == "ServiceAccount" && s["name"] == sa && s["namespace"] == ns)
}

/// Whether the ServiceAccount `ns/sa` may do `a`, by the install's roles and bindings plus
/// `extra_bindings` (the RoleBindings the controller made in platform namespaces).
pub fn authorized(
    install: &[Value],
    extra_bindings: &[Value],
    sa: &str,
    ns: &str,
    a: &Access,
) -> bool {
    let role_rules = |kind: &str, name: &str, role_ns: Option<&str>| -> Vec<Value> {
        install
            .iter()
            .filter(|o| {
                o["kind"] == kind
                    && o["metadata"]["name"] == name
                    && (kind == "ClusterRole" || o["metadata"]["namespace"].as_str() == role_ns)
            })
            .flat_map(|o| o["rules"].as_array().cloned().unwrap_or_default())
            .collect()
    };
    let cluster_wide = of_kind(install, "ClusterRoleBinding")
        .into_iter()
        .filter(|b| is_subject(b, sa, ns))
        .flat_map(|b| role_rules("ClusterRole", b["roleRef"]["name"].as_str().unwrap(), None));
    let in_namespace = of_kind(install, "RoleBinding")
        .into_iter()
        .chain(extra_bindings.iter())
        .filter(|b| is_subject(b, sa, ns))
        .filter(|b| {
            a.namespace.is_some() && b["metadata"]["namespace"].as_str() == a.namespace.as_deref()
        })
        .flat_map(|b| {
            let r = &b["roleRef"];
            role_rules(
                r["kind"].as_str().unwrap(),
                r["name"].as_str().unwrap(),
                b["metadata"]["namespace"].as_str(),
            )
        });
    cluster_wide
        .chain(in_namespace)
        .any(|rule| rule_allows(&rule, a))
}

#[test]
fn the_install_builds_and_every_object_validates_against_kubernetes_1_37() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("install.yaml");
    std::fs::write(&file, kustomize(&flux_dir())).unwrap();
    let out = Command::new("python3")
        .args(["-m", "kubernetes_validate", "--strict", "-k", "1.37.0"])
        .arg(&file)
        .output()
        .expect("python3 -m kubernetes_validate (scripts/test-deps.sh installs it)");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{text}");
    let objs = built();
    assert_eq!(
        text.matches(" passed for resource ").count(),
        objs.len(),
        "{text}"
    );
    let kinds: Vec<&str> = objs.iter().filter_map(|o| o["kind"].as_str()).collect();
    for k in [
        "Namespace",
        "ServiceAccount",
        "CustomResourceDefinition",
        "Deployment",
        "Service",
        "ConfigMap",
    ] {
        assert!(kinds.contains(&k), "no {k} in flux/: {kinds:?}");
    }
    // The CRD shipped is the one the binary prints.
    let crd = named(
        &objs,
        "CustomResourceDefinition",
        "appplatformregistrations.sealwright.dev",
    );
    assert_eq!(crd["apiVersion"], "apiextensions.k8s.io/v1");
}

#[test]
fn the_install_configuration_loads_and_the_deployment_is_locked_down() {
    let objs = built();
    let cm = named(&objs, "ConfigMap", "sealwright-config");
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("sealwright.yaml");
    std::fs::write(&path, cm["data"]["sealwright.yaml"].as_str().unwrap()).unwrap();
    let config = sealwright::config::serve::ServeConfig::load(&path).unwrap();
    let controller = config.controller.expect("controller mode");
    assert_eq!(controller.namespace, "sealwright-system");
    assert!(
        controller.kubeconfig.is_none(),
        "in a pod the service account is used"
    );

    let d = named(&objs, "Deployment", "sealwright");
    assert_eq!(d["spec"]["replicas"], 2);
    let pod = &d["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], "sealwright");
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"], json!(["ALL"]));
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/readyz");
    assert!(
        c["resources"]["requests"]["cpu"].is_string()
            && c["resources"]["requests"]["memory"].is_string()
    );
    assert!(c["env"]
        .as_array()
        .unwrap()
        .iter()
        .any(|e| e["name"] == "POD_NAME"));
    for o in &objs {
        if o["kind"] != "Namespace"
            && ![
                "ClusterRole",
                "ClusterRoleBinding",
                "CustomResourceDefinition",
            ]
            .contains(&o["kind"].as_str().unwrap())
        {
            let ns = o["metadata"]["namespace"].as_str().unwrap_or_default();
            assert!(
                ns == "sealwright-system"
                    || (ns == "flux-system" && o["metadata"]["name"] == "sealwright-flux-reader"),
                "{} {} in {ns:?}",
                o["kind"],
                o["metadata"]["name"]
            );
        }
    }
}

#[test]
fn the_install_rbac_is_least_privilege() {
    let objs = built();
    let (sa, ns) = ("sealwright", "sealwright-system");
    let access =
        |verb: &str, group: &str, resource: &str, namespace: Option<&str>, name: Option<&str>| {
            Access {
                verb: verb.into(),
                group: group.into(),
                resource: resource.into(),
                namespace: namespace.map(str::to_owned),
                name: name.map(str::to_owned),
            }
        };
    let may = |a: Access| authorized(&objs, &[], sa, ns, &a);
    // No Secret outside its own namespace without a platform RoleBinding, at any verb.
    for verb in [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ] {
        assert!(
            !may(access(verb, "", "secrets", Some("shop-dev"), Some("x"))),
            "{verb} secrets in shop-dev"
        );
        assert!(
            !may(access(verb, "", "secrets", None, None)),
            "{verb} secrets cluster-wide"
        );
        assert!(
            !may(access(verb, "", "secrets", Some("flux-system"), Some("x"))),
            "{verb} secrets in flux-system"
        );
    }
    // Its own namespace: read and create keys, never list, change or delete them.
    assert!(may(access(
        "get",
        "",
        "secrets",
        Some(ns),
        Some("shop-platform-age-key")
    )));
    assert!(may(access("create", "", "secrets", Some(ns), None)));
    assert!(!may(access(
        "delete",
        "",
        "secrets",
        Some(ns),
        Some("shop-platform-age-key")
    )));
    assert!(!may(access("list", "", "secrets", Some(ns), None)));
    // It binds the platform role, and no other.
    assert!(may(access(
        "bind",
        "rbac.authorization.k8s.io",
        "clusterroles",
        None,
        Some("sealwright-platform-secrets")
    )));
    assert!(!may(access(
        "bind",
        "rbac.authorization.k8s.io",
        "clusterroles",
        None,
        Some("cluster-admin")
    )));
    assert!(!may(access(
        "escalate",
        "rbac.authorization.k8s.io",
        "clusterroles",
        None,
        Some("sealwright-platform-secrets")
    )));
    assert!(!may(access(
        "create",
        "rbac.authorization.k8s.io",
        "clusterrolebindings",
        None,
        None
    )));
    // Flux's Kustomizations: read, in flux-system only.
    assert!(may(access(
        "watch",
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
        Some("flux-system"),
        None
    )));
    assert!(!may(access(
        "patch",
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
        Some("flux-system"),
        Some("x")
    )));
    assert!(!may(access(
        "list",
        "kustomize.toolkit.fluxcd.io",
        "kustomizations",
        Some("shop-dev"),
        None
    )));
    // A platform RoleBinding opens that namespace's Secrets, and only that namespace's.
    let rb = json!({"kind": "RoleBinding", "metadata": {"name": "sealwright", "namespace": "shop-platform"},
        "roleRef": {"kind": "ClusterRole", "name": "sealwright-platform-secrets"},
        "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]});
    let with = |a: Access| authorized(&objs, std::slice::from_ref(&rb), sa, ns, &a);
    assert!(with(access(
        "watch",
        "",
        "secrets",
        Some("shop-platform"),
        None
    )));
    assert!(!with(access(
        "watch",
        "",
        "secrets",
        Some("shop-dev"),
        None
    )));
    // Nothing in the install binds the platform role by itself.
    assert!(of_kind(&objs, "RoleBinding")
        .iter()
        .chain(of_kind(&objs, "ClusterRoleBinding").iter())
        .all(|b| b["roleRef"]["name"] != "sealwright-platform-secrets"));
}

/// Every request in `accesses` is allowed by the install's RBAC (with `bindings`, what the
/// controller bound itself). Panics with the ones that are not.
pub fn assert_all_authorized(accesses: &[Access], bindings: &[Value]) {
    let objs = built();
    assert!(
        accesses
            .iter()
            .any(|a| a.resource == "secrets" && a.verb == "watch")
            && accesses
                .iter()
                .any(|a| a.resource == "leases" && a.verb == "update"),
        "the controller's requests were not all seen: {accesses:#?}"
    );
    let mut denied: Vec<&Access> = accesses
        .iter()
        .filter(|a| !authorized(&objs, bindings, "sealwright", "sealwright-system", a))
        .collect();
    denied.sort();
    denied.dedup();
    assert!(
        denied.is_empty(),
        "requests flux/rbac.yaml does not allow: {denied:#?}"
    );
    // Creating a RoleBinding to a ClusterRole needs `bind` on it (escalation prevention).
    for b in bindings {
        let bind = Access {
            verb: "bind".into(),
            group: "rbac.authorization.k8s.io".into(),
            resource: "clusterroles".into(),
            namespace: None,
            name: b["roleRef"]["name"].as_str().map(str::to_owned),
        };
        assert!(
            authorized(&objs, &[], "sealwright", "sealwright-system", &bind),
            "binding {b} needs bind"
        );
    }
}
