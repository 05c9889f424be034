//! `GET /v2/transcript` latency with one account holding many transcripts, through the
//! real router over loopback HTTP. Prints a Markdown table of p50/p99 per query shape.
//!
//! ```text
//! cargo run --release --example list_bench            # 10^4 and 10^6 transcripts (~3 min)
//! cargo run --release --example list_bench -- --quick # 10^4 and 10^5
//! cargo run --release --example list_bench -- --sizes 100000,10000000
//! cargo run --release --example list_bench -- --sizes 100000,10000000 --keep /var/tmp/lb
//! ```
//! The embedded profile as `lethe serve` wires it. One in ten transcripts was created from a
//! URL (its list item reads the URL, a sealed row of the same file); the rest from uploads.
//! One in ten is still queued. `--keep DIR` builds each fixture once in `DIR` and reuses it.
//! Every query shape runs `--rounds` times, the sizes alternating, and each figure is the
//! median of the rounds': a single pass's p99 on a shared 2-core VM moves by 2× run to run.
//! The KiB-read column counts what the OS's cache did not hold (always 0 on a tmpfs).
//!
//! `--resident` first holds each fixture's database in memory for the run, as the server's
//! `LETHE_SQLITE_HOLD_IN_MEMORY` does: one more connection maps the whole file and reads
//! its pages through the mapping. Without
//! it the figures are those of the file as the OS's cache leaves it, which on some hosts is
//! mostly on disk: a VM whose kernel pages out file pages nobody has read for a minute
//! (DAMON's `pageout` action) while sparing mapped ones (see docs/benchmarks.md).

/// The peers harness's /proc readings (peak RSS).
#[allow(dead_code)]
#[path = "peers/sys.rs"]
mod sys;
use chrono::{DateTime, Duration, Utc};
use futures::{StreamExt, TryStreamExt};
use lethe::clock::SystemClock;
use lethe::config::Config;
use lethe::domain::{
    new_id, Account, Artifact, ArtifactKind, Content, RetentionSettings, Transcript,
    TranscriptStatus,
};
use lethe::http::Tokens;
use lethe::startup::App;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::{Backends, ContentStore};
use rand::Rng;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

struct Fixture {
    /// The fixture's directory when it is a temporary one (removed on drop).
    _temp: Option<tempfile::TempDir>,
    base: String,
    key: String,
    ids: Vec<uuid::Uuid>,
    first_day: DateTime<Utc>,
    /// The fixture's SQLite file.
    database: std::path::PathBuf,
    /// What holds a fixture built in this run in memory (see [`fixture`]).
    _held: Option<SqliteStore>,
}

/// What a kept fixture needs to be queried again: the bench account's key (a throwaway
/// account of a throwaway database), the transcripts' ids in order and the first day.
#[derive(serde::Serialize, serde::Deserialize)]
struct Kept {
    key: String,
    first_day: DateTime<Utc>,
    ids: Vec<uuid::Uuid>,
}

