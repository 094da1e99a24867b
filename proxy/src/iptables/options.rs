//! The command-line options, checked into a plan before any rule is written.

use std::net::Ipv4Addr;

use thiserror::Error;

/// The flags the injector writes into the init container (see `inject/src/traffic.rs`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct CaptureOptions {
    /// Port the proxy accepts captured outbound connections on.
    #[arg(long, default_value_t = 15001)]
    pub outbound_port: u16,
    /// Port the proxy accepts captured inbound connections on.
    #[arg(long, default_value_t = 15006)]
    pub inbound_port: u16,
    /// The proxy's uid: its own connections are never captured.
    #[arg(long, default_value_t = 1337)]
    pub proxy_uid: u32,
    /// The proxy's gid: its own connections are never captured.
    #[arg(long, default_value_t = 1337)]
    pub proxy_gid: u32,
    /// Outbound destinations captured: comma-separated CIDRs, or * for all.
    #[arg(long, default_value = "*")]
    pub include_outbound_ranges: String,
    /// Outbound destinations never captured (CIDRs).
    #[arg(long, default_value = "")]
    pub exclude_outbound_ranges: String,
    /// Inbound ports captured: comma-separated, or * for all.
    #[arg(long, default_value = "*")]
    pub include_inbound_ports: String,
    /// Inbound ports never captured.
    #[arg(long, default_value = "")]
    pub exclude_inbound_ports: String,
    /// Outbound ports captured whatever their destination.
    #[arg(long, default_value = "")]
    pub include_outbound_ports: String,
    /// Outbound ports never captured.
    #[arg(long, default_value = "")]
    pub exclude_outbound_ports: String,
    /// Interfaces of KubeVirt VMs whose traffic is captured as outbound.
    #[arg(long, default_value = "")]
    pub kubevirt_interfaces: String,
    /// Interfaces whose traffic is never captured.
    #[arg(long, default_value = "")]
    pub exclude_interfaces: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ports {
    All,
    List(Vec<u16>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ranges {
    All,
    List(Vec<String>),
}

/// The checked options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub outbound_port: u16,
    pub inbound_port: u16,
    pub proxy_uid: u32,
    pub proxy_gid: u32,
    pub include_outbound: Ranges,
    pub exclude_outbound: Vec<String>,
    pub include_inbound: Ports,
    pub exclude_inbound: Vec<u16>,
    pub include_outbound_ports: Vec<u16>,
    pub exclude_outbound_ports: Vec<u16>,
    pub kubevirt_interfaces: Vec<String>,
    pub exclude_interfaces: Vec<String>,
}

#[derive(Debug, Error, PartialEq, Eq)]
#[error("--{flag}: {item:?} is not {what}")]
pub struct PlanError {
    pub flag: &'static str,
    pub item: String,
    pub what: &'static str,
}

fn items(text: &str) -> Vec<&str> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn ports(flag: &'static str, text: &str) -> Result<Vec<u16>, PlanError> {
    items(text)
        .into_iter()
        .map(|item| {
            item.parse::<u16>()
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| PlanError {
                    flag,
                    item: item.to_owned(),
                    what: "a port (1-65535)",
                })
        })
        .collect()
}

fn port_set(flag: &'static str, text: &str) -> Result<Ports, PlanError> {
    if items(text) == ["*"] {
        return Ok(Ports::All);
    }
    ports(flag, text).map(Ports::List)
}

/// IPv4 CIDRs, normalised to `a.b.c.d/n`.
fn ranges(flag: &'static str, text: &str) -> Result<Vec<String>, PlanError> {
    items(text)
        .into_iter()
        .map(|item| {
            let bad = || PlanError {
                flag,
                item: item.to_owned(),
                what: "an IPv4 range in CIDR form (10.0.0.0/8)",
            };
            let (ip, prefix) = item.split_once('/').unwrap_or((item, "32"));
            let ip: Ipv4Addr = ip.parse().map_err(|_| bad())?;
            let prefix: u8 = prefix.parse().ok().filter(|p| *p <= 32).ok_or_else(bad)?;
            Ok(format!("{ip}/{prefix}"))
        })
        .collect()
}

fn interfaces(flag: &'static str, text: &str) -> Result<Vec<String>, PlanError> {
    items(text)
        .into_iter()
        .map(|item| {
            let ok = item.len() <= 15
                && item
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
            if ok {
                Ok(item.to_owned())
            } else {
                Err(PlanError {
                    flag,
                    item: item.to_owned(),
                    what: "a network interface name",
                })
            }
        })
        .collect()
}

impl CaptureOptions {
    pub fn plan(&self) -> Result<Plan, PlanError> {
        let include_outbound = if items(&self.include_outbound_ranges) == ["*"] {
            Ranges::All
        } else {
            Ranges::List(ranges(
                "include-outbound-ranges",
                &self.include_outbound_ranges,
            )?)
        };
        Ok(Plan {
            outbound_port: self.outbound_port,
            inbound_port: self.inbound_port,
            proxy_uid: self.proxy_uid,
            proxy_gid: self.proxy_gid,
            include_outbound,
            exclude_outbound: ranges("exclude-outbound-ranges", &self.exclude_outbound_ranges)?,
            include_inbound: port_set("include-inbound-ports", &self.include_inbound_ports)?,
            exclude_inbound: ports("exclude-inbound-ports", &self.exclude_inbound_ports)?,
            include_outbound_ports: ports("include-outbound-ports", &self.include_outbound_ports)?,
            exclude_outbound_ports: ports("exclude-outbound-ports", &self.exclude_outbound_ports)?,
            kubevirt_interfaces: interfaces("kubevirt-interfaces", &self.kubevirt_interfaces)?,
            exclude_interfaces: interfaces("exclude-interfaces", &self.exclude_interfaces)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> CaptureOptions {
        CaptureOptions {
            outbound_port: 15001,
            inbound_port: 15006,
            proxy_uid: 1337,
            proxy_gid: 1337,
            include_outbound_ranges: "*".into(),
            include_inbound_ports: "*".into(),
            ..CaptureOptions::default()
        }
    }

    #[test]
    fn lists_are_checked_and_normalised() {
        let mut o = defaults();
        o.include_outbound_ranges = "10.96.0.0/12, 192.168.1.1".into();
        o.exclude_inbound_ports = "15090,15021".into();
        let plan = o.plan().expect("valid");
        assert_eq!(
            plan.include_outbound,
            Ranges::List(vec!["10.96.0.0/12".into(), "192.168.1.1/32".into()])
        );
        assert_eq!(plan.exclude_inbound, vec![15090, 15021]);
        assert_eq!(plan.include_inbound, Ports::All);
    }

    #[test]
    fn bad_items_name_the_flag_and_the_item() {
        let mut o = defaults();
        o.exclude_outbound_ports = "22,ssh".into();
        assert_eq!(
            o.plan().expect_err("bad port").to_string(),
            "--exclude-outbound-ports: \"ssh\" is not a port (1-65535)"
        );
        let mut o = defaults();
        o.exclude_outbound_ranges = "10.0.0.0/40".into();
        assert!(o
            .plan()
            .expect_err("bad range")
            .to_string()
            .starts_with("--exclude-outbound-ranges: \"10.0.0.0/40\""));
        let mut o = defaults();
        o.kubevirt_interfaces = "eth0;rm".into();
        assert!(o.plan().is_err());
    }
}
