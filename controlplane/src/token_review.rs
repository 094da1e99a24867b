//! Who is calling: a Kubernetes service-account token checked by the API server (TokenReview),
//! for the audience the proxies' tokens are issued for.

use k8s_openapi::api::authentication::v1::{TokenReview, TokenReviewSpec};
use kube::api::{Api, PostParams};
use kube::Client;
use thiserror::Error;

/// The audience of the token injection mounts into the proxy (`istio-token`).
pub const AUDIENCE: &str = "istio-ca";

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub namespace: String,
    pub service_account: String,
    /// The pod the token was issued for, when the token is bound to one.
    pub pod_name: Option<String>,
}

impl Caller {
    /// `spiffe://<trust-domain>/ns/<namespace>/sa/<service-account>`.
    pub fn spiffe_id(&self, trust_domain: &str) -> String {
        format!(
            "spiffe://{trust_domain}/ns/{}/sa/{}",
            self.namespace, self.service_account
        )
    }
}

#[derive(Debug, Error)]
pub enum AuthError {
    #[error("no bearer token in the authorization metadata")]
    Missing,
    #[error("the token was not accepted: {0}")]
    Rejected(String),
    #[error("the token is not a service account's ({0})")]
    NotServiceAccount(String),
    #[error("cannot review the token with the API server: {0}")]
    Api(#[from] kube::Error),
}

/// The token of an `authorization: Bearer <token>` value.
pub fn bearer(value: Option<&str>) -> Result<&str, AuthError> {
    value
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .ok_or(AuthError::Missing)
}

/// `system:serviceaccount:<ns>:<sa>` → (ns, sa).
fn service_account(username: &str) -> Option<(String, String)> {
    let rest = username.strip_prefix("system:serviceaccount:")?;
    let (ns, sa) = rest.split_once(':')?;
    (!ns.is_empty() && !sa.is_empty()).then(|| (ns.to_owned(), sa.to_owned()))
}

#[derive(Clone)]
pub struct TokenReviewer {
    client: Client,
}

impl TokenReviewer {
    pub fn new(client: Client) -> TokenReviewer {
        TokenReviewer { client }
    }

    pub async fn review(&self, token: &str) -> Result<Caller, AuthError> {
        let api: Api<TokenReview> = Api::all(self.client.clone());
        let review = TokenReview {
            spec: TokenReviewSpec {
                token: Some(token.to_owned()),
                audiences: Some(vec![AUDIENCE.to_owned()]),
            },
            ..TokenReview::default()
        };
        let reviewed = api.create(&PostParams::default(), &review).await?;
        let status = reviewed.status.unwrap_or_default();
        if status.authenticated != Some(true) {
            return Err(AuthError::Rejected(
                status
                    .error
                    .unwrap_or_else(|| "not authenticated".to_owned()),
            ));
        }
        let user = status.user.unwrap_or_default();
        let username = user.username.unwrap_or_default();
        let (namespace, service_account) = service_account(&username)
            .ok_or_else(|| AuthError::NotServiceAccount(username.clone()))?;
        let pod_name = user
            .extra
            .and_then(|extra| extra.get("authentication.kubernetes.io/pod-name").cloned())
            .and_then(|names| names.into_iter().next());
        Ok(Caller {
            namespace,
            service_account,
            pod_name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens_and_service_account_names() {
        assert_eq!(bearer(Some("Bearer abc")).ok(), Some("abc"));
        assert!(matches!(bearer(Some("Basic abc")), Err(AuthError::Missing)));
        assert!(matches!(bearer(Some("Bearer ")), Err(AuthError::Missing)));
        assert!(matches!(bearer(None), Err(AuthError::Missing)));
        assert_eq!(
            service_account("system:serviceaccount:shop:web"),
            Some(("shop".to_owned(), "web".to_owned()))
        );
        assert_eq!(service_account("system:admin"), None);
        assert_eq!(service_account("system:serviceaccount:shop:"), None);
    }
}
