//! One HTTP GET to a port of a pod, through the API server's port-forward (no kubectl, no
//! local port): how `proxy-status` asks meshd and `proxy-config` asks a sidecar.

use std::time::Duration;

use anyhow::{anyhow, Context as _};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::Client;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::kube_client::root;

const TIMEOUT: Duration = Duration::from_secs(15);

/// The status code and body of `GET path` on `port` of pod `namespace/pod`.
pub async fn get(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    tokio::time::timeout(TIMEOUT, get_now(client, namespace, pod, port, path))
        .await
        .map_err(|_| {
            anyhow!(
                "pod {namespace}/{pod} port {port} did not answer GET {path} within {}s",
                TIMEOUT.as_secs()
            )
        })?
}

async fn get_now(
    client: &Client,
    namespace: &str,
    pod: &str,
    port: u16,
    path: &str,
) -> anyhow::Result<(u16, String)> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let mut forward = pods.portforward(pod, &[port]).await.map_err(|e| {
        anyhow!(
            "cannot port-forward to pod {namespace}/{pod} port {port}: {}",
            root(&e)
        )
    })?;
    let mut stream = forward
        .take_stream(port)
        .ok_or_else(|| anyhow!("the port-forward to {namespace}/{pod} gave no stream"))?;
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: localhost\r\nAccept: application/json\r\nConnection: close\r\n\r\n");
    stream
        .write_all(request.as_bytes())
        .await
        .with_context(|| format!("sending GET {path} to {namespace}/{pod}:{port}"))?;
    // Read by Content-Length: the port-forward stream does not pass the pod side's close on.
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    let (status, body_start, length) = loop {
        let n = stream
            .read(&mut chunk)
            .await
            .with_context(|| format!("reading the answer of {namespace}/{pod}:{port}"))?;
        if n == 0 {
            return Err(anyhow!(
                "{namespace}/{pod}:{port} closed the connection before answering GET {path}"
            ));
        }
        buffer.extend_from_slice(&chunk[..n]);
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
            let status = head
                .split_whitespace()
                .nth(1)
                .and_then(|s| s.parse::<u16>().ok())
                .ok_or_else(|| anyhow!("{namespace}/{pod}:{port} did not answer HTTP"))?;
            let length = head
                .lines()
                .find_map(|l| {
                    let (name, value) = l.split_once(':')?;
                    name.eq_ignore_ascii_case("content-length")
                        .then(|| value.trim().parse::<usize>().ok())
                        .flatten()
                })
                .ok_or_else(|| anyhow!("{namespace}/{pod}:{port} sent no Content-Length"))?;
            break (status, end + 4, length);
        }
    };
    while buffer.len() < body_start + length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let end = buffer.len().min(body_start + length);
    let body = String::from_utf8_lossy(&buffer[body_start..end]).into_owned();
    drop(stream);
    forward.abort();
    Ok((status, body))
}
