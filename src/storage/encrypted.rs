//! Encryption at rest for the embedded profile: every content object is sealed with
//! AES-256-GCM under a data key of its *scope* — its transcript, or for uploads the upload
//! itself — and each data key is stored wrapped (AES-256-GCM) by the master key.
//!
//! Content streams through in 64 KiB chunks (the STREAM construction of the `aead` crate,
//! big-endian 32-bit counter), so large uploads are never held whole in memory.
//!
//! **Crypto-shredding**: when a scope's content is gone, its data key is destroyed
//! ([`ContentStore::forget_scope`]). A copy of a content file taken before that (a backup)
//! can then no longer be decrypted, even with the master key. Object layout:
//! `LETHE1` (6 bytes) ‖ nonce prefix (7 bytes) ‖ sealed chunks.

use aes_gcm::aead::stream::{DecryptorBE32, EncryptorBE32};
use aes_gcm::aead::{Aead, KeyInit, OsRng};
use aes_gcm::{AeadCore, Aes256Gcm, Key, Nonce};
use async_trait::async_trait;
use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use rand::RngCore;
use std::fmt;
use std::sync::Arc;

use super::{ByteStream, ContentStore, Result, StorageError};
use crate::domain::Content;

const BACKEND: &str = "encryption";
const MAGIC: &[u8; 6] = b"LETHE1";
const PREFIX_LEN: usize = 7;
const HEADER_LEN: usize = MAGIC.len() + PREFIX_LEN;
/// Plaintext bytes per sealed chunk.
const CHUNK: usize = 64 * 1024;
/// A sealed chunk: plaintext plus the 16-byte tag.
const SEALED_CHUNK: usize = CHUNK + 16;

fn crypto_error(what: &str) -> StorageError {
    StorageError::Other {
        backend: BACKEND,
        source: what.to_owned().into(),
    }
}

/// The key that wraps every data key. Its `Debug` never prints it.
#[derive(Clone)]
pub struct MasterKey(Key<Aes256Gcm>);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// From 64 hexadecimal characters (32 bytes).
    pub fn from_hex(text: &str) -> std::result::Result<Self, String> {
        let bytes = hex::decode(text.trim())
            .map_err(|e| format!("the master key must be 64 hex characters: {e}"))?;
        if bytes.len() != 32 {
            return Err(format!(
                "the master key must be 32 bytes (64 hex characters); got {} bytes",
                bytes.len()
            ));
        }
        Ok(Self(*Key::<Aes256Gcm>::from_slice(&bytes)))
    }

    pub fn generate_hex() -> String {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        hex::encode(bytes)
    }

    fn wrap(&self, data_key: &[u8]) -> Result<Vec<u8>> {
        let nonce = Aes256Gcm::generate_nonce(&mut OsRng);
        let sealed = Aes256Gcm::new(&self.0)
            .encrypt(&nonce, data_key)
            .map_err(|_| crypto_error("wrapping a data key failed"))?;
        Ok([nonce.as_slice(), &sealed].concat())
    }

    fn unwrap_key(&self, wrapped: &[u8]) -> Result<Key<Aes256Gcm>> {
        if wrapped.len() < 12 {
            return Err(crypto_error("a wrapped data key is truncated"));
        }
        let (nonce, sealed) = wrapped.split_at(12);
        let key = Aes256Gcm::new(&self.0)
            .decrypt(Nonce::from_slice(nonce), sealed)
            .map_err(|_| crypto_error("a data key does not unwrap with this master key"))?;
        if key.len() != 32 {
            return Err(crypto_error("a data key has the wrong length"));
        }
        Ok(*Key::<Aes256Gcm>::from_slice(&key))
    }
}

/// What [`DataKeyStore::keys_and_rows`] reads for one object key. Its `Debug` shows sizes,
/// never bytes.
#[derive(Clone, Default)]
pub struct KeyAndRow {
    /// The wrapped data key of the object's scope, if it has one.
    pub wrapped: Option<Vec<u8>>,
    /// The sealed object, if it is held as a row.
    pub sealed: Option<Vec<u8>>,
}

/// The keys and rows a page's own statement read beside its artifacts
/// ([`super::PageWithArtifacts::content`]): one per artifact, in order, each under its object
/// key, and the database they came from.
#[derive(Clone, Debug)]
pub struct ReadWithPage {
    /// The [`DataKeyStore::identity`] of the database read.
    pub source: usize,
    pub objects: Vec<(String, KeyAndRow)>,
}

