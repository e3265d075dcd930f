//! One integration-test binary: the real server, over HTTP.

mod support;

mod advanced;
mod async_jobs;
mod batches;
mod batches_process;
mod browser;
mod chat;
mod cli;
mod compat;
mod connections;
mod crash;
mod endpoints_offline;
mod fake_gemini_selftest;
mod gallery;
mod gemini_native_intake;
mod gemini_upstream;
mod guide_samples;
mod hostile;
mod intake_limits;
mod keys_limits;
mod logs;
mod models_registry;
mod monitoring;
mod openapi;
mod operability;
mod playground;
mod process;
mod quality;
mod scale_out;
mod shared_limits;
mod shutdown;
mod storage_cli;
mod storage_story;
mod story;
mod team_keys;
