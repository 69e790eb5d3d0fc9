//! The webhook worker: POSTs trigger payloads to HTTP endpoints from its own bounded, ordered
//! queue, so a slow or dead endpoint never holds up the pipeline or the alerts.
//!
//! Each request is tried up to `max_attempts` times with a per-try timeout and a doubling pause
//! between tries. Server errors (5xx), 408, 429 and network failures are retried; other 4xx
//! answers mean the request itself is wrong, so it is dropped at once with a warning. Requests go
//! out one at a time, in the order the triggers fired, at most one per `min_interval`.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::config::WebhookSettings;

/// One POST to make.
#[derive(Debug, Clone)]
pub struct WebhookRequest {
    pub url: String,
    pub body: String,
    pub content_type: String,
    /// Sent as `X-Tikrelay-Trigger`, so one endpoint can serve several triggers.
    pub trigger: String,
}

/// Cheap to clone; the worker stops when every handle is dropped and the queue has drained.
#[derive(Debug, Clone)]
pub struct WebhookHandle {
    tx: mpsc::Sender<WebhookRequest>,
    rejected: Arc<AtomicU64>,
    name: &'static str,
}

impl WebhookHandle {
    /// Queues a request without waiting; a full queue drops it (logged) and returns false.
    pub fn send(&self, request: WebhookRequest) -> bool {
        match self.tx.try_send(request) {
            Ok(()) => true,
            Err(e) => {
                let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                let name = self.name;
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => {
                        format!("{name} queue is full (is the endpoint down or slow?)")
                    }
                    mpsc::error::TrySendError::Closed(_) => format!("{name} worker has stopped"),
                };
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(rejected_total = n, "{why}; request dropped");
                }
                false
            }
        }
    }

    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// What a worker delivers to, for its log messages.
#[derive(Debug, Clone, Copy)]
pub struct Target {
    /// "webhook", "Streamer.bot", …
    pub name: &'static str,
    /// What to check when the endpoint cannot be reached.
    pub unreachable_hint: &'static str,
}

/// Webhooks: any HTTP endpoint the config names.
pub const WEBHOOK: Target = Target {
    name: "webhook",
    unreachable_hint: "check the URL and that the endpoint runs",
};

/// Starts the worker on the current runtime.
pub fn spawn_worker(settings: WebhookSettings) -> WebhookHandle {
    spawn_worker_for(settings, WEBHOOK)
}

/// Starts a worker with this delivery logic for another kind of endpoint.
pub fn spawn_worker_for(settings: WebhookSettings, target: Target) -> WebhookHandle {
    // reqwest is built without a default crypto provider; main installs ring, but library users
    // (and tests) may not have.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (tx, rx) = mpsc::channel(settings.queue_capacity.clamp(1, super::MAX_ACTION_BACKLOG));
    let client = reqwest::Client::builder()
        .timeout(settings.timeout)
        .user_agent(concat!("tikrelay/", env!("CARGO_PKG_VERSION")))
        .build();
    match client {
        Ok(client) => {
            tokio::spawn(run(client, settings, rx, target));
        }
        Err(e) => tracing::error!(
            "{} requests disabled: cannot build an HTTP client: {e}",
            target.name
        ),
    }
    WebhookHandle {
        tx,
        rejected: Arc::new(AtomicU64::new(0)),
        name: target.name,
    }
}

async fn run(
    client: reqwest::Client,
    settings: WebhookSettings,
    mut rx: mpsc::Receiver<WebhookRequest>,
    target: Target,
) {
    let mut next_start = tokio::time::Instant::now();
    while let Some(request) = rx.recv().await {
        tokio::time::sleep_until(next_start).await;
        next_start = tokio::time::Instant::now() + settings.min_interval;
        deliver(&client, &settings, &request, target).await;
    }
}

/// Tries one request until it succeeds, fails for good, or runs out of attempts; true on success.
pub async fn deliver(
    client: &reqwest::Client,
    settings: &WebhookSettings,
    request: &WebhookRequest,
    target: Target,
) -> bool {
    let name = target.name;
    let mut backoff = settings.retry_backoff;
    for attempt in 1..=settings.max_attempts.max(1) {
        let result = client
            .post(&request.url)
            .header(reqwest::header::CONTENT_TYPE, &request.content_type)
            .header("X-Tikrelay-Trigger", &request.trigger)
            .body(request.body.clone())
            .send()
            .await;
        let (retry, why) = match result {
            Ok(res) if res.status().is_success() => {
                tracing::debug!(url = %request.url, attempt, "{name} request delivered");
                return true;
            }
            Ok(res) => {
                let s = res.status();
                let retry = s.is_server_error() || s.as_u16() == 408 || s.as_u16() == 429;
                (retry, format!("answered {s}"))
            }
            Err(e) if e.is_timeout() => (true, format!("no answer within {:?}", settings.timeout)),
            Err(e) if e.is_connect() => (
                true,
                format!("cannot connect ({e}; {})", target.unreachable_hint),
            ),
            Err(e) => (true, format!("failed: {e}")),
        };
        if !retry {
            tracing::warn!(url = %request.url, trigger = %request.trigger, "{name} {why}; not retrying (check the URL and the body)");
            return false;
        }
        if attempt == settings.max_attempts.max(1) {
            tracing::warn!(url = %request.url, trigger = %request.trigger, "{name} {why}; dropped after {attempt} attempts");
            return false;
        }
        tracing::info!(url = %request.url, "{name} {why}; retry {} in {backoff:?}", attempt + 1);
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(std::time::Duration::from_secs(30));
    }
    false
}
