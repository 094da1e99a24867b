//! Application HTTP probes go through the proxy's health port, so the kubelet's plain-text
//! probes keep working when the application port only accepts mutual TLS. The originals travel
//! to the proxy in `ISTIO_KUBE_APP_PROBERS` (Istio's format), which is also how they are put back.

use serde_json::{json, Map, Value};

use crate::names::PORT_HEALTH;

const PROBES: &[(&str, &str)] = &[
    ("readinessProbe", "readyz"),
    ("livenessProbe", "livez"),
    ("startupProbe", "startupz"),
];

/// Named ports are resolved for the proxy, which does not see the container spec; the name is
/// kept so that removing the injection restores the probe exactly.
const ORIGINAL_PORT: &str = "originalPort";

fn resolve_port(container: &Value, port: &Value) -> Value {
    let Some(name) = port.as_str() else {
        return port.clone();
    };
    container["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"].as_str() == Some(name))
        .map(|p| p["containerPort"].clone())
        .unwrap_or_else(|| port.clone())
}

/// Rewrites the httpGet probes of `containers`; returns the map of new path → original probe.
pub fn rewrite(containers: &mut [Value]) -> Map<String, Value> {
    let mut probers = Map::new();
    for container in containers.iter_mut() {
        let name = container["name"].as_str().unwrap_or_default().to_owned();
        for (field, suffix) in PROBES {
            let Some(get) = container[*field].get("httpGet").cloned() else {
                continue;
            };
            // The proxy probes over plain HTTP; an HTTPS probe is TLS the application ends itself,
            // which passes through the proxy as it is, so the kubelet keeps it.
            if get["scheme"]
                .as_str()
                .is_some_and(|s| s.eq_ignore_ascii_case("HTTPS"))
            {
                continue;
            }
            let path = format!("/app-health/{name}/{suffix}");
            let mut original = get.clone();
            let resolved = resolve_port(container, &get["port"]);
            if resolved != get["port"] {
                original["port"] = resolved;
                original[ORIGINAL_PORT] = get["port"].clone();
            }
            let mut entry = json!({"httpGet": original});
            if let Some(timeout) = container[*field].get("timeoutSeconds") {
                entry["timeoutSeconds"] = timeout.clone();
            }
            probers.insert(path.clone(), entry);
            container[*field]["httpGet"] =
                json!({"path": path, "port": PORT_HEALTH, "scheme": "HTTP"});
        }
    }
    probers
}

/// Puts back the probes `rewrite` replaced.
pub fn restore(containers: &mut [Value], probers: &Map<String, Value>) {
    for container in containers.iter_mut() {
        for (field, _) in PROBES {
            let Some(path) = container[*field]["httpGet"]["path"].as_str() else {
                continue;
            };
            let Some(entry) = probers.get(path) else {
                continue;
            };
            let mut original = entry["httpGet"].clone();
            if let Some(obj) = original.as_object_mut() {
                if let Some(port) = obj.remove(ORIGINAL_PORT) {
                    obj.insert("port".to_owned(), port);
                }
            }
            container[*field]["httpGet"] = original;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_probes_go_through_the_health_port_and_come_back() {
        let original = vec![
            json!({
                "name": "web",
                "ports": [{"name": "http", "containerPort": 8080}],
                "readinessProbe": {"httpGet": {"path": "/ready", "port": "http"}, "timeoutSeconds": 3},
                "livenessProbe": {"httpGet": {"path": "/live", "port": 8080, "httpHeaders": [{"name": "X", "value": "1"}]}},
                "startupProbe": {"tcpSocket": {"port": 8080}},
            }),
            json!({
                "name": "tls",
                "readinessProbe": {"httpGet": {"path": "/ready", "port": 8443, "scheme": "HTTPS"}},
            }),
        ];
        let mut containers = original.clone();
        let probers = rewrite(&mut containers);
        assert_eq!(
            containers[0]["readinessProbe"],
            json!({"httpGet": {"path": "/app-health/web/readyz", "port": 15021, "scheme": "HTTP"}, "timeoutSeconds": 3})
        );
        assert_eq!(
            containers[0]["livenessProbe"]["httpGet"]["path"],
            "/app-health/web/livez"
        );
        // Only HTTP probes: a TCP probe reaches the port, which the proxy does not capture for
        // the kubelet's source address anyway.
        assert_eq!(containers[0]["startupProbe"], original[0]["startupProbe"]);
        // An HTTPS probe stays the kubelet's: the proxy probes over plain HTTP only.
        assert_eq!(containers[1], original[1]);
        assert_eq!(probers.len(), 2, "{probers:?}");
        assert_eq!(probers["/app-health/web/readyz"]["httpGet"]["port"], 8080);
        assert_eq!(probers["/app-health/web/readyz"]["timeoutSeconds"], 3);
        assert_eq!(
            probers["/app-health/web/livez"]["httpGet"]["httpHeaders"][0]["name"],
            "X"
        );
        restore(&mut containers, &probers);
        assert_eq!(containers, original);
    }
}
