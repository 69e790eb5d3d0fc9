//! The config on the dashboard:
//! - `GET /api/config`: the config file, its current problem (file, line, column), the triggers,
//!   and the sign server's API key masked (`{"set", "masked"}`; never the key itself).
//! - `POST /api/triggers/{index}/test`: fires one trigger's actions with a test event made to
//!   fit it (its gift, count, diamonds), whatever its conditions and cooldowns say.
//! - `PUT /api/config/sign-key` with `{"key": "…"}`: stores the key in the config file as
//!   `[live] sign_api_key`, keeping the file's comments and other settings (`""` removes it).
//!
//! The two changing routes are origin-guarded like every control route. The key never appears
//! in a reply or a log line.

use std::sync::Arc;

use serde_json::{Value, json};
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{Relay, complete_test_event, error_response, guard, request_origin, with_relay};
use crate::config::{GiftMatch, Trigger};

/// A key is a few dozen characters; the body is bounded well above that.
const MAX_KEY_BODY: u64 = 4096;

pub fn routes(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    let status = warp::path!("api" / "config")
        .and(warp::get())
        .and(with_relay(relay.clone()))
        .map(|relay: Arc<Relay>| {
            let mut res = warp::reply::json(&relay.config.status()).into_response();
            res.headers_mut().insert(
                warp::http::header::CACHE_CONTROL,
                warp::http::HeaderValue::from_static("no-store"),
            );
            res
        });
    let test = warp::path!("api" / "triggers" / usize / "test")
        .and(warp::post())
        .and(request_origin())
        .and(with_relay(relay.clone()))
        .map(test_trigger);
    let sign_key = warp::path!("api" / "config" / "sign-key")
        .and(warp::put())
        .and(request_origin())
        .and(warp::body::content_length_limit(MAX_KEY_BODY))
        .and(warp::body::bytes())
        .and(with_relay(relay))
        .then(set_sign_key);
    status.or(test).unify().or(sign_key).unify().boxed()
}

fn test_trigger(index: usize, origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let config = relay.engine.config();
    let Some(trigger) = config.triggers.get(index) else {
        return error_response(
            StatusCode::NOT_FOUND,
            &format!(
                "no trigger number {index}; the config has {} (numbered from 0)",
                config.triggers.len()
            ),
        );
    };
    let event = match complete_test_event(test_event_for(trigger)) {
        Ok(e) => e,
        Err(why) => return error_response(StatusCode::INTERNAL_SERVER_ERROR, &why),
    };
    match relay.engine.fire_test(index, &event) {
        Ok(name) => {
            warp::reply::json(&json!({"ok": true, "trigger": name, "event": event})).into_response()
        }
        Err(e) => error_response(StatusCode::NOT_FOUND, &e.to_string()),
    }
}

/// A test event that fits `trigger`: its type, and the gift, count, diamonds and likes its
/// conditions ask for.
pub fn test_event_for(trigger: &Trigger) -> Value {
    let mut event = json!({"type": trigger.on});
    let count = trigger.min_count.unwrap_or(1).max(1);
    match trigger.on.as_str() {
        "gift" | "combo" => {
            let mut gift = json!({"id": 5655, "name": "Rose", "diamonds": 1,
                "image_url": "/overlays/default/images/gifts/rose.svg", "streakable": true});
            match &trigger.gift {
                Some(GiftMatch::Id(id)) => {
                    gift["id"] = json!(id);
                    gift["name"] = json!(format!("Gift {id}"));
                    gift["image_url"] = Value::Null;
                }
                Some(GiftMatch::Name(name)) if name != "rose" => {
                    gift["id"] = json!(1);
                    // Names are matched lowercased; a test shows them as a gift list would.
                    gift["name"] = json!(capitalised(name));
                    gift["image_url"] = Value::Null;
                }
                _ => {}
            }
            if let Some(min) = trigger.min_diamonds {
                gift["diamonds"] = json!(min.div_ceil(count).max(1));
            }
            event["gift"] = gift;
            event["count"] = json!(count);
        }
        "like" => {
            let n = trigger.every_likes.unwrap_or(count).max(count);
            event["count"] = json!(n);
        }
        "comment" | "question" | "pin" => event["text"] = json!("test from the dashboard"),
        "join" => event["member_count"] = json!(1),
        "battle" => event["phase"] = json!("start"),
        _ => {}
    }
    event
}

/// `big lion` → `Big Lion`.
fn capitalised(name: &str) -> String {
    name.split(' ')
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect())
                .unwrap_or_default()
        })
        .collect::<Vec<String>>()
        .join(" ")
}

async fn set_sign_key(
    origin: guard::RequestOrigin,
    body: bytes::Bytes,
    relay: Arc<Relay>,
) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let key = match serde_json::from_slice::<Value>(&body) {
        Ok(Value::Object(obj)) => match obj.get("key") {
            Some(Value::String(k)) => k.clone(),
            Some(Value::Null) => String::new(),
            _ => return error_response(StatusCode::BAD_REQUEST, KEY_SHAPE),
        },
        _ => return error_response(StatusCode::BAD_REQUEST, KEY_SHAPE),
    };
    let Some(path) = relay.config.path().map(|p| p.to_path_buf()) else {
        return error_response(
            StatusCode::CONFLICT,
            "tikrelay runs on its built-in config, without a file to store the key in; start it with --config FILE (or set HOME/APPDATA so it can create one)",
        );
    };
    let state = relay.config.clone();
    // File work off the async threads; the watcher would notice the write, but reloading here
    // means the next GET already shows the key as set.
    let result = tokio::task::spawn_blocking(move || {
        crate::config::edit::set_sign_api_key(&path, &key).map(|()| {
            state.reload();
            state.sign_api_key()
        })
    })
    .await;
    match result {
        Ok(Ok(key)) => {
            tracing::info!(
                "sign server API key {} in the config file",
                if key.is_some() { "stored" } else { "removed" }
            );
            warp::reply::json(&json!({
                "ok": true,
                "sign_api_key": crate::config::current::masked(key.as_deref()),
            }))
            .into_response()
        }
        Ok(Err(e @ crate::config::edit::EditError::BadKey)) => {
            error_response(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Ok(Err(e)) => error_response(StatusCode::CONFLICT, &e.to_string()),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

const KEY_SHAPE: &str = "send a JSON object like {\"key\": \"your-api-key\"}";
