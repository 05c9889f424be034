#![allow(dead_code)]

use chrono::{DateTime, Duration, TimeZone, Utc};
use lethe::clock::ManualClock;
use lethe::config::Config;
use lethe::http::Tokens;
use lethe::startup::App;
use reqwest::{Method, RequestBuilder, Response, StatusCode};
use secrecy::SecretString;
use serde_json::{json, Value};
use std::sync::Arc;
use tempfile::TempDir;
use tokio_util::sync::{CancellationToken, DropGuard};

pub const ADMIN: &str = "test-admin-token";
pub const INTERNAL: &str = "test-internal-token";

pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 11, 9, 0, 0)
        .single()
        .expect("valid time")
}

pub struct TestApp {
    pub base: String,
    pub clock: ManualClock,
    pub client: reqwest::Client,
    pub app: App,
    pub dir: TempDir,
    _server: DropGuard,
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Binds 127.0.0.1:0 before serving, so no readiness wait is needed. The sweeper loop is
/// not started: tests run sweeps through the admin API, at the clock time they chose.
pub async fn spawn_app_with(tweak: impl FnOnce(&mut Config)) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        lethe::telemetry::init(lethe::config::LogFormat::Pretty);
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    config.listen = address;
    config.public_base_url = Some(format!("http://{address}"));
    tweak(&mut config);
    lethe::testing::apply_profile(&mut config, t0()).await;
    let clock = ManualClock::new(t0());
    let app = App::build(config, Arc::new(clock.clone()))
        .await
        .expect("app builds");
    let tokens = Tokens {
        admin: SecretString::from(ADMIN),
        internal: SecretString::from(INTERNAL),
    };
    let header_read = app.config.header_read_timeout();
    let router = lethe::http::router(app.http_state(tokens));
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    // The production server loop, with its connection limits.
    tokio::spawn(async move {
        lethe::http::server::serve(listener, router, header_read, stop)
            .await
            .expect("server runs");
    });
    TestApp {
        base: format!("http://{address}"),
        clock,
        client: reqwest::Client::new(),
        app,
        dir,
        _server: shutdown.drop_guard(),
    }
}

impl TestApp {
    pub fn request(&self, method: Method, path: &str, auth: Option<&str>) -> RequestBuilder {
        let url = if path.starts_with("http") {
            path.to_owned()
        } else {
            format!("{}{}", self.base, path)
        };
        let builder = self.client.request(method, url);
        match auth {
            Some(value) => builder.header("authorization", value),
            None => builder,
        }
    }

    pub fn public(&self, method: Method, path: &str, key: &str) -> RequestBuilder {
        self.request(method, path, Some(key))
    }

