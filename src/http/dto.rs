//! Typed request bodies. A body is parsed into one of these structs (unknown fields
//! refused by name, server-owned fields refused by name, wrong types reported with the
//! field's path), then checked against its bounds, before anything is stored.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::error::ApiError;

/// Longest string option or text input (a prompt, a URL, a header value...).
pub const MAX_TEXT: usize = 64 * 1024;
/// Most items in a list option or text input.
pub const MAX_ITEMS: usize = 1000;
/// Longest item of a list (a key term, a language code...).
pub const MAX_ITEM: usize = 1024;

/// `boost_param` of AssemblyAI's (legacy) word boost.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, ToSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum BoostParam {
    Low,
    Default,
    High,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CustomSpelling {
    pub from: Vec<String>,
    pub to: String,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SpeakerOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_speakers_expected: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_speakers_expected: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub use_two_stage_clustering: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub short_file_diarization_method: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub long_file_diarization_method: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LanguageDetectionOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expected_languages: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_language: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_switching: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_switching_confidence_threshold: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_low_language_confidence: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub swiss_german: Option<bool>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct RedactPiiAudioOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub return_redacted_no_speech_audio: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub override_audio_redaction_method: Option<String>,
}

#[derive(Clone, Debug, Deserialize, Serialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct KeytermsPromptOptions {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub keyterms_match_strength: Option<String>,
}

/// `POST /v2/transcript`: AssemblyAI's request body. Options are stored with the
/// transcript and echoed; text inputs (`keyterms_prompt`, `prompt`, `custom_spelling`,
/// `word_boost`, `boost_param`, `topics`, the webhook fields, `speech_understanding`) are
/// content, kept as a `text_input` artifact. Any other field is refused.
#[derive(Clone, Debug, Default, Deserialize, ToSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TranscriptRequest {
    /// An `upload_url` of this account, or any http(s) URL.
    pub audio_url: String,
    // ---- options -------------------------------------------------------------------
    pub speech_model: Option<String>,
    pub speech_models: Option<Vec<String>>,
    pub language_code: Option<String>,
    pub language_codes: Option<Vec<String>>,
    pub language_detection: Option<bool>,
    pub language_detection_options: Option<LanguageDetectionOptions>,
    #[schema(minimum = 0, maximum = 1)]
    pub language_confidence_threshold: Option<f64>,
    pub punctuate: Option<bool>,
    pub format_text: Option<bool>,
    pub disfluencies: Option<bool>,
    pub dual_channel: Option<bool>,
    pub multichannel: Option<bool>,
    /// Milliseconds.
    pub audio_start_from: Option<u64>,
    /// Milliseconds.
    pub audio_end_at: Option<u64>,
    pub filter_profanity: Option<bool>,
    pub speaker_labels: Option<bool>,
    pub speakers_expected: Option<u32>,
    pub speaker_options: Option<SpeakerOptions>,
    pub redact_pii: Option<bool>,
    pub redact_pii_audio: Option<bool>,
    pub redact_pii_audio_quality: Option<String>,
    pub redact_pii_audio_options: Option<RedactPiiAudioOptions>,
    pub redact_pii_policies: Option<Vec<String>>,
    pub redact_pii_sub: Option<String>,
    pub redact_pii_return_unredacted: Option<bool>,
    pub content_safety: Option<bool>,
    #[schema(minimum = 25, maximum = 100)]
    pub content_safety_confidence: Option<u32>,
    pub iab_categories: Option<bool>,
    pub sentiment_analysis: Option<bool>,
    pub auto_chapters: Option<bool>,
    pub entity_detection: Option<bool>,
    pub summarization: Option<bool>,
    pub summary_model: Option<String>,
    pub summary_type: Option<String>,
    pub auto_highlights: Option<bool>,
    pub custom_topics: Option<bool>,
    #[schema(minimum = 0, maximum = 1)]
    pub speech_threshold: Option<f64>,
    #[schema(minimum = 0, maximum = 1)]
    pub temperature: Option<f64>,
    pub remove_audio_tags: Option<String>,
    pub keyterms_prompt_options: Option<KeytermsPromptOptions>,
    pub domain: Option<String>,
    // ---- text inputs (content) ---------------------------------------------------------
    pub keyterms_prompt: Option<Vec<String>>,
    pub prompt: Option<String>,
    pub custom_spelling: Option<Vec<CustomSpelling>>,
    pub word_boost: Option<Vec<String>>,
    pub boost_param: Option<BoostParam>,
    pub topics: Option<Vec<String>>,
    pub webhook_url: Option<String>,
    pub webhook_auth_header_name: Option<String>,
    /// Never echoed: the transcript shows `webhook_auth: true` instead.
    pub webhook_auth_header_value: Option<String>,
    /// A translation, speaker identification or custom formatting request.
    #[schema(value_type = Option<Object>)]
    pub speech_understanding: Option<Map<String, Value>>,
}

