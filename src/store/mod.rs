//! Durable state. Small traits per aggregate, chosen once at start-up.

pub mod images;

pub use images::{FsImageStore, ImageStore};
