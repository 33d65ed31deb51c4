//! `redial check`: validate the configuration without starting anything.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::config::Config;

pub fn run(config: Option<PathBuf>) -> ExitCode {
    match Config::load(config.as_deref()) {
        Ok(cfg) => {
            let src = cfg.source.as_ref().map(|p| p.display().to_string()).unwrap_or_else(|| "built-in defaults".into());
            println!(
                "ok: {src}: {} queue(s), {} agent(s), {} profile(s), {} token(s)",
                cfg.queues.len(),
                cfg.agents.len(),
                cfg.profiles.len(),
                cfg.tokens.len()
            );
            ExitCode::SUCCESS
        }
        Err(problems) => {
            for p in &problems.0 {
                println!("{p}");
            }
            ExitCode::from(1)
        }
    }
}
