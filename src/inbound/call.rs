//! One inbound call: answer, then an agent if one is free, else the
//! callback offer, else hold until an agent frees up.

use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::config::Queue;
use crate::dialler::attempt::AttemptLog;
use crate::dialler::connect::{bridge, AgentHold};
use crate::dialler::live::new_interaction_id;
use crate::dialler::party::{self, AgentCall, Party, PartyEvent, Rung};
use crate::dialler::Dialler;
use crate::media::call::MediaEvent;
use crate::media::player::Prompt;
use crate::scheduler::engine::rules::RuleError;
use crate::scheduler::model::{NewCallback, Origin};
use crate::scheduler::store::ScheduleError;
use crate::sip::calls::{IncomingCall, LegEvent};

use super::number;
use super::route::Route;

/// How long the caller has to press a key after the offer ends.
const INPUT_TIMEOUT: Duration = Duration::from_secs(6);
/// Longest wait on hold before the callback is offered again.
const MAX_HOLD: Duration = Duration::from_secs(120);
/// Longest wait for the ACK of our 200.
const ACK_TIMEOUT: Duration = Duration::from_secs(32);
/// Digits of a number typed on the keypad (E.164 has at most 15).
const MAX_DIGITS: usize = 15;

/// The caller left.
use crate::dialler::party::Hangup as Gone;

pub async fn handle(d: &Dialler, c: IncomingCall, route: Route) {
    let IncomingCall { leg, from_user, asserted_user, sdp, .. } = c;
    let Some(queue) = d.cfg.queue(&route.queue) else {
        leg.reject(480);
        return;
    };
    // A delayed offer (INVITE without SDP) is not supported.
    let Some(offer) = sdp else {
        leg.reject(488);
        return;
    };
    let mut media = match d.media.open().await {
        Ok(m) => m,
        Err(e) => {
            tracing::error!(error = %e, "no media for an inbound call");
            leg.reject(503);
            return;
        }
    };
    let codecs = d.cfg.profiles.get(&route.profile).map(|p| party::codecs(&p.codecs)).unwrap_or_default();
    media.set_srtp(d.cfg.profiles.get(&route.profile).map(|p| p.srtp).unwrap_or_default());
    let answer = match media.answer_offer(&String::from_utf8_lossy(&offer), &codecs) {
        Ok(a) => a,
        Err(e) => {
            tracing::info!(error = %e, "inbound offer not acceptable");
            media.close();
            leg.reject(488);
            return;
        }
    };
    leg.answer(answer.into_bytes());
    let mut caller = Party { sip: leg, media };
    if !confirmed(&mut caller).await {
        caller.close();
        return;
    }
    let phone = number::caller(asserted_user.as_deref(), from_user.as_deref());
    let interaction = new_interaction_id();
    tracing::info!(did = %route.did, queue = %queue.name, caller = ?phone, interaction = %interaction, "inbound call answered");
    d.live.set(&interaction, phone.as_deref().unwrap_or(""), &queue.name, None);
    d.metrics.calls_active_add(1);
    serve(d, caller, queue, &route, phone, &interaction).await;
    d.metrics.calls_active_add(-1);
    d.live.remove(&interaction);
}

/// Waits for the ACK of our 200; false when the caller left first.
async fn confirmed(caller: &mut Party) -> bool {
    let wait = async {
        loop {
            match caller.sip.events.recv().await {
                Some(LegEvent::Answered { .. }) => return true,
                Some(LegEvent::Failed { .. } | LegEvent::Ended { .. }) | None => return false,
                Some(_) => {}
            }
        }
    };
    tokio::time::timeout(ACK_TIMEOUT, wait).await.unwrap_or(false)
}

