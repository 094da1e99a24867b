//! Every analyzer with a case it must report and a case it must not, and no message at all on
//! a complete, realistic sample application (tests/fixtures/bookinfo).

use mesh_analyze::parse::{parse_text, ParseOptions};
use mesh_analyze::{analyze, Message, Options, ALL_ANALYZERS};

fn parse(yaml: &str) -> Vec<mesh_analyze::Object> {
    let parsed = parse_text(
        "test.yaml",
        yaml,
        &ParseOptions {
            default_namespace: "default".into(),
            ignore_unknown: true,
        },
    );
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    parsed.objects
}

fn run_with(yaml: &str, analyzer: &str, from_cluster: bool) -> Vec<Message> {
    assert!(
        mesh_analyze::analyzers::by_name(analyzer).is_some(),
        "no analyzer {analyzer}"
    );
    analyze(
        &parse(yaml),
        &Options {
            from_cluster,
            analyzers: vec![analyzer.to_owned()],
            ..Options::default()
        },
    )
}

/// `CODE Kind ns/name:line` of each message.
fn found(yaml: &str, analyzer: &str) -> Vec<String> {
    run_with(yaml, analyzer, false)
        .iter()
        .map(|m| {
            format!(
                "{} {}:{}",
                m.kind.code,
                m.resource,
                m.origin.as_ref().map_or(0, |o| o.line)
            )
        })
        .collect()
}

/// The codes of the messages, in order.
fn codes(yaml: &str, analyzer: &str) -> Vec<&'static str> {
    run_with(yaml, analyzer, false)
        .iter()
        .map(|m| m.kind.code)
        .collect()
}

fn assert_clean(yaml: &str, analyzer: &str) {
    let messages = run_with(yaml, analyzer, false);
    assert!(messages.is_empty(), "{analyzer}: {:#?}", messages);
}

const NS: &str =
    "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop, labels: {istio-injection: enabled}}\n";

fn deployment(name: &str, labels: &str, extra_spec: &str) -> String {
    format!("---\napiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{{labels}}}}}\n  template:\n    metadata:\n      labels: {{{labels}}}\n    spec:\n      containers:\n      - name: app\n        image: app\n        ports: [{{name: http, containerPort: 8080}}]\n{extra_spec}")
}

fn service(name: &str, selector: &str, ports: &str) -> String {
    format!("---\napiVersion: v1\nkind: Service\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{{selector}}}\n  ports: {ports}\n")
}

#[test]
fn bookinfo_is_clean_for_every_analyzer() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/bookinfo");
    let inputs = mesh_analyze::input::read_inputs(&[dir]).unwrap();
    assert_eq!(inputs.len(), 4);
    let parsed = mesh_analyze::parse::parse_inputs(
        inputs,
        &ParseOptions {
            default_namespace: "default".into(),
            ignore_unknown: false,
        },
    );
    assert!(parsed.errors.is_empty(), "{:?}", parsed.errors);
    assert!(parsed.objects.len() > 30);
    for from_cluster in [false, true] {
        let messages = analyze(
            &parsed.objects,
            &Options {
                from_cluster,
                ..Options::default()
            },
        );
        assert!(
            messages.is_empty(),
            "from_cluster={from_cluster}: {messages:#?}"
        );
    }
    // Every analyzer ran: asking for each by name is accepted.
    assert!(ALL_ANALYZERS.len() >= 26);
}

