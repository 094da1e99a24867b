//! Gateway: its servers (port, protocol, hosts, bind) and their TLS settings. The TLS checks
//! also serve Sidecar ingress listeners.

use std::collections::BTreeSet;

use crate::istio::networking::{Port, Server, ServerTlsMode, ServerTlsSettings, TlsProtocol};
use crate::istio::GatewaySpec;

use super::hosts::check_namespaced_host;
use super::net::{check_bind, check_port, UNIX_PREFIX};
use super::report::{FieldPath, Issues};
use super::Context;

/// A port protocol as Istio parses it (case-insensitive).
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Protocol {
    Http,
    Http2,
    HttpProxy,
    Grpc,
    GrpcWeb,
    Https,
    Tls,
    Tcp,
    Udp,
    Mongo,
    Redis,
    Mysql,
}

impl Protocol {
    pub(super) fn parse(name: &str) -> Option<Protocol> {
        Some(match name.to_ascii_lowercase().as_str() {
            "http" => Protocol::Http,
            "http2" => Protocol::Http2,
            "http_proxy" => Protocol::HttpProxy,
            "grpc" => Protocol::Grpc,
            "grpc-web" => Protocol::GrpcWeb,
            "https" => Protocol::Https,
            "tls" => Protocol::Tls,
            "tcp" => Protocol::Tcp,
            "udp" => Protocol::Udp,
            "mongo" => Protocol::Mongo,
            "redis" => Protocol::Redis,
            "mysql" => Protocol::Mysql,
            _ => return None,
        })
    }

    /// Carried over HTTP: the proxy routes it by HTTP attributes.
    pub(super) fn is_http(self) -> bool {
        matches!(
            self,
            Protocol::Http
                | Protocol::Http2
                | Protocol::HttpProxy
                | Protocol::Grpc
                | Protocol::GrpcWeb
        )
    }

    /// Carried over TLS: the proxy routes it by SNI or terminates it.
    pub(super) fn is_tls(self) -> bool {
        matches!(self, Protocol::Https | Protocol::Tls)
    }

    /// Carried over TCP without HTTP routing.
    pub(super) fn is_tcp(self) -> bool {
        matches!(
            self,
            Protocol::Tcp
                | Protocol::Https
                | Protocol::Tls
                | Protocol::Mongo
                | Protocol::Redis
                | Protocol::Mysql
        )
    }
}

/// Checks an optional protocol name; empty means "detect", which is fine.
pub(super) fn check_protocol(protocol: Option<&str>) -> Result<(), String> {
    match protocol {
        Some(p) if !p.is_empty() && Protocol::parse(p).is_none() => Err(format!(
            "unsupported protocol {p:?}: use HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS or MYSQL"
        )),
        _ => Ok(()),
    }
}

pub(super) fn validate(gateway: &GatewaySpec, _context: &Context, issues: &mut Issues) {
    let spec = FieldPath::root("spec");
    let servers = gateway.servers.as_deref().unwrap_or_default();
    if servers.is_empty() {
        issues.error(
            &spec.field("servers"),
            "gateway must have at least one server",
        );
    }
    let mut port_names = BTreeSet::new();
    for (i, server) in servers.iter().enumerate() {
        let at = spec.field("servers").index(i);
        check_server(server, &at, issues);
        if !port_names.insert(server.port.name.as_str()) {
            issues.error(
                &at.field("port").field("name"),
                format!(
                    "port names in servers must be unique: duplicate name {}",
                    server.port.name
                ),
            );
        }
        let redirects = server.tls.as_ref().and_then(|t| t.https_redirect) == Some(true);
        let http = Protocol::parse(&server.port.protocol).is_some_and(Protocol::is_http);
        if redirects && !http {
            issues.warn(
                &at.field("tls").field("httpsRedirect"),
                "tls.httpsRedirect should only be used with http servers",
            );
        }
    }
}

