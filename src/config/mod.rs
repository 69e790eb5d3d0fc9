//! The config file (TOML, `--config FILE`): alert queues, triggers with their conditions and
//! actions, the RCON server, webhook delivery settings and goals. This module owns the validated
//! types the rest of the program reads, the built-in default, and the way in: [`load`] (a bounded
//! file read) and [`Config::parse`].
//!
//! Loading is two-stage: serde reads the raw tables (`raw.rs`: unknown keys are errors, so a typo
//! never silently disables a trigger), then `validate.rs` checks every value and compiles what can
//! be compiled up front (regexes, handlebars templates), so nothing fails later in the middle of a
//! stream. Every error names the file, line and column (from toml's spans) and says what to write
//! instead. Without a file, [`DEFAULT_CONFIG`] gives follow, share and gift alerts on the queue
//! `main`.

mod conditions;
pub mod current;
pub mod edit;
pub mod location;
mod raw;
mod validate;
pub mod watch;

pub use location::default_path;

pub(crate) use raw::RawWebhooks;
pub(crate) use validate::delivery;

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;
use std::path::Path;
use std::time::Duration;

use handlebars::Handlebars;
use regex::Regex;
use serde::{Deserialize, Serialize};

pub use crate::triggers::streamerbot::{StreamerbotAction, StreamerbotSettings};

/// The built-in config: used when no config file is found, and written (comments included) as
/// the per-user config file on the first start (see [`location`]).
pub const DEFAULT_CONFIG: &str = include_str!("default.toml");

/// Queue used by alerts that name none; always defined.
pub const MAIN_QUEUE: &str = "main";
/// Environment variable that supplies the RCON password (wins over the file).
pub const RCON_PASSWORD_ENV: &str = "TIKRELAY_RCON_PASSWORD";

const DEFAULT_DURATION_MS: u64 = 6000;
const DEFAULT_MAX_PENDING: usize = 100;

/// Why a config cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {file}: {source}")]
    Read {
        file: String,
        source: std::io::Error,
    },
    #[error("config file {file} is {what}, not a regular file; pass the path of a .toml file")]
    NotAFile { file: String, what: &'static str },
    #[error(
        "config file {file} is larger than {MAX_CONFIG_BYTES} bytes (a config is a few KiB); is this the right file?"
    )]
    TooLarge { file: String },
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
    /// Fires only for events of this stream (`stream = "alice"`); `None`: every stream.
    pub stream: Option<String>,
    pub gift: Option<GiftMatch>,
    pub min_diamonds: Option<u64>,
    pub min_count: Option<u64>,
    pub pattern: Option<Regex>,
    /// `who`: only viewers with one of these roles; empty matches anyone.
    pub who: Vec<crate::triggers::who::Role>,
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
    /// A Streamer.bot action to run (`DoAction`).
    pub streamerbot: Option<StreamerbotAction>,
    /// OBS scene, source or text action (see [`crate::obs`]).
    pub obs: Option<crate::obs::ObsAction>,
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

/// A sound or image file an alert names, and where (for `tikrelay check`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlertFile {
    /// Index of the trigger in [`Config::triggers`].
    pub trigger: usize,
    /// `sound` or `image`.
    pub var: &'static str,
    pub path: String,
    pub line: usize,
    pub column: usize,
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
    /// Streamer.bot's HTTP server (`[streamerbot]`, defaults when absent).
    pub streamerbot: StreamerbotSettings,
    /// `[compat] port`: the TikFinity-compatible socket's port, if opened from the config.
    pub compat_port: Option<u16>,
    /// Where OBS's websocket server is: `[obs]`, or OBS's defaults.
    pub obs: crate::obs::ObsSettings,
    /// `[media]`: the image cache's cap and extra allowed hosts.
    pub media: crate::media::MediaSettings,
    /// `[live] sign_api_key`: the sign server's API key (the flag and environment variable
    /// win). Secret: left out of `Debug`, never logged, masked by every API
    /// ([`current::mask_key`]).
    pub sign_api_key: Option<String>,
    /// The sound and image files alerts name literally (not as a template), for `check`.
    pub alert_files: Vec<AlertFile>,
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
            .field("streamerbot", &self.streamerbot)
            .field("compat_port", &self.compat_port)
            .field("obs", &self.obs)
            .finish_non_exhaustive()
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

/// The file name and its text, so errors can point at a line and column.
struct Ctx<'a> {
    file: &'a str,
    text: &'a str,
    /// Where each compiled template's text is, by template name.
    spans: std::cell::RefCell<BTreeMap<String, Range<usize>>>,
}

