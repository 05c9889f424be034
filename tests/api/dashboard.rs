//! The retention dashboard (`/dashboard`): every page driven in a real headless Chromium
//! through chromedriver — sign-in through the form as a customer and as an operator, what
//! each page shows, and that a customer never sees another account — with a screenshot
//! of each page under `target/dashboard-screenshots/`; and plain HTTP checks of the
//! session: redirects without one, no cookie for a wrong key, an HttpOnly SameSite=Strict
//! cookie that holds a random id, never the key.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`scripts/test` installs them); without
//! them the browser test fails and says so — it is never skipped.

use crate::helpers::*;
use chrono::Duration;
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const CHROMIUM: &str = "/usr/bin/chromium";

// ---- the browser ----------------------------------------------------------------------

/// A chromedriver process on a free loopback port, ended when dropped.
struct Chromedriver {
    child: Child,
    url: String,
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn chromedriver() -> Chromedriver {
    for (path, package) in [(CHROMEDRIVER, "chromium-driver"), (CHROMIUM, "chromium")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: the dashboard tests drive a real headless Chromium through \
             chromedriver. Install Debian's packages with \
             `apt-get install -y chromium chromium-driver` (scripts/test installs them; \
             this one is in {package})"
        );
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {CHROMEDRIVER}: {e}"));
    let driver = Chromedriver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let client = reqwest::Client::new();
    for _ in 0..300 {
        let ready = client
            .get(format!("{}/status", driver.url))
            .send()
            .await
            .ok()
            .filter(|r| r.status().is_success());
        if let Some(response) = ready {
            let status: Value = response.json().await.unwrap_or_default();
            if status["value"]["ready"] == true {
                return driver;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("{CHROMEDRIVER} did not become ready on port {port} within 30 s");
}

/// A headless Chromium session.
async fn browser(driver: &Chromedriver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": CHROMIUM,
            "args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--window-size=1280,1400", "--no-first-run", "--no-default-browser-check"],
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .unwrap_or_else(|e| panic!("could not start headless Chromium through chromedriver: {e}"))
}

/// Runs `scenario` in a fresh browser session, which is closed whatever happens.
async fn in_browser<F, Fut>(driver: &Chromedriver, scenario: F)
where
    F: FnOnce(Client) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let client = browser(driver).await;
    let outcome = AssertUnwindSafe(scenario(client.clone()))
        .catch_unwind()
        .await;
    let _ = client.close().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

fn screenshot_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots")
}

/// Saves a screenshot of the page as `target/dashboard-screenshots/<name>.png`.
async fn screenshot(browser: &Client, name: &str) -> PathBuf {
    let png = browser.screenshot().await.expect("screenshot");
    assert!(
        png.len() > 1000 && png.starts_with(b"\x89PNG\r\n\x1a\n"),
        "the screenshot of {name} is a non-empty PNG ({} bytes)",
        png.len()
    );
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, &png).expect("write screenshot");
    assert!(std::fs::metadata(&path).expect("written").len() > 0);
    path
}

/// Waits until the page shows `css` (pages are told apart by an element of their own).
async fn wait_for(browser: &Client, css: &str) {
    let found = browser
        .wait()
        .at_most(std::time::Duration::from_secs(15))
        .for_element(Locator::Css(css))
        .await;
    if let Err(e) = found {
        let url = browser.current_url().await.map(|u| u.to_string());
        let source = browser.source().await.unwrap_or_default();
        panic!("no {css} on the page ({e}); at {url:?}:\n{source}");
    }
}

async fn text_of(browser: &Client, css: &str) -> String {
    browser
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css}: {e}"))
        .text()
        .await
        .expect("text")
}

async fn path_of(browser: &Client) -> String {
    let url = browser.current_url().await.expect("url");
    match url.query() {
        Some(q) => format!("{}?{q}", url.path()),
        None => url.path().to_owned(),
    }
}

