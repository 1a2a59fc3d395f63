//! Dead letters in the embedded file: the DLQs are queues of `queue_message` (ordered by
//! `seq`, oldest first), as the consumers write them.

use super::{DeadLetterStore, Dlq, End, Move, RawEntry, Target};
use crate::sqlite::{Deltas, SqliteQueue, append, db_err};
use crate::{QueueError, QueueId};
use async_trait::async_trait;
use mutt_sqlite::rusqlite::params;

#[async_trait]
impl DeadLetterStore for SqliteQueue {
    fn dlq_name(&self, dlq: Dlq) -> String {
        self.keys().dlq(dlq).to_owned()
    }

    fn queue_name(&self, queue: QueueId) -> String {
        self.keys().queue(queue).to_owned()
    }

    async fn dlq_depth(&self, dlq: Dlq) -> Result<u64, QueueError> {
        let name = self.dlq_name(dlq);
        self.database()
            .read(move |c| {
                c.prepare_cached("SELECT count(*) FROM queue_ready WHERE queue = ?1")?
                    .query_row([name], |r| r.get::<_, i64>(0))
            })
            .await
            .map(|n| n.max(0) as u64)
            .map_err(db_err("reading DLQ depth"))
    }

    async fn dlq_push(&self, dlq: Dlq, entries: &[Vec<u8>]) -> Result<(), QueueError> {
        let (name, entries) = (self.dlq_name(dlq), entries.to_vec());
        let deltas = self
            .database()
            .write(move |c| {
                let mut d = Deltas::default();
                append(c, &name, &entries, &mut d)?;
                Ok(d)
            })
            .await
            .map_err(db_err("adding DLQ entries"))?;
        self.committed(deltas);
        Ok(())
    }

    async fn dlq_range(&self, dlq: Dlq, end: End, offset: u64, count: u64) -> Result<Vec<RawEntry>, QueueError> {
        let name = self.dlq_name(dlq);
        let sql = match end {
            End::Oldest => "SELECT id, body FROM queue_message WHERE queue = ?1 ORDER BY seq LIMIT ?2 OFFSET ?3",
            End::Newest => "SELECT id, body FROM queue_message WHERE queue = ?1 ORDER BY seq DESC LIMIT ?2 OFFSET ?3",
        };
        self.database()
            .read(move |c| {
                let mut s = c.prepare_cached(sql)?;
                s.query_map(params![name, count as i64, offset as i64], |r| {
                    Ok(RawEntry { handle: Some(r.get(0)?), body: r.get(1)? })
                })?
                .collect()
            })
            .await
            .map_err(db_err("reading DLQ entries"))
    }

    async fn dlq_take(&self, dlq: Dlq, moves: &[Move]) -> Result<Vec<bool>, QueueError> {
        if moves.is_empty() {
            return Ok(Vec::new());
        }
        let name = self.dlq_name(dlq);
        let planned: Vec<(Option<i64>, Vec<u8>, Option<String>, Vec<u8>)> = moves
            .iter()
            .map(|m| {
                let to = match m.target {
                    Target::Queue(q) => Some(self.queue_name(q)),
                    Target::Dlq(d) => Some(self.dlq_name(d)),
                    Target::Drop => None,
                };
                (m.old.handle, m.old.body.clone(), to, m.new.clone())
            })
            .collect();
        let (taken, deltas) = self
            .database()
            .write(move |c| {
                let mut d = Deltas::default();
                let mut taken = Vec::with_capacity(planned.len());
                for (handle, old, to, new) in &planned {
                    let removed = match handle {
                        Some(id) => c
                            .prepare_cached(
                                "DELETE FROM queue_message WHERE id = (SELECT id FROM queue_ready
                                 WHERE id = ?1 AND queue = ?2 AND body = ?3)",
                            )?
                            .execute(params![id, name, old])?,
                        None => c
                            .prepare_cached(
                                "DELETE FROM queue_message WHERE id = (SELECT id FROM queue_ready
                                 WHERE queue = ?1 AND body = ?2 ORDER BY seq LIMIT 1)",
                            )?
                            .execute(params![name, old])?,
                    };
                    if removed > 0 {
                        d.add(&name, -1);
                        if let Some(to) = to {
                            append(c, to, std::slice::from_ref(new), &mut d)?;
                        }
                    }
                    taken.push(removed > 0);
                }
                Ok((taken, d))
            })
            .await
            .map_err(db_err("moving DLQ entries"))?;
        self.committed(deltas);
        Ok(taken)
    }
}
