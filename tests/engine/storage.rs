//! The storage conformance suite against the embedded backends, on real files.

use lethe::storage::conformance;
use lethe::storage::local::LocalContentStore;
use lethe::storage::sqlite::SqliteStore;

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

#[tokio::test]
async fn sqlite_transcript_index_conforms() {
    let (_dir, store) = sqlite().await;
    conformance::transcripts(&store).await;
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

/// The embedded profile's content store as `lethe serve` wires it: sealed files, keys in
/// SQLite.
async fn encrypted() -> (
    tempfile::TempDir,
    lethe::storage::encrypted::EncryptedContentStore,
) {
    use lethe::storage::encrypted::{EncryptedContentStore, MasterKey};
    use std::sync::Arc;
    let (dir, keys) = sqlite().await;
    let files = LocalContentStore::open(&dir.path().join("content"))
        .await
        .expect("opens");
    let master = MasterKey::from_hex(&MasterKey::generate_hex()).expect("a key");
    let store = EncryptedContentStore::new(Arc::new(files), Arc::new(keys), master);
    (dir, store)
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
