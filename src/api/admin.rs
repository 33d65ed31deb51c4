//! Operator routes: `POST /v1/admin/backup` (admin scope).

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::error::{ApiError, ErrorBody};
use super::state::AppState;
use crate::scheduler::store::StoreError;

/// `POST /v1/admin/backup` body.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"path": "/var/lib/redial/data/backup-2026-12-04.redb"}))]
pub struct BackupRequest {
    /// Absolute path of the copy on the server's file system; the file must not exist,
    /// its directory must.
    pub path: String,
}

/// What a backup wrote.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[schema(example = json!({"path": "/var/lib/redial/data/backup-2026-12-04.redb", "callbacks": 1200, "bytes": 1630208}))]
pub struct BackupView {
    pub path: String,
    /// Callback records in the copy.
    pub callbacks: u64,
    /// Size of the file.
    pub bytes: u64,
}

/// A consistent copy of the book (one read snapshot, taken while the writer goes on),
/// written to a new file on the server.
#[utoipa::path(post, path = "/v1/admin/backup", tag = "ops", request_body = BackupRequest,
    responses(
        (status = 201, description = "Written", body = BackupView),
        (status = 400, description = "Bad body, or a relative path", body = ErrorBody),
        (status = 401, description = "Missing or unknown token", body = ErrorBody),
        (status = 403, description = "Token lacks admin", body = ErrorBody),
        (status = 409, description = "The file exists", body = ErrorBody),
        (status = 422, description = "The file cannot be written there", body = ErrorBody),
    ),
    security(("bearer" = [])))]
pub async fn backup(State(s): State<AppState>, body: Result<Bytes, BytesRejection>) -> Result<(StatusCode, Json<BackupView>), ApiError> {
    let body = body.map_err(|e| ApiError::bad_request("invalid_body", e.body_text()))?;
    let req: BackupRequest = serde_json::from_slice(&body).map_err(|e| ApiError::bad_request("invalid_body", e.to_string()))?;
    let path = std::path::PathBuf::from(&req.path);
    if !path.is_absolute() {
        return Err(ApiError::bad_request("invalid_path", "path must be absolute (it is on the server)").field("path"));
    }
    let book = s.book.clone();
    let rep = tokio::task::spawn_blocking(move || book.backup(&path)).await.map_err(|e| ApiError::internal(&e))?;
    match rep {
        Ok(r) => {
            tracing::info!(path = %r.path.display(), callbacks = r.callbacks, bytes = r.bytes, "backup written");
            Ok((StatusCode::CREATED, Json(BackupView { path: r.path.display().to_string(), callbacks: r.callbacks, bytes: r.bytes })))
        }
        Err(StoreError::Io { path, source }) => {
            let status = if source.kind() == std::io::ErrorKind::AlreadyExists { StatusCode::CONFLICT } else { StatusCode::UNPROCESSABLE_ENTITY };
            let code = if status == StatusCode::CONFLICT { "exists" } else { "cannot_write" };
            Err(ApiError::new(status, code, format!("{}: {source}", path.display())).field("path"))
        }
        Err(e) => Err(e.into()),
    }
}
