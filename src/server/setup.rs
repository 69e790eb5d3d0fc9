//! The saved setup over HTTP, for the dashboard's first screen: `GET /api/setup` answers the
//! handles that the next start without a command connects (`{"handles": [...], "port",
//! "remembered": bool, "idle": bool}`, `idle` while no source runs: the first screen shows then), `POST /api/setup/handles {"handle": "@user"}` remembers one and
//! `DELETE /api/setup/handles/{handle}` forgets one. The two that change something are
//! origin-guarded like every control route, so a web page cannot plant a handle.

use std::sync::Arc;

use serde::Deserialize;
use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{Relay, error_response, guard, request_origin, with_relay};
use crate::setup::{SavedSetup, SetupError};

/// Largest body of `POST /api/setup/handles`.
const MAX_BODY: u64 = 4 * 1024;

#[derive(Deserialize)]
struct HandleBody {
    handle: String,
}

pub fn route(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    let r = || with_relay(relay.clone());
    let get = warp::path!("api" / "setup")
        .and(warp::get())
        .and(r())
        .map(|relay: Arc<Relay>| answer(&relay, &relay.setup.get()))
        .boxed();
    let remember = warp::path!("api" / "setup" / "handles")
        .and(warp::post())
        .and(request_origin())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(r())
        .map(
            |origin: guard::RequestOrigin, body: bytes::Bytes, relay: Arc<Relay>| {
                if let Err(why) = relay.origin.check_change(&origin) {
                    return error_response(StatusCode::FORBIDDEN, &why);
                }
                let handle = match serde_json::from_slice::<HandleBody>(&body) {
                    Ok(b) => b.handle,
                    Err(e) => {
                        return error_response(
                            StatusCode::BAD_REQUEST,
                            &format!("send {{\"handle\": \"@user\"}} as JSON ({e})"),
                        );
                    }
                };
                changed(&relay, relay.setup.remember(&handle))
            },
        )
        .boxed();
    let forget = warp::path!("api" / "setup" / "handles" / String)
        .and(warp::delete())
        .and(request_origin())
        .and(r())
        .map(
            |handle: String, origin: guard::RequestOrigin, relay: Arc<Relay>| {
                if let Err(why) = relay.origin.check_change(&origin) {
                    return error_response(StatusCode::FORBIDDEN, &why);
                }
                let handle = percent_encoding::percent_decode_str(&handle)
                    .decode_utf8_lossy()
                    .to_string();
                changed(&relay, relay.setup.forget(&handle))
            },
        )
        .boxed();
    get.or(remember).unify().or(forget).unify().boxed()
}

/// Whether the first screen should show: the relay started without a command and no source
/// runs (none started yet, or every one failed or ended).
fn idle(relay: &Relay) -> bool {
    relay.setup.offers_connect() && relay.sources.list().iter().all(|s| s.state.is_over())
}

fn answer(relay: &Relay, setup: &SavedSetup) -> Response {
    warp::reply::json(&json!({
        "handles": setup.handles,
        "port": setup.port,
        "remembered": !setup.handles.is_empty(),
        "idle": idle(relay),
    }))
    .into_response()
}

fn changed(relay: &Relay, result: Result<SavedSetup, SetupError>) -> Response {
    match result {
        Ok(setup) => answer(relay, &setup),
        Err(e @ SetupError::BadHandle(_)) => {
            error_response(StatusCode::BAD_REQUEST, &e.to_string())
        }
        Err(e @ SetupError::NoDataDir) => error_response(StatusCode::CONFLICT, &e.to_string()),
        Err(e @ SetupError::Write { .. }) => {
            tracing::warn!("{e}");
            error_response(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string())
        }
    }
}
