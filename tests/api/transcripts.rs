//! `/v2/transcript`: create, get, list, delete, and serving expired content as deleted.

use crate::helpers::*;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::HashSet;

#[tokio::test]
async fn create_returns_a_queued_transcript_with_a_v7_id_echoing_fields_but_never_the_webhook_secret(
) {
    let app = spawn_app().await;
    let key = app.account().await;
    let body = json!({
        "audio_url": "https://example.com/a.mp3",
        "speech_model": "universal",
        "language_code": "en_us",
        "punctuate": true,
        "format_text": false,
        "keyterms_prompt": ["Lethe", "retention"],
        "prompt": "a call about retention",
        "custom_spelling": [{"from": ["lethy"], "to": "Lethe"}],
        "word_boost": ["ttl"],
        "boost_param": "high",
        "webhook_url": "https://hooks.example.com/done",
        "webhook_auth_header_name": "X-Secret",
        "webhook_auth_header_value": "MARKER-WEBHOOK-SECRET",
        "speaker_labels": true,
    });
    let t = app.create_transcript(&key, body.clone()).await;

    assert_eq!(t["status"], "queued");
    let id = uuid::Uuid::parse_str(t["id"].as_str().expect("id")).expect("uuid");
    assert_eq!(id.get_version_num(), 7);
    for field in [
        "audio_url",
        "speech_model",
        "language_code",
        "punctuate",
        "format_text",
        "keyterms_prompt",
        "prompt",
        "custom_spelling",
        "word_boost",
        "boost_param",
        "webhook_url",
        "webhook_auth_header_name",
        "speaker_labels",
    ] {
        assert_eq!(t[field], body[field], "{field} is echoed");
    }
    assert_eq!(t["webhook_auth"], true);
    assert!(
        t.get("webhook_auth_header_value").is_none(),
        "the secret is never echoed: {t}"
    );
    assert!(!t.to_string().contains("MARKER-WEBHOOK-SECRET"));
    assert_eq!(
        (t["language_model"].as_str(), t["acoustic_model"].as_str()),
        (Some("assemblyai_default"), Some("assemblyai_default"))
    );
    assert_eq!(
        app.get_transcript(&key, t["id"].as_str().expect("id"))
            .await,
        t,
        "GET returns the same object"
    );
}

