//! Never miss, never early (issue 11), through the HTTP API: retention changes that survive
//! the request that made them, and sweeps that are never tied to a request's lifetime.

use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

use crate::helpers::*;

fn deletions_counted(metrics: &str) -> u64 {
    metrics
        .lines()
        .filter(|l| l.starts_with("lethe_deletions_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>() as u64
}

/// Polls a sweep until it has finished (the pass runs on its own, not in the request).
async fn finished_sweep(app: &TestApp, id: &str) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let response = app
            .admin(Method::GET, &format!("/admin/v1/sweeps/{id}"))
            .send()
            .await
            .expect("request");
        let body = expect_json(response, StatusCode::OK).await;
        if body["state"] == "finished" {
            return body;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    panic!("sweep {id} did not finish");
}

#[tokio::test]
async fn s1_a_shortening_shows_its_progress_and_nothing_is_served_past_the_new_deadline() {
    let app = spawn_app().await;
    let key = app.account().await;
    let mut ids = Vec::new();
    for _ in 0..30 {
        ids.push(app.completed_transcript(&key).await);
    }
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"transcript_ttl_seconds": 3600}))
        .send()
        .await
        .expect("request");
    let settings = expect_json(response, StatusCode::OK).await;
    assert_eq!(settings["retention_change"]["state"], "in_progress");

    // An hour later, before any pass has touched a schedule, nothing is served.
    app.advance(Duration::hours(1));
    for id in &ids {
        let t = app.get_transcript(&key, id).await;
        assert_eq!(t["text"], "Deleted by retention policy.", "{id}");
    }
    let report = app.sweep().await;
    assert_eq!(report["deleted"], 30 * 4, "{report}");
    let response = app
        .public(Method::GET, "/v2/account/retention", &key)
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await["retention_change"],
        Value::Null,
        "the change reached every artifact"
    );
}

#[tokio::test]
async fn a_sweep_requested_by_a_request_that_times_out_still_runs_to_its_end() {
    // Long enough for each small request, far too short for a pass over 300 uploads.
    let app = spawn_app_with(|c| c.request_timeout = Duration::milliseconds(150)).await;
    let key = app.ttl_account(3600).await;
    for _ in 0..300 {
        app.upload(&key, b"MARKER-AUDIO").await;
    }
    app.advance(Duration::hours(72));

    let response = app
        .admin(Method::POST, "/admin/v1/sweeps?wait=true")
        .send()
        .await
        .expect("request");
    assert!(
        matches!(
            response.status(),
            StatusCode::REQUEST_TIMEOUT | StatusCode::ACCEPTED | StatusCode::OK
        ),
        "{}",
        response.status()
    );

    // Whatever the request saw, the pass itself finishes, records itself and deletes all.
    let mut finished = None;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        let response = app
            .admin(Method::GET, "/admin/v1/sweeps")
            .send()
            .await
            .expect("request");
        if response.status() == StatusCode::OK {
            let body = expect_json(response, StatusCode::OK).await;
            if let Some(sweep) = body["sweeps"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["state"] == "finished"))
            {
                finished = Some(sweep.clone());
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let finished = finished.expect("a finished pass is recorded");
    assert_eq!(finished["deleted"], 300, "{finished}");
}

#[tokio::test]
async fn five_concurrent_sweep_requests_delete_and_count_each_artifact_once() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    for _ in 0..120 {
        app.upload(&key, b"MARKER-AUDIO").await;
    }
    app.advance(Duration::hours(72));
    let metrics = || async {
        let response = app
            .request(Method::GET, "/metrics", None)
            .send()
            .await
            .expect("request");
        response.text().await.expect("text")
    };
    let before = deletions_counted(&metrics().await);

    let requests = (0..5).map(|_| async {
        let response = app
            .admin(Method::POST, "/admin/v1/sweeps")
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::ACCEPTED).await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    });
    let mut ids = futures::future::join_all(requests).await;
    ids.sort();
    ids.dedup();
    let mut deleted = 0;
    for id in &ids {
        deleted += finished_sweep(&app, id).await["deleted"]
            .as_u64()
            .expect("deleted");
    }
    // Anything a request's pass left (it started after another ended) goes in one more.
    deleted += app.sweep().await["deleted"].as_u64().expect("deleted");

    assert_eq!(deleted, 120, "each artifact deleted by exactly one pass");
    assert_eq!(
        deletions_counted(&metrics().await) - before,
        120,
        "and counted once"
    );
}
