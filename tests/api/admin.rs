//! The admin API, `/healthz`, `/metrics` and `/openapi.json`.

use crate::helpers::*;
use chrono::Duration;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

#[tokio::test]
async fn the_admin_api_needs_the_admin_token_and_no_other() {
    let app = spawn_app().await;
    let key = app.account().await;
    for auth in [
        None,
        Some("Bearer nope".to_owned()),
        Some(format!("Bearer {INTERNAL}")),
        Some(key),
        Some(ADMIN.to_owned()),
    ] {
        for (method, path) in [
            (Method::POST, "/admin/v1/accounts"),
            (Method::POST, "/admin/v1/sweeps"),
            (Method::GET, "/admin/v1/sweeps"),
            (Method::GET, "/admin/v1/overdue"),
        ] {
            let response = app
                .request(method.clone(), path, auth.as_deref())
                .json(&json!({"name": "x"}))
                .send()
                .await
                .expect("request");
            let message = expect_error(response, StatusCode::UNAUTHORIZED).await;
            assert!(message.contains("admin API token"), "{message}");
        }
    }
}

#[tokio::test]
async fn accounts_are_created_with_a_key_shown_once_read_patched_and_given_more_keys() {
    let app = spawn_app().await;
    let (id, key) = app
        .account_with(json!({"name": "clinic", "baa": true, "region": "eu"}))
        .await;
    assert_eq!(key.len(), 64);
    let response = app
        .admin(Method::GET, &format!("/admin/v1/accounts/{id}"))
        .send()
        .await
        .expect("request");
    let account = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (
            account["name"].as_str(),
            account["baa"].as_bool(),
            account["region"].as_str()
        ),
        (Some("clinic"), Some(true), Some("eu"))
    );
    assert_eq!(account["mode"], "baa");
    assert!(
        !account.to_string().contains(&key),
        "the key is never shown again"
    );
    // Only a hash is stored: the database file byte by byte, or PostgreSQL's key table.
    if lethe::testing::aws_profile() {
        let url = app.app.config.database_url.clone().expect("postgres url");
        let pool = sqlx::PgPool::connect(&url).await.expect("postgres");
        let hashes: Vec<String> = sqlx::query_scalar("SELECT key_hash FROM api_keys")
            .fetch_all(&pool)
            .await
            .expect("keys");
        assert!(
            !hashes.is_empty() && hashes.iter().all(|h| h != &key),
            "raw key stored: {hashes:?}"
        );
    } else {
        let db = std::fs::read(app.dir.path().join("lethe.db")).expect("db");
        let wal = std::fs::read(app.dir.path().join("lethe.db-wal")).unwrap_or_default();
        for file in [db, wal] {
            assert!(
                !file.windows(key.len()).any(|w| w == key.as_bytes()),
                "raw key stored"
            );
        }
    }

    let response = app
        .admin(Method::PATCH, &format!("/admin/v1/accounts/{id}"))
        .json(&json!({"transcript_ttl_seconds": 7200, "zero_data_retention": false}))
        .send()
        .await
        .expect("request");
    let patched = expect_json(response, StatusCode::OK).await;
    assert_eq!(
        (patched["mode"].as_str(), patched["policy_version"].as_i64()),
        (Some("ttl"), Some(2))
    );
    let response = app
        .admin(Method::PATCH, &format!("/admin/v1/accounts/{id}"))
        .json(&json!({"transcript_ttl_seconds": 300000}))
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST).await;
    let response = app
        .admin(Method::GET, &format!("/admin/v1/accounts/{id}"))
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await,
        patched,
        "the refused patch changed nothing"
    );

    let response = app
        .admin(Method::POST, &format!("/admin/v1/accounts/{id}/keys"))
        .send()
        .await
        .expect("request");
    let second = expect_json(response, StatusCode::CREATED).await["api_key"]
        .as_str()
        .expect("key")
        .to_owned();
    for k in [&key, &second] {
        let response = app
            .public(Method::GET, "/v2/account/retention", k)
            .send()
            .await
            .expect("request");
        expect_json(response, StatusCode::OK).await;
    }
}

#[tokio::test]
async fn bad_admin_requests_are_4xx_with_a_clear_error() {
    let app = spawn_app().await;
    let cases = [
        (json!({}), "name is required"),
        (json!({"name": ""}), "name is required"),
        (json!({"name": "x", "region": "mars"}), "region"),
        (json!({"name": "x", "baa": "yes"}), "true or false"),
        (json!({"name": "x", "plan": "gold"}), "unknown field"),
    ];
    for (body, expected) in cases {
        let response = app
            .admin(Method::POST, "/admin/v1/accounts")
            .json(&body)
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(expected), "{body}: {message}");
    }
    let unknown = "01a20b2b-1242-7479-b5d2-7da23aa505fe";
    for (method, path) in [
        (Method::GET, format!("/admin/v1/accounts/{unknown}")),
        (Method::PATCH, format!("/admin/v1/accounts/{unknown}")),
        (Method::POST, format!("/admin/v1/accounts/{unknown}/keys")),
        (Method::GET, "/admin/v1/accounts/garbage".to_owned()),
    ] {
        let response = app
            .admin(method, &path)
            .json(&json!({"baa": true}))
            .send()
            .await
            .expect("request");
        expect_error(response, StatusCode::NOT_FOUND).await;
    }
    let response = app
        .admin(Method::GET, "/admin/v1/sweeps?limit=0")
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::BAD_REQUEST).await;
}

