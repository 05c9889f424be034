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
