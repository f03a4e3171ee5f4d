//! The schema on both engines: identical to Synapse 1.163.2's, and opening
//! databases safely (fresh, ours, Synapse's, foreign).

use updraft_engine::{DbTarget, Engine};
use updraft_homeserver::schema::{describe, REQUIRED_TABLES};
use updraft_homeserver::{open, OpenError, OpenOptions, SchemaKind};
use updraft_testkit::{both_engines, create_postgres_database, TestDb};

fn reference(engine: Engine) -> String {
    let path = format!(
        "{}/../../fixtures/schema/synapse-1.163.2-{}.txt",
        env!("CARGO_MANIFEST_DIR"),
        engine.as_str()
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("reading {path}: {e}"))
}

/// First differing line, so a failure says what differs rather than dumping both.
fn first_difference(ours: &str, theirs: &str) -> Option<String> {
    let (a, b): (Vec<_>, Vec<_>) = (ours.lines().collect(), theirs.lines().collect());
    for i in 0..a.len().max(b.len()) {
        if a.get(i) != b.get(i) {
            return Some(format!(
                "line {}: ours {:?} vs Synapse {:?}",
                i + 1,
                a.get(i),
                b.get(i)
            ));
        }
    }
    None
}

both_engines! {
    async fn schema_matches_synapse_reference(t) {
        let opened = open(&t.target, OpenOptions::default()).await.unwrap();
        assert_eq!(opened.kind, SchemaKind::Updraft { version: 1 });
        let ours = describe(&opened.db, REQUIRED_TABLES).await.unwrap();
        let theirs = reference(t.engine());
        assert!(theirs.contains("table user_directory_search"));
        if let Some(diff) = first_difference(&ours, &theirs) {
            panic!("schema differs from Synapse 1.163.2 ({}): {diff}", t.engine());
        }
    }

    async fn singleton_rows_exist(t) {
        let opened = open(&t.target, OpenOptions::default()).await.unwrap();
        assert_eq!(opened.db.count_rows("user_directory_stream_pos").await.unwrap(), 1);
        assert_eq!(opened.db.count_rows("stats_incremental_position").await.unwrap(), 1);
    }

    async fn reopening_is_idempotent(t) {
        let first = open(&t.target, OpenOptions::default()).await.unwrap();
        first.db.execute("INSERT INTO users (name) VALUES ('@a:hs.test')").await.unwrap();
        first.db.close().await;
        let again = open(&t.target, OpenOptions::default()).await.unwrap();
        assert_eq!(again.kind, SchemaKind::Updraft { version: 1 });
        assert_eq!(again.db.count_rows("users").await.unwrap(), 1);
    }

    async fn foreign_database_is_refused_and_untouched(t) {
        t.db.execute("CREATE TABLE invoices (id INT)").await.unwrap();
        let err = open(&t.target, OpenOptions::default()).await.unwrap_err();
        assert!(matches!(err, OpenError::Foreign { count: 1, .. }), "{err}");
        assert!(err.to_string().contains("invoices"), "{err}");
        assert_eq!(t.db.table_names().await.unwrap(), vec!["invoices".to_owned()]);
    }

    async fn synapse_database_is_used_as_is(t) {
        // A Synapse database: Synapse's tables plus its schema_version row, no migrations of ours.
        let ddl = match t.engine() {
            Engine::Sqlite => include_str!("../migrations/sqlite/0001_synapse_tables.sql"),
            Engine::Postgres => include_str!("../migrations/postgres/0001_synapse_tables.sql"),
        };
        t.db.execute_script(ddl).await.unwrap();
        t.db.execute_script(
            "CREATE TABLE schema_version (lock CHAR(1) NOT NULL DEFAULT 'X' UNIQUE, version INTEGER NOT NULL, upgraded BOOL NOT NULL);
             INSERT INTO schema_version (version, upgraded) VALUES (94, TRUE);",
        ).await.unwrap();
        let opened = open(&t.target, OpenOptions::default()).await.unwrap();
        assert_eq!(opened.kind, SchemaKind::Synapse { schema_version: 94 });
        let tables = opened.db.table_names().await.unwrap();
        assert!(!tables.iter().any(|t| t == "_sqlx_migrations"), "migrations ran on a Synapse database");
    }

    async fn synapse_database_missing_tables_names_them(t) {
        t.db.execute_script(
            "CREATE TABLE schema_version (lock CHAR(1) NOT NULL DEFAULT 'X' UNIQUE, version INTEGER NOT NULL, upgraded BOOL NOT NULL);
             INSERT INTO schema_version (version, upgraded) VALUES (94, TRUE);
             CREATE TABLE users (name TEXT);",
        ).await.unwrap();
        let err = open(&t.target, OpenOptions::default()).await.unwrap_err();
        match &err {
            OpenError::SynapseIncomplete { schema_version, missing, .. } => {
                assert_eq!(*schema_version, 94);
                assert!(missing.contains(&"user_directory".to_owned()));
                assert!(!missing.contains(&"users".to_owned()));
                assert_eq!(missing.len(), REQUIRED_TABLES.len() - 1);
            }
            other => panic!("unexpected {other}"),
        }
        assert_eq!(t.db.table_names().await.unwrap().len(), 2);
    }
}

#[tokio::test]
async fn random_file_is_refused_and_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.txt");
    let content = b"this is not a database, just some notes\n".repeat(100);
    std::fs::write(&path, &content).unwrap();
    let err = open(&DbTarget::Sqlite(path.clone()), OpenOptions::default())
        .await
        .unwrap_err();
    assert!(matches!(err, OpenError::NotSqlite { .. }), "{err}");
    assert_eq!(std::fs::read(&path).unwrap(), content);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no -wal/-shm files left"
    );
}

/// Named `...::postgres` like every PostgreSQL test, so `--sqlite-only` skips it.
mod non_c_collation_is_refused_with_synapses_advice {
    use super::*;

    #[tokio::test]
    async fn postgres() {
        let (url, name) = create_postgres_database("C.UTF-8").await;
        let err = open(&DbTarget::Postgres(url.clone()), OpenOptions::default())
            .await
            .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("Database has incorrect collation of 'C.UTF-8'. Should be 'C'"),
            "{msg}"
        );
        assert!(msg.contains("allow_unsafe_locale"), "{msg}");
        assert!(
            msg.contains("LC_COLLATE 'C' LC_CTYPE 'C' TEMPLATE template0"),
            "{msg}"
        );
        // Nothing was written; with the override it opens.
        let opened = open(
            &DbTarget::Postgres(url),
            OpenOptions {
                allow_unsafe_locale: true,
            },
        )
        .await
        .unwrap();
        assert_eq!(opened.kind, SchemaKind::Updraft { version: 1 });
        opened.db.close().await;
        drop_database(&name).await;
    }
}

async fn drop_database(name: &str) {
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&updraft_testkit::postgres_admin_url())
        .await
        .unwrap();
    sqlx::query(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .unwrap();
}

#[tokio::test]
async fn testkit_gives_both_engines() {
    let s = TestDb::sqlite().await;
    assert_eq!(s.engine(), Engine::Sqlite);
    assert!(s.url().starts_with("sqlite://"));
}
