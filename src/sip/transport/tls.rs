//! SIP over TLS (RFC 3261 §26.2, RFC 5630): a listener on `sip.tls_listen` with the
//! `[tls]` certificate, and outgoing connections to carriers whose certificates are
//! verified against `tls.ca` or the system's roots (with `tls.client_cert` offered to
//! carriers that ask for mutual TLS).
//!
//! Framing, idle time-outs and write queues are TCP's (`tcp::run` over the TLS stream).
//! Connection reuse (RFC 5923): an outgoing connection is kept per destination and every
//! request and response to it goes down the same connection, and our Via over TLS carries
//! `;alias` so that a carrier may send its requests back on it; an agent is always reached
//! on the connection its REGISTER came in on.
//!
//! The rustls configurations sit behind a lock so that SIGHUP can swap in renewed
//! certificates: new handshakes use them, established connections keep theirs.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use pki_types::pem::PemObject;
use pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::rustls::{self, ClientConfig, RootCertStore, ServerConfig};
use tokio_rustls::{TlsAcceptor, TlsConnector};

use super::tcp::{self, ConnHandle, CONNECT_TIMEOUT, WRITE_QUEUE};
use super::Inner;
use crate::config::{TlsConfig, Transport};

/// How long a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{key} ({path}): {message}")]
    File { key: &'static str, path: String, message: String },
    #[error("tls.cert/tls.key: {0}")]
    Server(rustls::Error),
    #[error("tls.client_cert/tls.client_key: {0}")]
    Client(rustls::Error),
    #[error("no trusted roots: tls.ca is not set and the system has no CA certificates")]
    NoRoots,
}

/// Reads a PEM certificate chain (leaf first); at least one certificate.
pub fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let certs = iter.collect::<Result<Vec<_>, _>>().map_err(|e| format!("{} is not PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no CERTIFICATE", path.display()));
    }
    Ok(certs)
}

/// Reads a PEM private key (PKCS#8, PKCS#1 or SEC1).
pub fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| match e {
        pki_types::pem::Error::NoItemsFound => format!("{} holds no PRIVATE KEY", path.display()),
        e => format!("cannot read a private key from {}: {e}", path.display()),
    })
}

fn file_err<'a>(key: &'static str, path: &'a Path) -> impl FnOnce(String) -> TlsError + 'a {
    move |message| TlsError::File { key, path: path.display().to_string(), message }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The rustls configurations built from `[tls]`.
#[derive(Clone)]
pub struct TlsConfigs {
    /// `None` without `tls.cert`: nothing can be accepted.
    pub server: Option<Arc<ServerConfig>>,
    pub client: Arc<ClientConfig>,
}

impl TlsConfigs {
    /// Reads every file `[tls]` names.
    pub fn load(cfg: &TlsConfig) -> Result<Self, TlsError> {
        let server = match (&cfg.cert, &cfg.key) {
            (Some(c), Some(k)) => {
                let chain = read_certs(c).map_err(file_err("tls.cert", c))?;
                let key = read_key(k).map_err(file_err("tls.key", k))?;
                let sc = ServerConfig::builder_with_provider(provider())
                    .with_safe_default_protocol_versions()
                    .map_err(TlsError::Server)?
                    .with_no_client_auth()
                    .with_single_cert(chain, key)
                    .map_err(TlsError::Server)?;
                Some(Arc::new(sc))
            }
            _ => None,
        };
        let mut roots = RootCertStore::empty();
        match &cfg.ca {
            Some(ca) => {
                for c in read_certs(ca).map_err(file_err("tls.ca", ca))? {
                    roots.add(c).map_err(|e| TlsError::File { key: "tls.ca", path: ca.display().to_string(), message: e.to_string() })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                for e in &found.errors {
                    tracing::warn!(error = %e, "a system CA certificate could not be read");
                }
                roots.add_parsable_certificates(found.certs);
            }
        }
        if roots.is_empty() {
            return Err(TlsError::NoRoots);
        }
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Client)?
            .with_root_certificates(roots);
        let client = match (&cfg.client_cert, &cfg.client_key) {
            (Some(c), Some(k)) => {
                let chain = read_certs(c).map_err(file_err("tls.client_cert", c))?;
                let key = read_key(k).map_err(file_err("tls.client_key", k))?;
                builder.with_client_auth_cert(chain, key).map_err(TlsError::Client)?
            }
            _ => builder.with_no_client_auth(),
        };
        Ok(Self { server, client: Arc::new(client) })
    }
}

/// TLS state shared by the transports.
pub(super) struct TlsState {
    /// The bound listener address, when listening.
    pub(super) local: Option<SocketAddr>,
    configs: RwLock<TlsConfigs>,
    /// Names to verify carriers' certificates against, by address (else the IP itself).
    names: Mutex<HashMap<SocketAddr, ServerName<'static>>>,
}

impl TlsState {
    pub(super) fn new(configs: TlsConfigs, local: Option<SocketAddr>) -> Self {
        Self { local, configs: RwLock::new(configs), names: Mutex::default() }
    }

    pub(super) fn replace(&self, configs: TlsConfigs) {
        *self.configs.write().expect("tls configs lock") = configs;
    }

    pub(super) fn set_name(&self, addr: SocketAddr, name: ServerName<'static>) {
        self.names.lock().expect("tls names lock").insert(addr, name);
    }

    pub(super) fn server(&self) -> Option<Arc<ServerConfig>> {
        self.configs.read().expect("tls configs lock").server.clone()
    }

    fn client(&self) -> Arc<ClientConfig> {
        self.configs.read().expect("tls configs lock").client.clone()
    }

    fn name_for(&self, addr: SocketAddr) -> ServerName<'static> {
        self.names.lock().expect("tls names lock").get(&addr).cloned().unwrap_or_else(|| ServerName::IpAddress(addr.ip().into()))
    }
}

