//! A world for call tests: a carrier SIPp port, redial with one queue `q`
//! on that carrier, SIPp agents' softphones, test phones for RTP, and
//! helpers over the API.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use super::phone::{ulaw_wav, Phone};
use super::{PortBlock, Redial, Setup, Sipp, SippChild};

pub const PHONE: &str = "+15551230001";

/// A test world: a carrier SIPp port, a queue, one or more agents.
pub struct World {
    pub carrier_port: u16,
    pub dir: tempfile::TempDir,
    pub ports: PortBlock,
    /// `media.timeout`, when a test needs a short one.
    pub media_timeout: Option<&'static str>,
    /// More keys for `[sip]` (e.g. `tls_listen`).
    pub sip_toml: String,
    /// More tables for `redial.toml` (e.g. `[tls]`).
    pub extra_toml: String,
}

impl World {
    pub fn new() -> Self {
        Self { carrier_port: super::peer_port(), dir: tempfile::tempdir().unwrap(), ports: PortBlock::claim(), media_timeout: None, sip_toml: String::new(), extra_toml: String::new() }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// redial with one queue `q` (always open) on the carrier trunk.
    pub fn redial(&self, agents: &[&str], queue_toml: &str) -> Redial {
        self.redial_with(agents, queue_toml, "127.0.0.1", "")
    }

    /// As `redial`, with the carrier at `carrier_ip` and more profile lines.
    pub fn redial_with(&self, agents: &[&str], queue_toml: &str, carrier_ip: &str, profile_extra: &str) -> Redial {
        self.redial_env(agents, queue_toml, carrier_ip, profile_extra, &[])
    }

    /// As `redial_with`, with environment variables for the process (the
    /// log format, its filter).
    pub fn redial_env(&self, agents: &[&str], queue_toml: &str, carrier_ip: &str, profile_extra: &str, env: &[(&str, &str)]) -> Redial {
        self.redial_window(agents, "UTC", "mon-sun 00:00-24:00", queue_toml, carrier_ip, profile_extra, env)
    }

    /// As `redial_env`, with the queue's timezone and calling hours.
    #[allow(clippy::too_many_arguments)]
    pub fn redial_window(&self, agents: &[&str], timezone: &str, hours: &str, queue_toml: &str, carrier_ip: &str, profile_extra: &str, env: &[(&str, &str)]) -> Redial {
        let mut s = Setup::new().with_token().sip_toml(&self.sip_toml).extra_toml(&self.extra_toml);
        for (k, v) in env {
            s = s.env(k, v);
        }
        for a in agents {
            s = s.extra_toml(&format!("[[agents]]\nid = \"{a}\"\npassword = \"{a}-pw\"\nqueues = [\"q\"]\n"));
        }
        let prompts = super::manifest_dir().join("prompts");
        s = s.extra_toml(&format!("[media]\nports = \"{}\"\nprompts = \"{}\"\n", self.ports.range, prompts.display()));
        if let Some(t) = self.media_timeout {
            s = s.extra_toml(&format!("timeout = \"{t}\"\n"));
        }
        s.profile(
            "carrier",
            &format!(
                "proxy = \"sip:{carrier_ip}:{}\"\ndomain = \"carrier.test\"\nregister = false\nusername = \"trunk1\"\npassword = \"s3cret\"\n\
                 caller_id = \"+15550100\"\ncodecs = [\"PCMU\", \"PCMA\"]\noptions_ping = \"0\"\n{profile_extra}",
                self.carrier_port
            ),
        )
        .extra_toml(&format!(
            "[[queues]]\nname = \"q\"\nprofile = \"carrier\"\ntimezone = \"{timezone}\"\nhours = [\"{hours}\"]\n{queue_toml}\n"
        ))
        .start()
    }

    /// The carrier side: SIPp serving `scenario` for `calls` INVITEs, its RTP
    /// going to `phone`.
    pub fn carrier(&self, scenario: &str, calls: u32, phone: Option<&Phone>) -> SippChild {
        self.carrier_with(scenario, calls, phone, &[])
    }

    /// As `carrier`, with more scenario variables (`-set`).
    pub fn carrier_with(&self, scenario: &str, calls: u32, phone: Option<&Phone>, vars: &[(&str, &str)]) -> SippChild {
        let mut s = Sipp::new(scenario).port(self.carrier_port).calls(calls).timeout(Duration::from_secs(60)).trace_msg();
        s = s.set("dir", self.dir.path().to_str().unwrap());
        s = s.set("rtp_port", &phone.map_or(9, |p| p.port).to_string());
        for (k, v) in vars {
            s = s.set(k, v);
        }
        s.spawn()
    }

    /// A carrier's caller: SIPp from `from_ip` calling `did` at redial with
    /// `scenario` as `caller`, its RTP going to `phone`.
    pub fn caller(&self, r: &Redial, scenario: &str, from_ip: &str, did: &str, caller: &str, phone: Option<&Phone>) -> SippChild {
        Sipp::new(scenario)
            .local_ip(from_ip)
            .remote(r.sip)
            .timeout(Duration::from_secs(60))
            .trace_msg()
            .set("dir", self.dir.path().to_str().unwrap())
            .set("rtp_port", &phone.map_or(9, |p| p.port).to_string())
            .set("did", did)
            .set("caller", caller)
            .spawn()
    }

    /// An agent softphone: one SIPp registers `agent` with a Contact on the
    /// port of a second SIPp that takes the calls with `scenario`.
    pub fn agent(&self, r: &Redial, agent: &str, scenario: &str, calls: u32, phone: Option<&Phone>, talk_ms: u32) -> SippChild {
        let child = Sipp::new(scenario)
            .calls(calls)
            .timeout(Duration::from_secs(60))
            .trace_msg()
            .set("dir", self.dir.path().to_str().unwrap())
            .set("rtp_port", &phone.map_or(9, |p| p.port).to_string())
            .set("talk_ms", &talk_ms.to_string())
            .spawn();
        let port = child.port();
        let reg = Sipp::new("dial_agent_register.xml")
            .remote(r.sip)
            .args_auth(agent, &format!("{agent}-pw"))
            .set("contact_port", &port.to_string())
            .run();
        assert!(reg.ok(), "agent {agent} registration: {reg}");
        r.wait_json("/v1/agents", Duration::from_secs(5), |v| {
            v["items"].as_array().unwrap().iter().any(|a| a["id"] == agent && a["state"] == "available")
        });
        child
    }
}

pub fn corpus(name: &str) -> Vec<u8> {
    ulaw_wav(&super::manifest_dir().join("test-media/amd").join(name))
}

pub fn schedule(r: &Redial, extra: Value) -> String {
    let mut body = json!({"phone": PHONE, "queue": "q"});
    body.as_object_mut().unwrap().extend(extra.as_object().unwrap().clone());
    let (s, v) = r.api("POST", "/v1/callbacks", Some(body));
    assert_eq!(s, 201, "{v}");
    v["id"].as_str().unwrap().to_string()
}

pub fn wait_final(r: &Redial, id: &str, timeout: Duration) -> Value {
    r.wait_json(&format!("/v1/callbacks/{id}"), timeout, |v| !matches!(v["status"].as_str(), Some("scheduled" | "in_progress")))
}

pub fn attempts(r: &Redial, id: &str) -> Vec<Value> {
    let (s, v) = r.api("GET", &format!("/v1/callbacks/{id}/attempts"), None);
    assert_eq!(s, 200, "{v}");
    v["items"].as_array().unwrap().clone()
}

pub fn ms(v: &Value) -> i64 {
    match v {
        Value::Number(n) => n.as_i64().unwrap(),
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s).unwrap_or_else(|e| panic!("{s}: {e}")).timestamp_millis(),
        other => panic!("not a time: {other}"),
    }
}

/// The first corpus file with this label whose greeting ends in a beep.
pub fn corpus_file_with_label(label: &str) -> String {
    let csv = std::fs::read_to_string(super::manifest_dir().join("test-media/amd/labels.csv")).unwrap();
    csv.lines()
        .skip(1)
        .map(|l| l.split(',').collect::<Vec<_>>())
        .find(|f| f[1] == label && !f[3].is_empty() && f[14] == "ulaw" && f[5] == "0")
        .map(|f| f[0].to_string())
        .expect("a corpus file")
}