#[test]
fn referenced_host_port_and_subset() {
    let base = format!(
        "{NS}{}{}{}",
        service("web", "app: web", "[{name: http, port: 80}, {name: grpc, port: 9090}]"),
        deployment("web", "app: web, version: v1", ""),
        "---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {name: web, namespace: shop}\nspec:\n  host: web\n  subsets: [{name: v1, labels: {version: v1}}]\n"
    );
    let vs = |dest: &str| {
        format!("{base}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\nspec:\n  hosts: [web]\n  http:\n  - route:\n    - destination:\n        {dest}\n")
    };
    assert_clean(
        &vs("{host: web, port: {number: 80}, subset: v1}"),
        "virtualservice.DestinationHostAnalyzer",
    );
    assert_clean(
        &vs("{host: web, port: {number: 80}, subset: v1}"),
        "virtualservice.DestinationRuleAnalyzer",
    );
    // `destination:` (its value is flow style, so the key's line).
    let line = base.lines().count() + 9;
    assert_eq!(
        found(
            &vs("{host: webb, port: {number: 80}}"),
            "virtualservice.DestinationHostAnalyzer"
        ),
        [format!("IST0101 VirtualService shop/web:{line}")]
    );
    assert_eq!(
        found(&vs("{host: web}"), "virtualservice.DestinationHostAnalyzer"),
        [format!("IST0112 VirtualService shop/web:{line}")]
    );
    assert_eq!(
        found(
            &vs("{host: web, port: {number: 81}}"),
            "virtualservice.DestinationHostAnalyzer"
        ),
        [format!("IST0101 VirtualService shop/web:{line}")]
    );
    assert_eq!(
        found(
            &vs("{host: web, port: {number: 80}, subset: v2}"),
            "virtualservice.DestinationRuleAnalyzer"
        ),
        [format!("IST0101 VirtualService shop/web:{line}")]
    );
    // FQDN form and a ServiceEntry host resolve too.
    assert_clean(
        &vs("{host: web.shop.svc.cluster.local, port: {number: 80}}"),
        "virtualservice.DestinationHostAnalyzer",
    );
    let se = format!("{}---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: ext, namespace: shop}}\nspec:\n  hosts: [api.example.com]\n  ports: [{{number: 443, name: tls, protocol: TLS}}]\n", vs("{host: api.example.com}"));
    assert_clean(&se, "virtualservice.DestinationHostAnalyzer");
}

#[test]
fn without_the_cluster_references_into_absent_kinds_are_not_checked() {
    let vs = "apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {name: web, namespace: shop}\nspec:\n  hosts: [web]\n  gateways: [gw]\n  http: [{route: [{destination: {host: web, subset: v1}}]}]\n";
    for a in [
        "virtualservice.DestinationHostAnalyzer",
        "virtualservice.DestinationRuleAnalyzer",
        "virtualservice.GatewayAnalyzer",
    ] {
        assert!(run_with(vs, a, false).is_empty(), "{a}");
        assert_eq!(run_with(vs, a, true).len(), 1, "{a} with the cluster");
    }
}

#[test]
fn gateways_selector_ports_secrets_and_conflicts() {
    let workload = format!(
        "{}{}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: cert, namespace: shop}}\ndata: {{tls.crt: eA==, tls.key: eA==}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: empty, namespace: shop}}\n",
        deployment("gw", "istio: ingressgateway", ""),
        service("gw", "istio: ingressgateway", "[{name: http2, port: 80, targetPort: 8080}, {name: https, port: 443}]")
    );
    let gw = |name: &str, selector: &str, port: u32, host: &str, cred: &str| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  selector: {{{selector}}}\n  servers:\n  - port: {{number: {port}, name: p, protocol: HTTPS}}\n    hosts: [\"{host}\"]\n    tls: {{mode: SIMPLE, credentialName: {cred}}}\n")
    };
    let good = format!(
        "{workload}{}",
        gw("a", "istio: ingressgateway", 443, "a.example.com", "cert")
    );
    for a in [
        "gateway.IngressGatewayPortAnalyzer",
        "gateway.SecretAnalyzer",
        "gateway.ConflictingGatewayAnalyzer",
    ] {
        assert_clean(&good, a);
    }
    assert_eq!(
        codes(
            &format!("{workload}{}", gw("a", "istio: nothing", 443, "a", "cert")),
            "gateway.IngressGatewayPortAnalyzer"
        ),
        ["IST0101"]
    );
    assert_eq!(
        codes(
            &format!(
                "{workload}{}",
                gw("a", "istio: ingressgateway", 8443, "a", "cert")
            ),
            "gateway.IngressGatewayPortAnalyzer"
        ),
        ["IST0162"]
    );
    assert_eq!(
        codes(
            &format!(
                "{workload}{}",
                gw("a", "istio: ingressgateway", 443, "a", "nope")
            ),
            "gateway.SecretAnalyzer"
        ),
        ["IST0101"]
    );
    assert_eq!(
        codes(
            &format!(
                "{workload}{}",
                gw("a", "istio: ingressgateway", 443, "a", "empty")
            ),
            "gateway.SecretAnalyzer"
        ),
        ["IST0161"]
    );
    let two = format!(
        "{good}{}",
        gw("b", "istio: ingressgateway", 443, "*.example.com", "cert")
    );
    assert_eq!(
        codes(&two, "gateway.ConflictingGatewayAnalyzer"),
        ["IST0145", "IST0145"]
    );
    let other_host = format!(
        "{good}{}",
        gw("b", "istio: ingressgateway", 443, "b.example.org", "cert")
    );
    assert_clean(&other_host, "gateway.ConflictingGatewayAnalyzer");
}

