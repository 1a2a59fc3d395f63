//! The embedded backend's database file: one SQLite file that holds the queues and the store.
//!
//! Every write goes through one writer thread (SQLite allows one writer at a time; a single
//! writer never meets the deferred-upgrade `SQLITE_BUSY` that a busy handler cannot fix). The
//! writer commits whatever work is waiting as one transaction (group commit), each piece in
//! its own savepoint (a piece alone needs none), so a piece that fails is rolled back alone
//! and the rest still commits;
//! with `synchronous=FULL` that is one fsync for many small writes. Reads use separate
//! connections (WAL lets them run while the writer writes).
//!
//! Written by hand because the crates that wrap rusqlite for async code (tokio-rusqlite,
//! deadpool-sqlite) run one closure per call and do not group commits.

use rusqlite::{Connection, OpenFlags};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use rusqlite;

/// Most pieces of work committed in one transaction.
const MAX_GROUP: usize = 512;
/// Idle read connections kept open.
const MAX_IDLE_READERS: usize = 4;
/// Page cache of the writer connection (KiB): the queue tables' hot pages and the indexes'
/// right edges stay in memory instead of being read back from the file every group.
const WRITER_CACHE_KIB: i64 = 32 * 1024;

mod checkpoint;
mod syncer;

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("sqlite ({path}): {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot create the data directory {path}: {source}")]
    Directory {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the database writer of {0} has stopped")]
    WriterStopped(String),
    #[error("{0}")]
    Other(String),
}

impl DbError {
    /// The disk (or the file's `max_page_count`) is full: no write can succeed until space is
    /// freed.
    pub fn is_full(&self) -> bool {
        matches!(
            self,
            DbError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. }
                if e.code == rusqlite::ErrorCode::DiskFull
        )
    }

    /// The database refused this piece of work itself (constraint, type, check): retrying the
    /// same work fails again.
    pub fn is_rejected(&self) -> bool {
        match self {
            DbError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. } => {
                matches!(e.code, rusqlite::ErrorCode::ConstraintViolation | rusqlite::ErrorCode::TypeMismatch)
            }
            DbError::Sqlite { source, .. } => matches!(
                source,
                rusqlite::Error::InvalidColumnType(..)
                    | rusqlite::Error::FromSqlConversionFailure(..)
                    | rusqlite::Error::IntegralValueOutOfRange(..)
                    | rusqlite::Error::ToSqlConversionFailure(..)
            ),
            _ => false,
        }
    }

    /// The file, the disk or another connection stood in the way, not this piece of work: the
    /// same work is worth retrying later. Busy and locked (another writer), I/O, a full disk, a
    /// file that cannot be opened, is read-only or damaged, an interrupted or aborted statement
    /// (also a piece left unrun because its group's transaction broke), a failed commit, a
    /// stopped writer. Anything else (a constraint, a trigger's `RAISE`, a missing table, an
    /// authorizer's refusal, a value rusqlite cannot convert) fails the same way again.
    pub fn is_transient(&self) -> bool {
        use rusqlite::ErrorCode as C;
        match self {
            DbError::Sqlite { source: rusqlite::Error::SqliteFailure(e, _), .. } => matches!(
                e.code,
                C::DatabaseBusy
                    | C::DatabaseLocked
                    | C::SystemIoFailure
                    | C::DiskFull
                    | C::CannotOpen
                    | C::FileLockingProtocolFailed
                    | C::ReadOnly
                    | C::PermissionDenied
                    | C::DatabaseCorrupt
                    | C::NotADatabase
                    | C::NoLargeFileSupport
                    | C::OutOfMemory
                    | C::OperationInterrupted
                    | C::OperationAborted
                    | C::SchemaChanged
            ),
            DbError::Sqlite { .. } => false,
            DbError::Directory { .. } | DbError::WriterStopped(_) | DbError::Other(_) => true,
        }
    }
}

/// How hard a commit tries to survive a power loss.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Durability {
    /// `synchronous=FULL`: a commit is on disk when the call returns (one fsync per group).
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit survives a crash of the process but the last ones may be
    /// lost if the machine loses power.
    Normal,
}

