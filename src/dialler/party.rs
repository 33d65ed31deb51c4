//! One call leg with its anchored media, and the two ways a flow gets one:
//! dialling the customer through the queue's trunk, and ringing an agent's
//! softphones.

use std::time::Duration;

use tokio::time::Instant;

use crate::config::Queue;
use crate::media::call::{MediaEvent, MediaLeg};
use crate::media::Codec;
use crate::scheduler::model::{Callback, Dispatch, Outcome};
use crate::sip::calls::{Credentials, DialRequest, Leg, LegEvent};
use crate::sip::Peer;

use super::attempt::{AttemptLog, Finish};
use super::Dialler;

/// A call leg and its media.
pub struct Party {
    pub sip: Leg,
    pub media: MediaLeg,
}

/// Whatever happened next on a party.
#[derive(Debug)]
pub enum PartyEvent {
    Sip(LegEvent),
    Media(MediaEvent),
    /// Both event sources are closed.
    Gone,
}

impl PartyEvent {
    /// The leg is over: the peer hung up, the call failed, media stopped
    /// for the media timeout, or the leg's task is gone.
    pub fn ends_call(&self) -> bool {
        matches!(
            self,
            PartyEvent::Sip(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | PartyEvent::Media(MediaEvent::Timeout) | PartyEvent::Gone
        )
    }
}

impl Party {
    /// The next event from the leg or its media.
    pub async fn next(&mut self) -> PartyEvent {
        tokio::select! {
            e = self.sip.events.recv() => match e {
                Some(e) => PartyEvent::Sip(e),
                None => PartyEvent::Gone,
            },
            Some(e) = self.media.events.recv() => PartyEvent::Media(e),
        }
    }

    /// Handles what every flow does the same way: a re-offer moves media.
    pub fn absorb(&mut self, ev: &PartyEvent) {
        if let PartyEvent::Sip(LegEvent::Reoffer { sdp }) = ev {
            if let Err(e) = self.media.reoffer(&String::from_utf8_lossy(sdp)) {
                tracing::warn!(error = %e, "re-offer not applied");
            }
        }
    }

    /// Hangs up and releases the media.
    pub fn close(self) {
        self.sip.hangup();
        self.media.close();
    }

    /// Waits up to `limit` for the first event `pick` accepts, applying
    /// re-offers meanwhile: `Ok(Some(_))` when one came, `Ok(None)` when the
    /// time ran out, `Err(Hangup)` when the leg ended first.
    pub async fn wait_for<T>(&mut self, limit: Duration, mut pick: impl FnMut(&PartyEvent) -> Option<T>) -> Result<Option<T>, Hangup> {
        let wait = async {
            loop {
                let ev = self.next().await;
                self.absorb(&ev);
                if let Some(t) = pick(&ev) {
                    return Ok(t);
                }
                if ev.ends_call() {
                    return Err(Hangup);
                }
            }
        };
        match tokio::time::timeout(limit, wait).await {
            Ok(r) => r.map(Some),
            Err(_) => Ok(None),
        }
    }

    /// Waits until this leg's call ends; returns why.
    pub async fn until_ended(&mut self) -> PartyEvent {
        loop {
            let ev = self.next().await;
            self.absorb(&ev);
            if ev.ends_call() {
                return ev;
            }
        }
    }

    /// Applies an SDP answer (from a 18x or 2xx) to the media.
    pub fn accept(&mut self, sdp: &Option<Vec<u8>>) -> bool {
        let Some(sdp) = sdp else { return true };
        match self.media.accept_answer(&String::from_utf8_lossy(sdp)) {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(error = %e, "unusable SDP answer");
                false
            }
        }
    }
}

/// Codecs of a profile, in its preference order, that we can use.
pub fn codecs(names: &[String]) -> Vec<Codec> {
    let v: Vec<Codec> = names.iter().filter_map(|n| Codec::from_name(n)).collect();
    if v.is_empty() {
        vec![Codec::Pcmu, Codec::Pcma]
    } else {
        v
    }
}

