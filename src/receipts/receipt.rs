//! Deletion receipts: the document served by `GET /v2/transcript/{id}/receipt` and checked
//! offline by `lethe receipt verify`, and the canonical tombstone encoding of log leaves.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use chrono::{DateTime, SecondsFormat, SubsecRound, Timelike, Utc};
use ed25519_dalek::VerifyingKey;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::checkpoint::{Checkpoint, ProofError};
use super::merkle::{self, Hash};
use crate::domain::Tombstone;

/// The `format` of every receipt this module writes and accepts.
pub const RECEIPT_FORMAT: &str = "lethe-receipt/1";
/// The first line of every tombstone leaf.
const TOMBSTONE_HEADER: &str = "lethe-tombstone/1";

/// Proof that a transcript's artifacts were recorded as deleted in the signed deletion log.
///
/// Its JSON is canonical: ids and times each parse from exactly one text form (lowercase
/// hyphenated UUIDs; RFC 3339 UTC times with six fractional digits and `Z`, as in the leaf),
/// so no other text parses to the same receipt.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Receipt {
    /// Always `lethe-receipt/1`.
    pub format: String,
    /// The transcript whose artifacts were deleted.
    #[serde(deserialize_with = "canonical::uuid")]
    pub transcript_id: Uuid,
    /// The origin line of the log's checkpoint, e.g. `lethe.example/deletions`.
    pub log_origin: String,
    /// The name of the key that signed the checkpoint.
    pub key_name: String,
    /// The number of leaves in the log at the checkpoint.
    pub tree_size: u64,
    /// The RFC 6962 tree head at the checkpoint, standard base64.
    pub root_hash: String,
    /// One entry per deleted artifact.
    pub artifacts: Vec<ReceiptEntry>,
    /// The checkpoint as a C2SP signed note.
    pub checkpoint: String,
}

/// One deleted artifact: its tombstone and the proof that the tombstone is in the log.
#[derive(Serialize, Deserialize, ToSchema, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ReceiptEntry {
    /// The deleted artifact.
    #[serde(deserialize_with = "canonical::uuid")]
    pub artifact_id: Uuid,
    /// The transcript its tombstone names: the receipt's transcript, or none for the upload
    /// the transcript was created from (an upload belongs to no single transcript).
    #[serde(deserialize_with = "canonical::opt_uuid")]
    pub transcript_id: Option<Uuid>,
    /// The artifact kind, e.g. `uploaded_audio`.
    pub kind: String,
    /// Why it was deleted, e.g. `ttl`.
    pub reason: String,
    /// The start of the deletion window, if any.
    #[serde(with = "canonical::opt_time")]
    pub delete_after: Option<DateTime<Utc>>,
    /// The deadline of the deletion window, if any.
    #[serde(with = "canonical::opt_time")]
    pub delete_by: Option<DateTime<Utc>>,
    /// When the artifact was deleted.
    #[serde(with = "canonical::time")]
    pub deleted_at: DateTime<Utc>,
    /// The tombstone's position in the log.
    pub leaf_index: u64,
    /// The RFC 6962 leaf hash of the tombstone, standard base64.
    pub leaf_hash: String,
    /// The RFC 6962 audit path from the leaf to the tree head, standard base64.
    pub inclusion_proof: Vec<String>,
}

/// The record of one deletion that a log leaf commits to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LeafTombstone {
    /// The transcript the artifact belonged to, if any.
    pub transcript_id: Option<Uuid>,
    /// The deleted artifact.
    pub artifact_id: Uuid,
    /// The artifact kind.
    pub kind: String,
    /// Why it was deleted.
    pub reason: String,
    /// The start of the deletion window, if any.
    pub delete_after: Option<DateTime<Utc>>,
    /// The deadline of the deletion window, if any.
    pub delete_by: Option<DateTime<Utc>>,
    /// When the artifact was deleted.
    pub deleted_at: DateTime<Utc>,
}

/// The canonical leaf data of a tombstone: the line `lethe-tombstone/1`, then one
/// `key=value\n` line per field in declaration order. Ids are lowercase hyphenated UUIDs,
/// times RFC 3339 UTC with exactly six fractional digits and `Z` (finer precision is
/// truncated), absent values `-`; in `kind` and `reason`, `\` and newline are escaped as
/// `\\` and `\n` so that distinct tombstones never share an encoding.
pub fn tombstone_leaf_data(t: &LeafTombstone) -> Vec<u8> {
    let time = |t: DateTime<Utc>| canonical::time_text(&t);
    fn text(s: &str) -> String {
        s.replace('\\', "\\\\").replace('\n', "\\n")
    }
    let absent = || "-".to_owned();
    let fields = [
        (
            "transcript_id",
            t.transcript_id.map_or_else(absent, |id| id.to_string()),
        ),
        ("artifact_id", t.artifact_id.to_string()),
        ("kind", text(&t.kind)),
        ("reason", text(&t.reason)),
        ("delete_after", t.delete_after.map_or_else(absent, time)),
        ("delete_by", t.delete_by.map_or_else(absent, time)),
        ("deleted_at", time(t.deleted_at)),
    ];
    let mut out = format!("{TOMBSTONE_HEADER}\n");
    for (key, value) in fields {
        out.push_str(&format!("{key}={value}\n"));
    }
    out.into_bytes()
}

