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
/// Multipart part size: S3's minimum is 5 MiB for every part but the last.
const PART_SIZE: usize = 8 << 20;
/// `DeleteObjects` takes at most 1000 keys.
const DELETE_BATCH: usize = 1000;
const DELETE_ATTEMPTS: u32 = 4;

#[derive(Clone, Debug)]
pub struct S3ContentStore {
    client: aws_sdk_s3::Client,
    bucket: String,
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
        Ok(())
    }

    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
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
