//! Content in S3: every object is written with server-side encryption (AES256); large
//! bodies stream through a multipart upload (8 MiB parts, never the whole body in
//! memory); deletions go through `DeleteObjects`, 1000 keys a request, with per-key errors
//! retried with backoff and reported per key.

use async_trait::async_trait;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream as S3Body;
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier, ServerSideEncryption,
};
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use std::time::Duration;

use super::{ByteStream, ContentStore, Result, StorageError};
use crate::domain::Content;

const BACKEND: &str = "s3";
/// GETs in flight at once for a batch read (a page of list items).
const GET_MANY_CONCURRENCY: usize = 16;
/// Multipart part size: S3's minimum is 5 MiB for every part but the last.
const PART_SIZE: usize = 8 << 20;
/// `DeleteObjects` takes at most 1000 keys.
const DELETE_BATCH: usize = 1000;
const DELETE_ATTEMPTS: u32 = 4;

#[derive(Clone, Debug)]
pub struct S3ContentStore {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Whether the bucket keeps versions (read once): on a versioned bucket a plain
    /// delete only adds a delete marker, so every version is deleted by id.
    versioned: std::sync::Arc<tokio::sync::OnceCell<bool>>,
}

fn sdk_error<E, R>(error: SdkError<E, R>) -> StorageError
where
    E: std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    super::aws::sdk_error(BACKEND, error)
}

