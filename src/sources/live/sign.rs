//! The sign step: TikTok's first fetch of a room must carry browser signatures, so it is made by
//! a sign server (Euler Stream by default), which answers with TikTok's protobuf fetch result
//! and the cookies (`X-Set-TT-Cookie`) the websocket needs.
//!
//! `GET {sign_url}/webcast/fetch?client=…&room_id=…&user_agent=…&client_enter=true&platform=web
//! &tt_target_idc=useast1a` with `X-Api-Key` when a key is configured. The key is a secret: it
//! is never logged, and errors name the sign server by its base URL only. 429 carries the wait
//! (`retry-after`, else a reset time); 401/402/403 mean a key is needed.

use std::time::Duration;

use prost::Message;

use super::{BROWSER_USER_AGENT, LiveError};
use crate::proto::ProtoMessageFetchResult;

/// What the sign server gave us.
#[derive(Debug, Clone)]
pub struct Signed {
    /// The body exactly as received (what `--record` writes).
    pub raw: Vec<u8>,
    pub result: ProtoMessageFetchResult,
    /// `name=value` pairs for the websocket's `Cookie` header.
    pub cookies: Vec<(String, String)>,
    /// The room the sign server says it fetched (`x-room-id`), when it says.
    pub room_id: Option<String>,
}

impl Signed {
    /// The `Cookie` header value for the websocket.
    pub fn cookie_header(&self) -> String {
        let mut parts = vec!["tt-target-idc=useast1a".to_string()];
        for (k, v) in &self.cookies {
            if k != "tt-target-idc" {
                parts.push(format!("{k}={v}"));
            }
        }
        parts.join("; ")
    }
}

/// Wait used when a 429 names no time.
const DEFAULT_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Asks the sign server for the room's first fetch result.
pub async fn fetch(
    http: &reqwest::Client,
    sign_url: &str,
    api_key: Option<&str>,
    room_id: &str,
    unique_id: &str,
) -> Result<Signed, LiveError> {
    let url = format!("{sign_url}/webcast/fetch");
    let mut query = vec![
        // The sign server keys its statistics by client; "ttlive-other" is its SDK's value for
        // clients that are not one of the named libraries.
        ("client", "ttlive-other"),
        ("room_id", room_id),
        ("user_agent", BROWSER_USER_AGENT),
        ("client_enter", "true"),
        ("platform", "web"),
        ("tt_target_idc", "useast1a"),
    ];
    if !unique_id.is_empty() {
        query.push(("unique_id", unique_id));
    }
    let mut request = http
        .get(&url)
        .query(&query)
        .header(
            reqwest::header::USER_AGENT,
            concat!("tikrelay/", env!("CARGO_PKG_VERSION")),
        )
        .header(
            reqwest::header::ACCEPT,
            "application/protobuf,application/json",
        );
    if let Some(key) = api_key.filter(|k| !k.is_empty()) {
        request = request.header("X-Api-Key", key);
    }
    let response = request.send().await.map_err(|e| LiveError::Unreachable {
        what: "the sign server",
        url: sign_url.to_string(),
        detail: super::room::error_chain(&e),
    })?;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.bytes().await.map_err(|e| LiveError::Unreachable {
        what: "the sign server",
        url: sign_url.to_string(),
        detail: super::room::error_chain(&e),
    })?;
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|v| !v.is_empty())
    };
    if status != 200 {
        let message = error_message(&body);
        return Err(match status {
            429 => LiveError::RateLimited {
                retry_after: retry_after(&header, now_unix()),
                message,
            },
            401..=403 => LiveError::SignNeedsKey { status, message },
            _ => LiveError::SignFailed { status, message },
        });
    }
    if body.is_empty() {
        return Err(LiveError::BadSignAnswer("it is empty".into()));
    }
    let result = ProtoMessageFetchResult::decode(body.as_ref()).map_err(|e| {
        LiveError::BadSignAnswer(format!("the body is not a webcast fetch result: {e}"))
    })?;
    if result.push_server.is_empty() {
        return Err(LiveError::BadSignAnswer(
            "it names no websocket server (push_server)".into(),
        ));
    }
    let Some(cookie) = header("x-set-tt-cookie") else {
        let why = match header("handshake-msg") {
            Some(msg) => format!("it carries no cookies (X-Set-TT-Cookie); TikTok said {msg:?}"),
            None => "it carries no cookies (X-Set-TT-Cookie)".into(),
        };
        return Err(LiveError::BadSignAnswer(why));
    };
    if result.cursor.is_empty() {
        tracing::debug!("the sign server's fetch result has no cursor");
    }
    Ok(Signed {
        raw: body.to_vec(),
        result,
        cookies: parse_cookies(cookie),
        room_id: header("x-room-id").map(str::to_string),
    })
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// The wait a 429 asks for: `retry-after` seconds, else a reset time (unix seconds, or seconds
/// from now when it is small), else a default.
fn retry_after<'a>(header: &impl Fn(&str) -> Option<&'a str>, now: u64) -> Duration {
    if let Some(secs) = header("retry-after").and_then(|v| v.parse::<f64>().ok())
        && secs.is_finite()
        && secs >= 0.0
    {
        return Duration::from_secs_f64(secs.max(1.0));
    }
    for name in ["x-ratelimit-reset", "ratelimit-reset"] {
        if let Some(v) = header(name).and_then(|v| v.parse::<u64>().ok()) {
            let secs = if v > 1_000_000_000 {
                v.saturating_sub(now)
            } else {
                v
            };
            return Duration::from_secs(secs.max(1));
        }
    }
    DEFAULT_RETRY_AFTER
}

