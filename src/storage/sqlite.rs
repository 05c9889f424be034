//! The embedded profile's SQL backend: accounts, the artifact index and the audit log in
//! one SQLite file (WAL, `synchronous=FULL`, `secure_delete=ON`).
//!
//! No column holds customer content, and `secure_delete` zeroes freed pages anyway, so a
//! deleted artifact leaves nothing readable in the database file or its WAL.
//!
//! Writes share commits ([`super::sqlite_writer`]): concurrent requests pay one fsync per
//! group, each still told of its write only once it is durable.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
    SqliteSynchronous,
};
use sqlx::{QueryBuilder, Row, Sqlite};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Rows (or bound ids) per multi-row statement: far below SQLite's 32,766 variables.
const ROWS_PER_STATEMENT: usize = 1000;
use std::path::Path;
use std::str::FromStr;
use uuid::Uuid;

use super::encrypted::{KeyAndRow, ReadWithPage};
use super::sqlite_readers::{Reader, Readers};
use super::sqlite_writer::{ExecuteWrite, GroupWriter};
use super::{
    AccountStore, ArtifactIndex, AuditLog, Claim, PageWithArtifacts, Result, StorageError,
    TranscriptQuery,
};
use crate::domain::{
    content_scope, Account, AccountId, ApiKeyHash, Artifact, ArtifactId, ArtifactKind,
    ArtifactState, DeletionReason, DeletionWebhook, DeliveryState, LegalHold, ReconcileReport,
    Region, RetentionJob, RetentionSettings, Schedule, ScheduleKind, SweepReport, SweepState,
    Tombstone, Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus, UsageKind,
    UsageRecord, WebhookDelivery, WebhookEvent, HOLD_OWNER,
};

const BACKEND: &str = "sqlite";

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");

#[derive(Clone, Debug)]
pub struct SqliteStore {
    /// Reads (WAL: they never wait for a writer).
    readers: Readers,
    /// sqlx's pool on the same file, for tools and tests ([`SqliteStore::pool`]).
    pool: SqlitePool,
    /// Writes, one connection with group commit: concurrent writers queue here, first
    /// come first served, instead of meeting SQLite's lock and backing off in its busy
    /// handler (sleeps of up to 100 ms each, which were most of the API's p99 under
    /// concurrent ingest), and share each commit's fsync.
    writer: GroupWriter,
    /// The writer's connection, for what must run outside a transaction (checkpoints).
    writer_pool: SqlitePool,
    /// Whether this file is the process's account store, so a transcript's account may be
    /// read with it ([`SqliteStore::keeps_accounts`]).
    accounts_here: Arc<std::sync::atomic::AtomicBool>,
    /// Whether this file also keeps the content's data keys and small objects, so a page's
    /// may be read with it ([`SqliteStore::keeps_content`]).
    content_here: Arc<std::sync::atomic::AtomicBool>,
    /// This store's number, the same for its clones, never another open store's
    /// ([`DataKeyStore::identity`]).
    opened: usize,
    /// Deletions whose older copies may still be in the WAL, and how far truncations have
    /// covered them.
    shredding: Arc<WalShredding>,
    /// The WAL file beside the database (none in memory), synced after each truncation:
    /// SQLite truncates it without a sync, so a power loss could bring back the copies of
    /// deleted rows the truncation removed.
    wal: Option<Arc<std::path::PathBuf>>,
    /// The database file as SQLite resolved it (none in memory).
    file: Option<Arc<std::path::PathBuf>>,
    /// The connection that holds the file's pages in memory, once asked to
    /// ([`SqliteStore::hold_in_memory`]); never used again, kept while the store lives.
    held: Arc<std::sync::Mutex<Option<sqlx::SqliteConnection>>>,
}

/// Deletions of content (rows, data keys) are numbered once committed; a truncation of the
/// WAL covers every deletion numbered before it started. A deletion is done once a
/// truncation covers its number. Starts with one deletion pending: after a restart,
/// whatever an interrupted deletion left in the WAL is truncated by the first one.
#[derive(Debug)]
struct WalShredding {
    deletions: std::sync::atomic::AtomicU64,
    /// The last deletion a successful truncation covered; held while truncating.
    truncated: tokio::sync::Mutex<u64>,
    /// A background task retries a failed truncation.
    retrying: std::sync::atomic::AtomicBool,
}

impl Default for WalShredding {
    fn default() -> Self {
        Self {
            deletions: std::sync::atomic::AtomicU64::new(1),
            truncated: tokio::sync::Mutex::new(0),
            retrying: std::sync::atomic::AtomicBool::new(false),
        }
    }
}

/// The statement of an account with its active holds, a row per hold (or one row without
/// a hold): `$from` names `accounts a` (and what picks it), `$where` the account; `$also`,
/// if given, more columns (`", t.id AS t_id"`).
macro_rules! account_with_holds {
    ($from:literal, $where:literal) => {
        account_with_holds!("", $from, $where)
    };
    ($also:literal, $from:literal, $where:literal) => {
        concat!(
            "SELECT a.*, h.id AS hold_id, h.transcript_id AS hold_transcript_id,
                    h.reason AS hold_reason, h.created_at AS hold_created_at",
            $also,
            " FROM ",
            $from,
            " LEFT JOIN legal_holds h ON h.account_id = a.id AND h.released_at IS NULL
             WHERE ",
            $where,
            " ORDER BY h.id"
        )
    };
}

impl From<sqlx::Error> for StorageError {
    fn from(error: sqlx::Error) -> Self {
        match &error {
            sqlx::Error::RowNotFound => StorageError::NotFound { key: String::new() },
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict {
                key: db.table().unwrap_or_default().to_owned(),
            },
            sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
                StorageError::Unavailable {
                    backend: backend_of(&error),
                    source: Box::new(error),
                }
            }
            _ => StorageError::Other {
                backend: backend_of(&error),
                source: Box::new(error),
            },
        }
    }
}

/// sqlx errors come from SQLite or PostgreSQL; name the one that failed.
fn backend_of(error: &sqlx::Error) -> &'static str {
    match error {
        sqlx::Error::Database(db)
            if db
                .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
                .is_some() =>
        {
            "postgresql"
        }
        _ => "sql",
    }
}

fn corrupt(what: String) -> StorageError {
    StorageError::Other {
        backend: BACKEND,
        source: what.into(),
    }
}

use super::codec::{from_micros, leaf_hash_from, micros};

fn opt_micros(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(micros)
}

fn uuid_col(row: &SqliteRow, col: &str) -> Result<Uuid> {
    let text: String = row.try_get(col)?;
    Uuid::parse_str(&text).map_err(|e| corrupt(format!("{col}: {e}")))
}

fn opt_uuid_col(row: &SqliteRow, col: &str) -> Result<Option<Uuid>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| Uuid::parse_str(&t).map_err(|e| corrupt(format!("{col}: {e}"))))
        .transpose()
}

fn ts_col(row: &SqliteRow, col: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(row.try_get::<Option<i64>, _>(col)?.map(from_micros))
}

fn enum_col<T>(row: &SqliteRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let text: String = row.try_get(col)?;
    parse(&text).ok_or_else(|| corrupt(format!("{col}: unknown value {text:?}")))
}

fn opt_enum_col<T>(row: &SqliteRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    let text: Option<String> = row.try_get(col)?;
    text.map(|t| parse(&t).ok_or_else(|| corrupt(format!("{col}: unknown value {t:?}"))))
        .transpose()
}

impl SqliteStore {
    /// Opens (creating if needed) the database file and applies pending migrations.
    pub async fn open(path: &Path) -> Result<Self> {
        let options = SqliteConnectOptions::new().filename(path);
        Self::open_with(options).await
    }

    /// Opens a `sqlite://` URL.
    pub async fn open_url(url: &str) -> Result<Self> {
        Self::open_with(SqliteConnectOptions::from_str(url)?).await
    }

    async fn open_with(options: SqliteConnectOptions) -> Result<Self> {
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // A deletion acknowledged to a customer must survive a power loss.
            .synchronous(SqliteSynchronous::Full)
            .pragma("secure_delete", "ON")
            .busy_timeout(std::time::Duration::from_secs(10))
            .foreign_keys(true);
        // The "connection" is a library in this process, on a thread of its own: sqlx's
        // liveness ping before each acquire would be one more round trip to that thread
        // per query (half of a list request's thread wake-ups) and can find nothing a
        // query would not. It is never closed for age or idleness: it is what holds a
        // database in memory, and what keeps the WAL file in place for its sync.
        let writer = SqlitePoolOptions::new()
            .max_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect_with(options.clone())
            .await?;
        MIGRATOR
            .run(&writer)
            .await
            .map_err(|e| StorageError::Other {
                backend: BACKEND,
                source: Box::new(e),
            })?;
        // The file as SQLite resolved it (URI decoded, symbolic links followed), which its
        // WAL is named after; empty for a database in memory, whatever the URL said.
        let file: String =
            sqlx::query_scalar("SELECT file FROM pragma_database_list WHERE name = 'main'")
                .fetch_one(&writer)
                .await?;
        let in_memory = file.is_empty();
        let wal = (!in_memory).then(|| Arc::new(std::path::PathBuf::from(format!("{file}-wal"))));
        let file = (!in_memory).then(|| Arc::new(std::path::PathBuf::from(file)));
        // An in-memory database is what the writer's connection holds: one pool for both.
        let (pool, readers) = match in_memory {
            true => (writer.clone(), Readers::sharing(writer.clone())),
            false => (
                SqlitePoolOptions::new()
                    .max_connections(8)
                    .min_connections(0)
                    .test_before_acquire(false)
                    .connect_lazy_with(options.clone()),
                Readers::new(options, 8),
            ),
        };
        let store = Self {
            accounts_here: Arc::default(),
            content_here: Arc::default(),
            opened: {
                static OPENED: std::sync::atomic::AtomicUsize =
                    std::sync::atomic::AtomicUsize::new(1);
                OPENED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            },
            readers,
            pool,
            writer: GroupWriter::with_wal(writer.clone(), wal.as_deref().cloned()),
            writer_pool: writer,
            shredding: Arc::new(WalShredding::default()),
            wal,
            file,
            held: Arc::default(),
        };
        // Whatever a deletion interrupted by a crash left in the WAL goes first.
        if store.truncated_through(1).await.is_err() {
            store.retry_truncation_in_background();
        }
        Ok(store)
    }

