//! Encodings every backend shares: timestamps as microseconds since the epoch, the policy
//! history and retention job as JSON, and the account assembled from its stored parts.

use chrono::{DateTime, TimeZone, Utc};

use super::{Result, StorageError};
use crate::domain::{Account, AccountId, PolicyRecord, RetentionJob, RetentionSettings};

/// A stored value that does not decode: the backend's data is not what Lethe wrote.
pub fn corrupt(backend: &'static str, what: String) -> StorageError {
    StorageError::Other {
        backend,
        source: what.into(),
    }
}

pub fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us)
        .single()
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}

pub fn history_json(account: &Account) -> String {
    serde_json::to_string(&account.history).unwrap_or_else(|_| "[]".into())
}

pub fn job_json(job: Option<&RetentionJob>) -> Option<String> {
    job.and_then(|j| serde_json::to_string(j).ok())
}

/// An account from its stored columns. An account written before the history existed has
/// an empty one: its current settings become its only recorded version.
#[allow(clippy::too_many_arguments)]
pub fn account(
    id: AccountId,
    name: String,
    settings: RetentionSettings,
    policy_version: i64,
    created_at: DateTime<Utc>,
    mut history: Vec<PolicyRecord>,
    retention_job: Option<RetentionJob>,
) -> Result<Account> {
    if history.is_empty() {
        history.push(PolicyRecord {
            version: policy_version,
            settings: settings.clone(),
            since: created_at,
        });
    }
    Ok(Account {
        id,
        name,
        settings,
        policy_version,
        created_at,
        history,
        retention_job,
        holds: Vec::new(),
        deletion_webhook: None,
    })
}

/// A deletion-log leaf hash read back from a database column.
pub fn leaf_hash_from(backend: &'static str, bytes: Vec<u8>) -> Result<[u8; 32]> {
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        corrupt(
            backend,
            format!("a deletion-log leaf hash has {} bytes, not 32", bytes.len()),
        )
    })
}
