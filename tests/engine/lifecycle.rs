//! Lifecycle operations: customer deletion (the matrix's last column), never serving
//! expired content, retroactive shortening, tenancy and what stays on disk.

use crate::helpers::*;
use chrono::Duration;
use lethe::domain::{
    Account, ArtifactKind, ArtifactState, Content, DeletionReason, RetentionSettings,
    SettingsPatch, Transcript,
};
use lethe::engine::{AudioSource, EngineError, NewTranscript, UploadRead};
use std::collections::HashMap;

/// A completed transcript with one artifact of every kind the matrix lists, then a
/// customer deletion request. Returns each kind's artifact state and reason.
async fn customer_deletion_of_every_kind(
) -> HashMap<ArtifactKind, (ArtifactState, Option<DeletionReason>)> {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let from_upload = e.upload_transcript(&account, &upload).await;
    e.process(&from_upload).await;
    let from_url = e.url_transcript(&account).await;
    e.process(&from_url).await;
    e.engine()
        .add_speech_understanding(from_url.id, Content::new("{}"))
        .await
        .expect("speech understanding");

    e.engine()
        .delete_transcript(&account, from_upload.id)
        .await
        .expect("delete");
    e.engine()
        .delete_transcript(&account, from_url.id)
        .await
        .expect("delete");

    let mut states = HashMap::new();
    let mut all = e.artifacts_of(&from_upload).await;
    all.extend(e.artifacts_of(&from_url).await);
    all.push(
        e.backends()
            .index
            .artifact(upload.id)
            .await
            .expect("get")
            .expect("tracked"),
    );
    for a in all {
        states.insert(a.kind, (a.state, a.deletion_reason));
        assert_eq!(
            e.backends().content.get(&a.content_key).await.expect("get"),
            None,
            "{} content",
            a.kind
        );
    }
    states
}

fn deleted_at_request() -> (ArtifactState, Option<DeletionReason>) {
    (
        ArtifactState::Deleted,
        Some(DeletionReason::CustomerRequest),
    )
}

#[tokio::test]
async fn s3_customer_request_deletes_uploaded_audio_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::UploadedAudio],
        deleted_at_request()
    );
}
#[tokio::test]
async fn s3_customer_request_deletes_final_transcript_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::FinalTranscript],
        deleted_at_request()
    );
}
#[tokio::test]
async fn s3_customer_request_deletes_url_audio_reference_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::UrlAudioReference],
        deleted_at_request()
    );
}
#[tokio::test]
async fn s3_customer_request_deletes_intermediate_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::Intermediate],
        deleted_at_request()
    );
}
#[tokio::test]
async fn s3_customer_request_deletes_text_input_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::TextInput],
        deleted_at_request()
    );
}
#[tokio::test]
async fn s3_customer_request_deletes_speech_understanding_at_the_request() {
    assert_eq!(
        customer_deletion_of_every_kind().await[&ArtifactKind::SpeechUnderstanding],
        deleted_at_request()
    );
}

#[tokio::test]
async fn s3_customer_deletion_is_refused_while_queued_or_processing_and_changes_nothing() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    let refused = e.engine().delete_transcript(&account, t.id).await;
    assert!(
        matches!(refused, Err(EngineError::StillProcessing)),
        "{refused:?}"
    );
    e.engine().mark_processing(t.id).await.expect("processing");
    let refused = e.engine().delete_transcript(&account, t.id).await;
    assert!(
        matches!(refused, Err(EngineError::StillProcessing)),
        "{refused:?}"
    );
    let stored = e
        .backends()
        .index
        .transcript(t.id)
        .await
        .expect("get")
        .expect("kept");
    assert!(stored.deletion.is_none());
    assert!(e
        .artifacts_of(&t)
        .await
        .iter()
        .all(|a| a.state == ArtifactState::Live && a.pending_reason.is_none()));
}

