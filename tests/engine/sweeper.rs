//! The sweeper with a manual clock: nothing early, linked cascade, crash recovery,
//! overdue counting, stuck transcripts, the wake-up loop and two sweepers at once.

use crate::helpers::*;
use chrono::Duration;
use lethe::domain::{
    ArtifactKind, ArtifactState, DeletionReason, RetentionSettings, SweepState, TranscriptStatus,
};
use lethe::startup::App;
use lethe::storage::Claim;
use lethe::testing::faults::Faults;
use tokio_util::sync::CancellationToken;

#[tokio::test]
async fn s4_nothing_is_deleted_before_delete_after_and_everything_is_at_it() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;

    e.clock.advance(hours(1) - Duration::microseconds(1));
    let early = e.sweep().await;
    assert_eq!(early.deleted, 0);
    assert!(e
        .artifacts_of(&t)
        .await
        .iter()
        .all(|a| a.state == ArtifactState::Live));

    e.clock.advance(Duration::microseconds(1));
    let on_time = e.sweep().await;
    assert_eq!(
        on_time.deleted, 4,
        "final transcript, url reference, text input, intermediate"
    );
    assert!(e
        .artifacts_of(&t)
        .await
        .iter()
        .all(|a| a.state == ArtifactState::Deleted));
    assert_eq!(
        on_time.lags,
        vec![0.0],
        "the final transcript went exactly at delete_after"
    );
}