/// `X-Redial-Attempt: <callback id>/<attempt number>` (e.g. `cb_…/2`, the
/// id as the API shows it), on every customer INVITE of an attempt. Only
/// there: a front proxy refuses a second INVITE carrying the same value
/// (the guard against ringing a customer twice), and an agent's INVITEs
/// (one per contact) may pass the same proxy.
pub fn attempt_header(dispatch: &Dispatch) -> (String, String) {
    ("X-Redial-Attempt".to_string(), format!("{}/{}", dispatch.callback.id, dispatch.attempt))
}

/// What the agent's softphone can show about a callback: `X-Redial-Reason`,
/// `X-Redial-When` (the customer's own words), `X-Redial-Origin`, and
/// `Call-Info: <console page>;purpose=info` (RFC 3261 §20.9). Values lose
/// control characters: a header value cannot carry them.
pub fn context_headers(cb: &Callback, console_url: &str) -> Vec<(String, String)> {
    let clean = |v: &str| v.chars().map(|c| if c.is_control() { ' ' } else { c }).collect::<String>();
    let mut h = Vec::new();
    if let Some(r) = cb.reason.as_deref().filter(|r| !r.is_empty()) {
        h.push(("X-Redial-Reason".to_string(), clean(r)));
    }
    if let Some(w) = cb.when.as_deref().filter(|w| !w.is_empty()) {
        h.push(("X-Redial-When".to_string(), clean(w)));
    }
    h.push(("X-Redial-Origin".to_string(), cb.origin.as_str().to_string()));
    if !console_url.is_empty() {
        h.push(("Call-Info".to_string(), format!("<{}/console/callbacks/{}>;purpose=info", console_url.trim_end_matches('/'), cb.id)));
    }
    h
}

/// Opens media and sends the customer's INVITE through the queue's trunk;
/// `Err` with how to record the attempt when it cannot be sent.
pub async fn dial(d: &Dialler, dispatch: &Dispatch, queue: &Queue) -> Result<Party, Finish> {
    let cb = &dispatch.callback;
    let Some(profile) = queue.profile.as_ref().and_then(|p| d.cfg.profiles.get(p)) else {
        return Err(Finish::new(Outcome::Failed, None).note("the queue has no outbound trunk"));
    };
    let Some(dest) = d.proxies.get(&profile.name).copied() else {
        return Err(Finish { retry: true, ..Finish::new(Outcome::Failed, None).note("the trunk's proxy did not resolve") });
    };
    if !crate::e164::is_e164(&cb.phone) {
        return Err(Finish::new(Outcome::Failed, None).note("not an E.164 number"));
    }
    let mut media = match d.media.open().await {
        Ok(m) => m,
        Err(e) => return Err(Finish { retry: true, ..Finish::new(Outcome::Failed, None).note(format!("no media port: {e}")) }),
    };
    let offer = media.offer(&codecs(&profile.codecs));
    let caller_id = cb.caller_id.clone().or_else(|| queue.caller_id.clone()).or_else(|| profile.caller_id.clone()).unwrap_or_else(|| "anonymous".into());
    let credentials = match (&profile.username, &profile.password) {
        (Some(u), Some(p)) => Some(Credentials { username: u.clone(), password: p.clone() }),
        _ => None,
    };
    let uri = format!("sip:{}@{}", cb.phone, profile.domain);
    let sip = d.calls.dial(DialRequest {
        request_uri: uri.clone(),
        to: format!("<{uri}>"),
        from_name: cb.caller_name.clone(),
        from_user: caller_id,
        from_host: profile.domain.clone(),
        destination: dest,
        headers: vec![attempt_header(dispatch)],
        sdp: offer.into_bytes(),
        credentials,
    });
    Ok(Party { sip, media })
}

/// How ringing an agent ended.
pub enum Rung {
    Answered(Box<Party>),
    /// No answer within the agent ring timeout.
    NoAnswer,
    /// The softphone declined (or failed) with this status.
    Declined(u16),
    /// The agent has no live registration to ring.
    Unreachable,
    /// The other party (the waiting customer) hung up first.
    OtherGone,
}