impl fmt::Debug for KeyAndRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyAndRow")
            .field("wrapped_bytes", &self.wrapped.as_ref().map(Vec::len))
            .field("sealed_bytes", &self.sealed.as_ref().map(Vec::len))
            .finish()
    }
}

/// Where wrapped data keys live (the embedded profile's SQLite file).
#[async_trait]
pub trait DataKeyStore: fmt::Debug + Send + Sync + 'static {
    /// The wrapped key of `scope`, if it exists.
    async fn data_key(&self, scope: &str) -> Result<Option<Vec<u8>>>;
    /// The wrapped keys of those of `scopes` that have one, in no particular order (one
    /// query where the store allows it). Default: [`data_key`](Self::data_key) for each.
    async fn data_keys(&self, scopes: &[&str]) -> Result<Vec<(String, Vec<u8>)>> {
        let mut found = Vec::with_capacity(scopes.len());
        for scope in scopes {
            if let Some(wrapped) = self.data_key(scope).await? {
                found.push(((*scope).to_owned(), wrapped));
            }
        }
        Ok(found)
    }
    /// For a store that also holds small sealed objects beside the keys (the embedded
    /// profile's SQLite file, [`super::sqlite_content`]): for each of `keys`, the wrapped
    /// key of its scope and its sealed row, read together in one query. `None` where the
    /// store holds no objects (the default).
    async fn keys_and_rows(&self, _keys: &[String]) -> Result<Option<Vec<KeyAndRow>>> {
        Ok(None)
    }
    /// Where [`keys_and_rows`](Self::keys_and_rows) reads: the same for every handle on one
    /// database, so keys and rows read elsewhere ([`ReadWithPage`]) are known to be this
    /// store's. `None` (the default) where the store holds no objects.
    fn identity(&self) -> Option<usize> {
        None
    }
    /// Stores `wrapped` for `scope` unless a key exists; returns the key in force.
    async fn create_data_key(&self, scope: &str, wrapped: &[u8]) -> Result<Vec<u8>>;
    /// Destroys the keys of `scopes` for good (including copies in the database's
    /// journal), in one write.
    async fn destroy_data_keys(&self, scopes: &[&str]) -> Result<()>;
    /// The scopes that have a key, in order after `after`, at most `limit`.
    async fn scopes(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>>;
}

/// A content store that encrypts everything it is given.
#[derive(Clone, Debug)]
pub struct EncryptedContentStore {
    inner: Arc<dyn ContentStore>,
    keys: Arc<dyn DataKeyStore>,
    master: MasterKey,
}

use crate::domain::content_scope as scope_of;

impl EncryptedContentStore {
    pub fn new(
        inner: Arc<dyn ContentStore>,
        keys: Arc<dyn DataKeyStore>,
        master: MasterKey,
    ) -> Self {
        Self {
            inner,
            keys,
            master,
        }
    }

    async fn key_for_writing(&self, scope: &str) -> Result<Key<Aes256Gcm>> {
        if let Some(wrapped) = self.keys.data_key(scope).await? {
            return self.master.unwrap_key(&wrapped);
        }
        let mut fresh = [0u8; 32];
        OsRng.fill_bytes(&mut fresh);
        let wrapped = self
            .keys
            .create_data_key(scope, &self.master.wrap(&fresh)?)
            .await?;
        self.master.unwrap_key(&wrapped)
    }

    async fn key_for_reading(&self, scope: &str) -> Result<Option<Key<Aes256Gcm>>> {
        match self.keys.data_key(scope).await? {
            Some(wrapped) => Ok(Some(self.master.unwrap_key(&wrapped)?)),
            None => Ok(None),
        }
    }

