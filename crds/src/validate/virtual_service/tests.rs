use super::*;
use crate::validate::testing::{assert_clean, error_fields, run, warning_fields};
use crate::validate::Report;
use serde_json::{json, Value};

fn check(spec: Value) -> Report {
    run(spec, validate)
}

/// A VirtualService for `reviews` with one HTTP rule.
fn with_rule(rule: Value) -> Value {
    json!({"hosts": ["reviews"], "http": [rule]})
}

fn to_reviews() -> Value {
    json!([{"destination": {"host": "reviews"}}])
}

#[test]
fn a_typical_virtual_service_is_valid() {
    let report = check(json!({
        "hosts": ["reviews"],
        "http": [
            {"match": [{"headers": {"end-user": {"exact": "jason"}}}],
             "route": [{"destination": {"host": "reviews", "subset": "v2"}}]},
            {"route": [{"destination": {"host": "reviews", "subset": "v1"}, "weight": 75},
                       {"destination": {"host": "reviews", "subset": "v3"}, "weight": 25}],
             "timeout": "10s",
             "retries": {"attempts": 3, "perTryTimeout": "2s", "retryOn": "5xx,connect-failure,503"}}
        ]
    }));
    assert_clean(&report);
}

#[test]
fn hosts_are_required_unless_a_delegate() {
    let delegate = check(json!({"http": [{"route": to_reviews()}]}));
    assert!(delegate.is_valid(), "{delegate:?}");
    let report = check(
        json!({"gateways": ["public"], "http": [{"route": to_reviews()}],
        "tcp": [{"route": to_reviews()}]}),
    );
    assert_eq!(error_fields(&report), ["spec.gateways", "spec.tcp"]);
}

#[test]
fn hosts_must_be_valid_and_distinct() {
    let report =
        check(json!({"hosts": ["bad_host", "10.0.0.1"], "http": [{"route": to_reviews()}]}));
    assert_eq!(error_fields(&report), ["spec.hosts[0]"]);
    let report = check(json!({"hosts": ["*"], "http": [{"route": to_reviews()}]}));
    assert_eq!(error_fields(&report), ["spec.hosts[0]"]);
    let report = check(
        json!({"hosts": ["*"], "gateways": ["istio-system/public"], "http": [{"route": to_reviews()}]}),
    );
    assert!(report.is_valid(), "{report:?}");
    let report = check(
        json!({"hosts": ["*.example.com", "a.example.com"], "http": [{"route": to_reviews()}]}),
    );
    assert_eq!(error_fields(&report), ["spec.hosts[1]"]);
}

#[test]
fn gateways_are_mesh_or_namespace_slash_name() {
    let report = check(
        json!({"hosts": ["reviews"], "gateways": ["mesh", "istio-system/public", "ns/bad_name", "/x"],
        "http": [{"route": to_reviews()}]}),
    );
    assert_eq!(
        error_fields(&report),
        ["spec.gateways[2]", "spec.gateways[3]", "spec.gateways[3]"]
    );
}

#[test]
fn a_rule_needs_exactly_one_action() {
    assert_eq!(
        error_fields(&check(with_rule(
            json!({"match": [{"uri": {"prefix": "/"}}]})
        ))),
        ["spec.http[0]"]
    );
    assert_eq!(
        error_fields(&check(with_rule(json!({"route": []})))),
        ["spec.http[0]"]
    );
    let both = check(with_rule(
        json!({"route": to_reviews(), "redirect": {"uri": "/v2"}}),
    ));
    assert_eq!(error_fields(&both), ["spec.http[0].redirect"]);
    let three = check(with_rule(
        json!({"redirect": {"uri": "/v2"}, "directResponse": {"status": 404},
        "delegate": {"name": "other"}}),
    ));
    assert_eq!(
        error_fields(&three),
        ["spec.http[0].directResponse", "spec.http[0].delegate"]
    );
    let fault = check(with_rule(
        json!({"redirect": {"uri": "/v2"}, "fault": {"abort": {"httpStatus": 500}},
        "rewrite": {"uri": "/"}}),
    ));
    assert_eq!(
        error_fields(&fault),
        ["spec.http[0].fault", "spec.http[0].rewrite"]
    );
    assert!(check(with_rule(
        json!({"directResponse": {"status": 200, "body": {"string": "ok"}}})
    ))
    .is_valid());
    assert!(check(with_rule(
        json!({"delegate": {"name": "reviews-routes", "namespace": "shop"}})
    ))
    .is_valid());
}

