//! `redial callback ...` against the running binary.

mod common;

use std::process::Command;

use common::api::*;
use serde_json::Value;

fn cli(s: &Server, token: Option<&str>, args: &[&str]) -> (bool, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_redial"));
    c.arg("callback").args(args).arg("--api").arg(format!("http://127.0.0.1:{}", s.port)).env_remove("REDIAL_TOKEN").env_remove("REDIAL_API");
    if let Some(t) = token {
        c.env("REDIAL_TOKEN", t);
    }
    let o = c.output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stdout).to_string(), String::from_utf8_lossy(&o.stderr).to_string())
}

#[test]
fn cli_schedule_list_show_reschedule_cancel() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), true, &[]);

    let (ok, out, err) = cli(&s, Some(RW), &["schedule", "--phone", "+15550500", "--queue", "support", "--at", &in_secs(3600), "--notes", "hello", "--json"]);
    assert!(ok, "{err}");
    let cb: Value = serde_json::from_str(&out).unwrap();
    let id = cb["id"].as_str().unwrap().to_string();
    assert_eq!(cb["notes"], "hello");

    // Table by default.
    let (ok, out, _) = cli(&s, Some(RO), &["list"]);
    assert!(ok);
    let mut lines = out.lines();
    assert!(lines.next().unwrap().starts_with("ID"), "{out}");
    let row = lines.next().unwrap();
    assert!(row.contains(&id) && row.contains("scheduled") && row.contains("+15550500"), "{out}");

    let (ok, out, _) = cli(&s, Some(RO), &["show", &id]);
    assert!(ok);
    assert!(out.contains(&format!("id:              {id}")), "{out}");
    assert!(out.contains("notes:           hello"), "{out}");
    assert!(out.contains("when_resolution: -"), "{out}");

    // --when: free text, resolved by the server.
    let (ok, out, err) = cli(&s, Some(RW), &["schedule", "--phone", "+15550501", "--queue", "support", "--when", "in half an hour"]);
    assert!(ok, "{err}");
    assert!(out.contains("when:            in half an hour") && out.contains("when_resolution: exact"), "{out}");
    let (ok, _, err) = cli(&s, Some(RW), &["schedule", "--phone", "+15550502", "--queue", "support", "--when", "in 1 hour", "--at", &in_secs(3600)]);
    assert!(!ok && err.contains("cannot be used with"), "{err}");

    // --token beats the environment.
    let (ok, out, err) = cli(&s, Some("wrong"), &["reschedule", &id, "--at", &in_secs(7200), "--notes", "later", "--token", RW, "--json"]);
    assert!(ok, "{err}");
    let changed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(changed["notes"], "later");

    // API errors: clear message, non-zero exit.
    let (ok, _, err) = cli(&s, Some(RW), &["schedule", "--phone", "+15550500", "--queue", "support"]);
    assert!(!ok);
    assert!(err.contains("409 duplicate") && err.contains(&id), "{err}");
    let (ok, _, err) = cli(&s, Some(RW), &["schedule", "--phone", "12345", "--queue", "support"]);
    assert!(!ok);
    assert!(err.contains("422 invalid_phone") && err.contains("field `phone`"), "{err}");
    let (ok, _, err) = cli(&s, None, &["list"]);
    assert!(!ok);
    assert!(err.contains("401 unauthorized"), "{err}");
    let (ok, _, err) = cli(&s, Some(RO), &["show", "cb_nothing"]);
    assert!(!ok);
    assert!(err.contains("404 not_found"), "{err}");

    let (ok, out, _) = cli(&s, Some(RW), &["cancel", &id]);
    assert!(ok);
    assert!(out.contains("cancelled"), "{out}");
    let (ok, _, err) = cli(&s, Some(RW), &["cancel", &id]);
    assert!(!ok);
    assert!(err.contains("409 wrong_state"), "{err}");

    let (ok, out, _) = cli(&s, Some(RO), &["list", "--status", "cancelled", "--json"]);
    assert!(ok);
    let page: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(page["items"][0]["id"], id.as_str());

    // An API that is not there: a TCP port bound but not listening, so a
    // connection is refused and no other test can take the port meanwhile.
    let closed = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    closed.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], 0)).into()).unwrap();
    let closed_port = closed.local_addr().unwrap().as_socket().unwrap().port();
    let mut c = Command::new(env!("CARGO_BIN_EXE_redial"));
    let o = c.args(["callback", "list", "--api", &format!("http://127.0.0.1:{closed_port}"), "--token", RO]).output().unwrap();
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach the API"));
}
