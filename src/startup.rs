//! Wiring: configuration → backends → engine → sweeper (and the HTTP server).
//! [`Backends::from_config`] is the one place the profile is chosen.

use anyhow::{bail, Context};
use secrecy::{ExposeSecret, SecretString};
use std::path::Path;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::Clock;
use crate::config::Config;
use crate::engine::{Engine, LogSigner};
use crate::http::{AppState, Tokens};
use crate::storage::aws::RequestCounter;
use crate::storage::dynamodb::DynamoIndex;
use crate::storage::encrypted::{DataKeyStore, EncryptedContentStore, MasterKey};
use crate::storage::local::LocalContentStore;
use crate::storage::postgres::PostgresStore;
use crate::storage::s3::S3ContentStore;
use crate::storage::sqlite::SqliteStore;
use crate::storage::sqlite_content::SqliteInlineContentStore;
use crate::storage::{AccountStore, ArtifactIndex, AuditLog, Backends, ContentStore};
use crate::sweeper::{Sweeper, SweeperConfig};
use tokio::net::TcpListener;

impl Backends {
    /// The embedded profile unless configured otherwise: `LETHE_DATABASE_URL=postgres://…`
    /// puts accounts and the audit log in PostgreSQL, `LETHE_DYNAMODB_TABLE` the artifact
    /// index in DynamoDB, `LETHE_S3_BUCKET` the content in S3.
    /// `clock` dates the rows of small objects; content files keep the filesystem's mtime.
    pub async fn from_config(config: &Config, clock: Arc<dyn Clock>) -> anyhow::Result<Backends> {
        private_dir(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
        let aws_requests = RequestCounter::default();
        let sdk = match config.dynamodb_table.is_some() || config.s3_bucket.is_some() {
            true => Some(crate::storage::aws::sdk_config().await),
            false => None,
        };
        let postgres = match &config.database_url {
            Some(url) if url.starts_with("postgres:") || url.starts_with("postgresql:") => {
                Some(Arc::new(PostgresStore::connect(url).await.context(
                    "cannot connect to PostgreSQL (LETHE_DATABASE_URL)",
                )?))
            }
            Some(url) if !url.starts_with("sqlite:") => {
                bail!("LETHE_DATABASE_URL must start with sqlite:// or postgres://")
            }
            _ => None,
        };
        let needs_sqlite = postgres.is_none() || config.dynamodb_table.is_none();
        let mut held_in_memory = None;
        let sqlite = match needs_sqlite {
            false => None,
            true => {
                let store = match &config.database_url {
                    Some(url) if url.starts_with("sqlite:") => SqliteStore::open_url(url).await,
                    _ => open_private_sqlite(&config.data_dir.join("lethe.db")).await,
                }
                .context("cannot open the SQLite database")?;
                let store = Arc::new(store);
                if hold_if_configured(config, &store).await? {
                    held_in_memory = Some(store.clone());
                }
                Some(store)
            }
        };
        let (accounts, audit): (Arc<dyn AccountStore>, Arc<dyn AuditLog>) =
            match (&postgres, &sqlite) {
                (Some(pg), _) => (pg.clone(), pg.clone()),
                (None, Some(sql)) => {
                    sql.keeps_accounts();
                    (sql.clone(), sql.clone())
                }
                (None, None) => {
                    unreachable!("SQLite is opened whenever PostgreSQL is not configured")
                }
            };
        let index: Arc<dyn ArtifactIndex> = match (&config.dynamodb_table, &sdk, &sqlite) {
            (Some(table), Some(sdk), _) => Arc::new(DynamoIndex::new(
                crate::storage::aws::dynamodb_client(sdk, &aws_requests),
                table,
            )),
            (None, _, Some(sql)) => sql.clone(),
            _ => bail!("the artifact index needs LETHE_DYNAMODB_TABLE or SQLite"),
        };
        let content: Arc<dyn ContentStore> = match (&config.s3_bucket, &sdk) {
            // S3 encrypts every object server-side (AES256).
            (Some(bucket), Some(sdk)) => {
                let store =
                    S3ContentStore::new(crate::storage::aws::s3_client(sdk, &aws_requests), bucket);
                // Learnt once, at start: on a versioned bucket deletions remove every version.
                store
                    .is_versioned()
                    .await
                    .with_context(|| format!("cannot use the S3 bucket {bucket}"))?;
                Arc::new(store)
            }
            // Local files: AES-256-GCM under a data key per transcript or upload.
            _ => {
                let files = LocalContentStore::open(&config.data_dir.join("content"))
                    .await
                    .context("cannot open the content directory")?;
                let db: Arc<SqliteStore> = match &sqlite {
                    Some(sql) => sql.clone(),
                    None => {
                        let store = Arc::new(
                            open_private_sqlite(&config.data_dir.join("lethe.db"))
                                .await
                                .context(
                                    "cannot open the SQLite database that holds the data keys",
                                )?,
                        );
                        if hold_if_configured(config, &store).await? {
                            held_in_memory = Some(store.clone());
                        }
                        store
                    }
                };
                // Small sealed objects are rows of the same file, larger ones files.
                let objects = SqliteInlineContentStore::new((*db).clone(), Arc::new(files), clock);
                if let (None, Some(_)) = (&config.dynamodb_table, &sqlite) {
                    // The index is this file too: a page reads its URLs' keys and rows.
                    db.keeps_content();
                }
                let keys: Arc<dyn DataKeyStore> = db;
                Arc::new(EncryptedContentStore::new(
                    Arc::new(objects),
                    keys,
                    master_key(config)?,
                ))
            }
        };
        // One sync per ingest request (storage::durability) only where every store is the
        // one SQLite file: a write to DynamoDB, S3 or PostgreSQL is durable at once and
        // could outlive the unsynced SQLite writes it depends on.
        let content_local = config.s3_bucket.is_none() || sdk.is_none();
        if config.sqlite_hold_in_memory && sqlite.is_none() && !content_local {
            tracing::warn!(
                "LETHE_SQLITE_HOLD_IN_MEMORY is set, but this profile keeps nothing in SQLite"
            );
        }
        if let (None, None, true, Some(sql)) =
            (&postgres, &config.dynamodb_table, content_local, &sqlite)
        {
            sql.allow_deferred_durability();
        }
        Ok(Backends {
            accounts,
            index,
            content,
            audit,
            aws_requests,
            held_in_memory,
        })
    }
}

/// `LETHE_SQLITE_HOLD_IN_MEMORY`: the file's pages held before anything is served.
/// Whether they are (a database in memory is not a file to hold).
async fn hold_if_configured(config: &Config, store: &SqliteStore) -> anyhow::Result<bool> {
    if !config.sqlite_hold_in_memory {
        return Ok(false);
    }
    tracing::info!("holding the SQLite database in memory (LETHE_SQLITE_HOLD_IN_MEMORY)");
    let held = store
        .hold_in_memory()
        .await
        .context("cannot hold the SQLite database in memory (LETHE_SQLITE_HOLD_IN_MEMORY)")?;
    let Some(held) = held else {
        tracing::info!("the SQLite database is in memory already");
        return Ok(false);
    };
    let mb = |bytes: u64| format!("{:.1} MB", bytes as f64 / 1e6);
    tracing::info!(
        size = %mb(held.bytes),
        pages = held.pages,
        seconds = held.took.as_secs_f64(),
        mapped = held.mapped.map(mb),
        "the SQLite database is held in memory"
    );
    // Page 1 and the WAL's newest copies are read without the mapping: a few pages short.
    if let Some(mapped) = held.mapped.filter(|m| *m < held.bytes / 10 * 9) {
        tracing::warn!(
            mapped = %mb(mapped),
            size = %mb(held.bytes),
            "only part of the SQLite database stayed mapped: the rest is cached as the OS decides"
        );
    }
    Ok(true)
}

/// The SQLite file, created readable by the owner only (SQLite gives its `-wal` and
/// `-shm` files the same permissions), and tightened if an older Lethe made it 0644.
async fn open_private_sqlite(path: &Path) -> crate::storage::Result<SqliteStore> {
    for file in [
        path.to_owned(),
        path.with_extension("db-wal"),
        path.with_extension("db-shm"),
    ] {
        if file == path || file.exists() {
            private_file(&file).map_err(|e| crate::storage::StorageError::Other {
                backend: "sqlite",
                source: Box::new(e),
            })?;
        }
    }
    SqliteStore::open(path).await
}

/// The master key: `LETHE_MASTER_KEY`, or the key file in the data dir (created on first
/// use, readable by the owner only).
pub fn master_key(config: &Config) -> anyhow::Result<MasterKey> {
    if let Some(key) = &config.master_key {
        return MasterKey::from_hex(key.expose_secret())
            .map_err(|e| anyhow::anyhow!("LETHE_MASTER_KEY: {e}"));
    }
    let file = config.data_dir.join("master_key");
    match std::fs::read_to_string(&file) {
        Ok(text) => {
            MasterKey::from_hex(&text).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let generated = MasterKey::generate_hex();
            write_private(&file, &generated)
                .with_context(|| format!("cannot write {}", file.display()))?;
            tracing::info!(path = %file.display(), "generated the master key");
            MasterKey::from_hex(&generated).map_err(anyhow::Error::msg)
        }
        Err(e) => Err(e).with_context(|| format!("cannot read {}", file.display())),
    }
}

/// `lethe provision`: the DynamoDB table (indexes, TTL) and the S3 bucket, idempotently.
/// `now` starts the due index's watermark (the day from which sweeps read it).
pub async fn provision(
    config: &Config,
    now: chrono::DateTime<chrono::Utc>,
) -> anyhow::Result<Vec<String>> {
    if config.dynamodb_table.is_none() && config.s3_bucket.is_none() {
        bail!("nothing to provision: set LETHE_DYNAMODB_TABLE and/or LETHE_S3_BUCKET (and AWS_ENDPOINT_URL for LocalStack or moto)");
    }
    let sdk = crate::storage::aws::sdk_config().await;
    let counter = RequestCounter::default();
    let mut done = Vec::new();
    if let Some(table) = &config.dynamodb_table {
        DynamoIndex::new(crate::storage::aws::dynamodb_client(&sdk, &counter), table)
            .provision(now)
            .await
            .with_context(|| format!("cannot provision the DynamoDB table {table}"))?;
        let indexes: Vec<&str> = crate::storage::dynamodb::INDEXES
            .iter()
            .map(|(name, _, _)| *name)
            .collect();
        done.push(format!(
            "DynamoDB table {table}: ready (indexes {}; TTL on {}; due-day directory complete)",
            indexes.join(" "),
            crate::storage::dynamodb::TTL_ATTRIBUTE
        ));
    }
    if let Some(bucket) = &config.s3_bucket {
        S3ContentStore::new(crate::storage::aws::s3_client(&sdk, &counter), bucket)
            .provision()
            .await
            .with_context(|| format!("cannot provision the S3 bucket {bucket}"))?;
        done.push(format!("S3 bucket {bucket}: ready"));
    }
    Ok(done)
}

/// The webhook delivery loop: a round every few seconds and whenever a delivery is added,
/// apart from the sweeper so a slow receiver never delays a deletion.
async fn deliver_webhooks(engine: Engine, shutdown: CancellationToken) {
    let added = engine.webhooks_due();
    loop {
        if let Err(error) = engine.deliver_webhooks().await {
            tracing::warn!(error = %error, "webhook delivery round failed; the next one retries");
        }
        let wake_at = crate::engine::webhooks::next_round(engine.now());
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = added.notified() => {}
            _ = engine.clock().sleep_until(wake_at) => {}
        }
    }
}

