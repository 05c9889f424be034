//! The model-training export (retention.md §6): eligible, live artifacts, with their
//! personally identifiable information redacted and never a secret.
//!
//! - Secrets are never training data: a transcript's audio URL is not exported at all (it
//!   may carry credentials or a signature), and the webhook URL and auth header are
//!   removed from text inputs.
//! - Text is redacted by [`crate::pii`]: transcripts keep their word timings with each PII
//!   word replaced by its entity tag; other JSON has every string redacted; plain text is
//!   redacted as a whole.
//! - Audio is handed out as it is, with the time ranges of the words redacted in the
//!   transcripts made from it, so the consumer can mute them.

use super::*;
use crate::domain::{Artifact, ArtifactId, ArtifactKind, ArtifactState, Transcript};
use crate::storage::ByteStream;

/// What the training export hands out for one artifact (§6).
pub enum TrainingExport {
    /// Text content with its PII redacted.
    Redacted {
        bytes: bytes::Bytes,
        content_type: &'static str,
    },
    /// Audio as stored; mute the ranges [`Engine::training_redactions`] gives.
    Audio(ByteStream),
}

impl Engine {
    /// Live artifacts eligible for model training, in id order after `after`.
    pub async fn training_eligible(
        &self,
        after: Option<ArtifactId>,
        limit: u32,
    ) -> Result<Vec<Artifact>> {
        // Ids only: an artifact of a transcript marked deleted is listed until its
        // deletion reaches it (a customer's deletion a crash cut short), but its content
        // is not served ([`Engine::training_content`]).
        Ok(self
            .backends
            .index
            .training_eligible(self.now(), after, limit)
            .await?)
    }

    /// An eligible artifact, servable now, with its transcript (read through the policy
    /// history); `Ok(None)` once deleted or past `delete_after`; `NotFound` if it never
    /// was eligible or is no training data at all (an audio URL).
    pub(crate) async fn training_artifact(
        &self,
        id: ArtifactId,
    ) -> Result<Option<(Artifact, Option<Transcript>)>> {
        let artifact = self
            .backends
            .index
            .artifact(id)
            .await?
            .ok_or(EngineError::NotFound)?;
        let eligible =
            artifact.training_eligible && crate::engine::training::is_training_data(artifact.kind);
        if !eligible && artifact.state != ArtifactState::Deleted {
            return Err(EngineError::NotFound);
        }
        let account = self.account(artifact.account_id).await?;
        let transcript = match artifact.transcript_id {
            Some(t) => self
                .backends
                .index
                .transcript(t)
                .await?
                .map(|t| self.effective_transcript(t, &account)),
            None => None,
        };
        let servable = self.is_servable(&artifact, transcript.as_ref(), &account)
            && transcript.as_ref().is_none_or(|t| {
                artifact.kind != ArtifactKind::FinalTranscript || t.is_final(&artifact)
            });
        if !eligible || !servable {
            return Ok(None);
        }
        Ok(Some((artifact, transcript)))
    }

    /// An eligible artifact's content for the training export, PII redacted (§6): text as
    /// redacted JSON or text, audio as it is (see [`Engine::training_redactions`]).
    /// `None` once it is deleted or past `delete_after`.
    pub async fn training_content(&self, id: ArtifactId) -> Result<Option<TrainingExport>> {
        let Some((artifact, _)) = self.training_artifact(id).await? else {
            return Ok(None);
        };
        let content = &self.backends.content;
        if artifact.kind == ArtifactKind::UploadedAudio {
            return Ok(content
                .get_stream(&artifact.content_key)
                .await?
                .map(TrainingExport::Audio));
        }
        // Anything else may be text (intermediates include model outputs): read whole and
        // redacted as text when it is text.
        let Some(bytes) = content.get(&artifact.content_key).await? else {
            return Ok(None);
        };
        Ok(Some(
            match crate::engine::training::redact(artifact.kind, bytes.expose()) {
                Some((redacted, content_type)) => TrainingExport::Redacted {
                    bytes: redacted.into(),
                    content_type,
                },
                None => TrainingExport::Audio(Box::pin(futures::stream::once(async move {
                    Ok(bytes.into_bytes())
                }))),
            },
        ))
    }

