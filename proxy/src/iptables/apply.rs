//! Running iptables: remove what an earlier run left, then load the new rules in one
//! `iptables-restore` transaction.

use std::io::Write;
use std::process::{Command, Stdio};

use anyhow::{anyhow, Context};

use super::options::Plan;
use super::rules::{removal_script, restore_script};

/// What a run did.
#[derive(Debug, PartialEq, Eq)]
pub struct Outcome {
    /// An earlier run's rules were found and removed first.
    pub replaced: bool,
    /// Rules loaded.
    pub rules: usize,
}

fn missing(tool: &str) -> anyhow::Error {
    anyhow!("{tool} not found on PATH: install iptables (Debian/Ubuntu: apt-get install iptables)")
}

fn save() -> anyhow::Result<String> {
    let out = Command::new("iptables-save")
        .args(["-t", "nat"])
        .output()
        .map_err(|_| missing("iptables-save"))?;
    if !out.status.success() {
        return Err(anyhow!(
            "iptables-save -t nat failed: {} (the init container needs NET_ADMIN and NET_RAW)",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn restore(script: &str) -> anyhow::Result<()> {
    let mut child = Command::new("iptables-restore")
        .arg("--noflush")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|_| missing("iptables-restore"))?;
    child
        .stdin
        .take()
        .context("iptables-restore stdin")?
        .write_all(script.as_bytes())
        .context("writing the rules to iptables-restore")?;
    let out = child
        .wait_with_output()
        .context("waiting for iptables-restore")?;
    if !out.status.success() {
        return Err(anyhow!(
            "iptables-restore refused the rules: {}\nrules:\n{script}",
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(())
}

/// Removes our rules; true when there were any.
pub fn cleanup() -> anyhow::Result<bool> {
    match removal_script(&save()?) {
        Some(script) => restore(&script).map(|()| true),
        None => Ok(false),
    }
}

/// Replaces any earlier capture rules with the plan's.
pub fn apply(plan: &Plan) -> anyhow::Result<Outcome> {
    let replaced = cleanup()?;
    let script = restore_script(plan);
    restore(&script)?;
    Ok(Outcome {
        replaced,
        rules: script.lines().filter(|l| l.starts_with("-A ")).count(),
    })
}
