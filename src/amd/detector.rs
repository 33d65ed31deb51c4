//! The streaming detector: frames in, one decision and maybe a beep onset out.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use super::config::{AmdConfig, AmdConfigError};
use super::features::{Features, FrameStats, LevelHistogram, PitchTracker, Spectrum, BANDS, BAND_MIN_DB, FEATURE_COUNT};
use super::floor::NoiseFloor;
use super::model::{sigmoid, Model};
use super::sequence::{FrameInputs, SequenceModel, SequenceState, INPUT_COUNT};
use super::tone::{analyse, between, BEEP_MAX_BETWEEN};
use super::{FRAME_MS, FRAME_SAMPLES};

/// What answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AmdResult {
    Human,
    Machine,
    Unknown,
}

impl AmdResult {
    /// The name used in JSON and in the API (`human`, `machine`, `unknown`).
    pub fn as_str(self) -> &'static str {
        match self {
            AmdResult::Human => "human",
            AmdResult::Machine => "machine",
            AmdResult::Unknown => "unknown",
        }
    }
}

/// Why the detector decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DecisionReason {
    /// The model's confidence crossed `human_confidence` or `machine_confidence`.
    Confident,
    /// A greeting longer than people's first phrase (`machine_greeting_ms`,
    /// `machine_phrase_ms`), the model not leaning to a person.
    LongGreeting,
    /// A voicemail beep was heard before anything else decided.
    Beep,
    /// No speech within `initial_silence_ms`.
    InitialSilence,
    /// Nothing conclusive within `total_analysis_ms`.
    MaxTime,
    /// The audio ended first ([`AmdDetector::finish`]).
    EndOfAudio,
}

/// The detector's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AmdDecision {
    pub result: AmdResult,
    /// Audio time (from the first sample pushed) at which the detector committed.
    pub decided_at_ms: u64,
    pub reason: DecisionReason,
    /// Start of the first utterance after answer, if any.
    pub speech_onset_ms: Option<u64>,
    /// Length of the first utterance (to its end or to the decision).
    pub greeting_ms: u64,
    /// Words in the first utterance.
    pub words: u32,
}

/// Misuse of the detector.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmdError {
    #[error("audio pushed after finish()")]
    Finished,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum FrameKind {
    Plain,
    Ringback,
    Tone(f32),
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    energy_db: f32,
    kind: FrameKind,
    stats: FrameStats,
    /// Share of the frame's energy per band (dB); [`BAND_MIN_DB`] where not measured.
    bands: [f32; BANDS],
}

/// A run of speech frames, in frame indexes `[start, end)`.
#[derive(Debug, Clone, Copy)]
struct Span {
    start: u64,
    end: u64,
    voiced: u64,
    words: u32,
    /// Longest phrase (words joined across gaps shorter than `phrase_gap_ms`), frames.
    longest_phrase: u64,
    /// Start of the current (last) phrase.
    phrase_start: u64,
    /// Sum of the speech frames' levels (dB).
    level: f32,
}

/// The utterances of the history and what the speech in them sounds like.
#[derive(Debug, Clone, Default)]
struct Scan {
    utts: Vec<Span>,
    /// Speech frames, and the sums of their zero-crossing rate, tilt, level and level².
    voiced: u64,
    zcr: f32,
    tilt: f32,
    level: f32,
    level2: f32,
    floor_db: f32,
    /// Sum of periodicity over speech frames.
    periodicity: f32,
    /// Pitched speech frames, the sums of their pitch (semitones) and its square.
    pitched: u32,
    st: f32,
    st2: f32,
    /// Pitch steps between adjacent pitched frames: count and sum of |step|.
    steps: u32,
    step_sum: f32,
    /// The latest pitched speech frames (index, semitones), oldest first, for the end slope.
    tail: VecDeque<(u64, f32)>,
    /// Energy peaks (3 dB up and down again) in the speech envelope: syllable nuclei.
    peaks: u32,
    /// Speech frames with a measured spectrum, and the sums of their band shares (dB).
    band_n: u32,
    bands: [f32; BANDS],
    /// Spectral flux between adjacent speech frames: count and sum of the RMS step (dB).
    flux_n: u32,
    flux: f32,
    /// Standard deviation of the words' mean levels (dB), 0 with fewer than two words.
    word_level_sd: f32,
}

/// Pitched frames the end-of-speech slope is fitted over (300 ms).
const TAIL_FRAMES: usize = 15;
/// Hysteresis of the syllable-peak counter.
const PEAK_DB: f32 = 3.0;
/// A trough of Japan's ring (`AmdDetector::ring_trough`): a frame at most this far under
/// `ringback_concentration` and at least this many dB under the run's loudest frame, at
/// most this many frames in a row.
const JAPAN_TROUGH_SLACK: f32 = 0.2;
const JAPAN_TROUGH_DB: f32 = 10.0;
const JAPAN_TROUGH_FRAMES: u32 = 2;
/// The long-greeting rule calls a machine only where the model does not lean to a person.
pub const LONG_GREETING_MIN_P: f32 = 0.5;
/// A person who talks on (`human_speech_ms`) is called only where the feature model alone
/// leans clearly to a person too: the GRUs can be sure and wrong on a line unlike their
/// corpus. Cross-validated on train: 0.2–0.4 score alike (docs/amd.md).
pub const TALKING_ON_MAX_P: f32 = 0.3;