    /// The time ranges (milliseconds) to mute in an eligible artifact's audio: the words
    /// redacted in the transcripts made from it (an upload's transcripts, an
    /// intermediate's transcript, a streaming session's own transcript). `None` once it is
    /// deleted or past `delete_after`.
    pub async fn training_redactions(&self, id: ArtifactId) -> Result<Option<Vec<(i64, i64)>>> {
        let Some((artifact, transcript)) = self.training_artifact(id).await? else {
            return Ok(None);
        };
        let transcripts = match artifact.kind {
            ArtifactKind::UploadedAudio => {
                self.backends
                    .index
                    .transcripts_for_upload(artifact.id)
                    .await?
            }
            ArtifactKind::StreamingSession => {
                let content = self.backends.content.get(&artifact.content_key).await?;
                return Ok(Some(
                    content
                        .map(|c| crate::engine::training::session_ranges(c.expose()))
                        .unwrap_or_default(),
                ));
            }
            _ => transcript.into_iter().collect(),
        };
        let mut ranges = Vec::new();
        for t in transcripts {
            let Some(final_id) = t.final_artifact_id else {
                continue;
            };
            let Some(result) = self.backends.index.artifact(final_id).await? else {
                continue;
            };
            if let Some(content) = self.backends.content.get(&result.content_key).await? {
                if let Ok(json) = serde_json::from_slice(content.expose()) {
                    ranges.extend(crate::engine::training::redact_result(&json).1);
                }
            }
        }
        Ok(Some(crate::engine::training::merge_ranges(ranges)))
    }
}

use serde_json::Value;

use crate::pii;

/// Text-input fields that are secrets or point at the customer's systems: never
/// training data.
const SECRET_INPUTS: &[&str] = &[
    "webhook_url",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
];

/// Whether content of this kind is ever training data.
pub fn is_training_data(kind: ArtifactKind) -> bool {
    kind != ArtifactKind::UrlAudioReference
}

/// Whether content of this kind is exported as bytes with mute ranges (audio), rather than
/// redacted as text.
pub fn is_audio(kind: ArtifactKind) -> bool {
    matches!(
        kind,
        ArtifactKind::UploadedAudio | ArtifactKind::Intermediate
    )
}

/// A transcript result with its PII redacted: text and words by [`pii::redact_transcript`]
/// (timings kept), every other string field by [`pii::redact_json_strings`]. Returns the
/// redacted result and the mute ranges (milliseconds) of the redacted words.
pub fn redact_result(result: &Value) -> (Value, Vec<(i64, i64)>) {
    let (mut redacted, ranges) = pii::redact_transcript(result);
    if let Value::Object(fields) = &mut redacted {
        for (field, value) in fields.iter_mut() {
            if !matches!(field.as_str(), "text" | "words" | "utterances") {
                *value = pii::redact_json_strings(value);
            }
        }
    }
    (redacted, ranges)
}

/// The exported form of an artifact's content: redacted JSON or text, with its content
/// type. `None` for audio, which is exported as it is (see [`is_audio`]).
pub fn redact(kind: ArtifactKind, content: &[u8]) -> Option<(Vec<u8>, &'static str)> {
    let json = serde_json::from_slice::<Value>(content).ok();
    let redacted = match (kind, json) {
        (ArtifactKind::UrlAudioReference, _) => return Some((Vec::new(), "text/plain")),
        (ArtifactKind::FinalTranscript, Some(result)) => redact_result(&result).0,
        (ArtifactKind::TextInput, Some(Value::Object(mut inputs))) => {
            for secret in SECRET_INPUTS {
                inputs.remove(*secret);
            }
            pii::redact_json_strings(&Value::Object(inputs))
        }
        (ArtifactKind::StreamingSession, Some(Value::Object(mut session))) => {
            if let Some(transcript) = session.get("transcript") {
                let redacted = redact_result(transcript).0;
                session.insert("transcript".into(), redacted);
            }
            Value::Object(session)
        }
        (_, Some(other)) => pii::redact_json_strings(&other),
        (kind, None) if is_audio(kind) => return None,
        (_, None) => {
            let text = String::from_utf8_lossy(content);
            return Some((pii::redact_text(&text).into_bytes(), "text/plain"));
        }
    };
    Some((
        serde_json::to_vec(&redacted).unwrap_or_default(),
        "application/json",
    ))
}

/// The mute ranges of a streaming session's audio: the words redacted in its transcript.
pub fn session_ranges(content: &[u8]) -> Vec<(i64, i64)> {
    serde_json::from_slice::<Value>(content)
        .ok()
        .and_then(|v| v.get("transcript").map(|t| redact_result(t).1))
        .unwrap_or_default()
}

