//! Helpers for tests against the real local cluster started by `e2e/cluster.sh up`.
//!
//! The tests talk to the cluster the way a user does: through the `meshctl` binary and the
//! `kubectl` built with the cluster, each run as a real process.

pub mod dashboard;
pub mod mesh_pod;
pub mod meshd;
pub mod netns;
pub mod xds_client;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The running cluster, found through `MESHCTL_E2E_KUBECONFIG`.
pub struct Cluster {
    pub kubeconfig: PathBuf,
    kubectl: PathBuf,
}

impl Cluster {
    /// Panics with what to do when the cluster is not up: these tests must not pass silently.
    pub fn from_env() -> Cluster {
        let kubeconfig = std::env::var_os("MESHCTL_E2E_KUBECONFIG").map(PathBuf::from).unwrap_or_else(|| {
            panic!("MESHCTL_E2E_KUBECONFIG is not set: start the cluster with `e2e/cluster.sh up` and export MESHCTL_E2E_KUBECONFIG=$(e2e/cluster.sh kubeconfig)")
        });
        assert!(
            kubeconfig.exists(),
            "{} does not exist: is the cluster up?",
            kubeconfig.display()
        );
        let bindir = run_ok(Command::new(repo_root().join("e2e/cluster.sh")).arg("bindir"));
        let kubectl = PathBuf::from(bindir.trim()).join("kubectl");
        assert!(kubectl.exists(), "{} was not built", kubectl.display());
        Cluster {
            kubeconfig,
            kubectl,
        }
    }

    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with_stdin(args, "")
    }

    pub fn kubectl_with_stdin(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(&self.kubectl);
        cmd.arg("--kubeconfig").arg(&self.kubeconfig).args(args);
        with_stdin(cmd, stdin)
    }

    /// Deletes a namespace an earlier run may have left, waiting up to `timeout_secs` for it to
    /// be gone, so that a test starts from nothing (no namespace is fine too).
    pub fn delete_namespace_and_wait(&self, ns: &str, timeout_secs: u64) {
        let _ = self.kubectl(&[
            "delete",
            "namespace",
            ns,
            "--wait=true",
            &format!("--timeout={timeout_secs}s"),
        ]);
    }

    /// Runs kubectl and returns stdout, panicking with stderr when it fails.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let out = self.kubectl(args);
        assert!(
            out.status.success(),
            "kubectl {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn get_json(&self, args: &[&str]) -> serde_json::Value {
        let mut full = vec!["get"];
        full.extend_from_slice(args);
        full.extend_from_slice(&["-o", "json"]);
        serde_json::from_str(&self.kubectl_ok(&full)).expect("kubectl prints JSON")
    }

    /// `meshctl` with the cluster's kubeconfig in its environment.
    pub fn meshctl(&self, args: &[&str], stdin: &str) -> Output {
        let mut cmd = Command::new(meshctl_bin());
        cmd.env("KUBECONFIG", &self.kubeconfig).args(args);
        with_stdin(cmd, stdin)
    }
}