fn check_server(server: &Server, at: &FieldPath, issues: &mut Issues) {
    if server.hosts.is_empty() {
        issues.error(
            &at.field("hosts"),
            "server config must contain at least one host",
        );
    }
    for (i, host) in server.hosts.iter().enumerate() {
        for error in check_namespaced_host(host, true) {
            issues.error(&at.field("hosts").index(i), error);
        }
    }
    let bind = server.bind.as_deref().unwrap_or_default();
    let port_valid = check_server_port(&server.port, bind, &at.field("port"), issues);
    if !bind.is_empty() {
        issues.check(&at.field("bind"), check_bind(bind));
        if bind.starts_with(UNIX_PREFIX) && server.port.number != 0 {
            issues.error(
                &at.field("port").field("number"),
                "port number must be 0 for unix domain socket",
            );
        }
    }
    if let Some(tls) = &server.tls {
        check_server_tls(tls, &at.field("tls"), issues);
    }
    let Some(protocol) = Protocol::parse(&server.port.protocol).filter(|_| port_valid) else {
        return;
    };
    match &server.tls {
        None if protocol.is_tls() => issues.error(
            &at.field("tls"),
            "server must have TLS settings for HTTPS/TLS protocols",
        ),
        Some(tls) if !protocol.is_tls() => {
            // A plain HTTP server may only carry `httpsRedirect` (the mode then defaults to
            // PASSTHROUGH and no certificate is set).
            let redirect_only = matches!(tls.mode, None | Some(ServerTlsMode::Passthrough))
                && !has_certificate_files(tls);
            if !protocol.is_http() {
                issues.error(
                    &at.field("tls"),
                    "server cannot have TLS settings for non HTTPS/TLS ports",
                );
            } else if !redirect_only {
                issues.error(
                    &at.field("tls"),
                    "server cannot have TLS settings for plain text HTTP ports",
                );
            }
        }
        _ => {}
    }
}

/// Checks a server's port; true when it is usable for the protocol checks that follow.
fn check_server_port(port: &Port, bind: &str, at: &FieldPath, issues: &mut Issues) -> bool {
    let mut valid = true;
    if Protocol::parse(&port.protocol).is_none() {
        issues.error(
            &at.field("protocol"),
            format!(
                "invalid protocol {:?}, supported protocols are HTTP, HTTPS, HTTP2, GRPC, GRPC-WEB, TCP, TLS, MONGO, REDIS, MYSQL",
                port.protocol
            ),
        );
        valid = false;
    }
    if port.number > 0 || !bind.starts_with(UNIX_PREFIX) {
        if let Err(e) = check_port(port.number) {
            issues.error(&at.field("number"), e);
            valid = false;
        }
    }
    if port.target_port.is_some_and(|p| p > 0) {
        issues.error(
            &at.field("targetPort"),
            "targetPort has no impact on Gateways; remove it (the gateway pod listens on port.number)",
        );
        valid = false;
    }
    if port.name.is_empty() {
        issues.error(&at.field("name"), "port name must be set");
        valid = false;
    }
    valid
}

fn has_certificate_files(tls: &ServerTlsSettings) -> bool {
    [
        &tls.ca_certificates,
        &tls.private_key,
        &tls.server_certificate,
    ]
    .iter()
    .any(|v| v.as_deref().is_some_and(|s| !s.is_empty()))
}

/// The cipher suites Envoy's BoringSSL offers under their OpenSSL names.
const CIPHER_SUITES: [&str; 15] = [
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "ECDHE-ECDSA-AES128-SHA",
    "ECDHE-RSA-AES128-SHA",
    "ECDHE-ECDSA-AES256-SHA",
    "ECDHE-RSA-AES256-SHA",
    "AES128-GCM-SHA256",
    "AES256-GCM-SHA384",
    "AES128-SHA",
    "AES256-SHA",
    "DES-CBC3-SHA",
];

/// Istio lets through suite expressions that start with an operator (`-`, `+`, `!`, `[`).
fn is_valid_cipher_suite(suite: &str) -> bool {
    suite.is_empty()
        || suite == "ALL"
        || !suite.starts_with(|c: char| c.is_alphanumeric())
        || CIPHER_SUITES.contains(&suite)
}

fn protocol_rank(version: TlsProtocol) -> Option<u8> {
    match version {
        TlsProtocol::TlsAuto => None,
        TlsProtocol::Tlsv10 => Some(0),
        TlsProtocol::Tlsv11 => Some(1),
        TlsProtocol::Tlsv12 => Some(2),
        TlsProtocol::Tlsv13 => Some(3),
    }
}

