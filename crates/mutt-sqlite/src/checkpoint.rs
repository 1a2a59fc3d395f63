//! WAL checkpoints off the writer thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses `wal_autocheckpoint`, on
//! the writer's thread: while it copies the WAL into the file and fsyncs it, no write can
//! commit (under load this was the writer's largest single cost). Here a thread with its own
//! connection runs `PASSIVE` checkpoints every few hundred milliseconds, next to the writer
//! (WAL lets a checkpoint and a writer work at once; a passive checkpoint never waits for
//! anyone).
//!
//! A WAL only starts over from its beginning when a write begins after a checkpoint copied all
//! of it; a busy writer never leaves such a gap for a checkpoint running elsewhere. So once the
//! WAL has grown past [`RESET_FRAMES`], the checkpointer asks the writer to run one passive
//! checkpoint itself between two groups: the rest is small (the checkpointer copied most of
//! it), and the writer's next transaction then rewinds the WAL.

use crate::{DbOptions, open_connection};
use rusqlite::Connection;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How often the checkpointer copies the WAL into the file.
const EVERY: Duration = Duration::from_millis(200);
/// WAL frames (pages) past which the writer checkpoints once itself so the WAL can rewind.
const RESET_FRAMES: i64 = 8192;

/// The running checkpointer; dropping it stops the thread.
pub(crate) struct Checkpointer {
    _stop: mpsc::Sender<()>,
    /// Set when the WAL has grown past [`RESET_FRAMES`]; the writer clears it.
    pub(crate) reset_due: Arc<AtomicBool>,
}

/// Starts the checkpointer, or `None` when its connection or thread cannot be had (the writer
/// then keeps SQLite's automatic checkpoints).
pub(crate) fn start(path: &Path, options: &DbOptions) -> Option<Checkpointer> {
    let conn = match open_connection(path, options, false) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(error = %e, "no checkpoint connection; the writer checkpoints itself");
            return None;
        }
    };
    let (stop, rx) = mpsc::channel::<()>();
    let reset_due = Arc::new(AtomicBool::new(false));
    let flag = reset_due.clone();
    let name = path.display().to_string();
    std::thread::Builder::new()
        .name("mutt-sqlite-ckpt".into())
        .spawn(move || {
            // Stops when every sender (the database handle) is gone.
            while let Err(mpsc::RecvTimeoutError::Timeout) = rx.recv_timeout(EVERY) {
                pass(&conn, &flag, &name);
            }
        })
        .map_err(|e| tracing::warn!(error = %e, "no checkpoint thread; the writer checkpoints itself"))
        .ok()?;
    Some(Checkpointer { _stop: stop, reset_due })
}

/// One passive checkpoint; flags a writer-side one when the WAL is long.
fn pass(conn: &Connection, reset_due: &AtomicBool, name: &str) {
    match passive(conn) {
        Ok(frames) => {
            if frames > RESET_FRAMES {
                reset_due.store(true, Ordering::Relaxed);
            }
        }
        // Busy (the writer's own checkpoint holds the lock) or I/O: the next pass retries.
        Err(e) => tracing::debug!(database = name, error = %e, "background checkpoint failed"),
    }
}

/// Runs `PRAGMA wal_checkpoint(PASSIVE)`; returns the WAL's length in frames.
pub(crate) fn passive(conn: &Connection) -> rusqlite::Result<i64> {
    conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| r.get::<_, i64>(1))
}
