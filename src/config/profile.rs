//! `sip-profiles/<name>.toml`: one carrier trunk.

use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::problem::{parse_duration, read_toml, Collector, Problem};
use crate::e164::is_e164;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
    /// SIP over WebSocket (RFC 7118): only for agents whose browser connected to
    /// `sip.ws_listen`; messages to them go down that connection.
    Ws,
}

impl std::fmt::Display for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
            Transport::Ws => "ws",
        })
    }
}

/// A validated carrier trunk.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// File stem: the name queues refer to.
    pub name: String,
    /// Where requests to this carrier go, e.g. `sip:127.0.0.1:5080`.
    pub proxy: String,
    pub proxy_host: String,
    pub proxy_port: u16,
    /// Host part of From/To/Request-URI.
    pub domain: String,
    pub register: bool,
    pub username: Option<String>,
    pub password: Option<String>,
    /// Requested registration lifetime.
    pub expires: Duration,
    pub transport: Transport,
    pub caller_id: Option<String>,
    pub codecs: Vec<String>,
    pub dids: Vec<String>,
    pub inbound_queue: Option<String>,
    /// OPTIONS keep-alive interval; `None` when disabled (`0`).
    pub options_ping: Option<Duration>,
    /// Most calls up at once through this trunk; 0 = no limit.
    pub max_calls: u32,
    /// Most new outbound calls per second; 0 = no limit.
    pub max_cps: f64,
    /// Inbound calls from this carrier may come from any address when they
    /// prove `username`/`password` by digest (redial challenges with 407).
    pub inbound_auth: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    proxy: String,
    domain: Option<String>,
    #[serde(default)]
    register: bool,
    username: Option<String>,
    password: Option<String>,
    expires: Option<u32>,
    transport: Option<String>,
    caller_id: Option<String>,
    codecs: Option<Vec<String>>,
    #[serde(default)]
    dids: Vec<String>,
    inbound_queue: Option<String>,
    options_ping: Option<String>,
    #[serde(default)]
    max_calls: u32,
    #[serde(default)]
    max_cps: f64,
    #[serde(default)]
    inbound_auth: bool,
}

pub const SUPPORTED_CODECS: &[&str] = &["PCMU", "PCMA", "opus"];

/// Loads one profile, pushing its problems. Returns `None` if it is unusable.
pub(crate) fn load(file: &Path, problems: &mut Vec<Problem>) -> Option<Profile> {
    let raw: RawProfile = match read_toml(file) {
        Ok(r) => r,
        Err(p) => {
            problems.push(p);
            return None;
        }
    };
    let name = file.file_stem()?.to_string_lossy().into_owned();
    let mut c = Collector { file, problems };
    let before = c.problems.len();

    let (proxy_host, proxy_port) = c.check("proxy", parse_proxy(&raw.proxy)).unwrap_or_default();
    let transport = match raw.transport.as_deref().map(str::to_ascii_lowercase).as_deref() {
        None | Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some(other) => {
            c.push("transport", format!("`{other}` is not a transport (use \"udp\" or \"tcp\")"));
            Transport::Udp
        }
    };
    if raw.register && (raw.username.is_none() || raw.password.is_none()) {
        let key = if raw.username.is_none() { "username" } else { "password" };
        c.push(key, "required when register = true");
    }
    let expires = raw.expires.unwrap_or(3600);
    if raw.register && !(10..=86_400).contains(&expires) {
        c.push("expires", format!("{expires} is out of range (10 to 86400 seconds)"));
    }
    if let Some(cid) = &raw.caller_id {
        if !is_e164(cid) {
            c.push("caller_id", format!("`{cid}` is not an E.164 number like +15550100"));
        }
    }
    let codecs = raw.codecs.unwrap_or_else(|| vec!["PCMU".into(), "PCMA".into()]);
    if codecs.is_empty() {
        c.push("codecs", "at least one codec is needed");
    }
    for (i, codec) in codecs.iter().enumerate() {
        if !SUPPORTED_CODECS.iter().any(|s| s.eq_ignore_ascii_case(codec)) {
            c.push(format!("codecs[{i}]"), format!("`{codec}` is not supported (use {})", SUPPORTED_CODECS.join(", ")));
        }
    }
    for (i, did) in raw.dids.iter().enumerate() {
        if !is_e164(did) {
            c.push(format!("dids[{i}]"), format!("`{did}` is not an E.164 number like +15550100"));
        }
    }
    let options_ping = match raw.options_ping.as_deref() {
        None => Some(Duration::from_secs(30)),
        Some("0") => None,
        Some(s) => c.check("options_ping", parse_duration(s)).filter(|d| !d.is_zero()),
    };
    if raw.inbound_auth && (raw.username.is_none() || raw.password.is_none()) {
        let key = if raw.username.is_none() { "username" } else { "password" };
        c.push(key, "required when inbound_auth = true");
    }
    if !raw.max_cps.is_finite() || raw.max_cps < 0.0 {
        c.push("max_cps", format!("{} must be 0 (no limit) or a positive number of calls per second", raw.max_cps));
    }
    if c.problems.len() > before {
        return None;
    }
    Some(Profile {
        name,
        domain: raw.domain.unwrap_or_else(|| proxy_host.clone()),
        proxy: raw.proxy,
        proxy_host,
        proxy_port,
        register: raw.register,
        username: raw.username,
        password: raw.password,
        expires: Duration::from_secs(expires.into()),
        transport,
        caller_id: raw.caller_id,
        codecs,
        dids: raw.dids,
        inbound_queue: raw.inbound_queue,
        options_ping,
        max_calls: raw.max_calls,
        max_cps: raw.max_cps,
        inbound_auth: raw.inbound_auth,
    })
}

/// `sip:host[:port]` (or `host[:port]`) → host and port (default 5060).
fn parse_proxy(proxy: &str) -> Result<(String, u16), String> {
    let bad = || format!("`{proxy}` is not a SIP URI like sip:192.0.2.10:5060");
    let rest = proxy.strip_prefix("sip:").unwrap_or(proxy);
    let rest = rest.split(';').next().unwrap_or_default();
    if rest.is_empty() || rest.contains('@') {
        return Err(bad());
    }
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (h, tail) = v6.split_once(']').ok_or_else(bad)?;
        (h.to_string(), tail.strip_prefix(':'))
    } else {
        match rest.rsplit_once(':') {
            Some((h, p)) => (h.to_string(), Some(p)),
            None => (rest.to_string(), None),
        }
    };
    if host.is_empty() || host.chars().any(|ch| ch.is_whitespace()) {
        return Err(bad());
    }
    let port = match port {
        None => 5060,
        Some(p) => p.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(bad)?,
    };
    Ok((host, port))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proxy_forms() {
        assert_eq!(parse_proxy("sip:127.0.0.1:5080"), Ok(("127.0.0.1".into(), 5080)));
        assert_eq!(parse_proxy("sip:carrier.test"), Ok(("carrier.test".into(), 5060)));
        assert_eq!(parse_proxy("sip:[::1]:5070;transport=tcp"), Ok(("::1".into(), 5070)));
        assert!(parse_proxy("sip:").is_err());
        assert!(parse_proxy("sip:host:0").is_err());
        assert!(parse_proxy("sip:user@host").is_err());
        assert!(parse_proxy("sip:host:99999").is_err());
    }
}
