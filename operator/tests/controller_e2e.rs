//! The operator against a real cluster (`e2e/cluster.sh up`; kwok makes pods ready): install,
//! upgrade, pruning, drift repair, uninstall through the finalizer, an invalid spec, a
//! controller killed mid-reconcile, the dry run, and leader election.
//!
//! Each test has its own namespace and its own in-process controller restricted to it, so the
//! tests run in parallel without seeing each other's MeshInstalls.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DeleteParams, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config, ResourceExt};
use mesh_crds::meshinstall::Phase;
use mesh_crds::MeshInstall;
use mesh_operator::controller::apply::{self, wait_established};
use mesh_operator::controller::kinds::{self, RENDERED};
use mesh_operator::controller::leader::{Elector, LeaseConfig};
use mesh_operator::controller::manifests::cluster_scoped_name;
use mesh_operator::controller::metrics::Metrics;
use mesh_operator::controller::prune::Owner;
use mesh_operator::controller::{
    dry_run, operator_manifests, run, Change, ControllerConfig, RunConfig, FIELD_MANAGER,
};
use mesh_operator::{render, InstallInput, Manifest, Overlay};
use serde_json::json;
use tokio::sync::watch;
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(60);

async fn client() -> Client {
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .try_init();
    let Ok(path) = std::env::var("MESHCTL_E2E_KUBECONFIG") else {
        panic!(
            "MESHCTL_E2E_KUBECONFIG is not set: start the cluster: e2e/cluster.sh up, then \
             export MESHCTL_E2E_KUBECONFIG=$(e2e/cluster.sh kubeconfig)"
        );
    };
    let kubeconfig = Kubeconfig::read_from(&path)
        .unwrap_or_else(|e| panic!("reading {path}: {e}; start the cluster: e2e/cluster.sh up"));
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    let client = Client::try_from(config).expect("client");
    client.apiserver_version().await.unwrap_or_else(|e| {
        panic!("API server at {path}: {e}; start the cluster: e2e/cluster.sh up")
    });
    client
}

/// A client acting as the ServiceAccount `name` in `namespace` (the admin impersonates it), so
/// that the API server checks the operator's own RBAC.
async fn client_as(namespace: &str, name: &str) -> Client {
    let path = std::env::var("MESHCTL_E2E_KUBECONFIG").expect("MESHCTL_E2E_KUBECONFIG");
    let kubeconfig = Kubeconfig::read_from(&path).expect("kubeconfig");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig");
    config.auth_info.impersonate = Some(format!("system:serviceaccount:{namespace}:{name}"));
    config.auth_info.impersonate_groups = Some(vec![
        "system:serviceaccounts".into(),
        format!("system:serviceaccounts:{namespace}"),
        "system:authenticated".into(),
    ]);
    Client::try_from(config).expect("client")
}

/// Server-side applies plain objects (the operator's own manifests) as the admin.
async fn apply_values(client: &Client, objects: &[serde_json::Value]) {
    for object in objects {
        let kind = kinds::lookup(
            object["apiVersion"].as_str().unwrap_or_default(),
            object["kind"].as_str().unwrap_or_default(),
        )
        .unwrap_or_else(|| panic!("kind of {object}"));
        let dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
        let resource = kind.api_resource();
        let api: Api<DynamicObject> = match dynamic.namespace() {
            Some(ns) if kind.namespaced => Api::namespaced_with(client.clone(), &ns, &resource),
            _ => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            &dynamic.name_any(),
            &PatchParams::apply("meshctl-e2e").force(),
            &Patch::Apply(&dynamic),
        )
        .await
        .unwrap_or_else(|e| panic!("apply {}: {e}", dynamic.name_any()));
    }
}

/// The MeshInstall CRD, applied as `meshctl install` would.
async fn ensure_meshinstall_crd(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd = mesh_crds::meshinstall::crd();
    let name = crd.name_any();
    crds.patch(
        &name,
        &PatchParams::apply("meshctl-e2e").force(),
        &Patch::Apply(&crd),
    )
    .await
    .expect("apply MeshInstall CRD");
    wait_established(client, &name, WAIT)
        .await
        .expect("MeshInstall CRD established");
}

