//! The embedded profile's reader connections, handed out without sqlx's pool.
//!
//! A sqlx SQLite connection is a library on a thread of its own; every command is a
//! round trip to that thread (a wake-up there, and one back). sqlx's pool pings a
//! connection each time it is released, "to ensure it is still viable": a second round
//! trip for every query, half of a list request's wake-ups, and it can find nothing a
//! query would not. These connections only read, outside any transaction (a statement
//! is reset when its rows are read or dropped, so none holds a snapshot once returned),
//! and go straight back to the idle list. They must never begin a transaction: a
//! snapshot held open would keep the WAL from the truncation a deletion waits for.
//!
//! A query cut off mid-flight is finished (or stopped at its next row) by the
//! connection's thread, which then resets the statement: the next user of the connection
//! queues behind it, and a truncation meanwhile waits for it in SQLite's busy handler. A
//! connection whose thread has gone (sqlx's `WorkerCrashed`) is closed when handed back,
//! not kept. sqlx's pool found that with its ping, before any query; here the first query
//! on such a connection fails, and the next read gets another.

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{TryFutureExt, TryStreamExt};
use sqlx::pool::PoolConnection;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteConnection, SqlitePool, SqliteQueryResult, SqliteRow,
    SqliteStatement, SqliteTypeInfo,
};
use sqlx::{ConnectOptions, Describe, Either, Execute, Executor, Sqlite};
use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{Result, StorageError};

/// How long a read waits for a connection (sqlx's pool default).
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// At most `size` reader connections, opened as needed and kept.
#[derive(Clone)]
pub(super) struct Readers {
    source: Arc<Source>,
}

enum Source {
    Own {
        options: Box<SqliteConnectOptions>,
        /// One permit per connection that may be open.
        permits: Arc<Semaphore>,
        idle: Mutex<Vec<SqliteConnection>>,
    },
    /// A database in memory exists per connection: reads share the writer's pool.
    Writer(SqlitePool),
}

impl fmt::Debug for Readers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Readers").finish_non_exhaustive()
    }
}

impl Readers {
    pub(super) fn new(options: SqliteConnectOptions, size: usize) -> Self {
        Self {
            source: Arc::new(Source::Own {
                options: Box::new(options),
                permits: Arc::new(Semaphore::new(size)),
                idle: Mutex::new(Vec::with_capacity(size)),
            }),
        }
    }

    /// Reads through `pool` (a database in memory exists per connection).
    pub(super) fn sharing(pool: SqlitePool) -> Self {
        Self {
            source: Arc::new(Source::Writer(pool)),
        }
    }

    /// An idle connection, or a new one while fewer than `size` are open; else waits for
    /// one to come back.
    pub(super) async fn acquire(&self) -> Result<Reader> {
        let (conn, permit) = match &*self.source {
            Source::Writer(pool) => (Conn::Pooled(pool.acquire().await?), None),
            Source::Own {
                options,
                permits,
                idle,
            } => {
                // As sqlx's pool did: a read that cannot get a connection (a free one, or
                // a new one opened) for this long fails as unavailable rather than waiting.
                let take_or_open = async {
                    let permit = permits
                        .clone()
                        .acquire_owned()
                        .await
                        .expect("the semaphore is never closed");
                    let idle = lock(idle).pop();
                    let conn = match idle {
                        Some(conn) => conn,
                        None => options.connect().await?,
                    };
                    Ok::<_, StorageError>((Conn::Own(conn), Some(permit)))
                };
                tokio::time::timeout(ACQUIRE_TIMEOUT, take_or_open)
                    .await
                    .map_err(|_| StorageError::Unavailable {
                        backend: "sqlite",
                        source: format!("no reader connection within {ACQUIRE_TIMEOUT:?}").into(),
                    })??
            }
        };
        Ok(Reader {
            conn: Some(conn),
            readers: self.clone(),
            broken: AtomicBool::new(false),
            _permit: permit,
        })
    }
}

fn lock(idle: &Mutex<Vec<SqliteConnection>>) -> std::sync::MutexGuard<'_, Vec<SqliteConnection>> {
    idle.lock().unwrap_or_else(|e| e.into_inner())
}

/// A reader connection until dropped, when it goes back to the idle list (a command a
/// cancelled request left queued runs before the next user's). Queries run on it as
/// `query.fetch_all(&mut reader)`.
pub(super) struct Reader {
    conn: Option<Conn>,
    readers: Readers,
    /// A query found the connection's thread gone: closed, not handed out again.
    broken: AtomicBool,
    _permit: Option<OwnedSemaphorePermit>,
}

enum Conn {
    Own(SqliteConnection),
    Pooled(PoolConnection<Sqlite>),
}

impl Reader {
    /// The connection, and where a query on it records that its thread is gone.
    fn parts(&mut self) -> (&mut SqliteConnection, &AtomicBool) {
        let conn: &mut SqliteConnection = match self.conn.as_mut().expect("held until dropped") {
            Conn::Own(conn) => conn,
            Conn::Pooled(conn) => conn,
        };
        (conn, &self.broken)
    }
}

fn note(broken: &AtomicBool, error: &sqlx::Error) {
    if matches!(error, sqlx::Error::WorkerCrashed) {
        broken.store(true, Ordering::SeqCst);
    }
}

impl fmt::Debug for Reader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Reader").finish_non_exhaustive()
    }
}