#[test]
fn virtual_service_gateway_binding_and_hosts() {
    let base = "apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {name: gw, namespace: shop}\nspec:\n  selector: {istio: ingressgateway}\n  servers:\n  - port: {number: 80, name: http, protocol: HTTP}\n    hosts: [\"shop/*.example.com\"]\n";
    let vs = |gw: &str, host: &str| {
        format!("{base}---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\nspec:\n  hosts: [\"{host}\"]\n  gateways: [{gw}]\n  http: [{{route: [{{destination: {{host: web}}}}]}}]\n")
    };
    assert_clean(
        &vs("gw", "www.example.com"),
        "virtualservice.GatewayAnalyzer",
    );
    assert_clean(
        &vs("shop/gw", "www.example.com"),
        "virtualservice.GatewayAnalyzer",
    );
    let codes = |yaml: &str| crate::codes(yaml, "virtualservice.GatewayAnalyzer");
    assert_eq!(codes(&vs("other/gw", "www.example.com")), ["IST0101"]);
    assert_eq!(codes(&vs("gw", "www.example.org")), ["IST0132"]);
}

#[test]
fn conflicting_mesh_hosts() {
    let vs = |name: &str, ns: &str, host: &str, export: &str| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: {name}, namespace: {ns}}}\nspec:\n  hosts: [{host}]\n  exportTo: [{export}]\n  http: [{{route: [{{destination: {{host: web}}}}]}}]\n")
    };
    let a = "virtualservice.ConflictingMeshGatewayHostsAnalyzer";
    let clash = format!(
        "{}{}",
        vs("a", "shop", "web", "\"*\""),
        vs("b", "shop", "web.shop.svc.cluster.local", "\"*\"")
    );
    assert_eq!(found(&clash, a).len(), 2, "{:?}", found(&clash, a));
    // Different hosts, or each kept to its own namespace: no conflict.
    assert_clean(
        &format!(
            "{}{}",
            vs("a", "shop", "web", "\"*\""),
            vs("b", "shop", "api", "\"*\"")
        ),
        a,
    );
    assert_clean(
        &format!(
            "{}{}",
            vs("a", "one", "x.example.com", "."),
            vs("b", "two", "x.example.com", ".")
        ),
        a,
    );
}

#[test]
fn unreachable_rules_and_repeated_matches() {
    let vs = |http: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\nspec:\n  hosts: [web]\n  http:\n{http}")
    };
    let a = "virtualservice.UnreachableRulesAnalyzer";
    let codes = |yaml: &str| crate::codes(yaml, a);
    assert_clean(&vs("  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: a}}]\n  - route: [{destination: {host: b}}]\n"), a);
    assert_eq!(codes(&vs("  - route: [{destination: {host: b}}]\n  - match: [{uri: {prefix: /a}}]\n    route: [{destination: {host: a}}]\n")), ["IST0130"]);
    assert_eq!(codes(&vs("  - match: [{uri: {prefix: /}}]\n    route: [{destination: {host: b}}]\n  - route: [{destination: {host: a}}]\n")), ["IST0130"]);
    assert_eq!(codes(&vs("  - match: [{uri: {exact: /x}}]\n    route: [{destination: {host: a}}]\n  - match: [{uri: {exact: /x}}, {uri: {exact: /y}}]\n    route: [{destination: {host: b}}]\n")), ["IST0131"]);
    assert_eq!(codes(&vs("  - match: [{uri: {exact: /x}}]\n    route: [{destination: {host: a}}]\n  - match: [{name: again, uri: {exact: /x}}]\n    route: [{destination: {host: b}}]\n")), ["IST0130"]);
}

