//! An account's retention settings (retention.md §1), their validation and the derived mode.

use chrono::Duration;
use serde::{Deserialize, Serialize};

/// Shortest TTL a customer may set (§1).
pub const MIN_TTL: Duration = Duration::hours(1);
/// A BAA account's transcripts never outlive this; also the BAA default (§1).
pub const BAA_MAX_TTL: Duration = Duration::hours(72);
/// Default `upload_ttl` (§1).
pub const DEFAULT_UPLOAD_TTL: Duration = Duration::hours(72);
/// Anything longer than this is refused as absurd (§1).
pub const MAX_TTL: Duration = Duration::days(3653);

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Region {
    #[default]
    Us,
    Eu,
}

impl Region {
    pub fn as_str(self) -> &'static str {
        match self {
            Region::Us => "us",
            Region::Eu => "eu",
        }
    }
    pub fn parse(s: &str) -> Result<Self, SettingsError> {
        match s {
            "us" => Ok(Region::Us),
            "eu" => Ok(Region::Eu),
            other => Err(SettingsError::UnknownRegion(other.to_owned())),
        }
    }
}

/// The retention mode, derived from the settings and never stored (§1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `transcript_ttl` is configured.
    Ttl,
    /// A BAA is executed and no TTL is configured: transcripts live 72 h.
    Baa,
    /// Neither.
    Default,
    /// Zero data retention: no content is stored at all (§6).
    Zdr,
}

impl Mode {
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Ttl => "ttl",
            Mode::Baa => "baa",
            Mode::Default => "default",
            Mode::Zdr => "zdr",
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RetentionSettings {
    #[serde(with = "optional_seconds")]
    pub transcript_ttl: Option<Duration>,
    #[serde(with = "seconds")]
    pub upload_ttl: Duration,
    pub baa: bool,
    pub region: Region,
    pub model_training_opt_out: bool,
    pub zero_data_retention: bool,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            transcript_ttl: None,
            upload_ttl: DEFAULT_UPLOAD_TTL,
            baa: false,
            region: Region::Us,
            model_training_opt_out: false,
            zero_data_retention: false,
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("{field} must be at least 1 hour (3600 seconds); got {seconds} seconds")]
    TooShort { field: &'static str, seconds: i64 },
    #[error("{field} must be at most 10 years (315619200 seconds); got {seconds} seconds")]
    TooLong { field: &'static str, seconds: i64 },
    #[error("transcript_ttl must be at most 72 hours (259200 seconds) for an account with a BAA; got {seconds} seconds")]
    BaaTtlTooLong { seconds: i64 },
    #[error("region must be \"us\" or \"eu\"; got {0:?}")]
    UnknownRegion(String),
}

/// A change to the settings; `None` leaves a field as it is. `transcript_ttl: Some(None)`
/// removes the TTL.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SettingsPatch {
    pub transcript_ttl: Option<Option<Duration>>,
    pub upload_ttl: Option<Duration>,
    pub baa: Option<bool>,
    pub region: Option<Region>,
    pub model_training_opt_out: Option<bool>,
    pub zero_data_retention: Option<bool>,
}

impl RetentionSettings {
    /// The derived mode (§1); ZDR dominates because nothing is stored at all.
    pub fn mode(&self) -> Mode {
        if self.zero_data_retention {
            Mode::Zdr
        } else {
            self.matrix_mode()
        }
    }

    /// The column of the §3 matrix this account's artifacts follow.
    pub fn matrix_mode(&self) -> Mode {
        match (self.transcript_ttl, self.baa) {
            (Some(_), _) => Mode::Ttl,
            (None, true) => Mode::Baa,
            (None, false) => Mode::Default,
        }
    }

    /// The TTL applied to final transcripts: the configured one, 72 h under a BAA, or none.
    pub fn effective_transcript_ttl(&self) -> Option<Duration> {
        match self.matrix_mode() {
            Mode::Ttl => self.transcript_ttl,
            Mode::Baa => Some(BAA_MAX_TTL),
            _ => None,
        }
    }

    /// Whether moving from `previous` to these settings can shorten an existing schedule:
    /// the TTLs or the BAA changed (the other settings apply going forward only).
    pub fn may_shorten(&self, previous: &RetentionSettings) -> bool {
        self.transcript_ttl != previous.transcript_ttl
            || self.upload_ttl != previous.upload_ttl
            || self.baa != previous.baa
    }

