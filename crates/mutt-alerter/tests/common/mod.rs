//! Set-up shared by the alerter's tests on both backends: a fresh site with one rule, an
//! alerter over it, and a look at its queues. Each test file adds the methods only it needs
//! (`impl Setup` in that file).

// Each test file is a crate of its own that uses only part of this module.
#![allow(dead_code)]

use mutt_alerter::{Alerter, AlerterConfig, AlerterMetrics};
use mutt_queue::redis::KeySpace;
use mutt_queue::{QueueId, WorkerRole};
use mutt_sqlite::{Database, DbOptions};
use mutt_testapp::{BackendKind, Site, TestBackend};
use serde_json::Value;
use std::path::PathBuf;

pub struct Setup {
    pub site: Site,
    pub backend: TestBackend,
    /// The embedded queue's file when it is not the store's (the site's data file).
    pub queue_file: Option<PathBuf>,
}

impl Setup {
    /// A site opened as muttd opens it, with the rule the tests' events match
    /// (`CRITICAL`, contains).
    pub async fn new(kind: BackendKind) -> Self {
        let site = Site::fresh(kind).await;
        let backend = site.open().await;
        backend.store.create_rule(&mutt_testapp::fixtures::rule("CRITICAL")).await.unwrap();
        Setup { site, backend, queue_file: None }
    }

    /// An alerter over the site, with a pod name of its own and metrics of its own.
    pub async fn start_alerter(&self, config: AlerterConfig) -> Alerter {
        let cc = mutt_testapp::fixtures::consumer(WorkerRole::Alerter, "a");
        let metrics = AlerterMetrics::register(&mutt_service::Metrics::new());
        let b = &self.backend;
        Alerter::start(b.queue.clone(), b.coordination.clone(), b.store.clone(), cc, config, metrics).await.unwrap()
    }

    /// Pushes each message's exact bytes onto the ingest queue.
    pub async fn push_raw(&self, raw: &[&[u8]]) {
        let raw: Vec<Vec<u8>> = raw.iter().map(|r| r.to_vec()).collect();
        self.backend.queue.push(QueueId::Ingest, &raw).await.unwrap();
    }

    pub async fn push(&self, items: &[Value]) {
        let raw: Vec<Vec<u8>> = items.iter().map(|m| serde_json::to_vec(m).unwrap()).collect();
        let refs: Vec<&[u8]> = raw.iter().map(Vec::as_slice).collect();
        self.push_raw(&refs).await;
    }

    pub fn keys(&self) -> KeySpace {
        self.site.key_prefix().map_or_else(KeySpace::default, KeySpace::with_prefix)
    }

    /// The messages of a queue (a Redis list or the embedded table), oldest first.
    pub async fn list(&self, name: &str) -> Vec<Value> {
        let raw: Vec<Vec<u8>> = match self.site.kind() {
            BackendKind::RedisPostgres => {
                let client = redis::Client::open(self.site.redis_url().unwrap()).unwrap();
                let mut c = client.get_multiplexed_async_connection().await.unwrap();
                let mut v: Vec<Vec<u8>> =
                    redis::cmd("LRANGE").arg(name).arg(0).arg(-1).query_async(&mut c).await.unwrap();
                v.reverse();
                v
            }
            BackendKind::Embedded => {
                let file = self.queue_file.clone().unwrap_or_else(|| self.site.data_file().unwrap());
                let db = Database::open(file, DbOptions::default()).unwrap();
                let name = name.to_owned();
                db.read(move |c| {
                    let mut s = c.prepare("SELECT body FROM queue_message WHERE queue = ?1 ORDER BY seq")?;
                    let rows = s.query_map([name], |r| r.get::<_, Vec<u8>>(0))?;
                    rows.collect()
                })
                .await
                .unwrap()
            }
        };
        raw.iter().map(|b| serde_json::from_slice(b).unwrap()).collect()
    }
}
