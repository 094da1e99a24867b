//! What the `meshctl dashboard` tests share: add-on pods rendered by meshctl itself, stand-in
//! HTTP servers on the host that kwok's `PortForward` objects connect the pods' ports to, and the
//! dashboard command as a running process.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};

use crate::{meshctl_bin, stderr, wait_for, Cluster};

/// Creates `ns` unless it exists.
pub fn ensure_namespace(cluster: &Cluster, ns: &str) {
    if !cluster.kubectl(&["get", "namespace", ns]).status.success() {
        cluster.kubectl_ok(&["create", "namespace", ns]);
    }
}

/// Applies the ServiceAccount and Deployment that `meshctl manifest generate <args>` renders for
/// add-on `addon` into namespace `ns`: the pods carry exactly the labels the renderer gives them.
pub fn apply_add_on(cluster: &Cluster, args: &[&str], ns: &str, addon: &str) {
    apply_component(cluster, args, ns, &format!("addon-{addon}"));
}

/// `apply_add_on` for any component (`control-plane`, `addon-kiali`, ...).
pub fn apply_component(cluster: &Cluster, args: &[&str], ns: &str, component: &str) {
    let set = format!("namespace={ns}");
    let mut full = vec!["manifest", "generate", "--set", &set];
    full.extend_from_slice(args);
    let out = cluster.meshctl(&full, "");
    assert!(out.status.success(), "manifest generate: {}", stderr(&out));
    let mut items = Vec::new();
    for doc in serde_yaml_ng::Deserializer::from_slice(&out.stdout) {
        let object = Value::deserialize(doc).expect("meshctl prints YAML");
        let kind = object["kind"].as_str().unwrap_or_default();
        let label = &object["metadata"]["labels"]["install.meshctl.dev/component"];
        if label == component && matches!(kind, "ServiceAccount" | "Deployment") {
            items.push(object);
        }
    }
    assert_eq!(
        items.len(),
        2,
        "a ServiceAccount and a Deployment for {component}"
    );
    let list = json!({"apiVersion": "v1", "kind": "List", "items": items});
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &list.to_string());
    assert!(out.status.success(), "apply {component}: {}", stderr(&out));
}

/// Names of the Ready pods matching `selector` in `ns`, not being deleted.
pub fn ready_pods(cluster: &Cluster, ns: &str, selector: &str) -> Vec<String> {
    let list = cluster.get_json(&["pods", "-n", ns, "-l", selector]);
    list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter(|p| {
            p["status"]["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|c| c["type"] == "Ready" && c["status"] == "True")
        })
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_owned))
        .collect()
}

/// Waits for exactly one Ready pod matching `selector` other than `except`, and returns it.
pub fn wait_for_ready_pod(cluster: &Cluster, ns: &str, selector: &str, except: &str) -> String {
    wait_for(
        &format!("a ready pod {selector} in {ns}"),
        Duration::from_secs(60),
        || {
            let pods = ready_pods(cluster, ns, selector);
            let others: Vec<String> = pods.into_iter().filter(|p| p != except).collect();
            (others.len() == 1).then(|| others[0].clone())
        },
    )
}

/// Makes kwok connect port `pod_port` of pod `ns/pod` to 127.0.0.1:`target`.
pub fn apply_port_forward(cluster: &Cluster, ns: &str, pod: &str, pod_port: u16, target: u16) {
    let object = json!({
        "apiVersion": "kwok.x-k8s.io/v1alpha1",
        "kind": "PortForward",
        "metadata": {"name": pod, "namespace": ns},
        "spec": {"forwards": [{"ports": [pod_port], "target": {"address": "127.0.0.1", "port": target}}]},
    });
    let out = cluster.kubectl_with_stdin(&["apply", "-f", "-"], &object.to_string());
    assert!(
        out.status.success(),
        "PortForward {ns}/{pod}: {}",
        stderr(&out)
    );
}

/// An HTTP server on a free loopback port answering every request with `body`; it runs until
/// the test process ends.
pub fn serve_text(body: &'static str) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a stand-in server");
    let port = listener.local_addr().expect("local address").port();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            std::thread::spawn(move || answer(conn, body));
        }
    });
    port
}

fn answer(mut conn: TcpStream, body: &str) {
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok();
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let response = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes());
}

