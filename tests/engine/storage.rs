//! The storage conformance suite against the embedded backends, on real files.

use crate::helpers::t0;
use lethe::clock::ManualClock;
use lethe::domain::ApiKey;
use lethe::storage::conformance;
use lethe::storage::local::LocalContentStore;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::sqlite_content::SqliteInlineContentStore;
use lethe::storage::{AccountStore, ArtifactIndex};

async fn sqlite() -> (tempfile::TempDir, SqliteStore) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqliteStore::open(&dir.path().join("lethe.db"))
        .await
        .expect("sqlite opens");
    (dir, store)
}

#[tokio::test]
async fn sqlite_account_store_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::accounts(&store).await;
}

/// An in-memory database is what the writer's connection holds: reads must go through that
/// connection too. On connections of their own (as before: sqlx renames `sqlite::memory:`,
/// so the store did not tell) they found no tables at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_in_memory_url_serves_reads_racing_writes() {
    for url in ["sqlite::memory:", "sqlite://?mode=memory"] {
        let store = SqliteStore::open_url(url).await.expect("opens");
        conformance::accounts(&store).await;
        let store = std::sync::Arc::new(store);
        let racing: Vec<_> = (0..64)
            .map(|_| {
                let store = store.clone();
                tokio::spawn(async move {
                    let account = conformance::sample_account(t0());
                    store
                        .create_account(&account, &ApiKey::generate().hash())
                        .await?;
                    store.account(account.id).await
                })
            })
            .collect();
        for task in racing {
            let read = task.await.expect("joins");
            assert!(
                matches!(read, Ok(Some(_))),
                "{url}: a write and its read succeed: {read:?}"
            );
        }
    }
}

#[tokio::test]
async fn sqlite_transcript_index_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::transcripts(&store).await;
    // Again where the file also keeps the content: a page reads its URLs' keys and rows.
    let (_dir, store) = sqlite().await;
    store.keeps_content();
    conformance::transcripts(&store).await;
}

