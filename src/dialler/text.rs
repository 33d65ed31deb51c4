//! A `"channel": "sms"` callback's attempt: at its due time the queue's
//! `sms_callback` text goes to the customer through the trunk instead of a
//! call. No agent takes part. The attempt's outcome is `sent` when the
//! trunk accepts every part (2xx), which completes the callback; a failure
//! maps like a call's final status (a 5xx or no answer is retried per the
//! queue's policy, a 403/404/484/604 ends it `failed`). The text is recorded
//! on the callback either way.

use crate::scheduler::model::{AttemptOutcome, Dispatch, Outcome};
use crate::sms::send::{self, Unsent};
use crate::sms::{template, TextRecord};

use super::attempt::Finish;
use super::outcome::for_status;
use super::Dialler;

/// Sends the text and returns the attempt's outcome.
pub async fn run(d: &Dialler, dispatch: &Dispatch) -> AttemptOutcome {
    let cb = &dispatch.callback;
    let (cfg, proxies) = d.live();
    let Some(queue) = cfg.queue(&cb.queue) else {
        return outcome(Finish::failed_no_retry("queue no longer configured"));
    };
    let Some(template) = queue.sms_callback.as_deref() else {
        return outcome(Finish::failed_no_retry("the queue no longer has an `sms_callback` text"));
    };
    let text = template::render(template, cb, queue.timezone);
    let dialed_at = d.clock.now_ms();
    let sent = send::send(&cfg, &d.calls, &proxies, cb, &text).await;
    d.outbox.record_text(TextRecord::of(cb, "callback", text, sent, d.clock.now_ms()));
    let finish = match sent {
        Ok(s) if s.accepted() => Finish::new(Outcome::Sent, Some(s.status)),
        Ok(s) => Finish::from(for_status(s.status, false)),
        Err(e @ Unsent::NoProxy) => Finish { retry: true, ..Finish::new(Outcome::Failed, None).note(e.to_string()) },
        Err(e) => Finish::failed_no_retry(&e.to_string()),
    };
    let mut o = outcome(finish);
    o.timeline.dialed_at = Some(dialed_at);
    o
}

fn outcome(f: Finish) -> AttemptOutcome {
    AttemptOutcome { outcome: f.outcome, sip_status: f.sip_status, amd: None, agent: None, timeline: Default::default(), retry: f.retry, note: f.note }
}
