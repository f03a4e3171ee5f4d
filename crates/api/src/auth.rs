//! Who is asking: the access token from `Authorization: Bearer` or
//! `?access_token=`, looked up as Synapse's internal auth does.

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use updraft_engine::Db;

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

/// What `access_tokens` + `users` say about a token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenOwner {
    pub user_id: String,
    pub admin: bool,
    pub guest: bool,
    pub locked: bool,
    pub valid_until_ms: Option<i64>,
}

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

/// Looks a token up; `None` if unknown (or its user is not in `users`).
pub async fn lookup(db: &Db, token: &str) -> Result<Option<TokenOwner>, sqlx::Error> {
    use sqlx::Row;
    // Synapse joins access_tokens to users, so a token of an absent user is unknown.
    const SQL_PG: &str = "SELECT u.name, u.admin::int8 AS admin, u.is_guest::int8 AS guest, \
         u.locked, t.valid_until_ms FROM access_tokens t JOIN users u ON u.name = t.user_id \
         WHERE t.token = $1";
    const SQL_SQLITE: &str = "SELECT u.name, u.admin AS admin, u.is_guest AS guest, \
         COALESCE(u.locked, 0) != 0 AS locked, t.valid_until_ms \
         FROM access_tokens t JOIN users u ON u.name = t.user_id WHERE t.token = ?";
    let row = match db {
        Db::Postgres(pool) => sqlx::query(SQL_PG)
            .bind(token)
            .fetch_optional(pool)
            .await?
            .map(|r| TokenOwner {
                user_id: r.get(0),
                admin: r.get::<i64, _>(1) != 0,
                guest: r.get::<i64, _>(2) != 0,
                locked: r.get(3),
                valid_until_ms: r.get(4),
            }),
        Db::Sqlite(pool) => sqlx::query(SQL_SQLITE)
            .bind(token)
            .fetch_optional(pool)
            .await?
            .map(|r| TokenOwner {
                user_id: r.get(0),
                admin: r.get::<i64, _>(1) != 0,
                guest: r.get::<i64, _>(2) != 0,
                locked: r.get(3),
                valid_until_ms: r.get(4),
            }),
    };
    Ok(row)
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
    let owner = lookup(&state.db, &token)
        .await?
        .ok_or(ApiError::UnknownToken)?;
    if owner.valid_until_ms.is_some_and(|until| until < now_ms()) {
        return Err(ApiError::ExpiredToken);
    }
    if owner.locked {
        return Err(ApiError::UserLocked);
    }
    if owner.guest {
        return Err(ApiError::GuestForbidden);
    }
    Ok(User {
        user_id: owner.user_id,
        admin: owner.admin,
    })
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
