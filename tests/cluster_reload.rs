//! SIGHUP on a cluster node: the PostgreSQL book's rules take up the queues
//! reloaded, as the single-node book does — a new queue takes bookings, and
//! a queue's changed hours apply to the next booking.

mod common;

use std::time::Duration;

use common::api::{request, RW};
use common::cluster::{balanced, eventually, Node};
use common::pg::Postgres;
use serde_json::{json, Value};

fn book(port: u16, queue: &str, phone: &str) -> (u16, Value) {
    let body = json!({"phone": phone, "queue": queue, "timezone": "UTC"}).to_string();
    request(port, "POST", "/v1/callbacks", Some(RW), Some(&body), &[]).unwrap_or_else(|e| panic!("POST: {e}"))
}

fn due_hour(v: &Value) -> u32 {
    let due = v["due_at"].as_str().unwrap_or_else(|| panic!("{v}"));
    due[11..13].parse().unwrap_or_else(|_| panic!("{v}"))
}

#[test]
fn sighup_gives_the_postgres_book_the_reloaded_queues() {
    let pg = Postgres::start();
    let root = tempfile::tempdir().unwrap();
    let node = Node::start(root.path(), "n1", &pg.url(), None);
    eventually("the node holding every shard", Duration::from_secs(30), || balanced(node.port, &["n1"]).then_some(()));
    let log = || std::fs::read_to_string(&node.log).unwrap_or_default();

    let (s, v) = book(node.port, "q2", "+15550201");
    assert_eq!((s, v["error"]["code"].as_str()), (422, Some("unknown_queue")), "{v}");

    // `support` closes until two hours from now; `q2` is new.
    let hour = (std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() / 3600 % 24) as u32;
    let opens = (hour + 2) % 24;
    let path = node.dir.join("redial.toml");
    let original = std::fs::read_to_string(&path).unwrap();
    let always = "name = \"support\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n";
    assert!(original.contains(always), "{original}");
    let changed = original.replace(always, &format!("name = \"support\"\ntimezone = \"UTC\"\nhours = [\"mon-sun {opens:02}:00-{:02}:00\"]\n", opens + 1))
        + "\n[[queues]]\nname = \"q2\"\ntimezone = \"UTC\"\nhours = [\"mon-sun 00:00-24:00\"]\n";
    std::fs::write(&path, changed).unwrap();
    unsafe { libc::kill(node.pid().unwrap() as i32, libc::SIGHUP) };

    // Until the reload is applied `q2` is unknown; each try is a new customer.
    let mut n = 0;
    let v = eventually("the book taking bookings for the new queue", Duration::from_secs(30), || {
        n += 1;
        let (s, v) = book(node.port, "q2", &format!("+1555030{n:04}"));
        match (s, v["error"]["code"].as_str()) {
            (201, _) => Some(v),
            (422, Some("unknown_queue")) => None,
            _ => panic!("{s}: {v}\n{}", log()),
        }
    });
    assert_eq!(v["queue"], "q2", "{v}");

    let (s, v) = book(node.port, "support", "+15550202");
    assert_eq!(s, 201, "{v}");
    assert_eq!(due_hour(&v), opens, "the changed hours apply to the next booking: {v}\n{}", log());
}