#[tokio::test]
async fn s3_linked_artifacts_are_deleted_together_with_their_final_transcript() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(2)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    e.engine()
        .add_speech_understanding(
            t.id,
            lethe::domain::Content::new(r#"{"translation":"MARKER-SU"}"#),
        )
        .await
        .expect("speech understanding");

    e.clock.advance(hours(2));
    let report = e.sweep().await;

    assert_eq!(report.deleted, 5);
    assert_eq!(report.deleted_by_reason.get("ttl"), Some(&1));
    assert_eq!(report.deleted_by_reason.get("linked"), Some(&4));
    for a in e.artifacts_of(&t).await {
        let expected = if a.kind == ArtifactKind::FinalTranscript {
            DeletionReason::Ttl
        } else {
            DeletionReason::Linked
        };
        assert_eq!(
            (a.state, a.deletion_reason),
            (ArtifactState::Deleted, Some(expected)),
            "{}",
            a.kind
        );
        assert_eq!(
            e.backends().content.get(&a.content_key).await.expect("get"),
            None,
            "{}",
            a.kind
        );
        assert!(
            e.backends()
                .audit
                .tombstone(a.id)
                .await
                .expect("tombstone")
                .is_some(),
            "{}",
            a.kind
        );
    }
    let transcript = e
        .backends()
        .index
        .transcript(t.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(
        transcript.deletion.map(|d| d.reason),
        Some(DeletionReason::Ttl)
    );
    assert_eq!(
        transcript.audio_duration,
        Some(12.5),
        "usage metadata stays"
    );
}

#[tokio::test]
async fn a_crash_between_content_deletion_and_tombstone_is_completed_by_the_next_pass() {
    let e = TestEngine::start().await;
    let faults = Faults::new(1);
    let app = e.faulty_app(&faults);
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let final_transcript = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;

    e.clock.advance(hours(1));
    faults.fail_next("audit.record_tombstones");
    let crashed = app.sweeper.run_once(e.clock.now_for_tests()).await;
    assert!(
        crashed.is_err(),
        "the pass stops at the failed tombstone write"
    );
    assert_eq!(
        e.backends()
            .content
            .get(&final_transcript.content_key)
            .await
            .expect("get"),
        None,
        "content already gone"
    );
    let half = e
        .backends()
        .index
        .artifact(final_transcript.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(half.state, ArtifactState::Deleting);
    assert!(e
        .backends()
        .audit
        .tombstone(final_transcript.id)
        .await
        .expect("get")
        .is_none());
    let transcript = e
        .backends()
        .index
        .transcript(t.id)
        .await
        .expect("get")
        .expect("kept");
    assert!(
        transcript.is_redacted_at(e.clock.now_for_tests()),
        "reads as deleted meanwhile"
    );

    // The next pass after the claim's lease finishes the job, idempotently.
    e.clock.advance(Duration::minutes(5));
    let next = app
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .expect("next pass");
    assert_eq!(next.deleted, 4);
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
        assert!(
            e.backends()
                .audit
                .tombstone(a.id)
                .await
                .expect("get")
                .is_some(),
            "{}",
            a.kind
        );
    }
}

#[tokio::test]
async fn a_batch_that_fails_beside_others_in_flight_leaves_them_whole_and_the_next_pass_finishes_it(
) {
    // Batches of 4, several deleted at once: one fails at its tombstones. The pass
    // reports the failure, the batches beside it are finished (not cut off), the failed
    // one stays claimed, and nothing else was touched.
    let e = TestEngine::start_with(|c| c.sweep_batch_size = 4).await;
    let faults = Faults::new(1);
    let app = e.faulty_app(&faults);
    let account = e.ttl_account(hours(1)).await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(e.upload(&account, b"MARKER-AUDIO").await.id);
    }
    e.clock.advance(hours(72));
    faults.fail_next("audit.record_tombstones");
    let failed = app.sweeper.run_once(e.clock.now_for_tests()).await;
    assert!(failed.is_err(), "the pass reports its failed batch");

    let (mut deleted, mut claimed, mut untouched) = (0, 0, 0);
    for id in &ids {
        let artifact = e
            .backends()
            .index
            .artifact(*id)
            .await
            .expect("get")
            .expect("tracked");
        let tombstone = e.backends().audit.tombstone(*id).await.expect("get");
        match artifact.state {
            ArtifactState::Deleted => {
                assert!(tombstone.is_some(), "{id}: deleted with its tombstone");
                deleted += 1;
            }
            ArtifactState::Deleting => {
                assert!(tombstone.is_none(), "{id}: the failed batch wrote none");
                claimed += 1;
            }
            _ => {
                assert!(tombstone.is_none(), "{id}");
                untouched += 1;
            }
        }
    }
    assert_eq!(claimed, 4, "exactly the failed batch stays claimed");
    assert!(
        deleted >= 8 && deleted % 4 == 0,
        "the batches in flight beside it finished whole: {deleted}"
    );
    assert_eq!(deleted + claimed + untouched, 30);
    // The pass is recorded as failed with what it did, not left `running` for good.
    let records = e.engine().recent_sweeps(10).await.expect("sweeps");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].state, SweepState::Failed, "{records:?}");
    assert_eq!(records[0].deleted as usize, deleted, "{records:?}");
    let by_reason: u64 = records[0].deleted_by_reason.values().sum();
    assert_eq!(by_reason as usize, deleted, "{records:?}");
    announced_and_counted_failed(&app, &records[0]);

    // After the claim's lease, the next pass deletes the rest, each exactly once.
    e.clock.advance(Duration::minutes(5));
    let next = app
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .expect("next pass");
    assert_eq!(next.deleted as usize, claimed + untouched);
    for id in &ids {
        let artifact = e.backends().index.artifact(*id).await.expect("get");
        assert_eq!(
            artifact.map(|a| a.state),
            Some(ArtifactState::Deleted),
            "{id}"
        );
    }
}

