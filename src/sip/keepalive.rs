//! OPTIONS keep-alive per trunk: up/down state.
