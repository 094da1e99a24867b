//! Connecting to the cluster the way kubectl does, and the small API helpers the cluster
//! commands (`install`, `uninstall`, `verify-install`) share.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::anyhow;
use clap::Args;
use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
};
use kube::api::{Api, DynamicObject, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mesh_operator::controller::kinds::Kind;
use serde_json::Value;

/// How long connecting and the first request may take before the cluster counts as unreachable.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Args, Debug, Clone, Default)]
pub struct ClusterArgs {
    /// Kubeconfig file (default: $KUBECONFIG, then ~/.kube/config).
    #[arg(long, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// Kubeconfig context to use (default: the current context).
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// A client that has answered one request.
pub struct Connection {
    pub client: Client,
}

/// The runtime the cluster commands run on.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| anyhow!("cannot start the async runtime: {e}"))
}

/// Reads the kubeconfig, picks the context and checks that the API server answers.
pub async fn connect(args: &ClusterArgs) -> anyhow::Result<Connection> {
    let kubeconfig = match &args.kubeconfig {
        Some(path) => Kubeconfig::read_from(path)
            .map_err(|e| anyhow!("cannot read kubeconfig {}: {}", path.display(), root(&e)))?,
        None => Kubeconfig::read().map_err(|e| {
            anyhow!(
                "cannot read a kubeconfig ($KUBECONFIG or ~/.kube/config): {}; pass --kubeconfig",
                root(&e)
            )
        })?,
    };
    let context = args
        .context
        .clone()
        .or_else(|| kubeconfig.current_context.clone())
        .unwrap_or_default();
    let options = KubeConfigOptions {
        context: args.context.clone(),
        cluster: None,
        user: None,
    };
    let config = Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|e| anyhow!("kubeconfig context \"{context}\": {}", root(&e)))?;
    let server = config.cluster_url.to_string();
    let unreachable = |reason: String| {
        anyhow!(
            "cannot reach the cluster of context \"{context}\" at {server}: {reason}; start the local cluster with e2e/cluster.sh up, or pass --kubeconfig/--context"
        )
    };
    let client = Client::try_from(config).map_err(|e| unreachable(root(&e)))?;
    match tokio::time::timeout(CONNECT_TIMEOUT, client.apiserver_version()).await {
        Ok(Ok(_)) => Ok(Connection { client }),
        Ok(Err(e)) => Err(unreachable(root(&e))),
        Err(_) => Err(unreachable(format!(
            "no answer within {}s",
            CONNECT_TIMEOUT.as_secs()
        ))),
    }
}

/// The innermost cause of an error, on one line: what a person can act on.
pub fn root(err: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = err;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string().replace('\n', " ")
}

/// One thing to check with a SelfSubjectAccessReview.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Access {
    pub verb: String,
    pub group: String,
    pub resource: String,
    pub namespace: Option<String>,
}

impl Access {
    pub fn for_kind(verb: &str, kind: &Kind, namespace: Option<&str>) -> Access {
        Access {
            verb: verb.to_owned(),
            group: kind.group.to_owned(),
            resource: kind.plural.to_owned(),
            namespace: if kind.namespaced {
                namespace.map(str::to_owned)
            } else {
                None
            },
        }
    }

    fn describe(&self) -> String {
        let resource = if self.group.is_empty() {
            self.resource.clone()
        } else {
            format!("{}.{}", self.resource, self.group)
        };
        match &self.namespace {
            Some(ns) => format!("{} {resource} in namespace {ns}", self.verb),
            None => format!("{} {resource} in the cluster scope", self.verb),
        }
    }
}

/// Fails on the first permission the current user lacks.
pub async fn check_access(client: &Client, wanted: &[Access]) -> anyhow::Result<()> {
    let api: Api<SelfSubjectAccessReview> = Api::all(client.clone());
    for access in wanted {
        let review = SelfSubjectAccessReview {
            spec: SelfSubjectAccessReviewSpec {
                resource_attributes: Some(ResourceAttributes {
                    verb: Some(access.verb.clone()),
                    group: Some(access.group.clone()),
                    resource: Some(access.resource.clone()),
                    namespace: access.namespace.clone(),
                    ..Default::default()
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let answer = api
            .create(&PostParams::default(), &review)
            .await
            .map_err(|e| anyhow!("cannot check permissions: {}", root(&e)))?;
        let allowed = answer.status.map(|s| s.allowed).unwrap_or(false);
        if !allowed {
            return Err(anyhow!("missing permission: {}", access.describe()));
        }
    }
    Ok(())
}

/// The API of `kind`, namespaced when the kind is.
pub fn api_of(client: &Client, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
    let resource = kind.api_resource();
    match (kind.namespaced, namespace) {
        (true, Some(ns)) => Api::namespaced_with(client.clone(), ns, &resource),
        (true, None) => Api::default_namespaced_with(client.clone(), &resource),
        (false, _) => Api::all_with(client.clone(), &resource),
    }
}

/// `Kind namespace/name` of a rendered object.
pub fn display(object: &Value) -> String {
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"].as_str().unwrap_or_default();
    match object["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

/// `5m`, `90s`, `1h`, `2m30s` or plain seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(Duration::from_secs(secs));
    }
    let mut total = 0u64;
    let mut number = String::new();
    for c in text.chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => return Err(format!("invalid duration {text:?}: use e.g. 5m, 90s, 1h")),
        };
        let n: u64 = number
            .parse()
            .map_err(|_| format!("invalid duration {text:?}: use e.g. 5m, 90s, 1h"))?;
        total += n * unit;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(format!("invalid duration {text:?}: use e.g. 5m, 90s, 1h"));
    }
    Ok(Duration::from_secs(total))
}

/// Asks `question [y/N]` on the terminal; `Ok(false)` unless the answer is yes.
pub fn confirm(question: &str) -> anyhow::Result<bool> {
    use std::io::{BufRead, Write};
    eprint!("{question} [y/N] ");
    std::io::stderr().flush().ok();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| anyhow!("cannot read the answer: {e}"))?;
    Ok(matches!(line.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
}

/// Refuses to go on without a terminal to ask on, unless `-y` was given; asks otherwise.
pub fn confirm_or_refuse(yes: bool, question: &str) -> anyhow::Result<()> {
    use std::io::IsTerminal;
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() {
        return Err(anyhow!(
            "standard input is not a terminal, so meshctl cannot ask for confirmation; pass -y to proceed"
        ));
    }
    if confirm(question)? {
        Ok(())
    } else {
        Err(anyhow!("aborted"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("2m30s"), Ok(Duration::from_secs(150)));
        assert!(parse_duration("5x").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("").is_err());
    }
}
