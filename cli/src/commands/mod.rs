pub mod dashboard;
pub mod install;
pub mod kube_inject;
pub mod manifest;
pub mod profile;
pub mod uninstall;
pub mod verify;
pub mod version;
