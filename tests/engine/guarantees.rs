//! Never miss, never early (issue 11): each test is named after a defect found by running
//! Lethe the way time and failure really arrive — days passing with instances down,
//! crashes between steps, racing calls, policy changes — and fails on the code that had it.

use crate::helpers::*;
use chrono::{Duration, TimeZone, Utc};
use lethe::domain::{
    ArtifactKind, ArtifactState, Content, DeletionReason, RetentionSettings, SettingsPatch,
    Tombstone, TranscriptStatus,
};
use lethe::engine::EngineError;
use lethe::testing::faults::Faults;

/// Sum of `lethe_deletions_total` over reasons in a metrics text.
fn deletions_counted(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lethe_deletions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

#[tokio::test]
async fn an_upload_due_on_an_earlier_utc_day_is_deleted_after_the_instance_was_down_across_midnights(
) {
    // A default-mode upload at 14:09 (window [24 h, 48 h]); the only instance sweeps at
    // +23 h 50 and then is down for three days, across several UTC midnights.
    let e = TestEngine::start().await;
    let created = Utc
        .with_ymd_and_hms(2026, 3, 11, 14, 9, 0)
        .single()
        .expect("time");
    e.clock.set(created);
    let account = e.account(RetentionSettings::default()).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    assert_eq!(upload.delete_after, Some(created + hours(24)));

    e.clock.set(created + hours(23) + Duration::minutes(50));
    assert_eq!(e.sweep().await.deleted, 0, "never early");

    e.clock.set(created + hours(24 * 4));
    let overdue = e.engine().overdue(100).await.expect("overdue");
    assert_eq!(
        overdue.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![upload.id],
        "an artifact past delete_by is listed as overdue, whatever day it was due"
    );
    let report = e.sweep().await;
    assert_eq!((report.deleted, report.overdue), (1, 1));
    let gone = e
        .backends()
        .index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(gone.state, ArtifactState::Deleted);
    assert_eq!(
        e.backends()
            .content
            .get(&upload.content_key)
            .await
            .expect("get"),
        None,
        "the content object is gone too"
    );
    assert!(e.engine().overdue(100).await.expect("overdue").is_empty());
}

#[tokio::test]
async fn a_retroactive_shortening_is_served_at_once_and_carried_through_a_crash_to_the_end() {
    let e = TestEngine::start_with(|c| c.sweep_batch_size = 20).await;
    let account = e.account(RetentionSettings::default()).await;
    let mut transcripts = Vec::new();
    for _ in 0..60 {
        let t = e.url_transcript(&account).await;
        e.process(&t).await;
        transcripts.push(t);
    }
    // The change is committed with its job in one write; nothing else happens in the call.
    let account = e
        .engine()
        .update_settings(
            account.id,
            &SettingsPatch {
                transcript_ttl: Some(Some(hours(1))),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    assert!(account.retention_job.is_some(), "recorded as a job");

    // An hour later, before any pass: every transcript reads as deleted.
    e.clock.advance(hours(1));
    for t in &transcripts {
        let view = e
            .engine()
            .transcript_content(&account, t.id)
            .await
            .expect("get");
        assert!(
            view.redacted.is_some() && view.result.is_none(),
            "served past its new deadline"
        );
    }

    // A pass that crashes part-way through the job; another instance finishes it.
    let faults = Faults::new(7);
    let crashing = e.faulty_app(&faults);
    faults.crash_after(40);
    assert!(crashing
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .is_err());
    e.clock.advance(Duration::minutes(5)); // the dead pass's claims expire
    let other = e.another_instance().await;
    let report = other
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .expect("pass");
    assert!(report.deleted > 0);
    for t in &transcripts {
        for a in e.artifacts_of(t).await {
            assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
        }
    }
    let stored = e.engine().account(account.id).await.expect("account");
    assert_eq!(stored.retention_job, None, "the job ran to its end");
}

#[tokio::test]
async fn intermediates_follow_a_ttl_set_after_they_were_written() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let intermediate = e.artifact_of_kind(&t, ArtifactKind::Intermediate).await;
    assert_eq!(intermediate.delete_after, Some(t0() + hours(48)));

    e.engine()
        .update_settings(
            account.id,
            &SettingsPatch {
                transcript_ttl: Some(Some(hours(1))),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    e.sweep().await;
    let rescheduled = e.artifact_of_kind(&t, ArtifactKind::Intermediate).await;
    assert_eq!(
        rescheduled.delete_after,
        Some(t0() + hours(1)),
        "linked to the final transcript under the TTL"
    );

    e.clock.advance(hours(1));
    e.sweep().await;
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
    let eligible = e.engine().training_eligible(None, 100).await.expect("list");
    assert!(eligible.is_empty(), "nothing of it is exported");
}

#[tokio::test]
async fn removing_the_ttl_while_a_transcript_processes_never_lengthens_what_it_already_had() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.engine().mark_processing(t.id).await.expect("processing");
    e.engine()
        .put_intermediate(
            t.id,
            "chunk-0",
            Box::pin(futures::stream::iter(vec![Ok(bytes::Bytes::from_static(
                b"MARKER-INTERMEDIATE",
            ))])),
        )
        .await
        .expect("intermediate");
    e.engine()
        .update_settings(
            account.id,
            &SettingsPatch {
                transcript_ttl: Some(None),
                ..Default::default()
            },
        )
        .await
        .expect("update");
    e.clock.advance(hours(2));
    e.engine()
        .complete(t.id, Content::new(r#"{"text":"MARKER-TEXT"}"#), None)
        .await
        .expect("complete");
    let completed = t0() + hours(2);
    for a in e.artifacts_of(&t).await {
        assert_eq!(
            a.delete_after,
            Some(completed + hours(1)),
            "{} keeps the deadline of the TTL it was created under",
            a.kind
        );
    }
    e.clock.advance(hours(1));
    e.sweep().await;
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
}

#[tokio::test]
async fn racing_completions_and_errors_leave_exactly_one_result_and_serve_it() {
    let e = TestEngine::start().await;
    let other = e.another_instance().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.engine().mark_processing(t.id).await.expect("processing");

    let calls = (0..10).map(|i| {
        let lethe = if i % 2 == 0 {
            e.engine().clone()
        } else {
            other.engine.clone()
        };
        async move {
            if i % 3 == 0 {
                lethe.fail(t.id, "pipeline failed").await
            } else {
                lethe
                    .complete(
                        t.id,
                        Content::new(format!(r#"{{"text":"RESULT-{i}"}}"#)),
                        None,
                    )
                    .await
            }
        }
    });
    let results = futures::future::join_all(calls).await;
    let winners: Vec<_> = results.iter().filter(|r| r.is_ok()).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for loser in results.iter().filter(|r| r.is_err()) {
        assert!(
            matches!(
                loser,
                Err(EngineError::AlreadyFinished { .. } | EngineError::Concurrent)
            ),
            "{loser:?}"
        );
    }

    let finals: Vec<_> = e
        .artifacts_of(&t)
        .await
        .into_iter()
        .filter(|a| a.kind == ArtifactKind::FinalTranscript)
        .collect();
    assert_eq!(finals.len(), 1, "the losers removed what they stored");
    let stored = e
        .backends()
        .content
        .get(&finals[0].content_key)
        .await
        .expect("get");
    assert!(stored.is_some());
    let view = e
        .engine()
        .transcript_content(&account, t.id)
        .await
        .expect("get");
    assert_eq!(view.transcript.final_artifact_id, Some(finals[0].id));
    if view.transcript.status == TranscriptStatus::Completed {
        assert!(
            view.result.is_some(),
            "completed is never served without its text"
        );
    }
}

#[tokio::test]
async fn concurrent_passes_of_one_instance_delete_and_count_each_artifact_once() {
    let e = TestEngine::start_with(|c| c.sweep_batch_size = 25).await;
    let account = e.ttl_account(hours(1)).await;
    for _ in 0..120 {
        e.upload(&account, b"MARKER-AUDIO").await;
    }
    e.clock.advance(hours(72));
    let now = e.clock.now_for_tests();
    let before = deletions_counted(&e.engine().metrics().encode());

    let sweeper = &e.app.sweeper;
    let reports = futures::future::join_all((0..5).map(|_| sweeper.run_once(now))).await;
    let deleted: u64 = reports.into_iter().map(|r| r.expect("pass").deleted).sum();

    assert_eq!(deleted, 120, "each artifact deleted by exactly one pass");
    assert_eq!(
        deletions_counted(&e.engine().metrics().encode()) - before,
        120,
        "and counted once"
    );
}

#[tokio::test]
async fn a_crash_at_any_step_of_a_deletion_leaves_no_data_key_or_tombstone_missing() {
    for step in [
        "content.delete_many",
        "content.forget_scope",
        "audit.record_tombstones",
        "index.finish",
    ] {
        let e = TestEngine::start().await;
        let account = e.ttl_account(hours(1)).await;
        let t = e.url_transcript(&account).await;
        e.process(&t).await;
        let faults = Faults::new(3);
        let crashing = e.faulty_app(&faults);
        e.clock.advance(hours(1));
        faults.fail_next(step);
        let _ = crashing.sweeper.run_once(e.clock.now_for_tests()).await;
        assert_eq!(faults.injected(), vec![step.to_owned()], "{step}");

        // The next pass after the lease finishes everything.
        e.clock.advance(Duration::minutes(5));
        e.sweep().await;
        let mut tombstones: Vec<Tombstone> = Vec::new();
        for a in e.artifacts_of(&t).await {
            assert_eq!(a.state, ArtifactState::Deleted, "{step}: {}", a.kind);
            tombstones.extend(
                e.backends()
                    .audit
                    .tombstone(a.id)
                    .await
                    .expect("get")
                    .into_iter(),
            );
        }
        assert_eq!(tombstones.len(), 4, "{step}: one tombstone each");
        let scopes = e
            .backends()
            .content
            .scopes_with_keys(None, 100)
            .await
            .expect("scopes");
        assert!(
            scopes.is_empty(),
            "{step}: the transcript's data key is destroyed: {scopes:?}"
        );
    }
}

#[tokio::test]
async fn a_storage_error_on_a_stuck_transcript_does_not_stop_deletion() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let stuck = e.url_transcript(&account).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    e.clock.advance(hours(73));
    let faults = Faults::new(5);
    let app = e.faulty_app(&faults);
    // Every write to a transcript fails (a full disk for that table, say).
    faults.fail_always("index.update_transcript");

    let report = app
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .expect("the pass goes on");

    assert!(report.failed >= 1, "the failure is reported");
    assert_eq!(report.deleted, 1, "the due upload is still deleted");
    let gone = e
        .backends()
        .index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(gone.state, ArtifactState::Deleted);
    faults.heal();
    let report = app
        .sweeper
        .run_once(e.clock.now_for_tests())
        .await
        .expect("pass");
    assert_eq!(report.stuck_transcripts_errored, 1);
    let t = e
        .backends()
        .index
        .transcript(stuck.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(t.status, TranscriptStatus::Error);
}

#[tokio::test]
async fn more_tombstones_than_one_statement_can_carry_are_recorded() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let now = e.clock.now_for_tests();
    let tombstones: Vec<Tombstone> = (0..7000)
        .map(|i| {
            let mut a = upload.clone();
            a.id = lethe::domain::new_id(now + Duration::microseconds(i));
            a.pending_reason = Some(DeletionReason::CustomerRequest);
            Tombstone::for_artifact(&a, now, "test")
        })
        .collect();
    e.backends()
        .audit
        .record_tombstones(&tombstones, &[])
        .await
        .expect("7000 tombstones (77,000 parameters in one statement before)");
    let last = tombstones.last().expect("last").artifact_id;
    assert!(e
        .backends()
        .audit
        .tombstone(last)
        .await
        .expect("get")
        .is_some());
}

#[tokio::test]
async fn a_result_a_crashed_completion_left_never_takes_the_transcript_with_it() {
    // Found by the simulation (seed 221): the abandoned result of a completion that
    // crashed before it won came due on its own and cascaded to the transcript's text
    // inputs, days before their deadline.
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let t = e.url_transcript(&account).await;
    e.engine().mark_processing(t.id).await.expect("processing");
    let faults = Faults::new(11);
    let crashing = e.faulty_app(&faults);
    // It dies as it makes the transcript terminal: nothing after that write happens.
    faults.fail_always("index.update_transcript");
    faults.fail_always("content.delete");
    assert!(crashing
        .engine
        .complete(t.id, Content::new(r#"{"text":"LOST"}"#), None)
        .await
        .is_err());

    // The pipeline retries five hours later and wins.
    e.clock.advance(hours(5));
    e.engine()
        .complete(t.id, Content::new(r#"{"text":"MARKER-TEXT"}"#), None)
        .await
        .expect("complete");
    e.sweep().await;

    let view = e
        .engine()
        .transcript_content(&account, t.id)
        .await
        .expect("get");
    assert!(view.redacted.is_none(), "the transcript is not deleted");
    assert!(view.text_inputs.is_some(), "nor are its text inputs");
    assert_eq!(
        view.result.map(|r| r.expose().clone()),
        Some(bytes::Bytes::from_static(br#"{"text":"MARKER-TEXT"}"#))
    );
    let finals: Vec<_> = e
        .artifacts_of(&t)
        .await
        .into_iter()
        .filter(|a| a.kind == ArtifactKind::FinalTranscript)
        .collect();
    assert!(
        finals.iter().any(|a| a.state == ArtifactState::Deleted),
        "the abandoned result is gone"
    );
    e.clock.advance(hours(1));
    e.sweep().await;
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
}

#[tokio::test]
async fn s3_an_intermediate_still_streaming_when_its_transcript_is_deleted_is_not_kept() {
    // The pipeline streams an intermediate; meanwhile the transcript completes and the
    // customer deletes it. The write must not outlive the deletion, nor be confirmed.
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.engine().mark_processing(t.id).await.expect("processing");
    let (tx, rx) = futures::channel::mpsc::unbounded::<std::io::Result<bytes::Bytes>>();
    tx.unbounded_send(Ok(bytes::Bytes::from_static(b"MARKER-FIRST-HALF")))
        .expect("send");
    let engine = e.engine().clone();
    let writing =
        tokio::spawn(async move { engine.put_intermediate(t.id, "chunk-0", Box::pin(rx)).await });
    let intermediate = loop {
        let found = e
            .artifacts_of(&t)
            .await
            .into_iter()
            .find(|a| a.kind == ArtifactKind::Intermediate);
        match found {
            Some(a) => break a,
            None => tokio::task::yield_now().await,
        }
    };
    e.engine()
        .complete(t.id, Content::new(r#"{"text":"MARKER-TEXT"}"#), None)
        .await
        .expect("complete");
    e.engine()
        .delete_transcript(&account, t.id)
        .await
        .expect("delete");
    tx.unbounded_send(Ok(bytes::Bytes::from_static(b"MARKER-SECOND-HALF")))
        .expect("send");
    drop(tx);
    let written = writing.await.expect("task");
    assert!(
        matches!(written, Err(EngineError::ContentDeleted)),
        "not confirmed: {written:?}"
    );
    let content = &e.backends().content;
    assert_eq!(
        content.get(&intermediate.content_key).await.expect("get"),
        None,
        "nothing of it is left"
    );
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
    e.assert_no_content_left(&account).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_racing_customer_deletions_each_answer_the_redacted_transcript() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    for round in 0..10 {
        let t = e.url_transcript(&account).await;
        e.process(&t).await;
        let racers: Vec<_> = (0..4)
            .map(|_| {
                let (engine, account) = (e.engine().clone(), account.clone());
                tokio::spawn(async move { engine.delete_transcript(&account, t.id).await })
            })
            .collect();
        for racer in racers {
            let view = racer.await.expect("task").expect("deleted");
            assert_eq!(
                view.redacted,
                Some(DeletionReason::CustomerRequest),
                "round {round}"
            );
        }
    }
}

#[tokio::test]
async fn s3_a_speech_understanding_result_arriving_after_its_transcript_was_deleted_is_refused_with_410(
) {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    e.engine()
        .delete_transcript(&account, t.id)
        .await
        .expect("delete");
    let late = e
        .engine()
        .add_speech_understanding(t.id, Content::new(r#"{"r":"MARKER-SU"}"#))
        .await;
    assert!(
        matches!(late, Err(EngineError::ContentDeleted)),
        "refused: {late:?}"
    );
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
}

#[tokio::test]
async fn s3_a_customer_deletion_cut_short_after_marking_the_transcript_is_finished_by_the_sweeper()
{
    // Default mode: nothing of it has a deadline, so only the deletion request ends it.
    for step in ["index.artifacts_for_transcripts", "index.request_and_claim"] {
        let e = TestEngine::start().await;
        let account = e.account(RetentionSettings::default()).await;
        let upload = e.upload(&account, b"MARKER-AUDIO").await;
        let t = e.upload_transcript(&account, &upload).await;
        e.process(&t).await;
        let faults = Faults::new(13);
        let crashing = e.faulty_app(&faults);
        // It is marked deleted; the next step fails.
        faults.fail_next(step);
        let cut = crashing.engine.delete_transcript(&account, t.id).await;
        assert!(cut.is_err(), "{step}: the request fails");
        let stored = e.backends().index.transcript(t.id).await.expect("get");
        assert!(
            stored.as_ref().is_some_and(|t| t.deletion.is_some()),
            "{step}: marked deleted"
        );
        // Nothing of it is served or exported meanwhile.
        for a in e.artifacts_of(&t).await {
            let content = e.engine().training_content(a.id).await;
            assert!(
                matches!(content, Ok(None) | Err(EngineError::NotFound)),
                "{step}: {} exported",
                a.kind
            );
        }

        e.clock.advance(Duration::minutes(5));
        e.sweep().await;
        e.sweep().await;
        for a in e.artifacts_of(&t).await {
            assert_eq!(a.state, ArtifactState::Deleted, "{step}: {}", a.kind);
            assert_eq!(a.deletion_reason, Some(DeletionReason::CustomerRequest));
        }
        let upload = e.backends().index.artifact(upload.id).await.expect("get");
        assert_eq!(
            upload.map(|u| u.state),
            Some(ArtifactState::Deleted),
            "{step}: the upload goes too"
        );
    }
}

#[tokio::test]
async fn an_upload_broken_off_leaves_neither_content_nor_a_data_key() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let body: lethe::storage::ByteStream = Box::pin(futures::stream::iter(vec![
        Ok(bytes::Bytes::from(vec![7u8; 64 * 1024])),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
    ]));
    assert!(e.engine().upload(&account, body).await.is_err());
    e.assert_no_content_left(&account).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_speech_understanding_racing_a_customer_deletion_never_outlives_it() {
    // Seen live, with no deadline, after 15 of 40 such rounds over HTTP: the result was
    // checked against a transcript read before the deletion and stored after it.
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    for round in 0..30 {
        let t = e.url_transcript(&account).await;
        e.process(&t).await;
        let mut racers = Vec::new();
        for _ in 0..4 {
            let engine = e.engine().clone();
            racers.push(tokio::spawn(async move {
                engine
                    .add_speech_understanding(t.id, Content::new(r#"{"r":"MARKER-SU"}"#))
                    .await
            }));
        }
        e.engine()
            .delete_transcript(&account, t.id)
            .await
            .expect("delete");
        for racer in racers {
            match racer.await.expect("task") {
                Ok(_) | Err(EngineError::ContentDeleted) => {}
                Err(other) => panic!("round {round}: {other:?}"),
            }
        }
        // Whatever was stored before the mark was read by the deletion; nothing after.
        for a in e.artifacts_of(&t).await {
            assert_eq!(a.state, ArtifactState::Deleted, "round {round}: {}", a.kind);
        }
    }
}

#[tokio::test]
async fn s4_settling_a_transcript_its_schedule_deleted_never_takes_its_upload_early() {
    // A transcript marked deleted by its TTL while unsettled (a crash between the two):
    // settling it must not treat it as a customer's deletion, which takes the upload too.
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.upload_transcript(&account, &upload).await;
    e.process(&t).await;
    let index = &e.backends().index;
    let mut stored = index.transcript(t.id).await.expect("get").expect("stored");
    stored.deletion = Some(lethe::domain::TranscriptDeletion {
        at: t0() + hours(1),
        reason: DeletionReason::Ttl,
    });
    stored.settled = false;
    index.update_transcript(&stored).await.expect("update");
    e.clock.advance(Duration::minutes(2));
    e.sweep().await;
    e.sweep().await;
    let upload_now = index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(
        upload_now.state,
        ArtifactState::Live,
        "not before its own deadline"
    );
    assert_eq!(upload_now.pending_reason, None);
    assert_eq!(upload_now.delete_after, upload.delete_after);
}
