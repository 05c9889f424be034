//! `GET|PUT /v2/account/retention` (retention.md §1 through HTTP).

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

async fn settings(app: &TestApp, key: &str) -> Value {
    let response = app
        .public(Method::GET, "/v2/account/retention", key)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

async fn put(app: &TestApp, key: &str, body: &str) -> reqwest::Response {
    app.public(Method::PUT, "/v2/account/retention", key)
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

#[tokio::test]
async fn s1_a_new_account_has_the_default_settings_and_mode() {
    let app = spawn_app().await;
    let key = app.account().await;
    assert_eq!(
        settings(&app, &key).await,
        json!({"transcript_ttl_seconds": null, "upload_ttl_seconds": 259200, "model_training_opt_out": false,
               "baa": false, "region": "us", "zero_data_retention": false, "mode": "default",
               "policy_version": 1, "retention_change": null, "deletion_webhook_url": null})
    );
}

#[tokio::test]
async fn s1_setting_a_ttl_makes_the_mode_ttl_and_null_removes_it() {
    let app = spawn_app().await;
    let key = app.account().await;
    let response = put(&app, &key, r#"{"transcript_ttl_seconds": 3600, "upload_ttl_seconds": 7200, "model_training_opt_out": true}"#).await;
    let body = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (
            body["mode"].as_str(),
            body["transcript_ttl_seconds"].as_i64()
        ),
        (Some("ttl"), Some(3600))
    );
    assert_eq!(
        (
            body["upload_ttl_seconds"].as_i64(),
            body["model_training_opt_out"].as_bool()
        ),
        (Some(7200), Some(true))
    );
    assert_eq!(settings(&app, &key).await, body);
    let response = put(&app, &key, r#"{"transcript_ttl_seconds": null}"#).await;
    assert_eq!(
        expect_json(response, StatusCode::OK).await["mode"],
        "default"
    );
}

#[tokio::test]
async fn s1_refused_settings_are_4xx_and_leave_the_account_unchanged() {
    let app = spawn_app().await;
    let key = app.account().await;
    put(&app, &key, r#"{"transcript_ttl_seconds": 7200}"#).await;
    let before = settings(&app, &key).await;
    let bad = [
        (
            r#"{"transcript_ttl_seconds": 3599}"#,
            StatusCode::BAD_REQUEST,
            "at least 1 hour",
        ),
        (
            r#"{"transcript_ttl_seconds": 0}"#,
            StatusCode::BAD_REQUEST,
            "at least 1 hour",
        ),
        (
            r#"{"transcript_ttl_seconds": -5}"#,
            StatusCode::BAD_REQUEST,
            "at least 1 hour",
        ),
        (
            r#"{"transcript_ttl_seconds": 999999999999}"#,
            StatusCode::BAD_REQUEST,
            "at most 10 years",
        ),
        (
            r#"{"transcript_ttl_seconds": "1h"}"#,
            StatusCode::BAD_REQUEST,
            "whole number of seconds",
        ),
        (
            r#"{"transcript_ttl_seconds": 1.5}"#,
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            r#"{"upload_ttl_seconds": null}"#,
            StatusCode::BAD_REQUEST,
            "whole number",
        ),
        (
            r#"{"model_training_opt_out": "yes"}"#,
            StatusCode::BAD_REQUEST,
            "true or false",
        ),
        (
            r#"{"transcript_ttl_seconds": 3600, "colour": "red"}"#,
            StatusCode::BAD_REQUEST,
            "unknown field",
        ),
        (r#"{"baa": true}"#, StatusCode::FORBIDDEN, "operator"),
        (r#"{"region": "eu"}"#, StatusCode::FORBIDDEN, "operator"),
        (
            r#"{"zero_data_retention": true, "transcript_ttl_seconds": 3600}"#,
            StatusCode::FORBIDDEN,
            "operator",
        ),
        ("{oops", StatusCode::BAD_REQUEST, "JSON"),
    ];
    for (body, status, expected) in bad {
        let message = expect_error(put(&app, &key, body).await, status).await;
        assert!(message.contains(expected), "{body}: {message}");
        assert_eq!(settings(&app, &key).await, before, "{body} changed nothing");
    }
}

#[tokio::test]
async fn s1_a_baa_account_cannot_set_a_ttl_over_72_hours() {
    let app = spawn_app().await;
    let (_, key) = app
        .account_with(json!({"name": "clinic", "baa": true}))
        .await;
    assert_eq!(settings(&app, &key).await["mode"], "baa");
    let message = expect_error(
        put(&app, &key, r#"{"transcript_ttl_seconds": 259201}"#).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(message.contains("72 hours"), "{message}");
    let response = put(&app, &key, r#"{"transcript_ttl_seconds": 259200}"#).await;
    assert_eq!(expect_json(response, StatusCode::OK).await["mode"], "ttl");
}
