//! Routing with VirtualService meaning, through a real proxy process on loopback, to real
//! upstream servers: matches, weights and subsets, rewrite, redirect, headers, direct
//! response, CORS, fault injection, mirroring.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::backend;
use support::client::{self, get};
use support::{free_port, Proxy};

fn listener(port: u16) -> String {
    format!("listeners:\n  - name: local\n    address: 127.0.0.1:{port}\n")
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// A service `NAME.test.svc.cluster.local` (alias NAME) with the given (port, labels) endpoints.
fn service(name: &str, endpoints: &[(u16, &str)]) -> String {
    let mut s = format!(
        "  - host: {name}.test.svc.cluster.local\n    aliases: [{name}]\n    ports: [{{number: 80, name: http}}]\n    endpoints:\n"
    );
    for (port, labels) in endpoints {
        s.push_str(&format!(
            "      - {{address: 127.0.0.1, port: {port}, labels: {{{labels}}}}}\n"
        ));
    }
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matches_pick_the_first_route_whose_conditions_hold() {
    let a = backend::start("a").await;
    let b = backend::start("b").await;
    let port = free_port();
    let cfg = format!(
        "{}node:\n  labels: {{app: caller, version: v7}}\nservices:\n{}{}virtualServices:
  - hosts: [a.test.svc.cluster.local]
    http:
      - name: exact
        match: [{{uri: {{exact: /exact}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: regex-and-method
        match: [{{uri: {{regex: '/items/[0-9]+'}}, method: {{exact: POST}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: header-exact-prefix-regex
        match:
          - headers: {{x-user: {{exact: jason}}}}
          - headers: {{x-team: {{prefix: blue}}}}
          - headers: {{x-id: {{regex: 'id-[a-z]{{3}}'}}}}
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: present
        match: [{{headers: {{x-canary: {{}}}}, withoutHeaders: {{x-skip: {{}}}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: query
        match: [{{queryParams: {{mode: {{exact: beta}}}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: authority
        match: [{{authority: {{prefix: a.test}}, uri: {{prefix: /auth}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: ignore-case
        match: [{{uri: {{prefix: /CaSe}}, ignoreUriCase: true}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: port
        match: [{{port: {port}, uri: {{prefix: /port}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: other-port
        match: [{{port: 1, uri: {{prefix: /otherport}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: source-labels-mine
        match: [{{sourceLabels: {{app: caller}}, uri: {{prefix: /src}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: source-labels-other
        match: [{{sourceLabels: {{app: someone-else}}, uri: {{prefix: /notsrc}}}}]
        route: [{{destination: {{host: b.test.svc.cluster.local}}}}]
      - name: default
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
",
        listener(port),
        service("a", &[(a.port(), "")]),
        service("b", &[(b.port(), "")]),
    );
    let _p = Proxy::start(&cfg);
    let px = addr(port);
    let to = |r: client::Resp| r.backend().unwrap_or("none").to_owned();
    assert_eq!(to(client::send(px, get("a", "/exact")).await), "b");
    assert_eq!(
        to(client::send(px, get("a", "/exact/more")).await),
        "a",
        "exact is exact"
    );
    assert_eq!(
        to(client::send(px, get("a", "/items/42").method("POST")).await),
        "b"
    );
    assert_eq!(
        to(client::send(px, get("a", "/items/42")).await),
        "a",
        "method must match too"
    );
    assert_eq!(
        to(client::send(px, get("a", "/items/42x").method("POST")).await),
        "a",
        "regex is anchored"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-user", "jason")).await),
        "b"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-user", "jasonx")).await),
        "a"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-team", "blue-7")).await),
        "b"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-id", "id-abc")).await),
        "b"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-id", "id-abcd")).await),
        "a"
    );
    assert_eq!(
        to(client::send(px, get("a", "/").header("x-canary", "")).await),
        "b",
        "present"
    );
    assert_eq!(
        to(client::send(
            px,
            get("a", "/").header("x-canary", "1").header("x-skip", "1")
        )
        .await),
        "a",
        "withoutHeaders"
    );
    assert_eq!(to(client::send(px, get("a", "/?x=1&mode=beta")).await), "b");
    assert_eq!(to(client::send(px, get("a", "/?mode=alpha")).await), "a");
    assert_eq!(
        to(client::send(px, get("a.test.svc.cluster.local", "/auth")).await),
        "b"
    );
    assert_eq!(
        to(client::send(px, get("a", "/auth")).await),
        "a",
        "authority prefix"
    );
    assert_eq!(
        to(client::send(px, get("a", "/case/x")).await),
        "b",
        "ignoreUriCase"
    );
    assert_eq!(to(client::send(px, get("a", "/port")).await), "b");
    assert_eq!(to(client::send(px, get("a", "/otherport")).await), "a");
    assert_eq!(
        to(client::send(px, get("a", "/src")).await),
        "b",
        "this node has app=caller"
    );
    assert_eq!(to(client::send(px, get("a", "/notsrc")).await), "a");
    // Host names: the alias, the FQDN and with a port all reach the same routes.
    assert_eq!(to(client::send(px, get("a:80", "/exact")).await), "b");
    let r = client::send(px, get("nobody", "/")).await;
    assert_eq!(r.status, 404, "unknown host on a plain listener: no route");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weighted_destinations_across_subsets() {
    let v1 = backend::start("v1").await;
    let v2 = backend::start("v2").await;
    let port = free_port();
    let cfg = format!(
        "{}services:\n{}destinationRules:
  - host: r.test.svc.cluster.local
    subsets:
      - {{name: v1, labels: {{version: v1}}}}
      - {{name: v2, labels: {{version: v2}}}}
virtualServices:
  - hosts: [r.test.svc.cluster.local]
    http:
      - match: [{{uri: {{prefix: /only-v2}}}}]
        route: [{{destination: {{host: r.test.svc.cluster.local, subset: v2}}}}]
      - route:
          - {{destination: {{host: r.test.svc.cluster.local, subset: v1}}, weight: 75}}
          - {{destination: {{host: r.test.svc.cluster.local, subset: v2}}, weight: 25}}
",
        listener(port),
        service(
            "r",
            &[(v1.port(), "version: v1"), (v2.port(), "version: v2")]
        ),
    );
    let _p = Proxy::start(&cfg);
    let px = addr(port);
    for _ in 0..10 {
        assert_eq!(
            client::send(px, get("r", "/only-v2")).await.backend(),
            Some("v2")
        );
    }
    let (mut n1, mut n2) = (0, 0);
    let mut conn = client::H1::connect(px).await;
    for _ in 0..400 {
        match conn.send(get("r", "/")).await.backend() {
            Some("v1") => n1 += 1,
            Some("v2") => n2 += 1,
            other => panic!("unexpected backend {other:?}"),
        }
    }
    // 75/25 of 400: v2 expects 100 (sd ≈ 8.7); these bounds are > 5 sd away.
    assert!((55..=145).contains(&n2), "v1={n1} v2={n2}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewrite_redirect_direct_response_and_header_changes() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = format!(
        "{}services:\n{}virtualServices:
  - hosts: [a.test.svc.cluster.local]
    http:
      - match: [{{uri: {{prefix: /old}}}}]
        rewrite: {{uri: /new, authority: rewritten.example}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - match: [{{uri: {{prefix: /re/}}}}]
        rewrite: {{uriRegexRewrite: {{match: '^/re/([a-z]+)/(.*)$', rewrite: '/\\2/\\1'}}}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - match: [{{uri: {{exact: /moved}}}}]
        redirect: {{uri: /here, authority: other.example, redirectCode: 308}}
      - match: [{{uri: {{exact: /moved-port}}}}]
        redirect: {{uri: /p, port: 8443, scheme: https}}
      - match: [{{uri: {{exact: /teapot}}}}]
        directResponse: {{status: 418, body: {{string: short and stout}}}}
        headers: {{response: {{set: {{x-direct: 'yes'}}}}}}
      - headers:
          request:
            set: {{x-set: route}}
            add: {{x-added: one}}
            remove: [x-secret]
          response:
            set: {{x-resp: set}}
            remove: [x-from-backend]
        route:
          - destination: {{host: a.test.svc.cluster.local}}
            headers: {{request: {{set: {{x-dest: d1}}}}, response: {{add: {{x-dest-resp: r1}}}}}}
",
        listener(port),
        service("a", &[(a.port(), "")]),
    );
    let _p = Proxy::start(&cfg);
    let px = addr(port);

    let r = client::send(px, get("a", "/old/thing?q=1")).await;
    assert_eq!(r.status, 200);
    let seen = a.last().unwrap();
    assert_eq!(
        seen.path, "/new/thing?q=1",
        "prefix rewritten, rest and query kept"
    );
    assert_eq!(seen.headers.get("host").unwrap(), "rewritten.example");

    client::send(px, get("a", "/re/abc/rest")).await;
    assert_eq!(a.last().unwrap().path, "/rest/abc");

    let r = client::send(px, get("a", "/moved?x=1")).await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("http://other.example/here?x=1"));
    let r = client::send(px, get("a:80", "/moved-port")).await;
    assert_eq!(r.status, 301);
    assert_eq!(r.header("location"), Some("https://a:8443/p"));

    let before = a.count();
    let r = client::send(px, get("a", "/teapot")).await;
    assert_eq!((r.status, r.body.as_str()), (418, "short and stout"));
    assert_eq!(r.header("x-direct"), Some("yes"));
    assert_eq!(
        a.count(),
        before,
        "a direct response never reaches the upstream"
    );

    let r = client::send(
        px,
        get("a", "/h")
            .header("x-secret", "s")
            .header("x-added", "zero"),
    )
    .await;
    let seen = a.last().unwrap();
    assert_eq!(seen.headers.get("x-set").unwrap(), "route");
    assert_eq!(seen.headers.get("x-dest").unwrap(), "d1");
    let added: Vec<_> = seen
        .headers
        .get_all("x-added")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect();
    assert_eq!(added, ["zero", "one"]);
    assert!(seen.headers.get("x-secret").is_none());
    assert_eq!(r.header("x-resp"), Some("set"));
    assert_eq!(r.header("x-dest-resp"), Some("r1"));
    assert!(
        r.header("x-from-backend").is_none(),
        "response header removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_preflight_and_actual_requests() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = format!(
        "{}services:\n{}virtualServices:
  - hosts: [a.test.svc.cluster.local]
    http:
      - corsPolicy:
          allowOrigins: [{{exact: 'https://ok.example'}}, {{regex: 'https://.*\\.good\\.example'}}]
          allowMethods: [GET, POST]
          allowHeaders: [x-custom]
          exposeHeaders: [x-exposed]
          maxAge: 24h
          allowCredentials: true
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
",
        listener(port),
        service("a", &[(a.port(), "")]),
    );
    let _p = Proxy::start(&cfg);
    let px = addr(port);
    let before = a.count();
    let r = client::send(
        px,
        get("a", "/x")
            .method("OPTIONS")
            .header("origin", "https://ok.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://ok.example")
    );
    assert_eq!(r.header("access-control-allow-methods"), Some("GET,POST"));
    assert_eq!(r.header("access-control-allow-headers"), Some("x-custom"));
    assert_eq!(r.header("access-control-max-age"), Some("86400"));
    assert_eq!(r.header("access-control-allow-credentials"), Some("true"));
    assert_eq!(
        a.count(),
        before,
        "an allowed preflight is answered by the proxy"
    );

    let r = client::send(
        px,
        get("a", "/x")
            .method("OPTIONS")
            .header("origin", "https://evil.example")
            .header("access-control-request-method", "POST"),
    )
    .await;
    assert!(r.header("access-control-allow-origin").is_none());
    assert_eq!(
        a.count(),
        before + 1,
        "a preflight from another origin goes upstream"
    );

    let r = client::send(
        px,
        get("a", "/x").header("origin", "https://app.good.example"),
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://app.good.example")
    );
    assert_eq!(r.header("access-control-expose-headers"), Some("x-exposed"));
    let r = client::send(px, get("a", "/x").header("origin", "https://evil.example")).await;
    assert!(r.header("access-control-allow-origin").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fault_injection_aborts_and_delays_by_percentage() {
    let a = backend::start("a").await;
    let port = free_port();
    let cfg = format!(
        "{}services:\n{}virtualServices:
  - hosts: [a.test.svc.cluster.local]
    http:
      - match: [{{uri: {{prefix: /abort}}}}]
        fault: {{abort: {{httpStatus: 418, percentage: {{value: 100}}}}}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - match: [{{uri: {{prefix: /never}}}}]
        fault: {{abort: {{httpStatus: 500, percentage: {{value: 0}}}}}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - match: [{{uri: {{prefix: /half}}}}]
        fault: {{abort: {{httpStatus: 503, percentage: {{value: 50}}}}}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - match: [{{uri: {{prefix: /delay}}}}]
        fault: {{delay: {{fixedDelay: 400ms, percentage: {{value: 100}}}}}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
",
        listener(port),
        service("a", &[(a.port(), "")]),
    );
    let p = Proxy::start(&cfg);
    let px = addr(port);
    let before = a.count();
    for _ in 0..5 {
        assert_eq!(client::send(px, get("a", "/abort")).await.status, 418);
    }
    assert_eq!(
        a.count(),
        before,
        "aborted requests never reach the upstream"
    );
    for _ in 0..5 {
        assert_eq!(client::send(px, get("a", "/never")).await.status, 200);
    }
    let mut aborted = 0;
    for _ in 0..200 {
        if client::send(px, get("a", "/half")).await.status == 503 {
            aborted += 1;
        }
    }
    assert!(
        (60..=140).contains(&aborted),
        "50% abort gave {aborted}/200"
    );
    let t = Instant::now();
    assert_eq!(client::send(px, get("a", "/delay")).await.status, 200);
    assert!(
        t.elapsed() >= Duration::from_millis(400),
        "the delay was injected"
    );
    assert!(support::eventually(Duration::from_secs(2), || {
        p.metric(
            "istio_requests_total",
            &[("response_code", "418"), ("response_flags", "FI")],
        ) == 5.0
            && p.metric("istio_requests_total", &[("response_flags", "DI")]) == 1.0
    }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mirroring_sends_a_copy_and_ignores_its_answer() {
    let a = backend::start("a").await;
    let shadow = backend::start("shadow").await;
    let port = free_port();
    let cfg = format!(
        "{}services:\n{}{}virtualServices:
  - hosts: [a.test.svc.cluster.local]
    http:
      - match: [{{uri: {{prefix: /none}}}}]
        mirror: {{host: m.test.svc.cluster.local}}
        mirrorPercentage: {{value: 0}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
      - mirror: {{host: m.test.svc.cluster.local}}
        route: [{{destination: {{host: a.test.svc.cluster.local}}}}]
",
        listener(port),
        service("a", &[(a.port(), "")]),
        service("m", &[(shadow.port(), "")]),
    );
    let _p = Proxy::start(&cfg);
    let px = addr(port);
    let r = client::send(
        px,
        get("a", "/copy?status=200").method("POST").body("payload"),
    )
    .await;
    assert_eq!(r.backend(), Some("a"));
    assert!(support::eventually(Duration::from_secs(3), || shadow
        .count()
        == 1));
    let m = shadow.last().unwrap();
    assert_eq!(m.headers.get("host").unwrap(), "a-shadow");
    assert_eq!(&m.body[..], b"payload");
    assert_eq!(m.method, "POST");
    for _ in 0..5 {
        client::send(px, get("a", "/none")).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(shadow.count(), 1, "0% mirrors nothing");
}
