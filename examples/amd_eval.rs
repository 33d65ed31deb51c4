//! Offline AMD tools over the labelled corpora (test-media/amd-world/ and test-media/amd/,
//! each with its labels.csv and its `train` / `holdout` split), for the training and
//! calibration scripts in test-media/:
//!
//! - `cargo run --release --example amd_eval -- features` prints, for every file of both
//!   corpora and every 20 ms frame after the first speech, the feature vector (CSV on
//!   stdout) with the model not allowed to commit, so the trainer sees the whole first
//!   seconds. Files are named by their path under test-media/ (`amd-world/h001.wav`).
//!   The uncommitted training-only corpora (`amd-extra-world`, `amd-extra`, `amd-extra-voices`,
//!   `amd-extra-channel`, `amd-extra-wide`, `amd-extra-wide-espeak`) are included when they exist.
//! - `cargo run --release --example amd_eval -- frames` prints, for every file and every
//!   20 ms frame from its first sample to 6 s after its answer, the sequence model's
//!   inputs (src/amd/sequence.rs), for `test-media/train_amd_sequence.py`; with the
//!   train speakers' lines of real recorded words (`amd-extra-real`, `amd-extra-real-dsp`)
//!   too, when they exist.
//! - `cargo run --release --example amd_eval -- sweep SPLIT [CORPUS] [--machine]` runs the
//!   detector on SPLIT (`train`, `holdout` or `all`) of CORPUS (`amd-world`, the default,
//!   or `amd`) for a range of `machine_confidence` = `human_confidence` (with `--machine`:
//!   of `machine_confidence` alone, `human_confidence` at its default) and prints
//!   accuracy, recalls and decision times from answer for each (CSV; the first column is
//!   named for what was swept).
//! - `cargo run --release --example amd_eval -- decisions SPLIT [CORPUS]` prints each
//!   file's verdict, its reason, its time from answer and the beep's onset from the start of
//!   the file, if one was heard (CSV), with the default
//!   configuration or the `AmdConfig` JSON object in `AMD_CONFIG`.
//! - `sweep` and `decisions` also read the check-only corpora: people on real telephone lines
//!   (`amd-real-line`; `test-media/make_real_line_check.py`), real voices (`amd-real`,
//!   `amd-real-tts`, `amd-real-dsp`, `amd-real-dsp-tts`; `test-media/make_real_voice_lines.py`),
//!   a real voicemail platform's greetings (`amd-platform`; `make_platform_lines.py`)
//!   and the larger holdouts (`amd-extra-holdout`, `amd-extra-holdout-espeak`; `make_world_corpus.py
//!   --extra-holdout`, `make_corpus.py --extra-holdout`).
//! - `features` and `frames` leave out the extra training corpora named in
//!   `AMD_EVAL_WITHOUT` (comma-separated), though they exist.
//! - Every command reads the model files named in `AMD_EVAL_MODEL` and
//!   `AMD_EVAL_SEQUENCE_MODEL` instead of the built-in weights, when set.
//! - `sweep` and `decisions` continue each file to `AMD_EVAL_LINE_MS` after its answer,
//!   when set, with its own last 400 ms played back and forth: the line goes on after the
//!   file ends, as a call's does, instead of the file's end deciding (docs/amd.md, session 26).

use std::path::PathBuf;
use std::sync::OnceLock;

use redial::amd::features::FEATURE_NAMES;
use redial::amd::model::Model;
use redial::amd::sequence::{SequenceModel, INPUT_NAMES};
use redial::amd::wav::read_wav;
use redial::amd::{AmdConfig, AmdDetector, AmdResult, FRAME_MS, FRAME_SAMPLES, SAMPLE_RATE};

struct Row {
    file: String,
    label: String,
    kind: String,
    split: String,
    answer_ms: u64,
}

/// The corpora, by their directory under test-media/.
const CORPORA: [&str; 2] = ["amd-world", "amd"];

