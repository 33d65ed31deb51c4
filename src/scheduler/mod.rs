//! The durable callback book.
//!
//! - [`model`]: records, statuses, attempts, origins.
//! - [`book`]: the storage seam, the one interface to the durable book.
//! - [`change`]: what each change does to a record, shared by the backends.
//! - [`store`]: the redb book: tables, indexes and group commit.
//! - [`window`]: calling windows (`hours`), re-exported from the crate's
//!   [`crate::window`], which configuration parses into.
//! - [`wheel`]: the in-memory timer wheel for the near future.
//! - [`engine`]: the sans-IO core: rules, firing, retries, priority.
//! - [`driver`]: the tokio driver that hands due callbacks to the dialler.
//! - [`when`]: free-text times ("tomorrow morning") to due times.

pub mod change;
pub mod driver;
pub mod engine;
pub mod book;
pub mod model;
pub(crate) mod reply;
pub mod store;
pub mod wheel;
pub mod when;
pub use crate::window;
