//! From `@user` to a room id, and whether that room is live.
//!
//! The live page comes first: its `SIGI_STATE` JSON names the room (`LiveRoom.liveRoomUserInfo
//! .user.roomId`) and its status (4 = offline). When the page has no usable state (no
//! `LiveRoom`, a captcha page, a changed layout) the `api-live` route is asked instead, which
//! also says `user_not_found` for a handle that does not exist. A `room:ID` target skips the
//! lookup and asks `check_alive`. Network failures, unknown users, offline streams and pages
//! that look blocked are distinct errors, so the streamer reads the right advice.

use serde_json::Value;

use super::{BROWSER_USER_AGENT, Endpoints, LiveError, Target};

/// What the lookup found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub room_id: String,
    /// The handle, when known (empty for a `room:ID` target).
    pub unique_id: String,
    pub live: bool,
}

/// TikTok's status code for a room that is not broadcasting.
const STATUS_OFFLINE: i64 = 4;

/// Resolves the target to a room and its live state.
pub async fn resolve(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    target: &Target,
) -> Result<RoomInfo, LiveError> {
    match target {
        Target::Room(room_id) => {
            let live = check_alive(http, endpoints, room_id).await?;
            Ok(RoomInfo {
                room_id: room_id.clone(),
                unique_id: String::new(),
                live,
            })
        }
        Target::User(user) => match from_live_page(http, endpoints, user).await {
            Ok(Some(info)) => Ok(info),
            Ok(None) => from_api(http, endpoints, user).await,
            Err(page_error) => match from_api(http, endpoints, user).await {
                Ok(info) => Ok(info),
                // The page's reason is the more useful one when both fail the same way.
                Err(LiveError::Unreachable { .. }) => Err(page_error),
                Err(e) => Err(e),
            },
        },
    }
}

/// The query parameters TikTok's web app sends with its API calls.
fn web_params(user: &str) -> Vec<(&'static str, String)> {
    let (browser_name, browser_version) = BROWSER_USER_AGENT
        .split_once('/')
        .unwrap_or(("Mozilla", BROWSER_USER_AGENT));
    vec![
        ("aid", "1988".into()),
        ("app_name", "tiktok_web".into()),
        ("app_language", "en".into()),
        ("browser_language", "en-US".into()),
        ("browser_name", browser_name.into()),
        ("browser_online", "true".into()),
        ("browser_platform", "Win32".into()),
        ("browser_version", browser_version.into()),
        ("channel", "tiktok_web".into()),
        ("cookie_enabled", "true".into()),
        ("device_platform", "web_pc".into()),
        ("focus_state", "true".into()),
        ("is_fullscreen", "false".into()),
        ("is_page_visible", "true".into()),
        ("os", "windows".into()),
        ("priority_region", "".into()),
        ("region", "US".into()),
        ("screen_height", "1080".into()),
        ("screen_width", "1920".into()),
        ("tz_name", "America/New_York".into()),
        ("user_is_login", "false".into()),
        ("webcast_language", "en".into()),
        ("referer", format!("https://www.tiktok.com/@{user}/live")),
        (
            "root_referer",
            format!("https://www.tiktok.com/@{user}/live"),
        ),
    ]
}

fn browser_get(http: &reqwest::Client, url: &str) -> reqwest::RequestBuilder {
    http.get(url)
        .header(reqwest::header::USER_AGENT, BROWSER_USER_AGENT)
        .header(
            reqwest::header::ACCEPT,
            "text/html,application/json,application/protobuf",
        )
        .header(reqwest::header::ACCEPT_LANGUAGE, "en-US,en;q=0.9")
        .header(reqwest::header::REFERER, "https://www.tiktok.com/")
        .header(reqwest::header::COOKIE, "tt-target-idc=useast1a")
}

fn unreachable(what: &'static str, url: &str, e: &reqwest::Error) -> LiveError {
    LiveError::Unreachable {
        what,
        url: url.to_string(),
        detail: error_chain(e),
    }
}

/// The error with its causes, without the URL (which may carry parameters).
pub(crate) fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(s) = cur {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        cur = s.source();
    }
    let mut joined = parts.join(": ");
    if let Ok(re) = regex::Regex::new(r"https?://\S+") {
        joined = re.replace_all(&joined, "<url>").into_owned();
    }
    joined
}

