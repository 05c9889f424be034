//! Every string-valued enum of the domain, each written once: its variants, its text
//! form (what the API shows and the stores keep) and its parse. Also the one place that
//! knows the layout of a content key.

use serde::{Deserialize, Serialize};

macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(s: &str) -> Option<Self> {
                match s { $($text => Some($name::$variant),)+ _ => None }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

string_enum!(
    /// The artifact kinds of retention.md §2.
    ArtifactKind {
        UploadedAudio => "uploaded_audio",
        UrlAudioReference => "url_audio_reference",
        Intermediate => "intermediate",
        FinalTranscript => "final_transcript",
        TextInput => "text_input",
        SpeechUnderstanding => "speech_understanding",
        LlmGatewayIo => "llm_gateway_io",
        StreamingSession => "streaming_session",
    }
);

impl ArtifactKind {
    /// Whether an artifact of this kind that belongs to a transcript always goes with its
    /// final transcript (the final transcript itself included): its schedule is the
    /// transcript's, from the policy version the transcript was created under (§3).
    pub fn always_linked(self) -> bool {
        matches!(
            self,
            ArtifactKind::FinalTranscript
                | ArtifactKind::UrlAudioReference
                | ArtifactKind::TextInput
                | ArtifactKind::SpeechUnderstanding
        )
    }
}

string_enum!(
    /// Where an artifact is in its life. `Deleting` is held under a claim by one sweeper.
    ArtifactState {
        Live => "live",
        Deleting => "deleting",
        Deleted => "deleted",
    }
);

string_enum!(
    /// Why an artifact was deleted (retention.md §5).
    DeletionReason {
        Ttl => "ttl",
        Window => "window",
        CustomerRequest => "customer_request",
        Linked => "linked",
        Zdr => "zdr",
    }
);

string_enum!(
    /// What a webhook announces: AssemblyAI's completion webhook of a transcript
    /// (`{"transcript_id", "status"}`), or Lethe's deletion event to an account's
    /// deletion webhook.
    WebhookEvent {
        TranscriptStatus => "transcript.status",
        TranscriptDeleted => "transcript.deleted",
    }
);

string_enum!(
    /// Where a webhook delivery is: `pending` until the receiver answers 2xx
    /// (`delivered`), the attempts run out (`failed`) or its target is gone with the
    /// transcript (`abandoned`).
    DeliveryState {
        Pending => "pending",
        Delivered => "delivered",
        Failed => "failed",
        Abandoned => "abandoned",
    }
);

string_enum!(
    /// What a usage record bills: the surfaces whose content may be dropped (§6).
    UsageKind {
        LlmGateway => "llm_gateway",
        Streaming => "streaming",
    }
);

string_enum!(
    TranscriptStatus {
        Queued => "queued",
        Processing => "processing",
        Completed => "completed",
        Error => "error",
    }
);

impl TranscriptStatus {
    pub fn is_terminal(self) -> bool {
        matches!(self, TranscriptStatus::Completed | TranscriptStatus::Error)
    }
}

string_enum!(
    /// How an artifact's deletion is scheduled (§3, §4).
    ScheduleKind {
        Indefinite => "indefinite",
        Linked => "linked",
        Point => "point",
        Window => "window",
    }
);

string_enum!(
    /// Whether a sweep pass is still running (recorded when it starts), has ended, or
    /// was stopped by an error (its counts are what it did until then).
    SweepState {
        Running => "running",
        Finished => "finished",
        Failed => "failed",
    }
);

#[allow(clippy::derivable_impls)] // the variants come from string_enum!
impl Default for SweepState {
    fn default() -> Self {
        SweepState::Finished
    }
}

/// A content key is `<account>/<scope>/<artifact>`: the scope (a transcript, or an upload
/// or standalone artifact itself) is what one data key encrypts and crypto-shredding
/// forgets. Built here, and parsed here.
pub fn content_key(account: uuid::Uuid, scope: uuid::Uuid, artifact: uuid::Uuid) -> String {
    format!("{account}/{scope}/{artifact}")
}

/// The scope of a content key: everything before its last segment.
pub fn content_scope(key: &str) -> &str {
    key.rsplit_once('/').map_or(key, |(scope, _)| scope)
}
