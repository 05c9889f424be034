//! Sweep benchmarks on the embedded profile, printed as a Markdown report.
//!
//! ```text
//! cargo run --release --example sweep_bench            # full run (~2 min)
//! cargo run --release --example sweep_bench -- --quick # smaller sizes
//! cargo run --release --example sweep_bench -- --parts due --sizes 100000,10000000
//! ```
//! 1. Throughput: one `run_once` over N due artifacts with real content files.
//! 2. Lag: the real sweeper loop on the system clock, artifacts falling due every 10 ms;
//!    lag = `deleted_at − delete_after` from the tombstones.
//! 3. Due-query cost as tracked artifacts grow, with the number due held at 100.

/// The peers harness's /proc readings (peak RSS).
#[allow(dead_code)]
#[path = "peers/sys.rs"]
mod sys;
use chrono::{DateTime, Duration, Utc};
use lethe::clock::{Clock, ManualClock, SystemClock};
use lethe::config::Config;
use lethe::domain::{
    new_id, Account, Artifact, ArtifactKind, Content, RetentionSettings, ScheduleKind,
};
use lethe::startup::App;
use lethe::storage::local::LocalContentStore;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::{ArtifactIndex, Backends};
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

fn account(now: DateTime<Utc>) -> Account {
    Account::new(
        new_id(now),
        "bench".into(),
        RetentionSettings::default(),
        now,
    )
}

fn scheduled(account: &Account, created: DateTime<Utc>, due: Option<DateTime<Utc>>) -> Artifact {
    let mut a = Artifact::new_live(
        new_id(created),
        account,
        None,
        ArtifactKind::UploadedAudio,
        created,
    );
    a.anchor_at = Some(created);
    a.schedule = if due.is_some() {
        ScheduleKind::Point
    } else {
        ScheduleKind::Indefinite
    };
    a.delete_after = due;
    a.delete_by = due.map(|d| d + Duration::hours(1));
    a.due_at = due;
    a.size_bytes = 256;
    a
}

async fn backends(dir: &std::path::Path) -> (Arc<SqliteStore>, Backends) {
    let sql = Arc::new(
        SqliteStore::open(&dir.join("lethe.db"))
            .await
            .expect("sqlite"),
    );
    let content = Arc::new(
        LocalContentStore::open(&dir.join("content"))
            .await
            .expect("content"),
    );
    let backends = Backends {
        accounts: sql.clone(),
        index: sql.clone(),
        content,
        audit: sql.clone(),
        aws_requests: Default::default(),
        held_in_memory: None,
    };
    (sql, backends)
}

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[xs.len() / 2]
}

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

async fn throughput(n: usize) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    let clock = ManualClock::new(start);
    let (sql, backends) = backends(dir.path()).await;
    let acct = account(start);
    let artifacts: Vec<Artifact> = (0..n)
        .map(|_| scheduled(&acct, start, Some(start + Duration::hours(1))))
        .collect();
    sql.insert_artifacts_bulk(&artifacts).await.expect("insert");
    for a in &artifacts {
        backends
            .content
            .put(&a.content_key, Content::new(vec![0u8; 256]))
            .await
            .expect("put");
    }
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    let app = App::with_backends(config, Arc::new(clock.clone()), backends);
    clock.advance(Duration::hours(1));
    let began = Instant::now();
    let report = app.sweeper.run_once(clock.now()).await.expect("sweep");
    let secs = began.elapsed().as_secs_f64();
    assert_eq!(report.deleted as usize, n, "every due artifact deleted");
    n as f64 / secs
}

async fn lag(n: usize) -> Vec<f64> {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sql, backends) = backends(dir.path()).await;
    let clock = SystemClock;
    let now = clock.now();
    let acct = account(now);
    let first_due = now + Duration::seconds(2);
    let artifacts: Vec<Artifact> = (0..n)
        .map(|i| {
            scheduled(
                &acct,
                now,
                Some(first_due + Duration::milliseconds(10 * i as i64)),
            )
        })
        .collect();
    sql.insert_artifacts_bulk(&artifacts).await.expect("insert");
    for a in &artifacts {
        backends
            .content
            .put(&a.content_key, Content::new(vec![0u8; 256]))
            .await
            .expect("put");
    }
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    let app = App::with_backends(config, Arc::new(clock), backends.clone());
    let shutdown = CancellationToken::new();
    let running = tokio::spawn(app.sweeper.clone().run(shutdown.clone()));
    let last_due = first_due + Duration::milliseconds(10 * n as i64);
    clock.sleep_until(last_due + Duration::seconds(1)).await;
    shutdown.cancel();
    running.await.expect("loop");
    let mut lags = Vec::with_capacity(n);
    for a in &artifacts {
        let t = backends
            .audit
            .tombstone(a.id)
            .await
            .expect("read")
            .expect("deleted by the loop");
        lags.push(
            (t.deleted_at - t.delete_after.expect("scheduled"))
                .num_microseconds()
                .unwrap_or(0) as f64
                / 1000.0,
        );
    }
    lags
}

