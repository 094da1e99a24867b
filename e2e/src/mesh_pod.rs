//! A pod of the real cluster brought to life as a network namespace, doing what the kubelet
//! would with the pod the API server holds (injected through meshd's webhook): run the init
//! container's `mesh-proxy iptables` with its own args, the application, and the sidecar's
//! `mesh-proxy run` as uid 1337 with the container's environment (downward API resolved from
//! the pod) and the mounts it expects (service-account token for `istio-ca`, the
//! `istio-ca-root-cert` trust bundle, the labels file, the certificate directory).
//!
//! Two things stand in for cluster plumbing there is none of: meshd is reached at its pod's IP
//! (there is no DNS), with its Service name for TLS verification; and the token is minted with
//! `kubectl create token`, as the kubelet's projected volume would.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::netns::PodNetns;
use crate::{meshctl_bin, wait_for, Cluster};

/// The `mesh-proxy` binary of this build: `MESH_PROXY_BIN`, or beside `meshctl`.
pub fn mesh_proxy_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MESH_PROXY_BIN") {
        return PathBuf::from(bin);
    }
    let candidate = meshctl_bin().with_file_name("mesh-proxy");
    assert!(
        candidate.exists(),
        "{} not found: run `cargo build -p mesh-proxy` first or set MESH_PROXY_BIN",
        candidate.display()
    );
    candidate
}

/// Where meshd is for the pods.
pub struct MeshdAddress {
    /// `ip:15012`, its pod's IP.
    pub address: String,
    /// `meshd-<rev>.<ns>.svc`, what its certificate names.
    pub tls_name: String,
}

/// The application of a pod: the echo server, on `port`, with `env`.
pub struct App<'a> {
    pub server: &'a Path,
    pub port: u16,
    pub env: &'a [(&'a str, &'a str)],
}

/// One pod, running.
pub struct MeshPod {
    pub name: String,
    pub ip: String,
    pub netns: PodNetns,
    pub dir: PathBuf,
}

fn field(pod: &Value, path: &str) -> String {
    let mut v = pod;
    for part in path.split('.') {
        v = &v[part];
    }
    v.as_str().unwrap_or_default().to_owned()
}

/// The container's environment, `valueFrom.fieldRef` resolved from the pod.
fn environment(pod: &Value, container: &Value) -> Vec<(String, String)> {
    container["env"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|e| {
            let name = e["name"].as_str()?.to_owned();
            if let Some(value) = e["value"].as_str() {
                return Some((name, value.to_owned()));
            }
            let path = e["valueFrom"]["fieldRef"]["fieldPath"].as_str()?;
            Some((name, field(pod, path)))
        })
        .collect()
}

fn container<'a>(spec: &'a Value, list: &str, name: &str) -> &'a Value {
    spec[list]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["name"] == name))
        .unwrap_or_else(|| panic!("the pod has no {list} {name}: was it injected?"))
}

