//! Lethe against real peers, side by side, in one invocation on one machine with one
//! workload: Lethe embedded (in process, the real sweeper loop on the system clock),
//! Redis key expiry (keyspace notifications) and a PostgreSQL cron-style
//! `DELETE ... WHERE delete_after <= now() RETURNING delete_after`.
//!
//! ```text
//! cargo run --release --example peers                    # print the report (~15 min on 2 cores)
//! cargo run --release --example peers -- --write-report  # and rewrite its section of docs/benchmarks.md
//! cargo run --release --example peers -- --burst 1000000 # a burst of 10^6
//! cargo run --release --example peers -- --api-seconds 30 # Lethe's API throughput only
//! cargo run --release --example peers -- --help          # every flag
//! ```
//!
//! Workloads: **burst** — K artifacts (keys, rows) all due at one instant a few seconds
//! after loading; **steady** — R deletions a second for D seconds while a fixed rate of
//! reads and writes runs against each system (Lethe: `GET /v2/transcript?limit=10` and
//! `POST /v2/transcript` over loopback HTTP; Redis: `GET` of a live key and `SET`;
//! PostgreSQL: `SELECT` by key and `INSERT`). Each measurement is repeated `--runs`
//! times and each figure's median is reported; the disk's physical floor (unlink and
//! fsync rates) is measured in the data dir the same way.
//!
//! How each figure is measured is written into the report itself (`How it is measured`).

#[path = "peers/resp.rs"]
mod resp;
#[path = "peers/sys.rs"]
mod sys;

/// mimalloc instead of glibc's allocator: a profile of the list under 8 clients spent a
/// fifth of the CPU in glibc's malloc and free across the runtime's and SQLite's threads.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Duration as CDuration, Utc};
use clap::{Parser, ValueEnum};
use futures::future::BoxFuture;
use lethe::clock::SystemClock;
use lethe::config::Config;
use lethe::domain::{
    new_id, Account, Artifact, ArtifactKind, Content, RetentionSettings, ScheduleKind,
};
use lethe::http::Tokens;
use lethe::metrics::Metrics;
use lethe::startup::App;
use lethe::storage::encrypted::{DataKeyStore, EncryptedContentStore};
use lethe::storage::local::LocalContentStore;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::{AuditLog, ContentStore};
use rand::Rng;
use secrecy::SecretString;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

/// Threads whose CPU time is Lethe's: its runtime (workers and blocking pool: the sweeper,
/// the HTTP server, file I/O) and SQLite's connection threads.
const LETHE_THREADS: &[&str] = &["lethe-rt", "sqlx-sqlite-wor"];
const PG_TABLE: &str = "lethe_peers_items";
const REDIS_CHANNEL: &[u8] = b"__keyevent@0__:expired";
const MARK_BEGIN: &str = "<!-- peers:begin";
const MARK_END: &str = "<!-- peers:end -->";

#[derive(Parser, Debug, Clone)]
#[command(about = "Lethe vs Redis key expiry vs a PostgreSQL cron DELETE, side by side")]
struct Args {
    /// Artifacts (keys, rows) due at the burst's one instant.
    #[arg(long, default_value_t = 100_000)]
    burst: usize,
    /// Deletions per second of the steady workload (the issue's target load: 2,000/s
    /// with 500 API requests/s).
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Seconds the steady workload lasts.
    #[arg(long, default_value_t = 60)]
    duration: u64,
    /// Reads per second, and as many writes per second, during the steady workload.
    #[arg(long, default_value_t = 250)]
    api_rate: u32,
    /// Seconds between two runs of PostgreSQL's DELETE (a cron job's period).
    #[arg(long, default_value_t = 1.0)]
    pg_interval: f64,
    /// Times each measurement is repeated; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Systems to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "lethe,redis,postgres"
    )]
    systems: Vec<System>,
    /// Workloads to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "burst,steady"
    )]
    workloads: Vec<Workload>,
    /// Redis address.
    #[arg(long, default_value = "127.0.0.1:6379")]
    redis: String,
    /// PostgreSQL URL (if its database does not exist, a scratch `lethe_peers` is used).
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/test")]
    postgres_url: String,
    /// Where Lethe's data dirs and the floor measurement go (default: the temp dir).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Files unlinked by the floor measurement.
    #[arg(long, default_value_t = 10_000)]
    floor_files: usize,
    /// Fsyncs (and unlink + directory fsyncs) done by the floor measurement.
    #[arg(long, default_value_t = 1_000)]
    floor_fsyncs: usize,
    /// Instead of the comparison: Lethe's API throughput, closed loop, this many seconds
    /// per operation (ingest: create + processing + complete; list: `limit=10`).
    #[arg(long, default_value_t = 0)]
    api_seconds: u64,
    /// Concurrent clients of the API throughput measurement.
    #[arg(long, default_value_t = 8)]
    api_clients: usize,
    /// Rewrite the peers section of the report file with this run's results.
    #[arg(long)]
    write_report: bool,
    /// The report file.
    #[arg(long, default_value = "docs/benchmarks.md")]
    report: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum System {
    Lethe,
    Redis,
    Postgres,
}

