//! Access-token lookup for the HTTP API, as Synapse's internal auth does it:
//! `access_tokens.token` -> the user (the puppeted user when set) joined with
//! `users`; an expired token, a locked account and a guest are told apart so
//! the API can answer with Synapse's errors. Deactivation is not checked
//! (Synapse deletes a deactivated user's tokens instead).

use sqlx::Row;
use updraft_engine::Db;

/// Who a token belongs to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenOwner {
    /// No such token, or its user is not in `users`.
    Unknown,
    /// `valid_until_ms` is in the past (Synapse: M_UNKNOWN_TOKEN, soft logout).
    Expired,
    /// The account is locked (Synapse: M_USER_LOCKED).
    Locked {
        user_id: String,
    },
    /// A guest account.
    Guest {
        user_id: String,
    },
    User {
        user_id: String,
        admin: bool,
    },
}

/// Looks a token up; `now_ms` is the current time (injected for tests).
pub async fn token_owner(db: &Db, token: &str, now_ms: i64) -> Result<TokenOwner, sqlx::Error> {
    let sql = "SELECT u.name, u.admin, u.is_guest, u.locked, t.valid_until_ms
               FROM access_tokens t JOIN users u ON u.name = COALESCE(t.puppets_user_id, t.user_id)
               WHERE t.token = $1";
    let row = match db {
        Db::Sqlite(pool) => sqlx::query(sql)
            .bind(token)
            .fetch_optional(pool)
            .await?
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<i64, _>(1) != 0,
                    r.get::<i64, _>(2) != 0,
                    r.get::<Option<bool>, _>(3).unwrap_or(false),
                    r.get::<Option<i64>, _>(4),
                )
            }),
        Db::Postgres(pool) => sqlx::query(sql)
            .bind(token)
            .fetch_optional(pool)
            .await?
            .map(|r| {
                (
                    r.get::<String, _>(0),
                    r.get::<i16, _>(1) != 0,
                    r.get::<i16, _>(2) != 0,
                    r.get::<Option<bool>, _>(3).unwrap_or(false),
                    r.get::<Option<i64>, _>(4),
                )
            }),
    };
    let Some((user_id, admin, guest, locked, valid_until)) = row else {
        return Ok(TokenOwner::Unknown);
    };
    Ok(if valid_until.is_some_and(|v| v < now_ms) {
        TokenOwner::Expired
    } else if locked {
        TokenOwner::Locked { user_id }
    } else if guest {
        TokenOwner::Guest { user_id }
    } else {
        TokenOwner::User { user_id, admin }
    })
}
