//! An app's environments in its platform repo, end to end on `sealwright serve`: the
//! environment Kustomization sealwright writes for a registration's `source`, played the way
//! Flux would (`kubectl kustomize` of the workload path, then `postBuild` substitution with the
//! registration's variables and the `sealwright-checksums` ConfigMap), so that a Deployment
//! naming one Secret's checksum changes exactly when that Secret does; the app team's own files
//! under `environments/` are kept as they are; and from the rendered RBAC alone, a hostile file
//! there (a Kustomization in `kube-system`, a ClusterRoleBinding) is one Flux would be refused.

use crate::common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::flux::{docs, kustomize, s};
use common::server::{checkout, Server};
use common::*;
use serde_json::json;
use sops::{Map, Value};

const CONFIG: &str =
    "cluster:\n  name: e2e\nhost:\n  kind: local\n  owner: platform\nflux_repo: platform/flux\n";

const DEPLOYMENT: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
      annotations:
        sealwright.dev/secret-database: "${SECRET_DATABASE_CHECKSUM:=none}"
    spec:
      containers:
        - name: web
          image: ghcr.io/acme/web:1.0
          env:
            - {name: LOG_LEVEL, value: "${LOG_LEVEL}"}
            - {name: APP_NAMESPACE, value: "${NAMESPACE}"}
          envFrom:
            - secretRef: {name: database}
            - secretRef: {name: cache}
"#;

/// Flux's `postBuild` substitution of `${NAME}` and `${NAME:=default}`: `substitute` first,
/// then `substituteFrom`; an unset variable with no default becomes empty, as in Flux.
fn substitute(text: &str, vars: &BTreeMap<String, String>) -> String {
    let re = regex::Regex::new(r"\$\{([_a-zA-Z][_a-zA-Z0-9]*)(?::=([^}]*))?\}").unwrap();
    re.replace_all(text, |c: &regex::Captures| {
        vars.get(&c[1])
            .cloned()
            .or_else(|| c.get(2).map(|d| d.as_str().to_owned()))
            .unwrap_or_default()
    })
    .into_owned()
}

/// Plays one environment Kustomization: builds its path in `workloads` and substitutes.
fn apply_env(env_file: &Path, workloads: &Path, checksums: &BTreeMap<String, String>) -> Vec<Map> {
    let objs = docs(&std::fs::read(env_file).unwrap());
    let k = objs
        .iter()
        .find(|d| s(d, &["kind"]) == Some("Kustomization"))
        .expect("an environment Kustomization");
    let path = s(k, &["spec", "path"]).unwrap();
    let ns = s(k, &["spec", "targetNamespace"]).unwrap();
    let built = String::from_utf8(kustomize(&workloads.join(path))).unwrap();
    let mut vars: BTreeMap<String, String> = checksums.clone();
    if let Some(Value::Map(sub)) = k
        .get("spec")
        .and_then(|s| s.as_map())
        .and_then(|s| s.get("postBuild"))
        .and_then(|p| p.as_map())
        .and_then(|p| p.get("substitute"))
    {
        for (name, v) in sub.pairs() {
            vars.insert(name.to_owned(), v.as_str().unwrap().to_owned());
        }
    }
    let mut out = docs(substitute(&built, &vars).as_bytes());
    for d in &mut out {
        assert!(s(d, &["metadata", "namespace"]).is_none_or(|n| n == ns));
    }
    out
}

fn pod_template(objs: &[Map]) -> String {
    let d = objs
        .iter()
        .find(|d| s(d, &["kind"]) == Some("Deployment"))
        .unwrap();
    let t = d
        .get("spec")
        .and_then(|s| s.as_map())
        .and_then(|s| s.get("template"))
        .and_then(|t| t.as_map())
        .unwrap();
    let json = sops::document::Format::Json
        .emit_plain(
            std::slice::from_ref(t),
            sops::document::EmitOptions::default(),
        )
        .unwrap();
    String::from_utf8(json).unwrap()
}

