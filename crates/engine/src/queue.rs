//! The queue: rows of `background_updates` (SEMANTICS §1). A row exists
//! while its update is pending; ending an update deletes it.

use std::collections::{BTreeSet, HashMap};

use serde::Serialize;
use serde_json::Value;
use sqlx::QueryBuilder;

use crate::db::{Db, DbTx};
use crate::error::EngineError;

/// One row of `background_updates`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct UpdateRow {
    pub update_name: String,
    pub progress_json: String,
    /// `None` (NULL) or `""` mean no dependency.
    pub depends_on: Option<String>,
    pub ordering: i32,
}

impl UpdateRow {
    /// A row as Synapse's admin API inserts it: progress `{}`, ordering 0 and
    /// `depends_on` stored as given (the empty string for "none", not NULL).
    pub fn new(update_name: impl Into<String>, depends_on: impl Into<String>) -> UpdateRow {
        UpdateRow {
            update_name: update_name.into(),
            progress_json: "{}".to_owned(),
            depends_on: Some(depends_on.into()),
            ordering: 0,
        }
    }

    /// The dependency, if there is one.
    pub fn dependency(&self) -> Option<&str> {
        self.depends_on.as_deref().filter(|d| !d.is_empty())
    }
}

/// Synapse's DDL for the queue table, for databases without our migrations
/// (engine tests, benchmarks). Real databases get it from their migrations.
pub async fn create_table_if_missing(db: &Db) -> Result<(), EngineError> {
    let sql = match db {
        Db::Sqlite(_) => {
            "CREATE TABLE IF NOT EXISTS background_updates (
                update_name text NOT NULL,
                progress_json text NOT NULL,
                depends_on text, ordering INT NOT NULL DEFAULT 0,
                CONSTRAINT background_updates_uniqueness UNIQUE (update_name)
            )"
        }
        Db::Postgres(_) => {
            "CREATE TABLE IF NOT EXISTS background_updates (
                update_name text NOT NULL,
                progress_json text NOT NULL,
                depends_on text,
                ordering integer DEFAULT 0 NOT NULL,
                CONSTRAINT background_updates_uniqueness UNIQUE (update_name)
            )"
        }
    };
    db.execute(sql).await?;
    Ok(())
}

const LIST_SQL: &str = "SELECT update_name, progress_json, depends_on, ordering \
                        FROM background_updates ORDER BY ordering, update_name";

type RawRow = (String, String, Option<String>, i32);

fn from_raw((update_name, progress_json, depends_on, ordering): RawRow) -> UpdateRow {
    UpdateRow {
        update_name,
        progress_json,
        depends_on,
        ordering,
    }
}

/// Every pending update, ordered by `(ordering, update_name)`.
pub async fn list(db: &Db) -> Result<Vec<UpdateRow>, EngineError> {
    let rows: Vec<RawRow> = match db {
        Db::Sqlite(pool) => sqlx::query_as(LIST_SQL).fetch_all(pool).await?,
        Db::Postgres(pool) => sqlx::query_as(LIST_SQL).fetch_all(pool).await?,
    };
    Ok(rows.into_iter().map(from_raw).collect())
}

/// [`list`] inside a transaction.
pub async fn list_in(tx: &mut DbTx) -> Result<Vec<UpdateRow>, EngineError> {
    let rows: Vec<RawRow> = match tx {
        DbTx::Sqlite(tx) => sqlx::query_as(LIST_SQL).fetch_all(&mut **tx).await?,
        DbTx::Postgres(tx) => sqlx::query_as(LIST_SQL).fetch_all(&mut **tx).await?,
    };
    Ok(rows.into_iter().map(from_raw).collect())
}

/// The update to run next: the first row (in the given order) without a
/// dependency or whose dependency is not itself pending. `Ok(None)` when the
/// queue is empty; a dependency cycle is an error naming its members.
pub fn pick_next(rows: &[UpdateRow]) -> Result<Option<&UpdateRow>, EngineError> {
    pick_next_of(rows, |_| true)
}

