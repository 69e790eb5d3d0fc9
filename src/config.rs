//! The config file (TOML, `--config FILE`): alert queues, triggers with their conditions and
//! actions, the RCON server, webhook delivery settings and goals.
//!
//! Loading is two-stage: serde reads the raw tables (unknown keys are errors, so a typo never
//! silently disables a trigger), then [`Config::parse`] validates every value and compiles what
//! can be compiled up front (regexes, handlebars templates), so nothing fails later in the middle
//! of a stream. Every error names the file, line and column (from toml's spans) and says what to
//! write instead. Without a file, [`DEFAULT_CONFIG`] gives follow, share and gift alerts on the
//! queue `main`.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use handlebars::Handlebars;
use regex::Regex;
use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::events::EVENT_TYPES;

/// The built-in config, used when no `--config` is given.
pub const DEFAULT_CONFIG: &str = r#"# tikrelay built-in config: follow, share and gift alerts on queue "main".
[queues.main]
default_duration_ms = 5000
max_pending = 100

[[trigger]]
name = "follow"
on = "follow"
alert = { queue = "main", title = "{{name}}", subtitle = "followed you!" }

[[trigger]]
name = "share"
on = "share"
alert = { queue = "main", title = "{{name}}", subtitle = "shared the LIVE!" }

[[trigger]]
name = "gift"
on = "gift"
alert = { queue = "main", duration_ms = 6000, title = "{{name}}", subtitle = "sent {{gift.name}}{{#if (gt count 1)}} x{{count}}{{/if}}", image = "{{gift.image_url}}" }

[goals]
likes = 10000
follows = 100
shares = 50
diamonds = 1000
"#;

/// Queue used by alerts that name none; always defined.
pub const MAIN_QUEUE: &str = "main";
/// Environment variable that supplies the RCON password (wins over the file).
pub const RCON_PASSWORD_ENV: &str = "TIKRELAY_RCON_PASSWORD";

const DEFAULT_DURATION_MS: u64 = 6000;
const DEFAULT_MAX_PENDING: usize = 100;
const DEFAULT_MAX_REPEAT: u32 = 100;
const DURATION_RANGE: Range<u64> = 100..600_001;

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Invalid {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One alert queue's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueConfig {
    pub default_duration_ms: u64,
    /// Alerts that may wait; one more drops the oldest.
    pub max_pending: usize,
}

impl Default for QueueConfig {
    fn default() -> Self {
        QueueConfig {
            default_duration_ms: DEFAULT_DURATION_MS,
            max_pending: DEFAULT_MAX_PENDING,
        }
    }
}

/// Which gift a trigger wants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GiftMatch {
    /// Compared case-insensitively.
    Name(String),
    Id(u64),
}

/// Opt-in limit for one viewer firing a trigger again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OncePer {
    Session,
    Window(Duration),
}

/// The alert a trigger puts on a queue; the texts are names of compiled templates.
#[derive(Debug, Clone)]
pub struct AlertAction {
    pub queue: String,
    /// `None`: the queue's default.
    pub duration_ms: Option<u64>,
    /// `(var name, template name)` for title, subtitle, sound, image.
    pub vars: Vec<(&'static str, String)>,
}

#[derive(Debug, Clone)]
pub struct WebhookAction {
    pub url: String,
    /// Template name of the body; `None` sends the event JSON.
    pub body: Option<String>,
    pub content_type: String,
}

/// One validated `[[trigger]]`.
#[derive(Debug, Clone)]
pub struct Trigger {
    pub name: String,
    pub on: String,
    pub gift: Option<GiftMatch>,
    pub min_diamonds: Option<u64>,
    pub min_count: Option<u64>,
    pub pattern: Option<Regex>,
    pub every_likes: Option<u64>,
    pub cooldown: Option<Duration>,
    pub user_cooldown: Option<Duration>,
    pub per_unit: bool,
    pub max_repeat: u32,
    pub once_per: Option<OncePer>,
    pub alert: Option<AlertAction>,
    /// Template names of the RCON commands, run in this order.
    pub rcon: Vec<String>,
    pub webhook: Option<WebhookAction>,
}

/// The RCON server. `Debug` hides the password.
#[derive(Clone)]
pub struct RconSettings {
    pub addr: String,
    pub password: String,
    pub min_interval: Duration,
    pub queue_capacity: usize,
    pub timeout: Duration,
}

impl fmt::Debug for RconSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RconSettings")
            .field("addr", &self.addr)
            .field("password", &"<hidden>")
            .field("min_interval", &self.min_interval)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

/// How webhooks are delivered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookSettings {
    pub timeout: Duration,
    /// Tries per request, the first included.
    pub max_attempts: u32,
    pub retry_backoff: Duration,
    pub queue_capacity: usize,
    /// Least time between the starts of two requests, so a gift storm does not flood the
    /// endpoint.
    pub min_interval: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            timeout: Duration::from_secs(5),
            max_attempts: 3,
            retry_backoff: Duration::from_millis(500),
            queue_capacity: 1000,
            min_interval: Duration::from_millis(50),
        }
    }
}