impl System {
    fn name(self) -> &'static str {
        match self {
            System::Lethe => "Lethe",
            System::Redis => "Redis",
            System::Postgres => "PostgreSQL",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
enum Workload {
    Burst,
    Steady,
}

impl Args {
    fn size(&self, w: Workload) -> usize {
        match w {
            Workload::Burst => self.burst,
            Workload::Steady => self.rate as usize * self.duration as usize,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Time, plans, observations

fn ms_between(later: DateTime<Utc>, earlier: DateTime<Utc>) -> f64 {
    (later - earlier).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

async fn sleep_until(t: DateTime<Utc>) {
    if let Ok(d) = (t - Utc::now()).to_std() {
        tokio::time::sleep(d).await;
    }
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.retain(|x| x.is_finite());
    if xs.is_empty() {
        return f64::NAN;
    }
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

/// When each of `n` items is due: `first`, then every `step_us`.
#[derive(Clone, Copy, Debug)]
struct Plan {
    n: usize,
    first: DateTime<Utc>,
    step_us: i64,
}

impl Plan {
    /// The instant goes far enough ahead that loading (estimated from a pilot load of
    /// the filler) ends a few seconds before it.
    fn new(args: &Args, w: Workload, estimated_load: Duration) -> Plan {
        let lead = Duration::from_secs(3) + estimated_load.mul_f64(1.5);
        let first = Utc::now() + CDuration::from_std(lead).unwrap_or(CDuration::seconds(3));
        // Whole milliseconds, so Redis's PXAT holds the same instant.
        let first = DateTime::from_timestamp_millis(first.timestamp_millis() + 1).unwrap_or(first);
        Plan {
            n: args.size(w),
            first,
            step_us: match w {
                Workload::Burst => 0,
                Workload::Steady => 1_000_000 / i64::from(args.rate.max(1)),
            },
        }
    }

    fn deadline(&self, i: usize) -> DateTime<Utc> {
        self.first + CDuration::microseconds(self.step_us * i as i64)
    }

    fn last(&self) -> DateTime<Utc> {
        self.deadline(self.n.saturating_sub(1))
    }

    /// Seconds the loading overran the plan (it should have ended before the instant).
    fn overrun(&self) -> f64 {
        let slack = ms_between(self.first, Utc::now()) / 1000.0;
        if slack < 0.2 {
            eprintln!("  warning: loading ended {slack:.2} s before the first deadline (planned ≥ 3 s); its lag includes the overrun");
            (0.2 - slack).max(0.0)
        } else {
            0.0
        }
    }

    /// When a system that has not finished is given up on.
    fn give_up_at(&self, args: &Args, w: Workload) -> DateTime<Utc> {
        match w {
            Workload::Burst => self.first + CDuration::seconds(60 + (self.n / 500) as i64),
            Workload::Steady => {
                self.last()
                    .max(self.first + CDuration::seconds(args.duration as i64))
                    + CDuration::seconds(30 + (args.pg_interval * 3.0) as i64)
            }
        }
    }
}

/// When each deletion was seen done, against its deadline.
#[derive(Default)]
struct Observed {
    lags_ms: Vec<f64>,
    first: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl Observed {
    fn add(&mut self, done: DateTime<Utc>, deadline: DateTime<Utc>) {
        self.lags_ms.push(ms_between(done, deadline));
        self.first = Some(self.first.map_or(done, |f| f.min(done)));
        self.last = Some(self.last.map_or(done, |l| l.max(done)));
    }
}

#[derive(Default)]
struct ApiStats {
    read: Vec<f64>,
    write: Vec<f64>,
    errors: usize,
}

/// One measurement of one system on one workload. NaN: not applicable / not measured.
#[derive(Clone, Debug)]
struct Measure {
    expected: f64,
    deleted: f64,
    rate: f64,
    first_ms: f64,
    last_ms: f64,
    lag_p50: f64,
    lag_p99: f64,
    lag_max: f64,
    read_p50: f64,
    read_p99: f64,
    write_p50: f64,
    write_p99: f64,
    api_errors: f64,
    cpu_s: f64,
    process_cpu_s: f64,
    mem_mib: f64,
    recorded_p50: f64,
    recorded_p99: f64,
    recorded_max: f64,
    passes: f64,
    statement_ms: f64,
    overrun_s: f64,
}

impl Measure {
    fn new(plan: &Plan, mut obs: Observed, mut api: Option<ApiStats>) -> Measure {
        let deleted = obs.lags_ms.len();
        let nan = f64::NAN;
        let (first_ms, last_ms, rate) = match (obs.first, obs.last) {
            (Some(f), Some(l)) => {
                let last_ms = ms_between(l, plan.first);
                (
                    ms_between(f, plan.first),
                    last_ms,
                    deleted as f64 / (last_ms.max(0.001) / 1000.0),
                )
            }
            _ => (nan, nan, 0.0),
        };
        let (read_p50, read_p99, write_p50, write_p99, api_errors) = match api.as_mut() {
            Some(a) => (
                percentile(&mut a.read, 0.5),
                percentile(&mut a.read, 0.99),
                percentile(&mut a.write, 0.5),
                percentile(&mut a.write, 0.99),
                a.errors as f64,
            ),
            None => (nan, nan, nan, nan, nan),
        };
        Measure {
            expected: plan.n as f64,
            deleted: deleted as f64,
            rate,
            first_ms,
            last_ms,
            lag_p50: percentile(&mut obs.lags_ms, 0.5),
            lag_p99: percentile(&mut obs.lags_ms, 0.99),
            lag_max: percentile(&mut obs.lags_ms, 1.0),
            read_p50,
            read_p99,
            write_p50,
            write_p99,
            api_errors,
            cpu_s: nan,
            process_cpu_s: nan,
            mem_mib: nan,
            recorded_p50: nan,
            recorded_p99: nan,
            recorded_max: nan,
            passes: nan,
            statement_ms: nan,
            overrun_s: 0.0,
        }
    }

    /// Each field's median over the runs, on its own.
    fn median_of(runs: &[Measure]) -> Measure {
        let m = |f: fn(&Measure) -> f64| median(runs.iter().map(f).collect());
        Measure {
            expected: m(|x| x.expected),
            deleted: m(|x| x.deleted),
            rate: m(|x| x.rate),
            first_ms: m(|x| x.first_ms),
            last_ms: m(|x| x.last_ms),
            lag_p50: m(|x| x.lag_p50),
            lag_p99: m(|x| x.lag_p99),
            lag_max: m(|x| x.lag_max),
            read_p50: m(|x| x.read_p50),
            read_p99: m(|x| x.read_p99),
            write_p50: m(|x| x.write_p50),
            write_p99: m(|x| x.write_p99),
            api_errors: m(|x| x.api_errors),
            cpu_s: m(|x| x.cpu_s),
            process_cpu_s: m(|x| x.process_cpu_s),
            mem_mib: m(|x| x.mem_mib),
            recorded_p50: m(|x| x.recorded_p50),
            recorded_p99: m(|x| x.recorded_p99),
            recorded_max: m(|x| x.recorded_max),
            passes: m(|x| x.passes),
            statement_ms: m(|x| x.statement_ms),
            overrun_s: runs.iter().map(|x| x.overrun_s).fold(0.0, f64::max),
        }
    }

    fn summary(&self) -> String {
        let traffic = if self.read_p50.is_finite() {
            format!(
                ", read p50/p99 {:.2}/{:.2} ms, write p50/p99 {:.2}/{:.2} ms, {} errors",
                self.read_p50, self.read_p99, self.write_p50, self.write_p99, self.api_errors
            )
        } else {
            String::new()
        };
        format!(
            "{}/{} deleted, {:.0}/s, lag p50 {:.1} p99 {:.1} max {:.1} ms, CPU {:.2} s, mem {:.0} MiB{}",
            self.deleted,
            self.expected,
            self.rate,
            self.lag_p50,
            self.lag_p99,
            self.lag_max,
            self.cpu_s,
            self.mem_mib,
            traffic
        )
    }
}

// ---------------------------------------------------------------------------------------
// The fixed-rate read/write load of the steady workload (open loop: a request is sent on
// its tick whether or not earlier ones have answered).

type Op = Arc<dyn Fn(u64) -> BoxFuture<'static, Result<()>> + Send + Sync>;

static REPORTED_ERROR: AtomicBool = AtomicBool::new(false);

async fn drive(start: DateTime<Utc>, secs: u64, rate: u32, op: Op) -> (Vec<f64>, usize) {
    let total = u64::from(rate) * secs;
    let mut set = tokio::task::JoinSet::new();
    sleep_until(start).await;
    let t0 = tokio::time::Instant::now();
    for i in 0..total {
        tokio::time::sleep_until(t0 + Duration::from_secs_f64(i as f64 / f64::from(rate))).await;
        let fut = op(i);
        set.spawn(async move {
            let began = Instant::now();
            let result = fut.await;
            let ms = began.elapsed().as_secs_f64() * 1000.0;
            if let Err(e) = &result {
                if !REPORTED_ERROR.swap(true, Ordering::Relaxed) {
                    eprintln!("  request failed (first error shown): {e:#}");
                }
            }
            (ms, result.is_ok())
        });
    }
    let mut ms = Vec::with_capacity(total as usize);
    let mut errors = 0;
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((latency, true)) => ms.push(latency),
            _ => errors += 1,
        }
    }
    (ms, errors)
}

async fn api_load(start: DateTime<Utc>, secs: u64, rate: u32, read: Op, write: Op) -> ApiStats {
    let (r, w) = tokio::join!(
        drive(start, secs, rate, read),
        drive(start, secs, rate, write)
    );
    ApiStats {
        read: r.0,
        write: w.0,
        errors: r.1 + w.1,
    }
}

struct Ctx {
    args: Args,
    root: PathBuf,
    lethe_rt: Handle,
    client: reqwest::Client,
    tck: f64,
}

// ---------------------------------------------------------------------------------------
// Lethe embedded

struct Lethe {
    dir: tempfile::TempDir,
    app: App,
    /// A second pool on the same SQLite file, for loading and reading back (idle while
    /// measuring).
    sql: Arc<SqliteStore>,
    account: Account,
    key: String,
    base: String,
    server_stop: CancellationToken,
}

/// The production wiring (`App::build`: SQLite, encrypted content files, the deletion
/// log) in a fresh data dir, its API served on a loopback port, all on Lethe's runtime.
async fn lethe_start(ctx: &Ctx) -> Result<Lethe> {
    let dir = tempfile::Builder::new()
        .prefix("lethe-")
        .tempdir_in(&ctx.root)?;
    let data_dir = dir.path().to_owned();
    let (app, account, key, base, server_stop) = ctx
        .lethe_rt
        .spawn(async move {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
            let address = listener.local_addr()?;
            let mut config = Config::defaults();
            config.data_dir = data_dir;
            config.listen = address;
            config.public_base_url = Some(format!("http://{address}"));
            let app = App::build(config, Arc::new(SystemClock)).await?;
            let (account, key) = app
                .engine
                .create_account("peers-bench", RetentionSettings::default())
                .await?;
            let tokens = Tokens {
                admin: SecretString::from("peers-admin"),
                internal: SecretString::from("peers-internal"),
            };
            let header_read = app.config.header_read_timeout();
            let router = lethe::http::router(app.http_state(tokens));
            let stop = CancellationToken::new();
            let serving = stop.clone();
            tokio::spawn(async move {
                if let Err(e) =
                    lethe::http::server::serve(listener, router, header_read, serving).await
                {
                    eprintln!("lethe server stopped: {e}");
                }
            });
            anyhow::Ok((
                app,
                account,
                key.expose().to_owned(),
                format!("http://{address}"),
                stop,
            ))
        })
        .await??;
    let sql = Arc::new(SqliteStore::open(&dir.path().join("lethe.db")).await?);
    Ok(Lethe {
        dir,
        app,
        sql,
        account,
        key,
        base,
        server_stop,
    })
}

fn upload(
    account: &Account,
    id: uuid::Uuid,
    created: DateTime<Utc>,
    due: Option<DateTime<Utc>>,
) -> Artifact {
    let mut a = Artifact::new_live(id, account, None, ArtifactKind::UploadedAudio, created);
    a.anchor_at = Some(created);
    a.schedule = if due.is_some() {
        ScheduleKind::Point
    } else {
        ScheduleKind::Indefinite
    };
    a.delete_after = due;
    a.delete_by = due.map(|d| d + CDuration::hours(1));
    a.due_at = due;
    a.size_bytes = 256;
    a
}

/// Real content for every upload: one 256-byte upload is stored through the encrypted
/// store over files (a data key in SQLite, a sealed file); its sealed bytes and wrapped key
/// are then copied for the others (without an fsync each, then one `sync`), so loading
/// takes seconds while the deletion side meets what production stores for audio: a sealed
/// file each. (Production keeps an object this small as a row of the SQLite file; audio is
/// larger than that threshold, and a file is the costlier deletion.)
async fn lethe_seed(l: &Lethe, ids: &[uuid::Uuid], created: DateTime<Utc>) -> Result<()> {
    let keys: Vec<String> = ids
        .iter()
        .map(|id| upload(&l.account, *id, created, None).content_key)
        .collect();
    let content_root = l.app.config.data_dir.join("content");
    let files = Arc::new(LocalContentStore::open(&content_root).await?);
    let store = EncryptedContentStore::new(
        files,
        l.sql.clone(),
        lethe::startup::master_key(&l.app.config)?,
    );
    store.put(&keys[0], Content::new(vec![0x5au8; 256])).await?;
    let wrapped = l
        .sql
        .data_key(lethe::domain::content_scope(&keys[0]))
        .await?
        .context("the data key of the seeded upload")?;
    let sealed = tokio::fs::read(content_root.join(&keys[0])).await?;
    let rest: Vec<String> = keys[1..].to_vec();
    let root = content_root.clone();
    tokio::task::spawn_blocking(move || -> Result<()> {
        for key in &rest {
            let path = root.join(key);
            if let Some(parent) = path.parent() {
                std::fs::create_dir_all(parent)?;
            }
            std::fs::write(&path, &sealed)?;
        }
        Ok(())
    })
    .await??;
    for chunk in keys[1..].chunks(10_000) {
        let mut tx = l.sql.pool().begin().await?;
        for key in chunk {
            sqlx::query(
                "INSERT INTO data_keys (scope, wrapped) VALUES (?, ?) ON CONFLICT (scope) DO NOTHING",
            )
            .bind(lethe::domain::content_scope(key))
            .bind(&wrapped)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
    }
    tokio::task::spawn_blocking(sys::sync_all_filesystems).await?;
    Ok(())
}

/// Polls Lethe's deletion counter every 2 ms: when each batch of deletions was finished
/// (the counter moves after a batch's tombstones and index updates are committed).
struct Probe {
    stop: CancellationToken,
    count: Arc<AtomicU64>,
    handle: tokio::task::JoinHandle<Vec<(DateTime<Utc>, u64)>>,
}

impl Probe {
    fn start(metrics: Arc<Metrics>) -> Probe {
        let stop = CancellationToken::new();
        let count = Arc::new(AtomicU64::new(0));
        let base = metrics.deletions_total();
        let (s, c) = (stop.clone(), count.clone());
        let handle = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut last = 0;
            let mut tick = tokio::time::interval(Duration::from_millis(2));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                tokio::select! {
                    _ = s.cancelled() => break,
                    _ = tick.tick() => {}
                }
                let now = metrics.deletions_total().saturating_sub(base);
                if now != last {
                    samples.push((Utc::now(), now));
                    last = now;
                    c.store(now, Ordering::Relaxed);
                }
            }
            samples
        });
        Probe {
            stop,
            count,
            handle,
        }
    }

    fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    async fn finish(self) -> Vec<(DateTime<Utc>, u64)> {
        self.stop.cancel();
        self.handle.await.unwrap_or_default()
    }
}

fn lethe_ops(client: &reqwest::Client, base: &str, key: &str) -> (Op, Op) {
    let (c, b, k) = (client.clone(), base.to_owned(), key.to_owned());
    let read: Op = Arc::new(move |_| {
        let (c, b, k) = (c.clone(), b.clone(), k.clone());
        Box::pin(async move {
            let r = c
                .get(format!("{b}/v2/transcript?limit=10"))
                .header("authorization", k)
                .send()
                .await?;
            let status = r.status();
            r.bytes().await?;
            if !status.is_success() {
                bail!("GET /v2/transcript answered {status}");
            }
            Ok(())
        })
    });
    let (c, b, k) = (client.clone(), base.to_owned(), key.to_owned());
    let write: Op = Arc::new(move |i| {
        let (c, b, k) = (c.clone(), b.clone(), k.clone());
        Box::pin(async move {
            let r = c
                .post(format!("{b}/v2/transcript"))
                .header("authorization", k)
                .json(&serde_json::json!({
                    "audio_url": format!("https://media.example.com/calls/{i}.mp3")
                }))
                .send()
                .await?;
            let status = r.status();
            let body = r.bytes().await?;
            if !status.is_success() {
                bail!(
                    "POST /v2/transcript answered {status}: {}",
                    String::from_utf8_lossy(&body)
                );
            }
            Ok(())
        })
    });
    (read, write)
}

/// Lethe's own record: tombstone `deleted_at` − `delete_after` (its lag metric's source).
async fn recorded_lags(l: &Lethe) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    let mut after = None;
    loop {
        let page = AuditLog::tombstones(&*l.sql, l.account.id, after, 5000).await?;
        for t in &page {
            if let Some(d) = t.delete_after {
                out.push(ms_between(t.deleted_at, d));
            }
        }
        if page.len() < 5000 {
            break;
        }
        after = page.last().map(|t| t.artifact_id);
    }
    Ok(out)
}

async fn lethe_phase(ctx: &Ctx, w: Workload) -> Result<Measure> {
    let args = &ctx.args;
    let l = lethe_start(ctx).await?;
    let n = args.size(w);
    let created = Utc::now();
    let ids: Vec<uuid::Uuid> = (0..n).map(|_| new_id(created)).collect();
    let began = Instant::now();
    lethe_seed(&l, &ids, created).await?;
    eprintln!(
        "  content files and data keys for {n} uploads written in {:.1} s",
        began.elapsed().as_secs_f64()
    );

    // The filler: live uploads due in a day (5% of the load, at least 1,000); timing
    // their insert sets how far ahead the instant must be.
    let filler_n = (n / 20).max(1000);
    let filler: Vec<Artifact> = (0..filler_n)
        .map(|_| {
            upload(
                &l.account,
                new_id(created),
                created,
                Some(created + CDuration::days(1)),
            )
        })
        .collect();
    let began = Instant::now();
    l.sql.insert_artifacts_bulk(&filler).await?;
    // The pilot scales badly to the whole load (10^5 rows took 6x the scaled pilot on a
    // 2-core machine): at least 80 µs a row.
    let estimate = began
        .elapsed()
        .mul_f64(n as f64 / filler_n as f64)
        .max(Duration::from_micros(80 * n as u64));
    drop(filler);
    let plan = Plan::new(args, w, estimate);
    let loading = Instant::now();
    for (c, chunk) in ids.chunks(20_000).enumerate() {
        let batch: Vec<Artifact> = chunk
            .iter()
            .enumerate()
            .map(|(j, id)| {
                upload(
                    &l.account,
                    *id,
                    created,
                    Some(plan.deadline(c * 20_000 + j)),
                )
            })
            .collect();
        l.sql.insert_artifacts_bulk(&batch).await?;
    }
    drop(ids);
    eprintln!(
        "  index rows loaded in {:.1} s (planned for {:.1} s)",
        loading.elapsed().as_secs_f64(),
        estimate.as_secs_f64(),
    );
    let overrun = plan.overrun();

    // Measure: from here until the last deletion (burst) or the end of the traffic.
    let peak_reset = sys::reset_peak_rss();
    let threads0 = sys::thread_cpu(LETHE_THREADS);
    let process0 = sys::self_cpu();
    let passes = l.app.sweeper.passes();
    let passes0 = *passes.borrow();
    let probe = Probe::start(l.app.engine.metrics().clone());
    let sweeper_stop = CancellationToken::new();
    let sweeper = ctx
        .lethe_rt
        .spawn(l.app.sweeper.clone().run(sweeper_stop.clone()));
    let api = (w == Workload::Steady).then(|| {
        let (read, write) = lethe_ops(&ctx.client, &l.base, &l.key);
        tokio::spawn(api_load(
            plan.first,
            args.duration,
            args.api_rate,
            read,
            write,
        ))
    });
    let give_up = plan.give_up_at(args, w);
    while probe.count() < n as u64 && Utc::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api = match api {
        Some(h) => Some(h.await?),
        None => None,
    };
    let samples = probe.finish().await;
    let cpu = sys::thread_cpu_delta(&threads0, &sys::thread_cpu(LETHE_THREADS));
    let process_cpu = sys::self_cpu().saturating_sub(process0);
    let hwm = sys::vm_kb("self", "VmHWM");
    let pass_count = passes.borrow().saturating_sub(passes0);
    sweeper_stop.cancel();
    sweeper.await?;

    // The i-th deletion (in deadline order: the due query reads by due_at, and each pass
    // deletes everything due at its start) was done when the counter first reached i.
    let mut obs = Observed::default();
    let mut k = 0usize;
    for (at, count) in &samples {
        while k < n && (k as u64) < *count {
            obs.add(*at, plan.deadline(k));
            k += 1;
        }
    }
    let mut recorded = recorded_lags(&l).await?;
    let mut m = Measure::new(&plan, obs, api);
    m.cpu_s = cpu as f64 / ctx.tck;
    m.process_cpu_s = process_cpu as f64 / ctx.tck;
    m.mem_mib = if peak_reset {
        hwm.map_or(f64::NAN, |kb| kb as f64 / 1024.0)
    } else {
        f64::NAN
    };
    m.recorded_p50 = percentile(&mut recorded, 0.5);
    m.recorded_p99 = percentile(&mut recorded, 0.99);
    m.recorded_max = percentile(&mut recorded, 1.0);
    m.passes = pass_count as f64;
    m.overrun_s = overrun;

    l.server_stop.cancel();
    let Lethe { dir, app, sql, .. } = l;
    sql.pool().close().await;
    drop(app);
    tokio::time::sleep(Duration::from_millis(200)).await;
    tokio::task::spawn_blocking(move || drop(dir)).await?;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// Redis key expiry

struct RedisPeer {
    addr: String,
    pid: Option<u32>,
    started_here: bool,
    notify_was: String,
    obuf_was: String,
    version: String,
    persistence: String,
}

async fn config_get(conn: &mut resp::Conn, name: &str) -> Result<String> {
    let v = conn.cmd(&[b"CONFIG", b"GET", name.as_bytes()]).await?;
    Ok(v.items().get(1).and_then(|v| v.text()).unwrap_or_default())
}

async fn redis_setup(addr: &str) -> Result<RedisPeer> {
    let mut started_here = false;
    let mut conn = match resp::Conn::connect(addr).await {
        Ok(c) => c,
        Err(first) => {
            eprintln!("Redis does not answer at {addr} ({first:#}); starting it with `redis-server --daemonize yes`");
            let status = std::process::Command::new("redis-server")
                .args(["--daemonize", "yes"])
                .status();
            match status {
                Ok(s) if s.success() => {}
                other => bail!(
                    "Redis does not answer at {addr}, and `redis-server --daemonize yes` could not start it ({other:?}); \
                     start Redis there, pass --redis HOST:PORT, or leave it out with --systems lethe,postgres"
                ),
            }
            started_here = true;
            let mut conn = None;
            for _ in 0..50 {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(c) = resp::Conn::connect(addr).await {
                    conn = Some(c);
                    break;
                }
            }
            conn.with_context(|| {
                format!("started `redis-server --daemonize yes`, but nothing answers at {addr}")
            })?
        }
    };
    let info = conn
        .cmd(&[b"INFO", b"server"])
        .await?
        .text()
        .unwrap_or_default();
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.strip_prefix(name).and_then(|v| v.strip_prefix(':')))
            .map(|v| v.trim().to_owned())
    };
    let version = field("redis_version").unwrap_or_else(|| "?".into());
    let pid = field("process_id")
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|p| sys::stat(*p).is_some());
    if pid.is_none() {
        eprintln!(
            "  Redis's process is not visible in /proc here: its CPU and memory are not measured"
        );
    }
    let save = config_get(&mut conn, "save").await?;
    let appendonly = config_get(&mut conn, "appendonly").await?;
    let appendfsync = config_get(&mut conn, "appendfsync").await?;
    let persistence = format!(
        "save \"{save}\", appendonly {appendonly}{}",
        if appendonly == "yes" {
            format!(", appendfsync {appendfsync}")
        } else {
            String::new()
        }
    );
    let hz = config_get(&mut conn, "hz").await?;
    let effort = config_get(&mut conn, "active-expire-effort").await?;
    let persistence = format!("{persistence}; hz {hz}, active-expire-effort {effort}");
    let notify_was = config_get(&mut conn, "notify-keyspace-events").await?;
    let obuf_was = config_get(&mut conn, "client-output-buffer-limit").await?;
    conn.cmd(&[b"CONFIG", b"SET", b"notify-keyspace-events", b"Ex"])
        .await?;
    // A burst of 10^6 notifications must not get the subscriber disconnected.
    conn.cmd(&[
        b"CONFIG",
        b"SET",
        b"client-output-buffer-limit",
        b"pubsub 0 0 0",
    ])
    .await?;
    Ok(RedisPeer {
        addr: addr.to_owned(),
        pid,
        started_here,
        notify_was,
        obuf_was,
        version,
        persistence,
    })
}

async fn redis_restore(peer: &RedisPeer) -> Result<()> {
    let mut conn = resp::Conn::connect(&peer.addr).await?;
    conn.cmd(&[
        b"CONFIG",
        b"SET",
        b"notify-keyspace-events",
        peer.notify_was.as_bytes(),
    ])
    .await?;
    conn.cmd(&[
        b"CONFIG",
        b"SET",
        b"client-output-buffer-limit",
        peer.obuf_was.as_bytes(),
    ])
    .await?;
    Ok(())
}

/// Sends `SET <key> <value> <expiry...>` for every key, pipelined 10,000 at a time.
async fn redis_set_all(
    conn: &mut resp::Conn,
    keys: impl Iterator<Item = (String, Vec<Vec<u8>>)>,
    value: &[u8],
) -> Result<()> {
    let mut pending = 0;
    for (key, expiry) in keys {
        let mut args: Vec<&[u8]> = vec![b"SET".as_slice(), key.as_bytes(), value];
        args.extend(expiry.iter().map(|e| e.as_slice()));
        conn.queue(&args);
        pending += 1;
        if pending == 10_000 {
            redis_drain(conn, pending).await?;
            pending = 0;
        }
    }
    redis_drain(conn, pending).await
}

async fn redis_drain(conn: &mut resp::Conn, pending: usize) -> Result<()> {
    conn.flush().await?;
    for _ in 0..pending {
        if let resp::Value::Error(e) = conn.read().await? {
            bail!("Redis refused a SET: {e}");
        }
    }
    Ok(())
}

async fn redis_cleanup(addr: &str, prefix: &str) -> Result<()> {
    let mut conn = resp::Conn::connect(addr).await?;
    let pattern = format!("{prefix}*");
    let mut cursor = "0".to_owned();
    loop {
        let v = conn
            .cmd(&[
                b"SCAN",
                cursor.as_bytes(),
                b"MATCH",
                pattern.as_bytes(),
                b"COUNT",
                b"10000",
            ])
            .await?;
        let items = v.items();
        cursor = items.first().and_then(|c| c.text()).unwrap_or_default();
        let keys: Vec<Vec<u8>> = items
            .get(1)
            .map(|k| {
                k.items()
                    .iter()
                    .filter_map(|k| match k {
                        resp::Value::Bulk(Some(b)) => Some(b.clone()),
                        _ => None,
                    })
                    .collect()
            })
            .unwrap_or_default();
        if !keys.is_empty() {
            let mut args: Vec<&[u8]> = vec![b"UNLINK".as_slice()];
            args.extend(keys.iter().map(|k| k.as_slice()));
            conn.cmd(&args).await?;
        }
        if cursor == "0" || cursor.is_empty() {
            break;
        }
    }
    Ok(())
}

async fn redis_phase(ctx: &Ctx, peer: &RedisPeer, w: Workload, tag: &str) -> Result<Measure> {
    let args = &ctx.args;
    let n = args.size(w);
    let prefix = format!("lethe-peers:{}:{tag}:", std::process::id());
    let value = vec![b'x'; 256];
    let mut conn = resp::Conn::connect(&peer.addr).await?;

    // Subscribe before anything can expire.
    let mut sub = resp::Conn::connect(&peer.addr).await?;
    sub.cmd(&[b"SUBSCRIBE", REDIS_CHANNEL]).await?;
    let due_prefix = format!("{prefix}d:").into_bytes();
    let expired = Arc::new(AtomicUsize::new(0));
    let sub_stop = CancellationToken::new();
    let subscriber = {
        let (expired, stop) = (expired.clone(), sub_stop.clone());
        tokio::spawn(async move {
            let mut seen: Vec<(DateTime<Utc>, usize)> = Vec::new();
            loop {
                let message = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = sub.read() => m,
                };
                let at = Utc::now();
                let Ok(message) = message else { break };
                if let Some(resp::Value::Bulk(Some(key))) = message.items().get(2) {
                    if let Some(i) = key
                        .strip_prefix(due_prefix.as_slice())
                        .and_then(|rest| std::str::from_utf8(rest).ok())
                        .and_then(|s| s.parse::<usize>().ok())
                    {
                        seen.push((at, i));
                        expired.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            seen
        })
    };

    // Filler: live keys (an hour's TTL as a safety net; removed at the end), the pilot.
    let filler_n = (n / 20).max(1000);
    let began = Instant::now();
    redis_set_all(
        &mut conn,
        (0..filler_n).map(|i| {
            (
                format!("{prefix}f:{i}"),
                vec![b"PX".to_vec(), b"3600000".to_vec()],
            )
        }),
        &value,
    )
    .await?;
    let estimate = began.elapsed().mul_f64(n as f64 / filler_n as f64);
    let plan = Plan::new(args, w, estimate);
    redis_set_all(
        &mut conn,
        (0..n).map(|i| {
            (
                format!("{prefix}d:{i}"),
                vec![
                    b"PXAT".to_vec(),
                    plan.deadline(i).timestamp_millis().to_string().into_bytes(),
                ],
            )
        }),
        &value,
    )
    .await?;
    let overrun = plan.overrun();

    let cpu0 = peer.pid.and_then(sys::stat).map(|s| s.cpu);
    let watch = peer
        .pid
        .map(|pid| sys::Watch::start(move || vec![pid], sys::Memory::Rss));
    let api = match w {
        Workload::Steady => {
            let mut conns = Vec::new();
            for _ in 0..8 {
                conns.push(tokio::sync::Mutex::new(
                    resp::Conn::connect(&peer.addr).await?,
                ));
            }
            let pool = Arc::new(conns);
            let (p, pre) = (pool.clone(), prefix.clone());
            let read: Op = Arc::new(move |i| {
                let (p, key) = (
                    p.clone(),
                    format!("{pre}f:{}", rand::thread_rng().gen_range(0..filler_n)),
                );
                Box::pin(async move {
                    let mut c = p[i as usize % p.len()].lock().await;
                    match c.cmd(&[b"GET", key.as_bytes()]).await? {
                        resp::Value::Bulk(Some(_)) => Ok(()),
                        other => bail!("GET of a live key answered {other:?}"),
                    }
                })
            });
            let (p, pre, v) = (pool.clone(), prefix.clone(), value.clone());
            let write: Op = Arc::new(move |i| {
                let (p, key, v) = (p.clone(), format!("{pre}n:{i}"), v.clone());
                Box::pin(async move {
                    let mut c = p[i as usize % p.len()].lock().await;
                    c.cmd(&[b"SET", key.as_bytes(), &v, b"PX", b"3600000"])
                        .await?;
                    Ok(())
                })
            });
            Some(tokio::spawn(api_load(
                plan.first,
                args.duration,
                args.api_rate,
                read,
                write,
            )))
        }
        Workload::Burst => None,
    };
    let give_up = plan.give_up_at(args, w);
    while expired.load(Ordering::Relaxed) < n && Utc::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api = match api {
        Some(h) => Some(h.await?),
        None => None,
    };
    sub_stop.cancel();
    let seen = subscriber.await?;
    let cpu1 = peer.pid.and_then(sys::stat).map(|s| s.cpu);
    let watched = watch.map(|w| w.finish());

    let mut obs = Observed::default();
    for (at, i) in seen {
        let deadline = plan.deadline(i);
        let deadline =
            DateTime::from_timestamp_millis(deadline.timestamp_millis()).unwrap_or(deadline);
        obs.add(at, deadline);
    }
    let mut m = Measure::new(&plan, obs, api);
    if let (Some(a), Some(b)) = (cpu0, cpu1) {
        m.cpu_s = b.saturating_sub(a) as f64 / ctx.tck;
    }
    if let Some(w) = watched {
        m.mem_mib = w.peak_kb as f64 / 1024.0;
    }
    m.overrun_s = overrun;
    redis_cleanup(&peer.addr, &prefix).await?;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// PostgreSQL cron-style DELETE

struct PgPeer {
    pool: PgPool,
    db: String,
    /// The scratch database this run created (dropped at the end), if any.
    created: Option<(PgConnectOptions, String)>,
    postmaster: Option<u32>,
    version: String,
    durability: String,
}

async fn pg_setup(url: &str) -> Result<PgPeer> {
    let options: PgConnectOptions = url
        .parse()
        .with_context(|| format!("not a PostgreSQL URL: {url}"))?;
    let pool_options = || {
        PgPoolOptions::new()
            .max_connections(12)
            .acquire_timeout(Duration::from_secs(10))
    };
    let unreachable = |e: sqlx::Error| {
        anyhow::anyhow!(
            "PostgreSQL does not answer at {url}: {e}; start it (e.g. `pg_ctlcluster 15 main start`), \
             pass --postgres-url, or leave it out with --systems lethe,redis"
        )
    };
    let (pool, created) = match pool_options().connect_with(options.clone()).await {
        Ok(pool) => (pool, None),
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("3D000") => {
            let admin = options.clone().database("postgres");
            let admin_pool = pool_options()
                .max_connections(1)
                .connect_with(admin.clone())
                .await
                .map_err(unreachable)?;
            let exists: bool = sqlx::query_scalar(
                "SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'lethe_peers')",
            )
            .fetch_one(&admin_pool)
            .await?;
            if !exists {
                sqlx::query("CREATE DATABASE lethe_peers")
                    .execute(&admin_pool)
                    .await?;
            }
            admin_pool.close().await;
            eprintln!(
                "PostgreSQL database {:?} does not exist; using the scratch database lethe_peers",
                options.get_database().unwrap_or("?")
            );
            let pool = pool_options()
                .connect_with(options.clone().database("lethe_peers"))
                .await
                .map_err(unreachable)?;
            (pool, (!exists).then(|| (admin, "lethe_peers".to_owned())))
        }
        Err(e) => return Err(unreachable(e)),
    };
    let db: String = sqlx::query_scalar("SELECT current_database()")
        .fetch_one(&pool)
        .await?;
    let version: String = sqlx::query_scalar("SHOW server_version")
        .fetch_one(&pool)
        .await?;
    let mut durability = Vec::new();
    for setting in [
        "synchronous_commit",
        "fsync",
        "wal_sync_method",
        "shared_buffers",
    ] {
        let v: String = sqlx::query_scalar(&format!("SHOW {setting}"))
            .fetch_one(&pool)
            .await?;
        durability.push(format!("{setting} {v}"));
    }
    let data_dir: String = sqlx::query_scalar("SHOW data_directory")
        .fetch_one(&pool)
        .await
        .unwrap_or_default();
    let postmaster = std::fs::read_to_string(Path::new(&data_dir).join("postmaster.pid"))
        .ok()
        .and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<u32>().ok()))
        .filter(|p| sys::stat(*p).is_some());
    if postmaster.is_none() {
        eprintln!(
            "  PostgreSQL's processes are not visible here: its CPU and memory are not measured"
        );
    }
    Ok(PgPeer {
        pool,
        db,
        created,
        postmaster,
        version,
        durability: durability.join(", "),
    })
}

async fn pg_teardown(peer: &PgPeer) {
    let _ = sqlx::query(&format!("DROP TABLE IF EXISTS {PG_TABLE}"))
        .execute(&peer.pool)
        .await;
    peer.pool.close().await;
    if let Some((admin, db)) = &peer.created {
        if let Ok(pool) = PgPoolOptions::new()
            .max_connections(1)
            .connect_with(admin.clone())
            .await
        {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db}"))
                .execute(&pool)
                .await;
            pool.close().await;
        }
    }
}

async fn pg_insert(
    pool: &PgPool,
    keys: &[String],
    due: &[DateTime<Utc>],
    payload: &str,
) -> Result<()> {
    for (k, d) in keys.chunks(10_000).zip(due.chunks(10_000)) {
        sqlx::query(&format!(
            "INSERT INTO {PG_TABLE} (k, delete_after, payload)
             SELECT k, d, $3 FROM UNNEST($1::text[], $2::timestamptz[]) AS u(k, d)"
        ))
        .bind(k)
        .bind(d)
        .bind(payload)
        .execute(pool)
        .await?;
    }
    Ok(())
}

/// The server's processes that serve this run: the postmaster, its background processes
/// (WAL writer, checkpointer, background writer, autovacuum) and the backends of this
/// run's database (not other databases' sessions).
fn pg_processes(postmaster: u32, db: String) -> impl Fn() -> Vec<u32> + Send + 'static {
    let ours = format!(" {db} ");
    move || {
        let mut pids = vec![postmaster];
        for pid in sys::children(postmaster) {
            let cmd = sys::cmdline(pid);
            if !cmd.contains('(') || cmd.contains(&ours) {
                pids.push(pid);
            }
        }
        pids
    }
}