/// The deletion log's signer: `LETHE_LOG_SIGNING_KEY`, or a key kept in the data dir
/// (created at 0600 on first start).
pub fn log_signer(config: &Config) -> anyhow::Result<LogSigner> {
    let key = match &config.log_signing_key {
        Some(pem) => crate::receipts::signing_key_from_pem(pem.expose_secret())
            .context("LETHE_LOG_SIGNING_KEY is not a PKCS#8 PEM Ed25519 private key")?,
        None => {
            let path = config.data_dir.join("deletion_log_key.pem");
            crate::receipts::load_or_create_signing_key(&path).with_context(|| {
                format!(
                    "cannot read or create the deletion log key {}",
                    path.display()
                )
            })?
        }
    };
    Ok(LogSigner {
        name: config.log_name(),
        key,
    })
}

impl Tokens {
    /// From configuration, or from the data dir, generating (and printing once) what is missing.
    pub fn load_or_generate(config: &Config) -> anyhow::Result<Tokens> {
        private_dir(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
        Ok(Tokens {
            admin: token(
                config.admin_token.as_ref(),
                &config.data_dir.join("admin_token"),
                "admin",
            )?,
            internal: token(
                config.internal_token.as_ref(),
                &config.data_dir.join("internal_token"),
                "internal",
            )?,
        })
    }
}

fn token(
    configured: Option<&SecretString>,
    file: &Path,
    what: &str,
) -> anyhow::Result<SecretString> {
    if let Some(token) = configured {
        return Ok(token.clone());
    }
    if let Ok(text) = std::fs::read_to_string(file) {
        let text = text.trim().to_owned();
        if !text.is_empty() {
            return Ok(SecretString::from(text));
        }
    }
    let generated = crate::domain::ApiKey::generate().expose().to_owned();
    write_private(file, &generated).with_context(|| format!("cannot write {}", file.display()))?;
    // Printed once, to the terminal that started Engine, never to the log.
    println!(
        "generated the {what} API token (kept in {}): {generated}",
        file.display()
    );
    Ok(SecretString::from(generated))
}

fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()
}

