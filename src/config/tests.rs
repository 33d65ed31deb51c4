use super::*;

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, text).unwrap();
    p
}

const FULL: &str = r#"
[sip]
listen = "127.0.0.1:5070"
realm = "cc"
digest_algorithms = ["SHA-256", "MD5"]
t1 = "100ms"

[media]
addr = "127.0.0.1"
ports = "30000-30099"

[http]
listen = "127.0.0.1:9090"

[storage]
path = "db/x.redb"

[[tokens]]
name = "crm"
secret = "change-me"
scopes = ["callbacks:read", "callbacks:write"]

[[agents]]
id = "alice"
password = "alice-pw"
queues = ["support"]

[[queues]]
name = "support"
mode = "agent_first"
timezone = "America/New_York"
hours = ["mon-fri 09:00-20:00", "sat 10:00-14:00"]
profile = "carrier1"
caller_id = "+15550100"
max_attempts = 5
retry_delay = "2m"
on_machine = "message:vm.wav"
on_ownership_expiry = "cancel"
window_close = "cancel"
callback_detection = true
"#;

const PROFILE: &str = r#"
proxy = "sip:127.0.0.1:5080"
domain = "carrier.test"
register = true
username = "trunk1"
password = "s3cret"
expires = 300
transport = "tcp"
caller_id = "+15550100"
dids = ["+15550100"]
inbound_queue = "support"
options_ping = "0"
"#;

#[test]
fn defaults_match_design() {
    let c = Config::defaults();
    assert_eq!(c.sip.listen.to_string(), "127.0.0.1:5060");
    assert_eq!(c.media.ports, 20000..=20999);
    assert_eq!(c.http.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.storage_path, PathBuf::from("data/redial.redb"));
    assert_eq!(c.queues.len(), 1);
    assert_eq!(c.queues[0].name, "default");
    assert_eq!(c.queues[0].timezone, chrono_tz::UTC);
}

#[test]
fn loads_full_example() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "redial.toml", FULL);
    write(d.path(), "sip-profiles/carrier1.toml", PROFILE);
    let c = Config::load(Some(&f)).unwrap();
    assert_eq!(c.sip.digest_algorithms, vec![DigestAlgorithm::Sha256, DigestAlgorithm::Md5]);
    assert_eq!(c.sip.timers.t1, Duration::from_millis(100));
    assert_eq!(c.storage_path, d.path().join("db/x.redb"));
    let q = c.queue("support").unwrap();
    assert_eq!(q.mode, DialMode::AgentFirst);
    assert_eq!(q.max_attempts, 5);
    assert_eq!(q.retry_delay, Duration::from_secs(120));
    assert_eq!(q.on_machine, OnMachine::Message("vm.wav".into()));
    assert_eq!(q.window_close, WindowClose::Cancel);
    assert!(q.callback_detection);
    assert!(!Config::defaults().queues[0].callback_detection, "off unless configured");
    let p = &c.profiles["carrier1"];
    assert_eq!((p.proxy_host.as_str(), p.proxy_port), ("127.0.0.1", 5080));
    assert_eq!(p.transport, Transport::Tcp);
    assert_eq!(p.options_ping, None);
    assert_eq!(c.tokens[0].scopes, vec![Scope::CallbacksRead, Scope::CallbacksWrite]);
}

#[test]
fn every_problem_is_named_by_file_and_key() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "redial.toml",
        r#"
[sip]
listen = "nowhere"
[[queues]]
name = "q"
timezone = "Mars/Olympus"
hours = ["funday 09:00-10:00"]
retry_delay = "soon"
profile = "missing"
[[agents]]
id = "bob"
password = "pw"
queues = ["nope"]
"#,
    );
    write(d.path(), "sip-profiles/bad.toml", "proxy = \"sip:\"\nregister = true\ntransport = \"sctp\"\n");
    let err = Config::load(Some(&f)).unwrap_err();
    let text = err.to_string();
    for needle in [
        "redial.toml: sip.listen:",
        "redial.toml: queues[0].timezone:",
        "redial.toml: queues[0].hours:",
        "redial.toml: queues[0].retry_delay:",
        "redial.toml: queues[0].profile:",
        "redial.toml: agents[0].queues[0]:",
        "bad.toml: proxy:",
        "bad.toml: transport:",
        "bad.toml: username:",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn unknown_key_and_wrong_type_are_named() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "redial.toml", "[sip]\nlisten = 5060\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].key, "sip.listen", "{e}");
    let f = write(d.path(), "redial.toml", "[sip]\nlistn = \"x\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert!(e.0[0].message.contains("unknown field `listn`"), "{e}");
    let f = write(d.path(), "redial.toml", "[sip\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert!(e.0[0].message.starts_with("not valid TOML"), "{e}");
}

#[test]
fn missing_profiles_dir_is_an_error_only_when_configured() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "redial.toml", "[sip]\nrealm = \"x\"\n");
    assert!(Config::load(Some(&f)).unwrap().profiles.is_empty());
    let f = write(d.path(), "redial.toml", "[profiles]\ndir = \"trunks\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert_eq!(e.0[0].key, "profiles.dir", "{e}");
}

#[test]
fn media_timeout_prompts_and_amd_keys() {
    let c = Config::defaults();
    assert_eq!(c.media.timeout, Duration::from_secs(60));
    assert_eq!(c.media.prompts, PathBuf::from("prompts"));
    assert_eq!(c.amd, crate::amd::AmdConfig::default());

    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "redial.toml",
        "[media]\ntimeout = \"15s\"\nprompts = \"audio/prompts\"\n[amd]\nmachine_greeting_ms = 2400\nsilence_result = \"machine\"\n",
    );
    let c = Config::load(Some(&f)).unwrap();
    assert_eq!(c.media.timeout, Duration::from_secs(15));
    assert_eq!(c.media.prompts, d.path().join("audio/prompts"));
    assert_eq!(c.amd.machine_greeting_ms, 2400);
    assert_eq!(c.amd.silence_result, crate::amd::AmdResult::Machine);
    assert_eq!(c.amd.word_gap_ms, crate::amd::AmdConfig::default().word_gap_ms, "unset keys keep their default");
}

