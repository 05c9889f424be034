//! Reconciliation: an independent check of what is stored against what the rules say,
//! which does not trust the due index. It walks every account's live artifacts (by
//! account, never a table scan), its content objects, the data keys and the erasure
//! record, and reports:
//! - `overdue_not_deleted`: live artifacts past their deadline (under every policy
//!   version since they were scheduled);
//! - `orphan_objects`: content objects no live artifact owns, older than a grace period;
//! - `missing_content`: live artifacts older than the grace period with no content
//!   (tracked, then a crash before the bytes were stored);
//! - `keys_without_scope`: data keys whose scope has nothing live left;
//! - `erasures_reapplied`: artifacts with a tombstone that are live again (a restore from
//!   an older backup).
//!
//! With `repair` it deletes what is past its deadline (through the deletion pipeline, so
//! with tombstones), the orphan objects, the keys without scope, the unconfirmed
//! artifacts, and deletes again whatever has a tombstone. Nothing is ever deleted before
//! its `delete_after`.

use chrono::{DateTime, Duration, Utc};
use std::collections::{HashMap, HashSet};

use crate::domain::content_scope as scope_of;
use crate::domain::{
    new_id, Account, Artifact, ArtifactId, ArtifactState, DeletionReason, ReconcileReport,
    Transcript, TranscriptId,
};
use crate::engine::deletion;
use crate::engine::{Engine, EngineError};
use crate::storage::StorageError;

/// Page size of every walk.
const PAGE: u32 = 500;

#[derive(Clone, Copy, Debug)]
pub struct ReconcileOptions {
    /// Repair what is found (default: report only).
    pub repair: bool,
    /// Objects and artifacts younger than this are left alone (writes in flight).
    pub grace: Duration,
}

impl Default for ReconcileOptions {
    fn default() -> Self {
        Self {
            repair: false,
            grace: Duration::hours(1),
        }
    }
}

/// Progress of a run: (accounts walked, artifacts and objects checked).
pub type Progress<'a> = &'a (dyn Fn(u64, u64) + Send + Sync);

impl Engine {
    /// Runs one reconciliation at `now`, records it and counts what it found.
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        options: ReconcileOptions,
        progress: Progress<'_>,
    ) -> Result<ReconcileReport, EngineError> {
        let report = reconcile(self, now, options, progress).await?;
        self.metrics.record_reconciliation(&report);
        self.backends.audit.record_reconciliation(&report).await?;
        Ok(report)
    }
}

/// Runs one reconciliation at `now`.
async fn reconcile(
    lethe: &Engine,
    now: DateTime<Utc>,
    options: ReconcileOptions,
    progress: Progress<'_>,
) -> Result<ReconcileReport, EngineError> {
    let started = std::time::Instant::now();
    let mut report = ReconcileReport {
        id: new_id(now),
        instance: lethe.instance.clone(),
        started_at: now,
        repair: options.repair,
        ..Default::default()
    };
    // Scopes that still hold something live, over every account: what a data key needs.
    let mut live_scopes: HashSet<String> = HashSet::new();
    let mut after = None;
    loop {
        let accounts = lethe.backends.accounts.accounts(after, 100).await?;
        let Some(last) = accounts.last() else { break };
        after = Some(last.id);
        for account in &accounts {
            reconcile_account(lethe, account, now, options, &mut report, &mut live_scopes).await?;
            report.accounts += 1;
            progress(report.accounts, report.checked);
        }
    }
    reconcile_keys(lethe, options, &mut report, &live_scopes).await?;
    report.finished_at = now + Duration::from_std(started.elapsed()).unwrap_or_default();
    tracing::info!(
        checked = report.checked,
        overdue_not_deleted = report.overdue_not_deleted,
        orphan_objects = report.orphan_objects,
        missing_content = report.missing_content,
        keys_without_scope = report.keys_without_scope,
        erasures_reapplied = report.erasures_reapplied,
        repaired = report.repaired,
        "reconciliation finished"
    );
    Ok(report)
}