/// GET `url` (`http://host:port/path`) on a fresh connection; the body, or why not. The body is
/// read by its Content-Length, as browsers do: a port-forward stream does not pass the pod
/// side's close on, so reading to EOF would wait for the client's own timeout.
pub fn get(url: &str) -> Result<String, String> {
    get_within(url, Duration::from_secs(20))
}

/// `get` that waits up to `timeout` for each read.
pub fn get_within(url: &str, timeout: Duration) -> Result<String, String> {
    let rest = url.strip_prefix("http://").ok_or("not an http:// URL")?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let conn = TcpStream::connect(authority).map_err(|e| format!("connect: {e}"))?;
    conn.set_read_timeout(Some(timeout)).ok();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\r\n");
    (&conn)
        .write_all(request.as_bytes())
        .map_err(|e| format!("send: {e}"))?;
    let mut reader = BufReader::new(&conn);
    let mut status = String::new();
    reader
        .read_line(&mut status)
        .map_err(|e| format!("read: {e}"))?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected status line: {status:?}"));
    }
    let mut length = None;
    loop {
        let mut header = String::new();
        reader
            .read_line(&mut header)
            .map_err(|e| format!("read: {e}"))?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse::<usize>().ok();
            }
        }
    }
    let length = length.ok_or("no Content-Length in the response")?;
    let mut body = vec![0u8; length];
    reader
        .read_exact(&mut body)
        .map_err(|e| format!("read body: {e}"))?;
    String::from_utf8(body).map_err(|e| format!("body: {e}"))
}

/// `meshctl dashboard ...` running in the background, killed when dropped.
pub struct Dashboard {
    child: Child,
    stderr_path: PathBuf,
    /// The URL it printed.
    pub url: String,
}

/// How `meshctl dashboard` ended when it did not get to printing a URL.
#[derive(Debug)]
pub struct Failed {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Dashboard {
    /// Starts it with `--browser=false` and waits for the URL on stdout.
    pub fn start(cluster: &Cluster, args: &[&str]) -> Result<Dashboard, Failed> {
        let mut all = args.to_vec();
        all.push("--browser=false");
        Dashboard::start_with(cluster, &all, &[])
    }

    /// Starts it with `args` and extra environment variables (an empty value removes one).
    pub fn start_with(
        cluster: &Cluster,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Result<Dashboard, Failed> {
        let stderr_path = std::env::temp_dir().join(format!(
            "meshctl-e2e-dashboard-{}-{}.log",
            std::process::id(),
            crate::free_port()
        ));
        let file = std::fs::File::create(&stderr_path).expect("stderr file");
        let mut command = Command::new(meshctl_bin());
        for (key, value) in env {
            if value.is_empty() {
                command.env_remove(key);
            } else {
                command.env(key, value);
            }
        }
        let mut child = command
            .env("KUBECONFIG", &cluster.kubeconfig)
            .arg("dashboard")
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(file)
            .spawn()
            .expect("start meshctl dashboard");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut reader = BufReader::new(stdout);
            let mut line = String::new();
            let _ = reader.read_line(&mut line);
            let _ = tx.send(line);
            // Keep draining so the process never blocks on a full pipe.
            let _ = std::io::copy(&mut reader, &mut std::io::sink());
        });
        let line = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
        if line.trim().is_empty() {
            let _ = child.kill();
            let status = child.wait().expect("meshctl exits");
            return Err(Failed {
                code: status.code(),
                stdout: line,
                stderr: std::fs::read_to_string(&stderr_path).unwrap_or_default(),
            });
        }
        Ok(Dashboard {
            child,
            stderr_path,
            url: line.trim().to_owned(),
        })
    }

    /// What it has written to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Still running (it only stops on Ctrl-C).
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Dashboard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- meshctl dashboard stderr:\n{}", self.stderr());
        }
    }
}

/// Runs `meshctl dashboard <args> --browser=false` expecting it to fail before forwarding.
pub fn dashboard_fails(cluster: &Cluster, args: &[&str]) -> Failed {
    match Dashboard::start(cluster, args) {
        Ok(d) => panic!(
            "dashboard {args:?} should have failed, but serves {}",
            d.url
        ),
        Err(failed) => failed,
    }
}
