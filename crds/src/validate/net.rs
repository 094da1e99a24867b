//! Network addresses: ports, IP addresses, CIDR blocks and Unix domain sockets.

use std::net::IpAddr;

/// Prefix that marks an address or bind as a Unix domain socket.
pub(crate) const UNIX_PREFIX: &str = "unix://";

/// A TCP/UDP port: 1 to 65535. Zero is "unset" in Istio's API, so it is not a port either.
pub(crate) fn check_port(port: u32) -> Result<(), String> {
    if (1..=65535).contains(&port) {
        Ok(())
    } else {
        Err(format!("port number {port} must be in the range 1..65535"))
    }
}

pub(crate) fn is_ip(s: &str) -> bool {
    s.parse::<IpAddr>().is_ok()
}

pub(crate) fn check_ip(s: &str) -> Result<(), String> {
    if is_ip(s) {
        Ok(())
    } else {
        Err(format!("{s} is not a valid IP address"))
    }
}

/// An IP address or a CIDR block (`10.0.0.0/8`, `2001:db8::/32`). As in Istio (Go's
/// `netip.ParsePrefix`), host bits may be set: `10.0.0.1/8` is accepted.
pub(crate) fn check_ip_or_cidr(s: &str) -> Result<(), String> {
    let Some((addr, bits)) = s.split_once('/') else {
        return check_ip(s);
    };
    let valid = match addr.parse::<IpAddr>() {
        Ok(ip) => {
            let max = if ip.is_ipv4() { 32 } else { 128 };
            let digits_only = !bits.is_empty()
                && bits.bytes().all(|b| b.is_ascii_digit())
                && (bits == "0" || !bits.starts_with('0'));
            digits_only && bits.parse::<u32>().is_ok_and(|b| b <= max)
        }
        Err(_) => false,
    };
    if valid {
        Ok(())
    } else {
        Err(format!("{s} is not a valid CIDR block"))
    }
}

/// The path of a Unix domain socket (after `unix://`): absolute and naming a file, or an
/// abstract socket starting with `@`.
pub(crate) fn check_unix_address(path: &str) -> Result<(), String> {
    if path.is_empty() {
        return Err("unix address must not be empty".into());
    }
    if path.starts_with('@') {
        return Ok(());
    }
    if !path.starts_with('/') || path.ends_with('/') {
        return Err(format!("{path} is not an absolute path to a file"));
    }
    Ok(())
}

/// A listener bind address: a `unix://` socket or an IP address.
pub(crate) fn check_bind(bind: &str) -> Result<(), String> {
    match bind.strip_prefix(UNIX_PREFIX) {
        Some(path) => check_unix_address(path),
        None => check_ip(bind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ports() {
        assert!(check_port(1).is_ok());
        assert!(check_port(65535).is_ok());
        assert!(check_port(0).is_err());
        assert!(check_port(65536).is_err());
    }

    #[test]
    fn ips_and_cidrs() {
        for ok in [
            "10.0.0.1",
            "::1",
            "10.0.0.0/8",
            "10.0.0.1/32",
            "2001:db8::/32",
            "0.0.0.0/0",
        ] {
            assert!(check_ip_or_cidr(ok).is_ok(), "{ok}");
        }
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "10.0.0.0/",
            "10.0.0.0/08",
            "10.0.0.0/8/8",
            "host.example.com",
            "::/129",
            "",
        ] {
            assert!(check_ip_or_cidr(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn unix_addresses_and_binds() {
        assert!(check_bind("unix:///var/run/app.sock").is_ok());
        assert!(check_bind("unix://@abstract").is_ok());
        assert!(check_bind("unix://relative.sock").is_err());
        assert!(check_bind("unix:///var/run/").is_err());
        assert!(check_bind("0.0.0.0").is_ok());
        assert!(check_bind("localhost").is_err());
    }
}