async fn reconcile_account(
    lethe: &Engine,
    account: &Account,
    now: DateTime<Utc>,
    options: ReconcileOptions,
    report: &mut ReconcileReport,
    live_scopes: &mut HashSet<String>,
) -> Result<(), EngineError> {
    let index = &lethe.backends.index;
    // 1. Live artifacts: anything past its deadline, anything without its content.
    let objects = content_keys(lethe, account, report).await?;
    let mut live_keys: HashSet<String> = HashSet::new();
    let mut overdue: Vec<Artifact> = Vec::new();
    let mut unconfirmed: Vec<ArtifactId> = Vec::new();
    let mut cursor = None;
    loop {
        let page = index
            .live_artifacts_for_account(account.id, cursor, PAGE)
            .await?;
        let Some(last) = page.last() else { break };
        cursor = Some(last.id);
        let transcripts = transcripts_of(lethe, &page).await?;
        for artifact in &page {
            report.checked += 1;
            live_keys.insert(artifact.content_key.clone());
            live_scopes.insert(scope_of(&artifact.content_key).to_owned());
            let transcript = artifact.transcript_id.and_then(|t| transcripts.get(&t));
            let effective = lethe.effective_artifact(artifact.clone(), transcript, account);
            if effective.is_overdue_at(now) {
                report.overdue_not_deleted += 1;
                report.sample("overdue", artifact.id);
                overdue.push(effective);
            } else if artifact.state == ArtifactState::Live
                && artifact.pending_reason.is_none()
                && artifact.created_at + options.grace <= now
                && !objects.contains_key(&artifact.content_key)
            {
                report.missing_content += 1;
                report.sample("missing_content", artifact.id);
                if artifact.size_bytes == 0 {
                    unconfirmed.push(artifact.id);
                }
            }
        }
        if page.len() < PAGE as usize {
            break;
        }
    }
    // 2. Objects no live artifact owns.
    let mut orphans: Vec<String> = Vec::new();
    for (key, modified) in &objects {
        if live_keys.contains(key) || *modified + options.grace > now {
            continue;
        }
        // Confirm against the item itself: it may have been written after the walk.
        let owner = key
            .rsplit('/')
            .next()
            .and_then(|id| uuid::Uuid::parse_str(id).ok());
        let owned = match owner {
            Some(id) => index
                .artifact(id)
                .await?
                .is_some_and(|a| a.state != ArtifactState::Deleted && a.content_key == *key),
            None => false,
        };
        // And against the store: a deletion may have removed it since it was listed.
        let still_there = || async {
            let listed = lethe.backends.content.list(key, None, 1).await?;
            Ok::<bool, crate::storage::StorageError>(listed.first().is_some_and(|o| o.key == *key))
        };
        if !owned && still_there().await? {
            report.orphan_objects += 1;
            report.sample("orphan_object", key);
            orphans.push(key.clone());
        }
    }
    // 3. The erasure record: anything with a tombstone must be deleted, also after a
    // restore brought it back.
    let mut erased_again: Vec<(ArtifactId, DeletionReason)> = Vec::new();
    let mut after = None;
    loop {
        let tombstones = lethe
            .backends
            .audit
            .tombstones(account.id, after, PAGE)
            .await?;
        let Some(last) = tombstones.last() else { break };
        after = Some(last.artifact_id);
        for t in &tombstones {
            report.checked += 1;
            let live_again = index
                .artifact(t.artifact_id)
                .await?
                .is_some_and(|a| a.state != ArtifactState::Deleted);
            if live_again {
                report.erasures_reapplied += 1;
                report.sample("erasure", t.artifact_id);
                erased_again.push((t.artifact_id, t.reason));
            }
        }
        if tombstones.len() < PAGE as usize {
            break;
        }
    }
    if options.repair {
        report.repaired += repair_overdue(lethe, &overdue, now).await?;
        report.repaired += reapply_erasures(lethe, &erased_again, now).await?;
        for id in unconfirmed {
            index.remove_unconfirmed_artifact(id).await?;
            report.repaired += 1;
        }
        for result in lethe.backends.content.delete_many(&orphans).await {
            match result {
                Ok(()) => report.repaired += 1,
                Err(e) => tracing::warn!(error = %e, "could not delete an orphan object"),
            }
        }
    }
    Ok(())
}

/// Every content object of the account with its last write.
async fn content_keys(
    lethe: &Engine,
    account: &Account,
    report: &mut ReconcileReport,
) -> Result<HashMap<String, DateTime<Utc>>, StorageError> {
    let prefix = format!("{}/", account.id);
    let mut objects = HashMap::new();
    let mut after: Option<String> = None;
    loop {
        let page = lethe
            .backends
            .content
            .list(&prefix, after.as_deref(), 1000)
            .await?;
        let Some(last) = page.last() else { break };
        after = Some(last.key.clone());
        let full = page.len() == 1000;
        for object in page {
            report.checked += 1;
            objects.insert(object.key, object.modified);
        }
        if !full {
            break;
        }
    }
    Ok(objects)
}

