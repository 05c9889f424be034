//! retention.md §6 through HTTP: zero data retention, the LLM Gateway, speech
//! understanding, streaming sessions and model-training eligibility. Each test is named
//! after the rule it checks.

use crate::helpers::*;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

impl TestApp {
    async fn llm(&self, body: Value) -> reqwest::Response {
        self.internal(Method::POST, "/internal/v1/llm-gateway/requests")
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn stream_session(&self, body: Value) -> reqwest::Response {
        self.internal(Method::POST, "/internal/v1/streaming/sessions")
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    async fn usage(&self, account_id: &str) -> Vec<Value> {
        let response = self
            .admin(
                Method::GET,
                &format!("/admin/v1/accounts/{account_id}/usage"),
            )
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await["usage"]
            .as_array()
            .expect("usage")
            .clone()
    }

    async fn training_page(&self, query: &str) -> Value {
        let response = self
            .internal(
                Method::GET,
                &format!("/internal/v1/training/eligible{query}"),
            )
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// Every id the training export lists, following its pages.
    async fn training_ids(&self) -> Vec<String> {
        let mut ids = Vec::new();
        let mut query = "?limit=2".to_owned();
        loop {
            let page = self.training_page(&query).await;
            for a in page["artifacts"].as_array().expect("artifacts") {
                ids.push(a["id"].as_str().expect("id").to_owned());
            }
            match page["next_after"].as_str() {
                Some(after) => query = format!("?limit=2&after={after}"),
                None => return ids,
            }
        }
    }

    async fn public_json(
        &self,
        method: Method,
        path: &str,
        key: &str,
        status: StatusCode,
    ) -> Value {
        let response = self
            .public(method, path, key)
            .send()
            .await
            .expect("request");
        expect_json(response, status).await
    }

    async fn set_retention(&self, key: &str, body: Value) {
        let response = self
            .public(Method::PUT, "/v2/account/retention", key)
            .json(&body)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await;
    }
}

fn llm_body(account_id: &str, provider: &str) -> Value {
    json!({
        "account_id": account_id,
        "provider": provider,
        "model": format!("{provider}-model-1"),
        "input": [{"role": "user", "content": "PROMPT-9d1f"}],
        "output": {"text": "COMPLETION-4be2"},
        "started_at": rfc3339(t0() - Duration::seconds(3)),
        "ended_at": rfc3339(t0()),
    })
}

fn session_body(account_id: &str, ended_ago: Duration) -> Value {
    json!({
        "account_id": account_id,
        "model": "universal-streaming",
        "started_at": rfc3339(t0() - ended_ago - Duration::minutes(5)),
        "ended_at": rfc3339(t0() - ended_ago),
        "audio": "U1RSRUFNLUFVRElPLTgxYzA=",
        "transcript": {"text": "STREAM-TEXT-5e6a"},
    })
}

/// Files under the content dir (embedded profile); content of the AWS profile is in S3,
/// where the API-level checks below apply alike.
fn content_files(app: &TestApp) -> usize {
    fn walk(dir: &std::path::Path) -> usize {
        std::fs::read_dir(dir)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| {
                        let path = e.path();
                        if path.is_dir() {
                            walk(&path)
                        } else {
                            1
                        }
                    })
                    .sum()
            })
            .unwrap_or(0)
    }
    walk(&app.dir.path().join("content"))
}

// ---- Zero Data Retention accounts ---------------------------------------------------------

