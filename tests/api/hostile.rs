//! Hostile input (issue 10): no request may take the service down, leak a secret or forge
//! state. Each test names the defect it guards against.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Every string option of `POST /v2/transcript`, sent with a number: a clear 400, and the
/// server still answers afterwards (the wrong-type message once recursed without end and
/// aborted the whole process).
#[tokio::test]
async fn a_wrong_typed_string_option_is_a_400_and_the_server_stays_up() {
    let app = spawn_app().await;
    let key = app.account().await;
    for field in [
        "prompt",
        "speech_model",
        "webhook_url",
        "language_code",
        "webhook_auth_header_name",
        "webhook_auth_header_value",
        "redact_pii_sub",
        "summary_model",
        "summary_type",
        "domain",
    ] {
        let response = app
            .public(Method::POST, "/v2/transcript", &key)
            .json(&json!({"audio_url": "https://x/a.wav", field: 1}))
            .send()
            .await
            .expect("the server answers");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(field), "{field}: {message}");
    }
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("still up");
    assert_eq!(health.status(), StatusCode::OK);
}

/// `created_on=+262142-12-31` once overflowed the list query and dropped the connection.
#[tokio::test]
async fn an_absurd_created_on_is_a_400_not_a_dropped_connection() {
    let app = spawn_app().await;
    let key = app.account().await;
    for day in ["%2B262142-12-31", "-0001-01-01", "0000-00-00", "9999-99-99"] {
        let response = app
            .public(
                Method::GET,
                &format!("/v2/transcript?created_on={day}"),
                &key,
            )
            .send()
            .await
            .expect("the server answers");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("created_on"), "{day}: {message}");
    }
}

/// Server-owned fields were echoed and served: `"id": "not-the-id", "status":
/// "completed", "text": "FAKE TEXT"`.
#[tokio::test]
async fn server_owned_fields_in_a_request_are_refused_by_name_and_nothing_is_stored() {
    let app = spawn_app().await;
    let key = app.account().await;
    let response = app
        .public(Method::POST, "/v2/transcript", &key)
        .json(&json!({"audio_url": "https://x/a.wav", "id": "not-the-id",
                       "status": "completed", "text": "FAKE TEXT"}))
        .send()
        .await
        .expect("request");
    let message = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert!(
        message.contains("id, status, text are set by the server"),
        "{message}"
    );
    let list = app
        .public(Method::GET, "/v2/transcript", &key)
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(list, StatusCode::OK).await["transcripts"],
        json!([]),
        "nothing stored"
    );
}

/// Unknown numeric and boolean fields were kept in the transcript row forever, even for
/// zero-data-retention accounts.
#[tokio::test]
async fn unknown_fields_are_refused_and_never_reach_the_transcript_row() {
    let app = spawn_app().await;
    let (_, zdr_key) = app
        .account_with(json!({"name": "zdr", "zero_data_retention": true}))
        .await;
    for key in [app.account().await, zdr_key] {
        let response = app
            .public(Method::POST, "/v2/transcript", &key)
            .json(&json!({"audio_url": "https://x/a.wav", "patient_age": 63, "is_vip": true}))
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(
            message.contains("unknown fields patient_age, is_vip")
                || message.contains("unknown fields is_vip, patient_age"),
            "{message}"
        );
    }
}

/// A BAA account's LLM Gateway traffic to Anthropic or Google was stored when the
/// provider was spelled `" anthropic"`, `"ANTHROPIC\t"`, `"google-vertex"`, `"gemini"` or
/// `"claude"`; and a provider Lethe cannot classify is not stored either (default-deny).
#[tokio::test]
async fn s6_baa_zero_data_retention_is_not_bypassed_by_spelling_and_unknown_providers_are_denied() {
    let app = spawn_app().await;
    let (account, _) = app
        .account_with(json!({"name": "clinic", "baa": true}))
        .await;
    for (provider, model) in [
        (" anthropic", "claude-3-5-sonnet"),
        ("ANTHROPIC\t", "m-1"),
        ("google-vertex", "m-1"),
        ("gemini", "gemini-2.0"),
        ("claude", "x"),
        ("aws-bedrock", "anthropic.claude-3"),
        ("acme-llm", "acme-1"),
    ] {
        let response = app
            .internal(Method::POST, "/internal/v1/llm-gateway/requests")
            .json(&json!({"account_id": account, "provider": provider, "model": model,
                           "input": [{"role": "user", "content": "PHI-TEXT"}], "output": {"text": "x"}}))
            .send()
            .await
            .expect("request");
        let body = expect_json(response, StatusCode::CREATED).await;
        assert_eq!(body["stored"], false, "{provider:?} {model:?}: {body}");
    }
    let stored = app
        .internal(Method::POST, "/internal/v1/llm-gateway/requests")
        .json(
            &json!({"account_id": account, "provider": "openai", "model": "gpt-4o",
                       "input": "x", "output": "y"}),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(stored, StatusCode::CREATED).await["stored"],
        true
    );
}
