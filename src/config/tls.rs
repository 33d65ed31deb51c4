//! `[tls]`: the certificate redial serves SIP over TLS with, the authorities it trusts
//! for carriers' certificates, and an optional client certificate for mutual TLS.
//!
//! ```toml
//! [tls]
//! cert = "tls/cert.pem"          # PEM chain, leaf first (needed by sip.tls_listen)
//! key = "tls/key.pem"            # PEM private key (PKCS#8, PKCS#1 or SEC1)
//! ca = "tls/carriers-ca.pem"     # optional: trust only these CAs for carriers (default: system roots)
//! client_cert = "tls/client.pem" # optional: offered to carriers that ask (mutual TLS)
//! client_key = "tls/client-key.pem"
//! ```
//!
//! Only paths are kept here; the files are read (and checked) by
//! [`crate::sip::transport::tls`] at start and again on SIGHUP, so a renewed certificate
//! takes effect without a restart. Loading the config checks that they parse.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::problem::Collector;

/// Validated `[tls]` paths (relative ones resolved against the config file's directory).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TlsConfig {
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    /// CA certificates (PEM) trusted for carriers; `None` = the system's roots.
    pub ca: Option<PathBuf>,
    pub client_cert: Option<PathBuf>,
    pub client_key: Option<PathBuf>,
}

impl TlsConfig {
    /// Whether a server certificate is configured.
    pub fn has_server_cert(&self) -> bool {
        self.cert.is_some() && self.key.is_some()
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawTls {
    cert: Option<String>,
    key: Option<String>,
    ca: Option<String>,
    client_cert: Option<String>,
    client_key: Option<String>,
}

pub(super) fn validate(raw: RawTls, base: &Path, c: &mut Collector<'_>) -> TlsConfig {
    let path = |p: &Option<String>| p.as_ref().map(|p| base.join(p));
    let cfg = TlsConfig {
        cert: path(&raw.cert),
        key: path(&raw.key),
        ca: path(&raw.ca),
        client_cert: path(&raw.client_cert),
        client_key: path(&raw.client_key),
    };
    for (pair, a, b) in [("", &cfg.cert, &cfg.key), ("client_", &cfg.client_cert, &cfg.client_key)] {
        match (a, b) {
            (Some(_), None) => c.push(format!("tls.{pair}key"), format!("required with tls.{pair}cert")),
            (None, Some(_)) => c.push(format!("tls.{pair}cert"), format!("required with tls.{pair}key")),
            _ => {}
        }
    }
    use crate::sip::transport::tls::{read_certs, read_key};
    for (key, p) in [("tls.cert", &cfg.cert), ("tls.ca", &cfg.ca), ("tls.client_cert", &cfg.client_cert)] {
        if let Some(p) = p {
            c.check(key, read_certs(p));
        }
    }
    for (key, p) in [("tls.key", &cfg.key), ("tls.client_key", &cfg.client_key)] {
        if let Some(p) = p {
            c.check(key, read_key(p));
        }
    }
    cfg
}