#[tokio::test]
async fn bad_create_requests_are_400_with_a_clear_error_and_store_nothing() {
    let app = spawn_app().await;
    let key = app.account().await;
    let cases: Vec<(&str, &str)> = vec![
        ("{not json", "not valid JSON"),
        ("", "empty"),
        ("[1,2]", "JSON object"),
        (r#"{"speech_model": "best"}"#, "audio_url is required"),
        (r#"{"audio_url": 42}"#, "audio_url must be a string"),
        (r#"{"audio_url": "ftp://example.com/a.mp3"}"#, "http(s) URL"),
        (r#"{"audio_url": "not a url"}"#, "http(s) URL"),
        (
            r#"{"audio_url": "https://example.com/a.mp3", "punctuate": "yes"}"#,
            "punctuate must be true or false",
        ),
        (
            r#"{"audio_url": "https://example.com/a.mp3", "keyterms_prompt": "one"}"#,
            "keyterms_prompt must be a list",
        ),
        (
            r#"{"audio_url": "https://example.com/a.mp3", "boost_param": "max"}"#,
            "boost_param must be one of",
        ),
        (
            r#"{"audio_url": "https://example.com/a.mp3", "speakers_expected": -1}"#,
            "non-negative integer",
        ),
    ];
    for (body, expected) in cases {
        let response = app
            .public(Method::POST, "/v2/transcript", &key)
            .body(body)
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    assert_eq!(
        app.list_transcripts(&key, "").await["transcripts"],
        json!([]),
        "nothing stored"
    );
}

#[tokio::test]
async fn unknown_or_malformed_ids_are_404_with_assemblyais_message() {
    let app = spawn_app().await;
    let key = app.account().await;
    for id in ["01a20b2b-1242-7479-b5d2-7da23aa505fe", "nonsense"] {
        for (method, suffix) in [
            (Method::GET, ""),
            (Method::DELETE, ""),
            (Method::GET, "/retention"),
        ] {
            let response = app
                .public(
                    method.clone(),
                    &format!("/v2/transcript/{id}{suffix}"),
                    &key,
                )
                .send()
                .await
                .expect("request");
            let message = expect_error(response, StatusCode::NOT_FOUND).await;
            assert_eq!(
                message, "Transcript lookup error, transcript id not found",
                "{method} {id}{suffix}"
            );
        }
    }
}

#[tokio::test]
async fn a_completed_transcript_shows_the_pipelines_result() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.completed_transcript(&key).await;
    let t = app.get_transcript(&key, &id).await;
    assert_eq!(t["status"], "completed");
    assert_eq!(t["text"], "MARKER-TEXT hello world");
    assert_eq!(t["words"][0]["text"], "hello");
    assert_eq!(t["confidence"], 0.97);
    assert_eq!(t["audio_duration"], 12);
    assert_eq!(t["audio_url"], "https://example.com/call.mp3");
    assert_eq!(t["prompt"], "MARKER-PROMPT");
}

/// The redacted Transcript of api.md, checked field by field.
fn assert_redacted(t: &Value, text: &str, sentinel: &str, id: &str) {
    assert_eq!(t["id"], id);
    assert_eq!(t["status"], "completed", "status kept");
    assert_eq!(t["audio_duration"], 12, "audio_duration kept");
    assert_eq!(t["text"], text);
    assert_eq!(t["audio_url"], sentinel);
    assert_eq!(t["webhook_url"], sentinel);
    for field in [
        "words",
        "utterances",
        "confidence",
        "prompt",
        "keyterms_prompt",
        "custom_spelling",
        "word_boost",
        "boost_param",
        "speech_model",
        "speech_models",
        "language_code",
        "punctuate",
        "format_text",
        "speaker_labels",
        "webhook_auth_header_name",
        "speech_understanding",
    ] {
        assert_eq!(t[field], Value::Null, "{field} is null once deleted");
    }
    for flag in [
        "webhook_auth",
        "redact_pii",
        "auto_highlights",
        "summarization",
    ] {
        assert_eq!(t[flag], false, "{flag} is false once deleted");
    }
    assert!(!t.to_string().contains("MARKER"), "no content left: {t}");
}

#[tokio::test]
async fn delete_answers_the_redacted_transcript_field_by_field_and_get_returns_the_same() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.completed_transcript(&key).await;
    let response = app.delete_transcript(&key, &id).await;
    let deleted = expect_json(response, StatusCode::OK).await;
    assert_redacted(&deleted, "Deleted by user.", "http://deleted_by_user", &id);
    assert_eq!(app.get_transcript(&key, &id).await, deleted);
}

#[tokio::test]
async fn delete_is_idempotent() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.completed_transcript(&key).await;
    let first = app.delete_transcript(&key, &id).await;
    let first = expect_json(first, StatusCode::OK).await;
    app.advance(Duration::minutes(5));
    let second = app.delete_transcript(&key, &id).await;
    assert_eq!(expect_json(second, StatusCode::OK).await, first);
}

#[tokio::test]
async fn delete_while_queued_or_processing_is_400_and_changes_nothing() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    let before = app.get_transcript(&key, &id).await;
    let response = app.delete_transcript(&key, &id).await;
    let message = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("still being processed"), "{message}");
    app.internal(
        Method::POST,
        &format!("/internal/v1/transcripts/{id}/processing"),
    )
    .send()
    .await
    .expect("request");
    let response = app.delete_transcript(&key, &id).await;
    expect_error(response, StatusCode::BAD_REQUEST).await;
    let after = app.get_transcript(&key, &id).await;
    assert_eq!(after["prompt"], before["prompt"], "content untouched");
    assert!(app.retention(&key, &id).await["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .all(|a| a["state"] == "live"));
}

#[tokio::test]
async fn s4_content_past_delete_after_is_served_as_deleted_before_any_sweep() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let id = app.completed_transcript(&key).await;
    app.advance(Duration::hours(1));

    let t = app.get_transcript(&key, &id).await;
    assert_redacted(
        &t,
        "Deleted by retention policy.",
        "http://deleted_by_retention_policy",
        &id,
    );
    let list = app.list_transcripts(&key, "").await;
    assert_eq!(
        list["transcripts"][0]["audio_url"],
        "http://deleted_by_retention_policy"
    );
    // Not swept yet: the retention view still shows the artifacts live.
    let view = app.retention(&key, &id).await;
    assert_eq!(artifact(&view, "final_transcript")["state"], "live");
}

#[tokio::test]
async fn the_list_pages_forward_and_back_over_more_than_two_pages_without_duplicates_or_gaps() {
    let app = spawn_app().await;
    let key = app.account().await;
    let mut created = Vec::new();
    for _ in 0..25 {
        created.push(app.url_transcript(&key).await);
        app.advance(Duration::seconds(1));
    }
    let newest_first: Vec<String> = created.iter().rev().cloned().collect();

    // Backwards in time through prev_url (older pages).
    let mut seen = Vec::new();
    let mut url = format!("{}/v2/transcript?limit=10", app.base);
    let mut pages = Vec::new();
    loop {
        let response = app
            .public(Method::GET, &url, &key)
            .send()
            .await
            .expect("request");
        let page = expect_json(response, StatusCode::OK).await;
        assert_eq!(page["page_details"]["current_url"], url);
        assert_eq!(page["page_details"]["limit"], 10);
        let ids: Vec<String> = page["transcripts"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect();
        assert_eq!(page["page_details"]["result_count"], ids.len());
        for t in page["transcripts"].as_array().expect("list") {
            assert_eq!(
                t["resource_url"],
                format!(
                    "{}/v2/transcript/{}",
                    app.base,
                    t["id"].as_str().expect("id")
                )
            );
        }
        seen.extend(ids);
        pages.push(page.clone());
        match page["page_details"]["prev_url"].as_str() {
            Some(prev) => url = prev.to_owned(),
            None => break,
        }
    }
    assert_eq!(pages.len(), 3);
    assert_eq!(seen, newest_first, "every transcript once, newest first");
    assert_eq!(
        pages[0]["page_details"]["next_url"],
        Value::Null,
        "nothing newer than the first page"
    );

    // Forwards again through next_url (newer pages) from the oldest page.
    let mut seen_forward: Vec<String> = Vec::new();
    let mut page = pages[2].clone();
    loop {
        let ids: Vec<String> = page["transcripts"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| t["id"].as_str().expect("id").to_owned())
            .collect();
        seen_forward.splice(0..0, ids);
        match page["page_details"]["next_url"].as_str() {
            Some(next) => {
                let response = app
                    .public(Method::GET, next, &key)
                    .send()
                    .await
                    .expect("request");
                page = expect_json(response, StatusCode::OK).await;
            }
            None => break,
        }
    }
    assert_eq!(seen_forward, newest_first);
    let unique: HashSet<&String> = seen_forward.iter().collect();
    assert_eq!(unique.len(), 25);
}

#[tokio::test]
async fn every_list_item_shows_its_own_audio_url_or_why_it_is_gone() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let url_transcript = |n: &'static str| {
        let (app, key) = (&app, key.clone());
        async move {
            let body = json!({"audio_url": format!("https://example.com/{n}.mp3")});
            app.create_transcript(&key, body).await["id"]
                .as_str()
                .expect("id")
                .to_owned()
        }
    };
    // Past its TTL before the others exist: served as deleted, swept or not.
    let expired = url_transcript("expired").await;
    app.complete(&expired).await;
    app.advance(Duration::hours(2));
    let queued = url_transcript("queued").await;
    let done = url_transcript("done").await;
    app.complete(&done).await;
    let upload_url = app.upload(&key, b"MARKER-AUDIO").await;
    let from_upload = app
        .create_transcript(&key, json!({"audio_url": upload_url}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let deleted = url_transcript("deleted").await;
    app.complete(&deleted).await;
    assert_eq!(
        app.delete_transcript(&key, &deleted).await.status(),
        StatusCode::OK
    );
    // Another account's transcripts never appear, nor their URLs.
    let stranger = app.account().await;
    app.create_transcript(
        &stranger,
        json!({"audio_url": "https://example.com/stranger.mp3"}),
    )
    .await;

    let expected = [
        (deleted.as_str(), "http://deleted_by_user".to_owned()),
        (from_upload.as_str(), upload_url.clone()),
        (done.as_str(), "https://example.com/done.mp3".to_owned()),
        (queued.as_str(), "https://example.com/queued.mp3".to_owned()),
        (
            expired.as_str(),
            "http://deleted_by_retention_policy".to_owned(),
        ),
    ];
    for swept in [false, true] {
        if swept {
            // The expired transcript's content is now deleted and its data key destroyed.
            app.sweep().await;
        }
        let page = app.list_transcripts(&key, "limit=10").await;
        let items: Vec<(String, String)> = page["transcripts"]
            .as_array()
            .expect("list")
            .iter()
            .map(|t| {
                (
                    t["id"].as_str().expect("id").to_owned(),
                    t["audio_url"].as_str().expect("audio_url").to_owned(),
                )
            })
            .collect();
        let expected: Vec<(String, String)> = expected
            .iter()
            .map(|(id, url)| ((*id).to_owned(), url.clone()))
            .collect();
        assert_eq!(items, expected, "swept: {swept}");
    }
}

#[tokio::test]
async fn the_first_page_links_an_older_page_exactly_when_there_is_one() {
    let app = spawn_app().await;
    let key = app.account().await;
    let page = |query: &'static str| {
        let (app, key) = (&app, key.clone());
        async move { app.list_transcripts(&key, query).await }
    };
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.url_transcript(&key).await);
        app.advance(Duration::seconds(1));
    }
    // Exactly `limit` transcripts: one page, no link either way.
    let full = page("limit=3").await;
    assert_eq!(full["transcripts"].as_array().expect("list").len(), 3);
    assert_eq!(full["page_details"]["prev_url"], Value::Null);
    assert_eq!(full["page_details"]["next_url"], Value::Null);
    let widest = page("limit=200").await;
    assert_eq!(widest["transcripts"].as_array().expect("list").len(), 3);
    assert_eq!(widest["page_details"]["prev_url"], Value::Null);

    // One more than `limit`: the first page links the older one, which holds the rest
    // and links back.
    ids.push(app.url_transcript(&key).await);
    let first = page("limit=3").await;
    let newest: Vec<&str> = first["transcripts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(
        newest,
        vec![ids[3].as_str(), ids[2].as_str(), ids[1].as_str()]
    );
    assert_eq!(first["page_details"]["next_url"], Value::Null);
    let prev = first["page_details"]["prev_url"]
        .as_str()
        .expect("an older page");
    let response = app
        .public(Method::GET, prev, &key)
        .send()
        .await
        .expect("request");
    let older = expect_json(response, StatusCode::OK).await;
    let rest: Vec<&str> = older["transcripts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["id"].as_str().expect("id"))
        .collect();
    assert_eq!(rest, vec![ids[0].as_str()]);
    assert_eq!(older["page_details"]["prev_url"], Value::Null);
    assert!(older["page_details"]["next_url"].is_string());
}