    /// sqlx's pool on the file, for tools and tests; the store reads through
    /// [`SqliteStore::read`].
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Marks this file as the process's account store: a transcript read for the
    /// pipeline brings its account along ([`ArtifactIndex::transcript_and_account`]).
    /// Not where another store keeps the accounts, whatever this file's own table holds.
    pub fn keeps_accounts(&self) {
        self.accounts_here
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Marks this file as where the process's encrypted content store keeps its data keys
    /// and small sealed objects ([`super::sqlite_content`]): a page of list items reads
    /// its audio URLs' keys and rows in its own statement
    /// ([`ArtifactIndex::list_transcripts_with_artifacts`]).
    pub fn keeps_content(&self) {
        self.content_here
            .store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// Holds every page of the file in memory while this store or a clone lives
    /// (`LETHE_SQLITE_HOLD_IN_MEMORY`, [`super::sqlite_hold`]): maps the file and reads it
    /// all through the mapping, in one read transaction, so no truncation of the WAL can
    /// finish meanwhile: call it before serving. `None` for a database in memory.
    pub async fn hold_in_memory(&self) -> Result<Option<super::sqlite_hold::Held>> {
        let Some(file) = self.file.clone() else {
            return Ok(None);
        };
        // The file's own pages are the ones to hold: the WAL's newest copies go into it first.
        sqlx::query("PRAGMA wal_checkpoint(PASSIVE)")
            .execute(&self.writer_pool)
            .await?;
        let (conn, held) = super::sqlite_hold::hold(&file).await?;
        // A second call holds the file as it is now; the first holder's mapping goes.
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(conn);
        Ok(Some(held))
    }

    /// Closes the connection that holds the file in memory, if any: at shutdown, before
    /// the others, so that the last to close (a read-write one) folds the WAL into the file.
    pub async fn release_hold(&self) {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(conn) = held {
            if let Err(error) = sqlx::Connection::close(conn).await {
                tracing::warn!(%error, "closing the connection that held the database failed");
            }
        }
    }

    /// A reader connection until dropped.
    pub(super) async fn read(&self) -> Result<Reader> {
        self.readers.acquire().await
    }

    pub(super) fn group_writer(&self) -> &GroupWriter {
        &self.writer
    }

    /// Lets the writes of a deferred scope ([`super::durability`]) commit without a sync:
    /// for a process whose every store is this database.
    pub fn allow_deferred_durability(&self) {
        self.writer.allow_deferral();
    }

    /// Numbers a committed deletion of content (`deleted`: it removed something) and
    /// returns the number a truncation must cover for it to be done; with nothing removed,
    /// the last number given, so deletions whose truncation failed are covered first.
    fn shredded(&self, deleted: bool) -> u64 {
        use std::sync::atomic::Ordering::SeqCst;
        match deleted {
            true => self.shredding.deletions.fetch_add(1, SeqCst) + 1,
            false => self.shredding.deletions.load(SeqCst),
        }
    }

    /// Returns once a truncation of the WAL has covered deletion `number`: folds the WAL
    /// into the main file (where `secure_delete` has zeroed what was deleted) and truncates
    /// it, so no older copy of a deleted row survives in the journal, and syncs the
    /// truncation. Fails if a reader kept it from finishing or the sync failed: the caller's
    /// deletion is then not done, and is retried.
    pub(super) async fn truncated_through(&self, number: u64) -> Result<()> {
        let mut truncated = self.shredding.truncated.lock().await;
        if *truncated >= number {
            return Ok(());
        }
        let covers = self
            .shredding
            .deletions
            .load(std::sync::atomic::Ordering::SeqCst);
        // Another process checkpointing the same file makes SQLite answer busy at once,
        // without waiting: a few short retries before the deletion is reported not done.
        let mut last = None;
        for attempt in 0..5u64 {
            if attempt > 0 {
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            let durable_before = self.writer.durable_now();
            match sqlx::query_as::<_, (i64, i64, i64)>("PRAGMA wal_checkpoint(TRUNCATE)")
                .fetch_one(&self.writer_pool)
                .await
            {
                Ok((0, log, _)) => {
                    // A negative log size: no WAL (not in WAL mode), nothing to sync.
                    if log >= 0 {
                        self.sync_wal().await?;
                    }
                    *truncated = covers.max(*truncated);
                    return Ok(());
                }
                Ok(_) => last = None,
                Err(error) => {
                    // SQLite's own sync of the WAL or the file failed: Linux tells that
                    // handle, not a handle opened after it.
                    if is_io_error(&error) {
                        self.writer.wal_sync_failed(durable_before).await;
                    }
                    last = Some(error)
                }
            }
        }
        Err(match last {
            Some(error) => error.into(),
            None => StorageError::Unavailable {
                backend: BACKEND,
                source: "the WAL could not be truncated after a deletion (readers kept it busy)"
                    .into(),
            },
        })
    }

    /// Makes the WAL's truncation durable. A WAL file that is not there (removed from under
    /// the database) cannot vouch for it: the deletion is not done. A failed fsync is the
    /// writer's to know too: it may have dropped frames committed since the truncation
    /// ([`GroupWriter::wal_sync_failed`]).
    async fn sync_wal(&self) -> Result<()> {
        let Some(wal) = self.wal.clone() else {
            return Ok(());
        };
        let durable_before = self.writer.durable_now();
        #[cfg(test)]
        let fail = self.writer.take_injected_wal_failure();
        #[cfg(not(test))]
        let fail = false;
        let synced = tokio::task::spawn_blocking(move || {
            let file = std::fs::OpenOptions::new().write(true).open(&*wal)?;
            Ok::<_, std::io::Error>(match fail {
                true => Err(std::io::Error::other("an injected I/O error")),
                false => file.sync_all(),
            })
        })
        .await
        .map_err(|e| StorageError::Other {
            backend: BACKEND,
            source: Box::new(e),
        })?;
        let unavailable = |e: std::io::Error| StorageError::Unavailable {
            backend: BACKEND,
            source: format!("the WAL's truncation could not be made durable: {e}").into(),
        };
        match synced {
            Err(not_opened) => Err(unavailable(not_opened)),
            Ok(Err(sync_failed)) => {
                self.writer.wal_sync_failed(durable_before).await;
                Err(unavailable(sync_failed))
            }
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Until a truncation covers every numbered deletion, retries it once a second in the
    /// background (one such task at a time), so a deletion whose truncation failed after its
    /// tombstone was written (a key destroyed in a sweep's last step) does not wait for
    /// the next deletion to come along.
    fn retry_truncation_in_background(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.shredding.retrying.swap(true, SeqCst) {
            return;
        }
        let store = self.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                let pending = store.shredding.deletions.load(SeqCst);
                match store.truncated_through(pending).await {
                    Ok(()) => break,
                    Err(error) => {
                        tracing::warn!(%error, "the WAL still holds deleted content; retrying its truncation")
                    }
                }
            }
            store.shredding.retrying.store(false, SeqCst);
        });
    }

    /// [`shred`](Self::shred) for `delete` (`DELETE FROM … WHERE … IN (`) over `values`,
    /// `per_statement` at a time.
    pub(super) async fn shred_in(
        &self,
        truncate: bool,
        delete: &'static str,
        values: Vec<String>,
        per_statement: usize,
    ) -> Result<()> {
        let store = self.clone();
        self.shred(truncate, async move {
            let mut deleted = false;
            for chunk in values.chunks(per_statement) {
                let mut query = QueryBuilder::<Sqlite>::new(delete);
                push_values(&mut query, chunk);
                query.push(")");
                deleted |= query
                    .build()
                    .execute_write(&store.writer)
                    .await?
                    .rows_affected()
                    > 0;
            }
            Ok(deleted)
        })
        .await
    }

    /// A deletion of content as one unit that a cancelled request cannot cut in two: the
    /// `delete` (a durable write returning whether it removed anything), its number, and
    /// with `truncate` the truncation that covers it.
    async fn shred<F>(&self, truncate: bool, delete: F) -> Result<()>
    where
        F: std::future::Future<Output = Result<bool>> + Send + 'static,
    {
        let store = self.clone();
        tokio::spawn(async move {
            // A failed deletion may have committed part of its work (a first chunk, a
            // statement whose sync failed): it is numbered as if it deleted something.
            let deleted = delete.await;
            let number = store.shredded(!matches!(deleted, Ok(false)));
            deleted?;
            if !truncate {
                return Ok(());
            }
            let truncated = store.truncated_through(number).await;
            if truncated.is_err() {
                store.retry_truncation_in_background();
            }
            truncated
        })
        .await
        .map_err(|e| StorageError::Other {
            backend: BACKEND,
            source: Box::new(e),
        })?
    }

    /// Folds the WAL back into the main file and truncates it.
    pub async fn checkpoint(&self) -> Result<()> {
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.writer_pool)
            .await?;
        Ok(())
    }
}

/// An I/O error of SQLite's (`SQLITE_IOERR`, any extended code).
fn is_io_error(error: &sqlx::Error) -> bool {
    const SQLITE_IOERR: i32 = 10;
    matches!(error, sqlx::Error::Database(db)
        if db.code().and_then(|code| code.parse::<i32>().ok())
            .is_some_and(|code| code & 0xff == SQLITE_IOERR))
}

fn account_from_row(row: &SqliteRow) -> Result<Account> {
    let region: String = row.try_get("region")?;
    let ttl: Option<i64> = row.try_get("transcript_ttl_seconds")?;
    let history: String = row.try_get("history")?;
    let job: Option<String> = row.try_get("retention_job")?;
    let mut account = super::codec::account(
        uuid_col(row, "id")?,
        row.try_get("name")?,
        RetentionSettings {
            transcript_ttl: ttl.map(Duration::seconds),
            upload_ttl: Duration::seconds(row.try_get("upload_ttl_seconds")?),
            baa: row.try_get("baa")?,
            region: Region::parse(&region).map_err(|e| corrupt(e.to_string()))?,
            model_training_opt_out: row.try_get("model_training_opt_out")?,
            zero_data_retention: row.try_get("zero_data_retention")?,
        },
        row.try_get("policy_version")?,
        from_micros(row.try_get("created_at")?),
        serde_json::from_str(&history).map_err(|e| corrupt(format!("history: {e}")))?,
        job.map(|j| serde_json::from_str(&j))
            .transpose()
            .map_err(|e| corrupt(format!("retention_job: {e}")))?,
    )?;
    account.deletion_webhook = match (
        row.try_get::<Option<String>, _>("deletion_webhook_url")?,
        row.try_get::<Option<String>, _>("deletion_webhook_secret")?,
    ) {
        (Some(url), Some(secret)) => Some(DeletionWebhook { url, secret }),
        _ => None,
    };
    Ok(account)
}

fn transcript_from_row(row: &SqliteRow) -> Result<Transcript> {
    transcript_at(row, "")
}

/// The column `name` of a join's table whose columns are named `{prefix}{name}`. A page
/// of list items reads a few hundred of them: short names are put together on the stack.
fn prefixed(prefix: &str, name: &'static str) -> ColumnName {
    if prefix.is_empty() {
        return ColumnName::Static(name);
    }
    let mut bytes = [0u8; 32];
    let len = prefix.len() + name.len();
    match bytes.get_mut(..len) {
        Some(slot) => {
            slot[..prefix.len()].copy_from_slice(prefix.as_bytes());
            slot[prefix.len()..].copy_from_slice(name.as_bytes());
            ColumnName::Short { bytes, len }
        }
        None => ColumnName::Long(format!("{prefix}{name}")),
    }
}

enum ColumnName {
    Static(&'static str),
    /// UTF-8: two whole strings, one after the other.
    Short {
        bytes: [u8; 32],
        len: usize,
    },
    Long(String),
}

impl std::ops::Deref for ColumnName {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            ColumnName::Static(name) => name,
            ColumnName::Short { bytes, len } => {
                std::str::from_utf8(&bytes[..*len]).expect("two strings joined are UTF-8")
            }
            ColumnName::Long(name) => name,
        }
    }
}

