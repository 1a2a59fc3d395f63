//! `/unhandled`: the hosts and messages no rule matched, most frequent first, from what the
//! backends keep: the alerter's unhandled-event counters
//! ([`mutt_queue::Coordination::unhandled_counts`]: per host and message signature, the
//! events counted in the current window, and whether the threshold fired a meta-alert). Each
//! row links to the rules page's create form, pre-filled (`/rules/new?match_string=…`) with
//! the message when the backend kept one.

use super::audit::UiError;
use super::session::Session;
use super::{Page, render};
use crate::WebState;
use askama::Template;
use axum::Router;
use axum::extract::{Query, State};
use axum::response::Response;
use axum::routing::get;
use mutt_core::config_catalogue as catalogue;
use mutt_queue::UnhandledCount;
use serde::Deserialize;
use std::sync::Arc;

/// Rows shown at most.
const SHOWN: usize = 500;

pub(super) fn routes() -> Router<Arc<WebState>> {
    Router::new().route("/unhandled", get(list))
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Filter {
    /// Case-insensitive substring of the hostname.
    host: String,
}

/// One row: the counter and its "create a rule" link.
pub(super) struct Row {
    pub c: UnhandledCount,
    pub create_rule: String,
}

#[derive(Template)]
#[template(path = "unhandled.html")]
pub(super) struct UnhandledPage {
    pub page: Page,
    pub host: String,
    pub rows: Vec<Row>,
    /// The threshold and window in force (what "fired" means).
    pub threshold: String,
    pub expiry: String,
}

/// The rules page's create form, pre-filled for this message.
fn create_rule_link(c: &UnhandledCount) -> String {
    let mut q = form_urlencoded::Serializer::new(String::new());
    q.append_pair("match_type", "contains");
    if let Some(m) = c.message.as_deref() {
        q.append_pair("match_string", m);
        // The tester panel gets the example too, so the new rule can be tried at once.
        let event = serde_json::json!({"hostname": c.hostname, "message": m});
        q.append_pair("event_json", &event.to_string());
    }
    format!("/rules/new?{}", q.finish())
}

/// The value in force of an integer key (stored, else the catalogue's default).
async fn in_force(state: &WebState, key: catalogue::IntKey) -> String {
    let stored = state.coordination.config_values(&[key.key]).await.ok().and_then(|v| v.into_iter().next().flatten());
    stored.and_then(|v| key.parse(&v)).unwrap_or(key.default).to_string()
}

async fn list(
    State(state): State<Arc<WebState>>,
    session: Session,
    Query(f): Query<Filter>,
) -> Result<Response, UiError> {
    let host = f.host.trim().to_ascii_lowercase();
    let counts = state.coordination.unhandled_counts(SHOWN).await?;
    let rows = counts
        .into_iter()
        .filter(|c| host.is_empty() || c.hostname.to_ascii_lowercase().contains(&host))
        .map(|c| Row { create_rule: create_rule_link(&c), c })
        .collect();
    Ok(render(&UnhandledPage {
        page: session.page("Unhandled events", "/unhandled"),
        host: f.host,
        rows,
        threshold: in_force(&state, catalogue::UNHANDLED_THRESHOLD).await,
        expiry: in_force(&state, catalogue::UNHANDLED_EXPIRY_SECONDS).await,
    }))
}
