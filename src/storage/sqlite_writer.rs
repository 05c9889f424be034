//! Group commit for the embedded profile's one SQLite writer connection.
//!
//! Every write runs in its own savepoint of one shared transaction (a single statement,
//! atomic by itself, needs none). As soon as a write has
//! released its savepoint, a spawned committer queues for the connection behind the writes
//! already waiting, then commits them all with one `COMMIT` (one WAL fsync under
//! `synchronous=FULL`) and tells each writer how it went. A writer returns only once the
//! commit that holds its write is durable, so every guarantee of one commit per write
//! holds; concurrent requests just share the fsync. A write that fails or is abandoned
//! (an error, a cancelled request) is rolled back to its savepoint and takes nothing else
//! with it.
//!
//! Alone, a write costs what it did (BEGIN, the write, COMMIT) plus a savepoint; under
//! load the groups grow by themselves, because writers queue while a commit's fsync runs.

use sqlx::sqlite::{SqliteArguments, SqliteConnection, SqlitePool, SqliteQueryResult};
use sqlx::{Sqlite, Transaction};
use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use tokio::sync::{watch, Mutex, OwnedMutexGuard};

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
    /// A pool of exactly one connection: the open group transaction holds it.
    pool: SqlitePool,
    state: Arc<Mutex<State>>,
    /// Group commits so far (each one `COMMIT`).
    commits: AtomicU64,
}

struct State {
    /// The open group transaction, if any.
    tx: Option<Transaction<'static, Sqlite>>,
    /// A write left its savepoint unreleased (it failed or was dropped): the next user of
    /// the connection rolls it back first.
    abandoned: bool,
    /// A committer is on its way for the open transaction.
    committing: bool,
    /// Tells the writers of the open transaction how its commit went.
    outcome: watch::Sender<Outcome>,
}

impl GroupWriter {
    /// `pool` must hold at most one connection, used by nothing else for writes.
    pub(super) fn new(pool: SqlitePool) -> Self {
        Self {
            shared: Arc::new(Shared {
                pool,
                state: Arc::new(Mutex::new(State {
                    tx: None,
                    abandoned: false,
                    committing: false,
                    outcome: watch::channel(None).0,
                })),
                commits: AtomicU64::new(0),
            }),
        }
    }

    /// The connection, in a savepoint of the group transaction, until
    /// [`WriteTx::commit`] (durable when it returns) or drop (rolled back).
    pub(super) async fn begin(&self) -> Result<WriteTx> {
        let mut state = self.shared.state.clone().lock_owned().await;
        let opened = async {
            state.undo_abandoned().await;
            if state.tx.is_none() {
                state.tx = Some(self.shared.pool.begin().await?);
            }
            // If this request is cancelled before it holds its write, the transaction
            // still ends.
            state.ensure_committer(&self.shared);
            let tx = state.tx.as_mut().expect("opened above");
            sqlx::query("SAVEPOINT lethe_write")
                .execute(&mut **tx)
                .await?;
            Ok::<(), StorageError>(())
        }
        .await;
        match opened {
            Ok(()) => {
                state.abandoned = true;
                Ok(WriteTx {
                    state: Some(state),
                    shared: self.shared.clone(),
                })
            }
            Err(error) => {
                // Whatever other writes the transaction holds still get their commit.
                state.ensure_committer(&self.shared);
                Err(error)
            }
        }
    }

    /// How many group commits have run.
    #[cfg(test)]
    pub(super) fn commits(&self) -> u64 {
        self.shared.commits.load(Ordering::Relaxed)
    }

    /// One statement as a write of its own. A statement is atomic in SQLite, so it needs
    /// no savepoint (two round trips to the connection fewer): a constraint violation
    /// undoes only the statement and leaves the transaction as it was; any other error
    /// may have rolled back the whole transaction, so the group is ended as failed
    /// (its writers are told) rather than trusted.
    pub(super) async fn execute<'q>(
        &self,
        query: sqlx::query::Query<'q, Sqlite, SqliteArguments<'q>>,
    ) -> Result<SqliteQueryResult> {
        let mut state = self.shared.state.clone().lock_owned().await;
        state.undo_abandoned().await;
        if state.tx.is_none() {
            state.tx = Some(self.shared.pool.begin().await?);
        }
        // Before the statement: if this request is cancelled while it runs, the
        // transaction still ends.
        state.ensure_committer(&self.shared);
        let tx = state.tx.as_mut().expect("opened above");
        match query.execute(&mut **tx).await {
            Ok(done) => {
                let outcome = state.outcome.subscribe();
                state.ensure_committer(&self.shared);
                drop(state);
                wait_for_commit(outcome).await?;
                Ok(done)
            }
            Err(error) if is_constraint_violation(&error) => {
                state.ensure_committer(&self.shared);
                Err(error.into())
            }
            Err(error) => {
                state.tx = None; // dropping it rolls it back
                state.finish(Err(Arc::from(format!(
                    "the group of writes was rolled back: {error}"
                ))));
                Err(error.into())
            }
        }
    }
}

