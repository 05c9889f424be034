//! Native TLS for the listener (rustls), with exactly the protocol versions and cipher
//! suites of retention.md §6:
//! - profile `async` (default): TLS 1.2 and 1.3, the three TLS 1.3 suites and the four
//!   ECDHE-ECDSA/RSA AES-GCM suites of TLS 1.2 (rustls' TLS 1.2 ChaCha20 suites are left out);
//! - profile `streaming`: TLS 1.3 only, its three suites.
//!
//! Which TLS 1.2 suites can actually be negotiated follows the certificate's key type
//! (ECDSA or RSA), as in any TLS server.

use anyhow::{bail, Context};
use rustls::crypto::aws_lc_rs::{self, cipher_suite};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, SupportedCipherSuite};
use std::path::Path;
use std::sync::Arc;

/// The TLS 1.3 suites both profiles accept.
pub const TLS13_SUITES: &[SupportedCipherSuite] = &[
    cipher_suite::TLS13_AES_128_GCM_SHA256,
    cipher_suite::TLS13_AES_256_GCM_SHA384,
    cipher_suite::TLS13_CHACHA20_POLY1305_SHA256,
];

/// The TLS 1.2 suites the `async` profile adds.
pub const TLS12_SUITES: &[SupportedCipherSuite] = &[
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
    cipher_suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
    cipher_suite::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
];

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TlsProfile {
    Async,
    Streaming,
}

impl std::str::FromStr for TlsProfile {
    type Err = &'static str;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match name {
            "async" => Ok(TlsProfile::Async),
            "streaming" => Ok(TlsProfile::Streaming),
            _ => Err("must be \"async\" or \"streaming\""),
        }
    }
}

impl TlsProfile {
    pub fn cipher_suites(self) -> Vec<SupportedCipherSuite> {
        match self {
            TlsProfile::Async => TLS13_SUITES.iter().chain(TLS12_SUITES).copied().collect(),
            TlsProfile::Streaming => TLS13_SUITES.to_vec(),
        }
    }

    pub fn versions(self) -> &'static [&'static rustls::SupportedProtocolVersion] {
        static ASYNC: &[&rustls::SupportedProtocolVersion] =
            &[&rustls::version::TLS13, &rustls::version::TLS12];
        static STREAMING: &[&rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
        match self {
            TlsProfile::Async => ASYNC,
            TlsProfile::Streaming => STREAMING,
        }
    }
}

/// The server configuration for `profile` with the PEM certificate chain and key.
pub fn server_config(
    cert: &Path,
    key: &Path,
    profile: TlsProfile,
) -> anyhow::Result<Arc<ServerConfig>> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .with_context(|| format!("cannot read the certificate {}", cert.display()))?
        .collect::<Result<_, _>>()
        .with_context(|| format!("{} is not a PEM certificate chain", cert.display()))?;
    if certs.is_empty() {
        bail!("{} holds no certificate", cert.display());
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a PEM private key from {}", key.display()))?;
    let provider = CryptoProvider {
        cipher_suites: profile.cipher_suites(),
        ..aws_lc_rs::default_provider()
    };
    let mut config = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(profile.versions())
        .context("the TLS protocol versions are not supported")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("the certificate and key do not form a usable pair")?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}
