//! Legal holds: while a hold is active no path deletes what it covers — a sweep past the
//! deadline, a customer DELETE, a retroactive shortening — and on release the next pass
//! deletes whatever is past its deadline.

use crate::helpers::*;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// An account with a two-hour TTL: (account id, key).
async fn ttl_account(app: &TestApp) -> (String, String) {
    let (id, key) = app.account_with(json!({"name": "held"})).await;
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"transcript_ttl_seconds": 7200}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    (id, key)
}

/// A completed transcript from an upload.
async fn uploaded_transcript(app: &TestApp, key: &str) -> String {
    let url = app.upload(key, b"MARKER-AUDIO").await;
    let t = app.create_transcript(key, json!({"audio_url": url})).await;
    let id = t["id"].as_str().expect("id").to_owned();
    let response = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/processing"),
        )
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    app.complete(&id).await;
    id
}

async fn hold(app: &TestApp, body: Value) -> Value {
    let response = app
        .admin(Method::POST, "/admin/v1/holds")
        .json(&body)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::CREATED).await
}

async fn release(app: &TestApp, id: &str) -> Value {
    let response = app
        .admin(Method::DELETE, &format!("/admin/v1/holds/{id}"))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

fn states(view: &Value) -> Vec<(String, String)> {
    let mut states: Vec<(String, String)> = view["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| {
            (
                a["kind"].as_str().expect("kind").to_owned(),
                a["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect();
    states.sort();
    states
}

fn all_in(view: &Value, state: &str) -> bool {
    states(view).iter().all(|(_, s)| s == state)
}

#[tokio::test]
async fn a_held_transcript_survives_sweeps_past_its_deadline_a_customer_delete_and_a_shortening_and_goes_within_one_pass_of_release(
) {
    let app = spawn_app().await;
    let (account, key) = ttl_account(&app).await;
    let id = uploaded_transcript(&app, &key).await;
    let placed = hold(
        &app,
        json!({"account_id": account, "transcript_id": id, "reason": "matter 2026-117"}),
    )
    .await;
    assert_eq!(placed["active"], true);
    assert_eq!(app.retention(&key, &id).await["legal_hold"], true);

    // Past every deadline, twice, and past the hold's recheck.
    app.advance(Duration::days(4));
    app.sweep().await;
    app.advance(Duration::hours(2));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert!(all_in(&view, "live"), "nothing held is deleted: {view}");
    assert_eq!(view["legal_hold"], true);

    // The customer cannot delete it either, and nothing is marked.
    let refused = expect_error(app.delete_transcript(&key, &id).await, StatusCode::CONFLICT).await;
    assert!(refused.contains("legal hold"), "{refused}");
    assert!(all_in(&app.retention(&key, &id).await, "live"));

    // A retroactive shortening changes schedules, not the hold.
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"transcript_ttl_seconds": 3600}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    app.sweep().await;
    assert!(all_in(&app.retention(&key, &id).await, "live"));

    let released = release(&app, placed["id"].as_str().expect("id")).await;
    assert_eq!(released["active"], false);
    assert!(released["released_at"].is_string());
    let view = app.retention(&key, &id).await;
    assert_eq!(view["legal_hold"], false);
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    assert!(all_in(&view, "deleted"), "one pass after release: {view}");
    assert_eq!(
        states(&view)
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>(),
        ["final_transcript", "uploaded_audio"],
        "the upload was held with its transcript"
    );
}

#[tokio::test]
async fn an_account_hold_covers_all_its_transcripts_and_no_other_accounts() {
    let app = spawn_app().await;
    let (held_account, held_key) = ttl_account(&app).await;
    let (_, free_key) = ttl_account(&app).await;
    let held: Vec<String> = vec![
        app.completed_transcript(&held_key).await,
        uploaded_transcript(&app, &held_key).await,
    ];
    let free = app.completed_transcript(&free_key).await;
    let placed = hold(
        &app,
        json!({"account_id": held_account, "reason": "litigation"}),
    )
    .await;
    assert_eq!(placed["transcript_id"], Value::Null);

    app.advance(Duration::days(4));
    app.sweep().await;
    for id in &held {
        let view = app.retention(&held_key, id).await;
        assert!(all_in(&view, "live"), "{view}");
        assert_eq!(view["legal_hold"], true);
    }
    assert!(all_in(&app.retention(&free_key, &free).await, "deleted"));

    release(&app, placed["id"].as_str().expect("id")).await;
    app.sweep().await;
    for id in &held {
        assert!(all_in(&app.retention(&held_key, id).await, "deleted"));
    }
}

#[tokio::test]
async fn two_holds_on_one_transcript_keep_it_until_both_are_released() {
    let app = spawn_app().await;
    let (account, key) = ttl_account(&app).await;
    let id = app.completed_transcript(&key).await;
    let first = hold(
        &app,
        json!({"account_id": account, "transcript_id": id, "reason": "a"}),
    )
    .await;
    let second = hold(&app, json!({"account_id": account, "reason": "b"})).await;
    app.advance(Duration::days(4));
    app.sweep().await;
    release(&app, first["id"].as_str().expect("id")).await;
    app.sweep().await;
    assert!(
        all_in(&app.retention(&key, &id).await, "live"),
        "the account hold remains"
    );
    release(&app, second["id"].as_str().expect("id")).await;
    app.sweep().await;
    assert!(all_in(&app.retention(&key, &id).await, "deleted"));
}

#[tokio::test]
async fn holds_are_listed_validated_and_need_the_admin_token() {
    let app = spawn_app().await;
    let (account, key) = ttl_account(&app).await;
    let (other_account, other_key) = ttl_account(&app).await;
    let id = app.completed_transcript(&key).await;
    let other_transcript = app.completed_transcript(&other_key).await;

    let a = hold(&app, json!({"account_id": account, "reason": "first"})).await;
    let b = hold(
        &app,
        json!({"account_id": other_account, "reason": "second"}),
    )
    .await;
    release(&app, a["id"].as_str().expect("id")).await;
    // Releasing twice keeps the first release.
    let again = release(&app, a["id"].as_str().expect("id")).await;
    assert_eq!(again["active"], false);

    let list = |query: &'static str| {
        let app = &app;
        async move {
            let response = app
                .admin(Method::GET, &format!("/admin/v1/holds{query}"))
                .send()
                .await
                .expect("request");
            expect_json(response, StatusCode::OK).await
        }
    };
    let active = list("").await;
    assert_eq!(active["holds"].as_array().expect("holds").len(), 1);
    assert_eq!(active["holds"][0]["id"], b["id"]);
    let all = list("?include_released=true").await;
    assert_eq!(all["holds"].as_array().expect("holds").len(), 2);

    for (body, status) in [
        (json!({"account_id": account}), StatusCode::BAD_REQUEST),
        (
            json!({"account_id": account, "reason": "  "}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account_id": account, "reason": "x", "scope": "all"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account_id": "nope", "reason": "x"}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"account_id": uuid::Uuid::new_v4(), "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
        // Another account's transcript is not this account's.
        (
            json!({"account_id": account, "transcript_id": other_transcript, "reason": "x"}),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let response = app
            .admin(Method::POST, "/admin/v1/holds")
            .json(&body)
            .send()
            .await
            .expect("request");
        expect_error(response, status).await;
    }
    let response = app
        .admin(
            Method::DELETE,
            &format!("/admin/v1/holds/{}", uuid::Uuid::new_v4()),
        )
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::NOT_FOUND).await;
    for (method, path) in [
        (Method::GET, "/admin/v1/holds"),
        (Method::POST, "/admin/v1/holds"),
    ] {
        let response = app
            .public(method, path, &key)
            .json(&json!({"account_id": account, "transcript_id": id, "reason": "x"}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            StatusCode::UNAUTHORIZED,
            "{path} with a customer key"
        );
    }
}

#[tokio::test]
async fn a_customer_deletion_of_held_gateway_content_is_409_and_deletes_nothing() {
    let app = spawn_app().await;
    let (account, key) = ttl_account(&app).await;
    let response = app
        .internal(Method::POST, "/internal/v1/llm-gateway/requests")
        .json(&json!({"account_id": account, "provider": "openai", "model": "gpt-4o", "input": "MARKER-IN", "output": "MARKER-OUT"}))
        .send()
        .await
        .expect("request");
    let recorded = expect_json(response, StatusCode::CREATED).await;
    let id = recorded["artifact"]["id"]
        .as_str()
        .expect("artifact id")
        .to_owned();
    hold(&app, json!({"account_id": account, "reason": "litigation"})).await;
    let response = app
        .public(
            Method::DELETE,
            &format!("/v2/llm-gateway/requests/{id}"),
            &key,
        )
        .send()
        .await
        .expect("request");
    let error = expect_error(response, StatusCode::CONFLICT).await;
    assert!(error.contains("legal hold"), "{error}");
    let response = app
        .public(Method::GET, &format!("/v2/llm-gateway/requests/{id}"), &key)
        .send()
        .await
        .expect("request");
    assert_eq!(expect_json(response, StatusCode::OK).await["state"], "live");
}
