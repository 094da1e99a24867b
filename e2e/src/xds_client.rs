//! A gRPC client that behaves as mesh-proxy does on meshd's delta stream (hello, then an ACK
//! for every response), for tests that look at what meshd pushes.

use std::time::{Duration, Instant};

use mesh_xds::discovery::aggregated_discovery_client::AggregatedDiscoveryClient;
use mesh_xds::discovery::{DeltaRequest, DeltaResponse, Node};
use serde_json::Value;
use tokio::sync::mpsc;
use tonic::Streaming;

pub struct XdsClient {
    /// Responses, each already ACKed by the task that reads the stream.
    responses: mpsc::UnboundedReceiver<DeltaResponse>,
}

/// The node of a proxy for pod `pod` of workload `workload` (label `app=<workload>`) in `ns`.
pub fn node(pod: &str, ns: &str, workload: &str) -> Node {
    Node {
        pod_name: pod.into(),
        namespace: ns.into(),
        workload_name: workload.into(),
        labels: [("app".to_owned(), workload.to_owned())].into(),
        proxy_version: "e2e".into(),
        ..Node::default()
    }
}

impl XdsClient {
    /// Connects to meshd's plain-text gRPC port on 127.0.0.1 and says hello as `node`.
    pub async fn connect(port: u16, node: Node) -> XdsClient {
        let mut client = AggregatedDiscoveryClient::connect(format!("http://127.0.0.1:{port}"))
            .await
            .expect("meshd's gRPC port");
        let (tx, rx) = mpsc::channel(16);
        tx.send(DeltaRequest {
            node: Some(node),
            ..DeltaRequest::default()
        })
        .await
        .expect("hello");
        let requests =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let mut stream: Streaming<DeltaResponse> = client
            .delta_stream(requests)
            .await
            .expect("stream")
            .into_inner();
        // Every response is ACKed as it arrives, as mesh-proxy does, whether or not the test
        // is reading them at the time (else meshd rightly shows the proxy STALE).
        let (seen_tx, seen_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            while let Ok(Some(response)) = stream.message().await {
                let ack = DeltaRequest {
                    type_url: response.type_url.clone(),
                    response_nonce: response.nonce.clone(),
                    ..DeltaRequest::default()
                };
                if tx.send(ack).await.is_err() || seen_tx.send(response).is_err() {
                    return;
                }
            }
        });
        XdsClient { responses: seen_rx }
    }

    /// The next response (already ACKed).
    pub async fn next(&mut self, within: Duration) -> Option<DeltaResponse> {
        tokio::time::timeout(within, self.responses.recv())
            .await
            .ok()?
    }

    /// Takes whatever comes until nothing has for `quiet`.
    pub async fn settle(&mut self, quiet: Duration) {
        while self.next(quiet).await.is_some() {}
    }

    /// Takes responses until one satisfies `wanted` (within 30 s).
    pub async fn wait_for(&mut self, wanted: impl Fn(&DeltaResponse) -> bool) -> DeltaResponse {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(!left.is_zero(), "timed out waiting for a push");
            if let Some(response) = self.next(left).await {
                if wanted(&response) {
                    return response;
                }
            }
        }
    }
}

/// The JSON body of resource `name` in `response`.
pub fn body(response: &DeltaResponse, name: &str) -> Option<Value> {
    response
        .resources
        .iter()
        .find(|r| r.name == name)
        .and_then(|r| serde_json::from_slice(&r.body).ok())
}
