//! `sealwright app ...`, `sealwright secret ...` and `sealwright external-secret ...`: the API's
//! operations from the command line,
//! against a running server (`--server`, default `$SEALWRIGHT_SERVER` or http://127.0.0.1:8080)
//! with a bearer token (`--token`, default `$SEALWRIGHT_TOKEN`, else `$SEALWRIGHT_ADMIN_TOKEN`).
//!
//! Answers are printed as JSON. Secret values come from files (`--from-file KEY=PATH`) or the
//! environment (`--from-env KEY=VAR`), or, for throwaway values only, the command line
//! (`--data KEY=VALUE`, which other users of the machine can see in the process list). The
//! client speaks plain HTTP/1.1: for a server elsewhere, put TLS in front of it and tunnel.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{anyhow, bail, Context};
use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

#[derive(Args, Clone)]
pub struct Server {
    /// The server's base URL (http://host:port or https://host:port).
    #[arg(
        long,
        global = true,
        env = "SEALWRIGHT_SERVER",
        default_value = "http://127.0.0.1:8080"
    )]
    pub server: String,
    /// The bearer token (an admin token or a tenant API key).
    #[arg(long, global = true, env = "SEALWRIGHT_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// https: the CA (PEM) the server's certificate is checked against, instead of the
    /// system's roots.
    #[arg(long, global = true, env = "SEALWRIGHT_CA_CERT", value_name = "FILE")]
    pub ca_cert: Option<std::path::PathBuf>,
    /// https: a client certificate (PEM) to present (tls.client_ca on the server).
    #[arg(
        long,
        global = true,
        env = "SEALWRIGHT_CLIENT_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub client_cert: Option<std::path::PathBuf>,
    /// https: the client certificate's private key (PEM).
    #[arg(
        long,
        global = true,
        env = "SEALWRIGHT_CLIENT_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub client_key: Option<std::path::PathBuf>,
}

#[derive(Args)]
pub struct AppArgs {
    #[command(flatten)]
    pub server: Server,
    #[command(subcommand)]
    pub cmd: AppCommand,
}

#[derive(Args)]
pub struct SecretArgs {
    #[command(flatten)]
    pub server: Server,
    #[command(subcommand)]
    pub cmd: SecretCommand,
}

#[derive(Args)]
pub struct ExternalArgs {
    #[command(flatten)]
    pub server: Server,
    #[command(subcommand)]
    pub cmd: ExternalCommand,
}

/// Whose external secrets: a tenant's defaults or an app's overrides (exactly one).
#[derive(Args, Clone)]
#[group(required = true, multiple = false)]
pub struct Owner {
    /// A tenant's defaults (every app of the tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// An app's overrides (reads show the app's effective set).
    #[arg(long)]
    pub app: Option<String>,
}

impl Owner {
    fn base(&self) -> String {
        match (&self.tenant, &self.app) {
            (Some(t), _) => format!("/v1/tenants/{t}/external-secrets"),
            (None, Some(a)) => format!("/v1/apps/{a}/external-secrets"),
            (None, None) => String::new(),
        }
    }
}

#[derive(Subcommand)]
pub enum ExternalCommand {
    /// Set a provider's keys (replaces that provider's keys at that level).
    Put {
        #[command(flatten)]
        owner: Owner,
        provider: String,
        #[command(flatten)]
        values: Values,
    },
    /// Remove a provider at that level.
    Delete {
        #[command(flatten)]
        owner: Owner,
        provider: String,
    },
    /// Providers and key names (for an app: the effective set, with each key's origin).
    List {
        #[command(flatten)]
        owner: Owner,
    },
    /// One provider: key names (and origins, for an app).
    Get {
        #[command(flatten)]
        owner: Owner,
        provider: String,
    },
}

