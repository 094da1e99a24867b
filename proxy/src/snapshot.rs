//! A configuration compiled for serving: route tables by port and gateway, clusters by service
//! port and subset, the inbound side. Built once per config; requests only read it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use mesh_proxy_config as cfg;

use crate::cluster::{
    Cluster, ClusterPolicy, ClusterState, Endpoint, EndpointState, LabelContext, LbPolicy,
};
use crate::default_routes::DefaultRoutes;
use crate::dump::{Dump, Format};
use crate::filters::telemetry::Sinks;
use crate::filters::InboundGuards;
use crate::http::chain::Chain;
use crate::listener::Side;
use crate::metrics::{LabelSet, Metrics, Peer, Reporter, ServiceLabels};
use crate::route::{DestRef, RouteTable, VirtualHost};
use crate::tls::upstream::{EndpointTls, UpstreamTls, TLS_MODE_LABEL};
use crate::tls::Credentials;

/// A service port's clusters: all endpoints, and one per subset. Built on first use.
pub struct PortClusters {
    pub all: Arc<Cluster>,
    pub subsets: Vec<(Box<str>, Arc<Cluster>)>,
}

/// One port of a service.
pub struct PortEntry {
    pub number: u16,
    name: Box<str>,
    target_port: Option<u16>,
    pub protocol: Option<cfg::Protocol>,
    clusters: OnceLock<PortClusters>,
}

/// An endpoint as the config gave it, kept compact until a cluster needs it.
struct EndpointDef {
    ip: IpAddr,
    port: Option<u16>,
    ports: Box<[(Box<str>, u16)]>,
    labels: Box<[(Box<str>, Box<str>)]>,
    workload: Option<Box<str>>,
    namespace: Option<Box<str>>,
    weight: u32,
    peer: OnceLock<Arc<Peer>>,
    tls: EndpointTls,
}

impl EndpointDef {
    fn from(e: &cfg::Endpoint, trust_domain: &str, service_namespace: &str) -> Option<EndpointDef> {
        let identity = e.identity.clone().or_else(|| {
            e.service_account.as_deref().map(|sa| {
                cfg::spiffe_id(
                    trust_domain,
                    e.namespace.as_deref().unwrap_or(service_namespace),
                    sa,
                )
            })
        });
        Some(EndpointDef {
            tls: EndpointTls {
                identity: identity.map(Arc::from),
                sidecar: e.labels.get(TLS_MODE_LABEL).is_some_and(|m| m == "istio"),
            },
            ip: e.address?,
            port: e.port,
            ports: e
                .ports
                .iter()
                .map(|(k, v)| (k.as_str().into(), *v))
                .collect(),
            labels: e
                .labels
                .iter()
                .map(|(k, v)| (k.as_str().into(), v.as_str().into()))
                .collect(),
            workload: e.workload.as_deref().map(Into::into),
            namespace: e.namespace.as_deref().map(Into::into),
            weight: e.weight.unwrap_or(1),
            peer: OnceLock::new(),
        })
    }

    fn port_for(&self, p: &PortEntry) -> u16 {
        self.ports
            .iter()
            .find(|(n, _)| **n == *p.name)
            .map(|(_, v)| *v)
            .or(self.port)
            .or(p.target_port)
            .unwrap_or(p.number)
    }

    fn has(&self, labels: &std::collections::BTreeMap<String, String>) -> bool {
        labels.iter().all(|(k, v)| {
            self.labels
                .iter()
                .any(|(lk, lv)| **lk == **k && **lv == **v)
        })
    }
}

pub struct ServiceEntry {
    pub host: String,
    pub labels: Arc<ServiceLabels>,
    pub ports: Vec<PortEntry>,
    // Boxed slices, not Vecs: a Vec collected from a filter keeps room for four.
    endpoints: Box<[EndpointDef]>,
    rule: Option<Arc<cfg::DestinationRule>>,
    /// Compiled TCP routes of the VirtualService for this host, if any.
    pub tcp_routes: Vec<TcpRoute>,
    /// Its route to itself, for names no VirtualService claims; made on first use.
    default_host: OnceLock<Arc<VirtualHost>>,
}

impl ServiceEntry {
    fn default_virtual_host(&self) -> &Arc<VirtualHost> {
        self.default_host.get_or_init(|| {
            let dest = DestRef {
                host: self.host.clone(),
                subset: None,
                port: None,
            };
            Arc::new(VirtualHost::default_for(self.host.clone(), dest))
        })
    }

    /// Whether a request to `port` may take the default route: an HTTP (or undeclared)
    /// port of this service.
    fn routes_http_on(&self, port: u16) -> bool {
        self.ports
            .iter()
            .any(|p| p.number == port && p.protocol != Some(cfg::Protocol::Tcp))
    }
}

