//! Kubernetes resource quantities (`100m`, `1.5`, `128Mi`, `1e3`), checked before they reach the
//! API server so a bad annotation is reported against the workload that carries it.

const SUFFIXES: &[&str] = &[
    "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "n", "u", "m", "k", "M", "G", "T", "P", "E", "",
];

/// Whether `text` is a valid quantity.
pub fn is_quantity(text: &str) -> bool {
    let body = text.strip_prefix(['+', '-']).unwrap_or(text);
    let (number, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let number = match exponent {
        Some(exp) => {
            let digits = exp.strip_prefix(['+', '-']).unwrap_or(exp);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return false;
            }
            number
        }
        None => match SUFFIXES
            .iter()
            .find(|s| !s.is_empty() && number.ends_with(*s))
        {
            Some(suffix) => &number[..number.len() - suffix.len()],
            None => number,
        },
    };
    let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    !(whole.is_empty() && fraction.is_empty()) && digits(whole) && digits(fraction)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for ok in [
            "100m", "1", "0.5", "1.5Gi", "128Mi", "1e3", "2E-2", ".5", "1k", "+1",
        ] {
            assert!(is_quantity(ok), "{ok}");
        }
        for bad in [
            "", "abc", "1.2.3", "10 m", "1mm", "Mi", "1e", "1ee3", "-", "1Gb",
        ] {
            assert!(!is_quantity(bad), "{bad}");
        }
    }
}
