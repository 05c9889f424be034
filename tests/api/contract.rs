//! Lethe's OpenAPI document against the facts of AssemblyAI's published contract for the
//! endpoints Lethe serves (`/v2/upload`, `/v2/transcript` list/create/get/delete), so a
//! divergence is a test failure. The facts are transcribed from AssemblyAI's
//! `openapi.yml` (github.com/AssemblyAI/assemblyai-api-spec at 3fcf678, 2026-03-23,
//! API version 1.3.4).

use serde_json::Value;

fn document() -> Value {
    serde_json::from_str(&lethe::http::openapi_json()).expect("the document is JSON")
}

/// Follows a `$ref` (or an `allOf`/`oneOf` of one ref and null) into components.
fn resolve<'a>(doc: &'a Value, schema: &'a Value) -> &'a Value {
    let reference = schema["$ref"].as_str().or_else(|| {
        ["allOf", "oneOf", "anyOf"].iter().find_map(|k| {
            schema[*k]
                .as_array()?
                .iter()
                .find_map(|s| s["$ref"].as_str())
        })
    });
    match reference {
        Some(r) => {
            let name = r.trim_start_matches("#/components/schemas/");
            resolve(doc, &doc["components"]["schemas"][name])
        }
        None => schema,
    }
}

fn operation<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method];
    assert!(
        op.is_object(),
        "Lethe does not serve {} {path}",
        method.to_uppercase()
    );
    op
}

fn parameter<'a>(op: &'a Value, name: &str) -> &'a Value {
    op["parameters"]
        .as_array()
        .and_then(|ps| ps.iter().find(|p| p["name"] == name))
        .unwrap_or_else(|| panic!("no parameter {name} in {op}"))
}

fn response_schema<'a>(doc: &'a Value, op: &'a Value, status: &str) -> &'a Value {
    resolve(
        doc,
        &op["responses"][status]["content"]["application/json"]["schema"],
    )
}

fn required(schema: &Value) -> Vec<&str> {
    schema["required"]
        .as_array()
        .map(|r| r.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default()
}

const STATUSES: [&str; 4] = ["queued", "processing", "completed", "error"];

#[test]
fn every_operation_lethe_serves_declares_assemblyais_error_statuses() {
    let doc = document();
    let common = ["400", "401", "404", "429", "500", "503", "504"];
    for (method, path, extra) in [
        ("post", "/v2/upload", Some("403")),
        ("post", "/v2/transcript", None),
        ("get", "/v2/transcript", None),
        ("get", "/v2/transcript/{transcript_id}", None),
        ("delete", "/v2/transcript/{transcript_id}", None),
    ] {
        let op = operation(&doc, method, path);
        for status in common.iter().copied().chain(extra) {
            let schema = response_schema(&doc, op, status);
            assert_eq!(
                required(schema),
                ["error"],
                "{method} {path} {status}: an error body {{\"error\": ...}}"
            );
        }
    }
}

#[test]
fn the_transcript_path_parameter_is_named_transcript_id_as_assemblyais() {
    let doc = document();
    for method in ["get", "delete"] {
        let op = operation(&doc, method, "/v2/transcript/{transcript_id}");
        let p = parameter(op, "transcript_id");
        assert_eq!(p["in"], "path");
        assert_eq!(p["required"], true);
        assert_eq!(p["schema"]["type"], "string");
    }
}

#[test]
fn the_list_query_has_assemblyais_names_limits_defaults_enums_and_formats() {
    let doc = document();
    let op = operation(&doc, "get", "/v2/transcript");
    let limit = resolve(&doc, &parameter(op, "limit")["schema"]);
    assert_eq!(limit["type"], "integer");
    assert_eq!(limit["minimum"], 1);
    assert_eq!(limit["maximum"], 200);
    assert_eq!(limit["default"], 10);
    let status = resolve(&doc, &parameter(op, "status")["schema"]);
    assert_eq!(status["enum"], serde_json::json!(STATUSES));
    let created_on = resolve(&doc, &parameter(op, "created_on")["schema"]);
    assert_eq!(
        (created_on["type"].as_str(), created_on["format"].as_str()),
        (Some("string"), Some("date"))
    );
    for id in ["before_id", "after_id"] {
        let schema = resolve(&doc, &parameter(op, id)["schema"]);
        assert_eq!(
            (schema["type"].as_str(), schema["format"].as_str()),
            (Some("string"), Some("uuid")),
            "{id}"
        );
    }
    let throttled = resolve(&doc, &parameter(op, "throttled_only")["schema"]);
    assert_eq!(throttled["type"], "boolean");
    assert_eq!(throttled["default"], false);
    for p in op["parameters"].as_array().expect("parameters") {
        assert_ne!(
            p["required"], true,
            "{} is optional in AssemblyAI's contract",
            p["name"]
        );
    }
}

#[test]
fn the_list_page_and_its_items_require_what_assemblyai_requires() {
    let doc = document();
    let list = response_schema(&doc, operation(&doc, "get", "/v2/transcript"), "200");
    assert_eq!(required(list), ["page_details", "transcripts"]);
    let page = resolve(&doc, &list["properties"]["page_details"]);
    for field in [
        "limit",
        "result_count",
        "current_url",
        "prev_url",
        "next_url",
    ] {
        assert!(
            required(page).contains(&field),
            "page_details.{field} is required"
        );
    }
    let item = resolve(&doc, &list["properties"]["transcripts"]["items"]);
    for field in [
        "id",
        "resource_url",
        "status",
        "created",
        "completed",
        "audio_url",
        "error",
    ] {
        assert!(
            required(item).contains(&field),
            "transcripts[].{field} is required"
        );
    }
    assert_eq!(
        resolve(&doc, &item["properties"]["status"])["enum"],
        serde_json::json!(STATUSES)
    );
    assert_eq!(item["properties"]["id"]["format"], "uuid");
}

#[test]
fn the_transcript_object_requires_what_assemblyai_requires() {
    let doc = document();
    for (method, path) in [
        ("post", "/v2/transcript"),
        ("get", "/v2/transcript/{transcript_id}"),
        ("delete", "/v2/transcript/{transcript_id}"),
    ] {
        let transcript = response_schema(&doc, operation(&doc, method, path), "200");
        for field in [
            "id",
            "speech_model",
            "language_model",
            "acoustic_model",
            "status",
            "audio_url",
            "webhook_auth",
            "auto_highlights",
            "redact_pii",
            "summarization",
            "language_confidence_threshold",
            "language_confidence",
        ] {
            assert!(
                required(transcript).contains(&field),
                "{method} {path}: {field} is required"
            );
        }
        assert_eq!(transcript["properties"]["id"]["format"], "uuid");
        assert_eq!(
            resolve(&doc, &transcript["properties"]["status"])["enum"],
            serde_json::json!(STATUSES)
        );
    }
    let upload = response_schema(&doc, operation(&doc, "post", "/v2/upload"), "200");
    assert_eq!(required(upload), ["upload_url"]);
}
