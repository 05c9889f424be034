//! The item codec: transcripts and artifacts as DynamoDB items (keys, index keys, the
//! attribute helpers) and `Change`, one conditional update usable alone or in a
//! transaction.

use super::*;

pub(super) fn s(v: impl Into<String>) -> AttributeValue {
    AttributeValue::S(v.into())
}

pub(super) fn n(v: i64) -> AttributeValue {
    AttributeValue::N(v.to_string())
}

pub(super) fn b(v: bool) -> AttributeValue {
    AttributeValue::Bool(v)
}

pub(super) fn padded(t: DateTime<Utc>) -> String {
    format!("{:020}", micros(t).max(0))
}

pub(super) fn day(t: DateTime<Utc>) -> NaiveDate {
    t.date_naive()
}

pub(super) fn shard_of(id: &uuid::Uuid) -> u32 {
    (id.as_u128() % u128::from(DUE_SHARDS)) as u32
}

pub(super) fn transcript_key(id: TranscriptId) -> Item {
    HashMap::from([("pk".into(), s(format!("T#{id}"))), ("sk".into(), s("T"))])
}

pub(super) fn artifact_key(id: ArtifactId) -> Item {
    HashMap::from([("pk".into(), s(format!("R#{id}"))), ("sk".into(), s("R"))])
}

pub(super) fn meta_key() -> Item {
    HashMap::from([("pk".into(), s("META")), ("sk".into(), s("DUE_LOW"))])
}

pub(super) fn due_days_key() -> Item {
    HashMap::from([("pk".into(), s("META")), ("sk".into(), s("DUE_DAYS"))])
}

pub(super) fn get_s(item: &Item, key: &str) -> Result<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        other => Err(corrupt(format!(
            "{key}: expected a string, found {other:?}"
        ))),
    }
}

pub(super) fn opt_s(item: &Item, key: &str) -> Option<String> {
    match item.get(key) {
        Some(AttributeValue::S(v)) => Some(v.clone()),
        _ => None,
    }
}

pub(super) fn opt_n(item: &Item, key: &str) -> Result<Option<i64>> {
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

pub(super) fn get_n(item: &Item, key: &str) -> Result<i64> {
    opt_n(item, key)?.ok_or_else(|| corrupt(format!("{key}: missing")))
}

pub(super) fn opt_f(item: &Item, key: &str) -> Result<Option<f64>> {
    match item.get(key) {
        Some(AttributeValue::N(v)) => v
            .parse()
            .map(Some)
            .map_err(|e| corrupt(format!("{key}: {e}"))),
        _ => Ok(None),
    }
}

pub(super) fn get_bool(item: &Item, key: &str) -> bool {
    matches!(item.get(key), Some(AttributeValue::Bool(true)))
}

pub(super) fn opt_ts(item: &Item, key: &str) -> Result<Option<DateTime<Utc>>> {
    Ok(opt_n(item, key)?.map(from_micros))
}

pub(super) fn get_uuid(item: &Item, key: &str) -> Result<uuid::Uuid> {
    uuid::Uuid::parse_str(&get_s(item, key)?).map_err(|e| corrupt(format!("{key}: {e}")))
}

pub(super) fn opt_uuid(item: &Item, key: &str) -> Result<Option<uuid::Uuid>> {
    opt_s(item, key)
        .map(|v| uuid::Uuid::parse_str(&v).map_err(|e| corrupt(format!("{key}: {e}"))))
        .transpose()
}

pub(super) fn parse_enum<T>(item: &Item, key: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let v = get_s(item, key)?;
    parse(&v).ok_or_else(|| corrupt(format!("{key}: unknown value {v:?}")))
}

pub(super) fn opt_enum<T>(
    item: &Item,
    key: &str,
    parse: fn(&str) -> Option<T>,
) -> Result<Option<T>> {
    opt_s(item, key)
        .map(|v| parse(&v).ok_or_else(|| corrupt(format!("{key}: unknown value {v:?}"))))
        .transpose()
}

pub(super) fn transcript_item(t: &Transcript) -> Item {
    let mut item = transcript_key(t.id);
    item.extend(transcript_attributes(t));
    item
}

/// Every attribute of a transcript but its key and `artifact_ids`, index keys included.
pub(super) fn transcript_attributes(t: &Transcript) -> Item {
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

pub(super) fn transcript_from_item(item: &Item) -> Result<Transcript> {
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

/// The day bucket of a due entry: the later of the due day and the day it is written, so
/// an entry never lands behind the watermark.
pub(super) fn due_bucket(due_at: DateTime<Utc>, written_at: DateTime<Utc>) -> NaiveDate {
    day(due_at.max(written_at))
}

pub(super) fn due_keys(
    id: ArtifactId,
    due_at: DateTime<Utc>,
    written_at: DateTime<Utc>,
) -> (AttributeValue, AttributeValue) {
    let bucket = due_bucket(due_at, written_at);
    (
        s(format!("DUE#{bucket}#{}", shard_of(&id))),
        s(format!("{}#{id}", padded(due_at))),
    )
}

pub(super) fn artifact_item(a: &Artifact, written_at: DateTime<Utc>) -> Item {
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

pub(super) fn artifact_from_item(item: &Item) -> Result<Artifact> {
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
pub(super) struct Change {
    pub(super) key: Item,
    pub(super) update: String,
    pub(super) condition: Option<String>,
    pub(super) names: HashMap<String, String>,
    pub(super) values: Item,
}

impl Change {
    pub(super) fn transact_item(&self, table: &str) -> Result<TransactWriteItem> {
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
