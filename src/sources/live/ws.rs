//! One websocket session with TikTok's push server.
//!
//! The URL is the sign result's `push_server` with its `route_params` (opaque tokens that
//! authorise the socket) and the client parameters a browser sends; the handshake carries the
//! browser User-Agent and the sign server's cookies. Then: `im_enter_room` first, heartbeats at
//! the interval the server's `Handshake-Options` names (`ping-interval`, seconds), an ack for
//! every pushed result that asks for one (`log_id` + that result's `internal_ext`, encoding
//! `pb`), and nothing that relies on websocket pings (TikTok sends no pongs).
//!
//! Every frame is bounded and checked: frames over the size limit, gzip that does not inflate
//! or inflates too far, and payloads that are not protobuf are logged with the reason and
//! skipped; the session goes on. Silence (no frame, not even a heartbeat answer) for the stall
//! timeout ends the session, as does a close; the caller reconnects. A control message that
//! ends the LIVE ends the session cleanly.

use std::collections::BTreeMap;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use prost::Message as _;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{BROWSER_USER_AGENT, LiveError};
use crate::pipeline::{Feed, Input};
use crate::proto::{
    HeartBeatMessage, ProtoMessageFetchResult, WebcastControlMessage, WebcastImEnterRoomMessage,
    WebcastPushFrame,
};
use crate::recorder::{FrameRecorder, RecordKind};
use crate::tiktok::frame;

/// Messages above this size end the connection inside the websocket library; smaller ones that
/// are still over [`frame::MAX_FRAME_BYTES`] are skipped by the frame decoder with a log line.
const SOCKET_MESSAGE_LIMIT: usize = 4 * frame::MAX_FRAME_BYTES;
/// Shortest heartbeat interval accepted from `Handshake-Options`.
const MIN_HEARTBEAT: Duration = Duration::from_millis(100);
/// Longest heartbeat interval accepted from `Handshake-Options`.
const MAX_HEARTBEAT: Duration = Duration::from_secs(120);

pub type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Where a session's frames go.
#[derive(Clone)]
pub struct Outputs {
    pub input: Feed,
    pub recorder: Option<FrameRecorder>,
}

impl Outputs {
    pub fn record(&self, kind: RecordKind, bytes: &[u8]) {
        if let Some(r) = &self.recorder {
            r.record(kind, bytes);
        }
    }

    /// Names the step the source is at, for `/api/sources` and the dashboard.
    pub fn step(&self, detail: &str) {
        self.input.origin().step(detail);
    }

    /// False when the pipeline is gone (the relay shuts down).
    pub async fn send(&self, input: Input) -> bool {
        self.input.send(input).await.is_ok()
    }
}

/// Why a session ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SessionEnd {
    /// TikTok said the LIVE ended (control action 3 or 4).
    LiveEnded,
    /// The socket closed or failed; the reason is for the log and the `disconnected` event.
    Closed(String),
    /// Nothing arrived for the stall timeout.
    Stalled,
    /// The relay is shutting down.
    PipelineGone,
}

/// The websocket URL: `push_server`, then the route params, then the client params (which win
/// over a route param of the same name), then the extra `version_code` TikTok's web client
/// appends.
pub fn socket_url(
    push_server: &str,
    route_params: &BTreeMap<String, String>,
    room_id: &str,
    heartbeat: Duration,
) -> Result<String, LiveError> {
    let mut url = reqwest::Url::parse(push_server).map_err(|e| {
        LiveError::BadSignAnswer(format!("its websocket server is not a URL ({e})"))
    })?;
    if !matches!(url.scheme(), "ws" | "wss") {
        return Err(LiveError::BadSignAnswer(format!(
            "its websocket server uses {}: instead of wss:",
            url.scheme()
        )));
    }
    let (browser_name, browser_version) = BROWSER_USER_AGENT
        .split_once('/')
        .unwrap_or(("Mozilla", BROWSER_USER_AGENT));
    let heartbeat_ms = heartbeat.as_millis().to_string();
    let client: Vec<(&str, &str)> = vec![
        ("aid", "1988"),
        ("app_language", "en"),
        ("app_name", "tiktok_web"),
        ("browser_platform", "Win32"),
        ("browser_language", "en-US"),
        ("browser_name", browser_name),
        ("browser_version", browser_version),
        ("browser_online", "true"),
        ("cookie_enabled", "true"),
        ("tz_name", "America/New_York"),
        ("device_platform", "web"),
        ("identity", "audience"),
        ("live_id", "12"),
        ("sup_ws_ds_opt", "1"),
        ("update_version_code", "2.0.0"),
        ("version_code", "180800"),
        ("client_enter", "1"),
        ("ws_direct", "1"),
        ("did_rule", "3"),
        ("webcast_language", "en"),
        ("screen_height", "1080"),
        ("screen_width", "1920"),
        ("heartbeat_duration", &heartbeat_ms),
        ("resp_content_type", "protobuf"),
        ("history_comment_count", "6"),
        ("last_rtt", "150"),
        ("room_id", room_id),
        ("compress", "gzip"),
    ];
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in route_params {
            if !client.iter().any(|(ck, _)| ck == k) {
                q.append_pair(k, v);
            }
        }
        for (k, v) in &client {
            q.append_pair(k, v);
        }
        q.append_pair("version_code", "270000");
    }
    Ok(url.into())
}