/// Signs in through the form, as a customer (API key) or an operator (admin token).
async fn sign_in(browser: &Client, base: &str, operator: bool, secret: &str) {
    browser
        .goto(&format!("{base}/dashboard"))
        .await
        .expect("open the dashboard");
    wait_for(browser, "form[action='/dashboard/sign-in']").await;
    assert_eq!(path_of(browser).await, "/dashboard/sign-in");
    let role = if operator { "operator" } else { "customer" };
    browser
        .find(Locator::Css(&format!("input[name=role][value={role}]")))
        .await
        .expect("role radio")
        .click()
        .await
        .expect("choose the role");
    browser
        .find(Locator::Css("input[name=secret]"))
        .await
        .expect("secret field")
        .send_keys(secret)
        .await
        .expect("type the secret");
    browser
        .find(Locator::Css(
            "form[action='/dashboard/sign-in'] button[type=submit]",
        ))
        .await
        .expect("sign-in button")
        .click()
        .await
        .expect("sign in");
    wait_for(browser, "form[action='/dashboard/sign-out']").await;
}

// ---- the data ---------------------------------------------------------------------------

async fn put_retention(app: &TestApp, key: &str, body: Value) {
    let response = app
        .public(Method::PUT, "/v2/account/retention", key)
        .json(&body)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::OK).await;
}

async fn hold(app: &TestApp, body: Value) {
    let response = app
        .admin(Method::POST, "/admin/v1/holds")
        .json(&body)
        .send()
        .await
        .expect("request");
    expect_json(response, StatusCode::CREATED).await;
}

struct World {
    acme: (String, String),
    other: (String, String),
    late: (String, String),
    /// acme's completed transcript, due in about an hour.
    upcoming: String,
    /// acme's transcript the customer deleted.
    deleted: String,
    /// acme's transcript under a legal hold.
    held: String,
    /// other-co's transcript.
    other_transcript: String,
}

/// Three accounts: `late-co` (1 h TTL) whose transcript is left past its deadline
/// unswept (overdue), `acme-dash` (TTL 2 h, then shortened to 1 h: a retention change in
/// progress) with an upcoming deletion, a customer deletion and a held transcript, and
/// `other-co`, whose data acme must never see (it has a hold of its own).
async fn world(app: &TestApp) -> World {
    let late = app.account_with(json!({"name": "late-co"})).await;
    put_retention(app, &late.1, json!({"transcript_ttl_seconds": 3600})).await;
    app.completed_transcript(&late.1).await;
    // Past late-co's deadline (completion + 1 h + the 1 h SLA), with no sweep.
    app.advance(Duration::minutes(150));

    let acme = app.account_with(json!({"name": "acme-dash"})).await;
    put_retention(app, &acme.1, json!({"transcript_ttl_seconds": 7200})).await;
    let upcoming = app.completed_transcript(&acme.1).await;
    let deleted = app.completed_transcript(&acme.1).await;
    let response = app.delete_transcript(&acme.1, &deleted).await;
    assert_eq!(response.status(), StatusCode::OK);
    let held = app.completed_transcript(&acme.1).await;
    hold(
        app,
        json!({"account_id": acme.0, "transcript_id": held, "reason": "MATTER-ACME-REASON"}),
    )
    .await;
    // Shorter: recorded with a retention job that no sweep has carried yet.
    put_retention(app, &acme.1, json!({"transcript_ttl_seconds": 3600})).await;

    let other = app.account_with(json!({"name": "other-co"})).await;
    let other_transcript = app.completed_transcript(&other.1).await;
    hold(
        app,
        json!({"account_id": other.0, "reason": "MATTER-OTHER-REASON"}),
    )
    .await;
    World {
        acme,
        other,
        late,
        upcoming,
        deleted,
        held,
        other_transcript,
    }
}

/// Nothing of other-co anywhere in the page.
async fn shows_nothing_of_other(browser: &Client, w: &World) {
    let source = browser.source().await.expect("source");
    for secret in [
        w.other.0.as_str(),
        "other-co",
        "MATTER-OTHER-REASON",
        w.other_transcript.as_str(),
        w.other.1.as_str(),
    ] {
        assert!(
            !source.contains(secret),
            "acme's page shows {secret:?} of another account:\n{source}"
        );
    }
}

// ---- the browser tests ---------------------------------------------------------------

