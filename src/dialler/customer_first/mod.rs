//! Customer-first: dial the customer, run AMD on their first seconds, then
//! ring the reserved agent while the customer hears the hold prompt, and
//! bridge. The rules are in [`machine`]; [`flow::drive`] performs them.

pub mod machine;
#[cfg(test)]
mod tests;

use crate::config::{OnMachine, Queue};
use crate::scheduler::model::Dispatch;

use super::attempt::{AttemptLog, Finish};
use super::flow;
use super::Dialler;
use machine::{CustomerFirst, MachinePlan, Params};

pub async fn run(d: &Dialler, dispatch: &Dispatch, queue: &Queue, interaction: &str, log: &mut AttemptLog) -> Finish {
    let mut m = CustomerFirst::new(Params {
        agent: dispatch.agent.clone(),
        ring_timeout: queue.ring_timeout,
        agent_ring_timeout: queue.agent_ring_timeout,
        on_machine: match queue.on_machine {
            OnMachine::Retry => MachinePlan::Retry,
            OnMachine::Complete => MachinePlan::Complete,
            OnMachine::Message(_) => MachinePlan::Message,
        },
        owned: dispatch.callback.owner.is_some(),
        apology: d.prompts.apology.duration(),
    });
    flow::drive(d, dispatch, queue, interaction, log, &mut m).await
}
