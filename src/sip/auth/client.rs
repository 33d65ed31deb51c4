//! Digest client: answers 401/407 challenges from carriers for one set of
//! credentials (RFC 3261 §22.2–22.3, RFC 7616 §3.4).

use std::collections::HashMap;

use rand::Rng;
use rsip::headers::UntypedHeader;
use rsip::Header;

use super::challenge::{parse_authorization, parse_challenge, Challenge, Credentials, Qop};
use super::digest::{request_digest, DigestInput};

/// Why a challenge could not be answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The response is not a 401 or 407.
    #[error("status {status} is not a digest challenge")]
    NotAChallenge { status: u16 },
    /// No WWW-Authenticate / Proxy-Authenticate we can answer (absent,
    /// malformed, unknown algorithm, or only `auth-int`).
    #[error("no usable digest challenge in the {status} response")]
    NoUsableChallenge { status: u16 },
    /// We already answered a challenge of this realm on this request and the
    /// server challenged again without `stale=true`: the credentials are
    /// wrong. Retrying would loop.
    #[error("credentials rejected by realm `{realm}`")]
    Rejected { realm: String },
}

/// The last challenge of a realm, kept so later requests can pre-authenticate.
#[derive(Debug, Clone)]
struct NonceState {
    challenge: Challenge,
    /// Whether it came in a 407 (answer with Proxy-Authorization).
    proxy: bool,
    /// Last nonce count used with this nonce.
    nc: u32,
}

/// Answers digest challenges for one username/password.
///
/// Sans-IO: [`DigestClient::respond`] takes the challenging response and the
/// request that got it, and returns the header(s) to put on the retried
/// request; [`DigestClient::pre_authorize`] returns headers for a new request
/// from the cached challenges (qop challenges only, RFC 7616 §3.4 allows
/// nonce reuse with an incremented `nc`).
#[derive(Debug, Clone)]
pub struct DigestClient {
    username: String,
    password: String,
    realms: HashMap<String, NonceState>,
}

