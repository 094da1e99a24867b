//! mesh-proxy, the data plane. So far: the traffic capture its init container sets up
//! (`iptables`), and reading a captured connection's original destination.

pub mod iptables;
pub mod original_dst;
