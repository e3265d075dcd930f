//! Durable state. Small traits per aggregate, with SQLite (embedded) and PostgreSQL
//! (shared) implementations, and a blob store (files or S3) for bytes; which ones serve
//! is decided once at start-up, in [`Storage::open`].

pub mod batches;
pub mod blobs;
pub mod db;
pub mod idempotency;
pub mod images;
pub mod keys;
pub mod pg;
pub mod requests;
pub mod sessions;
pub mod storage;
pub mod usage;

pub use blobs::{BlobStore, ObjectBlobs};
pub use db::{Db, StoreError, StoreErrorKind};
pub use images::{ImageStore, StoredImages};
pub use sessions::{SessionStore, SqlSessionStore};
pub use storage::{DatabaseHealth, Storage};
