//! Deleting claimed artifacts: the one pipeline both the sweeper and customer deletion use.
//!
//! Steps, each idempotent so that a crash anywhere is finished by a later pass:
//! 1. the artifacts are already **claimed** (`deleting`, under a lease) by the caller;
//! 2. a final transcript **cascades**: its live linked artifacts (and any result a lost
//!    race to finish the transcript left behind) are requested for deletion (reason
//!    `linked`) and claimed too;
//! 3. the **content** is deleted (a missing object is fine);
//! 4. the transcript is marked deleted when its final transcript goes;
//! 5. **crypto-shredding**: a transcript's data key is forgotten once nothing of it is left,
//!    an upload's once the upload is gone (a no-op for stores without per-scope keys) —
//!    before the tombstones, so a crash in between is redone by the next pass rather than
//!    leaving a key behind;
//! 6. the **tombstones** are written to the audit log (one per artifact, ever);
//! 7. the index marks the artifacts **deleted**, and the deletions are counted (here only).
//!
//! An artifact whose content deletion failed stays claimed; when the lease runs out it is
//! due again. A final transcript is only finished once every linked artifact this run
//! claimed went with it. A linked artifact another claim holds (another batch of the same
//! pass, another instance, a customer request) is left to that claim, which finishes it or,
//! failing, leaves it due again when its lease runs out; the transcript's data key stays
//! until the last of its artifacts is gone.

use std::collections::{HashMap, HashSet};

use crate::domain::{
    Artifact, ArtifactId, ArtifactKind, DeletionReason, ScheduleKind, Tombstone,
    TranscriptDeletion, TranscriptId,
};
use crate::metrics::Metrics;
use crate::storage::{Backends, Claim, StorageError};

/// What one deletion run did.
#[derive(Debug, Default)]
pub struct DeletionOutcome {
    pub deleted: Vec<Tombstone>,
    pub failed: Vec<(ArtifactId, StorageError)>,
    /// Claimed artifacts that were not yet deletable at `now` (never deleted early).
    pub refused_early: Vec<ArtifactId>,
    /// Claimed artifacts a legal hold covers: parked, not deleted.
    pub held: Vec<ArtifactId>,
}

/// How long a parked (held) artifact stays out of the due index before a pass looks at it
/// again; a release ends the parking at once.
pub const HOLD_RECHECK: chrono::Duration = chrono::Duration::hours(1);

