//! `updraft info`: what a database is and how much it holds.

use std::collections::BTreeMap;

use serde::Serialize;
use updraft_engine::{Db, Engine};

use crate::schema::{SchemaKind, REQUIRED_TABLES};

/// Engine, schema kind and row counts of the tables updraft uses.
#[derive(Clone, Debug, Serialize)]
pub struct Info {
    pub engine: Engine,
    pub schema: String,
    pub row_counts: BTreeMap<String, i64>,
}

pub async fn info(db: &Db, kind: &SchemaKind) -> Result<Info, sqlx::Error> {
    let mut row_counts = BTreeMap::new();
    for table in REQUIRED_TABLES {
        row_counts.insert(table.to_string(), db.count_rows(table).await?);
    }
    Ok(Info {
        engine: db.engine(),
        schema: kind.to_string(),
        row_counts,
    })
}
