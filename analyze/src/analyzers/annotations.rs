//! IST0108, IST0107, IST0135, IST0125: annotations in Istio's domains (`*.istio.io`) that are
//! unknown, on a kind they have no effect on, deprecated, or with a value that is not valid.

use serde_json::{Map, Value};

use mesh_inject::decide::switch;
use mesh_inject::quantity::is_quantity;
use mesh_inject::traffic::iptables_args;

use crate::codes::*;
use crate::context::Context;
use crate::object::Object;
use crate::report::Report;

/// What a value must look like.
#[derive(Clone, Copy)]
enum Check {
    Any,
    Bool,
    Int,
    Quantity,
    /// Checked by the injector's own parser of the capture annotations.
    Capture,
    Json,
    Yaml,
    ExportTo,
    Codes,
}

/// Where an annotation has an effect: the pod (on a Pod, or a workload's pod template),
/// another kind, or any object.
#[derive(Clone, Copy, PartialEq)]
enum On {
    Pod,
    Kind(&'static str),
    Any,
}

struct Known {
    name: &'static str,
    on: On,
    check: Check,
    /// What replaces a deprecated annotation.
    deprecated: Option<&'static str>,
}

const fn pod(name: &'static str, check: Check) -> Known {
    Known {
        name,
        on: On::Pod,
        check,
        deprecated: None,
    }
}

const fn old(name: &'static str, on: On, instead: &'static str) -> Known {
    Known {
        name,
        on,
        check: Check::Any,
        deprecated: Some(instead),
    }
}

static KNOWN: &[Known] = &[
    pod("sidecar.istio.io/inject", Check::Bool),
    pod("sidecar.istio.io/status", Check::Json),
    pod("sidecar.istio.io/rewriteAppHTTPProbers", Check::Bool),
    pod("sidecar.istio.io/proxyImage", Check::Any),
    pod("sidecar.istio.io/proxyImageType", Check::Any),
    pod("sidecar.istio.io/proxyCPU", Check::Quantity),
    pod("sidecar.istio.io/proxyCPULimit", Check::Quantity),
    pod("sidecar.istio.io/proxyMemory", Check::Quantity),
    pod("sidecar.istio.io/proxyMemoryLimit", Check::Quantity),
    pod("sidecar.istio.io/interceptionMode", Check::Capture),
    pod("sidecar.istio.io/bootstrapOverride", Check::Any),
    pod("sidecar.istio.io/userVolume", Check::Json),
    pod("sidecar.istio.io/userVolumeMount", Check::Json),
    pod("sidecar.istio.io/enableCoreDump", Check::Bool),
    pod("sidecar.istio.io/logLevel", Check::Any),
    pod("sidecar.istio.io/componentLogLevel", Check::Any),
    pod("sidecar.istio.io/agentLogLevel", Check::Any),
    pod("sidecar.istio.io/extraStatTags", Check::Any),
    pod("sidecar.istio.io/statsHistogramBuckets", Check::Json),
    pod("sidecar.istio.io/nativeSidecar", Check::Bool),
    pod("status.sidecar.istio.io/port", Check::Int),
    pod(
        "readiness.status.sidecar.istio.io/initialDelaySeconds",
        Check::Int,
    ),
    pod(
        "readiness.status.sidecar.istio.io/periodSeconds",
        Check::Int,
    ),
    pod(
        "readiness.status.sidecar.istio.io/failureThreshold",
        Check::Int,
    ),
    pod(
        "readiness.status.sidecar.istio.io/applicationPorts",
        Check::Any,
    ),
    pod(
        "traffic.sidecar.istio.io/includeOutboundIPRanges",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/excludeOutboundIPRanges",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/includeInboundPorts",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/excludeInboundPorts",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/includeOutboundPorts",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/excludeOutboundPorts",
        Check::Capture,
    ),
    pod(
        "traffic.sidecar.istio.io/kubevirtInterfaces",
        Check::Capture,
    ),
    pod("traffic.sidecar.istio.io/excludeInterfaces", Check::Capture),
    pod("proxy.istio.io/config", Check::Yaml),
    pod("proxy.istio.io/overrides", Check::Any),
    pod("inject.istio.io/templates", Check::Any),
    pod("prometheus.istio.io/merge-metrics", Check::Bool),
    pod("ambient.istio.io/redirection", Check::Any),
    old(
        "sidecar.istio.io/statsInclusionPrefixes",
        On::Pod,
        "set proxyStatsMatcher.inclusionPrefixes in the proxy.istio.io/config annotation",
    ),
    old(
        "sidecar.istio.io/statsInclusionSuffixes",
        On::Pod,
        "set proxyStatsMatcher.inclusionSuffixes in the proxy.istio.io/config annotation",
    ),
    old(
        "sidecar.istio.io/statsInclusionRegexps",
        On::Pod,
        "set proxyStatsMatcher.inclusionRegexps in the proxy.istio.io/config annotation",
    ),
    old(
        "sidecar.istio.io/controlPlaneAuthPolicy",
        On::Pod,
        "remove it: the control plane connection is always mutual TLS",
    ),
    old(
        "sidecar.istio.io/discoveryAddress",
        On::Pod,
        "set discoveryAddress in the proxy.istio.io/config annotation",
    ),
    old(
        "alpha.istio.io/identity",
        On::Pod,
        "remove it: identities come from the pod's service account",
    ),
    Known {
        name: "networking.istio.io/exportTo",
        on: On::Kind("Service"),
        check: Check::ExportTo,
        deprecated: None,
    },
    Known {
        name: "networking.istio.io/traffic-distribution",
        on: On::Kind("Service"),
        check: Check::Any,
        deprecated: None,
    },
    old(
        "alpha.istio.io/kubernetes-serviceaccounts",
        On::Kind("Service"),
        "remove it: use the service accounts of the pods",
    ),
    old(
        "alpha.istio.io/canonical-serviceaccounts",
        On::Kind("Service"),
        "remove it: use the service accounts of the pods",
    ),
    Known {
        name: "istio.io/dry-run",
        on: On::Kind("AuthorizationPolicy"),
        check: Check::Bool,
        deprecated: None,
    },
    Known {
        name: "istio.io/autoRegistrationGroup",
        on: On::Kind("WorkloadEntry"),
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "istio.io/workloadController",
        on: On::Kind("WorkloadEntry"),
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "istio.io/connectedAt",
        on: On::Kind("WorkloadEntry"),
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "istio.io/disconnectedAt",
        on: On::Kind("WorkloadEntry"),
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "install.operator.istio.io/chart-owner",
        on: On::Any,
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "install.operator.istio.io/owner-generation",
        on: On::Any,
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "install.operator.istio.io/version",
        on: On::Any,
        check: Check::Any,
        deprecated: None,
    },
    Known {
        name: "galley.istio.io/analyze-suppress",
        on: On::Any,
        check: Check::Codes,
        deprecated: None,
    },
    Known {
        name: "kubectl.kubernetes.io/default-container",
        on: On::Pod,
        check: Check::Any,
        deprecated: None,
    },
];

fn is_istio_domain(key: &str) -> bool {
    key.split_once('/')
        .is_some_and(|(domain, _)| domain == "istio.io" || domain.ends_with(".istio.io"))
}

fn known(key: &str) -> Option<&'static Known> {
    KNOWN.iter().find(|k| k.name == key)
}

