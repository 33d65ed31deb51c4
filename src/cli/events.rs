//! `redial events tail`: follows `GET /v1/events` (server-sent events) and
//! prints one line per event: `<id> <type> <object id> <status>` by
//! default, the event's JSON with `--json`. With `--last-event-id` it first
//! replays what came after that id (from the server's durable outbox).

use std::io::{BufRead, BufReader, Write};
use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::Value;

use super::callback::ClientOpts;

#[derive(Debug, Args)]
pub struct EventsCmd {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub action: EventsAction,
}

#[derive(Debug, Subcommand)]
pub enum EventsAction {
    /// Print the event stream until interrupted (or the server stops).
    Tail {
        /// Comma-separated event types, e.g. `callback.created,attempt.ended`.
        #[arg(long)]
        types: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        /// Replay every event after this id first (the number in `evt_<n>`).
        #[arg(long)]
        last_event_id: Option<u64>,
    },
}

/// Why the stream could not be followed.
#[derive(Debug, thiserror::Error)]
enum TailError {
    #[error("cannot reach the API at {url}: {source}")]
    Transport { url: String, source: Box<ureq::Error> },
    #[error("{status}: {body}")]
    Refused { status: u16, body: String },
    #[error("the stream broke: {0}")]
    Read(#[from] std::io::Error),
}

pub fn run(cmd: EventsCmd) -> ExitCode {
    let EventsAction::Tail { types, queue, last_event_id } = cmd.action;
    match tail(&cmd.opts, types, queue, last_event_id, &mut std::io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn tail(o: &ClientOpts, types: Option<String>, queue: Option<String>, last: Option<u64>, out: &mut impl Write) -> Result<(), TailError> {
    // No overall timeout: the stream is endless (the server sends
    // keep-alive comments while idle).
    let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
    let mut url = format!("{}/v1/events", o.api.trim_end_matches('/'));
    let query: Vec<String> = [("types", types), ("queue", queue)]
        .into_iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", v.replace(' ', "%20").replace('&', "%26"))))
        .collect();
    if !query.is_empty() {
        url = format!("{url}?{}", query.join("&"));
    }
    let mut req = agent.get(&url).header("Accept", "text/event-stream");
    if let Some(t) = &o.token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    if let Some(l) = last {
        req = req.header("Last-Event-ID", &l.to_string());
    }
    let resp = req.call().map_err(|e| TailError::Transport { url: url.clone(), source: Box::new(e) })?;
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    if status != 200 {
        let text = body.with_config().limit(64 * 1024).read_to_string().unwrap_or_default();
        return Err(TailError::Refused { status, body: text.trim().to_string() });
    }
    let reader = BufReader::new(body.into_reader());
    let mut ev = Sse::default();
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            if let Some(text) = ev.render(o.json) {
                writeln!(out, "{text}")?;
                out.flush()?;
            }
            ev = Sse::default();
            continue;
        }
        // Comments (`:`) are keep-alives. Fields per the SSE format.
        let (field, value) = line.split_once(':').map_or((line.as_str(), ""), |(f, v)| (f, v.strip_prefix(' ').unwrap_or(v)));
        match field {
            "id" => ev.id = value.to_string(),
            "event" => ev.event = value.to_string(),
            "data" => ev.data.push_str(value),
            _ => {}
        }
    }
    Ok(())
}

#[derive(Default)]
struct Sse {
    id: String,
    event: String,
    data: String,
}

impl Sse {
    fn render(&self, json: bool) -> Option<String> {
        if self.data.is_empty() {
            return None;
        }
        let v: Value = serde_json::from_str(&self.data).unwrap_or(Value::String(self.data.clone()));
        if json {
            return Some(serde_json::json!({"id": self.id, "event": self.event, "data": v}).to_string());
        }
        let kind = v["type"].as_str().unwrap_or(&self.event);
        let object = v["callback_id"].as_str().or(v["id"].as_str()).or(v["name"].as_str()).unwrap_or("-");
        let state = v["status"].as_str().or(v["outcome"].as_str()).or(v["state"].as_str()).unwrap_or("");
        Some(format!("{:>8} {:<22} {} {}", self.id, kind, object, state).trim_end().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_prints_as_one_line() {
        let ev = Sse { id: "12".into(), event: "callback".into(), data: r#"{"type":"callback.created","id":"cb_1","status":"scheduled"}"#.into() };
        assert_eq!(ev.render(false).unwrap(), "      12 callback.created       cb_1 scheduled");
        let j: Value = serde_json::from_str(&ev.render(true).unwrap()).unwrap();
        assert_eq!((j["id"].as_str(), j["data"]["id"].as_str()), (Some("12"), Some("cb_1")));
        assert!(Sse::default().render(false).is_none(), "a keep-alive prints nothing");
    }
}