#[test]
fn a_delegate_cannot_delegate_again() {
    let report = check(json!({"http": [{"delegate": {"name": "deeper"}}]}));
    assert_eq!(error_fields(&report), ["spec.http[0].delegate"]);
}

#[test]
fn destinations() {
    let report = check(with_rule(json!({"route": [
        {"destination": {"host": ""}},
        {"destination": {"host": "*"}},
        {"destination": {"host": "reviews", "subset": "v_1", "port": {"number": 70000}}, "weight": -1},
    ]})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].route[0].destination.host",
            "spec.http[0].route[1].destination.host",
            "spec.http[0].route[2].destination.subset",
            "spec.http[0].route[2].destination.port.number",
            "spec.http[0].route[2].weight",
        ]
    );
}

#[test]
fn several_destinations_need_some_weight() {
    let zero = check(with_rule(json!({"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 0},
        {"destination": {"host": "reviews", "subset": "v2"}}]})));
    assert_eq!(error_fields(&zero), ["spec.http[0].route"]);
    // Weights are relative shares; they need not add up to 100.
    let relative = check(with_rule(json!({"route": [
        {"destination": {"host": "reviews", "subset": "v1"}, "weight": 1},
        {"destination": {"host": "reviews", "subset": "v2"}, "weight": 3}]})));
    assert!(relative.is_valid());
    assert!(check(with_rule(
        json!({"route": [{"destination": {"host": "reviews"}, "weight": 0}]})
    ))
    .is_valid());
}

#[test]
fn string_matches_in_rules() {
    let report = check(with_rule(json!({"match": [{
        "uri": {"exact": "/a", "prefix": "/a"},
        "method": {"prefix": ""},
        "authority": {"regex": "(unclosed"},
        "headers": {"bad header": {"exact": "x"}, "x-ok": {}},
        "queryParams": {"v": {"regex": "["}},
        "withoutHeaders": {"x-debug": {"regex": "*"}},
    }], "route": to_reviews()})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].match[0].uri",
            "spec.http[0].match[0].method.prefix",
            "spec.http[0].match[0].authority.regex",
            "spec.http[0].match[0].headers[bad header]",
            "spec.http[0].match[0].queryParams[v].regex",
        ]
    );
}

#[test]
fn other_match_conditions() {
    let report = check(with_rule(json!({"match": [{
        "port": 70000,
        "sourceLabels": {"app": "bad value"},
        "gateways": ["ns/bad_gw"],
        "sourceNamespace": "Bad_Ns",
    }], "route": to_reviews()})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].match[0].port",
            "spec.http[0].match[0].sourceLabels[app]",
            "spec.http[0].match[0].gateways[0]",
            "spec.http[0].match[0].sourceNamespace",
        ]
    );
}

#[test]
fn jwt_claim_routing_only_on_gateways() {
    let rule = json!({"match": [{"headers": {"@request.auth.claims.group": {"exact": "admin"}}}], "route": to_reviews()});
    let mesh = check(with_rule(rule.clone()));
    assert_eq!(
        error_fields(&mesh),
        ["spec.http[0].match[0].headers[@request.auth.claims.group]"]
    );
    let gateway = check(
        json!({"hosts": ["shop.example.com"], "gateways": ["istio-system/public"], "http": [rule]}),
    );
    assert!(gateway.is_valid(), "{gateway:?}");
}

#[test]
fn durations() {
    let report = check(with_rule(json!({"route": to_reviews(), "timeout": "0.5ms",
        "retries": {"attempts": 2, "perTryTimeout": "2", "backoff": "25ms"}})));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].retries.perTryTimeout", "spec.http[0].timeout"]
    );
    assert!(check(with_rule(json!({"route": to_reviews(), "timeout": "1.5s"}))).is_valid());
}

#[test]
fn retries() {
    let report = check(with_rule(json!({"route": to_reviews(),
        "retries": {"attempts": -1, "retryOn": "5xx,not-a-policy,599"}})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].retries.attempts",
            "spec.http[0].retries.retryOn",
            "spec.http[0].retries.retryOn"
        ]
    );
    let disabled = check(with_rule(
        json!({"route": to_reviews(), "retries": {"retryOn": "5xx"}}),
    ));
    assert_eq!(error_fields(&disabled), ["spec.http[0].retries.attempts"]);
    assert!(check(with_rule(
        json!({"route": to_reviews(), "retries": {"attempts": 0}})
    ))
    .is_valid());
}

