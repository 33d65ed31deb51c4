//! Ringing an agent: every live registered contact of the agent at once
//! (parallel forking); the first to answer wins and the others are
//! cancelled. The ring timeout belongs to the flow that rings.

use tracing::field::Empty;
use tracing::Instrument;

use crate::media::Codec;
use crate::scheduler::model::{Callback, Dispatch};
use crate::sip::calls::{DialRequest, LegEvent};
use crate::sip::Peer;

use super::party::{Party, PartyEvent};
use super::CallKit;

/// `X-Redial-Attempt: <callback id>/<attempt number>` (e.g. `cb_…/2`, the
/// id as the API shows it), on the customer's INVITE of an attempt and on
/// the agent's. A front proxy refuses a second customer INVITE carrying the
/// same value: the guard against ringing a customer twice.
pub fn attempt_header(dispatch: &Dispatch) -> (String, String) {
    ("X-Redial-Attempt".to_string(), format!("{}/{}", dispatch.callback.id, dispatch.attempt))
}

/// Who is calling the agent, for the INVITE's From and headers.
pub struct AgentCall<'a> {
    pub dispatch: Option<&'a Dispatch>,
    /// The customer's number, shown to the agent as the caller.
    pub caller: &'a str,
    pub queue: &'a str,
    pub interaction: &'a str,
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

/// The headers of the INVITEs to an agent: which queue and live call
/// (`X-Redial-Queue`, `X-Redial-Interaction-Id`) and, for a callback, which
/// callback and attempt, with its notes.
pub fn agent_headers(call: &AgentCall<'_>) -> Vec<(String, String)> {
    let mut headers = vec![("X-Redial-Queue".to_string(), call.queue.to_string()), ("X-Redial-Interaction-Id".to_string(), call.interaction.to_string())];
    if let Some(dp) = call.dispatch {
        headers.push(("X-Redial-Callback-Id".to_string(), dp.callback.id.to_string()));
        headers.push(attempt_header(dp));
        if let Some(n) = dp.callback.notes.as_deref().filter(|n| !n.is_empty()) {
            // Header values cannot carry line breaks.
            headers.push(("X-Redial-Notes".to_string(), n.replace(['\r', '\n'], " ")));
        }
    }
    headers
}

/// INVITEs every live registered contact of `agent`, with the headers
/// naming the call, and marks the agent ringing. `None` when the agent has
/// no contact that could be rung.
pub async fn start_ringing(d: &CallKit, agent: &str, call: &AgentCall<'_>) -> Option<Ringing> {
    let bindings: Vec<(String, Peer)> = {
        let now = std::time::Instant::now();
        let b = d.bindings.read().unwrap_or_else(|e| e.into_inner());
        b.get(agent).map(|v| v.iter().filter(|b| b.expires_at > now).map(|b| (b.contact.clone(), contact_target(&b.contact, b.source))).collect()).unwrap_or_default()
    };
    if bindings.is_empty() {
        return None;
    }
    let mut headers = agent_headers(call);
    if let Some(dp) = call.dispatch {
        headers.extend(context_headers(&dp.callback, &d.console_url));
    }
    let what = call.dispatch.map_or_else(|| call.interaction.to_string(), |dp| dp.callback.id.to_string());
    let host = d.sip_addr.to_string();
    let mut legs: Vec<Party> = Vec::new();
    for (contact, source) in bindings {
        // The leg's span: its media task logs in it, under the call's.
        let span = tracing::info_span!("leg", role = "agent", agent = %agent, call_id = Empty);
        let mut media = match d.media.open().instrument(span.clone()).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(error = %e, "no media port for the agent leg");
                continue;
            }
        };
        let offer = if source.transport == crate::config::Transport::Ws {
            // A browser (RFC 7118 agent) takes only WebRTC media (RFC 8827): ICE,
            // DTLS-SRTP, rtcp-mux. PCMU/PCMA are offered, so a G.711 carrier leg is
            // bridged without transcoding.
            match media.offer_webrtc() {
                Ok(o) => o,
                Err(e) => {
                    tracing::warn!(error = %e, "no WebRTC offer for the browser agent");
                    continue;
                }
            }
        } else {
            media.set_srtp(agent_srtp(source));
            media.offer(&[Codec::Pcmu, Codec::Pcma])
        };
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
        span.record("call_id", tracing::field::display(&sip.call_id));
        legs.push(Party { sip, media });
    }
    if legs.is_empty() {
        return None;
    }
    d.agents.ringing(agent, &what);
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

/// The next event of `r`, or never when no agent is ringing: a branch of a
/// driver's `select!`.
pub async fn next_of(r: Option<&mut Ringing>) -> RingEvent {
    match r {
        Some(r) => r.next().await,
        None => std::future::pending().await,
    }
}

/// SRTP toward an agent's softphone: required (RTP/SAVP with SDES keys, RFC 4568) when
/// it registered over TLS, where the keys in the SDP are not in the clear (§8.3); plain
/// RTP otherwise. RTP/SAVP rather than RTP/AVP with a=crypto: softphones in mandatory
/// SRTP mode find no common media in an RTP/AVP offer, while those in best-effort mode
/// accept either.
pub(crate) fn agent_srtp(source: Peer) -> crate::media::sdp::SrtpPolicy {
    match source.transport {
        crate::config::Transport::Tls => crate::media::sdp::SrtpPolicy::Required,
        _ => crate::media::sdp::SrtpPolicy::Off,
    }
}

/// Where to send an INVITE for a registered contact: the Contact's own
/// address when it is on the host the REGISTER came from (a softphone may
/// register from one port and listen on another), else the REGISTER's
/// source (the softphone is behind NAT and its Contact is private). Over TLS
/// always the connection the REGISTER came on: a softphone seldom holds a
/// server certificate, so it is reached on the connection it opened (RFC 5923).
fn contact_target(contact: &str, source: Peer) -> Peer {
    // A WebSocket agent is reachable only on the connection it registered over
    // (RFC 7118 §5.3), a TLS one on the connection its REGISTER opened.
    if matches!(source.transport, crate::config::Transport::Ws | crate::config::Transport::Tls) {
        return source;
    }
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
        let tls = Peer { addr: "127.0.0.1:40000".parse().unwrap(), transport: Transport::Tls };
        assert_eq!(contact_target("sip:alice@127.0.0.1:5071;transport=tls", tls), tls, "TLS: the REGISTER's connection");
    }
}
