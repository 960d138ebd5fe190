//! A fake of the Kubernetes HTTP API on loopback, faithful enough that the production
//! `kube::Client`, `kube::runtime` watchers, the finalizer helper, the event recorder and
//! kube-lease-manager run against it unmodified (the rules it keeps are those of
//! `../shared/KUBERNETES-AND-FLUX.md`, section 1):
//! - get, list (label and field selectors), create, replace (409 on a stale `resourceVersion`),
//!   delete (finalizers hold an object with a `deletionTimestamp` until they are gone), and
//!   JSON-merge, JSON (RFC 6902 with `test`), strategic-merge (built-in types only, 415 for
//!   custom resources) and server-side-apply patches (field ownership, 409 for another manager's
//!   field without `force`);
//! - the status subresource (the main resource ignores `.status`, `/status` ignores the rest),
//!   `generation` bumped on spec changes and on deletion marking;
//! - watches with one JSON event per line: the current state as ADDED for no or `0` version,
//!   the history after a version otherwise, bookmarks, and a `410 Expired` ERROR event (with
//!   HTTP 200, as the real server does) for a version older than the history kept;
//! - namespaces (creating into a missing one is 404);
//! - every stored object checked: built-in kinds by a round trip through their `k8s-openapi`
//!   type (unknown or mistyped fields refused), custom resources against their CRD's schema.
//!
//! It runs on its own thread and runtime, so tests with or without one can use it; a test reads
//! and writes objects directly (as kubectl would) through the same code the HTTP handlers use.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value as Json};
use tokio::sync::broadcast;

/// One kind the fake serves.
#[derive(Clone)]
pub struct Kind {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub status: bool,
    /// Built-in (strategic merge allowed) or custom (415).
    pub builtin: bool,
    check: Checker,
}

type Checker = Arc<dyn Fn(&Json) -> Result<(), String> + Send + Sync>;

impl Kind {
    fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_owned()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }
}

fn typed<T: serde::de::DeserializeOwned + serde::Serialize>() -> Checker {
    Arc::new(|obj: &Json| {
        let t: T = serde_json::from_value(obj.clone()).map_err(|e| e.to_string())?;
        let back = serde_json::to_value(&t).map_err(|e| e.to_string())?;
        let (mut a, mut b) = (obj.clone(), back);
        prune_empty(&mut a);
        prune_empty(&mut b);
        if a != b {
            // Name the fields, never their values (a Secret's data would be in them).
            let (la, lb) = (leaf_values(&a, ""), leaf_values(&b, ""));
            let mut fields: Vec<&String> = la
                .keys()
                .chain(lb.keys())
                .filter(|k| la.get(*k) != lb.get(*k))
                .collect();
            fields.sort();
            fields.dedup();
            return Err(format!(
                "fields the type does not have or holds differently: {fields:?}"
            ));
        }
        Ok(())
    })
}

/// Nulls, empty maps and empty lists dropped: what a typed round trip may lose.
fn prune_empty(v: &mut Json) {
    match v {
        Json::Object(m) => {
            for x in m.values_mut() {
                prune_empty(x);
            }
            m.retain(|_, x| {
                !(x.is_null()
                    || x.as_object().is_some_and(|o| o.is_empty())
                    || x.as_array().is_some_and(|a| a.is_empty()))
            });
        }
        Json::Array(a) => a.iter_mut().for_each(prune_empty),
        _ => {}
    }
}

fn schema_checker(crd_path: &Path, namespaced: bool) -> Checker {
    let crds = super::crd::load(crd_path);
    let schema = crds.into_iter().next().expect("a served version").schema;
    Arc::new(move |obj: &Json| {
        let bytes = serde_json::to_vec(obj).unwrap();
        let docs = sops::store::yaml::parse(&bytes).map_err(|e| e.to_string())?;
        let r = super::crd::validate_scoped(&schema, &docs[0], namespaced);
        if r.errors.is_empty() {
            Ok(())
        } else {
            Err(r.errors.join("; "))
        }
    })
}

/// The kinds a secrets controller touches, with sealwright's CRD from `crd` (its YAML) and
/// Flux's Kustomization from `../shared/flux-crds/`.
pub fn kinds(apr_crd: &Path) -> Vec<Kind> {
    use k8s_openapi::api::coordination::v1::Lease;
    use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret, ServiceAccount};
    use k8s_openapi::api::events::v1::Event;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let k = |group, version, plural, kind, namespaced, status, check| Kind {
        group,
        version,
        plural,
        kind,
        namespaced,
        status,
        builtin: true,
        check,
    };
    let flux = super::shared().join("flux-crds/kustomize.toolkit.fluxcd.io_kustomizations.yaml");
    vec![
        k(
            "",
            "v1",
            "namespaces",
            "Namespace",
            false,
            true,
            typed::<Namespace>(),
        ),
        k(
            "",
            "v1",
            "secrets",
            "Secret",
            true,
            false,
            typed::<Secret>(),
        ),
        k(
            "",
            "v1",
            "configmaps",
            "ConfigMap",
            true,
            false,
            typed::<ConfigMap>(),
        ),
        k(
            "",
            "v1",
            "serviceaccounts",
            "ServiceAccount",
            true,
            false,
            typed::<ServiceAccount>(),
        ),
        k(
            "coordination.k8s.io",
            "v1",
            "leases",
            "Lease",
            true,
            false,
            typed::<Lease>(),
        ),
        k(
            "events.k8s.io",
            "v1",
            "events",
            "Event",
            true,
            false,
            typed::<Event>(),
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "roles",
            "Role",
            true,
            false,
            typed::<Role>(),
        ),
        k(
            "rbac.authorization.k8s.io",
            "v1",
            "rolebindings",
            "RoleBinding",
            true,
            false,
            typed::<RoleBinding>(),
        ),
        Kind {
            builtin: false,
            ..k(
                "sealwright.dev",
                "v1alpha1",
                "appplatformregistrations",
                "AppPlatformRegistration",
                false,
                true,
                schema_checker(apr_crd, false),
            )
        },
        Kind {
            builtin: false,
            ..k(
                "kustomize.toolkit.fluxcd.io",
                "v1",
                "kustomizations",
                "Kustomization",
                true,
                true,
                schema_checker(&flux, true),
            )
        },
    ]
}