#[test]
fn regexes_and_jwt_claim_routes() {
    let vs = |re: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\nspec:\n  hosts: [web]\n  http:\n  - match: [{{uri: {{regex: \"{re}\"}}}}]\n    route: [{{destination: {{host: a}}}}]\n")
    };
    assert_clean(&vs("^/api/[0-9]+$"), "virtualservice.RegexAnalyzer");
    assert_eq!(
        found(&vs("(unclosed"), "virtualservice.RegexAnalyzer"),
        ["IST0122 VirtualService shop/web:7"]
    );

    let setup = format!("{}---\napiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: shop}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers: [{{port: {{number: 80, name: http, protocol: HTTP}}, hosts: [\"*\"]}}]\n---\napiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: claims, namespace: shop}}\nspec:\n  hosts: [\"*\"]\n  gateways: [gw]\n  http:\n  - match: [{{headers: {{\"@request.auth.claims.groups\": {{exact: admin}}}}}}]\n    route: [{{destination: {{host: admin}}}}]\n", deployment("gw", "istio: ingressgateway", ""));
    let a = "virtualservice.JWTClaimRouteAnalyzer";
    assert_eq!(run_with(&setup, a, false)[0].kind.code, "IST0149");
    let ra = format!("{setup}---\napiVersion: security.istio.io/v1\nkind: RequestAuthentication\nmetadata: {{name: jwt, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{istio: ingressgateway}}}}\n  jwtRules: [{{issuer: x}}]\n");
    assert_clean(&ra, a);
}

#[test]
fn destination_rule_tls_verification_and_subset_pods() {
    let dr = |tls: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: ext, namespace: shop}}\nspec:\n  host: api.example.com\n  trafficPolicy:\n    tls: {tls}\n    portLevelSettings:\n    - port: {{number: 8443}}\n      tls: {tls}\n")
    };
    let a = "destinationrule.CaCertificateAnalyzer";
    assert_eq!(codes(&dr("{mode: SIMPLE}"), a), ["IST0128", "IST0129"]);
    assert_clean(&dr("{mode: SIMPLE, caCertificates: /etc/ca.pem}"), a);
    assert_clean(&dr("{mode: ISTIO_MUTUAL}"), a);

    let base = format!(
        "{NS}{}{}",
        service("web", "app: web", "[{name: http, port: 80}]"),
        deployment("web", "app: web, version: v1", "")
    );
    let subsets = |labels: &str| {
        format!("{base}---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web, namespace: shop}}\nspec:\n  host: web\n  subsets:\n  - name: s\n    labels: {{{labels}}}\n")
    };
    assert_clean(
        &subsets("version: v1"),
        "destinationrule.SubsetPodsAnalyzer",
    );
    assert_eq!(
        codes(
            &subsets("version: v2"),
            "destinationrule.SubsetPodsAnalyzer"
        ),
        ["MSH0001"]
    );
}

#[test]
fn mtls_conflict_between_strict_and_disabled_tls() {
    let base = format!("{NS}{}{}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: default, namespace: shop}}\nspec: {{mtls: {{mode: MODE}}}}\n---\napiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: web, namespace: shop}}\nspec:\n  host: web\n  trafficPolicy: {{tls: {{mode: DISABLE}}}}\n", service("web", "app: web", "[{name: http, port: 80}]"), deployment("web", "app: web", ""));
    let a = "peerauthentication.MtlsConflictAnalyzer";
    assert_eq!(
        run_with(&base.replace("MODE", "STRICT"), a, false)[0]
            .kind
            .code,
        "IST0113"
    );
    assert_clean(&base.replace("MODE", "PERMISSIVE"), a);
    // Mesh-wide STRICT from the root namespace applies too.
    let mesh_wide = base
        .replace("MODE", "PERMISSIVE")
        .replace(
            "{name: default, namespace: shop}",
            "{name: default, namespace: mesh-system}",
        )
        .replace("PERMISSIVE", "STRICT");
    assert_eq!(run_with(&mesh_wide, a, false).len(), 1);
}

