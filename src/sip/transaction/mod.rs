//! The four RFC 3261 §17 transaction machines and the layer that matches messages to them (sans-IO).
