//! PostgreSQL errors as the storage seam reports them.

use crate::scheduler::book::StoreError;

/// A PostgreSQL error as the book reports it: the server's message and
/// SQLSTATE when there is one.
pub fn pg_error(e: tokio_postgres::Error) -> StoreError {
    let text = match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => match std::error::Error::source(&e) {
            Some(s) => format!("{e}: {s}"),
            None => e.to_string(),
        },
    };
    if is_outage(&e) { StoreError::Unavailable(text.into()) } else { StoreError::Postgres(text.into()) }
}

/// Whether `e` says the server cannot be reached rather than that a statement
/// failed: no answer from the server at all (connect refused, the connection
/// closed, an I/O error), or SQLSTATE class 08 (connection exception) or 57P
/// (the server shutting down or starting: `admin_shutdown`, `crash_shutdown`,
/// `cannot_connect_now`).
fn is_outage(e: &tokio_postgres::Error) -> bool {
    match e.as_db_error() {
        Some(db) => {
            let code = db.code().code();
            code.starts_with("08") || code.starts_with("57P")
        }
        None => e.is_closed() || std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
    }
}
