//! Group commit for the embedded profile's one SQLite writer connection.
//!
//! Concurrent writes share one transaction, each in a savepoint of its own name (a single
//! statement, atomic by itself, needs none). As soon as a write has released its
//! savepoint, a spawned committer queues for the connection behind the writes already
//! waiting, then commits them all with one `COMMIT` (one WAL fsync under
//! `synchronous=FULL`) and tells each writer how it went. A writer returns only once the
//! commit that holds its write is durable, so every guarantee of one commit per write
//! holds; concurrent requests just share the fsync.
//!
//! The transaction is plain SQL (`BEGIN IMMEDIATE` … `COMMIT`) on a connection held for
//! the group, so no library's idea of the transaction can drift from SQLite's. Whatever
//! leaves the group's state unknown ends it as failed — every writer in it is told, and
//! the connection is closed so the next group starts on a fresh one:
//! - an error other than a constraint violation (SQLite may have rolled the transaction
//!   back by itself: I/O error, disk full);
//! - a statement of ours cut off by a cancelled request (whether it ran is unknown);
//! - a savepoint that no longer rolls back or releases.
//!
//! A write that fails or is dropped before its commit (an error, a cancelled request)
//! is rolled back to its own savepoint and takes nothing else with it.
//!
//! **Deferred durability** ([`super::durability`]): a group opened by a write inside a
//! deferred scope commits under `synchronous=NORMAL`, without a sync; its writers return
//! once it has committed and record it with their scope, which makes it durable before the
//! request is answered. Groups are numbered; a group committed under `synchronous=FULL`
//! makes every group before it durable too (the WAL is one file, written in commit order),
//! so a scope whose writes an unrelated durable commit already covered syncs nothing. A
//! write outside any scope that lands in a group committed without a sync asks for the
//! next group to be durable and waits for a durable commit after its own
//! ([`GroupWriter::make_durable`]): it returns durable, as before.
//!
//! **Syncing the WAL directly**: where the writer knows its WAL file
//! ([`GroupWriter::with_wal`]), a group committed without a sync is made durable by an
//! fsync of that file, on a blocking thread and outside the writer's lock, instead of by
//! another group that commits with `synchronous=FULL`. It is the same act: a FULL commit
//! in WAL mode writes its frames and syncs the WAL file; here the frames were written by
//! the commit and the sync follows, covering every group committed before it (and a
//! checkpoint that moved frames out of the WAL has synced the database file first).
//! Concurrent waits share one fsync. The writer's lock is then held only for writes, not
//! for the extra `BEGIN`/`COMMIT` round trips a syncing group costs.
//!
//! The fsync goes through a handle kept open on the WAL file. Linux reports a write-back
//! error to every handle that was open when it happened, whichever syncs first, but not to
//! a handle opened after another one was told. So the handle's first use, and the first
//! sync after the file at the path changed (SQLite removes the WAL when its last connection
//! closes, after a checkpoint, and makes a new one), is a syncing commit instead; a WAL
//! missing from its path is no failure either, a syncing commit follows. A failed fsync of
//! the WAL (this one, the one after a truncation, or SQLite's own in a checkpoint) may have
//! dropped pages of every group committed by then: they are marked lost, and from then on
//! groups are made durable by syncing commits, as without a WAL file.

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteQueryResult};
use sqlx::{Executor, Sqlite};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

use super::durability::{self, Barrier};
use super::{Result, StorageError};

const BACKEND: &str = "sqlite";

/// How the commit of a group went: `None` until it is known.
type Outcome = Option<std::result::Result<(), Arc<str>>>;

/// The writer connection, shared by group commit.
#[derive(Clone)]
pub(super) struct GroupWriter {
    shared: Arc<Shared>,
}

impl fmt::Debug for GroupWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GroupWriter").finish_non_exhaustive()
    }
}

struct Shared {
    /// A pool of exactly one connection, held by the open group.
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
    /// Group commits so far (each one `COMMIT`).
    commits: AtomicU64,
    /// The last group committed with a sync: it and every group before it are durable.
    durable_through: AtomicU64,
    /// Whether writes in a deferred scope may commit without a sync: only where every
    /// store of the process is this one database ([`GroupWriter::allow_deferral`]).
    deferral: AtomicBool,
    /// Header rewrites a syncing commit made to have a frame to sync.
    sync_marks: AtomicU64,
    /// A syncing commit failed after groups that did not sync: their pages may have been
    /// dropped by the failed write-back, and no later sync can vouch for them.
    /// Groups after `lost_after` up to `lost_through` are never reported durable.
    lost_after: AtomicU64,
    lost_through: AtomicU64,
    /// The last group committed (with a sync or without).
    committed_through: AtomicU64,
    /// The WAL file, where a sync of it may stand for a syncing commit
    /// ([`GroupWriter::with_wal`]).
    wal: Option<PathBuf>,
    /// One fsync of the WAL at a time (the waits behind it are often covered by it), on
    /// a handle kept open: the WAL file as it was when opened, identified by device and
    /// inode.
    wal_sync: Mutex<Option<WalHandle>>,
    /// Fsyncs of the WAL file made in place of a syncing commit.
    wal_syncs: AtomicU64,
    /// A sync of the WAL file failed: syncing commits make groups durable from then on.
    wal_sync_failed: AtomicBool,
    /// Makes the next fsync of the WAL fail, as an I/O error would.
    #[cfg(test)]
    fail_next_wal_sync: AtomicBool,
}

struct State {
    /// The connection while a group is open, inside its `BEGIN IMMEDIATE`.
    conn: Option<PoolConnection<Sqlite>>,
    /// The savepoint of a write dropped before its commit: rolled back before anything
    /// else runs on the connection.
    abandoned: Option<u64>,
    /// One of our statements was cut off mid-flight: whether it ran, and whether the
    /// transaction survived it, is unknown.
    in_doubt: bool,
    /// A committer is on its way for the open group.
    committing: bool,
    /// Savepoint names are never reused (`w1`, `w2`, …).
    next_savepoint: u64,
    /// The number of the open (or last) group; groups commit in this order.
    group: u64,
    /// Whether the open group commits with a sync (`synchronous=FULL`).
    durable: bool,
    /// A writer waits for a durable commit: the next group opened syncs, whoever opens it.
    want_durable: bool,
    /// A group committed without a sync since the last one that synced: the next syncing
    /// commit must write a frame (an empty transaction's `COMMIT` syncs nothing).
    unsynced: bool,
    /// The header's user version, once read ([`read_header`]).
    header_version: Option<i64>,
    /// Tells the writers of the open group how its commit went.
    outcome: watch::Sender<Outcome>,
}