#[tokio::test]
async fn sweeps_run_on_demand_are_listed_and_overdue_artifacts_are_listed_until_deleted() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let id = app.completed_transcript(&key).await;
    app.advance(Duration::hours(2) + Duration::seconds(1));
    let response = app
        .admin(Method::GET, "/admin/v1/overdue")
        .send()
        .await
        .expect("request");
    let overdue = expect_json(response, StatusCode::OK).await;
    // The final transcript and its three linked artifacts share the deadline.
    let mut kinds: Vec<&str> = overdue["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        vec![
            "final_transcript",
            "intermediate",
            "text_input",
            "url_audio_reference"
        ]
    );
    assert!(overdue["artifacts"]
        .as_array()
        .expect("list")
        .iter()
        .all(|a| a["transcript_id"] == id.as_str()));

    let report = app.sweep().await;
    assert_eq!(
        (report["deleted"].as_u64(), report["overdue"].as_u64()),
        (Some(4), Some(4))
    );
    assert_eq!(report["deleted_by_reason"], json!({"linked": 3, "ttl": 1}));
    let response = app
        .admin(Method::GET, "/admin/v1/overdue")
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await["artifacts"],
        json!([])
    );
    let response = app
        .admin(Method::GET, "/admin/v1/sweeps")
        .send()
        .await
        .expect("request");
    let sweeps = expect_json(response, StatusCode::OK).await;
    assert_eq!(sweeps["sweeps"][0]["id"], report["id"]);
}

#[tokio::test]
async fn health_metrics_and_the_openapi_document_are_served() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    app.completed_transcript(&key).await;
    app.advance(Duration::hours(1));
    app.sweep().await;
    let response = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("request");
    assert_eq!(expect_json(response, StatusCode::OK).await["status"], "ok");
    let response = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let text = response.text().await.expect("body");
    for line in [
        "lethe_deletions_total{reason=\"ttl\"} 1",
        "lethe_deletions_total{reason=\"linked\"} 3",
        "lethe_tracked_artifacts{kind=\"final_transcript\",state=\"deleted\"} 1",
        "lethe_overdue_artifacts 0",
        "lethe_sweep_duration_seconds_count 1",
        "lethe_deletion_lag_seconds_count 1",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    let response = app
        .request(Method::GET, "/openapi.json", None)
        .send()
        .await
        .expect("request");
    let doc: Value = expect_json(response, StatusCode::OK).await;
    assert!(doc["paths"]["/v2/transcript"].is_object(), "{doc}");
}

#[tokio::test]
async fn unknown_endpoints_and_methods_get_json_errors() {
    let app = spawn_app().await;
    let response = app
        .request(Method::GET, "/v3/nothing", None)
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::NOT_FOUND).await;
    let response = app
        .request(Method::PATCH, "/v2/transcript", None)
        .send()
        .await
        .expect("request");
    expect_error(response, StatusCode::METHOD_NOT_ALLOWED).await;
}

#[test]
fn the_checked_in_openapi_document_is_the_generated_one() {
    let checked_in =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/openapi.json"))
            .expect("docs/openapi.json");
    assert_eq!(
        checked_in.trim_end(),
        lethe::http::openapi_json(),
        "docs/openapi.json is stale: regenerate it with `cargo run -q -- openapi > docs/openapi.json`"
    );
    let doc: Value = serde_json::from_str(&checked_in).expect("JSON");
    for (path, method) in [
        ("/v2/upload", "post"),
        ("/v2/transcript", "post"),
        ("/v2/transcript", "get"),
        ("/v2/transcript/{transcript_id}", "get"),
        ("/v2/transcript/{transcript_id}", "delete"),
        ("/v2/transcript/{transcript_id}/retention", "get"),
        ("/v2/account/retention", "put"),
        ("/internal/v1/uploads/{id}", "get"),
        ("/internal/v1/transcripts/{id}/processing", "post"),
        ("/internal/v1/transcripts/{id}/intermediates/{name}", "put"),
        ("/internal/v1/transcripts/{id}/complete", "post"),
        ("/internal/v1/transcripts/{id}/error", "post"),
        ("/internal/v1/transcripts/{id}/speech-understanding", "post"),
        ("/admin/v1/accounts", "post"),
        ("/admin/v1/accounts/{id}", "patch"),
        ("/admin/v1/accounts/{id}/keys", "post"),
        ("/admin/v1/sweeps", "post"),
        ("/admin/v1/sweeps", "get"),
        ("/admin/v1/overdue", "get"),
        ("/metrics", "get"),
    ] {
        assert!(
            doc["paths"][path][method].is_object(),
            "{method} {path} is not documented"
        );
    }
}
