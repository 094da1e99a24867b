//! meshd as a local process standing in for its (kwok-faked) pod: the pod's IP is added to the
//! host's loopback interface and meshd listens there, so the API server, which resolves webhook
//! Services to their endpoints (`--enable-aggregator-routing`), really calls it at the pod's
//! address, through the Service and EndpointSlice the cluster made for the rendered objects.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::dashboard::{ensure_namespace, get_within};
use crate::{free_port, meshctl_bin, stderr, wait_for, Cluster};

/// The `meshd` binary of this build: `MESHD_BIN`, or beside `meshctl`.
pub fn meshd_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MESHD_BIN") {
        return PathBuf::from(bin);
    }
    let candidate = meshctl_bin().with_file_name("meshd");
    assert!(
        candidate.exists(),
        "{} not found: run `cargo build -p meshd` first or set MESHD_BIN",
        candidate.display()
    );
    candidate
}

/// An address on the host's loopback interface for as long as the value lives.
pub struct HostAddress {
    pub ip: String,
}

impl HostAddress {
    pub fn add(ip: &str) -> HostAddress {
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{ip}/32"), "dev", "lo"])
            .stderr(Stdio::null())
            .status();
        let out = Command::new("ip")
            .args(["addr", "add", &format!("{ip}/32"), "dev", "lo"])
            .output()
            .expect("run ip (iproute2)");
        assert!(
            out.status.success(),
            "cannot add {ip} to lo (these tests run as root): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        HostAddress { ip: ip.to_owned() }
    }
}

impl Drop for HostAddress {
    fn drop(&mut self) {
        if self.ip.is_empty() {
            return;
        }
        let _ = Command::new("ip")
            .args(["addr", "del", &format!("{}/32", self.ip), "dev", "lo"])
            .status();
    }
}

/// A running meshd; its log is printed when the test fails.
pub struct Meshd {
    child: Child,
    log: PathBuf,
    /// `http://127.0.0.1:<port>`: `/ready`, `/metrics`, the debug page.
    pub debug_url: String,
    /// The port of `debug_url` (what a port-forward to meshd's pod port 8080 targets).
    pub debug_port: u16,
    /// meshd's plain-text gRPC port on 127.0.0.1; its TLS port is 15012 at the pod's IP.
    pub grpc_port: u16,
    _address: HostAddress,
}

/// Applies `manifest generate --profile minimal -r <revision>` into `ns` with kubectl (the
/// CRDs only when missing: they are shared with other tests' installs) and returns the IP kwok
/// gave meshd's Ready pod, once the Service's endpoints list it. A revision of its own keeps the
/// install's webhooks to the namespaces and objects labelled `istio.io/rev=<revision>`.
pub fn install_revision(cluster: &Cluster, ns: &str, revision: &str) -> String {
    install_revision_with(cluster, ns, revision, &[])
}

/// [`install_revision`] with more `manifest generate` flags (`--set ...` for a gateway, say).
pub fn install_revision_with(
    cluster: &Cluster,
    ns: &str,
    revision: &str,
    extra: &[&str],
) -> String {
    ensure_namespace(cluster, ns);
    for crd in crate::generated_crds() {
        crate::ensure_crd(cluster, &crd);
    }
    let set_ns = format!("namespace={ns}");
    let mut args = vec![
        "manifest",
        "generate",
        "--profile",
        "minimal",
        "-r",
        revision,
        "--set",
        &set_ns,
        "--set",
        "components.base.enabled=false",
    ];
    args.extend_from_slice(extra);
    let generated = cluster.meshctl(&args, "");
    assert!(generated.status.success(), "{}", stderr(&generated));
    let out = cluster.kubectl_with_stdin(
        &["apply", "--server-side", "--field-manager=e2e", "-f", "-"],
        &String::from_utf8_lossy(&generated.stdout),
    );
    assert!(out.status.success(), "kubectl apply: {}", stderr(&out));
    let service = format!("meshd-{revision}");
    wait_for(
        "meshd's pod in the Service's endpoints",
        Duration::from_secs(60),
        || {
            let endpoints =
                cluster.kubectl(&["get", "endpoints", &service, "-n", ns, "-o", "json"]);
            let endpoints: Value = serde_json::from_slice(&endpoints.stdout).ok()?;
            endpoints["subsets"][0]["addresses"][0]["ip"]
                .as_str()
                .map(str::to_owned)
        },
    )
}

/// Deletes the cluster-scoped webhook configurations an install of `revision` in `ns` made
/// (the namespace's deletion does not take them).
pub fn remove_webhooks(cluster: &Cluster, ns: &str, revision: &str) {
    for (kind, name) in [
        (
            "mutatingwebhookconfiguration",
            format!("meshd-sidecar-injector-{revision}-{ns}"),
        ),
        (
            "validatingwebhookconfiguration",
            format!("meshd-validator-{revision}-{ns}"),
        ),
    ] {
        let _ = cluster.kubectl(&["delete", kind, &name, "--ignore-not-found"]);
    }
}

/// Sets the timeout of the first HTTP route of VirtualService `ns/name`.
pub fn set_route_timeout(cluster: &Cluster, ns: &str, name: &str, timeout: &str) {
    let patch =
        format!(r#"[{{"op": "replace", "path": "/spec/http/0/timeout", "value": "{timeout}"}}]"#);
    let out = cluster.kubectl(&[
        "patch",
        "virtualservice",
        name,
        "-n",
        ns,
        "--type=json",
        "-p",
        &patch,
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
}

/// The args of the rendered meshd Deployment's container, with the mounted files and the
/// listen addresses replaced by local ones.
fn local_args(deployment: &Value, files: &Path, ip: &str, ports: &Ports) -> Vec<String> {
    let args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut out: Vec<String> = args
        .iter()
        .filter_map(Value::as_str)
        .map(|arg| {
            if arg.starts_with("--mesh-config=") {
                format!("--mesh-config={}", files.join("mesh").display())
            } else if arg.starts_with("--inject-config=") {
                format!("--inject-config={}", files.join("inject").display())
            } else {
                arg.to_owned()
            }
        })
        .collect();
    out.push(format!("--webhook-addr={ip}:15017"));
    out.push(format!("--grpc-tls-addr={ip}:15012"));
    out.push(format!("--grpc-addr=127.0.0.1:{}", ports.grpc));
    out.push(format!("--debug-addr=127.0.0.1:{}", ports.debug));
    out.push(format!("--monitoring-addr=127.0.0.1:{}", free_port()));
    out
}

struct Ports {
    debug: u16,
    grpc: u16,
}

impl Meshd {
    /// Starts meshd for the rendered Deployment `name` in `ns`, at the IP of its Ready pod, with
    /// the mesh and injector ConfigMaps the cluster holds, and waits until it reports ready.
    pub fn start(cluster: &Cluster, ns: &str, name: &str, pod_ip: &str) -> Meshd {
        Meshd::start_with(cluster, ns, name, pod_ip, &[])
    }

    /// `start` with extra flags after the rendered ones.
    pub fn start_with(
        cluster: &Cluster,
        ns: &str,
        name: &str,
        pod_ip: &str,
        extra: &[&str],
    ) -> Meshd {
        let address = HostAddress::add(pod_ip);
        // One directory per replica (its pod IP): several may run for one install.
        let files = std::env::temp_dir().join(format!(
            "meshctl-e2e-meshd-{ns}-{pod_ip}-{}",
            std::process::id()
        ));
        std::fs::create_dir_all(files.join("inject")).expect("meshd files dir");
        let revisioned = |base: &str| name.replacen("meshd", base, 1);
        let injector =
            cluster.get_json(&["configmap", &revisioned("mesh-sidecar-injector"), "-n", ns]);
        for key in ["values", "config"] {
            let text = injector["data"][key].as_str().unwrap_or_default();
            std::fs::write(files.join("inject").join(key), text).expect("write injector file");
        }
        let mesh = cluster.get_json(&["configmap", &revisioned("mesh"), "-n", ns]);
        std::fs::write(
            files.join("mesh"),
            mesh["data"]["mesh"].as_str().unwrap_or_default(),
        )
        .expect("write mesh config");
        let deployment = cluster.get_json(&["deployment", name, "-n", ns]);
        let log = files.join("meshd.log");
        // A free port can be taken by someone else before meshd binds it: then meshd exits
        // saying so, and is started again on other ports.
        for attempt in 1..=3 {
            let ports = Ports {
                debug: free_port(),
                grpc: free_port(),
            };
            let file = std::fs::File::create(&log).expect("meshd log file");
            let err = file.try_clone().expect("meshd log file");
            let child = Command::new(meshd_bin())
                .args(local_args(&deployment, &files, pod_ip, &ports))
                .args(extra)
                .env("KUBECONFIG", &cluster.kubeconfig)
                .env("POD_NAMESPACE", ns)
                .stdin(Stdio::null())
                .stdout(file)
                .stderr(err)
                .spawn()
                .expect("start meshd");
            let mut meshd = Meshd {
                child,
                log: log.clone(),
                debug_url: format!("http://127.0.0.1:{}", ports.debug),
                debug_port: ports.debug,
                grpc_port: ports.grpc,
                _address: HostAddress { ip: String::new() },
            };
            let ready = wait_for(
                "meshd to report ready or exit",
                Duration::from_secs(30),
                || {
                    if let Ok(Some(_)) = meshd.child.try_wait() {
                        return Some(false);
                    }
                    get_within(
                        &format!("{}/ready", meshd.debug_url),
                        Duration::from_secs(2),
                    )
                    .ok()
                    .filter(|body| body.starts_with("ready"))
                    .map(|_| true)
                },
            );
            if ready {
                meshd._address = address;
                return meshd;
            }
            let text = meshd.log();
            assert!(
                attempt < 3 && text.contains("cannot listen on"),
                "meshd exited: {text}"
            );
        }
        unreachable!("meshd is started at most three times")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Meshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = self.log();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!("--- last lines of the meshd log ({}):", self.log.display());
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