/// Training-only corpora that are not committed, made by `test-media/train-amd.sh`
/// (`--extra-train`): more files of the two corpora's `train` voices and phrases, and of the
/// world corpus's train phrases spoken by voices no corpus has (`--new-voices`), and copies of
/// `amd-extra-world`'s files through a far end's line the corpora do not model, whatever
/// their class (`make_channel_copies.py`, session 30), and more of both corpora's train voices
/// and phrases through a network that passes the voice below 300 Hz, whatever their class
/// (the generators' `--wide`, session 32). `features` and `frames` include each one that
/// exists, and the directories under test-media/ named in `AMD_EVAL_EXTRA` (comma-separated;
/// for experiments such as the hard kinds of docs/amd.md, session 18).
const EXTRA_CORPORA: [&str; 6] = [
    "amd-extra-world",
    "amd-extra",
    "amd-extra-voices",
    "amd-extra-channel",
    "amd-extra-wide",
    "amd-extra-wide-espeak",
];

/// Training-only corpora that only `frames` includes (when they exist): lines of the train
/// speakers of two sets of real recorded words (`make_real_voice_lines.py --extra-train`).
/// They train the sequence model; the perceptron trained on them too lost people on both
/// corpora (docs/amd.md, session 28).
const SEQUENCE_ONLY_CORPORA: [&str; 2] = ["amd-extra-real", "amd-extra-real-dsp"];

/// Check-only corpora that are not committed and never trained on: people on real telephone
/// lines (`test-media/make_real_line_check.py`), lines of real recorded voices and their
/// text-to-speech twins, made by `test-media/make_real_voice_lines.py`
/// (their lines of train speakers are in split `train`), a real voicemail platform's
/// greetings (`make_platform_lines.py`), and more files of the holdouts' voices and phrases
/// (`make_world_corpus.py --extra-holdout`, `make_corpus.py --extra-holdout`). `sweep` and
/// `decisions` read them.
const CHECK_CORPORA: [&str; 8] = [
    "amd-real-line",
    "amd-real",
    "amd-real-tts",
    "amd-real-dsp",
    "amd-real-dsp-tts",
    "amd-platform",
    "amd-extra-holdout",
    "amd-extra-holdout-espeak",
];

fn media() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-media")
}

/// The rows of one corpus's labels.csv, each file named by its path under test-media/.
fn labels(corpus: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(media().join(corpus).join("labels.csv")).expect("labels.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |n: &str| header.iter().position(|h| *h == n).unwrap_or_else(|| panic!("column {n}"));
    let (f, l, k, s, a) = (col("file"), col("label"), col("kind"), col("split"), col("answer_ms"));
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            Row {
                file: format!("{corpus}/{}", c[f]),
                label: c[l].into(),
                kind: c[k].into(),
                split: c[s].into(),
                answer_ms: c[a].parse().unwrap_or(0),
            }
        })
        .collect()
}

/// The rows of SPLIT (`train`, `holdout` or `all`) of one corpus.
fn split_rows(corpus: &str, split: &str) -> Vec<Row> {
    labels(corpus).into_iter().filter(|r| split == "all" || r.split == split).collect()
}

/// One file's samples, continued to `AMD_EVAL_LINE_MS` after its answer when that is set:
/// its last 400 ms, reversed and then forwards in turn, so the continuation joins without a
/// step and keeps the line's level and background.
fn clip_samples(row: &Row) -> Vec<i16> {
    let mut samples = read_wav(&media().join(&row.file)).expect("corpus wav").samples;
    let Some(line_ms) = line_ms() else { return samples };
    let per_ms = (SAMPLE_RATE / 1000) as u64; // `read_wav` gives SAMPLE_RATE
    let want = ((row.answer_ms + line_ms) * per_ms) as usize;
    let tail: Vec<i16> = samples[samples.len().saturating_sub((400 * per_ms) as usize)..].to_vec();
    let mut forwards = false;
    while samples.len() < want && !tail.is_empty() {
        if forwards {
            samples.extend(tail.iter());
        } else {
            samples.extend(tail.iter().rev());
        }
        forwards = !forwards;
    }
    samples
}

