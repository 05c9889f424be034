//! Storage ports and their backends.
//!
//! Four narrow traits, each with the contract every backend must keep (checked by
//! [`conformance`] against every backend):
//! - [`AccountStore`]: accounts and API-key hashes (SQLite, later PostgreSQL);
//! - [`ArtifactIndex`]: transcripts and artifacts with their schedules (SQLite, later DynamoDB);
//! - [`ContentStore`]: the content bytes (local files, later S3);
//! - [`AuditLog`]: tombstones and sweep records (SQLite, later PostgreSQL).
//!
//! The index's deletion methods are batch-shaped (`due`, `claim`, `finish`) so that a
//! backend with batch writes (DynamoDB `TransactWriteItems`, S3 `DeleteObjects`) can serve a
//! sweep in a few requests per hundreds of artifacts. Every state transition is
//! conditional, so two sweepers never both act on one artifact.

pub mod aws;
pub mod codec;
#[cfg(feature = "test-support")]
pub mod conformance;
pub mod durability;
pub mod dynamodb;
pub mod encrypted;
pub mod local;
pub mod postgres;
pub mod s3;
pub mod sqlite;
pub mod sqlite_content;
pub mod sqlite_hold;
mod sqlite_readers;
mod sqlite_writer;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use futures::stream::BoxStream;
use std::sync::Arc;

