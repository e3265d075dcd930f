//! Extractors: who is calling, bounded JSON and multipart intake, and what every
//! generation route reads into a unit of work.

pub mod caller;
pub mod form;
pub mod gemini_intake;
pub mod json;
pub mod part_headers;
pub mod reply;
pub mod work;
