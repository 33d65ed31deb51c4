//! The durable callback book (DESIGN.md "Callback model").
//!
//! - [`window`]: calling windows (`hours`) in the customer's timezone.

pub mod window;