/// Why a value is not valid, or None.
fn invalid(check: Check, value: &str) -> Option<String> {
    let ok = match check {
        Check::Any | Check::Capture => true,
        Check::Bool => switch(value).is_some(),
        Check::Int => value.trim().parse::<u32>().is_ok(),
        Check::Quantity => is_quantity(value),
        Check::Json => serde_json::from_str::<Value>(value).is_ok(),
        Check::Yaml => {
            serde_yaml_ng::from_str::<Value>(value).is_ok_and(|v| v.is_object() || v.is_null())
        }
        Check::ExportTo => value.split(',').map(str::trim).all(|e| {
            e == "."
                || e == "*"
                || e == "~"
                || (!e.is_empty()
                    && e.bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'))
        }),
        Check::Codes => value
            .split(',')
            .map(str::trim)
            .all(|c| c == "*" || crate::codes::by_code(c).is_some()),
    };
    if ok {
        return None;
    }
    Some(match check {
        Check::Bool => format!("{value:?} is not true or false"),
        Check::Int => format!("{value:?} is not a whole number"),
        Check::Quantity => format!("{value:?} is not a Kubernetes quantity such as 100m or 128Mi"),
        Check::Json => format!("{value:?} is not valid JSON"),
        Check::Yaml => "the value is not a YAML mapping of proxy settings".to_owned(),
        Check::ExportTo => format!("{value:?} is not a comma-separated list of namespaces, . or *"),
        Check::Codes => format!(
            "{value:?} is not a comma-separated list of analyzer codes (such as IST0102) or *"
        ),
        Check::Any | Check::Capture => String::new(),
    })
}

/// Checks one annotation map; `on_pod` says whether it belongs to a pod (a Pod's metadata or a
/// pod template's).
fn check_map(
    r: &mut Report,
    obj: usize,
    object: &Object,
    annotations: &Map<String, Value>,
    path: &str,
    on_pod: bool,
) {
    let mut capture = false;
    for (key, value) in annotations {
        if !is_istio_domain(key) {
            continue;
        }
        let field = format!("{path}[{key:?}]");
        let Some(k) = known(key) else {
            r.add(
                &UNKNOWN_ANNOTATION,
                obj,
                &field,
                format!("Unknown annotation: {key} is not an annotation Istio or meshctl reads, so it has no effect; check its spelling, or remove it"),
            );
            continue;
        };
        let placed_right = match k.on {
            On::Any => true,
            On::Pod => on_pod,
            On::Kind(kind) => kind == object.kind && !on_pod,
        };
        if !placed_right {
            let hint = match k.on {
                On::Pod if object.kind != "Pod" => {
                    " (on a workload, put it under spec.template.metadata.annotations)"
                }
                _ => "",
            };
            let kind = match k.on {
                On::Pod => "Pod",
                On::Kind(kind) => kind,
                On::Any => "any resource",
            };
            r.add(
                &MISPLACED_ANNOTATION,
                obj,
                &field,
                format!("Misplaced annotation: {key} can only be applied to {kind}, so here it has no effect{hint}"),
            );
            continue;
        }
        if let Some(instead) = k.deprecated {
            r.add(
                &DEPRECATED_ANNOTATION,
                obj,
                &field,
                format!("Annotation {key:?} has been deprecated and may not work in future releases; {instead}"),
            );
        }
        matches!(k.check, Check::Capture).then(|| capture = true);
        if let Some(why) = value.as_str().and_then(|v| invalid(k.check, v)) {
            r.add(
                &INVALID_ANNOTATION,
                obj,
                &field,
                format!("Invalid annotation {key}: {why}"),
            );
        }
    }
    if capture {
        // The injector's own parser, so analysis refuses exactly what injection would.
        if let Err(mesh_inject::InjectError::Annotation {
            annotation,
            message,
            ..
        }) = iptables_args(&Value::Object(annotations.clone()), "")
        {
            r.add(
                &INVALID_ANNOTATION,
                obj,
                &format!("{path}[{annotation:?}]"),
                format!("Invalid annotation {annotation}: {message}"),
            );
        }
    }
}

pub fn run(cx: &Context, r: &mut Report) {
    for (i, o) in cx.objects.iter().enumerate() {
        check_map(
            r,
            i,
            o,
            o.annotations(),
            "metadata.annotations",
            o.kind == "Pod",
        );
    }
    for w in &cx.workloads {
        if !w.template_path.is_empty() {
            let path = format!("{}.annotations", w.metadata_path());
            check_map(r, w.obj, cx.object(w.obj), w.annotations, &path, true);
        }
    }
}
