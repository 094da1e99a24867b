//! The install pipeline shared by `meshctl` and the operator: a profile, overlays and `--set`
//! values merged into one MeshInstall (`input`), and that MeshInstall rendered into the ordered
//! Kubernetes objects of the mesh (`render`).

pub mod controller;
pub mod diff;
pub mod error;
pub mod input;
pub mod merge;
pub mod profile;
pub mod render;
pub mod setpath;

pub use error::InputError;
pub use input::{InstallInput, Overlay};
pub use render::{render, Component, Manifest};

/// The version stamped on rendered objects and used as the default image tag.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