impl<'c> Executor<'c> for &'c mut Reader {
    type Database = Sqlite;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<SqliteQueryResult, SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let (conn, broken) = self.parts();
        Box::pin(conn.fetch_many(query).inspect_err(move |e| note(broken, e)))
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<SqliteRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Sqlite>,
    {
        let (conn, broken) = self.parts();
        Box::pin(
            conn.fetch_optional(query)
                .inspect_err(move |e| note(broken, e)),
        )
    }

    fn prepare_with<'e, 'q: 'e>(
        self,
        sql: &'q str,
        parameters: &'e [SqliteTypeInfo],
    ) -> BoxFuture<'e, Result<SqliteStatement<'q>, sqlx::Error>>
    where
        'c: 'e,
    {
        let (conn, broken) = self.parts();
        Box::pin(
            conn.prepare_with(sql, parameters)
                .inspect_err(move |e| note(broken, e)),
        )
    }

    fn describe<'e, 'q: 'e>(
        self,
        sql: &'q str,
    ) -> BoxFuture<'e, Result<Describe<Sqlite>, sqlx::Error>>
    where
        'c: 'e,
    {
        let (conn, broken) = self.parts();
        Box::pin(conn.describe(sql).inspect_err(move |e| note(broken, e)))
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        let broken = self.broken.load(Ordering::SeqCst);
        if let (Some(Conn::Own(conn)), Source::Own { idle, .. }) =
            (self.conn.take(), &*self.readers.source)
        {
            if !broken {
                lock(idle).push(conn);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::{FutureExt, StreamExt};
    use sqlx::sqlite::SqliteJournalMode;
    use std::time::Duration;

    fn options(dir: &tempfile::TempDir) -> SqliteConnectOptions {
        SqliteConnectOptions::new()
            .filename(dir.path().join("r.db"))
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .busy_timeout(Duration::from_secs(5))
    }

    /// A writer connection on a file with 100 rows.
    async fn file_with_rows(dir: &tempfile::TempDir) -> SqliteConnection {
        let mut writer = options(dir).connect().await.expect("opens");
        sqlx::query("CREATE TABLE n (x INTEGER PRIMARY KEY)")
            .execute(&mut writer)
            .await
            .expect("creates");
        sqlx::query(
            "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100)
             INSERT INTO n SELECT x FROM c",
        )
        .execute(&mut writer)
        .await
        .expect("inserts");
        writer
    }

    #[tokio::test]
    async fn a_returned_connection_is_handed_out_again() {
        let dir = tempfile::tempdir().expect("tempdir");
        let readers = Readers::new(options(&dir), 1);
        let mut first = readers.acquire().await.expect("opens");
        // A temporary table exists on its own connection only.
        sqlx::query("CREATE TEMP TABLE mine (x)")
            .execute(&mut first)
            .await
            .expect("creates");
        drop(first);
        let mut again = readers.acquire().await.expect("reuses");
        let found: i64 = sqlx::query_scalar("SELECT count(*) FROM temp.sqlite_master")
            .fetch_one(&mut again)
            .await
            .expect("reads");
        assert_eq!(found, 1, "the same connection came back");
    }

    #[tokio::test]
    async fn no_more_than_its_size_are_open_and_a_waiting_read_gets_one_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let readers = Readers::new(options(&dir), 2);
        let (a, _b) = (
            readers.acquire().await.expect("first"),
            readers.acquire().await.expect("second"),
        );
        let waiting = tokio::spawn({
            let readers = readers.clone();
            async move { readers.acquire().await.map(|_| ()) }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "a third waits while two are out");
        drop(a);
        tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("served once one came back")
            .expect("joins")
            .expect("reads");
        let Source::Own { idle, .. } = &*readers.source else {
            unreachable!("a file's readers")
        };
        assert_eq!(lock(idle).len(), 1, "no third connection was opened");
    }

    /// What the WAL's truncation after a deletion relies on: a connection handed back
    /// holds no snapshot, even after a read dropped halfway through its rows or a query
    /// cancelled mid-flight.
    #[tokio::test]
    async fn a_read_dropped_halfway_leaves_no_snapshot_to_block_a_truncation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut writer = file_with_rows(&dir).await;
        let readers = Readers::new(options(&dir), 1);
        {
            let mut reader = readers.acquire().await.expect("opens");
            let mut rows = sqlx::query("SELECT x FROM n ORDER BY x").fetch(&mut reader);
            rows.next().await.expect("a row").expect("reads");
        }
        {
            let mut reader = readers.acquire().await.expect("reuses");
            // Polled once (sent to the connection's thread), then dropped.
            let cancelled = sqlx::query("SELECT count(*) FROM n a, n b, n c")
                .fetch_all(&mut reader)
                .now_or_never();
            assert!(cancelled.is_none(), "the query was cut off");
        }
        sqlx::query("DELETE FROM n WHERE x > 50")
            .execute(&mut writer)
            .await
            .expect("deletes");
        let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&mut writer)
            .await
            .expect("checkpoints");
        assert_eq!(busy, 0, "no reader kept the WAL from its truncation");
        let mut reader = readers.acquire().await.expect("reuses");
        let left: i64 = sqlx::query_scalar("SELECT count(*) FROM n")
            .fetch_one(&mut reader)
            .await
            .expect("the connection still reads");
        assert_eq!(left, 50);
    }
}
