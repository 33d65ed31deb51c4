//! The sans-IO scheduler core: rules, firing, retries, priority.
