//! Uploads (`POST /v2/upload`): streamed into the content store as `uploaded_audio`, read
//! back by the pipeline while they may be served.

use super::*;
use crate::domain::{new_id, Account, Artifact, ArtifactId, ArtifactKind, Content};
use crate::storage::{ByteStream, StorageError};

/// Reading an upload through the internal API.
#[derive(Debug)]
pub enum UploadRead {
    Live(Content),
    Deleted,
}

impl Engine {
    /// `POST /v2/upload`: streams the bytes into the content store as `uploaded_audio`.
    pub async fn upload(&self, account: &Account, body: ByteStream) -> Result<Artifact> {
        Self::ensure_may_store(account)?;
        let now = self.now();
        let artifact =
            Artifact::new_live(new_id(now), account, None, ArtifactKind::UploadedAudio, now);
        let artifact = self.scheduled(artifact, account, Some(now));
        let artifact = self.store_artifact_stream(artifact, body).await?;
        tracing::info!(artifact_id = %artifact.id, size = artifact.size_bytes, "upload stored");
        Ok(artifact)
    }

    /// An upload's bytes for the pipeline, streamed: `Deleted` from `delete_after` on (§4).
    pub async fn read_upload_stream(&self, id: ArtifactId) -> Result<Option<ByteStream>> {
        let artifact = self
            .backends
            .index
            .artifact(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        if artifact.kind != ArtifactKind::UploadedAudio {
            return Err(EngineError::NotFound);
        }
        let account = self.account(artifact.account_id).await?;
        if !self.is_servable(&artifact, None, &account) {
            return Ok(None);
        }
        Ok(self
            .backends
            .content
            .get_stream(&artifact.content_key)
            .await?)
    }

    /// An upload's bytes for the pipeline, whole: `Deleted` from `delete_after` on (§4).
    /// The same checks as [`Engine::read_upload_stream`], which it reads through.
    pub async fn read_upload(&self, id: ArtifactId) -> Result<UploadRead> {
        let Some(mut stream) = self.read_upload_stream(id).await? else {
            return Ok(UploadRead::Deleted);
        };
        let mut bytes = bytes::BytesMut::new();
        while let Some(chunk) = futures::StreamExt::next(&mut stream).await {
            let chunk = chunk.map_err(|e| StorageError::Other {
                backend: "content",
                source: Box::new(e),
            })?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(UploadRead::Live(Content::new(bytes.freeze())))
    }
}
