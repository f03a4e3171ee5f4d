//! A canonical, engine-independent text dump of the tables a world lives in,
//! and its SHA-256: equal worlds give equal hashes on SQLite and PostgreSQL.

use sha2::{Digest, Sha256};
use sqlx::Row;
use updraft_engine::Db;

use crate::rows::Table;

/// Boolean columns, printed as 0/1 on both engines.
const BOOLS: &[&str] = &[
    "shadow_banned",
    "approved",
    "locked",
    "suspended",
    "is_public",
    "has_auth_chain_index",
    "processed",
    "outlier",
    "contains_url",
];

/// Every row of every world table, one line per row, sorted.
pub async fn dump(db: &Db) -> Result<String, sqlx::Error> {
    let mut out = String::new();
    for table in Table::ALL {
        let cols = table.columns();
        let exprs: Vec<String> = cols
            .iter()
            .map(|c| match (db, BOOLS.contains(c)) {
                (Db::Postgres(_), true) => format!("COALESCE(({c})::int::text, 'NULL')"),
                (Db::Postgres(_), false) => format!("COALESCE(({c})::text, 'NULL')"),
                (Db::Sqlite(_), _) => format!("COALESCE(CAST({c} AS TEXT), 'NULL')"),
            })
            .collect();
        let order: Vec<String> = (1..=cols.len()).map(|i| i.to_string()).collect();
        let sql = format!(
            "SELECT {} FROM {} ORDER BY {}",
            exprs.join(", "),
            table.name(),
            order.join(", ")
        );
        let lines: Vec<String> = match db {
            Db::Sqlite(pool) => sqlx::query(&sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    (0..cols.len())
                        .map(|i| r.get::<String, _>(i))
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .collect(),
            Db::Postgres(pool) => sqlx::query(&sql)
                .fetch_all(pool)
                .await?
                .iter()
                .map(|r| {
                    (0..cols.len())
                        .map(|i| r.get::<String, _>(i))
                        .collect::<Vec<_>>()
                        .join("\t")
                })
                .collect(),
        };
        let mut lines = lines;
        // Byte order, so both engines agree whatever their collation.
        lines.sort();
        out.push_str(&format!("## {}\n", table.name()));
        for l in lines {
            out.push_str(&l);
            out.push('\n');
        }
    }
    Ok(out)
}

/// Hex SHA-256 of [`dump`].
pub async fn dump_hash(db: &Db) -> Result<String, sqlx::Error> {
    let text = dump(db).await?;
    Ok(Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}
