//! The SIP endpoint driver: transports + transaction layer + the UAS/UAC cores, on tokio.
