//! The AWS profile's artifact index: transcripts and artifacts in one DynamoDB table.
//!
//! # Table design
//! Primary key `pk` + `sk` (strings). Every access pattern is a key lookup or a `Query`
//! on an index; nothing scans.
//!
//! | item | `pk` | `sk` | indexes it appears in |
//! |---|---|---|---|
//! | transcript | `T#<id>` | `T` | `g1` (`A#<account>`, id): listing; `g2` (`A#<account>#<status>`, id): status filter; `g3` (`A#<account>#D#<day>`, id): `created_on`; `g4` (`U#<shard>`, created): unfinished only (sparse) |
//! | artifact | `R#<id>` | `R` | `due` (`DUE#<day>#<shard>`, `<due_at>#<id>`): only while something is scheduled and not deleted (sparse); `acct` (`A#<account>`, id): only while not deleted (sparse); `train` (`TRAIN#<shard>`, id): only while eligible for model training, live and with no deletion requested (sparse) |
//! | due watermark | `META` | `DUE_LOW` | the oldest day bucket that may still hold due artifacts |
//! | due-day directory | `META` | `DUE_DAYS` | `days`: every day bucket at or past the watermark that may hold entries; `complete` once it covers the whole table |
//! | counters | `COUNT#<shard>` | `COUNT` | none: `c_<kind>` artifacts created, `d_<kind>` deleted (the tracked-artifact gauges) |
//!
//! A transcript item holds the set of its artifacts' ids (`artifact_ids`), added in the
//! same transaction that puts the artifact, so the artifacts of a transcript are read
//! with strongly consistent `BatchGetItem`s — a cascade never misses a just-written one.
//!
//! The `due` index is keyed by a day bucket and a write shard (`DUE_SHARDS`), so a sweep
//! reads only what is due, spread over partitions. A bucket is the later of the due day
//! and the day the entry was written, so an entry never lands behind the watermark. A
//! writer adds a bucket's day to the due-day directory before it writes the first entry
//! into it, so a pass reads only the days that may hold something: an instance left down
//! for months, or a clock moved ten years, costs one query per non-empty day, not one per
//! calendar day. (`lethe provision` builds the directory on a table that predates it,
//! with the only scan Lethe does; until then a pass reads every day from the watermark.)
//!
//! Every state transition is a conditional write (`TransactWriteItems` of up to 100
//! actions, falling back to single writes when a transaction is cancelled), so two
//! instances never both claim, delete or finish an artifact. `expires_at` is a DynamoDB
//! TTL attribute set 30 days past `delete_by` on live artifacts — a safety net only; it is
//! removed from tombstoned items, and Lethe never relies on it to delete anything.

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, AttributeValue, BillingMode, GlobalSecondaryIndex, KeySchemaElement,
    KeyType, KeysAndAttributes, Projection, ProjectionType, ReturnValue, ScalarAttributeType,
    TimeToLiveSpecification, TransactWriteItem, Update,
};
use chrono::{DateTime, Duration, NaiveDate, Utc};
use std::collections::HashMap;
use std::sync::Arc;

use super::codec::{from_micros, micros};

mod counters;
mod due;
mod item;
mod provision;

use super::{ArtifactIndex, Claim, Result, StorageError, TranscriptQuery};
use crate::domain::{
    AccountId, Artifact, ArtifactId, ArtifactKind, ArtifactState, DeletionReason, Schedule,
    ScheduleKind, Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus, HOLD_OWNER,
};
use counters::*;
use due::*;
use item::*;

const BACKEND: &str = "dynamodb";
/// The table's global secondary indexes: (name, partition key, sort key), all string keys
/// projecting every attribute. `lethe provision` and `localstack/init` create exactly these.
pub const INDEXES: &[(&str, &str, &str)] = &[
    ("g1", "g1pk", "g1sk"),
    ("g2", "g2pk", "g2sk"),
    ("g3", "g3pk", "g3sk"),
    ("g4", "g4pk", "g4sk"),
    ("due", "dpk", "dsk"),
    ("acct", "apk", "ask"),
    ("train", "tpk", "tsk"),
];
/// The TTL attribute (a safety net only).
pub const TTL_ATTRIBUTE: &str = "expires_at";
/// Write shards of the `due` and unfinished-transcript indexes.
pub const DUE_SHARDS: u32 = 4;
const TRANSACT_LIMIT: usize = 100;
const BATCH_GET_LIMIT: usize = 100;
/// How long past `delete_by` the TTL safety net is set.
const TTL_SAFETY_MARGIN: Duration = Duration::days(30);

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
    counters: Arc<CounterBuffer>,
    /// Due-entry days this instance has already added to the directory.
    registered_days: Arc<std::sync::Mutex<std::collections::HashSet<NaiveDate>>>,
}

fn sdk_error<E, R>(error: SdkError<E, R>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::aws::sdk_error(BACKEND, error)
}

