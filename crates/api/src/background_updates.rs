//! Synapse's three background-update admin endpoints (SEMANTICS §5) and
//! updraft's queue view and cancel under `/_updraft/admin/v1/`.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use serde_json::{json, Value};
use updraft_engine::{EngineError, MAIN_DATABASE};
use updraft_homeserver::jobs::job_rows;

use crate::auth::Admin;
use crate::error::ApiError;
use crate::response::{JsonBody, JsonObject};
use crate::state::AppState;

pub async fn status(State(state): State<AppState>, _admin: Admin) -> Result<JsonBody, ApiError> {
    // The engine's `Status` serialises in Synapse's shape and key order.
    let body = serde_json::to_value(state.updater.status()).map_err(ApiError::internal)?;
    Ok(JsonBody::ok(body))
}

pub async fn get_enabled(State(state): State<AppState>, _admin: Admin) -> JsonBody {
    JsonBody::ok(json!({"enabled": state.updater.enabled()}))
}

pub async fn set_enabled(
    State(state): State<AppState>,
    _admin: Admin,
    JsonObject(body): JsonObject,
) -> Result<JsonBody, ApiError> {
    let enabled = match body.get("enabled") {
        None => true,
        Some(Value::Bool(b)) => *b,
        Some(_) => {
            return Err(ApiError::BadRequest(
                "'enabled' parameter must be a boolean".to_owned(),
            ))
        }
    };
    state
        .updater
        .set_enabled(enabled)
        .await
        .map_err(ApiError::internal)?;
    Ok(JsonBody::ok(json!({"enabled": enabled})))
}

pub async fn start_job(
    State(state): State<AppState>,
    _admin: Admin,
    JsonObject(body): JsonObject,
) -> Result<JsonBody, ApiError> {
    let Some(job_name) = body.get("job_name") else {
        return Err(ApiError::MissingParams(vec!["job_name"]));
    };
    // Synapse compares with `==`, so a non-string name is simply not a known job.
    let name = job_name.as_str().unwrap_or("");
    let rows = job_rows(name).ok_or_else(|| ApiError::BadRequest("Invalid job_name".to_owned()))?;
    match state.updater.start_job_rows(MAIN_DATABASE, &rows).await {
        Ok(()) => Ok(JsonBody::ok(json!({}))),
        Err(EngineError::AlreadyQueued(_)) => Err(ApiError::BadRequest(format!(
            "Job {name} is already in queue of background updates."
        ))),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// `GET /_updraft/admin/v1/background_updates/queue`: every database's runner and queue.
pub async fn queue(State(state): State<AppState>, _admin: Admin) -> Result<JsonBody, ApiError> {
    let details = state.updater.details().await.map_err(ApiError::internal)?;
    let value = serde_json::to_value(&details).map_err(ApiError::internal)?;
    Ok(JsonBody::ok(json!({"databases": value})))
}

/// `DELETE /_updraft/admin/v1/background_updates/queue/{database}/{update_name}`.
pub async fn cancel(
    State(state): State<AppState>,
    _admin: Admin,
    path: Result<Path<(String, String)>, PathRejection>,
) -> Result<JsonBody, ApiError> {
    let Path((database, name)) =
        path.map_err(|_| ApiError::NotFound("No such background update".to_owned()))?;
    if database.contains('\0') || name.contains('\0') {
        return Err(ApiError::NotFound("No such background update".to_owned()));
    }
    match state.updater.cancel(&database, &name).await {
        Ok(removed) => Ok(JsonBody::ok(json!({"removed": removed}))),
        Err(e @ (EngineError::NotQueued(_) | EngineError::UnknownDatabase(_))) => {
            Err(ApiError::NotFound(e.to_string()))
        }
        Err(e) => Err(ApiError::internal(e)),
    }
}
