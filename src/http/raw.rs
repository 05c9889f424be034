//! A JSON object whose fields' values stay the text the client sent.
//!
//! A pipeline's result can be hundreds of megabytes of words. Parsed into a
//! `serde_json::Value` tree, every small value becomes a heap node: a 20 MB `words` list
//! took 1.9 GB. Here the object is checked as JSON once, each top-level value is kept as
//! its raw text, and only the few fields a handler reads are parsed, into their own
//! types. A field named twice is refused rather than silently keeping the last.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, DeserializeOwned, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::value::RawValue;

/// The top-level fields of a JSON object, each value as raw JSON text.
#[derive(Debug, Default)]
pub struct RawObject(BTreeMap<String, Box<RawValue>>);

impl RawObject {
    pub fn get(&self, field: &str) -> Option<&RawValue> {
        self.0.get(field).map(AsRef::as_ref)
    }

    pub fn contains_key(&self, field: &str) -> bool {
        self.0.contains_key(field)
    }

    pub fn remove(&mut self, field: &str) -> Option<Box<RawValue>> {
        self.0.remove(field)
    }

    pub fn insert(&mut self, field: impl Into<String>, value: Box<RawValue>) {
        self.0.insert(field.into(), value);
    }

    pub fn keys(&self) -> impl Iterator<Item = &str> {
        self.0.keys().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The object as compact JSON text; each value exactly as it came.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("raw values serialize")
    }
}

impl IntoIterator for RawObject {
    type Item = (String, Box<RawValue>);
    type IntoIter = std::collections::btree_map::IntoIter<String, Box<RawValue>>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl Serialize for RawObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (field, value) in &self.0 {
            map.serialize_entry(field, value)?;
        }
        map.end()
    }
}

/// Most top-level fields a body may name: a result has a few dozen, and each field costs
/// a map entry, so millions of them would cost gigabytes.
pub const MAX_FIELDS: usize = 1000;

/// Most keys one object inside a value may name: the check for a key named twice holds
/// an object's keys while it reads them (22 M keys in one object took 1.9 GB).
pub const MAX_KEYS: usize = 100_000;

impl<'de> Deserialize<'de> for RawObject {
    /// A request body, checked: see [`Fields`].
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Fields { checked: true })
    }
}

impl RawObject {
    /// Content Lethe stored, which passed the checks when it came in (or an earlier
    /// version's, which had parsed it whole): read without them, so nothing stored is
    /// dropped by a check made later.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        let mut stored = serde_json::Deserializer::from_slice(bytes);
        let object = de::Deserializer::deserialize_any(&mut stored, Fields { checked: false })?;
        stored.end()?;
        Ok(object)
    }
}

/// Reads an object's fields. A request body (`checked`) may not name a field twice, name
/// more than [`MAX_FIELDS`], nest a value deeper than [`MAX_NESTING`], or hold a value
/// `serde_json::Value` would refuse (see [`Valid`]).
struct Fields {
    checked: bool,
}

impl<'de> Visitor<'de> for Fields {
    type Value = RawObject;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    /// Without this, the error would quote the string: a body's content in its answer.
    fn visit_str<E: de::Error>(self, _: &str) -> Result<RawObject, E> {
        Err(E::custom("expected a JSON object, not a string"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<RawObject, A::Error> {
        let mut fields = BTreeMap::new();
        while let Some(field) = access.next_key::<String>()? {
            let value: Box<RawValue> = access.next_value()?;
            if self.checked {
                check(&fields, &field, &value).map_err(de::Error::custom)?;
            }
            fields.insert(field, value);
        }
        Ok(RawObject(fields))
    }
}

fn check(
    fields: &BTreeMap<String, Box<RawValue>>,
    field: &str,
    value: &RawValue,
) -> Result<(), String> {
    if fields.contains_key(field) {
        return Err(format!("the field {field:?} is given twice"));
    }
    if fields.len() >= MAX_FIELDS {
        return Err(format!("a body names at most {MAX_FIELDS} fields"));
    }
    if nesting(value) > MAX_NESTING {
        return Err(format!(
            "the field {field:?} is nested more than {MAX_NESTING} deep"
        ));
    }
    // Kept as text, a value is still checked as a tree would be, without building one.
    serde_json::from_str::<Valid>(value.get())
        .map(|_| ())
        .map_err(|error| format!("the field {field:?} is not valid JSON: {error}"))
}

/// A JSON value read as `serde_json::Value` would read it, refusing what it refuses (a
/// number out of range, a lone surrogate escape), and an object naming a key twice
/// (which a tree would silently take as its last value), keeping nothing.
struct Valid;

impl<'de> Deserialize<'de> for Valid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(Valid)
    }
}

impl<'de> Visitor<'de> for Valid {
    type Value = Valid;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_str<E>(self, _: &str) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_unit<E>(self) -> Result<Valid, E> {
        Ok(Valid)
    }

