//! `redial backup PATH`: asks the running daemon (`POST /v1/admin/backup`, admin token)
//! for a consistent copy of its book at PATH.
//!
//! The daemon writes the copy, not this process: redb lets one process open the file,
//! and only a read transaction inside that process sees one whole commit. So PATH is a
//! path on the daemon's machine (in a container: inside the container, e.g. in its data
//! volume). A relative PATH is made absolute against this command's directory.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use serde_json::json;

use super::callback::{Client, ClientOpts};

#[derive(Debug, Args)]
pub struct BackupCmd {
    #[command(flatten)]
    pub opts: ClientOpts,
    /// Where the copy goes (a new file; its directory must exist).
    #[arg(value_name = "PATH")]
    pub path: PathBuf,
}

pub fn run(cmd: BackupCmd) -> ExitCode {
    let path = if cmd.path.is_absolute() {
        cmd.path.clone()
    } else {
        match std::env::current_dir() {
            Ok(d) => d.join(&cmd.path),
            Err(e) => {
                eprintln!("error: cannot resolve {}: {e}", cmd.path.display());
                return ExitCode::from(1);
            }
        }
    };
    let client = Client::new(&cmd.opts);
    match client.send("POST", "/v1/admin/backup", &[], Some(&json!({ "path": path.display().to_string() })), None) {
        Ok(v) => {
            if cmd.opts.json {
                println!("{v}");
            } else {
                println!(
                    "backup written: {} ({} callbacks, {} bytes)",
                    v["path"].as_str().unwrap_or_default(),
                    v["callbacks"].as_u64().unwrap_or_default(),
                    v["bytes"].as_u64().unwrap_or_default()
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
