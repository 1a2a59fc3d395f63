//! `muttd silence add|list|expire`: silences and weekly maintenance windows
//! ([`mutt_core::silence`]) in the store, the functions the management API uses too. Every
//! change writes a config-audit row (`silences`, by `muttd-cli:<OS user>`) and asks running
//! alerters to reload (they also reload every 5 s).

use crate::backend::{connect_queue_view, connect_store_admin};
use crate::commands::config::cli_actor;
use crate::config::Config;
use crate::secrets::SecretSource;
use anyhow::{Context, Result, bail};
use chrono::{DateTime, Duration, SecondsFormat, Utc, Weekday};
use clap::{Args, Subcommand};
use mutt_core::silence::{Matcher, NewSilence, SilenceView, WeeklyWindow};
use mutt_store::ConfigChange;
use mutt_store::silences::{Expiry, SilenceFilter};

#[derive(Debug, Subcommand)]
pub enum SilenceCommand {
    /// Create a silence: matching handled events are audited (with silenced_by) and not
    /// forwarded. With --days/--at a weekly maintenance window.
    Add(Box<AddArgs>),
    /// Silences and windows: active (the default; pending ones included), expired or all.
    List {
        /// active, expired or all.
        #[arg(long, default_value = "active")]
        state: String,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// End a silence now (it is kept, with who ended it and when).
    Expire {
        id: i64,
        /// Print JSON instead of a line.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Hostname, exact or a glob with * and ? (case-insensitive).
    #[arg(long)]
    host: Option<String>,
    /// Id of the rule that handled the event.
    #[arg(long)]
    rule_id: Option<i32>,
    /// The handling rule's team_assignment.
    #[arg(long)]
    team: Option<String>,
    /// Case-insensitive substring of the message.
    #[arg(long)]
    message: Option<String>,
    /// Case-insensitive regex searched in the message.
    #[arg(long)]
    message_regex: Option<String>,
    /// Trap OID prefix (on arc boundaries).
    #[arg(long)]
    trap_oid: Option<String>,
    /// Start, RFC 3339 (default: now).
    #[arg(long)]
    starts_at: Option<DateTime<Utc>>,
    /// End, RFC 3339 (or --duration; optional for a window).
    #[arg(long, conflicts_with = "duration")]
    ends_at: Option<DateTime<Utc>>,
    /// Length from the start: 90m, 2h, 1d, 1h30m.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Window days, comma-separated (sun,sat); makes this a weekly maintenance window.
    #[arg(long, value_delimiter = ',', requires_all = ["at", "for_", "tz"])]
    days: Vec<Weekday>,
    /// Window start, local HH:MM.
    #[arg(long, requires = "days")]
    at: Option<String>,
    /// Window length: 2h, 90m.
    #[arg(long = "for", id = "for_", value_parser = parse_duration, requires = "days")]
    for_: Option<Duration>,
    /// Window time zone (IANA, e.g. Europe/Berlin).
    #[arg(long, requires = "days")]
    tz: Option<String>,
    /// Why (required).
    #[arg(long)]
    comment: String,
    /// Who asks for it (default: muttd-cli:<OS user>).
    #[arg(long)]
    created_by: Option<String>,
    /// Print JSON instead of a line.
    #[arg(long)]
    json: bool,
}

/// `1h30m`, `90m`, `2h`, `1d`, `45s`, `1w`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let (mut total, mut digits) = (Duration::zero(), String::new());
    for c in s.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: i64 = digits.parse().map_err(|_| format!("{s:?}: expected a number before {c:?}"))?;
        total += match c {
            's' => Duration::seconds(n),
            'm' => Duration::minutes(n),
            'h' => Duration::hours(n),
            'd' => Duration::days(n),
            'w' => Duration::weeks(n),
            _ => return Err(format!("{s:?}: unknown unit {c:?} (s, m, h, d, w)")),
        };
        digits.clear();
    }
    if !digits.is_empty() || total <= Duration::zero() {
        return Err(format!("{s:?}: expected a length such as 90m, 2h or 1h30m"));
    }
    Ok(total)
}

