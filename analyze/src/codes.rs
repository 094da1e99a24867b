//! Every message type meshctl analyze reports. docs/analyze.md describes each with what to do;
//! a test keeps the two in step.

use crate::message::{Level, MessageType};

macro_rules! message_types {
    ($($id:ident = $code:literal $name:literal $level:ident $description:literal;)*) => {
        $(pub static $id: MessageType = MessageType {
            code: $code,
            name: $name,
            level: Level::$level,
            description: $description,
        };)*
        /// All message types, by code.
        pub static ALL: &[&MessageType] = &[$(&$id),*];
    };
}

message_types! {
    DEPRECATED = "IST0002" "Deprecated" Warning
        "A field the configuration uses is deprecated.";
    REFERENCED_RESOURCE_NOT_FOUND = "IST0101" "ReferencedResourceNotFound" Error
        "A resource being referenced does not exist.";
    NAMESPACE_NOT_INJECTED = "IST0102" "NamespaceNotInjected" Info
        "A namespace is not enabled for sidecar injection.";
    POD_MISSING_PROXY = "IST0103" "PodMissingProxy" Warning
        "A pod that should have the sidecar proxy does not.";
    SCHEMA_VALIDATION_ERROR = "IST0106" "SchemaValidationError" Error
        "The resource does not match the schema of its kind.";
    MISPLACED_ANNOTATION = "IST0107" "MisplacedAnnotation" Warning
        "An Istio annotation is applied to the wrong kind of resource.";
    UNKNOWN_ANNOTATION = "IST0108" "UnknownAnnotation" Warning
        "An annotation in an Istio domain is not one Istio or meshctl defines.";
    CONFLICTING_MESH_GATEWAY_VIRTUAL_SERVICE_HOSTS = "IST0109" "ConflictingMeshGatewayVirtualServiceHosts" Error
        "Several VirtualServices bound to the mesh gateway define the same host.";
    CONFLICTING_SIDECAR_WORKLOAD_SELECTORS = "IST0110" "ConflictingSidecarWorkloadSelectors" Error
        "Several Sidecar resources select the same workload.";
    MULTIPLE_SIDECARS_WITHOUT_WORKLOAD_SELECTORS = "IST0111" "MultipleSidecarsWithoutWorkloadSelectors" Error
        "More than one Sidecar resource of a namespace has no workload selector.";
    VIRTUAL_SERVICE_DESTINATION_PORT_SELECTOR_REQUIRED = "IST0112" "VirtualServiceDestinationPortSelectorRequired" Error
        "A VirtualService routes to a service with several ports without saying which.";
    MTLS_POLICY_CONFLICT = "IST0113" "MTLSPolicyConflict" Error
        "A DestinationRule and a PeerAuthentication disagree on mutual TLS.";
    DEPLOYMENT_ASSOCIATED_TO_MULTIPLE_SERVICES = "IST0116" "DeploymentAssociatedToMultipleServices" Warning
        "Services selecting the same pods use one port with different protocols.";
    PORT_NAME_IS_NOT_UNDER_NAMING_CONVENTION = "IST0118" "PortNameIsNotUnderNamingConvention" Info
        "A Service port's name and appProtocol do not tell the mesh its protocol.";
    INVALID_REGEXP = "IST0122" "InvalidRegexp" Warning
        "A regular expression of a VirtualService does not compile.";
    NAMESPACE_MULTIPLE_INJECTION_LABELS = "IST0123" "NamespaceMultipleInjectionLabels" Warning
        "A namespace has both the istio-injection and the istio.io/rev label.";
    INVALID_ANNOTATION = "IST0125" "InvalidAnnotation" Warning
        "An Istio annotation has a value that is not valid.";
    NO_MATCHING_WORKLOADS_FOUND = "IST0127" "NoMatchingWorkloadsFound" Warning
        "A policy's workload selector matches no workload.";
    NO_SERVER_CERTIFICATE_VERIFICATION_DESTINATION_LEVEL = "IST0128" "NoServerCertificateVerificationDestinationLevel" Warning
        "A DestinationRule originates TLS without a CA to verify the server certificate.";
    NO_SERVER_CERTIFICATE_VERIFICATION_PORT_LEVEL = "IST0129" "NoServerCertificateVerificationPortLevel" Warning
        "A DestinationRule originates TLS on a port without a CA to verify the server certificate.";
    VIRTUAL_SERVICE_UNREACHABLE_RULE = "IST0130" "VirtualServiceUnreachableRule" Warning
        "A VirtualService rule can never match: an earlier rule takes all its traffic.";
    VIRTUAL_SERVICE_INEFFECTIVE_MATCH = "IST0131" "VirtualServiceIneffectiveMatch" Info
        "A match of a VirtualService rule repeats a match of an earlier rule.";
    VIRTUAL_SERVICE_HOST_NOT_FOUND_IN_GATEWAY = "IST0132" "VirtualServiceHostNotFoundInGateway" Warning
        "A host of a VirtualService is not served by the Gateway it binds to.";
    SERVICE_ENTRY_ADDRESSES_REQUIRED = "IST0134" "ServiceEntryAddressesRequired" Warning
        "A ServiceEntry with TCP (or unset protocol) ports has no addresses.";
    DEPRECATED_ANNOTATION = "IST0135" "DeprecatedAnnotation" Info
        "A resource uses a deprecated Istio annotation.";
    DEPLOYMENT_CONFLICTING_PORTS = "IST0137" "DeploymentConflictingPorts" Warning
        "Services selecting the same pods map one targetPort from different ports.";
    INVALID_APPLICATION_UID = "IST0144" "InvalidApplicationUID" Warning
        "An application container runs as UID 1337, the proxy's.";
    CONFLICTING_GATEWAYS = "IST0145" "ConflictingGateways" Error
        "Gateways with the same selector and port serve the same host.";
    JWT_CLAIM_BASED_ROUTING_WITHOUT_REQUEST_AUTHN = "IST0149" "JwtClaimBasedRoutingWithoutRequestAuthN" Error
        "A VirtualService routes on JWT claims on a gateway no RequestAuthentication applies to.";
    EXTERNAL_NAME_SERVICE_TYPE_INVALID_PORT_NAME = "IST0150" "ExternalNameServiceTypeInvalidPortName" Warning
        "An ExternalName Service has a port named tcp.";
    INVALID_GATEWAY_CREDENTIAL = "IST0161" "InvalidGatewayCredential" Error
        "The Secret a Gateway names holds no certificate and key.";
    GATEWAY_PORT_NOT_DEFINED_ON_SERVICE = "IST0162" "GatewayPortNotDefinedOnService" Warning
        "A Gateway listens on a port that the Service of its workload does not expose.";
    DESTINATION_RULE_SUBSET_SELECTS_NO_PODS = "MSH0001" "DestinationRuleSubsetSelectsNoPods" Warning
        "A DestinationRule subset's labels match none of the service's pods.";
    SERVICE_ENTRY_CONFLICTING_PROTOCOLS = "MSH0002" "ServiceEntryConflictingProtocols" Error
        "ServiceEntries give one host and port different protocols.";
    CONFLICTING_POD_INJECTION_SWITCHES = "MSH0003" "ConflictingPodInjectionSwitches" Warning
        "The sidecar.istio.io/inject label and annotation of a pod disagree.";
}

/// The type with this code, if any.
pub fn by_code(code: &str) -> Option<&'static MessageType> {
    ALL.iter()
        .copied()
        .find(|t| t.code.eq_ignore_ascii_case(code))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_sorted_and_documented() {
        let codes: Vec<&str> = ALL.iter().map(|t| t.code).collect();
        let mut sorted = codes.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(codes, sorted, "codes must be unique and in order");
        let doc = include_str!("../../docs/analyze.md");
        for t in ALL {
            let heading = format!("### {} {}", t.code, t.name);
            assert!(doc.contains(&heading), "docs/analyze.md lacks `{heading}`");
        }
    }
}
