//! `muttd dlq …`: the dead-letter toolbox (list, show, replay, park, purge, export, trim) over
//! `mutt_queue::dlq`, the functions the management API exposes too. On the embedded backend
//! it works on the data file beside a running `muttd run`.

use crate::backend::connect_queue_view;
use crate::config::Config;
use crate::secrets::SecretSource;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use mutt_queue::dlq::{self, DeadLetterStore, Dlq, DlqEntry, End, MoveReport, Selection};
use std::path::PathBuf;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// Every DLQ (mutt:dlq:alerter, mutt:dlq:moog, mutt:dlq:dead) with its depth, the age of
    /// its oldest entry and its entries per reason.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Entries of one DLQ, a page at a time (newest first unless --oldest).
    Show {
        /// alerter, moog or dead.
        dlq: Dlq,
        #[command(flatten)]
        filter: Filter,
        /// Start from the entries that failed first.
        #[arg(long)]
        oldest: bool,
        /// Matching entries to skip (the next page: the offset printed at the end).
        #[arg(long, default_value_t = 0)]
        offset: u64,
        /// Entries per page.
        #[arg(long, default_value_t = 20)]
        page_size: u64,
        /// Also print each entry's message.
        #[arg(long)]
        full: bool,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Send entries back to the queue they came from (events to the ingest queue, alerts to
    /// the alert queue), DLQ fields and retry counters removed, _replay_count raised.
    Replay(MoveArgs),
    /// Move entries to mutt:dlq:dead (terminal until replayed from there).
    Park {
        #[command(flatten)]
        args: MoveArgs,
        /// Why, recorded in the entries (`_parked_reason`).
        #[arg(long, default_value = "parked by an operator")]
        why: String,
    },
    /// Delete entries for good (needs --yes).
    Purge {
        #[command(flatten)]
        args: MoveArgs,
        /// Confirm the deletion (required unless --dry-run).
        #[arg(long)]
        yes: bool,
    },
    /// Write entries as JSON lines (details and message), to a file or standard output.
    Export {
        dlq: Dlq,
        #[command(flatten)]
        filter: Filter,
        /// Newest first instead of oldest first.
        #[arg(long)]
        newest: bool,
        /// The file; default standard output.
        #[arg(long, short = 'o')]
        out: Option<PathBuf>,
    },
    /// Delete the entries of every DLQ that failed more than N days ago (by failed_at), as
    /// the remediation role does every hour with remediation.dlq_retention_days.
    Trim {
        /// Days kept [default: remediation.dlq_retention_days (RETENTION_DLQ_DAYS), 30].
        #[arg(long)]
        older_than_days: Option<u32>,
        /// Print what would be deleted; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Which entries: by id, reason, host, age. Without any, nothing is selected (see `--all`).
#[derive(Debug, Default, Args)]
pub struct Filter {
    /// An entry's id (or its first 6+ characters), as `muttd dlq show` prints it; repeatable.
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// The `_dlq_reason` (retries_exhausted, shed, rejected_by_receiver, worker_crashed, …).
    #[arg(long)]
    pub reason: Option<String>,
    /// The event's or alert's hostname.
    #[arg(long)]
    pub host: Option<String>,
    /// Only entries older than this: 90s, 30m, 12h, 7d.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub older_than: Option<u64>,
    /// Only entries at most this old: 90s, 30m, 12h, 7d.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub newer_than: Option<u64>,
    /// At most this many entries.
    #[arg(long)]
    pub limit: Option<u64>,
}

impl Filter {
    fn selection(&self) -> Selection {
        Selection {
            ids: self.ids.clone(),
            reason: self.reason.clone(),
            host: self.host.clone(),
            older_than_secs: self.older_than,
            newer_than_secs: self.newer_than,
            limit: self.limit,
        }
    }

    fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.reason.is_none()
            && self.host.is_none()
            && self.older_than.is_none()
            && self.newer_than.is_none()
            && self.limit.is_none()
    }
}

#[derive(Debug, Args)]
pub struct MoveArgs {
    /// alerter, moog or dead.
    pub dlq: Dlq,
    #[command(flatten)]
    pub filter: Filter,
    /// Every entry (required when no filter is given).
    #[arg(long)]
    pub all: bool,
    /// Print what would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

impl MoveArgs {
    fn selection(&self) -> Result<Selection> {
        if self.filter.is_empty() && !self.all {
            bail!("name the entries (--id, --reason, --host, --older-than, --newer-than, --limit) or pass --all");
        }
        Ok(self.filter.selection())
    }
}

/// `90`, `90s`, `30m`, `12h`, `7d` → seconds.
pub fn parse_age(text: &str) -> Result<u64, String> {
    let t = text.trim();
    let (digits, unit) = t.find(|c: char| !c.is_ascii_digit()).map_or((t, ""), |i| t.split_at(i));
    let n: u64 = digits.parse().map_err(|_| format!("{text:?} is not an age such as 90s, 30m, 12h or 7d"))?;
    let scale = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: the unit is s, m, h or d")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("{text:?} is too long"))
}

/// `3d 4h`, `12m`, `5s`: an age for a table.
fn age(secs: Option<u64>) -> String {
    let Some(s) = secs else { return "-".into() };
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m", s / 60),
        3600..86_400 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
    }
}

pub async fn run(config: &Config, secrets: &dyn SecretSource, cmd: &DlqCommand) -> Result<()> {
    let queue = connect_queue_view(config, secrets).await?;
    let store = queue.dead_letters();
    let s = store.as_ref();
    match cmd {
        DlqCommand::List { json } => list(s, *json).await,
        DlqCommand::Show { dlq, filter, oldest, offset, page_size, full, json } => {
            let end = if *oldest { End::Oldest } else { End::Newest };
            let page = dlq::show(s, *dlq, &filter.selection(), end, *offset, (*page_size).max(1)).await?;
            if *json {
                println!("{}", serde_json::to_string_pretty(&page)?);
                return Ok(());
            }
            print_page(&page, *full);
            Ok(())
        }
        DlqCommand::Replay(args) => {
            let sel = args.selection()?;
            moved(dlq::replay(s, args.dlq, &sel, args.dry_run, &*bar(s, args.dlq).await).await?, "replay");
            Ok(())
        }
        DlqCommand::Park { args, why } => {
            let sel = args.selection()?;
            let report = dlq::park(s, args.dlq, &sel, why, args.dry_run, &*bar(s, args.dlq).await).await?;
            moved(report, "park");
            Ok(())
        }
        DlqCommand::Purge { args, yes } => {
            let sel = args.selection()?;
            if !yes && !args.dry_run {
                bail!("purging deletes entries for good: add --yes (or --dry-run to see what would go)");
            }
            moved(dlq::purge(s, args.dlq, &sel, args.dry_run, &*bar(s, args.dlq).await).await?, "purge");
            Ok(())
        }
        DlqCommand::Export { dlq, filter, newest, out } => export(s, *dlq, filter, *newest, out.as_deref()).await,
        DlqCommand::Trim { older_than_days, dry_run } => {
            let days = older_than_days.unwrap_or(config.remediation.dlq_retention_days);
            if days == 0 {
                bail!("--older-than-days must be at least 1");
            }
            let progress = bar(s, Dlq::Alerter).await;
            for report in dlq::trim(s, days, *dry_run, &*progress).await? {
                moved(report, "trim");
            }
            Ok(())
        }
    }
}

async fn list(s: &dyn DeadLetterStore, json: bool) -> Result<()> {
    let list = dlq::list(s).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&list)?);
        return Ok(());
    }
    println!("{:<28} {:>9}  {:<9} REASONS", "DLQ", "ENTRIES", "OLDEST");
    for d in list {
        let reasons: Vec<String> = d.reasons.iter().map(|(r, n)| format!("{r}={n}")).collect();
        println!("{:<28} {:>9}  {:<9} {}", d.name, d.depth, age(d.oldest_age_secs), reasons.join(" "));
    }
    Ok(())
}