async fn pg_phase(ctx: &Ctx, peer: &PgPeer, w: Workload, tag: &str) -> Result<Measure> {
    let args = &ctx.args;
    let n = args.size(w);
    let pool = peer.pool.clone();
    let payload = "x".repeat(256);
    for statement in [
        format!("DROP TABLE IF EXISTS {PG_TABLE}"),
        format!(
            "CREATE TABLE {PG_TABLE} (id bigserial PRIMARY KEY, k text NOT NULL, \
             delete_after timestamptz NOT NULL, payload text NOT NULL)"
        ),
        format!("CREATE INDEX {PG_TABLE}_due ON {PG_TABLE} (delete_after)"),
        format!("CREATE UNIQUE INDEX {PG_TABLE}_k ON {PG_TABLE} (k)"),
    ] {
        sqlx::query(&statement).execute(&pool).await?;
    }
    let filler_n = (n / 20).max(1000);
    let far = Utc::now() + CDuration::days(1);
    let keys: Vec<String> = (0..filler_n).map(|i| format!("f{i}")).collect();
    let began = Instant::now();
    pg_insert(&pool, &keys, &vec![far; filler_n], &payload).await?;
    let estimate = began.elapsed().mul_f64(n as f64 / filler_n as f64);
    let plan = Plan::new(args, w, estimate);
    let keys: Vec<String> = (0..n).map(|i| format!("d{i}")).collect();
    let due: Vec<DateTime<Utc>> = (0..n).map(|i| plan.deadline(i)).collect();
    pg_insert(&pool, &keys, &due, &payload).await?;
    drop((keys, due));
    sqlx::query(&format!("ANALYZE {PG_TABLE}"))
        .execute(&pool)
        .await?;
    let overrun = plan.overrun();

    let watch = peer
        .postmaster
        .map(|pm| sys::Watch::start(pg_processes(pm, peer.db.clone()), sys::Memory::Pss));
    let deleted = Arc::new(AtomicUsize::new(0));
    let cron_stop = CancellationToken::new();
    let cron = {
        let (pool, deleted, stop) = (pool.clone(), deleted.clone(), cron_stop.clone());
        let period_us = ((args.pg_interval * 1e6) as i64).max(1000);
        tokio::spawn(async move {
            let mut done: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
            let mut statement_ms: Vec<f64> = Vec::new();
            loop {
                // Ticks on wall-clock multiples of the period, as cron does.
                let next = (Utc::now().timestamp_micros() / period_us + 1) * period_us;
                let at = DateTime::from_timestamp_micros(next).unwrap_or_else(Utc::now);
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = sleep_until(at) => {}
                }
                let began = Instant::now();
                let rows: Vec<DateTime<Utc>> = match sqlx::query_scalar(&format!(
                    "DELETE FROM {PG_TABLE} WHERE delete_after <= now() RETURNING delete_after"
                ))
                .fetch_all(&pool)
                .await
                {
                    Ok(rows) => rows,
                    Err(e) => {
                        eprintln!("  the DELETE failed: {e}");
                        continue;
                    }
                };
                let finished = Utc::now();
                if !rows.is_empty() {
                    statement_ms.push(began.elapsed().as_secs_f64() * 1000.0);
                }
                deleted.fetch_add(rows.len(), Ordering::Relaxed);
                done.extend(rows.into_iter().map(|d| (finished, d)));
            }
            (done, statement_ms)
        })
    };
    let api = if w == Workload::Steady {
        let p = pool.clone();
        let read: Op = Arc::new(move |_| {
            let (p, key) = (
                p.clone(),
                format!("f{}", rand::thread_rng().gen_range(0..filler_n)),
            );
            Box::pin(async move {
                let row: Option<String> =
                    sqlx::query_scalar(&format!("SELECT payload FROM {PG_TABLE} WHERE k = $1"))
                        .bind(key)
                        .fetch_optional(&p)
                        .await?;
                if row.is_none() {
                    bail!("SELECT of a live key found nothing");
                }
                Ok(())
            })
        });
        let (p, v, t) = (pool.clone(), payload.clone(), tag.to_owned());
        let write: Op = Arc::new(move |i| {
            let (p, v, key) = (p.clone(), v.clone(), format!("n{t}-{i}"));
            Box::pin(async move {
                sqlx::query(&format!(
                    "INSERT INTO {PG_TABLE} (k, delete_after, payload) \
                     VALUES ($1, now() + interval '1 day', $2)"
                ))
                .bind(key)
                .bind(v)
                .execute(&p)
                .await?;
                Ok(())
            })
        });
        Some(tokio::spawn(api_load(
            plan.first,
            args.duration,
            args.api_rate,
            read,
            write,
        )))
    } else {
        None
    };
    let give_up = plan.give_up_at(args, w);
    while deleted.load(Ordering::Relaxed) < n && Utc::now() < give_up {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let api = match api {
        Some(h) => Some(h.await?),
        None => None,
    };
    cron_stop.cancel();
    let (done, mut statement_ms) = cron.await?;
    let watched = watch.map(|w| w.finish());

    let mut obs = Observed::default();
    for (finished, deadline) in done {
        obs.add(finished, deadline);
    }
    let mut m = Measure::new(&plan, obs, api);
    if let Some(w) = watched {
        m.cpu_s = w.cpu_ticks as f64 / ctx.tck;
        m.mem_mib = w.peak_kb as f64 / 1024.0;
    }
    m.statement_ms = percentile(&mut statement_ms, 1.0);
    m.overrun_s = overrun;
    sqlx::query(&format!("DROP TABLE IF EXISTS {PG_TABLE}"))
        .execute(&pool)
        .await?;
    Ok(m)
}

