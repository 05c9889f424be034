//! The official AssemblyAI Python SDK, unchanged, against a running Lethe.

use crate::helpers::*;
use std::path::PathBuf;

/// The venv `scripts/test` creates, or `LETHE_TEST_PYTHON`.
fn python() -> PathBuf {
    match std::env::var_os("LETHE_TEST_PYTHON") {
        Some(path) => PathBuf::from(path),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.venv/bin/python")),
    }
}

#[tokio::test]
async fn the_official_assemblyai_python_sdk_creates_completes_lists_fetches_and_deletes_unchanged()
{
    let python = python();
    let has_sdk = std::process::Command::new(&python)
        .args(["-c", "import assemblyai, httpx"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        has_sdk,
        "the AssemblyAI SDK is not installed at {}: run scripts/test (it creates .venv and installs it), \
         or set LETHE_TEST_PYTHON to a python that has `assemblyai`",
        python.display()
    );
    let app = spawn_app().await;
    let key = app.account().await;
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/sdk/assemblyai_roundtrip.py"
    );
    let output = tokio::process::Command::new(&python)
        .args([script, &app.base, &key, INTERNAL])
        .output()
        .await
        .expect("python runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK roundtrip failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(stdout.contains("assemblyai sdk roundtrip ok"), "{stdout}");
}

/// `tests/sdk/js` with its `node_modules` (`scripts/test` runs `npm ci` there).
fn js_sdk_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sdk/js"))
}

#[tokio::test]
async fn the_official_assemblyai_javascript_sdk_lists_gets_and_deletes_unchanged() {
    let dir = js_sdk_dir();
    assert!(
        dir.join("node_modules/assemblyai/package.json").exists(),
        "the AssemblyAI JavaScript SDK is not installed in {}: run scripts/test (it runs `npm ci` there), \
         or `npm ci --prefix tests/sdk/js`",
        dir.display()
    );
    let app = spawn_app().await;
    let key = app.account().await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let t = app
            .create_transcript(
                &key,
                serde_json::json!({"audio_url": "https://example.com/js.mp3"}),
            )
            .await;
        let id = t["id"].as_str().expect("id").to_owned();
        let response = app
            .internal(
                reqwest::Method::POST,
                &format!("/internal/v1/transcripts/{id}/processing"),
            )
            .send()
            .await
            .expect("request");
        expect_json(response, reqwest::StatusCode::OK).await;
        let response = app
            .internal(
                reqwest::Method::POST,
                &format!("/internal/v1/transcripts/{id}/complete"),
            )
            .json(&serde_json::json!({"text": "hello from javascript", "audio_duration": 2}))
            .send()
            .await
            .expect("request");
        expect_json(response, reqwest::StatusCode::OK).await;
        ids.push(id);
        app.advance(chrono::Duration::seconds(1));
    }
    let output = tokio::process::Command::new("node")
        .arg(dir.join("roundtrip.mjs"))
        .arg(&app.base)
        .arg(&key)
        .args(&ids)
        .current_dir(&dir)
        .output()
        .await
        .expect("node runs (Node.js 18+ is needed)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "JS SDK roundtrip failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    assert!(
        stdout.contains("assemblyai js sdk roundtrip ok"),
        "{stdout}"
    );
}
