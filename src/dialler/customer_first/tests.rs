//! The customer-first machine in virtual time: every path, no socket.

use std::time::Duration;

use super::machine::*;
use crate::amd::AmdResult;
use crate::calls::sim::Sim;
use crate::dialler::flow::testing::{finish, AGENT_RING, RING};
use crate::dialler::flow::{Action, Event, Step};
use crate::scheduler::model::{Amd, Outcome};

const APOLOGY: Duration = Duration::from_secs(3);

fn new_sim(on_machine: MachinePlan, owned: bool) -> (Sim<CustomerFirst>, Vec<Action>) {
    Sim::start(CustomerFirst::new(Params { agent: "alice".into(), ring_timeout: RING, agent_ring_timeout: AGENT_RING, on_machine, owned, apology: APOLOGY }))
}

/// A queue callback whose queue retries on a machine.
fn queue() -> (Sim<CustomerFirst>, Vec<Action>) {
    new_sim(MachinePlan::Retry, false)
}

/// Answered by a person, the agent ringing.
fn agent_ringing(owned: bool) -> Sim<CustomerFirst> {
    let (mut s, _) = new_sim(MachinePlan::Retry, owned);
    s.ev(Event::CustomerProgress { early_media: false });
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.ev(Event::Amd(AmdResult::Human));
    assert_eq!(out, vec![Action::Mark(Step::Amd), Action::SetAmd(Amd::Human), Action::PlayHold, Action::RingAgent("alice".into())]);
    s
}

#[test]
fn start_dials_and_marks_the_moment() {
    let (s, out) = queue();
    assert_eq!(out, vec![Action::DialCustomer]);
    assert_eq!(s.m.poll_timeout(), None, "no ring timeout before the first 18x");
    assert!(!s.m.wants_media());
}

#[test]
fn person_answers_agent_answers_bridged_then_completed_as_human() {
    let mut s = agent_ringing(false);
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::Bridge]);
    let mut out = Vec::new();
    s.m.bridged(&mut out);
    assert_eq!(out, vec![Action::Mark(Step::Bridged), Action::ShowLive { agent: Some("alice".into()) }]);
    assert_eq!(s.m.poll_timeout(), None, "a conversation has no time limit");
    // Either side's hang-up ends it.
    let out = s.ev(Event::AgentEnded);
    assert!(out.contains(&Action::HangUpCustomer) && out.contains(&Action::HangUpAgent));
    assert_eq!(finish(&out).outcome, Outcome::Human);
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn answer_starts_amd_and_shows_the_call() {
    let (mut s, _) = queue();
    assert_eq!(s.ev(Event::CustomerProgress { early_media: false }), vec![Action::Mark(Step::Ringing)]);
    let out = s.ev(Event::CustomerAnswered { usable: true });
    assert_eq!(out, vec![Action::Mark(Step::Answered), Action::ShowLive { agent: None }, Action::StartAmd]);
    assert_eq!(s.m.poll_timeout(), Some(s.now + AMD_LIMIT));
    assert!(s.m.wants_media());
}

#[test]
fn no_amd_verdict_in_time_counts_as_a_person() {
    let (mut s, _) = queue();
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.until_timeout();
    assert_eq!(out, vec![Action::Mark(Step::Amd), Action::SetAmd(Amd::Unknown), Action::PlayHold, Action::RingAgent("alice".into())]);
}

#[test]
fn machine_with_retry_hangs_up_as_machine() {
    let (mut s, _) = new_sim(MachinePlan::Retry, false);
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.ev(Event::Amd(AmdResult::Machine));
    assert_eq!(&out[..3], &[Action::Mark(Step::Amd), Action::SetAmd(Amd::Machine), Action::HangUpCustomer]);
    let f = finish(&out);
    assert_eq!((f.outcome, f.retry), (Outcome::Machine, false));
}

#[test]
fn machine_with_complete_hangs_up_as_machine_at_once() {
    let (mut s, _) = new_sim(MachinePlan::Complete, false);
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.ev(Event::Amd(AmdResult::Machine));
    assert!(!out.contains(&Action::LoadMessage));
    assert_eq!(finish(&out).outcome, Outcome::Machine);
}

#[test]
fn machine_with_message_waits_for_the_beep_then_plays_it_to_its_end() {
    let (mut s, _) = new_sim(MachinePlan::Message, false);
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.ev(Event::Amd(AmdResult::Machine));
    assert_eq!(out.last(), Some(&Action::LoadMessage));
    assert!(s.ev(Event::MessageLoaded(Some(Duration::from_secs(8)))).is_empty());
    assert_eq!(s.m.poll_timeout(), Some(s.now + BEEP_LIMIT));
    s.now += Duration::from_secs(4);
    assert_eq!(s.ev(Event::Beep), vec![Action::PlayMessage]);
    assert_eq!(s.m.poll_timeout(), Some(s.now + Duration::from_secs(8) + PROMPT_SLACK));
    let out = s.ev(Event::PromptDone);
    assert_eq!(out[0], Action::HangUpCustomer);
    assert_eq!(finish(&out).outcome, Outcome::Machine);
}