#[tokio::test]
async fn the_list_filters_by_status_and_creation_day_and_keeps_deleted_transcripts() {
    let app = spawn_app().await;
    let key = app.account().await;
    let done = app.completed_transcript(&key).await;
    app.advance(Duration::days(1));
    let queued = app.url_transcript(&key).await;
    app.delete_transcript(&key, &done).await;

    let get = |query: &'static str| {
        let app = &app;
        let key = key.clone();
        async move {
            app.list_transcripts(&key, query).await["transcripts"]
                .as_array()
                .expect("list")
                .clone()
        }
    };
    let completed = get("status=completed").await;
    assert_eq!(completed.len(), 1);
    assert_eq!(completed[0]["id"], done.as_str());
    assert_eq!(
        completed[0]["audio_url"], "http://deleted_by_user",
        "deleted transcripts stay listed"
    );
    let queued_list = get("status=queued").await;
    assert_eq!(queued_list[0]["id"], queued.as_str());
    assert_eq!(queued_list[0]["completed"], Value::Null);
    let on_day = get("created_on=2026-03-11").await;
    assert_eq!(on_day.len(), 1);
    assert_eq!(on_day[0]["id"], done.as_str());
    let created = on_day[0]["created"].as_str().expect("created");
    assert_eq!(
        created, "2026-03-11T09:00:00.000000",
        "naive ISO-8601 with microseconds"
    );
}

