//! Field paths such as `spec.http[0].route[1].destination.host`: how a message names the field
//! at fault, and how its line is found in the YAML it came from.

use std::fmt;

/// One step of a path: a mapping key or a sequence index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seg {
    Key(String),
    Index(usize),
}

/// A path from the top of an object to one of its fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldPath(pub Vec<Seg>);

impl FieldPath {
    /// Parses `a.b[2].c`; a key holding dots or brackets is written `["sidecar.istio.io/inject"]`.
    pub fn parse(text: &str) -> FieldPath {
        let mut segs = Vec::new();
        let mut rest = text;
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix("[\"") {
                let end = after.find("\"]").unwrap_or(after.len());
                segs.push(Seg::Key(after[..end].to_owned()));
                rest = after.get(end + 2..).unwrap_or("");
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').unwrap_or(after.len());
                match after[..end].parse() {
                    Ok(i) => segs.push(Seg::Index(i)),
                    Err(_) => segs.push(Seg::Key(after[..end].to_owned())),
                }
                rest = after.get(end + 1..).unwrap_or("");
            } else {
                let rest_trimmed = rest.strip_prefix('.').unwrap_or(rest);
                let end = rest_trimmed.find(['.', '[']).unwrap_or(rest_trimmed.len());
                if end > 0 {
                    segs.push(Seg::Key(rest_trimmed[..end].to_owned()));
                }
                rest = &rest_trimmed[end..];
                if end == 0 && !rest.starts_with('[') {
                    // A stray dot: skip it rather than loop.
                    rest = rest.get(1..).unwrap_or("");
                }
            }
        }
        FieldPath(segs)
    }

    /// This path followed by `other`.
    pub fn join(&self, other: &FieldPath) -> FieldPath {
        let mut segs = self.0.clone();
        segs.extend(other.0.iter().cloned());
        FieldPath(segs)
    }
}

impl fmt::Display for FieldPath {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, seg) in self.0.iter().enumerate() {
            match seg {
                Seg::Index(n) => write!(f, "[{n}]")?,
                Seg::Key(k) if k.contains(['.', '[', ']', '/']) => write!(f, "[{k:?}]")?,
                Seg::Key(k) if i == 0 => write!(f, "{k}")?,
                Seg::Key(k) => write!(f, ".{k}")?,
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_the_same_path() {
        for text in [
            "spec.http[0].route[1].destination.host",
            "metadata.annotations[\"sidecar.istio.io/inject\"]",
            "items[3]",
        ] {
            assert_eq!(FieldPath::parse(text).to_string(), text);
        }
        assert_eq!(
            FieldPath::parse("a[\"x.y\"].b").0,
            vec![
                Seg::Key("a".into()),
                Seg::Key("x.y".into()),
                Seg::Key("b".into())
            ]
        );
    }
}