/// `Ok(None)`: the page has no usable room state (fall back to the API).
async fn from_live_page(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    user: &str,
) -> Result<Option<RoomInfo>, LiveError> {
    let url = format!("{}/@{user}/live", endpoints.web);
    let response = browser_get(http, &url)
        .send()
        .await
        .map_err(|e| unreachable("TikTok", &endpoints.web, &e))?;
    let status = response.status();
    let html = response
        .text()
        .await
        .map_err(|e| unreachable("TikTok", &endpoints.web, &e))?;
    if !status.is_success() {
        tracing::debug!(%status, "live page answered with an error status; asking the API");
        return Ok(None);
    }
    let Some(state) = sigi_state(&html) else {
        tracing::debug!("live page has no SIGI_STATE; asking the API");
        return Ok(None);
    };
    let info = &state["LiveRoom"]["liveRoomUserInfo"];
    let room_id = id_string(&info["user"]["roomId"]);
    if info.is_null() {
        return Ok(None);
    }
    let status = info["user"]["status"]
        .as_i64()
        .or_else(|| info["liveRoom"]["status"].as_i64())
        .unwrap_or(0);
    let unique_id = info["user"]["uniqueId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(user)
        .to_string();
    Ok(Some(RoomInfo {
        live: !room_id.is_empty() && status != STATUS_OFFLINE,
        room_id,
        unique_id,
    }))
}

/// The JSON inside `<script id="SIGI_STATE" type="application/json">…</script>`.
pub fn sigi_state(html: &str) -> Option<Value> {
    let start_tag = html.find(r#"<script id="SIGI_STATE""#)?;
    let rest = &html[start_tag..];
    let body_start = rest.find('>')? + 1;
    let body_len = rest[body_start..].find("</script>")?;
    serde_json::from_str(&rest[body_start..body_start + body_len]).ok()
}

/// A room id from JSON that may hold a string or a number; empty or "0" means none.
fn id_string(v: &Value) -> String {
    let s = match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => String::new(),
    };
    if s == "0" { String::new() } else { s }
}

async fn from_api(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    user: &str,
) -> Result<RoomInfo, LiveError> {
    let url = format!("{}/api-live/user/room/", endpoints.web);
    let mut params = web_params(user);
    params.push(("uniqueId", user.to_string()));
    params.push(("sourceType", "54".into()));
    let response = browser_get(http, &url)
        .query(&params)
        .send()
        .await
        .map_err(|e| unreachable("TikTok", &endpoints.web, &e))?;
    let status = response.status();
    let body = response
        .text()
        .await
        .map_err(|e| unreachable("TikTok", &endpoints.web, &e))?;
    let json: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) if status.is_server_error() => {
            return Err(LiveError::Unreachable {
                what: "TikTok",
                url: endpoints.web.clone(),
                detail: format!("HTTP {status}"),
            });
        }
        Err(_) => {
            return Err(LiveError::Blocked {
                who: format!("@{user}"),
                detail: format!("the room API answered HTTP {status} without JSON"),
            });
        }
    };
    let message = json["message"].as_str().unwrap_or_default();
    if message.eq_ignore_ascii_case("user_not_found") {
        return Err(LiveError::UserNotFound(user.to_string()));
    }
    let data = &json["data"];
    if data["user"].is_null() {
        return Err(LiveError::Blocked {
            who: format!("@{user}"),
            detail: if message.is_empty() {
                format!("the room API answered HTTP {status} without a user")
            } else {
                format!("the room API said {message:?}")
            },
        });
    }
    let room_id = id_string(&data["user"]["roomId"]);
    let status = data["liveRoom"]["status"]
        .as_i64()
        .or_else(|| data["user"]["status"].as_i64())
        .unwrap_or(0);
    let unique_id = data["user"]["uniqueId"]
        .as_str()
        .filter(|s| !s.is_empty())
        .unwrap_or(user)
        .to_string();
    Ok(RoomInfo {
        live: !room_id.is_empty() && status != STATUS_OFFLINE,
        room_id,
        unique_id,
    })
}

/// Asks `check_alive` whether a room broadcasts.
async fn check_alive(
    http: &reqwest::Client,
    endpoints: &Endpoints,
    room_id: &str,
) -> Result<bool, LiveError> {
    let url = format!("{}/webcast/room/check_alive/", endpoints.webcast);
    let mut params = web_params("");
    params.retain(|(k, _)| !k.ends_with("referer"));
    params.push(("room_ids", room_id.to_string()));
    let response = browser_get(http, &url)
        .query(&params)
        .send()
        .await
        .map_err(|e| unreachable("TikTok", &endpoints.webcast, &e))?;
    let status = response.status();
    let json: Value = response.json().await.map_err(|_| LiveError::Blocked {
        who: format!("room {room_id}"),
        detail: format!("check_alive answered HTTP {status} without JSON"),
    })?;
    let entries = json["data"].as_array().cloned().unwrap_or_default();
    let entry = entries
        .iter()
        .find(|e| id_string(&e["room_id"]) == room_id || id_string(&e["room_id_str"]) == room_id)
        .or(entries.first());
    match entry {
        Some(e) => Ok(e["alive"].as_bool().unwrap_or(false)),
        None => Err(LiveError::Blocked {
            who: format!("room {room_id}"),
            detail: "check_alive named no room".into(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sigi_state_is_found_among_other_scripts() {
        let html = r#"<html><script id="other">x</script><script id="SIGI_STATE" type="application/json">{"LiveRoom":{"liveRoomUserInfo":{"user":{"roomId":"7","status":2}}}}</script></html>"#;
        let state = sigi_state(html).unwrap();
        assert_eq!(state["LiveRoom"]["liveRoomUserInfo"]["user"]["roomId"], "7");
        assert!(sigi_state("<html>captcha</html>").is_none());
        assert!(sigi_state(r#"<script id="SIGI_STATE">{broken</script>"#).is_none());
    }

    #[test]
    fn ids_may_be_numbers_or_strings() {
        assert_eq!(id_string(&serde_json::json!("123")), "123");
        assert_eq!(id_string(&serde_json::json!(123)), "123");
        assert_eq!(id_string(&serde_json::json!("0")), "");
        assert_eq!(id_string(&Value::Null), "");
    }
}