#[tokio::test]
async fn dashboard_pages_in_a_real_browser_for_a_customer_and_an_operator() {
    let driver = chromedriver().await;
    let app = spawn_app().await;
    let w = &world(&app).await;
    let base = app.base.as_str();

    // ---- the customer ----
    in_browser(&driver, |b| async move {
        b.goto(&format!("{base}/dashboard")).await.expect("goto");
        wait_for(&b, "form[action='/dashboard/sign-in']").await;
        screenshot(&b, "sign-in").await;

        // A wrong key: an error, still signed out.
        b.find(Locator::Css("input[name=secret]"))
            .await
            .expect("field")
            .send_keys("not-a-key")
            .await
            .expect("type");
        b.find(Locator::Css(
            "form[action='/dashboard/sign-in'] button[type=submit]",
        ))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
        wait_for(&b, "p.error").await;
        let refused = text_of(&b, "p.error").await;
        assert!(refused.contains("not valid"), "{refused}");
        assert!(
            b.get_all_cookies().await.expect("cookies").is_empty(),
            "no cookie for a wrong key"
        );
        screenshot(&b, "sign-in-refused").await;

        sign_in(&b, base, false, &w.acme.1).await;
        // The customer lands on its own policy.
        assert_eq!(path_of(&b).await, "/dashboard/account");
        wait_for(&b, "section#policy").await;
        assert_eq!(text_of(&b, "#mode").await, "ttl");
        assert_eq!(text_of(&b, "#transcript-ttl").await, "1 hour (3600 s)");
        assert_eq!(text_of(&b, "#upload-ttl").await, "3 days (259200 s)");
        let policy = text_of(&b, "main").await;
        assert!(
            policy.contains("acme-dash") && policy.contains(&w.acme.0),
            "{policy}"
        );
        // Its own hold (scope and date, not the operator's reason) and retention change.
        let holds = text_of(&b, "section#holds").await;
        assert!(
            holds.contains(&w.held) && holds.contains("the upload it was made from"),
            "{holds}"
        );
        assert!(
            !b.source()
                .await
                .expect("source")
                .contains("MATTER-ACME-REASON"),
            "the hold's reason is the operators'"
        );
        let change = text_of(&b, "section#retention-change").await;
        assert!(
            change.contains("Policy version 3") && change.contains("being applied"),
            "{change}"
        );
        // The cookie is HttpOnly, SameSite=Strict, and holds no key.
        let cookies = b.get_all_cookies().await.expect("cookies");
        assert_eq!(cookies.len(), 1, "{cookies:?}");
        let cookie = &cookies[0];
        assert_eq!(cookie.name(), "lethe_dashboard");
        assert_eq!(cookie.http_only(), Some(true));
        assert_eq!(
            cookie.same_site().map(|s| s.to_string()).as_deref(),
            Some("Strict")
        );
        assert!(!cookie.value().contains(&w.acme.1) && cookie.value().len() == 64);
        shows_nothing_of_other(&b, w).await;
        screenshot(&b, "customer-policy").await;

        // Upcoming deletions: the completed transcript, in the first 6-hour bar.
        b.find(Locator::LinkText("Upcoming deletions"))
            .await
            .expect("nav")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#soonest").await;
        assert_eq!(path_of(&b).await, "/dashboard/timeline");
        let soonest = text_of(&b, "table#soonest").await;
        assert!(
            soonest.contains(&w.upcoming) && soonest.contains("final_transcript"),
            "{soonest}"
        );
        assert!(
            soonest.contains("in 1 h"),
            "due an hour from now under the shortened TTL: {soonest}"
        );
        assert!(
            !soonest.contains(&w.held) && !soonest.contains(&w.deleted),
            "held and deleted are not upcoming: {soonest}"
        );
        let first_bar = b
            .find(Locator::Css(
                "svg.chart g.bar rect[data-kind=final_transcript]",
            ))
            .await
            .expect("a final_transcript segment in the chart");
        assert_eq!(
            first_bar.attr("data-count").await.expect("attr").as_deref(),
            Some("1")
        );
        let first_total = text_of(&b, "table#buckets tbody tr:first-child td:last-child").await;
        assert_eq!(
            first_total, "4",
            "the transcript and its three linked artifacts"
        );
        assert_ne!(
            text_of(&b, "#held b").await,
            "0",
            "the held transcript counts as held"
        );
        shows_nothing_of_other(&b, w).await;
        screenshot(&b, "customer-timeline").await;

        // Recent deletions, with the receipt.
        b.find(Locator::LinkText("Recent deletions"))
            .await
            .expect("nav")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#deletions").await;
        let deletions = text_of(&b, "table#deletions").await;
        assert!(
            deletions.contains(&w.deleted) && deletions.contains("customer_request"),
            "{deletions}"
        );
        let receipt_link = b
            .find(Locator::Css("table#deletions a.receipt"))
            .await
            .expect("receipt link");
        assert_eq!(
            receipt_link.attr("href").await.expect("href").as_deref(),
            Some(format!("/dashboard/receipts/{}", w.deleted).as_str())
        );
        shows_nothing_of_other(&b, w).await;
        screenshot(&b, "customer-deletions").await;
        receipt_link.click().await.expect("open the receipt");
        wait_for(&b, "table#receipt").await;
        let receipt = text_of(&b, "main").await;
        assert!(
            receipt.contains(&w.deleted) && receipt.contains("lethe-receipt/1"),
            "{receipt}"
        );
        screenshot(&b, "customer-receipt").await;

        // Another account's id shows nothing of it, on every page.
        for page in ["account", "timeline", "deletions"] {
            b.goto(&format!("{base}/dashboard/{page}?account={}", w.other.0))
                .await
                .expect("goto");
            wait_for(&b, "p.error").await;
            assert_eq!(text_of(&b, "h1").await, "Not found");
            shows_nothing_of_other(&b, w).await;
        }
        screenshot(&b, "customer-other-account-not-found").await;
        b.goto(&format!("{base}/dashboard/receipts/{}", w.other_transcript))
            .await
            .expect("goto");
        wait_for(&b, "p.error").await;
        assert_eq!(text_of(&b, "h1").await, "Not found");
        shows_nothing_of_other(&b, w).await;
        b.goto(&format!("{base}/dashboard/operations"))
            .await
            .expect("goto");
        wait_for(&b, "p.error").await;
        assert_eq!(text_of(&b, "h1").await, "Not found", "operators' page");

        // Sign out: the session is gone.
        b.goto(&format!("{base}/dashboard/account"))
            .await
            .expect("goto");
        wait_for(&b, "form[action='/dashboard/sign-out']").await;
        b.find(Locator::Css("form[action='/dashboard/sign-out'] button"))
            .await
            .expect("button")
            .click()
            .await
            .expect("sign out");
        wait_for(&b, "form[action='/dashboard/sign-in']").await;
        b.goto(&format!("{base}/dashboard/account"))
            .await
            .expect("goto");
        wait_for(&b, "form[action='/dashboard/sign-in']").await;
    })
    .await;

    // ---- the operator ----
    let app = &app;
    in_browser(&driver, |b| async move {
        sign_in(&b, base, true, ADMIN).await;
        assert_eq!(path_of(&b).await, "/dashboard/operations");
        wait_for(&b, "section#overdue").await;
        // late-co's transcript is past its deadline.
        let overdue = text_of(&b, "section#overdue").await;
        assert!(
            overdue.contains(&w.late.0) && overdue.contains("final_transcript"),
            "{overdue}"
        );
        assert!(
            overdue.contains("30 min"),
            "late by half an hour: {overdue}"
        );
        // Every active hold, with its reason; every retention change in progress.
        let holds = text_of(&b, "section#holds").await;
        assert!(
            holds.contains("MATTER-ACME-REASON") && holds.contains("MATTER-OTHER-REASON"),
            "{holds}"
        );
        assert!(
            holds.contains(&w.held) && holds.contains("the whole account"),
            "{holds}"
        );
        let changes = text_of(&b, "section#retention-changes").await;
        assert!(changes.contains("acme-dash"), "{changes}");
        screenshot(&b, "operator-operations").await;

        // The accounts, and one picked by id through the form.
        b.find(Locator::Css("header nav a[href='/dashboard/accounts']"))
            .await
            .expect("nav")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#accounts").await;
        let accounts = text_of(&b, "table#accounts").await;
        for name in ["acme-dash", "other-co", "late-co"] {
            assert!(accounts.contains(name), "{accounts}");
        }
        screenshot(&b, "operator-accounts").await;
        b.find(Locator::Css("input[name=account]"))
            .await
            .expect("picker")
            .send_keys(&w.acme.0)
            .await
            .expect("type");
        b.find(Locator::Css(
            "form[action='/dashboard/account'] button[type=submit]",
        ))
        .await
        .expect("open")
        .click()
        .await
        .expect("click");
        wait_for(&b, "section#policy").await;
        assert_eq!(
            path_of(&b).await,
            format!("/dashboard/account?account={}", w.acme.0)
        );
        assert_eq!(text_of(&b, "#mode").await, "ttl");
        assert!(text_of(&b, "section#holds")
            .await
            .contains("MATTER-ACME-REASON"));
        screenshot(&b, "operator-policy").await;

        b.find(Locator::LinkText("Upcoming deletions"))
            .await
            .expect("nav")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#soonest").await;
        assert!(text_of(&b, "table#soonest").await.contains(&w.upcoming));
        screenshot(&b, "operator-timeline").await;

        b.find(Locator::LinkText("Recent deletions"))
            .await
            .expect("nav")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#deletions").await;
        assert!(text_of(&b, "table#deletions").await.contains(&w.deleted));
        screenshot(&b, "operator-deletions").await;
        b.find(Locator::Css("table#deletions a.receipt"))
            .await
            .expect("receipt")
            .click()
            .await
            .expect("click");
        wait_for(&b, "table#receipt").await;
        assert!(text_of(&b, "main").await.contains(&w.deleted));
        screenshot(&b, "operator-receipt").await;

        // A pass deletes the overdue artifacts 1 h 30 min after delete_after: the lag shows,
        // the overdue list empties, the retention change is carried.
        let report = app.sweep().await;
        assert!(report["deleted"].as_u64().unwrap_or(0) >= 4, "{report}");
        b.goto(&format!("{base}/dashboard/operations"))
            .await
            .expect("goto");
        wait_for(&b, "section#lag").await;
        assert!(text_of(&b, "section#overdue h2").await.contains("none"));
        let lag = text_of(&b, "section#lag").await;
        assert!(
            lag.contains("1 h 30 min"),
            "the last pass's exact lag: {lag}"
        );
        assert!(lag.contains("deletions measured"), "{lag}");
        assert!(text_of(&b, "section#sweeps").await.contains("finished"));
        assert!(text_of(&b, "section#retention-changes")
            .await
            .contains("None"));
        screenshot(&b, "operator-operations-after-sweep").await;

        // late-co's deletions now show for the operator, with their lag.
        b.goto(&format!("{base}/dashboard/deletions?account={}", w.late.0))
            .await
            .expect("goto");
        wait_for(&b, "table#deletions").await;
        assert!(
            text_of(&b, "table#deletions").await.contains("linked")
                || text_of(&b, "table#deletions").await.contains("ttl")
        );
        assert!(text_of(&b, "main").await.contains("p50"));

        // An unknown account is a 404 page for operators too.
        b.goto(&format!(
            "{base}/dashboard/account?account={}",
            uuid::Uuid::nil()
        ))
        .await
        .expect("goto");
        wait_for(&b, "p.error").await;
        assert_eq!(text_of(&b, "h1").await, "Not found");
    })
    .await;

    let shots: Vec<_> = std::fs::read_dir(screenshot_dir())
        .expect("screenshots")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    for name in [
        "sign-in",
        "customer-policy",
        "customer-timeline",
        "customer-deletions",
        "customer-receipt",
        "operator-operations",
        "operator-accounts",
        "operator-policy",
        "operator-timeline",
        "operator-deletions",
        "operator-receipt",
    ] {
        assert!(
            shots.contains(&format!("{name}.png")),
            "{name}.png in {shots:?}"
        );
    }
}

