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
//! | counters | `COUNT#<shard>` | `COUNT` | none: `c_<kind>` artifacts created, `d_<kind>` deleted (the tracked-artifact gauges) |
//!
//! A transcript item holds the set of its artifacts' ids (`artifact_ids`), added in the
//! same transaction that puts the artifact, so the artifacts of a transcript are read
//! with strongly consistent `BatchGetItem`s — a cascade never misses a just-written one.
//!
//! The `due` index is keyed by a day bucket and a write shard (`DUE_SHARDS`), so a sweep
//! reads only what is due, spread over partitions. A bucket is the later of the due day
//! and the day the entry was written, so an entry never lands behind the watermark.
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
use super::{ArtifactIndex, Claim, Result, StorageError, TranscriptQuery};
use crate::domain::{
    AccountId, Artifact, ArtifactId, ArtifactKind, ArtifactState, DeletionReason, Schedule,
    ScheduleKind, Transcript, TranscriptDeletion, TranscriptId, TranscriptStatus,
};

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
/// Shards of the artifact counters, so no one item takes every write.
const COUNTER_SHARDS: u32 = 16;
/// How long counter deltas may wait in memory before they are written.
const COUNTER_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);
const TRANSACT_LIMIT: usize = 100;
const BATCH_GET_LIMIT: usize = 100;
/// How far back a missing due-index watermark starts (tables provisioned before it
/// existed): farther than any entry can lie, since the TTL safety net removes items 30
/// days past their deadline.
const WATERMARK_BACKFILL: Duration = Duration::days(40);
/// How far behind this instance's clock the watermark always stays (clock skew between
/// instances).
const WATERMARK_SKEW: Duration = Duration::minutes(10);
/// How long past `delete_by` the TTL safety net is set.
const TTL_SAFETY_MARGIN: Duration = Duration::days(30);

type Item = HashMap<String, AttributeValue>;

#[derive(Clone, Debug)]
pub struct DynamoIndex {
    client: aws_sdk_dynamodb::Client,
    table: String,
    counters: Arc<CounterBuffer>,
}

/// Artifact-counter deltas not yet written: added to on every insert and deletion and
/// written as one `UpdateItem` at most once per `COUNTER_FLUSH_INTERVAL`, so the gauges
/// cost about one request a minute per instance instead of one per write.
#[derive(Debug)]
struct CounterBuffer {
    pending: std::sync::Mutex<HashMap<String, i64>>,
    flushed_at: std::sync::Mutex<std::time::Instant>,
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

fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}
fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}
fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}
fn padded(t: DateTime<Utc>) -> String {
    format!("{:020}", micros(t).max(0))
}
fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}
fn shard_of(id: &uuid::Uuid) -> u32 {
    (id.as_u128() % u128::from(DUE_SHARDS)) as u32
}
fn transcript_key(id: TranscriptId) -> Item {
    HashMap::from([("pk".into(), s(format!("T#{id}"))), ("sk".into(), s("T"))])
}
fn artifact_key(id: ArtifactId) -> Item {
    HashMap::from([("pk".into(), s(format!("R#{id}"))), ("sk".into(), s("R"))])
}
fn counter_key(shard: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("COUNT#{shard}"))),
        ("sk".into(), s("COUNT")),
    ])
}
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
fn meta_key() -> Item {
    HashMap::from([("pk".into(), s("META")), ("sk".into(), s("DUE_LOW"))])
}

