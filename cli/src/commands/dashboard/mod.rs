//! `meshctl dashboard`: port-forwards through the Kubernetes API server to a mesh UI's pod and
//! opens it in the browser.

mod browser;
mod follow;
mod forward;
mod listen;
pub(crate) mod locate;
mod report;
mod ui;

use std::io::Write;

use anyhow::anyhow;
use clap::{ArgAction, Args, Subcommand};
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

use crate::kube_client::{self, ClusterArgs};
use locate::Selection;
use ui::Ui;

#[derive(Subcommand, Debug)]
pub enum DashboardCommand {
    /// Kiali, the mesh's service graph and configuration UI.
    Kiali(UiArgs),
    /// Grafana with the mesh's metrics.
    Grafana(UiArgs),
    /// Prometheus, holding the mesh's metrics.
    Prometheus(UiArgs),
    /// Jaeger, the tracing UI.
    Jaeger(UiArgs),
    /// Zipkin, the other tracing UI.
    Zipkin(UiArgs),
    /// A sidecar's admin page (port 15000): config dump, stats, log level.
    #[command(alias = "envoy")]
    Proxy(ProxyArgs),
    /// meshd's debug page (default: a meshd pod of the mesh's namespace).
    Controlz(PodArgs),
}

#[derive(Args, Debug, Clone)]
pub struct ForwardArgs {
    /// Namespace to look in (default: the mesh's namespace, from its MeshInstall).
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Local port (default: the UI's own port when free, else any free port).
    #[arg(short = 'p', long = "port")]
    port: Option<u16>,
    /// Local addresses to listen on, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    address: Vec<String>,
    /// Open the URL in a browser (when there is a display).
    #[arg(long, action = ArgAction::Set, default_value_t = true, num_args = 0..=1, default_missing_value = "true")]
    browser: bool,
    /// The port the UI listens on in the pod, when not the standard one.
    #[arg(long)]
    ui_port: Option<u16>,
    #[command(flatten)]
    cluster: ClusterArgs,
}

#[derive(Args, Debug)]
pub struct UiArgs {
    #[command(flatten)]
    forward: ForwardArgs,
}

#[derive(Args, Debug)]
pub struct ProxyArgs {
    /// The pod, as NAME or NAME.NAMESPACE.
    #[arg(
        value_name = "POD[.NS]",
        required_unless_present = "selector",
        conflicts_with = "selector"
    )]
    pod: Option<String>,
    /// Label selector choosing the pod instead of a name.
    #[arg(short = 'l', long = "selector")]
    selector: Option<String>,
    #[command(flatten)]
    forward: ForwardArgs,
}

#[derive(Args, Debug)]
pub struct PodArgs {
    /// The pod, as NAME or NAME.NAMESPACE.
    #[arg(value_name = "POD[.NS]", conflicts_with = "selector")]
    pod: Option<String>,
    /// Label selector choosing the pod instead of a name.
    #[arg(short = 'l', long = "selector")]
    selector: Option<String>,
    #[command(flatten)]
    forward: ForwardArgs,
}

/// Everything `run` needs once the command line is understood.
struct Plan {
    ui: Ui,
    selection: Selection,
    /// Namespaces to search, in order; None: the mesh's.
    namespaces: Option<Vec<String>>,
    /// Sidecar pages need the sidecar.
    needs_sidecar: bool,
    forward: ForwardArgs,
}

fn plan(command: DashboardCommand) -> Plan {
    let addon = |ui: Ui, args: UiArgs| Plan {
        namespaces: args.forward.namespace.clone().map(|ns| vec![ns]),
        ui,
        selection: Selection::Selector,
        needs_sidecar: false,
        forward: args.forward,
    };
    match command {
        DashboardCommand::Kiali(args) => addon(Ui::kiali(), args),
        DashboardCommand::Grafana(args) => addon(Ui::grafana(), args),
        DashboardCommand::Prometheus(args) => addon(Ui::prometheus(), args),
        DashboardCommand::Jaeger(args) => addon(Ui::jaeger(), args),
        DashboardCommand::Zipkin(args) => addon(Ui::zipkin(), args),
        DashboardCommand::Proxy(args) => {
            let args = PodArgs {
                pod: args.pod,
                selector: args.selector,
                forward: args.forward,
            };
            // clap requires the pod or -l for a proxy.
            let (ui, selection, namespace) = pod_target(&args, Ui::proxy, "");
            Plan {
                ui,
                selection,
                // Application pods: the user's namespace, as kubectl would take it.
                namespaces: Some(vec![namespace.unwrap_or_default()]),
                needs_sidecar: true,
                forward: args.forward,
            }
        }
        DashboardCommand::Controlz(args) => {
            let (ui, selection, namespace) = pod_target(&args, Ui::controlz, "app=meshd");
            Plan {
                ui,
                selection,
                namespaces: namespace.map(|ns| vec![ns]),
                needs_sidecar: false,
                forward: args.forward,
            }
        }
    }
}

