//! What a transaction machine hands back to the layer after an input.

use rsip::{Request, Response, SipMessage};

/// One effect of a machine step; the layer turns these into transmits and events.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Output {
    /// Send this message to the transaction's peer.
    Send(SipMessage),
    /// Send this message, whose wire form the machine already wrote (and keeps): the driver
    /// sends these bytes instead of encoding the message again.
    SendWire(SipMessage, bytes::Bytes),
    /// Tell the TU.
    Up(Up),
}

/// What a machine passes to the TU.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Up {
    Response(Response),
    /// An ACK that belongs to the TU (ACK for a 2xx, RFC 6026 Accepted state).
    Ack(Request),
    /// Timer B, F or H fired.
    Timeout,
}
