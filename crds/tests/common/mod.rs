//! Reading the YAML fixtures, shared by the integration tests.

use std::path::{Path, PathBuf};

/// `tests/fixtures/<dir>`.
fn fixture_dir(dir: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(dir)
}

/// Every document of every fixture file, with the name of the file and its index in the file.
pub fn fixture_documents(dir: &str) -> Vec<(String, String)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(fixture_dir(dir))
        .expect("fixture directory")
        .map(|e| e.expect("fixture entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no fixtures found");
    let mut docs = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("readable fixture");
        let name = file
            .file_name()
            .expect("file name")
            .to_string_lossy()
            .to_string();
        for (i, doc) in split_documents(&text).into_iter().enumerate() {
            docs.push((format!("{name}#{i}"), doc));
        }
    }
    docs
}

/// Splits a multi-document YAML stream on `---` lines, dropping empty documents. Each document is
/// then parsed on its own from text, as `kubectl` does with a file.
fn split_documents(text: &str) -> Vec<String> {
    let mut docs = vec![String::new()];
    for line in text.lines() {
        if line.trim_end() == "---" {
            docs.push(String::new());
        } else if let Some(doc) = docs.last_mut() {
            doc.push_str(line);
            doc.push('\n');
        }
    }
    docs.into_iter()
        .filter(|d| {
            d.lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        })
        .collect()
}
