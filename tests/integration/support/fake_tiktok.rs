//! A fake TikTok on loopback that speaks the real protocol: the live page with `SIGI_STATE`,
//! the `api-live` room route, `check_alive`, the sign server's `/webcast/fetch` (a protobuf fetch
//! result whose `push_server` points back here, route params, the `X-Set-TT-Cookie` header) and
//! the push websocket.
//!
//! The websocket is strict where TikTok is: it refuses a handshake without `room_id`, without a
//! route param it handed out, without a browser User-Agent or without the cookie (answering
//! HTTP 200 with `Handshake-Msg`/`Handshake-Status`, as TikTok does); it requires `im_enter_room`
//! as the first frame, answers heartbeats, records acks, and then plays the connection's
//! script: frames (gzip or plain), raw bytes, pauses, waits for acks, and abrupt drops.
#![allow(dead_code)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::sync::{Notify, oneshot, watch};
use tokio::time::Instant;
use warp::http::{HeaderMap, HeaderValue, StatusCode};
use warp::reply::Response;
use warp::ws::{Message, WebSocket};
use warp::{Filter, Reply};

use tikrelay::proto::{
    BaseProtoMessage, HeartBeatMessage, ProtoMessageFetchResult, WebcastImEnterRoomMessage,
    WebcastPushFrame,
};
use tikrelay::tiktok::frame;

/// The cookie the fake sign server hands out and the socket requires.
pub const TTWID: &str = "FAKE_TTWID";

/// A streamer the fake knows.
#[derive(Debug, Clone)]
pub struct FakeUser {
    pub room_id: i64,
    pub live: bool,
}

