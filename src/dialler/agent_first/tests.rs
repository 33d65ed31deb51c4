//! The agent-first machine in virtual time: every path, no socket.

use super::machine::*;
use crate::calls::sim::Sim;
use crate::dialler::attempt::Finish;
use crate::dialler::flow::testing::{finish, AGENT_RING, RING};
use crate::dialler::flow::{Action, Event, Flow, Step};
use crate::scheduler::model::Outcome;

fn new_sim() -> (Sim<AgentFirst>, Vec<Action>) {
    Sim::start(AgentFirst::new(Params { agent: "alice".into(), agent_ring_timeout: AGENT_RING, ring_timeout: RING }))
}

/// The agent answered; the customer is being dialled.
fn dialling() -> Sim<AgentFirst> {
    let (mut s, _) = new_sim();
    let out = s.ev(Event::AgentAnswered);
    assert_eq!(out, vec![Action::AgentOnCall, Action::ShowLive { agent: Some("alice".into()) }, Action::PlayRingback, Action::DialCustomer]);
    s
}

#[test]
fn rings_the_agent_first_for_the_agent_ring_timeout() {
    let (s, out) = new_sim();
    assert_eq!(out, vec![Action::RingAgent("alice".into())]);
    assert_eq!(s.m.poll_timeout(), Some(s.now + AGENT_RING));
}

#[test]
fn agent_not_answering_declining_or_unreachable() {
    let (mut s, _) = new_sim();
    let out = s.until_timeout();
    assert_eq!(out[0], Action::CancelAgent);
    assert_eq!(finish(&out), &Finish::new(Outcome::AgentNoAnswer, None));

    let (mut s, _) = new_sim();
    assert_eq!(finish(&s.ev(Event::AgentFailed { status: 603 })), &Finish::new(Outcome::AgentNoAnswer, Some(603)));
    let (mut s, _) = new_sim();
    assert_eq!(finish(&s.ev(Event::AgentFailed { status: 480 })), &Finish::new(Outcome::AgentNoAnswer, None));
    let (mut s, _) = new_sim();
    assert_eq!(finish(&s.ev(Event::AgentUnreachable)).outcome, Outcome::AgentUnavailable);
}

#[test]
fn customer_answers_and_is_bridged_then_human() {
    let mut s = dialling();
    s.ev(Event::CustomerProgress { early_media: false });
    assert_eq!(s.ev(Event::CustomerAnswered { usable: true }), vec![Action::Mark(Step::Answered), Action::Bridge]);
    let mut out = Vec::new();
    s.m.bridged(&mut out);
    assert_eq!(out[0], Action::Mark(Step::Bridged));
    assert!(s.m.wants_media());
    assert_eq!(finish(&s.ev(Event::CustomerEnded)).outcome, Outcome::Human);
}

#[test]
fn early_media_is_relayed_to_the_agent_once() {
    let mut s = dialling();
    assert_eq!(s.ev(Event::CustomerProgress { early_media: false }), vec![Action::Mark(Step::Ringing)]);
    assert_eq!(s.ev(Event::CustomerProgress { early_media: true }), vec![Action::Mark(Step::Ringing), Action::RelayEarlyMedia]);
    s.ev(Event::EarlyMediaRelayed(true));
    assert_eq!(s.ev(Event::CustomerProgress { early_media: true }), vec![Action::Mark(Step::Ringing)]);
}

#[test]
fn busy_customer_with_early_media_the_agent_hears_the_busy_tone_then_busy() {
    let mut s = dialling();
    s.ev(Event::CustomerProgress { early_media: true });
    s.ev(Event::EarlyMediaRelayed(true));
    let out = s.ev(Event::CustomerFailed { status: 486 });
    assert_eq!(out, vec![Action::CloseCustomerMedia, Action::PlayBusyTone]);
    assert_eq!(s.m.poll_timeout(), Some(s.now + BUSY_TONE));
    let out = s.until_timeout();
    assert_eq!(out[0], Action::HangUpAgent);
    let f = finish(&out);
    assert_eq!((f.outcome, f.sip_status), (Outcome::Busy, Some(486)));
}

#[test]
fn customer_no_answer_with_early_media_cancels_at_the_ring_timeout() {
    let mut s = dialling();
    s.ev(Event::CustomerProgress { early_media: true });
    s.ev(Event::EarlyMediaRelayed(true));
    let first = s.now;
    assert_eq!(s.m.poll_timeout(), Some(first + RING));
    assert_eq!(s.until_timeout(), vec![Action::CancelCustomer]);
    // An answer crossing the CANCEL is not taken.
    assert!(!s.m.takes_answer());
    assert!(s.ev(Event::CustomerAnswered { usable: true }).is_empty());
    assert_eq!(s.ev(Event::CustomerFailed { status: 487 }), vec![Action::CloseCustomerMedia, Action::PlayBusyTone]);
    // The agent hanging up during the busy tone ends it sooner.
    let out = s.ev(Event::AgentEnded);
    assert_eq!(finish(&out).outcome, Outcome::NoAnswer);
}

#[test]
fn agent_hanging_up_while_the_customer_rings_cancels_the_customer() {
    let mut s = dialling();
    s.ev(Event::CustomerProgress { early_media: false });
    let out = s.ev(Event::AgentEnded);
    assert_eq!(out[0], Action::HangUpCustomer);
    assert_eq!(finish(&out).outcome, Outcome::AgentUnavailable);
}

#[test]
fn a_customer_that_cannot_be_dialled_is_heard_as_busy_tone_then_recorded() {
    let mut s = dialling();
    let out = s.ev(Event::DialFailed(Finish::new(Outcome::Failed, None).note("not an E.164 number")));
    assert_eq!(out, vec![Action::PlayBusyTone]);
    let f = finish(&s.until_timeout()).clone();
    assert_eq!((f.outcome, f.retry), (Outcome::Failed, false));
}

#[test]
fn agent_media_failing_while_the_customer_rings_hangs_up_both_as_agent_no_answer() {
    let mut s = dialling();
    s.ev(Event::CustomerProgress { early_media: false });
    let out = s.ev(Event::AgentMediaFailed("DTLS handshake failed".into()));
    assert_eq!(out[..2], [Action::HangUpCustomer, Action::HangUpAgent]);
    let f = finish(&out);
    assert_eq!((f.outcome, f.note.as_deref()), (Outcome::AgentNoAnswer, Some("agent media failed: DTLS handshake failed")));
}

#[test]
fn agent_media_failing_once_bridged_is_agent_no_answer() {
    let mut s = dialling();
    s.ev(Event::CustomerAnswered { usable: true });
    s.m.bridged(&mut Vec::new());
    let f = finish(&s.ev(Event::AgentMediaFailed("remote fingerprint no match".into()))).clone();
    assert_eq!(f.outcome, Outcome::AgentNoAnswer);
}

#[test]
fn media_timeout_while_bridged_ends_the_call() {
    let mut s = dialling();
    s.ev(Event::CustomerAnswered { usable: true });
    s.m.bridged(&mut Vec::new());
    assert_eq!(finish(&s.ev(Event::AgentMediaTimeout)).outcome, Outcome::Human);
}
