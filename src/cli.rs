//! The command line: `serve`, `sweep --once`, `reconcile`, `migrate`, `account create`,
//! `provision`, `openapi`, `receipt verify`.

use anyhow::{bail, Context};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::sync::Arc;
use tokio_util::sync::CancellationToken;

use crate::clock::SystemClock;
use crate::config::Config;
use crate::domain::{Region, RetentionSettings};
use crate::http::Tokens;
use crate::startup::{shutdown_signal, App};
use crate::storage::Backends;

/// `lethe --help` ends with one example per command.
const EXAMPLES: &str = "\
Examples:
  lethe serve                                   run the API, the sweeper and the dashboard
  lethe account create --name acme --baa        create an account; prints its API key once
  lethe sweep --once > pass.json                one deletion pass; its summary as JSON
  lethe reconcile --repair --grace 2h           check everything against the rules, and repair
  lethe migrate                                 create or upgrade the SQLite/PostgreSQL schema
  lethe provision                               create the AWS profile's table and bucket
  lethe openapi > openapi.json                  the HTTP API's OpenAPI document
  lethe receipt verify r.json --public-key k.pem  check a deletion receipt offline

Long commands (sweep, reconcile, provision) show progress on a terminal and print only
their JSON or result lines when piped. Every setting is a LETHE_* variable or a key of
the --config TOML file; see the README's configuration table.";

#[derive(Debug, Parser)]
#[command(
    name = "lethe",
    version,
    about = "Retention and TTL lifecycle engine for speech-AI artifacts",
    after_help = EXAMPLES
)]
pub struct Cli {
    /// TOML configuration file; LETHE_* environment variables override it.
    #[arg(long, global = true, env = "LETHE_CONFIG")]
    pub config: Option<PathBuf>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the service: API server and sweeper.
    Serve,
    /// Run deletion passes outside the server.
    Sweep {
        /// Run exactly one pass and print its summary.
        #[arg(long)]
        once: bool,
    },
    /// Check every account's artifacts, content objects, data keys and erasure record
    /// against the rules, without trusting the due index; print the findings as JSON.
    ///
    /// Example: `lethe reconcile` (report only), `lethe reconcile --repair --grace 2h`.
    Reconcile {
        /// Delete what is past its deadline, orphan objects, keys without a scope, and
        /// again whatever has a tombstone (default: report only).
        #[arg(long)]
        repair: bool,
        /// Objects and artifacts younger than this are left alone (writes in flight).
        #[arg(long, default_value = "1h", value_parser = parse_grace)]
        grace: chrono::Duration,
    },
    /// Create or upgrade the database schema, then exit.
    Migrate,
    /// Manage accounts.
    Account {
        #[command(subcommand)]
        command: AccountCommand,
    },
    /// Create the DynamoDB table and S3 bucket of the AWS profile (idempotent).
    Provision,
    /// Print the OpenAPI document of the HTTP API (as checked in under docs/).
    Openapi,
    /// Deletion receipts: verify one offline.
    Receipt {
        #[command(subcommand)]
        command: ReceiptCommand,
    },
}

