//! The sweeper: [`Sweeper::run_once`] is one bounded deletion pass that tests call
//! directly; [`Sweeper::run`] is the loop that runs passes on the cron schedule **and** at
//! the next due time, so deletion lags `delete_after` by the time a pass takes, not by a
//! sweep period.
//!
//! A pass: moves transcripts stuck past `max_processing` to `error` (anchoring them), then
//! repeatedly reads a batch of due artifacts, claims it (conditional, so two sweepers
//! never both act), and hands it to [`crate::deletion`] in a task of its own, claiming the
//! next batch while up to [`BATCHES_IN_FLIGHT`] are being deleted; it stops claiming when
//! nothing is due or its per-pass bound is reached, waits for every claimed batch, and
//! records a summary.

use chrono::{DateTime, Duration, Utc};
use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::domain::{new_id, ArtifactId, ReconcileReport, SweepReport, SweepState};
use crate::engine::reconcile::ReconcileOptions;
use crate::engine::{DueBatch, Engine, EngineError};
use crate::storage::StorageError;
use tokio_util::task::TaskTracker;
use uuid::Uuid;

fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The least wall time between the end of one pass of the loop and the start of the next:
/// what a deletion may wait beyond its deadline, at most, for passes to be coalesced.
const MIN_PASS_GAP: std::time::Duration = std::time::Duration::from_millis(50);

/// Batches of one pass being deleted at once: while one waits on the disk, the next is
/// claimed and started. Measured alternately on a burst of 10⁵ uploads (docs/benchmarks.md,
/// "Batches deleted at once"): 1 → 2 → 3 in flight gave 14,320 → 16,507 → 18,016
/// deletions/s, medians of three.
const BATCHES_IN_FLIGHT: usize = 3;

/// A batch being deleted: the artifacts it claimed, and its task.
type InFlight = (Vec<ArtifactId>, JoinHandle<crate::engine::Result<DueBatch>>);

#[derive(Clone, Debug)]
pub struct SweeperConfig {
    pub schedule: cron::Schedule,
    /// Artifacts read and claimed per batch.
    pub batch_size: u32,
    /// Artifacts examined per pass at most; the rest wait for the next pass.
    pub max_per_pass: u64,
    /// A transcript still unfinished this long after creation is moved to `error` (§4).
    pub max_processing: Duration,
    /// When reconciliation runs (daily by default); one instance runs each tick.
    pub reconcile_schedule: cron::Schedule,
    pub reconcile: ReconcileOptions,
}

impl From<&crate::config::Config> for SweeperConfig {
    fn from(config: &crate::config::Config) -> Self {
        Self {
            schedule: config.sweep_schedule.clone(),
            batch_size: config.sweep_batch_size,
            max_per_pass: config.sweep_max_per_pass,
            max_processing: config.max_processing,
            reconcile_schedule: config.reconcile_schedule.clone(),
            reconcile: ReconcileOptions {
                repair: config.reconcile_repair,
                grace: config.reconcile_grace,
            },
        }
    }
}

#[derive(Debug)]
pub struct Sweeper {
    engine: Engine,
    config: SweeperConfig,
    passes: watch::Sender<u64>,
    last_report: watch::Sender<Option<Arc<SweepReport>>>,
    /// The pass in progress so far: artifacts examined and deleted (the CLI's progress).
    progress: watch::Sender<(u64, u64)>,
    /// One pass at a time in this process: a pass holds it from start to end.
    pass_lock: Arc<tokio::sync::Mutex<()>>,
    /// The id of the pass in progress, if any.
    running: std::sync::Mutex<Option<Uuid>>,
    /// Passes started on request (`POST /admin/v1/sweeps`), detached from the request so
    /// that a timeout or a client going away never cuts one short; shutdown waits for them.
    detached: TaskTracker,
}

/// A pass started on request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StartedPass {
    pub id: Uuid,
    /// True when a pass was already running and this is its id.
    pub already_running: bool,
}

impl Sweeper {
    pub fn new(engine: Engine, config: SweeperConfig) -> Self {
        Self {
            engine,
            config,
            passes: watch::Sender::new(0),
            last_report: watch::Sender::new(None),
            progress: watch::Sender::new((0, 0)),
            pass_lock: Arc::new(tokio::sync::Mutex::new(())),
            running: std::sync::Mutex::new(None),
            detached: TaskTracker::new(),
        }
    }

    /// Counts finished passes; tests wait on it instead of sleeping.
    pub fn passes(&self) -> watch::Receiver<u64> {
        self.passes.subscribe()
    }

    pub fn last_report(&self) -> watch::Receiver<Option<Arc<SweepReport>>> {
        self.last_report.subscribe()
    }

