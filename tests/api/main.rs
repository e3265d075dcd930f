//! One integration-test binary: the real server, over HTTP.

mod support;

mod endpoints_offline;
mod intake_limits;
