//! Codecs shared by the media plane and offline tools (the AMD WAV reader) without either
//! depending on the other.
//!
//! - [`g711`]: µ-law and A-law.

pub mod g711;