/// A transcript from the columns named `{prefix}{column}` of a row.
fn transcript_at(row: &SqliteRow, prefix: &str) -> Result<Transcript> {
    let col = |name: &'static str| prefixed(prefix, name);
    let options: String = row.try_get(&*col("options"))?;
    let deletion = match (
        ts_col(row, &col("deleted_at"))?,
        opt_enum_col(row, &col("deletion_reason"), DeletionReason::parse)?,
    ) {
        (Some(at), Some(reason)) => Some(TranscriptDeletion { at, reason }),
        _ => None,
    };
    Ok(Transcript {
        id: uuid_col(row, &col("id"))?,
        account_id: uuid_col(row, &col("account_id"))?,
        status: enum_col(row, &col("status"), TranscriptStatus::parse)?,
        created_at: from_micros(row.try_get(&*col("created_at"))?),
        completed_at: ts_col(row, &col("completed_at"))?,
        upload_id: opt_uuid_col(row, &col("upload_id"))?,
        options: serde_json::from_str(&options).map_err(|e| corrupt(format!("options: {e}")))?,
        webhook_auth: row.try_get(&*col("webhook_auth"))?,
        audio_duration: row.try_get(&*col("audio_duration"))?,
        error: row.try_get(&*col("error"))?,
        policy_version: row.try_get(&*col("policy_version"))?,
        delete_after: ts_col(row, &col("delete_after"))?,
        delete_by: ts_col(row, &col("delete_by"))?,
        deletion,
        final_artifact_id: opt_uuid_col(row, &col("final_artifact_id"))?,
        settled: row.try_get(&*col("settled"))?,
        revision: row.try_get(&*col("revision"))?,
    })
}

fn artifact_from_row(row: &SqliteRow) -> Result<Artifact> {
    artifact_at(row, "")
}

/// The columns of the `artifacts` table, in its `INSERT`'s order.
const ARTIFACT_COLUMNS: [&str; 22] = [
    "id",
    "account_id",
    "transcript_id",
    "kind",
    "name",
    "state",
    "created_at",
    "anchor_at",
    "schedule",
    "delete_after",
    "delete_by",
    "due_at",
    "policy_version",
    "size_bytes",
    "content_key",
    "training_eligible",
    "pending_reason",
    "claimed_by",
    "claimed_until",
    "deleted_at",
    "deletion_reason",
    "created_version",
];

/// The artifact whose columns are named `{prefix}{column}` (a join's second table).
fn artifact_at(row: &SqliteRow, prefix: &str) -> Result<Artifact> {
    let col = |name: &'static str| prefixed(prefix, name);
    Ok(Artifact {
        id: uuid_col(row, &col("id"))?,
        account_id: uuid_col(row, &col("account_id"))?,
        transcript_id: opt_uuid_col(row, &col("transcript_id"))?,
        kind: enum_col(row, &col("kind"), ArtifactKind::parse)?,
        name: row.try_get(&*col("name"))?,
        state: enum_col(row, &col("state"), ArtifactState::parse)?,
        created_at: from_micros(row.try_get(&*col("created_at"))?),
        anchor_at: ts_col(row, &col("anchor_at"))?,
        schedule: enum_col(row, &col("schedule"), ScheduleKind::parse)?,
        delete_after: ts_col(row, &col("delete_after"))?,
        delete_by: ts_col(row, &col("delete_by"))?,
        due_at: ts_col(row, &col("due_at"))?,
        policy_version: row.try_get(&*col("policy_version"))?,
        created_version: row
            .try_get::<Option<i64>, _>(&*col("created_version"))?
            .unwrap_or(row.try_get(&*col("policy_version"))?),
        size_bytes: row.try_get(&*col("size_bytes"))?,
        content_key: row.try_get(&*col("content_key"))?,
        training_eligible: row.try_get(&*col("training_eligible"))?,
        pending_reason: opt_enum_col(row, &col("pending_reason"), DeletionReason::parse)?,
        claimed_by: row.try_get(&*col("claimed_by"))?,
        claimed_until: ts_col(row, &col("claimed_until"))?,
        deleted_at: ts_col(row, &col("deleted_at"))?,
        deletion_reason: opt_enum_col(row, &col("deletion_reason"), DeletionReason::parse)?,
    })
}

/// Appends one deletion-log leaf per tombstone, at the next indexes. The caller's
/// transaction already holds SQLite's write lock, so no other writer interleaves.
async fn append_leaves(tx: &mut sqlx::SqliteConnection, tombstones: &[Tombstone]) -> Result<()> {
    if tombstones.is_empty() {
        return Ok(());
    }
    let next: i64 = sqlx::query_scalar("SELECT COALESCE(MAX(leaf_index) + 1, 0) FROM deletion_log")
        .fetch_one(&mut *tx)
        .await?;
    for (chunk_index, chunk) in tombstones.chunks(ROWS_PER_STATEMENT).enumerate() {
        let first = next + (chunk_index * ROWS_PER_STATEMENT) as i64;
        let mut query = QueryBuilder::<Sqlite>::new(
            "INSERT INTO deletion_log (leaf_index, artifact_id, leaf_hash) ",
        );
        query.push_values(chunk.iter().enumerate(), |mut row, (offset, t)| {
            row.push_bind(first + offset as i64)
                .push_bind(t.artifact_id.to_string())
                .push_bind(crate::receipts::tombstone_leaf_hash(t).to_vec());
        });
        query.build().execute(&mut *tx).await?;
    }
    Ok(())
}

fn tombstone_from_row(row: &SqliteRow) -> Result<Tombstone> {
    Ok(Tombstone {
        artifact_id: uuid_col(row, "artifact_id")?,
        account_id: uuid_col(row, "account_id")?,
        transcript_id: opt_uuid_col(row, "transcript_id")?,
        kind: enum_col(row, "kind", ArtifactKind::parse)?,
        size_bytes: row.try_get("size_bytes")?,
        anchor_at: ts_col(row, "anchor_at")?,
        delete_after: ts_col(row, "delete_after")?,
        delete_by: ts_col(row, "delete_by")?,
        deleted_at: from_micros(row.try_get("deleted_at")?),
        reason: enum_col(row, "reason", DeletionReason::parse)?,
        deleted_by: row.try_get("deleted_by")?,
    })
}

fn sweep_from_row(row: &SqliteRow) -> Result<SweepReport> {
    let by_reason: String = row.try_get("deleted_by_reason")?;
    Ok(SweepReport {
        id: uuid_col(row, "id")?,
        instance: row.try_get("instance")?,
        state: enum_col(row, "state", SweepState::parse)?,
        started_at: from_micros(row.try_get("started_at")?),
        finished_at: from_micros(row.try_get("finished_at")?),
        rescheduled: row.try_get::<i64, _>("rescheduled")? as u64,
        examined: row.try_get::<i64, _>("examined")? as u64,
        deleted: row.try_get::<i64, _>("deleted")? as u64,
        deleted_by_reason: serde_json::from_str(&by_reason)
            .map_err(|e| corrupt(format!("deleted_by_reason: {e}")))?,
        failed: row.try_get::<i64, _>("failed")? as u64,
        overdue: row.try_get::<i64, _>("overdue")? as u64,
        stuck_transcripts_errored: row.try_get::<i64, _>("stuck_transcripts_errored")? as u64,
        truncated: row.try_get("truncated")?,
        lags: Vec::new(),
    })
}