fn get_s(item: &Item, key: &str) -> Result<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(corrupt(format!(
            "{key}: expected a string, found {other:?}"
        ))),
    }
}
fn opt_s(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}
fn opt_n(item: &Item, key: &str) -> Result<Option<i64>> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|e| corrupt(format!("{key}: {e}"))),
        None | Some(AttributeValue::Null(_)) => Ok(None),
        other => Err(corrupt(format!(
            "{key}: expected a number, found {other:?}"
        ))),
    }
}
fn get_n(item: &Item, key: &str) -> Result<i64> {
    opt_n(item, key)?.ok_or_else(|| corrupt(format!("{key}: missing")))
}
fn opt_f(item: &Item, key: &str) -> Result<Option<f64>> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|e| corrupt(format!("{key}: {e}"))),
        _ => Ok(None),
    }
}
fn get_bool(item: &Item, key: &str) -> bool {
    matches!(item.get(key), Some(AttributeValue::Bool(true)))
}
fn opt_ts(item: &Item, key: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(opt_n(item, key)?.map(from_micros))
}
fn get_uuid(item: &Item, key: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(&get_s(item, key)?).map_err(|e| corrupt(format!("{key}: {e}")))
}
fn opt_uuid(item: &Item, key: &str) -> Result<Option<uuid::Uuid>> {
    opt_s(item, key)
        .map(|v| uuid::Uuid::parse_str(&v).map_err(|e| corrupt(format!("{key}: {e}"))))
        .transpose()
}
fn parse_enum<T>(item: &Item, key: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let v = get_s(item, key)?;
    parse(&v).ok_or_else(|| corrupt(format!("{key}: unknown value {v:?}")))
}
fn opt_enum<T>(item: &Item, key: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    opt_s(item, key)
        .map(|v| parse(&v).ok_or_else(|| corrupt(format!("{key}: unknown value {v:?}"))))
        .transpose()
}

// ---- items ------------------------------------------------------------------------------

fn transcript_item(t: &Transcript) -> Item {
    let mut item = transcript_key(t.id);
    item.extend(transcript_attributes(t));
    item
}

/// Every attribute of a transcript but its key and `artifact_ids`, index keys included.
fn transcript_attributes(t: &Transcript) -> Item {
    let mut item: Item = HashMap::new();
    item.insert("account_id".into(), s(t.account_id.to_string()));
    item.insert("status".into(), s(t.status.as_str()));
    item.insert("created_at".into(), n(micros(t.created_at)));
    item.insert("options".into(), s(t.options.to_string()));
    item.insert("webhook_auth".into(), b(t.webhook_auth));
    item.insert("policy_version".into(), n(t.policy_version));
    item.insert("revision".into(), n(t.revision));
    let optional = [
        ("completed_at", t.completed_at.map(|v| n(micros(v)))),
        ("upload_id", t.upload_id.map(|v| s(v.to_string()))),
        (
            "audio_duration",
            t.audio_duration.map(|v| AttributeValue::N(v.to_string())),
        ),
        ("error", t.error.clone().map(s)),
        ("delete_after", t.delete_after.map(|v| n(micros(v)))),
        ("delete_by", t.delete_by.map(|v| n(micros(v)))),
        ("deleted_at", t.deletion.map(|d| n(micros(d.at)))),
        ("deletion_reason", t.deletion.map(|d| s(d.reason.as_str()))),
        (
            "final_artifact_id",
            t.final_artifact_id.map(|v| s(v.to_string())),
        ),
    ];
    item.insert("settled".into(), b(t.settled));
    for (key, value) in optional {
        item.insert(key.into(), value.unwrap_or(AttributeValue::Null(true)));
    }
    let id = t.id.to_string();
    item.insert("g1pk".into(), s(format!("A#{}", t.account_id)));
    item.insert("g1sk".into(), s(&id));
    item.insert(
        "g2pk".into(),
        s(format!("A#{}#{}", t.account_id, t.status.as_str())),
    );
    item.insert("g2sk".into(), s(&id));
    item.insert(
        "g3pk".into(),
        s(format!("A#{}#D#{}", t.account_id, day(t.created_at))),
    );
    item.insert("g3sk".into(), s(&id));
    item
}

