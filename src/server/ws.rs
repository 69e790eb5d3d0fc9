//! One overlay websocket connection: `hello` first, then the messages the client's filter
//! wants, written in batches (feed, then one flush). Client ops (`subscribe`, `play`,
//! `alert_done`) are read on the same socket; a bad op gets an `error` reply and never affects
//! other clients. A client the hub cuts off for being too slow is closed with the reason.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::{Request, StatusCode};
use serde_json::{Value, json};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role, WebSocketConfig};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use warp::Reply;
use warp::reply::Response;

use super::Relay;
use super::guard::RequestOrigin;
use crate::hub::{Audience, ClientFilter, ClientHandle, ClientOp, Outbound};

/// Messages written per flush at most.
const BATCH: usize = 64;
/// Largest message a client may send; client ops are tiny.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// How long a close frame may take to go out to a client that was cut off.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

type Socket = WebSocketStream<hyper_util::rt::TokioIo<hyper::upgrade::Upgraded>>;

/// Small buffers: clients send a few bytes of ops, and the hub already bounds what waits for
/// each client, so the socket needs no deep buffers of its own.
fn socket_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0)
        .max_write_buffer_size(4 * 1024 * 1024)
        .max_message_size(Some(MAX_CLIENT_MESSAGE))
        .max_frame_size(Some(MAX_CLIENT_MESSAGE))
}

/// True for a websocket handshake request.
pub fn is_upgrade(req: &Request<Incoming>) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    has(header::UPGRADE, "websocket") && has(header::CONNECTION, "upgrade")
}

/// Answers a `/ws` handshake and starts the connection task.
///
/// The Host check has passed already; any origin may read events (they are public), but
/// control ops need the guard's consent. The connection's `slot` moves into the websocket
/// task: the socket counts under the connection cap until it closes, and no HTTP timeout
/// applies to it any more.
pub fn upgrade(
    mut req: Request<Incoming>,
    relay: Arc<Relay>,
    slot: Arc<super::limits::Slot>,
) -> Response {
    let Some(key) = handshake_key(&req) else {
        return super::error_response(
            StatusCode::BAD_REQUEST,
            "not a websocket handshake (version 13 with Sec-WebSocket-Key expected)",
        );
    };
    let headers = req.headers();
    let origin = RequestOrigin::from_parts(headers, req.uri().query());
    let query = parse_query(req.uri().query().unwrap_or(""));
    let may_control = relay.origin.check_change(&origin);
    let mut filter = ClientFilter::default();
    if let Some(types) = query.get("types").filter(|t| !t.is_empty()) {
        filter.types = Some(types.split(',').map(|t| t.trim().to_string()).collect());
    }
    if let Some(streams) = query.get("stream").filter(|s| !s.is_empty()) {
        filter.streams = Some(streams.split(',').map(|s| s.trim().to_string()).collect());
    }
    let queue = query.get("queue").filter(|q| !q.is_empty()).cloned();
    // Register before answering, so nothing published after the handshake is missed.
    let handle = relay.hub.register(filter);
    let on_upgrade = hyper::upgrade::on(&mut req);
    slot.state.upgraded();
    tokio::spawn(async move {
        let _slot = slot;
        let id = handle.id;
        match on_upgrade.await {
            Ok(upgraded) => {
                let io = hyper_util::rt::TokioIo::new(upgraded);
                let socket =
                    WebSocketStream::from_raw_socket(io, Role::Server, Some(socket_config())).await;
                let mut conn = Connection {
                    relay: relay.clone(),
                    handle,
                    may_control,
                };
                if let Some(queue) = queue {
                    // Playing takes alerts off a queue, so it is a control op like `play`: a
                    // page of another origin must not swallow the streamer's alerts.
                    match &conn.may_control {
                        Ok(()) => conn.play(queue),
                        Err(why) => tracing::warn!(
                            client = id,
                            "refused to let a page play alert queue {queue:?}: {why}"
                        ),
                    }
                }
                conn.run(socket).await;
            }
            Err(e) => tracing::debug!("websocket upgrade failed: {e}"),
        }
        relay.hub.unregister(id);
    });
    switching_protocols(&key)
}

/// The `Sec-WebSocket-Key` of a version 13 handshake, or `None` when `req` is not one.
pub fn handshake_key(req: &Request<Incoming>) -> Option<HeaderValue> {
    let headers = req.headers();
    headers
        .get(header::SEC_WEBSOCKET_KEY)
        .filter(|_| {
            headers
                .get(header::SEC_WEBSOCKET_VERSION)
                .is_some_and(|v| v == "13")
        })
        .cloned()
}

/// The `101 Switching Protocols` answer to a handshake whose key is `key`.
pub fn switching_protocols(key: &HeaderValue) -> Response {
    let mut res = warp::reply().into_response();
    *res.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = res.headers_mut();
    h.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(header::CONNECTION, HeaderValue::from_static("Upgrade"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        h.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    res
}

fn parse_query(query: &str) -> HashMap<String, String> {
    query
        .split('&')
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let decode = |s: &str| super::percent_decode(&s.replace('+', " "));
            Some((decode(k)?, decode(v)?))
        })
        .filter(|(k, _)| !k.is_empty())
        .collect()
}

struct Connection {
    relay: Arc<Relay>,
    handle: ClientHandle,
    may_control: Result<(), String>,
}

enum Stop {
    Kicked(String),
    Gone,
}

