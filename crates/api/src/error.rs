//! The Matrix error type: every failure the server answers with, as one enum
//! whose variants fix the status code, the errcode and Synapse's wording.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{json, Value};

use crate::json::Style;
use crate::response::JsonBody;

/// The request body limit (Synapse's default `max_request_body_size` for the
/// client and admin APIs is larger; 1 MiB is plenty for these endpoints).
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// Everything the server can answer with besides success.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No access token, or an unusable `Authorization` header (Synapse's
    /// `MissingClientTokenError`; the default message is "Missing access token").
    #[error("{0}")]
    MissingToken(&'static str),
    /// The token is not in `access_tokens`.
    #[error("Invalid access token passed.")]
    UnknownToken,
    /// The token exists but `valid_until_ms` is in the past: Synapse soft-logs-out.
    #[error("Access token has expired")]
    ExpiredToken,
    #[error("User account has been locked")]
    UserLocked,
    #[error("Guest access not allowed")]
    GuestForbidden,
    #[error("You are not a server admin")]
    NotAdmin,
    /// The body is not JSON (an empty body included).
    #[error("Content not JSON.")]
    NotJson,
    /// The body is JSON but not an object.
    #[error("Content must be a JSON object.")]
    NotAnObject,
    /// Required keys absent from the body; Synapse prints the Python list.
    #[error("Missing params: [{}]", .0.iter().map(|p| format!("'{p}'")).collect::<Vec<_>>().join(", "))]
    MissingParams(Vec<&'static str>),
    /// A query parameter or body field of the wrong form (M_INVALID_PARAM).
    #[error("{0}")]
    InvalidParam(String),
    /// A required query parameter is absent (M_MISSING_PARAM).
    #[error("{0}")]
    MissingParam(String),
    /// A 400 with Synapse's default errcode M_UNKNOWN.
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    NotFound(String),
    /// No route for this path.
    #[error("Unrecognized request")]
    UnknownPath,
    /// A route exists for the path, but not for this method.
    #[error("Unrecognized request")]
    MethodNotAllowed,
    #[error("Request content is too large (>{MAX_BODY_BYTES})")]
    TooLarge,
    /// The request took longer than the server's timeout.
    #[error("Request timed out")]
    Timeout,
    /// Anything unexpected: logged in full, answered with Synapse's generic 500.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ApiError::*;
        match self {
            MissingToken(_) | UnknownToken | ExpiredToken | UserLocked => StatusCode::UNAUTHORIZED,
            GuestForbidden | NotAdmin => StatusCode::FORBIDDEN,
            NotJson | NotAnObject | MissingParams(_) | InvalidParam(_) | MissingParam(_)
            | BadRequest(_) => StatusCode::BAD_REQUEST,
            NotFound(_) | UnknownPath => StatusCode::NOT_FOUND,
            MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            TooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Timeout => StatusCode::GATEWAY_TIMEOUT,
            Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn errcode(&self) -> &'static str {
        use ApiError::*;
        match self {
            MissingToken(_) => "M_MISSING_TOKEN",
            UnknownToken | ExpiredToken => "M_UNKNOWN_TOKEN",
            UserLocked => "M_USER_LOCKED",
            GuestForbidden => "M_GUEST_ACCESS_FORBIDDEN",
            NotAdmin => "M_FORBIDDEN",
            NotJson => "M_NOT_JSON",
            NotAnObject => "M_BAD_JSON",
            MissingParams(_) | MissingParam(_) => "M_MISSING_PARAM",
            InvalidParam(_) => "M_INVALID_PARAM",
            BadRequest(_) | Timeout | Internal(_) => "M_UNKNOWN",
            NotFound(_) => "M_NOT_FOUND",
            UnknownPath | MethodNotAllowed => "M_UNRECOGNIZED",
            TooLarge => "M_TOO_LARGE",
        }
    }

    /// The body: `{"errcode", "error"}` plus `soft_logout` where Synapse adds it.
    pub fn body(&self) -> Value {
        let message = match self {
            ApiError::Internal(_) => "Internal server error".to_owned(),
            other => other.to_string(),
        };
        let mut body = json!({"errcode": self.errcode(), "error": message});
        let soft_logout = match self {
            ApiError::UnknownToken => Some(false),
            ApiError::ExpiredToken | ApiError::UserLocked => Some(true),
            _ => None,
        };
        if let Some(soft) = soft_logout {
            body["soft_logout"] = Value::Bool(soft);
        }
        body
    }

    /// Wraps any unexpected error; its text is logged, never sent.
    pub fn internal(e: impl std::fmt::Display) -> ApiError {
        ApiError::Internal(e.to_string())
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        ApiError::internal(e)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let ApiError::Internal(detail) = &self {
            tracing::error!(error = %detail, "request failed");
        }
        let mut response =
            JsonBody::with_style(self.status(), self.body(), Style::Canonical).into_response();
        if matches!(self, ApiError::TooLarge) {
            // The body was not read: the connection cannot carry another
            // request, so say so rather than let a client reuse it.
            response.headers_mut().insert(
                axum::http::header::CONNECTION,
                axum::http::HeaderValue::from_static("close"),
            );
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::encode;

    fn wire(e: ApiError) -> (u16, String) {
        (e.status().as_u16(), encode(&e.body(), Style::Canonical))
    }

    #[test]
    fn bodies_are_synapses_bytes() {
        assert_eq!(
            wire(ApiError::MissingToken("Missing access token")),
            (
                401,
                r#"{"errcode":"M_MISSING_TOKEN","error":"Missing access token"}"#.into()
            )
        );
        assert_eq!(
            wire(ApiError::UnknownToken),
            (
                401,
                r#"{"errcode":"M_UNKNOWN_TOKEN","error":"Invalid access token passed.","soft_logout":false}"#
                    .into()
            )
        );
        assert_eq!(
            wire(ApiError::MissingParams(vec!["job_name"])),
            (
                400,
                r#"{"errcode":"M_MISSING_PARAM","error":"Missing params: ['job_name']"}"#.into()
            )
        );
        assert_eq!(
            wire(ApiError::TooLarge),
            (
                413,
                r#"{"errcode":"M_TOO_LARGE","error":"Request content is too large (>1048576)"}"#
                    .into()
            )
        );
    }

    #[test]
    fn internal_errors_are_not_leaked() {
        let (status, body) = wire(ApiError::internal("password=hunter2 in pool"));
        assert_eq!(status, 500);
        assert_eq!(
            body,
            r#"{"errcode":"M_UNKNOWN","error":"Internal server error"}"#
        );
    }
}
