//! Calls driven over two in-memory transaction layers (virtual time).
