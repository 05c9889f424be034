//! The retention matrix (retention.md §3) through HTTP: move the clock, sweep through the
//! admin API, read the retention view.

use crate::helpers::*;
use chrono::Duration;
use reqwest::Method;
use serde_json::{json, Value};

async fn upload_transcript(app: &TestApp, key: &str) -> String {
    let url = app.upload(key, b"MARKER-AUDIO").await;
    let t = app
        .create_transcript(key, json!({"audio_url": url, "prompt": "MARKER-PROMPT"}))
        .await;
    let id = t["id"].as_str().expect("id").to_owned();
    app.internal(
        Method::POST,
        &format!("/internal/v1/transcripts/{id}/processing"),
    )
    .send()
    .await
    .expect("request");
    app.intermediate(&id, "chunk-0").await;
    app.complete(&id).await;
    id
}

fn state_of(view: &Value, kind: &str) -> (String, Option<String>) {
    let a = artifact(view, kind);
    (
        a["state"].as_str().expect("state").to_owned(),
        a["deletion_reason"].as_str().map(str::to_owned),
    )
}

fn live() -> (String, Option<String>) {
    ("live".into(), None)
}

fn deleted(reason: &str) -> (String, Option<String>) {
    ("deleted".into(), Some(reason.into()))
}

#[tokio::test]
async fn s3_ttl_mode_through_http_final_at_the_ttl_linked_with_it_upload_at_upload_ttl() {
    let app = spawn_app().await;
    let key = app.ttl_account(2 * 3600).await;
    let id = upload_transcript(&app, &key).await;

    app.advance(Duration::hours(2) - Duration::seconds(1));
    assert_eq!(app.sweep().await["deleted"], 0);
    app.advance(Duration::seconds(1));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert_eq!(state_of(&view, "final_transcript"), deleted("ttl"));
    assert_eq!(state_of(&view, "text_input"), deleted("linked"));
    assert_eq!(state_of(&view, "intermediate"), deleted("linked"));
    assert_eq!(state_of(&view, "uploaded_audio"), live());

    app.advance(Duration::hours(70));
    app.sweep().await;
    assert_eq!(
        state_of(&app.retention(&key, &id).await, "uploaded_audio"),
        deleted("ttl")
    );
}

#[tokio::test]
async fn s3_baa_mode_through_http_transcripts_live_72_hours() {
    let app = spawn_app().await;
    let (_, key) = app
        .account_with(json!({"name": "clinic", "baa": true}))
        .await;
    let id = upload_transcript(&app, &key).await;
    app.advance(Duration::hours(72) - Duration::seconds(1));
    app.sweep().await;
    assert_eq!(
        state_of(&app.retention(&key, &id).await, "final_transcript"),
        live()
    );
    app.advance(Duration::seconds(1));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert_eq!(state_of(&view, "final_transcript"), deleted("ttl"));
    assert_eq!(state_of(&view, "uploaded_audio"), deleted("ttl"));
    assert_eq!(state_of(&view, "intermediate"), deleted("linked"));
}

#[tokio::test]
async fn s3_default_mode_through_http_windows_for_uploads_and_intermediates_transcripts_kept() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = upload_transcript(&app, &key).await;

    app.advance(Duration::hours(24));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert_eq!(state_of(&view, "uploaded_audio"), deleted("window"));
    assert_eq!(state_of(&view, "intermediate"), live());
    app.advance(Duration::hours(24));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert_eq!(state_of(&view, "intermediate"), deleted("window"));
    app.advance(Duration::days(3650));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert_eq!(state_of(&view, "final_transcript"), live());
    assert_eq!(state_of(&view, "text_input"), live());
    assert_eq!(
        artifact(&view, "final_transcript")["delete_after"],
        Value::Null,
        "indefinite"
    );
    assert_eq!(
        app.get_transcript(&key, &id).await["text"],
        "MARKER-TEXT hello world"
    );
}
