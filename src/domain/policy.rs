//! The §3 matrix and §4 deadlines: (artifact kind, settings in force, anchor) → schedule.
//!
//! A [`Schedule`] is one of: indefinite; linked (deleted with its transcript's final
//! transcript, whenever that happens); a point in time (`delete_after`, with `delete_by`
//! one deletion SLA later); or a window (`delete_after`, `delete_by` are its ends).

use chrono::{DateTime, Duration, DurationRound, Utc};

use super::kinds::{ArtifactKind, ScheduleKind};
use super::settings::{Mode, RetentionSettings};

/// Operator-wide policy knobs (configuration), not per account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PlatformPolicy {
    /// How long after `delete_after` a point deletion must have finished (§4; default 1 h).
    pub deletion_sla: Duration,
    /// **(decision §3)** replaces "indefinite" with a platform-wide retention; `None` keeps it indefinite.
    pub indefinite_retention: Option<Duration>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    pub kind: ScheduleKind,
    pub delete_after: Option<DateTime<Utc>>,
    pub delete_by: Option<DateTime<Utc>>,
}

impl Schedule {
    pub const INDEFINITE: Schedule = Schedule {
        kind: ScheduleKind::Indefinite,
        delete_after: None,
        delete_by: None,
    };
    pub const LINKED: Schedule = Schedule {
        kind: ScheduleKind::Linked,
        delete_after: None,
        delete_by: None,
    };

    /// A point deletion: begins at `at`, must be done one SLA later.
    pub fn point(at: DateTime<Utc>, platform: &PlatformPolicy) -> Self {
        Self {
            kind: ScheduleKind::Point,
            delete_after: Some(at),
            delete_by: Some(at + platform.deletion_sla),
        }
    }

    pub fn window(begin: DateTime<Utc>, end: DateTime<Utc>) -> Self {
        Self {
            kind: ScheduleKind::Window,
            delete_after: Some(begin),
            delete_by: Some(end),
        }
    }

    /// **(decision §1)** Retention only ever gets shorter retroactively: returns `proposed`
    /// when it would begin deletion strictly earlier than `self`, `None` otherwise.
    /// Linked schedules follow their transcript and are never rescheduled on their own.
    pub fn shortened_by(&self, proposed: &Schedule) -> Option<Schedule> {
        if self.kind == ScheduleKind::Linked || proposed.kind == ScheduleKind::Linked {
            return None;
        }
        match (self.delete_after, proposed.delete_after) {
            (None, Some(_)) => Some(*proposed),
            (Some(current), Some(next)) if next < current => Some(*proposed),
            _ => None,
        }
    }
}

/// The schedule of an artifact of `kind` anchored at `anchor` (§4) under `settings` (§3, §6).
///
/// For `final_transcript`, `streaming_session` and everything linked to a transcript the
/// anchor is the moment the transcript (or session) ended; for `uploaded_audio`,
/// `intermediate` and `llm_gateway_io` it is their own creation.
pub fn schedule_for(
    kind: ArtifactKind,
    settings: &RetentionSettings,
    anchor: DateTime<Utc>,
    platform: &PlatformPolicy,
) -> Schedule {
    use ArtifactKind::*;
    let mode = settings.matrix_mode();
    match kind {
        UploadedAudio => match mode {
            Mode::Default => {
                Schedule::window(anchor + Duration::hours(24), anchor + Duration::hours(48))
            }
            _ => Schedule::point(anchor + settings.upload_ttl, platform),
        },
        FinalTranscript | StreamingSession => final_transcript_schedule(settings, anchor, platform),
        Intermediate => match mode {
            Mode::Default => {
                Schedule::window(anchor + Duration::hours(48), anchor + Duration::hours(72))
            }
            _ => Schedule::LINKED,
        },
        UrlAudioReference | TextInput | SpeechUnderstanding => Schedule::LINKED,
        LlmGatewayIo => match mode {
            // (decision §6) hourly deletion: from the first top of the hour after creation.
            Mode::Ttl => {
                let after = next_top_of_hour(anchor);
                Schedule {
                    kind: ScheduleKind::Point,
                    delete_after: Some(after),
                    delete_by: Some(after + Duration::hours(1)),
                }
            }
            _ => final_transcript_schedule(settings, anchor, platform),
        },
    }
}

