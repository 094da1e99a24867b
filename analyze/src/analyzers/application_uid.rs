//! IST0144: UID 1337 is the proxy's. The capture rules let traffic of that UID bypass the
//! proxy, so an application running as 1337 escapes the mesh (no mTLS, no policy).

use mesh_inject::names::{PROXY_CONTAINER, PROXY_UID};

use crate::codes::INVALID_APPLICATION_UID;
use crate::context::Context;
use crate::report::Report;

const FIX: &str = "run the application as another user (securityContext.runAsUser)";

pub fn run(cx: &Context, r: &mut Report) {
    for w in &cx.workloads {
        // meshd runs as 1337 by design, like istiod.
        if cx.object(w.obj).is_mesh_component() {
            continue;
        }
        if w.spec["securityContext"]["runAsUser"].as_i64() == Some(PROXY_UID) {
            r.add(
                &INVALID_APPLICATION_UID,
                w.obj,
                &w.spec_path("securityContext.runAsUser"),
                format!("User ID (UID) 1337 is reserved for the sidecar proxy: the pod's securityContext makes every container run as 1337, so their traffic bypasses the proxy; {FIX}"),
            );
        }
        for list in ["containers", "initContainers"] {
            for (i, c) in w.spec[list].as_array().into_iter().flatten().enumerate() {
                if c["name"] == PROXY_CONTAINER {
                    continue;
                }
                if c["securityContext"]["runAsUser"].as_i64() == Some(PROXY_UID) {
                    r.add(
                        &INVALID_APPLICATION_UID,
                        w.obj,
                        &w.spec_path(&format!("{list}[{i}].securityContext.runAsUser")),
                        format!(
                            "User ID (UID) 1337 is reserved for the sidecar proxy: container {} runs as 1337, so its traffic bypasses the proxy; {FIX}",
                            c["name"].as_str().unwrap_or("?")
                        ),
                    );
                }
            }
        }
    }
}
