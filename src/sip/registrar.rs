//! The agents' registrar: digest-challenged REGISTER, bindings with expiry (RFC 3261 §10.3).
