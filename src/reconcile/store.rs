//! The records of sealwright's own state repo (DESIGN.md 2b), as YAML files:
//! `apps/<app>.yaml` (a registration and where it came from) and `api-keys/<id>.yaml` (a tenant
//! API key: its tenant and the SHA-256 of its secret, never the secret), `deployments/<id>.yaml` (a
//! deployment and the token ids revoked before their expiry) and the signing keys
//! (`signing-keys.sops.yaml`, encrypted; see [`crate::tokens::keyring`]) and the external
//! secrets (`external-secrets/{tenants,apps}/<owner>/<provider>.sops.yaml`, values encrypted; see
//! [`crate::external`]). Records are read from a snapshot of the repo at start-up and written
//! through the reconciler's group commits.

use std::collections::BTreeMap;

use serde_json::Value as Json;

use crate::render::Tree;

use crate::external::{Origin, Sealed};
use crate::plain::{json_of, yaml_of};
use crate::spec::{invalid, AppSpec, Fields, Invalid};
use crate::tokens::deployment::DeploymentSpec;

/// Where a registration came from: the API, or a file of the configuration directory (which then
/// owns it: removing the file removes the registration).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Api,
    Config,
    /// An `AppPlatformRegistration` in the cluster (controller mode), which then owns it.
    Kubernetes,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Api => "api",
            Source::Config => "config",
            Source::Kubernetes => "kubernetes",
        }
    }

    /// A stored record's `source` (absent or unknown: the API, as records before it had one).
    fn parse(v: Option<&Json>) -> Source {
        match v.and_then(Json::as_str) {
            Some("config") => Source::Config,
            Some("kubernetes") => Source::Kubernetes,
            _ => Source::Api,
        }
    }
}

pub fn app_path(app: &str) -> String {
    format!("apps/{app}.yaml")
}

/// Where one provider's external secrets of a tenant or an app are stored.
pub fn external_path(origin: Origin, owner: &str, provider: &str) -> String {
    let level = match origin {
        Origin::Tenant => "tenants",
        Origin::App => "apps",
    };
    format!("external-secrets/{level}/{owner}/{provider}.sops.yaml")
}

/// The owner and provider of an external-secrets path.
fn external_of(path: &str) -> Option<(Origin, &str, &str)> {
    let rest = path.strip_prefix("external-secrets/")?;
    let (level, rest) = rest.split_once('/')?;
    let origin = match level {
        "tenants" => Origin::Tenant,
        "apps" => Origin::App,
        _ => return None,
    };
    let (owner, file) = rest.split_once('/')?;
    let provider = file.strip_suffix(".sops.yaml")?;
    (!provider.contains('/')).then_some((origin, owner, provider))
}

pub fn deployment_path(id: &str) -> String {
    format!("deployments/{id}.yaml")
}

/// A deployment as stored: its registration, where it came from, and the token ids revoked
/// before they expire (`jti` → expiry, Unix seconds), so a revocation survives a restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentRecord {
    pub spec: DeploymentSpec,
    pub source: Source,
    pub revoked: BTreeMap<String, i64>,
}

pub fn encode_deployment(r: &DeploymentRecord) -> Vec<u8> {
    let mut j = r.spec.to_json();
    j["source"] = Json::from(r.source.as_str());
    if !r.revoked.is_empty() {
        j["revoked"] = Json::Array(
            r.revoked
                .iter()
                .map(|(jti, exp)| serde_json::json!({"jti": jti, "exp": exp}))
                .collect(),
        );
    }
    yaml_of(&j)
}

