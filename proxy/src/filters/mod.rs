//! The filters of the inbound and outbound chains ([`crate::http::chain`]), built per snapshot:
//! authorization ([`authz`]) and local rate limits ([`rate_limit`]) on the inbound side,
//! telemetry ([`telemetry`]) on both. Opaque TCP connections are admitted by the same
//! authorization and rate limits once, when they start ([`admit_tcp`]).

pub mod authz;
pub mod rate_limit;
pub mod telemetry;

use std::sync::Arc;

use mesh_proxy_config as cfg;

use crate::http::chain::{Chain, Filter};
use crate::listener::ConnInfo;
use crate::metrics::Metrics;
use crate::snapshot::Snapshot;

/// The inbound side's filters that also judge TCP connections.
#[derive(Default)]
pub struct InboundGuards {
    pub authz: Option<Arc<authz::Authz>>,
    pub rate_limits: Option<Arc<rate_limit::PortLimits>>,
}

/// Builds the two chains of a snapshot.
pub fn build(
    config: &cfg::ProxyConfig,
    metrics: &Arc<Metrics>,
    sinks: &Arc<telemetry::Sinks>,
    local_service: &str,
) -> (Chain, Chain, InboundGuards) {
    let mut guards = InboundGuards::default();
    let mut inbound: Vec<Arc<dyn Filter>> = Vec::new();
    if !config.inbound.authorization_policies.is_empty() {
        let a = Arc::new(authz::Authz::compile(
            &config.inbound.authorization_policies,
            metrics.clone(),
        ));
        guards.authz = Some(a.clone());
        inbound.push(a);
    }
    if !config.inbound.rate_limits.is_empty() {
        let r = Arc::new(rate_limit::PortLimits::new(
            &config.inbound.rate_limits,
            metrics.clone(),
        ));
        guards.rate_limits = Some(r.clone());
        inbound.push(r);
    }
    let telemetry = |inbound: bool| {
        telemetry::Telemetry::new(config, inbound, sinks.clone(), local_service).map(Arc::new)
    };
    (
        Chain::new(inbound, telemetry(true), true),
        Chain::new(Vec::new(), telemetry(false), false),
        guards,
    )
}

/// Whether an inbound opaque TCP connection may go on: authorization (HTTP-only rule fields
/// with Istio's TCP meaning) and the port's rate limit. A refused connection is closed.
pub fn admit_tcp(snap: &Snapshot, info: &ConnInfo) -> bool {
    let g = &snap.inbound_guards;
    if let Some(a) = &g.authz {
        if let Err(why) = a.check_connection(info) {
            tracing::debug!(peer = %info.peer, "TCP connection denied: {why}");
            return false;
        }
    }
    if let Some(r) = &g.rate_limits {
        if !r.take(info.destination.port()) {
            tracing::debug!(peer = %info.peer, "TCP connection rate limited");
            return false;
        }
    }
    true
}
