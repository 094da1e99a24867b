//! `--set path=value`: parsing the path and setting the value, guided by the MeshInstall schema so
//! that a wrong path is refused with the nearest valid keys and a value gets the type its field
//! has (`tag=1.20` stays the string "1.20").
//!
//! Path syntax: keys separated by `.`, `\.` for a dot inside a key, `[N]` for a list item by
//! index, `[key=value]` (or istioctl's `[key:value]`) for a list item by key, created when absent.
//! Selectors may follow a key (`ingressGateways[0]`) or stand as their own segment
//! (`ingressGateways.[name:x]`). A leading `spec.` is accepted and ignored.

use serde_json::{json, Map, Value};

use crate::error::InputError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Key(String),
    Index(usize),
    Select { key: String, value: String },
}

/// One parsed `--set` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetArg {
    pub arg: String,
    pub path: Vec<Segment>,
    pub value: String,
}

impl SetArg {
    pub fn parse(arg: &str) -> Result<SetArg, InputError> {
        let syntax = |reason: &str| InputError::SetSyntax {
            arg: arg.to_owned(),
            reason: reason.to_owned(),
        };
        let (path, value) = split_assignment(arg).ok_or_else(|| {
            if arg.matches('[').count() > arg.matches(']').count() {
                syntax("a [ is not closed by ]")
            } else {
                syntax("expected path=value")
            }
        })?;
        let mut segments = parse_path(path).map_err(|reason| syntax(&reason))?;
        if segments.first() == Some(&Segment::Key("spec".to_owned())) {
            segments.remove(0);
        }
        if segments.is_empty() {
            return Err(syntax("the path is empty"));
        }
        Ok(SetArg {
            arg: arg.to_owned(),
            path: segments,
            value: value.to_owned(),
        })
    }

    /// Sets the value inside `spec`, a MeshInstall spec as a JSON tree.
    pub fn apply(&self, spec: &mut Value, spec_schema: &Value) -> Result<(), InputError> {
        let mut node = spec;
        let mut schema = spec_schema.clone();
        let mut walked = String::new();
        for segment in &self.path {
            let (child_schema, next) = match segment {
                Segment::Key(key) => {
                    let child_schema = self.property_schema(&schema, key, &walked)?;
                    push_key(&mut walked, key);
                    let map = self.as_object(node, &walked)?;
                    (child_schema, map.entry(key.clone()).or_insert(Value::Null))
                }
                Segment::Index(index) => {
                    let child_schema = self.item_schema(&schema, &walked)?;
                    walked.push_str(&format!("[{index}]"));
                    let list = self.as_array(node, &walked)?;
                    let len = list.len();
                    let item = list.get_mut(*index).ok_or_else(|| self.value_error(
                        &walked,
                        format!("is out of range: the list has {len} items; address an item by key, e.g. [name=...], to add one"),
                    ))?;
                    (child_schema, item)
                }
                Segment::Select { key, value } => {
                    let child_schema = self.item_schema(&schema, &walked)?;
                    walked.push_str(&format!("[{key}={value}]"));
                    let list = self.as_array(node, &walked)?;
                    let position = list
                        .iter()
                        .position(|item| scalar_text(item.get(key)) == Some(value.clone()));
                    let position = match position {
                        Some(p) => p,
                        None => {
                            let mut fresh = Map::new();
                            fresh.insert(key.clone(), Value::String(value.clone()));
                            list.push(Value::Object(fresh));
                            list.len() - 1
                        }
                    };
                    (child_schema, &mut list[position])
                }
            };
            schema = child_schema;
            node = next;
        }
        *node = typed_value(&self.value, &schema)
            .map_err(|reason| self.value_error(&walked, reason))?;
        Ok(())
    }

    fn property_schema(
        &self,
        schema: &Value,
        key: &str,
        walked: &str,
    ) -> Result<Value, InputError> {
        if is_free_form(schema) {
            return Ok(free_form());
        }
        if let Some(child) = schema.get("properties").and_then(|p| p.get(key)) {
            return Ok(child.clone());
        }
        if let Some(child) = schema.get("additionalProperties").filter(|a| a.is_object()) {
            return Ok(child.clone());
        }
        let mut full = walked.to_owned();
        push_key(&mut full, key);
        let known: Vec<&String> = schema
            .get("properties")
            .and_then(Value::as_object)
            .map(|p| p.keys().collect())
            .unwrap_or_default();
        Err(InputError::SetUnknownPath {
            arg: self.arg.clone(),
            path: full,
            nearest: nearest_keys(key, &known)
                .into_iter()
                .map(|k| {
                    let mut p = walked.to_owned();
                    push_key(&mut p, &k);
                    p
                })
                .collect(),
        })
    }