#[test]
fn service_ports_and_services_sharing_pods() {
    let a = "service.PortNameAnalyzer";
    let svc = |ports: &str| format!("{NS}{}", service("web", "app: web", ports));
    assert_clean(&svc("[{name: http, port: 80}, {name: grpc-api, port: 90}, {name: x, port: 91, appProtocol: https}, {name: dns, port: 53, protocol: UDP}]"), a);
    assert_eq!(
        codes(
            &svc("[{name: web, port: 80}, {port: 81}, {name: y, port: 82, appProtocol: magic}]"),
            a
        ),
        ["IST0118", "IST0118", "IST0118"]
    );

    let b = "deployment.MultiServiceAnalyzer";
    let two = |p1: &str, p2: &str| {
        format!(
            "{NS}{}{}{}",
            deployment("web", "app: web", ""),
            service("a", "app: web", p1),
            service("b", "app: web", p2)
        )
    };
    assert_clean(
        &two(
            "[{name: http, port: 80, targetPort: 8080}]",
            "[{name: http-alt, port: 80, targetPort: 8080}]",
        ),
        b,
    );
    assert_eq!(
        codes(
            &two(
                "[{name: http, port: 80, targetPort: 8080}]",
                "[{name: tcp, port: 80, targetPort: 8080}]"
            ),
            b
        ),
        ["IST0116"]
    );
    assert_eq!(
        codes(
            &two(
                "[{name: http, port: 80, targetPort: http}]",
                "[{name: http, port: 81, targetPort: 8080}]"
            ),
            b
        ),
        ["IST0137"]
    );
}

#[test]
fn injection_labels_pods_and_opt_outs() {
    let a = "injection.Analyzer";
    let codes = |yaml: &str| crate::codes(yaml, a);
    assert_clean(NS, a);
    assert_eq!(
        codes("apiVersion: v1\nkind: Namespace\nmetadata: {name: plain}\n"),
        ["IST0102"]
    );
    assert_eq!(codes("apiVersion: v1\nkind: Namespace\nmetadata: {name: both, labels: {istio-injection: enabled, istio.io/rev: canary}}\n"), ["IST0123"]);
    // System and mesh namespaces are not asked to be injected.
    assert_clean("apiVersion: v1\nkind: Namespace\nmetadata: {name: kube-system}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: mesh-system}\n", a);
    let pod = |meta: &str, containers: &str| {
        format!("{NS}---\napiVersion: v1\nkind: Pod\nmetadata: {{name: p, namespace: shop, uid: u1{meta}}}\nspec:\n  containers: {containers}\n")
    };
    assert_eq!(codes(&pod("", "[{name: app, image: a}]")), ["IST0103"]);
    assert_clean(
        &pod("", "[{name: app, image: a}, {name: istio-proxy, image: p}]"),
        a,
    );
    // The pod's opt-out is respected, whether label or annotation.
    assert_clean(
        &pod(
            ", labels: {sidecar.istio.io/inject: \"false\"}",
            "[{name: app, image: a}]",
        ),
        a,
    );
    assert_clean(
        &pod(
            ", annotations: {sidecar.istio.io/inject: \"false\"}",
            "[{name: app, image: a}]",
        ),
        a,
    );
    // A pod manifest never created is injected when it is.
    assert_clean(
        &pod("", "[{name: app, image: a}]").replace(", uid: u1", ""),
        a,
    );
    let both = pod(", labels: {sidecar.istio.io/inject: \"true\"}, annotations: {sidecar.istio.io/inject: \"false\"}", "[{name: app, image: a}, {name: istio-proxy, image: p}]");
    assert_eq!(codes(&both), ["MSH0003"]);
}

#[test]
fn annotations_unknown_misplaced_deprecated_invalid() {
    let a = "annotations.K8sAnalyzer";
    let dep = |meta: &str, tmpl: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\n  annotations: {{{meta}}}\nspec:\n  template:\n    metadata:\n      annotations: {{{tmpl}}}\n    spec: {{containers: [{{name: a, image: a}}]}}\n")
    };
    assert_clean(&dep("deployment.kubernetes.io/revision: \"1\"", "sidecar.istio.io/inject: \"true\", sidecar.istio.io/proxyCPU: 100m, traffic.sidecar.istio.io/excludeOutboundPorts: \"5432\""), a);
    let codes = |yaml: &str| crate::codes(yaml, a);
    assert_eq!(
        codes(&dep("sidecar.istio.io/inject: \"false\"", "")),
        ["IST0107"]
    );
    assert_eq!(
        codes(&dep("", "sidecar.istio.io/injekt: \"false\"")),
        ["IST0108"]
    );
    assert_eq!(
        codes(&dep("", "sidecar.istio.io/statsInclusionPrefixes: x")),
        ["IST0135"]
    );
    assert_eq!(
        codes(&dep("", "sidecar.istio.io/proxyMemory: lots")),
        ["IST0125"]
    );
    assert_eq!(
        codes(&dep(
            "",
            "traffic.sidecar.istio.io/includeOutboundIPRanges: 10.0.0.0/33"
        )),
        ["IST0125"]
    );
}

