//! Fault injection at every port call, for tests that must see Lethe survive failures the
//! way they really arrive: one call failing (a storage hiccup), or a process dying between
//! two calls (a crash: from some call on, every call of that instance fails, and what it
//! was doing is abandoned mid-way).
//!
//! [`Faults`] is shared by the four wrappers of one instance's [`Backends`]; each wrapper
//! asks it before delegating, by call name (`"index.claim"`, `"content.delete_many"`…).

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::domain::{
    Account, AccountId, ApiKeyHash, Artifact, ArtifactId, ArtifactKind, ArtifactState, Content,
    DeletionReason, RetentionJob, Schedule, SweepReport, Tombstone, Transcript, TranscriptDeletion,
    TranscriptId, UsageRecord,
};
use crate::storage::{
    AccountStore, ArtifactIndex, AuditLog, Backends, ByteStream, Claim, ContentStore, ObjectInfo,
    Result, StorageError, TranscriptQuery,
};

/// The fault plan of one instance.
#[derive(Debug)]
pub struct Faults {
    calls: AtomicU64,
    /// From this call number on, everything fails (a crash); `u64::MAX`: never.
    crash_at: AtomicU64,
    crashed: AtomicBool,
    /// Call names that fail once, the next time they are made.
    fail_once: Mutex<HashSet<String>>,
    /// Call names that fail every time until cleared.
    fail_always: Mutex<HashSet<String>>,
    /// Call names that fail once, after this many more calls of that name succeed.
    fail_later: Mutex<HashMap<String, u64>>,
    /// Each call fails with this probability (per million), seeded.
    random_ppm: AtomicU64,
    rng: Mutex<rand::rngs::StdRng>,
    /// Every failure injected so far, by call name (what a test reports).
    injected: Mutex<Vec<String>>,
}

impl Faults {
    pub fn new(seed: u64) -> Arc<Self> {
        Arc::new(Self {
            calls: AtomicU64::new(0),
            crash_at: AtomicU64::new(u64::MAX),
            crashed: AtomicBool::new(false),
            fail_once: Mutex::new(HashSet::new()),
            fail_always: Mutex::new(HashSet::new()),
            fail_later: Mutex::new(HashMap::new()),
            random_ppm: AtomicU64::new(0),
            rng: Mutex::new(rand::rngs::StdRng::seed_from_u64(seed)),
            injected: Mutex::new(Vec::new()),
        })
    }

    /// The instance "crashes" `after` calls from now: that call and every later one fail.
    pub fn crash_after(&self, after: u64) {
        let at = self.calls.load(Ordering::SeqCst).saturating_add(after);
        self.crash_at.store(at, Ordering::SeqCst);
    }

    /// Crashes at once.
    pub fn crash_now(&self) {
        self.crash_after(0);
    }

    pub fn has_crashed(&self) -> bool {
        self.crashed.load(Ordering::SeqCst)
    }

    /// The next call named `name` fails.
    pub fn fail_next(&self, name: &str) {
        lock(&self.fail_once).insert(name.to_owned());
    }

    /// The call `name` fails once, after `succeed` more calls of that name have gone
    /// ahead: a later step of the same work failing where the earlier ones did not.
    pub fn fail_after(&self, name: &str, succeed: u64) {
        lock(&self.fail_later).insert(name.to_owned(), succeed);
    }

    /// Every call named `name` fails until [`Faults::heal`].
    pub fn fail_always(&self, name: &str) {
        lock(&self.fail_always).insert(name.to_owned());
    }

    /// Stops every persistent and random failure (a crash stays a crash).
    pub fn heal(&self) {
        lock(&self.fail_always).clear();
        lock(&self.fail_once).clear();
        lock(&self.fail_later).clear();
        self.random_ppm.store(0, Ordering::SeqCst);
    }

    /// Each call fails with probability `p` (0 to 1).
    pub fn fail_randomly(&self, p: f64) {
        self.random_ppm
            .store((p.clamp(0.0, 1.0) * 1e6) as u64, Ordering::SeqCst);
    }

