//! Why an operation was refused: one enum for the operations on callbacks
//! and agents, with a stable code, a status class and the request field at
//! fault, which each adapter (the REST API, the console) turns into its own
//! answer.

use crate::agents::SetStateError;
use crate::scheduler::book::{CancelError, ScheduleError, StoreError};
use crate::scheduler::engine::rules::RuleError;

/// An operation's refusal.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpsError {
    /// Unknown, or not visible to this actor (the two are not told apart).
    #[error("no such {what}")]
    NotFound { what: &'static str },
    #[error("agent `{agent}` does not serve queue `{queue}`")]
    NotInQueue { agent: String, queue: String },
    #[error("`{actor}` lacks the `{scope}` scope")]
    MissingScope { actor: String, scope: &'static str },
    #[error("`{actor}` may not change this callback")]
    MayNotChange { actor: String },
    #[error("agents cannot reassign callbacks")]
    AgentsCannotReassign { field: &'static str },
    #[error("`{actor}` may not use bulk actions")]
    NoBulk { actor: String },
    #[error("`{actor}` may not set agent `{agent}`'s state")]
    MayNotSetState { actor: String, agent: String },
    #[error("at most {max} callbacks per bulk action")]
    TooMany { max: usize },
    /// A bulk action over a filter was confirmed for another count than
    /// the filter matches now.
    #[error("the filter now matches {matched} callbacks, not the {confirmed} confirmed; nothing was changed")]
    CountChanged { matched: usize, confirmed: usize },
    #[error("`when` is empty")]
    EmptyWhen,
    #[error("when is longer than {max} bytes")]
    WhenTooLong { max: usize },
    #[error("no queue named `{queue}`")]
    UnknownQueue { queue: String },
    #[error("`{timezone}` is not an IANA timezone")]
    InvalidTimezone { timezone: String },
    #[error("{field}: `{value}` is not an RFC 3339 time ({reason})")]
    InvalidTime { field: &'static str, value: String, reason: String },
    #[error("give `when` or `scheduled_at`, not both")]
    ConflictingWhen,
    #[error("missing field `{field}`")]
    MissingField { field: &'static str },
    #[error("`owner: \"me\"`: no agent is on this interaction")]
    NoAgentOnCall,
    #[error("confidence {value} is not between 0 and 1")]
    InvalidConfidence { value: f64 },
    /// The book refused a create or a change. `by_when`: the time came from
    /// free text, so a complaint about `scheduled_at` is about `when`.
    #[error("{source}")]
    Schedule { source: ScheduleError, by_when: bool },
    #[error(transparent)]
    Cancel(#[from] CancelError),
    #[error(transparent)]
    SetState(SetStateError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl From<SetStateError> for OpsError {
    fn from(e: SetStateError) -> Self {
        match e {
            SetStateError::UnknownAgent { .. } => OpsError::NotFound { what: "agent" },
            e => OpsError::SetState(e),
        }
    }
}

impl From<ScheduleError> for OpsError {
    fn from(source: ScheduleError) -> Self {
        OpsError::Schedule { source, by_when: false }
    }
}

/// The class of a refusal, which each adapter maps to its own status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// Malformed input (HTTP 400).
    Malformed,
    /// The actor may not do this (403).
    Forbidden,
    /// 404.
    NotFound,
    /// A state or uniqueness conflict (409).
    Conflict,
    /// Well-formed input that breaks a rule (422).
    Invalid,
    /// redial is stopping (503).
    Unavailable,
    /// A fault of redial's own, logged (500).
    Internal,
}

impl OpsError {
    /// Marks a create or change whose time came from `when`.
    pub fn by_when(self) -> Self {
        match self {
            OpsError::Schedule { source, .. } => OpsError::Schedule { source, by_when: true },
            e => e,
        }
    }

    pub fn class(&self) -> Class {
        match self {
            OpsError::NotFound { .. } => Class::NotFound,
            OpsError::NotInQueue { .. }
            | OpsError::MissingScope { .. }
            | OpsError::MayNotChange { .. }
            | OpsError::AgentsCannotReassign { .. }
            | OpsError::NoBulk { .. }
            | OpsError::MayNotSetState { .. } => Class::Forbidden,
            OpsError::InvalidTime { .. } | OpsError::MissingField { .. } => Class::Malformed,
            OpsError::CountChanged { .. } => Class::Conflict,
            OpsError::TooMany { .. }
            | OpsError::EmptyWhen
            | OpsError::WhenTooLong { .. }
            | OpsError::UnknownQueue { .. }
            | OpsError::InvalidTimezone { .. }
            | OpsError::ConflictingWhen
            | OpsError::NoAgentOnCall
            | OpsError::InvalidConfidence { .. } => Class::Invalid,
            OpsError::Schedule { source, .. } => match source {
                ScheduleError::Rule(r) if r.http_status() == 409 => Class::Conflict,
                ScheduleError::Rule(_) => Class::Invalid,
                ScheduleError::NotFound => Class::NotFound,
                ScheduleError::WrongState { .. } | ScheduleError::DuplicateInteraction { .. } => Class::Conflict,
                ScheduleError::Store(s) => store_class(s),
            },
            OpsError::Cancel(c) => match c {
                CancelError::NotFound => Class::NotFound,
                CancelError::WrongState { .. } => Class::Conflict,
                CancelError::Store(s) => store_class(s),
            },
            OpsError::SetState(SetStateError::UnknownAgent { .. }) => Class::NotFound,
            OpsError::SetState(SetStateError::NotSettable { .. }) => Class::Invalid,
            OpsError::Store(s) => store_class(s),
        }
    }

    /// The stable machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            OpsError::NotFound { .. } => "not_found",
            OpsError::NotInQueue { .. }
            | OpsError::MissingScope { .. }
            | OpsError::MayNotChange { .. }
            | OpsError::AgentsCannotReassign { .. }
            | OpsError::NoBulk { .. }
            | OpsError::MayNotSetState { .. } => "forbidden",
            OpsError::TooMany { .. } => "too_many",
            OpsError::CountChanged { .. } => "count_changed",
            OpsError::EmptyWhen => "invalid_when",
            OpsError::WhenTooLong { .. } => "too_long",
            OpsError::UnknownQueue { .. } => "unknown_queue",
            OpsError::InvalidTimezone { .. } => "invalid_timezone",
            OpsError::InvalidTime { .. } => "invalid_time",
            OpsError::ConflictingWhen => "conflicting_fields",
            OpsError::MissingField { .. } => "invalid_field",
            OpsError::NoAgentOnCall => "unknown_owner",
            OpsError::InvalidConfidence { .. } => "invalid_confidence",
            OpsError::Schedule { source: ScheduleError::Store(s), .. } | OpsError::Cancel(CancelError::Store(s)) | OpsError::Store(s) => store_code(s),
            OpsError::Schedule { source, .. } => source.code(),
            OpsError::Cancel(c) => c.code(),
            OpsError::SetState(SetStateError::UnknownAgent { .. }) => "not_found",
            OpsError::SetState(SetStateError::NotSettable { .. }) => "invalid_state",
        }
    }

    /// The request field at fault, if one is.
    pub fn field(&self) -> Option<&str> {
        match self {
            OpsError::NotInQueue { .. } | OpsError::UnknownQueue { .. } => Some("queue"),
            OpsError::AgentsCannotReassign { field } => Some(field),
            OpsError::NoAgentOnCall => Some("owner"),
            OpsError::InvalidConfidence { .. } => Some("confidence"),
            OpsError::EmptyWhen | OpsError::WhenTooLong { .. } | OpsError::ConflictingWhen => Some("when"),
            OpsError::InvalidTimezone { .. } => Some("timezone"),
            OpsError::InvalidTime { field, .. } | OpsError::MissingField { field } => Some(field),
            OpsError::Schedule { source, by_when } => match source {
                ScheduleError::Rule(r) => match r.field() {
                    Some("scheduled_at") if *by_when => Some("when"),
                    f => f,
                },
                ScheduleError::DuplicateInteraction { .. } => Some("interaction_id"),
                _ => None,
            },
            OpsError::SetState(SetStateError::NotSettable { .. }) => Some("state"),
            _ => None,
        }
    }

    /// The active callback a duplicate collides with.
    pub fn existing_id(&self) -> Option<String> {
        match self {
            OpsError::Schedule { source: ScheduleError::Rule(RuleError::Duplicate { existing_id }), .. }
            | OpsError::Schedule { source: ScheduleError::DuplicateInteraction { existing_id }, .. } => Some(existing_id.to_string()),
            _ => None,
        }
    }

    /// What a person may be shown: the message, except for redial's own
    /// faults, which are logged here and named only vaguely.
    pub fn public_message(&self) -> String {
        match self.class() {
            Class::Unavailable if self.code() == "storage_unavailable" => {
                tracing::warn!(error = %self, "operation refused: the database is unavailable");
                "the database is unavailable; nothing was changed, try again".into()
            }
            Class::Unavailable => "redial is shutting down".into(),
            Class::Internal => {
                tracing::error!(error = %self, "operation failed");
                "internal error; see the server log".into()
            }
            _ => self.to_string(),
        }
    }
}

fn store_class(s: &StoreError) -> Class {
    match s {
        StoreError::Closed | StoreError::Unavailable(_) => Class::Unavailable,
        _ => Class::Internal,
    }
}

fn store_code(s: &StoreError) -> &'static str {
    match s {
        StoreError::Closed => "shutting_down",
        StoreError::Unavailable(_) => "storage_unavailable",
        _ => "internal",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::model::{CallbackId, Status};

    #[test]
    fn each_refusal_has_its_class_code_and_field() {
        let e = OpsError::MissingField { field: "phone" };
        assert_eq!((e.class(), e.code(), e.field(), e.to_string().as_str()), (Class::Malformed, "invalid_field", Some("phone"), "missing field `phone`"));
        let e = OpsError::AgentsCannotReassign { field: "queue" };
        assert_eq!((e.class(), e.code(), e.field()), (Class::Forbidden, "forbidden", Some("queue")));
        let e = OpsError::from(SetStateError::UnknownAgent { id: "zed".into() });
        assert_eq!((e.class(), e.to_string().as_str()), (Class::NotFound, "no such agent"));
        let e = OpsError::from(CancelError::WrongState { status: Status::Completed });
        assert_eq!((e.class(), e.code()), (Class::Conflict, "wrong_state"));
        let e = OpsError::from(StoreError::Closed);
        assert_eq!((e.class(), e.code(), e.public_message().as_str()), (Class::Unavailable, "shutting_down", "redial is shutting down"));
        let e = OpsError::from(StoreError::Unavailable("connection refused".into()));
        assert_eq!((e.class(), e.code()), (Class::Unavailable, "storage_unavailable"));
        assert!(e.public_message().contains("database is unavailable"), "{}", e.public_message());
    }

    #[test]
    fn a_time_from_when_is_blamed_on_when_and_a_duplicate_names_the_existing_callback() {
        let too_soon = ScheduleError::Rule(RuleError::TooSoon { earliest_ms: 0 });
        assert_eq!(OpsError::from(too_soon.clone()).field(), Some("scheduled_at"));
        assert_eq!(OpsError::from(too_soon).by_when().field(), Some("when"));
        let id = CallbackId::new(1, 2);
        let e = OpsError::from(ScheduleError::Rule(RuleError::Duplicate { existing_id: id }));
        assert_eq!((e.class(), e.code(), e.existing_id()), (Class::Conflict, "duplicate", Some(id.to_string())));
        let e = OpsError::from(ScheduleError::DuplicateInteraction { existing_id: id });
        assert_eq!((e.field(), e.existing_id()), (Some("interaction_id"), Some(id.to_string())));
    }
}