impl GroupWriter {
    /// [`with_wal`](Self::with_wal) without a WAL file to sync: a group committed without
    /// a sync is made durable by a later group that commits with one.
    #[cfg(test)]
    fn new(pool: SqlitePool) -> Self {
        Self::with_wal(pool, None)
    }

    /// `pool` must hold at most one connection, used by nothing else for writes. `wal`:
    /// the WAL file of a database in WAL mode, whose fsync makes a group committed without
    /// a sync durable (`None`: a later group that commits with a sync does).
    pub(super) fn with_wal(pool: SqlitePool, wal: Option<PathBuf>) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                state: Arc::new(Mutex::new(State {
                    conn: None,
                    abandoned: None,
                    in_doubt: false,
                    committing: false,
                    next_savepoint: 0,
                    group: 0,
                    durable: true,
                    want_durable: false,
                    unsynced: false,
                    header_version: None,
                    outcome: watch::channel(None).0,
                })),
                commits: AtomicU64::new(0),
                durable_through: AtomicU64::new(0),
                deferral: AtomicBool::new(false),
                sync_marks: AtomicU64::new(0),
                lost_after: AtomicU64::new(0),
                lost_through: AtomicU64::new(0),
                committed_through: AtomicU64::new(0),
                wal,
                wal_sync: Mutex::new(None),
                wal_syncs: AtomicU64::new(0),
                wal_sync_failed: AtomicBool::new(false),
                #[cfg(test)]
                fail_next_wal_sync: AtomicBool::new(false),
            }),
        }
    }

    /// Lets writes inside a deferred scope commit without a sync. Only for a process whose
    /// every store (index, audit, data keys, small objects) is this database, with content
    /// files written after a flush: a write to another store is durable at once and could
    /// otherwise outlive the unsynced writes it depends on.
    pub(super) fn allow_deferral(&self) {
        self.shared.deferral.store(true, Ordering::SeqCst);
    }

    /// Takes a failure injected for the next fsync of the WAL ([`Shared`]'s test hook).
    #[cfg(test)]
    pub(super) fn take_injected_wal_failure(&self) -> bool {
        self.shared.fail_next_wal_sync.swap(false, Ordering::SeqCst)
    }

    /// The last group known durable: taken before a sync of the WAL made elsewhere, for
    /// [`wal_sync_failed`](Self::wal_sync_failed).
    pub(super) fn durable_now(&self) -> u64 {
        self.shared.durable_through.load(Ordering::SeqCst)
    }

    /// Tells the writer that a sync of its WAL file made elsewhere (a truncation's, or
    /// SQLite's own in a checkpoint) failed; `durable_before` is
    /// [`durable_now`](Self::durable_now) from before it began. See
    /// [`Shared::wal_sync_failed_now`].
    pub(super) async fn wal_sync_failed(&self, durable_before: u64) {
        self.shared.wal_sync_failed_now(durable_before).await;
    }

    fn deferring(&self) -> bool {
        self.shared.deferral.load(Ordering::SeqCst) && durability::is_deferred()
    }

    /// Header rewrites made so that a syncing commit had a frame to sync.
    #[cfg(test)]
    fn sync_marks(&self) -> u64 {
        self.shared.sync_marks.load(Ordering::SeqCst)
    }

    /// Fsyncs of the WAL file made in place of a syncing commit.
    #[cfg(test)]
    fn wal_syncs(&self) -> u64 {
        self.shared.wal_syncs.load(Ordering::SeqCst)
    }

    /// How many group commits have run.
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// The last group committed with a sync.
    #[cfg(test)]
    fn durable_through(&self) -> u64 {
        self.shared.durable_through.load(Ordering::SeqCst)
    }

    /// The last group committed.
    #[cfg(test)]
    fn committed_through(&self) -> u64 {
        self.shared.committed_through.load(Ordering::SeqCst)
    }

    /// The number of the open (or last) group.
    #[cfg(test)]
    async fn group(&self) -> u64 {
        self.shared.state.lock().await.group
    }

    /// The open group, ready for a write: what an earlier write left is settled first. A
    /// group opened here syncs at its commit if `durable` or if a writer asked for it.
    async fn ready(&self, durable: bool) -> Result<OwnedMutexGuard<State>> {
        let mut state = self.shared.state.clone().lock_owned().await;
        state.settle().await;
        if state.conn.is_none() {
            state.conn = Some(self.shared.pool.acquire().await?);
            state.group += 1;
            state.durable = durable || std::mem::take(&mut state.want_durable);
            // From here on, a committer ends the group even if this request is cancelled
            // (a `BEGIN` cut off is in doubt: the connection is closed, not reused).
            state.ensure_committer(&self.shared);
            let begin = match state.durable {
                true => "PRAGMA synchronous = FULL; BEGIN IMMEDIATE",
                false => "PRAGMA synchronous = NORMAL; BEGIN IMMEDIATE",
            };
            if let Err(error) = state.run(begin).await {
                state.fail_group(&error);
                return Err(error.into());
            }
        }
        Ok(state)
    }

    /// The connection, in a savepoint of the group transaction, until
    /// [`WriteTx::commit`] (durable when it returns, or recorded with the deferred scope)
    /// or drop (rolled back).
    pub(super) async fn begin(&self) -> Result<WriteTx> {
        let deferred = self.deferring();
        let mut state = self.ready(!deferred).await?;
        state.next_savepoint += 1;
        let savepoint = state.next_savepoint;
        if let Err(error) = state.run(&format!("SAVEPOINT w{savepoint}")).await {
            state.fail_group(&error);
            return Err(error.into());
        }
        state.abandoned = Some(savepoint);
        Ok(WriteTx {
            writer: self.clone(),
            group: Joined::of(&state, deferred),
            state: Some(state),
            savepoint,
        })
    }

    /// After the commit of the group a write joined: a deferred write is recorded with its
    /// scope; any other write of a group committed without a sync waits for a sync.
    async fn settled(&self, joined: Joined) -> Result<()> {
        match joined {
            Joined::Durable => Ok(()),
            Joined::Deferred(group) => {
                durability::record(self, group);
                Ok(())
            }
            Joined::Unsynced(group) => self.make_durable(group).await,
        }
    }

    /// Returns once group `through` is durable: at once if a sync covered it since; else,
    /// once committed, after an fsync of the WAL file where the writer knows it; else once
    /// a group that syncs has committed after it. It writes nothing of its own (the
    /// committer gives a syncing commit its frame), so a request cancelled here leaves
    /// nothing in doubt.
    pub(super) async fn make_durable(&self, through: u64) -> Result<()> {
        loop {
            self.shared.not_lost(through)?;
            if self.shared.durable_through.load(Ordering::SeqCst) >= through {
                return Ok(());
            }
            if self.shared.wal.is_some()
                && !self.shared.wal_sync_failed.load(Ordering::SeqCst)
                && self.shared.committed_through.load(Ordering::SeqCst) >= through
            {
                // In a task of its own, so that a caller cancelled meanwhile cannot drop
                // the fsync's outcome (a failure must be recorded) nor its turn.
                let shared = self.shared.clone();
                let synced = tokio::spawn(async move { shared.sync_wal_through(through).await })
                    .await
                    .map_err(|e| group_error(&format!("the WAL's sync was lost: {e}")))?;
                if synced? {
                    return Ok(());
                }
                // Not synced (no handle kept yet, another file at the path, or none): a
                // syncing commit makes the group durable.
            }
            let mut state = self.ready(true).await?;
            // Joined an open group that commits without a sync: the next one will sync.
            state.want_durable |= !state.durable;
            let outcome = state.outcome.subscribe();
            drop(state);
            wait_for_commit(outcome).await?;
        }
    }

    /// One statement as a write of its own. A statement is atomic in SQLite, so it needs
    /// no savepoint: a constraint violation undoes only the statement and leaves the
    /// transaction as it was; any other error ends the group as failed.
    pub(super) async fn execute<'q>(
        &self,
        query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<SqliteQueryResult> {
        let deferred = self.deferring();
        let mut state = self.ready(!deferred).await?;
        let joined = Joined::of(&state, deferred);
        state.in_doubt = true;
        let done = query.execute(&mut **state.conn_mut()).await;
        state.in_doubt = false;
        match done {
            Ok(done) => {
                let outcome = state.outcome.subscribe();
                drop(state);
                wait_for_commit(outcome).await?;
                self.settled(joined).await?;
                Ok(done)
            }
            // Reported once the group is settled: had it failed, the row the statement
            // ran into might never have been committed.
            Err(error) if is_constraint_violation(&error) => {
                let outcome = state.outcome.subscribe();
                drop(state);
                wait_for_commit(outcome).await?;
                // The row it ran into must be durable before the caller acts on it.
                self.settled(joined).await?;
                Err(error.into())
            }
            Err(error) => {
                state.fail_group(&error);
                Err(error.into())
            }
        }
    }
}