    /// Calls made so far.
    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::SeqCst)
    }

    /// The failures injected so far, by call name.
    pub fn injected(&self) -> Vec<String> {
        lock(&self.injected).clone()
    }

    /// Whether the call `name` is the one [`Faults::fail_after`] planned to fail.
    fn later_fails(&self, name: &str) -> bool {
        let mut later = lock(&self.fail_later);
        match later.get_mut(name) {
            Some(0) => later.remove(name).is_some(),
            Some(left) => {
                *left -= 1;
                false
            }
            None => false,
        }
    }

    /// Asks whether the call `name` may go ahead.
    pub fn check(&self, name: &str) -> Result<()> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst);
        let fail = if n >= self.crash_at.load(Ordering::SeqCst) {
            self.crashed.store(true, Ordering::SeqCst);
            Some("crash")
        } else if lock(&self.fail_once).remove(name)
            || lock(&self.fail_always).contains(name)
            || self.later_fails(name)
        {
            Some("injected failure")
        } else {
            let ppm = self.random_ppm.load(Ordering::SeqCst);
            (ppm > 0 && lock(&self.rng).gen_range(0..1_000_000) < ppm).then_some("random failure")
        };
        match fail {
            None => Ok(()),
            Some(what) => {
                lock(&self.injected).push(name.to_owned());
                Err(StorageError::Unavailable {
                    backend: "fault injection",
                    source: format!("{what} at {name}").into(),
                })
            }
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// `backends` with every port call going through `faults` first.
pub fn faulty(backends: &Backends, faults: &Arc<Faults>) -> Backends {
    Backends {
        accounts: Arc::new(FaultyAccounts {
            inner: backends.accounts.clone(),
            faults: faults.clone(),
        }),
        index: Arc::new(FaultyIndex {
            inner: backends.index.clone(),
            faults: faults.clone(),
        }),
        content: Arc::new(FaultyContent {
            inner: backends.content.clone(),
            faults: faults.clone(),
        }),
        audit: Arc::new(FaultyAudit {
            inner: backends.audit.clone(),
            faults: faults.clone(),
        }),
        aws_requests: backends.aws_requests.clone(),
        held_in_memory: backends.held_in_memory.clone(),
    }
}

#[derive(Debug)]
struct FaultyAccounts {
    inner: Arc<dyn AccountStore>,
    faults: Arc<Faults>,
}

#[async_trait]
impl AccountStore for FaultyAccounts {
    async fn create_account(&self, account: &Account, key: &ApiKeyHash) -> Result<()> {
        self.faults.check("accounts.create_account")?;
        self.inner.create_account(account, key).await
    }
    async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        self.faults.check("accounts.account")?;
        self.inner.account(id).await
    }
    async fn account_by_key_hash(&self, key: &ApiKeyHash) -> Result<Option<Account>> {
        self.faults.check("accounts.account_by_key_hash")?;
        self.inner.account_by_key_hash(key).await
    }
    async fn update_account(&self, account: &Account, expected_version: i64) -> Result<()> {
        self.faults.check("accounts.update_account")?;
        self.inner.update_account(account, expected_version).await
    }
    async fn accounts_with_retention_jobs(&self, limit: u32) -> Result<Vec<Account>> {
        self.faults.check("accounts.accounts_with_retention_jobs")?;
        self.inner.accounts_with_retention_jobs(limit).await
    }
    async fn save_retention_job(
        &self,
        account: AccountId,
        target_version: i64,
        job: Option<&RetentionJob>,
    ) -> Result<bool> {
        self.faults.check("accounts.save_retention_job")?;
        self.inner
            .save_retention_job(account, target_version, job)
            .await
    }
    async fn accounts(&self, after: Option<AccountId>, limit: u32) -> Result<Vec<Account>> {
        self.faults.check("accounts.accounts")?;
        self.inner.accounts(after, limit).await
    }
    async fn add_api_key(
        &self,
        account: AccountId,
        key: &ApiKeyHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.faults.check("accounts.add_api_key")?;
        self.inner.add_api_key(account, key, now).await
    }
    async fn set_deletion_webhook(
        &self,
        account: AccountId,
        webhook: Option<&crate::domain::DeletionWebhook>,
    ) -> Result<()> {
        self.faults.check("accounts.set_deletion_webhook")?;
        self.inner.set_deletion_webhook(account, webhook).await
    }
    async fn create_hold(&self, hold: &crate::domain::LegalHold) -> Result<()> {
        self.faults.check("accounts.create_hold")?;
        self.inner.create_hold(hold).await
    }
    async fn release_hold(
        &self,
        id: uuid::Uuid,
        at: DateTime<Utc>,
    ) -> Result<Option<crate::domain::LegalHold>> {
        self.faults.check("accounts.release_hold")?;
        self.inner.release_hold(id, at).await
    }
    async fn holds(
        &self,
        account: Option<AccountId>,
        include_released: bool,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::domain::LegalHold>> {
        self.faults.check("accounts.holds")?;
        self.inner
            .holds(account, include_released, after, limit)
            .await
    }
    async fn active_holds(&self, accounts: &[AccountId]) -> Result<Vec<crate::domain::LegalHold>> {
        self.faults.check("accounts.active_holds")?;
        self.inner.active_holds(accounts).await
    }
}

#[derive(Debug)]
struct FaultyIndex {
    inner: Arc<dyn ArtifactIndex>,
    faults: Arc<Faults>,
}

#[async_trait]
impl ArtifactIndex for FaultyIndex {
    async fn insert_transcript(&self, t: &Transcript) -> Result<()> {
        self.faults.check("index.insert_transcript")?;
        self.inner.insert_transcript(t).await
    }
    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>> {
        self.faults.check("index.transcript")?;
        self.inner.transcript(id).await
    }
    async fn transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Transcript>> {
        self.faults.check("index.transcripts")?;
        self.inner.transcripts(ids).await
    }
    async fn update_transcript(&self, t: &Transcript) -> Result<()> {
        self.faults.check("index.update_transcript")?;
        self.inner.update_transcript(t).await
    }
    async fn mark_transcripts_deleted(
        &self,
        deletions: &[(TranscriptId, TranscriptDeletion)],
    ) -> Result<()> {
        self.faults.check("index.mark_transcripts_deleted")?;
        self.inner.mark_transcripts_deleted(deletions).await
    }
    async fn list_transcripts(
        &self,
        account: AccountId,
        query: &TranscriptQuery,
    ) -> Result<Vec<Transcript>> {
        self.faults.check("index.list_transcripts")?;
        self.inner.list_transcripts(account, query).await
    }
    async fn has_neighbors(
        &self,
        account: AccountId,
        query: &TranscriptQuery,
        oldest: TranscriptId,
        newest: TranscriptId,
    ) -> Result<(bool, bool)> {
        self.faults.check("index.has_neighbors")?;
        self.inner
            .has_neighbors(account, query, oldest, newest)
            .await
    }
    async fn stuck_transcripts(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        self.faults.check("index.stuck_transcripts")?;
        self.inner.stuck_transcripts(created_before, limit).await
    }
    async fn transcripts_for_upload(&self, upload: ArtifactId) -> Result<Vec<Transcript>> {
        self.faults.check("index.transcripts_for_upload")?;
        self.inner.transcripts_for_upload(upload).await
    }
    async fn unsettled_transcripts(
        &self,
        completed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        self.faults.check("index.unsettled_transcripts")?;
        self.inner
            .unsettled_transcripts(completed_before, limit)
            .await
    }
    async fn insert_artifact(&self, a: &Artifact) -> Result<()> {
        self.faults.check("index.insert_artifact")?;
        self.inner.insert_artifact(a).await
    }
    async fn artifact(&self, id: ArtifactId) -> Result<Option<Artifact>> {
        self.faults.check("index.artifact")?;
        self.inner.artifact(id).await
    }
    async fn set_artifact_size(&self, id: ArtifactId, size_bytes: i64) -> Result<()> {
        self.faults.check("index.set_artifact_size")?;
        self.inner.set_artifact_size(id, size_bytes).await
    }
    async fn remove_unconfirmed_artifact(&self, id: ArtifactId) -> Result<()> {
        self.faults.check("index.remove_unconfirmed_artifact")?;
        self.inner.remove_unconfirmed_artifact(id).await
    }
    async fn artifacts_for_transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Artifact>> {
        self.faults.check("index.artifacts_for_transcripts")?;
        self.inner.artifacts_for_transcripts(ids).await
    }
    async fn artifacts_of_kind_for_transcripts(
        &self,
        ids: &[TranscriptId],
        kind: ArtifactKind,
    ) -> Result<Vec<Artifact>> {
        self.faults
            .check("index.artifacts_of_kind_for_transcripts")?;
        self.inner
            .artifacts_of_kind_for_transcripts(ids, kind)
            .await
    }
    async fn live_artifacts_for_account(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        self.faults.check("index.live_artifacts_for_account")?;
        self.inner
            .live_artifacts_for_account(account, after, limit)
            .await
    }
    async fn reschedule(
        &self,
        id: ArtifactId,
        schedule: &Schedule,
        policy_version: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        self.faults.check("index.reschedule")?;
        self.inner
            .reschedule(id, schedule, policy_version, now)
            .await
    }
    async fn request_deletion(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.faults.check("index.request_deletion")?;
        self.inner.request_deletion(ids, reason, now).await
    }
    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        self.faults.check("index.due")?;
        self.inner.due(now, limit).await
    }
    async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        self.faults.check("index.next_due")?;
        self.inner.next_due(now).await
    }
    async fn overdue(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        self.faults.check("index.overdue")?;
        self.inner.overdue(now, limit).await
    }
    async fn training_eligible(
        &self,
        now: DateTime<Utc>,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        self.faults.check("index.training_eligible")?;
        self.inner.training_eligible(now, after, limit).await
    }
    async fn count_by_kind_and_state(&self) -> Result<Vec<(ArtifactKind, ArtifactState, u64)>> {
        self.faults.check("index.count_by_kind_and_state")?;
        self.inner.count_by_kind_and_state().await
    }
    async fn request_and_claim(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        claim: &Claim,
    ) -> Result<Vec<Artifact>> {
        self.faults.check("index.request_and_claim")?;
        self.inner.request_and_claim(ids, reason, claim).await
    }
    async fn claim(&self, ids: &[ArtifactId], claim: &Claim) -> Result<Vec<Artifact>> {
        self.faults.check("index.claim")?;
        self.inner.claim(ids, claim).await
    }
    async fn claim_candidates(
        &self,
        candidates: &[Artifact],
        claim: &Claim,
    ) -> Result<Vec<Artifact>> {
        self.faults.check("index.claim_candidates")?;
        self.inner.claim_candidates(candidates, claim).await
    }
    async fn unfinished_artifacts_except(
        &self,
        transcripts: &[TranscriptId],
        known: &HashSet<ArtifactId>,
    ) -> Result<Vec<Artifact>> {
        self.faults.check("index.unfinished_artifacts_except")?;
        self.inner
            .unfinished_artifacts_except(transcripts, known)
            .await
    }
    async fn flush(&self) {
        if self.faults.check("index.flush").is_ok() {
            self.inner.flush().await
        }
    }
    async fn finish(&self, tombstones: &[Tombstone]) -> Result<()> {
        self.faults.check("index.finish")?;
        self.inner.finish(tombstones).await
    }
    async fn park(&self, ids: &[ArtifactId], claim: &Claim, until: DateTime<Utc>) -> Result<()> {
        self.faults.check("index.park")?;
        self.inner.park(ids, claim, until).await
    }
    async fn unpark(&self, ids: &[ArtifactId]) -> Result<()> {
        self.faults.check("index.unpark")?;
        self.inner.unpark(ids).await
    }
}