/// A built application: engine, sweeper and API over the configured backends.
#[derive(Debug, Clone)]
pub struct App {
    pub config: Arc<Config>,
    pub engine: Engine,
    pub sweeper: Arc<Sweeper>,
}

impl App {
    pub async fn build(config: Config, clock: Arc<dyn Clock>) -> anyhow::Result<App> {
        let backends = Backends::from_config(&config, clock.clone()).await?;
        let signer = log_signer(&config)?;
        let app = Self::assemble(config, clock, backends, signer);
        let logged = app
            .engine
            .log_earlier_tombstones()
            .await
            .context("cannot add earlier tombstones to the deletion log")?;
        if logged > 0 {
            tracing::info!(
                tombstones = logged,
                "added tombstones recorded before the deletion log existed to it"
            );
        }
        Ok(app)
    }

    /// The HTTP state over this app.
    pub fn http_state(&self, tokens: Tokens) -> AppState {
        AppState {
            engine: self.engine.clone(),
            sweeper: self.sweeper.clone(),
            base_url: self.config.public_base_url().into(),
            config: self.config.clone(),
            tokens,
            gauges_read_at: Default::default(),
        }
    }

    /// An app over given backends (tests, benchmarks). Panics if the deletion log's key
    /// cannot be read or created; [`App::build`] reports that as an error.
    pub fn with_backends(config: Config, clock: Arc<dyn Clock>, backends: Backends) -> App {
        let signer = log_signer(&config).expect("the deletion log's signing key");
        Self::assemble(config, clock, backends, signer)
    }

