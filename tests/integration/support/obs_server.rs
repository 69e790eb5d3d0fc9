//! A small obs-websocket v5 server on 127.0.0.1 for the faults the real OBS cannot easily
//! show: it goes away in the middle of a request, answers slowly or never, or sends events
//! ahead of the response. It speaks the real envelope (Hello with a challenge, Identify,
//! requests, batches, Reidentify, close 4009) and keeps a program scene, so a worker can be
//! driven through it. Every message a client sends is logged with its connection number.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[derive(Clone, Default)]
pub struct Behaviour {
    /// The first request of this type closes the connection without an answer.
    pub drop_on: Option<String>,
    /// The first request of this type is carried out, then the connection closes before the
    /// answer.
    pub drop_after: Option<String>,
    /// The first request of this type is answered only after this long.
    pub slow: Option<(String, Duration)>,
    /// Requests of this type are never answered.
    pub never_answer: Option<String>,
    /// Send a `CurrentProgramSceneChanged` event before each response to a switch.
    pub event_first: bool,
}

/// One logged client message: `(connection, op, requestType or "")`.
pub type Entry = (usize, u64, String);

#[derive(Default)]
pub struct State {
    pub log: Mutex<Vec<Entry>>,
    pub program: Mutex<String>,
    /// Program scenes in the order they were set.
    pub switches: Mutex<Vec<String>>,
    behaviour: Mutex<Behaviour>,
    connections: Mutex<usize>,
}

impl State {
    /// Makes the next request of `request_type` drop the connection again.
    pub fn behaviour_drop_on(&self, request_type: &str) {
        self.behaviour.lock().unwrap().drop_on = Some(request_type.to_string());
    }
}

pub struct FakeObs {
    pub addr: SocketAddr,
    pub state: Arc<State>,
    task: JoinHandle<()>,
}

impl Drop for FakeObs {
    fn drop(&mut self) {
        self.task.abort();
    }
}

pub const SCENES: [&str; 3] = ["Main", "Boss", "Party"];

impl FakeObs {
    pub async fn start(password: &'static str, behaviour: Behaviour) -> FakeObs {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        *state.program.lock().unwrap() = "Main".into();
        *state.behaviour.lock().unwrap() = behaviour;
        let st = state.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                let n = {
                    let mut c = st.connections.lock().unwrap();
                    *c += 1;
                    *c
                };
                tokio::spawn(serve(tcp, n, password, st.clone()));
            }
        });
        FakeObs { addr, state, task }
    }

    pub fn settings(
        &self,
        password: Option<&str>,
        timeout: Duration,
    ) -> tikrelay::obs::ObsSettings {
        tikrelay::obs::ObsSettings {
            host: "127.0.0.1".into(),
            port: self.addr.port(),
            password: password.map(str::to_string),
            timeout,
            ..Default::default()
        }
    }

    pub fn log(&self) -> Vec<Entry> {
        self.state.log.lock().unwrap().clone()
    }

    pub fn switches(&self) -> Vec<String> {
        self.state.switches.lock().unwrap().clone()
    }
}

fn auth(password: &str, salt: &str, challenge: &str) -> String {
    let secret = STANDARD.encode(Sha256::digest(format!("{password}{salt}")));
    STANDARD.encode(Sha256::digest(format!("{secret}{challenge}")))
}

