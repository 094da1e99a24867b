//! What the proxy asks of its own application on behalf of the kubelet and Prometheus, as
//! Istio's agent does. Injection rewrites the application's HTTP probes to
//! `/app-health/<container>/<readyz|livez|startupz>` on the health port, because under STRICT
//! mutual TLS the kubelet's plain-text probe could no longer reach the application's port; and it
//! points Prometheus at the merged-metrics port (15020), which serves the proxy's metrics and the
//! application's own, so a pod is scraped once. What to probe and where the application's
//! metrics are come in the injected environment: `ISTIO_KUBE_APP_PROBERS` and
//! `ISTIO_PROMETHEUS_ANNOTATIONS`.

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use http::{HeaderName, HeaderValue, Request, StatusCode};
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;

pub const ENV_PROBERS: &str = "ISTIO_KUBE_APP_PROBERS";
pub const ENV_SCRAPE: &str = "ISTIO_PROMETHEUS_ANNOTATIONS";

/// The kubelet's own default.
const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Prometheus's default scrape timeout.
const METRICS_TIMEOUT: Duration = Duration::from_secs(10);

/// An HTTP endpoint of the application, reached over the pod's loopback.
#[derive(Debug, Clone, PartialEq)]
pub struct Endpoint {
    pub port: u16,
    pub path: String,
    /// The probe's `host`, where it names one; the pod's loopback otherwise.
    pub host: Option<String>,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Probe {
    Http {
        endpoint: Endpoint,
        timeout: Duration,
    },
    /// A probe the proxy cannot run, with the reason its answer gives.
    Refused(String),
}

/// The application's probes and metrics endpoint.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct App {
    probes: HashMap<String, Probe>,
    metrics: Option<Endpoint>,
}

/// What one request to the application came back with.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub body: Bytes,
}

impl App {
    /// From the injected environment; what cannot be used is logged and left out.
    pub fn from_env() -> App {
        let probers = std::env::var(ENV_PROBERS).ok();
        let scrape = std::env::var(ENV_SCRAPE).ok();
        let (app, problems) = App::parse(probers.as_deref(), scrape.as_deref());
        for problem in problems {
            tracing::warn!("{problem}");
        }
        app
    }

    /// Parses the two environment values; the second element lists what was left out and why.
    pub fn parse(probers: Option<&str>, scrape: Option<&str>) -> (App, Vec<String>) {
        let mut problems = Vec::new();
        let mut app = App::default();
        if let Some(text) = probers.filter(|t| !t.trim().is_empty()) {
            match serde_json::from_str::<serde_json::Map<String, Value>>(text) {
                Ok(map) => {
                    for (path, spec) in map {
                        let probe = probe(&spec).unwrap_or_else(|reason| {
                            problems.push(format!("{ENV_PROBERS}: {path}: {reason}"));
                            Probe::Refused(reason)
                        });
                        app.probes.insert(path, probe);
                    }
                }
                Err(e) => problems.push(format!(
                    "{ENV_PROBERS} is not a JSON object ({e}): the application's probes through the proxy will answer 404"
                )),
            }
        }
        if let Some(text) = scrape.filter(|t| !t.trim().is_empty()) {
            match serde_json::from_str::<serde_json::Map<String, Value>>(text) {
                Ok(map) => match metrics_endpoint(&map) {
                    Ok(endpoint) => app.metrics = endpoint,
                    Err(reason) => problems.push(format!("{ENV_SCRAPE}: {reason}")),
                },
                Err(e) => problems.push(format!(
                    "{ENV_SCRAPE} is not a JSON object ({e}): only the proxy's metrics are served on the merged port"
                )),
            }
        }
        (app, problems)
    }

    /// Runs the probe `path` names; `None` when no probe has that path.
    pub async fn probe(&self, path: &str) -> Option<Answer> {
        let answer = match self.probes.get(path)? {
            Probe::Refused(reason) => Answer {
                status: StatusCode::SERVICE_UNAVAILABLE,
                body: Bytes::from(format!("{reason}\n")),
            },
            Probe::Http { endpoint, timeout } => match get(endpoint, *timeout).await {
                Ok(answer) => answer,
                Err(reason) => Answer {
                    status: StatusCode::SERVICE_UNAVAILABLE,
                    body: Bytes::from(format!("probe of the application failed: {reason}\n")),
                },
            },
        };
        Some(answer)
    }