impl<'a> Ctx<'a> {
    fn new(file: &'a str, text: &'a str) -> Self {
        Ctx {
            file,
            text,
            spans: Default::default(),
        }
    }

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

/// The largest config file read. A real config is a few KiB; without a bound, `--config
/// /dev/zero` never finished reading.
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a config file of at most [`MAX_CONFIG_BYTES`]; devices, FIFOs and folders are refused
/// before they are opened (opening a FIFO would wait for a writer).
fn read_bounded(path: &Path, file: &str) -> Result<String, ConfigError> {
    use std::io::Read;
    let read_error = |source| ConfigError::Read {
        file: file.to_string(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(read_error)?;
    if !meta.is_file() {
        let what = if meta.is_dir() {
            "a folder"
        } else {
            "a device, pipe or socket"
        };
        return Err(ConfigError::NotAFile {
            file: file.to_string(),
            what,
        });
    }
    let mut bytes = Vec::new();
    std::fs::File::open(path)
        .and_then(|f| f.take(MAX_CONFIG_BYTES + 1).read_to_end(&mut bytes))
        .map_err(read_error)?;
    if bytes.len() as u64 > MAX_CONFIG_BYTES {
        return Err(ConfigError::TooLarge {
            file: file.to_string(),
        });
    }
    String::from_utf8(bytes).map_err(|e| {
        read_error(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text ({e})"),
        ))
    })
}

/// Loads `path`, or the built-in default when `None`.
pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
    match path {
        None => Config::parse(DEFAULT_CONFIG, "built-in default config"),
        Some(path) => {
            let file = path.display().to_string();
            let text = read_bounded(path, &file)?;
            Config::parse(&text, &file)
        }
    }
}

impl Config {
    /// Parses and validates config text; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Config, ConfigError> {
        let cx = Ctx::new(file, text);
        let raw: raw::RawConfig = toml::from_str(text).map_err(|e| {
            let span = e.span().unwrap_or(0..0);
            cx.err(span, e.message().trim_end().to_string())
        })?;
        // Sections are checked in this order (triggers last: they name queues and need
        // [rcon]), so the first mistake in a file is the one reported.
        let queues = validate::queues(&cx, raw.queues)?;
        let rcon = raw.rcon.map(|r| validate::rcon(&cx, r)).transpose()?;
        let obs = crate::obs::config::settings(raw.obs).map_err(|e| cx.err(e.span, e.message))?;
        let media =
            crate::media::config::settings(raw.media).map_err(|e| cx.err(e.span, e.message))?;
        let webhooks = raw.webhooks.map_or_else(WebhookSettings::default, |w| {
            validate::delivery("webhooks", w)
        });
        let streamerbot = match raw.streamerbot {
            None => StreamerbotSettings::default(),
            Some(sb) => sb.validate().map_err(|(span, m)| cx.err(span, m))?,
        };
        let mut config = Config {
            origin: file.to_string(),
            queues,
            triggers: Vec::new(),
            rcon,
            webhooks,
            goals: raw.goals,
            streamerbot,
            compat_port: raw.compat.map(|c| c.port),
            obs,
            media,
            sign_api_key: raw
                .live
                .and_then(|l| l.sign_api_key)
                .map(|k| k.trim().to_string())
                .filter(|k| !k.is_empty()),
            alert_files: Vec::new(),
            text_templates: text_registry(),
            json_templates: json_registry(),
        };
        for (i, t) in raw.triggers.into_iter().enumerate() {
            let trigger = config.trigger(&cx, i, t)?;
            config.triggers.push(trigger);
        }
        validate::partials(&cx, &config)?;
        Ok(config)
    }
}

/// The registry of [`Config::text_templates`].
fn text_registry() -> Handlebars<'static> {
    let mut h = Handlebars::new();
    h.register_escape_fn(handlebars::no_escape);
    crate::themes::limits::register_guard(&mut h);
    h
}

/// The registry of [`Config::json_templates`].
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
pub(crate) mod tests {
    use super::*;

    /// Where `text` is refused, and why (the config's own tests and those of the sections
    /// other modules declare, such as `[obs]`).
    pub(crate) fn invalid(text: &str) -> (usize, usize, String) {
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
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 8), (2, 5));
        assert_eq!(line_col("", 0), (1, 1));
    }

    #[test]
    fn a_trigger_may_name_its_stream() {
        let c = Config::parse(
            "[[trigger]]\non = \"follow\"\nstream = \"@alice\"\nalert = { title = \"x\" }\n",
            "t.toml",
        )
        .unwrap();
        assert_eq!(c.triggers.last().unwrap().stream.as_deref(), Some("alice"));
        let (l, c, m) =
            invalid("[[trigger]]\non = \"follow\"\nstream = \" \"\nalert = { title = \"x\" }\n");
        assert_eq!((l, c), (3, 10), "{m}");
        assert!(m.contains("`stream`"), "{m}");
    }
}
