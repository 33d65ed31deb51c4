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

fn openssl(args: &[&str]) {
    let out = Command::new("openssl").args(args).stdout(Stdio::null()).stderr(Stdio::piped()).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A test CA in `dir` (`{name}.pem`, `{name}-key.pem`).
fn make_ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")));
    openssl(&[
        "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
        "-subj", &format!("/CN={name} test CA"), "-keyout", key.to_str().unwrap(), "-out", cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// A leaf certificate for 127.0.0.1 / `redial.test` signed by `ca`: (cert.pem, key.pem).
fn make_leaf(dir: &Path, ca: &(PathBuf, PathBuf), name: &str) -> (PathBuf, PathBuf) {
    let (cert, key, csr, ext) =
        (dir.join(format!("{name}.pem")), dir.join(format!("{name}-key.pem")), dir.join(format!("{name}.csr")), dir.join(format!("{name}.ext")));
    std::fs::write(&ext, "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:redial.test\nextendedKeyUsage=serverAuth,clientAuth\n").unwrap();
    openssl(&[
        "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-subj", &format!("/CN={name}"),
        "-keyout", key.to_str().unwrap(), "-out", csr.to_str().unwrap(),
    ]);
    openssl(&[
        "x509", "-req", "-in", csr.to_str().unwrap(), "-CA", ca.0.to_str().unwrap(), "-CAkey", ca.1.to_str().unwrap(),
        "-CAcreateserial", "-days", "2", "-extfile", ext.to_str().unwrap(), "-out", cert.to_str().unwrap(),
    ]);
    (cert, key)
}

/// A CA and a server certificate it signed: (ca.pem, cert.pem, key.pem).
fn make_cert(dir: &Path, name: &str) -> (PathBuf, PathBuf, PathBuf) {
    let ca = make_ca(dir, &format!("{name}-ca"));
    let (cert, key) = make_leaf(dir, &ca, name);
    (ca.0, cert, key)
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
    common::start_baresip(|port| {
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
    let (ca, cert, key) = make_cert(certs.path(), "server");
    let r = Setup::new().agent("alice", "alice-pw").sip_toml("tls_listen = \"127.0.0.1:0\"").extra_toml(&tls_toml(&cert, &key)).start();
    let tls = tls_addr(&r);
    assert_ne!(tls.port(), r.sip.port());
    let dir = tempfile::tempdir().unwrap();
    let account = format!("<sip:alice@{tls};transport=tls>;auth_pass=alice-pw;regint=60");
    let (mut child, _port) = baresip(dir.path(), &ca, &account, "audio_player\tnone\naudio_source\tnone\n", 30);
    let registered = r.logs.wait_for(&["agent registered", "agent=alice", "transport=tls"], Duration::from_secs(10));
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert!(registered.is_some(), "baresip:\n{log}\nredial:\n{}", r.logs.lines().join("\n"));
}

/// baresip as an agent reached over TLS, with `mediaenc` (`None` = plain RTP): the
/// INVITE goes down the connection its REGISTER opened; it answers and its tone reaches
/// the customer (plain RTP from SIPp's side) through the relay. Returns baresip's log
/// and redial's.
fn tls_agent_call(mediaenc: Option<&str>) -> (String, Vec<String>) {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, key) = make_cert(certs.path(), "server");
    let mut w = World::new();
    w.sip_toml = "tls_listen = \"127.0.0.1:0\"".into();
    w.extra_toml = tls_toml(&cert, &key);
    let r = w.redial(&["alice"], "max_attempts = 1\nwrap_up = \"0s\"\n");
    let tls = tls_addr(&r);
    let customer = Phone::start(w.path("customer.rtp"), corpus("h011.wav"));
    let carrier = w.carrier_with("dial_carrier_answer_hangup.xml", 1, Some(&customer), &[("talk_ms", "8000")]);
    let dir = tempfile::tempdir().unwrap();
    let enc = mediaenc.map(|m| format!(";mediaenc={m}")).unwrap_or_default();
    let account = format!("<sip:alice@{tls};transport=tls>;auth_pass=alice-pw;regint=60;answermode=auto{enc}");
    let srtp_module = if mediaenc.is_some() { "module\tsrtp.so\n" } else { "" };
    let modules = format!(
        "{srtp_module}module\tausine.so\nmodule\taubridge.so\naudio_source\tausine,440\nausrc_srate\t48000\nausrc_channels\t2\naudio_player\taubridge,nil\n"
    );
    let (mut child, _port) = baresip(dir.path(), &ca, &account, &modules, 40);
    r.wait_json("/v1/agents", Duration::from_secs(15), |v| v["items"][0]["state"] == "available");
    let id = schedule(&r, json!({}));
    let cb = wait_final(&r, &id, Duration::from_secs(40));
    if mediaenc.is_some() {
        // The leg's task logs its SRTP figures as it closes, just after the call ends.
        r.logs.wait_for(&["SRTP leg closed"], Duration::from_secs(10));
    }
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(dir.path().join("baresip.log")).unwrap_or_default();
    assert_eq!(cb["status"], "completed", "{cb}\nattempts: {:?}\nbaresip:\n{log}\nredial:\n{}", attempts(&r, &id), r.logs.lines().join("\n"));
    assert!(carrier.wait().ok());
    // SIPp's customer phone speaks plain RTP: baresip's tone crossed the relay.
    assert!(customer.received() > 60, "the customer heard baresip: {} packets\n{log}", customer.received());
    (log, r.logs.lines())
}

/// baresip in best-effort SRTP mode (`mediaenc=srtp`) accepts redial's RTP/SAVP offer.
#[test]
fn a_baresip_agent_over_tls_answers_and_is_bridged() {
    let (log, redial) = tls_agent_call(Some("srtp"));
    assert!(log.contains("TLS"), "baresip used TLS:\n{log}");
    assert_srtp_flowed(&log, &redial);
}

/// baresip with mandatory SRTP (`mediaenc=srtp-mand`): redial offers SDES keys to an
/// agent registered over TLS, and bridges the agent's SRTP to the carrier's plain RTP.
#[test]
fn a_baresip_agent_with_mandatory_srtp_is_bridged_to_plain_rtp() {
    let (log, redial) = tls_agent_call(Some("srtp-mand"));
    assert_srtp_flowed(&log, &redial);
}

/// redial's SRTP leg verified and decrypted baresip's packets (≈ 50/s for several
/// seconds) and dropped none; baresip saw no SRTP errors.
fn assert_srtp_flowed(log: &str, redial: &[String]) {
    let line = redial.iter().find(|l| l.contains("SRTP leg closed")).unwrap_or_else(|| panic!("no SRTP leg:\n{}", redial.join("\n")));
    let field = |k: &str| -> u64 {
        let at = line.find(&format!("{k}=")).unwrap_or_else(|| panic!("{k} in {line}")) + k.len() + 1;
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    assert!(line.contains("AES_CM_128_HMAC_SHA1_80"), "{line}");
    assert!(field("received") > 100, "{line}");
    assert!(field("sent") > 100, "{line}");
    assert_eq!(field("dropped"), 0, "{line}");
    assert!(!log.contains("srtp: unprotect") && !log.contains("authentication failed"), "{log}");
}

/// `openssl s_server` as a carrier's TLS front on a fresh port, asking for a client
/// certificate signed by `client_ca`; what it receives goes to `log`.
fn carrier_tls(cert: &Path, key: &Path, client_ca: &Path, log: &Path) -> (std::process::Child, u16) {
    common::start_peer(|port| {
        let mut c = Command::new("openssl");
        c.args(["s_server", "-quiet", "-naccept", "1", "-Verify", "1", "-verify_return_error"])
            .arg("-accept")
            .arg(format!("127.0.0.1:{port}"))
            .arg("-cert")
            .arg(cert)
            .arg("-key")
            .arg(key)
            .arg("-CAfile")
            .arg(client_ca)
            .stdin(Stdio::piped())
            .stdout(std::fs::File::create(log).unwrap())
            .stderr(std::fs::File::create(log.with_extension("err")).unwrap());
        c
    })
}

fn wait_file_contains(path: &Path, needle: &str, timeout: Duration) -> bool {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        if std::fs::read_to_string(path).unwrap_or_default().contains(needle) {
            return true;
        }
        if std::time::Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// redial with a `sips:` trunk registering to the carrier on `port`, trusting
/// `ca` for the carrier's certificate and presenting its own client certificate.
fn registering_to_tls_carrier(ca: &Path, client_cert: &Path, client_key: &Path, port: u16) -> Redial {
    Setup::new()
        .extra_toml(&format!(
            "[tls]\nca = \"{}\"\nclient_cert = \"{}\"\nclient_key = \"{}\"\n",
            ca.display(),
            client_cert.display(),
            client_key.display()
        ))
        .profile(
            "secure",
            &format!("proxy = \"sips:127.0.0.1:{port}\"\ndomain = \"carrier.test\"\nregister = true\nusername = \"trunk1\"\npassword = \"s3cret\"\noptions_ping = \"0\"\n"),
        )
        .start()
}

/// A `transport = "tls"` trunk: redial verifies the carrier's certificate against
/// `tls.ca`, presents its client certificate (the carrier requires one) and sends its
/// REGISTER inside the TLS session with a TLS Via.
#[test]
fn registers_to_a_carrier_over_mutual_tls() {
    let certs = tempfile::tempdir().unwrap();
    let (carrier_ca, carrier_cert, carrier_key) = make_cert(certs.path(), "carrier");
    let (client_ca, client_cert, client_key) = make_cert(certs.path(), "client");
    let log = certs.path().join("carrier.log");
    let (mut carrier, port) = carrier_tls(&carrier_cert, &carrier_key, &client_ca, &log);
    let r = registering_to_tls_carrier(&carrier_ca, &client_cert, &client_key, port);
    let got = wait_file_contains(&log, "REGISTER sip:carrier.test", Duration::from_secs(15));
    let _ = carrier.kill();
    let _ = carrier.wait();
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let err = std::fs::read_to_string(log.with_extension("err")).unwrap_or_default();
    assert!(got, "carrier saw:\n{text}\n{err}\nredial:\n{}", r.logs.lines().join("\n"));
    assert!(text.contains("Via: SIP/2.0/TLS "), "{text}");
    assert!(text.contains(";alias"), "RFC 5923 alias offered: {text}");
    assert!(text.contains("transport=tls"), "a TLS Contact: {text}");
}

/// A carrier whose certificate is not signed by `tls.ca` gets no request: the handshake
/// fails on redial's side and is logged.
#[test]
fn a_carrier_with_an_untrusted_certificate_is_refused() {
    let certs = tempfile::tempdir().unwrap();
    let (_, carrier_cert, carrier_key) = make_cert(certs.path(), "carrier");
    let (other_ca, _) = make_ca(certs.path(), "other");
    let (client_ca, client_cert, client_key) = make_cert(certs.path(), "client");
    let log = certs.path().join("carrier.log");
    let (mut carrier, port) = carrier_tls(&carrier_cert, &carrier_key, &client_ca, &log);
    let r = registering_to_tls_carrier(&other_ca, &client_cert, &client_key, port);
    let refused = r.logs.wait_for(&["tls connect failed", &format!("127.0.0.1:{port}")], Duration::from_secs(15));
    let _ = carrier.kill();
    let _ = carrier.wait();
    assert!(refused.is_some(), "{}", r.logs.lines().join("\n"));
    assert!(!std::fs::read_to_string(&log).unwrap_or_default().contains("REGISTER"));
}

/// The subject of the certificate served at `addr` (as `openssl s_client` prints it).
fn served_subject(addr: SocketAddr) -> String {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-brief"])
        .stdin(Stdio::null())
        .output()
        .expect("run openssl s_client");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    text.lines().find(|l| l.contains("Peer certificate:")).unwrap_or_else(|| panic!("no peer certificate in:\n{text}")).to_string()
}

/// SIGHUP swaps in a renewed certificate for new TLS connections; a broken `[tls]` file
/// keeps the old one and names the key.
#[test]
fn sighup_reloads_the_tls_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let ca = make_ca(certs.path(), "ca");
    let (cert, key) = make_leaf(certs.path(), &ca, "first");
    let r = Setup::new().sip_toml("tls_listen = \"127.0.0.1:0\"").extra_toml(&tls_toml(&cert, &key)).start();
    let tls = tls_addr(&r);
    assert!(served_subject(tls).contains("CN = first"), "{}", served_subject(tls));
    // A renewed certificate written over the same files.
    let (renewed, renewed_key) = make_leaf(certs.path(), &ca, "renewed");
    std::fs::copy(&renewed, &cert).unwrap();
    std::fs::copy(&renewed_key, &key).unwrap();
    unsafe { libc::kill(r.pid() as i32, libc::SIGHUP) };
    assert!(r.logs.wait_for(&["TLS certificates reloaded"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));
    assert!(served_subject(tls).contains("CN = renewed"), "{}", served_subject(tls));
    // A key file that is not a key: nothing applied, the problem named by key.
    std::fs::write(&key, "garbage\n").unwrap();
    unsafe { libc::kill(r.pid() as i32, libc::SIGHUP) };
    assert!(r.logs.wait_for(&["SIGHUP: not reloaded", "key=tls.key"], Duration::from_secs(10)).is_some(), "{}", r.logs.lines().join("\n"));
    assert!(served_subject(tls).contains("CN = renewed"));
}
