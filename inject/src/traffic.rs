//! The capture rules of a pod: the `mesh-proxy iptables` arguments of its init container,
//! from Istio's `traffic.sidecar.istio.io/*` annotations, checked before anything is written.

use std::net::IpAddr;

use serde_json::Value;

use crate::error::InjectError;
use crate::names::*;

const INCLUDE_OUTBOUND_RANGES: &str = "traffic.sidecar.istio.io/includeOutboundIPRanges";
const EXCLUDE_OUTBOUND_RANGES: &str = "traffic.sidecar.istio.io/excludeOutboundIPRanges";
const INCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeInboundPorts";
const EXCLUDE_INBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeInboundPorts";
const INCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/includeOutboundPorts";
const EXCLUDE_OUTBOUND_PORTS: &str = "traffic.sidecar.istio.io/excludeOutboundPorts";
const KUBEVIRT_INTERFACES: &str = "traffic.sidecar.istio.io/kubevirtInterfaces";
const EXCLUDE_INTERFACES: &str = "traffic.sidecar.istio.io/excludeInterfaces";

/// What each annotation holds, for checking it.
#[derive(Clone, Copy)]
enum Shape {
    Ports,
    Ranges,
    Interfaces,
}

fn check(value: &str, shape: Shape) -> Result<String, String> {
    let items: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if items == ["*"] && !matches!(shape, Shape::Interfaces) {
        return Ok("*".to_owned());
    }
    for item in &items {
        let ok = match shape {
            Shape::Ports => item.parse::<u16>().is_ok_and(|p| p > 0),
            Shape::Ranges => is_cidr(item),
            Shape::Interfaces => item
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)),
        };
        if !ok {
            let what = match shape {
                Shape::Ports => "a port (1-65535) or *",
                Shape::Ranges => "an IP range in CIDR form (10.0.0.0/8) or *",
                Shape::Interfaces => "a network interface name",
            };
            return Err(format!(
                "{item:?} is not {what}; give a comma-separated list"
            ));
        }
    }
    Ok(items.join(","))
}

fn is_cidr(item: &str) -> bool {
    let (ip, prefix) = item.split_once('/').unwrap_or((item, ""));
    let Ok(ip) = ip.parse::<IpAddr>() else {
        return false;
    };
    if prefix.is_empty() {
        return !item.contains('/');
    }
    let max = if ip.is_ipv4() { 32 } else { 128 };
    prefix.parse::<u8>().is_ok_and(|p| p <= max)
}

