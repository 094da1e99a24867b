//! The roles as real processes on loopback ports: productpage aggregates details and reviews,
//! carries the tracing headers through two hops, and answers 502 naming a failing upstream.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

struct Role {
    child: Child,
    port: u16,
    logs: mpsc::Receiver<String>,
}

impl Role {
    /// Starts `mesh-sample ARGS --port 0` and waits for the line naming its port.
    fn start(args: &[&str]) -> Role {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mesh-sample"))
            .args(args)
            .args(["--port", "0"])
            .env("HOSTNAME", format!("{}-pod", args[0]))
            .stdout(Stdio::piped())
            .spawn()
            .expect("start mesh-sample");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let first = lines.next().expect("a first line").expect("read stdout");
        let port = first
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("no port in {first:?}"));
        let (tx, logs) = mpsc::channel();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        Role { child, port, logs }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn logged(&self, needle: &str) -> bool {
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) {
            match self.logs.recv_timeout(left) {
                Ok(line) if line.contains(needle) => return true,
                Ok(_) => {}
                Err(_) => return false,
            }
        }
        false
    }
}

impl Drop for Role {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A plain HTTP/1.1 GET, so the test does not share the client it is testing.
fn get(port: u16, path: &str, headers: &[(&str, &str)]) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .expect("timeout");
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send");
    let mut resp = String::new();
    stream.read_to_string(&mut resp).expect("read");
    let status = resp[9..12].parse().expect("status");
    let body = resp.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    (status, body.to_owned())
}

fn json(body: &str) -> Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

/// A port nothing listens on.
fn closed_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

#[test]
fn productpage_aggregates_details_and_reviews_and_propagates_tracing_headers() {
    let ratings = Role::start(&["ratings"]);
    let details = Role::start(&["details"]);
    let reviews = Role::start(&["reviews", "--version", "v2", "--ratings", &ratings.url()]);
    let page = Role::start(&[
        "productpage",
        "--details",
        &details.url(),
        "--reviews",
        &reviews.url(),
    ]);
    let tracing = [
        ("x-request-id", "req-42"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
        ("tracestate", "mesh=1"),
        ("x-b3-traceid", "4bf92f3577b34da6a3ce929d0e0e4736"),
        ("x-b3-spanid", "00f067aa0ba902b7"),
        ("x-b3-sampled", "1"),
    ];
    let (status, body) = get(page.port, "/productpage", &tracing);
    assert_eq!(status, 200, "{body}");
    let body = json(&body);
    assert_eq!(body["service"], "productpage");
    assert_eq!(body["details"]["service"], "details");
    assert_eq!(body["details"]["pod"], "details-pod");
    assert_eq!(body["reviews"]["service"], "reviews");
    assert_eq!(body["reviews_version"], "v2");
    assert_eq!(body["reviews"]["stars"], "black");
    // Two hops: productpage → reviews → ratings.
    for hop in [
        &body["details"],
        &body["reviews"],
        &body["reviews"]["ratings"],
    ] {
        for (name, value) in tracing {
            assert_eq!(hop["headers"][name], value, "{name} in {hop}");
        }
    }
    assert!(page.logged("GET /productpage 200"));
    assert!(details.logged("request_id=req-42"));
}

#[test]
fn productpage_answers_502_naming_the_failing_upstream() {
    let details = Role::start(&["details"]);
    let refused = format!("http://127.0.0.1:{}", closed_port());
    let page = Role::start(&[
        "productpage",
        "--details",
        &details.url(),
        "--reviews",
        &refused,
    ]);
    let (status, body) = get(page.port, "/productpage", &[]);
    assert_eq!(status, 502, "{body}");
    let body = json(&body);
    assert_eq!(body["upstream"], "reviews");
    assert!(
        body["error"]
            .as_str()
            .is_some_and(|e| e.starts_with("reviews: ")),
        "{body}"
    );

    // An upstream that answers, but not 2xx: details has no /reviews.
    let wrong = Role::start(&[
        "productpage",
        "--details",
        &details.url(),
        "--reviews",
        &details.url(),
    ]);
    let (status, body) = get(wrong.port, "/productpage", &[]);
    assert_eq!(status, 502, "{body}");
    let body = json(&body);
    assert_eq!(body["upstream"], "reviews");
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("404")),
        "{body}"
    );
}

#[test]
fn reviews_versions_say_who_answered() {
    for (version, stars) in [
        ("v1", Value::Null),
        ("v2", "black".into()),
        ("v3", "red".into()),
    ] {
        let reviews = Role::start(&["reviews", "--version", version]);
        let (status, body) = get(reviews.port, "/reviews", &[]);
        assert_eq!(status, 200);
        let body = json(&body);
        assert_eq!(body["version"], version);
        assert_eq!(body["stars"], stars);
        assert!(body["reviews"].is_array());
    }
}

#[test]
fn every_role_serves_root_and_healthz_and_exits_0_on_sigterm() {
    for args in [
        &["details"][..],
        &["ratings"],
        &["reviews", "--version", "v3"],
        &["productpage"],
    ] {
        let mut role = Role::start(args);
        assert_eq!(get(role.port, "/healthz", &[]), (200, "ok\n".to_owned()));
        let (status, body) = get(role.port, "/", &[]);
        assert_eq!(status, 200);
        assert_eq!(json(&body)["service"], args[0]);
        assert_eq!(get(role.port, "/nope", &[]).0, 404);

        let killed = Command::new("kill")
            .args(["-TERM", &role.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(killed.success());
        let status = role.child.wait().expect("wait");
        assert_eq!(status.code(), Some(0), "{args:?}");
    }
}

#[test]
fn bad_upstream_url_is_a_usage_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_mesh-sample"))
        .args(["productpage", "--details", "https://details:9080"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("want http://HOST[:PORT]"));
}