/// `AMD_EVAL_LINE_MS`, read once; a value that is not a whole number of ms is an error.
fn line_ms() -> Option<u64> {
    static LINE: OnceLock<Option<u64>> = OnceLock::new();
    *LINE.get_or_init(|| {
        let text = std::env::var("AMD_EVAL_LINE_MS").ok()?;
        Some(text.parse().unwrap_or_else(|_| {
            eprintln!("AMD_EVAL_LINE_MS: a whole number of ms after the answer (6000), not {text:?}");
            std::process::exit(2);
        }))
    })
}

/// A detector with `cfg` and the built-in models, or the model files named in
/// `AMD_EVAL_MODEL` (the perceptron, as `src/amd/model.json`) and `AMD_EVAL_SEQUENCE_MODEL`
/// (the GRU, as `src/amd/sequence_model.json`): a retrained model is scored without
/// rebuilding.
fn detector(cfg: &AmdConfig) -> AmdDetector {
    let (model, sequence) = models();
    AmdDetector::with_models(cfg.clone(), model, sequence).expect("valid config")
}

/// The models [`detector`] uses, read once (`main` reads them first, so a bad file is
/// named before any output).
fn models() -> (&'static Model, &'static SequenceModel) {
    static MODELS: OnceLock<(&'static Model, &'static SequenceModel)> = OnceLock::new();
    *MODELS.get_or_init(|| {
        (
            model_file("AMD_EVAL_MODEL", Model::parse).unwrap_or_else(Model::builtin),
            model_file("AMD_EVAL_SEQUENCE_MODEL", SequenceModel::parse).unwrap_or_else(SequenceModel::builtin),
        )
    })
}

/// The model in the file named by the environment variable `var`, if it is set; exits
/// naming the variable and the file when it cannot be read or parsed.
fn model_file<M, E: std::fmt::Display>(var: &str, parse: fn(&str) -> Result<M, E>) -> Option<&'static M> {
    let path = std::env::var_os(var)?;
    let parsed =
        std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| parse(&t).map_err(|e| e.to_string()));
    match parsed {
        Ok(m) => Some(Box::leak(Box::new(m))),
        Err(e) => {
            eprintln!("{var}: {}: {e}", PathBuf::from(path).display());
            std::process::exit(2);
        }
    }
}

/// A detector configuration that never commits (before `total_analysis_ms`), so the
/// trainers see the whole first seconds.
fn no_commit() -> AmdConfig {
    AmdConfig {
        machine_confidence: 1.0,
        human_confidence: 1.0,
        machine_greeting_ms: 30_000,
        machine_phrase_ms: 30_000,
        ..AmdConfig::default()
    }
}

/// Every row of both corpora and of the extra training corpora that exist (with
/// `sequence`, of the sequence model's own ones too), but those named in `AMD_EVAL_WITHOUT`
/// (comma-separated: `train-amd.sh` names the sets it was told to make none of, so that one
/// left by an earlier run does not train the models).
fn all_rows(sequence: bool) -> Vec<Row> {
    let named = env_names("AMD_EVAL_EXTRA");
    for c in &named {
        if !media().join(c).join("labels.csv").exists() {
            eprintln!("AMD_EVAL_EXTRA: test-media/{c}/labels.csv does not exist");
            std::process::exit(2);
        }
    }
    let without = env_names("AMD_EVAL_WITHOUT");
    for c in &without {
        if !EXTRA_CORPORA.contains(&c.as_str()) && !SEQUENCE_ONLY_CORPORA.contains(&c.as_str()) {
            eprintln!("AMD_EVAL_WITHOUT: {c} is not one of {EXTRA_CORPORA:?} or {SEQUENCE_ONLY_CORPORA:?}");
            std::process::exit(2);
        }
    }
    let own: &[&str] = if sequence { &SEQUENCE_ONLY_CORPORA } else { &[] };
    let extra = EXTRA_CORPORA
        .iter()
        .chain(own)
        .copied()
        .filter(|c| !without.iter().any(|w| w == c) && media().join(c).join("labels.csv").exists());
    CORPORA.iter().copied().chain(extra).chain(named.iter().map(String::as_str)).flat_map(labels).collect()
}