impl MeshPod {
    /// Brings up pod `pod` (its JSON from the API server) with its sidecar (with `proxy_env`
    /// added to its container's environment) and `app`. `id` names the namespace.
    pub fn start(
        cluster: &Cluster,
        pod: &Value,
        id: &str,
        meshd: &MeshdAddress,
        app: &App,
        proxy_env: &[(&str, &str)],
    ) -> MeshPod {
        let mut mesh_pod = MeshPod::namespace(pod, id);
        // The init container: capture, with exactly the args injection computed.
        let init = container(&pod["spec"], "initContainers", "istio-init");
        let args: Vec<&str> = init["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let out = mesh_pod.netns.run(&mesh_proxy_bin(), &args);
        assert!(
            out.status.success(),
            "istio-init of {}: {}",
            mesh_pod.name,
            String::from_utf8_lossy(&out.stderr)
        );
        let mut env: Vec<(String, String)> = vec![
            ("ECHO_NAME".into(), mesh_pod.name.clone()),
            ("ECHO_ADDR".into(), format!("0.0.0.0:{}", app.port)),
        ];
        env.extend(
            app.env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let log = mesh_pod.dir.join("app.log");
        mesh_pod.netns.spawn(app.server, &[], &env, &log);
        mesh_pod.proxy(cluster, pod, "istio-proxy", meshd, proxy_env);
        mesh_pod
    }

    /// Brings up a gateway pod: no capture, no application, its `mesh-proxy` container alone.
    pub fn gateway(
        cluster: &Cluster,
        pod: &Value,
        id: &str,
        meshd: &MeshdAddress,
        proxy_env: &[(&str, &str)],
    ) -> MeshPod {
        let mut mesh_pod = MeshPod::namespace(pod, id);
        mesh_pod.proxy(cluster, pod, "mesh-proxy", meshd, proxy_env);
        mesh_pod
    }

    fn namespace(pod: &Value, id: &str) -> MeshPod {
        let name = field(pod, "metadata.name");
        let namespace = field(pod, "metadata.namespace");
        let ip = field(pod, "status.podIP");
        assert!(!ip.is_empty(), "pod {namespace}/{name} has no IP yet");
        let dir = std::env::temp_dir().join(format!("meshctl-e2e-pod-{id}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("certs")).expect("pod dir");
        let netns = PodNetns::create(id, &ip);
        MeshPod {
            name,
            ip,
            netns,
            dir,
        }
    }

    /// The proxy container `container_name` of `pod`, as uid 1337, with its environment and
    /// the mounts it expects.
    fn proxy(
        &mut self,
        cluster: &Cluster,
        pod: &Value,
        container_name: &str,
        meshd: &MeshdAddress,
        extra_env: &[(&str, &str)],
    ) {
        let dir = self.dir.clone();
        let namespace = field(pod, "metadata.namespace");
        let service_account = field(pod, "spec.serviceAccountName");
        let token = cluster.kubectl_ok(&[
            "create",
            "token",
            &service_account,
            "-n",
            &namespace,
            "--audience",
            "istio-ca",
            "--duration",
            "2h",
        ]);
        std::fs::write(dir.join("istio-token"), token.trim()).expect("token");
        let roots = wait_for(
            &format!("the trust bundle in {namespace}"),
            Duration::from_secs(30),
            || {
                let out = cluster.kubectl(&[
                    "get",
                    "configmap",
                    "istio-ca-root-cert",
                    "-n",
                    &namespace,
                    "-o",
                    "jsonpath={.data.root-cert\\.pem}",
                ]);
                let text = String::from_utf8_lossy(&out.stdout).into_owned();
                text.contains("BEGIN CERTIFICATE").then_some(text)
            },
        );
        std::fs::write(dir.join("root-cert.pem"), roots).expect("roots");
        let labels: String = pod["metadata"]["labels"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}=\"{}\"\n", v.as_str().unwrap_or_default()))
            .collect();
        std::fs::write(dir.join("labels"), labels).expect("labels");

        let proxy = container(&pod["spec"], "containers", container_name);
        let mut env = environment(pod, proxy);
        env.retain(|(k, _)| k != "MESHD_ADDRESS");
        let path = |f: &str| dir.join(f).display().to_string();
        env.extend([
            ("MESHD_ADDRESS".to_owned(), meshd.address.clone()),
            ("MESHD_TLS_NAME".to_owned(), meshd.tls_name.clone()),
            ("MESH_TOKEN_FILE".to_owned(), path("istio-token")),
            ("MESH_ROOT_CERT".to_owned(), path("root-cert.pem")),
            ("MESH_POD_LABELS_FILE".to_owned(), path("labels")),
            ("MESH_CERT_DIR".to_owned(), path("certs")),
            // MESHCTL_E2E_PROXY_LOG: more of the proxies' log when a test needs looking into.
            (
                "RUST_LOG".to_owned(),
                std::env::var("MESHCTL_E2E_PROXY_LOG").unwrap_or_else(|_| "info".to_owned()),
            ),
        ]);
        env.extend(
            extra_env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let args: Vec<String> = proxy["args"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|a| a.as_str().map(str::to_owned))
            .collect();
        let mut full = vec![
            "--reuid=1337".to_owned(),
            "--regid=1337".to_owned(),
            "--clear-groups".to_owned(),
            mesh_proxy_bin().display().to_string(),
        ];
        full.extend(args);
        let full: Vec<&str> = full.iter().map(String::as_str).collect();
        // The proxy's files must be readable by its uid.
        let _ = std::process::Command::new("chown")
            .args(["-R", "1337:1337"])
            .arg(&dir)
            .status();
        self.netns.spawn(
            Path::new("/usr/bin/setpriv"),
            &full,
            &env,
            &dir.join("proxy.log"),
        );
    }

    pub fn proxy_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("proxy.log")).unwrap_or_default()
    }

    /// GET `path` on a port of this pod's own loopback (the proxy's admin or metrics port).
    pub fn local_get(&self, port: u16, path: &str) -> String {
        let out = self.netns.run(
            Path::new("curl"),
            &["-s", "-m", "5", &format!("http://127.0.0.1:{port}{path}")],
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Whether the proxy's readiness endpoint (15021 `/healthz/ready`, the pod's readiness
    /// probe) says ready: configuration and workload certificate loaded. kwok marks pods Ready
    /// whatever the probe says, so tests wait on this before sending traffic, as the kubelet
    /// would before the pod joined its Services.
    pub fn is_ready(&self) -> bool {
        let out = self.netns.run(
            Path::new("curl"),
            &[
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-m",
                "2",
                "http://127.0.0.1:15021/healthz/ready",
            ],
        );
        out.stdout == b"200"
    }

    /// `mesh-get` inside this pod: COUNT GETs of `url` with `Host: host`.
    pub fn get(&self, client: &Path, url: &str, count: usize, host: &str, pause_ms: u64) -> Value {
        let out = self.netns.run(
            client,
            &[url, &count.to_string(), host, &pause_ms.to_string()],
        );
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "mesh-get in {}: {e}: {} {}",
                self.name,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

impl Drop for MeshPod {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.proxy_log();
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            eprintln!("--- last lines of {}'s proxy log:", self.name);
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}
