//! meshd's certificate authority against the real API server: workload certificates for a CSR
//! authenticated by a real service-account token (TokenReview), the trust bundle in every
//! namespace, and a root rotation during which both roots are trusted.
//!
//! meshd runs as a local process at its kwok pod's IP (see `mesh_e2e::meshd`); the test is the
//! proxy, calling Istio's certificate service over TLS on 15012, verifying meshd's Service name
//! against the root it reads from the trust-bundle ConfigMap, as a sidecar does.

use std::time::Duration;

use mesh_e2e::dashboard::ensure_namespace;
use mesh_e2e::meshd::{install_revision, remove_webhooks, Meshd};
use mesh_e2e::{wait_for, Cluster};
use mesh_xds::ca::istio_certificate_service_client::IstioCertificateServiceClient;
use mesh_xds::ca::IstioCertificateRequest;
use rcgen::{CertificateParams, KeyPair, SanType};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const NS: &str = "e2e-ca";
const APP_NS: &str = "e2e-ca-app";
const REVISION: &str = "ca";

fn csr(identity: &str) -> String {
    let key = KeyPair::generate().expect("key");
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::URI(identity.try_into().expect("URI"))];
    params
        .serialize_request(&key)
        .expect("CSR")
        .pem()
        .expect("PEM")
}

/// The roots published in `ns`, once there.
fn trust_bundle(cluster: &Cluster, ns: &str) -> String {
    wait_for(
        &format!("istio-ca-root-cert in {ns}"),
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&[
                "get",
                "configmap",
                "istio-ca-root-cert",
                "-n",
                ns,
                "-o",
                "jsonpath={.data.root-cert\\.pem}",
            ]);
            let text = String::from_utf8_lossy(&out.stdout).into_owned();
            (out.status.success() && text.contains("BEGIN CERTIFICATE")).then_some(text)
        },
    )
}

fn roots_in(bundle: &str) -> usize {
    bundle.matches("BEGIN CERTIFICATE").count()
}

async fn client(ip: &str, roots: &str) -> IstioCertificateServiceClient<Channel> {
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(roots))
        .domain_name(format!("meshd-{REVISION}.{NS}.svc"));
    let channel = Channel::from_shared(format!("https://{ip}:15012"))
        .expect("URI")
        .tls_config(tls)
        .expect("TLS config")
        .connect()
        .await
        .expect("meshd's TLS gRPC port, verified against the published root");
    IstioCertificateServiceClient::new(channel)
}

async fn request(
    client: &mut IstioCertificateServiceClient<Channel>,
    token: Option<&str>,
    csr: String,
) -> Result<Vec<String>, tonic::Status> {
    let mut request = tonic::Request::new(IstioCertificateRequest {
        csr,
        validity_duration: 3600,
    });
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("header"),
        );
    }
    client
        .create_certificate(request)
        .await
        .map(|r| r.into_inner().cert_chain)
}

fn leaf_identity(pem: &str) -> String {
    let der = rustls_pemfile_der(pem);
    let (_, cert) = x509_parser::parse_x509_certificate(&der).expect("leaf");
    let san = cert.subject_alternative_name().expect("ext").expect("SAN");
    format!("{:?}", san.value.general_names)
}