/// The `transcript.deleted` events of the transcripts this batch deletes (their winning
/// final transcripts), for accounts with a deletion webhook.
async fn deletion_events(
    backends: &Backends,
    gone: &[Artifact],
    winners: &HashSet<ArtifactId>,
    known: Option<&crate::domain::Account>,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Vec<crate::domain::WebhookDelivery>, StorageError> {
    let finals: Vec<&Artifact> = gone.iter().filter(|a| winners.contains(&a.id)).collect();
    let mut hooked: HashMap<crate::domain::AccountId, bool> = HashMap::new();
    let mut events = Vec::new();
    for a in finals {
        let Some(transcript) = a.transcript_id else {
            continue;
        };
        let wants = match hooked.get(&a.account_id) {
            Some(wants) => *wants,
            None => {
                let wants = match known.filter(|k| k.id == a.account_id) {
                    Some(account) => account.deletion_webhook.is_some(),
                    None => backends
                        .accounts
                        .account(a.account_id)
                        .await?
                        .is_some_and(|account| account.deletion_webhook.is_some()),
                };
                hooked.insert(a.account_id, wants);
                wants
            }
        };
        if wants {
            events.push(crate::domain::WebhookDelivery {
                id: crate::domain::new_id(now),
                account_id: a.account_id,
                transcript_id: transcript,
                event: crate::domain::WebhookEvent::TranscriptDeleted,
                payload: serde_json::json!({
                    "event": "transcript.deleted",
                    "transcript_id": transcript,
                    "reason": a.reason_for_deletion().as_str(),
                    "deleted_at": now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                }),
                state: crate::domain::DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: now,
                last_status: None,
                last_error: None,
                created_at: now,
                delivered_at: None,
            });
        }
    }
    Ok(events)
}

/// The transcripts a hold on which covers `artifact`: its own, or for an upload every
/// transcript made from it.
pub(super) async fn holdable_transcripts(
    backends: &Backends,
    artifact: &Artifact,
) -> Result<Vec<TranscriptId>, StorageError> {
    let mut transcripts: Vec<TranscriptId> = artifact.transcript_id.into_iter().collect();
    if artifact.kind == ArtifactKind::UploadedAudio && artifact.transcript_id.is_none() {
        transcripts.extend(
            backends
                .index
                .transcripts_for_upload(artifact.id)
                .await?
                .iter()
                .map(|t| t.id),
        );
    }
    Ok(transcripts)
}

/// The claimed artifacts an active legal hold covers (one query for the batch's accounts;
/// an upload is covered by a hold on any transcript made from it).
async fn held_artifacts(
    backends: &Backends,
    claimed: &[Artifact],
    known: Option<Vec<crate::domain::LegalHold>>,
) -> Result<HashSet<ArtifactId>, StorageError> {
    let mut accounts: Vec<_> = claimed.iter().map(|a| a.account_id).collect();
    accounts.sort();
    accounts.dedup();
    if accounts.is_empty() {
        return Ok(HashSet::new());
    }
    let holds = match known {
        Some(holds) => holds,
        None => backends.accounts.active_holds(&accounts).await?,
    };
    if holds.is_empty() {
        return Ok(HashSet::new());
    }
    let mut held = HashSet::new();
    for artifact in claimed {
        if !holds.iter().any(|h| h.account_id == artifact.account_id) {
            continue;
        }
        let transcripts = holdable_transcripts(backends, artifact).await?;
        if holds
            .iter()
            .any(|h| h.covers(artifact.account_id, &transcripts))
        {
            held.insert(artifact.id);
        }
    }
    Ok(held)
}

/// What the caller already read, so the pipeline need not read it again (a customer
/// deletion holds the transcript and every artifact of it).
#[derive(Debug, Default)]
pub struct Known {
    /// Transcripts of the batch, as they are now.
    pub transcripts: HashMap<TranscriptId, crate::domain::Transcript>,
    /// `Some(list)`: the artifacts of `transcripts` that are neither deleted nor in the
    /// batch (possibly none); `None`: read them here.
    pub remaining: Option<Vec<Artifact>>,
    /// The account of the whole batch, as the caller read it (its active legal holds and
    /// deletion webhook); `None`: read what is needed here.
    pub account: Option<crate::domain::Account>,
}

/// Runs steps 2–7 for `claimed` (held under `claim`).
pub async fn delete_claimed(
    backends: &Backends,
    metrics: &Metrics,
    claimed: Vec<Artifact>,
    claim: &Claim,
) -> Result<DeletionOutcome, StorageError> {
    delete_claimed_knowing(backends, metrics, claimed, claim, Known::default()).await
}

/// [`delete_claimed`] with what the caller already read.
pub async fn delete_claimed_knowing(
    backends: &Backends,
    metrics: &Metrics,
    mut claimed: Vec<Artifact>,
    claim: &Claim,
    known: Known,
) -> Result<DeletionOutcome, StorageError> {
    let now = claim.now;
    let mut outcome = DeletionOutcome::default();

    // Never early: a claim implies due, but check the rule itself once more.
    claimed.retain(|a| {
        let ok = a.may_be_deleted_at(now);
        if !ok {
            tracing::error!(artifact_id = %a.id, "claimed artifact is not yet deletable; left alone");
            outcome.refused_early.push(a.id);
        }
        ok
    });

    // Legal holds: nothing a hold covers is deleted, whichever path claimed it (a pass, a
    // customer request, the cascade, a repair). Held artifacts are parked — live again,
    // out of the due index until HOLD_RECHECK — and a release makes them due at once.
    let held = held_artifacts(
        backends,
        &claimed,
        known.account.as_ref().map(|a| a.holds.clone()),
    )
    .await?;
    if !held.is_empty() {
        let ids: Vec<ArtifactId> = held.iter().copied().collect();
        backends.index.park(&ids, claim, now + HOLD_RECHECK).await?;
        tracing::info!(
            artifacts = ids.len(),
            "deletion deferred: a legal hold applies"
        );
        claimed.retain(|a| !held.contains(&a.id));
        outcome.held = ids;
    }

    // Step 2: cascade from final transcripts to their linked artifacts, for the whole
    // batch at once (one read, one request, one claim), not per transcript.
    let mut linked_of: HashMap<ArtifactId, Vec<ArtifactId>> = HashMap::new();
    let batch: HashSet<ArtifactId> = claimed.iter().map(|a| a.id).collect();
    // Only a transcript's own final transcript (the one that won the race to finish it)
    // speaks for the transcript: a result a crashed or lost attempt left behind is deleted
    // on its own, never cascading nor marking the transcript deleted.
    let mut candidates: Vec<TranscriptId> = claimed
        .iter()
        .filter(|a| a.kind == ArtifactKind::FinalTranscript)
        .filter_map(|a| a.transcript_id)
        .collect();
    candidates.sort();
    candidates.dedup();
    let mut owners = known.transcripts;
    candidates.retain(|t| !owners.contains_key(t));
    if !candidates.is_empty() {
        owners.extend(
            backends
                .index
                .transcripts(&candidates)
                .await?
                .into_iter()
                .map(|t| (t.id, t)),
        );
    }
    let finals: Vec<(ArtifactId, TranscriptId, DeletionReason)> = claimed
        .iter()
        .filter(|a| {
            a.transcript_id
                .and_then(|t| owners.get(&t))
                .is_some_and(|t| t.status.is_terminal() && t.is_final(a))
        })
        .filter_map(|a| a.transcript_id.map(|t| (a.id, t, a.reason_for_deletion())))
        .collect();
    let winners: HashSet<ArtifactId> = finals.iter().map(|(id, _, _)| *id).collect();
    // Everything of these transcripts not deleted and not already in the batch: the
    // cascade's candidates, and what decides whether a transcript's data key may go.
    let mut remaining: Vec<Artifact> = Vec::new();
    if !finals.is_empty() {
        let transcript_ids: Vec<TranscriptId> = finals.iter().map(|(_, t, _)| *t).collect();
        remaining = match known.remaining {
            Some(remaining) => remaining,
            None => {
                backends
                    .index
                    .unfinished_artifacts_except(&transcript_ids, &batch)
                    .await?
            }
        };
        let mut by_reason: HashMap<DeletionReason, Vec<ArtifactId>> = HashMap::new();
        for (final_id, transcript_id, final_reason) in &finals {
            let linked: Vec<ArtifactId> = remaining
                .iter()
                .filter(|a| {
                    a.transcript_id == Some(*transcript_id)
                        && (a.schedule == ScheduleKind::Linked
                            || a.kind == ArtifactKind::FinalTranscript)
                })
                .map(|a| a.id)
                .collect();
            let reason = match final_reason {
                DeletionReason::CustomerRequest => DeletionReason::CustomerRequest,
                _ => DeletionReason::Linked,
            };
            by_reason
                .entry(reason)
                .or_default()
                .extend(linked.iter().copied());
            linked_of.insert(*final_id, linked);
        }
        let mut requested: HashMap<ArtifactId, DeletionReason> = HashMap::new();
        for (reason, ids) in by_reason {
            if !ids.is_empty() {
                backends.index.request_deletion(&ids, reason, now).await?;
                requested.extend(ids.into_iter().map(|id| (id, reason)));
            }
        }
        if !requested.is_empty() {
            // As they are now: requested, due at once (the first reason recorded wins).
            let linked: Vec<Artifact> = remaining
                .iter()
                .filter_map(|a| {
                    requested.get(&a.id).map(|reason| Artifact {
                        pending_reason: a.pending_reason.or(Some(*reason)),
                        due_at: Some(a.due_at.map_or(now, |d| d.min(now))),
                        ..a.clone()
                    })
                })
                .collect();
            claimed.extend(backends.index.claim_candidates(&linked, claim).await?);
        }
    }

    // Step 3: content. What step 5 will shred (as far as can be told before: whole scopes
    // if every deletion succeeds) is removed without a sync of its own; the key's
    // destruction is what makes it final.
    let claimed_ids: HashSet<ArtifactId> = claimed.iter().map(|a| a.id).collect();
    let shredding: HashSet<String> = claimed
        .iter()
        .filter(|a| takes_whole_scope(a, &winners, &remaining, &claimed_ids))
        .map(|a| crate::domain::content_scope(&a.content_key).to_owned())
        .collect();
    let (shred_batch, sync_batch): (Vec<Artifact>, Vec<Artifact>) = claimed
        .into_iter()
        .partition(|a| shredding.contains(crate::domain::content_scope(&a.content_key)));
    let keys = |batch: &[Artifact]| -> Vec<String> {
        batch.iter().map(|a| a.content_key.clone()).collect()
    };
    let (shred_keys, sync_keys) = (keys(&shred_batch), keys(&sync_batch));
    let (shred_results, sync_results) = futures::join!(
        async {
            match shred_keys.is_empty() {
                true => Vec::new(),
                false => backends.content.delete_many_shredded(&shred_keys).await,
            }
        },
        async {
            match sync_keys.is_empty() {
                true => Vec::new(),
                false => backends.content.delete_many(&sync_keys).await,
            }
        }
    );
    let mut gone = Vec::with_capacity(shred_batch.len() + sync_batch.len());
    let mut unsynced: Vec<Artifact> = Vec::new();
    for (artifact, result, shredded) in shred_batch
        .into_iter()
        .zip(shred_results)
        .map(|(a, r)| (a, r, true))
        .chain(
            sync_batch
                .into_iter()
                .zip(sync_results)
                .map(|(a, r)| (a, r, false)),
        )
    {
        match result {
            Ok(()) => {
                if shredded {
                    unsynced.push(artifact.clone());
                }
                gone.push(artifact)
            }
            Err(error) => {
                tracing::warn!(artifact_id = %artifact.id, error = %error, "content deletion failed; retried after the claim expires");
                outcome.failed.push((artifact.id, error));
            }
        }
    }
    // A final transcript waits for all of its linked artifacts this run claimed (one
    // another claim holds is that claim's to finish).
    let failed: HashSet<ArtifactId> = outcome.failed.iter().map(|(id, _)| *id).collect();
    gone.retain(|a| {
        let blocked = linked_of
            .get(&a.id)
            .is_some_and(|linked| linked.iter().any(|id| failed.contains(id)));
        !blocked
    });

    // Step 4: the transcripts read as deleted once their final transcripts are gone
    // (unless the caller marked them already).
    let deletions: Vec<(TranscriptId, TranscriptDeletion)> = gone
        .iter()
        .filter(|a| winners.contains(&a.id))
        .filter(|a| {
            a.transcript_id
                .and_then(|t| owners.get(&t))
                .is_none_or(|t| t.deletion.is_none())
        })
        .filter_map(|a| {
            a.transcript_id.map(|t| {
                (
                    t,
                    TranscriptDeletion {
                        at: now,
                        reason: a.reason_for_deletion(),
                    },
                )
            })
        })
        .collect();
    if !deletions.is_empty() {
        backends.index.mark_transcripts_deleted(&deletions).await?;
    }

    // Step 5: crypto-shredding. A transcript's scope is forgotten once its final
    // transcript went and nothing of it is left; an upload's (or a standalone LLM Gateway
    // request's or streaming session's) once it went.
    let gone_ids: HashSet<ArtifactId> = gone.iter().map(|a| a.id).collect();
    let mut scopes: Vec<&str> = Vec::new();
    let mut forgotten: HashSet<String> = HashSet::new();
    for a in &gone {
        let scope = crate::domain::content_scope(&a.content_key);
        if takes_whole_scope(a, &winners, &remaining, &gone_ids)
            && forgotten.insert(scope.to_owned())
        {
            scopes.push(scope);
        }
    }
    let scopes: Vec<String> = scopes.into_iter().map(str::to_owned).collect();
    // A scope expected to go that stays (something of it failed): the removals made
    // without a sync are made durable now, or their artifacts wait for the retry.
    let resync: Vec<String> = unsynced
        .iter()
        .filter(|a| !forgotten.contains(crate::domain::content_scope(&a.content_key)))
        .map(|a| a.content_key.clone())
        .collect();
    if !resync.is_empty() {
        let results = backends.content.delete_many(&resync).await;
        let failed: HashSet<&String> = resync
            .iter()
            .zip(&results)
            .filter(|(_, r)| r.is_err())
            .map(|(key, _)| key)
            .collect();
        if !failed.is_empty() {
            gone.retain(|a| !failed.contains(&a.content_key));
            for (key, result) in resync.iter().zip(results) {
                if let Err(error) = result {
                    if let Some(a) = unsynced.iter().find(|a| &a.content_key == key) {
                        outcome.failed.push((a.id, error));
                    }
                }
            }
        }
    }
    if !scopes.is_empty() {
        let scopes: Vec<&str> = scopes.iter().map(String::as_str).collect();
        backends.content.forget_scopes(&scopes).await?;
    }
    // Transcripts whose scope another deletion was still working on (a pass holding
    // the final transcript while this one held its linked artifacts, say): checked again
    // once this batch is finished, below, so that whichever finishes last forgets it.
    let mut recheck: Vec<TranscriptId> = gone
        .iter()
        .filter(|a| !forgotten.contains(crate::domain::content_scope(&a.content_key)))
        .filter_map(|a| a.transcript_id)
        .collect();
    recheck.sort();
    recheck.dedup();

    // Steps 6 and 7: tombstones (with the deletion events of accounts that asked for
    // them, in the same transaction), then the index.
    let mut tombstones: Vec<Tombstone> = gone
        .iter()
        .map(|a| Tombstone::for_artifact(a, now, &claim.owner))
        .collect();
    if !tombstones.is_empty() {
        let events =
            deletion_events(backends, &gone, &winners, known.account.as_ref(), now).await?;
        // A deletion redone after a crash keeps its first tombstone, and the index says
        // the same.
        tombstones = backends
            .audit
            .record_tombstones(&tombstones, &events)
            .await?;
        backends.index.finish(&tombstones).await?;
    }
    for t in &tombstones {
        tracing::debug!(artifact_id = %t.artifact_id, kind = %t.kind, reason = %t.reason, "artifact deleted");
    }
    metrics.record_deletions(&tombstones, outcome.failed.len());
    if !recheck.is_empty() {
        forget_emptied_scopes(backends, &recheck).await?;
    }
    outcome.deleted = tombstones;
    Ok(outcome)
}

/// Whether deleting `a` (with everything in `going`) takes its whole content scope, so
/// the scope's data key is destroyed: an upload's (or a standalone LLM Gateway request's
/// or streaming session's) own scope, or a transcript's once its own final transcript
/// goes and nothing else of it is left.
fn takes_whole_scope(
    a: &Artifact,
    winners: &HashSet<ArtifactId>,
    remaining: &[Artifact],
    going: &HashSet<ArtifactId>,
) -> bool {
    match a.kind {
        // Their own scope, like an upload's (`<account>/<id>/<id>`).
        ArtifactKind::UploadedAudio => true,
        ArtifactKind::LlmGatewayIo | ArtifactKind::StreamingSession => a.transcript_id.is_none(),
        ArtifactKind::FinalTranscript => {
            winners.contains(&a.id)
                && !remaining
                    .iter()
                    .any(|r| r.transcript_id == a.transcript_id && !going.contains(&r.id))
        }
        _ => false,
    }
}

/// Forgets the scope of each of `transcripts` that has nothing but deleted artifacts left.
/// (A crash before this leaves a key without content, which reconciliation destroys.)
async fn forget_emptied_scopes(
    backends: &Backends,
    transcripts: &[TranscriptId],
) -> Result<(), StorageError> {
    let artifacts = backends
        .index
        .artifacts_for_transcripts(transcripts)
        .await?;
    let mut scope_of: HashMap<TranscriptId, String> = HashMap::new();
    let mut live: HashSet<TranscriptId> = HashSet::new();
    for a in &artifacts {
        let Some(t) = a.transcript_id else { continue };
        scope_of
            .entry(t)
            .or_insert_with(|| crate::domain::content_scope(&a.content_key).to_owned());
        if a.state != crate::domain::ArtifactState::Deleted {
            live.insert(t);
        }
    }
    for (t, scope) in scope_of {
        if !live.contains(&t) {
            backends.content.forget_scope(&scope).await?;
        }
    }
    Ok(())
}

/// Seconds from `delete_after` to deletion, for scheduled (not requested) deletions.
pub fn lag_seconds(tombstone: &Tombstone) -> Option<f64> {
    match tombstone.reason {
        DeletionReason::Ttl | DeletionReason::Window => tombstone.delete_after.map(|after| {
            (tombstone.deleted_at - after)
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1e6
        }),
        _ => None,
    }
}
