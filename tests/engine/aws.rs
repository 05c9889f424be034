//! The conformance suite against the AWS profile's backends, on real servers: PostgreSQL
//! (accounts, audit) and S3 on moto. `scripts/test` starts what these need; without it
//! they fail and say how to start it.

use lethe::domain::Content;
use lethe::storage::aws::{s3_client, RequestCounter};
use lethe::storage::conformance;
use lethe::storage::postgres::PostgresStore;
use lethe::storage::s3::S3ContentStore;
use lethe::storage::ContentStore;

/// A fresh database per test, so tests run in parallel without seeing each other.
pub async fn fresh_postgres() -> PostgresStore {
    let url = lethe::testing::fresh_postgres_database().await;
    PostgresStore::connect(&url)
        .await
        .expect("connect to the fresh database")
}

pub fn aws_endpoint() -> String {
    std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| {
        panic!("AWS_ENDPOINT_URL is not set: run the tests with scripts/test, which starts moto_server and sets it")
    })
}

pub async fn test_sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(aws_endpoint())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test",
            "test",
            None,
            None,
            "lethe-tests",
        ))
        .load()
        .await
}

/// A fresh bucket on moto.
pub async fn fresh_s3() -> (S3ContentStore, RequestCounter) {
    let config = test_sdk_config().await;
    let counter = RequestCounter::default();
    let bucket = format!("lethe-test-{}", uuid::Uuid::new_v4().simple());
    let store = S3ContentStore::new(s3_client(&config, &counter), bucket);
    store.provision().await.unwrap_or_else(|e| {
        panic!(
            "cannot create a bucket on moto at {}: {e:?}; run scripts/test",
            aws_endpoint()
        )
    });
    store.provision().await.expect("provisioning twice is fine");
    (store, counter)
}

#[tokio::test]
async fn postgres_account_store_conforms() {
    conformance::accounts(&fresh_postgres().await).await;
}

#[tokio::test]
async fn postgres_audit_log_conforms() {
    conformance::audit(&fresh_postgres().await).await;
}

#[tokio::test]
async fn postgres_usage_records_conform() {
    conformance::usage(&fresh_postgres().await).await;
}

#[tokio::test]
async fn s3_content_store_conforms() {
    let (store, _) = fresh_s3().await;
    conformance::content(&store).await;
}

#[tokio::test]
async fn s3_streams_large_bodies_in_parts_and_deletes_in_batches_of_1000() {
    use futures::stream;
    use lethe::storage::ContentStore;
    let (store, counter) = fresh_s3().await;
    // 20 MiB in 64 KiB chunks: three parts.
    let chunks = stream::iter((0..320).map(|_| Ok(bytes::Bytes::from(vec![3u8; 64 * 1024]))));
    let before = counter.get();
    assert_eq!(
        store
            .put_stream("big/audio", Box::pin(chunks))
            .await
            .expect("multipart"),
        20 << 20
    );
    assert_eq!(counter.get() - before, 5, "create + 3 parts + complete");
    assert_eq!(
        store
            .get("big/audio")
            .await
            .expect("get")
            .expect("present")
            .len(),
        20 << 20
    );

    let keys: Vec<String> = (0..1500).map(|i| format!("many/{i}")).collect();
    for key in keys.iter().take(10) {
        store
            .put(key, lethe::domain::Content::new("x"))
            .await
            .expect("put");
    }
    // Once per process, the store learns whether the bucket keeps versions.
    assert!(!store.is_versioned().await.expect("probe"));
    let before = counter.get();
    let results = store.delete_many(&keys).await;
    assert_eq!(
        counter.get() - before,
        2,
        "1500 keys in two DeleteObjects requests"
    );
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(store.get("many/3").await.expect("get"), None);
}

#[tokio::test]
async fn s6_encryption_every_s3_object_is_encrypted_server_side_with_aes256() {
    use futures::stream;
    use lethe::storage::ContentStore;
    let config = test_sdk_config().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = format!("lethe-test-{}", uuid::Uuid::new_v4().simple());
    let store = S3ContentStore::new(
        s3_client(&config, &RequestCounter::default()),
        bucket.clone(),
    );
    store.provision().await.expect("bucket");
    store
        .put("small", lethe::domain::Content::new("x"))
        .await
        .expect("put");
    let chunks = stream::iter((0..160).map(|_| Ok(bytes::Bytes::from(vec![1u8; 64 * 1024]))));
    store
        .put_stream("large", Box::pin(chunks))
        .await
        .expect("multipart");
    for key in ["small", "large"] {
        let head = client
            .head_object()
            .bucket(&bucket)
            .key(key)
            .send()
            .await
            .expect("head");
        assert_eq!(
            head.server_side_encryption(),
            Some(&aws_sdk_s3::types::ServerSideEncryption::Aes256),
            "{key}"
        );
    }
}