#[derive(Subcommand)]
pub enum AppCommand {
    /// Register an app: sealwright app create NAME --tenant T --env staging=shop-staging ...
    Create {
        name: String,
        #[arg(long)]
        tenant: String,
        /// An environment and its namespace, NAME=NAMESPACE (repeat, at least one).
        #[arg(long = "env", value_name = "NAME=NAMESPACE", required = true)]
        envs: Vec<String>,
        /// commit (default) or pull-request.
        #[arg(long)]
        delivery: Option<String>,
    },
    /// List apps (a tenant key sees its tenant's).
    List,
    /// One app with its status.
    Get { name: String },
    /// Unregister an app (its Flux folder goes; --archive archives its platform repo too).
    Delete {
        name: String,
        #[arg(long)]
        archive: bool,
    },
    /// A deploy: resolve and commit the app's external secrets; prints the commit.
    Deploy {
        name: String,
        /// The app's tenant (required, and checked).
        #[arg(long)]
        tenant: String,
        /// The image being deployed (recorded in the event).
        #[arg(long)]
        image_ref: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum SecretCommand {
    /// Create or replace a secret.
    Put {
        app: String,
        name: String,
        /// A target namespace (repeat).
        #[arg(long = "namespace", value_name = "NS", required = true)]
        namespaces: Vec<String>,
        /// The Secret's name in the cluster (default: NAME).
        #[arg(long)]
        target_name: Option<String>,
        /// The Secret type (default Opaque).
        #[arg(long = "type")]
        type_: Option<String>,
        #[command(flatten)]
        values: Values,
        #[command(flatten)]
        rules: Rules,
        /// Start from this server preset (`GET /v1/presets`); the flags win over it.
        #[arg(long)]
        preset: Option<String>,
    },
    /// Set keys of a secret (--remove KEY removes one).
    Patch {
        app: String,
        name: String,
        #[command(flatten)]
        values: Values,
        #[command(flatten)]
        rules: Rules,
        /// A key to remove (repeat).
        #[arg(long = "remove", value_name = "KEY")]
        remove: Vec<String>,
    },
    /// New values for generated keys (all of them unless --key); derived keys follow.
    Rotate {
        app: String,
        name: String,
        /// A generated key to rotate (repeat; default: every generated key).
        #[arg(long = "key", value_name = "KEY")]
        keys: Vec<String>,
        /// Keep each old value as `<key>.previous` until the next rotation.
        #[arg(long)]
        keep_previous: bool,
    },
    /// Delete a secret from every namespace.
    Delete { app: String, name: String },
    /// An app's secrets: names, namespaces, keys, commits (never values).
    List { app: String },
    /// One secret; --reveal shows the values (admin only, audited).
    Get {
        app: String,
        name: String,
        #[arg(long)]
        reveal: bool,
    },
}

#[derive(Args, Clone, Default)]
pub struct Values {
    /// KEY=PATH: the value is the file's content.
    #[arg(long = "from-file", value_name = "KEY=PATH")]
    pub from_file: Vec<String>,
    /// KEY=VAR: the value is the environment variable's.
    #[arg(long = "from-env", value_name = "KEY=VAR")]
    pub from_env: Vec<String>,
    /// KEY=VALUE on the command line (visible in the process list: throwaway values only).
    #[arg(long = "data", value_name = "KEY=VALUE")]
    pub data: Vec<String>,
}

/// How keys get their values besides `--data`: generated once, derived, and checked.
#[derive(Args, Clone, Default)]
pub struct Rules {
    /// KEY=RULE: generate the key once and keep it. RULE is `alphanumeric:N`, `hex:N`,
    /// `base64:BYTES`, `uuid`, `token:PREFIX:N`, `rsa:BITS[:pkcs1|pkcs8]`, `ed25519`,
    /// `ecdsa-p256`, `self-signed-tls:COMMON_NAME[:DAYS]` (under tls.crt), or a JSON object.
    #[arg(long = "generate", value_name = "KEY=RULE")]
    pub generate: Vec<String>,
    /// KEY=TEMPLATE: a minijinja template over the secret's keys and `secrets.NAME.KEY`.
    #[arg(long = "derive", value_name = "KEY=TEMPLATE")]
    pub derive: Vec<String>,
    /// KEY=RULE: refuse values that fail it. RULE is `pem:KIND`, `url:SCHEME`,
    /// `pattern:REGEX`, `min-length:N`, `json`, `base64`, or a JSON object.
    #[arg(long = "validate", value_name = "KEY=RULE")]
    pub validate: Vec<String>,
    /// A key whose rule goes (repeat; `secret patch` only).
    #[arg(long = "drop-rule", value_name = "KEY")]
    pub drop_rule: Vec<String>,
}

impl Rules {
    /// The body fields (`generate`, `derive`, `validate`) the flags ask for.
    fn fields(&self) -> anyhow::Result<Map<String, Value>> {
        let mut out = Map::new();
        let split = |arg: &str, what: &str| -> anyhow::Result<(String, String)> {
            arg.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .ok_or_else(|| anyhow!("--{what} {arg:?}: expected KEY=…"))
        };
        let mut generate = Map::new();
        for a in &self.generate {
            let (k, r) = split(a, "generate")?;
            generate.insert(
                k.clone(),
                generate_rule(&r).with_context(|| format!("--generate {k}"))?,
            );
        }
        let mut derive = Map::new();
        for a in &self.derive {
            let (k, t) = split(a, "derive")?;
            derive.insert(k, Value::String(t));
        }
        let mut validate = Map::new();
        for a in &self.validate {
            let (k, r) = split(a, "validate")?;
            validate.insert(
                k.clone(),
                validate_rule(&r).with_context(|| format!("--validate {k}"))?,
            );
        }
        for k in &self.drop_rule {
            generate.insert(k.clone(), Value::Null);
            derive.insert(k.clone(), Value::Null);
            validate.insert(k.clone(), Value::Null);
        }
        for (field, m) in [
            ("generate", generate),
            ("derive", derive),
            ("validate", validate),
        ] {
            if !m.is_empty() {
                out.insert(field.into(), Value::Object(m));
            }
        }
        Ok(out)
    }
}

fn number(what: &str, s: Option<&str>) -> anyhow::Result<u64> {
    let s = s.ok_or_else(|| anyhow!("needs {what} (like alphanumeric:32)"))?;
    s.parse()
        .map_err(|_| anyhow!("{what} {s:?} is not a whole number"))
}

/// `kind:arg…` (or a JSON object) → a generate rule as the API takes it.
fn generate_rule(r: &str) -> anyhow::Result<Value> {
    if r.trim_start().starts_with('{') {
        return serde_json::from_str(r).context("not a JSON object");
    }
    let mut parts = r.splitn(3, ':');
    let kind = parts.next().unwrap_or_default();
    let (a, b) = (parts.next(), parts.next());
    Ok(match kind {
        "alphanumeric" | "hex" => json!({"kind": kind, "length": number("a length", a)?}),
        "base64" => json!({"kind": kind, "bytes": number("a byte count", a)?}),
        "uuid" | "ed25519" | "ecdsa-p256" => json!({"kind": kind}),
        "token" => json!({"kind": kind, "prefix": a.unwrap_or(""), "length": number("a length", b)?}),
        "rsa" => json!({"kind": kind, "bits": number("the bits", a)?, "format": b.unwrap_or("pkcs1")}),
        "self-signed-tls" => {
            let cn = a.filter(|c| !c.is_empty()).ok_or_else(|| anyhow!("needs a common name (self-signed-tls:app.example.com)"))?;
            let mut j = json!({"kind": kind, "commonName": cn, "dnsNames": [cn]});
            if let Some(d) = b {
                j["days"] = json!(number("the days", Some(d))?);
            }
            j
        }
        other => bail!("{other:?} is not a rule (alphanumeric, hex, base64, uuid, token, rsa, ed25519, ecdsa-p256, self-signed-tls)"),
    })
}

/// `kind:arg` (or a JSON object) → a validate rule as the API takes it.
fn validate_rule(r: &str) -> anyhow::Result<Value> {
    if r.trim_start().starts_with('{') {
        return serde_json::from_str(r).context("not a JSON object");
    }
    let (kind, arg) = match r.split_once(':') {
        Some((k, a)) => (k, Some(a)),
        None => (r, None),
    };
    let arg = |what: &str| arg.ok_or_else(|| anyhow!("{kind} needs {what} ({kind}:…)"));
    Ok(match kind {
        "pem" => json!({"pem": arg("a kind")?}),
        "url" => json!({"url": {"scheme": arg("a scheme")?}}),
        "pattern" => json!({"pattern": arg("a regular expression")?}),
        "min-length" => json!({"minLength": number("a length", Some(arg("a length")?))?}),
        "json" => json!({"json": true}),
        "base64" => json!({"base64": true}),
        other => bail!("{other:?} is not a rule (pem, url, pattern, min-length, json, base64)"),
    })
}

impl Values {
    fn collect(&self) -> anyhow::Result<Map<String, Value>> {
        let mut out = Map::new();
        let split = |arg: &str, what: &str| -> anyhow::Result<(String, String)> {
            arg.split_once('=')
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                // The argument is not echoed: it may be a value given without its key.
                .ok_or_else(|| anyhow!("--{what}: expected KEY=… (an argument has no '=')"))
        };
        for a in &self.from_file {
            let (k, path) = split(a, "from-file")?;
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("--from-file {k}: read {path}"))?;
            out.insert(k, Value::String(text));
        }
        for a in &self.from_env {
            let (k, var) = split(a, "from-env")?;
            let v = std::env::var(&var).map_err(|_| {
                anyhow!("--from-env {k}: the environment variable {var} is not set")
            })?;
            out.insert(k, Value::String(v));
        }
        for a in &self.data {
            let (k, v) = split(a, "data")?;
            out.insert(k, Value::String(v));
        }
        Ok(out)
    }
}

pub fn run_app(a: AppArgs) -> i32 {
    super::exit_code(app(&a.server, a.cmd))
}

pub fn run_secret(a: SecretArgs) -> i32 {
    super::exit_code(secret(&a.server, a.cmd))
}

pub fn run_external(a: ExternalArgs) -> i32 {
    super::exit_code(external(&a.server, a.cmd))
}

fn external(s: &Server, cmd: ExternalCommand) -> anyhow::Result<()> {
    let out = match cmd {
        ExternalCommand::Put {
            owner,
            provider,
            values,
        } => {
            let data = values.collect()?;
            if data.is_empty() {
                bail!("no keys: give --from-file, --from-env or --data");
            }
            call(
                s,
                "PUT",
                &format!("{}/{provider}", owner.base()),
                Some(&Value::Object(data)),
            )?
        }
        ExternalCommand::Delete { owner, provider } => {
            call(s, "DELETE", &format!("{}/{provider}", owner.base()), None)?
        }
        ExternalCommand::List { owner } => call(s, "GET", &owner.base(), None)?,
        ExternalCommand::Get { owner, provider } => {
            call(s, "GET", &format!("{}/{provider}", owner.base()), None)?
        }
    };
    print(&out)
}

fn app(s: &Server, cmd: AppCommand) -> anyhow::Result<()> {
    let out = match cmd {
        AppCommand::Create {
            name,
            tenant,
            envs,
            delivery,
        } => {
            let mut environments = Vec::new();
            for e in &envs {
                let (n, ns) = e
                    .split_once('=')
                    .ok_or_else(|| anyhow!("--env {e:?}: expected NAME=NAMESPACE"))?;
                environments.push(json!({"name": n, "namespace": ns}));
            }
            let mut body = json!({"name": name, "tenant": tenant, "environments": environments});
            if let Some(d) = delivery {
                body["delivery"] = json!(d);
            }
            call(s, "POST", "/v1/apps", Some(&body))?
        }
        AppCommand::List => call(s, "GET", "/v1/apps", None)?,
        AppCommand::Get { name } => call(s, "GET", &format!("/v1/apps/{name}"), None)?,
        AppCommand::Deploy {
            name,
            tenant,
            image_ref,
        } => {
            let mut body = json!({"tenant_id": tenant, "app_id": name});
            if let Some(r) = image_ref {
                body["image_ref"] = json!(r);
            }
            call(s, "POST", &format!("/v1/apps/{name}/deploys"), Some(&body))?
        }
        AppCommand::Delete { name, archive } => call(
            s,
            "DELETE",
            &format!(
                "/v1/apps/{name}{}",
                if archive { "?archive=true" } else { "" }
            ),
            None,
        )?,
    };
    print(&out)
}

fn secret(s: &Server, cmd: SecretCommand) -> anyhow::Result<()> {
    let out = match cmd {
        SecretCommand::Put {
            app,
            name,
            namespaces,
            target_name,
            type_,
            values,
            rules,
            preset,
        } => {
            if !rules.drop_rule.is_empty() {
                bail!("--drop-rule is for `secret patch`: a put replaces every rule anyway");
            }
            let mut body = json!({"targetNamespaces": namespaces, "data": values.collect()?});
            for (k, v) in rules.fields()? {
                body[k] = v;
            }
            if let Some(p) = preset {
                body["preset"] = json!(p);
            }
            if let Some(t) = target_name {
                body["targetName"] = json!(t);
            }
            if let Some(t) = type_ {
                body["type"] = json!(t);
            }
            call(
                s,
                "PUT",
                &format!("/v1/apps/{app}/secrets/{name}"),
                Some(&body),
            )?
        }
        SecretCommand::Patch {
            app,
            name,
            values,
            rules,
            remove,
        } => {
            let mut data = values.collect()?;
            for k in remove {
                data.insert(k, Value::Null);
            }
            let mut body = rules.fields()?;
            if data.is_empty() && body.is_empty() {
                bail!(
                    "nothing to change: give --from-file, --from-env, --data, --remove or a rule"
                );
            }
            if !data.is_empty() {
                body.insert("data".into(), Value::Object(data));
            }
            call(
                s,
                "PATCH",
                &format!("/v1/apps/{app}/secrets/{name}"),
                Some(&Value::Object(body)),
            )?
        }
        SecretCommand::Rotate {
            app,
            name,
            keys,
            keep_previous,
        } => {
            let mut body = json!({"keepPrevious": keep_previous});
            if !keys.is_empty() {
                body["keys"] = json!(keys);
            }
            call(
                s,
                "POST",
                &format!("/v1/apps/{app}/secrets/{name}/rotate"),
                Some(&body),
            )?
        }
        SecretCommand::Delete { app, name } => {
            call(s, "DELETE", &format!("/v1/apps/{app}/secrets/{name}"), None)?
        }
        SecretCommand::List { app } => call(s, "GET", &format!("/v1/apps/{app}/secrets"), None)?,
        SecretCommand::Get { app, name, reveal } => call(
            s,
            "GET",
            &format!(
                "/v1/apps/{app}/secrets/{name}{}",
                if reveal { "?reveal=true" } else { "" }
            ),
            None,
        )?,
    };
    print(&out)
}

fn print(v: &Value) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(v)?);
    Ok(())
}

