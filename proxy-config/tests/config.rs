//! The configuration model: the documented example and a config using every field parse,
//! survive a JSON round trip (what a control-plane push carries), and bad input is reported
//! with its file, line and field.

use mesh_proxy_config::*;

/// The first ```yaml block of docs/proxy.md.
fn docs_example() -> String {
    let doc =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/proxy.md")).unwrap();
    let start = doc
        .find("```yaml\n")
        .expect("a yaml block in docs/proxy.md")
        + 8;
    let end = start + doc[start..].find("```").unwrap();
    doc[start..end].to_owned()
}

const EVERY_FIELD: &str = r#"
version: v7
node:
  workload: app-v1
  namespace: apps
  labels: {app: app, version: v1}
  cluster: east
outboundTrafficPolicy: {mode: REGISTRY_ONLY}
listeners:
  - {name: out, address: "0.0.0.0:15001", capture: outbound}
  - {name: in, address: "0.0.0.0:15006", capture: inbound}
  - {name: gw, address: "0.0.0.0:8080", protocol: HTTP, gateway: public}
  - {name: db, address: "127.0.0.1:5433", protocol: TCP, destination: {host: db.apps.svc.cluster.local, port: {number: 5432}}}
inbound:
  forwardTo: loopback
  ports: [{number: 8080, name: http-web, appProtocol: http, targetPort: 8081}]
  service: app.apps.svc.cluster.local
services:
  - host: db.apps.svc.cluster.local
    aliases: [db]
    name: db
    namespace: apps
    addresses: [10.96.0.5, "fd00::5"]
    ports: [{number: 5432, name: tcp-postgres}]
    endpoints:
      - {address: 10.1.0.5, port: 5432, ports: {tcp-postgres: 5432}, labels: {version: v1}, workload: db-0, namespace: apps, weight: 3}
virtualServices:
  - name: r
    namespace: apps
    hosts: [db.apps.svc.cluster.local, "*.example.com"]
    gateways: [mesh, public]
    http:
      - name: all
        match:
          - name: m
            uri: {prefix: /api}
            scheme: {exact: http}
            method: {regex: "GET|POST"}
            authority: {exact: db}
            headers: {x-a: {exact: "1"}, x-b: {}}
            withoutHeaders: {x-c: {}}
            port: 80
            sourceLabels: {app: app}
            sourceNamespace: apps
            queryParams: {q: {prefix: a}}
            ignoreUriCase: true
            gateways: [public]
        route:
          - destination: {host: db.apps.svc.cluster.local, subset: v1, port: {number: 5432}}
            weight: 100
            headers: {request: {set: {a: b}}, response: {add: {c: d}}}
        rewrite: {uri: /v2, authority: other, uriRegexRewrite: {match: "^/a/(.*)$", rewrite: "/\\1"}}
        timeout: 2s
        retries: {attempts: 3, perTryTimeout: 500ms, retryOn: "5xx,reset,503,unavailable", retryRemoteLocalities: true, backoff: {baseInterval: 10ms, maxInterval: 1s}}
        fault: {delay: {fixedDelay: 1s, percentage: {value: 10}}, abort: {grpcStatus: UNAVAILABLE, percentage: {value: 1.5}}}
        mirror: {host: db.apps.svc.cluster.local}
        mirrorPercentage: {value: 50}
        mirrors: [{destination: {host: db.apps.svc.cluster.local}, percentage: {value: 5}}]
        corsPolicy: {allowOrigins: [{exact: "https://a"}], allowMethods: [GET], allowHeaders: [x], exposeHeaders: [y], maxAge: 1h, allowCredentials: true}
        headers: {request: {set: {x: y}, add: {z: w}, remove: [v]}, response: {remove: [server]}}
      - redirect: {uri: /r, authority: a, port: 8443, derivePort: FROM_REQUEST_PORT, scheme: https, redirectCode: 308}
      - directResponse: {status: 503, body: {string: down}}
    tcp:
      - match: [{destinationSubnets: [10.0.0.0/8], port: 5432, sourceLabels: {app: app}, sourceNamespace: apps}]
        route: [{destination: {host: db.apps.svc.cluster.local}, weight: 100}]
