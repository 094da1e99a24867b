//! What each role answers.

use hyper::header::HeaderMap;
use hyper::{Method, StatusCode};
use serde_json::{json, Map, Value};

use crate::upstream::{HttpClient, Upstream, PROPAGATED};

pub enum Role {
    Details,
    Reviews {
        ratings: Option<Upstream>,
    },
    Ratings,
    Productpage {
        details: Upstream,
        reviews: Upstream,
    },
}

pub struct App {
    pub service: &'static str,
    pub version: String,
    /// The pod's name (HOSTNAME in a container), so answers say which replica served them.
    pub pod: String,
    pub role: Role,
    pub client: HttpClient,
}

/// A response before it becomes HTTP: JSON, or the health check's plain text.
pub enum Reply {
    Json(StatusCode, Value),
    Text(StatusCode, &'static str),
}

impl App {
    pub async fn handle(&self, method: &Method, path: &str, headers: &HeaderMap) -> Reply {
        if method != Method::GET && method != Method::HEAD {
            return Reply::Text(StatusCode::METHOD_NOT_ALLOWED, "only GET\n");
        }
        match path {
            "/healthz" => Reply::Text(StatusCode::OK, "ok\n"),
            "/" => Reply::Json(StatusCode::OK, self.identity(headers)),
            p if p == format!("/{}", self.service) => self.resource(headers).await,
            _ => Reply::Text(StatusCode::NOT_FOUND, "not found\n"),
        }
    }

    /// Who answered, and the tracing headers that reached it (which shows propagation working).
    fn identity(&self, headers: &HeaderMap) -> Value {
        let mut seen = Map::new();
        for name in PROPAGATED {
            if let Some(v) = headers.get(*name).and_then(|v| v.to_str().ok()) {
                seen.insert((*name).to_owned(), json!(v));
            }
        }
        json!({
            "service": self.service,
            "version": self.version,
            "pod": self.pod,
            "headers": seen,
        })
    }

    async fn resource(&self, headers: &HeaderMap) -> Reply {
        let mut body = self.identity(headers);
        match &self.role {
            Role::Details => {
                body["details"] = json!({
                    "id": 0, "author": "William Shakespeare", "year": 1595, "type": "paperback",
                    "pages": 200, "publisher": "PublisherA", "language": "English",
                });
            }
            Role::Ratings => {
                body["ratings"] = json!({"Reviewer1": 5, "Reviewer2": 4});
            }
            Role::Reviews { ratings } => {
                body["reviews"] = json!([
                    {"reviewer": "Reviewer1", "text": "An extremely entertaining play by Shakespeare."},
                    {"reviewer": "Reviewer2", "text": "Absolutely fun and entertaining."},
                ]);
                // As in Bookinfo: v1 shows no stars, v2 black ones, v3 red ones.
                if self.version != "v1" {
                    body["stars"] = json!(if self.version == "v3" { "red" } else { "black" });
                    if let Some(ratings) = ratings {
                        match ratings.get(&self.client, headers).await {
                            Ok(r) => body["ratings"] = r,
                            // A page with reviews but no stars beats no page at all.
                            Err(e) => body["ratings_error"] = json!(format!("ratings: {e}")),
                        }
                    }
                }
            }
            Role::Productpage { details, reviews } => {
                let (d, r) = tokio::join!(
                    details.get(&self.client, headers),
                    reviews.get(&self.client, headers)
                );
                for (upstream, result) in [(details, &d), (reviews, &r)] {
                    if let Err(e) = result {
                        return Reply::Json(
                            StatusCode::BAD_GATEWAY,
                            json!({
                                "error": format!("{}: {e}", upstream.name),
                                "upstream": upstream.name,
                            }),
                        );
                    }
                }
                let (d, r) = (d.unwrap_or_default(), r.unwrap_or_default());
                body["reviews_version"] = r["version"].clone();
                body["details"] = d;
                body["reviews"] = r;
            }
        }
        Reply::Json(StatusCode::OK, body)
    }
}