fn mode_name(mode: ServerTlsMode) -> &'static str {
    match mode {
        ServerTlsMode::Passthrough => "PASSTHROUGH",
        ServerTlsMode::Simple => "SIMPLE",
        ServerTlsMode::Mutual => "MUTUAL",
        ServerTlsMode::AutoPassthrough => "AUTO_PASSTHROUGH",
        ServerTlsMode::IstioMutual => "ISTIO_MUTUAL",
        ServerTlsMode::OptionalMutual => "OPTIONAL_MUTUAL",
    }
}

/// Checks the TLS settings of a Gateway server or a Sidecar ingress listener. An unset mode is
/// PASSTHROUGH, as in Istio's API.
pub(super) fn check_server_tls(tls: &ServerTlsSettings, at: &FieldPath, issues: &mut Issues) {
    let mode = tls.mode.unwrap_or(ServerTlsMode::Passthrough);
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let cipher_suites = tls.cipher_suites.as_deref().unwrap_or_default();
    let min = tls.min_protocol_version.and_then(protocol_rank);
    if min.is_some_and(|rank| rank < 2) && cipher_suites.is_empty() {
        issues.warn(
            &at.field("minProtocolVersion"),
            "TLS version below TLSV1_2 require setting compatible ciphers as by default they no longer include compatible ciphers",
        );
    }
    if let (Some(min), Some(max)) = (min, tls.max_protocol_version.and_then(protocol_rank)) {
        if min > max {
            issues.error(
                &at.field("minProtocolVersion"),
                "minProtocolVersion must not be higher than maxProtocolVersion",
            );
        }
    }
    let mut seen = BTreeSet::new();
    for (i, suite) in cipher_suites.iter().enumerate() {
        let suite_at = at.field("cipherSuites").index(i);
        if !is_valid_cipher_suite(suite) {
            issues.warn(
                &suite_at,
                format!("ignoring invalid cipher suite {suite:?}"),
            );
        } else if !seen.insert(suite.as_str()) {
            issues.warn(
                &suite_at,
                format!("ignoring duplicate cipher suite {suite:?}"),
            );
        }
    }
    let credential_names = tls.credential_names.as_deref().unwrap_or_default();
    let tls_certificates = tls.tls_certificates.as_deref().unwrap_or_default();
    if credential_names.len() > 2 {
        issues.error(
            &at.field("credentialNames"),
            "at most 2 credentialNames may be set",
        );
    }
    if mode == ServerTlsMode::IstioMutual {
        let forbidden = [
            (
                set(&tls.server_certificate),
                "serverCertificate",
                "server certificate",
            ),
            (set(&tls.private_key), "privateKey", "private key"),
            (set(&tls.ca_certificates), "caCertificates", "CA bundle"),
            (
                !tls_certificates.is_empty(),
                "tlsCertificates",
                "tlsCertificates",
            ),
            (
                set(&tls.credential_name),
                "credentialName",
                "credentialName",
            ),
            (
                !credential_names.is_empty(),
                "credentialNames",
                "credentialNames",
            ),
        ];
        for (present, field, what) in forbidden {
            if present {
                issues.error(
                    &at.field(field),
                    format!("ISTIO_MUTUAL TLS cannot have associated {what}: it uses the mesh's workload certificates"),
                );
            }
        }
        return;
    }
    let has_credential = set(&tls.credential_name) || !credential_names.is_empty();
    let passthrough = matches!(
        mode,
        ServerTlsMode::Passthrough | ServerTlsMode::AutoPassthrough
    );
    if passthrough
        && (has_certificate_files(tls)
            || set(&tls.ca_crl)
            || has_credential
            || !tls_certificates.is_empty())
    {
        issues.warn(
            at,
            format!(
                "{} mode does not use certificates, they will be ignored",
                mode_name(mode)
            ),
        );
    }
    let sources = [
        set(&tls.server_certificate) && set(&tls.private_key),
        set(&tls.credential_name),
        !credential_names.is_empty(),
        !tls_certificates.is_empty(),
    ];
    if sources.iter().filter(|s| **s).count() > 1 {
        issues.error(
            at,
            "only one of credentialName, credentialNames, serverCertificate/privateKey or tlsCertificates should be specified",
        );
    }
    let terminates = matches!(
        mode,
        ServerTlsMode::Simple | ServerTlsMode::Mutual | ServerTlsMode::OptionalMutual
    );
    if terminates && !has_credential {
        check_certificate_files(tls, mode, at, issues);
    }
    if set(&tls.ca_crl) {
        if set(&tls.credential_name) {
            issues.error(
                &at.field("caCrl"),
                "CRL is not supported with credentialName. CRL has to be specified in the credential",
            );
        }
        if mode == ServerTlsMode::Simple {
            issues.error(&at.field("caCrl"), "CRL is not supported with SIMPLE TLS");
        }
    }
}