    fn decrypt_all(key: &Key<Aes256Gcm>, sealed: &[u8]) -> Result<Vec<u8>> {
        if sealed.len() < HEADER_LEN || &sealed[..MAGIC.len()] != MAGIC {
            return Err(crypto_error("not an encrypted Lethe object"));
        }
        let prefix = &sealed[MAGIC.len()..HEADER_LEN];
        let mut decryptor = DecryptorBE32::from_aead(Aes256Gcm::new(key), prefix.into());
        let body = &sealed[HEADER_LEN..];
        let mut plain = Vec::with_capacity(body.len());
        let mut chunks = body.chunks(SEALED_CHUNK).peekable();
        if chunks.peek().is_none() {
            return Err(crypto_error("an encrypted object has no final chunk"));
        }
        while let Some(chunk) = chunks.next() {
            if chunks.peek().is_some() {
                plain.extend(
                    decryptor
                        .decrypt_next(chunk)
                        .map_err(|_| crypto_error("content does not decrypt"))?,
                );
            } else {
                plain.extend(
                    decryptor
                        .decrypt_last(chunk)
                        .map_err(|_| crypto_error("content does not decrypt"))?,
                );
                break;
            }
        }
        Ok(plain)
    }
}

impl EncryptedContentStore {
    /// [`ContentStore::get_many`] from what [`DataKeyStore::keys_and_rows`] read: rows
    /// are opened at once, objects with a key and no row are read from the inner store.
    async fn open_keys_and_rows(
        &self,
        keys: &[String],
        found: Vec<KeyAndRow>,
    ) -> Result<Vec<Option<Content>>> {
        if found.len() != keys.len() {
            return Err(crypto_error(
                "a batch read of keys and rows answered the wrong number of objects",
            ));
        }
        let mut unwrapped: std::collections::HashMap<&str, Key<Aes256Gcm>> =
            std::collections::HashMap::new();
        let mut opened = Vec::with_capacity(keys.len());
        let mut elsewhere = Vec::new();
        for (key, read) in keys.iter().zip(found) {
            let Some(wrapped) = read.wrapped else {
                // The key is gone: whatever bytes remain are unreadable, i.e. deleted.
                opened.push(None);
                continue;
            };
            let scope = scope_of(key);
            let data_key = match unwrapped.get(scope) {
                Some(k) => *k,
                None => {
                    let k = self.master.unwrap_key(&wrapped)?;
                    unwrapped.insert(scope, k);
                    k
                }
            };
            match read.sealed {
                Some(sealed) => {
                    opened.push(Some(Content::new(Self::decrypt_all(&data_key, &sealed)?)))
                }
                None => {
                    elsewhere.push((opened.len(), key.clone(), data_key));
                    opened.push(None);
                }
            }
        }
        if !elsewhere.is_empty() {
            let files: Vec<String> = elsewhere.iter().map(|(_, key, _)| key.clone()).collect();
            let sealed = self.inner.get_many(&files).await?;
            if sealed.len() != files.len() {
                return Err(crypto_error(
                    "a batch read answered the wrong number of objects",
                ));
            }
            for ((slot, _, data_key), object) in elsewhere.into_iter().zip(sealed) {
                if let Some(object) = object {
                    opened[slot] =
                        Some(Content::new(Self::decrypt_all(&data_key, object.expose())?));
                }
            }
        }
        Ok(opened)
    }
}

/// Seals a plaintext stream chunk by chunk: the header, then each full chunk as it is
/// known not to be the last, then the last one.
fn encrypting(key: Key<Aes256Gcm>, plain: ByteStream) -> ByteStream {
    let mut prefix = [0u8; PREFIX_LEN];
    OsRng.fill_bytes(&mut prefix);
    let header = Bytes::from([MAGIC.as_slice(), &prefix].concat());
    let encryptor = EncryptorBE32::from_aead(Aes256Gcm::new(&key), prefix.as_slice().into());
    Box::pin(sealing(header, encryptor, plain))
}

/// State of the sealing stream.
struct Sealing {
    header: Option<Bytes>,
    encryptor: Option<EncryptorBE32<Aes256Gcm>>,
    plain: ByteStream,
    buffer: BytesMut,
    finished: bool,
}

