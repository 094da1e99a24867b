//! The `-o short` tables of `meshctl proxy-config`, from the proxy's `/config_dump` (its
//! configuration in force) and `/clusters` (what its clusters are doing).

use serde_json::Value;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

fn list(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

pub fn listeners(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "NAME".into(),
        "ADDRESS".into(),
        "CAPTURE".into(),
        "PROTOCOL".into(),
        "SERVES".into(),
    ]];
    for l in list(&dump["listeners"]) {
        let serves = if let Some(g) = l["gateway"].as_str() {
            format!("routes of gateway {g}")
        } else if l["destination"].is_object() {
            format!("tcp to {}", text(&l["destination"]["host"]))
        } else if l["capture"] == "outbound" {
            "services by original destination".to_owned()
        } else if l["capture"] == "inbound" {
            "the workload's ports".to_owned()
        } else {
            "-".to_owned()
        };
        let protocol = l["protocol"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| "detected".to_owned());
        rows.push(vec![
            text(&l["name"]),
            text(&l["address"]),
            text(&l["capture"]),
            protocol,
            serves,
        ]);
    }
    rows
}

fn matches(route: &Value) -> String {
    let shown: Vec<String> = list(&route["match"])
        .iter()
        .map(|m| {
            let mut parts = Vec::new();
            if let Some(uri) = m["uri"].as_object() {
                for (kind, value) in uri {
                    parts.push(format!("uri {kind} {}", text(value)));
                }
            }
            if let Some(headers) = m["headers"].as_object() {
                for name in headers.keys() {
                    parts.push(format!("header {name}"));
                }
            }
            if let Some(method) = m["method"].as_object() {
                for value in method.values() {
                    parts.push(format!("method {}", text(value)));
                }
            }
            if parts.is_empty() {
                "*".to_owned()
            } else {
                parts.join(" & ")
            }
        })
        .collect();
    if shown.is_empty() {
        "*".to_owned()
    } else {
        shown.join(" | ")
    }
}

fn destinations(route: &Value) -> String {
    if route["redirect"].is_object() {
        return "redirect".to_owned();
    }
    if route["directResponse"].is_object() {
        return format!(
            "direct response {}",
            text(&route["directResponse"]["status"])
        );
    }
    list(&route["route"])
        .iter()
        .map(|d| {
            let dest = &d["destination"];
            let mut s = text(&dest["host"]);
            if let Some(subset) = dest["subset"].as_str() {
                s.push_str(&format!("|{subset}"));
            }
            if let Some(w) = d["weight"].as_u64() {
                s.push_str(&format!(" {w}%"));
            }
            s
        })
        .collect::<Vec<_>>()
        .join(", ")
}

pub fn routes(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "VIRTUAL SERVICE".into(),
        "HOSTS".into(),
        "GATEWAYS".into(),
        "MATCH".into(),
        "DESTINATIONS".into(),
    ]];
    for vs in list(&dump["config"]["virtualServices"]) {
        let name = format!("{}/{}", text(&vs["namespace"]), text(&vs["name"]));
        let hosts = list(&vs["hosts"])
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            .join(",");
        let gateways = list(&vs["gateways"])
            .iter()
            .map(text)
            .collect::<Vec<_>>()
            .join(",");
        let gateways = if gateways.is_empty() {
            "mesh".to_owned()
        } else {
            gateways
        };
        for route in list(&vs["http"]) {
            rows.push(vec![
                name.clone(),
                hosts.clone(),
                gateways.clone(),
                matches(route),
                destinations(route),
            ]);
        }
        for route in list(&vs["tcp"]) {
            rows.push(vec![
                name.clone(),
                hosts.clone(),
                gateways.clone(),
                "tcp".into(),
                destinations(route),
            ]);
        }
    }
    rows
}

pub fn clusters(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "SERVICE FQDN".into(),
        "PORT".into(),
        "SUBSET".into(),
        "DESTINATION RULE".into(),
    ]];
    let rules = list(&dump["config"]["destinationRules"]);
    for svc in list(&dump["config"]["services"]) {
        let host = text(&svc["host"]);
        let rule = rules.iter().find(|r| r["host"] == svc["host"]);
        let rule_name = rule
            .map(|r| format!("{}/{}", text(&r["namespace"]), text(&r["name"])))
            .unwrap_or_else(|| "-".to_owned());
        for port in list(&svc["ports"]) {
            let number = text(&port["number"]);
            rows.push(vec![
                host.clone(),
                number.clone(),
                "-".into(),
                rule_name.clone(),
            ]);
            for subset in rule.map(|r| list(&r["subsets"])).unwrap_or_default() {
                rows.push(vec![
                    host.clone(),
                    number.clone(),
                    text(&subset["name"]),
                    rule_name.clone(),
                ]);
            }
        }
    }
    rows
}