    /// The pass in progress so far: (artifacts examined, artifacts deleted).
    pub fn progress(&self) -> watch::Receiver<(u64, u64)> {
        self.progress.subscribe()
    }

    /// Starts a pass detached from the caller and returns its id at once; if a pass is
    /// already running in this process, returns that one's id instead of starting another.
    pub async fn start_pass(self: &Arc<Self>) -> StartedPass {
        let guard = loop {
            match self.pass_lock.clone().try_lock_owned() {
                Ok(guard) => break guard,
                Err(_) => {
                    if let Some(id) = self.running_pass() {
                        return StartedPass {
                            id,
                            already_running: true,
                        };
                    }
                    // The holder has the lock but has not named its pass yet.
                    tokio::task::yield_now().await;
                }
            }
        };
        let now = self.engine.now();
        let id = new_id(now);
        *lock(&self.running) = Some(id);
        let sweeper = self.clone();
        self.detached.spawn(async move {
            let _guard = guard;
            if let Err(error) = sweeper.pass(id, now).await {
                tracing::error!(error = %error, "requested sweep pass failed; the next one retries");
            }
        });
        StartedPass {
            id,
            already_running: false,
        }
    }

    /// The id of the pass in progress in this process, if any.
    pub fn running_pass(&self) -> Option<Uuid> {
        *lock(&self.running)
    }

    /// Waits for the passes started on request (at shutdown).
    pub async fn wait_for_detached(&self) {
        self.detached.close();
        self.detached.wait().await;
    }

    /// One pass at `now`, waiting for a pass in progress to end first. Never deletes
    /// anything before its `delete_after`.
    pub async fn run_once(&self, now: DateTime<Utc>) -> Result<SweepReport, StorageError> {
        let _guard = self.pass_lock.lock().await;
        let id = new_id(now);
        *lock(&self.running) = Some(id);
        self.pass(id, now).await
    }

    /// The pass itself; the caller holds `pass_lock`. Recorded when it starts and again
    /// when it ends, so a pass in progress (or one a crash cut short) is visible.
    async fn pass(&self, id: Uuid, now: DateTime<Utc>) -> Result<SweepReport, StorageError> {
        let started = std::time::Instant::now();
        let mut report = SweepReport {
            id,
            instance: self.engine.instance().to_owned(),
            started_at: now,
            finished_at: now,
            state: SweepState::Running,
            ..Default::default()
        };
        let result = async {
            self.engine.record_sweep(&report).await.map_err(storage)?;
            self.pass_steps(&mut report, now).await
        }
        .await;
        *lock(&self.running) = None;
        // Wall time of the pass: the clock may be manual, so measure it separately.
        report.finished_at = now + Duration::from_std(started.elapsed()).unwrap_or_default();
        // A pass whose end cannot be recorded ends failed too: not counted as a pass that
        // finished, not left `running` for whoever waits for it.
        let result = match result {
            Ok(()) => {
                report.state = SweepState::Finished;
                self.engine.record_sweep(&report).await.map_err(storage)
            }
            failed => failed,
        };
        if let Err(error) = result {
            // Recorded as failed, not left `running`: what it deleted before the error
            // stands, and the next pass takes up the rest.
            report.state = SweepState::Failed;
            tracing::error!(
                %error,
                deleted = report.deleted,
                failed = report.failed,
                overdue = report.overdue,
                "sweep pass stopped by an error"
            );
            self.engine.metrics().record_sweep(&report);
            if let Err(recording) = self.engine.record_sweep(&report).await {
                tracing::warn!(error = %recording, "could not record the failed sweep pass");
            }
            // Whoever waits for this pass (`POST /admin/v1/sweeps?wait=true`) is answered.
            self.last_report
                .send_replace(Some(Arc::new(report.clone())));
            return Err(error);
        }
        self.engine.metrics().record_sweep(&report);
        if report.deleted > 0 || report.failed > 0 || report.overdue > 0 {
            tracing::info!(
                deleted = report.deleted,
                failed = report.failed,
                overdue = report.overdue,
                stuck_transcripts_errored = report.stuck_transcripts_errored,
                rescheduled = report.rescheduled,
                duration_ms = started.elapsed().as_millis() as u64,
                "sweep pass finished"
            );
        }
        self.last_report
            .send_replace(Some(Arc::new(report.clone())));
        Ok(report)
    }

    /// Runs a reconciliation now and records it (the CLI, the admin API and the loop).
    pub async fn reconcile(
        &self,
        now: DateTime<Utc>,
        options: ReconcileOptions,
        progress: crate::engine::reconcile::Progress<'_>,
    ) -> Result<ReconcileReport, EngineError> {
        self.engine.reconcile(now, options, progress).await
    }