    fn item_schema(&self, schema: &Value, walked: &str) -> Result<Value, InputError> {
        if is_free_form(schema) {
            return Ok(free_form());
        }
        match schema.get("items") {
            Some(items) if schema_type(schema) == Some("array") => Ok(items.clone()),
            _ => Err(self.value_error(
                walked,
                "is not a list; remove the [...] selector".to_owned(),
            )),
        }
    }

    fn as_object<'v>(
        &self,
        node: &'v mut Value,
        walked: &str,
    ) -> Result<&'v mut Map<String, Value>, InputError> {
        if node.is_null() {
            *node = Value::Object(Map::new());
        }
        let kind = kind_name(node);
        node.as_object_mut()
            .ok_or_else(|| self.value_error(parent_of(walked), format!("is {kind}, not an object")))
    }

    fn as_array<'v>(
        &self,
        node: &'v mut Value,
        walked: &str,
    ) -> Result<&'v mut Vec<Value>, InputError> {
        if node.is_null() {
            *node = Value::Array(Vec::new());
        }
        let kind = kind_name(node);
        node.as_array_mut()
            .ok_or_else(|| self.value_error(parent_of(walked), format!("is {kind}, not a list")))
    }

    fn value_error(&self, path: &str, reason: String) -> InputError {
        InputError::SetValue {
            arg: self.arg.clone(),
            path: path.to_owned(),
            reason,
        }
    }
}

/// The path as the user would write it again, for messages.
pub fn display_path(segments: &[Segment]) -> String {
    let mut out = String::new();
    for segment in segments {
        match segment {
            Segment::Key(k) => push_key(&mut out, k),
            Segment::Index(i) => out.push_str(&format!("[{i}]")),
            Segment::Select { key, value } => out.push_str(&format!("[{key}={value}]")),
        }
    }
    out
}

fn push_key(path: &mut String, key: &str) {
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(&key.replace('.', "\\."));
}

fn parent_of(walked: &str) -> &str {
    walked
        .rfind(['.', '['])
        .map_or(walked, |end| &walked[..end])
}

/// Splits at the first `=` outside a `[...]` selector, so `a[name=x].b=1` keeps its selector.
fn split_assignment(arg: &str) -> Option<(&str, &str)> {
    let mut depth = 0usize;
    let mut escaped = false;
    for (i, c) in arg.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' => escaped = true,
            '[' => depth += 1,
            ']' => depth = depth.saturating_sub(1),
            '=' if depth == 0 => return Some((&arg[..i], &arg[i + 1..])),
            _ => {}
        }
    }
    None
}

pub fn parse_path(path: &str) -> Result<Vec<Segment>, String> {
    let mut segments = Vec::new();
    let mut key = String::new();
    let mut chars = path.chars().peekable();
    // Whether the text since the last separator already produced a segment (a selector).
    let mut closed = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(escaped) => key.push(escaped),
                None => return Err("the path ends with a lone backslash".to_owned()),
            },
            '.' => {
                if key.is_empty() && !closed {
                    return Err("the path has an empty key (two dots in a row, or a leading or trailing dot)".to_owned());
                }
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                closed = false;
            }
            '[' => {
                if !key.is_empty() {
                    segments.push(Segment::Key(std::mem::take(&mut key)));
                }
                let mut selector = String::new();
                loop {
                    match chars.next() {
                        Some(']') => break,
                        Some(c) => selector.push(c),
                        None => return Err("a [ is not closed by ]".to_owned()),
                    }
                }
                segments.push(parse_selector(&selector)?);
                closed = true;
            }
            _ => {
                if closed {
                    return Err("expected . after ]".to_owned());
                }
                key.push(c);
            }
        }
    }
    if !key.is_empty() {
        segments.push(Segment::Key(key));
    } else if !closed {
        return Err("the path has an empty key (a leading or trailing dot)".to_owned());
    }
    Ok(segments)
}

fn parse_selector(selector: &str) -> Result<Segment, String> {
    let selector = selector.trim();
    if let Ok(index) = selector.parse::<usize>() {
        return Ok(Segment::Index(index));
    }
    let (key, value) = selector.split_once(['=', ':']).ok_or_else(|| {
        format!("[{selector}] is neither an index [N] nor a key selector [key=value]")
    })?;
    if key.trim().is_empty() {
        return Err(format!("[{selector}] has no key before the ="));
    }
    Ok(Segment::Select {
        key: key.trim().to_owned(),
        value: value.trim().to_owned(),
    })
}

