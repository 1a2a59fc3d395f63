//! The toolbox's operations, written once over [`DeadLetterStore`]: list, show, replay, park,
//! purge, export, trim, and [`apply`], the loop they (and the remediation role) share.
//!
//! Every operation walks a DLQ in pages from one end. Moves go chunk by chunk through
//! [`DeadLetterStore::dlq_take`], which removes exactly the bytes read and pushes their new
//! form only if they were still there; an entry another actor took meanwhile is counted as
//! `gone`, never moved twice. A pass visits at most the entries that were there when it
//! began, so entries that fail again during a long replay (and come back at the newest end)
//! wait for the next pass instead of looping.

use super::entry::DlqEntry;
use super::{DeadLetterStore, Dlq, End, Move, RawEntry, Target};
use crate::QueueError;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::ops::ControlFlow;

/// Entries read per page.
const PAGE: u64 = 500;

/// Called with (done, total) as a long operation advances (the CLI draws a progress bar).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

/// Which entries an operation applies to. The default selects every entry.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Selection {
    /// Entry ids (or prefixes of at least 6 characters); empty: any entry.
    pub ids: Vec<String>,
    /// `_dlq_reason` (e.g. `retries_exhausted`, `shed`, `rejected_by_receiver`).
    pub reason: Option<String>,
    /// The event's or alert's hostname (case-insensitive).
    pub host: Option<String>,
    /// Only entries that failed more than this many seconds ago.
    pub older_than_secs: Option<u64>,
    /// Only entries that failed at most this many seconds ago.
    pub newer_than_secs: Option<u64>,
    /// At most this many entries.
    pub limit: Option<u64>,
}

impl Selection {
    /// Every entry.
    pub fn all() -> Self {
        Self::default()
    }

    /// One entry by id.
    pub fn id(id: impl Into<String>) -> Self {
        Self { ids: vec![id.into()], ..Self::default() }
    }

    /// Whether an entry passes the filters (the limit is the caller's to count).
    pub fn matches(&self, e: &DlqEntry) -> bool {
        let i = &e.info;
        let id_ok = self.ids.is_empty()
            || self.ids.iter().any(|want| i.id == *want || (want.len() >= 6 && i.id.starts_with(want)));
        let reason_ok = self.reason.as_ref().is_none_or(|r| i.reason.as_deref() == Some(r.as_str()));
        let host_ok =
            self.host.as_ref().is_none_or(|h| i.hostname.as_deref().is_some_and(|x| x.eq_ignore_ascii_case(h)));
        let older_ok = self.older_than_secs.is_none_or(|s| i.age_secs.is_some_and(|a| a > s));
        let newer_ok = self.newer_than_secs.is_none_or(|s| i.age_secs.is_some_and(|a| a <= s));
        id_ok && reason_ok && host_ok && older_ok && newer_ok
    }
}

/// One DLQ at a glance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DlqSummary {
    pub dlq: Dlq,
    /// The key (`mutt:dlq:alerter`).
    pub name: String,
    pub depth: u64,
    /// Age of the entry that failed longest ago (by `failed_at`, else the event timestamp).
    pub oldest_age_secs: Option<u64>,
    /// Entries per reason (`unknown` for entries that give none).
    pub reasons: BTreeMap<String, u64>,
}

/// A page of entries, for `show`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Page {
    pub dlq: Dlq,
    pub name: String,
    /// Entries in the DLQ (matching or not).
    pub depth: u64,
    pub end: End,
    /// Matching entries skipped before this page.
    pub offset: u64,
    pub entries: Vec<DlqEntry>,
    /// Whether more matching entries follow.
    pub more: bool,
}

/// What a replay, park, purge or trim did (or, with `dry_run`, would do).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReport {
    pub dlq: Option<Dlq>,
    pub action: String,
    pub dry_run: bool,
    /// Entries looked at.
    pub examined: u64,
    /// Entries moved (or that would be), per destination (`mutt:ingest_queue`,
    /// `mutt:dlq:dead`, `deleted`).
    pub moved: BTreeMap<String, u64>,
    /// Matching entries left in place because they hold no JSON object to replay.
    pub not_replayable: u64,
    /// Entries taken by someone else between reading and moving them.
    pub gone: u64,
    /// Ids of the entries moved (the first 1000).
    pub ids: Vec<String>,
}

impl MoveReport {
    /// Entries moved in all (or that would be, in a dry run).
    pub fn total(&self) -> u64 {
        self.moved.values().sum()
    }
}

/// The report of [`apply`].
pub type ApplyReport = MoveReport;