fn transcript_from_item(item: &Item) -> Result<Transcript> {
    let deletion = match (
        opt_ts(item, "deleted_at")?,
        opt_enum(item, "deletion_reason", DeletionReason::parse)?,
    ) {
        (Some(at), Some(reason)) => Some(TranscriptDeletion { at, reason }),
        _ => None,
    };
    Ok(Transcript {
        id: uuid::Uuid::parse_str(get_s(item, "pk")?.trim_start_matches("T#"))
            .map_err(|e| corrupt(format!("pk: {e}")))?,
        account_id: get_uuid(item, "account_id")?,
        status: parse_enum(item, "status", TranscriptStatus::parse)?,
        created_at: from_micros(get_n(item, "created_at")?),
        completed_at: opt_ts(item, "completed_at")?,
        upload_id: opt_uuid(item, "upload_id")?,
        options: serde_json::from_str(&get_s(item, "options")?)
            .map_err(|e| corrupt(format!("options: {e}")))?,
        webhook_auth: get_bool(item, "webhook_auth"),
        audio_duration: opt_f(item, "audio_duration")?,
        error: opt_s(item, "error"),
        policy_version: get_n(item, "policy_version")?,
        delete_after: opt_ts(item, "delete_after")?,
        delete_by: opt_ts(item, "delete_by")?,
        deletion,
        final_artifact_id: opt_uuid(item, "final_artifact_id")?,
        // Items written before the field existed were settled when they were written.
        settled: item
            .get("settled")
            .is_none_or(|v| matches!(v, AttributeValue::Bool(true))),
        revision: get_n(item, "revision")?,
    })
}

fn due_keys(
    id: ArtifactId,
    due_at: DateTime<Utc>,
    written_at: DateTime<Utc>,
) -> (AttributeValue, AttributeValue) {
    let bucket = day(due_at.max(written_at));
    (
        s(format!("DUE#{bucket}#{}", shard_of(&id))),
        s(format!("{}#{id}", padded(due_at))),
    )
}

fn artifact_item(a: &Artifact, written_at: DateTime<Utc>) -> Item {
    let mut item = artifact_key(a.id);
    item.insert("account_id".into(), s(a.account_id.to_string()));
    item.insert("kind".into(), s(a.kind.as_str()));
    item.insert("state".into(), s(a.state.as_str()));
    item.insert("created_at".into(), n(micros(a.created_at)));
    item.insert("schedule".into(), s(a.schedule.as_str()));
    item.insert("policy_version".into(), n(a.policy_version));
    item.insert("created_version".into(), n(a.created_version));
    item.insert("size_bytes".into(), n(a.size_bytes));
    item.insert("content_key".into(), s(&a.content_key));
    item.insert("training_eligible".into(), b(a.training_eligible));
    let optional = [
        ("transcript_id", a.transcript_id.map(|v| s(v.to_string()))),
        ("name", a.name.clone().map(s)),
        ("anchor_at", a.anchor_at.map(|v| n(micros(v)))),
        ("delete_after", a.delete_after.map(|v| n(micros(v)))),
        ("delete_by", a.delete_by.map(|v| n(micros(v)))),
        ("due_at", a.due_at.map(|v| n(micros(v)))),
        ("pending_reason", a.pending_reason.map(|v| s(v.as_str()))),
        ("claimed_by", a.claimed_by.clone().map(s)),
        ("claimed_until", a.claimed_until.map(|v| n(micros(v)))),
        ("deleted_at", a.deleted_at.map(|v| n(micros(v)))),
        ("deletion_reason", a.deletion_reason.map(|v| s(v.as_str()))),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            item.insert(key.into(), value);
        }
    }
    if a.state != ArtifactState::Deleted {
        item.insert("apk".into(), s(format!("A#{}", a.account_id)));
        item.insert("ask".into(), s(a.id.to_string()));
        if let Some(due_at) = a.due_at {
            let (dpk, dsk) = due_keys(a.id, due_at, written_at);
            item.insert("dpk".into(), dpk);
            item.insert("dsk".into(), dsk);
        }
        if let Some(by) = a.delete_by {
            item.insert("expires_at".into(), n((by + TTL_SAFETY_MARGIN).timestamp()));
        }
        if a.training_eligible && a.pending_reason.is_none() {
            item.insert("tpk".into(), s(format!("TRAIN#{}", shard_of(&a.id))));
            item.insert("tsk".into(), s(a.id.to_string()));
        }
    }
    item
}

