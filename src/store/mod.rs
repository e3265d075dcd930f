//! Durable state. Small traits per aggregate, chosen once at start-up.

pub mod db;
pub mod idempotency;
pub mod images;
pub mod keys;
pub mod requests;
pub mod sessions;
pub mod usage;

pub use db::{Db, StoreError};
pub use images::{FsImageStore, ImageStore};
pub use sessions::{SessionStore, SqlSessionStore};
