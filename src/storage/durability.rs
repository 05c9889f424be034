//! Deferred durability: one wait for the disk per request instead of one per write.
//!
//! Ingest writes a transcript in a dozen small steps (the transcript, its artifacts, a data
//! key, sizes, the schedule). Each used to wait for its own fsync, one after the other.
//! Inside [`deferred`], a store that supports it (the embedded profile's SQLite writer)
//! commits each step without syncing it: the step is committed and visible to every reader
//! at once, and a crash before the sync loses it. Before `deferred` returns, one sync makes
//! every step durable. SQLite's WAL is written in commit order, so that one sync, or any
//! later durable commit, covers every step before it.
//!
//! Nothing is acknowledged before that sync: the caller answers only after `deferred`
//! returns. A store that writes anything outside its database (a content file) calls
//! [`flush`] first, so a crash never leaves a file without the durable row that tracks it.
//! Stores without deferral (DynamoDB, PostgreSQL) ignore the scope: every write of theirs
//! is durable when it returns, as outside it.

use futures::future::BoxFuture;
use std::future::Future;
use std::sync::Mutex;

use super::{Result, StorageError};

/// A store that can commit without syncing, and sync later.
pub(crate) trait Barrier: Send + Sync + 'static {
    /// The same for every handle on one store.
    fn identity(&self) -> usize;
    /// Makes everything this store committed up to its commit `through` durable.
    fn make_durable(&self, through: u64) -> BoxFuture<'static, Result<()>>;
}

/// The writes of one [`deferred`] scope not yet known to be durable: per store, the last
/// commit that holds one.
#[derive(Default)]
struct Scope {
    pending: Mutex<Vec<(Box<dyn Barrier>, u64)>>,
}

tokio::task_local! {
    static SCOPE: Scope;
}

/// Whether the current task runs inside [`deferred`].
pub(crate) fn is_deferred() -> bool {
    SCOPE.try_with(|_| ()).is_ok()
}

/// Records that `store` committed a deferred write in its commit `through`.
pub(crate) fn record<B: Barrier + Clone>(store: &B, through: u64) {
    let _ = SCOPE.try_with(|scope| {
        let mut pending = scope.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending
            .iter_mut()
            .find(|(s, _)| s.identity() == store.identity())
        {
            Some((_, last)) => *last = (*last).max(through),
            None => pending.push((Box::new(store.clone()), through)),
        }
    });
}

/// Makes every deferred write of the current scope durable; nothing to do outside one.
pub async fn flush() -> Result<()> {
    let pending = SCOPE
        .try_with(|scope| {
            std::mem::take(&mut *scope.pending.lock().unwrap_or_else(|e| e.into_inner()))
        })
        .unwrap_or_default();
    for (store, through) in pending {
        store.make_durable(through).await?;
    }
    Ok(())
}

/// Runs `work` with its writes committed without a sync each, then syncs them once. The
/// result is `work`'s, unless the sync fails: then it is that failure, for nothing `work`
/// wrote may be acknowledged as durable.
pub async fn deferred<T, E>(
    work: impl Future<Output = std::result::Result<T, E>>,
) -> std::result::Result<T, E>
where
    E: From<StorageError>,
{
    SCOPE
        .scope(Scope::default(), async move {
            let done = work.await;
            let synced = flush().await;
            match (done, synced) {
                (Ok(value), Ok(())) => Ok(value),
                (Ok(_), Err(error)) => Err(error.into()),
                (Err(error), _) => Err(error),
            }
        })
        .await
}
