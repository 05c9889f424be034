//! Configuration: built-in defaults, then an optional TOML file (`--config`), then
//! `LETHE_*` environment variables (the environment wins). Every value is parsed and
//! validated at load time, so a typo fails at start-up with the name of the setting.
//!
//! TOML keys are the variable names without the prefix, in lowercase
//! (`LETHE_SWEEP_SCHEDULE` ↔ `sweep_schedule`); unknown keys are refused.

use chrono::Duration;
use secrecy::SecretString;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use crate::domain::PlatformPolicy;
use crate::tls::TlsProfile;

/// Every setting, in the order the README's table lists them.
pub const KEYS: &[(&str, &str, &str)] = &[
    ("listen", "address the HTTP server binds", "127.0.0.1:8080"),
    (
        "data_dir",
        "embedded profile's directory (SQLite file, content files, tokens)",
        "./lethe-data",
    ),
    (
        "database_url",
        "`sqlite://...` (or, with the AWS profile, `postgres://...`)",
        "SQLite in the data dir",
    ),
    (
        "sqlite_hold_in_memory",
        "`lethe serve` maps the SQLite file and keeps all its pages in memory (needs RAM about its size; read at start-up)",
        "false",
    ),
    (
        "admin_token",
        "bearer token of the admin API",
        "generated on first start, kept in the data dir",
    ),
    (
        "internal_token",
        "bearer token of the internal (pipeline) API",
        "generated on first start, kept in the data dir",
    ),
    (
        "public_base_url",
        "base of `upload_url`, `resource_url` and page URLs",
        "http(s)://<listen>",
    ),
    (
        "sweep_schedule",
        "cron expression of the periodic full sweep, seconds first (6 or 7 fields)",
        "0 * * * * *",
    ),
    (
        "sweep_batch_size",
        "artifacts claimed and deleted per batch",
        "500",
    ),
    (
        "sweep_max_per_pass",
        "artifacts one pass examines at most",
        "200000",
    ),
    (
        "claim_lease",
        "how long a deletion claim holds before another sweeper may take over",
        "5m",
    ),
    (
        "deletion_sla",
        "`delete_by` − `delete_after` for point deletions (§4)",
        "1h",
    ),
    (
        "max_processing",
        "unfinished transcripts older than this are moved to `error` (§4)",
        "24h",
    ),
    (
        "indefinite_retention",
        "replaces \"indefinite\" retention with this duration (§3 decision)",
        "unset: indefinite",
    ),
    (
        "reconcile_schedule",
        "cron expression of the daily reconciliation (seconds first)",
        "0 30 3 * * *",
    ),
    (
        "reconcile_repair",
        "whether the scheduled reconciliation repairs what it finds",
        "true",
    ),
    (
        "reconcile_grace",
        "objects and artifacts younger than this are left alone by reconciliation",
        "1h",
    ),
    ("max_upload_bytes", "largest accepted upload", "2200000000"),
    (
        "request_timeout",
        "time limit of one HTTP request (uploads excepted)",
        "60s",
    ),
    (
        "header_read_timeout",
        "a connection that has not sent a whole request head within this is closed",
        "10s",
    ),
    (
        "body_idle_timeout",
        "a streamed body (upload, intermediate) that sends nothing for this long is stopped",
        "30s",
    ),
    ("log_format", "`pretty` or `json`", "pretty"),
    (
        "dynamodb_table",
        "AWS profile: track artifacts in this DynamoDB table",
        "unset",
    ),
    (
        "s3_bucket",
        "AWS profile: store content in this S3 bucket",
        "unset",
    ),
    (
        "tls_cert",
        "PEM certificate; with `tls_key`, the listener speaks TLS only",
        "unset",
    ),
    ("tls_key", "PEM private key", "unset"),
    ("tls_profile", "`async` or `streaming`", "async"),
    (
        "master_key",
        "master key wrapping per-transcript data keys",
        "a key file in the data dir",
    ),
    (
        "webhook_private_targets",
        "whether webhooks may call loopback, private and link-local addresses",
        "false",
    ),
    (
        "log_name",
        "name of the deletion log: the origin line of its checkpoints and its key's name",
        "<host of public_base_url>/lethe-deletions",
    ),
    (
        "log_signing_key",
        "PKCS#8 PEM of the Ed25519 key signing the deletion log (the same on every instance)",
        "a key file in the data dir",
    ),
];

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the configuration file {path} is not valid TOML: {source}")]
    Toml {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("unknown setting {key:?} in {path}; known settings: {known}")]
    UnknownKey {
        key: String,
        path: PathBuf,
        known: String,
    },
    #[error("setting {key:?} in {path} must be a string, number or boolean")]
    WrongType { key: String, path: PathBuf },
    #[error("invalid {name}={value:?}: {reason}")]
    Invalid {
        name: String,
        value: String,
        reason: String,
    },
}

