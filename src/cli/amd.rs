//! `redial amd FILE.wav...`: offline answering-machine detection, one JSON line per file
//! (in argument order).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use serde::Serialize;

use crate::amd::wav::read_wav;
use crate::amd::{detect_clip, AmdConfig};

#[derive(Serialize)]
struct Verdict<'a> {
    file: &'a str,
    result: &'static str,
    decided_at_ms: u64,
    beep_at_ms: Option<u64>,
}

#[derive(Serialize)]
struct Failure<'a> {
    file: &'a str,
    error: String,
}

/// Runs the detector (default config) on each file in order; exit code 1 if any file
/// could not be read.
pub fn run(files: Vec<PathBuf>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for path in &files {
        let name = path.to_string_lossy();
        let line = match read_wav(path) {
            Ok(clip) => match detect_clip(AmdConfig::default(), &clip.samples) {
                Ok((d, beep)) => serde_json::to_string(&Verdict {
                    file: &name,
                    result: d.result.as_str(),
                    decided_at_ms: d.decided_at_ms,
                    beep_at_ms: beep,
                }),
                Err(e) => {
                    failed = true;
                    serde_json::to_string(&Failure { file: &name, error: e.to_string() })
                }
            },
            Err(e) => {
                failed = true;
                serde_json::to_string(&Failure { file: &name, error: e.to_string() })
            }
        };
        // Plain structs of strings and integers always serialise; the fallback is only
        // there so no code path panics.
        let line = line.unwrap_or_else(|_| String::from("{\"error\":\"cannot encode the result\"}"));
        if writeln!(out, "{line}").is_err() {
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

/// `redial amd --explain FILE...`: for each file, a table of the features and the model's
/// P(machine) every 100 ms from the first speech to the decision, then the decision and the
/// beep. Exit code 1 if any file could not be read.
pub fn explain(files: Vec<PathBuf>) -> ExitCode {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut failed = false;
    for path in &files {
        let text = match read_wav(path) {
            Ok(clip) => explain_clip(&clip.samples),
            Err(e) => {
                failed = true;
                format!("error: {e}\n")
            }
        };
        if write!(out, "{}:\n{text}\n", path.display()).is_err() {
            return ExitCode::FAILURE;
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}

fn explain_clip(samples: &[i16]) -> String {
    use std::fmt::Write as _;

    use crate::amd::features::FEATURE_NAMES;
    use crate::amd::{AmdDetector, FRAME_SAMPLES};

    let cfg = AmdConfig::default();
    let (mc, hc) = (cfg.machine_confidence, cfg.human_confidence);
    let ((emc, ehc), es, eq) = (cfg.early_confidences(), cfg.early_speech_ms, cfg.early_silence_ms);
    let (ms, hs, ht) = (cfg.machine_speech_ms, cfg.human_silence_ms, cfg.human_speech_ms);
    let (gm, pm) = (cfg.machine_greeting_ms, cfg.machine_phrase_ms);
    let mut det = match AmdDetector::new(cfg) {
        Ok(d) => d,
        Err(e) => return format!("error: {e}\n"),
    };
    let mut s = String::new();
    let _ = writeln!(
        s,
        "commit: machine when p_machine >= {mc} after {ms} ms of speech, human when p_machine <= {:.3} after {hs} ms of silence, or after {ht} ms of speech if p_features < {} too; sooner when p_machine >= {emc} after {es} ms of speech or <= {:.3} after {eq} ms of silence; machine when an utterance lasts {gm} ms or a phrase {pm} ms and p_features >= {}",
        1.0 - hc,
        crate::amd::detector::TALKING_ON_MAX_P,
        1.0 - ehc,
        crate::amd::detector::LONG_GREETING_MIN_P
    );
    let sequence = crate::amd::sequence::SequenceModel::builtin();
    let _ = writeln!(
        s,
        "p_machine blends the log-odds of the feature model ({}) and the sequence model ({}), {:.2} of the latter's",
        crate::amd::model::Model::builtin().version,
        sequence.version,
        sequence.blend
    );
    let _ = writeln!(s, "{:>7} {:>9} {:>10} {:>10} {}", "t_ms", "p_machine", "p_features", "p_sequence", FEATURE_NAMES.join(" "));
    let mut printed = None;
    for chunk in samples.chunks(FRAME_SAMPLES) {
        if !det.wants_audio() || det.push_frame(chunk).is_err() {
            break;
        }
        let decided_now = det.poll_decision().is_some();
        if let Some(o) = det.observation() {
            if printed != Some(o.at_ms) && (o.at_ms % 100 == 0 || decided_now) {
                printed = Some(o.at_ms);
                let cols: Vec<String> = FEATURE_NAMES
                    .iter()
                    .zip(o.features.0)
                    .map(|(n, v)| format!("{:>w$.2}", v, w = n.len()))
                    .collect();
                let seq = o.p_sequence.map_or("-".to_string(), |p| format!("{p:.3}"));
                let (p, pf) = (o.p_machine, o.p_features);
                let _ = writeln!(s, "{:>7} {p:>9.3} {pf:>10.3} {seq:>10} {}", o.at_ms, cols.join(" "));
            }
        }
    }
    let d = det.finish();
    let _ = writeln!(
        s,
        "decision: {} at {} ms ({:?}); beep at {}",
        d.result.as_str(),
        d.decided_at_ms,
        d.reason,
        det.beep_at_ms().map(|b| format!("{b} ms")).unwrap_or_else(|| "none".into())
    );
    s
}