#[test]
fn faults() {
    let report = check(with_rule(json!({"route": to_reviews(), "fault": {
        "delay": {"percentage": {"value": 101}},
        "abort": {"httpStatus": 600, "percentage": {"value": 50}}}})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].fault.abort.httpStatus",
            "spec.http[0].fault.delay.percentage.value",
            "spec.http[0].fault.delay"
        ]
    );
    let report = check(with_rule(
        json!({"route": to_reviews(), "fault": {"abort": {"grpcStatus": "SOMETIMES"}}}),
    ));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].fault.abort.grpcStatus"]
    );
    let report = check(with_rule(
        json!({"route": to_reviews(), "fault": {"abort": {"percentage": {"value": 5}}}}),
    ));
    assert_eq!(error_fields(&report), ["spec.http[0].fault.abort"]);
    let report = check(with_rule(json!({"route": to_reviews(), "fault": {}})));
    assert_eq!(error_fields(&report), ["spec.http[0].fault"]);
    let report = check(with_rule(
        json!({"route": to_reviews(), "fault": {"delay": {"fixedDelay": "5s", "percent": 10}}}),
    ));
    assert!(report.is_valid());
    assert_eq!(
        warning_fields(&report),
        ["spec.http[0].fault.delay.percent"]
    );
    let report = check(with_rule(
        json!({"route": to_reviews(), "fault": {"abort": {"http2Error": "REFUSED_STREAM"}}}),
    ));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].fault.abort.http2Error"]
    );
}

#[test]
fn mirrors() {
    let report = check(with_rule(json!({"route": to_reviews(),
        "mirror": {"host": "shadow"}, "mirrors": [{"destination": {"host": "shadow2"}, "percentage": {"value": 150}}],
        "mirrorPercentage": {"value": -1}})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].mirrors",
            "spec.http[0].mirrorPercentage.value",
            "spec.http[0].mirrors[0].percentage.value"
        ]
    );
    let report = check(with_rule(
        json!({"route": to_reviews(), "mirror": {"host": "shadow"}, "mirrorPercent": 101}),
    ));
    assert_eq!(error_fields(&report), ["spec.http[0].mirrorPercent"]);
    assert_eq!(warning_fields(&report), ["spec.http[0].mirrorPercent"]);
}

#[test]
fn cors() {
    let report = check(with_rule(json!({"route": to_reviews(), "corsPolicy": {
        "allowOrigins": [{"exact": "https://shop.example.com"}, {"exact": ""}, {"regex": "https://(.*"}, {"exact": "shop.example.com"}],
        "allowMethods": ["GET", "get"],
        "allowHeaders": ["*", "bad header"],
        "maxAge": "1500ms"}})));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].corsPolicy.allowOrigins[1]",
            "spec.http[0].corsPolicy.allowOrigins[2].regex",
            "spec.http[0].corsPolicy.allowMethods[1]",
            "spec.http[0].corsPolicy.allowHeaders[1]",
            "spec.http[0].corsPolicy.maxAge",
        ]
    );
    assert_eq!(
        warning_fields(&report),
        ["spec.http[0].corsPolicy.allowOrigins[3].exact"]
    );
    let deprecated = check(with_rule(
        json!({"route": to_reviews(), "corsPolicy": {"allowOrigin": ["https://a.example.com"]}}),
    ));
    assert_eq!(
        warning_fields(&deprecated),
        ["spec.http[0].corsPolicy.allowOrigin"]
    );
}