fn artifact_from_item(item: &Item) -> Result<Artifact> {
    Ok(Artifact {
        id: uuid::Uuid::parse_str(get_s(item, "pk")?.trim_start_matches("R#"))
            .map_err(|e| corrupt(format!("pk: {e}")))?,
        account_id: get_uuid(item, "account_id")?,
        transcript_id: opt_uuid(item, "transcript_id")?,
        kind: parse_enum(item, "kind", ArtifactKind::parse)?,
        name: opt_s(item, "name"),
        state: parse_enum(item, "state", ArtifactState::parse)?,
        created_at: from_micros(get_n(item, "created_at")?),
        anchor_at: opt_ts(item, "anchor_at")?,
        schedule: parse_enum(item, "schedule", ScheduleKind::parse)?,
        delete_after: opt_ts(item, "delete_after")?,
        delete_by: opt_ts(item, "delete_by")?,
        due_at: opt_ts(item, "due_at")?,
        policy_version: get_n(item, "policy_version")?,
        created_version: match opt_n(item, "created_version")? {
            Some(v) => v,
            None => get_n(item, "policy_version")?,
        },
        size_bytes: get_n(item, "size_bytes")?,
        content_key: get_s(item, "content_key")?,
        training_eligible: get_bool(item, "training_eligible"),
        pending_reason: opt_enum(item, "pending_reason", DeletionReason::parse)?,
        claimed_by: opt_s(item, "claimed_by"),
        claimed_until: opt_ts(item, "claimed_until")?,
        deleted_at: opt_ts(item, "deleted_at")?,
        deletion_reason: opt_enum(item, "deletion_reason", DeletionReason::parse)?,
    })
}

/// One conditional update, usable alone or inside a transaction.
#[derive(Clone, Debug)]
struct Change {
    key: Item,
    update: String,
    condition: Option<String>,
    names: HashMap<String, String>,
    values: Item,
}

