//! Where delivered alerts go, behind one interface: the webhook (Moogsoft or any receiver) or
//! the alerts file. The worker hands a sink the alerts it may send and gets one outcome per
//! request back; it never looks at the destination itself.

mod file;
mod webhook;

use crate::delivery::Delivery;
use crate::payload::Encoder;
use crate::view::AlertView;
use crate::worker::ForwarderError;
use crate::{Destination, ForwarderConfig, ForwarderMetrics};
use async_trait::async_trait;
use std::sync::Arc;

pub use file::FileSink;
pub use webhook::{MoogKey, WebhookSink, http_client};

/// One request's outcome (one POST, one line of the file).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// How many of the alerts handed over, in order, this request carried.
    pub alerts: usize,
    pub delivery: Delivery,
}

#[async_trait]
pub trait Sink: Send + Sync {
    /// Delivers the alerts, grouped into requests as the output format says. Returns one
    /// [`Sent`] per request, in order, together covering every alert.
    async fn deliver(&self, alerts: &[&AlertView<'_>]) -> Vec<Sent>;

    /// The most alerts one request carries (what a half-open breaker's single probe may send).
    fn request_size(&self) -> usize;

    /// Whether deliveries take slots of the shared Moog rate limit. The alerts file needs none:
    /// with it, a first run without a webhook would shed events once 2,000 alerts waited
    /// behind 50/s.
    fn rate_limited(&self) -> bool;

    /// The credential the sink sends, replaceable while it runs (the webhook's; none for the
    /// alerts file).
    fn moog_key(&self) -> Option<MoogKey> {
        None
    }
}

/// The sink for the configured destination (the alerts file is opened, or created, here).
pub async fn open(config: &ForwarderConfig, metrics: &ForwarderMetrics) -> Result<Arc<dyn Sink>, ForwarderError> {
    let encoder = Encoder::new(config);
    Ok(match &config.destination {
        Destination::Webhook(url) => Arc::new(WebhookSink::new(url.clone(), config, encoder, metrics.clone())?),
        Destination::File(path) => {
            Arc::new(FileSink::open(path.clone(), encoder, config.alerts_file_sync, metrics.clone()).await?)
        }
    })
}