pub struct TcpRoute {
    pub port: Option<u16>,
    pub subnets: Vec<(IpAddr, u8)>,
    pub dests: Vec<(DestRef, u32)>,
}

/// Live state of the clusters a snapshot built, handed to the next snapshot so that a config
/// swap keeps connections, counters and ejections.
#[derive(Default)]
pub struct Carry {
    clusters: HashMap<Arc<str>, CarriedCluster>,
}

#[derive(Clone)]
struct CarriedCluster {
    state: Arc<ClusterState>,
    endpoints: Vec<(SocketAddr, Arc<EndpointState>)>,
}

pub struct Snapshot {
    /// Counts the snapshots this process loaded.
    pub generation: u64,
    /// The config's small parts (listeners, limits, inbound…); the services, VirtualServices
    /// and DestinationRules live only in their compiled form (and in `dump`).
    pub config: Arc<cfg::ProxyConfig>,
    /// The whole config as its source wrote it, for the admin config dump.
    pub dump: Dump,
    pub source: Arc<Peer>,
    outbound_labels: Arc<LabelContext>,
    inbound_labels: Arc<LabelContext>,
    pub services: Vec<ServiceEntry>,
    by_host: rustc_hash::FxHashMap<String, usize>,
    by_vip: rustc_hash::FxHashMap<(IpAddr, u16), usize>,
    /// Outbound HTTP routing by destination port.
    pub http_by_port: HashMap<u16, RouteTable>,
    /// Plain listeners without a gateway: mesh routes of every port.
    pub http_any_port: RouteTable,
    pub http_by_gateway: HashMap<String, RouteTable>,
    /// Names of services, for those no VirtualService claims on a port.
    defaults: DefaultRoutes,
    /// Which sides route services by their own names: those with a listener in this config
    /// (a connection accepted under an older one may still be open).
    defaults_outbound: bool,
    defaults_plain: bool,
    pub inbound_ports: HashMap<u16, Option<cfg::Protocol>>,
    pub inbound_service: Arc<ServiceLabels>,
    pub outbound_mode: cfg::OutboundMode,
    pub limits: cfg::Limits,
    pub detection_timeout: Duration,
    pub drain_timeout: Duration,
    /// Clusters made on demand: inbound (by local port) and passthrough (by address).
    dynamic: Mutex<HashMap<(bool, SocketAddr), Arc<Cluster>>>,
    /// The previous snapshots' cluster state, taken over as clusters are built here.
    carried: Carry,
    /// The state of the clusters built here, for the next snapshot.
    built: Mutex<Carry>,
    node_cluster: Option<String>,
    pub metrics: Arc<Metrics>,
    /// Labels of requests nothing matched (`BlackHoleCluster`, no route).
    pub unknown_labels_outbound: Arc<LabelSet>,
    pub unknown_labels_inbound: Arc<LabelSet>,
    /// Request filters of each side (authorization, rate limits, access logs plug in here).
    pub inbound_chain: Chain,
    pub outbound_chain: Chain,
    /// Authorization and rate limits of inbound opaque TCP connections.
    pub inbound_guards: InboundGuards,
    /// The workload's certificates (process-wide, kept across snapshots).
    pub credentials: Arc<Credentials>,
    /// Where access logs and spans go (process-wide).
    pub sinks: Arc<Sinks>,
}

/// What a snapshot shares with the process rather than owns.
#[derive(Clone)]
pub struct Shared {
    pub credentials: Arc<Credentials>,
    pub sinks: Arc<Sinks>,
}

impl Shared {
    pub fn new(metrics: &Arc<Metrics>) -> Shared {
        Shared {
            credentials: Arc::new(Credentials::new(metrics.clone())),
            sinks: Sinks::new(metrics.clone()),
        }
    }
}

/// Every name a service answers to in a `Host` header: its host, aliases and addresses.
fn service_names(s: &cfg::Service) -> impl Iterator<Item = String> + '_ {
    std::iter::once(s.host.clone())
        .chain(s.aliases.iter().cloned())
        .chain(s.addresses.iter().map(|a| a.to_string()))
}

fn service_labels(s: &cfg::Service) -> ServiceLabels {
    let mut parts = s.host.split('.');
    let first = parts.next().unwrap_or_default().to_owned();
    let second = parts.next().unwrap_or_default().to_owned();
    ServiceLabels {
        host: s.host.clone(),
        name: s.name.clone().unwrap_or(first),
        namespace: s.namespace.clone().unwrap_or(second),
    }
}