/// The embedded profile as `lethe serve` wires it (`Backends::from_config`): the index,
/// accounts and audit in one SQLite file, content sealed under a data key per transcript,
/// small objects (a URL) as rows of the same file. With `keep`, the fixture is built in
/// `keep/<n>` once and reused by later runs (building 10^7 takes minutes).
/// With `resident`, the database is held in memory: a kept fixture by the server's own
/// setting (`LETHE_SQLITE_HOLD_IN_MEMORY`, read as the backends open), a fixture built in
/// this run by the same call once built (the setting would hold the empty file).
async fn fixture(n: usize, keep: Option<&std::path::Path>, resident: bool) -> Fixture {
    let (temp, root) = match keep {
        Some(dir) => (None, dir.join(n.to_string())),
        None => {
            let temp = tempfile::tempdir().expect("tempdir");
            let root = temp.path().to_owned();
            (Some(temp), root)
        }
    };
    let kept_path = root.join("fixture.json");
    let existing = std::fs::read(&kept_path).ok();
    match existing {
        // Opening would quietly create whatever is missing (an empty database, a new
        // master key that opens none of its URLs).
        Some(_) => {
            for file in ["lethe.db", "master_key"] {
                assert!(
                    root.join(file).exists(),
                    "{} has a fixture.json but no {file}: remove it first",
                    root.display()
                );
            }
        }
        // An unfinished build (interrupted) or a directory of something else: never add
        // a fixture to a database it did not start.
        None => assert!(
            !root.join("lethe.db").exists(),
            "{} holds a database but no finished fixture: remove it first",
            root.display()
        ),
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = Config::defaults();
    config.data_dir = root.clone();
    config.public_base_url = Some(format!("http://{address}"));
    config.sqlite_hold_in_memory = resident && existing.is_some();
    let clock = Arc::new(SystemClock);
    let backends = Backends::from_config(&config, clock.clone())
        .await
        .expect("the embedded backends");
    let content = backends.content.clone();
    let app = App::with_backends(config, clock, backends);
    let mut held = None;
    let kept: Kept = match existing {
        Some(bytes) => {
            eprintln!("reusing the fixture in {}", root.display());
            let kept: Kept = serde_json::from_slice(&bytes).expect("a kept fixture");
            assert_eq!(kept.ids.len(), n, "{}: another fixture", root.display());
            kept
        }
        None => {
            let kept = build(n, &app, &root, content).await;
            if keep.is_some() {
                write_kept(&kept_path, &kept);
            }
            if resident {
                held = Some(hold_in_memory(n, &root.join("lethe.db")).await);
            }
            kept
        }
    };
    let tokens = Tokens {
        admin: SecretString::from("a"),
        internal: SecretString::from("i"),
    };
    let router = lethe::http::router(app.http_state(tokens));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    Fixture {
        _temp: temp,
        base: format!("http://{address}"),
        key: kept.key,
        ids: kept.ids,
        first_day: kept.first_day,
        database: root.join("lethe.db"),
        _held: held,
    }
}

/// Holds `database`'s pages in memory as `LETHE_SQLITE_HOLD_IN_MEMORY` does at a server's
/// start ([`SqliteStore::hold_in_memory`]), through a handle of the bench's own on the same
/// file, kept for the run.
async fn hold_in_memory(n: usize, database: &std::path::Path) -> SqliteStore {
    let store = SqliteStore::open(database).await.expect("open the fixture");
    let held = store
        .hold_in_memory()
        .await
        .expect("hold the fixture in memory")
        .expect("a file");
    eprintln!(
        "fixture of {n} transcripts ({:.1} GB, {} pages) held in memory in {:.0}s",
        held.bytes as f64 / 1e9,
        held.pages,
        held.took.as_secs_f64()
    );
    store
}

/// `fixture.json` (it holds the bench account's key: owner-only, like the directory), whole
/// or not at all: written aside, then renamed over.
fn write_kept(path: &std::path::Path, kept: &Kept) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let aside = path.with_extension("json.partial");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&aside)
        .expect("write the fixture's facts");
    file.write_all(&serde_json::to_vec(kept).expect("json"))
        .and_then(|()| file.sync_all())
        .expect("write the fixture's facts");
    std::fs::rename(&aside, path).expect("write the fixture's facts");
}

/// Loads `n` transcripts in bulk statements; their URLs are stored through the content
/// store, as the API stores them (a sealed row under a data key each).
async fn build(
    n: usize,
    app: &App,
    root: &std::path::Path,
    content: Arc<dyn ContentStore>,
) -> Kept {
    let (account, key): (Account, _) = app
        .engine
        .create_account("bench", RetentionSettings::default())
        .await
        .expect("account");
    // A second handle on the same file for the bulk inserts the API has no call for.
    let sql = SqliteStore::open(&root.join("lethe.db"))
        .await
        .expect("sqlite");

    let first_day = Utc::now() - Duration::seconds(n as i64 * 5);
    let mut ids = Vec::with_capacity(n);
    let mut transcripts = Vec::with_capacity(50_000);
    let mut artifacts = Vec::new();
    let mut urls = Vec::new();
    for i in 0..n {
        let created = first_day + Duration::seconds(i as i64 * 5);
        let id = new_id(created);
        ids.push(id);
        let queued = i % 10 == 3;
        let from_url = i % 10 == 7;
        transcripts.push(Transcript {
            id,
            account_id: account.id,
            status: if queued {
                TranscriptStatus::Queued
            } else {
                TranscriptStatus::Completed
            },
            created_at: created,
            completed_at: (!queued).then_some(created + Duration::seconds(30)),
            upload_id: (!from_url).then(|| new_id(created)),
            options: serde_json::json!({"speech_model": "universal", "punctuate": true}),
            webhook_auth: false,
            audio_duration: Some(61.0),
            error: None,
            policy_version: 1,
            delete_after: None,
            delete_by: None,
            deletion: None,
            final_artifact_id: None,
            settled: true,
            revision: 1,
        });
        if from_url {
            let a = Artifact::new_live(
                new_id(created),
                &account,
                Some(id),
                ArtifactKind::UrlAudioReference,
                created,
            );
            urls.push((
                a.content_key.clone(),
                format!("https://media.example.com/calls/{i}.mp3"),
            ));
            artifacts.push(a);
        }
        if transcripts.len() == 50_000 || i + 1 == n {
            // 64 at a time: the writer's group commit shares their syncs.
            futures::stream::iter(std::mem::take(&mut urls))
                .map(|(key, url)| {
                    let content = content.clone();
                    async move { content.put(&key, Content::new(url.into_bytes())).await }
                })
                .buffer_unordered(64)
                .try_collect::<Vec<_>>()
                .await
                .expect("put a URL");
            sql.insert_transcripts_bulk(&transcripts)
                .await
                .expect("insert");
            sql.insert_artifacts_bulk(&artifacts).await.expect("insert");
            transcripts.clear();
            artifacts.clear();
            if (i + 1) % 1_000_000 == 0 {
                eprintln!("{} of {n} transcripts loaded", i + 1);
            }
        }
    }
    Kept {
        key: key.expose().to_owned(),
        first_day,
        ids,
    }
}

