//! The layers every request passes through (`api::router` lists them in order).

pub mod access;
pub mod auth;
pub mod context;
pub mod idempotency;
pub mod limits;
