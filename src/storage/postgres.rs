//! The AWS profile's relational backend: accounts, API-key hashes, tombstones and sweep
//! records in PostgreSQL (the artifact index is DynamoDB). Several Lethe instances share
//! it; tombstones are keyed by artifact, so two instances never write two.

use async_trait::async_trait;
use chrono::{DateTime, Duration, Utc};
use sqlx::postgres::{PgPool, PgPoolOptions, PgRow};
use sqlx::Row;

use super::codec::leaf_hash_from;
use super::{AccountStore, AuditLog, Result, StorageError};
use crate::domain::{
    Account, AccountId, ApiKeyHash, ArtifactId, ArtifactKind, DeletionReason, DeletionWebhook,
    DeliveryState, LegalHold, ReconcileReport, Region, RetentionJob, RetentionSettings,
    SweepReport, SweepState, Tombstone, UsageKind, UsageRecord, WebhookDelivery, WebhookEvent,
};

const BACKEND: &str = "postgresql";
/// Rows per multi-row tombstone insert.
const TOMBSTONE_ROWS: usize = 1000;

pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

#[derive(Clone, Debug)]
pub struct PostgresStore {
    pool: PgPool,
}

fn corrupt(what: String) -> StorageError {
    StorageError::Other {
        backend: BACKEND,
        source: what.into(),
    }
}

impl PostgresStore {
    /// Connects and applies pending migrations (serialized across instances by sqlx's lock).
    pub async fn connect(url: &str) -> Result<Self> {
        let pool = PgPoolOptions::new()
            .max_connections(16)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(url)
            .await
            .map_err(|e| StorageError::Unavailable {
                backend: BACKEND,
                source: Box::new(e),
            })?;
        MIGRATOR.run(&pool).await.map_err(|e| StorageError::Other {
            backend: BACKEND,
            source: Box::new(e),
        })?;
        Ok(Self { pool })
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }
}

fn account_from_row(row: &PgRow) -> Result<Account> {
    let region: String = row.try_get("region")?;
    let ttl: Option<i64> = row.try_get("transcript_ttl_seconds")?;
    let history: serde_json::Value = row.try_get("history")?;
    let job: Option<serde_json::Value> = row.try_get("retention_job")?;
    let mut account = super::codec::account(
        row.try_get("id")?,
        row.try_get("name")?,
        RetentionSettings {
            transcript_ttl: ttl.map(Duration::seconds),
            upload_ttl: Duration::seconds(row.try_get("upload_ttl_seconds")?),
            baa: row.try_get("baa")?,
            region: Region::parse(&region).map_err(|e| corrupt(e.to_string()))?,
            model_training_opt_out: row.try_get("model_training_opt_out")?,
            zero_data_retention: row.try_get("zero_data_retention")?,
        },
        row.try_get("policy_version")?,
        row.try_get("created_at")?,
        serde_json::from_value(history).map_err(|e| corrupt(format!("history: {e}")))?,
        job.map(serde_json::from_value)
            .transpose()
            .map_err(|e| corrupt(format!("retention_job: {e}")))?,
    )?;
    account.deletion_webhook = match (
        row.try_get::<Option<String>, _>("deletion_webhook_url")?,
        row.try_get::<Option<String>, _>("deletion_webhook_secret")?,
    ) {
        (Some(url), Some(secret)) => Some(DeletionWebhook { url, secret }),
        _ => None,
    };
    Ok(account)
}

/// The JSON columns bound as `jsonb` (a text parameter cast in the statement).
fn history_param(account: &Account) -> String {
    super::codec::history_json(account)
}

