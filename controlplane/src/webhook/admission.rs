//! AdmissionReview v1, read and written as plain JSON.
//!
//! Not kube's `admission` types: they decode the object into a `DynamicObject`, whose typed
//! metadata is re-serialised in its own shape. A JSON patch must be computed against the object
//! exactly as the API server sent it, so the object is kept as the raw JSON tree.

use base64::Engine as _;
use serde_json::{json, Value};
use thiserror::Error;

/// The parts of an admission request the webhooks use.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub uid: String,
    pub group: String,
    pub version: String,
    pub kind: String,
    pub namespace: Option<String>,
    pub name: String,
    pub operation: String,
    pub object: Value,
}

impl Request {
    /// `Kind namespace/name`, how messages name the object.
    pub fn resource(&self) -> String {
        let name = if self.name.is_empty() {
            self.object["metadata"]["name"]
                .as_str()
                .or_else(|| self.object["metadata"]["generateName"].as_str())
                .unwrap_or("<unnamed>")
                .to_owned()
        } else {
            self.name.clone()
        };
        match &self.namespace {
            Some(ns) if !ns.is_empty() => format!("{} {ns}/{name}", self.kind),
            _ => format!("{} {name}", self.kind),
        }
    }
}

/// Why a body is not a usable AdmissionReview; `uid` when it could still be read, so that the
/// API server gets an answer to its request rather than a transport error.
#[derive(Debug, Error, PartialEq)]
#[error("{reason}")]
pub struct DecodeError {
    pub uid: Option<String>,
    pub reason: String,
}

pub fn decode(body: &[u8]) -> Result<Request, DecodeError> {
    let review: Value = serde_json::from_slice(body).map_err(|e| DecodeError {
        uid: None,
        reason: format!("the body is not JSON: {e}"),
    })?;
    let request = &review["request"];
    let uid = request["uid"].as_str().map(str::to_owned);
    let fail = |reason: String| DecodeError {
        uid: uid.clone(),
        reason,
    };
    if review["apiVersion"] != "admission.k8s.io/v1" || review["kind"] != "AdmissionReview" {
        return Err(fail(format!(
            "expected an admission.k8s.io/v1 AdmissionReview, got apiVersion {} kind {}",
            review["apiVersion"], review["kind"]
        )));
    }
    let Some(uid_text) = uid.clone() else {
        return Err(fail("request.uid is missing".to_owned()));
    };
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    let object = request["object"].clone();
    if !object.is_object() {
        return Err(fail(format!(
            "request.object of {} is not an object",
            text(&request["kind"]["kind"])
        )));
    }
    Ok(Request {
        uid: uid_text,
        group: text(&request["kind"]["group"]),
        version: text(&request["kind"]["version"]),
        kind: text(&request["kind"]["kind"]),
        namespace: request["namespace"].as_str().map(str::to_owned),
        name: text(&request["name"]),
        operation: text(&request["operation"]),
        object,
    })
}

/// The answer to one request.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Response {
    pub uid: String,
    pub allowed: bool,
    /// Why it was refused, shown to the user by kubectl.
    pub message: Option<String>,
    /// A JSON patch (RFC 6902) to apply to the object.
    pub patch: Option<Value>,
    pub warnings: Vec<String>,
}

impl Response {
    pub fn allow(uid: &str) -> Response {
        Response {
            uid: uid.to_owned(),
            allowed: true,
            ..Response::default()
        }
    }

    pub fn deny(uid: &str, message: String) -> Response {
        Response {
            uid: uid.to_owned(),
            allowed: false,
            message: Some(message),
            ..Response::default()
        }
    }

    /// The AdmissionReview carrying this response.
    pub fn encode(&self) -> Vec<u8> {
        let mut response = json!({"uid": self.uid, "allowed": self.allowed});
        if let Some(message) = &self.message {
            response["status"] = json!({"code": 403, "message": message, "reason": "Forbidden"});
        }
        if let Some(patch) = &self.patch {
            let bytes = serde_json::to_vec(patch).unwrap_or_default();
            response["patchType"] = json!("JSONPatch");
            response["patch"] = json!(base64::engine::general_purpose::STANDARD.encode(bytes));
        }
        if !self.warnings.is_empty() {
            response["warnings"] = json!(self.warnings);
        }
        let review = json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        });
        serde_json::to_vec(&review).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn review(kind: (&str, &str), object: Value) -> Vec<u8> {
        serde_json::to_vec(&json!({
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "request": {
                "uid": "705ab4f5-6393-11e8-b7cc-42010a800002",
                "kind": {"group": kind.0, "version": "v1", "kind": kind.1},
                "resource": {"group": kind.0, "version": "v1", "resource": "pods"},
                "namespace": "shop",
                "operation": "CREATE",
                "userInfo": {"username": "admin"},
                "object": object,
                "dryRun": false,
            }
        }))
        .expect("serialises")
    }

    #[test]
    fn decodes_a_review() {
        let body = review(("", "Pod"), json!({"metadata": {"generateName": "web-"}}));
        let request = decode(&body).expect("decodes");
        assert_eq!(request.uid, "705ab4f5-6393-11e8-b7cc-42010a800002");
        assert_eq!(request.kind, "Pod");
        assert_eq!(request.namespace.as_deref(), Some("shop"));
        assert_eq!(request.resource(), "Pod shop/web-");
    }

    #[test]
    fn undecodable_bodies_say_why_and_keep_the_uid_when_they_can() {
        let err = decode(b"not json").expect_err("not JSON");
        assert_eq!(err.uid, None);
        assert!(err.reason.starts_with("the body is not JSON"), "{err}");
        let body = br#"{"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"uid": "u1", "kind": {"kind": "Pod"}, "object": "x"}}"#;
        let err = decode(body).expect_err("object not an object");
        assert_eq!(err.uid.as_deref(), Some("u1"));
        assert!(err.reason.contains("not an object"), "{err}");
        let body = br#"{"apiVersion": "admission.k8s.io/v1beta1", "kind": "AdmissionReview", "request": {"uid": "u2"}}"#;
        let err = decode(body).expect_err("v1beta1");
        assert!(err.reason.contains("admission.k8s.io/v1"), "{err}");
    }

    #[test]
    fn encodes_patch_as_base64_json_patch_and_denials_with_a_status() {
        let mut response = Response::allow("u1");
        response.patch = Some(json!([{"op": "add", "path": "/metadata/labels", "value": {}}]));
        let review: Value = serde_json::from_slice(&response.encode()).expect("JSON");
        assert_eq!(review["response"]["patchType"], "JSONPatch");
        let patch = base64::engine::general_purpose::STANDARD
            .decode(review["response"]["patch"].as_str().expect("patch"))
            .expect("base64");
        let patch: Value = serde_json::from_slice(&patch).expect("JSON patch");
        assert_eq!(patch[0]["op"], "add");
        let review: Value =
            serde_json::from_slice(&Response::deny("u2", "no".to_owned()).encode()).expect("JSON");
        assert_eq!(review["response"]["allowed"], false);
        assert_eq!(review["response"]["status"]["message"], "no");
        assert_eq!(review["response"]["uid"], "u2");
    }
}
