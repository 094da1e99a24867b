//! Names and labels: DNS-1123 labels and subdomains, Kubernetes label keys and values, and the
//! workload selectors built from them.

use std::collections::BTreeMap;

use super::report::{FieldPath, Issues};

const DNS_LABEL_MAX: usize = 63;
const DNS_SUBDOMAIN_MAX: usize = 253;

/// A DNS-1123 label as Istio checks it inside specs (subset names, port names, gateway and
/// namespace references): letters of either case, digits and `-`, not starting or ending with
/// `-`, at most 63 characters. Istio accepts upper case here, so we do too.
pub(crate) fn is_dns_label(s: &str) -> bool {
    is_label_of(s, |c| c.is_ascii_alphanumeric())
}

/// A DNS-1123 label as Kubernetes checks object names: like [`is_dns_label`], lower case only.
pub(crate) fn is_k8s_dns_label(s: &str) -> bool {
    is_label_of(s, |c| c.is_ascii_lowercase() || c.is_ascii_digit())
}

/// A DNS-1123 subdomain as Kubernetes checks object names: lower-case labels joined by `.`, at
/// most 253 characters.
pub(crate) fn is_k8s_dns_subdomain(s: &str) -> bool {
    s.len() <= DNS_SUBDOMAIN_MAX && s.split('.').all(is_k8s_dns_label)
}

fn is_label_of(s: &str, is_alnum: impl Fn(char) -> bool) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    s.len() <= DNS_LABEL_MAX
        && is_alnum(first)
        && is_alnum(last)
        && s.chars().all(|c| is_alnum(c) || c == '-')
}

/// A Kubernetes "qualified name" (the name part of a label key, and a label value): alphanumeric
/// at both ends, `-`, `_` and `.` inside.
fn is_qualified_name(s: &str) -> bool {
    let (Some(first), Some(last)) = (s.chars().next(), s.chars().last()) else {
        return false;
    };
    first.is_ascii_alphanumeric()
        && last.is_ascii_alphanumeric()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Checks a label key: an optional DNS subdomain prefix and `/`, then a qualified name of at
/// most 63 characters.
pub(crate) fn check_label_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix {
        if prefix.len() > DNS_SUBDOMAIN_MAX || !prefix.split('.').all(is_dns_label) {
            return Err(format!(
                "invalid label key {key:?}: the prefix before `/` must be a DNS subdomain"
            ));
        }
    }
    if !is_qualified_name(name) {
        return Err(format!(
            "invalid label key {key:?}: the name must be alphanumeric at both ends, with only `-`, `_` and `.` inside"
        ));
    }
    if name.len() > DNS_LABEL_MAX {
        return Err(format!(
            "invalid label key {key:?}: the name is longer than 63 characters"
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or a qualified name.
pub(crate) fn check_label_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_qualified_name(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: it must be empty or alphanumeric at both ends, with only `-`, `_` and `.` inside"
        ))
    }
}

/// Checks every key and value of a label map (subset labels, source labels, endpoint labels).
pub(crate) fn check_labels(
    labels: Option<&BTreeMap<String, String>>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    for (key, value) in labels.into_iter().flatten() {
        let entry = at.key(key);
        issues.check(&entry, check_label_key(key));
        issues.check(&entry, check_label_value(value));
    }
}

/// Checks the labels of a workload selector (`selector.matchLabels` of the policies,
/// `workloadSelector.labels` of Sidecar and ServiceEntry): no empty key and no wildcard, since
/// selection is by exact label; an empty selector is only a warning, because Istio then applies
/// the resource to the whole namespace, which is rarely what was meant.
pub(crate) fn check_selector_labels(
    labels: Option<&BTreeMap<String, String>>,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let labels = labels.filter(|l| !l.is_empty());
    let Some(labels) = labels else {
        issues.warn(
            at,
            "workload selector specified without labels: it selects every workload of the namespace",
        );
        return;
    };
    for (key, value) in labels {
        let entry = at.key(key);
        if key.is_empty() {
            issues.error(
                &entry,
                format!("empty key is not supported in selector: \"={value}\""),
            );
        }
        if key.contains('*') || value.contains('*') {
            issues.error(
                &entry,
                format!("wildcard is not supported in selector: \"{key}={value}\"; selectors match labels exactly"),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels() {
        for ok in ["a", "v1", "reviews-v2", "A1", &"a".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "a.b", "a_b", &"a".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(!is_k8s_dns_label("Reviews"));
        assert!(is_k8s_dns_subdomain("reviews.v1"));
        assert!(!is_k8s_dns_subdomain("reviews..v1"));
        assert!(!is_k8s_dns_subdomain(&"a.".repeat(127)));
    }

    #[test]
    fn label_keys_and_values() {
        for ok in ["app", "app.kubernetes.io/name", "version", "a_b.c-d"] {
            assert!(check_label_key(ok).is_ok(), "{ok}");
        }
        for bad in ["", "-app", "app/", "bad prefix/x", "a/b/c", &"a".repeat(64)] {
            assert!(check_label_key(bad).is_err(), "{bad}");
        }
        assert!(check_label_value("").is_ok());
        assert!(check_label_value("v1.2_3").is_ok());
        assert!(check_label_value("v1 ").is_err());
    }

    #[test]
    fn selector_labels_name_the_bad_entry() {
        let mut issues = Issues::default();
        let labels = BTreeMap::from([("app".to_string(), "web*".to_string())]);
        check_selector_labels(Some(&labels), &FieldPath::root("selector"), &mut issues);
        let report = issues.into_report();
        assert_eq!(report.errors[0].field, "selector[app]");

        let mut issues = Issues::default();
        check_selector_labels(Some(&BTreeMap::new()), &FieldPath::root("sel"), &mut issues);
        let report = issues.into_report();
        assert!(report.errors.is_empty());
        assert_eq!(report.warnings[0].field, "sel");
    }
}