impl AddArgs {
    fn silence(&self, now: DateTime<Utc>) -> Result<NewSilence> {
        let starts_at = self.starts_at.unwrap_or(now);
        let window = match (&self.at, self.for_, &self.tz) {
            (Some(at), Some(length), Some(tz)) => Some(WeeklyWindow {
                days: self.days.clone(),
                start: at.clone(),
                duration_minutes: u32::try_from(length.num_minutes()).context("--for is too long")?,
                time_zone: tz.clone(),
            }),
            _ => None,
        };
        let ends_at = self.ends_at.or(self.duration.map(|d| starts_at + d));
        if ends_at.is_none() && window.is_none() {
            bail!("say how long: --duration or --ends-at (or --days/--at/--for/--tz for a weekly window)");
        }
        Ok(NewSilence {
            matcher: Matcher {
                host: self.host.clone(),
                rule_id: self.rule_id,
                team: self.team.clone(),
                message_contains: self.message.clone(),
                message_regex: self.message_regex.clone(),
                trap_oid_prefix: self.trap_oid.clone(),
            },
            starts_at,
            ends_at,
            window,
            created_by: self.created_by.clone().unwrap_or_else(cli_actor),
            comment: self.comment.clone(),
        })
    }
}

pub async fn run(config: &Config, secrets: &dyn SecretSource, cmd: &SilenceCommand) -> Result<()> {
    let backend = connect_store_admin(config, secrets).await?;
    let store = backend.as_dyn();
    let now = Utc::now();
    match cmd {
        SilenceCommand::Add(args) => {
            let silence = args.silence(now)?;
            silence.validate()?;
            let id = store.create_silence(&silence).await?;
            let stored = store.get_silence(id).await?.context("the new silence is not there")?;
            let change = change("CREATE", id, None, Some(serde_json::json!(stored)));
            record_and_announce(config, secrets, store.as_ref(), &change, args.json).await;
            print_one(&SilenceView::at(stored, now), args.json, "created")?;
        }
        SilenceCommand::List { state, json } => {
            let filter: SilenceFilter = state.parse().map_err(anyhow::Error::msg)?;
            let views: Vec<SilenceView> =
                store.list_silences(filter, now).await?.into_iter().map(|s| SilenceView::at(s, now)).collect();
            if *json {
                println!("{}", serde_json::to_string_pretty(&views)?);
            } else {
                print_table(&views);
            }
        }
        SilenceCommand::Expire { id, json } => match store.expire_silence(*id, &cli_actor(), now).await? {
            Expiry::Expired(s) => {
                let new = serde_json::json!({"expired_at": s.expired_at, "expired_by": s.expired_by});
                let change = change("UPDATE", *id, Some(serde_json::json!({"expired_at": null})), Some(new));
                record_and_announce(config, secrets, store.as_ref(), &change, *json).await;
                print_one(&SilenceView::at(s, now), *json, "expired")?;
            }
            Expiry::AlreadyExpired(s) => {
                bail!("silence {id} has already ended ({})", when(s.effective_end()))
            }
            Expiry::NotFound => bail!("no silence {id}"),
        },
    }
    Ok(())
}

fn change(operation: &str, id: i64, old: Option<serde_json::Value>, new: Option<serde_json::Value>) -> ConfigChange {
    ConfigChange {
        changed_by: cli_actor(),
        operation: operation.into(),
        table_name: "silences".into(),
        record_id: i32::try_from(id).unwrap_or(i32::MAX),
        old_values: old,
        new_values: new,
        reason: None,
        correlation_id: None,
    }
}