#[test]
fn rewrites_and_redirects() {
    let report = check(with_rule(
        json!({"route": to_reviews(), "rewrite": {"uri": "/", "uriRegexRewrite": {"match": "^/a", "rewrite": "/b"}}}),
    ));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].rewrite.uriRegexRewrite"]
    );
    let report = check(with_rule(
        json!({"route": to_reviews(), "rewrite": {"uriRegexRewrite": {"match": "(", "rewrite": "/b"}}}),
    ));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].rewrite.uriRegexRewrite.match"]
    );
    let report = check(with_rule(json!({"route": to_reviews(), "rewrite": {}})));
    assert_eq!(error_fields(&report), ["spec.http[0].rewrite"]);
    let report = check(with_rule(
        json!({"route": to_reviews(), "rewrite": {"authority": "a"},
        "headers": {"request": {"set": {"Host": "b"}}}}),
    ));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].headers.request.set[Host]"]
    );
    let report = check(with_rule(
        json!({"redirect": {"redirectCode": 200, "scheme": "ftp", "port": 8443, "derivePort": "FROM_REQUEST_PORT"}}),
    ));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].redirect.redirectCode",
            "spec.http[0].redirect.scheme",
            "spec.http[0].redirect.derivePort"
        ]
    );
    assert_eq!(
        error_fields(&check(with_rule(json!({"redirect": {}})))),
        ["spec.http[0].redirect"]
    );
}

#[test]
fn header_operations_and_direct_responses() {
    let report = check(with_rule(
        json!({"route": [{"destination": {"host": "reviews"},
        "headers": {"response": {"set": {"Host": "x"}}}}],
        "headers": {"request": {"set": {":path": "/"}, "add": {"x-pct": "50%"}, "remove": ["host"]}}}),
    ));
    assert_eq!(
        error_fields(&report),
        [
            "spec.http[0].headers.request.set[:path]",
            "spec.http[0].headers.request.add[x-pct]",
            "spec.http[0].headers.request.remove[0]",
            "spec.http[0].route[0].headers.response.set[Host]",
        ]
    );
    let report = check(with_rule(json!({"directResponse": {"status": 700}})));
    assert_eq!(
        error_fields(&report),
        ["spec.http[0].directResponse.status"]
    );
    let big = "x".repeat(BODY_WARN + 1);
    let report = check(with_rule(
        json!({"directResponse": {"status": 200, "body": {"string": big}}}),
    ));
    assert_eq!(
        warning_fields(&report),
        ["spec.http[0].directResponse.body"]
    );
}

#[test]
fn tls_routes_need_sni_hosts_of_the_virtual_service() {
    let report = check(json!({"hosts": ["*.example.com"], "tls": [
        {"match": [{"sniHosts": ["a.example.com"]}], "route": to_reviews()},
        {"match": [{"sniHosts": ["other.org"], "destinationSubnets": ["10.0.0.0/33"]}], "route": to_reviews()},
        {"match": [{"sniHosts": []}]},
        {"match": [], "route": to_reviews()},
    ]}));
    assert_eq!(
        error_fields(&report),
        [
            "spec.tls[1].match[0].sniHosts[0]",
            "spec.tls[1].match[0].destinationSubnets[0]",
            "spec.tls[2].match[0].sniHosts",
            "spec.tls[2].route",
            "spec.tls[3].match",
        ]
    );
}

#[test]
fn tcp_routes_need_a_route() {
    let report = check(json!({"hosts": ["db"], "tcp": [
        {"match": [{"port": 5432, "sourceSubnet": "10.0.0.0/8"}], "route": [{"destination": {"host": "db", "port": {"number": 5432}}}]},
        {"match": [{"port": 5433}]},
    ]}));
    assert_eq!(error_fields(&report), ["spec.tcp[1].route"]);
}

#[test]
fn unreachable_rules_are_warnings() {
    let report = check(json!({"hosts": ["reviews"], "http": [
        {"name": "a", "match": [{"uri": {"prefix": "/a"}}], "route": to_reviews()},
        {"name": "b", "match": [{"name": "same", "uri": {"prefix": "/a"}}], "route": to_reviews()},
        {"route": to_reviews()},
        {"name": "late", "match": [{"uri": {"prefix": "/late"}}], "route": to_reviews()},
    ]}));
    assert!(report.is_valid(), "{report:?}");
    assert_eq!(
        warning_fields(&report),
        ["spec.http[1].match[0]", "spec.http[1]", "spec.http[3]"]
    );
}

#[test]
fn export_to_is_checked() {
    let report = check(
        json!({"hosts": ["reviews"], "http": [{"route": to_reviews()}], "exportTo": [".", "shop"]}),
    );
    assert_eq!(error_fields(&report), ["spec.exportTo[1]"]);
}

#[test]
fn an_empty_virtual_service_is_an_error() {
    assert_eq!(
        error_fields(&check(json!({"hosts": ["reviews"]}))),
        ["spec"]
    );
}
