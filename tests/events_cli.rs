//! `redial events tail` against the running binary (it replays from the
//! outbox with `--last-event-id`, then follows), and `redial webhooks test`
//! against a real receiver that verifies the signature.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use common::api::{in_secs, Server, RO, RW};
use redial::webhooks::sign;
use serde_json::{json, Value};

fn redial() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_redial"));
    c.env_remove("REDIAL_TOKEN").env_remove("REDIAL_API").env_remove("REDIAL_WEBHOOK_SECRET");
    c
}

#[test]
fn events_tail_replays_then_follows_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);
    let create = |phone: &str| {
        let (st, cb) = s.req("POST", "/v1/callbacks", Some(RW), Some(&json!({"phone": phone, "queue": "support", "scheduled_at": in_secs(3600)}).to_string()));
        assert_eq!(st, 201, "{cb}");
        cb["id"].as_str().unwrap().to_string()
    };
    let before = create("+15550301");
    let mut child = redial()
        .args(["events", "tail", "--json", "--last-event-id", "0", "--types", "callback.created", "--api", &format!("http://127.0.0.1:{}", s.port), "--token", RO])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut next = || -> Value { serde_json::from_str(&lines.next().expect("a line").expect("read")).unwrap() };
    let first = next();
    assert_eq!((first["event"].as_str(), first["data"]["id"].as_str(), first["data"]["type"].as_str()), (Some("callback"), Some(before.as_str()), Some("callback.created")));
    let after = create("+15550302");
    let second = next();
    assert_eq!(second["data"]["id"].as_str(), Some(after.as_str()));
    assert!(second["id"].as_str().unwrap().parse::<u64>().unwrap() > first["id"].as_str().unwrap().parse::<u64>().unwrap());
    let _ = child.kill();
    let _ = child.wait();

    let out = redial().args(["events", "tail", "--api", &format!("http://127.0.0.1:{}", s.port)]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("401"), "{}", String::from_utf8_lossy(&out.stderr));
}

type Got = Arc<Mutex<Vec<(bool, Value, String)>>>;

async fn hook(State(got): State<Got>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let sig = headers.get(sign::HEADER).and_then(|v| v.to_str().ok()).unwrap_or("");
    let ok = sign::verify("test-secret", &body, sig);
    let id = headers.get("x-redial-event-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    got.lock().unwrap().push((ok, serde_json::from_slice(&body).unwrap_or(Value::Null), id));
    if ok {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

#[test]
fn webhooks_test_sends_a_signed_sample() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(1).enable_all().build().unwrap();
    let got: Got = Arc::default();
    let listener = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = axum::Router::new().route("/hook", axum::routing::post(hook)).with_state(got.clone());
    rt.spawn(async move { axum::serve(listener, app).await.unwrap() });

    let out = redial().args(["webhooks", "test", &url, "--secret", "test-secret"]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("HTTP 200"));
    {
        let g = got.lock().unwrap();
        assert_eq!(g.len(), 1);
        let (ok, body, id) = &g[0];
        assert!(ok, "the signature verifies with the secret");
        assert_eq!(body["type"], "callback.created");
        assert_eq!(body["id"].as_str(), Some(id.as_str()));
        assert!(body["data"]["id"].is_string());
    }
    // The wrong secret: the receiver refuses it, and the command says so.
    let out = redial().args(["webhooks", "test", &url, "--secret", "wrong"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("HTTP 401"), "{}", String::from_utf8_lossy(&out.stderr));
    // The secret from the configuration's entry for that URL.
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("redial.toml");
    std::fs::write(&cfg, format!("[[webhooks]]\nurl = \"{url}\"\nsecret = \"test-secret\"\n")).unwrap();
    let out = redial().args(["webhooks", "test", &url, "--config", cfg.to_str().unwrap()]).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // A URL that is not http(s) is refused before anything is sent.
    let out = redial().args(["webhooks", "test", "ftp://127.0.0.1/x", "--secret", "s"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("scheme `ftp`"));
    assert_eq!(got.lock().unwrap().len(), 3);
}