struct DueCost {
    due_p50: f64,
    due_p99: f64,
    next_p50: f64,
    next_p99: f64,
    /// The process's peak resident memory while querying (reset before the queries).
    peak_rss_mib: Option<f64>,
}

async fn due_query(tracked: usize) -> DueCost {
    let dir = tempfile::tempdir().expect("tempdir");
    let (sql, _) = backends(dir.path()).await;
    let start = DateTime::<Utc>::UNIX_EPOCH + Duration::days(20_000);
    let acct = account(start);
    let now = start + Duration::days(1);
    let mut batch = Vec::with_capacity(50_000);
    for i in 0..tracked {
        // 100 due; of the rest, half indefinite (not in the sparse index), half due next year.
        let due = if i < 100 {
            Some(start + Duration::hours(1))
        } else if i % 2 == 0 {
            None
        } else {
            Some(start + Duration::days(365))
        };
        batch.push(scheduled(&acct, start, due));
        if batch.len() == 50_000 {
            sql.insert_artifacts_bulk(&batch).await.expect("insert");
            batch.clear();
        }
    }
    sql.insert_artifacts_bulk(&batch).await.expect("insert");
    sqlx::query("ANALYZE")
        .execute(sql.pool())
        .await
        .expect("analyze");
    sys::reset_peak_rss();
    let mut due_ms = Vec::new();
    let mut next_ms = Vec::new();
    for _ in 0..200 {
        let began = Instant::now();
        let due = sql.due(now, 500).await.expect("due");
        due_ms.push(began.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(due.len(), 100);
        let began = Instant::now();
        sql.next_due(now).await.expect("next");
        next_ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    DueCost {
        due_p50: percentile(&mut due_ms, 0.5),
        due_p99: percentile(&mut due_ms, 0.99),
        next_p50: percentile(&mut next_ms, 0.5),
        next_p99: percentile(&mut next_ms, 0.99),
        peak_rss_mib: sys::vm_kb("self", "VmHWM").map(|kib| kib as f64 / 1024.0),
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Part {
    Throughput,
    Lag,
    Due,
}

#[derive(clap::Parser, Debug)]
#[command(about = "Sweep throughput, lag and due-query cost on the embedded profile")]
struct Args {
    /// Smaller sizes.
    #[arg(long)]
    quick: bool,
    /// Tracked artifacts of the due-query table, comma-separated (default 10^4, 10^5, 10^6;
    /// with --quick 10^4, 10^5).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
    /// Parts to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,lag,due"
    )]
    parts: Vec<Part>,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let quick = args.quick;
    let (n, default_sizes): (usize, &[usize]) = if quick {
        (2_000, &[10_000, 100_000])
    } else {
        (20_000, &[10_000, 100_000, 1_000_000])
    };
    let sizes = match args.sizes.is_empty() {
        true => default_sizes.to_vec(),
        false => args.sizes.clone(),
    };

    println!("# Lethe sweep benchmark (embedded profile)\n");
    println!(
        "machine: {} cores; SQLite synchronous=FULL, WAL; content as files\n",
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    );

    if args.parts.contains(&Part::Throughput) {
        let runs: Vec<f64> = {
            let mut v = Vec::new();
            for _ in 0..3 {
                v.push(throughput(n).await);
            }
            v
        };
        println!("## Throughput: one pass over {n} due artifacts (3 runs)\n");
        println!(
            "median {:.0} deletions/s (runs: {})\n",
            median(runs.clone()),
            runs.iter()
                .map(|r| format!("{r:.0}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    if args.parts.contains(&Part::Lag) {
        let mut lags = lag(if quick { 100 } else { 500 }).await;
        let count = lags.len();
        println!("## Lag from delete_after to deletion, sweeper loop on the system clock\n");
        println!(
            "{count} artifacts due 10 ms apart: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
            percentile(&mut lags, 0.5),
            percentile(&mut lags, 0.99),
            percentile(&mut lags, 1.0)
        );
    }
    if args.parts.contains(&Part::Due) {
        println!("## Due query as tracked artifacts grow (100 due, 200 queries each)\n");
        println!("| tracked | due(now, 500) p50 / p99 ms | next_due p50 / p99 ms | due p99 ratio to first | peak RSS MiB |");
        println!("|---:|---:|---:|---:|---:|");
        let mut first = None;
        for &size in &sizes {
            let began = Instant::now();
            let q = due_query(size).await;
            eprintln!("{size} tracked: {:.0} s", began.elapsed().as_secs_f64());
            let base = *first.get_or_insert(q.due_p99);
            println!(
                "| {size} | {:.3} / {:.3} | {:.3} / {:.3} | {:.2} | {} |",
                q.due_p50,
                q.due_p99,
                q.next_p50,
                q.next_p99,
                q.due_p99 / base,
                q.peak_rss_mib
                    .map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0}"))
            );
        }
    }
}
