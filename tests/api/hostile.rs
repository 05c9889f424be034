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
    assert_eq!(
        app.list_transcripts(&key, "").await["transcripts"],
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

/// Reads until the server closes the connection (or `within` passes): what it sent.
async fn read_until_closed(
    stream: &mut tokio::net::TcpStream,
    within: std::time::Duration,
) -> Option<String> {
    use tokio::io::AsyncReadExt;
    let mut seen = Vec::new();
    let closed = tokio::time::timeout(within, async {
        let mut buf = [0u8; 1024];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    closed
        .ok()
        .map(|()| String::from_utf8_lossy(&seen).into_owned())
}

/// A connection that sends part of a request head (or nothing) stayed open, without
/// authentication, for minutes.
#[tokio::test]
async fn a_connection_that_never_finishes_its_request_head_is_closed() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|c| c.header_read_timeout = chrono::Duration::milliseconds(500)).await;
    let address = app.base.trim_start_matches("http://").to_owned();

    let mut partial = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: lethe\r\nX-Slow: ")
        .await
        .expect("write");
    let mut silent = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");

    for (what, stream) in [("partial head", &mut partial), ("silent", &mut silent)] {
        let seen = read_until_closed(stream, std::time::Duration::from_secs(5)).await;
        assert!(
            seen.is_some(),
            "{what}: the connection was still open after 5 s (timeout 0.5 s)"
        );
    }
    // The server itself is fine.
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("up");
    assert_eq!(health.status(), StatusCode::OK);
}

/// A stalled upload body never timed out.
#[tokio::test]
async fn a_stalled_upload_is_stopped_with_a_408_and_nothing_is_stored() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app_with(|c| c.body_idle_timeout = chrono::Duration::milliseconds(500)).await;
    let key = app.account().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let head = format!(
        "POST /v2/upload HTTP/1.1\r\nHost: lethe\r\nAuthorization: {key}\r\nContent-Length: 100000\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.expect("head");
    stream
        .write_all(&[7u8; 1000])
        .await
        .expect("some of the body");
    // ... and then nothing.
    let seen = read_until_closed(&mut stream, std::time::Duration::from_secs(5))
        .await
        .expect("the server answers and closes within 5 s");
    assert!(seen.starts_with("HTTP/1.1 408"), "{seen}");
    assert!(seen.contains("stopped arriving"), "{seen}");
    let files: Vec<_> = walk(&app.dir.path().join("content"));
    assert!(files.is_empty(), "nothing stored: {files:?}");
}

/// A body that is not valid chunked encoding was a 500, logged as an internal error.
#[tokio::test]
async fn a_malformed_chunked_upload_is_a_400_not_a_500() {
    use tokio::io::AsyncWriteExt;
    let app = spawn_app().await;
    let key = app.account().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&address)
        .await
        .expect("connect");
    let request = format!(
        "POST /v2/upload HTTP/1.1\r\nHost: lethe\r\nAuthorization: {key}\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nZZZ-not-hex\r\n"
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let seen = read_until_closed(&mut stream, std::time::Duration::from_secs(5))
        .await
        .expect("answered");
    assert!(
        seen.starts_with("HTTP/1.1 400") || seen.is_empty(),
        "a malformed body is the client's error: {seen}"
    );
    assert!(!seen.starts_with("HTTP/1.1 500"), "{seen}");
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut dirs = vec![dir.to_owned()];
    while let Some(d) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                dirs.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files
}

/// The training export served a text input's webhook auth value and an audio URL with
/// `user:pass@` and `?sig=`: secrets and signed URLs are never training data, and what
/// is exported has its PII replaced by entity tags (word timings kept; audio with the
/// ranges of the redacted words to mute).
#[tokio::test]
async fn s6_the_training_export_never_serves_secrets_and_redacts_pii() {
    let app = spawn_app().await;
    let key = app.account().await;
    let upload = app.upload(&key, b"TRAINING-AUDIO").await;
    let from_url = app
        .create_transcript(
            &key,
            json!({"audio_url": "https://user:SECRET-PASS@media.example.com/a.wav?sig=SECRET-SIG",
                   "prompt": "the caller's number is 555-123-4567",
                   "webhook_url": "https://hooks.example.com/done?token=SECRET-TOKEN",
                   "webhook_auth_header_name": "Authorization",
                   "webhook_auth_header_value": "Bearer SECRET-WEBHOOK"}),
        )
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let from_upload = app
        .create_transcript(&key, json!({"audio_url": upload}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let result = json!({
        "text": "write to jane.doe@example.com today",
        "words": [
            {"text": "write", "start": 0, "end": 300, "confidence": 0.9},
            {"text": "to", "start": 300, "end": 450, "confidence": 0.9},
            {"text": "jane.doe@example.com", "start": 450, "end": 1800, "confidence": 0.9},
            {"text": "today", "start": 1800, "end": 2100, "confidence": 0.9}
        ],
        "audio_duration": 3
    });
    for id in [&from_url, &from_upload] {
        let response = app
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{id}/complete"),
            )
            .json(&result)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await;
    }

    let page = app
        .internal(Method::GET, "/internal/v1/training/eligible?limit=100")
        .send()
        .await
        .expect("request");
    let page = expect_json(page, StatusCode::OK).await;
    let artifacts = page["artifacts"].as_array().expect("artifacts").clone();
    assert!(
        artifacts.iter().all(|a| a["kind"] != "url_audio_reference"),
        "an audio URL is never training data: {page}"
    );
    let mut exported = String::new();
    for a in &artifacts {
        let body = app
            .internal(Method::GET, a["content_url"].as_str().expect("url"))
            .send()
            .await
            .expect("request");
        assert_eq!(body.status(), StatusCode::OK);
        exported.push_str(&String::from_utf8_lossy(&body.bytes().await.expect("body")));
    }
    for secret in [
        "SECRET-PASS",
        "SECRET-SIG",
        "SECRET-TOKEN",
        "SECRET-WEBHOOK",
        "555-123-4567",
        "jane.doe@example.com",
    ] {
        assert!(!exported.contains(secret), "{secret} was exported");
    }
    assert!(exported.contains("[PHONE_NUMBER]"), "{exported}");
    assert!(exported.contains("[EMAIL_ADDRESS]"), "{exported}");
    assert!(
        exported.contains(r#""start":450"#) && exported.contains(r#""end":1800"#),
        "word timings are kept"
    );

    let audio = artifacts
        .iter()
        .find(|a| a["kind"] == "uploaded_audio")
        .expect("the upload is exported");
    let ranges = app
        .internal(Method::GET, audio["redactions_url"].as_str().expect("url"))
        .send()
        .await
        .expect("request");
    let ranges = expect_json(ranges, StatusCode::OK).await;
    assert_eq!(ranges["ranges_ms"], json!([[450, 1800]]), "{ranges}");
}

/// `lethe.db`, content files and the data dir were world-readable (0644/0755).
#[cfg(unix)]
#[tokio::test]
async fn lethe_creates_its_files_readable_by_the_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    if lethe::testing::aws_profile() {
        return; // Content and index live in S3 and DynamoDB: nothing to check on disk.
    }
    let app = spawn_app().await;
    let key = app.account().await;
    app.upload(&key, b"MARKER-AUDIO").await;
    app.completed_transcript(&key).await;
    let mut checked = 0;
    let mut dirs = vec![app.dir.path().to_owned()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).expect("read dir").flatten() {
            let path = entry.path();
            let mode = entry.metadata().expect("metadata").permissions().mode() & 0o777;
            if path.is_dir() {
                assert_eq!(mode, 0o700, "{}", path.display());
                dirs.push(path);
            } else {
                assert_eq!(mode, 0o600, "{}", path.display());
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 6,
        "the database, its WAL, keys and content were checked"
    );
}

#[test]
fn token_comparison_hashes_both_sides_so_it_does_not_depend_on_length() {
    let expected = secrecy::SecretString::from("a-long-admin-token-0123456789");
    assert!(lethe::http::token_matches(
        &expected,
        "a-long-admin-token-0123456789"
    ));
    for wrong in [
        "",
        "a",
        "a-long-admin-token-012345678",
        "a-long-admin-token-01234567890",
    ] {
        assert!(!lethe::http::token_matches(&expected, wrong), "{wrong:?}");
    }
}

/// `/error` (and the stuck → error path) wrote a `final_transcript` content artifact for
/// zero-data-retention accounts.
#[tokio::test]
async fn s6_an_errored_transcript_of_a_zdr_account_gets_no_result_artifact() {
    let app = spawn_app().await;
    let (account, key) = app.account_with(json!({"name": "soon-zdr"})).await;
    let id = app
        .create_transcript(&key, json!({"audio_url": "https://x/a.wav"}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let stuck = app
        .create_transcript(&key, json!({"audio_url": "https://x/b.wav"}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = app
        .admin(Method::PATCH, &format!("/admin/v1/accounts/{account}"))
        .json(&json!({"zero_data_retention": true}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    let response = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/error"),
        )
        .json(&json!({"error": "decoder failed"}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    app.advance(chrono::Duration::hours(25));
    app.sweep().await;
    for t in [&id, &stuck] {
        let view = app.retention(&key, t).await;
        let kinds: Vec<&str> = view["artifacts"]
            .as_array()
            .expect("artifacts")
            .iter()
            .filter_map(|a| a["kind"].as_str())
            .collect();
        assert!(!kinds.contains(&"final_transcript"), "{t}: {view}");
        assert_eq!(app.get_transcript(&key, t).await["status"], "error");
    }
}

/// A streaming session that ended past its deadline was written to disk anyway.
#[tokio::test]
async fn s6_a_streaming_session_reported_past_its_deadline_is_not_written() {
    let app = spawn_app().await;
    let (account, key) = app.account_with(json!({"name": "ttl"})).await;
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .json(&json!({"transcript_ttl_seconds": 3600}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    let ended = t0() - chrono::Duration::hours(3);
    let response = app
        .internal(Method::POST, "/internal/v1/streaming/sessions")
        .json(
            &json!({"account_id": account, "model": "universal-streaming",
                       "started_at": rfc3339(ended - chrono::Duration::minutes(5)),
                       "ended_at": rfc3339(ended),
                       "transcript": {"text": "LATE-SESSION-TEXT"}}),
        )
        .send()
        .await
        .expect("request");
    let body = expect_json(response, StatusCode::CREATED).await;
    assert_eq!(body["stored"], false, "{body}");
}

#[tokio::test]
async fn a_query_parameter_given_twice_is_refused_so_a_dry_run_cannot_apply_the_change() {
    let app = spawn_app().await;
    let key = app.account().await;
    let response = app
        .public(
            reqwest::Method::PUT,
            "/v2/account/retention?dry_run=true&dry_run=false",
            &key,
        )
        .json(&serde_json::json!({"transcript_ttl_seconds": 3600}))
        .send()
        .await
        .expect("request");
    let error = expect_error(response, reqwest::StatusCode::BAD_REQUEST).await;
    assert!(error.contains("dry_run"), "{error}");
    let response = app
        .public(reqwest::Method::GET, "/v2/account/retention", &key)
        .send()
        .await
        .expect("request");
    let settings = expect_json(response, reqwest::StatusCode::OK).await;
    assert_eq!(settings["policy_version"], 1, "nothing changed");
    assert_eq!(settings["transcript_ttl_seconds"], serde_json::Value::Null);
}

/// A JSON route waited for a body its Content-Length said was 100 GB, until the request
/// timed out (408 after a minute), instead of refusing it at once.
#[tokio::test]
async fn a_json_body_declared_over_the_limit_is_refused_at_once_with_413() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app().await;
    let key = app.account().await;
    let address = app.base.trim_start_matches("http://").to_owned();
    for (path, auth) in [
        ("/v2/transcript", key.clone()),
        (
            "/internal/v1/llm-gateway/requests",
            format!("Bearer {INTERNAL}"),
        ),
    ] {
        let mut stream = tokio::net::TcpStream::connect(&address)
            .await
            .expect("connect");
        let head = format!(
            "POST {path} HTTP/1.1\r\nHost: lethe\r\nAuthorization: {auth}\r\nContent-Type: application/json\r\nContent-Length: 99999999999\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.expect("head");
        let mut answer = [0u8; 512];
        let read =
            tokio::time::timeout(std::time::Duration::from_secs(5), stream.read(&mut answer))
                .await
                .unwrap_or_else(|_| panic!("{path}: no answer within 5 s"))
                .expect("read");
        let answer = String::from_utf8_lossy(&answer[..read]);
        assert!(answer.starts_with("HTTP/1.1 413"), "{path}: {answer}");
        assert!(answer.contains("application/json"), "{path}: {answer}");
    }
}

/// A body naming a field twice was taken with its last value, silently: a retention
/// change `{"transcript_ttl_seconds": 86400, "transcript_ttl_seconds": 60}` applied the
/// one a reviewer would not read first, and a pipeline result could carry two texts.
#[tokio::test]
async fn a_field_given_twice_is_refused_by_name_and_nothing_changes() {
    let app = spawn_app().await;
    let key = app.account().await;
    let response = app
        .public(Method::PUT, "/v2/account/retention", &key)
        .header("content-type", "application/json")
        .body(r#"{"transcript_ttl_seconds": 86400, "transcript_ttl_seconds": 60}"#)
        .send()
        .await
        .expect("request");
    let message = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert!(
        message.contains(r#"the field "transcript_ttl_seconds" is given twice"#),
        "{message}"
    );
    let settings = app
        .public(Method::GET, "/v2/account/retention", &key)
        .send()
        .await
        .expect("request");
    let settings = expect_json(settings, StatusCode::OK).await;
    assert_eq!(
        settings["transcript_ttl_seconds"],
        json!(null),
        "{settings}"
    );

    // The create too, at the top and inside a value (review: a second `webhook_url` was
    // the one kept).
    for body in [
        r#"{"audio_url": "https://x/a.wav", "webhook_url": "https://good.example/h", "webhook_url": "https://evil.example/h"}"#,
        r#"{"audio_url": "https://x/a.wav", "speech_understanding": {"request": {"a": 1, "a": 2}}}"#,
    ] {
        let response = app
            .public(Method::POST, "/v2/transcript", &key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("twice"), "{body}: {message}");
    }
    assert_eq!(
        app.list_transcripts(&key, "").await["transcripts"],
        json!([]),
        "nothing stored"
    );

    let id = app.url_transcript(&key).await;
    let response = app
        .complete_raw(
            &id,
            r#"{"text": "the pipeline's", "words": [], "text": "another"}"#,
        )
        .await;
    let message = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert!(
        message.contains(r#"the field "text" is given twice"#),
        "{message}"
    );
    let transcript = app.get_transcript(&key, &id).await;
    assert_eq!(transcript["status"], "queued", "{transcript}");
    assert_eq!(transcript["text"], json!(null), "{transcript}");
}

/// A long transcript's result was parsed into a JSON tree on the way in and again on
/// every read, about a hundred times its size in memory (20 MB of words: 1.9 GB), so a
/// few long transcripts read at once could exhaust the server. Its values now pass
/// through as sent; what the customer reads back is what the pipeline stored.
#[tokio::test]
async fn a_long_result_comes_back_as_the_pipeline_sent_it() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    let words: Vec<serde_json::Value> = (0..50_000)
        .map(|i| {
            json!({"text": format!("w\u{e9}{i}"), "start": i * 10, "end": i * 10 + 9,
                   "confidence": 0.5, "speaker": null})
        })
        .collect();
    let result = json!({
        "text": "a \"quoted\" line\nand another",
        "words": words,
        "utterances": [{"speaker": "A", "words": words[..3]}],
        "confidence": 0.75,
        "audio_duration": 500,
        "iab_categories_result": {"status": "success", "results": []},
    });
    // Spaces and escapes inside values, as a pipeline may send them.
    let body = serde_json::to_string_pretty(&result)
        .expect("json")
        .replace("w\u{e9}", "w\\u00e9");
    let response = app.complete_raw(&id, body).await;
    expect_json(response, StatusCode::OK).await;
    let transcript = app.get_transcript(&key, &id).await;
    for field in [
        "text",
        "words",
        "utterances",
        "confidence",
        "iab_categories_result",
    ] {
        assert_eq!(transcript[field], result[field], "{field}");
    }
    assert_eq!(transcript["audio_duration"], 500);
    assert_eq!(transcript["status"], "completed");
}

/// Kept as raw text, a result could hold what a JSON tree refuses (`1e400`, a lone
/// surrogate, a key named twice inside `words`). The training export reads results as a
/// tree: such a result made it fall back to plain-text redaction and to no mute ranges,
/// exporting PII. Each is refused when it comes in, and nothing is stored.
#[tokio::test]
async fn a_result_a_json_tree_could_not_read_back_is_refused_and_nothing_is_stored() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.url_transcript(&key).await;
    for (poison, why) in [
        (r#""zz": 1e400"#, "out of range"),
        (r#""zz": "\ud800""#, "hex escape"),
        (
            r#""words": [{"text": "jane", "text": "at"}]"#,
            "names \"text\" twice",
        ),
    ] {
        let body = format!(r#"{{"text": "Call me at 555-123-4567", {poison}}}"#);
        let response = app.complete_raw(&id, body).await;
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(why), "{poison}: {message}");
        assert!(!message.contains("555-123-4567"), "{message}");
    }
    let transcript = app.get_transcript(&key, &id).await;
    assert_eq!(transcript["status"], "queued", "{transcript}");
}

/// A `speech_understanding` request nested 100 deep (which `POST /v2/transcript` took)
/// was dropped from every answer, with the transcript's other text inputs, without an
/// error: stored content was read back with the checks of a request body. It is echoed
/// now; one level deeper is refused when it comes in, and nothing is stored.
#[tokio::test]
async fn a_text_input_nested_to_the_bound_is_echoed_and_one_deeper_is_refused() {
    let app = spawn_app().await;
    let key = app.account().await;
    let nested = |levels: usize| -> serde_json::Value {
        serde_json::from_str(&format!(
            r#"{{"a": {}1{}}}"#,
            "[".repeat(levels - 1),
            "]".repeat(levels - 1)
        ))
        .expect("json")
    };
    let deepest = nested(100);
    let created = app
        .create_transcript(
            &key,
            json!({"audio_url": "https://example.com/a.mp3", "prompt": "my prompt",
                   "speech_understanding": deepest}),
        )
        .await;
    let id = created["id"].as_str().expect("id");
    for transcript in [created.clone(), app.get_transcript(&key, id).await] {
        assert_eq!(transcript["prompt"], "my prompt", "{transcript}");
        assert_eq!(transcript["speech_understanding"], deepest);
    }
    let response = app
        .public(Method::POST, "/v2/transcript", &key)
        .json(&json!({"audio_url": "https://example.com/a.mp3",
                      "speech_understanding": nested(101)}))
        .send()
        .await
        .expect("request");
    let message = expect_error(response, StatusCode::BAD_REQUEST).await;
    assert!(message.contains("nested more than 100 deep"), "{message}");
    let listed = app.list_transcripts(&key, "").await;
    assert_eq!(listed["transcripts"].as_array().map(Vec::len), Some(1));
}

/// A name's bound was counted in bytes though the message says characters: 200 accented
/// characters (400 bytes) were refused as too long.
#[tokio::test]
async fn a_text_field_is_bounded_in_characters_as_its_message_says() {
    let app = spawn_app().await;
    for (name, status) in [
        ("é".repeat(200), StatusCode::CREATED),
        ("é".repeat(201), StatusCode::BAD_REQUEST),
    ] {
        let response = app
            .admin(Method::POST, "/admin/v1/accounts")
            .json(&json!({ "name": name }))
            .send()
            .await
            .expect("request");
        assert_eq!(
            response.status(),
            status,
            "{} characters",
            name.chars().count()
        );
    }
}