#[derive(Clone, Debug)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub database_url: Option<String>,
    pub sqlite_hold_in_memory: bool,
    pub admin_token: Option<SecretString>,
    pub internal_token: Option<SecretString>,
    pub public_base_url: Option<String>,
    pub sweep_schedule: cron::Schedule,
    pub sweep_batch_size: u32,
    pub sweep_max_per_pass: u64,
    pub claim_lease: Duration,
    pub deletion_sla: Duration,
    pub max_processing: Duration,
    pub indefinite_retention: Option<Duration>,
    pub reconcile_schedule: cron::Schedule,
    pub reconcile_repair: bool,
    pub reconcile_grace: Duration,
    pub max_upload_bytes: u64,
    pub request_timeout: Duration,
    pub header_read_timeout: Duration,
    pub body_idle_timeout: Duration,
    pub log_format: LogFormat,
    pub dynamodb_table: Option<String>,
    pub s3_bucket: Option<String>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub tls_profile: TlsProfile,
    pub master_key: Option<SecretString>,
    pub log_name: Option<String>,
    pub log_signing_key: Option<SecretString>,
    pub webhook_private_targets: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

impl Config {
    /// Loads from the process environment and an optional file.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        Self::load_from(file, |name| std::env::var(name).ok())
    }

    /// Loads with an injected environment (tests).
    pub fn load_from(
        file: Option<&Path>,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConfigError> {
        // (value, where it came from) per key; later layers overwrite earlier ones.
        let mut raw: BTreeMap<&'static str, (String, String)> = BTreeMap::new();
        if let Some(path) = file {
            for (key, value) in read_file(path)? {
                let known = KEYS.iter().find(|(k, _, _)| *k == key).map(|(k, _, _)| *k);
                let Some(known) = known else {
                    return Err(ConfigError::UnknownKey {
                        key,
                        path: path.to_owned(),
                        known: KEYS
                            .iter()
                            .map(|(k, _, _)| *k)
                            .collect::<Vec<_>>()
                            .join(", "),
                    });
                };
                raw.insert(known, (value, format!("{known} (in {})", path.display())));
            }
        }
        for (key, _, _) in KEYS {
            let name = env_name(key);
            if let Some(value) = env(&name).filter(|v| !v.is_empty()) {
                raw.insert(key, (value, name));
            }
        }
        Self::from_raw(&raw)
    }

    fn from_raw(raw: &BTreeMap<&'static str, (String, String)>) -> Result<Self, ConfigError> {
        let get = |key: &str| raw.get(key);
        // The value set, or the default `KEYS` documents (the only place defaults are written).
        let parse = |key: &str| -> (String, String) {
            match get(key) {
                Some((v, from)) => (v.clone(), from.clone()),
                None => (default_of(key).to_owned(), env_name(key)),
            }
        };
        fn invalid(name: String, value: String, reason: impl ToString) -> ConfigError {
            ConfigError::Invalid {
                name,
                value,
                reason: reason.to_string(),
            }
        }
        let number = |key: &str| -> Result<u64, ConfigError> {
            let (v, from) = parse(key);
            v.trim()
                .parse::<u64>()
                .map_err(|e| invalid(from, v.clone(), e))
        };
        let duration = |key: &str| -> Result<Duration, ConfigError> {
            let (v, from) = parse(key);
            parse_duration(&v).map_err(|reason| invalid(from, v.clone(), reason))
        };
        let optional = |key: &str| get(key).map(|(v, _)| v.clone());

        let (listen, from) = parse("listen");
        let listen = SocketAddr::from_str(&listen).map_err(|e| invalid(from, listen.clone(), e))?;
        let (schedule, from) = parse("sweep_schedule");
        let sweep_schedule =
            parse_cron(&schedule).map_err(|reason| invalid(from, schedule.clone(), reason))?;
        let indefinite_retention = match get("indefinite_retention") {
            Some((v, from)) => {
                Some(parse_duration(v).map_err(|r| invalid(from.clone(), v.clone(), r))?)
            }
            None => None,
        };
        let (log_format, from) = parse("log_format");
        let log_format = match log_format.as_str() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(invalid(from, log_format, "must be \"pretty\" or \"json\"")),
        };
        let (profile, from) = parse("tls_profile");
        let tls_profile =
            TlsProfile::from_str(&profile).map_err(|reason| invalid(from, profile, reason))?;
        let (schedule, from) = parse("reconcile_schedule");
        let reconcile_schedule =
            parse_cron(&schedule).map_err(|reason| invalid(from, schedule.clone(), reason))?;
        let flag = |key: &str| -> Result<bool, ConfigError> {
            let (v, from) = parse(key);
            match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                _ => Err(invalid(from, v, "must be true or false")),
            }
        };
        let webhook_private_targets = flag("webhook_private_targets")?;
        let sqlite_hold_in_memory = flag("sqlite_hold_in_memory")?;
        let reconcile_repair = flag("reconcile_repair")?;
        let batch = number("sweep_batch_size")?;
        if !(1..=10_000).contains(&batch) {
            return Err(invalid(
                env_name("sweep_batch_size"),
                batch.to_string(),
                "must be between 1 and 10000",
            ));
        }
        let config = Config {
            listen,
            data_dir: PathBuf::from(parse("data_dir").0),
            database_url: optional("database_url"),
            sqlite_hold_in_memory,
            admin_token: optional("admin_token").map(SecretString::from),
            internal_token: optional("internal_token").map(SecretString::from),
            public_base_url: optional("public_base_url")
                .map(|u| u.trim_end_matches('/').to_owned()),
            sweep_schedule,
            sweep_batch_size: batch as u32,
            sweep_max_per_pass: number("sweep_max_per_pass")?.max(1),
            claim_lease: duration("claim_lease")?,
            deletion_sla: duration("deletion_sla")?,
            max_processing: duration("max_processing")?,
            indefinite_retention,
            reconcile_schedule,
            reconcile_repair,
            reconcile_grace: duration("reconcile_grace")?,
            max_upload_bytes: number("max_upload_bytes")?,
            request_timeout: duration("request_timeout")?,
            header_read_timeout: duration("header_read_timeout")?,
            body_idle_timeout: duration("body_idle_timeout")?,
            log_format,
            dynamodb_table: optional("dynamodb_table"),
            s3_bucket: optional("s3_bucket"),
            tls_cert: optional("tls_cert").map(PathBuf::from),
            tls_key: optional("tls_key").map(PathBuf::from),
            tls_profile,
            master_key: optional("master_key").map(SecretString::from),
            log_name: match get("log_name") {
                // A signed note's key name: no whitespace, no `+`, not empty.
                Some((v, from)) if v.is_empty() || v.contains('+') || v.chars().any(char::is_whitespace) => {
                    return Err(invalid(
                        from.clone(),
                        v.clone(),
                        "must be a non-empty name without spaces or '+', e.g. example.com/lethe-deletions",
                    ))
                }
                other => other.map(|(v, _)| v.clone()),
            },
            log_signing_key: optional("log_signing_key").map(SecretString::from),
            webhook_private_targets,
        };
        Ok(config)
    }

    /// The defaults with nothing set (tests start from this).
    pub fn defaults() -> Self {
        Self::from_raw(&BTreeMap::new()).expect("the built-in defaults are valid")
    }

    pub fn platform_policy(&self) -> PlatformPolicy {
        PlatformPolicy {
            deletion_sla: self.deletion_sla,
            indefinite_retention: self.indefinite_retention,
        }
    }

    /// How long a streamed body may send nothing before it is stopped.
    pub fn body_idle_timeout(&self) -> std::time::Duration {
        self.body_idle_timeout.to_std().unwrap_or_default()
    }

    /// How long a connection may take to send a whole request head.
    pub fn header_read_timeout(&self) -> std::time::Duration {
        self.header_read_timeout.to_std().unwrap_or_default()
    }

    /// The deletion log's name: configured, or `<host of the public base URL>/lethe-deletions`.
    pub fn log_name(&self) -> String {
        if let Some(name) = &self.log_name {
            return name.clone();
        }
        let base = self.public_base_url();
        let host = url::Url::parse(&base)
            .ok()
            .and_then(|u| u.host_str().map(str::to_owned))
            .unwrap_or_else(|| "lethe".to_owned());
        format!("{host}/lethe-deletions")
    }

    pub fn public_base_url(&self) -> String {
        let scheme = match (&self.tls_cert, &self.tls_key) {
            (Some(_), Some(_)) => "https",
            _ => "http",
        };
        self.public_base_url
            .clone()
            .unwrap_or_else(|| format!("{scheme}://{}", self.listen))
    }
}

