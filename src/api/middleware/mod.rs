//! The layers every request passes through, outermost first in `api::router`: request
//! context, public origin, panic catcher, body-size refusal, authentication, limits,
//! idempotent replay.

pub mod access;
pub mod auth;
pub mod body_size;
pub mod context;
pub mod idempotency;
pub mod limits;
pub mod origin;
