//! One integration-test binary: the real server, over HTTP.

mod support;

mod advanced;
mod chat;
mod cli;
mod compat;
mod endpoints_offline;
mod fake_gemini_selftest;
mod gallery;
mod gemini_upstream;
mod guide_samples;
mod intake_limits;
mod keys_limits;
mod playground;
mod process;
mod story;