/// One shape's p50 and p99 in ms over `shape.runs` requests, after 20 to warm up, and
/// the KiB read from storage per request (the pages the OS's cache did not hold).
async fn measure(client: &reqwest::Client, f: &Fixture, shape: &Shape) -> (f64, f64, f64) {
    let mut ms = Vec::with_capacity(shape.runs);
    for _ in 0..20 {
        client
            .get(format!("{}/v2/transcript?{}", f.base, (shape.query)(f)))
            .header("authorization", &f.key)
            .send()
            .await
            .expect("warm-up");
    }
    let read_before = sys::storage_read_bytes();
    for _ in 0..shape.runs {
        let url = format!("{}/v2/transcript?{}", f.base, (shape.query)(f));
        let began = Instant::now();
        let response = client
            .get(url)
            .header("authorization", &f.key)
            .send()
            .await
            .expect("request");
        assert!(response.status().is_success(), "{}", response.status());
        response.bytes().await.expect("body");
        ms.push(began.elapsed().as_secs_f64() * 1000.0);
    }
    // NaN (printed "n/a") where /proc/self/io cannot be read.
    let read = match (read_before, sys::storage_read_bytes()) {
        (Some(before), Some(after)) if after >= before => {
            (after - before) as f64 / 1024.0 / shape.runs as f64
        }
        _ => f64::NAN,
    };
    (percentile(&mut ms, 0.5), percentile(&mut ms, 0.99), read)
}

