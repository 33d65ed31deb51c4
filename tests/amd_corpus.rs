//! AMD accuracy on the labelled corpora: test-media/amd-world/ (made by
//! test-media/make-world-corpus.sh: several engines, the recording and live-line chains)
//! and test-media/amd/ (test-media/make-corpus.sh: espeak only, the same background under
//! both classes from the first sample, so no machine has a background step at its first
//! word). Prints per-split and per-kind tables and asserts on each `holdout` split: files
//! never used for training or tuning (in the world corpus, voices and scripts never heard
//! in training; in the espeak corpus, files whose voice accent or script is held out).
//!
//! `AMD_CONFIG='{"machine_confidence":0.85}' cargo test --test amd_corpus -- --nocapture`
//! evaluates another configuration (tune on the train split only).

use std::collections::BTreeMap;
use std::path::PathBuf;

use redial::amd::wav::read_wav;
use redial::amd::{detect_clip, AmdConfig, AmdResult};

struct Row {
    file: String,
    label: AmdResult,
    kind: String,
    beep_ms: Option<u64>,
    split: String,
    answer_ms: u64,
    speech_onset_ms: u64,
}

struct Outcome {
    row: Row,
    result: AmdResult,
    decided_at_ms: u64,
    beep_at_ms: Option<u64>,
}

const WORLD: &str = "amd-world";
const ESPEAK: &str = "amd";

fn corpus_dir(corpus: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-media").join(corpus)
}

fn labels(corpus: &str) -> Vec<Row> {
    let text = std::fs::read_to_string(corpus_dir(corpus).join("labels.csv")).expect("labels.csv");
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().expect("header").split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap_or_else(|| panic!("column {name}"));
    let (f, l, k, b, s, a) = (col("file"), col("label"), col("kind"), col("beep_onset_ms"), col("split"), col("answer_ms"));
    let o = col("speech_onset_ms");
    lines
        .filter(|l| !l.is_empty())
        .map(|line| {
            let c: Vec<&str> = line.split(',').collect();
            Row {
                file: c[f].to_string(),
                label: match c[l] {
                    "human" => AmdResult::Human,
                    "machine" => AmdResult::Machine,
                    other => panic!("label {other}"),
                },
                kind: c[k].to_string(),
                beep_ms: c[b].parse().ok(),
                split: c[s].to_string(),
                answer_ms: c[a].parse().unwrap_or(0),
                speech_onset_ms: c[o].parse().unwrap_or(0),
            }
        })
        .collect()
}

/// The rows of `corpus`'s holdout split.
fn holdout_rows(corpus: &str) -> Vec<Row> {
    labels(corpus).into_iter().filter(|r| r.split == "holdout").collect()
}

fn median(mut v: Vec<f64>) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn quantile(mut v: Vec<f64>, q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    v.sort_by(|a, b| a.total_cmp(b));
    v[((v.len() - 1) as f64 * q).round() as usize]
}

#[derive(Debug)]
struct Score {
    n: usize,
    accuracy: f64,
    human_recall: f64,
    machine_recall: f64,
    unknown: usize,
    /// The costly error: a person hung up on as a machine.
    people_called_machines: usize,
    median_from_answer_ms: f64,
    p90_from_answer_ms: f64,
    median_from_speech_ms: f64,
    beeps: usize,
    beeps_found: usize,
    false_beeps: usize,
    median_beep_error_ms: f64,
}

