//! `redial webhooks test URL`: POSTs one signed sample event to a receiver,
//! exactly as deliveries are sent (`X-Redial-Signature`, `X-Redial-Event-Id`),
//! and says what it answered: a receiver's operator checks their signature
//! verification without waiting for a real change.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::json;

use crate::webhooks::{send, sign};

#[derive(Debug, Args)]
pub struct WebhooksCmd {
    #[command(subcommand)]
    pub action: WebhooksAction,
}

#[derive(Debug, Subcommand)]
pub enum WebhooksAction {
    /// Send a signed sample `callback.created` event to URL.
    Test {
        url: String,
        /// The endpoint's secret; default: the one configured for URL in `--config`.
        #[arg(long, env = "REDIAL_WEBHOOK_SECRET", hide_env_values = true)]
        secret: Option<String>,
        #[arg(long)]
        config: Option<std::path::PathBuf>,
    },
}

pub fn run(cmd: WebhooksCmd) -> ExitCode {
    let WebhooksAction::Test { url, secret, config } = cmd.action;
    if let Err(why) = crate::config::webhook::check_url(&url) {
        eprintln!("error: URL {why}");
        return ExitCode::from(2);
    }
    let secret = match secret.or_else(|| configured_secret(super::config_path(config), &url)) {
        Some(s) => s,
        None => {
            eprintln!("error: no secret: pass --secret (or REDIAL_WEBHOOK_SECRET), or --config with a [[webhooks]] entry for {url}");
            return ExitCode::from(2);
        }
    };
    let (id, body) = sample();
    match send::post(&send::agent(), &url, &secret, &id, &body) {
        Ok(status) => {
            println!("delivered {id} to {url}: HTTP {status}");
            println!("{}: {}", sign::HEADER, sign::signature(&secret, &body));
            ExitCode::SUCCESS
        }
        Err(why) => {
            eprintln!("error: {url} did not take {id}: {why}");
            ExitCode::from(1)
        }
    }
}

fn configured_secret(path: Option<std::path::PathBuf>, url: &str) -> Option<String> {
    let path = path?;
    let cfg = crate::config::Config::load(Some(&path)).ok()?;
    cfg.webhooks.into_iter().find(|h| h.url == url).map(|h| h.secret)
}

/// A sample event shaped like a real one (its id says it is a test).
fn sample() -> (String, Vec<u8>) {
    let now = chrono::Utc::now();
    let id = format!("evt_test_{}", now.timestamp_millis());
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let body = json!({
        "id": id,
        "type": "callback.created",
        "at": at,
        "test": true,
        "data": {
            "id": "cb_test",
            "status": "scheduled",
            "phone": "+15550100",
            "queue": "support",
            "due_at": at,
            "attempts": 0,
            "origin": "api",
        },
    });
    (id, serde_json::to_vec(&body).expect("JSON values always serialise"))
}
