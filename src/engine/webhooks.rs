//! Webhooks through a durable outbox: AssemblyAI's completion webhook, and Lethe's
//! `transcript.deleted` events to an account's deletion webhook (written to the outbox in
//! the transaction that records the tombstones, signed with HMAC-SHA256 under the
//! account's secret in `X-Lethe-Signature`).
//!
//! Completion webhooks: When a transcript reaches
//! `completed` or `error`, the transcript is written unsettled in the same write; settling
//! it (at once, or by the next pass after a crash) adds one outbox row, idempotently, before
//! recording it settled — so no completion is lost and none is announced twice. A delivery
//! loop POSTs `{"transcript_id", "status"}` with the customer's auth header, retrying with
//! backoff ([`MAX_ATTEMPTS`] in all), never blocking a sweep. The URL and header are
//! content: they are read from the transcript's text inputs when sending, so a deleted
//! transcript's delivery is abandoned, and they appear in no row, log line or listing.

use chrono::{DateTime, Duration, Utc};

use super::*;
use crate::domain::{DeletionWebhook, DeliveryState, TranscriptId, WebhookDelivery, WebhookEvent};

/// Attempts before a delivery is `failed`: about 11 hours of backoff.
pub const MAX_ATTEMPTS: u32 = 12;
/// Deliveries one round sends at most.
const ROUND: u32 = 50;
/// How long a claimed delivery is held while it is being sent: far longer than a round.
const SEND_LEASE: Duration = Duration::minutes(5);
/// Receivers called at once in a round.
const CONCURRENCY: usize = 16;
/// The time limit of one call to a receiver.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Whether Lethe calls a webhook at this address: not loopback, private, link-local,
/// shared, unspecified, multicast or documentation space (a customer's webhook URL must
/// not reach into the operator's network), unless the operator allows it.
pub fn is_public(ip: std::net::IpAddr) -> bool {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => {
            let [first, second, ..] = a.octets();
            !(a.is_loopback()
                || a.is_private()
                || a.is_link_local()
                || a.is_unspecified()
                || a.is_multicast()
                || a.is_broadcast()
                || a.is_documentation()
                || (first == 100 && (64..128).contains(&second))
                || first == 0)
        }
        IpAddr::V6(a) => {
            let head = a.segments()[0];
            !(a.is_loopback()
                || a.is_unspecified()
                || a.is_multicast()
                || (head & 0xfe00) == 0xfc00
                || (head & 0xffc0) == 0xfe80
                || a.to_ipv4_mapped()
                    .is_some_and(|v4| !is_public(IpAddr::V4(v4))))
        }
    }
}

/// Resolves webhook hosts to public addresses only, so a name that points inside the
/// network (or is re-pointed there) is refused at connection time.
#[derive(Debug)]
struct PublicAddressesOnly;

#[derive(Debug, thiserror::Error)]
#[error("the webhook host resolves only to loopback, private or link-local addresses")]
struct PrivateTarget;

impl reqwest::dns::Resolve for PublicAddressesOnly {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        Box::pin(async move {
            let found = tokio::net::lookup_host((name.as_str(), 0)).await?;
            let public: Vec<std::net::SocketAddr> = found.filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                return Err(Box::new(PrivateTarget) as Box<dyn std::error::Error + Send + Sync>);
            }
            Ok(Box::new(public.into_iter()) as reqwest::dns::Addrs)
        })
    }
}

/// The client webhooks are sent with: no redirects (a receiver answers for itself) and,
/// unless `private_targets`, public addresses only.
pub fn webhook_client(private_targets: bool) -> reqwest::Client {
    let builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("lethe/", env!("CARGO_PKG_VERSION")));
    let builder = match private_targets {
        true => builder,
        false => builder.dns_resolver(Arc::new(PublicAddressesOnly)),
    };
    builder.build().unwrap_or_default()
}

/// The wait after the `attempts`-th failed attempt: 10 s, doubling, at most an hour.
pub fn backoff(attempts: u32) -> Duration {
    let doublings = attempts.saturating_sub(1).min(9);
    Duration::seconds(10 * (1i64 << doublings)).min(Duration::hours(1))
}

/// What one delivery round did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct DeliveryRound {
    pub delivered: u64,
    pub retrying: u64,
    pub failed: u64,
    pub abandoned: u64,
}

/// Where a webhook goes: the transcript's `webhook_url` and optional auth header, or the
/// account's deletion webhook with the secret its events are signed with.
struct Target {
    url: String,
    header: Option<(String, String)>,
    signing_secret: Option<String>,
}

/// The header a deletion event's signature travels in: `sha256=<hex HMAC-SHA256 of the
/// body under the account's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Lethe-Signature";

/// `sha256=<hex>` of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes a key of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