/// What the detector thought at the last frame it evaluated (for `redial amd --explain`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Observation {
    /// Audio time of the frame's end.
    pub at_ms: u64,
    pub features: Features,
    /// P(machine): the two models' log-odds blended.
    pub p_machine: f32,
    /// The feature perceptron's P(machine) alone.
    pub p_features: f32,
    /// The sequence model's P(machine) alone (`None` before its first step).
    pub p_sequence: Option<f32>,
}

/// A single-tone run that may become the beep.
#[derive(Debug, Clone, Copy)]
struct ToneRun {
    start: u64,
    /// Frames since `start`.
    span: u32,
    /// Of them, the tone's alone: without a voice's neighbouring harmonics.
    frames: u32,
    hz: f32,
}

/// Streaming answering-machine detector over 8 kHz mono audio.
///
/// Feed the callee's audio from answer with [`push_frame`](Self::push_frame) (any length;
/// analysed in 20 ms frames), then call [`poll_decision`](Self::poll_decision) and
/// [`beep_at_ms`](Self::beep_at_ms). Keep feeding after the decision while
/// [`wants_audio`](Self::wants_audio) is true to hear the voicemail beep. Call
/// [`finish`](Self::finish) at the end of the audio. Time is counted in samples; the
/// detector never reads a clock, and the same audio always gives the same answer.
#[derive(Debug, Clone)]
pub struct AmdDetector {
    cfg: AmdConfig,
    pending: Vec<f32>,
    /// Complete frames analysed so far.
    frames: u64,
    floor: NoiseFloor,
    /// Frames since `t0` while undecided.
    history: Vec<Frame>,
    /// Frame index the answer clock starts from (0, or the end of the last ring-back burst).
    t0: u64,
    ring_run: u32,
    /// The current ring-back run has had a frame at 400 Hz alone (Japan's ring), its
    /// loudest frame, and the troughs (`ring_trough`) in a row that end it.
    ring_lone_400: bool,
    ring_peak_db: f32,
    ring_troughs: u32,
    ring_bursts: u32,
    speech_heard: bool,
    decision: Option<AmdDecision>,
    decision_polled: bool,
    tone_run: Option<ToneRun>,
    /// The last frames of raw audio and their mean squares, for refining the beep onset
    /// below the frame resolution: a whole beep run plus the frame before it.
    recent: VecDeque<([f32; FRAME_SAMPLES], f32)>,
    keep_frames: usize,
    beep_at_ms: Option<u64>,
    beep_stopped: bool,
    finished: bool,
    model: &'static Model,
    sequence: &'static SequenceModel,
    sequence_state: SequenceState,
    last: Option<Observation>,
    pitch: PitchTracker,
    spectrum: Spectrum,
}

fn frames_of(ms: u32) -> u64 {
    (ms as u64).div_ceil(FRAME_MS)
}

/// Whole tone frames that make a beep: the tone may have started inside the frame
/// before the run, so the run needs only the required length minus half a frame.
fn beep_frames(cfg: &AmdConfig) -> u64 {
    (cfg.beep_min_ms as u64).saturating_sub(FRAME_MS / 2).div_ceil(FRAME_MS).max(1)
}

impl Span {
    fn new(i: u64) -> Self {
        Span { start: i, end: i + 1, voiced: 1, words: 1, longest_phrase: 1, phrase_start: i, level: 0.0 }
    }
}

impl AmdDetector {
    /// A detector with `config`; the config is validated first.
    pub fn new(config: AmdConfig) -> Result<Self, AmdConfigError> {
        Self::with_models(config, Model::builtin(), SequenceModel::builtin())
    }

