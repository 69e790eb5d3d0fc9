//! The live source: the client that turns `@user` into a stream of push frames for the
//! pipeline: room resolution ([`room`]), the sign step ([`sign`]), the websocket ([`ws`]), the
//! reconnecting source task ([`client`]) and the rule that keeps a reconnect from replaying an
//! old backlog ([`backlog`], which replay applies too). The wire format it decodes is
//! [`crate::tiktok`].
//!
//! This file holds what those parts share: the target (`@user`, `user`, `room:ID`), the
//! endpoints (every URL is a flag so the whole path can run against a local fake), the timings
//! (short in tests), the browser identity, and the errors a streamer reads.

pub mod backlog;
pub mod client;
pub mod room;
pub mod sign;
pub mod ws;

use std::fmt;
use std::time::Duration;

/// TikTok's web host (live page, `api-live`).
pub const DEFAULT_WEB_URL: &str = "https://www.tiktok.com";
/// TikTok's webcast host (`check_alive`).
pub const DEFAULT_WEBCAST_URL: &str = "https://webcast.tiktok.com";
/// The Euler Stream sign server both reference libraries use.
pub const DEFAULT_SIGN_URL: &str = "https://api.eulerstream.com";
/// The environment variable that holds the sign server API key.
pub const SIGN_API_KEY_ENV: &str = "TIKRELAY_SIGN_API_KEY";

/// The browser this client presents itself as. The same string goes to the sign server (which
/// signs for it), to TikTok's web pages and to the websocket: TikTok refuses a socket without a
/// browser User-Agent (`DEVICE_BLOCKED`) and signatures are bound to the agent.
pub const BROWSER_USER_AGENT: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
(KHTML, like Gecko) Chrome/142.0.0.0 Safari/537.36";

/// Whose stream to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A handle without the `@`.
    User(String),
    /// A numeric room id: skips the lookup of the handle.
    Room(String),
}

impl Target {
    /// Accepts `@user`, `user`, `room:ID`, and a pasted `https://www.tiktok.com/@user/live`.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let s = raw.trim();
        if let Some(id) = s.strip_prefix("room:") {
            let id = id.trim();
            if id.is_empty() || !id.bytes().all(|b| b.is_ascii_digit()) || id.len() > 20 {
                return Err(format!(
                    "{raw:?} is not a room id; write room: followed by digits, e.g. room:7300000000000000001"
                ));
            }
            return Ok(Target::Room(id.to_string()));
        }
        let mut s = s;
        for prefix in ["https://", "http://"] {
            if let Some(rest) = s.strip_prefix(prefix) {
                s = rest;
            }
        }
        for host in ["www.tiktok.com/", "m.tiktok.com/", "tiktok.com/"] {
            if let Some(rest) = s.strip_prefix(host) {
                s = rest;
            }
        }
        let s = s.split(['?', '#']).next().unwrap_or_default();
        let s = s.trim_end_matches('/');
        let s = s.strip_suffix("/live").unwrap_or(s);
        let s = s.strip_prefix('@').unwrap_or(s);
        let valid = !s.is_empty()
            && s.len() <= 64
            && s.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        if !valid {
            return Err(format!(
                "{raw:?} is not a TikTok handle; give the name after the @, e.g. tikrelay live @streamer"
            ));
        }
        Ok(Target::User(s.to_string()))
    }

    /// The handle, when the target is one.
    pub fn unique_id(&self) -> Option<&str> {
        match self {
            Target::User(u) => Some(u),
            Target::Room(_) => None,
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::User(u) => write!(f, "@{u}"),
            Target::Room(r) => write!(f, "room {r}"),
        }
    }
}

/// Base URLs of the services the live client talks to, without a trailing slash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoints {
    pub web: String,
    pub webcast: String,
    pub sign: String,
}

impl Default for Endpoints {
    fn default() -> Self {
        Endpoints::new(DEFAULT_WEB_URL, DEFAULT_WEBCAST_URL, DEFAULT_SIGN_URL)
    }
}

impl Endpoints {
    pub fn new(web: &str, webcast: &str, sign: &str) -> Endpoints {
        let trim = |s: &str| s.trim().trim_end_matches('/').to_string();
        Endpoints {
            web: trim(web),
            webcast: trim(webcast),
            sign: trim(sign),
        }
    }

    /// Checks that every endpoint is an http(s) URL.
    pub fn validate(&self) -> Result<(), String> {
        for (flag, url) in [
            ("--tiktok-web-url", &self.web),
            ("--tiktok-webcast-url", &self.webcast),
            ("--sign-url", &self.sign),
        ] {
            let ok = reqwest::Url::parse(url)
                .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some());
            if !ok {
                return Err(format!(
                    "{flag} {url:?} is not an http(s) URL; give e.g. {flag} https://host"
                ));
            }
        }
        Ok(())
    }
}

