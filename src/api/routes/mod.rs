//! One file per group of routes; `api::router` lists them.

pub mod admin;
pub mod advanced;
pub mod batches;
pub mod chat;
pub mod files;
pub mod gemini_native;
pub mod generate;
pub mod images;
pub mod jobs;
pub mod models;
pub mod monitoring;
pub mod openai;
pub mod openapi;
pub mod playground;
pub mod quality;
pub mod story;
pub mod usage;