/// One request; a non-2xx answer is an error carrying the server's message.
fn call(s: &Server, method: &str, path: &str, body: Option<&Value>) -> anyhow::Result<Value> {
    let (tls, rest) = match (
        s.server.strip_prefix("http://"),
        s.server.strip_prefix("https://"),
    ) {
        (Some(r), _) => (false, r),
        (_, Some(r)) => (true, r),
        _ => bail!("--server {:?}: give an http:// or https:// URL", s.server),
    };
    let authority = rest.trim_end_matches('/');
    if authority.contains('/') || authority.is_empty() {
        bail!(
            "--server {:?}: give the base URL only (https://host:port)",
            s.server
        );
    }
    let addr = if authority
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
    {
        authority.to_owned()
    } else {
        format!("{authority}:{}", if tls { 443 } else { 80 })
    };
    if !tls && (s.ca_cert.is_some() || s.client_cert.is_some()) {
        bail!("--ca-cert and --client-cert need an https:// --server");
    }
    // With a client certificate the server may know the caller without a token.
    let token = s
        .token
        .clone()
        .or_else(|| std::env::var("SEALWRIGHT_ADMIN_TOKEN").ok())
        .filter(|t| !t.is_empty());
    if token.is_none() && s.client_cert.is_none() {
        bail!("no token: pass --token or set SEALWRIGHT_TOKEN (or present a client certificate)");
    }
    let payload = body.map(serde_json::to_vec).transpose()?;
    let bearer = token.map(|t| format!("Bearer {t}"));
    let mut headers = vec![("Accept", "application/json")];
    if let Some(b) = &bearer {
        headers.push(("Authorization", b));
    }
    let timeout = Duration::from_secs(300);
    let resp = if tls {
        let config = super::tls_client::config(
            s.ca_cert.as_deref(),
            s.client_cert.as_deref().zip(s.client_key.as_deref()),
        )?;
        super::tls_client::exchange(
            &addr,
            config,
            method,
            path,
            &headers,
            payload.as_deref(),
            timeout,
        )
    } else {
        exchange(&addr, method, path, &headers, payload.as_deref(), timeout)
    }
    .with_context(|| format!("{method} {path} at {}", s.server))?;
    let v: Value = serde_json::from_slice(&resp.body)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&resp.body).trim().to_owned()));
    if (200..300).contains(&resp.status) {
        Ok(v)
    } else {
        let msg = v
            .get("error")
            .and_then(Value::as_str)
            .map(str::to_owned)
            .unwrap_or_else(|| v.to_string());
        bail!("{method} {path}: {}: {msg}", resp.status)
    }
}