fn git(dir: &Path, args: &[&str]) {
    let out = Command::new("git")
        .args(["-c", "user.name=team", "-c", "user.email=team@example.com"])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "git {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether `sa` (`namespace:name`) may create `kind` in `ns` (`None`: cluster-scoped), judged
/// from the rendered RBAC: a RoleBinding in `ns` to a role that allows it, or a
/// ClusterRoleBinding. The ClusterRole `admin` counts as allowing any namespaced kind.
fn allowed(rbac: &[Map], sa: &str, ns: Option<&str>) -> bool {
    let (sa_ns, sa_name) = sa.split_once(':').unwrap();
    rbac.iter().any(|d| {
        let kind = s(d, &["kind"]);
        let binds_sa = matches!(d.get("subjects"), Some(Value::Seq(subs)) if subs.iter().any(|x| {
            let x = x.as_map().unwrap();
            s(x, &["kind"]) == Some("ServiceAccount")
                && s(x, &["name"]) == Some(sa_name)
                && s(x, &["namespace"]) == Some(sa_ns)
        }));
        binds_sa
            && match (kind, ns) {
                (Some("ClusterRoleBinding"), _) => true,
                (Some("RoleBinding"), Some(ns)) => s(d, &["metadata", "namespace"]) == Some(ns),
                _ => false,
            }
    })
}

#[test]
fn environment_kustomizations_substitute_variables_and_roll_out_on_exactly_their_secret() {
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(&tmp.path().join("srv"), CONFIG);
    server.start(&[]);
    let ok = |method: &str, path: &str, body: serde_json::Value| {
        let r = server.send(method, path, &body);
        assert!(
            r.status == 200 || r.status == 201,
            "{method} {path}: {} {}",
            r.status,
            r.text()
        );
        r.json()
    };
    let bad = server.send(
        "POST",
        "/v1/apps",
        &json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "prod", "namespace": "shop-prod", "variables": {"NAMESPACE": "x"}}]}),
    );
    assert_eq!(bad.status, 422, "{}", bad.text());
    assert_eq!(bad.json()["field"], "environments[0].variables.NAMESPACE");
    let bad = server.send(
        "POST",
        "/v1/apps",
        &json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "prod", "namespace": "shop-prod", "source": {"url": "https://git.example/a.git", "path": "../up"}}]}),
    );
    assert_eq!(
        bad.json()["field"],
        "environments[0].source.path",
        "{}",
        bad.text()
    );
    ok(
        "POST",
        "/v1/apps",
        json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "prod", "namespace": "shop-prod",
             "variables": {"LOG_LEVEL": "info", "HOSTNAME": "shop.example.com"},
             "source": {"url": "https://git.example/acme/shop.git", "branch": "main", "path": "deploy/prod"}},
            {"name": "staging", "namespace": "shop-staging"}]}),
    );
    let app = server.get("/v1/apps/shop").json();
    assert_eq!(
        app["environments"][0]["variables"]["LOG_LEVEL"], "info",
        "{app}"
    );
    for name in ["database", "cache"] {
        ok(
            "PUT",
            &format!("/v1/apps/shop/secrets/{name}"),
            json!({"targetNamespaces": ["shop-prod", "shop-staging"], "data": {"value": format!("{name}-one")}}),
        );
    }

    // The workloads the source points at (a fixture: Flux would fetch them).
    let workloads = tmp.path().join("workloads");
    std::fs::create_dir_all(workloads.join("deploy/prod")).unwrap();
    std::fs::write(workloads.join("deploy/prod/deployment.yaml"), DEPLOYMENT).unwrap();
    std::fs::write(
        workloads.join("deploy/prod/kustomization.yaml"),
        "resources: [deployment.yaml]\n",
    )
    .unwrap();
    let bare = server.repo("platform/shop-platform");
    let play = |tag: &str| {
        let dir = checkout(&bare, &tmp.path().join(format!("platform-{tag}")));
        let sums = common::flux::checksums(&dir, "shop-prod");
        (
            apply_env(&dir.join("environments/prod.yaml"), &workloads, &sums),
            sums,
            dir,
        )
    };
    let (first, sums, dir) = play("first");
    // The whole key chain over both repos, environments/ included.
    let flux = checkout(
        &server.repo("platform/flux"),
        &tmp.path().join("flux-first"),
    );
    let applied = common::flux::apply_like_flux(
        &flux,
        &BTreeMap::from([("shop".to_string(), dir.clone())]),
        &server.cluster_key(),
        &tmp.path().join("sim"),
    );
    assert_eq!(
        applied[&(
            "shop".to_string(),
            "shop-prod".to_string(),
            "database".to_string()
        )]["value"],
        b"database-one"
    );
    let env_file = std::fs::read_to_string(dir.join("environments/prod.yaml")).unwrap();
    assert!(
        env_file.starts_with("# Managed by sealwright"),
        "{env_file}"
    );
    assert!(
        !dir.join("environments/staging.yaml").exists(),
        "no source, no file"
    );
    assert!(dir.join("environments/README.md").exists());
    let objs = docs(env_file.as_bytes());
    // Both objects are what Flux serves: validated against its CRD schemas.
    let crd_dir = shared().join("flux-crds");
    let mut crds = Vec::new();
    for f in [
        "kustomize.toolkit.fluxcd.io_kustomizations.yaml",
        "source.toolkit.fluxcd.io_gitrepositories.yaml",
    ] {
        crds.extend(common::crd::load(&crd_dir.join(f)));
    }
    for d in &objs {
        let (api, kind) = (s(d, &["apiVersion"]).unwrap(), s(d, &["kind"]).unwrap());
        let crd = crds
            .iter()
            .find(|c| c.api_version == api && c.kind == kind)
            .unwrap_or_else(|| panic!("{api} {kind} is not served by the Flux CRDs"));
        let report = common::crd::validate(&crd.schema, d);
        assert!(report.errors.is_empty(), "{kind}: {:#?}", report.errors);
    }
    let k = objs
        .iter()
        .find(|d| s(d, &["kind"]) == Some("Kustomization"))
        .unwrap();
    assert_eq!(s(k, &["metadata", "namespace"]), Some("shop-prod"));
    assert_eq!(s(k, &["spec", "serviceAccountName"]), Some("shop-deployer"));
    assert_eq!(
        s(k, &["spec", "postBuild", "substitute", "ENVIRONMENT"]),
        Some("prod")
    );
    let t = pod_template(&first);
    assert!(t.contains(&sums["SECRET_DATABASE_CHECKSUM"]), "{t}");
    assert!(t.contains("\"info\"") || t.contains("info"), "{t}");
    assert!(t.contains("shop-prod"), "{t}");
    assert!(!t.contains("${"), "every variable substituted: {t}");

    // Another secret changes: the pod template stays byte for byte; this one: it rolls.
    ok(
        "PATCH",
        "/v1/apps/shop/secrets/cache",
        json!({"data": {"value": "cache-two"}}),
    );
    let (second, sums2, _) = play("second");
    assert_ne!(
        sums2["SECRET_CACHE_CHECKSUM"],
        sums["SECRET_CACHE_CHECKSUM"]
    );
    assert_eq!(pod_template(&second), pod_template(&first));
    ok(
        "PATCH",
        "/v1/apps/shop/secrets/database",
        json!({"data": {"value": "database-two"}}),
    );
    let (third, sums3, _) = play("third");
    assert_ne!(pod_template(&third), pod_template(&first));
    assert!(pod_template(&third).contains(&sums3["SECRET_DATABASE_CHECKSUM"]));

    // The app team's own files under environments/ stay as they are, whatever they hold.
    let team = tmp.path().join("team");
    checkout(&bare, &team);
    let evil = "apiVersion: kustomize.toolkit.fluxcd.io/v1\nkind: Kustomization\nmetadata:\n  name: evil\n  namespace: kube-system\nspec:\n  interval: 1m\n  path: ./\n  prune: true\n  sourceRef: {kind: GitRepository, name: shop-platform, namespace: flux-system}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRoleBinding\nmetadata:\n  name: evil\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: cluster-admin}\nsubjects:\n  - {kind: ServiceAccount, name: shop-deployer, namespace: shop-prod}\n";
    std::fs::write(team.join("environments/evil.yaml"), evil).unwrap();
    std::fs::write(
        team.join("environments/staging.yaml"),
        "# the team's staging\n",
    )
    .unwrap();
    git(&team, &["add", "environments"]);
    git(&team, &["commit", "-qm", "team: staging and more"]);
    git(&team, &["push", "-q", "origin", "main"]);
    ok(
        "PATCH",
        "/v1/apps/shop/secrets/cache",
        json!({"data": {"value": "cache-three"}}),
    );
    let (_, _, after) = play("after");
    assert_eq!(
        std::fs::read_to_string(after.join("environments/evil.yaml")).unwrap(),
        evil
    );
    assert_eq!(
        std::fs::read_to_string(after.join("environments/staging.yaml")).unwrap(),
        "# the team's staging\n"
    );

    // From the rendered Flux repo alone: environments/ is applied as shop-environments, which
    // is bound only in shop's namespaces, so neither object of evil.yaml can be applied.
    let flux = checkout(&server.repo("platform/flux"), &tmp.path().join("flux"));
    let sync = docs(&std::fs::read(flux.join("apps/shop-platform/sync.yaml")).unwrap());
    let env_k = sync
        .iter()
        .find(|d| s(d, &["spec", "path"]) == Some("./environments"))
        .expect("the environments Kustomization");
    let sa = s(env_k, &["spec", "serviceAccountName"]).unwrap();
    assert_eq!(sa, "shop-environments");
    let rbac = docs(&std::fs::read(flux.join("apps/shop-platform/rbac.yaml")).unwrap());
    let who = format!("flux-system:{sa}");
    assert!(allowed(&rbac, &who, Some("shop-prod")));
    assert!(allowed(&rbac, &who, Some("shop-staging")));
    assert!(
        !allowed(&rbac, &who, Some("kube-system")),
        "a Kustomization in kube-system"
    );
    assert!(!allowed(&rbac, &who, None), "a ClusterRoleBinding");
    assert!(!allowed(&rbac, &who, Some("flux-system")));
    assert!(!allowed(
        &rbac,
        "shop-prod:shop-deployer",
        Some("shop-staging")
    ));
    assert!(rbac
        .iter()
        .all(|d| s(d, &["kind"]) != Some("ClusterRoleBinding")));

    // A team file where sealwright would write its own fails the app, and stays.
    git(&team, &["pull", "-q", "--rebase", "origin", "main"]);
    std::fs::write(
        team.join("environments/prod.yaml"),
        "# the team's own prod\n",
    )
    .unwrap();
    git(&team, &["commit", "-qam", "team: prod by hand"]);
    git(&team, &["push", "-q", "origin", "main"]);
    let r = server.send(
        "PATCH",
        "/v1/apps/shop/secrets/cache",
        &json!({"data": {"value": "cache-four"}}),
    );
    assert_eq!(r.status, 502, "{}", r.text());
    assert!(r.text().contains("environments/prod.yaml"), "{}", r.text());
    let last = checkout(&bare, &tmp.path().join("platform-last"));
    assert_eq!(
        std::fs::read_to_string(last.join("environments/prod.yaml")).unwrap(),
        "# the team's own prod\n"
    );
}