// ---------------------------------------------------------------------------------------
// The run and the report

type Results = BTreeMap<(Workload, System), Vec<Measure>>;

struct Facts {
    machine: sys::Machine,
    floor: sys::Floor,
    floors: Vec<sys::Floor>,
    redis: Option<String>,
    postgres: Option<String>,
    notes: Vec<String>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // `RUST_LOG` (e.g. `sqlx::query=debug`, every statement) logs Lethe to stderr.
    if std::env::var_os("RUST_LOG").is_some() {
        lethe::telemetry::init(lethe::config::LogFormat::Pretty);
    }
    if args.runs == 0 || args.burst == 0 || args.rate == 0 || args.duration == 0 {
        bail!("--runs, --burst, --rate and --duration must be positive");
    }
    let harness = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("peers-harness")
        .enable_all()
        .build()?;
    // Lethe runs on its own threads, so its CPU time can be told from the harness's
    // (load generator, probes). Idle threads are kept so none takes its time with it.
    let lethe_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("lethe-rt")
        .thread_keep_alive(Duration::from_secs(24 * 3600))
        .enable_all()
        .build()?;
    let result = harness.block_on(run(args, lethe_rt.handle().clone()));
    lethe_rt.shutdown_timeout(Duration::from_secs(5));
    result
}

