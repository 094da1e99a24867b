//! Reading the ALPN list of a TLS ClientHello from peeked bytes, without consuming them: on a
//! PERMISSIVE port, mesh mTLS (ALPN `istio…`) is terminated, and anything else, plaintext or
//! an application's own TLS, is passed to the application as it is.

/// What the first bytes of a connection are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Hello {
    /// Not a TLS handshake.
    NotTls,
    /// A TLS ClientHello with these ALPN protocols (maybe none).
    Tls { alpn: Vec<Vec<u8>> },
    /// A TLS record, but too short yet to read the ALPN list.
    Incomplete,
}

impl Hello {
    /// Whether the client is a mesh sidecar (ALPN `istio`, `istio-http/1.1`, …).
    pub fn is_mesh(&self) -> bool {
        matches!(self, Hello::Tls { alpn } if alpn.iter().any(|p| p.starts_with(b"istio")))
    }
}

struct Reader<'a> {
    b: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.b.len() < n {
            return None;
        }
        let (h, t) = self.b.split_at(n);
        self.b = t;
        Some(h)
    }
    fn u8(&mut self) -> Option<usize> {
        self.take(1).map(|b| b[0] as usize)
    }
    fn u16(&mut self) -> Option<usize> {
        self.take(2)
            .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    }
    fn u24(&mut self) -> Option<usize> {
        self.take(3)
            .map(|b| ((b[0] as usize) << 16) | ((b[1] as usize) << 8) | b[2] as usize)
    }
}

/// Parses the start of a connection. The ClientHello must fit in the first record (it does:
/// rustls', Envoy's and browsers' hellos are a few hundred bytes; a longer one is taken as a
/// TLS connection without ALPN, which is not the mesh's).
pub fn parse(bytes: &[u8]) -> Hello {
    if bytes.is_empty() {
        return Hello::Incomplete;
    }
    if bytes[0] != 0x16 {
        return Hello::NotTls;
    }
    let mut r = Reader { b: bytes };
    let Some(_) = r.take(3) else {
        return Hello::Incomplete;
    };
    let Some(record_len) = r.u16() else {
        return Hello::Incomplete;
    };
    let Some(record) = r.take(record_len) else {
        return if bytes.len() >= super::inbound::PEEK_LIMIT {
            Hello::Tls { alpn: Vec::new() }
        } else {
            Hello::Incomplete
        };
    };
    let alpn = client_hello_alpn(record).unwrap_or_default();
    Hello::Tls { alpn }
}

fn client_hello_alpn(record: &[u8]) -> Option<Vec<Vec<u8>>> {
    let mut r = Reader { b: record };
    if r.u8()? != 1 {
        return None; // not a ClientHello
    }
    let len = r.u24()?;
    let mut h = Reader { b: r.take(len)? };
    h.take(2 + 32)?; // version, random
    let sid = h.u8()?;
    h.take(sid)?;
    let suites = h.u16()?;
    h.take(suites)?;
    let comp = h.u8()?;
    h.take(comp)?;
    let ext_len = h.u16()?;
    let mut ext = Reader {
        b: h.take(ext_len)?,
    };
    while !ext.b.is_empty() {
        let kind = ext.u16()?;
        let len = ext.u16()?;
        let data = ext.take(len)?;
        if kind == 16 {
            let mut a = Reader { b: data };
            let list = a.u16()?;
            let mut l = Reader { b: a.take(list)? };
            let mut out = Vec::new();
            while !l.b.is_empty() {
                let n = l.u8()?;
                out.push(l.take(n)?.to_vec());
            }
            return Some(out);
        }
    }
    Some(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real ClientHello, as rustls writes it.
    fn hello(alpn: &[&[u8]]) -> Vec<u8> {
        use std::sync::Arc;
        let mut cfg = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(rustls::RootCertStore::empty())
            .with_no_client_auth();
        cfg.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
        let mut c =
            rustls::ClientConnection::new(Arc::new(cfg), "example.test".try_into().expect("name"))
                .expect("client");
        let mut out = Vec::new();
        c.write_tls(&mut out).expect("hello");
        out
    }

    #[test]
    fn reads_alpn_of_a_real_client_hello() {
        let h = hello(&[b"istio-http/1.1"]);
        assert_eq!(
            parse(&h),
            Hello::Tls {
                alpn: vec![b"istio-http/1.1".to_vec()]
            }
        );
        assert!(parse(&h).is_mesh());
        let h = hello(&[b"h2", b"http/1.1"]);
        assert!(!parse(&h).is_mesh());
        assert_eq!(parse(&hello(&[])), Hello::Tls { alpn: vec![] });
        assert_eq!(parse(&h[..20]), Hello::Incomplete);
        assert_eq!(parse(b"GET / HTTP/1.1\r\n"), Hello::NotTls);
    }
}
