//! The TikFinity-compatible event socket (`--compat-port`, `[compat] port`): a push-only
//! websocket on its own port that sends every event as TikFinity's local socket does, so widgets
//! and bots written for `ws://localhost:21213` work unchanged against tikrelay.
//!
//! It is a consumer of the hub like the others: one feed task reads the hub's event stream, turns
//! each event into frames once ([`tikfinity`]) and hands the same text to every client's own
//! bounded buffer without waiting. A client whose buffer is full is cut off (close 1008, as on
//! `/ws`), so a stalled widget never slows the pipeline or the other clients. Data flows one way:
//! what clients send is read only to notice that they left. Any path and any origin is accepted,
//! as TikFinity does: the socket only repeats the LIVE's public events and takes no commands.

pub mod tikfinity;

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header;
use hyper::{Request, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{Notify, broadcast, mpsc};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use warp::Reply;
use warp::reply::Response;

use crate::events::Event;
use crate::hub::Hub;
use crate::server::guard::OriginPolicy;
use crate::server::ws;
use tikfinity::Mapper;

/// TikFinity's own port, which its widgets connect to.
pub const TIKFINITY_PORT: u16 = 21213;
/// Frames a client may have waiting before it counts as too slow (as on `/ws`).
pub const CLIENT_BUFFER: usize = 1024;
/// Frames written per flush at most.
const BATCH: usize = 64;
/// Largest message a client may send; the socket takes no commands.
const MAX_CLIENT_MESSAGE: usize = 4 * 1024;
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a compat port cannot be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot listen on {addr} for the TikFinity-compatible socket: {source}")]
pub struct BindError {
    pub addr: String,
    pub source: std::io::Error,
}

/// Binds the compat port without awaiting (the relay is set up synchronously).
pub fn bind(host: &str, port: u16) -> Result<TcpListener, BindError> {
    let addr = format!("{host}:{port}");
    let err = |source| BindError {
        addr: addr.clone(),
        source,
    };
    let std = std::net::TcpListener::bind(&addr).map_err(err)?;
    std.set_nonblocking(true).map_err(err)?;
    TcpListener::from_std(std).map_err(err)
}

struct Slot {
    tx: mpsc::Sender<Utf8Bytes>,
    kick: Arc<Notify>,
}

/// The connected compat clients, each with its own bounded buffer.
#[derive(Default)]
pub struct Clients {
    slots: Mutex<HashMap<u64, Slot>>,
    next: AtomicU64,
}

impl Clients {
    pub fn count(&self) -> usize {
        self.slots.lock().expect("compat clients lock").len()
    }

    /// Hands a frame to every client without waiting; a full client is cut off.
    fn publish(&self, frame: &Utf8Bytes) {
        let mut slots = self.slots.lock().expect("compat clients lock");
        let mut gone = Vec::new();
        for (id, slot) in slots.iter() {
            if slot.tx.try_send(frame.clone()).is_err() {
                gone.push(*id);
            }
        }
        for id in gone {
            if let Some(slot) = slots.remove(&id)
                && !slot.tx.is_closed()
            {
                tracing::warn!(
                    client = id,
                    "TikFinity-compatible client cut off: too slow ({CLIENT_BUFFER} frames waiting)"
                );
                slot.kick.notify_one();
            }
        }
    }

    fn register(&self) -> (u64, mpsc::Receiver<Utf8Bytes>, Arc<Notify>) {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = mpsc::channel(CLIENT_BUFFER);
        let kick = Arc::new(Notify::new());
        self.slots.lock().expect("compat clients lock").insert(
            id,
            Slot {
                tx,
                kick: kick.clone(),
            },
        );
        (id, rx, kick)
    }

    fn unregister(&self, id: u64) {
        self.slots.lock().expect("compat clients lock").remove(&id);
    }
}

/// Starts the feed from `hub` to the compat clients; `base` is the relay's own URL
/// (`http://HOST:PORT`), which makes relay-served avatars and gift images absolute.
pub fn start(hub: &Arc<Hub>, stats: Arc<crate::stats::Stats>, base: String) -> Arc<Clients> {
    let clients = Arc::new(Clients::default());
    tokio::spawn(feed(
        hub.subscribe_events(),
        Mapper::new(base),
        stats,
        clients.clone(),
    ));
    clients
}

async fn feed(
    mut events: broadcast::Receiver<Arc<Event>>,
    mapper: Mapper,
    stats: Arc<crate::stats::Stats>,
    clients: Arc<Clients>,
) {
    loop {
        let event = match events.recv().await {
            Ok(e) => e,
            Err(broadcast::error::RecvError::Lagged(n)) => {
                tracing::warn!(
                    "TikFinity-compatible socket fell {n} events behind; they were skipped"
                );
                continue;
            }
            Err(broadcast::error::RecvError::Closed) => break,
        };
        if clients.count() == 0 {
            continue;
        }
        let frames = mapper.frames(&event, || stats.snapshot()["top_gifters"].take());
        for frame in frames {
            clients.publish(&Utf8Bytes::from(frame.to_json()));
        }
    }
}

/// Serves the compat socket on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    clients: Arc<Clients>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let mut shutdown = std::pin::pin!(shutdown);
    let stop = Arc::new(Notify::new());
    // Any origin may read (widgets are served from anywhere), but the Host must name this
    // socket, as on the main port: a DNS-rebinding page gets nothing.
    let hosts = match listener.local_addr() {
        Ok(addr) => Arc::new(OriginPolicy::new(addr)),
        Err(e) => {
            tracing::error!(
                "TikFinity-compatible socket: cannot read its address ({e}); not serving"
            );
            return;
        }
    };
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("TikFinity-compatible socket: accepting failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let clients = clients.clone();
        let stop = stop.clone();
        let hosts = hosts.clone();
        let service = hyper::service::service_fn(move |req: Request<Incoming>| {
            let clients = clients.clone();
            let stop = stop.clone();
            let host = req
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok());
            let foreign = hosts.check_host(host).err();
            async move {
                Ok::<_, Infallible>(match foreign {
                    Some(why) => {
                        warp::reply::with_status(why, StatusCode::FORBIDDEN).into_response()
                    }
                    None => answer(req, clients, stop),
                })
            }
        });
        tokio::spawn(async move {
            let conn = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = conn.await {
                tracing::debug!("compat connection ended: {e}");
            }
        });
    }
    // Upgraded sockets are detached from the accept loop: tell them to close.
    stop.notify_waiters();
}