/// The init container's arguments for a pod with these annotations.
pub fn iptables_args(annotations: &Value, resource: &str) -> Result<Vec<String>, InjectError> {
    let read = |key: &str, shape: Shape| -> Result<Option<String>, InjectError> {
        match annotations[key].as_str() {
            None => Ok(None),
            Some(v) => check(v, shape)
                .map(Some)
                .map_err(|message| InjectError::Annotation {
                    resource: resource.to_owned(),
                    annotation: key.to_owned(),
                    message,
                }),
        }
    };
    if let Some(mode) = annotations[ANNOTATION_INTERCEPTION_MODE].as_str() {
        if mode != "REDIRECT" {
            return Err(InjectError::Annotation {
                resource: resource.to_owned(),
                annotation: ANNOTATION_INTERCEPTION_MODE.to_owned(),
                message: format!("{mode:?} is not supported; mesh-proxy captures with REDIRECT"),
            });
        }
    }
    let mut exclude_inbound: Vec<String> = [PORT_METRICS, PORT_HEALTH, PORT_MERGED_METRICS]
        .iter()
        .map(u16::to_string)
        .collect();
    if let Some(extra) = read(EXCLUDE_INBOUND_PORTS, Shape::Ports)? {
        for port in extra.split(',').filter(|p| !p.is_empty() && *p != "*") {
            if !exclude_inbound.iter().any(|p| p == port) {
                exclude_inbound.push(port.to_owned());
            }
        }
    }
    let mut args = vec![
        "iptables".to_owned(),
        format!("--outbound-port={PORT_OUTBOUND}"),
        format!("--inbound-port={PORT_INBOUND}"),
        format!("--proxy-uid={PROXY_UID}"),
        format!("--proxy-gid={PROXY_UID}"),
        format!(
            "--include-outbound-ranges={}",
            read(INCLUDE_OUTBOUND_RANGES, Shape::Ranges)?.unwrap_or_else(|| "*".to_owned())
        ),
        format!(
            "--include-inbound-ports={}",
            read(INCLUDE_INBOUND_PORTS, Shape::Ports)?.unwrap_or_else(|| "*".to_owned())
        ),
        format!("--exclude-inbound-ports={}", exclude_inbound.join(",")),
    ];
    for (key, flag, shape) in [
        (
            EXCLUDE_OUTBOUND_RANGES,
            "--exclude-outbound-ranges",
            Shape::Ranges,
        ),
        (
            INCLUDE_OUTBOUND_PORTS,
            "--include-outbound-ports",
            Shape::Ports,
        ),
        (
            EXCLUDE_OUTBOUND_PORTS,
            "--exclude-outbound-ports",
            Shape::Ports,
        ),
        (
            KUBEVIRT_INTERFACES,
            "--kubevirt-interfaces",
            Shape::Interfaces,
        ),
        (
            EXCLUDE_INTERFACES,
            "--exclude-interfaces",
            Shape::Interfaces,
        ),
    ] {
        if let Some(v) = read(key, shape)?.filter(|v| !v.is_empty()) {
            args.push(format!("{flag}={v}"));
        }
    }
    Ok(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn defaults_capture_everything_but_the_proxy_ports() {
        let args = iptables_args(&json!({}), "Pod a/b").expect("valid");
        assert_eq!(
            args,
            [
                "iptables",
                "--outbound-port=15001",
                "--inbound-port=15006",
                "--proxy-uid=1337",
                "--proxy-gid=1337",
                "--include-outbound-ranges=*",
                "--include-inbound-ports=*",
                "--exclude-inbound-ports=15090,15021,15020",
            ]
        );
    }

    #[test]
    fn annotations_become_flags() {
        let annotations = json!({
            "traffic.sidecar.istio.io/includeOutboundIPRanges": "10.96.0.0/12, 10.244.0.0/16",
            "traffic.sidecar.istio.io/excludeOutboundIPRanges": "169.254.169.254/32",
            "traffic.sidecar.istio.io/includeInboundPorts": "8080,9090",
            "traffic.sidecar.istio.io/excludeInboundPorts": "15021,8081",
            "traffic.sidecar.istio.io/excludeOutboundPorts": "5432",
            "traffic.sidecar.istio.io/includeOutboundPorts": "443",
            "traffic.sidecar.istio.io/kubevirtInterfaces": "net1",
            "sidecar.istio.io/interceptionMode": "REDIRECT",
        });
        let args = iptables_args(&annotations, "Pod a/b").expect("valid");
        for flag in [
            "--include-outbound-ranges=10.96.0.0/12,10.244.0.0/16",
            "--exclude-outbound-ranges=169.254.169.254/32",
            "--include-inbound-ports=8080,9090",
            "--exclude-inbound-ports=15090,15021,15020,8081",
            "--exclude-outbound-ports=5432",
            "--include-outbound-ports=443",
            "--kubevirt-interfaces=net1",
        ] {
            assert!(args.iter().any(|a| a == flag), "{flag} in {args:?}");
        }
    }

    #[test]
    fn bad_annotations_name_the_resource_the_annotation_and_the_item() {
        for (key, value, expected) in [
            (
                "traffic.sidecar.istio.io/excludeInboundPorts",
                "80,http",
                "\"http\" is not a port",
            ),
            (
                "traffic.sidecar.istio.io/excludeOutboundPorts",
                "70000",
                "\"70000\" is not a port",
            ),
            (
                "traffic.sidecar.istio.io/includeOutboundIPRanges",
                "10.0.0.0/33",
                "not an IP range",
            ),
            (
                "traffic.sidecar.istio.io/excludeOutboundIPRanges",
                "ten",
                "not an IP range",
            ),
            (
                "sidecar.istio.io/interceptionMode",
                "TPROXY",
                "not supported",
            ),
        ] {
            let err = iptables_args(&json!({key: value}), "Deployment shop/web").expect_err(key);
            let text = err.to_string();
            assert!(
                text.starts_with(&format!("Deployment shop/web: annotation {key}: ")),
                "{text}"
            );
            assert!(text.contains(expected), "{text}");
        }
    }
}
