//! `/api/sources`: list, start and stop the relay's sources (see
//! [`crate::sources::manager`]). `GET` lists them (`{"sources": [...]}`), `POST` with
//! `{"kind":"live","target":"@user"}`, `{"kind":"demo","name":…,"rate":4,"seed":1}` or
//! `{"kind":"replay","file":…,"speed":1.0,"loop":true}` starts one and answers it (201),
//! `DELETE /api/sources/{id}` stops one (or forgets one that is over). All three are guarded
//! like every control route: a web page must neither start a stream nor read local file paths.
//! A bad request gets a 4xx with `{"error": …}` and changes nothing.

use std::sync::Arc;

use serde_json::json;
use warp::http::StatusCode;
use warp::reply::Response;
use warp::{Filter, Reply};

use super::{Relay, error_response, guard, request_origin, with_relay};
use crate::sources::manager::SourceError;

/// Largest body accepted by `POST /api/sources`.
const MAX_BODY: u64 = 16 * 1024;

pub fn routes(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    let list = warp::path!("api" / "sources")
        .and(warp::get())
        .and(request_origin())
        .and(with_relay(relay.clone()))
        .map(list);
    let start = warp::path!("api" / "sources")
        .and(warp::post())
        .and(request_origin())
        .and(warp::body::content_length_limit(MAX_BODY))
        .and(warp::body::bytes())
        .and(with_relay(relay.clone()))
        .map(start);
    let stop = warp::path!("api" / "sources" / String)
        .and(warp::delete())
        .and(request_origin())
        .and(with_relay(relay))
        .then(stop);
    list.or(start).unify().or(stop).unify().boxed()
}

fn list(origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    warp::reply::json(&json!({"sources": relay.sources.list()})).into_response()
}

fn start(origin: guard::RequestOrigin, body: bytes::Bytes, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    let body = match super::json_body(&body, "e.g. {\"kind\":\"demo\"}") {
        Ok(v) => v,
        Err(why) => return error_response(StatusCode::BAD_REQUEST, &why),
    };
    match relay.sources.start_json(&body) {
        Ok(info) => {
            warp::reply::with_status(warp::reply::json(&info), StatusCode::CREATED).into_response()
        }
        Err(e) => source_error(&e),
    }
}

async fn stop(id: String, origin: guard::RequestOrigin, relay: Arc<Relay>) -> Response {
    if let Err(why) = relay.origin.check_change(&origin) {
        return error_response(StatusCode::FORBIDDEN, &why);
    }
    match relay.sources.stop(&id).await {
        Ok(info) => warp::reply::json(&info).into_response(),
        Err(e) => source_error(&e),
    }
}

fn source_error(e: &SourceError) -> Response {
    let status = match e {
        SourceError::BadRequest(_) => StatusCode::BAD_REQUEST,
        SourceError::NotFound(_) => StatusCode::NOT_FOUND,
        SourceError::StreamTaken(..) => StatusCode::CONFLICT,
    };
    error_response(status, &e.to_string())
}