#[tokio::test]
async fn s6_zdr_account_content_is_refused_by_every_endpoint_with_nothing_written() {
    let app = spawn_app().await;
    // A transcript made before the account became ZDR, so the pipeline endpoints have one.
    let (account_id, key) = app.account_with(json!({"name": "inworld-like"})).await;
    let transcript = app.url_transcript(&key).await;
    let before = app.retention(&key, &transcript).await;
    let files_before = content_files(&app);
    let patch = app
        .admin(Method::PATCH, &format!("/admin/v1/accounts/{account_id}"))
        .json(&json!({"zero_data_retention": true}))
        .send()
        .await
        .expect("request");
    assert_eq!(expect_json(patch, StatusCode::OK).await["mode"], "zdr");

    let refusals = [
        app.public(Method::POST, "/v2/upload", &key)
            .body(&b"AUDIO"[..]),
        app.public(Method::POST, "/v2/transcript", &key)
            .json(&json!({"audio_url": "https://example.com/a.mp3"})),
        app.internal(
            Method::PUT,
            &format!("/internal/v1/transcripts/{transcript}/intermediates/chunk-0"),
        )
        .body(&b"DECODED"[..]),
        app.internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{transcript}/speech-understanding"),
        )
        .json(&json!({"translation": "TEXT"})),
        app.internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{transcript}/complete"),
        )
        .json(&json!({"text": "RESULT"})),
        app.internal(Method::POST, "/internal/v1/llm-gateway/requests")
            .json(&llm_body(&account_id, "openai")),
        app.internal(Method::POST, "/internal/v1/streaming/sessions")
            .json(&session_body(&account_id, Duration::minutes(1))),
    ];
    for request in refusals {
        let response = request.send().await.expect("request");
        let message = expect_error(response, StatusCode::CONFLICT).await;
        assert!(message.contains("zero data retention"), "{message}");
    }
    assert_eq!(
        app.retention(&key, &transcript).await["artifacts"],
        before["artifacts"],
        "no artifact"
    );
    assert_eq!(content_files(&app), files_before, "no content file");
    assert!(
        app.usage(&account_id).await.is_empty(),
        "a refusal records nothing"
    );
    let transcripts = app
        .public_json(Method::GET, "/v2/transcript", &key, StatusCode::OK)
        .await;
    assert_eq!(transcripts["transcripts"].as_array().map(Vec::len), Some(1));
}

#[tokio::test]
async fn s6_zdr_account_usage_metadata_is_kept_for_billing_and_visible_to_the_operator() {
    let app = spawn_app().await;
    let (account_id, _key) = app
        .account_with(json!({"name": "zdr", "zero_data_retention": true}))
        .await;
    let llm = app
        .llm(json!({
            "account_id": account_id, "provider": "openai", "model": "gpt-x",
            "started_at": rfc3339(t0() - Duration::milliseconds(2500)), "ended_at": rfc3339(t0()),
        }))
        .await;
    let llm = expect_json(llm, StatusCode::CREATED).await;
    assert_eq!(llm["stored"], false);
    assert_eq!(llm["artifact"], Value::Null);
    let mut session = session_body(&account_id, Duration::minutes(1));
    let object = session.as_object_mut().expect("object");
    object.remove("audio");
    object.remove("transcript");
    let session = expect_json(app.stream_session(session).await, StatusCode::CREATED).await;
    assert_eq!(session["stored"], false);

    let usage = app.usage(&account_id).await;
    assert_eq!(usage.len(), 2);
    assert_eq!(usage[0]["id"], llm["usage_id"]);
    assert_eq!(usage[0]["kind"], "llm_gateway");
    assert_eq!(usage[0]["model"], "gpt-x");
    assert_eq!(usage[0]["duration_seconds"], 2.5);
    assert_eq!(
        usage[0]["started_at"],
        rfc3339(t0() - Duration::milliseconds(2500))
    );
    assert_eq!(usage[0]["content_stored"], false);
    assert_eq!(usage[1]["kind"], "streaming");
    assert_eq!(usage[1]["model"], "universal-streaming");
    assert_eq!(usage[1]["duration_seconds"], 300.0);
    assert_eq!(content_files(&app), 0);
}

// ---- LLM Gateway ------------------------------------------------------------------------------

