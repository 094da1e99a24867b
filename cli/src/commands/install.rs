//! `meshctl install`: the MeshInstall CRD, the operator, then the MeshInstall itself, and wait
//! until the operator reports every component healthy.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use clap::Args;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, Patch, PatchParams};
use kube::Client;
use mesh_crds::meshinstall::{MeshInstall, Phase};
use mesh_operator::controller::{self, kinds, Change};
use mesh_operator::render::{self, Component, Manifest, LABEL_OWNER_NAME, LABEL_OWNER_NAMESPACE};
use serde_json::Value;

use crate::input_args::InputArgs;
use crate::kube_client::{self, Access, ClusterArgs};

/// Field manager of meshctl's server-side applies.
pub const FIELD_MANAGER: &str = "meshctl";

#[derive(Args, Debug)]
pub struct InstallArgs {
    /// Install profile: default, demo, minimal or empty.
    #[arg(short = 'p', long = "profile")]
    profile: Option<String>,
    #[command(flatten)]
    input: InputArgs,
    /// Do not ask for confirmation.
    #[arg(short = 'y', long = "yes")]
    yes: bool,
    /// Server-side dry run: print what would be created or changed, apply nothing.
    #[arg(long, conflicts_with = "diff")]
    dry_run: bool,
    /// Print a diff of every object of the installation against the cluster, apply nothing.
    #[arg(long)]
    diff: bool,
    /// Install even when the CRDs belong to another installation.
    #[arg(long)]
    force: bool,
    /// How long to wait for every component to become healthy (e.g. 5m, 90s).
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = kube_client::parse_duration)]
    readiness_timeout: Duration,
    #[command(flatten)]
    cluster: ClusterArgs,
}

pub fn run(args: InstallArgs) -> anyhow::Result<()> {
    let install = args.input.to_input(args.profile.clone())?.resolve()?;
    kube_client::runtime()?.block_on(install_async(args, install))
}

/// The objects `install` applies before the MeshInstall: its CRD, then the operator.
pub struct Plan {
    pub crd: Vec<Manifest>,
    pub operator: Vec<Manifest>,
    pub name: String,
    pub namespace: String,
}

impl Plan {
    pub fn new(install: &MeshInstall) -> anyhow::Result<Plan> {
        let name = install.metadata.name.clone().unwrap_or_default();
        let namespace = install.metadata.namespace.clone().unwrap_or_default();
        let crd = Manifest {
            component: Component::Base,
            object: serde_json::to_value(mesh_crds::meshinstall::crd())?,
        };
        let image = render::Context::new(install).image(None, None, "mesh-operator");
        let operator = controller::operator_manifests(&namespace, &image)
            .into_iter()
            .map(|object| Manifest {
                component: Component::ControlPlane,
                object,
            })
            .collect();
        Ok(Plan {
            crd: vec![crd],
            operator,
            name,
            namespace,
        })
    }

    /// Every permission applying the plan and the MeshInstall needs.
    fn access(&self) -> Vec<Access> {
        let mut wanted = Vec::new();
        for m in self.crd.iter().chain(&self.operator) {
            if let Some(kind) = kinds::lookup(m.api_version(), m.kind()) {
                for verb in ["create", "patch"] {
                    wanted.push(Access::for_kind(verb, kind, m.namespace()));
                }
            }
        }
        for verb in ["create", "patch"] {
            wanted.push(Access {
                verb: verb.to_owned(),
                group: "install.meshctl.dev".to_owned(),
                resource: "meshinstalls".to_owned(),
                namespace: Some(self.namespace.clone()),
            });
        }
        wanted.sort();
        wanted.dedup();
        wanted
    }
}