fn score(outs: &[&Outcome]) -> Score {
    let n = outs.len();
    let correct = outs.iter().filter(|o| o.result == o.row.label).count();
    let recall = |c: AmdResult| {
        let of: Vec<_> = outs.iter().filter(|o| o.row.label == c).collect();
        of.iter().filter(|o| o.result == c).count() as f64 / of.len().max(1) as f64
    };
    let beeps: Vec<_> = outs.iter().filter(|o| o.row.beep_ms.is_some()).collect();
    let errors: Vec<f64> = beeps
        .iter()
        .filter_map(|o| Some((o.beep_at_ms? as f64 - o.row.beep_ms? as f64).abs()))
        .collect();
    Score {
        n,
        accuracy: correct as f64 / n.max(1) as f64,
        human_recall: recall(AmdResult::Human),
        machine_recall: recall(AmdResult::Machine),
        unknown: outs.iter().filter(|o| o.result == AmdResult::Unknown).count(),
        people_called_machines: outs
            .iter()
            .filter(|o| o.row.label == AmdResult::Human && o.result == AmdResult::Machine)
            .count(),
        median_from_answer_ms: median(
            outs.iter().map(|o| o.decided_at_ms.saturating_sub(o.row.answer_ms) as f64).collect(),
        ),
        p90_from_answer_ms: quantile(
            outs.iter().map(|o| o.decided_at_ms.saturating_sub(o.row.answer_ms) as f64).collect(),
            0.9,
        ),
        median_from_speech_ms: median(
            outs.iter().map(|o| o.decided_at_ms as f64 - o.row.speech_onset_ms as f64).collect(),
        ),
        beeps: beeps.len(),
        beeps_found: errors.len(),
        false_beeps: outs.iter().filter(|o| o.row.beep_ms.is_none() && o.beep_at_ms.is_some()).count(),
        median_beep_error_ms: median(errors),
    }
}

fn run(corpus: &str, config: &AmdConfig) -> Vec<Outcome> {
    run_rows(corpus, labels(corpus), config)
}

fn run_rows(corpus: &str, rows: Vec<Row>, config: &AmdConfig) -> Vec<Outcome> {
    rows.into_iter()
        .map(|row| {
            let clip = read_wav(&corpus_dir(corpus).join(&row.file)).unwrap_or_else(|e| panic!("{}: {e}", row.file));
            let (d, beep) = detect_clip(config.clone(), &clip.samples).expect("valid config");
            if std::env::var_os("AMD_VERBOSE").is_some() {
                println!("{} {} {} {:?} beep={:?}/{:?}", row.file, row.kind, row.split, d, beep, row.beep_ms);
            }
            Outcome { row, result: d.result, decided_at_ms: d.decided_at_ms, beep_at_ms: beep }
        })
        .collect()
}

/// A model of Asterisk's `AMD()` (apps/app_amd.c) with its default parameters, written
/// from its documented behaviour, to compare on the same corpus: fixed silence threshold
/// (mean |sample| < 256 per 20 ms frame), word counting, and its rules — initial silence
/// 2500 ms → MACHINE, silence 800 ms after a greeting → HUMAN, 2 words → MACHINE, 1500 ms
/// of voice → MACHINE, 5000 ms → NOTSURE (unknown).
fn asterisk_model(samples: &[i16]) -> (AmdResult, u64) {
    let (initial_silence, greeting, after_greeting, total, min_word, between_words, max_words, max_word_len) =
        (2500u64, 1500u64, 800u64, 5000u64, 100u64, 50u64, 2u32, 5000u64);
    let (mut t, mut silence, mut consecutive_voice, mut voice) = (0u64, 0u64, 0u64, 0u64);
    let (mut in_word, mut in_initial_silence, mut in_greeting, mut words) = (false, true, false, 0u32);
    for frame in samples.chunks_exact(160) {
        t += 20;
        if t >= total {
            return (AmdResult::Unknown, t);
        }
        let mean_abs = frame.iter().map(|&s| (s as i32).unsigned_abs() as u64).sum::<u64>() / 160;
        if mean_abs < 256 {
            silence += 20;
            if silence >= between_words {
                in_word = false;
                consecutive_voice = 0;
            }
            if in_initial_silence && silence >= initial_silence {
                return (AmdResult::Machine, t);
            }
            if in_greeting && silence >= after_greeting {
                return (AmdResult::Human, t);
            }
        } else {
            consecutive_voice += 20;
            voice += 20;
            if consecutive_voice >= min_word && !in_word {
                words += 1;
                in_word = true;
            }
            if consecutive_voice >= max_word_len || words >= max_words || (in_greeting && voice >= greeting) {
                return (AmdResult::Machine, t);
            }
            if voice >= min_word {
                silence = 0;
            }
            if consecutive_voice >= min_word && !in_greeting {
                in_initial_silence = false;
                in_greeting = true;
            }
        }
    }
    (AmdResult::Unknown, t)
}

