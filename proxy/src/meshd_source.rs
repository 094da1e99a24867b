//! The configuration from meshd instead of a file: what `mesh-proxy run` does in an injected
//! pod, where the environment names meshd (`MESHD_ADDRESS`) and the pod. mesh-agent follows
//! meshd's delta stream and hands each whole configuration to the store, the same type a file
//! gives; it also keeps the workload certificate in its directory.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context as _;

use crate::store::Store;

/// Where the workload certificate is written (the injected `workload-certs` volume).
const DEFAULT_CERT_DIR: &str = "/var/run/secrets/workload-spiffe-credentials";

/// Starts following meshd on the current runtime.
pub fn start(store: Arc<Store>) -> anyhow::Result<()> {
    let (identity, connection) = mesh_agent::settings::from_env()
        .context("mesh-proxy run without --config follows meshd")?;
    let cert_dir: PathBuf = std::env::var("MESH_CERT_DIR")
        .ok()
        .filter(|d| !d.is_empty())
        .unwrap_or_else(|| DEFAULT_CERT_DIR.to_owned())
        .into();
    tracing::info!(
        meshd = %connection.address,
        pod = %identity.pod_name,
        namespace = %identity.namespace,
        "following meshd; not ready until its first configuration arrives"
    );
    tokio::spawn(mesh_agent::certs::maintain(
        identity.clone(),
        connection.clone(),
        cert_dir.clone(),
        mesh_agent::settings::secret_ttl(),
        |_| {},
    ));
    tokio::spawn(mesh_agent::xds::follow(
        identity,
        connection,
        move |mut config| {
            // meshd says mTLS is on; where the certificate is kept is this pod's business.
            if let Some(files) = config.certificates.as_mut() {
                files.directory = cert_dir.clone();
            }
            let snapshot = store.apply(config);
            tracing::info!(
                generation = snapshot.generation,
                "configuration from meshd in force"
            );
            Ok(())
        },
    ));
    Ok(())
}
