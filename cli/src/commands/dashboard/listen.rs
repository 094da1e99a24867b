//! Binding the local end of the forward: every requested address on one port.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};

use anyhow::anyhow;

/// Listeners on one port across all the addresses the user asked for.
#[derive(Debug)]
pub struct Bound {
    pub listeners: Vec<TcpListener>,
    pub port: u16,
    /// Said to the user when the port is not the one they would expect.
    pub note: Option<String>,
}

/// The IPs an `--address` value stands for. `localhost` is both loopbacks, as with kubectl;
/// a host without IPv6 still serves it on 127.0.0.1.
fn resolve(address: &str) -> anyhow::Result<Vec<IpAddr>> {
    if address == "localhost" {
        return Ok(vec![
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ]);
    }
    if let Ok(ip) = address.trim_matches(['[', ']']).parse::<IpAddr>() {
        return Ok(vec![ip]);
    }
    let ips: Vec<IpAddr> = (address, 0)
        .to_socket_addrs()
        .map_err(|e| {
            anyhow!("--address {address}: not an IP address or a resolvable host name: {e}")
        })?
        .map(|a| a.ip())
        .collect();
    if ips.is_empty() {
        return Err(anyhow!(
            "--address {address}: the name resolves to no address"
        ));
    }
    Ok(ips)
}

/// Why binding one port failed.
enum BindError {
    InUse(String),
    Other(String),
}

/// Binds every address on `port` (0: any port, then the same one for the rest). Each address
/// must get at least one listener.
fn bind_all(addresses: &[String], port: u16) -> anyhow::Result<Result<Bound, BindError>> {
    let mut listeners = Vec::new();
    let mut port = port;
    let mut seen: Vec<IpAddr> = Vec::new();
    for address in addresses {
        let mut bound_one = false;
        let mut failure = None;
        for ip in resolve(address)? {
            // `localhost,127.0.0.1` names one IP twice: one listener serves both.
            if seen.contains(&ip) {
                bound_one = true;
                continue;
            }
            match TcpListener::bind(SocketAddr::new(ip, port)) {
                Ok(listener) => {
                    if port == 0 {
                        port = listener
                            .local_addr()
                            .map_err(|e| anyhow!("cannot read the bound port: {e}"))?
                            .port();
                    }
                    listeners.push(listener);
                    seen.push(ip);
                    bound_one = true;
                }
                Err(e) if e.kind() == ErrorKind::AddrInUse => {
                    return Ok(Err(BindError::InUse(format!("{address} ({ip})"))));
                }
                Err(e) => {
                    failure = Some(format!(
                        "cannot listen on {address} ({ip}) port {port}: {e}"
                    ))
                }
            }
        }
        if !bound_one {
            let why = failure.unwrap_or_else(|| format!("cannot listen on {address}"));
            return Ok(Err(BindError::Other(why)));
        }
    }
    Ok(Ok(Bound {
        listeners,
        port,
        note: None,
    }))
}

/// `-p` if given (it must be free); otherwise the UI's own port number when free, so the URL is
/// the familiar one; otherwise any free port.
pub fn bind(addresses: &[String], requested: Option<u16>, remote: u16) -> anyhow::Result<Bound> {
    if let Some(port) = requested {
        return match bind_all(addresses, port)? {
            Ok(bound) => Ok(bound),
            Err(BindError::InUse(on)) => Err(anyhow!(
                "local port {port} is already in use on {on}: choose another with -p PORT, or leave out -p to use a free one"
            )),
            Err(BindError::Other(why)) => Err(anyhow!("{why}")),
        };
    }
    match bind_all(addresses, remote)? {
        Ok(bound) => Ok(bound),
        Err(BindError::InUse(on)) => {
            let mut bound = any_free(addresses)?;
            bound.note = Some(format!(
                "local port {remote} is in use on {on}; using port {} instead (choose one with -p PORT)",
                bound.port
            ));
            Ok(bound)
        }
        // Ports below 1024 need privileges the user may not have: a free high port does.
        Err(BindError::Other(why)) => {
            let mut bound = any_free(addresses)?;
            bound.note = Some(format!("{why}; using port {} instead", bound.port));
            Ok(bound)
        }
    }
}

/// A port free on every address. Another process may take the first address's port on a later
/// address between the binds, so a few tries.
fn any_free(addresses: &[String]) -> anyhow::Result<Bound> {
    let mut last = String::new();
    for _ in 0..5 {
        match bind_all(addresses, 0)? {
            Ok(bound) => return Ok(bound),
            Err(BindError::InUse(on)) => last = format!("a free port was taken on {on} meanwhile"),
            Err(BindError::Other(why)) => return Err(anyhow!("{why}")),
        }
    }
    Err(anyhow!("cannot find a port free on every address: {last}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addresses(list: &[&str]) -> Vec<String> {
        list.iter().map(|a| (*a).to_owned()).collect()
    }

    fn free_port() -> u16 {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        l.local_addr().expect("addr").port()
    }

    #[test]
    fn the_remote_port_is_used_when_free() {
        let port = free_port();
        let bound = bind(&addresses(&["127.0.0.1"]), None, port).expect("binds");
        assert_eq!(bound.port, port);
        assert!(bound.note.is_none());
    }

    #[test]
    fn a_busy_remote_port_falls_back_to_a_free_one_and_says_so() {
        let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let bound = bind(&addresses(&["127.0.0.1"]), None, port).expect("binds");
        assert_ne!(bound.port, port);
        let note = bound.note.expect("a note");
        assert!(
            note.contains(&format!("local port {port} is in use")),
            "{note}"
        );
        assert!(note.contains("-p PORT"), "{note}");
    }

    #[test]
    fn a_busy_requested_port_is_an_error_naming_it() {
        let busy = TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = busy.local_addr().expect("addr").port();
        let err = bind(&addresses(&["127.0.0.1"]), Some(port), 80).expect_err("in use");
        let text = err.to_string();
        assert!(
            text.contains(&format!("local port {port} is already in use on 127.0.0.1")),
            "{text}"
        );
        assert!(text.contains("-p PORT"), "{text}");
    }

    #[test]
    fn every_address_gets_the_same_port() {
        let bound = bind(&addresses(&["127.0.0.1", "localhost"]), Some(0), 1).expect("binds");
        assert!(bound.port != 0);
        // localhost adds ::1 where IPv6 exists; its 127.0.0.1 is the first address's listener.
        assert!(bound
            .listeners
            .iter()
            .all(|l| l.local_addr().map(|a| a.port()).ok() == Some(bound.port)));
    }

    #[test]
    fn unresolvable_addresses_are_named() {
        let err = bind(&addresses(&["no-such-host.invalid"]), None, 1).expect_err("bad address");
        assert!(
            err.to_string().contains("--address no-such-host.invalid"),
            "{err}"
        );
    }
}