#[derive(clap::Parser, Debug)]
#[command(about = "GET /v2/transcript latency as one account's transcripts grow")]
struct Args {
    /// 10^4 and 10^5 transcripts instead of 10^4 and 10^6.
    #[arg(long)]
    quick: bool,
    /// Transcript counts, comma-separated (replaces the defaults); at least 200 each, a
    /// page of 200 being checked for its URLs.
    #[arg(long, value_delimiter = ',',
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(200..))]
    sizes: Vec<usize>,
    /// Build each fixture in `DIR/<n>` and keep it; a later run with the same `DIR`
    /// reuses it instead of building it again. `DIR/<n>/fixture.json` holds the bench
    /// account's API key (owner-only, in an owner-only directory).
    #[arg(long, value_name = "DIR")]
    keep: Option<std::path::PathBuf>,
    /// Hold each fixture's database file in memory for the run, as
    /// `LETHE_SQLITE_HOLD_IN_MEMORY` does: one more read-only connection maps the whole file
    /// and reads its pages once through the mapping; they stay cached while it is open.
    #[arg(long)]
    resident: bool,
    /// Rounds of every query shape; each figure is the median of the rounds'.
    #[arg(long, default_value_t = 5,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    rounds: usize,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let sizes: Vec<usize> = match (args.sizes.is_empty(), args.quick) {
        (false, _) => args.sizes.clone(),
        (true, true) => vec![10_000, 100_000],
        (true, false) => vec![10_000, 1_000_000],
    };
    let client = reqwest::Client::new();
    let mut fixtures = Vec::new();
    for &n in &sizes {
        let began = Instant::now();
        let f = fixture(n, args.keep.as_deref(), args.resident).await;
        eprintln!(
            "fixture of {n} transcripts ready in {:.0}s",
            began.elapsed().as_secs_f64()
        );
        // The URLs are read (a page holds URL transcripts), or the figures would flatter.
        let page = client
            .get(format!("{}/v2/transcript?limit=200", f.base))
            .header("authorization", &f.key)
            .send()
            .await
            .expect("request")
            .error_for_status()
            .expect("the newest page of 200")
            .text()
            .await
            .expect("body");
        assert_eq!(page.matches("https://media.example.com/calls/").count(), 20);
        fixtures.push((n, f));
    }
    if args.resident {
        // A mapping that failed would leave the reads to `pread` without a word.
        for (n, f) in &fixtures {
            let bytes = std::fs::metadata(&f.database).expect("the file").len();
            let mapped =
                lethe::storage::sqlite_hold::mapped_bytes(&f.database).expect("/proc/self/smaps");
            assert!(
                mapped as f64 >= bytes as f64 * 0.99,
                "the fixture of {n} ({bytes} bytes) has only {mapped} bytes mapped"
            );
            eprintln!("fixture of {n}: {mapped} of its {bytes} bytes mapped and resident");
        }
    }

    // Round 1 measures each size alone, for its peak RSS. Later rounds alternate the
    // sizes shape by shape, so a machine whose speed drifts over minutes (a shared VM)
    // weighs on every size alike; each figure is the median of the rounds'.
    let mut figures: Vec<Vec<[Vec<f64>; 3]>> =
        vec![vec![Default::default(); SHAPES.len()]; fixtures.len()];
    let mut peaks = Vec::new();
    for (i, (n, f)) in fixtures.iter().enumerate() {
        sys::reset_peak_rss();
        // The mapped files count in RSS (RssFile): the process's own memory is RssAnon,
        // sampled after each shape.
        let mut anon = None;
        for (s, shape) in SHAPES.iter().enumerate() {
            let figure = measure(&client, f, shape).await;
            record(&mut figures[i][s], figure);
            anon = anon.max(sys::vm_kb("self", "RssAnon"));
        }
        let mib = |kib: u64| kib as f64 / 1024.0;
        peaks.push((*n, sys::vm_kb("self", "VmHWM").map(mib), anon.map(mib)));
    }
    for round in 1..args.rounds {
        eprintln!("round {} of {}", round + 1, args.rounds);
        for (s, shape) in SHAPES.iter().enumerate() {
            for k in 0..fixtures.len() {
                // Each round starts from another size.
                let i = (k + round) % fixtures.len();
                let figure = measure(&client, &fixtures[i].1, shape).await;
                record(&mut figures[i][s], figure);
            }
        }
    }

    println!(
        "# GET /v2/transcript latency (embedded profile, loopback HTTP, one client, sequential)\n"
    );
    println!(
        "Medians of {} rounds; the ratio is p99 against the first size's.\n",
        args.rounds
    );
    println!(
        "| transcripts | query | p50 ms | p99 ms | p99 ratio | KiB read from disk per request |"
    );
    println!("|---:|---|---:|---:|---:|---:|");
    let mut first_p99 = Vec::new();
    for (i, (n, _)) in fixtures.iter().enumerate() {
        for (s, shape) in SHAPES.iter().enumerate() {
            let [p50, p99, read] = &mut figures[i][s];
            let (p50, p99, read) = (median(p50), median(p99), median(read));
            if i == 0 {
                first_p99.push(p99);
            }
            let ratio = p99 / first_p99[s];
            let read = match read.is_nan() {
                true => "n/a".to_owned(),
                false => format!("{read:.1}"),
            };
            println!(
                "| {n} | {} | {p50:.2} | {p99:.2} | {ratio:.2} | {read} |",
                shape.label
            );
        }
    }
    println!();
    let shown = |mib: Option<f64>| mib.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"));
    for (n, peak, anon) in peaks {
        println!(
            "Peak RSS while querying {n} transcripts (server and client in one process, \
             every size's ids loaded): {}; its own memory (RssAnon, the largest sampled \
             after each query shape): {}.",
            shown(peak),
            shown(anon),
        );
    }
    if args.resident {
        println!(
            "\nEach fixture's database was held in memory (`--resident`): its mapped pages \
             count in the peak RSS above, not in RssAnon."
        );
    }
}

fn record(figures: &mut [Vec<f64>; 3], (p50, p99, read): (f64, f64, f64)) {
    figures[0].push(p50);
    figures[1].push(p99);
    figures[2].push(read);
}

fn median(xs: &mut [f64]) -> f64 {
    percentile(xs, 0.5)
}

/// A query shape of the table: its label, requests per round and its query string.
struct Shape {
    label: &'static str,
    runs: usize,
    query: fn(&Fixture) -> String,
}

const SHAPES: &[Shape] = &[
    Shape {
        label: "newest page, limit 10",
        runs: 500,
        query: |_| "limit=10".to_owned(),
    },
    Shape {
        label: "random deep page (before_id), limit 10",
        runs: 500,
        query: |f| format!("limit=10&before_id={}", random_id(f)),
    },
    Shape {
        label: "random page forward (after_id), limit 10",
        runs: 500,
        query: |f| format!("limit=10&after_id={}", random_id(f)),
    },
    Shape {
        label: "status=queued, limit 10",
        runs: 300,
        query: |_| "status=queued&limit=10".to_owned(),
    },
    Shape {
        label: "created_on (an early day), limit 10",
        runs: 300,
        query: |f| {
            let day = (f.first_day + Duration::days(1)).date_naive();
            format!("created_on={day}&limit=10")
        },
    },
    Shape {
        label: "newest page, limit 200",
        runs: 200,
        query: |_| "limit=200".to_owned(),
    },
];

fn random_id(f: &Fixture) -> uuid::Uuid {
    f.ids[rand::thread_rng().gen_range(0..f.ids.len())]
}