impl State {
    /// Rolls back a savepoint a writer left; if even that fails, the whole transaction
    /// is rolled back and its writers are told.
    async fn undo_abandoned(&mut self) {
        if !std::mem::take(&mut self.abandoned) {
            return;
        }
        let Some(tx) = self.tx.as_mut() else {
            return;
        };
        let undone = sqlx::query("ROLLBACK TO lethe_write; RELEASE lethe_write")
            .execute(&mut **tx)
            .await;
        if let Err(error) = undone {
            tracing::error!(%error, "rolling back a failed SQLite write failed; its group is rolled back");
            self.tx = None; // dropping it rolls it back
            self.finish(Err(Arc::from(format!(
                "the group of writes was rolled back: {error}"
            ))));
        }
    }

    fn ensure_committer(&mut self, shared: &Arc<Shared>) {
        if self.tx.is_none() || self.committing {
            return;
        }
        // Outside a runtime the process is ending: the open transaction rolls back.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            self.committing = true;
            let shared = shared.clone();
            runtime.spawn(async move { shared.commit_group().await });
        }
    }

    /// Tells the writers of the group whose transaction just ended how it went; later
    /// writes belong to the next group, with a channel of their own.
    fn finish(&mut self, outcome: std::result::Result<(), Arc<str>>) {
        let ended = std::mem::replace(&mut self.outcome, watch::channel(None).0);
        self.committing = false;
        ended.send_replace(Some(outcome));
    }
}

impl Shared {
    /// Waits behind the writes already queued, then commits them all. Holding the lock
    /// through the commit keeps the next group's writes for the next commit.
    async fn commit_group(&self) {
        let mut state = self.state.lock().await;
        state.undo_abandoned().await;
        let Some(tx) = state.tx.take() else {
            // Already ended (rolled back and reported, or committed by another committer).
            state.committing = false;
            return;
        };
        self.commits.fetch_add(1, Ordering::Relaxed);
        let outcome = tx.commit().await.map_err(|error| {
            tracing::error!(%error, "a SQLite group commit failed");
            Arc::from(error.to_string())
        });
        state.finish(outcome);
    }
}

/// One write: the connection, inside a savepoint of the open group transaction.
pub(super) struct WriteTx {
    state: Option<OwnedMutexGuard<State>>,
    shared: Arc<Shared>,
}

impl WriteTx {
    /// Releases the savepoint and returns once the group commit holding it is durable.
    pub(super) async fn commit(mut self) -> Result<()> {
        let mut state = self.state.take().expect("a write is committed once");
        let tx = state
            .tx
            .as_mut()
            .expect("a write holds the open transaction");
        let released = sqlx::query("RELEASE lethe_write").execute(&mut **tx).await;
        if let Err(error) = released {
            state.ensure_committer(&self.shared);
            return Err(error.into());
        }
        state.abandoned = false;
        let outcome = state.outcome.subscribe();
        state.ensure_committer(&self.shared);
        drop(state);
        wait_for_commit(outcome).await
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
            state.ensure_committer(&self.shared);
        }
    }
}

impl Deref for WriteTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.state
            .as_ref()
            .and_then(|state| state.tx.as_deref())
            .expect("a write holds the open transaction")
    }
}

impl DerefMut for WriteTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.state
            .as_mut()
            .and_then(|state| state.tx.as_deref_mut())
            .expect("a write holds the open transaction")
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

    /// A writer over a fresh file with a table of unique numbers, and a reader pool.
    async fn fresh() -> (tempfile::TempDir, GroupWriter, SqlitePool) {
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
