//! The command line: one subcommand per role.

use clap::{Args, Parser, Subcommand};
use hyper::Uri;

#[derive(Parser)]
#[command(
    name = "mesh-sample",
    about = "A Bookinfo-shaped demo application: details, reviews v1/v2/v3, ratings, productpage"
)]
pub struct Cli {
    #[command(subcommand)]
    pub role: Role,
}

#[derive(Subcommand)]
pub enum Role {
    /// GET /details: the book's details.
    Details(Common),
    /// GET /reviews: the reviews; v2 and v3 add ratings when --ratings is given.
    Reviews {
        #[command(flatten)]
        common: Common,
        /// The ratings service's base URL, e.g. http://ratings:9080.
        #[arg(long, value_parser = base_url)]
        ratings: Option<Uri>,
    },
    /// GET /ratings: the ratings.
    Ratings(Common),
    /// GET /productpage: details and reviews together.
    Productpage {
        #[command(flatten)]
        common: Common,
        /// The details service's base URL.
        #[arg(long, value_parser = base_url, default_value = "http://details:9080")]
        details: Uri,
        /// The reviews service's base URL.
        #[arg(long, value_parser = base_url, default_value = "http://reviews:9080")]
        reviews: Uri,
    },
}

#[derive(Args)]
pub struct Common {
    /// The port to listen on (all addresses); 0 picks a free one, printed at start.
    #[arg(long, default_value_t = 9080)]
    pub port: u16,
    /// The version this instance reports (reviews: v1 without ratings, v2 black stars, v3 red).
    #[arg(long, default_value = "v1", value_parser = version)]
    pub version: String,
}

/// Only plain HTTP: the sidecars add mTLS, and a scheme the client cannot speak should fail at
/// start rather than on every request.
fn base_url(s: &str) -> Result<Uri, String> {
    let uri: Uri = s.parse().map_err(|e| format!("{s:?} is not a URL: {e}"))?;
    if uri.scheme_str() != Some("http") || uri.authority().is_none() {
        return Err(format!("{s:?}: want http://HOST[:PORT]"));
    }
    Ok(uri)
}

fn version(s: &str) -> Result<String, String> {
    if s.is_empty()
        || !s
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '.')
    {
        return Err(format!("{s:?}: want a version label such as v1"));
    }
    Ok(s.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_urls() {
        assert!(base_url("http://details:9080").is_ok());
        assert!(base_url("https://details:9080").is_err());
        assert!(base_url("details:9080").is_err());
        assert!(base_url("/details").is_err());
    }

    #[test]
    fn versions() {
        assert!(version("v3").is_ok());
        assert!(version("").is_err());
        assert!(version("v 1").is_err());
    }
}
