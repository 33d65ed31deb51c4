//! One HTTP POST of a signed event, on a blocking thread (ureq), with a
//! bounded time, no redirects and a bounded read of the answer.

use std::time::Duration;

use super::sign;

/// The whole exchange (connect, send, answer) must finish within this.
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// At most this much of a receiver's answer is read (and then dropped).
const MAX_ANSWER: u64 = 64 * 1024;

/// A client shared by every delivery: connection reuse per receiver.
pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(TIMEOUT))
        // A redirect is a receiver's mistake: following it could loop or
        // send the event somewhere the operator did not configure.
        .max_redirects(0)
        .http_status_as_error(false)
        .user_agent(concat!("redial/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// POSTs `body` to `url` with its signature. `Ok` only for a 2xx answer;
/// anything else (another status, a timeout, a refused connection) is an
/// error to retry, with a short reason for the delivery log.
pub fn post(agent: &ureq::Agent, url: &str, secret: &str, event_id: &str, body: &[u8]) -> Result<u16, String> {
    let resp = agent
        .post(url)
        .header("Content-Type", "application/json")
        .header(sign::HEADER, sign::signature(secret, body))
        .header("X-Redial-Event-Id", event_id)
        .send(body)
        .map_err(|e| e.to_string())?;
    let status = resp.status().as_u16();
    let mut answer = resp.into_body();
    let _ = answer.with_config().limit(MAX_ANSWER).read_to_vec();
    if (200..300).contains(&status) {
        Ok(status)
    } else {
        Err(format!("HTTP {status}"))
    }
}
