//! PII detection and redaction for Lethe's training-data exports.
//!
//! Exported files "undergo a redaction process designed to redact personally
//! identifiable information before any remaining data is used for model
//! training". This module finds *structured* PII in free text and replaces each
//! finding with an entity tag such as `[EMAIL_ADDRESS]`:
//!
//! * e-mail addresses, written (`jane.doe@example.com`) or spoken the way
//!   transcripts spell them (`jane dot doe at example dot com`);
//! * phone numbers (North American and international, written with the usual
//!   separators, or spoken as ten or more digit words);
//! * payment-card numbers (13–19 digits in card groupings that pass Luhn);
//! * US social security numbers (`AAA-GG-SSSS` with dashes, spaces or dots;
//!   nine bare digits only next to "social security"/"SSN");
//! * IPv4 and IPv6 addresses;
//! * URLs that carry credentials: userinfo (`https://user:pass@host/`) or a
//!   credential/signature query parameter (presigned S3/GCS URLs, Azure SAS,
//!   `access_token=`, `api_key=`, ...). Plain URLs are left alone.
//!
//! Rules are tuned for precision as much as recall: a false positive destroys
//! training text, so numbers that merely look numeric (prices, years, dates,
//! times, order numbers, versions, ZIP codes) are rejected by boundary and
//! shape checks.
//!
//! For transcripts (AssemblyAI result shape) [`redact_transcript`] redacts the
//! `text` fields and, per word list, replaces the text of every word that
//! overlaps a finding with the tag, keeping timings, and reports the
//! `(start_ms, end_ms)` ranges of the redacted words so audio can be muted.
//!
//! Not detected: names, street addresses, dates of birth, free-form IDs and any
//! PII that has no fixed shape. Those need a statistical model.

use regex::{Captures, Regex};
use serde_json::{Map, Value};
use std::net::Ipv6Addr;
use std::sync::LazyLock;

/// The kind of PII a [`Finding`] holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Entity {
    EmailAddress,
    PhoneNumber,
    CreditCardNumber,
    UsSocialSecurityNumber,
    IpAddress,
    UrlWithCredentials,
}

impl Entity {
    /// The tag that replaces a finding of this entity.
    pub fn tag(self) -> &'static str {
        match self {
            Entity::EmailAddress => "[EMAIL_ADDRESS]",
            Entity::PhoneNumber => "[PHONE_NUMBER]",
            Entity::CreditCardNumber => "[CREDIT_CARD_NUMBER]",
            Entity::UsSocialSecurityNumber => "[US_SOCIAL_SECURITY_NUMBER]",
            Entity::IpAddress => "[IP_ADDRESS]",
            Entity::UrlWithCredentials => "[URL_WITH_CREDENTIALS]",
        }
    }

    /// Tie-break between equally long overlapping findings (lower wins).
    fn rank(self) -> u8 {
        match self {
            Entity::UrlWithCredentials => 0,
            Entity::EmailAddress => 1,
            Entity::CreditCardNumber => 2,
            Entity::UsSocialSecurityNumber => 3,
            Entity::PhoneNumber => 4,
            Entity::IpAddress => 5,
        }
    }
}

/// One PII finding: `text[start..end]` (byte offsets) is of kind `entity`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    pub entity: Entity,
    pub start: usize,
    pub end: usize,
}

fn compile(pattern: &str) -> Regex {
    Regex::new(pattern).expect("static PII pattern must compile")
}

macro_rules! pattern {
    ($name:ident, $re:expr) => {
        static $name: LazyLock<Regex> = LazyLock::new(|| compile($re));
    };
}

pattern!(
    EMAIL_RE,
    r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,24}"
);
pattern!(
    SPOKEN_EMAIL_RE,
    r"(?i)\b(?P<local>(?:[a-z0-9]\b(?:\s+[a-z0-9]\b){2,}|[a-z0-9]+)(?:(?:\s+(?:dot|underscore|dash|hyphen|plus)\s+|[._+\-])[a-z0-9]+)*)\s+at(?:\s+(?:sign|symbol))?\s+(?P<domain>[a-z0-9]+(?:(?:\s+(?:dot|dash|hyphen)\s+|[.\-])[a-z0-9]+)+)"
);
pattern!(DOMAIN_DOT_RE, r"(?i)\s+dot\s+|\.");
pattern!(
    EMAIL_CONTEXT_RE,
    r"(?i)\b(?:e-?mail(?:s|ed|ing)?|address|inbox|reach|contact|send|sent|write|mail)\b"
);
// Any scheme: connection strings (postgres://, redis://, amqp://, sftp://...) carry
// credentials as often as web URLs do. A URL without credentials is never a finding.
pattern!(URL_RE, r"(?i)\b[a-z][a-z0-9+.\-]{1,15}://[^\s<>\x22'`]+");
pattern!(
    NANP_RE,
    r"(?:\+?1[ .\-]?)?(?:\(\d{3}\)|\d{3})(?: ?[.\-] ?| )?\d{3}(?: ?[.\-] ?| )?\d{4}"
);
pattern!(INTL_RE, r"\+\d{1,3}(?:[ .\-]?(?:\(\d{1,4}\)|\d{1,5})){1,7}");
pattern!(
    ZERO_PREFIX_RE,
    r"\(0\d{1,4}\)[ .\-]?\d{2,8}(?:[ .\-]\d{2,8}){0,4}|0\d{0,4}(?:[ .\-]\d{2,8}){1,5}"
);
pattern!(SPACED_DIGITS_RE, r"\d(?:,? \d){9,14}");
pattern!(
    DIGIT_WORD_RE,
    r"(?i)\b(?:zero|oh|one|two|three|four|five|six|seven|eight|nine|double|triple)\b"
);
pattern!(DIGIT_GAP_RE, r"^[\s,.\-]{1,3}$");
pattern!(DIGIT_RUN_RE, r"\d+(?:[ \-]\d+)*");
pattern!(SSN_RE, r"\d{3}([ .\-])\d{2}([ .\-])\d{4}|\d{9}");
pattern!(
    SSN_CONTEXT_RE,
    r"(?i)\b(?:social(?:\s+security)?|ssn|ss\s*#|ss\s+number)\b"
);
pattern!(
    ID_CONTEXT_RE,
    r"(?i)\b(?:order|po|invoice|tracking|account|acct|case|ticket|ref(?:erence)?|confirmation|policy|member(?:ship)?|claim|serial|sku|batch|transaction|id|receipt|booking|reservation)\b"
);
pattern!(IPV4_RE, r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}");
pattern!(
    IPV6_RE,
    r"(?i)(?:[0-9a-f]{0,4}:){2,7}(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4})"
);

/// Spoken top-level domains accepted at the end of a spoken e-mail address.
const SPOKEN_TLDS: &str = "\
    com org net edu gov mil int io co uk us ca de fr es nl au nz ie jp cn ru br mx ch se dk \
    fi pl eu info biz ai app dev tv xyz ly gg tech za sg hk kr law";

/// Mail providers: "jane at gmail dot com" needs no further context.
const MAIL_PROVIDERS: &str = "\
    gmail googlemail yahoo ymail hotmail outlook live msn icloud me mac aol protonmail \
    proton pm gmx mail zoho yandex comcast verizon att sbcglobal cox earthlink fastmail hey \
    qq web btinternet rocketmail tutanota";

/// Words that are almost never the local part of a spoken e-mail address
/// ("I bought it at amazon dot com").
const NOT_A_MAILBOX: &str = "\
    i it me us you him her them we they is was are am were be been here there that this \
    what which who look looked looking sign signed log logged up in on online shop shopped \
    shopping order ordered buy bought purchase purchased available sell sold find found \
    visit go went see saw seen check checked stuff things thing something anything \
    everything one all work works worked working listed posted read download downloaded \
    reach contact email home live lives lived stay job jobs apply applied deal deals sale \
    price prices cheaper book booked account now today later then just also only still and \
    or but so do did does get got back out off time meet met hosted registered site page \
    website ticket tickets watch watched not even least right both away over my the a an to \
    from for with via cc uh um yeah yes sure ok okay it's its that's thats of by as your our \
    his their hi hello thanks please like address mail emailed emails send sent write";

/// The previous word that makes a dotted quad a version, not an address.
const VERSION_WORDS: &str = "\
    version ver v build release firmware patch rev revision section chapter clause step \
    item paragraph article rule";

/// Query/fragment parameter names (lower-case) whose value is a credential
/// or a signature.
const SECRET_PARAMS: &str = "\
    sig signature x-amz-signature x-amz-credential x-amz-security-token x-goog-signature \
    x-goog-credential x-goog-security-token googleaccessid awsaccesskeyid token \
    access_token refresh_token id_token auth_token authtoken auth authorization key api_key \
    apikey api-key x-api-key api_token apitoken access_key accesskey secret_key secret \
    client_secret password passwd pwd pass session_token sessiontoken security_token \
    private_token jwt credential credentials sas code_verifier";

// ---------------------------------------------------------------------------
// Small text helpers
// ---------------------------------------------------------------------------

/// Is `word` one of the whitespace-separated words of `list`?
fn listed(list: &str, word: &str) -> bool {
    list.split_whitespace().any(|w| w == word)
}

fn prev_char(text: &str, i: usize) -> Option<char> {
    text[..i].chars().next_back()
}

fn next_char(text: &str, i: usize) -> Option<char> {
    text[i..].chars().next()
}

fn digits_of(s: &str) -> String {
    s.chars().filter(char::is_ascii_digit).collect()
}

/// A number may start at `start`: not glued to a word, an amount, a path or a
/// longer number ("$1,250", "v2", "03/11", "1,555").
fn num_left_ok(text: &str, start: usize) -> bool {
    let mut before = text[..start].chars().rev();
    match before.next() {
        None => true,
        Some(c) if c.is_alphanumeric() || "_$€£¥#@/\\+".contains(c) => false,
        Some(c) if ".,-".contains(c) => !before.next().is_some_and(char::is_alphanumeric),
        Some(':') => !before.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => true,
    }
}

