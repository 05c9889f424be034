//! The model-training export (retention.md §6): eligible, live artifacts, with their
//! personally identifiable information redacted and never a secret.
//!
//! - Secrets are never training data: a transcript's audio URL is not exported at all (it
//!   may carry credentials or a signature), and the webhook URL and auth header are
//!   removed from text inputs, and from results and streaming transcripts, which may carry
//!   them too (AssemblyAI's transcript object does).
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
                if let Some((_, found)) = crate::engine::training::redact_result(content.expose()) {
                    ranges.extend(found);
                }
            }
        }
        Ok(Some(crate::engine::training::merge_ranges(ranges)))
    }
}

use serde::de::DeserializeSeed;
use serde_json::value::RawValue;
use std::collections::BTreeMap;

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

/// Time ranges of audio to mute, in milliseconds from its start.
pub type MuteRanges = Vec<(i64, i64)>;

/// A transcript result (JSON text) with its PII redacted, and the mute ranges
/// (milliseconds) of its redacted words, read without building a tree (a long result's
/// tree costs about 150 times its size):
/// - `text`, and each utterance's `text`, through [`pii::redact_text`];
/// - each `words` list (top level and per utterance): the words are joined with single
///   spaces, and every word overlapping a finding gets its tag as `text`, timings kept;
///   the words of one finding make one range;
/// - every string inside every other top-level field through [`pii::redact_text`].
///
/// `None` when `result` is not a JSON object.
pub fn redact_result(result: &[u8]) -> Option<(Vec<u8>, MuteRanges)> {
    let mut fields: BTreeMap<String, &RawValue> = serde_json::from_slice(result).ok()?;
    for secret in SECRET_INPUTS {
        fields.remove(*secret);
    }
    let mut out = Vec::with_capacity(result.len());
    let mut ranges = Vec::new();
    write_object(&mut out, &fields, |out, field, value| match field {
        "words" if value.get().starts_with('[') => redact_words(value.get(), out, &mut ranges),
        "utterances" if value.get().starts_with('[') => {
            let utterances: Vec<&RawValue> = serde_json::from_str(value.get())?;
            write_list(out, &utterances, |out, utterance| {
                redact_utterance(utterance, out, &mut ranges)
            })
        }
        _ => redact_strings(value.get(), out),
    })
    .ok()?;
    Some((out, merge_ranges(ranges)))
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("writing to memory");
}

/// `{"field":value,…}`, each value written by `write`.
fn write_object<E>(
    out: &mut Vec<u8>,
    fields: &BTreeMap<String, &RawValue>,
    mut write: impl FnMut(&mut Vec<u8>, &str, &RawValue) -> Result<(), E>,
) -> Result<(), E> {
    out.push(b'{');
    for (i, (field, value)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_json(out, field);
        out.push(b':');
        write(out, field, value)?;
    }
    out.push(b'}');
    Ok(())
}

/// `[a,b,…]`, each item written by `write`.
fn write_list<T>(
    out: &mut Vec<u8>,
    items: &[T],
    mut write: impl FnMut(&mut Vec<u8>, &T) -> serde_json::Result<()>,
) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write(out, item)?;
    }
    out.push(b']');
    Ok(())
}

/// One utterance: its `text` redacted, its `words` as in [`redact_result`], the rest kept.
fn redact_utterance(
    utterance: &RawValue,
    out: &mut Vec<u8>,
    ranges: &mut Vec<(i64, i64)>,
) -> serde_json::Result<()> {
    let Ok(fields) = serde_json::from_str::<BTreeMap<String, &RawValue>>(utterance.get()) else {
        out.extend_from_slice(utterance.get().as_bytes());
        return Ok(());
    };
    write_object(out, &fields, |out, field, value| match field {
        "text" => redact_strings(value.get(), out),
        "words" if value.get().starts_with('[') => redact_words(value.get(), out, ranges),
        _ => {
            out.extend_from_slice(value.get().as_bytes());
            Ok(())
        }
    })
}

/// What a word's redaction reads of it.
#[derive(serde::Deserialize)]
struct Word<'a> {
    #[serde(borrow, default)]
    text: Option<&'a RawValue>,
    #[serde(borrow, default)]
    start: Option<&'a RawValue>,
    #[serde(borrow, default)]
    end: Option<&'a RawValue>,
}

/// A word, if it is a JSON object (a list or a number in a `words` list is no word: it
/// joins the text as nothing and is never tagged, as the tree redaction had it).
fn word(raw: &RawValue) -> Option<Word<'_>> {
    raw.get()
        .starts_with('{')
        .then(|| serde_json::from_str(raw.get()).ok())
        .flatten()
}