/// What [`apply`]'s decision function says about one entry.
pub enum Decision {
    Keep,
    /// Left in place, counted as not replayable.
    NotReplayable,
    Move {
        new: Vec<u8>,
        target: Target,
    },
}

/// Limits of one [`apply`] pass.
#[derive(Clone, Copy, Debug, Default)]
pub struct Pass {
    /// Look at no more than this many entries (from the oldest).
    pub max_examined: Option<u64>,
    /// Move no more than this many.
    pub max_moves: Option<u64>,
    pub dry_run: bool,
}

/// Walks a DLQ from its oldest entry and applies `decide` to each; the loop every moving
/// operation (and the remediation role) uses.
pub async fn apply(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    action: &str,
    pass: Pass,
    progress: Progress<'_>,
    mut decide: impl FnMut(&DlqEntry) -> Decision + Send,
) -> Result<MoveReport, QueueError> {
    let depth = store.dlq_depth(dlq).await?;
    let budget = pass.max_examined.map_or(depth, |m| m.min(depth));
    let mut report = MoveReport { dlq: Some(dlq), action: action.into(), dry_run: pass.dry_run, ..Default::default() };
    progress(0, budget);
    let mut offset = 0;
    let mut planned = 0u64;
    while report.examined < budget {
        let page = store.dlq_range(dlq, End::Oldest, offset, PAGE.min(budget - report.examined)).await?;
        if page.is_empty() {
            break;
        }
        report.examined += page.len() as u64;
        let now = Utc::now();
        let mut moves = Vec::new();
        let mut kept = 0;
        for raw in page {
            let entry = DlqEntry::read(dlq, &raw.body, now);
            match decide(&entry) {
                Decision::Move { new, target } if pass.max_moves.is_none_or(|m| planned < m) => {
                    planned += 1;
                    moves.push((entry.info.id, Move { old: raw, new, target }));
                }
                Decision::NotReplayable => {
                    report.not_replayable += 1;
                    kept += 1;
                }
                _ => kept += 1,
            }
        }
        offset += if pass.dry_run { kept + moves.len() as u64 } else { kept };
        record(store, dlq, &mut report, moves, pass.dry_run).await?;
        progress(report.examined, budget);
        if pass.max_moves.is_some_and(|m| planned >= m) {
            break;
        }
    }
    Ok(report)
}

/// Applies (or, dry, only counts) one page's moves.
async fn record(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    report: &mut MoveReport,
    moves: Vec<(String, Move)>,
    dry_run: bool,
) -> Result<(), QueueError> {
    if moves.is_empty() {
        return Ok(());
    }
    let (ids, moves): (Vec<String>, Vec<Move>) = moves.into_iter().unzip();
    let done = if dry_run { vec![true; moves.len()] } else { store.dlq_take(dlq, &moves).await? };
    for ((id, m), took) in ids.into_iter().zip(&moves).zip(done) {
        if !took {
            report.gone += 1;
            continue;
        }
        let to = match m.target {
            Target::Queue(q) => store.queue_name(q),
            Target::Dlq(d) => store.dlq_name(d),
            Target::Drop => "deleted".to_owned(),
        };
        *report.moved.entry(to).or_default() += 1;
        if report.ids.len() < 1000 {
            report.ids.push(id);
        }
    }
    Ok(())
}

/// Reads a DLQ in pages from `end`, handing each entry to `visit` until it breaks.
async fn scan(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    end: End,
    mut visit: impl FnMut(DlqEntry) -> ControlFlow<()> + Send,
) -> Result<(), QueueError> {
    let mut offset = 0;
    loop {
        let page: Vec<RawEntry> = store.dlq_range(dlq, end, offset, PAGE).await?;
        if page.is_empty() {
            return Ok(());
        }
        offset += page.len() as u64;
        let now = Utc::now();
        for raw in page {
            if visit(DlqEntry::read(dlq, &raw.body, now)).is_break() {
                return Ok(());
            }
        }
    }
}

/// The three DLQs with depth, oldest age and counts by reason.
pub async fn list(store: &dyn DeadLetterStore) -> Result<Vec<DlqSummary>, QueueError> {
    let mut out = Vec::new();
    for dlq in Dlq::ALL {
        let mut s = DlqSummary {
            dlq,
            name: store.dlq_name(dlq),
            depth: store.dlq_depth(dlq).await?,
            oldest_age_secs: None,
            reasons: BTreeMap::new(),
        };
        scan(store, dlq, End::Oldest, |e| {
            *s.reasons.entry(e.info.reason.clone().unwrap_or_else(|| "unknown".into())).or_default() += 1;
            s.oldest_age_secs = s.oldest_age_secs.max(e.info.age_secs);
            ControlFlow::Continue(())
        })
        .await?;
        out.push(s);
    }
    Ok(out)
}

