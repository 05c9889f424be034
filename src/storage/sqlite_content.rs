//! Small objects in the embedded profile's SQLite file, larger ones in the store it wraps.
//!
//! Most content objects are a few hundred bytes: an audio URL, prompts, a short transcript.
//! As a file each costs a new inode, two fsyncs and a rename to write, and a file read to
//! serve. As a row of the `contents` table it is one statement of the writer's group
//! commit, and a page of list items reads all its URLs with one query. Under the
//! encrypted store the rows hold sealed bytes, like the files, so destroying a scope's data
//! key shreds them too.
//!
//! A deleted row must leave nothing readable behind even while its scope's key lives (an
//! audio URL deleted before the rest of its transcript, say): `secure_delete` zeroes its
//! bytes in the main file, but the WAL keeps the pages as they were until a checkpoint. So a
//! deletion is done only once a truncation of the WAL that started after it has succeeded
//! ([`SqliteStore::truncated_through`]); if a reader keeps the checkpoint from finishing,
//! the deletion fails and its caller retries it, and the retry truncates first even though
//! it finds no row left. The one exception is [`ContentStore::delete_many_unsynced`], whose
//! caller destroys the scopes' keys next, a destruction that is done only once truncated
//! the same way. Deleting and numbering run in a task of their own, so a cancelled
//! request cannot leave a deletion the truncations do not know of.
//!
//! A row hides a file of the same key: writing a large object writes its file, then removes
//! any row; writing a small one over an existing row deletes that row first (with its
//! truncation), and leaves a file it replaces (keys are written once by the engine) to the
//! key's deletion, which removes both.

use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use chrono::{DateTime, Utc};
use futures::StreamExt;
use sqlx::{QueryBuilder, Row, Sqlite};
use std::collections::HashMap;
use std::sync::Arc;

use super::sqlite::{push_values, SqliteStore};
use super::sqlite_writer::ExecuteWrite;
use super::{ByteStream, ContentStore, ObjectInfo, Result, StorageError};
use crate::clock::Clock;
use crate::domain::Content;

/// Objects of at most this many bytes (as stored: sealed, under encryption) are rows.
pub const MAX_INLINE_BYTES: usize = 8 * 1024;

/// Keys per `IN (…)` list.
const KEYS_PER_STATEMENT: usize = 500;

#[derive(Clone, Debug)]
pub struct SqliteInlineContentStore {
    db: SqliteStore,
    files: Arc<dyn ContentStore>,
    /// A row's `modified_at`, which reconciliation's grace period compares with its now.
    clock: Arc<dyn Clock>,
}

/// Whether a row deletion leaves the WAL with older copies of the rows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Wal {
    /// Truncated before the deletion is reported done.
    Truncate,
    /// Left to the caller's key destruction.
    Leave,
}

impl SqliteInlineContentStore {
    pub fn new(db: SqliteStore, files: Arc<dyn ContentStore>, clock: Arc<dyn Clock>) -> Self {
        Self { db, files, clock }
    }

    /// A new row; a row already there is deleted first, as any deletion is (its older
    /// bytes must not outlive it in the WAL).
    async fn put_row(&self, key: &str, bytes: &[u8]) -> Result<()> {
        for _ in 0..2 {
            let done = sqlx::query(
                "INSERT INTO contents (key, bytes, modified_at) VALUES (?, ?, ?)
                 ON CONFLICT (key) DO NOTHING",
            )
            .bind(key)
            .bind(bytes)
            .bind(self.clock.now().timestamp_micros())
            .execute_write(self.db.group_writer())
            .await?;
            if done.rows_affected() == 1 {
                return Ok(());
            }
            self.delete_rows(&[key.to_owned()], Wal::Truncate).await?;
        }
        Err(StorageError::Conflict {
            key: key.to_owned(),
        })
    }

    async fn row(&self, key: &str) -> Result<Option<Content>> {
        let bytes: Option<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM contents WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        Ok(bytes.map(Content::new))
    }

    /// Removes the rows of `keys`, in few statements; with [`Wal::Truncate`], done once a
    /// truncation of the WAL covers the deletion (and every one before it).
    async fn delete_rows(&self, keys: &[String], wal: Wal) -> Result<()> {
        self.db
            .shred_in(
                wal == Wal::Truncate,
                "DELETE FROM contents WHERE key IN (",
                keys.to_vec(),
                KEYS_PER_STATEMENT,
            )
            .await
    }

    /// Removes the row of a key a large object now replaces (a row would hide it).
    async fn drop_row_if_any(&self, key: &str) -> Result<()> {
        let exists: Option<i64> = sqlx::query_scalar("SELECT 1 FROM contents WHERE key = ?")
            .bind(key)
            .fetch_optional(&mut self.db.read().await?)
            .await?;
        if exists.is_some() {
            self.delete_rows(&[key.to_owned()], Wal::Truncate).await?;
        }
        Ok(())
    }

    /// The files' results for `keys`, each failed if removing the rows failed.
    async fn delete_both(
        &self,
        keys: &[String],
        wal: Wal,
        files: impl std::future::Future<Output = Vec<Result<()>>>,
    ) -> Vec<Result<()>> {
        let rows = self.delete_rows(keys, wal).await;
        let files = files.await;
        match rows {
            Ok(()) => files,
            Err(error) => {
                let message = error.to_string();
                files
                    .into_iter()
                    .map(|_| {
                        Err(StorageError::Other {
                            backend: "sqlite",
                            source: message.clone().into(),
                        })
                    })
                    .collect()
            }
        }
    }
}