fn millis(value: Option<&RawValue>) -> Option<i64> {
    // Rounded, saturating conversion: timings are small non-negative numbers.
    let n: serde_json::Number = serde_json::from_str(value?.get()).ok()?;
    n.as_i64().or_else(|| n.as_f64().map(|f| f.round() as i64))
}

/// A `words` list: the text of each word is joined with single spaces, PII found in the
/// joined text, and every word overlapping a finding written with the finding's tag as
/// its `text`; the others are written as they are. Pushes, per finding, the time range
/// from its first redacted word's start to its last one's end. Holds two slices' worth
/// per word (its text and its span in the joined text), not the word.
fn redact_words(
    list: &str,
    out: &mut Vec<u8>,
    ranges: &mut Vec<(i64, i64)>,
) -> serde_json::Result<()> {
    let words: Vec<&RawValue> = serde_json::from_str(list)?;
    let mut joined = String::new();
    let mut spans = Vec::with_capacity(words.len());
    for (i, raw) in words.iter().enumerate() {
        if i > 0 {
            joined.push(' ');
        }
        let start = joined.len();
        let text = word(raw)
            .and_then(|w| w.text)
            .and_then(|t| serde_json::from_str::<std::borrow::Cow<str>>(t.get()).ok());
        joined.push_str(text.as_deref().unwrap_or_default());
        spans.push((start, joined.len()));
    }
    let mut tags: BTreeMap<usize, &'static str> = BTreeMap::new();
    for finding in pii::find(&joined) {
        let first = spans.partition_point(|&(_, e)| e <= finding.start);
        let mut range: Option<(i64, i64)> = None;
        for (idx, &(s, e)) in spans.iter().enumerate().skip(first) {
            if s >= finding.end {
                break;
            }
            let Some(found) = word(words[idx]).filter(|_| e > finding.start) else {
                continue;
            };
            tags.insert(idx, finding.entity.tag());
            if let (Some(ws), Some(we)) = (millis(found.start), millis(found.end)) {
                range = Some(match range {
                    Some((a, b)) => (a.min(ws), b.max(we)),
                    None => (ws, we),
                });
            }
        }
        ranges.extend(range);
    }
    out.push(b'[');
    for (idx, raw) in words.iter().enumerate() {
        if idx > 0 {
            out.push(b',');
        }
        match tags.get(&idx) {
            Some(tag) => {
                // Only a redacted word (an object) is read whole, to write it with its tag.
                let mut fields: BTreeMap<String, &RawValue> = serde_json::from_str(raw.get())?;
                let tag = serde_json::value::to_raw_value(tag)?;
                fields.insert("text".to_owned(), &tag);
                write_json(out, &fields);
            }
            // A word that is not an object has no text to tag; its strings are redacted
            // one by one (the tree redaction sent `["555-123-4567", 300, 900]` as it was).
            None if !raw.get().starts_with('{') => redact_strings(raw.get(), out)?,
            None => out.extend_from_slice(raw.get().as_bytes()),
        }
    }
    out.push(b']');
    Ok(())
}

/// Writes the JSON value `json` to `out` with every string in it (object values and array
/// items, at any depth; keys kept) passed through [`pii::redact_text`], one value at a
/// time: nothing of it is held as a tree.
pub fn redact_strings(json: &str, out: &mut Vec<u8>) -> serde_json::Result<()> {
    let mut reader = serde_json::Deserializer::from_str(json);
    RedactInto(out).deserialize(&mut reader)?;
    reader.end()
}

struct RedactInto<'o>(&'o mut Vec<u8>);

impl<'de> serde::de::DeserializeSeed<'de> for RedactInto<'_> {
    type Value = ();

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> serde::de::Visitor<'de> for RedactInto<'_> {
    type Value = ();

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }

    fn visit_i64<E>(self, v: i64) -> Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }

    fn visit_u64<E>(self, v: u64) -> Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }

    fn visit_f64<E>(self, v: f64) -> Result<(), E> {
        write_json(self.0, &v);
        Ok(())
    }

    fn visit_str<E>(self, v: &str) -> Result<(), E> {
        write_json(self.0, &pii::redact_text(v));
        Ok(())
    }

    fn visit_unit<E>(self) -> Result<(), E> {
        self.0.extend_from_slice(b"null");
        Ok(())
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(self, mut items: A) -> Result<(), A::Error> {
        let out = self.0;
        out.push(b'[');
        let mut first = true;
        loop {
            let mark = out.len();
            if !first {
                out.push(b',');
            }
            if items.next_element_seed(RedactInto(out))?.is_none() {
                out.truncate(mark);
                break;
            }
            first = false;
        }
        out.push(b']');
        Ok(())
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut entries: A) -> Result<(), A::Error> {
        let out = self.0;
        out.push(b'{');
        let mut first = true;
        while let Some(key) = entries.next_key::<std::borrow::Cow<str>>()? {
            if !first {
                out.push(b',');
            }
            write_json(out, &key);
            out.push(b':');
            entries.next_value_seed(RedactInto(out))?;
            first = false;
        }
        out.push(b'}');
        Ok(())
    }
}

