//! Operating the service (issue 17, docs/operations.md): unsafe setups refused at start,
//! dependencies that go away mid-run, readiness, running behind a proxy, and the
//! papercuts an operator or app developer meets first.

mod outages;
mod papercuts;
mod proxy;
mod readiness;
mod sessions;
mod setups;
mod tcp_proxy;
