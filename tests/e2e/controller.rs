//! Controller mode end to end, against the fake Kubernetes API server (`common/fake_apiserver`,
//! the one peer with no real stand-in here, hence the `fake_apiserver_` names): the real
//! `sealwright serve` process with the production `kube::Client` and `kube::runtime` code, a
//! local Git host outside the data dir, and the Flux check on what it committed (the key chain
//! decrypted with the cluster key, `kubectl kustomize`, the real `sops`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::common;
use common::fake_apiserver::FakeApiServer;
use common::flux::apply_like_flux;
use common::server::{self as server, checkout, Server};
use common::*;

const OPERATOR_NS: &str = "sealwright-system";

fn crd_path() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/flux/crd.yaml"))
}

struct Cluster {
    tmp: tempfile::TempDir,
    api: FakeApiServer,
    host: PathBuf,
}

impl Cluster {
    fn new() -> Cluster {
        let tmp = tempfile::tempdir().unwrap();
        let api = FakeApiServer::start(
            &crd_path(),
            &[
                OPERATOR_NS,
                "flux-system",
                "kube-system",
                "default",
                "shop-dev",
                "shop-prod",
                "gx-dev",
            ],
        );
        let host = tmp.path().join("host");
        std::fs::create_dir_all(&host).unwrap();
        Cluster { tmp, api, host }
    }

    /// A controller replica: its own data dir, the shared host and API server.
    fn replica(&self, name: &str) -> Server {
        let dir = self.tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let kubeconfig = self.api.kubeconfig(&dir);
        let config = format!(
            r#"cluster:
  name: test
  recipient: {KEY1_PUB}
host:
  kind: local
  owner: platform
  repos_dir: {host}
state_repo: platform/sealwright-state
namespace: {OPERATOR_NS}
tenants:
  acme: {{namespaces: ["shop-*"]}}
  globex: {{namespaces: ["gx-*"]}}
controller:
  kubeconfig: {kubeconfig}
  lease: {{duration: 4s, grace: 1s}}
  resync: 2s
"#,
            host = self.host.display(),
            kubeconfig = kubeconfig.display(),
        );
        Server::new(&dir, &config)
    }

    fn repo(&self, name: &str) -> PathBuf {
        self.host.join(format!("platform/{name}.git"))
    }

    fn head(&self, name: &str) -> Option<String> {
        let out = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(self.repo(name))
            .args(["rev-parse", "--verify", "-q", "main"])
            .output()
            .unwrap();
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
    }

    fn register(&self, app: &str, tenant: &str, envs: &[(&str, &str)]) -> Result<Value, String> {
        let envs: Vec<Value> = envs
            .iter()
            .map(|(n, ns)| json!({"name": n, "namespace": ns}))
            .collect();
        self.api
            .apply(&json!({
                "apiVersion": "sealwright.dev/v1alpha1",
                "kind": "AppPlatformRegistration",
                "metadata": {"name": app},
                "spec": {"tenant": tenant, "environments": envs},
            }))
            .map_err(|e| format!("{} {}: {}", e.code, e.reason, e.message))
    }

    fn condition(&self, app: &str, type_: &str) -> Option<Value> {
        let apr = self.api.get("appplatformregistrations", "", app)?;
        apr["status"]["conditions"]
            .as_array()?
            .iter()
            .find(|c| c["type"] == type_)
            .cloned()
    }

    fn wait_condition(&self, app: &str, type_: &str, status: &str) -> Value {
        self.api.wait_for(
            "appplatformregistrations",
            "",
            app,
            60,
            &format!("{type_}={status}"),
            |o| {
                o.and_then(|o| o["status"]["conditions"].as_array())
                    .is_some_and(|cs| {
                        cs.iter()
                            .any(|c| c["type"] == type_ && c["status"] == status)
                    })
            },
        );
        self.condition(app, type_).unwrap()
    }