// ---- plain HTTP -----------------------------------------------------------------------

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

fn location(response: &reqwest::Response) -> String {
    response
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned()
}

/// Posts the sign-in form; returns the response.
async fn post_sign_in(app: &TestApp, role: &str, secret: &str) -> reqwest::Response {
    no_redirects()
        .post(format!("{}/dashboard/sign-in", app.base))
        .form(&[("role", role), ("secret", secret)])
        .send()
        .await
        .expect("request")
}

/// The `name=value` of a sign-in's session cookie.
fn session_cookie(response: &reqwest::Response) -> String {
    let set = response
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .expect("a session cookie");
    set.split(';').next().expect("name=value").to_owned()
}

async fn get_page(app: &TestApp, path: &str, cookie: Option<&str>) -> reqwest::Response {
    let request = no_redirects().get(format!("{}{path}", app.base));
    match cookie {
        Some(cookie) => request.header("cookie", cookie),
        None => request,
    }
    .send()
    .await
    .expect("request")
}

#[tokio::test]
async fn without_a_session_the_dashboard_sends_you_to_sign_in() {
    let app = spawn_app().await;
    for path in [
        "/dashboard",
        "/dashboard/account",
        "/dashboard/timeline",
        "/dashboard/deletions",
        "/dashboard/operations",
        "/dashboard/accounts",
        "/dashboard/receipts/0190e0a0-0000-7000-8000-000000000000",
        "/dashboard/nowhere",
    ] {
        let response = get_page(&app, path, None).await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{path}");
        assert_eq!(location(&response), "/dashboard/sign-in", "{path}");
        assert!(response.headers().get("set-cookie").is_none());
    }
    // A cookie that is no session is no better.
    let response = get_page(&app, "/dashboard/account", Some("lethe_dashboard=forged")).await;
    assert_eq!(location(&response), "/dashboard/sign-in");

    let form = get_page(&app, "/dashboard/sign-in", None).await;
    assert_eq!(form.status(), StatusCode::OK);
    let csp = form.headers()["content-security-policy"]
        .to_str()
        .expect("csp")
        .to_owned();
    assert!(
        csp.contains("default-src 'none'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    assert_eq!(form.headers()["cache-control"], "no-store");
    let html = form.text().await.expect("body");
    assert!(html.contains("<form method=\"post\" action=\"/dashboard/sign-in\""));
    assert!(
        !html.contains("<script"),
        "no script: the pages work without JavaScript"
    );
}

#[tokio::test]
async fn a_wrong_key_or_token_shows_an_error_and_sets_no_cookie() {
    let app = spawn_app().await;
    let (_, key) = app.account_with(json!({"name": "acme"})).await;
    for (role, secret) in [
        ("customer", "wrong-key"),
        ("customer", ADMIN),
        ("operator", "wrong-token"),
        ("operator", key.as_str()),
        ("customer", ""),
        ("nobody", key.as_str()),
    ] {
        let response = post_sign_in(&app, role, secret).await;
        assert!(
            response.status() == StatusCode::UNAUTHORIZED
                || response.status() == StatusCode::BAD_REQUEST,
            "{role}: {}",
            response.status()
        );
        assert!(response.headers().get("set-cookie").is_none(), "{role}");
        let html = response.text().await.expect("body");
        assert!(html.contains("class=\"error\""), "{html}");
        assert!(
            !html.contains(&key) && !html.contains(ADMIN),
            "the secret is not echoed"
        );
    }
    // A form posted from another site is refused, even with the right key.
    let response = no_redirects()
        .post(format!("{}/dashboard/sign-in", app.base))
        .header("origin", "https://evil.example")
        .form(&[("role", "customer"), ("secret", key.as_str())])
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::FORBIDDEN);
    assert!(response.headers().get("set-cookie").is_none());
}

#[tokio::test]
async fn the_session_cookie_is_httponly_samesite_strict_and_holds_no_key() {
    let app = spawn_app().await;
    let (acme, key) = app.account_with(json!({"name": "acme"})).await;
    let (other, other_key) = app.account_with(json!({"name": "other-co"})).await;

    let response = post_sign_in(&app, "customer", &key).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&response), "/dashboard");
    let set = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    let attributes: Vec<&str> = set.split(';').map(str::trim).collect();
    assert!(attributes.contains(&"HttpOnly"), "{set}");
    assert!(attributes.contains(&"SameSite=Strict"), "{set}");
    assert!(attributes.contains(&"Path=/dashboard"), "{set}");
    assert!(attributes.contains(&"Max-Age=3600"), "{set}");
    assert!(!set.contains(&key), "the key is never in the cookie: {set}");
    let cookie = session_cookie(&response);
    let id = cookie.strip_prefix("lethe_dashboard=").expect("our cookie");
    assert_eq!(id.len(), 64, "a random 256-bit id");

    // The customer's pages; another account's is a 404 that shows nothing of it.
    let home = get_page(&app, "/dashboard", Some(&cookie)).await;
    assert_eq!(location(&home), "/dashboard/account");
    let page = get_page(&app, "/dashboard/account", Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains(&acme));
    for path in ["account", "timeline", "deletions"] {
        let page = get_page(
            &app,
            &format!("/dashboard/{path}?account={other}"),
            Some(&cookie),
        )
        .await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{path}");
        let html = page.text().await.expect("body");
        assert!(
            !html.contains(&other) && !html.contains("other-co"),
            "{html}"
        );
    }
    let own = get_page(
        &app,
        &format!("/dashboard/account?account={acme}"),
        Some(&cookie),
    )
    .await;
    assert_eq!(
        own.status(),
        StatusCode::OK,
        "naming its own account is fine"
    );
    // A deleted transcript's receipt, as the API serves it; another account's is a 404.
    let theirs = app.completed_transcript(&other_key).await;
    assert_eq!(
        app.delete_transcript(&other_key, &theirs).await.status(),
        StatusCode::OK
    );
    let mine = app.completed_transcript(&key).await;
    assert_eq!(
        app.delete_transcript(&key, &mine).await.status(),
        StatusCode::OK
    );
    let download = get_page(
        &app,
        &format!("/dashboard/receipts/{mine}?download=1"),
        Some(&cookie),
    )
    .await;
    assert_eq!(download.status(), StatusCode::OK);
    assert!(download.headers()["content-disposition"]
        .to_str()
        .expect("disposition")
        .starts_with("attachment"));
    let downloaded: Value = download.json().await.expect("receipt JSON");
    let response = app
        .public(Method::GET, &format!("/v2/transcript/{mine}/receipt"), &key)
        .send()
        .await
        .expect("request");
    let served = expect_json(response, StatusCode::OK).await;
    assert_eq!(downloaded["transcript_id"], served["transcript_id"]);
    assert_eq!(downloaded["artifacts"], served["artifacts"]);
    let page = get_page(&app, &format!("/dashboard/receipts/{mine}"), Some(&cookie)).await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains(&mine));
    for path in [
        format!("/dashboard/receipts/{theirs}"),
        format!("/dashboard/receipts/{theirs}?download=1"),
    ] {
        let page = get_page(&app, &path, Some(&cookie)).await;
        assert_eq!(page.status(), StatusCode::NOT_FOUND, "{path}");
        assert!(!page.text().await.expect("body").contains(&theirs));
    }

    for path in ["/dashboard/operations", "/dashboard/accounts"] {
        let page = get_page(&app, path, Some(&cookie)).await;
        assert_eq!(
            page.status(),
            StatusCode::NOT_FOUND,
            "{path} is the operators'"
        );
    }

    // The operator's session.
    let response = post_sign_in(&app, "operator", ADMIN).await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let set = response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict") && !set.contains(ADMIN));
    let operator = session_cookie(&response);
    assert_ne!(operator, cookie);
    let page = get_page(&app, "/dashboard/operations", Some(&operator)).await;
    assert_eq!(page.status(), StatusCode::OK);
    let page = get_page(
        &app,
        &format!("/dashboard/account?account={other}"),
        Some(&operator),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert!(page.text().await.expect("body").contains("other-co"));

    // Sign-out ends the session on the server, not only in the browser.
    let response = no_redirects()
        .post(format!("{}/dashboard/sign-out", app.base))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request");
    assert_eq!(location(&response), "/dashboard/sign-in");
    assert!(response.headers()["set-cookie"]
        .to_str()
        .expect("cookie")
        .contains("Max-Age=0"));
    let page = get_page(&app, "/dashboard/account", Some(&cookie)).await;
    assert_eq!(location(&page), "/dashboard/sign-in");
}

