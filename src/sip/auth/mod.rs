//! Digest authentication (RFC 7616, RFC 2617) as client and server.
//!
//! - [`challenge`]: parsing/formatting of `WWW-Authenticate`,
//!   `Proxy-Authenticate`, `Authorization`, `Proxy-Authorization` values.
//! - [`digest`]: the hash computations (MD5, SHA-256, `-sess`, qop=auth or none).
//! - [`client`]: [`DigestClient`], answering carriers' 401/407.
//! - [`server`]: [`DigestServer`], stateless HMAC nonces, verification for
//!   the agents' realm.

pub mod challenge;
pub mod client;
pub mod digest;
pub mod server;
#[cfg(test)]
pub(crate) mod test_util;

pub use challenge::{parse_authorization, parse_challenge, Algorithm, Challenge, Credentials, ParseError, Qop};
pub use client::{set_auth_headers, ClientError, DigestClient};
pub use server::{DigestServer, VerifyError, DEFAULT_NONCE_LIFETIME};