#[tokio::test]
async fn a_batch_leaves_a_trailing_group_due_at_one_instant_and_what_is_in_flight_to_the_next() {
    // The embedded profile: its due index reads in `due_at` order, which the cut relies
    // on (DynamoDB's reads shard by shard; there the cut changes nothing).
    let e = TestEngine::start_embedded().await;
    let account = e.ttl_account(hours(1)).await;
    let mut transcripts = Vec::new();
    for _ in 0..2 {
        let t = e.url_transcript(&account).await;
        transcripts.push(e.process(&t).await);
        e.clock.advance(Duration::seconds(1));
    }
    e.clock.advance(hours(2));
    let now = e.clock.now_for_tests();
    let due = e.backends().index.due(now, 100).await.expect("due");
    let first: Vec<_> = due
        .iter()
        .filter(|a| a.transcript_id == Some(transcripts[0].id))
        .map(|a| a.id)
        .collect();
    let group = first.len();
    assert!(
        group >= 2,
        "a transcript's artifacts share one due time: {due:?}"
    );
    assert_eq!(due.len(), 2 * group);

    // A read of group + 1 ends one artifact into the second transcript: that artifact
    // waits for the next batch, with the rest of its group.
    let none = std::collections::HashSet::new();
    let batch = e
        .engine()
        .claim_due(now, group as u32 + 1, &none)
        .await
        .expect("claim");
    assert_eq!((batch.read, batch.examined), (group + 1, group));
    let mut claimed = batch.ids();
    claimed.sort();
    let mut expected = first.clone();
    expected.sort();
    assert_eq!(claimed, expected, "the first transcript, whole");

    // Artifacts of a batch in flight that a lagging index still lists are skipped.
    let second: std::collections::HashSet<_> = due
        .iter()
        .filter(|a| a.transcript_id == Some(transcripts[1].id))
        .map(|a| a.id)
        .collect();
    let batch = e
        .engine()
        .claim_due(now, 100, &second)
        .await
        .expect("claim");
    assert_eq!((batch.read, batch.examined), (group, 0));
    assert!(batch.ids().is_empty());
}

#[tokio::test]
async fn an_instance_that_dies_holding_a_claim_leaves_nothing_the_next_pass_does_not_finish() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    e.clock.advance(hours(72));
    let now = e.clock.now_for_tests();
    let dead = Claim {
        owner: "dead-instance".into(),
        now,
        until: now + Duration::minutes(5),
    };
    assert_eq!(
        e.backends()
            .index
            .claim(&[upload.id], &dead)
            .await
            .expect("claim")
            .len(),
        1
    );

    assert_eq!(e.sweep().await.deleted, 0, "a live claim is respected");
    e.clock.advance(Duration::minutes(5));
    assert_eq!(e.sweep().await.deleted, 1, "an expired claim is taken over");
    let tomb = e
        .backends()
        .audit
        .tombstone(upload.id)
        .await
        .expect("get")
        .expect("tombstone");
    assert_eq!(tomb.reason, DeletionReason::Ttl);
}

#[tokio::test]
async fn s4_an_artifact_past_delete_by_is_overdue_counted_listed_and_still_deleted() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;

    // delete_by = completion + 1 h TTL + 1 h deletion SLA.
    e.clock.advance(hours(2) + Duration::seconds(1));
    let listed = e
        .backends()
        .index
        .overdue(e.clock.now_for_tests(), 10)
        .await
        .expect("overdue");
    // The final transcript and its linked artifacts share its deadline.
    let mut kinds: Vec<&str> = listed.iter().map(|a| a.kind.as_str()).collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "final_transcript",
            "intermediate",
            "text_input",
            "url_audio_reference"
        ]
    );

    let report = e.sweep().await;
    assert_eq!(report.overdue, 4);
    assert_eq!(report.deleted, 4);
    assert!(e
        .backends()
        .index
        .overdue(e.clock.now_for_tests(), 10)
        .await
        .expect("overdue")
        .is_empty());
}

/// A held artifact was reported "deleted after its deadline" at every pass that met it
/// (one an hour: it is parked for `HOLD_RECHECK`) though nothing was deleted, so a hold of
/// months read as thousands of misses. Only a deletion is counted: once the hold is
/// released, the deletion past the deadline is reported once.
#[tokio::test]
async fn s4_a_held_artifact_past_its_deadline_is_not_reported_overdue_while_the_hold_keeps_it() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let hold = e
        .engine()
        .create_hold(account.id, Some(t.id), "litigation")
        .await
        .expect("hold");
    for day in 0..3 {
        e.clock.advance(hours(25));
        let report = e.sweep().await;
        assert_eq!(
            (report.deleted, report.overdue),
            (0, 0),
            "day {day}: {report:?}"
        );
    }
    e.engine().release_hold(hold.id).await.expect("release");
    let report = e.sweep().await;
    assert_eq!((report.deleted, report.overdue), (4, 4), "{report:?}");
    assert_eq!(e.sweep().await.overdue, 0, "counted once");
}