#[tokio::test]
async fn s6_llm_gateway_with_a_baa_and_anthropic_or_google_keeps_usage_only() {
    let app = spawn_app().await;
    let (account_id, _) = app
        .account_with(json!({"name": "clinic", "baa": true}))
        .await;
    for provider in ["anthropic", "Google"] {
        let response = app.llm(llm_body(&account_id, provider)).await;
        let body = expect_json(response, StatusCode::CREATED).await;
        assert_eq!(body["stored"], false, "{provider}");
        assert_eq!(body["artifact"], Value::Null);
    }
    assert_eq!(content_files(&app), 0, "no content persisted");
    // Another provider under the same BAA is stored, on the BAA's 72 hours.
    let openai = expect_json(
        app.llm(llm_body(&account_id, "openai")).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(openai["stored"], true);
    assert_eq!(openai["artifact"]["kind"], "llm_gateway_io");
    assert_eq!(
        openai["artifact"]["delete_after"],
        rfc3339(t0() + Duration::hours(72))
    );
    assert_eq!(
        openai["artifact"]["training_eligible"], false,
        "a BAA excludes training"
    );
    let usage = app.usage(&account_id).await;
    let stored: Vec<_> = usage.iter().map(|u| u["content_stored"].clone()).collect();
    assert_eq!(stored, [json!(false), json!(false), json!(true)]);
    assert_eq!(usage[0]["provider"], "anthropic");
    assert_eq!(
        usage[1]["provider"], "google",
        "providers are compared in lower case"
    );
}

#[tokio::test]
async fn s6_llm_gateway_with_a_transcript_ttl_is_deleted_hourly_from_the_next_top_of_the_hour() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "ttl"})).await;
    app.set_retention(&key, json!({"transcript_ttl_seconds": 7200}))
        .await;
    app.advance(Duration::minutes(10));
    let mut body = llm_body(&account_id, "openai");
    body.as_object_mut().expect("object").remove("ended_at");
    body["started_at"] = json!(rfc3339(t0() + Duration::minutes(9)));
    let created = expect_json(app.llm(body).await, StatusCode::CREATED).await;
    let artifact = &created["artifact"];
    // Created at 09:10: deletion may begin at 10:00 and must be done by 11:00.
    assert_eq!(artifact["delete_after"], rfc3339(t0() + Duration::hours(1)));
    assert_eq!(artifact["delete_by"], rfc3339(t0() + Duration::hours(2)));
    let id = artifact["id"].as_str().expect("id");
    let path = format!("/v2/llm-gateway/requests/{id}");
    let content_url = format!("/internal/v1/training/eligible/{id}/content");

    app.advance(Duration::minutes(49));
    app.sweep().await;
    assert_eq!(
        app.public_json(Method::GET, &path, &key, StatusCode::OK)
            .await["state"],
        "live"
    );
    let content = app
        .internal(Method::GET, &content_url)
        .send()
        .await
        .expect("request");
    assert_eq!(content.status(), StatusCode::OK, "servable before 10:00");

    app.advance(Duration::minutes(1));
    let content = app
        .internal(Method::GET, &content_url)
        .send()
        .await
        .expect("request");
    expect_error(content, StatusCode::GONE).await;
    app.sweep().await;
    let view = app
        .public_json(Method::GET, &path, &key, StatusCode::OK)
        .await;
    assert_eq!(view["state"], "deleted");
    assert_eq!(view["deletion_reason"], "ttl");
    assert_eq!(view["deleted_at"], rfc3339(t0() + Duration::hours(1)));
}

#[tokio::test]
async fn s6_llm_gateway_customer_deletion_request_deletes_at_once() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "a"})).await;
    let other = app.account().await;
    let created = expect_json(
        app.llm(llm_body(&account_id, "openai")).await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["artifact"]["id"].as_str().expect("id");
    let path = format!("/v2/llm-gateway/requests/{id}");
    assert_eq!(
        created["artifact"]["delete_after"],
        Value::Null,
        "indefinite by default"
    );

    for method in [Method::GET, Method::DELETE] {
        let response = app
            .public(method, &path, &other)
            .send()
            .await
            .expect("request");
        expect_error(response, StatusCode::NOT_FOUND).await;
    }
    let deleted = app
        .public_json(Method::DELETE, &path, &key, StatusCode::OK)
        .await;
    assert_eq!(deleted["state"], "deleted");
    assert_eq!(deleted["deletion_reason"], "customer_request");
    assert_eq!(deleted["deleted_at"], rfc3339(t0()));
    let again = app
        .public_json(Method::DELETE, &path, &key, StatusCode::OK)
        .await;
    assert_eq!(again, deleted, "idempotent");
    assert_eq!(content_files(&app), 0, "its content file is gone");
    let streaming_path = format!("/v2/streaming/sessions/{id}");
    let wrong_kind = app
        .public(Method::GET, &streaming_path, &key)
        .send()
        .await
        .expect("request");
    expect_error(wrong_kind, StatusCode::NOT_FOUND).await;
}

