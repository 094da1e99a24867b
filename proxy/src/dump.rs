//! The config text a snapshot was made from, kept for the admin config dump.
//!
//! Kept deflated: it is read only when someone asks for the dump (or the watched file's stamp
//! changes), and a large mesh's config is mostly repeated service entries, which deflate to a
//! tenth or less; held as text it was the largest single allocation of an idle sidecar.

use miniz_oxide::deflate::compress_to_vec;
use miniz_oxide::inflate::decompress_to_vec_with_limit;

/// Fast rather than small: the text is mostly repetition, which every level finds.
const LEVEL: u8 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The YAML file as it was read.
    Yaml,
    /// The JSON rendering of a config built in code (a control-plane push).
    Json,
}

pub struct Dump {
    format: Format,
    len: usize,
    deflated: Box<[u8]>,
}

impl Dump {
    pub fn new(format: Format, text: &str) -> Dump {
        Dump {
            format,
            len: text.len(),
            deflated: compress_to_vec(text.as_bytes(), LEVEL).into_boxed_slice(),
        }
    }

    /// The text, as it was given.
    pub fn text(&self) -> Option<String> {
        let bytes = decompress_to_vec_with_limit(&self.deflated, self.len).ok()?;
        String::from_utf8(bytes).ok()
    }

    /// Whether `text` is the YAML this dump was made from.
    pub fn is_yaml(&self, text: &[u8]) -> bool {
        self.format == Format::Yaml
            && self.len == text.len()
            && self.text().is_some_and(|t| t.as_bytes() == text)
    }

    /// The config as a JSON value.
    pub fn to_json(&self) -> Option<serde_json::Value> {
        let text = self.text()?;
        match self.format {
            Format::Yaml => serde_yaml_ng::from_str(&text).ok(),
            Format::Json => serde_json::from_str(&text).ok(),
        }
    }

    /// Bytes held.
    pub fn held(&self) -> usize {
        self.deflated.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gives_back_the_text_it_was_made_from() {
        let text: String = (0..1000)
            .map(|i| format!("  - host: svc-{i}.ns-{}.svc.cluster.local\n", i % 50))
            .collect();
        let d = Dump::new(Format::Yaml, &text);
        assert_eq!(d.text().as_deref(), Some(text.as_str()));
        assert!(d.is_yaml(text.as_bytes()));
        assert!(!d.is_yaml(format!("{text}#").as_bytes()));
        assert!(!d.is_yaml(text.replace("svc-7.", "svc-8.").as_bytes()));
        assert!(
            d.held() * 5 < text.len(),
            "held {} of {}",
            d.held(),
            text.len()
        );
    }

    #[test]
    fn a_json_dump_is_not_the_yaml_file() {
        let d = Dump::new(Format::Json, "{\"services\":[]}");
        assert!(!d.is_yaml(b"{\"services\":[]}"));
        assert_eq!(d.to_json(), Some(serde_json::json!({"services": []})));
    }
}
