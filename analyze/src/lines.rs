//! The line of a field in block-style YAML, found from the text alone (serde gives values no
//! positions). Only the document of a message is scanned, and only when it has one, so the cost
//! stays with the findings, not with the input.
//!
//! The scan understands block mappings, block sequences (`- key: v` included) and skips block
//! scalars; a path into flow style (`{a: 1}`) or JSON stops at the deepest line it could find.

use crate::fieldpath::{FieldPath, Seg};

/// One entry of the outline: a key or a sequence dash, at its column.
struct Entry<'a> {
    line: usize,
    column: usize,
    /// `-` for a sequence item, else the text from the key on.
    text: &'a str,
}

/// The 1-based line (within `text`) of the deepest part of `path` that exists, or None when
/// not even the first key is found.
pub fn locate(text: &str, path: &FieldPath) -> Option<usize> {
    if text.trim_start().starts_with(['{', '[']) {
        return None;
    }
    let entries = outline(text);
    let mut scope = 0..entries.len();
    let mut found = None;
    for seg in &path.0 {
        let Some(first) = entries.get(scope.start) else {
            break;
        };
        if scope.is_empty() {
            break;
        }
        let column = first.column;
        let at_column = scope.clone().filter(|&i| entries[i].column == column);
        let hit = match seg {
            Seg::Key(key) => at_column
                .filter(|&i| entries[i].text != "-")
                .find(|&i| key_of(entries[i].text) == Some(key.as_str())),
            Seg::Index(n) => at_column.filter(|&i| entries[i].text == "-").nth(*n),
        };
        let Some(i) = hit else { break };
        found = Some(entries[i].line);
        // A key's value may be a sequence at the key's own column (`key:` then `- a`).
        let is_key = entries[i].text != "-";
        let end = (i + 1..scope.end)
            .find(|&j| {
                entries[j].column < column
                    || (entries[j].column == column && !(is_key && entries[j].text == "-"))
            })
            .unwrap_or(scope.end);
        scope = i + 1..end;
    }
    found
}

/// Splits every significant line into entries: `  - name: x` is a dash at column 2 and
/// `name: x` at column 4. Comments, blank lines and block scalar bodies are left out.
fn outline(text: &str) -> Vec<Entry<'_>> {
    let mut entries = Vec::new();
    let mut scalar_body_above: Option<usize> = None;
    for (no, raw) in (1..).zip(text.lines()) {
        let indent = raw.len() - raw.trim_start().len();
        let content = raw.trim();
        if content.is_empty() || content.starts_with('#') {
            continue;
        }
        if let Some(col) = scalar_body_above {
            if indent > col {
                continue;
            }
            scalar_body_above = None;
        }
        let mut column = indent;
        let mut rest = content;
        while rest == "-" || rest.starts_with("- ") {
            entries.push(Entry {
                line: no,
                column,
                text: "-",
            });
            let after = rest[1..].trim_start();
            column += rest.len() - after.len();
            rest = after;
        }
        if rest.is_empty() {
            continue;
        }
        let value = rest.split(" #").next().unwrap_or(rest).trim_end();
        if value.ends_with('|')
            || value.ends_with('>')
            || value.ends_with("|-")
            || value.ends_with(">-")
            || value.ends_with("|+")
            || value.ends_with(">+")
        {
            scalar_body_above = Some(column);
        }
        entries.push(Entry {
            line: no,
            column,
            text: rest,
        });
    }
    entries
}

/// The key of `key: value`, unquoted; None for a plain scalar.
fn key_of(text: &str) -> Option<&str> {
    for quote in ['"', '\''] {
        if let Some(inner) = text.strip_prefix(quote) {
            let end = inner.find(quote)?;
            return inner[end + 1..]
                .trim_start()
                .starts_with(':')
                .then(|| &inner[..end]);
        }
    }
    let end = text
        .find(": ")
        .or_else(|| text.ends_with(':').then(|| text.len() - 1))?;
    Some(text[..end].trim_end())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
apiVersion: networking.istio.io/v1
kind: VirtualService
metadata:
  name: reviews
  annotations:
    \"sidecar.istio.io/inject\": \"false\"
spec:
  hosts: [reviews]
  http:
  - match:
    - uri:
        prefix: /a
    route:
    - destination:
        host: reviews
        subset: v1
  - route:
      - destination:
          host: ratings
        weight: 100
  tcp:
  - route: []
";

    fn at(path: &str) -> Option<usize> {
        locate(DOC, &FieldPath::parse(path))
    }

    #[test]
    fn finds_keys_and_sequence_items_at_any_depth() {
        assert_eq!(at("metadata.name"), Some(4));
        assert_eq!(
            at("metadata.annotations[\"sidecar.istio.io/inject\"]"),
            Some(6)
        );
        assert_eq!(at("spec.http[0].match[0].uri.prefix"), Some(12));
        assert_eq!(at("spec.http[0].route[0].destination.subset"), Some(16));
        assert_eq!(at("spec.http[1].route[0].destination.host"), Some(19));
        assert_eq!(at("spec.http[1].route[0].weight"), Some(20));
        assert_eq!(at("spec.tcp[0].route"), Some(22));
    }

    #[test]
    fn stops_at_the_deepest_line_that_exists() {
        // `hosts` is flow style: its items have no lines of their own.
        assert_eq!(at("spec.hosts[0]"), Some(8));
        assert_eq!(at("spec.http[7].route"), Some(9));
        assert_eq!(at("status"), None);
        assert_eq!(
            locate("{\"kind\": \"Service\"}", &FieldPath::parse("kind")),
            None
        );
    }

    #[test]
    fn block_scalars_are_not_read_as_keys() {
        let doc = "data:\n  mesh: |\n    name: inside\n  name: outside\n";
        assert_eq!(locate(doc, &FieldPath::parse("data.name")), Some(4));
    }
}