/// An HTTP/1.1 answer.
pub struct RawResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// One plain HTTP/1.1 request on a fresh connection (`Connection: close`), read to the end.
/// A body (JSON) is sent with its length; so is an empty one for POST, PUT and PATCH. A
/// connection that fails or closes before a whole answer is an error. (Also the tests' client.)
pub fn exchange(
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<RawResponse> {
    let stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(timeout))?;
    exchange_over(stream, addr, method, path, headers, body)
}

/// [`exchange`] over a connection that is already open (TCP, or TLS over it).
pub fn exchange_over(
    mut stream: impl Read + Write,
    addr: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
) -> std::io::Result<RawResponse> {
    let bad = |what: &str| std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned());
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    let payload = body.unwrap_or(b"");
    if body.is_some() || matches!(method, "POST" | "PUT" | "PATCH") {
        head.push_str(&format!(
            "Content-Type: application/json\r\nContent-Length: {}\r\n",
            payload.len()
        ));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(payload)?;
    stream.flush()?;
    let mut raw = Vec::new();
    match stream.read_to_end(&mut raw) {
        Ok(_) => {}
        // A TLS peer that closes without close_notify: what came is judged below.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(e),
    }
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the connection closed before a complete answer",
            )
        })?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| bad("not an HTTP answer"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let chunked = headers.iter().any(|(k, v)| {
        k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked")
    });
    let mut body = raw[split + 4..].to_vec();
    if chunked {
        body = dechunk(&body).ok_or_else(|| bad("a malformed chunked answer"))?;
    }
    Ok(RawResponse {
        status,
        headers,
        body,
    })
}

