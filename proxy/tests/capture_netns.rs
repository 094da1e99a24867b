//! `mesh-proxy iptables` for real: the rules are loaded into a network namespace standing in for
//! a pod (a veth pair to the host, as a CNI would set up), and real connections show where
//! they land. Needs root, like the init container.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;

use mesh_proxy::original_dst::original_dst;

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