/// Who is calling the agent, for the INVITE's From and headers.
pub struct AgentCall<'a> {
    pub dispatch: Option<&'a Dispatch>,
    /// The customer's number, shown to the agent as the caller.
    pub caller: &'a str,
    pub queue: &'a str,
    pub interaction: &'a str,
}

/// Rings every registered contact of `agent` at once (parallel forking):
/// the first to answer wins and the others are cancelled. While ringing,
/// `other` (the waiting customer, in customer-first) is watched: if it
/// hangs up, the agent's legs are cancelled.
pub async fn ring_agent(d: &Dialler, agent: &str, call: &AgentCall<'_>, timeout: Duration, mut other: Option<&mut Party>, log: &mut AttemptLog) -> Rung {
    let Some(mut ringing) = start_ringing(d, agent, call, log).await else {
        return Rung::Unreachable;
    };
    let deadline = Instant::now() + timeout;
    loop {
        tokio::select! {
            r = ringing.next() => return match r {
                RingEvent::Answered(p) => {
                    log.mark(|t| &mut t.agent_answered_at);
                    Rung::Answered(p)
                }
                RingEvent::Failed(s) if s == 0 || s == 408 || s == 480 => Rung::NoAnswer,
                RingEvent::Failed(s) => Rung::Declined(s),
            },
            ev = watch(other.as_deref_mut()) => {
                if ev.ends_call() {
                    ringing.cancel();
                    return Rung::OtherGone;
                }
                if let Some(o) = other.as_deref_mut() {
                    o.absorb(&ev);
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                ringing.cancel();
                return Rung::NoAnswer;
            }
        }
    }
}

/// An agent's contacts being rung at once: the first to answer wins.
pub struct Ringing {
    legs: Vec<Party>,
    /// The last final failure status seen (0: none).
    last_status: u16,
}

/// How ringing an agent's contacts ended (the ring timeout is the flow's).
pub enum RingEvent {
    /// One contact answered; the others are cancelled.
    Answered(Box<Party>),
    /// Every contact failed or ended; the last failure status (0: none).
    Failed(u16),
}

/// INVITEs every live registered contact of `agent`, with the headers
/// naming the call, and marks the agent ringing. `None` when the agent has
/// no contact that could be rung.
pub async fn start_ringing(d: &Dialler, agent: &str, call: &AgentCall<'_>, log: &mut AttemptLog) -> Option<Ringing> {
    let bindings: Vec<(String, Peer)> = {
        let now = std::time::Instant::now();
        let b = d.bindings.read().unwrap_or_else(|e| e.into_inner());
        b.get(agent).map(|v| v.iter().filter(|b| b.expires_at > now).map(|b| (b.contact.clone(), contact_target(&b.contact, b.source))).collect()).unwrap_or_default()
    };
    if bindings.is_empty() {
        return None;
    }
    let mut headers = vec![("X-Redial-Queue".to_string(), call.queue.to_string()), ("X-Redial-Interaction-Id".to_string(), call.interaction.to_string())];
    if let Some(dp) = call.dispatch {
        headers.push(("X-Redial-Callback-Id".to_string(), dp.callback.id.to_string()));
        headers.push(attempt_header(dp));
        if let Some(n) = dp.callback.notes.as_deref().filter(|n| !n.is_empty()) {
            // Header values cannot carry line breaks.
            headers.push(("X-Redial-Notes".to_string(), n.replace(['\r', '\n'], " ")));
        }
        headers.extend(context_headers(&dp.callback, &d.console_url));
    }
    let what = call.dispatch.map_or_else(|| call.interaction.to_string(), |dp| dp.callback.id.to_string());
    let host = d.sip_addr.to_string();
    let mut legs: Vec<Party> = Vec::new();
    for (contact, source) in bindings {
        let mut media = match d.media.open().await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "no media port for the agent leg");
                continue;
            }
        };
        let offer = media.offer(&[Codec::Pcmu, Codec::Pcma]);
        let sip = d.calls.dial(DialRequest {
            request_uri: contact,
            to: format!("<sip:{agent}@{host}>"),
            from_name: None,
            from_user: call.caller.to_string(),
            from_host: host.clone(),
            destination: source,
            headers: headers.clone(),
            sdp: offer.into_bytes(),
            credentials: None,
        });
        legs.push(Party { sip, media });
    }
    if legs.is_empty() {
        return None;
    }
    d.agents.ringing(agent, &what);
    log.mark(|t| &mut t.agent_ringing_at);
    Some(Ringing { legs, last_status: 0 })
}

