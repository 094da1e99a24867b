//! A configuration compiled for serving: route tables by port and gateway, clusters by service
//! port and subset, the inbound side. Built once per config; requests only read it.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mesh_proxy_config as cfg;

use crate::cluster::{Cluster, ClusterPolicy, ClusterState, Endpoint, EndpointState, LbPolicy};
use crate::http::chain::Chain;
use crate::metrics::{LabelSet, Metrics, Peer, Reporter, ServiceLabels};
use crate::route::{DestRef, RouteTable, VirtualHost};

/// One port of a service with its clusters.
pub struct PortClusters {
    pub number: u16,
    pub protocol: Option<cfg::Protocol>,
    pub all: Arc<Cluster>,
    pub subsets: Vec<(String, Arc<Cluster>)>,
}

pub struct ServiceEntry {
    pub host: String,
    pub labels: ServiceLabels,
    pub ports: Vec<PortClusters>,
    /// Compiled TCP routes of the VirtualService for this host, if any.
    pub tcp_routes: Vec<TcpRoute>,
}

pub struct TcpRoute {
    pub port: Option<u16>,
    pub subnets: Vec<(IpAddr, u8)>,
    pub dests: Vec<(DestRef, u32)>,
}

/// State kept across snapshots, so clusters keep their connections and counters.
#[derive(Default)]
pub struct Carry {
    clusters: HashMap<String, Arc<ClusterState>>,
    endpoints: HashMap<(String, SocketAddr), Arc<EndpointState>>,
}