    pub fn admin(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, Some(&format!("Bearer {ADMIN}")))
    }

    pub fn internal(&self, method: Method, path: &str) -> RequestBuilder {
        self.request(method, path, Some(&format!("Bearer {INTERNAL}")))
    }

    /// Creates an account through the admin API; returns (id, api key).
    pub async fn account_with(&self, body: Value) -> (String, String) {
        let response = self
            .admin(Method::POST, "/admin/v1/accounts")
            .json(&body)
            .send()
            .await
            .expect("request");
        let body = expect_json(response, StatusCode::CREATED).await;
        (
            body["id"].as_str().expect("id").to_owned(),
            body["api_key"].as_str().expect("key").to_owned(),
        )
    }

    pub async fn account(&self) -> String {
        self.account_with(json!({"name": "acme"})).await.1
    }

    pub async fn ttl_account(&self, seconds: i64) -> String {
        let key = self.account().await;
        let response = self
            .public(Method::PUT, "/v2/account/retention", &key)
            .json(&json!({"transcript_ttl_seconds": seconds}))
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await;
        key
    }

    pub async fn upload(&self, key: &str, bytes: &'static [u8]) -> String {
        let response = self
            .public(Method::POST, "/v2/upload", key)
            .body(bytes)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await["upload_url"]
            .as_str()
            .expect("upload_url")
            .to_owned()
    }

    pub async fn create_transcript(&self, key: &str, body: Value) -> Value {
        let response = self
            .public(Method::POST, "/v2/transcript", key)
            .json(&body)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// A transcript from a foreign URL with a prompt; returns its id.
    pub async fn url_transcript(&self, key: &str) -> String {
        let body = json!({"audio_url": "https://example.com/call.mp3", "prompt": "MARKER-PROMPT", "speech_model": "universal"});
        self.create_transcript(key, body).await["id"]
            .as_str()
            .expect("id")
            .to_owned()
    }

    pub async fn complete(&self, id: &str) -> Value {
        let result = json!({
            "text": "MARKER-TEXT hello world",
            "words": [{"text": "hello", "start": 0, "end": 400, "confidence": 0.98}],
            "utterances": [],
            "confidence": 0.97,
            "audio_duration": 12,
        });
        let response = self
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{id}/complete"),
            )
            .json(&result)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// `POST /internal/v1/transcripts/{id}/complete` with `body` sent as it is written.
    pub async fn complete_raw(&self, id: &str, body: impl Into<String>) -> reqwest::Response {
        self.internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{id}/complete"),
        )
        .header("content-type", "application/json")
        .body(body.into())
        .send()
        .await
        .expect("request")
    }

    pub async fn intermediate(&self, id: &str, name: &str) -> Value {
        let response = self
            .internal(
                Method::PUT,
                &format!("/internal/v1/transcripts/{id}/intermediates/{name}"),
            )
            .body("MARKER-INTERMEDIATE")
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::CREATED).await
    }

    /// Queues, processes (with one intermediate) and completes a URL transcript.
    pub async fn completed_transcript(&self, key: &str) -> String {
        let id = self.url_transcript(key).await;
        let response = self
            .internal(
                Method::POST,
                &format!("/internal/v1/transcripts/{id}/processing"),
            )
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await;
        self.intermediate(&id, "chunk-0").await;
        self.complete(&id).await;
        id
    }

    pub async fn get_transcript(&self, key: &str, id: &str) -> Value {
        let response = self
            .public(Method::GET, &format!("/v2/transcript/{id}"), key)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// `GET /v2/transcript?{query}` (`query` may be empty), answered 200.
    pub async fn list_transcripts(&self, key: &str, query: &str) -> Value {
        let response = self
            .public(Method::GET, &format!("/v2/transcript?{query}"), key)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// `DELETE /v2/transcript/{id}`; the caller checks the answer.
    pub async fn delete_transcript(&self, key: &str, id: &str) -> reqwest::Response {
        self.public(Method::DELETE, &format!("/v2/transcript/{id}"), key)
            .send()
            .await
            .expect("request")
    }

    pub async fn retention(&self, key: &str, id: &str) -> Value {
        let response = self
            .public(Method::GET, &format!("/v2/transcript/{id}/retention"), key)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    /// Runs a pass through the admin API and waits for its summary.
    pub async fn sweep(&self) -> Value {
        let response = self
            .admin(Method::POST, "/admin/v1/sweeps?wait=true")
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await
    }

    pub fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

/// Asserts the status and returns the JSON body, printing the body on a mismatch.
pub async fn expect_json(response: Response, status: StatusCode) -> Value {
    let actual = response.status();
    let text = response.text().await.expect("body");
    assert_eq!(actual, status, "unexpected status; body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("body is not JSON ({e}): {text}"))
}

/// Asserts an error status whose body is `{"error": "<sentence>"}`; returns the sentence.
pub async fn expect_error(response: Response, status: StatusCode) -> String {
    let body = expect_json(response, status).await;
    let message = body["error"]
        .as_str()
        .unwrap_or_else(|| panic!("no error sentence in {body}"))
        .to_owned();
    assert!(
        message.len() > 10,
        "the error should be a sentence a person can act on: {message:?}"
    );
    assert_eq!(
        body.as_object().map(|o| o.len()),
        Some(1),
        "only the error field: {body}"
    );
    message
}

pub fn artifact<'a>(retention: &'a Value, kind: &str) -> &'a Value {
    retention["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .find(|a| a["kind"] == kind)
        .unwrap_or_else(|| panic!("no {kind} in {retention}"))
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    lethe::http::body::rfc3339(t)
}