async fn install_async(args: InstallArgs, install: MeshInstall) -> anyhow::Result<()> {
    let plan = Plan::new(&install)?;
    let conn = kube_client::connect(&args.cluster).await?;
    let client = conn.client;

    if args.diff {
        return diff(&client, &install).await;
    }
    if !args.dry_run {
        kube_client::check_access(&client, &plan.access()).await?;
    }
    check_owners(&client, &install, args.force).await?;
    if args.dry_run {
        return dry_run(&client, &plan, &install).await;
    }

    let components = component_keys(&install);
    eprintln!(
        "meshctl will install profile {} (revision {}) into namespace {}: MeshInstall {}/{} with {}",
        install.spec.profile.as_deref().unwrap_or("default"),
        install
            .spec
            .revision
            .as_deref()
            .filter(|r| !r.is_empty())
            .unwrap_or("default"),
        plan.namespace,
        plan.namespace,
        plan.name,
        if components.is_empty() {
            "no components".to_owned()
        } else {
            components.join(", ")
        }
    );
    kube_client::confirm_or_refuse(args.yes, "Proceed?")?;

    let started = Instant::now();
    for (what, manifests) in [
        ("the MeshInstall CRD", &plan.crd),
        ("the operator", &plan.operator),
    ] {
        let report = controller::apply(&client, manifests, FIELD_MANAGER).await;
        if let Some((_, message)) = report.failed.iter().next() {
            return Err(anyhow!("cannot apply {what}: {message}"));
        }
    }
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &plan.namespace);
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(&plan.name, &params, &Patch::Apply(&install))
        .await
        .map_err(|e| {
            anyhow!(
                "cannot apply MeshInstall {}/{}: {}",
                plan.namespace,
                plan.name,
                kube_client::root(&e)
            )
        })?;
    println!("applied MeshInstall {}/{}", plan.namespace, plan.name);
    follow(&api, &plan.name, args.readiness_timeout).await?;
    println!("✔ installed in {:.1}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// The status keys of the components the install enables, as the operator reports them.
fn component_keys(install: &MeshInstall) -> Vec<String> {
    let mut keys: Vec<String> = render::render(install)
        .iter()
        .map(|m| m.component.status_key())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

/// Refuses when a CRD the install writes already belongs to another MeshInstall.
async fn check_owners(client: &Client, install: &MeshInstall, force: bool) -> anyhow::Result<()> {
    let name = install.metadata.name.as_deref().unwrap_or_default();
    let namespace = install.metadata.namespace.as_deref().unwrap_or_default();
    let api: Api<CustomResourceDefinition> = Api::all(client.clone());
    for m in render::render(install) {
        if m.kind() != "CustomResourceDefinition" {
            continue;
        }
        let live = api.get_opt(m.name()).await.map_err(|e| {
            anyhow!(
                "cannot read CustomResourceDefinition {}: {}",
                m.name(),
                kube_client::root(&e)
            )
        })?;
        let Some(live) = live else { continue };
        let labels = live.metadata.labels.unwrap_or_default();
        let (Some(owner), Some(owner_ns)) = (
            labels.get(LABEL_OWNER_NAME),
            labels.get(LABEL_OWNER_NAMESPACE),
        ) else {
            continue;
        };
        if owner != name || owner_ns != namespace {
            if force {
                eprintln!(
                    "warning: CustomResourceDefinition {} belongs to MeshInstall {owner_ns}/{owner}; taking it over (--force)",
                    m.name()
                );
                return Ok(());
            }
            return Err(anyhow!(
                "CustomResourceDefinition {} belongs to another installation, MeshInstall {owner_ns}/{owner}; uninstall that one first, or pass --force to take the CRDs over",
                m.name()
            ));
        }
    }
    Ok(())
}

/// `--dry-run`: the server's verdict on every object install would apply.
async fn dry_run(client: &Client, plan: &Plan, install: &MeshInstall) -> anyhow::Result<()> {
    let mut manifests = plan.crd.clone();
    manifests.extend(plan.operator.iter().cloned());
    let outcomes = controller::dry_run(client, &manifests, FIELD_MANAGER)
        .await
        .map_err(|e| anyhow!("dry run failed: {e}"))?;
    for o in &outcomes {
        println!("{} {} (dry run)", o.object, verdict(o.change));
    }
    let crd_exists = outcomes.first().is_some_and(|o| o.change != Change::Create);
    let display = format!("MeshInstall {}/{}", plan.namespace, plan.name);
    let namespace_exists = outcomes
        .iter()
        .any(|o| o.object == format!("Namespace {}", plan.namespace) && o.change != Change::Create);
    if !crd_exists || !namespace_exists {
        println!("{display} created (dry run)");
        return Ok(());
    }
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &plan.namespace);
    let live = api
        .get_opt(&plan.name)
        .await
        .map_err(|e| anyhow!("cannot read {display}: {}", kube_client::root(&e)))?;
    let params = PatchParams::apply(FIELD_MANAGER).force().dry_run();
    let after = api
        .patch(&plan.name, &params, &Patch::Apply(install))
        .await
        .map_err(|e| anyhow!("dry run of {display} failed: {}", kube_client::root(&e)))?;
    let change = match live {
        None => Change::Create,
        Some(live) if comparable(&live)? == comparable(&after)? => Change::Unchanged,
        Some(_) => Change::Change,
    };
    println!("{display} {} (dry run)", verdict(change));
    Ok(())
}

fn comparable(install: &MeshInstall) -> anyhow::Result<Value> {
    let mut value = controller::apply::normalize(serde_json::to_value(install)?);
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    Ok(value)
}

fn verdict(change: Change) -> &'static str {
    match change {
        Change::Create => "created",
        Change::Change => "configured",
        Change::Unchanged => "unchanged",
    }
}

