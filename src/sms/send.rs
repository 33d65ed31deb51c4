//! One text to a callback's customer through its queue's trunk: a SIP
//! MESSAGE per part (RFC 3428, `text/plain;charset=UTF-8`) to
//! `sip:<phone>@<trunk domain>`, from the callback's caller id, with the
//! trunk's digest credentials for a 401/407 (as for INVITE). Shared by the
//! texts that follow events and by `"channel": "sms"` callbacks.

use std::collections::BTreeMap;

use crate::config::Config;
use crate::scheduler::model::Callback;
use crate::sip::calls::pager::{split, MessageRequest, DEFAULT_MAX_TEXT};
use crate::sip::calls::{CallControl, Credentials};
use crate::sip::Peer;

/// How a text went: the parts tried (stopping at the first failure) and
/// the final SIP status of the last one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    pub parts: u32,
    pub status: u16,
}

/// Why nothing could be sent; `status` 0 in a [`super::TextRecord`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Unsent {
    #[error("the queue has no trunk (`profile`) to send texts through")]
    NoTrunk,
    #[error("the trunk's proxy did not resolve")]
    NoProxy,
    #[error("the text cannot be split into parts of {max} bytes", max = DEFAULT_MAX_TEXT)]
    Unsplittable,
}

impl Sent {
    pub fn accepted(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// Sends `text` to `cb`'s phone through its queue's trunk.
pub async fn send(cfg: &Config, calls: &CallControl, proxies: &BTreeMap<String, Peer>, cb: &Callback, text: &str) -> Result<Sent, Unsent> {
    let queue = cfg.queue(&cb.queue);
    let profile = queue.and_then(|q| q.profile.as_deref()).and_then(|p| cfg.profiles.get(p)).ok_or(Unsent::NoTrunk)?;
    let dest = proxies.get(&profile.name).copied().ok_or(Unsent::NoProxy)?;
    let parts = split(text, DEFAULT_MAX_TEXT).ok_or(Unsent::Unsplittable)?;
    let from = cb.caller_id.clone().or_else(|| queue.and_then(|q| q.caller_id.clone())).or_else(|| profile.caller_id.clone()).unwrap_or_else(|| "anonymous".into());
    let credentials = match (&profile.username, &profile.password) {
        (Some(u), Some(p)) => Some(Credentials { username: u.clone(), password: p.clone() }),
        _ => None,
    };
    let uri = format!("sip:{}@{}", cb.phone, profile.domain);
    let mut sent = Sent { parts: 0, status: 0 };
    for part in parts {
        sent.parts += 1;
        let req = MessageRequest {
            request_uri: uri.clone(),
            to: format!("<{uri}>"),
            from_user: from.clone(),
            from_host: profile.domain.clone(),
            destination: dest,
            text: part,
            credentials: credentials.clone(),
            headers: vec![("X-Redial-Callback-Id".into(), cb.id.to_string())],
        };
        sent.status = match calls.message(req).await {
            Ok(Ok(s)) | Ok(Err(s)) => s,
            // The endpoint stopped: a transport failure, retried like one.
            Err(_) => 503,
        };
        if !sent.accepted() {
            break;
        }
    }
    Ok(sent)
}
