//! Why a console page or form was refused: an operation's refusal, or a
//! form the console itself cannot read. Shown as the page's message (with
//! the field at fault) and never changes anything.

use axum::http::StatusCode;

use crate::ops::error::OpsError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ConsoleError {
    #[error(transparent)]
    Ops(#[from] OpsError),
    #[error("select at least one callback")]
    NothingSelected,
    #[error("choose cancel, reassign, move or reschedule")]
    UnknownAction,
    #[error("give the new time for the selected callbacks")]
    NoWhen,
    #[error("name the queue to move the callbacks to")]
    NoQueue,
    #[error("state must be available or away")]
    UnknownState,
    #[error("this filter matches {matched} scheduled callbacks: confirm the count before acting on all of them; nothing was changed")]
    Unconfirmed { matched: usize },
    #[error("Done for {done}; refused for {refused} (first: {first_id}: {first_reason}).")]
    PartlyRefused { done: usize, refused: usize, first_id: String, first_reason: String },
}

impl ConsoleError {
    /// The HTTP status of a page that shows this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ConsoleError::Ops(e) => crate::api::error::status_of(e.class()),
            ConsoleError::UnknownAction | ConsoleError::UnknownState => StatusCode::BAD_REQUEST,
            ConsoleError::PartlyRefused { .. } | ConsoleError::Unconfirmed { .. } => StatusCode::CONFLICT,
            ConsoleError::NothingSelected | ConsoleError::NoWhen | ConsoleError::NoQueue => StatusCode::UNPROCESSABLE_ENTITY,
        }
    }

    /// What the person is shown.
    pub fn message(&self) -> String {
        match self {
            ConsoleError::Ops(e) => e.public_message(),
            e => e.to_string(),
        }
    }

    /// The form field at fault.
    pub fn field(&self) -> Option<String> {
        match self {
            ConsoleError::Ops(e) => e.field().map(str::to_string),
            ConsoleError::UnknownAction => Some("action".into()),
            ConsoleError::NoWhen => Some("when".into()),
            ConsoleError::NoQueue => Some("queue".into()),
            ConsoleError::UnknownState => Some("state".into()),
            _ => None,
        }
    }
}

impl From<crate::scheduler::book::StoreError> for ConsoleError {
    fn from(e: crate::scheduler::book::StoreError) -> Self {
        ConsoleError::Ops(e.into())
    }
}
