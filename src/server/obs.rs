//! `POST /api/obs/test`: the dashboard's "Test OBS" button. It connects to OBS with the
//! configured settings and answers `{"ok": true, "obs_version", "websocket_version",
//! "program_scene", "addr"}`, or `{"ok": false, "error"}` (status 502) with what is wrong in
//! words. Origin-guarded like every control route: a web page must not probe the streamer's OBS.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{Relay, error_response, guard, request_origin, with_relay};

pub fn route(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("api" / "obs" / "test")
        .and(warp::post())
        .and(request_origin())
        .and(with_relay(relay))
        .then(test_obs)
        .boxed()
}

async fn test_obs(origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    match crate::obs::check(&relay.obs).await {
        Ok(mut info) => {
            info["ok"] = json!(true);
            warp::reply::json(&info).into_response()
        }
        Err(e) => warp::reply::with_status(
            warp::reply::json(
                &json!({"ok": false, "error": e.to_string(), "addr": relay.obs.addr()}),
            ),
            StatusCode::BAD_GATEWAY,
        )
        .into_response(),
    }
}