fn usage_from_row(row: &SqliteRow) -> Result<UsageRecord> {
    Ok(UsageRecord {
        id: uuid_col(row, "id")?,
        account_id: uuid_col(row, "account_id")?,
        kind: enum_col(row, "kind", UsageKind::parse)?,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        transcript_id: opt_uuid_col(row, "transcript_id")?,
        started_at: from_micros(row.try_get("started_at")?),
        ended_at: from_micros(row.try_get("ended_at")?),
        artifact_id: opt_uuid_col(row, "artifact_id")?,
        recorded_at: from_micros(row.try_get("recorded_at")?),
    })
}

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(&self, account: &Account, key: &ApiKeyHash) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        let s = &account.settings;
        sqlx::query(
            "INSERT INTO accounts (id, name, transcript_ttl_seconds, upload_ttl_seconds, baa, region,
                model_training_opt_out, zero_data_retention, policy_version, created_at, history,
                retention_job)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(account.id.to_string())
        .bind(&account.name)
        .bind(s.transcript_ttl.map(|d| d.num_seconds()))
        .bind(s.upload_ttl.num_seconds())
        .bind(s.baa)
        .bind(s.region.as_str())
        .bind(s.model_training_opt_out)
        .bind(s.zero_data_retention)
        .bind(account.policy_version)
        .bind(micros(account.created_at))
        .bind(super::codec::history_json(account))
        .bind(super::codec::job_json(account.retention_job.as_ref()))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(&key.0)
            .bind(account.id.to_string())
            .bind(micros(account.created_at))
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The account and its active holds in one statement, like the lookup by key.
    async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        let rows = sqlx::query(account_with_holds!("accounts a", "a.id = ?"))
            .bind(id.to_string())
            .fetch_all(&mut self.read().await?)
            .await?;
        account_with_holds(&rows)
    }

    /// The account and its active holds in one statement (a row per hold, or one row
    /// without a hold): every authenticated request runs it.
    async fn account_by_key_hash(&self, key: &ApiKeyHash) -> Result<Option<Account>> {
        let rows = sqlx::query(account_with_holds!(
            "api_keys k JOIN accounts a ON a.id = k.account_id",
            "k.key_hash = ?"
        ))
        .bind(&key.0)
        .fetch_all(&mut self.read().await?)
        .await?;
        account_with_holds(&rows)
    }

    async fn update_account(&self, account: &Account, expected_version: i64) -> Result<()> {
        let s = &account.settings;
        let done = sqlx::query(
            "UPDATE accounts SET name = ?, transcript_ttl_seconds = ?, upload_ttl_seconds = ?, baa = ?,
                region = ?, model_training_opt_out = ?, zero_data_retention = ?, policy_version = ?,
                history = ?, retention_job = ?
             WHERE id = ? AND policy_version = ?",
        )
        .bind(&account.name)
        .bind(s.transcript_ttl.map(|d| d.num_seconds()))
        .bind(s.upload_ttl.num_seconds())
        .bind(s.baa)
        .bind(s.region.as_str())
        .bind(s.model_training_opt_out)
        .bind(s.zero_data_retention)
        .bind(account.policy_version)
        .bind(super::codec::history_json(account))
        .bind(super::codec::job_json(account.retention_job.as_ref()))
        .bind(account.id.to_string())
        .bind(expected_version)
        .execute_write(&self.writer)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let key = format!("account/{}", account.id);
        match self.account(account.id).await? {
            Some(_) => Err(StorageError::Conflict { key }),
            None => Err(StorageError::NotFound { key }),
        }
    }

    async fn accounts_with_retention_jobs(&self, limit: u32) -> Result<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts INDEXED BY accounts_with_retention_job
             WHERE retention_job IS NOT NULL ORDER BY id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        let accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        super::attach_holds(self, accounts).await
    }

    async fn save_retention_job(
        &self,
        account: AccountId,
        target_version: i64,
        job: Option<&RetentionJob>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET retention_job = ?
             WHERE id = ? AND json_extract(retention_job, '$.target_version') = ?",
        )
        .bind(super::codec::job_json(job))
        .bind(account.to_string())
        .bind(target_version)
        .execute_write(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn accounts(&self, after: Option<AccountId>, limit: u32) -> Result<Vec<Account>> {
        let rows = sqlx::query("SELECT * FROM accounts WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        let accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        super::attach_holds(self, accounts).await
    }

    async fn add_api_key(
        &self,
        account: AccountId,
        key: &ApiKeyHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES (?, ?, ?)")
            .bind(&key.0)
            .bind(account.to_string())
            .bind(micros(now))
            .execute_write(&self.writer)
            .await?;
        Ok(())
    }

    async fn set_deletion_webhook(
        &self,
        account: AccountId,
        webhook: Option<&DeletionWebhook>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET deletion_webhook_url = ?, deletion_webhook_secret = ? WHERE id = ?",
        )
        .bind(webhook.map(|w| w.url.as_str()))
        .bind(webhook.map(|w| w.secret.as_str()))
        .bind(account.to_string())
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn create_hold(&self, hold: &LegalHold) -> Result<()> {
        sqlx::query(
            "INSERT INTO legal_holds (id, account_id, transcript_id, reason, created_at, released_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(hold.id.to_string())
        .bind(hold.account_id.to_string())
        .bind(hold.transcript_id.map(|t| t.to_string()))
        .bind(&hold.reason)
        .bind(micros(hold.created_at))
        .bind(opt_micros(hold.released_at))
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn release_hold(&self, id: Uuid, at: DateTime<Utc>) -> Result<Option<LegalHold>> {
        sqlx::query("UPDATE legal_holds SET released_at = ? WHERE id = ? AND released_at IS NULL")
            .bind(micros(at))
            .bind(id.to_string())
            .execute_write(&self.writer)
            .await?;
        sqlx::query("SELECT * FROM legal_holds WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut self.read().await?)
            .await?
            .as_ref()
            .map(hold_from_row)
            .transpose()
    }

    async fn holds(
        &self,
        account: Option<AccountId>,
        include_released: bool,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<LegalHold>> {
        let rows = sqlx::query(
            "SELECT * FROM legal_holds
             WHERE (?1 IS NULL OR account_id = ?1) AND (?2 OR released_at IS NULL) AND id > ?3
             ORDER BY id LIMIT ?4",
        )
        .bind(account.map(|a| a.to_string()))
        .bind(include_released)
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }

    async fn active_holds(&self, accounts: &[AccountId]) -> Result<Vec<LegalHold>> {
        if accounts.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT * FROM legal_holds WHERE released_at IS NULL AND account_id IN (",
        );
        push_values(&mut query, accounts);
        query.push(")");
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        rows.iter().map(hold_from_row).collect()
    }
}

/// Adds a delivery to the outbox unless its (transcript, event) has one; true if added.
async fn insert_delivery<'e>(
    executor: impl sqlx::SqliteExecutor<'e>,
    d: &WebhookDelivery,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, account_id, transcript_id, event, payload, state,
            attempts, next_attempt_at, last_status, last_error, created_at, delivered_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (transcript_id, event) DO NOTHING",
    )
    .bind(d.id.to_string())
    .bind(d.account_id.to_string())
    .bind(d.transcript_id.to_string())
    .bind(d.event.as_str())
    .bind(d.payload.to_string())
    .bind(d.state.as_str())
    .bind(i64::from(d.attempts))
    .bind(micros(d.next_attempt_at))
    .bind(d.last_status.map(i64::from))
    .bind(&d.last_error)
    .bind(micros(d.created_at))
    .bind(opt_micros(d.delivered_at))
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn webhook_from_row(row: &SqliteRow) -> Result<WebhookDelivery> {
    Ok(WebhookDelivery {
        id: uuid_col(row, "id")?,
        account_id: uuid_col(row, "account_id")?,
        transcript_id: uuid_col(row, "transcript_id")?,
        event: enum_col(row, "event", WebhookEvent::parse)?,
        payload: {
            let text: String = row.try_get("payload")?;
            serde_json::from_str(&text).map_err(|e| corrupt(format!("payload: {e}")))?
        },
        state: enum_col(row, "state", DeliveryState::parse)?,
        attempts: row.try_get::<i64, _>("attempts")? as u32,
        next_attempt_at: from_micros(row.try_get("next_attempt_at")?),
        last_status: row
            .try_get::<Option<i64>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: from_micros(row.try_get("created_at")?),
        delivered_at: ts_col(row, "delivered_at")?,
    })
}

fn hold_from_row(row: &SqliteRow) -> Result<LegalHold> {
    Ok(LegalHold {
        id: uuid_col(row, "id")?,
        account_id: uuid_col(row, "account_id")?,
        transcript_id: opt_uuid_col(row, "transcript_id")?,
        reason: row.try_get("reason")?,
        created_at: from_micros(row.try_get("created_at")?),
        released_at: ts_col(row, "released_at")?,
    })
}

/// The account of [`account_with_holds!`]' rows, if any.
fn account_with_holds(rows: &[SqliteRow]) -> Result<Option<Account>> {
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let mut account = account_from_row(first)?;
    for row in rows {
        if let Some(id) = opt_uuid_col(row, "hold_id")? {
            account.holds.push(LegalHold {
                id,
                account_id: account.id,
                transcript_id: opt_uuid_col(row, "hold_transcript_id")?,
                reason: row.try_get("hold_reason")?,
                created_at: from_micros(row.try_get("hold_created_at")?),
                released_at: None,
            });
        }
    }
    Ok(Some(account))
}

/// The artifact columns and their placeholders, as literals (for `concat!`).
macro_rules! artifact_columns {
    () => {
        "INSERT INTO artifacts (id, account_id, transcript_id, kind, name, state, created_at,
            anchor_at, schedule, delete_after, delete_by, due_at, policy_version, size_bytes,
            content_key, training_eligible, pending_reason, claimed_by, claimed_until,
            deleted_at, deletion_reason, created_version)"
    };
}
macro_rules! artifact_values {
    () => {
        "?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?"
    };
}

/// The `INSERT` of a new artifact: one statement, atomic by itself (a write of its own
/// needs no savepoint).
fn artifact_insert(a: &Artifact) -> SqliteQuery<'_> {
    bind_artifact(
        sqlx::query(concat!(
            artifact_columns!(),
            " VALUES (",
            artifact_values!(),
            ")"
        )),
        a,
    )
}

/// [`artifact_insert`] of a new artifact, which inserts nothing (0 rows) into a transcript
/// already marked deleted: nothing joins a transcript once its deletion has read the
/// artifacts it deletes.
fn new_artifact_insert(a: &Artifact) -> SqliteQuery<'_> {
    bind_artifact(
        sqlx::query(concat!(
            artifact_columns!(),
            " SELECT ",
            artifact_values!(),
            " WHERE NOT EXISTS (SELECT 1 FROM transcripts WHERE id = ? AND deleted_at IS NOT NULL)"
        )),
        a,
    )
    .bind(a.transcript_id.map(|t| t.to_string()))
}

fn bind_artifact<'q>(query: SqliteQuery<'q>, a: &'q Artifact) -> SqliteQuery<'q> {
    query
        .bind(a.id.to_string())
        .bind(a.account_id.to_string())
        .bind(a.transcript_id.map(|t| t.to_string()))
        .bind(a.kind.as_str())
        .bind(&a.name)
        .bind(a.state.as_str())
        .bind(micros(a.created_at))
        .bind(opt_micros(a.anchor_at))
        .bind(a.schedule.as_str())
        .bind(opt_micros(a.delete_after))
        .bind(opt_micros(a.delete_by))
        .bind(opt_micros(a.due_at))
        .bind(a.policy_version)
        .bind(a.size_bytes)
        .bind(&a.content_key)
        .bind(a.training_eligible)
        .bind(a.pending_reason.map(|r| r.as_str()))
        .bind(&a.claimed_by)
        .bind(opt_micros(a.claimed_until))
        .bind(opt_micros(a.deleted_at))
        .bind(a.deletion_reason.map(|r| r.as_str()))
        .bind(a.created_version)
}

/// The `INSERT` of a new transcript: one statement, like [`artifact_insert`].
fn transcript_insert(t: &Transcript) -> SqliteQuery<'_> {
    let query = sqlx::query(
        "INSERT INTO transcripts (account_id, status, created_at, completed_at, upload_id, options,
            webhook_auth, audio_duration, error, policy_version, delete_after, delete_by,
            deleted_at, deletion_reason, final_artifact_id, settled, id, revision)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
    );
    bind_transcript(query, t)
        .bind(t.id.to_string())
        .bind(t.revision)
}