/// How the sign server answers one request.
#[derive(Debug, Clone)]
pub enum SignReply {
    /// The fetch result with these initial messages.
    Ok(Vec<BaseProtoMessage>),
    /// An error status with headers and a JSON body.
    Status {
        status: u16,
        headers: Vec<(&'static str, String)>,
        body: String,
    },
}

/// One step of a connection's script.
#[derive(Debug, Clone)]
pub enum Step {
    /// A `msg` frame around a fetch result of these messages (need_ack set), gzip or plain.
    Msgs {
        messages: Vec<BaseProtoMessage>,
        gzip: bool,
    },
    /// Bytes sent as one binary websocket message, as they are.
    Raw(Vec<u8>),
    Sleep(Duration),
    /// Waits until the client acked this many frames on this connection.
    WaitAcks(usize),
    /// Waits until the client sent this many heartbeats on this connection.
    WaitHeartbeats(usize),
    /// Closes the TCP connection without a close frame.
    Drop,
}

/// What the fake saw of one websocket connection.
#[derive(Debug, Clone, Default)]
pub struct ConnLog {
    pub query: Vec<(String, String)>,
    pub user_agent: String,
    pub cookie: String,
    pub first_frame_type: String,
    pub enter_room: Option<WebcastImEnterRoomMessage>,
    pub heartbeats: Vec<HeartBeatMessage>,
    /// (log_id, payload as text) of every ack.
    pub acks: Vec<(i64, String)>,
    /// log_id and internal_ext of every frame that asked for an ack.
    pub ack_wanted: Vec<(i64, String)>,
    pub client_closed: bool,
    pub opened_at: Option<Instant>,
    /// Every binary message sent to the client, in wire order.
    pub sent: Vec<Vec<u8>>,
}

/// A handshake the fake answered.
#[derive(Debug, Clone)]
pub struct HandshakeLog {
    pub at: Instant,
    pub accepted: bool,
    pub query: Vec<(String, String)>,
}

#[derive(Debug, Default)]
pub struct FakeState {
    pub users: HashMap<String, FakeUser>,
    /// The live page has no SIGI_STATE (a captcha page): clients must use the API.
    pub page_without_sigi: bool,
    pub sign_replies: VecDeque<SignReply>,
    /// Answers to handshakes, in order; when empty, handshakes that pass the checks succeed.
    pub refusals: VecDeque<(String, String)>,
    /// One script per accepted connection; connections past the end get an empty script.
    pub scripts: VecDeque<Vec<Step>>,
    /// `Handshake-Options` ping-interval, in seconds.
    pub ping_interval: String,
    /// Heartbeats are recorded but not answered (a half-dead connection).
    pub mute_heartbeats: bool,
    /// Every sign request's query and the API key header.
    pub sign_calls: Vec<(HashMap<String, String>, Option<String>)>,
    pub sign_times: Vec<Instant>,
    pub handshakes: Vec<HandshakeLog>,
    pub connections: Vec<ConnLog>,
    pub page_hits: usize,
    pub api_hits: usize,
    next_token: u64,
    tokens: Vec<String>,
    next_log_id: i64,
}

pub struct FakeTikTok {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<FakeState>>,
    changed: Arc<Notify>,
    gate: watch::Sender<bool>,
    stop: Option<oneshot::Sender<()>>,
}

fn respond(status: u16, body: impl Into<Vec<u8>>, headers: &[(&str, String)]) -> Response {
    let mut res = body.into().into_response();
    *res.status_mut() = StatusCode::from_u16(status).unwrap();
    for (k, v) in headers {
        res.headers_mut().insert(
            warp::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    res
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    url_pairs(raw)
}

fn url_pairs(raw: &str) -> Vec<(String, String)> {
    reqwest::Url::parse(&format!("http://x/?{raw}"))
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

fn now_ms() -> i64 {
    tikrelay::events::now_ms()
}

impl FakeTikTok {
    /// Starts the fake with one live user, `@streamer` in room 7777. The sign route waits for
    /// [`FakeTikTok::open_gate`], so a test can subscribe to the relay before anything flows.
    pub async fn start() -> FakeTikTok {
        let state = Arc::new(Mutex::new(FakeState {
            ping_interval: "0.2".into(),
            next_log_id: 1000,
            ..FakeState::default()
        }));
        state.lock().unwrap().users.insert(
            "streamer".into(),
            FakeUser {
                room_id: 7777,
                live: true,
            },
        );
        let changed = Arc::new(Notify::new());
        let (gate, gate_rx) = watch::channel(false);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let routes = routes(state.clone(), changed.clone(), gate_rx, addr);
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(
            warp::serve(routes)
                .incoming(listener)
                .graceful(async move {
                    let _ = stopped.await;
                })
                .run(),
        );
        FakeTikTok {
            addr,
            state,
            changed,
            gate,
            stop: Some(stop),
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Lets sign requests through.
    pub fn open_gate(&self) {
        let _ = self.gate.send(true);
    }

    pub fn with<T>(&self, f: impl FnOnce(&mut FakeState) -> T) -> T {
        let mut s = self.state.lock().unwrap();
        let out = f(&mut s);
        drop(s);
        self.changed.notify_waiters();
        out
    }

    pub fn set_live(&self, user: &str, live: bool, room_id: i64) {
        self.with(|s| {
            s.users.insert(user.into(), FakeUser { room_id, live });
        });
    }

    pub fn push_script(&self, steps: Vec<Step>) {
        self.with(|s| s.scripts.push_back(steps));
    }

    pub fn push_sign(&self, reply: SignReply) {
        self.with(|s| s.sign_replies.push_back(reply));
    }

    /// Waits (up to the test bound) until `cond` holds; panics with `what` otherwise.
    pub async fn wait_until(&self, what: &str, cond: impl Fn(&FakeState) -> bool) {
        let deadline = Instant::now() + super::WAIT;
        loop {
            let notified = self.changed.notified();
            if cond(&self.state.lock().unwrap()) {
                return;
            }
            if Instant::now() >= deadline {
                panic!(
                    "fake TikTok: timed out waiting for {what}; state: {:#?}",
                    self.state.lock().unwrap()
                );
            }
            let _ = tokio::time::timeout(Duration::from_millis(50), notified).await;
        }
    }
}

impl Drop for FakeTikTok {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn raw_query() -> impl Filter<Extract = (String,), Error = std::convert::Infallible> + Clone {
    warp::query::raw().or(warp::any().map(String::new)).unify()
}

fn routes(
    state: Arc<Mutex<FakeState>>,
    changed: Arc<Notify>,
    gate: watch::Receiver<bool>,
    addr: SocketAddr,
) -> warp::filters::BoxedFilter<(Response,)> {
    let s = move || {
        let state = state.clone();
        warp::any().map(move || state.clone())
    };
    let c = move || {
        let changed = changed.clone();
        warp::any().map(move || changed.clone())
    };
    let live_page = warp::path!(String / "live")
        .and(warp::get())
        .and(s())
        .map(|at_user: String, state: Arc<Mutex<FakeState>>| {
            let mut st = state.lock().unwrap();
            st.page_hits += 1;
            let user = at_user.trim_start_matches('@').to_string();
            if st.page_without_sigi {
                return respond(200, "<html><body>Please verify you are human</body></html>", &[]);
            }
            let sigi = match st.users.get(&user) {
                Some(u) => serde_json::json!({
                    "AppContext": {},
                    "LiveRoom": {"liveRoomUserInfo": {"user": {
                        "roomId": u.room_id.to_string(),
                        "uniqueId": user,
                        "status": if u.live { 2 } else { 4 },
                    }}}
                }),
                // TikTok's page for a missing user has no LiveRoom.
                None => serde_json::json!({"AppContext": {}}),
            };
            let html = format!(
                "<html><head><script id=\"SIGI_STATE\" type=\"application/json\">{sigi}</script></head></html>"
            );
            respond(200, html, &[("content-type", "text/html".into())])
        });
    let api = warp::path!("api-live" / "user" / "room")
        .and(warp::get())
        .and(raw_query())
        .and(s())
        .map(|q: String, state: Arc<Mutex<FakeState>>| {
            let mut st = state.lock().unwrap();
            st.api_hits += 1;
            let q: HashMap<_, _> = parse_query(&q).into_iter().collect();
            let user = q.get("uniqueId").cloned().unwrap_or_default();
            let body = match st.users.get(&user) {
                Some(u) => serde_json::json!({
                    "statusCode": 0,
                    "data": {
                        "user": {"roomId": u.room_id.to_string(), "uniqueId": user, "status": if u.live { 2 } else { 4 }},
                        "liveRoom": {"status": if u.live { 2 } else { 4 }},
                    }
                }),
                None => serde_json::json!({"statusCode": 19881007, "message": "user_not_found", "data": {}}),
            };
            respond(200, body.to_string(), &[("content-type", "application/json".into())])
        });
    let check_alive = warp::path!("webcast" / "room" / "check_alive")
        .and(warp::get())
        .and(raw_query())
        .and(s())
        .map(|q: String, state: Arc<Mutex<FakeState>>| {
            let st = state.lock().unwrap();
            let q: HashMap<_, _> = parse_query(&q).into_iter().collect();
            let room: i64 = q.get("room_ids").and_then(|r| r.parse().ok()).unwrap_or(0);
            let alive = st.users.values().any(|u| u.room_id == room && u.live);
            let body = serde_json::json!({"status_code": 0, "data": [{"alive": alive, "room_id": room, "room_id_str": room.to_string()}]});
            respond(200, body.to_string(), &[])
        });
    let sign = warp::path!("webcast" / "fetch")
        .and(warp::get())
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(s())
        .and(c())
        .and(warp::any().map(move || gate.clone()))
        .then(
            move |q: String,
                  headers: HeaderMap,
                  state: Arc<Mutex<FakeState>>,
                  changed: Arc<Notify>,
                  mut gate: watch::Receiver<bool>| async move {
                let _ = gate.wait_for(|open| *open).await;
                let q: HashMap<_, _> = parse_query(&q).into_iter().collect();
                let key = headers
                    .get("x-api-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string);
                let mut st = state.lock().unwrap();
                st.sign_calls.push((q.clone(), key));
                st.sign_times.push(Instant::now());
                changed.notify_waiters();
                let reply = st
                    .sign_replies
                    .pop_front()
                    .unwrap_or(SignReply::Ok(Vec::new()));
                match reply {
                    SignReply::Status {
                        status,
                        headers,
                        body,
                    } => respond(status, body, &headers),
                    SignReply::Ok(messages) => {
                        let room: i64 = q.get("room_id").and_then(|r| r.parse().ok()).unwrap_or(0);
                        if room == 0
                            || !q
                                .get("user_agent")
                                .is_some_and(|ua| ua.starts_with("Mozilla/5.0"))
                        {
                            return respond(
                                400,
                                r#"{"message":"room_id and user_agent are required"}"#,
                                &[],
                            );
                        }
                        st.next_token += 1;
                        let token = format!("WRSS-{}", st.next_token);
                        st.tokens.push(token.clone());
                        let result = ProtoMessageFetchResult {
                            messages,
                            cursor: "cursor-initial".into(),
                            internal_ext: "ie-initial".into(),
                            route_params: [
                                ("wrss".to_string(), token),
                                ("imprp".to_string(), "IM PRP&1".to_string()),
                            ]
                            .into(),
                            push_server: format!("ws://{addr}/webcast/im/push/v2/"),
                            is_first: true,
                            now: now_ms(),
                            ..Default::default()
                        };
                        respond(
                            200,
                            result.encode_to_vec(),
                            &[
                                (
                                    "x-set-tt-cookie",
                                    format!("ttwid={TTWID}; Path=/; msToken=FAKE_MSTOKEN"),
                                ),
                                ("content-type", "application/protobuf".into()),
                            ],
                        )
                    }
                }
            },
        );
    let state_ws = s();
    let socket = warp::path!("webcast" / "im" / "push" / "v2")
        .and(raw_query())
        .and(warp::header::headers_cloned())
        .and(warp::ws())
        .and(state_ws)
        .and(c())
        .map(
            |q: String,
             headers: HeaderMap,
             ws: warp::ws::Ws,
             state: Arc<Mutex<FakeState>>,
             changed: Arc<Notify>| {
                let query = parse_query(&q);
                let get = |k: &str| query.iter().find(|(qk, _)| qk == k).map(|(_, v)| v.clone());
                let header = |k: &str| {
                    headers
                        .get(k)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_string()
                };
                let mut st = state.lock().unwrap();
                let refusal = if let Some(r) = st.refusals.pop_front() {
                    Some(r)
                } else if get("room_id").is_none_or(|r| r.is_empty()) {
                    Some(("MISSING_ROOM_ID".to_string(), "400".to_string()))
                } else if !get("wrss").is_some_and(|t| st.tokens.contains(&t)) {
                    Some(("illegal secret key".to_string(), "417".to_string()))
                } else if !header("user-agent").starts_with("Mozilla/5.0") {
                    Some(("DEVICE_BLOCKED".to_string(), "415".to_string()))
                } else if !header("cookie").contains(&format!("ttwid={TTWID}")) {
                    Some(("MISSING_COOKIE".to_string(), "403".to_string()))
                } else {
                    None
                };
                st.handshakes.push(HandshakeLog {
                    at: Instant::now(),
                    accepted: refusal.is_none(),
                    query: query.clone(),
                });
                changed.notify_waiters();
                if let Some((msg, status)) = refusal {
                    return respond(
                        200,
                        "",
                        &[("handshake-msg", msg), ("handshake-status", status)],
                    );
                }
                let script = st.scripts.pop_front().unwrap_or_default();
                let index = st.connections.len();
                st.connections.push(ConnLog {
                    query,
                    user_agent: header("user-agent"),
                    cookie: header("cookie"),
                    opened_at: Some(Instant::now()),
                    ..ConnLog::default()
                });
                let ping = st.ping_interval.clone();
                drop(st);
                let (state, changed) = (state.clone(), changed.clone());
                let mut res = ws
                    .on_upgrade(move |socket| connection(socket, index, script, state, changed))
                    .into_response();
                res.headers_mut().insert(
                    "handshake-options",
                    HeaderValue::from_str(&format!("ping-interval={ping}; ping-timeout=10"))
                        .unwrap(),
                );
                res
            },
        );
    live_page
        .or(api)
        .unify()
        .or(check_alive)
        .unify()
        .or(sign)
        .unify()
        .or(socket)
        .unify()
        .boxed()
}

type Sink = Arc<tokio::sync::Mutex<futures_util::stream::SplitSink<WebSocket, Message>>>;

/// Sends one binary message and logs it, under the sink lock so the log keeps wire order.
async fn send_logged(sink: &Sink, state: &Mutex<FakeState>, index: usize, bytes: Vec<u8>) -> bool {
    let mut sink = sink.lock().await;
    state.lock().unwrap().connections[index]
        .sent
        .push(bytes.clone());
    sink.send(Message::binary(bytes)).await.is_ok()
}

async fn connection(
    socket: WebSocket,
    index: usize,
    script: Vec<Step>,
    state: Arc<Mutex<FakeState>>,
    changed: Arc<Notify>,
) {
    let (sink, mut stream) = socket.split();
    let sink = Arc::new(tokio::sync::Mutex::new(sink));
    let log = |f: &dyn Fn(&mut ConnLog)| {
        f(&mut state.lock().unwrap().connections[index]);
        changed.notify_waiters();
    };
    // The first frame must be im_enter_room.
    let first = match tokio::time::timeout(super::WAIT, stream.next()).await {
        Ok(Some(Ok(m))) => m,
        _ => return,
    };
    let first = WebcastPushFrame::decode(first.as_bytes()).unwrap_or_default();
    log(&|c| c.first_frame_type = first.payload_type.clone());
    if first.payload_type != "im_enter_room" {
        let _ = sink
            .lock()
            .await
            .send(Message::close_with(1008u16, "enter the room first"))
            .await;
        return;
    }
    let enter = WebcastImEnterRoomMessage::decode(first.payload.as_ref()).ok();
    log(&|c| c.enter_room = enter.clone());
    let resp = WebcastPushFrame {
        payload_type: "im_enter_room_resp".into(),
        payload_encoding: "pb".into(),
        ..Default::default()
    };
    send_logged(&sink, &state, index, resp.encode_to_vec()).await;

    // Reader: heartbeats (answered), acks (recorded), close.
    let reader_sink = sink.clone();
    let (reader_state, reader_changed) = (state.clone(), changed.clone());
    let reader = tokio::spawn(async move {
        while let Some(Ok(msg)) = stream.next().await {
            if msg.is_close() {
                reader_state.lock().unwrap().connections[index].client_closed = true;
                reader_changed.notify_waiters();
                break;
            }
            let Ok(frame) = WebcastPushFrame::decode(msg.as_bytes()) else {
                continue;
            };
            match frame.payload_type.as_str() {
                "hb" => {
                    let hb = HeartBeatMessage::decode(frame.payload.as_ref()).unwrap_or_default();
                    let mute = {
                        let mut st = reader_state.lock().unwrap();
                        st.connections[index].heartbeats.push(hb);
                        st.mute_heartbeats
                    };
                    if mute {
                        reader_changed.notify_waiters();
                        continue;
                    }
                    let answer = WebcastPushFrame {
                        payload_type: "hb".into(),
                        payload_encoding: "pb".into(),
                        ..Default::default()
                    };
                    send_logged(&reader_sink, &reader_state, index, answer.encode_to_vec()).await;
                }
                "ack" => {
                    let text = String::from_utf8_lossy(&frame.payload).into_owned();
                    reader_state.lock().unwrap().connections[index]
                        .acks
                        .push((frame.log_id, text));
                }
                _ => {}
            }
            reader_changed.notify_waiters();
        }
    });

    let count = |f: &dyn Fn(&ConnLog) -> usize| f(&state.lock().unwrap().connections[index]);
    for step in script {
        match step {
            Step::Msgs { messages, gzip } => {
                let (log_id, seq) = {
                    let mut st = state.lock().unwrap();
                    st.next_log_id += 1;
                    (st.next_log_id, st.next_log_id - 1000)
                };
                let ext = format!("ie-push-{log_id}");
                let result = ProtoMessageFetchResult {
                    messages,
                    cursor: format!("cursor-{log_id}"),
                    internal_ext: ext.clone(),
                    need_ack: true,
                    now: now_ms(),
                    ..Default::default()
                };
                let bytes = frame::msg_frame(seq, log_id, &result, gzip).encode_to_vec();
                log(&|c| c.ack_wanted.push((log_id, ext.clone())));
                if !send_logged(&sink, &state, index, bytes).await {
                    break;
                }
            }
            Step::Raw(bytes) => {
                if !send_logged(&sink, &state, index, bytes).await {
                    break;
                }
            }
            Step::Sleep(d) => tokio::time::sleep(d).await,
            Step::WaitAcks(n) => {
                let deadline = Instant::now() + super::WAIT;
                while count(&|c| c.acks.len()) < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Step::WaitHeartbeats(n) => {
                let deadline = Instant::now() + super::WAIT;
                while count(&|c| c.heartbeats.len()) < n && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
            Step::Drop => {
                reader.abort();
                // Dropping both halves closes the TCP connection with no close frame.
                return;
            }
        }
    }
    let _ = reader.await;
}

/// Short timings, so reconnects and polls take milliseconds.
pub fn test_timings() -> tikrelay::sources::live::Timings {
    tikrelay::sources::live::Timings {
        backoff_min: Duration::from_millis(100),
        backoff_max: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
        wait_live_poll: Duration::from_millis(200),
        default_heartbeat: Duration::from_secs(1),
        stall_timeout: Duration::from_secs(3),
        request_timeout: Duration::from_secs(5),
        max_retry_after: Duration::from_secs(5),
    }
}

/// How a test runs the relay.
pub struct LiveOpts {
    pub wait_live: bool,
    pub exit_on_end: bool,
    pub api_key: Option<String>,
    pub record: tikrelay::app::RecordPaths,
    pub timings: tikrelay::sources::live::Timings,
}

impl Default for LiveOpts {
    fn default() -> Self {
        LiveOpts {
            wait_live: false,
            exit_on_end: true,
            api_key: None,
            record: Default::default(),
            timings: test_timings(),
        }
    }
}

/// `tikrelay live` in-process against the fake, with a `/ws` client subscribed to every event
/// type (webcast included) before the fake lets anything through.
pub struct LiveRelay {
    pub addr: SocketAddr,
    pub ws: super::WsClient,
    task: Option<tokio::task::JoinHandle<Result<(), tikrelay::app::AppError>>>,
    stop: Option<oneshot::Sender<()>>,
}

impl LiveRelay {
    pub async fn start(fake: &FakeTikTok, target: &str, opts: LiveOpts) -> LiveRelay {
        use tikrelay::sources::live::{Endpoints, LiveConfig, Target};
        super::install_crypto();
        let url = fake.url();
        let config = LiveConfig {
            target: Target::parse(target).unwrap(),
            endpoints: Endpoints::new(&url, &url, &url),
            sign_api_key: opts.api_key,
            wait_live: opts.wait_live,
            timings: opts.timings,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let common = super::common_args(&[]);
        let record = opts.record;
        let exit_on_end = opts.exit_on_end;
        let task = tokio::spawn(async move {
            tikrelay::app::live(
                listener,
                &common,
                vec![config],
                record,
                exit_on_end,
                async move {
                    let _ = stopped.await;
                },
            )
            .await
        });
        let types = tikrelay::events::EVENT_TYPES.join(",");
        let mut ws = super::WsClient::connect(&format!("ws://{addr}/ws?types={types}")).await;
        let hello = ws.next_json().await;
        assert_eq!(hello["type"], "hello");
        fake.open_gate();
        LiveRelay {
            addr,
            ws,
            task: Some(task),
            stop: Some(stop),
        }
    }

    /// Events (not relay messages) until one matches `last`, inclusive.
    pub async fn events_until(
        &mut self,
        last: impl Fn(&serde_json::Value) -> bool,
    ) -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        loop {
            let msg = self.ws.next_json().await;
            let ty = msg["type"].as_str().unwrap_or_default();
            if !tikrelay::events::EVENT_TYPES.contains(&ty) {
                continue;
            }
            let done = last(&msg);
            out.push(msg);
            if done {
                return out;
            }
        }
    }

    /// Waits for the relay to return by itself (the LIVE ended with exit_on_end, or an error).
    pub async fn finished(&mut self) -> Result<(), tikrelay::app::AppError> {
        let task = self.task.take().expect("not awaited yet");
        tokio::time::timeout(super::WAIT, task)
            .await
            .expect("the relay did not stop by itself")
            .expect("relay task")
    }

    /// Stops the relay as Ctrl-C does and returns its result.
    pub async fn stop(mut self) -> Result<(), tikrelay::app::AppError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let task = self.task.take().expect("not awaited yet");
        tokio::time::timeout(super::WAIT, task)
            .await
            .expect("the relay did not stop on shutdown")
            .expect("relay task")
    }
}

impl Drop for LiveRelay {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}