/// The leaf hash of a recorded tombstone: what the audit log appends to the deletion log.
pub fn tombstone_leaf_hash(t: &Tombstone) -> Hash {
    merkle::leaf_hash(&tombstone_leaf_data(&LeafTombstone::from(t)))
}

impl From<&Tombstone> for LeafTombstone {
    /// The fields of a tombstone the log commits to (not the account, size or operator).
    fn from(t: &Tombstone) -> Self {
        LeafTombstone {
            transcript_id: t.transcript_id,
            artifact_id: t.artifact_id,
            kind: t.kind.as_str().to_owned(),
            reason: t.reason.as_str().to_owned(),
            delete_after: t.delete_after,
            delete_by: t.delete_by,
            deleted_at: t.deleted_at,
        }
    }
}

impl ReceiptEntry {
    /// The tombstone this entry claims is in the log.
    pub fn leaf_tombstone(&self) -> LeafTombstone {
        LeafTombstone {
            transcript_id: self.transcript_id,
            artifact_id: self.artifact_id,
            kind: self.kind.clone(),
            reason: self.reason.clone(),
            delete_after: self.delete_after,
            delete_by: self.delete_by,
            deleted_at: self.deleted_at,
        }
    }
}

/// Why a receipt could not be built.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// A receipt must name at least one artifact.
    #[error("a receipt needs at least one artifact")]
    NoArtifacts,
    /// A tombstone names another transcript.
    #[error("the tombstone of artifact {artifact_id} names another transcript")]
    ForeignTombstone {
        /// The artifact.
        artifact_id: Uuid,
    },
    /// A leaf index is beyond the log.
    #[error("leaf {leaf_index} of artifact {artifact_id} is beyond the log of size {tree_size}")]
    LeafIndexOutOfRange {
        /// The artifact.
        artifact_id: Uuid,
        /// Its claimed position.
        leaf_index: u64,
        /// The log size.
        tree_size: u64,
    },
    /// The leaf at an index is not the hash of the given tombstone.
    #[error("leaf {leaf_index} of the log is not the tombstone of artifact {artifact_id}")]
    LeafMismatch {
        /// The artifact.
        artifact_id: Uuid,
        /// Its claimed position.
        leaf_index: u64,
    },
    /// The signed note is not the checkpoint of the given leaves under the given origin.
    #[error("the signed note is not the checkpoint of these leaves under the origin {origin:?}")]
    CheckpointMismatch {
        /// The expected origin.
        origin: String,
    },
}

impl Receipt {
    /// Builds the receipt for `transcript_id` from the log's leaf hashes up to the
    /// checkpoint (`leaves`), the tombstones of the deleted artifacts with their leaf
    /// indices, and the signed checkpoint note over `leaves` (see [`Checkpoint::sign`]).
    ///
    /// Times are stored truncated to microseconds, the precision the leaves commit to.
    /// Fails rather than returning a receipt that [`verify`] would reject for a reason
    /// visible here (the signature itself is not checked).
    pub fn build(
        transcript_id: Uuid,
        log_origin: &str,
        key_name: &str,
        leaves: &[Hash],
        entries: Vec<(LeafTombstone, u64)>,
        signed_note: String,
    ) -> Result<Receipt, BuildError> {
        if entries.is_empty() {
            return Err(BuildError::NoArtifacts);
        }
        let checkpoint = Checkpoint {
            origin: log_origin.to_owned(),
            size: leaves.len() as u64,
            root: merkle::root(leaves),
        };
        if !signed_note.starts_with(&format!("{}\n", checkpoint.body())) {
            return Err(BuildError::CheckpointMismatch {
                origin: log_origin.to_owned(),
            });
        }
        let artifacts = entries
            .into_iter()
            .map(|(t, leaf_index)| {
                let artifact_id = t.artifact_id;
                if t.transcript_id != Some(transcript_id) {
                    return Err(BuildError::ForeignTombstone { artifact_id });
                }
                let leaf = merkle::leaf_hash(&tombstone_leaf_data(&t));
                let stored = usize::try_from(leaf_index)
                    .ok()
                    .and_then(|i| leaves.get(i))
                    .ok_or(BuildError::LeafIndexOutOfRange {
                        artifact_id,
                        leaf_index,
                        tree_size: checkpoint.size,
                    })?;
                if *stored != leaf {
                    return Err(BuildError::LeafMismatch {
                        artifact_id,
                        leaf_index,
                    });
                }
                let micros = |t: DateTime<Utc>| t.trunc_subsecs(6);
                Ok(ReceiptEntry {
                    artifact_id,
                    transcript_id: t.transcript_id,
                    kind: t.kind,
                    reason: t.reason,
                    delete_after: t.delete_after.map(micros),
                    delete_by: t.delete_by.map(micros),
                    deleted_at: micros(t.deleted_at),
                    leaf_index,
                    leaf_hash: STANDARD.encode(leaf),
                    inclusion_proof: merkle::inclusion_proof(leaves, leaf_index)
                        .iter()
                        .map(|h| STANDARD.encode(h))
                        .collect(),
                })
            })
            .collect::<Result<_, _>>()?;
        Ok(Receipt {
            format: RECEIPT_FORMAT.to_owned(),
            transcript_id,
            log_origin: checkpoint.origin,
            key_name: key_name.to_owned(),
            tree_size: checkpoint.size,
            root_hash: STANDARD.encode(checkpoint.root),
            artifacts,
            checkpoint: signed_note,
        })
    }
}

