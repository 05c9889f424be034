//! Log checkpoints (C2SP `tlog-checkpoint`) signed as C2SP `signed-note`s with Ed25519.
//!
//! A checkpoint body is `"{origin}\n{size}\n{base64(root)}\n"`; the note appends a blank
//! line and one line per signature, `"— {key name} {base64(key id || signature)}\n"`. The
//! format is the one Go's `golang.org/x/mod/sumdb/note` and the transparency-dev tooling
//! read, so any witness or monitor of that ecosystem can check Lethe's checkpoints.

use base64::{engine::general_purpose::STANDARD, Engine as _};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use sha2::{Digest, Sha256};

use super::merkle::Hash;

/// Starts every signature line: U+2014 EM DASH and a space.
const SIGNATURE_PREFIX: &str = "\u{2014} ";
/// The signed-note signature type of Ed25519.
const ALG_ED25519: u8 = 0x01;
/// Verifiers must reject notes with more signatures than this (C2SP signed-note).
const MAX_SIGNATURES: usize = 100;

/// A commitment to the state of the log: its origin line, its size and its tree head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's unique name, e.g. `lethe.example/deletions`: a non-empty line.
    pub origin: String,
    /// The number of leaves in the log.
    pub size: u64,
    /// The RFC 6962 head of the tree of those leaves.
    pub root: Hash,
}

