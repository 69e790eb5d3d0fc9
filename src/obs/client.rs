//! One identified obs-websocket v5 connection: [`ObsClient::connect`] does Hello and Identify
//! (with the SHA-256 challenge when OBS asks for a password), then requests, request batches,
//! re-identification and events share the socket.
//!
//! One task owns the socket and routes every incoming message by `op` and `requestId`, never by
//! "the next message": OBS sends events *before* the response to the request that caused them,
//! and an answer that comes after its caller gave up must not be read as the next request's.
//! When the socket ends, every waiting request fails with the reason, and the client reports
//! itself closed so the worker connects (and identifies) again.

use std::collections::{HashMap, VecDeque};
use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::{self, Message};

use super::protocol::{self, CLOSE_AUTH_FAILED, RPC_VERSION};
use super::{ObsSettings, PASSWORD_ENV};

/// What went wrong talking to OBS. Shown to streamers, so each says what to do.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ObsError {
    #[error(
        "OBS is not running or its WebSocket server is off: nothing accepts connections at {addr}. Start OBS and enable Tools → WebSocket Server Settings → Enable WebSocket server (port {port}), or fix [obs] host/port"
    )]
    NotRunning { addr: String, port: u16 },
    #[error("could not connect to OBS at {addr}: {reason}; check [obs] host and port")]
    Connect { addr: String, reason: String },
    #[error(
        "{addr} does not speak obs-websocket 5 ({reason}); is [obs] port the port shown in OBS → Tools → WebSocket Server Settings? (OBS 28 or newer is needed)"
    )]
    NotObs { addr: String, reason: String },
    #[error(
        "OBS refused the password (close code 4009): set [obs] password or {PASSWORD_ENV} to the Server Password in OBS → Tools → WebSocket Server Settings → Show Connect Info"
    )]
    AuthFailed,
    #[error(
        "OBS asks for a password but none is configured: set [obs] password or {PASSWORD_ENV} (OBS → Tools → WebSocket Server Settings → Show Connect Info)"
    )]
    PasswordNeeded,
    #[error("the connection to OBS was lost: {0}")]
    ConnectionLost(String),
    #[error("OBS did not answer {what} within {timeout:?}; is OBS frozen or overloaded?")]
    Timeout { what: String, timeout: Duration },
    #[error(
        "OBS refused {request_type}: {comment} (code {code}); check the names in the config against OBS"
    )]
    Request {
        request_type: String,
        code: u64,
        comment: String,
    },
    #[error("unexpected answer from OBS: {0}")]
    Protocol(String),
}

/// What OBS said about itself in Hello.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    pub obs_websocket_version: String,
    pub rpc_version: u64,
    pub authentication: bool,
}

/// An event from OBS (`op` 5).
#[derive(Debug, Clone, PartialEq)]
pub struct ObsEvent {
    pub event_type: String,
    /// The subscription bit the event belongs to.
    pub intent: u64,
    pub data: Value,
}

/// One request of a batch, as sent.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub request_type: String,
    pub data: Value,
}

impl BatchRequest {
    pub fn new(request_type: &str, data: Value) -> BatchRequest {
        BatchRequest {
            request_type: request_type.to_string(),
            data,
        }
    }
}

/// The result of one request in a batch; `Err` is [`ObsError::Request`].
pub type BatchResult = Result<Value, ObsError>;

/// What the connection task is asked to do.
enum Outgoing {
    /// A request (op 6) or batch (op 8) whose answer is routed back by `id`.
    Call {
        id: String,
        text: String,
        reply: oneshot::Sender<Result<Value, ObsError>>,
    },
    /// Reidentify (op 3); answered by the next Identified.
    Reidentify {
        text: String,
        reply: oneshot::Sender<Result<Value, ObsError>>,
    },
}

/// An identified connection to OBS. Dropping it ends the connection task, which sends OBS a
/// close frame, so OBS logs a clean disconnect.
pub struct ObsClient {
    tx: mpsc::UnboundedSender<Outgoing>,
    events: broadcast::Sender<ObsEvent>,
    closed: Arc<Mutex<Option<String>>>,
    hello: Hello,
    timeout: Duration,
    next_id: u64,
}

impl std::fmt::Debug for ObsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObsClient")
            .field("hello", &self.hello)
            .field("closed", &self.closed_reason())
            .finish_non_exhaustive()
    }
}

type Socket = WebSocketStream<TcpStream>;

