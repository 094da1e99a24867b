//! Label selectors and an index of workloads by label, so a selector is matched by reading
//! the workloads that carry its rarest label instead of scanning them all.

use std::collections::HashMap;

use serde_json::{Map, Value};

/// A selector as `key=value` pairs, all of which must match.
pub type Selector<'a> = Vec<(&'a str, &'a str)>;

/// The pairs of a Kubernetes-style `matchLabels`/`selector` map.
pub fn selector_of_map(map: &Map<String, Value>) -> Selector<'_> {
    map.iter()
        .filter_map(|(k, v)| v.as_str().map(|v| (k.as_str(), v)))
        .collect()
}

/// The pairs of an Istio `BTreeMap` selector.
pub fn selector_of<'a>(map: &'a std::collections::BTreeMap<String, String>) -> Selector<'a> {
    map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Whether labels carry every pair of the selector.
pub fn matches(selector: &Selector, labels: &Map<String, Value>) -> bool {
    selector
        .iter()
        .all(|(k, v)| labels.get(*k).and_then(Value::as_str) == Some(*v))
}

/// `app=reviews,version=v1`, for messages.
pub fn display(selector: &Selector) -> String {
    let mut pairs: Vec<String> = selector.iter().map(|(k, v)| format!("{k}={v}")).collect();
    pairs.sort();
    pairs.join(",")
}

/// Workload indexes by label pair and by namespace.
#[derive(Default)]
pub struct LabelIndex<'a> {
    /// key -> value -> workloads (nested, so that lookups borrow nothing for long).
    by_pair: HashMap<&'a str, HashMap<&'a str, Vec<u32>>>,
    by_namespace: HashMap<&'a str, Vec<u32>>,
    all: Vec<u32>,
}

impl<'a> LabelIndex<'a> {
    pub fn insert(&mut self, id: u32, namespace: &'a str, labels: &'a Map<String, Value>) {
        for (k, v) in labels {
            if let Some(v) = v.as_str() {
                self.by_pair
                    .entry(k.as_str())
                    .or_default()
                    .entry(v)
                    .or_default()
                    .push(id);
            }
        }
        self.by_namespace.entry(namespace).or_default().push(id);
        self.all.push(id);
    }

    /// The workloads, within `namespace` if given, that a selector could match; the caller
    /// checks each with [`matches`]. An empty selector yields every workload in scope.
    pub fn candidates(&self, selector: &Selector, namespace: Option<&str>) -> &[u32] {
        let empty: &[u32] = &[];
        let by_label = selector
            .iter()
            .map(|(k, v)| {
                self.by_pair
                    .get(*k)
                    .and_then(|values| values.get(*v))
                    .map_or(empty, Vec::as_slice)
            })
            .min_by_key(|ids| ids.len());
        match (by_label, namespace) {
            (Some(ids), _) => ids,
            (None, Some(ns)) => self.by_namespace.get(ns).map_or(empty, Vec::as_slice),
            (None, None) => &self.all,
        }
    }
}
