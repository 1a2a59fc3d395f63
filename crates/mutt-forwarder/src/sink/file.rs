//! The alerts-file sink, for a first run without a Moogsoft: each request's body becomes one
//! JSON line of the file, and is logged. Bodies come from the encoder without the REST LAM
//! token, which belongs to Moogsoft, not to files and logs.
//!
//! An alert counts as delivered (and is acknowledged) only once its line is in the file: the
//! batch's lines are written with one `write` and, when [`ForwarderConfig::alerts_file_sync`]
//! is on (the embedded `durability = "full"`), one `fsync`. A failed write or sync retries
//! every line of the batch (a line may then appear twice, never be lost).
//!
//! [`ForwarderConfig::alerts_file_sync`]: crate::ForwarderConfig::alerts_file_sync

use super::{Sent, Sink};
use crate::ForwarderMetrics;
use crate::delivery::Delivery;
use crate::payload::Encoder;
use crate::view::AlertView;
use crate::worker::ForwarderError;
use async_trait::async_trait;
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

pub struct FileSink {
    path: PathBuf,
    file: Arc<Mutex<Appender>>,
    encoder: Encoder,
    /// fsync after each batch's write.
    sync: bool,
    metrics: ForwarderMetrics,
}

/// The open file, and whether a failed write may have left a partial line at its end.
struct Appender {
    file: std::fs::File,
    torn: bool,
}

impl Appender {
    /// Appends `lines`, then syncs the data if asked. After a failure the next write starts
    /// on a new line, so that a torn line never swallows a whole one.
    fn append(&mut self, lines: &[u8], sync: bool) -> std::io::Result<()> {
        let written = (|| {
            if self.torn {
                self.file.write_all(b"\n")?;
            }
            self.file.write_all(lines)?;
            self.file.flush()?;
            if sync {
                self.file.sync_data()?;
            }
            Ok(())
        })();
        self.torn = written.is_err();
        written
    }
}

impl FileSink {
    /// Opens the file for appending, creating it and its folder if need be; `sync`: fsync each
    /// batch before it counts as delivered.
    pub async fn open(
        path: PathBuf,
        encoder: Encoder,
        sync: bool,
        metrics: ForwarderMetrics,
    ) -> Result<Self, ForwarderError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(dir)
                .await
                .map_err(|e| ForwarderError::File(format!("creating {}: {e}", dir.display())))?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| ForwarderError::File(format!("opening {}: {e}", path.display())))?;
        let file = Arc::new(Mutex::new(Appender { file, torn: false }));
        Ok(Self { path, file, encoder, sync, metrics })
    }

    fn log(&self, group: &[&AlertView<'_>], line: &str) {
        // The ids of a one-alert request, or the first few of a bigger one.
        let (correlation_id, event_id) = match group {
            [one] => (Some(one.correlation_id.as_ref()), Some(one.event_id.as_ref())),
            _ => (None, None),
        };
        tracing::info!(
            correlation_id,
            event_id,
            alerts = group.len(),
            event_ids = mutt_queue::log_ids::join_ids(group.iter().map(|a| a.event_id.as_ref())),
            alert = %line,
            file = %self.path.display(),
            "alert"
        );
    }

    /// Writes the lines on a blocking thread (a file write or fsync may take a while).
    async fn write(&self, lines: Vec<u8>) -> Result<(), String> {
        let (file, sync) = (self.file.clone(), self.sync);
        let done = tokio::task::spawn_blocking(move || {
            let mut f = file.lock().unwrap_or_else(|p| p.into_inner());
            f.append(&lines, sync)
        })
        .await;
        match done {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(format!("writing {}: {e}", self.path.display())),
            Err(e) => Err(format!("writing {}: {e}", self.path.display())),
        }
    }
}

#[async_trait]
impl Sink for FileSink {
    async fn deliver(&self, alerts: &[&AlertView<'_>]) -> Vec<Sent> {
        let requests = self.encoder.requests(alerts, chrono::Utc::now().timestamp());
        let mut lines = Vec::new();
        for (group, body) in &requests {
            self.log(group, &String::from_utf8_lossy(body));
            lines.extend_from_slice(body);
            lines.push(b'\n');
        }
        let written = self.write(lines).await;
        if let Err(e) = &written {
            tracing::error!(error = %e, alerts = alerts.len(), "alerts file write failed; the alerts are retried");
        }
        let sent = |group: &[&AlertView<'_>]| {
            let delivery = match &written {
                Ok(()) => {
                    self.metrics.request("success", "");
                    Delivery::Delivered
                }
                Err(e) => Delivery::Retry { after: None, reason: e.clone() },
            };
            Sent { alerts: group.len(), delivery }
        };
        requests.iter().map(|(group, _)| sent(group)).collect()
    }

    fn request_size(&self) -> usize {
        self.encoder.request_size()
    }

    fn rate_limited(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ForwarderConfig;
    use mutt_core::Alert;

    fn alert(n: usize) -> AlertView<'static> {
        AlertView::from(Alert {
            hostname: format!("h{n}"),
            team_assignment: "NetOps".into(),
            severity: "Warning".into(),
            message_body: format!("m{n}"),
            raw_json: serde_json::json!({"hostname": format!("h{n}")}),
            correlation_id: "c".into(),
            event_id: format!("e{n}"),
            rule_id: None,
            handling: None,
        })
    }

    async fn sink(path: PathBuf, sync: bool) -> FileSink {
        let config = ForwarderConfig { format: crate::OutputFormat::Generic, ..ForwarderConfig::default() };
        let metrics = ForwarderMetrics::register(&mutt_service::Metrics::new());
        FileSink::open(path, Encoder::new(&config), sync, metrics).await.unwrap()
    }

    #[tokio::test]
    async fn written_lines_are_delivered_with_or_without_fsync() {
        let dir = tempfile::tempdir().unwrap();
        for sync in [true, false] {
            let path = dir.path().join(format!("a-{sync}.jsonl"));
            let s = sink(path.clone(), sync).await;
            let (a, b) = (alert(1), alert(2));
            let sent = s.deliver(&[&a, &b]).await;
            assert!(sent.iter().all(|s| s.delivery == Delivery::Delivered && s.alerts == 1), "{sent:?}");
            let text = std::fs::read_to_string(&path).unwrap();
            assert_eq!(text.lines().count(), 2, "{text}");
        }
    }

    #[tokio::test]
    async fn a_failed_write_is_not_acknowledged() {
        // /dev/full accepts the open and fails every write with ENOSPC, as a full disk does.
        let s = sink(PathBuf::from("/dev/full"), true).await;
        let (a, b) = (alert(1), alert(2));
        let sent = s.deliver(&[&a, &b]).await;
        assert_eq!(sent.len(), 2);
        for one in sent {
            let Delivery::Retry { reason, .. } = one.delivery else { panic!("acknowledged unwritten: {one:?}") };
            assert!(reason.contains("/dev/full"), "{reason}");
        }
    }

    #[tokio::test]
    async fn a_torn_line_does_not_swallow_the_next_batch() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.jsonl");
        let s = sink(path.clone(), false).await;
        {
            let mut f = s.file.lock().unwrap();
            f.file.write_all(br#"{"partial":"#).unwrap();
            f.torn = true;
        }
        let a = alert(1);
        assert_eq!(s.deliver(&[&a]).await[0].delivery, Delivery::Delivered);
        let text = std::fs::read_to_string(&path).unwrap();
        let whole: Vec<&str> = text.lines().filter(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()).collect();
        assert_eq!(whole.len(), 1, "the alert's line stays readable: {text}");
    }
}
