//! Notifications: send the deliveries the store queued (an image became unhealthy, or a
//! scanned-before image has a new critical/high finding) to the tenant's webhook.
//!
//! * The store decides *what* to notify, in the same transaction that records the
//!   assessment (`bulkhead_store::Delivery::body` is the event); this task only sends.
//! * A delivery is claimed with a lease (`claim_delivery` counts the attempt and pushes
//!   `next_at` past the attempt's timeout), so a process killed mid-send leaves it to be
//!   sent again after the lease, by this or another `bulkhead serve` sharing the store.
//!   Receivers therefore see a delivery at least once and dedupe by `X-Bulkhead-Delivery`.
//! * Every attempt is recorded: a 2xx answer makes it `delivered`; anything else (another
//!   status, a timeout, a refused connection) is retried after an exponential backoff until
//!   `notifications.max_attempts`, then `failed`, keeping the last status and error.
//! * The body is POSTed byte for byte as stored and signed: `X-Bulkhead-Signature:
//!   sha256=HEX(HMAC-SHA256(secret, "<X-Bulkhead-Timestamp>.<body>"))` (docs/service.md,
//!   "Notifications", says how a receiver verifies it). The timestamp is in the signed
//!   text so that a captured request cannot be replayed later with a fresh timestamp.

use std::sync::Arc;
use std::time::Duration;

use bulkhead_store::{Delivery, Store, now_ms};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::config::NotificationsConfig;
use super::metrics::Metrics;

/// Deliveries sent at once: one slow receiver (up to the timeout per attempt) must not hold
/// up every other tenant's notifications.
const PARALLEL: usize = 4;

/// How long past an attempt's timeout its claim is held before another sender may take
/// the delivery (a sender that died mid-attempt).
const LEASE_MARGIN: Duration = Duration::from_secs(30);

/// At most this much of a refusing receiver's answer is kept as the delivery's error.
const MAX_ERROR_BODY: usize = 512;

/// The headers every notification carries.
pub const HEADER_EVENT: &str = "X-Bulkhead-Event";
pub const HEADER_DELIVERY: &str = "X-Bulkhead-Delivery";
pub const HEADER_TIMESTAMP: &str = "X-Bulkhead-Timestamp";
pub const HEADER_SIGNATURE: &str = "X-Bulkhead-Signature";

type HmacSha256 = Hmac<Sha256>;

/// The `X-Bulkhead-Signature` value: `sha256=` and the lowercase hex HMAC-SHA256, keyed
/// with the tenant's secret, of the timestamp (decimal Unix seconds, as sent in
/// `X-Bulkhead-Timestamp`), a `.`, and the body bytes.
pub fn signature(secret: &[u8], timestamp: i64, body: &[u8]) -> String {
    // HMAC takes keys of any length (longer ones are hashed): this cannot fail.
    let Ok(mut mac) = HmacSha256::new_from_slice(secret) else {
        unreachable!("HMAC-SHA256 accepts keys of every length")
    };
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The wait before the next attempt after `attempts` failed ones: the configured backoff
/// (doubling from `first_seconds`, capped at `max_seconds`).
pub fn retry_delay(config: &NotificationsConfig, attempts: i64) -> Duration {
    let attempts = u32::try_from(attempts.max(1)).unwrap_or(u32::MAX);
    config.backoff.delay(attempts)
}

/// The event type for `X-Bulkhead-Event`: the body's `event` (`image.unhealthy`,
/// `image.unknown`, `image.new_findings`); `unknown` when the body has none or an odd one (it must be a
/// valid header value).
fn event_type(body: &str) -> String {
    #[derive(serde::Deserialize)]
    struct Event {
        event: Option<String>,
    }
    serde_json::from_str::<Event>(body)
        .ok()
        .and_then(|e| e.event)
        .filter(|e| {
            !e.is_empty()
                && e.len() <= 64
                && e.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        })
        .unwrap_or_else(|| "unknown".to_string())
}

/// What one attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The receiver answered 2xx.
    Delivered(u16),
    /// Another status, or no answer (`status` is `None`).
    Refused { status: Option<u16>, error: String },
}

