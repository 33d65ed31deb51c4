//! The inbound machine in virtual time: every key path of the callback
//! offer, holding for an agent, and the caller hanging up, no socket.

use std::time::Duration;

use super::machine::*;
use crate::calls::sim::Sim;

const AGENT_RING: Duration = Duration::from_secs(15);
const OFFER_AFTER_WAIT: Duration = Duration::from_secs(60);
/// Every prompt is this long, except the digits read back.
const PROMPT: Duration = Duration::from_secs(4);
const DIGIT: Duration = Duration::from_millis(600);
const CALLER: &str = "+15551230001";

fn call(phone: Option<&str>, greeting: bool) -> (Sim<InboundCall>, Vec<Action>) {
    Sim::start(InboundCall::new(Params {
        phone: phone.map(str::to_string),
        greeting,
        agent_ring_timeout: AGENT_RING,
        offer_after_wait: OFFER_AFTER_WAIT,
        skip_if_reached: true,
        length: Box::new(|say| if matches!(say, Say::Digit(_)) { DIGIT } else { PROMPT }),
    }))
}

/// A caller with a known number; nobody free and nobody about to be: the
/// offer plays.
fn offered(phone: Option<&str>) -> Sim<InboundCall> {
    let (mut s, out) = call(phone, false);
    assert_eq!(out, vec![Action::ReserveAgent { exclude: vec![] }]);
    let out = s.ev(Event::NoAgentFree { soonest: None });
    assert_eq!(out, vec![Action::StopPlaying, Action::Play(Say::CallbackOffer)]);
    assert_eq!(s.deadline_in(), Some(PROMPT + PROMPT_SLACK + INPUT_TIMEOUT));
    s
}

fn ended(out: &[Action]) -> Ended {
    match out.last() {
        Some(Action::End(e)) => *e,
        other => panic!("not ended: {other:?} in {out:?}"),
    }
}

/// Plays the closing prompt to its end and returns how the call ended.
fn closed_with(s: &mut Sim<InboundCall>, out: Vec<Action>, say: Say) -> Ended {
    assert_eq!(out, vec![Action::Play(say)]);
    let out = s.ev(Event::PromptDone);
    assert_eq!(out[0], Action::HangUpCaller);
    ended(&out)
}

#[test]
fn a_free_agent_is_rung_and_bridged_and_a_pending_callback_skipped() {
    let (mut s, out) = call(Some(CALLER), true);
    assert_eq!(out, vec![Action::Play(Say::Greeting)]);
    assert_eq!(s.ev(Event::PromptDone), vec![Action::ReserveAgent { exclude: vec![] }]);
    let out = s.ev(Event::Reserved("alice".into()));
    assert_eq!(out, vec![Action::PlayHoldMusic, Action::RingAgent("alice".into())]);
    assert_eq!(s.deadline_in(), Some(AGENT_RING));
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::SkipPending(CALLER.into()), Action::Bridge]);
    let mut out = Vec::new();
    s.m.bridged(&mut out);
    assert_eq!(out, vec![Action::ShowLive { agent: Some("alice".into()) }]);
    assert!(s.m.in_call());
    assert_eq!(s.m.poll_timeout(), None, "a conversation has no deadline");
    assert_eq!(s.ev(Event::AgentEnded), vec![Action::HangUpAgent, Action::HangUpCaller, Action::End(Ended::Talked)]);
}

#[test]
fn an_agent_not_answering_or_declining_is_freed_and_the_next_one_tried() {
    let (mut s, _) = call(Some(CALLER), false);
    s.ev(Event::Reserved("alice".into()));
    let out = s.until_timeout();
    assert_eq!(out, vec![Action::CancelAgent, Action::ReleaseAgent, Action::ReserveAgent { exclude: vec!["alice".into()] }]);
    s.ev(Event::Reserved("bob".into()));
    let out = s.ev(Event::AgentFailed { status: 603 });
    assert_eq!(out, vec![Action::ReleaseAgent, Action::ReserveAgent { exclude: vec!["alice".into(), "bob".into()] }]);
    // Nobody else: the offer.
    assert_eq!(s.ev(Event::NoAgentFree { soonest: None }), vec![Action::StopPlaying, Action::Play(Say::CallbackOffer)]);
}

