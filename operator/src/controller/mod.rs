//! The in-cluster operator: keeps a cluster equal to each `MeshInstall` by rendering it, applying
//! the objects with server-side apply, pruning what the render no longer has, and reporting per
//! component health in the MeshInstall's status.
//!
//! One job per module:
//!
//! | module | job |
//! |---|---|
//! | [`kinds`] | the static table of the kinds the renderer produces (no discovery round trip) |
//! | [`spec`] | the live MeshInstall → the fully merged one (profile + the object as overlay) |
//! | [`apply`] | server-side apply, CRD establishment wait, dry run (create / change / unchanged) |
//! | [`prune`] | deleting owned objects the render no longer has; cleanup on delete |
//! | [`status`] | per component health from Deployments and pods, the status patch, Events |
//! | [`reconcile`] | the kube-runtime `Controller`, finalizer, drift watches, backoff |
//! | [`leader`] | leader election on a `coordination.k8s.io/v1` Lease |
//! | [`metrics`] | Prometheus metrics of reconciles |
//! | [`http`] | `/metrics`, `/healthz`, `/readyz` |
//! | [`manifests`] | the operator's own ServiceAccount, RBAC and Deployment |
//! | [`run`] | everything above wired together, as the `mesh-operator` binary runs it |

pub mod apply;
pub mod error;
pub mod http;
pub mod kinds;
pub mod leader;
pub mod manifests;
pub mod metrics;
pub mod prune;
pub mod reconcile;
pub mod run;
pub mod spec;
pub mod status;

pub use apply::{apply, dry_run, Change, DryRunOutcome};
pub use error::Error;
pub use manifests::operator_manifests;
pub use reconcile::ControllerConfig;
pub use run::{run, RunConfig};

/// Field manager of the operator's server-side applies.
pub const FIELD_MANAGER: &str = "mesh-operator";
/// Finalizer the operator puts on every MeshInstall it reconciles.
pub const FINALIZER: &str = "install.meshctl.dev/finalizer";
/// Annotation on a MeshInstall that lets pruning and uninstall delete CRDs (and so every Istio
/// resource users created) and the install namespaces.
pub const PURGE_ANNOTATION: &str = "install.meshctl.dev/purge-crds";
/// Label every rendered object carries.
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Value of [`LABEL_MANAGED_BY`] on rendered objects.
pub const MANAGED_BY: &str = "meshctl";