/// Targets of the goals shown in the snapshot; unset goals are not shown.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Goals {
    pub likes: Option<u64>,
    pub follows: Option<u64>,
    pub diamonds: Option<u64>,
    pub shares: Option<u64>,
}

/// A validated config, ready to run.
pub struct Config {
    /// The file it came from, or `built-in default`.
    pub origin: String,
    pub queues: BTreeMap<String, QueueConfig>,
    pub triggers: Vec<Trigger>,
    pub rcon: Option<RconSettings>,
    pub webhooks: WebhookSettings,
    pub goals: Goals,
    /// Alert texts and RCON commands: rendered raw (no HTML escaping; pages insert text with
    /// textContent, and RCON context strings are made safe before rendering).
    pub text_templates: Handlebars<'static>,
    /// Webhook bodies: values are JSON-string escaped, so a body like `{"who":"{{name}}"}`
    /// stays valid JSON whatever the nickname holds.
    pub json_templates: Handlebars<'static>,
}

impl fmt::Debug for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Config")
            .field("origin", &self.origin)
            .field("queues", &self.queues)
            .field("triggers", &self.triggers)
            .field("rcon", &self.rcon)
            .field("webhooks", &self.webhooks)
            .field("goals", &self.goals)
            .finish_non_exhaustive()
    }
}