fn print_table(outs: &[Outcome], list_errors: bool) {
    println!(
        "| set | n | accuracy | human recall | machine recall | unknown | decision from answer: median / p90 | median from first speech | beeps found | false beeps | median beep error |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for split in ["train", "holdout", "all"] {
        let sel: Vec<&Outcome> = outs.iter().filter(|o| split == "all" || o.row.split == split).collect();
        let s = score(&sel);
        println!(
            "| {split} | {} | {:.3} | {:.3} | {:.3} | {} | {:.0} / {:.0} ms | {:.0} ms | {}/{} | {} | {:.1} ms |",
            s.n, s.accuracy, s.human_recall, s.machine_recall, s.unknown, s.median_from_answer_ms,
            s.p90_from_answer_ms, s.median_from_speech_ms, s.beeps_found, s.beeps, s.false_beeps, s.median_beep_error_ms
        );
    }
    println!();
    println!("| kind | n | correct (train / holdout) | accuracy | median decision from answer / first speech | misclassified as |");
    println!("|---|---|---|---|---|---|");
    let mut kinds: BTreeMap<&str, Vec<&Outcome>> = BTreeMap::new();
    for o in outs {
        kinds.entry(o.row.kind.as_str()).or_default().push(o);
    }
    for (kind, sel) in &kinds {
        let s = score(sel);
        let ok = |split: &str| {
            let of: Vec<_> = sel.iter().filter(|o| o.row.split == split).collect();
            format!("{}/{}", of.iter().filter(|o| o.result == o.row.label).count(), of.len())
        };
        let wrong: Vec<String> = sel
            .iter()
            .filter(|o| list_errors && o.result != o.row.label)
            .map(|o| format!("{}={}", o.row.file, o.result.as_str()))
            .collect();
        println!(
            "| {kind} | {} | {} / {} | {:.3} | {:.0} / {:.0} ms | {} |",
            s.n, ok("train"), ok("holdout"), s.accuracy, s.median_from_answer_ms, s.median_from_speech_ms, wrong.join(" ")
        );
    }
}

fn config() -> AmdConfig {
    match std::env::var("AMD_CONFIG") {
        Ok(json) => serde_json::from_str(&json).expect("AMD_CONFIG is an AmdConfig JSON object"),
        Err(_) => AmdConfig::default(),
    }
}

