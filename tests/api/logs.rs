//! retention.md §6 "Logs never hold content": the real binary at RUST_LOG=trace, a whole
//! workload through every surface, then every line it printed is searched for content,
//! prompts, key terms, custom spellings, webhook secrets, results and keys.

use reqwest::{Client, StatusCode};
use serde_json::{json, Value};
use std::process::Stdio;
use std::time::Duration;
use tokio::io::AsyncReadExt;

const SECRETS: &[&str] = &[
    "AUDIO-BYTES-7f3a",
    "URL-TOKEN-91c2",
    "PROMPT-TEXT-55d1",
    "KEYTERM-0b7e",
    "SPELLING-c4a9",
    "WEBHOOK-SECRET-e81f",
    "WEBHOOK-URL-2d6b",
    "TRANSCRIPT-TEXT-a3f0",
    "WORD-77aa",
    "UNDERSTANDING-19bd",
    "INTERMEDIATE-6c0e",
    "PIPELINE-ERROR-DETAIL-ok",
    "LLM-INPUT-3c8d",
    "LLM-OUTPUT-f27a",
    "STREAM-TEXT-6d4b",
    "U1RSRUFNLUFVRElP",
];

#[tokio::test]
async fn s6_logs_never_hold_content_or_keys_even_at_trace_level() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    let base = format!("http://127.0.0.1:{port}");
    let (admin, internal) = ("ADMIN-TOKEN-3e9d1c", "INTERNAL-TOKEN-8a2f4b");
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .arg("serve")
        .env("RUST_LOG", "trace")
        .env("LETHE_LISTEN", format!("127.0.0.1:{port}"))
        .env("LETHE_DATA_DIR", dir.path())
        .env("LETHE_ADMIN_TOKEN", admin)
        .env("LETHE_INTERNAL_TOKEN", internal)
        .env("LETHE_SWEEP_SCHEDULE", "* * * * * *")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("lethe starts");
    // Drain both pipes from the start: trace output would otherwise fill them and block it.
    let drain = |mut pipe: Box<dyn tokio::io::AsyncRead + Unpin + Send>| {
        tokio::spawn(async move {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text).await;
            text
        })
    };
    let stdout = drain(Box::new(child.stdout.take().expect("stdout")));
    let stderr = drain(Box::new(child.stderr.take().expect("stderr")));
    let client = Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let mut ready = false;
    for _ in 0..200 {
        if client
            .get(format!("{base}/healthz"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(ready, "lethe serve did not come up on {base}");

    // An account; its key is a secret too.
    let created: Value = client
        .post(format!("{base}/admin/v1/accounts"))
        .bearer_auth(admin)
        .json(&json!({"name": "log-test"}))
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let key = created["api_key"].as_str().expect("key").to_owned();
    let auth = |r: reqwest::RequestBuilder| r.header("authorization", key.clone());

    // Upload, transcripts with every text input, pipeline results, reads, deletion.
    let upload: Value = auth(client.post(format!("{base}/v2/upload")))
        .body("RIFF AUDIO-BYTES-7f3a")
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    let request = |audio_url: &str| {
        json!({
            "audio_url": audio_url,
            "prompt": "PROMPT-TEXT-55d1",
            "keyterms_prompt": ["KEYTERM-0b7e"],
            "custom_spelling": [{"from": ["x"], "to": "SPELLING-c4a9"}],
            "webhook_url": "https://hooks.example.com/WEBHOOK-URL-2d6b",
            "webhook_auth_header_name": "X-Auth",
            "webhook_auth_header_value": "WEBHOOK-SECRET-e81f",
        })
    };
    let mut ids = Vec::new();
    for audio_url in [
        upload["upload_url"].as_str().expect("url").to_owned(),
        "https://example.com/a.mp3?token=URL-TOKEN-91c2".to_owned(),
    ] {
        let t: Value = auth(client.post(format!("{base}/v2/transcript")))
            .json(&request(&audio_url))
            .send()
            .await
            .expect("request")
            .json()
            .await
            .expect("json");
        ids.push(t["id"].as_str().expect("id").to_owned());
    }
    let upload_id = upload["upload_url"]
        .as_str()
        .expect("url")
        .rsplit('/')
        .next()
        .expect("id")
        .to_owned();
    let read = client
        .get(format!("{base}/internal/v1/uploads/{upload_id}"))
        .bearer_auth(internal)
        .send()
        .await
        .expect("request");
    assert_eq!(read.status(), StatusCode::OK);
    for id in &ids {
        let internal_post = |path: &str, body: Value| {
            client
                .post(format!("{base}/internal/v1/transcripts/{id}/{path}"))
                .bearer_auth(internal)
                .json(&body)
                .send()
        };
        internal_post("processing", json!({}))
            .await
            .expect("request");
        client
            .put(format!(
                "{base}/internal/v1/transcripts/{id}/intermediates/chunk"
            ))
            .bearer_auth(internal)
            .body("INTERMEDIATE-6c0e")
            .send()
            .await
            .expect("request");
        let done = internal_post(
            "complete",
            json!({"text": "TRANSCRIPT-TEXT-a3f0", "words": [{"text": "WORD-77aa", "start": 0, "end": 1, "confidence": 1.0}], "audio_duration": 1}),
        )
        .await
        .expect("request");
        assert_eq!(done.status(), StatusCode::OK);
        internal_post(
            "speech-understanding",
            json!({"translation": "UNDERSTANDING-19bd"}),
        )
        .await
        .expect("request");
        // Errors carry client data back, never into the log.
        internal_post(
            "complete",
            json!({"text": 5, "detail": "PIPELINE-ERROR-DETAIL-ok"}),
        )
        .await
        .expect("request");
        auth(client.get(format!("{base}/v2/transcript/{id}")))
            .send()
            .await
            .expect("request");
        auth(client.get(format!("{base}/v2/transcript/{id}/retention")))
            .send()
            .await
            .expect("request");
    }
    // LLM Gateway traffic (stored, then deleted by the customer) and a streaming session
    // (its audio is base64 of "STREAM-AUDIO").
    let account_id = created["id"].as_str().expect("id");
    let llm: Value = client
        .post(format!("{base}/internal/v1/llm-gateway/requests"))
        .bearer_auth(internal)
        .json(
            &json!({"account_id": account_id, "provider": "openai", "model": "m",
            "input": [{"role": "user", "content": "LLM-INPUT-3c8d"}], "output": "LLM-OUTPUT-f27a"}),
        )
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(llm["stored"], true, "{llm}");
    let session = client
        .post(format!("{base}/internal/v1/streaming/sessions"))
        .bearer_auth(internal)
        .json(&json!({"account_id": account_id, "model": "m",
            "started_at": "2020-01-01T00:00:00Z", "ended_at": "2020-01-01T00:01:00Z",
            "audio": "U1RSRUFNLUFVRElP", "transcript": "STREAM-TEXT-6d4b"}))
        .send()
        .await
        .expect("request");
    assert_eq!(session.status(), StatusCode::CREATED);
    let llm_id = llm["artifact"]["id"].as_str().expect("id");
    auth(client.delete(format!("{base}/v2/llm-gateway/requests/{llm_id}")))
        .send()
        .await
        .expect("request");
    auth(client.get(format!("{base}/v2/transcript?limit=5")))
        .send()
        .await
        .expect("request");
    auth(client.delete(format!("{base}/v2/transcript/{}", ids[0])))
        .send()
        .await
        .expect("request");
    // Wrong credentials, and a bad body that echoes a secret in its parse error.
    client
        .get(format!("{base}/v2/transcript"))
        .header("authorization", "WRONG-KEY-PROMPT-TEXT-55d1")
        .send()
        .await
        .expect("request");
    auth(client.post(format!("{base}/v2/transcript")))
        .body("{\"audio_url\": \"PROMPT-TEXT-55d1")
        .send()
        .await
        .expect("request");
    client
        .post(format!("{base}/admin/v1/sweeps"))
        .bearer_auth(admin)
        .send()
        .await
        .expect("request");
    client
        .get(format!("{base}/metrics"))
        .send()
        .await
        .expect("request");

    // Stop it and read everything it printed.
    let pid = child.id().expect("pid");
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(20), child.wait()).await;
    let _ = child.kill().await;
    let printed = format!(
        "{}\n{}",
        stdout.await.expect("stdout"),
        stderr.await.expect("stderr")
    );
    assert!(
        printed.lines().count() > 100,
        "trace logging produced too little to prove anything:\n{printed}"
    );
    assert!(
        printed.contains("TRACE") || printed.contains("DEBUG"),
        "not at trace level"
    );
    // The log did see this workload: its ids (not secrets) are there.
    for id in &ids {
        assert!(
            printed.contains(id.as_str()),
            "transcript {id} never logged: the capture missed the workload"
        );
    }
    assert!(
        printed.contains("/v2/transcript"),
        "requests were not traced"
    );
    let mut leaks = Vec::new();
    for secret in SECRETS
        .iter()
        .copied()
        .chain([key.as_str(), admin, internal])
    {
        for line in printed.lines().filter(|l| l.contains(secret)) {
            leaks.push(format!("{secret}: {line}"));
        }
    }
    assert!(
        leaks.is_empty(),
        "secrets in the log:\n{}",
        leaks.join("\n")
    );
}
