//! The one API error type. Every failure a handler can meet becomes an [`ApiError`], and
//! [`ApiError::status`] + [`ApiError::problem`] map it to an RFC 9457 problem+json answer
//! in one exhaustive `match`. Internal errors never show their text to the caller.

use crate::cloudevent::CloudEventError;
use crate::domain::InvalidValue;
use crate::events::EventError;
use serde::Serialize;

/// Every error a component answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The body is not JSON, or not the JSON shape the route takes (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// A field is missing or invalid (422).
    #[error("invalid field {field}: {reason}")]
    InvalidField { field: String, reason: String },
    /// The request is not a usable CloudEvent (400: poison, never retried by the broker).
    #[error("invalid CloudEvent: {0}")]
    InvalidEvent(String),
    /// Unsupported `Content-Type` (415).
    #[error("unsupported content type {0:?}")]
    UnsupportedMediaType(String),
    /// The body is over the cap (413).
    #[error("request body over {limit} bytes")]
    PayloadTooLarge { limit: usize },
    /// Missing or refused credentials: no bearer token, a token that fails verification,
    /// or a wrong service key (401 + `WWW-Authenticate: Bearer`).
    #[error("{0}")]
    Unauthorized(String),
    /// A verified caller whose role may not do this (403). Someone else's resource is a
    /// [`ApiError::NotFound`] instead, so its existence is not confirmed.
    #[error("{0}")]
    Forbidden(String),
    /// Nothing at this path, or no such resource (404).
    #[error("not found: {0}")]
    NotFound(String),
    /// The path exists, the method does not (405), with the allowed methods.
    #[error("method not allowed")]
    MethodNotAllowed { allow: &'static str },
    /// A business rule refuses the request in the resource's current state (409).
    #[error("conflict: {0}")]
    Conflict(String),
    /// Another request with the same `Idempotency-Key` is still running (409 +
    /// Retry-After); this one stored nothing.
    #[error("{detail}")]
    InProgress {
        detail: String,
        retry_after_secs: u32,
    },
    /// The caller is sending too often (429 + Retry-After); nothing changed.
    #[error("{detail}")]
    TooManyRequests {
        detail: String,
        retry_after_secs: u32,
    },
    /// The payment was refused (402).
    #[error("payment rejected: {0}")]
    PaymentRejected(String),
    /// A dependency is unavailable; try again later (503 + Retry-After).
    #[error("unavailable: {detail}")]
    Unavailable {
        detail: String,
        retry_after_secs: u32,
    },
    /// A bug or an infrastructure failure (500). The text is logged, never sent.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

/// The RFC 9457 body.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Problem {
    #[serde(rename = "type")]
    pub problem_type: String,
    pub title: &'static str,
    pub status: u16,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub correlation_id: Option<String>,
}

impl ApiError {
    /// A 422 about one field.
    pub fn invalid(field: impl Into<String>, reason: impl Into<String>) -> Self {
        ApiError::InvalidField {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// The HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            ApiError::Malformed(_) | ApiError::InvalidEvent(_) => 400,
            ApiError::Unauthorized(_) => 401,
            ApiError::Forbidden(_) => 403,
            ApiError::PaymentRejected(_) => 402,
            ApiError::NotFound(_) => 404,
            ApiError::MethodNotAllowed { .. } => 405,
            ApiError::Conflict(_) | ApiError::InProgress { .. } => 409,
            ApiError::PayloadTooLarge { .. } => 413,
            ApiError::UnsupportedMediaType(_) => 415,
            ApiError::InvalidField { .. } => 422,
            ApiError::TooManyRequests { .. } => 429,
            ApiError::Internal(_) => 500,
            ApiError::Unavailable { .. } => 503,
        }
    }

