//! Tenancy and authentication on every public endpoint.

use crate::helpers::*;
use reqwest::{Method, StatusCode};
use serde_json::json;

#[tokio::test]
async fn every_public_endpoint_is_401_without_a_key_or_with_a_wrong_one() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = app.completed_transcript(&key).await;
    let endpoints = [
        (Method::POST, "/v2/upload".to_owned()),
        (Method::POST, "/v2/transcript".to_owned()),
        (Method::GET, "/v2/transcript".to_owned()),
        (Method::GET, format!("/v2/transcript/{id}")),
        (Method::DELETE, format!("/v2/transcript/{id}")),
        (Method::GET, format!("/v2/transcript/{id}/retention")),
        (Method::GET, "/v2/account/retention".to_owned()),
        (Method::PUT, "/v2/account/retention".to_owned()),
    ];
    for auth in [
        None,
        Some("wrong-key"),
        Some(""),
        Some("Bearer test-admin-token"),
    ] {
        for (method, path) in &endpoints {
            let response = app
                .request(method.clone(), path, auth)
                .body("{}")
                .send()
                .await
                .expect("request");
            let message = expect_error(response, StatusCode::UNAUTHORIZED).await;
            assert_eq!(
                message, "Authentication error, API token missing/invalid",
                "{method} {path}"
            );
        }
    }
    assert_eq!(
        app.get_transcript(&key, &id).await["status"],
        "completed",
        "nothing was deleted"
    );
}

#[tokio::test]
async fn another_accounts_transcripts_and_uploads_are_indistinguishable_from_missing_ones() {
    let app = spawn_app().await;
    let owner = app.account().await;
    let intruder = app.account().await;
    let upload_url = app.upload(&owner, b"MARKER-AUDIO").await;
    let id = app.completed_transcript(&owner).await;

    for (method, suffix) in [
        (Method::GET, ""),
        (Method::DELETE, ""),
        (Method::GET, "/retention"),
    ] {
        let response = app
            .public(
                method.clone(),
                &format!("/v2/transcript/{id}{suffix}"),
                &intruder,
            )
            .send()
            .await
            .expect("request");
        let message = expect_error(response, StatusCode::NOT_FOUND).await;
        assert_eq!(message, "Transcript lookup error, transcript id not found");
    }
    assert_eq!(
        app.list_transcripts(&intruder, "").await["transcripts"],
        json!([])
    );
    let response = app
        .public(
            Method::GET,
            &format!("/v2/transcript?after_id={id}"),
            &intruder,
        )
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await["transcripts"],
        json!([])
    );
    // The upload URL as given, and written in other ways that name the same upload.
    let upload = upload_url.as_str();
    let (origin, path) = upload.split_at(upload.find("/v2/").expect("path"));
    let port = origin.rsplit(':').next().expect("port");
    for spelling in [
        upload.to_owned(),
        upload.replacen("http://", "HTTP://", 1),
        format!("{}{}", origin.replacen(port, &format!("0{port}"), 1), path),
        format!("{origin}/{path}"),
        format!("{upload}?download=1"),
    ] {
        let response = app
            .public(Method::POST, "/v2/transcript", &intruder)
            .json(&json!({"audio_url": spelling}))
            .send()
            .await
            .expect("request");
        assert_eq!(
            expect_error(response, StatusCode::FORBIDDEN).await,
            "Cannot access uploaded file",
            "{spelling}"
        );
    }
    let response = app
        .public(Method::PUT, "/v2/account/retention", &intruder)
        .json(&json!({"transcript_ttl_seconds": 3600}))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
    let response = app
        .public(Method::GET, "/v2/account/retention", &owner)
        .send()
        .await
        .expect("request");
    assert_eq!(
        expect_json(response, StatusCode::OK).await["mode"],
        "default",
        "the owner's settings are their own"
    );
    assert_eq!(
        app.get_transcript(&owner, &id).await["text"],
        "MARKER-TEXT hello world",
        "untouched"
    );
}