/// [`pick_next`] among the rows `eligible` accepts (e.g. `updraft run
/// --only`); the others stay pending, so what depends on them waits.
/// `Ok(None)` when no eligible row is left. If every eligible row waits, the
/// error says for what: a cycle, or an update that is not eligible.
pub fn pick_next_of(
    rows: &[UpdateRow],
    eligible: impl Fn(&UpdateRow) -> bool,
) -> Result<Option<&UpdateRow>, EngineError> {
    let pending: HashMap<&str, &UpdateRow> =
        rows.iter().map(|r| (r.update_name.as_str(), r)).collect();
    let mut candidates = rows.iter().filter(|r| eligible(r)).peekable();
    let Some(first) = candidates.peek().copied() else {
        return Ok(None);
    };
    if let Some(row) = candidates.find(|r| match r.dependency() {
        None => true,
        Some(dep) => !pending.contains_key(dep),
    }) {
        return Ok(Some(row));
    }
    // Every eligible row waits for a pending one. Follow the dependencies
    // from the first: we reach an ineligible row, or we loop (the cycle).
    let mut path: Vec<&str> = Vec::new();
    let mut at = first;
    while !path.contains(&at.update_name.as_str()) {
        if !eligible(at) {
            return Err(EngineError::WaitsForExcluded {
                update: path.last().copied().unwrap_or_default().to_owned(),
                waits_for: at.update_name.clone(),
            });
        }
        path.push(&at.update_name);
        at = pending[at
            .dependency()
            .expect("every eligible row has a pending dependency")];
    }
    let start = path.iter().position(|n| *n == at.update_name).unwrap_or(0);
    let mut cycle: Vec<String> = path[start..].iter().map(|s| s.to_string()).collect();
    cycle.push(at.update_name.clone());
    Err(EngineError::DependencyCycle(cycle))
}

/// The order in which a runner would take these rows (rows in [`list`]
/// order), each picked as [`pick_next`] picks; rows a cycle holds come last,
/// in list order. For telling the user what will run, and what ran, in order.
pub fn run_order(rows: &[UpdateRow]) -> Vec<String> {
    let mut left: Vec<UpdateRow> = rows.to_vec();
    let mut order = Vec::with_capacity(rows.len());
    while let Ok(Some(next)) = pick_next(&left) {
        let name = next.update_name.clone();
        left.retain(|r| r.update_name != name);
        order.push(name);
    }
    order.extend(left.into_iter().map(|r| r.update_name));
    order
}

/// Inserts a job's rows in one statement: all of them or, if any is already
/// queued, none (typed [`EngineError::AlreadyQueued`]).
pub async fn insert(db: &Db, rows: &[UpdateRow]) -> Result<(), EngineError> {
    if rows.is_empty() {
        return Ok(());
    }
    for row in rows {
        if let Err(e) = serde_json::from_str::<Value>(&row.progress_json) {
            return Err(EngineError::InvalidRow {
                update: row.update_name.clone(),
                reason: format!("progress_json is not JSON: {e}"),
            });
        }
    }
    let result = match db {
        Db::Sqlite(pool) => {
            let mut q = QueryBuilder::<sqlx::Sqlite>::new(
                "INSERT INTO background_updates (update_name, progress_json, depends_on, ordering) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(&r.update_name)
                    .push_bind(&r.progress_json)
                    .push_bind(&r.depends_on)
                    .push_bind(r.ordering);
            });
            q.build().execute(pool).await.map(|_| ())
        }
        Db::Postgres(pool) => {
            let mut q = QueryBuilder::<sqlx::Postgres>::new(
                "INSERT INTO background_updates (update_name, progress_json, depends_on, ordering) ",
            );
            q.push_values(rows, |mut b, r| {
                b.push_bind(&r.update_name)
                    .push_bind(&r.progress_json)
                    .push_bind(&r.depends_on)
                    .push_bind(r.ordering);
            });
            q.build().execute(pool).await.map(|_| ())
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(EngineError::AlreadyQueued(conflicting_name(db, rows).await))
        }
        Err(e) => Err(e.into()),
    }
}

/// Which of `rows` made the insert fail: one already queued, else a name
/// repeated within `rows` itself.
async fn conflicting_name(db: &Db, rows: &[UpdateRow]) -> String {
    if let Ok(queued) = list(db).await {
        let queued: BTreeSet<&str> = queued.iter().map(|r| r.update_name.as_str()).collect();
        if let Some(r) = rows
            .iter()
            .find(|r| queued.contains(r.update_name.as_str()))
        {
            return r.update_name.clone();
        }
    }
    let mut seen = BTreeSet::new();
    rows.iter()
        .find(|r| !seen.insert(r.update_name.as_str()))
        .unwrap_or(&rows[0])
        .update_name
        .clone()
}