    /// The scheduled reconciliation, unless an instance already ran one since the tick.
    async fn reconcile_if_due(&self, tick: DateTime<Utc>) {
        let now = self.engine.clock().now();
        match self.engine.recent_reconciliations(1).await {
            Ok(recent) if recent.first().is_some_and(|r| r.started_at >= tick) => return,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "could not read the last reconciliation; running one");
            }
        }
        if let Err(error) = self.reconcile(now, self.config.reconcile, &|_, _| {}).await {
            tracing::error!(error = %error, "scheduled reconciliation failed; the next tick retries");
        }
    }

    /// Stuck transcripts, then retention changes, then everything due.
    async fn pass_steps(
        &self,
        report: &mut SweepReport,
        now: DateTime<Utc>,
    ) -> Result<(), StorageError> {
        let (errored, failed) = self
            .engine
            .error_stuck_transcripts(now - self.config.max_processing, self.config.batch_size)
            .await
            .map_err(storage)?;
        report.stuck_transcripts_errored = errored;
        report.failed += failed;
        // Transcripts a crash left between becoming terminal and scheduling their
        // artifacts (a minute's grace for a finish in flight).
        match self
            .engine
            .settle_transcripts(now - Duration::minutes(1), self.config.batch_size)
            .await
        {
            Ok((_, failed)) => report.failed += failed,
            Err(EngineError::Storage(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "could not settle transcripts"),
        }
        // Retention changes first: what they shorten may be due in this very pass.
        match self
            .engine
            .advance_retention_jobs(self.config.batch_size, self.config.max_per_pass)
            .await
        {
            Ok(progress) => report.rescheduled = progress.rescheduled,
            Err(EngineError::Storage(e)) => return Err(e),
            Err(e) => tracing::warn!(error = %e, "could not advance retention changes"),
        }
        let mut by_reason: BTreeMap<String, u64> = BTreeMap::new();
        self.progress.send_replace((0, 0));
        // Claiming the next batch overlaps the deletion of the ones before it, up to
        // BATCHES_IN_FLIGHT at a time: a batch waits on the disk (unlinks, syncs) for
        // most of its time. A claimed artifact is no longer due; where the due index
        // lags its claims, `claim_due` skips the artifacts in flight. Each deletion runs
        // in a task of its own and every one is awaited before the pass ends, even after
        // a failure: the pass never cuts a batch off midway. (Dropping `run_once` itself
        // leaves the tasks running to their end; a process exit stops them as a crash
        // would, which the claims' leases recover.)
        let mut deleting: VecDeque<InFlight> = VecDeque::new();
        let mut first_error: Option<StorageError> = None;
        let mut tally = |done: Result<crate::engine::Result<DueBatch>, tokio::task::JoinError>,
                         report: &mut SweepReport,
                         first_error: &mut Option<StorageError>| {
            let batch = match done {
                Ok(Ok(batch)) => batch,
                Ok(Err(error)) => {
                    first_error.get_or_insert(storage(error));
                    return;
                }
                Err(error) => {
                    first_error.get_or_insert(StorageError::Other {
                        backend: "sweeper",
                        source: Box::new(error),
                    });
                    return;
                }
            };
            report.failed += batch.failed;
            report.overdue += batch.overdue;
            for t in &batch.deleted {
                *by_reason.entry(t.reason.to_string()).or_default() += 1;
            }
            report.lags.extend(batch.lags);
            report.deleted += batch.deleted.len() as u64;
            self.progress
                .send_replace((report.examined, report.deleted));
        };
        loop {
            if report.examined >= self.config.max_per_pass {
                match self.engine.anything_due(now).await {
                    Ok(due) => report.truncated = due,
                    Err(error) => {
                        first_error.get_or_insert(storage(error));
                    }
                }
                break;
            }
            let in_flight: HashSet<ArtifactId> =
                deleting.iter().flat_map(|(ids, _)| ids).copied().collect();
            let batch = match self
                .engine
                .claim_due(now, self.config.batch_size, &in_flight)
                .await
            {
                Ok(batch) => batch,
                Err(error) => {
                    first_error.get_or_insert(storage(error));
                    break;
                }
            };
            // A short read was everything due (and not claimed by others) at `now`.
            let last = batch.read < self.config.batch_size as usize;
            report.examined += batch.examined as u64;
            if batch.examined == 0 {
                // Nothing but artifacts of batches still in flight, which a lagging due
                // index lists: wait for the oldest of them, then read again.
                if last {
                    break;
                }
                let Some((_, oldest)) = deleting.pop_front() else {
                    break;
                };
                tally(oldest.await, report, &mut first_error);
                if first_error.is_some() {
                    break;
                }
                continue;
            }
            let ids = batch.ids();
            let engine = self.engine.clone();
            let handle = tokio::spawn(async move { engine.delete_claimed_batch(batch).await });
            deleting.push_back((ids, handle));
            if deleting.len() >= BATCHES_IN_FLIGHT {
                if let Some((_, oldest)) = deleting.pop_front() {
                    tally(oldest.await, report, &mut first_error);
                }
            }
            if last || first_error.is_some() {
                break;
            }
        }
        while let Some((_, next)) = deleting.pop_front() {
            tally(next.await, report, &mut first_error);
        }
        report.deleted_by_reason = by_reason;
        if let Some(error) = first_error {
            return Err(error);
        }
        Ok(())
    }

    /// When the loop should wake next: the next cron tick, the next due artifact, at once
    /// while a retention change waits to be carried out, and within a claim lease in any
    /// case: the due time skips artifacts under a claim, and a claim a crashed instance
    /// left is due again only when its lease runs out, whatever the cron says.
    /// A pending change wakes the loop at once unless the last pass achieved nothing
    /// (`idle`: a change that cannot be carried out must not spin passes); it is then
    /// taken up at the usual times, within a claim lease at the latest.
    async fn next_wake(&self, now: DateTime<Utc>, idle: bool) -> DateTime<Utc> {
        let cron_next = self
            .config
            .schedule
            .after(&now)
            .next()
            .unwrap_or(now + Duration::days(365))
            .min(now + self.engine.claim_lease());
        match self.engine.has_retention_jobs().await {
            Ok(true) if !idle => return now,
            Ok(_) => {}
            Err(error) => {
                tracing::warn!(error = %error, "could not read pending retention changes; waiting for the next pass");
            }
        }
        match self.engine.next_due(now).await {
            Ok(Some(due)) => due.min(cron_next),
            Ok(None) => cron_next,
            Err(error) => {
                tracing::warn!(error = %error, "could not read the next due time; waiting for the cron tick");
                cron_next
            }
        }
    }

    /// Runs passes until `shutdown`; the pass in progress always finishes. Reconciles at
    /// each tick of its schedule, after that tick's pass.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let clock = self.engine.clock().clone();
        let wake = self.engine.deadline_changes();
        let mut idle = false;
        let next_reconcile = |now: DateTime<Utc>| {
            self.config
                .reconcile_schedule
                .after(&now)
                .next()
                .unwrap_or(now + Duration::days(365))
        };
        let mut reconcile_at = next_reconcile(clock.now());
        let mut last_pass_ended: Option<std::time::Instant> = None;
        loop {
            let now = clock.now();
            let mut wake_at = self.next_wake(now, idle).await.min(reconcile_at);
            // A pass that achieved nothing must not spin on the same due time.
            if idle {
                wake_at = wake_at.max(now + Duration::seconds(1));
            }
            tokio::select! {
                _ = shutdown.cancelled() => break,
                // An earlier deadline (or a retention change) may have appeared:
                // recompute the wake time.
                _ = wake.notified() => continue,
                _ = clock.sleep_until(wake_at) => {}
            }
            // Under a steady stream of deadlines the next one is always a few ms away:
            // passes at most every MIN_PASS_GAP of wall time, so one pass takes what fell
            // due meanwhile instead of one pass (and its records) per deletion.
            if let Some(ended) = last_pass_ended {
                let since = ended.elapsed();
                if since < MIN_PASS_GAP {
                    tokio::select! {
                        _ = shutdown.cancelled() => break,
                        _ = tokio::time::sleep(MIN_PASS_GAP - since) => {}
                    }
                }
            }
            match self.run_once(clock.now()).await {
                Ok(report) => {
                    idle = report.deleted == 0
                        && report.stuck_transcripts_errored == 0
                        && report.rescheduled == 0;
                }
                Err(error) => {
                    idle = true;
                    tracing::error!(error = %error, "sweep pass failed; the next one retries");
                }
            }
            if clock.now() >= reconcile_at {
                self.reconcile_if_due(reconcile_at).await;
                reconcile_at = next_reconcile(clock.now());
            }
            last_pass_ended = Some(std::time::Instant::now());
            self.passes.send_modify(|n| *n += 1);
        }
        tracing::info!("sweeper stopped");
    }
}

/// A pass ends on a storage failure; other engine errors are storage failures at heart.
fn storage(error: EngineError) -> StorageError {
    match error {
        EngineError::Storage(e) => e,
        other => StorageError::Other {
            backend: "engine",
            source: other.to_string().into(),
        },
    }
}
