//! `--suppress` (`-S`): `CODE=Kind namespace/name`, each part with `*` wildcards. Istio's
//! `CODE=Kind name.namespace` form is read too, so existing suppression lists keep working;
//! a bare `CODE` suppresses that code everywhere.

use crate::error::SuppressError;
use crate::message::Message;

/// One parsed `--suppress` argument.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    code: String,
    kind: String,
    /// `namespace/name`, or Istio's `name.namespace` (then `istio_form`).
    target: String,
    istio_form: bool,
}

impl Suppression {
    pub fn parse(arg: &str) -> Result<Suppression, SuppressError> {
        let error = |why: &str| SuppressError {
            arg: arg.to_owned(),
            why: why.to_owned(),
        };
        let (code, rest) = match arg.split_once('=') {
            Some((code, rest)) => (code.trim(), Some(rest.trim())),
            None => (arg.trim(), None),
        };
        if code.is_empty() {
            return Err(error("the code is missing"));
        }
        if !code.chars().all(|c| c.is_ascii_alphanumeric() || c == '*') {
            return Err(error("a code is letters and digits such as IST0101"));
        }
        let (kind, target) = match rest {
            None => ("*", "*"),
            Some(rest) => match rest.split_once(char::is_whitespace) {
                Some((kind, target)) => (kind, target.trim()),
                None if rest.is_empty() => return Err(error("the resource after = is empty")),
                None => return Err(error("the resource needs a kind and a name")),
            },
        };
        Ok(Suppression {
            code: code.to_owned(),
            kind: kind.to_owned(),
            target: target.to_owned(),
            istio_form: !target.contains('/'),
        })
    }

    pub fn matches(&self, message: &Message) -> bool {
        let r = &message.resource;
        if !glob(&self.code, message.kind.code) || !glob(&self.kind, &r.kind) {
            return false;
        }
        let target = match (&r.namespace, self.istio_form) {
            (Some(ns), false) => format!("{ns}/{}", r.name),
            (Some(ns), true) => format!("{}.{ns}", r.name),
            (None, _) => r.name.clone(),
        };
        glob(&self.target, &target)
    }
}

/// `*` matches any run of characters (`/` included); matching ignores ASCII case for codes and
/// kinds the way users type them.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p = pattern.as_bytes();
    let t = text.as_bytes();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, ti));
            pi += 1;
        } else if pi < p.len() && p[pi].eq_ignore_ascii_case(&t[ti]) {
            pi += 1;
            ti += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codes;
    use crate::object::ResourceRef;

    fn message(
        code: &'static crate::message::MessageType,
        kind: &str,
        ns: Option<&str>,
        name: &str,
    ) -> Message {
        Message {
            kind: code,
            text: String::new(),
            resource: ResourceRef {
                kind: kind.into(),
                namespace: ns.map(Into::into),
                name: name.into(),
            },
            origin: None,
            field: None,
        }
    }

    #[test]
    fn globs() {
        assert!(glob("*", "anything/at all"));
        assert!(glob("IST01*", "IST0101"));
        assert!(glob("ist0101", "IST0101"));
        assert!(glob("shop/*-v?", "shop/*-v?"));
        assert!(glob("a*c*e", "abcde"));
        assert!(!glob("a*c*f", "abcde"));
    }

    #[test]
    fn both_resource_forms_and_bare_codes() {
        let vs = message(
            &codes::REFERENCED_RESOURCE_NOT_FOUND,
            "VirtualService",
            Some("shop"),
            "reviews",
        );
        let ns = message(&codes::NAMESPACE_NOT_INJECTED, "Namespace", None, "shop");
        let s = |a: &str| Suppression::parse(a).unwrap();
        assert!(s("IST0101=VirtualService shop/reviews").matches(&vs));
        assert!(s("IST0101=VirtualService shop/*").matches(&vs));
        assert!(s("IST0101=VirtualService reviews.shop").matches(&vs));
        assert!(s("IST0101=* *").matches(&vs));
        assert!(s("IST0101").matches(&vs));
        assert!(!s("IST0101=VirtualService other/*").matches(&vs));
        assert!(!s("IST0102=VirtualService shop/reviews").matches(&vs));
        assert!(s("IST0102=Namespace *").matches(&ns));
        assert!(s("IST0102=Namespace shop").matches(&ns));
        assert!(!s("IST0102=Namespace other").matches(&ns));
    }

    #[test]
    fn malformed_arguments_say_what_to_write() {
        for bad in ["=Pod a/b", "IST0101=Pod", "IST 0101=Pod a/b", "IST0101="] {
            let e = Suppression::parse(bad).unwrap_err().to_string();
            assert!(e.contains("write CODE=Kind namespace/name"), "{bad}: {e}");
        }
    }
}
