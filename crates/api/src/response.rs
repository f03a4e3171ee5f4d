//! Reading request bodies and query strings the way Synapse does, and writing
//! JSON responses in Synapse's bytes.

use axum::body::Bytes;
use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use crate::error::ApiError;
use crate::json::{encode, Style};

/// A JSON response encoded as Synapse would (see [`crate::json`]).
#[derive(Debug)]
pub struct JsonBody {
    status: StatusCode,
    value: Value,
    style: Style,
}

impl JsonBody {
    /// A successful response (Synapse's compact encoder).
    pub fn ok(value: Value) -> JsonBody {
        JsonBody::with_style(StatusCode::OK, value, Style::Compact)
    }

    pub fn with_style(status: StatusCode, value: Value, style: Style) -> JsonBody {
        JsonBody {
            status,
            value,
            style,
        }
    }
}

impl IntoResponse for JsonBody {
    fn into_response(self) -> Response {
        let mut response = (self.status, encode(&self.value, self.style)).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        response
    }
}

/// A request body that must be a JSON object: Synapse's
/// `parse_json_object_from_request` (empty body and invalid UTF-8 are "not
/// JSON"; NaN and Infinity are refused; too large is 413).
#[derive(Debug)]
pub struct JsonObject(pub Map<String, Value>);

impl<S: Send + Sync> FromRequest<S> for JsonObject {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // The router's `DefaultBodyLimit` caps what `Bytes` will buffer.
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge
            } else {
                ApiError::BadRequest("Error reading JSON content.".to_owned())
            }
        })?;
        parse_object(&bytes).map(JsonObject)
    }
}

/// Parses a body as a JSON object with Synapse's errors.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let text = std::str::from_utf8(bytes).map_err(|_| ApiError::NotJson)?;
    // serde_json already refuses NaN/Infinity, as Synapse's decoder does.
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::NotAnObject),
        Err(_) => Err(ApiError::NotJson),
    }
}

/// Query-string arguments; like Synapse, the first value of a repeated name wins.
#[derive(Debug, Default)]
pub struct QueryArgs(Vec<(String, String)>);

impl QueryArgs {
    pub fn parse(query: Option<&str>) -> QueryArgs {
        QueryArgs(
            url::form_urlencoded::parse(query.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// Synapse's `parse_integer`: absent -> default; not an integer or negative -> 400.
    pub fn integer(&self, name: &str, default: i64) -> Result<i64, ApiError> {
        let Some(raw) = self.get(name) else {
            return Ok(default);
        };
        let n: i64 = raw.trim().parse().map_err(|_| {
            ApiError::InvalidParam(format!("Query parameter {name} must be an integer"))
        })?;
        if n < 0 {
            return Err(ApiError::InvalidParam(format!(
                "Query parameter {name} must be a positive integer."
            )));
        }
        Ok(n)
    }

    /// Synapse's `parse_boolean`: only `true` and `false`.
    pub fn boolean(&self, name: &str) -> Result<Option<bool>, ApiError> {
        match self.get(name) {
            None => Ok(None),
            Some("true") => Ok(Some(true)),
            Some("false") => Ok(Some(false)),
            Some(_) => Err(ApiError::InvalidParam(format!(
                "Boolean query parameter '{name}' must be one of ['true', 'false']"
            ))),
        }
    }

    /// Synapse's `parse_string` with `allowed_values`.
    pub fn one_of<'a>(
        &'a self,
        name: &str,
        allowed: &[&str],
        default: &'a str,
    ) -> Result<&'a str, ApiError> {
        match self.get(name) {
            None => Ok(default),
            Some(v) if allowed.contains(&v) => Ok(v),
            Some(_) => Err(ApiError::InvalidParam(format!(
                "Query parameter '{name}' must be one of [{}]",
                allowed
                    .iter()
                    .map(|v| format!("'{v}'"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_errors_follow_synapse() {
        assert!(matches!(parse_object(b""), Err(ApiError::NotJson)));
        assert!(matches!(parse_object(b"{"), Err(ApiError::NotJson)));
        assert!(matches!(parse_object(b"\xff{}"), Err(ApiError::NotJson)));
        assert!(matches!(
            parse_object(b"{\"a\": NaN}"),
            Err(ApiError::NotJson)
        ));
        assert!(matches!(parse_object(b"[]"), Err(ApiError::NotAnObject)));
        assert!(matches!(parse_object(b"null"), Err(ApiError::NotAnObject)));
        assert!(matches!(parse_object(b"\"x\""), Err(ApiError::NotAnObject)));
        let map = parse_object(b" {\"enabled\": false} ").unwrap();
        assert_eq!(map.get("enabled"), Some(&Value::Bool(false)));
    }

    #[test]
    fn query_args_follow_synapse() {
        let q = QueryArgs::parse(Some("from=5&limit=x&dir=b&dir=f&neg=-1&flag=yes&t=%C3%A9"));
        assert_eq!(q.integer("from", 0).unwrap(), 5);
        assert_eq!(q.integer("absent", 100).unwrap(), 100);
        assert_eq!(
            q.integer("limit", 0).unwrap_err().to_string(),
            "Query parameter limit must be an integer"
        );
        assert_eq!(
            q.integer("neg", 0).unwrap_err().to_string(),
            "Query parameter neg must be a positive integer."
        );
        assert_eq!(q.one_of("dir", &["f", "b"], "f").unwrap(), "b");
        assert_eq!(
            q.boolean("flag").unwrap_err().to_string(),
            "Boolean query parameter 'flag' must be one of ['true', 'false']"
        );
        assert_eq!(q.get("t"), Some("é"));
    }
}
