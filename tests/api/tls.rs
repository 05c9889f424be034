//! retention.md §6 encryption in transit: `openssl s_client` against the real listener,
//! for both profiles. Every allowed suite is negotiated; disallowed ones are refused.

use lethe::clock::SystemClock;
use lethe::config::Config;
use lethe::http::Tokens;
use lethe::startup::App;
use secrecy::SecretString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

fn openssl(args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is needed for the TLS tests ({e}); install the openssl package")
        })
}

/// A self-signed certificate for localhost: `rsa` or `ec` (P-256).
fn certificate(dir: &Path, kind: &str) -> (PathBuf, PathBuf) {
    let (cert, key) = (
        dir.join(format!("{kind}.crt")),
        dir.join(format!("{kind}.key")),
    );
    let key_args: &[&str] = if kind == "rsa" {
        &["-newkey", "rsa:2048"]
    } else {
        &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"]
    };
    let mut args = vec![
        "req",
        "-x509",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=localhost",
    ];
    args.extend_from_slice(key_args);
    let (cert_s, key_s) = (
        cert.to_str().expect("path").to_owned(),
        key.to_str().expect("path").to_owned(),
    );
    args.extend_from_slice(&["-keyout", &key_s, "-out", &cert_s]);
    let out = openssl(&args);
    assert!(
        out.status.success(),
        "openssl req failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (cert, key)
}

struct TlsServer {
    port: u16,
    _stop: tokio_util::sync::DropGuard,
    _dir: tempfile::TempDir,
}

async fn serve(cert: &Path, key: &Path, profile: &str) -> TlsServer {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    config.tls_cert = Some(cert.to_owned());
    config.tls_key = Some(key.to_owned());
    config.tls_profile = profile.parse().expect("a profile");
    let app = App::build(config, Arc::new(SystemClock))
        .await
        .expect("app");
    let tokens = Tokens {
        admin: SecretString::from("a"),
        internal: SecretString::from("i"),
    };
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move { app.run(listener, tokens, token).await.expect("serves") });
    TlsServer {
        port,
        _stop: stop.drop_guard(),
        _dir: dir,
    }
}

/// Tries one handshake; returns the negotiated cipher, or `None` if refused.
async fn handshake(port: u16, version: &str, cipher: &str) -> Option<String> {
    let port = port.to_string();
    let (version, cipher) = (version.to_owned(), cipher.to_owned());
    tokio::task::spawn_blocking(move || {
        let connect = format!("127.0.0.1:{port}");
        let mut args = vec![
            "s_client",
            "-connect",
            connect.as_str(),
            "-servername",
            "localhost",
            version.as_str(),
        ];
        if version == "-tls1_3" {
            args.extend_from_slice(&["-ciphersuites", cipher.as_str()]);
        } else {
            args.extend_from_slice(&["-cipher", cipher.as_str()]);
        }
        let out = Command::new("openssl")
            .args(&args)
            .stdin(std::process::Stdio::null())
            .output()
            .expect("openssl runs");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let negotiated = text
            .lines()
            .find_map(|l| l.split("Cipher is ").nth(1))
            .map(str::trim)
            .map(str::to_owned);
        negotiated.filter(|c| c != "(NONE)" && out.status.success())
    })
    .await
    .expect("join")
}

const TLS13: &[&str] = &[
    "TLS_AES_128_GCM_SHA256",
    "TLS_AES_256_GCM_SHA384",
    "TLS_CHACHA20_POLY1305_SHA256",
];

#[tokio::test]
async fn s6_tls_async_profile_accepts_exactly_tls12_and_13_with_the_seven_suites() {
    let certs = tempfile::tempdir().expect("tempdir");
    for (kind, tls12) in [
        (
            "rsa",
            ["ECDHE-RSA-AES128-GCM-SHA256", "ECDHE-RSA-AES256-GCM-SHA384"],
        ),
        (
            "ec",
            [
                "ECDHE-ECDSA-AES128-GCM-SHA256",
                "ECDHE-ECDSA-AES256-GCM-SHA384",
            ],
        ),
    ] {
        let (cert, key) = certificate(certs.path(), kind);
        let server = serve(&cert, &key, "async").await;
        for suite in tls12 {
            assert_eq!(
                handshake(server.port, "-tls1_2", suite).await.as_deref(),
                Some(suite),
                "{kind}: TLS 1.2 {suite}"
            );
        }
        for suite in TLS13 {
            assert_eq!(
                handshake(server.port, "-tls1_3", suite).await.as_deref(),
                Some(*suite),
                "{kind}: TLS 1.3 {suite}"
            );
        }
        let refused = [
            (
                "-tls1_2",
                if kind == "rsa" {
                    "ECDHE-RSA-AES128-SHA"
                } else {
                    "ECDHE-ECDSA-AES128-SHA"
                },
            ),
            (
                "-tls1_2",
                if kind == "rsa" {
                    "ECDHE-RSA-AES256-SHA384"
                } else {
                    "ECDHE-ECDSA-AES256-SHA384"
                },
            ),
            (
                "-tls1_2",
                if kind == "rsa" {
                    "ECDHE-RSA-CHACHA20-POLY1305"
                } else {
                    "ECDHE-ECDSA-CHACHA20-POLY1305"
                },
            ),
            ("-tls1_2", "AES128-GCM-SHA256"),
            ("-tls1_1", "DEFAULT:@SECLEVEL=0"),
            ("-tls1_3", "TLS_AES_128_CCM_SHA256"),
        ];
        for (version, suite) in refused {
            assert_eq!(
                handshake(server.port, version, suite).await,
                None,
                "{kind}: {version} {suite} must be refused"
            );
        }
    }
}

#[tokio::test]
async fn s6_tls_streaming_profile_accepts_tls13_only_with_its_three_suites() {
    let certs = tempfile::tempdir().expect("tempdir");
    let (cert, key) = certificate(certs.path(), "ec");
    let server = serve(&cert, &key, "streaming").await;
    for suite in TLS13 {
        assert_eq!(
            handshake(server.port, "-tls1_3", suite).await.as_deref(),
            Some(*suite),
            "TLS 1.3 {suite}"
        );
    }
    for (version, suite) in [
        ("-tls1_2", "ECDHE-ECDSA-AES128-GCM-SHA256"),
        ("-tls1_2", "ECDHE-ECDSA-AES256-GCM-SHA384"),
        ("-tls1_1", "DEFAULT:@SECLEVEL=0"),
        ("-tls1_3", "TLS_AES_128_CCM_SHA256"),
    ] {
        assert_eq!(
            handshake(server.port, version, suite).await,
            None,
            "{version} {suite} must be refused"
        );
    }
}

#[tokio::test]
async fn tls_needs_both_a_certificate_and_a_key_and_says_so() {
    let dir = tempfile::tempdir().expect("tempdir");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let mut config = Config::defaults();
    config.data_dir = dir.path().to_owned();
    config.tls_cert = Some(dir.path().join("cert.pem"));
    let app = App::build(config, Arc::new(SystemClock))
        .await
        .expect("app");
    let tokens = Tokens {
        admin: SecretString::from("a"),
        internal: SecretString::from("i"),
    };
    let err = app
        .run(listener, tokens, CancellationToken::new())
        .await
        .expect_err("refused");
    assert!(
        err.to_string().contains("LETHE_TLS_CERT and LETHE_TLS_KEY"),
        "{err}"
    );
}
