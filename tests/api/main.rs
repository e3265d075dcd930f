//! One integration-test binary: the real server, over HTTP.

mod support;

mod endpoints_offline;
mod guide_samples;
mod intake_limits;