/// What an artifact's schedule is measured from (§4): its own anchor (creation, or a
/// streaming session's end) and, for everything that belongs to a transcript, the moment
/// the transcript reached a terminal status (`None` while it is still running).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Anchors {
    pub own: DateTime<Utc>,
    pub transcript: Option<DateTime<Utc>>,
}

/// The schedule an artifact of `kind` gets under one policy version, with "linked"
/// resolved: once its transcript is anchored, a linked artifact carries the deadlines its
/// final transcript has under the same settings (kind `Linked`); before, it has none.
pub fn schedule_under(
    kind: ArtifactKind,
    anchors: Anchors,
    settings: &RetentionSettings,
    platform: &PlatformPolicy,
) -> Schedule {
    let linked = || match anchors.transcript {
        Some(anchor) => {
            let f = final_transcript_schedule(settings, anchor, platform);
            Schedule {
                kind: ScheduleKind::Linked,
                delete_after: f.delete_after,
                delete_by: f.delete_by,
            }
        }
        None => Schedule::LINKED,
    };
    match kind {
        ArtifactKind::FinalTranscript => match anchors.transcript {
            Some(anchor) => final_transcript_schedule(settings, anchor, platform),
            None => Schedule::INDEFINITE,
        },
        _ => match schedule_for(kind, settings, anchors.own, platform) {
            s if s.kind == ScheduleKind::Linked => linked(),
            s => s,
        },
    }
}

/// **(decision §1)** Retention only ever gets shorter: the schedule an artifact must keep
/// given every policy version in force since it was created (`versions`, oldest first) is
/// the earliest of their schedules, component by component (`delete_after` and `delete_by`
/// each the earliest any version sets). `None` when `versions` is empty.
pub fn retroactive_schedule<'a>(
    kind: ArtifactKind,
    anchors: Anchors,
    versions: impl IntoIterator<Item = &'a RetentionSettings>,
    platform: &PlatformPolicy,
) -> Option<Schedule> {
    versions
        .into_iter()
        .map(|settings| schedule_under(kind, anchors, settings, platform))
        .reduce(|current, next| current.tightened_by(&next).unwrap_or(current))
}

/// An earlier of two optional instants, `None` meaning never.
fn earliest(a: Option<DateTime<Utc>>, b: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Schedule {
    /// **(decision §1)** `self` made no longer than `proposed`: `delete_after` and
    /// `delete_by` each become the earlier of the two; the kind follows whichever begins
    /// deletion first (`self` on a tie). `None` when `proposed` changes nothing.
    pub fn tightened_by(&self, proposed: &Schedule) -> Option<Schedule> {
        let delete_after = earliest(self.delete_after, proposed.delete_after);
        let delete_by = earliest(self.delete_by, proposed.delete_by);
        if (delete_after, delete_by) == (self.delete_after, self.delete_by) {
            return None;
        }
        let kind = if delete_after != self.delete_after {
            proposed.kind
        } else {
            self.kind
        };
        // A window tightened at one end only is still a window; a deadline without a
        // beginning keeps the beginning it gets (never later than the deadline).
        let delete_after = match (delete_after, delete_by) {
            (Some(after), Some(by)) => Some(after.min(by)),
            (None, Some(by)) => Some(by),
            (after, None) => after,
        };
        Some(Schedule {
            kind,
            delete_after,
            delete_by,
        })
    }
}

/// Who serves an LLM Gateway request, as far as §6 cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LlmProvider {
    /// Anthropic (Claude), directly or through a cloud.
    Anthropic,
    /// Google (Gemini, Vertex AI).
    Google,
    /// A provider Lethe knows and whose traffic §6 does not give zero data retention.
    Other,
    /// A provider Lethe cannot classify.
    Unknown,
}

/// Providers (and model families) Lethe knows not to be Anthropic or Google, as
/// normalised names (lowercase letters and digits only).
const OTHER_PROVIDERS: &[&str] = &[
    "openai",
    "azure",
    "azureopenai",
    "mistral",
    "mistralai",
    "cohere",
    "meta",
    "llama",
    "groq",
    "deepseek",
    "xai",
    "grok",
    "perplexity",
    "together",
    "togetherai",
    "fireworks",
    "assemblyai",
    "gpt",
];