#[derive(Debug)]
struct FaultyContent {
    inner: Arc<dyn ContentStore>,
    faults: Arc<Faults>,
}

impl FaultyContent {
    /// Every key failed, when the `content.delete_many` fault fires.
    fn delete_many_fault(&self, keys: &[String]) -> Option<Vec<Result<()>>> {
        let message = self.faults.check("content.delete_many").err()?.to_string();
        Some(
            keys.iter()
                .map(|_| {
                    Err(StorageError::Unavailable {
                        backend: "fault injection",
                        source: message.clone().into(),
                    })
                })
                .collect(),
        )
    }
}

#[async_trait]
impl ContentStore for FaultyContent {
    async fn put(&self, key: &str, content: Content) -> Result<u64> {
        self.faults.check("content.put")?;
        self.inner.put(key, content).await
    }
    async fn put_stream(&self, key: &str, stream: ByteStream) -> Result<u64> {
        self.faults.check("content.put_stream")?;
        self.inner.put_stream(key, stream).await
    }
    async fn get(&self, key: &str) -> Result<Option<Content>> {
        self.faults.check("content.get")?;
        self.inner.get(key).await
    }
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Content>>> {
        self.faults.check("content.get_many")?;
        self.inner.get_many(keys).await
    }
    async fn get_many_read(
        &self,
        keys: &[String],
        read: crate::storage::encrypted::ReadWithPage,
    ) -> Result<Vec<Option<Content>>> {
        self.faults.check("content.get_many")?;
        self.inner.get_many_read(keys, read).await
    }
    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        self.faults.check("content.get_stream")?;
        self.inner.get_stream(key).await
    }
    async fn delete(&self, key: &str) -> Result<()> {
        self.faults.check("content.delete")?;
        self.inner.delete(key).await
    }
    async fn forget_scope(&self, scope: &str) -> Result<()> {
        self.faults.check("content.forget_scope")?;
        self.inner.forget_scope(scope).await
    }
    async fn forget_scopes(&self, scopes: &[&str]) -> Result<()> {
        self.faults.check("content.forget_scope")?;
        self.inner.forget_scopes(scopes).await
    }
    async fn list(&self, prefix: &str, after: Option<&str>, limit: u32) -> Result<Vec<ObjectInfo>> {
        self.faults.check("content.list")?;
        self.inner.list(prefix, after, limit).await
    }
    async fn scopes_with_keys(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.faults.check("content.scopes_with_keys")?;
        self.inner.scopes_with_keys(after, limit).await
    }
    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
        match self.delete_many_fault(keys) {
            Some(failed) => failed,
            None => self.inner.delete_many(keys).await,
        }
    }
    async fn delete_many_shredded(&self, keys: &[String]) -> Vec<Result<()>> {
        match self.delete_many_fault(keys) {
            Some(failed) => failed,
            None => self.inner.delete_many_shredded(keys).await,
        }
    }
    async fn delete_many_unsynced(&self, keys: &[String]) -> Vec<Result<()>> {
        match self.delete_many_fault(keys) {
            Some(failed) => failed,
            None => self.inner.delete_many_unsynced(keys).await,
        }
    }
}

