//! Errors of the transaction layer.

use super::key::TransactionKey;

/// Misuse of the transaction layer or a request it cannot build a transaction for.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransactionError {
    #[error("the message has no {header} header")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is malformed")]
    MalformedHeader { header: &'static str },
    #[error("the top Via branch {branch:?} does not start with z9hG4bK (RFC 3261 §8.1.1.7)")]
    BadBranch { branch: Option<String> },
    #[error("CSeq method {cseq} differs from request method {method}")]
    MethodMismatch { method: rsip::Method, cseq: rsip::Method },
    #[error("ACK is never sent in a client transaction; send an ACK for a 2xx with send_stateless (§17.1.1.3)")]
    AckNotTransactional,
    #[error("transaction {key} already exists")]
    Duplicate { key: TransactionKey },
    #[error("no transaction {key}")]
    UnknownTransaction { key: TransactionKey },
    #[error("transaction {key} is a client transaction; responses are sent in server transactions")]
    NotServer { key: TransactionKey },
    #[error("transaction {key} already sent its final response; cannot send {status}")]
    AlreadyFinal { key: TransactionKey, status: u16 },
    #[error("the response's CSeq method {cseq} does not match transaction {key}")]
    ResponseMismatch { key: TransactionKey, cseq: rsip::Method },
}
