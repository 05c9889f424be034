//! The dashboard's pages as server-rendered HTML (maud escapes every value). No script:
//! every page, form and link works without JavaScript; the style sheet is inline.

use chrono::{DateTime, Duration, Utc};
use maud::{html, Markup, PreEscaped, DOCTYPE};
use uuid::Uuid;

use super::chart::{colour, timeline_svg};
use super::session::Role;
use crate::domain::{Account, ArtifactKind, LegalHold, Mode};
use crate::engine::dashboard::{
    DeletionTimeline, HistogramLag, LagSummary, OperationsView, RecentDeletions,
};
use crate::receipts::Receipt;

const CSS: &str = r#"
*{box-sizing:border-box}
body{margin:0;font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1d2433;background:#f5f6f8}
header{display:flex;flex-wrap:wrap;align-items:center;gap:.5rem 1.5rem;padding:.6rem 1.5rem;background:#1d2433;color:#fff}
header a{color:#fff;text-decoration:none}
header .brand{font-weight:700;letter-spacing:.02em}
header nav{display:flex;flex-wrap:wrap;gap:.25rem}
header nav a{padding:.25rem .6rem;border-radius:4px}
header nav a.current,header nav a:hover{background:#3a4660}
header nav .sep{color:#8a93a6;padding:.25rem .2rem}
header .who{margin-left:auto;display:flex;gap:.75rem;align-items:center;font-size:.9em;color:#c8cfdd}
header .who button{background:#3a4660;color:#fff;border:0;border-radius:4px;padding:.3rem .7rem;cursor:pointer}
main{max-width:1180px;margin:0 auto;padding:1rem 1.5rem 3rem}
h1{font-size:1.5rem;margin:.6rem 0 1rem}
h2{font-size:1.15rem;margin:1.6rem 0 .5rem}
section{background:#fff;border:1px solid #dde1e8;border-radius:6px;padding:.8rem 1.1rem;margin:0 0 1rem}
table{border-collapse:collapse;width:100%;font-size:.92em}
th,td{text-align:left;padding:.35rem .5rem;border-bottom:1px solid #e7e9ee;vertical-align:top}
th{background:#f0f2f5;font-weight:600}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
code,.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:.88em}
.muted{color:#5d6677}
.badge{display:inline-block;padding:.05rem .5rem;border-radius:999px;background:#e3e8f3;font-weight:600;font-size:.85em}
.badge.warn{background:#fde2e1;color:#8a1c14}
.badge.ok{background:#dff3e4;color:#17612c}
.error{background:#fde2e1;border:1px solid #f2b8b5;color:#8a1c14;padding:.6rem .9rem;border-radius:6px;margin:0 0 1rem}
.stats{display:flex;flex-wrap:wrap;gap:.75rem;margin:.3rem 0 .8rem}
.stat{background:#f0f2f5;border-radius:6px;padding:.4rem .8rem;min-width:9rem}
.stat b{display:block;font-size:1.25rem}
.legend{display:flex;flex-wrap:wrap;gap:.3rem 1rem;margin:.4rem 0;font-size:.9em}
.swatch{display:inline-block;width:.8em;height:.8em;border-radius:2px;margin-right:.3em;vertical-align:-.05em}
.chart{max-width:760px;display:block}
.chart .grid{stroke:#e3e6eb}
.chart .axis{stroke:#5d6677}
.chart .tick,.chart .caption{font-size:11px;fill:#5d6677}
.chart .total{font-size:11px;font-weight:600;fill:#1d2433}
form.inline{display:flex;flex-wrap:wrap;gap:.5rem;align-items:center}
input[type=text],input[type=password]{padding:.4rem .55rem;border:1px solid #b9c0cc;border-radius:4px;font:inherit;min-width:22rem}
button{font:inherit}
form button[type=submit]{background:#2f5dba;color:#fff;border:0;border-radius:4px;padding:.4rem .9rem;cursor:pointer}
fieldset{border:0;padding:0;margin:0 0 .8rem}
fieldset label{display:block;margin:.2rem 0}
.signin{max-width:34rem;margin:3rem auto}
pre{background:#f0f2f5;padding:.8rem;border-radius:6px;overflow:auto;font-size:.8em;max-height:32rem}
"#;

/// Which page of the navigation is shown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tab {
    Policy,
    Timeline,
    Deletions,
    Operations,
    Accounts,
    Other,
}

/// Who is looking, and at which account.
pub struct Nav<'a> {
    pub role: Role,
    pub account: Option<&'a Account>,
    pub current: Tab,
}

impl Nav<'_> {
    /// A dashboard link, naming the account for an operator (a customer's is implied).
    pub fn link(&self, path: &str) -> String {
        link(self.role, self.account.map(|a| a.id), path)
    }

    fn is_operator(&self) -> bool {
        self.role == Role::Operator
    }
}

pub fn link(role: Role, account: Option<Uuid>, path: &str) -> String {
    match (role, account) {
        (Role::Operator, Some(id)) => format!("{path}?account={id}"),
        _ => path.to_owned(),
    }
}

// ---- formatting -------------------------------------------------------------------

pub fn when(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

/// A duration for people: `2 h 5 min`, `3 d 4 h`, `45 s`.
pub fn span(d: Duration) -> String {
    let s = d.num_seconds().unsigned_abs();
    let (days, hours, minutes, seconds) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    let two = |a: u64, ua: &str, b: u64, ub: &str| match b {
        0 => format!("{a} {ua}"),
        _ => format!("{a} {ua} {b} {ub}"),
    };
    if days > 0 {
        two(days, "d", hours, "h")
    } else if hours > 0 {
        two(hours, "h", minutes, "min")
    } else if minutes > 0 {
        two(minutes, "min", seconds, "s")
    } else {
        format!("{seconds} s")
    }
}

/// `in 2 h` or `3 min ago`, from `now`.
pub fn relative(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    if (t - now).num_seconds() == 0 {
        "now".to_owned()
    } else if t > now {
        format!("in {}", span(t - now))
    } else {
        format!("{} ago", span(now - t))
    }
}

/// A bucket boundary's offset from now: `+6h`, `+90m`.
pub fn hours_label(now: DateTime<Utc>, t: DateTime<Utc>) -> String {
    let minutes = (t - now).num_minutes();
    if minutes % 60 == 0 {
        format!("+{}h", minutes / 60)
    } else {
        format!("+{minutes}m")
    }
}

/// A TTL as set: `2 hours (7200 s)`.
pub fn ttl(d: Duration) -> String {
    let s = d.num_seconds();
    let unit = |n: i64, one: &str| format!("{n} {one}{}", if n == 1 { "" } else { "s" });
    let text = if s % 86_400 == 0 && s >= 2 * 86_400 {
        unit(s / 86_400, "day")
    } else if s % 3600 == 0 {
        unit(s / 3600, "hour")
    } else if s % 60 == 0 {
        unit(s / 60, "minute")
    } else {
        unit(s, "second")
    };
    format!("{text} ({s} s)")
}

/// Seconds of lag: `0.250 s`, `12.4 s`, `3 min 2 s`.
pub fn lag(seconds: f64) -> String {
    if seconds.abs() < 1.0 {
        format!("{seconds:.3} s")
    } else if seconds.abs() < 60.0 {
        format!("{seconds:.1} s")
    } else {
        span(Duration::milliseconds((seconds * 1000.0) as i64))
    }
}

pub fn bytes(n: i64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

// ---- the frame --------------------------------------------------------------------

pub fn layout(title: &str, nav: Option<&Nav>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta name="referrer" content="same-origin";
                title { (title) " · Lethe dashboard" }
                style { (PreEscaped(CSS)) }
            }
            body {
                header {
                    a.brand href="/dashboard" { "Lethe · retention dashboard" }
                    @if let Some(nav) = nav {
                        (navigation(nav))
                        div.who {
                            @match nav.role {
                                Role::Operator => span { "Signed in as " b { "operator" } },
                                Role::Customer(_) => span {
                                    "Signed in as account "
                                    b { (nav.account.map(|a| a.name.as_str()).unwrap_or("")) }
                                },
                            }
                            form method="post" action="/dashboard/sign-out" {
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

fn navigation(nav: &Nav) -> Markup {
    let tab = |t: Tab, path: &str, label: &str| {
        html! { a.current[nav.current == t] href=(nav.link(path)) { (label) } }
    };
    html! {
        nav aria-label="Dashboard" {
            @if nav.is_operator() {
                a.current[nav.current == Tab::Operations] href="/dashboard/operations" { "Operations" }
                a.current[nav.current == Tab::Accounts] href="/dashboard/accounts" { "Accounts" }
                @if let Some(account) = nav.account {
                    span.sep { "›" }
                    span.sep { (account.name) }
                }
            }
            @if nav.account.is_some() {
                (tab(Tab::Policy, "/dashboard/account", "Policy"))
                (tab(Tab::Timeline, "/dashboard/timeline", "Upcoming deletions"))
                (tab(Tab::Deletions, "/dashboard/deletions", "Recent deletions"))
            }
        }
    }
}

// ---- pages --------------------------------------------------------------------------

pub fn sign_in(error: Option<&str>, operator: bool) -> Markup {
    let body = html! {
        div.signin {
            @if let Some(error) = error {
                p.error role="alert" { (error) }
            }
            section {
                form method="post" action="/dashboard/sign-in" {
                    fieldset {
                        legend { "Sign in as" }
                        label {
                            input type="radio" name="role" value="customer" checked[!operator];
                            " a customer, with your account's API key"
                        }
                        label {
                            input type="radio" name="role" value="operator" checked[operator];
                            " an operator, with the admin token"
                        }
                    }
                    p {
                        label for="secret" { "API key or admin token" }
                        br;
                        input #secret type="password" name="secret" required autocomplete="off" autofocus;
                    }
                    button type="submit" { "Sign in" }
                }
                p.muted {
                    "The key is checked once and never stored: the session lasts one hour and "
                    "holds only a random id."
                }
            }
        }
    };
    layout("Sign in", None, body)
}

pub fn error(nav: Option<&Nav>, title: &str, message: &str) -> Markup {
    layout(
        title,
        nav,
        html! {
            p.error role="alert" { (message) }
            p { a href="/dashboard" { "Back to the dashboard" } }
        },
    )
}

fn mode_text(account: &Account) -> String {
    let s = &account.settings;
    match s.mode() {
        Mode::Ttl => format!(
            "Transcripts, and everything linked to them (audio URLs, text inputs, intermediates, speech understanding results), are deleted {} after they complete; uploaded audio {} after upload.",
            s.transcript_ttl.map(ttl).unwrap_or_default(),
            ttl(s.upload_ttl)
        ),
        Mode::Baa => format!(
            "A BAA is executed: transcripts and everything linked to them are deleted 72 hours after they complete; uploaded audio {} after upload.",
            ttl(s.upload_ttl)
        ),
        Mode::Default => "No transcript TTL is set: uploaded audio is deleted 24 to 48 hours after upload and intermediates 48 to 72 hours after creation; transcripts (and what is linked to them) are kept until you delete them, unless the operator set a platform-wide retention.".to_owned(),
        Mode::Zdr => "Zero data retention: no content of this account is ever stored; only usage metadata is kept, for billing.".to_owned(),
    }
}

fn holds_table(holds: &[&LegalHold], operator: bool, now: DateTime<Utc>) -> Markup {
    html! {
        @if holds.is_empty() {
            p.muted { "No legal hold is active." }
        } @else {
            table.holds {
                thead { tr {
                    th { "Hold" } th { "Covers" }
                    @if operator { th { "Account" } th { "Reason" } }
                    th { "Since" }
                } }
                tbody {
                    @for h in holds {
                        tr {
                            td.id { (h.id) }
                            td {
                                @match h.transcript_id {
                                    Some(t) => { "transcript " span.id { (t) } " and the upload it was made from, if any" },
                                    None => "the whole account",
                                }
                            }
                            @if operator {
                                td { a.id href=(link(Role::Operator, Some(h.account_id), "/dashboard/account")) { (h.account_id) } }
                                td { (h.reason) }
                            }
                            td { (when(h.created_at)) br; span.muted { (relative(now, h.created_at)) } }
                        }
                    }
                }
            }
        }
    }
}

pub fn policy(nav: &Nav, account: &Account, now: DateTime<Utc>) -> Markup {
    let s = &account.settings;
    let since = account
        .history
        .iter()
        .find(|r| r.version == account.policy_version)
        .map(|r| r.since);
    let holds: Vec<&LegalHold> = account
        .holds
        .iter()
        .filter(|h| h.released_at.is_none())
        .collect();
    let body = html! {
        section #policy {
            h2 { "Retention policy" }
            p { "Mode " span.badge #mode { (s.mode().as_str()) } }
            p #mode-text { (mode_text(account)) }
            table.settings {
                tbody {
                    tr { th { "Account" } td { (account.name) " " span.id.muted { (account.id) } } }
                    tr { th { "Transcript TTL" } td #transcript-ttl {
                        @match s.transcript_ttl { Some(d) => (ttl(d)), None => "not set" }
                    } }
                    tr { th { "Upload TTL" } td #upload-ttl { (ttl(s.upload_ttl)) } }
                    tr { th { "BAA executed" } td { (yes_no(s.baa)) } }
                    tr { th { "Region" } td { (s.region.as_str()) } }
                    tr { th { "Model training opt-out" } td { (yes_no(s.model_training_opt_out)) } }
                    tr { th { "Zero data retention" } td { (yes_no(s.zero_data_retention)) } }
                    tr { th { "Policy version" } td {
                        (account.policy_version)
                        @if let Some(since) = since { ", in force since " (when(since)) }
                    } }
                }
            }
        }
        section #holds {
            h2 { "Legal holds" }
            p.muted { "While a hold is active, nothing it covers is deleted, by schedule or on request." }
            (holds_table(&holds, nav.is_operator(), now))
        }
        section #retention-change {
            h2 { "Retention change in progress" }
            @match &account.retention_job {
                None => p.muted { "None: every existing artifact has the schedule of the policy in force." },
                Some(job) => {
                    p {
                        "Policy version " b { (job.target_version) } " is being applied to existing artifacts since "
                        (when(job.started_at)) " (" (relative(now, job.started_at)) "): "
                        (job.examined) " examined, " (job.rescheduled) " given an earlier deletion so far. "
                        "Reads already apply it: nothing is served past its new deadline meanwhile."
                    }
                }
            }
        }
    };
    layout("Policy and mode", Some(nav), body)
}

fn legend(totals: &[u64]) -> Markup {
    html! {
        div.legend {
            @for (k, kind) in ArtifactKind::ALL.iter().enumerate() {
                span {
                    span.swatch style={"background:" (colour(k))} {}
                    (kind.as_str()) " (" (totals.get(k).copied().unwrap_or(0)) ")"
                }
            }
        }
    }
}

pub fn timeline(nav: &Nav, timeline: &DeletionTimeline) -> Markup {
    let totals = timeline.kind_totals();
    let kinds: Vec<usize> = (0..ArtifactKind::ALL.len())
        .filter(|k| totals[*k] > 0)
        .collect();
    let now = timeline.now;
    let body = html! {
        section {
            div.stats {
                div.stat #upcoming-total { b { (timeline.total()) } "in the next " (span(timeline.end() - now)) }
                div.stat #due-now { b { (timeline.due_now) } "due now (the next sweep)" }
                div.stat #held { b { (timeline.held) } "held by a legal hold" }
                div.stat #later { b { (timeline.later) } "later" }
                div.stat #unscheduled { b { (timeline.unscheduled) } "no deletion time yet" }
            }
            (timeline_svg(timeline))
            (legend(&totals))
            @if timeline.truncated {
                p.error { "Only the first " (timeline.examined) " live artifacts were examined." }
            }
        }
        section {
            h2 { "By period" }
            table #buckets {
                thead { tr {
                    th { "From" } th { "To" }
                    @for k in &kinds { th.num { (ArtifactKind::ALL[*k].as_str()) } }
                    th.num { "total" }
                } }
                tbody {
                    @for b in &timeline.buckets {
                        tr {
                            td { (when(b.start)) } td { (when(b.end)) }
                            @for k in &kinds { td.num { (b.counts[*k]) } }
                            td.num { (b.total()) }
                        }
                    }
                }
            }
        }
        section {
            h2 { "Next deletions" }
            @if timeline.soonest.is_empty() {
                p.muted { "Nothing is scheduled for deletion in this period." }
            } @else {
                table #soonest {
                    thead { tr {
                        th { "Deletion begins" } th { "Deadline" } th { "Kind" } th { "Transcript" } th { "Artifact" }
                    } }
                    tbody {
                        @for d in &timeline.soonest {
                            tr {
                                td { (when(d.delete_after)) br; span.muted { (relative(now, d.delete_after)) } }
                                td { @if let Some(by) = d.delete_by { (when(by)) } @else { "—" } }
                                td { (d.kind.as_str()) }
                                td.id { @if let Some(t) = d.transcript_id { (t) } @else { "—" } }
                                td.id { (d.artifact_id) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Upcoming deletions", Some(nav), body)
}

fn lag_stats(summary: &LagSummary) -> Markup {
    html! {
        div.stats.lag {
            div.stat { b { (lag(summary.p50)) } "p50" }
            div.stat { b { (lag(summary.p90)) } "p90" }
            div.stat { b { (lag(summary.p99)) } "p99" }
            div.stat { b { (lag(summary.max)) } "max" }
            div.stat { b { (summary.count) } "deletions measured" }
        }
    }
}

pub fn deletions(nav: &Nav, recent: &RecentDeletions) -> Markup {
    let body = html! {
        section {
            h2 { "Deletion lag" }
            p.muted { "From the moment deletion may begin (delete_after) to the deletion, for deletions on schedule (ttl, window)." }
            @match &recent.lag {
                Some(l) => (lag_stats(l)),
                None => p.muted { "No scheduled deletion yet." },
            }
        }
        section {
            h2 { "Recent deletions" }
            @if recent.tombstones.is_empty() {
                p.muted { "Nothing has been deleted yet." }
            } @else {
                table #deletions {
                    thead { tr {
                        th { "Deleted at" } th { "Kind" } th { "Reason" } th { "Transcript" } th { "Receipt" }
                        th.num { "Size" } th { "Scheduled" } th.num { "Lag" }
                    } }
                    tbody {
                        @for t in &recent.tombstones {
                            tr {
                                td { (when(t.deleted_at)) }
                                td { (t.kind.as_str()) }
                                td { (t.reason.as_str()) }
                                td.id { @if let Some(id) = t.transcript_id { (id) } @else { "—" } }
                                td {
                                    @if let Some(id) = t.transcript_id {
                                        a.receipt href=(nav.link(&format!("/dashboard/receipts/{id}"))) { "receipt" }
                                    } @else { span.muted { "—" } }
                                }
                                td.num { (bytes(t.size_bytes)) }
                                td {
                                    @if let Some(after) = t.delete_after { (when(after)) } @else { "—" }
                                    @if let Some(by) = t.delete_by { br; span.muted { "deadline " (when(by)) } }
                                }
                                td.num {
                                    @if let Some(l) = crate::engine::deletion::lag_seconds(t) { (lag(l)) } @else { "—" }
                                }
                            }
                        }
                    }
                }
                @if recent.truncated {
                    p.error { "Only the first " (recent.examined) " tombstones were examined." }
                }
            }
            p.muted {
                "A receipt proves each deletion: every tombstone with its inclusion proof in a signed "
                "checkpoint of the deletion log. Programs fetch it with "
                code { "GET /v2/transcript/{transcript_id}/receipt" } " and check it offline with "
                code { "lethe receipt verify" } "."
            }
        }
    };
    layout("Recent deletions", Some(nav), body)
}

pub fn receipt(nav: &Nav, receipt: &Receipt, json: &str) -> Markup {
    let download = format!(
        "{}{}download=1",
        nav.link(&format!("/dashboard/receipts/{}", receipt.transcript_id)),
        if nav.is_operator() { "&" } else { "?" }
    );
    let body = html! {
        section {
            table #receipt {
                tbody {
                    tr { th { "Transcript" } td.id { (receipt.transcript_id) } }
                    tr { th { "Deleted artifacts" } td { (receipt.artifacts.len()) } }
                    tr { th { "Log" } td { code { (receipt.log_origin) } " (key " code { (receipt.key_name) } ")" } }
                    tr { th { "Checkpoint" } td { "tree size " (receipt.tree_size) ", root " code { (receipt.root_hash) } } }
                }
            }
            h2 { "Artifacts" }
            table {
                thead { tr { th { "Artifact" } th { "Kind" } th { "Reason" } th { "Deleted at" } th.num { "Leaf" } } }
                tbody {
                    @for a in &receipt.artifacts {
                        tr {
                            td.id { (a.artifact_id) } td { (a.kind) } td { (a.reason) }
                            td { (when(a.deleted_at)) } td.num { (a.leaf_index) }
                        }
                    }
                }
            }
            p {
                a #download href=(download) { "Download the receipt (JSON)" }
                " · verify it offline with "
                code { "lethe receipt verify receipt.json --public-key lethe-log.pem" }
                ", with the log's public key from "
                code { "GET /v2/retention/public-key" } "."
            }
            pre { (json) }
        }
    };
    layout("Deletion receipt", Some(nav), body)
}

fn account_picker(selected: Option<Uuid>) -> Markup {
    html! {
        form.inline method="get" action="/dashboard/account" {
            label for="account" { "Account id" }
            input #account type="text" name="account" required
                value=[selected.map(|id| id.to_string())] placeholder="0190…";
            button type="submit" { "Open" }
        }
    }
}

fn histogram_stats(h: &HistogramLag) -> Markup {
    let bound = |b: Option<f64>| match b {
        Some(b) => format!("≤ {}", lag(b)),
        None => "above the largest bucket".to_owned(),
    };
    html! {
        div.stats.lag {
            div.stat { b { (bound(h.p50)) } "p50" }
            div.stat { b { (bound(h.p90)) } "p90" }
            div.stat { b { (bound(h.p99)) } "p99" }
            div.stat { b { (h.count) } "deletions measured" }
        }
    }
}

pub fn operations(nav: &Nav, view: &OperationsView, last_pass: Option<&LagSummary>) -> Markup {
    let now = view.now;
    let holds: Vec<&LegalHold> = view.holds.iter().collect();
    let body = html! {
        section {
            h2 { "Open an account" }
            (account_picker(None))
            p.muted { "Or pick one from the " a href="/dashboard/accounts" { "list of accounts" } "." }
        }
        section #overdue {
            h2 {
                "Overdue artifacts "
                @if view.overdue.is_empty() { span.badge.ok { "none" } }
                @else { span.badge.warn { (view.overdue.len()) @if view.overdue_more { "+" } } }
            }
            p.muted { "Past their deadline (delete_by) and not deleted: an operational incident." }
            @if !view.overdue.is_empty() {
                table {
                    thead { tr {
                        th { "Artifact" } th { "Account" } th { "Kind" } th { "State" } th { "Deadline" } th { "Late by" }
                    } }
                    tbody {
                        @for a in &view.overdue {
                            tr {
                                td.id { (a.id) }
                                td { a.id href=(link(Role::Operator, Some(a.account_id), "/dashboard/account")) { (a.account_id) } }
                                td { (a.kind.as_str()) }
                                td { (a.state.as_str()) @if a.claimed_by.as_deref() == Some(crate::domain::HOLD_OWNER) { " (held)" } }
                                td { @if let Some(by) = a.delete_by { (when(by)) } }
                                td { @if let Some(by) = a.delete_by { (span(now - by)) } }
                            }
                        }
                    }
                }
            }
        }
        section #lag {
            h2 { "Deletion lag" }
            p.muted { "From delete_after to the deletion, for deletions on schedule." }
            h3 { "Last sweep pass of this instance (exact)" }
            @match last_pass {
                Some(l) => (lag_stats(l)),
                None => p.muted { "No scheduled deletion in the last pass of this instance." },
            }
            h3 { "Since this instance started (histogram buckets)" }
            @match &view.lag_histogram {
                Some(h) => (histogram_stats(h)),
                None => p.muted { "No scheduled deletion since this instance started." },
            }
        }
        section #sweeps {
            h2 { "Recent sweeps" }
            @if view.sweeps.is_empty() {
                p.muted { "No sweep has run yet." }
            } @else {
                table {
                    thead { tr {
                        th { "Started" } th { "State" } th.num { "Duration" } th.num { "Examined" } th.num { "Deleted" }
                        th.num { "Overdue" } th.num { "Failed" } th { "Instance" }
                    } }
                    tbody {
                        @for s in &view.sweeps {
                            tr {
                                td { (when(s.started_at)) }
                                td { (s.state.as_str())
                                     @if s.truncated { " (stopped at its bound)" } }
                                td.num { (lag(s.duration().num_milliseconds() as f64 / 1000.0)) }
                                td.num { (s.examined) } td.num { (s.deleted) }
                                td.num { (s.overdue) } td.num { (s.failed) }
                                td.id { (s.instance) }
                            }
                        }
                    }
                }
            }
        }
        section #holds {
            h2 { "Legal holds" @if view.holds_more { " (first " (view.holds.len()) ")" } }
            (holds_table(&holds, true, now))
        }
        section #retention-changes {
            h2 { "Retention changes in progress" }
            @if view.retention_changes.is_empty() {
                p.muted { "None." }
            } @else {
                table {
                    thead { tr { th { "Account" } th.num { "Policy version" } th { "Since" } th.num { "Examined" } th.num { "Rescheduled" } } }
                    tbody {
                        @for a in &view.retention_changes {
                            @if let Some(job) = &a.retention_job {
                                tr {
                                    td { a href=(link(Role::Operator, Some(a.id), "/dashboard/account")) { (a.name) } " " span.id.muted { (a.id) } }
                                    td.num { (job.target_version) }
                                    td { (when(job.started_at)) }
                                    td.num { (job.examined) } td.num { (job.rescheduled) }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    layout("Operations", Some(nav), body)
}

pub fn accounts(
    nav: &Nav,
    accounts: &[Account],
    next: Option<Uuid>,
    notice: Option<&str>,
) -> Markup {
    let body = html! {
        @if let Some(notice) = notice { p.muted { (notice) } }
        section {
            (account_picker(None))
        }
        section {
            @if accounts.is_empty() {
                p.muted { "No account here." }
            } @else {
                table #accounts {
                    thead { tr { th { "Account" } th { "Id" } th { "Mode" } th.num { "Holds" } th { "Retention change" } } }
                    tbody {
                        @for a in accounts {
                            tr {
                                td { a href=(link(Role::Operator, Some(a.id), "/dashboard/account")) { (a.name) } }
                                td.id { (a.id) }
                                td { span.badge { (a.settings.mode().as_str()) } }
                                td.num { (a.holds.iter().filter(|h| h.released_at.is_none()).count()) }
                                td { @if a.retention_job.is_some() { "in progress" } @else { "—" } }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = next {
                p { a href={"/dashboard/accounts?after=" (next)} { "Next page" } }
            }
        }
    };
    layout("Accounts", Some(nav), body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(span(Duration::seconds(45)), "45 s");
        assert_eq!(span(Duration::seconds(7500)), "2 h 5 min");
        assert_eq!(span(Duration::hours(76)), "3 d 4 h");
        assert_eq!(ttl(Duration::hours(2)), "2 hours (7200 s)");
        assert_eq!(ttl(Duration::days(30)), "30 days (2592000 s)");
        assert_eq!(lag(0.25), "0.250 s");
        assert_eq!(lag(125.0), "2 min 5 s");
        let now = DateTime::<Utc>::UNIX_EPOCH;
        assert_eq!(relative(now, now), "now");
        assert_eq!(relative(now, now + Duration::hours(1)), "in 1 h");
        assert_eq!(relative(now, now - Duration::minutes(3)), "3 min ago");
    }

    #[test]
    fn values_are_escaped() {
        let page = error(None, "Oops", "<script>alert(1)</script>").into_string();
        assert!(!page.contains("<script>"));
        assert!(page.contains("&lt;script&gt;"));
    }
}