fn decode_deployment(id: &str, bytes: &[u8]) -> Result<DeploymentRecord, Invalid> {
    let mut j = json_of(bytes)?;
    let o = j
        .as_object_mut()
        .ok_or_else(|| invalid("(file)", "must be a mapping"))?;
    let source = Source::parse(o.remove("source").as_ref());
    let mut revoked = BTreeMap::new();
    if let Some(list) = o.remove("revoked") {
        let bad = || invalid("revoked", "must be a list of {jti, exp}");
        for item in list.as_array().ok_or_else(bad)? {
            let jti = item["jti"].as_str().ok_or_else(bad)?;
            let exp = item["exp"].as_i64().ok_or_else(bad)?;
            revoked.insert(jti.to_owned(), exp);
        }
    }
    let spec = DeploymentSpec::parse(id, &j)?;
    if spec.id != id {
        return Err(invalid("id", "the file name and the deployment id differ"));
    }
    Ok(DeploymentRecord {
        spec,
        source,
        revoked,
    })
}

pub fn api_key_path(id: &str) -> String {
    format!("api-keys/{id}.yaml")
}

/// A tenant API key as stored: enough to check a presented key, never enough to rebuild it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ApiKeyRecord {
    pub id: String,
    pub tenant: String,
    /// Hex SHA-256 of the whole presented key. The key holds 256 random bits, so a fast hash is
    /// as good as a slow one here.
    pub sha256: String,
    pub created: String,
}

pub fn encode_app(spec: &AppSpec, source: Source) -> Vec<u8> {
    let mut j = spec.to_json();
    j["source"] = Json::from(source.as_str());
    yaml_of(&j)
}

pub fn encode_api_key(k: &ApiKeyRecord) -> Vec<u8> {
    yaml_of(&serde_json::json!({
        "id": k.id, "tenant": k.tenant, "sha256": k.sha256, "created": k.created,
    }))
}

/// Everything the state repo holds. A record that does not parse is an error naming its file:
/// sealwright refuses to start on state it does not understand rather than drop it.
#[derive(Default)]
pub struct StateRecords {
    pub apps: BTreeMap<String, (AppSpec, Source)>,
    pub api_keys: BTreeMap<String, ApiKeyRecord>,
    pub deployments: BTreeMap<String, DeploymentRecord>,
    /// `signing-keys.sops.yaml`, still encrypted.
    pub signing_keys: Option<Vec<u8>>,
    /// External secrets layers: level, owner, provider, the sealed file.
    pub external: Vec<(Origin, String, String, Sealed)>,
}

