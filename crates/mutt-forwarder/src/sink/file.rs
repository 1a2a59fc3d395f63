//! The alerts-file sink, for a first run without a Moogsoft: each request's body becomes one
//! JSON line of the file, and is logged. Bodies come from the encoder without the REST LAM
//! token, which belongs to Moogsoft, not to files and logs.

use super::{Sent, Sink};
use crate::ForwarderMetrics;
use crate::delivery::Delivery;
use crate::payload::Encoder;
use crate::worker::ForwarderError;
use async_trait::async_trait;
use mutt_core::Alert;
use std::path::PathBuf;
use tokio::io::AsyncWriteExt;

pub struct FileSink {
    path: PathBuf,
    file: tokio::sync::Mutex<tokio::fs::File>,
    encoder: Encoder,
    metrics: ForwarderMetrics,
}

impl FileSink {
    /// Opens the file for appending, creating it and its folder if need be.
    pub async fn open(path: PathBuf, encoder: Encoder, metrics: ForwarderMetrics) -> Result<Self, ForwarderError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ForwarderError::File(format!("creating {}: {e}", dir.display())))?;
        }
        let file = tokio::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .await
            .map_err(|e| ForwarderError::File(format!("opening {}: {e}", path.display())))?;
        Ok(Self { path, file: tokio::sync::Mutex::new(file), encoder, metrics })
    }

    async fn append(&self, group: &[&Alert], line: &str) -> Delivery {
        // The ids of a one-alert request, or the first few of a bigger one.
        let (correlation_id, event_id) = match group {
            [one] => (Some(one.correlation_id.as_str()), Some(one.event_id.as_str())),
            _ => (None, None),
        };
        tracing::info!(
            correlation_id,
            event_id,
            alerts = group.len(),
            event_ids = mutt_queue::log_ids::join_ids(group.iter().map(|a| a.event_id.as_str())),
            alert = %line,
            file = %self.path.display(),
            "alert"
        );
        let mut f = self.file.lock().await;
        // A tokio file only hands the bytes to a background write: flush, so that a line
        // counted as delivered is in the file.
        let written = async {
            f.write_all(format!("{line}\n").as_bytes()).await?;
            f.flush().await
        };
        match written.await {
            Ok(()) => {
                self.metrics.request("success", "");
                Delivery::Delivered
            }
            Err(e) => Delivery::Retry { after: None, reason: format!("writing {}: {e}", self.path.display()) },
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn deliver(&self, alerts: &[&Alert]) -> Vec<Sent> {
        let mut out = Vec::new();
        for (group, body) in self.encoder.requests(alerts, chrono::Utc::now().timestamp()) {
            out.push(Sent { alerts: group.len(), delivery: self.append(group, &body.to_string()).await });
        }
        out
    }

    fn request_size(&self) -> usize {
        self.encoder.request_size()
    }

    fn rate_limited(&self) -> bool {
        false
    }
}