async fn serve(tcp: tokio::net::TcpStream, n: usize, password: &str, st: Arc<State>) {
    // OBS answers the subprotocol the client offers, and clients check that it does. (The
    // error type is tungstenite's, not ours to shrink.)
    #[allow(clippy::result_large_err)]
    let echo = |req: &Request, mut resp: Response| {
        if let Some(p) = req.headers().get("Sec-WebSocket-Protocol") {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", p.clone());
        }
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, echo).await else {
        return;
    };
    let (salt, challenge) = (format!("salt{n}="), format!("challenge{n}="));
    let hello = json!({"op": 0, "d": {"obsWebSocketVersion": "5.1.0", "rpcVersion": 1,
        "authentication": {"salt": salt, "challenge": challenge}}});
    if ws.send(Message::text(hello.to_string())).await.is_err() {
        return;
    }
    while let Some(Ok(msg)) = ws.next().await {
        let Message::Text(text) = msg else { continue };
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let op = v["op"].as_u64().unwrap_or(99);
        let d = &v["d"];
        let request_type = d["requestType"].as_str().unwrap_or("").to_string();
        st.log.lock().unwrap().push((n, op, request_type.clone()));
        match op {
            1 => {
                if d["authentication"].as_str() != Some(&auth(password, &salt, &challenge)) {
                    let _ = ws
                        .send(Message::Close(Some(CloseFrame {
                            code: CloseCode::from(4009),
                            reason: "Authentication failed.".into(),
                        })))
                        .await;
                    return;
                }
                let ok = json!({"op": 2, "d": {"negotiatedRpcVersion": 1}});
                let _ = ws.send(Message::text(ok.to_string())).await;
            }
            3 => {
                let ok = json!({"op": 2, "d": {"negotiatedRpcVersion": 1}});
                let _ = ws.send(Message::text(ok.to_string())).await;
            }
            6 => {
                let b = st.behaviour.lock().unwrap().clone();
                if b.drop_on.as_deref() == Some(request_type.as_str()) {
                    st.behaviour.lock().unwrap().drop_on = None;
                    return; // the socket drops: OBS went away mid-request
                }
                if b.never_answer.as_deref() == Some(request_type.as_str()) {
                    continue;
                }
                if let Some((slow, delay)) = &b.slow
                    && *slow == request_type
                {
                    st.behaviour.lock().unwrap().slow = None;
                    tokio::time::sleep(*delay).await;
                }
                let (result, events) = run(&st, &request_type, &d["requestData"]);
                if b.drop_after.as_deref() == Some(request_type.as_str()) {
                    st.behaviour.lock().unwrap().drop_after = None;
                    return;
                }
                if b.event_first {
                    for ev in events {
                        let _ = ws.send(Message::text(ev.to_string())).await;
                    }
                }
                let mut answer = result;
                answer["requestId"] = d["requestId"].clone();
                let _ = ws
                    .send(Message::text(json!({"op": 7, "d": answer}).to_string()))
                    .await;
            }
            8 => {
                let mut results = Vec::new();
                for r in d["requests"].as_array().cloned().unwrap_or_default() {
                    let rt = r["requestType"].as_str().unwrap_or("").to_string();
                    st.log.lock().unwrap().push((n, 6, rt.clone()));
                    let drop_here =
                        st.behaviour.lock().unwrap().drop_on.as_deref() == Some(rt.as_str());
                    if drop_here {
                        st.behaviour.lock().unwrap().drop_on = None;
                        return;
                    }
                    if st.behaviour.lock().unwrap().never_answer.as_deref() == Some(rt.as_str()) {
                        results.clear();
                        break;
                    }
                    let (result, _) = run(&st, &rt, &r["requestData"]);
                    let failed = result["requestStatus"]["result"] == false;
                    results.push(result);
                    if failed && d["haltOnFailure"] == true {
                        break;
                    }
                }
                if results.is_empty() && !d["requests"].as_array().is_none_or(Vec::is_empty) {
                    continue; // never answered
                }
                let answer =
                    json!({"op": 9, "d": {"requestId": d["requestId"], "results": results}});
                let _ = ws.send(Message::text(answer.to_string())).await;
            }
            _ => {
                let _ = ws
                    .send(Message::Close(Some(CloseFrame {
                        code: CloseCode::from(4006),
                        reason: "Unknown op".into(),
                    })))
                    .await;
                return;
            }
        }
    }
}

/// Runs one request: `(the response d without requestId, events it causes)`.
fn run(st: &State, request_type: &str, data: &Value) -> (Value, Vec<Value>) {
    let ok = |data: Value| json!({"requestType": request_type, "requestStatus": {"result": true, "code": 100}, "responseData": data});
    match request_type {
        "GetVersion" => (
            ok(json!({"obsVersion": "29.0.2", "obsWebSocketVersion": "5.1.0"})),
            vec![],
        ),
        "GetCurrentProgramScene" => (
            ok(json!({"currentProgramSceneName": *st.program.lock().unwrap()})),
            vec![],
        ),
        "SetCurrentProgramScene" => {
            let name = data["sceneName"].as_str().unwrap_or("");
            if !SCENES.contains(&name) {
                return (
                    json!({"requestType": request_type, "requestStatus": {"result": false, "code": 600,
                        "comment": format!("No source was found by the name of `{name}`.")}}),
                    vec![],
                );
            }
            *st.program.lock().unwrap() = name.to_string();
            st.switches.lock().unwrap().push(name.to_string());
            let ev = json!({"op": 5, "d": {"eventType": "CurrentProgramSceneChanged", "eventIntent": 4,
                "eventData": {"sceneName": name}}});
            (
                json!({"requestType": request_type, "requestStatus": {"result": true, "code": 100}}),
                vec![ev],
            )
        }
        other => (
            json!({"requestType": other, "requestStatus": {"result": false, "code": 204,
                "comment": "Your request type is not valid."}}),
            vec![],
        ),
    }
}