/// Why a signed checkpoint was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProofError {
    /// The note is not a well-formed C2SP signed note.
    #[error("malformed signed note: {0}")]
    MalformedNote(&'static str),
    /// The note's text is not a well-formed checkpoint.
    #[error("malformed checkpoint: {0}")]
    MalformedCheckpoint(&'static str),
    /// The expected key name cannot name a signed-note key.
    #[error("invalid key name {0:?}: it must be non-empty, without spaces or '+'")]
    InvalidKeyName(String),
    /// No signature line carries the expected key's name and id.
    #[error("the note has no signature by the key {key_name:?}")]
    MissingSignature {
        /// The expected signer.
        key_name: String,
    },
    /// A signature by the expected key does not verify over the note text.
    #[error("the signature by the key {key_name:?} does not verify")]
    BadSignature {
        /// The expected signer.
        key_name: String,
    },
}

impl Checkpoint {
    /// The checkpoint body: the note text that is signed.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// The signed note: the body, a blank line and one Ed25519 signature by `key_name`.
    ///
    /// `key_name` should satisfy the signed-note rules (non-empty, no whitespace, no `+`)
    /// and `origin` be a non-empty line, or [`Checkpoint::open`] will refuse the note.
    pub fn sign(&self, key: &SigningKey, key_name: &str) -> String {
        sign_note(&self.body(), key, key_name)
    }

    /// Parses a signed checkpoint strictly and verifies the signature by `key_name` with `key`.
    ///
    /// Signatures by other keys are ignored (a note may carry witness cosignatures), but
    /// every signature line must be well-formed. The body must be exactly three lines:
    /// a non-empty origin, the size in decimal without leading zeros, and the root as
    /// canonical standard base64 of 32 bytes.
    pub fn open(note: &str, key_name: &str, key: &VerifyingKey) -> Result<Checkpoint, ProofError> {
        parse_body(open_note(note, key_name, key)?)
    }
}

/// The signed-note key id of an Ed25519 key: the first four bytes of
/// `SHA-256(key_name || "\n" || 0x01 || public key)`.
pub fn key_id(key_name: &str, key: &VerifyingKey) -> [u8; 4] {
    let digest = Sha256::new()
        .chain_update(key_name)
        .chain_update([b'\n', ALG_ED25519])
        .chain_update(key.as_bytes())
        .finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// The C2SP signed-note verifier key, `"{name}+{hex key id}+{base64(0x01 || public key)}"`,
/// as published for witnesses and monitors.
pub fn verifier_key_text(key_name: &str, key: &VerifyingKey) -> String {
    let mut material = Vec::with_capacity(33);
    material.push(ALG_ED25519);
    material.extend_from_slice(key.as_bytes());
    format!(
        "{key_name}+{}+{}",
        hex::encode(key_id(key_name, key)),
        STANDARD.encode(material)
    )
}

/// Whether `name` may name a signed-note key: non-empty, no whitespace, no `+`.
fn valid_key_name(name: &str) -> bool {
    !name.is_empty() && !name.contains(|c: char| c.is_whitespace() || c == '+')
}

fn sign_note(text: &str, key: &SigningKey, key_name: &str) -> String {
    let signature = key.sign(text.as_bytes());
    let mut blob = Vec::with_capacity(4 + Signature::BYTE_SIZE);
    blob.extend_from_slice(&key_id(key_name, &key.verifying_key()));
    blob.extend_from_slice(&signature.to_bytes());
    format!(
        "{text}\n{SIGNATURE_PREFIX}{key_name} {}\n",
        STANDARD.encode(blob)
    )
}

/// Splits a signed note, checks every signature line's form and verifies the signature(s)
/// by `key_name` with `key`; returns the signed text.
fn open_note<'a>(note: &'a str, key_name: &str, key: &VerifyingKey) -> Result<&'a str, ProofError> {
    use ProofError::MalformedNote;
    if !valid_key_name(key_name) {
        return Err(ProofError::InvalidKeyName(key_name.to_owned()));
    }
    if note.contains(|c: char| c.is_control() && c != '\n') {
        return Err(MalformedNote("control character other than newline"));
    }
    let split = note
        .rfind("\n\n")
        .ok_or(MalformedNote("no blank line before the signatures"))?;
    let (text, signatures) = (&note[..split + 1], &note[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .ok_or(MalformedNote("no signatures, or no final newline"))?;
    let want_id = key_id(key_name, key);
    let mut verified = false;
    for (n, line) in signatures.split('\n').enumerate() {
        if n == MAX_SIGNATURES {
            return Err(MalformedNote("more than 100 signatures"));
        }
        let (name, blob) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(MalformedNote(
                "a signature line is not \"— name signature\"",
            ))?;
        if !valid_key_name(name) {
            return Err(MalformedNote("a signature line has an invalid key name"));
        }
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| MalformedNote("a signature is not canonical base64"))?;
        if blob.len() < 5 {
            return Err(MalformedNote("a signature is too short"));
        }
        if name != key_name || blob[..4] != want_id {
            continue;
        }
        let bad = || ProofError::BadSignature {
            key_name: key_name.to_owned(),
        };
        let signature = Signature::from_slice(&blob[4..]).map_err(|_| bad())?;
        key.verify_strict(text.as_bytes(), &signature)
            .map_err(|_| bad())?;
        verified = true;
    }
    if verified {
        Ok(text)
    } else {
        Err(ProofError::MissingSignature {
            key_name: key_name.to_owned(),
        })
    }
}

fn parse_body(body: &str) -> Result<Checkpoint, ProofError> {
    use ProofError::MalformedCheckpoint;
    let mut lines = body.strip_suffix('\n').unwrap_or(body).split('\n');
    let (Some(origin), Some(size), Some(root), None) =
        (lines.next(), lines.next(), lines.next(), lines.next())
    else {
        return Err(MalformedCheckpoint(
            "expected exactly three lines: origin, size, root hash",
        ));
    };
    if origin.is_empty() {
        return Err(MalformedCheckpoint("empty origin"));
    }
    let canonical = !size.is_empty()
        && size.bytes().all(|b| b.is_ascii_digit())
        && (size == "0" || !size.starts_with('0'));
    if !canonical {
        return Err(MalformedCheckpoint(
            "size is not a canonical decimal number",
        ));
    }
    let size = size
        .parse()
        .map_err(|_| MalformedCheckpoint("size does not fit in 64 bits"))?;
    let root = STANDARD
        .decode(root)
        .map_err(|_| MalformedCheckpoint("root hash is not canonical base64"))?
        .try_into()
        .map_err(|_| MalformedCheckpoint("root hash is not 32 bytes"))?;
    Ok(Checkpoint {
        origin: origin.to_owned(),
        size,
        root,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::receipts::merkle::{leaf_hash, root};

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_bytes(&[seed; 32])
    }

    fn checkpoint() -> Checkpoint {
        let leaves: Vec<Hash> = (0u8..13).map(|i| leaf_hash(&[i])).collect();
        Checkpoint {
            origin: "lethe.example/deletions".into(),
            size: 13,
            root: root(&leaves),
        }
    }

    /// golang.org/x/mod/sumdb/note's example key and note: we must agree byte for byte.
    #[test]
    fn reproduces_the_go_sumdb_note_vector() {
        let seed = STANDARD
            .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
            .expect("base64");
        assert_eq!(seed[0], ALG_ED25519);
        let sk = SigningKey::from_bytes(&seed[1..].try_into().expect("32 bytes"));
        let vk = sk.verifying_key();
        let text = "If you think cryptography is the answer to your problem,\n\
                    then you don't know what your problem is.\n";
        let note = format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        );
        assert_eq!(hex::encode(key_id("PeterNeumann", &vk)), "c74f20a3");
        assert_eq!(
            verifier_key_text("PeterNeumann", &vk),
            "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
        );
        assert_eq!(sign_note(text, &sk, "PeterNeumann"), note);
        assert_eq!(open_note(&note, "PeterNeumann", &vk), Ok(text));
        let forged = note.replace("cryptography", "cryptographY");
        assert!(matches!(
            open_note(&forged, "PeterNeumann", &vk),
            Err(ProofError::BadSignature { .. })
        ));
    }

    #[test]
    fn signed_checkpoints_round_trip() {
        let cp = checkpoint();
        let sk = key(1);
        let note = cp.sign(&sk, "lethe-test");
        assert!(note.starts_with(&format!("{}\n\u{2014} lethe-test ", cp.body())));
        assert_eq!(cp.body().lines().count(), 3);
        assert_eq!(
            Checkpoint::open(&note, "lethe-test", &sk.verifying_key()),
            Ok(cp)
        );
    }

    #[test]
    fn only_the_named_key_counts_and_cosignatures_are_ignored() {
        let cp = checkpoint();
        let (sk, other) = (key(1), key(2));
        let note = cp.sign(&sk, "lethe-test");
        let vk = sk.verifying_key();
        let missing = |r| matches!(r, Err(ProofError::MissingSignature { .. }));
        assert!(missing(Checkpoint::open(
            &note,
            "lethe-test",
            &other.verifying_key()
        )));
        assert!(missing(Checkpoint::open(&note, "lethe-other", &vk)));
        assert_eq!(
            Checkpoint::open(&note, "lethe test", &vk),
            Err(ProofError::InvalidKeyName("lethe test".into()))
        );
        // A witness cosignature (another key, another name) before ours is skipped.
        let witness = cp.sign(&other, "witness.example");
        let witness_line = witness.rsplit_once("\n\n").expect("note").1;
        let (body, ours) = note.rsplit_once("\n\n").expect("note");
        let both = format!("{body}\n\n{witness_line}{ours}");
        assert_eq!(Checkpoint::open(&both, "lethe-test", &vk), Ok(cp.clone()));
        // Our name with another key's id is someone else's key: still missing.
        let imposter = cp.sign(&other, "lethe-test");
        assert!(missing(Checkpoint::open(&imposter, "lethe-test", &vk)));
        // Our name and id with a signature that does not verify is a forgery.
        let forged = cp.sign(&sk, "lethe-test").replacen("13\n", "14\n", 1);
        assert_eq!(
            Checkpoint::open(&forged, "lethe-test", &vk),
            Err(ProofError::BadSignature {
                key_name: "lethe-test".into()
            })
        );
    }

    #[test]
    fn parsing_is_strict() {
        let cp = checkpoint();
        let sk = key(1);
        let vk = sk.verifying_key();
        let root64 = STANDARD.encode(cp.root);
        let sign = |body: &str| sign_note(body, &sk, "lethe-test");
        let malformed = |note: &str| {
            matches!(
                Checkpoint::open(note, "lethe-test", &vk),
                Err(ProofError::MalformedCheckpoint(_) | ProofError::MalformedNote(_))
            )
        };
        let mut trailing_bits = root64.clone().into_bytes();
        trailing_bits[42] = b'B' + (trailing_bits[42] == b'B') as u8; // nonzero spare bits
        let trailing_bits = String::from_utf8(trailing_bits).expect("ascii");
        for body in [
            format!("o\n013\n{root64}\n"),
            format!("o\n+13\n{root64}\n"),
            format!("o\n 13\n{root64}\n"),
            format!("o\n\n{root64}\n"),
            format!("o\n18446744073709551616\n{root64}\n"),
            format!("\n13\n{root64}\n"),
            format!("o\n13\n{root64}\nextension\n"),
            format!("o\n13\n{}\n", root64.trim_end_matches('=')),
            format!("o\n13\n{trailing_bits}\n"),
            format!("o\n13\n{}\n", STANDARD.encode([0u8; 31])),
            format!("o\n13\n{}\n", STANDARD.encode([0u8; 33])),
            format!("o\r\n13\n{root64}\n"),
            format!("o\n13\n{root64}"),
        ] {
            assert!(malformed(&sign(&body)), "accepted {body:?}");
        }
        assert_eq!(
            Checkpoint::open(&sign(&format!("o\n0\n{root64}\n")), "lethe-test", &vk)
                .map(|c| c.size),
            Ok(0)
        );
        let note = cp.sign(&sk, "lethe-test");
        let (body, line) = note.rsplit_once("\n\n").expect("note");
        for bad in [
            format!("{body}\n\n"),
            format!("{body}\n{line}"),
            format!("{body}\n\n{}", line.trim_end()),
            format!("{body}\n\n{}", line.replace('\u{2014}', "-")),
            format!("{body}\n\n{line}\u{2014} junk\n"),
            format!("{body}\n\n{line}\u{2014} x AAAA\n"),
            format!("{body}\n\n{}", line.replace('=', "")),
            format!("{body}\n\n{}", line.repeat(101)),
        ] {
            assert!(malformed(&bad), "accepted {bad:?}");
        }
        assert!(Checkpoint::open(
            &format!("{body}\n\n{}", line.repeat(100)),
            "lethe-test",
            &vk
        )
        .is_ok());
    }

    #[test]
    fn every_altered_byte_of_a_note_is_rejected() {
        let sk = key(1);
        let note = checkpoint().sign(&sk, "lethe-test").into_bytes();
        for i in 0..note.len() {
            let mut altered = note.clone();
            altered[i] ^= 0x01;
            if let Ok(text) = String::from_utf8(altered) {
                assert!(
                    Checkpoint::open(&text, "lethe-test", &sk.verifying_key()).is_err(),
                    "byte {i} altered and still accepted"
                );
            }
        }
    }
}