#[test]
fn corpus_meets_targets() {
    let outs = run(WORLD, &config());
    // The same corpus through a model of Asterisk's AMD() with its defaults.
    let baseline: Vec<Outcome> = labels(WORLD)
        .into_iter()
        .map(|row| {
            let clip = read_wav(&corpus_dir(WORLD).join(&row.file)).expect("corpus wav");
            let (result, decided_at_ms) = asterisk_model(&clip.samples);
            Outcome { row, result, decided_at_ms, beep_at_ms: None }
        })
        .collect();
    println!("Asterisk AMD() model, default parameters:");
    print_table(&baseline, false);
    println!();
    println!("redial AmdDetector:");
    let ours = score(&outs.iter().collect::<Vec<_>>());
    let theirs = score(&baseline.iter().collect::<Vec<_>>());
    assert!(ours.accuracy > theirs.accuracy, "redial {ours:?} vs Asterisk model {theirs:?}");
    for class in [AmdResult::Human, AmdResult::Machine] {
        let n = outs.iter().filter(|o| o.row.label == class).count();
        assert!(n >= 100, "corpus has {n} {class:?} files");
    }
    print_table(&outs, true);
    // The holdout's voices and scripts were never used for training or tuning. These are
    // regression floors at the figures measured for the shipped model (the result is
    // deterministic), below the targets (accuracy 0.95, human recall 0.95, machine
    // recall 0.93, median 1.3 s and p90 2.0 s from answer), which are not reached yet.
    let holdout: Vec<&Outcome> = outs.iter().filter(|o| o.row.split == "holdout").collect();
    let s = score(&holdout);
    println!("holdout: {s:?}");
    // amd-mlp-8 blended with the sequence model amd-gru-6 (five GRUs from five seeds,
    // their mean log-odds; 0.5 of the blend) as `test-media/train-amd.sh` makes them with
    // this code (session 32), a model verdict after 400 ms of speech or 300 ms of silence,
    // a person called after 800 ms of speech without a pause, the long-greeting rule
    // (2.5 s) deferring to a feature model that leans to a person: accuracy 0.967, human
    // 0.933, machine 1.000, 1 unknown, 3 people called machines, median 1.40 s, p90 2.56 s
    // (session 31's weights: the same but 1.44 s / 2.50 s, with `h100` wrong and `h056`
    // right, where now it is the other way). Earlier figures: docs/amd.md, Measured.
    assert!(s.accuracy >= 0.96, "{s:?}");
    assert!(s.human_recall >= 0.93, "{s:?}");
    assert!(s.machine_recall >= 0.98, "{s:?}");
    assert!(s.people_called_machines <= 3, "{s:?}");
    // And ceilings at the measured decision times from answer.
    assert!(s.median_from_answer_ms <= 1400.0, "{s:?}");
    assert!(s.p90_from_answer_ms <= 2560.0, "{s:?}");
    let all = score(&outs.iter().collect::<Vec<_>>());
    // The beep detector: onset error median <= 10 ms, >= 97 % of beeps found, false beeps
    // on at most 1 % of the files without one. 132 of 134 are found since a beep clipped by
    // a hot line is fitted again for its fundamental (session 29); 122 before, when the
    // floor was 90 %.
    let no_beep = outs.iter().filter(|o| o.row.beep_ms.is_none()).count();
    assert!(all.median_beep_error_ms <= 10.0, "{all:?}");
    assert!(all.beeps_found as f64 >= 0.97 * all.beeps as f64, "{all:?}");
    assert!(all.false_beeps as f64 <= 0.01 * no_beep as f64, "{all:?}");
}

/// The espeak-only corpus: its machines play with the same background as its people, from
/// the first sample, so a model that reads "no background step at the first word" as a
/// person calls them people. A model trained on the world corpus alone (`amd-mlp-3`) scored
/// 0.597 on this holdout, with 10 of its 56 machines right.
#[test]
fn espeak_corpus_holdout_keeps_machines_without_a_step() {
    let outs = run(ESPEAK, &config());
    println!("redial AmdDetector on test-media/amd/ (train: trained on; holdout: never):");
    print_table(&outs, true);
    let holdout: Vec<&Outcome> = outs.iter().filter(|o| o.row.split == "holdout").collect();
    let s = score(&holdout);
    println!("espeak holdout: {s:?}");
    assert!(s.n >= 100, "{s:?}");
    // Regression floors at the figures measured for the shipped models and rule (the
    // result is deterministic): accuracy 0.915, human recall 0.959, machine recall 0.857,
    // 1 `unknown`, 3 people called machines, median 1.80 s and p90 3.08 s from answer
    // (session 32, amd-mlp-8 and amd-gru-6 as `train-amd.sh` makes them; session 31's:
    // 0.899 / 0.945 / 0.839, 1.84 s / 3.12 s). The sequence model and the shorter gates
    // cost this corpus machines (`machine_personal`: calm texts with pauses) while the
    // world corpus gains on every figure; earlier models' figures: docs/amd.md.
    assert!(s.accuracy >= 0.91, "{s:?}");
    assert!(s.human_recall >= 0.95, "{s:?}");
    assert!(s.machine_recall >= 0.85, "{s:?}");
    assert!(s.people_called_machines <= 3, "{s:?}");
    assert!(s.median_from_answer_ms <= 1800.0, "{s:?}");
    assert!(s.p90_from_answer_ms <= 3080.0, "{s:?}");
}