fn parse_subnet(s: &str) -> Option<(IpAddr, u8)> {
    match s.split_once('/') {
        Some((ip, len)) => Some((ip.parse().ok()?, len.parse().ok()?)),
        None => {
            let ip: IpAddr = s.parse().ok()?;
            Some((ip, if ip.is_ipv4() { 32 } else { 128 }))
        }
    }
}

/// Whether `ip` is inside `net/len`.
pub fn in_subnet(ip: IpAddr, (net, len): (IpAddr, u8)) -> bool {
    match (ip, net) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(len.min(32)))
            };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let mask = if len == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(len.min(128)))
            };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

impl Snapshot {
    /// The filter chain of the side a connection came in on.
    pub fn chain_for(&self, side: &crate::listener::Side) -> &Chain {
        if *side == crate::listener::Side::Inbound {
            &self.inbound_chain
        } else {
            &self.outbound_chain
        }
    }

    pub fn build(
        config: cfg::ProxyConfig,
        generation: u64,
        metrics: Arc<Metrics>,
        previous: Option<&Snapshot>,
        source: Option<Box<str>>,
    ) -> Snapshot {
        let shared = Shared::new(&metrics);
        Self::build_with(config, generation, metrics, previous, source, shared)
    }

    /// [`Snapshot::build`] with the process's credentials and telemetry outputs.
    pub fn build_with(
        config: cfg::ProxyConfig,
        generation: u64,
        metrics: Arc<Metrics>,
        previous: Option<&Snapshot>,
        source: Option<Box<str>>,
        shared: Shared,
    ) -> Snapshot {
        let dump = match source {
            Some(text) => Dump::new(Format::Yaml, &text),
            None => Dump::new(
                Format::Json,
                &serde_json::to_string(&config).unwrap_or_default(),
            ),
        };
        let node = &config.node.clone();
        let mtls = config.certificates.is_some();
        let trust_domain = config.trust_domain().to_owned();
        let source = Arc::new({
            let mut p = Peer::from_labels(
                node.workload.as_deref(),
                node.namespace.as_deref(),
                &node.labels,
                node.cluster.as_deref(),
            );
            if let (true, Some(sa)) = (mtls, node.service_account.as_deref()) {
                p.principal = cfg::spiffe_id(
                    &trust_domain,
                    node.namespace.as_deref().unwrap_or("default"),
                    sa,
                );
            }
            p
        });
        let outbound_labels = Arc::new(LabelContext {
            metrics: metrics.clone(),
            reporter: Reporter::Source,
            local: source.clone(),
        });
        let inbound_labels = Arc::new(LabelContext {
            metrics: metrics.clone(),
            reporter: Reporter::Destination,
            local: source.clone(),
        });
        let rules: HashMap<&str, &cfg::DestinationRule> = config
            .destination_rules
            .iter()
            .map(|r| (r.host.as_str(), r))
            .collect();

        let mut services = Vec::with_capacity(config.services.len());
        let mut by_host = rustc_hash::FxHashMap::default();
        let mut by_vip = rustc_hash::FxHashMap::default();
        for (idx, s) in config.services.iter().enumerate() {
            let labels = Arc::new(service_labels(s));
            services.push(ServiceEntry {
                host: s.host.clone(),
                labels,
                ports: s
                    .ports
                    .iter()
                    .map(|p| PortEntry {
                        number: p.number,
                        name: p.name.as_str().into(),
                        target_port: p.target_port,
                        protocol: p.protocol(),
                        clusters: OnceLock::new(),
                    })
                    .collect(),
                endpoints: {
                    let ns = service_labels(s).namespace;
                    s.endpoints
                        .iter()
                        .filter_map(|e| EndpointDef::from(e, &trust_domain, &ns))
                        .collect::<Vec<_>>()
                        .into_boxed_slice()
                },
                rule: rules.get(s.host.as_str()).map(|r| Arc::new((*r).clone())),
                tcp_routes: Vec::new(),
                default_host: OnceLock::new(),
            });
            by_host.entry(s.host.clone()).or_insert(idx);
            for a in &s.addresses {
                for p in &s.ports {
                    by_vip.entry((*a, p.number)).or_insert(idx);
                }
            }
        }

        // Virtual hosts of the VirtualServices, keyed by the hosts they name.
        let mut http_by_port: HashMap<u16, RouteTable> = HashMap::new();
        let mut http_any_port = RouteTable::default();
        let mut http_by_gateway: HashMap<String, RouteTable> = HashMap::new();
        // Only the tables some listener uses: a sidecar routes by port, a gateway by its name,
        // a plain listener over every port.
        let listeners = config.effective_listeners();
        let want_by_port = listeners
            .iter()
            .any(|l| l.capture == cfg::Capture::Outbound);
        let want_any_port = listeners
            .iter()
            .any(|l| l.capture == cfg::Capture::None && l.gateway.is_none());
        let names_of = |host: &str| -> Vec<String> {
            match by_host.get(host) {
                Some(&i) => service_names(&config.services[i]).collect(),
                None => vec![host.to_owned()],
            }
        };
        // A Gateway merged into another's listener: its routes go to that listener's table.
        let merged_into: HashMap<&str, &str> = listeners
            .iter()
            .filter_map(|l| l.gateway.as_deref().map(|g| (g, &l.also_gateways)))
            .flat_map(|(g, also)| also.iter().map(move |h| (h.as_str(), g)))
            .collect();
        for vs in &config.virtual_services {
            let mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
            if !vs.http.is_empty() {
                let vh = Arc::new(VirtualHost::compile(vs, node));
                for h in &vs.hosts {
                    for name in names_of(h) {
                        if mesh && want_any_port {
                            http_any_port.insert(&name, &vh);
                        }
                        if mesh && want_by_port {
                            // On the ports of the service it names, or every known port for
                            // hosts outside the registry.
                            let ports: Vec<u16> = match by_host.get(h) {
                                Some(&i) => {
                                    config.services[i].ports.iter().map(|p| p.number).collect()
                                }
                                None => config
                                    .services
                                    .iter()
                                    .flat_map(|s| s.ports.iter().map(|p| p.number))
                                    .chain([80])
                                    .collect(),
                            };
                            for port in ports {
                                http_by_port.entry(port).or_default().insert(&name, &vh);
                            }
                        }
                        for g in vs.gateways.iter().filter(|g| *g != "mesh") {
                            http_by_gateway
                                .entry(g.clone())
                                .or_default()
                                .insert(&name, &vh);
                            if let Some(primary) = merged_into.get(g.as_str()) {
                                http_by_gateway
                                    .entry((*primary).to_owned())
                                    .or_default()
                                    .insert(&name, &vh);
                            }
                        }
                    }
                }
            }
            if !vs.tcp.is_empty() && mesh {
                let routes: Vec<TcpRoute> = vs
                    .tcp
                    .iter()
                    .filter(|r| {
                        r.matches.is_empty()
                            || r.matches.iter().any(|m| {
                                crate::route::source_matches(
                                    &m.source_labels,
                                    m.source_namespace.as_deref(),
                                    node,
                                )
                            })
                    })
                    .flat_map(|r| {
                        let dests: Vec<(DestRef, u32)> = r
                            .route
                            .iter()
                            .map(|d| {
                                (
                                    DestRef::from(&d.destination),
                                    d.weight.unwrap_or(if r.route.len() == 1 { 100 } else { 0 }),
                                )
                            })
                            .collect();
                        let ms: Vec<&cfg::L4MatchAttributes> = r.matches.iter().collect();
                        if ms.is_empty() {
                            vec![TcpRoute {
                                port: None,
                                subnets: Vec::new(),
                                dests,
                            }]
                        } else {
                            ms.iter()
                                .map(|m| TcpRoute {
                                    port: m.port,
                                    subnets: m
                                        .destination_subnets
                                        .iter()
                                        .filter_map(|s| parse_subnet(s))
                                        .collect(),
                                    dests: dests.clone(),
                                })
                                .collect()
                        }
                    })
                    .collect();
                let routes = Arc::new(routes);
                for h in &vs.hosts {
                    if let Some(&i) = by_host.get(h) {
                        if services[i].tcp_routes.is_empty() {
                            services[i].tcp_routes = routes
                                .iter()
                                .map(|r| TcpRoute {
                                    port: r.port,
                                    subnets: r.subnets.clone(),
                                    dests: r.dests.clone(),
                                })
                                .collect();
                        }
                    }
                }
            }
        }
        // Services no VirtualService claims route to themselves: their names are indexed once
        // here, and the port is checked when a request is routed (`virtual_host`). Wildcard
        // names (`*.example.com`, a ServiceEntry's) go into the tables instead, where they rank
        // by length among the VirtualServices' wildcards, as every name once did.
        let mut defaults = DefaultRoutes::default();
        for (i, s) in config.services.iter().enumerate() {
            for name in service_names(s) {
                if !name.starts_with('*') {
                    defaults.insert(&name, u32::try_from(i).unwrap_or(u32::MAX));
                    continue;
                }
                // `insert` keeps a name's first claimer: the VirtualServices, inserted above.
                let vh = services[i].default_virtual_host();
                if want_by_port {
                    for p in s
                        .ports
                        .iter()
                        .filter(|p| p.protocol() != Some(cfg::Protocol::Tcp))
                    {
                        http_by_port.entry(p.number).or_default().insert(&name, vh);
                    }
                }
                if want_any_port {
                    http_any_port.insert(&name, vh);
                }
            }
        }
        defaults.finish();
        for t in http_by_port
            .values_mut()
            .chain(http_by_gateway.values_mut())
            .chain([&mut http_any_port])
        {
            t.finish();
        }

        let inbound_service = config
            .inbound
            .service
            .as_deref()
            .and_then(|h| by_host.get(h).map(|&i| services[i].labels.clone()))
            .or_else(|| {
                config.inbound.service.as_ref().map(|h| {
                    Arc::new(ServiceLabels {
                        host: h.clone(),
                        name: h.split('.').next().unwrap_or_default().to_owned(),
                        namespace: node.namespace.clone().unwrap_or_default(),
                    })
                })
            })
            .unwrap_or_default();
        let unknown_labels_outbound = metrics.label_set(
            Reporter::Source,
            &source,
            &Peer::default(),
            &ServiceLabels::default(),
        );
        let unknown_labels_inbound = metrics.label_set(
            Reporter::Destination,
            &Peer::default(),
            &source,
            &inbound_service,
        );
        let carried = previous
            .map(|p| p.carry_forward(&by_host))
            .unwrap_or_default();
        let local_service = format!("{}.{}", source.canonical_service, source.namespace);
        let (inbound_chain, outbound_chain, inbound_guards) =
            crate::filters::build(&config, &metrics, &shared.sinks, &local_service);
        // The compiled form is all that serving needs; the dump keeps the rest.
        let mut config = config;
        config.services = Vec::new();
        config.virtual_services = Vec::new();
        config.destination_rules = Vec::new();
        Snapshot {
            generation,
            dump,
            outbound_labels,
            inbound_labels,
            source,
            services,
            by_host,
            by_vip,
            http_by_port,
            http_any_port,
            http_by_gateway,
            defaults,
            defaults_outbound: want_by_port,
            defaults_plain: want_any_port,
            inbound_ports: config
                .inbound
                .ports
                .iter()
                .map(|p| (p.number, p.protocol()))
                .collect(),
            inbound_service,
            outbound_mode: config.outbound_traffic_policy.mode,
            limits: config.limits.clone(),
            detection_timeout: config
                .protocol_detection_timeout
                .map_or(Duration::from_millis(100), |d| d.get()),
            drain_timeout: config
                .drain_timeout
                .map_or(Duration::from_secs(5), |d| d.get()),
            dynamic: Mutex::new(HashMap::new()),
            carried,
            built: Mutex::new(Carry::default()),
            node_cluster: node.cluster.clone(),
            metrics,
            unknown_labels_outbound,
            unknown_labels_inbound,
            inbound_chain,
            outbound_chain,
            inbound_guards,
            credentials: shared.credentials,
            sinks: shared.sinks,
            config: Arc::new(config),
        }
    }