#[test]
fn machine_message_is_played_anyway_when_no_beep_comes_in_time() {
    let (mut s, _) = new_sim(MachinePlan::Message, false);
    s.ev(Event::CustomerAnswered { usable: true });
    s.ev(Event::Amd(AmdResult::Machine));
    s.ev(Event::MessageLoaded(Some(Duration::from_secs(5))));
    assert!(s.after(BEEP_LIMIT - Duration::from_millis(1)).is_empty());
    assert_eq!(s.after(Duration::from_millis(1)), vec![Action::PlayMessage]);
    // A prompt that never reports its end is waited for its length only.
    let out = s.after(Duration::from_secs(5) + PROMPT_SLACK);
    assert_eq!(finish(&out).outcome, Outcome::Machine);
}

#[test]
fn machine_message_that_cannot_load_or_a_machine_hanging_up_ends_as_machine() {
    let (mut s, _) = new_sim(MachinePlan::Message, false);
    s.ev(Event::CustomerAnswered { usable: true });
    s.ev(Event::Amd(AmdResult::Machine));
    assert_eq!(finish(&s.ev(Event::MessageLoaded(None))).outcome, Outcome::Machine);

    let (mut s, _) = new_sim(MachinePlan::Message, false);
    s.ev(Event::CustomerAnswered { usable: true });
    s.ev(Event::Amd(AmdResult::Machine));
    s.ev(Event::MessageLoaded(Some(Duration::from_secs(5))));
    let out = s.ev(Event::CustomerEnded);
    assert!(!out.contains(&Action::PlayMessage));
    assert_eq!(finish(&out).outcome, Outcome::Machine);
}

#[test]
fn ring_timeout_runs_from_the_first_18x_and_cancels_as_no_answer() {
    let (mut s, _) = queue();
    s.now += Duration::from_secs(3);
    s.ev(Event::CustomerProgress { early_media: false });
    let first = s.now;
    s.now += Duration::from_secs(10);
    // A later 18x does not restart the timer.
    s.ev(Event::CustomerProgress { early_media: false });
    assert_eq!(s.m.poll_timeout(), Some(first + RING));
    assert_eq!(s.until_timeout(), vec![Action::CancelCustomer]);
    // The carrier's 487 to our CANCEL.
    let out = s.ev(Event::CustomerFailed { status: 487 });
    assert_eq!(out[0], Action::CloseCustomerMedia);
    let f = finish(&out);
    assert_eq!((f.outcome, f.sip_status, f.retry), (Outcome::NoAnswer, Some(487), false));
}

#[test]
fn an_answer_crossing_our_cancel_is_ignored_and_silence_after_cancel_is_no_answer() {
    let (mut s, _) = queue();
    s.ev(Event::CustomerProgress { early_media: false });
    s.until_timeout();
    assert!(!s.m.takes_answer());
    assert!(s.ev(Event::CustomerAnswered { usable: true }).is_empty());
    assert_eq!(s.m.poll_timeout(), Some(s.now + CANCEL_GRACE));
    let out = s.until_timeout();
    assert_eq!(finish(&out).outcome, Outcome::NoAnswer);
}

#[test]
fn busy_declined_and_failures_map_to_outcomes() {
    let end = |status| {
        let (mut s, _) = queue();
        s.ev(Event::CustomerProgress { early_media: false });
        finish(&s.ev(Event::CustomerFailed { status })).clone()
    };
    assert_eq!(end(486).outcome, Outcome::Busy);
    assert_eq!(end(600).outcome, Outcome::Busy);
    assert_eq!(end(603).outcome, Outcome::Declined);
    assert_eq!(end(480).outcome, Outcome::NoAnswer);
    let f = end(404);
    assert_eq!((f.outcome, f.retry), (Outcome::Failed, false), "a wrong number is not retried");
    let f = end(503);
    assert_eq!((f.outcome, f.retry, f.sip_status), (Outcome::Failed, true, Some(503)), "a server failure is retried");
}

#[test]
fn unusable_answer_sdp_is_a_retried_failure() {
    let (mut s, _) = queue();
    let out = s.ev(Event::CustomerAnswered { usable: false });
    assert!(out.contains(&Action::HangUpCustomer));
    let f = finish(&out);
    assert_eq!((f.outcome, f.retry), (Outcome::Failed, true));
}

#[test]
fn customer_hanging_up_during_amd_is_no_answer() {
    let (mut s, _) = queue();
    s.ev(Event::CustomerAnswered { usable: true });
    let out = s.ev(Event::CustomerEnded);
    assert_eq!(finish(&out).outcome, Outcome::NoAnswer);
}