/// The comma-separated names in the environment variable `var`, none when it is unset.
fn env_names(var: &str) -> Vec<String> {
    let text = std::env::var(var).unwrap_or_default();
    text.split(',').filter(|c| !c.is_empty()).map(str::to_owned).collect()
}

fn features() {
    let cfg = no_commit();
    let rows = all_rows(false);
    println!("file,label,kind,split,t_ms,{}", FEATURE_NAMES.join(","));
    for row in rows {
        let clip = read_wav(&media().join(&row.file)).expect("corpus wav");
        let mut det = detector(&cfg);
        let mut last_at = None;
        for frame in clip.samples.chunks_exact(FRAME_SAMPLES) {
            det.push_frame(frame).expect("not finished");
            if det.decision().is_some() {
                break;
            }
            if let Some(o) = det.observation() {
                if Some(o.at_ms) != last_at {
                    last_at = Some(o.at_ms);
                    let v: Vec<String> = o.features.0.iter().map(|x| format!("{x:.4}")).collect();
                    println!("{},{},{},{},{},{}", row.file, row.label, row.kind, row.split, o.at_ms, v.join(","));
                }
            }
        }
    }
}

/// `frames`: every 20 ms frame's sequence-model inputs from the start of each file to
/// `AFTER_ANSWER_MS` after its answer, with the model not allowed to commit.
fn frames() {
    const AFTER_ANSWER_MS: u64 = 6000;
    let cfg = AmdConfig { total_analysis_ms: 30_000, ..no_commit() };
    let rows = all_rows(true);
    println!("file,label,kind,split,t_ms,{}", INPUT_NAMES.join(","));
    for row in rows {
        let clip = read_wav(&media().join(&row.file)).expect("corpus wav");
        let mut det = detector(&cfg);
        let frames = ((row.answer_ms + AFTER_ANSWER_MS) / FRAME_MS) as usize;
        for frame in clip.samples.chunks_exact(FRAME_SAMPLES).take(frames) {
            det.push_frame(frame).expect("not finished");
            if det.decision().is_some() {
                break;
            }
            if let Some(v) = det.frame_inputs_of_last() {
                let v: Vec<String> = v.0.iter().map(|x| format!("{x:.3}")).collect();
                println!("{},{},{},{},{},{}", row.file, row.label, row.kind, row.split, det.now_ms(), v.join(","));
            }
        }
    }
}