impl Change {
    fn transact_item(&self, table: &str) -> Result<TransactWriteItem> {
        let update = Update::builder()
            .table_name(table)
            .set_key(Some(self.key.clone()))
            .update_expression(&self.update)
            .set_condition_expression(self.condition.clone())
            .set_expression_attribute_names((!self.names.is_empty()).then(|| self.names.clone()))
            .set_expression_attribute_values((!self.values.is_empty()).then(|| self.values.clone()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }
}

fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(build_error)
}

fn key_schema(hash: &str, range: &str) -> Result<Vec<KeySchemaElement>> {
    Ok(vec![
        KeySchemaElement::builder()
            .attribute_name(hash)
            .key_type(KeyType::Hash)
            .build()
            .map_err(build_error)?,
        KeySchemaElement::builder()
            .attribute_name(range)
            .key_type(KeyType::Range)
            .build()
            .map_err(build_error)?,
    ])
}

fn project_all() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

impl DynamoIndex {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        Self {
            client,
            table: table.into(),
            counters: Arc::new(CounterBuffer {
                pending: std::sync::Mutex::new(HashMap::new()),
                flushed_at: std::sync::Mutex::new(std::time::Instant::now()),
            }),
        }
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Creates the table with its indexes and enables the TTL safety net, idempotently. On
    /// a table made by an earlier version it adds the indexes it lacks, one at a time.
    pub async fn provision(&self, now: DateTime<Utc>) -> Result<()> {
        let exists = match self
            .client
            .describe_table()
            .table_name(&self.table)
            .send()
            .await
        {
            Ok(_) => true,
            Err(SdkError::ServiceError(e)) if e.err().is_resource_not_found_exception() => false,
            Err(e) => return Err(sdk_error(e)),
        };
        if !exists {
            let mut attributes = vec![string_attribute("pk")?, string_attribute("sk")?];
            let mut indexes = Vec::new();
            for (name, hash, range) in INDEXES {
                attributes.push(string_attribute(hash)?);
                attributes.push(string_attribute(range)?);
                indexes.push(
                    GlobalSecondaryIndex::builder()
                        .index_name(*name)
                        .set_key_schema(Some(key_schema(hash, range)?))
                        .projection(project_all())
                        .build()
                        .map_err(build_error)?,
                );
            }
            let created = self
                .client
                .create_table()
                .table_name(&self.table)
                .billing_mode(BillingMode::PayPerRequest)
                .set_attribute_definitions(Some(attributes))
                .set_key_schema(Some(key_schema("pk", "sk")?))
                .set_global_secondary_indexes(Some(indexes))
                .send()
                .await;
            match created {
                Ok(_) => {}
                Err(SdkError::ServiceError(e)) if e.err().is_resource_in_use_exception() => {}
                Err(e) => return Err(sdk_error(e)),
            }
        }
        let mut present = self
            .wait_until_active(std::time::Duration::from_secs(120))
            .await?;
        for (name, hash, range) in INDEXES {
            if present.iter().any(|p| p == name) {
                continue;
            }
            tracing::info!(table = %self.table, index = name, "adding a missing index; DynamoDB backfills it from existing items, which can take minutes on a large table");
            let create = aws_sdk_dynamodb::types::CreateGlobalSecondaryIndexAction::builder()
                .index_name(*name)
                .set_key_schema(Some(key_schema(hash, range)?))
                .projection(project_all())
                .build()
                .map_err(build_error)?;
            self.client
                .update_table()
                .table_name(&self.table)
                .set_attribute_definitions(Some(vec![
                    string_attribute(hash)?,
                    string_attribute(range)?,
                ]))
                .global_secondary_index_updates(
                    aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                        .create(create)
                        .build(),
                )
                .send()
                .await
                .map_err(sdk_error)?;
            // Backfilling a large table can take long; a rerun resumes the wait.
            present = self
                .wait_until_active(std::time::Duration::from_secs(3600))
                .await?;
        }
        let ttl = self
            .client
            .describe_time_to_live()
            .table_name(&self.table)
            .send()
            .await
            .map_err(sdk_error)?;
        let enabled = ttl
            .time_to_live_description()
            .and_then(|d| d.time_to_live_status())
            .is_some_and(|s| {
                matches!(
                    s,
                    aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                        | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
                )
            });
        // The due-index watermark starts today: every entry is written at or after it.
        self.create_due_low(day(now)).await?;
        if !enabled {
            let spec = TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL_ATTRIBUTE)
                .build()
                .map_err(build_error)?;
            self.client
                .update_time_to_live()
                .table_name(&self.table)
                .time_to_live_specification(spec)
                .send()
                .await
                .map_err(sdk_error)?;
        }
        Ok(())
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

