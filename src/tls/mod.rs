//! HTTPS for everything the server serves (the API and the dashboard): the certificate and key
//! from PEM files (rustls, ring), re-read when they change so a rotated certificate needs no
//! restart, and optional client certificates checked against `tls.client_ca`.
//!
//! A client certificate is verified during the handshake but never demanded there: kubelet
//! probes and GitHub's webhooks cannot present one, so whether a route needs it
//! (`client_auth: required`) is the HTTP edge's decision, made from the verified names this module
//! hands it ([`ClientCert`]). A certificate's subject alternative names map to an identity
//! (admin or a tenant) through `tls.client_identities`.

mod listener;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::ServerConfig;

pub use listener::{Peer, PlainListener, TlsListener};

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{field} ({path}): {reason}")]
    File {
        field: &'static str,
        path: String,
        reason: String,
    },
    #[error("tls: {0}")]
    Config(String),
}

/// Whether the API needs a verified client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every API request must come over a connection with a verified client certificate.
    Required,
    /// A certificate authenticates when it is there and mapped; a bearer token otherwise.
    Optional,
}

impl ClientAuth {
    pub fn parse(s: &str) -> Option<ClientAuth> {
        match s {
            "required" => Some(ClientAuth::Required),
            "optional" => Some(ClientAuth::Optional),
            _ => None,
        }
    }
}

/// Who a client certificate stands for (`tls.client_identities`: `admin` or `tenant:<id>`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CertIdentity {
    Admin,
    Tenant(String),
}

impl CertIdentity {
    pub fn parse(s: &str) -> Option<CertIdentity> {
        match s {
            "admin" => Some(CertIdentity::Admin),
            _ => s
                .strip_prefix("tenant:")
                .filter(|t| crate::names::validate_label("tenant", t).is_ok())
                .map(|t| CertIdentity::Tenant(t.to_owned())),
        }
    }
}

/// The `tls` section of the server configuration.
#[derive(Clone, Debug)]
pub struct TlsSettings {
    pub cert: PathBuf,
    pub key: PathBuf,
    pub client_ca: Option<PathBuf>,
    pub client_auth: ClientAuth,
    /// A subject alternative name (a DNS name, URI, e-mail address or IP address, exactly as
    /// written in the certificate) to the identity it authenticates.
    pub client_identities: BTreeMap<String, CertIdentity>,
}

/// A client certificate the handshake verified against `tls.client_ca`: its subject alternative
/// names.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClientCert {
    pub names: Vec<String>,
}

impl ClientCert {
    /// The first of its names that `identities` maps, with that name.
    pub fn identity<'a>(
        &'a self,
        identities: &'a BTreeMap<String, CertIdentity>,
    ) -> Option<(&'a str, &'a CertIdentity)> {
        self.names
            .iter()
            .find_map(|n| identities.get(n).map(|i| (n.as_str(), i)))
    }

    /// The subject alternative names of a DER certificate. A certificate without the extension
    /// has none (the subject's common name is not a name here, as in every current client).
    pub fn from_der(der: &[u8]) -> ClientCert {
        use x509_cert::der::Decode;
        use x509_cert::ext::pkix::name::GeneralName;
        use x509_cert::ext::pkix::SubjectAltName;
        let Ok(cert) = x509_cert::Certificate::from_der(der) else {
            return ClientCert::default();
        };
        let Ok(Some((_, san))) = cert.tbs_certificate.get::<SubjectAltName>() else {
            return ClientCert::default();
        };
        let names = san
            .0
            .iter()
            .filter_map(|n| match n {
                GeneralName::DnsName(s) => Some(s.to_string()),
                GeneralName::Rfc822Name(s) => Some(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => Some(s.to_string()),
                GeneralName::IpAddress(o) => match o.as_bytes().len() {
                    4 => <[u8; 4]>::try_from(o.as_bytes())
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    16 => <[u8; 16]>::try_from(o.as_bytes())
                        .ok()
                        .map(|b| std::net::IpAddr::from(b).to_string()),
                    _ => None,
                },
                _ => None,
            })
            .collect();
        ClientCert { names }
    }
}

/// The files' modification times and sizes: a change to any of them means a reload.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// The server's TLS configuration, rebuilt from its files when they change. A reload that fails
/// (a half-written file, a key that does not match) keeps serving the last good configuration
/// and says so in the log: a rotation gone wrong never takes the server down.
pub struct ReloadingConfig {
    settings: TlsSettings,
    current: Mutex<(Stamp, Arc<ServerConfig>)>,
}

impl std::fmt::Debug for ReloadingConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadingConfig")
            .field("cert", &self.settings.cert)
            .finish_non_exhaustive()
    }
}