async fn run(args: Args, lethe_rt: Handle) -> Result<()> {
    let passed: Vec<String> = std::env::args().skip(1).collect();
    let command = if passed.is_empty() {
        "cargo run --release --example peers".to_owned()
    } else {
        format!(
            "cargo run --release --example peers -- {}",
            passed.join(" ")
        )
    };
    let data_root = args.data_dir.clone().unwrap_or_else(std::env::temp_dir);
    let root = tempfile::Builder::new()
        .prefix("lethe-peers-")
        .tempdir_in(&data_root)
        .with_context(|| format!("cannot create a directory in {}", data_root.display()))?;
    let machine = sys::machine(root.path());
    eprintln!(
        "machine: {}, {} cores, {:.1} GiB, kernel {}, data dir on {}, load {}",
        machine.cpu, machine.cores, machine.ram_gib, machine.kernel, machine.disk, machine.load
    );

    if args.api_seconds > 0 {
        let ctx = Ctx {
            client: reqwest::Client::new(),
            root: root.path().to_owned(),
            lethe_rt,
            tck: sys::clk_tck(),
            args: args.clone(),
        };
        return api_throughput(&ctx).await;
    }
    let mut notes = Vec::new();
    let redis = match args.systems.contains(&System::Redis) {
        true => Some(redis_setup(&args.redis).await?),
        false => None,
    };
    if redis.as_ref().is_some_and(|r| r.started_here) {
        notes.push(format!(
            "Redis did not answer at {}; the harness started it with `redis-server --daemonize yes`.",
            args.redis
        ));
    }
    let pg = match args.systems.contains(&System::Postgres) {
        true => match pg_setup(&args.postgres_url).await {
            Ok(pg) => Some(pg),
            Err(e) => {
                if let Some(r) = &redis {
                    let _ = redis_restore(r).await;
                }
                return Err(e);
            }
        },
        false => None,
    };
    let ctx = Ctx {
        client: reqwest::Client::new(),
        root: root.path().to_owned(),
        lethe_rt,
        tck: sys::clk_tck(),
        args: args.clone(),
    };
    let mut floors = Vec::new();
    let results = phases(&ctx, redis.as_ref(), pg.as_ref(), &mut floors).await;
    if let Some(r) = &redis {
        if let Err(e) = redis_restore(r).await {
            eprintln!("could not restore Redis's configuration: {e:#}");
        }
    }
    if let Some(p) = &pg {
        pg_teardown(p).await;
    }
    let results = results?;
    let floor = sys::Floor {
        fsync: median(floors.iter().map(|f| f.fsync).collect()),
        unlink: median(floors.iter().map(|f| f.unlink).collect()),
        unlink_dirsync: median(floors.iter().map(|f| f.unlink_dirsync).collect()),
    };

    let facts = Facts {
        machine,
        floor,
        floors,
        redis: redis
            .as_ref()
            .map(|r| format!("Redis {} ({})", r.version, r.persistence)),
        postgres: pg.as_ref().map(|p| {
            format!(
                "PostgreSQL {} ({}), database `{}`",
                p.version, p.durability, p.db
            )
        }),
        notes,
    };
    let report = render(&args, &command, &facts, &results);
    println!("{report}");
    if args.write_report {
        write_report(&args.report, &report)?;
        eprintln!("wrote the peers section of {}", args.report.display());
    }
    drop(root);
    Ok(())
}

