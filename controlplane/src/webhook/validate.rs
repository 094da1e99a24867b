//! `/validate`: refuses Istio API objects that the CRD schema lets through but the mesh could
//! not use (a route with no destination, a regex that does not compile, ...), naming the field
//! and why; warnings (deprecated fields) go back to kubectl without refusing.

use mesh_crds::validate::{validate_object, FieldIssue};
use tracing::info;

use super::admission::{Request, Response};

pub fn review(request: &Request) -> Response {
    let Some(report) = validate_object(&request.group, &request.kind, &request.object) else {
        return Response::allow(&request.uid);
    };
    let warnings: Vec<String> = report.warnings.iter().map(shown).collect();
    if report.is_valid() {
        let mut response = Response::allow(&request.uid);
        response.warnings = warnings;
        return response;
    }
    let resource = request.resource();
    let problems: Vec<String> = report.errors.iter().map(shown).collect();
    info!(object = %resource, problems = %problems.join("; "), "refused");
    let mut response = Response::deny(
        &request.uid,
        format!(
            "{resource} ({}) is invalid: {}",
            request.group,
            problems.join("; ")
        ),
    );
    response.warnings = warnings;
    response
}

fn shown(issue: &FieldIssue) -> String {
    format!("{}: {}", issue.field, issue.reason)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn request(kind: &str, object: Value) -> Request {
        Request {
            uid: "u1".to_owned(),
            group: "networking.istio.io".to_owned(),
            version: "v1".to_owned(),
            kind: kind.to_owned(),
            namespace: Some("shop".to_owned()),
            name: "reviews".to_owned(),
            operation: "CREATE".to_owned(),
            object,
        }
    }

    #[test]
    fn a_valid_virtual_service_is_allowed() {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"hosts": ["reviews"], "http": [{"route": [{"destination": {"host": "reviews"}}]}]},
        });
        let response = review(&request("VirtualService", vs));
        assert!(response.allowed, "{:?}", response.message);
    }

    #[test]
    fn an_invalid_virtual_service_is_refused_naming_the_field() {
        let vs = json!({
            "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
            "metadata": {"name": "reviews", "namespace": "shop"},
            "spec": {"hosts": ["reviews"], "http": [{"match": [{"uri": {"regex": "(unclosed"}}], "route": [{"destination": {"host": "reviews"}}]}]},
        });
        let response = review(&request("VirtualService", vs));
        assert!(!response.allowed);
        let message = response.message.expect("message");
        assert!(message.starts_with("VirtualService shop/reviews (networking.istio.io) is invalid: spec.http[0].match[0].uri"), "{message}");
    }

    #[test]
    fn kinds_it_does_not_know_are_allowed() {
        let response = review(&request("Unknown", json!({"spec": {}})));
        assert!(response.allowed);
    }
}