destinationRules:
  - name: db
    namespace: apps
    host: db.apps.svc.cluster.local
    trafficPolicy:
      loadBalancer: {simple: ROUND_ROBIN, consistentHash: {httpHeaderName: x-user, httpCookie: {name: c, path: /, ttl: 10s}, useSourceIp: false, httpQueryParameterName: q, minimumRingSize: 1024}}
      connectionPool:
        tcp: {maxConnections: 10, connectTimeout: 1s, tcpKeepalive: {probes: 3, time: 60s, interval: 10s}, maxConnectionDuration: 1h, idleTimeout: 5m}
        http: {http1MaxPendingRequests: 5, http2MaxRequests: 100, maxRequestsPerConnection: 10, maxRetries: 3, idleTimeout: 30s, h2UpgradePolicy: UPGRADE, useClientProtocol: false, maxConcurrentStreams: 50}
      outlierDetection: {consecutiveErrors: 7, consecutive5xxErrors: 5, consecutiveGatewayErrors: 3, interval: 5s, baseEjectionTime: 30s, maxEjectionPercent: 50, minHealthPercent: 20, splitExternalLocalOriginErrors: false, consecutiveLocalOriginFailures: 5}
      portLevelSettings:
        - port: {number: 5432}
          loadBalancer: {simple: LEAST_REQUEST}
          connectionPool: {tcp: {maxConnections: 2}}
          outlierDetection: {consecutive5xxErrors: 2}
    subsets:
      - {name: v1, labels: {version: v1}, trafficPolicy: {loadBalancer: {simple: RANDOM}}}
limits: {maxRequestHeadersKb: 32, headerReadTimeout: 5s, http2MaxConcurrentStreams: 50, maxConnections: 1000}
protocolDetectionTimeout: 250ms
drainTimeout: 20s
"#;

#[test]
fn the_documented_example_parses() {
    let c = ProxyConfig::from_yaml(&docs_example(), "docs/proxy.md")
        .expect("the docs example is valid");
    assert_eq!(c.services.len(), 1);
    assert_eq!(c.virtual_services[0].http.len(), 2);
    assert_eq!(c.destination_rules[0].subsets.len(), 2);
}

#[test]
fn every_field_parses_and_survives_a_json_round_trip() {
    let c = ProxyConfig::from_yaml(EVERY_FIELD, "every.yaml").unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(c.version.as_deref(), Some("v7"));
    assert_eq!(c.outbound_traffic_policy.mode, OutboundMode::RegistryOnly);
    assert_eq!(c.effective_listeners().len(), 4);
    assert_eq!(c.inbound.forward_to, InboundForward::Loopback);
    let route = &c.virtual_services[0].http[0];
    assert_eq!(route.timeout, Some(Duration::from_secs(2)));
    assert_eq!(route.matches[0].headers["x-b"], StringMatch::Present);
    assert!(matches!(
        route.matches[0].method,
        Some(StringMatch::Regex(_))
    ));
    assert_eq!(
        route
            .retries
            .as_ref()
            .unwrap()
            .backoff
            .unwrap()
            .base_interval,
        Some(Duration::from_millis(10))
    );
    assert_eq!(
        route
            .fault
            .as_ref()
            .unwrap()
            .abort
            .as_ref()
            .unwrap()
            .percentage,
        Some(Percent { value: 1.5 })
    );
    let tp = c.destination_rules[0].traffic_policy.as_ref().unwrap();
    assert_eq!(
        tp.outlier_detection
            .as_ref()
            .unwrap()
            .consecutive_5xx_errors,
        Some(5)
    );
    assert_eq!(
        tp.connection_pool
            .as_ref()
            .unwrap()
            .http
            .as_ref()
            .unwrap()
            .h2_upgrade_policy,
        Some(H2UpgradePolicy::Upgrade)
    );
    assert_eq!(c.limits.max_request_headers_kb, 32);
    assert_eq!(
        c.services[0].endpoints[0].port_for(&c.services[0].ports[0]),
        5432
    );
    assert_eq!(c.services[0].ports[0].protocol(), Some(Protocol::Tcp));
    // What meshd will push: JSON of the same type, equal after the trip.
    let json = serde_json::to_string(&c).unwrap();
    let back: ProxyConfig = serde_json::from_str(&json).unwrap();
    assert_eq!(back, c);
}

#[test]
fn defaults_are_a_sidecar() {
    let c = ProxyConfig::from_yaml("{}", "empty.yaml").unwrap();
    let l = c.effective_listeners();
    assert_eq!(l[0].address.to_string(), "0.0.0.0:15001");
    assert_eq!(l[0].capture, Capture::Outbound);
    assert_eq!(l[1].address.to_string(), "0.0.0.0:15006");
    assert_eq!(l[1].capture, Capture::Inbound);
    assert_eq!(c.outbound_traffic_policy.mode, OutboundMode::AllowAny);
    assert_eq!(c.limits.max_request_headers_kb, 60);
    assert_eq!(c.limits.header_read_timeout, Duration::from_secs(10));
    let back: ProxyConfig = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
    assert_eq!(back, c, "a default snapshot survives the JSON trip too");
    let doc = ProxyConfig::from_yaml(&docs_example(), "docs").unwrap();
    let back: ProxyConfig = serde_json::from_str(&serde_json::to_string(&doc).unwrap()).unwrap();
    assert_eq!(back, doc);
}