/// SIMPLE and MUTUAL servers without a credential need certificate and key files (in
/// `serverCertificate`/`privateKey`, or in each of `tlsCertificates`), and MUTUAL a CA bundle.
fn check_certificate_files(
    tls: &ServerTlsSettings,
    mode: ServerTlsMode,
    at: &FieldPath,
    issues: &mut Issues,
) {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    let prefix = if mode == ServerTlsMode::Simple {
        "SIMPLE TLS"
    } else {
        "MUTUAL TLS"
    };
    // A CA given by its own credential (caCertCredentialName) also verifies clients.
    if mode != ServerTlsMode::Simple
        && !set(&tls.ca_certificates)
        && !set(&tls.ca_cert_credential_name)
    {
        issues.error(
            &at.field("caCertificates"),
            format!(
                "{prefix} requires a client CA bundle (caCertificates or caCertCredentialName)"
            ),
        );
    }
    match tls.tls_certificates.as_deref().unwrap_or_default() {
        [] => {
            let hint = "or set credentialName";
            if !set(&tls.server_certificate) {
                issues.error(
                    &at.field("serverCertificate"),
                    format!("{prefix} requires a server certificate ({hint})"),
                );
            }
            if !set(&tls.private_key) {
                issues.error(
                    &at.field("privateKey"),
                    format!("{prefix} requires a private key ({hint})"),
                );
            }
        }
        certificates => {
            if certificates.len() > 2 {
                issues.warn(
                    &at.field("tlsCertificates"),
                    format!("{prefix} can support up to 2 server certificates"),
                );
            }
            for (i, cert) in certificates.iter().enumerate() {
                let at = at.field("tlsCertificates").index(i);
                if !set(&cert.server_certificate) {
                    issues.error(
                        &at.field("serverCertificate"),
                        format!("{prefix} requires a server certificate"),
                    );
                }
                if !set(&cert.private_key) {
                    issues.error(
                        &at.field("privateKey"),
                        format!("{prefix} requires a private key"),
                    );
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::validate::testing::*;
    use crate::validate::Report;
    use serde_json::json;

    fn check(spec: serde_json::Value) -> Report {
        run(spec, validate)
    }

    fn server(
        port: serde_json::Value,
        hosts: serde_json::Value,
        tls: Option<serde_json::Value>,
    ) -> serde_json::Value {
        let mut s = json!({"port": port, "hosts": hosts});
        if let Some(tls) = tls {
            s["tls"] = tls;
        }
        s
    }

    #[test]
    fn typical_servers_are_valid() {
        let report = check(json!({"selector": {"istio": "ingressgateway"}, "servers": [
            server(json!({"number": 80, "name": "http", "protocol": "HTTP"}), json!(["*"]), Some(json!({"httpsRedirect": true}))),
            server(json!({"number": 443, "name": "https", "protocol": "HTTPS"}), json!(["shop/shop.example.com"]),
                Some(json!({"mode": "SIMPLE", "credentialName": "shop-cert"}))),
            server(json!({"number": 15443, "name": "tls", "protocol": "TLS"}), json!(["*.local"]), Some(json!({"mode": "AUTO_PASSTHROUGH"}))),
        ]}));
        assert_clean(&report);
    }

    #[test]
    fn servers_are_required() {
        assert_eq!(error_fields(&check(json!({}))), ["spec.servers"]);
        assert_eq!(
            error_fields(&check(json!({"servers": []}))),
            ["spec.servers"]
        );
    }

    #[test]
    fn ports_hosts_and_names() {
        let report = check(json!({"servers": [
            server(json!({"number": 0, "name": "http", "protocol": "HTTP"}), json!([]), None),
            server(json!({"number": 80, "name": "http", "protocol": "SCTP", "targetPort": 8080}), json!(["bad_ns!/a.example.com", "short"]), None),
        ]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.servers[0].hosts",
                "spec.servers[0].port.number",
                "spec.servers[1].hosts[0]",
                "spec.servers[1].hosts[1]",
                "spec.servers[1].port.protocol",
                "spec.servers[1].port.targetPort",
                "spec.servers[1].port.name",
            ]
        );
    }

    #[test]
    fn tls_settings_match_the_protocol() {
        let report = check(json!({"servers": [
            server(json!({"number": 443, "name": "https", "protocol": "HTTPS"}), json!(["*"]), None),
            server(json!({"number": 80, "name": "http", "protocol": "HTTP"}), json!(["*"]), Some(json!({"mode": "SIMPLE", "credentialName": "c"}))),
            server(json!({"number": 5432, "name": "tcp", "protocol": "TCP"}), json!(["*"]), Some(json!({"httpsRedirect": true}))),
        ]}));
        assert_eq!(
            error_fields(&report),
            [
                "spec.servers[0].tls",
                "spec.servers[1].tls",
                "spec.servers[2].tls"
            ]
        );
        assert_eq!(
            report.warnings[0].field,
            "spec.servers[2].tls.httpsRedirect"
        );
    }

    #[test]
    fn terminating_modes_need_certificates() {
        let https = json!({"number": 443, "name": "https", "protocol": "HTTPS"});
        let report = check(
            json!({"servers": [server(https.clone(), json!(["*"]), Some(json!({"mode": "SIMPLE"})))]}),
        );
        assert_eq!(
            error_fields(&report),
            [
                "spec.servers[0].tls.serverCertificate",
                "spec.servers[0].tls.privateKey"
            ]
        );
        let report = check(json!({"servers": [server(https.clone(), json!(["*"]),
            Some(json!({"mode": "MUTUAL", "serverCertificate": "/c", "privateKey": "/k"})))]}));
        assert_eq!(
            error_fields(&report),
            ["spec.servers[0].tls.caCertificates"]
        );
        let report = check(json!({"servers": [server(https.clone(), json!(["*"]),
            Some(json!({"mode": "MUTUAL", "credentialName": "c"})))]}));
        assert!(report.is_valid(), "{report:?}");
        let report = check(json!({"servers": [server(https.clone(), json!(["*"]),
            Some(json!({"mode": "SIMPLE", "credentialName": "c", "serverCertificate": "/c", "privateKey": "/k"})))]}));
        assert_eq!(error_fields(&report), ["spec.servers[0].tls"]);
        let report = check(json!({"servers": [server(https.clone(), json!(["*"]),
            Some(json!({"mode": "ISTIO_MUTUAL", "credentialName": "c"})))]}));
        assert_eq!(
            error_fields(&report),
            ["spec.servers[0].tls.credentialName"]
        );
        let report = check(json!({"servers": [server(https.clone(), json!(["*"]),
            Some(json!({"mode": "SIMPLE", "serverCertificate": "/c", "privateKey": "/k", "caCrl": "/crl"})))]}));
        assert_eq!(error_fields(&report), ["spec.servers[0].tls.caCrl"]);
        let report = check(json!({"servers": [server(https, json!(["*"]),
            Some(json!({"mode": "SIMPLE", "credentialName": "c", "minProtocolVersion": "TLSV1_3", "maxProtocolVersion": "TLSV1_2",
                "cipherSuites": ["NOT-A-CIPHER"]})))]}));
        assert_eq!(
            error_fields(&report),
            ["spec.servers[0].tls.minProtocolVersion"]
        );
        assert_eq!(
            report.warnings[0].field,
            "spec.servers[0].tls.cipherSuites[0]"
        );
    }

    #[test]
    fn port_names_are_unique() {
        let http = json!({"number": 80, "name": "http", "protocol": "HTTP"});
        let http2 = json!({"number": 8080, "name": "http", "protocol": "HTTP"});
        let report = check(
            json!({"servers": [server(http, json!(["*"]), None), server(http2, json!(["*"]), None)]}),
        );
        assert_eq!(error_fields(&report), ["spec.servers[1].port.name"]);
    }

    #[test]
    fn protocols_parse_case_insensitively() {
        assert_eq!(Protocol::parse("grpc-web"), Some(Protocol::GrpcWeb));
        assert_eq!(Protocol::parse("Https"), Some(Protocol::Https));
        assert!(Protocol::parse("quic").is_none());
        assert!(check_protocol(Some("")).is_ok());
        assert!(check_protocol(Some("quic")).is_err());
    }
}