/// What a successfully verified receipt proves.
#[derive(Clone, Debug, PartialEq)]
pub struct Verified {
    /// The transcript.
    pub transcript_id: Uuid,
    /// The log's origin line.
    pub log_origin: String,
    /// The key that signed the checkpoint.
    pub key_name: String,
    /// The log size at the checkpoint.
    pub tree_size: u64,
    /// The tree head at the checkpoint, standard base64.
    pub root_hash: String,
    /// How many artifacts the receipt proves deleted.
    pub artifact_count: usize,
    artifacts: Vec<ReceiptEntry>,
}

impl Verified {
    /// Human-readable lines stating what the receipt proves: one summary line, then one
    /// line per artifact.
    pub fn describe(&self) -> Vec<String> {
        let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::AutoSi, true);
        let mut lines = vec![format!(
            "transcript {}: {} artifact deletion(s) recorded in the log {} of size {} \
             (root {}) signed by {}",
            self.transcript_id,
            self.artifact_count,
            self.log_origin,
            self.tree_size,
            self.root_hash,
            self.key_name
        )];
        lines.extend(self.artifacts.iter().map(|a| {
            let due = a
                .delete_by
                .map(|t| format!(" (due by {})", time(t)))
                .unwrap_or_default();
            let unbound = if a.transcript_id.is_none() {
                ", recorded without a transcript"
            } else {
                ""
            };
            format!(
                "artifact {} ({}{}) deleted at {}{} for {}: included at leaf {} of the log \
                 of size {} signed by {}",
                a.artifact_id,
                a.kind,
                unbound,
                time(a.deleted_at),
                due,
                a.reason,
                a.leaf_index,
                self.tree_size,
                self.key_name
            )
        }));
        lines
    }
}

/// Why a receipt did not verify.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// The receipt is not a `lethe-receipt/1` document.
    #[error("unsupported receipt format {0:?}, expected \"lethe-receipt/1\"")]
    UnsupportedFormat(String),
    /// The receipt lists no artifacts.
    #[error("the receipt lists no artifacts")]
    NoArtifacts,
    /// The checkpoint note is malformed or not signed by the key.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] ProofError),
    /// The signed checkpoint is of another log.
    #[error("the receipt claims the log {receipt:?} but the checkpoint is of {checkpoint:?}")]
    OriginMismatch {
        /// The receipt's `log_origin`.
        receipt: String,
        /// The signed origin.
        checkpoint: String,
    },
    /// The signed checkpoint is of another log size.
    #[error(
        "the receipt claims a log of size {receipt} but the checkpoint is of size {checkpoint}"
    )]
    SizeMismatch {
        /// The receipt's `tree_size`.
        receipt: u64,
        /// The signed size.
        checkpoint: u64,
    },
    /// The signed checkpoint has another tree head.
    #[error("the receipt's root_hash is not the signed tree head")]
    RootMismatch,
    /// A hash field is not canonical standard base64 of 32 bytes.
    #[error("{field} is not canonical standard base64 of 32 bytes")]
    BadHash {
        /// The field, e.g. `artifacts[0].inclusion_proof[3]`.
        field: String,
    },
    /// An artifact's tombstone names another transcript.
    #[error("artifact {artifact_id} is of another transcript")]
    ForeignArtifact {
        /// The artifact.
        artifact_id: Uuid,
    },
    /// A time has finer than microsecond precision, which the leaf does not commit to.
    #[error("artifact {artifact_id} has a time finer than a microsecond")]
    TimePrecision {
        /// The artifact.
        artifact_id: Uuid,
    },
    /// A leaf index is beyond the log.
    #[error("artifact {artifact_id} is at leaf {leaf_index}, beyond the log of size {tree_size}")]
    LeafIndexOutOfRange {
        /// The artifact.
        artifact_id: Uuid,
        /// Its claimed position.
        leaf_index: u64,
        /// The signed log size.
        tree_size: u64,
    },
    /// The leaf hash is not the hash of the entry's tombstone.
    #[error("the leaf hash of artifact {artifact_id} does not match its tombstone")]
    LeafHashMismatch {
        /// The artifact.
        artifact_id: Uuid,
    },
    /// The inclusion proof does not lead to the signed tree head.
    #[error("the inclusion proof of artifact {artifact_id} at leaf {leaf_index} does not verify")]
    InclusionProof {
        /// The artifact.
        artifact_id: Uuid,
        /// Its claimed position.
        leaf_index: u64,
    },
}

