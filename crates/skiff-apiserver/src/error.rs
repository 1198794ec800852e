//! Every failure of an API request, and the one place it becomes a Kubernetes `Status`.

use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::response::Response;
use serde_json::json;
use serde_json::Value;
use skiff_store::StoreError;

/// A field-level problem, reported in `Status.details.causes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    pub reason: String,
    pub message: String,
    pub field: String,
}

/// Why a request failed. Each variant is one HTTP status and one `Status.reason`.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The object does not exist (404 NotFound).
    #[error("{kind} \"{name}\" not found")]
    NotFound { kind: String, name: String },
    /// The URL names no resource or operation the server knows (404 NotFound).
    #[error("the server could not find the requested resource")]
    NoRoute,
    /// A create found the name taken (409 AlreadyExists).
    #[error("{kind} \"{name}\" already exists")]
    AlreadyExists { kind: String, name: String },
    /// A precondition or resourceVersion did not match, or managers conflict (409 Conflict).
    #[error("{message}")]
    Conflict { kind: String, name: String, message: String, causes: Vec<Cause> },
    /// The object failed validation (422 Invalid).
    #[error("{kind} \"{name}\" is invalid: {}", causes.iter().map(|c| if c.field.is_empty() { c.message.clone() } else { format!("{}: {}", c.field, c.message) }).collect::<Vec<_>>().join(", "))]
    Invalid { group: String, kind: String, name: String, causes: Vec<Cause> },
    /// The request itself is malformed: bad JSON, bad selector, strict decoding (400 BadRequest).
    #[error("{0}")]
    BadRequest(String),
    /// The verb is not served for this resource (405 MethodNotAllowed).
    #[error("the server does not allow this method on the requested resource")]
    MethodNotAllowed,
    /// The body is larger than the server accepts (413 RequestEntityTooLarge).
    #[error("the request body is too large: limit is {limit} bytes")]
    TooLarge { limit: usize },
    /// The body's media type is not one the endpoint accepts (415 UnsupportedMediaType).
    #[error("the body of the request was in an unknown format - accepted media types include: {accepted}")]
    UnsupportedMediaType { accepted: String },
    /// The requested history is compacted (410 Expired).
    #[error("too old resource version: {requested} ({oldest})")]
    Expired { requested: u64, oldest: u64 },
    /// The namespace is being deleted; nothing new may be created in it (403 Forbidden).
    #[error("{0}")]
    Forbidden(String),
    /// No quorum or leader right now (503 ServiceUnavailable).
    #[error("{0}")]
    Unavailable(String),
    /// The store did not answer in time; the write may or may not have happened (504 Timeout).
    #[error("{0}")]
    Timeout(String),
    /// A bug or storage failure (500 InternalError).
    #[error("{0}")]
    Internal(String),
}

impl ApiError {
    pub fn not_found(kind: &str, name: &str) -> Self {
        ApiError::NotFound { kind: kind.to_string(), name: name.to_string() }
    }

    pub fn invalid(group: &str, kind: &str, name: &str, causes: Vec<Cause>) -> Self {
        ApiError::Invalid { group: group.into(), kind: kind.into(), name: name.into(), causes }
    }

    pub fn code(&self) -> StatusCode {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => StatusCode::NOT_FOUND,
            ApiError::AlreadyExists { .. } | ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnsupportedMediaType { .. } => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ApiError::Expired { .. } => StatusCode::GONE,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Timeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn reason(&self) -> &'static str {
        match self {
            ApiError::NotFound { .. } | ApiError::NoRoute => "NotFound",
            ApiError::AlreadyExists { .. } => "AlreadyExists",
            ApiError::Conflict { .. } => "Conflict",
            ApiError::Invalid { .. } => "Invalid",
            ApiError::BadRequest(_) => "BadRequest",
            ApiError::MethodNotAllowed => "MethodNotAllowed",
            ApiError::TooLarge { .. } => "RequestEntityTooLarge",
            ApiError::UnsupportedMediaType { .. } => "UnsupportedMediaType",
            ApiError::Expired { .. } => "Expired",
            ApiError::Forbidden(_) => "Forbidden",
            ApiError::Unavailable(_) => "ServiceUnavailable",
            ApiError::Timeout(_) => "Timeout",
            ApiError::Internal(_) => "InternalError",
        }
    }