pub(super) async fn accept(inner: Arc<Inner>, listener: TcpListener) {
    loop {
        let (stream, remote) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "tls accept failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let Some(server) = inner.tls.get().and_then(|t| t.server()) else { continue };
        let inner = inner.clone();
        // The handshake runs on the connection's own task so that a slow client does not
        // hold up the listener; the connection is registered for sending once it is up.
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, TlsAcceptor::from(server).accept(stream)).await {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %remote, error = %e, "tls handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!(peer = %remote, "tls handshake timed out");
                    return;
                }
            };
            let (tx, rx) = mpsc::channel(WRITE_QUEUE);
            let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
            let task = tokio::spawn(tcp::run(inner.clone(), tls, remote, Transport::Tls, id, rx, tx.clone()));
            tcp::register(&inner, Transport::Tls, remote, ConnHandle { id, tx, task: task.abort_handle() });
            let _ = task.await;
        });
    }
}

/// Opens a TLS connection to `to` carrying `rx`'s bytes; registered at once so that
/// messages sent meanwhile queue behind the handshake.
pub(super) fn connect_and_send(inner: &Arc<Inner>, to: SocketAddr, bytes: Vec<u8>) {
    let Some(state) = inner.tls.get() else {
        tracing::warn!(%to, "message for a TLS destination dropped: TLS is not configured");
        return;
    };
    let connector = TlsConnector::from(state.client());
    let name = state.name_for(to);
    let (tx, rx) = mpsc::channel(WRITE_QUEUE);
    let _ = tx.try_send(bytes);
    let id = inner.next_conn.fetch_add(1, Ordering::Relaxed);
    let inner2 = inner.clone();
    let tx2 = tx.clone();
    let task = tokio::spawn(async move {
        let connect = async {
            let tcp = TcpStream::connect(to).await?;
            let _ = tcp.set_nodelay(true);
            connector.connect(name.clone(), tcp).await
        };
        match tokio::time::timeout(CONNECT_TIMEOUT + HANDSHAKE_TIMEOUT, connect).await {
            Ok(Ok(stream)) => {
                tracing::debug!(%to, "tls connected");
                tcp::run(inner2, stream, to, Transport::Tls, id, rx, tx2).await;
            }
            Ok(Err(e)) => {
                tracing::warn!(%to, server_name = ?name, error = %e, "tls connect failed");
                tcp::unregister(&inner2, Transport::Tls, to, id);
            }
            Err(_) => {
                tracing::warn!(%to, "tls connect timed out");
                tcp::unregister(&inner2, Transport::Tls, to, id);
            }
        }
    });
    tcp::register(inner, Transport::Tls, to, ConnHandle { id, tx, task: task.abort_handle() });
}
