//! Fast bulk writes: multi-row INSERTs on SQLite, COPY on PostgreSQL. A batch
//! is written table by table in the caller's transaction.

use std::fmt::Write as _;

use sqlx::{PgConnection, SqliteConnection};
use updraft_engine::DbTx;

use crate::error::WorkloadError;
use crate::rows::{Batch, Table, Val};

/// SQLite's limit on bound parameters per statement is 32766; stay well under.
const SQLITE_MAX_PARAMS: usize = 30_000;
/// Rows per INSERT on SQLite: larger statements stop paying off past a few hundred rows.
const SQLITE_MAX_ROWS: usize = 500;

/// Writes a batch inside an open transaction.
pub async fn write_tx(tx: &mut DbTx, batch: &Batch) -> Result<(), WorkloadError> {
    match tx {
        DbTx::Sqlite(tx) => write_sqlite(tx, batch).await,
        DbTx::Postgres(tx) => write_postgres(tx, batch).await,
    }
}

pub async fn write_sqlite(conn: &mut SqliteConnection, batch: &Batch) -> Result<(), WorkloadError> {
    for table in Table::ALL {
        let rows = batch.rows(table);
        let cols = table.columns();
        let per = (SQLITE_MAX_PARAMS / cols.len()).min(SQLITE_MAX_ROWS);
        for chunk in rows.chunks(per) {
            let sql = insert_sql(table, chunk.len());
            let mut q = sqlx::query(&sql);
            for row in chunk {
                for v in row {
                    q = match v {
                        Val::Null => q.bind(None::<i64>),
                        Val::Int(i) => q.bind(*i),
                        Val::Bool(b) => q.bind(*b),
                        Val::Text(s) => q.bind(s.as_str()),
                    };
                }
            }
            q.execute(&mut *conn).await?;
        }
    }
    Ok(())
}

fn insert_sql(table: Table, rows: usize) -> String {
    let cols = table.columns();
    let one = format!("({})", vec!["?"; cols.len()].join(","));
    let mut sql = format!("INSERT INTO {} ({}) VALUES ", table.name(), cols.join(","));
    for i in 0..rows {
        if i > 0 {
            sql.push(',');
        }
        sql.push_str(&one);
    }
    sql
}

pub async fn write_postgres(conn: &mut PgConnection, batch: &Batch) -> Result<(), WorkloadError> {
    for table in Table::ALL {
        let rows = batch.rows(table);
        if rows.is_empty() {
            continue;
        }
        let mut data = String::with_capacity(rows.len() * 128);
        for row in rows {
            copy_row(&mut data, row)?;
        }
        let sql = format!(
            "COPY {} ({}) FROM STDIN",
            table.name(),
            table.columns().join(",")
        );
        let mut copy = conn.copy_in_raw(&sql).await?;
        if let Err(e) = copy.send(data.into_bytes()).await {
            let _ = copy.abort("send failed").await;
            return Err(e.into());
        }
        copy.finish().await?;
    }
    Ok(())
}

/// One row in COPY's text format.
fn copy_row(out: &mut String, row: &[Val]) -> Result<(), WorkloadError> {
    for (i, v) in row.iter().enumerate() {
        if i > 0 {
            out.push('\t');
        }
        match v {
            Val::Null => out.push_str("\\N"),
            Val::Int(n) => {
                let _ = write!(out, "{n}");
            }
            Val::Bool(b) => out.push(if *b { 't' } else { 'f' }),
            Val::Text(s) => {
                for c in s.chars() {
                    match c {
                        '\\' => out.push_str("\\\\"),
                        '\t' => out.push_str("\\t"),
                        '\n' => out.push_str("\\n"),
                        '\r' => out.push_str("\\r"),
                        '\0' => {
                            return Err(WorkloadError::Event(format!(
                                "U+0000 in a text column ({s:?}): PostgreSQL cannot store it"
                            )))
                        }
                        c => out.push(c),
                    }
                }
            }
        }
    }
    out.push('\n');
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copy_text_escapes_what_it_must() {
        let mut out = String::new();
        let row = vec![
            Val::Int(-3),
            Val::Null,
            Val::Bool(true),
            Val::Text("a\tb\\c\nd\re".into()),
        ];
        copy_row(&mut out, &row).unwrap();
        assert_eq!(out, "-3\t\\N\tt\ta\\tb\\\\c\\nd\\re\n");
        assert!(copy_row(&mut out, &[Val::Text("x\0".into())]).is_err());
        assert_eq!(
            insert_sql(Table::StateEvents, 2),
            "INSERT INTO state_events (event_id,room_id,type,state_key) VALUES (?,?,?,?),(?,?,?,?)"
        );
    }
}
