//! Agent-first: ring the reserved agent; once they answer, dial the
//! customer while the agent hears the call's progress (the carrier's early
//! media, else a ring-back tone), and bridge on answer. A customer who is
//! busy or does not answer is heard by the agent as a busy tone before the
//! call ends with that outcome. No AMD: the agent listens. The rules are in
//! [`machine`]; [`flow::drive`] performs them.

pub mod machine;
#[cfg(test)]
mod tests;

use crate::config::Queue;
use crate::scheduler::model::Dispatch;

use super::attempt::{AttemptLog, Finish};
use super::flow;
use super::Dialler;
use machine::{AgentFirst, Params};

pub async fn run(d: &Dialler, dispatch: &Dispatch, queue: &Queue, interaction: &str, log: &mut AttemptLog) -> Finish {
    let mut m = AgentFirst::new(Params { agent: dispatch.agent.clone(), agent_ring_timeout: queue.agent_ring_timeout, ring_timeout: queue.ring_timeout });
    flow::drive(d, dispatch, queue, interaction, log, &mut m).await
}
