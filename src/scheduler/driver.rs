//! The tokio driver around the scheduler core: hands due callbacks to the dialler.
