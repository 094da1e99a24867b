//! What each dashboard forwards to: the pods' labels, the port the UI listens on, and the path
//! the printed URL opens.

/// A web UI inside the cluster that `meshctl dashboard` can open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ui {
    /// The name the user types and the messages use.
    pub name: &'static str,
    /// Label selector of its pods. `app=<name>` is what our renderer and Istio's add-on
    /// manifests both put on the pods, so installs of either are found.
    pub selector: String,
    /// The container port serving the UI.
    pub port: u16,
    /// Where the UI lives under that port.
    pub path: &'static str,
    /// The `addons.<key>` of the MeshInstall spec that installs it, for the "not installed" hint.
    pub addon: Option<&'static str>,
}

impl Ui {
    fn addon(name: &'static str, port: u16, path: &'static str) -> Ui {
        Ui {
            name,
            selector: format!("app={name}"),
            port,
            path,
            addon: Some(name),
        }
    }

    /// Ports and paths as the renderer in `operator/src/render/addons.rs` configures them.
    pub fn kiali() -> Ui {
        Ui::addon("kiali", 20001, "/kiali")
    }
    pub fn grafana() -> Ui {
        Ui::addon("grafana", 3000, "/")
    }
    pub fn prometheus() -> Ui {
        Ui::addon("prometheus", 9090, "/")
    }
    pub fn jaeger() -> Ui {
        Ui::addon("jaeger", 16686, "/jaeger")
    }
    pub fn zipkin() -> Ui {
        Ui::addon("zipkin", 9411, "/zipkin/")
    }

    /// The sidecar's admin page (mesh-proxy serves it on 15000, like Envoy).
    pub fn proxy(selector: String) -> Ui {
        Ui {
            name: "proxy",
            selector,
            port: 15000,
            path: "/",
            addon: None,
        }
    }

    /// meshd's debug page, on the `http-debug` port of its Deployment.
    pub fn controlz(selector: String) -> Ui {
        Ui {
            name: "controlz",
            selector,
            port: 8080,
            path: "/",
            addon: None,
        }
    }
}

/// The URL a browser opens for `ui` on a local address and port.
pub fn url(address: &str, port: u16, path: &str) -> String {
    let host = if address.contains(':') {
        format!("[{address}]")
    } else {
        address.to_owned()
    };
    format!("http://{host}:{port}{path}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_operator::InstallInput;
    use serde_json::Value;

    /// The pod templates of the rendered Deployments whose labels match `selector` (`k=v`).
    fn rendered_pods(sets: &[&str], selector: &str) -> Vec<Value> {
        let install = InstallInput {
            profile: Some("demo".to_owned()),
            overlays: Vec::new(),
            sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        }
        .resolve()
        .expect("the demo profile resolves");
        let (key, value) = selector.split_once('=').expect("k=v");
        mesh_operator::render(&install)
            .into_iter()
            .filter(|m| m.kind() == "Deployment")
            .map(|m| m.object["spec"]["template"].clone())
            .filter(|t| t["metadata"]["labels"][key] == value)
            .collect()
    }

    fn serves(template: &Value, port: u16) -> bool {
        template["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|c| c["ports"].as_array().into_iter().flatten())
            .any(|p| p["containerPort"] == port)
    }

    /// The table above must find what the renderer installs: its labels and its ports.
    #[test]
    fn every_ui_matches_the_rendered_pods() {
        let zipkin = ["addons.jaeger.enabled=false", "addons.zipkin.enabled=true"];
        for (ui, sets) in [
            (Ui::kiali(), &[][..]),
            (Ui::grafana(), &[][..]),
            (Ui::prometheus(), &[][..]),
            (Ui::jaeger(), &[][..]),
            (Ui::zipkin(), &zipkin[..]),
            (Ui::controlz("app=meshd".to_owned()), &[][..]),
        ] {
            let pods = rendered_pods(sets, &ui.selector);
            assert_eq!(pods.len(), 1, "one Deployment with pods {}", ui.selector);
            assert!(
                serves(&pods[0], ui.port),
                "{} serves port {}",
                ui.name,
                ui.port
            );
        }
    }

    #[test]
    fn urls_bracket_ipv6_hosts() {
        assert_eq!(
            url("localhost", 20001, "/kiali"),
            "http://localhost:20001/kiali"
        );
        assert_eq!(url("::1", 3000, "/"), "http://[::1]:3000/");
        assert_eq!(url("10.0.0.1", 9090, "/"), "http://10.0.0.1:9090/");
    }
}
