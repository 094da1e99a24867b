//! Opaque TCP: pick a cluster (TCP route, service VIP, plain listener destination, inbound
//! app, or passthrough), connect, and copy bytes both ways, counting them for `istio_tcp_*`.

use std::sync::Arc;

use mesh_proxy_config::OutboundMode;
use tokio::io::{AsyncRead, AsyncWrite};

use crate::cluster::outlier::Outcome;
use crate::cluster::pool::connect_tcp;
use crate::cluster::Cluster;
use crate::filters::telemetry::{unix_ms, TcpRecord, Telemetry};
use crate::listener::{ConnInfo, Side};
use crate::metrics::ResponseFlags;
use crate::route::DestRef;
use crate::snapshot::{in_subnet, Snapshot};

/// The access-logging telemetry of the connection's side, if on.
fn telemetry<'a>(snap: &'a Snapshot, info: &ConnInfo) -> Option<&'a Arc<Telemetry>> {
    if info.side == Side::Inbound {
        snap.inbound_chain.telemetry()
    } else {
        snap.outbound_chain.telemetry()
    }
}

fn weighted(dests: &[(DestRef, u32)]) -> Option<&DestRef> {
    let total: u32 = dests.iter().map(|d| d.1).sum();
    if total == 0 {
        return dests.first().map(|d| &d.0);
    }
    let mut r = fastrand::u32(..total);
    for (d, w) in dests {
        if r < *w {
            return Some(d);
        }
        r -= w;
    }
    dests.last().map(|d| &d.0)
}

/// The cluster for a TCP connection; `None`: refuse it.
fn choose(snap: &Snapshot, info: &ConnInfo) -> Option<Arc<Cluster>> {
    let dst = info.destination;
    match &info.side {
        Side::Inbound => {
            Some(snap.dynamic_cluster(true, crate::http::handler::inbound_target(snap, dst)))
        }
        Side::Gateway(_) | Side::Plain => {
            let d = info.tcp_destination.as_ref()?;
            snap.cluster_for(&DestRef::from(d), dst.port()).cloned()
        }
        Side::Outbound => {
            if let Some(svc) = snap.service_by_vip(dst) {
                if let Some(route) = svc.tcp_routes.iter().find(|r| {
                    r.port.is_none_or(|p| p == dst.port())
                        && (r.subnets.is_empty()
                            || r.subnets.iter().any(|n| in_subnet(dst.ip(), *n)))
                }) {
                    let d = weighted(&route.dests)?;
                    return snap.cluster_for(d, dst.port()).cloned();
                }
                let d = DestRef {
                    host: svc.host.clone(),
                    subset: None,
                    port: Some(dst.port()),
                };
                return snap.cluster_for(&d, dst.port()).cloned();
            }
            match snap.outbound_mode {
                OutboundMode::AllowAny => Some(snap.dynamic_cluster(false, dst)),
                OutboundMode::RegistryOnly => None,
            }
        }
    }
}

/// Serves one opaque TCP connection to its end.
pub async fn proxy<S>(mut client: S, info: Arc<ConnInfo>, snap: Arc<Snapshot>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let metrics = snap.metrics.clone();
    let Some(cluster) = choose(&snap, &info) else {
        tracing::debug!(destination = %info.destination, "no route for TCP (REGISTRY_ONLY); closed");
        let labels = if info.side == Side::Inbound {
            &snap.unknown_labels_inbound
        } else {
            &snap.unknown_labels_outbound
        };
        metrics.tcp_opened(labels);
        metrics.tcp_closed(labels, ResponseFlags::NO_ROUTE, 0, 0);
        return;
    };
    let hash = Some(crate::cluster::lb::hash_key(
        info.peer.ip().to_string().as_bytes(),
    ));
    let mut last_labels = cluster.labels();
    // Connection failures are retried on another pick, as Envoy's TCP proxy does.
    for _ in 0..3 {
        let Some(i) = cluster.pick(hash) else {
            metrics.tcp_opened(&cluster.labels());
            metrics.tcp_closed(&cluster.labels(), ResponseFlags::NO_HEALTHY_UPSTREAM, 0, 0);
            return;
        };
        let ep = &cluster.endpoints[i];
        last_labels = cluster.endpoint_labels(i);
        let connected = match connect_tcp(ep.addr, &cluster.policy).await {
            Ok(s) => cluster
                .secure(i, s, crate::tls::AppProtocol::Tcp, &metrics)
                .await
                .map_err(crate::cluster::pool::PoolError::from),
            Err(e) => Err(e),
        };
        match connected {
            Ok(mut upstream) => {
                cluster.report(i, Outcome::Status(200), &metrics);
                let labels = cluster.endpoint_labels(i);
                metrics.tcp_opened(&labels);
                let mut guard = cluster.begin_request();
                if let Some(g) = guard.as_mut() {
                    g.set_endpoint(&ep.state);
                }
                let (started, started_ms) = (std::time::Instant::now(), unix_ms());
                let (flags, received, sent) =
                    match tokio::io::copy_bidirectional(&mut client, &mut upstream).await {
                        Ok((from_client, to_client)) => {
                            (ResponseFlags::NONE, from_client, to_client)
                        }
                        Err(_) => (ResponseFlags::UPSTREAM_CONNECTION_TERMINATION, 0, 0),
                    };
                metrics.tcp_closed(&labels, flags, sent, received);
                if let Some(t) = telemetry(&snap, &info) {
                    t.log_tcp(&TcpRecord {
                        conn: &info,
                        upstream: Some(ep.addr),
                        cluster: &cluster.name,
                        upstream_identity: cluster.mtls_identity(i).as_deref(),
                        flags,
                        received,
                        sent,
                        started,
                        started_ms,
                    });
                }
                return;
            }
            Err(e) => {
                tracing::debug!("TCP upstream {}: {e}", ep.addr);
                cluster.report(i, Outcome::ConnectFailure, &metrics);
            }
        }
    }
    metrics.tcp_opened(&last_labels);
    metrics.tcp_closed(
        &last_labels,
        ResponseFlags::UPSTREAM_CONNECTION_FAILURE,
        0,
        0,
    );
}