    /// The `Status` object kubectl prints as `Error from server (Reason): message`.
    pub fn status(&self) -> Value {
        let mut details = serde_json::Map::new();
        match self {
            ApiError::NotFound { kind, name } | ApiError::AlreadyExists { kind, name } => {
                details.insert("name".into(), name.clone().into());
                details.insert("kind".into(), kind.clone().into());
            }
            ApiError::Conflict { kind, name, causes, .. } => {
                details.insert("name".into(), name.clone().into());
                details.insert("kind".into(), kind.clone().into());
                if !causes.is_empty() {
                    details.insert("causes".into(), causes_json(causes));
                }
            }
            ApiError::Invalid { group, kind, name, causes } => {
                details.insert("name".into(), name.clone().into());
                details.insert("group".into(), group.clone().into());
                details.insert("kind".into(), kind.clone().into());
                details.insert("causes".into(), causes_json(causes));
            }
            _ => {}
        }
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.to_string(),
            "reason": self.reason(),
            "code": self.code().as_u16(),
        });
        if !details.is_empty() {
            status["details"] = Value::Object(details);
        }
        status
    }

    /// Maps a store failure on `kind`/`name` to the API error users expect.
    pub fn from_store(e: StoreError, kind: &str, name: &str) -> Self {
        match e {
            StoreError::NotFound { .. } => ApiError::not_found(kind, name),
            StoreError::AlreadyExists { .. } => ApiError::AlreadyExists { kind: kind.into(), name: name.into() },
            StoreError::Conflict { .. } => ApiError::Conflict {
                kind: kind.into(),
                name: name.into(),
                message: format!(
                    "Operation cannot be fulfilled on {kind} \"{name}\": the object has been modified; please apply your changes to the latest version and try again"
                ),
                causes: Vec::new(),
            },
            StoreError::Expired { requested, oldest } => ApiError::Expired { requested, oldest },
            StoreError::Invalid(m) => ApiError::BadRequest(m),
            StoreError::Unavailable(m) => ApiError::Unavailable(m),
            StoreError::Timeout(m) => ApiError::Timeout(m),
            StoreError::Internal(m) => ApiError::Internal(m),
            StoreError::Fenced { reason, .. } => ApiError::Conflict {
                kind: kind.into(),
                name: name.into(),
                message: format!("Operation cannot be fulfilled on {kind} \"{name}\": the writer is no longer the leader: {reason}"),
                causes: Vec::new(),
            },
        }
    }
}

fn causes_json(causes: &[Cause]) -> Value {
    Value::Array(causes.iter().map(|c| json!({"reason": c.reason, "message": c.message, "field": c.field})).collect())
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = self.status().to_string();
        (self.code(), [("content-type", "application/json")], body).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_like_upstream() {
        let s = ApiError::not_found("pods", "nope").status();
        assert_eq!(s["message"], "pods \"nope\" not found");
        assert_eq!(s["code"], 404);
        assert_eq!(s["reason"], "NotFound");
        assert_eq!(s["details"]["name"], "nope");
        let cause = Cause {
            reason: "FieldValueRequired".into(),
            message: "Required value".into(),
            field: "spec.containers".into(),
        };
        let s = ApiError::invalid("", "Pod", "web", vec![cause]).status();
        assert_eq!(s["message"], "Pod \"web\" is invalid: spec.containers: Required value");
        assert_eq!(s["code"], 422);
        assert_eq!(
            ApiError::from_store(StoreError::Timeout("t".into()), "pods", "x").code(),
            StatusCode::GATEWAY_TIMEOUT
        );
    }
}