pub fn decode(files: &Tree) -> Result<StateRecords, Invalid> {
    let mut out = StateRecords::default();
    for (path, bytes) in files {
        let at = |e: Invalid| invalid(format!("{path}: {}", e.field), e.reason);
        if let Some(name) = path
            .strip_prefix("apps/")
            .and_then(|p| p.strip_suffix(".yaml"))
            .filter(|p| !p.contains('/'))
        {
            let mut j = json_of(bytes).map_err(at)?;
            let source = Source::parse(j.as_object_mut().and_then(|o| o.remove("source")).as_ref());
            let spec = AppSpec::from_json(&j).map_err(at)?;
            if spec.name != name {
                return Err(invalid(
                    path.clone(),
                    "the file name and the app name differ",
                ));
            }
            out.apps.insert(spec.name.clone(), (spec, source));
        } else if let Some(id) = path
            .strip_prefix("deployments/")
            .and_then(|p| p.strip_suffix(".yaml"))
        {
            let rec = decode_deployment(id, bytes).map_err(at)?;
            out.deployments.insert(rec.spec.id.clone(), rec);
        } else if let Some((origin, owner, provider)) = external_of(path) {
            let sealed = Sealed::from_stored(path, bytes, origin, owner, provider)
                .map_err(|e| invalid(path.clone(), e.to_string()))?;
            out.external
                .push((origin, owner.to_owned(), provider.to_owned(), sealed));
        } else if path == crate::tokens::keyring::PATH {
            out.signing_keys = Some(bytes.clone());
        } else if let Some(id) = path
            .strip_prefix("api-keys/")
            .and_then(|p| p.strip_suffix(".yaml"))
        {
            let j = json_of(bytes).map_err(at)?;
            let mut f = Fields::of("", &j).map_err(at)?;
            let rec = ApiKeyRecord {
                id: f.str("id").map_err(at)?,
                tenant: f.str("tenant").map_err(at)?,
                sha256: f.str("sha256").map_err(at)?,
                created: f.str("created").map_err(at)?,
            };
            f.finish().map_err(at)?;
            if rec.id != id {
                return Err(invalid(path.clone(), "the file name and the key id differ"));
            }
            out.api_keys.insert(rec.id.clone(), rec);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn records_round_trip_through_yaml() {
        let spec = AppSpec::from_json(&json!({"name": "shop", "tenant": "acme",
            "environments": [{"name": "prod", "namespace": "shop-prod"}], "delivery": "pull-request"}))
        .unwrap();
        let key = ApiKeyRecord {
            id: "k1".into(),
            tenant: "acme".into(),
            sha256: "ab".repeat(32),
            created: "2026-01-01T00:00:00Z".into(),
        };
        let mut files = Tree::new();
        files.insert(app_path("shop"), encode_app(&spec, Source::Config));
        files.insert(api_key_path("k1"), encode_api_key(&key));
        files.insert("README.md".into(), b"anything else is ignored".to_vec());
        let dep = DeploymentRecord {
            spec: DeploymentSpec::from_json(
                "0b7e4a52-5d7c-4d6e-9f3a-2c1b0a9e8d7f",
                &json!({"name": "web", "app": "shop", "environment": "prod",
                    "clusterId": "c1", "namespace": "shop-prod"}),
                |_| Some(spec.clone()),
            )
            .unwrap(),
            source: Source::Api,
            revoked: BTreeMap::from([("j1".to_owned(), 1_900_000_000)]),
        };
        files.insert(deployment_path(&dep.spec.id), encode_deployment(&dep));
        let sealed = Sealed::seal(
            Origin::App,
            "shop",
            "openai",
            &BTreeMap::from([(
                "OPENAI_API_KEY".to_owned(),
                crate::model::SecretValue::new(b"sk-1".to_vec()),
            )]),
            &crate::keys::AgeKey::generate().recipient(),
            sops::scalar::DateTime::from_unix(2_000_000_000),
        )
        .unwrap();
        let ext_path = external_path(Origin::App, "shop", "openai");
        assert_eq!(ext_path, "external-secrets/apps/shop/openai.sops.yaml");
        files.insert(ext_path, sealed.bytes.to_vec());
        let text = String::from_utf8(files[&app_path("shop")].clone()).unwrap();
        assert!(text.contains("name: shop\n"), "{text}");
        assert!(text.contains("source: config\n"), "{text}");
        let back = decode(&files).unwrap();
        assert_eq!(back.apps["shop"], (spec, Source::Config));
        assert_eq!(back.api_keys["k1"], key);
        assert_eq!(back.deployments[&dep.spec.id], dep);
        assert_eq!(
            back.external,
            [(Origin::App, "shop".to_owned(), "openai".to_owned(), sealed)]
        );
        files.insert("apps/shop/notes.yaml".into(), b"not: an app\n".to_vec());
        assert_eq!(
            decode(&files).unwrap().apps.len(),
            1,
            "a nested path under apps/ is no app record"
        );
    }

    #[test]
    fn a_bad_record_names_its_file_and_field() {
        let mut files = Tree::new();
        files.insert(
            app_path("shop"),
            b"name: shop\ntenant: acme\nenvironments: []\n".to_vec(),
        );
        let e = decode(&files).err().unwrap();
        assert_eq!(e.field, "apps/shop.yaml: environments");
        let mut files = Tree::new();
        files.insert(
            app_path("other"),
            b"name: shop\ntenant: acme\nenvironments: [{name: a, namespace: b}]\n".to_vec(),
        );
        assert!(decode(&files).err().unwrap().reason.contains("differ"));
        let mut files = Tree::new();
        files.insert(
            external_path(Origin::Tenant, "acme", "openai"),
            b"not: sops\n".to_vec(),
        );
        let e = decode(&files).err().unwrap();
        assert_eq!(e.field, "external-secrets/tenants/acme/openai.sops.yaml");
    }
}