#[tokio::test]
async fn s6_llm_gateway_otherwise_follows_the_final_transcript_column() {
    let app = spawn_app().await;
    let (default_id, _) = app.account_with(json!({"name": "default"})).await;
    let (baa_id, _) = app.account_with(json!({"name": "baa", "baa": true})).await;
    let default = expect_json(
        app.llm(llm_body(&default_id, "openai")).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        default["artifact"]["delete_after"],
        Value::Null,
        "indefinite, like a final transcript"
    );
    assert_eq!(default["artifact"]["delete_by"], Value::Null);
    let baa = expect_json(
        app.llm(llm_body(&baa_id, "mistral")).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(
        baa["artifact"]["delete_after"],
        rfc3339(t0() + Duration::hours(72))
    );
    assert_eq!(
        baa["artifact"]["delete_by"],
        rfc3339(t0() + Duration::hours(73))
    );
}

#[tokio::test]
async fn s6_speech_understanding_requests_are_linked_to_their_transcript() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "su"})).await;
    let transcript = app.completed_transcript(&key).await;
    let mut body = llm_body(&account_id, "openai");
    body["transcript_id"] = json!(transcript);
    let created = expect_json(app.llm(body).await, StatusCode::CREATED).await;
    assert_eq!(created["artifact"]["kind"], "speech_understanding");
    let retention = app.retention(&key, &transcript).await;
    assert_eq!(
        artifact(&retention, "speech_understanding")["id"],
        created["artifact"]["id"]
    );

    // Another account's transcript is not found, and nothing is recorded.
    let (stranger, _) = app.account_with(json!({"name": "stranger"})).await;
    let mut body = llm_body(&stranger, "openai");
    body["transcript_id"] = json!(transcript);
    expect_error(app.llm(body).await, StatusCode::NOT_FOUND).await;
    assert!(app.usage(&stranger).await.is_empty());

    let response = app.delete_transcript(&key, &transcript).await;
    expect_json(response, StatusCode::OK).await;
    let retention = app.retention(&key, &transcript).await;
    let understanding = artifact(&retention, "speech_understanding");
    assert_eq!(understanding["state"], "deleted");
    assert_eq!(understanding["deletion_reason"], "customer_request");
    let mut late = llm_body(&account_id, "openai");
    late["transcript_id"] = json!(transcript);
    expect_error(app.llm(late).await, StatusCode::GONE).await;
}

#[tokio::test]
async fn llm_gateway_and_streaming_reports_with_bad_fields_are_refused_with_nothing_recorded() {
    let app = spawn_app().await;
    let (account_id, _) = app.account_with(json!({"name": "a"})).await;
    let mut cases = Vec::new();
    let mut missing_model = llm_body(&account_id, "openai");
    missing_model
        .as_object_mut()
        .expect("object")
        .remove("model");
    cases.push(("llm", missing_model, "model is required"));
    let mut reversed = llm_body(&account_id, "openai");
    reversed["started_at"] = json!(rfc3339(t0() + Duration::seconds(1)));
    cases.push(("llm", reversed, "ended_at must not be before started_at"));
    let mut unknown = llm_body(&account_id, "openai");
    unknown["temperature"] = json!(0.2);
    cases.push(("llm", unknown, "unknown field"));
    let mut future = session_body(&account_id, Duration::minutes(1));
    future["ended_at"] = json!(rfc3339(t0() + Duration::minutes(1)));
    cases.push(("stream", future, "in the future"));
    let mut bad_audio = session_body(&account_id, Duration::minutes(1));
    bad_audio["audio"] = json!("not base64!");
    cases.push(("stream", bad_audio, "base64"));
    let mut no_start = session_body(&account_id, Duration::minutes(1));
    no_start
        .as_object_mut()
        .expect("object")
        .remove("started_at");
    cases.push(("stream", no_start, "started_at is required"));
    let mut bad_time = session_body(&account_id, Duration::minutes(1));
    bad_time["ended_at"] = json!("yesterday");
    cases.push(("stream", bad_time, "RFC 3339"));
    for (surface, body, expected) in cases {
        let response = match surface {
            "llm" => app.llm(body).await,
            _ => app.stream_session(body).await,
        };
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(
            message.contains(expected),
            "{message:?} should say {expected:?}"
        );
    }
    let unknown_account = llm_body(&uuid::Uuid::now_v7().to_string(), "openai");
    expect_error(app.llm(unknown_account).await, StatusCode::NOT_FOUND).await;
    assert!(app.usage(&account_id).await.is_empty());
    assert_eq!(content_files(&app), 0);
}

