//! The mesh configuration analyzers behind `meshctl analyze`, shaped so that meshd's
//! validation webhook can run the same ones.
//!
//! Analysis is a pure function of a set of [`Object`]s (each with its origin: a file and line,
//! or the cluster) and the [`MeshSettings`]: [`analyze`] indexes the objects once
//! ([`Context`]) and runs every selected analyzer over the index, each in time linear in the
//! resources it checks. Nothing here does I/O but [`input::read_inputs`].
//!
//! The same analysis serves meshd's validation webhook: it builds [`Object`]s from its watch
//! cache with [`Origin::Cluster`] ([`Object::new`] reads and checks Istio specs as it builds
//! them), lays the object under review over them with [`overlay`], runs [`analyze`] with
//! `from_cluster: true`, and keeps the messages about that object.
//!
//! Message types ([`codes`]) reuse Istio's code and name where `istioctl analyze` detects the
//! same condition, so that users' `--suppress` lists carry over; meshctl's own are `MSH0xxx`.

pub mod analyzers;
pub mod codes;
pub mod context;
pub mod error;
pub mod fieldpath;
pub mod hosts;
pub mod injection;
pub mod input;
pub mod labels;
pub mod lines;
pub mod mesh;
pub mod message;
pub mod object;
pub mod parse;
pub mod report;
pub mod schema;
pub mod spec;
pub mod suppress;
pub mod workloads;

pub use analyzers::{Analyzer, ALL as ALL_ANALYZERS};
pub use context::Context;
pub use error::{InputError, SuppressError};
pub use mesh::MeshSettings;
pub use message::{Level, Message, MessageType};
pub use object::{FileLine, Object, Origin, ResourceRef};
pub use suppress::Suppression;

/// What to analyse with.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub mesh: MeshSettings,
    /// The objects are the cluster's (files overlaid on them, perhaps): absent means absent.
    pub from_cluster: bool,
    /// Kinds the cluster could not be read of in full (e.g. listing them was forbidden):
    /// references into them are checked only against the objects at hand.
    pub incomplete_kinds: Vec<String>,
    /// Run only the analyzers with these names (all when empty).
    pub analyzers: Vec<String>,
}

/// Every message the selected analyzers find, in the order of the resources.
pub fn analyze(objects: &[Object], options: &Options) -> Vec<Message> {
    let cx = Context::build(
        objects,
        &options.mesh,
        options.from_cluster,
        &options.incomplete_kinds,
    );
    let mut report = report::Report::new(objects);
    for analyzer in ALL_ANALYZERS {
        if options.analyzers.is_empty() || options.analyzers.iter().any(|n| n == analyzer.name) {
            (analyzer.run)(&cx, &mut report);
        }
    }
    report.finish()
}

/// The cluster's objects with the files' laid over them: a file's object replaces the
/// cluster's object of the same kind, namespace and name, so a change can be checked before it
/// is applied.
pub fn overlay(cluster: Vec<Object>, files: Vec<Object>) -> Vec<Object> {
    if cluster.is_empty() {
        return files;
    }
    let replaced: std::collections::HashSet<_> = files.iter().map(Object::key).collect();
    let mut out: Vec<Object> = cluster
        .into_iter()
        .filter(|o| !replaced.contains(&o.key()))
        .collect();
    out.extend(files);
    out
}
