//! All HTTP and websocket code: the routes of DESIGN.md on one local origin.
//!
//! [`serve`] takes an already bound listener and a shutdown future, so tests bind port 0 and
//! the binary reports a bind failure as an error instead of warp's panic. Handlers are plain
//! async functions; the filters only route. Every request must name the relay in `Host`, and
//! every request that changes something must come from the relay's own origin and carry the
//! access token if there is one (see [`guard`]); connections are held to [`limits`]; responses
//! carry the security [`headers`]. Every page and theme file is sent with
//! `Cache-Control: no-store` because OBS caches aggressively.

mod accept;
mod config_api;
pub mod guard;
pub mod headers;
mod interfaces;
pub mod limits;
mod media;
mod obs;
mod sessions;
mod setup;
mod sources;
pub mod state;
mod test_event;
pub mod ws;

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;
use warp::{Filter, Reply};

use crate::hub::Hub;
use crate::pipeline::Input;
use crate::themes::ThemeRegistry;

pub use accept::serve;
pub use guard::OriginPolicy;
pub use limits::Limits;
pub use test_event::complete_test_event;

/// The overlay runtime every page loads.
pub const RELAY_JS: &str = include_str!("../../templates/relay.js");

/// Largest body accepted by `POST /api/test`.
const MAX_TEST_BODY: u64 = 64 * 1024;

/// What the handlers share.
pub struct Relay {
    pub hub: Arc<Hub>,
    /// Session totals, for the snapshot.
    pub stats: Arc<crate::stats::Stats>,
    pub themes: Arc<ThemeRegistry>,
    /// Test events go through the pipeline like every other input, in order; this feed's
    /// stream is theirs when no source runs and the request names none.
    pub input: crate::pipeline::Feed,
    /// The sources: listed, started and stopped by `/api/sources`.
    pub sources: Arc<crate::sources::manager::SourceManager>,
    pub origin: OriginPolicy,
    /// The alert queues, for queue control and replay.
    pub alerts: Arc<crate::alerts::AlertQueues>,
    /// Where OBS is, for the dashboard's connection test.
    pub obs: crate::obs::ObsSettings,
    /// Timeouts and the connection cap.
    pub limits: Limits,
    /// The image cache behind `/media/…`; `None` when its folder could not be opened.
    pub media: Option<Arc<crate::media::MediaCache>>,
    /// The current session and the past ones, for `/api/sessions`.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// The config in use and its file, for the dashboard's config panel.
    pub config: Arc<crate::config::current::ConfigState>,
    /// The trigger engine, for the per-trigger test buttons.
    pub engine: Arc<crate::triggers::Engine>,
    /// The saved setup the dashboard's first screen reads and changes (`/api/setup`).
    pub setup: Arc<crate::setup::SetupStore>,
}

/// This PC's addresses other PCs can use (IPv4, not loopback or link-local), for the URLs
/// printed at start.
pub fn lan_addresses() -> Vec<std::net::IpAddr> {
    let mut ips: Vec<std::net::IpAddr> = interfaces::addresses()
        .into_iter()
        .filter(|ip| match ip {
            std::net::IpAddr::V4(v4) => !v4.is_loopback() && !v4.is_link_local(),
            std::net::IpAddr::V6(_) => false,
        })
        .collect();
    ips.sort();
    ips.dedup();
    ips
}

fn with_relay(
    relay: Arc<Relay>,
) -> impl Filter<Extract = (Arc<Relay>,), Error = Infallible> + Clone {
    warp::any().map(move || relay.clone())
}

/// Headers (and the `token` query parameter) the origin guard reads.
fn request_origin() -> impl Filter<Extract = (guard::RequestOrigin,), Error = Infallible> + Clone {
    warp::header::headers_cloned()
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .map(|headers: warp::http::HeaderMap, query: String| {
            guard::RequestOrigin::from_parts(&headers, Some(&query))
        })
}

/// The request's `Host`, for the page's policy.
fn host() -> impl Filter<Extract = (Option<String>,), Error = warp::Rejection> + Clone {
    warp::header::optional::<String>("host")
}