/// `--diff`: what the operator would change in the cluster for this MeshInstall.
async fn diff(client: &Client, install: &MeshInstall) -> anyhow::Result<()> {
    let manifests = render::render(install);
    let outcomes = controller::dry_run(client, &manifests, controller::FIELD_MANAGER)
        .await
        .map_err(|e| anyhow!("dry run failed: {e}"))?;
    let mut changed = 0;
    for o in &outcomes {
        match o.change {
            Change::Unchanged => {}
            Change::Create => {
                changed += 1;
                println!("+ {} (new)", o.object);
            }
            Change::Change => {
                changed += 1;
                let live = yaml(o.live.as_ref().unwrap_or(&Value::Null))?;
                let after = yaml(&o.after)?;
                let text = similar::TextDiff::from_lines(&live, &after);
                print!(
                    "{}",
                    text.unified_diff().context_radius(3).header(
                        &format!("{} (live)", o.object),
                        &format!("{} (install)", o.object)
                    )
                );
            }
        }
    }
    if changed == 0 {
        println!("no changes: the cluster matches the installation");
    }
    Ok(())
}

fn yaml(value: &Value) -> anyhow::Result<String> {
    let mut value = value.clone();
    if let Some(obj) = value.as_object_mut() {
        obj.remove("status");
    }
    Ok(serde_yaml_ng::to_string(&value)?)
}