fn error(yaml: &str) -> String {
    ProxyConfig::from_yaml(yaml, "f.yaml")
        .expect_err("invalid")
        .to_string()
}

#[test]
fn errors_name_the_file_line_and_field() {
    let vs =
        |route: &str| format!("virtualServices:\n  - hosts: [a]\n    http:\n      - {route}\n");
    let cases: Vec<(String, &str)> = vec![
        (vs("rout: []"), "f.yaml:4:9: field `virtualServices[0].http[0].rout`: unknown field `rout`"),
        (vs("timeout: 10\n        route: [{destination: {host: a}}]"), "f.yaml:4:18: field `virtualServices[0].http[0].timeout`: 10 has no unit"),
        (vs("match: [{uri: {regex: '('}}]\n        route: [{destination: {host: a}}]"), "field `virtualServices[0].http[0].match[0].uri.regex`: invalid regex \"(\""),
        (vs("match: [{uri: {exact: /a, prefix: /b}}]\n        route: [{destination: {host: a}}]"), "only one of exact, prefix or regex"),
        (vs("redirect: {uri: /x}\n        route: [{destination: {host: a}}]"), "f.yaml:4:7: field `virtualServices[0].http[0]`: an HTTP route needs exactly one of"),
        (vs("route: [{destination: {host: a}}, {destination: {host: b}}]"), "several destinations need weights"),
        (vs("fault: {abort: {percentage: {value: 120}, httpStatus: 500}}\n        route: [{destination: {host: a}}]"), "percentage 120 is outside 0..100"),
        (vs("fault: {abort: {grpcStatus: NOPE}}\n        route: [{destination: {host: a}}]"), "unknown gRPC status \"NOPE\""),
        (vs("retries: {attempts: 1, retryOn: '5xx,sometimes'}\n        route: [{destination: {host: a}}]"), "retryOn: unknown condition \"sometimes\""),
        (vs("directResponse: {status: 999}"), "999 is not an HTTP status code"),
        ("listeners:\n  - {name: a, address: '1.2.3.4:5'}\n  - {name: b, address: '1.2.3.4:5'}\n".into(), "field `listeners`: 1.2.3.4:5 is used by two listeners"),
        ("listeners:\n  - {name: t, address: '1.2.3.4:5', protocol: TCP}\n".into(), "a plain TCP listener needs a `destination`"),
        ("listeners:\n  - {name: a, address: 'nowhere'}\n".into(), "f.yaml:2:24: field `listeners[0].address`: invalid socket address"),
        ("outboundTrafficPolicy: {mode: SOMETIMES}\n".into(), "field `outboundTrafficPolicy.mode`: unknown variant `SOMETIMES`"),
        ("services:\n  - host: a\n    ports: [{number: 99999}]\n".into(), "f.yaml:3:22: field `services[0].ports[0].number`"),
        ("drainTimeout: 5parsecs\n".into(), "unknown unit \"parsecs\""),
    ];
    for (yaml, want) in cases {
        let got = error(&yaml);
        assert!(got.contains(want), "for\n{yaml}\nwant `{want}` in\n{got}");
    }
}

