//! The behaviour every backend must show, as functions a backend's tests call with a
//! fresh instance. One suite, every backend: SQLite and local files now, and the AWS
//! profile's backends run the very same checks.
#![allow(clippy::unwrap_used)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use futures::stream;

use super::{
    AccountStore, ArtifactIndex, AuditLog, Claim, ContentStore, StorageError, TranscriptQuery,
};
use crate::domain::{
    new_id, Account, ApiKey, Artifact, ArtifactKind, ArtifactState, Content, DeletionReason,
    PlatformPolicy, RetentionSettings, Schedule, ScheduleKind, SweepReport, Tombstone, Transcript,
    TranscriptDeletion, TranscriptStatus, UsageKind, UsageRecord,
};

/// The instant the conformance checks run at.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).single().unwrap()
}

pub fn sample_account(now: DateTime<Utc>) -> Account {
    Account::new(
        new_id(now),
        "conformance".into(),
        RetentionSettings::default(),
        now,
    )
}

pub fn sample_transcript(account: &Account, now: DateTime<Utc>) -> Transcript {
    Transcript {
        id: new_id(now),
        account_id: account.id,
        status: TranscriptStatus::Queued,
        created_at: now,
        completed_at: None,
        upload_id: None,
        options: serde_json::json!({"speech_model": "best"}),
        webhook_auth: false,
        audio_duration: None,
        error: None,
        policy_version: account.policy_version,
        delete_after: None,
        delete_by: None,
        deletion: None,
        final_artifact_id: None,
        settled: true,
        revision: 0,
    }
}

pub fn due_artifact(
    account: &Account,
    transcript: Option<&Transcript>,
    due: DateTime<Utc>,
) -> Artifact {
    let mut a = Artifact::new_live(
        new_id(due - Duration::hours(1)),
        account,
        transcript.map(|t| t.id),
        ArtifactKind::Intermediate,
        due - Duration::hours(1),
    );
    a.schedule = ScheduleKind::Point;
    a.delete_after = Some(due);
    a.delete_by = Some(due + Duration::hours(1));
    a.due_at = Some(due);
    a
}

