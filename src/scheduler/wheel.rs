//! The in-memory timer wheel holding the near future.
