//! Texts customers send us (inbound SIP MESSAGE from a carrier): each one
//! the endpoint accepted becomes an `sms.received` event, written to the
//! durable outbox with the writer's next commit and then delivered like
//! every other event (webhooks, `GET /v1/events`).

use std::sync::Arc;

use tokio::sync::{mpsc, watch};

use super::InboundText;
use crate::clock::Clock;
use crate::events::{Kind, Outbox, Payload};
use crate::sip::endpoint::IncomingText;

/// Publishes every text from `texts` until `stop` turns true or the endpoint stops.
pub async fn run(mut texts: mpsc::Receiver<IncomingText>, outbox: Arc<dyn Outbox>, clock: Arc<dyn Clock>, mut stop: watch::Receiver<bool>) {
    loop {
        let t = tokio::select! {
            _ = stop.changed() => return,
            t = texts.recv() => match t {
                Some(t) => t,
                None => return,
            },
        };
        tracing::info!(trunk = %t.profile, from = %t.from, to = %t.to, call_id = %t.call_id, bytes = t.text.len(), "text received");
        let at = clock.now_ms();
        outbox.publish(Kind::SmsReceived, at, Payload::Text(Box::new(InboundText { at, trunk: t.profile, from: t.from, to: t.to, text: t.text })));
    }
}
