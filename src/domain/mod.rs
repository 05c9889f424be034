//! The retention rules of `docs/retention.md`, as pure data and functions.
//!
//! Nothing in here performs I/O or reads the time: every function that needs "now" or an
//! anchor takes it as an argument, so the whole rule set is testable as plain values.
//! - [`settings`]: an account's retention settings, their validation (§1) and the derived mode.
//! - [`policy`]: the §3 matrix and the §4 deadlines, turning (kind, settings, anchor) into a [`Schedule`].
//! - [`kinds`]: every string-valued enum, once, and the layout of a content key.
//! - [`model`]: the tracked entities (accounts, transcripts, artifacts, tombstones) and their ids.
//! - [`content`]: content bytes and secrets whose `Debug` never prints what they hold.

pub mod content;
pub mod kinds;
pub mod model;
pub mod policy;
pub mod settings;

pub use content::{ApiKey, ApiKeyHash, Content};
pub use kinds::*;
pub use model::*;
pub use policy::{PlatformPolicy, Schedule};
pub use settings::{Mode, Region, RetentionSettings, SettingsError, SettingsPatch};