impl ObsClient {
    /// Connects, reads Hello, identifies (subscribing to `event_subscriptions`) and starts
    /// routing. `settings.timeout` bounds every step and, later, every request.
    pub async fn connect(
        settings: &ObsSettings,
        event_subscriptions: u32,
    ) -> Result<ObsClient, ObsError> {
        let timeout = settings.timeout;
        let addr = settings.addr();
        let step = |what: &str| ObsError::Timeout {
            what: what.to_string(),
            timeout,
        };
        let tcp = match tokio::time::timeout(timeout, TcpStream::connect(&addr)).await {
            Err(_) => {
                return Err(ObsError::Connect {
                    addr,
                    reason: format!("no answer within {timeout:?}"),
                });
            }
            Ok(Err(e)) if e.kind() == io::ErrorKind::ConnectionRefused => {
                return Err(ObsError::NotRunning {
                    addr,
                    port: settings.port,
                });
            }
            Ok(Err(e)) => {
                return Err(ObsError::Connect {
                    addr,
                    reason: e.to_string(),
                });
            }
            Ok(Ok(tcp)) => tcp,
        };
        // Requests are small and answered one by one; Nagle would only add latency.
        let _ = tcp.set_nodelay(true);
        let host = if settings.host.contains(':') {
            format!("[{}]", settings.host)
        } else {
            settings.host.clone()
        };
        let mut request = format!("ws://{host}:{}/", settings.port)
            .into_client_request()
            .map_err(|e| ObsError::Connect {
                addr: addr.clone(),
                reason: e.to_string(),
            })?;
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static(protocol::SUBPROTOCOL),
        );
        let (mut ws, _) =
            tokio::time::timeout(timeout, tokio_tungstenite::client_async(request, tcp))
                .await
                .map_err(|_| step("the websocket handshake"))?
                .map_err(|e| ObsError::NotObs {
                    addr: addr.clone(),
                    reason: handshake_reason(&e),
                })?;

        let hello = match next_op(&mut ws, timeout, "Hello").await? {
            (protocol::OP_HELLO, d) => d,
            (op, _) => {
                return Err(ObsError::NotObs {
                    addr,
                    reason: format!("the first message was op {op}, not Hello"),
                });
            }
        };
        let auth = hello.get("authentication").map(|a| {
            (
                a["salt"].as_str().unwrap_or("").to_string(),
                a["challenge"].as_str().unwrap_or("").to_string(),
            )
        });
        let hello = Hello {
            obs_websocket_version: hello["obsWebSocketVersion"]
                .as_str()
                .unwrap_or("?")
                .to_string(),
            rpc_version: hello["rpcVersion"].as_u64().unwrap_or(RPC_VERSION),
            authentication: auth.is_some(),
        };
        let mut identify =
            json!({"rpcVersion": RPC_VERSION, "eventSubscriptions": event_subscriptions});
        if let Some((salt, challenge)) = auth {
            let Some(password) = settings.password.as_deref().filter(|p| !p.is_empty()) else {
                let _ = ws.close(None).await;
                return Err(ObsError::PasswordNeeded);
            };
            identify["authentication"] =
                json!(protocol::auth_response(password, &salt, &challenge));
        }
        send(&mut ws, protocol::message(protocol::OP_IDENTIFY, identify)).await?;
        match next_op(&mut ws, timeout, "Identify").await? {
            (protocol::OP_IDENTIFIED, _) => {}
            (op, _) => {
                return Err(ObsError::Protocol(format!(
                    "OBS answered Identify with op {op}"
                )));
            }
        }

