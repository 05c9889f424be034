//! The retention dashboard at `/dashboard`: server-rendered HTML, no build step, no
//! script, nothing fetched from elsewhere (inline CSS, charts as inline SVG).
//!
//! Customers sign in with their API key, operators with the admin token, through a form;
//! the browser then holds only an HttpOnly, SameSite=Strict cookie with a random session
//! id ([`session`]), mapped in memory to the account or to the operator role for an hour.
//! A customer sees its own account only: naming another account is a 404 that says
//! nothing of it. Pages: the account's policy and mode, legal holds and retention change
//! in progress; a 72-hour timeline of upcoming deletions by kind; recent deletions with
//! their receipts; for operators, overdue artifacts, deletion lag, sweeps, every active
//! hold and every retention change in progress, and the list of accounts.
//!
//! Not part of the OpenAPI document. Its errors are HTML pages, so it is merged outside
//! the JSON error mapping, with its own trace span (method and route only), response
//! metric, time limit and body limit.

pub mod chart;
pub mod session;
pub mod view;

use axum::extract::{DefaultBodyLimit, MatchedPath, Path, Query, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{middleware, Form, Router};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::TraceLayer;
use uuid::Uuid;

use super::{token_matches, AppState};
use crate::domain::{Account, ApiKey};
use crate::engine::dashboard::lag_summary;
use crate::engine::EngineError;
use session::{Role, Sessions};
use view::{Nav, Tab};

/// Width of one timeline bucket, and how many there are (72 hours).
const BUCKET_HOURS: i64 = 6;
const BUCKETS: usize = 12;
/// Rows of the "next deletions", "recent deletions" and operators' listings.
const LISTED: usize = 50;
/// Accounts per page of the operators' list.
const ACCOUNTS_PER_PAGE: u32 = 50;
/// A sign-in form is small.
const FORM_LIMIT: usize = 16 * 1024;

const SIGN_IN: &str = "/dashboard/sign-in";

#[derive(Clone)]
struct Dashboard {
    app: AppState,
    sessions: Arc<Sessions>,
    /// Whether cookies get `Secure` (the public base URL is https).
    secure: bool,
}

/// The dashboard's routes, with their own session store; merged into [`super::router`].
pub fn routes(app: AppState) -> Router<AppState> {
    let timeout = app
        .config
        .request_timeout
        .to_std()
        .unwrap_or(Duration::from_secs(60));
    let metrics = app.engine.metrics().clone();
    let dashboard = Dashboard {
        secure: app.base_url.starts_with("https://"),
        app,
        sessions: Arc::new(Sessions::default()),
    };
    Router::new()
        .route("/dashboard", get(home))
        .route("/dashboard/", get(home))
        .route(SIGN_IN, get(sign_in_page).post(sign_in))
        .route("/dashboard/sign-out", post(sign_out))
        .route("/dashboard/account", get(policy_page))
        .route("/dashboard/timeline", get(timeline_page))
        .route("/dashboard/deletions", get(deletions_page))
        .route("/dashboard/receipts/{transcript_id}", get(receipt_page))
        .route("/dashboard/operations", get(operations_page))
        .route("/dashboard/accounts", get(accounts_page))
        .route("/dashboard/{*rest}", get(unknown_page))
        .layer(DefaultBodyLimit::max(FORM_LIMIT))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(middleware::map_response(security_headers))
        .layer(middleware::map_response(move |response: Response| {
            metrics.record_response(response.status().as_u16());
            std::future::ready(response)
        }))
        .layer(
            TraceLayer::new_for_http().make_span_with(|request: &Request| {
                // Method and route template only: no query string, no ids, no bodies.
                let route = request
                    .extensions()
                    .get::<MatchedPath>()
                    .map(MatchedPath::as_str)
                    .unwrap_or("unmatched");
                tracing::info_span!("http", method = %request.method(), route)
            }),
        )
        .with_state(dashboard)
}

/// No script, no framing, nothing from elsewhere, nothing cached, no referrer to other
/// sites (`same-origin`: with `no-referrer` browsers send `Origin: null` on our own form
/// posts, which the sign-in refuses).
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    for (name, value) in [
        (
            header::CONTENT_SECURITY_POLICY,
            "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (header::X_FRAME_OPTIONS, "DENY"),
        (header::REFERRER_POLICY, "same-origin"),
        (header::CACHE_CONTROL, "no-store"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    response
}

// ---- errors ---------------------------------------------------------------------------

/// What a page answers instead of itself.
enum PageError {
    /// No (live) session: to the sign-in form.
    SignIn,
    /// An HTML error page.
    Status(StatusCode, &'static str, String),
}

impl PageError {
    fn not_found() -> Self {
        PageError::Status(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is nothing here to show you.".into(),
        )
    }
}

impl From<EngineError> for PageError {
    fn from(error: EngineError) -> Self {
        match error {
            EngineError::NotFound => PageError::not_found(),
            EngineError::NothingDeleted => PageError::Status(
                StatusCode::CONFLICT,
                "No receipt yet",
                "Nothing of this transcript has been deleted yet, so there is no receipt.".into(),
            ),
            EngineError::Storage(crate::storage::StorageError::Unavailable { .. }) => {
                tracing::error!(error = %error, "dashboard: storage unavailable");
                PageError::Status(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    "Storage is temporarily unavailable; reload the page in a moment.".into(),
                )
            }
            other => {
                tracing::error!(error = ?other, "dashboard page failed");
                PageError::Status(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Error",
                    "Internal error; reload the page.".into(),
                )
            }
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::SignIn => Redirect::to(SIGN_IN).into_response(),
            PageError::Status(status, title, message) => (
                status,
                Html(view::error(None, title, &message).into_string()),
            )
                .into_response(),
        }
    }
}

type Page = Result<Response, PageError>;

fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

// ---- who is looking, at what ------------------------------------------------------------

impl Dashboard {
    /// The role of the request's live session.
    fn role(&self, headers: &HeaderMap) -> Result<Role, PageError> {
        session::session_id(headers)
            .and_then(|id| self.sessions.role(&id))
            .ok_or(PageError::SignIn)
    }

    /// The account a page is about: a customer's own (naming any other is a 404 that
    /// says nothing of it), or for an operator the one named by `?account=`; `None` when
    /// an operator named none.
    async fn account(
        &self,
        role: Role,
        query: &HashMap<String, String>,
    ) -> Result<Option<Account>, PageError> {
        let named = query
            .get("account")
            .map(|raw| raw.trim())
            .filter(|raw| !raw.is_empty());
        match role {
            Role::Customer(own) => {
                if named.is_some_and(|raw| Uuid::parse_str(raw).ok() != Some(own)) {
                    return Err(PageError::not_found());
                }
                match self.app.engine.account(own).await {
                    Ok(account) => Ok(Some(account)),
                    // The account is gone: so is the session's reason to be.
                    Err(EngineError::NotFound) => Err(PageError::SignIn),
                    Err(e) => Err(e.into()),
                }
            }
            Role::Operator => match named {
                None => Ok(None),
                Some(raw) => {
                    let id = Uuid::parse_str(raw).map_err(|_| PageError::not_found())?;
                    Ok(Some(self.app.engine.account(id).await?))
                }
            },
        }
    }
}

/// Whether a form post comes from this site: its `Origin`, when the browser sends one,
/// is the request's host or the public base URL.
fn same_origin(headers: &HeaderMap, base_url: &str) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let Ok(origin) = origin.to_str() else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|h| h.to_str().ok());
    origin == base_url.trim_end_matches('/')
        || host.is_some_and(|host| {
            origin == format!("http://{host}") || origin == format!("https://{host}")
        })
}

// ---- handlers ---------------------------------------------------------------------------

async fn home(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    match d.role(&headers) {
        Err(_) => Redirect::to(SIGN_IN).into_response(),
        Ok(Role::Customer(_)) => Redirect::to("/dashboard/account").into_response(),
        Ok(Role::Operator) => Redirect::to("/dashboard/operations").into_response(),
    }
}

async fn sign_in_page(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if d.role(&headers).is_ok() {
        return Redirect::to("/dashboard").into_response();
    }
    html(view::sign_in(None, false))
}

/// The sign-in form. `Debug` never prints the secret.
#[derive(Debug, Deserialize)]
struct SignIn {
    #[serde(default)]
    role: String,
    secret: SecretString,
}

async fn sign_in(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    form: Result<Form<SignIn>, axum::extract::rejection::FormRejection>,
) -> Response {
    let refuse = |status: StatusCode, message: &str, operator: bool| {
        (status, html(view::sign_in(Some(message), operator))).into_response()
    };
    if !same_origin(&headers, &d.app.base_url) {
        return refuse(
            StatusCode::FORBIDDEN,
            "This form must be sent from this dashboard's own page.",
            false,
        );
    }
    let Ok(Form(form)) = form else {
        return refuse(
            StatusCode::BAD_REQUEST,
            "Choose customer or operator and enter your API key or the admin token.",
            false,
        );
    };
    let secret = form.secret.expose_secret().trim();
    let operator = form.role == "operator";
    let role = match form.role.as_str() {
        _ if secret.is_empty() => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Enter your API key or the admin token.",
                operator,
            )
        }
        "operator" => token_matches(&d.app.tokens.admin, secret).then_some(Role::Operator),
        "customer" => match d
            .app
            .engine
            .authenticate(&ApiKey::from_presented(secret))
            .await
        {
            Ok(account) => account.map(|a| Role::Customer(a.id)),
            Err(e) => return PageError::from(e).into_response(),
        },
        _ => {
            return refuse(
                StatusCode::BAD_REQUEST,
                "Choose whether you sign in as a customer or as an operator.",
                false,
            )
        }
    };
    let Some(role) = role else {
        tracing::info!(
            role = if operator { "operator" } else { "customer" },
            "dashboard sign-in refused"
        );
        let message = if operator {
            "That is not the admin token."
        } else {
            "That API key is not valid."
        };
        return refuse(StatusCode::UNAUTHORIZED, message, operator);
    };
    match role {
        Role::Operator => tracing::info!("dashboard sign-in: operator"),
        Role::Customer(account_id) => {
            tracing::info!(%account_id, "dashboard sign-in: customer")
        }
    }
    let id = d.sessions.create(role);
    let mut response = Redirect::to("/dashboard").into_response();
    if let Ok(cookie) =
        HeaderValue::from_str(&session::set_cookie(&id, d.secure, session::SESSION_TTL))
    {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

async fn sign_out(State(d): State<Dashboard>, headers: HeaderMap) -> Response {
    if let Some(id) = session::session_id(&headers) {
        d.sessions.remove(&id);
    }
    let mut response = Redirect::to(SIGN_IN).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&session::clear_cookie(d.secure)) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

/// The operators' list of accounts, shown when a page needs an account and none is named.
async fn pick_account(d: &Dashboard, after: Option<Uuid>, notice: Option<&str>) -> Page {
    let mut accounts = d
        .app
        .engine
        .accounts_page(after, ACCOUNTS_PER_PAGE + 1)
        .await?;
    let next = (accounts.len() > ACCOUNTS_PER_PAGE as usize).then(|| {
        accounts.truncate(ACCOUNTS_PER_PAGE as usize);
        accounts.last().map(|a| a.id)
    });
    let nav = Nav {
        role: Role::Operator,
        account: None,
        current: Tab::Accounts,
    };
    Ok(html(view::accounts(
        &nav,
        &accounts,
        next.flatten(),
        notice,
    )))
}

/// A page about one account: its account, or the operators' picker.
macro_rules! account_or_pick {
    ($d:expr, $role:expr, $query:expr) => {
        match $d.account($role, &$query).await? {
            Some(account) => account,
            None => {
                return pick_account(&$d, None, Some("Pick the account to look at.")).await;
            }
        }
    };
}

async fn policy_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let role = d.role(&headers)?;
    let account = account_or_pick!(d, role, query);
    let nav = Nav {
        role,
        account: Some(&account),
        current: Tab::Policy,
    };
    Ok(html(view::policy(&nav, &account, d.app.engine.now())))
}

async fn timeline_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let role = d.role(&headers)?;
    let account = account_or_pick!(d, role, query);
    let timeline = d
        .app
        .engine
        .deletion_timeline(
            &account,
            chrono::Duration::hours(BUCKET_HOURS),
            BUCKETS,
            LISTED,
        )
        .await?;
    let nav = Nav {
        role,
        account: Some(&account),
        current: Tab::Timeline,
    };
    Ok(html(view::timeline(&nav, &timeline)))
}