fn is_free_form(schema: &Value) -> bool {
    schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true))
        && schema.get("properties").is_none()
}

fn free_form() -> Value {
    json!({"x-kubernetes-preserve-unknown-fields": true})
}

fn schema_type(schema: &Value) -> Option<&str> {
    schema.get("type").and_then(Value::as_str)
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn scalar_text(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The valid keys closest to a mistyped one, best first.
pub(crate) fn nearest_keys(wanted: &str, known: &[&String]) -> Vec<String> {
    let wanted_lower = wanted.to_lowercase();
    let mut scored: Vec<(f64, &String)> = known
        .iter()
        .map(|k| (strsim::jaro_winkler(&wanted_lower, &k.to_lowercase()), *k))
        .filter(|(score, _)| *score >= 0.75)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then_with(|| a.1.cmp(b.1)));
    let mut nearest: Vec<String> = scored.into_iter().take(3).map(|(_, k)| k.clone()).collect();
    if nearest.is_empty() && known.len() <= 12 {
        nearest = known.iter().map(|k| (*k).clone()).collect();
    }
    nearest
}

/// Reads the text after `=` as the type the schema gives the field.
fn typed_value(raw: &str, schema: &Value) -> Result<Value, String> {
    if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
        return Ok(raw
            .parse::<i64>()
            .map_or_else(|_| Value::String(raw.to_owned()), Value::from));
    }
    match schema_type(schema) {
        Some("string") => {
            if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
                if !allowed.iter().any(|a| a.as_str() == Some(raw)) {
                    let names: Vec<String> = allowed
                        .iter()
                        .filter_map(|a| a.as_str().map(str::to_owned))
                        .collect();
                    return Err(format!("must be one of {}, not {raw:?}", names.join(", ")));
                }
            }
            Ok(Value::String(raw.to_owned()))
        }
        Some("boolean") => match raw {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(format!("is a boolean: use true or false, not {raw:?}")),
        },
        Some("integer") => raw
            .parse::<i64>()
            .map(Value::from)
            .map_err(|_| format!("is an integer, not {raw:?}")),
        Some("number") => raw
            .parse::<i64>()
            .map(Value::from)
            .or_else(|_| raw.parse::<f64>().map(Value::from))
            .map_err(|_| format!("is a number, not {raw:?}")),
        Some("array") => {
            let items = schema.get("items").cloned().unwrap_or_else(free_form);
            if raw.trim_start().starts_with('[') {
                let parsed = parse_yaml(raw)?;
                if parsed.is_array() {
                    return Ok(parsed);
                }
            }
            raw.split(',')
                .filter(|s| !s.is_empty())
                .map(|item| typed_value(item.trim(), &items))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array)
        }
        Some("object") if !is_free_form(schema) => {
            let parsed = parse_yaml(raw)?;
            if parsed.is_object() {
                Ok(parsed)
            } else {
                Err(format!(
                    "is an object; give it as {{key: value}}, not {raw:?}"
                ))
            }
        }
        _ => parse_yaml(raw),
    }
}