        let (tx, rx) = mpsc::unbounded_channel();
        let (events, _) = broadcast::channel(256);
        let closed = Arc::new(Mutex::new(None));
        tokio::spawn(run(ws, rx, events.clone(), closed.clone()));
        Ok(ObsClient {
            tx,
            events,
            closed,
            hello,
            timeout,
            next_id: 1,
        })
    }

    /// What OBS said in Hello.
    pub fn hello(&self) -> &Hello {
        &self.hello
    }

    /// Events from now on (those the Identify subscribed to).
    pub fn events(&self) -> broadcast::Receiver<ObsEvent> {
        self.events.subscribe()
    }

    /// Why the socket ended, once it has.
    pub fn closed_reason(&self) -> Option<String> {
        self.closed.lock().expect("closed lock").clone()
    }

    pub fn is_closed(&self) -> bool {
        self.closed_reason().is_some() || self.tx.is_closed()
    }

    /// Sends a request and returns its `responseData` (`Null` when there is none).
    pub async fn request(&mut self, request_type: &str, data: Value) -> Result<Value, ObsError> {
        let id = self.take_id("r");
        let mut d = json!({"requestType": request_type, "requestId": id});
        if !data.is_null() {
            d["requestData"] = data;
        }
        let text = protocol::message(protocol::OP_REQUEST, d);
        let response = self.call(id, text, request_type).await?;
        request_result(request_type, &response)
    }

    /// Sends a batch (serial, in order) and returns one result per request that ran; with
    /// `halt_on_failure` the results stop after the first failure.
    pub async fn batch(
        &mut self,
        requests: &[BatchRequest],
        halt_on_failure: bool,
    ) -> Result<Vec<BatchResult>, ObsError> {
        let id = self.take_id("b");
        let list: Vec<Value> = requests
            .iter()
            .map(|r| {
                let mut v = json!({"requestType": r.request_type});
                if !r.data.is_null() {
                    v["requestData"] = r.data.clone();
                }
                v
            })
            .collect();
        let text = protocol::message(
            protocol::OP_REQUEST_BATCH,
            json!({"requestId": id, "haltOnFailure": halt_on_failure, "executionType": 0, "requests": list}),
        );
        let response = self.call(id, text, "a request batch").await?;
        let results = response["results"]
            .as_array()
            .ok_or_else(|| ObsError::Protocol("a batch response without results".into()))?;
        Ok(results
            .iter()
            .map(|r| request_result(r["requestType"].as_str().unwrap_or("?"), r))
            .collect())
    }

    /// Changes the event subscriptions of this session (op 3), answered by Identified.
    pub async fn reidentify(&mut self, event_subscriptions: u32) -> Result<(), ObsError> {
        let (reply, answer) = oneshot::channel();
        let text = protocol::message(
            protocol::OP_REIDENTIFY,
            json!({"eventSubscriptions": event_subscriptions}),
        );
        self.tx
            .send(Outgoing::Reidentify { text, reply })
            .map_err(|_| self.lost())?;
        self.wait(answer, "Reidentify").await.map(|_| ())
    }

    fn take_id(&mut self, prefix: &str) -> String {
        let id = format!("tikrelay-{prefix}{}", self.next_id);
        self.next_id += 1;
        id
    }

    async fn call(&mut self, id: String, text: String, what: &str) -> Result<Value, ObsError> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .send(Outgoing::Call { id, text, reply })
            .map_err(|_| self.lost())?;
        self.wait(answer, what).await
    }

    async fn wait(
        &self,
        answer: oneshot::Receiver<Result<Value, ObsError>>,
        what: &str,
    ) -> Result<Value, ObsError> {
        match tokio::time::timeout(self.timeout, answer).await {
            Err(_) => Err(ObsError::Timeout {
                what: what.to_string(),
                timeout: self.timeout,
            }),
            Ok(Err(_)) => Err(self.lost()),
            Ok(Ok(result)) => result,
        }
    }

    fn lost(&self) -> ObsError {
        ObsError::ConnectionLost(
            self.closed_reason()
                .unwrap_or_else(|| "the connection task ended".into()),
        )
    }
}

/// `responseData` for a successful `requestStatus`, else [`ObsError::Request`].
fn request_result(request_type: &str, response: &Value) -> Result<Value, ObsError> {
    let status = &response["requestStatus"];
    if status["result"].as_bool() == Some(true) {
        Ok(response.get("responseData").cloned().unwrap_or(Value::Null))
    } else {
        Err(ObsError::Request {
            request_type: request_type.to_string(),
            code: status["code"].as_u64().unwrap_or(0),
            comment: status["comment"]
                .as_str()
                .unwrap_or("no reason given")
                .to_string(),
        })
    }
}

fn handshake_reason(e: &tungstenite::Error) -> String {
    match e {
        tungstenite::Error::Http(response) => {
            format!(
                "it answered HTTP {} instead of a websocket",
                response.status()
            )
        }
        tungstenite::Error::Io(e) => e.to_string(),
        other => other.to_string(),
    }
}

async fn send(ws: &mut Socket, text: String) -> Result<(), ObsError> {
    ws.send(Message::text(text))
        .await
        .map_err(|e| ObsError::ConnectionLost(e.to_string()))
}

/// The next envelope during the handshake; a close frame becomes the error it means.
async fn next_op(ws: &mut Socket, timeout: Duration, what: &str) -> Result<(u64, Value), ObsError> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let msg = tokio::time::timeout_at(deadline, ws.next())
            .await
            .map_err(|_| ObsError::Timeout {
                what: format!("the {what} step"),
                timeout,
            })?;
        match msg {
            None => {
                return Err(ObsError::ConnectionLost(format!(
                    "OBS closed the connection during {what}"
                )));
            }
            Some(Err(e)) => return Err(ObsError::ConnectionLost(e.to_string())),
            Some(Ok(Message::Text(text))) => {
                return protocol::parse(&text).ok_or_else(|| {
                    ObsError::Protocol(format!("not an obs-websocket message during {what}"))
                });
            }
            Some(Ok(Message::Close(frame))) => return Err(close_error(frame.as_ref(), what)),
            Some(Ok(_)) => continue,
        }
    }
}