/// One row per endpoint and port: address, status (from `/clusters` when the proxy has used
/// that service), service, labels.
pub fn endpoint_rows(dump: &Value, runtime: &str) -> Vec<[String; 4]> {
    let mut out = Vec::new();
    for svc in list(&dump["config"]["services"]) {
        let host = text(&svc["host"]);
        for port in list(&svc["ports"]) {
            for e in list(&svc["endpoints"]) {
                let target = e["ports"][port["name"].as_str().unwrap_or_default()]
                    .as_u64()
                    .or_else(|| e["port"].as_u64())
                    .or_else(|| port["targetPort"].as_u64())
                    .or_else(|| port["number"].as_u64())
                    .unwrap_or(0);
                let address = format!("{}:{target}", text(&e["address"]));
                let status = runtime
                    .lines()
                    .find(|l| l.contains(&format!("::{address}::")) && l.contains(&host))
                    .map(|l| {
                        if l.contains("ejected=true") {
                            "EJECTED"
                        } else {
                            "HEALTHY"
                        }
                    })
                    .unwrap_or("HEALTHY (unused)")
                    .to_owned();
                let labels = e["labels"]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| format!("{k}={}", text(v)))
                            .collect::<Vec<_>>()
                            .join(",")
                    })
                    .unwrap_or_default();
                out.push([
                    address,
                    status,
                    format!("outbound|{}||{host}", text(&port["number"])),
                    labels,
                ]);
            }
        }
    }
    out
}

pub fn endpoints(dump: &Value, runtime: &str) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "ENDPOINT".into(),
        "STATUS".into(),
        "CLUSTER".into(),
        "LABELS".into(),
    ]];
    rows.extend(endpoint_rows(dump, runtime).into_iter().map(Vec::from));
    rows
}

pub fn secrets(dump: &Value) -> Vec<Vec<String>> {
    let mut rows = vec![vec![
        "RESOURCE NAME".into(),
        "IDENTITY".into(),
        "VALID UNTIL".into(),
        "ROOTS".into(),
    ]];
    for s in list(&dump["secrets"]) {
        rows.push(vec![
            text(&s["name"]),
            text(&s["identity"]),
            text(&s["notAfter"]),
            text(&s["roots"]),
        ]);
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dump() -> Value {
        json!({
            "listeners": [{"name": "virtualOutbound", "address": "0.0.0.0:15001", "capture": "outbound"}],
            "config": {
                "services": [{"host": "reviews.shop.svc.cluster.local", "ports": [{"number": 9080, "name": "http"}],
                              "endpoints": [{"address": "10.244.0.7", "ports": {"http": 9080}, "labels": {"version": "v1"}}]}],
                "destinationRules": [{"name": "reviews", "namespace": "shop", "host": "reviews.shop.svc.cluster.local",
                                      "subsets": [{"name": "v1", "labels": {"version": "v1"}}]}],
                "virtualServices": [{"name": "reviews", "namespace": "shop", "hosts": ["reviews.shop.svc.cluster.local"],
                                     "http": [{"match": [{"uri": {"prefix": "/v1"}}],
                                               "route": [{"destination": {"host": "reviews.shop.svc.cluster.local", "subset": "v1"}, "weight": 80}]}]}],
            },
        })
    }

    #[test]
    fn tables_name_what_the_proxy_holds() {
        let d = dump();
        assert_eq!(listeners(&d)[1][4], "services by original destination");
        let r = routes(&d);
        assert_eq!(
            r[1],
            [
                "shop/reviews",
                "reviews.shop.svc.cluster.local",
                "mesh",
                "uri prefix /v1",
                "reviews.shop.svc.cluster.local|v1 80%"
            ]
        );
        let c = clusters(&d);
        assert_eq!(c.len(), 3, "the service and its subset");
        assert_eq!(c[2][2], "v1");
        let runtime = "outbound|9080||reviews.shop.svc.cluster.local::10.244.0.7:9080::active=0 ejected=true times_ejected=1\n";
        let e = endpoints(&d, runtime);
        assert_eq!(
            e[1],
            [
                "10.244.0.7:9080",
                "EJECTED",
                "outbound|9080||reviews.shop.svc.cluster.local",
                "version=v1"
            ]
        );
        assert_eq!(endpoints(&d, "")[1][1], "HEALTHY (unused)");
    }
}