#[tokio::test]
async fn s3_customer_deletion_is_idempotent_and_keeps_usage_metadata() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    e.clock.advance(Duration::minutes(3));
    let first = e
        .engine()
        .delete_transcript(&account, t.id)
        .await
        .expect("first")
        .transcript;
    e.clock.advance(Duration::minutes(3));
    let second = e
        .engine()
        .delete_transcript(&account, t.id)
        .await
        .expect("second")
        .transcript;
    assert_eq!(
        first.deletion, second.deletion,
        "the first deletion is what is recorded"
    );
    assert_eq!(
        first.deletion.map(|d| d.reason),
        Some(DeletionReason::CustomerRequest)
    );
    assert_eq!(
        (second.status, second.audio_duration, second.created_at),
        (
            lethe::domain::TranscriptStatus::Completed,
            Some(12.5),
            t.created_at
        )
    );
    assert!(second.completed_at.is_some());
}

#[tokio::test]
async fn s4_content_past_delete_after_is_never_served_even_before_a_sweep() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;

    let live = e
        .engine()
        .transcript_content(&account, t.id)
        .await
        .expect("read");
    assert!(
        live.redacted.is_none()
            && live.result.is_some()
            && live.text_inputs.is_some()
            && live.audio_url.is_some()
    );
    assert!(matches!(
        e.engine().read_upload(upload.id).await.expect("read"),
        UploadRead::Live(_)
    ));

    e.clock.advance(hours(1));
    let expired = e
        .engine()
        .transcript_content(&account, t.id)
        .await
        .expect("read");
    assert_eq!(expired.redacted, Some(DeletionReason::Ttl));
    assert!(
        expired.result.is_none() && expired.text_inputs.is_none() && expired.audio_url.is_none()
    );
    e.clock.advance(hours(71));
    assert!(matches!(
        e.engine().read_upload(upload.id).await.expect("read"),
        UploadRead::Deleted
    ));
    // Nothing was swept: the bytes are still there, but never served.
    let final_transcript = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(final_transcript.state, ArtifactState::Live);
}

#[tokio::test]
async fn s1_decision_a_shorter_ttl_shortens_existing_schedules_and_a_longer_one_never_lengthens_them(
) {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let before = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(
        before.delete_after, None,
        "indefinite under the default mode"
    );

    let shorter = SettingsPatch {
        transcript_ttl: Some(Some(hours(2))),
        ..Default::default()
    };
    let account = e
        .engine()
        .update_settings(account.id, &shorter)
        .await
        .expect("update");
    // Reads honour the change at once; a pass carries it to the stored schedules.
    let served = e.engine().transcript(&account, t.id).await.expect("get");
    assert_eq!(served.delete_after, Some(t0() + hours(2)));
    e.sweep().await;
    let after = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(after.delete_after, Some(t0() + hours(2)));
    assert_eq!(
        after.policy_version, account.policy_version,
        "records the policy it is scheduled under"
    );
    let transcript = e
        .backends()
        .index
        .transcript(t.id)
        .await
        .expect("get")
        .expect("kept");
    assert_eq!(transcript.delete_after, Some(t0() + hours(2)));

    let longer = SettingsPatch {
        transcript_ttl: Some(Some(hours(48))),
        ..Default::default()
    };
    let account = e
        .engine()
        .update_settings(account.id, &longer)
        .await
        .expect("update");
    e.sweep().await;
    let unchanged = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(
        unchanged.delete_after,
        Some(t0() + hours(2)),
        "never lengthened retroactively"
    );

    // ... while new artifacts follow the new policy.
    let t2 = e.url_transcript(&account).await;
    e.process(&t2).await;
    let new_final = e.artifact_of_kind(&t2, ArtifactKind::FinalTranscript).await;
    assert_eq!(new_final.delete_after, Some(t0() + hours(48)));
}

#[tokio::test]
async fn s1_decision_a_newly_executed_baa_shortens_existing_schedules_to_72h() {
    let e = TestEngine::start().await;
    let account = e.account(RetentionSettings::default()).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let baa = SettingsPatch {
        baa: Some(true),
        ..Default::default()
    };
    e.engine()
        .update_settings(account.id, &baa)
        .await
        .expect("update");
    e.sweep().await;
    let after = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    assert_eq!(after.delete_after, Some(t0() + hours(72)));
}

