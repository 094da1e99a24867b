//! Prometheus scrapes an injected pod once, on the proxy's merged-metrics port, which serves the
//! proxy's metrics and the application's own. The application's scrape annotations move to the
//! proxy (`ISTIO_PROMETHEUS_ANNOTATIONS`, as Istio does) so the proxy knows where to fetch them.

use serde_json::{Map, Value};

use crate::names::{ANNOTATION_MERGE_METRICS, PORT_MERGED_METRICS};

const SCRAPE: &str = "prometheus.io/scrape";
const PORT: &str = "prometheus.io/port";
const PATH: &str = "prometheus.io/path";
const MERGED_PATH: &str = "/stats/prometheus";

/// What merging did.
#[derive(Debug, Clone, PartialEq)]
pub enum Merge {
    /// The pod opted out (`prometheus.io/scrape: "false"` or merging disabled).
    Untouched,
    /// Scrape annotations now point at the proxy; `app` holds the application's own, if any.
    Merged { app: Option<Map<String, Value>> },
}

pub fn merge(annotations: &mut Map<String, Value>) -> Merge {
    let opted_out = |key: &str| annotations.get(key).and_then(Value::as_str) == Some("false");
    if opted_out(ANNOTATION_MERGE_METRICS) || opted_out(SCRAPE) {
        return Merge::Untouched;
    }
    let app: Map<String, Value> = [SCRAPE, PORT, PATH]
        .iter()
        .filter_map(|k| annotations.get(*k).map(|v| ((*k).to_owned(), v.clone())))
        .collect();
    for (key, value) in [
        (SCRAPE, "true".to_owned()),
        (PORT, PORT_MERGED_METRICS.to_string()),
        (PATH, MERGED_PATH.to_owned()),
    ] {
        annotations.insert(key.to_owned(), Value::String(value));
    }
    Merge::Merged {
        app: (!app.is_empty()).then_some(app),
    }
}

/// Whether the annotations are the ones `merge` wrote.
pub fn is_merged(annotations: &Map<String, Value>) -> bool {
    annotations.get(PORT).and_then(Value::as_str) == Some(&PORT_MERGED_METRICS.to_string())
        && annotations.get(PATH).and_then(Value::as_str) == Some(MERGED_PATH)
}

/// Puts the application's own scrape annotations back, where they were.
pub fn unmerge(annotations: &mut Map<String, Value>, app: Option<&Map<String, Value>>) {
    for key in [SCRAPE, PORT, PATH] {
        match app.and_then(|a| a.get(key)) {
            Some(value) => {
                annotations.insert(key.to_owned(), value.clone());
            }
            None => {
                annotations.shift_remove(key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        v.as_object().cloned().expect("object")
    }

    #[test]
    fn the_apps_own_scrape_settings_are_kept_for_merging_and_restored() {
        let original =
            map(json!({"team": "a", "prometheus.io/port": "9100", "prometheus.io/scrape": "true"}));
        let mut annotations = original.clone();
        let merged = merge(&mut annotations);
        assert_eq!(
            merged,
            Merge::Merged {
                app: Some(map(
                    json!({"prometheus.io/scrape": "true", "prometheus.io/port": "9100"})
                ))
            }
        );
        assert_eq!(annotations["prometheus.io/port"], "15020");
        assert_eq!(annotations["prometheus.io/path"], "/stats/prometheus");
        assert!(is_merged(&annotations));
        let Merge::Merged { app } = merged else {
            unreachable!()
        };
        unmerge(&mut annotations, app.as_ref());
        assert_eq!(annotations, original);
        // Key order is the original's too.
        assert_eq!(
            annotations.keys().collect::<Vec<_>>(),
            original.keys().collect::<Vec<_>>()
        );
    }

    #[test]
    fn opting_out_leaves_them_alone() {
        for opt_out in [
            json!({"prometheus.io/scrape": "false"}),
            json!({"prometheus.istio.io/merge-metrics": "false"}),
        ] {
            let mut annotations = map(opt_out.clone());
            assert_eq!(merge(&mut annotations), Merge::Untouched);
            assert_eq!(Value::Object(annotations), opt_out);
        }
    }
}