/// A fresh namespace `op-<what>-<suffix>`.
async fn namespace(client: &Client, what: &str) -> String {
    let suffix = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() % 1_000_000)
        .unwrap_or(0);
    let name = format!("op-{what}-{suffix}");
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .expect("create namespace");
    name
}

async fn delete_namespace(client: &Client, name: &str) {
    let _ = Api::<Namespace>::all(client.clone())
        .delete(name, &DeleteParams::background())
        .await;
}

/// An in-process operator restricted to one namespace.
struct Operator {
    task: JoinHandle<()>,
    shutdown: watch::Sender<bool>,
    metrics: Metrics,
}

impl Operator {
    fn start(client: &Client, namespace: &str) -> Operator {
        Operator::start_with(client, namespace, None)
    }

    fn start_with(client: &Client, namespace: &str, lease: Option<LeaseConfig>) -> Operator {
        Operator::start_full(client, namespace, lease)
    }

    fn start_full(client: &Client, namespace: &str, lease: Option<LeaseConfig>) -> Operator {
        let (shutdown, rx) = watch::channel(false);
        let metrics = Metrics::new();
        let config = RunConfig {
            controller: ControllerConfig {
                namespace: Some(namespace.to_owned()),
                instance: Some(format!("e2e-{namespace}")),
                ..ControllerConfig::default()
            },
            leader_election: lease,
            metrics_addr: None,
        };
        let client = client.clone();
        let m = metrics.clone();
        let task = tokio::spawn(async move {
            run(client, config, m, rx).await.expect("operator runs");
        });
        Operator {
            task,
            shutdown,
            metrics,
        }
    }

    /// Graceful stop, bounded.
    async fn stop(self) {
        self.shutdown.send_replace(true);
        tokio::time::timeout(Duration::from_secs(30), self.task)
            .await
            .expect("operator stops within 30 s")
            .expect("operator task");
    }

    /// The hard way: the task is dropped wherever it is.
    async fn kill(self) {
        self.task.abort();
        let _ = self.task.await;
    }
}

