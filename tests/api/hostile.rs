//! Hostile input (issue 10): no request may take the service down, leak a secret or forge
//! state. Each test names the defect it guards against.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::*;

/// Every string option of `POST /v2/transcript`, sent with a number: a clear 400, and the
/// server still answers afterwards (the wrong-type message once recursed without end and
/// aborted the whole process).
#[tokio::test]
async fn a_wrong_typed_string_option_is_a_400_and_the_server_stays_up() {
    let app = spawn_app().await;
    let key = app.account().await;
    for field in [
        "prompt",
        "speech_model",
        "webhook_url",
        "language_code",
        "webhook_auth_header_name",
        "webhook_auth_header_value",
        "redact_pii_sub",
        "summary_model",
        "summary_type",
        "domain",
    ] {
        let response = app
            .public(Method::POST, "/v2/transcript", &key)
            .json(&json!({"audio_url": "https://x/a.wav", field: 1}))
            .send()
            .await
            .expect("the server answers");
        let message = expect_error(response, StatusCode::BAD_REQUEST).await;
        assert!(message.contains(field), "{field}: {message}");
    }
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .expect("still up");
    assert_eq!(health.status(), StatusCode::OK);
}
