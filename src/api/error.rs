//! The API's error body and the mapping from every domain error to an HTTP
//! status and a stable `code` (400, 401, 403, 404,
//! 409, 413, 422, 429).

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::agents::SetStateError;
use crate::ops::error::{Class, OpsError};
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::store::{CancelError, ScheduleError, StoreError};

/// `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[schema(example = json!({"code": "duplicate", "message": "an active callback already exists for this phone in this queue: cb_0000000100000", "field": "phone", "existing_id": "cb_0000000100000"}))]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `invalid_json`, `too_soon`, `duplicate`.
    pub code: &'static str,
    pub message: String,
    /// The request field the error is about.
    pub field: Option<String>,
    /// The active callback a duplicate collides with (409 `duplicate` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub existing_id: Option<String>,
}

/// An error response.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub detail: ErrorDetail,
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, detail: ErrorDetail { code, message: message.into(), field: None, existing_id: None }, retry_after: None }
    }

    pub fn field(mut self, f: impl Into<String>) -> Self {
        self.detail.field = Some(f.into());
        self
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found(what: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", format!("no such {what}"))
    }

    pub fn internal(e: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %e, "API request failed");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut r = (self.status, axum::Json(ErrorBody { error: self.detail })).into_response();
        if let Some(s) = self.retry_after {
            r.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        r
    }
}

/// `Retry-After` of a request refused while the database is unavailable: about
/// what a node needs to connect again after the server is back.
pub const STORAGE_RETRY_AFTER_S: u64 = 5;

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::new(StatusCode::SERVICE_UNAVAILABLE, "shutting_down", "redial is shutting down"),
            StoreError::Unavailable(_) => {
                tracing::warn!(error = %e, "API request refused: the database is unavailable");
                let mut err = Self::new(StatusCode::SERVICE_UNAVAILABLE, "storage_unavailable", "the database is unavailable; nothing was changed, try again");
                err.retry_after = Some(STORAGE_RETRY_AFTER_S);
                err
            }
            e => Self::internal(&e),
        }
    }
}

impl From<RuleError> for ApiError {
    fn from(e: RuleError) -> Self {
        // Codes and statuses are the scheduler's (one source of truth).
        let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::UNPROCESSABLE_ENTITY);
        let mut err = Self::new(status, e.code(), e.to_string());
        err.detail.field = e.field().map(str::to_string);
        if let RuleError::Duplicate { existing_id } = &e {
            err.detail.existing_id = Some(existing_id.to_string());
        }
        err
    }
}

impl From<ScheduleError> for ApiError {
    fn from(e: ScheduleError) -> Self {
        match e {
            ScheduleError::Rule(r) => r.into(),
            ScheduleError::NotFound => Self::not_found("callback"),
            ScheduleError::WrongState { .. } => Self::new(StatusCode::CONFLICT, "wrong_state", e.to_string()),
            ScheduleError::DuplicateInteraction { existing_id } => {
                let mut err = Self::new(StatusCode::CONFLICT, "duplicate", e.to_string()).field("interaction_id");
                err.detail.existing_id = Some(existing_id.to_string());
                err
            }
            ScheduleError::Store(s) => s.into(),
        }
    }
}

impl From<CancelError> for ApiError {
    fn from(e: CancelError) -> Self {
        match e {
            CancelError::NotFound => Self::not_found("callback"),
            CancelError::WrongState { .. } => Self::new(StatusCode::CONFLICT, "wrong_state", e.to_string()),
            CancelError::Store(s) => s.into(),
        }
    }
}

impl From<SetStateError> for ApiError {
    fn from(e: SetStateError) -> Self {
        match e {
            SetStateError::UnknownAgent { .. } => Self::not_found("agent"),
            SetStateError::NotSettable { .. } => Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_state", e.to_string()).field("state"),
        }
    }
}

/// The HTTP status of an operation's refusal, for the API and the console alike.
pub fn status_of(class: Class) -> StatusCode {
    match class {
        Class::Malformed => StatusCode::BAD_REQUEST,
        Class::Forbidden => StatusCode::FORBIDDEN,
        Class::NotFound => StatusCode::NOT_FOUND,
        Class::Conflict => StatusCode::CONFLICT,
        Class::Invalid => StatusCode::UNPROCESSABLE_ENTITY,
        Class::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Class::Internal => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<OpsError> for ApiError {
    fn from(e: OpsError) -> Self {
        let status = status_of(e.class());
        let mut err = Self::new(status, e.code(), e.public_message());
        err.detail.field = e.field().map(str::to_string);
        err.detail.existing_id = e.existing_id();
        if err.detail.code == "storage_unavailable" {
            err.retry_after = Some(STORAGE_RETRY_AFTER_S);
        }
        err
    }
}