fn meshinstall(name: &str, namespace: &str, spec: serde_json::Value) -> MeshInstall {
    serde_json::from_value(json!({
        "apiVersion": "install.meshctl.dev/v1alpha1",
        "kind": "MeshInstall",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .expect("MeshInstall")
}

fn describe(mi: Option<&MeshInstall>) -> String {
    match mi {
        None => "MeshInstall does not exist".to_owned(),
        Some(mi) => format!(
            "generation {:?}, finalizers {:?}, status:\n{}",
            mi.metadata.generation,
            mi.metadata.finalizers,
            serde_yaml_ng::to_string(&mi.status).unwrap_or_default()
        ),
    }
}

/// Polls the MeshInstall until `done` holds; panics after [`WAIT`] with its status.
async fn wait_mi(
    api: &Api<MeshInstall>,
    name: &str,
    what: &str,
    done: impl Fn(Option<&MeshInstall>) -> bool,
) -> Duration {
    let started = Instant::now();
    loop {
        let mi = api.get_opt(name).await.expect("read MeshInstall");
        if done(mi.as_ref()) {
            return started.elapsed();
        }
        if started.elapsed() > WAIT {
            panic!(
                "timed out after {WAIT:?} waiting for {what}; {}",
                describe(mi.as_ref())
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Healthy at the current generation, with every component Healthy.
fn healthy(mi: Option<&MeshInstall>) -> bool {
    let Some(mi) = mi else { return false };
    let Some(status) = &mi.status else {
        return false;
    };
    status.phase == Some(Phase::Healthy)
        && status.observed_generation == mi.metadata.generation
        && !status.components.is_empty()
        && status
            .components
            .values()
            .all(|c| c.phase == Phase::Healthy)
        && status
            .conditions
            .iter()
            .any(|c| c.type_ == "Ready" && c.status == "True")
}

fn component_keys(mi: &MeshInstall) -> BTreeSet<String> {
    mi.status
        .as_ref()
        .map(|s| s.components.keys().cloned().collect())
        .unwrap_or_default()
}

/// Polls `check` until it returns `Ok`; panics after [`WAIT`] with its last error.
async fn eventually<F, Fut>(what: &str, check: F) -> Duration
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let started = Instant::now();
    loop {
        let last = match check().await {
            Ok(()) => return started.elapsed(),
            Err(e) => e,
        };
        if started.elapsed() > WAIT {
            panic!("timed out after {WAIT:?} waiting for {what}: {last}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every object carrying the owner labels of `owner`, as `Kind namespace/name`, with the number
/// of times each was listed (to catch duplicates).
async fn owned_objects(client: &Client, owner: &Owner) -> BTreeMap<String, usize> {
    let mut out = BTreeMap::new();
    for kind in RENDERED {
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &kind.api_resource());
        let list = api
            .list(&ListParams::default().labels(&owner.selector()))
            .await
            .expect("list owned objects");
        for item in list.items {
            if item.metadata.deletion_timestamp.is_some() || kind.kind == "CustomResourceDefinition"
            {
                continue;
            }
            let key = match item.namespace() {
                Some(ns) => format!("{} {ns}/{}", kind.kind, item.name_any()),
                None => format!("{} {}", kind.kind, item.name_any()),
            };
            *out.entry(key).or_insert(0) += 1;
        }
    }
    out
}

/// What the operator should render for `mi`, through the same merge the operator uses.
fn expected_render(mi: &MeshInstall) -> Vec<Manifest> {
    let merged = mesh_operator::controller::spec::resolve(mi).expect("spec resolves");
    render(&merged)
}

/// The objects of a render, without the Istio CRDs: those are shared by every install in the
/// cluster and carry the labels of whichever install applied them last.
fn display_set(manifests: &[Manifest]) -> BTreeSet<String> {
    manifests
        .iter()
        .filter(|m| m.kind() != "CustomResourceDefinition")
        .map(Manifest::display_name)
        .collect()
}

async fn exists(client: &Client, kind: &str, namespace: Option<&str>, name: &str) -> bool {
    let kind = kinds::by_kind(kind).expect("known kind");
    let resource = kind.api_resource();
    let api: Api<DynamicObject> = match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    };
    api.get_opt(name)
        .await
        .expect("read object")
        .is_some_and(|o| o.metadata.deletion_timestamp.is_none())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn install_upgrade_prune_repair_uninstall() {
    let client = client().await;
    ensure_meshinstall_crd(&client).await;
    let ns = namespace(&client, "life").await;
    let operator = Operator::start(&client, &ns);
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &ns);
    let owner = Owner {
        name: "main".into(),
        namespace: ns.clone(),
    };

    // minimal
    let started = Instant::now();
    api.create(
        &PostParams::default(),
        &meshinstall("main", &ns, json!({"profile": "minimal", "namespace": ns})),
    )
    .await
    .expect("create MeshInstall");
    wait_mi(&api, "main", "minimal Healthy", healthy).await;
    println!("minimal: create → Healthy in {:?}", started.elapsed());
    let mi = api.get("main").await.unwrap();
    assert_eq!(
        component_keys(&mi),
        ["base", "controlPlane"].map(String::from).into()
    );
    assert_eq!(
        mi.metadata.finalizers.as_deref(),
        Some(&["install.meshctl.dev/finalizer".to_owned()][..])
    );
    let minimal_objects = display_set(&expected_render(&mi));
    let owned = owned_objects(&client, &owner).await;
    assert_eq!(
        owned.keys().cloned().collect::<BTreeSet<_>>(),
        minimal_objects
    );

    // minimal → demo
    let started = Instant::now();
    api.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"profile": "demo"}})),
    )
    .await
    .expect("switch to demo");
    wait_mi(&api, "main", "demo Healthy", |mi| {
        healthy(mi) && mi.is_some_and(|m| component_keys(m).contains("addon/kiali"))
    })
    .await;
    println!("demo: profile switch → Healthy in {:?}", started.elapsed());
    let mi = api.get("main").await.unwrap();
    let keys = component_keys(&mi);
    for key in [
        "base",
        "controlPlane",
        "ingressGateway/mesh-ingressgateway",
        "egressGateway/mesh-egressgateway",
        "addon/prometheus",
        "addon/grafana",
        "addon/kiali",
        "addon/jaeger",
    ] {
        assert!(keys.contains(key), "{key} missing from {keys:?}");
    }
    let demo_objects = display_set(&expected_render(&mi));
    let owned = owned_objects(&client, &owner).await;
    assert_eq!(owned.keys().cloned().collect::<BTreeSet<_>>(), demo_objects);
    assert!(owned.values().all(|n| *n == 1), "duplicates: {owned:?}");
    let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client.clone(), &ns);
    let reasons: BTreeSet<String> = events
        .list(&ListParams::default())
        .await
        .expect("list events")
        .items
        .into_iter()
        .filter(|e| e.reporting_controller.as_deref() == Some("mesh-operator"))
        .filter_map(|e| e.reason)
        .collect();
    assert!(reasons.contains("Healthy"), "events: {reasons:?}");

    // drift: a deleted Deployment comes back
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let old_uid = deployments.get("meshd").await.unwrap().metadata.uid;
    deployments
        .delete("meshd", &DeleteParams::background())
        .await
        .expect("delete meshd");
    let took = eventually("Deployment meshd restored", || async {
        match deployments.get_opt("meshd").await {
            Ok(Some(d)) if d.metadata.uid != old_uid && d.metadata.deletion_timestamp.is_none() => {
                Ok(())
            }
            Ok(_) => Err("not recreated yet".into()),
            Err(e) => Err(e.to_string()),
        }
    })
    .await;
    println!("drift: deleted Deployment restored in {took:?}");

    // drift: an edited ConfigMap is put back
    let configmaps: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let original = configmaps
        .get("mesh")
        .await
        .unwrap()
        .data
        .unwrap_or_default();
    let key = original
        .keys()
        .next()
        .cloned()
        .expect("mesh ConfigMap has data");
    configmaps
        .patch(
            "mesh",
            &PatchParams::default(),
            &Patch::Merge(json!({"data": {key.clone(): "tampered: true\n"}})),
        )
        .await
        .expect("edit ConfigMap");
    let took = eventually("ConfigMap mesh restored", || async {
        let data = configmaps
            .get("mesh")
            .await
            .map_err(|e| e.to_string())?
            .data
            .unwrap_or_default();
        if data == original {
            Ok(())
        } else {
            Err(format!("{key} is {:?}", data.get(&key)))
        }
    })
    .await;
    println!("drift: edited ConfigMap restored in {took:?}");
    wait_mi(&api, "main", "Healthy after drift repair", healthy).await;

    // demo → minimal prunes the gateways and add-ons
    api.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"profile": "minimal"}})),
    )
    .await
    .expect("switch to minimal");
    wait_mi(&api, "main", "minimal Healthy again", |mi| {
        healthy(mi) && mi.is_some_and(|m| component_keys(m).len() == 2)
    })
    .await;
    eventually("gateway and add-on objects pruned", || async {
        let owned: BTreeSet<String> = owned_objects(&client, &owner).await.into_keys().collect();
        if owned == minimal_objects {
            Ok(())
        } else {
            Err(format!(
                "left over: {:?}",
                owned.difference(&minimal_objects).collect::<Vec<_>>()
            ))
        }
    })
    .await;
    for (kind, namespace, name) in [
        ("Deployment", Some(ns.as_str()), "mesh-egressgateway"),
        ("Deployment", Some(ns.as_str()), "mesh-ingressgateway"),
        ("Deployment", Some(ns.as_str()), "kiali"),
        ("ClusterRole", None, &format!("prometheus-{ns}")),
    ] {
        assert!(
            !exists(&client, kind, namespace, name).await,
            "{kind} {name} should be pruned"
        );
    }
    assert!(exists(&client, "Deployment", Some(&ns), "meshd").await);

    // delete: the finalizer removes cluster-scoped objects; CRDs stay
    assert!(exists(&client, "ClusterRole", None, &format!("meshd-{ns}")).await);
    assert!(
        exists(
            &client,
            "MutatingWebhookConfiguration",
            None,
            &format!("meshd-sidecar-injector-{ns}")
        )
        .await
    );
    api.delete("main", &DeleteParams::default())
        .await
        .expect("delete MeshInstall");
    wait_mi(&api, "main", "MeshInstall gone", |mi| mi.is_none()).await;
    for (kind, name) in [
        ("ClusterRole", format!("meshd-{ns}")),
        ("ClusterRoleBinding", format!("meshd-{ns}")),
        (
            "MutatingWebhookConfiguration",
            format!("meshd-sidecar-injector-{ns}"),
        ),
        (
            "ValidatingWebhookConfiguration",
            format!("meshd-validator-{ns}"),
        ),
    ] {
        assert!(
            !exists(&client, kind, None, &name).await,
            "{kind} {name} left behind"
        );
    }
    assert!(!exists(&client, "Deployment", Some(&ns), "meshd").await);
    for crd in [
        "virtualservices.networking.istio.io",
        "authorizationpolicies.security.istio.io",
    ] {
        assert!(
            exists(&client, "CustomResourceDefinition", None, crd).await,
            "CRD {crd} must stay"
        );
    }
    assert!(operator.metrics.reconciles.get() > 0);

    operator.stop().await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_profile_is_an_error_in_status() {
    let client = client().await;
    ensure_meshinstall_crd(&client).await;
    let ns = namespace(&client, "invalid").await;
    let operator = Operator::start(&client, &ns);
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &ns);

    api.create(
        &PostParams::default(),
        &meshinstall("bad", &ns, json!({"profile": "nope", "namespace": ns})),
    )
    .await
    .expect("create MeshInstall");
    wait_mi(&api, "bad", "phase Error", |mi| {
        mi.and_then(|m| m.status.as_ref())
            .is_some_and(|s| s.phase == Some(Phase::Error))
    })
    .await;
    let mi = api.get("bad").await.unwrap();
    let status = mi.status.clone().unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .expect("Ready condition");
    assert_eq!(ready.status, "False");
    assert_eq!(ready.reason, "InvalidSpec");
    assert!(
        ready.message.contains("unknown profile \"nope\""),
        "{}",
        ready.message
    );
    assert!(ready.message.contains("minimal"), "{}", ready.message);
    assert_eq!(status.observed_generation, mi.metadata.generation);

    // Nothing applied, and no requeue storm.
    let before = operator.metrics.reconciles.get();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = operator.metrics.reconciles.get();
    assert!(after - before <= 2, "{} reconciles in 5 s", after - before);
    let owned = owned_objects(
        &client,
        &Owner {
            name: "bad".into(),
            namespace: ns.clone(),
        },
    )
    .await;
    assert!(owned.is_empty(), "{owned:?}");

    // Fixing the spec installs.
    api.patch(
        "bad",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"profile": "minimal"}})),
    )
    .await
    .expect("fix profile");
    wait_mi(&api, "bad", "Healthy after the fix", healthy).await;

    api.delete("bad", &DeleteParams::default()).await.unwrap();
    wait_mi(&api, "bad", "MeshInstall gone", |mi| mi.is_none()).await;
    operator.stop().await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_mid_reconcile_converges_without_duplicates() {
    let client = client().await;
    ensure_meshinstall_crd(&client).await;
    let ns = namespace(&client, "kill").await;
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &ns);
    let owner = Owner {
        name: "main".into(),
        namespace: ns.clone(),
    };
    api.create(
        &PostParams::default(),
        &meshinstall("main", &ns, json!({"profile": "demo", "namespace": ns})),
    )
    .await
    .expect("create MeshInstall");
    let expected = display_set(&expected_render(&api.get("main").await.unwrap()));

    // Kill it once some, but not all, objects exist.
    let operator = Operator::start(&client, &ns);
    let started = Instant::now();
    let mut seen = 0;
    while started.elapsed() < WAIT {
        seen = owned_objects(&client, &owner).await.len();
        if seen > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    operator.kill().await;
    let partial = owned_objects(&client, &owner).await.len();
    println!(
        "killed after {:?} with {partial} of {} objects applied",
        started.elapsed(),
        expected.len()
    );
    assert!(seen > 0, "the operator applied nothing in {WAIT:?}");

    let operator = Operator::start(&client, &ns);
    wait_mi(&api, "main", "Healthy after restart", healthy).await;
    let owned = owned_objects(&client, &owner).await;
    assert_eq!(owned.keys().cloned().collect::<BTreeSet<_>>(), expected);
    assert!(owned.values().all(|n| *n == 1), "duplicates: {owned:?}");
    let replicasets: Api<k8s_openapi::api::apps::v1::ReplicaSet> =
        Api::namespaced(client.clone(), &ns);
    let per_deployment = replicasets
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|rs| {
            rs.metadata
                .owner_references?
                .first()
                .map(|o| o.name.clone())
        })
        .fold(BTreeMap::<String, usize>::new(), |mut m, d| {
            *m.entry(d).or_default() += 1;
            m
        });
    assert!(
        per_deployment.values().all(|n| *n == 1),
        "a Deployment rolled out twice: {per_deployment:?}"
    );

    api.delete("main", &DeleteParams::default()).await.unwrap();
    wait_mi(&api, "main", "MeshInstall gone", |mi| mi.is_none()).await;
    operator.stop().await;
    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dry_run_reports_create_change_unchanged_and_demo_becomes_healthy() {
    let client = client().await;
    ensure_meshinstall_crd(&client).await;
    let ns = namespace(&client, "dry").await;
    let mesh_ns = format!("{ns}-mesh");
    let api: Api<MeshInstall> = Api::namespaced(client.clone(), &ns);
    let mi = meshinstall(
        "main",
        &ns,
        json!({"profile": "demo", "namespace": mesh_ns}),
    );
    let manifests = expected_render(&mi);

    // Nothing installed: everything but the shared Istio CRDs is a create.
    let outcomes = dry_run(&client, &manifests, FIELD_MANAGER)
        .await
        .expect("dry run");
    assert_eq!(outcomes.len(), manifests.len());
    for o in &outcomes {
        if !o.object.starts_with("CustomResourceDefinition") {
            assert_eq!(o.change, Change::Create, "{}", o.object);
            assert!(o.live.is_none());
        }
    }
    assert!(
        !exists(&client, "Namespace", None, &mesh_ns).await,
        "the dry run created the namespace"
    );

    // Install demo for real and time it.
    let operator = Operator::start(&client, &ns);
    let started = Instant::now();
    api.create(&PostParams::default(), &mi)
        .await
        .expect("create MeshInstall");
    wait_mi(&api, "main", "demo Healthy", healthy).await;
    println!("demo: create → Healthy in {:?}", started.elapsed());

    // Installed: unchanged, CRDs aside (other installs relabel them).
    let outcomes = dry_run(&client, &manifests, FIELD_MANAGER)
        .await
        .expect("dry run");
    for o in outcomes
        .iter()
        .filter(|o| !o.object.starts_with("CustomResourceDefinition"))
    {
        assert_eq!(
            o.change,
            Change::Unchanged,
            "{}: live {:#?}\nafter {:#?}",
            o.object,
            o.live,
            o.after
        );
    }

    // A changed setting: the mesh ConfigMap changes, most things do not.
    let changed = InstallInput {
        profile: None,
        overlays: vec![Overlay {
            origin: "test".into(),
            text: serde_yaml_ng::to_string(
                &mesh_operator::controller::spec::overlay_document(&mi).unwrap(),
            )
            .unwrap(),
        }],
        sets: vec!["meshConfig.accessLogFile=/dev/null".into()],
    }
    .resolve()
    .expect("resolve");
    let outcomes = dry_run(&client, &render(&changed), FIELD_MANAGER)
        .await
        .expect("dry run");
    let verdict: BTreeMap<&str, Change> = outcomes
        .iter()
        .map(|o| (o.object.as_str(), o.change))
        .collect();
    let mesh_cm = format!("ConfigMap {mesh_ns}/mesh");
    assert_eq!(
        verdict.get(mesh_cm.as_str()),
        Some(&Change::Change),
        "{verdict:#?}"
    );
    assert_eq!(
        verdict.get(format!("Service {mesh_ns}/meshd").as_str()),
        Some(&Change::Unchanged)
    );
    assert!(outcomes.iter().all(|o| o.change != Change::Create));
    let unchanged = outcomes
        .iter()
        .filter(|o| o.change == Change::Unchanged)
        .count();
    assert!(unchanged > outcomes.len() / 2, "{verdict:#?}");
    // The dry run wrote nothing.
    let cm: Api<ConfigMap> = Api::namespaced(client.clone(), &mesh_ns);
    let data = cm.get("mesh").await.unwrap().data.unwrap_or_default();
    assert!(!data.values().any(|v| v.contains("/dev/null")), "{data:?}");

    // Same answer through the public apply for any field manager: a second apply is a no-op.
    let report = apply::apply(&client, &manifests, FIELD_MANAGER).await;
    assert!(report.failed.is_empty(), "{:?}", report.failed);

    api.delete("main", &DeleteParams::default()).await.unwrap();
    wait_mi(&api, "main", "MeshInstall gone", |mi| mi.is_none()).await;
    operator.stop().await;
    delete_namespace(&client, &ns).await;
    delete_namespace(&client, &mesh_ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_at_a_time() {
    let client = client().await;
    let ns = namespace(&client, "lease").await;
    let config = |identity: &str| LeaseConfig {
        lease_duration: Duration::from_secs(2),
        ..LeaseConfig::new(ns.clone(), identity)
    };
    let mut a = Elector::new(client.clone(), config("a"));
    let mut b = Elector::new(client.clone(), config("b"));

    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a creates the lease"
    );
    assert!(!b.try_acquire_or_renew().await.unwrap(), "b must wait");
    assert!(a.try_acquire_or_renew().await.unwrap(), "a renews");
    assert!(
        !b.try_acquire_or_renew().await.unwrap(),
        "renewed lease is not b's"
    );

    // a stops renewing: b takes over once the lease has not changed for its duration.
    tokio::time::sleep(Duration::from_millis(2300)).await;
    assert!(
        b.try_acquire_or_renew().await.unwrap(),
        "b takes the expired lease"
    );
    assert!(!a.try_acquire_or_renew().await.unwrap(), "a lost it");

    // b releases: a takes over without waiting.
    b.release().await.unwrap();
    assert!(
        a.try_acquire_or_renew().await.unwrap(),
        "a takes the released lease"
    );
    let lease = Api::<k8s_openapi::api::coordination::v1::Lease>::namespaced(client.clone(), &ns)
        .get("mesh-operator")
        .await
        .unwrap();
    let spec = lease.spec.unwrap();
    assert_eq!(spec.holder_identity.as_deref(), Some("a"));
    assert_eq!(spec.lease_transitions, Some(2));

    // Two whole operators on one Lease: one leads; when it stops, the other takes over.
    let lease = |identity: &str| LeaseConfig {
        name: "mesh-operator-run".into(),
        lease_duration: Duration::from_secs(3),
        renew_deadline: Duration::from_secs(2),
        retry_period: Duration::from_millis(500),
        ..LeaseConfig::new(ns.clone(), identity)
    };
    let first = Operator::start_with(&client, &ns, Some(lease("first")));
    let second = Operator::start_with(&client, &ns, Some(lease("second")));
    let leaders = |ops: [&Operator; 2]| ops.map(|o| o.metrics.leader.get());
    eventually("one leader", || async {
        match leaders([&first, &second]) {
            [1, 0] | [0, 1] => Ok(()),
            other => Err(format!("leader gauges {other:?}")),
        }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let now = leaders([&first, &second]);
    assert_eq!(now.iter().sum::<i64>(), 1, "{now:?}");
    let (leader, standby) = if now[0] == 1 {
        (first, second)
    } else {
        (second, first)
    };
    let ready_before = standby.metrics.ready();
    leader.stop().await;
    let took = eventually("standby takes over", || async {
        if standby.metrics.leader.get() == 1 {
            Ok(())
        } else {
            Err("still standby".into())
        }
    })
    .await;
    println!("lease: standby took over {took:?} after the leader stopped");
    assert!(ready_before, "a standby is ready");
    standby.stop().await;

    delete_namespace(&client, &ns).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn its_own_rbac_suffices_and_missing_permissions_are_named() {
    let admin = client().await;
    ensure_meshinstall_crd(&admin).await;
    let ns = namespace(&admin, "rbac").await;
    let objects = operator_manifests(&ns, "ghcr.io/meshctl/mesh-operator:e2e");
    apply_values(&admin, &objects).await;
    let role_name = cluster_scoped_name(&ns);
    // Give the authorizer's informers a moment to see the new binding.
    let as_operator = client_as(&ns, "mesh-operator").await;
    eventually("the operator's RBAC in force", || async {
        Api::<MeshInstall>::namespaced(as_operator.clone(), &ns)
            .list(&ListParams::default())
            .await
            .map(|_| ())
            .map_err(|e| e.to_string())
    })
    .await;

    let operator = Operator::start(&as_operator, &ns);
    let api: Api<MeshInstall> = Api::namespaced(admin.clone(), &ns);
    api.create(
        &PostParams::default(),
        &meshinstall("main", &ns, json!({"profile": "demo", "namespace": ns})),
    )
    .await
    .expect("create MeshInstall");
    wait_mi(
        &api,
        "main",
        "demo Healthy under the operator's own RBAC",
        healthy,
    )
    .await;

    // Take away writing Deployments: the next change names the missing permission.
    let mut restricted = objects
        .iter()
        .find(|o| o["kind"] == "ClusterRole")
        .cloned()
        .unwrap();
    for rule in restricted["rules"].as_array_mut().unwrap() {
        let resources = rule["resources"].as_array().cloned().unwrap_or_default();
        if rule["apiGroups"] == json!(["apps"]) && resources.contains(&json!("deployments")) {
            rule["verbs"] = json!(["get", "list", "watch", "delete"]);
        }
    }
    apply_values(&admin, &[restricted]).await;
    eventually("the restriction in force", || async {
        let review: k8s_openapi::api::authorization::v1::SubjectAccessReview =
            serde_json::from_value(json!({
                "spec": {
                    "user": format!("system:serviceaccount:{ns}:mesh-operator"),
                    "groups": ["system:serviceaccounts"],
                    "resourceAttributes": {"group": "apps", "resource": "deployments",
                                           "verb": "patch", "namespace": ns},
                }
            }))
            .unwrap();
        let answer =
            Api::<k8s_openapi::api::authorization::v1::SubjectAccessReview>::all(admin.clone())
                .create(&PostParams::default(), &review)
                .await
                .map_err(|e| e.to_string())?;
        match answer.status.map(|s| s.allowed) {
            Some(false) => Ok(()),
            other => Err(format!("allowed: {other:?}")),
        }
    })
    .await;
    api.patch(
        "main",
        &PatchParams::default(),
        &Patch::Merge(
            json!({"spec": {"components": {"controlPlane": {"k8s": {"replicaCount": 2}}}}}),
        ),
    )
    .await
    .expect("change replicas");
    let expected = format!("missing permission: patch deployments.apps in {ns}");
    wait_mi(
        &api,
        "main",
        "controlPlane Error naming the permission",
        |mi| {
            mi.and_then(|m| m.status.as_ref()).is_some_and(|s| {
                s.phase == Some(Phase::Error)
                    && s.components
                        .get("controlPlane")
                        .and_then(|c| c.message.as_deref())
                        .is_some_and(|m| m.starts_with(&expected))
            })
        },
    )
    .await;
    let status = api.get("main").await.unwrap().status.unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("False", "ApplyFailed")
    );
    assert!(ready.message.contains(&expected), "{}", ready.message);
    assert_eq!(
        status.components.get("base").map(|c| c.phase),
        Some(Phase::Healthy),
        "only the components that failed are in Error"
    );

    // Permission back: it recovers by itself (backoff retries).
    apply_values(&admin, &objects[2..3]).await;
    wait_mi(&api, "main", "Healthy once the permission is back", healthy).await;
    let meshd = Api::<Deployment>::namespaced(admin.clone(), &ns)
        .get("meshd")
        .await
        .unwrap();
    assert_eq!(meshd.spec.unwrap().replicas, Some(2));

    // Uninstall with the operator's RBAC too.
    api.delete("main", &DeleteParams::default()).await.unwrap();
    wait_mi(&api, "main", "MeshInstall gone", |mi| mi.is_none()).await;
    assert!(!exists(&admin, "ClusterRole", None, &format!("meshd-{ns}")).await);

    operator.stop().await;
    for (kind, name) in [
        ("ClusterRoleBinding", &role_name),
        ("ClusterRole", &role_name),
    ] {
        let resource = kinds::by_kind(kind).unwrap().api_resource();
        let _ = Api::<DynamicObject>::all_with(admin.clone(), &resource)
            .delete(name, &DeleteParams::default())
            .await;
    }
    delete_namespace(&admin, &ns).await;
}
