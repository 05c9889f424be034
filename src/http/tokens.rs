//! The bearer tokens of the admin and internal APIs, and the one way they are compared.
//! (Loading them from configuration or the data dir is wiring: `startup`.)

use secrecy::{ExposeSecret, SecretString};

/// The bearer tokens of the admin and internal APIs.
#[derive(Clone, Debug)]
pub struct Tokens {
    pub admin: SecretString,
    pub internal: SecretString,
}

/// Whether two secrets are equal, in time independent of where they differ and of their
/// lengths: their SHA-256 digests (always 32 bytes) are compared, every byte.
pub fn token_matches(expected: &SecretString, presented: &str) -> bool {
    use sha2::{Digest, Sha256};
    let a = Sha256::digest(expected.expose_secret().as_bytes());
    let b = Sha256::digest(presented.as_bytes());
    a.iter()
        .zip(b.iter())
        .fold(0u8, |acc, (x, y)| acc | (x ^ y))
        == 0
}
