//! Agents as the dialler and the API see them.
//!
//! - [`registry`]: each configured agent's state (`offline`, `available`,
//!   `away`, `reserved`), its softphone registrations and its reservation;
//!   implements the scheduler's [`Availability`](crate::scheduler::engine::Availability).

pub mod registry;

pub use registry::{AgentInfo, AgentState, Registration, Registry, SetStateError};