fn sealing(
    header: Bytes,
    encryptor: EncryptorBE32<Aes256Gcm>,
    plain: ByteStream,
) -> impl futures::Stream<Item = std::io::Result<Bytes>> + Send {
    let state = Sealing {
        header: Some(header),
        encryptor: Some(encryptor),
        plain,
        buffer: BytesMut::new(),
        finished: false,
    };
    futures::stream::unfold(state, |mut st| async move {
        if let Some(header) = st.header.take() {
            return Some((Ok(header), st));
        }
        if st.finished {
            return None;
        }
        loop {
            // More than a chunk buffered: this chunk is not the last one.
            if st.buffer.len() > CHUNK {
                let chunk = st.buffer.split_to(CHUNK);
                let sealed = st
                    .encryptor
                    .as_mut()
                    .map(|e| e.encrypt_next(chunk.as_ref()));
                return match sealed {
                    Some(Ok(sealed)) => Some((Ok(Bytes::from(sealed)), st)),
                    _ => {
                        st.finished = true;
                        Some((Err(std::io::Error::other("encryption failed")), st))
                    }
                };
            }
            match st.plain.next().await {
                Some(Ok(bytes)) => st.buffer.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.finished = true;
                    let last = st.buffer.split();
                    let sealed = st.encryptor.take().map(|e| e.encrypt_last(last.as_ref()));
                    return match sealed {
                        Some(Ok(sealed)) => Some((Ok(Bytes::from(sealed)), st)),
                        _ => Some((Err(std::io::Error::other("encryption failed")), st)),
                    };
                }
            }
        }
    })
}

/// State of the opening stream.
struct Opening {
    decryptor: Option<DecryptorBE32<Aes256Gcm>>,
    key: Key<Aes256Gcm>,
    sealed: ByteStream,
    buffer: BytesMut,
    finished: bool,
}

fn opening(key: Key<Aes256Gcm>, sealed: ByteStream) -> ByteStream {
    let state = Opening {
        decryptor: None,
        key,
        sealed,
        buffer: BytesMut::new(),
        finished: false,
    };
    Box::pin(futures::stream::unfold(state, |mut st| async move {
        if st.finished {
            return None;
        }
        loop {
            if st.decryptor.is_none() && st.buffer.len() >= HEADER_LEN {
                if &st.buffer[..MAGIC.len()] != MAGIC {
                    st.finished = true;
                    return Some((
                        Err(std::io::Error::other("not an encrypted Lethe object")),
                        st,
                    ));
                }
                let header = st.buffer.split_to(HEADER_LEN);
                st.decryptor = Some(DecryptorBE32::from_aead(
                    Aes256Gcm::new(&st.key),
                    header[MAGIC.len()..].into(),
                ));
            }
            if st.decryptor.is_some() && st.buffer.len() > SEALED_CHUNK {
                let chunk = st.buffer.split_to(SEALED_CHUNK);
                let opened = st
                    .decryptor
                    .as_mut()
                    .map(|d| d.decrypt_next(chunk.as_ref()));
                return match opened {
                    Some(Ok(plain)) => Some((Ok(Bytes::from(plain)), st)),
                    _ => {
                        st.finished = true;
                        Some((Err(std::io::Error::other("content does not decrypt")), st))
                    }
                };
            }
            match st.sealed.next().await {
                Some(Ok(bytes)) => st.buffer.extend_from_slice(&bytes),
                Some(Err(e)) => {
                    st.finished = true;
                    return Some((Err(e), st));
                }
                None => {
                    st.finished = true;
                    let last = st.buffer.split();
                    let opened = st.decryptor.take().map(|d| d.decrypt_last(last.as_ref()));
                    return match opened {
                        Some(Ok(plain)) => Some((Ok(Bytes::from(plain)), st)),
                        _ => Some((Err(std::io::Error::other("content does not decrypt")), st)),
                    };
                }
            }
        }
    }))
}

#[async_trait]
impl ContentStore for EncryptedContentStore {
    async fn put(&self, key: &str, content: Content) -> Result<u64> {
        let len = content.len() as u64;
        let bytes = content.into_bytes();
        let body: ByteStream = Box::pin(futures::stream::once(async move { Ok(bytes) }));
        self.put_stream(key, body).await?;
        Ok(len)
    }

    async fn put_stream(&self, key: &str, stream: ByteStream) -> Result<u64> {
        let data_key = self.key_for_writing(scope_of(key)).await?;
        let counted = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
        let counter = counted.clone();
        let plain: ByteStream = Box::pin(stream.inspect(move |chunk| {
            if let Ok(bytes) = chunk {
                counter.fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
            }
        }));
        self.inner
            .put_stream(key, encrypting(data_key, plain))
            .await?;
        Ok(counted.load(std::sync::atomic::Ordering::Relaxed))
    }

