//! UDP and TCP transports on one address (RFC 3261 §18).
