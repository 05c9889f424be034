//! One error type for every surface; every 4xx/5xx body is `{"error": "<sentence>"}`.
//! A 5xx is logged once, here, and its detail never leaves the server.

use axum::extract::{FromRequest, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::de::DeserializeOwned;

use crate::engine::EngineError;
use crate::storage::StorageError;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("Authentication error, API token missing/invalid")]
    Unauthorized,
    #[error("Authentication error: send the {0} API token as `Authorization: Bearer <token>`")]
    UnauthorizedBearer(&'static str),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{}", .0.not_found())]
    NotFound(Resource),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    RequestTimeout(String),
    #[error("storage is temporarily unavailable; retry the request")]
    Unavailable(#[source] StorageError),
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    pub fn bad_request(message: impl Into<String>) -> Self {
        ApiError::BadRequest(message.into())
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized | ApiError::UnauthorizedBearer(_) => StatusCode::UNAUTHORIZED,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::RequestTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

pub fn error_body(status: StatusCode, message: &str) -> Response {
    let mut response = (
        status,
        Json(super::body::ErrorBody {
            error: message.to_string(),
        }),
    )
        .into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match &self {
            ApiError::Internal(error) => tracing::error!(error = ?error, "request failed"),
            ApiError::Unavailable(error) => tracing::error!(error = ?error, "storage unavailable"),
            _ => {}
        }
        error_body(self.status(), &self.to_string())
    }
}

impl From<EngineError> for ApiError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => ApiError::NotFound(Resource::Unknown),
            EngineError::StillProcessing => {
                ApiError::BadRequest("Transcript is still being processed and cannot be deleted yet; retry once it is completed or error".into())
            }
            EngineError::AlreadyFinished { .. } => ApiError::Conflict(error.to_string()),
            EngineError::ContentDeleted => ApiError::Gone(error.to_string()),
            EngineError::UploadNotAccessible => ApiError::Forbidden("Cannot access uploaded file".into()),
            EngineError::ZeroDataRetention => {
                ApiError::Conflict("account has zero data retention; content is not stored".into())
            }
            EngineError::InvalidSettings(e) => ApiError::BadRequest(e.to_string()),
            EngineError::Invalid(message) => ApiError::BadRequest(message),
            EngineError::Concurrent
            | EngineError::NothingDeleted
            | EngineError::DeletionInProgress
            | EngineError::Held
            | EngineError::HeldArtifact => {
                ApiError::Conflict(error.to_string())
            }
            EngineError::Storage(e) => e.into(),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(error: StorageError) -> Self {
        match error {
            StorageError::Unavailable { .. } => ApiError::Unavailable(error),
            other => ApiError::Internal(other.into()),
        }
    }
}

/// What a request named that was not found: each has its own sentence, and "another
/// account's" reads exactly like "missing".
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resource {
    /// A public transcript (AssemblyAI's wording).
    Transcript,
    /// A transcript the pipeline names.
    PipelineTranscript,
    Upload,
    Account,
    /// An account, or a transcript in it (an LLM Gateway request on a transcript).
    AccountOrTranscript,
    Sweep,
    Hold,
    LlmGatewayRequest,
    StreamingSession,
    TrainingArtifact,
    Unknown,
}

impl Resource {
    pub fn not_found(self) -> &'static str {
        match self {
            Resource::Transcript => "Transcript lookup error, transcript id not found",
            Resource::PipelineTranscript => "no transcript with this id",
            Resource::Upload => "no upload with this id",
            Resource::Account => "no account with this id",
            Resource::AccountOrTranscript => {
                "no account with this id, or no transcript with this id in it"
            }
            Resource::Sweep => "no sweep with this id",
            Resource::Hold => "no legal hold with this id",
            Resource::LlmGatewayRequest => "no LLM Gateway request with this id",
            Resource::StreamingSession => "no streaming session with this id",
            Resource::TrainingArtifact => "no training-eligible artifact with this id",
            Resource::Unknown => "the requested resource was not found",
        }
    }

    /// An id from a path: anything that is not one names nothing.
    pub fn id(self, raw: &str) -> Result<uuid::Uuid, ApiError> {
        uuid::Uuid::parse_str(raw).map_err(|_| ApiError::NotFound(self))
    }
}

/// The engine's `NotFound` as the resource a handler asked for; every other error as it
/// maps.
pub trait OrNotFound<T> {
    fn or_not_found(self, resource: Resource) -> Result<T, ApiError>;
}

impl<T> OrNotFound<T> for Result<T, EngineError> {
    fn or_not_found(self, resource: Resource) -> Result<T, ApiError> {
        self.map_err(|e| match e {
            EngineError::NotFound => ApiError::NotFound(resource),
            other => other.into(),
        })
    }
}

/// A JSON body parsed whatever its `Content-Type`, with our error body on failure.
pub struct AppJson<T>(pub T);

/// A body larger than this is parsed on a blocking thread, so that a long pipeline
/// result does not hold up the requests sharing its worker.
const PARSE_INLINE_BYTES: usize = 1 << 20;

impl<S, T> FromRequest<S> for AppJson<T>
where
    S: Send + Sync,
    T: DeserializeOwned + Send + 'static,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = axum::body::Bytes::from_request(req, state)
            .await
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ApiError::PayloadTooLarge("request body is too large".into())
                } else {
                    ApiError::bad_request(format!(
                        "could not read the request body: {}",
                        rejection.body_text()
                    ))
                }
            })?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Err(ApiError::bad_request(
                "request body is empty; send a JSON object",
            ));
        }
        let large = bytes.len() > PARSE_INLINE_BYTES;
        let parse = move || serde_json::from_slice::<T>(&bytes);
        let parsed = if large {
            tokio::task::spawn_blocking(parse)
                .await
                .map_err(|e| ApiError::Internal(e.into()))?
        } else {
            parse()
        };
        parsed.map(AppJson).map_err(|e| {
            ApiError::bad_request(format!(
                "request body is not valid JSON of the expected shape: {e}"
            ))
        })
    }
}

/// A JSON object body, for endpoints that check each field themselves: its values stay
/// raw JSON text until a handler reads one.
pub type JsonObject = super::raw::RawObject;
