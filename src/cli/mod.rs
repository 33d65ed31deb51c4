//! The `redial` command line.

mod amd;
mod backup;
pub mod callback;
mod check;
mod events;
mod resolve_time;
mod webhooks;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "redial", version, about = "SIP telephony agent with an embedded callback scheduler")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon (SIP, media, scheduler, HTTP API).
    Serve {
        /// Configuration file; default ./redial.toml if present, else built-in defaults.
        #[arg(long)]
        config: Option<PathBuf>,
        /// Once every listener is bound, write their addresses here as JSON
        /// (`{"sip":…,"http":…,"media":…}`), atomically; useful with port 0.
        #[arg(long, value_name = "PATH")]
        ready_file: Option<PathBuf>,
    },
    /// Offline answering-machine detection; one JSON line per file.
    Amd {
        /// Print the features and the model's confidence over time instead of JSON.
        #[arg(long)]
        explain: bool,
        #[arg(required = true, value_name = "FILE.wav")]
        files: Vec<PathBuf>,
    },
    /// Schedule, list, show, cancel and reschedule callbacks over the HTTP API.
    Callback(Box<callback::CallbackCmd>),
    /// Validate redial.toml and every sip-profiles/*.toml; one problem per line.
    Check {
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Write a consistent copy of the running daemon's book to PATH (a new file).
    Backup(backup::BackupCmd),
    /// Show how a free-text callback time ("kal subah") resolves, as JSON.
    ResolveTime(resolve_time::Args),
    /// Follow the event stream over the HTTP API (`events tail`).
    Events(events::EventsCmd),
    /// Webhook tools (`webhooks test URL` sends a signed sample event).
    Webhooks(webhooks::WebhooksCmd),
}

/// `--config FILE`, else `./redial.toml` when present, else none (defaults).
pub fn config_path(explicit: Option<PathBuf>) -> Option<PathBuf> {
    explicit.or_else(|| {
        let p = PathBuf::from("redial.toml");
        p.exists().then_some(p)
    })
}

pub fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve { config, ready_file } => crate::serve::main(config_path(config), ready_file),
        Command::Check { config } => check::run(config_path(config)),
        Command::ResolveTime(args) => resolve_time::run(args),
        Command::Amd { explain: false, files } => amd::run(files),
        Command::Amd { explain: true, files } => amd::explain(files),
        Command::Callback(cmd) => callback::run(*cmd),
        Command::Backup(cmd) => backup::run(cmd),
        Command::Events(cmd) => events::run(cmd),
        Command::Webhooks(cmd) => webhooks::run(cmd),
    }
}