impl ReloadingConfig {
    /// Loads the files once; any problem is an error naming the field and the file.
    pub fn new(settings: TlsSettings) -> Result<ReloadingConfig, TlsError> {
        let stamp = stamp(&settings);
        let config = build(&settings)?;
        Ok(ReloadingConfig {
            settings,
            current: Mutex::new((stamp, config)),
        })
    }

    pub fn settings(&self) -> &TlsSettings {
        &self.settings
    }

    /// The configuration for a new connection: the files are looked at (three `stat`s) and
    /// loaded again when one changed.
    pub fn current(&self) -> Arc<ServerConfig> {
        let now = stamp(&self.settings);
        let mut cur = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if cur.0 != now {
            match build(&self.settings) {
                Ok(c) => {
                    tracing::info!(cert = %self.settings.cert.display(), "tls: certificate files changed; loaded them");
                    *cur = (now, c);
                }
                Err(e) => {
                    // Remember the stamp so a bad file is reported once, not on every connection.
                    tracing::warn!(error = %e, "tls: the changed certificate files do not load; still serving the previous ones");
                    cur.0 = now;
                }
            }
        }
        cur.1.clone()
    }
}

fn stamp(s: &TlsSettings) -> Stamp {
    [Some(&s.cert), Some(&s.key), s.client_ca.as_ref()]
        .into_iter()
        .flatten()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn file_err(field: &'static str, path: &Path, reason: impl ToString) -> TlsError {
    TlsError::File {
        field,
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn certs(field: &'static str, path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| file_err(field, path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_err(field, path, e))?;
    if certs.is_empty() {
        return Err(file_err(field, path, "holds no PEM certificate"));
    }
    Ok(certs)
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn build(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    let chain = certs("tls.cert", &s.cert)?;
    // The key's bytes are never part of an error: only that it did not parse.
    let key = PrivateKeyDer::from_pem_file(&s.key).map_err(|e| {
        file_err(
            "tls.key",
            &s.key,
            match e {
                rustls::pki_types::pem::Error::Io(io) => io.to_string(),
                _ => "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)".into(),
            },
        )
    })?;
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &s.client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in certs("tls.client_ca", ca)? {
                roots.add(c).map_err(|e| file_err("tls.client_ca", ca, e))?;
            }
            // Verified when offered, never demanded at the handshake (see the module docs).
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| file_err("tls.client_ca", ca, e))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut config = builder
        .with_single_cert(chain, key)
        .map_err(|e| file_err("tls.key", &s.key, format!("does not fit tls.cert: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identities_parse_admin_and_tenants_only() {
        assert_eq!(CertIdentity::parse("admin"), Some(CertIdentity::Admin));
        assert_eq!(
            CertIdentity::parse("tenant:acme"),
            Some(CertIdentity::Tenant("acme".into()))
        );
        assert_eq!(CertIdentity::parse("tenant:"), None);
        assert_eq!(CertIdentity::parse("tenant:Not A Label"), None);
        assert_eq!(CertIdentity::parse("root"), None);
        assert_eq!(ClientAuth::parse("required"), Some(ClientAuth::Required));
        assert_eq!(ClientAuth::parse("sometimes"), None);
    }

    #[test]
    fn a_certificate_maps_by_its_first_known_name() {
        let ids: BTreeMap<String, CertIdentity> = [
            (
                "ci.acme.example".to_owned(),
                CertIdentity::Tenant("acme".into()),
            ),
            ("ops@example.com".to_owned(), CertIdentity::Admin),
        ]
        .into();
        let c = ClientCert {
            names: vec!["other.example".into(), "ci.acme.example".into()],
        };
        assert_eq!(
            c.identity(&ids),
            Some(("ci.acme.example", &CertIdentity::Tenant("acme".into())))
        );
        assert_eq!(ClientCert::default().identity(&ids), None);
        assert_eq!(
            ClientCert::from_der(b"not a certificate"),
            ClientCert::default()
        );
    }

    #[test]
    fn missing_or_empty_files_name_their_field() {
        let d = tempfile::tempdir().unwrap();
        std::fs::write(d.path().join("empty.pem"), "").unwrap();
        let s = TlsSettings {
            cert: d.path().join("empty.pem"),
            key: d.path().join("missing.pem"),
            client_ca: None,
            client_auth: ClientAuth::Optional,
            client_identities: BTreeMap::new(),
        };
        let e = ReloadingConfig::new(s.clone()).unwrap_err().to_string();
        assert!(e.starts_with("tls.cert ("), "{e}");
        assert!(e.contains("no PEM certificate"), "{e}");
    }
}