    /// The application's own metrics, when it has any to merge.
    pub async fn metrics(&self) -> Option<Result<Bytes, String>> {
        let endpoint = self.metrics.as_ref()?;
        Some(match get(endpoint, METRICS_TIMEOUT).await {
            Ok(a) if a.status.is_success() => Ok(a.body),
            Ok(a) => Err(format!("the application answered {}", a.status)),
            Err(e) => Err(e),
        })
    }
}

fn port_of(value: &Value) -> Result<u16, String> {
    match value {
        Value::Number(n) => n
            .as_u64()
            .and_then(|p| u16::try_from(p).ok())
            .filter(|p| *p != 0)
            .ok_or_else(|| format!("port {n} is not a port number")),
        Value::String(s) => s.parse::<u16>().ok().filter(|p| *p != 0).ok_or_else(|| {
            format!("port {s:?} is not a port number (named ports are resolved at injection)")
        }),
        other => Err(format!("port {other} is not a port number")),
    }
}

fn probe(spec: &Value) -> Result<Probe, String> {
    let get = spec
        .get("httpGet")
        .ok_or("only httpGet probes go through the proxy; this one has no httpGet")?;
    let scheme = get["scheme"].as_str().unwrap_or("HTTP");
    if !scheme.eq_ignore_ascii_case("HTTP") {
        return Err(format!(
            "scheme {scheme} is not probed through the proxy (only HTTP; leave HTTPS probes to the kubelet)"
        ));
    }
    let mut headers = Vec::new();
    for h in get["httpHeaders"].as_array().into_iter().flatten() {
        let name = h["name"].as_str().unwrap_or_default();
        let value = h["value"].as_str().unwrap_or_default();
        let name = HeaderName::from_bytes(name.as_bytes())
            .map_err(|_| format!("httpHeaders: {name:?} is not a header name"))?;
        let value = HeaderValue::from_str(value)
            .map_err(|_| format!("httpHeaders: the value of {name} is not a header value"))?;
        headers.push((name, value));
    }
    let timeout = spec["timeoutSeconds"]
        .as_u64()
        .filter(|s| *s > 0)
        .map(Duration::from_secs)
        .unwrap_or(DEFAULT_PROBE_TIMEOUT);
    Ok(Probe::Http {
        endpoint: Endpoint {
            port: port_of(&get["port"])?,
            path: path_of(get["path"].as_str()),
            host: get["host"]
                .as_str()
                .filter(|h| !h.is_empty())
                .map(str::to_owned),
            headers,
        },
        timeout,
    })
}

fn path_of(path: Option<&str>) -> String {
    match path {
        Some(p) if p.starts_with('/') => p.to_owned(),
        Some(p) if !p.is_empty() => format!("/{p}"),
        _ => "/".to_owned(),
    }
}

/// Prometheus's annotations: `prometheus.io/port` (required), `prometheus.io/path` (`/metrics`).
fn metrics_endpoint(map: &serde_json::Map<String, Value>) -> Result<Option<Endpoint>, String> {
    if map.get("prometheus.io/scrape").and_then(Value::as_str) == Some("false") {
        return Ok(None);
    }
    let Some(port) = map.get("prometheus.io/port") else {
        return Ok(None);
    };
    Ok(Some(Endpoint {
        port: port_of(port).map_err(|e| format!("prometheus.io/port: {e}"))?,
        path: path_of(
            map.get("prometheus.io/path")
                .and_then(Value::as_str)
                .or(Some("/metrics")),
        ),
        host: None,
        headers: Vec::new(),
    }))
}

