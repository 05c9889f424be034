//! AWS-profile sweep benchmark against an emulator (moto or LocalStack): AWS requests per
//! deleted artifact and sweep throughput. docs/benchmarks.md derives from these requests the
//! DynamoDB capacity a day of 10^6 deletions would consume.
//!
//! ```text
//! # with moto_server running (scripts/test starts one; or: .venv/bin/moto_server -p 5000)
//! AWS_ENDPOINT_URL=http://127.0.0.1:5000 AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test \
//!   AWS_REGION=us-east-1 cargo run --release --example aws_sweep_bench
//! ```
//! Two workloads, each swept in one pass after the clock passes their deadline:
//! uploads only (no cascade), and completed transcripts of four artifacts each
//! (final transcript, URL reference, text input, intermediate; TTL mode, so all linked).
//! PostgreSQL is not involved: the audit log is SQLite here, so only AWS requests count.

use bytes::Bytes;
use chrono::{Duration, TimeZone, Utc};
use futures::stream;
use lethe::clock::ManualClock;
use lethe::config::Config;
use lethe::domain::{Content, RetentionSettings};
use lethe::engine::{AudioSource, NewTranscript};
use lethe::startup::App;
use lethe::storage::aws::{dynamodb_client, s3_client, sdk_config, RequestCounter};
use lethe::storage::dynamodb::DynamoIndex;
use lethe::storage::s3::S3ContentStore;
use lethe::storage::sqlite::SqliteStore;
use lethe::storage::Backends;
use std::sync::Arc;
use std::time::Instant;

struct Result {
    label: String,
    deleted: u64,
    requests: u64,
    seconds: f64,
}

async fn setup(
    counter: &RequestCounter,
    dir: &std::path::Path,
    clock: &ManualClock,
    batch: u32,
) -> App {
    let sdk = sdk_config().await;
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    let index = DynamoIndex::new(
        dynamodb_client(&sdk, counter),
        format!("lethe-bench-{suffix}"),
    );
    index
        .provision(lethe::clock::Clock::now(clock))
        .await
        .expect("table");
    let content = S3ContentStore::new(s3_client(&sdk, counter), format!("lethe-bench-{suffix}"));
    content.provision().await.expect("bucket");
    let sql = Arc::new(
        SqliteStore::open(&dir.join("lethe.db"))
            .await
            .expect("sqlite"),
    );
    let backends = Backends {
        accounts: sql.clone(),
        index: Arc::new(index),
        content: Arc::new(content),
        audit: sql,
        aws_requests: counter.clone(),
        held_in_memory: None,
    };
    let mut config = Config::defaults();
    config.data_dir = dir.to_owned();
    config.sweep_batch_size = batch;
    App::with_backends(config, Arc::new(clock.clone()), backends)
}

async fn uploads(n: usize) -> Result {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let counter = RequestCounter::default();
    let app = setup(&counter, dir.path(), &clock, 1000).await;
    let settings = RetentionSettings {
        transcript_ttl: Some(Duration::hours(1)),
        ..Default::default()
    };
    let (account, _) = app
        .engine
        .create_account("bench", settings)
        .await
        .expect("account");
    for _ in 0..n {
        let body = Box::pin(stream::iter(vec![Ok(Bytes::from_static(
            b"RIFF-bench-audio",
        ))]));
        app.engine.upload(&account, body).await.expect("upload");
    }
    clock.advance(Duration::hours(72));
    // Counter deltas of the setup are written now, not inside the measured pass.
    app.engine.backends().index.flush().await;
    let before = counter.get();
    let began = Instant::now();
    let report = app
        .sweeper
        .run_once(lethe::clock::Clock::now(&clock))
        .await
        .expect("sweep");
    Result {
        label: format!("{n} uploads"),
        deleted: report.deleted,
        requests: counter.get() - before,
        seconds: began.elapsed().as_secs_f64(),
    }
}

async fn transcripts(n: usize) -> Result {
    let dir = tempfile::tempdir().expect("tempdir");
    let clock = ManualClock::new(
        Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
            .single()
            .expect("time"),
    );
    let counter = RequestCounter::default();
    let app = setup(&counter, dir.path(), &clock, 1000).await;
    let settings = RetentionSettings {
        transcript_ttl: Some(Duration::hours(1)),
        ..Default::default()
    };
    let (account, _) = app
        .engine
        .create_account("bench", settings)
        .await
        .expect("account");
    for i in 0..n {
        let t = app
            .engine
            .create_transcript(
                &account,
                NewTranscript {
                    audio: AudioSource::Url(Content::new(format!(
                        "https://media.example.com/{i}.mp3"
                    ))),
                    options: serde_json::json!({}),
                    text_inputs: Some(Content::new(r#"{"prompt":"bench"}"#)),
                    webhook_auth: false,
                },
            )
            .await
            .expect("transcript");
        let body = Box::pin(stream::iter(vec![Ok(Bytes::from_static(b"chunk"))]));
        app.engine
            .put_intermediate(t.id, "chunk-0", body)
            .await
            .expect("intermediate");
        app.engine
            .complete(t.id, Content::new(r#"{"text":"bench"}"#), Some(1.0))
            .await
            .expect("complete");
    }
    clock.advance(Duration::hours(1));
    // Counter deltas of the setup are written now, not inside the measured pass.
    app.engine.backends().index.flush().await;
    let before = counter.get();
    let began = Instant::now();
    let report = app
        .sweeper
        .run_once(lethe::clock::Clock::now(&clock))
        .await
        .expect("sweep");
    Result {
        label: format!("{n} transcripts × 4 artifacts"),
        deleted: report.deleted,
        requests: counter.get() - before,
        seconds: began.elapsed().as_secs_f64(),
    }
}

#[tokio::main]
async fn main() {
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        eprintln!("set AWS_ENDPOINT_URL to a running moto_server or LocalStack (see the example's doc comment)");
        std::process::exit(2);
    }
    let quick = std::env::args().any(|a| a == "--quick");
    let n = if quick { 200 } else { 1000 };
    let results = vec![uploads(n * 2).await, transcripts(n / 2).await];
    println!("# AWS-profile sweep (DynamoDB + S3 on an emulator), one pass\n");
    println!("| workload | deleted | AWS requests | requests per deletion | deletions/s |");
    println!("|---|---:|---:|---:|---:|");
    for r in &results {
        println!(
            "| {} | {} | {} | {:.4} | {:.0} |",
            r.label,
            r.deleted,
            r.requests,
            r.requests as f64 / r.deleted.max(1) as f64,
            r.deleted as f64 / r.seconds
        );
    }
}