impl Connection {
    async fn run(&mut self, socket: Socket) {
        let (mut sink, mut stream) = socket.split();
        let hello = self.relay.hub.hello();
        if sink.send(Message::Text(hello.json)).await.is_err() {
            return;
        }
        let stop = loop {
            let kick = self.handle.kick.clone();
            tokio::select! {
                _ = kick.notify.notified() => break Stop::Kicked(self.kick_reason()),
                incoming = stream.next() => match incoming {
                    Some(Ok(msg)) if msg.is_close() => break Stop::Gone,
                    Some(Ok(msg)) => {
                        if let Some(reply) = self.client_message(&msg)
                            && sink.send(Message::Text(reply.json)).await.is_err()
                        {
                            break Stop::Gone;
                        }
                    }
                    Some(Err(e)) => {
                        tracing::debug!(client = self.handle.id, "overlay socket error: {e}");
                        break Stop::Gone;
                    }
                    None => break Stop::Gone,
                },
                first = self.handle.rx.recv() => {
                    let Some(first) = first else { break Stop::Gone };
                    let mut batch = vec![first];
                    while batch.len() < BATCH {
                        match self.handle.rx.try_recv() {
                            Ok(m) => batch.push(m),
                            Err(_) => break,
                        }
                    }
                    let write = async {
                        for m in batch {
                            sink.feed(Message::Text(m.json)).await?;
                        }
                        sink.flush().await
                    };
                    tokio::select! {
                        r = write => if r.is_err() { break Stop::Gone },
                        _ = kick.notify.notified() => break Stop::Kicked(self.kick_reason()),
                    }
                }
            }
        };
        if let Stop::Kicked(reason) = stop {
            // Close reasons are limited to 123 bytes by the protocol.
            let short: String = reason.chars().take(100).collect();
            let frame = CloseFrame {
                code: CloseCode::Policy,
                reason: Utf8Bytes::from(short),
            };
            let _ =
                tokio::time::timeout(CLOSE_TIMEOUT, sink.send(Message::Close(Some(frame)))).await;
        }
    }

    fn kick_reason(&self) -> String {
        self.handle
            .kick
            .reason
            .lock()
            .expect("kick lock")
            .clone()
            .unwrap_or_else(|| "closed by the relay".into())
    }

    fn play(&mut self, queue: String) {
        self.handle
            .filter
            .write()
            .expect("filter lock")
            .queues
            .insert(queue.clone());
        self.relay.hub.client_op(ClientOp::Play {
            client: self.handle.id,
            queue,
        });
    }

    /// Handles one message from the client; returns a reply for bad or forbidden ops.
    fn client_message(&mut self, msg: &Message) -> Option<Outbound> {
        if msg.is_ping() || msg.is_pong() {
            return None;
        }
        let Message::Text(text) = msg else {
            return Some(error(
                "send JSON text messages, e.g. {\"op\":\"subscribe\",\"types\":[\"gift\"]}",
            ));
        };
        let op: Value = match serde_json::from_str(text.as_str()) {
            Ok(v) => v,
            Err(e) => return Some(error(&format!("message is not JSON ({e})"))),
        };
        match op.get("op").and_then(Value::as_str) {
            Some("subscribe") => {
                let Some(types) = op.get("types").and_then(Value::as_array) else {
                    return Some(error(
                        "subscribe needs \"types\": an array of event type names",
                    ));
                };
                let types: HashSet<String> = types
                    .iter()
                    .filter_map(|t| t.as_str().map(str::to_string))
                    .collect();
                self.handle.filter.write().expect("filter lock").types = Some(types);
                None
            }
            Some("play") => {
                if let Err(why) = &self.may_control {
                    return Some(error(why));
                }
                match op.get("queue").and_then(Value::as_str) {
                    Some(queue) if !queue.is_empty() => {
                        self.play(queue.to_string());
                        None
                    }
                    _ => Some(error(
                        "play needs \"queue\", e.g. {\"op\":\"play\",\"queue\":\"main\"}",
                    )),
                }
            }
            Some("alert_done") => {
                if let Err(why) = &self.may_control {
                    return Some(error(why));
                }
                match op.get("alert_id").and_then(Value::as_str) {
                    Some(alert_id) => {
                        self.relay.hub.client_op(ClientOp::AlertDone {
                            client: self.handle.id,
                            alert_id: alert_id.to_string(),
                        });
                        None
                    }
                    None => Some(error("alert_done needs \"alert_id\"")),
                }
            }
            Some(action @ ("pause" | "resume" | "skip" | "clear")) => {
                if let Err(why) = &self.may_control {
                    return Some(error(why));
                }
                let Some(queue) = op.get("queue").and_then(Value::as_str) else {
                    return Some(error(&format!("{action} needs \"queue\"")));
                };
                let control = crate::alerts::Control::parse(action)?;
                self.relay
                    .alerts
                    .control(queue, control)
                    .err()
                    .map(|e| error(&e.to_string()))
            }
            Some("replay") => {
                if let Err(why) = &self.may_control {
                    return Some(error(why));
                }
                match op.get("alert_id").and_then(Value::as_str) {
                    Some(id) => self
                        .relay
                        .alerts
                        .replay(id)
                        .err()
                        .map(|e| error(&e.to_string())),
                    None => Some(error("replay needs \"alert_id\"")),
                }
            }
            Some(other) => Some(error(&format!(
                "unknown op {other:?}; known ops: subscribe, play, alert_done, pause, resume, skip, clear, replay"
            ))),
            None => Some(error("message needs an \"op\"")),
        }
    }
}

fn error(message: &str) -> Outbound {
    Outbound::relay("error", json!({"message": message}), Audience::All)
}