async fn fresh_dynamodb() -> lethe::storage::dynamodb::DynamoIndex {
    fresh_counted_dynamodb().await.0
}

async fn fresh_counted_dynamodb() -> (lethe::storage::dynamodb::DynamoIndex, RequestCounter) {
    let config = test_sdk_config().await;
    let counter = RequestCounter::default();
    let client = lethe::storage::aws::dynamodb_client(&config, &counter);
    let index = lethe::storage::dynamodb::DynamoIndex::new(
        client,
        format!("lethe-test-{}", uuid::Uuid::new_v4().simple()),
    );
    index
        .provision(conformance::t0())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot create a table on moto at {}: {e:?}; run scripts/test",
                aws_endpoint()
            )
        });
    index
        .provision(conformance::t0())
        .await
        .expect("provisioning twice is fine");
    (index, counter)
}

/// Puts an artifact due at `due` (with its account) into the index.
async fn put_due(
    index: &lethe::storage::dynamodb::DynamoIndex,
    due: chrono::DateTime<chrono::Utc>,
) -> lethe::domain::ArtifactId {
    use lethe::storage::ArtifactIndex;
    let account = conformance::sample_account(conformance::t0());
    let artifact = conformance::due_artifact(&account, None, due);
    index.insert_artifact(&artifact).await.expect("insert");
    artifact.id
}

#[tokio::test]
async fn a_pass_ten_years_after_the_last_reads_only_the_days_that_hold_entries() {
    use chrono::Duration;
    use lethe::storage::ArtifactIndex;
    let (index, counter) = fresh_counted_dynamodb().await;
    let t0 = conformance::t0();
    let soon = put_due(&index, t0 + Duration::days(2)).await;
    let late = put_due(&index, t0 + Duration::days(3000)).await;
    let later = t0 + Duration::days(3650);
    let before = counter.get();
    let due: Vec<_> = index
        .due(later, 100)
        .await
        .expect("due")
        .iter()
        .map(|a| a.id)
        .collect();
    let requests = counter.get() - before;
    assert_eq!(due, vec![soon, late], "both, earliest first");
    // Two non-empty days × 4 shards, the watermark and the directory (read, moved,
    // pruned): a day-by-day walk would take 3,650 × 4 queries.
    assert!(
        requests <= 20,
        "{requests} DynamoDB requests for one pass after ten years"
    );
    assert_eq!(
        index.next_due(later).await.expect("next due"),
        Some(t0 + Duration::days(2)),
        "the earliest is still due until it is deleted"
    );
}

#[tokio::test]
async fn provision_builds_the_due_day_directory_of_a_table_that_predates_it() {
    use chrono::Duration;
    use lethe::storage::ArtifactIndex;
    let (index, _) = fresh_counted_dynamodb().await;
    let t0 = conformance::t0();
    let early = put_due(&index, t0 + Duration::days(5)).await;
    let far = put_due(&index, t0 + Duration::days(400)).await;
    // A table provisioned before the directory existed: no directory item at all.
    let config = test_sdk_config().await;
    let client = lethe::storage::aws::dynamodb_client(&config, &RequestCounter::default());
    client
        .delete_item()
        .table_name(index.table())
        .key(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("META".into()),
        )
        .key(
            "sk",
            aws_sdk_dynamodb::types::AttributeValue::S("DUE_DAYS".into()),
        )
        .send()
        .await
        .expect("drop the directory");
    // Without a directory a pass reads day by day and still finds everything.
    let at = t0 + Duration::days(10);
    let ids = |v: Vec<lethe::domain::Artifact>| v.iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(index.due(at, 100).await.expect("due")), vec![early]);
    index
        .provision(at)
        .await
        .expect("provision builds the directory");
    assert_eq!(
        ids(index
            .due(t0 + Duration::days(4000), 100)
            .await
            .expect("due")),
        vec![early, far],
        "the rebuilt directory holds the days of entries written before it existed"
    );
}

#[tokio::test]
async fn dynamodb_transcript_index_conforms() {
    conformance::transcripts(&fresh_dynamodb().await).await;
}

