//! imagegate: one stable HTTP API in front of Google's Gemini image models.
//!
//! - [`config`]: defaults → TOML → environment → flags.
//! - [`app`]: builds the service and serves it; [`server`]: connections, their
//!   timeouts and limits; [`tasks`]: every background task, tracked for shutdown.
//! - [`api`]: HTTP only (extractors, routes, error rendering).
//! - [`generation`]: validated requests, prompt building, the pipeline.
//! - [`provider`]: where images come from (Gemini over HTTP, or offline).
//! - [`imaging`]: image bytes at the edges (sniffing, limits, downscaling).
//! - [`models`]: the model table, retired names and prices.
//! - [`store`]: durable state (images, sessions, keys, usage, idempotent results, async
//!   requests) in SQLite or PostgreSQL; bytes in files or S3.
//! - [`auth`]: API keys and who a bearer token stands for.
//! - [`limits`]: per-key rate and concurrency limits by tier (in memory or in Redis).
//! - [`quality`]: the guide's image quality metrics, matching NumPy.
//! - [`monitoring`]: Prometheus metrics, `/stats`, readiness.
//! - [`keys_cli`]: `imagegate keys create|list|revoke`.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod auth;
pub mod batches;
pub mod caller;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod error;
pub mod generation;
pub mod ids;
pub mod imaging;
pub mod jobs;
pub mod keys_cli;
pub mod limits;
pub mod models;
pub mod monitoring;
pub mod provider;
pub mod quality;
pub mod server;
pub mod store;
pub mod tasks;
