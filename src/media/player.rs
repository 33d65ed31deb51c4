//! Prompt playback: a WAV file as 20 ms packets with exact timestamps.
//!
//! Sans-IO: [`Player::poll_timeout`] says when the next packet is due and
//! [`Player::poll_frame`] hands out every packet due by `now`. Packet *n* is
//! due at `start + n × 20 ms`, computed from the start each time, so a late
//! wake-up delays one packet and never the ones after it: no drift over a
//! long prompt.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::resample::{ResampleError, Resampler};
use super::transcode::{FrameEncoder, TranscodeError, PIVOT_FRAME, PIVOT_RATE};
use super::Codec;

pub const FRAME: Duration = Duration::from_millis(20);

#[derive(Debug, thiserror::Error)]
pub enum PlayerError {
    #[error("cannot read WAV {path}: {source}")]
    Wav { path: String, source: hound::Error },
    #[error("WAV {path} has an unsupported sample format ({bits} bits, {format})")]
    Format { path: String, bits: u16, format: &'static str },
    #[error("prompt is empty")]
    Empty,
    #[error(transparent)]
    Resample(#[from] ResampleError),
    #[error(transparent)]
    Encode(#[from] TranscodeError),
}

/// Audio ready to play: 8 kHz mono 16-bit, shared between calls.
#[derive(Debug, Clone)]
pub struct Prompt {
    samples: Arc<[i16]>,
}

impl Prompt {
    /// Loads a WAV file: mono or multichannel (averaged), 8/16/24/32-bit
    /// integer or float, any rate (resampled to 8 kHz).
    pub fn from_wav(path: &Path) -> Result<Self, PlayerError> {
        let p = || path.display().to_string();
        let mut r = hound::WavReader::open(path).map_err(|e| PlayerError::Wav { path: p(), source: e })?;
        let spec = r.spec();
        let ch = spec.channels.max(1) as usize;
        let mono: Vec<f32> = match (spec.sample_format, spec.bits_per_sample) {
            (hound::SampleFormat::Int, 8..=32) => {
                let scale = 1.0 / (1i64 << (spec.bits_per_sample - 1)) as f32;
                let s: Result<Vec<i32>, _> = r.samples::<i32>().collect();
                let s = s.map_err(|e| PlayerError::Wav { path: p(), source: e })?;
                s.chunks(ch).map(|c| c.iter().map(|&x| x as f32 * scale).sum::<f32>() / ch as f32).collect()
            }
            (hound::SampleFormat::Float, 32) => {
                let s: Result<Vec<f32>, _> = r.samples::<f32>().collect();
                let s = s.map_err(|e| PlayerError::Wav { path: p(), source: e })?;
                s.chunks(ch).map(|c| c.iter().sum::<f32>() / ch as f32).collect()
            }
            (f, bits) => return Err(PlayerError::Format { path: p(), bits, format: if f == hound::SampleFormat::Int { "int" } else { "float" } }),
        };
        let pcm: Vec<i16> = mono.iter().map(|&x| (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).collect();
        Self::from_samples(spec.sample_rate, &pcm)
    }

    /// Mono samples at `rate`, resampled to 8 kHz when needed.
    pub fn from_samples(rate: u32, pcm: &[i16]) -> Result<Self, PlayerError> {
        if pcm.is_empty() {
            return Err(PlayerError::Empty);
        }
        if rate == PIVOT_RATE {
            return Ok(Self { samples: pcm.into() });
        }
        let mut r = Resampler::new(rate, PIVOT_RATE)?;
        let mut out = Vec::with_capacity(pcm.len() * PIVOT_RATE as usize / rate as usize + 1);
        r.process(pcm, &mut out);
        // Flush the filter's tail and drop its group delay, so the prompt keeps its length and alignment.
        let delay = r.delay().round() as usize;
        r.process(&vec![0; (delay + 1) * rate as usize / PIVOT_RATE as usize + 1], &mut out);
        let want = (pcm.len() as u64 * PIVOT_RATE as u64 / rate as u64) as usize;
        let out: Vec<i16> = out.into_iter().skip(delay).take(want).collect();
        Ok(Self { samples: out.into() })
    }

    pub fn samples(&self) -> &[i16] {
        &self.samples
    }

    pub fn duration(&self) -> Duration {
        Duration::from_micros(self.samples.len() as u64 * 1_000_000 / PIVOT_RATE as u64)
    }

    /// 20 ms frames the prompt fills (the last one padded with silence).
    pub fn frames(&self) -> u64 {
        self.samples.len().div_ceil(PIVOT_FRAME) as u64
    }
}

/// One packet to hand to [`super::RtpSession::send`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaFrame {
    /// Frame number from the start of the playback.
    pub index: u64,
    /// When it was due.
    pub due: Instant,
    /// Media position in RTP clock ticks (the session adds its random base).
    pub position: u64,
    pub marker: bool,
    pub payload_type: u8,
    pub payload: Vec<u8>,
}

#[derive(Debug)]
pub struct Player {
    prompt: Prompt,
    enc: FrameEncoder,
    payload_type: u8,
    ticks_per_frame: u64,
    start: Instant,
    start_position: u64,
    looped: bool,
    next: u64,
    /// Sample offset into the prompt of the next frame.
    cursor: usize,
    done: bool,
    pcm: Vec<i16>,
}

impl Player {
    /// Plays `prompt` with `codec` as `payload_type` from `start`; the first
    /// packet carries media position `start_position` (where the stream is)
    /// and the marker bit (a talkspurt starts, RFC 3551 §4.1).
    pub fn new(prompt: Prompt, codec: Codec, payload_type: u8, looped: bool, start: Instant, start_position: u64) -> Result<Self, PlayerError> {
        Ok(Self {
            enc: FrameEncoder::new(codec)?,
            ticks_per_frame: codec.ticks_per_frame() as u64,
            prompt,
            payload_type,
            start,
            start_position,
            looped,
            next: 0,
            cursor: 0,
            done: false,
            pcm: vec![0; PIVOT_FRAME],
        })
    }

    fn due(&self, n: u64) -> Instant {
        // From the start every time: no accumulated rounding or lateness.
        self.start + Duration::from_nanos(FRAME.as_nanos() as u64 * n)
    }

    /// When the next packet is due; `None` once the prompt has ended.
    pub fn poll_timeout(&self) -> Option<Instant> {
        (!self.done).then(|| self.due(self.next))
    }

    pub fn is_done(&self) -> bool {
        self.done
    }

    /// Media position just after the last packet handed out (to continue the stream).
    pub fn position(&self) -> u64 {
        self.start_position + self.next * self.ticks_per_frame
    }

    /// The next packet if it is due by `now`; call until `None`.
    pub fn poll_frame(&mut self, now: Instant) -> Option<Result<MediaFrame, PlayerError>> {
        if self.done || now < self.due(self.next) {
            return None;
        }
        let samples = self.prompt.samples();
        let mut filled = 0;
        while filled < PIVOT_FRAME {
            if self.cursor >= samples.len() {
                if !self.looped {
                    break;
                }
                self.cursor = 0;
            }
            let n = (PIVOT_FRAME - filled).min(samples.len() - self.cursor);
            self.pcm[filled..filled + n].copy_from_slice(&samples[self.cursor..self.cursor + n]);
            filled += n;
            self.cursor += n;
        }
        self.pcm[filled..].fill(0); // silence pads the final partial frame
        let n = self.next;
        let mut payload = Vec::with_capacity(PIVOT_FRAME);
        if let Err(e) = self.enc.encode(&self.pcm, &mut payload) {
            self.done = true;
            return Some(Err(e.into()));
        }
        self.next += 1;
        if !self.looped && self.cursor >= samples.len() {
            self.done = true;
        }
        Some(Ok(MediaFrame {
            index: n,
            due: self.due(n),
            position: self.start_position + n * self.ticks_per_frame,
            marker: n == 0,
            payload_type: self.payload_type,
            payload,
        }))
    }

    /// Stops a looping prompt (or any prompt) after the current packet.
    pub fn stop(&mut self) {
        self.done = true;
    }
}

/// A call-progress tone: the sum of `freqs` (Hz), `on_ms` on and `off_ms` off,
/// `total_ms` long (at least one 20 ms frame), e.g. busy = `tone(&[480.0, 620.0],
/// 500, 500, 1000)` played looped. Each frequency at about -16 dBFS, so a dual
/// tone stays well clear of clipping; on/off edges fall on sample boundaries.
pub fn tone(freqs: &[f32], on_ms: u32, off_ms: u32, total_ms: u32) -> Prompt {
    let rate = PIVOT_RATE as u64;
    let total = ((total_ms as u64 * rate / 1000) as usize).max(PIVOT_FRAME);
    let on = on_ms as u64 * rate / 1000;
    let period = (on + off_ms as u64 * rate / 1000).max(1);
    let amp = 5000.0f64;
    let samples: Vec<i16> = (0..total)
        .map(|i| {
            if (i as u64 % period) >= on {
                return 0;
            }
            let t = i as f64 / rate as f64;
            let v: f64 = freqs.iter().map(|&f| amp * (2.0 * std::f64::consts::PI * f as f64 * t).sin()).sum();
            v.round().clamp(-32768.0, 32767.0) as i16
        })
        .collect();
    Prompt { samples: samples.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;

    fn ramp(n: usize) -> Vec<i16> {
        (0..n).map(|i| ((i % 200) as i16 - 100) * 100).collect()
    }

    #[test]
    fn ten_minutes_without_drift_in_virtual_time() {
        let samples = ramp(8000 * 600); // 10 minutes
        let prompt = Prompt::from_samples(8000, &samples).unwrap();
        let t0 = Instant::now();
        let mut p = Player::new(prompt, Codec::Pcmu, 0, false, t0, 4000).unwrap();
        let mut frames = 0u64;
        let mut lcg = 12345u64;
        // A sloppy timer: every wake-up is 0–7 ms late, and every 1000th one 150 ms late.
        while let Some(due) = p.poll_timeout() {
            lcg = lcg.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            let late = Duration::from_millis((lcg >> 60) % 8) + if frames % 1000 == 999 { Duration::from_millis(150) } else { Duration::ZERO };
            let now = due + late;
            while let Some(f) = p.poll_frame(now) {
                let f = f.unwrap();
                assert_eq!(f.index, frames);
                assert_eq!(f.due, t0 + Duration::from_millis(20 * frames), "packet {frames} due exactly at start + n·20 ms");
                assert_eq!(f.position, 4000 + 160 * frames);
                assert_eq!(f.marker, frames == 0);
                assert_eq!(f.payload.len(), 160);
                if frames == 12345 {
                    let want: Vec<u8> = samples[12345 * 160..12346 * 160].iter().map(|&s| g711::ulaw_encode(s)).collect();
                    assert_eq!(f.payload, want);
                }
                frames += 1;
            }
        }
        assert_eq!(frames, 30_000);
        assert_eq!(p.position(), 4000 + 30_000 * 160);
    }

    #[test]
    fn partial_last_frame_is_padded_and_loops_are_seamless() {
        let prompt = Prompt::from_samples(8000, &vec![1000i16; 250]).unwrap();
        assert_eq!(prompt.frames(), 2);
        let t0 = Instant::now();
        let mut p = Player::new(prompt.clone(), Codec::Pcma, 8, false, t0, 0).unwrap();
        let all: Vec<_> = std::iter::from_fn(|| p.poll_frame(t0 + Duration::from_secs(1))).map(Result::unwrap).collect();
        assert_eq!(all.len(), 2);
        let tail = &all[1].payload;
        assert!(tail[..90].iter().all(|&c| c == g711::alaw_encode(1000)));
        assert!(tail[90..].iter().all(|&c| c == g711::alaw_encode(0)));
        assert!(p.is_done() && p.poll_timeout().is_none());

        let mut l = Player::new(prompt, Codec::Pcmu, 0, true, t0, 0).unwrap();
        let frames: Vec<_> = (0..10).map(|_| l.poll_frame(t0 + Duration::from_secs(1)).unwrap().unwrap()).collect();
        assert!(frames.iter().all(|f| f.payload.iter().all(|&c| c == g711::ulaw_encode(1000))), "no silence at the loop point");
        l.stop();
        assert!(l.poll_frame(t0 + Duration::from_secs(9)).is_none());
    }

    #[test]
    fn busy_tone_cadence_and_frequencies() {
        let t = tone(&[480.0, 620.0], 500, 500, 2000);
        let s = t.samples();
        assert_eq!(s.len(), 16000);
        assert_eq!(t.duration(), Duration::from_secs(2));
        let energy = |r: std::ops::Range<usize>| s[r].iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
        assert!(energy(0..4000) > 1e9 && energy(8000..12000) > 1e9, "on periods carry the tone");
        assert_eq!(energy(4000..8000), 0.0, "off periods are silent");
        // Goertzel power at 480 and 620 Hz dominates a frequency that is not in the tone.
        let power = |f: f64| {
            let w = 2.0 * std::f64::consts::PI * f / 8000.0;
            let (mut a, mut b) = (0.0f64, 0.0f64);
            for &x in &s[..4000] {
                let c = x as f64 + 2.0 * w.cos() * a - b;
                b = a;
                a = c;
            }
            a * a + b * b - 2.0 * w.cos() * a * b
        };
        assert!(power(480.0) > 100.0 * power(1000.0));
        assert!(power(620.0) > 100.0 * power(1000.0));
        assert_eq!(tone(&[440.0], 100, 0, 0).samples().len(), 160, "never empty");
    }

    #[test]
    fn nothing_before_its_time() {
        let t0 = Instant::now();
        let mut p = Player::new(Prompt::from_samples(8000, &[0; 800]).unwrap(), Codec::Pcmu, 0, false, t0, 0).unwrap();
        assert!(p.poll_frame(t0).is_some());
        assert!(p.poll_frame(t0 + Duration::from_millis(19)).is_none());
        assert_eq!(p.poll_timeout(), Some(t0 + Duration::from_millis(20)));
    }

    #[test]
    fn opus_frames_use_the_48k_clock() {
        let t0 = Instant::now();
        let mut p = Player::new(Prompt::from_samples(8000, &ramp(1600)).unwrap(), Codec::Opus, 111, false, t0, 0).unwrap();
        let pos: Vec<_> = std::iter::from_fn(|| p.poll_frame(t0 + Duration::from_secs(1))).map(|f| f.unwrap().position).collect();
        assert_eq!(pos, (0..10).map(|n| n * 960).collect::<Vec<_>>());
    }

    #[test]
    fn wav_files_at_other_rates_are_resampled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p.wav");
        let spec = hound::WavSpec { channels: 2, sample_rate: 16000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for i in 0..16000 {
            let s = (8000.0 * (2.0 * std::f64::consts::PI * 500.0 * i as f64 / 16000.0).sin()) as i16;
            w.write_sample(s).unwrap();
            w.write_sample(s).unwrap();
        }
        w.finalize().unwrap();
        let p = Prompt::from_wav(&path).unwrap();
        assert_eq!(p.samples().len(), 8000);
        assert_eq!(p.duration(), Duration::from_secs(1));
        // Still a 500 Hz tone of the same level, aligned with the original.
        let s = p.samples();
        for k in [1000usize, 4000, 7000] {
            let want = 8000.0 * (2.0 * std::f64::consts::PI * 500.0 * k as f64 / 8000.0).sin();
            assert!((s[k] as f64 - want).abs() < 150.0, "sample {k}: {} vs {want}", s[k]);
        }
        assert!(matches!(Prompt::from_wav(&dir.path().join("missing.wav")), Err(PlayerError::Wav { .. })));
    }
}
