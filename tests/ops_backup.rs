//! `redial backup PATH` against the running daemon: the copy has every callback
//! committed before it, is a redb file this build opens, and is never written over.

mod common;

use std::process::Command;

use common::{Setup, TOKEN};
use redb::{ReadableDatabase, ReadableTableMetadata};
use serde_json::json;

fn backup(r: &common::Redial, path: &std::path::Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_redial"))
        .args(["backup", "--api", &format!("http://{}", r.http), "--token", TOKEN])
        .arg(path)
        .output()
        .expect("run redial backup")
}

#[test]
fn backup_while_running_copies_the_book() {
    let r = Setup::new().with_token().start();
    let mut ids = Vec::new();
    for i in 0..5 {
        let (s, cb) = r.api("POST", "/v1/callbacks", Some(json!({"phone": format!("+1555010{i:04}"), "queue": "default"})));
        assert_eq!(s, 201, "{cb}");
        ids.push(cb["id"].as_str().unwrap().to_string());
    }
    let out_dir = tempfile::tempdir().unwrap();
    let dest = out_dir.path().join("book-copy.redb");
    let out = backup(&r, &dest);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("5 callbacks"), "{stdout}");
    // The daemon goes on working after the backup.
    let (s, _) = r.api("POST", "/v1/callbacks", Some(json!({"phone": "+15550199999", "queue": "default"})));
    assert_eq!(s, 201);

    // Never over an existing file; a relative path on the server is refused by the API.
    let again = backup(&r, &dest);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("409"), "{}", String::from_utf8_lossy(&again.stderr));
    let (s, body) = r.api("POST", "/v1/admin/backup", Some(json!({"path": "relative.redb"})));
    assert_eq!(s, 400, "{body}");

    // The copy opens with this build's schema and holds the five callbacks, not the sixth.
    let db = redial::scheduler::store::tables::open(&dest, 1 << 20).expect("the copy opens");
    let rtx = db.begin_read().unwrap();
    let t = rtx.open_table(redial::scheduler::store::tables::CALLBACKS).unwrap();
    assert_eq!(t.len().unwrap(), 5);
    assert!(!out_dir.path().join(".book-copy.redb.partial").exists());
}