pub fn routes(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    let r = || with_relay(relay.clone());

    let dashboard = warp::path::end()
        .and(warp::get())
        .and(host())
        .and(r())
        .then(dashboard)
        .boxed();
    let healthz = warp::path!("healthz")
        .and(warp::get())
        .map(|| warp::reply::json(&json!({"ok": true})).into_response())
        .boxed();
    let relay_js = warp::path!("relay.js")
        .and(warp::get())
        .map(|| no_store(with_type(RELAY_JS, "text/javascript; charset=utf-8")))
        .boxed();
    let state = warp::path!("api" / "state")
        .and(warp::get())
        .and(r())
        .map(|relay: Arc<Relay>| warp::reply::json(&state::snapshot(&relay)).into_response())
        .boxed();
    let events = warp::path!("api" / "events")
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(r())
        .map(recent_events)
        .boxed();
    let test = warp::path!("api" / "test")
        .and(warp::post())
        .and(request_origin())
        .and(warp::body::content_length_limit(MAX_TEST_BODY))
        .and(warp::body::bytes())
        .and(r())
        .then(test_event)
        .boxed();
    let themes = warp::path!("api" / "themes")
        .and(warp::get())
        .and(r())
        .map(themes_listing)
        .boxed();
    let queues = warp::path!("api" / "queues")
        .and(warp::get())
        .and(r())
        .map(|relay: Arc<Relay>| {
            warp::reply::json(&json!({
                "queues": relay.alerts.snapshot(),
                "history": relay.alerts.history(),
            }))
            .into_response()
        })
        .boxed();
    let queue_control = warp::path!("api" / "queues" / String / String)
        .and(warp::post())
        .and(request_origin())
        .and(r())
        .map(queue_control)
        .boxed();
    let replay = warp::path!("api" / "alerts" / String / "replay")
        .and(warp::post())
        .and(request_origin())
        .and(r())
        .map(replay_alert)
        .boxed();
    let overlays = warp::path("overlays")
        .and(warp::path::param::<String>())
        .and(warp::path::tail())
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(host())
        .and(r())
        .map(overlay)
        .boxed();

    dashboard
        .or(healthz)
        .unify()
        .or(relay_js)
        .unify()
        .or(state)
        .unify()
        .or(events)
        .unify()
        .or(test)
        .unify()
        .or(themes)
        .unify()
        .or(queues)
        .unify()
        .or(queue_control)
        .unify()
        .or(replay)
        .unify()
        .or(overlays)
        .unify()
        .or(obs::route(relay.clone()))
        .unify()
        .or(sessions::routes(relay.clone()))
        .unify()
        .or(sources::routes(relay.clone()))
        .unify()
        .or(media::route(relay.clone()))
        .unify()
        .or(config_api::routes(relay.clone()))
        .unify()
        .or(setup::route(relay.clone()))
        .unify()
        .recover(rejection)
        .unify()
        .boxed()
}

/// The ws URL, version and this response's CSP nonce, for the render context: templates put
/// `nonce="{{relay.nonce}}"` on their inline `<script>` and `<style>` elements.
pub fn relay_context(nonce: &str) -> Value {
    json!({"ws_url": "/ws", "version": env!("CARGO_PKG_VERSION"), "nonce": nonce})
}

async fn dashboard(host: Option<String>, relay: Arc<Relay>) -> Response {
    let nonce = headers::nonce();
    let ctx = json!({
        "relay": relay_context(&nonce),
        "pages": relay.themes.pages(),
        "problems": relay.themes.problems(),
        "event_types": crate::events::EVENT_TYPES,
    });
    match relay.themes.render_shared("dashboard", &ctx) {
        Ok(html) => {
            let mut res = no_store(warp::reply::html(html).into_response());
            headers::page(
                &mut res,
                headers::Page::Dashboard,
                Some(&nonce),
                host.as_deref(),
            );
            res
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// Pages, field declarations and problems of the themes, for the dashboard (it re-reads this
/// after every `reload` and `template_error`).
fn themes_listing(relay: Arc<Relay>) -> Response {
    no_store(
        warp::reply::json(&json!({
            "pages": relay.themes.pages(),
            "fields": relay.themes.fields(),
            "problems": relay.themes.problems(),
            "field_warnings": relay.themes.field_warnings(),
        }))
        .into_response(),
    )
}

fn recent_events(query: HashMap<String, String>, relay: Arc<Relay>) -> Response {
    let limit = query
        .get("limit")
        .and_then(|l| l.parse::<usize>().ok())
        .unwrap_or(100)
        .min(crate::hub::RECENT_EVENTS);
    // The very bytes `/ws` sent for each event, so both write the same JSON for an event.
    let recent = relay.hub.recent_with_json(limit);
    let mut body = Vec::with_capacity(2 + recent.iter().map(|(_, j)| j.len() + 1).sum::<usize>());
    body.push(b'[');
    for (i, (_, json)) in recent.iter().enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(json.as_bytes());
    }
    body.push(b']');
    let mut res = Response::new(body.into());
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    res
}

/// A control request's body as JSON, or the message of its 400: the parse error and what to
/// send instead (`example`).
pub(crate) fn json_body(body: &[u8], example: &str) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("body is not JSON ({e}); send {example}"))
}

