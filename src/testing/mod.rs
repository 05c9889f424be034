//! Test support shared by the test binaries: which profile the suite runs on, and a
//! fresh, provisioned AWS profile per test (a PostgreSQL database, a DynamoDB table and
//! an S3 bucket on the emulator `scripts/test` starts). Missing services fail the test
//! with a sentence saying how to start them; nothing is skipped.

pub mod faults;

use crate::config::Config;

/// Whether the behavioural suites run on the AWS profile (`LETHE_TEST_PROFILE=aws`).
pub fn aws_profile() -> bool {
    std::env::var("LETHE_TEST_PROFILE").is_ok_and(|p| p == "aws")
}

pub fn postgres_url() -> String {
    std::env::var("LETHE_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_owned())
}

/// Creates an empty database and returns its URL.
pub async fn fresh_postgres_database() -> String {
    let base = postgres_url();
    let admin = sqlx::PgPool::connect(&base).await.unwrap_or_else(|e| {
        panic!(
            "PostgreSQL is not reachable at {base} ({e}); start it with \
             `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`, or run scripts/test"
        )
    });
    let name = format!("lethe_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&admin)
        .await
        .unwrap_or_else(|e| panic!("cannot create a test database on {base}: {e}"));
    admin.close().await;
    let mut url = url::Url::parse(&base)
        .unwrap_or_else(|e| panic!("LETHE_TEST_POSTGRES_URL is not a URL: {e}"));
    url.set_path(&name);
    url.to_string()
}

/// Points `config` at a fresh AWS profile when the suite runs on it, and provisions it as
/// of `now` (the test's clock: the due index's watermark starts on that day).
pub async fn apply_profile(config: &mut Config, now: chrono::DateTime<chrono::Utc>) {
    if !aws_profile() {
        return;
    }
    if std::env::var_os("AWS_ENDPOINT_URL").is_none() {
        panic!("LETHE_TEST_PROFILE=aws needs AWS_ENDPOINT_URL (moto or LocalStack): run the tests with scripts/test, which starts moto_server");
    }
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    config.database_url = Some(fresh_postgres_database().await);
    config.dynamodb_table = Some(format!("lethe-test-{suffix}"));
    config.s3_bucket = Some(format!("lethe-test-{suffix}"));
    crate::startup::provision(config, now)
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot provision the AWS profile on {:?}: {e:#}",
                std::env::var("AWS_ENDPOINT_URL")
            )
        });
}