fn build_error(error: impl std::error::Error + Send + Sync + 'static) -> StorageError {
    StorageError::Other {
        backend: BACKEND,
        source: Box::new(error),
    }
}

fn corrupt(what: String) -> StorageError {
    StorageError::Other {
        backend: BACKEND,
        source: what.into(),
    }
}

// ---- attribute helpers ------------------------------------------------------------------

// ---- items ------------------------------------------------------------------------------

impl DynamoIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            counters: Arc::new(CounterBuffer {
                pending: std::sync::Mutex::new(HashMap::new()),
                flushed_at: std::sync::Mutex::new(std::time::Instant::now()),
            }),
            registered_days: Arc::default(),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Puts a new item; `Conflict { key: what }` if one exists under its key.
    async fn put_new(&self, item: Item, what: String) -> Result<()> {
        let out = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .send()
            .await;
        match out {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Err(StorageError::Conflict { key: what })
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn get(&self, key: Item) -> Result<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(out.item)
    }

    /// Strongly consistent reads of many items, 100 keys a request, unprocessed keys retried.
    async fn batch_get(&self, keys: Vec<Item>) -> Result<Vec<Item>> {
        let mut items = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(BATCH_GET_LIMIT) {
            let mut pending = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(chunk.to_vec()))
                    .consistent_read(true)
                    .build()
                    .map_err(build_error)?,
            );
            let mut attempt = 0u32;
            while let Some(request) = pending.take() {
                if attempt > 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(25 << attempt.min(6)))
                        .await;
                }
                attempt += 1;
                let out = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                if let Some(found) = out.responses.and_then(|mut r| r.remove(&self.table)) {
                    items.extend(found);
                }
                pending = out
                    .unprocessed_keys
                    .and_then(|mut u| u.remove(&self.table))
                    .filter(|k| !k.keys().is_empty());
                if attempt > 10 && pending.is_some() {
                    return Err(corrupt(
                        "BatchGetItem kept returning unprocessed keys".into(),
                    ));
                }
            }
        }
        Ok(items)
    }

    async fn update(&self, change: &Change) -> Result<Option<Item>> {
        let out = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(change.key.clone()))
            .update_expression(&change.update)
            .set_condition_expression(change.condition.clone())
            .set_expression_attribute_names(
                (!change.names.is_empty()).then(|| change.names.clone()),
            )
            .set_expression_attribute_values(
                (!change.values.is_empty()).then(|| change.values.clone()),
            )
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match out {
            Ok(out) => Ok(out.attributes),
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                Ok(None)
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    /// Puts a new artifact item; with a transcript, adds it to the transcript's set in
    /// the same transaction.
    async fn put_artifact(&self, a: &Artifact) -> Result<()> {
        if let (Some(due_at), false) = (a.due_at, a.state == ArtifactState::Deleted) {
            self.register_due_day(due_bucket(due_at, a.created_at))
                .await?;
        }
        let item = artifact_item(a, a.created_at);
        let conflict = || StorageError::Conflict {
            key: format!("artifact/{}", a.id),
        };
        match a.transcript_id {
            None => self.put_new(item, format!("artifact/{}", a.id)).await,
            Some(transcript) => {
                // The artifact and its membership in the transcript's set, atomically.
                let put = aws_sdk_dynamodb::types::Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(item))
                    .condition_expression("attribute_not_exists(pk)")
                    .build()
                    .map_err(build_error)?;
                // Never into a transcript marked deleted: its deletion has read (or is
                // reading) the set it deletes.
                let add = Change {
                    key: transcript_key(transcript),
                    update: "ADD artifact_ids :id".into(),
                    condition: Some(
                        "attribute_exists(pk) AND (attribute_not_exists(deleted_at) OR attribute_type(deleted_at, :null))".into(),
                    ),
                    names: HashMap::new(),
                    values: HashMap::from([
                        (":id".into(), AttributeValue::Ss(vec![a.id.to_string()])),
                        (":null".into(), s("NULL")),
                    ]),
                };
                let items = vec![
                    TransactWriteItem::builder().put(put).build(),
                    add.transact_item(&self.table)?,
                ];
                match self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                {
                    Ok(_) => Ok(()),
                    Err(SdkError::ServiceError(e))
                        if e.err().is_transaction_canceled_exception() =>
                    {
                        Err(conflict())
                    }
                    Err(e) => Err(sdk_error(e)),
                }
            }
        }
    }

    /// Applies conditional changes, 100 per transaction. A cancelled transaction (some
    /// condition failed, or a conflict) is redone change by change. Returns, per change,
    /// whether it was applied.
    async fn apply_all(&self, changes: &[Change]) -> Result<Vec<bool>> {
        let mut applied = Vec::with_capacity(changes.len());
        for chunk in changes.chunks(TRANSACT_LIMIT) {
            if chunk.len() == 1 {
                applied.push(self.update(&chunk[0]).await?.is_some());
                continue;
            }
            let items = chunk
                .iter()
                .map(|c| c.transact_item(&self.table))
                .collect::<Result<Vec<_>>>()?;
            match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => applied.extend(std::iter::repeat_n(true, chunk.len())),
                Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                    for change in chunk {
                        applied.push(self.update(change).await?.is_some());
                    }
                }
                Err(e) => return Err(sdk_error(e)),
            }
        }
        Ok(applied)
    }

    /// Reads a whole `Query`, page by page, until `limit` items pass `keep`.
    async fn query_all(
        &self,
        index: &str,
        condition: &str,
        values: Item,
        forward: bool,
        limit: usize,
        keep: impl Fn(&Item) -> bool,
    ) -> Result<Vec<Item>> {
        let mut items = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let out = self
                .client
                .query()
                .table_name(&self.table)
                .index_name(index)
                .key_condition_expression(condition)
                .set_expression_attribute_values(Some(values.clone()))
                .scan_index_forward(forward)
                .limit((limit - items.len()).clamp(1, 1000) as i32)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(sdk_error)?;
            for item in out.items.unwrap_or_default() {
                if keep(&item) {
                    items.push(item);
                    if items.len() >= limit {
                        return Ok(items);
                    }
                }
            }
            match out.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(items),
            }
        }
    }
}