    /// Model-training eligibility of content created under these settings (§6).
    pub fn training_eligible(&self) -> bool {
        !self.baa
            && self.region != Region::Eu
            && !self.model_training_opt_out
            && !self.zero_data_retention
    }

    /// Checks every §1 constraint on the settings as a whole.
    pub fn validate(&self) -> Result<(), SettingsError> {
        if let Some(ttl) = self.transcript_ttl {
            check_ttl("transcript_ttl", ttl)?;
            if self.baa && ttl > BAA_MAX_TTL {
                return Err(SettingsError::BaaTtlTooLong {
                    seconds: ttl.num_seconds(),
                });
            }
        }
        check_ttl("upload_ttl", self.upload_ttl)
    }

    /// Applies a patch and validates the result; on error `self` is untouched.
    pub fn patched(&self, patch: &SettingsPatch) -> Result<Self, SettingsError> {
        let mut next = self.clone();
        if let Some(ttl) = patch.transcript_ttl {
            next.transcript_ttl = ttl;
        }
        if let Some(ttl) = patch.upload_ttl {
            next.upload_ttl = ttl;
        }
        if let Some(baa) = patch.baa {
            next.baa = baa;
        }
        if let Some(region) = patch.region {
            next.region = region;
        }
        if let Some(opt_out) = patch.model_training_opt_out {
            next.model_training_opt_out = opt_out;
        }
        if let Some(zdr) = patch.zero_data_retention {
            next.zero_data_retention = zdr;
        }
        next.validate()?;
        Ok(next)
    }
}

/// Durations stored as whole seconds (the policy history).
mod seconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_i64(d.num_seconds())
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = i64::deserialize(d)?;
        Duration::try_seconds(secs).ok_or_else(|| serde::de::Error::custom("duration out of range"))
    }
}

mod optional_seconds {
    use chrono::Duration;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.num_seconds()),
            None => s.serialize_none(),
        }
    }
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
        Option::<i64>::deserialize(d)?
            .map(|secs| {
                Duration::try_seconds(secs)
                    .ok_or_else(|| serde::de::Error::custom("duration out of range"))
            })
            .transpose()
    }
}

fn check_ttl(field: &'static str, ttl: Duration) -> Result<(), SettingsError> {
    let seconds = ttl.num_seconds();
    if ttl < MIN_TTL {
        Err(SettingsError::TooShort { field, seconds })
    } else if ttl > MAX_TTL {
        Err(SettingsError::TooLong { field, seconds })
    } else {
        Ok(())
    }
}

