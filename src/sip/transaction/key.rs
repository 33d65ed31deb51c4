//! Transaction identity (§17.1.3, §17.2.3).

use std::hash::{Hash, Hasher};
use std::sync::Arc;

/// Which side of the transaction we are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

/// Identifies one transaction. Client keys are (branch, CSeq method) (§17.1.3); server keys are
/// (branch, sent-by, method) with ACK folded onto INVITE (§17.2.3). For requests without a
/// z9hG4bK branch the layer synthesises a `branch` from Call-ID, CSeq number, From tag and the
/// top Via (see `docs/sip-transactions.md`).
///
/// The strings are shared (`Arc<str>`): the layer keeps a key in its map and in the
/// transaction's entry, and clones one into every event, so a clone is a reference-count bump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionKey {
    role: Role,
    branch: Arc<str>,
    sent_by: Option<Arc<str>>,
    method: rsip::Method,
}

impl Hash for TransactionKey {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.role.hash(state);
        self.branch.hash(state);
        self.sent_by.hash(state);
        // rsip::Method is not Hash; its discriminant is.
        std::mem::discriminant(&self.method).hash(state);
    }
}

impl TransactionKey {
    pub(crate) fn client(branch: String, method: rsip::Method) -> Self {
        Self { role: Role::Client, branch: branch.into(), sent_by: None, method }
    }

    pub(crate) fn server(branch: String, sent_by: String, method: rsip::Method) -> Self {
        let method = if method == rsip::Method::Ack { rsip::Method::Invite } else { method };
        Self { role: Role::Server, branch: branch.into(), sent_by: Some(sent_by.into()), method }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The top Via's sent-by of a server key.
    pub fn sent_by(&self) -> Option<&str> {
        self.sent_by.as_deref()
    }

    /// The transaction's method (INVITE for a server transaction matched by an ACK).
    pub fn method(&self) -> rsip::Method {
        self.method
    }

    /// The same key with another method: the INVITE transaction a CANCEL targets (§9.2).
    pub(crate) fn with_method(&self, method: rsip::Method) -> Self {
        Self { method, ..self.clone() }
    }
}

impl std::fmt::Display for TransactionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let role = match self.role {
            Role::Client => "client",
            Role::Server => "server",
        };
        match &self.sent_by {
            Some(s) => write!(f, "{role}/{}/{}/{s}", self.method, self.branch),
            None => write!(f, "{role}/{}/{}", self.method, self.branch),
        }
    }
}