/// The default `KEYS` documents for `key`.
fn default_of(key: &str) -> &'static str {
    KEYS.iter()
        .find(|(k, _, _)| *k == key)
        .map(|(_, _, default)| *default)
        .unwrap_or_else(|| panic!("{key} is not in KEYS"))
}

pub fn env_name(key: &str) -> String {
    format!("LETHE_{}", key.to_ascii_uppercase())
}

fn read_file(path: &Path) -> Result<Vec<(String, String)>, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let table: toml::Table = text.parse().map_err(|e| ConfigError::Toml {
        path: path.to_owned(),
        source: Box::new(e),
    })?;
    table
        .into_iter()
        .map(|(key, value)| {
            let value = match value {
                toml::Value::String(s) => s,
                toml::Value::Integer(i) => i.to_string(),
                toml::Value::Boolean(b) => b.to_string(),
                toml::Value::Float(f) => f.to_string(),
                _ => {
                    return Err(ConfigError::WrongType {
                        key,
                        path: path.to_owned(),
                    })
                }
            };
            Ok((key, value))
        })
        .collect()
}

/// Human durations: `90s`, `5m`, `1h`, `30d`, `1h 30m`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let std = humantime::parse_duration(text.trim())
        .map_err(|e| format!("{e} (use a duration like 90s, 5m, 1h or 30d)"))?;
    Duration::from_std(std).map_err(|e| e.to_string())
}

