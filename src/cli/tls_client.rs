//! The command line's HTTPS: rustls (ring) trusting `--ca-cert` or the system's roots, with an
//! optional client certificate for servers under `tls.client_ca`. Loaded only for an https://
//! `--server`, so every other command starts without it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

use super::client::{exchange_over, RawResponse};

fn certs(what: &str, path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(|e| anyhow!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        anyhow::bail!("{what} {}: holds no PEM certificate", path.display());
    }
    Ok(certs)
}

/// The client configuration: whom to trust, and what to present.
pub fn config(
    ca: Option<&Path>,
    client: Option<(&Path, &Path)>,
) -> anyhow::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    match ca {
        Some(ca) => {
            for c in certs("--ca-cert", ca)? {
                roots
                    .add(c)
                    .map_err(|e| anyhow!("--ca-cert {}: {e}", ca.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            let (added, _) = roots.add_parsable_certificates(found.certs);
            if added == 0 {
                anyhow::bail!("no system CA certificates found: pass --ca-cert FILE");
            }
        }
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("tls")?
    .with_root_certificates(roots);
    let config = match client {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certs("--client-cert", cert)?;
            // Never the key's bytes in an error: only that it did not parse.
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|_| anyhow!("--client-key {}: holds no PEM private key", key.display()))?;
            builder
                .with_client_auth_cert(chain, key)
                .context("--client-key does not fit --client-cert")?
        }
    };
    Ok(Arc::new(config))
}

/// One request over TLS to `addr` (`host:port`; the host is the name the certificate must carry).
pub fn exchange(
    addr: &str,
    config: Arc<rustls::ClientConfig>,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<&[u8]>,
    timeout: Duration,
) -> std::io::Result<RawResponse> {
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(h, _)| h)
        .trim_start_matches('[')
        .trim_end_matches(']');
    let name = ServerName::try_from(host.to_owned())
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let conn = rustls::ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let tcp = std::net::TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(timeout))?;
    let mut stream = rustls::StreamOwned::new(conn, tcp);
    // Complete the handshake first, so a refused certificate is said as such.
    while stream.conn.is_handshaking() {
        stream.conn.complete_io(&mut stream.sock)?;
    }
    exchange_over(stream, addr, method, path, headers, body)
}