impl SqliteStore {
    /// Inserts many transcripts in one transaction (benchmarks and bulk imports).
    pub async fn insert_transcripts_bulk(&self, transcripts: &[Transcript]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for t in transcripts {
            transcript_insert(t).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Inserts many artifacts in one transaction (benchmarks and bulk imports).
    pub async fn insert_artifacts_bulk(&self, artifacts: &[Artifact]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for a in artifacts {
            artifact_insert(a).execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// A statement with its bound arguments.
type SqliteQuery<'q> = sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments<'q>>;

fn bind_transcript<'q>(query: SqliteQuery<'q>, t: &'q Transcript) -> SqliteQuery<'q> {
    query
        .bind(t.account_id.to_string())
        .bind(t.status.as_str())
        .bind(micros(t.created_at))
        .bind(opt_micros(t.completed_at))
        .bind(t.upload_id.map(|u| u.to_string()))
        .bind(t.options.to_string())
        .bind(t.webhook_auth)
        .bind(t.audio_duration)
        .bind(&t.error)
        .bind(t.policy_version)
        .bind(opt_micros(t.delete_after))
        .bind(opt_micros(t.delete_by))
        .bind(opt_micros(t.deletion.map(|d| d.at)))
        .bind(t.deletion.map(|d| d.reason.as_str()))
        .bind(t.final_artifact_id.map(|id| id.to_string()))
        .bind(t.settled)
}

/// The values of an `IN (…)` list, one bound parameter each, comma-separated.
pub(super) fn push_values<T: ToString>(
    query: &mut QueryBuilder<'_, Sqlite>,
    values: impl IntoIterator<Item = T>,
) {
    let mut list = query.separated(", ");
    for value in values {
        list.push_bind(value.to_string());
    }
}

/// The table of a listing and the index it must read, up to `WHERE `. A day's listing
/// reads that day by creation time: by id from the newest, an early day of a large account
/// would walk the account's whole history (SQLite's planner picks either, from its
/// statistics). Everything else walks the account's ids, newest first.
fn listed_transcripts(q: &TranscriptQuery) -> &'static str {
    match q.created_on {
        Some(_) => "transcripts INDEXED BY transcripts_by_account_created WHERE ",
        None => "transcripts WHERE ",
    }
}

/// The account and the filters of `GET /v2/transcript` (status, day of creation) as a
/// `WHERE` clause; false if no transcript can match (a day outside time's range).
fn push_list_filters(
    query: &mut QueryBuilder<'_, Sqlite>,
    account: AccountId,
    q: &TranscriptQuery,
) -> bool {
    query.push("account_id = ").push_bind(account.to_string());
    if let Some(status) = q.status {
        query.push(" AND status = ").push_bind(status.as_str());
    }
    if let Some(day) = q.created_on {
        let start = day.and_hms_opt(0, 0, 0).map(|d| d.and_utc());
        let end = start.and_then(|s| s.checked_add_signed(Duration::days(1)));
        let (Some(start), Some(end)) = (start, end) else {
            return false;
        };
        query.push(" AND created_at >= ").push_bind(micros(start));
        query.push(" AND created_at < ").push_bind(micros(end));
    }
    true
}

/// `SELECT {columns}` of the page `q` asks for, newest first (ascending when only
/// `after_id` bounds it: see [`page_from_rows`]); false if no transcript can match.
fn push_page(
    query: &mut QueryBuilder<'_, Sqlite>,
    columns: &str,
    account: AccountId,
    q: &TranscriptQuery,
) -> bool {
    query.push(format_args!("SELECT {columns} FROM "));
    query.push(listed_transcripts(q));
    if !push_list_filters(query, account, q) {
        return false;
    }
    if let Some(before) = q.before_id {
        query.push(" AND id < ").push_bind(before.to_string());
    }
    if let Some(after) = q.after_id {
        query.push(" AND id > ").push_bind(after.to_string());
    }
    query.push(match ascending(q) {
        true => " ORDER BY id ASC",
        false => " ORDER BY id DESC",
    });
    query.push(" LIMIT ").push_bind(i64::from(q.limit));
    true
}

/// Only `after_id`: the page just newer than it, read upwards, then reversed.
fn ascending(q: &TranscriptQuery) -> bool {
    q.after_id.is_some() && q.before_id.is_none()
}

/// The transcripts of [`push_page`]'s rows, newest first.
fn page_from_rows(rows: &[SqliteRow], q: &TranscriptQuery) -> Result<Vec<Transcript>> {
    let mut transcripts = rows
        .iter()
        .map(transcript_from_row)
        .collect::<Result<Vec<_>>>()?;
    if ascending(q) {
        transcripts.reverse();
    }
    Ok(transcripts)
}

#[async_trait]
impl ArtifactIndex for SqliteStore {
    async fn insert_transcript(&self, t: &Transcript) -> Result<()> {
        transcript_insert(t).execute_write(&self.writer).await?;
        Ok(())
    }

    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>> {
        sqlx::query("SELECT * FROM transcripts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut self.read().await?)
            .await?
            .as_ref()
            .map(transcript_from_row)
            .transpose()
    }

    /// Both in one read where this file is the account store ([`SqliteStore::keeps_accounts`]):
    /// the account and its active holds joined to the transcript (a row per hold, the
    /// transcript's columns as `t_*`). Elsewhere the transcript alone.
    async fn transcript_and_account(
        &self,
        id: TranscriptId,
    ) -> Result<Option<(Transcript, Option<Account>)>> {
        if !self.accounts_here.load(std::sync::atomic::Ordering::SeqCst) {
            return Ok(self.transcript(id).await?.map(|t| (t, None)));
        }
        // The transcript's columns as `t_*`, beside the account's.
        let sql = account_with_holds!(
            ", t.id AS t_id, t.account_id AS t_account_id, t.status AS t_status,
             t.created_at AS t_created_at, t.completed_at AS t_completed_at,
             t.upload_id AS t_upload_id, t.options AS t_options,
             t.webhook_auth AS t_webhook_auth, t.audio_duration AS t_audio_duration,
             t.error AS t_error, t.policy_version AS t_policy_version,
             t.delete_after AS t_delete_after, t.delete_by AS t_delete_by,
             t.deleted_at AS t_deleted_at, t.deletion_reason AS t_deletion_reason,
             t.final_artifact_id AS t_final_artifact_id, t.settled AS t_settled,
             t.revision AS t_revision",
            "transcripts t LEFT JOIN accounts a ON a.id = t.account_id",
            "t.id = ?"
        );
        let rows = sqlx::query(sql)
            .bind(id.to_string())
            .fetch_all(&mut self.read().await?)
            .await?;
        let Some(first) = rows.first() else {
            return Ok(None);
        };
        let transcript = transcript_at(first, "t_")?;
        let account = match first.try_get::<Option<String>, _>("id")? {
            Some(_) => account_with_holds(&rows)?,
            None => None,
        };
        Ok(Some((transcript, account)))
    }

    async fn update_transcript(&self, t: &Transcript) -> Result<()> {
        let query = sqlx::query(
            "UPDATE transcripts SET account_id = ?, status = ?, created_at = ?, completed_at = ?,
                upload_id = ?, options = ?, webhook_auth = ?, audio_duration = ?, error = ?,
                policy_version = ?, delete_after = ?, delete_by = ?, deleted_at = ?,
                deletion_reason = ?, final_artifact_id = ?, settled = ?, revision = revision + 1
             WHERE id = ? AND revision = ?",
        );
        let done = bind_transcript(query, t)
            .bind(t.id.to_string())
            .bind(t.revision)
            .execute_write(&self.writer)
            .await?;
        if done.rows_affected() == 1 {
            Ok(())
        } else {
            Err(StorageError::Conflict {
                key: format!("transcript/{}", t.id),
            })
        }
    }

    async fn mark_transcripts_deleted(
        &self,
        deletions: &[(TranscriptId, TranscriptDeletion)],
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for (id, deletion) in deletions {
            sqlx::query(
                "UPDATE transcripts SET deleted_at = ?, deletion_reason = ?, revision = revision + 1
                 WHERE id = ? AND deleted_at IS NULL",
            )
            .bind(micros(deletion.at))
            .bind(deletion.reason.as_str())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn list_transcripts(
        &self,
        account: AccountId,
        q: &TranscriptQuery,
    ) -> Result<Vec<Transcript>> {
        let mut query = QueryBuilder::<Sqlite>::new("");
        if !push_page(&mut query, "*", account, q) {
            return Ok(Vec::new());
        }
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        page_from_rows(&rows, q)
    }

    /// One statement: the page, its artifacts of `kind` in a `LEFT JOIN` (columns `a_*`),
    /// and where this file keeps the content ([`SqliteStore::keeps_content`]), each
    /// artifact's sealed row and its scope's wrapped key, all from one snapshot.
    async fn list_transcripts_with_artifacts(
        &self,
        account: AccountId,
        q: &TranscriptQuery,
        kind: ArtifactKind,
    ) -> Result<PageWithArtifacts> {
        let with_content = self.content_here.load(std::sync::atomic::Ordering::SeqCst);
        let mut query = QueryBuilder::<Sqlite>::new("SELECT t.*");
        for column in ARTIFACT_COLUMNS {
            query.push(format_args!(", a.{column} AS a_{column}"));
        }
        // A key's scope is all before its last `/`, and the artifact's id follows it
        // (`domain::content_key`); checked against `content_scope` below.
        const SCOPE: &str = "substr(a.content_key, 1, length(a.content_key) - length(a.id) - 1)";
        if with_content {
            query.push(format_args!(
                ", {SCOPE} AS k_scope, k.wrapped AS k_wrapped, c.bytes AS c_bytes"
            ));
        }
        query.push(" FROM (");
        if !push_page(&mut query, "*", account, q) {
            return Ok(PageWithArtifacts::default());
        }
        // By transcript: the (kind, state) index would read every artifact of the kind.
        query
            .push(") t LEFT JOIN artifacts a INDEXED BY artifacts_by_transcript")
            .push(" ON a.transcript_id = t.id AND a.account_id = t.account_id AND a.kind = ")
            .push_bind(kind.as_str());
        if with_content {
            query.push(format_args!(
                " LEFT JOIN contents c ON c.key = a.content_key
                 LEFT JOIN data_keys k ON k.scope = {SCOPE}"
            ));
        }
        query.push(match ascending(q) {
            true => " ORDER BY t.id ASC, a.id",
            false => " ORDER BY t.id DESC, a.id",
        });
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        let mut page = PageWithArtifacts {
            content: with_content.then(|| ReadWithPage {
                source: self.opened,
                objects: Vec::new(),
            }),
            ..Default::default()
        };
        for row in &rows {
            let id = uuid_col(row, "id")?;
            if page.transcripts.last().map(|t: &Transcript| t.id) != Some(id) {
                page.transcripts.push(transcript_from_row(row)?);
            }
            if row.try_get::<Option<String>, _>("a_id")?.is_some() {
                let artifact = artifact_at(row, "a_")?;
                if let Some(content) = &mut page.content {
                    let scope: Option<String> = row.try_get("k_scope")?;
                    match scope.as_deref() == Some(content_scope(&artifact.content_key)) {
                        true => content.objects.push((
                            artifact.content_key.clone(),
                            KeyAndRow {
                                wrapped: row.try_get("k_wrapped")?,
                                sealed: row.try_get("c_bytes")?,
                            },
                        )),
                        // A key of another shape: its content is read on its own.
                        false => page.content = None,
                    }
                }
                page.artifacts.push(artifact);
            }
        }
        if ascending(q) {
            page.transcripts.reverse();
        }
        Ok(page)
    }

    /// Both links in one statement: two `EXISTS` probes of the keyset index.
    async fn has_neighbors(
        &self,
        account: AccountId,
        q: &TranscriptQuery,
        oldest: TranscriptId,
        newest: TranscriptId,
    ) -> Result<(bool, bool)> {
        let mut query = QueryBuilder::<Sqlite>::new("SELECT EXISTS (SELECT 1 FROM ");
        query.push(listed_transcripts(q));
        if !push_list_filters(&mut query, account, q) {
            return Ok((false, false));
        }
        query.push(" AND id < ").push_bind(oldest.to_string());
        query.push("), EXISTS (SELECT 1 FROM ");
        query.push(listed_transcripts(q));
        push_list_filters(&mut query, account, q);
        query.push(" AND id > ").push_bind(newest.to_string());
        query.push(")");
        Ok(query
            .build_query_as::<(bool, bool)>()
            .fetch_one(&mut self.read().await?)
            .await?)
    }

    async fn stuck_transcripts(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        let rows = sqlx::query(
            "SELECT * FROM transcripts WHERE status IN ('queued', 'processing') AND created_at < ?
             ORDER BY created_at LIMIT ?",
        )
        .bind(micros(created_before))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(transcript_from_row).collect()
    }

    async fn transcripts_for_upload(&self, upload: ArtifactId) -> Result<Vec<Transcript>> {
        let rows = sqlx::query(
            "SELECT * FROM transcripts INDEXED BY transcripts_by_upload
             WHERE upload_id = ? ORDER BY id",
        )
        .bind(upload.to_string())
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(transcript_from_row).collect()
    }

    async fn unsettled_transcripts(
        &self,
        completed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        let rows = sqlx::query(
            "SELECT * FROM transcripts INDEXED BY transcripts_unsettled
             WHERE settled = 0 AND completed_at < ? ORDER BY completed_at LIMIT ?",
        )
        .bind(micros(completed_before))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(transcript_from_row).collect()
    }

    async fn insert_artifact(&self, a: &Artifact) -> Result<()> {
        let done = new_artifact_insert(a).execute_write(&self.writer).await?;
        match done.rows_affected() {
            0 => Err(StorageError::Conflict {
                key: format!(
                    "transcript/{} (deleted)",
                    a.transcript_id.unwrap_or_default()
                ),
            }),
            _ => Ok(()),
        }
    }

    async fn artifact(&self, id: ArtifactId) -> Result<Option<Artifact>> {
        sqlx::query("SELECT * FROM artifacts WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut self.read().await?)
            .await?
            .as_ref()
            .map(artifact_from_row)
            .transpose()
    }

    async fn set_artifact_size(&self, id: ArtifactId, size_bytes: i64) -> Result<()> {
        let done = sqlx::query("UPDATE artifacts SET size_bytes = ? WHERE id = ? AND state = ?")
            .bind(size_bytes)
            .bind(id.to_string())
            .bind(ArtifactState::Live.as_str())
            .execute_write(&self.writer)
            .await?;
        match done.rows_affected() {
            0 => Err(StorageError::Conflict {
                key: format!("artifact/{id} (no longer live)"),
            }),
            _ => Ok(()),
        }
    }

    async fn remove_unconfirmed_artifact(&self, id: ArtifactId) -> Result<()> {
        // Only while live: one a deletion took meanwhile keeps its row for its tombstone.
        sqlx::query("DELETE FROM artifacts WHERE id = ? AND state = ?")
            .bind(id.to_string())
            .bind(ArtifactState::Live.as_str())
            .execute_write(&self.writer)
            .await?;
        Ok(())
    }

    async fn artifacts_for_transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Artifact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT * FROM artifacts WHERE transcript_id IN (");
        push_values(&mut query, ids);
        query.push(") ORDER BY id");
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn artifacts_of_kind_for_transcripts(
        &self,
        ids: &[TranscriptId],
        kind: ArtifactKind,
    ) -> Result<Vec<Artifact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        // By transcript: the (kind, state) index would read every artifact of the kind.
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT * FROM artifacts INDEXED BY artifacts_by_transcript WHERE kind = ",
        );
        query
            .push_bind(kind.as_str())
            .push(" AND transcript_id IN (");
        push_values(&mut query, ids);
        query.push(") ORDER BY id");
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn live_artifacts_for_account(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        let rows = sqlx::query(
            "SELECT * FROM artifacts WHERE account_id = ? AND state <> 'deleted' AND id > ?
             ORDER BY id LIMIT ?",
        )
        .bind(account.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn training_eligible(
        &self,
        now: DateTime<Utc>,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        // The WHERE repeats the partial index's predicate so the planner uses it.
        let rows = sqlx::query(
            "SELECT * FROM artifacts INDEXED BY artifacts_training
             WHERE training_eligible = 1 AND state = 'live' AND pending_reason IS NULL
               AND id > ? AND (delete_after IS NULL OR delete_after > ?)
             ORDER BY id LIMIT ?",
        )
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn reschedule(
        &self,
        id: ArtifactId,
        schedule: &Schedule,
        policy_version: i64,
        _now: DateTime<Utc>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE artifacts SET schedule = ?, delete_after = ?, delete_by = ?, due_at = ?, policy_version = ?
             WHERE id = ? AND state = 'live' AND pending_reason IS NULL",
        )
        .bind(schedule.kind.as_str())
        .bind(opt_micros(schedule.delete_after))
        .bind(opt_micros(schedule.delete_by))
        .bind(opt_micros(schedule.delete_after))
        .bind(policy_version)
        .bind(id.to_string())
        .execute_write(&self.writer)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn request_deletion(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE artifacts SET pending_reason = COALESCE(pending_reason, ?),
                    due_at = CASE WHEN due_at IS NULL OR due_at > ?2 THEN ?2 ELSE due_at END
                 WHERE id = ?3 AND state <> 'deleted'",
            )
            .bind(reason.as_str())
            .bind(micros(now))
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        let rows = sqlx::query(
            "SELECT * FROM artifacts INDEXED BY artifacts_due
             WHERE due_at IS NOT NULL AND due_at <= ?1
               AND (claimed_until IS NULL OR claimed_until <= ?1)
             ORDER BY due_at LIMIT ?2",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT due_at FROM artifacts INDEXED BY artifacts_due
             WHERE due_at IS NOT NULL AND (claimed_until IS NULL OR claimed_until <= ?)
             ORDER BY due_at LIMIT 1",
        )
        .bind(micros(now))
        .fetch_optional(&mut self.read().await?)
        .await?;
        Ok(next.map(from_micros))
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        let rows = sqlx::query(
            "SELECT * FROM artifacts INDEXED BY artifacts_deadline
             WHERE due_at IS NOT NULL AND delete_by < ? ORDER BY delete_by LIMIT ?",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(artifact_from_row).collect()
    }

    async fn count_by_kind_and_state(&self) -> Result<Vec<(ArtifactKind, ArtifactState, u64)>> {
        let rows =
            sqlx::query("SELECT kind, state, COUNT(*) AS n FROM artifacts GROUP BY kind, state")
                .fetch_all(&mut self.read().await?)
                .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    enum_col(row, "kind", ArtifactKind::parse)?,
                    enum_col(row, "state", ArtifactState::parse)?,
                    row.try_get::<i64, _>("n")? as u64,
                ))
            })
            .collect()
    }

    async fn claim(&self, ids: &[ArtifactId], claim: &Claim) -> Result<Vec<Artifact>> {
        // One statement per chunk of ids, not one per artifact: a batch is claimed in a
        // few statements of one transaction.
        let mut tx = self.writer.begin().await?;
        let mut claimed = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(ROWS_PER_STATEMENT) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "UPDATE artifacts SET state = 'deleting', claimed_by = ",
            );
            query
                .push_bind(&claim.owner)
                .push(", claimed_until = ")
                .push_bind(micros(claim.until))
                .push(" WHERE state <> 'deleted' AND due_at IS NOT NULL AND due_at <= ")
                .push_bind(micros(claim.now))
                .push(" AND (claimed_until IS NULL OR claimed_until <= ")
                .push_bind(micros(claim.now))
                .push(") AND id IN (");
            push_values(&mut query, chunk);
            query.push(") RETURNING *");
            for row in query.build().fetch_all(&mut *tx).await? {
                claimed.push(artifact_from_row(&row)?);
            }
        }
        tx.commit().await?;
        // In the order asked for (RETURNING's order is unspecified).
        let position: HashMap<ArtifactId, usize> =
            ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
        claimed.sort_by_key(|a| position.get(&a.id).copied().unwrap_or(usize::MAX));
        Ok(claimed)
    }

    async fn park(&self, ids: &[ArtifactId], claim: &Claim, until: DateTime<Utc>) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE artifacts SET state = 'live', claimed_by = ?, claimed_until = ?
                 WHERE id = ? AND claimed_by = ? AND state = 'deleting'",
            )
            .bind(HOLD_OWNER)
            .bind(micros(until))
            .bind(id.to_string())
            .bind(&claim.owner)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn unpark(&self, ids: &[ArtifactId]) -> Result<()> {
        let mut tx = self.writer.begin().await?;
        for id in ids {
            sqlx::query(
                "UPDATE artifacts SET claimed_by = NULL, claimed_until = NULL
                 WHERE id = ? AND claimed_by = ? AND state = 'live'",
            )
            .bind(id.to_string())
            .bind(HOLD_OWNER)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn finish(&self, tombstones: &[Tombstone]) -> Result<()> {
        // A batch's tombstones share their time and a few reasons: one statement per
        // (time, reason) and chunk of ids.
        let mut groups: HashMap<(i64, DeletionReason), Vec<String>> = HashMap::new();
        for t in tombstones {
            groups
                .entry((micros(t.deleted_at), t.reason))
                .or_default()
                .push(t.artifact_id.to_string());
        }
        let mut tx = self.writer.begin().await?;
        for ((deleted_at, reason), ids) in &groups {
            for chunk in ids.chunks(ROWS_PER_STATEMENT) {
                let mut query = QueryBuilder::<Sqlite>::new(
                    "UPDATE artifacts SET state = 'deleted', deleted_at = ",
                );
                query
                    .push_bind(*deleted_at)
                    .push(", deletion_reason = ")
                    .push_bind(reason.as_str())
                    .push(
                        ", due_at = NULL, claimed_by = NULL, claimed_until = NULL,
                        training_eligible = 0 WHERE state <> 'deleted' AND id IN (",
                    );
                push_values(&mut query, chunk);
                query.push(")");
                query.build().execute(&mut *tx).await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

#[async_trait]
impl crate::storage::encrypted::DataKeyStore for SqliteStore {
    async fn data_key(&self, scope: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT wrapped FROM data_keys WHERE scope = ?")
                .bind(scope)
                .fetch_optional(&mut self.read().await?)
                .await?,
        )
    }

    async fn data_keys(&self, scopes: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
        if scopes.is_empty() {
            return Ok(Vec::new());
        }
        let mut query =
            QueryBuilder::<Sqlite>::new("SELECT scope, wrapped FROM data_keys WHERE scope IN (");
        push_values(&mut query, scopes);
        query.push(")");
        Ok(query
            .build_query_as::<(String, Vec<u8>)>()
            .fetch_all(&mut self.read().await?)
            .await?)
    }

    fn identity(&self) -> Option<usize> {
        Some(self.opened)
    }

    /// Keys and rows of the `contents` table ([`super::sqlite_content`]) in one query,
    /// both from one snapshot.
    async fn keys_and_rows(&self, keys: &[String]) -> Result<Option<Vec<KeyAndRow>>> {
        let mut found = vec![KeyAndRow::default(); keys.len()];
        for (chunk_at, chunk) in keys.chunks(ROWS_PER_STATEMENT / 3).enumerate() {
            let mut query = QueryBuilder::<Sqlite>::new("WITH wanted (n, key, scope) AS (");
            query.push_values(chunk.iter().enumerate(), |mut row, (n, key)| {
                row.push_bind(n as i64)
                    .push_bind(key.as_str())
                    .push_bind(crate::domain::content_scope(key));
            });
            query.push(
                ") SELECT w.n, k.wrapped, c.bytes FROM wanted w
                 LEFT JOIN data_keys k ON k.scope = w.scope
                 LEFT JOIN contents c ON c.key = w.key",
            );
            for row in query.build().fetch_all(&mut self.read().await?).await? {
                let n: i64 = row.try_get("n")?;
                let slot = found
                    .get_mut(chunk_at * (ROWS_PER_STATEMENT / 3) + n as usize)
                    .ok_or_else(|| corrupt("a row of keys and contents out of range".into()))?;
                slot.wrapped = row.try_get("wrapped")?;
                slot.sealed = row.try_get("bytes")?;
            }
        }
        Ok(Some(found))
    }

    async fn create_data_key(&self, scope: &str, wrapped: &[u8]) -> Result<Vec<u8>> {
        let inserted = sqlx::query(
            "INSERT INTO data_keys (scope, wrapped) VALUES (?, ?) ON CONFLICT (scope) DO NOTHING",
        )
        .bind(scope)
        .bind(wrapped)
        .execute_write(&self.writer)
        .await?;
        // Inserted: the key in force is this one, no need to read it back.
        if inserted.rows_affected() == 1 {
            return Ok(wrapped.to_vec());
        }
        self.data_key(scope)
            .await?
            .ok_or_else(|| corrupt(format!("data key of {scope} vanished")))
    }

    async fn scopes(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        Ok(
            sqlx::query_scalar(
                "SELECT scope FROM data_keys WHERE scope > ? ORDER BY scope LIMIT ?",
            )
            .bind(after.unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?,
        )
    }

    /// The WAL still holds the keys' pages as they were: the destruction is done once it
    /// is folded in (zeroed by secure_delete) and truncated, so no copy of a key survives
    /// in the journal; if a reader keeps that from finishing, it fails and is retried (a
    /// retry that finds the keys gone still truncates first).
    async fn destroy_data_keys(&self, scopes: &[&str]) -> Result<()> {
        if scopes.is_empty() {
            return Ok(());
        }
        let scopes: Vec<String> = scopes.iter().map(|s| (*s).to_owned()).collect();
        self.shred_in(
            true,
            "DELETE FROM data_keys WHERE scope IN (",
            scopes,
            ROWS_PER_STATEMENT,
        )
        .await
    }
}

#[async_trait]
impl AuditLog for SqliteStore {
    async fn record_usage(&self, u: &UsageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_records (id, account_id, kind, model, provider, transcript_id,
                started_at, ended_at, artifact_id, recorded_at)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(u.id.to_string())
        .bind(u.account_id.to_string())
        .bind(u.kind.as_str())
        .bind(&u.model)
        .bind(&u.provider)
        .bind(u.transcript_id.map(|id| id.to_string()))
        .bind(micros(u.started_at))
        .bind(micros(u.ended_at))
        .bind(u.artifact_id.map(|id| id.to_string()))
        .bind(micros(u.recorded_at))
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn usage(
        &self,
        account: AccountId,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM usage_records WHERE account_id = ? AND id > ? ORDER BY id LIMIT ?",
        )
        .bind(account.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(usage_from_row).collect()
    }

    async fn record_tombstones(
        &self,
        tombstones: &[Tombstone],
        deliveries: &[WebhookDelivery],
    ) -> Result<Vec<Tombstone>> {
        let mut tx = self.writer.begin().await?;
        // Multi-row inserts; RETURNING names the rows this call inserted, the others were
        // recorded before (a deletion redone after a crash) and are read back as recorded.
        let mut inserted: HashSet<String> = HashSet::with_capacity(tombstones.len());
        for chunk in tombstones.chunks(ROWS_PER_STATEMENT / 2) {
            let mut query = QueryBuilder::<Sqlite>::new(
                "INSERT INTO tombstones (artifact_id, account_id, transcript_id, kind, size_bytes,
                    anchor_at, delete_after, delete_by, deleted_at, reason, deleted_by) ",
            );
            query.push_values(chunk, |mut row, t| {
                row.push_bind(t.artifact_id.to_string())
                    .push_bind(t.account_id.to_string())
                    .push_bind(t.transcript_id.map(|id| id.to_string()))
                    .push_bind(t.kind.as_str())
                    .push_bind(t.size_bytes)
                    .push_bind(opt_micros(t.anchor_at))
                    .push_bind(opt_micros(t.delete_after))
                    .push_bind(opt_micros(t.delete_by))
                    .push_bind(micros(t.deleted_at))
                    .push_bind(t.reason.as_str())
                    .push_bind(&t.deleted_by);
            });
            query.push(" ON CONFLICT (artifact_id) DO NOTHING RETURNING artifact_id");
            for row in query.build().fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get("artifact_id")?);
            }
        }
        let mut on_record = Vec::with_capacity(tombstones.len());
        let mut new = Vec::new();
        for t in tombstones {
            if inserted.remove(&t.artifact_id.to_string()) {
                on_record.push(t.clone());
                new.push(t.clone());
            } else {
                let row = sqlx::query("SELECT * FROM tombstones WHERE artifact_id = ?")
                    .bind(t.artifact_id.to_string())
                    .fetch_one(&mut *tx)
                    .await?;
                on_record.push(tombstone_from_row(&row)?);
            }
        }
        append_leaves(&mut tx, &new).await?;
        for d in deliveries {
            insert_delivery(&mut *tx, d).await?;
        }
        tx.commit().await?;
        Ok(on_record)
    }

    async fn enqueue_webhook(&self, d: &WebhookDelivery) -> Result<bool> {
        let mut tx = self.writer.begin().await?;
        let done = insert_delivery(&mut *tx, d).await?;
        tx.commit().await?;
        Ok(done)
    }

    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let mut tx = self.writer.begin().await?;
        // A write first, so the read and the claim are one transaction under the lock.
        sqlx::query("DELETE FROM webhook_deliveries WHERE 0")
            .execute(&mut *tx)
            .await?;
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries INDEXED BY webhook_deliveries_due
             WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at LIMIT ?",
        )
        .bind(micros(now))
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let claimed = rows
            .iter()
            .map(webhook_from_row)
            .collect::<Result<Vec<_>>>()?;
        for d in &claimed {
            sqlx::query("UPDATE webhook_deliveries SET next_attempt_at = ? WHERE id = ?")
                .bind(micros(until))
                .bind(d.id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(claimed)
    }

    async fn update_webhook(&self, d: &WebhookDelivery) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = ?, attempts = ?, next_attempt_at = ?,
                last_status = ?, last_error = ?, delivered_at = ? WHERE id = ?",
        )
        .bind(d.state.as_str())
        .bind(i64::from(d.attempts))
        .bind(micros(d.next_attempt_at))
        .bind(d.last_status.map(i64::from))
        .bind(&d.last_error)
        .bind(opt_micros(d.delivered_at))
        .bind(d.id.to_string())
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        after: Option<Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query("SELECT * FROM webhook_deliveries WHERE id > ? ORDER BY id LIMIT ?")
            .bind(after.map(|a| a.to_string()).unwrap_or_default())
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>> {
        let rows = sqlx::query(
            "SELECT leaf_hash FROM deletion_log WHERE leaf_index >= ? ORDER BY leaf_index LIMIT ?",
        )
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter()
            .map(|row| leaf_hash_from("sqlite", row.try_get("leaf_hash")?))
            .collect()
    }

    async fn logged_tombstones(&self, artifacts: &[ArtifactId]) -> Result<Vec<(u64, Tombstone)>> {
        if artifacts.is_empty() {
            return Ok(Vec::new());
        }
        let mut query = QueryBuilder::<Sqlite>::new(
            "SELECT t.*, l.leaf_index FROM tombstones t JOIN deletion_log l ON l.artifact_id = t.artifact_id
             WHERE t.artifact_id IN (",
        );
        push_values(&mut query, artifacts);
        query.push(") ORDER BY l.leaf_index");
        let rows = query.build().fetch_all(&mut self.read().await?).await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("leaf_index")? as u64,
                    tombstone_from_row(row)?,
                ))
            })
            .collect()
    }

    async fn log_unlogged_tombstones(&self, limit: u32) -> Result<u64> {
        let mut tx = self.writer.begin().await?;
        // A write first, so this transaction holds the write lock before it reads.
        sqlx::query("DELETE FROM deletion_log WHERE 0")
            .execute(&mut *tx)
            .await?;
        let pending: i64 = sqlx::query_scalar("SELECT pending FROM deletion_log_backfill")
            .fetch_one(&mut *tx)
            .await?;
        if pending == 0 {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT t.* FROM tombstones t LEFT JOIN deletion_log l ON l.artifact_id = t.artifact_id
             WHERE l.artifact_id IS NULL ORDER BY t.deleted_at, t.artifact_id LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let unlogged = rows
            .iter()
            .map(tombstone_from_row)
            .collect::<Result<Vec<_>>>()?;
        append_leaves(&mut tx, &unlogged).await?;
        if unlogged.len() < limit as usize {
            sqlx::query("UPDATE deletion_log_backfill SET pending = 0")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(unlogged.len() as u64)
    }

    async fn tombstones(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Tombstone>> {
        let rows = sqlx::query(
            "SELECT * FROM tombstones WHERE account_id = ? AND artifact_id > ?
             ORDER BY artifact_id LIMIT ?",
        )
        .bind(account.to_string())
        .bind(after.map(|a| a.to_string()).unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        rows.iter().map(tombstone_from_row).collect()
    }

    async fn tombstone(&self, artifact: ArtifactId) -> Result<Option<Tombstone>> {
        sqlx::query("SELECT * FROM tombstones WHERE artifact_id = ?")
            .bind(artifact.to_string())
            .fetch_optional(&mut self.read().await?)
            .await?
            .as_ref()
            .map(tombstone_from_row)
            .transpose()
    }

    async fn record_sweep(&self, r: &SweepReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO sweeps (id, instance, started_at, finished_at, examined, deleted,
                deleted_by_reason, failed, overdue, stuck_transcripts_errored, truncated, state,
                rescheduled)
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT (id) DO UPDATE SET finished_at = excluded.finished_at,
                examined = excluded.examined, deleted = excluded.deleted,
                deleted_by_reason = excluded.deleted_by_reason, failed = excluded.failed,
                overdue = excluded.overdue,
                stuck_transcripts_errored = excluded.stuck_transcripts_errored,
                truncated = excluded.truncated, state = excluded.state,
                rescheduled = excluded.rescheduled",
        )
        .bind(r.id.to_string())
        .bind(&r.instance)
        .bind(micros(r.started_at))
        .bind(micros(r.finished_at))
        .bind(r.examined as i64)
        .bind(r.deleted as i64)
        .bind(serde_json::to_string(&r.deleted_by_reason).unwrap_or_default())
        .bind(r.failed as i64)
        .bind(r.overdue as i64)
        .bind(r.stuck_transcripts_errored as i64)
        .bind(r.truncated)
        .bind(r.state.as_str())
        .bind(r.rescheduled as i64)
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn recent_sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        let rows = sqlx::query("SELECT * FROM sweeps ORDER BY started_at DESC LIMIT ?")
            .bind(i64::from(limit))
            .fetch_all(&mut self.read().await?)
            .await?;
        rows.iter().map(sweep_from_row).collect()
    }

    async fn record_reconciliation(&self, r: &ReconcileReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO reconciliations (id, instance, started_at, finished_at, report)
             VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
        )
        .bind(r.id.to_string())
        .bind(&r.instance)
        .bind(micros(r.started_at))
        .bind(micros(r.finished_at))
        .bind(serde_json::to_string(r).unwrap_or_default())
        .execute_write(&self.writer)
        .await?;
        Ok(())
    }

    async fn recent_reconciliations(&self, limit: u32) -> Result<Vec<ReconcileReport>> {
        let reports: Vec<String> = sqlx::query_scalar(
            "SELECT report FROM reconciliations ORDER BY started_at DESC LIMIT ?",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut self.read().await?)
        .await?;
        reports
            .iter()
            .map(|r| serde_json::from_str(r).map_err(|e| corrupt(format!("report: {e}"))))
            .collect()
    }

    async fn sweep(&self, id: Uuid) -> Result<Option<SweepReport>> {
        sqlx::query("SELECT * FROM sweeps WHERE id = ?")
            .bind(id.to_string())
            .fetch_optional(&mut self.read().await?)
            .await?
            .as_ref()
            .map(sweep_from_row)
            .transpose()
    }
}