/// The `message` of a JSON error body, or a short excerpt of the text.
fn error_message(body: &[u8]) -> String {
    if let Ok(json) = serde_json::from_slice::<serde_json::Value>(body) {
        for key in ["message", "error", "detail"] {
            if let Some(m) = json[key].as_str() {
                return clip(m);
            }
        }
    }
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.is_empty() {
        "no details".into()
    } else {
        clip(text)
    }
}

fn clip(s: &str) -> String {
    let one_line: String = s
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(200)
        .collect();
    one_line.trim().to_string()
}

/// The `name=value` pairs of a cookie header, without attributes such as `Path` or `Expires`.
pub fn parse_cookies(header: &str) -> Vec<(String, String)> {
    const ATTRIBUTES: &[&str] = &[
        "path",
        "domain",
        "expires",
        "max-age",
        "secure",
        "httponly",
        "samesite",
        "priority",
        "partitioned",
    ];
    let mut out: Vec<(String, String)> = Vec::new();
    // Several Set-Cookie values may arrive joined by commas; commas also appear inside
    // `Expires` dates, which the attribute filter drops anyway.
    for part in header.split([';', ',']) {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let (k, v) = (k.trim(), v.trim());
        let is_token = !k.is_empty()
            && k.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !is_token || ATTRIBUTES.contains(&k.to_ascii_lowercase().as_str()) {
            continue;
        }
        let v: String = v.chars().filter(|c| !c.is_control() && *c != ';').collect();
        out.retain(|(name, _)| name != k);
        out.push((k.to_string(), v));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookies_keep_every_pair_and_drop_attributes() {
        let c = parse_cookies("ttwid=AB%7C1; Path=/; Domain=.tiktok.com; msToken=xyz; HttpOnly");
        assert_eq!(
            c,
            vec![
                ("ttwid".to_string(), "AB%7C1".to_string()),
                ("msToken".to_string(), "xyz".to_string())
            ]
        );
        let signed = Signed {
            raw: vec![],
            result: Default::default(),
            cookies: c,
            room_id: None,
        };
        assert_eq!(
            signed.cookie_header(),
            "tt-target-idc=useast1a; ttwid=AB%7C1; msToken=xyz"
        );
    }

    #[test]
    fn retry_after_reads_seconds_or_a_reset_time() {
        let h = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| *v)
        };
        assert_eq!(
            retry_after(&h(&[("retry-after", "7")]), 0),
            Duration::from_secs(7)
        );
        assert_eq!(
            retry_after(&h(&[("x-ratelimit-reset", "2000000060")]), 2_000_000_000),
            Duration::from_secs(60)
        );
        assert_eq!(
            retry_after(&h(&[("ratelimit-reset", "12")]), 0),
            Duration::from_secs(12)
        );
        assert_eq!(retry_after(&h(&[]), 0), DEFAULT_RETRY_AFTER);
    }

    #[test]
    fn error_bodies_become_one_short_line() {
        assert_eq!(
            error_message(br#"{"message":"Too many\nrequests"}"#),
            "Too many requests"
        );
        assert_eq!(error_message(b""), "no details");
        assert_eq!(error_message(&[b'x'; 500]).len(), 200);
    }
}
