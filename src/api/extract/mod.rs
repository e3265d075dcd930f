//! Extractors: who is calling, bounded JSON and multipart intake.

pub mod caller;
pub mod form;
pub mod gemini_intake;
pub mod json;
pub mod part_headers;