async fn deletions_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let role = d.role(&headers)?;
    let account = account_or_pick!(d, role, query);
    let recent = d.app.engine.recent_deletions(account.id, LISTED).await?;
    let nav = Nav {
        role,
        account: Some(&account),
        current: Tab::Deletions,
    };
    Ok(html(view::deletions(&nav, &recent)))
}

async fn receipt_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Path(transcript_id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    let role = d.role(&headers)?;
    let account = account_or_pick!(d, role, query);
    let id = Uuid::parse_str(&transcript_id).map_err(|_| PageError::not_found())?;
    let receipt = d.app.engine.receipt(&account, id).await?;
    let json = serde_json::to_string_pretty(&receipt).map_err(|e| {
        tracing::error!(error = %e, "receipt could not be written as JSON");
        PageError::Status(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Error",
            "Internal error; reload the page.".into(),
        )
    })?;
    if query.get("download").is_some_and(|v| v == "1") {
        let disposition = format!("attachment; filename=\"receipt-{id}.json\"");
        let mut response = json.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        if let Ok(value) = HeaderValue::from_str(&disposition) {
            headers.insert(header::CONTENT_DISPOSITION, value);
        }
        return Ok(response);
    }
    let nav = Nav {
        role,
        account: Some(&account),
        current: Tab::Other,
    };
    Ok(html(view::receipt(&nav, &receipt, &json)))
}