#[tokio::test]
async fn s4_decision_a_transcript_unfinished_after_max_processing_is_moved_to_error_and_anchored_then(
) {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.engine().mark_processing(t.id).await.expect("processing");

    e.clock.advance(hours(24));
    assert_eq!(
        e.sweep().await.stuck_transcripts_errored,
        0,
        "not past max_processing yet"
    );
    e.clock.advance(Duration::seconds(1));
    let report = e.sweep().await;
    assert_eq!(report.stuck_transcripts_errored, 1);
    let errored = e
        .backends()
        .index
        .transcript(t.id)
        .await
        .expect("get")
        .expect("kept");
    let anchor = t.created_at + hours(24) + Duration::seconds(1);
    assert_eq!(errored.status, TranscriptStatus::Error);
    assert_eq!(errored.completed_at, Some(anchor));
    assert_eq!(errored.delete_after, Some(anchor + hours(1)));

    e.clock.advance(hours(1));
    let report = e.sweep().await;
    assert_eq!(
        report.deleted_by_reason.get("linked"),
        Some(&2),
        "url reference and text input follow it"
    );
}

#[tokio::test]
async fn s3_default_mode_uploads_and_intermediates_go_in_their_windows_and_transcripts_stay() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.upload_transcript(&account, &upload).await;
    e.process(&t).await;

    e.clock.advance(hours(24) - Duration::microseconds(1));
    assert_eq!(e.sweep().await.deleted, 0);
    e.clock.advance(Duration::microseconds(1));
    let report = e.sweep().await;
    assert_eq!(report.deleted_by_reason.get("window"), Some(&1));
    let gone = e
        .backends()
        .index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(
        (gone.state, gone.deletion_reason),
        (ArtifactState::Deleted, Some(DeletionReason::Window))
    );

    e.clock.advance(hours(24));
    let report = e.sweep().await;
    assert_eq!(
        report.deleted_by_reason.get("window"),
        Some(&1),
        "the intermediate at 48 h"
    );

    e.clock.advance(Duration::days(3650));
    assert_eq!(
        e.sweep().await.deleted,
        0,
        "the final transcript is kept indefinitely"
    );
    let final_transcript = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(final_transcript.state, ArtifactState::Live);
}

#[tokio::test]
async fn the_loop_wakes_at_the_next_due_time_not_at_the_next_cron_tick() {
    // A cron schedule that never fires before 2099: only the due-time wake-up can act.
    let e = TestEngine::start_without_cron().await;
    let shutdown = CancellationToken::new();
    let mut passes = e.app.sweeper.passes();
    let running = tokio::spawn(e.app.sweeper.clone().run(shutdown.clone()));

    // Created while the loop sleeps: it must learn of the new, earlier deadline.
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let due = upload.delete_after.expect("scheduled");
    e.clock.set(due);
    tokio::time::timeout(
        std::time::Duration::from_secs(20),
        passes.wait_for(|n| *n >= 1),
    )
    .await
    .expect("a pass ran at the due time")
    .expect("sweeper alive");

    let deleted = e
        .backends()
        .index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(deleted.state, ArtifactState::Deleted);
    assert_eq!(
        deleted.deleted_at,
        Some(due),
        "no lag beyond the pass itself"
    );
    shutdown.cancel();
    running.await.expect("loop stops on shutdown");
}

#[tokio::test]
async fn s4_the_loop_takes_over_a_dead_instances_claim_when_its_lease_runs_out_whatever_the_cron() {
    let e = TestEngine::start_without_cron().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    e.clock.advance(hours(72));
    let now = e.clock.now_for_tests();
    let dead = Claim {
        owner: "dead-instance".into(),
        now,
        until: now + Duration::minutes(5),
    };
    e.backends()
        .index
        .claim(&[upload.id], &dead)
        .await
        .expect("claim");
    let shutdown = CancellationToken::new();
    let mut passes = e.app.sweeper.passes();
    let running = tokio::spawn(e.app.sweeper.clone().run(shutdown.clone()));
    // The claim's lease runs out; no cron tick comes before 2099.
    e.clock.advance(Duration::minutes(5));
    let deleted = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            passes.changed().await.expect("sweeper alive");
            let a = e.backends().index.artifact(upload.id).await.expect("get");
            if a.is_some_and(|a| a.state == ArtifactState::Deleted) {
                break;
            }
        }
    })
    .await;
    assert!(deleted.is_ok(), "taken over within the lease");
    shutdown.cancel();
    running.await.expect("loop stops on shutdown");
}