use crate::domain::{
    Account, AccountId, ApiKeyHash, Artifact, ArtifactId, ArtifactKind, ArtifactState, Content,
    DeletionReason, LegalHold, ReconcileReport, RetentionJob, Schedule, SweepReport, Tombstone,
    Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus, UsageRecord, WebhookDelivery,
};

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("no object at {key}")]
    NotFound { key: String },
    #[error("conditional write lost on {key}")]
    Conflict { key: String },
    #[error("{backend} unavailable")]
    Unavailable {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
    #[error("{backend} failed")]
    Other {
        backend: &'static str,
        #[source]
        source: BoxError,
    },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

/// A page of transcripts with their artifacts of one kind
/// ([`ArtifactIndex::list_transcripts_with_artifacts`]).
#[derive(Debug, Default)]
pub struct PageWithArtifacts {
    /// Newest first.
    pub transcripts: Vec<Transcript>,
    pub artifacts: Vec<Artifact>,
    /// For each of `artifacts`, in order: its scope's wrapped data key and its sealed row,
    /// read in the page's own statement where the index's database also keeps the
    /// content's keys and small objects ([`sqlite::SqliteStore::keeps_content`]). `None`
    /// elsewhere, and where a key's scope could not be worked out in the statement (the
    /// objects are then read on their own). Opened by [`ContentStore::get_many_read`].
    pub content: Option<encrypted::ReadWithPage>,
}

/// A claim on artifacts for deletion: who holds it and until when.
#[derive(Clone, Debug)]
pub struct Claim {
    pub owner: String,
    pub now: DateTime<Utc>,
    pub until: DateTime<Utc>,
}

/// Filters of `GET /v2/transcript`; results are always newest first.
#[derive(Clone, Debug, Default)]
pub struct TranscriptQuery {
    pub status: Option<TranscriptStatus>,
    pub created_on: Option<NaiveDate>,
    /// Only transcripts older than this id.
    pub before_id: Option<TranscriptId>,
    /// Only transcripts newer than this id; without `before_id`, the page just after it.
    pub after_id: Option<TranscriptId>,
    pub limit: u32,
}

#[async_trait]
pub trait AccountStore: std::fmt::Debug + Send + Sync + 'static {
    /// Creates the account with its first key. `Conflict` if the id or key hash exists.
    async fn create_account(&self, account: &Account, key: &ApiKeyHash) -> Result<()>;
    async fn account(&self, id: AccountId) -> Result<Option<Account>>;
    async fn account_by_key_hash(&self, key: &ApiKeyHash) -> Result<Option<Account>>;
    /// Stores `account` — settings, policy history and retention job, in one write — iff
    /// the stored `policy_version` is `expected_version`; `Conflict` otherwise (a concurrent
    /// change), `NotFound` if there is no such account.
    async fn update_account(&self, account: &Account, expected_version: i64) -> Result<()>;
    /// Up to `limit` accounts that have a retention job, by id.
    async fn accounts_with_retention_jobs(&self, limit: u32) -> Result<Vec<Account>>;
    /// Replaces the account's retention job with `job` (`None`: finished) iff the stored
    /// job carries `target_version`; false when it does not (a newer change restarted it).
    async fn save_retention_job(
        &self,
        account: AccountId,
        target_version: i64,
        job: Option<&RetentionJob>,
    ) -> Result<bool>;
    /// Every account, by id after `after` (reconciliation walks them).
    async fn accounts(&self, after: Option<AccountId>, limit: u32) -> Result<Vec<Account>>;
    /// Adds another key for the account; earlier keys keep working.
    async fn add_api_key(
        &self,
        account: AccountId,
        key: &ApiKeyHash,
        now: DateTime<Utc>,
    ) -> Result<()>;
    /// Sets (or with `None` removes) the account's deletion webhook.
    async fn set_deletion_webhook(
        &self,
        account: AccountId,
        webhook: Option<&crate::domain::DeletionWebhook>,
    ) -> Result<()>;
    /// Records a new legal hold.
    async fn create_hold(&self, hold: &LegalHold) -> Result<()>;
    /// Releases the hold at `at` (a released hold stays released, with its first release
    /// time); the hold as it is now, `None` if there is no such hold.
    async fn release_hold(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<Option<LegalHold>>;
    /// Holds by id after `after`, at most `limit`: of one account or all, released ones
    /// included or not.
    async fn holds(
        &self,
        account: Option<AccountId>,
        include_released: bool,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<LegalHold>>;
    /// The active holds of these accounts (one query, whatever the number of accounts).
    async fn active_holds(&self, accounts: &[AccountId]) -> Result<Vec<LegalHold>>;
}

/// Reads the accounts' active legal holds into them (one query for all).
pub(crate) async fn attach_holds(
    store: &dyn AccountStore,
    mut accounts: Vec<Account>,
) -> Result<Vec<Account>> {
    if accounts.is_empty() {
        return Ok(accounts);
    }
    let ids: Vec<AccountId> = accounts.iter().map(|a| a.id).collect();
    let holds = store.active_holds(&ids).await?;
    for account in &mut accounts {
        account.holds = holds
            .iter()
            .filter(|h| h.account_id == account.id)
            .cloned()
            .collect();
    }
    Ok(accounts)
}

#[async_trait]
pub trait ArtifactIndex: std::fmt::Debug + Send + Sync + 'static {
    /// Inserts a new transcript; `Conflict` if the id exists.
    async fn insert_transcript(&self, transcript: &Transcript) -> Result<()>;
    /// A transcript by id, whatever its account: callers enforce tenancy.
    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>>;
    /// A transcript by id with its account, where this store keeps accounts too and reads
    /// both at once (the embedded profile's one file); `None` for the account where the
    /// account store must be asked.
    async fn transcript_and_account(
        &self,
        id: TranscriptId,
    ) -> Result<Option<(Transcript, Option<Account>)>> {
        Ok(self.transcript(id).await?.map(|t| (t, None)))
    }
    /// The transcripts with these ids that exist, in no particular order.
    async fn transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Transcript>> {
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            found.extend(self.transcript(*id).await?);
        }
        Ok(found)
    }
    /// Replaces the transcript iff the stored `revision` equals `transcript.revision`, and
    /// stores it with `revision + 1`. `Conflict` otherwise.
    async fn update_transcript(&self, transcript: &Transcript) -> Result<()>;
    /// Records that the transcripts were deleted; a transcript already marked keeps its
    /// first record. One round trip for the whole batch where the backend allows it.
    async fn mark_transcripts_deleted(
        &self,
        deletions: &[(TranscriptId, TranscriptDeletion)],
    ) -> Result<()>;
    /// The account's transcripts, newest first, by keyset on the (time-ordered) id.
    async fn list_transcripts(
        &self,
        account: AccountId,
        query: &TranscriptQuery,
    ) -> Result<Vec<Transcript>>;
    /// [`list_transcripts`](Self::list_transcripts) and the listed transcripts' artifacts
    /// of `kind` (a page of list items and its audio URLs), in one round trip where the
    /// backend allows it. Default: the two reads, and no content.
    async fn list_transcripts_with_artifacts(
        &self,
        account: AccountId,
        query: &TranscriptQuery,
        kind: ArtifactKind,
    ) -> Result<PageWithArtifacts> {
        let transcripts = self.list_transcripts(account, query).await?;
        let ids: Vec<TranscriptId> = transcripts.iter().map(|t| t.id).collect();
        let artifacts = match ids.is_empty() {
            true => Vec::new(),
            false => self.artifacts_of_kind_for_transcripts(&ids, kind).await?,
        };
        Ok(PageWithArtifacts {
            transcripts,
            artifacts,
            content: None,
        })
    }
    /// Whether the account has transcripts that pass `query`'s filters (status, day) and
    /// are older than `oldest` / newer than `newest`: a page's previous and next links.
    /// `query`'s own bounds and limit are ignored. Default: two one-row listings.
    async fn has_neighbors(
        &self,
        account: AccountId,
        query: &TranscriptQuery,
        oldest: TranscriptId,
        newest: TranscriptId,
    ) -> Result<(bool, bool)> {
        let bounded = |before_id, after_id| TranscriptQuery {
            before_id,
            after_id,
            limit: 1,
            ..query.clone()
        };
        let older = self
            .list_transcripts(account, &bounded(Some(oldest), None))
            .await?;
        let newer = self
            .list_transcripts(account, &bounded(None, Some(newest)))
            .await?;
        Ok((!older.is_empty(), !newer.is_empty()))
    }
    /// Transcripts still `queued`/`processing` that were created before `created_before`.
    async fn stuck_transcripts(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>>;

    /// The transcripts created from an upload.
    async fn transcripts_for_upload(&self, upload: ArtifactId) -> Result<Vec<Transcript>>;
    /// Terminal transcripts not yet settled (a crash between making them terminal and
    /// scheduling their artifacts) that became terminal before `completed_before`.
    async fn unsettled_transcripts(
        &self,
        completed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>>;

    /// Inserts a new artifact; `Conflict` (nothing inserted) if the id exists or its
    /// transcript is marked deleted ([`ArtifactIndex::mark_transcripts_deleted`]): a
    /// transcript's deletion marks it first, then reads the artifacts it deletes, so none
    /// joins it unseen.
    async fn insert_artifact(&self, artifact: &Artifact) -> Result<()>;
    async fn artifact(&self, id: ArtifactId) -> Result<Option<Artifact>>;
    /// Records the size once the content is stored; `Conflict` if the artifact is no
    /// longer live (a deletion claimed it meanwhile, perhaps before the content landed: what
    /// was stored is the caller's to remove).
    async fn set_artifact_size(&self, id: ArtifactId, size_bytes: i64) -> Result<()>;
    /// Forgets an artifact whose content was never confirmed to anyone (a failed upload),
    /// only while it is live: one a deletion took meanwhile stays for its tombstone.
    async fn remove_unconfirmed_artifact(&self, id: ArtifactId) -> Result<()>;
    /// Every artifact of the transcript, any state, oldest first.
    async fn artifacts_for_transcript(&self, id: TranscriptId) -> Result<Vec<Artifact>> {
        self.artifacts_for_transcripts(&[id]).await
    }
    /// Every artifact of these transcripts, any state, oldest first; strongly consistent
    /// (a just-created artifact is included), which the cascade relies on.
    async fn artifacts_for_transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Artifact>>;
    /// [`artifacts_for_transcripts`](Self::artifacts_for_transcripts) of one kind only (a
    /// page of list items reads its audio URLs). Default: that, filtered.
    async fn artifacts_of_kind_for_transcripts(
        &self,
        ids: &[TranscriptId],
        kind: ArtifactKind,
    ) -> Result<Vec<Artifact>> {
        let mut artifacts = self.artifacts_for_transcripts(ids).await?;
        artifacts.retain(|a| a.kind == kind);
        Ok(artifacts)
    }
    /// The account's artifacts not yet deleted, by id after `after`, for rescheduling.
    async fn live_artifacts_for_account(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>>;
    /// Replaces a live artifact's schedule (a retroactive shortening); returns false if it
    /// is no longer live or a deletion is already pending.
    async fn reschedule(
        &self,
        id: ArtifactId,
        schedule: &Schedule,
        policy_version: i64,
        now: DateTime<Utc>,
    ) -> Result<bool>;
    /// Parks claimed artifacts a legal hold covers: live again and out of the due index
    /// (under the hold's claim, [`crate::domain::HOLD_OWNER`]) until `until`, when a pass
    /// looks at them again; only those `claim` still holds.
    async fn park(&self, ids: &[ArtifactId], claim: &Claim, until: DateTime<Utc>) -> Result<()>;
    /// Ends the parking of these artifacts (a hold was released): due again at once if
    /// their time has come. Artifacts not parked are left alone.
    async fn unpark(&self, ids: &[ArtifactId]) -> Result<()>;
    /// Asks for the artifacts to be deleted now with `reason` (customer request, cascade):
    /// makes them due at `now`; already deleted ones are left alone. Idempotent; the first
    /// reason recorded wins.
    async fn request_deletion(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        now: DateTime<Utc>,
    ) -> Result<()>;

    /// Up to `limit` artifacts due at `now` (`due_at <= now`, not deleted, not under
    /// another's unexpired claim), earliest first. The cost grows with the number due, not
    /// with the number tracked.
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>>;
    /// The earliest `due_at` of an artifact not under an unexpired claim at `now`.
    async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>>;
    /// Not-deleted artifacts whose `delete_by` is before `now`, earliest deadline first.
    async fn overdue(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>>;
    /// Up to `limit` artifacts eligible for model training (§6) with ids after `after`, in
    /// id order: live, no deletion pending and not past `delete_after` at `now`. Reads a
    /// sparse index of eligible live artifacts, and the items themselves consistently, so a
    /// deleted artifact is gone from the listing at once.
    async fn training_eligible(
        &self,
        now: DateTime<Utc>,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>>;
    /// How many artifacts there are of each kind in each state (metrics).
    async fn count_by_kind_and_state(&self) -> Result<Vec<(ArtifactKind, ArtifactState, u64)>>;
    /// Conditionally moves due artifacts to `deleting` under `claim`: only those still due
    /// at `claim.now` and not under another's unexpired claim. Returns the ones claimed.
    async fn claim(&self, ids: &[ArtifactId], claim: &Claim) -> Result<Vec<Artifact>>;
    /// A deletion request ([`ArtifactIndex::request_deletion`]) and a claim
    /// ([`ArtifactIndex::claim`]) in one call: every one of `ids` not deleted records the
    /// request (due now), and those not under another's claim are claimed and returned.
    async fn request_and_claim(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        claim: &Claim,
    ) -> Result<Vec<Artifact>> {
        self.request_deletion(ids, reason, claim.now).await?;
        self.claim(ids, claim).await
    }
    /// Like `claim`, for artifacts the caller has just read: backends that can apply the
    /// claim without reading the items back (DynamoDB transactions) save a round trip.
    async fn claim_candidates(
        &self,
        candidates: &[Artifact],
        claim: &Claim,
    ) -> Result<Vec<Artifact>> {
        let ids: Vec<ArtifactId> = candidates.iter().map(|a| a.id).collect();
        self.claim(&ids, claim).await
    }
    /// The artifacts of these transcripts that are not deleted and not in `known` (the
    /// cascade, which already holds `known`). Strongly consistent, like
    /// `artifacts_for_transcripts`.
    async fn unfinished_artifacts_except(
        &self,
        transcripts: &[TranscriptId],
        known: &std::collections::HashSet<ArtifactId>,
    ) -> Result<Vec<Artifact>> {
        let mut artifacts = self.artifacts_for_transcripts(transcripts).await?;
        artifacts.retain(|a| a.state != ArtifactState::Deleted && !known.contains(&a.id));
        Ok(artifacts)
    }
    /// Writes bookkeeping a backend buffers in memory (DynamoDB's artifact counters);
    /// called before the process exits.
    async fn flush(&self) {}
    /// Marks the artifacts deleted with their tombstone fields. Idempotent: already deleted
    /// ones are left as they are.
    async fn finish(&self, tombstones: &[Tombstone]) -> Result<()>;
}

/// One stored object, as a listing shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// When it was last written.
    pub modified: DateTime<Utc>,
}

/// A stream of content chunks, as an HTTP body arrives.
pub type ByteStream = BoxStream<'static, std::io::Result<Bytes>>;

#[async_trait]
pub trait ContentStore: std::fmt::Debug + Send + Sync + 'static {
    /// Stores content under `key`, replacing what was there. Atomic: readers see the old
    /// object, or the whole new one.
    async fn put(&self, key: &str, content: Content) -> Result<u64>;
    /// Stores a stream without holding it whole in memory; returns the size. If the
    /// stream fails, nothing is left under `key` and its error is returned as `Other`.
    async fn put_stream(&self, key: &str, stream: ByteStream) -> Result<u64>;
    /// The content under `key`, or `None`.
    async fn get(&self, key: &str) -> Result<Option<Content>>;
    /// The content under `key` as a stream of chunks, or `None`; never held whole in memory.
    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        Ok(self.get(key).await?.map(|content| {
            let bytes = content.into_bytes();
            Box::pin(futures::stream::once(async move { Ok(bytes) })) as ByteStream
        }))
    }
    /// The contents under `keys`, one per key in order (`None` where there is no object):
    /// one round trip where the store allows it, so a page of list items costs one read,
    /// not one per item. Default: [`get`](Self::get) for each key.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Content>>> {
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            found.push(self.get(key).await?);
        }
        Ok(found)
    }
    /// [`get_many`](Self::get_many), given what the index read with the keys
    /// ([`PageWithArtifacts::content`], one per key in order): the store whose keys and
    /// rows those are opens them without reading them again (objects held as files are
    /// still read). Default: `get_many`, ignoring them.
    async fn get_many_read(
        &self,
        keys: &[String],
        _read: encrypted::ReadWithPage,
    ) -> Result<Vec<Option<Content>>> {
        self.get_many(keys).await
    }
    /// Removes the object. Deleting a missing object is `Ok`.
    async fn delete(&self, key: &str) -> Result<()>;
    /// Forgets whatever makes the objects of `scope` (`<account>/<transcript or upload>`)
    /// readable, once they are all deleted: the encrypted store destroys the scope's data
    /// key (crypto-shredding); stores without per-scope keys do nothing.
    async fn forget_scope(&self, _scope: &str) -> Result<()> {
        Ok(())
    }
    /// [`ContentStore::forget_scope`] for many scopes at once (one write where the store
    /// allows it).
    async fn forget_scopes(&self, scopes: &[&str]) -> Result<()> {
        for scope in scopes {
            self.forget_scope(scope).await?;
        }
        Ok(())
    }
    /// The objects whose keys start with `prefix`, in key order after `after`, at most
    /// `limit` (reconciliation compares them with the index).
    async fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<ObjectInfo>>;
    /// The scopes that still have a data key, in order after `after`, at most `limit`;
    /// empty for stores without per-scope keys.
    async fn scopes_with_keys(&self, _after: Option<&str>, _limit: u32) -> Result<Vec<String>> {
        Ok(Vec::new())
    }
    /// Removes many objects; one result per key, in order. A failure of one key does not
    /// stop the others.
    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
        let mut results = Vec::with_capacity(keys.len());
        for key in keys {
            results.push(self.delete(key).await);
        }
        results
    }
    /// [`delete_many`](Self::delete_many) for objects whose scopes the caller forgets
    /// ([`forget_scopes`](Self::forget_scopes)) before it records their deletion. A store
    /// that crypto-shreds needs no durable removal of its own for them: an object a crash
    /// brings back cannot be decrypted once its key is gone (reconciliation then reports it
    /// as an orphan object). Default: as `delete_many`.
    async fn delete_many_shredded(&self, keys: &[String]) -> Vec<Result<()>> {
        self.delete_many(keys).await
    }
    /// Removes objects without making the removal durable (no directory sync): only for a
    /// caller with another durability argument, as [`delete_many_shredded`](Self::delete_many_shredded)
    /// of an encrypting store. Default: as `delete_many`.
    async fn delete_many_unsynced(&self, keys: &[String]) -> Vec<Result<()>> {
        self.delete_many(keys).await
    }
}

