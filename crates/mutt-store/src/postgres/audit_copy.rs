//! Audit rows by binary COPY straight into `event_audit_log` (issue 21). COPY decodes the rows
//! from one stream and inserts them in multi-row groups, where the UNNEST insert builds nine
//! arrays, unnests them and inserts row by row with ON CONFLICT's speculative insertion:
//! PostgreSQL spends about a fifth less CPU per row (docs/benchmarks.md, mutt-audit-bench).
//!
//! COPY has no ON CONFLICT: idempotence comes from the unique index on (event_id,
//! event_timestamp). A batch that meets a row already there fails whole and is written again
//! by the UNNEST insert, which skips that row. A row the database refuses (a trigger, a value
//! too long) fails the COPY with the SQLSTATE the INSERT would have had, so the store's error
//! classes and the alerter's batch split are unchanged. The COPY into a temporary table plus
//! `INSERT … SELECT … ON CONFLICT DO NOTHING` that issue 21 proposed costs more than UNNEST
//! (the rows are written twice) and is only in the benchmark.

use super::classify;
use crate::{AuditRecord, StoreError};
use bytes::{BufMut, Bytes, BytesMut};
use tokio_postgres::types::{IsNull, ToSql, Type};
use tokio_postgres::{Client, Statement};

/// Which statement writes a batch of audit rows.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AuditPath {
    /// One `INSERT … SELECT * FROM UNNEST($1::uuid[], …) ON CONFLICT DO NOTHING`.
    Unnest,
    /// Binary COPY into `event_audit_log`; a batch that meets a row already there (a
    /// redelivered event) is written again by the UNNEST insert.
    #[default]
    Copy,
}

pub const COPY_SQL: &str = "COPY event_audit_log (event_id, event_timestamp, hostname, matched_rule_id,
        handling_decision, forwarded_to_moog, raw_message, flap_suppressed, silenced_by) FROM STDIN (FORMAT binary)";

/// The COPY columns' types, in [`COPY_SQL`]'s order.
const TYPES: [Type; 9] =
    [Type::UUID, Type::TIMESTAMPTZ, Type::TEXT, Type::INT4, Type::TEXT, Type::BOOL, Type::TEXT, Type::BOOL, Type::INT8];

/// The batch in PostgreSQL's binary COPY format, in one buffer: one CopyData message for the
/// whole batch instead of one per 4 KiB.
pub fn encode(rows: &[AuditRecord]) -> Result<Bytes, StoreError> {
    let mut buf = BytesMut::with_capacity(32 + rows.iter().map(|r| 120 + r.raw_message.len()).sum::<usize>());
    buf.put_slice(b"PGCOPY\n\xff\r\n\0");
    buf.put_i32(0); // flags
    buf.put_i32(0); // header extension length
    for r in rows {
        let id = r.event_id.as_uuid();
        let values: [&(dyn ToSql + Sync); 9] = [
            &id,
            &r.event_timestamp,
            &r.hostname,
            &r.matched_rule_id,
            &r.handling_decision,
            &r.forwarded_to_moog,
            &r.raw_message,
            &r.flap_suppressed,
            &r.silenced_by,
        ];
        buf.put_i16(TYPES.len() as i16);
        for (value, ty) in values.iter().zip(&TYPES) {
            field(&mut buf, *value, ty)?;
        }
    }
    buf.put_i16(-1);
    Ok(buf.freeze())
}

/// One field: its length (-1 for NULL) and its binary value.
fn field(buf: &mut BytesMut, value: &(dyn ToSql + Sync), ty: &Type) -> Result<(), StoreError> {
    let at = buf.len();
    buf.put_i32(0);
    let null =
        value.to_sql_checked(ty, buf).map_err(|e| StoreError::Rejected(format!("encoding an audit row: {e}")))?;
    let len = match null {
        IsNull::Yes => -1,
        IsNull::No => i32::try_from(buf.len() - at - 4)
            .map_err(|_| StoreError::Rejected("an audit value longer than 2 GiB".into()))?,
    };
    buf[at..at + 4].copy_from_slice(&len.to_be_bytes());
    Ok(())
}

/// Copies `data` (from [`encode`]) with the prepared [`COPY_SQL`]: the rows copied, all or
/// none (COPY is one statement; a row the database refuses, or one already there, fails it).
pub async fn copy(client: &Client, copy: &Statement, data: Bytes) -> Result<u64, tokio_postgres::Error> {
    use futures_util::SinkExt;
    let sink = client.copy_in::<_, Bytes>(copy).await?;
    let mut sink = std::pin::pin!(sink);
    sink.send(data).await?;
    sink.as_mut().finish().await
}

impl super::PgStore {
    /// The COPY path on a pooled connection (the COPY statement prepared once per connection).
    /// A unique violation means an event of the batch is audited already (a redelivery: rare,
    /// after a crash or an expired lease): the batch goes again by the UNNEST insert, which
    /// skips the rows already there.
    pub(super) async fn write_audit_copy(
        &self,
        client: &deadpool_postgres::Object,
        rows: &[AuditRecord],
    ) -> Result<u64, StoreError> {
        let data = encode(rows)?;
        let stmt = client.prepare_cached(COPY_SQL).await.map_err(|e| classify("preparing audit copy", e))?;
        match copy(client, &stmt, data).await {
            Ok(n) => Ok(n),
            Err(e) if e.code() == Some(&tokio_postgres::error::SqlState::UNIQUE_VIOLATION) => {
                super::write_audit_unnest(client, rows).await
            }
            Err(e) => Err(classify("writing audit rows", e)),
        }
    }
}