/// Reads an update's progress inside the batch transaction and locks its row
/// (Postgres: `FOR UPDATE`; SQLite's `BEGIN IMMEDIATE` already excludes other
/// writers), so a concurrent cancel waits for the batch. `None` if the row is gone.
pub async fn lock_progress(tx: &mut DbTx, update_name: &str) -> Result<Option<Value>, EngineError> {
    let json: Option<String> = match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query_scalar("SELECT progress_json FROM background_updates WHERE update_name = ?")
                .bind(update_name)
                .fetch_optional(&mut **tx)
                .await?
        }
        DbTx::Postgres(tx) => {
            sqlx::query_scalar(
                "SELECT progress_json FROM background_updates WHERE update_name = $1 FOR UPDATE",
            )
            .bind(update_name)
            .fetch_optional(&mut **tx)
            .await?
        }
    };
    json.map(|j| parse_progress(update_name, &j)).transpose()
}

/// Parses a progress_json value; it must be a JSON object.
pub fn parse_progress(update_name: &str, json: &str) -> Result<Value, EngineError> {
    let bad = |reason: String| EngineError::BadProgress {
        update: update_name.to_owned(),
        reason,
    };
    match serde_json::from_str::<Value>(json) {
        Ok(v @ Value::Object(_)) => Ok(v),
        Ok(other) => Err(bad(format!("found {other}"))),
        Err(e) => Err(bad(e.to_string())),
    }
}

/// Saves an update's progress (compact JSON, as Synapse writes it).
pub async fn save_progress(
    tx: &mut DbTx,
    update_name: &str,
    progress: &Value,
) -> Result<(), EngineError> {
    let json = progress.to_string();
    let n = match tx {
        DbTx::Sqlite(tx) => {
            sqlx::query("UPDATE background_updates SET progress_json = ? WHERE update_name = ?")
                .bind(&json)
                .bind(update_name)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        }
        DbTx::Postgres(tx) => {
            sqlx::query("UPDATE background_updates SET progress_json = $1 WHERE update_name = $2")
                .bind(&json)
                .bind(update_name)
                .execute(&mut **tx)
                .await?
                .rows_affected()
        }
    };
    if n == 0 {
        return Err(EngineError::NotQueued(update_name.to_owned()));
    }
    Ok(())
}

/// Ends an update: deletes its row.
pub async fn end(tx: &mut DbTx, update_name: &str) -> Result<(), EngineError> {
    let n = match tx {
        DbTx::Sqlite(tx) => sqlx::query("DELETE FROM background_updates WHERE update_name = ?")
            .bind(update_name)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
        DbTx::Postgres(tx) => sqlx::query("DELETE FROM background_updates WHERE update_name = $1")
            .bind(update_name)
            .execute(&mut **tx)
            .await?
            .rows_affected(),
    };
    if n == 0 {
        return Err(EngineError::NotQueued(update_name.to_owned()));
    }
    Ok(())
}

/// Removes an update and, transitively, every update that depends on it.
/// Returns the removed names in queue order.
pub async fn cancel(db: &Db, update_name: &str) -> Result<Vec<String>, EngineError> {
    let mut tx = db.begin().await?;
    let rows = list_in(&mut tx).await?;
    let removed = dependants_closure(&rows, update_name)?;
    for name in &removed {
        match &mut tx {
            DbTx::Sqlite(tx) => {
                sqlx::query("DELETE FROM background_updates WHERE update_name = ?")
                    .bind(name)
                    .execute(&mut **tx)
                    .await?;
            }
            DbTx::Postgres(tx) => {
                sqlx::query("DELETE FROM background_updates WHERE update_name = $1")
                    .bind(name)
                    .execute(&mut **tx)
                    .await?;
            }
        }
    }
    tx.commit().await?;
    Ok(removed)
}

