//! Everything analyzers look things up in, indexed once (by kind, name, host, namespace and
//! label) so that each analyzer is one pass over the resources it checks: no analyzer compares
//! every resource with every other.

use std::collections::{HashMap, HashSet};

use mesh_crds::istio::{
    AuthorizationPolicySpec, DestinationRuleSpec, GatewaySpec, PeerAuthenticationSpec,
    RequestAuthenticationSpec, ServiceEntrySpec, SidecarSpec, VirtualServiceSpec,
};
use serde_json::Value;

use crate::hosts;
use crate::injection::{self, NamespaceInjection};
use crate::labels::{self, LabelIndex, Selector};
use crate::mesh::MeshSettings;
use crate::object::{Object, Origin};
use crate::spec::IstioSpec;
use crate::workloads::{workload_of, Workload};

/// An Istio object with its spec read into its Rust type.
pub struct Typed<'a, T> {
    pub obj: usize,
    pub spec: &'a T,
}

/// A Kubernetes Service port.
pub struct ServicePort<'a> {
    pub index: usize,
    pub port: u64,
    pub name: &'a str,
    /// `TCP` when unset.
    pub protocol: &'a str,
    pub app_protocol: Option<&'a str>,
    /// The target port as written (number or name), None when unset (then it is `port`).
    pub target_port: Option<&'a Value>,
}

/// A Kubernetes Service.
pub struct Service<'a> {
    pub obj: usize,
    pub namespace: &'a str,
    pub name: &'a str,
    pub selector: Selector<'a>,
    pub ports: Vec<ServicePort<'a>>,
    pub type_: &'a str,
    /// From the `networking.istio.io/exportTo` annotation.
    pub export_to: Vec<String>,
}

/// What a destination host names.
pub enum Destination<'a, 'c> {
    Service(&'c Service<'a>),
    ServiceEntry(&'c Typed<'a, ServiceEntrySpec>),
}

impl Destination<'_, '_> {
    /// The port numbers of the destination.
    pub fn ports(&self) -> Vec<u64> {
        match self {
            Destination::Service(s) => s.ports.iter().map(|p| p.port).collect(),
            Destination::ServiceEntry(se) => se
                .spec
                .ports
                .iter()
                .flatten()
                .map(|p| u64::from(p.number))
                .collect(),
        }
    }
}

/// The indexed configuration.
pub struct Context<'a> {
    pub objects: &'a [Object],
    pub mesh: &'a MeshSettings,
    /// Whether the objects are everything the cluster holds (read from it), so that an absent
    /// object is really absent. Without the cluster, a reference into a kind the files hold
    /// none of is not checked: the files are most likely only part of the configuration.
    pub from_cluster: bool,
    /// Kinds the cluster did not let us list in full (forbidden): checked like files' kinds.
    incomplete: &'a [String],
    kinds_present: HashSet<&'a str>,
    pub by_kind: HashMap<&'a str, Vec<usize>>,
    /// Namespace objects by name.
    pub namespace_objects: HashMap<&'a str, usize>,
    /// Every namespace that exists or that some object is in.
    pub namespaces: HashSet<&'a str>,
    pub service_accounts: HashSet<(&'a str, &'a str)>,
    pub secrets: HashMap<(&'a str, &'a str), usize>,
    pub services: Vec<Service<'a>>,
    services_by_name: HashMap<(&'a str, &'a str), usize>,
    pub workloads: Vec<Workload<'a>>,
    labels: LabelIndex<'a>,
    pub virtual_services: Vec<Typed<'a, VirtualServiceSpec>>,
    pub destination_rules: Vec<Typed<'a, DestinationRuleSpec>>,
    pub gateways: Vec<Typed<'a, GatewaySpec>>,
    gateways_by_name: HashMap<(&'a str, &'a str), usize>,
    pub service_entries: Vec<Typed<'a, ServiceEntrySpec>>,
    service_entry_hosts: HashMap<String, Vec<usize>>,
    service_entry_wildcards: Vec<(String, usize)>,
    pub sidecars: Vec<Typed<'a, SidecarSpec>>,
    pub peer_authentications: Vec<Typed<'a, PeerAuthenticationSpec>>,
    pub authorization_policies: Vec<Typed<'a, AuthorizationPolicySpec>>,
    pub request_authentications: Vec<Typed<'a, RequestAuthenticationSpec>>,
    /// DestinationRules by the FQDN of their host (wildcard hosts under their text).
    destination_rules_by_host: HashMap<String, Vec<usize>>,
    /// Workload index -> the Services selecting it, computed on first use.
    services_of_workload: std::cell::OnceCell<HashMap<usize, Vec<usize>>>,
}

