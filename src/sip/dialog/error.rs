//! Errors of dialog creation and in-dialog request handling, with the SIP status they map to.

/// Why a message could not create or continue a dialog.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialogError {
    #[error("the message has no {header} header")]
    MissingHeader { header: &'static str },
    #[error("the {header} header is malformed")]
    MalformedHeader { header: &'static str },
    #[error("a {status} response does not create a dialog (needs 101-299 with a To tag)")]
    NotDialogCreating { status: u16 },
    #[error("the request belongs to no known dialog")]
    UnknownDialog,
    #[error("CSeq {got} is lower than the last remote CSeq {last} (RFC 3261 §12.2.2)")]
    CSeqOutOfOrder { got: u32, last: u32 },
    #[error("the dialog is terminated")]
    Terminated,
    #[error("the peer sent a re-INVITE while ours is pending (RFC 3261 §14.1)")]
    Glare,
    #[error("a re-INVITE of ours is already pending in this dialog")]
    ReInviteInProgress,
    /// §14.2: the peer sent a re-INVITE while its earlier one (CSeq `pending`) has no final
    /// response yet. Answer [`super::Dialog::overlap_answer`]: 500 with `Retry-After:
    /// retry_after_secs`, a random 0–10.
    #[error("the peer sent a re-INVITE while its re-INVITE {pending} is unanswered (RFC 3261 §14.2)")]
    OverlappingReInvite { pending: u32, retry_after_secs: u32 },
}

impl DialogError {
    /// The status a UAS answers with when an incoming request hits this error.
    pub fn status_code(&self) -> u16 {
        match self {
            DialogError::MissingHeader { .. } | DialogError::MalformedHeader { .. } => 400,
            DialogError::NotDialogCreating { .. } => 400,
            // §12.2.2: no matching dialog.
            DialogError::UnknownDialog | DialogError::Terminated => 481,
            // §12.2.2: lower CSeq → 500 (Server Internal Error).
            DialogError::CSeqOutOfOrder { .. } => 500,
            // §14.1: 491 Request Pending.
            DialogError::Glare => 491,
            // Our own misuse; never sent to a peer, but 500 if it were.
            DialogError::ReInviteInProgress => 500,
            // §14.2: 500 with Retry-After.
            DialogError::OverlappingReInvite { .. } => 500,
        }
    }
}