impl Ringing {
    /// Waits for the first answer (cancelling the other contacts), or for
    /// every contact to have failed.
    pub async fn next(&mut self) -> RingEvent {
        loop {
            if self.legs.is_empty() {
                return RingEvent::Failed(self.last_status);
            }
            let (i, ev) = futures_next(&mut self.legs).await;
            match ev {
                PartyEvent::Sip(LegEvent::Answered { sdp }) => {
                    let mut p = self.legs.swap_remove(i);
                    if !p.accept(&sdp) {
                        p.close();
                        self.last_status = 488;
                        continue;
                    }
                    for l in self.legs.drain(..) {
                        l.close();
                    }
                    return RingEvent::Answered(Box::new(p));
                }
                PartyEvent::Sip(LegEvent::Failed { status }) => {
                    self.last_status = status;
                    self.legs.swap_remove(i).media.close();
                }
                ev if ev.ends_call() => self.legs.swap_remove(i).close(),
                _ => {}
            }
        }
    }

    /// Cancels every contact still ringing.
    pub fn cancel(self) {
        for l in self.legs {
            l.close();
        }
    }
}

/// Where to send an INVITE for a registered contact: the Contact's own
/// address when it is on the host the REGISTER came from (a softphone may
/// register from one port and listen on another), else the REGISTER's
/// source (the softphone is behind NAT and its Contact is private).
fn contact_target(contact: &str, source: Peer) -> Peer {
    let addr = rsip::Uri::try_from(contact).ok().and_then(|u| {
        let ip: std::net::IpAddr = u.host_with_port.host.to_string().trim_matches(['[', ']']).parse().ok()?;
        let port = u.host_with_port.port.map_or(5060, |p| *p.value());
        Some(std::net::SocketAddr::new(ip, port))
    });
    match addr {
        Some(a) if a.ip() == source.addr.ip() => Peer { addr: a, transport: source.transport },
        _ => source,
    }
}

/// The next event of any of `legs`, with its index.
async fn futures_next(legs: &mut [Party]) -> (usize, PartyEvent) {
    let futs = legs.iter_mut().enumerate().map(|(i, p)| Box::pin(async move { (i, p.next().await) }));
    futures_util::future::select_all(futs).await.0
}

/// The next event of `p`, or never.
async fn watch(p: Option<&mut Party>) -> PartyEvent {
    match p {
        Some(p) => p.next().await,
        None => std::future::pending().await,
    }
}

/// The party hung up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hangup;


/// Plays `prompt` to `party` and waits for it to finish (bounded by its
/// length plus a second); `Err` if the party hung up meanwhile.
pub async fn play_and_wait(party: &mut Party, prompt: std::sync::Arc<crate::media::player::Prompt>) -> Result<(), Hangup> {
    let limit = prompt.duration() + Duration::from_secs(1);
    party.media.play(prompt, false);
    party.wait_for(limit, |e| matches!(e, PartyEvent::Media(MediaEvent::PlayDone)).then_some(())).await.map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Transport;

    #[test]
    fn contacts_on_the_registering_host_are_used_directly_else_the_source() {
        let src = Peer { addr: "127.0.0.1:40000".parse().unwrap(), transport: Transport::Udp };
        assert_eq!(contact_target("sip:alice@127.0.0.1:5070", src).addr, "127.0.0.1:5070".parse().unwrap());
        assert_eq!(contact_target("sip:alice@127.0.0.1", src).addr, "127.0.0.1:5060".parse().unwrap());
        assert_eq!(contact_target("sip:alice@192.168.1.10:5060", src), src, "NAT: the source");
        assert_eq!(contact_target("sip:alice@phone.example", src), src);
    }
}
