//! `mesh-proxy iptables` for real: the rules are loaded into a network namespace standing in for
//! a pod (a veth pair to the host, as a CNI would set up), and real connections show where
//! they land. Needs root, like the init container.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use mesh_proxy::original_dst::original_dst;

mod support;

const TIMEOUT: Duration = Duration::from_secs(5);

/// A network namespace with a veth pair to the host; removed on drop.
struct Pod {
    name: String,
    host_veth: String,
    host_ip: String,
    pod_ip: String,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip runs");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Pod {
    fn new(tag: u8) -> Pod {
        // SAFETY: geteuid has no preconditions.
        assert_eq!(
            unsafe { libc::geteuid() },
            0,
            "these tests need root (ip netns, iptables), as the init container does"
        );
        let k = (std::process::id() % 200) as u8 + tag;
        let pod = Pod {
            name: format!("mesh-cap-{k}"),
            host_veth: format!("mch{k}"),
            host_ip: format!("10.211.{k}.1"),
            pod_ip: format!("10.211.{k}.2"),
        };
        let pod_veth = format!("mcp{k}");
        let _ = Command::new("ip")
            .args(["netns", "del", &pod.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &pod.host_veth])
            .output();
        ip(&["netns", "add", &pod.name]);
        ip(&[
            "link",
            "add",
            &pod.host_veth,
            "type",
            "veth",
            "peer",
            "name",
            &pod_veth,
        ]);
        ip(&["link", "set", &pod_veth, "netns", &pod.name]);
        ip(&[
            "addr",
            "add",
            &format!("{}/24", pod.host_ip),
            "dev",
            &pod.host_veth,
        ]);
        ip(&["link", "set", &pod.host_veth, "up"]);
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", &pod.name, "ip"];
            full.extend_from_slice(args);
            ip(&full);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&[
            "addr",
            "add",
            &format!("{}/24", pod.pod_ip),
            "dev",
            &pod_veth,
        ]);
        inside(&["link", "set", &pod_veth, "up"]);
        inside(&["route", "add", "default", "via", &pod.host_ip]);
        pod
    }

    /// Runs `f` on a thread that has entered the namespace; sockets it makes live there.
    fn inside<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/var/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace fd affects only this thread.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("namespace thread")
    }

    fn exec(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec!["netns", "exec", &self.name];
        full.extend_from_slice(args);
        Command::new("ip")
            .args(&full)
            .output()
            .expect("ip netns exec runs")
    }

    fn mesh_proxy(&self, args: &[&str]) -> std::process::Output {
        let mut full = vec![env!("CARGO_BIN_EXE_mesh-proxy")];
        full.extend_from_slice(args);
        self.exec(&full)
    }

    fn nat_rules(&self) -> String {
        let out = self.exec(&["iptables-save", "-t", "nat"]);
        assert!(
            out.status.success(),
            "iptables-save: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with('-') || l.starts_with(':'))
            .map(|l| l.split(" [").next().unwrap_or(l).to_owned())
            .collect::<Vec<_>>()
            .join("\n")
    }
}

impl Drop for Pod {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .output();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_veth])
            .output();
    }
}

fn listen(addr: &str) -> TcpListener {
    let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
    l.set_nonblocking(false).expect("blocking");
    l
}

/// Accepts one connection within TIMEOUT.
fn accept(listener: &TcpListener) -> TcpStream {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        match listener.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).expect("blocking");
                return s;
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(
                    std::time::Instant::now() < deadline,
                    "nothing arrived at {:?}",
                    listener.local_addr()
                );
                std::thread::sleep(Duration::from_millis(20));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