fn dechunk(mut rest: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let nl = rest.windows(2).position(|w| w == b"\r\n")?;
        let size = usize::from_str_radix(
            std::str::from_utf8(&rest[..nl])
                .ok()?
                .split(';')
                .next()?
                .trim(),
            16,
        )
        .ok()?;
        rest = rest.get(nl + 2..)?;
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(rest.get(..size)?);
        rest = rest.get(size + 2..)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_rules_become_the_api_s_objects() {
        assert_eq!(
            generate_rule("alphanumeric:32").unwrap(),
            json!({"kind": "alphanumeric", "length": 32})
        );
        assert_eq!(
            generate_rule("token:sk_:40").unwrap(),
            json!({"kind": "token", "prefix": "sk_", "length": 40})
        );
        assert_eq!(
            generate_rule("rsa:2048:pkcs8").unwrap()["format"],
            json!("pkcs8")
        );
        assert_eq!(
            generate_rule(r#"{"kind": "uuid", "idPrefix": "x-"}"#).unwrap()["idPrefix"],
            json!("x-")
        );
        assert!(generate_rule("alphanumeric:many").is_err());
        assert!(generate_rule("bcrypt:12").is_err());
        assert_eq!(
            validate_rule("pem:certificate").unwrap(),
            json!({"pem": "certificate"})
        );
        assert_eq!(
            validate_rule("min-length:16").unwrap(),
            json!({"minLength": 16})
        );
        assert_eq!(
            validate_rule("pattern:^a:b$").unwrap()["pattern"],
            json!("^a:b$")
        );
        assert!(validate_rule("pem").is_err());
        let rules = Rules {
            generate: vec!["password=hex:64".into()],
            derive: vec!["URL=https://{{ user }}:{{ password }}@h/".into()],
            validate: vec![],
            drop_rule: vec!["old".into()],
        };
        let f = rules.fields().unwrap();
        assert_eq!(f["generate"]["password"]["length"], json!(64));
        assert_eq!(
            f["derive"]["URL"],
            json!("https://{{ user }}:{{ password }}@h/")
        );
        assert_eq!(f["validate"]["old"], Value::Null);
    }

    #[test]
    fn values_come_from_files_env_and_arguments() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("pw");
        std::fs::write(&f, "from-a-file").unwrap();
        let v = Values {
            from_file: vec![format!("password={}", f.display())],
            from_env: vec![],
            data: vec!["user=shop".into(), "url=a=b".into()],
        }
        .collect()
        .unwrap();
        assert_eq!(v["password"], json!("from-a-file"));
        assert_eq!(v["url"], json!("a=b"));
        let e = Values {
            from_env: vec!["k=SEALWRIGHT_TEST_SURELY_UNSET".into()],
            ..Values::default()
        }
        .collect()
        .unwrap_err()
        .to_string();
        assert!(e.contains("SEALWRIGHT_TEST_SURELY_UNSET is not set"), "{e}");
        let e = Values {
            data: vec!["novalue".into()],
            ..Values::default()
        }
        .collect()
        .unwrap_err()
        .to_string();
        assert!(e.contains("expected KEY="), "{e}");
    }

    #[test]
    fn chunked_bodies_are_joined() {
        assert_eq!(
            dechunk(b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n").unwrap(),
            b"abcde"
        );
        assert!(dechunk(b"5\r\nab").is_none());
    }
}
