//! Istio objects meshd could not give the proxies (or only partly): logged and reported as a
//! Kubernetes Event on the object, once per problem, so `kubectl describe` shows it.

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{Event, EventSource, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tracing::warn;

use super::model::{Kind, Problem};

/// Kind, namespace, name, message.
type ProblemKey = (String, String, String, String);

#[derive(Clone)]
pub struct Reporter {
    client: Option<Client>,
    reported: Arc<Mutex<BTreeSet<ProblemKey>>>,
}

fn kind_name(kind: Kind) -> &'static str {
    match kind {
        Kind::VirtualService => "VirtualService",
        Kind::DestinationRule => "DestinationRule",
        Kind::Gateway => "Gateway",
        Kind::Sidecar => "Sidecar",
        Kind::Ingress => "Ingress",
        Kind::PeerAuthentication => "PeerAuthentication",
        Kind::AuthorizationPolicy => "AuthorizationPolicy",
        Kind::ServiceEntry => "ServiceEntry",
        Kind::WorkloadEntry => "WorkloadEntry",
        Kind::Service => "Service",
        Kind::EndpointSlice => "EndpointSlice",
        Kind::Pod => "Pod",
        Kind::Namespace => "Namespace",
    }
}

impl Reporter {
    /// Without a client problems are only logged.
    pub fn new(client: Option<Client>) -> Reporter {
        Reporter {
            client,
            reported: Arc::new(Mutex::new(BTreeSet::new())),
        }
    }

    /// Reports the problems not reported before; forgets those that are gone, so one that
    /// comes back is reported again.
    pub fn report(&self, problems: &[Problem]) {
        let current: BTreeSet<_> = problems
            .iter()
            .map(|p| {
                (
                    kind_name(p.kind).to_owned(),
                    p.namespace.clone(),
                    p.name.clone(),
                    p.message.clone(),
                )
            })
            .collect();
        let fresh: Vec<&Problem> = {
            let mut reported = match self.reported.lock() {
                Ok(r) => r,
                Err(poisoned) => poisoned.into_inner(),
            };
            reported.retain(|r| current.contains(r));
            problems
                .iter()
                .filter(|p| {
                    reported.insert((
                        kind_name(p.kind).to_owned(),
                        p.namespace.clone(),
                        p.name.clone(),
                        p.message.clone(),
                    ))
                })
                .collect()
        };
        for problem in fresh {
            let what = if problem.skipped {
                "skipped: not sent to any proxy"
            } else {
                "sent without some fields"
            };
            warn!(
                kind = kind_name(problem.kind),
                namespace = %problem.namespace,
                name = %problem.name,
                problem = %problem.message,
                "{what}"
            );
            if let Some(client) = &self.client {
                tokio::spawn(event(client.clone(), problem.clone()));
            }
        }
    }
}

async fn event(client: Client, problem: Problem) {
    let api: Api<Event> = Api::namespaced(client, &problem.namespace);
    let now = chrono_now();
    let kind = kind_name(problem.kind);
    let event = Event {
        metadata: ObjectMeta {
            generate_name: Some(format!("{}.", problem.name)),
            namespace: Some(problem.namespace.clone()),
            ..ObjectMeta::default()
        },
        involved_object: ObjectReference {
            api_version: Some(
                match problem.kind {
                    Kind::Ingress => "networking.k8s.io/v1",
                    Kind::PeerAuthentication | Kind::AuthorizationPolicy => "security.istio.io/v1",
                    _ => "networking.istio.io/v1",
                }
                .to_owned(),
            ),
            kind: Some(kind.to_owned()),
            name: Some(problem.name.clone()),
            namespace: Some(problem.namespace.clone()),
            ..ObjectReference::default()
        },
        reason: Some(
            if problem.skipped {
                "ConfigSkipped"
            } else {
                "ConfigPartiallyApplied"
            }
            .to_owned(),
        ),
        message: Some(problem.message.clone()),
        type_: Some("Warning".to_owned()),
        source: Some(EventSource {
            component: Some("meshd".to_owned()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        reporting_component: Some("meshd".to_owned()),
        reporting_instance: Some(std::env::var("POD_NAME").unwrap_or_else(|_| "meshd".to_owned())),
        action: Some("Push".to_owned()),
        count: Some(1),
        ..Event::default()
    };
    if let Err(e) = api.create(&PostParams::default(), &event).await {
        warn!(error = %e, "cannot record an Event for a configuration problem");
    }
}

fn chrono_now() -> k8s_openapi::jiff::Timestamp {
    k8s_openapi::jiff::Timestamp::now()
}