#[tokio::test]
async fn sqlite_reads_a_transcript_with_its_account_at_once() {
    let (_dir, store) = sqlite().await;
    let account = conformance::sample_account(conformance::t0());
    store
        .create_account(&account, &ApiKey::generate().hash())
        .await
        .expect("creates");
    let t = conformance::sample_transcript(&account, conformance::t0());
    store.insert_transcript(&t).await.expect("inserts");
    // Not the account store (PostgreSQL keeps the accounts): whatever this file's own
    // table holds, the account store is asked.
    let (_, with) = store
        .transcript_and_account(t.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(
        with, None,
        "this file's accounts are not read unless it keeps them"
    );
    conformance::transcript_and_account(&store, &store).await;

    store.keeps_accounts();
    conformance::transcript_and_account(&store, &store).await;
    let (_, with) = store
        .transcript_and_account(t.id)
        .await
        .expect("reads")
        .expect("found");
    assert_eq!(with, Some(account), "one read, the account with it");
}

/// Where the file also keeps the content's keys and rows, a page of list items brings its
/// URL artifacts' sealed rows and wrapped keys in its own statement, and they open to what
/// a separate batch read gives: a row, a file, a destroyed key. A key of another shape
/// than `<account>/<scope>/<artifact>` leaves the page without them (read on its own).
#[tokio::test]
async fn sqlite_reads_a_pages_audio_urls_with_it() {
    use lethe::domain::{Artifact, ArtifactKind, Content};
    use lethe::storage::encrypted::{EncryptedContentStore, MasterKey};
    use lethe::storage::{ContentStore, TranscriptQuery};
    use std::sync::Arc;

    let (_dir, db, objects) = inline().await;
    let master = MasterKey::from_hex(&MasterKey::generate_hex()).expect("a key");
    let content = EncryptedContentStore::new(Arc::new(objects), Arc::new(db.clone()), master);
    let account = conformance::sample_account(conformance::t0());
    db.create_account(&account, &ApiKey::generate().hash())
        .await
        .expect("creates");
    // Oldest first: a row, a file, a destroyed key, no URL at all.
    let large = format!("https://media.example.com/{}", "x".repeat(20_000));
    let contents = [
        Some("https://media.example.com/a.mp3".to_owned()),
        Some(large.clone()),
        Some("https://media.example.com/shredded.mp3".to_owned()),
        None,
    ];
    let mut urls = Vec::new();
    for (n, url) in contents.iter().enumerate() {
        let at = conformance::t0() + chrono::Duration::seconds(n as i64);
        let t = conformance::sample_transcript(&account, at);
        db.insert_transcript(&t).await.expect("inserts");
        let Some(url) = url else { continue };
        let a = Artifact::new_live(
            lethe::domain::new_id(at),
            &account,
            Some(t.id),
            ArtifactKind::UrlAudioReference,
            at,
        );
        db.insert_artifact(&a).await.expect("inserts");
        content
            .put(&a.content_key, Content::new(url.clone()))
            .await
            .expect("stores");
        urls.push(a);
    }
    content
        .forget_scope(lethe::domain::content_scope(&urls[2].content_key))
        .await
        .expect("forgets");
    let query = TranscriptQuery {
        limit: 10,
        ..Default::default()
    };
    let page = |db: SqliteStore| {
        let query = query.clone();
        async move {
            db.list_transcripts_with_artifacts(account.id, &query, ArtifactKind::UrlAudioReference)
                .await
                .expect("lists")
        }
    };
    assert!(
        page(db.clone()).await.content.is_none(),
        "not read unless the file keeps the content"
    );

    db.keeps_content();
    let listed = page(db.clone()).await;
    assert_eq!(listed.transcripts.len(), 4);
    let keys: Vec<String> = listed
        .artifacts
        .iter()
        .map(|a| a.content_key.clone())
        .collect();
    assert_eq!(keys.len(), 3);
    let read = listed.content.expect("read with the page");
    let shapes: Vec<_> = read
        .objects
        .iter()
        .map(|(key, found)| (key.clone(), found.wrapped.is_some(), found.sealed.is_some()))
        .collect();
    assert_eq!(
        shapes,
        vec![
            (keys[0].clone(), false, true),
            (keys[1].clone(), true, false),
            (keys[2].clone(), true, true),
        ],
        "each under its key: the shredded URL's row without a key, the file without a row, the row with both"
    );
    let opened = content
        .get_many_read(&keys, read.clone())
        .await
        .expect("opens");
    assert_eq!(opened, content.get_many(&keys).await.expect("reads"));
    // Out of step with the keys asked for: refused, not opened as another object (the
    // row of one scope would open under its own key as the other's URL).
    let mut swapped = read.clone();
    swapped.objects.swap(0, 2);
    assert!(content.get_many_read(&keys, swapped).await.is_err());
    // Read from another database: not trusted; the objects are read again.
    let mut elsewhere = read.clone();
    elsewhere.source ^= 1;
    for (_, found) in &mut elsewhere.objects {
        found.sealed = Some(b"not this store's".to_vec());
    }
    assert_eq!(
        content
            .get_many_read(&keys, elsewhere)
            .await
            .expect("reads"),
        opened
    );
    let expose = |c: &Option<Content>| c.as_ref().map(|c| c.expose().to_vec());
    // Newest first: the shredded URL, the file, the row.
    assert_eq!(expose(&opened[0]), None, "its key is destroyed");
    assert_eq!(expose(&opened[1]), Some(large.into_bytes()), "a file");
    assert_eq!(
        expose(&opened[2]),
        Some(b"https://media.example.com/a.mp3".to_vec()),
        "a row"
    );

    // A key of another shape: its scope is not what the statement computes.
    let t =
        conformance::sample_transcript(&account, conformance::t0() + chrono::Duration::seconds(9));
    db.insert_transcript(&t).await.expect("inserts");
    let mut odd = Artifact::new_live(
        lethe::domain::new_id(conformance::t0()),
        &account,
        Some(t.id),
        ArtifactKind::UrlAudioReference,
        conformance::t0(),
    );
    odd.content_key = format!("{}/{}/{}-x", account.id, t.id, odd.id);
    db.insert_artifact(&odd).await.expect("inserts");
    let listed = page(db.clone()).await;
    assert_eq!(listed.artifacts.len(), 4);
    assert!(listed.content.is_none(), "left to a read of its own");
}

/// As `lethe serve` wires the embedded profile, a page reads its URLs' keys and rows.
#[tokio::test]
async fn the_embedded_wiring_reads_a_pages_urls_with_it() {
    use lethe::domain::ArtifactKind;
    use lethe::storage::TranscriptQuery;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = lethe::config::Config::defaults();
    config.data_dir = dir.path().to_owned();
    let backends =
        lethe::storage::Backends::from_config(&config, std::sync::Arc::new(ManualClock::new(t0())))
            .await
            .expect("opens");
    let query = TranscriptQuery {
        limit: 10,
        ..Default::default()
    };
    let listed = backends
        .index
        .list_transcripts_with_artifacts(
            lethe::domain::new_id(t0()),
            &query,
            ArtifactKind::UrlAudioReference,
        )
        .await
        .expect("lists");
    assert!(listed.content.is_some(), "read with the page");
}

#[tokio::test]
async fn sqlite_artifact_index_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::artifacts(&store).await;
}