/// The heartbeat interval from a `Handshake-Options` value such as
/// `ping-interval=10; ping-timeout=30`.
pub fn heartbeat_from_options(options: &str) -> Option<Duration> {
    options.split(';').find_map(|part| {
        let (k, v) = part.split_once('=')?;
        if k.trim() != "ping-interval" {
            return None;
        }
        let secs: f64 = v.trim().parse().ok()?;
        let d = Duration::try_from_secs_f64(secs).ok()?;
        Some(d.clamp(MIN_HEARTBEAT, MAX_HEARTBEAT))
    })
}

/// Opens the socket. A refused handshake reports TikTok's `Handshake-Msg` in words.
pub async fn connect(
    url: &str,
    cookie: &str,
    default_heartbeat: Duration,
    timeout: Duration,
) -> Result<(Socket, Duration), LiveError> {
    let mut request = url
        .into_client_request()
        .map_err(|e| LiveError::BadSignAnswer(format!("its websocket URL is unusable ({e})")))?;
    let headers = request.headers_mut();
    headers.insert(
        "User-Agent",
        BROWSER_USER_AGENT.parse().expect("static header"),
    );
    if let Ok(v) = cookie.parse() {
        headers.insert("Cookie", v);
    }
    headers.insert("Accept-Language", "en-US,en;q=0.9".parse().expect("static"));
    let config = WebSocketConfig::default()
        .max_message_size(Some(SOCKET_MESSAGE_LIMIT))
        .max_frame_size(Some(SOCKET_MESSAGE_LIMIT));
    let attempt = tokio_tungstenite::connect_async_with_config(request, Some(config), true);
    let (socket, response) = match tokio::time::timeout(timeout, attempt).await {
        Err(_) => {
            return Err(LiveError::Socket(format!(
                "no handshake answer within {} s",
                timeout.as_secs()
            )));
        }
        Ok(Err(tungstenite::Error::Http(response))) => {
            let header = |name: &str| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_string)
            };
            return Err(LiveError::HandshakeRefused {
                message: header("handshake-msg").unwrap_or_else(|| {
                    format!("HTTP {} instead of a websocket", response.status())
                }),
                status: header("handshake-status")
                    .unwrap_or_else(|| response.status().as_u16().to_string()),
            });
        }
        Ok(Err(e)) => return Err(LiveError::Socket(super::room::error_chain(&e))),
        Ok(Ok(pair)) => pair,
    };
    let heartbeat = response
        .headers()
        .get("handshake-options")
        .and_then(|v| v.to_str().ok())
        .and_then(heartbeat_from_options)
        .unwrap_or(default_heartbeat);
    Ok((socket, heartbeat))
}

fn control_frame(payload_type: &str, log_id: i64, payload: Vec<u8>) -> Message {
    let frame = WebcastPushFrame {
        log_id,
        payload_encoding: "pb".into(),
        payload_type: payload_type.into(),
        payload,
        ..Default::default()
    };
    Message::binary(frame.encode_to_vec())
}

