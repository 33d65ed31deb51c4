//! The customer's leg of an attempt: the INVITE through the queue's trunk,
//! with the header naming the attempt.

use crate::calls::party::{codecs, Party};
use crate::calls::ring::attempt_header;
use crate::calls::CallKit;
use crate::config::Queue;
use crate::scheduler::model::{Dispatch, Outcome};
use crate::sip::calls::{Credentials, DialRequest};

use tracing::field::Empty;
use tracing::Instrument;

use super::attempt::Finish;

/// Opens media and sends the customer's INVITE through the queue's trunk;
/// `Err` with how to record the attempt when it cannot be sent.
pub async fn dial(d: &CallKit, dispatch: &Dispatch, queue: &Queue) -> Result<Party, Finish> {
    let cb = &dispatch.callback;
    let (cfg, proxies) = d.live();
    let Some(profile) = queue.profile.as_ref().and_then(|p| cfg.profiles.get(p)) else {
        return Err(Finish::new(Outcome::Failed, None).note("the queue has no outbound trunk"));
    };
    let Some(dest) = proxies.get(&profile.name).copied() else {
        return Err(Finish { retry: true, ..Finish::new(Outcome::Failed, None).note("the trunk's proxy did not resolve") });
    };
    if !crate::e164::is_e164(&cb.phone) {
        return Err(Finish::new(Outcome::Failed, None).note("not an E.164 number"));
    }
    // The leg's span: its media task logs in it, under the attempt's.
    let span = tracing::info_span!("leg", role = "customer", call_id = Empty);
    let mut media = match d.media.open().instrument(span.clone()).await {
        Ok(m) => m,
        Err(e) => return Err(Finish { retry: true, ..Finish::new(Outcome::Failed, None).note(format!("no media port: {e}")) }),
    };
    media.set_srtp(profile.srtp);
    let offer = media.offer(&codecs(&profile.codecs));
    let caller_id = cb.caller_id.clone().or_else(|| queue.caller_id.clone()).or_else(|| profile.caller_id.clone()).unwrap_or_else(|| "anonymous".into());
    let credentials = match (&profile.username, &profile.password) {
        (Some(u), Some(p)) => Some(Credentials { username: u.clone(), password: p.clone() }),
        _ => None,
    };
    let uri = format!("sip:{}@{}", cb.phone, profile.domain);
    let sip = d.calls.dial(DialRequest {
        request_uri: uri.clone(),
        to: format!("<{uri}>"),
        from_name: cb.caller_name.clone(),
        from_user: caller_id,
        from_host: profile.domain.clone(),
        destination: dest,
        headers: vec![attempt_header(dispatch)],
        sdp: offer.into_bytes(),
        credentials,
    });
    span.record("call_id", tracing::field::display(&sip.call_id));
    Ok(Party { sip, media })
}