#[tokio::test]
async fn bad_list_parameters_are_400_with_a_clear_error() {
    let app = spawn_app().await;
    let key = app.account().await;
    let older = app.url_transcript(&key).await;
    let newer = app.url_transcript(&key).await;
    let bounding_nothing = format!("before_id={older}&after_id={newer}");
    for query in [
        "limit=0",
        "limit=201",
        "limit=ten",
        "status=done",
        "created_on=11-03-2026",
        "before_id=abc",
        "after_id=abc",
        bounding_nothing.as_str(),
    ] {
        let response = app
            .public(Method::GET, &format!("/v2/transcript?{query}"), &key)
            .send()
            .await
            .expect("request");
        expect_error(response, StatusCode::BAD_REQUEST).await;
    }
}

#[tokio::test]
async fn the_retention_view_shows_each_artifact_with_its_schedule_and_tombstone() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let upload_url = app.upload(&key, b"MARKER-AUDIO").await;
    let t = app
        .create_transcript(
            &key,
            json!({"audio_url": upload_url, "prompt": "MARKER-PROMPT"}),
        )
        .await;
    let id = t["id"].as_str().expect("id").to_owned();
    app.complete(&id).await;
    let view = app.retention(&key, &id).await;
    assert_eq!(view["transcript_id"], id.as_str());
    assert_eq!(view["policy"]["mode"], "ttl");
    assert_eq!(view["policy"]["transcript_ttl_seconds"], 3600);
    let kinds: Vec<&str> = view["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    assert_eq!(
        kinds,
        vec!["uploaded_audio", "text_input", "final_transcript"]
    );
    let upload = artifact(&view, "uploaded_audio");
    assert_eq!(upload["delete_after"], rfc3339(t0() + Duration::hours(72)));
    assert_eq!(upload["delete_by"], rfc3339(t0() + Duration::hours(73)));
    for kind in ["text_input", "final_transcript"] {
        assert_eq!(
            artifact(&view, kind)["delete_after"],
            rfc3339(t0() + Duration::hours(1)),
            "{kind}"
        );
        assert_eq!(artifact(&view, kind)["deleted_at"], Value::Null);
    }

    app.advance(Duration::hours(1));
    app.sweep().await;
    let view = app.retention(&key, &id).await;
    let final_transcript = artifact(&view, "final_transcript");
    assert_eq!(
        (
            final_transcript["state"].as_str(),
            final_transcript["deletion_reason"].as_str()
        ),
        (Some("deleted"), Some("ttl"))
    );
    assert_eq!(
        final_transcript["deleted_at"],
        rfc3339(t0() + Duration::hours(1))
    );
    assert_eq!(artifact(&view, "text_input")["deletion_reason"], "linked");
    assert_eq!(
        artifact(&view, "uploaded_audio")["state"],
        "live",
        "the upload keeps its own schedule"
    );
}
