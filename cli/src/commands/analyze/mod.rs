//! `meshctl analyze`: finds what is wrong with a mesh configuration before it bites, from files,
//! the live cluster, or files laid over the cluster's objects.

mod cluster;
mod format;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::anyhow;
use clap::{ArgAction, Args, ValueEnum};
use mesh_analyze::parse::{parse_inputs, ParseOptions};
use mesh_analyze::{Level, MeshSettings, Message, Options, Suppression, ALL_ANALYZERS};

use crate::config_files::MeshConfigArgs;
use crate::kube_client::{self, ClusterArgs};

/// Exit codes, as istioctl analyze's.
pub const EXIT_FINDINGS: u8 = 79;
pub const EXIT_PARSE_ERROR: u8 = 65;
pub const EXIT_USAGE: u8 = 64;

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum OutputFormat {
    Log,
    Json,
    Yaml,
    Sarif,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    /// Files, directories (every .yaml/.yml/.json under them) or - for standard input; with the
    /// cluster, they are laid over its objects.
    #[arg(value_name = "FILE|DIR|-")]
    files: Vec<PathBuf>,
    /// Report on every namespace.
    #[arg(short = 'A', long = "all-namespaces", conflicts_with = "namespace")]
    all_namespaces: bool,
    /// Report on this namespace (default: the kubeconfig context's with the cluster, every
    /// namespace for files alone); also the namespace of file objects that name none.
    #[arg(short = 'n', long)]
    namespace: Option<String>,
    /// Read the cluster's objects (--use-kube=false: the files alone).
    #[arg(long = "use-kube", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    use_kube: bool,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value = "log")]
    output: OutputFormat,
    /// Exit 79 when a message is at or above this level (Info, Warning, Error).
    #[arg(long = "failure-threshold", default_value = "Error", value_parser = level)]
    failure_threshold: Level,
    /// Print messages at or above this level.
    #[arg(long = "output-threshold", default_value = "Info", value_parser = level)]
    output_threshold: Level,
    /// Suppress messages: CODE=Kind namespace/name (or Istio's CODE=Kind name.namespace), `*`
    /// wildcards allowed, e.g. "IST0102=Namespace *". Repeatable.
    #[arg(short = 'S', long = "suppress", value_name = "CODE=Kind ns/name")]
    suppress: Vec<String>,
    /// List the analyzers with what each checks, and exit.
    #[arg(short = 'L', long = "list-analyzers")]
    list_analyzers: bool,
    /// Run only this analyzer (see -L). Repeatable.
    #[arg(long = "analyzer", value_name = "NAME")]
    analyzers: Vec<String>,
    #[command(flatten)]
    mesh_config: MeshConfigArgs,
    /// How long reading the cluster may take.
    #[arg(long, default_value = "30s", value_parser = kube_client::parse_duration)]
    timeout: Duration,
    /// Skip documents of kinds analyze does not read (--ignore-unknown=false: report them as
    /// errors, exit 65).
    #[arg(long = "ignore-unknown", default_value_t = true, action = ArgAction::Set, num_args = 0..=1, default_missing_value = "true", value_name = "BOOL")]
    ignore_unknown: bool,
    #[command(flatten)]
    cluster: ClusterArgs,
}

fn level(text: &str) -> Result<Level, String> {
    Level::parse(text).ok_or_else(|| format!("{text:?} is not a level: use Info, Warning or Error"))
}

/// Why the command stopped: bad usage (64) or a failure (1).
enum Failure {
    Usage(String),
    Other(anyhow::Error),
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Other(e)
    }
}