/// Lethe's API under `--api-clients` closed-loop clients: ingest (create, processing,
/// complete: what the pipeline and a customer do per transcript) and the list, each for
/// `--api-seconds`. Prints requests/s and latency percentiles.
async fn api_throughput(ctx: &Ctx) -> Result<()> {
    let args = &ctx.args;
    let l = lethe_start(ctx).await?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(args.api_clients * 2)
        .build()?;
    let ingest = |i: u64| {
        let (c, b, k) = (client.clone(), l.base.clone(), l.key.clone());
        async move {
            let mut took = Vec::with_capacity(3);
            let started = Instant::now();
            let r = c
                .post(format!("{b}/v2/transcript"))
                .header("authorization", &k)
                .json(&serde_json::json!({ "audio_url": format!("https://media.example.com/{i}.mp3") }))
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("POST /v2/transcript answered {}", r.status());
            }
            let id = r.json::<serde_json::Value>().await?["id"]
                .as_str()
                .context("an id")?
                .to_owned();
            took.push(started.elapsed());
            for (step, body) in [
                ("processing", serde_json::json!({})),
                (
                    "complete",
                    serde_json::json!({ "text": "hello", "audio_duration": 1.5 }),
                ),
            ] {
                let started = Instant::now();
                let r = c
                    .post(format!("{b}/internal/v1/transcripts/{id}/{step}"))
                    .bearer_auth("peers-internal")
                    .json(&body)
                    .send()
                    .await?;
                if !r.status().is_success() {
                    bail!("{step} answered {}", r.status());
                }
                r.bytes().await?;
                took.push(started.elapsed());
            }
            anyhow::Ok(took)
        }
    };
    // One authenticated GET of `path`.
    let get = |path: &'static str| {
        let (c, b, k) = (client.clone(), l.base.clone(), l.key.clone());
        async move {
            let started = Instant::now();
            let r = c
                .get(format!("{b}{path}"))
                .header("authorization", &k)
                .send()
                .await?;
            if !r.status().is_success() {
                bail!("GET {path} answered {}", r.status());
            }
            r.bytes().await?;
            anyhow::Ok(vec![started.elapsed()])
        }
    };
    let list = |_: u64| get("/v2/transcript?limit=10");
    let seconds = Duration::from_secs(args.api_seconds);
    eprintln!(
        "ingest: {} clients for {} s (create, processing, complete)",
        args.api_clients, args.api_seconds
    );
    // The server's CPU (its runtime and SQLite threads) per request: steadier than
    // requests/s on a machine whose speed drifts, and what the server-side work costs.
    let tck = sys::clk_tck();
    let server_cpu = || sys::thread_cpu(LETHE_THREADS);
    let cpu_per = |before: &std::collections::HashMap<u32, u64>, requests: usize| {
        let ticks = sys::thread_cpu_delta(before, &server_cpu());
        ticks as f64 / tck * 1e6 / requests.max(1) as f64
    };
    let before = server_cpu();
    let (done, mut lat) = closed_loop(args.api_clients, seconds, &ingest).await?;
    let requests = lat.len();
    let ingest_line = format!(
        "ingest: {:.0} transcripts/s ({:.0} requests/s), request p50 {:.2} / p99 {:.2} ms, server CPU {:.0} µs/request",
        done as f64 / seconds.as_secs_f64(),
        requests as f64 / seconds.as_secs_f64(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        cpu_per(&before, requests)
    );
    eprintln!(
        "list: {} clients for {} s",
        args.api_clients, args.api_seconds
    );
    let before = server_cpu();
    let (done, mut lat) = closed_loop(args.api_clients, seconds, &list).await?;
    let list_line = format!(
        "list (limit=10, over the URL-audio transcripts just ingested): {:.0} requests/s, p50 {:.2} / p99 {:.2} ms, server CPU {:.0} µs/request",
        done as f64 / seconds.as_secs_f64(),
        percentile(&mut lat, 0.5),
        percentile(&mut lat, 0.99),
        cpu_per(&before, lat.len())
    );
    // What the same clients get from the server when a request does (almost) nothing: the
    // ceiling of this closed loop, client and server sharing the machine's cores.
    let mut ceilings = Vec::new();
    for (label, path) in [
        ("GET /healthz (no authentication, no query)", "/healthz"),
        (
            "GET /v2/transcript?throttled_only=true (authentication only, an empty page)",
            "/v2/transcript?throttled_only=true",
        ),
    ] {
        eprintln!(
            "{label}: {} clients for {} s",
            args.api_clients, args.api_seconds
        );
        let before = server_cpu();
        let (done, mut lat) = closed_loop(args.api_clients, seconds, &|_| get(path)).await?;
        ceilings.push(format!(
            "{label}: {:.0} requests/s, p50 {:.2} / p99 {:.2} ms, server CPU {:.0} µs/request",
            done as f64 / seconds.as_secs_f64(),
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 0.99),
            cpu_per(&before, lat.len())
        ));
    }
    l.server_stop.cancel();
    println!("{ingest_line}\n{list_line}\n{}", ceilings.join("\n"));
    Ok(())
}

/// `clients` tasks each running `op` back to back until `seconds` pass; the operations
/// completed and every request's latency in ms.
async fn closed_loop<F, Fut>(clients: usize, seconds: Duration, op: &F) -> Result<(u64, Vec<f64>)>
where
    F: Fn(u64) -> Fut,
    Fut: std::future::Future<Output = Result<Vec<Duration>>>,
{
    let until = Instant::now() + seconds;
    let counter = AtomicU64::new(0);
    let runs = (0..clients).map(|_| async {
        let mut lat = Vec::new();
        let mut done = 0u64;
        while Instant::now() < until {
            let i = counter.fetch_add(1, Ordering::Relaxed);
            lat.extend(op(i).await?.iter().map(|d| d.as_secs_f64() * 1000.0));
            done += 1;
        }
        anyhow::Ok((done, lat))
    });
    let mut total = 0;
    let mut all = Vec::new();
    for r in futures::future::join_all(runs).await {
        let (done, lat) = r?;
        total += done;
        all.extend(lat);
    }
    Ok((total, all))
}