fn print_page(page: &dlq::Page, full: bool) {
    let order = if page.end == End::Newest { "newest first" } else { "oldest first" };
    let (first, last) = (page.offset + 1, page.offset + page.entries.len() as u64);
    println!("{}: {} entries, {order}; matching entries {first}-{last}", page.name, page.depth);
    println!("{:<16}  {:<8} {:<22} {:<24} {:>7}  ERROR", "ID", "AGE", "REASON", "HOST", "REPLAYS");
    for DlqEntry { info: i, message } in &page.entries {
        let error = i.error.as_deref().map(|e| mutt_core::text::truncate_utf8(e, 60)).unwrap_or("-");
        println!(
            "{:<16}  {:<8} {:<22} {:<24} {:>7}  {}",
            i.id,
            age(i.age_secs),
            i.reason.as_deref().unwrap_or("-"),
            i.hostname.as_deref().unwrap_or("-"),
            i.replay_count,
            error.replace('\n', " ")
        );
        if full {
            println!("    {message}");
        }
    }
    if page.entries.is_empty() {
        println!("(no matching entries)");
    }
    if page.more {
        println!("more: --offset {}", page.offset + page.entries.len() as u64);
    }
}

/// Prints what a move did (or would do).
fn moved(r: MoveReport, verb: &str) {
    let dlq = r.dlq.map(|d| d.as_str()).unwrap_or("-");
    let to: Vec<String> = r
        .moved
        .iter()
        .map(|(k, n)| if k == "deleted" { format!("{n} deleted") } else { format!("{n} to {k}") })
        .collect();
    let to = if to.is_empty() { "nothing".to_owned() } else { to.join(", ") };
    if r.dry_run {
        println!(
            "dry run, nothing changed: {verb} would take {} of {} entries of the {dlq} DLQ: {to}",
            r.total(),
            r.examined
        );
        for id in &r.ids {
            println!("  {id}");
        }
    } else {
        println!("{verb}: {} of {} entries of the {dlq} DLQ: {to}", r.total(), r.examined);
    }
    if r.not_replayable > 0 {
        println!("  {} matching entries hold no JSON object and were left (park or purge them)", r.not_replayable);
    }
    if r.gone > 0 {
        println!("  {} entries were taken by someone else meanwhile", r.gone);
    }
}

