pub mod manifest;
pub mod profile;
pub mod version;