#[tokio::test]
async fn sqlite_audit_log_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::audit(&store).await;
}

#[tokio::test]
async fn sqlite_usage_records_conform() {
    let (_dir, store) = sqlite().await;
    conformance::usage(&store).await;
}

#[tokio::test]
async fn sqlite_training_index_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::training_eligible(&store).await;
}

#[tokio::test]
async fn local_content_store_conforms() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalContentStore::open(dir.path()).await.expect("opens");
    conformance::content(&store).await;
}

/// The embedded profile's content store as `lethe serve` wires it: sealed objects, small
/// ones as rows of the SQLite file and larger ones as files, keys in the same SQLite file.
async fn encrypted() -> (
    tempfile::TempDir,
    lethe::storage::encrypted::EncryptedContentStore,
) {
    use lethe::storage::encrypted::{EncryptedContentStore, MasterKey};
    use std::sync::Arc;
    let (dir, db, objects) = inline().await;
    let master = MasterKey::from_hex(&MasterKey::generate_hex()).expect("a key");
    let store = EncryptedContentStore::new(Arc::new(objects), Arc::new(db), master);
    (dir, store)
}

/// Small objects as rows of a SQLite file, larger ones as files under `content/`.
async fn inline() -> (tempfile::TempDir, SqliteStore, SqliteInlineContentStore) {
    let (dir, db) = sqlite().await;
    let store = inline_on(db.clone(), dir.path()).await;
    (dir, db, store)
}

/// `db`'s rows, with files under `dir/content`.
async fn inline_on(db: SqliteStore, dir: &std::path::Path) -> SqliteInlineContentStore {
    let files = LocalContentStore::open(&dir.join("content"))
        .await
        .expect("opens");
    SqliteInlineContentStore::new(
        db,
        std::sync::Arc::new(files),
        std::sync::Arc::new(ManualClock::new(t0())),
    )
}

/// The files under `content/` (not counting temporary ones).
fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut stack = vec![dir.join("content")];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let path = entry.expect("an entry").path();
            match path.is_dir() {
                true => stack.push(path),
                false => found.push(path.to_string_lossy().into_owned()),
            }
        }
    }
    found
}

#[tokio::test]
async fn inline_content_store_conforms() {
    let (_dir, _db, store) = inline().await;
    conformance::content(&store).await;
}