async fn operations_page(State(d): State<Dashboard>, headers: HeaderMap) -> Page {
    if d.role(&headers)? != Role::Operator {
        return Err(PageError::not_found());
    }
    let view = d.app.engine.operations_view(LISTED as u32, 10).await?;
    let last = d.app.sweeper.last_report().borrow().clone();
    let last_pass = last.and_then(|report| lag_summary(&report.lags));
    let nav = Nav {
        role: Role::Operator,
        account: None,
        current: Tab::Operations,
    };
    Ok(html(view::operations(&nav, &view, last_pass.as_ref())))
}

async fn accounts_page(
    State(d): State<Dashboard>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    if d.role(&headers)? != Role::Operator {
        return Err(PageError::not_found());
    }
    let after = match query.get("after") {
        None => None,
        Some(raw) => Some(Uuid::parse_str(raw).map_err(|_| PageError::not_found())?),
    };
    pick_account(&d, after, None).await
}

async fn unknown_page(State(d): State<Dashboard>, headers: HeaderMap) -> Page {
    d.role(&headers)?;
    Err(PageError::not_found())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_post_from_elsewhere_is_not_same_origin() {
        let mut headers = HeaderMap::new();
        assert!(same_origin(&headers, "http://127.0.0.1:8080"));
        headers.insert(header::HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("http://127.0.0.1:8080"),
        );
        assert!(same_origin(&headers, "https://lethe.example"));
        headers.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        assert!(!same_origin(&headers, "https://lethe.example"));
        headers.insert(header::ORIGIN, HeaderValue::from_static("null"));
        assert!(!same_origin(&headers, "https://lethe.example"));
    }
}