/// `POD[.NS]` (split at the last dot, as istioctl does) or `-l SELECTOR`, else `default`.
fn pod_target(
    args: &PodArgs,
    make: fn(String) -> Ui,
    default: &str,
) -> (Ui, Selection, Option<String>) {
    let mut namespace = args.forward.namespace.clone();
    let (selector, selection) = match (&args.pod, &args.selector) {
        (Some(pod), _) => {
            let name = match pod.rsplit_once('.') {
                Some((name, ns)) => {
                    namespace = Some(ns.to_owned());
                    name.to_owned()
                }
                None => pod.clone(),
            };
            (String::new(), Selection::Named(name))
        }
        (None, Some(selector)) => (selector.clone(), Selection::Selector),
        (None, None) => (default.to_owned(), Selection::Selector),
    };
    (make(selector), selection, namespace)
}

pub fn run(command: DashboardCommand) -> anyhow::Result<()> {
    let mut plan = plan(command);
    if let Some(port) = plan.forward.ui_port {
        plan.ui.port = port;
    }
    kube_client::runtime()?.block_on(serve(plan))
}

async fn serve(plan: Plan) -> anyhow::Result<()> {
    let conn = kube_client::connect(&plan.forward.cluster).await?;
    let client = conn.client;
    let namespaces = match plan.namespaces {
        Some(list) => list
            .into_iter()
            .map(|ns| {
                if ns.is_empty() {
                    client.default_namespace().to_owned()
                } else {
                    ns
                }
            })
            .collect(),
        None => locate::mesh_namespaces(&client).await,
    };
    let ui = plan.ui;
    let (namespace, pod) = locate::find(&client, &namespaces, &ui, &plan.selection).await?;
    if plan.needs_sidecar {
        locate::check_has_sidecar(&pod, &namespace)?;
    }
    let pod_name = locate::pod_name(&pod);

    let bound = listen::bind(&plan.forward.address, plan.forward.port, ui.port)?;
    if let Some(note) = &bound.note {
        eprintln!("{note}");
    }
    let reporter = report::Reporter::default();
    let target = follow::spawn(
        client.clone(),
        namespace.clone(),
        ui.clone(),
        plan.selection.clone(),
        pod_name.clone(),
        reporter.clone(),
    );
    let forward = forward::Forward {
        pods: Api::<Pod>::namespaced(client, &namespace),
        namespace: namespace.clone(),
        port: ui.port,
        target,
        reporter,
    };
    for listener in bound.listeners {
        listener
            .set_nonblocking(true)
            .map_err(|e| anyhow!("cannot set up the local listener: {e}"))?;
        let listener = tokio::net::TcpListener::from_std(listener)
            .map_err(|e| anyhow!("cannot set up the local listener: {e}"))?;
        tokio::spawn(forward::accept_loop(listener, forward.clone()));
    }

    let first = plan
        .forward
        .address
        .first()
        .map(String::as_str)
        .unwrap_or("localhost");
    let url = ui::url(first, bound.port, ui.path);
    eprintln!(
        "forwarding {} port {} to pod {namespace}/{pod_name} port {}; Ctrl-C to stop",
        plan.forward.address.join(","),
        bound.port,
        ui.port
    );
    // The URL alone on stdout, so scripts can read it.
    println!("{url}");
    std::io::stdout().flush().ok();
    if plan.forward.browser {
        browser::open(&url);
    }
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| anyhow!("cannot wait for Ctrl-C: {e}"))?;
    eprintln!("stopped forwarding");
    Ok(())
}