pub async fn accounts(store: &dyn AccountStore) {
    let account = sample_account(t0());
    let key = ApiKey::generate();
    store.create_account(&account, &key.hash()).await.unwrap();
    assert_eq!(
        store.account(account.id).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        store.account_by_key_hash(&key.hash()).await.unwrap(),
        Some(account.clone())
    );
    assert_eq!(
        store
            .account_by_key_hash(&ApiKey::generate().hash())
            .await
            .unwrap(),
        None
    );
    assert_eq!(store.account(new_id(t0())).await.unwrap(), None);

    // Conditional update: the expected version must match.
    let mut changed = account.clone();
    changed.settings.transcript_ttl = Some(Duration::hours(2));
    changed.policy_version = 2;
    store.update_account(&changed, 1).await.unwrap();
    let stale = store.update_account(&changed, 1).await;
    assert!(
        matches!(stale, Err(StorageError::Conflict { .. })),
        "{stale:?}"
    );
    assert_eq!(
        store.account(account.id).await.unwrap(),
        Some(changed.clone())
    );

    // A second key works alongside the first; a duplicate key is refused.
    let second = ApiKey::generate();
    store
        .add_api_key(account.id, &second.hash(), t0())
        .await
        .unwrap();
    assert_eq!(
        store
            .account_by_key_hash(&second.hash())
            .await
            .unwrap()
            .map(|a| a.id),
        Some(account.id)
    );
    assert_eq!(
        store
            .account_by_key_hash(&key.hash())
            .await
            .unwrap()
            .map(|a| a.id),
        Some(account.id)
    );
    let dup = store.add_api_key(account.id, &second.hash(), t0()).await;
    assert!(matches!(dup, Err(StorageError::Conflict { .. })), "{dup:?}");

    // Legal holds: active until released, released once, listed by id.
    let hold = |minute: i64, transcript: Option<uuid::Uuid>| crate::domain::LegalHold {
        id: new_id(t0() + Duration::minutes(minute)),
        account_id: account.id,
        transcript_id: transcript,
        reason: format!("matter {minute}"),
        created_at: t0() + Duration::minutes(minute),
        released_at: None,
    };
    let whole = hold(1, None);
    let one = hold(2, Some(new_id(t0())));
    let holds_by_key = || {
        let hash = key.hash();
        async move {
            let mut holds = store
                .account_by_key_hash(&hash)
                .await
                .unwrap()
                .unwrap()
                .holds;
            holds.sort_by_key(|h| h.id);
            holds
        }
    };
    assert!(holds_by_key().await.is_empty(), "no hold yet");
    // Another account's hold never comes with this one.
    let stranger = sample_account(t0());
    store
        .create_account(&stranger, &ApiKey::generate().hash())
        .await
        .unwrap();
    let strangers = crate::domain::LegalHold {
        account_id: stranger.id,
        ..hold(3, None)
    };
    store.create_hold(&strangers).await.unwrap();
    store.create_hold(&whole).await.unwrap();
    store.create_hold(&one).await.unwrap();
    assert_eq!(
        holds_by_key().await,
        vec![whole.clone(), one.clone()],
        "an account read by its key carries its active holds, and only its own"
    );
    assert_eq!(
        store
            .active_holds(&[account.id, new_id(t0())])
            .await
            .unwrap()
            .len(),
        2
    );
    let released = store
        .release_hold(whole.id, t0() + Duration::hours(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(released.released_at, Some(t0() + Duration::hours(1)));
    let again = store
        .release_hold(whole.id, t0() + Duration::hours(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        again.released_at,
        Some(t0() + Duration::hours(1)),
        "first release kept"
    );
    assert_eq!(store.release_hold(new_id(t0()), t0()).await.unwrap(), None);
    assert_eq!(
        store.active_holds(&[account.id]).await.unwrap(),
        vec![one.clone()]
    );
    assert_eq!(
        holds_by_key().await,
        vec![one.clone()],
        "a released hold no longer comes with the account"
    );
    assert_eq!(
        store.holds(Some(account.id), true, None, 10).await.unwrap(),
        vec![released, one.clone()]
    );
    assert_eq!(
        store.holds(None, false, None, 10).await.unwrap(),
        vec![one.clone(), strangers.clone()]
    );
    assert!(store
        .holds(Some(account.id), true, Some(one.id), 10)
        .await
        .unwrap()
        .is_empty());
}

/// `transcript_and_account` reads what `transcript` and the account store read: the
/// transcript, and the account with its active holds or `None` (the account store is asked
/// then). `accounts` keeps the accounts beside `index` (the same store, or another).
pub async fn transcript_and_account(index: &dyn ArtifactIndex, accounts: &dyn AccountStore) {
    let account = sample_account(t0());
    accounts
        .create_account(&account, &ApiKey::generate().hash())
        .await
        .unwrap();
    let hold = |transcript_id, minutes| crate::domain::LegalHold {
        id: new_id(t0() + Duration::minutes(minutes)),
        account_id: account.id,
        transcript_id,
        reason: format!("hold {minutes}"),
        created_at: t0() + Duration::minutes(minutes),
        released_at: None,
    };
    let mut t = sample_transcript(&account, t0());
    t.status = TranscriptStatus::Completed;
    t.completed_at = Some(t0() + Duration::minutes(3));
    t.delete_after = Some(t0() + Duration::hours(1));
    t.delete_by = Some(t0() + Duration::hours(2));
    t.final_artifact_id = Some(new_id(t0()));
    t.audio_duration = Some(1.5);
    t.settled = false;
    index.insert_transcript(&t).await.unwrap();
    let (released, kept) = (hold(None, 1), hold(Some(t.id), 2));
    for h in [&released, &kept, &hold(None, 3)] {
        accounts.create_hold(h).await.unwrap();
    }
    // Another account's active hold is not this account's.
    let neighbour = sample_account(t0());
    accounts
        .create_account(&neighbour, &ApiKey::generate().hash())
        .await
        .unwrap();
    accounts
        .create_hold(&crate::domain::LegalHold {
            account_id: neighbour.id,
            ..hold(None, 5)
        })
        .await
        .unwrap();
    accounts
        .release_hold(released.id, t0() + Duration::minutes(4))
        .await
        .unwrap();

    let (read, with) = index.transcript_and_account(t.id).await.unwrap().unwrap();
    assert_eq!(Some(read), index.transcript(t.id).await.unwrap());
    if let Some(with) = with {
        assert_eq!(
            Some(with.clone()),
            accounts.account(account.id).await.unwrap()
        );
        assert_eq!(
            with.holds.len(),
            2,
            "the two active holds: {:?}",
            with.holds
        );
    }

    // Another store's account, or none: left to the account store.
    let stranger = sample_transcript(&sample_account(t0()), t0());
    index.insert_transcript(&stranger).await.unwrap();
    let (read, with) = index
        .transcript_and_account(stranger.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((read, with), (stranger, None));
    assert!(index
        .transcript_and_account(new_id(t0()))
        .await
        .unwrap()
        .is_none());
}

pub async fn transcripts(index: &dyn ArtifactIndex) {
    let account = sample_account(t0());
    let other = sample_account(t0());
    let mut ids = Vec::new();
    for i in 0..7 {
        let mut t = sample_transcript(&account, t0() + Duration::hours(i * 6));
        if i % 2 == 0 {
            t.status = TranscriptStatus::Completed;
        }
        index.insert_transcript(&t).await.unwrap();
        ids.push(t.id);
    }
    let others = sample_transcript(&other, t0());
    index.insert_transcript(&others).await.unwrap();

    // Get, and the optimistic update.
    let mut t = index.transcript(ids[1]).await.unwrap().unwrap();
    t.status = TranscriptStatus::Processing;
    index.update_transcript(&t).await.unwrap();
    assert!(matches!(
        index.update_transcript(&t).await,
        Err(StorageError::Conflict { .. })
    ));
    let stored = index.transcript(ids[1]).await.unwrap().unwrap();
    assert_eq!(
        (stored.status, stored.revision),
        (TranscriptStatus::Processing, 1)
    );

    // Newest first, keyset both ways, only this account.
    let q = |before_id, after_id, limit| TranscriptQuery {
        before_id,
        after_id,
        limit,
        ..Default::default()
    };
    let page = index
        .list_transcripts(account.id, &q(None, None, 3))
        .await
        .unwrap();
    assert_eq!(
        page.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5], ids[4]]
    );
    let older = index
        .list_transcripts(account.id, &q(Some(ids[4]), None, 3))
        .await
        .unwrap();
    assert_eq!(
        older.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2], ids[1]]
    );
    let newer = index
        .list_transcripts(account.id, &q(None, Some(ids[1]), 2))
        .await
        .unwrap();
    assert_eq!(
        newer.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[3], ids[2]]
    );
    let between = index
        .list_transcripts(account.id, &q(Some(ids[5]), Some(ids[2]), 10))
        .await
        .unwrap();
    assert_eq!(
        between.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]]
    );

    // The page with its artifacts of one kind: the same page, and exactly the artifacts of
    // that kind of its transcripts (none of another kind, page or account), whole.
    let url_of =
        |i: usize, kind| Artifact::new_live(new_id(t0()), &account, Some(ids[i]), kind, t0());
    for (i, kind) in [
        (6, ArtifactKind::UrlAudioReference),
        (6, ArtifactKind::TextInput),
        (4, ArtifactKind::UrlAudioReference),
        (4, ArtifactKind::UrlAudioReference),
        (3, ArtifactKind::TextInput),
        (1, ArtifactKind::UrlAudioReference),
        (2, ArtifactKind::UrlAudioReference),
    ] {
        index.insert_artifact(&url_of(i, kind)).await.unwrap();
    }
    let foreign = Artifact::new_live(
        new_id(t0()),
        &other,
        Some(others.id),
        ArtifactKind::UrlAudioReference,
        t0(),
    );
    index.insert_artifact(&foreign).await.unwrap();
    for query in [
        q(None, None, 3),
        q(None, None, 10),
        q(Some(ids[4]), None, 3),
        q(None, Some(ids[1]), 2),
        q(Some(ids[5]), Some(ids[2]), 10),
        q(Some(ids[0]), None, 3),
        TranscriptQuery {
            status: Some(TranscriptStatus::Completed),
            limit: 10,
            ..Default::default()
        },
        TranscriptQuery {
            created_on: Some((t0() + Duration::hours(24)).date_naive()),
            limit: 10,
            ..Default::default()
        },
        TranscriptQuery {
            created_on: Some(chrono::NaiveDate::MAX),
            limit: 10,
            ..Default::default()
        },
    ] {
        let listed = index
            .list_transcripts_with_artifacts(account.id, &query, ArtifactKind::UrlAudioReference)
            .await
            .unwrap();
        if let Some(content) = &listed.content {
            let keys: Vec<&String> = listed.artifacts.iter().map(|a| &a.content_key).collect();
            let read: Vec<&String> = content.objects.iter().map(|(key, _)| key).collect();
            assert_eq!(read, keys, "one per artifact, in order: {query:?}");
        }
        let (page, artifacts) = (listed.transcripts, listed.artifacts);
        let listed = index.list_transcripts(account.id, &query).await.unwrap();
        assert_eq!(page, listed, "{query:?}");
        let ids: Vec<_> = listed.iter().map(|t| t.id).collect();
        let mut expected = match ids.is_empty() {
            true => Vec::new(),
            false => index
                .artifacts_of_kind_for_transcripts(&ids, ArtifactKind::UrlAudioReference)
                .await
                .unwrap(),
        };
        let mut artifacts = artifacts;
        artifacts.sort_by_key(|a| a.id);
        expected.sort_by_key(|a| a.id);
        assert_eq!(artifacts, expected, "{query:?}");
    }
    let two_urls = index
        .list_transcripts_with_artifacts(
            account.id,
            &q(None, None, 3),
            ArtifactKind::UrlAudioReference,
        )
        .await
        .unwrap()
        .artifacts;
    assert_eq!(two_urls.len(), 3, "ids[6] has one URL artifact, ids[4] two");

    // Filters.
    let completed = TranscriptQuery {
        status: Some(TranscriptStatus::Completed),
        limit: 10,
        ..Default::default()
    };
    assert_eq!(
        index
            .list_transcripts(account.id, &completed)
            .await
            .unwrap()
            .len(),
        4
    );
    let day_two = TranscriptQuery {
        created_on: Some((t0() + Duration::days(1)).date_naive()),
        limit: 10,
        ..Default::default()
    };
    let on_day_two = index.list_transcripts(account.id, &day_two).await.unwrap();
    assert_eq!(
        on_day_two.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![ids[6], ids[5], ids[4]]
    );

    // A page's neighbours, under its filters only (its own bounds are ignored); another
    // account's transcripts never count.
    let neighbours = |query: TranscriptQuery, oldest: usize, newest: usize| {
        let ids = ids.clone();
        async move {
            index
                .has_neighbors(account.id, &query, ids[oldest], ids[newest])
                .await
                .unwrap()
        }
    };
    assert_eq!(neighbours(q(None, None, 10), 3, 4).await, (true, true));
    assert_eq!(neighbours(q(None, None, 10), 0, 6).await, (false, false));
    // Honouring before_id = ids[1] would find nothing newer than ids[4].
    assert_eq!(
        neighbours(q(Some(ids[1]), None, 1), 2, 4).await,
        (true, true)
    );
    assert_eq!(neighbours(completed.clone(), 2, 6).await, (true, false));
    assert_eq!(neighbours(completed.clone(), 0, 4).await, (false, true));
    // Only ids[3] and ids[5] are still queued (ids[1] is processing): unfiltered, both
    // sides would have neighbours.
    let queued = TranscriptQuery {
        status: Some(TranscriptStatus::Queued),
        ..q(None, None, 10)
    };
    assert_eq!(neighbours(queued, 3, 5).await, (false, false));
    assert_eq!(neighbours(day_two.clone(), 4, 5).await, (false, true));
    // Day one holds ids[0..4]: ids[4] is newer, but not on that day.
    let day_one = TranscriptQuery {
        created_on: Some(t0().date_naive()),
        ..q(None, None, 10)
    };
    assert_eq!(neighbours(day_one, 1, 3).await, (true, false));
    assert_eq!(
        index
            .has_neighbors(other.id, &q(None, None, 10), others.id, others.id)
            .await
            .unwrap(),
        (false, false)
    );

    // Stuck transcripts: unfinished and created before the cut-off.
    let stuck = index
        .stuck_transcripts(t0() + Duration::hours(13), 10)
        .await
        .unwrap();
    assert_eq!(
        stuck.iter().map(|t| t.id).collect::<Vec<_>>(),
        vec![others.id, ids[1]]
    );

    // Deletion marks are kept once.
    let first = TranscriptDeletion {
        at: t0() + Duration::days(3),
        reason: DeletionReason::CustomerRequest,
    };
    index
        .mark_transcripts_deleted(&[(ids[0], first)])
        .await
        .unwrap();
    let later = TranscriptDeletion {
        at: t0() + Duration::days(4),
        reason: DeletionReason::Ttl,
    };
    index
        .mark_transcripts_deleted(&[(ids[0], later), (ids[2], later)])
        .await
        .unwrap();
    assert_eq!(
        index.transcript(ids[0]).await.unwrap().unwrap().deletion,
        Some(first)
    );

    // Nothing joins a transcript marked deleted (a pipeline write racing its deletion).
    let late = Artifact::new_live(
        new_id(t0()),
        &account,
        Some(ids[0]),
        ArtifactKind::SpeechUnderstanding,
        t0(),
    );
    assert!(matches!(
        index.insert_artifact(&late).await,
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(index.artifact(late.id).await.unwrap(), None);
    assert!(index
        .artifacts_for_transcript(ids[0])
        .await
        .unwrap()
        .iter()
        .all(|a| a.id != late.id));

    // A settled terminal transcript unsettled again (a customer's deletion in progress)
    // is found by the sweeper's settling, and no longer once settled.
    let unsettled = |t: &Transcript| {
        let id = t.id;
        async move {
            index
                .unsettled_transcripts(t0() + Duration::days(30), 100)
                .await
                .unwrap()
                .iter()
                .any(|u| u.id == id)
        }
    };
    let mut t = index.transcript(ids[0]).await.unwrap().unwrap();
    assert!(t.status.is_terminal());
    t.completed_at.get_or_insert(t0());
    for settled in [true, false, true] {
        t.settled = settled;
        index.update_transcript(&t).await.unwrap();
        t.revision += 1;
        assert_eq!(unsettled(&t).await, !settled, "settled: {settled}");
    }
}

pub async fn artifacts(index: &dyn ArtifactIndex) {
    let account = sample_account(t0());
    let transcript = sample_transcript(&account, t0());
    index.insert_transcript(&transcript).await.unwrap();
    let early = due_artifact(&account, Some(&transcript), t0() + Duration::hours(1));
    let late = due_artifact(&account, Some(&transcript), t0() + Duration::hours(5));
    let mut linked = Artifact::new_live(
        new_id(t0()),
        &account,
        Some(transcript.id),
        ArtifactKind::TextInput,
        t0(),
    );
    linked.schedule = ScheduleKind::Linked;
    for a in [&early, &late, &linked] {
        index.insert_artifact(a).await.unwrap();
    }
    assert!(matches!(
        index.insert_artifact(&early).await,
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(index.artifact(early.id).await.unwrap(), Some(early.clone()));
    assert_eq!(
        index
            .artifacts_for_transcript(transcript.id)
            .await
            .unwrap()
            .len(),
        3
    );
    let of_kind = index
        .artifacts_of_kind_for_transcripts(&[transcript.id, new_id(t0())], ArtifactKind::TextInput)
        .await
        .unwrap();
    assert_eq!(
        of_kind.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![linked.id],
        "only the kind asked for, of the transcripts asked for"
    );
    assert!(index
        .artifacts_of_kind_for_transcripts(&[], ArtifactKind::TextInput)
        .await
        .unwrap()
        .is_empty());
    index.set_artifact_size(linked.id, 42).await.unwrap();
    assert_eq!(
        index.artifact(linked.id).await.unwrap().unwrap().size_bytes,
        42
    );

    // Nothing is due before its time; due ones come earliest first.
    assert!(index.due(t0(), 10).await.unwrap().is_empty());
    assert_eq!(
        index.next_due(t0()).await.unwrap(),
        Some(t0() + Duration::hours(1))
    );
    let now = t0() + Duration::hours(6);
    let due = index.due(now, 10).await.unwrap();
    assert_eq!(
        due.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![early.id, late.id]
    );
    assert_eq!(index.due(now, 1).await.unwrap().len(), 1);

    // Overdue: past delete_by and not deleted.
    let overdue = index.overdue(now, 10).await.unwrap();
    assert_eq!(
        overdue.iter().map(|a| a.id).collect::<Vec<_>>(),
        vec![early.id]
    );

    // A claim is exclusive until it expires; nothing not yet due can be claimed.
    let mine = Claim {
        owner: "a".into(),
        now,
        until: now + Duration::minutes(5),
    };
    let theirs = Claim {
        owner: "b".into(),
        now,
        until: now + Duration::minutes(5),
    };
    let claimed = index.claim(&[early.id, late.id], &mine).await.unwrap();
    assert_eq!(claimed.len(), 2);
    assert!(claimed.iter().all(|a| a.state == ArtifactState::Deleting));
    // A content write that lands after a deletion claimed its artifact is not confirmed.
    assert!(matches!(
        index.set_artifact_size(early.id, 7).await,
        Err(StorageError::Conflict { .. })
    ));
    assert_eq!(
        index.artifact(early.id).await.unwrap().unwrap().size_bytes,
        0
    );
    assert!(index
        .claim(&[early.id, late.id], &theirs)
        .await
        .unwrap()
        .is_empty());
    assert!(
        index.due(now, 10).await.unwrap().is_empty(),
        "claimed artifacts are not due for others"
    );
    let too_early = Claim {
        owner: "a".into(),
        now: t0(),
        until: t0() + Duration::minutes(5),
    };
    assert!(index
        .claim(&[linked.id], &too_early)
        .await
        .unwrap()
        .is_empty());
    let expired = Claim {
        owner: "b".into(),
        now: now + Duration::minutes(6),
        until: now + Duration::minutes(11),
    };
    assert_eq!(index.claim(&[late.id], &expired).await.unwrap().len(), 1);

    // Parking (a legal hold): live again, out of the due index until `until`, only for
    // the claim that holds it; unparking makes it due at once.
    let later = now + Duration::minutes(6);
    index
        .park(&[late.id], &mine, later + Duration::hours(1))
        .await
        .unwrap();
    assert_eq!(
        index.artifact(late.id).await.unwrap().unwrap().state,
        ArtifactState::Deleting,
        "only the claim holding an artifact parks it"
    );
    index
        .park(&[late.id], &expired, later + Duration::hours(1))
        .await
        .unwrap();
    let parked = index.artifact(late.id).await.unwrap().unwrap();
    assert_eq!(parked.state, ArtifactState::Live);
    assert_eq!(
        parked.claimed_by.as_deref(),
        Some(crate::domain::HOLD_OWNER)
    );
    assert!(
        !index
            .due(later, 10)
            .await
            .unwrap()
            .iter()
            .any(|a| a.id == late.id),
        "parked artifacts are not due"
    );
    index.unpark(&[late.id]).await.unwrap();
    assert!(index
        .due(later, 10)
        .await
        .unwrap()
        .iter()
        .any(|a| a.id == late.id));
    assert_eq!(index.claim(&[late.id], &expired).await.unwrap().len(), 1);

    // Finishing is idempotent and leaves the artifact out of every due listing.
    let tomb = Tombstone::for_artifact(&claimed[0], now, "a");
    index.finish(std::slice::from_ref(&tomb)).await.unwrap();
    index
        .finish(&[Tombstone {
            deleted_at: now + Duration::hours(1),
            ..tomb.clone()
        }])
        .await
        .unwrap();
    let done = index.artifact(early.id).await.unwrap().unwrap();
    assert_eq!(
        (done.state, done.deleted_at, done.deletion_reason),
        (ArtifactState::Deleted, Some(now), Some(DeletionReason::Ttl))
    );
    assert_eq!(done.due_at, None);
    assert!(
        index.overdue(now, 10).await.unwrap().is_empty()
            || index
                .overdue(now, 10)
                .await
                .unwrap()
                .iter()
                .all(|a| a.id != early.id)
    );

    // Requested deletion: due at once with its reason; the first reason wins; deleted ones untouched.
    index
        .request_deletion(&[linked.id, early.id], DeletionReason::CustomerRequest, now)
        .await
        .unwrap();
    index
        .request_deletion(&[linked.id], DeletionReason::Linked, now)
        .await
        .unwrap();
    let requested = index.artifact(linked.id).await.unwrap().unwrap();
    assert_eq!(
        (requested.pending_reason, requested.due_at),
        (Some(DeletionReason::CustomerRequest), Some(now))
    );
    assert_eq!(
        index
            .artifact(early.id)
            .await
            .unwrap()
            .unwrap()
            .pending_reason,
        None
    );

    // Rescheduling applies only to live artifacts with nothing pending.
    let other = due_artifact(&account, None, t0() + Duration::days(3));
    index.insert_artifact(&other).await.unwrap();
    let sooner = Schedule::point(
        t0() + Duration::hours(2),
        &PlatformPolicy {
            deletion_sla: Duration::hours(1),
            indefinite_retention: None,
        },
    );
    assert!(index.reschedule(other.id, &sooner, 2, t0()).await.unwrap());
    let rescheduled = index.artifact(other.id).await.unwrap().unwrap();
    assert_eq!(
        (rescheduled.due_at, rescheduled.policy_version),
        (Some(t0() + Duration::hours(2)), 2)
    );
    assert!(!index.reschedule(linked.id, &sooner, 2, t0()).await.unwrap());

    // Counts by kind and state (a backend may count `deleting` within `live`).
    let counts = index.count_by_kind_and_state().await.unwrap();
    let count_of =
        |counts: &[(ArtifactKind, ArtifactState, u64)], kind, states: &[ArtifactState]| {
            counts
                .iter()
                .filter(|(k, s, _)| *k == kind && states.contains(s))
                .map(|(_, _, n)| *n)
                .sum::<u64>()
        };
    let not_deleted = [ArtifactState::Live, ArtifactState::Deleting];
    assert_eq!(
        count_of(
            &counts,
            ArtifactKind::Intermediate,
            &[ArtifactState::Deleted]
        ),
        1,
        "{counts:?}"
    );
    assert_eq!(count_of(&counts, ArtifactKind::TextInput, &not_deleted), 1);
    let intermediates_before = count_of(&counts, ArtifactKind::Intermediate, &not_deleted);

    // Live artifacts by account, keyset by id.
    let live = index
        .live_artifacts_for_account(account.id, None, 10)
        .await
        .unwrap();
    assert_eq!(live.len(), 3);
    let rest = index
        .live_artifacts_for_account(account.id, Some(live[0].id), 10)
        .await
        .unwrap();
    assert_eq!(rest.len(), 2);

    // An unconfirmed artifact can be forgotten.
    index.remove_unconfirmed_artifact(other.id).await.unwrap();
    assert_eq!(index.artifact(other.id).await.unwrap(), None);
    let counts = index.count_by_kind_and_state().await.unwrap();
    assert_eq!(
        count_of(&counts, ArtifactKind::Intermediate, &not_deleted),
        intermediates_before - 1,
        "a forgotten artifact is no longer counted"
    );
    index.remove_unconfirmed_artifact(other.id).await.unwrap();
}

pub async fn content(store: &dyn ContentStore) {
    let key = format!("{}/{}", new_id(t0()), new_id(t0()));
    assert_eq!(store.get(&key).await.unwrap(), None);
    assert_eq!(store.put(&key, Content::new("hello")).await.unwrap(), 5);
    assert_eq!(store.get(&key).await.unwrap(), Some(Content::new("hello")));
    store.put(&key, Content::new("replaced")).await.unwrap();
    assert_eq!(
        store.get(&key).await.unwrap(),
        Some(Content::new("replaced"))
    );
    store.delete(&key).await.unwrap();
    assert_eq!(store.get(&key).await.unwrap(), None);
    store
        .delete(&key)
        .await
        .expect("deleting a missing object is Ok");

    let streamed = format!("{}/{}", new_id(t0()), new_id(t0()));
    let chunks = stream::iter((0..64).map(|_| Ok(bytes::Bytes::from(vec![7u8; 1024]))));
    assert_eq!(
        store.put_stream(&streamed, Box::pin(chunks)).await.unwrap(),
        64 * 1024
    );
    assert_eq!(
        store.get(&streamed).await.unwrap().unwrap().len(),
        64 * 1024
    );

    let failing = format!("{}/{}", new_id(t0()), new_id(t0()));
    let broken = stream::iter(vec![
        Ok(bytes::Bytes::from_static(b"partial")),
        Err(std::io::Error::other("client went away")),
    ]);
    assert!(store.put_stream(&failing, Box::pin(broken)).await.is_err());
    assert_eq!(
        store.get(&failing).await.unwrap(),
        None,
        "a failed stream leaves nothing"
    );

    // A batch read answers one entry per key, in the order asked, missing ones as None.
    let other = format!("{}/{}", new_id(t0()), new_id(t0()));
    store.put(&other, Content::new("second")).await.unwrap();
    let batch = store
        .get_many(&[
            other.clone(),
            failing.clone(),
            streamed.clone(),
            other.clone(),
        ])
        .await
        .unwrap();
    assert_eq!(batch.len(), 4);
    assert_eq!(batch[0], Some(Content::new("second")));
    assert_eq!(batch[1], None);
    assert_eq!(batch[2].as_ref().map(Content::len), Some(64 * 1024));
    assert_eq!(batch[3], Some(Content::new("second")));
    assert_eq!(
        store.get_many(&[]).await.unwrap(),
        Vec::<Option<Content>>::new()
    );
    store.delete(&other).await.unwrap();

    let results = store
        .delete_many(&[streamed.clone(), failing.clone(), key.clone()])
        .await;
    assert_eq!(results.len(), 3);
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(store.get(&streamed).await.unwrap(), None);

    // The removals a shredding caller makes durable by destroying the key, and the
    // unsynced ones they rest on: the objects are gone all the same, one result per key,
    // a missing key is no failure.
    for (i, unsynced) in [false, true].into_iter().enumerate() {
        let keys: Vec<String> = (0..3)
            .map(|n| format!("{}/{}/{i}-{n}", new_id(t0()), new_id(t0())))
            .collect();
        for key in &keys[..2] {
            store.put(key, Content::new("gone soon")).await.unwrap();
        }
        let results = match unsynced {
            false => store.delete_many_shredded(&keys).await,
            true => store.delete_many_unsynced(&keys).await,
        };
        assert_eq!(results.len(), 3);
        assert!(results.iter().all(|r| r.is_ok()), "{results:?}");
        for key in &keys {
            assert_eq!(store.get(key).await.unwrap(), None);
        }
    }
}

pub async fn audit(log: &dyn AuditLog) {
    let account = sample_account(t0());
    let artifact = due_artifact(&account, None, t0());
    let tomb = Tombstone::for_artifact(&artifact, t0() + Duration::minutes(1), "sweeper-a");
    log.record_tombstones(std::slice::from_ref(&tomb), &[])
        .await
        .unwrap();
    let again = Tombstone {
        deleted_by: "sweeper-b".into(),
        ..tomb.clone()
    };
    log.record_tombstones(&[again], &[]).await.unwrap();
    assert_eq!(
        log.tombstone(artifact.id).await.unwrap(),
        Some(tomb.clone()),
        "one tombstone per artifact"
    );

    // The deletion log: one leaf per tombstone, in recording order, never for a redo.
    let leaves = log.log_leaves(0, 100).await.unwrap();
    assert_eq!(
        leaves,
        vec![crate::receipts::tombstone_leaf_hash(&tomb)],
        "the first tombstone is leaf 0; its redo appended nothing"
    );
    let more: Vec<Tombstone> = (1..=3)
        .map(|i| {
            let a = due_artifact(&account, None, t0() + Duration::minutes(i));
            Tombstone::for_artifact(&a, t0() + Duration::minutes(i + 1), "sweeper-a")
        })
        .collect();
    log.record_tombstones(&more, &[]).await.unwrap();
    log.record_tombstones(&more[1..], &[]).await.unwrap();
    let leaves = log.log_leaves(0, 100).await.unwrap();
    assert_eq!(leaves.len(), 4);
    assert_eq!(
        log.log_leaves(2, 100).await.unwrap(),
        leaves[2..].to_vec(),
        "read from an index"
    );
    let ids: Vec<_> = more.iter().rev().map(|t| t.artifact_id).collect();
    let logged = log.logged_tombstones(&ids).await.unwrap();
    assert_eq!(
        logged.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
        vec![1, 2, 3],
        "by leaf index"
    );
    for (index, t) in &logged {
        assert_eq!(
            leaves[*index as usize],
            crate::receipts::tombstone_leaf_hash(t)
        );
    }
    assert_eq!(
        log.log_unlogged_tombstones(100).await.unwrap(),
        0,
        "nothing recorded outside the log"
    );

    // The webhook outbox: one delivery per transcript; a claim hides it until it expires.
    let delivery = crate::domain::WebhookDelivery {
        id: new_id(t0()),
        account_id: account.id,
        transcript_id: new_id(t0()),
        event: crate::domain::WebhookEvent::TranscriptStatus,
        payload: serde_json::json!({"status": "completed"}),
        state: crate::domain::DeliveryState::Pending,
        attempts: 0,
        next_attempt_at: t0(),
        last_status: None,
        last_error: None,
        created_at: t0(),
        delivered_at: None,
    };
    assert!(log.enqueue_webhook(&delivery).await.unwrap());
    let again = crate::domain::WebhookDelivery {
        id: new_id(t0()),
        ..delivery.clone()
    };
    assert!(
        !log.enqueue_webhook(&again).await.unwrap(),
        "one per transcript"
    );
    let lease = t0() + Duration::minutes(2);
    let claimed = log.claim_webhooks(t0(), lease, 10).await.unwrap();
    assert_eq!(claimed, vec![delivery.clone()]);
    assert!(log
        .claim_webhooks(t0(), lease, 10)
        .await
        .unwrap()
        .is_empty());
    let sent = crate::domain::WebhookDelivery {
        state: crate::domain::DeliveryState::Delivered,
        attempts: 1,
        last_status: Some(204),
        delivered_at: Some(t0() + Duration::seconds(1)),
        next_attempt_at: lease,
        ..delivery.clone()
    };
    log.update_webhook(&sent).await.unwrap();
    assert!(log
        .claim_webhooks(t0() + Duration::hours(1), lease, 10)
        .await
        .unwrap()
        .is_empty());
    assert_eq!(log.webhook_deliveries(None, 10).await.unwrap(), vec![sent]);

    for i in 0..3 {
        let report = SweepReport {
            id: new_id(t0() + Duration::minutes(i)),
            instance: "test".into(),
            started_at: t0() + Duration::minutes(i),
            finished_at: t0() + Duration::minutes(i) + Duration::seconds(1),
            deleted: i as u64,
            deleted_by_reason: [("ttl".to_string(), i as u64)].into(),
            ..Default::default()
        };
        log.record_sweep(&report).await.unwrap();
    }
    let recent = log.recent_sweeps(2).await.unwrap();
    assert_eq!(
        recent.iter().map(|r| r.deleted).collect::<Vec<_>>(),
        vec![2, 1]
    );
    assert_eq!(recent[0].deleted_by_reason.get("ttl"), Some(&2));
}

/// Usage records: one per id, per account, oldest first, paged by id.
pub async fn usage(log: &dyn AuditLog) {
    let account = sample_account(t0());
    let other = sample_account(t0());
    let record = |account: &Account, i: i64| UsageRecord {
        id: new_id(t0() + Duration::seconds(i)),
        account_id: account.id,
        kind: if i % 2 == 0 {
            UsageKind::LlmGateway
        } else {
            UsageKind::Streaming
        },
        model: format!("model-{i}"),
        provider: (i % 2 == 0).then(|| "anthropic".to_owned()),
        transcript_id: None,
        started_at: t0() + Duration::seconds(i),
        ended_at: t0() + Duration::seconds(i) + Duration::milliseconds(1500),
        artifact_id: (i == 1).then(|| new_id(t0())),
        recorded_at: t0() + Duration::seconds(i + 2),
    };
    let mine: Vec<UsageRecord> = (0..5).map(|i| record(&account, i)).collect();
    for u in &mine {
        log.record_usage(u).await.unwrap();
    }
    log.record_usage(&mine[0]).await.unwrap();
    log.record_usage(&record(&other, 9)).await.unwrap();
    let first = log.usage(account.id, None, 3).await.unwrap();
    assert_eq!(
        first,
        mine[..3].to_vec(),
        "oldest first, this account's only"
    );
    let rest = log.usage(account.id, Some(first[2].id), 3).await.unwrap();
    assert_eq!(
        rest,
        mine[3..].to_vec(),
        "the next page starts after the cursor"
    );
    assert_eq!(rest[0].duration_seconds(), 1.5);
}

/// The training listing: live eligible artifacts only, in id order, gone as soon as a
/// deletion is requested or `delete_after` passes.
pub async fn training_eligible(index: &dyn ArtifactIndex) {
    let now = t0();
    let eligible = sample_account(now);
    let opted_out = Account {
        settings: RetentionSettings {
            model_training_opt_out: true,
            ..Default::default()
        },
        ..sample_account(now)
    };
    let mut ids = Vec::new();
    for i in 0..6 {
        let created = now - Duration::minutes(10 - i);
        let a = Artifact::new_live(
            new_id(created),
            &eligible,
            None,
            ArtifactKind::UploadedAudio,
            created,
        );
        index.insert_artifact(&a).await.unwrap();
        ids.push(a.id);
    }
    let excluded = Artifact::new_live(
        new_id(now),
        &opted_out,
        None,
        ArtifactKind::UploadedAudio,
        now,
    );
    assert!(!excluded.training_eligible);
    index.insert_artifact(&excluded).await.unwrap();
    // One expires (past delete_after, not yet swept); one has a deletion requested; one
    // is deleted.
    let mut expired = due_artifact(&eligible, None, now - Duration::seconds(1));
    expired.kind = ArtifactKind::UploadedAudio;
    assert!(expired.training_eligible);
    index.insert_artifact(&expired).await.unwrap();
    index
        .request_deletion(&[ids[1]], DeletionReason::CustomerRequest, now)
        .await
        .unwrap();
    let doomed = index.artifact(ids[2]).await.unwrap().unwrap();
    index
        .finish(&[Tombstone {
            reason: DeletionReason::CustomerRequest,
            ..Tombstone::for_artifact(&doomed, now, "test")
        }])
        .await
        .unwrap();

    let live: Vec<_> = [ids[0], ids[3], ids[4], ids[5]].to_vec();
    let page = index.training_eligible(now, None, 2).await.unwrap();
    assert_eq!(page.iter().map(|a| a.id).collect::<Vec<_>>(), live[..2]);
    let next = index
        .training_eligible(now, Some(page[1].id), 10)
        .await
        .unwrap();
    assert_eq!(next.iter().map(|a| a.id).collect::<Vec<_>>(), live[2..]);
    let past = index
        .training_eligible(now, Some(live[3]), 10)
        .await
        .unwrap();
    assert!(past.is_empty(), "nothing after the last");
}
