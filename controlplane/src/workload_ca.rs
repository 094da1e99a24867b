//! Istio's certificate service (`istio.v1.auth.IstioCertificateService/CreateCertificate`):
//! a proxy sends a CSR with its service-account token, and gets a SPIFFE certificate for
//! exactly the identity the token proves.

use std::sync::Arc;
use std::time::Duration;

use mesh_xds::ca::istio_certificate_service_server::IstioCertificateService;
use mesh_xds::ca::{IstioCertificateRequest, IstioCertificateResponse};
use tonic::{Request, Response, Status};
use tracing::{info, warn};

use crate::ca::{CaError, CaHandle};
use crate::metrics::Metrics;
use crate::token_review::{bearer, AuthError, TokenReviewer};

/// Validity when the request asks for none (Istio's default workload certificate life).
pub const DEFAULT_VALIDITY: Duration = Duration::from_secs(24 * 3600);
/// The longest validity meshd grants, whatever is asked.
pub const MAX_VALIDITY: Duration = Duration::from_secs(24 * 3600);

#[derive(Clone)]
pub struct CertificateService {
    pub ca: CaHandle,
    pub reviewer: Arc<TokenReviewer>,
    pub trust_domain: String,
    pub metrics: Metrics,
}

fn validity(requested_secs: i64) -> Duration {
    if requested_secs <= 0 {
        DEFAULT_VALIDITY
    } else {
        Duration::from_secs(requested_secs as u64).min(MAX_VALIDITY)
    }
}

#[tonic::async_trait]
impl IstioCertificateService for CertificateService {
    async fn create_certificate(
        &self,
        request: Request<IstioCertificateRequest>,
    ) -> Result<Response<IstioCertificateResponse>, Status> {
        self.metrics.csr_received();
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok());
        let caller = match bearer(header) {
            Ok(token) => self.reviewer.review(token).await,
            Err(e) => Err(e),
        };
        let caller = caller.map_err(|e| {
            self.metrics.authentication_failed();
            warn!(%peer, error = %e, "certificate request refused: not authenticated");
            match e {
                AuthError::Api(_) => Status::unavailable(e.to_string()),
                _ => Status::unauthenticated(e.to_string()),
            }
        })?;
        let identity = caller.spiffe_id(&self.trust_domain);
        let body = request.into_inner();
        let chain = self
            .ca
            .get()
            .issue_workload(&body.csr, &identity, validity(body.validity_duration))
            .map_err(|e| {
                self.metrics.csr_refused();
                warn!(%peer, %identity, pod = ?caller.pod_name, error = %e, "certificate request refused");
                match e {
                    CaError::Identity { .. } => Status::permission_denied(e.to_string()),
                    CaError::Csr(_) => Status::invalid_argument(e.to_string()),
                    _ => Status::internal(e.to_string()),
                }
            })?;
        self.metrics.certificate_issued();
        info!(%identity, pod = ?caller.pod_name, "workload certificate issued");
        Ok(Response::new(IstioCertificateResponse {
            cert_chain: chain,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_defaults_and_is_capped() {
        assert_eq!(validity(0), DEFAULT_VALIDITY);
        assert_eq!(validity(-5), DEFAULT_VALIDITY);
        assert_eq!(validity(3600), Duration::from_secs(3600));
        assert_eq!(validity(90 * 24 * 3600), MAX_VALIDITY);
    }
}
