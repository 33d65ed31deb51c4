//! One call leg with its anchored media ([`Party`]), what happens on it
//! ([`PartyEvent`]), and joining two of them ([`bridge`]). The dial flows
//! and the inbound call both hold their legs as parties.

use std::sync::Arc;

use crate::media::call::{MediaCallError, MediaEvent, MediaLeg};
use crate::media::player::Prompt;
use crate::media::Codec;
use crate::sip::calls::{Leg, LegEvent};

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
    /// for the media timeout or its transport failed, or the leg's task is gone.
    pub fn ends_call(&self) -> bool {
        matches!(
            self,
            PartyEvent::Sip(LegEvent::Ended { .. } | LegEvent::Failed { .. }) | PartyEvent::Media(MediaEvent::Timeout | MediaEvent::Failed { .. }) | PartyEvent::Gone
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

    /// Handles what every flow does the same way with an event of this
    /// party (`who`, for the log): a re-offer moves media, and an event that
    /// ends a call in progress (`in_call`) is logged as its end.
    pub fn absorb(&mut self, ev: &PartyEvent, who: &str, in_call: bool) {
        if let PartyEvent::Sip(LegEvent::Reoffer { sdp }) = ev {
            if let Err(e) = self.media.reoffer(&String::from_utf8_lossy(sdp)) {
                tracing::warn!(error = %e, "re-offer not applied");
            }
        }
        if in_call && ev.ends_call() {
            tracing::info!(by = %format!("{who}: {ev:?}"), "call ended");
        }
    }

    /// Hangs up and releases the media.
    pub fn close(self) {
        self.sip.hangup();
        self.media.close();
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

/// Runs `f` on the party, if there is one still.
pub fn with(p: &mut Option<Party>, f: impl FnOnce(&mut Party)) {
    if let Some(p) = p {
        f(p)
    }
}

/// Joins the customer's (or caller's) media to the agent's: whatever
/// `customer` was hearing stops, and `hold_music` is what the customer hears
/// while the agent holds. Legs already bridged (agent-first relays the
/// carrier's early media before answer) count as bridged.
pub fn bridge(customer: &mut Party, agent: &mut Party, hold_music: &Arc<Prompt>) -> Result<(), MediaCallError> {
    customer.media.stop_playing();
    customer.media.set_hold_music(Some(hold_music.clone()));
    match customer.media.bridge(&mut agent.media) {
        Ok(()) | Err(MediaCallError::AlreadyBridged { .. }) => Ok(()),
        Err(e) => Err(e),
    }
}