#[test]
fn application_uid_1337() {
    let a = "deployment.ApplicationUIDAnalyzer";
    let dep = |sc: &str| {
        format!("apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: web, namespace: shop}}\nspec:\n  template:\n    spec:\n      containers:\n      - name: app\n        image: a\n        securityContext: {{runAsUser: {sc}}}\n      - name: istio-proxy\n        image: p\n        securityContext: {{runAsUser: 1337}}\n")
    };
    assert_clean(&dep("1000"), a);
    assert_eq!(found(&dep("1337"), a), ["IST0144 Deployment shop/web:10"]);
    // The mesh's own components run as 1337 by design.
    let meshd = dep("1337").replace(
        "{name: web, namespace: shop}",
        "{name: meshd, namespace: mesh-system, labels: {install.meshctl.dev/component: control-plane}}",
    );
    assert_clean(&meshd, a);
}

#[test]
fn schema_validation_against_the_crds() {
    let a = "schema.ValidationAnalyzer";
    let gw = |port: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: Gateway\nmetadata: {{name: gw, namespace: shop}}\nspec:\n  selector: {{istio: ingressgateway}}\n  servers:\n  - port:\n      number: {port}\n      name: http\n      protocol: HTTP\n    hosts: [\"*\"]\n")
    };
    assert_clean(&gw("80"), a);
    assert_eq!(found(&gw("eighty"), a), ["IST0106 Gateway shop/gw:8"]);
    let bad_enum = "apiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {name: p, namespace: shop}\nspec:\n  mtls:\n    mode: STRICTEST\n";
    let m = &run_with(bad_enum, a, false)[0];
    assert!(m.text.contains("\"STRICTEST\" is not one of"), "{}", m.text);
    assert_eq!(m.origin.as_ref().unwrap().line, 6);
    // WorkloadEntries are validated too, though no other analyzer reads them.
    let we = "apiVersion: networking.istio.io/v1\nkind: WorkloadEntry\nmetadata: {name: vm, namespace: shop}\nspec:\n  address: 10.0.0.1\n  weigth: 3\n";
    assert_eq!(found(we, a), ["IST0106 WorkloadEntry shop/vm:6"]);
    // What the schema lets through but meshd's validation webhook refuses: two subsets of one
    // name, reported at the field.
    let dr = |second: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata: {{name: r, namespace: shop}}\nspec:\n  host: reviews\n  subsets:\n  - name: v1\n    labels: {{version: v1}}\n  - name: {second}\n    labels: {{version: v2}}\n")
    };
    assert_clean(&dr("v2"), a);
    let m = &run_with(&dr("v1"), a, false)[0];
    assert_eq!(m.kind.code, "IST0106");
    assert!(m.text.contains("spec.subsets[1].name"), "{}", m.text);
    assert!(m.text.contains("validation webhook"), "{}", m.text);
}

#[test]
fn sidecar_selectors() {
    let sc = |name: &str, sel: &str| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: Sidecar\nmetadata: {{name: {name}, namespace: shop}}\nspec: {sel}\n")
    };
    let base = deployment("web", "app: web", "");
    let d = "sidecar.DefaultSelectorAnalyzer";
    assert_clean(
        &format!(
            "{base}{}{}",
            sc("a", "{}"),
            sc("b", "{workloadSelector: {labels: {app: web}}}")
        ),
        d,
    );
    assert_eq!(
        codes(&format!("{base}{}{}", sc("a", "{}"), sc("b", "{}")), d),
        ["IST0111", "IST0111"]
    );
    let s = "sidecar.SelectorAnalyzer";
    assert_clean(
        &format!(
            "{base}{}",
            sc("b", "{workloadSelector: {labels: {app: web}}}")
        ),
        s,
    );
    assert_eq!(
        codes(
            &format!(
                "{base}{}",
                sc("b", "{workloadSelector: {labels: {app: nope}}}")
            ),
            s
        ),
        ["IST0101"]
    );
    assert_eq!(
        codes(
            &format!(
                "{base}{}{}",
                sc("a", "{workloadSelector: {labels: {app: web}}}"),
                sc("b", "{workloadSelector: {labels: {app: web}}}")
            ),
            s
        ),
        ["IST0110", "IST0110"]
    );
}

