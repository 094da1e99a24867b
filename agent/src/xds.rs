//! Following meshd's delta stream: what the proxy holds per type, updated by each response,
//! assembled into one [`ProxyConfig`] and handed to the proxy, which accepts it (ACK) or
//! refuses it (NACK, and the configuration in force stays). When meshd is away the last good
//! configuration stays in force and the agent reconnects with backoff, telling meshd what it
//! holds so that only differences come.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use mesh_proxy_config::{DestinationRule, ProxyConfig, Service, VirtualService};
use mesh_xds::discovery::aggregated_discovery_client::AggregatedDiscoveryClient;
use mesh_xds::discovery::{DeltaRequest, DeltaResponse, Node, ResourceVersion};
use mesh_xds::types;
use serde::de::DeserializeOwned;
use tokio::sync::mpsc;
use tracing::{debug, info, warn};

use crate::backoff::Backoff;
use crate::channel;
use crate::settings::{Connection, Identity};

/// A resource as held: its version and body.
type Held = BTreeMap<String, (String, bytes::Bytes)>;

/// What the proxy holds, per type.
#[derive(Debug, Default, Clone)]
pub struct Holdings {
    types: BTreeMap<String, Held>,
}

impl Holdings {
    fn versions(&self) -> Vec<ResourceVersion> {
        self.types
            .iter()
            .flat_map(|(type_url, held)| {
                held.iter()
                    .map(move |(name, (version, _))| ResourceVersion {
                        type_url: type_url.clone(),
                        name: name.clone(),
                        version: version.clone(),
                    })
            })
            .collect()
    }

    /// These holdings with `response` applied.
    fn with(&self, response: &DeltaResponse) -> Holdings {
        let mut next = self.clone();
        let held = next.types.entry(response.type_url.clone()).or_default();
        for name in &response.removed_resources {
            held.remove(name);
        }
        for r in &response.resources {
            held.insert(r.name.clone(), (r.version.clone(), r.body.clone()));
        }
        next
    }

    fn complete(&self) -> bool {
        types::ALL.iter().all(|t| self.types.contains_key(*t))
    }

    fn decode<T: DeserializeOwned>(&self, type_url: &str) -> Result<Vec<T>, String> {
        self.types
            .get(type_url)
            .into_iter()
            .flatten()
            .map(|(name, (_, body))| {
                serde_json::from_slice(body).map_err(|e| format!("{type_url} {name}: {e}"))
            })
            .collect()
    }

    /// The whole configuration, as the static file would give it.
    pub fn assemble(&self, version: &str) -> Result<ProxyConfig, String> {
        let own = self
            .types
            .get(types::PROXY)
            .and_then(|held| held.get("self"))
            .ok_or_else(|| "no mesh.v1/Proxy resource `self`".to_owned())?;
        let mut config: ProxyConfig =
            serde_json::from_slice(&own.1).map_err(|e| format!("{} self: {e}", types::PROXY))?;
        config.version = Some(version.to_owned());
        config.services = self.decode::<Service>(types::SERVICE)?;
        config.destination_rules = self.decode::<DestinationRule>(types::DESTINATION_RULE)?;
        config.virtual_services = self.decode::<VirtualService>(types::VIRTUAL_SERVICE)?;
        Ok(config)
    }

    /// Checks the resources of one type on their own (before every type has arrived).
    fn check(&self, type_url: &str) -> Result<(), String> {
        match type_url {
            types::PROXY => self.decode::<ProxyConfig>(type_url).map(|_| ()),
            types::SERVICE => self.decode::<Service>(type_url).map(|_| ()),
            types::DESTINATION_RULE => self.decode::<DestinationRule>(type_url).map(|_| ()),
            _ => self.decode::<VirtualService>(type_url).map(|_| ()),
        }
    }
}

fn node(identity: &Identity) -> Node {
    Node {
        pod_name: identity.pod_name.clone(),
        namespace: identity.namespace.clone(),
        pod_ip: std::env::var("INSTANCE_IP").unwrap_or_default(),
        service_account: identity.service_account.clone(),
        labels: identity.labels.clone().into_iter().collect(),
        workload_name: identity.workload_name.clone(),
        proxy_version: env!("CARGO_PKG_VERSION").to_owned(),
        gateway: identity.gateway,
    }
}

/// Follows meshd for as long as the process runs, calling `apply` with each new whole
/// configuration; `apply` says whether the proxy took it.
pub async fn follow(
    identity: Identity,
    connection: Connection,
    mut apply: impl FnMut(ProxyConfig) -> Result<(), String>,
) {
    let mut holdings = Holdings::default();
    let mut backoff = Backoff::default();
    loop {
        match stream_once(
            &identity,
            &connection,
            &mut holdings,
            &mut apply,
            &mut backoff,
        )
        .await
        {
            Ok(()) => info!(address = %connection.address, "meshd ended the stream; reconnecting"),
            Err(e) => warn!(error = %e, "lost meshd; the configuration in force stays"),
        }
        tokio::time::sleep(backoff.next_delay()).await;
    }
}

async fn stream_once(
    identity: &Identity,
    connection: &Connection,
    holdings: &mut Holdings,
    apply: &mut impl FnMut(ProxyConfig) -> Result<(), String>,
    backoff: &mut Backoff,
) -> Result<(), String> {
    let channel = channel::connect(connection)
        .await
        .map_err(|e| e.to_string())?;
    let mut client = AggregatedDiscoveryClient::new(channel);
    let (tx, rx) = mpsc::channel::<DeltaRequest>(16);
    tx.send(DeltaRequest {
        node: Some(node(identity)),
        initial_versions: holdings.versions(),
        ..DeltaRequest::default()
    })
    .await
    .map_err(|e| e.to_string())?;
    let requests =
        futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|r| (r, rx)) });
    let mut request = tonic::Request::new(requests);
    if let Some(token) = channel::bearer(connection) {
        request.metadata_mut().insert("authorization", token);
    }
    let mut responses = client
        .delta_stream(request)
        .await
        .map_err(|e| format!("meshd refused the stream: {e}"))?
        .into_inner();
    info!(address = %connection.address, "connected to meshd");
    // Types received on this stream: a reconnect's holdings count only once meshd confirmed them.
    let mut confirmed: Vec<String> = Vec::new();
    while let Some(response) = responses.next().await {
        let response = response.map_err(|e| e.to_string())?;
        backoff.reset();
        let next = holdings.with(&response);
        if !confirmed.contains(&response.type_url) {
            confirmed.push(response.type_url.clone());
        }
        let all_here =
            next.complete() && types::ALL.iter().all(|t| confirmed.iter().any(|c| c == t));
        let verdict = if all_here {
            next.assemble(&response.system_version)
                .and_then(&mut *apply)
        } else {
            next.check(&response.type_url)
        };
        let error_detail = match verdict {
            Ok(()) => {
                *holdings = next;
                debug!(type_url = %response.type_url, resources = response.resources.len(), removed = response.removed_resources.len(), "applied");
                String::new()
            }
            Err(why) => {
                warn!(type_url = %response.type_url, error = %why, "refused meshd's push (NACK); the configuration in force stays");
                why
            }
        };
        tx.send(DeltaRequest {
            type_url: response.type_url.clone(),
            response_nonce: response.nonce.clone(),
            error_detail,
            ..DeltaRequest::default()
        })
        .await
        .map_err(|e| e.to_string())?;
    }
    Ok(())
}

/// How long `follow` waits at most between reconnects.
pub const MAX_RECONNECT: Duration = Duration::from_secs(15);
