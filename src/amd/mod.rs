//! Answering-machine detection: a streaming detector over 20 ms frames, time in samples.