/// A number may end at `end`: not followed by more digits, letters, a percent
/// sign, a decimal part or a time ("1234567890.50", "10:30").
fn num_right_ok(text: &str, end: usize) -> bool {
    let mut after = text[end..].chars();
    match after.next() {
        None => true,
        Some(c) if c.is_alphanumeric() || "_%$€£@/\\".contains(c) => false,
        Some(c) if ".,:-".contains(c) => !after.next().is_some_and(|d| d.is_ascii_digit()),
        Some(_) => true,
    }
}

/// How far (bytes) the context helpers below look: bounded work per candidate.
const WINDOW: usize = 160;

/// The last `n` words before `pos` (with the whitespace around them).
fn words_before(text: &str, pos: usize, n: usize) -> &str {
    let head = &text[text.floor_char_boundary(pos.saturating_sub(WINDOW))..pos];
    let cut = head
        .trim_end()
        .rmatch_indices(char::is_whitespace)
        .nth(n.saturating_sub(1));
    &head[cut.map_or(0, |(i, _)| i)..]
}

/// The first `n` words after `pos`.
fn words_after(text: &str, pos: usize, n: usize) -> &str {
    let tail = &text[pos..text.ceil_char_boundary(pos + WINDOW)];
    let lead = tail.len() - tail.trim_start().len();
    let cut = tail[lead..]
        .match_indices(char::is_whitespace)
        .nth(n.saturating_sub(1));
    &tail[..cut.map_or(tail.len(), |(i, _)| lead + i)]
}

/// The word right before `pos`, lower-cased, without surrounding punctuation.
fn prev_word(text: &str, pos: usize) -> String {
    words_before(text, pos, 1)
        .trim()
        .trim_matches(|c: char| !c.is_alphanumeric())
        .to_lowercase()
}

fn luhn_ok(digits: &str) -> bool {
    let mut sum = 0;
    for (i, b) in digits.bytes().rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum % 10 == 0
}

/// 13–19 digits with a card-network leading digit (2–6) that pass Luhn.
fn card_digits_ok(digits: &str) -> bool {
    (13..=19).contains(&digits.len())
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (b'2'..=b'6').contains(&digits.as_bytes()[0])
        && luhn_ok(digits)
}

/// "1 2 3 4 5 6 7 8 9 0", "nine eight seven ... zero": counting, not a number.
fn is_counting(digits: &str) -> bool {
    let d = digits.as_bytes();
    [1, 9].iter().any(|&step| {
        d.windows(2)
            .all(|w| (w[0] - b'0' + step) % 10 == w[1] - b'0')
    })
}

fn ssn_parts_ok(area: &str, group: &str, serial: &str) -> bool {
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn ssn_context(text: &str, start: usize) -> bool {
    SSN_CONTEXT_RE.is_match(words_before(text, start, 6))
}

/// Runs `re` over `text`. `accept` turns a match into a span or rejects it; a
/// rejected match is retried one character later so that a valid match
/// starting inside it is not lost.
fn scan(
    re: &Regex,
    text: &str,
    mut accept: impl FnMut(&Captures) -> Option<(usize, usize)>,
) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos <= text.len() {
        let Some(caps) = re.captures_at(text, pos) else {
            break;
        };
        let Some(m) = caps.get(0) else { break };
        pos = match accept(&caps) {
            Some(span) => {
                out.push(span);
                span.1.max(m.start() + 1)
            }
            None => m.start() + 1,
        };
        while pos < text.len() && !text.is_char_boundary(pos) {
            pos += 1;
        }
    }
    out
}

fn push_all(out: &mut Vec<Finding>, entity: Entity, spans: Vec<(usize, usize)>) {
    out.extend(
        spans
            .into_iter()
            .map(|(start, end)| Finding { entity, start, end }),
    );
}

// ---------------------------------------------------------------------------
// Detectors
// ---------------------------------------------------------------------------

fn find_written_emails(text: &str, out: &mut Vec<Finding>) {
    let spans = scan(&EMAIL_RE, text, |c| {
        let m = c.get(0)?;
        let mut start = m.start();
        while text[start..].starts_with(['.', '-', '+', '%']) {
            start += 1;
        }
        if text[start..].starts_with('@') {
            return None;
        }
        if next_char(text, m.end()).is_some_and(|c| c.is_alphanumeric() || "_@-".contains(c)) {
            return None;
        }
        Some((start, m.end()))
    });
    push_all(out, Entity::EmailAddress, spans);
}

/// End (relative to `domain`) of the longest prefix of at least two labels
/// whose last label is a known spoken TLD.
fn spoken_domain_end(domain: &str) -> Option<usize> {
    let mut labels = Vec::new();
    let mut label_start = 0;
    for sep in DOMAIN_DOT_RE.find_iter(domain) {
        labels.push((label_start, sep.start()));
        label_start = sep.end();
    }
    labels.push((label_start, domain.len()));
    labels
        .iter()
        .enumerate()
        .skip(1)
        .rev()
        .find(|(_, &(s, e))| listed(SPOKEN_TLDS, &domain[s..e].to_lowercase()))
        .map(|(_, &(_, e))| e)
}

fn find_spoken_emails(text: &str, out: &mut Vec<Finding>) {
    let spans = scan(&SPOKEN_EMAIL_RE, text, |c| {
        let whole = c.get(0)?;
        let local = c.name("local")?;
        let domain = c.name("domain")?;
        if prev_char(text, whole.start()).is_some_and(|p| "'’@.-_".contains(p)) {
            return None;
        }
        let end = domain.start() + spoken_domain_end(domain.as_str())?;
        // A written address already covers "x@y.z"; this rule is for speech.
        let joined = local
            .as_str()
            .contains(|c: char| c.is_whitespace() || "._+-".contains(c));
        let mut start = whole.start();
        if !joined {
            let local_word = local.as_str().to_lowercase();
            if listed(NOT_A_MAILBOX, &local_word) {
                return None;
            }
            let first_label = DOMAIN_DOT_RE
                .split(domain.as_str())
                .next()
                .unwrap_or_default()
                .to_lowercase();
            let context = EMAIL_CONTEXT_RE.is_match(words_before(text, whole.start(), 8))
                || EMAIL_CONTEXT_RE.is_match(words_after(text, end, 5));
            if !listed(MAIL_PROVIDERS, &first_label) && !context {
                return None;
            }
            // "john smith at gmail dot com": speech splits one mailbox into
            // two words; take the previous word too unless it is filler.
            let prev = words_before(text, start, 1);
            let word = prev.trim();
            if prev.ends_with(' ')
                && prev.trim_end().len() + 1 == prev.len()
                && word.bytes().all(|b| b.is_ascii_alphanumeric())
                && !listed(NOT_A_MAILBOX, &word.to_lowercase())
                && !EMAIL_CONTEXT_RE.is_match(word)
            {
                start -= word.len() + 1;
            }
        }
        Some((start, end))
    });
    push_all(out, Entity::EmailAddress, spans);
}

/// Does this URL carry userinfo or a credential/signature param?
fn url_has_credentials(url: &str) -> bool {
    let Some(scheme_end) = url.find("://") else {
        return false;
    };
    let after = &url[scheme_end + 3..];
    let authority_end = after.find(['/', '?', '#']).unwrap_or(after.len());
    if after[..authority_end].rfind('@').is_some_and(|at| at > 0) {
        return true;
    }
    let rest = &after[authority_end..];
    let Some(params_start) = rest.find(['?', '#']) else {
        return false;
    };
    rest[params_start + 1..]
        .split(['&', ';', '?', '#'])
        .any(|pair| {
            pair.split_once('=').is_some_and(|(name, value)| {
                !value.is_empty() && listed(SECRET_PARAMS, &name.to_ascii_lowercase())
            })
        })
}

fn find_credential_urls(text: &str, out: &mut Vec<Finding>) {
    for m in URL_RE.find_iter(text) {
        // Sentence punctuation and an unbalanced closing bracket are not
        // part of the URL.
        let mut url = m.as_str();
        loop {
            let t = url.trim_end_matches(['.', ',', ';', ':', '!', '?', '*']);
            let t = match t.chars().last() {
                Some(c @ (')' | ']')) => {
                    let open = if c == ')' { '(' } else { '[' };
                    let unbalanced = t.matches(open).count() < t.matches(c).count();
                    if unbalanced {
                        &t[..t.len() - 1]
                    } else {
                        t
                    }
                }
                _ => t,
            };
            if t.len() == url.len() {
                break;
            }
            url = t;
        }
        if url_has_credentials(url) {
            out.push(Finding {
                entity: Entity::UrlWithCredentials,
                start: m.start(),
                end: m.start() + url.len(),
            });
        }
    }
}