/// The WAL file, open for fsyncs, and which file it is.
struct WalHandle {
    file: std::fs::File,
    id: (u64, u64),
}

/// Device and inode of a file's metadata.
fn file_id(metadata: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (metadata.dev(), metadata.ino())
}

/// What an fsync of the WAL through a kept handle found.
enum WalSync {
    /// Synced: everything committed before it is durable.
    Synced(WalHandle),
    /// The file at the path is not the one the handle has (or there was no handle): a
    /// handle opened now is kept for next time, but cannot vouch for what was written
    /// before it was opened (an error reported to another handle is not reported to it).
    Opened(WalHandle),
    /// No file at the path, or none that could be opened.
    Missing,
}

/// What a write's commit leaves to do once its group has committed.
#[derive(Clone, Copy, Debug)]
enum Joined {
    /// The group syncs: durable at its commit.
    Durable,
    /// Inside a deferred scope: the scope syncs group `n` before its request is answered.
    Deferred(u64),
    /// Outside any scope, in group `n` that commits without a sync: the writer waits for
    /// a durable commit after it.
    Unsynced(u64),
}

impl Joined {
    fn of(state: &State, deferred: bool) -> Self {
        match (state.durable, deferred) {
            (true, _) => Joined::Durable,
            (false, true) => Joined::Deferred(state.group),
            (false, false) => Joined::Unsynced(state.group),
        }
    }
}

impl Barrier for GroupWriter {
    fn identity(&self) -> usize {
        Arc::as_ptr(&self.shared) as usize
    }

    fn make_durable(&self, through: u64) -> futures::future::BoxFuture<'static, Result<()>> {
        let writer = self.clone();
        Box::pin(async move { GroupWriter::make_durable(&writer, through).await })
    }
}

impl State {
    fn conn_mut(&mut self) -> &mut PoolConnection<Sqlite> {
        self.conn.as_mut().expect("a write holds the open group")
    }

    /// Runs one of our own statements; if the request is cancelled while it runs, the
    /// group is left in doubt and ended as failed by the next user.
    async fn run(&mut self, sql: &str) -> std::result::Result<(), sqlx::Error> {
        self.in_doubt = true;
        let done = self.conn_mut().execute(sql).await;
        self.in_doubt = false;
        done.map(|_| ())
    }

    /// Settles what the last user of the connection left: a statement in doubt ends the
    /// group as failed; an abandoned write is rolled back to its savepoint.
    async fn settle(&mut self) {
        if self.conn.is_none() {
            self.in_doubt = false;
            self.abandoned = None;
            return;
        }
        if self.in_doubt {
            self.fail_group(&"a write was cut off mid-statement");
            return;
        }
        if let Some(savepoint) = self.abandoned.take() {
            let undo = format!("ROLLBACK TO w{savepoint}; RELEASE w{savepoint}");
            if let Err(error) = self.run(&undo).await {
                self.fail_group(&error);
            }
        }
    }

