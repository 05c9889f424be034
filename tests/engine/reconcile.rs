//! Reconciliation (issue 11): an independent check that does not trust the due index
//! finds planted faults on every profile, and `repair` removes them.

use crate::helpers::*;
use chrono::Duration;
use lethe::domain::{
    new_id, Artifact, ArtifactKind, ArtifactState, Content, DeletionReason, Schedule, ScheduleKind,
    Tombstone,
};
use lethe::engine::reconcile::ReconcileOptions;

fn options(repair: bool) -> ReconcileOptions {
    ReconcileOptions {
        repair,
        grace: Duration::hours(1),
    }
}

#[tokio::test]
async fn reconcile_reports_planted_faults_and_repair_removes_them() {
    let e = TestEngine::start().await;
    // Objects carry the store's own write times: run this test on the real calendar.
    e.clock.set(chrono::Utc::now());
    let account = e.ttl_account(hours(1)).await;
    let now = e.clock.now_for_tests();

    // An artifact past its deadline that the due index never heard of.
    let mut missed =
        Artifact::new_live(new_id(now), &account, None, ArtifactKind::LlmGatewayIo, now);
    let schedule = Schedule {
        kind: ScheduleKind::Point,
        delete_after: Some(now + hours(1)),
        delete_by: Some(now + hours(2)),
    };
    missed.anchor_at = Some(now);
    missed.schedule = schedule.kind;
    missed.delete_after = schedule.delete_after;
    missed.delete_by = schedule.delete_by;
    missed.due_at = None;
    e.backends()
        .index
        .insert_artifact(&missed)
        .await
        .expect("insert");
    e.backends()
        .content
        .put(&missed.content_key, Content::new("MARKER-MISSED"))
        .await
        .expect("put");

    // A content object no artifact owns (a crash after the bytes, before the row).
    let orphan_id = new_id(now);
    let orphan_key = format!("{}/{orphan_id}/{orphan_id}", account.id);
    e.backends()
        .content
        .put(&orphan_key, Content::new("MARKER-ORPHAN"))
        .await
        .expect("put");

    // A tracked artifact whose bytes never arrived.
    let unconfirmed = Artifact::new_live(
        new_id(now),
        &account,
        None,
        ArtifactKind::UploadedAudio,
        now,
    );
    e.backends()
        .index
        .insert_artifact(&unconfirmed)
        .await
        .expect("insert");

    // A live artifact the erasure record says was deleted (an index restored from an
    // older backup).
    let restored = e.upload(&account, b"MARKER-RESTORED").await;
    let mut erased = restored.clone();
    erased.pending_reason = Some(DeletionReason::CustomerRequest);
    e.backends()
        .audit
        .record_tombstones(&[Tombstone::for_artifact(&erased, now, "earlier")], &[])
        .await
        .expect("tombstone");

    e.clock.advance(hours(3));
    let sweeper = &e.app.sweeper;
    let found = sweeper
        .reconcile(e.clock.now_for_tests(), options(false), &|_, _| {})
        .await
        .expect("reconcile");
    assert_eq!(found.overdue_not_deleted, 1, "{found:?}");
    assert_eq!(found.orphan_objects, 1, "{found:?}");
    assert_eq!(found.missing_content, 1, "{found:?}");
    assert_eq!(found.erasures_reapplied, 1, "{found:?}");
    assert_eq!(found.repaired, 0, "report only by default");
    assert!(found.samples.contains(&format!("overdue:{}", missed.id)));
    assert!(found
        .samples
        .contains(&format!("orphan_object:{orphan_key}")));
    // Nothing was touched.
    assert!(e
        .backends()
        .content
        .get(&orphan_key)
        .await
        .expect("get")
        .is_some());

    let repaired = sweeper
        .reconcile(e.clock.now_for_tests(), options(true), &|_, _| {})
        .await
        .expect("reconcile");
    assert!(repaired.repaired >= 4, "{repaired:?}");

    let missed_now = e
        .backends()
        .index
        .artifact(missed.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(missed_now.state, ArtifactState::Deleted);
    assert!(e
        .backends()
        .audit
        .tombstone(missed.id)
        .await
        .expect("get")
        .is_some());
    assert_eq!(
        e.backends().content.get(&orphan_key).await.expect("get"),
        None
    );
    assert_eq!(
        e.backends()
            .index
            .artifact(restored.id)
            .await
            .expect("get")
            .expect("tracked")
            .state,
        ArtifactState::Deleted,
        "the erasure record is applied again"
    );

    let clean = sweeper
        .reconcile(e.clock.now_for_tests(), options(false), &|_, _| {})
        .await
        .expect("reconcile");
    assert_eq!(clean.findings(), 0, "{clean:?}");
    let recorded = e
        .backends()
        .audit
        .recent_reconciliations(5)
        .await
        .expect("list");
    assert_eq!(recorded.len(), 3);
    assert_eq!(recorded[0].id, clean.id, "newest first");
}

#[tokio::test]
async fn reconcile_destroys_a_data_key_whose_scope_has_nothing_left() {
    let e = TestEngine::start_embedded().await;
    e.clock.set(chrono::Utc::now());
    let account = e.ttl_account(hours(1)).await;
    let now = e.clock.now_for_tests();
    // A key created for a scope whose only object then vanished without the key going.
    let id = new_id(now);
    let key = format!("{}/{id}/{id}", account.id);
    e.backends()
        .content
        .put(&key, Content::new("MARKER"))
        .await
        .expect("put");
    // Small, so a row of the SQLite file: it vanishes with its row.
    let removed = sqlx::query("DELETE FROM contents WHERE key = ?")
        .bind(&key)
        .execute(
            &sqlx::SqlitePool::connect(&format!(
                "sqlite://{}",
                e.dir.path().join("lethe.db").display()
            ))
            .await
            .expect("open"),
        )
        .await
        .expect("remove the row");
    assert_eq!(removed.rows_affected(), 1);
    e.clock.advance(hours(2));

    let found = e
        .app
        .sweeper
        .reconcile(e.clock.now_for_tests(), options(true), &|_, _| {})
        .await
        .expect("reconcile");
    assert_eq!(found.keys_without_scope, 1, "{found:?}");
    assert!(e
        .backends()
        .content
        .scopes_with_keys(None, 10)
        .await
        .expect("scopes")
        .is_empty());
}

#[tokio::test]
async fn a_healthy_store_reconciles_clean_and_nothing_is_deleted_early() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(2)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    e.upload(&account, b"MARKER-AUDIO").await;
    e.clock.advance(hours(1) + Duration::minutes(30));
    let report = e
        .app
        .sweeper
        .reconcile(e.clock.now_for_tests(), options(true), &|_, _| {})
        .await
        .expect("reconcile");
    assert_eq!(report.findings(), 0, "{report:?}");
    assert_eq!(report.repaired, 0);
    assert!(e
        .artifacts_of(&t)
        .await
        .iter()
        .all(|a| a.state == ArtifactState::Live));
}
