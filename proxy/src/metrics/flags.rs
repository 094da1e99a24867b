//! Envoy's response flags, the `response_flags` label Istio reports.

/// A set of response flags; `-` when empty, as Envoy prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ResponseFlags(u16);

macro_rules! flags {
    ($($name:ident = $bit:expr, $text:expr;)*) => {
        impl ResponseFlags {
            $(pub const $name: ResponseFlags = ResponseFlags(1 << $bit);)*
            const ALL: &'static [(ResponseFlags, &'static str)] = &[$((ResponseFlags::$name, $text)),*];
        }
    };
}

flags! {
    NO_HEALTHY_UPSTREAM = 0, "UH";
    UPSTREAM_CONNECTION_FAILURE = 1, "UF";
    UPSTREAM_OVERFLOW = 2, "UO";
    NO_ROUTE = 3, "NR";
    UPSTREAM_RETRY_LIMIT_EXCEEDED = 4, "URX";
    UPSTREAM_REQUEST_TIMEOUT = 5, "UT";
    UPSTREAM_CONNECTION_TERMINATION = 6, "UC";
    DOWNSTREAM_CONNECTION_TERMINATION = 7, "DC";
    DELAY_INJECTED = 8, "DI";
    FAULT_INJECTED = 9, "FI";
    DOWNSTREAM_PROTOCOL_ERROR = 10, "DPE";
    LOCAL_RESET = 11, "LR";
    NO_CLUSTER_FOUND = 12, "NC";
    RATE_LIMITED = 13, "RL";
}

impl ResponseFlags {
    pub const NONE: ResponseFlags = ResponseFlags(0);

    pub fn insert(&mut self, other: ResponseFlags) {
        self.0 |= other.0;
    }
    pub fn contains(self, other: ResponseFlags) -> bool {
        self.0 & other.0 == other.0 && other.0 != 0
    }
    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// Writes the flags as Envoy does: `UO`, `UF,URX`, or `-`.
    pub fn write_to(self, out: &mut String) {
        if self.0 == 0 {
            out.push('-');
            return;
        }
        let mut first = true;
        for (f, text) in Self::ALL {
            if self.contains(*f) {
                if !first {
                    out.push(',');
                }
                out.push_str(text);
                first = false;
            }
        }
    }
}

impl std::ops::BitOr for ResponseFlags {
    type Output = ResponseFlags;
    fn bitor(self, rhs: Self) -> Self {
        ResponseFlags(self.0 | rhs.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_like_envoy() {
        let mut s = String::new();
        ResponseFlags::NONE.write_to(&mut s);
        assert_eq!(s, "-");
        let mut s = String::new();
        (ResponseFlags::UPSTREAM_CONNECTION_FAILURE | ResponseFlags::UPSTREAM_RETRY_LIMIT_EXCEEDED)
            .write_to(&mut s);
        assert_eq!(s, "UF,URX");
    }
}