#[test]
fn key_1_books_a_callback_for_the_callers_number() {
    let mut s = offered(Some(CALLER));
    assert_eq!(s.ev(Event::Digit('1')), vec![Action::StopPlaying, Action::Book(CALLER.into())]);
    let out = s.ev(Event::Booked(Booking::Booked));
    assert_eq!(closed_with(&mut s, out, Say::CallbackConfirm), Ended::Offered(Booking::Booked));
}

#[test]
fn key_1_with_a_callback_already_active_says_so_and_books_nothing_more() {
    let mut s = offered(Some(CALLER));
    s.ev(Event::Digit('1'));
    let out = s.ev(Event::Booked(Booking::Duplicate));
    assert_eq!(closed_with(&mut s, out, Say::CallbackExists), Ended::Offered(Booking::Duplicate));
}

#[test]
fn a_book_failure_apologises() {
    let mut s = offered(Some(CALLER));
    s.ev(Event::Digit('1'));
    let out = s.ev(Event::Booked(Booking::Failed));
    assert_eq!(closed_with(&mut s, out, Say::Apology), Ended::Offered(Booking::Failed));
}

#[test]
fn no_key_twice_keeps_the_caller_on_hold_then_tries_every_agent_again() {
    let mut s = offered(Some(CALLER));
    // The key window starts again when the offer ends.
    s.after(PROMPT);
    assert!(s.ev(Event::PromptDone).is_empty());
    assert_eq!(s.deadline_in(), Some(INPUT_TIMEOUT));
    assert_eq!(s.until_timeout(), vec![Action::StopPlaying, Action::Play(Say::CallbackOffer)], "offered a second time");
    assert_eq!(s.until_timeout(), vec![Action::PlayHoldMusic], "no key twice: hold");
    assert!(s.m.holding());
    assert_eq!(s.deadline_in(), Some(MAX_HOLD));
    // The hold ends without anybody freeing up: every agent again, then the offer.
    assert_eq!(s.until_timeout(), vec![Action::ReserveAgent { exclude: vec![] }]);
    assert_eq!(s.ev(Event::NoAgentFree { soonest: None }), vec![Action::StopPlaying, Action::Play(Say::CallbackOffer)]);
}

#[test]
fn another_key_keeps_the_caller_on_hold_until_an_agent_frees() {
    let (mut s, _) = call(Some(CALLER), false);
    s.ev(Event::Reserved("alice".into()));
    s.ev(Event::AgentUnreachable);
    s.ev(Event::NoAgentFree { soonest: None });
    assert_eq!(s.ev(Event::Digit('2')), vec![Action::StopPlaying, Action::PlayHoldMusic]);
    assert!(s.m.holding());
    s.after(Duration::from_secs(30));
    // alice may be tried again: she was tried before the caller waited.
    assert_eq!(s.ev(Event::AgentFree), vec![Action::ReserveAgent { exclude: vec![] }]);
    assert!(!s.m.holding());
    assert_eq!(s.ev(Event::Reserved("alice".into())), vec![Action::PlayHoldMusic, Action::RingAgent("alice".into())]);
}