#[async_trait]
pub trait AuditLog: std::fmt::Debug + Send + Sync + 'static {
    /// Writes tombstones; one per artifact ever, so a repeated write is a no-op. Returns
    /// the tombstones on record, in order: the given one, or for an artifact that already
    /// had one (a deletion redone after a crash), the first.
    ///
    ///
    /// In the same transaction, each newly recorded tombstone is appended to the deletion
    /// log as one leaf ([`crate::receipts::tombstone_leaf_hash`]), at the next index: leaf
    /// indexes are dense, in recording order, and a leaf is never rewritten; and the
    /// `deliveries` (deletion events) join the webhook outbox, idempotently.
    async fn record_tombstones(
        &self,
        tombstones: &[Tombstone],
        deliveries: &[WebhookDelivery],
    ) -> Result<Vec<Tombstone>>;
    async fn tombstone(&self, artifact: ArtifactId) -> Result<Option<Tombstone>>;
    /// The deletion log's leaf hashes from leaf `from` on, at most `limit`, in order.
    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>>;
    /// These artifacts' tombstones that are in the deletion log, with their leaf index, by
    /// leaf index.
    async fn logged_tombstones(&self, artifacts: &[ArtifactId]) -> Result<Vec<(u64, Tombstone)>>;
    /// Appends leaves for tombstones recorded before the log existed, oldest first, at most
    /// `limit`; returns how many it appended. Once none are left it says so for good (the
    /// migration recorded whether there were any), so later calls read one row.
    async fn log_unlogged_tombstones(&self, limit: u32) -> Result<u64>;
    /// An account's tombstones by artifact id after `after`, at most `limit`.
    async fn tombstones(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Tombstone>>;
    /// Records a sweep pass: inserted when it starts, replaced when it ends (by id).
    async fn record_sweep(&self, report: &SweepReport) -> Result<()>;
    /// The most recent sweeps, newest first.
    async fn recent_sweeps(&self, limit: u32) -> Result<Vec<SweepReport>>;
    /// One sweep by id.
    async fn sweep(&self, id: uuid::Uuid) -> Result<Option<SweepReport>>;
    /// Records a reconciliation run.
    async fn record_reconciliation(&self, report: &ReconcileReport) -> Result<()>;
    /// The most recent reconciliation runs, newest first.
    async fn recent_reconciliations(&self, limit: u32) -> Result<Vec<ReconcileReport>>;
    /// Adds a delivery to the webhook outbox unless its transcript has one (idempotent, so
    /// settling a transcript again after a crash adds nothing); true if added.
    async fn enqueue_webhook(&self, delivery: &WebhookDelivery) -> Result<bool>;
    /// Claims up to `limit` pending deliveries due at `now`: each is held until `until`
    /// (its next attempt time), so no other instance sends it meanwhile; returned as they
    /// were before the claim.
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Records the outcome of an attempt: the delivery's state, attempts and times.
    async fn update_webhook(&self, delivery: &WebhookDelivery) -> Result<()>;
    /// Deliveries by id after `after`, at most `limit`.
    async fn webhook_deliveries(
        &self,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>>;
    /// Records usage metadata for billing (§2); one row per id, a repeat is a no-op.
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()>;
    /// An account's usage records with ids after `after`, oldest first.
    async fn usage(
        &self,
        account: AccountId,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>>;
}

/// The backends of one running profile.
#[derive(Clone, Debug)]
pub struct Backends {
    pub accounts: Arc<dyn AccountStore>,
    pub index: Arc<dyn ArtifactIndex>,
    pub content: Arc<dyn ContentStore>,
    pub audit: Arc<dyn AuditLog>,
    /// Requests sent to AWS (DynamoDB and S3) by this process; zero on the embedded profile.
    pub aws_requests: aws::RequestCounter,
    /// The SQLite store whose file is held in memory (`LETHE_SQLITE_HOLD_IN_MEMORY`), to
    /// release at shutdown ([`sqlite::SqliteStore::release_hold`]).
    pub held_in_memory: Option<Arc<sqlite::SqliteStore>>,
}
