//! Config errors that say where: file, line, column and the field's path.

use std::fmt;

/// What was wrong with a configuration, and where.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{file}: {source}")]
    Read {
        file: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{}", Located(.0))]
    Invalid(Box<Location>),
}

/// The place of an invalid value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    pub file: String,
    /// 1-based; 0 when unknown.
    pub line: usize,
    pub column: usize,
    /// The field, as `virtualServices[0].http[1].timeout`.
    pub field: String,
    pub message: String,
}

struct Located<'a>(&'a Location);

impl fmt::Display for Located<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = self.0;
        write!(f, "{}", l.file)?;
        if l.line > 0 {
            write!(f, ":{}:{}", l.line, l.column)?;
        }
        if !l.field.is_empty() && l.field != "." {
            write!(f, ": field `{}`", l.field)?;
        }
        write!(f, ": {}", l.message)
    }
}

impl ConfigError {
    pub(crate) fn from_yaml(
        file: &str,
        e: serde_path_to_error::Error<serde_yaml_ng::Error>,
    ) -> Self {
        let field = e.path().to_string();
        let inner = e.into_inner();
        let (line, column) = inner
            .location()
            .map(|l| (l.line(), l.column()))
            .unwrap_or((0, 0));
        // serde_yaml_ng appends " at line L column C"; the location is printed in front instead.
        let mut message = inner.to_string();
        if let Some(at) = message.rfind(" at line ") {
            message.truncate(at);
        }
        // It also prefixes its own (shorter) path; ours is printed instead.
        if let Some((before, rest)) = message.split_once(": ") {
            if !before.is_empty() && field.starts_with(before) {
                message = rest.to_owned();
            }
        }
        ConfigError::Invalid(Box::new(Location {
            file: file.to_owned(),
            line,
            column,
            field,
            message,
        }))
    }

    /// The location, for an invalid config.
    pub fn location(&self) -> Option<&Location> {
        match self {
            ConfigError::Invalid(l) => Some(l),
            ConfigError::Read { .. } => None,
        }
    }
}