#[tokio::test]
async fn s1_decision_a_retroactive_shortening_is_carried_out_at_once_not_at_the_next_cron_tick() {
    let e = TestEngine::start_without_cron().await;
    let account = e.ttl_account(hours(24)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(e.app.sweeper.clone().run(shutdown.clone()));
    e.engine()
        .update_settings(
            account.id,
            &lethe::domain::SettingsPatch {
                transcript_ttl: Some(Some(hours(1))),
                ..Default::default()
            },
        )
        .await
        .expect("shorten");
    let rescheduled = tokio::time::timeout(std::time::Duration::from_secs(20), async {
        loop {
            let final_transcript = e
                .artifact_of_kind(&t, lethe::domain::ArtifactKind::FinalTranscript)
                .await;
            if final_transcript.delete_after == Some(t0() + hours(1)) {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(
        rescheduled.is_ok(),
        "the shorter schedule is stored without waiting for a cron tick"
    );
    shutdown.cancel();
    running.await.expect("loop stops on shutdown");
}

#[tokio::test]
async fn two_sweepers_on_one_database_delete_every_artifact_exactly_once() {
    let e = TestEngine::start_with(|c| c.sweep_batch_size = 25).await;
    let other = e.another_instance().await;
    let account = e.ttl_account(hours(1)).await;
    let mut ids = Vec::new();
    for _ in 0..300 {
        ids.push(e.upload(&account, b"MARKER-AUDIO").await.id);
    }
    e.clock.advance(hours(72));
    let now = e.clock.now_for_tests();

    let (a, b) = tokio::join!(e.app.sweeper.run_once(now), other.sweeper.run_once(now));
    let (a, b) = (a.expect("first sweeper"), b.expect("second sweeper"));

    assert_eq!(a.deleted + b.deleted, 300, "{} + {}", a.deleted, b.deleted);
    let mut deleted_by = std::collections::HashMap::<String, u64>::new();
    for id in &ids {
        let tomb = e
            .backends()
            .audit
            .tombstone(*id)
            .await
            .expect("get")
            .expect("one tombstone");
        // `<instance>/sweep/<pass claim>`: count by instance.
        let instance = tomb.deleted_by.split('/').next().expect("owner").to_owned();
        *deleted_by.entry(instance).or_default() += 1;
    }
    assert_eq!(deleted_by.values().sum::<u64>(), 300);
    assert_eq!(
        deleted_by.get(e.engine().instance()).copied().unwrap_or(0),
        a.deleted
    );
    assert_eq!(
        deleted_by
            .get(other.engine.instance())
            .copied()
            .unwrap_or(0),
        b.deleted
    );
}

#[tokio::test]
async fn every_pass_is_recorded_with_its_counts() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    e.upload(&account, b"MARKER-AUDIO").await;
    e.clock.advance(hours(72));
    e.sweep().await;
    let recent = e.backends().audit.recent_sweeps(5).await.expect("sweeps");
    assert_eq!(recent.len(), 1);
    assert_eq!((recent[0].deleted, recent[0].examined), (1, 1));
    assert_eq!(recent[0].instance, e.engine().instance());
}

#[tokio::test]
async fn a_pass_claims_each_next_batch_while_deleting_one_and_stops_at_its_bound() {
    let e = TestEngine::start_with(|c| {
        c.sweep_batch_size = 7;
        c.sweep_max_per_pass = 20;
    })
    .await;
    let account = e.ttl_account(hours(1)).await;
    let mut ids = Vec::new();
    for _ in 0..50 {
        ids.push(e.upload(&account, b"MARKER-AUDIO").await.id);
    }
    e.clock.advance(hours(72));

    // Batches of 7 are claimed until 20 are examined (21): the bound stops the claiming,
    // not the deleting, so every claimed batch is deleted before the pass ends.
    let counts = |r: &lethe::domain::SweepReport| (r.examined, r.deleted, r.truncated);
    assert_eq!(counts(&e.sweep().await), (21, 21, true));
    assert_eq!(counts(&e.sweep().await), (21, 21, true));
    assert_eq!(counts(&e.sweep().await), (8, 8, false));
    assert_eq!(counts(&e.sweep().await), (0, 0, false));
    for id in &ids {
        let tomb = e.backends().audit.tombstone(*id).await.expect("get");
        assert!(tomb.is_some(), "{id} has its tombstone");
    }
}

#[tokio::test]
async fn transcripts_split_across_overlapping_batches_are_deleted_whole_and_shredded() {
    // Batches of 3 and transcripts of 4 artifacts: a final transcript and its linked
    // artifacts fall into different batches, two of which are in flight at once.
    let e = TestEngine::start_with(|c| c.sweep_batch_size = 3).await;
    let account = e.ttl_account(hours(1)).await;
    let mut transcripts = Vec::new();
    for _ in 0..9 {
        let t = e.url_transcript(&account).await;
        transcripts.push(e.process(&t).await);
    }
    e.clock.advance(hours(1));
    let report = e.sweep().await;
    assert_eq!(report.deleted, 36, "{report:?}");
    assert_eq!(report.failed, 0);
    for t in &transcripts {
        let artifacts = e.artifacts_of(t).await;
        assert_eq!(artifacts.len(), 4);
        assert!(artifacts.iter().all(|a| a.state == ArtifactState::Deleted));
    }
    let keys = e
        .backends()
        .content
        .scopes_with_keys(None, 100)
        .await
        .expect("scopes");
    let transcript_scopes: Vec<&String> = keys
        .iter()
        .filter(|scope| {
            transcripts
                .iter()
                .any(|t| scope.ends_with(&t.id.to_string()))
        })
        .collect();
    assert!(
        transcript_scopes.is_empty(),
        "every deleted transcript's data key is destroyed: {transcript_scopes:?}"
    );
}

/// A pass that did its work but could not record its end was counted as a finished pass,
/// left `running` in the record and never announced to whoever waits for it. It now ends
/// failed: counted in `lethe_failed_sweeps_total`, announced, and recorded failed once the
/// storage answers again; what it deleted stands.
#[tokio::test]
async fn a_pass_whose_end_cannot_be_recorded_ends_failed() {
    let e = TestEngine::start().await;
    let faults = Faults::new(1);
    let app = e.faulty_app(&faults);
    let account = e.ttl_account(hours(1)).await;
    let id = e.upload(&account, b"MARKER-AUDIO").await.id;
    e.clock.advance(hours(72));
    // The record of its start goes ahead; the record of its end fails, once.
    faults.fail_after("audit.record_sweep", 1);
    let failed = app.sweeper.run_once(e.clock.now_for_tests()).await;
    assert!(
        failed.is_err(),
        "the pass reports that its end went unrecorded"
    );
    assert_eq!(faults.injected(), ["audit.record_sweep"]);

    let artifact = e
        .backends()
        .index
        .artifact(id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(artifact.state, ArtifactState::Deleted, "what it did stands");
    let records = e.engine().recent_sweeps(10).await.expect("sweeps");
    assert_eq!(records.len(), 1, "{records:?}");
    assert_eq!(records[0].state, SweepState::Failed, "{records:?}");
    assert_eq!(records[0].deleted, 1, "{records:?}");
    announced_and_counted_failed(&app, &records[0]);
}

/// `record`, the only pass `app` ran, ended failed: whoever waits for it (`POST
/// /admin/v1/sweeps?wait=true`) hears of its end, and an operator's alert on the metrics
/// sees it.
fn announced_and_counted_failed(app: &App, record: &lethe::domain::SweepReport) {
    let last = app
        .sweeper
        .last_report()
        .borrow()
        .clone()
        .expect("announced");
    assert_eq!((last.id, last.state), (record.id, SweepState::Failed));
    let metrics = app.engine.metrics().encode();
    assert!(metrics.contains("\nlethe_sweeps_total 1\n"), "{metrics}");
    assert!(
        metrics.contains("\nlethe_failed_sweeps_total 1\n"),
        "{metrics}"
    );
}
