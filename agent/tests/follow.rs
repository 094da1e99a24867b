//! The agent against meshd's real push service on loopback: the whole configuration assembled
//! from the stream, changes applied, a refusal NACKed and reported by meshd, and the last good
//! configuration kept while meshd is away, then brought up to date when it is back.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use mesh_agent::settings::{Connection, Identity};
use mesh_agent::xds;
use mesh_controlplane::discovery::hub::Hub;
use mesh_controlplane::discovery::model::{Kind, MeshSettings, Model, Snapshot};
use mesh_controlplane::discovery::server::DiscoveryService;
use mesh_controlplane::metrics::Metrics;
use mesh_proxy_config::ProxyConfig;
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn object(value: Value) -> Arc<DynamicObject> {
    Arc::new(serde_json::from_value(value).expect("object"))
}

fn model(timeout: &str) -> Model {
    let mut snapshot = Snapshot::default();
    snapshot.objects.insert(
        Kind::Service,
        vec![object(json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.9", "ports": [{"name": "http", "port": 9080}]}}))],
    );
    snapshot.objects.insert(Kind::VirtualService, vec![object(json!({"apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "reviews", "namespace": "shop"},
        "spec": {"hosts": ["reviews"], "http": [{"timeout": timeout, "route": [{"destination": {"host": "reviews"}}]}]}}))]);
    Model::build(
        &snapshot,
        &MeshSettings::new("cluster.local", "mesh-system"),
    )
}

/// meshd's push service on a runtime of its own, so that stopping it closes every stream, as a
/// meshd that exits does.
struct Meshd {
    runtime: Option<tokio::runtime::Runtime>,
}

impl Meshd {
    fn start(hub: Arc<Hub>, addr: std::net::SocketAddr) -> Meshd {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        runtime.spawn(async move {
            let listener = TcpListener::bind(addr).await.expect("bind");
            let service = DiscoveryService {
                hub,
                metrics: Metrics::new(),
                reviewer: None,
            };
            let incoming = futures::stream::unfold(listener, |l| async move {
                Some((l.accept().await.map(|(s, _)| s), l))
            });
            let _ = tonic::transport::Server::builder()
                .add_service(service.server())
                .serve_with_incoming(incoming)
                .await;
        });
        Meshd {
            runtime: Some(runtime),
        }
    }

    fn stop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for Meshd {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_addr() -> std::net::SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
}

fn timeout_of(config: &ProxyConfig) -> String {
    let vs = &config.virtual_services[0];
    serde_json::to_value(vs.http[0].timeout)
        .expect("json")
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn next(configs: &mut mpsc::UnboundedReceiver<ProxyConfig>) -> Option<ProxyConfig> {
    tokio::time::timeout(Duration::from_secs(5), configs.recv())
        .await
        .ok()
        .flatten()
}

#[tokio::test]
async fn configuration_is_assembled_updated_refused_and_kept_across_meshd_restarts() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let addr = free_addr();
    let hub = Hub::new("meshd-a".into());
    hub.publish(model("5s"));
    let mut meshd = Meshd::start(hub.clone(), addr);

    let (tx, mut configs) = mpsc::unbounded_channel::<ProxyConfig>();
    let refuse: Arc<Mutex<Option<String>>> = Arc::new(Mutex::new(None));
    let refusing = refuse.clone();
    let identity = Identity {
        pod_name: "web-1".into(),
        namespace: "shop".into(),
        service_account: "web".into(),
        trust_domain: "cluster.local".into(),
        workload_name: "web".into(),
        ..Identity::default()
    };
    let connection = Connection {
        address: format!("http://{addr}"),
        token_file: "/nonexistent".into(),
        root_cert: "/nonexistent".into(),
        tls_name: None,
    };
    tokio::spawn(xds::follow(identity, connection, move |config| {
        if let Some(t) = refusing.lock().expect("lock").as_deref() {
            if timeout_of(&config) == t {
                return Err(format!("timeout {t} refused by the test"));
            }
        }
        tx.send(config).map_err(|e| e.to_string())
    }));

    let first = next(&mut configs)
        .await
        .expect("the first whole configuration");
    assert_eq!(first.services.len(), 1);
    assert_eq!(first.services[0].host, "reviews.shop.svc.cluster.local");
    assert_eq!(first.node.workload.as_deref(), Some("web"));
    assert_eq!(timeout_of(&first), "5s");

    hub.publish(model("7s"));
    let second = next(&mut configs).await.expect("the change");
    assert_eq!(timeout_of(&second), "7s");
    assert_eq!(
        second.services, first.services,
        "the services came along unchanged"
    );

    // The proxy refuses 9s: meshd hears why.
    *refuse.lock().expect("lock") = Some("9s".into());
    hub.publish(model("9s"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = hub.connected();
    let types = status[0].types.lock().expect("lock").clone();
    assert_eq!(
        types[mesh_xds::types::VIRTUAL_SERVICE].rejected.as_deref(),
        Some("timeout 9s refused by the test")
    );
    assert!(
        configs.try_recv().is_err(),
        "a refused configuration was applied"
    );

    // meshd goes away: nothing is applied (the last good one stays); a new meshd with the
    // same mesh at the same address is followed again, with only the difference sent.
    meshd.stop();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        configs.try_recv().is_err(),
        "something was applied while meshd was away"
    );
    *refuse.lock().expect("lock") = None;
    let hub = Hub::new("meshd-b".into());
    hub.publish(model("11s"));
    let _meshd = Meshd::start(hub.clone(), addr);
    let third = tokio::time::timeout(Duration::from_secs(20), configs.recv())
        .await
        .ok()
        .flatten()
        .expect("reconnected to the new meshd");
    assert_eq!(timeout_of(&third), "11s");
    assert_eq!(third.services, first.services);
}
