//! The oracle: what the rules say about every artifact the run created, computed from the
//! pure policy (`lethe::domain::policy::schedule_for`, the §3 matrix) and the run's own
//! record of each account's settings over time — independently of how the engine stores
//! or reschedules anything.

use chrono::{DateTime, Utc};
use lethe::domain::policy::schedule_for;
use lethe::domain::{
    AccountId, ArtifactId, ArtifactKind, PlatformPolicy, RetentionSettings, ScheduleKind,
    TranscriptId,
};
use std::collections::HashMap;

pub type Time = DateTime<Utc>;

#[derive(Clone, Debug)]
pub struct OAccount {
    pub id: AccountId,
    /// (policy version, settings, when it took effect), oldest first.
    pub versions: Vec<(i64, RetentionSettings, Time)>,
}

impl OAccount {
    pub fn current(&self) -> (i64, &RetentionSettings) {
        let (v, s, _) = self.versions.last().expect("an account has a version");
        (*v, s)
    }
}

#[derive(Clone, Debug)]
pub struct OTranscript {
    pub id: TranscriptId,
    pub account: usize,
    pub created_version: i64,
    pub created_at: Time,
    pub upload: Option<ArtifactId>,
    /// When it became terminal (the anchor of its final transcript), once known.
    pub anchored_at: Option<Time>,
    /// Whether the run itself finished it (else the sweeper did, past max_processing).
    pub finished_by_run: bool,
    /// When the run called complete/error on it and the call failed part-way (the write
    /// that made it terminal may have landed).
    pub finish_attempts: Vec<Time>,
    pub customer_deleted_at: Option<Time>,
}

#[derive(Clone, Debug)]
pub struct OArtifact {
    pub id: ArtifactId,
    pub kind: ArtifactKind,
    pub account: usize,
    pub transcript: Option<TranscriptId>,
    /// Creation, or a streaming session's end.
    pub own_anchor: Time,
    pub created_version: i64,
    /// When a customer asked for its deletion (and was answered).
    pub requested_at: Option<Time>,
    /// Made by an operation that crashed or failed part-way: it exists, but its content
    /// may not (tracked, then the crash).
    pub uncertain: bool,
}

/// What the rules allow and require for one artifact.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Window {
    /// Deletion may begin (the policy's `delete_after`; `None` = never).
    pub after: Option<Time>,
    /// Deletion must be done (the policy's `delete_by`).
    pub by: Option<Time>,
    /// When the policy version that set `after` took effect: a retroactive change can
    /// make an artifact due "in the past", but a sweeper can only act from the change on.
    pub known_since: Option<Time>,
}

#[derive(Debug)]
pub struct Oracle {
    pub platform: PlatformPolicy,
    pub accounts: Vec<OAccount>,
    pub transcripts: Vec<OTranscript>,
    pub transcript_index: HashMap<TranscriptId, usize>,
    pub artifacts: HashMap<ArtifactId, OArtifact>,
    /// Standalone artifacts (uploads, gateway requests, sessions) in creation order.
    pub standalone: Vec<ArtifactId>,
}

fn earliest(a: Option<Time>, b: Option<Time>) -> Option<Time> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

impl Oracle {
    pub fn new(platform: PlatformPolicy) -> Self {
        Self {
            platform,
            accounts: Vec::new(),
            transcripts: Vec::new(),
            transcript_index: HashMap::new(),
            artifacts: HashMap::new(),
            standalone: Vec::new(),
        }
    }

    pub fn account_of(&self, id: AccountId) -> Option<usize> {
        self.accounts.iter().position(|a| a.id == id)
    }

    pub fn transcript(&self, id: TranscriptId) -> Option<&OTranscript> {
        self.transcript_index
            .get(&id)
            .map(|i| &self.transcripts[*i])
    }

    pub fn add_transcript(&mut self, t: OTranscript) {
        self.transcript_index.insert(t.id, self.transcripts.len());
        self.transcripts.push(t);
    }

    pub fn add_artifact(&mut self, a: OArtifact) {
        if a.transcript.is_none() {
            self.standalone.push(a.id);
        }
        self.artifacts.insert(a.id, a);
    }

