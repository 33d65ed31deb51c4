//! Adaptive noise floor: a low percentile of recent frame energies.
//!
//! A fixed silence threshold (Asterisk's 256) fails both ways: a quiet line never
//! crosses it and a noisy line never drops below it. Frame energies in dB go into a
//! histogram whose counts decay (forgetting old frames), and the floor is a low
//! percentile of it — a form of minimum statistics that ignores the loud (speech) part
//! of the distribution and single dropouts alike.
//!
//! Optionally (`follow_steady_rise`) it also follows a rise at once: a low percentile over
//! seconds stays at a quiet start for seconds after a louder background sets in (a line that
//! is near silent for a moment after the answer, then a noisy room), and that background
//! would pass for speech meanwhile. A background is steady (a few dB from frame to frame);
//! speech is not, so a steady run well above the floor becomes the floor.

use std::collections::VecDeque;

const BIN_DB: f32 = 0.5;
const MIN_DB: f32 = -100.0;
const BINS: usize = 200; // -100 .. 0 dBFS
/// A steady run this far above the floor is the new floor (about the speech margin's
/// distance and more: anything nearer is already read as the floor or close to it).
const RISE_DB: f32 = 8.0;
/// Steady: every frame of the run within this of the run's mean.
const STEADY_DB: f32 = 1.5;

/// Tracks the noise floor of a line in dBFS.
#[derive(Debug, Clone)]
pub struct NoiseFloor {
    hist: [f32; BINS],
    total: f32,
    /// Weight of the next frame: growing by 1/decay per frame is the same as decaying
    /// every count by `decay`, without touching every bin.
    weight: f32,
    decay: f32,
    percentile: f32,
    min_db: f32,
    floor: Option<f32>,
    /// The last frames, when a steady rise is followed (`follow_steady_rise`), and how many.
    recent: VecDeque<f32>,
    rise_frames: usize,
}

impl NoiseFloor {
    /// `window_frames`: about how many recent frames the estimate remembers;
    /// `percentile` in 0..1 (e.g. 0.05); `min_db`: the floor never goes below this.
    pub fn new(window_frames: u32, percentile: f32, min_db: f32) -> Self {
        NoiseFloor {
            hist: [0.0; BINS],
            total: 0.0,
            weight: 1.0,
            floor: None,
            decay: 1.0 - 1.0 / window_frames.max(1) as f32,
            percentile: percentile.clamp(0.0, 1.0),
            min_db,
            recent: VecDeque::new(),
            rise_frames: 0,
        }
    }

    /// Makes a run of `frames` frames, each within `STEADY_DB` of the run's mean and the
    /// mean more than `RISE_DB` above the floor, the new floor at once (0: never).
    pub fn follow_steady_rise(mut self, frames: u32) -> Self {
        self.rise_frames = frames as usize;
        self
    }

    /// Adds one frame's energy (dBFS).
    pub fn push(&mut self, energy_db: f32) {
        self.add(energy_db);
        self.floor = self.percentile_db();
        if self.rise_frames == 0 {
            return;
        }
        if self.recent.len() == self.rise_frames {
            self.recent.pop_front();
        }
        self.recent.push_back(energy_db);
        if self.recent.len() < self.rise_frames {
            return;
        }
        let mean = self.recent.iter().sum::<f32>() / self.recent.len() as f32;
        let steady = self.recent.iter().all(|e| (e - mean).abs() <= STEADY_DB);
        if steady && self.floor.is_some_and(|f| mean > f + RISE_DB) {
            (self.hist, self.total, self.weight) = ([0.0; BINS], 0.0, 1.0);
            for e in std::mem::take(&mut self.recent) {
                self.add(e);
            }
            self.floor = self.percentile_db();
        }
    }

    /// Adds one frame's energy (dBFS) of a sound that is no background however steady it
    /// is (a tone: a beep held for its length must not become the floor under itself).
    pub fn push_tone(&mut self, energy_db: f32) {
        self.add(energy_db);
        self.floor = self.percentile_db();
        self.recent.clear();
    }

