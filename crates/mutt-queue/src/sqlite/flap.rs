//! Flap suppression on the embedded backend (see `crate::flap`): the windows are rows of
//! `flap_window`, each event's verdict a row of `flap_seen` (queue migration V2), a claim's
//! lease `flap_window.lease_until_ms` (V3); every call is one piece of work on the file's
//! single writer, which makes it atomic as the Redis scripts are. A claim is named
//! `<id>:<until_ms>:<lease_until_ms>`: its acknowledgement queues the summary and deletes the
//! row only while the row is that window and that lease is its latest, so neither a late
//! acknowledgement of a claim taken over since, nor one hitting a later window that reused the
//! row id, queues anything.

use super::{Deltas, SqliteQueue, append, db_err, now_ms};
use crate::flap::{FlapAck, FlapEvent, FlapSummary, FlapVerdict};
use crate::{QueueError, QueueId};
use mutt_sqlite::rusqlite::{self, Connection, OptionalExtension, params};
use std::time::Duration;

/// The verdict of one event, counting it in its open window (opened by it if none is).
fn count_one(c: &Connection, e: &FlapEvent, now: i64) -> rusqlite::Result<FlapVerdict> {
    let open: Option<(i64, i64)> = c
        .prepare_cached(
            "SELECT id, count FROM flap_window WHERE rule_id = ?1 AND hostname = ?2 AND until_ms > ?3
              ORDER BY until_ms DESC LIMIT 1",
        )?
        .query_row(params![e.rule_id, e.hostname, now], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?;
    let (id, count) = match open {
        Some(w) => w,
        None => {
            let window_ms = e.window.as_millis().max(1) as i64;
            c.prepare_cached(
                "INSERT INTO flap_window (rule_id, hostname, window_ms, until_ms, count, suppressed)
                 VALUES (?1, ?2, ?3, ?4, 0, 0)",
            )?
            .execute(params![e.rule_id, e.hostname, window_ms, now + window_ms])?;
            (c.last_insert_rowid(), 0)
        }
    };
    let seen: Option<String> = c
        .prepare_cached("SELECT verdict FROM flap_seen WHERE window_id = ?1 AND event_id = ?2")?
        .query_row(params![id, e.event_id], |r| r.get(0))
        .optional()?;
    if let Some(code) = seen {
        return Ok(FlapVerdict::from_code(&code));
    }
    let verdict = if (count + 1) as u64 > e.threshold.max(1) { FlapVerdict::Suppress } else { FlapVerdict::Forward };
    if verdict == FlapVerdict::Suppress {
        c.prepare_cached(
            "UPDATE flap_window SET count = count + 1, suppressed = suppressed + 1, event = ?2 WHERE id = ?1",
        )?
        .execute(params![id, e.raw])?;
    } else {
        c.prepare_cached("UPDATE flap_window SET count = count + 1 WHERE id = ?1")?.execute([id])?;
    }
    c.prepare_cached("INSERT INTO flap_seen (window_id, event_id, verdict) VALUES (?1, ?2, ?3)")?.execute(params![
        id,
        e.event_id,
        verdict.code()
    ])?;
    Ok(verdict)
}

/// Takes up to `limit` closed windows that suppressed events and are not leased (or whose
/// lease expired), leasing them until `now + lease`; drops their verdicts (needed only while a
/// window is open) and every closed window that has nothing to report.
fn claim(c: &Connection, limit: usize, lease: Duration, now: i64) -> rusqlite::Result<Vec<FlapSummary>> {
    let lease_until = now.saturating_add(lease.as_millis().max(1) as i64);
    let due: Vec<(i64, FlapSummary)> = c
        .prepare_cached(
            "SELECT id, rule_id, hostname, count, suppressed, window_ms, until_ms, event FROM flap_window
              WHERE until_ms <= ?1 AND suppressed > 0 AND lease_until_ms <= ?1 ORDER BY until_ms LIMIT ?2",
        )?
        .query_map(params![now, limit.max(1) as i64], |r| {
            let (id, until): (i64, i64) = (r.get(0)?, r.get(6)?);
            Ok((
                id,
                FlapSummary {
                    claim: format!("{id}:{until}:{lease_until}"),
                    rule_id: r.get(1)?,
                    hostname: r.get(2)?,
                    count: r.get::<_, i64>(3)?.max(0) as u64,
                    suppressed: r.get::<_, i64>(4)?.max(0) as u64,
                    window: Duration::from_millis(r.get::<_, i64>(5)?.max(0) as u64),
                    closed_at_ms: until,
                    last_event: r.get::<_, Option<Vec<u8>>>(7)?.unwrap_or_default(),
                },
            ))
        })?
        .collect::<Result<_, _>>()?;
    for (id, _) in &due {
        c.prepare_cached("UPDATE flap_window SET lease_until_ms = ?2 WHERE id = ?1")?
            .execute(params![id, lease_until])?;
        c.prepare_cached("DELETE FROM flap_seen WHERE window_id = ?1")?.execute([id])?;
    }
    c.prepare_cached(
        "DELETE FROM flap_seen WHERE window_id IN
           (SELECT id FROM flap_window WHERE until_ms <= ?1 AND suppressed = 0)",
    )?
    .execute([now])?;
    c.prepare_cached("DELETE FROM flap_window WHERE until_ms <= ?1 AND suppressed = 0")?.execute([now])?;
    Ok(due.into_iter().map(|(_, s)| s).collect())
}

/// A claim's window (row id and close) and lease, `None` for a name no claim has.
fn parse_claim(claim: &str) -> Option<(i64, i64, i64)> {
    let mut parts = claim.splitn(3, ':').map(str::parse::<i64>);
    match (parts.next(), parts.next(), parts.next()) {
        (Some(Ok(id)), Some(Ok(until)), Some(Ok(lease))) => Some((id, until, lease)),
        _ => None,
    }
}

/// Settles the claims that are still their windows' latest: queues the summary on `queue`
/// and deletes the window. Returns summaries queued.
fn ack(c: &Connection, acks: &[FlapAck], queue: &str, deltas: &mut Deltas) -> rusqlite::Result<u64> {
    let mut queued = 0;
    for a in acks {
        let Some((id, until, lease)) = parse_claim(&a.claim) else { continue };
        let gone = c
            .prepare_cached("DELETE FROM flap_window WHERE id = ?1 AND until_ms = ?2 AND lease_until_ms = ?3")?
            .execute(params![id, until, lease])?;
        if gone == 0 {
            continue;
        }
        c.prepare_cached("DELETE FROM flap_seen WHERE window_id = ?1")?.execute([id])?;
        if let Some(summary) = &a.summary {
            append(c, queue, std::slice::from_ref(summary), deltas)?;
            queued += 1;
        }
    }
    Ok(queued)
}

impl SqliteQueue {
    pub(super) async fn count_flaps(&self, events: &[FlapEvent]) -> Result<Vec<FlapVerdict>, QueueError> {
        if events.is_empty() {
            return Ok(Vec::new());
        }
        let events = events.to_vec();
        let now = now_ms();
        self.db
            .write_unsynced(move |c| events.iter().map(|e| count_one(c, e, now)).collect::<rusqlite::Result<Vec<_>>>())
            .await
            .map_err(db_err("counting flapping events"))
    }

    pub(super) async fn claim_flaps(&self, limit: usize, lease: Duration) -> Result<Vec<FlapSummary>, QueueError> {
        let now = now_ms();
        self.db
            .write_unsynced(move |c| claim(c, limit, lease, now))
            .await
            .map_err(db_err("claiming closed flap windows"))
    }

    pub(super) async fn ack_flaps(&self, acks: &[FlapAck]) -> Result<u64, QueueError> {
        if acks.is_empty() {
            return Ok(0);
        }
        let acks = acks.to_vec();
        let queue = self.keys.queue(QueueId::Alert).to_owned();
        let (queued, deltas) = self
            .db
            .write(move |c| {
                let mut d = Deltas::default();
                let queued = ack(c, &acks, &queue, &mut d)?;
                Ok((queued, d))
            })
            .await
            .map_err(db_err("queuing flap summaries"))?;
        self.committed(deltas);
        Ok(queued)
    }
}
