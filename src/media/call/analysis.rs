//! AMD on a leg's received audio: [`AudioTap`] (packets → gap-free 8 kHz
//! frames) into [`AmdDetector`], plus the end-of-greeting watch the dialler
//! uses to leave a voicemail message. Sans-IO: time is the audio itself
//! (frame *k* is *k* × 20 ms since `start_amd`).

use crate::amd::{AmdConfig, AmdConfigError, AmdDetector, AmdResult, FRAME_MS, FRAME_SAMPLES};
use crate::amd::floor::NoiseFloor;
use crate::media::rtp::RtpPacket;
use crate::media::tap::AudioTap;
use crate::media::transcode::TranscodeError;
use crate::media::Codec;

use super::MediaEvent;

/// Packets the tap's jitter buffer waits behind a gap (60 ms).
const TAP_DEPTH: usize = 3;

#[derive(Debug)]
pub struct AmdRun {
    tap: AudioTap,
    det: AmdDetector,
    floor: NoiseFloor,
    speech_margin_db: f32,
    floor_min_dbfs: f32,
    /// Frames of silence that end the greeting.
    end_silence_frames: u64,
    machine: bool,
    heard_speech: bool,
    silent_frames: u64,
    beep_sent: bool,
    greeting_ended: bool,
    decided: bool,
    /// Wall time without audio after which [`AmdRun::give_up`] decides.
    patience: std::time::Duration,
}

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Config(#[from] AmdConfigError),
    #[error(transparent)]
    Decode(#[from] TranscodeError),
}

impl AmdRun {
    /// Analysis of a stream of `codec` audio sent with payload type `pt`.
    pub fn new(config: &AmdConfig, codec: Codec, pt: u8) -> Result<Self, AnalysisError> {
        let window = (config.floor_window_ms as u64 / FRAME_MS).max(1) as u32;
        Ok(Self {
            tap: AudioTap::new(codec, pt, TAP_DEPTH)?,
            det: AmdDetector::new(config.clone())?,
            floor: NoiseFloor::new(window, config.floor_percentile, config.floor_min_dbfs),
            speech_margin_db: config.speech_margin_db,
            floor_min_dbfs: config.floor_min_dbfs,
            end_silence_frames: (config.end_of_greeting_silence_ms as u64).div_ceil(FRAME_MS),
            machine: false,
            heard_speech: false,
            silent_frames: 0,
            beep_sent: false,
            greeting_ended: false,
            decided: false,
            patience: std::time::Duration::from_millis(config.total_analysis_ms as u64),
        })
    }

    /// Whether the detector has decided.
    pub fn decided(&self) -> bool {
        self.decided
    }

    /// How long the leg may go without audio before [`AmdRun::give_up`]
    /// (`total_analysis_ms`, as wall time).
    pub fn patience(&self) -> std::time::Duration {
        self.patience
    }

    /// No audio came for [`AmdRun::patience`]: the detector counts audio time,
    /// so a line that sends nothing (silence suppression, or no RTP at all)
    /// would never decide. Decide with what was heard (`AmdDetector::finish`);
    /// a machine that went quiet after speaking has also ended its greeting.
    pub fn give_up(&mut self, out: &mut impl FnMut(MediaEvent)) {
        if self.decided {
            return;
        }
        let d = self.det.finish();
        self.decided = true;
        self.machine = d.result == AmdResult::Machine;
        out(MediaEvent::Amd(d));
        if self.machine && self.heard_speech && !self.greeting_ended {
            self.greeting_ended = true;
            out(MediaEvent::GreetingEnded);
        }
    }

    /// Whether more audio can still produce an event; once false, drop the run.
    pub fn active(&self) -> bool {
        self.det.wants_audio() || (self.machine && !self.greeting_ended)
    }

    /// A packet the leg's session delivered; events are pushed to `out`.
    pub fn push(&mut self, ext_seq: u64, packet: RtpPacket, out: &mut impl FnMut(MediaEvent)) -> Result<(), AnalysisError> {
        self.tap.push(ext_seq, packet)?;
        while let Some(frame) = self.tap.poll_frame() {
            self.frame(&frame, out);
        }
        Ok(())
    }

    fn frame(&mut self, frame: &[i16], out: &mut impl FnMut(MediaEvent)) {
        debug_assert_eq!(frame.len(), FRAME_SAMPLES);
        if self.det.wants_audio() {
            // Only `Finished` can fail, and finish() is never called here.
            let _ = self.det.push_frame(frame);
            if let Some(d) = self.det.poll_decision() {
                self.decided = true;
                self.machine = d.result == AmdResult::Machine;
                out(MediaEvent::Amd(d));
            }
            if let (false, Some(at_ms)) = (self.beep_sent, self.det.beep_at_ms()) {
                self.beep_sent = true;
                out(MediaEvent::Beep { at_ms });
            }
        }
        // Speech/silence against our own copy of the detector's noise floor, for
        // the end of the greeting (the detector stops tracking utterances once decided).
        let ms = frame.iter().map(|&v| (v as f32) * (v as f32)).sum::<f32>() / frame.len() as f32;
        let db = 10.0 * (ms / (32768.0 * 32768.0) + 1e-10).log10();
        let floor = self.floor.floor_db().unwrap_or(self.floor_min_dbfs);
        self.floor.push(db);
        if db >= floor + self.speech_margin_db {
            self.heard_speech = true;
            self.silent_frames = 0;
        } else {
            self.silent_frames += 1;
        }
        if self.machine && !self.greeting_ended && self.heard_speech && self.silent_frames >= self.end_silence_frames {
            self.greeting_ended = true;
            out(MediaEvent::GreetingEnded);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;
    use std::path::Path;

    /// Streams a corpus file as PCMU packets (20 ms, then `tail_ms` of silence) through an AmdRun.
    fn run(file: &str, tail_ms: usize) -> Vec<MediaEvent> {
        let clip = crate::amd::wav::read_wav(&Path::new(env!("CARGO_MANIFEST_DIR")).join("test-media/amd").join(file)).unwrap();
        let mut samples = clip.samples;
        samples.resize(samples.len().div_ceil(160) * 160 + tail_ms * 8, 0);
        let mut r = AmdRun::new(&AmdConfig::default(), Codec::Pcmu, 0).unwrap();
        let mut events = vec![];
        for (k, chunk) in samples.chunks(160).enumerate() {
            let payload: Vec<u8> = chunk.iter().map(|&s| g711::ulaw_encode(s)).collect();
            let p = RtpPacket { payload_type: 0, marker: k == 0, sequence: k as u16, timestamp: 1000 + 160 * k as u32, ssrc: 9, payload: payload.into() };
            r.push(k as u64, p, &mut |e| events.push(e)).unwrap();
            if !r.active() {
                break;
            }
        }
        events
    }

    #[test]
    fn a_machine_greeting_gives_decision_beep_then_end_of_greeting() {
        let ev = run("m007.wav", 1500);
        assert_eq!(ev.len(), 3, "{ev:?}");
        assert!(matches!(ev[0], MediaEvent::Amd(d) if d.result == AmdResult::Machine));
        // Same audio time as `redial amd` on the file (the labelled onset is 5770 ms).
        assert_eq!(ev[1], MediaEvent::Beep { at_ms: 5770 });
        assert_eq!(ev[2], MediaEvent::GreetingEnded);
    }

    #[test]
    fn a_silent_line_is_decided_when_the_caller_gives_up() {
        let mut r = AmdRun::new(&AmdConfig::default(), Codec::Pcmu, 0).unwrap();
        assert_eq!(r.patience(), std::time::Duration::from_millis(5000));
        let mut ev = vec![];
        r.give_up(&mut |e| ev.push(e));
        r.give_up(&mut |e| ev.push(e));
        assert_eq!(ev.len(), 1, "once: {ev:?}");
        assert!(matches!(ev[0], MediaEvent::Amd(d) if d.result == AmdResult::Unknown && d.reason == crate::amd::DecisionReason::EndOfAudio));
        assert!(r.decided() && !r.active());
    }

    #[test]
    fn a_person_gives_only_the_decision() {
        let ev = run("h001.wav", 3000);
        assert_eq!(ev.len(), 1, "{ev:?}");
        assert!(matches!(ev[0], MediaEvent::Amd(d) if d.result == AmdResult::Human));
    }

    #[test]
    fn without_trailing_silence_the_greeting_has_not_ended() {
        // The recording of m007 stops before 700 ms of silence have followed its beep.
        let ev = run("m007.wav", 0);
        assert!(!ev.contains(&MediaEvent::GreetingEnded), "{ev:?}");
        assert!(ev.contains(&MediaEvent::Beep { at_ms: 5770 }));
    }
}
