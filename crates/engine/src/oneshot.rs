//! Updates that cannot run inside a transaction and finish in one call
//! (Synapse's "oneshot" updates): index creation and constraint validation.
//! Both are idempotent, so a crash half-way is repaired by running them again.
//!
//! Index names, tables, columns and clauses come from the registry (code),
//! never from user input, so they are spliced into the SQL as they are.

use sqlx::Executor;

use crate::db::Db;
use crate::handler::IndexSpec;

/// Creates an index as Synapse does. Postgres: on one dedicated connection,
/// drop a half-built index, lift the statement timeout, `CREATE [UNIQUE] INDEX
/// CONCURRENTLY`, drop the index it replaces, restore the timeout. SQLite:
/// `CREATE INDEX IF NOT EXISTS` (nothing at all for `psql_only`).
pub async fn create_index(db: &Db, spec: &IndexSpec) -> Result<(), sqlx::Error> {
    let unique = if spec.unique { "UNIQUE " } else { "" };
    let columns = spec.columns.join(", ");
    let where_sql = spec
        .where_clause
        .as_ref()
        .map(|w| format!(" WHERE {w}"))
        .unwrap_or_default();
    match db {
        Db::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            let create = format!(
                "CREATE {unique}INDEX CONCURRENTLY {} ON {} ({columns}){where_sql}",
                spec.index_name, spec.table
            );
            // Statements without bind parameters go over the simple protocol:
            // CONCURRENTLY refuses any transaction block.
            let result = async {
                let drop_half_built =
                    format!("DROP INDEX CONCURRENTLY IF EXISTS {}", spec.index_name);
                conn.execute(drop_half_built.as_str()).await?;
                conn.execute("SET statement_timeout = 0").await?;
                conn.execute(create.as_str()).await?;
                if let Some(old) = &spec.replaces_index {
                    let drop_old = format!("DROP INDEX CONCURRENTLY IF EXISTS {old}");
                    conn.execute(drop_old.as_str()).await?;
                }
                Ok::<(), sqlx::Error>(())
            }
            .await;
            let reset = conn.execute("RESET statement_timeout").await;
            result?;
            reset?;
            Ok(())
        }
        Db::Sqlite(pool) => {
            if spec.psql_only {
                return Ok(());
            }
            let create = format!(
                "CREATE {unique}INDEX IF NOT EXISTS {} ON {} ({columns}){where_sql}",
                spec.index_name, spec.table
            );
            pool.execute(create.as_str()).await?;
            if let Some(old) = &spec.replaces_index {
                pool.execute(format!("DROP INDEX IF EXISTS {old}").as_str())
                    .await?;
            }
            Ok(())
        }
    }
}

/// Validates a constraint added `NOT VALID` (Postgres only; SQLite has no
/// such constraints, so the update simply ends there).
pub async fn validate_constraint(
    db: &Db,
    table: &str,
    constraint: &str,
) -> Result<(), sqlx::Error> {
    if let Db::Postgres(pool) = db {
        let mut conn = pool.acquire().await?;
        let sql = format!("ALTER TABLE {table} VALIDATE CONSTRAINT {constraint}");
        conn.execute(sql.as_str()).await?;
    }
    Ok(())
}