/// A progress bar on stderr (drawn only on a terminal, and only for a long run).
async fn bar(s: &dyn DeadLetterStore, dlq: Dlq) -> Arc<dyn Fn(u64, u64) + Send + Sync> {
    let depth = s.dlq_depth(dlq).await.unwrap_or(0);
    if depth < 1000 {
        return Arc::new(|_, _| {});
    }
    let bar = ProgressBar::new(depth).with_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {per_sec} eta {eta}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    bar.set_message("entries");
    Arc::new(move |done, total| {
        bar.set_length(total);
        bar.set_position(done);
        if done >= total {
            bar.finish_and_clear();
        }
    })
}

async fn export(
    s: &dyn DeadLetterStore,
    d: Dlq,
    filter: &Filter,
    newest: bool,
    out: Option<&std::path::Path>,
) -> Result<()> {
    let end = if newest { End::Newest } else { End::Oldest };
    let sel = filter.selection();
    let Some(path) = out else {
        dlq::export_jsonl(s, d, &sel, end, &mut std::io::stdout()).await?;
        return Ok(());
    };
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut w = std::io::BufWriter::new(file);
    let n = dlq::export_jsonl(s, d, &sel, end, &mut w).await?;
    std::io::Write::flush(&mut w).with_context(|| format!("writing {}", path.display()))?;
    eprintln!("exported {n} entries of the {d} DLQ to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_and_print() {
        assert_eq!(parse_age("90"), Ok(90));
        assert_eq!(parse_age("30m"), Ok(1800));
        assert_eq!(parse_age("12h"), Ok(43_200));
        assert_eq!(parse_age("7d"), Ok(604_800));
        assert!(parse_age("7w").is_err() && parse_age("d").is_err() && parse_age("").is_err());
        assert_eq!(
            (age(Some(5)), age(Some(125)), age(Some(3 * 86_400 + 4 * 3600)), age(None)),
            ("5s".into(), "2m".into(), "3d 4h".into(), "-".into())
        );
    }
}
