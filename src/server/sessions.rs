//! `/api/sessions`: the running session and the past ones (`GET`), and the dashboard's "new
//! session" button (`POST /api/sessions/new`), which archives the running session and starts
//! the totals from zero. The button is origin-guarded like every control route: a web page must
//! not wipe the streamer's totals.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{Relay, error_response, guard, no_store, request_origin, with_relay};

pub fn routes(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "sessions")
        .and(warp::get())
        .and(with_relay(relay.clone()))
        .then(list);
    let new = warp::path!("api" / "sessions" / "new")
        .and(warp::post())
        .and(request_origin())
        .and(with_relay(relay))
        .then(new_session);
    list.or(new).unify().boxed()
}

/// `{"current": [one per stream], "sessions": [newest first], "max": N}`; each entry as
/// [`crate::sessions::PastSession`] serialises.
async fn list(relay: Arc<Relay>) -> Response {
    let sessions = relay.sessions.clone();
    // Listing may write the archive (a session that just ended): off the async threads.
    let listed = tokio::task::spawn_blocking(move || (sessions.current(), sessions.list())).await;
    match listed {
        Ok((current, past)) => no_store(
            warp::reply::json(&json!({
                "current": current,
                "sessions": past,
                "max": crate::sessions::MAX_ARCHIVED,
            }))
            .into_response(),
        ),
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}

/// `{"ok": true, "archived": [the ended sessions that had counted something]}`.
async fn new_session(origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let sessions = relay.sessions.clone();
    match tokio::task::spawn_blocking(move || sessions.new_session()).await {
        Ok(archived) => {
            warp::reply::json(&json!({"ok": true, "archived": archived})).into_response()
        }
        Err(e) => error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string()),
    }
}