    /// The problem+json body. `Internal` errors say only that something went wrong.
    pub fn problem(&self, correlation_id: Option<&str>) -> Problem {
        let (slug, title, field) = match self {
            ApiError::Malformed(_) => ("malformed-request", "Malformed request", None),
            ApiError::InvalidField { field, .. } => {
                ("invalid-field", "Invalid field", Some(field.clone()))
            }
            ApiError::InvalidEvent(_) => ("invalid-cloudevent", "Invalid CloudEvent", None),
            ApiError::UnsupportedMediaType(_) => {
                ("unsupported-media-type", "Unsupported media type", None)
            }
            ApiError::PayloadTooLarge { .. } => ("payload-too-large", "Payload too large", None),
            ApiError::Unauthorized(_) => ("unauthorized", "Unauthorized", None),
            ApiError::Forbidden(_) => ("forbidden", "Forbidden", None),
            ApiError::NotFound(_) => ("not-found", "Not found", None),
            ApiError::MethodNotAllowed { .. } => ("method-not-allowed", "Method not allowed", None),
            ApiError::Conflict(_) => ("conflict", "Conflict", None),
            ApiError::InProgress { .. } => (
                "idempotency-key-in-progress",
                "Request in progress",
                Some("Idempotency-Key".to_owned()),
            ),
            ApiError::TooManyRequests { .. } => ("too-many-requests", "Too many requests", None),
            ApiError::PaymentRejected(_) => ("payment-rejected", "Payment rejected", None),
            ApiError::Unavailable { .. } => ("service-unavailable", "Service unavailable", None),
            ApiError::Internal(_) => ("internal", "Internal error", None),
        };
        let detail = match self {
            ApiError::Internal(_) => {
                "the request could not be completed; it is safe to retry".to_owned()
            }
            ApiError::InvalidField { field, reason } => format!("{field}: {reason}"),
            ApiError::MethodNotAllowed { allow } => format!("allowed methods: {allow}"),
            other => other.to_string(),
        };
        Problem {
            problem_type: format!("https://htaxi.dev/problems/{slug}"),
            title,
            status: self.status(),
            detail,
            field,
            correlation_id: correlation_id.map(str::to_owned),
        }
    }

    /// Extra headers this error needs (`Retry-After`, `Allow`).
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        match self {
            ApiError::Unavailable {
                retry_after_secs, ..
            }
            | ApiError::InProgress {
                retry_after_secs, ..
            }
            | ApiError::TooManyRequests {
                retry_after_secs, ..
            } => vec![("retry-after", retry_after_secs.to_string())],
            ApiError::MethodNotAllowed { allow } => vec![("allow", (*allow).to_owned())],
            ApiError::Unauthorized(_) => {
                vec![("www-authenticate", r#"Bearer realm="htaxi""#.to_owned())]
            }
            _ => Vec::new(),
        }
    }
}

impl From<InvalidValue> for ApiError {
    fn from(e: InvalidValue) -> Self {
        ApiError::invalid(e.field, e.reason)
    }
}

impl From<CloudEventError> for ApiError {
    fn from(e: CloudEventError) -> Self {
        ApiError::InvalidEvent(e.to_string())
    }
}

impl From<EventError> for ApiError {
    fn from(e: EventError) -> Self {
        ApiError::InvalidEvent(e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_do_not_leak_their_text() {
        let e = ApiError::Internal(anyhow::anyhow!("disk /var/lib/secret exploded"));
        let p = e.problem(Some("c1"));
        assert_eq!(p.status, 500);
        assert!(!p.detail.contains("secret"));
        assert_eq!(p.correlation_id.as_deref(), Some("c1"));
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let e = ApiError::Unavailable {
            detail: "pay is down".into(),
            retry_after_secs: 7,
        };
        assert_eq!(e.status(), 503);
        assert_eq!(e.headers(), vec![("retry-after", "7".to_owned())]);
    }

    #[test]
    fn a_request_in_progress_is_a_409_with_retry_after() {
        let e = ApiError::InProgress {
            detail: "a request with this Idempotency-Key is in progress".into(),
            retry_after_secs: 3,
        };
        assert_eq!(e.status(), 409);
        assert_eq!(e.headers(), vec![("retry-after", "3".to_owned())]);
        assert!(e.problem(None).detail.contains("in progress"));
    }

    #[test]
    fn an_unauthenticated_caller_is_told_to_bring_a_bearer_token() {
        let e = ApiError::Unauthorized("a bearer token is required".into());
        assert_eq!(e.status(), 401);
        assert_eq!(
            e.headers(),
            vec![("www-authenticate", r#"Bearer realm="htaxi""#.to_owned())]
        );
        assert_eq!(ApiError::Forbidden("no".into()).status(), 403);
    }

    #[test]
    fn invalid_values_become_422_naming_the_field() {
        let e: ApiError = InvalidValue::new("lat", "must be between -90 and 90").into();
        assert_eq!(e.status(), 422);
        assert_eq!(e.problem(None).field.as_deref(), Some("lat"));
    }
}