/// The `cron` crate's 6/7-field form; a 5-field crontab is refused with a hint.
pub fn parse_cron(text: &str) -> Result<cron::Schedule, String> {
    let fields = text.split_whitespace().count();
    if fields == 5 {
        return Err(format!(
            "this looks like a 5-field crontab; Lethe needs 6 or 7 fields with seconds first and an optional year last, e.g. \"0 {text}\""
        ));
    }
    cron::Schedule::from_str(text).map_err(|e| {
        format!("{e}; expected 6 or 7 fields with seconds first, e.g. \"0 * * * * *\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn nothing_set_gives_the_embedded_defaults() {
        let c = Config::load_from(None, env(&[])).expect("defaults load");
        assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.data_dir, PathBuf::from("./lethe-data"));
        assert_eq!(c.deletion_sla, Duration::hours(1));
        assert_eq!(c.max_processing, Duration::hours(24));
        assert!(c.dynamodb_table.is_none() && c.s3_bucket.is_none());
        assert_eq!(c.public_base_url(), "http://127.0.0.1:8080");
    }

    #[test]
    fn environment_wins_over_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lethe.toml");
        std::fs::write(
            &file,
            "listen = \"127.0.0.1:9000\"\ndeletion_sla = \"30m\"\nsweep_batch_size = 50\n",
        )
        .expect("write");
        let c = Config::load_from(Some(&file), env(&[("LETHE_LISTEN", "0.0.0.0:7000")]))
            .expect("loads");
        assert_eq!(c.listen.to_string(), "0.0.0.0:7000");
        assert_eq!(c.deletion_sla, Duration::minutes(30));
        assert_eq!(c.sweep_batch_size, 50);
    }

    #[test]
    fn a_typo_in_the_file_is_refused_by_name() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("lethe.toml");
        std::fs::write(&file, "sweep_shedule = \"0 * * * * *\"\n").expect("write");
        let err = Config::load_from(Some(&file), env(&[])).expect_err("typo");
        assert!(err.to_string().contains("sweep_shedule"), "{err}");
    }

    #[test]
    fn a_five_field_crontab_is_refused_with_an_error_that_says_so() {
        let err = Config::load_from(None, env(&[("LETHE_SWEEP_SCHEDULE", "*/5 * * * *")]))
            .expect_err("5 fields");
        let text = err.to_string();
        assert!(
            text.contains("LETHE_SWEEP_SCHEDULE")
                && text.contains("5-field crontab")
                && text.contains("seconds first"),
            "{text}"
        );
        assert!(
            Config::load_from(None, env(&[("LETHE_SWEEP_SCHEDULE", "0 0 0 1 1 * 2099")])).is_ok()
        );
    }

    #[test]
    fn bad_durations_and_numbers_name_the_variable() {
        let err = Config::load_from(None, env(&[("LETHE_DELETION_SLA", "soon")])).expect_err("bad");
        assert!(err.to_string().contains("LETHE_DELETION_SLA"), "{err}");
        let err =
            Config::load_from(None, env(&[("LETHE_SWEEP_BATCH_SIZE", "0")])).expect_err("bad");
        assert!(err.to_string().contains("LETHE_SWEEP_BATCH_SIZE"), "{err}");
    }

    #[test]
    fn holding_the_database_in_memory_is_off_unless_set_to_true() {
        assert!(!Config::defaults().sqlite_hold_in_memory);
        let c = Config::load_from(None, env(&[("LETHE_SQLITE_HOLD_IN_MEMORY", "true")]))
            .expect("loads");
        assert!(c.sqlite_hold_in_memory);
        let err = Config::load_from(None, env(&[("LETHE_SQLITE_HOLD_IN_MEMORY", "yes")]))
            .expect_err("not a boolean");
        assert!(
            err.to_string().contains("LETHE_SQLITE_HOLD_IN_MEMORY")
                && err.to_string().contains("true or false"),
            "{err}"
        );
    }

    #[test]
    fn with_tls_the_default_public_base_url_is_https() {
        let c = Config::load_from(
            None,
            env(&[("LETHE_TLS_CERT", "c.pem"), ("LETHE_TLS_KEY", "k.pem")]),
        )
        .expect("loads");
        assert_eq!(c.public_base_url(), "https://127.0.0.1:8080");
        assert_eq!(c.log_name(), "127.0.0.1/lethe-deletions");
    }

    #[test]
    fn a_log_name_that_would_break_the_signed_checkpoint_is_refused() {
        for bad in ["two words", "a+b", "line\nbreak"] {
            let err = Config::load_from(None, env(&[("LETHE_LOG_NAME", bad)])).expect_err(bad);
            assert!(err.to_string().contains("LETHE_LOG_NAME"), "{err}");
        }
        let c = Config::load_from(None, env(&[("LETHE_LOG_NAME", "example.com/log")]))
            .expect("a good name");
        assert_eq!(c.log_name(), "example.com/log");
    }

    #[test]
    fn every_default_in_keys_is_the_one_in_force() {
        let c = Config::defaults();
        assert_eq!(
            default_of("sweep_batch_size"),
            c.sweep_batch_size.to_string()
        );
        assert_eq!(default_of("claim_lease"), "5m");
        assert_eq!(c.claim_lease, Duration::minutes(5));
        assert_eq!(c.tls_profile, TlsProfile::Async);
    }

    #[test]
    fn secrets_are_not_printed_by_debug() {
        let c = Config::load_from(None, env(&[("LETHE_ADMIN_TOKEN", "super-secret-token")]))
            .expect("loads");
        assert!(!format!("{c:?}").contains("super-secret-token"));
    }
}
