//! Generation answers.

pub mod body;
