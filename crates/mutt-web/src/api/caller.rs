//! Who made a request and under which correlation id: what every mutation's config-audit row
//! records, and how a change is announced to the alerters.

use super::version::CorrelationId;
use crate::WebState;
use crate::auth::{KeyName, changed_by};
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use mutt_store::ConfigChange;
use std::convert::Infallible;

/// The caller of a request (an extractor).
#[derive(Clone, Debug)]
pub struct Caller {
    /// `webui_api:<key name>`.
    pub changed_by: String,
    pub correlation_id: Option<String>,
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Infallible> {
        let key = parts.extensions.get::<KeyName>().cloned().unwrap_or_else(|| KeyName("default".into()));
        Ok(Self {
            changed_by: changed_by(&key),
            correlation_id: parts.extensions.get::<CorrelationId>().map(|c| c.0.clone()),
        })
    }
}

/// What changed, for [`Caller::record`].
pub struct Change<'a> {
    pub operation: &'a str,
    pub table_name: &'a str,
    pub record_id: i32,
    pub old_values: Option<serde_json::Value>,
    pub new_values: Option<serde_json::Value>,
    pub reason: Option<String>,
}

impl Caller {
    /// Writes the config-audit row of a change that has been made. Best effort, as in the
    /// original: the change stands even when its row cannot be written (logged).
    pub async fn record(&self, state: &WebState, c: Change<'_>) {
        let row = ConfigChange {
            changed_by: self.changed_by.clone(),
            operation: c.operation.to_owned(),
            table_name: c.table_name.to_owned(),
            record_id: c.record_id,
            old_values: c.old_values,
            new_values: c.new_values,
            reason: c.reason,
            correlation_id: self.correlation_id.clone(),
        };
        if let Err(e) = state.store.record_config_change(&row).await {
            tracing::warn!(error = %e, table = c.table_name, "a change was made but its config-audit row was not written");
        }
    }

    /// [`Caller::record`] of a change to rules, hosts or teams, then tells the alerters to
    /// reload (they also notice by the rules version within their reload interval).
    pub async fn record_rules_change(&self, state: &WebState, c: Change<'_>) {
        self.record(state, c).await;
        self.announce(state).await;
    }

    /// Tells the alerters to reload their rules (once after a batch of [`Caller::record`]s,
    /// as a CSV import does; best effort: they also notice by the rules version).
    pub async fn announce(&self, state: &WebState) {
        if let Err(e) = state.coordination.publish_rules_changed().await {
            tracing::warn!(error = %e, "could not tell the alerters to reload their rules");
        }
    }
}

/// The record id of a hostname-keyed row (development hosts, device teams): the stable hash
/// the dynamic configuration uses (spec §6.11 [ADD]).
pub fn host_record_id(hostname: &str) -> i32 {
    ConfigChange::dynamic_config_record_id(hostname)
}
