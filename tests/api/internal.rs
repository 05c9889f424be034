//! The pipeline's API: status transitions, intermediates, results, errors.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn the_internal_api_needs_the_internal_token_and_no_other() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    let path = format!("/internal/v1/transcripts/{id}/processing");
    for auth in [
        None,
        Some("Bearer wrong".to_owned()),
        Some(format!("Bearer {ADMIN}")),
        Some(key.clone()),
        Some(INTERNAL.to_owned()),
    ] {
        let response = app
            .request(Method::POST, &path, auth.as_deref())
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::UNAUTHORIZED).await;
        assert!(message.contains("internal API token"), "{message}");
    }
    assert_eq!(
        app.get_transcript(&key, &id).await["status"],
        "queued",
        "nothing changed"
    );
}

#[tokio::test]
async fn processing_complete_and_error_move_the_status_and_refuse_to_move_it_back() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    let processing = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/processing"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(processing, StatusCode::OK).await,
        json!({"id": id, "status": "processing"})
    );
    let again = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/processing"),
        )
        .send()
        .await
        .expect("request");
    expect_json(again, StatusCode::OK).await;
    assert_eq!(
        app.complete(&id).await,
        json!({"id": id, "status": "completed"})
    );
    for path in ["processing", "complete", "error"] {
        let response = app
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{id}/{path}"),
            )
            .json(&json!({"error": "late", "text": "late"}))
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::CONFLICT).await;
        assert!(message.contains("already completed"), "{path}: {message}");
    }
    let response = app
        .internal(
            Method::PUT,
            &format!("/internal/v1/transcripts/{id}/intermediates/late"),
        )
        .body("x")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::CONFLICT).await;

    let failing = app.url_transcript(&key).await;
    let response = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{failing}/error"),
        )
        .json(&json!({"error": "audio could not be decoded"}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await["status"],
        "error"
    );
    let t = app.get_transcript(&key, &failing).await;
    assert_eq!(
        (t["status"].as_str(), t["error"].as_str()),
        (Some("error"), Some("audio could not be decoded"))
    );
}

#[tokio::test]
async fn bad_pipeline_requests_are_4xx_and_change_nothing() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    let cases = [
        ("complete", json!({"text": 5}), "text must be a string"),
        (
            "complete",
            json!({"words": "hello"}),
            "words must be a list",
        ),
        ("complete", json!({"confidence": 2}), "confidence must be"),
        ("complete", json!({"audio_duration": -1}), "audio_duration"),
        ("error", json!({}), "error is required"),
        ("error", json!({"error": ""}), "error is required"),
    ];
    for (path, body, expected) in cases {
        let response = app
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{id}/{path}"),
            )
            .json(&body)
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(app.get_transcript(&key, &id).await["status"], "queued");
    for name in ["..", "a/b", "with space", &"x".repeat(129)] {
        let response = app
            .internal(
                Method::PUT,
                &format!(
                    "/internal/v1/transcripts/{id}/intermediates/{}",
                    name.replace(' ', "%20")
                ),
            )
            .body("x")
            .send()
            .await
            .expect("request");
        assert!(
            response.status().is_client_error(),
            "{name}: {}",
            response.status()
        );
    }
    let unknown = "01a20b2b-1242-7479-b5d2-7da23aa505fe";
    for path in ["processing", "complete", "error", "speech-understanding"] {
        let response = app
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{unknown}/{path}"),
            )
            .json(&json!({"error": "x"}))
            .send()
            .await
            .expect("request");
        expect_error(response, StatusCode::NOT_FOUND).await;
    }
    assert!(app.retention(&key, &id).await["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .all(|a| a["kind"] != "intermediate"));
}

#[tokio::test]
async fn intermediates_and_speech_understanding_results_are_tracked_artifacts() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let id = app.url_transcript(&key).await;
    let stored = app.intermediate(&id, "decoded.wav").await;
    assert_eq!(
        (stored["kind"].as_str(), stored["size_bytes"].as_i64()),
        (Some("intermediate"), Some(19))
    );
    app.complete(&id).await;
    let response = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/speech-understanding"),
        )
        .json(&json!({"translated_texts": {"de": "hallo"}}))
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::CREATED).await["kind"],
        "speech_understanding"
    );
    let view = app.retention(&key, &id).await;
    for kind in ["intermediate", "speech_understanding"] {
        assert_eq!(
            artifact(&view, kind)["delete_after"],
            artifact(&view, "final_transcript")["delete_after"],
            "{kind} is linked"
        );
    }
}
