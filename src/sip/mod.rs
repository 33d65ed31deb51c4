//! The SIP stack (RFC 3261).