#[test]
fn an_agent_ending_wrap_up_soon_is_waited_for_before_the_offer() {
    let (mut s, _) = call(Some(CALLER), false);
    let out = s.ev(Event::NoAgentFree { soonest: Some(Duration::from_secs(20)) });
    assert_eq!(out, vec![Action::PlayHoldMusic]);
    assert!(s.m.holding());
    assert_eq!(s.deadline_in(), Some(OFFER_AFTER_WAIT));
    assert_eq!(s.ev(Event::AgentFree), vec![Action::ReserveAgent { exclude: vec![] }]);
    assert_eq!(s.ev(Event::Reserved("alice".into())), vec![Action::PlayHoldMusic, Action::RingAgent("alice".into())]);

    // Nobody frees up within the wait: the offer.
    let (mut s, _) = call(Some(CALLER), false);
    s.ev(Event::NoAgentFree { soonest: Some(Duration::from_secs(20)) });
    assert_eq!(s.until_timeout(), vec![Action::StopPlaying, Action::Play(Say::CallbackOffer)]);

    // A wrap-up ending later than the wait is not waited for.
    let (mut s, _) = call(Some(CALLER), false);
    assert_eq!(s.ev(Event::NoAgentFree { soonest: Some(OFFER_AFTER_WAIT + Duration::from_secs(1)) })[1], Action::Play(Say::CallbackOffer));
}

#[test]
fn an_unknown_caller_types_the_number_confirms_it_and_is_booked() {
    let mut s = offered(None);
    assert_eq!(s.ev(Event::Digit('1')), vec![Action::StopPlaying, Action::Play(Say::EnterNumber)]);
    // The first key stops the prompt; then each key has its own window.
    assert_eq!(s.ev(Event::Digit('4')), vec![Action::StopPlaying]);
    for k in "4207700".chars() {
        assert!(s.ev(Event::Digit(k)).is_empty());
        assert_eq!(s.deadline_in(), Some(INPUT_TIMEOUT));
        s.after(Duration::from_secs(1));
    }
    assert!(s.ev(Event::Digit('*')).is_empty(), "not a digit: ignored");
    for k in "90012".chars() {
        s.ev(Event::Digit(k));
    }
    // `#` ends the number: it is read back, one prompt after the other.
    assert_eq!(s.ev(Event::Digit('#')), vec![Action::Play(Say::YouEntered)]);
    let mut heard = Vec::new();
    for _ in 0..14 {
        let out = s.ev(Event::PromptDone);
        let [Action::Play(say)] = out.as_slice() else { panic!("{out:?}") };
        heard.push(*say);
    }
    let digits: Vec<Say> = "4420770090012".bytes().map(|b| Say::Digit(b - b'0')).collect();
    assert_eq!(heard[..13], digits[..]);
    assert_eq!(heard[13], Say::PressOneToConfirm);
    assert_eq!(s.ev(Event::Digit('1')), vec![Action::StopPlaying, Action::Book("+4420770090012".into())]);
    assert_eq!(s.m.phone(), Some("+4420770090012"));
    let out = s.ev(Event::Booked(Booking::Booked));
    assert_eq!(closed_with(&mut s, out, Say::CallbackConfirm), Ended::Offered(Booking::Booked));
}

#[test]
fn a_number_read_back_waits_for_each_prompt_at_most_its_length() {
    let mut s = offered(None);
    s.ev(Event::Digit('1'));
    for k in "15551230001#".chars() {
        s.ev(Event::Digit(k));
    }
    // No PlayDone arrives (a lost event): each prompt still ends in time.
    assert_eq!(s.deadline_in(), Some(PROMPT + PROMPT_SLACK));
    assert_eq!(s.until_timeout(), vec![Action::Play(Say::Digit(1))]);
    assert_eq!(s.deadline_in(), Some(DIGIT + PROMPT_SLACK));
}

#[test]
fn a_number_not_confirmed_is_asked_again_and_three_failures_apologise() {
    let mut s = offered(None);
    s.ev(Event::Digit('1'));
    // Try 1: a leading 0 is no country code: asked again at once.
    for k in "0123".chars() {
        s.ev(Event::Digit(k));
    }
    assert_eq!(s.ev(Event::Digit('#')), vec![Action::Play(Say::EnterNumber)]);
    // Try 2: a valid number, then `2` instead of `1`.
    for k in "15551230001".chars() {
        s.ev(Event::Digit(k));
    }
    // A pause ends the number as `#` does.
    assert_eq!(s.until_timeout(), vec![Action::Play(Say::YouEntered)]);
    while !matches!(s.ev(Event::PromptDone).as_slice(), [Action::Play(Say::PressOneToConfirm)]) {}
    assert_eq!(s.ev(Event::Digit('2')), vec![Action::StopPlaying, Action::Play(Say::EnterNumber)]);
    // Try 3: no key at all.
    s.ev(Event::PromptDone);
    let out = s.until_timeout();
    assert_eq!(closed_with(&mut s, out, Say::Apology), Ended::NoNumber);
}