#[test]
fn media_and_amd_problems_are_named() {
    let d = tempfile::tempdir().unwrap();
    let cases = [
        ("[media]\ntimeout = \"soon\"\n", "media.timeout"),
        ("[media]\ntimeout = \"10ms\"\n", "media.timeout"),
        ("[amd]\nspeech_margin_db = 99.0\n", "amd.speech_margin_db"),
        ("[amd]\nbeep_min_hz = 1500.0\nbeep_max_hz = 1000.0\n", "amd.beep_min_hz"),
        ("[amd]\nmachine_greeting = 1\n", "amd.machine_greeting"),
        ("[amd]\nword_gap_ms = \"long\"\n", "amd.word_gap_ms"),
    ];
    for (text, key) in cases {
        let f = write(d.path(), "redial.toml", text);
        let e = Config::load(Some(&f)).unwrap_err();
        assert_eq!(e.0.len(), 1, "{text}: {e}");
        assert_eq!(e.0[0].key, key, "{text}: {e}");
        assert_eq!(e.0[0].file, f);
    }
}

#[test]
fn ws_listen_is_off_by_default_and_checked() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(Config::defaults().sip.ws_listen, None);
    let f = write(d.path(), "redial.toml", "[sip]\nws_listen = \"127.0.0.1:8088\"\n");
    let c = Config::load(Some(&f)).unwrap();
    assert_eq!(c.sip.ws_listen, Some("127.0.0.1:8088".parse().unwrap()));
    let f = write(d.path(), "redial.toml", "[sip]\nws_listen = \"somewhere\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert_eq!(e.0[0].key, "sip.ws_listen", "{e}");
    let f = write(d.path(), "redial.toml", "[sip]\nlisten = \"127.0.0.1:5070\"\nws_listen = \"127.0.0.1:5070\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert_eq!(e.0[0].key, "sip.ws_listen", "{e}");
}

#[test]
fn wss_listen_needs_a_server_certificate() {
    let d = tempfile::tempdir().unwrap();
    assert_eq!(Config::defaults().sip.wss_listen, None);
    let f = write(d.path(), "redial.toml", "[sip]\nwss_listen = \"127.0.0.1:8089\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert_eq!(e.0[0].key, "sip.wss_listen", "{e}");
    assert!(e.to_string().contains("tls.cert"), "{e}");
    let f = write(d.path(), "redial.toml", "[sip]\nws_listen = \"127.0.0.1:8088\"\nwss_listen = \"127.0.0.1:8088\"\n");
    let e = Config::load(Some(&f)).unwrap_err();
    assert!(e.0.iter().any(|x| x.key == "sip.wss_listen"), "{e}");
}

#[test]
fn tls_problems_are_named_by_key() {
    let d = tempfile::tempdir().unwrap();
    write(d.path(), "key.pem", "not a key\n");
    let f = write(
        d.path(),
        "redial.toml",
        "[sip]\ntls_listen = \"127.0.0.1:5061\"\n[tls]\nkey = \"key.pem\"\nca = \"missing.pem\"\nclient_cert = \"key.pem\"\n",
    );
    write(d.path(), "sip-profiles/plain.toml", "proxy = \"sips:carrier.test\"\ntransport = \"udp\"\n");
    let text = Config::load(Some(&f)).unwrap_err().to_string();
    for needle in [
        "redial.toml: tls.cert: required with tls.key",
        "redial.toml: tls.key:",
        "redial.toml: tls.ca: cannot read",
        "redial.toml: tls.client_key: required with tls.client_cert",
        "redial.toml: sip.tls_listen: needs tls.cert and tls.key",
        "plain.toml: transport: `udp` cannot reach a sips: proxy",
    ] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn a_sips_proxy_means_tls_on_5061() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "redial.toml", "");
    write(d.path(), "sip-profiles/secure.toml", "proxy = \"sips:carrier.test\"\n");
    let cfg = Config::load(Some(&f)).unwrap();
    let p = &cfg.profiles["secure"];
    assert_eq!((p.transport, p.proxy_port), (Transport::Tls, 5061));
}

#[test]
fn overload_keys_are_read_and_bad_ones_named() {
    let d = tempfile::tempdir().unwrap();
    let f = write(d.path(), "redial.toml", "[sip.overload]\nmax_transactions = 50\nmax_kept_bytes = 1_000_000\nmax_call_setups = 5\nretry_after = \"9s\"\nresume_at = 0.5\nmax_invite_delay = \"40ms\"\n");
    let c = Config::load(Some(&f)).unwrap();
    let o = &c.sip.overload;
    assert_eq!((o.max_transactions, o.max_kept_bytes, o.max_call_setups, o.max_queued, o.retry_after.as_secs(), o.resume_at), (50, 1_000_000, 5, 4_000, 9, 0.5));
    assert_eq!(o.max_invite_delay, Duration::from_millis(40));
    assert_eq!(Config::load(None).unwrap().sip.overload.max_invite_delay, Duration::from_millis(100));
    let f = write(d.path(), "redial.toml", "[sip.overload]\nmax_queued = 0\nretry_after = \"500ms\"\nresume_at = 1.5\nmax_invite_delay = \"0s\"\n");
    let text = Config::load(Some(&f)).unwrap_err().to_string();
    for needle in ["redial.toml: sip.overload.max_queued:", "redial.toml: sip.overload.retry_after:", "redial.toml: sip.overload.resume_at:", "redial.toml: sip.overload.max_invite_delay:"] {
        assert!(text.contains(needle), "missing `{needle}` in:\n{text}");
    }
}

#[test]
fn cluster_mode_needs_postgres_a_url_and_a_node_name() {
    let d = tempfile::tempdir().unwrap();
    let f = write(
        d.path(),
        "redial.toml",
        "[storage]\nbackend = \"postgres\"\nurl = \"host=/tmp user=redial\"\n[cluster]\nnode = \"a-1\"\nshards = 16\nlease = \"6s\"\nrenew_every = \"2s\"\nmargin = \"1s\"\n",
    );
    let c = Config::load(Some(&f)).unwrap();
    assert_eq!(c.backend, Backend::Postgres { url: "host=/tmp user=redial".into() });
    let cl = c.cluster.unwrap();
    assert_eq!((cl.node.as_str(), cl.shards, cl.lease), ("a-1", 16, Duration::from_secs(6)));
    assert_eq!(Config::load(None).unwrap().backend, Backend::Redb);

    let cases: &[(&str, &str)] = &[
        ("[storage]\nbackend = \"mysql\"\n", "redial.toml: storage.backend: `mysql` is not a backend"),
        ("[storage]\nbackend = \"postgres\"\n[cluster]\nnode = \"a\"\n", "redial.toml: storage.url: is required"),
        ("[storage]\nbackend = \"postgres\"\nurl = \"host=/tmp\"\n", "redial.toml: cluster.node: is required"),
        ("[storage]\nurl = \"host=/tmp\"\n", "redial.toml: storage.url: is only used with backend"),
        ("[cluster]\nnode = \"a\"\n", "redial.toml: cluster: cluster mode needs storage.backend"),
        ("[storage]\nbackend = \"postgres\"\nurl = \"x\"\n[cluster]\nnode = \"a b\"\n", "redial.toml: cluster.node: `a b` must be"),
        ("[storage]\nbackend = \"postgres\"\nurl = \"x\"\n[cluster]\nnode = \"a\"\nshards = 0\n", "redial.toml: cluster.shards: 0 is out of range"),
        ("[storage]\nbackend = \"postgres\"\nurl = \"x\"\n[cluster]\nnode = \"a\"\nlease = \"2s\"\n", "redial.toml: cluster.lease: must be longer"),
        ("[storage]\nbackend = \"postgres\"\nurl = \"x\"\n[cluster]\nnode = \"a\"\nmargin = \"soon\"\n", "redial.toml: cluster.margin: `soon` is not a duration"),
    ];
    for (text, needle) in cases {
        let f = write(d.path(), "redial.toml", text);
        let e = Config::load(Some(&f)).unwrap_err().to_string();
        assert!(e.contains(needle), "`{needle}` missing in:\n{e}");
    }
}
