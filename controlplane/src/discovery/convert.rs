//! Istio's VirtualService and DestinationRule into the proxy's routing and cluster policy.
//!
//! The proxy's types keep Istio's field names and meaning, so a spec goes across as JSON after
//! three kinds of change: short host names are made fully qualified (relative to the object's
//! namespace, as Istio resolves them), deprecated spellings become their current ones, and
//! fields the proxy does not implement are dropped and reported. The last step is driven by the
//! proxy's own types (their unknown-field errors), so a field the proxy learns to handle starts
//! flowing through without a change here.

use mesh_proxy_config::{DestinationRule, VirtualService};
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// A converted object, and the fields of it the proxy does not implement (as paths).
#[derive(Debug, Clone, PartialEq)]
pub struct Converted<T> {
    pub value: T,
    pub ignored: Vec<String>,
}

/// Why an object cannot be given to the proxies at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct Unusable {
    pub field: String,
    pub reason: String,
}

/// `reviews` → `reviews.<ns>.svc.<domain>`, `reviews.prod` → `reviews.prod.svc.<domain>`;
/// names with more labels, wildcards and `*` stay as they are.
pub fn qualify(host: &str, namespace: &str, domain: &str) -> String {
    if host.starts_with('*') || host.ends_with(&format!(".svc.{domain}")) {
        return host.to_owned();
    }
    match host.matches('.').count() {
        0 => format!("{host}.{namespace}.svc.{domain}"),
        1 => format!("{host}.svc.{domain}"),
        _ => host.to_owned(),
    }
}

fn qualify_in(value: &mut Value, namespace: &str, domain: &str) {
    if let Some(host) = value.as_str() {
        *value = Value::from(qualify(host, namespace, domain));
    }
}

/// Every `destination.host` below `value` (routes, mirrors).
fn qualify_destinations(value: &mut Value, namespace: &str, domain: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map.iter_mut() {
                if key == "destination" || key == "mirror" {
                    if let Some(host) = child.get_mut("host") {
                        qualify_in(host, namespace, domain);
                    }
                }
                qualify_destinations(child, namespace, domain);
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|c| qualify_destinations(c, namespace, domain)),
        _ => {}
    }
}

/// Istio's deprecated spellings, in their current form.
fn modernise_route(route: &mut Map<String, Value>) {
    if let Some(percent) = route.remove("mirrorPercent") {
        route
            .entry("mirrorPercentage")
            .or_insert_with(|| json!({"value": percent}));
    }
    if let Some(cors) = route.get_mut("corsPolicy").and_then(Value::as_object_mut) {
        if let Some(Value::Array(origins)) = cors.remove("allowOrigin") {
            let exact: Vec<Value> = origins.into_iter().map(|o| json!({"exact": o})).collect();
            cors.entry("allowOrigins").or_insert(Value::Array(exact));
        }
    }
    if let Some(retries) = route.get_mut("retries").and_then(Value::as_object_mut) {
        // Istio's `backoff` is the base interval between retries.
        if let Some(base) = retries
            .get("backoff")
            .and_then(Value::as_str)
            .map(str::to_owned)
        {
            retries.insert("backoff".to_owned(), json!({"baseInterval": base}));
        }
    }
}

/// Deserialises `value` into `T`, dropping what `T` does not know (recorded in `ignored`);
/// any other error makes the object unusable.
pub(crate) fn into_proxy_type<T: DeserializeOwned>(
    mut value: Value,
    ignored: &mut Vec<String>,
) -> Result<T, Unusable> {
    // Each round removes one unknown field; the bound only guards against a loop.
    for _ in 0..64 {
        match serde_path_to_error::deserialize::<_, T>(value.clone()) {
            Ok(v) => return Ok(v),
            Err(e) => {
                let path = e.path().to_string();
                let message = e.inner().to_string();
                let Some(field) = message
                    .strip_prefix("unknown field `")
                    .and_then(|rest| rest.split('`').next())
                else {
                    return Err(Unusable {
                        field: format!("spec.{}", path.trim_start_matches('.')),
                        reason: message,
                    });
                };
                let segments = segments(&path, field);
                if !remove(&mut value, &segments) {
                    return Err(Unusable {
                        field: format!("spec.{path}"),
                        reason: message,
                    });
                }
                let shown = format!("spec.{}", segments.join("."));
                if !ignored.contains(&shown) {
                    ignored.push(shown);
                }
            }
        }
    }
    Err(Unusable {
        field: "spec".to_owned(),
        reason: "too many fields the proxy does not implement".to_owned(),
    })
}