#[derive(Debug)]
struct FaultyAudit {
    inner: Arc<dyn AuditLog>,
    faults: Arc<Faults>,
}

#[async_trait]
impl AuditLog for FaultyAudit {
    async fn record_tombstones(
        &self,
        tombstones: &[Tombstone],
        deliveries: &[crate::domain::WebhookDelivery],
    ) -> Result<Vec<Tombstone>> {
        self.faults.check("audit.record_tombstones")?;
        self.inner.record_tombstones(tombstones, deliveries).await
    }
    async fn tombstone(&self, artifact: ArtifactId) -> Result<Option<Tombstone>> {
        self.faults.check("audit.tombstone")?;
        self.inner.tombstone(artifact).await
    }
    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>> {
        self.faults.check("audit.log_leaves")?;
        self.inner.log_leaves(from, limit).await
    }
    async fn logged_tombstones(&self, artifacts: &[ArtifactId]) -> Result<Vec<(u64, Tombstone)>> {
        self.faults.check("audit.logged_tombstones")?;
        self.inner.logged_tombstones(artifacts).await
    }
    async fn log_unlogged_tombstones(&self, limit: u32) -> Result<u64> {
        self.faults.check("audit.log_unlogged_tombstones")?;
        self.inner.log_unlogged_tombstones(limit).await
    }
    async fn tombstones(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Tombstone>> {
        self.faults.check("audit.tombstones")?;
        self.inner.tombstones(account, after, limit).await
    }
    async fn record_sweep(&self, report: &SweepReport) -> Result<()> {
        self.faults.check("audit.record_sweep")?;
        self.inner.record_sweep(report).await
    }
    async fn recent_sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        self.faults.check("audit.recent_sweeps")?;
        self.inner.recent_sweeps(limit).await
    }
    async fn sweep(&self, id: uuid::Uuid) -> Result<Option<SweepReport>> {
        self.faults.check("audit.sweep")?;
        self.inner.sweep(id).await
    }
    async fn record_reconciliation(&self, report: &crate::domain::ReconcileReport) -> Result<()> {
        self.faults.check("audit.record_reconciliation")?;
        self.inner.record_reconciliation(report).await
    }
    async fn recent_reconciliations(
        &self,
        limit: u32,
    ) -> Result<Vec<crate::domain::ReconcileReport>> {
        self.faults.check("audit.recent_reconciliations")?;
        self.inner.recent_reconciliations(limit).await
    }
    async fn record_usage(&self, usage: &UsageRecord) -> Result<()> {
        self.faults.check("audit.record_usage")?;
        self.inner.record_usage(usage).await
    }
    async fn usage(
        &self,
        account: AccountId,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        self.faults.check("audit.usage")?;
        self.inner.usage(account, after, limit).await
    }
    async fn enqueue_webhook(&self, delivery: &crate::domain::WebhookDelivery) -> Result<bool> {
        self.faults.check("audit.enqueue_webhook")?;
        self.inner.enqueue_webhook(delivery).await
    }
    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<crate::domain::WebhookDelivery>> {
        self.faults.check("audit.claim_webhooks")?;
        self.inner.claim_webhooks(now, until, limit).await
    }
    async fn update_webhook(&self, delivery: &crate::domain::WebhookDelivery) -> Result<()> {
        self.faults.check("audit.update_webhook")?;
        self.inner.update_webhook(delivery).await
    }
    async fn webhook_deliveries(
        &self,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<crate::domain::WebhookDelivery>> {
        self.faults.check("audit.webhook_deliveries")?;
        self.inner.webhook_deliveries(after, limit).await
    }
}
