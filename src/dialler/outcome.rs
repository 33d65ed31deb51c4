//! How a call leg's end becomes an attempt outcome.

use crate::scheduler::model::Outcome;

/// What a failed customer leg means for the callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Failure {
    pub outcome: Outcome,
    /// The SIP final status, when one was received.
    pub sip_status: Option<u16>,
    /// A `failed` outcome that is still retried (5xx, transport failure).
    pub retry: bool,
}

/// Maps the final response to our INVITE to an outcome. `we_cancelled`
/// is true when we CANCELled at the ring timeout: whatever the carrier
/// answers then (usually 487) is `no_answer`.
pub fn for_status(status: u16, we_cancelled: bool) -> Failure {
    let f = |outcome, retry| Failure { outcome, sip_status: Some(status), retry };
    if we_cancelled {
        return f(Outcome::NoAnswer, false);
    }
    match status {
        486 | 600 => f(Outcome::Busy, false),
        408 | 480 | 487 => f(Outcome::NoAnswer, false),
        603 => f(Outcome::Declined, false),
        // The number is wrong: dialling it again cannot help.
        403 | 404 | 484 | 604 => f(Outcome::Failed, false),
        // Server failures, our own transport errors (503) and anything else
        // unexpected are worth another attempt after `retry_delay`.
        _ => f(Outcome::Failed, true),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_the_issue_table() {
        let o = |s| for_status(s, false);
        assert_eq!(o(486).outcome, Outcome::Busy);
        assert_eq!(o(600).outcome, Outcome::Busy);
        for s in [408, 480, 487] {
            assert_eq!(o(s).outcome, Outcome::NoAnswer, "{s}");
        }
        assert_eq!(o(603).outcome, Outcome::Declined);
        for s in [403, 404, 484, 604] {
            assert_eq!((o(s).outcome, o(s).retry), (Outcome::Failed, false), "{s}");
        }
        for s in [500, 502, 503, 504] {
            assert_eq!((o(s).outcome, o(s).retry), (Outcome::Failed, true), "{s}");
        }
        assert_eq!(for_status(487, true).outcome, Outcome::NoAnswer);
        assert_eq!(for_status(200, true).outcome, Outcome::NoAnswer);
        assert_eq!(o(486).sip_status, Some(486));
    }
}