/// Verifies a receipt offline against the log's public key.
///
/// Checks the format, that the checkpoint is signed by `key` under `key_name` and states
/// the receipt's origin, size and root, and for every artifact that its tombstone hashes
/// to its leaf hash and that the leaf is included in the signed tree.
pub fn verify(receipt: &Receipt, key: &VerifyingKey) -> Result<Verified, VerifyError> {
    if receipt.format != RECEIPT_FORMAT {
        return Err(VerifyError::UnsupportedFormat(receipt.format.clone()));
    }
    if receipt.artifacts.is_empty() {
        return Err(VerifyError::NoArtifacts);
    }
    let checkpoint = Checkpoint::open(&receipt.checkpoint, &receipt.key_name, key)?;
    if checkpoint.origin != receipt.log_origin {
        return Err(VerifyError::OriginMismatch {
            receipt: receipt.log_origin.clone(),
            checkpoint: checkpoint.origin,
        });
    }
    if checkpoint.size != receipt.tree_size {
        return Err(VerifyError::SizeMismatch {
            receipt: receipt.tree_size,
            checkpoint: checkpoint.size,
        });
    }
    if decode_hash(&receipt.root_hash, || "root_hash".into())? != checkpoint.root {
        return Err(VerifyError::RootMismatch);
    }
    let mut seen = std::collections::HashSet::new();
    for (i, entry) in receipt.artifacts.iter().enumerate() {
        let artifact_id = entry.artifact_id;
        // Every entry's leaf names this transcript: an entry recorded without one (an
        // upload) proves nothing about this transcript and would let a receipt be
        // re-labelled with any transcript id.
        if entry.transcript_id != Some(receipt.transcript_id) || !seen.insert(artifact_id) {
            return Err(VerifyError::ForeignArtifact { artifact_id });
        }
        let times = [entry.delete_after, entry.delete_by, Some(entry.deleted_at)];
        if times
            .into_iter()
            .flatten()
            .any(|t| !t.nanosecond().is_multiple_of(1000))
        {
            return Err(VerifyError::TimePrecision { artifact_id });
        }
        if entry.leaf_index >= checkpoint.size {
            return Err(VerifyError::LeafIndexOutOfRange {
                artifact_id,
                leaf_index: entry.leaf_index,
                tree_size: checkpoint.size,
            });
        }
        let leaf = merkle::leaf_hash(&tombstone_leaf_data(&entry.leaf_tombstone()));
        if decode_hash(&entry.leaf_hash, || format!("artifacts[{i}].leaf_hash"))? != leaf {
            return Err(VerifyError::LeafHashMismatch { artifact_id });
        }
        let proof = entry
            .inclusion_proof
            .iter()
            .enumerate()
            .map(|(j, h)| decode_hash(h, || format!("artifacts[{i}].inclusion_proof[{j}]")))
            .collect::<Result<Vec<_>, _>>()?;
        if !merkle::verify_inclusion(
            &leaf,
            entry.leaf_index,
            checkpoint.size,
            &proof,
            &checkpoint.root,
        ) {
            return Err(VerifyError::InclusionProof {
                artifact_id,
                leaf_index: entry.leaf_index,
            });
        }
    }
    Ok(Verified {
        transcript_id: receipt.transcript_id,
        log_origin: checkpoint.origin,
        key_name: receipt.key_name.clone(),
        tree_size: checkpoint.size,
        root_hash: receipt.root_hash.clone(),
        artifact_count: receipt.artifacts.len(),
        artifacts: receipt.artifacts.clone(),
    })
}

/// Whether `old` is a prefix of `new`: same origin and a valid RFC 9162 consistency proof.
/// The checkpoints' signatures are the caller's to check (see [`Checkpoint::open`]).
pub fn verify_consistency_proof(old: &Checkpoint, new: &Checkpoint, proof: &[Hash]) -> bool {
    old.origin == new.origin
        && merkle::verify_consistency(old.size, new.size, &old.root, &new.root, proof)
}

/// Serde of ids and times in exactly one text form each (see [`Receipt`]).
mod canonical {
    use chrono::{DateTime, SecondsFormat, Utc};
    use serde::{de::Error, Deserialize, Deserializer, Serializer};
    use uuid::Uuid;

    /// A time as the leaf and the receipt write it.
    pub(super) fn time_text(t: &DateTime<Utc>) -> String {
        t.to_rfc3339_opts(SecondsFormat::Micros, true)
    }