fn find_written_phones(text: &str, out: &mut Vec<Finding>) {
    let nanp = scan(&NANP_RE, text, |c| {
        let m = c.get(0)?;
        let s = m.as_str();
        let d = digits_of(s);
        let national = match d.len() {
            10 => d.as_str(),
            11 if d.starts_with('1') => &d[1..],
            _ => return None,
        };
        // Without dashes, dots or parentheses the area code must look real.
        let loose = s
            .chars()
            .all(|c| c.is_ascii_digit() || c == ' ' || c == '+');
        if loose && !(b'2'..=b'9').contains(&national.as_bytes()[0]) {
            return None;
        }
        // A bare number labelled as an order/PO/account/... number is an ID.
        if d.len() == s.len() && ID_CONTEXT_RE.is_match(words_before(text, m.start(), 3)) {
            return None;
        }
        (num_left_ok(text, m.start()) && num_right_ok(text, m.end()))
            .then_some((m.start(), m.end()))
    });
    push_all(out, Entity::PhoneNumber, nanp);

    let intl = scan(&INTL_RE, text, |c| {
        let m = c.get(0)?;
        if prev_char(text, m.start()).is_some_and(|p| p.is_alphanumeric() || p == '+') {
            return None;
        }
        let mut end = m.end();
        loop {
            let n = digits_of(&text[m.start()..end]).len();
            if n < 10 {
                return None;
            }
            if n <= 15 {
                break;
            }
            let cut = text[m.start()..end].rfind([' ', '.', '-', '('])?;
            end = m.start() + cut;
        }
        (end < m.end() || num_right_ok(text, end)).then_some((m.start(), end))
    });
    push_all(out, Entity::PhoneNumber, intl);

    let zero = scan(&ZERO_PREFIX_RE, text, |c| {
        let m = c.get(0)?;
        let s = m.as_str();
        let body = match s.find(')') {
            Some(close) => s[close + 1..].trim_start_matches([' ', '.', '-']),
            None => s,
        };
        let mut seps = body.chars().filter(|c| !c.is_ascii_digit());
        let first = seps.next();
        if first.is_some_and(|f| seps.any(|o| o != f)) {
            return None;
        }
        let d = digits_of(s);
        let max = if d.starts_with("00") { 15 } else { 12 };
        ((10..=max).contains(&d.len())
            && num_left_ok(text, m.start())
            && num_right_ok(text, m.end()))
        .then_some((m.start(), m.end()))
    });
    push_all(out, Entity::PhoneNumber, zero);

    let spaced = scan(&SPACED_DIGITS_RE, text, |c| {
        let m = c.get(0)?;
        (num_left_ok(text, m.start())
            && num_right_ok(text, m.end())
            && !is_counting(&digits_of(m.as_str())))
        .then_some((m.start(), m.end()))
    });
    push_all(out, Entity::PhoneNumber, spaced);
}

/// Runs of spoken digit words ("five five five, one two three ...").
/// Ten or more digits are a phone number (or a card if they form one); nine
/// digits next to "social security" are an SSN.
fn find_spoken_digits(text: &str, out: &mut Vec<Finding>) {
    let tokens: Vec<(usize, usize)> = DIGIT_WORD_RE
        .find_iter(text)
        .map(|m| (m.start(), m.end()))
        .collect();
    let mut i = 0;
    while i < tokens.len() {
        let mut j = i;
        while j + 1 < tokens.len() && DIGIT_GAP_RE.is_match(&text[tokens[j].1..tokens[j + 1].0]) {
            j += 1;
        }
        spoken_run(text, &tokens[i..=j], out);
        i = j + 1;
    }
}

fn spoken_run(text: &str, run: &[(usize, usize)], out: &mut Vec<Finding>) {
    let mut run = run;
    // A leading interjection "Oh, ..." is not a zero.
    if run.len() > 1
        && text[run[0].0..run[0].1].eq_ignore_ascii_case("oh")
        && text[run[0].1..run[1].0].contains([',', '.'])
    {
        run = &run[1..];
    }
    const NAMES: [&str; 10] = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine",
    ];
    let mut digits = String::new();
    let (mut repeat, mut last_digit_end) = (1, None);
    for &(s, e) in run {
        match text[s..e].to_ascii_lowercase().as_str() {
            "double" => repeat = 2,
            "triple" => repeat = 3,
            word => {
                // "oh" is the only digit word not in NAMES: a zero.
                let d = NAMES.iter().position(|n| *n == word).unwrap_or(0);
                digits.extend(std::iter::repeat_n(char::from(b"0123456789"[d]), repeat));
                (repeat, last_digit_end) = (1, Some(e));
            }
        }
    }
    let (Some(&(start, _)), Some(end)) = (run.first(), last_digit_end) else {
        return;
    };
    let entity = if digits.len() >= 10 && !is_counting(&digits) {
        if card_digits_ok(&digits) {
            Entity::CreditCardNumber
        } else {
            Entity::PhoneNumber
        }
    } else if digits.len() == 9
        && ssn_parts_ok(&digits[..3], &digits[3..5], &digits[5..])
        && ssn_context(text, start)
    {
        Entity::UsSocialSecurityNumber
    } else {
        return;
    };
    out.push(Finding { entity, start, end });
}

/// Card groupings: one block of 13–19 digits; 4-4-4-4(-1..3) style; Amex
/// 4-6-5 and Diners 4-6-4.
fn card_grouping_ok(lens: &[usize]) -> bool {
    let total: usize = lens.iter().sum();
    match lens {
        [n] => (13..=19).contains(n),
        [4, 6, 5] | [4, 6, 4] => true,
        [init @ .., last] if (4..=5).contains(&lens.len()) => {
            init.iter().all(|&l| l == 4) && (1..=4).contains(last) && total <= 19
        }
        _ => false,
    }
}

fn find_cards(text: &str, out: &mut Vec<Finding>) {
    for m in DIGIT_RUN_RE.find_iter(text) {
        let base = m.start();
        let s = m.as_str();
        // (start, end) of each digit group and the separator that follows it.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut seps: Vec<u8> = Vec::new();
        let mut gs = 0;
        for (i, b) in s.bytes().enumerate() {
            if !b.is_ascii_digit() {
                groups.push((base + gs, base + i));
                seps.push(b);
                gs = i + 1;
            }
        }
        groups.push((base + gs, base + s.len()));
        for i in 0..groups.len() {
            for j in i..groups.len().min(i + 5) {
                let lens: Vec<usize> = groups[i..=j].iter().map(|(a, b)| b - a).collect();
                if !card_grouping_ok(&lens) || seps[i..j].windows(2).any(|w| w[0] != w[1]) {
                    continue;
                }
                let (start, end) = (groups[i].0, groups[j].1);
                let left = if i == 0 {
                    num_left_ok(text, start)
                } else {
                    seps[i - 1] == b' '
                };
                let right = if j + 1 == groups.len() {
                    num_right_ok(text, end)
                } else {
                    seps[j] == b' '
                };
                if left && right && card_digits_ok(&digits_of(&text[start..end])) {
                    out.push(Finding {
                        entity: Entity::CreditCardNumber,
                        start,
                        end,
                    });
                }
            }
        }
    }
}

fn find_ssns(text: &str, out: &mut Vec<Finding>) {
    let spans = scan(&SSN_RE, text, |c| {
        let m = c.get(0)?;
        let s = m.as_str();
        if let (Some(a), Some(b)) = (c.get(1), c.get(2)) {
            if a.as_str() != b.as_str() {
                return None;
            }
        } else if !ssn_context(text, m.start()) {
            return None;
        }
        let d = digits_of(s);
        (ssn_parts_ok(&d[..3], &d[3..5], &d[5..])
            && num_left_ok(text, m.start())
            && num_right_ok(text, m.end()))
        .then_some((m.start(), m.end()))
    });
    push_all(out, Entity::UsSocialSecurityNumber, spans);
}

fn find_ipv4(text: &str, out: &mut Vec<Finding>) {
    let spans = scan(&IPV4_RE, text, |c| {
        let m = c.get(0)?;
        if !m
            .as_str()
            .split('.')
            .all(|o| o.parse::<u16>().is_ok_and(|v| v <= 255))
        {
            return None;
        }
        if prev_char(text, m.start()).is_some_and(|p| p.is_alphanumeric() || "._".contains(p)) {
            return None;
        }
        let mut after = text[m.end()..].chars();
        match after.next() {
            Some(n) if n.is_alphanumeric() || n == '_' => return None,
            Some('.') if after.next().is_some_and(|d| d.is_ascii_digit()) => return None,
            _ => {}
        }
        if listed(VERSION_WORDS, &prev_word(text, m.start())) {
            return None;
        }
        Some((m.start(), m.end()))
    });
    push_all(out, Entity::IpAddress, spans);
}

fn find_ipv6(text: &str, out: &mut Vec<Finding>) {
    let spans = scan(&IPV6_RE, text, |c| {
        let m = c.get(0)?;
        let start = m.start();
        if prev_char(text, start).is_some_and(|p| p.is_alphanumeric() || ":._".contains(p)) {
            return None;
        }
        // "...::1:" at the end of a clause: drop one trailing colon.
        let mut end = m.end();
        let mut candidate = m.as_str();
        if candidate.ends_with(':') && !candidate.ends_with("::") {
            candidate = &candidate[..candidate.len() - 1];
            end -= 1;
        }
        if next_char(text, end).is_some_and(|n| n.is_alphanumeric() || n == '_' || n == ':') {
            return None;
        }
        let groups = candidate.split(':').filter(|g| !g.is_empty()).count();
        (groups >= 2 && candidate.parse::<Ipv6Addr>().is_ok()).then_some((start, end))
    });
    push_all(out, Entity::IpAddress, spans);
}

/// Keeps the longest findings (ties: URL, e-mail, card, SSN, phone, IP) so
/// that no two overlap; returns them sorted by start.
fn resolve(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by(|a, b| {
        (b.end - b.start)
            .cmp(&(a.end - a.start))
            .then(a.entity.rank().cmp(&b.entity.rank()))
            .then(a.start.cmp(&b.start))
    });
    // Kept findings are disjoint, so only the one starting last before
    // `f.end` can overlap `f`.
    let mut kept: std::collections::BTreeMap<usize, Finding> = Default::default();
    for f in candidates {
        let clash = kept
            .range(..f.end)
            .next_back()
            .is_some_and(|(_, k)| k.end > f.start);
        if f.start < f.end && !clash {
            kept.insert(f.start, f);
        }
    }
    kept.into_values().collect()
}

/// Every PII finding in `text`.
pub fn find(text: &str) -> Vec<Finding> {
    let mut candidates = Vec::new();
    find_credential_urls(text, &mut candidates);
    find_written_emails(text, &mut candidates);
    find_spoken_emails(text, &mut candidates);
    find_cards(text, &mut candidates);
    find_ssns(text, &mut candidates);
    find_written_phones(text, &mut candidates);
    find_spoken_digits(text, &mut candidates);
    find_ipv4(text, &mut candidates);
    find_ipv6(text, &mut candidates);
    resolve(candidates)
}

