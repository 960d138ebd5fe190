//! External secrets end to end: tenant defaults and app overrides merged per (provider, key) into
//! `app-<app>-external-secrets`, committed encrypted to local bare repos and read back by the real
//! sops (and, over HTTP against `sealwright serve`, by the whole Flux key chain with `kubectl
//! kustomize`); a tenant change reaches every app of the tenant in one commit per repo; deploys
//! are best effort (no set, an unavailable operator key) and say so in events; no value ever
//! reaches a log, an event, a response or a commit message.

use crate::common;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;

use common::reconciler::platform_repo;
use common::{commits, committed, decrypt_committed};
use sealwright::audit::EventLog;
use sealwright::clock::SystemClock;
use sealwright::external::Origin;
use sealwright::reconcile::{Actor, AppSpec, ExternalOutcome, ReconcileError, Reconciler, Source};
use sealwright::tokens::CredentialSettings;
use serde_json::{json, Value};

fn spec(name: &str, tenant: &str, envs: &[&str]) -> AppSpec {
    let envs: Vec<Value> = envs
        .iter()
        .map(|e| json!({"name": e, "namespace": format!("{name}-{e}")}))
        .collect();
    AppSpec::from_json(&json!({"name": name, "tenant": tenant, "environments": envs})).unwrap()
}

/// A reconciler on local bare repos under `dir` (a second call is a restart), credentials off.
async fn start(dir: &Path, events: Arc<EventLog>) -> Reconciler {
    let off = CredentialSettings {
        enabled: false,
        ..CredentialSettings::default()
    };
    let r = common::reconciler::local(dir, off, Arc::new(SystemClock), events);
    r.load().await.unwrap();
    r
}

fn path(app: &str, ns: &str) -> String {
    format!("secrets/{ns}/app-{app}-external-secrets.sops.yaml")
}

/// The committed external-secrets Secret of `app` in `ns`, as the real sops decrypts it: each
/// key with its value and its origin (from the annotation).
fn merged(dir: &Path, app: &str, ns: &str) -> BTreeMap<String, (String, String)> {
    let doc = decrypt_committed(dir, app, &path(app, ns));
    let s = |p: &[&str]| common::flux::s(&doc, p).map(str::to_owned);
    assert_eq!(
        s(&["metadata", "name"]).as_deref(),
        Some(format!("app-{app}-external-secrets").as_str())
    );
    assert_eq!(s(&["metadata", "namespace"]).as_deref(), Some(ns));
    assert_eq!(s(&["type"]).as_deref(), Some("Opaque"));
    let origins: BTreeMap<String, String> =
        serde_json::from_str(&s(&["metadata", "annotations", "sealwright.dev/origins"]).unwrap())
            .unwrap();
    let data = doc.get("data").unwrap().as_map().unwrap();
    let keys: Vec<String> = data.pairs().map(|(k, _)| k.to_owned()).collect();
    assert_eq!(
        keys,
        origins.keys().cloned().collect::<Vec<_>>(),
        "the annotation names exactly the keys"
    );
    keys.into_iter()
        .map(|k| {
            let v = String::from_utf8(common::flux::data_entry(&doc, &k)).unwrap();
            let o = origins[&k].clone();
            (k, (v, o))
        })
        .collect()
}

fn layer(pairs: &[(&str, &str)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect(),
    )
}

type Layer<'a> = &'a [(&'a str, &'a [(&'a str, &'a str)])];

