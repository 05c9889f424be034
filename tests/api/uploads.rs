//! `POST /v2/upload` and the pipeline's read of it.

use crate::helpers::*;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn an_upload_returns_its_url_and_the_pipeline_reads_the_bytes_back() {
    let app = spawn_app().await;
    let key = app.account().await;
    let url = app.upload(&key, b"RIFF-MARKER-AUDIO").await;
    assert!(
        url.starts_with(&format!("{}/v2/upload/", app.base)),
        "{url}"
    );
    let id = url.rsplit('/').next().expect("id");
    let response = app
        .internal(Method::GET, &format!("/internal/v1/uploads/{id}"))
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "application/octet-stream"
    );
    assert_eq!(
        &response.bytes().await.expect("body")[..],
        b"RIFF-MARKER-AUDIO"
    );
}

#[tokio::test]
async fn an_empty_upload_is_400_and_an_oversized_one_413_and_neither_stores_anything() {
    let app = spawn_app_with(|c| c.max_upload_bytes = 1024).await;
    let key = app.account().await;
    let response = app
        .public(Method::POST, "/v2/upload", &key)
        .body("")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST).await;
    let response = app
        .public(Method::POST, "/v2/upload", &key)
        .body(vec![7u8; 4096])
        .send()
        .await
        .expect("request");
    let message = expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    assert!(message.contains("1024"), "{message}");
    // Chunked, without a Content-Length: stopped while streaming.
    let chunks = futures::stream::iter((0..8).map(|_| Ok::<_, std::io::Error>(vec![7u8; 512])));
    let response = app
        .public(Method::POST, "/v2/upload", &key)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::PAYLOAD_TOO_LARGE).await;
    let counts = app
        .app
        .engine
        .backends()
        .index
        .count_by_kind_and_state()
        .await
        .expect("counts");
    assert!(
        counts.iter().all(|(_, _, n)| *n == 0),
        "nothing tracked: {counts:?}"
    );
    let content = app.dir.path().join("content");
    let files = walk(&content);
    assert!(files.is_empty(), "no content files: {files:?}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                files.extend(walk(&path));
            } else {
                files.push(path);
            }
        }
    }
    files
}

#[tokio::test]
async fn a_deleted_or_expired_upload_is_410_to_the_pipeline_and_an_unknown_one_404() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let url = app.upload(&key, b"MARKER-AUDIO").await;
    let id = url.rsplit('/').next().expect("id").to_owned();
    app.advance(Duration::hours(72));
    let response = app
        .internal(Method::GET, &format!("/internal/v1/uploads/{id}"))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::GONE).await;
    app.sweep().await;
    let response = app
        .internal(Method::GET, &format!("/internal/v1/uploads/{id}"))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::GONE).await;
    let response = app
        .internal(
            Method::GET,
            "/internal/v1/uploads/01a20b2b-1242-7479-b5d2-7da23aa505fe",
        )
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn a_transcript_from_an_upload_shows_the_upload_url_and_deletion_takes_the_upload_too() {
    let app = spawn_app().await;
    let key = app.account().await;
    let url = app.upload(&key, b"MARKER-AUDIO").await;
    let t = app.create_transcript(&key, json!({"audio_url": url})).await;
    assert_eq!(t["audio_url"], url.as_str());
    let id = t["id"].as_str().expect("id").to_owned();
    app.complete(&id).await;
    app.public(Method::DELETE, &format!("/v2/transcript/{id}"), &key)
        .send()
        .await
        .expect("request");
    let upload_id = url.rsplit('/').next().expect("id");
    let response = app
        .internal(Method::GET, &format!("/internal/v1/uploads/{upload_id}"))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::GONE).await;
    let view = app.retention(&key, &id).await;
    assert_eq!(
        artifact(&view, "uploaded_audio")["deletion_reason"],
        "customer_request"
    );
}