    fn managed_secret(&self, app: &str, name: &str, targets: &str, data: &[(&str, &str)]) -> Value {
        use base64::Engine;
        let data: serde_json::Map<String, Value> = data
            .iter()
            .map(|(k, v)| {
                (
                    k.to_string(),
                    json!(base64::engine::general_purpose::STANDARD.encode(v)),
                )
            })
            .collect();
        json!({
            "apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "namespace": format!("{app}-platform"),
                "labels": {"sealwright.dev/managed-secret": "true"},
                "annotations": {"sealwright.dev/target-namespaces": targets}},
            "type": "Opaque",
            "data": data,
        })
    }

    fn wait_annotation(
        &self,
        app: &str,
        name: &str,
        what: &str,
        pred: impl Fn(&BTreeMap<String, String>) -> bool,
    ) -> BTreeMap<String, String> {
        let o = self
            .api
            .wait_for("secrets", &format!("{app}-platform"), name, 60, what, |o| {
                o.is_some_and(|o| pred(&annotations(o)))
            });
        annotations(&o.unwrap())
    }

    /// Checks the repos out and plays Flux on them with the cluster key.
    fn flux_check(&self, apps: &[&str]) -> common::flux::Applied {
        let work = self.tmp.path().join("checkouts");
        let flux = checkout(&self.repo("flux"), &work.join("flux"));
        let mut platform = BTreeMap::new();
        for app in apps {
            let name = format!("{app}-platform");
            platform.insert(
                app.to_string(),
                checkout(&self.repo(&name), &work.join(&name)),
            );
        }
        apply_like_flux(&flux, &platform, &key_file(1), &work.join("sim"))
    }
}

