//! Partitions, retention and the archive on the embedded SQLite store (a fresh file per test):
//! no partitions, months reported by row counts, expired rows deleted in chunks.

#[macro_use]
mod lifecycle;

use async_trait::async_trait;
use lifecycle::Sql;
use mutt_sqlite::DbOptions;
use mutt_store::Store;
use mutt_store::sqlite::SqliteStore;
use rusqlite::types::Value;
use std::path::PathBuf;
use std::sync::Arc;
use tempfile::TempDir;

struct Lite {
    path: PathBuf,
    // Keeps the file's directory until the test is over.
    _dir: TempDir,
}

impl Lite {
    async fn with<T: Send + 'static>(&self, f: impl FnOnce(rusqlite::Connection) -> T + Send + 'static) -> T {
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || f(rusqlite::Connection::open(path).unwrap())).await.unwrap()
    }
}

fn text(v: Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Integer(i) => i.to_string(),
        Value::Real(f) => f.to_string(),
        Value::Text(t) => t,
        Value::Blob(b) => format!("{b:?}"),
    }
}

#[async_trait]
impl Sql for Lite {
    fn partitioned(&self) -> bool {
        false
    }

    async fn count(&self, sql: &str) -> i64 {
        let sql = sql.to_owned();
        self.with(move |c| c.query_row(&sql, [], |r| r.get(0)).unwrap()).await
    }

    async fn rows(&self, sql: &str) -> Vec<Vec<String>> {
        let sql = sql.to_owned();
        self.with(move |c| {
            let mut stmt = c.prepare(&sql).unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| (0..n).map(|i| r.get::<_, Value>(i).map(text)).collect())
                .unwrap()
                .collect::<Result<Vec<Vec<String>>, _>>()
                .unwrap()
        })
        .await
    }

    async fn execute(&self, sql: &str) {
        let sql = sql.to_owned();
        self.with(move |c| c.execute_batch(&sql).unwrap()).await
    }
}

async fn backend() -> (Arc<dyn Store>, Arc<dyn Sql>) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mutt.db");
    let store = SqliteStore::open(&path, DbOptions::default()).await.expect("open the database file");
    store.migrate().await.expect("migrations apply");
    (Arc::new(store), Arc::new(Lite { path, _dir: dir }))
}

lifecycle_tests!();