    fn visit_seq<A: de::SeqAccess<'de>>(self, mut items: A) -> Result<Valid, A::Error> {
        while items.next_element::<Valid>()?.is_some() {}
        Ok(Valid)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Valid, A::Error> {
        let mut keys = std::collections::HashSet::new();
        while let Some(key) = entries.next_key::<String>()? {
            if keys.contains(&key) {
                return Err(de::Error::custom(format_args!(
                    "an object in it names {key:?} twice"
                )));
            }
            if keys.len() >= MAX_KEYS {
                return Err(de::Error::custom(format_args!(
                    "an object in it names more than {MAX_KEYS} keys"
                )));
            }
            entries.next_value::<Valid>()?;
            keys.insert(key);
        }
        Ok(Valid)
    }
}

/// How deep a field's value may nest lists and objects. Kept values are parsed again
/// later (the training export's redaction reads a result as a tree), and serde_json
/// refuses more than 128 levels: a value it could not read back is not stored.
pub const MAX_NESTING: usize = 100;

/// How deeply `value` nests lists and objects (a scalar: 0), read byte by byte.
fn nesting(value: &RawValue) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for byte in value.get().bytes() {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// `null`.
pub fn null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}

/// `value` as raw JSON text.
pub fn raw<T: Serialize + ?Sized>(value: &T) -> Box<RawValue> {
    serde_json::value::to_raw_value(value).expect("plain values serialize")
}

pub fn is_null(value: &RawValue) -> bool {
    value.get() == "null"
}

/// `value` read as a `T`; `None` when it is JSON of another type. A value of the wrong
/// shape is refused at its first token, so a large one costs nothing to refuse.
pub fn parse<T: DeserializeOwned>(value: &RawValue) -> Option<T> {
    serde_json::from_str(value.get()).ok()
}

/// Whether `value` is a JSON array (`[…]`), without reading it.
pub fn is_array(value: &RawValue) -> bool {
    value.get().starts_with('[')
}

/// Whether `value` is a JSON string, without reading it.
pub fn is_string(value: &RawValue) -> bool {
    value.get().starts_with('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field<'a>(object: &'a RawObject, name: &str) -> &'a RawValue {
        object.get(name).expect("present")
    }

    #[test]
    fn a_field_given_twice_is_refused_and_named() {
        let err =
            serde_json::from_str::<RawObject>(r#"{"a": 1, "b": 2, "a": 3}"#).expect_err("refused");
        assert!(
            err.to_string().contains(r#"the field "a" is given twice"#),
            "{err}"
        );
    }

    #[test]
    fn values_keep_their_text_and_types_are_read_only_where_asked() {
        let body = r#"{"words": [ {"text": "hi", "start": 0} ], "n": 12, "s": "x\"y", "z": null}"#;
        let mut object: RawObject = serde_json::from_str(body).expect("parses");
        assert_eq!(
            field(&object, "words").get(),
            r#"[ {"text": "hi", "start": 0} ]"#
        );
        assert!(is_array(field(&object, "words")));
        assert!(is_string(field(&object, "s")));
        assert_eq!(
            parse::<String>(field(&object, "s")).as_deref(),
            Some("x\"y")
        );
        assert_eq!(parse::<i64>(field(&object, "n")), Some(12));
        assert_eq!(parse::<String>(field(&object, "n")), None);
        assert!(is_null(field(&object, "z")));
        object.remove("n");
        let json: serde_json::Value = serde_json::from_str(&object.to_json()).expect("parses");
        assert_eq!(
            json,
            serde_json::json!({"words": [{"text": "hi", "start": 0}], "s": "x\"y", "z": null})
        );
    }

    #[test]
    fn a_value_nested_deeper_than_can_be_read_back_is_refused() {
        let nested = |n: usize| format!("{}{}", "[".repeat(n), "]".repeat(n));
        let body = format!(r#"{{"words": {}, "s": "[[[[\"[["}}"#, nested(MAX_NESTING));
        let object: RawObject = serde_json::from_str(&body).expect("at the bound");
        assert_eq!(nesting(field(&object, "words")), MAX_NESTING);
        assert_eq!(nesting(field(&object, "s")), 0, "brackets in a string");
        let body = format!(r#"{{"words": {}}}"#, nested(MAX_NESTING + 1));
        let err = serde_json::from_str::<RawObject>(&body).expect_err("refused");
        assert!(
            err.to_string().contains("nested more than 100 deep"),
            "{err}"
        );
        // What is stored can be read back as a tree.
        let deepest = format!(r#"{{"words": {}}}"#, nested(MAX_NESTING));
        serde_json::from_str::<serde_json::Value>(&deepest).expect("parses");
    }

    #[test]
    fn a_value_a_tree_could_not_hold_is_refused_so_what_is_stored_reads_back() {
        for (value, why) in [
            ("1e400", "out of range"),
            (r#"[{"start": -1e999}]"#, "out of range"),
            (r#""\ud800""#, "hex escape"),
            (r#"{"\udc00": 1}"#, "lone"),
        ] {
            let body = format!(r#"{{"words": {value}}}"#);
            let err = serde_json::from_str::<RawObject>(&body).expect_err(value);
            let message = err.to_string();
            assert!(
                message.contains(r#"the field "words" is not valid JSON"#),
                "{message}"
            );
            assert!(message.contains(why), "{value}: {message}");
            serde_json::from_str::<serde_json::Value>(&body).expect_err("a tree refuses it too");
        }
        let fine = r#"{"words": [1e300, -0, "\ud83d\ude00", {"k": [true, null]}]}"#;
        let object: RawObject = serde_json::from_str(fine).expect("parses");
        serde_json::from_str::<serde_json::Value>(&object.to_json()).expect("reads back");
    }

    #[test]
    fn a_body_of_too_many_fields_or_a_nested_key_given_twice_is_refused() {
        let fields = |n: usize| {
            let each: Vec<String> = (0..n).map(|i| format!(r#""f{i}": 0"#)).collect();
            format!("{{{}}}", each.join(","))
        };
        serde_json::from_str::<RawObject>(&fields(MAX_FIELDS)).expect("at the bound");
        let err = serde_json::from_str::<RawObject>(&fields(MAX_FIELDS + 1)).expect_err("over");
        assert!(err.to_string().contains("at most 1000 fields"), "{err}");
        let keys: Vec<String> = (0..=MAX_KEYS).map(|i| format!(r#""k{i}": 0"#)).collect();
        let body = format!(r#"{{"words": [{{{}}}]}}"#, keys.join(","));
        let err = serde_json::from_str::<RawObject>(&body).expect_err("too many keys");
        assert!(err.to_string().contains("more than 100000 keys"), "{err}");
        let body = format!(r#"{{"words": [{{{}}}]}}"#, keys[..MAX_KEYS].join(","));
        serde_json::from_str::<RawObject>(&body).expect("at the bound");
        let body = r#"{"words": [{"text": "a", "start": 0}, {"text": "b", "text": "c"}]}"#;
        let err = serde_json::from_str::<RawObject>(body).expect_err("nested twice");
        assert!(
            err.to_string()
                .contains(r#"an object in it names "text" twice"#),
            "{err}"
        );
    }

    #[test]
    fn a_string_body_is_refused_without_being_quoted_back() {
        let err = serde_json::from_str::<RawObject>(r#""my SSN is 123-45-6789""#)
            .expect_err("not an object");
        assert!(!err.to_string().contains("123-45-6789"), "{err}");
        assert!(err.to_string().contains("expected a JSON object"), "{err}");
    }

    #[test]
    fn stored_content_is_read_without_the_checks_a_request_body_gets() {
        let deep = format!(r#"{{"su": {}{}}}"#, "[".repeat(120), "]".repeat(120));
        serde_json::from_str::<RawObject>(&deep).expect_err("a request may not");
        let stored = RawObject::from_slice(deep.as_bytes()).expect("stored content reads");
        assert!(stored.contains_key("su"));
        RawObject::from_slice(br#"{"a": 1} x"#).expect_err("trailing bytes");
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        for body in ["[]", "1", "\"a\"", "null", "{\"a\": }", "{\"a\": 1} x"] {
            assert!(serde_json::from_str::<RawObject>(body).is_err(), "{body}");
        }
    }
}
