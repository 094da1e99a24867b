//! Following the pod: when the one being forwarded to goes away or stops being ready, new
//! connections go to its replacement.

use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::Client;
use tokio::sync::watch;

use super::locate::{self, Selection};
use super::report::Reporter;
use super::ui::Ui;
use crate::kube_client::root;

/// Watches the pods `ui` could be served by and publishes the one to use (None: none ready).
/// The watch retries with backoff when the API server is away, and says so once per outage.
pub fn spawn(
    client: Client,
    namespace: String,
    ui: Ui,
    selection: Selection,
    initial: String,
    reporter: Reporter,
) -> watch::Receiver<Option<String>> {
    let (tx, rx) = watch::channel(Some(initial));
    tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, &namespace);
        let config = match &selection {
            Selection::Selector => watcher::Config::default().labels(&ui.selector),
            Selection::Named(name) => {
                watcher::Config::default().fields(&format!("metadata.name={name}"))
            }
        };
        let (reader, writer) = reflector::store();
        let events = reflector::reflector(writer, watcher(api, config)).default_backoff();
        futures::pin_mut!(events);
        while let Some(event) = events.next().await {
            match event {
                Ok(watcher::Event::InitDone)
                | Ok(watcher::Event::Apply(_))
                | Ok(watcher::Event::Delete(_)) => {
                    reporter.api_server_back();
                    choose(&reader, &tx, &namespace, &ui);
                }
                Ok(_) => {}
                Err(e) => reporter.api_server_lost(&root(&e)),
            }
        }
    });
    rx
}

/// Keeps the current pod while it is ready; otherwise moves to the best ready one.
fn choose(reader: &Store<Pod>, tx: &watch::Sender<Option<String>>, namespace: &str, ui: &Ui) {
    let pods: Vec<Pod> = reader.state().iter().map(|p| (**p).clone()).collect();
    let current = tx.borrow().clone();
    let current_pod = current
        .as_ref()
        .and_then(|name| pods.iter().find(|p| p.metadata.name.as_ref() == Some(name)));
    if current_pod.is_some_and(locate::is_ready) {
        return;
    }
    let next = locate::best_ready(&pods).map(locate::pod_name);
    if next == current {
        return;
    }
    let why = match (&current, current_pod) {
        (Some(name), Some(pod)) => format!(
            "pod {namespace}/{name} is not ready ({})",
            locate::not_ready_reason(pod)
        ),
        (Some(name), None) => format!("pod {namespace}/{name} is gone"),
        (None, _) => format!("a {} pod is ready again", ui.name),
    };
    match &next {
        Some(name) => eprintln!("{why}; forwarding to pod {namespace}/{name} now"),
        None => eprintln!(
            "{why}; no other {} pod is ready, new connections wait for one",
            ui.name
        ),
    }
    tx.send_replace(next);
}
