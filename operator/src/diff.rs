//! Path-by-path differences between two trees, for `profile diff`.
//!
//! Lists whose items all carry a `name` are compared item by item on that name (the same rule
//! `merge` uses), so a changed gateway shows as that gateway's fields, not as a replaced list.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Added {
        path: String,
        value: Value,
    },
    Removed {
        path: String,
        value: Value,
    },
    Changed {
        path: String,
        from: Value,
        to: Value,
    },
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Change::Added { path, value } => write!(f, "+ {path}: {}", compact(value)),
            Change::Removed { path, value } => write!(f, "- {path}: {}", compact(value)),
            Change::Changed { path, from, to } => {
                write!(f, "~ {path}: {} -> {}", compact(from), compact(to))
            }
        }
    }
}

fn compact(value: &Value) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

/// Every leaf that differs between `a` and `b`, in a stable order.
pub fn diff(a: &Value, b: &Value) -> Vec<Change> {
    let mut changes = Vec::new();
    walk("", a, b, &mut changes);
    changes
}

fn walk(path: &str, a: &Value, b: &Value, out: &mut Vec<Change>) {
    match (a, b) {
        (Value::Object(ma), Value::Object(mb)) => {
            let mut keys: Vec<&String> = ma.keys().chain(mb.keys()).collect();
            keys.sort();
            keys.dedup();
            for key in keys {
                let child = join(path, key);
                match (ma.get(key), mb.get(key)) {
                    (Some(va), Some(vb)) => walk(&child, va, vb, out),
                    (Some(va), None) => out.push(Change::Removed {
                        path: child,
                        value: va.clone(),
                    }),
                    (None, Some(vb)) => out.push(Change::Added {
                        path: child,
                        value: vb.clone(),
                    }),
                    (None, None) => {}
                }
            }
        }
        (Value::Array(la), Value::Array(lb)) if named(la) && named(lb) => {
            let mut names: Vec<&str> = la.iter().chain(lb.iter()).filter_map(name_of).collect();
            names.dedup();
            let mut seen = std::collections::BTreeSet::new();
            for name in names {
                if !seen.insert(name) {
                    continue;
                }
                let child = format!("{path}[name={name}]");
                let find = |l: &[Value]| l.iter().find(|v| name_of(v) == Some(name)).cloned();
                match (find(la), find(lb)) {
                    (Some(va), Some(vb)) => walk(&child, &va, &vb, out),
                    (Some(va), None) => out.push(Change::Removed {
                        path: child,
                        value: va,
                    }),
                    (None, Some(vb)) => out.push(Change::Added {
                        path: child,
                        value: vb,
                    }),
                    (None, None) => {}
                }
            }
        }
        _ if a == b => {}
        _ => out.push(Change::Changed {
            path: path.to_owned(),
            from: a.clone(),
            to: b.clone(),
        }),
    }
}

fn join(path: &str, key: &str) -> String {
    let key = key.replace('.', "\\.");
    if path.is_empty() {
        key
    } else {
        format!("{path}.{key}")
    }
}

fn named(list: &[Value]) -> bool {
    !list.is_empty() && list.iter().all(|v| name_of(v).is_some())
}

fn name_of(v: &Value) -> Option<&str> {
    v.get("name").and_then(Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reports_added_removed_and_changed_leaves() {
        let a =
            json!({"x": 1, "m": {"keep": true, "gone": "g"}, "gws": [{"name": "in", "on": true}]});
        let b = json!({"x": 2, "m": {"keep": true, "new": [1]}, "gws": [{"name": "in", "on": false}, {"name": "eg"}]});
        let lines: Vec<String> = diff(&a, &b).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            vec![
                "~ gws[name=in].on: true -> false",
                "+ gws[name=eg]: {\"name\":\"eg\"}",
                "- m.gone: \"g\"",
                "+ m.new: [1]",
                "~ x: 1 -> 2",
            ]
        );
    }

    #[test]
    fn equal_trees_have_no_changes() {
        let a = json!({"a": [1, 2], "b": {"c": null}});
        assert!(diff(&a, &a.clone()).is_empty());
    }
}