#[tokio::test]
async fn dynamodb_transcript_with_account_conforms() {
    conformance::transcript_and_account(&fresh_dynamodb().await, &fresh_postgres().await).await;
}

#[tokio::test]
async fn dynamodb_artifact_index_conforms() {
    conformance::artifacts(&fresh_dynamodb().await).await;
}

#[tokio::test]
async fn provision_adds_an_index_an_older_table_lacks() {
    let index = fresh_dynamodb().await;
    let config = test_sdk_config().await;
    let client = lethe::storage::aws::dynamodb_client(&config, &RequestCounter::default());
    let table = index.table().to_owned();
    client
        .update_table()
        .table_name(&table)
        .global_secondary_index_updates(
            aws_sdk_dynamodb::types::GlobalSecondaryIndexUpdate::builder()
                .delete(
                    aws_sdk_dynamodb::types::DeleteGlobalSecondaryIndexAction::builder()
                        .index_name("train")
                        .build()
                        .expect("action"),
                )
                .build(),
        )
        .send()
        .await
        .expect("drop the index, as a table made before it existed");
    let names = |client: aws_sdk_dynamodb::Client, table: String| async move {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .expect("describe");
        let mut names: Vec<String> = described
            .table()
            .expect("table")
            .global_secondary_indexes()
            .iter()
            .filter_map(|i| i.index_name().map(str::to_owned))
            .collect();
        names.sort();
        names
    };
    assert!(!names(client.clone(), table.clone())
        .await
        .contains(&"train".to_owned()));
    index
        .provision(conformance::t0())
        .await
        .expect("provision upgrades the table");
    let mut expected: Vec<String> = lethe::storage::dynamodb::INDEXES
        .iter()
        .map(|(name, _, _)| (*name).to_owned())
        .collect();
    expected.sort();
    assert_eq!(names(client, table).await, expected);
    conformance::training_eligible(&index).await;
}

#[tokio::test]
async fn dynamodb_training_index_conforms() {
    conformance::training_eligible(&fresh_dynamodb().await).await;
}

#[test]
fn the_localstack_init_hook_creates_the_indexes_lethe_provision_creates() {
    let hook = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/localstack/init/ready.d/10-lethe.sh"
    ))
    .expect("hook");
    for (name, hash, range) in lethe::storage::dynamodb::INDEXES {
        assert!(
            hook.contains(&format!("$(index {name} {hash} {range})")),
            "the hook lacks index {name}"
        );
        assert!(
            hook.contains(&format!(" {hash} {range}")),
            "the hook lacks attributes {hash} {range}"
        );
    }
    let created = hook.matches("$(index ").count();
    assert_eq!(
        created,
        lethe::storage::dynamodb::INDEXES.len(),
        "the hook creates an index the code does not know"
    );
    assert!(hook.contains(&format!(
        "AttributeName={}",
        lethe::storage::dynamodb::TTL_ATTRIBUTE
    )));
}

#[tokio::test]
async fn deleting_from_a_versioned_bucket_removes_every_version_not_only_adds_a_marker() {
    let (store, _) = fresh_s3().await;
    let config = test_sdk_config().await;
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config)
            .force_path_style(true)
            .build(),
    );
    let bucket = store.bucket().to_owned();
    client
        .put_bucket_versioning()
        .bucket(&bucket)
        .versioning_configuration(
            aws_sdk_s3::types::VersioningConfiguration::builder()
                .status(aws_sdk_s3::types::BucketVersioningStatus::Enabled)
                .build(),
        )
        .send()
        .await
        .expect("enable versioning");
    let keys: Vec<String> = (0..3)
        .map(|i| format!("acct/scope/{}", uuid::Uuid::new_v4()) + &i.to_string())
        .collect();
    for key in &keys {
        // Two versions of each object.
        store.put(key, Content::new("v1")).await.expect("put");
        store.put(key, Content::new("v2")).await.expect("put");
    }
    store.delete(&keys[0]).await.expect("delete one");
    for result in store.delete_many(&keys[1..]).await {
        result.expect("delete many");
    }
    let versions = client
        .list_object_versions()
        .bucket(&bucket)
        .send()
        .await
        .expect("list versions");
    assert!(
        versions.versions().is_empty() && versions.delete_markers().is_empty(),
        "versions {:?} markers {:?}",
        versions.versions().len(),
        versions.delete_markers().len()
    );
}