/// `http[0].corsPolicy` + `allowFoo` → [`http`, `corsPolicy`, `allowFoo`] (all list items).
fn segments(path: &str, field: &str) -> Vec<String> {
    let mut out: Vec<String> = path
        .split('.')
        .filter(|s| !s.is_empty() && *s != "?")
        .map(|s| s.split('[').next().unwrap_or(s).to_owned())
        .filter(|s| !s.is_empty())
        .collect();
    if out.last().map(String::as_str) != Some(field) {
        out.push(field.to_owned());
    }
    out
}

/// Removes the field at `path` from every object the path reaches; whether any was removed.
fn remove(value: &mut Value, path: &[String]) -> bool {
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    match value {
        Value::Object(map) if rest.is_empty() => map.remove(first).is_some(),
        Value::Object(map) => map.get_mut(first).is_some_and(|child| remove(child, rest)),
        Value::Array(items) => {
            // Every item, not just up to the first that had the field.
            let mut removed = false;
            for item in items {
                removed |= remove(item, path);
            }
            removed
        }
        _ => false,
    }
}

fn base(spec: &Value, name: &str, namespace: &str) -> Map<String, Value> {
    let mut out = spec.as_object().cloned().unwrap_or_default();
    // Used by meshd for scoping, not by the proxy.
    out.remove("exportTo");
    out.remove("workloadSelector");
    out.insert("name".to_owned(), Value::from(name));
    out.insert("namespace".to_owned(), Value::from(namespace));
    out
}

/// A VirtualService's spec for the proxies.
pub fn virtual_service(
    spec: &Value,
    name: &str,
    namespace: &str,
    domain: &str,
) -> Result<Converted<VirtualService>, Unusable> {
    let mut out = base(spec, name, namespace);
    if let Some(hosts) = out.get_mut("hosts").and_then(Value::as_array_mut) {
        hosts
            .iter_mut()
            .for_each(|h| qualify_in(h, namespace, domain));
    }
    let mut ignored = Vec::new();
    if let Some(routes) = out.get_mut("http").and_then(Value::as_array_mut) {
        let before = routes.len();
        // A delegating route hands over to another VirtualService, which the proxy cannot
        // follow: it is left out rather than sent half-understood.
        routes.retain(|r| r.get("delegate").is_none());
        if routes.len() != before {
            ignored.push("spec.http[].delegate".to_owned());
        }
        for route in routes.iter_mut().filter_map(Value::as_object_mut) {
            modernise_route(route);
        }
    }
    let mut value = Value::Object(out);
    for key in ["http", "tcp"] {
        if let Some(routes) = value.get_mut(key) {
            qualify_destinations(routes, namespace, domain);
        }
    }
    let converted = into_proxy_type(value, &mut ignored)?;
    Ok(Converted {
        value: converted,
        ignored,
    })
}

