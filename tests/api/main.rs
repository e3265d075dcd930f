//! One integration-test binary: the real server, over HTTP.

mod support;

mod advanced;
mod chat;
mod endpoints_offline;
mod fake_gemini_selftest;
mod gemini_upstream;
mod guide_samples;
mod intake_limits;
mod keys_limits;
mod process;
mod story;