pub fn run(args: AnalyzeArgs) -> ExitCode {
    match analyze(args) {
        Ok(code) => code,
        Err(Failure::Usage(message)) => {
            eprintln!("error: {message}");
            ExitCode::from(EXIT_USAGE)
        }
        Err(Failure::Other(e)) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn list_analyzers() {
    for a in ALL_ANALYZERS {
        let codes: Vec<String> = a
            .codes
            .iter()
            .map(|t| format!("{} {}", t.code, t.name))
            .collect();
        println!(
            "{}\n    {}\n    {}",
            a.name,
            a.description,
            codes.join(", ")
        );
    }
}

fn analyze(args: AnalyzeArgs) -> Result<ExitCode, Failure> {
    if args.list_analyzers {
        list_analyzers();
        return Ok(ExitCode::SUCCESS);
    }
    let suppressions = args
        .suppress
        .iter()
        .map(|s| Suppression::parse(s))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| Failure::Usage(e.to_string()))?;
    for name in &args.analyzers {
        if mesh_analyze::analyzers::by_name(name).is_none() {
            return Err(Failure::Usage(format!(
                "unknown analyzer {name:?}: `meshctl analyze -L` lists them"
            )));
        }
    }
    if !args.use_kube && args.files.is_empty() {
        return Err(Failure::Usage(
            "nothing to analyse: give files, directories or -, or leave out --use-kube=false to read the cluster".to_owned(),
        ));
    }
    for file in &args.files {
        if file.as_os_str() != "-" && !file.exists() {
            return Err(Failure::Usage(format!("{} does not exist", file.display())));
        }
    }
    let mut mesh_text = match &args.mesh_config.mesh_config_file {
        Some(path) => Some(crate::config_files::mesh_file(path)?),
        None => None,
    };

    // The cluster first: its default namespace is the file objects' default too.
    let mut cluster_objects = Vec::new();
    let mut context_namespace = None;
    let mut incomplete_kinds = Vec::new();
    if args.use_kube {
        let scope = if args.all_namespaces {
            None
        } else {
            args.namespace.as_deref()
        };
        let read = cluster::read(&args.cluster, scope, args.timeout).map_err(|e| {
            e.context("reading the cluster (to analyse the files alone, pass --use-kube=false)")
        })?;
        for warning in &read.warnings {
            eprintln!("warning: {warning}");
        }
        context_namespace = Some(read.default_namespace);
        cluster_objects = read.objects;
        incomplete_kinds = read.incomplete_kinds;
        if mesh_text.is_none() {
            mesh_text = read.mesh_config;
        }
    }
    let mesh = match &mesh_text {
        Some(text) => {
            let value: serde_json::Value = serde_yaml_ng::from_str(text)
                .map_err(|e| anyhow!("the mesh config is not valid YAML: {e}"))?;
            MeshSettings::from_mesh_config(&value)
        }
        None => MeshSettings::default(),
    };
    let default_namespace = args
        .namespace
        .clone()
        .or_else(|| context_namespace.clone())
        .unwrap_or_else(|| "default".to_owned());

    let inputs =
        mesh_analyze::input::read_inputs(&args.files).map_err(|e| Failure::Other(e.into()))?;
    let parsed = parse_inputs(
        inputs,
        &ParseOptions {
            default_namespace,
            ignore_unknown: args.ignore_unknown,
        },
    );
    for e in &parsed.errors {
        eprintln!("error: {e}");
    }
    let objects = mesh_analyze::overlay(cluster_objects, parsed.objects);
    let messages = mesh_analyze::analyze(
        &objects,
        &Options {
            mesh,
            from_cluster: args.use_kube,
            incomplete_kinds,
            analyzers: args.analyzers.clone(),
        },
    );

    // Which namespace is reported on.
    let scope = if args.all_namespaces {
        None
    } else {
        args.namespace.clone().or(context_namespace)
    };
    let kept: Vec<Message> = messages
        .into_iter()
        .filter(|m| !suppressions.iter().any(|s| s.matches(m)))
        .filter(|m| match &scope {
            None => true,
            Some(ns) => {
                m.resource.namespace.as_deref() == Some(ns)
                    || (m.resource.kind == "Namespace" && &m.resource.name == ns)
            }
        })
        .collect();
    let failing = kept.iter().any(|m| m.level() >= args.failure_threshold);
    let shown: Vec<&Message> = kept
        .iter()
        .filter(|m| m.level() >= args.output_threshold)
        .collect();

    let text = match args.output {
        OutputFormat::Log => format::log(&shown),
        OutputFormat::Json => format::json(&shown),
        OutputFormat::Yaml => format::yaml(&shown)?,
        OutputFormat::Sarif => format::sarif(&shown),
    };
    print!("{text}");
    if args.output == OutputFormat::Log && shown.len() < kept.len() && shown.is_empty() {
        eprintln!(
            "{} message(s) below --output-threshold {} not shown.",
            kept.len() - shown.len(),
            args.output_threshold
        );
    } else if args.output == OutputFormat::Log && kept.is_empty() && parsed.errors.is_empty() {
        let what = match &scope {
            Some(ns) => format!("namespace: {ns}"),
            None if args.use_kube => "all namespaces".to_owned(),
            None => "the input".to_owned(),
        };
        eprintln!("✔ No validation issues found when analyzing {what}.");
    }
    // Freeing a large mesh object by object takes longer than the process exit that frees it
    // at once.
    std::mem::forget(objects);
    Ok(if !parsed.errors.is_empty() {
        ExitCode::from(EXIT_PARSE_ERROR)
    } else if failing {
        ExitCode::from(EXIT_FINDINGS)
    } else {
        ExitCode::SUCCESS
    })
}