fn text_response(status: StatusCode, text: &'static str) -> Response {
    warp::reply::with_status(text, status).into_response()
}

/// Upgrades a websocket handshake on any path; anything else gets a hint.
fn answer(mut req: Request<Incoming>, clients: Arc<Clients>, stop: Arc<Notify>) -> Response {
    let key = ws::handshake_key(&req);
    let key = match key {
        Some(k) if ws::is_upgrade(&req) => k,
        _ => {
            return text_response(
                StatusCode::UPGRADE_REQUIRED,
                "tikrelay's TikFinity-compatible event socket: connect with a websocket (ws://HOST:PORT/)\n",
            );
        }
    };
    // Register before answering, so no event after the handshake is missed.
    let (id, rx, kick) = clients.register();
    let on_upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(async move {
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                let config = WebSocketConfig::default()
                    .read_buffer_size(4 * 1024)
                    .write_buffer_size(0)
                    .max_message_size(Some(MAX_CLIENT_MESSAGE))
                    .max_frame_size(Some(MAX_CLIENT_MESSAGE));
                let socket = WebSocketStream::from_raw_socket(io, Role::Server, Some(config)).await;
                run(socket, rx, kick, stop).await;
            }
            Err(e) => tracing::debug!("compat websocket upgrade failed: {e}"),
        }
        clients.unregister(id);
    });
    ws::switching_protocols(&key)
}

/// Writes frames to one client until it leaves, is cut off, or the relay stops.
async fn run<S>(
    socket: WebSocketStream<S>,
    mut rx: mpsc::Receiver<Utf8Bytes>,
    kick: Arc<Notify>,
    stop: Arc<Notify>,
) where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = socket.split();
    let close = loop {
        tokio::select! {
            _ = kick.notified() => break Some((CloseCode::Policy, "too slow: reconnect")),
            _ = stop.notified() => break Some((CloseCode::Away, "tikrelay is stopping")),
            incoming = stream.next() => match incoming {
                // Pings are answered by the library; what clients say is not read.
                Some(Ok(msg)) if !msg.is_close() => {}
                _ => break None,
            },
            first = rx.recv() => {
                let Some(first) = first else { break None };
                let mut batch = vec![first];
                while batch.len() < BATCH {
                    match rx.try_recv() {
                        Ok(m) => batch.push(m),
                        Err(_) => break,
                    }
                }
                let write = async {
                    for m in batch {
                        sink.feed(Message::Text(m)).await?;
                    }
                    sink.flush().await
                };
                tokio::select! {
                    r = write => if r.is_err() { break None },
                    _ = kick.notified() => break Some((CloseCode::Policy, "too slow: reconnect")),
                }
            }
        }
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: Utf8Bytes::from_static(reason),
        };
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
    }
}

/// The URL widgets connect to.
pub fn url(addr: SocketAddr) -> String {
    format!("ws://{addr}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_that_stops_reading_is_cut_off_and_the_others_keep_receiving() {
        let clients = Clients::default();
        let (_slow, _slow_rx, slow_kick) = clients.register();
        let (_fast, mut fast_rx, _) = clients.register();
        let frame = Utf8Bytes::from_static("{\"event\":\"like\",\"data\":{}}");
        for _ in 0..CLIENT_BUFFER + 1 {
            clients.publish(&frame);
            while fast_rx.try_recv().is_ok() {}
        }
        assert_eq!(clients.count(), 1);
        // The kick is stored for the connection task, which closes the socket with 1008.
        let kicked = slow_kick.notified();
        tokio::pin!(kicked);
        assert!(
            futures_util::FutureExt::now_or_never(kicked.as_mut()).is_some(),
            "the slow client was told to close"
        );
        clients.publish(&frame);
        assert!(fast_rx.try_recv().is_ok());
    }
}
