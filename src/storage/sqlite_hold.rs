//! `LETHE_SQLITE_HOLD_IN_MEMORY`: the embedded profile's database file held in memory for
//! the server's life.
//!
//! Lethe's connections read with `pread` and find pages in the OS's file cache, which
//! keeps them as it sees fit. Some hosts drop a cached page that nobody has read for a
//! minute, with gigabytes free (a VM whose kernel runs DAMON's `pageout` action on file
//! pages no process maps); on those, a random page of a large account's transcript list
//! reads ten or so pages from disk. With the setting, one more connection, read-only, maps
//! the whole file (`PRAGMA mmap_size`) and reads every page through the mapping once, at
//! start-up; the pages it mapped stay cached while the process lives, however long nobody
//! reads them. The other connections are unchanged.
//!
//! - The walk is one read transaction. A connection that begins a read after another one
//!   committed unmaps the whole file (SQLite guards against a file changed under its
//!   mapping), so the walk cannot be split into many; it runs before the server accepts
//!   requests, because while it runs no truncation of the WAL (which every deletion waits
//!   for) can finish. Afterwards the connection never reads again: it holds no snapshot
//!   and keeps its mapping.
//! - A page rewritten in place stays held (the mapping and the file cache are one); pages
//!   the file gains after start-up are cached as the OS decides, until the next start.
//! - While the walk runs, no other process can truncate the WAL of the same file either
//!   (`lethe sweep --once` beside a starting server): its deletions wait, and past its
//!   retries (about 50 s) are reported not done and retried later.
//! - At shutdown the connection is closed first ([`super::sqlite::SqliteStore::release_hold`]),
//!   so the last connection to close can fold the WAL into the file, as without it.
//! - Memory: about the file's size, as clean file pages, counted in the process's RSS
//!   (`RssFile`), which the kernel still reclaims under real memory pressure; a page so
//!   reclaimed is cached as the OS decides until the next start. A read error of the disk
//!   during the walk is a `SIGBUS` that stops the process (SQLite's documented cost of
//!   mapping a file).

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Executor};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::{Result, StorageError};

/// The most a connection asks SQLite to map: 1 TiB, the cap `.cargo/config.toml` builds
/// SQLite with (`SQLITE_MAX_MMAP_SIZE`). SQLite maps the file's size, not more, and asked
/// for more than its cap takes the cap.
const MAP_LIMIT: u64 = 1 << 40;

/// Pages read per statement of the walk (64 MiB of 4 KiB pages): a progress line between
/// statements, all in one transaction.
const PAGES_PER_STATEMENT: i64 = 16_384;

/// How often the walk logs its progress.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);

/// Reads pages `?1` to `?2` through the pager, which fetches them from the mapping (in a
/// read transaction, any page but the first whose newest copy is not in the WAL).
const WALK: &str = "WITH RECURSIVE page(number) AS \
     (SELECT ?1 UNION ALL SELECT number + 1 FROM page WHERE number < ?2) \
     SELECT count(*), coalesce(sum(length(d.data)), 0) \
     FROM page JOIN sqlite_dbpage AS d ON d.pgno = page.number";

/// What holding the file took.
#[derive(Clone, Debug, PartialEq)]
pub struct Held {
    /// The file's pages when it was walked, and their bytes.
    pub pages: u64,
    pub bytes: u64,
    /// How many bytes of the file this process has mapped and resident afterwards, over
    /// all its mappings of it (`/proc/self/smaps`; none where that cannot be read).
    pub mapped: Option<u64>,
    pub took: Duration,
}

/// The read-only connection that holds `file`'s pages, after walking them all.
pub(super) async fn hold(file: &Path) -> Result<(SqliteConnection, Held)> {
    let began = Instant::now();
    let mut conn = SqliteConnectOptions::new()
        .filename(file)
        .read_only(true)
        .pragma("mmap_size", MAP_LIMIT.to_string())
        .connect()
        .await?;
    // SQLite maps less than asked, without a word, where it was built with a lower cap.
    let limit: i64 = sqlx::query_scalar("PRAGMA mmap_size")
        .fetch_one(&mut conn)
        .await?;
    let size = std::fs::metadata(file)
        .map_err(|e| StorageError::Other {
            backend: "sqlite",
            source: Box::new(e),
        })?
        .len();
    if u64::try_from(limit).unwrap_or(0) < size {
        return Err(unbuilt(format!(
            "this build of SQLite maps at most {limit} bytes of a file, and the database has {size}"
        )));
    }
    if let Err(error) = sqlx::query("SELECT pgno FROM sqlite_dbpage WHERE pgno = 1")
        .fetch_optional(&mut conn)
        .await
    {
        return Err(unbuilt(format!(
            "this build of SQLite cannot read pages by number ({error})"
        )));
    }
    conn.execute("BEGIN").await?;
    let pages: i64 = sqlx::query_scalar("PRAGMA page_count")
        .fetch_one(&mut conn)
        .await?;
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await?;
    let total = pages.max(0) as u64 * page_size.max(0) as u64;
    let (mut walked, mut logged) = (0u64, Instant::now());
    let mut first = 1;
    while first <= pages {
        let last = (first + PAGES_PER_STATEMENT - 1).min(pages);
        let (count, _bytes): (i64, i64) = sqlx::query_as(WALK)
            .bind(first)
            .bind(last)
            .fetch_one(&mut conn)
            .await?;
        walked += count.max(0) as u64;
        first = last + 1;
        if logged.elapsed() >= PROGRESS_EVERY {
            logged = Instant::now();
            tracing::info!(
                held_mb = walked * page_size as u64 / 1_000_000,
                total_mb = total / 1_000_000,
                "holding the database in memory"
            );
        }
    }
    // Ends the read: the connection keeps its mapping and holds no snapshot.
    conn.execute("COMMIT").await?;
    let held = Held {
        pages: walked,
        bytes: total,
        mapped: mapped_bytes(file),
        took: began.elapsed(),
    };
    Ok((conn, held))
}

fn unbuilt(what: String) -> StorageError {
    StorageError::Other {
        backend: "sqlite",
        source: format!(
            "{what}: build Lethe with LIBSQLITE3_FLAGS as its repository's .cargo/config.toml \
             sets them (-DSQLITE_MAX_MMAP_SIZE=0x10000000000 -DSQLITE_ENABLE_DBPAGE_VTAB); \
             `cargo build` in the repository does, unless LIBSQLITE3_FLAGS is set otherwise \
             in the environment"
        )
        .into(),
    }
}

/// The bytes of `file` this process has mapped and resident: the `Rss` of its mappings in
/// `/proc/self/smaps`. None where that file cannot be read (not Linux).
pub fn mapped_bytes(file: &Path) -> Option<u64> {
    let file: PathBuf = std::fs::canonicalize(file).ok()?;
    let file = file.to_str()?;
    let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
    let mut ours = false;
    let mut kib = 0u64;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else {
            continue;
        };
        if !first.ends_with(':') {
            // A mapping's header: range, permissions, offset, device, inode, path.
            ours = line.trim_end().ends_with(&format!(" {file}"));
        } else if ours && first == "Rss:" {
            kib += fields
                .next()
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    Some(kib * 1024)
}
