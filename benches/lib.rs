//! Helpers of the criterion benches in `benches/`.

use updraft_engine::Db;

/// The PostgreSQL server the benches use: `UPDRAFT_TEST_POSTGRES`, else the
/// local server.
pub fn postgres_admin_url() -> String {
    std::env::var("UPDRAFT_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// A fresh database `name` (dropped first if it exists) with C collation, as
/// Synapse requires; its URL, or `None` (and a message) when PostgreSQL is not
/// reachable, so that a bench run on a machine without it still measures
/// SQLite.
pub async fn scratch_postgres(name: &str) -> Option<String> {
    let admin = postgres_admin_url();
    let created = async {
        let admin_db = Db::connect(&admin).await?;
        admin_db
            .execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .await?;
        admin_db
            .execute(&format!(
                "CREATE DATABASE {name} ENCODING 'UTF8' LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"
            ))
            .await?;
        admin_db.close().await;
        Ok::<(), Box<dyn std::error::Error>>(())
    };
    if let Err(e) = created.await {
        eprintln!("PostgreSQL not usable at {admin} ({e}): skipping the postgres benches");
        return None;
    }
    let (server, _) = admin.rsplit_once('/')?;
    Some(format!("{server}/{name}"))
}
