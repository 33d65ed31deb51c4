//! Every threshold of the detector, with its default (docs/amd.md has the table).

use serde::{Deserialize, Serialize};

use super::AmdResult;

/// Tuning of [`super::AmdDetector`]. Times are milliseconds of audio (8 kHz), levels are
/// dB relative to full scale (dBFS) or dB above the adaptive noise floor.
///
/// Defaults were tuned on the `train` split of `test-media/amd/` only.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AmdConfig {
    /// A frame is speech when its energy is this far above the noise floor.
    pub speech_margin_db: f32,
    /// The noise floor is this percentile (0..1) of recent frame energies.
    pub floor_percentile: f32,
    /// About how much recent audio the noise floor remembers.
    pub floor_window_ms: u32,
    /// The noise floor never goes below this (digital silence is not a floor).
    pub floor_min_dbfs: f32,
    /// A background this long and steady (each 20 ms frame within 1.5 dB of its mean),
    /// more than 8 dB above the floor, is the new floor at once (0: the floor rises only
    /// as its window forgets).
    pub floor_rise_ms: u32,
    /// Silences up to this long inside a word are bridged (hangover).
    pub word_gap_ms: u32,
    /// Speech bursts shorter than this are clicks or noise, not words.
    pub min_word_ms: u32,
    /// Silence that ends an utterance (words closer than this are one utterance).
    pub end_of_greeting_silence_ms: u32,
    /// An utterance (words with gaps shorter than `end_of_greeting_silence_ms`) that lasts
    /// this long is a recorded greeting, unless the feature model leans to a person (its
    /// P(machine) < 0.5; not the blend with the sequence model, see `detector`).
    pub machine_greeting_ms: u32,
    /// Words closer than this form one phrase (no breath or comma pause between them).
    pub phrase_gap_ms: u32,
    /// One phrase this long is a recorded greeting (people answer in short phrases),
    /// unless the feature model leans to a person.
    pub machine_phrase_ms: u32,
    /// Commit to `machine` as soon as the model's P(machine) reaches this (0.5..=1; 1
    /// leaves machine verdicts to the greeting-length rules, the beep and the deadline).
    pub machine_confidence: f32,
    /// Commit to `human` as soon as the model's P(human) = 1 - P(machine) reaches this
    /// (0.5..=1; 1 never commits to human before the deadline).
    pub human_confidence: f32,
    /// A `human` verdict needs at least this much silence after the last speech: a person
    /// says a few words and waits; a recording's pause is shorter.
    pub human_silence_ms: u32,
    /// A `human` verdict also comes, without waiting for a pause, once this much speech
    /// has been heard, the model is still `human_confidence` sure and the feature model
    /// alone leans clearly to a person (`detector::TALKING_ON_MAX_P`): a person who talks
    /// on is still a person (0 turns it off: a person is called only after a pause).
    pub human_speech_ms: u32,
    /// A `machine` verdict from the model needs at least this much speech heard.
    pub machine_speech_ms: u32,
    /// The sooner tier: commit when the model is this sure (0.5..=1; 1 turns the tier
    /// off), on less than the gates above: `early_speech_ms` of speech for `machine`,
    /// `early_silence_ms` of silence after the last speech for `human`. A side whose
    /// main threshold is higher uses that one here too.
    pub early_confidence: f32,
    /// Speech the sooner tier's `machine` verdict needs.
    pub early_speech_ms: u32,
    /// Silence after the last speech the sooner tier's `human` verdict needs.
    pub early_silence_ms: u32,
    /// No speech this long after answer (or after the last ring-back burst) gives
    /// `silence_result`.
    pub initial_silence_ms: u32,
    /// What a silent line is called.
    pub silence_result: AmdResult,
    /// Answer `unknown` this long after answer (or the last ring-back burst).
    pub total_analysis_ms: u32,
    /// Fraction of a frame's energy at a ring-back tone's frequencies (440+480, 400+450 or
    /// 425 Hz) above which the frame is ring-back, not speech.
    pub ringback_concentration: f32,
    /// A ring-back burst at least this long restarts the answer clock (the callee has not
    /// answered yet).
    pub ringback_min_ms: u32,
    /// Longest ring-back burst (US 2 s on); a steadier tone is not ring-back cadence and
    /// neither holds the decision nor restarts the answer clock.
    pub ringback_max_on_ms: u32,
    /// Longest silence between ring-back bursts (US and Europe: 4 s off): after a burst,
    /// silence counts as initial silence only once the cadence could have resumed.
    pub ringback_off_ms: u32,
    /// Fraction of a frame's energy at one frequency above which the frame is a tone.
    pub tone_concentration: f32,
    /// Tone frames must be this far above the noise floor.
    pub tone_margin_db: f32,
    /// Lowest beep frequency.
    pub beep_min_hz: f32,
    /// Highest beep frequency.
    pub beep_max_hz: f32,
    /// A beep is a single tone held at least this long.
    pub beep_min_ms: u32,
    /// Frame-to-frame frequency wander allowed within one beep.
    pub beep_tolerance_hz: f32,
    /// Stop listening for a beep at this audio time (from the start of the audio).
    pub beep_listen_ms: u32,
}