#[derive(Debug, Subcommand)]
pub enum ReceiptCommand {
    /// Verify a receipt (`GET /v2/transcript/{id}/receipt`) with only the log's public key
    /// (`GET /v2/retention/public-key`); exits 0 and prints what it proves, or exits 1
    /// with the reason it does not hold.
    ///
    /// Example: `lethe receipt verify receipt.json --public-key lethe-log.pem`
    Verify {
        /// The receipt, as served (JSON).
        receipt: PathBuf,
        /// The deletion log's public key (PEM).
        #[arg(long)]
        public_key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum AccountCommand {
    /// Create an account and print its API key (shown only this once).
    Create(CreateAccount),
}

#[derive(Debug, Args)]
pub struct CreateAccount {
    #[arg(long)]
    pub name: String,
    /// A Business Associate Addendum is executed.
    #[arg(long)]
    pub baa: bool,
    /// Data residency: us or eu.
    #[arg(long, default_value = "us")]
    pub region: String,
    /// Zero data retention: no content is ever stored.
    #[arg(long)]
    pub zdr: bool,
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match &cli.command {
        Command::Openapi => {
            println!("{}", crate::http::openapi_json());
            return Ok(());
        }
        // Offline: no configuration, no data dir, no database.
        Command::Receipt {
            command:
                ReceiptCommand::Verify {
                    receipt,
                    public_key,
                },
        } => return verify_receipt(receipt, public_key),
        _ => {}
    }
    let mut config = Config::load(cli.config.as_deref())?;
    // Holding the database in memory pays for itself over a server's life; a one-shot
    // command would read the whole file for nothing.
    if !matches!(cli.command, Command::Serve) {
        config.sqlite_hold_in_memory = false;
    }
    crate::telemetry::init(config.log_format);
    match cli.command {
        Command::Serve => serve(config).await,
        Command::Sweep { once } => {
            if !once {
                bail!("`lethe sweep` needs --once; `lethe serve` runs the sweeper continuously");
            }
            let app = App::build(config, Arc::new(SystemClock)).await?;
            let bar = spinner("sweeping");
            let mut progress = app.sweeper.progress();
            let shown = bar.clone();
            let watcher = tokio::spawn(async move {
                while progress.changed().await.is_ok() {
                    let (examined, deleted) = *progress.borrow_and_update();
                    shown.set_message(format!(
                        "sweeping: {examined} due artifacts examined, {deleted} deleted"
                    ));
                }
            });
            let report = app.sweeper.run_once(app.engine.now()).await;
            watcher.abort();
            bar.finish_and_clear();
            let report = report?;
            app.engine.flush().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Reconcile { repair, grace } => {
            let app = App::build(config, Arc::new(SystemClock)).await?;
            let bar = spinner("reconciling");
            let shown = bar.clone();
            let progress = move |accounts: u64, checked: u64| {
                shown.set_message(format!(
                    "reconciling: {accounts} accounts, {checked} artifacts and objects checked"
                ));
            };
            let report = app
                .sweeper
                .reconcile(
                    app.engine.now(),
                    crate::engine::reconcile::ReconcileOptions { repair, grace },
                    &progress,
                )
                .await;
            bar.finish_and_clear();
            let report = report?;
            app.engine.flush().await;
            println!("{}", serde_json::to_string_pretty(&report)?);
            Ok(())
        }
        Command::Migrate => {
            Backends::from_config(&config, Arc::new(SystemClock)).await?;
            println!("database schema is up to date");
            Ok(())
        }
        Command::Account {
            command: AccountCommand::Create(args),
        } => {
            let region = Region::parse(&args.region).map_err(anyhow::Error::msg)?;
            let settings = RetentionSettings {
                baa: args.baa,
                region,
                zero_data_retention: args.zdr,
                ..RetentionSettings::default()
            };
            let app = App::build(config, Arc::new(SystemClock)).await?;
            let (account, key) = app.engine.create_account(&args.name, settings).await?;
            println!("account_id: {}", account.id);
            println!("api_key: {}", key.expose());
            println!("(the API key is shown only now; Lethe keeps only its hash)");
            Ok(())
        }
        Command::Openapi | Command::Receipt { .. } => {
            unreachable!("handled before loading the configuration")
        }
        Command::Provision => {
            let now = crate::clock::Clock::now(&SystemClock);
            let bar = spinner("provisioning (a new index on a large table can take minutes)");
            let done = crate::startup::provision(&config, now).await;
            bar.finish_and_clear();
            for line in done? {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// A spinner with elapsed time on stderr when it is a terminal; hidden otherwise, so a
/// piped run prints only its result.
fn spinner(message: &str) -> indicatif::ProgressBar {
    let bar =
        indicatif::ProgressBar::with_draw_target(None, indicatif::ProgressDrawTarget::stderr());
    if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} [{elapsed}] {msg}") {
        bar.set_style(style);
    }
    bar.set_message(message.to_owned());
    bar.enable_steady_tick(std::time::Duration::from_millis(120));
    bar
}

fn parse_grace(text: &str) -> Result<chrono::Duration, String> {
    crate::config::parse_duration(text)
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let tokens = Tokens::load_or_generate(&config).context("cannot set up the API tokens")?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .with_context(|| {
            format!(
                "cannot listen on {} (set LETHE_LISTEN to another address)",
                config.listen
            )
        })?;
    let app = App::build(config, Arc::new(SystemClock)).await?;
    let shutdown = CancellationToken::new();
    let trigger = shutdown.clone();
    tokio::spawn(async move {
        shutdown_signal().await;
        trigger.cancel();
    });
    let data_dir = app.config.data_dir.display().to_string();
    let scheme = match (&app.config.tls_cert, &app.config.tls_key) {
        (Some(_), Some(_)) => "https",
        _ => "http",
    };
    println!(
        "lethe: listening on {scheme}://{} (public base URL {})",
        listener.local_addr()?,
        app.config.public_base_url()
    );
    println!("lethe: embedded profile in {data_dir}; admin and internal tokens in {data_dir}/admin_token and {data_dir}/internal_token unless set by LETHE_ADMIN_TOKEN / LETHE_INTERNAL_TOKEN");
    app.run(listener, tokens, shutdown).await
}

/// `lethe receipt verify`: reads both files, checks everything, prints what is proven.
fn verify_receipt(receipt: &std::path::Path, public_key: &std::path::Path) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(receipt)
        .with_context(|| format!("cannot read the receipt {}", receipt.display()))?;
    let pem = std::fs::read_to_string(public_key)
        .with_context(|| format!("cannot read the public key {}", public_key.display()))?;
    let key = crate::receipts::public_key_from_pem(&pem).with_context(|| {
        format!(
            "{} is not an Ed25519 public key (PEM)",
            public_key.display()
        )
    })?;
    let parsed: crate::receipts::Receipt = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a Lethe receipt", receipt.display()))?;
    let verified = crate::receipts::verify(&parsed, &key)
        .with_context(|| format!("the receipt {} does NOT verify", receipt.display()))?;
    println!("receipt verified");
    for line in verified.describe() {
        println!("{line}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_help_shows_an_example_of_every_command() {
        let help = Cli::command().render_long_help().to_string();
        for command in Cli::command().get_subcommands() {
            let example = format!("  lethe {} ", command.get_name());
            assert!(
                help.contains(&example),
                "`lethe --help` has no example of `{}`",
                command.get_name()
            );
        }
    }
}
