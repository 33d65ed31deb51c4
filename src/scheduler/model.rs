//! The callback model: records, statuses, attempts, origins.
