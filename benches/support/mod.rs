//! Code shared by the benchmark targets (not a target itself: Cargo only discovers
//! `benches/*.rs` and `benches/*/main.rs`).

pub mod synth;