/// A row is dated by the injected clock, not the system's: reconciliation compares that
/// date with its own now to spare objects younger than its grace period.
#[tokio::test]
async fn inline_store_dates_a_row_by_the_injected_clock() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let (_dir, _db, store) = inline().await;
    store
        .put("a/s/dated", Content::new("small"))
        .await
        .expect("put");
    let listed = store.list("a/", None, 10).await.expect("list");
    assert_eq!(
        listed
            .iter()
            .map(|o| (o.key.as_str(), o.modified))
            .collect::<Vec<_>>(),
        vec![("a/s/dated", t0())]
    );
}

/// Up to the threshold an object is a row and no file; past it, a file and no row; a
/// stream is decided by where it ends; writing a key again moves it; list shows each key
/// once; deleting removes both.
#[tokio::test]
async fn inline_store_keeps_small_objects_as_rows_and_large_ones_as_files() {
    use futures::stream;
    use lethe::domain::Content;
    use lethe::storage::sqlite_content::MAX_INLINE_BYTES;
    use lethe::storage::ContentStore;
    let (dir, db, store) = inline().await;
    let rows = |db: SqliteStore| async move {
        sqlx::query_scalar::<_, String>("SELECT key FROM contents ORDER BY key")
            .fetch_all(db.pool())
            .await
            .expect("reads")
    };
    let small = Content::new(vec![1u8; MAX_INLINE_BYTES]);
    let large = Content::new(vec![2u8; MAX_INLINE_BYTES + 1]);
    store.put("a/s/1", small.clone()).await.expect("puts");
    store.put("a/s/2", large.clone()).await.expect("puts");
    assert_eq!(rows(db.clone()).await, vec!["a/s/1"]);
    assert_eq!(
        files_under(dir.path()).len(),
        1,
        "only the large one is a file"
    );
    assert_eq!(store.get("a/s/1").await.expect("gets"), Some(small.clone()));
    assert_eq!(store.get("a/s/2").await.expect("gets"), Some(large.clone()));

    // Streams: one that ends at the threshold is a row, a longer one a file, in chunks.
    let chunks = |n: usize| {
        Box::pin(stream::iter(
            (0..n).map(|_| Ok(bytes::Bytes::from(vec![3u8; 1024]))),
        )) as lethe::storage::ByteStream
    };
    let fits = MAX_INLINE_BYTES / 1024;
    assert_eq!(
        store.put_stream("a/s/3", chunks(fits)).await.expect("puts"),
        fits as u64 * 1024
    );
    assert_eq!(
        store
            .put_stream("a/s/4", chunks(fits + 3))
            .await
            .expect("puts"),
        (fits as u64 + 3) * 1024
    );
    assert_eq!(rows(db.clone()).await, vec!["a/s/1", "a/s/3"]);
    assert_eq!(files_under(dir.path()).len(), 2);
    let streamed = store.get("a/s/4").await.expect("gets").expect("there");
    assert_eq!(streamed.expose(), vec![3u8; (fits + 3) * 1024].as_slice());

    // Written again, a key moves: a large object replaces a row, a small one a file.
    store.put("a/s/1", large.clone()).await.expect("puts");
    store.put("a/s/2", small.clone()).await.expect("puts");
    assert_eq!(store.get("a/s/1").await.expect("gets"), Some(large.clone()));
    assert_eq!(store.get("a/s/2").await.expect("gets"), Some(small.clone()));
    assert_eq!(rows(db.clone()).await, vec!["a/s/2", "a/s/3"]);

    let batch = store
        .get_many(&[
            "a/s/4".into(),
            "a/s/2".into(),
            "a/s/9".into(),
            "a/s/1".into(),
        ])
        .await
        .expect("reads");
    assert_eq!(batch[0].as_ref().map(Content::len), Some((fits + 3) * 1024));
    assert_eq!(batch[1], Some(small.clone()));
    assert_eq!(batch[2], None);
    assert_eq!(batch[3], Some(large.clone()));

    let listed: Vec<String> = store
        .list("a/", None, 10)
        .await
        .expect("lists")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(listed, vec!["a/s/1", "a/s/2", "a/s/3", "a/s/4"]);
    let page: Vec<String> = store
        .list("a/", Some("a/s/1"), 2)
        .await
        .expect("lists")
        .into_iter()
        .map(|o| o.key)
        .collect();
    assert_eq!(page, vec!["a/s/2", "a/s/3"]);

    let results = store
        .delete_many_shredded(&[
            "a/s/1".into(),
            "a/s/2".into(),
            "a/s/3".into(),
            "a/s/4".into(),
        ])
        .await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(rows(db.clone()).await.is_empty());
    assert_eq!(
        files_under(dir.path()),
        Vec::<String>::new(),
        "no file is left"
    );
    for key in ["a/s/1", "a/s/2", "a/s/3", "a/s/4"] {
        assert_eq!(store.get(key).await.expect("gets"), None, "{key}");
    }
}

