//! `POST /_matrix/client/v3/user_directory/search` for any valid user token.

use axum::extract::State;
use serde_json::{Map, Value};

use crate::auth::User;
use crate::response::{JsonBody, JsonObject};
use crate::state::AppState;

use crate::error::ApiError;

/// A validated search request.
#[derive(Debug, PartialEq)]
pub struct SearchRequest {
    pub search_term: String,
    /// Clamped to 0..=50 as Synapse does.
    pub limit: u64,
}

impl SearchRequest {
    /// Synapse reads `limit` with Python's `int()` (so `5`, `5.7`, `"5"` and
    /// `true` are accepted) and clamps it to 0..=50; where `int()` would raise
    /// (and Synapse answer 500) updraft answers 400 M_INVALID_PARAM.
    pub fn parse(body: &Map<String, Value>) -> Result<SearchRequest, ApiError> {
        let limit = match body.get("limit") {
            None => 10,
            Some(v) => python_int(v)
                .ok_or_else(|| ApiError::InvalidParam("'limit' must be an integer".to_owned()))?,
        };
        let limit = limit.clamp(0, 50) as u64;
        let search_term = match body.get("search_term") {
            None => {
                return Err(ApiError::BadRequest(
                    "`search_term` is required field".to_owned(),
                ))
            }
            Some(Value::String(s)) => s.clone(),
            Some(_) => {
                return Err(ApiError::InvalidParam(
                    "'search_term' must be a string".to_owned(),
                ))
            }
        };
        Ok(SearchRequest { search_term, limit })
    }
}

/// Python's `int(v)` for JSON values, `None` where it raises.
fn python_int(v: &Value) -> Option<i64> {
    match v {
        Value::Bool(b) => Some(*b as i64),
        Value::Number(n) => n.as_i64().or_else(|| {
            n.as_f64()
                .filter(|f| f.is_finite())
                .map(|f| f.trunc() as i64)
        }),
        Value::String(s) => s.trim().replace('_', "").parse().ok(),
        _ => None,
    }
}

pub async fn search(
    State(state): State<AppState>,
    user: User,
    JsonObject(body): JsonObject,
) -> Result<JsonBody, ApiError> {
    if !state.config.user_directory.enabled {
        return Ok(JsonBody::ok(
            serde_json::json!({"limited": false, "results": []}),
        ));
    }
    let request = SearchRequest::parse(&body)?;
    let response = updraft_homeserver::search::search_users(
        &state.db,
        &state.config,
        &user.user_id,
        &request.search_term,
        request.limit,
    )
    .await
    .map_err(ApiError::internal)?;
    Ok(JsonBody::ok(
        serde_json::to_value(&response).map_err(ApiError::internal)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn parse(v: Value) -> Result<SearchRequest, ApiError> {
        SearchRequest::parse(v.as_object().unwrap())
    }

    #[test]
    fn limit_and_term_follow_synapse() {
        assert_eq!(parse(json!({"search_term": "al"})).unwrap().limit, 10);
        assert_eq!(
            parse(json!({"search_term": "al", "limit": 3}))
                .unwrap()
                .limit,
            3
        );
        assert_eq!(
            parse(json!({"search_term": "al", "limit": 500}))
                .unwrap()
                .limit,
            50
        );
        assert_eq!(
            parse(json!({"search_term": "al", "limit": -4}))
                .unwrap()
                .limit,
            0
        );
        assert_eq!(
            parse(json!({"search_term": "al", "limit": 7.9}))
                .unwrap()
                .limit,
            7
        );
        assert_eq!(
            parse(json!({"search_term": "al", "limit": "12"}))
                .unwrap()
                .limit,
            12
        );
        let e = parse(json!({"search_term": "al", "limit": "ten"})).unwrap_err();
        assert_eq!(
            (e.errcode(), e.to_string().as_str()),
            ("M_INVALID_PARAM", "'limit' must be an integer")
        );
        let e = parse(json!({"limit": 3})).unwrap_err();
        assert_eq!((e.status().as_u16(), e.errcode()), (400, "M_UNKNOWN"));
        assert_eq!(e.to_string(), "`search_term` is required field");
        let e = parse(json!({"search_term": 5})).unwrap_err();
        assert_eq!(e.errcode(), "M_INVALID_PARAM");
    }
}