async fn serve(d: &Dialler, mut caller: Party, queue: &Queue, route: &Route, mut phone: Option<String>, interaction: &str) {
    if let Some(g) = &route.greeting {
        match Prompt::from_wav(g) {
            Ok(p) => {
                if party::play_and_wait(&mut caller, Arc::new(p)).await.is_err() {
                    return caller.close();
                }
            }
            Err(e) => tracing::error!(file = %g.display(), error = %e, "cannot load the DID's greeting"),
        }
    }
    let joined = d.clock.now_ms();
    let mut tried: Vec<String> = Vec::new();
    loop {
        // An agent, if one is free.
        let exclude: Vec<&str> = tried.iter().map(String::as_str).collect();
        if let Some(agent) = d.agents.reserve_for(&queue.name, &exclude, interaction) {
            tried.push(agent.clone());
            let mut hold = AgentHold::new(d, &agent, queue, interaction);
            let mut log = AttemptLog::new(d.clock.clone(), &agent);
            caller.media.play(d.prompts.hold_music.clone(), true);
            let shown = phone.clone().unwrap_or_else(|| "anonymous".into());
            let call = AgentCall { dispatch: None, caller: &shown, queue: &queue.name, interaction };
            match party::ring_agent(d, &agent, &call, queue.agent_ring_timeout, Some(&mut caller), &mut log).await {
                Rung::Answered(a) => {
                    if let (true, Some(p)) = (queue.skip_if_reached, phone.as_deref()) {
                        match d.book.skip_reached(p, &queue.name, interaction).await {
                            Ok(Some(cb)) => tracing::info!(callback = %cb.id, "the caller reached an agent: pending callback skipped"),
                            Ok(None) => {}
                            Err(e) => tracing::error!(error = %e, "cannot skip the pending callback"),
                        }
                    }
                    let _ = bridge(d, &mut hold, caller, *a, interaction, phone.as_deref().unwrap_or(""), &queue.name, &mut log).await;
                    return;
                }
                Rung::OtherGone => return caller.close(),
                _ => hold.release(),
            }
            continue;
        }
        // None free. If an agent frees up soon enough, hold for them first.
        if short_wait(d, queue) {
            caller.media.play(d.prompts.hold_music.clone(), true);
            match hold_for_agent(d, &mut caller, queue, queue.offer_after_wait).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(Gone) => return caller.close(),
            }
        }
        // Offer a callback.
        match offer(d, &mut caller, queue, &mut phone, interaction, joined).await {
            Ok(true) => return caller.close(),
            Ok(false) => {}
            Err(Gone) => return caller.close(),
        }
        // Stayed on the line: hold until an agent frees up, or offer again.
        caller.media.play(d.prompts.hold_music.clone(), true);
        if hold_for_agent(d, &mut caller, queue, MAX_HOLD).await.is_err() {
            return caller.close();
        }
        tried.clear();
    }
}

/// Whether the estimated wait for an agent (the soonest end of a wrap-up)
/// is within the queue's `offer_after_wait`.
fn short_wait(d: &Dialler, queue: &Queue) -> bool {
    if queue.offer_after_wait.is_zero() {
        return false;
    }
    let limit = d.clock.now_ms() + queue.offer_after_wait.as_millis() as i64;
    d.agents.soonest_wrap_up_end(&queue.name).is_some_and(|t| t <= limit)
}

/// Holds until an agent of `queue` is free (true) or `max` passed.
async fn hold_for_agent(d: &Dialler, caller: &mut Party, queue: &Queue, max: Duration) -> Result<bool, Gone> {
    let mut changes = d.agents.subscribe();
    let deadline = Instant::now() + max;
    loop {
        if d.agents.any_available(&queue.name) {
            return Ok(true);
        }
        tokio::select! {
            ev = caller.next() => {
                caller.absorb(&ev);
                if ev.ends_call() {
                    return Err(Gone);
                }
            }
            _ = changes.recv() => {}
            // Wrap-ups and lapsed reservations end without an event.
            _ = tokio::time::sleep(Duration::from_millis(500)) => {}
            _ = tokio::time::sleep_until(deadline) => return Ok(false),
        }
    }
}