#[test]
fn the_caller_hanging_up_while_an_agent_rings_cancels_and_frees_the_agent() {
    let (mut s, _) = call(Some(CALLER), false);
    s.ev(Event::Reserved("alice".into()));
    let out = s.ev(Event::CallerEnded);
    assert_eq!(out, vec![Action::CancelAgent, Action::ReleaseAgent, Action::HangUpCaller, Action::End(Ended::CallerLeft)]);
    assert_eq!(s.m.poll_timeout(), None);
    assert!(s.ev(Event::AgentAnswered).is_empty(), "over: nothing more happens");
}

#[test]
fn the_caller_hanging_up_anywhere_else_ends_the_call() {
    let mut s = offered(None);
    assert_eq!(s.ev(Event::CallerEnded), vec![Action::HangUpCaller, Action::End(Ended::CallerLeft)]);
    let mut s = offered(None);
    s.ev(Event::Digit('1'));
    s.ev(Event::Digit('5'));
    assert_eq!(s.ev(Event::CallerEnded), vec![Action::HangUpCaller, Action::End(Ended::CallerLeft)]);
    let (mut s, _) = call(Some(CALLER), false);
    s.ev(Event::NoAgentFree { soonest: Some(Duration::from_secs(1)) });
    assert_eq!(s.ev(Event::CallerEnded), vec![Action::HangUpCaller, Action::End(Ended::CallerLeft)]);
    // After the booking the confirmation is cut short.
    let mut s = offered(Some(CALLER));
    s.ev(Event::Digit('1'));
    s.ev(Event::Booked(Booking::Booked));
    assert_eq!(s.ev(Event::CallerEnded), vec![Action::HangUpCaller, Action::End(Ended::Offered(Booking::Booked))]);
}

#[test]
fn a_bridge_that_fails_hangs_up_both() {
    let (mut s, _) = call(None, false);
    s.ev(Event::Reserved("alice".into()));
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::Bridge], "no number: nothing to skip");
    let out = s.ev(Event::BridgeFailed("no media".into()));
    assert_eq!(out, vec![Action::HangUpAgent, Action::HangUpCaller, Action::End(Ended::BridgeFailed)]);
}

#[test]
fn an_agent_whose_media_never_came_up_is_missed_and_the_next_one_rung() {
    let (mut s, _) = call(None, false);
    s.ev(Event::Reserved("alice".into()));
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::Bridge]);
    s.m.bridged(&mut Vec::new());
    assert!(s.m.in_call());
    let out = s.ev(Event::AgentMediaFailed("DTLS handshake failed".into()));
    assert_eq!(
        out,
        vec![
            Action::HangUpAgent,
            Action::ShowLive { agent: None },
            Action::PlayHoldMusic,
            Action::ReleaseAgent,
            Action::ReserveAgent { exclude: vec!["alice".into()] },
        ],
        "not the end of the call: alice is freed (no wrap-up) and another agent sought"
    );
    assert!(!s.m.in_call());
    assert_eq!(s.ev(Event::Reserved("bob".into())), vec![Action::PlayHoldMusic, Action::RingAgent("bob".into())]);
    assert_eq!(s.ev(Event::AgentAnswered), vec![Action::Bridge]);
    // Once talking, the agent's leg ending (a hang-up, or consent lost mid-call) ends the call.
    s.m.bridged(&mut Vec::new());
    assert_eq!(s.ev(Event::AgentEnded), vec![Action::HangUpAgent, Action::HangUpCaller, Action::End(Ended::Talked)]);
}