    /// Waits until the table and every index are active, at most `max`; returns the names
    /// of its indexes.
    async fn wait_until_active(&self, max: std::time::Duration) -> Result<Vec<String>> {
        use aws_sdk_dynamodb::types::{IndexStatus, TableStatus};
        let started = std::time::Instant::now();
        let mut reported = started;
        while started.elapsed() < max {
            let described = self
                .client
                .describe_table()
                .table_name(&self.table)
                .send()
                .await
                .map_err(sdk_error)?;
            let Some(table) = described.table() else {
                return Err(corrupt(format!("table {} has no description", self.table)));
            };
            let indexes = table.global_secondary_indexes();
            let ready = table.table_status() == Some(&TableStatus::Active)
                && indexes
                    .iter()
                    .all(|i| i.index_status().is_none_or(|s| *s == IndexStatus::Active));
            if ready {
                return Ok(indexes
                    .iter()
                    .filter_map(|i| i.index_name().map(str::to_owned))
                    .collect());
            }
            if reported.elapsed() >= std::time::Duration::from_secs(30) {
                tracing::info!(table = %self.table, waited_s = started.elapsed().as_secs(), "waiting for the table and its indexes to become active");
                reported = std::time::Instant::now();
            }
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        Err(corrupt(format!(
            "table {} did not become active within {} s; run provision again to keep waiting",
            self.table,
            max.as_secs()
        )))
    }

    /// Adds to the artifact counters (`c_<kind>` created, `d_<kind>` deleted), writing them
    /// once the buffer is older than `COUNTER_FLUSH_INTERVAL`.
    async fn count(&self, deltas: HashMap<String, i64>) {
        {
            let mut pending = lock(&self.counters.pending);
            for (attribute, delta) in deltas {
                *pending.entry(attribute).or_default() += delta;
            }
        }
        let due = lock(&self.counters.flushed_at).elapsed() >= COUNTER_FLUSH_INTERVAL;
        if due {
            self.flush_counters().await;
        }
    }

    /// Writes the buffered counter deltas to one counter shard. Counters serve the gauges
    /// only, so a failure is logged and the deltas kept for the next flush.
    pub async fn flush_counters(&self) {
        *lock(&self.counters.flushed_at) = std::time::Instant::now();
        let deltas: Vec<(String, i64)> = std::mem::take(&mut *lock(&self.counters.pending))
            .into_iter()
            .filter(|(_, v)| *v != 0)
            .collect();
        if deltas.is_empty() {
            return;
        }
        let mut names = HashMap::new();
        let mut values = HashMap::new();
        let mut adds = Vec::new();
        for (i, (attribute, delta)) in deltas.iter().enumerate() {
            names.insert(format!("#a{i}"), attribute.clone());
            values.insert(format!(":v{i}"), n(*delta));
            adds.push(format!("#a{i} :v{i}"));
        }
        let shard = rand::random::<u32>() % COUNTER_SHARDS;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(counter_key(shard)))
            .update_expression(format!("ADD {}", adds.join(", ")))
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .send()
            .await;
        if let Err(e) = result {
            tracing::warn!(error = %sdk_error(e), "artifact counter update failed; retried at the next flush");
            let mut pending = lock(&self.counters.pending);
            for (attribute, delta) in deltas {
                *pending.entry(attribute).or_default() += delta;
            }
        }
    }

