//! Reading manifests: `-` (standard input), files, and directories (every `.yaml`, `.yml` and
//! `.json` file under them, recursively, in path order), and splitting multi-document YAML with
//! the line each document starts on. `meshctl kube-inject` and `meshctl analyze` share it.

use std::path::{Path, PathBuf};

use crate::error::InputError;

/// One input: its name for messages and its text.
#[derive(Debug)]
pub struct Input {
    pub origin: String,
    pub text: String,
}

/// Reads every path in order; a directory contributes its manifest files sorted by path.
pub fn read_inputs(paths: &[PathBuf]) -> Result<Vec<Input>, InputError> {
    let mut inputs = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut text).map_err(|e| {
                InputError::Read {
                    path: PathBuf::from("<stdin>"),
                    message: e.to_string(),
                }
            })?;
            inputs.push(Input {
                origin: "<stdin>".to_owned(),
                text,
            });
        } else if path.is_dir() {
            let mut files = Vec::new();
            collect(path, &mut files)?;
            files.sort();
            for file in files {
                inputs.push(read_file(&file)?);
            }
        } else {
            inputs.push(read_file(path)?);
        }
    }
    Ok(inputs)
}

fn read_file(path: &Path) -> Result<Input, InputError> {
    let text = std::fs::read_to_string(path).map_err(|e| InputError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })?;
    Ok(Input {
        origin: path.display().to_string(),
        text,
    })
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> Result<(), InputError> {
    let unreadable = |e: std::io::Error| InputError::Read {
        path: dir.to_owned(),
        message: e.to_string(),
    };
    for entry in std::fs::read_dir(dir).map_err(unreadable)? {
        let path = entry.map_err(unreadable)?.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| matches!(e, "yaml" | "yml" | "json"))
        {
            files.push(path);
        }
    }
    Ok(())
}

/// A document's text and the line it starts on (1-based) in its input.
pub struct Document<'a> {
    pub text: &'a str,
    pub first_line: usize,
}

/// Splits at `---` lines. A line starting with `---` at column 0 always ends a document: block
/// scalars are indented, so none can contain one.
pub fn split(text: &str) -> Vec<Document<'_>> {
    let mut docs = Vec::new();
    let mut start = 0;
    let mut first_line = 1;
    let mut offset = 0;
    for (line_no, line) in (1..).zip(text.split_inclusive('\n')) {
        let content = line.trim_end_matches(['\n', '\r']);
        if content == "---" || content.starts_with("--- ") || content.starts_with("---\t") {
            docs.push(Document {
                text: &text[start..offset],
                first_line,
            });
            // `--- {inline: doc}` keeps its content on the separator line.
            let rest = content[3..].trim_start();
            if rest.is_empty() || rest.starts_with('#') {
                start = offset + line.len();
                first_line = line_no + 1;
            } else {
                start = offset + 3;
                first_line = line_no;
            }
        }
        offset += line.len();
    }
    docs.push(Document {
        text: &text[start..],
        first_line,
    });
    docs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_keeps_text_and_line_numbers() {
        let text = "# head\na: 1\n---\nb: 2\n--- # comment\n\nc: |\n  --- not a separator\n---\n";
        let docs = split(text);
        let texts: Vec<&str> = docs.iter().map(|d| d.text).collect();
        assert_eq!(
            texts,
            [
                "# head\na: 1\n",
                "b: 2\n",
                "\nc: |\n  --- not a separator\n",
                ""
            ]
        );
        let lines: Vec<usize> = docs.iter().map(|d| d.first_line).collect();
        assert_eq!(lines, [1, 4, 6, 10]);
    }

    #[test]
    fn directories_are_read_recursively_in_path_order() {
        let dir = std::env::temp_dir().join(format!("mesh-analyze-input-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("b")).unwrap();
        std::fs::write(dir.join("b/z.yaml"), "z: 1\n").unwrap();
        std::fs::write(dir.join("a.yml"), "a: 1\n").unwrap();
        std::fs::write(dir.join("notes.txt"), "not a manifest\n").unwrap();
        let inputs = read_inputs(std::slice::from_ref(&dir)).unwrap();
        let names: Vec<String> = inputs
            .iter()
            .map(|i| {
                i.origin
                    .trim_start_matches(&dir.display().to_string())
                    .to_owned()
            })
            .collect();
        assert_eq!(names, ["/a.yml", "/b/z.yaml"]);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = read_inputs(&[dir.join("nope.yaml")]).unwrap_err();
        assert!(missing.to_string().starts_with("cannot read "), "{missing}");
    }
}