#[derive(Clone, Debug)]
pub struct DbOptions {
    pub durability: Durability,
    /// How long a writer from another process (e.g. `muttd rules import`) is waited for.
    pub busy_timeout: Duration,
    /// How long the writer waits after the first write of a group for more writes to join it
    /// before it commits (zero: commits what is waiting at once). Under a light, steady load
    /// most groups hold one write; waiting trades a little latency for fewer commits, pages
    /// written and thread wake-ups (docs/benchmarks.md).
    pub commit_delay: Duration,
}

impl Default for DbOptions {
    fn default() -> Self {
        Self { durability: Durability::Full, busy_timeout: Duration::from_secs(10), commit_delay: Duration::ZERO }
    }
}

type Finish = Box<dyn FnOnce(Result<(), String>) + Send>;
/// Runs the work on the connection, or with `None` only hands back its finisher (the group
/// broke before this piece ran).
type WriteJob = Box<dyn FnOnce(Option<&Connection>) -> (bool, Finish) + Send>;
/// Runs alone on the writer connection; hands back what tells its caller (once the work is
/// on disk).
type ExclusiveJob = Box<dyn FnOnce(&mut Connection) -> Box<dyn FnOnce() + Send> + Send>;

enum Job {
    /// The work, and whether its caller waits for it to be on disk (`true`) or only committed.
    Write(WriteJob, bool),
    Exclusive(ExclusiveJob),
}

/// A handle on the database file; cheap to clone. The writer thread stops when the last
/// handle is dropped.
#[derive(Clone)]
pub struct Database {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    options: DbOptions,
    writer: Mutex<mpsc::Sender<Job>>,
    readers: Mutex<Vec<Connection>>,
    /// Groups the writer has committed or tried to.
    groups: Arc<AtomicU64>,
    /// Stops the checkpointer thread when the last handle goes.
    _checkpointer: Option<checkpoint::Checkpointer>,
}

