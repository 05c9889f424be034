//! Lethe: a retention and TTL lifecycle engine for speech-AI artifacts.
//!
//! # Layout
//! The crate reads top-down in the order data flows:
//! - [`domain`]: the retention rules as pure functions and types (policy);
//! - [`storage`]: the ports (traits) and their backends (storage);
//! - [`lifecycle`]: the operations on accounts, transcripts and artifacts, built on the ports;
//! - [`sweeper`]: one deletion pass (`run_once`) and the loop that schedules passes;
//! - [`reconcile`]: the independent check that does not trust the due index;
//! - [`http`]: the public (`/v2`), internal and admin APIs over the engine (api);
//! - [`config`], [`telemetry`], [`startup`], [`cli`]: the running service and its command line.
//!
//! [`clock`] is injected everywhere; only [`clock::SystemClock`] reads the system time.

pub mod cli;
pub mod clock;
pub mod config;
pub mod domain;
pub mod engine;
pub mod http;
pub mod metrics;
pub mod pii;
pub mod receipts;
pub mod startup;
pub mod storage;
pub mod sweeper;
pub mod telemetry;
#[cfg(feature = "test-support")]
pub mod testing;
pub mod tls;