    fn add(&mut self, energy_db: f32) {
        if self.weight > 1e20 {
            for h in self.hist.iter_mut() {
                *h /= self.weight;
            }
            self.total /= self.weight;
            self.weight = 1.0;
        }
        let bin = (((energy_db - MIN_DB) / BIN_DB) as isize).clamp(0, BINS as isize - 1) as usize;
        self.hist[bin] += self.weight;
        self.total += self.weight;
        self.weight /= self.decay;
    }

    /// The current floor in dBFS, or `None` before any frame.
    pub fn floor_db(&self) -> Option<f32> {
        self.floor
    }

    fn percentile_db(&self) -> Option<f32> {
        if self.total <= 0.0 {
            return None;
        }
        let target = self.total * self.percentile;
        let mut acc = 0.0;
        for (i, h) in self.hist.iter().enumerate() {
            acc += h;
            if acc >= target && *h > 0.0 {
                return Some((MIN_DB + (i as f32 + 0.5) * BIN_DB).max(self.min_db));
            }
        }
        Some(self.min_db)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_follows_noise_not_speech() {
        let mut f = NoiseFloor::new(250, 0.05, -80.0);
        // 1 s of noise around -50 dBFS then 2 s of speech around -20 dBFS.
        for i in 0..50 {
            f.push(-50.0 + (i % 3) as f32);
        }
        for i in 0..100 {
            f.push(-20.0 + (i % 5) as f32);
        }
        let fl = f.floor_db().unwrap();
        assert!((-51.0..=-47.0).contains(&fl), "{fl}");
    }

    #[test]
    fn floor_rises_when_noise_rises() {
        let mut f = NoiseFloor::new(100, 0.05, -80.0);
        for _ in 0..100 {
            f.push(-70.0);
        }
        for _ in 0..400 {
            f.push(-40.0);
        }
        let fl = f.floor_db().unwrap();
        assert!((-41.0..=-39.0).contains(&fl), "{fl}");
    }

    #[test]
    fn a_steady_background_well_above_a_quiet_start_is_the_floor_within_its_run() {
        // 0.6 s near silence, then a steady room 16 dB above it (+-1 dB).
        let quiet_then_room = |f: &mut NoiseFloor| {
            for _ in 0..30 {
                f.push(-66.0);
            }
            for i in 0..25 {
                f.push(-50.0 + (i % 3) as f32 - 1.0);
            }
        };
        let mut slow = NoiseFloor::new(250, 0.05, -72.0);
        quiet_then_room(&mut slow);
        let fl = slow.floor_db().unwrap();
        assert!((-67.0..=-65.0).contains(&fl), "without it the floor stays at the quiet start: {fl}");
        let mut f = NoiseFloor::new(250, 0.05, -72.0).follow_steady_rise(25);
        quiet_then_room(&mut f);
        let fl = f.floor_db().unwrap();
        assert!((-52.0..=-49.0).contains(&fl), "{fl}");
    }

    #[test]
    fn speech_over_a_floor_does_not_raise_it() {
        let mut f = NoiseFloor::new(250, 0.05, -72.0).follow_steady_rise(25);
        for _ in 0..30 {
            f.push(-60.0);
        }
        // Syllables: levels that move by several dB from frame to frame, for 2 s.
        for i in 0..100 {
            f.push(-30.0 + [0.0, -4.0, -9.0, -2.0, -6.0][i % 5]);
        }
        let fl = f.floor_db().unwrap();
        assert!((-61.0..=-59.0).contains(&fl), "{fl}");
    }

    #[test]
    fn floor_clamped_and_empty() {
        let mut f = NoiseFloor::new(100, 0.05, -70.0);
        assert_eq!(f.floor_db(), None);
        f.push(-200.0);
        assert_eq!(f.floor_db(), Some(-70.0));
    }
}