/// `text` with each finding replaced by its tag.
pub fn redact_text(text: &str) -> String {
    let findings = find(text);
    if findings.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for f in findings {
        out.push_str(&text[last..f.start]);
        out.push_str(f.entity.tag());
        last = f.end;
    }
    out.push_str(&text[last..]);
    out
}

fn millis(v: Option<&Value>) -> Option<i64> {
    let v = v?;
    // Rounded, saturating conversion: timings are small non-negative numbers.
    v.as_i64().or_else(|| v.as_f64().map(|f| f.round() as i64))
}

fn redact_text_field(obj: &mut Map<String, Value>) {
    if let Some(Value::String(s)) = obj.get_mut("text") {
        *s = redact_text(s);
    }
}

/// Redacts one AssemblyAI `words` list: joins the word texts with single
/// spaces, finds PII in the joined text and replaces the text of every word
/// overlapping a finding with its tag. Pushes, per finding, the time range
/// from the first redacted word's start to the last one's end.
fn redact_words(words: &mut [Value], ranges: &mut Vec<(i64, i64)>) {
    let mut joined = String::new();
    let mut spans = Vec::with_capacity(words.len());
    for (i, w) in words.iter().enumerate() {
        if i > 0 {
            joined.push(' ');
        }
        let start = joined.len();
        joined.push_str(w.get("text").and_then(Value::as_str).unwrap_or_default());
        spans.push((start, joined.len()));
    }
    for f in find(&joined) {
        let first = spans.partition_point(|&(_, e)| e <= f.start);
        let mut range: Option<(i64, i64)> = None;
        for (idx, &(s, e)) in spans.iter().enumerate().skip(first) {
            if s >= f.end {
                break;
            }
            if e <= f.start {
                continue;
            }
            let Some(word) = words[idx].as_object_mut() else {
                continue;
            };
            word.insert(
                "text".to_string(),
                Value::String(f.entity.tag().to_string()),
            );
            if let (Some(ws), Some(we)) = (millis(word.get("start")), millis(word.get("end"))) {
                range = Some(match range {
                    Some((a, b)) => (a.min(ws), b.max(we)),
                    None => (ws, we),
                });
            }
        }
        ranges.extend(range);
    }
}

fn merge_ranges(mut ranges: Vec<(i64, i64)>) -> Vec<(i64, i64)> {
    ranges.sort_unstable();
    let mut merged: Vec<(i64, i64)> = Vec::with_capacity(ranges.len());
    for (s, e) in ranges {
        match merged.last_mut() {
            Some(last) if s <= last.1 => last.1 = last.1.max(e),
            _ => merged.push((s, e)),
        }
    }
    merged
}

/// A transcript result JSON (AssemblyAI shape: top-level "text": string,
/// "words": [{"text","start","end",...}], "utterances": [{"text", "words":
/// [...], ...}], other fields kept as they are) with PII redacted: "text"
/// fields redacted with [`redact_text`]; in each words list, every word that
/// overlaps a finding in the text made by joining the list's word texts with
/// single spaces gets its "text" replaced by the tag (timings "start"/"end" in
/// milliseconds kept). Returns the redacted value and the sorted, merged
/// (start_ms, end_ms) ranges of redacted words (from top-level "words" and
/// from utterances' "words"). The words of one finding form one range (the
/// silence between them is muted too); overlapping or touching ranges merge.
pub fn redact_transcript(value: &Value) -> (Value, Vec<(i64, i64)>) {
    let mut out = value.clone();
    let mut ranges = Vec::new();
    if let Some(obj) = out.as_object_mut() {
        redact_text_field(obj);
        if let Some(Value::Array(words)) = obj.get_mut("words") {
            redact_words(words, &mut ranges);
        }
        if let Some(Value::Array(utterances)) = obj.get_mut("utterances") {
            for utterance in utterances.iter_mut().filter_map(Value::as_object_mut) {
                redact_text_field(utterance);
                if let Some(Value::Array(words)) = utterance.get_mut("words") {
                    redact_words(words, &mut ranges);
                }
            }
        }
    }
    (out, merge_ranges(ranges))
}