fn rustls_pemfile_der(pem: &str) -> Vec<u8> {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD
        .decode(body)
        .expect("base64 DER")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workload_certificates_for_the_token_identity_trust_bundles_and_root_rotation() {
    let cluster = Cluster::from_env();
    let _ = cluster.kubectl(&[
        "delete",
        "secret",
        "mesh-ca-secret",
        "-n",
        NS,
        "--ignore-not-found",
    ]);
    let ip = install_revision(&cluster, NS, REVISION);
    let meshd = Meshd::start_with(
        &cluster,
        NS,
        &format!("meshd-{REVISION}"),
        &ip,
        &["--ca-refresh=1s"],
    );

    // The trust bundle reaches a namespace created after meshd started.
    ensure_namespace(&cluster, APP_NS);
    let bundle = trust_bundle(&cluster, APP_NS);
    assert_eq!(roots_in(&bundle), 1);
    let _ = cluster.kubectl(&["create", "serviceaccount", "web", "-n", APP_NS]);
    let token = cluster.kubectl_ok(&[
        "create",
        "token",
        "web",
        "-n",
        APP_NS,
        "--audience",
        "istio-ca",
    ]);
    let token = token.trim();
    let identity = format!("spiffe://cluster.local/ns/{APP_NS}/sa/web");

    let mut ca = client(&ip, &bundle).await;
    let chain = request(&mut ca, Some(token), csr(&identity))
        .await
        .expect("a certificate for the token's identity");
    assert_eq!(chain.len(), 2, "leaf and root");
    assert_eq!(leaf_identity(&chain[0]), format!("[URI({identity:?})]"));
    assert_eq!(chain[1].trim(), bundle.trim());

    // Another identity than the token's is refused, and so are missing and wrong-audience tokens.
    let err = request(
        &mut ca,
        Some(token),
        csr(&format!("spiffe://cluster.local/ns/{APP_NS}/sa/admin")),
    )
    .await
    .expect_err("another identity");
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    assert!(
        err.message()
            .contains("but the caller is spiffe://cluster.local/ns/e2e-ca-app/sa/web"),
        "{err:?}"
    );
    let err = request(&mut ca, None, csr(&identity))
        .await
        .expect_err("no token");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    let other_audience = cluster.kubectl_ok(&["create", "token", "web", "-n", APP_NS]);
    let err = request(&mut ca, Some(other_audience.trim()), csr(&identity))
        .await
        .expect_err("a token for the API server's audience");
    assert_eq!(err.code(), tonic::Code::Unauthenticated, "{err:?}");
    assert!(meshd.log().contains("certificate request refused"));

    // A deleted trust bundle comes back.
    cluster.kubectl_ok(&["delete", "configmap", "istio-ca-root-cert", "-n", APP_NS]);
    assert_eq!(trust_bundle(&cluster, APP_NS).trim(), bundle.trim());

    // Rotation on request: both roots are trusted in every namespace and in the webhooks, and
    // new certificates chain to the new root.
    cluster.kubectl_ok(&[
        "annotate",
        "secret",
        "mesh-ca-secret",
        "-n",
        NS,
        "ca.meshctl.dev/rotate=true",
    ]);
    let rotated = wait_for(
        "the trust bundle with two roots",
        Duration::from_secs(30),
        || {
            let bundle = trust_bundle(&cluster, APP_NS);
            (roots_in(&bundle) == 2).then_some(bundle)
        },
    );
    assert!(
        rotated.contains(bundle.trim()),
        "the old root left the bundle at once"
    );
    wait_for(
        "the webhook caBundle with both roots",
        Duration::from_secs(30),
        || {
            let config = cluster.get_json(&[
                "mutatingwebhookconfiguration",
                &format!("meshd-sidecar-injector-{REVISION}-{NS}"),
            ]);
            let encoded = config["webhooks"][0]["clientConfig"]["caBundle"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            use base64::Engine as _;
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(encoded)
                .unwrap_or_default();
            (roots_in(&String::from_utf8_lossy(&decoded)) == 2).then_some(())
        },
    );
    let mut ca = client(&ip, &rotated).await;
    let chain = request(&mut ca, Some(token), csr(&identity))
        .await
        .expect("issued after rotation");
    assert_eq!(chain.len(), 3, "leaf and both roots");
    assert_ne!(
        chain[1].trim(),
        bundle.trim(),
        "still signing with the old root"
    );

    remove_webhooks(&cluster, NS, REVISION);
    drop(meshd);
    let _ = cluster.kubectl(&["delete", "namespace", APP_NS, "--wait=false"]);
}
