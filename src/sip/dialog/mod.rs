//! Dialogs (RFC 3261 §12): UAC and UAS state, in-dialog requests, CANCEL (§9).
