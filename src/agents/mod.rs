//! Agents as the dialler and the API see them.
//!
//! - [`registry`]: each configured agent's state (`offline`, `available`,
//!   `away`, `reserved`), its softphone registrations and its reservation;
//!   implements the scheduler's [`Availability`](crate::scheduler::engine::Availability).
//! - [`saved`]: registrations and away choices kept across restarts, written behind.

pub mod registry;
pub mod saved;

pub use registry::{AgentInfo, AgentState, Registration, Registry, SetStateError};
