//! The rules, as `iptables-restore` input for the nat table.
//!
//! PREROUTING → MESH_INBOUND: inbound TCP not excluded → MESH_IN_REDIRECT → inbound port.
//! OUTPUT → MESH_OUTPUT: the proxy's own uid/gid and loopback return untouched; excluded ports
//! and ranges return; included ports, then included ranges → MESH_REDIRECT → outbound port.

use super::options::{Plan, Ports, Ranges};

/// Every chain we own starts with this, which is how a re-run or `--cleanup` finds them.
pub const CHAIN_PREFIX: &str = "MESH_";
/// Marks the rules we add to the built-in chains, so removal never touches anyone else's.
const MARK: &str = "-m comment --comment mesh-proxy";
const INBOUND: &str = "MESH_INBOUND";
const IN_REDIRECT: &str = "MESH_IN_REDIRECT";
const OUTPUT: &str = "MESH_OUTPUT";
const REDIRECT: &str = "MESH_REDIRECT";

/// The whole nat-table ruleset for `plan`, ending in COMMIT.
pub fn restore_script(plan: &Plan) -> String {
    let mut r = vec!["*nat".to_owned()];
    for chain in [INBOUND, IN_REDIRECT, OUTPUT, REDIRECT] {
        r.push(format!(":{chain} - [0:0]"));
    }
    r.push(format!(
        "-A {REDIRECT} -p tcp -j REDIRECT --to-ports {}",
        plan.outbound_port
    ));
    r.push(format!(
        "-A {IN_REDIRECT} -p tcp -j REDIRECT --to-ports {}",
        plan.inbound_port
    ));

    for iface in &plan.exclude_interfaces {
        r.push(format!("-A PREROUTING -i {iface} {MARK} -j RETURN"));
        r.push(format!("-A OUTPUT -o {iface} {MARK} -j RETURN"));
    }
    // A VM behind a KubeVirt interface reaches out through the pod: that is outbound traffic.
    for iface in &plan.kubevirt_interfaces {
        r.push(format!(
            "-A PREROUTING -i {iface} -p tcp {MARK} -j {REDIRECT}"
        ));
    }

    r.push(format!("-A PREROUTING -p tcp {MARK} -j {INBOUND}"));
    match &plan.include_inbound {
        Ports::All => {
            // The proxy's own listeners must stay reachable, or nothing would ever arrive.
            let mut excluded = plan.exclude_inbound.clone();
            for port in [plan.inbound_port, plan.outbound_port] {
                if !excluded.contains(&port) {
                    excluded.push(port);
                }
            }
            for port in excluded {
                r.push(format!("-A {INBOUND} -p tcp --dport {port} -j RETURN"));
            }
            r.push(format!("-A {INBOUND} -p tcp -j {IN_REDIRECT}"));
        }
        Ports::List(ports) => {
            for port in ports.iter().filter(|p| !plan.exclude_inbound.contains(p)) {
                r.push(format!(
                    "-A {INBOUND} -p tcp --dport {port} -j {IN_REDIRECT}"
                ));
            }
        }
    }

    r.push(format!("-A OUTPUT -p tcp {MARK} -j {OUTPUT}"));
    r.push(format!(
        "-A {OUTPUT} -m owner --uid-owner {} -j RETURN",
        plan.proxy_uid
    ));
    r.push(format!(
        "-A {OUTPUT} -m owner --gid-owner {} -j RETURN",
        plan.proxy_gid
    ));
    r.push(format!("-A {OUTPUT} -o lo -j RETURN"));
    r.push(format!("-A {OUTPUT} -d 127.0.0.1/32 -j RETURN"));
    for port in &plan.exclude_outbound_ports {
        r.push(format!("-A {OUTPUT} -p tcp --dport {port} -j RETURN"));
    }
    for port in &plan.include_outbound_ports {
        r.push(format!("-A {OUTPUT} -p tcp --dport {port} -j {REDIRECT}"));
    }
    for range in &plan.exclude_outbound {
        r.push(format!("-A {OUTPUT} -d {range} -j RETURN"));
    }
    match &plan.include_outbound {
        Ranges::All => r.push(format!("-A {OUTPUT} -j {REDIRECT}")),
        Ranges::List(list) => {
            for range in list {
                r.push(format!("-A {OUTPUT} -d {range} -j {REDIRECT}"));
            }
        }
    }
    r.push("COMMIT".to_owned());
    r.join("\n") + "\n"
}