pub struct Snapshot {
    /// Counts the snapshots this process loaded.
    pub generation: u64,
    pub config: Arc<cfg::ProxyConfig>,
    pub source: Peer,
    pub services: Vec<ServiceEntry>,
    by_host: HashMap<String, usize>,
    by_vip: HashMap<(IpAddr, u16), usize>,
    /// Outbound HTTP routing by destination port.
    pub http_by_port: HashMap<u16, RouteTable>,
    /// Plain listeners without a gateway: mesh routes of every port.
    pub http_any_port: RouteTable,
    pub http_by_gateway: HashMap<String, RouteTable>,
    pub inbound_ports: HashMap<u16, Option<cfg::Protocol>>,
    pub inbound_service: ServiceLabels,
    pub outbound_mode: cfg::OutboundMode,
    pub limits: cfg::Limits,
    pub detection_timeout: Duration,
    pub drain_timeout: Duration,
    /// Clusters made on demand: inbound (by local port) and passthrough (by address).
    dynamic: Mutex<HashMap<(bool, SocketAddr), Arc<Cluster>>>,
    pub metrics: Arc<Metrics>,
    /// Labels of requests nothing matched (`BlackHoleCluster`, no route).
    pub unknown_labels_outbound: Arc<LabelSet>,
    pub unknown_labels_inbound: Arc<LabelSet>,
    /// Request filters of each side (authorization, rate limits, access logs plug in here).
    pub inbound_chain: Chain,
    pub outbound_chain: Chain,
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

fn subset_of(labels: &std::collections::BTreeMap<String, String>, e: &cfg::Endpoint) -> bool {
    labels.iter().all(|(k, v)| e.labels.get(k) == Some(v))
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
    pub fn build(
        config: Arc<cfg::ProxyConfig>,
        generation: u64,
        metrics: Arc<Metrics>,
        carry: &mut Carry,
    ) -> Snapshot {
        let node = &config.node;
        let source = Peer::from_labels(
            node.workload.as_deref(),
            node.namespace.as_deref(),
            &node.labels,
            node.cluster.as_deref(),
        );
        let mut next = Carry::default();
        let rules: HashMap<&str, &cfg::DestinationRule> = config
            .destination_rules
            .iter()
            .map(|r| (r.host.as_str(), r))
            .collect();

        let mut services = Vec::with_capacity(config.services.len());
        let mut by_host = HashMap::new();
        let mut by_vip = HashMap::new();
        for (idx, s) in config.services.iter().enumerate() {
            let labels = service_labels(s);
            let rule = rules.get(s.host.as_str()).copied();
            let mut ports = Vec::with_capacity(s.ports.len());
            for p in &s.ports {
                let protocol = p.protocol();
                let mut make = |subset: Option<&cfg::Subset>| {
                    let name = format!(
                        "outbound|{}|{}|{}",
                        p.number,
                        subset.map_or("", |s| s.name.as_str()),
                        s.host
                    );
                    let policy = ClusterPolicy::resolve(
                        rule.and_then(|r| r.traffic_policy.as_ref()),
                        subset.and_then(|s| s.traffic_policy.as_ref()),
                        p.number,
                        protocol,
                    );
                    let endpoints = s
                        .endpoints
                        .iter()
                        .filter(|e| subset.is_none_or(|sub| subset_of(&sub.labels, e)))
                        .filter_map(|e| {
                            let addr = SocketAddr::new(e.address?, e.port_for(p));
                            let peer = Peer::from_labels(
                                e.workload.as_deref(),
                                e.namespace.as_deref().or(Some(labels.namespace.as_str())),
                                &e.labels,
                                node.cluster.as_deref(),
                            );
                            let state = carry
                                .endpoints
                                .get(&(name.clone(), addr))
                                .cloned()
                                .unwrap_or_default();
                            next.endpoints.insert((name.clone(), addr), state.clone());
                            Some(Endpoint {
                                addr,
                                weight: e.weight.unwrap_or(1),
                                labels: metrics.label_set(
                                    Reporter::Source,
                                    &source,
                                    &peer,
                                    &labels,
                                ),
                                state,
                            })
                        })
                        .collect();
                    let state = carry.clusters.get(&name).cloned().unwrap_or_default();
                    next.clusters.insert(name.clone(), state.clone());
                    let cluster_labels =
                        metrics.label_set(Reporter::Source, &source, &Peer::default(), &labels);
                    Arc::new(Cluster::new(
                        name,
                        labels.clone(),
                        endpoints,
                        policy,
                        state,
                        cluster_labels,
                    ))
                };
                let all = make(None);
                let subsets = rule
                    .map(|r| {
                        r.subsets
                            .iter()
                            .map(|sub| (sub.name.clone(), make(Some(sub))))
                            .collect()
                    })
                    .unwrap_or_default();
                ports.push(PortClusters {
                    number: p.number,
                    protocol,
                    all,
                    subsets,
                });
            }
            by_host.entry(s.host.clone()).or_insert(idx);
            for a in &s.addresses {
                for p in &s.ports {
                    by_vip.entry((*a, p.number)).or_insert(idx);
                }
            }
            services.push(ServiceEntry {
                host: s.host.clone(),
                labels,
                ports,
                tcp_routes: Vec::new(),
            });
        }

        // Virtual hosts of the VirtualServices, keyed by the hosts they name.
        let mut http_by_port: HashMap<u16, RouteTable> = HashMap::new();
        let mut http_any_port = RouteTable::default();
        let mut http_by_gateway: HashMap<String, RouteTable> = HashMap::new();
        let names_of = |host: &str| -> Vec<String> {
            let mut v = vec![host.to_owned()];
            if let Some(&i) = by_host.get(host) {
                let s = &config.services[i];
                v.extend(s.aliases.iter().cloned());
                v.extend(s.addresses.iter().map(|a| a.to_string()));
            }
            v
        };
        for vs in &config.virtual_services {
            let mesh = vs.gateways.is_empty() || vs.gateways.iter().any(|g| g == "mesh");
            if !vs.http.is_empty() {
                let vh = Arc::new(VirtualHost::compile(vs, node));
                for h in &vs.hosts {
                    for name in names_of(h) {
                        if mesh {
                            http_any_port.insert(&name, &vh);
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
        // Services no VirtualService claims get a default route, per port.
        for (i, s) in config.services.iter().enumerate() {
            let dest = DestRef {
                host: s.host.clone(),
                subset: None,
                port: None,
            };
            let vh = Arc::new(VirtualHost::default_for(s.host.clone(), dest));
            let names = {
                let mut v = vec![s.host.clone()];
                v.extend(s.aliases.iter().cloned());
                v.extend(s.addresses.iter().map(|a| a.to_string()));
                v
            };
            for p in &s.ports {
                if p.protocol() == Some(cfg::Protocol::Tcp) {
                    continue;
                }
                let table = http_by_port.entry(p.number).or_default();
                for n in &names {
                    if !table.contains(n) {
                        table.insert(n, &vh);
                    }
                }
            }
            for n in &names {
                if !http_any_port.contains(n) {
                    http_any_port.insert(n, &vh);
                }
            }
            let _ = i;
        }

        let inbound_service = config
            .inbound
            .service
            .as_deref()
            .and_then(|h| by_host.get(h).map(|&i| services[i].labels.clone()))
            .or_else(|| {
                config.inbound.service.as_ref().map(|h| ServiceLabels {
                    host: h.clone(),
                    name: h.split('.').next().unwrap_or_default().to_owned(),
                    namespace: node.namespace.clone().unwrap_or_default(),
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
        *carry = next;
        Snapshot {
            generation,
            source,
            services,
            by_host,
            by_vip,
            http_by_port,
            http_any_port,
            http_by_gateway,
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
            metrics,
            unknown_labels_outbound,
            unknown_labels_inbound,
            inbound_chain: Chain::default(),
            outbound_chain: Chain::default(),
            config,
        }
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
        let pc = match dest.port {
            Some(p) => svc.ports.iter().find(|pc| pc.number == p)?,
            None if svc.ports.len() == 1 => &svc.ports[0],
            None => svc.ports.iter().find(|pc| pc.number == port).or_else(|| {
                svc.ports
                    .iter()
                    .find(|pc| pc.protocol.is_none_or(|p| p.is_http()))
            })?,
        };
        match &dest.subset {
            None => Some(&pc.all),
            Some(name) => pc.subsets.iter().find(|(n, _)| n == name).map(|(_, c)| c),
        }
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
        let (name, labels, service) = if inbound {
            let svc = self.inbound_service.clone();
            let l =
                self.metrics
                    .label_set(Reporter::Destination, &Peer::default(), &self.source, &svc);
            (format!("inbound|{}||", addr.port()), l, svc)
        } else {
            let svc = ServiceLabels {
                host: addr.ip().to_string(),
                name: "PassthroughCluster".into(),
                namespace: String::new(),
            };
            let l = self
                .metrics
                .label_set(Reporter::Source, &self.source, &Peer::default(), &svc);
            ("PassthroughCluster".to_owned(), l, svc)
        };
        let policy = ClusterPolicy {
            lb: LbPolicy::RoundRobin,
            protocol: crate::cluster::UpstreamProtocol::ClientProtocol,
            ..ClusterPolicy::default()
        };
        let endpoint = Endpoint {
            addr,
            weight: 1,
            labels: labels.clone(),
            state: Arc::default(),
        };
        let c = Arc::new(Cluster::new(
            name,
            service,
            vec![endpoint],
            policy,
            Arc::default(),
            labels,
        ));
        map.insert((inbound, addr), c.clone());
        c
    }

    /// Every cluster, for the admin page and the idle sweep.
    pub fn clusters(&self) -> impl Iterator<Item = &Arc<Cluster>> {
        self.services
            .iter()
            .flat_map(|s| s.ports.iter())
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
