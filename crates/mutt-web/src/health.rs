//! `/health` of the web role: the queue backend and the database answer.

use mutt_queue::Queue;
use mutt_service::{Health, HealthStyle};
use mutt_store::Store;
use std::sync::Arc;

pub(crate) fn health(queue: Arc<dyn Queue>, store: Arc<dyn Store>) -> Health {
    Health::new("mutt-web").style(HealthStyle::Fields).check("redis", queue, |q| async move { q.ping().await }).check(
        "database",
        store,
        |s| async move { s.ping().await },
    )
}