impl DigestClient {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self { username: username.into(), password: password.into(), realms: HashMap::new() }
    }

    pub fn username(&self) -> &str {
        &self.username
    }

    /// Answers a 401 (→ `Authorization`) or 407 (→ `Proxy-Authorization`).
    ///
    /// `request` is the request that received `response`, as sent (with any
    /// credentials it carried). One header per challenged realm is returned;
    /// when a realm offers several algorithms the strongest is used (SHA-256
    /// over MD5). Put them on the retried request with
    /// [`set_auth_headers`], new CSeq and branch.
    ///
    /// A non-stale challenge for a realm we had answered directly on this
    /// request (nc=1 or no qop) means the credentials are wrong: `Rejected`,
    /// and the cached nonce of that realm is dropped so that the next attempt
    /// starts afresh. A challenge to a pre-authorized request (nc>1) is simply
    /// answered: the server may have forgotten the nonce.
    pub fn respond<R: Rng + ?Sized>(
        &mut self,
        response: &rsip::Response,
        request: &rsip::Request,
        rng: &mut R,
    ) -> Result<Vec<Header>, ClientError> {
        let status = response.status_code.code();
        let proxy = match status {
            401 => false,
            407 => true,
            _ => return Err(ClientError::NotAChallenge { status }),
        };
        // Strongest usable challenge per realm, in order of first appearance.
        let mut chosen: Vec<Challenge> = Vec::new();
        for h in response.headers.iter() {
            let value = match (h, proxy) {
                (Header::WwwAuthenticate(v), false) => v.value(),
                (Header::ProxyAuthenticate(v), true) => v.value(),
                _ => continue,
            };
            let Ok(c) = parse_challenge(value) else { continue };
            if !c.qop.is_empty() && !c.qop.contains(&Qop::Auth) {
                continue; // auth-int only
            }
            match chosen.iter_mut().find(|k| k.realm == c.realm) {
                Some(k) if c.algorithm.strength() > k.algorithm.strength() => *k = c,
                Some(_) => {}
                None => chosen.push(c),
            }
        }
        if chosen.is_empty() {
            return Err(ClientError::NoUsableChallenge { status });
        }
        let sent = sent_credentials(request, proxy);
        let mut out = Vec::with_capacity(chosen.len());
        for c in chosen {
            if let Some(prev) = sent.iter().find(|s| s.realm == c.realm) {
                let direct_answer = prev.nc.is_none_or(|nc| nc <= 1);
                let same_nonce = prev.nonce == c.nonce;
                if (!c.stale && direct_answer) || same_nonce {
                    self.realms.remove(&c.realm);
                    return Err(ClientError::Rejected { realm: c.realm });
                }
            }
            let mut st = NonceState { challenge: c, proxy, nc: 0 };
            out.push(self.header_for(&mut st, request, rng));
            self.realms.insert(st.challenge.realm.clone(), st);
        }
        Ok(out)
    }

    /// Headers for a new request from the cached challenges (refreshes,
    /// later calls), with the nonce count incremented. Empty when nothing is
    /// cached or the cached challenges had no qop.
    pub fn pre_authorize<R: Rng + ?Sized>(&mut self, request: &rsip::Request, rng: &mut R) -> Vec<Header> {
        let mut realms: Vec<String> = self.realms.keys().cloned().collect();
        realms.sort(); // deterministic order for tests
        let mut out = Vec::new();
        for r in realms {
            let Some(mut st) = self.realms.remove(&r) else { continue };
            if !st.challenge.qop.is_empty() {
                out.push(self.header_for(&mut st, request, rng));
            }
            self.realms.insert(r, st);
        }
        out
    }

    /// Forgets every cached challenge (e.g. after a credentials change).
    pub fn reset(&mut self) {
        self.realms.clear();
    }

    fn header_for<R: Rng + ?Sized>(&self, st: &mut NonceState, request: &rsip::Request, rng: &mut R) -> Header {
        let c = &st.challenge;
        let uri = request.uri.to_string();
        let method = request.method.to_string();
        let qop = if c.qop.is_empty() {
            None
        } else {
            st.nc = st.nc.wrapping_add(1).max(1);
            Some((Qop::Auth, st.nc))
        };
        // A cnonce is needed with qop, and for H(A1) of -sess algorithms even
        // without qop (RFC 2617 §3.2.2.2).
        let cnonce = (qop.is_some() || c.algorithm.sess).then(|| random_hex(rng, 16));
        let response = request_digest(&DigestInput {
            algorithm: c.algorithm,
            username: &self.username,
            realm: &c.realm,
            password: &self.password,
            method: &method,
            uri: &uri,
            nonce: &c.nonce,
            qop,
            cnonce: cnonce.as_deref().unwrap_or(""),
        });
        let creds = Credentials {
            username: self.username.clone(),
            realm: c.realm.clone(),
            nonce: c.nonce.clone(),
            uri,
            response,
            algorithm: c.algorithm,
            cnonce,
            opaque: c.opaque.clone(),
            qop: qop.map(|(q, _)| q),
            nc: qop.map(|(_, nc)| nc),
        };
        let value = creds.to_string();
        if st.proxy {
            Header::ProxyAuthorization(rsip::headers::ProxyAuthorization::new(value))
        } else {
            Header::Authorization(rsip::headers::Authorization::new(value))
        }
    }
}

/// The digest credentials a request carries in the header kind matching the
/// challenge (`Authorization` for 401, `Proxy-Authorization` for 407).
fn sent_credentials(request: &rsip::Request, proxy: bool) -> Vec<Credentials> {
    request
        .headers
        .iter()
        .filter_map(|h| match (h, proxy) {
            (Header::Authorization(v), false) => parse_authorization(v.value()).ok(),
            (Header::ProxyAuthorization(v), true) => parse_authorization(v.value()).ok(),
            _ => None,
        })
        .collect()
}

/// Replaces the request's credentials with `headers`: an existing
/// Authorization/Proxy-Authorization for the same realm (or unparsable) is
/// removed, then the new ones are appended.
pub fn set_auth_headers(request: &mut rsip::Request, headers: Vec<Header>) {
    let realm_of = |h: &Header| match h {
        Header::Authorization(v) => Some(parse_authorization(v.value()).map(|c| c.realm).ok()),
        Header::ProxyAuthorization(v) => Some(parse_authorization(v.value()).map(|c| c.realm).ok()),
        _ => None,
    };
    let new_realms: Vec<Option<String>> = headers.iter().filter_map(realm_of).collect();
    request.headers.retain(|h| match realm_of(h) {
        None => true,
        Some(None) => false,
        Some(r) => !new_realms.contains(&r),
    });
    request.headers.extend(headers);
}

/// `n` random bytes as lower-case hex.
pub(crate) fn random_hex<R: Rng + ?Sized>(rng: &mut R, n: usize) -> String {
    let mut b = vec![0u8; n];
    rng.fill_bytes(&mut b);
    hex::encode(b)
}


#[cfg(test)]
mod tests {
    use super::*;
    use crate::sip::auth::test_util::{header_values, reply, request, rng};
    use crate::sip::auth::Algorithm;

