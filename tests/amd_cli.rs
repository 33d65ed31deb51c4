//! `redial amd` end to end: the real binary on corpus files, a missing file and a non-WAV
//! file; exact JSON shapes and the exit code.

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn media(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("test-media/amd").join(name).to_string_lossy().into_owned()
}

fn redial_amd(files: &[&str]) -> (Vec<Value>, i32) {
    let out = Command::new(env!("CARGO_BIN_EXE_redial")).arg("amd").args(files).output().expect("run redial");
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let lines = stdout.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}"))).collect();
    (lines, out.status.code().expect("exit code"))
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().expect("object").keys().map(|s| s.as_str()).collect();
    k.sort();
    k
}

#[test]
fn human_machine_missing_and_garbage_in_argument_order() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("notes.wav");
    std::fs::write(&garbage, "this is not audio").unwrap();
    let garbage = garbage.to_string_lossy().into_owned();
    let human = media("h003.wav");
    let machine = media("m001.wav");
    let missing = "/definitely/not/here.wav";

    let (lines, code) = redial_amd(&[&human, missing, &machine, &garbage]);
    assert_eq!(code, 1, "an unreadable file makes the exit code 1");
    assert_eq!(lines.len(), 4, "one line per file, all files processed");

    assert_eq!(keys(&lines[0]), ["beep_at_ms", "decided_at_ms", "file", "result"]);
    assert_eq!(lines[0]["file"], human.as_str());
    assert_eq!(lines[0]["result"], "human");
    assert!(lines[0]["decided_at_ms"].as_u64().is_some());
    assert!(lines[0]["beep_at_ms"].is_null());

    assert_eq!(keys(&lines[1]), ["error", "file"]);
    assert_eq!(lines[1]["file"], missing);
    assert!(lines[1]["error"].as_str().unwrap().contains("cannot read"));

    assert_eq!(lines[2]["file"], machine.as_str());
    assert_eq!(lines[2]["result"], "machine");
    // m001 has a labelled beep at 7846 ms.
    let beep = lines[2]["beep_at_ms"].as_i64().expect("beep heard");
    assert!((beep - 7846).abs() <= 30, "{beep}");

    assert_eq!(keys(&lines[3]), ["error", "file"]);
    assert_eq!(lines[3]["file"], garbage.as_str());
    assert!(lines[3]["error"].as_str().unwrap().contains("not a WAV"));
}

#[test]
fn all_readable_exits_zero_and_exact_line_format() {
    let human = media("h003.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_redial")).args(["amd", &human]).output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let (lines, _) = redial_amd(&[&human]);
    let expected = format!(
        "{{\"file\":{},\"result\":\"human\",\"decided_at_ms\":{},\"beep_at_ms\":null}}\n",
        serde_json::to_string(&human).unwrap(),
        lines[0]["decided_at_ms"]
    );
    assert_eq!(String::from_utf8(out.stdout).unwrap(), expected);
}

#[test]
fn other_sample_rates_are_resampled() {
    // The machine greeting m001 (µ-law, 8 kHz) written as 16 kHz 16-bit PCM.
    let clip = redial::amd::wav::read_wav(std::path::Path::new(&media("m001.wav"))).unwrap();
    let up = redial::amd::wav::resample(&clip.samples, 8000, 16000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m001-16k.wav");
    let spec = hound::WavSpec { channels: 1, sample_rate: 16000, bits_per_sample: 16, sample_format: hound::SampleFormat::Int };
    let mut w = hound::WavWriter::create(&path, spec).unwrap();
    for s in up {
        w.write_sample(s).unwrap();
    }
    w.finalize().unwrap();
    let (lines, code) = redial_amd(&[&path.to_string_lossy()]);
    assert_eq!(code, 0);
    assert_eq!(lines[0]["result"], "machine");
    let beep = lines[0]["beep_at_ms"].as_i64().expect("beep heard");
    assert!((beep - 7846).abs() <= 30, "{beep}");
}

#[test]
fn explain_prints_features_confidence_and_the_same_decision() {
    let machine = media("m001.wav");
    let out = Command::new(env!("CARGO_BIN_EXE_redial")).args(["amd", "--explain", &machine, "/no/such.wav"]).output().expect("run redial");
    assert_eq!(out.status.code(), Some(1), "an unreadable file makes the exit code 1");
    let text = String::from_utf8(out.stdout).expect("utf-8");
    let header = text.lines().find(|l| l.trim_start().starts_with("t_ms")).expect("a header line");
    for name in redial::amd::features::FEATURE_NAMES {
        assert!(header.contains(name), "{name} missing from {header}");
    }
    // Rows: time, P(machine) and each model's alone in 0..1, one value per feature.
    let rows: Vec<Vec<f64>> = text
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("t_ms"))
        .skip(1)
        .take_while(|l| !l.starts_with("decision"))
        .map(|l| l.split_whitespace().map(|v| v.parse().unwrap_or_else(|e| panic!("{l}: {e}"))).collect())
        .collect();
    assert!(rows.len() >= 3, "{text}");
    assert!(rows.iter().all(|r| r.len() == 4 + redial::amd::features::FEATURE_COUNT && r[1..4].iter().all(|p| (0.0..=1.0).contains(p))), "{text}");
    assert!(rows.windows(2).all(|w| w[0][0] < w[1][0]), "time increases: {text}");
    // The verdict is the one `redial amd` gives.
    let (lines, _) = redial_amd(&[&machine]);
    let want = format!("decision: {} at {} ms", lines[0]["result"].as_str().unwrap(), lines[0]["decided_at_ms"]);
    assert!(text.contains(&want), "{want} not in {text}");
    assert!(text.contains("/no/such.wav:\nerror: cannot read"), "{text}");
}