    /// The virtual host routing a request for `authority` that came in on `side` to `port`:
    /// a VirtualService's exact name, else a service's own name (on a port it serves HTTP on,
    /// for captured outbound traffic), else a VirtualService's wildcard.
    pub fn virtual_host(
        &self,
        side: &Side,
        port: u16,
        authority: &str,
    ) -> Option<&Arc<VirtualHost>> {
        let table = match side {
            Side::Outbound => self.http_by_port.get(&port),
            Side::Gateway(g) => self.http_by_gateway.get(g),
            Side::Plain | Side::Inbound => Some(&self.http_any_port),
        };
        let host = crate::route::lower_host(authority);
        if let Some(vh) = table.and_then(|t| t.exact(&host)) {
            return Some(vh);
        }
        let own = match side {
            Side::Outbound if self.defaults_outbound => self
                .defaults
                .services(&host)
                .filter_map(|i| self.services.get(i))
                .find(|s| s.routes_http_on(port)),
            Side::Plain if self.defaults_plain => self
                .defaults
                .services(&host)
                .next()
                .and_then(|i| self.services.get(i)),
            _ => None,
        };
        if let Some(s) = own {
            return Some(s.default_virtual_host());
        }
        table.and_then(|t| t.wildcard(&host))
    }

    pub fn service(&self, host: &str) -> Option<&ServiceEntry> {
        self.by_host.get(host).map(|&i| &self.services[i])
    }