/// `name` and every row depending on it, directly or not, in queue order.
pub fn dependants_closure(rows: &[UpdateRow], name: &str) -> Result<Vec<String>, EngineError> {
    if !rows.iter().any(|r| r.update_name == name) {
        return Err(EngineError::NotQueued(name.to_owned()));
    }
    let mut set: BTreeSet<&str> = BTreeSet::from([name]);
    loop {
        let before = set.len();
        for r in rows {
            if r.dependency().is_some_and(|d| set.contains(d)) {
                set.insert(&r.update_name);
            }
        }
        if set.len() == before {
            break;
        }
    }
    Ok(rows
        .iter()
        .filter(|r| set.contains(r.update_name.as_str()))
        .map(|r| r.update_name.clone())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(name: &str, dep: Option<&str>, ordering: i32) -> UpdateRow {
        UpdateRow {
            update_name: name.into(),
            progress_json: "{}".into(),
            depends_on: dep.map(Into::into),
            ordering,
        }
    }

    #[test]
    fn picks_first_row_whose_dependency_is_not_pending() {
        let rows = vec![
            row("b", Some("a"), 0),
            row("c", Some(""), 0),
            row("a", Some("z"), 1),
        ];
        // b waits for a (pending); c has the empty-string dependency.
        assert_eq!(pick_next(&rows).unwrap().unwrap().update_name, "c");
        let rows = vec![row("b", Some("a"), 0), row("a", Some("gone"), 1)];
        // A dependency on a non-pending update is satisfied.
        assert_eq!(pick_next(&rows).unwrap().unwrap().update_name, "a");
        let rows = vec![row("x", None, 0)];
        assert_eq!(pick_next(&rows).unwrap().unwrap().update_name, "x");
        assert!(pick_next(&[]).unwrap().is_none());
    }

    #[test]
    fn run_order_follows_dependencies_then_list_order() {
        // regenerate_directory's chain and the stats job, as `list` orders them.
        let rows = vec![
            row("populate_stats_process_rooms", Some(""), 0),
            row(
                "populate_user_directory_cleanup",
                Some("populate_user_directory_process_users"),
                0,
            ),
            row("populate_user_directory_createtables", Some(""), 0),
            row(
                "populate_user_directory_process_rooms",
                Some("populate_user_directory_createtables"),
                0,
            ),
            row(
                "populate_user_directory_process_users",
                Some("populate_user_directory_process_rooms"),
                0,
            ),
        ];
        assert_eq!(
            run_order(&rows),
            [
                "populate_stats_process_rooms",
                "populate_user_directory_createtables",
                "populate_user_directory_process_rooms",
                "populate_user_directory_process_users",
                "populate_user_directory_cleanup",
            ]
        );
        // A cycle's members come last, in list order.
        let rows = vec![
            row("a", Some("b"), 0),
            row("b", Some("a"), 0),
            row("c", None, 1),
        ];
        assert_eq!(run_order(&rows), ["c", "a", "b"]);
    }

    #[test]
    fn a_cycle_is_an_error_naming_its_members() {
        let rows = vec![
            row("a", Some("b"), 0),
            row("b", Some("c"), 0),
            row("c", Some("b"), 0),
        ];
        match pick_next(&rows) {
            Err(EngineError::DependencyCycle(c)) => assert_eq!(c, ["b", "c", "b"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
        let rows = vec![row("self", Some("self"), 0)];
        match pick_next(&rows) {
            Err(EngineError::DependencyCycle(c)) => assert_eq!(c, ["self", "self"]),
            other => panic!("expected a cycle, got {other:?}"),
        }
    }

    #[test]
    fn eligibility_limits_the_choice_and_explains_waits() {
        let rows = vec![
            row("unknown", None, 0),
            row("mine", Some("unknown"), 1),
            row("free", Some(""), 2),
        ];
        let known = |r: &UpdateRow| r.update_name != "unknown";
        assert_eq!(
            pick_next_of(&rows, known).unwrap().unwrap().update_name,
            "free"
        );
        match pick_next_of(&rows[..2], known) {
            Err(EngineError::WaitsForExcluded { update, waits_for }) => {
                assert_eq!((update.as_str(), waits_for.as_str()), ("mine", "unknown"))
            }
            other => panic!("expected a wait, got {other:?}"),
        }
        assert!(pick_next_of(&rows, |_| false).unwrap().is_none());
    }

    #[test]
    fn closure_of_dependants_is_transitive() {
        let rows = vec![
            row("a", None, 0),
            row("b", Some("a"), 0),
            row("c", Some("b"), 0),
            row("d", Some(""), 0),
            row("e", Some("c"), 0),
        ];
        assert_eq!(dependants_closure(&rows, "b").unwrap(), ["b", "c", "e"]);
        assert_eq!(dependants_closure(&rows, "d").unwrap(), ["d"]);
        assert!(matches!(
            dependants_closure(&rows, "nope"),
            Err(EngineError::NotQueued(n)) if n == "nope"
        ));
    }

    #[test]
    fn progress_must_be_an_object() {
        assert!(parse_progress("u", r#"{"a":1}"#).is_ok());
        assert!(matches!(
            parse_progress("u", "[1]"),
            Err(EngineError::BadProgress { .. })
        ));
        assert!(matches!(
            parse_progress("u", "{oops"),
            Err(EngineError::BadProgress { .. })
        ));
    }
}
