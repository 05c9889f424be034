//! Types that hold customer content or secrets. Their `Debug` impls print sizes, never
//! bytes, so a stray `?value` in a tracing macro cannot leak them (redaction by construction).

use bytes::Bytes;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::fmt;

/// Customer content: audio, transcript JSON, prompts, LLM text. Never printed.
#[derive(Clone, PartialEq, Eq)]
pub struct Content(Bytes);

impl Content {
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Self(bytes.into())
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
    /// The bytes themselves; callers must not log them.
    pub fn expose(&self) -> &Bytes {
        &self.0
    }
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl fmt::Debug for Content {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Content(<{} bytes redacted>)", self.0.len())
    }
}

/// A raw API key as handed to the customer once. Only its hash is stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiKey(String);

impl ApiKey {
    /// 32 random bytes, hex encoded: long enough that a fast hash is a safe verifier.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        Self(hex::encode(bytes))
    }
    pub fn from_presented(raw: &str) -> Self {
        Self(raw.trim().to_owned())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
    pub fn hash(&self) -> ApiKeyHash {
        ApiKeyHash(hex::encode(Sha256::digest(self.0.as_bytes())))
    }
}

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ApiKey(<redacted>)")
    }
}

/// SHA-256 of an API key, hex encoded; what the account store keeps and looks up by.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ApiKeyHash(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_content_and_keys_never_shows_the_secret() {
        let content = Content::new("the patient said hello");
        let key = ApiKey::generate();
        assert!(!format!("{content:?}").contains("patient"));
        assert!(!format!("{key:?}").contains(key.expose()));
        assert_eq!(key.hash(), ApiKey::from_presented(key.expose()).hash());
        assert_ne!(key.hash().0, key.expose());
    }
}