async fn phases(
    ctx: &Ctx,
    redis: Option<&RedisPeer>,
    pg: Option<&PgPeer>,
    floors: &mut Vec<sys::Floor>,
) -> Result<Results> {
    let args = &ctx.args;
    let mut results = Results::new();
    for run in 1..=args.runs {
        // The disk's floor, once per run, in the same conditions as the run.
        let (dir, files, fsyncs) = (ctx.root.clone(), args.floor_files, args.floor_fsyncs);
        let floor = tokio::task::spawn_blocking(move || sys::floor(&dir, files, fsyncs)).await??;
        eprintln!(
            "run {run}/{}: floor {:.0} fsync/s, {:.0} unlink/s, {:.0} unlink+dir fsync/s",
            args.runs, floor.fsync, floor.unlink, floor.unlink_dirsync
        );
        floors.push(floor);
        for &w in &args.workloads {
            for &s in &args.systems {
                eprintln!("run {run}/{}: {w:?} on {}", args.runs, s.name());
                let tag = format!("{run}{w:?}");
                let m = match s {
                    System::Lethe => lethe_phase(ctx, w).await,
                    System::Redis => match redis {
                        Some(r) => redis_phase(ctx, r, w, &tag).await,
                        None => continue,
                    },
                    System::Postgres => match pg {
                        Some(p) => pg_phase(ctx, p, w, &tag).await,
                        None => continue,
                    },
                }
                .with_context(|| format!("{w:?} on {}", s.name()))?;
                eprintln!("  {}", m.summary());
                results.entry((w, s)).or_default().push(m);
            }
        }
    }
    Ok(results)
}

fn f0(x: f64) -> String {
    if x.is_finite() {
        let s = format!("{x:.0}");
        // Thousands separators for readability.
        let (sign, digits) = s.strip_prefix('-').map_or(("", s.as_str()), |d| ("-", d));
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i) % 3 == 0 {
                out.push(',');
            }
            out.push(c);
        }
        format!("{sign}{out}")
    } else {
        "–".into()
    }
}

/// Milliseconds with a precision that suits their size.
fn fms(x: f64) -> String {
    if !x.is_finite() {
        "–".into()
    } else if x.abs() >= 100.0 {
        f0(x)
    } else if x.abs() >= 10.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.2}")
    }
}

fn fx(x: f64) -> String {
    if x >= 10.0 {
        format!("{x:.0}×")
    } else {
        format!("{x:.1}×")
    }
}

