//! Running the built `meshctl` as a user does: arguments, standard input, environment; its
//! stdout, stderr and exit code. Shared by the CLI test files.

#![allow(dead_code)] // each test file uses part of it

use std::io::Write;
use std::process::{Command, Output, Stdio};

/// Runs meshctl with `args`, `stdin` written to its standard input, and `env` set.
pub fn run(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_meshctl"))
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("meshctl starts");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(stdin.as_bytes())
        .expect("write stdin");
    child.wait_with_output().expect("meshctl runs")
}

/// Runs meshctl with no kubeconfig to find: never a developer's cluster.
pub fn offline(args: &[&str], stdin: &str) -> Output {
    run(args, stdin, &[("KUBECONFIG", "/nonexistent")])
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}
