//! A leg's received audio as a gap-free 8 kHz PCM stream in 20 ms frames,
//! for analysis (AMD, recording). Time is counted in samples: a frame's
//! index × 20 ms is its media time since the first packet, whatever the
//! network did — lost packets and silence suppression (timestamp gaps)
//! become silence, reordering is undone by a [`JitterBuffer`], and a new
//! source continues where the previous one stopped.

use std::collections::VecDeque;

use super::jitter::{JitterBuffer, JitterOutput};
use super::rtp::{RtpPacket, TimestampExtender};
use super::transcode::{FrameDecoder, TranscodeError, PIVOT_FRAME, PIVOT_RATE};
use super::Codec;

/// A timestamp jump beyond this is a restart, not a gap to fill.
const MAX_GAP_SAMPLES: u64 = PIVOT_RATE as u64 * 10;

#[derive(Debug)]
pub struct AudioTap {
    clock_rate: u32,
    payload_type: u8,
    jitter: JitterBuffer,
    dec: FrameDecoder,
    ssrc: Option<u32>,
    ts: TimestampExtender,
    /// (extended timestamp, sample position) the current source is anchored at.
    anchor: Option<(i64, u64)>,
    /// Samples written so far (emitted frames plus `pcm`).
    written: u64,
    pcm: Vec<i16>,
    frames: VecDeque<Vec<i16>>,
    scratch: Vec<i16>,
}

impl AudioTap {
    /// `depth`: packets the jitter buffer waits behind a gap (e.g. 3 = 60 ms).
    pub fn new(codec: Codec, payload_type: u8, depth: usize) -> Result<Self, TranscodeError> {
        Ok(Self {
            clock_rate: codec.clock_rate(),
            payload_type,
            jitter: JitterBuffer::new(depth),
            dec: FrameDecoder::new(codec)?,
            ssrc: None,
            ts: TimestampExtender::default(),
            anchor: None,
            written: 0,
            pcm: Vec::new(),
            frames: VecDeque::new(),
            scratch: Vec::new(),
        })
    }

    /// A packet the session delivered (`RtpEvent::Packet`); other payload
    /// types (telephone-event, comfort noise) are ignored. Drain
    /// [`AudioTap::poll_frame`] afterwards.
    pub fn push(&mut self, ext_seq: u64, packet: RtpPacket) -> Result<(), TranscodeError> {
        if packet.payload_type != self.payload_type {
            return Ok(());
        }
        self.jitter.push(ext_seq, packet);
        while let Some(o) = self.jitter.pop() {
            self.take(o)?;
        }
        Ok(())
    }

    /// End of the stream: release what the jitter buffer holds and pad the
    /// last partial frame with silence.
    pub fn flush(&mut self) -> Result<(), TranscodeError> {
        for o in self.jitter.flush() {
            self.take(o)?;
        }
        if !self.pcm.is_empty() {
            let pad = PIVOT_FRAME - self.pcm.len();
            self.pcm.extend(std::iter::repeat_n(0, pad));
            self.written += pad as u64;
            self.cut();
        }
        Ok(())
    }

    fn take(&mut self, o: JitterOutput) -> Result<(), TranscodeError> {
        // A lost packet shows up as a timestamp gap at the next one.
        let JitterOutput::Packet { packet, .. } = o else { return Ok(()) };
        if self.ssrc != Some(packet.ssrc) {
            self.ssrc = Some(packet.ssrc);
            self.ts.reset();
            self.anchor = None;
        }
        let ext = self.ts.extend(packet.timestamp);
        let target = match self.anchor {
            Some((t0, s0)) => {
                let pos = s0 as i64 + (ext - t0) * PIVOT_RATE as i64 / self.clock_rate as i64;
                if pos < 0 || (pos as u64).abs_diff(self.written) > MAX_GAP_SAMPLES {
                    self.anchor = Some((ext, self.written));
                    self.written
                } else {
                    pos as u64
                }
            }
            None => {
                self.anchor = Some((ext, self.written));
                self.written
            }
        };
        self.scratch.clear();
        self.dec.decode(Some(&packet.payload), &mut self.scratch)?;
        let mut samples = &self.scratch[..];
        if target > self.written {
            let gap = (target - self.written) as usize;
            self.pcm.extend(std::iter::repeat_n(0, gap));
            self.written += gap as u64;
        } else if target < self.written {
            // Overlaps what was written (a duplicate or a late re-send): keep the new tail only.
            let skip = ((self.written - target) as usize).min(samples.len());
            samples = &samples[skip..];
        }
        self.pcm.extend_from_slice(samples);
        self.written += samples.len() as u64;
        self.cut();
        Ok(())
    }

    fn cut(&mut self) {
        let mut at = 0;
        while self.pcm.len() - at >= PIVOT_FRAME {
            self.frames.push_back(self.pcm[at..at + PIVOT_FRAME].to_vec());
            at += PIVOT_FRAME;
        }
        self.pcm.drain(..at);
    }

    /// The next 20 ms frame of 8 kHz PCM, in order.
    pub fn poll_frame(&mut self) -> Option<Vec<i16>> {
        self.frames.pop_front()
    }

    /// Samples produced so far (the media clock of the analysis).
    pub fn samples(&self) -> u64 {
        self.written
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::g711;
    use bytes::Bytes;

    fn pkt(ssrc: u32, seq: u16, ts: u32, level: i16) -> RtpPacket {
        RtpPacket { payload_type: 0, marker: false, sequence: seq, timestamp: ts, ssrc, payload: Bytes::from(vec![g711::ulaw_encode(level); 160]) }
    }

    fn frames(t: &mut AudioTap) -> Vec<i16> {
        std::iter::from_fn(|| t.poll_frame()).map(|f| f[80]).collect()
    }

    #[test]
    fn gaps_become_silence_and_order_is_restored() {
        let mut t = AudioTap::new(Codec::Pcmu, 0, 2).unwrap();
        let lv = |n: u16| 1000 * (n as i16 + 1);
        // Packets 0..8 with 3 swapped with 4, 5 lost, and a DTX pause of two frames after 6.
        let order = [0u16, 1, 2, 4, 3, 6, 9, 10, 11, 12];
        for &n in &order {
            let seq = if n >= 9 { n - 2 } else { n }; // DTX skips timestamps, not sequence numbers
            t.push(100 + seq as u64, pkt(7, seq, 5000 + n as u32 * 160, lv(n))).unwrap();
        }
        t.flush().unwrap();
        let got = frames(&mut t);
        let want: Vec<i16> = (0..13u16).map(|n| if n == 5 || n == 7 || n == 8 { 0 } else { g711::ulaw_decode(g711::ulaw_encode(lv(n))) }).collect();
        assert_eq!(got, want);
        assert_eq!(t.samples(), 13 * 160);
    }

    #[test]
    fn a_new_source_continues_the_timeline() {
        let mut t = AudioTap::new(Codec::Pcmu, 0, 2).unwrap();
        for n in 0..5u16 {
            t.push(n as u64, pkt(1, n, n as u32 * 160, 500)).unwrap();
        }
        for n in 0..5u16 {
            t.push(1000 + n as u64, pkt(2, 9000 + n, 4_000_000_000 + n as u32 * 160, 500)).unwrap();
        }
        t.flush().unwrap();
        assert_eq!(frames(&mut t).len(), 10);
        // Telephone-events do not enter the audio.
        let mut ev = pkt(2, 9005, 4_000_000_800, 0);
        ev.payload_type = 101;
        t.push(2000, ev).unwrap();
        assert_eq!(t.samples(), 10 * 160);
    }
}
