//! Durable state. One store per aggregate, each written once in SQL over one database
//! (SQLite embedded, or PostgreSQL shared; see [`db`]), and a blob store (files or S3) for
//! bytes; which ones serve is decided once at start-up, in [`Storage::open`]. The stores
//! are structs: with one implementation, a trait would only repeat every signature.

pub mod batches;
pub mod blobs;
pub mod db;
pub mod error;
pub mod idempotency;
pub mod images;
pub mod keys;
mod migrate;
pub mod requests;
pub mod session_order;
pub mod sessions;
pub mod storage;
pub mod usage;

pub use blobs::ObjectBlobs;
pub use db::{Db, Dialect};
pub use error::StoreError;
pub use images::ImageStore;
pub use sessions::SessionStore;
pub use storage::Storage;