/// Merges ranges from several transcripts: sorted, overlapping or touching ones joined.
pub fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start <= last.1 => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn s6_secrets_are_never_training_data() {
        let inputs = json!({
            "prompt": "a support call",
            "webhook_url": "https://hooks.example.com/x?token=SECRET-TOKEN",
            "webhook_auth_header_name": "Authorization",
            "webhook_auth_header_value": "Bearer SECRET-VALUE",
        });
        let (bytes, _) =
            redact(ArtifactKind::TextInput, inputs.to_string().as_bytes()).expect("text");
        let out = String::from_utf8(bytes).expect("utf8");
        assert!(!out.contains("SECRET"), "{out}");
        assert!(out.contains("a support call"));
        let (url, _) = redact(
            ArtifactKind::UrlAudioReference,
            b"https://user:pass@bucket.example.com/a.wav?sig=SECRET",
        )
        .expect("nothing");
        assert!(url.is_empty());
        assert!(!is_training_data(ArtifactKind::UrlAudioReference));
    }

    #[test]
    fn s6_transcripts_are_exported_with_pii_tagged_and_timings_kept() {
        let result = json!({
            "text": "call me at 555-123-4567 please",
            "words": [
                {"text": "call", "start": 0, "end": 100},
                {"text": "me", "start": 100, "end": 200},
                {"text": "at", "start": 200, "end": 300},
                {"text": "555-123-4567", "start": 300, "end": 900},
                {"text": "please", "start": 900, "end": 1000}
            ],
            "summary": "caller gave 555-123-4567"
        });
        let (redacted, ranges) = redact_result(&result);
        assert_eq!(redacted["text"], "call me at [PHONE_NUMBER] please");
        assert_eq!(redacted["words"][3]["text"], "[PHONE_NUMBER]");
        assert_eq!(redacted["words"][3]["start"], 300);
        assert_eq!(redacted["summary"], "caller gave [PHONE_NUMBER]");
        assert_eq!(ranges, vec![(300, 900)]);
    }

    #[test]
    fn ranges_from_several_transcripts_merge() {
        assert_eq!(
            merge_ranges(vec![(500, 900), (0, 100), (80, 200), (900, 950)]),
            vec![(0, 200), (500, 950)]
        );
    }
}

/// The blind corpora (`tests/pii/`): written without reading the detector, so their figures
/// are an independent measure of what the export redacts.
#[cfg(test)]
mod blind_corpus {
    use crate::pii::{find, Entity};
    use serde_json::Value;

    fn entity(name: &str) -> Entity {
        match name {
            "EMAIL_ADDRESS" => Entity::EmailAddress,
            "PHONE_NUMBER" => Entity::PhoneNumber,
            "CREDIT_CARD_NUMBER" => Entity::CreditCardNumber,
            "US_SOCIAL_SECURITY_NUMBER" => Entity::UsSocialSecurityNumber,
            "IP_ADDRESS" => Entity::IpAddress,
            "URL_WITH_CREDENTIALS" => Entity::UrlWithCredentials,
            other => panic!("unknown entity {other}"),
        }
    }

    #[test]
    fn s6_training_redaction_recall_and_false_positives_on_the_blind_corpora() {
        let planted = include_str!("../../tests/pii/planted.jsonl");
        let mut per: std::collections::BTreeMap<String, (u32, u32)> = Default::default();
        let mut misses = Vec::new();
        for line in planted.lines().filter(|l| !l.trim().is_empty()) {
            let item: Value = serde_json::from_str(line).expect("corpus line");
            let text = item["text"].as_str().expect("text");
            let found = find(text);
            for pii in item["pii"].as_array().expect("pii") {
                let name = pii["entity"].as_str().expect("entity");
                let value = pii["value"].as_str().expect("value");
                let start = text.find(value).expect("value in text");
                let end = start + value.len();
                let covered = found.iter().any(|f| {
                    // The tag that replaces it names the right entity, or any tag replaces
                    // it whole (a URL's credentials caught as the URL, say).
                    f.start <= start
                        && f.end >= end
                        && (f.entity == entity(name) || f.end - f.start > value.len())
                });
                let counts = per.entry(name.to_owned()).or_default();
                counts.1 += 1;
                if covered {
                    counts.0 += 1;
                } else {
                    misses.push(format!("{name}: {value:?}"));
                }
            }
        }
        let (hit, total) = per.values().fold((0, 0), |(h, t), (a, b)| (h + a, t + b));
        for (name, (h, t)) in &per {
            println!(
                "blind recall {name}: {h}/{t} = {:.3}",
                f64::from(*h) / f64::from(*t)
            );
        }
        let recall = f64::from(hit) / f64::from(total);
        println!("blind recall overall: {hit}/{total} = {recall:.3}");
        for miss in &misses {
            println!("blind miss {miss}");
        }
        let clean = include_str!("../../tests/pii/clean.jsonl");
        let mut false_positives = Vec::new();
        let mut sentences = 0;
        for line in clean.lines().filter(|l| !l.trim().is_empty()) {
            sentences += 1;
            let item: Value = serde_json::from_str(line).expect("corpus line");
            let text = item["text"].as_str().expect("text");
            for f in find(text) {
                false_positives.push(format!("{:?} {:?}", f.entity, &text[f.start..f.end]));
            }
        }
        println!(
            "blind false positives: {} in {sentences} clean sentences",
            false_positives.len()
        );
        for fp in &false_positives {
            println!("blind false positive {fp}");
        }
        assert!(recall >= 0.90, "recall {recall:.3} fell below 0.90");
        assert!(
            false_positives.len() <= 10,
            "{} false positives",
            false_positives.len()
        );
    }
}