async fn test_event(
    origin: guard::RequestOrigin,
    body: bytes::Bytes,
    relay: Arc<Relay>,
) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let partial = match json_body(&body, "an object like {\"type\":\"follow\"}") {
        Ok(v) => v,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, &why),
    };
    // The stream the request names, else the first running source's, else the relay's own.
    let stream = match partial.get("stream") {
        Some(Value::String(s)) if !s.is_empty() => s.clone(),
        _ => relay
            .sources
            .streams()
            .into_iter()
            .next()
            .unwrap_or_else(|| relay.input.stream().to_string()),
    };
    let event = match complete_test_event(partial) {
        Ok(e) => e,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, &why),
    };
    let reply = json!({"ok": true, "id": event.id});
    let feed = relay.sources.feed(&stream, crate::events::Source::Test);
    if feed.send(Input::Event(Box::new(event))).await.is_err() {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the relay is shutting down",
        );
    }
    warp::reply::json(&reply).into_response()
}

fn queue_control(
    name: String,
    action: String,
    origin: guard::RequestOrigin,
    relay: Arc<Relay>,
) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let Some(control) = crate::alerts::Control::parse(&action) else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!("unknown queue action {action:?}; use pause, resume, skip or clear"),
        );
    };
    match relay.alerts.control(&name, control) {
        Ok(state) => warp::reply::json(&json!({"ok": true, "queue": state})).into_response(),
        Err(e) => error_response(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

fn replay_alert(alert_id: String, origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    match relay.alerts.replay(&alert_id) {
        Ok(id) => warp::reply::json(&json!({"ok": true, "alert_id": id})).into_response(),
        Err(e) => error_response(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

fn overlay(
    theme: String,
    tail: warp::path::Tail,
    mut query: HashMap<String, String>,
    host: Option<String>,
    relay: Arc<Relay>,
) -> Response {
    // The access token is for relay.js, not a field of the page.
    query.remove("token");
    let rest = tail.as_str();
    let decoded = match percent_decode(rest) {
        Some(d) => d,
        None => return error_response(StatusCode::BAD_REQUEST, "path is not valid UTF-8"),
    };
    let is_page = !decoded.is_empty() && !decoded.contains('.') && !decoded.contains('/');
    if is_page {
        let nonce = headers::nonce();
        return match relay
            .themes
            .render_page(&theme, &decoded, &query, relay_context(&nonce))
        {
            Ok(html) => {
                let mut res = no_store(warp::reply::html(html).into_response());
                headers::page(
                    &mut res,
                    headers::Page::Overlay,
                    Some(&nonce),
                    host.as_deref(),
                );
                res
            }
            Err(
                e @ (crate::themes::ThemeError::NoTheme(_)
                | crate::themes::ThemeError::NoPage { .. }),
            ) => error_response(StatusCode::NOT_FOUND, &e.to_string()),
            Err(e) => {
                tracing::error!("{e}");
                error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
            }
        };
    }
    match relay.themes.file(&theme, &decoded) {
        Some((bytes, mime)) => no_store(with_type(bytes.into_owned(), mime)),
        None => error_response(
            StatusCode::NOT_FOUND,
            &format!("no file {decoded:?} in theme {theme:?}"),
        ),
    }
}

/// Decodes `%XX` escapes; `None` for invalid UTF-8. Encoded `..` is then caught by the theme's
/// path check like a plain one.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok()?;
            if let Ok(b) = u8::from_str_radix(hex, 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok()
}

fn with_type(body: impl Reply, mime: &'static str) -> Response {
    let mut res = body.into_response();
    res.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(mime));
    res
}

fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

pub fn error_response(status: StatusCode, message: &str) -> Response {
    warp::reply::with_status(warp::reply::json(&json!({"error": message})), status).into_response()
}

async fn rejection(err: warp::Rejection) -> Result<Response, Infallible> {
    let (status, message) = if err.is_not_found() {
        (StatusCode::NOT_FOUND, "no such route".to_string())
    } else if let Some(e) = err.find::<warp::reject::PayloadTooLarge>() {
        (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{e}: the limit is {MAX_TEST_BODY} bytes"),
        )
    } else if err.find::<warp::reject::MethodNotAllowed>().is_some() {
        (
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed".to_string(),
        )
    } else {
        (StatusCode::BAD_REQUEST, format!("{err:?}"))
    };
    Ok(error_response(status, &message))
}
