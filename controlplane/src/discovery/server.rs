//! The gRPC side of the push: `AggregatedDiscovery/DeltaStream`, one stream per proxy (on the
//! wire: [`wire`](super::wire)).

use std::sync::Arc;

use mesh_xds::discovery::DeltaRequest;
use tokio::sync::mpsc;
use tonic::{Request, Status, Streaming};
use tracing::{info, warn};

use super::hub::Hub;
use super::scope::ProxyNode;
use super::stream::ProxyStream;
use super::wire::{DeltaStreamServer, Encoded};
use crate::metrics::Metrics;
use crate::token_review::{bearer, TokenReviewer};

#[derive(Clone)]
pub struct DiscoveryService {
    pub hub: Arc<Hub>,
    pub metrics: Metrics,
    pub reviewer: Option<Arc<TokenReviewer>>,
}

fn node_of(request: &DeltaRequest) -> Result<(ProxyNode, String), Status> {
    let node = request.node.as_ref().ok_or_else(|| {
        Status::invalid_argument("the first request of a stream must carry the node")
    })?;
    if node.pod_name.is_empty() || node.namespace.is_empty() {
        return Err(Status::invalid_argument(
            "node.pod_name and node.namespace are required",
        ));
    }
    Ok((
        ProxyNode {
            pod_name: node.pod_name.clone(),
            namespace: node.namespace.clone(),
            labels: node.labels.clone().into_iter().collect(),
            workload: if node.workload_name.is_empty() {
                node.pod_name.clone()
            } else {
                node.workload_name.clone()
            },
            gateway: node.gateway,
            service_account: if node.service_account.is_empty() {
                "default".to_owned()
            } else {
                node.service_account.clone()
            },
        },
        node.proxy_version.clone(),
    ))
}

impl DiscoveryService {
    /// The gRPC service to route.
    pub fn server(self) -> DeltaStreamServer {
        DeltaStreamServer::new(self)
    }

    /// Reads the stream's first request, checks who is asking, and starts the proxy's stream;
    /// the responses come out of the receiver, encoded.
    pub async fn open(
        &self,
        request: Request<Streaming<DeltaRequest>>,
    ) -> Result<mpsc::Receiver<Box<Encoded>>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let mut inbound = request.into_inner();
        let first = inbound
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("the stream ended before its first request"))?;
        let (node, proxy_version) = node_of(&first)?;
        // A proxy that shows a token is held to it: it may only ask as a pod of its own
        // namespace (and as its own pod, when the token is bound to one).
        if let (Some(header), Some(reviewer)) = (token.as_deref(), &self.reviewer) {
            let token = bearer(Some(header)).map_err(|e| Status::unauthenticated(e.to_string()))?;
            let caller = reviewer
                .review(token)
                .await
                .map_err(|e| Status::unauthenticated(e.to_string()))?;
            let pod_mismatch = caller
                .pod_name
                .as_ref()
                .is_some_and(|p| p != &node.pod_name);
            if caller.namespace != node.namespace || pod_mismatch {
                warn!(%peer, pod = %node.pod_name, namespace = %node.namespace, caller = ?caller, "refused a stream for another workload");
                return Err(Status::permission_denied(format!(
                    "the token is for {}/{}, not pod {}/{}",
                    caller.namespace,
                    caller
                        .pod_name
                        .unwrap_or_else(|| caller.service_account.clone()),
                    node.namespace,
                    node.pod_name
                )));
            }
        }
        info!(%peer, pod = %node.pod_name, namespace = %node.namespace, "proxy connected");
        let status = self.hub.connect(&node, proxy_version, peer);
        // At most one response per type is in flight; boxed, a waiting one costs the channel a
        // pointer.
        let (tx, rx) = mpsc::channel(mesh_xds::types::ALL.len());
        let stream = ProxyStream::new(
            self.hub.clone(),
            self.metrics.clone(),
            node,
            &first,
            status,
            tx,
        );
        tokio::spawn(stream.run(inbound));
        Ok(rx)
    }
}