/// The exported form of an artifact's content: redacted JSON or text, with its content
/// type. `None` for audio, which is exported as it is (see [`is_audio`]); never `None`
/// for anything else: content that is JSON but cannot be redacted as its kind is withheld
/// (an empty body), never exported as it is.
pub fn redact(kind: ArtifactKind, content: &[u8]) -> Option<(Vec<u8>, &'static str)> {
    if kind == ArtifactKind::UrlAudioReference {
        return Some((Vec::new(), "text/plain"));
    }
    if let Some(bytes) = redact_json(kind, content) {
        return Some((bytes, "application/json"));
    }
    if is_audio(kind) {
        return None;
    }
    if serde_json::from_slice::<serde::de::IgnoredAny>(content).is_ok() {
        tracing::warn!(%kind, "training export: JSON content not redactable as its kind; withheld");
        return Some((Vec::new(), "application/json"));
    }
    let text = String::from_utf8_lossy(content);
    Some((pii::redact_text(&text).into_bytes(), "text/plain"))
}

/// JSON content redacted as its kind; `None` when it is not JSON, or not redactable.
fn redact_json(kind: ArtifactKind, content: &[u8]) -> Option<Vec<u8>> {
    let fields = serde_json::from_slice::<BTreeMap<String, &RawValue>>(content).ok();
    match (kind, fields) {
        (ArtifactKind::FinalTranscript, Some(_)) => redact_result(content).map(|(bytes, _)| bytes),
        (ArtifactKind::TextInput | ArtifactKind::StreamingSession, Some(mut fields)) => {
            if kind == ArtifactKind::TextInput {
                for secret in SECRET_INPUTS {
                    fields.remove(*secret);
                }
            }
            let mut out = Vec::with_capacity(content.len());
            write_object(&mut out, &fields, |out, field, value| {
                match (kind, field) {
                    (ArtifactKind::StreamingSession, "transcript") => {
                        // An object is a result; anything else has its strings redacted.
                        let redacted = match value.get().starts_with('{') {
                            true => redact_result(value.get().as_bytes()).map(|(r, _)| r),
                            false => redact_value(value.get()),
                        };
                        out.extend_from_slice(&redacted.ok_or(())?);
                    }
                    // The session's audio and metadata go as they are (its audio is muted
                    // by the ranges of its transcript).
                    (ArtifactKind::StreamingSession, _) => {
                        out.extend_from_slice(value.get().as_bytes());
                    }
                    _ => redact_strings(value.get(), out).map_err(drop)?,
                }
                Ok::<(), ()>(())
            })
            .ok()?;
            Some(out)
        }
        _ => std::str::from_utf8(content).ok().and_then(redact_value),
    }
}

/// Any JSON value, its strings redacted; `None` when `json` is not JSON.
fn redact_value(json: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(json.len());
    redact_strings(json, &mut out).ok()?;
    Some(out)
}