    pub fn service_by_vip(&self, addr: SocketAddr) -> Option<&ServiceEntry> {
        self.by_vip
            .get(&(addr.ip(), addr.port()))
            .map(|&i| &self.services[i])
    }

    /// The cluster a route destination names, for a request that arrived on `port`.
    pub fn cluster_for(&self, dest: &DestRef, port: u16) -> Option<&Arc<Cluster>> {
        let svc = self.service(&dest.host)?;
        let pe = match dest.port {
            Some(p) => svc.ports.iter().find(|pe| pe.number == p)?,
            None if svc.ports.len() == 1 => &svc.ports[0],
            None => svc.ports.iter().find(|pe| pe.number == port).or_else(|| {
                svc.ports
                    .iter()
                    .find(|pe| pe.protocol.is_none_or(|p| p.is_http()))
            })?,
        };
        let pc = pe.clusters.get_or_init(|| self.build_clusters(svc, pe));
        match &dest.subset {
            None => Some(&pc.all),
            Some(name) => pc
                .subsets
                .iter()
                .find(|(n, _)| **n == **name)
                .map(|(_, c)| c),
        }
    }

    /// Makes a service port's clusters (all endpoints, and each subset's), taking over the
    /// live state of same-named clusters of earlier snapshots.
    fn build_clusters(&self, svc: &ServiceEntry, pe: &PortEntry) -> PortClusters {
        let make = |subset: Option<&cfg::Subset>| {
            let name: Arc<str> = format!(
                "outbound|{}|{}|{}",
                pe.number,
                subset.map_or("", |s| s.name.as_str()),
                svc.host
            )
            .into();
            let rule_policy = svc.rule.as_ref().and_then(|r| r.traffic_policy.as_ref());
            let subset_policy = subset.and_then(|s| s.traffic_policy.as_ref());
            let policy = ClusterPolicy::resolve(rule_policy, subset_policy, pe.number, pe.protocol);
            let tls = UpstreamTls::resolve(
                crate::cluster::policy::resolve_tls(rule_policy, subset_policy, pe.number),
                &svc.host,
            );
            let mtls_labels = self.config.certificates.is_some();
            let carried = self.carried.clusters.get(&name);
            let mut states = Vec::new();
            let endpoints: Vec<Endpoint> = svc
                .endpoints
                .iter()
                .filter(|e| subset.is_none_or(|sub| e.has(&sub.labels)))
                .map(|e| {
                    let addr = SocketAddr::new(e.ip, e.port_for(pe));
                    let state = carried
                        .and_then(|c| c.endpoints.iter().find(|(a, _)| *a == addr))
                        .map(|(_, s)| s.clone())
                        .unwrap_or_default();
                    states.push((addr, state.clone()));
                    let peer = e
                        .peer
                        .get_or_init(|| {
                            let labels = e
                                .labels
                                .iter()
                                .map(|(k, v)| (k.to_string(), v.to_string()))
                                .collect();
                            let mut p = Peer::from_labels(
                                e.workload.as_deref(),
                                e.namespace
                                    .as_deref()
                                    .or(Some(svc.labels.namespace.as_str())),
                                &labels,
                                self.node_cluster.as_deref(),
                            );
                            if let (true, Some(id)) = (mtls_labels, &e.tls.identity) {
                                p.principal = id.to_string();
                            }
                            Arc::new(p)
                        })
                        .clone();
                    Endpoint::new(addr, e.weight, peer, state).with_tls(e.tls.clone())
                })
                .collect();
            let state = carried.map(|c| c.state.clone()).unwrap_or_default();
            self.built
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clusters
                .insert(
                    name.clone(),
                    CarriedCluster {
                        state: state.clone(),
                        endpoints: states,
                    },
                );
            Arc::new(
                Cluster::new(
                    name,
                    svc.labels.clone(),
                    endpoints,
                    policy,
                    state,
                    self.outbound_labels.clone(),
                )
                .with_tls(tls, self.credentials.clone())
                .with_upstream_reporting(self.telemetry_on()),
            )
        };
        PortClusters {
            all: make(None),
            subsets: svc
                .rule
                .as_ref()
                .map(|r| {
                    r.subsets
                        .iter()
                        .map(|sub| (sub.name.as_str().into(), make(Some(sub))))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// What the next snapshot takes over: clusters built here or carried here, of services
    /// the next config still has.
    fn carry_forward(&self, next_hosts: &rustc_hash::FxHashMap<String, usize>) -> Carry {
        let built = self.built.lock().unwrap_or_else(|e| e.into_inner());
        let mut clusters = HashMap::new();
        for (name, c) in self.carried.clusters.iter().chain(built.clusters.iter()) {
            let host = name.rsplit('|').next().unwrap_or("");
            if next_hosts.contains_key(host) {
                clusters.insert(name.clone(), c.clone());
            }
        }
        Carry { clusters }
    }

    /// A one-endpoint cluster for `addr`: the local app (inbound) or an unknown destination
    /// (outbound passthrough). Made on first use and kept for this snapshot.
    pub fn dynamic_cluster(&self, inbound: bool, addr: SocketAddr) -> Arc<Cluster> {
        let mut map = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(c) = map.get(&(inbound, addr)) {
            return c.clone();
        }
        if map.len() > 4096 {
            // Passthrough destinations are unbounded; forget them rather than grow.
            map.clear();
        }
        let (name, service, ctx) = if inbound {
            let svc = self.inbound_service.clone();
            (
                format!("inbound|{}||", addr.port()),
                svc,
                self.inbound_labels.clone(),
            )
        } else {
            let svc = Arc::new(ServiceLabels {
                host: addr.ip().to_string(),
                name: "PassthroughCluster".into(),
                namespace: String::new(),
            });
            (
                "PassthroughCluster".to_owned(),
                svc,
                self.outbound_labels.clone(),
            )
        };
        let policy = ClusterPolicy {
            lb: LbPolicy::RoundRobin,
            protocol: crate::cluster::UpstreamProtocol::ClientProtocol,
            ..ClusterPolicy::default()
        };
        let endpoint = Endpoint::new(addr, 1, Arc::new(Peer::default()), Arc::default());
        let c = Arc::new(
            Cluster::new(
                name.into(),
                service,
                vec![endpoint],
                policy,
                Arc::default(),
                ctx,
            )
            .with_upstream_reporting(self.telemetry_on()),
        );
        map.insert((inbound, addr), c.clone());
        c
    }

    /// Whether access logs or tracing want to know which endpoint answered.
    fn telemetry_on(&self) -> bool {
        self.inbound_chain.telemetry().is_some() || self.outbound_chain.telemetry().is_some()
    }

    /// Every cluster built so far, for the admin page and the idle sweep.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.services
            .iter()
            .flat_map(|s| s.ports.iter())
            .filter_map(|p| p.clusters.get())
            .flat_map(|p| std::iter::once(&p.all).chain(p.subsets.iter().map(|(_, c)| c)))
    }

    pub fn sweep_idle(&self) {
        for c in self.clusters() {
            c.sweep_idle();
        }
        let map = self.dynamic.lock().unwrap_or_else(|e| e.into_inner());
        for c in map.values() {
            c.sweep_idle();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn build(yaml: &str) -> Snapshot {
        let cfg = cfg::ProxyConfig::from_yaml(yaml, "t.yaml").expect("valid");
        Snapshot::build(cfg, 1, Metrics::new(), None, None)
    }

    #[test]
    fn tcp_routes_send_a_vip_elsewhere() {
        let s = build(
            "services:
  - host: routed.t.svc.cluster.local
    addresses: [10.0.0.14]
    ports: [{number: 7000, name: tcp}]
    endpoints: [{address: 10.1.0.1, port: 1}]
  - host: elsewhere.t.svc.cluster.local
    ports: [{number: 7000, name: tcp}]
    endpoints: [{address: 10.1.0.2, port: 2}]
virtualServices:
  - hosts: [routed.t.svc.cluster.local]
    tcp:
      - match: [{port: 7000}]
        route: [{destination: {host: elsewhere.t.svc.cluster.local}}]
",
        );
        let svc = s
            .service_by_vip("10.0.0.14:7000".parse().unwrap())
            .expect("by VIP");
        assert_eq!(svc.tcp_routes.len(), 1);
        let d = &svc.tcp_routes[0].dests[0].0;
        let c = s.cluster_for(d, 7000).expect("cluster");
        assert_eq!(c.endpoints[0].addr.to_string(), "10.1.0.2:2");
    }

    /// Where a request goes: the service of a default route, or the VirtualService's name.
    fn routed(s: &Snapshot, side: Side, port: u16, authority: &str) -> Option<String> {
        let vh = s.virtual_host(&side, port, authority)?;
        Some(match &vh.default {
            Some(d) => format!("service {}", d.dest.host),
            None => format!("vs {}", vh.name),
        })
    }

    const TWO_SERVICES_ONE_ALIAS: &str = "services:
  - host: web.t.svc.cluster.local
    aliases: [web, shared]
    addresses: [10.0.0.1]
    ports: [{number: 80, name: http}, {number: 5432, name: tcp-db}]
    endpoints: [{address: 10.1.0.1}]
  - host: api.t.svc.cluster.local
    aliases: [api, shared]
    ports: [{number: 8080, name: http}]
    endpoints: [{address: 10.1.0.2}]
";

    #[test]
    fn a_service_no_virtual_service_claims_routes_to_itself_on_its_http_ports() {
        let s = build(TWO_SERVICES_ONE_ALIAS);
        let web = Some("service web.t.svc.cluster.local".to_owned());
        for name in [
            "web.t.svc.cluster.local",
            "Web.T.svc.cluster.local:80",
            "web",
            "10.0.0.1",
        ] {
            assert_eq!(routed(&s, Side::Outbound, 80, name), web, "{name}");
        }
        assert_eq!(
            routed(&s, Side::Outbound, 8080, "web"),
            None,
            "not its port"
        );
        assert_eq!(
            routed(&s, Side::Outbound, 5432, "web"),
            None,
            "its TCP port"
        );
        assert_eq!(routed(&s, Side::Outbound, 80, "nobody"), None);
        // A name two services have goes to the one serving the port asked for.
        assert_eq!(routed(&s, Side::Outbound, 80, "shared"), web);
        assert_eq!(
            routed(&s, Side::Outbound, 8080, "shared").as_deref(),
            Some("service api.t.svc.cluster.local")
        );
        // A gateway routes only what its VirtualServices name.
        assert_eq!(routed(&s, Side::Gateway("gw".into()), 80, "web"), None);
    }

    #[test]
    fn a_virtual_service_name_beats_a_default_route_and_a_default_beats_a_wildcard() {
        let s = build(&format!(
            "{TWO_SERVICES_ONE_ALIAS}virtualServices:
  - name: to-api
    namespace: t
    hosts: [web]
    http: [{{route: [{{destination: {{host: api.t.svc.cluster.local}}}}]}}]
  - name: catch-all
    namespace: t
    hosts: ['*.t.svc.cluster.local']
    http: [{{route: [{{destination: {{host: web.t.svc.cluster.local}}}}]}}]
"
        ));
        assert_eq!(
            routed(&s, Side::Outbound, 80, "web").as_deref(),
            Some("vs t/to-api")
        );
        assert_eq!(
            routed(&s, Side::Outbound, 8080, "api.t.svc.cluster.local").as_deref(),
            Some("service api.t.svc.cluster.local")
        );
        assert_eq!(
            routed(&s, Side::Outbound, 80, "other.t.svc.cluster.local").as_deref(),
            Some("vs t/catch-all")
        );
    }

    const WILDCARD_SERVICE: &str = "services:
  - host: '*.wikipedia.org'
    ports: [{number: 80, name: http}, {number: 5432, name: tcp}]
    endpoints: [{address: 10.1.0.1}]
";

    #[test]
    fn a_wildcard_service_routes_to_itself_below_longer_and_above_shorter_wildcards() {
        let s = build(&format!(
            "{WILDCARD_SERVICE}virtualServices:
  - name: short
    namespace: t
    hosts: ['*.org']
    http: [{{route: [{{destination: {{host: '*.wikipedia.org'}}}}]}}]
  - name: long
    namespace: t
    hosts: ['*.de.wikipedia.org']
    http: [{{route: [{{destination: {{host: '*.wikipedia.org'}}}}]}}]
"
        ));
        assert_eq!(
            routed(&s, Side::Outbound, 80, "en.wikipedia.org").as_deref(),
            Some("service *.wikipedia.org")
        );
        assert_eq!(
            routed(&s, Side::Outbound, 80, "a.de.wikipedia.org").as_deref(),
            Some("vs t/long")
        );
        assert_eq!(
            routed(&s, Side::Outbound, 80, "gnu.org").as_deref(),
            Some("vs t/short")
        );
        let alone = build(WILDCARD_SERVICE);
        assert!(routed(&alone, Side::Outbound, 80, "en.wikipedia.org").is_some());
        let tcp = routed(&alone, Side::Outbound, 5432, "en.wikipedia.org");
        assert_eq!(tcp, None, "a TCP port");
    }

    #[test]
    fn services_route_by_their_names_only_on_the_sides_the_config_listens_on() {
        // Only a plain listener: a connection still open from an earlier config with outbound
        // capture gets no default route from this one.
        let s = build(&format!(
            "listeners: [{{name: plain, address: '127.0.0.1:1'}}]\n{TWO_SERVICES_ONE_ALIAS}"
        ));
        assert_eq!(routed(&s, Side::Outbound, 80, "web"), None);
        // A plain listener routes on any port, to the first service with the name.
        let web = Some("service web.t.svc.cluster.local".to_owned());
        assert_eq!(routed(&s, Side::Plain, 9999, "shared"), web);
        assert_eq!(routed(&s, Side::Plain, 80, "web"), web);
        // The sidecar's default listeners have no plain one.
        let sidecar = build(TWO_SERVICES_ONE_ALIAS);
        assert_eq!(routed(&sidecar, Side::Plain, 80, "web"), None);
    }
}
