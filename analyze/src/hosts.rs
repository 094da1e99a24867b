//! Host names as Istio reads them: short names resolve in the namespace of the resource that
//! names them, `*.` prefixes are wildcards, and `exportTo` limits who sees a service.

/// The cluster's DNS domain; Istio assumes the same.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

/// The fully qualified name of `host` as written in namespace `namespace`: a name without dots
/// is a Kubernetes service of that namespace; anything else is taken as written.
pub fn fqdn(host: &str, namespace: &str) -> String {
    if host.starts_with('*') || host.contains('.') {
        host.to_owned()
    } else {
        format!("{host}.{namespace}.svc.{CLUSTER_DOMAIN}")
    }
}

/// `(name, namespace)` of a Kubernetes service's FQDN, `name.namespace.svc.cluster.local`.
pub fn service_of(fqdn: &str) -> Option<(&str, &str)> {
    let local = fqdn.strip_suffix(&format!(".svc.{CLUSTER_DOMAIN}"))?;
    let (name, namespace) = local.split_once('.')?;
    (!namespace.contains('.')).then_some((name, namespace))
}

/// Whether two host names can denote the same host, wildcards included (`*` matches all,
/// `*.example.com` every name under example.com).
pub fn overlap(a: &str, b: &str) -> bool {
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a.eq_ignore_ascii_case(b),
        (Some(sa), None) => ends_with_ci(b, sa),
        (None, Some(sb)) => ends_with_ci(a, sb),
        (Some(sa), Some(sb)) => ends_with_ci(sa, sb) || ends_with_ci(sb, sa),
    }
}

fn ends_with_ci(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// Whether a resource of `owner_namespace` exported to `export_to` is visible from
/// `from_namespace` (empty means everywhere, `.` its own namespace, `*` everywhere).
pub fn visible(export_to: &[String], owner_namespace: &str, from_namespace: &str) -> bool {
    export_to.is_empty()
        || export_to.iter().any(|e| {
            e == "*" || e == from_namespace || (e == "." && owner_namespace == from_namespace)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_resolve_in_the_namespace() {
        assert_eq!(fqdn("reviews", "shop"), "reviews.shop.svc.cluster.local");
        assert_eq!(fqdn("reviews.other", "shop"), "reviews.other");
        assert_eq!(fqdn("*.example.com", "shop"), "*.example.com");
        assert_eq!(
            service_of("reviews.shop.svc.cluster.local"),
            Some(("reviews", "shop"))
        );
        assert_eq!(service_of("api.example.com"), None);
    }

    #[test]
    fn wildcards_overlap() {
        assert!(overlap("*", "a.b"));
        assert!(overlap("*.example.com", "api.example.com"));
        assert!(overlap("*.example.com", "*.api.example.com"));
        assert!(!overlap("*.example.com", "example.org"));
        assert!(overlap("API.example.com", "api.example.com"));
        assert!(!overlap("a.example.com", "b.example.com"));
    }

    #[test]
    fn export_to_limits_visibility() {
        let dot = vec![".".to_owned()];
        assert!(visible(&[], "a", "b"));
        assert!(visible(&dot, "a", "a"));
        assert!(!visible(&dot, "a", "b"));
        assert!(visible(&["b".to_owned()], "a", "b"));
    }
}