fn parse_yaml(raw: &str) -> Result<Value, String> {
    serde_yaml_ng::from_str::<Value>(raw).map_err(|e| format!("cannot read {raw:?} as YAML: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema() -> Value {
        crate::input::spec_schema()
    }

    fn set(spec: &mut Value, arg: &str) -> Result<(), InputError> {
        SetArg::parse(arg)?.apply(spec, &schema())
    }

    #[test]
    fn parses_keys_indexes_selectors_and_escaped_dots() {
        let arg =
            SetArg::parse(r"components.ingressGateways[name=gw].k8s.podAnnotations.a\.b/c=x=y")
                .expect("parses");
        assert_eq!(
            arg.path,
            vec![
                Segment::Key("components".into()),
                Segment::Key("ingressGateways".into()),
                Segment::Select {
                    key: "name".into(),
                    value: "gw".into()
                },
                Segment::Key("k8s".into()),
                Segment::Key("podAnnotations".into()),
                Segment::Key("a.b/c".into()),
            ]
        );
        assert_eq!(arg.value, "x=y");
        let istio_style =
            SetArg::parse("spec.components.ingressGateways.[0].enabled=false").expect("parses");
        assert_eq!(istio_style.path[2], Segment::Index(0));
        assert_eq!(istio_style.path[0], Segment::Key("components".into()));
    }

    #[test]
    fn syntax_errors_name_the_argument() {
        for (arg, reason) in [
            ("novalue", "expected path=value"),
            ("a..b=1", "empty key"),
            ("a[0=1", "not closed"),
            ("a[]=1", "neither an index"),
            ("a[0]b=1", "expected . after ]"),
        ] {
            let err = SetArg::parse(arg).expect_err(arg).to_string();
            assert!(err.contains(reason), "{arg}: {err}");
            assert!(err.starts_with(&format!("--set {arg:?}")), "{err}");
        }
    }

    #[test]
    fn values_take_the_type_of_their_field() {
        let mut spec = json!({});
        set(&mut spec, "tag=1.20").expect("tag");
        set(&mut spec, "meshConfig.traceSampling=50").expect("sampling");
        set(&mut spec, "meshConfig.enableTracing=false").expect("bool");
        set(&mut spec, "components.controlPlane.k8s.replicaCount=3").expect("int");
        set(&mut spec, "meshConfig.trustDomainAliases=a.local,b.local").expect("list");
        set(&mut spec, "values.anything.goes=true").expect("free form");
        assert_eq!(spec["tag"], json!("1.20"));
        assert_eq!(spec["meshConfig"]["traceSampling"], json!(50));
        assert_eq!(spec["meshConfig"]["enableTracing"], json!(false));
        assert_eq!(
            spec["components"]["controlPlane"]["k8s"]["replicaCount"],
            json!(3)
        );
        assert_eq!(
            spec["meshConfig"]["trustDomainAliases"],
            json!(["a.local", "b.local"])
        );
        assert_eq!(spec["values"]["anything"]["goes"], json!(true));
    }

    #[test]
    fn list_items_are_found_by_key_or_created() {
        let mut spec = json!({"components": {"ingressGateways": [{"name": "a", "enabled": true}]}});
        set(
            &mut spec,
            "components.ingressGateways[name=a].enabled=false",
        )
        .expect("existing");
        set(&mut spec, "components.ingressGateways[name:b].enabled=true").expect("new");
        set(
            &mut spec,
            "components.ingressGateways[0].k8s.replicaCount=2",
        )
        .expect("index");
        assert_eq!(
            spec["components"]["ingressGateways"],
            json!([
                {"name": "a", "enabled": false, "k8s": {"replicaCount": 2}},
                {"name": "b", "enabled": true}
            ])
        );
        let err = set(&mut spec, "components.ingressGateways[5].enabled=true")
            .expect_err("range")
            .to_string();
        assert!(
            err.contains("components.ingressGateways[5] is out of range: the list has 2 items"),
            "{err}"
        );
    }

    #[test]
    fn unknown_paths_name_the_nearest_valid_keys() {
        let mut spec = json!({});
        let err = set(&mut spec, "meshConfig.accesLogFile=/dev/stdout")
            .expect_err("typo")
            .to_string();
        assert_eq!(
            err,
            "--set \"meshConfig.accesLogFile=/dev/stdout\": meshConfig.accesLogFile does not exist; did you mean meshConfig.accessLogFile, meshConfig.accessLogFormat, meshConfig.accessLogEncoding?"
        );
        let err = set(&mut spec, "components.pilot.enabled=true")
            .expect_err("istio name")
            .to_string();
        assert!(err.contains("components.pilot does not exist"), "{err}");
        assert!(
            err.contains("components.controlPlane") || err.contains("components.base"),
            "{err}"
        );
    }

    #[test]
    fn wrong_types_are_refused_with_the_expected_type() {
        let mut spec = json!({});
        let err = set(&mut spec, "meshConfig.enableTracing=yes")
            .expect_err("bool")
            .to_string();
        assert!(
            err.contains("meshConfig.enableTracing is a boolean: use true or false"),
            "{err}"
        );
        let err = set(&mut spec, "components.controlPlane.k8s.replicaCount=two")
            .expect_err("int")
            .to_string();
        assert!(err.contains("is an integer"), "{err}");
        let err = set(&mut spec, "meshConfig.outboundTrafficPolicy.mode=OPEN")
            .expect_err("enum")
            .to_string();
        assert!(
            err.contains("must be one of ALLOW_ANY, REGISTRY_ONLY"),
            "{err}"
        );
        let err = set(&mut spec, "meshConfig[0]=x")
            .expect_err("not a list")
            .to_string();
        assert!(err.contains("is not a list"), "{err}");
    }
}
