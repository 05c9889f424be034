//! Black-box tests of the HTTP API: each test starts the real server on a random port,
//! with a manual clock and a fresh data dir, and speaks HTTP to it.

mod account;
mod admin;
mod cli;
mod contract;
mod dashboard;
mod dry_run;
mod guarantees;
mod helpers;
mod holds;
mod hostile;
mod internal;
mod isolation;
mod logs;
mod matrix;
mod policies;
mod receipts;
mod sdk;
mod tls;
mod transcripts;
mod uploads;
mod webhooks;