/// The config-audit row (reported, not undone, when it fails) and the alerters' reload.
async fn record_and_announce(
    config: &Config,
    secrets: &dyn SecretSource,
    store: &dyn mutt_store::Store,
    change: &ConfigChange,
    quiet: bool,
) {
    if let Err(e) = store.record_config_change(change).await {
        eprintln!("muttd: the change was made but could not be recorded in config_audit_log: {e:#}");
    }
    let note = match connect_queue_view(config, secrets).await {
        Ok(q) => match q.publish_rules_changed().await {
            Ok(Some(n)) => format!("asked running alerters to reload ({n} listening)"),
            Ok(None) => "a running `muttd run` picks it up within 5 s".to_owned(),
            Err(e) => format!("could not ask alerters to reload ({e}); they reload within 5 s"),
        },
        Err(e) => format!("could not reach the queue ({e:#}); alerters reload within 5 s"),
    };
    if !quiet {
        eprintln!("{note}");
    }
}

fn when(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_else(|| "open".into())
}

/// `host=core-* rule=4 message~"link down"`.
fn matcher_text(m: &Matcher) -> String {
    let mut parts = Vec::new();
    let mut add = |k: &str, v: &Option<String>| {
        if let Some(v) = v.as_deref().filter(|v| !v.is_empty()) {
            parts.push(format!("{k}{v}"));
        }
    };
    add("host=", &m.host);
    add("rule=", &m.rule_id.map(|r| r.to_string()));
    add("team=", &m.team);
    add("message~", &m.message_contains.as_ref().map(|v| format!("{v:?}")));
    add("regex~", &m.message_regex.as_ref().map(|v| format!("/{v}/")));
    add("oid=", &m.trap_oid_prefix.as_ref().map(|v| format!("{v}.*")));
    parts.join(" ")
}

/// One-off: `start .. end`; a window: `Sun 02:00–04:00 Europe/Berlin, next <start>[, until <end>]`;
/// then `, expired <time> by <who>` for an early end.
fn schedule_text(v: &SilenceView) -> String {
    let s = &v.silence;
    let mut text = match &s.spec.window {
        None => format!("{} .. {}", when(Some(s.spec.starts_at)), when(s.spec.ends_at)),
        Some(w) => {
            let mut text = w.describe();
            if let Some(next) = v.next_start {
                text.push_str(&format!(", next {}", when(Some(next))));
            }
            if let Some(end) = s.spec.ends_at {
                text.push_str(&format!(", until {}", when(Some(end))));
            }
            text
        }
    };
    if let Some(at) = s.expired_at {
        text.push_str(&format!(", expired {} by {}", when(Some(at)), s.expired_by.as_deref().unwrap_or("?")));
    }
    text
}

fn print_one(v: &SilenceView, json: bool, what: &str) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
        return Ok(());
    }
    let s = &v.silence;
    let effect = if v.in_effect { ", in effect now" } else { "" };
    let (matcher, schedule, state) = (matcher_text(&s.spec.matcher), schedule_text(v), v.state.as_str());
    println!("silence {} {what}: {matcher} | {schedule} | {state}{effect}", s.id);
    Ok(())
}

fn print_table(views: &[SilenceView]) {
    if views.is_empty() {
        println!("no silences");
        return;
    }
    let rows: Vec<[String; 7]> = views
        .iter()
        .map(|v| {
            let s = &v.silence;
            [
                s.id.to_string(),
                v.state.as_str().to_owned(),
                if v.in_effect { "yes" } else { "-" }.to_owned(),
                matcher_text(&s.spec.matcher),
                schedule_text(v),
                s.spec.created_by.clone(),
                s.spec.comment.clone(),
            ]
        })
        .collect();
    let head = ["id", "state", "now", "matcher", "when", "created by", "comment"].map(str::to_owned);
    let mut widths = head.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&head).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        println!("{}", cells.join("  ").trim_end());
    }
}

#[cfg(test)]
mod tests {
    use super::parse_duration;
    use chrono::Duration;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::minutes(90)));
        assert_eq!(parse_duration("2d"), Ok(Duration::days(2)));
        assert!(parse_duration("2").is_err());
        assert!(parse_duration("h").is_err());
        assert!(parse_duration("0m").is_err());
        assert!(parse_duration("3y").is_err());
    }
}