/// One HTTP/1.1 GET to the application, within `timeout`. The proxy's own traffic is exempt from
/// capture (its uid), so this reaches the application directly.
async fn get(endpoint: &Endpoint, timeout: Duration) -> Result<Answer, String> {
    let host = endpoint.host.as_deref().unwrap_or("127.0.0.1");
    let work = async {
        let stream = TcpStream::connect((host, endpoint.port))
            .await
            .map_err(|e| format!("connecting to {host}:{}: {e}", endpoint.port))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = Request::get(endpoint.path.as_str())
            .header(http::header::HOST, format!("{host}:{}", endpoint.port))
            .header(http::header::USER_AGENT, "kube-probe/mesh-proxy");
        for (name, value) in &endpoint.headers {
            req = req.header(name, value);
        }
        let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
        let response = sender.send_request(req).await.map_err(|e| e.to_string())?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok(Answer { status, body })
    };
    tokio::time::timeout(timeout, work)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_and_metrics_come_from_the_injected_environment() {
        let probers = r#"{
            "/app-health/web/readyz": {"httpGet": {"path": "healthz", "port": 8080, "scheme": "HTTP",
                "httpHeaders": [{"name": "X-Probe", "value": "1"}]}, "timeoutSeconds": 3},
            "/app-health/web/livez": {"httpGet": {"path": "/live", "port": "8081"}},
            "/app-health/web/startupz": {"httpGet": {"path": "/", "port": 8443, "scheme": "HTTPS"}}
        }"#;
        let scrape = r#"{"prometheus.io/scrape": "true", "prometheus.io/port": "9100"}"#;
        let (app, problems) = App::parse(Some(probers), Some(scrape));
        assert_eq!(
            app.probes["/app-health/web/readyz"],
            Probe::Http {
                endpoint: Endpoint {
                    port: 8080,
                    path: "/healthz".into(),
                    host: None,
                    headers: vec![(
                        HeaderName::from_static("x-probe"),
                        HeaderValue::from_static("1")
                    )],
                },
                timeout: Duration::from_secs(3),
            }
        );
        assert!(matches!(
            &app.probes["/app-health/web/livez"],
            Probe::Http { endpoint, timeout } if endpoint.port == 8081 && *timeout == DEFAULT_PROBE_TIMEOUT
        ));
        assert!(
            matches!(&app.probes["/app-health/web/startupz"], Probe::Refused(r) if r.contains("HTTPS"))
        );
        assert_eq!(problems.len(), 1, "{problems:?}");
        let metrics = app.metrics.expect("the application's metrics endpoint");
        assert_eq!((metrics.port, metrics.path.as_str()), (9100, "/metrics"));
    }

    #[test]
    fn unusable_values_are_reported_not_ignored() {
        let (app, problems) =
            App::parse(Some("not json"), Some(r#"{"prometheus.io/port": "http"}"#));
        assert!(app.probes.is_empty() && app.metrics.is_none());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].contains(ENV_PROBERS), "{problems:?}");
        assert!(problems[1].contains("prometheus.io/port"), "{problems:?}");
        let (app, problems) = App::parse(
            None,
            Some(r#"{"prometheus.io/scrape": "false", "prometheus.io/port": "9100"}"#),
        );
        assert!(app.metrics.is_none() && problems.is_empty());
    }

    #[tokio::test]
    async fn a_probe_answers_with_the_applications_status_or_why_it_failed() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap_or(0);
                let head = String::from_utf8_lossy(&buf[..n]).to_string();
                let (status, body) = if head.starts_with("GET /ok ") && head.contains("x-probe: 1")
                {
                    ("200 OK", "fine")
                } else {
                    ("500 Internal Server Error", "sick")
                };
                let reply = format!(
                    "HTTP/1.1 {status}\r\ncontent-length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let probers = format!(
            r#"{{"/app-health/a/readyz": {{"httpGet": {{"path": "/ok", "port": {port}, "httpHeaders": [{{"name": "x-probe", "value": "1"}}]}}}},
                "/app-health/a/livez": {{"httpGet": {{"path": "/bad", "port": {port}}}}},
                "/app-health/b/readyz": {{"httpGet": {{"path": "/", "port": 1}}}}}}"#
        );
        let (app, _) = App::parse(Some(&probers), None);
        let ok = app.probe("/app-health/a/readyz").await.expect("known path");
        assert_eq!(
            (ok.status, ok.body.as_ref()),
            (StatusCode::OK, b"fine".as_ref())
        );
        let sick = app.probe("/app-health/a/livez").await.expect("known path");
        assert_eq!(sick.status, StatusCode::INTERNAL_SERVER_ERROR);
        let down = app.probe("/app-health/b/readyz").await.expect("known path");
        assert_eq!(down.status, StatusCode::SERVICE_UNAVAILABLE);
        assert!(String::from_utf8_lossy(&down.body).contains("connecting to 127.0.0.1:1"));
        assert!(app.probe("/app-health/c/readyz").await.is_none());
    }
}
