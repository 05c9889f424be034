//! Tracing set-up. Filters come from `RUST_LOG` (default `lethe=info,tower_http=info`);
//! logs go to stderr, pretty or JSON. Content and keys are kept out by their types
//! (`Content`, `ApiKey`, `SecretString` never print what they hold) and by instrumenting
//! with ids only.

use tracing_subscriber::{fmt, EnvFilter};

use crate::config::LogFormat;

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("lethe=info,tower_http=info"));
    let builder = fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // A second init (tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Pretty => builder.try_init(),
    };
}
