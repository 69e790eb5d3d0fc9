//! A real local HTTP endpoint that receives webhook requests (trigger header and body).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// A local HTTP endpoint that answers 500 to its first `fail` requests, then 200.
pub struct HookServer {
    pub url: String,
    /// The `X-Tikrelay-Trigger` header and the body of each request, in arrival order.
    pub bodies: Arc<Mutex<Vec<(String, String)>>>,
    pub hits: Arc<AtomicUsize>,
}

pub async fn hook_server(fail: usize) -> HookServer {
    use warp::Filter;
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let hits = Arc::new(AtomicUsize::new(0));
    let (b, h) = (bodies.clone(), hits.clone());
    let route = warp::post()
        .and(warp::header::<String>("x-tikrelay-trigger"))
        .and(warp::body::bytes())
        .map(move |trigger: String, body: bytes::Bytes| {
            let n = h.fetch_add(1, Ordering::SeqCst);
            b.lock()
                .unwrap()
                .push((trigger, String::from_utf8_lossy(&body).into_owned()));
            let status = if n < fail {
                warp::http::StatusCode::INTERNAL_SERVER_ERROR
            } else {
                warp::http::StatusCode::OK
            };
            warp::reply::with_status("ok", status)
        });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    HookServer { url, bodies, hits }
}