#[derive(Clone, Debug)]
pub struct WatchEvent {
    pub rv: u64,
    pub plural: &'static str,
    pub namespace: String,
    pub type_: &'static str,
    pub object: Json,
}

/// (plural, namespace or "", name)
type Key = (&'static str, String, String);

pub struct Store {
    objects: BTreeMap<Key, Json>,
    /// field manager → owned leaf paths, per object (server-side apply).
    managers: BTreeMap<Key, BTreeMap<String, Vec<String>>>,
    rv: u64,
    history: Vec<WatchEvent>,
    /// Versions at or below this are too old to watch from.
    compacted: u64,
    uid: u64,
    /// Every request, `METHOD path?query`.
    pub requests: Vec<String>,
    /// Resources whose requests are answered 503 (an API server that cannot be reached).
    failing: std::collections::BTreeSet<String>,
}

#[derive(Clone)]
pub struct FakeApiServer {
    pub addr: SocketAddr,
    kinds: Arc<Vec<Kind>>,
    store: Arc<Mutex<Store>>,
    tx: broadcast::Sender<WatchEvent>,
    /// Dropping the last clone of this ends the server's runtime.
    _stop: Arc<std::sync::mpsc::SyncSender<()>>,
}

/// A Kubernetes error Status.
#[derive(Debug)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
}

fn err(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
    ApiError {
        code,
        reason,
        message: message.into(),
    }
}

impl ApiError {
    fn status(&self) -> Json {
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": self.message, "reason": self.reason, "code": self.code})
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.status().to_string();
        Response::builder()
            .status(self.code)
            .header("content-type", "application/json")
            .body(Body::from(body))
            .unwrap()
    }
}