/// The callback offer, played at most twice. `Ok(true)`: the call is done
/// (booked, or one was already booked); `Ok(false)`: the caller stays on
/// the line.
async fn offer(d: &Dialler, caller: &mut Party, queue: &Queue, phone: &mut Option<String>, interaction: &str, joined: i64) -> Result<bool, Gone> {
    let mut pressed = None;
    for _ in 0..2 {
        caller.media.stop_playing();
        pressed = prompt_then_digit(caller, d.prompts.callback_offer.clone()).await?;
        if pressed.is_some() {
            break;
        }
    }
    if pressed != Some('1') {
        return Ok(false);
    }
    if phone.is_none() {
        *phone = collect_number(d, caller).await?;
    }
    let Some(p) = phone.clone() else {
        party::play_and_wait(caller, d.prompts.apology.clone()).await?;
        return Ok(true);
    };
    let req = NewCallback {
        phone: p,
        queue: queue.name.clone(),
        origin: Some(Origin::Inbound),
        interaction_id: Some(interaction.to_string()),
        joined_at: Some(joined),
        ..NewCallback::default()
    };
    let prompt = match d.book.schedule(req).await {
        Ok(cb) => {
            tracing::info!(callback = %cb.id, "callback booked from the inbound offer");
            d.prompts.callback_confirm.clone()
        }
        Err(ScheduleError::Rule(RuleError::Duplicate { existing_id })) => {
            tracing::info!(callback = %existing_id, "the caller already has a callback");
            d.prompts.callback_exists.clone()
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot book the callback");
            d.prompts.apology.clone()
        }
    };
    party::play_and_wait(caller, prompt).await?;
    Ok(true)
}

/// Plays `prompt` and returns the first key pressed during it or within
/// `INPUT_TIMEOUT` after it.
async fn prompt_then_digit(caller: &mut Party, prompt: Arc<Prompt>) -> Result<Option<char>, Gone> {
    caller.media.play(prompt.clone(), false);
    let mut deadline = Instant::now() + prompt.duration() + Duration::from_secs(1) + INPUT_TIMEOUT;
    loop {
        tokio::select! {
            ev = caller.next() => {
                caller.absorb(&ev);
                if let Some(k) = digit(&ev) {
                    caller.media.stop_playing();
                    return Ok(Some(k));
                }
                if let PartyEvent::Media(MediaEvent::PlayDone) = ev {
                    deadline = Instant::now() + INPUT_TIMEOUT;
                }
                if ev.ends_call() {
                    return Err(Gone);
                }
            }
            _ = tokio::time::sleep_until(deadline) => return Ok(None),
        }
    }
}

fn digit(ev: &PartyEvent) -> Option<char> {
    match ev {
        PartyEvent::Media(MediaEvent::Dtmf { digit, .. }) | PartyEvent::Sip(LegEvent::Dtmf { digit, .. }) => Some(*digit),
        _ => None,
    }
}

/// Asks for the caller's number by DTMF (digits then `#`), reads it back and
/// asks to confirm; up to three tries. `None` when no valid number came.
async fn collect_number(d: &Dialler, caller: &mut Party) -> Result<Option<String>, Gone> {
    for _ in 0..3 {
        let mut digits = String::new();
        let mut key = prompt_then_digit(caller, d.prompts.enter_number.clone()).await?;
        while let Some(k) = key {
            if k == '#' || digits.len() >= MAX_DIGITS {
                break;
            }
            if k.is_ascii_digit() {
                digits.push(k);
            }
            key = next_digit(caller, INPUT_TIMEOUT).await?;
        }
        let Some(number) = number::to_e164(&format!("+{digits}")) else { continue };
        party::play_and_wait(caller, d.prompts.you_entered.clone()).await?;
        for k in digits.chars() {
            let i = k.to_digit(10).expect("digits only") as usize;
            party::play_and_wait(caller, d.prompts.digits[i].clone()).await?;
        }
        if prompt_then_digit(caller, d.prompts.press_1_to_confirm.clone()).await? == Some('1') {
            return Ok(Some(number));
        }
    }
    Ok(None)
}

async fn next_digit(caller: &mut Party, timeout: Duration) -> Result<Option<char>, Gone> {
    caller.wait_for(timeout, digit).await
}
