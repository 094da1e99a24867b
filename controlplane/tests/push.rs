//! The configuration push over a real gRPC stream on loopback: meshd's hub and discovery
//! service on one side, a client that behaves as mesh-proxy does (hello, ACK, NACK,
//! reconnect) on the other.

use std::sync::Arc;
use std::time::Duration;

use kube::api::DynamicObject;
use mesh_controlplane::discovery::hub::{Hub, SyncState};
use mesh_controlplane::discovery::model::{Kind, MeshSettings, Model, Snapshot};
use mesh_controlplane::discovery::server::DiscoveryService;
use mesh_controlplane::metrics::Metrics;
use mesh_xds::discovery::aggregated_discovery_client::AggregatedDiscoveryClient;
use mesh_xds::discovery::{DeltaRequest, DeltaResponse, Node, ResourceVersion};
use mesh_xds::types;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tonic::Streaming;

fn object(value: Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(value).expect("object"))
}

fn model(reviews_timeout: &str, extra_service: bool) -> Model {
    let mut snapshot = Snapshot::default();
    let mut services = vec![object(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.9", "selector": {"app": "reviews"}, "ports": [{"name": "http", "port": 9080}]}}))];
    if extra_service {
        services.push(object(json!({"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "ratings", "namespace": "shop"},
            "spec": {"clusterIP": "10.96.0.10", "ports": [{"name": "http", "port": 9080}]}})));
    }
    snapshot.objects.insert(Kind::Service, services);
    snapshot.objects.insert(
        Kind::VirtualService,
        vec![object(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"hosts": ["reviews"], "http": [{"timeout": reviews_timeout, "route": [{"destination": {"host": "reviews"}}]}]}}))],
    );
    snapshot.objects.insert(
        Kind::DestinationRule,
        vec![object(
            json!({"apiVersion": "networking.istio.io/v1", "kind": "DestinationRule",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"host": "reviews", "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}}),
        )],
    );
    Model::build(
        &snapshot,
        &MeshSettings::new("cluster.local", "mesh-system"),
    )
}

async fn serve(hub: Arc<Hub>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let service = DiscoveryService {
        hub,
        metrics: Metrics::new(),
        reviewer: None,
    };
    let incoming = futures::stream::unfold(listener, |l| async move {
        Some((l.accept().await.map(|(s, _)| s), l))
    });
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service.server())
            .serve_with_incoming(incoming),
    );
    format!("http://{addr}")
}

struct Proxy {
    requests: mpsc::Sender<DeltaRequest>,
    responses: Streaming<DeltaResponse>,
}

impl Proxy {
    async fn connect(url: &str, held: Vec<ResourceVersion>) -> Proxy {
        let mut client = AggregatedDiscoveryClient::connect(url.to_owned())
            .await
            .expect("connect");
        let (tx, rx) = mpsc::channel(16);
        tx.send(DeltaRequest {
            node: Some(Node {
                pod_name: "web-1".into(),
                namespace: "shop".into(),
                workload_name: "web".into(),
                labels: [("app".to_owned(), "web".to_owned())].into(),
                ..Node::default()
            }),
            initial_versions: held,
            ..DeltaRequest::default()
        })
        .await
        .expect("hello");
        let stream =
            futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
        let responses = client
            .delta_stream(stream)
            .await
            .expect("stream")
            .into_inner();
        Proxy {
            requests: tx,
            responses,
        }
    }

    async fn next(&mut self) -> Option<DeltaResponse> {
        tokio::time::timeout(Duration::from_millis(800), self.responses.message())
            .await
            .ok()
            .and_then(|r| r.ok().flatten())
    }

    async fn answer(&self, response: &DeltaResponse, error: &str) {
        self.requests
            .send(DeltaRequest {
                type_url: response.type_url.clone(),
                response_nonce: response.nonce.clone(),
                error_detail: error.to_owned(),
                ..DeltaRequest::default()
            })
            .await
            .expect("answer");
    }
}

