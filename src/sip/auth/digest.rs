//! The digest computations of RFC 7616 §3.4.1–3.4.3 (and RFC 2617 §3.2.2,
//! RFC 2069 when no qop is used), shared by client and server.

use md5::{Digest as _, Md5};
use sha2::Sha256;

use super::challenge::{Algorithm, Qop};
use crate::config::DigestAlgorithm;

/// Lower-case hex of `H(data)` for the algorithm's hash.
pub fn hash_hex(hash: DigestAlgorithm, data: &[u8]) -> String {
    match hash {
        DigestAlgorithm::Md5 => hex::encode(Md5::digest(data)),
        DigestAlgorithm::Sha256 => hex::encode(Sha256::digest(data)),
    }
}

/// The inputs of one request digest.
#[derive(Debug, Clone, Copy)]
pub struct DigestInput<'a> {
    pub algorithm: Algorithm,
    pub username: &'a str,
    pub realm: &'a str,
    pub password: &'a str,
    pub method: &'a str,
    /// The `uri=` parameter exactly as sent.
    pub uri: &'a str,
    pub nonce: &'a str,
    /// `(qop, nc)` when a qop is used; `None` for RFC 2069 style.
    pub qop: Option<(Qop, u32)>,
    /// Needed with a qop and with `-sess` algorithms.
    pub cnonce: &'a str,
}

/// The `response=` value. Only `qop=auth` (or none) is computed: auth-int
/// would need the body hash, which redial never offers nor answers.
pub fn request_digest(d: &DigestInput<'_>) -> String {
    let h = |s: &str| hash_hex(d.algorithm.hash, s.as_bytes());
    let mut ha1 = h(&format!("{}:{}:{}", d.username, d.realm, d.password));
    if d.algorithm.sess {
        ha1 = h(&format!("{ha1}:{}:{}", d.nonce, d.cnonce));
    }
    let ha2 = h(&format!("{}:{}", d.method, d.uri));
    match d.qop {
        Some((qop, nc)) => h(&format!("{ha1}:{}:{nc:08x}:{}:{}:{ha2}", d.nonce, d.cnonce, qop.as_str())),
        None => h(&format!("{ha1}:{}:{ha2}", d.nonce)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7616 §3.9.1: the SHA-256 and MD5 examples (HTTP GET, qop=auth).
    #[test]
    fn rfc7616_vectors() {
        let mut d = DigestInput {
            algorithm: Algorithm::SHA256,
            username: "Mufasa",
            realm: "http-auth@example.org",
            password: "Circle of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "7ypf/xlj9XXwfDPEoM4URrv/xwf94BcCAzFZH4GiTo0v",
            qop: Some((Qop::Auth, 1)),
            cnonce: "f2/wE4q74E6zIJEtWaHKaf5wv/H5QzzpXusqGemxURZJ",
        };
        assert_eq!(request_digest(&d), "753927fa0e85d155564e2e272a28d1802ca10daf4496794697cf8db5856cb6c1");
        d.algorithm = Algorithm::MD5;
        assert_eq!(request_digest(&d), "8ca523f5e9506fed4657c9700eebdbec");
    }

    /// RFC 2617 §3.5 (MD5, qop=auth).
    #[test]
    fn rfc2617_vector() {
        let d = DigestInput {
            algorithm: Algorithm::MD5,
            username: "Mufasa",
            realm: "testrealm@host.com",
            password: "Circle Of Life",
            method: "GET",
            uri: "/dir/index.html",
            nonce: "dcd98b7102dd2f0e8b11d0f600bfb0c093",
            qop: Some((Qop::Auth, 1)),
            cnonce: "0a4f113b",
        };
        assert_eq!(request_digest(&d), "6629fae49393a05397450978507c4ef1");
    }

    /// RFC 2069 style (no qop): H(HA1:nonce:HA2), checked against an
    /// independent composition of the same formula.
    #[test]
    fn no_qop_and_sess() {
        let d = DigestInput {
            algorithm: Algorithm::MD5,
            username: "u",
            realm: "r",
            password: "p",
            method: "REGISTER",
            uri: "sip:r",
            nonce: "n",
            qop: None,
            cnonce: "",
        };
        let ha1 = hash_hex(DigestAlgorithm::Md5, b"u:r:p");
        let ha2 = hash_hex(DigestAlgorithm::Md5, b"REGISTER:sip:r");
        let want = hash_hex(DigestAlgorithm::Md5, format!("{ha1}:n:{ha2}").as_bytes());
        assert_eq!(request_digest(&d), want);

        let s = DigestInput { algorithm: Algorithm { hash: DigestAlgorithm::Sha256, sess: true }, qop: Some((Qop::Auth, 2)), cnonce: "c", ..d };
        let ha1 = hash_hex(DigestAlgorithm::Sha256, b"u:r:p");
        let ha1 = hash_hex(DigestAlgorithm::Sha256, format!("{ha1}:n:c").as_bytes());
        let ha2 = hash_hex(DigestAlgorithm::Sha256, b"REGISTER:sip:r");
        let want = hash_hex(DigestAlgorithm::Sha256, format!("{ha1}:n:00000002:c:auth:{ha2}").as_bytes());
        assert_eq!(request_digest(&s), want);
    }
}
