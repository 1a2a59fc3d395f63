//! `muttd config get|set|delete|list|history`: dynamic configuration (`mutt:config:<key>` on
//! Redis, the `dynamic_config` table of the embedded file), checked against
//! [`mutt_core::config_catalogue`]; every change is recorded in `config_audit_log` with the old
//! and the new value and who made it (`muttd-cli:<OS user>`).

use crate::backend::{connect_queue_view, connect_store_admin};
use crate::cli::ConfigCommand;
use crate::config::Config;
use crate::secrets::SecretSource;
use anyhow::{Result, bail};
use mutt_core::config_catalogue::{self as catalogue, ConfigValueError, Entry, Source};
use mutt_queue::Coordination;
use mutt_store::ConfigChange;
use std::collections::BTreeMap;
use std::fmt::Write as _;

pub async fn run(config: &Config, secrets: &dyn SecretSource, cmd: &ConfigCommand) -> Result<()> {
    match cmd {
        ConfigCommand::Get { key } => {
            let queue = connect_queue_view(config, secrets).await?;
            match queue.config_values(&[key.as_str()]).await?.pop().flatten() {
                Some(v) => emit(&format!("{key} = {v}\n"))?,
                None => bail!("{key} is not set"),
            }
        }
        ConfigCommand::Set { key, value, reason, force } => set(config, secrets, key, value, reason, *force).await?,
        ConfigCommand::Delete { key, reason } => delete(config, secrets, key, reason).await?,
        ConfigCommand::List { json } => list(config, secrets, *json).await?,
        ConfigCommand::History { limit } => history(config, secrets, *limit).await?,
        ConfigCommand::Show { json } => super::show::run(config, secrets, *json)?,
    }
    Ok(())
}

/// Who makes a change from the command line: the OS user, as the original's CLI recorded it.
/// Under sudo, the person who ran it (`alice via sudo`); without any user variable (a
/// service, a cron job), the numeric uid.
pub fn cli_actor() -> String {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    let user = match (var("SUDO_USER"), var("USER").or_else(|| var("LOGNAME"))) {
        (Some(sudoer), Some(user)) if sudoer != user => format!("{sudoer} via sudo"),
        (_, Some(user)) => user,
        (Some(sudoer), None) => format!("{sudoer} via sudo"),
        (None, None) => uid().map(|u| format!("uid {u}")).unwrap_or_else(|| "unknown".into()),
    };
    mutt_core::text::truncate_utf8(&format!("muttd-cli:{user}"), 100).to_owned()
}

/// The real uid of this process (Linux `/proc`).
fn uid() -> Option<String> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(1).map(str::to_owned)
}

async fn record(config: &Config, secrets: &dyn SecretSource, change: &ConfigChange) {
    // The change is made; a failed audit write is reported, not undone (as the original).
    let written = match connect_store_admin(config, secrets).await {
        Ok(store) => store.as_dyn().record_config_change(change).await.map_err(anyhow::Error::from),
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        eprintln!("muttd: the change was made but could not be recorded in config_audit_log: {e:#}");
    }
}

/// The stored values of every catalogue key (for the partner checks and the listing).
async fn stored_catalogue_values(queue: &dyn Coordination) -> Result<BTreeMap<String, String>> {
    let keys: Vec<&str> = catalogue::catalogue().iter().map(|s| s.key.as_ref()).collect();
    let values = queue.config_values(&keys).await?;
    Ok(keys.into_iter().zip(values).filter_map(|(k, v)| Some((k.to_owned(), v?))).collect())
}

async fn set(
    config: &Config,
    secrets: &dyn SecretSource,
    key: &str,
    value: &str,
    reason: &Option<String>,
    force: bool,
) -> Result<()> {
    if key.is_empty() || key.contains(char::is_whitespace) {
        bail!("a configuration key is one word, e.g. moog_rate_limit");
    }
    let queue = connect_queue_view(config, secrets).await?;
    let stored = stored_catalogue_values(queue.as_ref()).await?;
    let value = match catalogue::validate(key, value, |k| stored.get(k).cloned()) {
        Ok(canonical) => canonical,
        Err(e) if force => {
            eprintln!("muttd: {e}; set anyway (--force)");
            value.to_owned()
        }
        Err(e @ ConfigValueError::Unknown { .. }) => {
            bail!("{e}; `muttd config list` shows the known keys, --force sets it anyway")
        }
        Err(e) => bail!("{e}"),
    };
    let old = queue.set_config_value(key, &value).await?;
    // Recorded before anything is printed: a closed stdout must not skip the audit.
    record(
        config,
        secrets,
        &ConfigChange::dynamic_config(key, old.as_deref(), Some(&value), &cli_actor(), reason.as_deref()),
    )
    .await;
    emit(&format!("{key}: {} -> {value}\n", old.as_deref().unwrap_or("(unset)")))
}

async fn delete(config: &Config, secrets: &dyn SecretSource, key: &str, reason: &Option<String>) -> Result<()> {
    let queue = connect_queue_view(config, secrets).await?;
    let Some(old) = queue.delete_config_value(key).await? else {
        return emit(&format!("{key} was not set; nothing to do\n"));
    };
    let restored = static_values(config)
        .into_iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, v, _)| v)
        .or_else(|| catalogue::lookup(key).map(|s| s.default.clone()));
    record(config, secrets, &ConfigChange::dynamic_config(key, Some(&old), None, &cli_actor(), reason.as_deref()))
        .await;
    match restored {
        Some(d) => emit(&format!("{key}: {old} -> (default) {d}\n")),
        None => emit(&format!("{key}: {old} -> (unset)\n")),
    }
}

