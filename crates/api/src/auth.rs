//! Who is asking: the access token from `Authorization: Bearer` or
//! `?access_token=`, looked up as Synapse's internal auth does.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use updraft_homeserver::auth::{token_owner, TokenOwner};

use crate::error::ApiError;
use crate::response::QueryArgs;
use crate::state::AppState;

/// A request made with a valid, non-guest user token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    pub user_id: String,
    pub admin: bool,
}

/// A request made by a server admin.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Admin(pub User);

/// The token of a request, with Synapse's `get_access_token_from_request` errors.
pub fn access_token(parts: &Parts) -> Result<String, ApiError> {
    let query = QueryArgs::parse(parts.uri.query());
    let from_query = query.get("access_token");
    let mut headers = parts.headers.get_all(AUTHORIZATION).iter();
    let Some(header) = headers.next() else {
        return from_query
            .map(str::to_owned)
            .ok_or(ApiError::MissingToken("Missing access token"));
    };
    if from_query.is_some() {
        return Err(ApiError::MissingToken(
            "Mixing Authorization headers and access_token query parameters.",
        ));
    }
    if headers.next().is_some() {
        return Err(ApiError::MissingToken("Too many Authorization headers."));
    }
    let invalid = ApiError::MissingToken("Invalid Authorization header.");
    let value = header.to_str().map_err(|_| invalid)?;
    match value.split(' ').collect::<Vec<_>>().as_slice() {
        ["Bearer", token] => Ok((*token).to_owned()),
        _ => Err(ApiError::MissingToken("Invalid Authorization header.")),
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// Synapse's order of checks: token present, known, not expired, user not
/// locked, not a guest.
pub async fn authenticate(state: &AppState, parts: &Parts) -> Result<User, ApiError> {
    let token = access_token(parts)?;
    // No stored token contains U+0000 (PostgreSQL text cannot hold it).
    if token.contains('\0') {
        return Err(ApiError::UnknownToken);
    }
    match token_owner(&state.db, &token, now_ms()).await? {
        TokenOwner::Unknown => Err(ApiError::UnknownToken),
        TokenOwner::Expired => Err(ApiError::ExpiredToken),
        TokenOwner::Locked { .. } => Err(ApiError::UserLocked),
        TokenOwner::Guest { .. } => Err(ApiError::GuestForbidden),
        TokenOwner::User { user_id, admin } => Ok(User { user_id, admin }),
    }
}

impl FromRequestParts<AppState> for User {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        authenticate(state, parts).await
    }
}

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let user = authenticate(state, parts).await?;
        if !user.admin {
            return Err(ApiError::NotAdmin);
        }
        Ok(Admin(user))
    }
}
