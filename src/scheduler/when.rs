//! Free-text callback times ("tomorrow morning", "kal subah") resolved to due times.
