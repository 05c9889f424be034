//! The tracked-artifact gauges from sharded counter items: each instance buffers its deltas
//! and writes them at most once a minute (and at exit, and when `/metrics` is read).

use super::*;

/// Shards of the artifact counters, so no one item takes every write.
pub(super) const COUNTER_SHARDS: u32 = 16;

/// How long counter deltas may wait in memory before they are written.
pub(super) const COUNTER_FLUSH_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

/// Artifact-counter deltas not yet written: added to on every insert and deletion and
/// written as one `UpdateItem` at most once per `COUNTER_FLUSH_INTERVAL`, so the gauges
/// cost about one request a minute per instance instead of one per write.
#[derive(Debug)]
pub(super) struct CounterBuffer {
    pub(super) pending: std::sync::Mutex<HashMap<String, i64>>,
    pub(super) flushed_at: std::sync::Mutex<std::time::Instant>,
}

pub(super) fn counter_key(shard: u32) -> Item {
    HashMap::from([
        ("pk".into(), s(format!("COUNT#{shard}"))),
        ("sk".into(), s("COUNT")),
    ])
}

pub(super) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DynamoIndex {
    /// Adds to the artifact counters (`c_<kind>` created, `d_<kind>` deleted), writing them
    /// once the buffer is older than `COUNTER_FLUSH_INTERVAL`.
    pub(super) async fn count(&self, deltas: HashMap<String, i64>) {
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
}
