//! The command line, run as a user runs it: the real binary on a fresh data dir.

use serde_json::Value;

fn lethe(dir: &std::path::Path, args: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_lethe"))
        .args(args)
        .env("LETHE_DATA_DIR", dir)
        .env_remove("LETHE_DATABASE_URL")
        .env_remove("LETHE_DYNAMODB_TABLE")
        .env_remove("LETHE_S3_BUCKET")
        .output()
        .expect("lethe runs")
}

fn json_of(output: &std::process::Output) -> Value {
    assert!(
        output.status.success(),
        "exit {:?}; stderr: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    })
}

#[test]
fn lethe_reconcile_reports_a_planted_orphan_object_and_repair_removes_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let created = lethe(dir.path(), &["account", "create", "--name", "acme"]);
    assert!(created.status.success());
    let account = String::from_utf8_lossy(&created.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("account_id: ").map(str::to_owned))
        .expect("account id printed");
    let id = uuid::Uuid::now_v7();
    let orphan = dir
        .path()
        .join("content")
        .join(&account)
        .join(id.to_string());
    std::fs::create_dir_all(&orphan).expect("mkdir");
    let orphan = orphan.join(id.to_string());
    std::fs::write(&orphan, b"LETHE1 bytes nobody tracks").expect("plant");

    let report = json_of(&lethe(dir.path(), &["reconcile", "--grace", "0s"]));
    assert_eq!(report["orphan_objects"], 1, "{report}");
    assert_eq!(report["repaired"], 0, "report only by default");
    assert!(orphan.exists());

    let repaired = json_of(&lethe(
        dir.path(),
        &["reconcile", "--repair", "--grace", "0s"],
    ));
    assert_eq!(repaired["orphan_objects"], 1, "{repaired}");
    assert_eq!(repaired["repaired"], 1, "{repaired}");
    assert!(!orphan.exists(), "the orphan object is gone");
}
