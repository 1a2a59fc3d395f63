//! MUTT domain: the types every role shares, with no I/O.
//!
//! Layout (the path an event takes):
//! - [`event`]: an ingested event (a JSON object) and the reserved fields MUTT adds to it.
//! - [`rule`]: alert rules, development hosts, device teams and the first-match decision procedure;
//!   [`rule::draft`] parses a rule someone wrote, [`rule::tester`] explains a decision.
//! - [`decision`]: what the alerter does with one event (handled for prod/dev, or unhandled).
//! - [`alert`]: the message the alerter puts on the alert queue for the forwarder.
//! - [`names`]: validated names (pod names) that end up inside Redis keys.
//! - [`secret`]: a string wrapper that never prints its value.
//! - [`config_catalogue`]: every dynamic-configuration key with its type, default, range and
//!   reader, and the validation of a new value; [`slo`]: the SLO definitions and arithmetic.

pub mod alert;
pub mod config_catalogue;
pub mod credentials;
pub mod decision;
pub mod event;
pub mod json_check;
pub mod names;
pub mod normalize;
pub mod queued_event;
pub mod rule;
pub mod secret;
pub mod silence;
pub mod slo;
pub mod text;

pub use alert::Alert;
pub use decision::{Decision, HostEnvironment, decide};
pub use event::{Event, EventError, EventFields, EventId};
pub use names::PodName;
pub use queued_event::QueuedEvent;
pub use rule::{MatchType, Rule, RuleDraft, RuleError, RuleSet, RuleSnapshot, ValidRule, decision_forwards};
pub use secret::Secret;