    const INVITE: &str = "INVITE sip:+15550100@carrier.test SIP/2.0
Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1
Max-Forwards: 70
From: <sip:+15550199@carrier.test>;tag=x
To: <sip:+15550100@carrier.test>
Call-ID: inv1
CSeq: 1 INVITE
Content-Length: 0";

    #[test]
    fn answers_407_with_proxy_authorization() {
        let req = request(INVITE);
        let resp = reply(&req, 407, &["Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"abc\", qop=\"auth\", opaque=\"op\"".into()]);
        let mut cli = DigestClient::new("trunk1", "s3cret");
        let hs = cli.respond(&resp, &req, &mut rng(1)).unwrap();
        assert!(matches!(hs.as_slice(), [Header::ProxyAuthorization(_)]));
        let mut next = req.clone();
        set_auth_headers(&mut next, hs);
        let v = header_values(&next.headers, "Proxy-Authorization");
        let c = parse_authorization(&v[0]).unwrap();
        assert_eq!((c.realm.as_str(), c.opaque.as_deref(), c.uri.as_str()), ("carrier", Some("op"), "sip:+15550100@carrier.test"));
        // The response checks out against an independent computation.
        let want = request_digest(&DigestInput {
            algorithm: Algorithm::MD5,
            username: "trunk1",
            realm: "carrier",
            password: "s3cret",
            method: "INVITE",
            uri: "sip:+15550100@carrier.test",
            nonce: "abc",
            qop: Some((Qop::Auth, 1)),
            cnonce: c.cnonce.as_deref().unwrap(),
        });
        assert_eq!(c.response, want);
        // Re-answering replaces, never duplicates, the header of that realm.
        let resp2 = reply(&next, 407, &["Proxy-Authenticate: Digest realm=\"carrier\", nonce=\"def\", qop=\"auth\", stale=true".into()]);
        let hs = cli.respond(&resp2, &next, &mut rng(2)).unwrap();
        set_auth_headers(&mut next, hs);
        assert_eq!(header_values(&next.headers, "Proxy-Authorization").len(), 1);
    }

    #[test]
    fn refusals() {
        let req = request(INVITE);
        let mut cli = DigestClient::new("u", "p");
        let ok = reply(&req, 200, &[]);
        assert_eq!(cli.respond(&ok, &req, &mut rng(1)), Err(ClientError::NotAChallenge { status: 200 }));
        let none = reply(&req, 401, &[]);
        assert_eq!(cli.respond(&none, &req, &mut rng(1)), Err(ClientError::NoUsableChallenge { status: 401 }));
        let int_only = reply(&req, 401, &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\"".into()]);
        assert_eq!(cli.respond(&int_only, &req, &mut rng(1)), Err(ClientError::NoUsableChallenge { status: 401 }));
        let unknown_alg = reply(&req, 401, &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=SHA-512-256".into()]);
        assert_eq!(cli.respond(&unknown_alg, &req, &mut rng(1)), Err(ClientError::NoUsableChallenge { status: 401 }));
        // A 407's WWW-Authenticate is not a proxy challenge.
        let mixed = reply(&req, 407, &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\"".into()]);
        assert_eq!(cli.respond(&mixed, &req, &mut rng(1)), Err(ClientError::NoUsableChallenge { status: 407 }));
    }

    #[test]
    fn same_nonce_twice_is_rejected_even_if_stale() {
        let req = request(INVITE);
        let mut cli = DigestClient::new("u", "p");
        let ch = "WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", qop=\"auth\", stale=true".to_string();
        let resp = reply(&req, 401, std::slice::from_ref(&ch));
        let mut next = req.clone();
        set_auth_headers(&mut next, cli.respond(&resp, &req, &mut rng(1)).unwrap());
        let resp = reply(&next, 401, &[ch]);
        assert_eq!(cli.respond(&resp, &next, &mut rng(1)), Err(ClientError::Rejected { realm: "r".into() }));
    }

    #[test]
    fn sess_algorithm_sends_cnonce_without_qop() {
        let req = request(INVITE);
        let mut cli = DigestClient::new("u", "p");
        let resp = reply(&req, 401, &["WWW-Authenticate: Digest realm=\"r\", nonce=\"n\", algorithm=MD5-sess".into()]);
        let hs = cli.respond(&resp, &req, &mut rng(1)).unwrap();
        let mut next = req.clone();
        set_auth_headers(&mut next, hs);
        let c = parse_authorization(&header_values(&next.headers, "Authorization")[0]).unwrap();
        assert!(c.cnonce.is_some());
        assert_eq!((c.qop, c.nc), (None, None));
        assert_eq!(c.algorithm, Algorithm { hash: crate::config::DigestAlgorithm::Md5, sess: true });
    }
}