impl S3ContentStore {
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self {
            client,
            bucket: bucket.into(),
            versioned: Default::default(),
        }
    }

    /// The bucket's name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// Whether the bucket keeps versions (versioning enabled now or once): a probe object
    /// is written and its version id read back — `null` on a bucket that never had
    /// versioning — then removed. Read once per process. (`GetBucketVersioning` would do,
    /// but emulators answer it with a body the SDK cannot parse.)
    pub async fn is_versioned(&self) -> Result<bool> {
        self.versioned
            .get_or_try_init(|| async {
                let probe = format!(".engine-versioning-probe/{}", uuid::Uuid::new_v4());
                self.put_bytes(&probe, Bytes::from_static(b"probe")).await?;
                let out = self
                    .client
                    .list_object_versions()
                    .bucket(&self.bucket)
                    .prefix(&probe)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                let versioned = out
                    .versions()
                    .iter()
                    .any(|v| v.version_id().is_some_and(|id| id != "null"));
                self.client
                    .delete_object()
                    .bucket(&self.bucket)
                    .key(&probe)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                if versioned {
                    tracing::info!(bucket = %self.bucket, "the bucket keeps versions: deletions remove every version");
                    self.purge_versions(&probe).await?;
                }
                Ok(versioned)
            })
            .await
            .copied()
    }

    /// Deletes every version and delete marker of `key` (a versioned bucket).
    async fn purge_versions(&self, key: &str) -> Result<()> {
        let mut key_marker: Option<String> = None;
        let mut version_marker: Option<String> = None;
        loop {
            let out = self
                .client
                .list_object_versions()
                .bucket(&self.bucket)
                .prefix(key)
                .set_key_marker(key_marker.take())
                .set_version_id_marker(version_marker.take())
                .send()
                .await
                .map_err(sdk_error)?;
            let versions = out
                .versions()
                .iter()
                .filter(|v| v.key() == Some(key))
                .filter_map(|v| v.version_id());
            let markers = out
                .delete_markers()
                .iter()
                .filter(|m| m.key() == Some(key))
                .filter_map(|m| m.version_id());
            let objects: Vec<ObjectIdentifier> = versions
                .chain(markers)
                .filter_map(|id| {
                    ObjectIdentifier::builder()
                        .key(key)
                        .version_id(id)
                        .build()
                        .ok()
                })
                .collect();
            for batch in objects.chunks(DELETE_BATCH) {
                let delete = Delete::builder()
                    .set_objects(Some(batch.to_vec()))
                    .quiet(true)
                    .build()
                    .map_err(|e| StorageError::Other {
                        backend: BACKEND,
                        source: Box::new(e),
                    })?;
                let done = self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                    .map_err(sdk_error)?;
                if let Some(error) = done.errors().first() {
                    return Err(StorageError::Other {
                        backend: BACKEND,
                        source: format!(
                            "DeleteObjects of a version failed: {}",
                            error.code().unwrap_or("unknown")
                        )
                        .into(),
                    });
                }
            }
            if out.is_truncated() == Some(true) {
                key_marker = out.next_key_marker().map(str::to_owned);
                version_marker = out.next_version_id_marker().map(str::to_owned);
            } else {
                return Ok(());
            }
        }
    }

    /// Creates the bucket if it does not exist (idempotent), with default encryption.
    pub async fn provision(&self) -> Result<()> {
        match self.client.head_bucket().bucket(&self.bucket).send().await {
            Ok(_) => return Ok(()),
            Err(SdkError::ServiceError(_)) => {}
            Err(e) => return Err(sdk_error(e)),
        }
        let mut create = self.client.create_bucket().bucket(&self.bucket);
        if let Some(region) = self
            .client
            .config()
            .region()
            .map(|r| r.to_string())
            .filter(|r| r != "us-east-1")
        {
            create = create.create_bucket_configuration(
                aws_sdk_s3::types::CreateBucketConfiguration::builder()
                    .location_constraint(aws_sdk_s3::types::BucketLocationConstraint::from(
                        region.as_str(),
                    ))
                    .build(),
            );
        }
        match create.send().await {
            Ok(_) => Ok(()),
            Err(SdkError::ServiceError(e))
                if e.err().is_bucket_already_owned_by_you()
                    || e.err().is_bucket_already_exists() =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn put_bytes(&self, key: &str, bytes: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .body(S3Body::from(bytes))
            .send()
            .await
            .map_err(sdk_error)?;
        Ok(())
    }

    async fn multipart(&self, key: &str, first: Bytes, mut stream: ByteStream) -> Result<u64> {
        let upload = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(sdk_error)?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        let result = async {
            let mut parts = Vec::new();
            let mut size = 0u64;
            let mut buffer = BytesMut::from(&first[..]);
            let mut done = false;
            while !done {
                while buffer.len() < PART_SIZE {
                    match stream.next().await {
                        Some(chunk) => {
                            buffer.extend_from_slice(&chunk.map_err(|e| StorageError::Other {
                                backend: BACKEND,
                                source: Box::new(e),
                            })?)
                        }
                        None => {
                            done = true;
                            break;
                        }
                    }
                }
                if buffer.is_empty() {
                    break;
                }
                let part = buffer.split_to(buffer.len().min(PART_SIZE)).freeze();
                size += part.len() as u64;
                let number = parts.len() as i32 + 1;
                let sent = self
                    .client
                    .upload_part()
                    .bucket(&self.bucket)
                    .key(key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(S3Body::from(part))
                    .send()
                    .await
                    .map_err(sdk_error)?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(sent.e_tag().map(str::to_owned))
                        .build(),
                );
                if done && !buffer.is_empty() {
                    done = false;
                }
            }
            self.client
                .complete_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(sdk_error)?;
            Ok(size)
        }
        .await;
        if result.is_err() {
            // Nothing may remain of a failed upload.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

#[async_trait]
impl ContentStore for S3ContentStore {
    async fn put(&self, key: &str, content: Content) -> Result<u64> {
        let len = content.len() as u64;
        self.put_bytes(key, content.into_bytes()).await?;
        Ok(len)
    }

    async fn put_stream(&self, key: &str, mut stream: ByteStream) -> Result<u64> {
        // Small bodies go in one request; from one part's size on, multipart.
        let mut head = BytesMut::new();
        while head.len() < PART_SIZE {
            match stream.next().await {
                Some(chunk) => head.extend_from_slice(&chunk.map_err(|e| StorageError::Other {
                    backend: BACKEND,
                    source: Box::new(e),
                })?),
                None => {
                    let len = head.len() as u64;
                    self.put_bytes(key, head.freeze()).await?;
                    return Ok(len);
                }
            }
        }
        self.multipart(key, head.freeze(), stream).await
    }

    /// S3 has no batch GET: the objects are fetched concurrently, a few at a time.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Content>>> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_MANY_CONCURRENCY) {
            found.extend(
                futures::future::try_join_all(chunk.iter().map(|key| self.get(key))).await?,
            );
        }
        Ok(found)
    }

    async fn get(&self, key: &str) -> Result<Option<Content>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                let bytes = object
                    .body
                    .collect()
                    .await
                    .map_err(|e| StorageError::Other {
                        backend: BACKEND,
                        source: Box::new(e),
                    })?;
                Ok(Some(Content::new(bytes.into_bytes())))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        match self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
        {
            Ok(object) => {
                let reader = object.body.into_async_read();
                Ok(Some(Box::pin(tokio_util::io::ReaderStream::new(reader))))
            }
            Err(SdkError::ServiceError(e)) if e.err().is_no_such_key() => Ok(None),
            Err(e) => Err(sdk_error(e)),
        }
    }

    async fn delete(&self, key: &str) -> Result<()> {
        // S3 answers 204 for a missing key too.
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(sdk_error)?;
        if self.is_versioned().await? {
            self.purge_versions(key).await?;
        }
        Ok(())
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::ObjectInfo>> {
        let mut found = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_start_after(after.map(str::to_owned))
                .set_continuation_token(token.take())
                .max_keys((limit as usize - found.len()).clamp(1, 1000) as i32)
                .send()
                .await
                .map_err(sdk_error)?;
            for object in out.contents() {
                let Some(key) = object.key() else { continue };
                let modified = object
                    .last_modified()
                    .and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
                    .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
                found.push(super::ObjectInfo {
                    key: key.to_owned(),
                    size: object.size().unwrap_or(0).max(0) as u64,
                    modified,
                });
            }
            match out.next_continuation_token() {
                Some(next) if found.len() < limit as usize => token = Some(next.to_owned()),
                _ => {
                    found.truncate(limit as usize);
                    return Ok(found);
                }
            }
        }
    }

    /// Deletes in batches; on a versioned bucket, each deleted key's versions too.
    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
        let mut results = self.delete_current(keys).await;
        let versioned = match self.is_versioned().await {
            Ok(v) => v,
            Err(e) => {
                let message = e.to_string();
                return keys
                    .iter()
                    .map(|_| {
                        Err(StorageError::Unavailable {
                            backend: BACKEND,
                            source: message.clone().into(),
                        })
                    })
                    .collect();
            }
        };
        if versioned {
            for (key, result) in keys.iter().zip(results.iter_mut()) {
                if result.is_ok() {
                    *result = self.purge_versions(key).await;
                }
            }
        }
        results
    }
}

