//! `X-Redial-Signature: sha256=<hex>`: HMAC-SHA256 (RFC 2104) of the exact
//! body bytes, keyed with the endpoint's secret.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The request header that carries the signature.
pub const HEADER: &str = "X-Redial-Signature";

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length (RFC 2104 §2), so this cannot fail.
    <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length")
}

/// The header value for `body`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut m = mac(secret);
    m.update(body);
    format!("sha256={}", hex::encode(m.finalize().into_bytes()))
}

/// Whether `header` is the signature of `body`, compared in constant time
/// (what a receiver does; used by `redial webhooks test` and the tests).
pub fn verify(secret: &str, body: &[u8], header: &str) -> bool {
    let Some(hex_sig) = header.strip_prefix("sha256=") else { return false };
    let Ok(sig) = hex::decode(hex_sig) else { return false };
    let mut m = mac(secret);
    m.update(body);
    m.verify_slice(&sig).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_rfc_4231_test_case_2() {
        // RFC 4231 §4.3: key "Jefe", data "what do ya want for nothing?".
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn verify_accepts_only_the_right_secret_and_body() {
        let s = signature("k", b"{\"a\":1}");
        assert!(verify("k", b"{\"a\":1}", &s));
        assert!(!verify("k2", b"{\"a\":1}", &s));
        assert!(!verify("k", b"{\"a\":2}", &s));
        assert!(!verify("k", b"{\"a\":1}", "sha1=00"));
        assert!(!verify("k", b"{\"a\":1}", "sha256=zz"));
    }
}