impl Database {
    /// Opens (creating if needed) the file and its directory, switches it to WAL, and starts
    /// the writer thread.
    pub fn open(path: impl AsRef<Path>, options: DbOptions) -> Result<Self, DbError> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|source| DbError::Directory { path: dir.display().to_string(), source })?;
        }
        // With durability full the writer commits without fsync and the syncer thread fsyncs
        // the WAL for the writes that wait for it (see `syncer`), so the writer never waits
        // for the disk.
        let syncer = match options.durability {
            Durability::Full => Some(syncer::start(&path)?),
            Durability::Normal => None,
        };
        let writer_options = DbOptions { durability: Durability::Normal, ..options.clone() };
        let conn = open_connection(&path, &writer_options, false)?;
        let checkpointer = checkpoint::start(&path, &options);
        if checkpointer.is_some() {
            // The checkpointer thread copies the WAL into the file; the writer only appends.
            conn.execute_batch("PRAGMA wal_autocheckpoint = 0;")
                .map_err(|source| DbError::Sqlite { path: path.display().to_string(), source })?;
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let name = path.display().to_string();
        let reset_due = checkpointer.as_ref().map(|c| c.reset_due.clone());
        let groups = Arc::new(AtomicU64::new(0));
        let writer = Writer { name, reset_due, syncer, commit_delay: options.commit_delay, groups: groups.clone() };
        std::thread::Builder::new()
            .name("mutt-sqlite-writer".into())
            .spawn(move || writer_loop(conn, rx, writer))
            .map_err(|e| DbError::Other(format!("cannot start the database writer thread: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                path,
                options,
                writer: Mutex::new(tx),
                readers: Mutex::new(Vec::new()),
                groups,
                _checkpointer: checkpointer,
            }),
        })
    }

    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// How many groups of writes the writer has run (each one transaction), for diagnostics.
    pub fn write_groups(&self) -> u64 {
        self.inner.groups.load(Ordering::Relaxed)
    }

    fn err(&self, source: rusqlite::Error) -> DbError {
        DbError::Sqlite { path: self.inner.path.display().to_string(), source }
    }

    fn send(&self, job: Job) -> Result<(), DbError> {
        let sender = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        sender.send(job).map_err(|_| DbError::WriterStopped(self.inner.path.display().to_string()))
    }

    /// Runs `f` on the writer connection inside a transaction shared with other waiting
    /// writes; its changes commit (or not) with the group, and are rolled back alone when `f`
    /// fails. Returns once the group has committed and, with durability full, is on disk.
    pub async fn write<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_job(f, true).await
    }

    /// [`Database::write`] that returns once the group has committed, before the commit is
    /// on disk. For work that nothing outside the file learns of before a later durable
    /// write: the WAL keeps commits in order, so a power loss takes such a write only together
    /// with everything committed after it (the file stays a consistent earlier state), and a
    /// crash of the process loses nothing committed.
    pub async fn write_unsynced<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        self.write_job(f, false).await
    }

    async fn write_job<T, F>(&self, f: F, durable: bool) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<Result<T, DbError>>();
        let path = self.inner.path.display().to_string();
        let job: WriteJob = Box::new(move |conn: Option<&Connection>| {
            let ran = conn.is_some();
            let result = match conn {
                Some(conn) => f(conn),
                None => Err(rusqlite::Error::SqliteFailure(
                    rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                    Some("not run: the write transaction failed".into()),
                )),
            };
            let ok = result.is_ok();
            let finish: Finish = Box::new(move |committed: Result<(), String>| {
                let outcome = match (committed, result) {
                    // Not run: say why the group broke (e.g. "database is locked").
                    (Err(why), Err(_)) if !ran => Err(DbError::Other(format!("sqlite ({path}): not run: {why}"))),
                    (_, Err(source)) => Err(DbError::Sqlite { path, source }),
                    (Err(why), Ok(_)) => Err(DbError::Other(format!("sqlite ({path}): commit failed: {why}"))),
                    (Ok(()), Ok(v)) => Ok(v),
                };
                let _ = tx.send(outcome);
            });
            (ok, finish)
        });
        self.send(Job::Write(job, durable))?;
        rx.await.map_err(|_| DbError::WriterStopped(self.inner.path.display().to_string()))?
    }

    /// Runs `f` alone on the writer connection, outside any transaction (for migrations,
    /// which manage their own transactions).
    pub async fn exclusive<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> T + Send + 'static,
    {
        let (tx, rx) = tokio::sync::oneshot::channel::<T>();
        self.send(Job::Exclusive(Box::new(move |conn: &mut Connection| {
            let out = f(conn);
            Box::new(move || {
                let _ = tx.send(out);
            })
        })))?;
        rx.await.map_err(|_| DbError::WriterStopped(self.inner.path.display().to_string()))
    }

    /// Runs `f` on a read connection (in a blocking thread): it sees the last committed state.
    pub async fn read<T, F>(&self, f: F) -> Result<T, DbError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let this = self.clone();
        tokio::task::spawn_blocking(move || {
            let conn = this.take_reader()?;
            let result = f(&conn).map_err(|e| this.err(e));
            this.put_reader(conn);
            result
        })
        .await
        .map_err(|e| DbError::Other(format!("database read task failed: {e}")))?
    }

    fn take_reader(&self) -> Result<Connection, DbError> {
        let idle = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner()).pop();
        match idle {
            Some(c) => Ok(c),
            None => open_connection(&self.inner.path, &self.inner.options, true),
        }
    }

    fn put_reader(&self, conn: Connection) {
        let mut idle = self.inner.readers.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < MAX_IDLE_READERS {
            idle.push(conn);
        }
    }
}

fn open_connection(path: &Path, options: &DbOptions, reader: bool) -> Result<Connection, DbError> {
    let err = |source| DbError::Sqlite { path: path.display().to_string(), source };
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
    let conn = Connection::open_with_flags(path, flags).map_err(err)?;
    conn.busy_timeout(options.busy_timeout).map_err(err)?;
    let sync = match options.durability {
        Durability::Full => "FULL",
        Durability::Normal => "NORMAL",
    };
    // journal_size_limit: after a checkpoint the WAL is cut back to 64 MiB instead of keeping
    // the size of the largest backlog it ever held. temp_store: the savepoint of every piece
    // of a group journals the pages it changes; in memory, not in a temporary file.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {sync}; PRAGMA foreign_keys = ON; \
         PRAGMA journal_size_limit = 67108864; PRAGMA temp_store = MEMORY;{}",
        if reader {
            " PRAGMA query_only = ON;".to_owned()
        } else {
            format!(" PRAGMA cache_size = -{WRITER_CACHE_KIB};")
        }
    ))
    .map_err(err)?;
    Ok(conn)
}

