//! Carrier registration: a sans-IO REGISTER client per profile (RFC 3261 §10).
