//! mesh-proxy's link to meshd, the part Istio's pilot-agent plays: the proxy's configuration
//! from meshd's delta stream ([`xds`]), kept when meshd is away and refreshed when it is back,
//! and its workload certificate from meshd's CA ([`certs`]), renewed at half its life.

pub mod backoff;
pub mod certs;
pub mod channel;
pub mod settings;
pub mod xds;