#[test]
fn security_and_telemetry_fields_parse() {
    let c = ProxyConfig::from_yaml(
        "trustDomain: example.org
node: {namespace: shop, serviceAccount: cart}
certificates: {directory: /creds, rootCertificates: /roots.pem, checkInterval: 2s}
tracing: {sampling: 10, zipkin: {address: 'zipkin.istio-system:9411'}, maxBatchSize: 50, flushInterval: 500ms, maxQueuedSpans: 100}
accessLog: {mode: ERRORS, encoding: JSON}
listeners: [{name: in, address: '127.0.0.1:9000', defaultEndpoint: '127.0.0.1:8080'}]
inbound:
  peerAuthentication: {mtls: {mode: STRICT}, portLevelMtls: {8080: {mode: PERMISSIVE}, 9090: {mode: DISABLE}}}
  rateLimits: [{port: 8080, tokenBucket: {maxTokens: 10, tokensPerFill: 5, fillInterval: 1s}}]
  authorizationPolicies:
    - name: a
      namespace: shop
      action: DENY
      rules:
        - from: [{source: {principals: ['*/sa/x'], notNamespaces: [a], ipBlocks: [10.0.0.0/8], notRemoteIpBlocks: ['::1']}}]
          to: [{operation: {hosts: ['*.shop'], ports: ['80'], methods: [GET], paths: ['/a/*'], notPaths: ['*.png']}}]
          when: [{key: 'request.headers[X-User]', values: [a]}, {key: source.ip, notValues: [10.1.0.0/16]}]
services:
  - host: a.shop.svc.cluster.local
    ports: [{number: 80, name: http}]
    endpoints: [{address: 10.0.0.1, serviceAccount: a}, {address: 10.0.0.2, identity: 'spiffe://other/ns/x/sa/y'}]
destinationRules:
  - host: a.shop.svc.cluster.local
    trafficPolicy:
      tls: {mode: ISTIO_MUTUAL, subjectAltNames: ['spiffe://example.org/ns/shop/sa/a']}
      portLevelSettings: [{port: {number: 80}, tls: {mode: SIMPLE, caCertificates: /ca.pem, sni: a.example}}]
virtualServices:
  - hosts: [a.shop.svc.cluster.local]
    http: [{route: [{destination: {host: a.shop.svc.cluster.local}}], localRateLimit: {maxTokens: 1, fillInterval: 1m}}]
",
        "f.yaml",
    )
    .expect("valid");
    assert_eq!(c.trust_domain(), "example.org");
    assert_eq!(
        c.inbound.peer_authentication.mode_for(8080),
        MtlsMode::Permissive
    );
    assert_eq!(
        c.inbound.peer_authentication.mode_for(9090),
        MtlsMode::Disable
    );
    assert_eq!(c.inbound.peer_authentication.mode_for(1), MtlsMode::Strict);
    assert_eq!(
        PeerAuthentication::default().mode_for(1),
        MtlsMode::Permissive
    );
    let files = c.certificates.as_ref().expect("certs");
    assert_eq!(
        files.chain_path(),
        std::path::Path::new("/creds/cert-chain.pem")
    );
    assert_eq!(files.roots_path(), std::path::Path::new("/roots.pem"));
    let json = serde_json::to_string(&c).expect("json");
    let back: ProxyConfig = serde_json::from_str(&json).expect("round trip");
    assert_eq!(back, c);
}

#[test]
fn bad_security_settings_are_refused_with_their_place() {
    let policy = |rule: &str| {
        format!("inbound:\n  authorizationPolicies:\n    - name: p\n      namespace: n\n      rules: [{rule}]\n")
    };
    let cases: Vec<(String, &str)> = vec![
        (policy("{from: [{source: {ipBlocks: [10.0.0.0/40]}}]}"), "f.yaml:3:5: field `inbound.authorizationPolicies[0]`: authorization policy n/p: rules[0].from.source: \"10.0.0.0/40\" is not an IP address or CIDR"),
        (policy("{to: [{operation: {ports: [http]}}]}"), "rules[0].to.operation.ports: \"http\" is not a port"),
        (policy("{to: [{operation: {paths: ['/a/*/b']}}]}"), "`*` may only stand at the start or the end"),
        (policy("{when: [{key: request.color, values: [red]}]}"), "unknown condition key \"request.color\""),
        (policy("{when: [{key: source.ip}]}"), "needs `values` or `notValues`"),
        (policy("{when: [{key: destination.port, values: [x]}]}"), "\"x\" is not a port"),
        ("inbound:\n  authorizationPolicies: [{name: p, action: CUSTOM}]\n".into(), "action CUSTOM (external authorization) is not supported"),
        ("inbound:\n  authorizationPolicies: [{name: p, action: MAYBE}]\n".into(), "unknown variant `MAYBE`"),
        ("inbound:\n  peerAuthentication: {mtls: {mode: SOMETIMES}}\n".into(), "field `inbound.peerAuthentication.mtls.mode`: unknown variant `SOMETIMES`"),
        ("inbound:\n  rateLimits: [{tokenBucket: {maxTokens: 0, fillInterval: 1s}}]\n".into(), "maxTokens must be at least 1"),
        ("tracing: {sampling: 150}\n".into(), "tracing.sampling 150 is not a percentage"),
        ("tracing: {zipkin: {address: nowhere}}\n".into(), "expected HOST:PORT"),
        ("destinationRules:\n  - host: a\n    trafficPolicy: {tls: {mode: MUTUAL}}\n".into(), "field `destinationRules[0].trafficPolicy.tls`: tls mode MUTUAL needs `clientCertificate` and `privateKey`"),
        ("virtualServices:\n  - hosts: [a]\n    http: [{route: [{destination: {host: a}}], localRateLimit: {maxTokens: 1, fillInterval: 0s}}]\n".into(), "fillInterval must be more than 0"),
    ];
    for (yaml, want) in cases {
        let got = error(&yaml);
        assert!(got.contains(want), "for\n{yaml}\nwant `{want}` in\n{got}");
    }
}
