//! Pods emulated as network namespaces: each gets the IP kwok gave the real pod, a veth to the
//! host, and routes so that pods reach each other and meshd (whose pod IP is on the host's
//! `lo`) as they would on a node. Processes started in it (the app, mesh-proxy, `mesh-proxy
//! iptables`) see only that network. Everything is removed when the value is dropped.

use std::process::{Child, Command, Output, Stdio};

/// The host side answers ARP for this address (proxy ARP), the pods' default gateway, as
/// Calico does.
const GATEWAY: &str = "169.254.1.1";

fn ip(args: &[&str]) -> Output {
    Command::new("ip")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("ip {args:?}: {e}"))
}

fn ip_ok(args: &[&str]) {
    let out = ip(args);
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sysctl(key: &str, value: &str) {
    let path = format!("/proc/sys/{}", key.replace('.', "/"));
    std::fs::write(&path, value)
        .unwrap_or_else(|e| panic!("{path}: {e} (these tests run as root)"));
}

pub struct PodNetns {
    pub netns: String,
    pub ip: String,
    host_veth: String,
    children: Vec<Child>,
}

impl PodNetns {
    /// A namespace for the pod at `ip`; `id` must be short (it names the host's veth).
    pub fn create(id: &str, ip_address: &str) -> PodNetns {
        let netns = format!("mesh-{id}");
        let host_veth = format!("vm{id}");
        assert!(host_veth.len() <= 15, "veth name {host_veth} is too long");
        let _ = ip(&["netns", "del", &netns]);
        let _ = ip(&["link", "del", &host_veth]);
        sysctl("net.ipv4.ip_forward", "1");
        ip_ok(&["netns", "add", &netns]);
        ip_ok(&[
            "link", "add", &host_veth, "type", "veth", "peer", "name", "eth0", "netns", &netns,
        ]);
        ip_ok(&["link", "set", &host_veth, "up"]);
        sysctl(&format!("net.ipv4.conf.{host_veth}.proxy_arp"), "1");
        ip_ok(&[
            "route",
            "replace",
            &format!("{ip_address}/32"),
            "dev",
            &host_veth,
        ]);
        let inside = |args: &[&str]| {
            let mut full = vec!["netns", "exec", netns.as_str(), "ip"];
            full.extend_from_slice(args);
            ip_ok(&full);
        };
        inside(&["link", "set", "lo", "up"]);
        inside(&["addr", "add", &format!("{ip_address}/32"), "dev", "eth0"]);
        inside(&["link", "set", "eth0", "up"]);
        inside(&["route", "add", GATEWAY, "dev", "eth0", "scope", "link"]);
        inside(&["route", "add", "default", "via", GATEWAY, "dev", "eth0"]);
        PodNetns {
            netns,
            ip: ip_address.to_owned(),
            host_veth,
            children: Vec::new(),
        }
    }

    /// `program args` inside the namespace, with `env`.
    pub fn command(
        &self,
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
    ) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.netns])
            .arg(program)
            .args(args)
            .envs(env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        cmd
    }

    /// Runs to completion inside the namespace.
    pub fn run(&self, program: &std::path::Path, args: &[&str]) -> Output {
        self.command(program, args, &[])
            .output()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()))
    }

    /// Starts a process that lives as long as the namespace; its output goes to `log`.
    pub fn spawn(
        &mut self,
        program: &std::path::Path,
        args: &[&str],
        env: &[(String, String)],
        log: &std::path::Path,
    ) {
        let file = std::fs::File::create(log).expect("log file");
        let err = file.try_clone().expect("log file");
        let child = self
            .command(program, args, env)
            .stdout(file)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("{}: {e}", program.display()));
        self.children.push(child);
    }

    /// Stops the processes started in the namespace (SIGKILL), leaving the namespace.
    pub fn stop_processes(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.children.clear();
    }
}

impl Drop for PodNetns {
    fn drop(&mut self) {
        self.stop_processes();
        let _ = ip(&["route", "del", &format!("{}/32", self.ip)]);
        let _ = ip(&["link", "del", &self.host_veth]);
        let _ = ip(&["netns", "del", &self.netns]);
    }
}