impl Default for AmdConfig {
    fn default() -> Self {
        AmdConfig {
            speech_margin_db: 5.0,
            floor_percentile: 0.05,
            floor_window_ms: 5000,
            floor_min_dbfs: -72.0,
            floor_rise_ms: 500,
            word_gap_ms: 60,
            min_word_ms: 80,
            end_of_greeting_silence_ms: 700,
            machine_greeting_ms: 2500,
            phrase_gap_ms: 150,
            machine_phrase_ms: 2500,
            machine_confidence: 0.9,
            human_confidence: 0.9,
            human_silence_ms: 300,
            human_speech_ms: 800,
            machine_speech_ms: 400,
            early_confidence: 0.97,
            early_speech_ms: 200,
            early_silence_ms: 200,
            initial_silence_ms: 3500,
            silence_result: AmdResult::Unknown,
            total_analysis_ms: 5000,
            ringback_concentration: 0.6,
            ringback_min_ms: 200,
            ringback_max_on_ms: 3000,
            ringback_off_ms: 4500,
            tone_concentration: 0.75,
            tone_margin_db: 10.0,
            beep_min_hz: 400.0,
            beep_max_hz: 2000.0,
            beep_min_ms: 150,
            beep_tolerance_hz: 25.0,
            beep_listen_ms: 30_000,
        }
    }
}

/// A configuration value out of its range.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AmdConfigError {
    #[error("amd.{field} = {value} is out of range {min}..={max}")]
    OutOfRange { field: &'static str, value: f64, min: f64, max: f64 },
    #[error("amd.beep_min_hz ({min}) must be below amd.beep_max_hz ({max})")]
    BeepBand { min: f32, max: f32 },
}

impl AmdConfig {
    /// The sooner tier's thresholds for `machine` and for `human`: `early_confidence`,
    /// or the side's main threshold where that is higher (a tier that commits on less
    /// evidence is never less sure than the rule it shortens).
    pub fn early_confidences(&self) -> (f32, f32) {
        let e = self.early_confidence;
        (e.max(self.machine_confidence), e.max(self.human_confidence))
    }

    /// Checks every field's range; the detector refuses a config that fails this.
    pub fn validate(&self) -> Result<(), AmdConfigError> {
        fn check(field: &'static str, value: f64, min: f64, max: f64) -> Result<(), AmdConfigError> {
            if value.is_finite() && (min..=max).contains(&value) {
                Ok(())
            } else {
                Err(AmdConfigError::OutOfRange { field, value, min, max })
            }
        }
        check("speech_margin_db", self.speech_margin_db as f64, 0.0, 60.0)?;
        check("floor_percentile", self.floor_percentile as f64, 0.0, 0.5)?;
        check("floor_window_ms", self.floor_window_ms as f64, 100.0, 600_000.0)?;
        check("floor_min_dbfs", self.floor_min_dbfs as f64, -100.0, 0.0)?;
        check("floor_rise_ms", self.floor_rise_ms as f64, 0.0, 10_000.0)?;
        check("word_gap_ms", self.word_gap_ms as f64, 0.0, 2000.0)?;
        check("min_word_ms", self.min_word_ms as f64, 0.0, 2000.0)?;
        check("end_of_greeting_silence_ms", self.end_of_greeting_silence_ms as f64, 20.0, 10_000.0)?;
        check("machine_greeting_ms", self.machine_greeting_ms as f64, 20.0, 30_000.0)?;
        check("phrase_gap_ms", self.phrase_gap_ms as f64, 0.0, 10_000.0)?;
        check("machine_phrase_ms", self.machine_phrase_ms as f64, 20.0, 30_000.0)?;
        check("machine_confidence", self.machine_confidence as f64, 0.5, 1.0)?;
        check("human_confidence", self.human_confidence as f64, 0.5, 1.0)?;
        check("human_silence_ms", self.human_silence_ms as f64, 0.0, 10_000.0)?;
        check("human_speech_ms", self.human_speech_ms as f64, 0.0, 10_000.0)?;
        check("machine_speech_ms", self.machine_speech_ms as f64, 0.0, 10_000.0)?;
        check("early_confidence", self.early_confidence as f64, 0.5, 1.0)?;
        check("early_speech_ms", self.early_speech_ms as f64, 0.0, 10_000.0)?;
        check("early_silence_ms", self.early_silence_ms as f64, 0.0, 10_000.0)?;
        check("initial_silence_ms", self.initial_silence_ms as f64, 20.0, 60_000.0)?;
        check("total_analysis_ms", self.total_analysis_ms as f64, 20.0, 120_000.0)?;
        check("ringback_concentration", self.ringback_concentration as f64, 0.0, 1.0)?;
        check("ringback_min_ms", self.ringback_min_ms as f64, 20.0, 10_000.0)?;
        check("ringback_max_on_ms", self.ringback_max_on_ms as f64, 20.0, 60_000.0)?;
        check("ringback_off_ms", self.ringback_off_ms as f64, 0.0, 60_000.0)?;
        check("tone_concentration", self.tone_concentration as f64, 0.0, 1.0)?;
        check("tone_margin_db", self.tone_margin_db as f64, 0.0, 60.0)?;
        check("beep_min_hz", self.beep_min_hz as f64, 100.0, 3900.0)?;
        check("beep_max_hz", self.beep_max_hz as f64, 100.0, 3900.0)?;
        check("beep_min_ms", self.beep_min_ms as f64, 40.0, 10_000.0)?;
        check("beep_tolerance_hz", self.beep_tolerance_hz as f64, 1.0, 500.0)?;
        check("beep_listen_ms", self.beep_listen_ms as f64, 0.0, 600_000.0)?;
        if self.beep_min_hz >= self.beep_max_hz {
            return Err(AmdConfigError::BeepBand { min: self.beep_min_hz, max: self.beep_max_hz });
        }
        Ok(())
    }
}
