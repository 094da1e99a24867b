//! `mesh-proxy iptables`: the nat-table rules that send a pod's inbound TCP to the proxy's
//! inbound port and its outbound TCP to the outbound port, except the proxy's own traffic,
//! loopback, and what the options exclude.

mod apply;
mod options;
mod rules;

pub use apply::{apply, cleanup, Outcome};
pub use options::{CaptureOptions, Plan, PlanError, Ports, Ranges};
pub use rules::{restore_script, CHAIN_PREFIX};
