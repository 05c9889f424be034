//! AssemblyAI's completion webhook through the durable outbox: retried with backoff until
//! the receiver takes it, delivered exactly once, across a restart too; never sent once the
//! transcript (and with it the URL) is deleted; no URL or secret in the operators' view.

use crate::helpers::*;
use axum::http::{HeaderMap, StatusCode as AxumStatus};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::sync::{Arc, Mutex};

/// Each call a receiver saw: a header it looked at, and the body.
type Calls<B> = Arc<Mutex<Vec<(Option<String>, B)>>>;

/// A receiver that fails its first `failures` calls with 500, then answers 200; it records
/// every call's auth header and body.
struct Receiver {
    url: String,
    calls: Calls<Value>,
}

async fn receiver(failures: usize) -> Receiver {
    let calls: Calls<Value> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = seen.clone();
            async move {
                let mut calls = seen.lock().expect("calls");
                let auth = headers
                    .get("x-hook-auth")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                calls.push((auth, body.0));
                if calls.len() <= failures {
                    AxumStatus::INTERNAL_SERVER_ERROR
                } else {
                    AxumStatus::OK
                }
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!(
        "http://{}/hook?token=HOOK-URL-SECRET",
        listener.local_addr().expect("addr")
    );
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    Receiver { url, calls }
}

/// A transcript whose request sets a webhook to `url` with an auth header; its id.
async fn created_with_webhook(app: &TestApp, key: &str, url: &str) -> String {
    let t = app
        .create_transcript(
            key,
            json!({
                "audio_url": "https://example.com/a.mp3",
                "webhook_url": url,
                "webhook_auth_header_name": "X-Hook-Auth",
                "webhook_auth_header_value": "HOOK-HEADER-SECRET",
            }),
        )
        .await;
    t["id"].as_str().expect("id").to_owned()
}

/// A completed transcript that asked for a webhook at `url`.
async fn transcript_with_webhook(app: &TestApp, key: &str, url: &str) -> String {
    let id = created_with_webhook(app, key, url).await;
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

async fn deliveries(app: &TestApp) -> Value {
    let response = app
        .admin(Method::GET, "/admin/v1/webhooks/deliveries")
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

#[tokio::test]
async fn a_receiver_that_fails_three_times_then_succeeds_gets_exactly_one_delivery_marked_delivered(
) {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.account().await;
    let hook = receiver(3).await;
    let id = transcript_with_webhook(&app, &key, &hook.url).await;
    let engine = &app.app.engine;

    let mut waits = Vec::new();
    for _ in 0..6 {
        engine.deliver_webhooks().await.expect("a round");
        let list = deliveries(&app).await;
        let d = &list["deliveries"][0];
        if d["state"] == "delivered" {
            break;
        }
        let next: chrono::DateTime<chrono::Utc> = d["next_attempt_at"]
            .as_str()
            .expect("next")
            .parse()
            .expect("time");
        waits.push((next - app.app.engine.now()).num_seconds());
        // Not before its time: a round now sends nothing.
        engine.deliver_webhooks().await.expect("a round");
        app.clock.advance(next - app.app.engine.now());
    }
    assert_eq!(waits, [10, 20, 40], "backoff doubles from 10 s");
    let list = deliveries(&app).await;
    let all = list["deliveries"].as_array().expect("deliveries");
    assert_eq!(all.len(), 1, "one delivery for one completion: {list}");
    assert_eq!(all[0]["state"], "delivered");
    assert_eq!(all[0]["attempts"], 4);
    assert_eq!(all[0]["last_status"], 200);
    assert_eq!(all[0]["transcript_id"], id.as_str());

    // Later rounds send nothing more.
    app.clock.advance(chrono::Duration::hours(2));
    engine.deliver_webhooks().await.expect("a round");
    let calls = hook.calls.lock().expect("calls").clone();
    assert_eq!(calls.len(), 4, "three failures and one success");
    for (auth, body) in &calls {
        assert_eq!(
            auth.as_deref(),
            Some("HOOK-HEADER-SECRET"),
            "the customer's header"
        );
        assert_eq!(body, &json!({"transcript_id": id, "status": "completed"}));
    }
    // The operators' view names no URL and no secret.
    let text = list.to_string();
    assert!(
        !text.contains("HOOK-URL-SECRET")
            && !text.contains("HOOK-HEADER-SECRET")
            && !text.contains("127.0.0.1"),
        "{text}"
    );
}

#[tokio::test]
async fn a_pending_delivery_survives_a_restart_and_is_sent_once() {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.account().await;
    let hook = receiver(0).await;
    transcript_with_webhook(&app, &key, &hook.url).await;
    assert_eq!(deliveries(&app).await["deliveries"][0]["state"], "pending");

    // Another process over the same data dir (a restart): it sends the delivery.
    let restarted = lethe::startup::App::build(
        (*app.app.config).clone(),
        std::sync::Arc::new(app.clock.clone()),
    )
    .await
    .expect("restarted");
    let round = restarted.engine.deliver_webhooks().await.expect("a round");
    assert_eq!(round.delivered, 1);
    // Neither the old process nor the new one sends it again.
    app.clock.advance(chrono::Duration::hours(1));
    app.app.engine.deliver_webhooks().await.expect("a round");
    restarted.engine.deliver_webhooks().await.expect("a round");
    assert_eq!(hook.calls.lock().expect("calls").len(), 1);
    assert_eq!(
        deliveries(&app).await["deliveries"][0]["state"],
        "delivered"
    );
}

#[tokio::test]
async fn a_webhook_is_never_sent_once_its_transcript_is_deleted() {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.account().await;
    let hook = receiver(0).await;
    let id = transcript_with_webhook(&app, &key, &hook.url).await;
    let response = app.delete_transcript(&key, &id).await;
    assert_eq!(response.status(), StatusCode::OK);
    let round = app.app.engine.deliver_webhooks().await.expect("a round");
    assert_eq!(round.abandoned, 1);
    assert!(hook.calls.lock().expect("calls").is_empty());
    let d = &deliveries(&app).await["deliveries"][0];
    assert_eq!(d["state"], "abandoned");
}

#[tokio::test]
async fn a_transcript_without_a_webhook_url_adds_nothing_to_the_outbox() {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.account().await;
    app.completed_transcript(&key).await;
    assert_eq!(deliveries(&app).await["deliveries"], json!([]));
}

/// A receiver that records each call's signature header and raw body, answering 200.
async fn signed_receiver() -> (String, Calls<Vec<u8>>) {
    let calls: Calls<Vec<u8>> = Arc::default();
    let seen = calls.clone();
    let app = axum::Router::new().route(
        "/deleted",
        axum::routing::post(move |headers: HeaderMap, body: axum::body::Bytes| {
            let seen = seen.clone();
            async move {
                let signature = headers
                    .get("x-lethe-signature")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.lock().expect("calls").push((signature, body.to_vec()));
                AxumStatus::NO_CONTENT
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/deleted", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await.expect("receiver") });
    (url, calls)
}

#[tokio::test]
async fn deletion_events_are_signed_with_the_secret_shown_once_and_name_the_reason_and_receipt() {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.ttl_account(2 * 3600).await;
    let (url, calls) = signed_receiver().await;
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"deletion_webhook_url": url}))
        .send()
        .await
        .expect("request");
    let set = expect_json(response, StatusCode::OK).await;
    let secret = set["deletion_webhook_secret"]
        .as_str()
        .expect("the secret, once")
        .to_owned();
    assert_eq!(set["deletion_webhook_url"], url.as_str());
    assert_eq!(set["transcript_ttl_seconds"], 7200, "the TTL is untouched");
    let response = app
        .public(Method::GET, "/v2/account/retention", &key)
        .send()
        .await
        .expect("request");
    let shown = expect_json(response, StatusCode::OK).await;
    assert_eq!(shown["deletion_webhook_url"], url.as_str());
    assert!(!shown.to_string().contains(&secret), "never shown again");

    // A customer deletion and a TTL deletion, each announced once.
    let asked = app.completed_transcript(&key).await;
    let expired = app.completed_transcript(&key).await;
    app.delete_transcript(&key, &asked).await;
    app.advance(chrono::Duration::hours(3));
    app.sweep().await;
    let round = app.app.engine.deliver_webhooks().await.expect("a round");
    assert_eq!(round.delivered, 2, "{round:?}");
    app.app.engine.deliver_webhooks().await.expect("a round");

    let calls = calls.lock().expect("calls").clone();
    assert_eq!(calls.len(), 2);
    let mut reasons = Vec::new();
    for (signature, body) in &calls {
        assert_eq!(
            signature.as_deref(),
            Some(lethe::engine::webhooks::signature(&secret, body).as_str()),
            "signed with the account's secret"
        );
        assert_ne!(
            signature.as_deref(),
            Some(lethe::engine::webhooks::signature("another secret", body).as_str())
        );
        let event: Value = serde_json::from_slice(body).expect("JSON");
        assert_eq!(event["event"], "transcript.deleted");
        let id = event["transcript_id"].as_str().expect("id");
        assert_eq!(
            event["receipt_url"],
            format!("{}/v2/transcript/{id}/receipt", app.base).as_str()
        );
        assert!(event["deleted_at"].is_string());
        reasons.push((
            id.to_owned(),
            event["reason"].as_str().expect("reason").to_owned(),
        ));
    }
    reasons.sort();
    let mut expected = vec![
        (asked.clone(), "customer_request".to_owned()),
        (expired.clone(), "ttl".to_owned()),
    ];
    expected.sort();
    assert_eq!(reasons, expected);

    // Removing the URL stops the events; a bad URL is refused and changes nothing.
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"deletion_webhook_url": "ftp://nope"}))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST).await;
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"deletion_webhook_url": null}))
        .send()
        .await
        .expect("request");
    let removed = expect_json(response, StatusCode::OK).await;
    assert_eq!(removed["deletion_webhook_url"], Value::Null);
    assert!(removed.get("deletion_webhook_secret").is_none());
}