/// Polls `check` until it returns `Some`, for at most `timeout`; panics with `what` otherwise.
/// Runs `meshctl args` until it succeeds (within `timeout`) and returns that run: for commands
/// that go through a port-forward kwok sets up only once it has seen the PortForward object.
pub fn meshctl_until_ok(cluster: &Cluster, args: &[&str], timeout: Duration) -> Output {
    let deadline = Instant::now() + timeout;
    loop {
        let out = cluster.meshctl(args, "");
        if out.status.success() || Instant::now() >= deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn wait_for<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Every CRD of `crds/generated`, applied server-side (safe when tests run it at once: a second
/// apply of the same object is a no-op, not an AlreadyExists), and Established.
pub fn ensure_crds(cluster: &Cluster) {
    let dir = repo_root().join("crds/generated");
    let dir = dir.to_string_lossy().into_owned();
    let apply = [
        "apply",
        "--server-side",
        "--force-conflicts",
        "--field-manager=e2e",
        "-f",
        dir.as_str(),
    ];
    let mut last = String::new();
    for _ in 0..5 {
        let out = cluster.kubectl(&apply);
        if out.status.success() {
            wait_for("every CRD Established", Duration::from_secs(60), || {
                let list = cluster.get_json(&["crd"]);
                let items = list["items"].as_array()?;
                items.iter().all(established).then_some(())
            });
            return;
        }
        last = stderr(&out);
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!("cannot apply the CRDs: {last}");
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// The `meshctl` binary of this build: `MESHCTL_BIN`, or beside the test executable's directory
/// (`target/<profile>/meshctl`), where `cargo build -p meshctl` puts it.
pub fn meshctl_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MESHCTL_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("test executable path");
    let candidate = exe
        .parent()
        .and_then(Path::parent)
        .map(|d| d.join("meshctl"))
        .unwrap_or_default();
    assert!(
        candidate.exists(),
        "{} not found: run `cargo build -p meshctl` first or set MESHCTL_BIN",
        candidate.display()
    );
    candidate
}

fn with_stdin(mut cmd: Command, stdin: &str) -> Output {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    if let Some(mut input) = child.stdin.take() {
        input.write_all(stdin.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("process runs")
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot start {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The `mesh-operator` binary of this build: `MESH_OPERATOR_BIN`, or beside `meshctl`, where
/// `cargo build -p meshctl-operator` puts it.
pub fn operator_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("MESH_OPERATOR_BIN") {
        return PathBuf::from(bin);
    }
    let candidate = meshctl_bin().with_file_name("mesh-operator");
    assert!(
        candidate.exists(),
        "{} not found: run `cargo build -p meshctl-operator` first or set MESH_OPERATOR_BIN",
        candidate.display()
    );
    candidate
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free local port")
        .port()
}

/// The operator as a local process for a test's lifetime: kwok only fakes the in-cluster
/// replica's pod, so the local process holds the Lease and reconciles. Its log is printed when
/// the test fails.
pub struct Operator {
    child: Child,
    log: PathBuf,
}

impl Operator {
    /// Starts mesh-operator for the MeshInstalls of `ns`, its Lease in `ns` too.
    pub fn start_in(cluster: &Cluster, ns: &str) -> Operator {
        let log = std::env::temp_dir().join(format!(
            "meshctl-e2e-operator-{ns}-{}.log",
            std::process::id()
        ));
        let file = std::fs::File::create(&log).expect("operator log file");
        let err = file.try_clone().expect("operator log file");
        let child = Command::new(operator_bin())
            .arg("--kubeconfig")
            .arg(&cluster.kubeconfig)
            .args(["--namespace", ns, "--watch-namespace", ns])
            .arg("--metrics-addr")
            .arg(format!("127.0.0.1:{}", free_port()))
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .expect("start mesh-operator");
        Operator { child, log }
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            let text = std::fs::read_to_string(&self.log).unwrap_or_default();
            let tail: Vec<&str> = text.lines().rev().take(30).collect();
            eprintln!(
                "--- last lines of the operator log ({}):",
                self.log.display()
            );
            for line in tail.iter().rev() {
                eprintln!("{line}");
            }
        }
    }
}

/// Whether a CRD object says Established. Polled rather than `kubectl wait`, which fails on
/// a CRD just created whose status has no conditions yet.
fn established(crd: &serde_json::Value) -> bool {
    crd["status"]["conditions"].as_array().is_some_and(|c| {
        c.iter()
            .any(|c| c["type"] == "Established" && c["status"] == "True")
    })
}

/// The names of the CRDs in `crds/generated` (one file each, named after the CRD).
pub fn generated_crds() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(repo_root().join("crds/generated"))
        .expect("crds/generated")
        .filter_map(|e| {
            let name = e.ok()?.file_name().into_string().ok()?;
            name.strip_suffix(".yaml").map(str::to_owned)
        })
        .collect();
    names.sort();
    names
}

/// Applies one CRD from `crds/generated` when the cluster lacks it (it is shared with other
/// tests' installs), and waits until it is Established.
pub fn ensure_crd(cluster: &Cluster, crd: &str) {
    if !cluster.kubectl(&["get", "crd", crd]).status.success() {
        let path = repo_root().join(format!("crds/generated/{crd}.yaml"));
        let path = path.to_string_lossy().into_owned();
        cluster.kubectl_ok(&["apply", "--server-side", "--field-manager=e2e", "-f", &path]);
    }
    wait_for(
        &format!("CRD {crd} Established"),
        Duration::from_secs(30),
        || {
            let out = cluster.kubectl(&["get", "crd", crd, "-o", "json"]);
            let crd: serde_json::Value = serde_json::from_slice(&out.stdout).ok()?;
            established(&crd).then_some(())
        },
    );
}