/// Parses a TTL given in seconds, refusing values that do not fit a duration.
pub fn ttl_from_seconds(field: &'static str, seconds: i64) -> Result<Duration, SettingsError> {
    let ttl = Duration::try_seconds(seconds).ok_or(match seconds < 0 {
        true => SettingsError::TooShort { field, seconds },
        false => SettingsError::TooLong { field, seconds },
    })?;
    check_ttl(field, ttl)?;
    Ok(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hours(h: i64) -> Duration {
        Duration::hours(h)
    }

    #[test]
    fn s1_a_ttl_beyond_what_a_duration_holds_is_refused_naming_the_bound_it_breaks() {
        assert!(matches!(
            ttl_from_seconds("transcript_ttl_seconds", i64::MIN),
            Err(SettingsError::TooShort { .. })
        ));
        assert!(matches!(
            ttl_from_seconds("transcript_ttl_seconds", i64::MAX),
            Err(SettingsError::TooLong { .. })
        ));
    }

    #[test]
    fn s1_defaults_are_no_transcript_ttl_72h_upload_ttl_us_and_nothing_executed() {
        let s = RetentionSettings::default();
        assert_eq!(s.transcript_ttl, None);
        assert_eq!(s.upload_ttl, hours(72));
        assert!(!s.baa && !s.model_training_opt_out && !s.zero_data_retention);
        assert_eq!(s.region, Region::Us);
    }

    #[test]
    fn s1_mode_is_ttl_when_transcript_ttl_is_configured_even_with_a_baa() {
        let s = RetentionSettings {
            transcript_ttl: Some(hours(5)),
            baa: true,
            ..Default::default()
        };
        assert_eq!(s.mode(), Mode::Ttl);
        assert_eq!(s.effective_transcript_ttl(), Some(hours(5)));
    }

    #[test]
    fn s1_mode_is_baa_with_a_72h_transcript_ttl_when_baa_and_no_ttl() {
        let s = RetentionSettings {
            baa: true,
            ..Default::default()
        };
        assert_eq!(s.mode(), Mode::Baa);
        assert_eq!(s.effective_transcript_ttl(), Some(hours(72)));
    }

    #[test]
    fn s1_mode_is_default_with_neither_ttl_nor_baa() {
        let s = RetentionSettings::default();
        assert_eq!(s.mode(), Mode::Default);
        assert_eq!(s.effective_transcript_ttl(), None);
    }

    #[test]
    fn s1_mode_is_derived_not_stored_so_removing_the_ttl_changes_it() {
        let s = RetentionSettings {
            transcript_ttl: Some(hours(2)),
            ..Default::default()
        };
        let removed = s
            .patched(&SettingsPatch {
                transcript_ttl: Some(None),
                ..Default::default()
            })
            .expect("valid");
        assert_eq!(s.mode(), Mode::Ttl);
        assert_eq!(removed.mode(), Mode::Default);
    }

    #[test]
    fn s1_ttl_minimum_is_one_hour() {
        assert!(ttl_from_seconds("transcript_ttl", 3600).is_ok());
        assert_eq!(
            ttl_from_seconds("transcript_ttl", 3599),
            Err(SettingsError::TooShort {
                field: "transcript_ttl",
                seconds: 3599
            })
        );
    }

    #[test]
    fn s1_zero_negative_and_absurd_ttls_are_refused() {
        for seconds in [0, -1, -3600, 3653 * 86_400 + 1, i64::MAX] {
            assert!(
                ttl_from_seconds("upload_ttl", seconds).is_err(),
                "{seconds}"
            );
        }
    }

    #[test]
    fn s1_baa_account_may_set_ttl_from_1h_to_72h_and_longer_is_refused() {
        let baa = RetentionSettings {
            baa: true,
            ..Default::default()
        };
        for h in [1, 24, 72] {
            let patch = SettingsPatch {
                transcript_ttl: Some(Some(hours(h))),
                ..Default::default()
            };
            assert!(baa.patched(&patch).is_ok(), "{h}h");
        }
        let patch = SettingsPatch {
            transcript_ttl: Some(Some(hours(73))),
            ..Default::default()
        };
        let err = baa.patched(&patch).expect_err("73h under a BAA");
        assert_eq!(err, SettingsError::BaaTtlTooLong { seconds: 73 * 3600 });
        assert!(err.to_string().contains("at most 72 hours"));
    }

    #[test]
    fn s1_executing_a_baa_over_a_longer_ttl_is_refused() {
        let s = RetentionSettings {
            transcript_ttl: Some(hours(100)),
            ..Default::default()
        };
        let patch = SettingsPatch {
            baa: Some(true),
            ..Default::default()
        };
        assert!(s.patched(&patch).is_err());
    }

    #[test]
    fn s1_refused_settings_leave_the_stored_settings_unchanged() {
        let s = RetentionSettings::default();
        let before = s.clone();
        let patch = SettingsPatch {
            upload_ttl: Some(Duration::minutes(5)),
            model_training_opt_out: Some(true),
            ..Default::default()
        };
        assert!(s.patched(&patch).is_err());
        assert_eq!(s, before);
    }

    #[test]
    fn s6_training_eligibility_excludes_a_baa_the_eu_region_an_opt_out_and_zdr() {
        assert!(RetentionSettings::default().training_eligible());
        let excluded = [
            RetentionSettings {
                baa: true,
                ..Default::default()
            },
            RetentionSettings {
                region: Region::Eu,
                ..Default::default()
            },
            RetentionSettings {
                model_training_opt_out: true,
                ..Default::default()
            },
            RetentionSettings {
                zero_data_retention: true,
                ..Default::default()
            },
        ];
        for settings in excluded {
            assert!(!settings.training_eligible(), "{settings:?}");
        }
    }

    #[test]
    fn s1_unknown_region_is_refused() {
        assert!(Region::parse("mars").is_err());
        assert_eq!(Region::parse("eu"), Ok(Region::Eu));
    }
}
