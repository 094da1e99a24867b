//! The injection settings meshd serves with: the injector ConfigMap (`values`, `config`) and the
//! mesh config, mounted as files. Kubernetes updates mounted ConfigMaps in place, so the files
//! are re-read periodically; a change that does not parse is logged and the settings in force
//! stay, so one bad edit cannot stop every pod from being created.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use mesh_inject::config::Source;
use mesh_inject::{InjectConfig, InjectError};
use thiserror::Error;
use tracing::{error, info};

#[derive(Debug, Error)]
pub enum LoadError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error(transparent)]
    Invalid(#[from] InjectError),
}

/// Where the settings are: the injector ConfigMap's directory and the mesh config file.
#[derive(Debug, Clone)]
pub struct Files {
    pub inject_dir: PathBuf,
    pub mesh_config: PathBuf,
}

/// The texts the settings were parsed from, compared to notice a change.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Texts {
    values: String,
    policy: Option<String>,
    mesh: Option<String>,
}

impl Files {
    fn texts(&self) -> Result<Texts, LoadError> {
        let values_path = self.inject_dir.join("values");
        Ok(Texts {
            values: read(&values_path)?,
            policy: read_optional(&self.inject_dir.join("config"))?,
            mesh: read_optional(&self.mesh_config)?,
        })
    }

    fn parse(&self, texts: &Texts) -> Result<InjectConfig, LoadError> {
        let values_origin = self.inject_dir.join("values").display().to_string();
        let policy_origin = self.inject_dir.join("config").display().to_string();
        let mesh_origin = self.mesh_config.display().to_string();
        Ok(InjectConfig::from_sources(
            &Source {
                origin: &values_origin,
                text: &texts.values,
            },
            texts
                .policy
                .as_deref()
                .map(|text| Source {
                    origin: &policy_origin,
                    text,
                })
                .as_ref(),
            texts
                .mesh
                .as_deref()
                .map(|text| Source {
                    origin: &mesh_origin,
                    text,
                })
                .as_ref(),
        )?)
    }

    /// Reads and parses the settings once.
    pub fn load(&self) -> Result<InjectConfig, LoadError> {
        self.parse(&self.texts()?)
    }
}

fn read(path: &Path) -> Result<String, LoadError> {
    std::fs::read_to_string(path).map_err(|source| LoadError::Read {
        path: path.display().to_string(),
        source,
    })
}

fn read_optional(path: &Path) -> Result<Option<String>, LoadError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(LoadError::Read {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// The settings in force, shared by every request.
#[derive(Clone)]
pub struct Current(Arc<RwLock<Arc<InjectConfig>>>);

impl Current {
    pub fn new(config: InjectConfig) -> Current {
        Current(Arc::new(RwLock::new(Arc::new(config))))
    }

    pub fn get(&self) -> Arc<InjectConfig> {
        match self.0.read() {
            Ok(guard) => guard.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    fn set(&self, config: InjectConfig) {
        let config = Arc::new(config);
        match self.0.write() {
            Ok(mut guard) => *guard = config,
            Err(poisoned) => *poisoned.into_inner() = config,
        }
    }
}

/// Loads the settings, failing when the first load does; then re-reads them every `every`.
pub fn load_and_follow(files: Files, every: Duration) -> Result<Current, LoadError> {
    let first = files.texts()?;
    let current = Current::new(files.parse(&first)?);
    let following = current.clone();
    tokio::spawn(async move {
        let mut last = first;
        let mut last_error: Option<String> = None;
        loop {
            tokio::time::sleep(every).await;
            let texts = match files.texts() {
                Ok(t) => t,
                Err(e) => {
                    report_once(&mut last_error, e.to_string());
                    continue;
                }
            };
            if texts == last {
                continue;
            }
            match files.parse(&texts) {
                Ok(config) => {
                    following.set(config);
                    info!("injection settings reloaded");
                    last = texts;
                    last_error = None;
                }
                Err(e) => report_once(&mut last_error, e.to_string()),
            }
        }
    });
    Ok(current)
}

/// Logs an error when it is new, so a file that stays broken does not flood the log.
fn report_once(last: &mut Option<String>, message: String) {
    if last.as_deref() != Some(message.as_str()) {
        error!(error = %message, "injection settings not reloaded; the previous ones stay in force");
        *last = Some(message);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const VALUES: &str = r#"{"proxyImage": "ghcr.io/meshctl/mesh-proxy:0.1.0", "meshdAddress": "meshd.mesh-system.svc:15012"}"#;

    fn files(dir: &Path) -> Files {
        Files {
            inject_dir: dir.join("inject"),
            mesh_config: dir.join("mesh"),
        }
    }

    #[test]
    fn loads_values_with_optional_policy_and_mesh() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("inject")).expect("mkdir");
        std::fs::write(dir.path().join("inject/values"), VALUES).expect("write");
        let config = files(dir.path()).load().expect("loads");
        assert_eq!(config.values.trust_domain, "cluster.local");
        std::fs::write(dir.path().join("mesh"), "trustDomain: example.org\n").expect("write");
        let config = files(dir.path()).load().expect("loads");
        assert_eq!(config.values.trust_domain, "example.org");
    }

    #[test]
    fn a_missing_values_file_is_named() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = files(dir.path()).load().expect_err("no values");
        assert!(err.to_string().contains("inject/values"), "{err}");
    }

    #[tokio::test]
    async fn a_bad_change_keeps_the_settings_in_force_and_a_good_one_applies() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(dir.path().join("inject")).expect("mkdir");
        std::fs::write(dir.path().join("inject/values"), VALUES).expect("write");
        let current = load_and_follow(files(dir.path()), Duration::from_millis(20)).expect("loads");
        std::fs::write(dir.path().join("mesh"), "trustDomain: [\n").expect("write");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(current.get().values.trust_domain, "cluster.local");
        std::fs::write(dir.path().join("mesh"), "trustDomain: example.org\n").expect("write");
        let mut waited = 0;
        while current.get().values.trust_domain != "example.org" && waited < 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            waited += 1;
        }
        assert_eq!(current.get().values.trust_domain, "example.org");
    }
}
