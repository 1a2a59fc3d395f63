//! Durability full without the writer waiting for the disk.
//!
//! With `synchronous=FULL` SQLite fsyncs the WAL inside every commit, on the writer's thread:
//! the next group waits for the disk although its work is ready. Here the writer commits with
//! `synchronous=NORMAL` (the WAL is written, not fsynced) and goes on with the next group,
//! while this thread fsyncs the WAL file and only then answers the durable writes of every
//! group committed before that fsync began. Each such caller is answered after its commit is
//! on disk, as with `FULL`; one fsync covers however many groups committed meanwhile. The WAL
//! keeps commits in order and SQLite fsyncs it before every checkpoint, so a power loss can
//! only take the newest commits, never one without those after it.

use crate::{DbError, Finish};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;

/// The writer's handle on the syncer thread; the thread ends when it is dropped (after
/// answering everything it was handed).
pub(crate) struct Syncer {
    tx: mpsc::Sender<Vec<Finish>>,
    wal: Wal,
}

/// The WAL file, and whether its directory entry is known to be on disk.
#[derive(Clone)]
struct Wal {
    path: PathBuf,
    dir_synced: Arc<AtomicBool>,
}

pub(crate) fn start(db: &Path) -> Result<Syncer, DbError> {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    let wal = Wal { path: PathBuf::from(wal), dir_synced: Arc::new(AtomicBool::new(false)) };
    let (tx, rx) = mpsc::channel::<Vec<Finish>>();
    let for_thread = wal.clone();
    std::thread::Builder::new()
        .name("mutt-sqlite-sync".into())
        .spawn(move || sync_loop(rx, for_thread))
        .map_err(|e| DbError::Other(format!("cannot start the database sync thread: {e}")))?;
    Ok(Syncer { tx, wal })
}

impl Syncer {
    /// Answers `waiting` (committed work) once the WAL is on disk.
    pub(crate) fn after_sync(&self, waiting: Vec<Finish>) {
        if let Err(mpsc::SendError(waiting)) = self.tx.send(waiting) {
            for finish in waiting {
                finish(Err("the database sync thread has stopped".into()));
            }
        }
    }

    /// Fsyncs the WAL on the calling thread (after work run outside the group commit).
    pub(crate) fn sync_now(&self, name: &str) {
        if let Err(e) = self.wal.sync() {
            tracing::error!(database = name, error = %e, "cannot sync the WAL");
        }
    }
}

fn sync_loop(rx: mpsc::Receiver<Vec<Finish>>, wal: Wal) {
    while let Ok(mut waiting) = rx.recv() {
        // Everything committed by now is covered by the one fsync below.
        while let Ok(more) = rx.try_recv() {
            waiting.extend(more);
        }
        let synced = wal.sync().map_err(|e| format!("cannot sync {}: {e}", wal.path.display()));
        if let Err(why) = &synced {
            tracing::error!(error = %why, "the commits of the last groups may not be on disk");
        }
        for finish in waiting {
            finish(synced.clone());
        }
    }
}

impl Wal {
    /// fdatasync of the WAL file (what SQLite does at a `FULL` commit), and once its directory
    /// (the file's name must survive too, as SQLite's own first sync of a new file ensures).
    /// A file that is not there holds nothing to lose.
    fn sync(&self) -> std::io::Result<()> {
        match std::fs::File::open(&self.path) {
            Ok(f) => f.sync_data()?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        }
        if !self.dir_synced.load(Ordering::Relaxed) {
            if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::File::open(dir)?.sync_all()?;
            }
            self.dir_synced.store(true, Ordering::Relaxed);
        }
        Ok(())
    }
}