    fn parse<T, E: Error>(
        text: &str,
        what: &str,
        parse: impl FnOnce(&str) -> Option<T>,
        print: impl FnOnce(&T) -> String,
    ) -> Result<T, E> {
        parse(text)
            .filter(|value| print(value) == text)
            .ok_or_else(|| E::custom(format!("{text:?} is not a canonical {what}")))
    }

    fn parse_uuid<E: Error>(text: &str) -> Result<Uuid, E> {
        let print = |id: &Uuid| id.hyphenated().to_string();
        parse(
            text,
            "lowercase hyphenated UUID",
            |s| Uuid::try_parse(s).ok(),
            print,
        )
    }

    fn parse_time<E: Error>(text: &str) -> Result<DateTime<Utc>, E> {
        let rfc3339 = |s: &str| {
            DateTime::parse_from_rfc3339(s)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        };
        parse(
            text,
            "time (YYYY-MM-DDTHH:MM:SS.ssssssZ)",
            rfc3339,
            time_text,
        )
    }

    pub(super) fn uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Uuid, D::Error> {
        parse_uuid(&String::deserialize(d)?)
    }

    pub(super) fn opt_uuid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Uuid>, D::Error> {
        Option::<String>::deserialize(d)?
            .map(|text| parse_uuid(&text))
            .transpose()
    }

    pub(super) mod time {
        use super::*;

        pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
            s.serialize_str(&time_text(t))
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<DateTime<Utc>, D::Error> {
            parse_time(&String::deserialize(d)?)
        }
    }

    pub(super) mod opt_time {
        use super::*;

        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_some(&time_text(t)),
                None => s.serialize_none(),
            }
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(
            d: D,
        ) -> Result<Option<DateTime<Utc>>, D::Error> {
            Option::<String>::deserialize(d)?
                .map(|text| parse_time(&text))
                .transpose()
        }
    }
}

