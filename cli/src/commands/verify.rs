//! `meshctl verify-install`: every object of the rendered installation exists in the cluster,
//! and every Deployment is available.

use anyhow::anyhow;
use clap::Args;
use kube::Client;
use mesh_operator::controller::kinds;
use mesh_operator::render::{self, Manifest};
use serde_json::Value;

use crate::input_args::InputArgs;
use crate::kube_client::{self, ClusterArgs};

#[derive(Args, Debug)]
pub struct VerifyArgs {
    /// Install profile: default, demo, minimal or empty.
    #[arg(short = 'p', long = "profile")]
    profile: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: VerifyArgs) -> anyhow::Result<()> {
    let install = args.input.to_input(args.profile.clone())?.resolve()?;
    let manifests = render::render(&install);
    kube_client::runtime()?.block_on(async {
        let conn = kube_client::connect(&args.cluster).await?;
        verify(&conn.client, &manifests).await
    })
}

async fn verify(client: &Client, manifests: &[Manifest]) -> anyhow::Result<()> {
    let mut failed = 0;
    for m in manifests {
        let display = m.display_name();
        match check(client, m).await {
            Ok(()) => println!("✔ {display}"),
            Err(why) => {
                failed += 1;
                println!("✘ {display}: {why}");
            }
        }
    }
    if failed > 0 {
        return Err(anyhow!(
            "{failed} of {} objects are missing or not ready",
            manifests.len()
        ));
    }
    println!(
        "✔ all {} objects of the installation are in place",
        manifests.len()
    );
    Ok(())
}

async fn check(client: &Client, m: &Manifest) -> Result<(), String> {
    let kind = kinds::lookup(m.api_version(), m.kind())
        .ok_or_else(|| format!("unknown kind {} {}", m.api_version(), m.kind()))?;
    let api = kube_client::api_of(client, kind, m.namespace());
    let live = api
        .get_opt(m.name())
        .await
        .map_err(|e| format!("cannot read: {}", kube_client::root(&e)))?
        .ok_or_else(|| "missing".to_owned())?;
    if m.kind() == "Deployment" {
        let live = serde_json::to_value(&live).map_err(|e| e.to_string())?;
        deployment_ready(&live).map_err(|why| format!("not ready: {why}"))?;
    }
    Ok(())
}

/// A Deployment is ready when its current generation is rolled out and every replica available.
fn deployment_ready(d: &Value) -> Result<(), String> {
    let status = &d["status"];
    let generation = d["metadata"]["generation"].as_i64().unwrap_or(0);
    let observed = status["observedGeneration"].as_i64().unwrap_or(0);
    if observed < generation {
        return Err("the new generation is not rolled out yet".to_owned());
    }
    let want = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let available = status["availableReplicas"].as_i64().unwrap_or(0);
    let updated = status["updatedReplicas"].as_i64().unwrap_or(0);
    if available < want || updated < want {
        return Err(format!(
            "{available}/{want} replicas available, {updated}/{want} updated"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn deployment_readiness() {
        let ready = json!({"metadata": {"generation": 2}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "availableReplicas": 2, "updatedReplicas": 2}});
        assert_eq!(deployment_ready(&ready), Ok(()));
        let rolling = json!({"metadata": {"generation": 3}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 2, "availableReplicas": 2, "updatedReplicas": 2}});
        assert!(deployment_ready(&rolling).is_err());
        let short = json!({"metadata": {"generation": 1}, "spec": {"replicas": 2},
            "status": {"observedGeneration": 1, "availableReplicas": 1, "updatedReplicas": 2}});
        assert_eq!(
            deployment_ready(&short),
            Err("1/2 replicas available, 2/2 updated".to_owned())
        );
    }
}
