//! The webhook server on a real TLS socket: a client that trusts only the mesh CA and verifies
//! meshd's Service name posts AdmissionReviews, as the API server does.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine as _;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use mesh_controlplane::ca::Ca;
use mesh_controlplane::inject_config::Current;
use mesh_controlplane::metrics::Metrics;
use mesh_controlplane::serving_cert;
use mesh_controlplane::webhook::server::{self, FailurePolicies};
use mesh_inject::config::Source;
use mesh_inject::InjectConfig;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{json, Value};
use tokio::net::{TcpListener, TcpStream};

struct Server {
    addr: std::net::SocketAddr,
    ca: Ca,
    policies: Arc<FailurePolicies>,
}

async fn start() -> Server {
    let ca = Ca::generate("cluster.local", mesh_controlplane::ca::ROOT_VALIDITY).expect("CA");
    let names = serving_cert::dns_names("meshd", "mesh-system");
    let resolver = serving_cert::start(&ca, &names).expect("serving cert");
    let tls = serving_cert::server_config(resolver, &[b"http/1.1"]).expect("TLS config");
    let config = InjectConfig::from_sources(
        &Source {
            origin: "values",
            text: r#"{"proxyImage": "ghcr.io/meshctl/mesh-proxy:0.1.0", "meshdAddress": "meshd.mesh-system.svc:15012"}"#,
        },
        None,
        None,
    )
    .expect("inject config");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let policies = Arc::new(FailurePolicies::default());
    tokio::spawn(server::serve(
        listener,
        tls,
        server::State {
            inject: Current::new(config),
            policies: policies.clone(),
            metrics: Metrics::new(),
        },
    ));
    Server { addr, ca, policies }
}

/// POSTs `body` to `path` over TLS, verifying the server as `meshd.mesh-system.svc`.
async fn post(server: &Server, path: &str, body: Vec<u8>) -> (u16, Vec<u8>) {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(server.ca.root_pem().as_bytes()) {
        roots.add(cert.expect("root PEM")).expect("root");
    }
    let client = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("protocols")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let tcp = TcpStream::connect(server.addr).await.expect("connect");
    let name = ServerName::try_from("meshd.mesh-system.svc").expect("name");
    let tls = tokio_rustls::TlsConnector::from(Arc::new(client))
        .connect(name, tcp)
        .await
        .expect("TLS handshake verifying meshd's Service name");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let request = hyper::Request::post(path)
        .header("host", "meshd.mesh-system.svc")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let response = sender.send_request(request).await.expect("response");
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    (status, body.to_vec())
}

fn review(object: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": "0df28fbd-5f5f-11e8-bc74-36e6bb280816",
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": "shop",
            "operation": "CREATE",
            "object": object,
        }
    }))
    .expect("JSON")
}

fn response(body: &[u8]) -> Value {
    let review: Value = serde_json::from_slice(body).expect("an AdmissionReview");
    assert_eq!(review["kind"], "AdmissionReview");
    review["response"].clone()
}

#[tokio::test]
async fn a_pod_review_is_answered_with_a_json_patch() {
    let server = start().await;
    let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    let (status, body) = post(&server, "/inject", review(pod)).await;
    assert_eq!(status, 200);
    let answer = response(&body);
    assert_eq!(answer["uid"], "0df28fbd-5f5f-11e8-bc74-36e6bb280816");
    assert_eq!(answer["allowed"], true);
    assert_eq!(answer["patchType"], "JSONPatch");
    let patch = base64::engine::general_purpose::STANDARD
        .decode(answer["patch"].as_str().expect("patch"))
        .expect("base64");
    let patch: Value = serde_json::from_slice(&patch).expect("JSON patch");
    assert!(patch.to_string().contains("istio-proxy"), "{patch}");
}

#[tokio::test]
async fn undecodable_reviews_follow_the_failure_policy_and_never_crash_the_server() {
    let server = start().await;
    // Not JSON at all: no uid to answer, so HTTP 400 and the API server applies its policy.
    let (status, _) = post(&server, "/inject", b"{not json".to_vec()).await;
    assert_eq!(status, 400);
    // A readable uid but an object that is not one: injection fails closed ...
    let broken = review(json!("not an object"));
    let (status, body) = post(&server, "/inject", broken.clone()).await;
    assert_eq!(status, 200);
    let answer = response(&body);
    assert_eq!(answer["allowed"], false);
    assert!(
        answer["status"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("not an object"),
        "{answer}"
    );
    // ... and open, with a warning, once its configuration says Ignore.
    server
        .policies
        .inject_ignores
        .store(true, Ordering::Relaxed);
    let (_, body) = post(&server, "/inject", broken.clone()).await;
    let answer = response(&body);
    assert_eq!(answer["allowed"], true);
    assert!(
        answer["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .starts_with("meshd skipped injection"),
        "{answer}"
    );
    // Validation is Ignore by default.
    let (_, body) = post(&server, "/validate", broken).await;
    assert_eq!(response(&body)["allowed"], true);
    // The server still answers after all that.
    let pod = json!({"metadata": {"name": "web"}, "spec": {"containers": [{"name": "web", "image": "nginx"}]}});
    let (status, body) = post(&server, "/inject", review(pod)).await;
    assert_eq!(status, 200);
    assert_eq!(response(&body)["allowed"], true);
}