/// The `im_enter_room` frame a browser sends first.
pub fn enter_room_frame(room_id: i64) -> Message {
    let enter = WebcastImEnterRoomMessage {
        room_id,
        live_id: 12,
        identity: "audience".into(),
        filter_welcome_msg: "0".into(),
        ..Default::default()
    };
    control_frame("im_enter_room", 0, enter.encode_to_vec())
}

/// Heartbeat number `seq` (from 1).
pub fn heartbeat_frame(room_id: i64, seq: i64) -> Message {
    let hb = HeartBeatMessage {
        room_id,
        send_packet_seq_id: seq,
    };
    control_frame("hb", 0, hb.encode_to_vec())
}

/// The ack for a pushed result that asked for one.
pub fn ack_frame(log_id: i64, internal_ext: &str) -> Message {
    // TikTokLive sends "-" for an empty internal_ext; an empty ack was seen to be ignored.
    let ext = if internal_ext.is_empty() {
        "-"
    } else {
        internal_ext
    };
    control_frame("ack", log_id, ext.as_bytes().to_vec())
}

/// True when the result carries a control message that ends the LIVE.
pub fn ends_live(result: &ProtoMessageFetchResult) -> bool {
    result.messages.iter().any(|m| {
        m.method == "WebcastControlMessage"
            && WebcastControlMessage::decode(m.payload.as_ref())
                .is_ok_and(|c| matches!(c.action, 3 | 4))
    })
}

/// A connected socket, ready to enter the room.
pub struct Session {
    pub socket: Socket,
    pub room_id: i64,
    pub heartbeat: Duration,
    pub stall_timeout: Duration,
}

impl Session {
    /// Enters the room. Heartbeats start right after.
    pub async fn enter(&mut self) -> Result<(), LiveError> {
        self.socket
            .send(enter_room_frame(self.room_id))
            .await
            .map_err(|e| LiveError::Socket(super::room::error_chain(&e)))
    }

    /// Pumps frames until the session ends.
    pub async fn run(mut self, out: &Outputs) -> SessionEnd {
        let mut heartbeat = tokio::time::interval(self.heartbeat);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut hb_seq = 0i64;
        let mut last_activity = Instant::now();
        loop {
            let stall_at = last_activity + self.stall_timeout;
            let msg = tokio::select! {
                msg = self.socket.next() => msg,
                _ = heartbeat.tick() => {
                    hb_seq += 1;
                    if let Err(e) = self.socket.send(heartbeat_frame(self.room_id, hb_seq)).await {
                        return SessionEnd::Closed(format!("heartbeat failed: {}", super::room::error_chain(&e)));
                    }
                    continue;
                }
                _ = tokio::time::sleep_until(stall_at) => {
                    let _ = tokio::time::timeout(Duration::from_secs(1), self.socket.close(None)).await;
                    return SessionEnd::Stalled;
                }
            };
            let bytes = match msg {
                None => return SessionEnd::Closed("the server closed the connection".into()),
                Some(Err(e)) => return SessionEnd::Closed(super::room::error_chain(&e)),
                Some(Ok(Message::Binary(bytes))) => bytes,
                Some(Ok(Message::Close(frame))) => {
                    let why = match frame {
                        Some(f) if !f.reason.is_empty() => {
                            format!(
                                "the server closed the connection ({} {})",
                                u16::from(f.code),
                                f.reason
                            )
                        }
                        Some(f) => {
                            format!("the server closed the connection ({})", u16::from(f.code))
                        }
                        None => "the server closed the connection".into(),
                    };
                    return SessionEnd::Closed(why);
                }
                Some(Ok(_)) => {
                    last_activity = Instant::now();
                    continue;
                }
            };
            last_activity = Instant::now();
            out.record(RecordKind::PushFrame, &bytes);
            match self.handle_frame(&bytes, out).await {
                Ok(None) => {}
                Ok(Some(end)) => return end,
                Err(e) => return SessionEnd::Closed(e),
            }
        }
    }

