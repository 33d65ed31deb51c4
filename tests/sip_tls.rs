//! SIP over TLS with real peers: baresip registers to redial's `sip.tls_listen` as an
//! agent and takes a dialled call there; the certificate is made by `openssl` here.

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::phone::Phone;
use common::world::{attempts, corpus, schedule, wait_final, World};
use common::{Redial, Setup};
use serde_json::json;

/// A self-signed certificate for 127.0.0.1 / `redial.test`: (cert.pem, key.pem).
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let cert = dir.join(format!("{name}.pem"));
    let key = dir.join(format!("{name}-key.pem"));
    let out = Command::new("openssl")
        .args(["req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
        .args(["-subj", "/CN=redial.test", "-addext", "subjectAltName=IP:127.0.0.1,DNS:redial.test"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", String::from_utf8_lossy(&out.stderr));
    (cert, key)
}

fn tls_toml(cert: &Path, key: &Path) -> String {
    format!("[tls]\ncert = \"{}\"\nkey = \"{}\"\n", cert.display(), key.display())
}

/// The TLS address from redial's ready file.
fn tls_addr(r: &Redial) -> SocketAddr {
    let text = std::fs::read_to_string(r.dir.path().join("ready.json")).expect("ready file");
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    v["sip_tls"].as_str().and_then(|a| a.parse().ok()).unwrap_or_else(|| panic!("no sip_tls in {text}"))
}

/// baresip's config directory: SIP on loopback (TLS on `port`+1, as baresip does),
/// trusting `ca`, account `account`.
fn baresip(dir: &Path, ca: &Path, account: &str, extra_modules: &str, seconds: u32) -> (std::process::Child, u16) {
    common::start_peer(|port| {
        std::fs::write(
            dir.join("config"),
            format!(
                "sip_listen\t127.0.0.1:{port}\nsip_cafile\t{}\nmodule_path\t/usr/lib/baresip/modules\nmodule\tg711.so\n{extra_modules}\
                 module_app\taccount.so\nmodule_app\tmenu.so\n",
                ca.display()
            ),
        )
        .unwrap();
        std::fs::write(dir.join("accounts"), format!("{account}\n")).unwrap();
        let mut c = Command::new("baresip");
        c.arg("-f")
            .arg(dir)
            .args(["-t", &seconds.to_string()])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.join("baresip.log")).unwrap())
            .stderr(Stdio::null());
        c
    })
}

#[test]
fn baresip_registers_over_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "server");
    let r = Setup::new().agent("alice", "alice-pw").sip_toml("tls_listen = \"127.0.0.1:0\"").extra_toml(&tls_toml(&cert, &key)).start();
    let tls = tls_addr(&r);
    assert_ne!(tls.port(), r.sip.port());
    let dir = tempfile::tempdir().unwrap();
    let account = format!("<sip:alice@{tls};transport=tls>;auth_pass=alice-pw;regint=60");
    let (mut child, _port) = baresip(dir.path(), &cert, &account, "audio_player\tnone\naudio_source\tnone\n", 30);
    let registered = r.logs.wait_for(&["agent registered", "agent=alice", "transport=tls"], Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert!(registered.is_some(), "baresip:\n{log}\nredial:\n{}", r.logs.lines().join("\n"));
}

/// baresip as an agent reached over TLS: the INVITE goes down the connection its
/// REGISTER opened; it answers and its tone reaches the customer through the relay.
#[test]
fn a_baresip_agent_over_tls_answers_and_is_bridged() {
    let certs = tempfile::tempdir().unwrap();
    let (cert, key) = make_cert(certs.path(), "server");
    let mut w = World::new();
    w.sip_toml = "tls_listen = \"127.0.0.1:0\"".into();
    w.extra_toml = tls_toml(&cert, &key);
    let r = w.redial(&["alice"], "max_attempts = 1\nwrap_up = \"0s\"\n");
    let tls = tls_addr(&r);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h011.wav"));
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "8000")]);
    let dir = tempfile::tempdir().unwrap();
    let account = format!("<sip:alice@{tls};transport=tls>;auth_pass=alice-pw;regint=60;answermode=auto");
    let modules = "module\tausine.so\nmodule\taubridge.so\naudio_source\tausine,440\nausrc_srate\t48000\nausrc_channels\t2\naudio_player\taubridge,nil\n";
    let (mut child, _port) = baresip(dir.path(), &cert, &account, modules, 40);
    r.wait_json("/v1/agents", Duration::from_secs(15), |v| v["items"][0]["state"] == "available");
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(40));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert_eq!(cb["status"], "completed", "{cb}\nattempts: {:?}\nbaresip:\n{log}", attempts(&r, &id));
    assert!(carrier.wait().ok());
    assert!(customer.received() > 60, "the customer heard baresip: {} packets", customer.received());
    assert!(log.contains("tls") || log.contains("TLS"), "baresip used TLS:\n{log}");
}