impl Engine {
    /// Adds the completion webhook of a terminal transcript to the outbox, if it asked for
    /// one (its text inputs hold a `webhook_url`). Idempotent.
    pub(crate) async fn enqueue_completion_webhook(
        &self,
        t: &Transcript,
        text_inputs: Option<&crate::domain::Artifact>,
    ) -> Result<()> {
        let Some(inputs) = text_inputs else {
            return Ok(());
        };
        if !t.status.is_terminal() {
            return Ok(());
        }
        let Some(content) = self.backends.content.get(&inputs.content_key).await? else {
            return Ok(());
        };
        if target_of(&content).is_none() {
            return Ok(());
        }
        let now = self.now();
        let added = self
            .backends
            .audit
            .enqueue_webhook(&WebhookDelivery {
                id: crate::domain::new_id(now),
                account_id: t.account_id,
                transcript_id: t.id,
                event: WebhookEvent::TranscriptStatus,
                payload: serde_json::json!({"transcript_id": t.id, "status": t.status}),
                state: DeliveryState::Pending,
                attempts: 0,
                next_attempt_at: now,
                last_status: None,
                last_error: None,
                created_at: now,
                delivered_at: None,
            })
            .await?;
        if added {
            self.webhooks_due.notify_one();
        }
        Ok(())
    }

    /// Notified when a delivery is added, so the delivery loop sends it at once.
    pub fn webhooks_due(&self) -> Arc<Notify> {
        self.webhooks_due.clone()
    }

    /// One delivery round: claims what is due now and sends it.
    pub async fn deliver_webhooks(&self) -> Result<DeliveryRound> {
        use futures::StreamExt;
        let now = self.now();
        let claimed = self
            .backends
            .audit
            .claim_webhooks(now, now + SEND_LEASE, ROUND)
            .await?;
        // Concurrently, so one slow receiver does not hold up the others; a round takes at
        // most ROUND / CONCURRENCY send timeouts, well inside the claim's lease.
        let attempts: Vec<Result<WebhookDelivery>> = futures::stream::iter(claimed)
            .map(|d| self.attempt(d, now))
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        let mut round = DeliveryRound::default();
        for d in attempts {
            let d = d?;
            match d.state {
                DeliveryState::Delivered => round.delivered += 1,
                DeliveryState::Failed => round.failed += 1,
                DeliveryState::Abandoned => round.abandoned += 1,
                DeliveryState::Pending => round.retrying += 1,
            }
        }
        Ok(round)
    }

    /// One attempt at one delivery, recorded.
    async fn attempt(&self, mut d: WebhookDelivery, now: DateTime<Utc>) -> Result<WebhookDelivery> {
        d.attempts += 1;
        let target = match d.event {
            WebhookEvent::TranscriptStatus => {
                self.webhook_target(d.account_id, d.transcript_id).await?
            }
            WebhookEvent::TranscriptDeleted => self.deletion_target(d.account_id).await?,
        };
        match target {
            None => {
                d.state = DeliveryState::Abandoned;
                d.last_error = Some(
                    match d.event {
                        WebhookEvent::TranscriptStatus => {
                            "the transcript, with its webhook URL, was deleted before delivery"
                        }
                        WebhookEvent::TranscriptDeleted => {
                            "the account no longer has a deletion webhook"
                        }
                    }
                    .into(),
                );
            }
            Some(target) if !self.private_webhook_targets && is_private_literal(&target.url) => {
                d.state = DeliveryState::Failed;
                d.last_error = Some(
                    "the webhook URL names a loopback, private or link-local address, which Lethe does not call"
                        .into(),
                );
            }
            Some(target) => match self.send(&target, &d).await {
                Ok(status) if (200..300).contains(&status) => {
                    d.state = DeliveryState::Delivered;
                    d.last_status = Some(status);
                    d.last_error = None;
                    d.delivered_at = Some(self.now());
                }
                outcome => {
                    let (status, error) = match outcome {
                        Ok(status) => (Some(status), format!("the receiver answered {status}")),
                        Err(error) => (None, error),
                    };
                    d.last_status = status;
                    d.last_error = Some(error);
                    if d.attempts >= MAX_ATTEMPTS {
                        d.state = DeliveryState::Failed;
                    } else {
                        d.next_attempt_at = now + backoff(d.attempts);
                    }
                }
            },
        }
        tracing::info!(delivery_id = %d.id, transcript_id = %d.transcript_id, state = %d.state, attempts = d.attempts, "webhook attempt");
        self.backends.audit.update_webhook(&d).await?;
        Ok(d)
    }

    /// The outbox, by id after `after`.
    pub async fn webhook_deliveries(
        &self,
        after: Option<uuid::Uuid>,
        limit: u32,
    ) -> Result<Vec<WebhookDelivery>> {
        Ok(self.backends.audit.webhook_deliveries(after, limit).await?)
    }

    /// The webhook URL and header of a transcript while its text inputs may be read.
    async fn webhook_target(
        &self,
        account: crate::domain::AccountId,
        id: TranscriptId,
    ) -> Result<Option<Target>> {
        let Some(account) = self.backends.accounts.account(account).await? else {
            return Ok(None);
        };
        match self.transcript_content(&account, id).await {
            Ok(view) => Ok(view.text_inputs.as_ref().and_then(target_of)),
            Err(EngineError::NotFound) => Ok(None),
            Err(other) => Err(other),
        }
    }