/// The request fields that are content (retention.md §2 `text_input`).
pub const TEXT_INPUT_FIELDS: &[&str] = &[
    "keyterms_prompt",
    "prompt",
    "custom_spelling",
    "word_boost",
    "boost_param",
    "topics",
    "webhook_url",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
    "speech_understanding",
];

/// Fields of a transcript that only the server sets: refused by name in a request.
pub const SERVER_OWNED_FIELDS: &[&str] = &[
    "id",
    "status",
    "text",
    "words",
    "utterances",
    "confidence",
    "audio_duration",
    "audio_channels",
    "error",
    "created",
    "completed",
    "resource_url",
    "webhook_auth",
    "webhook_status_code",
    "language_model",
    "acoustic_model",
    "language_confidence",
    "speech_model_used",
    "chapters",
    "entities",
    "summary",
    "auto_highlights_result",
    "content_safety_labels",
    "iab_categories_result",
    "sentiment_analysis_results",
    "translated_texts",
    "throttled",
    "speed_boost",
];

/// Every field `TranscriptRequest` accepts.
pub const TRANSCRIPT_REQUEST_FIELDS: &[&str] = &[
    "audio_url",
    "speech_model",
    "speech_models",
    "language_code",
    "language_codes",
    "language_detection",
    "language_detection_options",
    "language_confidence_threshold",
    "punctuate",
    "format_text",
    "disfluencies",
    "dual_channel",
    "multichannel",
    "audio_start_from",
    "audio_end_at",
    "filter_profanity",
    "speaker_labels",
    "speakers_expected",
    "speaker_options",
    "redact_pii",
    "redact_pii_audio",
    "redact_pii_audio_quality",
    "redact_pii_audio_options",
    "redact_pii_policies",
    "redact_pii_sub",
    "redact_pii_return_unredacted",
    "content_safety",
    "content_safety_confidence",
    "iab_categories",
    "sentiment_analysis",
    "auto_chapters",
    "entity_detection",
    "summarization",
    "summary_model",
    "summary_type",
    "auto_highlights",
    "custom_topics",
    "speech_threshold",
    "temperature",
    "remove_audio_tags",
    "keyterms_prompt_options",
    "domain",
    "keyterms_prompt",
    "prompt",
    "custom_spelling",
    "word_boost",
    "boost_param",
    "topics",
    "webhook_url",
    "webhook_auth_header_name",
    "webhook_auth_header_value",
    "speech_understanding",
];

/// A request body parsed and checked: the options to store and echo, and the text
/// inputs (content), each as a JSON object of the fields that were present and not null.
#[derive(Clone, Debug, PartialEq)]
pub struct ParsedTranscriptRequest {
    pub audio_url: String,
    pub options: Map<String, Value>,
    pub text_inputs: Map<String, Value>,
}