async fn transcripts_of(
    lethe: &Engine,
    artifacts: &[Artifact],
) -> Result<HashMap<TranscriptId, Transcript>, StorageError> {
    let mut ids: Vec<TranscriptId> = artifacts.iter().filter_map(|a| a.transcript_id).collect();
    ids.sort();
    ids.dedup();
    Ok(lethe
        .backends
        .index
        .transcripts(&ids)
        .await?
        .into_iter()
        .map(|t| (t.id, t))
        .collect())
}

/// Makes overdue artifacts due now with their effective schedule and deletes them through
/// the pipeline (tombstones and all). Returns how many went.
async fn repair_overdue(
    lethe: &Engine,
    overdue: &[Artifact],
    now: DateTime<Utc>,
) -> Result<u64, EngineError> {
    if overdue.is_empty() {
        return Ok(0);
    }
    for a in overdue.iter().filter(|a| a.state == ArtifactState::Live) {
        lethe
            .backends
            .index
            .reschedule(a.id, &a.schedule(), a.policy_version, now)
            .await?;
    }
    let ids: Vec<ArtifactId> = overdue.iter().map(|a| a.id).collect();
    delete_ids(lethe, &ids, now).await
}

/// Deletes again what the erasure record says was deleted, for the reason it records
/// (the first tombstone stays the one on record).
async fn reapply_erasures(
    lethe: &Engine,
    erased: &[(ArtifactId, DeletionReason)],
    now: DateTime<Utc>,
) -> Result<u64, EngineError> {
    let mut by_reason: HashMap<DeletionReason, Vec<ArtifactId>> = HashMap::new();
    for (id, reason) in erased {
        by_reason.entry(*reason).or_default().push(*id);
    }
    for (reason, ids) in &by_reason {
        lethe
            .backends
            .index
            .request_deletion(ids, *reason, now)
            .await?;
    }
    let ids: Vec<ArtifactId> = erased.iter().map(|(id, _)| *id).collect();
    if ids.is_empty() {
        return Ok(0);
    }
    delete_ids(lethe, &ids, now).await
}

async fn delete_ids(
    lethe: &Engine,
    ids: &[ArtifactId],
    now: DateTime<Utc>,
) -> Result<u64, EngineError> {
    let claim = lethe.new_claim(now, "reconcile");
    let claimed = lethe.backends.index.claim(ids, &claim).await?;
    let outcome =
        deletion::delete_claimed(&lethe.backends, &lethe.metrics, claimed, &claim).await?;
    Ok(outcome.deleted.len() as u64)
}

/// Data keys whose scope has nothing live left are destroyed (crypto-shredding what a
/// crash between deleting the last artifact and destroying the key left behind).
async fn reconcile_keys(
    lethe: &Engine,
    options: ReconcileOptions,
    report: &mut ReconcileReport,
    live_scopes: &HashSet<String>,
) -> Result<(), EngineError> {
    let content = &lethe.backends.content;
    let mut after: Option<String> = None;
    loop {
        let scopes = content.scopes_with_keys(after.as_deref(), 1000).await?;
        let Some(last) = scopes.last() else { break };
        after = Some(last.clone());
        for scope in &scopes {
            report.checked += 1;
            if live_scopes.contains(scope) || scope_has_live(lethe, scope).await? {
                continue;
            }
            report.keys_without_scope += 1;
            report.sample("key", scope);
            if options.repair {
                content.forget_scope(scope).await?;
                report.repaired += 1;
            }
        }
        if scopes.len() < 1000 {
            break;
        }
    }
    Ok(())
}

/// Whether anything live is in `scope` (`<account>/<transcript or artifact>`) now: the
/// walk may be older than a write that created the scope.
async fn scope_has_live(lethe: &Engine, scope: &str) -> Result<bool, StorageError> {
    let Some(id) = scope
        .rsplit('/')
        .next()
        .and_then(|id| uuid::Uuid::parse_str(id).ok())
    else {
        return Ok(false);
    };
    let index = &lethe.backends.index;
    if let Some(a) = index.artifact(id).await? {
        if a.state != ArtifactState::Deleted {
            return Ok(true);
        }
    }
    Ok(index
        .artifacts_for_transcript(id)
        .await?
        .iter()
        .any(|a| a.state != ArtifactState::Deleted))
}