#[tokio::test]
async fn s1_refused_settings_leave_the_stored_account_unchanged() {
    let e = TestEngine::start().await;
    let account = e
        .account(RetentionSettings {
            baa: true,
            ..Default::default()
        })
        .await;
    let too_long = SettingsPatch {
        transcript_ttl: Some(Some(hours(73))),
        model_training_opt_out: Some(true),
        ..Default::default()
    };
    let refused = e.engine().update_settings(account.id, &too_long).await;
    assert!(
        matches!(refused, Err(EngineError::InvalidSettings(_))),
        "{refused:?}"
    );
    assert_eq!(
        e.engine().account(account.id).await.expect("account"),
        account
    );
}

#[tokio::test]
async fn another_accounts_transcripts_and_uploads_are_not_found() {
    let e = TestEngine::start().await;
    let owner = e.account(RetentionSettings::default()).await;
    let intruder: Account = e.account(RetentionSettings::default()).await;
    let upload = e.upload(&owner, b"MARKER-AUDIO").await;
    let t = e.url_transcript(&owner).await;
    e.process(&t).await;

    assert!(matches!(
        e.engine().transcript(&intruder, t.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        e.engine().transcript_content(&intruder, t.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        e.engine().retention_view(&intruder, t.id).await,
        Err(EngineError::NotFound)
    ));
    assert!(matches!(
        e.engine().delete_transcript(&intruder, t.id).await,
        Err(EngineError::NotFound)
    ));
    let foreign_upload = NewTranscript {
        audio: AudioSource::Upload(upload.id),
        options: serde_json::json!({}),
        text_inputs: None,
        webhook_auth: false,
    };
    let refused = e
        .engine()
        .create_transcript(&intruder, foreign_upload)
        .await;
    assert!(
        matches!(refused, Err(EngineError::UploadNotAccessible)),
        "{refused:?}"
    );
    assert!(e
        .engine()
        .list_transcripts(
            &intruder,
            &lethe::storage::TranscriptQuery {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .expect("list")
        .is_empty());
}

#[tokio::test]
async fn s5_s6_no_content_live_or_deleted_is_ever_readable_in_plaintext_in_the_data_dir() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    let from_upload: Transcript = e.upload_transcript(&account, &upload).await;
    e.process(&from_upload).await;
    for marker in [
        "MARKER-AUDIO",
        "MARKER-URL",
        "MARKER-PROMPT",
        "MARKER-TEXT",
        "MARKER-INTERMEDIATE",
    ] {
        // Encrypted on disk (embedded) or in S3 (AWS): never plaintext in the data dir.
        assert_eq!(
            e.data_dir_contains(marker),
            Vec::<std::path::PathBuf>::new(),
            "{marker} in plaintext while live"
        );
    }
    let all: Vec<_> = [e.artifacts_of(&t).await, e.artifacts_of(&from_upload).await].concat();
    // ... while the store itself still reads it back.
    let final_transcript = all
        .iter()
        .find(|a| a.kind == ArtifactKind::FinalTranscript)
        .expect("final");
    let text = e
        .backends()
        .content
        .get(&final_transcript.content_key)
        .await
        .expect("get")
        .expect("live");
    assert!(String::from_utf8_lossy(text.expose()).contains("MARKER-TEXT"));

    e.engine()
        .delete_transcript(&account, from_upload.id)
        .await
        .expect("customer deletion");
    e.clock.advance(hours(1));
    e.sweep().await;

    for marker in [
        "MARKER-AUDIO",
        "MARKER-URL",
        "MARKER-PROMPT",
        "MARKER-TEXT",
        "MARKER-INTERMEDIATE",
    ] {
        assert_eq!(
            e.data_dir_contains(marker),
            Vec::<std::path::PathBuf>::new(),
            "{marker} remains"
        );
    }
    for a in all.iter().chain(std::iter::once(&upload)) {
        let content = e.backends().content.get(&a.content_key).await.expect("get");
        assert_eq!(content, None, "{} content remains", a.kind);
    }
}

#[tokio::test]
async fn s5_the_retention_view_lists_every_artifact_with_schedule_and_tombstone() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.upload_transcript(&account, &upload).await;
    e.process(&t).await;
    let view = e
        .engine()
        .retention_view(&account, t.id)
        .await
        .expect("view");
    let kinds: Vec<_> = view.artifacts.iter().map(|a| a.artifact.kind).collect();
    assert_eq!(
        kinds,
        vec![
            ArtifactKind::UploadedAudio,
            ArtifactKind::Intermediate,
            ArtifactKind::FinalTranscript
        ]
    );
    for a in &view.artifacts {
        if a.artifact.kind != ArtifactKind::UploadedAudio {
            assert_eq!(
                a.delete_after,
                Some(t0() + hours(1)),
                "{} follows the transcript",
                a.artifact.kind
            );
            assert_eq!(a.delete_by, Some(t0() + hours(2)));
        }
    }
    e.clock.advance(hours(1));
    e.sweep().await;
    let view = e
        .engine()
        .retention_view(&account, t.id)
        .await
        .expect("view");
    let final_view = view
        .artifacts
        .iter()
        .find(|a| a.artifact.kind == ArtifactKind::FinalTranscript)
        .expect("final");
    assert_eq!(final_view.artifact.deleted_at, Some(t0() + hours(1)));
    assert_eq!(
        final_view.artifact.deletion_reason,
        Some(DeletionReason::Ttl)
    );
}

#[tokio::test]
async fn a_zdr_account_stores_no_content_and_nothing_is_written() {
    let e = TestEngine::start().await;
    let account = e
        .account(RetentionSettings {
            zero_data_retention: true,
            ..Default::default()
        })
        .await;
    let body: lethe::storage::ByteStream = Box::pin(futures::stream::iter(vec![Ok(
        bytes::Bytes::from_static(b"MARKER-AUDIO"),
    )]));
    assert!(matches!(
        e.engine().upload(&account, body).await,
        Err(EngineError::ZeroDataRetention)
    ));
    let with_prompt = NewTranscript {
        audio: AudioSource::Url(Content::new("https://example.com/a.mp3")),
        options: serde_json::json!({}),
        text_inputs: None,
        webhook_auth: false,
    };
    assert!(matches!(
        e.engine().create_transcript(&account, with_prompt).await,
        Err(EngineError::ZeroDataRetention)
    ));
    assert!(e.data_dir_contains("MARKER-AUDIO").is_empty());
    assert!(e
        .engine()
        .list_transcripts(
            &account,
            &lethe::storage::TranscriptQuery {
                limit: 10,
                ..Default::default()
            }
        )
        .await
        .expect("list")
        .is_empty());
}

/// The content file of `artifact` on the embedded profile.
fn content_file(e: &TestEngine, artifact: &lethe::domain::Artifact) -> std::path::PathBuf {
    e.dir.path().join("content").join(&artifact.content_key)
}

/// A second connection to the embedded profile's SQLite file, as a backup tool would open.
async fn database(e: &TestEngine) -> sqlx::SqlitePool {
    sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        e.dir.path().join("lethe.db").display()
    ))
    .await
    .expect("open")
}