// ---- Streaming --------------------------------------------------------------------------------

#[tokio::test]
async fn s6_streaming_has_zero_data_retention_when_the_account_opted_out_of_training() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "opted-out"})).await;
    app.set_retention(&key, json!({"model_training_opt_out": true}))
        .await;
    let body = expect_json(
        app.stream_session(session_body(&account_id, Duration::minutes(1)))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["stored"], false);
    assert_eq!(body["artifact"], Value::Null);
    assert_eq!(
        content_files(&app),
        0,
        "neither audio nor transcript persisted"
    );
    let usage = app.usage(&account_id).await;
    assert_eq!(usage.len(), 1, "the session's usage metadata is kept");
    assert_eq!(usage[0]["content_stored"], false);
    assert_eq!(usage[0]["ended_at"], rfc3339(t0() - Duration::minutes(1)));
}

#[tokio::test]
async fn s6_streaming_otherwise_follows_the_final_transcript_column_from_the_sessions_end() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "ttl"})).await;
    app.set_retention(&key, json!({"transcript_ttl_seconds": 3600}))
        .await;
    let body = expect_json(
        app.stream_session(session_body(&account_id, Duration::minutes(20)))
            .await,
        StatusCode::CREATED,
    )
    .await;
    let session = &body["artifact"];
    assert_eq!(session["kind"], "streaming_session");
    let ended = t0() - Duration::minutes(20);
    assert_eq!(session["delete_after"], rfc3339(ended + Duration::hours(1)));
    assert_eq!(session["delete_by"], rfc3339(ended + Duration::hours(2)));
    let path = format!(
        "/v2/streaming/sessions/{}",
        session["id"].as_str().expect("id")
    );

    app.advance(Duration::minutes(39));
    app.sweep().await;
    assert_eq!(
        app.public_json(Method::GET, &path, &key, StatusCode::OK)
            .await["state"],
        "live"
    );
    app.advance(Duration::minutes(1));
    app.sweep().await;
    let view = app
        .public_json(Method::GET, &path, &key, StatusCode::OK)
        .await;
    assert_eq!(view["state"], "deleted");
    assert_eq!(view["deletion_reason"], "ttl");
    assert_eq!(content_files(&app), 0);

    // A default account keeps sessions indefinitely; its customer can still delete one.
    let (default_id, default_key) = app.account_with(json!({"name": "default"})).await;
    let body = expect_json(
        app.stream_session(session_body(&default_id, Duration::minutes(1)))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(body["artifact"]["delete_after"], Value::Null);
    let path = format!(
        "/v2/streaming/sessions/{}",
        body["artifact"]["id"].as_str().expect("id")
    );
    let deleted = app
        .public_json(Method::DELETE, &path, &default_key, StatusCode::OK)
        .await;
    assert_eq!(deleted["deletion_reason"], "customer_request");
}

// ---- Model training eligibility -------------------------------------------------------------