    /// Ends the open group as failed: its writers are told, its transaction is rolled
    /// back by closing the connection, and the next group starts on a fresh one.
    fn fail_group(&mut self, why: &dyn fmt::Display) {
        tracing::error!(error = %why, "a group of SQLite writes is rolled back");
        if let Some(mut conn) = self.conn.take() {
            conn.close_on_drop();
        }
        self.in_doubt = false;
        self.abandoned = None;
        self.finish(Err(Arc::from(format!(
            "the group of writes was rolled back: {why}"
        ))));
    }

    fn ensure_committer(&mut self, shared: &Arc<Shared>) {
        if self.conn.is_none() || self.committing {
            return;
        }
        // Outside a runtime the process is ending: the open transaction rolls back.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.committing = true;
            let shared = shared.clone();
            runtime.spawn(async move { shared.commit_group().await });
        }
    }

    /// Tells the writers of the group that just ended how it went; later writes belong to
    /// the next group, with a channel of their own.
    fn finish(&mut self, outcome: std::result::Result<(), Arc<str>>) {
        let ended = std::mem::replace(&mut self.outcome, watch::channel(None).0);
        self.committing = false;
        ended.send_replace(Some(outcome));
    }
}

impl Shared {
    fn not_lost(&self, group: u64) -> Result<()> {
        match group > self.lost_after.load(Ordering::SeqCst)
            && group <= self.lost_through.load(Ordering::SeqCst)
        {
            true => Err(group_error(
                "a sync failed after this write committed without one",
            )),
            false => Ok(()),
        }
    }

    /// A sync failed after groups up to `through` committed without one: their pages may
    /// have been dropped by the failed write-back, and no later sync can vouch for them.
    /// One range covers every loss so far: an earlier one is widened, never forgotten (a
    /// group reported lost that was not is an error, not a lie).
    /// `synced`: the last group known durable before the failed sync began (a sync that
    /// succeeded meanwhile may have gone through a handle the failure was not reported to).
    fn lose_unsynced_through(&self, synced: u64, through: u64) {
        let earlier = self.lost_through.load(Ordering::SeqCst) > 0;
        let after = match earlier {
            true => synced.min(self.lost_after.load(Ordering::SeqCst)),
            false => synced,
        };
        self.lost_after.store(after, Ordering::SeqCst);
        self.lost_through.fetch_max(through, Ordering::SeqCst);
    }

    /// Makes committed group `through` durable with an fsync of the WAL file, which covers
    /// every group committed before it starts; `false` where a syncing commit must do it:
    /// the file is not at its path, or is not the one the kept handle was opened on (a
    /// handle opened now is kept for the next time). Waits behind another such fsync,
    /// which may already have covered it.
    async fn sync_wal_through(&self, through: u64) -> Result<bool> {
        let mut handle = self.wal_sync.lock().await;
        self.not_lost(through)?;
        if self.durable_through.load(Ordering::SeqCst) >= through {
            return Ok(true);
        }
        if self.wal_sync_failed.load(Ordering::SeqCst) {
            return Ok(false);
        }
        let Some(path) = self.wal.clone() else {
            return Ok(false);
        };
        let covers = self.committed_through.load(Ordering::SeqCst);
        let durable_before = self.durable_through.load(Ordering::SeqCst);
        #[cfg(test)]
        let fail = self.fail_next_wal_sync.swap(false, Ordering::SeqCst);
        #[cfg(not(test))]
        let fail = false;
        let kept = handle.take();
        // Only a failed fsync is a failure: a file that cannot be looked at or opened has
        // synced nothing, and a syncing commit follows.
        let synced = tokio::task::spawn_blocking(move || -> std::io::Result<WalSync> {
            let Ok(metadata) = std::fs::metadata(&path) else {
                return Ok(WalSync::Missing);
            };
            match kept {
                Some(kept) if kept.id == file_id(&metadata) => {
                    if fail {
                        return Err(std::io::Error::other("an injected I/O error"));
                    }
                    kept.file.sync_all()?;
                    Ok(WalSync::Synced(kept))
                }
                _ => {
                    let opened = std::fs::OpenOptions::new()
                        .write(true)
                        .open(&path)
                        .and_then(|file| Ok((file_id(&file.metadata()?), file)));
                    Ok(match opened {
                        Ok((id, file)) => WalSync::Opened(WalHandle { file, id }),
                        Err(_) => WalSync::Missing,
                    })
                }
            }
        })
        .await
        .map_err(std::io::Error::other)
        .and_then(|synced| synced);
        match synced {
            Ok(WalSync::Synced(kept)) => {
                *handle = Some(kept);
                self.wal_syncs.fetch_add(1, Ordering::SeqCst);
                self.durable_through.fetch_max(covers, Ordering::SeqCst);
                Ok(true)
            }
            Ok(WalSync::Opened(opened)) => {
                *handle = Some(opened);
                Ok(false)
            }
            Ok(WalSync::Missing) => Ok(false),
            Err(error) => {
                tracing::error!(%error, "an fsync of the SQLite WAL failed");
                self.wal_sync_failed_now(durable_before).await;
                Err(group_error(&format!(
                    "the WAL could not be synced: {error}"
                )))
            }
        }
    }

    /// A sync of the WAL file failed: every group committed so far and not durable before
    /// that sync began (`durable_before`) is lost (with the writer's lock held, so that no
    /// commit is halfway), and syncing commits make groups durable from now on.
    async fn wal_sync_failed_now(&self, durable_before: u64) {
        self.wal_sync_failed.store(true, Ordering::SeqCst);
        let _no_commit_in_progress = self.state.lock().await;
        self.lose_unsynced_through(
            durable_before,
            self.committed_through.load(Ordering::SeqCst),
        );
    }

