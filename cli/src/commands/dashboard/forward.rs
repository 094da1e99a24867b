//! The forwarding itself: every local connection gets its own port-forward stream through the
//! API server to the current pod, retried with backoff while the API server or the pod is away.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::client::UpgradeConnectionError;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::{timeout, Instant};

use super::report::Reporter;
use crate::kube_client::root;

/// How long a local connection waits for a pod and the API server before it is closed.
const GIVE_UP_AFTER: Duration = Duration::from_secs(60);
const FIRST_RETRY: Duration = Duration::from_millis(200);
const MAX_RETRY: Duration = Duration::from_secs(5);
/// After the browser stops sending, how long its last response may still take to arrive. The
/// port-forward protocol cannot pass a half-close on, so the stream ends after this.
const LINGER: Duration = Duration::from_secs(10);

/// What every connection needs to reach the pod.
#[derive(Clone)]
pub struct Forward {
    pub pods: Api<Pod>,
    pub namespace: String,
    pub port: u16,
    pub target: watch::Receiver<Option<String>>,
    pub reporter: Reporter,
}

/// Accepts on `listener` until the process ends; each connection is served on its own task.
pub async fn accept_loop(listener: TcpListener, forward: Forward) {
    loop {
        match listener.accept().await {
            Ok((conn, _)) => {
                let forward = forward.clone();
                tokio::spawn(async move { forward.serve(conn).await });
            }
            // Out of file descriptors and the like: pause rather than spin.
            Err(e) => {
                eprintln!("cannot accept a local connection: {e}");
                tokio::time::sleep(FIRST_RETRY).await;
            }
        }
    }
}

/// What a failed port-forward request means for the next try.
enum Failure {
    /// The API server did not answer: it is away, retry.
    Unreachable(String),
    /// The pod is gone: wait for the follower to name another.
    PodGone,
    /// Refused for good (no permission): retrying cannot help.
    Refused(String),
    /// Answered with an error that may pass (5xx, a broken upgrade).
    Transient(String),
}

fn classify(err: &kube::Error) -> Failure {
    match err {
        kube::Error::UpgradeConnection(UpgradeConnectionError::ProtocolSwitch(status)) => {
            match status.as_u16() {
                404 => Failure::PodGone,
                401 | 403 => Failure::Refused(format!(
                    "the API server refused the port-forward (HTTP {status}): you need the create permission on pods/portforward"
                )),
                _ => Failure::Transient(format!("the API server answered HTTP {status}")),
            }
        }
        kube::Error::UpgradeConnection(other) => Failure::Transient(other.to_string()),
        kube::Error::Api(status) if status.code == 404 => Failure::PodGone,
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => {
            Failure::Refused(status.message.clone())
        }
        kube::Error::Api(status) => Failure::Transient(status.message.clone()),
        other => Failure::Unreachable(root(other)),
    }
}

impl Forward {
    async fn serve(mut self, mut conn: TcpStream) {
        let deadline = Instant::now() + GIVE_UP_AFTER;
        let mut delay = FIRST_RETRY;
        loop {
            let Some(pod) = self.wait_for_pod(deadline).await else {
                eprintln!(
                    "closing a local connection: no ready pod to forward to within {}s",
                    GIVE_UP_AFTER.as_secs()
                );
                return;
            };
            let why = match self.pods.portforward(&pod, &[self.port]).await {
                Ok(mut forwarder) => {
                    self.reporter.api_server_back();
                    let Some(stream) = forwarder.take_stream(self.port) else {
                        return;
                    };
                    let errors = forwarder.take_error(self.port);
                    pipe(&mut conn, stream).await;
                    if let Some(errors) = errors {
                        // The pod side's own complaint, e.g. nothing listening on the port.
                        if let Ok(Some(message)) = timeout(Duration::from_millis(200), errors).await
                        {
                            eprintln!("pod {}/{pod} port {}: {message}", self.namespace, self.port);
                        }
                    }
                    forwarder.abort();
                    return;
                }
                Err(e) => classify(&e),
            };
            match why {
                Failure::Refused(message) => {
                    eprintln!("{message}");
                    return;
                }
                Failure::PodGone => {
                    // The follower will move on; wait for it rather than hammer the old name.
                    let _ = timeout(delay, self.target.changed()).await;
                }
                Failure::Unreachable(message) => {
                    self.reporter.api_server_lost(&message);
                    tokio::time::sleep(delay).await;
                }
                Failure::Transient(message) => {
                    eprintln!(
                        "forwarding to pod {}/{pod} failed ({message}); retrying in {}ms",
                        self.namespace,
                        delay.as_millis()
                    );
                    tokio::time::sleep(delay).await;
                }
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "closing a local connection: could not reach pod {}/{pod} within {}s",
                    self.namespace,
                    GIVE_UP_AFTER.as_secs()
                );
                return;
            }
            delay = (delay * 2).min(MAX_RETRY);
        }
    }

    /// The pod to use now, waiting (until `deadline`) while none is ready.
    async fn wait_for_pod(&mut self, deadline: Instant) -> Option<String> {
        loop {
            if let Some(pod) = self.target.borrow_and_update().clone() {
                return Some(pod);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match timeout(left, self.target.changed()).await {
                Ok(Ok(())) => continue,
                _ => return None,
            }
        }
    }
}

/// Copies both ways until the pod side ends, or the client side ends and the pod has had
/// `LINGER` to finish its answer.
async fn pipe<S>(conn: &mut TcpStream, stream: S)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut client_read, mut client_write) = conn.split();
    let (mut pod_read, mut pod_write) = tokio::io::split(stream);
    let upstream = tokio::io::copy(&mut client_read, &mut pod_write);
    let downstream = tokio::io::copy(&mut pod_read, &mut client_write);
    tokio::pin!(upstream, downstream);
    tokio::select! {
        _ = &mut downstream => {}
        _ = &mut upstream => {
            let _ = timeout(LINGER, &mut downstream).await;
        }
    }
}