/// The database file and its WAL as a copy of the data dir would hold them.
fn database_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut bytes = std::fs::read(dir.join("lethe.db")).expect("the database file");
    if let Ok(wal) = std::fs::read(dir.join("lethe.db-wal")) {
        bytes.extend(wal);
    }
    bytes
}

fn holds(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// §5: a row deleted while its scope's data key lives (an audio URL deleted before the rest
/// of its transcript) leaves no copy in the database file or its WAL, by whichever durable
/// deletion removes it; a deletion left to a key's destruction is truncated away by the
/// next durable deletion even if that one removes no row.
#[tokio::test]
async fn s5_deletion_a_deleted_row_leaves_no_copy_in_the_database_or_its_wal() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let (dir, _db, store) = inline().await;
    let marker = |n: u32| format!("MARKER-ROW-{n:04}-{}", "x".repeat(200));
    for n in 0..4 {
        store
            .put(&format!("a/s/{n}"), Content::new(marker(n)))
            .await
            .expect("puts");
    }
    for n in 0..4 {
        assert!(
            holds(&database_bytes(dir.path()), marker(n).as_bytes()),
            "a live row is in the files (else this test proves nothing)"
        );
    }

    store.delete("a/s/0").await.expect("deletes");
    let results = store.delete_many(&["a/s/1".into()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let bytes = database_bytes(dir.path());
    for n in 0..2 {
        assert!(!holds(&bytes, marker(n).as_bytes()), "row {n} left a copy");
    }
    assert!(holds(&bytes, marker(3).as_bytes()), "a live row stays");

    let results = store.delete_many_unsynced(&["a/s/2".into()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    let results = store.delete_many(&["a/s/none".into()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        !holds(&database_bytes(dir.path()), marker(2).as_bytes()),
        "an unsynced deletion is truncated away by the next durable one"
    );
    assert_eq!(
        store.get("a/s/3").await.expect("gets"),
        Some(Content::new(marker(3)))
    );
}

/// §5: SQLite truncates the WAL without a sync, so a power loss could bring the deleted
/// copies back; a deletion is done only once its truncation is synced. A WAL file removed
/// from under the database cannot be synced: the deletion is reported not done.
#[tokio::test]
async fn s5_deletion_is_done_only_once_the_wal_truncation_is_synced() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let (dir, _db, store) = inline().await;
    store
        .put("a/s/0", Content::new("zero"))
        .await
        .expect("puts");
    store
        .delete("a/s/0")
        .await
        .expect("deleted, truncation synced");
    std::fs::remove_file(dir.path().join("lethe.db-wal")).expect("the WAL file is there");
    store.put("a/s/1", Content::new("one")).await.expect("puts");
    let deleted = store.delete("a/s/1").await;
    assert!(
        matches!(&deleted, Err(lethe::storage::StorageError::Unavailable { source, .. })
            if source.to_string().contains("could not be made durable")),
        "a truncation that cannot be synced is not a deletion: {deleted:?}"
    );
}

/// The WAL synced is the one SQLite named after the file it opened: through a symbolic
/// link, or a `file:` URI, a deletion's truncation is synced all the same (a sync of a
/// WAL named after the path as given finds no file, and fails the deletion).
#[tokio::test]
async fn s5_deletion_syncs_the_wal_of_a_database_opened_through_a_link_or_a_uri() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let link = dir.path().join("link.db");
    std::os::unix::fs::symlink(dir.path().join("real.db"), &link).expect("links");
    let uri = format!("sqlite:file:{}", dir.path().join("uri.db").display());
    for db in [
        SqliteStore::open(&link)
            .await
            .expect("opens through the link"),
        SqliteStore::open_url(&uri).await.expect("opens the URI"),
    ] {
        let store = inline_on(db, dir.path()).await;
        store
            .put("a/s/0", Content::new("zero"))
            .await
            .expect("puts");
        store
            .delete("a/s/0")
            .await
            .expect("deleted, its truncation synced");
    }
}

/// §5 across a restart: rows deleted without their truncation (the process stopped before
/// destroying the keys) are truncated away by the restarted store (when it opens, or at the
/// latest by its first durable deletion, even one that finds nothing to delete).
#[tokio::test]
async fn s5_deletion_rows_left_in_the_wal_by_a_stopped_process_are_truncated_after_restart() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let (dir, db, store) = inline().await;
    let marker = format!("MARKER-RESTART-{}", "y".repeat(200));
    store
        .put("a/s/0", Content::new(marker.clone()))
        .await
        .expect("puts");
    let results = store.delete_many_unsynced(&["a/s/0".into()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(
        holds(&database_bytes(dir.path()), marker.as_bytes()),
        "left in the WAL (else this test proves nothing)"
    );
    // The stopped process: its connections stay as they were (a crash closes nothing, so
    // no last-close checkpoint tidies the WAL). The restarted one opens the same file.
    let (_stopped_db, _stopped_store) = (db, store);
    let db = SqliteStore::open(&dir.path().join("lethe.db"))
        .await
        .expect("reopens");
    let files = LocalContentStore::open(&dir.path().join("content"))
        .await
        .expect("opens");
    let store = SqliteInlineContentStore::new(
        db,
        std::sync::Arc::new(files),
        std::sync::Arc::new(ManualClock::new(t0())),
    );
    let results = store.delete_many(&["a/s/none".into()]).await;
    assert!(results.iter().all(Result::is_ok), "{results:?}");
    assert!(!holds(&database_bytes(dir.path()), marker.as_bytes()));
}

#[tokio::test]
async fn encrypted_content_store_conforms() {
    let (_dir, store) = encrypted().await;
    conformance::content(&store).await;
}

#[tokio::test]
async fn s6_encryption_a_batch_read_serves_nothing_of_a_shredded_scope() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let (_dir, store) = encrypted().await;
    let (kept, shredded) = ("acct/kept/url", "acct/shredded/url");
    store
        .put(kept, Content::new("https://a/kept"))
        .await
        .expect("stored");
    store
        .put(shredded, Content::new("https://a/gone"))
        .await
        .expect("stored");
    store
        .forget_scope("acct/shredded")
        .await
        .expect("key destroyed");
    let keys = [shredded.to_owned(), kept.to_owned(), shredded.to_owned()];
    assert_eq!(
        store.get_many(&keys).await.expect("batch read"),
        vec![None, Some(Content::new("https://a/kept")), None],
        "the file of the shredded scope is still on disk, but without its key it reads as deleted"
    );
}

/// A batch larger than one blocking task's chunk keeps one result per key, in order: a
/// refused key in the middle fails alone, every other key is removed, synced or not.
#[tokio::test]
async fn local_content_store_batch_deletion_keeps_a_result_per_key_in_order() {
    use lethe::domain::Content;
    use lethe::storage::ContentStore;
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalContentStore::open(&dir.path().join("content"))
        .await
        .expect("opens");
    for unsynced in [false, true] {
        let mut keys: Vec<String> = (0..41)
            .map(|n| format!("a/s{}/{unsynced}-{n}", n % 3))
            .collect();
        keys[20] = "a/../escape".into();
        for (n, key) in keys.iter().enumerate() {
            if n != 20 && n % 7 != 0 {
                store
                    .put(key, Content::new("gone soon"))
                    .await
                    .expect("put");
            }
        }
        let results = match unsynced {
            false => store.delete_many(&keys).await,
            true => store.delete_many_unsynced(&keys).await,
        };
        assert_eq!(results.len(), keys.len());
        for (n, (key, result)) in keys.iter().zip(&results).enumerate() {
            assert_eq!(result.is_err(), n == 20, "{key}: {result:?}");
            if n != 20 {
                assert_eq!(store.get(key).await.expect("get"), None, "{key}");
            }
        }
    }
}

#[tokio::test]
async fn local_content_store_refuses_keys_that_escape_its_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LocalContentStore::open(&dir.path().join("content"))
        .await
        .expect("opens");
    use lethe::storage::ContentStore;
    for key in ["../escape", "a/../../b", "", "/abs", "a//b"] {
        assert!(
            store
                .put(key, lethe::domain::Content::new("x"))
                .await
                .is_err(),
            "{key:?}"
        );
    }
    assert!(!dir.path().join("escape").exists());
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_migrations_are_idempotent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("lethe.db");
    let store = SqliteStore::open(&path).await.expect("opens");
    conformance::accounts(&store).await;
    drop(store);
    let again = SqliteStore::open(&path).await.expect("reopens");
    let count: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM accounts")
        .fetch_one(again.pool())
        .await
        .expect("count");
    assert_eq!(count, 2, "the conformance run's account and its stranger");
}

#[tokio::test]
async fn sqlite_due_query_reads_only_the_sparse_due_index() {
    use sqlx::Row;
    let (_dir, store) = sqlite().await;
    let plan: Vec<String> = sqlx::query(
        "EXPLAIN QUERY PLAN SELECT * FROM artifacts INDEXED BY artifacts_due
         WHERE due_at IS NOT NULL AND due_at <= 0 AND (claimed_until IS NULL OR claimed_until <= 0)
         ORDER BY due_at LIMIT 10",
    )
    .fetch_all(store.pool())
    .await
    .expect("plan")
    .iter()
    .map(|row| row.get::<String, _>("detail"))
    .collect();
    assert!(
        plan.iter().any(|d| d.contains("USING INDEX artifacts_due")),
        "{plan:?}"
    );
    assert!(
        !plan.iter().any(|d| d.contains("TEMP B-TREE")),
        "no sort step: {plan:?}"
    );
}

#[tokio::test]
async fn tombstones_recorded_before_the_deletion_log_get_their_leaves_once_then_starts_read_one_row(
) {
    use chrono::Duration;
    use lethe::storage::AuditLog;
    let (dir, store) = sqlite().await;
    let t0 = conformance::t0();
    let account = conformance::sample_account(t0);
    let tombstones: Vec<lethe::domain::Tombstone> = (0..3)
        .map(|i| {
            let a = conformance::due_artifact(&account, None, t0 + Duration::minutes(i));
            lethe::domain::Tombstone::for_artifact(&a, t0 + Duration::hours(1), "earlier")
        })
        .collect();
    store
        .record_tombstones(&tombstones, &[])
        .await
        .expect("record");
    // As a database migrated while it already held these tombstones would be.
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        dir.path().join("lethe.db").display()
    ))
    .await
    .expect("connect");
    sqlx::query("DELETE FROM deletion_log; UPDATE deletion_log_backfill SET pending = 1")
        .execute(&pool)
        .await
        .expect("plant");
    assert_eq!(store.log_unlogged_tombstones(2).await.expect("backfill"), 2);
    assert_eq!(store.log_unlogged_tombstones(2).await.expect("backfill"), 1);
    assert_eq!(store.log_leaves(0, 10).await.expect("leaves").len(), 3);
    let pending: i64 = sqlx::query_scalar("SELECT pending FROM deletion_log_backfill")
        .fetch_one(&pool)
        .await
        .expect("flag");
    assert_eq!(pending, 0, "done for good: later starts read one row");
    assert_eq!(store.log_unlogged_tombstones(2).await.expect("backfill"), 0);
}

