//! Dry runs of a policy change (retention.md §1 through HTTP): `?dry_run=true` on
//! `PUT /v2/account/retention` and `PATCH /admin/v1/accounts/{id}` validates like the real
//! request, changes nothing and answers what the change would do to existing artifacts.

use chrono::{DateTime, Duration, Utc};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::collections::BTreeMap;

use crate::helpers::*;

const TRANSCRIPT_KINDS: [&str; 4] = [
    "url_audio_reference",
    "text_input",
    "intermediate",
    "final_transcript",
];

async fn put(app: &TestApp, key: &str, query: &str, body: &str) -> reqwest::Response {
    app.public(Method::PUT, &format!("/v2/account/retention{query}"), key)
        .header("content-type", "application/json")
        .body(body.to_owned())
        .send()
        .await
        .expect("request")
}

async fn patch(app: &TestApp, account_id: &str, query: &str, body: &str) -> reqwest::Response {
    app.admin(
        Method::PATCH,
        &format!("/admin/v1/accounts/{account_id}{query}"),
    )
    .header("content-type", "application/json")
    .body(body.to_owned())
    .send()
    .await
    .expect("request")
}

async fn settings(app: &TestApp, key: &str) -> Value {
    let response = app
        .public(Method::GET, "/v2/account/retention", key)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

async fn admin_account(app: &TestApp, account_id: &str) -> Value {
    let response = app
        .admin(Method::GET, &format!("/admin/v1/accounts/{account_id}"))
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await
}

async fn views(app: &TestApp, key: &str, ids: &[String]) -> Vec<Value> {
    let mut views = Vec::new();
    for id in ids {
        views.push(app.retention(key, id).await);
    }
    views
}

fn time(value: &Value) -> Option<DateTime<Utc>> {
    value.as_str().map(|s| {
        DateTime::parse_from_rfc3339(s)
            .expect("an RFC 3339 time")
            .with_timezone(&Utc)
    })
}

/// Per kind, how many artifacts got an earlier `delete_after` from `before` to `after`
/// (or one where they had none), and the earliest of the new ones.
fn shortened_between(
    before: &[Value],
    after: &[Value],
) -> BTreeMap<String, (u64, Option<DateTime<Utc>>)> {
    let mut shortened: BTreeMap<String, (u64, Option<DateTime<Utc>>)> = BTreeMap::new();
    for (before, after) in before.iter().zip(after) {
        let before = before["artifacts"].as_array().expect("artifacts");
        let after = after["artifacts"].as_array().expect("artifacts");
        assert_eq!(before.len(), after.len());
        for (b, a) in before.iter().zip(after) {
            assert_eq!(b["id"], a["id"]);
            let entry = shortened
                .entry(a["kind"].as_str().expect("kind").to_owned())
                .or_default();
            let (old, new) = (time(&b["delete_after"]), time(&a["delete_after"]));
            let earlier = match (old, new) {
                (None, Some(_)) => true,
                (Some(old), Some(new)) => new < old,
                _ => false,
            };
            if earlier {
                entry.0 += 1;
                entry.1 = Some(
                    entry
                        .1
                        .map_or(new.expect("new"), |t| t.min(new.expect("new"))),
                );
            }
        }
    }
    shortened
}

fn final_transcript_state(view: &Value) -> &Value {
    &artifact(view, "final_transcript")["state"]
}

#[tokio::test]
async fn s1_a_dry_run_of_a_shorter_ttl_reports_what_it_would_shorten_changes_nothing_and_the_real_change_then_does_it(
) {
    let app = spawn_app().await;
    let key = app.ttl_account(24 * 3600).await;
    app.upload(&key, b"MARKER-AUDIO").await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.completed_transcript(&key).await);
    }
    app.advance(Duration::hours(2));
    ids.push(app.completed_transcript(&key).await);
    let settings_before = settings(&app, &key).await;
    let views_before = views(&app, &key, &ids).await;

    // An hour's TTL: the three transcripts completed at t0 are past it, the fourth is not.
    let body = r#"{"transcript_ttl_seconds": 3600}"#;
    let dry = expect_json(put(&app, &key, "?dry_run=true", body).await, StatusCode::OK).await;
    assert_eq!(dry["dry_run"], true, "{dry}");
    assert_eq!(dry["mode"], "ttl", "{dry}");
    assert_eq!(dry["settings"]["transcript_ttl_seconds"], 3600, "{dry}");
    assert_eq!(dry["settings"]["mode"], "ttl", "{dry}");
    assert_eq!(
        dry["settings"]["policy_version"],
        settings_before["policy_version"].as_i64().expect("version") + 1,
        "{dry}"
    );
    let impact = &dry["impact"];
    let earliest = rfc3339(t0() + Duration::hours(1));
    assert_eq!(impact["artifacts_examined"], 1 + 4 * 4, "{impact}");
    for kind in TRANSCRIPT_KINDS {
        assert_eq!(
            impact["by_kind"][kind],
            json!({"shortened": 4, "due_immediately": 3, "earliest_new_delete_after": earliest}),
            "{kind}: {impact}"
        );
    }
    assert_eq!(
        impact["by_kind"]["uploaded_audio"],
        json!({"shortened": 0, "due_immediately": 0, "earliest_new_delete_after": null}),
        "the upload TTL did not change: {impact}"
    );
    assert_eq!(
        (
            &impact["shortened"],
            &impact["due_immediately"],
            &impact["earliest_new_delete_after"]
        ),
        (&json!(16), &json!(12), &json!(earliest)),
        "{impact}"
    );

    // Nothing changed: settings, every artifact's schedule, and a pass deletes nothing.
    assert_eq!(settings(&app, &key).await, settings_before);
    assert_eq!(views(&app, &key, &ids).await, views_before);
    let report = app.sweep().await;
    assert_eq!(
        (&report["deleted"], &report["rescheduled"]),
        (&json!(0), &json!(0)),
        "{report}"
    );
    assert_eq!(views(&app, &key, &ids).await, views_before);
    for id in &ids {
        assert_eq!(
            app.get_transcript(&key, id).await["text"],
            "MARKER-TEXT hello world"
        );
    }

    // The real change shortens exactly what the dry run said, and the next pass deletes
    // exactly the artifacts it said were due.
    let applied = expect_json(put(&app, &key, "", body).await, StatusCode::OK).await;
    assert_eq!(
        applied, dry["settings"],
        "the dry run showed these settings"
    );
    let views_after = views(&app, &key, &ids).await;
    let shortened = shortened_between(&views_before, &views_after);
    for kind in TRANSCRIPT_KINDS {
        assert_eq!(
            shortened[kind],
            (4, Some(t0() + Duration::hours(1))),
            "{kind}"
        );
    }
    let report = app.sweep().await;
    assert_eq!(report["deleted"], impact["due_immediately"], "{report}");
    let views_swept = views(&app, &key, &ids).await;
    for view in &views_swept[..3] {
        assert_eq!(final_transcript_state(view), "deleted", "{view}");
    }
    assert_eq!(final_transcript_state(&views_swept[3]), "live");
    app.advance(Duration::hours(1));
    assert_eq!(
        app.sweep().await["deleted"],
        4,
        "the fourth went an hour later"
    );
}