fn annotations(o: &Value) -> BTreeMap<String, String> {
    o["metadata"]["annotations"]
        .as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

fn wait_until(secs: u64, what: &str, f: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !f() {
        assert!(Instant::now() < deadline, "waited {secs} s for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn events_for(api: &FakeApiServer, ns: &str, name: &str) -> Vec<(String, String, String)> {
    api.list("events", ns)
        .into_iter()
        .filter(|e| e["regarding"]["name"] == name)
        .map(|e| {
            (
                e["type"].as_str().unwrap_or_default().to_owned(),
                e["reason"].as_str().unwrap_or_default().to_owned(),
                e["note"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn fake_apiserver_the_committed_crd_is_what_sealwright_crd_prints() {
    let out = ok(sealwright(Path::new("."), None, &["crd"]));
    let committed = std::fs::read(crd_path()).unwrap();
    assert!(
        out == committed,
        "flux/crd.yaml drifted from `sealwright crd`: run `cargo run -- crd > flux/crd.yaml`"
    );
}

#[test]
fn fake_apiserver_registration_managed_secrets_and_a_restart_on_an_empty_disk() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    a.start(&[]);

    // 1. A registration: repo and Flux files committed, Ready, the printer columns filled.
    c.register(
        "shop",
        "acme",
        &[("dev", "shop-dev"), ("prod", "shop-prod")],
    )
    .unwrap();
    let ready = c.wait_condition("shop", "Ready", "True");
    assert_eq!(ready["reason"], "Committed", "{ready}");
    let apr = c.api.get("appplatformregistrations", "", "shop").unwrap();
    let st = &apr["status"];
    assert_eq!(st["platformRepo"], "platform/shop-platform");
    assert_eq!(st["observedGeneration"], apr["metadata"]["generation"]);
    assert!(st["recipient"].as_str().unwrap().starts_with("age1"));
    assert_eq!(c.condition("shop", "RepoReady").unwrap()["status"], "True");
    assert_eq!(
        c.condition("shop", "FluxReady").unwrap()["status"],
        "Unknown"
    );
    assert_eq!(
        apr["metadata"]["finalizers"],
        json!(["sealwright.dev/registration"])
    );
    let ns = c
        .api
        .get("namespaces", "", "shop-platform")
        .expect("the platform namespace");
    assert_eq!(ns["metadata"]["labels"]["sealwright.dev/app"], "shop");
    let rb = c
        .api
        .get("rolebindings", "shop-platform", "sealwright")
        .expect("its RoleBinding");
    assert_eq!(rb["roleRef"]["name"], "sealwright-platform-secrets");
    // The keys are Secrets in the operator's namespace, not files on the pod's disk.
    let key = c
        .api
        .get("secrets", OPERATOR_NS, "shop-platform-age-key")
        .expect("the app key");
    assert!(c
        .api
        .get("secrets", OPERATOR_NS, "sealwright-operator-age-key")
        .is_some());
    assert!(!a.data.join("keys/shop.agekey").exists());
    wait_until(30, "a Committed event on the registration", || {
        events_for(&c.api, "default", "shop")
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "Committed")
    });
    c.flux_check(&["shop"]);

    // 2. A managed Secret: committed, annotated, decrypted by the cluster's key chain.
    c.api
        .create(&c.managed_secret(
            "shop",
            "database",
            "shop-dev,shop-prod",
            &[("password", "hunter2-value")],
        ))
        .unwrap();
    let ann = c.wait_annotation("shop", "database", "committed", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    let first = ann["sealwright.dev/commit"].clone();
    assert_eq!(Some(first.clone()), c.head("shop-platform"));
    let s = c.api.get("secrets", "shop-platform", "database").unwrap();
    assert_eq!(s["metadata"]["finalizers"], json!(["sealwright.dev/files"]));
    let applied = c.flux_check(&["shop"]);
    let key_of = |ns: &str| {
        applied[&("shop".to_string(), ns.to_string(), "database".to_string())]["password"].clone()
    };
    assert_eq!(key_of("shop-dev"), b"hunter2-value");
    assert_eq!(key_of("shop-prod"), b"hunter2-value");

    // Updated: a new commit, the annotation follows.
    c.api
        .merge(
            "secrets",
            "shop-platform",
            "database",
            json!({"data": {"password": "bmV3LXZhbHVl"}}),
        ) // "new-value"
        .unwrap();
    let ann = c.wait_annotation("shop", "database", "a new commit", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
            && a.get("sealwright.dev/commit") != Some(&first)
    });
    assert_eq!(
        Some(ann["sealwright.dev/commit"].clone()),
        c.head("shop-platform")
    );

    // Bad input: a Warning Event and the error annotation, nothing committed, no value shown.
    let before = c.head("shop-platform");
    c.api
        .create(&c.managed_secret(
            "shop",
            "stray",
            "kube-system",
            &[("token", "stray-secret-value")],
        ))
        .unwrap();
    let ann = c.wait_annotation("shop", "stray", "an error", |a| {
        a.contains_key("sealwright.dev/error")
    });
    assert_eq!(ann["sealwright.dev/committed"], "false");
    assert!(
        ann["sealwright.dev/error"].starts_with("sealwright.dev/target-namespaces:"),
        "{ann:?}"
    );
    wait_until(30, "a Warning event on the Secret", || {
        events_for(&c.api, "shop-platform", "stray")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "Invalid")
    });
    assert_eq!(c.head("shop-platform"), before);

    // Deleted with kubectl delete: the finalizer holds it until the files are gone.
    c.api
        .create(&c.managed_secret("shop", "cache", "shop-dev", &[("url", "redis://cache")]))
        .unwrap();
    c.wait_annotation("shop", "cache", "committed", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    c.api.delete("secrets", "shop-platform", "cache").unwrap();
    c.api
        .wait_for("secrets", "shop-platform", "cache", 60, "released", |o| {
            o.is_none()
        });
    let applied = c.flux_check(&["shop"]);
    assert!(!applied.contains_key(&("shop".into(), "shop-dev".into(), "cache".into())));

    // Marked for deletion: files removed, then the Secret deleted.
    c.api
        .merge(
            "secrets",
            "shop-platform",
            "database",
            json!({"metadata": {"annotations": {"sealwright.dev/marked-for-deletion": "true"}}}),
        )
        .unwrap();
    c.api
        .wait_for("secrets", "shop-platform", "database", 60, "deleted", |o| {
            o.is_none()
        });
    let applied = c.flux_check(&["shop"]);
    assert!(
        !applied.keys().any(|(_, _, n)| n == "database"),
        "{:?}",
        applied.keys()
    );

    // 3. Restarted on an empty data dir: no commit, nothing lost.
    c.api
        .create(&c.managed_secret(
            "shop",
            "api",
            "shop-prod",
            &[("token", "kept-across-restarts")],
        ))
        .unwrap();
    c.wait_annotation("shop", "api", "committed", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    let heads: Vec<_> = ["shop-platform", "flux", "sealwright-state"]
        .iter()
        .map(|r| c.head(r))
        .collect();
    a.stop();
    std::fs::remove_dir_all(&a.data).unwrap();
    a.start(&[]);
    c.wait_condition("shop", "Ready", "True");
    std::thread::sleep(Duration::from_secs(3));
    let after: Vec<_> = ["shop-platform", "flux", "sealwright-state"]
        .iter()
        .map(|r| c.head(r))
        .collect();
    assert_eq!(heads, after, "a restart on an empty disk committed");
    assert_eq!(
        c.api
            .get("secrets", OPERATOR_NS, "shop-platform-age-key")
            .unwrap()["data"],
        key["data"]
    );
    let applied = c.flux_check(&["shop"]);
    assert_eq!(
        applied[&("shop".into(), "shop-prod".into(), "api".into())]["token"],
        b"kept-across-restarts"
    );

    // Every request the controller made is one flux/rbac.yaml allows.
    crate::flux_install::assert_all_authorized(&c.api.accesses(), &c.api.list("rolebindings", ""));

    // No value reached a log line, an annotation or an event.
    let logs = a.logs();
    for v in [
        "hunter2-value",
        "new-value",
        "stray-secret-value",
        "kept-across-restarts",
    ] {
        use base64::Engine;
        let encoded = base64::engine::general_purpose::STANDARD.encode(v);
        for form in [v, encoded.as_str()] {
            assert!(!logs.contains(form), "{form} in the logs");
            for e in c.api.list("events", "") {
                assert!(!e.to_string().contains(form), "{form} in an event");
            }
            let status = c.api.get("appplatformregistrations", "", "shop").unwrap();
            assert!(
                !status.to_string().contains(form),
                "{form} in the registration"
            );
        }
        for s in c.api.list("secrets", "shop-platform") {
            let ann = serde_json::to_string(&s["metadata"]["annotations"]).unwrap();
            assert!(!ann.contains(v), "{v} in an annotation");
        }
    }
    a.stop();
}

#[test]
fn fake_apiserver_a_managed_secret_with_a_recipe_generates_once_and_keeps_the_value() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    a.start(&[]);
    c.register("shop", "acme", &[("prod", "shop-prod")])
        .unwrap();
    c.wait_condition("shop", "Ready", "True");
    // Only rules: the password is generated, the URL derived from it.
    let mut s = c.managed_secret("shop", "db", "shop-prod", &[("username", "app")]);
    s["metadata"]["annotations"]["sealwright.dev/spec"] = json!(json!({
        "generate": {"password": {"kind": "alphanumeric", "length": 32}},
        "derive": {"DATABASE_URL": "postgres://{{ username }}:{{ password | urlencode }}@db/app"},
        "validate": {"DATABASE_URL": {"url": {"scheme": "postgres", "userinfo": true}}}
    })
    .to_string());
    c.api.create(&s).unwrap();
    let ann = c.wait_annotation("shop", "db", "committed", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    assert!(!ann.contains_key("sealwright.dev/error"), "{ann:?}");
    let first = c.flux_check(&["shop"]);
    let db = |applied: &common::flux::Applied, k: &str| {
        String::from_utf8(
            applied[&(
                "shop".to_string(),
                "shop-prod".to_string(),
                "db".to_string(),
            )][k]
                .clone(),
        )
        .unwrap()
    };
    let password = db(&first, "password");
    assert_eq!(password.len(), 32);
    assert_eq!(
        db(&first, "DATABASE_URL"),
        format!("postgres://app:{password}@db/app")
    );
    // An unrelated change: a new commit, the generated value kept.
    let commit = ann["sealwright.dev/commit"].clone();
    c.api
        .merge(
            "secrets",
            "shop-platform",
            "db",
            json!({"data": {"username": "YWRtaW4="}}), // "admin"
        )
        .unwrap();
    c.wait_annotation("shop", "db", "a new commit", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
            && a.get("sealwright.dev/commit") != Some(&commit)
    });
    let second = c.flux_check(&["shop"]);
    assert_eq!(db(&second, "password"), password);
    assert_eq!(
        db(&second, "DATABASE_URL"),
        format!("postgres://admin:{password}@db/app")
    );
    // A write through the API lands in the managed Secret with its rules and its values.
    let r = a.send(
        "PUT",
        "/v1/apps/shop/secrets/api",
        &json!({"targetNamespaces": ["shop-prod"], "generate": {"token": {"kind": "hex", "length": 24}}}),
    );
    assert_eq!(r.status, 200, "{}", r.text());
    let managed = c
        .api
        .get("secrets", "shop-platform", "api")
        .expect("the managed Secret");
    let spec = annotations(&managed)["sealwright.dev/spec"].clone();
    assert!(
        spec.contains("\"token\"") && spec.contains("\"hex\""),
        "{spec}"
    );
    assert!(managed["data"]["token"].is_string(), "{managed}");
    use base64::Engine;
    let in_managed = base64::engine::general_purpose::STANDARD
        .decode(managed["data"]["token"].as_str().unwrap())
        .unwrap();
    assert_eq!(in_managed.len(), 24);
    let applied = c.flux_check(&["shop"]);
    assert_eq!(
        applied[&(
            "shop".to_string(),
            "shop-prod".to_string(),
            "api".to_string()
        )]["token"],
        in_managed,
        "the committed value is the managed Secret's"
    );
    // A bad rule is the managed Secret's error, naming the annotation.
    let mut bad = c.managed_secret("shop", "bad", "shop-prod", &[("k", "v")]);
    bad["metadata"]["annotations"]["sealwright.dev/spec"] =
        json!(r#"{"derive": {"u": "{{ nope }}"}}"#);
    c.api.create(&bad).unwrap();
    let ann = c.wait_annotation("shop", "bad", "an error", |a| {
        a.contains_key("sealwright.dev/error")
    });
    assert!(ann["sealwright.dev/error"].contains("derive.u"), "{ann:?}");
    a.stop();
}

#[test]
fn fake_apiserver_a_reserved_or_foreign_namespace_is_refused_and_nothing_committed() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    a.start(&[]);
    c.register("shop", "acme", &[("dev", "shop-dev")]).unwrap();
    c.wait_condition("shop", "Ready", "True");
    let flux_head = c.head("flux");

    // What the schema can say, it refuses at the door.
    let bad = c.api.apply(&json!({
        "apiVersion": "sealwright.dev/v1alpha1", "kind": "AppPlatformRegistration",
        "metadata": {"name": "fax"},
        "spec": {"tenant": "acme", "environments": [{"name": "dev", "namespace": "shop-dev"}], "delivery": "fax"},
    }));
    assert_eq!(bad.unwrap_err().code, 422);
    let bad = c.register("upper", "acme", &[("dev", "Shop_Dev")]);
    assert!(bad.unwrap_err().starts_with("422"));

    // The rest, the reconciler refuses with a reason naming the field.
    c.register("evil", "globex", &[("dev", "kube-system")])
        .unwrap();
    let r = c.wait_condition("evil", "Ready", "False");
    assert_eq!(r["reason"], "InvalidSpec", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.environments[0].namespace:"),
        "{r}"
    );

    c.register(
        "thief",
        "globex",
        &[("dev", "gx-dev"), ("prod", "shop-prod")],
    )
    .unwrap();
    let r = c.wait_condition("thief", "Ready", "False");
    assert_eq!(r["reason"], "OutsideTenant", "{r}");
    assert!(
        r["message"]
            .as_str()
            .unwrap()
            .starts_with("spec.environments[1].namespace:"),
        "{r}"
    );

    // Another tenant's app cannot take a namespace that is held either.
    c.register("squat", "acme", &[("dev", "shop-dev")]).unwrap();
    let r = c.wait_condition("squat", "Ready", "False");
    assert_eq!(r["reason"], "NamespaceTaken", "{r}");

    wait_until(30, "the Failed events", || {
        ["evil", "thief", "squat"].iter().all(|app| {
            events_for(&c.api, "default", app)
                .iter()
                .any(|(t, r, _)| t == "Warning" && r == "Failed")
        })
    });
    assert_eq!(
        c.head("flux"),
        flux_head,
        "a refused registration changed the Flux repo"
    );
    for app in ["evil", "thief", "squat"] {
        assert!(
            c.head(&format!("{app}-platform")).is_none(),
            "{app} got a platform repo"
        );
    }

    // spec.repo names the platform repo; a repo belongs to one app, and never the Flux repo.
    let with_repo = |name: &str, ns: &str, repo: &str| {
        c.api
            .apply(&json!({
                "apiVersion": "sealwright.dev/v1alpha1", "kind": "AppPlatformRegistration",
                "metadata": {"name": name},
                "spec": {"tenant": "globex", "environments": [{"name": "dev", "namespace": ns}], "repo": repo},
            }))
            .unwrap()
    };
    with_repo("blog", "gx-blog", "platform/blog-secrets");
    c.wait_condition("blog", "Ready", "True");
    let apr = c.api.get("appplatformregistrations", "", "blog").unwrap();
    assert_eq!(apr["status"]["platformRepo"], "platform/blog-secrets");
    assert!(c.head("blog-secrets").is_some() && c.head("blog-platform").is_none());
    let gitrepo = git_in(
        &c.repo("flux"),
        &["show", "main:apps/blog-platform/gitrepository.yaml"],
    );
    assert!(gitrepo.contains("blog-secrets"), "{gitrepo}");
    with_repo("copycat", "gx-copy", "platform/shop-platform");
    let r = c.wait_condition("copycat", "Ready", "False");
    assert_eq!(r["reason"], "Conflict", "{r}");
    with_repo("outsider", "gx-out", "other-org/secrets");
    let r = c.wait_condition("outsider", "Ready", "False");
    assert!(
        r["message"].as_str().unwrap().starts_with("spec.repo:"),
        "{r}"
    );
    assert!(!c.host.join("other-org").exists());
    with_repo("fluxy", "gx-fluxy", "platform/flux");
    let r = c.wait_condition("fluxy", "Ready", "False");
    assert!(
        r["message"].as_str().unwrap().starts_with("spec.repo:"),
        "{r}"
    );
    with_repo("blog", "gx-blog", "platform/elsewhere");
    c.api.wait_for(
        "appplatformregistrations",
        "",
        "blog",
        60,
        "the repo change refused",
        |o| {
            o.and_then(|o| o["status"]["conditions"].as_array())
                .is_some_and(|cs| {
                    cs.iter().any(|c| {
                        c["type"] == "Ready"
                            && c["status"] == "False"
                            && c["message"]
                                .as_str()
                                .unwrap_or_default()
                                .starts_with("spec.repo: cannot change")
                    })
                })
        },
    );
    assert!(c.head("elsewhere").is_none());

    // The API server restarts with its watch history compacted: the controller's watches get
    // 410 Expired, relist, and go on.
    let lists = |c: &Cluster| {
        c.api
            .accesses()
            .iter()
            .filter(|a| a.resource == "appplatformregistrations" && a.verb == "list")
            .count()
    };
    let before = lists(&c);
    c.api.compact();
    c.register("gx", "globex", &[("dev", "gx-dev")]).unwrap();
    c.wait_condition("gx", "Ready", "True");
    assert!(lists(&c) > before, "no relist after the 410");

    // Deleting a registration unregisters its app: the Flux folder goes, the finalizer is
    // released, the platform repo stays.
    assert!(
        git_in(&c.repo("flux"), &["ls-tree", "-r", "--name-only", "main"])
            .contains("apps/gx-platform/")
    );
    c.api.delete("appplatformregistrations", "", "gx").unwrap();
    c.api
        .wait_for("appplatformregistrations", "", "gx", 60, "released", |o| {
            o.is_none()
        });
    assert!(
        !git_in(&c.repo("flux"), &["ls-tree", "-r", "--name-only", "main"])
            .contains("apps/gx-platform/")
    );
    assert!(c.head("gx-platform").is_some(), "the platform repo stays");
    assert_eq!(a.get("/v1/apps/gx").status, 404);
    a.stop();
}

/// What Flux's kustomize-controller would write: the Kustomization `<app>-platform` and its
/// status at `revision` of the platform repo.
fn flux_applies(api: &FakeApiServer, app: &str, commit: &str, ready: bool) {
    let name = format!("{app}-platform");
    if api.get("kustomizations", "flux-system", &name).is_none() {
        api.create(&json!({
            "apiVersion": "kustomize.toolkit.fluxcd.io/v1", "kind": "Kustomization",
            "metadata": {"name": name, "namespace": "flux-system"},
            "spec": {"interval": "10m0s", "path": "./secrets", "prune": true,
                     "sourceRef": {"kind": "GitRepository", "name": name},
                     "decryption": {"provider": "sops", "secretRef": {"name": format!("{name}-age-key")}}},
        }))
        .unwrap();
    }
    let generation =
        api.get("kustomizations", "flux-system", &name).unwrap()["metadata"]["generation"].clone();
    let revision = format!("main@sha1:{commit}");
    let mut status = json!({
        "observedGeneration": generation,
        "lastAttemptedRevision": revision,
        "conditions": [{
            "type": "Ready", "status": if ready { "True" } else { "False" },
            "reason": if ready { "ReconciliationSucceeded" } else { "BuildFailed" },
            "message": if ready { format!("Applied revision: {revision}") } else { "kustomize build failed".into() },
            "observedGeneration": generation, "lastTransitionTime": "2026-12-02T00:00:00Z",
        }],
    });
    if ready {
        status["lastAppliedRevision"] = json!(revision);
    }
    api.set_status("kustomizations", "flux-system", &name, status)
        .unwrap();
}

#[test]
fn fake_apiserver_flux_ready_at_the_commit_marks_the_registration_and_its_secrets() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    a.start(&[]);
    c.register("shop", "acme", &[("dev", "shop-dev")]).unwrap();
    c.wait_condition("shop", "Ready", "True");
    c.api
        .create(&c.managed_secret("shop", "database", "shop-dev", &[("password", "p1")]))
        .unwrap();
    let ann = c.wait_annotation("shop", "database", "committed", |a| {
        a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    let commit = ann["sealwright.dev/commit"].clone();
    let applied =
        |a: &Server| a.get("/v1/apps/shop/secrets").json()["secrets"][0]["applied"].clone();
    assert_eq!(applied(&a), json!(false));

    // Flux fails first: FluxReady=False with Flux's reason.
    flux_applies(&c.api, "shop", &commit, false);
    let f = c.wait_condition("shop", "FluxReady", "False");
    assert_eq!(f["reason"], "BuildFailed", "{f}");
    assert_eq!(applied(&a), json!(false));
    // The API (and the dashboard's health dot) say what Flux says.
    let flux = a.get("/v1/apps/shop").json()["flux"].clone();
    assert_eq!(
        (flux["ready"].clone(), flux["reason"].clone()),
        (json!(false), json!("BuildFailed")),
        "{flux}"
    );

    // Then applies the commit: FluxReady=True, the secret applied, on the API and the Secret.
    flux_applies(&c.api, "shop", &commit, true);
    let f = c.wait_condition("shop", "FluxReady", "True");
    assert!(f["message"].as_str().unwrap().contains(&commit), "{f}");
    assert_eq!(a.get("/v1/apps/shop").json()["flux"]["ready"], json!(true));
    c.wait_annotation("shop", "database", "applied", |a| {
        a.get("sealwright.dev/applied").map(String::as_str) == Some("true")
    });
    assert_eq!(applied(&a), json!(true));
    wait_until(30, "an Applied event", || {
        events_for(&c.api, "default", "shop")
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "Applied")
    });

    // A change is not applied until Flux applies a commit that contains it.
    c.api
        .merge(
            "secrets",
            "shop-platform",
            "database",
            json!({"data": {"password": "cDI="}}),
        )
        .unwrap();
    let ann = c.wait_annotation("shop", "database", "a new commit", |a| {
        a.get("sealwright.dev/commit") != Some(&commit)
            && a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
    });
    assert!(!ann.contains_key("sealwright.dev/applied"), "{ann:?}");
    assert_eq!(applied(&a), json!(false));
    a.stop();
}

#[test]
fn fake_apiserver_two_replicas_the_leader_killed_during_a_burst_of_writes() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    let mut b = c.replica("b");
    a.start(&[]);
    b.start_standby(&[]);
    c.register("shop", "acme", &[("dev", "shop-dev")]).unwrap();
    c.wait_condition("shop", "Ready", "True");
    assert!(
        !b.is_ready(),
        "the standby must not be ready while the other leads"
    );
    let lease = c
        .api
        .get("leases", OPERATOR_NS, "sealwright")
        .expect("the Lease");
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .ends_with(&a.pid().unwrap().to_string()));

    // A client behind the Service: each write goes to the ready replica, and counts as
    // acknowledged only on a 200 with its commit.
    let put = |servers: &[&Server], i: usize| -> (String, String) {
        let body = json!({"targetNamespaces": ["shop-dev"], "data": {"value": format!("burst-value-{i}")}}).to_string();
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            assert!(
                Instant::now() < deadline,
                "write {i} was never acknowledged"
            );
            for s in servers {
                if !s.is_ready() {
                    continue;
                }
                let path = format!("/v1/apps/shop/secrets/s{i}");
                if let Ok(r) = http::try_request(
                    &s.addr,
                    "PUT",
                    &path,
                    Some(server::ADMIN),
                    Some(body.as_bytes()),
                ) {
                    if r.status == 200 {
                        let j = r.json();
                        return (
                            format!("s{i}"),
                            j["commit"].as_str().expect("a commit").to_owned(),
                        );
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut acked = Vec::new();
    for i in 0..6 {
        acked.push(put(&[&a, &b], i));
    }
    a.kill();
    let killed = Instant::now();
    for i in 6..12 {
        acked.push(put(&[&b], i));
    }
    wait_until(30, "the standby to lead", || b.is_ready());
    let took = killed.elapsed();
    eprintln!("failover: the standby led {took:?} after the leader was killed");
    // The Lease runs 4 s; the standby tries every 4/3 s and takes it once it saw it unrenewed
    // for a whole duration on its own clock.
    assert!(
        took < Duration::from_secs(8),
        "the standby took {took:?} to lead"
    );

    // Every acknowledged write is in Git, once, in the commit it was acknowledged with.
    let repo = c.repo("shop-platform");
    for (name, commit) in &acked {
        let path = format!("secrets/shop-dev/{name}.sops.yaml");
        let ok = std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&repo)
            .args(["merge-base", "--is-ancestor", commit, "main"])
            .status()
            .unwrap();
        assert!(ok.success(), "{name}'s commit {commit} is not on main");
        let touched = git_in(&repo, &["log", "--format=%H", "main", "--", &path]);
        assert_eq!(
            touched.lines().collect::<Vec<_>>(),
            [commit.as_str()],
            "{name} was committed more than once or elsewhere"
        );
    }
    let applied = c.flux_check(&["shop"]);
    for (i, (name, _)) in acked.iter().enumerate() {
        let got = &applied[&("shop".to_string(), "shop-dev".to_string(), name.clone())]["value"];
        assert_eq!(got, format!("burst-value-{i}").as_bytes());
    }
    // The API's writes are the managed Secrets too, annotated by whichever replica leads.
    for (name, commit) in &acked {
        let ann = c.wait_annotation("shop", name, "committed", |a| {
            a.get("sealwright.dev/committed").map(String::as_str) == Some("true")
        });
        assert_eq!(&ann["sealwright.dev/commit"], commit);
    }
    let lease = c.api.get("leases", OPERATOR_NS, "sealwright").unwrap();
    assert!(lease["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .ends_with(&b.pid().unwrap().to_string()));
    assert_eq!(lease["spec"]["leaseTransitions"], 1);
    b.stop();
    // A clean stop gives the Lease up at once.
    let lease = c.api.get("leases", OPERATOR_NS, "sealwright").unwrap();
    assert!(
        lease["spec"]
            .get("holderIdentity")
            .is_none_or(|h| h.is_null()),
        "{lease}"
    );
}

#[test]
fn fake_apiserver_a_leader_that_cannot_renew_stops_writing_before_its_lease_expires() {
    let c = Cluster::new();
    let mut a = c.replica("a");
    a.start(&[]);
    c.register("shop", "acme", &[("dev", "shop-dev")]).unwrap();
    c.wait_condition("shop", "Ready", "True");
    // The API server stops answering for Leases: the leader cannot renew.
    c.api.set_failing("leases", true);
    let cut = Instant::now();
    let mut last_ack = None;
    let mut i = 0;
    while cut.elapsed() < Duration::from_secs(6) {
        let body =
            json!({"targetNamespaces": ["shop-dev"], "data": {"v": format!("{i}")}}).to_string();
        let path = format!("/v1/apps/shop/secrets/w{i}");
        if let Ok(r) = http::try_request(
            &a.addr,
            "PUT",
            &path,
            Some(server::ADMIN),
            Some(body.as_bytes()),
        ) {
            if r.status == 200 {
                last_ack = Some(cut.elapsed());
            }
        }
        i += 1;
        std::thread::sleep(Duration::from_millis(50));
    }
    let last_ack = last_ack.expect("writes went through while the lease held");
    // The Lease runs 4 s from its last renewal, which was before the cut: no write may be
    // acknowledged after it could have expired.
    assert!(
        last_ack < Duration::from_secs(4),
        "a write was acknowledged {last_ack:?} after renewals stopped"
    );
    wait_until(10, "the leader to exit", || {
        std::net::TcpStream::connect(&a.addr).is_err()
    });
    assert!(a.logs().contains("lost the lease"), "{}", a.logs());
    eprintln!("lease loss: last write acknowledged {last_ack:?} after renewals stopped (Lease 4 s, grace 1 s)");
    a.kill();
}