    /// The account's deletion webhook, as it is now.
    async fn deletion_target(&self, account: crate::domain::AccountId) -> Result<Option<Target>> {
        Ok(self
            .backends
            .accounts
            .account(account)
            .await?
            .and_then(|a| a.deletion_webhook)
            .map(|DeletionWebhook { url, secret }| Target {
                url,
                header: None,
                signing_secret: Some(secret),
            }))
    }

    /// The body of a delivery: its payload, and for a deletion event the receipt's URL.
    fn body_of(&self, d: &WebhookDelivery) -> Vec<u8> {
        let mut body = d.payload.clone();
        if d.event == WebhookEvent::TranscriptDeleted {
            body["receipt_url"] = serde_json::json!(format!(
                "{}/v2/transcript/{}/receipt",
                self.public_base_url, d.transcript_id
            ));
        }
        body.to_string().into_bytes()
    }

    /// One POST; the HTTP status, or why there was none (never naming the URL).
    async fn send(&self, target: &Target, d: &WebhookDelivery) -> Result<u16, String> {
        let body = self.body_of(d);
        let mut request = self
            .http
            .post(&target.url)
            .timeout(SEND_TIMEOUT)
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if let Some((name, value)) = &target.header {
            request = request.header(name.as_str(), value.as_str());
        }
        if let Some(secret) = &target.signing_secret {
            request = request.header(SIGNATURE_HEADER, signature(secret, &body));
        }
        match request.body(body).send().await {
            Ok(response) => Ok(response.status().as_u16()),
            Err(error) => Err(describe(&error)),
        }
    }
}

/// Whether a URL's host is an IP address Lethe does not call (names are checked when they
/// are resolved).
fn is_private_literal(url: &str) -> bool {
    match url::Url::parse(url)
        .ok()
        .and_then(|u| u.host().map(|h| h.to_owned()))
    {
        Some(url::Host::Ipv4(a)) => !is_public(a.into()),
        Some(url::Host::Ipv6(a)) => !is_public(a.into()),
        _ => false,
    }
}

/// Why a call failed, without the URL (it is content).
fn describe(error: &reqwest::Error) -> String {
    if error.is_timeout() {
        format!("no answer within {} s", SEND_TIMEOUT.as_secs())
    } else if error.is_connect() {
        "could not connect to the receiver (or its host resolves only to private addresses)".into()
    } else if error.is_builder() {
        "the webhook URL or header cannot be sent".into()
    } else {
        "the call to the receiver failed".into()
    }
}

/// The webhook target in a transcript's text inputs.
fn target_of(inputs: &Content) -> Option<Target> {
    let fields: serde_json::Map<String, serde_json::Value> =
        serde_json::from_slice(inputs.expose()).ok()?;
    let url = fields.get("webhook_url")?.as_str()?.to_owned();
    let header = match (
        fields
            .get("webhook_auth_header_name")
            .and_then(|v| v.as_str()),
        fields
            .get("webhook_auth_header_value")
            .and_then(|v| v.as_str()),
    ) {
        (Some(name), Some(value)) => Some((name.to_owned(), value.to_owned())),
        _ => None,
    };
    Some(Target {
        url,
        header,
        signing_secret: None,
    })
}

/// When the next delivery round is due at the latest (the loop also wakes on new ones).
pub fn next_round(now: DateTime<Utc>) -> DateTime<Utc> {
    now + Duration::seconds(5)
}

impl Engine {
    /// Sets the account's deletion webhook to `url` with a new secret, returned this once;
    /// `None` removes it. The URL must be an absolute http(s) URL.
    pub async fn set_deletion_webhook(
        &self,
        account: crate::domain::AccountId,
        url: Option<&str>,
    ) -> Result<Option<String>> {
        let webhook = match url {
            None => None,
            Some(url) => {
                check_webhook_url(url)?;
                Some(DeletionWebhook {
                    url: url.to_owned(),
                    secret: format!("whsec_{}", crate::domain::ApiKey::generate().expose()),
                })
            }
        };
        self.backends
            .accounts
            .set_deletion_webhook(account, webhook.as_ref())
            .await?;
        tracing::info!(%account, set = webhook.is_some(), "deletion webhook changed");
        Ok(webhook.map(|w| w.secret))
    }
}

/// A deletion webhook URL Lethe will call: absolute http(s), at most 2048 characters.
pub fn check_webhook_url(url: &str) -> Result<()> {
    let ok = url.len() <= 2048
        && url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host_str().is_some());
    match ok {
        true => Ok(()),
        false => Err(EngineError::Invalid(
            "deletion_webhook_url must be an absolute http(s) URL of at most 2048 characters"
                .into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_are_called() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().expect("ip")), "{private}");
        }
        for public in ["93.184.216.34", "2606:2800:220:1::1", "8.8.8.8"] {
            assert!(is_public(public.parse().expect("ip")), "{public}");
        }
    }

    #[test]
    fn backoff_doubles_from_ten_seconds_to_an_hour() {
        let waits: Vec<i64> = (1..=MAX_ATTEMPTS)
            .map(|n| backoff(n).num_seconds())
            .collect();
        assert_eq!(&waits[..4], &[10, 20, 40, 80]);
        assert_eq!(*waits.last().expect("last"), 3600);
    }
}