/// The keys with a static counterpart in muttd's configuration: (key, value in the
/// configuration, whether it differs from muttd's default). A dynamic value overrides it; a
/// deleted one falls back to it.
pub fn static_values(config: &Config) -> Vec<(&'static str, String, bool)> {
    use catalogue as c;
    let pairs = |cfg: &Config| -> Vec<(&'static str, String)> {
        let (i, a, f, r) = (&cfg.ingestor, &cfg.alerter, &cfg.forwarder, &cfg.retention);
        vec![
            (c::MAX_INGEST_QUEUE_SIZE.key, i.max_queue_size.to_string()),
            (c::INGEST_MAX_RATE.key, i.max_rate.to_string()),
            (c::INGEST_RATE_WINDOW.key, i.rate_window_secs.to_string()),
            (c::CACHE_RELOAD_INTERVAL.key, a.cache_reload_interval_secs.to_string()),
            (c::UNHANDLED_THRESHOLD.key, a.unhandled_threshold.to_string()),
            (c::UNHANDLED_EXPIRY_SECONDS.key, a.unhandled_expiry_secs.to_string()),
            (c::MOOG_RATE_LIMIT.key, f.rate_limit.to_string()),
            (c::MOOG_RATE_PERIOD.key, f.rate_period_secs.to_string()),
            (c::CIRCUIT_BREAKER_THRESHOLD.key, f.circuit_breaker_threshold.to_string()),
            (c::CIRCUIT_BREAKER_TIMEOUT.key, f.circuit_breaker_timeout_secs.to_string()),
            (c::EVENT_RETENTION_DAYS.key, r.event_audit_days.to_string()),
            (c::CONFIG_AUDIT_RETENTION_DAYS.key, r.config_audit_days.to_string()),
            (c::RETENTION_ENFORCEMENT_ENABLED.key, r.enabled.to_string()),
            (c::REMEDIATION_INTERVAL.key, cfg.remediation.interval_secs.to_string()),
            (c::REMEDIATION_BATCH_SIZE.key, cfg.remediation.batch_size.to_string()),
            (c::MAX_POISON_RETRIES.key, cfg.remediation.max_poison_retries.to_string()),
            // Unset: no archive (the catalogue's 7 years applies once archiving is on).
            (c::EVENT_ARCHIVE_RETENTION_YEARS.key, r.archive_years.map(|y| y.to_string()).unwrap_or_default()),
        ]
    };
    let defaults = pairs(&Config::default());
    pairs(config)
        .into_iter()
        .zip(defaults)
        .filter(|((_, v), _)| !v.is_empty())
        .map(|((k, v), (_, d))| (k, v.clone(), v != d))
        .collect()
}

/// The listing: catalogue keys with their value in force, then other keys set.
pub async fn entries(config: &Config, queue: &dyn Coordination) -> Result<Vec<Entry>> {
    let mut stored = stored_catalogue_values(queue).await?;
    match queue.config_entries().await {
        Ok(all) => stored.extend(all),
        Err(e) => eprintln!("muttd: only the catalogue's keys are shown: {e}"),
    }
    let statics = static_values(config);
    Ok(catalogue::listing(&stored, |k| {
        statics.iter().find(|(key, _, _)| *key == k).map(|(_, v, changed)| (v.clone(), *changed))
    }))
}

async fn list(config: &Config, secrets: &dyn SecretSource, json: bool) -> Result<()> {
    let queue = connect_queue_view(config, secrets).await?;
    let entries = entries(config, queue.as_ref()).await?;
    if json {
        return emit(&format!("{}\n", serde_json::to_string_pretty(&entries)?));
    }
    let mut out = format!("{:<46} {:>12} {:>12}  {:<15} {:<12} RANGE\n", "KEY", "VALUE", "DEFAULT", "SOURCE", "READER");
    for e in entries {
        let source = match e.source {
            Source::Dynamic => "dynamic".to_owned(),
            Source::DynamicInvalid => format!("invalid {:?}", e.stored.unwrap_or_default()),
            Source::Config => "muttd config".into(),
            Source::Default => "default".into(),
            Source::Unknown => "dynamic, unknown".into(),
        };
        let _ = writeln!(
            out,
            "{:<46} {:>12} {:>12}  {:<15} {:<12} {}",
            e.key,
            e.value,
            e.default.as_deref().unwrap_or("-"),
            source,
            e.reader.map(|r| r.as_str()).unwrap_or("-"),
            e.range.as_deref().unwrap_or("-")
        );
    }
    emit(&out)
}

async fn history(config: &Config, secrets: &dyn SecretSource, limit: u32) -> Result<()> {
    let store = connect_store_admin(config, secrets).await?.as_dyn();
    let mut out = String::new();
    for row in store.config_changes("dynamic_config", limit.clamp(1, 1000)).await? {
        let value = |v: &Option<serde_json::Value>| {
            v.as_ref().and_then(|v| v.get("value")).map(|v| v.to_string()).unwrap_or_else(|| "-".into())
        };
        let key = row
            .change
            .new_values
            .as_ref()
            .or(row.change.old_values.as_ref())
            .and_then(|v| v.get("key"))
            .and_then(|k| k.as_str())
            .unwrap_or("?")
            .to_owned();
        let _ = writeln!(
            out,
            "{} {:<6} {:<28} {} -> {}  by {}{}",
            row.changed_at,
            row.change.operation,
            key,
            value(&row.change.old_values),
            value(&row.change.new_values),
            row.change.changed_by,
            row.change.reason.map(|r| format!(" ({r})")).unwrap_or_default()
        );
    }
    emit(&out)
}

/// Writes `text` to stdout; a reader that went away (`| head`) ends the output quietly
/// instead of failing.
pub fn emit(text: &str) -> Result<()> {
    use std::io::Write;
    let mut stdout = std::io::stdout().lock();
    match stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}
