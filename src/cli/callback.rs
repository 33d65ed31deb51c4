//! `redial callback schedule|list|show|cancel|reschedule`: a client of the
//! HTTP API. Tables by default, `--json` for the API's own JSON; API errors
//! are printed as `error: <status> <code>: <message>` and exit 1.

use std::process::ExitCode;

use clap::{Args, Subcommand};
use serde_json::{json, Map, Value};

/// Connection options shared by every subcommand.
#[derive(Debug, Args)]
pub struct ClientOpts {
    /// Base URL of the redial API.
    #[arg(long, global = true, env = "REDIAL_API", default_value = "http://127.0.0.1:8080")]
    pub api: String,
    /// Bearer token.
    #[arg(long, global = true, env = "REDIAL_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Print the API's JSON instead of a table.
    #[arg(long, global = true)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct CallbackCmd {
    #[command(flatten)]
    pub opts: ClientOpts,
    #[command(subcommand)]
    pub action: Action,
}

#[derive(Debug, Subcommand)]
pub enum Action {
    /// Schedule a callback.
    Schedule {
        /// E.164 number, e.g. +15550123.
        #[arg(long)]
        phone: String,
        #[arg(long)]
        queue: String,
        /// RFC 3339 time; absent = as soon as the calling window allows.
        #[arg(long, conflicts_with = "when")]
        at: Option<String>,
        /// Free-text time as the customer said it ("tomorrow morning",
        /// "in half an hour", "kal subah"), resolved by the server.
        #[arg(long)]
        when: Option<String>,
        /// IANA timezone of the customer.
        #[arg(long)]
        timezone: Option<String>,
        /// Agent who owns the callback.
        #[arg(long)]
        owner: Option<String>,
        /// customer_first or agent_first.
        #[arg(long)]
        mode: Option<String>,
        #[arg(long)]
        caller_id: Option<String>,
        #[arg(long)]
        notes: Option<String>,
        #[arg(long)]
        interaction_id: Option<String>,
        #[arg(long)]
        max_attempts: Option<u32>,
        /// voice (a call, the default) or sms (the queue's `sms_callback`
        /// text at the due time instead of a call).
        #[arg(long)]
        channel: Option<String>,
        /// Idempotency-Key header: retrying with the same key never schedules twice.
        #[arg(long)]
        idempotency_key: Option<String>,
    },
    /// List callbacks (one page; `--cursor` for the next).
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        queue: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        phone: Option<String>,
        #[arg(long, default_value_t = 100)]
        limit: u32,
        #[arg(long)]
        cursor: Option<String>,
    },
    /// Show one callback and its attempts.
    Show { id: String },
    /// Cancel a scheduled callback.
    Cancel { id: String },
    /// Change a scheduled callback.
    Reschedule {
        id: String,
        /// New RFC 3339 time.
        #[arg(long, conflicts_with = "asap")]
        at: Option<String>,
        /// As soon as the calling window allows.
        #[arg(long)]
        asap: bool,
        #[arg(long)]
        timezone: Option<String>,
        #[arg(long)]
        owner: Option<String>,
        #[arg(long)]
        notes: Option<String>,
    },
}

/// A failed call, printed by [`run`].
#[derive(Debug, thiserror::Error)]
pub(super) enum ClientError {
    #[error("cannot reach the API at {url}: {source}")]
    Transport { url: String, source: Box<ureq::Error> },
    #[error("{status} {code}: {message}{detail}")]
    Api { status: u16, code: String, message: String, detail: String },
    #[error("the API answered {status} with a body that is not JSON")]
    NotJson { status: u16 },
}

pub(super) struct Client {
    agent: ureq::Agent,
    base: String,
    auth: Option<String>,
}

impl Client {
    pub(super) fn new(o: &ClientOpts) -> Self {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(std::time::Duration::from_secs(30)))
            .build()
            .into();
        Self { agent, base: o.api.trim_end_matches('/').to_string(), auth: o.token.as_ref().map(|t| format!("Bearer {t}")) }
    }

    pub(super) fn send(&self, method: &str, path: &str, query: &[(&str, String)], body: Option<&Value>, key: Option<&str>) -> Result<Value, ClientError> {
        let url = format!("{}{}", self.base, path);
        let transport = |e: ureq::Error| ClientError::Transport { url: url.clone(), source: Box::new(e) };
        let mut req = ureq::http::Request::builder().method(method).uri(&url);
        if let Some(a) = &self.auth {
            req = req.header("Authorization", a);
        }
        if let Some(k) = key {
            req = req.header("Idempotency-Key", k);
        }
        if !query.is_empty() {
            let q: Vec<String> = query.iter().map(|(k, v)| format!("{k}={}", encode(v))).collect();
            req = req.uri(format!("{url}?{}", q.join("&")));
        }
        let resp = match body {
            Some(b) => {
                let req = req.header("Content-Type", "application/json").body(b.to_string()).map_err(|e| transport(e.into()))?;
                self.agent.run(req)
            }
            None => {
                let req = req.body(()).map_err(|e| transport(e.into()))?;
                self.agent.run(req)
            }
        };
        let mut resp = resp.map_err(transport)?;
        let status = resp.status().as_u16();
        let text = resp.body_mut().read_to_string().map_err(transport)?;
        let v: Value = serde_json::from_str(&text).map_err(|_| ClientError::NotJson { status })?;
        if (200..300).contains(&status) {
            return Ok(v);
        }
        let e = &v["error"];
        let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
        let mut detail = String::new();
        if !s("field").is_empty() {
            detail += &format!(" (field `{}`)", s("field"));
        }
        if !s("existing_id").is_empty() {
            detail += &format!(" (existing callback {})", s("existing_id"));
        }
        Err(ClientError::Api { status, code: s("code"), message: s("message"), detail })
    }
}

