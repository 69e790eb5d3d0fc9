//! Streamer.bot actions: `streamerbot = { action = "Boss fight", args = { … } }` in a trigger runs
//! that action through Streamer.bot's HTTP server (`POST /DoAction` with
//! `{"action": {"name": …}, "args": {…}}`, answered 204), by default on `127.0.0.1:7474`.
//!
//! Delivery is the webhook worker's, in its own instance: an ordered, bounded queue, a timeout,
//! retries with a doubling pause, so a closed or busy Streamer.bot never delays an alert. The
//! arguments are the event's fields (`user`, `userName`, `giftName`, `count`, …, see
//! [`event_args`]) plus the trigger's own `args`, whose values are templates rendered over the
//! same context as RCON commands: every viewer string in it is made inert first
//! ([`super::safe`]), because Streamer.bot actions pass `%args%` on to chat messages, programs and
//! C# code. `%` is removed as well, so a nickname like `%broadcastUser%` cannot name another
//! Streamer.bot variable.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value, json};
use toml::Spanned;

use super::safe::{MAX_TEXT_CHARS, safe_text, safe_username};
use super::webhook::{self, Target, WebhookHandle, WebhookRequest};
use crate::config::WebhookSettings;
use crate::events::{Event, EventKind};

/// Streamer.bot's HTTP server address out of the box.
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 7474;

const TARGET: Target = Target {
    name: "Streamer.bot",
    unreachable_hint: "is Streamer.bot running, with Servers/Clients → HTTP Server started on this address?",
};

/// The `[streamerbot]` section, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamerbotSettings {
    /// `http://HOST:PORT/DoAction`.
    pub url: String,
    pub delivery: WebhookSettings,
}

impl Default for StreamerbotSettings {
    fn default() -> Self {
        StreamerbotSettings {
            url: format!("http://{DEFAULT_HOST}:{DEFAULT_PORT}/DoAction"),
            delivery: WebhookSettings::default(),
        }
    }
}

/// A trigger's Streamer.bot action; `args` holds template names.
#[derive(Debug, Clone)]
pub struct StreamerbotAction {
    pub name: Option<String>,
    pub id: Option<String>,
    /// `(argument name, template name)`.
    pub args: Vec<(String, String)>,
}

/// `[streamerbot]` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawSettings {
    host: Option<Spanned<String>>,
    port: Option<u16>,
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    retry_backoff_ms: Option<u64>,
    queue_capacity: Option<usize>,
    min_interval_ms: Option<u64>,
}

/// A trigger's `streamerbot = {…}` as serde reads it.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct RawAction {
    pub(crate) action: Option<Spanned<String>>,
    pub(crate) action_id: Option<Spanned<String>>,
    #[serde(default)]
    pub(crate) args: BTreeMap<String, Spanned<String>>,
}

impl RawSettings {
    /// The settings, or the span and message of the first invalid value.
    pub(crate) fn validate(self) -> Result<StreamerbotSettings, (std::ops::Range<usize>, String)> {
        let host = match &self.host {
            None => DEFAULT_HOST.to_string(),
            Some(h) => {
                let host = h.get_ref().trim();
                let bare = host.trim_start_matches('[').trim_end_matches(']');
                match bare.parse::<std::net::IpAddr>() {
                    Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]"),
                    Ok(ip) => ip.to_string(),
                    Err(_)
                        if !host.is_empty()
                            && host
                                .chars()
                                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-') =>
                    {
                        host.to_string()
                    }
                    Err(_) => {
                        return Err((
                            h.span(),
                            format!(
                                "streamerbot host {host:?} must be a host name or IP address, e.g. \"127.0.0.1\" (the port goes in `port`)"
                            ),
                        ));
                    }
                }
            }
        };
        Ok(StreamerbotSettings {
            url: format!(
                "http://{host}:{}/DoAction",
                self.port.unwrap_or(DEFAULT_PORT)
            ),
            delivery: crate::config::delivery(
                "streamerbot",
                crate::config::RawWebhooks {
                    timeout_ms: self.timeout_ms,
                    max_attempts: self.max_attempts,
                    retry_backoff_ms: self.retry_backoff_ms,
                    queue_capacity: self.queue_capacity,
                    min_interval_ms: self.min_interval_ms,
                },
            ),
        })
    }
}

/// The running worker and where it sends.
#[derive(Debug, Clone)]
pub struct StreamerbotWorker {
    handle: WebhookHandle,
    url: String,
}

impl StreamerbotWorker {
    pub fn spawn(settings: &StreamerbotSettings) -> StreamerbotWorker {
        StreamerbotWorker {
            handle: webhook::spawn_worker_for(settings.delivery.clone(), TARGET),
            url: settings.url.clone(),
        }
    }

    /// Queues one `DoAction`; `ctx` is the made-safe template context of the trigger.
    pub fn run(
        &self,
        templates: &handlebars::Handlebars<'static>,
        action: &StreamerbotAction,
        event: &Event,
        ctx: &Value,
        trigger: &str,
    ) {
        let mut args = event_args(event);
        args.insert("trigger".into(), json!(trigger));
        let mut ctx = ctx.clone();
        strip_percent(&mut ctx);
        for (arg, template) in &action.args {
            if let Some(value) = super::matching::render(templates, template, &ctx) {
                args.insert(arg.clone(), json!(value));
            }
        }
        let body = request_body(action, args);
        self.handle.send(WebhookRequest {
            url: self.url.clone(),
            body: body.to_string(),
            content_type: "application/json".into(),
            trigger: trigger.to_string(),
        });
    }
}

