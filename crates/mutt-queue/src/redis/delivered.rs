//! Delivered ids on Redis: what the forwarder records after a delivery, so that a redelivered
//! alert is not sent twice, and what `/events/{id}` reports.
//!
//! muttd's own ids (UUIDv7, one per event, carrying the ingest time) go into one string per
//! second of that time, `<prefix>delivered:<unix second>`, as fixed 24-byte records (the id's
//! 16 bytes, then until when it is remembered: ms since the epoch, big-endian) appended by
//! `APPEND`. A sorted-set member per alert cost Redis a hash-table insert into a set that holds
//! an hour of alerts (~1.6 µs each at 60,000 events/s, and ~136 bytes); an append is one
//! command per batch and second, and ~26 bytes (measured: docs/benchmarks.md).
//! Reads are rare (only alerts leased before, and `/events/{id}`): they fetch the id's second
//! and scan it. Other ids (the original MUTT's alerts, meta-alerts: UUIDv5) stay in the sorted
//! set `<prefix>delivered` scored by expiry, which reads also consult for what an earlier
//! muttd recorded there.
//!
//! Hand-written because no Redis structure gives both an exact membership test and a cheap
//! batch insert without a per-member allocation.

use super::keys::KeySpace;
use std::collections::BTreeMap;
use std::time::Duration;

/// Bytes of one record: the id, then its expiry in ms since the epoch.
const RECORD: usize = 24;

/// Kept this long past the last record's expiry, so a key never goes before its records.
const KEY_SLACK_MS: u64 = 60_000;

/// The id's 16 bytes and the second of its making, for a UUIDv7 (muttd's event ids).
fn timed_id(id: &str) -> Option<([u8; 16], i64)> {
    let id = mutt_core::EventId::parse(id)?;
    Some((*id.as_uuid().as_bytes(), id.made_at_ms()?.div_euclid(1000)))
}

/// Adds to `pipe` (replies ignored) the record of `ids` as delivered from `now_ms` for `ttl`.
/// Appending is not idempotent: a pipeline sent again writes a record twice, which reads take
/// as one.
pub(super) fn record(keys: &KeySpace, pipe: &mut redis::Pipeline, ids: &[String], now_ms: i64, ttl: Duration) {
    let ttl_ms = u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX / 2);
    let until = now_ms.saturating_add(i64::try_from(ttl_ms).unwrap_or(i64::MAX));
    let mut buckets: BTreeMap<i64, Vec<u8>> = BTreeMap::new();
    let mut others = Vec::new();
    for id in ids {
        match timed_id(id) {
            Some((bytes, second)) => {
                let rec = buckets.entry(second).or_default();
                rec.extend_from_slice(&bytes);
                rec.extend_from_slice(&until.to_be_bytes());
            }
            None => others.push(id),
        }
    }
    for (second, records) in buckets {
        let key = keys.delivered_second(second);
        pipe.cmd("APPEND").arg(&key).arg(records).ignore();
        // Later records expire later (the same ttl from a later now), so each append may set it.
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms.saturating_add(KEY_SLACK_MS)).ignore();
    }
    if !others.is_empty() {
        let key = keys.delivered_set();
        let zadd = pipe.cmd("ZADD").arg(&key);
        for id in others {
            zadd.arg(until).arg(id);
        }
        zadd.ignore();
        pipe.cmd("ZREMRANGEBYSCORE").arg(&key).arg("-inf").arg(now_ms).ignore();
        pipe.cmd("PEXPIRE").arg(&key).arg(ttl_ms.saturating_add(KEY_SLACK_MS)).ignore();
    }
}

/// The reads [`record`] needs answered for `ids`: the sorted set's scores of all of them, then
/// one string per second their UUIDv7s were made in.
pub(super) struct Lookup {
    /// Per id, for a UUIDv7: its 16 bytes and which of the pipeline's `GET`s fetches its second.
    timed: Vec<Option<([u8; 16], usize)>>,
}

impl Lookup {
    /// Builds the lookup of `ids` into `pipe`: `ZMSCORE` of the set, then a `GET` per second.
    pub(super) fn new(keys: &KeySpace, pipe: &mut redis::Pipeline, ids: &[String]) -> Self {
        pipe.cmd("ZMSCORE").arg(keys.delivered_set()).arg(ids);
        // The seconds fetched, in the order of the `GET`s.
        let mut seconds: Vec<i64> = Vec::new();
        let timed = ids
            .iter()
            .map(|id| {
                let (bytes, second) = timed_id(id)?;
                let at = match seconds.iter().position(|s| *s == second) {
                    Some(at) => at,
                    None => {
                        seconds.push(second);
                        pipe.cmd("GET").arg(keys.delivered_second(second));
                        seconds.len() - 1
                    }
                };
                Some((bytes, at))
            })
            .collect();
        Self { timed }
    }

    /// Per id, until when its newest live record lasts (ms since the epoch), from the
    /// pipeline's replies: the set's scores and the seconds' strings (`None`: no such key).
    pub(super) fn answer(
        &self,
        scores: Vec<Option<f64>>,
        strings: &[Option<Vec<u8>>],
        now_ms: i64,
    ) -> Vec<Option<i64>> {
        self.timed
            .iter()
            .enumerate()
            .map(|(i, timed)| {
                let in_set = scores.get(i).copied().flatten().map(|until| until as i64);
                let in_string = timed.and_then(|(bytes, at)| newest(strings.get(at)?.as_deref()?, &bytes));
                in_set.max(in_string).filter(|until| *until > now_ms)
            })
            .collect()
    }
}

/// The latest expiry recorded for `id` in a second's records.
fn newest(records: &[u8], id: &[u8; 16]) -> Option<i64> {
    records
        .chunks_exact(RECORD)
        .filter(|r| &r[..16] == id)
        .filter_map(|r| r[16..].try_into().ok().map(i64::from_be_bytes))
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuidv7s_are_kept_by_their_second() {
        let v7 = uuid::Uuid::now_v7();
        let (bytes, second) = timed_id(&v7.to_string()).unwrap();
        assert_eq!(bytes, *v7.as_bytes());
        let now = chrono::Utc::now().timestamp();
        assert!((now - 1..=now).contains(&second), "{second} vs {now}");
        let v5 = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, b"x").to_string();
        assert_eq!(timed_id(&v5), None);
        assert_eq!(timed_id("e1"), None);
    }

    #[test]
    fn the_newest_of_an_ids_records_counts_and_others_do_not() {
        let a = [1u8; 16];
        let b = [2u8; 16];
        let mut records = Vec::new();
        for (id, until) in [(a, 5i64), (b, 9), (a, 7)] {
            records.extend_from_slice(&id);
            records.extend_from_slice(&until.to_be_bytes());
        }
        assert_eq!(newest(&records, &a), Some(7));
        assert_eq!(newest(&records, &b), Some(9));
        assert_eq!(newest(&records, &[3u8; 16]), None);
        // An id's bytes straddling two records is no match.
        let mut straddle = [0u8; 16];
        straddle[..8].copy_from_slice(&9i64.to_be_bytes());
        straddle[8..].copy_from_slice(&a[..8]);
        assert_eq!(newest(&records, &straddle), None);
    }
}