/// POST `body` to `url` once, with the notification headers; signed unless `secret` is
/// empty (a tenant configured without `notify_secret_*`).
pub async fn send(
    client: &reqwest::Client,
    url: &str,
    delivery_id: i64,
    body: &str,
    secret: &str,
    timeout: Duration,
) -> Attempt {
    let timestamp = now_ms().div_euclid(1000);
    let mut request = client
        .post(url)
        .timeout(timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(HEADER_EVENT, event_type(body))
        .header(HEADER_DELIVERY, delivery_id.to_string())
        .header(HEADER_TIMESTAMP, timestamp.to_string());
    if !secret.is_empty() {
        request = request.header(
            HEADER_SIGNATURE,
            signature(secret.as_bytes(), timestamp, body.as_bytes()),
        );
    }
    let mut response = match request.body(body.to_owned()).send().await {
        Ok(r) => r,
        Err(e) => {
            return Attempt::Refused {
                status: None,
                error: bulkhead_scan::text::http_error(e),
            };
        }
    };
    let status = response.status();
    if status.is_success() {
        return Attempt::Delivered(status.as_u16());
    }
    // Some of the receiver's answer says why it refused; bounded, and only while the
    // attempt's timeout lasts (it covers the body too).
    let mut text = Vec::new();
    while text.len() < MAX_ERROR_BODY {
        match response.chunk().await {
            Ok(Some(chunk)) => text.extend_from_slice(&chunk),
            Ok(None) | Err(_) => break,
        }
    }
    text.truncate(MAX_ERROR_BODY);
    let answer = bulkhead_scan::text::sanitize(String::from_utf8_lossy(&text).trim());
    let mut error = format!("HTTP {status}");
    if !answer.is_empty() {
        error.push_str(": ");
        error.push_str(&answer);
    }
    Attempt::Refused {
        status: Some(status.as_u16()),
        error,
    }
}

/// The HTTP client for notifications: no redirects (a signed event goes to the configured
/// URL and nowhere else; a 3xx is a failed attempt).
pub fn client() -> anyhow::Result<reqwest::Client> {
    // The same crypto provider as the registry client and `db update` (one reqwest build,
    // without a provider of its own); an error only means one is installed already.
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .user_agent(concat!("bulkhead/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .map_err(|e| anyhow::anyhow!("cannot create the notification HTTP client: {e}"))
}

/// The sender task's shared parts.
struct Sender {
    store: Store,
    client: reqwest::Client,
    config: NotificationsConfig,
    metrics: Arc<Metrics>,
}

/// The background task of `bulkhead serve` that sends queued deliveries.
pub struct Notifier {
    pub store: Store,
    pub config: NotificationsConfig,
    /// How often to look for due deliveries when idle.
    pub poll: Duration,
    pub metrics: Arc<Metrics>,
    /// True once the service is stopping.
    pub shutdown: watch::Receiver<bool>,
}

impl Notifier {
    /// Start the task; it ends after the shutdown signal, once the attempts in flight have
    /// ended (each is bounded by the timeout).
    pub fn spawn(self) -> anyhow::Result<tokio::task::JoinHandle<()>> {
        let client = client()?;
        Ok(tokio::spawn(self.run(client)))
    }

    async fn run(mut self, client: reqwest::Client) {
        let sender = Arc::new(Sender {
            store: self.store.clone(),
            client,
            config: self.config.clone(),
            metrics: self.metrics.clone(),
        });
        let lease = self.config.timeout() + LEASE_MARGIN;
        let mut inflight: JoinSet<()> = JoinSet::new();
        loop {
            while let Some(r) = inflight.try_join_next() {
                if let Err(e) = r {
                    tracing::error!("a notification attempt ended abnormally: {e}");
                }
            }
            if *self.shutdown.borrow() {
                break;
            }
            if inflight.len() < PARALLEL {
                match self.store.claim_delivery(now_ms(), lease).await {
                    Ok(Some(d)) => {
                        let s = sender.clone();
                        inflight.spawn(async move { s.deliver(d).await });
                        continue;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::warn!("cannot claim a notification delivery: {e}"),
                }
            }
            tokio::select! {
                Some(r) = inflight.join_next(), if !inflight.is_empty() => {
                    if let Err(e) = r {
                        tracing::error!("a notification attempt ended abnormally: {e}");
                    }
                }
                _ = tokio::time::sleep(self.poll) => {}
                r = self.shutdown.changed() => {
                    if r.is_err() {
                        // Nobody can signal any more: the service is going away.
                        break;
                    }
                }
            }
        }
        // Let the attempts in flight end, so that their outcome is recorded rather than
        // retried after the lease.
        let grace = self.config.timeout() + Duration::from_secs(1);
        let drain = async { while inflight.join_next().await.is_some() {} };
        if tokio::time::timeout(grace, drain).await.is_err() {
            tracing::warn!(
                "notification attempts still running at exit: retried after their lease"
            );
        }
    }
}

impl Sender {
    /// One attempt of a claimed delivery, recorded.
    async fn deliver(&self, d: Delivery) {
        let max = i64::from(self.config.max_attempts);
        if d.attempts > max {
            // Claimed again after a sender died mid-attempt, with no attempt left.
            let error = format!(
                "gave up after {} attempts (notifications.max_attempts = {max}); the last ended without a recorded answer",
                d.attempts - 1
            );
            self.record_failed(&d, None, &error).await;
            return;
        }
        let Some(secret) = d.secret.as_deref() else {
            let error = "the tenant's notification target was removed from the configuration, or its notify_url changed, after this event was queued";
            self.record_failed(&d, None, error).await;
            return;
        };
        let attempt = send(
            &self.client,
            &d.url,
            d.id,
            &d.body,
            secret,
            self.config.timeout(),
        )
        .await;
        let now = now_ms();
        match attempt {
            Attempt::Delivered(status) => {
                tracing::info!(
                    delivery = d.id,
                    attempt = d.attempts,
                    status,
                    "notification delivered"
                );
                match self.store.delivery_done(d.id, status, now).await {
                    Ok(()) => self.metrics.delivery_attempt("delivered"),
                    Err(e) => tracing::warn!(
                        delivery = d.id,
                        "delivered, but cannot record it ({e}): it is sent again after its lease"
                    ),
                }
            }
            Attempt::Refused { status, error } if d.attempts >= max => {
                let error = format!("gave up after {} attempts; last: {error}", d.attempts);
                self.record_failed(&d, status, &error).await;
            }
            Attempt::Refused { status, error } => {
                let delay = retry_delay(&self.config, d.attempts);
                let next_at =
                    now.saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 4));
                tracing::warn!(
                    delivery = d.id,
                    attempt = d.attempts,
                    "notification not delivered, retrying in {delay:?}: {error}"
                );
                match self
                    .store
                    .delivery_retry(d.id, status, &error, next_at)
                    .await
                {
                    Ok(()) => self.metrics.delivery_attempt("retried"),
                    Err(e) => tracing::warn!(
                        delivery = d.id,
                        "cannot record the attempt ({e}): it is retried after its lease"
                    ),
                }
            }
        }
    }

    async fn record_failed(&self, d: &Delivery, status: Option<u16>, error: &str) {
        tracing::warn!(delivery = d.id, "notification failed for good: {error}");
        match self.store.delivery_failed(d.id, status, error).await {
            Ok(()) => self.metrics.delivery_attempt("failed"),
            Err(e) => tracing::warn!(
                delivery = d.id,
                "cannot record the failure ({e}): it is retried after its lease"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Backoff;

    #[test]
    fn the_signature_is_hmac_sha256_over_timestamp_dot_body() {
        // Oracle: OpenSSL, not this code (its HMAC gives RFC 4231's test case 2 vector):
        //   printf '%s' '1700000000.{"event":"image.unhealthy"}' \
        //     | openssl dgst -sha256 -hmac 'whsec-test'
        assert_eq!(
            signature(
                b"whsec-test",
                1_700_000_000,
                br#"{"event":"image.unhealthy"}"#
            ),
            "sha256=1506364bcf70e711a6bbf7d73716e2f00a546a42c94788fc659ae455b13f069d"
        );
        // Timestamp, body and key are all covered.
        let a = signature(b"k", 1, b"body");
        assert_ne!(a, signature(b"k", 2, b"body"));
        assert_ne!(a, signature(b"k", 1, b"body "));
        assert_ne!(a, signature(b"K", 1, b"body"));
    }

    #[test]
    fn retries_back_off_exponentially_up_to_the_cap() {
        let config = NotificationsConfig {
            max_attempts: 10,
            timeout_seconds: 10.0,
            backoff: Backoff {
                first_seconds: 5.0,
                max_seconds: 600.0,
            },
        };
        let delays: Vec<u64> = (1..=10)
            .map(|a| retry_delay(&config, a).as_secs())
            .collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 320, 600, 600, 600]);
        assert_eq!(retry_delay(&config, 0), Duration::from_secs(5));
        assert_eq!(retry_delay(&config, i64::MAX), Duration::from_secs(600));
    }

    /// A receiver on a loopback port: records each request's headers and body, answers
    /// the statuses of `answers` in turn (then 200).
    async fn receiver(
        answers: Vec<u16>,
    ) -> (
        String,
        Arc<std::sync::Mutex<Vec<(axum::http::HeaderMap, String)>>>,
    ) {
        use axum::http::StatusCode;
        let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
        let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
        let record = seen.clone();
        let app = axum::Router::new().route(
            "/hook",
            axum::routing::post(move |headers: axum::http::HeaderMap, body: String| {
                let (record, answers) = (record.clone(), answers.clone());
                async move {
                    record.lock().expect("lock").push((headers, body));
                    let status = answers.lock().expect("lock").next().unwrap_or(200);
                    (
                        StatusCode::from_u16(status).expect("status"),
                        "receiver says no\r\n",
                    )
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/hook"), seen)
    }

    #[tokio::test]
    async fn an_attempt_sends_the_signed_body_and_reports_the_answer() {
        let client = client().expect("client");
        let (url, seen) = receiver(vec![500]).await;
        let body = r#"{"event":"image.unhealthy","image":{"digest":"sha256:ab"}}"#;
        let timeout = Duration::from_secs(5);
        let refused = send(&client, &url, 42, body, "s3cret", timeout).await;
        assert_eq!(
            refused,
            Attempt::Refused {
                status: Some(500),
                error: "HTTP 500 Internal Server Error: receiver says no".into()
            }
        );
        let delivered = send(&client, &url, 42, body, "s3cret", timeout).await;
        assert_eq!(delivered, Attempt::Delivered(200));
        // Unsigned without a secret.
        let unsigned = send(&client, &url, 43, body, "", timeout).await;
        assert_eq!(unsigned, Attempt::Delivered(200));
        let seen = seen.lock().expect("lock").clone();
        assert_eq!(seen.len(), 3);
        for (i, (headers, got)) in seen.iter().enumerate() {
            let h = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string()
            };
            assert_eq!(got, body, "the body byte for byte");
            assert_eq!(h("content-type"), "application/json");
            assert_eq!(h(HEADER_EVENT), "image.unhealthy");
            let ts: i64 = h(HEADER_TIMESTAMP).parse().expect("a timestamp");
            assert!((ts - now_ms() / 1000).abs() < 60, "{ts}");
            if i < 2 {
                assert_eq!(h(HEADER_DELIVERY), "42");
                assert_eq!(
                    h(HEADER_SIGNATURE),
                    signature(b"s3cret", ts, body.as_bytes())
                );
            } else {
                assert_eq!(h(HEADER_DELIVERY), "43");
                assert!(headers.get(HEADER_SIGNATURE).is_none());
            }
        }
    }

    #[tokio::test]
    async fn no_answer_is_a_refusal_without_status() {
        let client = client().expect("client");
        // A port that was free a moment ago: nothing listens.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("port")
            .port();
        let url = format!("http://127.0.0.1:{port}/hook");
        match send(&client, &url, 1, "{}", "k", Duration::from_secs(5)).await {
            Attempt::Refused {
                status: None,
                error,
            } => assert!(!error.is_empty()),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_event_header_is_the_body_event_or_unknown() {
        assert_eq!(
            event_type(r#"{"event":"image.new_findings","at":"x"}"#),
            "image.new_findings"
        );
        assert_eq!(event_type(r#"{"at":"x"}"#), "unknown");
        assert_eq!(event_type(r#"{"event":"bad\r\nX-Injected: 1"}"#), "unknown");
        assert_eq!(event_type("not json"), "unknown");
    }
}