#[async_trait]
impl AccountStore for PostgresStore {
    async fn create_account(&self, account: &Account, key: &ApiKeyHash) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        let s = &account.settings;
        sqlx::query(
            "INSERT INTO accounts (id, name, transcript_ttl_seconds, upload_ttl_seconds, baa, region,
                model_training_opt_out, zero_data_retention, policy_version, created_at, history,
                retention_job)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11::jsonb, $12::jsonb)",
        )
        .bind(account.id)
        .bind(&account.name)
        .bind(s.transcript_ttl.map(|d| d.num_seconds()))
        .bind(s.upload_ttl.num_seconds())
        .bind(s.baa)
        .bind(s.region.as_str())
        .bind(s.model_training_opt_out)
        .bind(s.zero_data_retention)
        .bind(account.policy_version)
        .bind(account.created_at)
        .bind(history_param(account))
        .bind(super::codec::job_json(account.retention_job.as_ref()))
        .execute(&mut *tx)
        .await?;
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(&key.0)
            .bind(account.id)
            .bind(account.created_at)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn account(&self, id: AccountId) -> Result<Option<Account>> {
        let account = sqlx::query("SELECT * FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from_row)
            .transpose()?;
        match account {
            Some(a) => Ok(super::attach_holds(self, vec![a]).await?.pop()),
            None => Ok(None),
        }
    }

    async fn account_by_key_hash(&self, key: &ApiKeyHash) -> Result<Option<Account>> {
        let account = sqlx::query("SELECT a.* FROM api_keys k JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1")
            .bind(&key.0)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(account_from_row)
            .transpose()?;
        match account {
            Some(a) => Ok(super::attach_holds(self, vec![a]).await?.pop()),
            None => Ok(None),
        }
    }

    async fn update_account(&self, account: &Account, expected_version: i64) -> Result<()> {
        let s = &account.settings;
        let done = sqlx::query(
            "UPDATE accounts SET name = $1, transcript_ttl_seconds = $2, upload_ttl_seconds = $3, baa = $4,
                region = $5, model_training_opt_out = $6, zero_data_retention = $7, policy_version = $8,
                history = $11::jsonb, retention_job = $12::jsonb
             WHERE id = $9 AND policy_version = $10",
        )
        .bind(&account.name)
        .bind(s.transcript_ttl.map(|d| d.num_seconds()))
        .bind(s.upload_ttl.num_seconds())
        .bind(s.baa)
        .bind(s.region.as_str())
        .bind(s.model_training_opt_out)
        .bind(s.zero_data_retention)
        .bind(account.policy_version)
        .bind(account.id)
        .bind(expected_version)
        .bind(history_param(account))
        .bind(super::codec::job_json(account.retention_job.as_ref()))
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 1 {
            return Ok(());
        }
        let key = format!("account/{}", account.id);
        match self.account(account.id).await? {
            Some(_) => Err(StorageError::Conflict { key }),
            None => Err(StorageError::NotFound { key }),
        }
    }

    async fn accounts_with_retention_jobs(&self, limit: u32) -> Result<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE retention_job IS NOT NULL ORDER BY id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        super::attach_holds(self, accounts).await
    }

    async fn save_retention_job(
        &self,
        account: AccountId,
        target_version: i64,
        job: Option<&RetentionJob>,
    ) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE accounts SET retention_job = $1::jsonb
             WHERE id = $2 AND (retention_job ->> 'target_version')::bigint = $3",
        )
        .bind(super::codec::job_json(job))
        .bind(account)
        .bind(target_version)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    async fn accounts(&self, after: Option<AccountId>, limit: u32) -> Result<Vec<Account>> {
        let rows = sqlx::query(
            "SELECT * FROM accounts WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let accounts = rows
            .iter()
            .map(account_from_row)
            .collect::<Result<Vec<_>>>()?;
        super::attach_holds(self, accounts).await
    }

    async fn add_api_key(
        &self,
        account: AccountId,
        key: &ApiKeyHash,
        now: DateTime<Utc>,
    ) -> Result<()> {
        sqlx::query("INSERT INTO api_keys (key_hash, account_id, created_at) VALUES ($1, $2, $3)")
            .bind(&key.0)
            .bind(account)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    async fn set_deletion_webhook(
        &self,
        account: AccountId,
        webhook: Option<&DeletionWebhook>,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE accounts SET deletion_webhook_url = $1, deletion_webhook_secret = $2 WHERE id = $3",
        )
        .bind(webhook.map(|w| w.url.as_str()))
        .bind(webhook.map(|w| w.secret.as_str()))
        .bind(account)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn create_hold(&self, hold: &LegalHold) -> Result<()> {
        sqlx::query(
            "INSERT INTO legal_holds (id, account_id, transcript_id, reason, created_at, released_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(hold.id)
        .bind(hold.account_id)
        .bind(hold.transcript_id)
        .bind(&hold.reason)
        .bind(hold.created_at)
        .bind(hold.released_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn release_hold(&self, id: uuid::Uuid, at: DateTime<Utc>) -> Result<Option<LegalHold>> {
        sqlx::query(
            "UPDATE legal_holds SET released_at = $1 WHERE id = $2 AND released_at IS NULL",
        )
        .bind(at)
        .bind(id)
        .execute(&self.pool)
        .await?;
        sqlx::query("SELECT * FROM legal_holds WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(hold_from_row)
            .transpose()
    }

    async fn holds(
        &self,
        account: Option<AccountId>,
        include_released: bool,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<LegalHold>> {
        let rows = sqlx::query(
            "SELECT * FROM legal_holds
             WHERE ($1::uuid IS NULL OR account_id = $1) AND ($2 OR released_at IS NULL)
               AND ($3::uuid IS NULL OR id > $3)
             ORDER BY id LIMIT $4",
        )
        .bind(account)
        .bind(include_released)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }

    async fn active_holds(&self, accounts: &[AccountId]) -> Result<Vec<LegalHold>> {
        let rows = sqlx::query(
            "SELECT * FROM legal_holds WHERE released_at IS NULL AND account_id = ANY($1)",
        )
        .bind(accounts)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(hold_from_row).collect()
    }
}

/// Adds a delivery to the outbox unless its (transcript, event) has one; true if added.
async fn insert_delivery<'e>(
    executor: impl sqlx::PgExecutor<'e>,
    d: &WebhookDelivery,
) -> Result<bool> {
    let done = sqlx::query(
        "INSERT INTO webhook_deliveries (id, account_id, transcript_id, event, payload, state,
            attempts, next_attempt_at, last_status, last_error, created_at, delivered_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
         ON CONFLICT (transcript_id, event) DO NOTHING",
    )
    .bind(d.id)
    .bind(d.account_id)
    .bind(d.transcript_id)
    .bind(d.event.as_str())
    .bind(&d.payload)
    .bind(d.state.as_str())
    .bind(d.attempts as i32)
    .bind(d.next_attempt_at)
    .bind(d.last_status.map(i32::from))
    .bind(&d.last_error)
    .bind(d.created_at)
    .bind(d.delivered_at)
    .execute(executor)
    .await?;
    Ok(done.rows_affected() == 1)
}

fn webhook_from_row(row: &PgRow) -> Result<WebhookDelivery> {
    let text = |col: &str| -> Result<String> { Ok(row.try_get::<String, _>(col)?) };
    let event = text("event")?;
    let state = text("state")?;
    Ok(WebhookDelivery {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        transcript_id: row.try_get("transcript_id")?,
        event: WebhookEvent::parse(&event)
            .ok_or_else(|| super::codec::corrupt(BACKEND, format!("webhook event {event:?}")))?,
        payload: row.try_get("payload")?,
        state: DeliveryState::parse(&state)
            .ok_or_else(|| super::codec::corrupt(BACKEND, format!("webhook state {state:?}")))?,
        attempts: row.try_get::<i32, _>("attempts")? as u32,
        next_attempt_at: row.try_get("next_attempt_at")?,
        last_status: row
            .try_get::<Option<i32>, _>("last_status")?
            .map(|s| s as u16),
        last_error: row.try_get("last_error")?,
        created_at: row.try_get("created_at")?,
        delivered_at: row.try_get("delivered_at")?,
    })
}

fn hold_from_row(row: &PgRow) -> Result<LegalHold> {
    Ok(LegalHold {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        transcript_id: row.try_get("transcript_id")?,
        reason: row.try_get("reason")?,
        created_at: row.try_get("created_at")?,
        released_at: row.try_get("released_at")?,
    })
}

/// Appends one deletion-log leaf per tombstone at the next indexes. The head row's lock,
/// held to commit, makes indexes dense and ordered across instances.
async fn append_leaves(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    tombstones: &[Tombstone],
) -> Result<()> {
    if tombstones.is_empty() {
        return Ok(());
    }
    let size: i64 =
        sqlx::query_scalar("UPDATE deletion_log_head SET size = size + $1 RETURNING size")
            .bind(tombstones.len() as i64)
            .fetch_one(&mut **tx)
            .await?;
    let first = size - tombstones.len() as i64;
    for (chunk_start, chunk) in (0..)
        .step_by(TOMBSTONE_ROWS)
        .zip(tombstones.chunks(TOMBSTONE_ROWS))
    {
        let mut builder = sqlx::QueryBuilder::new(
            "INSERT INTO deletion_log (leaf_index, artifact_id, leaf_hash) ",
        );
        builder.push_values(chunk.iter().enumerate(), |mut row, (offset, t)| {
            row.push_bind(first + chunk_start + offset as i64)
                .push_bind(t.artifact_id)
                .push_bind(crate::receipts::tombstone_leaf_hash(t).to_vec());
        });
        builder.build().execute(&mut **tx).await?;
    }
    Ok(())
}

fn tombstone_from_row(row: &PgRow) -> Result<Tombstone> {
    let kind: String = row.try_get("kind")?;
    let reason: String = row.try_get("reason")?;
    Ok(Tombstone {
        artifact_id: row.try_get("artifact_id")?,
        account_id: row.try_get("account_id")?,
        transcript_id: row.try_get("transcript_id")?,
        kind: ArtifactKind::parse(&kind).ok_or_else(|| corrupt(format!("kind: {kind:?}")))?,
        size_bytes: row.try_get("size_bytes")?,
        anchor_at: row.try_get("anchor_at")?,
        delete_after: row.try_get("delete_after")?,
        delete_by: row.try_get("delete_by")?,
        deleted_at: row.try_get("deleted_at")?,
        reason: DeletionReason::parse(&reason)
            .ok_or_else(|| corrupt(format!("reason: {reason:?}")))?,
        deleted_by: row.try_get("deleted_by")?,
    })
}

fn sweep_from_row(row: &PgRow) -> Result<SweepReport> {
    let by_reason: sqlx::types::Json<std::collections::BTreeMap<String, u64>> =
        row.try_get("deleted_by_reason")?;
    let state: String = row.try_get("state")?;
    Ok(SweepReport {
        id: row.try_get("id")?,
        instance: row.try_get("instance")?,
        state: SweepState::parse(&state).ok_or_else(|| corrupt(format!("state: {state:?}")))?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        rescheduled: row.try_get::<i64, _>("rescheduled")? as u64,
        examined: row.try_get::<i64, _>("examined")? as u64,
        deleted: row.try_get::<i64, _>("deleted")? as u64,
        deleted_by_reason: by_reason.0,
        failed: row.try_get::<i64, _>("failed")? as u64,
        overdue: row.try_get::<i64, _>("overdue")? as u64,
        stuck_transcripts_errored: row.try_get::<i64, _>("stuck_transcripts_errored")? as u64,
        truncated: row.try_get("truncated")?,
        lags: Vec::new(),
    })
}

fn usage_from_row(row: &PgRow) -> Result<UsageRecord> {
    let kind: String = row.try_get("kind")?;
    Ok(UsageRecord {
        id: row.try_get("id")?,
        account_id: row.try_get("account_id")?,
        kind: UsageKind::parse(&kind).ok_or_else(|| corrupt(format!("kind: {kind:?}")))?,
        model: row.try_get("model")?,
        provider: row.try_get("provider")?,
        transcript_id: row.try_get("transcript_id")?,
        started_at: row.try_get("started_at")?,
        ended_at: row.try_get("ended_at")?,
        artifact_id: row.try_get("artifact_id")?,
        recorded_at: row.try_get("recorded_at")?,
    })
}

#[async_trait]
impl AuditLog for PostgresStore {
    async fn record_usage(&self, u: &UsageRecord) -> Result<()> {
        sqlx::query(
            "INSERT INTO usage_records (id, account_id, kind, model, provider, transcript_id,
                started_at, ended_at, artifact_id, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(u.id)
        .bind(u.account_id)
        .bind(u.kind.as_str())
        .bind(&u.model)
        .bind(&u.provider)
        .bind(u.transcript_id)
        .bind(u.started_at)
        .bind(u.ended_at)
        .bind(u.artifact_id)
        .bind(u.recorded_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn usage(
        &self,
        account: AccountId,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<UsageRecord>> {
        let rows = sqlx::query(
            "SELECT * FROM usage_records WHERE account_id = $1 AND ($2::uuid IS NULL OR id > $2)
             ORDER BY id LIMIT $3",
        )
        .bind(account)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(usage_from_row).collect()
    }

    async fn record_tombstones(
        &self,
        tombstones: &[Tombstone],
        deliveries: &[WebhookDelivery],
    ) -> Result<Vec<Tombstone>> {
        if tombstones.is_empty() {
            return Ok(Vec::new());
        }
        // Multi-row inserts of TOMBSTONE_ROWS rows (11 parameters each, well under the
        // protocol's 65,535), all in one transaction.
        let mut tx = self.pool.begin().await?;
        let mut inserted = std::collections::HashSet::new();
        for chunk in tombstones.chunks(TOMBSTONE_ROWS) {
            let mut builder = sqlx::QueryBuilder::new(
                "INSERT INTO tombstones (artifact_id, account_id, transcript_id, kind, size_bytes, anchor_at,
                    delete_after, delete_by, deleted_at, reason, deleted_by) ",
            );
            builder.push_values(chunk, |mut row, t| {
                row.push_bind(t.artifact_id)
                    .push_bind(t.account_id)
                    .push_bind(t.transcript_id)
                    .push_bind(t.kind.as_str())
                    .push_bind(t.size_bytes)
                    .push_bind(t.anchor_at)
                    .push_bind(t.delete_after)
                    .push_bind(t.delete_by)
                    .push_bind(t.deleted_at)
                    .push_bind(t.reason.as_str())
                    .push_bind(&t.deleted_by);
            });
            builder.push(" ON CONFLICT (artifact_id) DO NOTHING RETURNING artifact_id");
            for row in builder.build().fetch_all(&mut *tx).await? {
                inserted.insert(row.try_get::<ArtifactId, _>("artifact_id")?);
            }
        }
        let new: Vec<Tombstone> = tombstones
            .iter()
            .filter(|t| inserted.remove(&t.artifact_id))
            .cloned()
            .collect();
        append_leaves(&mut tx, &new).await?;
        for d in deliveries {
            insert_delivery(&mut *tx, d).await?;
        }
        // What is on record now: these, or the first ones of a deletion redone.
        let ids: Vec<ArtifactId> = tombstones.iter().map(|t| t.artifact_id).collect();
        let rows = sqlx::query("SELECT * FROM tombstones WHERE artifact_id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *tx)
            .await?;
        tx.commit().await?;
        let mut stored: std::collections::HashMap<ArtifactId, Tombstone> = rows
            .iter()
            .map(|r| tombstone_from_row(r).map(|t| (t.artifact_id, t)))
            .collect::<Result<_>>()?;
        Ok(tombstones
            .iter()
            .map(|t| stored.remove(&t.artifact_id).unwrap_or_else(|| t.clone()))
            .collect())
    }

    async fn enqueue_webhook(&self, d: &WebhookDelivery) -> Result<bool> {
        insert_delivery(&self.pool, d).await
    }

    async fn claim_webhooks(
        &self,
        now: DateTime<Utc>,
        until: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        // One statement: rows another instance is claiming are skipped, not waited for.
        let rows = sqlx::query(
            "WITH due AS (
                SELECT * FROM webhook_deliveries
                WHERE state = 'pending' AND next_attempt_at <= $1
                ORDER BY next_attempt_at LIMIT $2 FOR UPDATE SKIP LOCKED)
             UPDATE webhook_deliveries w SET next_attempt_at = $3 FROM due WHERE w.id = due.id
             RETURNING due.*",
        )
        .bind(now)
        .bind(i64::from(limit))
        .bind(until)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn update_webhook(&self, d: &WebhookDelivery) -> Result<()> {
        sqlx::query(
            "UPDATE webhook_deliveries SET state = $1, attempts = $2, next_attempt_at = $3,
                last_status = $4, last_error = $5, delivered_at = $6 WHERE id = $7",
        )
        .bind(d.state.as_str())
        .bind(d.attempts as i32)
        .bind(d.next_attempt_at)
        .bind(d.last_status.map(i32::from))
        .bind(&d.last_error)
        .bind(d.delivered_at)
        .bind(d.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn webhook_deliveries(
        &self,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        let rows = sqlx::query(
            "SELECT * FROM webhook_deliveries WHERE ($1::uuid IS NULL OR id > $1) ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
    }

    async fn log_leaves(&self, from: u64, limit: u32) -> Result<Vec<[u8; 32]>> {
        let rows = sqlx::query(
            "SELECT leaf_hash FROM deletion_log WHERE leaf_index >= $1 ORDER BY leaf_index LIMIT $2",
        )
        .bind(i64::try_from(from).unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| leaf_hash_from(BACKEND, row.try_get("leaf_hash")?))
            .collect()
    }

    async fn logged_tombstones(&self, artifacts: &[ArtifactId]) -> Result<Vec<(u64, Tombstone)>> {
        let rows = sqlx::query(
            "SELECT t.*, l.leaf_index FROM tombstones t JOIN deletion_log l ON l.artifact_id = t.artifact_id
             WHERE t.artifact_id = ANY($1) ORDER BY l.leaf_index",
        )
        .bind(artifacts)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok((
                    row.try_get::<i64, _>("leaf_index")? as u64,
                    tombstone_from_row(row)?,
                ))
            })
            .collect()
    }

    async fn log_unlogged_tombstones(&self, limit: u32) -> Result<u64> {
        let mut tx = self.pool.begin().await?;
        // The head's lock first: another instance backfilling or appending waits.
        let pending: bool =
            sqlx::query_scalar("SELECT backfill_pending FROM deletion_log_head FOR UPDATE")
                .fetch_one(&mut *tx)
                .await?;
        if !pending {
            return Ok(0);
        }
        let rows = sqlx::query(
            "SELECT t.* FROM tombstones t LEFT JOIN deletion_log l ON l.artifact_id = t.artifact_id
             WHERE l.artifact_id IS NULL ORDER BY t.deleted_at, t.artifact_id LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *tx)
        .await?;
        let unlogged = rows
            .iter()
            .map(tombstone_from_row)
            .collect::<Result<Vec<_>>>()?;
        append_leaves(&mut tx, &unlogged).await?;
        if unlogged.len() < limit as usize {
            sqlx::query("UPDATE deletion_log_head SET backfill_pending = FALSE")
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(unlogged.len() as u64)
    }

    async fn tombstones(
        &self,
        account: AccountId,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Tombstone>> {
        let rows = sqlx::query(
            "SELECT * FROM tombstones WHERE account_id = $1 AND ($2::uuid IS NULL OR artifact_id > $2)
             ORDER BY artifact_id LIMIT $3",
        )
        .bind(account)
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(tombstone_from_row).collect()
    }

    async fn tombstone(&self, artifact: ArtifactId) -> Result<Option<Tombstone>> {
        sqlx::query("SELECT * FROM tombstones WHERE artifact_id = $1")
            .bind(artifact)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(tombstone_from_row)
            .transpose()
    }

    async fn record_sweep(&self, r: &SweepReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO sweeps (id, instance, started_at, finished_at, examined, deleted, deleted_by_reason,
                failed, overdue, stuck_transcripts_errored, truncated, state, rescheduled)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
             ON CONFLICT (id) DO UPDATE SET finished_at = EXCLUDED.finished_at,
                examined = EXCLUDED.examined, deleted = EXCLUDED.deleted,
                deleted_by_reason = EXCLUDED.deleted_by_reason, failed = EXCLUDED.failed,
                overdue = EXCLUDED.overdue,
                stuck_transcripts_errored = EXCLUDED.stuck_transcripts_errored,
                truncated = EXCLUDED.truncated, state = EXCLUDED.state,
                rescheduled = EXCLUDED.rescheduled",
        )
        .bind(r.id)
        .bind(&r.instance)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(r.examined as i64)
        .bind(r.deleted as i64)
        .bind(sqlx::types::Json(&r.deleted_by_reason))
        .bind(r.failed as i64)
        .bind(r.overdue as i64)
        .bind(r.stuck_transcripts_errored as i64)
        .bind(r.truncated)
        .bind(r.state.as_str())
        .bind(r.rescheduled as i64)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_sweeps(&self, limit: u32) -> Result<Vec<SweepReport>> {
        let rows = sqlx::query("SELECT * FROM sweeps ORDER BY started_at DESC LIMIT $1")
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(sweep_from_row).collect()
    }

    async fn record_reconciliation(&self, r: &ReconcileReport) -> Result<()> {
        sqlx::query(
            "INSERT INTO reconciliations (id, instance, started_at, finished_at, report)
             VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING",
        )
        .bind(r.id)
        .bind(&r.instance)
        .bind(r.started_at)
        .bind(r.finished_at)
        .bind(sqlx::types::Json(r))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    async fn recent_reconciliations(&self, limit: u32) -> Result<Vec<ReconcileReport>> {
        let reports: Vec<sqlx::types::Json<ReconcileReport>> = sqlx::query_scalar(
            "SELECT report FROM reconciliations ORDER BY started_at DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(reports.into_iter().map(|r| r.0).collect())
    }

    async fn sweep(&self, id: uuid::Uuid) -> Result<Option<SweepReport>> {
        sqlx::query("SELECT * FROM sweeps WHERE id = $1")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(sweep_from_row)
            .transpose()
    }
}
