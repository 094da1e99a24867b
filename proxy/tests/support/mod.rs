//! Test support: the proxy as a real child process with a config file, upstream test servers
//! on loopback (hyper, HTTP/1.1 and HTTP/2), and small clients.
#![allow(dead_code)]

pub mod backend;
pub mod client;
pub mod pki;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A free loopback port (bound and released; the proxy binds it right after).
pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    l.local_addr().expect("local addr").port()
}

/// A running `mesh-proxy run`, killed on drop.
pub struct Proxy {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub admin: SocketAddr,
    pub health: SocketAddr,
    pub metrics: SocketAddr,
    pub stderr: Arc<Mutex<String>>,
    /// What the proxy wrote on stdout (access logs).
    pub stdout: Arc<Mutex<String>>,
}

pub struct ProxyBuilder {
    yaml: Option<String>,
    args: Vec<String>,
    wait_ready: bool,
    prefix: Vec<String>,
    ports: Option<(SocketAddr, SocketAddr, SocketAddr)>,
}

impl ProxyBuilder {
    pub fn arg(mut self, a: &str) -> Self {
        self.args.push(a.to_owned());
        self
    }
    /// Start without a config file; the proxy waits for one.
    pub fn no_config(mut self) -> Self {
        self.yaml = None;
        self.wait_ready = false;
        self
    }
    /// Runs the proxy through `prefix` (e.g. `ip netns exec POD setpriv ...`).
    pub fn prefix(mut self, prefix: &[&str]) -> Self {
        self.prefix = prefix.iter().map(|s| s.to_string()).collect();
        self
    }
    /// Admin, health and metrics addresses (default: free loopback ports).
    pub fn ports(mut self, admin: SocketAddr, health: SocketAddr, metrics: SocketAddr) -> Self {
        self.ports = Some((admin, health, metrics));
        self
    }
    pub fn no_wait(mut self) -> Self {
        self.wait_ready = false;
        self
    }
    pub fn start(self) -> Proxy {
        let dir = tempfile::tempdir().expect("temp dir");
        let config = dir.path().join("proxy.yaml");
        if let Some(y) = &self.yaml {
            std::fs::write(&config, y).expect("write config");
        }
        let (admin, health, metrics) = self.ports.unwrap_or_else(|| {
            let local = |p: u16| SocketAddr::from(([127, 0, 0, 1], p));
            (local(free_port()), local(free_port()), local(free_port()))
        });
        let bin = env!("CARGO_BIN_EXE_mesh-proxy");
        let mut cmd = match self.prefix.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .arg("run")
            .arg("--config")
            .arg(&config)
            .arg("--admin")
            .arg(admin.to_string())
            .arg("--health")
            .arg(health.to_string())
            .arg("--metrics")
            .arg(metrics.to_string())
            .args(&self.args)
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mesh-proxy");
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let stdout = Arc::new(Mutex::new(String::new()));
        let pipe = child.stdout.take().expect("stdout");
        let sink = stdout.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let p = Proxy {
            child,
            dir,
            config,
            admin,
            health,
            metrics,
            stderr,
            stdout,
        };
        if self.wait_ready {
            p.wait_ready();
        }
        p
    }
}

impl Proxy {
    pub fn with_config(yaml: &str) -> ProxyBuilder {
        ProxyBuilder {
            yaml: Some(yaml.to_owned()),
            args: Vec::new(),
            wait_ready: true,
            prefix: Vec::new(),
            ports: None,
        }
    }

    pub fn start(yaml: &str) -> Proxy {
        Self::with_config(yaml).start()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until `/healthz/ready` answers 200 (and the listeners had a moment to bind).
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if client::blocking_status(self.health, "/healthz/ready") == Some(200) {
                std::thread::sleep(Duration::from_millis(100));
                return;
            }
            assert!(
                Instant::now() < deadline,
                "proxy not ready; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(30));
        }
    }

    /// Replaces the config file and waits for the proxy to load it (generation goes up).
    pub fn reload(&self, yaml: &str) {
        let before = self.generation();
        std::fs::write(&self.config, yaml).expect("write config");
        let deadline = Instant::now() + Duration::from_secs(10);
        while self.generation() <= before {
            assert!(
                Instant::now() < deadline,
                "config not reloaded; stderr:\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(100));
    }

    pub fn generation(&self) -> u64 {
        let dump = client::blocking_get(self.admin, "/config_dump").unwrap_or_default();
        serde_json::from_str::<serde_json::Value>(&dump)
            .ok()
            .and_then(|v| v["generation"].as_u64())
            .unwrap_or(0)
    }

    pub fn metrics_text(&self) -> String {
        client::blocking_get(self.metrics, "/stats/prometheus").unwrap_or_default()
    }

    /// Sum of a metric's series whose labels include all of `labels`.
    pub fn metric(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        metric_sum(&self.metrics_text(), name, labels)
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on our own child's pid.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Waits for the process to exit, up to `within`.
    pub fn wait_exit(&mut self, within: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(s)) = self.child.try_wait() {
                return Some(s);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter(|l| {
            l.starts_with(name) && matches!(l.as_bytes().get(name.len()), Some(b'{' | b' '))
        })
        .filter(|l| {
            labels
                .iter()
                .all(|(k, v)| l.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Polls `f` until it returns true, up to `within`.
pub fn eventually(within: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if f() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(30));
    }
}
