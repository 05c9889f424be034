//! The deletion log as customers and auditors see it: every tombstone is a leaf of an
//! append-only Merkle log (appended by the audit log in the transaction that records it);
//! here the engine signs checkpoints over it and builds receipts and consistency proofs.
//! The leaf hashes are cached in memory and only ever extended, since the log is
//! append-only; instances sharing a database each read the new leaves when they need them.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use serde::Serialize;

use super::*;
use crate::domain::{ArtifactId, TranscriptId};
use crate::receipts::{merkle, Checkpoint, Hash, LeafTombstone, Receipt, SigningKey};

/// Leaves read from the audit log per query when the cache catches up.
const LEAF_PAGE: u32 = 10_000;

/// The deletion log's signer: its name (the checkpoint's origin line and the key's name in
/// the signed note) and its Ed25519 key.
#[derive(Clone)]
pub struct LogSigner {
    pub name: String,
    pub key: SigningKey,
}

impl std::fmt::Debug for LogSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogSigner")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

/// The log's leaf hashes read so far, in order, and the last tree head computed (by
/// size: the head of the first n leaves never changes), so serving the current
/// checkpoint again costs no hashing.
#[derive(Debug, Default)]
pub(super) struct LeafCache(
    tokio::sync::Mutex<Vec<Hash>>,
    std::sync::Mutex<Option<(usize, Hash)>>,
);

/// A proof that the log at `new_size` extends the log at `old_size` (RFC 6962 §2.1.2),
/// with the signed checkpoint at `new_size`.
#[derive(Clone, Debug, Serialize, utoipa::ToSchema)]
pub struct ConsistencyProof {
    pub old_size: u64,
    pub new_size: u64,
    /// The tree head at `old_size`, standard base64.
    pub old_root: String,
    /// The tree head at `new_size`, standard base64.
    pub new_root: String,
    /// The consistency proof's hashes, standard base64.
    pub proof: Vec<String>,
    /// The checkpoint at `new_size`, as a C2SP signed note.
    pub checkpoint: String,
}

impl Engine {
    /// The deletion log's verifying key as a PEM `PUBLIC KEY`.
    pub fn log_public_key_pem(&self) -> String {
        crate::receipts::public_key_pem(&self.signer.key.verifying_key())
    }

    /// The log's name: the origin line of its checkpoints and its key's name.
    pub fn log_name(&self) -> &str {
        &self.signer.name
    }

    /// Runs `f` over every leaf of the log as it is now.
    async fn with_leaves<T>(&self, f: impl FnOnce(&[Hash]) -> T) -> Result<T> {
        let mut leaves = self.leaves.0.lock().await;
        loop {
            let page = self
                .backends
                .audit
                .log_leaves(leaves.len() as u64, LEAF_PAGE)
                .await?;
            let done = page.len() < LEAF_PAGE as usize;
            leaves.extend(page);
            if done {
                break;
            }
        }
        Ok(f(&leaves))
    }

    fn sign(&self, leaves: &[Hash]) -> (Checkpoint, String) {
        let cached = *self.leaves.1.lock().unwrap_or_else(|p| p.into_inner());
        let root = match cached {
            Some((size, root)) if size == leaves.len() => root,
            _ => {
                let root = merkle::root(leaves);
                *self.leaves.1.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((leaves.len(), root));
                root
            }
        };
        let checkpoint = Checkpoint {
            origin: self.signer.name.clone(),
            size: leaves.len() as u64,
            root,
        };
        let note = checkpoint.sign(&self.signer.key, &self.signer.name);
        (checkpoint, note)
    }

    /// The log's current checkpoint, signed.
    pub async fn log_checkpoint(&self) -> Result<String> {
        self.with_leaves(|leaves| self.sign(leaves).1).await
    }

    /// The receipt of a transcript's deletion: each deleted artifact of the transcript
    /// with its tombstone and inclusion proof in a checkpoint signed now. (An upload is
    /// recorded without a transcript — several may share it — so its deletion is not part
    /// of a transcript's receipt; its tombstone is in the retention view.) Another account's transcript is not found; one with nothing deleted yet is
    /// [`EngineError::NothingDeleted`].
    pub async fn receipt(&self, account: &Account, id: TranscriptId) -> Result<Receipt> {
        self.transcript(account, id).await?;
        let ids: Vec<ArtifactId> = self
            .backends
            .index
            .artifacts_for_transcript(id)
            .await?
            .iter()
            .map(|a| a.id)
            .collect();
        let mut logged = self.backends.audit.logged_tombstones(&ids).await?;
        logged.retain(|(_, t)| t.transcript_id == Some(id));
        if logged.is_empty() {
            return Err(EngineError::NothingDeleted);
        }
        let entries: Vec<(LeafTombstone, u64)> = logged
            .iter()
            .map(|(index, t)| (LeafTombstone::from(t), *index))
            .collect();
        self.with_leaves(|leaves| {
            let (_, note) = self.sign(leaves);
            Receipt::build(
                id,
                &self.signer.name,
                &self.signer.name,
                leaves,
                entries,
                note,
            )
        })
        .await?
        .map_err(|e| {
            EngineError::Storage(crate::storage::codec::corrupt(
                "deletion log",
                format!("the log does not hold this transcript's tombstones as recorded: {e}"),
            ))
        })
    }

    /// A consistency proof from the log at `old_size` to the log at `new_size` (the
    /// current size when absent), with the signed checkpoint at `new_size`.
    pub async fn log_consistency(
        &self,
        old_size: u64,
        new_size: Option<u64>,
    ) -> Result<ConsistencyProof> {
        self.with_leaves(|leaves| {
            let size = leaves.len() as u64;
            let new_size = new_size.unwrap_or(size);
            if old_size == 0 || old_size > new_size || new_size > size {
                return Err(EngineError::Invalid(format!(
                    "need 1 <= from <= to <= {size} (the log's size); got from={old_size}, to={new_size}"
                )));
            }
            let (old, new) = (&leaves[..old_size as usize], &leaves[..new_size as usize]);
            let (checkpoint, note) = self.sign(new);
            Ok(ConsistencyProof {
                old_size,
                new_size,
                old_root: STANDARD.encode(merkle::root(old)),
                new_root: STANDARD.encode(checkpoint.root),
                proof: merkle::consistency_proof(new, old_size)
                    .iter()
                    .map(|h| STANDARD.encode(h))
                    .collect(),
                checkpoint: note,
            })
        })
        .await?
    }

    /// Appends leaves for tombstones recorded before the log existed (an upgrade); returns
    /// how many. Idempotent, and safe with several instances.
    pub async fn log_earlier_tombstones(&self) -> Result<u64> {
        let mut total = 0;
        loop {
            let appended = self.backends.audit.log_unlogged_tombstones(1000).await?;
            total += appended;
            if appended < 1000 {
                return Ok(total);
            }
        }
    }
}
