//! What a leg hears while the bridge is paused by the other leg's hold: a looped
//! prompt (hold music) in the leg's own codec, at positions continuing what the
//! relay last sent it, so the leg's RTP stream (SSRC, sequence, timestamps) goes
//! on unbroken; the first frame starts a talkspurt (marker bit, RFC 3551 §4.1).

use std::sync::Arc;
use std::time::Instant;

use super::{LegMedia, Side};
use crate::media::player::{MediaFrame, Player, Prompt};

/// The prompt each side hears while paused, and the one playing toward each side.
#[derive(Debug, Default)]
pub(super) struct HoldMusic {
    prompts: [Option<Arc<Prompt>>; 2],
    playing: [Option<Player>; 2],
}

impl HoldMusic {
    pub fn set_prompt(&mut self, to: Side, prompt: Option<Arc<Prompt>>) {
        self.prompts[to.idx()] = prompt;
        self.playing[to.idx()] = None;
    }

    /// Plays toward `to` when `wanted` (and a prompt is set), from `position` in
    /// `media`'s clock; stops it when not. A playing prompt goes on untouched.
    pub fn follow(&mut self, to: Side, wanted: bool, media: LegMedia, now: Instant, position: u64) {
        let i = to.idx();
        match (&self.prompts[i], wanted) {
            (Some(p), true) if self.playing[i].is_none() => match Player::new((**p).clone(), media.codec, media.pt, true, now, position) {
                Ok(player) => self.playing[i] = Some(player),
                Err(e) => tracing::warn!(error = %e, "cannot play hold music"),
            },
            (_, false) | (None, _) => self.playing[i] = None,
            _ => {}
        }
    }

    /// Stops what plays toward `to` (its codec changed: the next `follow` restarts it).
    pub fn restart(&mut self, to: Side) {
        self.playing[to.idx()] = None;
    }

    pub fn is_playing(&self, to: Side) -> bool {
        self.playing[to.idx()].is_some()
    }

    /// When the next frame is due, if anything plays.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.playing.iter().flatten().filter_map(Player::poll_timeout).min()
    }

    /// The next frame due by `now` toward `to`.
    pub fn poll_frame(&mut self, to: Side, now: Instant) -> Option<MediaFrame> {
        let player = self.playing[to.idx()].as_mut()?;
        match player.poll_frame(now)? {
            Ok(f) => Some(f),
            Err(e) => {
                tracing::warn!(error = %e, "hold music frame failed; it stops");
                self.playing[to.idx()] = None;
                None
            }
        }
    }
}