    /// One binary message. `Ok(Some(end))` ends the session.
    async fn handle_frame(
        &mut self,
        bytes: &[u8],
        out: &Outputs,
    ) -> Result<Option<SessionEnd>, String> {
        let frame = match frame::decode_push_frame(bytes) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!("push frame skipped: {e}");
                return Ok(None);
            }
        };
        match frame.payload_type.as_str() {
            "msg" => {}
            "hb" => {
                tracing::trace!("heartbeat answered");
                return Ok(None);
            }
            "im_enter_room_resp" => {
                tracing::debug!("room entered");
                return Ok(None);
            }
            other => {
                tracing::debug!("push frame of type {other:?} ignored");
                return Ok(None);
            }
        }
        // Decoded here to read the ack and end flags, and handed to the pipeline decoded.
        let result = match frame::frame_fetch_result(&frame) {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!("push frame {} skipped: {e}", frame.seq_id);
                return Ok(None);
            }
        };
        if result.need_ack {
            self.socket
                .send(ack_frame(frame.log_id, &result.internal_ext))
                .await
                .map_err(|e| format!("ack failed: {}", super::room::error_chain(&e)))?;
        }
        let ended = ends_live(&result);
        if !out.send(Input::fetch_result(result)).await {
            return Ok(Some(SessionEnd::PipelineGone));
        }
        if ended {
            let _ = tokio::time::timeout(Duration::from_secs(2), self.socket.close(None)).await;
            return Ok(Some(SessionEnd::LiveEnded));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_carries_route_params_client_params_and_the_extra_version_code() {
        let route: BTreeMap<String, String> = [
            ("imprp".to_string(), "A B&C".to_string()),
            ("room_id".to_string(), "999".to_string()),
        ]
        .into();
        let url = socket_url(
            "wss://push.example/webcast/im/push/v2/?token=t",
            &route,
            "777",
            Duration::from_secs(10),
        )
        .unwrap();
        assert!(
            url.starts_with("wss://push.example/webcast/im/push/v2/?token=t&imprp=A+B%26C&"),
            "{url}"
        );
        assert!(url.contains("&room_id=777&"), "{url}");
        assert!(!url.contains("room_id=999"), "client params win: {url}");
        assert!(url.contains("version_code=180800") && url.ends_with("&version_code=270000"));
        assert!(url.contains("heartbeat_duration=10000"));
        assert!(socket_url("https://x/", &route, "1", Duration::from_secs(1)).is_err());
        assert!(socket_url("not a url", &route, "1", Duration::from_secs(1)).is_err());
    }

    #[test]
    fn handshake_options_name_the_heartbeat() {
        assert_eq!(
            heartbeat_from_options("ping-interval=2; ping-timeout=10"),
            Some(Duration::from_secs(2))
        );
        assert_eq!(
            heartbeat_from_options("ping-timeout=10;ping-interval=0.5"),
            Some(Duration::from_millis(500))
        );
        assert_eq!(
            heartbeat_from_options("ping-interval=0"),
            Some(MIN_HEARTBEAT)
        );
        assert_eq!(heartbeat_from_options("ping-interval=x"), None);
        assert_eq!(heartbeat_from_options(""), None);
    }

    #[test]
    fn client_frames_match_the_bytes_of_the_reference_clients() {
        let bytes = |m: Message| m.into_data().to_vec();
        // protocol.md 1.6: 32 02 "pb" 3a 02 "hb" 42 05 08 89 06 10 01
        assert_eq!(
            bytes(heartbeat_frame(777, 1)),
            [
                &[0x32, 2][..],
                b"pb",
                &[0x3a, 2],
                b"hb",
                &[0x42, 5, 0x08, 0x89, 0x06, 0x10, 0x01]
            ]
            .concat()
        );
        // 10 92 21 32 02 "pb" 3a 03 "ack" 42 09 "ie-push-2"
        assert_eq!(
            bytes(ack_frame(4242, "ie-push-2")),
            [
                &[0x10, 0x92, 0x21, 0x32, 2][..],
                b"pb",
                &[0x3a, 3],
                b"ack",
                &[0x42, 9],
                b"ie-push-2"
            ]
            .concat()
        );
        let enter = WebcastPushFrame::decode(bytes(enter_room_frame(777)).as_slice()).unwrap();
        assert_eq!(enter.payload_type, "im_enter_room");
        assert_eq!(
            enter.payload,
            [
                &[0x08, 0x89, 0x06, 0x20, 0x0c, 0x2a, 0x08][..],
                b"audience",
                &[0x4a, 0x01],
                b"0"
            ]
            .concat()
        );
    }
}