#[test]
fn authorization_policy_references() {
    let a = "authz.AuthorizationPoliciesAnalyzer";
    let base = format!("{NS}{}---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: web, namespace: shop}}\n", deployment("web", "app: web", ""));
    let ap = |sel: &str, source: &str| {
        format!("{base}---\napiVersion: security.istio.io/v1\nkind: AuthorizationPolicy\nmetadata: {{name: ap, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{{sel}}}}}\n  rules:\n  - from:\n    - source: {source}\n")
    };
    assert_clean(&ap("app: web", "{principals: [cluster.local/ns/shop/sa/web, cluster.local/ns/shop/sa/default, \"*\"], namespaces: [shop]}"), a);
    let codes = |yaml: &str| crate::codes(yaml, a);
    assert_eq!(codes(&ap("app: nope", "{namespaces: [shop]}")), ["IST0127"]);
    assert_eq!(codes(&ap("app: web", "{namespaces: [shopp]}")), ["IST0101"]);
    assert_eq!(
        codes(&ap(
            "app: web",
            "{principals: [cluster.local/ns/shop/sa/wbe]}"
        )),
        ["IST0101"]
    );
    assert_eq!(
        codes(&ap("app: web", "{serviceAccounts: [ghost/web]}")),
        ["IST0101"]
    );
}

#[test]
fn service_entries() {
    let se = |name: &str, addresses: &str, protocol: &str| {
        format!("---\napiVersion: networking.istio.io/v1\nkind: ServiceEntry\nmetadata: {{name: {name}, namespace: shop}}\nspec:\n  hosts: [db.example.com]\n  addresses: [{addresses}]\n  ports: [{{number: 5432, name: db, protocol: {protocol}}}]\n")
    };
    let addr = "serviceentry.ProtocolAddressesAnalyzer";
    assert_clean(&se("a", "10.0.0.1", "TCP"), addr);
    assert_clean(&se("a", "", "TLS"), addr);
    assert_eq!(codes(&se("a", "", "TCP"), addr), ["IST0134"]);
    let proto = "serviceentry.ConflictingProtocolsAnalyzer";
    assert_clean(
        &format!(
            "{}{}",
            se("a", "10.0.0.1", "TLS"),
            se("b", "10.0.0.1", "TLS")
        ),
        proto,
    );
    assert_eq!(
        codes(
            &format!(
                "{}{}",
                se("a", "10.0.0.1", "TLS"),
                se("b", "10.0.0.1", "TCP")
            ),
            proto
        ),
        ["MSH0002", "MSH0002"]
    );
}

#[test]
fn policy_workload_selectors() {
    let a = "workloadselector.PolicySelectorAnalyzer";
    let pa = |sel: &str| {
        format!("{}---\napiVersion: security.istio.io/v1\nkind: PeerAuthentication\nmetadata: {{name: p, namespace: shop}}\nspec:\n  selector: {{matchLabels: {{{sel}}}}}\n  mtls: {{mode: STRICT}}\n", deployment("web", "app: web", ""))
    };
    assert_clean(&pa("app: web"), a);
    assert_eq!(found(&pa("app: wbe"), a).len(), 1);
}

#[test]
fn deprecated_fields() {
    let a = "deprecation.FieldAnalyzer";
    let vs = |extra: &str| {
        format!("apiVersion: networking.istio.io/v1\nkind: VirtualService\nmetadata: {{name: web, namespace: shop}}\nspec:\n  hosts: [web]\n  http:\n  - route: [{{destination: {{host: a}}}}]\n    mirror: {{host: b}}\n{extra}")
    };
    assert_clean(&vs("    mirrorPercentage: {value: 5}\n"), a);
    assert_eq!(
        found(&vs("    mirrorPercent: 5\n"), a),
        ["IST0002 VirtualService shop/web:9"]
    );
}

#[test]
fn the_suppress_annotation_silences_one_resource() {
    let ns = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: plain\n  annotations: {galley.istio.io/analyze-suppress: \"IST0102\"}\n";
    assert_clean(ns, "injection.Analyzer");
}