#[tokio::test]
async fn s1_an_admin_dry_run_of_executing_a_baa_reports_its_impact_and_changes_nothing() {
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "clinic-to-be"})).await;
    let ids = vec![
        app.completed_transcript(&key).await,
        app.completed_transcript(&key).await,
    ];
    // Past 72 hours: the intermediates' default window has ended; the rest is indefinite.
    app.advance(Duration::hours(80));
    assert_eq!(app.sweep().await["deleted"], 2, "the intermediates' window");
    let account_before = admin_account(&app, &account_id).await;
    let views_before = views(&app, &key, &ids).await;

    let dry = expect_json(
        patch(&app, &account_id, "?dry_run=true", r#"{"baa": true}"#).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        (&dry["dry_run"], &dry["mode"]),
        (&json!(true), &json!("baa")),
        "{dry}"
    );
    assert_eq!(dry["settings"]["baa"], true, "{dry}");
    assert_eq!(dry["settings"]["id"], account_id, "{dry}");
    let impact = &dry["impact"];
    let earliest = rfc3339(t0() + Duration::hours(72));
    assert_eq!(impact["artifacts_examined"], 2 * 3, "{impact}");
    for kind in ["url_audio_reference", "text_input", "final_transcript"] {
        assert_eq!(
            impact["by_kind"][kind],
            json!({"shortened": 2, "due_immediately": 2, "earliest_new_delete_after": earliest}),
            "{kind}: {impact}"
        );
    }
    assert_eq!(
        (
            &impact["shortened"],
            &impact["due_immediately"],
            &impact["earliest_new_delete_after"]
        ),
        (&json!(6), &json!(6), &json!(earliest)),
        "{impact}"
    );

    assert_eq!(admin_account(&app, &account_id).await, account_before);
    assert_eq!(views(&app, &key, &ids).await, views_before);
    assert_eq!(app.sweep().await["deleted"], 0);
    for id in &ids {
        assert_eq!(
            app.get_transcript(&key, id).await["text"],
            "MARKER-TEXT hello world",
            "still served"
        );
    }

    // dry_run=false is the real change: what the dry run said is then deleted.
    let applied = expect_json(
        patch(&app, &account_id, "?dry_run=false", r#"{"baa": true}"#).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(applied, dry["settings"]);
    assert_eq!(app.sweep().await["deleted"], impact["due_immediately"]);
    for id in &ids {
        assert_eq!(
            app.get_transcript(&key, id).await["text"],
            "Deleted by retention policy."
        );
    }
}

#[tokio::test]
async fn s1_a_dry_run_of_a_change_that_only_lengthens_reports_nothing_shortened() {
    let app = spawn_app().await;
    let key = app.ttl_account(3600).await;
    let id = app.completed_transcript(&key).await;
    let before = app.retention(&key, &id).await;
    let dry = expect_json(
        put(
            &app,
            &key,
            "?dry_run=true",
            r#"{"transcript_ttl_seconds": 864000}"#,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let impact = &dry["impact"];
    assert_eq!(impact["artifacts_examined"], 4, "{impact}");
    assert_eq!(
        (
            &impact["shortened"],
            &impact["due_immediately"],
            &impact["earliest_new_delete_after"]
        ),
        (&json!(0), &json!(0), &Value::Null),
        "{impact}"
    );
    assert_eq!(app.retention(&key, &id).await, before);
}

#[tokio::test]
async fn a_dry_run_refuses_what_the_real_change_refuses_alike_and_dry_run_takes_only_true_or_false()
{
    let app = spawn_app().await;
    let (account_id, key) = app.account_with(json!({"name": "acme"})).await;
    let settings_before = settings(&app, &key).await;
    let account_before = admin_account(&app, &account_id).await;

    let customer_bad = [
        r#"{"transcript_ttl_seconds": 3599}"#,
        r#"{"transcript_ttl_seconds": 999999999999}"#,
        r#"{"transcript_ttl_seconds": "1h"}"#,
        r#"{"upload_ttl_seconds": null}"#,
        r#"{"model_training_opt_out": "yes"}"#,
        r#"{"transcript_ttl_seconds": 3600, "colour": "red"}"#,
        r#"{"baa": true}"#,
        "{oops",
    ];
    for body in customer_bad {
        let real = put(&app, &key, "", body).await;
        let status = real.status();
        assert!(status.is_client_error(), "{body}: {status}");
        let real = expect_error(real, status).await;
        let dry = expect_error(put(&app, &key, "?dry_run=true", body).await, status).await;
        assert_eq!(dry, real, "{body}");
    }

    let admin_bad = [
        r#"{"baa": "yes"}"#,
        r#"{"region": "mars"}"#,
        r#"{"transcript_ttl_seconds": 0}"#,
        r#"{"baa": true, "transcript_ttl_seconds": 259201}"#,
        r#"{"name": "renamed"}"#,
    ];
    for body in admin_bad {
        let real = expect_error(
            patch(&app, &account_id, "", body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        let dry = expect_error(
            patch(&app, &account_id, "?dry_run=true", body).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert_eq!(dry, real, "{body}");
    }

    let good = r#"{"transcript_ttl_seconds": 7200}"#;
    for value in ["maybe", "TRUE", "1", ""] {
        let query = format!("?dry_run={value}");
        let message =
            expect_error(put(&app, &key, &query, good).await, StatusCode::BAD_REQUEST).await;
        assert!(message.contains("dry_run"), "{message}");
        let message = expect_error(
            patch(&app, &account_id, &query, good).await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        assert!(message.contains("dry_run"), "{message}");
    }
    let unknown = uuid::Uuid::now_v7();
    let response = patch(&app, &unknown.to_string(), "?dry_run=true", good).await;
    expect_error(response, StatusCode::NOT_FOUND).await;

    assert_eq!(settings(&app, &key).await, settings_before);
    assert_eq!(admin_account(&app, &account_id).await, account_before);
}