/// The mute ranges of a streaming session's audio: the words redacted in its transcript.
pub fn session_ranges(content: &[u8]) -> Vec<(i64, i64)> {
    serde_json::from_slice::<BTreeMap<String, &RawValue>>(content)
        .ok()
        .and_then(|session| {
            let transcript = session.get("transcript")?;
            redact_result(transcript.get().as_bytes()).map(|(_, ranges)| ranges)
        })
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
    use serde_json::{json, Value};

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
        // A result that carries the request's webhook settings (a pipeline forwarding
        // AssemblyAI's transcript object), alone or as a streaming session's transcript.
        let result = json!({
            "text": "a support call",
            "webhook_url": "https://hooks.example.com/x?token=SECRET-TOKEN",
            "webhook_auth_header_name": "X-SECRET-NAME",
            "webhook_auth_header_value": "SECRET-VALUE",
        });
        let session = json!({"transcript": result, "model": "universal-streaming"});
        for (kind, content) in [
            (ArtifactKind::FinalTranscript, &result),
            (ArtifactKind::StreamingSession, &session),
        ] {
            let (bytes, _) = redact(kind, content.to_string().as_bytes()).expect("text");
            let out = String::from_utf8(bytes).expect("utf8");
            assert!(!out.contains("SECRET"), "{kind}: {out}");
            assert!(out.contains("a support call"), "{kind}: {out}");
        }
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
        let (redacted, ranges) = redact_result(result.to_string().as_bytes()).expect("object");
        let redacted: serde_json::Value = serde_json::from_slice(&redacted).expect("json");
        assert_eq!(redacted["text"], "call me at [PHONE_NUMBER] please");
        assert_eq!(redacted["words"][3]["text"], "[PHONE_NUMBER]");
        assert_eq!(redacted["words"][3]["start"], 300);
        assert_eq!(redacted["summary"], "caller gave [PHONE_NUMBER]");
        assert_eq!(ranges, vec![(300, 900)]);
    }

    /// The export used to parse a result into a tree and redact that (about 150 times
    /// the result's size in memory); it now reads it as text. The tree's answer is the
    /// oracle: the same fields redacted, the same ranges.
    #[test]
    fn s6_the_redaction_read_as_text_matches_the_tree_redaction_it_replaced() {
        // The tree redaction, and one thing it missed: a word that is not an object
        // (`["555-123-4567", 300, 900]`) now has its strings redacted.
        let not_objects = |words: Option<&mut Value>| {
            for word in words.and_then(Value::as_array_mut).into_iter().flatten() {
                if !word.is_object() {
                    *word = pii::redact_json_strings(word);
                }
            }
        };
        let tree = |result: &Value| {
            let (mut redacted, ranges) = pii::redact_transcript(result);
            not_objects(redacted.get_mut("words"));
            if let Some(utterances) = redacted.get_mut("utterances").and_then(Value::as_array_mut) {
                for utterance in utterances {
                    not_objects(utterance.get_mut("words"));
                }
            }
            if let Value::Object(fields) = &mut redacted {
                for (field, value) in fields.iter_mut() {
                    if !matches!(field.as_str(), "text" | "words" | "utterances") {
                        *value = pii::redact_json_strings(value);
                    }
                }
            }
            (redacted, ranges)
        };
        let words = |texts: &[&str]| -> Value {
            texts
                .iter()
                .enumerate()
                .map(|(i, t)| json!({"text": t, "start": i * 100 + 10, "end": i as f64 * 100.0 + 90.6, "speaker": "A"}))
                .collect()
        };
        let cases = [
            json!({"text": "Email jane at gmail dot com or 555-123-4567",
                   "words": words(&["Email", "jane", "at", "gmail", "dot", "com", "or", "555-123-4567"]),
                   "confidence": 0.9}),
            json!({"text": "my card 4111 1111 1111 1111 ok",
                   "words": [{"text": "my"}, 7, {"text": 12, "start": 0}, {"text": "card", "start": "x"},
                             {"text": "4111", "start": 1, "end": 2}, {"text": "1111"}, {"text": "1111"},
                             {"text": "1111", "start": 9, "end": 10}, {"text": "ok"}],
                   "utterances": [
                       {"speaker": "A", "text": "call 555-123-4567", "confidence": 0.5,
                        "words": words(&["call", "555-123-4567"])},
                       {"speaker": "B", "text": "no PII here é ✓", "words": []},
                       "not an utterance"
                   ],
                   "summary": {"bullets": ["reach jo@example.com", {"deep": ["ssn 123-45-6789"]}], "n": 3},
                   "chapters": [{"headline": "Call 555-123-4567", "start": 0, "end": -1.5e3}],
                   "flag": true, "none": null}),
            // Review: a word written as a list made the whole result go out as it was.
            json!({"text": "Call me at 555-123-4567 or jo@example.com",
                   "words": [{"text": "Call", "start": 0, "end": 100}, ["555-123-4567", 300, 900],
                             {"text": "555-123", "start": 1, "end": 2}, ["-4567", 3, 4],
                             {"text": "jo@example.com", "start": 1000, "end": 2000}, 0, null],
                   "utterances": [{"text": "at 555-123-4567", "words": [["555-123-4567"], {"text": "jo@example.com", "start": 5, "end": 6}]}],
                   "summary": "ssn 123-45-6789"}),
            json!({"text": "", "words": [], "utterances": []}),
            json!({"words": "not a list", "iab": {"k": "v"}}),
        ];
        let listed = &cases[2];
        let (bytes, _) = redact_result(listed.to_string().as_bytes()).expect("object");
        let out = String::from_utf8(bytes).expect("utf8");
        assert!(
            !out.contains("555-123-4567") && !out.contains("jo@"),
            "{out}"
        );
        for case in cases {
            let (expected, expected_ranges) = tree(&case);
            let (bytes, ranges) = redact_result(case.to_string().as_bytes()).expect("object");
            let streamed: Value = serde_json::from_slice(&bytes).expect("json");
            assert_eq!(streamed, expected, "{case}");
            assert_eq!(ranges, expected_ranges, "{case}");
        }
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