impl<'a> Context<'a> {
    pub fn build(
        objects: &'a [Object],
        mesh: &'a MeshSettings,
        from_cluster: bool,
        incomplete: &'a [String],
    ) -> Context<'a> {
        let mut cx = Context {
            objects,
            mesh,
            from_cluster,
            incomplete,
            kinds_present: HashSet::new(),
            by_kind: HashMap::new(),
            namespace_objects: HashMap::new(),
            namespaces: HashSet::new(),
            service_accounts: HashSet::new(),
            secrets: HashMap::new(),
            services: Vec::new(),
            services_by_name: HashMap::new(),
            workloads: Vec::new(),
            labels: LabelIndex::default(),
            virtual_services: Vec::new(),
            destination_rules: Vec::new(),
            gateways: Vec::new(),
            gateways_by_name: HashMap::new(),
            service_entries: Vec::new(),
            service_entry_hosts: HashMap::new(),
            service_entry_wildcards: Vec::new(),
            sidecars: Vec::new(),
            peer_authentications: Vec::new(),
            authorization_policies: Vec::new(),
            request_authentications: Vec::new(),
            destination_rules_by_host: HashMap::new(),
            services_of_workload: std::cell::OnceCell::new(),
        };
        for (i, o) in objects.iter().enumerate() {
            cx.kinds_present.insert(o.kind.as_str());
            cx.by_kind.entry(o.kind.as_str()).or_default().push(i);
            if !o.namespace.is_empty() {
                cx.namespaces.insert(o.namespace.as_str());
            }
            match (o.group.as_str(), o.kind.as_str()) {
                ("", "Namespace") => {
                    cx.namespace_objects.insert(o.name.as_str(), i);
                    cx.namespaces.insert(o.name.as_str());
                }
                ("", "ServiceAccount") => {
                    cx.service_accounts
                        .insert((o.namespace.as_str(), o.name.as_str()));
                }
                ("", "Secret") => {
                    cx.secrets
                        .insert((o.namespace.as_str(), o.name.as_str()), i);
                }
                ("", "Service") => cx.add_service(i, o),
                _ if o.istio.is_some() => cx.add_istio(i, o),
                _ => {
                    if let Some(w) = workload_of(i, o) {
                        let id = cx.workloads.len() as u32;
                        cx.labels.insert(id, w.namespace, w.labels);
                        cx.service_accounts
                            .insert((w.namespace, w.service_account()));
                        cx.workloads.push(w);
                    }
                }
            }
        }
        // Every namespace has its `default` ServiceAccount.
        let namespaces: Vec<&'a str> = cx.namespaces.iter().copied().collect();
        for ns in namespaces {
            cx.service_accounts.insert((ns, "default"));
        }
        cx
    }

    fn add_istio(&mut self, obj: usize, o: &'a Object) {
        match &o.istio {
            Some(IstioSpec::VirtualService(spec)) => {
                self.virtual_services.push(Typed { obj, spec })
            }
            Some(IstioSpec::DestinationRule(spec)) => {
                let host = hosts::fqdn(&spec.host, &o.namespace);
                self.destination_rules_by_host
                    .entry(host)
                    .or_default()
                    .push(self.destination_rules.len());
                self.destination_rules.push(Typed { obj, spec });
            }
            Some(IstioSpec::Gateway(spec)) => {
                self.gateways_by_name
                    .insert((o.namespace.as_str(), o.name.as_str()), self.gateways.len());
                self.gateways.push(Typed { obj, spec });
            }
            Some(IstioSpec::ServiceEntry(spec)) => {
                let id = self.service_entries.len();
                for host in &spec.hosts {
                    if let Some(suffix) = host.strip_prefix('*') {
                        self.service_entry_wildcards.push((suffix.to_owned(), id));
                    } else {
                        self.service_entry_hosts
                            .entry(host.to_ascii_lowercase())
                            .or_default()
                            .push(id);
                    }
                }
                self.service_entries.push(Typed { obj, spec });
            }
            Some(IstioSpec::Sidecar(spec)) => self.sidecars.push(Typed { obj, spec }),
            Some(IstioSpec::PeerAuthentication(spec)) => {
                self.peer_authentications.push(Typed { obj, spec })
            }
            Some(IstioSpec::AuthorizationPolicy(spec)) => {
                self.authorization_policies.push(Typed { obj, spec })
            }
            Some(IstioSpec::RequestAuthentication(spec)) => {
                self.request_authentications.push(Typed { obj, spec })
            }
            Some(IstioSpec::WorkloadEntry(_)) | None => {}
        }
    }

    fn add_service(&mut self, i: usize, o: &'a Object) {
        let spec = &o.value["spec"];
        let ports = spec["ports"]
            .as_array()
            .map(|ports| {
                ports
                    .iter()
                    .enumerate()
                    .map(|(index, p)| ServicePort {
                        index,
                        port: p["port"].as_u64().unwrap_or(0),
                        name: p["name"].as_str().unwrap_or(""),
                        protocol: p["protocol"].as_str().unwrap_or("TCP"),
                        app_protocol: p["appProtocol"].as_str(),
                        target_port: p.get("targetPort").filter(|v| !v.is_null()),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let export_to = o
            .annotations()
            .get("networking.istio.io/exportTo")
            .and_then(Value::as_str)
            .map(|s| {
                s.split(',')
                    .map(|e| e.trim().to_owned())
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        self.services_by_name
            .insert((o.namespace.as_str(), o.name.as_str()), self.services.len());
        self.services.push(Service {
            obj: i,
            namespace: &o.namespace,
            name: &o.name,
            selector: spec["selector"]
                .as_object()
                .map(labels::selector_of_map)
                .unwrap_or_default(),
            ports,
            type_: spec["type"].as_str().unwrap_or("ClusterIP"),
            export_to,
        });
    }

    /// Whether references into `kind` can be checked: the cluster was read, or the input holds
    /// objects of that kind (see [`Context::from_cluster`]).
    pub fn knows(&self, kind: &str) -> bool {
        (self.from_cluster && !self.incomplete.iter().any(|k| k == kind))
            || self.kinds_present.contains(kind)
    }

    /// Whether workloads can be checked: the cluster was read or the input has some.
    pub fn knows_workloads(&self) -> bool {
        let complete = crate::object::KNOWN_KINDS
            .iter()
            .filter(|(_, k)| crate::workloads::template_path(k).is_some())
            .all(|(_, k)| !self.incomplete.iter().any(|i| i == k));
        (self.from_cluster && complete) || !self.workloads.is_empty()
    }

    pub fn object(&self, i: usize) -> &'a Object {
        &self.objects[i]
    }

    /// `namespace/name` of object `i`, as messages name other resources.
    pub fn name_of(&self, i: usize) -> String {
        let o = &self.objects[i];
        format!("{}/{}", o.namespace, o.name)
    }

    pub fn namespace_exists(&self, namespace: &str) -> bool {
        self.namespaces.contains(namespace)
    }

    pub fn service(&self, namespace: &str, name: &str) -> Option<&Service<'a>> {
        self.services_by_name
            .get(&(namespace, name))
            .map(|&i| &self.services[i])
    }

    pub fn gateway(&self, namespace: &str, name: &str) -> Option<&Typed<'a, GatewaySpec>> {
        self.gateways_by_name
            .get(&(namespace, name))
            .map(|&i| &self.gateways[i])
    }

    /// The workloads a selector selects, in `namespace` or (None) in every namespace.
    pub fn select(&self, selector: &Selector, namespace: Option<&str>) -> Vec<&Workload<'a>> {
        self.select_ids(selector, namespace)
            .into_iter()
            .map(|id| &self.workloads[id])
            .collect()
    }

    /// The indices (into [`Context::workloads`]) of the workloads a selector selects.
    pub fn select_ids(&self, selector: &Selector, namespace: Option<&str>) -> Vec<usize> {
        self.labels
            .candidates(selector, namespace)
            .iter()
            .map(|&id| id as usize)
            .filter(|&id| {
                let w = &self.workloads[id];
                namespace.is_none_or(|ns| w.namespace == ns) && labels::matches(selector, w.labels)
            })
            .collect()
    }

    /// The Services (indices into [`Context::services`]) that select workload `id`. Built once,
    /// from the Services' side through the label index.
    pub fn services_of(&self, id: usize) -> &[usize] {
        let map = self.services_of_workload.get_or_init(|| {
            let mut map: HashMap<usize, Vec<usize>> = HashMap::new();
            for (s, svc) in self.services.iter().enumerate() {
                if svc.selector.is_empty() {
                    continue;
                }
                for w in self.select_ids(&svc.selector, Some(svc.namespace)) {
                    map.entry(w).or_default().push(s);
                }
            }
            map
        });
        map.get(&id).map_or(&[], Vec::as_slice)
    }

    /// The injection labels of a namespace (unlabelled when its Namespace object is unknown).
    pub fn namespace_injection(&self, namespace: &str) -> NamespaceInjection {
        self.namespace_objects
            .get(namespace)
            .map(|&i| injection::namespace_injection(self.objects[i].labels()))
            .unwrap_or(NamespaceInjection::Unlabelled)
    }

    /// Whether a workload is part of the mesh (gets the proxy), as far as can be told: when its
    /// Namespace object is not in the input, a workload is assumed in the mesh unless it opts
    /// out.
    pub fn in_mesh(&self, w: &Workload) -> bool {
        let state = if self.namespace_objects.contains_key(w.namespace) {
            self.namespace_injection(w.namespace)
        } else {
            NamespaceInjection::Enabled
        };
        injection::pod_is_injected(w.meta, w.spec, w.namespace, &state)
    }

    /// The workloads a policy's selector applies to: in its namespace, or in every namespace
    /// for a policy of the root namespace.
    pub fn select_for_policy(
        &self,
        selector: &Selector,
        policy_namespace: &str,
    ) -> Vec<&Workload<'a>> {
        if policy_namespace == self.mesh.root_namespace {
            self.select(selector, None)
        } else {
            self.select(selector, Some(policy_namespace))
        }
    }

    /// The Service or ServiceEntry a destination host (as written in `namespace`) names, as
    /// visible from that namespace.
    pub fn destination<'c>(&'c self, host: &str, namespace: &str) -> Option<Destination<'a, 'c>> {
        let fqdn = hosts::fqdn(host, namespace).to_ascii_lowercase();
        let visible_entry = |id: &usize| {
            let se = &self.service_entries[*id];
            let owner = &self.objects[se.obj].namespace;
            hosts::visible(
                se.spec.export_to.as_deref().unwrap_or(&[]),
                owner,
                namespace,
            )
        };
        if let Some(id) = self
            .service_entry_hosts
            .get(&fqdn)
            .and_then(|ids| ids.iter().find(|id| visible_entry(id)))
        {
            return Some(Destination::ServiceEntry(&self.service_entries[*id]));
        }
        if let Some((name, ns)) = hosts::service_of(&fqdn) {
            if let Some(svc) = self.service(ns, name) {
                if hosts::visible(&svc.export_to, svc.namespace, namespace) {
                    return Some(Destination::Service(svc));
                }
            }
        }
        self.service_entry_wildcards
            .iter()
            .find(|(suffix, id)| fqdn.ends_with(suffix.as_str()) && visible_entry(id))
            .map(|(_, id)| Destination::ServiceEntry(&self.service_entries[*id]))
    }

    /// The DestinationRules that apply to a host (FQDN) for clients in `namespace`: Istio uses
    /// the client namespace's rule, then the host's namespace's, then any exported one.
    pub fn destination_rules_for(
        &self,
        fqdn: &str,
        namespace: &str,
    ) -> Vec<&Typed<'a, DestinationRuleSpec>> {
        self.destination_rules_by_host
            .get(fqdn)
            .into_iter()
            .flatten()
            .map(|&i| &self.destination_rules[i])
            .filter(|dr| {
                let owner = &self.objects[dr.obj].namespace;
                hosts::visible(
                    dr.spec.export_to.as_deref().unwrap_or(&[]),
                    owner,
                    namespace,
                )
            })
            .collect()
    }

    /// Whether an object came from a file, for analyzers whose finding only makes sense for
    /// one of the two sources.
    pub fn is_from_cluster(&self, i: usize) -> bool {
        matches!(self.objects[i].origin, Origin::Cluster)
    }
}