/// The number a timeline stat shows (`<div class="stat" id="...">`).
fn stat(html: &str, id: &str) -> u64 {
    let pattern = format!(r#"id="{id}"><b>(\d+)</b>"#);
    regex::Regex::new(&pattern)
        .expect("regex")
        .captures(html)
        .and_then(|c| c[1].parse().ok())
        .unwrap_or_else(|| panic!("no {id} stat in {html}"))
}

#[tokio::test]
async fn the_timeline_places_each_artifact_by_when_its_deletion_begins() {
    let app = spawn_app().await;
    let operator = session_cookie(&post_sign_in(&app, "operator", ADMIN).await);

    // Default mode: an upload (window from 24 h), a transcript kept indefinitely with its
    // linked inputs, and its intermediate (window from 48 h).
    let (plain, plain_key) = app.account_with(json!({"name": "plain"})).await;
    app.upload(&plain_key, b"MARKER-AUDIO").await;
    app.completed_transcript(&plain_key).await;
    let page = get_page(
        &app,
        &format!("/dashboard/timeline?account={plain}"),
        Some(&operator),
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    let html = page.text().await.expect("body");
    assert_eq!(
        stat(&html, "upcoming-total"),
        2,
        "the upload and the intermediate"
    );
    assert_eq!(
        stat(&html, "unscheduled"),
        3,
        "the transcript, its audio URL and its prompt"
    );
    assert_eq!(stat(&html, "due-now"), 0);
    assert_eq!(stat(&html, "held"), 0);
    let next = |kind: &str| {
        regex::Regex::new(&format!(
            r"<td>([0-9-]+ [0-9:]+ UTC)<br><span class=.muted.>[^<]*</span></td><td>[^<]*</td><td>{kind}</td>"
        ))
        .expect("regex")
        .captures(&html)
        .map(|c| c[1].to_owned())
        .unwrap_or_else(|| panic!("no {kind} among the next deletions: {html}"))
    };
    assert_eq!(
        next("uploaded_audio"),
        "2026-03-12 09:00:00 UTC",
        "24 h after upload"
    );
    assert_eq!(
        next("intermediate"),
        "2026-03-13 09:00:00 UTC",
        "48 h after creation"
    );

    // A TTL account's transcript made from an upload, under a legal hold: its upload too
    // is held, nothing of it is upcoming; past its time, the other transcript is due now.
    let (ttl, ttl_key) = app.account_with(json!({"name": "ttl"})).await;
    put_retention(&app, &ttl_key, json!({"transcript_ttl_seconds": 3600})).await;
    let url = app.upload(&ttl_key, b"MARKER-AUDIO").await;
    let held = app
        .create_transcript(&ttl_key, json!({"audio_url": url}))
        .await["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let response = app
        .internal(
            Method::POST,
            &format!("/internal/v1/transcripts/{held}/processing"),
        )
        .send()
        .await
        .expect("request");
    assert_eq!(response.status(), StatusCode::OK);
    app.complete(&held).await;
    hold(
        &app,
        json!({"account_id": ttl, "transcript_id": held, "reason": "matter"}),
    )
    .await;
    app.completed_transcript(&ttl_key).await;
    app.advance(Duration::minutes(90));
    let page = get_page(
        &app,
        &format!("/dashboard/timeline?account={ttl}"),
        Some(&operator),
    )
    .await;
    let html = page.text().await.expect("body");
    assert_eq!(
        stat(&html, "held"),
        2,
        "the held transcript and its upload: {html}"
    );
    assert_eq!(
        stat(&html, "due-now"),
        4,
        "the other transcript, past its TTL"
    );
    assert_eq!(stat(&html, "upcoming-total"), 0);
    assert!(!html.contains(&held), "nothing held is listed as upcoming");
}