#[test]
fn queue_callback_agent_declines_then_a_second_agent_answers() {
    let mut s = agent_ringing(false);
    let out = s.ev(Event::AgentFailed { status: 603 });
    assert_eq!(out, vec![Action::ReleaseAgent, Action::ReserveAgent { exclude: vec!["alice".into()] }]);
    let out = s.ev(Event::Reserved(Some("bob".into())));
    assert_eq!(out, vec![Action::HoldAgent("bob".into()), Action::RingAgent("bob".into())]);
    assert_eq!(s.m.agent(), "bob");
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::Bridge]);
}

#[test]
fn queue_callback_second_agent_no_answer_plays_the_apology_then_agent_no_answer() {
    let mut s = agent_ringing(false);
    // The first agent lets it ring out.
    let out = s.until_timeout();
    assert_eq!(out, vec![Action::CancelAgent, Action::ReleaseAgent, Action::ReserveAgent { exclude: vec!["alice".into()] }]);
    s.ev(Event::Reserved(Some("bob".into())));
    // So does the second: no third is tried.
    let out = s.until_timeout();
    assert_eq!(out, vec![Action::CancelAgent, Action::ReleaseAgent, Action::StopPlaying, Action::PlayApology]);
    let out = s.ev(Event::PromptDone);
    assert_eq!(out[0], Action::HangUpCustomer);
    assert_eq!(finish(&out).outcome, Outcome::AgentNoAnswer);
}

#[test]
fn owned_callback_agent_no_answer_tries_nobody_else() {
    let mut s = agent_ringing(true);
    let out = s.until_timeout();
    assert!(!out.iter().any(|a| matches!(a, Action::ReserveAgent { .. })), "{out:?}");
    assert_eq!(out.last(), Some(&Action::PlayApology));
    // An apology that never reports its end is waited for its length.
    let out = s.after(APOLOGY + PROMPT_SLACK);
    assert_eq!(finish(&out).outcome, Outcome::AgentNoAnswer);
}

#[test]
fn owned_callback_agent_declines_gets_the_apology() {
    let mut s = agent_ringing(true);
    let out = s.ev(Event::AgentFailed { status: 486 });
    assert_eq!(out, vec![Action::ReleaseAgent, Action::StopPlaying, Action::PlayApology]);
    assert_eq!(finish(&s.ev(Event::CustomerEnded)).outcome, Outcome::AgentNoAnswer);
}

#[test]
fn queue_callback_with_no_free_agent_left_gets_the_apology() {
    let mut s = agent_ringing(false);
    s.ev(Event::AgentUnreachable);
    let out = s.ev(Event::Reserved(None));
    assert_eq!(out, vec![Action::StopPlaying, Action::PlayApology]);
}

#[test]
fn customer_hanging_up_while_the_agent_rings_cancels_the_agent() {
    let mut s = agent_ringing(false);
    s.now += Duration::from_secs(5);
    let out = s.ev(Event::CustomerEnded);
    assert_eq!(&out[..3], &[Action::CancelAgent, Action::ReleaseAgent, Action::HangUpCustomer]);
    let f = finish(&out);
    assert_eq!(f.outcome, Outcome::NoAnswer);
    assert_eq!(s.m.poll_timeout(), None);
}

#[test]
fn media_timeout_while_bridged_ends_the_call_as_human() {
    let mut s = agent_ringing(false);
    s.ev(Event::AgentAnswered);
    s.m.bridged(&mut Vec::new());
    // The driver reports the customer's media timeout as the leg ending.
    let out = s.ev(Event::CustomerEnded);
    assert!(out.contains(&Action::HangUpAgent));
    assert_eq!(finish(&out).outcome, Outcome::Human);
}

#[test]
fn bridge_failure_is_agent_no_answer() {
    let mut s = agent_ringing(false);
    s.ev(Event::AgentAnswered);
    let out = s.ev(Event::BridgeFailed("no codec".into()));
    let f = finish(&out);
    assert_eq!(f.outcome, Outcome::AgentNoAnswer);
    assert_eq!(f.note.as_deref(), Some("bridge failed: no codec"));
}

#[test]
fn agent_media_that_never_came_up_is_agent_no_answer_with_its_cause() {
    let mut s = agent_ringing(false);
    s.ev(Event::AgentAnswered);
    s.m.bridged(&mut Vec::new());
    let out = s.ev(Event::AgentMediaFailed("remote fingerprint no match".into()));
    assert!(out.contains(&Action::HangUpCustomer) && out.contains(&Action::HangUpAgent), "{out:?}");
    let f = finish(&out);
    assert_eq!((f.outcome, f.sip_status), (Outcome::AgentNoAnswer, Some(200)));
    assert_eq!(f.note.as_deref(), Some("agent media failed: remote fingerprint no match"));
}

#[test]
fn a_customer_that_cannot_be_dialled_ends_the_attempt_as_recorded() {
    let (mut s, _) = queue();
    let f = crate::dialler::attempt::Finish::new(Outcome::Failed, None).note("not an E.164 number");
    let out = s.ev(Event::DialFailed(f.clone()));
    assert_eq!(out, vec![Action::End(f)]);
}