/// (what, tenant layer, app layer, the Secret as (key, value, origin)).
type Row<'a> = (
    &'a str,
    Layer<'a>,
    Layer<'a>,
    &'a [(&'a str, &'a str, &'a str)],
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn precedence_table_through_real_commits_read_by_the_real_sops() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let r = start(dir, Arc::new(EventLog::in_memory())).await;
    let admin = Actor::new("admin");
    let rows: &[Row] = &[
        (
            "tenant defaults only",
            &[(
                "openai",
                &[("OPENAI_API_KEY", "sk-t-1"), ("OPENAI_ORG", "org-t")],
            )],
            &[],
            &[
                ("OPENAI_API_KEY", "sk-t-1", "tenant/openai"),
                ("OPENAI_ORG", "org-t", "tenant/openai"),
            ],
        ),
        (
            "app overrides only",
            &[],
            &[("stripe", &[("STRIPE_KEY", "rk-a-1")])],
            &[("STRIPE_KEY", "rk-a-1", "app/stripe")],
        ),
        (
            "the app's value wins for its key; the tenant's other keys stay",
            &[(
                "openai",
                &[("OPENAI_API_KEY", "sk-t-2"), ("OPENAI_ORG", "org-t")],
            )],
            &[("openai", &[("OPENAI_API_KEY", "sk-a-2")])],
            &[
                ("OPENAI_API_KEY", "sk-a-2", "app/openai"),
                ("OPENAI_ORG", "org-t", "tenant/openai"),
            ],
        ),
        (
            "an app key the tenant lacks joins the tenant's",
            &[("openai", &[("OPENAI_API_KEY", "sk-t-3")])],
            &[("openai", &[("OPENAI_BASE_URL", "https://proxy.internal")])],
            &[
                ("OPENAI_API_KEY", "sk-t-3", "tenant/openai"),
                ("OPENAI_BASE_URL", "https://proxy.internal", "app/openai"),
            ],
        ),
        (
            "providers side by side, one overridden",
            &[
                ("openai", &[("OPENAI_API_KEY", "sk-t-4")]),
                ("stripe", &[("STRIPE_KEY", "rk-t-4")]),
            ],
            &[("stripe", &[("STRIPE_KEY", "rk-a-4")])],
            &[
                ("OPENAI_API_KEY", "sk-t-4", "tenant/openai"),
                ("STRIPE_KEY", "rk-a-4", "app/stripe"),
            ],
        ),
    ];
    for (i, (what, tenant, app, want)) in rows.iter().enumerate() {
        let (t, a) = (format!("tenant{i}"), format!("app{i}"));
        r.register_app(&admin, spec(&a, &t, &["prod", "dev"]), Source::Api)
            .await
            .unwrap();
        for (provider, pairs) in tenant.iter() {
            r.put_external(&admin, Origin::Tenant, &t, provider, &layer(pairs))
                .await
                .unwrap();
        }
        for (provider, pairs) in app.iter() {
            r.put_external(&admin, Origin::App, &a, provider, &layer(pairs))
                .await
                .unwrap();
        }
        let deploy = r
            .deploy(&admin, &a, &json!({"tenant_id": t, "app_id": a}))
            .await
            .unwrap();
        let ExternalOutcome::Injected { origins } = &deploy.outcome else {
            panic!("{what}: {:?}", deploy.outcome);
        };
        assert_eq!(origins.len(), want.len(), "{what}");
        let head = common::git_in(&platform_repo(dir, &a), &["rev-parse", "main"]);
        assert_eq!(deploy.ack.commit.as_deref(), Some(head.trim()), "{what}");
        let want: BTreeMap<String, (String, String)> = want
            .iter()
            .map(|(k, v, o)| (k.to_string(), (v.to_string(), o.to_string())))
            .collect();
        for ns in [format!("{a}-prod"), format!("{a}-dev")] {
            assert_eq!(merged(dir, &a, &ns), want, "{what} in {ns}");
        }
        // The API's view agrees, value-free.
        let view = sealwright::api::views::external(&r.app_external(&a).unwrap(), None);
        for (k, (_, o)) in &want {
            let origin = o.split('/').next().unwrap();
            assert_eq!(view["origins"][k], json!(origin), "{what}: {view}");
        }
    }
    // With none at all there is no file, and the deploy still succeeds.
    r.register_app(&admin, spec("bare", "tenant9", &["prod"]), Source::Api)
        .await
        .unwrap();
    let d = r
        .deploy(&admin, "bare", &json!({"tenant_id": "tenant9"}))
        .await
        .unwrap();
    assert_eq!(d.outcome, ExternalOutcome::Empty);
    assert!(committed(dir, "bare", &path("bare", "bare-prod")).is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenant_change_reaches_every_app_of_the_tenant_in_one_commit_each_and_a_restart_commits_nothing(
) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let events = Arc::new(EventLog::in_memory());
    let r = start(dir, events.clone()).await;
    let admin = Actor::new("admin");
    for (app, tenant, envs) in [
        ("shop", "acme", &["prod", "staging"][..]),
        ("blog", "acme", &["prod"]),
        ("other", "globex", &["prod"]),
    ] {
        r.register_app(&admin, spec(app, tenant, envs), Source::Api)
            .await
            .unwrap();
    }
    let count = |app: &str| commits(&platform_repo(dir, app));
    let before: Vec<usize> = ["shop", "blog", "other"].map(count).to_vec();

    let w = r
        .put_external(
            &admin,
            Origin::Tenant,
            "acme",
            "openai",
            &json!({"OPENAI_API_KEY": "sk-acme-1"}),
        )
        .await
        .unwrap();
    assert!(w.commit.is_some(), "stored in the state repo first");
    assert_eq!(w.apps.keys().collect::<Vec<_>>(), ["blog", "shop"]);
    for (app, ack) in &w.apps {
        let ack = ack.as_ref().unwrap();
        assert!(ack.committed, "{app}");
        let head = common::git_in(&platform_repo(dir, app), &["rev-parse", "main"]);
        assert_eq!(ack.commit.as_deref(), Some(head.trim()));
    }
    let now: Vec<usize> = ["shop", "blog", "other"].map(count).to_vec();
    assert_eq!(
        now,
        [before[0] + 1, before[1] + 1, before[2]],
        "one commit per repo of the tenant"
    );
    let one = |v: &str, o: &str| (v.to_owned(), o.to_owned());
    for (app, ns) in [
        ("shop", "shop-prod"),
        ("shop", "shop-staging"),
        ("blog", "blog-prod"),
    ] {
        assert_eq!(
            merged(dir, app, ns),
            BTreeMap::from([("OPENAI_API_KEY".into(), one("sk-acme-1", "tenant/openai"))])
        );
    }
    assert!(committed(dir, "other", &path("other", "other-prod")).is_none());

    // An override reaches only its app; then a tenant change reaches both again, in one commit
    // each, without touching the override.
    r.put_external(
        &admin,
        Origin::App,
        "shop",
        "openai",
        &json!({"OPENAI_API_KEY": "sk-shop-2"}),
    )
    .await
    .unwrap();
    assert_eq!(["shop", "blog"].map(count), [before[0] + 2, before[1] + 1]);
    r.put_external(
        &admin,
        Origin::Tenant,
        "acme",
        "openai",
        &json!({"OPENAI_API_KEY": "sk-acme-3", "OPENAI_ORG": "org-acme"}),
    )
    .await
    .unwrap();
    assert_eq!(["shop", "blog"].map(count), [before[0] + 3, before[1] + 2]);
    assert_eq!(
        merged(dir, "shop", "shop-staging"),
        BTreeMap::from([
            ("OPENAI_API_KEY".into(), one("sk-shop-2", "app/openai")),
            ("OPENAI_ORG".into(), one("org-acme", "tenant/openai")),
        ])
    );
    assert_eq!(
        merged(dir, "blog", "blog-prod"),
        BTreeMap::from([
            ("OPENAI_API_KEY".into(), one("sk-acme-3", "tenant/openai")),
            ("OPENAI_ORG".into(), one("org-acme", "tenant/openai")),
        ])
    );

    // Two providers may not set one key: refused, nothing stored.
    let clash = r
        .put_external(
            &admin,
            Origin::App,
            "blog",
            "azure",
            &json!({"OPENAI_API_KEY": "x"}),
        )
        .await
        .unwrap_err();
    assert!(matches!(clash, ReconcileError::Conflict(_)), "{clash}");
    assert!(clash.to_string().contains("OPENAI_API_KEY"), "{clash}");
    assert!(r.app_external("blog").unwrap().effective.len() == 2);

    // A round finds nothing to do, and neither does a restart.
    let report = r.reconcile_all(true).await;
    assert_eq!((report.commits, report.failed.len()), (0, 0), "{report:?}");
    drop(r);
    let heads: Vec<usize> = ["shop", "blog", "other"].map(count).to_vec();
    let state = commits(&dir.join("state.git"));
    // (The test set-up gives each start a new cluster key, so only the Flux repo may change.)
    let r = start(dir, events.clone()).await;
    let report = r.reconcile_all(true).await;
    assert!(report.failed.is_empty(), "{report:?}");
    assert_eq!(["shop", "blog", "other"].map(count).to_vec(), heads);
    assert_eq!(commits(&dir.join("state.git")), state);
    let view = r.app_external("shop").unwrap();
    assert_eq!(
        view.effective.len(),
        2,
        "the layers came back from the state repo"
    );

    // Removing the tenant's provider leaves shop its override and blog no file at all.
    r.delete_external(&admin, Origin::Tenant, "acme", "openai")
        .await
        .unwrap();
    assert_eq!(
        merged(dir, "shop", "shop-prod"),
        BTreeMap::from([("OPENAI_API_KEY".into(), one("sk-shop-2", "app/openai"))])
    );
    assert!(committed(dir, "blog", &path("blog", "blog-prod")).is_none());
    r.delete_external(&admin, Origin::App, "shop", "openai")
        .await
        .unwrap();
    for ns in ["shop-prod", "shop-staging"] {
        assert!(committed(dir, "shop", &path("shop", ns)).is_none());
    }
    let missing = r
        .delete_external(&admin, Origin::App, "shop", "openai")
        .await
        .unwrap_err();
    assert!(
        matches!(missing, ReconcileError::NotFound { .. }),
        "{missing}"
    );

    // Unregistering an app removes its overrides in the same state commit: a later app of that
    // name starts with none.
    r.put_external(
        &admin,
        Origin::App,
        "blog",
        "stripe",
        &json!({"STRIPE_KEY": "rk-blog-4"}),
    )
    .await
    .unwrap();
    let state = dir.join("state.git");
    let stored = "external-secrets/apps/blog/stripe.sops.yaml";
    let files = || common::git_in(&state, &["ls-tree", "-r", "--name-only", "main"]);
    assert!(files().contains(stored));
    let before = commits(&state);
    r.delete_app(&admin, "blog", false).await.unwrap();
    assert_eq!(commits(&state), before + 1);
    assert!(!files().contains(stored) && !files().contains("apps/blog.yaml"));
    r.register_app(&admin, spec("blog", "acme", &["prod"]), Source::Api)
        .await
        .unwrap();
    assert!(r.app_external("blog").unwrap().effective.is_empty());

    // Values are in the encrypted files only: not in any commit message, not in clear in the
    // state repo's history, not in an event.
    let values = [
        "sk-acme-1",
        "sk-shop-2",
        "sk-acme-3",
        "org-acme",
        "rk-blog-4",
    ];
    let mut texts = vec![common::git_in(
        &dir.join("state.git"),
        &["log", "-p", "main"],
    )];
    for app in ["shop", "blog", "other"] {
        texts.push(common::git_in(
            &platform_repo(dir, app),
            &["log", "-p", "main"],
        ));
    }
    texts.push(serde_json::to_string(&events.list(0, 10_000, &|_| true)).unwrap());
    for text in &texts {
        for v in values {
            assert!(!text.contains(v), "{v} in clear");
        }
    }
    assert!(
        texts[1].contains("external secrets: 1 key in app-shop-external-secrets"),
        "{}",
        texts[1]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploys_are_best_effort_and_say_why_in_events() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let events = Arc::new(EventLog::in_memory());
    let r = start(dir, events.clone()).await;
    let admin = Actor::new("admin");
    r.register_app(&admin, spec("shop", "acme", &["prod"]), Source::Api)
        .await
        .unwrap();
    let last = |action: &str| {
        events
            .list(0, 10_000, &|e| e.action == action)
            .pop()
            .unwrap_or_else(|| panic!("no {action} event"))
    };

    // The contract: tenant_id required and the app's; the app must exist.
    for (body, field) in [
        (json!({"app_id": "shop"}), "tenant_id"),
        (json!({"tenant_id": "", "app_id": "shop"}), "tenant_id"),
        (json!({"tenant_id": "acme", "app_id": "blog"}), "app_id"),
    ] {
        match r.deploy(&admin, "shop", &body).await {
            Err(ReconcileError::Invalid(i)) => assert_eq!(i.field, field, "{body}"),
            other => panic!("{body}: {other:?}"),
        }
    }
    assert!(matches!(
        r.deploy(&admin, "shop", &json!({"tenant_id": "globex"}))
            .await,
        Err(ReconcileError::Conflict(_))
    ));
    assert!(matches!(
        r.deploy(&admin, "nope", &json!({"tenant_id": "acme"}))
            .await,
        Err(ReconcileError::NotFound { .. })
    ));

    // Nothing to inject: the deploy succeeds and says so.
    let d = r
        .deploy(
            &admin,
            "shop",
            &json!({"tenant_id": "acme", "app_id": "shop", "image_ref": "ghcr.io/acme/shop:1"}),
        )
        .await
        .unwrap();
    assert_eq!(d.outcome, ExternalOutcome::Empty);
    assert!(d.ack.commit.is_some());
    let ev = last("external_secret.skipped");
    assert_eq!(ev.app.as_deref(), Some("shop"));
    assert!(
        ev.detail
            .as_deref()
            .unwrap()
            .contains("no external secrets"),
        "{ev:?}"
    );

    r.put_external(
        &admin,
        Origin::Tenant,
        "acme",
        "openai",
        &json!({"OPENAI_API_KEY": "sk-best-effort-1"}),
    )
    .await
    .unwrap();
    let file = path("shop", "shop-prod");
    let before = committed(dir, "shop", &file).unwrap();

    // The operator key becomes unusable (its file readable by others: the key store refuses it).
    assert!(r.check_external().unwrap().contains("1 provider file,"));
    let key = dir.join("keys/_operator.agekey");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let doctor = r.check_external().unwrap_err().to_string();
    assert!(doctor.contains("operator key"), "{doctor}");
    let d = r
        .deploy(&admin, "shop", &json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    let ExternalOutcome::Unavailable { reason } = &d.outcome else {
        panic!("{:?}", d.outcome);
    };
    assert!(reason.contains("operator key"), "{reason}");
    let ev = last("external_secret.skipped");
    assert!(
        ev.detail.as_deref().unwrap().contains("operator key"),
        "{ev:?}"
    );
    assert_eq!(
        committed(dir, "shop", &file).unwrap(),
        before,
        "kept as it was"
    );
    // Other writes go on meanwhile, and keep the file; a new value cannot be stored, and what is
    // stored stays.
    r.put_secret(
        &admin,
        "shop",
        "db",
        &json!({"targetNamespaces": ["shop-prod"], "data": {"password": "pw"}}),
    )
    .await
    .unwrap();
    assert_eq!(committed(dir, "shop", &file).unwrap(), before);
    let refused = r
        .put_external(
            &admin,
            Origin::Tenant,
            "acme",
            "openai",
            &json!({"OPENAI_API_KEY": "sk-lost"}),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(refused, ReconcileError::Unavailable(_)),
        "{refused}"
    );
    assert!(refused.to_string().contains("operator key"), "{refused}");

    // Back: the next deploy injects, and the event counts the keys.
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = r
        .deploy(&admin, "shop", &json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    assert!(
        matches!(d.outcome, ExternalOutcome::Injected { .. }),
        "{:?}",
        d.outcome
    );
    let ev = last("external_secret.injected");
    assert_eq!(ev.app.as_deref(), Some("shop"));
    assert_eq!(ev.key_count, Some(1));
    assert_eq!(ev.keys, ["OPENAI_API_KEY"]);
    assert_eq!(
        merged(dir, "shop", "shop-prod")["OPENAI_API_KEY"].0,
        "sk-best-effort-1"
    );
    // A managed secret may not take the name.
    let taken = r
        .put_secret(
            &admin,
            "shop",
            "ext",
            &json!({"targetName": "app-shop-external-secrets", "targetNamespaces": ["shop-prod"], "data": {"k": "v"}}),
        )
        .await
        .unwrap_err();
    assert!(taken.to_string().contains("reserved"), "{taken}");

    // A replaced operator key (the file lost, so a new one is made): nothing is sealed to it
    // while the stored layers need the old one, and deploys say which key is missing.
    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let refused = r
        .put_external(
            &admin,
            Origin::App,
            "shop",
            "stripe",
            &json!({"STRIPE_KEY": "rk-split"}),
        )
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("not the key the stored external secrets are encrypted to"),
        "{refused}"
    );
    let d = r
        .deploy(&admin, "shop", &json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    assert!(
        matches!(&d.outcome, ExternalOutcome::Unavailable { reason } if reason.contains("restore the operator key")),
        "{:?}",
        d.outcome
    );
    std::fs::write(&key, &saved).unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    // After a restart nothing is known about the repo's file; the last provider removed while
    // the operator key is unusable (a removal needs no key) still removes it.
    drop(r);
    let r = start(dir, events.clone()).await;
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    // (A first round with the key unusable keeps the file and learns nothing about it.)
    r.reconcile_all(true).await;
    assert_eq!(committed(dir, "shop", &file).unwrap(), before);
    r.delete_external(&admin, Origin::Tenant, "acme", "openai")
        .await
        .unwrap();
    assert!(
        committed(dir, "shop", &file).is_none(),
        "the stale file is gone"
    );
    let log = common::git_in(
        &platform_repo(dir, "shop"),
        &["log", "-1", "--format=%B", "main"],
    );
    assert!(log.contains("app-shop-external-secrets removed"), "{log}");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();

    let all = serde_json::to_string(&events.list(0, 10_000, &|_| true)).unwrap();
    for v in ["sk-best-effort-1", "sk-lost", "rk-split"] {
        assert!(!all.contains(v), "{v}");
    }
}

/// Every value the HTTP test writes: none may appear anywhere but in the cluster.
const HTTP_VALUES: &[&str] = &[
    "sk-acme-7c1e55aa",
    "org-acme-0f3b",
    "sk-shop-92d4e601",
    "rk-shop-5a5a5a5a",
];

#[test]
fn over_http_the_flux_key_chain_decrypts_the_merged_secret_and_no_value_leaks() {
    use common::server::{checkout, Server, ADMIN};
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(
        &tmp.path().join("srv"),
        "cluster:\n  name: ext\nhost:\n  kind: local\n  owner: platform\n",
    );
    server.start(&[]);
    let addr = server.addr.clone();
    let mut bodies: Vec<String> = Vec::new();
    let mut call = |method: &str, path: &str, body: Option<Value>, token: &str| {
        let r = match &body {
            Some(b) => common::http::send(&addr, method, path, Some(token), b),
            None => common::http::request(&addr, method, path, Some(token), None),
        };
        bodies.push(r.text());
        (r.status, r.json())
    };
    let [v1, v2, v3, v4] = HTTP_VALUES else {
        unreachable!()
    };
    for (name, envs) in [("shop", &["staging", "prod"][..]), ("blog", &["prod"])] {
        let envs: Vec<Value> = envs
            .iter()
            .map(|e| json!({"name": e, "namespace": format!("{name}-{e}")}))
            .collect();
        let (status, _) = call(
            "POST",
            "/v1/apps",
            Some(json!({"name": name, "tenant": "acme", "environments": envs})),
            ADMIN,
        );
        assert_eq!(status, 201);
    }
    let (status, w) = call(
        "PUT",
        "/v1/tenants/acme/external-secrets/openai",
        Some(json!({"OPENAI_API_KEY": v1, "OPENAI_ORG": v2})),
        ADMIN,
    );
    assert_eq!(status, 200, "{w}");
    assert_eq!(w["keys"], json!(["OPENAI_API_KEY", "OPENAI_ORG"]));
    let apps: Vec<&str> = w["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            assert_eq!(a["committed"], json!(true), "{a}");
            a["app"].as_str().unwrap()
        })
        .collect();
    assert_eq!(apps, ["blog", "shop"]);
    for (provider, body) in [
        ("openai", json!({"OPENAI_API_KEY": v3})),
        ("stripe", json!({"STRIPE_KEY": v4})),
    ] {
        let (status, w) = call(
            "PUT",
            &format!("/v1/apps/shop/external-secrets/{provider}"),
            Some(body),
            ADMIN,
        );
        assert_eq!(status, 200, "{w}");
    }

    // Reads: providers, keys and origins.
    let (_, all) = call("GET", "/v1/apps/shop/external-secrets", None, ADMIN);
    assert_eq!(
        all["origins"],
        json!({"OPENAI_API_KEY": "app", "OPENAI_ORG": "tenant", "STRIPE_KEY": "app"}),
        "{all}"
    );
    assert_eq!(all["secretName"], "app-shop-external-secrets");
    assert_eq!(all["providers"].as_array().unwrap().len(), 2);
    let (status, one) = call("GET", "/v1/apps/shop/external-secrets/openai", None, ADMIN);
    assert_eq!(status, 200);
    assert_eq!(one["keys"], json!(["OPENAI_API_KEY", "OPENAI_ORG"]));
    assert_eq!(one["origins"]["OPENAI_ORG"], "tenant");
    let (status, _) = call("GET", "/v1/apps/blog/external-secrets/stripe", None, ADMIN);
    assert_eq!(status, 404);
    let (_, t) = call("GET", "/v1/tenants/acme/external-secrets", None, ADMIN);
    assert_eq!(t["providers"][0]["provider"], "openai", "{t}");
    assert_eq!(t["apps"], json!(["blog", "shop"]));
    let (status, _) = call(
        "GET",
        "/v1/tenants/acme/external-secrets/openai",
        None,
        ADMIN,
    );
    assert_eq!(status, 200);

    // Bad input names the field; a clash and a foreign tenant are refused.
    for (path, body, field) in [
        (
            "/v1/tenants/acme/external-secrets/openai",
            json!({"bad key": "x"}),
            "bad key",
        ),
        (
            "/v1/tenants/acme/external-secrets/openai",
            json!({"K": 1}),
            "K",
        ),
        (
            "/v1/tenants/acme/external-secrets/openai",
            json!({}),
            "body",
        ),
        (
            "/v1/tenants/Acme/external-secrets/openai",
            json!({"K": "v"}),
            "tenant",
        ),
        (
            "/v1/apps/shop/external-secrets/Open_AI",
            json!({"K": "v"}),
            "provider",
        ),
    ] {
        let (status, e) = call("PUT", path, Some(body), ADMIN);
        assert_eq!(
            (status, e["field"].as_str()),
            (422, Some(field)),
            "{path}: {e}"
        );
    }
    let (status, e) = call(
        "PUT",
        "/v1/apps/blog/external-secrets/azure",
        Some(json!({"OPENAI_ORG": "x"})),
        ADMIN,
    );
    assert_eq!(status, 409, "{e}");
    let (_, key) = call("POST", "/v1/tenants/globex/api-keys", None, ADMIN);
    let globex = key["key"].as_str().unwrap().to_owned();
    for (method, path) in [
        ("GET", "/v1/tenants/acme/external-secrets"),
        ("GET", "/v1/apps/shop/external-secrets"),
        ("DELETE", "/v1/tenants/acme/external-secrets/openai"),
    ] {
        let (status, _) = call(method, path, None, &globex);
        assert_eq!(status, 403, "{method} {path}");
    }
    let (_, key) = call("POST", "/v1/tenants/acme/api-keys", None, ADMIN);
    let acme = key["key"].as_str().unwrap().to_owned();
    let (status, _) = call("GET", "/v1/apps/shop/external-secrets", None, &acme);
    assert_eq!(status, 200);

    // The deploy contract: 422 naming tenant_id, 409 for another tenant.
    for body in [
        Some(json!({"app_id": "shop"})),
        Some(json!({"tenant_id": "", "app_id": "shop"})),
        None,
    ] {
        let (status, e) = call("POST", "/v1/apps/shop/deploys", body.clone(), ADMIN);
        assert_eq!(
            (status, e["field"].as_str()),
            (422, Some("tenant_id")),
            "{body:?}: {e}"
        );
    }
    let (status, e) = call(
        "POST",
        "/v1/apps/shop/deploys",
        Some(json!({"tenant_id": "globex", "app_id": "shop"})),
        ADMIN,
    );
    assert_eq!(status, 409, "{e}");
    let (status, d) = call(
        "POST",
        "/v1/apps/shop/deploys",
        Some(
            json!({"tenant_id": "acme", "app_id": "shop", "image_ref": "ghcr.io/acme/shop:2.0.1"}),
        ),
        &acme,
    );
    assert_eq!(status, 200, "{d}");
    let head = common::git_in(
        &server.repo("platform/shop-platform"),
        &["rev-parse", "main"],
    );
    assert_eq!(d["commit"].as_str(), Some(head.trim()), "{d}");
    assert_eq!(d["externalSecrets"]["status"], "injected");
    assert_eq!(d["externalSecrets"]["keyCount"], 3);
    let (_, events) = call("GET", "/v1/events?app=shop", None, ADMIN);
    let injected = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .rfind(|e| e["action"] == "external_secret.injected")
        .unwrap_or_else(|| panic!("{events}"))
        .clone();
    assert_eq!(injected["app"], "shop");
    assert_eq!(injected["keyCount"], 3);
    assert_eq!(injected["commit"].as_str(), Some(head.trim()));

    // The cluster, played: Flux decrypts the app key with the cluster key, then the Secret.
    let work = tmp.path().join("check");
    let flux = checkout(&server.repo("platform/flux"), &work.join("flux"));
    let platform = BTreeMap::from([
        (
            "shop".to_string(),
            checkout(&server.repo("platform/shop-platform"), &work.join("shop")),
        ),
        (
            "blog".to_string(),
            checkout(&server.repo("platform/blog-platform"), &work.join("blog")),
        ),
    ]);
    let applied =
        common::flux::apply_like_flux(&flux, &platform, &server.cluster_key(), &work.join("sim"));
    let want = |pairs: &[(&str, &str)]| -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    };
    for ns in ["shop-staging", "shop-prod"] {
        let key = (
            "shop".to_string(),
            ns.to_string(),
            "app-shop-external-secrets".to_string(),
        );
        assert_eq!(
            applied[&key],
            want(&[
                ("OPENAI_API_KEY", v3),
                ("OPENAI_ORG", v2),
                ("STRIPE_KEY", v4)
            ]),
            "{ns}"
        );
    }
    let key = (
        "blog".to_string(),
        "blog-prod".to_string(),
        "app-blog-external-secrets".to_string(),
    );
    assert_eq!(
        applied[&key],
        want(&[("OPENAI_API_KEY", v1), ("OPENAI_ORG", v2)])
    );

    // No value anywhere else: logs, responses, events, commit messages, the state repo.
    server.stop();
    let mut texts = vec![
        ("logs".to_string(), server.logs()),
        ("responses".to_string(), bodies.join("\n")),
    ];
    for repo in [
        "platform/shop-platform",
        "platform/blog-platform",
        "platform/flux",
    ] {
        texts.push((
            repo.to_string(),
            common::git_in(&server.repo(repo), &["log", "--format=%B", "main"]),
        ));
    }
    let state = server.data.join("state.git");
    let state_log = common::git_in(&state, &["log", "-p", "main"]);
    assert!(state_log.contains("external-secrets/tenants/acme/openai.sops.yaml"));
    texts.push(("the state repo".into(), state_log));
    for (what, text) in &texts {
        for v in HTTP_VALUES {
            assert!(!text.contains(v), "{v} appears in {what}");
        }
    }
}

/// A pull-request app on the FAKE GitHub API (`common::fake_github`, schema-checked, over real
/// bare repositories served by a real smart-HTTP server): external secrets and deployment
/// credentials ride in the pull request, reach `main` with its merge, and are then current
/// without another commit or pull request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fake_github_pull_request_apps_get_external_secrets_and_credentials_through_the_pull_request(
) {
    use common::fake_github::FakeGitHub;
    use sealwright::host::{GitHost, RepoRef};
    use sealwright::reconcile::{Access, FluxUrl};
    use secrecy::SecretString;
    const TOKEN: &str = "ghp_fake0token0external0secrets";
    let tmp = tempfile::tempdir().unwrap();
    let repos = tmp.path().join("github");
    std::fs::create_dir_all(&repos).unwrap();
    let (_git, fake, github) = FakeGitHub::over_http(&repos, TOKEN);
    let github = Arc::new(github);
    let credentials = CredentialSettings {
        api_url: "https://sealwright.test".into(),
        ..CredentialSettings::default()
    };
    let r = common::reconciler::on_host(
        tmp.path(),
        github.clone(),
        Access::Token(SecretString::from(TOKEN.to_owned())),
        FluxUrl::Template("https://git.example.invalid/{owner}/{name}.git".into()),
        credentials,
        Arc::new(SystemClock),
        Arc::new(EventLog::in_memory()),
    );
    r.load().await.unwrap();
    let admin = Actor::new("admin");
    let app = AppSpec::from_json(&json!({"name": "crm", "tenant": "acme",
        "delivery": "pull-request", "environments": [{"name": "prod", "namespace": "crm-prod"}]}))
    .unwrap();
    assert!(
        r.register_app(&admin, app, Source::Api)
            .await
            .unwrap()
            .ready
    );
    let bare = repos.join("platform/crm-platform.git");
    let file = path("crm", "crm-prod");
    let on = |rev: &str, path: &str| {
        std::process::Command::new("git")
            .arg("--git-dir")
            .arg(&bare)
            .args(["cat-file", "-e", &format!("{rev}:{path}")])
            .status()
            .unwrap()
            .success()
    };

    let w = r
        .put_external(
            &admin,
            Origin::Tenant,
            "acme",
            "openai",
            &json!({"OPENAI_API_KEY": "sk-reviewed-1"}),
        )
        .await
        .unwrap();
    let ack = w.apps["crm"].as_ref().unwrap();
    assert!(!ack.committed, "proposed, not committed: {ack:?}");
    let url = ack.pull_request.clone().unwrap();
    const WEB: &str = "0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f";
    let (_, dep) = r
        .put_deployment(
            &admin,
            WEB,
            &json!({"name": "web", "app": "crm", "environment": "prod", "clusterId": "c1", "namespace": "crm-prod"}),
            Source::Api,
        )
        .await
        .unwrap();
    assert_eq!(
        dep.pull_request.as_deref(),
        Some(url.as_str()),
        "the same pull request"
    );
    assert!(dep.commit.is_none());
    let d = r
        .deploy(&admin, "crm", &json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    assert_eq!(d.ack.pull_request.as_deref(), Some(url.as_str()));
    assert!(matches!(d.outcome, ExternalOutcome::Injected { .. }));
    assert!(!on("main", &file), "not on main before the merge");

    // A reviewer merges; the poll settles it.
    let repo = RepoRef::parse("platform/crm-platform").unwrap();
    let number: u64 = url.rsplit('/').next().unwrap().parse().unwrap();
    let pr = github.pull_request(&repo, number).await.unwrap();
    let merge = github
        .merge_pull_request(&repo, number, &pr.head_sha, "merge")
        .await
        .unwrap();
    r.poll_pull_requests().await;
    assert!(on("main", &file));
    assert!(on("main", "secrets/crm-prod/web-credentials.sops.yaml"));
    let head = common::git_in(&bare, &["rev-parse", "main"]);
    assert_eq!(head.trim(), merge);
    let dep = r.deployment(WEB).unwrap();
    assert_eq!(dep.commit.as_deref(), Some(merge.as_str()), "{dep:?}");

    // What the merge holds is current: another round proposes nothing and commits nothing.
    let d = r
        .deploy(&admin, "crm", &json!({"tenant_id": "acme"}))
        .await
        .unwrap();
    assert!(d.ack.committed, "{:?}", d.ack);
    assert_eq!(d.ack.commit.as_deref(), Some(merge.as_str()));
    assert!(r.app("crm").unwrap().pull_request.is_none());
    assert!(github
        .open_pull_requests(&repo, "main")
        .await
        .unwrap()
        .is_empty());
    // The merged Secret, read back with the app key by the real sops.
    let enc = common::git_in(&bare, &["show", &format!("main:{file}")]);
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("x.sops.yaml"), enc).unwrap();
    let plain = common::ok(common::flux::sops_with(
        work.path(),
        &tmp.path().join("keys/crm.agekey"),
        &["decrypt", "x.sops.yaml"],
    ));
    let doc = common::flux::docs(&plain).remove(0);
    assert_eq!(
        common::flux::data_entry(&doc, "OPENAI_API_KEY"),
        b"sk-reviewed-1"
    );
    assert_eq!(fake.violations(), Vec::<String>::new());
}