// ---- raw form, as serde reads it ----

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    queues: BTreeMap<String, Spanned<RawQueue>>,
    #[serde(default, rename = "trigger")]
    triggers: Vec<Spanned<RawTrigger>>,
    rcon: Option<Spanned<RawRcon>>,
    webhooks: Option<RawWebhooks>,
    #[serde(default)]
    goals: Goals,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawQueue {
    default_duration_ms: Option<Spanned<u64>>,
    max_pending: Option<Spanned<usize>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTrigger {
    name: Option<String>,
    on: Spanned<String>,
    gift: Option<Spanned<toml::Value>>,
    min_diamonds: Option<u64>,
    min_count: Option<u64>,
    pattern: Option<Spanned<String>>,
    every_likes: Option<Spanned<u64>>,
    cooldown_ms: Option<u64>,
    user_cooldown_ms: Option<u64>,
    repeat: Option<Spanned<String>>,
    max_repeat: Option<Spanned<u32>>,
    follow_once_per: Option<Spanned<toml::Value>>,
    alert: Option<Spanned<RawAlert>>,
    rcon: Option<Vec<Spanned<String>>>,
    webhook: Option<RawWebhook>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAlert {
    queue: Option<Spanned<String>>,
    duration_ms: Option<Spanned<u64>>,
    title: Option<Spanned<String>>,
    subtitle: Option<Spanned<String>>,
    sound: Option<Spanned<String>>,
    image: Option<Spanned<String>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhook {
    url: Spanned<String>,
    body: Option<Spanned<String>>,
    content_type: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRcon {
    addr: Spanned<String>,
    password: Option<String>,
    min_interval_ms: Option<u64>,
    queue_capacity: Option<usize>,
    timeout_ms: Option<u64>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawWebhooks {
    timeout_ms: Option<u64>,
    max_attempts: Option<u32>,
    retry_backoff_ms: Option<u64>,
    queue_capacity: Option<usize>,
    min_interval_ms: Option<u64>,
}

/// The file name and its text, so errors can point at a line and column.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Where each compiled template's text is, by template name.
    spans: std::cell::RefCell<BTreeMap<String, Range<usize>>>,
}

/// ` (template line L, column C)` when the position is known.
fn template_at(line: Option<usize>, column: Option<usize>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(" (template line {l}, column {c})"),
        (Some(l), None) => format!(" (template line {l})"),
        _ => String::new(),
    }
}

impl Ctx<'_> {
    fn err(&self, span: Range<usize>, message: impl Into<String>) -> ConfigError {
        let (line, column) = line_col(self.text, span.start);
        ConfigError::Invalid {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let mut at = offset;
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    let before = &text[..at];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

/// Loads `path`, or the built-in default when `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => Config::parse(DEFAULT_CONFIG, "built-in default config"),
        Some(path) => {
            let file = path.display().to_string();
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                file: file.clone(),
                source,
            })?;
            Config::parse(&text, &file)
        }
    }
}

impl Config {
    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cx = Ctx {
            file,
            text,
            spans: Default::default(),
        };
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            cx.err(span, e.message().trim_end().to_string())
        })?;
        let mut config = Config {
            origin: file.to_string(),
            queues: BTreeMap::new(),
            triggers: Vec::new(),
            rcon: None,
            webhooks: WebhookSettings::default(),
            goals: raw.goals,
            text_templates: text_registry(),
            json_templates: json_registry(),
        };
        config
            .queues
            .insert(MAIN_QUEUE.to_string(), QueueConfig::default());
        for (name, q) in raw.queues {
            if !valid_name(&name) {
                return Err(cx.err(
                    q.span(),
                    format!(
                        "queue name {name:?} must be 1-64 letters, digits, '-' or '_' (it goes in URLs: /ws?queue=NAME)"
                    ),
                ));
            }
            let q = q.into_inner();
            let mut settings = QueueConfig::default();
            if let Some(d) = q.default_duration_ms {
                settings.default_duration_ms = duration_ms(&cx, &d)?;
            }
            if let Some(m) = q.max_pending {
                if *m.get_ref() == 0 || *m.get_ref() > 100_000 {
                    return Err(cx.err(m.span(), "max_pending must be between 1 and 100000"));
                }
                settings.max_pending = m.into_inner();
            }
            config.queues.insert(name, settings);
        }
        if let Some(r) = raw.rcon {
            let span = r.span();
            let r = r.into_inner();
            let password = std::env::var(RCON_PASSWORD_ENV)
                .ok()
                .filter(|p| !p.is_empty())
                .or(r.password)
                .filter(|p| !p.is_empty())
                .ok_or_else(|| {
                    cx.err(
                        span.clone(),
                        format!(
                            "[rcon] needs a password: set password = \"…\" (rcon.password in server.properties) or the environment variable {RCON_PASSWORD_ENV}"
                        ),
                    )
                })?;
            let addr = r.addr.get_ref().trim().to_string();
            if addr
                .rsplit_once(':')
                .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
            {
                return Err(cx.err(
                    r.addr.span(),
                    format!("rcon addr {addr:?} must be host:port, e.g. \"127.0.0.1:25575\""),
                ));
            }
            config.rcon = Some(RconSettings {
                addr,
                password,
                min_interval: Duration::from_millis(r.min_interval_ms.unwrap_or(50)),
                queue_capacity: r.queue_capacity.unwrap_or(1000).clamp(1, 100_000),
                timeout: Duration::from_millis(r.timeout_ms.unwrap_or(5000).max(100)),
            });
        }
        if let Some(w) = raw.webhooks {
            let d = WebhookSettings::default();
            config.webhooks = WebhookSettings {
                timeout: w
                    .timeout_ms
                    .map_or(d.timeout, |ms| Duration::from_millis(ms.max(100))),
                max_attempts: w.max_attempts.unwrap_or(d.max_attempts).clamp(1, 20),
                retry_backoff: w
                    .retry_backoff_ms
                    .map_or(d.retry_backoff, Duration::from_millis),
                queue_capacity: w
                    .queue_capacity
                    .unwrap_or(d.queue_capacity)
                    .clamp(1, 100_000),
                min_interval: w
                    .min_interval_ms
                    .map_or(d.min_interval, Duration::from_millis),
            };
        }
        for (i, t) in raw.triggers.into_iter().enumerate() {
            let trigger = config.trigger(&cx, i, t)?;
            config.triggers.push(trigger);
        }
        // Trigger texts may define inline partials and include each other by name.
        for registry in [&config.text_templates, &config.json_templates] {
            if let Some(p) = crate::themes::limits::check_partials(registry)
                .into_iter()
                .next()
            {
                let span = cx.spans.borrow().get(&p.template).cloned().unwrap_or(0..0);
                return Err(cx.err(
                    span,
                    format!(
                        "template refused{}: {}",
                        template_at(p.line, p.column),
                        p.message
                    ),
                ));
            }
        }
        Ok(config)
    }

    fn template(
        &mut self,
        cx: &Ctx,
        name: String,
        source: &Spanned<String>,
        json: bool,
    ) -> Result<String, ConfigError> {
        let registry = if json {
            &mut self.json_templates
        } else {
            &mut self.text_templates
        };
        // The same limits as theme templates (nesting, partial depth): a trigger text that
        // would overflow the stack when an event arrives is refused here instead.
        let template = crate::themes::compile_checked(&name, source.get_ref()).map_err(|e| {
            cx.err(
                source.span(),
                format!(
                    "template does not compile{}: {}",
                    template_at(e.line, e.column),
                    e.message
                ),
            )
        })?;
        registry.register_template(&name, template);
        cx.spans.borrow_mut().insert(name.clone(), source.span());
        Ok(name)
    }

    fn trigger(
        &mut self,
        cx: &Ctx,
        index: usize,
        raw: Spanned<RawTrigger>,
    ) -> Result<Trigger, ConfigError> {
        let span = raw.span();
        let t = raw.into_inner();
        let on = t.on.get_ref().trim().to_string();
        if !EVENT_TYPES.contains(&on.as_str()) {
            return Err(cx.err(
                t.on.span(),
                format!(
                    "unknown event type {on:?} in `on`; use one of: {}",
                    EVENT_TYPES.join(", ")
                ),
            ));
        }
        let name = t
            .name
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| format!("{on}#{}", index + 1));
        let key = format!("t{index}");
        let gift = match &t.gift {
            None => None,
            Some(g) => {
                if on != "gift" && on != "combo" {
                    return Err(cx.err(
                        g.span(),
                        "`gift` only applies to on = \"gift\" or on = \"combo\"",
                    ));
                }
                Some(match g.get_ref() {
                    toml::Value::String(s) if !s.trim().is_empty() => {
                        GiftMatch::Name(s.trim().to_lowercase())
                    }
                    toml::Value::Integer(n) if *n > 0 => GiftMatch::Id(*n as u64),
                    _ => {
                        return Err(cx.err(
                            g.span(),
                            "`gift` is a gift name (\"Rose\") or a gift id (5655)",
                        ));
                    }
                })
            }
        };
        let pattern = match &t.pattern {
            None => None,
            Some(p) => {
                if !matches!(on.as_str(), "comment" | "question" | "pin") {
                    return Err(cx.err(
                        p.span(),
                        "`pattern` only applies to on = \"comment\", \"question\" or \"pin\"",
                    ));
                }
                Some(
                    regex::RegexBuilder::new(p.get_ref())
                        .size_limit(1 << 20)
                        .build()
                        .map_err(|e| {
                            cx.err(p.span(), format!("`pattern` is not a valid regex: {e}"))
                        })?,
                )
            }
        };
        let every_likes = match &t.every_likes {
            None => None,
            Some(n) => {
                if on != "like" {
                    return Err(cx.err(n.span(), "`every_likes` only applies to on = \"like\""));
                }
                if *n.get_ref() == 0 {
                    return Err(cx.err(n.span(), "`every_likes` must be at least 1"));
                }
                Some(*n.get_ref())
            }
        };
        let per_unit = match &t.repeat {
            None => false,
            Some(r) => match r.get_ref().as_str() {
                "per_unit" if on == "combo" => {
                    return Err(cx.err(
                        r.span(),
                        "repeat = \"per_unit\" does not fit on = \"combo\" (each combo update carries the running count); use on = \"gift\", which sees each streak once, when it ends",
                    ));
                }
                "per_unit" => true,
                "once" => false,
                other => {
                    return Err(cx.err(
                        r.span(),
                        format!(
                            "`repeat` is \"per_unit\" (a x5 gift runs the actions 5 times) or \"once\", not {other:?}"
                        ),
                    ));
                }
            },
        };
        let max_repeat = match &t.max_repeat {
            None => DEFAULT_MAX_REPEAT,
            Some(m) if (1..=10_000).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => return Err(cx.err(m.span(), "`max_repeat` must be between 1 and 10000")),
        };
        let once_per = match &t.follow_once_per {
            None => None,
            Some(v) => Some(match v.get_ref() {
                toml::Value::String(s) if s == "session" => OncePer::Session,
                toml::Value::Integer(n) if *n > 0 => {
                    OncePer::Window(Duration::from_secs(*n as u64))
                }
                _ => {
                    return Err(cx.err(
                        v.span(),
                        "`follow_once_per` is \"session\" or a number of seconds, e.g. 3600",
                    ));
                }
            }),
        };
        let alert = match t.alert {
            None => None,
            Some(a) => {
                let a_span = a.span();
                let a = a.into_inner();
                let queue = match &a.queue {
                    None => MAIN_QUEUE.to_string(),
                    Some(q) => {
                        if !self.queues.contains_key(q.get_ref()) {
                            return Err(cx.err(
                                q.span(),
                                format!(
                                    "alert queue {:?} is not defined; add a [queues.{}] table or use one of: {}",
                                    q.get_ref(),
                                    q.get_ref(),
                                    self.queues.keys().cloned().collect::<Vec<_>>().join(", ")
                                ),
                            ));
                        }
                        q.get_ref().clone()
                    }
                };
                let duration_ms = match &a.duration_ms {
                    None => None,
                    Some(d) => Some(duration_ms(cx, d)?),
                };
                let mut vars = Vec::new();
                for (var, src) in [
                    ("title", &a.title),
                    ("subtitle", &a.subtitle),
                    ("sound", &a.sound),
                    ("image", &a.image),
                ] {
                    if let Some(src) = src {
                        let name = self.template(cx, format!("{key}.alert.{var}"), src, false)?;
                        vars.push((var, name));
                    }
                }
                if vars.is_empty() {
                    return Err(cx.err(
                        a_span,
                        "the alert has no text: give at least a title, e.g. title = \"{{name}} followed!\"",
                    ));
                }
                Some(AlertAction {
                    queue,
                    duration_ms,
                    vars,
                })
            }
        };
        let mut rcon = Vec::new();
        for (i, cmd) in t.rcon.iter().flatten().enumerate() {
            if self.rcon.is_none() {
                return Err(cx.err(
                    cmd.span(),
                    "this trigger runs RCON commands but there is no [rcon] table; add [rcon] with addr and password",
                ));
            }
            if cmd.get_ref().trim().is_empty() {
                return Err(cx.err(cmd.span(), "empty RCON command"));
            }
            rcon.push(self.template(cx, format!("{key}.rcon.{i}"), cmd, false)?);
        }
        let webhook = match t.webhook {
            None => None,
            Some(w) => {
                let url = w.url.get_ref().trim().to_string();
                match reqwest::Url::parse(&url) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") => {}
                    _ => {
                        return Err(cx.err(
                            w.url.span(),
                            format!("webhook url {url:?} must be an http:// or https:// URL"),
                        ));
                    }
                }
                let body = match &w.body {
                    None => None,
                    Some(b) => Some(self.template(cx, format!("{key}.webhook"), b, true)?),
                };
                Some(WebhookAction {
                    url,
                    body,
                    content_type: w
                        .content_type
                        .unwrap_or_else(|| "application/json".to_string()),
                })
            }
        };
        if alert.is_none() && rcon.is_empty() && webhook.is_none() {
            return Err(cx.err(
                span,
                format!(
                    "trigger {name:?} does nothing: give it an alert, rcon commands or a webhook"
                ),
            ));
        }
        Ok(Trigger {
            name,
            on,
            gift,
            min_diamonds: t.min_diamonds,
            min_count: t.min_count,
            pattern,
            every_likes,
            cooldown: t.cooldown_ms.map(Duration::from_millis),
            user_cooldown: t.user_cooldown_ms.map(Duration::from_millis),
            per_unit,
            max_repeat,
            once_per,
            alert,
            rcon,
            webhook,
        })
    }
}

