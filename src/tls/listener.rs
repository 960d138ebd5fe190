//! The listeners `axum::serve` runs on: plain TCP, or TLS whose handshakes run off the accept
//! loop (a client that stalls mid-handshake holds up nobody else). Each connection's [`Peer`]
//! (its address, and the verified client certificate) reaches handlers as `ConnectInfo<Peer>`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;

use super::{ClientCert, ReloadingConfig};

/// Who is at the other end of a connection.
#[derive(Clone, Debug)]
pub struct Peer {
    pub addr: SocketAddr,
    /// Whether the connection is TLS (cookies are then `Secure`).
    pub tls: bool,
    /// The client certificate the handshake verified, if one was offered.
    pub client: Option<Arc<ClientCert>>,
}

/// How long a handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Plain TCP (the embedded default on loopback).
pub struct PlainListener(pub TcpListener);

impl Listener for PlainListener {
    type Io = TcpStream;
    type Addr = Peer;

    async fn accept(&mut self) -> (TcpStream, Peer) {
        let (io, addr) = Listener::accept(&mut self.0).await;
        (
            io,
            Peer {
                addr,
                tls: false,
                client: None,
            },
        )
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer {
            addr: self.0.local_addr()?,
            tls: false,
            client: None,
        })
    }
}

/// TLS over TCP, with the configuration re-read for each connection.
pub struct TlsListener {
    local: SocketAddr,
    ready: mpsc::Receiver<(TlsStream<TcpStream>, Peer)>,
}

impl TlsListener {
    /// Accepts on `tcp` in a task of its own; each handshake runs in another.
    pub fn spawn(tcp: TcpListener, config: Arc<ReloadingConfig>) -> std::io::Result<TlsListener> {
        let local = tcp.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let mut tcp = PlainListener(tcp);
        tokio::spawn(async move {
            loop {
                let (io, peer) = Listener::accept(&mut tcp).await;
                let acceptor = tokio_rustls::TlsAcceptor::from(config.current());
                let sender = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(io)).await {
                        Ok(Ok(stream)) => {
                            let client = stream
                                .get_ref()
                                .1
                                .peer_certificates()
                                .and_then(|c| c.first())
                                .map(|leaf| Arc::new(ClientCert::from_der(leaf)));
                            let peer = Peer {
                                tls: true,
                                client,
                                ..peer
                            };
                            let _ = sender.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(peer = %peer.addr, error = %e, "tls handshake failed")
                        }
                        Err(_) => tracing::debug!(peer = %peer.addr, "tls handshake timed out"),
                    }
                });
                if tx.is_closed() {
                    return;
                }
            }
        });
        Ok(TlsListener { local, ready })
    }
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = Peer;

    async fn accept(&mut self) -> (Self::Io, Peer) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Peer> {
        Ok(Peer {
            addr: self.local,
            tls: true,
            client: None,
        })
    }
}

impl Connected<IncomingStream<'_, TlsListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Peer {
        stream.remote_addr().clone()
    }
}

impl Connected<IncomingStream<'_, PlainListener>> for Peer {
    fn connect_info(stream: IncomingStream<'_, PlainListener>) -> Peer {
        stream.remote_addr().clone()
    }
}
