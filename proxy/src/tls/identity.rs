//! SPIFFE identities in certificates: the URI SAN `spiffe://<trust domain>/ns/<ns>/sa/<sa>`.

use x509_parser::prelude::*;

/// The SPIFFE ID a certificate (DER) carries in its URI SANs, if any.
pub fn spiffe_id(der: &[u8]) -> Option<String> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    uri_sans(&cert)
        .into_iter()
        .find(|u| u.starts_with("spiffe://"))
}

pub(crate) fn uri_sans(cert: &X509Certificate<'_>) -> Vec<String> {
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            _ => None,
        })
        .collect()
}

/// Every SAN a certificate carries, DNS names and URIs, for `subjectAltNames` checks.
pub fn all_sans(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = X509Certificate::from_der(der) else {
        return Vec::new();
    };
    let Ok(Some(san)) = cert.subject_alternative_name() else {
        return Vec::new();
    };
    san.value
        .general_names
        .iter()
        .filter_map(|n| match n {
            GeneralName::URI(u) => Some((*u).to_owned()),
            GeneralName::DNSName(d) => Some((*d).to_owned()),
            _ => None,
        })
        .collect()
}

/// When the certificate stops being valid, in Unix seconds.
pub fn not_after(der: &[u8]) -> Option<i64> {
    let (_, cert) = X509Certificate::from_der(der).ok()?;
    Some(cert.validity().not_after.timestamp())
}

/// An identity as AuthorizationPolicy `principals` name it: without `spiffe://`.
pub fn principal(spiffe: &str) -> &str {
    spiffe.strip_prefix("spiffe://").unwrap_or(spiffe)
}

/// The namespace in `spiffe://td/ns/<ns>/sa/<sa>`.
pub fn namespace(spiffe: &str) -> Option<&str> {
    let mut parts = principal(spiffe).split('/');
    parts.next()?;
    (parts.next()? == "ns").then_some(())?;
    parts.next()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_and_principal() {
        let id = "spiffe://cluster.local/ns/shop/sa/cart";
        assert_eq!(principal(id), "cluster.local/ns/shop/sa/cart");
        assert_eq!(namespace(id), Some("shop"));
        assert_eq!(namespace("spiffe://td/other/x"), None);
    }
}