fn duration_ms(cx: &Ctx, d: &Spanned<u64>) -> Result<u64, ConfigError> {
    if DURATION_RANGE.contains(d.get_ref()) {
        Ok(*d.get_ref())
    } else {
        Err(cx.err(
            d.span(),
            "durations are milliseconds between 100 and 600000 (10 minutes)",
        ))
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

fn text_registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(handlebars::no_escape);
    crate::themes::limits::register_guard(&mut h);
    h
}

fn json_registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(|s| {
        let quoted = serde_json::to_string(s).unwrap_or_default();
        quoted[1..quoted.len() - 1].to_string()
    });
    crate::themes::limits::register_guard(&mut h);
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    fn invalid(text: &str) -> (usize, usize, String) {
        match Config::parse(text, "t.toml") {
            Err(ConfigError::Invalid {
                line,
                column,
                message,
                ..
            }) => (line, column, message),
            Err(e) => panic!("unexpected {e}"),
            Ok(_) => panic!("config accepted:\n{text}"),
        }
    }

    #[test]
    fn the_default_config_is_valid() {
        let c = Config::parse(DEFAULT_CONFIG, "default").unwrap();
        let ons: Vec<&str> = c.triggers.iter().map(|t| t.on.as_str()).collect();
        assert_eq!(ons, ["follow", "share", "gift"]);
        assert_eq!(c.queues[MAIN_QUEUE].max_pending, 100);
        assert_eq!(c.goals.likes, Some(10000));
    }

    #[test]
    fn a_full_config_parses() {
        let text = r#"
[queues.main]
default_duration_ms = 4000
[queues.side]
max_pending = 5
[rcon]
addr = "127.0.0.1:25575"
password = "pw"
[[trigger]]
on = "gift"
gift = 5655
min_count = 2
repeat = "per_unit"
max_repeat = 10
rcon = ["say {{name}}", "summon zombie"]
alert = { queue = "side", title = "{{name}}" }
[[trigger]]
on = "comment"
pattern = "(?i)^!jump"
cooldown_ms = 2000
user_cooldown_ms = 10000
webhook = { url = "http://127.0.0.1:9/x", body = '{"who":"{{name}}"}' }
[[trigger]]
on = "follow"
follow_once_per = 3600
alert = { title = "x" }
[[trigger]]
on = "like"
every_likes = 1000
alert = { title = "x" }
"#;
        let c = Config::parse(text, "t.toml").unwrap();
        assert_eq!(c.triggers.len(), 4);
        assert_eq!(c.triggers[0].gift, Some(GiftMatch::Id(5655)));
        assert!(c.triggers[0].per_unit);
        assert_eq!(c.triggers[0].rcon.len(), 2);
        assert_eq!(c.triggers[0].alert.as_ref().unwrap().queue, "side");
        assert_eq!(c.triggers[1].name, "comment#2");
        assert_eq!(
            c.triggers[2].once_per,
            Some(OncePer::Window(Duration::from_secs(3600)))
        );
        assert_eq!(c.queues["main"].default_duration_ms, 4000);
        assert!(!format!("{:?}", c.rcon).contains("pw"));
    }

    #[test]
    fn errors_name_line_and_column() {
        let (l, c, m) = invalid("[[trigger]]\non = \"folow\"\nalert = { title = \"x\" }\n");
        assert_eq!((l, c), (2, 6), "{m}");
        assert!(
            m.contains("unknown event type") && m.contains("follow"),
            "{m}"
        );

        let (l, c, m) =
            invalid("[[trigger]]\non = \"comment\"\npattern = \"(\"\nalert = { title = \"x\" }\n");
        assert_eq!((l, c), (3, 11), "{m}");
        assert!(m.contains("regex"), "{m}");

        let (l, _, m) = invalid("[[trigger]]\non = \"follow\"\nalerts = { title = \"x\" }\n");
        assert_eq!(l, 3, "{m}");
        assert!(m.contains("alerts"), "{m}");

        let (l, c, m) = invalid("[[trigger]]\non = \"follow\"\nalert = { title = \"{{#if}}\" }\n");
        assert_eq!((l, c), (3, 19), "{m}");
        assert!(m.contains("template"), "{m}");

        let (l, _, m) =
            invalid("[[trigger]]\non = \"follow\"\nalert = { queue = \"mian\", title = \"x\" }\n");
        assert_eq!(l, 3);
        assert!(m.contains("[queues.mian]"), "{m}");

        let (l, _, m) = invalid("[[trigger]]\non = \"follow\"\nrcon = [\"say hi\"]\n");
        assert_eq!(l, 3);
        assert!(m.contains("[rcon]"), "{m}");

        let (l, c, m) = invalid("x = = 1\n");
        assert_eq!((l, c), (1, 5), "{m}");

        let (_, _, m) = invalid("[[trigger]]\non = \"follow\"\n");
        assert!(m.contains("does nothing"), "{m}");

        let (l, c, m) = invalid(
            "[[trigger]]\non = \"combo\"\nrepeat = \"per_unit\"\nalert = { title = \"x\" }\n",
        );
        assert_eq!((l, c), (3, 10), "{m}");
        assert!(m.contains("on = \"gift\""), "{m}");
    }

    #[test]
    fn templates_that_would_overflow_the_stack_are_refused_with_their_position() {
        let (l, c, m) = invalid(
            "[[trigger]]\non = \"follow\"\nalert = { title = '{{#*inline \"r\"}}{{> r}}{{/inline}}{{> r}}' }\n",
        );
        assert_eq!((l, c), (3, 19), "{m}");
        assert!(m.contains("includes itself"), "{m}");

        let deep = format!("{}x{}", "{{#if user}}".repeat(3000), "{{/if}}".repeat(3000));
        let (l, c, m) = invalid(&format!(
            "[[trigger]]\non = \"follow\"\nalert = {{ title = \"{deep}\" }}\n"
        ));
        assert_eq!((l, c), (3, 19), "{m}");
        assert!(m.contains("nest more than"), "{m}");

        // Two texts that include each other through inline partials of the same name.
        let (l, _, m) = invalid(
            "[[trigger]]\non = \"follow\"\nalert = { title = '{{#*inline \"a\"}}{{> b}}{{/inline}}x', subtitle = '{{#*inline \"b\"}}{{> a}}{{/inline}}y' }\n",
        );
        assert_eq!(l, 3, "{m}");
        assert!(m.contains("includes itself"), "{m}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 0), (1, 1));
    }
}