/// The `iptables-restore --noflush` input that removes what `restore_script` added, given the
/// current `iptables-save -t nat` output: jumps from the built-in chains, then our chains.
pub fn removal_script(saved: &str) -> Option<String> {
    let mut deletes = Vec::new();
    let mut chains = Vec::new();
    for line in saved.lines() {
        if let Some(chain) = line.strip_prefix(':') {
            let name = chain.split_whitespace().next().unwrap_or_default();
            if name.starts_with(CHAIN_PREFIX) {
                chains.push(name.to_owned());
            }
        } else if let Some(rule) = line.strip_prefix("-A ") {
            let builtin = rule.starts_with("PREROUTING ") || rule.starts_with("OUTPUT ");
            if builtin && rule.contains(MARK) {
                deletes.push(format!("-D {rule}"));
            }
        }
    }
    if deletes.is_empty() && chains.is_empty() {
        return None;
    }
    let mut script = vec!["*nat".to_owned()];
    script.extend(deletes);
    script.extend(chains.iter().map(|c| format!("-F {c}")));
    script.extend(chains.iter().map(|c| format!("-X {c}")));
    script.push("COMMIT".to_owned());
    Some(script.join("\n") + "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::iptables::CaptureOptions;

    fn plan(f: impl FnOnce(&mut CaptureOptions)) -> Plan {
        let mut o = CaptureOptions {
            outbound_port: 15001,
            inbound_port: 15006,
            proxy_uid: 1337,
            proxy_gid: 1337,
            include_outbound_ranges: "*".into(),
            include_inbound_ports: "*".into(),
            ..CaptureOptions::default()
        };
        f(&mut o);
        o.plan().expect("valid")
    }

    #[test]
    fn default_capture() {
        let script = restore_script(&plan(|o| {
            o.exclude_inbound_ports = "15090,15021,15020".into()
        }));
        let expected = "\
*nat
:MESH_INBOUND - [0:0]
:MESH_IN_REDIRECT - [0:0]
:MESH_OUTPUT - [0:0]
:MESH_REDIRECT - [0:0]
-A MESH_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A MESH_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -m comment --comment mesh-proxy -j MESH_INBOUND
-A MESH_INBOUND -p tcp --dport 15090 -j RETURN
-A MESH_INBOUND -p tcp --dport 15021 -j RETURN
-A MESH_INBOUND -p tcp --dport 15020 -j RETURN
-A MESH_INBOUND -p tcp --dport 15006 -j RETURN
-A MESH_INBOUND -p tcp --dport 15001 -j RETURN
-A MESH_INBOUND -p tcp -j MESH_IN_REDIRECT
-A OUTPUT -p tcp -m comment --comment mesh-proxy -j MESH_OUTPUT
-A MESH_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A MESH_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A MESH_OUTPUT -o lo -j RETURN
-A MESH_OUTPUT -d 127.0.0.1/32 -j RETURN
-A MESH_OUTPUT -j MESH_REDIRECT
COMMIT
";
        assert_eq!(script, expected);
    }

    #[test]
    fn listed_ports_and_ranges() {
        let script = restore_script(&plan(|o| {
            o.include_inbound_ports = "8080,9090".into();
            o.exclude_inbound_ports = "9090".into();
            o.include_outbound_ranges = "10.96.0.0/12".into();
            o.exclude_outbound_ranges = "10.96.0.10".into();
            o.exclude_outbound_ports = "5432".into();
            o.include_outbound_ports = "443".into();
            o.exclude_interfaces = "eth9".into();
        }));
        for line in [
            "-A MESH_INBOUND -p tcp --dport 8080 -j MESH_IN_REDIRECT",
            "-A MESH_OUTPUT -p tcp --dport 5432 -j RETURN",
            "-A MESH_OUTPUT -p tcp --dport 443 -j MESH_REDIRECT",
            "-A MESH_OUTPUT -d 10.96.0.10/32 -j RETURN",
            "-A MESH_OUTPUT -d 10.96.0.0/12 -j MESH_REDIRECT",
            "-A PREROUTING -i eth9 -m comment --comment mesh-proxy -j RETURN",
        ] {
            assert!(script.contains(line), "{line} in\n{script}");
        }
        assert!(!script.contains("--dport 9090 -j MESH_IN_REDIRECT"));
        assert!(!script.contains("-A MESH_OUTPUT -j MESH_REDIRECT"));
    }

    #[test]
    fn removal_finds_our_jumps_and_chains_only() {
        let saved = "\
*nat
:PREROUTING ACCEPT [0:0]
:OUTPUT ACCEPT [0:0]
:MESH_INBOUND - [0:0]
:MESH_OUTPUT - [0:0]
:KUBE-SERVICES - [0:0]
-A PREROUTING -p tcp -m comment --comment mesh-proxy -j MESH_INBOUND
-A PREROUTING -j KUBE-SERVICES
-A PREROUTING -i eth9 -j RETURN
-A OUTPUT -p tcp -m comment --comment mesh-proxy -j MESH_OUTPUT
-A MESH_OUTPUT -j RETURN
COMMIT
";
        let script = removal_script(saved).expect("something to remove");
        assert_eq!(
            script,
            "*nat\n-D PREROUTING -p tcp -m comment --comment mesh-proxy -j MESH_INBOUND\n-D OUTPUT -p tcp -m comment --comment mesh-proxy -j MESH_OUTPUT\n-F MESH_INBOUND\n-F MESH_OUTPUT\n-X MESH_INBOUND\n-X MESH_OUTPUT\nCOMMIT\n"
        );
        assert_eq!(
            removal_script("*nat\n:PREROUTING ACCEPT [0:0]\nCOMMIT\n"),
            None
        );
    }
}