    /// Puts a new artifact item; with a transcript, adds it to the transcript's set in
    /// the same transaction.
    async fn put_artifact(&self, a: &Artifact) -> Result<()> {
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
                let add = Change {
                    key: transcript_key(transcript),
                    update: "ADD artifact_ids :id".into(),
                    condition: Some("attribute_exists(pk)".into()),
                    names: HashMap::new(),
                    values: HashMap::from([(
                        ":id".into(),
                        AttributeValue::Ss(vec![a.id.to_string()]),
                    )]),
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

    /// The oldest day bucket that may hold due entries. `lethe provision` creates the
    /// watermark; a table without one (provisioned by an older version) gets one
    /// `WATERMARK_BACKFILL` days back, so the first passes read every bucket an entry can
    /// still be in and then move it forward over the empty days.
    async fn due_low(&self, now: DateTime<Utc>) -> Result<NaiveDate> {
        let stored = self
            .get(meta_key())
            .await?
            .and_then(|item| opt_s(&item, "day"))
            .and_then(|d| d.parse::<NaiveDate>().ok());
        let low = match stored {
            Some(low) => low,
            None => {
                let start = day(now - WATERMARK_BACKFILL);
                tracing::warn!(table = %self.table, from = %start, "the due-index watermark is missing; reading the due index from {start} on (run `lethe provision` to create it)");
                self.create_due_low(start).await?
            }
        };
        Ok(low.min(day(now)))
    }

    /// Creates the watermark at `at` unless one exists; returns the one in force.
    async fn create_due_low(&self, at: NaiveDate) -> Result<NaiveDate> {
        let change = Change {
            key: meta_key(),
            update: "SET #d = if_not_exists(#d, :d)".into(),
            condition: None,
            names: HashMap::from([("#d".into(), "day".into())]),
            values: HashMap::from([(":d".into(), s(at.to_string()))]),
        };
        let item = self.update(&change).await?;
        Ok(item
            .and_then(|i| opt_s(&i, "day"))
            .and_then(|d| d.parse().ok())
            .unwrap_or(at))
    }

    /// Moves the watermark from `from` to `to` if no one moved it meanwhile.
    async fn advance_due_low(&self, from: NaiveDate, to: NaiveDate) -> Result<()> {
        let change = Change {
            key: meta_key(),
            update: "SET #d = :to".into(),
            condition: Some("attribute_not_exists(#d) OR #d = :from".into()),
            names: HashMap::from([("#d".into(), "day".into())]),
            values: HashMap::from([
                (":to".into(), s(to.to_string())),
                (":from".into(), s(from.to_string())),
            ]),
        };
        self.update(&change).await?;
        Ok(())
    }

    /// Due-index entries with `due_at <= until`, day by day from the watermark, earliest
    /// first; `keep` filters what is returned (but not what counts as a non-empty day);
    /// stops at `limit`. Advances the watermark over days found empty.
    async fn due_entries(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: usize,
        keep: impl Fn(&Item) -> bool + Copy,
    ) -> Result<Vec<Item>> {
        let low = self.due_low(now).await?;
        let today = day(now);
        let mut found = Vec::new();
        let mut first_non_empty: Option<NaiveDate> = None;
        let mut bucket = low;
        'days: while bucket <= today {
            for shard in 0..DUE_SHARDS {
                let mut start: Option<Item> = None;
                loop {
                    let out = self
                        .client
                        .query()
                        .table_name(&self.table)
                        .index_name("due")
                        .key_condition_expression("dpk = :p AND dsk <= :s")
                        .expression_attribute_values(":p", s(format!("DUE#{bucket}#{shard}")))
                        .expression_attribute_values(":s", s(format!("{}#~", padded(until))))
                        .limit(limit.clamp(1, 1000) as i32)
                        .set_exclusive_start_key(start.take())
                        .send()
                        .await
                        .map_err(sdk_error)?;
                    let items = out.items.unwrap_or_default();
                    if !items.is_empty() && first_non_empty.is_none() {
                        first_non_empty = Some(bucket);
                    }
                    found.extend(items.into_iter().filter(|i| keep(i)));
                    if found.len() >= limit {
                        break 'days;
                    }
                    match out.last_evaluated_key {
                        Some(key) if !key.is_empty() => start = Some(key),
                        _ => break,
                    }
                }
            }
            match bucket.succ_opt() {
                Some(next) => bucket = next,
                None => break,
            }
        }
        // Days before the first one that held anything are empty for good: entries are
        // never written behind the writer's today. The watermark stays a skew margin
        // behind this instance's today, so an instance whose clock runs a little late
        // cannot write behind it.
        let complete = found.len() < limit;
        let new_low = match first_non_empty {
            Some(d) => d,
            None if complete => today,
            None => low,
        }
        .min(day(now - WATERMARK_SKEW));
        if new_low > low {
            self.advance_due_low(low, new_low).await?;
        }
        found.sort_by_key(|item| opt_s(item, "dsk"));
        found.truncate(limit);
        Ok(found)
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

fn not_claimed_by_others(now: DateTime<Utc>) -> impl Fn(&Item) -> bool + Copy {
    let now = micros(now);
    move |item: &Item| match opt_n(item, "claimed_until") {
        Ok(Some(until)) => until <= now,
        _ => true,
    }
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
        let mut update = format!("SET {}", sets.join(", "));
        // The sparse `g4` index holds what a sweep must still act on: unfinished
        // transcripts, and terminal ones not yet settled.
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
            condition: Some("attribute_exists(pk)".into()),
            names: HashMap::new(),
            values: HashMap::from([(":n".into(), n(size_bytes))]),
        };
        self.update(&change).await?;
        Ok(())
    }

    async fn remove_unconfirmed_artifact(&self, id: ArtifactId) -> Result<()> {
        let Some(artifact) = self.artifact(id).await? else {
            return Ok(());
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
        let removed = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(artifact_key(id)))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(sdk_error)?;
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
        let mut bucket = low;
        while bucket <= day(horizon) {
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
            match bucket.succ_opt() {
                Some(next) => bucket = next,
                None => break,
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