/// Polls the MeshInstall every second until the operator reports it Healthy for its current
/// generation, showing per component progress.
pub async fn follow(api: &Api<MeshInstall>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let tty = std::io::stdout().is_terminal();
    let multi = indicatif::MultiProgress::new();
    let mut bars: BTreeMap<String, indicatif::ProgressBar> = BTreeMap::new();
    let mut last: BTreeMap<String, (Phase, Option<String>)> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    let style = indicatif::ProgressStyle::with_template("{spinner} {msg}")
        .map_err(|e| anyhow!("progress style: {e}"))?;
    let done = indicatif::ProgressStyle::with_template("{msg}")
        .map_err(|e| anyhow!("progress style: {e}"))?;
    let mut last_overall: Option<String> = None;
    loop {
        let current = api
            .get_opt(name)
            .await
            .map_err(|e| anyhow!("cannot read MeshInstall {name}: {}", kube_client::root(&e)))?
            .ok_or_else(|| anyhow!("MeshInstall {name} disappeared while waiting"))?;
        let generation = current.metadata.generation;
        let status = current.status.clone().unwrap_or_default();
        let current_gen =
            status.observed_generation.is_some() && status.observed_generation == generation;
        for (key, comp) in &status.components {
            let state = (comp.phase, comp.message.clone());
            if last.get(key) == Some(&state) {
                continue;
            }
            let line = component_line(key, comp.phase, comp.message.as_deref());
            if tty {
                let bar = bars.entry(key.clone()).or_insert_with(|| {
                    let b = multi.add(indicatif::ProgressBar::new_spinner());
                    b.set_style(style.clone());
                    b.enable_steady_tick(Duration::from_millis(120));
                    b
                });
                match comp.phase {
                    Phase::Healthy | Phase::Error => {
                        bar.set_style(done.clone());
                        bar.finish_with_message(line);
                    }
                    _ => {
                        bar.set_style(style.clone());
                        bar.reset();
                        bar.enable_steady_tick(Duration::from_millis(120));
                        bar.set_message(line);
                    }
                }
            } else {
                println!("{line}");
            }
            last.insert(key.clone(), state);
        }
        let phase = status.phase.unwrap_or_default();
        if !tty {
            let overall = format!("{phase:?}");
            if last_overall.as_deref() != Some(overall.as_str()) {
                println!("MeshInstall {name}: {overall}");
                last_overall = Some(overall);
            }
        }
        if current_gen && phase == Phase::Healthy {
            for bar in bars.values() {
                bar.finish();
            }
            return Ok(());
        }
        if Instant::now() >= deadline {
            for bar in bars.values() {
                bar.abandon();
            }
            let mut not_ready: Vec<String> = status
                .components
                .iter()
                .filter(|(_, c)| c.phase != Phase::Healthy)
                .map(|(k, c)| {
                    format!(
                        "{k} ({:?}{})",
                        c.phase,
                        c.message
                            .as_deref()
                            .map(|m| format!(": {m}"))
                            .unwrap_or_default()
                    )
                })
                .collect();
            if not_ready.is_empty() {
                not_ready.push(if current_gen {
                    format!("MeshInstall {name} is {phase:?}")
                } else {
                    format!(
                        "the operator has not reconciled MeshInstall {name} yet (is mesh-operator running?)"
                    )
                });
            }
            return Err(anyhow!(
                "not ready after {}s: {}",
                timeout.as_secs(),
                not_ready.join("; ")
            ));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

fn component_line(key: &str, phase: Phase, message: Option<&str>) -> String {
    match phase {
        Phase::Healthy => format!("✔ {key}"),
        Phase::Error => format!("✘ {key}: {}", message.unwrap_or("error")),
        other => match message {
            Some(m) => format!("… {key}: {other:?}: {m}"),
            None => format!("… {key}: {other:?}"),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mesh_operator::InstallInput;

    fn resolve(sets: &[&str]) -> MeshInstall {
        InstallInput {
            profile: Some("demo".to_owned()),
            overlays: Vec::new(),
            sets: sets.iter().map(|s| (*s).to_owned()).collect(),
        }
        .resolve()
        .expect("valid input")
    }

    #[test]
    fn plan_applies_the_crd_then_the_operator_in_the_install_namespace() {
        let install = resolve(&["namespace=team-mesh", "hub=example.com/mesh", "tag=1.2.3"]);
        let plan = Plan::new(&install).expect("plan");
        assert_eq!(plan.name, "default");
        assert_eq!(plan.namespace, "team-mesh");
        assert_eq!(plan.crd.len(), 1);
        assert_eq!(plan.crd[0].name(), "meshinstalls.install.meshctl.dev");
        let deployment = plan
            .operator
            .iter()
            .find(|m| m.kind() == "Deployment")
            .expect("operator Deployment");
        assert_eq!(deployment.namespace(), Some("team-mesh"));
        assert!(serde_json::to_string(&deployment.object)
            .expect("json")
            .contains("example.com/mesh/mesh-operator:1.2.3"));
    }

    #[test]
    fn access_covers_every_kind_written() {
        let install = resolve(&["namespace=team-mesh"]);
        let wanted = Plan::new(&install).expect("plan").access();
        let has = |verb: &str, resource: &str, ns: Option<&str>| {
            wanted
                .iter()
                .any(|a| a.verb == verb && a.resource == resource && a.namespace.as_deref() == ns)
        };
        assert!(has("create", "customresourcedefinitions", None));
        assert!(has("patch", "clusterroles", None));
        assert!(has("create", "clusterrolebindings", None));
        assert!(has("patch", "deployments", Some("team-mesh")));
        assert!(has("create", "serviceaccounts", Some("team-mesh")));
        assert!(has("patch", "meshinstalls", Some("team-mesh")));
    }

    #[test]
    fn revision_names_the_meshinstall() {
        let install = resolve(&["revision=canary"]);
        let plan = Plan::new(&install).expect("plan");
        assert_eq!(plan.name, "canary");
        assert_eq!(plan.namespace, "mesh-system");
    }

    #[test]
    fn component_lines() {
        assert_eq!(component_line("base", Phase::Healthy, None), "✔ base");
        assert_eq!(
            component_line("controlPlane", Phase::Error, Some("image pull failed")),
            "✘ controlPlane: image pull failed"
        );
        assert_eq!(
            component_line("addon/kiali", Phase::Reconciling, Some("0/1 ready")),
            "… addon/kiali: Reconciling: 0/1 ready"
        );
    }

    #[test]
    fn components_of_the_minimal_profile() {
        let install = InstallInput {
            profile: Some("minimal".to_owned()),
            overlays: Vec::new(),
            sets: Vec::new(),
        }
        .resolve()
        .expect("valid input");
        assert_eq!(component_keys(&install), ["base", "controlPlane"]);
    }
}