    async fn get(&self, key: &str) -> Result<Option<Content>> {
        let Some(data_key) = self.key_for_reading(scope_of(key)).await? else {
            // The key is gone: whatever bytes remain are unreadable, i.e. deleted.
            return Ok(None);
        };
        match self.inner.get(key).await? {
            Some(sealed) => Ok(Some(Content::new(Self::decrypt_all(
                &data_key,
                sealed.expose(),
            )?))),
            None => Ok(None),
        }
    }

    /// One query for the keys of all the scopes, one batch read of the objects whose
    /// scope still has a key; an object without one reads as deleted, as in `get`. Where
    /// the key store holds the small objects too, keys and rows come in one query and
    /// only objects kept as files need another read.
    async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<Content>>> {
        if let Some(found) = self.keys.keys_and_rows(keys).await? {
            return self.open_keys_and_rows(keys, found).await;
        }
        let mut scopes: Vec<&str> = keys.iter().map(|key| scope_of(key)).collect();
        scopes.sort_unstable();
        scopes.dedup();
        let mut data_keys = std::collections::HashMap::with_capacity(scopes.len());
        for (scope, wrapped) in self.keys.data_keys(&scopes).await? {
            data_keys.insert(scope, self.master.unwrap_key(&wrapped)?);
        }
        let readable: Vec<String> = keys
            .iter()
            .filter(|key| data_keys.contains_key(scope_of(key)))
            .cloned()
            .collect();
        let sealed = self.inner.get_many(&readable).await?;
        if sealed.len() != readable.len() {
            return Err(crypto_error(
                "a batch read answered the wrong number of objects",
            ));
        }
        let mut sealed = sealed.into_iter();
        let mut found = Vec::with_capacity(keys.len());
        for key in keys {
            let Some(data_key) = data_keys.get(scope_of(key)) else {
                found.push(None);
                continue;
            };
            found.push(match sealed.next().flatten() {
                Some(object) => Some(Content::new(Self::decrypt_all(data_key, object.expose())?)),
                None => None,
            });
        }
        Ok(found)
    }

    /// Keys and rows the index read beside a page from this store's own database are
    /// opened as [`DataKeyStore::keys_and_rows`]'s would be; any others are not trusted,
    /// and the objects are read again.
    async fn get_many_read(
        &self,
        keys: &[String],
        read: ReadWithPage,
    ) -> Result<Vec<Option<Content>>> {
        if self.keys.identity() != Some(read.source) {
            return self.get_many(keys).await;
        }
        // Sealed objects do not name their keys: one out of step would open as another's.
        let in_step = read.objects.len() == keys.len()
            && read
                .objects
                .iter()
                .zip(keys)
                .all(|((read, _), key)| read == key);
        if !in_step {
            return Err(crypto_error(
                "keys and rows read with a page do not match the objects asked for",
            ));
        }
        let found = read.objects.into_iter().map(|(_, found)| found).collect();
        self.open_keys_and_rows(keys, found).await
    }

    async fn get_stream(&self, key: &str) -> Result<Option<ByteStream>> {
        let Some(data_key) = self.key_for_reading(scope_of(key)).await? else {
            return Ok(None);
        };
        Ok(self
            .inner
            .get_stream(key)
            .await?
            .map(|sealed| opening(data_key, sealed)))
    }

    async fn delete(&self, key: &str) -> Result<()> {
        self.inner.delete(key).await
    }

    async fn delete_many(&self, keys: &[String]) -> Vec<Result<()>> {
        self.inner.delete_many(keys).await
    }

    /// The keys of these objects are destroyed before their deletion is recorded, so their
    /// removal need not be durable by itself.
    async fn delete_many_shredded(&self, keys: &[String]) -> Vec<Result<()>> {
        self.inner.delete_many_unsynced(keys).await
    }

    async fn list(
        &self,
        prefix: &str,
        after: Option<&str>,
        limit: u32,
    ) -> Result<Vec<super::ObjectInfo>> {
        self.inner.list(prefix, after, limit).await
    }

    async fn scopes_with_keys(&self, after: Option<&str>, limit: u32) -> Result<Vec<String>> {
        self.keys.scopes(after, limit).await
    }

    async fn forget_scope(&self, scope: &str) -> Result<()> {
        self.keys.destroy_data_keys(&[scope]).await
    }

    async fn forget_scopes(&self, scopes: &[&str]) -> Result<()> {
        self.keys.destroy_data_keys(scopes).await
    }
}