    /// The final transcript's window of a transcript: the earliest any policy version
    /// since the transcript was created gives, from its anchor.
    pub fn transcript_window(&self, t: &OTranscript) -> Window {
        let Some(anchor) = t.anchored_at else {
            return Window {
                after: None,
                by: None,
                known_since: None,
            };
        };
        self.fold(&self.accounts[t.account], t.created_version, |s| {
            let f = schedule_for(ArtifactKind::FinalTranscript, s, anchor, &self.platform);
            (f.delete_after, f.delete_by)
        })
    }

    /// The earliest schedule over every version from `origin` on, component by component.
    fn fold(
        &self,
        account: &OAccount,
        origin: i64,
        one: impl Fn(&RetentionSettings) -> (Option<Time>, Option<Time>),
    ) -> Window {
        let mut window: Option<Window> = None;
        for (version, settings, since) in &account.versions {
            if *version < origin {
                continue;
            }
            let (after, by) = one(settings);
            window = Some(match window {
                None => Window {
                    after,
                    by,
                    known_since: Some(*since),
                },
                Some(w) => {
                    let earlier = earliest(w.after, after);
                    Window {
                        after: earlier,
                        by: earliest(w.by, by),
                        known_since: if earlier != w.after {
                            Some(*since)
                        } else {
                            w.known_since
                        },
                    }
                }
            });
        }
        window.unwrap_or(Window {
            after: None,
            by: None,
            known_since: None,
        })
    }

    /// The policy's window for `a` (§1, §3, §4, §6): artifacts that are always linked take
    /// their transcript's; the others the earliest of their own kind's schedule over every
    /// version since they were created, "linked" resolved to the final transcript's.
    pub fn policy_window(&self, a: &OArtifact) -> Window {
        let transcript = a.transcript.and_then(|t| self.transcript(t));
        match (a.kind, transcript) {
            (
                ArtifactKind::FinalTranscript
                | ArtifactKind::UrlAudioReference
                | ArtifactKind::TextInput
                | ArtifactKind::SpeechUnderstanding,
                Some(t),
            ) => self.transcript_window(t),
            _ => {
                let t_anchor = transcript.and_then(|t| t.anchored_at);
                self.fold(&self.accounts[a.account], a.created_version, |s| {
                    let base = schedule_for(a.kind, s, a.own_anchor, &self.platform);
                    if base.kind == ScheduleKind::Linked {
                        match t_anchor {
                            Some(anchor) => {
                                let f = schedule_for(
                                    ArtifactKind::FinalTranscript,
                                    s,
                                    anchor,
                                    &self.platform,
                                );
                                (f.delete_after, f.delete_by)
                            }
                            None => (None, None),
                        }
                    } else {
                        (base.delete_after, base.delete_by)
                    }
                })
            }
        }
    }

    /// The earliest moment `a` may be gone: its policy's `delete_after`, a customer's
    /// request, or (for what is linked to a transcript) its final transcript's deletion.
    pub fn allowed_from(&self, a: &OArtifact, final_deleted_at: Option<Time>) -> Option<Time> {
        let window = self.policy_window(a);
        let cascades = a.transcript.is_some() && a.kind != ArtifactKind::UploadedAudio;
        let mut from = earliest(window.after, a.requested_at);
        if cascades {
            from = earliest(from, final_deleted_at);
        }
        from
    }

    /// From when `a` must be deleted by a pass that runs with nothing in its way: its
    /// policy's `delete_after` (or the change that brought it, if later), a request, or an
    /// always-linked artifact's final going.
    pub fn required_from(&self, a: &OArtifact, final_deleted_at: Option<Time>) -> Option<Time> {
        let mut window = self.policy_window(a);
        window.after = match (window.after, window.known_since) {
            (Some(after), Some(since)) => Some(after.max(since)),
            (after, _) => after,
        };
        let always_linked = matches!(
            a.kind,
            ArtifactKind::UrlAudioReference
                | ArtifactKind::TextInput
                | ArtifactKind::SpeechUnderstanding
                | ArtifactKind::FinalTranscript
        ) && a.transcript.is_some();
        let mut from = earliest(window.after, a.requested_at);
        if always_linked {
            from = earliest(from, final_deleted_at);
        }
        from
    }
}
