//! Digest authentication (RFC 7616, RFC 2617) as client and server.