fn names(response: &DeltaResponse) -> Vec<&str> {
    response.resources.iter().map(|r| r.name.as_str()).collect()
}

#[tokio::test]
async fn pushes_only_what_changed_respects_nacks_and_resumes_from_what_the_proxy_holds() {
    let hub = Hub::new("meshd-test".into());
    let url = serve(hub.clone()).await;
    // A proxy that connects before the first full listing waits for it.
    let mut proxy = Proxy::connect(&url, vec![]).await;
    assert!(
        proxy.next().await.is_none(),
        "pushed before meshd knew the mesh"
    );
    hub.publish(model("5s", false));

    // Every type once, in order, each the whole set.
    let mut held = Vec::new();
    for expected in types::ALL {
        let response = proxy.next().await.expect("a response per type");
        assert_eq!(&response.type_url, expected);
        assert!(response.complete);
        for r in &response.resources {
            held.push(ResourceVersion {
                type_url: response.type_url.clone(),
                name: r.name.clone(),
                version: r.version.clone(),
            });
        }
        if response.type_url == types::SERVICE {
            assert_eq!(names(&response), ["reviews.shop.svc.cluster.local"]);
            let body: Value = serde_json::from_slice(&response.resources[0].body).expect("JSON");
            assert_eq!(body["host"], "reviews.shop.svc.cluster.local");
        }
        proxy.answer(&response, "").await;
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let status = &hub.connected()[0];
    let types = status.types.lock().expect("lock").clone();
    assert!(
        types.values().all(|t| t.state == SyncState::Synced),
        "{types:?}"
    );

    // The same mesh again: nothing to send.
    hub.publish(model("5s", false));
    assert!(
        proxy.next().await.is_none(),
        "pushed an unchanged configuration"
    );

    // One VirtualService changes: only it goes.
    hub.publish(model("7s", false));
    let response = proxy.next().await.expect("the changed route");
    assert_eq!(response.type_url, types::VIRTUAL_SERVICE);
    assert_eq!(names(&response), ["shop/reviews"]);
    assert!(response.removed_resources.is_empty());
    // Refused: it is not sent again, and proxy-status says why.
    proxy
        .answer(&response, "spec.http[0].timeout: not supported")
        .await;
    hub.publish(model("7s", false));
    assert!(
        proxy.next().await.is_none(),
        "re-sent a refused configuration"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let types = hub.connected()[0].types.lock().expect("lock").clone();
    let vs = &types[types::VIRTUAL_SERVICE];
    assert_eq!(vs.state, SyncState::Stale);
    assert_eq!(
        vs.rejected.as_deref(),
        Some("spec.http[0].timeout: not supported")
    );
    // A different route is sent; a new service too, on its own type.
    hub.publish(model("9s", true));
    let mut got: Vec<(String, Vec<String>)> = Vec::new();
    while let Some(response) = proxy.next().await {
        got.push((
            response.type_url.clone(),
            names(&response).iter().map(|s| s.to_string()).collect(),
        ));
        proxy.answer(&response, "").await;
    }
    got.sort();
    assert_eq!(
        got,
        [
            (
                types::SERVICE.to_owned(),
                vec!["ratings.shop.svc.cluster.local".to_owned()]
            ),
            (
                types::VIRTUAL_SERVICE.to_owned(),
                vec!["shop/reviews".to_owned()]
            ),
        ]
    );
    drop(proxy);

    // Reconnecting with what it held (meshd restarted, say): only the difference comes.
    let mut proxy = Proxy::connect(&url, held).await;
    let mut changed = Vec::new();
    for _ in types::ALL {
        let response = proxy
            .next()
            .await
            .expect("one response per type on a new stream");
        changed.extend(names(&response).iter().map(|s| s.to_string()));
        proxy.answer(&response, "").await;
    }
    changed.sort();
    assert_eq!(changed, ["ratings.shop.svc.cluster.local", "shop/reviews"]);
}