/// How long things take. The defaults suit TikTok; tests shrink them to milliseconds.
#[derive(Debug, Clone, PartialEq)]
pub struct Timings {
    /// First reconnect delay (jittered, doubling per failed attempt).
    pub backoff_min: Duration,
    /// Largest reconnect delay.
    pub backoff_max: Duration,
    /// A connection that lasted this long resets the backoff to its minimum.
    pub stable_after: Duration,
    /// How often `--wait-live` checks whether the stream is live.
    pub wait_live_poll: Duration,
    /// Heartbeat interval when the server's `Handshake-Options` names none.
    pub default_heartbeat: Duration,
    /// No frame at all (not even a heartbeat answer) for this long: the socket is dead.
    pub stall_timeout: Duration,
    /// Bound on one HTTP request or one websocket handshake.
    pub request_timeout: Duration,
    /// Longest wait honoured for a sign server `retry-after`.
    pub max_retry_after: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            backoff_min: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
            wait_live_poll: Duration::from_secs(30),
            default_heartbeat: Duration::from_secs(10),
            stall_timeout: Duration::from_secs(45),
            request_timeout: Duration::from_secs(15),
            max_retry_after: Duration::from_secs(600),
        }
    }
}

/// Everything the live client needs.
#[derive(Clone)]
pub struct LiveConfig {
    pub target: Target,
    pub endpoints: Endpoints,
    /// Sent as `X-Api-Key`; never logged.
    pub sign_api_key: Option<String>,
    /// Wait for the stream to go live (and live again after it ends) instead of stopping.
    pub wait_live: bool,
    pub timings: Timings,
}

impl fmt::Debug for LiveConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveConfig")
            .field("target", &self.target)
            .field("endpoints", &self.endpoints)
            .field("sign_api_key", &self.sign_api_key.as_ref().map(|_| "<set>"))
            .field("wait_live", &self.wait_live)
            .field("timings", &self.timings)
            .finish()
    }
}

/// Why the live client could not (or can no longer) relay the stream. Each message is one line
/// a streamer understands, ending with what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LiveError {
    #[error("@{0} does not exist on TikTok (check the spelling of the handle)")]
    UserNotFound(String),
    #[error("{0} is not live right now (use --wait-live to wait for the stream)")]
    NotLive(String),
    #[error(
        "TikTok did not show the LIVE page of {who} as expected ({detail}); TikTok may be asking \
this network for a captcha: open https://www.tiktok.com in a browser, or connect by room id with \
room:ID"
    )]
    Blocked { who: String, detail: String },
    #[error(
        "could not reach {what} at {url} ({detail}); check the internet connection and try again"
    )]
    Unreachable {
        what: &'static str,
        url: String,
        detail: String,
    },
    #[error(
        "the sign server rate-limited this connection ({message}); retrying in {} s. An API key \
raises the limit: --sign-api-key KEY or {SIGN_API_KEY_ENV}", retry_after.as_secs()
    )]
    RateLimited {
        retry_after: Duration,
        message: String,
    },
    #[error(
        "the sign server refused the request (HTTP {status}: {message}); it needs an API key: get \
one at https://www.eulerstream.com and pass it with --sign-api-key KEY or set {SIGN_API_KEY_ENV}"
    )]
    SignNeedsKey { status: u16, message: String },
    #[error(
        "the sign server answered HTTP {status} ({message}); it may be down, try again in a few minutes"
    )]
    SignFailed { status: u16, message: String },
    #[error(
        "the sign server's answer cannot be used ({0}); TikTok may be detecting the sign server, try again later"
    )]
    BadSignAnswer(String),
    #[error(
        "TikTok refused the LIVE connection: {message} (status {status}); this usually passes \
after a while, try again later"
    )]
    HandshakeRefused { message: String, status: String },
    #[error("the LIVE connection failed ({0})")]
    Socket(String),
}

impl LiveError {
    /// Errors that no amount of retrying fixes without the streamer's help.
    pub fn needs_user(&self) -> bool {
        matches!(
            self,
            LiveError::UserNotFound(_) | LiveError::NotLive(_) | LiveError::SignNeedsKey { .. }
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_in_every_form_a_streamer_types() {
        let user = Target::User("foo.bar_1".into());
        for raw in [
            "@foo.bar_1",
            "foo.bar_1",
            " @foo.bar_1 ",
            "https://www.tiktok.com/@foo.bar_1/live",
            "https://www.tiktok.com/@foo.bar_1/live?lang=en",
            "tiktok.com/@foo.bar_1",
        ] {
            assert_eq!(Target::parse(raw), Ok(user.clone()), "{raw}");
        }
        assert_eq!(Target::parse("room:123"), Ok(Target::Room("123".into())));
        for bad in ["", "@", "room:", "room:12a", "foo bar", "<script>", "@a/b"] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Target::User("x".into()).to_string(), "@x");
    }

    #[test]
    fn the_api_key_never_shows_in_debug_output() {
        let config = LiveConfig {
            target: Target::User("x".into()),
            endpoints: Endpoints::default(),
            sign_api_key: Some("secret-key-123".into()),
            wait_live: false,
            timings: Timings::default(),
        };
        let shown = format!("{config:?}");
        assert!(!shown.contains("secret-key-123"), "{shown}");
        assert!(shown.contains("<set>"));
    }

    #[test]
    fn endpoints_must_be_http_urls() {
        assert!(Endpoints::default().validate().is_ok());
        assert!(
            Endpoints::new("ftp://x", "http://a", "http://b")
                .validate()
                .is_err()
        );
        assert_eq!(
            Endpoints::new("http://a/", "http://b", "http://c").web,
            "http://a"
        );
    }
}
