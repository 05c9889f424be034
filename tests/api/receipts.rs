//! Deletion you can prove: a transcript's receipt verifies offline with only the log's
//! public key, any altered byte fails, and the log only grows (consistency proofs).

use crate::helpers::*;
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

/// A completed transcript from an upload (audio, prompt, intermediate, final).
async fn uploaded_transcript(app: &TestApp, key: &str) -> String {
    let url = app.upload(key, b"MARKER-AUDIO").await;
    let t = app
        .create_transcript(key, json!({"audio_url": url, "prompt": "MARKER-PROMPT"}))
        .await;
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
    app.intermediate(&id, "chunk-0").await;
    app.complete(&id).await;
    id
}

async fn receipt(app: &TestApp, key: &str, id: &str) -> reqwest::Response {
    app.public(Method::GET, &format!("/v2/transcript/{id}/receipt"), key)
        .send()
        .await
        .expect("request")
}

async fn public_key(app: &TestApp) -> lethe::receipts::VerifyingKey {
    let response = app
        .request(Method::GET, "/v2/retention/public-key", None)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    let pem = response.text().await.expect("body");
    assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----"), "{pem}");
    lethe::receipts::public_key_from_pem(&pem).expect("a PEM Ed25519 key")
}

async fn checkpoint(app: &TestApp) -> String {
    let response = app
        .request(Method::GET, "/v2/retention/checkpoint", None)
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    response.text().await.expect("body")
}

#[tokio::test]
async fn a_deleted_transcripts_receipt_verifies_offline_with_only_the_public_key() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = uploaded_transcript(&app, &key).await;
    let response = app.delete_transcript(&key, &id).await;
    assert_eq!(response.status(), StatusCode::OK);

    let body = expect_json(receipt(&app, &key, &id).await, StatusCode::OK).await;
    let parsed: lethe::receipts::Receipt =
        serde_json::from_value(body.clone()).expect("the served receipt parses");
    let verified = lethe::receipts::verify(&parsed, &public_key(&app).await).expect("verifies");
    assert_eq!(verified.transcript_id.to_string(), id);
    let mut kinds: Vec<&str> = body["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .map(|a| a["kind"].as_str().expect("kind"))
        .collect();
    kinds.sort();
    assert_eq!(
        kinds,
        ["final_transcript", "intermediate", "text_input"],
        "every deleted artifact of the transcript (an upload is recorded without one)"
    );
    assert!(body["artifacts"]
        .as_array()
        .expect("artifacts")
        .iter()
        .all(|a| a["reason"] == "customer_request"));
    // Nothing of the content is in a receipt.
    assert!(!body.to_string().contains("MARKER"), "{body}");
}

#[tokio::test]
async fn a_receipt_with_any_field_altered_does_not_verify() {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = uploaded_transcript(&app, &key).await;
    app.delete_transcript(&key, &id).await;
    let body = expect_json(receipt(&app, &key, &id).await, StatusCode::OK).await;
    let key_pem = public_key(&app).await;
    let verify = |v: &Value| {
        serde_json::from_value::<lethe::receipts::Receipt>(v.clone())
            .map_err(|e| e.to_string())
            .and_then(|r| lethe::receipts::verify(&r, &key_pem).map_err(|e| e.to_string()))
    };
    assert!(verify(&body).is_ok());
    let later = |t: &Value| {
        let t: chrono::DateTime<chrono::Utc> = t.as_str().expect("time").parse().expect("time");
        json!((t + chrono::Duration::microseconds(1)).to_rfc3339())
    };
    type Alteration = Box<dyn Fn(&mut Value)>;
    let alterations: Vec<(&str, Alteration)> = vec![
        (
            "reason",
            Box::new(|r| r["artifacts"][0]["reason"] = json!("ttl_expired")),
        ),
        (
            "kind",
            Box::new(|r| r["artifacts"][0]["kind"] = json!("intermediate")),
        ),
        (
            "deleted_at",
            Box::new(move |r| {
                r["artifacts"][0]["deleted_at"] = later(&r["artifacts"][0]["deleted_at"])
            }),
        ),
        (
            "artifact_id",
            Box::new(|r| {
                r["artifacts"][0]["artifact_id"] = json!(uuid::Uuid::new_v4().to_string())
            }),
        ),
        (
            "transcript_id",
            Box::new(|r| r["transcript_id"] = json!(uuid::Uuid::new_v4().to_string())),
        ),
        (
            "tree_size",
            Box::new(|r| r["tree_size"] = json!(r["tree_size"].as_u64().expect("size") + 1)),
        ),
        (
            "leaf_index",
            Box::new(|r| {
                r["artifacts"][0]["leaf_index"] =
                    json!(r["artifacts"][0]["leaf_index"].as_u64().expect("index") ^ 1)
            }),
        ),
        (
            "signature",
            Box::new(|r| {
                let note = r["checkpoint"].as_str().expect("note").to_owned();
                let at = note.rfind(' ').expect("signature") + 3;
                let mut bytes = note.into_bytes();
                bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
                r["checkpoint"] = json!(String::from_utf8(bytes).expect("utf8"));
            }),
        ),
        (
            "dropped proof hash",
            Box::new(|r| {
                r["artifacts"][0]["inclusion_proof"]
                    .as_array_mut()
                    .expect("proof")
                    .pop();
            }),
        ),
    ];
    for (what, alter) in alterations {
        let mut altered = body.clone();
        alter(&mut altered);
        assert_ne!(altered, body, "{what} was altered");
        assert!(
            verify(&altered).is_err(),
            "a receipt with {what} altered verified"
        );
    }
    // And with another log's key.
    let other = lethe::receipts::SigningKey::from_bytes(&[7; 32]).verifying_key();
    let parsed: lethe::receipts::Receipt = serde_json::from_value(body).expect("parses");
    assert!(lethe::receipts::verify(&parsed, &other).is_err());
}