#[tokio::test]
async fn s6_training_eligibility_is_fixed_at_creation_and_shown_in_the_retention_view() {
    let app = spawn_app().await;
    let key = app.account().await;
    let (_, baa) = app.account_with(json!({"name": "baa", "baa": true})).await;
    let (_, eu) = app
        .account_with(json!({"name": "eu", "region": "eu"}))
        .await;

    let before = app.completed_transcript(&key).await;
    app.set_retention(&key, json!({"model_training_opt_out": true}))
        .await;
    let after = app.completed_transcript(&key).await;
    // An audio URL is never training data (it may carry credentials): left out here.
    let eligibility = |retention: &Value| -> Vec<Value> {
        retention["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter(|a| a["kind"] != "url_audio_reference")
            .map(|a| a["training_eligible"].clone())
            .collect()
    };
    let before_view = app.retention(&key, &before).await;
    assert!(!eligibility(&before_view).is_empty());
    assert!(
        eligibility(&before_view).iter().all(|e| e == true),
        "opting out applies going forward only: {before_view}"
    );
    assert!(eligibility(&app.retention(&key, &after).await)
        .iter()
        .all(|e| e == false));
    for excluded in [&baa, &eu] {
        let id = app.completed_transcript(excluded).await;
        let view = app.retention(excluded, &id).await;
        assert!(eligibility(&view).iter().all(|e| e == false), "{view}");
    }
    let listed = app.training_ids().await;
    let expected: Vec<String> = before_view["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .filter(|a| a["kind"] != "url_audio_reference")
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect();
    let mut sorted = expected.clone();
    sorted.sort();
    assert_eq!(
        listed, sorted,
        "only the eligible account's earlier artifacts, in id order"
    );
}

#[tokio::test]
async fn s6_training_export_pages_live_eligible_artifacts_and_a_deleted_one_disappears_at_once() {
    let app = spawn_app().await;
    let key = app.account().await;
    let mut uploads = Vec::new();
    for _ in 0..5 {
        let url = app.upload(&key, b"TRAINING-AUDIO").await;
        uploads.push(url.rsplit('/').next().expect("id").to_owned());
    }
    let transcript = app.completed_transcript(&key).await;
    let listed = app.training_ids().await;
    let mut unique = listed.clone();
    unique.dedup();
    assert_eq!(unique, listed, "no duplicates across pages");
    assert!(
        uploads.iter().all(|u| listed.contains(u)),
        "every upload listed"
    );
    let first = app.training_page("?limit=1").await;
    let item = &first["artifacts"][0];
    assert_eq!(item["kind"], "uploaded_audio");
    assert_eq!(item["size_bytes"], 14);
    let content = app
        .internal(Method::GET, item["content_url"].as_str().expect("url"))
        .send()
        .await
        .expect("request");
    assert_eq!(content.status(), StatusCode::OK);
    assert_eq!(
        &content.bytes().await.expect("bytes")[..],
        b"TRAINING-AUDIO"
    );

    let transcript_artifacts: Vec<String> = app.retention(&key, &transcript).await["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["id"].as_str().expect("id").to_owned())
        .collect();
    let response = app.delete_transcript(&key, &transcript).await;
    expect_json(response, StatusCode::OK).await;
    let listed = app.training_ids().await;
    assert!(
        transcript_artifacts.iter().all(|a| !listed.contains(a)),
        "deleted artifacts leave the export at once"
    );
    let gone = app
        .internal(
            Method::GET,
            &format!(
                "/internal/v1/training/eligible/{}/content",
                transcript_artifacts[0]
            ),
        )
        .send()
        .await
        .expect("request");
    expect_error(gone, StatusCode::GONE).await;

    // From delete_after on (a default account's upload window begins at 24 h) an upload
    // is no longer listed, even before a sweep.
    app.advance(Duration::hours(24));
    assert!(app
        .training_ids()
        .await
        .iter()
        .all(|id| !uploads.contains(id)));

    let (_, opted) = app.account_with(json!({"name": "opted"})).await;
    app.set_retention(&opted, json!({"model_training_opt_out": true}))
        .await;
    let never = app.upload(&opted, b"X").await;
    let never = never.rsplit('/').next().expect("id");
    let response = app
        .internal(
            Method::GET,
            &format!("/internal/v1/training/eligible/{never}/content"),
        )
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::NOT_FOUND).await;
    let bad = app
        .internal(Method::GET, "/internal/v1/training/eligible?after=nope")
        .send()
        .await
        .expect("request");
    expect_error(bad, StatusCode::BAD_REQUEST).await;
}