fn nothing_pending(listener: &TcpListener) -> bool {
    listener.set_nonblocking(true).expect("nonblocking");
    matches!(listener.accept(), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

fn connect(addr: &str) -> TcpStream {
    let addr: SocketAddr = addr.parse().expect("address");
    TcpStream::connect_timeout(&addr, TIMEOUT).unwrap_or_else(|e| panic!("connect {addr}: {e}"))
}

/// Proves the accepted socket is the client's connection: bytes go through.
fn echo_once(client: &mut TcpStream, server: &mut TcpStream) {
    client.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    server.set_read_timeout(Some(TIMEOUT)).ok();
    server.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"ping");
}

#[test]
fn captured_connections_land_on_the_proxy_ports_with_their_original_destination() {
    let pod = Pod::new(0);
    let out = pod.mesh_proxy(&[
        "iptables",
        "--exclude-inbound-ports=15090,15021,15020",
        "--exclude-outbound-ports=9999",
    ]);
    assert!(
        out.status.success(),
        "mesh-proxy iptables: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    // The proxy's listeners and an app's loopback listener, inside the pod.
    let (outbound, inbound, health, local) = pod.inside(|| {
        (
            listen("0.0.0.0:15001"),
            listen("0.0.0.0:15006"),
            listen("0.0.0.0:15021"),
            listen("127.0.0.1:7000"),
        )
    });
    let excluded_port = listen(&format!("{}:9999", pod.host_ip));
    let from_proxy_uid = listen(&format!("{}:9998", pod.host_ip));

    // Outbound to an address that exists nowhere lands on 15001, destination intact.
    let mut client = pod.inside(|| connect("10.99.0.1:80"));
    let mut accepted = accept(&outbound);
    assert_eq!(
        original_dst(&accepted)
            .expect("SO_ORIGINAL_DST")
            .to_string(),
        "10.99.0.1:80"
    );
    echo_once(&mut client, &mut accepted);

    // An excluded outbound port goes where it was sent.
    let host = format!("{}:9999", pod.host_ip);
    let _c = pod.inside(move || connect(&host));
    accept(&excluded_port);
    assert!(nothing_pending(&outbound));

    // The proxy's own uid is never captured (else the proxy would loop into itself).
    let script = format!("exec 3<>/dev/tcp/{}/9998", pod.host_ip);
    let out = pod.exec(&[
        "setpriv",
        "--reuid=1337",
        "--regid=1337",
        "--clear-groups",
        "bash",
        "-c",
        &script,
    ]);
    assert!(
        out.status.success(),
        "uid 1337 connect: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    accept(&from_proxy_uid);
    assert!(nothing_pending(&outbound));

    // Loopback stays loopback.
    let _l = pod.inside(|| connect("127.0.0.1:7000"));
    accept(&local);
    assert!(nothing_pending(&outbound));

    // Inbound to any port lands on 15006 with the port it was sent to.
    let mut client = connect(&format!("{}:8080", pod.pod_ip));
    let mut accepted = accept(&inbound);
    assert_eq!(
        original_dst(&accepted)
            .expect("SO_ORIGINAL_DST")
            .to_string(),
        format!("{}:8080", pod.pod_ip)
    );
    echo_once(&mut client, &mut accepted);

    // Excluded inbound ports (the proxy's health port) are reached directly.
    let _h = connect(&format!("{}:15021", pod.pod_ip));
    accept(&health);
    assert!(nothing_pending(&inbound));
}

#[test]
fn rerun_replaces_cleanup_removes_and_dry_run_changes_nothing() {
    let pod = Pod::new(1);
    let before = pod.nat_rules();

    let out = pod.mesh_proxy(&["iptables", "--dry-run", "--include-inbound-ports=8080"]);
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.starts_with("*nat\n") && printed.ends_with("COMMIT\n"),
        "{printed}"
    );
    assert!(printed.contains("-A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT"));
    assert_eq!(pod.nat_rules(), before, "--dry-run loaded nothing");

    let first = pod.mesh_proxy(&["iptables", "--exclude-inbound-ports=15021"]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let once = pod.nat_rules();
    let second = pod.mesh_proxy(&["iptables", "--exclude-inbound-ports=15021"]);
    assert!(second.status.success());
    assert!(String::from_utf8_lossy(&second.stderr).starts_with("replaced the capture rules"));
    assert_eq!(
        pod.nat_rules(),
        once,
        "a re-run leaves exactly one set of rules"
    );
    assert_eq!(once.matches("-j MESH_INBOUND").count(), 1);

    let cleaned = pod.mesh_proxy(&["iptables", "--cleanup"]);
    assert!(cleaned.status.success());
    assert_eq!(
        pod.nat_rules(),
        before,
        "cleanup removes everything it added"
    );

    let bad = pod.mesh_proxy(&["iptables", "--exclude-outbound-ports=ssh"]);
    assert_eq!(bad.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&bad.stderr)
        .contains("--exclude-outbound-ports: \"ssh\" is not a port"));
    assert_eq!(pod.nat_rules(), before, "nothing loaded on bad input");
}

// ---- mesh-proxy run in a pod: outbound (15001) and inbound (15006) capture ----

/// The proxy inside the pod, with gid 1337 (which the capture rules exempt), its admin,
/// health and metrics ports on the pod IP so the test can reach them.
fn proxy_in(pod: &Pod, yaml: &str) -> support::Proxy {
    let ip: std::net::IpAddr = pod.pod_ip.parse().unwrap();
    support::Proxy::with_config(yaml)
        .prefix(&[
            "ip",
            "netns",
            "exec",
            &pod.name,
            "setpriv",
            "--regid=1337",
            "--clear-groups",
        ])
        .ports(
            SocketAddr::new(ip, 15000),
            SocketAddr::new(ip, 15021),
            SocketAddr::new(ip, 15090),
        )
        .start()
}

fn capture(pod: &Pod) {
    let out = pod.mesh_proxy(&[
        "iptables",
        "--exclude-inbound-ports=15090,15021,15020,15000",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// An HTTP/1.1 request from inside the pod (so it is captured); the whole answer.
fn pod_http(pod: &Pod, to: &str, host: &str, path: &str) -> String {
    let (to, host, path) = (to.to_owned(), host.to_owned(), path.to_owned());
    pod.inside(move || {
        let mut s = connect(&to);
        s.set_read_timeout(Some(TIMEOUT)).unwrap();
        write!(
            s,
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    })
}

/// Connects from the pod, optionally writes, and reads what arrives within `wait`.
fn pod_tcp(
    pod: &Pod,
    to: &str,
    send: &'static [u8],
    want: usize,
    wait: Duration,
) -> (Vec<u8>, Duration) {
    let to = to.to_owned();
    pod.inside(move || {
        let t = std::time::Instant::now();
        let mut s = connect(&to);
        s.set_read_timeout(Some(wait)).unwrap();
        if !send.is_empty() {
            s.write_all(send).unwrap();
        }
        let mut out = Vec::new();
        let mut buf = [0u8; 1024];
        while out.len() < want {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
            }
        }
        (out, t.elapsed())
    })
}

fn outbound_config(pod: &Pod, web: u16, banner: u16, routed: u16, mode: &str) -> String {
    let h = &pod.host_ip;
    format!(
        "outboundTrafficPolicy: {{mode: {mode}}}
protocolDetectionTimeout: 2s
node: {{workload: client-v1, namespace: test, labels: {{app: client}}}}
services:
  - host: web.test.svc.cluster.local
    aliases: [web]
    addresses: [10.99.0.10]
    ports: [{{number: 80, name: http}}]
    endpoints: [{{address: {h}, port: {web}, workload: web-v1}}]
  - host: db.test.svc.cluster.local
    addresses: [10.99.0.11]
    ports: [{{number: 5432, name: tcp-postgres}}]
    endpoints: [{{address: {h}, port: {banner}}}]
  - host: undeclared.test.svc.cluster.local
    addresses: [10.99.0.12]
    ports: [{{number: 6000, name: custom}}]
    endpoints: [{{address: {h}, port: {banner}}}]
  - host: by-app-protocol.test.svc.cluster.local
    addresses: [10.99.0.13]
    ports: [{{number: 6001, name: custom, appProtocol: tcp}}]
    endpoints: [{{address: {h}, port: {banner}}}]
  - host: routed.test.svc.cluster.local
    addresses: [10.99.0.14]
    ports: [{{number: 7000, name: tcp}}]
    endpoints: [{{address: {h}, port: {banner}}}]
  - host: elsewhere.test.svc.cluster.local
    ports: [{{number: 7000, name: tcp}}]
    endpoints: [{{address: {h}, port: {routed}}}]
virtualServices:
  - hosts: [routed.test.svc.cluster.local]
    tcp:
      - match: [{{port: 7000}}]
        route: [{{destination: {{host: elsewhere.test.svc.cluster.local}}}}]
"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn outbound_capture_routes_by_service_passes_through_or_blocks_unknown() {
    let pod = Pod::new(2);
    capture(&pod);
    let host: std::net::IpAddr = pod.host_ip.parse().unwrap();
    let web = support::backend::start_on(SocketAddr::new(host, 0), "web").await;
    let elsewhere = support::backend::start_on(SocketAddr::new(host, 0), "elsewhere").await;
    let banner =
        support::backend::tcp_echo_on(SocketAddr::new(host, 0), Some(b"220 hello\r\n")).await;
    let echo = support::backend::tcp_echo_on(SocketAddr::new(host, 0), None).await;
    let routed =
        support::backend::tcp_echo_on(SocketAddr::new(host, 0), Some(b"220 routed\r\n")).await;
    let p = proxy_in(
        &pod,
        &outbound_config(&pod, web.port(), banner.port(), routed.port(), "ALLOW_ANY"),
    );

    // HTTP to a service's VIP: routed by Host to its endpoint.
    let r = pod_http(&pod, "10.99.0.10:80", "web", "/via-vip");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}\n{}", p.stderr());
    assert!(r.contains("x-backend: web"), "{r}");
    assert_eq!(web.last().unwrap().path, "/via-vip");

    // A declared TCP port is not sniffed: a server-first protocol answers at once...
    let (got, took) = pod_tcp(&pod, "10.99.0.11:5432", b"", 11, Duration::from_secs(5));
    assert_eq!(&got, b"220 hello\r\n");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // ...an undeclared one waits for the detection timeout first.
    let (got, took) = pod_tcp(&pod, "10.99.0.12:6000", b"", 11, Duration::from_secs(5));
    assert_eq!(&got, b"220 hello\r\n");
    assert!(took >= Duration::from_secs(2), "{took:?}");

    // appProtocol declares TCP where the name does not.
    let (got, took) = pod_tcp(&pod, "10.99.0.13:6001", b"", 11, Duration::from_secs(5));
    assert_eq!(&got, b"220 hello\r\n");
    assert!(took < Duration::from_millis(1500), "{took:?}");
    // A VirtualService TCP route sends the VIP's connections to another service.
    let (got, _) = pod_tcp(&pod, "10.99.0.14:7000", b"", 12, Duration::from_secs(5));
    assert_eq!(&got, b"220 routed\r\n");

    // ALLOW_ANY: unknown destinations pass through, HTTP and TCP.
    let r = pod_http(
        &pod,
        &elsewhere.addr.to_string(),
        "not-in-registry",
        "/passthrough",
    );
    assert!(r.contains("x-backend: elsewhere"), "{r}");
    let (got, _) = pod_tcp(
        &pod,
        &echo.to_string(),
        b"\x16\x03\x01 opaque",
        11,
        Duration::from_secs(5),
    );
    assert_eq!(&got, b"\x16\x03\x01 opaque");
    assert!(
        support::eventually(Duration::from_secs(3), || {
            let t = p.metrics_text();
            support::metric_sum(
                &t,
                "istio_requests_total",
                &[
                    ("reporter", "source"),
                    ("source_workload", "client-v1"),
                    ("destination_service", "web.test.svc.cluster.local"),
                    ("destination_workload", "web-v1"),
                    ("response_code", "200"),
                ],
            ) == 1.0
                && support::metric_sum(
                    &t,
                    "istio_requests_total",
                    &[("destination_service_name", "PassthroughCluster")],
                ) == 1.0
                && support::metric_sum(
                    &t,
                    "istio_tcp_connections_closed_total",
                    &[("destination_service", "db.test.svc.cluster.local")],
                ) == 1.0
        }),
        "{}",
        p.metrics_text()
    );

    // REGISTRY_ONLY: unknown HTTP gets 502, unknown TCP is closed; known services still work.
    p.reload(&outbound_config(
        &pod,
        web.port(),
        banner.port(),
        routed.port(),
        "REGISTRY_ONLY",
    ));
    let before = elsewhere.count();
    let r = pod_http(
        &pod,
        &elsewhere.addr.to_string(),
        "not-in-registry",
        "/blocked",
    );
    assert!(r.starts_with("HTTP/1.1 502"), "{r}");
    assert_eq!(elsewhere.count(), before);
    let (got, _) = pod_tcp(
        &pod,
        &echo.to_string(),
        b"\x16\x03\x01 opaque",
        11,
        Duration::from_secs(3),
    );
    assert!(got.is_empty(), "unknown TCP is closed: {got:?}");
    let r = pod_http(&pod, "10.99.0.10:80", "web", "/still");
    assert!(r.starts_with("HTTP/1.1 200"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inbound_capture_forwards_to_the_workload() {
    let pod = Pod::new(3);
    capture(&pod);
    let (app_http, app_tcp) = pod.inside(|| (listen("0.0.0.0:8080"), listen("0.0.0.0:9000")));
    let app = support::backend::start_with(app_http, "app");
    // A raw TCP echo in the pod on 9000.
    std::thread::spawn(move || {
        for mut s in app_tcp.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 1024];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    let cfg = "node: {workload: app-v1, namespace: test, labels: {app: app, version: v1}}
inbound:
  service: app.test.svc.cluster.local
  ports: [{number: 8080, name: http}]
";
    let p = proxy_in(&pod, cfg);
    let pod_addr = |port: u16| SocketAddr::new(pod.pod_ip.parse().unwrap(), port);

    let r = support::client::send(pod_addr(8080), support::client::get("app", "/in")).await;
    assert_eq!(r.status, 200, "{}", p.stderr());
    assert_eq!(r.backend(), Some("app"));
    assert_eq!(app.last().unwrap().path, "/in");
    // Detected as TCP on an undeclared port.
    let mut s = std::net::TcpStream::connect(pod_addr(9000)).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"\x00\x01binary").unwrap();
    let mut b = [0u8; 8];
    s.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"\x00\x01binary");
    drop(s);
    // A connection made straight to 15006 was not redirected; serving it would loop.
    let (resp, closed) = support::client::raw(
        pod_addr(15006),
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        Duration::from_secs(3),
    );
    assert!(resp.is_empty() && closed, "{resp}");

    assert!(
        support::eventually(Duration::from_secs(3), || {
            let t = p.metrics_text();
            support::metric_sum(
                &t,
                "istio_requests_total",
                &[
                    ("reporter", "destination"),
                    ("destination_workload", "app-v1"),
                    ("destination_app", "app"),
                    ("destination_service", "app.test.svc.cluster.local"),
                    ("response_code", "200"),
                ],
            ) == 1.0
                && support::metric_sum(
                    &t,
                    "istio_tcp_received_bytes_total",
                    &[("reporter", "destination")],
                ) == 8.0
        }),
        "{}",
        p.metrics_text()
    );
}

/// A sidecar in a pod with real inbound capture and STRICT mTLS, and a client sidecar on the
/// host: mTLS crosses the namespaces, the captured connection keeps its original destination
/// port for the port-level policy, and plaintext straight to the pod is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mtls_across_namespaces_with_inbound_capture() {
    use support::pki::{write_credentials, Ca, Validity};
    let pod = Pod::new(4);
    capture(&pod);
    let app_http = pod.inside(|| listen("0.0.0.0:8080"));
    let app = support::backend::start_with(app_http, "app");
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
    let server = proxy_in(
        &pod,
        &format!(
            "node: {{workload: server, namespace: test, serviceAccount: server}}
certificates: {{directory: {}}}
inbound:
  service: app.test.svc.cluster.local
  ports: [{{number: 8080, name: http}}]
  peerAuthentication: {{mtls: {{mode: STRICT}}}}
",
            server_certs.display()
        ),
    );
    let client_port = support::free_port();
    let _client = support::Proxy::start(&format!(
        "node: {{workload: client, namespace: test, serviceAccount: client}}
certificates: {{directory: {}}}
listeners: [{{name: out, address: 127.0.0.1:{client_port}}}]
services:
  - host: app.test.svc.cluster.local
    ports: [{{number: 8080, name: http}}]
    endpoints: [{{address: {}, port: 8080, serviceAccount: server, namespace: test, labels: {{security.istio.io/tlsMode: istio}}}}]
",
        client_certs.display(),
        pod.pod_ip
    ));
    let r = support::client::send(
        SocketAddr::from(([127, 0, 0, 1], client_port)),
        support::client::get("app.test.svc.cluster.local", "/across"),
    )
    .await;
    assert_eq!(r.status, 200, "{}", server.stderr());
    assert_eq!(app.last().expect("seen").path, "/across");
    assert!(
        support::eventually(Duration::from_secs(3), || {
            server.metric(
                "istio_requests_total",
                &[
                    ("reporter", "destination"),
                    ("connection_security_policy", "mutual_tls"),
                    (
                        "source_principal",
                        "spiffe://cluster.local/ns/test/sa/client",
                    ),
                ],
            ) == 1.0
        }),
        "{}",
        server.metrics_text()
    );
    // Plaintext from the host straight to the pod's port: captured, and refused.
    let pod_addr = SocketAddr::new(pod.pod_ip.parse().unwrap(), 8080);
    let (resp, closed) = support::client::raw(
        pod_addr,
        b"GET / HTTP/1.1\r\nHost: app\r\n\r\n",
        Duration::from_secs(5),
    );
    assert!(resp.is_empty() && closed, "{resp}");
    assert_eq!(
        server.metric("mesh_proxy_inbound_plaintext_refused_total", &[]),
        1.0
    );
    assert_eq!(app.count(), 1);
}
