//! Taking over a database made by the original MUTT v2.5 (spec §9), so that an upgrading site
//! runs `muttd migrate` against the database it has instead of starting a new one.
//!
//! Such a database has the original's tables but no refinery history, so V1 (`CREATE TABLE
//! alert_rules …`) would fail. Adoption adds what V1 has beyond the original (event ids, the
//! DEFAULT partition, muttd's partition function, a config audit table where missing) in one
//! transaction, then records V1 as applied without running it; later migrations run as usual.

use super::embedded;
use crate::{StoreError, full_error};
use refinery::Target;
use tokio_postgres::Client;

const ADOPT_ORIGINAL: &str = include_str!("../../migrations/postgres-adopt/original_v2_5.sql");

/// Adopts the original's schema when this database has one and no migration history yet;
/// returns whether it did.
pub(super) async fn adopt_original_schema(client: &mut Client) -> Result<bool, StoreError> {
    let row = client
        .query_one(
            "SELECT to_regclass('refinery_schema_history') IS NOT NULL, to_regclass('alert_rules') IS NOT NULL",
            &[],
        )
        .await
        .map_err(|e| StoreError::Migration(format!("looking for an existing schema: {}", full_error(&e))))?;
    let (has_history, has_original_tables): (bool, bool) = (row.get(0), row.get(1));
    if has_history || !has_original_tables {
        return Ok(false);
    }
    tracing::info!("found the original MUTT's schema without muttd's migration history: adopting it");
    let tx = client
        .transaction()
        .await
        .map_err(|e| StoreError::Migration(format!("adopting the original schema: {}", full_error(&e))))?;
    tx.batch_execute(ADOPT_ORIGINAL)
        .await
        .map_err(|e| StoreError::Migration(format!("adopting the original schema: {}", full_error(&e))))?;
    tx.commit()
        .await
        .map_err(|e| StoreError::Migration(format!("adopting the original schema: {}", full_error(&e))))?;
    embedded::migrations::runner()
        .set_target(Target::FakeVersion(1))
        .run_async(client)
        .await
        .map_err(|e| StoreError::Migration(format!("recording V1 after adoption: {}", full_error(&e))))?;
    Ok(true)
}
