//! The analyzers: one module per subject, each a pure function over the [`Context`].
//! Names follow `istioctl analyze`'s where the check is the same, for `--analyzer`.

mod annotations;
mod application_uid;
mod authorization;
mod deployment_services;
mod deprecation;
mod destination_rules;
mod gateways;
mod injection;
mod mtls;
mod port_names;
mod schema;
mod service_entries;
mod sidecars;
mod virtual_service_hosts;
mod virtual_service_rules;
mod workload_selectors;

use crate::codes::*;
use crate::context::Context;
use crate::message::MessageType;
use crate::report::Report;

/// One analyzer: what it checks and the message types it can report.
pub struct Analyzer {
    pub name: &'static str,
    pub description: &'static str,
    pub codes: &'static [&'static MessageType],
    pub run: fn(&Context, &mut Report),
}

/// Every analyzer, by name.
pub static ALL: &[Analyzer] = &[
    Analyzer {
        name: "annotations.K8sAnalyzer",
        description: "Checks *.istio.io annotations: unknown, on the wrong kind, deprecated, or with invalid values",
        codes: &[&MISPLACED_ANNOTATION, &UNKNOWN_ANNOTATION, &DEPRECATED_ANNOTATION, &INVALID_ANNOTATION],
        run: annotations::run,
    },
    Analyzer {
        name: "authz.AuthorizationPoliciesAnalyzer",
        description: "Checks that AuthorizationPolicies select workloads and name namespaces and service accounts that exist",
        codes: &[&NO_MATCHING_WORKLOADS_FOUND, &REFERENCED_RESOURCE_NOT_FOUND],
        run: authorization::run,
    },
    Analyzer {
        name: "deployment.MultiServiceAnalyzer",
        description: "Checks that Services selecting the same pods agree on each port's protocol and port",
        codes: &[&DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES, &DEPLOYMENT_CONFLICTING_PORTS],
        run: deployment_services::run,
    },
    Analyzer {
        name: "deployment.ApplicationUIDAnalyzer",
        description: "Checks that application containers do not run as UID 1337, the proxy's",
        codes: &[&INVALID_APPLICATION_UID],
        run: application_uid::run,
    },
    Analyzer {
        name: "deprecation.FieldAnalyzer",
        description: "Checks for deprecated fields of the Istio API",
        codes: &[&DEPRECATED],
        run: deprecation::run,
    },
    Analyzer {
        name: "destinationrule.CaCertificateAnalyzer",
        description: "Checks that DestinationRules originating TLS verify the server certificate",
        codes: &[&NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL, &NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL],
        run: destination_rules::ca_certificates,
    },
    Analyzer {
        name: "destinationrule.SubsetPodsAnalyzer",
        description: "Checks that each DestinationRule subset selects some of the service's pods",
        codes: &[&DESTINATION_RULE_SUBSET_SELECTS_NO_PODS],
        run: destination_rules::subset_pods,
    },
    Analyzer {
        name: "gateway.ConflictingGatewayAnalyzer",
        description: "Checks that Gateways with the same selector and port do not serve the same host",
        codes: &[&CONFLICTING_GATEWAYS],
        run: gateways::conflicts,
    },
    Analyzer {
        name: "gateway.IngressGatewayPortAnalyzer",
        description: "Checks that a Gateway's selector matches gateway workloads whose Service exposes the Gateway's ports",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND, &GATEWAY_PORT_NOT_DEFINED_ON_SERVICE],
        run: gateways::selectors_and_ports,
    },
    Analyzer {
        name: "gateway.SecretAnalyzer",
        description: "Checks that the Secrets Gateways name for TLS exist beside the gateway workload and hold a certificate",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND, &INVALID_GATEWAY_CREDENTIAL],
        run: gateways::secrets,
    },
    Analyzer {
        name: "injection.Analyzer",
        description: "Checks namespace injection labels and that pods meant to have the proxy have it",
        codes: &[&NAMESPACE_NOT_INJECTED, &POD_MISSING_PROXY, &NAMESPACE_MULTIPLE_INJECTION_LABELS, &CONFLICTING_POD_INJECTION_SWITCHES],
        run: injection::run,
    },
    Analyzer {
        name: "peerauthentication.MtlsConflictAnalyzer",
        description: "Checks that no DestinationRule disables TLS to a service whose PeerAuthentication is STRICT",
        codes: &[&MTLS_POLICY_CONFLICT],
        run: mtls::run,
    },
    Analyzer {
        name: "schema.ValidationAnalyzer",
        description: "Validates every Istio API object against the schema of its CRD",
        codes: &[&SCHEMA_VALIDATION_ERROR],
        run: schema::run,
    },
    Analyzer {
        name: "service.PortNameAnalyzer",
        description: "Checks that Service ports name their protocol (name prefix or appProtocol)",
        codes: &[&PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION, &EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME],
        run: port_names::run,
    },
    Analyzer {
        name: "serviceentry.ConflictingProtocolsAnalyzer",
        description: "Checks that ServiceEntries give each host and port one protocol",
        codes: &[&SERVICE_ENTRY_CONFLICTING_PROTOCOLS],
        run: service_entries::conflicting_protocols,
    },
    Analyzer {
        name: "serviceentry.ProtocolAddressesAnalyzer",
        description: "Checks that ServiceEntries with TCP ports have addresses",
        codes: &[&SERVICE_ENTRY_ADDRESSES_REQUIRED],
        run: service_entries::addresses,
    },
    Analyzer {
        name: "sidecar.DefaultSelectorAnalyzer",
        description: "Checks that at most one Sidecar of a namespace has no workload selector",
        codes: &[&MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS],
        run: sidecars::default_selectors,
    },
    Analyzer {
        name: "sidecar.SelectorAnalyzer",
        description: "Checks that Sidecar workload selectors match workloads, and no workload is selected by two Sidecars",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND, &CONFLICTING_SIDECAR_WORKLOAD_SELECTORS],
        run: sidecars::selectors,
    },
    Analyzer {
        name: "virtualservice.ConflictingMeshGatewayHostsAnalyzer",
        description: "Checks that no two VirtualServices bound to the mesh gateway define the same host",
        codes: &[&CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS],
        run: virtual_service_hosts::conflicting_mesh_hosts,
    },
    Analyzer {
        name: "virtualservice.DestinationHostAnalyzer",
        description: "Checks that VirtualService destinations (and mirrors) name existing services and ports",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND, &VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED],
        run: virtual_service_hosts::destinations,
    },
    Analyzer {
        name: "virtualservice.DestinationRuleAnalyzer",
        description: "Checks that the subsets VirtualServices route to are defined by a DestinationRule",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND],
        run: virtual_service_hosts::subsets,
    },
    Analyzer {
        name: "virtualservice.GatewayAnalyzer",
        description: "Checks that the Gateways VirtualServices bind to exist and serve their hosts",
        codes: &[&REFERENCED_RESOURCE_NOT_FOUND, &VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY],
        run: virtual_service_hosts::gateways,
    },
    Analyzer {
        name: "virtualservice.JWTClaimRouteAnalyzer",
        description: "Checks that routing on JWT claims happens on gateways a RequestAuthentication applies to",
        codes: &[&JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN],
        run: virtual_service_rules::jwt_claims,
    },
    Analyzer {
        name: "virtualservice.RegexAnalyzer",
        description: "Checks that the regular expressions of VirtualService matches compile",
        codes: &[&INVALID_REGEXP],
        run: virtual_service_rules::regexes,
    },
    Analyzer {
        name: "virtualservice.UnreachableRulesAnalyzer",
        description: "Checks for VirtualService rules that can never match and matches that repeat earlier ones",
        codes: &[&VIRTUAL_SERVICE_UNREACHABLE_RULE, &VIRTUAL_SERVICE_INEFFECTIVE_MATCH],
        run: virtual_service_rules::unreachable,
    },
    Analyzer {
        name: "workloadselector.PolicySelectorAnalyzer",
        description: "Checks that PeerAuthentication, RequestAuthentication and DestinationRule workload selectors match workloads",
        codes: &[&NO_MATCHING_WORKLOADS_FOUND],
        run: workload_selectors::run,
    },
];

/// The analyzer of this name.
pub fn by_name(name: &str) -> Option<&'static Analyzer> {
    ALL.iter().find(|a| a.name == name)
}