/// `machine_only`: sweeps `machine_confidence` from 0.8 to 0.99 with `human_confidence`
/// at its default; else both together from 0.55 to 1.0.
fn sweep(split: &str, corpus: &str, machine_only: bool) {
    let rows = split_rows(corpus, split);
    let clips: Vec<Vec<i16>> = rows.iter().map(clip_samples).collect();
    let swept = if machine_only { "machine_confidence" } else { "confidence" };
    println!("{swept},accuracy,human_recall,machine_recall,unknown,median_ms,p90_ms");
    let values: Vec<f32> = if machine_only {
        (0..=19).map(|i| 0.8 + i as f32 * 0.01).collect()
    } else {
        (0..=18).map(|i| 0.55 + i as f32 * 0.025).collect()
    };
    for c in values {
        let cfg = if machine_only {
            AmdConfig { machine_confidence: c, ..AmdConfig::default() }
        } else {
            AmdConfig { machine_confidence: c, human_confidence: c, ..AmdConfig::default() }
        };
        let mut times = Vec::new();
        let (mut ok, mut unknown) = (0usize, 0usize);
        let mut per = [(0usize, 0usize); 2];
        for (row, clip) in rows.iter().zip(&clips) {
            let (d, _) = redial::amd::run_clip(detector(&cfg), clip);
            let want = if row.label == "human" { AmdResult::Human } else { AmdResult::Machine };
            let i = (want == AmdResult::Machine) as usize;
            per[i].1 += 1;
            if d.result == want {
                ok += 1;
                per[i].0 += 1;
            }
            unknown += (d.result == AmdResult::Unknown) as usize;
            times.push(d.decided_at_ms.saturating_sub(row.answer_ms));
            let _ = &row.kind;
        }
        times.sort_unstable();
        let q = |p: f64| times[((times.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "{c:.3},{:.4},{:.4},{:.4},{unknown},{},{}",
            ok as f64 / rows.len() as f64,
            per[0].0 as f64 / per[0].1.max(1) as f64,
            per[1].0 as f64 / per[1].1.max(1) as f64,
            q(0.5),
            q(0.9)
        );
    }
}

/// `decisions SPLIT [CORPUS]`: each file's verdict, why, and when, and the beep's onset from
/// the start of the file if one was heard (CSV), with the default configuration or the
/// `AmdConfig` JSON object in `AMD_CONFIG` (as `tests/amd_corpus.rs`).
fn decisions(split: &str, corpus: &str) {
    let cfg = match std::env::var("AMD_CONFIG") {
        Ok(json) => serde_json::from_str(&json).unwrap_or_else(|e| {
            eprintln!("AMD_CONFIG: not an AmdConfig JSON object: {e}");
            std::process::exit(2);
        }),
        Err(_) => AmdConfig::default(),
    };
    if let Err(e) = cfg.validate() {
        eprintln!("AMD_CONFIG: {e}");
        std::process::exit(2);
    }
    println!("file,label,kind,result,reason,decided_ms_from_answer,beep_ms");
    for row in split_rows(corpus, split) {
        let (d, beep) = redial::amd::run_clip(detector(&cfg), &clip_samples(&row));
        let from_answer = d.decided_at_ms.saturating_sub(row.answer_ms);
        let beep = beep.map(|ms| ms.to_string()).unwrap_or_default();
        println!("{},{},{},{:?},{:?},{from_answer},{beep}", row.file, row.label, row.kind, d.result, d.reason);
    }
}

fn main() {
    models();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let machine_only = args.iter().any(|a| a == "--machine");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).filter(|a| *a != "--machine").collect();
    let split = rest.first().copied().unwrap_or("holdout");
    let corpus = rest.get(1).copied().unwrap_or("amd-world");
    let command = args.first().map(String::as_str);
    if matches!(command, Some("sweep" | "decisions")) {
        if !CORPORA.contains(&corpus) && !CHECK_CORPORA.contains(&corpus) {
            eprintln!("unknown corpus {corpus:?}: one of {CORPORA:?} or {CHECK_CORPORA:?}");
            std::process::exit(2);
        }
        if !["train", "holdout", "all"].contains(&split) {
            eprintln!("unknown split {split:?}: train, holdout or all");
            std::process::exit(2);
        }
        line_ms(); // a bad AMD_EVAL_LINE_MS is named before any output
    }
    match command {
        Some("features") => features(),
        Some("frames") => frames(),
        Some("decisions") => decisions(split, corpus),
        Some("sweep") => sweep(split, corpus, machine_only),
        _ => {
            eprintln!(
                "usage: amd_eval features | frames | sweep [train|holdout|all] [amd-world|amd] [--machine] \
                 | decisions [train|holdout|all] [amd-world|amd]"
            );
            std::process::exit(2);
        }
    }
}
