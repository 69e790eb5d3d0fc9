//! `GET /media/<key>?src=<url>`: avatars and gift images from the relay's image cache
//! ([`crate::media`]). Reading only, like the overlays (LIVE images are public): no token is
//! needed, so an `<img>` on an overlay page loads it as is. What is sent is an image by its
//! magic bytes, with a policy that forbids it to run anything even if opened on its own.

use std::collections::HashMap;
use std::sync::Arc;

use warp::Filter;
use warp::http::{HeaderValue, StatusCode, header};
use warp::reply::Response;

use super::{Relay, error_response};

/// How long browsers may keep an image: the key names the image, not a version of it.
const MAX_AGE: &str = "public, max-age=604800, immutable";

pub fn route(relay: Arc<Relay>) -> warp::filters::BoxedFilter<(Response,)> {
    warp::path!("media" / String)
        .and(warp::get())
        .and(warp::query::<HashMap<String, String>>())
        .and(warp::any().map(move || relay.clone()))
        .then(media)
        .boxed()
}

async fn media(key: String, query: HashMap<String, String>, relay: Arc<Relay>) -> Response {
    let Some(cache) = &relay.media else {
        return error_response(
            StatusCode::SERVICE_UNAVAILABLE,
            "the image cache is off (its folder could not be opened; see the relay's log)",
        );
    };
    match cache.get(&key, query.get("src").map(String::as_str)).await {
        Ok(image) => {
            let mut res = Response::new(image.bytes.into());
            let h = res.headers_mut();
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(image.content_type),
            );
            h.insert(header::CACHE_CONTROL, HeaderValue::from_static(MAX_AGE));
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            );
            res
        }
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
            if status.is_server_error() {
                tracing::warn!("media {key}: {e}");
            } else {
                tracing::debug!("media {key}: {e}");
            }
            error_response(status, &e.to_string())
        }
    }
}