fn render(args: &Args, command: &str, facts: &Facts, results: &Results) -> String {
    let med: BTreeMap<(Workload, System), Measure> = results
        .iter()
        .map(|(k, v)| (*k, Measure::median_of(v)))
        .collect();
    let runs_of = |w: Workload, s: System, f: fn(&Measure) -> f64| -> String {
        results
            .get(&(w, s))
            .map(|v| v.iter().map(|m| f0(f(m))).collect::<Vec<_>>().join(", "))
            .unwrap_or_default()
    };
    let m = &facts.machine;
    let mut r = String::new();
    let _ = writeln!(
        r,
        "{MARK_BEGIN} — generated by examples/peers.rs; `--write-report` rewrites everything down to peers:end -->"
    );
    let _ = writeln!(
        r,
        "<!-- Generated by: {command}  ({}, this repo's 2-core machine kind) -->",
        Utc::now().format("%Y-%m-%d")
    );
    let _ = writeln!(
        r,
        "# Lethe against real peers: Redis key expiry and a PostgreSQL cron DELETE\n"
    );
    let _ = writeln!(r, "One command, one machine, the same workloads:\n");
    let _ = writeln!(r, "```sh\n{command}\n```\n");
    let _ = writeln!(
        r,
        "- **Machine**: {}, {} cores, {:.0} GiB RAM, Linux {}; data dir on {}; load average when it started {} (other builds may share this machine).",
        m.cpu, m.cores, m.ram_gib, m.kernel, m.disk, m.load
    );
    let _ = writeln!(
        r,
        "- **Physical floor of this disk** (measured in the data dir at the start of each run, median of {}): **{} fsync/s** (4 KiB write + fsync; runs: {}), {} unlink/s of small synced files in one directory, no fsync (runs: {}), {} unlink + directory fsync/s, one directory per file (runs: {}). Other processes' I/O on this machine moves these from run to run.",
        facts.floors.len(),
        f0(facts.floor.fsync),
        facts.floors.iter().map(|f| f0(f.fsync)).collect::<Vec<_>>().join(", "),
        f0(facts.floor.unlink),
        facts.floors.iter().map(|f| f0(f.unlink)).collect::<Vec<_>>().join(", "),
        f0(facts.floor.unlink_dirsync),
        facts.floors.iter().map(|f| f0(f.unlink_dirsync)).collect::<Vec<_>>().join(", ")
    );
    let _ = writeln!(
        r,
        "- **Lethe**: embedded profile as `lethe serve` wires it (`App::build`: SQLite with WAL and synchronous=FULL, AES-GCM content files under a data key per upload, the signed deletion log), the real sweeper loop (`Sweeper::run`) on the system clock, in this process."
    );
    if let Some(redis) = &facts.redis {
        let _ = writeln!(
            r,
            "- **{redis}**: keys `SET` with `PXAT` (= `PEXPIREAT`), expiry seen through keyspace notifications (`notify-keyspace-events Ex`, `__keyevent@0__:expired`)."
        );
    }
    if let Some(pg) = &facts.postgres {
        let _ = writeln!(
            r,
            "- **{pg}**: a table `(id, k, delete_after, payload)` indexed on `delete_after` and `k`, and a loop running `DELETE ... WHERE delete_after <= now() RETURNING delete_after` every {} s on wall-clock ticks.",
            args.pg_interval
        );
    }
    if args.burst != 100_000 || args.duration != 60 {
        let _ = writeln!(
            r,
            "- **Sizes**: this run used a burst of {} and a steady run of {} s instead of the defaults (100,000 and 60 s), to keep the whole comparison near 10 minutes on this machine.",
            f0(args.burst as f64),
            args.duration
        );
    }
    for note in &facts.notes {
        let _ = writeln!(r, "- {note}");
    }
    let _ = writeln!(
        r,
        "\nEvery item carries 256 bytes of content (Lethe: a sealed content file; Redis: the value; PostgreSQL: a text column). Each system also holds 5% more items that fall due only after the run (the filler: Lethe and PostgreSQL in a day, Redis in an hour), which the reads use as live keys. Each cell is the median of {} runs, each column's median on its own.\n",
        args.runs
    );

    if args.workloads.contains(&Workload::Burst) {
        let _ = writeln!(
            r,
            "## Burst: {} items due at one instant\n",
            f0(args.burst as f64)
        );
        let _ = writeln!(r, "| system | deleted | deletions/s | first / last deletion after the instant (ms) | lag p50 / p99 / max (ms) | server CPU s | CPU µs per deletion | peak memory MiB |");
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for &s in &args.systems {
            if let Some(x) = med.get(&(Workload::Burst, s)) {
                let _ = writeln!(
                    r,
                    "| {} | {} of {} | **{}** | {} / {} | {} / {} / {} | {:.2} | {} | {} |",
                    s.name(),
                    f0(x.deleted),
                    f0(x.expected),
                    f0(x.rate),
                    fms(x.first_ms),
                    fms(x.last_ms),
                    fms(x.lag_p50),
                    fms(x.lag_p99),
                    fms(x.lag_max),
                    x.cpu_s,
                    fms(x.cpu_s * 1e6 / x.deleted.max(1.0)),
                    f0(x.mem_mib)
                );
            }
        }
        let per_run: Vec<String> = args
            .systems
            .iter()
            .filter(|s| results.contains_key(&(Workload::Burst, **s)))
            .map(|s| format!("{} {}", s.name(), runs_of(Workload::Burst, *s, |m| m.rate)))
            .collect();
        let _ = writeln!(r, "\nDeletions/s of each run: {}.\n", per_run.join("; "));
    }

    if args.workloads.contains(&Workload::Steady) {
        let _ = writeln!(
            r,
            "## Steady: {} deletions/s for {} s, with {} reads/s and {} writes/s\n",
            args.rate, args.duration, args.api_rate, args.api_rate
        );
        let _ = writeln!(r, "| system | deleted | deletions/s | lag p50 / p99 / max (ms) | read p50 / p99 (ms) | write p50 / p99 (ms) | server CPU s | peak memory MiB |");
        let _ = writeln!(r, "|---|---:|---:|---:|---:|---:|---:|---:|");
        for &s in &args.systems {
            if let Some(x) = med.get(&(Workload::Steady, s)) {
                let _ = writeln!(
                    r,
                    "| {} | {} of {} | {} | **{}** / **{}** / {} | {} / {} | {} / {} | {:.2} | {} |",
                    s.name(),
                    f0(x.deleted),
                    f0(x.expected),
                    f0(x.rate),
                    fms(x.lag_p50),
                    fms(x.lag_p99),
                    fms(x.lag_max),
                    fms(x.read_p50),
                    fms(x.read_p99),
                    fms(x.write_p50),
                    fms(x.write_p99),
                    x.cpu_s,
                    f0(x.mem_mib)
                );
            }
        }
        let _ = writeln!(
            r,
            "\nReads / writes: Lethe `GET /v2/transcript?limit=10` / `POST /v2/transcript` (an `audio_url`) over loopback HTTP with one API key; Redis `GET` of a live key / `SET` of a new one; PostgreSQL `SELECT payload ... WHERE k = $1` / `INSERT`. Sent open-loop on fixed ticks; failed requests: {}.\n",
            args.systems
                .iter()
                .filter_map(|s| med.get(&(Workload::Steady, *s)).map(|x| format!("{} {}", s.name(), f0(x.api_errors))))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }

    let lethe_b = med.get(&(Workload::Burst, System::Lethe));
    let lethe_s = med.get(&(Workload::Steady, System::Lethe));
    let _ = writeln!(r, "## Ratios (medians of this run)\n");
    let mut any = false;
    for peer in [System::Redis, System::Postgres] {
        let name = peer.name();
        if let (Some(l), Some(p)) = (lethe_b, med.get(&(Workload::Burst, peer))) {
            any = true;
            let x = p.rate / l.rate;
            let _ = if x >= 1.0 {
                writeln!(
                    r,
                    "- **{name} deletes a burst {} faster than Lethe** ({} vs {} deletions/s).",
                    fx(x),
                    f0(p.rate),
                    f0(l.rate)
                )
            } else {
                writeln!(
                    r,
                    "- **Lethe deletes a burst {} faster than {name}** ({} vs {} deletions/s).",
                    fx(1.0 / x),
                    f0(l.rate),
                    f0(p.rate)
                )
            };
            let _ = writeln!(
                r,
                "- Burst, last deletion after the instant: Lethe {} ms, {name} {} ms; Lethe spends {} the server CPU per deletion that {name} does ({} vs {} µs).",
                fms(l.last_ms),
                fms(p.last_ms),
                fx(l.cpu_s / l.deleted.max(1.0) / (p.cpu_s / p.deleted.max(1.0))),
                fms(l.cpu_s * 1e6 / l.deleted.max(1.0)),
                fms(p.cpu_s * 1e6 / p.deleted.max(1.0))
            );
        }
        if let (Some(l), Some(p)) = (lethe_s, med.get(&(Workload::Steady, peer))) {
            any = true;
            let x = p.lag_p99 / l.lag_p99;
            let _ = if x >= 1.0 {
                writeln!(r, "- **Steady p99 lag: Lethe's is {} lower than {name}'s** ({} vs {} ms; p50 {} vs {} ms).", fx(x), fms(l.lag_p99), fms(p.lag_p99), fms(l.lag_p50), fms(p.lag_p50))
            } else {
                writeln!(r, "- **Steady p99 lag: {name}'s is {} lower than Lethe's** ({} vs {} ms; p50 {} vs {} ms).", fx(1.0 / x), fms(p.lag_p99), fms(l.lag_p99), fms(p.lag_p50), fms(l.lag_p50))
            };
            let _ = writeln!(
                r,
                "- Steady traffic: Lethe's read p50 is {} {name}'s ({} vs {} ms), its write p50 {} ({} vs {} ms); its server CPU over the run {} ({:.2} vs {:.2} s).",
                fx(l.read_p50 / p.read_p50),
                fms(l.read_p50),
                fms(p.read_p50),
                fx(l.write_p50 / p.write_p50),
                fms(l.write_p50),
                fms(p.write_p50),
                fx(l.cpu_s / p.cpu_s),
                l.cpu_s,
                p.cpu_s
            );
        }
    }
    if let Some(l) = lethe_b {
        any = true;
        let _ = writeln!(
            r,
            "- Against the disk: one Lethe deletion in the burst takes as long as {:.2} fsyncs of this disk ({} vs {} per second), and {:.2} unlink + directory fsyncs ({} /s).",
            facts.floor.fsync / l.rate,
            f0(l.rate),
            f0(facts.floor.fsync),
            facts.floor.unlink_dirsync / l.rate,
            f0(facts.floor.unlink_dirsync)
        );
    }
    if !any {
        let _ = writeln!(r, "(Lethe and at least one peer are needed for ratios.)");
    }

    let _ = writeln!(r, "\n## What the peers do not do\n");
    let _ = writeln!(r, "The peers are faster at forgetting because they do far less per item; these figures are a floor for what a retention engine costs, not a like-for-like replacement:\n");
    let _ = writeln!(r, "- **Redis** removes a key from memory: no receipt or tombstone (the expired event is fire-and-forget pub/sub: a subscriber that is away misses it), no audit row, no content file to unlink, no crypto-shredding, no deletion log; with the persistence above nothing of the deletion reaches the disk at all. Its expiry is also approximate by design: `hz` times a second it samples 20 keys that have a TTL and deletes the expired ones, repeating only while more than 10% of a sample had expired, so keys due among many keys not yet due (as here, and as in any store where everything has a TTL) can wait seconds; and a key is gone whether or not the deletion was allowed (no legal holds, no policy).");
    let _ = writeln!(r, "- **PostgreSQL's cron DELETE** removes rows in one transaction per tick: it is durable (one WAL flush per tick, not per row), but keeps no tombstone or receipt, touches no content files or keys, and its lag is the cron period by construction; the dead tuples are left to autovacuum (not counted here).");
    let _ = writeln!(r, "- **Lethe** per deleted upload: claims it under a lease, unlinks its content file, destroys its data key (and truncates SQLite's WAL so no copy survives) — which is what makes the deletion final, so the unlink needs no directory fsync of its own — writes a tombstone and a leaf of the signed deletion log, marks the index, all with synchronous=FULL, each step one multi-row statement per batch, up to 3 batches at once; and records each sweep pass.");

    let _ = writeln!(r, "\n## How it is measured\n");
    let _ = writeln!(r, "- **Lag** = when the deletion was seen done − the item's deadline. Lethe: its deletion counter (`Metrics::deletions_total`, the sum of `lethe_deletions_total`, which moves after a batch's tombstones and index updates commit) read every 2 ms, the i-th deletion matched to the i-th deadline (the sweeper claims in `due_at` order; with up to 3 batches deleted at once, a batch may finish just before the one claimed ahead of it). Redis: receipt of the `expired` event. PostgreSQL: the client's clock when the `DELETE` returned (committed). **Deletions/s** = items deleted / (last deletion − first deadline).");
    let _ = writeln!(r, "- **Server CPU**: Lethe — the CPU time of its runtime's threads (sweeper, HTTP server, file I/O) and SQLite's connection threads, read from `/proc/self/task` (the whole process, load generator included, is listed below); Redis — `/proc/<pid>/stat` before and after; PostgreSQL — the postmaster, its background processes and this database's backends, sampled every 100 ms. Windows: from the end of loading until the last deletion (burst), or until the traffic and the deletions end (steady).");
    let _ = writeln!(r, "- **Peak memory**: Lethe — VmHWM of this process, reset (`/proc/self/clear_refs`) when measuring starts (it includes the harness: HTTP client, probes); Redis — peak VmRSS sampled every 100 ms; PostgreSQL — peak of the processes' summed Pss (shared buffers counted once), sampled every 100 ms.");
    let _ = writeln!(r, "- **Loading** is not measured: the instant is set far enough ahead (from a timed pilot load of the filler) that loading ends ≥ 3 s before it. Lethe's content files are copies of one sealed upload written without an fsync each, then one `sync`; its data keys and index rows are inserted in bulk. The instant is planned from a timed pilot load and at least 80 µs per index row.");

    if lethe_b.is_some() || lethe_s.is_some() {
        let _ = writeln!(r, "\n### Lethe details\n");
        for (w, x) in [(Workload::Burst, lethe_b), (Workload::Steady, lethe_s)] {
            if let Some(x) = x {
                let _ = writeln!(
                    r,
                    "- {w:?}: sweep passes {}; whole-process CPU {:.2} s (server threads {:.2} s); Lethe's own record of the lag (tombstone `deleted_at` − `delete_after`, where `deleted_at` is the time the artifact's batch was claimed, not the time it was done) p50 {} / p99 {} / max {} ms.",
                    f0(x.passes),
                    x.process_cpu_s,
                    x.cpu_s,
                    fms(x.recorded_p50),
                    fms(x.recorded_p99),
                    fms(x.recorded_max)
                );
            }
        }
        let _ = writeln!(
            r,
            "\nThe `lethe_deletion_lag_seconds` histogram and the `sweep_bench` lag earlier in this file are that record; the lag in the tables above is measured to when the deletion was done."
        );
    }
    if let Some(p) = med.get(&(Workload::Burst, System::Postgres)) {
        let _ = writeln!(
            r,
            "\nPostgreSQL's burst `DELETE` itself took {} ms (longest statement); the rest of its lag is waiting for the tick.",
            fms(p.statement_ms)
        );
    }
    let overruns: Vec<String> = med
        .iter()
        .filter(|(_, x)| x.overrun_s > 0.0)
        .map(|((w, s), x)| format!("{w:?} on {} by {:.1} s", s.name(), x.overrun_s))
        .collect();
    if !overruns.is_empty() {
        let _ = writeln!(
            r,
            "\nWarning: loading overran the planned instant ({}); those lags include the overrun.",
            overruns.join(", ")
        );
    }
    let _ = writeln!(r, "{MARK_END}");
    r
}

/// Replaces the peers section of `path` (from its begin marker to its end marker), or
/// appends it; everything else in the file is kept.
fn write_report(path: &Path, section: &str) -> Result<()> {
    let old = std::fs::read_to_string(path).unwrap_or_default();
    let new = match (old.find(MARK_BEGIN), old.find(MARK_END)) {
        (Some(b), Some(e)) if e > b => {
            let end = e + MARK_END.len();
            let end = if old[end..].starts_with('\n') {
                end + 1
            } else {
                end
            };
            format!("{}{}{}", &old[..b], section, &old[end..])
        }
        _ => {
            let sep = if old.is_empty() || old.ends_with("\n\n") {
                ""
            } else if old.ends_with('\n') {
                "\n"
            } else {
                "\n\n"
            };
            format!("{old}{sep}{section}")
        }
    };
    std::fs::write(path, new).with_context(|| format!("cannot write {}", path.display()))
}