#[async_trait]
impl ContentStore for SqliteInlineContentStore {
    async fn put(&self, key: &str, content: Content) -> Result<u64> {
        if content.len() > MAX_INLINE_BYTES {
            // A file is outside the database: what tracks it must be durable first.
            super::durability::flush().await?;
            let size = self.files.put(key, content).await?;
            self.drop_row_if_any(key).await?;
            return Ok(size);
        }
        self.put_row(key, content.expose()).await?;
        Ok(content.len() as u64)
    }

    /// Buffers up to [`MAX_INLINE_BYTES`]: a stream that ends within them is a row, a
    /// longer one goes on to a file with what was buffered.
    async fn put_stream(&self, key: &str, mut stream: ByteStream) -> Result<u64> {
        let mut head = BytesMut::new();
        while head.len() <= MAX_INLINE_BYTES {
            match stream.next().await {
                Some(Ok(chunk)) => head.extend_from_slice(&chunk),
                Some(Err(error)) => {
                    return Err(StorageError::Other {
                        backend: "content",
                        source: Box::new(error),
                    })
                }
                None => return self.put(key, Content::new(head.freeze())).await,
            }
        }
        super::durability::flush().await?;
        let head: Bytes = head.freeze();
        let whole: ByteStream =
            Box::pin(futures::stream::once(async move { Ok(head) }).chain(stream));
        let size = self.files.put_stream(key, whole).await?;
        self.drop_row_if_any(key).await?;
        Ok(size)
    }

    async fn get(&self, key: &str) -> Result<Option<Content>> {
        match self.row(key).await? {
            Some(content) => Ok(Some(content)),
            None => self.files.get(key).await,
        }
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        match self.row(key).await? {
            Some(content) => {
                let bytes = content.into_bytes();
                Ok(Some(Box::pin(futures::stream::once(
                    async move { Ok(bytes) },
                ))))
            }
            None => self.files.get_stream(key).await,
        }
    }

    /// One query for the rows; the files store reads the rest in its own batch.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Content>>> {
        let mut rows: HashMap<String, Vec<u8>> = HashMap::new();
        for chunk in keys.chunks(KEYS_PER_STATEMENT) {
            let mut query =
                QueryBuilder::<Sqlite>::new("SELECT key, bytes FROM contents WHERE key IN (");
            push_values(&mut query, chunk);
            query.push(")");
            for row in query.build().fetch_all(&mut self.db.read().await?).await? {
                rows.insert(row.try_get("key")?, row.try_get("bytes")?);
            }
        }
        let missing: Vec<String> = keys
            .iter()
            .filter(|key| !rows.contains_key(*key))
            .cloned()
            .collect();
        let mut from_files = match missing.is_empty() {
            true => Vec::new(),
            false => self.files.get_many(&missing).await?,
        }
        .into_iter();
        keys.iter()
            .map(|key| match rows.get(key) {
                Some(bytes) => Ok(Some(Content::new(bytes.clone()))),
                None => from_files.next().ok_or_else(|| StorageError::Other {
                    backend: "content",
                    source: "a batch read answered the wrong number of objects".into(),
                }),
            })
            .collect()
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.delete_rows(&[key.to_owned()], Wal::Truncate).await?;
        self.files.delete(key).await
    }

    async fn forget_scope(&self, scope: &str) -> Result<()> {
        self.files.forget_scope(scope).await
    }

    async fn forget_scopes(&self, scopes: &[&str]) -> Result<()> {
        self.files.forget_scopes(scopes).await
    }

    /// Rows and files merged in key order.
    async fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<ObjectInfo>> {
        let rows = sqlx::query(
            "SELECT key, length(bytes) AS size, modified_at FROM contents
             WHERE substr(key, 1, length(?1)) = ?1 AND key > ?2 ORDER BY key LIMIT ?3",
        )
        .bind(prefix)
        .bind(after.unwrap_or_default())
        .bind(i64::from(limit))
        .fetch_all(&mut self.db.read().await?)
        .await?;
        let mut found = self.files.list(prefix, after, limit).await?;
        for row in rows {
            let modified: i64 = row.try_get("modified_at")?;
            let size: i64 = row.try_get("size")?;
            found.push(ObjectInfo {
                key: row.try_get("key")?,
                size: size.max(0) as u64,
                modified: DateTime::<Utc>::from_timestamp_micros(modified).unwrap_or_default(),
            });
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        found.dedup_by(|later, earlier| later.key == earlier.key);
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn scopes_with_keys(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.files.scopes_with_keys(after, limit).await
    }

    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
        self.delete_both(keys, Wal::Truncate, self.files.delete_many(keys))
            .await
    }

    async fn delete_many_shredded(&self, keys: &[String]) -> Vec<Result<()>> {
        self.delete_both(keys, Wal::Truncate, self.files.delete_many_shredded(keys))
            .await
    }

    async fn delete_many_unsynced(&self, keys: &[String]) -> Vec<Result<()>> {
        self.delete_both(keys, Wal::Leave, self.files.delete_many_unsynced(keys))
            .await
    }
}