/// A page of the entries that match, `offset` matching entries from `end`.
pub async fn show(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    selection: &Selection,
    end: End,
    offset: u64,
    limit: u64,
) -> Result<Page, QueueError> {
    let mut page = Page {
        dlq,
        name: store.dlq_name(dlq),
        depth: store.dlq_depth(dlq).await?,
        end,
        offset,
        entries: Vec::new(),
        more: false,
    };
    let mut skipped = 0;
    scan(store, dlq, end, |e| {
        if !selection.matches(&e) {
            return ControlFlow::Continue(());
        }
        if skipped < offset {
            skipped += 1;
            return ControlFlow::Continue(());
        }
        if page.entries.len() as u64 >= limit {
            page.more = true;
            return ControlFlow::Break(());
        }
        page.entries.push(e);
        ControlFlow::Continue(())
    })
    .await?;
    Ok(page)
}

/// Sends the selected entries back to the queue they came from (the ingest queue for events,
/// the alert queue for alerts), annotations and attempt counters removed, `_replay_count`
/// one higher. Entries holding no JSON object stay (counted as `not_replayable`).
pub async fn replay(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    selection: &Selection,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<MoveReport, QueueError> {
    let pass = Pass { max_moves: selection.limit, dry_run, ..Pass::default() };
    apply(store, dlq, "replay", pass, progress, |e| {
        if !selection.matches(e) {
            return Decision::Keep;
        }
        match e.replayed() {
            Some(new) => Decision::Move { new, target: Target::Queue(e.home()) },
            None => Decision::NotReplayable,
        }
    })
    .await
}

/// Moves the selected entries to `mutt:dlq:dead`, recording where from, why and when.
pub async fn park(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    selection: &Selection,
    reason: &str,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<MoveReport, QueueError> {
    if dlq == Dlq::Dead {
        return Err(QueueError::Config("entries of the dead DLQ are parked already".into()));
    }
    let now = Utc::now();
    let pass = Pass { max_moves: selection.limit, dry_run, ..Pass::default() };
    apply(store, dlq, "park", pass, progress, |e| {
        if selection.matches(e) {
            Decision::Move { new: e.parked(reason, now), target: Target::Dlq(Dlq::Dead) }
        } else {
            Decision::Keep
        }
    })
    .await
}

/// Deletes the selected entries.
pub async fn purge(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    selection: &Selection,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<MoveReport, QueueError> {
    let pass = Pass { max_moves: selection.limit, dry_run, ..Pass::default() };
    apply(store, dlq, "purge", pass, progress, |e| {
        if selection.matches(e) { Decision::Move { new: Vec::new(), target: Target::Drop } } else { Decision::Keep }
    })
    .await
}

/// Retention (`RETENTION_DLQ_DAYS`): deletes the entries of every DLQ that failed more than
/// `days` days ago (by `failed_at`, else the event's timestamp); undated entries stay.
pub async fn trim(
    store: &dyn DeadLetterStore,
    days: u32,
    dry_run: bool,
    progress: Progress<'_>,
) -> Result<Vec<MoveReport>, QueueError> {
    let selection = Selection { older_than_secs: Some(u64::from(days) * 86_400), ..Selection::default() };
    let mut out = Vec::new();
    for dlq in Dlq::ALL {
        let mut r = purge(store, dlq, &selection, dry_run, progress).await?;
        r.action = "trim".into();
        out.push(r);
    }
    Ok(out)
}

/// Writes the selected entries as JSON lines (each entry's details and its message); returns
/// how many.
pub async fn export_jsonl(
    store: &dyn DeadLetterStore,
    dlq: Dlq,
    selection: &Selection,
    end: End,
    out: &mut (dyn std::io::Write + Send),
) -> Result<u64, QueueError> {
    let mut n = 0u64;
    let mut failure = None;
    scan(store, dlq, end, |e| {
        if !selection.matches(&e) {
            return ControlFlow::Continue(());
        }
        if selection.limit.is_some_and(|l| n >= l) {
            return ControlFlow::Break(());
        }
        let line = serde_json::to_string(&e).unwrap_or_default();
        if let Err(err) = writeln!(out, "{line}") {
            failure = Some(err);
            return ControlFlow::Break(());
        }
        n += 1;
        ControlFlow::Continue(())
    })
    .await?;
    match failure {
        Some(e) => Err(QueueError::Config(format!("writing the export: {e}"))),
        None => Ok(n),
    }
}