/// What the writer thread knows besides its connection.
struct Writer {
    name: String,
    /// Set by the checkpointer when the writer should finish a checkpoint itself.
    reset_due: Option<Arc<AtomicBool>>,
    /// Fsyncs the WAL for durable writes (durability full).
    syncer: Option<syncer::Syncer>,
    /// [`DbOptions::commit_delay`].
    commit_delay: Duration,
    groups: Arc<AtomicU64>,
}

fn writer_loop(mut conn: Connection, rx: mpsc::Receiver<Job>, w: Writer) {
    let mut next: Option<Job> = None;
    loop {
        if w.reset_due.as_ref().is_some_and(|f| f.swap(false, Ordering::Relaxed)) {
            // The WAL is long: finish the checkpoint here, so the next group rewinds it.
            if let Err(e) = checkpoint::passive(&conn) {
                tracing::debug!(database = %w.name, error = %e, "writer checkpoint failed");
            }
        }
        let job = match next.take() {
            Some(j) => j,
            None => match rx.recv() {
                Ok(j) => j,
                Err(_) => return, // every handle dropped
            },
        };
        match job {
            Job::Exclusive(f) => match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&mut conn))) {
                Ok(reply) => {
                    if let Some(s) = &w.syncer {
                        s.sync_now(&w.name);
                    }
                    reply();
                }
                Err(_) => tracing::error!(database = %w.name, "an exclusive database job panicked"),
            },
            Job::Write(first, durable) => {
                let mut group = vec![(first, durable)];
                let until = (!w.commit_delay.is_zero()).then(|| Instant::now() + w.commit_delay);
                while group.len() < MAX_GROUP {
                    let waiting = match until.map(|t| t.saturating_duration_since(Instant::now())) {
                        Some(left) if !left.is_zero() => rx.recv_timeout(left).ok(),
                        _ => rx.try_recv().ok(),
                    };
                    match waiting {
                        Some(Job::Write(j, d)) => group.push((j, d)),
                        Some(other) => {
                            next = Some(other);
                            break;
                        }
                        None => break,
                    }
                }
                w.groups.fetch_add(1, Ordering::Relaxed);
                let (committed, finishers) = run_group(&conn, group, &w.name);
                finish_group(committed, finishers, w.syncer.as_ref());
            }
        }
    }
}

/// Tells the pieces of a group how it went: at once, or (durable pieces of a committed group
/// with durability full) once the syncer has fsynced the WAL.
fn finish_group(committed: Result<(), String>, finishers: Vec<(Finish, bool)>, syncer: Option<&syncer::Syncer>) {
    let mut waiting = Vec::new();
    for (finish, durable) in finishers {
        match syncer {
            Some(_) if durable && committed.is_ok() => waiting.push(finish),
            _ => finish(committed.clone()),
        }
    }
    if let Some(s) = syncer.filter(|_| !waiting.is_empty()) {
        s.after_sync(waiting);
    }
}