#[tokio::test]
async fn a_receipt_is_409_before_anything_is_deleted_and_404_for_another_account() {
    let app = spawn_app().await;
    let key = app.account().await;
    let other = app.account().await;
    let id = app.completed_transcript(&key).await;
    let error = expect_error(receipt(&app, &key, &id).await, StatusCode::CONFLICT).await;
    assert!(
        error.contains("nothing of this transcript has been deleted yet"),
        "{error}"
    );
    app.delete_transcript(&key, &id).await;
    expect_error(receipt(&app, &other, &id).await, StatusCode::NOT_FOUND).await;
    expect_error(
        receipt(&app, &key, "not-an-id").await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_json(receipt(&app, &key, &id).await, StatusCode::OK).await;
}

#[tokio::test]
async fn a_checkpoint_held_by_an_auditor_is_extended_by_a_consistency_proof() {
    let app = spawn_app().await;
    let key = app.account().await;
    let log_key = public_key(&app).await;
    let first = uploaded_transcript(&app, &key).await;
    app.delete_transcript(&key, &first).await;
    let name = lethe::receipts::Receipt::clone(
        &serde_json::from_value(
            expect_json(receipt(&app, &key, &first).await, StatusCode::OK).await,
        )
        .expect("receipt"),
    )
    .key_name;
    let held = lethe::receipts::Checkpoint::open(&checkpoint(&app).await, &name, &log_key)
        .expect("the served checkpoint is signed by the log key");
    assert!(held.size >= 4);

    for _ in 0..3 {
        let id = uploaded_transcript(&app, &key).await;
        app.delete_transcript(&key, &id).await;
    }
    let response = app
        .admin(
            Method::GET,
            &format!("/admin/v1/log/consistency?from={}", held.size),
        )
        .send()
        .await
        .expect("request");
    let proof = expect_json(response, StatusCode::OK).await;
    let newer = lethe::receipts::Checkpoint::open(
        proof["checkpoint"].as_str().expect("note"),
        &name,
        &log_key,
    )
    .expect("signed");
    assert_eq!(
        newer.size,
        held.size + 12,
        "three more transcripts, four artifacts each"
    );
    let hashes: Vec<[u8; 32]> = proof["proof"]
        .as_array()
        .expect("proof")
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().expect("base64"))
                .expect("base64")
                .try_into()
                .expect("32 bytes")
        })
        .collect();
    assert!(lethe::receipts::verify_consistency_proof(
        &held, &newer, &hashes
    ));
    // A forged history (another root at the held size) is caught.
    let mut forged = held.clone();
    forged.root[0] ^= 1;
    assert!(!lethe::receipts::verify_consistency_proof(
        &forged, &newer, &hashes
    ));

    let bad = app
        .admin(
            Method::GET,
            &format!("/admin/v1/log/consistency?from={}", newer.size + 1),
        )
        .send()
        .await
        .expect("request");
    expect_error(bad, StatusCode::BAD_REQUEST).await;
    let unauthenticated = app
        .request(Method::GET, "/admin/v1/log/consistency?from=1", None)
        .send()
        .await
        .expect("request");
    assert_eq!(unauthenticated.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn lethe_receipt_verify_exits_0_for_a_served_receipt_and_1_with_the_reason_for_an_altered_one(
) {
    let app = spawn_app().await;
    let key = app.account().await;
    let id = uploaded_transcript(&app, &key).await;
    app.delete_transcript(&key, &id).await;
    let body = receipt(&app, &key, &id).await.text().await.expect("body");
    let pem = app
        .request(Method::GET, "/v2/retention/public-key", None)
        .send()
        .await
        .expect("request")
        .text()
        .await
        .expect("pem");
    let dir = tempfile::tempdir().expect("tempdir");
    let (receipt_file, key_file) = (dir.path().join("receipt.json"), dir.path().join("log.pem"));
    std::fs::write(&receipt_file, &body).expect("write");
    std::fs::write(&key_file, &pem).expect("write");
    let verify = || {
        std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
            .args(["receipt", "verify"])
            .arg(&receipt_file)
            .arg("--public-key")
            .arg(&key_file)
            // Offline: no data dir, no database is touched.
            .env("LETHE_DATA_DIR", dir.path().join("nowhere"))
            .output()
            .expect("lethe runs")
    };
    let ok = verify();
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(
        ok.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert!(stdout.starts_with("receipt verified"), "{stdout}");
    assert!(
        stdout.contains(&id) && stdout.contains("final_transcript"),
        "{stdout}"
    );
    assert!(
        !dir.path().join("nowhere").exists(),
        "verification wrote nothing"
    );

    let altered = body.replacen("customer_request", "ttl_expired", 1);
    assert_ne!(altered, body);
    std::fs::write(&receipt_file, altered).expect("write");
    let bad = verify();
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert_eq!(bad.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("does NOT verify"), "{stderr}");
}