    /// Waits behind the writes already queued, then commits them all. Holding the lock
    /// through the commit keeps the next group's writes for the next commit.
    async fn commit_group(&self) {
        let mut state = self.state.lock().await;
        state.settle().await;
        let Some(mut conn) = state.conn.take() else {
            // Already ended (failed and reported, or committed by another committer).
            state.committing = false;
            return;
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        // A syncing commit after unsynced ones must write a frame, or SQLite syncs nothing
        // (a transaction that changed no page commits without touching the WAL): the
        // header's user version, rewritten as it is, in the same round trip as the commit.
        let mut commit = String::from("COMMIT");
        if state.durable && state.unsynced {
            let version = match state.header_version {
                Some(version) => version,
                None => match read_header(&mut conn).await {
                    Ok(version) => *state.header_version.insert(version),
                    Err(error) => {
                        state.conn = Some(conn);
                        state.fail_group(&error);
                        return;
                    }
                },
            };
            commit = format!("PRAGMA user_version = {version}; COMMIT");
        }
        match conn.execute(commit.as_str()).await {
            Ok(_) => {
                if commit != "COMMIT" {
                    self.sync_marks.fetch_add(1, Ordering::SeqCst);
                }
                match state.durable {
                    true => {
                        state.unsynced = false;
                        self.durable_through
                            .fetch_max(state.group, Ordering::SeqCst);
                    }
                    false => state.unsynced = true,
                }
                self.committed_through
                    .fetch_max(state.group, Ordering::SeqCst);
                state.finish(Ok(()))
            }
            Err(error) => {
                tracing::error!(%error, "a SQLite group commit failed");
                if state.durable && state.unsynced {
                    self.lose_unsynced_through(
                        self.durable_through.load(Ordering::SeqCst),
                        state.group,
                    );
                }
                let _ = conn.execute("ROLLBACK").await;
                conn.close_on_drop();
                state.finish(Err(Arc::from(error.to_string())));
            }
        }
    }
}

/// One write: the connection, inside its own savepoint of the open group.
pub(super) struct WriteTx {
    state: Option<OwnedMutexGuard<State>>,
    writer: GroupWriter,
    group: Joined,
    savepoint: u64,
}

impl WriteTx {
    /// Releases the savepoint and returns once the group commit holding it is durable (or,
    /// in a deferred scope, committed and recorded with the scope).
    pub(super) async fn commit(mut self) -> Result<()> {
        let mut state = self.state.take().expect("a write is committed once");
        // Cancelled during the release, the write stays abandoned and in doubt: the next
        // user of the connection (or the committer the group already has) ends the group.
        if let Err(error) = state.run(&format!("RELEASE w{}", self.savepoint)).await {
            state.fail_group(&error);
            return Err(error.into());
        }
        state.abandoned = None;
        let outcome = state.outcome.subscribe();
        drop(state);
        wait_for_commit(outcome).await?;
        self.writer.settled(self.group).await
    }
}

/// Waits for the commit of the group a write joined.
async fn wait_for_commit(mut outcome: watch::Receiver<Outcome>) -> Result<()> {
    let result = outcome
        .wait_for(Option::is_some)
        .await
        .map(|outcome| outcome.clone())
        .map_err(|_| group_error("the group commit was lost"))?;
    match result {
        Some(Ok(())) => Ok(()),
        Some(Err(message)) => Err(group_error(&message)),
        None => Err(group_error("the group commit was lost")),
    }
}

/// The database header's user version, which a syncing commit rewrites as it is (a change
/// of page 1, so the transaction has a frame for its commit to sync). Lethe never sets it
/// otherwise (its migrations are sqlx's table), so it is read once per writer; a tool that
/// changed it while Lethe runs would see it put back.
async fn read_header(conn: &mut PoolConnection<Sqlite>) -> std::result::Result<i64, sqlx::Error> {
    sqlx::query_scalar("PRAGMA user_version")
        .fetch_one(&mut **conn)
        .await
}

/// A constraint violation aborts only its statement (SQLite's default `ABORT`).
fn is_constraint_violation(error: &sqlx::Error) -> bool {
    use sqlx::error::ErrorKind;
    matches!(error, sqlx::Error::Database(db) if matches!(
        db.kind(),
        ErrorKind::UniqueViolation
            | ErrorKind::ForeignKeyViolation
            | ErrorKind::NotNullViolation
            | ErrorKind::CheckViolation
    ))
}

fn group_error(message: &str) -> StorageError {
    StorageError::Unavailable {
        backend: BACKEND,
        source: format!("commit failed: {message}").into(),
    }
}

impl Drop for WriteTx {
    /// Not committed: the savepoint stays marked abandoned, and the committer (or the next
    /// write) rolls it back before anything else runs on the connection.
    fn drop(&mut self) {
        if let Some(mut state) = self.state.take() {
            state.ensure_committer(&self.writer.shared);
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.state
            .as_ref()
            .and_then(|state| state.conn.as_deref())
            .expect("a write holds the open group")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.state
            .as_mut()
            .and_then(|state| state.conn.as_deref_mut())
            .expect("a write holds the open group")
    }
}

/// `query.execute_write(&writer)`: one statement as a write of its own.
pub(super) trait ExecuteWrite {
    fn execute_write(
        self,
        writer: &GroupWriter,
    ) -> impl std::future::Future<Output = Result<SqliteQueryResult>> + Send;
}

impl<'q> ExecuteWrite for sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>> {
    fn execute_write(
        self,
        writer: &GroupWriter,
    ) -> impl std::future::Future<Output = Result<SqliteQueryResult>> + Send {
        writer.execute(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
    use std::time::Duration;

    /// A writer over a fresh file with a table of unique numbers, and a reader pool; it
    /// defers durability inside a scope.
    async fn fresh() -> (tempfile::TempDir, GroupWriter, SqlitePool) {
        let (dir, writer, readers) = fresh_without_deferral().await;
        writer.allow_deferral();
        (dir, writer, readers)
    }

    /// [`fresh`], with a writer that syncs the WAL file itself ([`GroupWriter::with_wal`]).
    async fn fresh_with_wal() -> (tempfile::TempDir, GroupWriter, SqlitePool) {
        let (dir, writer, readers) = fresh().await;
        let wal = dir.path().join("w.db-wal");
        assert!(wal.exists(), "the database is in WAL mode");
        let writer = GroupWriter::with_wal(writer.shared.pool.clone(), Some(wal));
        writer.allow_deferral();
        warm_up(&writer).await;
        (dir, writer, readers)
    }

    /// A first scope: its sync opens the handle kept on the WAL file, and cannot use it
    /// yet (a syncing commit makes that scope durable).
    async fn warm_up(writer: &GroupWriter) {
        durable_by_a_syncing_commit(
            writer,
            sqlx::query("CREATE TABLE IF NOT EXISTS warm_up (x)").execute_write(writer),
        )
        .await;
    }

    /// The store as `lethe serve` opens it, deferring durability, and its writer, warmed up.
    async fn embedded_store() -> (
        tempfile::TempDir,
        crate::storage::sqlite::SqliteStore,
        GroupWriter,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = crate::storage::sqlite::SqliteStore::open(&dir.path().join("lethe.db"))
            .await
            .expect("opens");
        store.allow_deferred_durability();
        let writer = store.group_writer().clone();
        warm_up(&writer).await;
        (dir, store, writer)
    }

    /// Runs `scope` as a deferred scope, which must end durable through one syncing
    /// commit and no fsync of the WAL file.
    async fn durable_by_a_syncing_commit<T>(
        writer: &GroupWriter,
        scope: impl std::future::Future<Output = Result<T>>,
    ) {
        let (syncs, marks) = (writer.wal_syncs(), writer.sync_marks());
        durability::deferred(scope)
            .await
            .expect("the scope is durable");
        assert_eq!(writer.wal_syncs(), syncs, "not by an fsync of the WAL");
        assert_eq!(writer.sync_marks(), marks + 1, "by a syncing commit");
        assert!(writer.durable_through() >= writer.group().await);
    }

    /// [`fresh`], as a process whose stores are not all this database.
    async fn fresh_without_deferral() -> (tempfile::TempDir, GroupWriter, SqlitePool) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("w.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options.clone())
            .await
            .expect("opens");
        sqlx::query("CREATE TABLE n (x INTEGER PRIMARY KEY)")
            .execute(&pool)
            .await
            .expect("creates");
        let readers = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .expect("opens");
        (dir, GroupWriter::new(pool), readers)
    }

    async fn insert(writer: &GroupWriter, x: i64) -> Result<()> {
        sqlx::query("INSERT INTO n (x) VALUES (?)")
            .bind(x)
            .execute_write(writer)
            .await
            .map(|_| ())
    }

    async fn stored(readers: &SqlitePool) -> Vec<i64> {
        sqlx::query_scalar("SELECT x FROM n ORDER BY x")
            .fetch_all(readers)
            .await
            .expect("reads")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_writes_all_land_in_fewer_commits() {
        let (_dir, writer, readers) = fresh().await;
        let writes: Vec<_> = (0..200)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(async move { insert(&writer, x).await })
            })
            .collect();
        for write in writes {
            write.await.expect("joins").expect("each write commits");
        }
        assert_eq!(stored(&readers).await, (0..200).collect::<Vec<_>>());
        assert!(
            writer.commits() < 200,
            "200 concurrent writes took {} commits: nothing was grouped",
            writer.commits()
        );
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_write_takes_nothing_else_with_it() {
        let (_dir, writer, readers) = fresh().await;
        insert(&writer, 0).await.expect("first");
        // Every third write repeats 0 and fails; the others share commits with them.
        let writes: Vec<_> = (1..=90)
            .map(|x| {
                let writer = writer.clone();
                let x = if x % 3 == 0 { 0 } else { x };
                tokio::spawn(async move { (x, insert(&writer, x).await) })
            })
            .collect();
        let mut expected = vec![0];
        for write in writes {
            let (x, result) = write.await.expect("joins");
            match x {
                0 => assert!(
                    matches!(result, Err(StorageError::Conflict { .. })),
                    "{result:?}"
                ),
                x => {
                    result.expect("a good write commits");
                    expected.push(x);
                }
            }
        }
        expected.sort_unstable();
        assert_eq!(stored(&readers).await, expected);
    }

    #[tokio::test]
    async fn a_write_dropped_before_its_commit_is_rolled_back() {
        let (_dir, writer, readers) = fresh().await;
        let mut abandoned = writer.begin().await.expect("begins");
        sqlx::query("INSERT INTO n (x) VALUES (1)")
            .execute(&mut *abandoned)
            .await
            .expect("inserts");
        drop(abandoned);
        insert(&writer, 2).await.expect("the next write commits");
        assert_eq!(stored(&readers).await, vec![2]);
    }

    /// As after an I/O error that makes SQLite roll back by itself: the transaction ends
    /// behind the group's back. The write is told it failed, and the next group starts on
    /// a fresh connection in a real transaction.
    #[tokio::test]
    async fn a_transaction_ended_behind_the_group_fails_it_and_the_next_starts_clean() {
        let (_dir, writer, readers) = fresh().await;
        let mut tx = writer.begin().await.expect("begins");
        sqlx::query("INSERT INTO n (x) VALUES (1)")
            .execute(&mut *tx)
            .await
            .expect("inserts");
        sqlx::query("ROLLBACK")
            .execute(&mut *tx)
            .await
            .expect("ends the transaction");
        assert!(tx.commit().await.is_err(), "the write is told it failed");
        insert(&writer, 2).await.expect("the next write commits");
        let mut tx = writer.begin().await.expect("begins");
        sqlx::query("INSERT INTO n (x) VALUES (3)")
            .execute(&mut *tx)
            .await
            .expect("inserts");
        drop(tx);
        insert(&writer, 4).await.expect("commits");
        assert_eq!(
            stored(&readers).await,
            vec![2, 4],
            "3 was rolled back alone"
        );
    }

    /// Inside a deferred scope a write commits without a sync and is visible at once; the
    /// scope's end makes it durable with one commit that syncs.
    #[tokio::test]
    async fn deferred_writes_commit_without_a_sync_and_the_scope_syncs_them_once() {
        let (_dir, writer, readers) = fresh().await;
        insert(&writer, 0).await.expect("a durable write");
        let durable_before = writer.durable_through();
        assert_eq!(
            durable_before,
            writer.group().await,
            "outside a scope: synced"
        );
        let (inside, commits_inside) = durability::deferred(async {
            for x in 1..=3 {
                insert(&writer, x).await?;
                assert!(
                    stored(&readers).await.contains(&x),
                    "committed and visible before the scope ends"
                );
            }
            let mut tx = writer.begin().await?;
            sqlx::query("INSERT INTO n (x) VALUES (4)")
                .execute(&mut *tx)
                .await
                .map_err(StorageError::from)?;
            tx.commit().await?;
            Ok::<_, StorageError>((writer.durable_through(), writer.commits()))
        })
        .await
        .expect("the scope's writes commit");
        assert_eq!(inside, durable_before, "no write inside the scope synced");
        let last = writer.group().await;
        assert!(
            writer.durable_through() >= last,
            "the scope ended with a sync"
        );
        assert_eq!(
            writer.commits(),
            commits_inside + 1,
            "one sync for the scope"
        );
        assert_eq!(stored(&readers).await, vec![0, 1, 2, 3, 4]);
    }

    /// With the WAL file known, a scope's end makes its writes durable with one fsync of
    /// that file and no commit of its own; a sync that already covered them needs none.
    #[tokio::test]
    async fn a_scope_is_made_durable_by_an_fsync_of_the_wal_not_by_another_commit() {
        let (_dir, writer, readers) = fresh_with_wal().await;
        insert(&writer, 0).await.expect("a durable write");
        let durable_before = writer.durable_through();
        let commits_inside = durability::deferred(async {
            for x in 1..=3 {
                insert(&writer, x).await?;
            }
            assert_eq!(
                writer.durable_through(),
                durable_before,
                "nothing synced yet"
            );
            Ok::<_, StorageError>(writer.commits())
        })
        .await
        .expect("the scope's writes commit and sync");
        assert_eq!(writer.commits(), commits_inside, "no commit to sync them");
        assert_eq!(writer.wal_syncs(), 1, "one fsync of the WAL");
        assert!(writer.durable_through() >= writer.group().await);
        assert_eq!(stored(&readers).await, vec![0, 1, 2, 3]);
        // Everything the fsync covered is durable without another one.
        writer
            .make_durable(writer.group().await)
            .await
            .expect("covered");
        assert_eq!(writer.wal_syncs(), 1);
    }

    /// Many scopes ending together share fsyncs: each waits behind the one in progress,
    /// which often covers its writes too.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_scopes_share_fsyncs_of_the_wal() {
        let (_dir, writer, readers) = fresh_with_wal().await;
        let marks = writer.sync_marks();
        let scopes: Vec<_> = (0..64)
            .map(|x| {
                let writer = writer.clone();
                tokio::spawn(durability::deferred(async move {
                    insert(&writer, 2 * x).await?;
                    insert(&writer, 2 * x + 1).await
                }))
            })
            .collect();
        for scope in scopes {
            scope.await.expect("joins").expect("durable");
        }
        assert_eq!(stored(&readers).await, (0..128).collect::<Vec<_>>());
        assert!(writer.durable_through() >= writer.group().await);
        assert!(writer.wal_syncs() >= 1, "the scopes ended with fsyncs");
        assert!(
            writer.wal_syncs() < 64,
            "64 scopes took {} fsyncs: none was shared",
            writer.wal_syncs()
        );
        assert_eq!(writer.sync_marks(), marks, "and no syncing commit");
    }

    /// The store as `lethe serve` opens it syncs its WAL file itself.
    #[tokio::test]
    async fn the_embedded_store_syncs_its_wal_directly() {
        let (_dir, _store, writer) = embedded_store().await;
        let commits = durability::deferred(async {
            sqlx::query("INSERT INTO data_keys (scope, wrapped) VALUES ('a-scope', x'00')")
                .execute_write(&writer)
                .await?;
            Ok::<_, StorageError>(writer.commits())
        })
        .await
        .expect("durable");
        assert_eq!(writer.wal_syncs(), 1, "one fsync of the WAL file");
        assert_eq!(writer.commits(), commits, "no syncing commit");
    }

    /// A WAL file gone from its path (SQLite removes it when its last connection closes,
    /// after a checkpoint) is no failure: a syncing commit makes the scope durable.
    #[tokio::test]
    async fn a_wal_missing_from_its_path_is_made_durable_by_a_syncing_commit() {
        let (dir, writer, _readers) = fresh_with_wal().await;
        insert(&writer, 0).await.expect("a durable write");
        let (wal, aside) = (dir.path().join("w.db-wal"), dir.path().join("aside"));
        durable_by_a_syncing_commit(&writer, async {
            insert(&writer, 1).await?;
            std::fs::rename(&wal, &aside).expect("moves the WAL aside");
            Ok(())
        })
        .await;
        std::fs::rename(&aside, &wal).expect("puts the WAL back");
    }

    /// A different file at the WAL's path than the kept handle's: not trusted, a syncing
    /// commit makes the scope durable.
    #[tokio::test]
    async fn a_wal_replaced_under_its_path_is_not_synced_through_the_old_handle() {
        let (dir, writer, _readers) = fresh_with_wal().await;
        insert(&writer, 0).await.expect("a durable write");
        let (wal, copy) = (dir.path().join("w.db-wal"), dir.path().join("copy"));
        durable_by_a_syncing_commit(&writer, async {
            insert(&writer, 1).await?;
            std::fs::copy(&wal, &copy).expect("copies the WAL");
            std::fs::rename(&copy, &wal).expect("puts another file at its path");
            Ok(())
        })
        .await;
    }

    /// A failed fsync of the WAL fails the scope and loses every group committed by then:
    /// no later sync vouches for them, and syncing commits make groups durable from then on
    /// (a handle opened after the failure would not be told of it).
    #[tokio::test]
    async fn a_failed_fsync_of_the_wal_loses_what_it_covered_and_syncing_commits_take_over() {
        let (_dir, writer, _readers) = fresh_with_wal().await;
        insert(&writer, 0).await.expect("a durable write");
        let failed = durability::deferred(async {
            insert(&writer, 1).await?;
            writer
                .shared
                .fail_next_wal_sync
                .store(true, Ordering::SeqCst);
            Ok::<_, StorageError>(())
        })
        .await;
        assert!(
            failed.is_err(),
            "the scope is told its writes are not durable"
        );
        let lost = writer.committed_through();
        assert!(writer.make_durable(lost).await.is_err(), "lost");
        let syncs = writer.wal_syncs();
        let marks = writer.sync_marks();
        insert(&writer, 2).await.expect("a later durable write");
        durability::deferred(insert(&writer, 3))
            .await
            .expect("a later scope is durable");
        assert_eq!(writer.wal_syncs(), syncs, "no fsync of the WAL since");
        assert!(writer.sync_marks() > marks, "syncing commits instead");
        assert!(writer.durable_through() >= writer.group().await);
        assert!(
            writer.make_durable(lost).await.is_err(),
            "a later sync does not vouch for the lost group"
        );
    }

    /// A request cancelled while its fsync runs: the fsync goes on in a task of its own,
    /// and its failure is recorded all the same.
    #[tokio::test]
    async fn a_failed_fsync_is_recorded_even_if_its_caller_is_gone() {
        let (_dir, writer, _readers) = fresh_with_wal().await;
        let _ = durability::deferred(async {
            insert(&writer, 1).await?;
            let group = writer.committed_through();
            writer
                .shared
                .fail_next_wal_sync
                .store(true, Ordering::SeqCst);
            let mut caller = Box::pin(writer.make_durable(group));
            assert!(
                futures::poll!(&mut caller).is_pending(),
                "the fsync has started in its own task"
            );
            drop(caller);
            // The caller is gone; the failure still lands.
            tokio::time::timeout(Duration::from_secs(10), async {
                while writer.shared.lost_through.load(Ordering::SeqCst) < group {
                    tokio::task::yield_now().await;
                }
            })
            .await
            .expect("the failure was recorded");
            assert!(writer.make_durable(group).await.is_err(), "lost");
            Ok::<_, StorageError>(())
        })
        .await;
    }

    /// A failed fsync after a WAL truncation (a key's destruction) is told to the writer,
    /// which then makes scopes durable by syncing commits, as after one of its own.
    #[tokio::test]
    async fn a_failed_fsync_after_a_truncation_is_the_writers_to_know() {
        use crate::storage::encrypted::DataKeyStore;
        let (_dir, store, writer) = embedded_store().await;
        store
            .create_data_key("a-scope", b"wrapped")
            .await
            .expect("a key");
        writer
            .shared
            .fail_next_wal_sync
            .store(true, Ordering::SeqCst);
        assert!(
            store.destroy_data_keys(&["a-scope"]).await.is_err(),
            "the destruction is not done"
        );
        assert!(writer.shared.wal_sync_failed.load(Ordering::SeqCst));
        durable_by_a_syncing_commit(
            &writer,
            sqlx::query("INSERT INTO data_keys (scope, wrapped) VALUES ('b-scope', x'00')")
                .execute_write(&writer),
        )
        .await;
    }

    /// A write outside any scope that lands in a group committed without a sync returns
    /// only after a durable commit; a sync already covered needs no commit of its own.
    #[tokio::test]
    async fn a_write_in_an_unsynced_group_waits_for_a_sync() {
        let (_dir, writer, _readers) = fresh().await;
        durability::deferred(insert(&writer, 1))
            .await
            .expect("commits");
        let synced_earlier = writer.group().await;
        // Another deferred write whose scope is not over yet: its group has not synced.
        let scope = durability::deferred(async {
            insert(&writer, 2).await?;
            let group = writer.group().await;
            assert!(writer.durable_through() < group);
            writer.settled(Joined::Unsynced(group)).await?;
            assert!(writer.durable_through() >= group, "waited for a sync");
            let commits = writer.commits();
            writer.settled(Joined::Unsynced(synced_earlier)).await?;
            assert_eq!(writer.commits(), commits, "already covered: no commit");
            Ok::<_, StorageError>(())
        });
        scope.await.expect("syncs");
    }

    /// A syncing commit that changes nothing itself (a write that matched no row), after
    /// one that did not sync: SQLite would commit it without touching the WAL, so the
    /// committer gives it a frame to sync before counting it durable.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_empty_syncing_commit_after_unsynced_ones_still_syncs() {
        let (_dir, writer, _readers) = fresh().await;
        insert(&writer, 0).await.expect("a durable write");
        let marks = writer.sync_marks();
        durability::deferred(async {
            insert(&writer, 1).await?;
            assert!(writer.durable_through() < writer.group().await);
            // Outside the scope (another task): durable, and it changes no page.
            let other = writer.clone();
            tokio::spawn(async move {
                sqlx::query("DELETE FROM n WHERE 0")
                    .execute_write(&other)
                    .await
            })
            .await
            .expect("joins")?;
            assert_eq!(
                writer.sync_marks(),
                marks + 1,
                "the empty commit wrote a frame to sync"
            );
            assert!(writer.durable_through() >= writer.group().await);
            Ok::<_, StorageError>(())
        })
        .await
        .expect("commits");
        insert(&writer, 2).await.expect("a durable write");
        assert_eq!(
            writer.sync_marks(),
            marks + 1,
            "a syncing commit after syncing ones needs no extra frame"
        );
    }

