//! Adaptive noise floor: a low percentile of recent frame energies.
//!
//! A fixed silence threshold (Asterisk's 256) fails both ways: a quiet line never
//! crosses it and a noisy line never drops below it. Frame energies in dB go into a
//! histogram whose counts decay (forgetting old frames), and the floor is a low
//! percentile of it — a form of minimum statistics that ignores the loud (speech) part
//! of the distribution and single dropouts alike.

const BIN_DB: f32 = 0.5;
const MIN_DB: f32 = -100.0;
const BINS: usize = 200; // -100 .. 0 dBFS

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
        }
    }

    /// Adds one frame's energy (dBFS).
    pub fn push(&mut self, energy_db: f32) {
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
        self.floor = self.percentile_db();
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
    fn floor_clamped_and_empty() {
        let mut f = NoiseFloor::new(100, 0.05, -70.0);
        assert_eq!(f.floor_db(), None);
        f.push(-200.0);
        assert_eq!(f.floor_db(), Some(-70.0));
    }
}
