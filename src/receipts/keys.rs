//! The log's Ed25519 signing key on disk (PKCS#8 PEM) and its public half (SPKI PEM).
//!
//! Errors name the file and the failure, never the key material.

use std::fs;
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::spki::der::zeroize::Zeroizing;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};
use rand::rngs::OsRng;

/// Why a key could not be loaded, created or decoded.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file exists but could not be read.
    #[error("cannot read the signing key file {path}: {source}")]
    Read {
        /// The key file.
        path: PathBuf,
        /// The I/O failure.
        source: io::Error,
    },
    /// A new key file (or its directory) could not be written.
    #[error("cannot create the signing key file {path}: {source}")]
    Write {
        /// The key file.
        path: PathBuf,
        /// The I/O failure.
        source: io::Error,
    },
    /// The key file does not hold a PKCS#8 PEM Ed25519 private key.
    #[error("the signing key file {path} is not a PKCS#8 PEM Ed25519 private key")]
    InvalidKeyFile {
        /// The key file.
        path: PathBuf,
    },
    /// The text is not a PKCS#8 PEM Ed25519 private key.
    #[error("not a PKCS#8 PEM Ed25519 private key")]
    InvalidPrivateKey,
    /// The text is not an SPKI (`PUBLIC KEY`) PEM Ed25519 public key.
    #[error("not an SPKI PEM Ed25519 public key")]
    InvalidPublicKey,
    /// The key could not be encoded as PKCS#8 PEM.
    #[error("cannot encode the signing key as PKCS#8 PEM")]
    Encode,
}

/// Loads the signing key at `path`, or creates it if the file does not exist.
///
/// A new key comes from the OS RNG and is written as PKCS#8 PEM to a new file of mode
/// 0600 (never over an existing file; missing parent directories are created with mode
/// 0700). If another process creates the file first, its key is loaded instead.
pub fn load_or_create_signing_key(path: &Path) -> Result<SigningKey, KeyError> {
    match read_key_file(path) {
        Err(KeyError::Read { source, .. }) if source.kind() == io::ErrorKind::NotFound => {}
        loaded => return loaded,
    }
    let key = SigningKey::generate(&mut OsRng);
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|_| KeyError::Encode)?;
    match write_new_file(path, pem.as_bytes()) {
        Ok(()) => Ok(key),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => read_key_file(path),
        Err(source) => Err(KeyError::Write {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Decodes a PKCS#8 PEM (`PRIVATE KEY`) Ed25519 private key, as written by
/// [`load_or_create_signing_key`] or `openssl genpkey -algorithm ed25519`.
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, KeyError> {
    SigningKey::from_pkcs8_pem(pem).map_err(|_| KeyError::InvalidPrivateKey)
}

/// The SPKI PEM (`PUBLIC KEY`) encoding of a verifying key, for `lethe receipt verify`.
pub fn public_key_pem(key: &VerifyingKey) -> String {
    key.to_public_key_pem(LineEnding::LF)
        .expect("encoding a 32-byte Ed25519 key as SPKI PEM cannot fail")
}

/// Decodes an SPKI PEM (`PUBLIC KEY`) Ed25519 public key.
pub fn public_key_from_pem(pem: &str) -> Result<VerifyingKey, KeyError> {
    VerifyingKey::from_public_key_pem(pem).map_err(|_| KeyError::InvalidPublicKey)
}

fn read_key_file(path: &Path) -> Result<SigningKey, KeyError> {
    let pem = Zeroizing::new(fs::read_to_string(path).map_err(|source| KeyError::Read {
        path: path.to_owned(),
        source,
    })?);
    signing_key_from_pem(&pem).map_err(|_| KeyError::InvalidKeyFile {
        path: path.to_owned(),
    })
}

/// Writes `contents` to a file that must not exist yet, mode 0600, durably.
fn write_new_file(path: &Path, contents: &[u8]) -> io::Result<()> {
    let dir = path.parent().filter(|dir| !dir.as_os_str().is_empty());
    if let Some(dir) = dir {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    if let Err(e) = file.write_all(contents).and_then(|()| file.sync_all()) {
        // Leave no truncated key behind for the next start to trip over.
        let _ = fs::remove_file(path);
        return Err(e);
    }
    match dir {
        Some(dir) => fs::File::open(dir)?.sync_all(),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    /// A throwaway test key made by `openssl genpkey -algorithm ed25519` (PKCS#8 v1).
    const OPENSSL_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----\n\
        MC4CAQAwBQYDK2VwBCIEIMr9kQp8qdbFd/C4pRCxDNbnPaoKtzCY1NSIQuRapVM0\n\
        -----END PRIVATE KEY-----\n";
    /// Its public half, from `openssl pkey -pubout`.
    const OPENSSL_PUBLIC: &str = "-----BEGIN PUBLIC KEY-----\n\
        MCowBQYDK2VwAyEAuOV9NqLmA23gbTiv5yj2BMc62l/iK5SzJBObWYMJYqg=\n\
        -----END PUBLIC KEY-----\n";

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn creates_once_then_loads_the_same_key() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("keys/lethe/log.pem");
        let created = load_or_create_signing_key(&path).expect("create");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(mode(&tmp.path().join("keys")), 0o700);
        assert_eq!(mode(&tmp.path().join("keys/lethe")), 0o700);
        let pem = fs::read_to_string(&path).expect("read");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----\n"));
        let loaded = load_or_create_signing_key(&path).expect("load");
        assert_eq!(loaded.to_bytes(), created.to_bytes());
        assert_eq!(
            signing_key_from_pem(&pem).expect("pem").to_bytes(),
            created.to_bytes()
        );
    }

    #[test]
    fn reads_openssl_keys_and_round_trips_public_keys() {
        let sk = signing_key_from_pem(OPENSSL_PRIVATE).expect("openssl key");
        assert_eq!(public_key_pem(&sk.verifying_key()), OPENSSL_PUBLIC);
        assert_eq!(
            public_key_from_pem(OPENSSL_PUBLIC).expect("public"),
            sk.verifying_key()
        );
    }

    #[test]
    fn bad_keys_are_reported_without_their_contents() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("log.pem");
        fs::write(&path, OPENSSL_PUBLIC).expect("write");
        let err = load_or_create_signing_key(&path).expect_err("a public key is no signing key");
        assert!(matches!(err, KeyError::InvalidKeyFile { .. }));
        let text = err.to_string();
        assert!(text.contains("log.pem") && !text.contains("MCow"), "{text}");
        // The unreadable file is left alone, not replaced by a new key.
        assert_eq!(fs::read_to_string(&path).expect("read"), OPENSSL_PUBLIC);

        assert!(matches!(
            signing_key_from_pem(OPENSSL_PUBLIC),
            Err(KeyError::InvalidPrivateKey)
        ));
        assert!(matches!(
            public_key_from_pem(OPENSSL_PRIVATE),
            Err(KeyError::InvalidPublicKey)
        ));
        let err = signing_key_from_pem(&OPENSSL_PRIVATE.replace("MC4C", "MC4D")).expect_err("bad");
        assert!(!err.to_string().contains("MC4"));
    }

    #[test]
    fn an_unwritable_location_is_an_error() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let blocker = tmp.path().join("file");
        fs::write(&blocker, "not a directory").expect("write");
        let err = load_or_create_signing_key(&blocker.join("log.pem")).expect_err("no dir");
        assert!(
            matches!(err, KeyError::Read { .. } | KeyError::Write { .. }),
            "{err}"
        );
    }
}
