//! Signed deletion receipts.
//!
//! Every deletion is appended as a tombstone leaf to an append-only Merkle log (RFC 6962 /
//! RFC 9162 hashing), whose state is published as C2SP `tlog-checkpoint`s signed with the
//! log's Ed25519 key as C2SP `signed-note`s. A [`Receipt`] carries, for each deleted
//! artifact of a transcript, its tombstone and the inclusion proof of that tombstone in the
//! signed checkpoint. It proves, offline and with only the log's public key, that the log
//! operator committed to "artifact X of kind K was deleted at T for reason R" in that
//! log, which it cannot later rewrite without contradicting checkpoints already handed out
//! (see [`verify_consistency_proof`]). It does not, and cannot, prove the bytes are gone.
//!
//! This module is pure: it does no storage and no I/O except [`load_or_create_signing_key`].

pub mod checkpoint;
pub mod keys;
pub mod merkle;
pub mod receipt;

pub use checkpoint::{key_id, verifier_key_text, Checkpoint, ProofError};
pub use ed25519_dalek::{SigningKey, VerifyingKey};
pub use keys::{
    load_or_create_signing_key, public_key_from_pem, public_key_pem, signing_key_from_pem, KeyError,
};
pub use merkle::Hash;
pub use receipt::{
    tombstone_leaf_data, tombstone_leaf_hash, verify, verify_consistency_proof, BuildError,
    LeafTombstone, Receipt, ReceiptEntry, Verified, VerifyError, RECEIPT_FORMAT,
};
