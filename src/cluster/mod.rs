//! Cluster mode's coordination in PostgreSQL: several `redial serve` nodes
//! share one book and must never ring a customer twice or hold one agent
//! twice.
//!
//! - [`schema`]: the tables, migrated at start under an advisory lock.
//! - [`leases`]: shard leases with fencing epochs, and the fenced start of
//!   an attempt.
//! - [`holds`]: agent reservations as conditional writes.
//! - [`agents`]: the dialler's view of agents, without those another node holds.
//! - [`book`]: the callback book in PostgreSQL behind the storage seam.
//! - [`bindings`]: agents' registrations and away choices, kept across restarts.
//! - [`outbox`]: the durable outbox shared by the nodes, and the turns of
//!   the tasks that must run once in the cluster (webhook deliverers, texts).
//! - [`node`]: this node's lease loop and the `GET /v1/cluster` view.
//!
//! Time that decides ownership is the database's (`now()`), so clock skew
//! between nodes cannot give one shard two owners; each node also keeps a
//! local deadline ([`leases::Held`]) so it stops dialling before its lease
//! could be taken over.

pub mod agents;
pub mod bindings;
pub mod book;
pub mod error;
pub mod holds;
pub mod leases;
pub mod node;
pub mod outbox;
pub mod schema;