/// The sealed object of `artifact` as a backup would hold it: its `contents` row (small
/// objects) or its file (large ones).
async fn backup_of(e: &TestEngine, artifact: &lethe::domain::Artifact) -> (bool, Vec<u8>) {
    let row: Option<Vec<u8>> = sqlx::query_scalar("SELECT bytes FROM contents WHERE key = ?")
        .bind(&artifact.content_key)
        .fetch_optional(&database(e).await)
        .await
        .expect("read the row");
    match row {
        Some(bytes) => (true, bytes),
        None => (
            false,
            std::fs::read(content_file(e, artifact)).expect("the content file exists while live"),
        ),
    }
}

/// Small objects are rows of the SQLite file and large ones files; a backup of either
/// taken while live, restored after the deletion, no longer opens.
#[tokio::test]
async fn s6_encryption_a_backup_of_a_content_file_is_unreadable_after_deletion_even_with_the_master_key(
) {
    let e = TestEngine::start_embedded().await;
    let account = e.ttl_account(hours(1)).await;
    let short = e.url_transcript(&account).await;
    e.process(&short).await;
    let long = e.url_transcript(&account).await;
    e.engine()
        .mark_processing(long.id)
        .await
        .expect("processing");
    let long_text = format!("MARKER-TEXT {}", "word ".repeat(4000));
    e.engine()
        .complete(long.id, Content::new(long_text), Some(60.0))
        .await
        .expect("completes");
    for (t, as_row) in [(short, true), (long, false)] {
        let final_transcript = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
        let (is_row, backup) = backup_of(&e, &final_transcript).await;
        assert_eq!(
            is_row,
            as_row,
            "where the {} transcript is kept",
            match as_row {
                true => "short",
                false => "long",
            }
        );
        assert!(
            !backup.windows(11).any(|w| w == b"MARKER-TEXT"),
            "encrypted at rest"
        );

        e.engine()
            .delete_transcript(&account, t.id)
            .await
            .expect("customer deletion");
        assert!(!content_file(&e, &final_transcript).exists());
        let rows: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM contents WHERE key = ?")
            .bind(&final_transcript.content_key)
            .fetch_one(&database(&e).await)
            .await
            .expect("count");
        assert_eq!(rows, 0, "the row is deleted");

        // Restore the backup copy where it was: with the same master key, it no longer opens.
        match is_row {
            true => {
                sqlx::query("INSERT INTO contents (key, bytes, modified_at) VALUES (?, ?, 0)")
                    .bind(&final_transcript.content_key)
                    .bind(&backup)
                    .execute(&database(&e).await)
                    .await
                    .expect("restore the row");
            }
            false => {
                std::fs::create_dir_all(content_file(&e, &final_transcript).parent().expect("dir"))
                    .expect("mkdir");
                std::fs::write(content_file(&e, &final_transcript), &backup).expect("restore");
            }
        }
        let restored = e
            .backends()
            .content
            .get(&final_transcript.content_key)
            .await
            .expect("get");
        assert_eq!(
            restored, None,
            "the data key is destroyed: the backup is unreadable"
        );
        // Nor does any copy of the data key survive in the database files.
        let keys: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM data_keys WHERE scope = ?")
            .bind(lethe::domain::content_scope(&final_transcript.content_key))
            .fetch_one(&database(&e).await)
            .await
            .expect("count");
        assert_eq!(keys, 0);
    }
}