/// Runs a group of writes in one transaction, each in a savepoint; reports the commit's
/// outcome to every piece.
fn run_group(conn: &Connection, group: Vec<(WriteJob, bool)>, name: &str) -> (Result<(), String>, Vec<(Finish, bool)>) {
    if let Err(e) = conn.execute_batch("BEGIN IMMEDIATE") {
        let why = e.to_string();
        tracing::warn!(database = name, error = %why, "cannot start a write transaction");
        // The work is not run; its callers get the error.
        let finishers = group.into_iter().map(|(job, durable)| (job_not_run(job).1, durable)).collect();
        return (Err(why), finishers);
    }
    // A piece alone in its group needs no savepoint: rolling the transaction back undoes
    // exactly it. A savepoint journals a copy of every page its piece changes (~8 % of the
    // writer's time in a profile), and most groups hold one piece.
    let alone = group.len() == 1;
    let mut undo_all = false;
    let mut finishers = Vec::with_capacity(group.len());
    let mut broken: Option<String> = None;
    for (job, durable) in group {
        if broken.is_some() {
            finishers.push((job_not_run(job).1, durable));
            continue;
        }
        if !alone && let Err(e) = conn.execute_batch("SAVEPOINT piece") {
            broken = Some(e.to_string());
            finishers.push((job_not_run(job).1, durable));
            continue;
        }
        // A panicking piece must not take the writer thread (and every later write) with it:
        // its caller sees the writer's reply channel closed, the group is rolled back.
        let (ok, finish) = match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| job(Some(conn)))) {
            Ok(done) => done,
            Err(_) => {
                broken = Some("a write panicked; its transaction was rolled back".into());
                continue;
            }
        };
        finishers.push((finish, durable));
        if conn.is_autocommit() {
            // Some errors (I/O, disk full) make SQLite roll the whole transaction back.
            broken = Some("sqlite rolled the transaction back after an error".into());
            continue;
        }
        if alone {
            undo_all = !ok;
            continue;
        }
        let end = if ok { "RELEASE piece" } else { "ROLLBACK TO piece; RELEASE piece" };
        if let Err(e) = conn.execute_batch(end) {
            broken = Some(e.to_string());
        }
    }
    let committed = match broken {
        Some(why) => {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            Err(why)
        }
        // The lone piece failed: nothing to commit (its caller gets its own error, as when a
        // savepoint is rolled back and the empty rest commits).
        None if undo_all => conn.execute_batch("ROLLBACK").map_err(|e| e.to_string()),
        None => conn.execute_batch("COMMIT").map_err(|e| {
            let _ = conn.execute_batch("ROLLBACK");
            e.to_string()
        }),
    };
    if let Err(why) = &committed {
        tracing::warn!(database = name, error = %why, "write transaction failed; its callers get the error");
    }
    (committed, finishers)
}