/// Any JSON value: every string inside it (object values and array items,
/// recursively; keys untouched) passed through [`redact_text`].
pub fn redact_json_strings(value: &Value) -> Value {
    match value {
        Value::String(s) => Value::String(redact_text(s)),
        Value::Array(items) => Value::Array(items.iter().map(redact_json_strings).collect()),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), redact_json_strings(v)))
                .collect(),
        ),
        other => other.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::Entity::*;
    use super::*;
    use serde_json::json;

    fn found(text: &str) -> Vec<(Entity, &str)> {
        let findings = find(text);
        findings
            .iter()
            .map(|f| (f.entity, &text[f.start..f.end]))
            .collect()
    }

    /// Each case marks the expected findings with «»; a case without marks
    /// must yield no finding at all.
    fn check(entity: Entity, cases: &[&str]) {
        for case in cases {
            let text = case.replace(['«', '»'], "");
            let got = found(&text);
            let want: Vec<&str> = case
                .split('«')
                .skip(1)
                .filter_map(|p| p.split('»').next())
                .collect();
            assert!(
                want.is_empty() == got.is_empty(),
                "{text:?}: want {want:?}, got {got:?}"
            );
            for w in want {
                assert!(
                    got.contains(&(entity, w)),
                    "{text:?}: want {entity:?} {w:?}, got {got:?}"
                );
            }
        }
    }

    #[test]
    fn emails() {
        check(
            EmailAddress,
            &[
                "Write to «Jane.Doe+news@Example.co.uk».",
                "it's «john dot smith at example dot com», thanks",
                "sure, «jane at gmail dot com»",
                "my email is «raj at acme dot co dot uk» okay",
                "it is «john smith at gmail dot com»",
                "meet me at the station at noon",
                "dot the i's and cross the t's",
                "I bought it at amazon dot com last week",
                "we're at example dot com now",
                "ping @support or reach us at the front desk",
                "jane at acme dot corp",
            ],
        );
    }

    #[test]
    fn phones() {
        check(
            PhoneNumber,
            &[
                "call «(555) 123-4567» now",
                "call «555-123-4567».",
                "call «555.123.4567» or «555 - 123 - 4567»",
                "call «+1 555 123 4567»",
                "London «+44 20 7946 0958».",
                "text «5551234567» please, or «15551234567»",
                "UK «020 7946 0958»",
                "it's «five five five one two three four five six seven» ok",
                "«six one seven, double five two, three four eight nine»",
                "In 2024 we sold 1500 units.",
                "The meeting is at 10:30 on 2024-03-11.",
                "That comes to $1,250.00 total.",
                "Order 48213907 shipped to ZIP 94103-1234.",
                "PO number 4500123456 was rejected.",
                "Count one two three four five six seven eight nine zero.",
                "Call 1-800-FLOWERS.",
                "Amount 5551234567.25 was wrong",
                "Path /v1/5551234567/status",
            ],
        );
    }

    #[test]
    fn cards() {
        check(
            CreditCardNumber,
            &[
                "card «4111 1111 1111 1111» exp 12/27",
                "card «4111-1111-1111-1111».",
                "amex «3782 822463 10005», mc «5555555555554444»",
                "discover «6011 0009 9013 9424»",
                "nineteen «4000 0000 0000 0000 006»",
                "card 4111 1111 1111 1112 was declined",
                "ref 4111111111111112",
                "rooms 4111 4112 4113 4114 are booked",
            ],
        );
        assert!(luhn_ok("4111111111111111") && !luhn_ok("4111111111111112"));
    }

    #[test]
    fn ssns() {
        check(
            UsSocialSecurityNumber,
            &[
                "ssn «123-45-6789».",
                "it is «219 09 9999» or «457.55.5462»",
                "my social security number is «536221234»",
                "ssn 000-12-3456",
                "ssn 666-12-3456",
                "ssn 912-12-3456",
                "ssn 123-00-4567",
                "ssn 123-45-0000",
                "ssn 123-45.6789",
                "tracking 536221234 arrived",
            ],
        );
    }

    #[test]
    fn ips() {
        check(
            IpAddress,
            &[
                "host «10.0.0.1» is down",
                "from «192.168.1.254»:8080",
                "v6 «2001:db8::1» too",
                "link «fe80::1ff:fe23:4567:890a».",
                "mapped «::ffff:192.0.2.128» here",
                "full «2001:0db8:85a3:0000:0000:8a2e:0370:7334»",
                "version 1.2.3 is out",
                "upgrade to v2.0.1.4 today",
                "release 4.1.0.2 shipped",
                "value 300.1.1.1 is invalid",
                "at 10:30:00 sharp",
                "1.2.3.4.5 is not an address",
                "use std::vec::Vec",
                "MAC 00:1A:2B:3C:4D:5E",
            ],
        );
    }

    #[test]
    fn credential_urls() {
        check(UrlWithCredentials, &[
            "see «https://admin:hunter2@intranet.example.com/dash».",
            "see «https://b.s3.amazonaws.com/a.wav?X-Amz-Expires=60&X-Amz-Signature=abc»",
            "see «https://storage.googleapis.com/b/o?X-Goog-Credential=x%2Fy&X-Goog-Signature=ff».",
            "(«https://a.blob.core.windows.net/c/b?sv=2022-11-02&se=2024-03-12&sp=r&sig=Ab%2B»)",
            "see «https://api.example.com/v1?ACCESS_TOKEN=eyJhbGc»!",
            "see «https://app.example.com/cb#access_token=abc&state=1».",
            "see https://example.com/docs?page=2&lang=en.",
            "see https://example.com/search?q=token&keyword=key",
            "see https://example.com/reset?token=",
        ]);
    }

    #[test]
    fn overlaps_prefer_longer() {
        let t = "go to https://bob:pw@10.0.0.1/x and mail bob@example.com";
        let want = [
            (UrlWithCredentials, "https://bob:pw@10.0.0.1/x"),
            (EmailAddress, "bob@example.com"),
        ];
        assert_eq!(found(t), want);
        assert!(find(t).windows(2).all(|w| w[0].end <= w[1].start));
    }

    #[test]
    fn redact_text_replaces_with_tags() {
        let t = "Email jo@example.com or call 555-123-4567, card 4242424242424242.";
        let want = "Email [EMAIL_ADDRESS] or call [PHONE_NUMBER], card [CREDIT_CARD_NUMBER].";
        assert_eq!(redact_text(t), want);
        assert_eq!(redact_text("nothing here"), "nothing here");
    }

    #[test]
    fn transcript_words_ranges_and_utterances() {
        let w = |text: &str, start: i64, end: i64| json!({"text": text, "start": start, "end": end, "confidence": 0.9, "speaker": "A"});
        let words = vec![
            w("Call", 0, 200),
            w("me", 210, 300),
            w("at", 310, 400),
            w("555-123-4567.", 410, 1500),
            w("Email", 1600, 1900),
            w("jane", 2000, 2200),
            w("at", 2250, 2300),
            w("gmail", 2300, 2600),
            w("dot", 2600, 2700),
            w("com.", 2700, 3000),
            w("Thanks.", 3100, 3400),
        ];
        let text = "Call me at 555-123-4567. Email jane at gmail dot com. Thanks.";
        let input = json!({
            "id": "tr_1", "status": "completed", "audio_duration": 4, "text": text,
            "words": words.clone(),
            "utterances": [{"speaker": "A", "start": 0, "end": 3400, "text": text, "words": words}],
        });
        let (out, ranges) = redact_transcript(&input);
        let want_text = "Call me at [PHONE_NUMBER]. Email [EMAIL_ADDRESS]. Thanks.";
        assert_eq!(out["text"], want_text);
        assert_eq!(out["utterances"][0]["text"], want_text);
        assert_eq!(ranges, vec![(410, 1500), (2000, 3000)]);
        let (p, e) = ("[PHONE_NUMBER]", "[EMAIL_ADDRESS]");
        let want_words = ["Call", "me", "at", p, "Email", e, e, e, e, e, "Thanks."];
        for list in [&out["words"], &out["utterances"][0]["words"]] {
            let texts: Vec<&str> = (0..11).filter_map(|i| list[i]["text"].as_str()).collect();
            assert_eq!(texts, want_words);
            assert_eq!(
                list[3],
                json!({"text": p, "start": 410, "end": 1500, "confidence": 0.9, "speaker": "A"})
            );
            assert_eq!(list[9]["start"], 2700);
            assert_eq!(list[9]["end"], 3000);
        }
        for key in ["id", "status", "audio_duration"] {
            assert_eq!(out[key], input[key]);
        }
        assert_eq!(out["utterances"][0]["end"], 3400);
    }

    #[test]
    fn transcript_ranges_merge_and_float_timings() {
        let input = json!({
            "text": "a",
            "words": [
                {"text": "ip", "start": 0, "end": 100},
                {"text": "10.0.0.1", "start": 100.4, "end": 900.6},
                {"text": "ok", "start": 950, "end": 1000},
            ],
            "utterances": [{"text": "x", "words": [{"text": "10.0.0.2", "start": 500, "end": 1200}]}],
        });
        let (out, ranges) = redact_transcript(&input);
        assert_eq!(ranges, vec![(100, 1200)]);
        assert_eq!(
            out["words"][1],
            json!({"text": "[IP_ADDRESS]", "start": 100.4, "end": 900.6})
        );
        assert_eq!(out["words"][2]["text"], "ok");
        assert_eq!(out["utterances"][0]["words"][0]["text"], "[IP_ADDRESS]");
        let (same, none) = redact_transcript(&json!({"status": "error"}));
        assert_eq!(same, json!({"status": "error"}));
        assert!(none.is_empty());
    }

    #[test]
    fn json_strings_recursively() {
        let input = json!({"a@b.com": "x a@b.com", "n": [1, "10.0.0.1", {"k": null, "s": "ok"}]});
        let want = json!({"a@b.com": "x [EMAIL_ADDRESS]", "n": [1, "[IP_ADDRESS]", {"k": null, "s": "ok"}]});
        assert_eq!(redact_json_strings(&input), want);
    }

    fn covered(text: &str, entity: Entity, planted: &str, findings: &[Finding]) -> bool {
        let start = text
            .find(planted)
            .unwrap_or_else(|| panic!("{planted:?} not in {text:?}"));
        let end = start + planted.len();
        findings
            .iter()
            .any(|f| f.entity == entity && f.start <= start && f.end >= end)
    }

    #[test]
    fn recall_corpus() {
        let entities = [
            EmailAddress,
            PhoneNumber,
            CreditCardNumber,
            UsSocialSecurityNumber,
            IpAddress,
            UrlWithCredentials,
        ];
        let mut per: std::collections::BTreeMap<Entity, (usize, usize)> = Default::default();
        assert!(
            corpus::RECALL.len() >= 120,
            "recall corpus has {} sentences",
            corpus::RECALL.len()
        );
        for (text, planted) in corpus::RECALL {
            let findings = find(text);
            for &(entity, item) in *planted {
                let hit = covered(text, entity, item, &findings);
                let e = per.entry(entity).or_default();
                e.0 += usize::from(hit);
                e.1 += 1;
                if !hit {
                    println!(
                        "MISS {entity:?} {item:?} in {text:?} (found {:?})",
                        found(text)
                    );
                }
            }
        }
        let (hits, total) = per.values().fold((0, 0), |a, v| (a.0 + v.0, a.1 + v.1));
        for entity in entities {
            let (h, t) = per.get(&entity).copied().unwrap_or_default();
            println!("recall {entity:?}: {h}/{t} = {:.3}", h as f64 / t as f64);
            assert!(
                t > 0 && h as f64 / t as f64 >= 0.9,
                "{entity:?} recall too low"
            );
        }
        let overall = hits as f64 / total as f64;
        println!(
            "recall overall: {hits}/{total} = {overall:.3} ({} sentences)",
            corpus::RECALL.len()
        );
        assert!(overall >= 0.95);
    }

    #[test]
    fn clean_corpus() {
        assert!(
            corpus::CLEAN.len() >= 150,
            "clean corpus has {} sentences",
            corpus::CLEAN.len()
        );
        let mut false_positives = 0;
        for text in corpus::CLEAN {
            for (entity, span) in found(text) {
                false_positives += 1;
                println!("FALSE POSITIVE {entity:?} {span:?} in {text:?}");
            }
        }
        let rate = false_positives as f64 / corpus::CLEAN.len() as f64;
        println!(
            "clean corpus: {false_positives} false positives in {} sentences (rate {rate:.4} per sentence)",
            corpus::CLEAN.len()
        );
        assert!(false_positives <= 2);
    }

    /// Recall and precision corpora: call-center style sentences.
    #[rustfmt::skip]
    mod corpus {
        use super::Entity::{self, *};

        /// Sentences with planted PII and the exact planted substrings.
        pub const RECALL: &[(&str, &[(Entity, &str)])] = &[
            // --- e-mail: written ---
            ("You can reach me at john.smith@example.com anytime.", &[(EmailAddress, "john.smith@example.com")]),
            ("My address is JANE.DOE@EXAMPLE.ORG, all caps.", &[(EmailAddress, "JANE.DOE@EXAMPLE.ORG")]),
            ("Send the invoice to billing+march@acme-corp.co.uk please.", &[(EmailAddress, "billing+march@acme-corp.co.uk")]),
            ("The customer wrote from a.b-c_d@sub.domain.io yesterday.", &[(EmailAddress, "a.b-c_d@sub.domain.io")]),
            ("CC priya.k+support@company.net on that thread.", &[(EmailAddress, "priya.k+support@company.net")]),
            ("Write to ops@example.com or admin@example.com.", &[(EmailAddress, "ops@example.com"), (EmailAddress, "admin@example.com")]),
            ("The login is Carlos_Ruiz99@Hotmail.com.", &[(EmailAddress, "Carlos_Ruiz99@Hotmail.com")]),
            ("Contact: lisa.wong@university.edu", &[(EmailAddress, "lisa.wong@university.edu")]),
            ("Email address on file: noreply.alerts@bank-example.com.", &[(EmailAddress, "noreply.alerts@bank-example.com")]),
            ("Send to first.last@example.de and cc team@example.fr.", &[(EmailAddress, "first.last@example.de"), (EmailAddress, "team@example.fr")]),
            ("I'll send it from anna.k@firm.law tonight.", &[(EmailAddress, "anna.k@firm.law")]),
            ("Reach out to support-team@help.example.com for anything.", &[(EmailAddress, "support-team@help.example.com")]),
            ("(contact: m.okafor@clinic.org.ng)", &[(EmailAddress, "m.okafor@clinic.org.ng")]),
            ("Her personal one is SAM+Shopping@GMAIL.COM I think.", &[(EmailAddress, "SAM+Shopping@GMAIL.COM")]),
            ("mailto:tom_baker@outlook.com was in the signature", &[(EmailAddress, "tom_baker@outlook.com")]),
            // --- e-mail: spoken ---
            ("It's john dot smith at example dot com, all lowercase.", &[(EmailAddress, "john dot smith at example dot com")]),
            ("Sure, it's jane at gmail dot com.", &[(EmailAddress, "jane at gmail dot com")]),
            ("my email is mike underscore jones at yahoo dot com", &[(EmailAddress, "mike underscore jones at yahoo dot com")]),
            ("email me at tom dot baker at outlook dot com", &[(EmailAddress, "tom dot baker at outlook dot com")]),
            ("It's sarah dash lee at protonmail dot com.", &[(EmailAddress, "sarah dash lee at protonmail dot com")]),
            ("uh my work email is r dot patel at acme dot co dot uk", &[(EmailAddress, "r dot patel at acme dot co dot uk")]),
            ("forward it to helpdesk at contoso dot com, that's my email", &[(EmailAddress, "helpdesk at contoso dot com")]),
            ("yeah it's k m a r t i n at gmail dot com", &[(EmailAddress, "k m a r t i n at gmail dot com")]),
            ("Her address is maria at icloud dot com.", &[(EmailAddress, "maria at icloud dot com")]),
            ("Use the address JOHN at EXAMPLE dot COM for now.", &[(EmailAddress, "JOHN at EXAMPLE dot COM")]),
            ("the email on the account is b dot nguyen at comcast dot net", &[(EmailAddress, "b dot nguyen at comcast dot net")]),
            ("you can email alex at alexdesigns dot io", &[(EmailAddress, "alex at alexdesigns dot io")]),
            ("It's Jane Dot Doe At Hotmail Dot Com.", &[(EmailAddress, "Jane Dot Doe At Hotmail Dot Com")]),
            ("send it to chris.m at gmail.com", &[(EmailAddress, "chris.m at gmail.com")]),
            ("my email's d w h i t e at aol dot com", &[(EmailAddress, "d w h i t e at aol dot com")]),
            ("email is jsmith42 at verizon dot net, okay", &[(EmailAddress, "jsmith42 at verizon dot net")]),
            // --- phone ---
            ("Call me back at (555) 123-4567 after lunch.", &[(PhoneNumber, "(555) 123-4567")]),
            ("My cell is 555-123-4567.", &[(PhoneNumber, "555-123-4567")]),
            ("Try 555.123.4567 instead.", &[(PhoneNumber, "555.123.4567")]),
            ("The number is +1 555 123 4567.", &[(PhoneNumber, "+1 555 123 4567")]),
            ("Our London office is +44 20 7946 0958.", &[(PhoneNumber, "+44 20 7946 0958")]),
            ("Just text 5551234567 when you arrive.", &[(PhoneNumber, "5551234567")]),
            ("Dial 1-800-555-0199 for support.", &[(PhoneNumber, "1-800-555-0199")]),
            ("It's five five five one two three four five six seven.", &[(PhoneNumber, "five five five one two three four five six seven")]),
            ("you can reach me at four one five, eight six seven, five three zero nine", &[(PhoneNumber, "four one five, eight six seven, five three zero nine")]),
            ("Call +49 30 12345678 in Berlin.", &[(PhoneNumber, "+49 30 12345678")]),
            ("Her mobile is +33 6 12 34 56 78.", &[(PhoneNumber, "+33 6 12 34 56 78")]),
            ("UK mobile 07700 900123 works too.", &[(PhoneNumber, "07700 900123")]),
            ("Phone: +1 (212) 555-0147.", &[(PhoneNumber, "+1 (212) 555-0147")]),
            ("the number is 1 (800) 555 0123", &[(PhoneNumber, "1 (800) 555 0123")]),
            ("Reach him on +91 98765 43210.", &[(PhoneNumber, "+91 98765 43210")]),
            ("Sydney office: +61 2 9876 5432.", &[(PhoneNumber, "+61 2 9876 5432")]),
            ("Fax 212.555.0178 or call 212-555-0179.", &[(PhoneNumber, "212.555.0178"), (PhoneNumber, "212-555-0179")]),
            ("call 15551234567 now", &[(PhoneNumber, "15551234567")]),
            ("my number's six one seven double five five two three four eight", &[(PhoneNumber, "six one seven double five five two three four eight")]),
            ("Tokyo line +81 3-1234-5678.", &[(PhoneNumber, "+81 3-1234-5678")]),
            ("It's 020 7946 0958 from the UK.", &[(PhoneNumber, "020 7946 0958")]),
            ("call 0044 20 7946 0958 from abroad", &[(PhoneNumber, "0044 20 7946 0958")]),
            ("number is 5 5 5 8 6 7 5 3 0 9", &[(PhoneNumber, "5 5 5 8 6 7 5 3 0 9")]),
            ("you can call (646)555-0182 tomorrow", &[(PhoneNumber, "(646)555-0182")]),
            ("Mexico City: +52 55 1234 5678.", &[(PhoneNumber, "+52 55 1234 5678")]),
            ("Call 604-555-0101 ext. 22 after nine.", &[(PhoneNumber, "604-555-0101")]),
            ("it's nine zero two, five five five, oh one nine nine", &[(PhoneNumber, "nine zero two, five five five, oh one nine nine")]),
            ("My number is +1-416-555-0133.", &[(PhoneNumber, "+1-416-555-0133")]),
            ("Home phone (312) 555 0198, cell 312 555 0199.", &[(PhoneNumber, "(312) 555 0198"), (PhoneNumber, "312 555 0199")]),
            ("Text me on +447700900123 whenever.", &[(PhoneNumber, "+447700900123")]),
            ("His direct line is 415.555.0100 x204.", &[(PhoneNumber, "415.555.0100")]),
            ("Number: 1.888.555.0142", &[(PhoneNumber, "1.888.555.0142")]),
            ("call me at eight zero zero five five five zero one nine nine", &[(PhoneNumber, "eight zero zero five five five zero one nine nine")]),
            ("Paris office (01) 42 68 53 00 is closed.", &[(PhoneNumber, "(01) 42 68 53 00")]),
            ("the callback number was 202-555-0125, not the main line", &[(PhoneNumber, "202-555-0125")]),
            ("SEVEN ONE EIGHT FIVE FIVE FIVE ZERO ONE FOUR SIX", &[(PhoneNumber, "SEVEN ONE EIGHT FIVE FIVE FIVE ZERO ONE FOUR SIX")]),
            // --- credit cards ---
            ("My card is 4111 1111 1111 1111, expiry 09/27.", &[(CreditCardNumber, "4111 1111 1111 1111")]),
            ("Visa 4012888888881881 was charged.", &[(CreditCardNumber, "4012888888881881")]),
            ("Use 4242-4242-4242-4242 for the test.", &[(CreditCardNumber, "4242-4242-4242-4242")]),
            ("card number 4000 0566 5566 5556 please", &[(CreditCardNumber, "4000 0566 5566 5556")]),
            ("The old card was 4222222222222.", &[(CreditCardNumber, "4222222222222")]),
            ("Mastercard 5555 5555 5555 4444 on file.", &[(CreditCardNumber, "5555 5555 5555 4444")]),
            ("charge 5105105105105100 again", &[(CreditCardNumber, "5105105105105100")]),
            ("new Mastercard 2223 0031 2200 3222", &[(CreditCardNumber, "2223 0031 2200 3222")]),
            ("it's 5200-8282-8282-8210", &[(CreditCardNumber, "5200-8282-8282-8210")]),
            ("Amex 3782 822463 10005 exp 11/26", &[(CreditCardNumber, "3782 822463 10005")]),
            ("amex number 371449635398431", &[(CreditCardNumber, "371449635398431")]),
            ("AmEx: 3714-496353-98431.", &[(CreditCardNumber, "3714-496353-98431")]),
            ("the corporate card 378734493671000 was declined", &[(CreditCardNumber, "378734493671000")]),
            ("Discover 6011 1111 1111 1117.", &[(CreditCardNumber, "6011 1111 1111 1117")]),
            ("discover card 6011000990139424", &[(CreditCardNumber, "6011000990139424")]),
            ("Discover: 6011-0009-9013-9424", &[(CreditCardNumber, "6011-0009-9013-9424")]),
            ("card 6445 6445 6445 6445 CVV 123", &[(CreditCardNumber, "6445 6445 6445 6445")]),
            ("JCB 3530 1113 3330 0000 works", &[(CreditCardNumber, "3530 1113 3330 0000")]),
            ("Diners 3056 930902 5904 is old", &[(CreditCardNumber, "3056 930902 5904")]),
            ("long PAN 4000 0000 0000 0000 006 on the receipt", &[(CreditCardNumber, "4000 0000 0000 0000 006")]),
            ("card ending, no wait, full number 5431111111111111", &[(CreditCardNumber, "5431111111111111")]),
            ("(4571 7300 0000 0003)", &[(CreditCardNumber, "4571 7300 0000 0003")]),
            ("It's four two four two, four two four two, four two four two, four two four two.", &[(CreditCardNumber, "four two four two, four two four two, four two four two, four two four two")]),
            // --- SSN ---
            ("My SSN is 123-45-6789.", &[(UsSocialSecurityNumber, "123-45-6789")]),
            ("social security number 078 05 1120", &[(UsSocialSecurityNumber, "078 05 1120")]),
            ("It's 219.09.9999 on the form.", &[(UsSocialSecurityNumber, "219.09.9999")]),
            ("my social is 457556789", &[(UsSocialSecurityNumber, "457556789")]),
            ("SSN: 536221234", &[(UsSocialSecurityNumber, "536221234")]),
            ("The applicant's number 287-65-4321 was verified.", &[(UsSocialSecurityNumber, "287-65-4321")]),
            ("taxpayer id 321 54 9876 on the W-2", &[(UsSocialSecurityNumber, "321 54 9876")]),
            ("my social security number is two one nine, zero nine, nine nine nine nine", &[(UsSocialSecurityNumber, "two one nine, zero nine, nine nine nine nine")]),
            ("ss# 401-23-5678", &[(UsSocialSecurityNumber, "401-23-5678")]),
            ("Please confirm 555.12.3456 is correct.", &[(UsSocialSecurityNumber, "555.12.3456")]),
            ("last four? no, the whole thing: 612-34-5789", &[(UsSocialSecurityNumber, "612-34-5789")]),
            ("Social Security No. 123456789 on file", &[(UsSocialSecurityNumber, "123456789")]),
            ("(SSN 772-13-4455)", &[(UsSocialSecurityNumber, "772-13-4455")]),
            ("Her social security is 004 81 2234.", &[(UsSocialSecurityNumber, "004 81 2234")]),
            // --- IP ---
            ("The router is at 192.168.1.10 on the LAN.", &[(IpAddress, "192.168.1.10")]),
            ("ssh into 10.0.0.1 and restart it", &[(IpAddress, "10.0.0.1")]),
            ("Traffic came from 203.0.113.42:443.", &[(IpAddress, "203.0.113.42")]),
            ("DNS is 8.8.8.8, backup 1.1.1.1", &[(IpAddress, "8.8.8.8"), (IpAddress, "1.1.1.1")]),
            ("subnet 172.16.254.0/24 is blocked", &[(IpAddress, "172.16.254.0")]),
            ("Login from 198.51.100.7 was flagged.", &[(IpAddress, "198.51.100.7")]),
            ("Your IPv6 is 2001:db8::1.", &[(IpAddress, "2001:db8::1")]),
            ("link-local fe80::1ff:fe23:4567:890a on eth0", &[(IpAddress, "fe80::1ff:fe23:4567:890a")]),
            ("full form 2001:0db8:85a3:0000:0000:8a2e:0370:7334 logged", &[(IpAddress, "2001:0db8:85a3:0000:0000:8a2e:0370:7334")]),
            ("mapped address ::ffff:192.0.2.128 in the log", &[(IpAddress, "::ffff:192.0.2.128")]),
            ("Cloudflare resolver 2606:4700:4700::1111 is fine", &[(IpAddress, "2606:4700:4700::1111")]),
            ("connect to [2001:db8:0:1::5]:8443 instead", &[(IpAddress, "2001:db8:0:1::5")]),
            ("client IP=100.64.12.7, user agent curl", &[(IpAddress, "100.64.12.7")]),
            ("gateway 10.10.0.254 and host 10.10.3.17", &[(IpAddress, "10.10.0.254"), (IpAddress, "10.10.3.17")]),
            // --- URLs with credentials or signatures ---
            ("Download it from https://my-bucket.s3.amazonaws.com/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240311%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240311T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=8f2a9c before it expires.",
             &[(UrlWithCredentials, "https://my-bucket.s3.amazonaws.com/report.pdf?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAEXAMPLE%2F20240311%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240311T120000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature=8f2a9c")]),
            ("GCS link: https://storage.googleapis.com/calls/a.wav?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=svc%40proj.iam.gserviceaccount.com%2F20240311%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20240311T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=5b1e",
             &[(UrlWithCredentials, "https://storage.googleapis.com/calls/a.wav?X-Goog-Algorithm=GOOG4-RSA-SHA256&X-Goog-Credential=svc%40proj.iam.gserviceaccount.com%2F20240311%2Fauto%2Fstorage%2Fgoog4_request&X-Goog-Date=20240311T000000Z&X-Goog-Expires=900&X-Goog-SignedHeaders=host&X-Goog-Signature=5b1e")]),
            ("Azure SAS https://acct.blob.core.windows.net/rec/c1.mp3?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-03-12T00:00:00Z&st=2024-03-11T00:00:00Z&spr=https&sig=AbCd%2Bef%3D (valid one day)",
             &[(UrlWithCredentials, "https://acct.blob.core.windows.net/rec/c1.mp3?sv=2022-11-02&ss=b&srt=o&sp=r&se=2024-03-12T00:00:00Z&st=2024-03-11T00:00:00Z&spr=https&sig=AbCd%2Bef%3D")]),
            ("The admin panel is https://admin:hunter2@intranet.example.com/dashboard.", &[(UrlWithCredentials, "https://admin:hunter2@intranet.example.com/dashboard")]),
            ("old mirror ftp://user:secret@files.example.org/pub/", &[(UrlWithCredentials, "ftp://user:secret@files.example.org/pub/")]),
            ("call the API at https://api.example.com/v1/export?format=csv&access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc", &[(UrlWithCredentials, "https://api.example.com/v1/export?format=csv&access_token=eyJhbGciOiJIUzI1NiJ9.e30.abc")]),
            ("Maps embed https://maps.example.com/api/js?key=AIzaSyD-example123&callback=init", &[(UrlWithCredentials, "https://maps.example.com/api/js?key=AIzaSyD-example123&callback=init")]),
            ("webhook http://hooks.example.net/notify?apikey=5f3c9a&channel=ops", &[(UrlWithCredentials, "http://hooks.example.net/notify?apikey=5f3c9a&channel=ops")]),
            ("legacy S3 link https://bucket.s3.amazonaws.com/k.txt?AWSAccessKeyId=AKIAEXAMPLE&Expires=1710000000&Signature=vjb%2F0x", &[(UrlWithCredentials, "https://bucket.s3.amazonaws.com/k.txt?AWSAccessKeyId=AKIAEXAMPLE&Expires=1710000000&Signature=vjb%2F0x")]),
            ("temporary creds in https://b.s3.us-west-2.amazonaws.com/o?X-Amz-Security-Token=FwoGZXIvYXdz&X-Amz-Signature=ab12", &[(UrlWithCredentials, "https://b.s3.us-west-2.amazonaws.com/o?X-Amz-Security-Token=FwoGZXIvYXdz&X-Amz-Signature=ab12")]),
            ("Reset via https://accounts.example.com/reset?user=42&token=9f8e7d6c5b.", &[(UrlWithCredentials, "https://accounts.example.com/reset?user=42&token=9f8e7d6c5b")]),
            ("db console (https://root:p%40ss@db.internal.example.com:8443/ui)", &[(UrlWithCredentials, "https://root:p%40ss@db.internal.example.com:8443/ui")]),
            ("OAuth redirect https://app.example.com/callback#access_token=ya29.a0Af&token_type=Bearer", &[(UrlWithCredentials, "https://app.example.com/callback#access_token=ya29.a0Af&token_type=Bearer")]),
            ("HTTPS://Deploy:Tok3n@git.example.com/team/repo.git is the remote", &[(UrlWithCredentials, "HTTPS://Deploy:Tok3n@git.example.com/team/repo.git")]),
            ("login link https://example.com/login?password=Winter2024!&user=bob", &[(UrlWithCredentials, "https://example.com/login?password=Winter2024!&user=bob")]),
            // --- harder spellings (the last three are known misses) ---
            ("my email is john smith at gmail dot com", &[(EmailAddress, "john smith at gmail dot com")]),
            ("Maria Lopez at yahoo dot com is the best way to reach her", &[(EmailAddress, "Maria Lopez at yahoo dot com")]),
            ("jane dot doe at gmail dot com and john at yahoo dot co dot uk", &[(EmailAddress, "jane dot doe at gmail dot com"), (EmailAddress, "john at yahoo dot co dot uk")]),
            ("call 555 - 123 - 4567 please", &[(PhoneNumber, "555 - 123 - 4567")]),
            ("it's (555)-123-4567, the old landline", &[(PhoneNumber, "(555)-123-4567")]),
            ("reach me on 020-7946-0958 during office hours", &[(PhoneNumber, "020-7946-0958")]),
            ("Card: 4111 1111 1111 1111 and backup card 5105 1051 0510 5100", &[(CreditCardNumber, "4111 1111 1111 1111"), (CreditCardNumber, "5105 1051 0510 5100")]),
            ("her SSN, 123 45 6789, was on the fax", &[(UsSocialSecurityNumber, "123 45 6789")]),
            ("uppercase v6 2001:DB8:0:0:8:800:200C:417A in the report", &[(IpAddress, "2001:DB8:0:0:8:800:200C:417A")]),
            ("internal http://intranet/api?TOKEN=abc123 link", &[(UrlWithCredentials, "http://intranet/api?TOKEN=abc123")]),
            ("the server is ten dot zero dot zero dot five", &[(IpAddress, "ten dot zero dot zero dot five")]),
            ("my number is five five five, one two three, forty five sixty seven", &[(PhoneNumber, "five five five, one two three, forty five sixty seven")]),
            ("the fax is 44 20 7946 0958 I think", &[(PhoneNumber, "44 20 7946 0958")]),
            // --- mixed ---
            ("Name on file, jo@example.com, phone 555-867-5309, card 4111111111111111.", &[(EmailAddress, "jo@example.com"), (PhoneNumber, "555-867-5309"), (CreditCardNumber, "4111111111111111")]),
            ("Verify SSN 123-45-6789 and callback (415) 555-0100.", &[(UsSocialSecurityNumber, "123-45-6789"), (PhoneNumber, "(415) 555-0100")]),
            ("From 10.1.2.3 the user jane at gmail dot com logged in.", &[(IpAddress, "10.1.2.3"), (EmailAddress, "jane at gmail dot com")]),
            ("okay so the card is 5555 5555 5555 4444 and my cell is 555 010 2030", &[(CreditCardNumber, "5555 5555 5555 4444"), (PhoneNumber, "555 010 2030")]),
            ("the link https://u:p@host.example.com/x failed from 192.0.2.5", &[(UrlWithCredentials, "https://u:p@host.example.com/x"), (IpAddress, "192.0.2.5")]),
        ];

        /// Realistic sentences without PII, full of near-misses.
        pub const CLEAN: &[&str] = &[
            // prices and amounts
            "Your total comes to $1,250.00 including tax.",
            "The monthly plan is $49.99, or $499 if you pay yearly.",
            "We can refund 2,500 dollars to the original payment method.",
            "That's a 15% discount on the 1,200 dollar package.",
            "The late fee was 35 dollars and 50 cents.",
            "I was charged €1.234,56 instead of €123,45.",
            "Your balance after the credit is $2,499.99.",
            "The upgrade costs 120 per seat for 25 seats, so 3,000 total.",
            "We have 1,234,567 customers worldwide.",
            "It's twelve ninety-nine a month after the promo.",
            "The wire for 15,000.00 cleared yesterday.",
            "That's about 4.5 million in revenue for the quarter.",
            // years, dates, times
            "We opened in 2024 and expanded in 2025.",
            "The appointment is on 2024-03-11 at 10:30.",
            "Your warranty runs from 03/11/2024 to 03/10/2027.",
            "I called on March 11, 2024 around 4:15 PM.",
            "The outage lasted from 10:30:00 to 11:45:30 UTC.",
            "Between 2019 and 2023 the price went up twice.",
            "The timestamp in the log says 2024-03-11T10:30:00Z.",
            "Office hours are 9:00 to 17:30, Monday to Friday.",
            "Delivery window is 8 to 12 on 11.03.2024.",
            "The recording starts at 00:01:23.456 in the file.",
            "Fiscal years 2021, 2022, 2023 and 2024 are all audited.",
            "The 2023-2024 season tickets went on sale.",
            "It should arrive by the 14th, maybe the 15th.",
            "He was born in the spring of 1987.",
            "We'll call you back at 3 o'clock sharp.",
            // order, case, account-like numbers
            "The order number is 48213907.",
            "Your case number is 7781234, please keep it handy.",
            "Ticket INC-204518 has been escalated.",
            "Invoice INV-2024-00123 is overdue.",
            "Reference number 20240311-0042 for the claim.",
            "The account ending in 4821 was updated.",
            "Confirmation code is 8XK2P9.",
            "Your policy number is 992-4411.",
            "The model number is X200-3345-12.",
            "Order 6612093 and order 6612094 were merged.",
            "Tracking number 1Z999AA10123456784 shows it's in transit.",
            "Serial SN-88231-XK is out of warranty.",
            "Membership ID 55120498 is active.",
            "The SKU is 400-12-88A.",
            "PO number 4500123456 was rejected by finance.",
            "Batch 2024-11-0007 failed quality checks.",
            "Please quote claim 31-442-907 when you call.",
            "Your loyalty number is 7700 1234.",
            // versions, builds
            "Please update to version 2.14.3 of the app.",
            "We're still on release 4.1.0.2 in production.",
            "The fix landed in v2.0.1.4 last night.",
            "Windows build 10.0.19045.3803 has the bug.",
            "Firmware 1.2.3.4 is the latest for that router.",
            "Python 3.12.1 and Node 20.11.0 are supported.",
            "Chrome version 122.0.6261.94 shows a blank page.",
            "Section 2.1.3.4 of the contract covers refunds.",
            "The API moved from v1 to v2.3 in January.",
            "iOS 17.4 broke the widget.",
            // percentages, measures, ratios
            "Uptime was 99.95% last month.",
            "Battery drops to 20% after 3 hours.",
            "The screen is 16:9 at 1920 by 1080.",
            "It weighs 2.5 kg and measures 30 by 40 cm.",
            "The score was 3-2 in overtime.",
            "Interest rate is 4.75% APR.",
            "Set the thermostat to 68.5 degrees.",
            "Coordinates are 37.7749, -122.4194 for the office.",
            "We're at 50% capacity this week.",
            "The ratio went from 1:3 to 1:4.",
            // ZIP codes, rooms, addresses without PII
            "Ship it to ZIP 94103.",
            "ZIP plus four is 94103-1234.",
            "Room 1204 on the 12th floor.",
            "Gate B22, terminal 3.",
            "Suite 400, building 7.",
            "Take exit 42 off highway 101.",
            "The store at 1600 Main is closed on Sundays.",
            "Platform 9 for the 10:45 train.",
            "Rooms 101, 102 and 103 are booked.",
            "Box 12 of 300 is damaged.",
            // plain URLs without credentials
            "Visit https://www.example.com/help for more.",
            "The docs are at https://docs.example.com/v2/guide#setup.",
            "Try https://shop.example.com/cart?item=12345&qty=2 again.",
            "Health check at http://localhost:8080/health returns 200.",
            "The script loads https://cdn.example.com/v2.1.3/app.js.",
            "Search https://example.com/search?q=token+bucket for the article.",
            "See https://example.com/page?keyword=shoes&sort=price.",
            "Unsubscribe at https://example.com/unsubscribe?ref=email&lang=en.",
            "The form is at https://forms.example.org/apply?step=2.",
            "Status page: https://status.example.com.",
            "Use https://example.com/reset?lang=en to start the reset.",
            "Our blog post https://blog.example.com/2024/03/11/launch explains it.",
            "The tracker https://track.example.com/orders/48213907 shows progress.",
            "Open https://maps.example.com/?monkey=1&zoom=12 to see it.",
            // "at" and "dot" used normally
            "Meet me at the station at noon.",
            "Dot the i's and cross the t's.",
            "Check out example dot com for details.",
            "I bought it at amazon dot com last week.",
            "She works at Google dot com now.",
            "I'll be at home dot dot dot waiting.",
            "We'll arrive at the hotel at eight.",
            "Look at the invoice at the top of the page.",
            "He showed up right on the dot.",
            "It's a polka dot dress from the catalog.",
            "Back in the dot com bubble everyone had a website.",
            "I'm at work until five.",
            "They're at the front desk at the moment.",
            "Sign up at our website dot com slash deals.",
            "Look for us at booth 12 at the expo.",
            "The connect the dots puzzle is for kids.",
            "She's at lunch, call back at two.",
            "We're at capacity at the downtown store.",
            "I got it at Walmart dot com on sale.",
            "Just go at your own pace.",
            "The meeting is at noon dot on the dot.",
            "Hit the dot menu at the top right.",
            // digit words and counts
            "I have one or two questions about the bill.",
            "Count one two three four five and breathe.",
            "It's nine to five, Monday to Friday.",
            "Give me five, maybe ten minutes.",
            "That was a one-two punch for the team.",
            "Press one for billing, two for support, three for sales.",
            "We need three, four, maybe five more chairs.",
            "Oh, one more thing before you go.",
            "Two or three days, four at most.",
            "Zero issues so far, knock on wood.",
            "Six of one, half a dozen of the other.",
            "I said one, two, three, four, five, six, seven, eight, nine, then stopped.",
            // other numbers
            "Call us between 9 and 5.",
            "Call 1-800-FLOWERS to order.",
            "Flight 1234 departs at 5:45.",
            "Extension 4521 goes to billing.",
            "The PIN is four digits long.",
            "Page 12 of 300.",
            "The ISBN is 978-3-16-148410-0.",
            "Temperature was 98.6 this morning.",
            "Chapter 11, verse 3 is the one.",
            "We shipped 10 12 and 14 inch pans.",
            "Rate us 1 2 3 4 or 5 stars.",
            "Items 1 2 3 4 5 6 7 8 9 10 are on the list.",
            "The lottery numbers were 4 8 15 16 23 42.",
            "Batch sizes of 128, 256 and 512.",
            "Between 100 and 200 units per pallet.",
            "The bill is 1,555 dollars and 12 cents.",
            "The code 10:30:45 means the run finished.",
            "Latitude 51.5074 and longitude 0.1278.",
            "Use std::vec::Vec and std::collections::HashMap.",
            "The MAC address 00:1A:2B:3C:4D:5E is not ours.",
            "The hex colour is #FF5733.",
            "Error code 0x80070005 means access denied.",
            "Checksum 9f86d081884c7d659a2feaf0c55ad015 matches.",
            "Account 123 45 is a test ledger.",
            "Quantities 2024 2025 2026 are forecasts.",
            "The scale goes 0.1 0.2 0.5 1.0 2.0.",
            "Score of 250 out of 255 on the test.",
            "Dial 911 in an emergency.",
            "The 401k match is 6% of salary.",
            "Form W-2 and form 1099-NEC are attached.",
            "Call volume was 12,345 calls, up 8.5%.",
            "The gift card balance is 25.00 of 50.00.",
            "Use code SAVE20 at checkout.",
            // near-misses found while probing
            "ok so that's nine, eight, seven, six, five, four, three, two, one, zero, liftoff",
            "That is 1 2 3 4 5 6 7 8 9 0, done.",
            "The meeting ID is 123 456 7890 for zoom.",
            "Zoom meeting ID 843 2211 9087, passcode in the invite.",
            "Your confirmation number is 4829103746.",
            "I'll look it up at home dot com tonight.",
            "Send it to me at my gmail dot com inbox, the usual one.",
            "He said hi to Kevin at the office dot com party.",
            "We met at starbucks dot com headquarters.",
            "Customer since 2015 with 12 orders totalling 1,499.00.",
            "The balance is 4,111.11 and the limit is 5,000.",
            "The card ending 4242 expires 12/2027.",
            "Timestamps 10:30:00:12 and 10:31:02:07 in the edit list.",
            "A ratio of 10:1:1 is common.",
            "Version 1:2:3 of the plan.",
            "The numbers are 10 20 30 40 50 60 70 80 90 100.",
            "Your code is 4 8 2 9 1 7.",
            "The total was one thousand two hundred fifty five dollars.",
            "I will be there at 5 dot 30.",
            "The console https://console.aws.amazon.com/s3/buckets/logs?region=us-east-1&tab=objects works.",
            "See https://example.com/?auth= for the empty parameter.",
            // call-center chatter
            "Thanks for calling, how can I help you today?",
            "Can you confirm the last four digits of the card?",
            "I'll need your date of birth and ZIP code.",
            "Let me transfer you to the billing department.",
            "Your email address is on file, no changes needed.",
            "We sent a verification code to your phone.",
            "Please don't share your social security number on this call.",
            "The IP address field on the form was empty.",
            "I'll send the link by email shortly.",
            "Your password must have 12 characters.",
            "Is there anything else I can help with?",
            "We appreciate your patience while I look that up.",
            "The technician will arrive between 8 and 10 AM.",
            "Your refund of $82.40 should post in 3 to 5 business days.",
            "I see two accounts under that name.",
            "Let me put you on a brief hold.",
            "The router's admin page is at the usual address.",
            "Press star then pound to repeat.",
        ];
    }
}