    fn assemble(
        config: Config,
        clock: Arc<dyn Clock>,
        backends: Backends,
        signer: LogSigner,
    ) -> App {
        let engine = Engine::new(
            backends,
            clock,
            config.platform_policy(),
            config.claim_lease,
            signer,
            &config.public_base_url(),
        )
        .with_private_webhook_targets(config.webhook_private_targets);
        let sweeper = Arc::new(Sweeper::new(engine.clone(), SweeperConfig::from(&config)));
        App {
            config: Arc::new(config),
            engine,
            sweeper,
        }
    }

    /// Serves the API on `listener` (TLS only when `LETHE_TLS_CERT` and `LETHE_TLS_KEY`
    /// are set) and runs the sweeper loop until `shutdown`; requests in flight and the
    /// sweep pass in progress finish first.
    pub async fn run(
        self,
        listener: TcpListener,
        tokens: Tokens,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()> {
        let tls = match (&self.config.tls_cert, &self.config.tls_key) {
            (Some(cert), Some(key)) => Some(crate::tls::server_config(
                cert,
                key,
                self.config.tls_profile,
            )?),
            (None, None) => None,
            _ => bail!(
                "set both LETHE_TLS_CERT and LETHE_TLS_KEY for TLS, or neither for plain HTTP"
            ),
        };
        let tracker = TaskTracker::new();
        tracker.spawn(self.sweeper.clone().run(shutdown.child_token()));
        tracker.spawn(deliver_webhooks(
            self.engine.clone(),
            shutdown.child_token(),
        ));
        tracker.close();
        let router = crate::http::router(self.http_state(tokens));
        let header_read = self.config.header_read_timeout();
        let served = match tls {
            None => crate::http::server::serve(listener, router, header_read, shutdown.clone())
                .await
                .context("the HTTP server failed"),
            Some(tls) => {
                let handle = axum_server::Handle::new();
                let stopper = handle.clone();
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    stop.cancelled().await;
                    stopper.graceful_shutdown(Some(std::time::Duration::from_secs(30)));
                });
                let mut server = axum_server::from_tcp_rustls(
                    listener.into_std()?,
                    axum_server::tls_rustls::RustlsConfig::from_config(tls),
                );
                crate::http::server::limit_connections(server.http_builder(), header_read);
                server
                    .handle(handle)
                    .serve(router.into_make_service())
                    .await
                    .context("the HTTPS server failed")
            }
        };
        // Whatever ended the server also ends the sweeper; passes in progress finish.
        shutdown.cancel();
        tracker.wait().await;
        self.sweeper.wait_for_detached().await;
        self.engine.flush().await;
        if let Some(store) = self.engine.held_in_memory() {
            store.release_hold().await;
        }
        served
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// Creates `dir` (and its parents) readable by the owner only, and tightens it if it
/// already exists: the data dir holds keys, tokens and content.
pub fn private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))?;
    }
    Ok(())
}

/// Makes an existing file readable by the owner only (or creates it empty so).
pub fn private_file(path: &Path) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    }
    Ok(())
}