#[tokio::test]
async fn s6_encryption_each_transcript_and_upload_has_its_own_data_key() {
    let e = TestEngine::start_embedded().await;
    let account = e.account(RetentionSettings::default()).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let a = e.url_transcript(&account).await;
    let b = e.url_transcript(&account).await;
    let pool = sqlx::SqlitePool::connect(&format!(
        "sqlite://{}",
        e.dir.path().join("lethe.db").display()
    ))
    .await
    .expect("open");
    let scopes: Vec<String> = sqlx::query_scalar("SELECT scope FROM data_keys ORDER BY scope")
        .fetch_all(&pool)
        .await
        .expect("scopes");
    let mut expected = vec![
        format!("{}/{}", account.id, upload.id),
        format!("{}/{}", account.id, a.id),
        format!("{}/{}", account.id, b.id),
    ];
    expected.sort();
    assert_eq!(scopes, expected);
}

#[tokio::test]
async fn a_customer_deletion_goes_down_once_in_at_most_nine_store_calls() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(24)).await;
    let upload = e.upload(&account, b"MARKER-AUDIO").await;
    let t = e.upload_transcript(&account, &upload).await;
    e.process(&t).await;
    e.engine()
        .add_speech_understanding(t.id, Content::new(r#"{"translation":"x"}"#))
        .await
        .expect("speech understanding");
    let faults = lethe::testing::faults::Faults::new(1);
    let counted = e.faulty_app(&faults);

    let view = counted
        .engine
        .delete_transcript(&account, t.id)
        .await
        .expect("deleted");

    assert!(view.redacted.is_some());
    assert!(
        faults.calls() <= 9,
        "{} store calls for one customer deletion",
        faults.calls()
    );
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
    let upload = e
        .backends()
        .index
        .artifact(upload.id)
        .await
        .expect("get")
        .expect("tracked");
    assert_eq!(upload.state, ArtifactState::Deleted);
}

/// A content store that fails one key in a shredded removal and remembers every key it
/// was asked to remove durably.
#[derive(Debug)]
struct FailOneShreddedKey {
    inner: std::sync::Arc<dyn lethe::storage::ContentStore>,
    failing: String,
    synced: std::sync::Mutex<Vec<String>>,
}

#[async_trait::async_trait]
impl lethe::storage::ContentStore for FailOneShreddedKey {
    async fn put(&self, key: &str, content: Content) -> lethe::storage::Result<u64> {
        self.inner.put(key, content).await
    }
    async fn put_stream(
        &self,
        key: &str,
        stream: lethe::storage::ByteStream,
    ) -> lethe::storage::Result<u64> {
        self.inner.put_stream(key, stream).await
    }
    async fn get(&self, key: &str) -> lethe::storage::Result<Option<Content>> {
        self.inner.get(key).await
    }
    async fn get_stream(
        &self,
        key: &str,
    ) -> lethe::storage::Result<Option<lethe::storage::ByteStream>> {
        self.inner.get_stream(key).await
    }
    async fn delete(&self, key: &str) -> lethe::storage::Result<()> {
        self.inner.delete(key).await
    }
    async fn forget_scope(&self, scope: &str) -> lethe::storage::Result<()> {
        self.inner.forget_scope(scope).await
    }
    async fn forget_scopes(&self, scopes: &[&str]) -> lethe::storage::Result<()> {
        self.inner.forget_scopes(scopes).await
    }
    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> lethe::storage::Result<Vec<lethe::storage::ObjectInfo>> {
        self.inner.list(prefix, after, limit).await
    }
    async fn scopes_with_keys(
        &self,
        after: Option<&str>,
        limit: u32,
    ) -> lethe::storage::Result<Vec<String>> {
        self.inner.scopes_with_keys(after, limit).await
    }
    async fn delete_many(&self, keys: &[String]) -> Vec<lethe::storage::Result<()>> {
        self.synced
            .lock()
            .expect("lock")
            .extend(keys.iter().cloned());
        self.inner.delete_many(keys).await
    }
    async fn delete_many_shredded(&self, keys: &[String]) -> Vec<lethe::storage::Result<()>> {
        let others: Vec<String> = keys
            .iter()
            .filter(|k| **k != self.failing)
            .cloned()
            .collect();
        let mut results = self.inner.delete_many_shredded(&others).await.into_iter();
        keys.iter()
            .map(|k| match *k == self.failing {
                true => Err(lethe::storage::StorageError::Other {
                    backend: "test",
                    source: "this one file cannot be removed".into(),
                }),
                false => results.next().expect("one result per key"),
            })
            .collect()
    }
}

/// Content whose scope a deletion shreds is removed without a directory sync of its own
/// (the destroyed key makes it final). When one file of such a scope cannot be removed,
/// the scope stays — and the removals made without a sync are made durable before their
/// tombstones are written; the retry then finishes the transcript and shreds its key.
#[tokio::test]
async fn unsynced_removals_of_a_scope_that_stays_are_synced_before_their_tombstones() {
    let e = TestEngine::start_embedded().await;
    let account = e.ttl_account(hours(24)).await;
    let t = e.url_transcript(&account).await;
    e.process(&t).await;
    // A linked artifact: its final transcript waits for it.
    let text_input = e.artifact_of_kind(&t, ArtifactKind::TextInput).await;
    let scope = lethe::domain::content_scope(&text_input.content_key).to_owned();
    let wrapper = std::sync::Arc::new(FailOneShreddedKey {
        inner: e.backends().content.clone(),
        failing: text_input.content_key.clone(),
        synced: std::sync::Mutex::new(Vec::new()),
    });
    let mut backends = e.backends().clone();
    backends.content = wrapper.clone();
    e.clock.advance(hours(25));
    // A pass that claimed the final transcript alone (its batch ended there): the
    // cascade claims the rest, one of which cannot be removed.
    let now = e.clock.now_for_tests();
    let claim = lethe::storage::Claim {
        owner: "test-pass".into(),
        now,
        until: now + Duration::minutes(10),
    };
    let final_transcript = e.artifact_of_kind(&t, ArtifactKind::FinalTranscript).await;
    let claimed = backends
        .index
        .claim(&[final_transcript.id], &claim)
        .await
        .expect("claim");
    assert_eq!(claimed.len(), 1, "the final transcript is due");

    let outcome =
        lethe::engine::deletion::delete_claimed(&backends, e.engine().metrics(), claimed, &claim)
            .await
            .expect("pipeline");

    let report = outcome;
    assert!(!report.failed.is_empty(), "{:?}", report.deleted);
    let artifacts = e.artifacts_of(&t).await;
    let state_of = |kind: ArtifactKind| {
        artifacts
            .iter()
            .find(|a| a.kind == kind)
            .map(|a| a.state)
            .expect("tracked")
    };
    assert_ne!(state_of(ArtifactKind::TextInput), ArtifactState::Deleted);
    assert_ne!(
        state_of(ArtifactKind::FinalTranscript),
        ArtifactState::Deleted,
        "a final transcript waits for everything linked to it"
    );
    let synced = wrapper.synced.lock().expect("lock").clone();
    let deleted_in_scope: Vec<_> = artifacts
        .iter()
        .filter(|a| a.state == ArtifactState::Deleted)
        .filter(|a| lethe::domain::content_scope(&a.content_key) == scope)
        .collect();
    assert!(
        !deleted_in_scope.is_empty(),
        "something of the scope was deleted in the pass: {artifacts:?}"
    );
    for a in deleted_in_scope {
        assert!(
            synced.contains(&a.content_key),
            "the unsynced removal of the {} was made durable before its tombstone",
            a.kind
        );
    }
    assert!(
        e.backends()
            .content
            .scopes_with_keys(None, 100)
            .await
            .expect("scopes")
            .contains(&scope),
        "the scope stays while something of it is left"
    );

    // The claim runs out; a pass on healthy storage finishes the transcript.
    e.clock.advance(hours(2));
    e.sweep().await;
    for a in e.artifacts_of(&t).await {
        assert_eq!(a.state, ArtifactState::Deleted, "{}", a.kind);
    }
    assert!(!e
        .backends()
        .content
        .scopes_with_keys(None, 100)
        .await
        .expect("scopes")
        .contains(&scope));
}

/// A create whose caller goes away mid-write (a client that disconnects, a request that
/// times out) runs to its end in a task of its own: no statement is cut off, so the writes
/// that share its group commit unharmed, and the transcript is whole, with its URL and
/// prompt, not half made. Seeded by construction: every other call is dropped after its
/// first poll, which is inside its first write.
#[tokio::test]
async fn a_create_whose_caller_goes_away_finishes_whole_and_harms_no_concurrent_write() {
    let e = TestEngine::start().await;
    let account = e.ttl_account(hours(1)).await;
    let new = || NewTranscript {
        audio: AudioSource::Url(Content::new("https://example.com/a.mp3?sig=MARKER-URL")),
        options: serde_json::json!({}),
        text_inputs: Some(Content::new(r#"{"prompt":"MARKER-PROMPT"}"#)),
        webhook_auth: false,
    };
    let calls = 16;
    let mut kept = Vec::new();
    for i in 0..calls {
        let (lethe, account) = (e.engine().clone(), account.clone());
        let create = async move { lethe.create_transcript(&account, new()).await };
        if i % 2 == 0 {
            kept.push(tokio::spawn(create));
        } else {
            let mut create = Box::pin(create);
            assert!(futures::poll!(create.as_mut()).is_pending());
            drop(create);
        }
    }
    for call in kept {
        call.await
            .expect("no panic")
            .expect("a concurrent create is unharmed by the ones dropped");
    }
    let query = lethe::storage::TranscriptQuery {
        limit: 100,
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let listed = loop {
        let listed = e
            .engine()
            .list_transcripts(&account, &query)
            .await
            .expect("list");
        if listed.len() == calls || std::time::Instant::now() > deadline {
            break listed;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    };
    assert_eq!(listed.len(), calls, "every dropped create finished");
    for t in &listed {
        let kinds: Vec<ArtifactKind> = e.artifacts_of(t).await.iter().map(|a| a.kind).collect();
        assert_eq!(
            kinds,
            vec![ArtifactKind::UrlAudioReference, ArtifactKind::TextInput],
            "transcript {} is whole",
            t.id
        );
    }
}