fn close_error(frame: Option<&CloseFrame>, what: &str) -> ObsError {
    let Some(frame) = frame else {
        return ObsError::ConnectionLost(format!("OBS closed the connection during {what}"));
    };
    let code = u16::from(frame.code);
    if code == CLOSE_AUTH_FAILED {
        return ObsError::AuthFailed;
    }
    ObsError::ConnectionLost(close_text(Some(frame)))
}

fn close_text(frame: Option<&CloseFrame>) -> String {
    match frame {
        None => "OBS closed the connection".into(),
        Some(f) => {
            let code = u16::from(f.code);
            let reason = if f.reason.is_empty() {
                String::new()
            } else {
                format!(": {}", f.reason)
            };
            format!(
                "{} (close code {code}{reason})",
                protocol::close_meaning(code)
            )
        }
    }
}

/// The connection task: writes what callers send, routes what OBS sends.
async fn run(
    mut ws: Socket,
    mut rx: mpsc::UnboundedReceiver<Outgoing>,
    events: broadcast::Sender<ObsEvent>,
    closed: Arc<Mutex<Option<String>>>,
) {
    let mut pending: HashMap<String, oneshot::Sender<Result<Value, ObsError>>> = HashMap::new();
    let mut reidentify: VecDeque<oneshot::Sender<Result<Value, ObsError>>> = VecDeque::new();
    let reason = loop {
        tokio::select! {
            out = rx.recv() => {
                let Some(out) = out else {
                    let _ = ws.close(None).await;
                    break "the client was dropped".to_string();
                };
                let (text, waiter) = match out {
                    Outgoing::Call { id, text, reply } => {
                        // A caller that timed out earlier left its entry; drop those now.
                        pending.retain(|_, tx| !tx.is_closed());
                        pending.insert(id, reply);
                        (text, None)
                    }
                    Outgoing::Reidentify { text, reply } => (text, Some(reply)),
                };
                if let Err(e) = ws.send(Message::text(text)).await {
                    break format!("sending failed: {e}");
                }
                if let Some(w) = waiter {
                    reidentify.push_back(w);
                }
            }
            msg = ws.next() => match msg {
                None => break "OBS closed the connection".to_string(),
                Some(Err(e)) => break e.to_string(),
                Some(Ok(Message::Close(frame))) => break close_text(frame.as_ref()),
                Some(Ok(Message::Text(text))) => {
                    let Some((op, d)) = protocol::parse(&text) else {
                        tracing::debug!("OBS sent a message that is not an envelope; ignored");
                        continue;
                    };
                    match op {
                        protocol::OP_REQUEST_RESPONSE | protocol::OP_REQUEST_BATCH_RESPONSE => {
                            let id = d["requestId"].as_str().unwrap_or("").to_string();
                            match pending.remove(&id) {
                                // The caller may have given up (timeout); that is fine.
                                Some(tx) => { let _ = tx.send(Ok(d)); }
                                None => tracing::debug!(id, "an OBS answer nobody waits for (late or unknown); ignored"),
                            }
                        }
                        protocol::OP_EVENT => {
                            let _ = events.send(ObsEvent {
                                event_type: d["eventType"].as_str().unwrap_or("").to_string(),
                                intent: d["eventIntent"].as_u64().unwrap_or(0),
                                data: d.get("eventData").cloned().unwrap_or(Value::Null),
                            });
                        }
                        protocol::OP_IDENTIFIED => {
                            if let Some(tx) = reidentify.pop_front() {
                                let _ = tx.send(Ok(d));
                            }
                        }
                        other => tracing::debug!(op = other, "unexpected op from OBS; ignored"),
                    }
                }
                Some(Ok(_)) => {}
            },
        }
    };
    tracing::debug!("OBS connection ended: {reason}");
    *closed.lock().expect("closed lock") = Some(reason.clone());
    for (_, tx) in pending.drain() {
        let _ = tx.send(Err(ObsError::ConnectionLost(reason.clone())));
    }
    for tx in reidentify {
        let _ = tx.send(Err(ObsError::ConnectionLost(reason.clone())));
    }
}
