//! Security and telemetry between two real sidecars on loopback: a client sidecar (plain
//! listener, mesh routes) sends to a server sidecar's inbound listener (`defaultEndpoint`),
//! which forwards to a test backend. mTLS with SPIFFE identities, PeerAuthentication modes,
//! bad certificates, rotation under load, authorization, rate limits, tracing to a test
//! collector, access logs.

mod support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use support::backend::{self, Backend};
use support::client::{self, get};
use support::pki::{write_credentials, Ca, Validity};
use support::{eventually, free_port, Proxy};

const HOST: &str = "svc.test.svc.cluster.local";

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The server sidecar's config: inbound on `port` to the backend, with `extra` inbound fields
/// (indented for `inbound:`) and top-level `top`.
fn server_yaml(port: u16, backend: u16, certs: Option<&Path>, inbound: &str, top: &str) -> String {
    let certs = certs
        .map(|d| {
            format!(
                "certificates: {{directory: {}, checkInterval: 100ms}}\n",
                d.display()
            )
        })
        .unwrap_or_default();
    format!(
        "node: {{workload: server, namespace: test, serviceAccount: server, labels: {{app: server}}}}
{certs}listeners:
  - {{name: inbound, address: 127.0.0.1:{port}, defaultEndpoint: 127.0.0.1:{backend}}}
inbound:
  service: {HOST}
  ports: [{{number: {backend}, name: http}}]
{inbound}{top}"
    )
}

/// The client sidecar's config: a plain listener on `port`, the service at the server
/// sidecar with the identity `server_sa`.
fn client_yaml(port: u16, server: u16, certs: Option<&Path>, server_sa: &str, top: &str) -> String {
    let certs = certs
        .map(|d| {
            format!(
                "certificates: {{directory: {}, checkInterval: 100ms}}\n",
                d.display()
            )
        })
        .unwrap_or_default();
    format!(
        "node: {{workload: client, namespace: test, serviceAccount: client, labels: {{app: client}}}}
{certs}listeners:
  - {{name: out, address: 127.0.0.1:{port}}}
services:
  - host: {HOST}
    ports: [{{number: 80, name: http}}]
    endpoints:
      - {{address: 127.0.0.1, port: {server}, serviceAccount: {server_sa}, namespace: test, workload: server, labels: {{app: server, security.istio.io/tlsMode: istio}}}}
{top}"
    )
}

struct Pair {
    backend: Backend,
    server: Proxy,
    client: Proxy,
    server_port: u16,
    client_port: u16,
    ca: Ca,
    server_certs: PathBuf,
    client_certs: PathBuf,
    _dir: tempfile::TempDir,
}

struct PairOptions<'a> {
    inbound: &'a str,
    server_top: &'a str,
    client_top: &'a str,
    server_sa: &'a str,
}

impl Default for PairOptions<'_> {
    fn default() -> Self {
        PairOptions {
            inbound: "  peerAuthentication: {mtls: {mode: STRICT}}\n",
            server_top: "",
            client_top: "",
            server_sa: "server",
        }
    }
}