    /// Deferral is off unless the process allowed it: inside a scope every write syncs.
    #[tokio::test]
    async fn without_allowing_deferral_a_scope_changes_nothing() {
        let (_dir, writer, _readers) = fresh_without_deferral().await;
        durability::deferred(async {
            insert(&writer, 1).await?;
            assert_eq!(writer.durable_through(), writer.group().await, "synced");
            Ok::<_, StorageError>(())
        })
        .await
        .expect("commits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_write_leaves_nothing_and_blocks_nobody() {
        let (_dir, writer, readers) = fresh().await;
        let (inserted, was_inserted) = tokio::sync::oneshot::channel();
        let cancelled = {
            let writer = writer.clone();
            tokio::spawn(async move {
                let mut tx = writer.begin().await.expect("begins");
                sqlx::query("INSERT INTO n (x) VALUES (7)")
                    .execute(&mut *tx)
                    .await
                    .expect("inserts");
                inserted.send(()).expect("the test waits");
                // A request that never finishes: it is aborted here, holding the write.
                std::future::pending::<()>().await;
                tx.commit().await
            })
        };
        was_inserted.await.expect("inserted");
        cancelled.abort();
        assert!(cancelled.await.expect_err("aborted").is_cancelled());
        // Alone, the abandoned write's transaction still ends: the connection is free.
        tokio::time::timeout(Duration::from_secs(10), insert(&writer, 8))
            .await
            .expect("the writer is not blocked")
            .expect("commits");
        assert_eq!(stored(&readers).await, vec![8]);
    }
}
