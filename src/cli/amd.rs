//! `redial amd FILE.wav...`: offline answering-machine detection, one JSON line per file
//! (DESIGN.md "Command line").

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
