//! A deployment as sealwright knows it: a workload of an app in one of its environments, on one
//! cluster, in that environment's namespace. Registered with `PUT /v1/deployments/{id}` (or from
//! the configuration directory) and checked here at the edge, with errors naming the field.

use serde_json::{json, Value as Json};

use crate::model::credentials_secret_name;
use crate::spec::{invalid, AppSpec, Fields, Invalid};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DeploymentSpec {
    /// A UUID, lowercase.
    pub id: String,
    /// A DNS label; the credentials Secret is `<name>-credentials`.
    pub name: String,
    pub app: String,
    /// One of the app's environment names.
    pub environment: String,
    pub cluster_id: String,
    /// The environment's namespace.
    pub namespace: String,
}

/// `8-4-4-4-12` hex digits; returned lowercase so that one deployment has one id.
pub fn parse_uuid(field: &str, text: &str) -> Result<String, Invalid> {
    let groups: Vec<&str> = text.split('-').collect();
    let shape = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(shape)
            .all(|(g, n)| g.len() == n && g.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(invalid(
            field,
            format!("{text:?} is not a UUID (8-4-4-4-12 hex digits)"),
        ))
    }
}

impl DeploymentSpec {
    /// Parses a registration body for deployment `id`; `app_of` finds an app's registration.
    pub fn from_json(
        id: &str,
        v: &Json,
        app_of: impl Fn(&str) -> Option<AppSpec>,
    ) -> Result<DeploymentSpec, Invalid> {
        let spec = DeploymentSpec::parse(id, v)?;
        spec.check_app(app_of(&spec.app).as_ref())?;
        Ok(spec)
    }

    /// The shape alone: what a stored record must satisfy even when its app has changed since.
    pub fn parse(id: &str, v: &Json) -> Result<DeploymentSpec, Invalid> {
        let id = parse_uuid("id", id)?;
        let mut f = Fields::of("", v)?;
        // A body may repeat the id (stored records do); it must then be the same one.
        if let Some(again) = f.opt_str("id")? {
            if parse_uuid("id", &again)? != id {
                return Err(invalid(
                    "id",
                    format!("{again:?} is not the id in the path ({id})"),
                ));
            }
        }
        let name = f.str("name")?;
        // The Secret `<name>-credentials` must itself be a DNS label.
        let longest = 63 - "-credentials".len();
        crate::names::validate_label("name", &name)?;
        if name.len() > longest {
            return Err(invalid(
                "name",
                format!("is longer than {longest} characters (`<name>-credentials` must fit 63)"),
            ));
        }
        let app_name = f.str("app")?;
        let environment = f.str("environment")?;
        let cluster_id = f.str("clusterId")?;
        let namespace = f.str("namespace")?;
        f.finish()?;
        let ok_id = !cluster_id.is_empty()
            && cluster_id.len() <= 63
            && cluster_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
        if !ok_id {
            return Err(invalid(
                "clusterId",
                format!("{cluster_id:?} must be 1 to 63 of A-Z a-z 0-9 . _ -"),
            ));
        }
        Ok(DeploymentSpec {
            id,
            name,
            app: app_name,
            environment,
            cluster_id,
            namespace,
        })
    }

    /// The environment must be one of `app`'s, and the namespace that environment's.
    pub fn check_app(&self, app: Option<&AppSpec>) -> Result<(), Invalid> {
        let (app_name, environment, namespace) = (&self.app, &self.environment, &self.namespace);
        let app =
            app.ok_or_else(|| invalid("app", format!("no app {app_name:?} is registered")))?;
        let env = app
            .environments
            .iter()
            .find(|e| &e.name == environment)
            .ok_or_else(|| {
                let names: Vec<&str> = app.environments.iter().map(|e| e.name.as_str()).collect();
                invalid(
                    "environment",
                    format!(
                        "{environment:?} is not an environment of app {app_name:?} ({})",
                        names.join(", ")
                    ),
                )
            })?;
        if &env.namespace != namespace {
            return Err(invalid(
                "namespace",
                format!(
                    "{namespace:?} is not the namespace of environment {environment:?} ({:?})",
                    env.namespace
                ),
            ));
        }
        Ok(())
    }

    pub fn to_json(&self) -> Json {
        json!({
            "id": self.id, "name": self.name, "app": self.app, "environment": self.environment,
            "clusterId": self.cluster_id, "namespace": self.namespace,
        })
    }

    /// The Secret the credentials are delivered in.
    pub fn secret_name(&self) -> String {
        credentials_secret_name(&self.name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0B7E4A52-5D7C-4D6E-9F3A-2C1B0A9E8D7F";

    fn shop() -> Option<AppSpec> {
        AppSpec::from_json(&json!({"name": "shop", "tenant": "acme", "environments": [
            {"name": "staging", "namespace": "shop-staging"},
            {"name": "production", "namespace": "shop-prod"}]}))
        .ok()
    }

    fn body() -> Json {
        json!({"name": "web", "app": "shop", "environment": "production",
            "clusterId": "eu-1", "namespace": "shop-prod"})
    }

    #[test]
    fn a_deployment_parses_and_round_trips() {
        let d =
            DeploymentSpec::from_json(ID, &body(), |a| (a == "shop").then(shop).flatten()).unwrap();
        assert_eq!(d.id, ID.to_ascii_lowercase());
        assert_eq!(d.secret_name(), "web-credentials");
        let again = DeploymentSpec::from_json(&d.id, &d.to_json(), |_| shop()).unwrap();
        assert_eq!(again, d);
    }

    #[test]
    fn errors_name_the_field() {
        let cases: Vec<(&str, Json, &str)> = vec![
            ("not-a-uuid", body(), "id"),
            (ID, json!({"app": "shop"}), "name"),
            (
                ID,
                {
                    let mut b = body();
                    b["name"] = json!("Web");
                    b
                },
                "name",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["name"] = json!("x".repeat(52));
                    b
                },
                "name",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["app"] = json!("blog");
                    b
                },
                "app",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["environment"] = json!("dev");
                    b
                },
                "environment",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["namespace"] = json!("shop-staging");
                    b
                },
                "namespace",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["clusterId"] = json!("eu 1");
                    b
                },
                "clusterId",
            ),
            (
                ID,
                {
                    let mut b = body();
                    b["extra"] = json!(1);
                    b
                },
                "extra",
            ),
        ];
        for (id, b, field) in cases {
            let e = DeploymentSpec::from_json(id, &b, |a| (a == "shop").then(shop).flatten())
                .unwrap_err();
            assert_eq!(e.field, field, "{b}: {e}");
        }
    }
}
