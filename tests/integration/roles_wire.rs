//! Issue 10's viewer roles and wire frames, end to end: a moderator's comment (a real webcast
//! frame) carries `is_moderator` and fires a `who = ["moderator"]` trigger on the test RCON
//! server while viewers without that role do not; a bad `who` is refused with line and column;
//! a `close` push frame from the fake TikTok ends the session with its reason and the relay
//! reconnects; the enter-room response's messages are relayed, live and in replays.

use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};

use tikrelay::pipeline::Input;
use tikrelay::proto;
use tikrelay::tiktok::frame;

use crate::support::fake_tiktok::{FakeTikTok, LiveOpts, LiveRelay, SignReply, Step};
use crate::support::rcon_server::{ServerOptions, TestServer};
use crate::support::webcast as wc;
use crate::support::{InProcess, WAIT, WsClient, post_test_event};

const MARKER: &str = "say marker";

pub(crate) fn config_file(text: &str) -> tempfile::NamedTempFile {
    let file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

fn chat_frame(seq: i64, msg_id: i64, user: proto::User, text: &str) -> Input {
    let m = proto::WebcastChatMessage {
        common: wc::common(msg_id, ""),
        user: Some(user),
        content: text.into(),
        ..Default::default()
    };
    let result = proto::ProtoMessageFetchResult {
        messages: vec![frame::base_message("WebcastChatMessage", msg_id, &m)],
        ..Default::default()
    };
    Input::PushFrame(frame::msg_frame(seq, seq, &result, true).encode_to_vec())
}

fn viewer(id: i64, nickname: &str) -> proto::User {
    proto::User {
        id,
        nickname: nickname.into(),
        display_id: nickname.to_lowercase(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_moderators_comment_carries_is_moderator_and_fires_a_who_trigger_a_plain_one_does_not() {
    let server = TestServer::start("pw", ServerOptions::default()).await;
    let config = config_file(&format!(
        r#"[rcon]
addr = "{}"
password = "pw"
min_interval_ms = 0

[[trigger]]
on = "comment"
who = ["moderator"]
rcon = ["say mod {{{{user.nickname}}}}"]

[[trigger]]
on = "comment"
who = ["top_gifter", "subscriber"]
rcon = ["say vip {{{{user.nickname}}}}"]

[[trigger]]
on = "live_ended"
rcon = ["{MARKER}"]
"#,
        server.addr()
    ));
    let relay = InProcess::start(&["--config", config.path().to_str().unwrap()]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws?types=comment")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    let mut moderator = viewer(11, "Mara");
    moderator.badge_list = vec![proto::BadgeStruct {
        badge_scene: 1,
        ..Default::default()
    }];
    moderator.follow_info = Some(proto::FollowInfo {
        follow_status: 1,
        ..Default::default()
    });
    // A viewer whose badges say nothing about moderating: is_moderator false.
    let mut fan = viewer(12, "Finn");
    fan.badge_list = vec![proto::BadgeStruct {
        badge_scene: 3,
        ..Default::default()
    }];
    // A viewer TikTok sent no roles for at all.
    let plain = viewer(13, "Pia");
    relay
        .input
        .send(chat_frame(1, 101, moderator, "hi"))
        .await
        .unwrap();
    relay
        .input
        .send(chat_frame(2, 102, fan, "hey"))
        .await
        .unwrap();
    relay
        .input
        .send(chat_frame(3, 103, plain, "yo"))
        .await
        .unwrap();

    let mut users = Vec::new();
    for _ in 0..3 {
        users.push(ws.next_of_type("comment").await["user"].clone());
    }
    assert_eq!(users[0]["nickname"], "Mara");
    assert_eq!(users[0]["is_moderator"], true);
    assert_eq!(users[0]["follow_role"], 1);
    assert_eq!(users[1]["is_moderator"], false);
    for key in [
        "is_moderator",
        "is_subscriber",
        "follow_role",
        "top_gifter_rank",
    ] {
        assert!(
            users[2].get(key).is_none(),
            "{key} not sent, so absent: {}",
            users[2]
        );
    }

    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "live_ended"})).await,
        200
    );
    let deadline = tokio::time::Instant::now() + WAIT;
    let log = loop {
        let log = server.log();
        if log.iter().any(|c| c == MARKER) {
            break log;
        }
        assert!(tokio::time::Instant::now() < deadline, "no marker: {log:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert_eq!(log, ["say mod Mara", MARKER]);
}

#[test]
fn who_names_an_unknown_role_with_line_and_column() {
    let config = config_file("[[trigger]]\non = \"comment\"\nwho = [\"moderator\", \"admin\"]\n");
    let out = std::process::Command::new(crate::support::binary())
        .args(["check", "--config", config.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("unknown role \"admin\" in `who`"), "{err}");
    assert!(err.contains(":3:"), "names the line: {err}");
}

fn close_frame(reason: &str) -> Vec<u8> {
    proto::WebcastPushFrame {
        payload_encoding: "pb".into(),
        payload_type: "close".into(),
        headers: vec![proto::PushHeader {
            key: "close_reason".into(),
            value: reason.into(),
        }],
        ..Default::default()
    }
    .encode_to_vec()
}

fn enter_room_response(messages: Vec<proto::BaseProtoMessage>) -> Vec<u8> {
    let result = proto::ProtoMessageFetchResult {
        messages,
        ..Default::default()
    };
    let mut f = frame::msg_frame(1, 1, &result, true);
    f.payload_type = "im_enter_room_resp".into();
    f.encode_to_vec()
}

#[tokio::test]
async fn a_close_frame_ends_the_session_with_its_reason_and_the_relay_reconnects() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Ok(vec![wc::chat(1, 1, "one")]));
    fake.push_sign(SignReply::Ok(vec![]));
    fake.push_script(vec![
        Step::Msgs {
            messages: vec![wc::chat(2, 1, "two")],
            gzip: true,
        },
        Step::WaitAcks(1),
        Step::Raw(close_frame("room closed by moderator\u{7}")),
        // Never sent: the relay must leave at the close frame.
        Step::Msgs {
            messages: vec![wc::chat(90, 1, "after close")],
            gzip: false,
        },
    ]);
    fake.push_script(vec![
        // The answer to im_enter_room carries messages: relayed like any fetch result.
        Step::Raw(enter_room_response(vec![wc::chat(3, 1, "three")])),
        Step::Msgs {
            messages: vec![wc::control(99, 3)],
            gzip: true,
        },
    ]);
    let mut relay = LiveRelay::start(&fake, "streamer", LiveOpts::default()).await;
    let events = relay.events_until(|e| e["type"] == "live_ended").await;
    let comments: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "comment")
        .map(|e| e["text"].as_str().unwrap())
        .collect();
    assert_eq!(comments, ["one", "two", "three"]);
    let disconnected: Vec<&Value> = events
        .iter()
        .filter(|e| e["type"] == "disconnected")
        .collect();
    assert_eq!(disconnected.len(), 1, "{events:?}");
    let reason = disconnected[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("room closed by moderator") && !reason.contains('\u{7}'),
        "{reason}"
    );
    assert_eq!(disconnected[0]["will_reconnect"], true);
    let connected = events.iter().filter(|e| e["type"] == "connected").count();
    assert_eq!(connected, 2, "connected again after the close: {events:?}");
    relay.finished().await.unwrap();
    fake.with(|s| assert_eq!(s.connections.len(), 2));
}

#[test]
fn a_recorded_enter_room_response_replays_its_messages_and_a_close_frame_none() {
    use tikrelay::events::Source;
    use tikrelay::events::normalise::Normaliser;
    // Replays feed recorded frames to the pipeline as they came off the socket.
    let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
    let mut out = Vec::new();
    let now = tokio::time::Instant::now();
    for bytes in [
        enter_room_response(vec![wc::chat(5, 1, "welcome back")]),
        close_frame("bye"),
    ] {
        tikrelay::pipeline::process(&mut normaliser, Input::PushFrame(bytes), now, &mut out);
    }
    let kinds: Vec<String> = out.iter().map(|e| e.to_json()).collect();
    assert_eq!(out.len(), 1, "{kinds:?}");
    assert!(kinds[0].contains("\"text\":\"welcome back\""), "{kinds:?}");
}