impl TranscriptRequest {
    /// Parses `body` (the bytes of a JSON object): server-owned and unknown fields are
    /// refused by name, wrong types with the field's path, values out of bounds with the
    /// bounds.
    pub fn parse(body: &[u8]) -> Result<ParsedTranscriptRequest, ApiError> {
        if body.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body is empty; send a JSON object with at least audio_url",
            ));
        }
        let value: Value = serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
        let Value::Object(object) = value else {
            return Err(ApiError::bad_request(
                "request body must be a JSON object with at least audio_url",
            ));
        };
        // A tree keeps the last of two values of one key; the raw reading refuses them,
        // at any depth (`webhook_url` twice must not be read as the second).
        serde_json::from_slice::<super::raw::RawObject>(body)
            .map_err(|e| ApiError::bad_request(format!("request body is not valid JSON: {e}")))?;
        let owned: Vec<&str> = object
            .keys()
            .filter(|k| SERVER_OWNED_FIELDS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !owned.is_empty() {
            return Err(ApiError::bad_request(format!(
                "{} {} set by the server and cannot be sent; remove {}",
                owned.join(", "),
                if owned.len() == 1 { "is" } else { "are" },
                if owned.len() == 1 { "it" } else { "them" },
            )));
        }
        let unknown: Vec<&str> = object
            .keys()
            .filter(|k| !TRANSCRIPT_REQUEST_FIELDS.contains(&k.as_str()))
            .map(String::as_str)
            .collect();
        if !unknown.is_empty() {
            return Err(ApiError::bad_request(format!(
                "unknown field{} {}; the fields a transcript request takes are listed in /openapi.json (TranscriptRequest)",
                if unknown.len() == 1 { "" } else { "s" },
                unknown.join(", ")
            )));
        }
        if !object.contains_key("audio_url") {
            return Err(ApiError::bad_request(
                "audio_url is required: the URL of the audio to transcribe",
            ));
        }
        let request: TranscriptRequest =
            serde_path_to_error::deserialize(Value::Object(object.clone())).map_err(|e| {
                let path = e.path().to_string();
                ApiError::bad_request(type_error(&path, &e.into_inner().to_string()))
            })?;
        request.check()?;
        let mut options = Map::new();
        let mut text_inputs = Map::new();
        for (field, value) in object {
            if field == "audio_url" || value.is_null() {
                continue;
            }
            if TEXT_INPUT_FIELDS.contains(&field.as_str()) {
                text_inputs.insert(field, value);
            } else {
                options.insert(field, value);
            }
        }
        Ok(ParsedTranscriptRequest {
            audio_url: request.audio_url,
            options,
            text_inputs,
        })
    }

    /// The bounds of every field.
    fn check(&self) -> Result<(), ApiError> {
        let bad = |message: String| Err(ApiError::bad_request(message));
        let texts: [(&str, &Option<String>); 12] = [
            ("speech_model", &self.speech_model),
            ("language_code", &self.language_code),
            ("redact_pii_audio_quality", &self.redact_pii_audio_quality),
            ("redact_pii_sub", &self.redact_pii_sub),
            ("summary_model", &self.summary_model),
            ("summary_type", &self.summary_type),
            ("remove_audio_tags", &self.remove_audio_tags),
            ("domain", &self.domain),
            ("prompt", &self.prompt),
            ("webhook_url", &self.webhook_url),
            ("webhook_auth_header_name", &self.webhook_auth_header_name),
            ("webhook_auth_header_value", &self.webhook_auth_header_value),
        ];
        if self.audio_url.len() > 8192 {
            return bad("audio_url must be at most 8192 characters".into());
        }
        for (field, value) in texts {
            if value.as_ref().is_some_and(|v| v.len() > MAX_TEXT) {
                return bad(format!("{field} must be at most {MAX_TEXT} bytes"));
            }
        }
        let lists: [(&str, &Option<Vec<String>>); 6] = [
            ("speech_models", &self.speech_models),
            ("language_codes", &self.language_codes),
            ("redact_pii_policies", &self.redact_pii_policies),
            ("keyterms_prompt", &self.keyterms_prompt),
            ("word_boost", &self.word_boost),
            ("topics", &self.topics),
        ];
        for (field, list) in lists {
            if let Some(list) = list {
                if list.len() > MAX_ITEMS || list.iter().any(|i| i.len() > MAX_ITEM) {
                    return bad(format!(
                        "{field} must be a list of at most {MAX_ITEMS} strings of at most {MAX_ITEM} bytes"
                    ));
                }
            }
        }
        if let Some(spellings) = &self.custom_spelling {
            let too_big = spellings.len() > MAX_ITEMS
                || spellings.iter().any(|s| {
                    s.to.len() > MAX_ITEM
                        || s.from.len() > 100
                        || s.from.iter().any(|f| f.len() > MAX_ITEM)
                });
            if too_big {
                return bad(format!(
                    "custom_spelling must be at most {MAX_ITEMS} entries of short strings"
                ));
            }
        }
        let unit: [(&str, Option<f64>); 3] = [
            (
                "language_confidence_threshold",
                self.language_confidence_threshold,
            ),
            ("speech_threshold", self.speech_threshold),
            ("temperature", self.temperature),
        ];
        for (field, value) in unit {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                return bad(format!("{field} must be a number from 0 to 1"));
            }
        }
        if self
            .content_safety_confidence
            .is_some_and(|c| !(25..=100).contains(&c))
        {
            return bad("content_safety_confidence must be an integer from 25 to 100".into());
        }
        if let (Some(start), Some(end)) = (self.audio_start_from, self.audio_end_at) {
            if end <= start {
                return bad("audio_end_at must be after audio_start_from".into());
            }
        }
        if let Some(url) = &self.webhook_url {
            let ok = url::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
            if !ok {
                return bad("webhook_url must be an absolute http(s) URL".into());
            }
        }
        if let Some(name) = &self.webhook_auth_header_name {
            let token = !name.is_empty()
                && name.len() <= 256
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !token {
                return bad("webhook_auth_header_name must be an HTTP header name".into());
            }
            // Headers that frame or route the request are Lethe's to set.
            const RESERVED: [&str; 9] = [
                "host",
                "content-length",
                "content-type",
                "transfer-encoding",
                "connection",
                "te",
                "upgrade",
                "trailer",
                "x-lethe-signature",
            ];
            if RESERVED.contains(&name.to_ascii_lowercase().as_str()) {
                return bad(format!(
                    "webhook_auth_header_name cannot be {name}: that header is set by the server"
                ));
            }
        }
        if let Some(su) = &self.speech_understanding {
            let size = serde_json::to_vec(su).map_or(usize::MAX, |v| v.len());
            if size > MAX_TEXT {
                return bad(format!(
                    "speech_understanding must be at most {MAX_TEXT} bytes"
                ));
            }
        }
        Ok(())
    }
}

