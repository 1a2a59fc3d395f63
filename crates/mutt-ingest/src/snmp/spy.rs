//! Per-source reports of the datagrams async-snmp refuses before MUTT's hook sees them:
//! failed v3 USM checks and malformed datagrams.
//!
//! async-snmp counts USM failures (usmStats, read by the listener) but tells the application
//! nothing per datagram; its receive loop only logs each refusal, with the source, at warn
//! under target `async_snmp::notification` (muttd filters that target to error). This
//! subscriber wraps the receive future only (`WithSubscriber`): it picks those two events out
//! for the listener (logged once a minute per source, malformed ones counted) and hands
//! everything to the dispatcher that was current when the listener started.

use super::state::ListenerState;
use std::fmt::Debug;
use std::net::SocketAddr;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::subscriber::Interest;
use tracing::{Dispatch, Event, Metadata, Subscriber, span};

const TARGET: &str = "async_snmp::notification";

pub(super) struct Spy {
    inner: Dispatch,
    state: Arc<ListenerState>,
}

impl Spy {
    /// A dispatcher for the receive future, forwarding to the current one.
    pub fn dispatch(state: Arc<ListenerState>) -> Dispatch {
        let inner = tracing::dispatcher::get_default(Dispatch::clone);
        Dispatch::new(Self { inner, state })
    }
}

/// A refusal event: the USM failure line (field `snmp.failure`) or the receive loop's
/// "failed to parse notification" (fields `snmp.source` and `error`).
fn is_refusal(meta: &Metadata<'_>) -> bool {
    meta.is_event()
        && meta.target() == TARGET
        && *meta.level() == tracing::Level::WARN
        && meta.fields().field("snmp.source").is_some()
        && (meta.fields().field("snmp.failure").is_some() || meta.fields().field("error").is_some())
}

#[derive(Default)]
struct Fields {
    source: Option<SocketAddr>,
    failure: Option<String>,
    error: Option<String>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn Debug) {
        match field.name() {
            "snmp.source" => self.source = format!("{value:?}").parse().ok(),
            "snmp.failure" => self.failure = Some(format!("{value:?}")),
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }
}

impl Spy {
    fn refusal(&self, event: &Event<'_>) {
        let mut f = Fields::default();
        event.record(&mut f);
        let Some(source) = f.source else { return };
        match (f.failure, f.error) {
            // Every v3 inform sender's engine discovery: not a failure.
            (Some(failure), _) if failure == "UnknownEngineIds" => {}
            (Some(failure), _) => self.state.usm_failure_from(source.ip(), &failure),
            // Already reported by the USM line (or a stale trap sender's clock).
            (None, Some(error)) if error.starts_with("authentication failed") => {
                self.state.usm_failure_from(source.ip(), "NotInTimeWindows")
            }
            (None, Some(error)) => self.state.malformed_from(source.ip(), &error),
            (None, None) => {}
        }
    }
}

impl Subscriber for Spy {
    fn register_callsite(&self, meta: &'static Metadata<'static>) -> Interest {
        if is_refusal(meta) { Interest::always() } else { self.inner.register_callsite(meta) }
    }

    fn enabled(&self, meta: &Metadata<'_>) -> bool {
        is_refusal(meta) || self.inner.enabled(meta)
    }

    /// The refusals are warnings: they must pass tracing's global level check even when the
    /// log level is `error` (the wrapped dispatcher's own hint counts beside this one).
    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        Some(tracing::level_filters::LevelFilter::WARN)
    }

    fn new_span(&self, span: &span::Attributes<'_>) -> span::Id {
        self.inner.new_span(span)
    }

    fn record(&self, span: &span::Id, values: &span::Record<'_>) {
        self.inner.record(span, values)
    }

    fn record_follows_from(&self, span: &span::Id, follows: &span::Id) {
        self.inner.record_follows_from(span, follows)
    }

    fn event(&self, event: &Event<'_>) {
        if is_refusal(event.metadata()) {
            self.refusal(event);
        }
        if self.inner.enabled(event.metadata()) {
            self.inner.event(event);
        }
    }

    fn enter(&self, span: &span::Id) {
        self.inner.enter(span)
    }

    fn exit(&self, span: &span::Id) {
        self.inner.exit(span)
    }

    fn clone_span(&self, id: &span::Id) -> span::Id {
        self.inner.clone_span(id)
    }

    fn try_close(&self, id: span::Id) -> bool {
        self.inner.try_close(id)
    }

    // `current_span` keeps its default (unknown): its type is not re-exported by `tracing`,
    // and the wrapped code does not ask for it (its spans' parents come from the registry).
}