/// A DestinationRule's spec for the proxies.
pub fn destination_rule(
    spec: &Value,
    name: &str,
    namespace: &str,
    domain: &str,
) -> Result<Converted<DestinationRule>, Unusable> {
    let mut out = base(spec, name, namespace);
    qualify_in(
        out.entry("host").or_insert(Value::from("")),
        namespace,
        domain,
    );
    let mut ignored = Vec::new();
    let converted = into_proxy_type(Value::Object(out), &mut ignored)?;
    Ok(Converted {
        value: converted,
        ignored,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOMAIN: &str = "cluster.local";

    #[test]
    fn hosts_are_qualified_relative_to_the_namespace() {
        assert_eq!(
            qualify("reviews", "shop", DOMAIN),
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.prod", "shop", DOMAIN),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            qualify("reviews.prod.svc.cluster.local", "shop", DOMAIN),
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            qualify("api.example.com", "shop", DOMAIN),
            "api.example.com"
        );
        assert_eq!(qualify("*.example.com", "shop", DOMAIN), "*.example.com");
    }

    #[test]
    fn a_virtual_service_goes_across_with_qualified_destinations() {
        let spec = json!({
            "hosts": ["reviews"],
            "exportTo": ["."],
            "http": [{
                "match": [{"uri": {"prefix": "/v2"}}],
                "route": [
                    {"destination": {"host": "reviews", "subset": "v2"}, "weight": 80},
                    {"destination": {"host": "reviews.prod", "subset": "v1"}, "weight": 20},
                ],
                "mirror": {"host": "shadow"},
                "mirrorPercent": 5,
                "retries": {"attempts": 3, "backoff": "50ms"},
            }],
        });
        let converted = virtual_service(&spec, "reviews", "shop", DOMAIN).expect("converts");
        assert!(converted.ignored.is_empty(), "{:?}", converted.ignored);
        let vs = converted.value;
        assert_eq!(vs.hosts, ["reviews.shop.svc.cluster.local"]);
        let route = &vs.http[0];
        assert_eq!(
            route.route[0].destination.host,
            "reviews.shop.svc.cluster.local"
        );
        assert_eq!(
            route.route[1].destination.host,
            "reviews.prod.svc.cluster.local"
        );
        assert_eq!(
            route.mirror.as_ref().map(|m| m.host.as_str()),
            Some("shadow.shop.svc.cluster.local")
        );
        assert!(route.mirror_percentage.is_some());
        assert!(route
            .retries
            .as_ref()
            .and_then(|r| r.backoff.as_ref())
            .is_some());
    }

    #[test]
    fn fields_the_proxy_does_not_implement_are_dropped_and_named() {
        let spec = json!({
            "hosts": ["reviews"],
            "tls": [{"match": [{"sniHosts": ["reviews"]}], "route": [{"destination": {"host": "reviews"}}]}],
            "http": [
                {"delegate": {"name": "other"}},
                {"match": [{"uri": {"exact": "/"}, "statPrefix": "x"}], "route": [{"destination": {"host": "reviews"}}]},
            ],
        });
        let converted = virtual_service(&spec, "reviews", "shop", DOMAIN).expect("converts");
        assert_eq!(converted.value.http.len(), 1);
        assert_eq!(
            converted.ignored,
            [
                "spec.http[].delegate",
                "spec.tls",
                "spec.http.match.statPrefix"
            ]
        );
    }

    #[test]
    fn an_object_the_proxy_cannot_use_says_where() {
        let spec = json!({"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "r"}}], "timeout": "soon"}]});
        let err = virtual_service(&spec, "reviews", "shop", DOMAIN).expect_err("bad duration");
        assert!(err.field.starts_with("spec.http[0].timeout"), "{err}");
    }

    #[test]
    fn a_destination_rule_gets_its_host_qualified() {
        let spec = json!({
            "host": "reviews",
            "trafficPolicy": {"loadBalancer": {"simple": "ROUND_ROBIN", "warmupDurationSecs": "10s"}},
            "subsets": [{"name": "v1", "labels": {"version": "v1"}}],
        });
        let converted = destination_rule(&spec, "reviews", "shop", DOMAIN).expect("converts");
        assert_eq!(converted.value.host, "reviews.shop.svc.cluster.local");
        assert_eq!(converted.value.subsets[0].name, "v1");
        assert_eq!(
            converted.ignored,
            ["spec.trafficPolicy.loadBalancer.warmupDurationSecs"]
        );
    }
}