fn claim_changes(ids: &[ArtifactId], claim: &Claim) -> Vec<Change> {
    ids.iter()
        .map(|id| Change {
            key: artifact_key(*id),
            update: "SET #state = :deleting, claimed_by = :owner, claimed_until = :until".into(),
            condition: Some(
                "attribute_exists(pk) AND #state <> :deleted AND due_at <= :now \
                 AND (attribute_not_exists(claimed_until) OR claimed_until <= :now)"
                    .into(),
            ),
            names: HashMap::from([("#state".into(), "state".into())]),
            values: HashMap::from([
                (":deleting".into(), s("deleting")),
                (":deleted".into(), s("deleted")),
                (":owner".into(), s(&claim.owner)),
                (":until".into(), n(micros(claim.until))),
                (":now".into(), n(micros(claim.now))),
            ]),
        })
        .collect()
}

#[async_trait]
impl ArtifactIndex for DynamoIndex {
    async fn insert_transcript(&self, t: &Transcript) -> Result<()> {
        let mut item = transcript_item(t);
        if !t.status.is_terminal() {
            item.insert("g4pk".into(), s(format!("U#{}", shard_of(&t.id))));
            item.insert(
                "g4sk".into(),
                s(format!("{}#{}", padded(t.created_at), t.id)),
            );
        }
        let Some(upload) = t.upload_id else {
            return self.put_new(item, format!("transcript/{}", t.id)).await;
        };
        // The upload item lists the transcripts made from it, in the same transaction.
        let put = aws_sdk_dynamodb::types::Put::builder()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(pk)")
            .build()
            .map_err(build_error)?;
        let add = Change {
            key: artifact_key(upload),
            update: "ADD transcript_ids :id".into(),
            condition: Some("attribute_exists(pk)".into()),
            names: HashMap::new(),
            values: HashMap::from([(":id".into(), AttributeValue::Ss(vec![t.id.to_string()]))]),
        };
        let items = vec![
            TransactWriteItem::builder().put(put).build(),
            add.transact_item(&self.table)?,
        ];
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e)) if e.err().is_transaction_canceled_exception() => {
                Err(StorageError::Conflict {
                    key: format!("transcript/{}", t.id),
                })
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn transcripts_for_upload(&self, upload: ArtifactId) -> Result<Vec<Transcript>> {
        let Some(item) = self.get(artifact_key(upload)).await? else {
            return Ok(Vec::new());
        };
        let ids: Vec<Item> = match item.get("transcript_ids") {
            Some(AttributeValue::Ss(ids)) => ids
                .iter()
                .filter_map(|id| uuid::Uuid::parse_str(id).ok())
                .map(transcript_key)
                .collect(),
            _ => Vec::new(),
        };
        let mut transcripts = self
            .batch_get(ids)
            .await?
            .iter()
            .map(transcript_from_item)
            .collect::<Result<Vec<_>>>()?;
        transcripts.sort_by_key(|t| t.id);
        Ok(transcripts)
    }

    async fn transcript(&self, id: TranscriptId) -> Result<Option<Transcript>> {
        self.get(transcript_key(id))
            .await?
            .as_ref()
            .map(transcript_from_item)
            .transpose()
    }

    async fn update_transcript(&self, t: &Transcript) -> Result<()> {
        let mut names = HashMap::new();
        let mut values = Item::new();
        let mut sets = Vec::new();
        let mut next = t.clone();
        next.revision = t.revision + 1;
        for (i, (key, value)) in transcript_attributes(&next).into_iter().enumerate() {
            names.insert(format!("#a{i}"), key);
            values.insert(format!(":v{i}"), value);
            sets.push(format!("#a{i} = :v{i}"));
        }
        // The sparse `g4` index holds what a sweep must still act on: unfinished
        // transcripts, and terminal ones not yet settled (again: a customer's deletion
        // unsettles a settled transcript until its artifacts' deletion is requested).
        if !(t.status.is_terminal() && t.settled) {
            values.insert(":g4pk".into(), s(format!("U#{}", shard_of(&t.id))));
            values.insert(
                ":g4sk".into(),
                s(format!("{}#{}", padded(t.created_at), t.id)),
            );
            sets.push("g4pk = :g4pk".into());
            sets.push("g4sk = :g4sk".into());
        }
        let mut update = format!("SET {}", sets.join(", "));
        if t.status.is_terminal() && t.settled {
            update.push_str(" REMOVE g4pk, g4sk");
        }
        names.insert("#rev".into(), "revision".into());
        values.insert(":expected".into(), n(t.revision));
        let change = Change {
            key: transcript_key(t.id),
            update,
            condition: Some("attribute_exists(pk) AND #rev = :expected".into()),
            names,
            values,
        };
        match self.update(&change).await? {
            Some(_) => Ok(()),
            None => Err(StorageError::Conflict {
                key: format!("transcript/{}", t.id),
            }),
        }
    }

    async fn mark_transcripts_deleted(
        &self,
        deletions: &[(TranscriptId, TranscriptDeletion)],
    ) -> Result<()> {
        let changes: Vec<Change> = deletions
            .iter()
            .map(|(id, deletion)| Change {
                key: transcript_key(*id),
                update: "SET deleted_at = :at, deletion_reason = :reason, revision = revision + :one".into(),
                condition: Some("attribute_exists(pk) AND (attribute_not_exists(deleted_at) OR attribute_type(deleted_at, :null))".into()),
                names: HashMap::new(),
                values: HashMap::from([
                    (":at".into(), n(micros(deletion.at))),
                    (":reason".into(), s(deletion.reason.as_str())),
                    (":one".into(), n(1)),
                    (":null".into(), s("NULL")),
                ]),
            })
            .collect();
        self.apply_all(&changes).await?;
        Ok(())
    }

    async fn list_transcripts(
        &self,
        account: AccountId,
        q: &TranscriptQuery,
    ) -> Result<Vec<Transcript>> {
        let (index, partition) = match (q.created_on, q.status) {
            (Some(day), _) => ("g3", format!("A#{account}#D#{day}")),
            (None, Some(status)) => ("g2", format!("A#{account}#{}", status.as_str())),
            (None, None) => ("g1", format!("A#{account}")),
        };
        let (pk, sk) = (format!("{index}pk"), format!("{index}sk"));
        let mut condition = format!("{pk} = :p");
        let mut values = HashMap::from([(":p".to_owned(), s(partition))]);
        match (q.before_id, q.after_id) {
            (Some(before), Some(after)) => {
                condition.push_str(&format!(" AND {sk} BETWEEN :lo AND :hi"));
                values.insert(":lo".into(), s(after.to_string()));
                values.insert(":hi".into(), s(before.to_string()));
            }
            (Some(before), None) => {
                condition.push_str(&format!(" AND {sk} < :hi"));
                values.insert(":hi".into(), s(before.to_string()));
            }
            (None, Some(after)) => {
                condition.push_str(&format!(" AND {sk} > :lo"));
                values.insert(":lo".into(), s(after.to_string()));
            }
            (None, None) => {}
        }
        let ascending = q.after_id.is_some() && q.before_id.is_none();
        let (before, after) = (
            q.before_id.map(|i| i.to_string()),
            q.after_id.map(|i| i.to_string()),
        );
        let status = q
            .status
            .filter(|_| q.created_on.is_some())
            .map(|s| s.as_str().to_owned());
        let items = self
            .query_all(
                index,
                &condition,
                values,
                ascending,
                q.limit as usize,
                |item| {
                    let id = opt_s(item, &sk).unwrap_or_default();
                    // BETWEEN is inclusive; the bounds themselves are excluded.
                    Some(&id) != before.as_ref()
                        && Some(&id) != after.as_ref()
                        && status
                            .as_ref()
                            .is_none_or(|st| opt_s(item, "status").as_ref() == Some(st))
                },
            )
            .await?;
        let mut transcripts = items
            .iter()
            .map(transcript_from_item)
            .collect::<Result<Vec<_>>>()?;
        if ascending {
            transcripts.reverse();
        }
        Ok(transcripts)
    }

    async fn stuck_transcripts(
        &self,
        created_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        let mut found = Vec::new();
        for shard in 0..DUE_SHARDS {
            let values = HashMap::from([
                (":p".into(), s(format!("U#{shard}"))),
                (":s".into(), s(padded(created_before))),
            ]);
            let items = self
                .query_all(
                    "g4",
                    "g4pk = :p AND g4sk < :s",
                    values,
                    true,
                    limit as usize,
                    |_| true,
                )
                .await?;
            for item in &items {
                found.push(transcript_from_item(item)?);
            }
        }
        found.retain(|t| !t.status.is_terminal());
        found.sort_by_key(|t| (t.created_at, t.id));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn unsettled_transcripts(
        &self,
        completed_before: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Transcript>> {
        let mut found = Vec::new();
        for shard in 0..DUE_SHARDS {
            let values = HashMap::from([(":p".into(), s(format!("U#{shard}")))]);
            let items = self
                .query_all("g4", "g4pk = :p", values, true, usize::MAX, |item| {
                    matches!(item.get("settled"), Some(AttributeValue::Bool(false)))
                })
                .await?;
            for item in &items {
                found.push(transcript_from_item(item)?);
            }
        }
        found.retain(|t| {
            t.status.is_terminal() && t.completed_at.is_some_and(|c| c < completed_before)
        });
        found.sort_by_key(|t| (t.completed_at, t.id));
        found.truncate(limit as usize);
        Ok(found)
    }

    async fn insert_artifact(&self, a: &Artifact) -> Result<()> {
        self.put_artifact(a).await?;
        self.count(HashMap::from([(format!("c_{}", a.kind), 1)]))
            .await;
        Ok(())
    }

    async fn artifact(&self, id: ArtifactId) -> Result<Option<Artifact>> {
        self.get(artifact_key(id))
            .await?
            .as_ref()
            .map(artifact_from_item)
            .transpose()
    }

    async fn set_artifact_size(&self, id: ArtifactId, size_bytes: i64) -> Result<()> {
        let change = Change {
            key: artifact_key(id),
            update: "SET size_bytes = :n".into(),
            // A deletion that claimed it meanwhile may have run before the content landed.
            condition: Some("attribute_exists(pk) AND #state = :live".into()),
            names: HashMap::from([("#state".into(), "state".into())]),
            values: HashMap::from([
                (":n".into(), n(size_bytes)),
                (":live".into(), s(ArtifactState::Live.as_str())),
            ]),
        };
        match self.update(&change).await? {
            Some(_) => Ok(()),
            None => Err(StorageError::Conflict {
                key: format!("artifact/{id} (no longer live)"),
            }),
        }
    }

    async fn remove_unconfirmed_artifact(&self, id: ArtifactId) -> Result<()> {
        let Some(artifact) = self.artifact(id).await? else {
            return Ok(());
        };
        // Only while live: one a deletion took meanwhile keeps its item for its tombstone
        // (and its place in the transcript's set, which the deletion reads).
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(artifact_key(id)))
            .condition_expression("#state = :live")
            .expression_attribute_names("#state", "state")
            .expression_attribute_values(":live", s(ArtifactState::Live.as_str()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await;
        let removed = match removed {
            Ok(removed) => removed,
            Err(SdkError::ServiceError(e)) if e.err().is_conditional_check_failed_exception() => {
                return Ok(());
            }
            Err(e) => return Err(sdk_error(e)),
        };
        if let Some(transcript) = artifact.transcript_id {
            let change = Change {
                key: transcript_key(transcript),
                update: "DELETE artifact_ids :id".into(),
                condition: Some("attribute_exists(pk)".into()),
                names: HashMap::new(),
                values: HashMap::from([(":id".into(), AttributeValue::Ss(vec![id.to_string()]))]),
            };
            self.update(&change).await?;
        }
        if removed.attributes.is_some_and(|old| !old.is_empty()) {
            self.count(HashMap::from([(format!("c_{}", artifact.kind), -1)]))
                .await;
        }
        Ok(())
    }

    async fn artifacts_for_transcripts(&self, ids: &[TranscriptId]) -> Result<Vec<Artifact>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let transcripts = self
            .batch_get(ids.iter().map(|id| transcript_key(*id)).collect())
            .await?;
        let mut artifact_ids: Vec<ArtifactId> = Vec::new();
        for item in &transcripts {
            if let Some(AttributeValue::Ss(set)) = item.get("artifact_ids") {
                for id in set {
                    artifact_ids.push(
                        uuid::Uuid::parse_str(id)
                            .map_err(|e| corrupt(format!("artifact_ids: {e}")))?,
                    );
                }
            }
        }
        let items = self
            .batch_get(artifact_ids.iter().map(|id| artifact_key(*id)).collect())
            .await?;
        let mut artifacts = items
            .iter()
            .map(artifact_from_item)
            .collect::<Result<Vec<_>>>()?;
        artifacts.sort_by_key(|a| a.id);
        Ok(artifacts)
    }

    async fn live_artifacts_for_account(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        let mut values = HashMap::from([(":p".to_owned(), s(format!("A#{account}")))]);
        let condition = match after {
            Some(after) => {
                values.insert(":a".into(), s(after.to_string()));
                "apk = :p AND ask > :a"
            }
            None => "apk = :p",
        };
        let items = self
            .query_all("acct", condition, values, true, limit as usize, |_| true)
            .await?;
        // The index is eventually consistent: read the items themselves.
        let keys = items
            .iter()
            .map(|i| get_s(i, "ask").map(|id| (id, i)))
            .collect::<Result<Vec<_>>>()?;
        let fresh = self
            .batch_get(
                keys.iter()
                    .filter_map(|(id, _)| uuid::Uuid::parse_str(id).ok())
                    .map(artifact_key)
                    .collect(),
            )
            .await?;
        let mut artifacts = fresh
            .iter()
            .map(artifact_from_item)
            .collect::<Result<Vec<_>>>()?;
        artifacts.retain(|a| a.state != ArtifactState::Deleted);
        artifacts.sort_by_key(|a| a.id);
        Ok(artifacts)
    }

    async fn training_eligible(
        &self,
        now: DateTime<Utc>,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        let limit = limit as usize;
        let eligible_at = |a: &Artifact| {
            a.state == ArtifactState::Live
                && a.training_eligible
                && a.pending_reason.is_none()
                && a.delete_after.is_none_or(|after| after > now)
        };
        let mut cursor = after.map(|a| a.to_string()).unwrap_or_default();
        let mut page: Vec<Artifact> = Vec::new();
        loop {
            // The next `limit` ids over every shard, merged in id order.
            let mut ids: Vec<String> = Vec::new();
            for shard in 0..DUE_SHARDS {
                let mut values = HashMap::from([(":p".to_owned(), s(format!("TRAIN#{shard}")))]);
                let condition = if cursor.is_empty() {
                    "tpk = :p"
                } else {
                    values.insert(":a".to_owned(), s(cursor.clone()));
                    "tpk = :p AND tsk > :a"
                };
                let keep = |item: &Item| artifact_from_item(item).is_ok_and(|a| eligible_at(&a));
                for item in self
                    .query_all("train", condition, values, true, limit, keep)
                    .await?
                {
                    ids.push(get_s(&item, "tsk")?);
                }
            }
            ids.sort();
            ids.truncate(limit);
            let Some(last) = ids.last().cloned() else {
                return Ok(page);
            };
            // The index is eventually consistent: read the items themselves, so a deletion
            // requested a moment ago already hides the artifact.
            let keys = ids
                .iter()
                .filter_map(|id| uuid::Uuid::parse_str(id).ok())
                .map(artifact_key)
                .collect();
            let mut fresh = self
                .batch_get(keys)
                .await?
                .iter()
                .map(artifact_from_item)
                .collect::<Result<Vec<_>>>()?;
            fresh.retain(eligible_at);
            fresh.sort_by_key(|a| a.id);
            page.extend(fresh);
            if page.len() >= limit || ids.len() < limit {
                page.truncate(limit);
                return Ok(page);
            }
            cursor = last;
        }
    }

    async fn reschedule(
        &self,
        id: ArtifactId,
        schedule: &Schedule,
        policy_version: i64,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let mut values = HashMap::from([
            (":schedule".to_owned(), s(schedule.kind.as_str())),
            (":version".to_owned(), n(policy_version)),
            (":live".to_owned(), s("live")),
        ]);
        let mut sets = vec!["schedule = :schedule", "policy_version = :version"];
        let mut removes = Vec::new();
        match (schedule.delete_after, schedule.delete_by) {
            (Some(after), by) => {
                self.register_due_day(due_bucket(after, now)).await?;
                let (dpk, dsk) = due_keys(id, after, now);
                values.insert(":after".into(), n(micros(after)));
                values.insert(":dpk".into(), dpk);
                values.insert(":dsk".into(), dsk);
                sets.extend([
                    "delete_after = :after",
                    "due_at = :after",
                    "dpk = :dpk",
                    "dsk = :dsk",
                ]);
                match by {
                    Some(by) => {
                        values.insert(":by".into(), n(micros(by)));
                        values.insert(":expires".into(), n((by + TTL_SAFETY_MARGIN).timestamp()));
                        sets.extend(["delete_by = :by", "expires_at = :expires"]);
                    }
                    None => removes.extend(["delete_by", "expires_at"]),
                }
            }
            (None, _) => removes.extend([
                "delete_after",
                "delete_by",
                "due_at",
                "dpk",
                "dsk",
                "expires_at",
            ]),
        }
        let mut update = format!("SET {}", sets.join(", "));
        if !removes.is_empty() {
            update.push_str(&format!(" REMOVE {}", removes.join(", ")));
        }
        let change = Change {
            key: artifact_key(id),
            update,
            condition: Some("#state = :live AND attribute_not_exists(pending_reason)".into()),
            names: HashMap::from([("#state".into(), "state".into())]),
            values,
        };
        Ok(self.update(&change).await?.is_some())
    }

    async fn request_deletion(
        &self,
        ids: &[ArtifactId],
        reason: DeletionReason,
        now: DateTime<Utc>,
    ) -> Result<()> {
        if !ids.is_empty() {
            self.register_due_day(due_bucket(now, now)).await?;
        }
        let changes: Vec<Change> = ids
            .iter()
            .map(|id| {
                let (dpk, dsk) = due_keys(*id, now, now);
                Change {
                    key: artifact_key(*id),
                    update: "SET pending_reason = if_not_exists(pending_reason, :reason), due_at = :now, dpk = :dpk, dsk = :dsk \
                             REMOVE tpk, tsk"
                        .into(),
                    condition: Some("attribute_exists(pk) AND #state <> :deleted".into()),
                    names: HashMap::from([("#state".into(), "state".into())]),
                    values: HashMap::from([
                        (":reason".into(), s(reason.as_str())),
                        (":now".into(), n(micros(now))),
                        (":dpk".into(), dpk),
                        (":dsk".into(), dsk),
                        (":deleted".into(), s("deleted")),
                    ]),
                }
            })
            .collect();
        self.apply_all(&changes).await?;
        Ok(())
    }

    async fn due(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        let items = self
            .due_entries(now, now, limit as usize, not_claimed_by_others(now))
            .await?;
        items.iter().map(artifact_from_item).collect()
    }

    async fn next_due(&self, now: DateTime<Utc>) -> Result<Option<DateTime<Utc>>> {
        // Anything due by the end of tomorrow; later deadlines are found by a later call.
        let horizon = now + Duration::days(2);
        let low = self.due_low(now).await?;
        let keep = not_claimed_by_others(now);
        let mut earliest: Option<DateTime<Utc>> = None;
        for bucket in self.due_days(low, day(horizon)).await? {
            for shard in 0..DUE_SHARDS {
                let values = HashMap::from([(":p".into(), s(format!("DUE#{bucket}#{shard}")))]);
                let first = self
                    .query_all("due", "dpk = :p", values, true, 1, keep)
                    .await?;
                if let Some(due) = first
                    .first()
                    .map(|i| opt_ts(i, "due_at"))
                    .transpose()?
                    .flatten()
                {
                    earliest = Some(earliest.map_or(due, |e: DateTime<Utc>| e.min(due)));
                }
            }
            if earliest.is_some() {
                break;
            }
        }
        Ok(earliest)
    }

    async fn overdue(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Artifact>> {
        let now_us = micros(now);
        let items = self
            .due_entries(now, now, limit as usize, move |item| {
                opt_n(item, "delete_by")
                    .ok()
                    .flatten()
                    .is_some_and(|by| by < now_us)
            })
            .await?;
        let mut artifacts = items
            .iter()
            .map(artifact_from_item)
            .collect::<Result<Vec<_>>>()?;
        artifacts.sort_by_key(|a| a.delete_by);
        Ok(artifacts)
    }

    async fn flush(&self) {
        self.flush_counters().await;
    }

    /// From the sharded counters (one `BatchGetItem`): artifacts being deleted are counted
    /// as `live` until their deletion finishes.
    async fn count_by_kind_and_state(&self) -> Result<Vec<(ArtifactKind, ArtifactState, u64)>> {
        // This instance's own deltas are exact; other instances' are at most a minute old.
        self.flush_counters().await;
        let shards = self
            .batch_get((0..COUNTER_SHARDS).map(counter_key).collect())
            .await?;
        let sum = |attribute: String| -> i64 {
            shards
                .iter()
                .filter_map(|item| match item.get(&attribute) {
                    Some(AttributeValue::N(v)) => v.parse::<i64>().ok(),
                    _ => None,
                })
                .sum()
        };
        let mut counts = Vec::new();
        for kind in ArtifactKind::ALL {
            let created = sum(format!("c_{kind}"));
            let deleted = sum(format!("d_{kind}"));
            counts.push((
                *kind,
                ArtifactState::Live,
                (created - deleted).max(0) as u64,
            ));
            counts.push((*kind, ArtifactState::Deleted, deleted.max(0) as u64));
        }
        Ok(counts)
    }

    async fn claim(&self, ids: &[ArtifactId], claim: &Claim) -> Result<Vec<Artifact>> {
        let applied = self.apply_all(&claim_changes(ids, claim)).await?;
        let won: Vec<Item> = ids
            .iter()
            .zip(applied)
            .filter(|(_, ok)| *ok)
            .map(|(id, _)| artifact_key(*id))
            .collect();
        let items = self.batch_get(won).await?;
        let mut claimed = items
            .iter()
            .map(artifact_from_item)
            .collect::<Result<Vec<_>>>()?;
        // Only what this claim holds (a fallback single write may have raced).
        claimed.retain(|a| {
            a.claimed_by.as_deref() == Some(claim.owner.as_str())
                && a.state == ArtifactState::Deleting
        });
        Ok(claimed)
    }

    async fn park(&self, ids: &[ArtifactId], claim: &Claim, until: DateTime<Utc>) -> Result<()> {
        let changes: Vec<Change> = ids
            .iter()
            .map(|id| Change {
                key: artifact_key(*id),
                update: "SET #state = :live, claimed_by = :hold, claimed_until = :until".into(),
                condition: Some("claimed_by = :owner AND #state = :deleting".into()),
                names: HashMap::from([("#state".into(), "state".into())]),
                values: HashMap::from([
                    (":live".into(), s("live")),
                    (":deleting".into(), s("deleting")),
                    (":hold".into(), s(HOLD_OWNER)),
                    (":owner".into(), s(&claim.owner)),
                    (":until".into(), n(micros(until))),
                ]),
            })
            .collect();
        self.apply_all(&changes).await?;
        Ok(())
    }

    async fn unpark(&self, ids: &[ArtifactId]) -> Result<()> {
        let changes: Vec<Change> = ids
            .iter()
            .map(|id| Change {
                key: artifact_key(*id),
                update: "REMOVE claimed_by, claimed_until".into(),
                condition: Some("claimed_by = :hold AND #state = :live".into()),
                names: HashMap::from([("#state".into(), "state".into())]),
                values: HashMap::from([
                    (":live".into(), s("live")),
                    (":hold".into(), s(HOLD_OWNER)),
                ]),
            })
            .collect();
        self.apply_all(&changes).await?;
        Ok(())
    }

    async fn claim_candidates(
        &self,
        candidates: &[Artifact],
        claim: &Claim,
    ) -> Result<Vec<Artifact>> {
        let ids: Vec<ArtifactId> = candidates.iter().map(|a| a.id).collect();
        let applied = self.apply_all(&claim_changes(&ids, claim)).await?;
        // An applied conditional write means the item was as read, plus the claim.
        Ok(candidates
            .iter()
            .zip(applied)
            .filter(|(_, ok)| *ok)
            .map(|(a, _)| Artifact {
                state: ArtifactState::Deleting,
                claimed_by: Some(claim.owner.clone()),
                claimed_until: Some(claim.until),
                ..a.clone()
            })
            .collect())
    }

    async fn unfinished_artifacts_except(
        &self,
        transcripts: &[TranscriptId],
        known: &std::collections::HashSet<ArtifactId>,
    ) -> Result<Vec<Artifact>> {
        let items = self
            .batch_get(transcripts.iter().map(|id| transcript_key(*id)).collect())
            .await?;
        let mut unknown = Vec::new();
        for item in &items {
            if let Some(AttributeValue::Ss(set)) = item.get("artifact_ids") {
                for id in set {
                    let id = uuid::Uuid::parse_str(id)
                        .map_err(|e| corrupt(format!("artifact_ids: {e}")))?;
                    if !known.contains(&id) {
                        unknown.push(artifact_key(id));
                    }
                }
            }
        }
        let items = self.batch_get(unknown).await?;
        let mut artifacts = items
            .iter()
            .map(artifact_from_item)
            .collect::<Result<Vec<_>>>()?;
        artifacts.retain(|a| a.state != ArtifactState::Deleted);
        Ok(artifacts)
    }

    async fn finish(&self, tombstones: &[crate::domain::Tombstone]) -> Result<()> {
        let changes: Vec<Change> = tombstones
            .iter()
            .map(|t| Change {
                key: artifact_key(t.artifact_id),
                update: "SET #state = :deleted, deleted_at = :at, deletion_reason = :reason, training_eligible = :no \
                         REMOVE due_at, dpk, dsk, apk, ask, tpk, tsk, claimed_by, claimed_until, expires_at"
                    .into(),
                condition: Some("attribute_exists(pk) AND #state <> :deleted".into()),
                names: HashMap::from([("#state".into(), "state".into())]),
                values: HashMap::from([
                    (":deleted".into(), s("deleted")),
                    (":at".into(), n(micros(t.deleted_at))),
                    (":reason".into(), s(t.reason.as_str())),
                    (":no".into(), b(false)),
                ]),
            })
            .collect();
        let applied = self.apply_all(&changes).await?;
        let mut deleted: HashMap<String, i64> = HashMap::new();
        for (t, _) in tombstones.iter().zip(applied).filter(|(_, ok)| *ok) {
            *deleted.entry(format!("d_{}", t.kind)).or_default() += 1;
        }
        self.count(deleted).await;
        Ok(())
    }
}
