//! `GET /v2/transcript` latency with one account holding many transcripts, through the
//! real router over loopback HTTP. Prints a Markdown table of p50/p99 per query shape.
//!
//! ```text
//! cargo run --release --example list_bench            # 10^4 and 10^6 transcripts (~3 min)
//! cargo run --release --example list_bench -- --quick # 10^4 and 10^5
//! cargo run --release --example list_bench -- --sizes 100000,10000000
//! ```
//! One in ten transcripts was created from a URL (its list item reads the URL artifact);
//! the rest from uploads. One in ten is still queued.

/// The peers harness's /proc readings (peak RSS).
#[allow(dead_code)]
#[path = "peers/sys.rs"]
mod sys;
use chrono::{DateTime, Duration, Utc};
use lethe::clock::SystemClock;
use lethe::config::Config;
use lethe::domain::{
    new_id, Account, Artifact, ArtifactKind, RetentionSettings, Transcript, TranscriptStatus,
};
use lethe::http::Tokens;
use lethe::startup::App;
use lethe::storage::local::LocalContentStore;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::Backends;
use rand::Rng;
use secrecy::SecretString;
use std::sync::Arc;
use std::time::Instant;

fn percentile(xs: &mut [f64], p: f64) -> f64 {
    xs.sort_by(|a, b| a.total_cmp(b));
    xs[((xs.len() as f64 - 1.0) * p).round() as usize]
}

struct Fixture {
    _dir: tempfile::TempDir,
    base: String,
    key: String,
    ids: Vec<uuid::Uuid>,
    first_day: DateTime<Utc>,
}

async fn fixture(n: usize) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let sql = Arc::new(
        SqliteStore::open(&dir.path().join("lethe.db"))
            .await
            .expect("sqlite"),
    );
    let content = Arc::new(
        LocalContentStore::open(&dir.path().join("content"))
            .await
            .expect("content"),
    );
    let backends = Backends {
        accounts: sql.clone(),
        index: sql.clone(),
        content: content.clone(),
        audit: sql.clone(),
        aws_requests: Default::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    config.public_base_url = Some(format!("http://{address}"));
    let app = App::with_backends(config, Arc::new(SystemClock), backends);
    let (account, key): (Account, _) = app
        .engine
        .create_account("bench", RetentionSettings::default())
        .await
        .expect("account");

    let first_day = Utc::now() - Duration::seconds(n as i64 * 5);
    let mut ids = Vec::with_capacity(n);
    let mut transcripts = Vec::with_capacity(50_000);
    let mut artifacts = Vec::new();
    let mut urls = Vec::new();
    let content_root = dir.path().join("content");
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
        if transcripts.len() == 50_000 {
            write_unsynced(&content_root, std::mem::take(&mut urls)).await;
            sql.insert_transcripts_bulk(&transcripts)
                .await
                .expect("insert");
            sql.insert_artifacts_bulk(&artifacts).await.expect("insert");
            transcripts.clear();
            artifacts.clear();
        }
    }
    write_unsynced(&content_root, urls).await;
    sql.insert_transcripts_bulk(&transcripts)
        .await
        .expect("insert");
    sql.insert_artifacts_bulk(&artifacts).await.expect("insert");
    // One sync for all the files written above.
    tokio::task::spawn_blocking(|| std::process::Command::new("sync").status())
        .await
        .expect("join")
        .expect("sync");
    sqlx::query("ANALYZE")
        .execute(sql.pool())
        .await
        .expect("analyze");

    let tokens = Tokens {
        admin: SecretString::from("a"),
        internal: SecretString::from("i"),
    };
    let router = lethe::http::router(app.http_state(tokens));
    tokio::spawn(async move { axum::serve(listener, router).await.expect("serve") });
    Fixture {
        _dir: dir,
        base: format!("http://{address}"),
        key: key.expose().to_owned(),
        ids,
        first_day,
    }
}