#[test]
fn corpus_results_are_deterministic() {
    // Each holdout twice: the same audio gives the same decisions, times and beeps (no
    // state outlives a detector). The holdouts keep the test short; every file is run
    // by the tests above.
    let twice = |corpus| {
        let run = || run_rows(corpus, holdout_rows(corpus), &AmdConfig::default());
        (run(), run())
    };
    let (mut a, mut b) = twice(WORLD);
    let (c, d) = twice(ESPEAK);
    a.extend(c);
    b.extend(d);
    assert_eq!(a.len(), b.len());
    assert!(a.len() >= 240, "{} files", a.len());
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.result, x.decided_at_ms, x.beep_at_ms), (y.result, y.decided_at_ms, y.beep_at_ms), "{}", x.row.file);
    }
}

/// Runs the world holdout with the shipped config and with `off` applied to it; every file
/// is decided at the same time or sooner with the tier on (each tier only adds a way to
/// commit), and the tier must decide some sooner. Returns the files decided sooner, as
/// (with the tier, without it).
fn sooner_with_tier(off: impl Fn(AmdConfig) -> AmdConfig) -> Vec<(Outcome, Outcome)> {
    let on = run_rows(WORLD, holdout_rows(WORLD), &config());
    let without = run_rows(WORLD, holdout_rows(WORLD), &off(config()));
    let mut sooner = Vec::new();
    for (a, b) in on.into_iter().zip(without) {
        assert!(a.decided_at_ms <= b.decided_at_ms, "{}: {} vs {} ms", a.row.file, a.decided_at_ms, b.decided_at_ms);
        if a.decided_at_ms < b.decided_at_ms {
            sooner.push((a, b));
        }
    }
    assert!(!sooner.is_empty(), "the tier decided nothing sooner");
    sooner
}

/// The sooner tier only ever moves a verdict earlier on the files where the model is sure:
/// with it off (`early_confidence = 1`) no file of the world holdout is decided sooner, and
/// with it on some are.
#[test]
fn the_sooner_tier_decides_sooner_never_later() {
    let sooner = sooner_with_tier(|c| AmdConfig { early_confidence: 1.0, ..c });
    println!("the sooner tier decided {} holdout files sooner", sooner.len());
}

/// The sooner tier is never less sure than the main threshold: with `machine_confidence`
/// and `human_confidence` at 0.99, above the tier's 0.97, the tier commits at 0.99 too,
/// so setting `early_confidence` to 0.99 changes nothing (it used to: the tier then
/// called files at 0.97 on 200 ms of speech that the operator had asked to wait for).
#[test]
fn the_sooner_tier_is_never_less_sure_than_the_main_threshold() {
    let strict = AmdConfig { machine_confidence: 0.99, human_confidence: 0.99, ..config() };
    let a = run_rows(WORLD, holdout_rows(WORLD), &strict);
    let b = run_rows(WORLD, holdout_rows(WORLD), &AmdConfig { early_confidence: 0.99, ..strict });
    let tier_off = run_rows(WORLD, holdout_rows(WORLD), &AmdConfig { early_confidence: 1.0, ..strict });
    for (x, y) in a.iter().zip(&b) {
        assert_eq!((x.result, x.decided_at_ms), (y.result, y.decided_at_ms), "{}", x.row.file);
    }
    // And the tier still works at the stricter threshold: some files are decided sooner.
    assert!(a.iter().zip(&tier_off).any(|(x, y)| x.decided_at_ms < y.decided_at_ms), "the tier decided nothing sooner");
}

/// A person who talks on is called a person without waiting for a pause: with
/// `human_speech_ms = 0` (off) no holdout file is decided sooner; with it on some are, and
/// each of those is a `human` verdict that came that way.
#[test]
fn a_person_who_talks_on_is_called_without_waiting_for_a_pause() {
    let sooner = sooner_with_tier(|c| AmdConfig { human_speech_ms: 0, ..c });
    for (a, b) in &sooner {
        assert_eq!(
            a.result,
            AmdResult::Human,
            "{}: {:?} at {} ms (off: {:?} at {} ms)",
            a.row.file,
            a.result,
            a.decided_at_ms,
            b.result,
            b.decided_at_ms
        );
        let saved = b.decided_at_ms - a.decided_at_ms;
        println!("{} ({:?}): {} ms sooner, {:?} without the rule", a.row.file, a.row.label, saved, b.result);
    }
    println!("talking on decided {} holdout files sooner", sooner.len());
}
