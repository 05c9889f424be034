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
    assert_eq!(count, 1);
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