fn now_rfc3339() -> String {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let secs = d.as_secs() as i64;
    k8s_openapi::jiff::Timestamp::from_second(secs)
        .unwrap()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

impl FakeApiServer {
    /// Starts the server on a free loopback port; the namespaces named exist from the start.
    pub fn start(apr_crd: &Path, namespaces: &[&str]) -> FakeApiServer {
        let kinds = Arc::new(kinds(apr_crd));
        let store = Arc::new(Mutex::new(Store {
            objects: BTreeMap::new(),
            managers: BTreeMap::new(),
            rv: 100,
            history: Vec::new(),
            compacted: 0,
            uid: 0,
            requests: Vec::new(),
            failing: Default::default(),
        }));
        let (tx, _) = broadcast::channel(65_536);
        let (stop_tx, stop_rx) = std::sync::mpsc::sync_channel::<()>(1);
        let (addr_tx, addr_rx) = std::sync::mpsc::channel();
        let server_state = (kinds.clone(), store.clone(), tx.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                addr_tx.send(listener.local_addr().unwrap()).unwrap();
                let app = axum::Router::new()
                    .fallback(handle)
                    .with_state(Arc::new(Shared {
                        kinds: server_state.0,
                        store: server_state.1,
                        tx: server_state.2,
                    }));
                let server = axum::serve(listener, app);
                tokio::select! {
                    _ = server => {}
                    _ = tokio::task::spawn_blocking(move || { let _ = stop_rx.recv(); }) => {}
                }
            });
        });
        let addr = addr_rx.recv().unwrap();
        let s = FakeApiServer {
            addr,
            kinds,
            store,
            tx,
            _stop: Arc::new(stop_tx),
        };
        for ns in namespaces {
            s.create(&json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}))
                .unwrap();
        }
        s
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A kubeconfig for this server (plain HTTP on loopback, no credentials).
    pub fn kubeconfig(&self, dir: &Path) -> PathBuf {
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: default\ncurrent-context: fake\nusers:\n- name: fake\n  user: {{}}\n",
                self.url()
            ),
        )
        .unwrap();
        path
    }

    fn shared(&self) -> Shared {
        Shared {
            kinds: self.kinds.clone(),
            store: self.store.clone(),
            tx: self.tx.clone(),
        }
    }

    fn kind_of(&self, obj: &Json) -> Kind {
        let av = obj["apiVersion"].as_str().unwrap_or_default();
        let k = obj["kind"].as_str().unwrap_or_default();
        self.kinds
            .iter()
            .find(|x| x.api_version() == av && x.kind == k)
            .unwrap_or_else(|| panic!("the fake serves no {av} {k}"))
            .clone()
    }

    fn kind_by_plural(&self, plural: &str) -> Kind {
        self.kinds
            .iter()
            .find(|x| x.plural == plural)
            .unwrap_or_else(|| panic!("the fake serves no {plural}"))
            .clone()
    }

    /// Creates an object as `kubectl create` would.
    pub fn create(&self, obj: &Json) -> Result<Json, ApiError> {
        let kind = self.kind_of(obj);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        self.shared().create(&kind, &ns, obj.clone(), "kubectl")
    }

    /// Creates or replaces (the stored version is taken, as `kubectl apply` would; a write
    /// that raced another is tried again on the new version).
    pub fn apply(&self, obj: &Json) -> Result<Json, ApiError> {
        let kind = self.kind_of(obj);
        let ns = obj["metadata"]["namespace"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let name = obj["metadata"]["name"].as_str().unwrap().to_owned();
        let sh = self.shared();
        loop {
            let r = match sh.get(&kind, &ns, &name) {
                Err(_) => sh.create(&kind, &ns, obj.clone(), "kubectl"),
                Ok(cur) => {
                    let mut o = obj.clone();
                    o["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
                    for keep in [
                        "finalizers",
                        "uid",
                        "creationTimestamp",
                        "labels",
                        "annotations",
                    ] {
                        if o["metadata"].get(keep).is_none() {
                            if let Some(v) = cur["metadata"].get(keep) {
                                o["metadata"][keep] = v.clone();
                            }
                        }
                    }
                    sh.replace(&kind, &ns, &name, o, false, "kubectl")
                }
            };
            match r {
                Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
                other => return other,
            }
        }
    }

    /// Writes an object's status (as the object's own controller would).
    pub fn set_status(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        status: Json,
    ) -> Result<Json, ApiError> {
        let kind = self.kind_by_plural(plural);
        let sh = self.shared();
        loop {
            let mut cur = sh.get(&kind, ns, name)?;
            cur["status"] = status.clone();
            match sh.replace(&kind, ns, name, cur, kind.status, "test") {
                Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
                other => return other,
            }
        }
    }

    /// Merge-patches an object (as `kubectl annotate` / `kubectl label` would).
    pub fn merge(&self, plural: &str, ns: &str, name: &str, patch: Json) -> Result<Json, ApiError> {
        let kind = self.kind_by_plural(plural);
        let sh = self.shared();
        loop {
            let mut cur = sh.get(&kind, ns, name)?;
            merge_patch(&mut cur, &patch);
            match sh.replace(&kind, ns, name, cur, false, "kubectl") {
                Err(e) if e.code == 409 && e.reason == "Conflict" => continue,
                other => return other,
            }
        }
    }

    pub fn delete(&self, plural: &str, ns: &str, name: &str) -> Result<Json, ApiError> {
        let kind = self.kind_by_plural(plural);
        self.shared().delete(&kind, ns, name)
    }

    pub fn get(&self, plural: &str, ns: &str, name: &str) -> Option<Json> {
        let kind = self.kind_by_plural(plural);
        self.shared().get(&kind, ns, name).ok()
    }

    /// Every object of a kind (in one namespace, or all for "").
    pub fn list(&self, plural: &str, ns: &str) -> Vec<Json> {
        let st = self.store.lock().unwrap();
        st.objects
            .iter()
            .filter(|((p, n, _), _)| *p == plural && (ns.is_empty() || n == ns))
            .map(|(_, o)| o.clone())
            .collect()
    }

    /// Forgets the watch history and ends every open watch (as an API server restart with
    /// compaction does): a client that watches again from its last version gets 410 Expired.
    pub fn compact(&self) {
        let mut st = self.store.lock().unwrap();
        // As if writes happened since: every version a client holds is now older than the
        // compaction, and a fresh list's version is not.
        st.rv += 1;
        st.compacted = st.rv;
        st.history.clear();
        let _ = self.tx.send(WatchEvent {
            rv: u64::MAX,
            plural: "",
            namespace: String::new(),
            type_: "CLOSE",
            object: Json::Null,
        });
    }

    /// Answers every request on `plural` with 503 from now on (`false`: normally again).
    pub fn set_failing(&self, plural: &str, failing: bool) {
        let mut st = self.store.lock().unwrap();
        if failing {
            st.failing.insert(plural.to_owned());
        } else {
            st.failing.remove(plural);
        }
    }

    pub fn requests(&self) -> Vec<String> {
        self.store.lock().unwrap().requests.clone()
    }

    /// Every request so far as RBAC sees it: verb, group, resource (`plural` or
    /// `plural/subresource`), namespace and name.
    pub fn accesses(&self) -> Vec<Access> {
        self.requests()
            .iter()
            .filter_map(|r| {
                let (method, rest) = r.split_once(' ')?;
                let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
                let t = route(&self.kinds, path)?;
                let q = Query::parse(Some(query)).ok()?;
                let verb = match (method, &t.name) {
                    ("GET", None) if matches!(q.get("watch"), Some("true" | "1")) => "watch",
                    ("GET", None) => "list",
                    ("GET", Some(_)) => "get",
                    ("POST", _) => "create",
                    ("PUT", _) => "update",
                    ("PATCH", _) => "patch",
                    ("DELETE", _) => "delete",
                    _ => return None,
                };
                Some(Access {
                    verb: verb.into(),
                    group: t.kind.group.into(),
                    resource: match &t.sub {
                        Some(sub) => format!("{}/{sub}", t.kind.plural),
                        None => t.kind.plural.into(),
                    },
                    namespace: t.namespace.clone(),
                    name: t.name.clone(),
                })
            })
            .collect()
    }

    /// Waits until `pred` holds for the object (or its absence), up to `secs`.
    pub fn wait_for(
        &self,
        plural: &str,
        ns: &str,
        name: &str,
        secs: u64,
        what: &str,
        pred: impl Fn(Option<&Json>) -> bool,
    ) -> Option<Json> {
        let deadline = std::time::Instant::now() + Duration::from_secs(secs);
        loop {
            let o = self.get(plural, ns, name);
            if pred(o.as_ref()) {
                return o;
            }
            if std::time::Instant::now() > deadline {
                panic!("waited {secs} s for {plural}/{ns}/{name}: {what}; it is now {o:#?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

struct Shared {
    kinds: Arc<Vec<Kind>>,
    store: Arc<Mutex<Store>>,
    tx: broadcast::Sender<WatchEvent>,
}

impl Shared {
    fn emit(&self, st: &mut Store, kind: &Kind, ns: &str, type_: &'static str, object: Json) {
        let ev = WatchEvent {
            rv: st.rv,
            plural: kind.plural,
            namespace: ns.to_owned(),
            type_,
            object,
        };
        st.history.push(ev.clone());
        let _ = self.tx.send(ev);
    }

    fn check(&self, kind: &Kind, obj: &Json) -> Result<(), ApiError> {
        (kind.check)(obj).map_err(|e| {
            err(
                422,
                "Invalid",
                format!(
                    "{} {:?} is invalid: {e}",
                    kind.kind, obj["metadata"]["name"]
                ),
            )
        })
    }

    fn get(&self, kind: &Kind, ns: &str, name: &str) -> Result<Json, ApiError> {
        let st = self.store.lock().unwrap();
        st.objects
            .get(&(kind.plural, ns.to_owned(), name.to_owned()))
            .cloned()
            .ok_or_else(|| not_found(kind, name))
    }

    fn create(
        &self,
        kind: &Kind,
        ns: &str,
        mut obj: Json,
        manager: &str,
    ) -> Result<Json, ApiError> {
        let mut st = self.store.lock().unwrap();
        if kind.namespaced
            && !st
                .objects
                .contains_key(&("namespaces", String::new(), ns.to_owned()))
        {
            return Err(err(
                404,
                "NotFound",
                format!("namespaces \"{ns}\" not found"),
            ));
        }
        let md = obj["metadata"]
            .as_object_mut()
            .ok_or_else(|| err(422, "Invalid", "metadata is required"))?;
        let name = match md.get("name").and_then(Json::as_str) {
            Some(n) => n.to_owned(),
            None => match md.get("generateName").and_then(Json::as_str) {
                Some(g) => format!("{g}{:05x}", st.uid + 1),
                None => return Err(err(422, "Invalid", "metadata.name: Required value")),
            },
        };
        let key = (kind.plural, ns.to_owned(), name.clone());
        if st.objects.contains_key(&key) {
            return Err(err(
                409,
                "AlreadyExists",
                format!("{} \"{name}\" already exists", kind.plural),
            ));
        }
        st.rv += 1;
        st.uid += 1;
        md.insert("name".into(), json!(name));
        if kind.namespaced {
            md.insert("namespace".into(), json!(ns));
        }
        md.insert(
            "uid".into(),
            json!(format!("00000000-0000-0000-0000-{:012}", st.uid)),
        );
        md.insert("resourceVersion".into(), json!(st.rv.to_string()));
        md.insert("creationTimestamp".into(), json!(now_rfc3339()));
        if obj.get("spec").is_some() || !kind.builtin {
            obj["metadata"]["generation"] = json!(1);
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        if kind.status && !kind.builtin {
            if let Some(o) = obj.as_object_mut() {
                o.remove("status");
            }
        }
        if kind.kind == "Namespace" {
            obj["status"] = json!({"phase": "Active"});
        }
        self.check(kind, &obj)?;
        let paths = leaf_paths(&obj, "");
        st.managers
            .entry(key.clone())
            .or_default()
            .insert(manager.to_owned(), paths);
        st.objects.insert(key, obj.clone());
        self.emit(&mut st, kind, ns, "ADDED", obj.clone());
        Ok(obj)
    }

    /// Stores `obj` over the current one. `status_only`: the status subresource (only `.status`
    /// changes); otherwise the main resource (`.status` kept where there is a subresource).
    fn replace(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        mut obj: Json,
        status_only: bool,
        manager: &str,
    ) -> Result<Json, ApiError> {
        let mut st = self.store.lock().unwrap();
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let cur = st
            .objects
            .get(&key)
            .cloned()
            .ok_or_else(|| not_found(kind, name))?;
        if let Some(rv) = obj["metadata"]["resourceVersion"].as_str() {
            if rv
                != cur["metadata"]["resourceVersion"]
                    .as_str()
                    .unwrap_or_default()
            {
                return Err(err(
                    409,
                    "Conflict",
                    format!("Operation cannot be fulfilled on {} \"{name}\": the object has been modified; please apply your changes to the latest version and try again", kind.plural),
                ));
            }
        }
        if status_only {
            let status = obj.get("status").cloned();
            obj = cur.clone();
            match status {
                Some(s) => obj["status"] = s,
                None => {
                    obj.as_object_mut().unwrap().remove("status");
                }
            }
        } else if kind.status {
            let o = obj.as_object_mut().unwrap();
            match cur.get("status") {
                Some(s) => {
                    o.insert("status".into(), s.clone());
                }
                None => {
                    o.remove("status");
                }
            }
        }
        // What the server owns stays the server's.
        for k in [
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "namespace",
            "name",
            "generation",
        ] {
            match cur["metadata"].get(k) {
                Some(v) => obj["metadata"][k] = v.clone(),
                None => {
                    if let Some(m) = obj["metadata"].as_object_mut() {
                        m.remove(k);
                    }
                }
            }
        }
        obj["apiVersion"] = json!(kind.api_version());
        obj["kind"] = json!(kind.kind);
        if let Some(m) = obj["metadata"].as_object_mut() {
            m.remove("managedFields");
        }
        let spec_changed = {
            let strip = |o: &Json| {
                let mut o = o.clone();
                if let Some(m) = o.as_object_mut() {
                    m.remove("metadata");
                    m.remove("status");
                }
                o
            };
            strip(&obj) != strip(&cur)
        };
        let same = {
            let mut a = obj.clone();
            a["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
            a == cur
        };
        if same {
            // A no-op write changes nothing and emits nothing, as the real server does.
            return Ok(cur);
        }
        if spec_changed {
            if let Some(g) = cur["metadata"]["generation"].as_i64() {
                obj["metadata"]["generation"] = json!(g + 1);
            }
        }
        self.check(kind, &obj)?;
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        let deleting = obj["metadata"].get("deletionTimestamp").is_some();
        let no_finalizers = obj["metadata"]["finalizers"]
            .as_array()
            .is_none_or(|a| a.is_empty());
        // Update ownership: the writer owns the leaves it changed.
        let changed: Vec<String> = {
            let before = leaf_values(&cur, "");
            leaf_values(&obj, "")
                .into_iter()
                .filter(|(p, v)| before.get(p) != Some(v))
                .map(|(p, _)| p)
                .collect()
        };
        let owners = st.managers.entry(key.clone()).or_default();
        for paths in owners.values_mut() {
            paths.retain(|p| !changed.contains(p));
        }
        owners
            .entry(manager.to_owned())
            .or_default()
            .extend(changed);
        if deleting && no_finalizers {
            st.objects.remove(&key);
            st.managers.remove(&key);
            self.emit(&mut st, kind, ns, "DELETED", obj.clone());
            return Ok(obj);
        }
        st.objects.insert(key, obj.clone());
        self.emit(&mut st, kind, ns, "MODIFIED", obj.clone());
        Ok(obj)
    }

    fn delete(&self, kind: &Kind, ns: &str, name: &str) -> Result<Json, ApiError> {
        let cur = self.get(kind, ns, name)?;
        let finalizers = cur["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|a| !a.is_empty());
        if finalizers {
            if cur["metadata"].get("deletionTimestamp").is_some() {
                return Ok(cur);
            }
            let mut st = self.store.lock().unwrap();
            let key = (kind.plural, ns.to_owned(), name.to_owned());
            let mut obj = cur;
            st.rv += 1;
            obj["metadata"]["deletionTimestamp"] = json!(now_rfc3339());
            obj["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if let Some(g) = obj["metadata"]["generation"].as_i64() {
                obj["metadata"]["generation"] = json!(g + 1);
            }
            obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
            st.objects.insert(key, obj.clone());
            self.emit(&mut st, kind, ns, "MODIFIED", obj.clone());
            return Ok(obj);
        }
        let mut st = self.store.lock().unwrap();
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let mut obj = st
            .objects
            .remove(&key)
            .ok_or_else(|| not_found(kind, name))?;
        st.managers.remove(&key);
        st.rv += 1;
        obj["metadata"]["resourceVersion"] = json!(st.rv.to_string());
        self.emit(&mut st, kind, ns, "DELETED", obj.clone());
        if kind.kind == "Namespace" {
            // Its objects go with it.
            let inside: Vec<Key> = st
                .objects
                .keys()
                .filter(|(_, n, _)| n == name)
                .cloned()
                .collect();
            for k in inside {
                if let Some(mut o) = st.objects.remove(&k) {
                    st.rv += 1;
                    o["metadata"]["resourceVersion"] = json!(st.rv.to_string());
                    let kk = self.kinds.iter().find(|x| x.plural == k.0).unwrap().clone();
                    self.emit(&mut st, &kk, &k.1, "DELETED", o);
                }
            }
        }
        Ok(
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                  "details": {"name": name, "kind": kind.plural}}),
        )
    }

    #[allow(clippy::too_many_arguments)]
    /// Server-side apply: an upsert in which `manager` owns the leaves it sent; a leaf another
    /// manager owns with a different value is a conflict unless `force`.
    fn apply(
        &self,
        kind: &Kind,
        ns: &str,
        name: &str,
        patch: Json,
        manager: &str,
        force: bool,
        status_only: bool,
    ) -> Result<Json, ApiError> {
        let key = (kind.plural, ns.to_owned(), name.to_owned());
        let current = self.get(kind, ns, name).ok();
        let Some(cur) = current else {
            if status_only {
                return Err(not_found(kind, name));
            }
            let mut obj = patch;
            obj["metadata"]["name"] = json!(name);
            return self.create(kind, ns, obj, manager);
        };
        let sent = leaf_values(&patch, "");
        {
            let st = self.store.lock().unwrap();
            let now = leaf_values(&cur, "");
            if let Some(owners) = st.managers.get(&key) {
                let conflicts: Vec<String> = sent
                    .iter()
                    .filter(|(p, v)| {
                        !p.starts_with(".metadata.resourceVersion")
                            && !p.starts_with(".apiVersion")
                            && !p.starts_with(".kind")
                            && !p.starts_with(".metadata.name")
                            && now.get(*p) != Some(*v)
                            && owners
                                .iter()
                                .any(|(m, paths)| m != manager && paths.contains(p))
                    })
                    .map(|(p, _)| p.clone())
                    .collect();
                if !conflicts.is_empty() && !force {
                    let mut e = err(
                        409,
                        "Conflict",
                        format!(
                            "Apply failed with {} conflicts: {}",
                            conflicts.len(),
                            conflicts.join(", ")
                        ),
                    );
                    e.reason = "Conflict";
                    return Err(e);
                }
            }
        }
        let mut obj = cur.clone();
        merge_patch(&mut obj, &patch);
        let mut obj_rv = obj.clone();
        obj_rv["metadata"]["resourceVersion"] = cur["metadata"]["resourceVersion"].clone();
        let r = self.replace(kind, ns, name, obj_rv, status_only, manager)?;
        let mut st = self.store.lock().unwrap();
        let owners = st.managers.entry(key).or_default();
        let mine: Vec<String> = sent.keys().cloned().collect();
        for (m, paths) in owners.iter_mut() {
            if m != manager {
                paths.retain(|p| !mine.contains(p));
            }
        }
        owners.insert(manager.to_owned(), mine);
        Ok(r)
    }

    fn list(&self, kind: &Kind, ns: Option<&str>, q: &Query) -> Result<Json, ApiError> {
        let st = self.store.lock().unwrap();
        let items: Vec<Json> = st
            .objects
            .iter()
            .filter(|((p, n, _), o)| *p == kind.plural && ns.is_none_or(|x| x == n) && q.matches(o))
            .map(|(_, o)| o.clone())
            .collect();
        Ok(
            json!({"apiVersion": kind.api_version(), "kind": format!("{}List", kind.kind),
                  "metadata": {"resourceVersion": st.rv.to_string()}, "items": items}),
        )
    }
}

fn not_found(kind: &Kind, name: &str) -> ApiError {
    err(
        404,
        "NotFound",
        format!("{} \"{name}\" not found", kind.plural),
    )
}

/// RFC 7386.
pub fn merge_patch(target: &mut Json, patch: &Json) {
    let Json::Object(p) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = json!({});
    }
    let t = target.as_object_mut().unwrap();
    for (k, v) in p {
        if v.is_null() {
            t.remove(k);
        } else {
            merge_patch(t.entry(k.clone()).or_insert(Json::Null), v);
        }
    }
}

fn pointer_parts(path: &str) -> Vec<String> {
    path.split('/')
        .skip(1)
        .map(|s| s.replace("~1", "/").replace("~0", "~"))
        .collect()
}

/// RFC 6902, with `test` of an absent path equal to `null` (as the real server's library has it).
fn json_patch(doc: &mut Json, ops: &Json) -> Result<(), String> {
    let ops = ops.as_array().ok_or("a JSON patch is a list")?;
    for op in ops {
        let path = op["path"].as_str().ok_or("op without path")?;
        let parts = pointer_parts(path);
        match op["op"].as_str() {
            Some("test") => {
                let got = doc.pointer(path).cloned().unwrap_or(Json::Null);
                if got != op["value"] {
                    return Err(format!("testing value {path} failed"));
                }
            }
            Some("add") | Some("replace") => {
                let (last, parent) = parts.split_last().ok_or("empty path")?;
                let parent_path: String = parent.iter().map(|p| format!("/{p}")).collect();
                let target = doc
                    .pointer_mut(&parent_path)
                    .ok_or_else(|| format!("{parent_path}: no such path"))?;
                match target {
                    Json::Object(m) => {
                        m.insert(last.clone(), op["value"].clone());
                    }
                    Json::Array(a) => {
                        if last == "-" {
                            a.push(op["value"].clone());
                        } else {
                            let i: usize = last.parse().map_err(|_| "bad index")?;
                            if op["op"] == "replace" {
                                *a.get_mut(i).ok_or("index out of range")? = op["value"].clone();
                            } else {
                                if i > a.len() {
                                    return Err("index out of range".into());
                                }
                                a.insert(i, op["value"].clone());
                            }
                        }
                    }
                    _ => return Err(format!("{parent_path}: not a container")),
                }
            }
            Some("remove") => {
                let (last, parent) = parts.split_last().ok_or("empty path")?;
                let parent_path: String = parent.iter().map(|p| format!("/{p}")).collect();
                let target = doc
                    .pointer_mut(&parent_path)
                    .ok_or_else(|| format!("{parent_path}: no such path"))?;
                match target {
                    Json::Object(m) => {
                        m.remove(last)
                            .ok_or_else(|| format!("{path}: no such key"))?;
                    }
                    Json::Array(a) => {
                        let i: usize = last.parse().map_err(|_| "bad index")?;
                        if i >= a.len() {
                            return Err("index out of range".into());
                        }
                        a.remove(i);
                    }
                    _ => return Err(format!("{parent_path}: not a container")),
                }
            }
            other => return Err(format!("unsupported op {other:?}")),
        }
    }
    Ok(())
}

fn leaf_values(v: &Json, at: &str) -> BTreeMap<String, Json> {
    let mut out = BTreeMap::new();
    fn walk(v: &Json, at: &str, out: &mut BTreeMap<String, Json>) {
        match v {
            Json::Object(m) if !m.is_empty() => {
                for (k, x) in m {
                    walk(x, &format!("{at}.{k}"), out);
                }
            }
            _ => {
                out.insert(at.to_owned(), v.clone());
            }
        }
    }
    walk(v, at, &mut out);
    out
}

fn leaf_paths(v: &Json, at: &str) -> Vec<String> {
    leaf_values(v, at).into_keys().collect()
}

/// The query parameters the fake reads.
#[derive(Default)]
struct Query {
    params: BTreeMap<String, String>,
    labels: Vec<Selector>,
    fields: Vec<(String, bool, String)>,
}

enum Selector {
    Eq(String, String),
    Ne(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    Absent(String),
}

fn decode(s: &str) -> String {
    let s = s.replace('+', " ");
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(x) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(x);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Splits on commas outside parentheses.
fn split_top(s: &str) -> Vec<String> {
    let (mut out, mut cur, mut depth) = (Vec::new(), String::new(), 0);
    for c in s.chars() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(std::mem::take(&mut cur));
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

fn parse_labels(s: &str) -> Result<Vec<Selector>, String> {
    let mut out = Vec::new();
    for term in split_top(s) {
        let t = term.trim();
        let set = |rest: &str| -> Vec<String> {
            rest.trim()
                .trim_start_matches('(')
                .trim_end_matches(')')
                .split(',')
                .map(|x| x.trim().to_owned())
                .collect()
        };
        if let Some((k, v)) = t.split_once("!=") {
            out.push(Selector::Ne(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = t.split_once("==") {
            out.push(Selector::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, v)) = t.split_once('=') {
            out.push(Selector::Eq(k.trim().into(), v.trim().into()));
        } else if let Some((k, rest)) = t.split_once(" notin ") {
            out.push(Selector::NotIn(k.trim().into(), set(rest)));
        } else if let Some((k, rest)) = t.split_once(" in ") {
            out.push(Selector::In(k.trim().into(), set(rest)));
        } else if let Some(k) = t.strip_prefix('!') {
            out.push(Selector::Absent(k.trim().into()));
        } else if !t.is_empty() {
            out.push(Selector::Exists(t.into()));
        } else {
            return Err(format!("bad label selector {s:?}"));
        }
    }
    Ok(out)
}

impl Query {
    fn parse(q: Option<&str>) -> Result<Query, ApiError> {
        let mut params = BTreeMap::new();
        for pair in q.unwrap_or_default().split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            params.insert(decode(k), decode(v));
        }
        let labels = match params.get("labelSelector") {
            Some(s) if !s.is_empty() => parse_labels(s).map_err(|e| err(400, "BadRequest", e))?,
            _ => Vec::new(),
        };
        let mut fields = Vec::new();
        if let Some(s) = params.get("fieldSelector").filter(|s| !s.is_empty()) {
            for term in s.split(',') {
                let (k, neg, v) = if let Some((k, v)) = term.split_once("!=") {
                    (k, true, v)
                } else if let Some((k, v)) = term.split_once("==") {
                    (k, false, v)
                } else if let Some((k, v)) = term.split_once('=') {
                    (k, false, v)
                } else {
                    return Err(err(400, "BadRequest", format!("bad field selector {s:?}")));
                };
                if !matches!(k, "metadata.name" | "metadata.namespace" | "type") {
                    return Err(err(
                        400,
                        "BadRequest",
                        format!("field label not supported: {k}"),
                    ));
                }
                fields.push((k.to_owned(), neg, v.to_owned()));
            }
        }
        Ok(Query {
            params,
            labels,
            fields,
        })
    }

    fn matches(&self, o: &Json) -> bool {
        let labels = o["metadata"]["labels"].as_object();
        let label = |k: &str| labels.and_then(|l| l.get(k)).and_then(Json::as_str);
        let ok_labels = self.labels.iter().all(|s| match s {
            Selector::Eq(k, v) => label(k) == Some(v),
            Selector::Ne(k, v) => label(k) != Some(v),
            Selector::In(k, vs) => label(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            Selector::NotIn(k, vs) => label(k).is_none_or(|l| !vs.iter().any(|v| v == l)),
            Selector::Exists(k) => label(k).is_some(),
            Selector::Absent(k) => label(k).is_none(),
        });
        let ok_fields = self.fields.iter().all(|(k, neg, v)| {
            let got = match k.as_str() {
                "metadata.name" => o["metadata"]["name"].as_str(),
                "metadata.namespace" => o["metadata"]["namespace"].as_str(),
                _ => o["type"].as_str(),
            };
            (got == Some(v.as_str())) != *neg
        });
        ok_labels && ok_fields
    }

    fn get(&self, k: &str) -> Option<&str> {
        self.params.get(k).map(String::as_str)
    }
}

/// One request as RBAC authorizes it.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
    pub name: Option<String>,
}

/// What a path names.
struct Target {
    kind: Kind,
    namespace: Option<String>,
    name: Option<String>,
    sub: Option<String>,
}

fn route(kinds: &[Kind], path: &str) -> Option<Target> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ("", *v, rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return None,
    };
    let find = |plural: &str| {
        kinds
            .iter()
            .find(|k| k.group == group && k.version == version && k.plural == plural)
            .cloned()
    };
    let at = |i: usize| rest.get(i).map(|s| s.to_string());
    match rest {
        ["namespaces", ns, plural, ..] if find(plural).is_some_and(|k| k.namespaced) => {
            Some(Target {
                kind: find(plural)?,
                namespace: Some(ns.to_string()),
                name: at(3),
                sub: at(4),
            })
        }
        [plural, ..] => Some(Target {
            kind: find(plural)?,
            namespace: None,
            name: at(1),
            sub: at(2),
        }),
        [] => None,
    }
}

async fn handle(State(sh): State<Arc<Shared>>, req: Request) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let content_type = req
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    sh.store.lock().unwrap().requests.push(format!(
        "{method} {path}{}",
        query
            .as_deref()
            .map(|q| format!("?{q}"))
            .unwrap_or_default()
    ));
    let body = axum::body::to_bytes(req.into_body(), 64 << 20)
        .await
        .unwrap_or_default();
    match serve(&sh, method, &path, query.as_deref(), &content_type, &body).await {
        Ok(r) => r,
        Err(e) => e.into_response(),
    }
}

fn ok_json(code: u16, v: &Json) -> Response {
    Response::builder()
        .status(code)
        .header("content-type", "application/json")
        .body(Body::from(v.to_string()))
        .unwrap()
}

async fn serve(
    sh: &Arc<Shared>,
    method: Method,
    path: &str,
    query: Option<&str>,
    content_type: &str,
    body: &[u8],
) -> Result<Response, ApiError> {
    // Discovery: what `kube::discovery` asks (typed `Api<K>` never does).
    match path {
        "/api" => {
            return Ok(ok_json(
                200,
                &json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}),
            ))
        }
        "/apis" => {
            let mut groups: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
            for k in sh.kinds.iter().filter(|k| !k.group.is_empty()) {
                groups.entry(k.group).or_default().push(k.version);
            }
            let groups: Vec<Json> = groups
                .into_iter()
                .map(|(g, vs)| {
                    let versions: Vec<Json> = vs
                        .iter()
                        .map(|v| json!({"groupVersion": format!("{g}/{v}"), "version": v}))
                        .collect();
                    json!({"name": g, "versions": versions, "preferredVersion": versions[0]})
                })
                .collect();
            return Ok(ok_json(
                200,
                &json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups}),
            ));
        }
        _ => {}
    }
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let group_version = match parts.as_slice() {
        ["api", v] => Some(("", *v)),
        ["apis", g, v] => Some((*g, *v)),
        _ => None,
    };
    if let Some((g, v)) = group_version {
        let resources: Vec<Json> = sh
            .kinds
            .iter()
            .filter(|k| k.group == g && k.version == v)
            .flat_map(|k| {
                let main = json!({"name": k.plural, "singularName": k.kind.to_lowercase(), "namespaced": k.namespaced, "kind": k.kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]});
                let status = k.status.then(|| json!({"name": format!("{}/status", k.plural), "singularName": "", "namespaced": k.namespaced, "kind": k.kind, "verbs": ["get", "patch", "update"]}));
                std::iter::once(main).chain(status)
            })
            .collect();
        if resources.is_empty() {
            return Err(err(
                404,
                "NotFound",
                format!("the server could not find the requested resource ({path})"),
            ));
        }
        let gv = if g.is_empty() {
            v.to_owned()
        } else {
            format!("{g}/{v}")
        };
        return Ok(ok_json(
            200,
            &json!({"kind": "APIResourceList", "apiVersion": "v1", "groupVersion": gv, "resources": resources}),
        ));
    }
    if path == "/version" {
        return Ok(ok_json(
            200,
            &json!({"major": "1", "minor": "34", "gitVersion": "v1.34.0-fake"}),
        ));
    }
    let t = route(&sh.kinds, path).ok_or_else(|| {
        err(
            404,
            "NotFound",
            format!("the server could not find the requested resource ({path})"),
        )
    })?;
    let q = Query::parse(query)?;
    let kind = t.kind.clone();
    if sh.store.lock().unwrap().failing.contains(kind.plural) {
        return Err(err(
            503,
            "ServiceUnavailable",
            "the server is currently unable to handle the request",
        ));
    }
    if kind.namespaced && t.namespace.is_none() && t.name.is_some() {
        return Err(err(
            404,
            "NotFound",
            "a namespaced resource needs its namespace",
        ));
    }
    let ns = t.namespace.clone().unwrap_or_default();
    let status_only = match t.sub.as_deref() {
        None => false,
        Some("status") if kind.status => true,
        Some(s) => return Err(err(404, "NotFound", format!("no subresource {s}"))),
    };
    let manager = q.get("fieldManager").unwrap_or("unknown").to_owned();
    let parse = |b: &[u8]| -> Result<Json, ApiError> {
        serde_json::from_slice(b)
            .map_err(|e| err(400, "BadRequest", format!("the body is not JSON: {e}")))
    };
    match (method, t.name.as_deref()) {
        (Method::GET, None) if matches!(q.get("watch"), Some("true" | "1")) => {
            Ok(watch(sh, &kind, t.namespace.as_deref(), q))
        }
        (Method::GET, None) => Ok(ok_json(200, &sh.list(&kind, t.namespace.as_deref(), &q)?)),
        (Method::GET, Some(name)) => Ok(ok_json(200, &sh.get(&kind, &ns, name)?)),
        (Method::POST, None) => {
            let obj = parse(body)?;
            if q.get("dryRun").is_some() {
                return Ok(ok_json(201, &obj));
            }
            Ok(ok_json(201, &sh.create(&kind, &ns, obj, &manager)?))
        }
        (Method::PUT, Some(name)) => {
            let obj = parse(body)?;
            Ok(ok_json(
                200,
                &sh.replace(&kind, &ns, name, obj, status_only, &manager)?,
            ))
        }
        (Method::DELETE, Some(name)) => {
            let r = sh.delete(&kind, &ns, name)?;
            Ok(ok_json(200, &r))
        }
        (Method::PATCH, Some(name)) => {
            let patch = parse(body)?;
            let ct = content_type.split(';').next().unwrap_or_default().trim();
            match ct {
                "application/apply-patch+yaml" => {
                    if q.get("fieldManager").is_none() {
                        return Err(err(422, "Invalid", "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
                    }
                    let force = q.get("force") == Some("true");
                    Ok(ok_json(
                        200,
                        &sh.apply(&kind, &ns, name, patch, &manager, force, status_only)?,
                    ))
                }
                "application/merge-patch+json" | "application/strategic-merge-patch+json" => {
                    if ct.starts_with("application/strategic") && !kind.builtin {
                        return Err(err(415, "UnsupportedMediaType", "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml"));
                    }
                    let mut cur = sh.get(&kind, &ns, name)?;
                    let rv = cur["metadata"]["resourceVersion"].clone();
                    merge_patch(&mut cur, &patch);
                    // A patch carrying a version is a precondition; without one, the current.
                    if patch["metadata"].get("resourceVersion").is_none() {
                        cur["metadata"]["resourceVersion"] = rv;
                    }
                    Ok(ok_json(
                        200,
                        &sh.replace(&kind, &ns, name, cur, status_only, &manager)?,
                    ))
                }
                "application/json-patch+json" => {
                    let mut cur = sh.get(&kind, &ns, name)?;
                    json_patch(&mut cur, &patch).map_err(|e| err(422, "Invalid", e))?;
                    Ok(ok_json(
                        200,
                        &sh.replace(&kind, &ns, name, cur, status_only, &manager)?,
                    ))
                }
                other => Err(err(
                    415,
                    "UnsupportedMediaType",
                    format!("unsupported patch type {other:?}"),
                )),
            }
        }
        (m, _) => Err(err(
            405,
            "MethodNotAllowed",
            format!("{m} is not allowed here"),
        )),
    }
}

fn watch(sh: &Arc<Shared>, kind: &Kind, ns: Option<&str>, q: Query) -> Response {
    let mut rx = sh.tx.subscribe();
    let from = q.get("resourceVersion").unwrap_or("").to_owned();
    let timeout = q
        .get("timeoutSeconds")
        .and_then(|t| t.parse::<u64>().ok())
        .unwrap_or(290);
    let bookmarks = q.get("allowWatchBookmarks") == Some("true");
    let (tx, out) = tokio::sync::mpsc::channel::<Result<String, std::io::Error>>(1024);
    let plural = kind.plural;
    let api_version = kind.api_version();
    let kind_name = kind.kind;
    let ns = ns.map(str::to_owned);
    // The backlog, decided under the lock the broadcast is sent under, so nothing falls between.
    let (backlog, last, expired) = {
        let st = sh.store.lock().unwrap();
        let mut lines = Vec::new();
        let mut expired = false;
        if from.is_empty() || from == "0" {
            for ((p, n, _), o) in &st.objects {
                if *p == plural && ns.as_deref().is_none_or(|x| x == n) && q.matches(o) {
                    lines.push(json!({"type": "ADDED", "object": o}).to_string());
                }
            }
        } else {
            let rv: u64 = from.parse().unwrap_or(0);
            if rv < st.compacted {
                expired = true;
                lines.push(json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": format!("too old resource version: {rv} ({})", st.compacted), "reason": "Expired", "code": 410}}).to_string());
            } else {
                for ev in st.history.iter().filter(|e| e.rv > rv) {
                    if ev.plural == plural
                        && ns.as_deref().is_none_or(|x| x == ev.namespace)
                        && (q.matches(&ev.object) || ev.type_ != "ADDED")
                    {
                        lines.push(json!({"type": ev.type_, "object": ev.object}).to_string());
                    }
                }
            }
        }
        (lines, st.rv, expired)
    };
    tokio::spawn(async move {
        for l in backlog {
            if tx.send(Ok(l + "\n")).await.is_err() {
                return;
            }
        }
        if expired {
            return;
        }
        let deadline = tokio::time::Instant::now() + Duration::from_secs(timeout);
        let mut last_rv = last;
        loop {
            let next = tokio::time::timeout_at(
                deadline.min(tokio::time::Instant::now() + Duration::from_secs(2)),
                rx.recv(),
            )
            .await;
            match next {
                Ok(Ok(ev)) => {
                    if ev.type_ == "CLOSE" {
                        return;
                    }
                    if ev.rv <= last {
                        continue;
                    }
                    last_rv = ev.rv;
                    if ev.plural != plural || ns.as_deref().is_some_and(|x| x != ev.namespace) {
                        continue;
                    }
                    if !q.matches(&ev.object) && ev.type_ == "ADDED" {
                        continue;
                    }
                    let line = json!({"type": ev.type_, "object": ev.object}).to_string() + "\n";
                    if tx.send(Ok(line)).await.is_err() {
                        return;
                    }
                }
                Ok(Err(broadcast::error::RecvError::Lagged(_))) => {
                    let _ = tx.send(Ok(json!({"type": "ERROR", "object": {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": "watch lagged", "reason": "Expired", "code": 410}}).to_string() + "\n")).await;
                    return;
                }
                Ok(Err(_)) => return,
                Err(_) if tokio::time::Instant::now() >= deadline => return,
                Err(_) => {
                    if bookmarks {
                        let line = json!({"type": "BOOKMARK", "object": {"kind": kind_name, "apiVersion": api_version, "metadata": {"resourceVersion": last_rv.to_string()}}}).to_string() + "\n";
                        if tx.send(Ok(line)).await.is_err() {
                            return;
                        }
                    }
                }
            }
        }
    });
    let stream = futures::stream::unfold(
        out,
        |mut rx| async move { rx.recv().await.map(|x| (x, rx)) },
    );
    Response::builder()
        .status(StatusCode::OK)
        .header("content-type", "application/json")
        .header("transfer-encoding", "chunked")
        .body(Body::from_stream(stream))
        .unwrap()
}

#[cfg(test)]
#[allow(unused_imports)]
mod tests {
    use super::*;

    #[test]
    fn label_selectors_parse_every_form() {
        let s = parse_labels("a=b,c!=d,e in (x, y),f notin (z),g,!h").unwrap();
        let o = json!({"metadata": {"labels": {"a": "b", "e": "y", "g": "1"}}});
        let q = Query {
            labels: s,
            ..Default::default()
        };
        assert!(q.matches(&o));
        let o2 = json!({"metadata": {"labels": {"a": "b", "e": "y", "g": "1", "h": "2"}}});
        assert!(!q.matches(&o2));
    }

    #[test]
    fn a_json_patch_test_of_an_absent_path_equals_null() {
        let mut d = json!({"metadata": {}});
        json_patch(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
                                   {"op": "add", "path": "/metadata/finalizers", "value": ["x"]}]),
        )
        .unwrap();
        assert_eq!(d["metadata"]["finalizers"], json!(["x"]));
        assert!(json_patch(
            &mut d,
            &json!([{"op": "test", "path": "/metadata/finalizers/0", "value": "y"}])
        )
        .is_err());
    }
}
