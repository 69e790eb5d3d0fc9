//! One overlay websocket connection: `hello` first, then the messages the client's filter
//! wants, written in batches (feed, then one flush). Client ops (`subscribe`, `play`,
//! `alert_done`) are read on the same socket; a bad op gets an `error` reply and never affects
//! other clients. A client the hub cuts off for being too slow is closed with the reason.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use warp::Reply;
use warp::filters::ws::{Message, WebSocket, Ws};

use super::Relay;
use super::guard::RequestOrigin;
use crate::hub::{Audience, ClientFilter, ClientHandle, ClientOp, Outbound};

/// Messages written per flush at most.
const BATCH: usize = 64;
/// Largest message a client may send.
const MAX_CLIENT_MESSAGE: usize = 16 * 1024;
/// How long a close frame may take to go out to a client that was cut off.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

pub fn upgrade(
    ws: Ws,
    query: HashMap<String, String>,
    origin: RequestOrigin,
    relay: Arc<Relay>,
) -> warp::reply::Response {
    let may_control = relay.origin.check_change(&origin);
    let mut filter = ClientFilter::default();
    if let Some(types) = query.get("types").filter(|t| !t.is_empty()) {
        filter.types = Some(types.split(',').map(|t| t.trim().to_string()).collect());
    }
    let queue = query.get("queue").filter(|q| !q.is_empty()).cloned();
    // Register before the upgrade so nothing published after the handshake is missed.
    let handle = relay.hub.register(filter);
    ws.max_message_size(MAX_CLIENT_MESSAGE)
        .on_upgrade(move |socket| async move {
            let id = handle.id;
            let mut conn = Connection {
                relay: relay.clone(),
                handle,
                may_control,
            };
            if let Some(queue) = queue {
                // Playing takes alerts off a queue, so it is a control op like `play`: a page
                // of another origin must not swallow the streamer's alerts.
                match &conn.may_control {
                    Ok(()) => conn.play(queue),
                    Err(why) => tracing::warn!(
                        client = id,
                        "refused to let a page play alert queue {queue:?}: {why}"
                    ),
                }
            }
            conn.run(socket).await;
            relay.hub.unregister(id);
        })
        .into_response()
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
    async fn run(&mut self, socket: WebSocket) {
        let (mut sink, mut stream) = socket.split();
        let hello = self.relay.hub.hello();
        if sink
            .send(Message::text(hello.json.to_string()))
            .await
            .is_err()
        {
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
                            && sink.send(Message::text(reply.json.to_string())).await.is_err()
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
                            sink.feed(Message::text(m.json.to_string())).await?;
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
            let _ = tokio::time::timeout(
                CLOSE_TIMEOUT,
                sink.send(Message::close_with(1008u16, short)),
            )
            .await;
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
        let Ok(text) = msg.to_str() else {
            return Some(error(
                "send JSON text messages, e.g. {\"op\":\"subscribe\",\"types\":[\"gift\"]}",
            ));
        };
        let op: Value = match serde_json::from_str(text) {
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
