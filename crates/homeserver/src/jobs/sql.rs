//! SQL fragments and parameter forms shared by the jobs, one per engine, side
//! by side.

/// Lists are bound as one JSON array on SQLite (`json_each(?)`) ...
pub fn list_param_sqlite<T: serde::Serialize>(items: &[T]) -> String {
    serde_json::to_string(items).expect("serialisable list")
}

/// ... and as an array on PostgreSQL (`= ANY($n)`, `UNNEST($n)`).
pub fn list_param_pg<T: Clone>(items: &[T]) -> Vec<T> {
    items.to_vec()
}

/// The membership of a current member row: its own column, or when that is
/// NULL the membership of the member event itself (one rule for both jobs).
pub const EFFECTIVE_MEMBERSHIP: &str =
    "COALESCE(c.membership, (SELECT rm.membership FROM room_memberships rm WHERE rm.event_id = c.event_id))";

/// The server name of a user id column `col` (after the first `:`).
pub fn server_of_sqlite(col: &str) -> String {
    format!("substr({col}, instr({col}, ':') + 1)")
}

pub fn server_of_pg(col: &str) -> String {
    format!("substr({col}, strpos({col}, ':') + 1)")
}

/// The local user `u`'s profile row: Synapse matches `profiles.full_user_id`,
/// which SQLite's schema leaves unindexed (a table scan per user); the
/// unique localpart column `profiles.user_id` is checked too, so the lookup
/// is one index probe and at most one row on both engines.
pub fn profile_of_sqlite(p: &str, u: &str) -> String {
    format!("{p}.user_id = substr({u}, 2, instr({u}, ':') - 2) AND {p}.full_user_id = {u}")
}

pub fn profile_of_pg(p: &str, u: &str) -> String {
    format!("{p}.user_id = substr({u}, 2, strpos({u}, ':') - 2) AND {p}.full_user_id = {u}")
}

/// A profile value as Synapse keeps it: NULL unless text without U+0000.
/// (PostgreSQL text cannot hold U+0000 nor another type.)
pub fn clean_text_sqlite(col: &str) -> String {
    format!(
        "CASE WHEN typeof({col}) = 'text' AND instr(CAST({col} AS BLOB), X'00') = 0 THEN {col} END"
    )
}