#[test]
fn the_cli_sets_defaults_and_overrides_lists_them_and_deploys() {
    use common::server::{Server, ADMIN};
    let tmp = tempfile::tempdir().unwrap();
    let mut server = Server::new(
        &tmp.path().join("srv"),
        "cluster:\n  name: cli\nhost:\n  kind: local\n  owner: platform\n",
    );
    server.start(&[]);
    let url = format!("http://{}", server.addr);
    let work = tmp.path().join("cli");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("stripe.key"), "rk-cli-file-31").unwrap();
    let cli = |args: &[&str]| {
        let mut c = common::clean(&common::sealwright_bin(), &work);
        c.env("SEALWRIGHT_SERVER", &url)
            .env("SEALWRIGHT_TOKEN", ADMIN)
            .env("OPENAI_FROM_ENV", "sk-cli-env-27")
            .args(args);
        common::run(c)
    };
    let json_of = |out: std::process::Output| -> Value {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).unwrap()
    };
    json_of(cli(&[
        "app",
        "create",
        "shop",
        "--tenant",
        "acme",
        "--env",
        "prod=shop-prod",
    ]));
    let w = json_of(cli(&[
        "external-secret",
        "put",
        "--tenant",
        "acme",
        "openai",
        "--from-env",
        "OPENAI_API_KEY=OPENAI_FROM_ENV",
    ]));
    assert_eq!(w["apps"][0]["committed"], json!(true), "{w}");
    json_of(cli(&[
        "external-secret",
        "put",
        "--app",
        "shop",
        "stripe",
        "--from-file",
        "STRIPE_KEY=stripe.key",
    ]));
    let listed = json_of(cli(&["external-secret", "list", "--app", "shop"]));
    assert_eq!(
        listed["origins"],
        json!({"OPENAI_API_KEY": "tenant", "STRIPE_KEY": "app"}),
        "{listed}"
    );
    let one = json_of(cli(&[
        "external-secret",
        "get",
        "--tenant",
        "acme",
        "openai",
    ]));
    assert_eq!(one["keys"], json!(["OPENAI_API_KEY"]));
    let d = json_of(cli(&[
        "app",
        "deploy",
        "shop",
        "--tenant",
        "acme",
        "--image-ref",
        "ghcr.io/acme/shop:3",
    ]));
    assert_eq!(d["externalSecrets"]["keyCount"], 2, "{d}");
    // Exactly one of --tenant and --app; a wrong tenant is the server's 409, exit 1.
    let both = cli(&[
        "external-secret",
        "list",
        "--tenant",
        "acme",
        "--app",
        "shop",
    ]);
    assert!(!both.status.success());
    let wrong = cli(&["app", "deploy", "shop", "--tenant", "globex"]);
    assert_eq!(wrong.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("409"));
    let gone = json_of(cli(&[
        "external-secret",
        "delete",
        "--app",
        "shop",
        "stripe",
    ]));
    assert_eq!(gone["deleted"], json!(true));
    server.stop();
    for v in ["sk-cli-env-27", "rk-cli-file-31"] {
        assert!(!server.logs().contains(v), "{v} in the logs");
    }
}