/// The finisher of a job that will not run (it reports an error to its caller).
fn job_not_run(job: WriteJob) -> (bool, Finish) {
    job(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn db() -> (tempfile::TempDir, Database) {
        let dir = tempfile::tempdir().unwrap();
        let db = Database::open(dir.path().join("sub/test.db"), DbOptions::default()).unwrap();
        (dir, db)
    }

    #[tokio::test]
    async fn writes_commit_and_reads_see_them() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")).await.unwrap();
        let mut handles = Vec::new();
        for i in 0..200 {
            let db = db.clone();
            handles.push(tokio::spawn(
                async move { db.write(move |c| c.execute("INSERT INTO t VALUES (?1)", [i])).await },
            ));
        }
        for h in handles {
            assert_eq!(h.await.unwrap().unwrap(), 1);
        }
        let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await.unwrap();
        assert_eq!(n, 200);
    }

    #[tokio::test]
    async fn durable_and_unsynced_writes_share_groups_and_all_commit() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")).await.unwrap();
        let mut handles = Vec::new();
        for i in 0..300 {
            let db = db.clone();
            handles.push(tokio::spawn(async move {
                let insert = move |c: &Connection| c.execute("INSERT INTO t VALUES (?1)", [i]);
                if i % 2 == 0 { db.write(insert).await } else { db.write_unsynced(insert).await }
            }));
        }
        for h in handles {
            assert_eq!(h.await.unwrap().unwrap(), 1);
        }
        // A failing unsynced piece reports its own error and leaves the rest alone.
        assert!(db.write_unsynced(|c| c.execute("INSERT INTO t VALUES (1)", [])).await.unwrap_err().is_rejected());
        let n: i64 = db.read(|c| c.query_row("SELECT count(*) FROM t", [], |r| r.get(0))).await.unwrap();
        assert_eq!(n, 300);
        // What a durable write was told is on disk is in the WAL file, whose contents a fresh
        // connection (another process) sees.
        let other = Connection::open(db.path()).unwrap();
        let seen: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, 300);
    }

    #[tokio::test]
    async fn a_commit_delay_lets_later_writes_join_the_group() {
        let dir = tempfile::tempdir().unwrap();
        let delay = Duration::from_millis(400);
        let db =
            Database::open(dir.path().join("t.db"), DbOptions { commit_delay: delay, ..DbOptions::default() }).unwrap();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await.unwrap();
        let before = db.write_groups();
        let started = Instant::now();
        let first = tokio::spawn({
            let db = db.clone();
            async move { db.write(|c| c.execute("INSERT INTO t VALUES (1)", [])).await }
        });
        // Sent while the first write waits for company: both commit as one group.
        tokio::time::sleep(Duration::from_millis(50)).await;
        db.write_unsynced(|c| c.execute("INSERT INTO t VALUES (2)", [])).await.unwrap();
        first.await.unwrap().unwrap();
        assert!(started.elapsed() >= delay, "the group waited out the delay: {:?}", started.elapsed());
        assert_eq!(db.write_groups() - before, 1, "one group, one commit");
        let other = Connection::open(db.path()).unwrap();
        let seen: i64 = other.query_row("SELECT count(*) FROM t", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, 2, "both are in the file");

        // Without a delay, writes awaited one after the other are groups of their own.
        let (_dir, db) = self::db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await.unwrap();
        let before = db.write_groups();
        for x in 0..3 {
            db.write(move |c| c.execute("INSERT INTO t VALUES (?1)", [x])).await.unwrap();
        }
        assert_eq!(db.write_groups() - before, 3);
    }

    #[tokio::test]
    async fn a_failing_piece_is_rolled_back_alone() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE)")).await.unwrap();
        let a = db.write(|c| c.execute("INSERT INTO t VALUES (1)", []));
        // Inserts 2, then violates the constraint: the whole piece (including 2) is undone.
        let b = db.write(|c| {
            c.execute("INSERT INTO t VALUES (2)", [])?;
            c.execute("INSERT INTO t VALUES (1)", [])
        });
        let c3 = db.write(|c| c.execute("INSERT INTO t VALUES (3)", []));
        let (a, b, c3) = tokio::join!(a, b, c3);
        assert!(a.is_ok() && c3.is_ok());
        let err = b.unwrap_err();
        assert!(err.is_rejected(), "{err}");
        let xs: Vec<i64> = db
            .read(|c| {
                let mut s = c.prepare("SELECT x FROM t ORDER BY x")?;
                s.query_map([], |r| r.get(0))?.collect()
            })
            .await
            .unwrap();
        assert_eq!(xs, vec![1, 3]);
    }

    #[tokio::test]
    async fn a_failing_piece_alone_in_its_group_is_rolled_back_whole() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER UNIQUE); INSERT INTO t VALUES (1)")).await.unwrap();
        // Awaited one by one: each piece is alone in its group (no savepoint).
        for durable in [true, false] {
            let piece = |c: &Connection| {
                c.execute("INSERT INTO t VALUES (2)", [])?;
                c.execute("INSERT INTO t VALUES (1)", [])
            };
            let err = if durable { db.write(piece).await } else { db.write_unsynced(piece).await }.unwrap_err();
            assert!(err.is_rejected(), "its own error, not a commit failure: {err}");
        }
        db.write(|c| c.execute("INSERT INTO t VALUES (3)", [])).await.unwrap();
        let xs: Vec<i64> =
            db.read(|c| c.prepare("SELECT x FROM t ORDER BY x")?.query_map([], |r| r.get(0))?.collect()).await.unwrap();
        assert_eq!(xs, vec![1, 3], "the failed pieces' first inserts were undone, the next write committed");
        let other = Connection::open(db.path()).unwrap();
        let seen: i64 = other.query_row("SELECT count(*) FROM t WHERE x = 2", [], |r| r.get(0)).unwrap();
        assert_eq!(seen, 0, "and are not in the file");
    }

    #[tokio::test]
    async fn a_panicking_write_fails_alone_and_the_writer_lives_on() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await.unwrap();
        let boom = db.write(|c| -> rusqlite::Result<()> {
            c.execute("INSERT INTO t VALUES (1)", [])?;
            panic!("bug in a write");
        });
        assert!(boom.await.is_err());
        db.write(|c| c.execute("INSERT INTO t VALUES (2)", [])).await.unwrap();
        let xs: Vec<i64> =
            db.read(|c| c.prepare("SELECT x FROM t")?.query_map([], |r| r.get(0))?.collect()).await.unwrap();
        assert_eq!(xs, vec![2], "the panicking write was rolled back, the next one committed");
    }

    #[tokio::test]
    async fn another_writer_is_transient_a_trigger_refusal_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.db");
        let options = DbOptions { busy_timeout: Duration::from_millis(50), ..DbOptions::default() };
        let db = Database::open(&path, options).unwrap();
        db.write(|c| {
            c.execute_batch(
                "CREATE TABLE t (x INTEGER NOT NULL);
                 CREATE TRIGGER no_sevens BEFORE INSERT ON t WHEN NEW.x = 7
                 BEGIN SELECT RAISE(ABORT, 'sevens are refused'); END;",
            )
        })
        .await
        .unwrap();

        let refused = db.write(|c| c.execute("INSERT INTO t VALUES (7)", [])).await.unwrap_err();
        assert!(!refused.is_transient() && refused.is_rejected(), "{refused}");
        assert!(refused.to_string().contains("sevens are refused"), "{refused}");
        let missing = db.write(|c| c.execute("INSERT INTO nowhere VALUES (1)", [])).await.unwrap_err();
        assert!(!missing.is_transient() && !missing.is_rejected(), "{missing}");

        // Another process holds the write lock: busy, worth waiting for.
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();
        let busy = db.write(|c| c.execute("INSERT INTO t VALUES (1)", [])).await.unwrap_err();
        assert!(busy.is_transient() && !busy.is_rejected(), "{busy}");
        assert!(busy.to_string().contains("locked"), "says why: {busy}");
        other.execute_batch("COMMIT").unwrap();
        db.write(|c| c.execute("INSERT INTO t VALUES (1)", [])).await.unwrap();
    }

    /// Waits until `cond` holds for the file's size, or fails after 10 s.
    async fn wait_for_size(path: &Path, what: &str, cond: impl Fn(u64) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let len = std::fs::metadata(path).map(|m| m.len()).unwrap_or(0);
            if cond(len) {
                return;
            }
            assert!(std::time::Instant::now() < deadline, "{what}: {} is {len} bytes", path.display());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    #[tokio::test]
    async fn the_checkpointer_copies_the_wal_into_the_file_off_the_writer() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x BLOB)")).await.unwrap();
        for _ in 0..8 {
            db.write(|c| c.execute("INSERT INTO t VALUES (zeroblob(131072))", [])).await.unwrap();
        }
        // 1 MiB committed: far below SQLite's own checkpoint (1,000 pages), which is off anyway.
        wait_for_size(db.path(), "the data file holds the committed megabyte", |n| n >= 1 << 20).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_busy_writer_s_wal_still_rewinds() {
        let dir = tempfile::tempdir().unwrap();
        let options = DbOptions { durability: Durability::Normal, ..DbOptions::default() };
        let db = Database::open(dir.path().join("t.db"), options).unwrap();
        db.write(|c| c.execute_batch("CREATE TABLE t (x BLOB)")).await.unwrap();
        // Four writers for 2 s, so the writer is rarely idle, the table kept small: the WAL
        // must start over now and then rather than hold everything ever written.
        let until = std::time::Instant::now() + Duration::from_secs(2);
        let mut tasks = Vec::new();
        for w in 0..4i64 {
            let db = db.clone();
            tasks.push(tokio::spawn(async move {
                let mut written = 0u64;
                for i in 0i64.. {
                    if std::time::Instant::now() > until {
                        break;
                    }
                    let id = i * 4 + w;
                    db.write(move |c| {
                        c.execute("DELETE FROM t WHERE rowid < ?1", [id - 64])?;
                        c.execute("INSERT INTO t (rowid, x) VALUES (?1, zeroblob(65536))", [id])
                    })
                    .await
                    .unwrap();
                    written += 65536;
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                written
            }));
        }
        let mut written = 0;
        for t in tasks {
            written += t.await.unwrap();
        }
        let len = std::fs::metadata(dir.path().join("t.db-wal")).unwrap().len();
        assert!(len < 48 << 20 || len < written / 2, "the WAL is {len} bytes after {written} bytes written");
    }

    #[tokio::test]
    async fn reads_refuse_to_write() {
        let (_dir, db) = db();
        db.write(|c| c.execute_batch("CREATE TABLE t (x INTEGER)")).await.unwrap();
        assert!(db.read(|c| c.execute("INSERT INTO t VALUES (1)", [])).await.is_err());
    }
}