/// The URL objects where the content store reads them, without an fsync each (a fixture
/// of 10^7 transcripts would otherwise spend its time in 10^6 fsyncs); one `sync` follows.
async fn write_unsynced(root: &std::path::Path, objects: Vec<(String, String)>) {
    let root = root.to_owned();
    tokio::task::spawn_blocking(move || {
        for (key, url) in objects {
            let path = root.join(key);
            std::fs::create_dir_all(path.parent().expect("a scope dir")).expect("mkdir");
            std::fs::write(path, url).expect("write");
        }
    })
    .await
    .expect("join");
}

async fn measure(
    client: &reqwest::Client,
    f: &Fixture,
    label: &str,
    runs: usize,
    query: impl Fn() -> String,
) -> (String, f64, f64) {
    let mut ms = Vec::with_capacity(runs);
    for _ in 0..20 {
        client
            .get(format!("{}/v2/transcript?{}", f.base, query()))
            .header("authorization", &f.key)
            .send()
            .await
            .expect("warm-up");
    }
    for _ in 0..runs {
        let url = format!("{}/v2/transcript?{}", f.base, query());
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
    (
        label.to_owned(),
        percentile(&mut ms, 0.5),
        percentile(&mut ms, 0.99),
    )
}

#[derive(clap::Parser, Debug)]
#[command(about = "GET /v2/transcript latency as one account's transcripts grow")]
struct Args {
    /// 10^4 and 10^5 transcripts instead of 10^4 and 10^6.
    #[arg(long)]
    quick: bool,
    /// Transcript counts, comma-separated (replaces the defaults).
    #[arg(long, value_delimiter = ',')]
    sizes: Vec<usize>,
}

#[tokio::main]
async fn main() {
    let args = <Args as clap::Parser>::parse();
    let sizes: Vec<usize> = match (args.sizes.is_empty(), args.quick) {
        (false, _) => args.sizes.clone(),
        (true, true) => vec![10_000, 100_000],
        (true, false) => vec![10_000, 1_000_000],
    };
    println!(
        "# GET /v2/transcript latency (embedded profile, loopback HTTP, one client, sequential)\n"
    );
    println!("| transcripts | query | p50 ms | p99 ms |");
    println!("|---:|---|---:|---:|");
    let mut peaks = Vec::new();
    let client = reqwest::Client::new();
    for &n in &sizes {
        let began = Instant::now();
        let f = fixture(n).await;
        eprintln!(
            "fixture of {n} transcripts built in {:.0}s",
            began.elapsed().as_secs_f64()
        );
        let ids = f.ids.clone();
        let day = (f.first_day + Duration::days(1)).date_naive();
        sys::reset_peak_rss();
        let results = vec![
            measure(&client, &f, "newest page, limit 10", 500, || {
                "limit=10".to_owned()
            })
            .await,
            measure(
                &client,
                &f,
                "random deep page (before_id), limit 10",
                500,
                || {
                    format!(
                        "limit=10&before_id={}",
                        ids[rand::thread_rng().gen_range(0..ids.len())]
                    )
                },
            )
            .await,
            measure(
                &client,
                &f,
                "random page forward (after_id), limit 10",
                500,
                || {
                    format!(
                        "limit=10&after_id={}",
                        ids[rand::thread_rng().gen_range(0..ids.len())]
                    )
                },
            )
            .await,
            measure(&client, &f, "status=queued, limit 10", 300, || {
                "status=queued&limit=10".to_owned()
            })
            .await,
            measure(
                &client,
                &f,
                "created_on (an early day), limit 10",
                300,
                move || format!("created_on={day}&limit=10"),
            )
            .await,
            measure(&client, &f, "newest page, limit 200", 200, || {
                "limit=200".to_owned()
            })
            .await,
        ];
        for (label, p50, p99) in results {
            println!("| {n} | {label} | {p50:.2} | {p99:.2} |");
        }
        peaks.push((
            n,
            sys::vm_kb("self", "VmHWM").map(|kib| kib as f64 / 1024.0),
        ));
    }
    println!();
    for (n, peak) in peaks {
        let peak = peak.map_or_else(|| "n/a".to_owned(), |m| format!("{m:.0} MiB"));
        println!(
            "Peak RSS while querying {n} transcripts (server and client in one process): {peak}."
        );
    }
}
