//! The accept loop: every connection is held to the [`limits`] (header and idle timeouts, the
//! connection cap), passes the Host check, and gets the security [`headers`] on every response;
//! `/ws` upgrades go to [`ws`], everything else to the warp routes.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;

use tokio::net::TcpListener;
use warp::http::{StatusCode, header};
use warp::reply::Response;

use super::{Relay, error_response, headers, limits, routes, ws};

/// Serves until `shutdown` completes.
///
/// The accept loop is our own (it mirrors warp's) for two reasons: `/ws` upgrades are handled
/// here with a websocket config warp does not expose, so each overlay client costs a 4 KiB read
/// buffer instead of 128 KiB (500 clients: about 2 MB instead of 64 MB); and every connection
/// is held to the [`limits`] (header and idle timeouts, the connection cap). Every request
/// passes the Host check and gets the security [`headers`]; all but `/ws` then go to the warp
/// routes.
pub async fn serve(
    listener: TcpListener,
    relay: Arc<Relay>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let filter = routes(relay.clone());
    let conns = limits::Connections::new(relay.limits.max_connections);
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Usually "too many open files": wait for connections to close.
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(_) = tasks.join_next(), if !tasks.is_empty() => continue,
            _ = &mut shutdown => break,
        };
        // At the cap with every slot busy: closing at once frees the descriptor.
        let Some(slot) = conns.admit() else {
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        tasks.spawn(connection(
            stream,
            slot,
            relay.clone(),
            filter.clone(),
            stopped.clone(),
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Upgraded websockets are detached from their HTTP connection; they end with the process.
    while tasks.join_next().await.is_some() {}
}

/// One HTTP connection, from accept to close (or to its upgrade to a websocket).
async fn connection(
    stream: tokio::net::TcpStream,
    slot: Arc<limits::Slot>,
    relay: Arc<Relay>,
    filter: warp::filters::BoxedFilter<(Response,)>,
    mut stopped: tokio::sync::watch::Receiver<bool>,
) {
    let state = slot.state.clone();
    let limits = relay.limits;
    let io = hyper_util::rt::TokioIo::new(limits::Tracked::new(stream, state.clone()));
    let warp_service = warp::service(filter);
    let svc_slot = slot.clone();
    let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
        let mut warp_service = warp_service.clone();
        let relay = relay.clone();
        let slot = svc_slot.clone();
        async move {
            slot.state.request_started();
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string);
            let mut res = if let Err(why) = relay.origin.check_host(host.as_deref()) {
                error_response(StatusCode::FORBIDDEN, &why)
            } else if req.uri().path() == "/ws" && ws::is_upgrade(&req) {
                ws::upgrade(req, relay, slot.clone())
            } else {
                match tower_service::Service::call(&mut warp_service, req).await {
                    Ok(res) => res,
                    Err(never) => match never {},
                }
            };
            headers::common(&mut res, host.as_deref());
            slot.state.request_done();
            Ok::<_, Infallible>(res)
        }
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    // Our watchdog below times heads and idle waits; hyper's own timer stays off.
    builder.timer(hyper_util::rt::TokioTimer::new());
    builder.header_read_timeout(None);
    let conn = builder.serve_connection(io, service).with_upgrades();
    let mut conn = std::pin::pin!(conn);
    loop {
        let deadline = match state.check(&limits) {
            limits::Expiry::At(at) => at,
            limits::Expiry::SlowHead => {
                tracing::debug!(
                    "closed a connection that took over {:?} to send a request head",
                    limits.header_timeout
                );
                return;
            }
            limits::Expiry::Idle => return,
        };
        let wake = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        // Re-check now and then: a request may end, or start, in the meantime.
        let recheck = tokio::time::sleep(limits.header_timeout.min(limits.idle_timeout));
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!("connection ended: {e}");
                }
                return;
            }
            _ = state.evict.notified() => return,
            _ = stopped.changed() => {
                conn.as_mut().graceful_shutdown();
                let _ = conn.as_mut().await;
                return;
            }
            _ = wake => {}
            _ = recheck => {}
        }
    }
}