#[tokio::test]
async fn by_default_a_webhook_to_a_loopback_or_private_address_is_never_called() {
    let app = spawn_app().await;
    let key = app.account().await;
    let hook = receiver(0).await;
    // By address: refused outright, no retries.
    transcript_with_webhook(&app, &key, &hook.url).await;
    // By a name that resolves to loopback: refused when it is resolved, retried later.
    let by_name = hook.url.replace("127.0.0.1", "localhost");
    transcript_with_webhook(&app, &key, &by_name).await;
    let round = app.app.engine.deliver_webhooks().await.expect("a round");
    assert_eq!(
        (round.failed, round.retrying, round.delivered),
        (1, 1, 0),
        "{round:?}"
    );
    assert!(
        hook.calls.lock().expect("calls").is_empty(),
        "the receiver was never called"
    );
    let list = deliveries(&app).await;
    let failed = list["deliveries"]
        .as_array()
        .expect("deliveries")
        .iter()
        .find(|d| d["state"] == "failed")
        .expect("the literal address failed")
        .clone();
    assert!(
        failed["last_error"]
            .as_str()
            .expect("error")
            .contains("private"),
        "{failed}"
    );
}

/// A pipeline result may carry any field, but the webhook settings a customer reads back
/// are the ones their request set and Lethe delivers to: a result field of the same name
/// took their place in `GET /v2/transcript/{id}` before.
#[tokio::test]
async fn a_result_cannot_change_the_webhook_settings_a_customer_reads_back() {
    let app = spawn_app_with(|c| c.webhook_private_targets = true).await;
    let key = app.account().await;
    let hook = receiver(0).await;
    let id = created_with_webhook(&app, &key, &hook.url).await;
    let response = app
        .complete_raw(
            &id,
            json!({
                "text": "MARKER-TEXT",
                "webhook_url": "https://other.example.com/hook",
                "webhook_auth": false,
                "webhook_auth_header_name": "X-Other",
                "webhook_auth_header_value": "RESULT-SECRET",
            })
            .to_string(),
        )
        .await;
    expect_json(response, StatusCode::OK).await;

    let shown = app.get_transcript(&key, &id).await;
    assert_eq!(shown["text"], "MARKER-TEXT", "{shown}");
    assert_eq!(shown["webhook_url"], hook.url.as_str(), "{shown}");
    assert_eq!(shown["webhook_auth_header_name"], "X-Hook-Auth", "{shown}");
    // These two held before as well (`webhook_auth` came from the transcript, and a header
    // value is never echoed); kept so that they keep holding.
    assert_eq!(shown["webhook_auth"], true, "{shown}");
    let text = shown.to_string();
    for secret in ["RESULT-SECRET", "HOOK-HEADER-SECRET", "other.example.com"] {
        assert!(!text.contains(secret), "{secret} shown: {text}");
    }

    // And that is where the completion webhook goes.
    app.app.engine.deliver_webhooks().await.expect("a round");
    let calls = hook.calls.lock().expect("calls").clone();
    assert_eq!(calls.len(), 1, "{calls:?}");
    assert_eq!(calls[0].0.as_deref(), Some("HOOK-HEADER-SECRET"));
    assert_eq!(calls[0].1["transcript_id"], id.as_str());
}
