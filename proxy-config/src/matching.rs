//! Small value types shared by routes and policies: string matches, regexes, percentages.

use std::fmt;

use serde::de::{self, Deserializer};
use serde::{Deserialize, Serialize, Serializer};

/// A regular expression (RE2 syntax, as Istio's) checked when the config is read; it must match
/// the whole value, as Envoy's `safe_regex` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegexPattern(String);

impl RegexPattern {
    pub fn new(pattern: &str) -> Result<Self, String> {
        regex::Regex::new(&anchored(pattern)).map_err(|e| {
            let why = e.to_string();
            let last = why
                .lines()
                .last()
                .unwrap_or("")
                .trim_start_matches("error: ");
            format!("invalid regex {pattern:?}: {last}")
        })?;
        Ok(RegexPattern(pattern.to_owned()))
    }
    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The pattern wrapped so that it must match the whole input.
    pub fn anchored(&self) -> String {
        anchored(&self.0)
    }
}

fn anchored(p: &str) -> String {
    format!("^(?:{p})$")
}

impl Serialize for RegexPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RegexPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        RegexPattern::new(&s).map_err(de::Error::custom)
    }
}

/// Istio's `StringMatch`: one of `exact`, `prefix`, `regex`; `{}` (none) means "present".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StringMatch {
    Exact(String),
    Prefix(String),
    Regex(RegexPattern),
    /// Written `{}`: the header (or parameter) only has to be there.
    Present,
}

impl Serialize for StringMatch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        match self {
            StringMatch::Exact(v) => m.serialize_entry("exact", v)?,
            StringMatch::Prefix(v) => m.serialize_entry("prefix", v)?,
            StringMatch::Regex(v) => m.serialize_entry("regex", v)?,
            StringMatch::Present => {}
        }
        m.end()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStringMatch {
    exact: Option<String>,
    prefix: Option<String>,
    regex: Option<RegexPattern>,
}

impl<'de> Deserialize<'de> for StringMatch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = RawStringMatch::deserialize(d)?;
        match (raw.exact, raw.prefix, raw.regex) {
            (Some(e), None, None) => Ok(StringMatch::Exact(e)),
            (None, Some(p), None) => Ok(StringMatch::Prefix(p)),
            (None, None, Some(r)) => Ok(StringMatch::Regex(r)),
            (None, None, None) => Ok(StringMatch::Present),
            _ => Err(de::Error::custom(
                "a string match takes only one of exact, prefix or regex",
            )),
        }
    }
}

/// A percentage, 0 to 100, written `{value: 12.5}` as Istio's `Percent`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Default)]
pub struct Percent {
    pub value: f64,
}

impl Percent {
    pub const ALL: Percent = Percent { value: 100.0 };
}

impl<'de> Deserialize<'de> for Percent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Raw {
            value: f64,
        }
        let raw = Raw::deserialize(d)?;
        if !(0.0..=100.0).contains(&raw.value) {
            return Err(de::Error::custom(format!(
                "percentage {} is outside 0..100",
                raw.value
            )));
        }
        Ok(Percent { value: raw.value })
    }
}

impl fmt::Display for Percent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}%", self.value)
    }
}

/// An HTTP status code a route may answer with (100..=599).
pub(crate) fn status_code<'de, D: Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    let v = u16::deserialize(d)?;
    if (100..=599).contains(&v) {
        Ok(v)
    } else {
        Err(de::Error::custom(format!(
            "{v} is not an HTTP status code (100..599)"
        )))
    }
}

pub(crate) fn opt_status_code<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u16>, D::Error> {
    match Option::<u16>::deserialize(d)? {
        Some(v) if !(100..=599).contains(&v) => Err(de::Error::custom(format!(
            "{v} is not an HTTP status code (100..599)"
        ))),
        v => Ok(v),
    }
}