/// The deletion pipeline removes shredded content without a directory sync of its own: it
/// rests on the data key's destruction being durable when its transaction commits, which
/// is SQLite's `synchronous=FULL` (2) with the WAL.
#[tokio::test]
async fn the_embedded_database_commits_durably() {
    let (_dir, store) = sqlite().await;
    let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(synchronous, 2, "synchronous must be FULL");
    let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(store.pool())
        .await
        .expect("pragma");
    assert_eq!(journal, "wal");
}

/// `LETHE_SQLITE_HOLD_IN_MEMORY`, as `lethe serve` wires it: every page of the file is
/// mapped and resident once the backends are open, and the connection that holds them
/// keeps no snapshot (a deletion's truncation of the WAL still finishes); released (at
/// shutdown), nothing is. Off, nothing is mapped. Reads `/proc/self/smaps`: Linux only.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn holding_the_database_maps_every_page_and_leaves_the_wal_free() {
    use lethe::storage::sqlite_hold::mapped_bytes;
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("lethe.db");
    let mut config = lethe::config::Config::defaults();
    config.data_dir = dir.path().to_owned();
    let open = |config: lethe::config::Config| async move {
        lethe::storage::Backends::from_config(&config, std::sync::Arc::new(ManualClock::new(t0())))
            .await
            .expect("opens")
    };
    let unheld = open(config.clone()).await;
    assert!(unheld.held_in_memory.is_none());
    // About 8 MB of pages beside the schema.
    let tools = SqliteStore::open(&file).await.expect("opens");
    sqlx::query("CREATE TABLE filler (b BLOB)")
        .execute(tools.pool())
        .await
        .expect("table");
    sqlx::query(
        "INSERT INTO filler SELECT randomblob(4000) FROM (WITH RECURSIVE c(x) AS \
         (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000) SELECT x FROM c)",
    )
    .execute(tools.pool())
    .await
    .expect("rows");
    assert_eq!(
        mapped_bytes(&file),
        Some(0),
        "by default no connection maps the file"
    );

    config.sqlite_hold_in_memory = true;
    let held = open(config).await;
    let bytes = std::fs::metadata(&file).expect("file").len();
    assert!(bytes > 8_000_000, "the filler is in the file: {bytes}");
    let mapped = mapped_bytes(&file).expect("/proc/self/smaps");
    // Page 1 is read without the mapping.
    assert!(
        mapped + 4096 >= bytes,
        "{mapped} of the file's {bytes} bytes are mapped"
    );

    // Writes and a truncation of the WAL, as a deletion makes, are not held up.
    sqlx::query("DELETE FROM filler WHERE rowid % 2 = 0")
        .execute(tools.pool())
        .await
        .expect("delete");
    let (busy, log, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(tools.pool())
        .await
        .expect("checkpoint");
    assert_eq!((busy, log), (0, 0), "the WAL is truncated");
    assert!(
        mapped_bytes(&file).expect("smaps") + 4096 >= bytes,
        "pages rewritten in place stay held"
    );

    held.held_in_memory
        .as_ref()
        .expect("the store that holds the file")
        .release_hold()
        .await;
    assert_eq!(mapped_bytes(&file), Some(0), "released");
}