/// Lowercase letters and digits only: `" Anthropic"`, `"ANTHROPIC\t"` and `"anthropic"`
/// are one provider.
fn normalised(text: &str) -> String {
    text.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Classifies a request by its provider and model, however they are spelled: the model
/// family wins (a Claude model through any cloud is Anthropic's), then the provider's
/// name. Anything Lethe does not recognise is `Unknown`.
pub fn classify_llm_provider(provider: &str, model: &str) -> LlmProvider {
    let (provider, model) = (normalised(provider), normalised(model));
    let anthropic = |s: &str| s.contains("anthropic") || s.contains("claude");
    let google = |s: &str| {
        s.contains("google")
            || s.contains("gemini")
            || s.contains("vertex")
            || s.contains("palm")
            || s.contains("bison")
            || s.contains("gemma")
    };
    if anthropic(&model) {
        LlmProvider::Anthropic
    } else if google(&model) {
        LlmProvider::Google
    } else if anthropic(&provider) {
        LlmProvider::Anthropic
    } else if google(&provider) {
        LlmProvider::Google
    } else if OTHER_PROVIDERS
        .iter()
        .any(|p| provider == *p || provider.starts_with(p))
    {
        LlmProvider::Other
    } else {
        LlmProvider::Unknown
    }
}

/// §6 LLM Gateway: on a ZDR account, or with a BAA and an Anthropic or Google model, the
/// inputs and outputs are never persisted, only usage metadata. **(decision)** Under a BAA
/// the rule is default-deny: a provider Lethe cannot classify is treated as one that
/// gets zero data retention, so its content is not stored either.
pub fn llm_gateway_has_zero_data_retention(
    settings: &RetentionSettings,
    provider: &str,
    model: &str,
) -> bool {
    settings.zero_data_retention
        || (settings.baa && classify_llm_provider(provider, model) != LlmProvider::Other)
}

/// §6 Streaming: an account that opted out of model training, or has ZDR, gets zero data
/// retention for streaming sessions.
pub fn streaming_has_zero_data_retention(settings: &RetentionSettings) -> bool {
    settings.zero_data_retention || settings.model_training_opt_out
}

/// The `final_transcript` column of the matrix.
fn final_transcript_schedule(
    settings: &RetentionSettings,
    anchor: DateTime<Utc>,
    platform: &PlatformPolicy,
) -> Schedule {
    match settings.effective_transcript_ttl() {
        Some(ttl) => Schedule::point(anchor + ttl, platform),
        None => match platform.indefinite_retention {
            Some(retention) => Schedule::point(anchor + retention, platform),
            None => Schedule::INDEFINITE,
        },
    }
}

/// The first top of the hour strictly after `at`.
fn next_top_of_hour(at: DateTime<Utc>) -> DateTime<Utc> {
    let hour = Duration::hours(1);
    // duration_trunc only fails for out-of-range timestamps, far outside any anchor we see.
    let floor = at.duration_trunc(hour).unwrap_or(at);
    floor + hour
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use ArtifactKind::*;

    fn anchor() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 11, 21, 29, 59)
            .single()
            .expect("valid")
    }
    fn h(hours: i64) -> Duration {
        Duration::hours(hours)
    }
    fn platform() -> PlatformPolicy {
        PlatformPolicy {
            deletion_sla: Duration::hours(1),
            indefinite_retention: None,
        }
    }
    fn ttl_mode(ttl: Duration) -> RetentionSettings {
        RetentionSettings {
            transcript_ttl: Some(ttl),
            ..Default::default()
        }
    }
    fn baa_mode() -> RetentionSettings {
        RetentionSettings {
            baa: true,
            ..Default::default()
        }
    }
    fn default_mode() -> RetentionSettings {
        RetentionSettings::default()
    }
    fn sched(kind: ArtifactKind, s: &RetentionSettings) -> Schedule {
        schedule_for(kind, s, anchor(), &platform())
    }
    fn point(offset: Duration) -> Schedule {
        Schedule::point(anchor() + offset, &platform())
    }

    // --- §3 matrix: uploaded_audio ---
    #[test]
    fn s3_uploaded_audio_ttl_mode_deletes_at_upload_ttl_72h_unless_set() {
        assert_eq!(sched(UploadedAudio, &ttl_mode(h(5))), point(h(72)));
        let mut s = ttl_mode(h(5));
        s.upload_ttl = h(2);
        assert_eq!(sched(UploadedAudio, &s), point(h(2)));
    }
    #[test]
    fn s3_uploaded_audio_baa_mode_deletes_at_upload_ttl_72h_unless_set() {
        assert_eq!(sched(UploadedAudio, &baa_mode()), point(h(72)));
        let mut s = baa_mode();
        s.upload_ttl = h(3);
        assert_eq!(sched(UploadedAudio, &s), point(h(3)));
    }
    #[test]
    fn s3_uploaded_audio_default_mode_window_24h_to_48h_from_upload() {
        assert_eq!(
            sched(UploadedAudio, &default_mode()),
            Schedule::window(anchor() + h(24), anchor() + h(48))
        );
    }

    // --- §3 matrix: final_transcript ---
    #[test]
    fn s3_final_transcript_ttl_mode_deletes_at_transcript_ttl_from_completion() {
        assert_eq!(sched(FinalTranscript, &ttl_mode(h(1))), point(h(1)));
        assert_eq!(
            sched(FinalTranscript, &ttl_mode(h(24 * 30))),
            point(h(24 * 30))
        );
    }
    #[test]
    fn s3_final_transcript_baa_mode_deletes_at_72h_or_the_accounts_ttl() {
        assert_eq!(sched(FinalTranscript, &baa_mode()), point(h(72)));
        let mut s = baa_mode();
        s.transcript_ttl = Some(h(12));
        assert_eq!(sched(FinalTranscript, &s), point(h(12)));
    }
    #[test]
    fn s3_final_transcript_default_mode_is_indefinite() {
        assert_eq!(
            sched(FinalTranscript, &default_mode()),
            Schedule::INDEFINITE
        );
    }

    // --- §3 matrix: url_audio_reference ---
    #[test]
    fn s3_url_audio_reference_ttl_mode_is_linked() {
        assert_eq!(sched(UrlAudioReference, &ttl_mode(h(2))), Schedule::LINKED);
    }
    #[test]
    fn s3_url_audio_reference_baa_mode_is_linked() {
        assert_eq!(sched(UrlAudioReference, &baa_mode()), Schedule::LINKED);
    }
    #[test]
    fn s3_url_audio_reference_default_mode_is_linked_hence_indefinite() {
        assert_eq!(sched(UrlAudioReference, &default_mode()), Schedule::LINKED);
        assert_eq!(
            sched(FinalTranscript, &default_mode()),
            Schedule::INDEFINITE
        );
    }

    // --- §3 matrix: intermediate ---
    #[test]
    fn s3_intermediate_ttl_mode_is_linked() {
        assert_eq!(sched(Intermediate, &ttl_mode(h(2))), Schedule::LINKED);
    }
    #[test]
    fn s3_intermediate_baa_mode_is_linked() {
        assert_eq!(sched(Intermediate, &baa_mode()), Schedule::LINKED);
    }
    #[test]
    fn s3_intermediate_default_mode_window_48h_to_72h_from_creation() {
        assert_eq!(
            sched(Intermediate, &default_mode()),
            Schedule::window(anchor() + h(48), anchor() + h(72))
        );
    }

    // --- §3 matrix: text_input ---
    #[test]
    fn s3_text_input_ttl_mode_is_linked() {
        assert_eq!(sched(TextInput, &ttl_mode(h(2))), Schedule::LINKED);
    }
    #[test]
    fn s3_text_input_baa_mode_is_linked() {
        assert_eq!(sched(TextInput, &baa_mode()), Schedule::LINKED);
    }
    #[test]
    fn s3_text_input_default_mode_is_linked_hence_indefinite() {
        assert_eq!(sched(TextInput, &default_mode()), Schedule::LINKED);
    }

    // --- §3 matrix: speech_understanding ---
    #[test]
    fn s3_speech_understanding_ttl_mode_is_linked() {
        assert_eq!(
            sched(SpeechUnderstanding, &ttl_mode(h(2))),
            Schedule::LINKED
        );
    }
    #[test]
    fn s3_speech_understanding_baa_mode_is_linked() {
        assert_eq!(sched(SpeechUnderstanding, &baa_mode()), Schedule::LINKED);
    }
    #[test]
    fn s3_speech_understanding_default_mode_is_linked_hence_indefinite() {
        assert_eq!(
            sched(SpeechUnderstanding, &default_mode()),
            Schedule::LINKED
        );
    }

    #[test]
    fn s3_decision_operator_may_replace_indefinite_with_a_platform_default_retention() {
        let platform = PlatformPolicy {
            indefinite_retention: Some(Duration::days(30)),
            ..platform()
        };
        let s = schedule_for(FinalTranscript, &default_mode(), anchor(), &platform);
        assert_eq!(s, Schedule::point(anchor() + Duration::days(30), &platform));
        // ... and nothing else changes: TTL accounts keep their TTL.
        let s = schedule_for(FinalTranscript, &ttl_mode(h(2)), anchor(), &platform);
        assert_eq!(s.delete_after, Some(anchor() + h(2)));
    }

    // --- §4 deadlines ---
    #[test]
    fn s4_point_deletion_has_delete_by_one_deletion_sla_after_delete_after() {
        let s = sched(FinalTranscript, &ttl_mode(h(3)));
        assert_eq!(s.delete_after, Some(anchor() + h(3)));
        assert_eq!(s.delete_by, Some(anchor() + h(4)));
        let slow = PlatformPolicy {
            deletion_sla: Duration::minutes(10),
            ..platform()
        };
        let s = schedule_for(FinalTranscript, &ttl_mode(h(3)), anchor(), &slow);
        assert_eq!(s.delete_by, Some(anchor() + h(3) + Duration::minutes(10)));
    }
    #[test]
    fn s4_window_deletion_has_the_window_ends_as_delete_after_and_delete_by() {
        let s = sched(UploadedAudio, &default_mode());
        assert_eq!(
            (s.delete_after, s.delete_by),
            (Some(anchor() + h(24)), Some(anchor() + h(48)))
        );
    }
    #[test]
    fn s4_uploaded_audio_and_intermediate_are_anchored_at_their_own_creation() {
        let later = anchor() + h(7);
        let s = schedule_for(UploadedAudio, &ttl_mode(h(1)), later, &platform());
        assert_eq!(s.delete_after, Some(later + h(72)));
        let s = schedule_for(Intermediate, &default_mode(), later, &platform());
        assert_eq!(s.delete_after, Some(later + h(48)));
    }
    #[test]
    fn s4_final_transcript_is_anchored_at_the_terminal_status() {
        let completed = anchor() + h(30);
        let s = schedule_for(FinalTranscript, &ttl_mode(h(1)), completed, &platform());
        assert_eq!(s.delete_after, Some(completed + h(1)));
    }

    // --- §1 decision: policy changes apply forward; only shortening applies retroactively ---
    #[test]
    fn s1_decision_a_shorter_ttl_shortens_existing_schedules() {
        let existing = sched(FinalTranscript, &ttl_mode(h(48)));
        let proposed = sched(FinalTranscript, &ttl_mode(h(2)));
        assert_eq!(existing.shortened_by(&proposed), Some(proposed));
    }
    #[test]
    fn s1_decision_a_longer_ttl_never_lengthens_existing_schedules() {
        let existing = sched(FinalTranscript, &ttl_mode(h(2)));
        let proposed = sched(FinalTranscript, &ttl_mode(h(48)));
        assert_eq!(existing.shortened_by(&proposed), None);
        assert_eq!(existing.shortened_by(&Schedule::INDEFINITE), None);
    }
    #[test]
    fn s1_decision_a_newly_executed_baa_shortens_indefinite_schedules_to_72h() {
        let existing = sched(FinalTranscript, &default_mode());
        let proposed = sched(FinalTranscript, &baa_mode());
        assert_eq!(existing.shortened_by(&proposed), Some(point(h(72))));
    }

    // --- §6 zero data retention of the LLM Gateway and streaming (pure part) ---
    #[test]
    fn s6_llm_gateway_with_a_baa_and_anthropic_or_google_has_zero_data_retention() {
        for provider in ["anthropic", "google"] {
            assert!(llm_gateway_has_zero_data_retention(
                &baa_mode(),
                provider,
                "m"
            ));
            assert!(!llm_gateway_has_zero_data_retention(
                &default_mode(),
                provider,
                "m"
            ));
        }
        assert!(!llm_gateway_has_zero_data_retention(
            &baa_mode(),
            "openai",
            "gpt-4o"
        ));
        let zdr = RetentionSettings {
            zero_data_retention: true,
            ..Default::default()
        };
        assert!(llm_gateway_has_zero_data_retention(
            &zdr, "openai", "gpt-4o"
        ));
    }

    #[test]
    fn s6_baa_zero_data_retention_cannot_be_bypassed_by_spelling() {
        // Spellings that were stored under a BAA before.
        for (provider, model) in [
            (" anthropic", "m"),
            ("ANTHROPIC\t", "m"),
            ("Anthropic", "m"),
            ("google-vertex", "m"),
            ("gemini", "m"),
            ("claude", "m"),
            ("aws-bedrock", "anthropic.claude-3-5-sonnet"),
            ("openrouter", "google/gemini-2.0-flash"),
            ("vertex_ai", "m"),
        ] {
            assert!(
                llm_gateway_has_zero_data_retention(&baa_mode(), provider, model),
                "{provider:?} {model:?}"
            );
        }
    }

    #[test]
    fn s6_decision_under_a_baa_an_unclassifiable_provider_is_not_stored() {
        assert_eq!(
            classify_llm_provider("acme-llm", "acme-1"),
            LlmProvider::Unknown
        );
        assert!(llm_gateway_has_zero_data_retention(
            &baa_mode(),
            "acme-llm",
            "acme-1"
        ));
        assert!(!llm_gateway_has_zero_data_retention(
            &default_mode(),
            "acme-llm",
            "acme-1"
        ));
        assert_eq!(
            classify_llm_provider("OpenAI ", "gpt-4o"),
            LlmProvider::Other
        );
    }
    #[test]
    fn s6_streaming_has_zero_data_retention_when_opted_out_of_training_or_zdr() {
        assert!(!streaming_has_zero_data_retention(&default_mode()));
        assert!(!streaming_has_zero_data_retention(&baa_mode()));
        let opted_out = RetentionSettings {
            model_training_opt_out: true,
            ..Default::default()
        };
        assert!(streaming_has_zero_data_retention(&opted_out));
        let zdr = RetentionSettings {
            zero_data_retention: true,
            ..Default::default()
        };
        assert!(streaming_has_zero_data_retention(&zdr));
    }
    #[test]
    fn s6_streaming_session_follows_the_final_transcript_column_from_its_end() {
        for settings in [ttl_mode(h(5)), baa_mode(), default_mode()] {
            assert_eq!(
                sched(StreamingSession, &settings),
                sched(FinalTranscript, &settings)
            );
        }
    }
    #[test]
    fn s6_llm_gateway_io_without_a_ttl_follows_the_final_transcript_column() {
        for settings in [baa_mode(), default_mode()] {
            assert_eq!(
                sched(LlmGatewayIo, &settings),
                sched(FinalTranscript, &settings)
            );
        }
    }

    // --- §6 LLM Gateway hourly decision (pure part) ---
    #[test]
    fn s6_decision_llm_gateway_io_with_a_ttl_deletes_from_the_next_top_of_the_hour() {
        let s = sched(LlmGatewayIo, &ttl_mode(h(5)));
        let top = Utc
            .with_ymd_and_hms(2026, 3, 11, 22, 0, 0)
            .single()
            .expect("valid");
        assert_eq!(s.delete_after, Some(top));
        assert_eq!(s.delete_by, Some(top + h(1)));
        let on_the_hour = Utc
            .with_ymd_and_hms(2026, 3, 11, 22, 0, 0)
            .single()
            .expect("valid");
        let s = schedule_for(LlmGatewayIo, &ttl_mode(h(5)), on_the_hour, &platform());
        assert_eq!(s.delete_after, Some(top + h(1)));
    }
}