/// Removes `%` from every string: Streamer.bot reads `%name%` as a variable.
fn strip_percent(value: &mut Value) {
    match value {
        Value::String(s) if s.contains('%') => *s = s.replace('%', ""),
        Value::Array(items) => items.iter_mut().for_each(strip_percent),
        Value::Object(map) => map.values_mut().for_each(strip_percent),
        _ => {}
    }
}

/// `{"action": {"name"|"id"}, "args": {…}}`.
pub fn request_body(action: &StreamerbotAction, args: Map<String, Value>) -> Value {
    let mut target = Map::new();
    if let Some(id) = &action.id {
        target.insert("id".into(), json!(id));
    }
    if let Some(name) = &action.name {
        target.insert("name".into(), json!(name));
    }
    json!({"action": Value::Object(target), "args": Value::Object(args)})
}

/// The event's fields as Streamer.bot arguments (camelCase, as Streamer.bot's own are), every
/// viewer string made inert.
pub fn event_args(event: &Event) -> Map<String, Value> {
    let safe = |s: &str| json!(safe_text(s, MAX_TEXT_CHARS));
    let mut a = Map::new();
    a.insert("tikrelayEvent".into(), json!(event.type_name()));
    a.insert("eventId".into(), safe(&event.id));
    if let Some(user) = &event.user {
        a.insert("user".into(), json!(safe_username(Some(user))));
        a.insert("userName".into(), safe(&user.unique_id));
        a.insert("userId".into(), safe(&user.id));
    }
    match &event.kind {
        EventKind::Gift {
            gift,
            count,
            diamonds_total,
            ..
        } => {
            a.insert("giftName".into(), safe(&gift.name));
            a.insert("giftId".into(), json!(gift.id));
            a.insert("count".into(), json!(count));
            a.insert("diamonds".into(), json!(diamonds_total));
        }
        EventKind::Combo { gift, count, .. } => {
            a.insert("giftName".into(), safe(&gift.name));
            a.insert("giftId".into(), json!(gift.id));
            a.insert("count".into(), json!(count));
            a.insert(
                "diamonds".into(),
                json!(gift.diamonds.saturating_mul(*count)),
            );
        }
        EventKind::Comment { text } | EventKind::Question { text } | EventKind::Pin { text } => {
            a.insert("message".into(), safe(text));
        }
        EventKind::Like { count, total } => {
            a.insert("likeCount".into(), json!(count));
            a.insert("totalLikeCount".into(), json!(total));
        }
        EventKind::Viewers { viewers, .. } => {
            a.insert("viewerCount".into(), json!(viewers));
        }
        EventKind::Subscribe { months } => {
            a.insert("subMonth".into(), json!(months.unwrap_or(0)));
        }
        _ => {}
    }
    let mut args = Value::Object(a);
    strip_percent(&mut args);
    match args {
        Value::Object(a) => a,
        _ => unreachable!("an object stays an object"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{GiftInfo, Source, User};

    fn raw(text: &str) -> RawSettings {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn settings_default_to_streamerbots_own_address() {
        assert_eq!(
            raw("").validate().unwrap().url,
            "http://127.0.0.1:7474/DoAction"
        );
        assert_eq!(
            raw("host = \"192.168.1.5\"\nport = 8080")
                .validate()
                .unwrap()
                .url,
            "http://192.168.1.5:8080/DoAction"
        );
        assert_eq!(
            raw("host = \"::1\"").validate().unwrap().url,
            "http://[::1]:7474/DoAction"
        );
        let (_, m) = raw("host = \"127.0.0.1:7474\"").validate().unwrap_err();
        assert!(m.contains("`port`"), "{m}");
        let (_, m) = raw("host = \"http://pc/\"").validate().unwrap_err();
        assert!(m.contains("host name"), "{m}");
    }

    #[test]
    fn event_args_are_made_safe() {
        let e = Event::new(
            EventKind::Gift {
                gift: GiftInfo {
                    id: 5655,
                    name: "Rose\"; rm".into(),
                    diamonds: 1,
                    image_url: None,
                    streakable: true,
                    ..Default::default()
                },
                count: 5,
                diamonds_total: 5,
                combo_id: None,
            },
            "1",
            Source::Test,
        )
        .with_user(Some(User {
            id: "9".into(),
            unique_id: "x".into(),
            nickname: "\"}; /kill @a\n".into(),
            avatar_url: None,
            ..Default::default()
        }));
        let a = event_args(&e);
        assert_eq!(a["user"], "kill a");
        assert_eq!(a["giftName"], "Rose rm");
        assert_eq!((&a["count"], &a["diamonds"]), (&json!(5), &json!(5)));
        let body = request_body(
            &StreamerbotAction {
                name: Some("Boss fight".into()),
                id: None,
                args: vec![],
            },
            a,
        );
        assert_eq!(body["action"], json!({"name": "Boss fight"}));
    }
}