    /// A detector with `config` that reads `model` and `sequence` instead of the built-in
    /// weights (for scoring a retrained model without rebuilding; `amd_eval`).
    pub fn with_models(
        config: AmdConfig,
        model: &'static Model,
        sequence: &'static SequenceModel,
    ) -> Result<Self, AmdConfigError> {
        config.validate()?;
        let floor = NoiseFloor::new(
            (config.floor_window_ms as u64 / FRAME_MS) as u32,
            config.floor_percentile,
            config.floor_min_dbfs,
        )
        .follow_steady_rise((config.floor_rise_ms as u64 / FRAME_MS) as u32);
        let keep_frames = beep_frames(&config) as usize + 2;
        Ok(AmdDetector {
            cfg: config,
            pending: Vec::with_capacity(FRAME_SAMPLES),
            frames: 0,
            floor,
            history: Vec::new(),
            t0: 0,
            ring_run: 0,
            ring_lone_400: false,
            ring_peak_db: 0.0,
            ring_troughs: 0,
            ring_bursts: 0,
            speech_heard: false,
            decision: None,
            decision_polled: false,
            tone_run: None,
            recent: VecDeque::with_capacity(keep_frames),
            keep_frames,
            beep_at_ms: None,
            beep_stopped: false,
            finished: false,
            model,
            sequence,
            sequence_state: sequence.start(),
            last: None,
            pitch: PitchTracker::default(),
            spectrum: Spectrum::default(),
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &AmdConfig {
        &self.cfg
    }

    /// Feeds audio (8 kHz mono, any length; 160 samples = 20 ms is natural). Call
    /// [`poll_decision`](Self::poll_decision) after each push.
    pub fn push_frame(&mut self, samples: &[i16]) -> Result<(), AmdError> {
        if self.finished {
            return Err(AmdError::Finished);
        }
        for &s in samples {
            self.pending.push(s as f32);
            if self.pending.len() == FRAME_SAMPLES {
                let mut frame = [0.0f32; FRAME_SAMPLES];
                frame.copy_from_slice(&self.pending);
                self.pending.clear();
                self.process(&frame);
            }
        }
        Ok(())
    }

    /// The decision, once, as soon as it is made; `None` before and after that. See
    /// [`decision`](Self::decision) to read it again.
    pub fn poll_decision(&mut self) -> Option<AmdDecision> {
        match self.decision {
            Some(d) if !self.decision_polled => {
                self.decision_polled = true;
                Some(d)
            }
            _ => None,
        }
    }

    /// The decision if made.
    pub fn decision(&self) -> Option<AmdDecision> {
        self.decision
    }

    /// Onset of the voicemail beep (audio time in ms), once heard. The beep usually comes
    /// after the decision.
    pub fn beep_at_ms(&self) -> Option<u64> {
        self.beep_at_ms
    }

    /// Stop listening for the beep (e.g. the call was bridged).
    pub fn stop_beep_detection(&mut self) {
        self.beep_stopped = true;
    }

    /// Whether more audio can change anything: undecided, or still listening for a beep.
    /// Once false, the caller may stop feeding audio.
    pub fn wants_audio(&self) -> bool {
        !self.finished && (self.decision.is_none() || self.beep_listening())
    }

    /// The features and the model's confidence at the last frame evaluated while
    /// undecided and after speech was heard.
    pub fn observation(&self) -> Option<Observation> {
        self.last
    }

    /// Ring-back bursts heard so far.
    pub fn ringback_bursts(&self) -> u32 {
        self.ring_bursts
    }

    /// The inputs of the last frame the sequence model read (for `amd_eval frames`), as
    /// it read them: call it after each frame while undecided (`None` once decided).
    pub fn frame_inputs_of_last(&self) -> Option<FrameInputs> {
        self.history.last().map(|f| self.frame_inputs(f))
    }

    /// Audio time pushed so far (complete frames), in ms.
    pub fn now_ms(&self) -> u64 {
        self.frames * FRAME_MS
    }

    /// End of audio: decides with what is known if still undecided (a trailing partial
    /// frame is ignored). Idempotent; returns the decision.
    pub fn finish(&mut self) -> AmdDecision {
        self.finished = true;
        if let Some(d) = self.decision {
            return d;
        }
        let scan = self.scan();
        let now = self.frames;
        let d = match scan.utts.first() {
            None => self.decide(self.cfg.silence_result, DecisionReason::EndOfAudio, now, None),
            Some(u) => {
                // The audio ended undecided: the more likely answer, by the model.
                let p = self.p_machine(&self.features(&scan, now)).0;
                let r = if p >= 0.5 { AmdResult::Machine } else { AmdResult::Human };
                self.decide(r, DecisionReason::EndOfAudio, now, Some(*u))
            }
        };
        self.decision = Some(d);
        d
    }

    fn beep_listening(&self) -> bool {
        self.beep_at_ms.is_none()
            && !self.beep_stopped
            && self.decision.map(|d| d.result) != Some(AmdResult::Human)
            && self.now_ms() < self.cfg.beep_listen_ms as u64
    }

    fn process(&mut self, frame: &[f32; FRAME_SAMPLES]) {
        let index = self.frames;
        self.frames += 1;
        let energy = frame.iter().map(|v| v * v).sum::<f32>();
        let ms = energy / FRAME_SAMPLES as f32;
        let energy_db = 10.0 * (ms / (32768.0 * 32768.0) + 1e-10).log10();
        let floor = self.floor.floor_db().unwrap_or(self.cfg.floor_min_dbfs);
        // Loud enough to be speech, on the floor as it was before this frame.
        let speech_db = floor + self.cfg.speech_margin_db;

        let mut kind = FrameKind::Plain;
        // The frame's tone for the beep: a single tone's, or a clipped one's (tone.rs).
        let mut beep_hz = None;
        let listening = self.decision.is_none() || self.beep_listening();
        if listening && ms > 0.0 && energy_db >= floor + self.cfg.tone_margin_db {
            let a = analyse(frame, ms);
            let beep_band = self.cfg.beep_min_hz..=self.cfg.beep_max_hz;
            let full = a.ringback >= self.cfg.ringback_concentration;
            let trough = !full && self.ring_trough(a.ringback, energy_db);
            let ring = full || trough;
            if ring {
                let first = self.ring_run == 0;
                self.ring_lone_400 = (!first && self.ring_lone_400) || a.lone_400;
                self.ring_peak_db = if first { energy_db } else { self.ring_peak_db.max(energy_db) };
                self.ring_troughs = if trough { self.ring_troughs + 1 } else { 0 };
            }
            let single = a.single >= self.cfg.tone_concentration && beep_band.contains(&a.single_hz);
            let clipped = a.clipped >= self.cfg.tone_concentration && beep_band.contains(&a.clipped_hz);
            // Ring-back only before the callee has spoken: after that a 425 Hz tone is a
            // beep, and a harmonic that happens to sit at 440 Hz is speech.
            kind = if ring && !self.speech_heard && self.decision.is_none() {
                FrameKind::Ringback
            } else if single {
                FrameKind::Tone(a.single_hz)
            } else {
                FrameKind::Plain
            };
            // A tone frame with a voice's neighbouring harmonics may be a held vowel's harmonic:
            // it holds a run of the tone but does not count for the beep (docs/amd.md,
            // session 30). It stays a tone for the models.
            beep_hz = match kind {
                FrameKind::Tone(hz) => Some((hz, between(frame, ms, hz) < BEEP_MAX_BETWEEN)),
                FrameKind::Plain if clipped => Some((a.clipped_hz, true)),
                _ => None,
            };
        }
        // Ring-back is the network's, and digital silence (below `floor_min_dbfs`: the line
        // before answer, a lost packet) is no line at all: neither is the callee's noise.
        if kind != FrameKind::Ringback && energy_db > self.cfg.floor_min_dbfs {
            match kind {
                FrameKind::Tone(_) => self.floor.push_tone(energy_db),
                _ => self.floor.push(energy_db),
            }
        }

        self.track_ringback(kind, index, energy_db, speech_db);
        if self.beep_listening() {
            self.track_beep(frame, ms, beep_hz, index);
        }
        if self.decision.is_none() {
            let mut stats = FrameStats::of(frame, energy);
            // Pitch only for frames that may be speech (the floor may still settle lower).
            let maybe_speech = kind == FrameKind::Plain && energy_db >= speech_db - 3.0;
            (stats.periodicity, stats.pitch_st) = self.pitch.push(frame, maybe_speech);
            let bands = if maybe_speech { self.spectrum.bands(frame) } else { [BAND_MIN_DB; BANDS] };
            let f = Frame { energy_db, kind, stats, bands };
            self.history.push(f);
            let inputs = self.frame_inputs(&f);
            self.sequence.push(&mut self.sequence_state, &inputs);
            self.evaluate();
        }
    }

    /// Japan's ring is 400 Hz modulated at 16 Hz: in the modulation's troughs the line's
    /// noise and the codec's error hold more of a frame, and after a GSM round trip its
    /// share of the tone can fall under `ringback_concentration`; the run would break into
    /// pieces shorter than any ring, and the troughs read as speech (docs/amd.md, session
    /// 25). Inside a run that has shown a frame at 400 Hz alone (no other country's ring
    /// does), a frame far under the run's loudest (the envelope falls to nothing, 14-16 dB
    /// over a frame), for a frame or two, counts from a lower bar. A vowel can sit at
    /// 400 Hz alone for a few frames too; its fading frame seldom falls 10 dB at once, and
    /// such a run is too short for a ring's on-time anyway, so its frames stay the word's
    /// (`track_ringback`); only the ring-back flag the GRU reads on that frame moves.
    fn ring_trough(&self, ringback: f32, energy_db: f32) -> bool {
        self.ring_run > 0
            && self.ring_lone_400
            && self.ring_troughs < JAPAN_TROUGH_FRAMES
            && ringback >= self.cfg.ringback_concentration - JAPAN_TROUGH_SLACK
            && energy_db <= self.ring_peak_db - JAPAN_TROUGH_DB
    }

    /// `speech_db`: the level at which a frame is loud enough to be speech.
    fn track_ringback(&mut self, kind: FrameKind, index: u64, energy_db: f32, speech_db: f32) {
        if kind == FrameKind::Ringback {
            self.ring_run += 1;
            return;
        }
        if self.ring_run > 0 && self.decision.is_none() {
            // A burst with a ring-back cadence's on-time is ring-back: the callee has not
            // answered, so the answer clock (initial silence, total time) starts over after
            // it. A steady tone (longer than any ring) is just not speech.
            let run = self.ring_run as u64;
            if run >= frames_of(self.cfg.ringback_min_ms) && run < frames_of(self.cfg.ringback_max_on_ms) {
                self.ring_bursts += 1;
                self.t0 = index;
                self.history.clear();
            } else if run < frames_of(self.cfg.ringback_min_ms) && kind == FrameKind::Plain && energy_db >= speech_db {
                // Too short for any cadence's on-time, and inside a sound that is not a tone
                // either side: not ring-back, but a word whose energy sat at 400-480 Hz for a
                // frame or a few, as a man's short first word can (lines of real voices,
                // docs/amd.md). Its frames are read again as the line's. (A ring-back tone
                // broken by a lost packet or a codec starts or ends in a quiet frame or a
                // tone, and stays ring-back.)
                let n = self.history.len();
                let first = n.saturating_sub(run as usize);
                let before = first.checked_sub(1).map(|i| self.history[i]);
                if before.is_some_and(|f| f.kind == FrameKind::Plain && f.energy_db >= speech_db) {
                    for f in &mut self.history[first..] {
                        f.kind = FrameKind::Plain;
                    }
                }
            }
        }
        self.ring_run = 0;
    }

    /// `beep_hz`: the frame's tone, and whether it is the tone's alone (see `process`).
    fn track_beep(&mut self, frame: &[f32; FRAME_SAMPLES], ms: f32, beep_hz: Option<(f32, bool)>, index: u64) {
        if self.recent.len() == self.keep_frames {
            self.recent.pop_front();
        }
        self.recent.push_back((*frame, ms));
        let Some((hz, alone)) = beep_hz else {
            self.tone_run = None;
            return;
        };
        let run = match self.tone_run {
            Some(r) if (hz - r.hz).abs() <= self.cfg.beep_tolerance_hz => {
                ToneRun { span: r.span + 1, frames: r.frames + alone as u32, ..r }
            }
            _ if alone => ToneRun { start: index, span: 1, frames: 1, hz },
            _ => {
                self.tone_run = None;
                return;
            }
        };
        self.tone_run = Some(run);
        if run.frames as u64 >= beep_frames(&self.cfg) {
            self.beep_at_ms = Some(self.refine_onset(run));
        }
    }

    /// Onset to a few ms: scanning back from the run's first frame, the beep starts after
    /// the last 2.5 ms block well below the tone's level.
    fn refine_onset(&self, run: ToneRun) -> u64 {
        let coarse = run.start * FRAME_MS;
        let n = self.recent.len();
        if run.span as usize >= n {
            return coarse;
        }
        let k = n - run.span as usize; // position of the run's first frame in `recent`
        let mut levels: Vec<f32> = self.recent.iter().skip(k + 1).map(|f| f.1).collect();
        if levels.is_empty() {
            return coarse;
        }
        levels.sort_by(|a, b| a.total_cmp(b));
        let level = levels[levels.len() / 2];
        const BLOCK: usize = 20;
        let samples: Vec<f32> = self.recent[k - 1].0.iter().chain(self.recent[k].0.iter()).copied().collect();
        let base = (run.start - 1) * FRAME_SAMPLES as u64;
        let mut onset = base;
        for b in (0..samples.len() / BLOCK).rev() {
            let blk = &samples[b * BLOCK..(b + 1) * BLOCK];
            let e = blk.iter().map(|v| v * v).sum::<f32>() / BLOCK as f32;
            if e < level * 0.25 {
                onset = base + ((b + 1) * BLOCK) as u64;
                break;
            }
        }
        onset * 1000 / super::SAMPLE_RATE as u64
    }

    /// Splits the history into utterances with the current noise floor. Re-run on every
    /// frame: the floor settles as the line is heard, and earlier frames are re-read with
    /// it (the history is at most `total_analysis_ms` long).
    fn scan(&self) -> Scan {
        let floor = self.floor.floor_db().unwrap_or(self.cfg.floor_min_dbfs);
        let thr = floor + self.cfg.speech_margin_db;
        let mut scan = Scan { floor_db: floor, ..Scan::default() };
        let word_gap = frames_of(self.cfg.word_gap_ms);
        let min_word = frames_of(self.cfg.min_word_ms);
        let eou = frames_of(self.cfg.end_of_greeting_silence_ms);
        let mut words: Vec<Span> = Vec::new();
        let mut cur: Option<Span> = None;
        let mut last_pitch: Option<(u64, f32)> = None;
        // Peak counter: rising toward `hi`, or falling toward `lo`.
        let (mut rising, mut hi, mut lo) = (true, thr, thr);
        for (i, f) in self.history.iter().enumerate() {
            let i = i as u64;
            let speech = f.kind == FrameKind::Plain && f.energy_db >= thr;
            let e = if speech { f.energy_db } else { thr };
            if rising {
                if e > hi {
                    hi = e;
                } else if e < hi - PEAK_DB {
                    scan.peaks += (hi - lo >= PEAK_DB) as u32;
                    (rising, lo) = (false, e);
                }
            } else if e < lo {
                lo = e;
            } else if e > lo + PEAK_DB {
                (rising, hi) = (true, e);
            }
            if speech {
                scan.periodicity += f.stats.periodicity;
                if let Some(st) = f.stats.pitch_st {
                    scan.pitched += 1;
                    scan.st += st;
                    scan.st2 += st * st;
                    if let Some((j, prev)) = last_pitch {
                        if j + 1 == i {
                            scan.steps += 1;
                            scan.step_sum += (st - prev).abs();
                        }
                    }
                    last_pitch = Some((i, st));
                    if scan.tail.len() == TAIL_FRAMES {
                        scan.tail.pop_front();
                    }
                    scan.tail.push_back((i, st));
                }
            }
            if speech {
                // Frames whose spectrum was not measured (the floor settled lower after
                // they were heard) are left out of the spectral features.
                let measured = |f: &Frame| f.bands.iter().any(|b| *b > BAND_MIN_DB);
                if measured(f) {
                    scan.band_n += 1;
                    for (sum, b) in scan.bands.iter_mut().zip(&f.bands) {
                        *sum += b;
                    }
                }
                if i > 0 && measured(f) {
                    let prev = &self.history[i as usize - 1];
                    if prev.kind == FrameKind::Plain && prev.energy_db >= thr && measured(prev) {
                        let d2: f32 = f.bands.iter().zip(&prev.bands).map(|(a, b)| (a - b) * (a - b)).sum();
                        scan.flux += (d2 / BANDS as f32).sqrt();
                        scan.flux_n += 1;
                    }
                }
                scan.voiced += 1;
                scan.zcr += f.stats.zcr;
                scan.tilt += f.stats.tilt;
                scan.level += f.energy_db;
                scan.level2 += f.energy_db * f.energy_db;
                let mut w = match cur {
                    Some(w) if i - w.end <= word_gap => Span { end: i + 1, voiced: w.voiced + 1, ..w },
                    Some(w) => {
                        if w.voiced >= min_word {
                            words.push(w);
                        }
                        Span::new(i)
                    }
                    None => Span::new(i),
                };
                w.level += f.energy_db;
                cur = Some(w);
            }
        }
        if let Some(w) = cur {
            if w.voiced >= min_word {
                words.push(w);
            }
        }
        if words.len() >= 2 {
            // Runs on every frame: two passes over the words rather than a collected copy.
            let mean_of = |w: &Span| w.level / w.voiced as f32;
            let n = words.len() as f32;
            let m = words.iter().map(mean_of).sum::<f32>() / n;
            scan.word_level_sd = (words.iter().map(|w| (mean_of(w) - m).powi(2)).sum::<f32>() / n).sqrt();
        }
        let phrase_gap = frames_of(self.cfg.phrase_gap_ms);
        let mut utts: Vec<Span> = Vec::new();
        for mut w in words {
            w.longest_phrase = w.end - w.start;
            match utts.last_mut() {
                Some(u) if w.start - u.end < eou => {
                    if w.start - u.end >= phrase_gap {
                        u.phrase_start = w.start;
                    }
                    u.end = w.end;
                    u.voiced += w.voiced;
                    u.words += 1;
                    u.longest_phrase = u.longest_phrase.max(u.end - u.phrase_start);
                }
                _ => utts.push(w),
            }
        }
        for u in utts.iter_mut() {
            u.start += self.t0;
            u.end += self.t0;
            u.phrase_start += self.t0;
        }
        scan.utts = utts;
        scan
    }

    /// The feature vector at frame `now` (see [`super::features::FEATURE_NAMES`]).
    fn features(&self, scan: &Scan, now: u64) -> Features {
        const FPS: f32 = 1000.0 / FRAME_MS as f32;
        let s = |frames: u64| frames as f32 / FPS;
        let elapsed = now - self.t0;
        let mut x = [0.0f32; FEATURE_COUNT];
        x[0] = s(elapsed);
        x[1] = x[0];
        if let (Some(first), Some(last)) = (scan.utts.first(), scan.utts.last()) {
            let n = scan.voiced.max(1) as f32;
            let mean = scan.level / n;
            x[1] = s(first.start - self.t0);
            x[2] = s(first.end - first.start);
            x[3] = s(last.end - last.start);
            x[4] = s(now.saturating_sub(last.end));
            x[5] = s(scan.voiced);
            x[6] = scan.voiced as f32 / (now - first.start).max(1) as f32;
            x[7] = s(scan.utts.iter().map(|u| u.longest_phrase).max().unwrap_or(0));
            x[8] = scan.utts.iter().map(|u| u.words).sum::<u32>() as f32;
            x[9] = scan.utts.len() as f32;
            x[10] = s(scan.utts.windows(2).map(|w| w[1].start - w[0].end).max().unwrap_or(0));
            x[11] = scan.zcr / n;
            x[12] = scan.tilt / n;
            x[13] = (scan.level2 / n - mean * mean).max(0.0).sqrt();
            x[14] = mean - scan.floor_db;
            x[15] = scan.periodicity / n;
            if scan.pitched > 0 {
                let k = scan.pitched as f32;
                let m = scan.st / k;
                x[16] = (scan.st2 / k - m * m).max(0.0).sqrt();
                x[19] = m;
            }
            x[17] = if scan.steps > 0 { scan.step_sum / scan.steps as f32 } else { 0.0 };
            x[18] = end_slope(&scan.tail);
            x[20] = scan.peaks as f32 / x[5].max(0.1);
            let start = (first.start - self.t0) as usize;
            let before = if start == 0 { scan.floor_db } else { self.history[start - 1].energy_db };
            let rise = self.history[start..(start + 3).min(self.history.len())]
                .iter()
                .map(|f| f.energy_db)
                .fold(f32::MIN, f32::max);
            x[21] = (rise - before).max(0.0);
            let lead: Vec<f32> = self.history[..start]
                .iter()
                .filter(|f| f.kind == FrameKind::Plain && f.energy_db > self.cfg.floor_min_dbfs)
                .map(|f| f.energy_db)
                .collect();
            if lead.len() >= 5 {
                let m = lead.iter().sum::<f32>() / lead.len() as f32;
                x[22] = (lead.iter().map(|v| (v - m) * (v - m)).sum::<f32>() / lead.len() as f32).sqrt();
            }
            // The line around the first speech. Before it: its median level, and how much
            // of it was digital silence (a platform's idle line, or a quiet line with
            // DTX). From it to the end of the last speech: the median level of the frames
            // between the words (the background the speech came with). A recording played from
            // a quiet platform brings a step up in that background; a person's room was
            // there from the answer. After the last speech: the same background for a
            // person who waits, a step down where a recording ended and the platform's
            // quiet line came back.
            let end = (last.end - self.t0) as usize;
            let thr = scan.floor_db + self.cfg.speech_margin_db;
            let mut hist = [LevelHistogram::default(), LevelHistogram::default(), LevelHistogram::default()];
            let mut digital = 0u32;
            for (i, f) in self.history.iter().enumerate() {
                if f.kind != FrameKind::Plain {
                    continue;
                }
                let part = if i < start {
                    0
                } else if i < end {
                    // Under the words: only the frames between them.
                    if f.energy_db >= thr {
                        continue;
                    }
                    1
                } else {
                    2
                };
                hist[part].push(f.energy_db);
                digital += (part == 0 && f.energy_db <= self.cfg.floor_min_dbfs) as u32;
            }
            let [before, inside, trailing] = &hist;
            let gaps = (inside.len() >= 3).then(|| inside.percentile(0.5)).flatten();
            let inside_db = gaps.unwrap_or(scan.floor_db);
            x[23] = before.percentile(0.5).unwrap_or(inside_db);
            x[24] = if before.is_empty() { 0.0 } else { digital as f32 / before.len() as f32 };
            x[25] = inside_db;
            // Steps only where both sides were heard; 0 (no evidence) otherwise.
            x[26] = match gaps {
                Some(db) if before.len() >= 3 => db - x[23],
                _ => 0.0,
            };
            x[28] = match (gaps, trailing.percentile(0.5)) {
                (Some(db), Some(t)) if trailing.len() >= 3 => t - db,
                _ => 0.0,
            };
            x[27] = mean;
            for (b, sum) in scan.bands.iter().enumerate() {
                x[29 + b] = if scan.band_n > 0 { sum / scan.band_n as f32 } else { BAND_MIN_DB };
            }
            x[37] = if scan.flux_n > 0 { scan.flux / scan.flux_n as f32 } else { 0.0 };
            x[38] = scan.word_level_sd;
        }
        Features(x)
    }

    /// What the sequence model reads of one frame (after the floor has taken it in).
    fn frame_inputs(&self, f: &Frame) -> FrameInputs {
        let floor = self.floor.floor_db().unwrap_or(self.cfg.floor_min_dbfs);
        let mut x = [0.0f32; INPUT_COUNT];
        x[0] = f.energy_db - floor;
        x[1] = f.energy_db;
        x[2] = (f.kind == FrameKind::Ringback) as u8 as f32;
        x[3] = f.stats.zcr;
        x[4] = f.stats.tilt;
        x[5] = f.stats.periodicity;
        x[6] = f.stats.pitch_st.unwrap_or(0.0);
        x[7] = f.stats.pitch_st.is_some() as u8 as f32;
        x[8..16].copy_from_slice(&f.bands);
        x[16] = self.ring_bursts as f32;
        FrameInputs(x)
    }

    /// P(machine) from the two models' blended log-odds, and each model's alone.
    fn p_machine(&self, features: &Features) -> (f32, f32, Option<f32>) {
        let m = self.model.logit(features);
        let g = self.sequence_state.logit();
        let blend = match g {
            Some(g) => (1.0 - self.sequence.blend) * m + self.sequence.blend * g,
            None => m,
        };
        (sigmoid(blend), sigmoid(m), g.map(sigmoid))
    }

    fn evaluate(&mut self) {
        if self.ring_run > 0 && (self.ring_run as u64) < frames_of(self.cfg.ringback_max_on_ms) {
            return; // still ringing: nothing has answered yet
        }
        let now = self.frames;
        let scan = self.scan();
        let utts = &scan.utts;
        self.speech_heard = !utts.is_empty();
        let d = match utts.first() {
            None if now - self.t0 >= self.initial_silence_frames() => {
                Some(self.decide(self.cfg.silence_result, DecisionReason::InitialSilence, now, None))
            }
            None => None,
            Some(u) => {
                let features = self.features(&scan, now);
                let (p, p_features, p_sequence) = self.p_machine(&features);
                self.last = Some(Observation { at_ms: now * FRAME_MS, features, p_machine: p, p_features, p_sequence });
                let long = u.end - u.start >= frames_of(self.cfg.machine_greeting_ms)
                    || u.longest_phrase >= frames_of(self.cfg.machine_phrase_ms);
                let (mc, hc) = (self.cfg.machine_confidence, self.cfg.human_confidence);
                // A gate in the features' unit: seconds of whole frames.
                let secs = |ms: u32| frames_of(ms) as f32 * FRAME_MS as f32 / 1000.0;
                let (speech, pause) = (secs(self.cfg.machine_speech_ms), secs(self.cfg.human_silence_ms));
                // A person who talks on: no pause needed once this much speech is heard,
                // if the feature model alone leans clearly to a person too.
                let talking_on = secs(self.cfg.human_speech_ms);
                let (voiced_s, trailing_s) = (features.0[5], features.0[4]);
                let talks_on = talking_on > 0.0 && voiced_s >= talking_on && p_features < TALKING_ON_MAX_P;
                // The sooner tier: a surer model commits on less speech or less silence.
                let (ec, (emc, ehc)) = (self.cfg.early_confidence, self.cfg.early_confidences());
                let (early_speech, early_pause) = (secs(self.cfg.early_speech_ms), secs(self.cfg.early_silence_ms));
                // A greeting longer than people's first words is a recording unless the
                // feature model leans to a person: a long first sentence, or a TV behind
                // the voice, on a line that sounds live. Not the blend: the sequence model
                // reads raw levels and spectra, and on a line unlike its corpus (a quiet
                // one) it can be sure and wrong; this rule is the net under it.
                if long && p_features >= LONG_GREETING_MIN_P {
                    Some(self.decide(AmdResult::Machine, DecisionReason::LongGreeting, now, Some(*u)))
                } else if mc < 1.0 && p >= mc && voiced_s >= speech
                    || ec < 1.0 && mc < 1.0 && p >= emc && voiced_s >= early_speech
                {
                    Some(self.decide(AmdResult::Machine, DecisionReason::Confident, now, Some(*u)))
                } else if hc < 1.0 && p <= 1.0 - hc && trailing_s >= pause
                    || ec < 1.0 && hc < 1.0 && p <= 1.0 - ehc && trailing_s >= early_pause
                    || hc < 1.0 && p <= 1.0 - hc && talks_on
                {
                    Some(self.decide(AmdResult::Human, DecisionReason::Confident, now, Some(*u)))
                } else {
                    None
                }
            }
        };
        let d = d.or_else(|| {
            // A beep before any verdict: a voicemail system, however short its greeting.
            self.beep_at_ms
                .is_some()
                .then(|| self.decide(AmdResult::Machine, DecisionReason::Beep, now, utts.first().copied()))
        });
        let d = d.or_else(|| {
            (now - self.t0 >= frames_of(self.cfg.total_analysis_ms))
                .then(|| self.decide(AmdResult::Unknown, DecisionReason::MaxTime, now, utts.first().copied()))
        });
        if let Some(d) = d {
            self.decision = Some(d);
            self.history = Vec::new();
        }
    }

    /// After ring-back the line may simply still be ringing: silence counts once the
    /// cadence's off period has passed without another burst.
    fn initial_silence_frames(&self) -> u64 {
        let base = frames_of(self.cfg.initial_silence_ms);
        if self.ring_bursts > 0 {
            base.max(frames_of(self.cfg.ringback_off_ms))
        } else {
            base
        }
    }

    fn decide(&self, result: AmdResult, reason: DecisionReason, now: u64, u: Option<Span>) -> AmdDecision {
        AmdDecision {
            result,
            decided_at_ms: now * FRAME_MS,
            reason,
            speech_onset_ms: u.map(|u| u.start * FRAME_MS),
            greeting_ms: u.map(|u| (u.end.min(now) - u.start) * FRAME_MS).unwrap_or(0),
            words: u.map(|u| u.words).unwrap_or(0),
        }
    }
}

/// Least-squares slope of pitch (semitones) against time (seconds) over the latest pitched
/// frames; 0 with fewer than 4. A question's rise is positive.
fn end_slope(tail: &VecDeque<(u64, f32)>) -> f32 {
    if tail.len() < 4 {
        return 0.0;
    }
    let n = tail.len() as f32;
    let t = |i: u64| i as f32 * FRAME_MS as f32 / 1000.0;
    let (mt, my) = tail.iter().fold((0.0, 0.0), |(a, b), &(i, y)| (a + t(i), b + y));
    let (mt, my) = (mt / n, my / n);
    let (mut sxy, mut sxx) = (0.0f32, 0.0f32);
    for &(i, y) in tail {
        sxy += (t(i) - mt) * (y - my);
        sxx += (t(i) - mt) * (t(i) - mt);
    }
    if sxx > 0.0 {
        (sxy / sxx).clamp(-100.0, 100.0)
    } else {
        0.0
    }
}
