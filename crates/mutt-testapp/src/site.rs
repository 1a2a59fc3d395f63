//! A fresh place for one test's data, and the backend handles opened on it, built the way
//! muttd builds them.

use mutt_queue::redis::{KeySpace, RedisConfig, RedisQueue};
use mutt_queue::sqlite::SqliteQueue;
use mutt_queue::{Coordination, Queue};
use mutt_sqlite::{Database, DbOptions};
use mutt_store::Store;
use mutt_store::postgres::{PgStore, PostgresConfig};
use mutt_store::sqlite::SqliteStore;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tempfile::TempDir;

/// Which of the two backends of DESIGN.md §3.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    /// Redis for the queues and coordination, PostgreSQL for the store.
    RedisPostgres,
    /// One SQLite data file for everything.
    Embedded,
}

impl BackendKind {
    pub const ALL: [BackendKind; 2] = [BackendKind::RedisPostgres, BackendKind::Embedded];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::RedisPostgres => "redis+postgres",
            BackendKind::Embedded => "embedded",
        }
    }
}

/// Where one test's data lives, shared with no other test. Nothing is opened yet, so a test
/// can hand the place to a process of its own (muttd's configuration) or [`Site::open`] it.
#[derive(Debug)]
pub enum Site {
    RedisPostgres {
        redis_url: String,
        /// Every key of this test starts with it (`t3f9a1c2:`).
        key_prefix: String,
        /// A fresh, empty database on the test PostgreSQL (not migrated yet).
        database_url: String,
    },
    Embedded {
        /// Holds the data file; removed when the site is dropped.
        dir: TempDir,
    },
}

impl Site {
    pub async fn fresh(kind: BackendKind) -> Self {
        match kind {
            BackendKind::RedisPostgres => Site::RedisPostgres {
                redis_url: mutt_testkit::redis_url(),
                key_prefix: mutt_testkit::unique_prefix(),
                database_url: mutt_testkit::fresh_database().await,
            },
            BackendKind::Embedded => Site::Embedded { dir: tempfile::tempdir().expect("create a temporary directory") },
        }
    }

    pub fn kind(&self) -> BackendKind {
        match self {
            Site::RedisPostgres { .. } => BackendKind::RedisPostgres,
            Site::Embedded { .. } => BackendKind::Embedded,
        }
    }

    /// Redis URL, key prefix and database URL of a Redis + PostgreSQL site.
    fn services(&self) -> Option<(&str, &str, &str)> {
        match self {
            Site::RedisPostgres { redis_url, key_prefix, database_url } => Some((redis_url, key_prefix, database_url)),
            Site::Embedded { .. } => None,
        }
    }

    pub fn redis_url(&self) -> Option<&str> {
        self.services().map(|s| s.0)
    }

    pub fn key_prefix(&self) -> Option<&str> {
        self.services().map(|s| s.1)
    }

    pub fn database_url(&self) -> Option<&str> {
        self.services().map(|s| s.2)
    }

    /// The directory of the embedded data file.
    pub fn data_dir(&self) -> Option<&Path> {
        match self {
            Site::RedisPostgres { .. } => None,
            Site::Embedded { dir } => Some(dir.path()),
        }
    }

    /// The embedded data file (created by [`Site::open`]).
    pub fn data_file(&self) -> Option<PathBuf> {
        self.data_dir().map(|d| d.join("mutt.db"))
    }

    /// Opens the backend as a `muttd run` process does: the store migrated, the embedded queue
    /// as the file's owner (so no other process may own this site's file while it is open).
    pub async fn open(&self) -> TestBackend {
        match self {
            Site::RedisPostgres { redis_url, key_prefix, database_url } => {
                let config = RedisConfig::single(redis_url.clone(), KeySpace::with_prefix(key_prefix));
                let queue = RedisQueue::connect(&config).await.expect("connect to the test Redis");
                let pg = PostgresConfig { url: database_url.clone(), password: None, pool_size: 4 };
                let store = PgStore::new(&pg).expect("PostgreSQL configuration");
                store.migrate().await.expect("migrate the test database");
                TestBackend::new(BackendKind::RedisPostgres, queue, store)
            }
            Site::Embedded { .. } => {
                let path = self.data_file().expect("an embedded site has a data file");
                let db = Database::open(&path, DbOptions::default()).expect("open the data file");
                let store = SqliteStore::new(db.clone());
                store.migrate().await.expect("migrate the data file");
                let queue = SqliteQueue::open(db, KeySpace::default()).await.expect("own the embedded queue");
                TestBackend::new(BackendKind::Embedded, queue, store)
            }
        }
    }
}

/// The opened handles of a site, as the roles receive them.
#[derive(Clone)]
pub struct TestBackend {
    pub kind: BackendKind,
    pub queue: Arc<dyn Queue>,
    pub coordination: Arc<dyn Coordination>,
    pub store: Arc<dyn Store>,
}

impl TestBackend {
    fn new<Q: Queue + Coordination + Clone, S: Store>(kind: BackendKind, queue: Q, store: S) -> Self {
        Self { kind, queue: Arc::new(queue.clone()), coordination: Arc::new(queue), store: Arc::new(store) }
    }
}