impl S3ContentStore {
    /// `DeleteObjects` by key, 1000 a request, with per-key retries.
    async fn delete_current(&self, keys: &[String]) -> Vec<Result<()>> {
        let mut results: Vec<Option<Result<()>>> = (0..keys.len()).map(|_| None).collect();
        for (chunk_index, chunk) in keys.chunks(DELETE_BATCH).enumerate() {
            let offset = chunk_index * DELETE_BATCH;
            let mut pending: Vec<usize> = (0..chunk.len()).collect();
            for attempt in 0..DELETE_ATTEMPTS {
                if attempt > 0 {
                    tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
                }
                let objects: Vec<ObjectIdentifier> = pending
                    .iter()
                    .filter_map(|&i| ObjectIdentifier::builder().key(&chunk[i]).build().ok())
                    .collect();
                let delete = match Delete::builder()
                    .set_objects(Some(objects))
                    .quiet(true)
                    .build()
                {
                    Ok(delete) => delete,
                    Err(e) => {
                        let message = e.to_string();
                        for &i in &pending {
                            results[offset + i] = Some(Err(StorageError::Other {
                                backend: BACKEND,
                                source: message.clone().into(),
                            }));
                        }
                        pending.clear();
                        break;
                    }
                };
                match self
                    .client
                    .delete_objects()
                    .bucket(&self.bucket)
                    .delete(delete)
                    .send()
                    .await
                {
                    Ok(output) => {
                        let failed: Vec<(String, String)> = output
                            .errors()
                            .iter()
                            .map(|e| {
                                (
                                    e.key().unwrap_or_default().to_owned(),
                                    e.code().unwrap_or("unknown").to_owned(),
                                )
                            })
                            .collect();
                        let mut still = Vec::new();
                        for &i in &pending {
                            match failed.iter().find(|(key, _)| *key == chunk[i]) {
                                Some((_, code)) => {
                                    tracing::warn!(
                                        code,
                                        attempt,
                                        "s3 delete of one key failed; retrying"
                                    );
                                    results[offset + i] = Some(Err(StorageError::Other {
                                        backend: BACKEND,
                                        source: format!("DeleteObjects error {code}").into(),
                                    }));
                                    still.push(i);
                                }
                                None => results[offset + i] = Some(Ok(())),
                            }
                        }
                        pending = still;
                    }
                    Err(e) => {
                        let error = sdk_error(e);
                        tracing::warn!(error = %error, attempt, "s3 DeleteObjects failed; retrying");
                        let message = error.to_string();
                        for &i in &pending {
                            results[offset + i] = Some(Err(StorageError::Unavailable {
                                backend: BACKEND,
                                source: message.clone().into(),
                            }));
                        }
                    }
                }
                if pending.is_empty() {
                    break;
                }
            }
        }
        results
            .into_iter()
            .map(|r| {
                r.unwrap_or_else(|| {
                    Err(StorageError::Other {
                        backend: BACKEND,
                        source: "not attempted".into(),
                    })
                })
            })
            .collect()
    }
}