async fn pair(o: PairOptions<'_>) -> Pair {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("mesh");
    let server_certs = write_credentials(
        &dir.path().join("server"),
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    let client_certs = write_credentials(
        &dir.path().join("client"),
        &ca.workload("test", "client", Validity::Now),
        &ca.pem,
    );
    let backend = backend::start("app").await;
    let (server_port, client_port) = (free_port(), free_port());
    let server = Proxy::start(&server_yaml(
        server_port,
        backend.port(),
        Some(&server_certs),
        o.inbound,
        o.server_top,
    ));
    let client = Proxy::start(&client_yaml(
        client_port,
        server_port,
        Some(&client_certs),
        o.server_sa,
        o.client_top,
    ));
    Pair {
        backend,
        server,
        client,
        server_port,
        client_port,
        ca,
        server_certs,
        client_certs,
        _dir: dir,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_between_sidecars_carries_identities() {
    let p = pair(PairOptions::default()).await;
    let r = client::send(addr(p.client_port), get(HOST, "/hello")).await;
    assert_eq!(r.status, 200, "{}", p.client.stderr());
    assert_eq!(r.backend(), Some("app"));
    // The app learns who called, as Istio's sidecars tell it.
    let xfcc = p.backend.last().expect("seen").headers["x-forwarded-client-cert"]
        .to_str()
        .expect("text")
        .to_owned();
    assert!(
        xfcc.starts_with("By=spiffe://cluster.local/ns/test/sa/server;Hash=")
            && xfcc.ends_with(";Subject=\"\";URI=spiffe://cluster.local/ns/test/sa/client"),
        "{xfcc}"
    );
    let server_side = [
        ("reporter", "destination"),
        ("connection_security_policy", "mutual_tls"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/test/sa/client",
        ),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/test/sa/server",
        ),
        ("response_code", "200"),
    ];
    assert!(
        eventually(Duration::from_secs(3), || {
            p.server.metric("istio_requests_total", &server_side) == 1.0
        }),
        "{}",
        p.server.metrics_text()
    );
    let client_side = [
        ("reporter", "source"),
        ("connection_security_policy", "unknown"),
        (
            "source_principal",
            "spiffe://cluster.local/ns/test/sa/client",
        ),
        (
            "destination_principal",
            "spiffe://cluster.local/ns/test/sa/server",
        ),
    ];
    assert!(eventually(Duration::from_secs(3), || {
        p.client.metric("istio_requests_total", &client_side) == 1.0
    }));
    // Expiry is watched: the gauge is the certificate's notAfter (2099-01-01).
    assert_eq!(
        p.server
            .metric("mesh_proxy_cert_expiry_timestamp_seconds", &[]),
        4_070_908_800.0
    );
    // Sessions are reused: more requests, still one upstream connection.
    for _ in 0..5 {
        assert_eq!(
            client::send(addr(p.client_port), get(HOST, "/again"))
                .await
                .status,
            200
        );
    }
    assert_eq!(p.backend.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_with_the_wrong_identity_is_refused() {
    let p = pair(PairOptions {
        server_sa: "someone-else",
        ..PairOptions::default()
    })
    .await;
    let r = client::send(addr(p.client_port), get(HOST, "/")).await;
    assert_eq!(r.status, 503);
    assert_eq!(p.backend.count(), 0);
    assert!(
        p.client.metric(
            "mesh_proxy_tls_handshake_errors_total",
            &[("side", "outbound"), ("reason", "wrong_identity")]
        ) >= 1.0
    );
    assert!(eventually(Duration::from_secs(2), || p
        .client
        .stderr()
        .contains("it is not who the config expects")));
    assert!(eventually(Duration::from_secs(3), || {
        p.client
            .metric("istio_requests_total", &[("response_flags", "UF,URX")])
            + p.client
                .metric("istio_requests_total", &[("response_flags", "UF")])
            >= 1.0
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_refuses_plaintext_with_a_metric_and_a_log_line() {
    let p = pair(PairOptions::default()).await;
    let (out, closed) = client::raw(
        addr(p.server_port),
        format!("GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n").as_bytes(),
        Duration::from_secs(5),
    );
    assert!(closed && out.is_empty(), "answered plaintext: {out}");
    assert_eq!(p.backend.count(), 0);
    assert_eq!(
        p.server
            .metric("mesh_proxy_inbound_plaintext_refused_total", &[]),
        1.0
    );
    assert!(eventually(Duration::from_secs(2), || p
        .server
        .stderr()
        .contains("the port requires mTLS (PeerAuthentication STRICT)")));
    // mTLS still works.
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/"))
            .await
            .status,
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_accepts_plaintext_and_mtls_on_one_port() {
    let p = pair(PairOptions {
        inbound: "  peerAuthentication: {mtls: {mode: PERMISSIVE}}\n",
        ..PairOptions::default()
    })
    .await;
    let plain = client::send(
        addr(p.server_port),
        get(HOST, "/plain").header("x-forwarded-client-cert", "URI=spiffe://forged"),
    )
    .await;
    assert_eq!(plain.status, 200);
    // A plaintext client cannot claim an identity.
    assert!(!p
        .backend
        .last()
        .expect("seen")
        .headers
        .contains_key("x-forwarded-client-cert"));
    let mtls = client::send(addr(p.client_port), get(HOST, "/mtls")).await;
    assert_eq!(mtls.status, 200);
    assert!(
        eventually(Duration::from_secs(3), || {
            p.server.metric(
                "istio_requests_total",
                &[
                    ("connection_security_policy", "none"),
                    ("source_principal", "unknown"),
                ],
            ) == 1.0
                && p.server.metric(
                    "istio_requests_total",
                    &[("connection_security_policy", "mutual_tls")],
                ) == 1.0
        }),
        "{}",
        p.server.metrics_text()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_level_mtls_overrides_the_workload_mode() {
    let backend = backend::start("app").await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("mesh");
    let certs = write_credentials(
        dir.path(),
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    let port = free_port();
    let inbound = format!(
        "  peerAuthentication: {{mtls: {{mode: STRICT}}, portLevelMtls: {{{}: {{mode: DISABLE}}}}}}\n",
        backend.port()
    );
    let server = Proxy::start(&server_yaml(
        port,
        backend.port(),
        Some(&certs),
        &inbound,
        "",
    ));
    let r = client::send(addr(port), get(HOST, "/")).await;
    assert_eq!(r.status, 200, "the DISABLE port takes plaintext");
    assert_eq!(
        server.metric("mesh_proxy_inbound_plaintext_refused_total", &[]),
        0.0
    );
}

/// A client sidecar with `cert` for a STRICT server of the mesh's root.
async fn client_with_cert(validity: Validity, other_ca: bool) -> (Pair, Proxy) {
    let p = pair(PairOptions::default()).await;
    let dir = p.client_certs.parent().expect("parent").join("bad");
    let ca = if other_ca {
        Ca::new("other")
    } else {
        Ca::new("unused")
    };
    let issuer = if other_ca { &ca } else { &p.ca };
    let roots = format!(
        "{}{}",
        p.ca.pem,
        if other_ca { ca.pem.as_str() } else { "" }
    );
    let certs = write_credentials(&dir, &issuer.workload("test", "client", validity), &roots);
    let port = free_port();
    let bad = Proxy::start(&client_yaml(
        port,
        p.server_port,
        Some(&certs),
        "server",
        "",
    ));
    (p, bad)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_not_yet_valid_and_foreign_client_certificates_are_refused() {
    for (validity, other, reason) in [
        (Validity::Expired, false, "expired"),
        (Validity::NotYetValid, false, "not_yet_valid"),
        (Validity::Now, true, "untrusted"),
    ] {
        let (p, bad) = client_with_cert(validity, other).await;
        let listen = bad_listener_port(&bad);
        let r = client::send(addr(listen), get(HOST, "/")).await;
        assert_eq!(r.status, 503, "{reason}");
        assert_eq!(p.backend.count(), 0, "{reason}");
        assert!(
            eventually(Duration::from_secs(3), || p.server.metric(
                "mesh_proxy_tls_handshake_errors_total",
                &[("side", "inbound"), ("reason", reason)]
            ) >= 1.0),
            "{reason}: {}",
            p.server.metrics_text()
        );
        assert!(
            eventually(Duration::from_secs(2), || p
                .server
                .stderr()
                .contains("mTLS connection refused")),
            "{reason}"
        );
    }
}

/// The port of the `out` listener in a client sidecar's config.
fn bad_listener_port(p: &Proxy) -> u16 {
    let text = std::fs::read_to_string(&p.config).expect("config");
    let at = text.find("address: 127.0.0.1:").expect("listener") + "address: 127.0.0.1:".len();
    text[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .and_then(|s| s.parse().ok())
        .expect("port")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_certificate_the_client_cannot_trust_is_refused() {
    let p = pair(PairOptions::default()).await;
    // The server's certificate from another root (its roots still trust the client).
    let other = Ca::new("other");
    let roots = format!("{}{}", p.ca.pem, other.pem);
    write_credentials(
        &p.server_certs,
        &other.workload("test", "server", Validity::Now),
        &roots,
    );
    assert!(eventually(Duration::from_secs(5), || {
        p.server.metric("mesh_proxy_cert_loads_total", &[]) >= 2.0
    }));
    let r = client::send(addr(p.client_port), get(HOST, "/")).await;
    assert_eq!(r.status, 503);
    assert!(
        p.client.metric(
            "mesh_proxy_tls_handshake_errors_total",
            &[("side", "outbound"), ("reason", "untrusted")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_certificates_under_load_loses_no_request() {
    let p = pair(PairOptions {
        // New connections often, so that handshakes happen with each certificate.
        client_top: "destinationRules:\n  - host: svc.test.svc.cluster.local\n    trafficPolicy: {connectionPool: {http: {maxRequestsPerConnection: 3}}}\n",
        ..PairOptions::default()
    })
    .await;
    let failures = Arc::new(Mutex::new(Vec::new()));
    let mut workers = Vec::new();
    for w in 0..4 {
        let failures = failures.clone();
        let port = p.client_port;
        workers.push(tokio::spawn(async move {
            let mut h1 = client::H1::connect(addr(port)).await;
            for i in 0..150 {
                let path = format!("/w{w}/{i}");
                let r = h1.send(get(HOST, &path)).await;
                if r.status != 200 {
                    failures.lock().unwrap().push((path, r.status, r.body));
                }
            }
        }));
    }
    // Three rotations on each side while the requests run.
    for round in 0..3 {
        let s = p.ca.workload("test", "server", Validity::Now);
        write_credentials(&p.server_certs, &s, &p.ca.pem);
        let c = p.ca.workload("test", "client", Validity::Now);
        write_credentials(&p.client_certs, &c, &p.ca.pem);
        let want = 2.0 + round as f64;
        assert!(eventually(Duration::from_secs(5), || {
            p.server.metric("mesh_proxy_cert_loads_total", &[]) >= want
                && p.client.metric("mesh_proxy_cert_loads_total", &[]) >= want
        }));
    }
    for w in workers {
        w.await.expect("worker");
    }
    let f = failures.lock().unwrap();
    assert!(f.is_empty(), "failed during rotation: {f:?}");
    assert_eq!(p.backend.count(), 600);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_certificates_make_the_proxy_unready_and_bad_ones_keep_the_previous() {
    let dir = tempfile::tempdir().expect("dir");
    let certs = dir.path().join("creds");
    let backend = backend::start("app").await;
    let port = free_port();
    let server = Proxy::with_config(&server_yaml(
        port,
        backend.port(),
        Some(&certs),
        "  peerAuthentication: {mtls: {mode: PERMISSIVE}}\n",
        "",
    ))
    .no_wait()
    .start();
    // Configured, but no certificate yet: not ready.
    assert!(eventually(Duration::from_secs(5), || {
        server
            .stderr()
            .contains("no workload certificate loaded (not ready)")
    }));
    assert_eq!(
        client::blocking_status(server.health, "/healthz/ready"),
        Some(503)
    );
    let ca = Ca::new("mesh");
    write_credentials(
        &certs,
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    server.wait_ready();
    // A broken chain file: the previous credentials stay in force, the proxy stays ready.
    let errors = server.metric("mesh_proxy_cert_reload_errors_total", &[]);
    std::fs::write(certs.join("cert-chain.pem"), "not a certificate").expect("write");
    assert!(eventually(Duration::from_secs(5), || {
        server.metric("mesh_proxy_cert_reload_errors_total", &[]) > errors
    }));
    assert!(eventually(Duration::from_secs(2), || server
        .stderr()
        .contains(
            "workload certificate not reloaded, the previous one stays in force"
        )));
    assert_eq!(
        client::blocking_status(server.health, "/healthz/ready"),
        Some(200)
    );
    // A chain that does not go with the key is refused too.
    let other = ca.workload("test", "server", Validity::Now);
    std::fs::write(certs.join("cert-chain.pem"), &other.chain_pem).expect("write");
    let errors = server.metric("mesh_proxy_cert_reload_errors_total", &[]);
    assert!(eventually(Duration::from_secs(5), || {
        server.metric("mesh_proxy_cert_reload_errors_total", &[]) > errors
    }));
    assert!(eventually(Duration::from_secs(2), || server
        .stderr()
        .contains("do not go together")));
    assert_eq!(server.metric("mesh_proxy_cert_loads_total", &[]), 1.0);
}

/// Every rule kind of AuthorizationPolicy, on one server: each path is governed by one rule.
const POLICIES: &str = "  authorizationPolicies:
    - name: deny
      namespace: test
      action: DENY
      rules:
        - to: [{operation: {paths: [/denied]}}]
        - when: [{key: 'request.headers[x-deny]', values: [yes]}]
    - name: audit
      namespace: test
      action: AUDIT
      rules:
        - to: [{operation: {paths: [/audited]}}]
    - name: allow
      namespace: test
      action: ALLOW
      rules:
        - from: [{source: {principals: [cluster.local/ns/test/sa/client]}}]
          to: [{operation: {paths: ['/principal/*']}}]
        - from: [{source: {notPrincipals: ['*/sa/client']}}]
          to: [{operation: {paths: [/not-principal]}}]
        - from: [{source: {namespaces: [test]}}]
          to: [{operation: {paths: [/namespace]}}]
        - from: [{source: {notNamespaces: [test]}}]
          to: [{operation: {paths: [/not-namespace]}}]
        - from: [{source: {ipBlocks: [127.0.0.0/8]}}]
          to: [{operation: {paths: [/ip]}}]
        - from: [{source: {notIpBlocks: [127.0.0.1]}}]
          to: [{operation: {paths: [/not-ip]}}]
        - from: [{source: {remoteIpBlocks: [127.0.0.1/32]}}]
          to: [{operation: {paths: [/remote-ip]}}]
        - to: [{operation: {methods: [POST], paths: [/method]}}]
        - to: [{operation: {notMethods: [GET], paths: [/not-method]}}]
        - to: [{operation: {hosts: ['*.test.svc.cluster.local'], paths: [/host]}}]
        - to: [{operation: {notHosts: ['*.test.svc.cluster.local'], paths: [/not-host]}}]
        - to: [{operation: {ports: ['BACKEND'], paths: [/port]}}]
        - to: [{operation: {notPorts: ['BACKEND'], paths: [/not-port]}}]
        - to: [{operation: {paths: ['*.html']}}]
        - to: [{operation: {paths: ['/open/*'], notPaths: [/open/secret]}}]
        - to: [{operation: {paths: [/header]}}]
          when: [{key: 'request.headers[x-user]', values: [alice, 'bo*']}]
        - to: [{operation: {paths: [/when-principal]}}]
          when: [{key: source.principal, values: [cluster.local/ns/test/sa/client]}]
        - to: [{operation: {paths: [/when-namespace]}}]
          when: [{key: source.namespace, notValues: [test]}]
        - to: [{operation: {paths: [/when-ip]}}]
          when: [{key: source.ip, values: [127.0.0.1/32]}, {key: destination.port, values: ['BACKEND']}]
        - to: [{operation: {paths: [/denied, /audited]}}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_authorization_rule_kind_allows_and_denies() {
    let backend = backend::start("app").await;
    let inbound = format!(
        "  peerAuthentication: {{mtls: {{mode: PERMISSIVE}}}}\n{}",
        POLICIES.replace("BACKEND", &backend.port().to_string())
    );
    // Built by hand (not `pair`) to share the backend port in the policy.
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("mesh");
    let sc = write_credentials(
        &dir.path().join("s"),
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    let cc = write_credentials(
        &dir.path().join("c"),
        &ca.workload("test", "client", Validity::Now),
        &ca.pem,
    );
    let (sp, cp) = (free_port(), free_port());
    let server = Proxy::start(&server_yaml(sp, backend.port(), Some(&sc), &inbound, ""));
    let _client = Proxy::start(&client_yaml(cp, sp, Some(&cc), "server", ""));

    // (path, method, header, through mTLS, expected status)
    type Case<'a> = (&'a str, &'a str, Option<(&'a str, &'a str)>, bool, u16);
    let cases: &[Case<'_>] = &[
        ("/principal/x", "GET", None, true, 200),
        ("/principal/x", "GET", None, false, 403),
        ("/not-principal", "GET", None, true, 403),
        ("/not-principal", "GET", None, false, 200),
        ("/namespace", "GET", None, true, 200),
        ("/namespace", "GET", None, false, 403),
        ("/not-namespace", "GET", None, true, 403),
        ("/not-namespace", "GET", None, false, 200),
        ("/ip", "GET", None, false, 200),
        ("/not-ip", "GET", None, false, 403),
        ("/remote-ip", "GET", None, false, 200),
        ("/method", "POST", None, false, 200),
        ("/method", "GET", None, false, 403),
        ("/not-method", "PUT", None, false, 200),
        ("/not-method", "GET", None, false, 403),
        ("/host", "GET", None, false, 200),
        ("/not-host", "GET", None, false, 403),
        ("/port", "GET", None, false, 200),
        ("/not-port", "GET", None, false, 403),
        ("/page.html", "GET", None, false, 200),
        ("/page.htm", "GET", None, false, 403),
        ("/open/file", "GET", None, false, 200),
        ("/open/secret", "GET", None, false, 403),
        ("/open/../principal/x", "GET", None, false, 403),
        ("/header", "GET", Some(("x-user", "alice")), false, 200),
        ("/header", "GET", Some(("x-user", "bob")), false, 200),
        ("/header", "GET", Some(("x-user", "carol")), false, 403),
        ("/header", "GET", None, false, 403),
        ("/when-principal", "GET", None, true, 200),
        ("/when-principal", "GET", None, false, 403),
        ("/when-namespace", "GET", None, true, 403),
        ("/when-namespace", "GET", None, false, 200),
        ("/when-ip", "GET", None, false, 200),
        // DENY wins over an ALLOW that matches.
        ("/denied", "GET", None, false, 403),
        ("/namespace", "GET", Some(("x-deny", "yes")), true, 403),
        // AUDIT changes nothing.
        ("/audited", "GET", None, false, 200),
        // Nothing allows it: deny by default once an ALLOW policy applies.
        ("/elsewhere", "GET", None, false, 403),
    ];
    let mut wrong = Vec::new();
    for (path, method, header, mtls, want) in cases {
        let to = if *mtls { addr(cp) } else { addr(sp) };
        let mut req = get(HOST, path).method(method);
        if let Some((k, v)) = header {
            req = req.header(k, v);
        }
        let r = client::send(to, req).await;
        if r.status != *want {
            wrong.push(format!(
                "{method} {path} {header:?} mtls={mtls}: {} (want {want})",
                r.status
            ));
        }
        if r.status == 403 && r.body != "RBAC: access denied" {
            wrong.push(format!("{path}: 403 body {:?}", r.body));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    assert_eq!(server.metric("mesh_proxy_rbac_audited_total", &[]), 1.0);
    assert!(server.metric("mesh_proxy_rbac_denied_total", &[]) >= 15.0);

    // A policy that does not parse is refused whole; the old policies stay.
    let generation = server.generation();
    let broken = server_yaml(
        sp,
        backend.port(),
        Some(&sc),
        "  authorizationPolicies:\n    - {name: bad, action: ALLOW, rules: [{from: [{source: {ipBlocks: [10.0.0.0/99]}}]}]}\n",
        "",
    );
    std::fs::write(&server.config, broken).expect("write");
    assert!(eventually(Duration::from_secs(5), || server
        .stderr()
        .contains("10.0.0.0/99")));
    assert_eq!(server.generation(), generation);
    assert_eq!(
        client::send(addr(sp), get(HOST, "/elsewhere")).await.status,
        403
    );
    assert_eq!(client::send(addr(sp), get(HOST, "/ip")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_connections_are_authorized_by_their_attributes() {
    let echo = backend::tcp_echo(None).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("mesh");
    let sc = write_credentials(
        &dir.path().join("s"),
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    let sp = free_port();
    // ALLOW from the client's principal only; a DENY with an HTTP-only field denies the port
    // on TCP (Istio drops the HTTP-only field).
    let policies = |deny: &str| {
        format!(
            "  peerAuthentication: {{mtls: {{mode: PERMISSIVE}}}}
  ports: [{{number: {}, name: tcp}}]
  authorizationPolicies:
    - name: allow
      namespace: test
      rules: [{{from: [{{source: {{principals: [cluster.local/ns/test/sa/client]}}}}]}}]
{deny}",
            echo.port()
        )
    };
    let yaml = |deny: &str| {
        format!(
            "node: {{workload: server, namespace: test, serviceAccount: server}}
certificates: {{directory: {}, checkInterval: 100ms}}
accessLog: {{mode: ON, encoding: JSON}}
listeners:
  - {{name: inbound, address: 127.0.0.1:{sp}, defaultEndpoint: {echo}}}
inbound:
{}",
            sc.display(),
            policies(deny)
        )
    };
    let server = Proxy::start(&yaml(""));
    // Plaintext: no principal, closed without reaching the app.
    let (out, closed) = client::raw(addr(sp), b"ping", Duration::from_secs(5));
    assert!(closed && out.is_empty(), "got {out:?}");
    // Through a client sidecar with mTLS: allowed.
    let cc = write_credentials(
        &dir.path().join("c"),
        &ca.workload("test", "client", Validity::Now),
        &ca.pem,
    );
    let cp = free_port();
    let _client = Proxy::start(&format!(
        "node: {{workload: client, namespace: test, serviceAccount: client}}
certificates: {{directory: {}}}
listeners:
  - {{name: out, address: 127.0.0.1:{cp}, protocol: TCP, destination: {{host: echo.test.svc.cluster.local}}}}
services:
  - host: echo.test.svc.cluster.local
    ports: [{{number: 7, name: tcp}}]
    endpoints: [{{address: 127.0.0.1, port: {sp}, serviceAccount: server, namespace: test, labels: {{security.istio.io/tlsMode: istio}}}}]
",
        cc.display()
    ));
    let (out, _) = client::raw(addr(cp), b"ping", Duration::from_millis(500));
    assert_eq!(out, "ping");
    // The connection is in the server's access log, with the peer's identity.
    assert!(eventually(Duration::from_secs(3), || server
        .stdout()
        .contains("\"method\":\"-\"")));
    let line = server.stdout();
    let tcp: serde_json::Value = serde_json::from_str(
        line.lines()
            .find(|l| l.contains("\"method\":\"-\""))
            .expect("tcp line"),
    )
    .expect("json");
    assert_eq!(tcp["bytes_received"], 4);
    assert_eq!(tcp["bytes_sent"], 4);
    assert_eq!(
        tcp["downstream_peer_uri_san"],
        "spiffe://cluster.local/ns/test/sa/client"
    );
    // The DENY with a method on TCP: the port is denied to everyone.
    let before = server.generation();
    std::fs::write(
        &server.config,
        yaml("    - {name: deny, namespace: test, action: DENY, rules: [{to: [{operation: {methods: [GET]}}]}]}\n"),
    )
    .expect("write");
    assert!(eventually(Duration::from_secs(5), || server.generation() > before));
    let (out, _) = client::raw(addr(cp), b"ping", Duration::from_millis(500));
    assert_eq!(out, "");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_hold_per_inbound_port_and_per_route() {
    let p = pair(PairOptions {
        inbound: "  peerAuthentication: {mtls: {mode: PERMISSIVE}}
  rateLimits: [{tokenBucket: {maxTokens: 3, fillInterval: 1h}}]
",
        client_top: "virtualServices:
  - hosts: [svc.test.svc.cluster.local]
    http:
      - match: [{uri: {prefix: /limited}}]
        localRateLimit: {maxTokens: 2, fillInterval: 1h}
        route: [{destination: {host: svc.test.svc.cluster.local}}]
      - route: [{destination: {host: svc.test.svc.cluster.local}}]
",
        ..PairOptions::default()
    })
    .await;
    // The route's bucket at the client sidecar: 2, then 429.
    let mut codes = Vec::new();
    for _ in 0..3 {
        codes.push(
            client::send(addr(p.client_port), get(HOST, "/limited"))
                .await
                .status,
        );
    }
    assert_eq!(codes, [200, 200, 429]);
    // The server's port bucket held 3: two went to /limited, one is left.
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/other"))
            .await
            .status,
        200
    );
    let r = client::send(addr(p.server_port), get(HOST, "/direct")).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.body, "local_rate_limited");
    assert!(eventually(Duration::from_secs(3), || {
        p.server.metric(
            "istio_requests_total",
            &[("response_code", "429"), ("response_flags", "RL")],
        ) == 1.0
            && p.client.metric(
                "istio_requests_total",
                &[("response_code", "429"), ("response_flags", "RL")],
            ) == 1.0
    }));
    assert_eq!(p.backend.count(), 3);
    // A new snapshot with the same limits keeps the emptied buckets.
    let yaml = std::fs::read_to_string(&p.server.config).expect("config") + "drainTimeout: 6s\n";
    p.server.reload(&yaml);
    let yaml = std::fs::read_to_string(&p.client.config).expect("config") + "drainTimeout: 6s\n";
    p.client.reload(&yaml);
    assert_eq!(
        client::send(addr(p.server_port), get(HOST, "/direct"))
            .await
            .status,
        429
    );
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/limited"))
            .await
            .status,
        429
    );
}

/// A Zipkin collector: keeps every span POSTed to /api/v2/spans.
async fn collector() -> (u16, Arc<Mutex<Vec<serde_json::Value>>>) {
    use hyper::service::service_fn;
    let spans: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let keep = spans.clone();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let keep = keep.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req: http::Request<hyper::body::Incoming>| {
                    let keep = keep.clone();
                    async move {
                        use http_body_util::BodyExt;
                        let path = req.uri().path().to_owned();
                        let body = req.into_body().collect().await?.to_bytes();
                        if path == "/api/v2/spans" {
                            if let Ok(serde_json::Value::Array(a)) = serde_json::from_slice(&body) {
                                keep.lock().unwrap().extend(a);
                            }
                        }
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .status(202)
                                .body(http_body_util::Full::new(bytes::Bytes::new()))
                                .expect("response"),
                        )
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (port, spans)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traces_arrive_at_the_collector_with_parent_and_child_ids() {
    let (zipkin, spans) = collector().await;
    let tracing = format!(
        "tracing: {{sampling: 100, zipkin: {{address: 127.0.0.1:{zipkin}}}, flushInterval: 50ms}}\n"
    );
    let p = pair(PairOptions {
        server_top: &tracing,
        client_top: &tracing,
        ..PairOptions::default()
    })
    .await;
    // A request that starts a trace, and one that continues the app's W3C trace.
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/new"))
            .await
            .status,
        200
    );
    let app_parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let r = client::send(
        addr(p.client_port),
        get(HOST, "/continued").header("traceparent", app_parent),
    )
    .await;
    assert_eq!(r.status, 200);
    assert!(eventually(Duration::from_secs(5), || spans
        .lock()
        .unwrap()
        .len()
        >= 4));
    let spans = spans.lock().unwrap().clone();
    let find = |kind: &str, path: &str| {
        spans
            .iter()
            .find(|s| s["kind"] == kind && s["name"].as_str().is_some_and(|n| n.ends_with(path)))
            .cloned()
            .unwrap_or_else(|| panic!("no {kind} span for {path}: {spans:?}"))
    };
    let seen = p.backend.seen();
    for path in ["/new", "/continued"] {
        let client_span = find("CLIENT", path);
        let server_span = find("SERVER", path);
        assert_eq!(client_span["traceId"], server_span["traceId"], "{path}");
        assert_eq!(server_span["parentId"], client_span["id"], "{path}");
        // The app sees the server sidecar's span as its parent, in both header forms.
        let req = seen.iter().find(|s| s.path == path).expect("seen");
        let tp = req.headers["traceparent"].to_str().expect("text");
        assert_eq!(
            tp,
            format!(
                "00-{}-{}-01",
                server_span["traceId"].as_str().unwrap(),
                server_span["id"].as_str().unwrap()
            )
        );
        assert_eq!(
            req.headers["x-b3-spanid"],
            server_span["id"].as_str().unwrap()
        );
        assert!(req.headers.contains_key("x-request-id"));
        assert_eq!(server_span["tags"]["http.status_code"], "200");
    }
    let continued = find("CLIENT", "/continued");
    assert_eq!(continued["traceId"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(continued["parentId"], "00f067aa0ba902b7");
    assert!(find("CLIENT", "/new").get("parentId").is_none());
    assert!(p.client.metric("mesh_proxy_spans_exported_total", &[]) >= 2.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sampling_zero_propagates_without_exporting() {
    let (zipkin, spans) = collector().await;
    let tracing = format!(
        "tracing: {{sampling: 0, zipkin: {{address: 127.0.0.1:{zipkin}}}, flushInterval: 20ms}}\n"
    );
    let p = pair(PairOptions {
        client_top: &tracing,
        ..PairOptions::default()
    })
    .await;
    for _ in 0..5 {
        assert_eq!(
            client::send(addr(p.client_port), get(HOST, "/"))
                .await
                .status,
            200
        );
    }
    let seen = p.backend.seen();
    assert!(seen.iter().all(|s| s
        .headers
        .get("traceparent")
        .is_some_and(|v| v.to_str().unwrap().ends_with("-00"))));
    assert_eq!(p.client.metric("mesh_proxy_spans_exported_total", &[]), 0.0);
    assert!(spans.lock().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_log_lines_parse() {
    let p = pair(PairOptions {
        server_top: "accessLog: {mode: ON, encoding: JSON}\n",
        client_top: "accessLog: {mode: ERRORS, encoding: TEXT}\n",
        inbound: "  peerAuthentication: {mtls: {mode: STRICT}}
  authorizationPolicies: [{name: deny, namespace: test, action: DENY, rules: [{to: [{operation: {paths: [/forbidden]}}]}]}]
",
        ..PairOptions::default()
    })
    .await;
    assert_eq!(
        client::send(
            addr(p.client_port),
            get(HOST, "/ok?x=1").header("user-agent", "tester")
        )
        .await
        .status,
        200
    );
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/forbidden"))
            .await
            .status,
        403
    );
    assert!(eventually(Duration::from_secs(3), || p
        .server
        .stdout()
        .lines()
        .count()
        >= 2));
    let lines: Vec<serde_json::Value> = p
        .server
        .stdout()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect();
    let ok = &lines[0];
    assert_eq!(ok["method"], "GET");
    assert_eq!(ok["path"], "/ok?x=1");
    assert_eq!(ok["response_code"], 200);
    assert_eq!(ok["response_flags"], "-");
    assert_eq!(ok["user_agent"], "tester");
    assert_eq!(ok["authority"], HOST);
    assert_eq!(
        ok["downstream_peer_uri_san"],
        "spiffe://cluster.local/ns/test/sa/client"
    );
    assert_eq!(
        ok["upstream_host"],
        format!("127.0.0.1:{}", p.backend.port())
    );
    assert!(ok["start_time"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert!(ok["request_id"].as_str().is_some_and(|id| id.len() == 36));
    let denied = &lines[1];
    assert_eq!(denied["response_code"], 403);
    assert_eq!(denied["response_code_details"], "rbac_access_denied");
    // The client logs errors only: the 403, in Istio's text format.
    assert!(eventually(Duration::from_secs(3), || !p
        .client
        .stdout()
        .is_empty()));
    let out = p.client.stdout();
    let text: Vec<&str> = out.lines().collect();
    assert_eq!(text.len(), 1, "{out}");
    let l = text[0];
    assert!(
        l.starts_with('[') && l.contains("Z] \"GET /forbidden HTTP/1.1\" 403 - via_upstream"),
        "{l}"
    );
    assert!(
        l.contains(&format!(
            "\"127.0.0.1:{}\" outbound|80||{HOST}",
            p.server_port
        )),
        "{l}"
    );
    // The same request id on both sides.
    let id = denied["request_id"].as_str().expect("id");
    assert!(l.contains(id), "{l}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_between_sidecars_is_negotiated_by_alpn() {
    let p = pair(PairOptions {
        client_top: "destinationRules:\n  - host: svc.test.svc.cluster.local\n    trafficPolicy: {connectionPool: {http: {h2UpgradePolicy: UPGRADE}}}\n",
        ..PairOptions::default()
    })
    .await;
    let r = client::send(addr(p.client_port), get(HOST, "/h2")).await;
    assert_eq!(r.status, 200, "{}", p.server.stderr());
    // The server sidecar spoke HTTP/2 inside the mTLS (it keeps the client's protocol).
    assert_eq!(p.backend.last().expect("seen").version, "HTTP/2.0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissive_passes_an_applications_own_tls_to_it() {
    let echo = backend::tcp_echo(None).await;
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("mesh");
    let sc = write_credentials(
        dir.path(),
        &ca.workload("test", "server", Validity::Now),
        &ca.pem,
    );
    let sp = free_port();
    let _server = Proxy::start(&format!(
        "node: {{workload: server, namespace: test, serviceAccount: server}}
certificates: {{directory: {}}}
listeners: [{{name: inbound, address: '127.0.0.1:{sp}', defaultEndpoint: '{echo}'}}]
inbound:
  peerAuthentication: {{mtls: {{mode: PERMISSIVE}}}}
",
        sc.display()
    ));
    // A ClientHello that is not the mesh's (ALPN h2): it reaches the app byte for byte.
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(rustls::RootCertStore::empty())
    .with_no_client_auth();
    cfg.alpn_protocols = vec![b"h2".to_vec()];
    let mut conn =
        rustls::ClientConnection::new(Arc::new(cfg), "app.example".try_into().expect("name"))
            .expect("client");
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).expect("hello");
    let (out, _) = client::raw_bytes(addr(sp), &hello, Duration::from_millis(800));
    assert_eq!(out, hello);
}

/// An HTTPS server (rustls) answering 200 with `x-client-cert: yes|no`; with `ca`, client
/// certificates from it are required.
async fn tls_server(cert: &support::pki::Workload, client_ca: Option<&str>) -> u16 {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(cert.chain_pem.as_bytes())
            .collect::<Result<_, _>>()
            .expect("chain");
    let key = PrivateKeyDer::from_pem_slice(cert.key_pem.as_bytes()).expect("key");
    let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .expect("versions");
    let builder = match client_ca {
        Some(pem) => {
            let mut roots = rustls::RootCertStore::empty();
            for c in CertificateDer::pem_slice_iter(pem.as_bytes()) {
                roots.add(c.expect("root")).expect("add");
            }
            builder.with_client_cert_verifier(
                rustls::server::WebPkiClientVerifier::builder_with_provider(
                    Arc::new(roots),
                    provider,
                )
                .build()
                .expect("verifier"),
            )
        }
        None => builder.with_no_client_auth(),
    };
    let mut cfg = builder.with_single_cert(chain, key).expect("server config");
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        loop {
            let Ok((s, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(s).await else {
                    return;
                };
                let has_cert = tls.get_ref().1.peer_certificates().is_some();
                let svc = hyper::service::service_fn(
                    move |_req: http::Request<hyper::body::Incoming>| async move {
                        Ok::<_, hyper::Error>(
                            http::Response::builder()
                                .header("x-client-cert", if has_cert { "yes" } else { "no" })
                                .body(http_body_util::Full::new(bytes::Bytes::from_static(
                                    b"tls-app",
                                )))
                                .expect("response"),
                        )
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tls), svc)
                    .await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_tls_modes_simple_mutual_and_disable() {
    let dir = tempfile::tempdir().expect("dir");
    let ca = Ca::new("external");
    let server_cert = ca.dns("api.example");
    let client_cert = ca.dns("client.example");
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).expect("write");
        p.display().to_string()
    };
    let ca_file = write("ca.pem", &ca.pem);
    let cert_file = write("client.pem", &client_cert.chain_pem);
    let key_file = write("client.key", &client_cert.key_pem);
    let simple = tls_server(&server_cert, None).await;
    let mutual = tls_server(&server_cert, Some(&ca.pem)).await;
    let port = free_port();
    let svc = |name: &str, upstream: u16| {
        format!(
            "  - host: {name}.ext\n    ports: [{{number: 443, name: http}}]\n    endpoints: [{{address: 127.0.0.1, port: {upstream}}}]\n"
        )
    };
    let services = [
        ("simple", simple, format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: api.example}}")),
        ("mutual", mutual, format!("{{mode: MUTUAL, caCertificates: {ca_file}, sni: api.example, clientCertificate: {cert_file}, privateKey: {key_file}}}")),
        ("no-client-cert", mutual, format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: api.example}}")),
        ("wrong-name", simple, format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: other.example}}")),
        ("wrong-san", simple, format!("{{mode: SIMPLE, caCertificates: {ca_file}, sni: api.example, subjectAltNames: [spiffe://x]}}")),
        ("skip-verify", simple, "{mode: SIMPLE, sni: api.example, insecureSkipVerify: true}".to_owned()),
        ("untrusted", simple, "{mode: SIMPLE, caCertificates: CA2, sni: api.example}".to_owned()),
        ("disabled", simple, "{mode: DISABLE}".to_owned()),
    ];
    let other = Ca::new("other");
    let ca2 = write("ca2.pem", &other.pem);
    let mut yaml = format!("listeners: [{{name: out, address: '127.0.0.1:{port}'}}]\nservices:\n");
    let mut rules = String::from("destinationRules:\n");
    for (name, upstream, tls) in &services {
        yaml.push_str(&svc(name, *upstream));
        rules.push_str(&format!(
            "  - host: {name}.ext\n    trafficPolicy: {{tls: {}}}\n",
            tls.replace("CA2", &ca2)
        ));
    }
    yaml.push_str(&rules);
    let p = Proxy::start(&yaml);
    let status = |name: &'static str| async move {
        let r = client::send(addr(port), get(&format!("{name}.ext"), "/")).await;
        (r.status, r.header("x-client-cert").map(str::to_owned))
    };
    assert_eq!(status("simple").await, (200, Some("no".into())));
    assert_eq!(status("mutual").await, (200, Some("yes".into())));
    assert_eq!(status("no-client-cert").await.0, 503);
    assert_eq!(status("wrong-name").await.0, 503);
    assert_eq!(status("wrong-san").await.0, 503);
    assert_eq!(status("skip-verify").await, (200, Some("no".into())));
    assert_eq!(status("untrusted").await.0, 503);
    // DISABLE: plaintext to a TLS server, which cannot answer it.
    assert_eq!(status("disabled").await.0, 503);
    assert!(
        p.metric(
            "mesh_proxy_tls_handshake_errors_total",
            &[("side", "outbound"), ("reason", "untrusted")]
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn destination_rule_disable_sends_plaintext_to_a_sidecar() {
    let p = pair(PairOptions {
        inbound: "  peerAuthentication: {mtls: {mode: PERMISSIVE}}\n",
        client_top: "destinationRules:\n  - host: svc.test.svc.cluster.local\n    trafficPolicy: {tls: {mode: DISABLE}}\n",
        ..PairOptions::default()
    })
    .await;
    assert_eq!(
        client::send(addr(p.client_port), get(HOST, "/"))
            .await
            .status,
        200
    );
    assert!(eventually(Duration::from_secs(3), || p.server.metric(
        "istio_requests_total",
        &[("connection_security_policy", "none")]
    ) == 1.0));
    assert_eq!(
        p.server.metric(
            "istio_requests_total",
            &[("connection_security_policy", "mutual_tls")]
        ),
        0.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_own_certificate_is_reported_and_peers_refuse_it() {
    let p = pair(PairOptions::default()).await;
    // The client's certificate in force expires (rotated to an expired one, as a stuck agent
    // would leave it): the proxy says so, and the server refuses it.
    write_credentials(
        &p.client_certs,
        &p.ca.workload("test", "client", Validity::Expired),
        &p.ca.pem,
    );
    assert!(eventually(Duration::from_secs(5), || p
        .client
        .stderr()
        .contains(
            "the workload certificate has expired and was not rotated"
        )));
    assert_eq!(
        p.client
            .metric("mesh_proxy_cert_expiry_timestamp_seconds", &[]),
        1_609_459_200.0
    );
    assert!(p.client.metric("mesh_proxy_cert_expiry_seconds", &[]) < 0.0);
    let r = client::send(addr(p.client_port), get(HOST, "/")).await;
    assert_eq!(r.status, 503);
    assert!(eventually(Duration::from_secs(3), || p.server.metric(
        "mesh_proxy_tls_handshake_errors_total",
        &[("side", "inbound"), ("reason", "expired")]
    ) >= 1.0));
}
