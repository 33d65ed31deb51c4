//! What the TLS benches (`tls_register`, `tls_calls`) share: a throw-away PKI made with
//! `openssl` (a CA and a server certificate for 127.0.0.1), a client connector trusting
//! that CA, and a reader of one SIP message (headers and `Content-Length` body) from a
//! stream.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use tokio::io::AsyncReadExt;
use tokio_rustls::rustls;

fn openssl(args: &[&str]) {
    let ok = Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().expect("openssl").success();
    assert!(ok, "openssl {args:?}");
}

/// The files of a test PKI in `dir`: (CA certificate, server certificate, server key).
pub fn test_pki(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let p = |n: &str| dir.join(n).to_str().unwrap().to_string();
    openssl(&["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2", "-subj", "/CN=bench CA", "-keyout", &p("ca-key.pem"), "-out", &p("ca.pem")]);
    std::fs::write(dir.join("ext"), "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").unwrap();
    openssl(&["req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=redial", "-keyout", &p("key.pem"), "-out", &p("csr")]);
    openssl(&["x509", "-req", "-in", &p("csr"), "-CA", &p("ca.pem"), "-CAkey", &p("ca-key.pem"), "-CAcreateserial", "-days", "2", "-extfile", &p("ext"), "-out", &p("cert.pem")]);
    (dir.join("ca.pem"), dir.join("cert.pem"), dir.join("key.pem"))
}

/// A TLS client trusting only the CA in `ca`.
pub fn tls_connector(ca: &Path) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(ca).unwrap();
    for c in pki_types::pem::PemObject::pem_slice_iter(&pem) {
        roots.add(c.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    tokio_rustls::TlsConnector::from(Arc::new(cfg))
}

/// Reads one message from a stream (its headers and a `Content-Length` body); `buf` keeps
/// what was read past it. `None` when the stream ends.
pub async fn read_msg<S: AsyncReadExt + Unpin>(s: &mut S, buf: &mut Vec<u8>) -> Option<String> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            let body = head
                .lines()
                .find_map(|l| l.split_once(':').filter(|(k, _)| k.trim().eq_ignore_ascii_case("content-length") || k.trim() == "l").map(|(_, v)| v.trim().parse::<usize>().unwrap_or(0)))
                .unwrap_or(0);
            if buf.len() >= end + 4 + body {
                let msg = String::from_utf8_lossy(&buf[..end + 4 + body]).into_owned();
                buf.drain(..end + 4 + body);
                return Some(msg);
            }
        }
        let mut chunk = [0u8; 4096];
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}