/// serde's "invalid type: integer `1`, expected a string" as a sentence about the field.
pub fn type_error(path: &str, serde: &str) -> String {
    let expected = |what: &str| match what {
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "a list".to_owned(),
        "a map" | "struct" => "an object".to_owned(),
        "u32" | "u64" | "u8" => "a non-negative integer".to_owned(),
        "f64" => "a number".to_owned(),
        other if other.starts_with("struct ") => "an object".to_owned(),
        other => other.to_owned(),
    };
    let detail = serde.split(" at line ").next().unwrap_or(serde);
    if let Some((got, wanted)) = detail
        .strip_prefix("invalid type: ")
        .or_else(|| detail.strip_prefix("invalid value: "))
        .and_then(|d| d.split_once(", expected "))
    {
        return format!("{path} must be {}; got {got}", expected(wanted));
    }
    if let Some((got, wanted)) = detail
        .strip_prefix("unknown variant ")
        .and_then(|d| d.split_once(", expected "))
    {
        return format!("{path} must be {wanted}; got {got}");
    }
    format!("{path}: {detail}")
}

// ---- what response bodies share ---------------------------------------------------

/// Result fields nulled in a redacted transcript, beyond whatever the pipeline stored.
pub const RESULT_FIELDS: &[&str] = &["text", "words", "utterances", "confidence"];

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn message(body: &str) -> String {
        match TranscriptRequest::parse(body.as_bytes()) {
            Err(e) => e.to_string(),
            Ok(p) => panic!("accepted {body}: {p:?}"),
        }
    }

    #[test]
    fn every_known_field_is_a_field_of_the_struct_and_the_lists_agree() {
        for field in TEXT_INPUT_FIELDS {
            assert!(TRANSCRIPT_REQUEST_FIELDS.contains(field), "{field}");
        }
        for field in SERVER_OWNED_FIELDS {
            assert!(!TRANSCRIPT_REQUEST_FIELDS.contains(field), "{field}");
        }
        // A body with every field null parses: the list and the struct match.
        let body: Map<String, Value> = TRANSCRIPT_REQUEST_FIELDS
            .iter()
            .map(|f| ((*f).to_owned(), Value::Null))
            .chain([("audio_url".to_owned(), Value::from("https://x/a.wav"))])
            .collect();
        let parsed = TranscriptRequest::parse(Value::Object(body).to_string().as_bytes())
            .expect("every field is known");
        assert!(parsed.options.is_empty() && parsed.text_inputs.is_empty());
    }

    #[test]
    fn server_owned_fields_are_refused_by_name() {
        let text = message(
            r#"{"audio_url": "https://x/a.wav", "id": "x", "status": "completed", "text": "FAKE"}"#,
        );
        assert!(
            text.contains("id, status, text are set by the server"),
            "{text}"
        );
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        let text = message(r#"{"audio_url": "https://x/a.wav", "favourite_number": 7}"#);
        assert!(text.contains("unknown field favourite_number"), "{text}");
        let nested = message(
            r#"{"audio_url": "https://x/a.wav", "speaker_options": {"min_speakers_expected": 1, "sneaky": true}}"#,
        );
        assert!(nested.contains("speaker_options"), "{nested}");
    }

    #[test]
    fn a_wrong_type_names_the_field() {
        for field in ["prompt", "speech_model", "webhook_url", "language_code"] {
            let text = message(&format!(
                r#"{{"audio_url": "https://x/a.wav", "{field}": 1}}"#
            ));
            assert!(
                text.starts_with(&format!("{field} must be a string")),
                "{text}"
            );
        }
        let text = message(
            r#"{"audio_url": "https://x/a.wav", "custom_spelling": [{"from": "a", "to": "b"}]}"#,
        );
        assert!(text.contains("custom_spelling[0].from"), "{text}");
    }

    #[test]
    fn content_and_options_are_told_apart() {
        let parsed = TranscriptRequest::parse(
            br#"{"audio_url": "https://x/a.wav", "prompt": "p", "punctuate": true, "webhook_url": "https://h/w", "webhook_auth_header_value": "s", "speech_model": null}"#,
        )
        .expect("valid");
        assert_eq!(parsed.options.keys().collect::<Vec<_>>(), vec!["punctuate"]);
        let mut inputs: Vec<&String> = parsed.text_inputs.keys().collect();
        inputs.sort();
        assert_eq!(
            inputs,
            vec!["prompt", "webhook_auth_header_value", "webhook_url"]
        );
    }

    proptest! {
        /// Whatever JSON arrives, parsing answers (never panics), and what it accepts has
        /// only known, non-server fields, split into options and content.
        #[test]
        fn any_json_object_is_parsed_or_refused_with_a_message(
            fields in proptest::collection::btree_map(
                prop_oneof![
                    proptest::sample::select(TRANSCRIPT_REQUEST_FIELDS.to_vec()).prop_map(str::to_owned),
                    proptest::sample::select(SERVER_OWNED_FIELDS.to_vec()).prop_map(str::to_owned),
                    "[a-z_]{1,12}",
                ],
                prop_oneof![
                    Just(Value::Null),
                    any::<bool>().prop_map(Value::from),
                    any::<i64>().prop_map(Value::from),
                    any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
                    ".{0,20}".prop_map(Value::from),
                    proptest::collection::vec(".{0,8}".prop_map(Value::from), 0..4).prop_map(Value::Array),
                ],
                0..8,
            ),
            url in prop_oneof![Just("https://x/a.wav".to_owned()), ".{0,30}"],
        ) {
            let mut body: Map<String, Value> = fields.into_iter().collect();
            body.insert("audio_url".into(), Value::from(url));
            match TranscriptRequest::parse(Value::Object(body.clone()).to_string().as_bytes()) {
                Ok(parsed) => {
                    for key in parsed.options.keys().chain(parsed.text_inputs.keys()) {
                        prop_assert!(TRANSCRIPT_REQUEST_FIELDS.contains(&key.as_str()));
                        prop_assert!(!SERVER_OWNED_FIELDS.contains(&key.as_str()));
                    }
                    for key in parsed.text_inputs.keys() {
                        prop_assert!(TEXT_INPUT_FIELDS.contains(&key.as_str()));
                    }
                }
                Err(e) => prop_assert!(!e.to_string().is_empty()),
            }
        }

        /// Arbitrary bytes never panic the parser.
        #[test]
        fn arbitrary_bytes_are_refused_or_parsed(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = TranscriptRequest::parse(&bytes);
        }
    }
}