/// Decodes canonical standard base64 of exactly 32 bytes; `field` names it in the error.
fn decode_hash(text: &str, field: impl FnOnce() -> String) -> Result<Hash, VerifyError> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or_else(|| VerifyError::BadHash { field: field() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ed25519_dalek::SigningKey;

    const ORIGIN: &str = "lethe.example/deletions";
    const KEY_NAME: &str = "lethe.example";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn at(secs: i64, micros: u32) -> DateTime<Utc> {
        Utc.timestamp_opt(1_700_000_000 + secs, micros * 1000)
            .single()
            .expect("valid time")
    }

    const TRANSCRIPT: Uuid = Uuid::from_u128(0x0190_1234_5678_7abc_8def_0123_4567_89ab);
    /// The leaves of the test log that are the transcript's: its upload, then two of its own.
    const MINE: [u64; 3] = [0, 23, 49];

    /// The tombstone at leaf `n` of the test log: leaf 0 is the upload the transcript was
    /// created from, 23 and 49 are the transcript's artifacts, the rest other transcripts'.
    fn tombstone(n: u64) -> LeafTombstone {
        let (transcript_id, kind) = match n {
            0 => (Some(TRANSCRIPT), "uploaded_audio"),
            23 | 49 => (
                Some(TRANSCRIPT),
                ["final_transcript", "text_input"][n as usize % 2],
            ),
            _ => (Some(Uuid::from_u128(n.into())), "intermediate"),
        };
        LeafTombstone {
            transcript_id,
            artifact_id: Uuid::from_u128(0x0190_0000_0000_7000_8000_0000_0000_0000 + u128::from(n)),
            kind: kind.into(),
            reason: "ttl".into(),
            delete_after: n.is_multiple_of(2).then(|| at(n as i64 * 60, 123_456)),
            delete_by: Some(at(n as i64 * 60 + 3600, 0)),
            deleted_at: at(n as i64 * 60 + 1800, 654_321),
        }
    }

    struct Log {
        leaves: Vec<Hash>,
        entries: Vec<(LeafTombstone, u64)>,
    }

    /// A log of 50 tombstones, three of which are the transcript's (see [`MINE`]).
    fn log() -> Log {
        let tombstones: Vec<LeafTombstone> = (0..50).map(tombstone).collect();
        Log {
            leaves: tombstones
                .iter()
                .map(|t| merkle::leaf_hash(&tombstone_leaf_data(t)))
                .collect(),
            entries: MINE.map(|n| (tombstones[n as usize].clone(), n)).to_vec(),
        }
    }

    fn checkpoint_of(leaves: &[Hash]) -> Checkpoint {
        Checkpoint {
            origin: ORIGIN.into(),
            size: leaves.len() as u64,
            root: merkle::root(leaves),
        }
    }

    fn receipt(signer: &SigningKey) -> Receipt {
        let log = log();
        let note = checkpoint_of(&log.leaves).sign(signer, KEY_NAME);
        Receipt::build(TRANSCRIPT, ORIGIN, KEY_NAME, &log.leaves, log.entries, note).expect("build")
    }

    #[test]
    fn the_tombstone_encoding_is_pinned() {
        let t = LeafTombstone {
            transcript_id: None,
            artifact_id: Uuid::from_u128(0x0190_1234_5678_7abc_8def_0123_4567_89ab),
            kind: "audio".into(),
            reason: "a\\b\nc".into(),
            delete_after: None,
            delete_by: Some(at(0, 0)),
            deleted_at: at(1, 5) + chrono::Duration::nanoseconds(999),
        };
        assert_eq!(
            String::from_utf8(tombstone_leaf_data(&t)).expect("utf-8"),
            "lethe-tombstone/1\n\
             transcript_id=-\n\
             artifact_id=01901234-5678-7abc-8def-0123456789ab\n\
             kind=audio\n\
             reason=a\\\\b\\nc\n\
             delete_after=-\n\
             delete_by=2023-11-14T22:13:20.000000Z\n\
             deleted_at=2023-11-14T22:13:21.000005Z\n"
        );
        let other = LeafTombstone {
            reason: "a\\b\\nc".into(),
            ..t.clone()
        };
        assert_ne!(tombstone_leaf_data(&t), tombstone_leaf_data(&other));
    }

    #[test]
    fn recorded_tombstones_map_to_leaves() {
        use crate::domain::{ArtifactKind, DeletionReason};
        let t = Tombstone {
            artifact_id: Uuid::from_u128(1),
            account_id: Uuid::from_u128(2),
            transcript_id: None,
            kind: ArtifactKind::UploadedAudio,
            size_bytes: 1024,
            anchor_at: None,
            delete_after: None,
            delete_by: Some(at(0, 0)),
            deleted_at: at(1, 7),
            reason: DeletionReason::CustomerRequest,
            deleted_by: "sweeper".into(),
        };
        let leaf = LeafTombstone::from(&t);
        assert_eq!(
            (leaf.kind.as_str(), leaf.reason.as_str()),
            ("uploaded_audio", "customer_request")
        );
        assert_eq!(
            tombstone_leaf_hash(&t),
            merkle::leaf_hash(&tombstone_leaf_data(&leaf))
        );
        // The account, size, anchor and operator are not committed to; the rest is.
        let unseen = Tombstone {
            account_id: Uuid::from_u128(3),
            size_bytes: 1,
            anchor_at: Some(at(0, 0)),
            deleted_by: "api".into(),
            ..t.clone()
        };
        assert_eq!(tombstone_leaf_hash(&unseen), tombstone_leaf_hash(&t));
        let seen = Tombstone {
            reason: DeletionReason::Ttl,
            ..t.clone()
        };
        assert_ne!(tombstone_leaf_hash(&seen), tombstone_leaf_hash(&t));
    }

    #[test]
    fn a_built_receipt_verifies_and_says_what_it_proves() {
        let signer = key(1);
        let r = receipt(&signer);
        assert_eq!(r.format, RECEIPT_FORMAT);
        assert_eq!((r.tree_size, r.artifacts.len()), (50, 3));
        let v = verify(&r, &signer.verifying_key()).expect("verifies");
        assert_eq!(
            (v.transcript_id, v.tree_size, v.artifact_count),
            (r.transcript_id, 50, 3)
        );
        assert_eq!(v.root_hash, r.root_hash);
        let lines = v.describe();
        assert_eq!(lines.len(), 4);
        let a = &r.artifacts[1];
        assert_eq!(
            lines[2],
            format!(
                "artifact {} (text_input) deleted at 2023-11-14T23:06:20.654321Z \
                 (due by 2023-11-14T23:36:20Z) for ttl: included at leaf 23 of the \
                 log of size 50 signed by lethe.example",
                a.artifact_id
            )
        );
        assert!(lines[1].contains("(uploaded_audio)"), "{}", lines[1]);
        // Through JSON and back, unchanged.
        let json = serde_json::to_string(&r).expect("json");
        assert_eq!(serde_json::from_str::<Receipt>(&json).expect("parse"), r);
    }

    #[test]
    fn every_flipped_byte_of_the_json_fails() {
        let signer = key(1);
        let vk = signer.verifying_key();
        let json = serde_json::to_vec(&receipt(&signer)).expect("json");
        let mut parse_errors = 0;
        for i in 0..json.len() {
            let mut altered = json.clone();
            altered[i] ^= 0x01;
            match serde_json::from_slice::<Receipt>(&altered) {
                Err(_) => parse_errors += 1,
                Ok(r) => assert!(
                    verify(&r, &vk).is_err(),
                    "flipping byte {i} ({:?}) still verifies",
                    char::from(json[i])
                ),
            }
        }
        // Most flips must reach verification, or the test proves little.
        assert!(
            parse_errors < json.len() / 2,
            "{parse_errors} of {}",
            json.len()
        );
    }

    #[test]
    fn other_single_byte_substitutions_fail_too() {
        // XOR 0x20 flips letter case: UUID hex and the `T`/`Z` of times must not keep their
        // value in another case. The other masks substitute further printable characters.
        let signer = key(1);
        let vk = signer.verifying_key();
        let json = serde_json::to_vec(&receipt(&signer)).expect("json");
        for i in 0..json.len() {
            for mask in [0x02, 0x04, 0x08, 0x10, 0x20] {
                let mut altered = json.clone();
                altered[i] ^= mask;
                if let Ok(r) = serde_json::from_slice::<Receipt>(&altered) {
                    assert!(verify(&r, &vk).is_err(), "byte {i} ^ {mask:#x} verifies");
                }
            }
        }
    }

    #[test]
    fn ids_and_times_have_one_text_form() {
        let json = serde_json::to_string(&receipt(&key(1))).expect("json");
        assert!(json.contains(r#""delete_by":"2023-11-14T23:13:20.000000Z""#));
        let parses = |json: &str| serde_json::from_str::<Receipt>(json).is_ok();
        assert!(parses(&json));
        for (from, to) in [
            ("T23:13:20.000000Z", "T23:13:20Z"),
            ("T23:13:20.000000Z", "t23:13:20.000000Z"),
            ("T23:13:20.000000Z", "T23:13:20.000000z"),
            ("T23:13:20.000000Z", "T23:13:20.000000+00:00"),
            ("T23:13:20.000000Z", "T23:13:20.000000000Z"),
            (
                "2023-11-14T23:13:20.000000Z",
                "2023-11-15T00:13:20.000000+01:00",
            ),
            ("89ab", "89AB"),
            (
                "01901234-5678-7abc-8def-0123456789ab",
                "0190123456787abc8def0123456789ab",
            ),
        ] {
            assert!(json.contains(from), "{from}");
            assert!(!parses(&json.replacen(from, to, 1)), "{to} parses");
        }
    }

    #[test]
    fn another_key_or_key_name_fails() {
        let r = receipt(&key(1));
        assert!(matches!(
            verify(&r, &key(2).verifying_key()),
            Err(VerifyError::Checkpoint(ProofError::MissingSignature { .. }))
        ));
        let renamed = Receipt {
            key_name: "lethe.other".into(),
            ..r
        };
        assert!(matches!(
            verify(&renamed, &key(1).verifying_key()),
            Err(VerifyError::Checkpoint(ProofError::MissingSignature { .. }))
        ));
    }

    #[test]
    fn a_checkpoint_of_another_origin_size_or_root_fails() {
        let signer = key(1);
        let vk = signer.verifying_key();
        let good = receipt(&signer);
        let log = log();
        let with_note = |cp: Checkpoint| Receipt {
            checkpoint: cp.sign(&signer, KEY_NAME),
            ..good.clone()
        };
        let other_origin = with_note(Checkpoint {
            origin: "lethe.example/other".into(),
            ..checkpoint_of(&log.leaves)
        });
        assert!(matches!(
            verify(&other_origin, &vk),
            Err(VerifyError::OriginMismatch { .. })
        ));
        let other_size = with_note(Checkpoint {
            size: 51,
            ..checkpoint_of(&log.leaves)
        });
        assert_eq!(
            verify(&other_size, &vk),
            Err(VerifyError::SizeMismatch {
                receipt: 50,
                checkpoint: 51
            })
        );
        let older = with_note(checkpoint_of(&log.leaves[..49]));
        assert!(matches!(
            verify(&older, &vk),
            Err(VerifyError::SizeMismatch { .. })
        ));
        let other_root = with_note(Checkpoint {
            root: merkle::root(&log.leaves[1..]),
            ..checkpoint_of(&log.leaves)
        });
        assert_eq!(verify(&other_root, &vk), Err(VerifyError::RootMismatch));
    }

    #[test]
    fn altered_fields_fail_with_a_specific_reason() {
        let signer = key(1);
        let vk = signer.verifying_key();
        let good = receipt(&signer);
        let with = |f: &dyn Fn(&mut Receipt)| {
            let mut r = good.clone();
            f(&mut r);
            verify(&r, &vk)
        };
        let id = good.artifacts[0].artifact_id;
        assert_eq!(
            with(&|r| r.format = "lethe-receipt/2".into()),
            Err(VerifyError::UnsupportedFormat("lethe-receipt/2".into()))
        );
        assert_eq!(
            with(&|r| r.artifacts.clear()),
            Err(VerifyError::NoArtifacts)
        );
        assert_eq!(
            with(&|r| r.artifacts[0].reason = "legal_hold_released".into()),
            Err(VerifyError::LeafHashMismatch { artifact_id: id })
        );
        assert_eq!(
            with(&|r| r.artifacts[0].deleted_at += chrono::Duration::microseconds(1)),
            Err(VerifyError::LeafHashMismatch { artifact_id: id })
        );
        assert_eq!(
            with(&|r| r.artifacts[0].deleted_at += chrono::Duration::nanoseconds(1)),
            Err(VerifyError::TimePrecision { artifact_id: id })
        );
        let own = good.artifacts[1].artifact_id;
        assert_eq!(
            with(&|r| r.transcript_id = Uuid::nil()),
            Err(VerifyError::ForeignArtifact { artifact_id: id }),
            "a receipt re-labelled with another transcript"
        );
        assert_eq!(
            with(&|r| r.artifacts[1].transcript_id = None),
            Err(VerifyError::ForeignArtifact { artifact_id: own }),
            "an entry recorded without a transcript proves nothing about this one"
        );
        assert_eq!(
            with(&|r| {
                let first = r.artifacts[0].clone();
                r.artifacts.push(first);
            }),
            Err(VerifyError::ForeignArtifact { artifact_id: id }),
            "an entry twice"
        );
        assert_eq!(
            with(&|r| r.artifacts[0].leaf_index = 50),
            Err(VerifyError::LeafIndexOutOfRange {
                artifact_id: id,
                leaf_index: 50,
                tree_size: 50
            })
        );
        assert_eq!(
            with(&|r| r.artifacts[0].leaf_index = 1),
            Err(VerifyError::InclusionProof {
                artifact_id: id,
                leaf_index: 1
            })
        );
        assert_eq!(
            with(&|r| {
                r.artifacts[0].inclusion_proof.pop();
            }),
            Err(VerifyError::InclusionProof {
                artifact_id: id,
                leaf_index: 0
            })
        );
        assert_eq!(
            with(&|r| r.artifacts[2].inclusion_proof[1] = r.root_hash.replace('=', "")),
            Err(VerifyError::BadHash {
                field: "artifacts[2].inclusion_proof[1]".into()
            })
        );
        // Another transcript's tombstone, even with a valid proof, is not this receipt's.
        let log = log();
        let foreign = tombstone(5);
        let proof = merkle::inclusion_proof(&log.leaves, 5);
        assert_eq!(
            with(&|r| {
                r.artifacts[0] = ReceiptEntry {
                    artifact_id: foreign.artifact_id,
                    transcript_id: foreign.transcript_id,
                    kind: foreign.kind.clone(),
                    reason: foreign.reason.clone(),
                    delete_after: foreign.delete_after,
                    delete_by: foreign.delete_by,
                    deleted_at: foreign.deleted_at,
                    leaf_index: 5,
                    leaf_hash: STANDARD.encode(log.leaves[5]),
                    inclusion_proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
                };
            }),
            Err(VerifyError::ForeignArtifact {
                artifact_id: foreign.artifact_id
            })
        );
    }

    #[test]
    fn build_refuses_receipts_that_would_not_verify() {
        let log = log();
        let signer = key(1);
        let note = checkpoint_of(&log.leaves).sign(&signer, KEY_NAME);
        let build = |entries, note: &str| {
            Receipt::build(
                TRANSCRIPT,
                ORIGIN,
                KEY_NAME,
                &log.leaves,
                entries,
                note.into(),
            )
        };
        let (t0, _) = log.entries[0].clone();
        assert_eq!(build(vec![], &note), Err(BuildError::NoArtifacts));
        assert!(matches!(
            build(vec![(t0.clone(), 1)], &note),
            Err(BuildError::LeafMismatch { leaf_index: 1, .. })
        ));
        assert!(matches!(
            build(vec![(t0.clone(), 50)], &note),
            Err(BuildError::LeafIndexOutOfRange { .. })
        ));
        assert!(matches!(
            build(vec![(tombstone(5), 5)], &note),
            Err(BuildError::ForeignTombstone { .. })
        ));
        let stale = checkpoint_of(&log.leaves[..49]).sign(&signer, KEY_NAME);
        assert!(matches!(
            build(vec![(t0.clone(), 0)], &stale),
            Err(BuildError::CheckpointMismatch { .. })
        ));
        // Sub-microsecond times are not committed to, so the receipt drops them.
        let fine = LeafTombstone {
            deleted_at: t0.deleted_at + chrono::Duration::nanoseconds(999),
            ..t0.clone()
        };
        let r = build(vec![(fine, 0)], &note).expect("build");
        assert_eq!(r.artifacts[0].deleted_at, t0.deleted_at);
        assert!(verify(&r, &signer.verifying_key()).is_ok());
    }

    #[test]
    fn consistency_between_checkpoints() {
        let log = log();
        let (old, new) = (checkpoint_of(&log.leaves[..20]), checkpoint_of(&log.leaves));
        let proof = merkle::consistency_proof(&log.leaves, 20);
        assert!(verify_consistency_proof(&old, &new, &proof));
        assert!(!verify_consistency_proof(&new, &old, &proof));
        let elsewhere = Checkpoint {
            origin: "elsewhere".into(),
            ..new.clone()
        };
        assert!(!verify_consistency_proof(&old, &elsewhere, &proof));
    }
}