/// Percent-encodes a query value (RFC 3986 unreserved characters pass).
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn put(m: &mut Map<String, Value>, k: &str, v: Option<impl Into<Value>>) {
    if let Some(v) = v {
        m.insert(k.to_string(), v.into());
    }
}

pub fn run(cmd: CallbackCmd) -> ExitCode {
    let c = Client::new(&cmd.opts);
    let json = cmd.opts.json;
    match execute(&c, cmd.action, json) {
        Ok(out) => {
            print!("{out}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}

fn execute(c: &Client, action: Action, json: bool) -> Result<String, ClientError> {
    let one = |v: Value| if json { format!("{v}\n") } else { callback_table(&v) };
    match action {
        Action::Schedule { phone, queue, at, when, timezone, owner, mode, caller_id, notes, interaction_id, max_attempts, channel, idempotency_key } => {
            let mut b = Map::new();
            b.insert("phone".into(), phone.into());
            b.insert("queue".into(), queue.into());
            put(&mut b, "scheduled_at", at);
            put(&mut b, "when", when);
            put(&mut b, "timezone", timezone);
            put(&mut b, "owner", owner);
            put(&mut b, "mode", mode);
            put(&mut b, "caller_id", caller_id);
            put(&mut b, "notes", notes);
            put(&mut b, "interaction_id", interaction_id);
            put(&mut b, "max_attempts", max_attempts);
            put(&mut b, "channel", channel);
            Ok(one(c.send("POST", "/v1/callbacks", &[], Some(&Value::Object(b)), idempotency_key.as_deref())?))
        }
        Action::List { status, queue, owner, phone, limit, cursor } => {
            let mut q = vec![("limit", limit.to_string())];
            for (k, v) in [("status", status), ("queue", queue), ("owner", owner), ("phone", phone), ("cursor", cursor)] {
                if let Some(v) = v {
                    q.push((k, v));
                }
            }
            let v = c.send("GET", "/v1/callbacks", &q, None, None)?;
            if json {
                return Ok(format!("{v}\n"));
            }
            let mut out = list_table(v["items"].as_array().map(Vec::as_slice).unwrap_or_default());
            if let Some(next) = v["next_cursor"].as_str() {
                out += &format!("more: --cursor {next}\n");
            }
            Ok(out)
        }
        Action::Show { id } => {
            let path = format!("/v1/callbacks/{}", encode(&id));
            let cb = c.send("GET", &path, &[], None, None)?;
            let attempts = c.send("GET", &format!("{path}/attempts"), &[], None, None)?;
            if json {
                return Ok(format!("{}\n", json!({"callback": cb, "attempts": attempts["items"]})));
            }
            let mut out = callback_table(&cb);
            let items = attempts["items"].as_array().cloned().unwrap_or_default();
            if !items.is_empty() {
                out += "\n";
                let rows = items
                    .iter()
                    .map(|a| ["attempt", "started_at", "outcome", "sip_status", "amd", "agent", "duration_s"].iter().map(|k| cell(&a[*k])).collect())
                    .collect::<Vec<Vec<String>>>();
                out += &table(&["ATTEMPT", "STARTED_AT", "OUTCOME", "SIP", "AMD", "AGENT", "SECONDS"], &rows);
            }
            Ok(out)
        }
        Action::Cancel { id } => Ok(one(c.send("POST", &format!("/v1/callbacks/{}/cancel", encode(&id)), &[], None, None)?)),
        Action::Reschedule { id, at, asap, timezone, owner, notes } => {
            let mut b = Map::new();
            if asap {
                b.insert("scheduled_at".into(), Value::Null);
            }
            put(&mut b, "scheduled_at", at);
            put(&mut b, "timezone", timezone);
            put(&mut b, "owner", owner);
            put(&mut b, "notes", notes);
            Ok(one(c.send("PATCH", &format!("/v1/callbacks/{}", encode(&id)), &[], Some(&Value::Object(b)), None)?))
        }
    }
}

fn cell(v: &Value) -> String {
    match v {
        Value::Null => "-".into(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

const FIELDS: &[&str] = &[
    "id", "status", "phone", "queue", "owner", "mode", "scheduled_at", "due_at", "timezone", "attempts", "max_attempts",
    "last_outcome", "origin", "notes", "interaction_id", "caller_id", "created_at", "updated_at", "end_reason", "when",
    "when_resolution", "skipped_by",
];

fn callback_table(v: &Value) -> String {
    FIELDS.iter().map(|k| format!("{:<17}{}\n", format!("{k}:"), cell(&v[*k]))).collect()
}

fn list_table(items: &[Value]) -> String {
    let cols = ["id", "status", "phone", "queue", "owner", "due_at", "attempts"];
    let rows: Vec<Vec<String>> = items.iter().map(|v| cols.iter().map(|k| cell(&v[*k])).collect()).collect();
    table(&["ID", "STATUS", "PHONE", "QUEUE", "OWNER", "DUE_AT", "ATTEMPTS"], &rows)
}

fn table(head: &[&str], rows: &[Vec<String>]) -> String {
    let mut w: Vec<usize> = head.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            w[i] = w[i].max(c.chars().count());
        }
    }
    let line = |cells: Vec<String>| {
        let s: Vec<String> = cells.iter().enumerate().map(|(i, c)| format!("{c:<width$}", width = w[i])).collect();
        format!("{}\n", s.join("  ").trim_end())
    };
    let mut out = line(head.iter().map(|s| s.to_string()).collect());
    for r in rows {
        out += &line(r.clone());
    }
    out
}
