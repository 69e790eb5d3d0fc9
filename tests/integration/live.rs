//! `tikrelay live` against a fake TikTok speaking the real protocol over loopback: a whole
//! stream event by event, acks and heartbeats, reconnects with backoff and no loss or doubles,
//! sign server and handshake failures, bad frames, the end of the LIVE, `--wait-live`, and the
//! recording round trip. The relay runs in-process (fast) except where the exit code matters.

use std::process::Stdio;
use std::time::Duration;

use prost::Message as _;
use serde_json::{Value, json};

use crate::support::fake_tiktok::{FakeTikTok, LiveOpts, LiveRelay, SignReply, Step, TTWID};
use crate::support::webcast::{self as wc, user_id};
use crate::support::{WAIT, binary_command, get_json};
use tikrelay::proto::{PushHeader, WebcastPushFrame};

fn is_type(ty: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["type"] == ty
}

fn msgs(messages: Vec<tikrelay::proto::BaseProtoMessage>, gzip: bool) -> Step {
    Step::Msgs { messages, gzip }
}

/// Checks that `actual` has every key of `expected` with the same value (recursively for
/// objects), so a test names what matters and ignores timestamps.
fn assert_subset(actual: &Value, expected: &Value, at: &str) {
    match expected {
        Value::Object(map) => {
            for (k, v) in map {
                assert_subset(&actual[k], v, &format!("{at}.{k}"));
            }
        }
        Value::Array(items) => {
            let got = actual
                .as_array()
                .unwrap_or_else(|| panic!("at {at}: {actual} is not an array"));
            assert_eq!(got.len(), items.len(), "at {at}: {actual}");
            for (i, v) in items.iter().enumerate() {
                assert_subset(&got[i], v, &format!("{at}[{i}]"));
            }
        }
        _ => assert_eq!(actual, expected, "at {at}"),
    }
}

fn viewer(n: i64) -> Value {
    json!({
        "id": user_id(n),
        "unique_id": format!("viewer{n}"),
        "nickname": format!("Viewer <{n}>"),
        "avatar_url": format!("https://p16.example/avatar{n}.webp"),
    })
}

#[tokio::test]
async fn a_whole_stream_is_relayed_event_by_event_with_acks_and_heartbeats() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Ok(vec![
        wc::chat(1001, 1, "from the sign fetch"),
        wc::social(1002, 2, "pm_main_follow_message_viewer_2"),
    ]));
    fake.push_script(vec![
        msgs(
            vec![
                wc::chat(2001, 3, "<b>hi</b> 👋"),
                wc::like(2002, 4, 15, 300),
                wc::join(2003, 5, 42),
                wc::viewers(2004, 41, 120),
                wc::emote(2005, 6, "7001"),
            ],
            true,
        ),
        msgs(
            vec![
                wc::gift(2006, 7, (6369, 29999, false), (500, 1, false)),
                wc::gift(2007, 8, (5655, 1, true), (77, 1, false)),
                wc::gift(2008, 8, (5655, 1, true), (77, 3, false)),
                wc::gift(2009, 8, (5655, 1, true), (77, 3, true)),
            ],
            false,
        ),
        msgs(
            vec![
                wc::super_fan(2010, 9),
                wc::subscribe(2011, 10, 3),
                wc::battle_start(2012, 555, &[(11, "HostA"), (12, "HostB")]),
                wc::battle_score(2013, 555, &[(11, 30)], false),
                wc::battle_score(2014, 555, &[(11, 90)], true),
                wc::envelope(2015, 500, 20),
                wc::question(2016, 13, "what game is this?"),
                wc::pin(2017, 14, "pinned words"),
                wc::room_message(2018, "welcome to the room"),
                wc::unknown(2019, "WebcastBrandNewMessage"),
                wc::social(2020, 15, "pm_mt_guidance_share"),
                wc::control(2021, 1),
                wc::control(2022, 2),
            ],
            true,
        ),
        Step::WaitAcks(3),
        Step::WaitHeartbeats(2),
        msgs(vec![wc::control(2099, 3)], true),
    ]);
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let events = relay.events_until(is_type("disconnected")).await;
    let room = "7777";
    let expected = vec![
        json!({"type": "connected", "unique_id": "streamer", "room_id": room, "source": "tiktok"}),
        json!({"type": "comment", "id": "1001", "text": "from the sign fetch", "user": viewer(1), "room_id": room}),
        json!({"type": "follow", "id": "1002", "user": viewer(2)}),
        json!({"type": "comment", "id": "2001", "text": "<b>hi</b> 👋", "user": viewer(3)}),
        json!({"type": "like", "id": "2002", "count": 15, "total": 300, "user": viewer(4)}),
        json!({"type": "join", "id": "2003", "member_count": 42, "user": viewer(5)}),
        json!({"type": "viewers", "id": "2004", "viewers": 41, "total_viewers": 120}),
        json!({"type": "emote", "id": "2005", "emote_ids": ["7001"], "user": viewer(6)}),
        json!({"type": "gift", "id": "2006", "count": 1, "diamonds_total": 29999,
               "gift": {"id": 6369, "name": "Gift6369", "diamonds": 29999, "streakable": false}, "user": viewer(7)}),
        json!({"type": "combo", "count": 1, "ended": false, "gift": {"id": 5655, "streakable": true}}),
        json!({"type": "combo", "count": 3, "ended": false}),
        json!({"type": "combo", "count": 3, "ended": true, "end_reason": "repeat_end"}),
        json!({"type": "gift", "count": 3, "diamonds_total": 3, "user": viewer(8)}),
        json!({"type": "super_fan", "id": "2010", "user": viewer(9)}),
        json!({"type": "subscribe", "id": "2011", "months": 3, "user": viewer(10)}),
        json!({"type": "battle", "id": "2012", "phase": "start", "battle_id": "555",
               "teams": [{"host": {"id": "11", "nickname": "HostA", "unique_id": "hosta"}, "score": 0},
                         {"host": {"id": "12", "nickname": "HostB", "unique_id": "hostb"}, "score": 0}]}),
        json!({"type": "battle", "id": "2013", "phase": "score", "battle_id": "555", "teams": [{"host": {"id": "11"}, "score": 30}]}),
        json!({"type": "battle", "id": "2014", "phase": "end", "teams": [{"score": 90}]}),
        json!({"type": "envelope", "id": "2015", "diamonds": 500, "people": 20, "user": {"id": "123", "nickname": "Chest Giver"}}),
        json!({"type": "question", "id": "2016", "text": "what game is this?", "user": viewer(13)}),
        json!({"type": "pin", "id": "2017", "text": "pinned words", "user": viewer(14)}),
        json!({"type": "webcast", "id": "2018", "method": "WebcastRoomMessage",
               "data": {"content": "welcome to the room", "scene": "welcome", "common": {"msg_id": "2018"}}}),
        json!({"type": "unknown", "id": "2019", "method": "WebcastBrandNewMessage"}),
        json!({"type": "share", "id": "2020", "user": viewer(15)}),
        json!({"type": "live_paused", "id": "2021"}),
        json!({"type": "live_resumed", "id": "2022"}),
        json!({"type": "live_ended", "id": "2099"}),
        json!({"type": "disconnected", "will_reconnect": false}),
    ];
    let types: Vec<&str> = events.iter().map(|e| e["type"].as_str().unwrap()).collect();
    assert_eq!(events.len(), expected.len(), "events: {types:?}");
    for (i, (actual, want)) in events.iter().zip(&expected).enumerate() {
        assert_subset(actual, want, &format!("event {i} {actual}"));
        assert_eq!(actual["v"], 1);
        assert!(actual["ts"].as_i64().unwrap() > 1_600_000_000_000);
    }
    // Combo events share one combo_id, which the final gift carries too.
    let combo_id = events[9]["combo_id"].as_str().unwrap();
    assert!(events[10..13].iter().all(|e| e["combo_id"] == combo_id));
    relay.finished().await.expect("the LIVE ended cleanly");

    fake.with(|s| {
        assert_eq!(s.sign_calls.len(), 1);
        let (q, key) = &s.sign_calls[0];
        assert_eq!(q["room_id"], "7777");
        assert_eq!(q["unique_id"], "streamer");
        assert!(q["user_agent"].starts_with("Mozilla/5.0"));
        assert_eq!(key, &None, "no API key configured, none sent");
        assert_eq!(s.connections.len(), 1);
        let c = &s.connections[0];
        assert_eq!(c.first_frame_type, "im_enter_room");
        let enter = c.enter_room.as_ref().unwrap();
        assert_eq!((enter.room_id, enter.identity.as_str()), (7777, "audience"));
        assert_eq!(
            c.acks, c.ack_wanted,
            "every frame that asked for an ack got its ack"
        );
        assert_eq!(c.acks.len(), 4);
        assert!(c.heartbeats.len() >= 2);
        for (i, hb) in c.heartbeats.iter().enumerate() {
            assert_eq!((hb.room_id, hb.send_packet_seq_id), (7777, i as i64 + 1));
        }
        assert!(c.user_agent.starts_with("Mozilla/5.0"));
        assert!(
            c.cookie.contains(&format!("ttwid={TTWID}"))
                && c.cookie.contains("msToken=FAKE_MSTOKEN")
        );
        let get = |k: &str| {
            c.query
                .iter()
                .filter(|(qk, _)| qk == k)
                .map(|(_, v)| v.as_str())
                .collect::<Vec<_>>()
        };
        assert_eq!(get("room_id"), ["7777"]);
        assert_eq!(
            get("imprp"),
            ["IM PRP&1"],
            "route params are passed on, percent-encoded"
        );
        assert_eq!(get("version_code"), ["180800", "270000"]);
        assert_eq!(get("compress"), ["gzip"]);
        assert!(
            c.client_closed,
            "the socket was closed cleanly after the end"
        );
    });
}

#[tokio::test]
async fn a_drop_mid_stream_reconnects_with_backoff_and_nothing_is_lost_or_doubled() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Ok(vec![wc::chat(1, 1, "one")]));
    let unavailable = || SignReply::Status {
        status: 503,
        headers: vec![],
        body: r#"{"code":503,"error":"API is not ready for connections yet."}"#.into(),
    };
    fake.push_sign(unavailable());
    fake.push_sign(unavailable());
    // After the drop, the sign result overlaps with what was relayed (2, 3) and holds one
    // message sent while the socket was down (4).
    fake.push_sign(SignReply::Ok(vec![
        wc::chat(2, 1, "two"),
        wc::chat(3, 1, "three"),
        wc::chat(4, 1, "four"),
    ]));
    fake.push_script(vec![
        msgs(vec![wc::chat(2, 1, "two"), wc::chat(3, 1, "three")], true),
        Step::WaitAcks(1),
        Step::Drop,
    ]);
    fake.push_script(vec![
        msgs(
            vec![
                wc::chat(3, 1, "three"),
                wc::chat(4, 1, "four"),
                wc::chat(5, 1, "five"),
            ],
            true,
        ),
        msgs(vec![wc::chat(6, 1, "six")], false),
        msgs(vec![wc::control(99, 3)], true),
    ]);
    let mut relay = LiveRelay::start(&fake, "streamer", LiveOpts::default()).await;
    let events = relay.events_until(is_type("live_ended")).await;
    let comments: Vec<&str> = events
        .iter()
        .filter(|e| e["type"] == "comment")
        .map(|e| e["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        comments,
        ["1", "2", "3", "4", "5", "6"],
        "each message exactly once, in order"
    );
    let lifecycle: Vec<(String, Value)> = events
        .iter()
        .filter(|e| e["type"] != "comment")
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["will_reconnect"].clone(),
            )
        })
        .collect();
    assert_eq!(
        lifecycle,
        [
            ("connected".to_string(), Value::Null),
            ("disconnected".to_string(), json!(true)),
            ("connected".to_string(), Value::Null),
            ("live_ended".to_string(), Value::Null),
        ]
    );
    relay.finished().await.unwrap();
    fake.with(|s| {
        assert_eq!(
            s.sign_calls.len(),
            4,
            "every connection attempt signs afresh"
        );
        assert_eq!(s.connections.len(), 2);
        // Jittered doubling: attempt n waits at least half of 100 ms · 2ⁿ.
        let t = &s.sign_times;
        assert!(
            t[2] - t[1] >= Duration::from_millis(100),
            "{:?}",
            t[2] - t[1]
        );
        assert!(
            t[3] - t[2] >= Duration::from_millis(200),
            "{:?}",
            t[3] - t[2]
        );
        let c = &s.connections[1];
        assert_eq!(c.first_frame_type, "im_enter_room");
        assert_eq!(c.acks, c.ack_wanted);
        assert_eq!(
            c.heartbeats[0].send_packet_seq_id, 1,
            "heartbeats restart per connection"
        );
    });
}

#[tokio::test]
async fn a_silent_connection_is_detected_as_stalled_and_replaced() {
    let fake = FakeTikTok::start().await;
    fake.with(|s| s.mute_heartbeats = true);
    // The first connection goes quiet after one message; heartbeats get no answer.
    fake.push_script(vec![msgs(vec![wc::chat(1, 1, "then silence")], true)]);
    fake.push_script(vec![msgs(
        vec![wc::chat(2, 1, "fresh"), wc::control(9, 3)],
        true,
    )]);
    let mut timings = crate::support::fake_tiktok::test_timings();
    timings.stall_timeout = Duration::from_millis(800);
    let opts = LiveOpts {
        timings,
        ..LiveOpts::default()
    };
    let mut relay = LiveRelay::start(&fake, "@streamer", opts).await;
    let events = relay.events_until(is_type("live_ended")).await;
    let dropped = events
        .iter()
        .find(|e| e["type"] == "disconnected")
        .expect("a disconnect");
    assert_eq!(dropped["will_reconnect"], true);
    assert!(
        dropped["reason"]
            .as_str()
            .unwrap()
            .contains("nothing received"),
        "{dropped}"
    );
    let comments: Vec<&str> = events.iter().filter_map(|e| e["text"].as_str()).collect();
    assert_eq!(comments, ["then silence", "fresh"]);
    relay.finished().await.unwrap();
    fake.with(|s| {
        assert_eq!(s.connections.len(), 2);
        assert!(
            s.connections[0].heartbeats.len() >= 2,
            "heartbeats went on while nothing came back"
        );
    });
}

#[tokio::test]
async fn a_sign_server_429_is_waited_out_then_the_stream_connects() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Status {
        status: 429,
        headers: vec![("retry-after", "1".into())],
        body: r#"{"message":"Too many requests","limit_label":"free"}"#.into(),
    });
    fake.push_sign(SignReply::Ok(vec![wc::chat(1, 1, "made it")]));
    fake.push_script(vec![msgs(vec![wc::control(9, 3)], true)]);
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let events = relay.events_until(is_type("live_ended")).await;
    assert_eq!(events[0]["type"], "connected");
    assert_eq!(events[1]["text"], "made it");
    relay.finished().await.unwrap();
    fake.with(|s| {
        assert_eq!(s.sign_calls.len(), 2);
        assert!(
            s.sign_times[1] - s.sign_times[0] >= Duration::from_secs(1),
            "retry-after honoured"
        );
    });
}

#[tokio::test]
async fn a_sign_server_403_says_an_api_key_is_needed_and_never_shows_the_key() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Status {
        status: 403,
        headers: vec![],
        body: r#"{"message":"This endpoint requires an API key"}"#.into(),
    });
    let opts = LiveOpts {
        api_key: Some("sekrit-key-123".into()),
        ..LiveOpts::default()
    };
    let mut relay = LiveRelay::start(&fake, "@streamer", opts).await;
    let err = relay.finished().await.unwrap_err();
    let text = err.to_string();
    assert_eq!(err.exit_code(), 3);
    assert!(
        text.contains("API key")
            && text.contains("--sign-api-key")
            && text.contains("TIKRELAY_SIGN_API_KEY"),
        "{text}"
    );
    assert!(!text.contains("sekrit-key-123"), "{text}");
    fake.with(|s| {
        assert_eq!(
            s.sign_calls[0].1.as_deref(),
            Some("sekrit-key-123"),
            "sent as X-Api-Key"
        )
    });
}

#[tokio::test]
async fn a_refused_handshake_reports_tiktoks_words() {
    let fake = FakeTikTok::start().await;
    fake.with(|s| {
        s.refusals
            .push_back(("DEVICE_BLOCKED".into(), "415".into()))
    });
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let err = relay.finished().await.unwrap_err();
    assert_eq!(err.exit_code(), 3);
    let text = err.to_string();
    assert!(
        text.contains("DEVICE_BLOCKED") && text.contains("415"),
        "{text}"
    );
}

#[tokio::test]
async fn the_room_api_is_asked_when_the_live_page_shows_no_state() {
    let fake = FakeTikTok::start().await;
    fake.with(|s| s.page_without_sigi = true);
    fake.push_script(vec![msgs(vec![wc::control(9, 3)], true)]);
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let events = relay.events_until(is_type("live_ended")).await;
    assert_eq!(events[0]["room_id"], "7777");
    relay.finished().await.unwrap();
    fake.with(|s| assert!(s.page_hits >= 1 && s.api_hits >= 1));
}

#[tokio::test]
async fn bad_frames_are_logged_and_skipped_and_the_stream_goes_on() {
    let fake = FakeTikTok::start().await;
    let frame = |payload: Vec<u8>, gzip_header: bool| {
        WebcastPushFrame {
            seq_id: 1,
            log_id: 1,
            headers: if gzip_header {
                vec![PushHeader {
                    key: "compress_type".into(),
                    value: "gzip".into(),
                }]
            } else {
                vec![]
            },
            payload_encoding: "pb".into(),
            payload_type: "msg".into(),
            payload,
            ..Default::default()
        }
        .encode_to_vec()
    };
    let oversized = frame(
        vec![0u8; tikrelay::tiktok::frame::MAX_FRAME_BYTES + 1],
        false,
    );
    let corrupt_gzip = frame(vec![0x1f, 0x8b, 0x08, 0, 1, 2, 3, 4, 5, 6, 7, 8], true);
    let bomb = frame(
        tikrelay::tiktok::frame::gzip(&vec![
            0u8;
            tikrelay::tiktok::frame::MAX_INFLATED_BYTES + 1024
        ]),
        true,
    );
    let not_protobuf = vec![0xff; 64];
    let not_a_fetch_result = frame(vec![0xff; 32], false);
    let mut garbage_chat = wc::chat(3, 1, "x");
    garbage_chat.payload = vec![0x0a, 0xff, 0xff, 0xff].into();
    fake.push_script(vec![
        msgs(vec![wc::chat(1, 1, "before")], true),
        Step::Raw(oversized),
        Step::Raw(corrupt_gzip),
        Step::Raw(bomb),
        Step::Raw(not_protobuf),
        Step::Raw(not_a_fetch_result),
        msgs(
            vec![
                garbage_chat,
                wc::unknown(4, "WebcastSomethingNew"),
                wc::chat(5, 1, "same frame"),
            ],
            true,
        ),
        msgs(vec![wc::chat(6, 1, "after")], false),
        msgs(vec![wc::control(9, 3)], true),
    ]);
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let events = relay.events_until(is_type("live_ended")).await;
    let seen: Vec<String> = events
        .iter()
        .map(|e| {
            format!(
                "{}:{}",
                e["type"].as_str().unwrap(),
                e["id"].as_str().unwrap_or("")
            )
        })
        .collect();
    assert_eq!(
        seen[1..],
        [
            "comment:1",
            "unknown:4",
            "comment:5",
            "comment:6",
            "live_ended:9"
        ]
    );
    relay.finished().await.unwrap();
    fake.with(|s| assert_eq!(s.connections.len(), 1, "no reconnect was needed"));
}

#[tokio::test]
async fn wait_live_waits_for_the_stream_and_follows_it_to_the_next_live() {
    let fake = FakeTikTok::start().await;
    fake.set_live("streamer", false, 7777);
    fake.push_script(vec![
        msgs(vec![wc::chat(1, 1, "first live")], true),
        msgs(vec![wc::control(9, 3)], true),
    ]);
    fake.push_script(vec![msgs(vec![wc::chat(2, 1, "second live")], true)]);
    let opts = LiveOpts {
        wait_live: true,
        exit_on_end: false,
        ..LiveOpts::default()
    };
    let mut relay = LiveRelay::start(&fake, "@streamer", opts).await;
    let waiting = relay.events_until(is_type("disconnected")).await;
    let w = waiting.last().unwrap();
    assert_eq!(w["will_reconnect"], true);
    assert!(w["reason"].as_str().unwrap().contains("not live"), "{w}");
    fake.set_live("streamer", true, 7777);
    let first = relay.events_until(is_type("live_ended")).await;
    assert_eq!(first[0]["type"], "connected");
    assert_eq!(first[1]["text"], "first live");
    // The end of the LIVE leaves the relay waiting for the next one.
    let ended = relay.events_until(is_type("disconnected")).await;
    assert_eq!(ended.last().unwrap()["will_reconnect"], true);
    fake.set_live("streamer", false, 7777);
    tokio::time::sleep(Duration::from_millis(300)).await;
    fake.set_live("streamer", true, 8888);
    let second = relay.events_until(|e| e["type"] == "comment").await;
    let connected = second
        .iter()
        .find(|e| e["type"] == "connected")
        .expect("connected again");
    assert_eq!(connected["room_id"], "8888");
    assert_eq!(second.last().unwrap()["text"], "second live");
    relay.stop().await.unwrap();
    fake.with(|s| assert_eq!(s.connections.len(), 2));
}

#[tokio::test]
async fn record_writes_the_frames_as_received_and_replay_gives_the_same_events() {
    use tikrelay::recorder::{RecordKind, RecordReader};
    let dir = tempfile::tempdir().unwrap();
    let frames_path = dir.path().join("live.tikrec");
    let events_path = dir.path().join("live.jsonl");
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Ok(vec![wc::chat(1, 1, "initial")]));
    fake.push_script(vec![
        msgs(vec![wc::chat(2, 2, "a"), wc::like(3, 2, 5, 5)], true),
        msgs(
            vec![
                wc::gift(4, 3, (5655, 1, true), (9, 1, false)),
                wc::gift(5, 3, (5655, 1, true), (9, 2, true)),
            ],
            false,
        ),
        Step::WaitAcks(2),
        msgs(vec![wc::control(9, 3)], true),
    ]);
    let opts = LiveOpts {
        record: tikrelay::app::RecordPaths {
            frames: Some(frames_path.clone()),
            events: Some(events_path.clone()),
        },
        ..LiveOpts::default()
    };
    let mut relay = LiveRelay::start(&fake, "@streamer", opts).await;
    let live_events = relay.events_until(is_type("disconnected")).await;
    relay.finished().await.unwrap();

    let records: Vec<_> = RecordReader::open(&frames_path)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(records[0].kind, RecordKind::FetchResult);
    let initial =
        tikrelay::proto::ProtoMessageFetchResult::decode(records[0].bytes.as_slice()).unwrap();
    assert_eq!(initial.messages[0].msg_id, 1);
    assert!(
        initial.push_server.starts_with("ws://"),
        "the raw sign answer, as received"
    );
    let pushed: Vec<Vec<u8>> = records[1..]
        .iter()
        .inspect(|r| assert_eq!(r.kind, RecordKind::PushFrame))
        .map(|r| r.bytes.clone())
        .collect();
    fake.with(|s| {
        assert_eq!(
            pushed, s.connections[0].sent,
            "every frame, byte for byte, in order"
        )
    });
    assert!(records.windows(2).all(|w| w[0].at_us <= w[1].at_us));

    // The JSONL holds exactly what /ws delivered.
    let lines: Vec<Value> = std::fs::read_to_string(&events_path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines, live_events);

    // Replaying the recording gives the same message events (ids, types, fields).
    let replayed_path = dir.path().join("replayed.jsonl");
    let common = crate::support::common_args(&[]);
    let args = tikrelay::cli::ReplayArgs {
        file: frames_path.clone(),
        speed: 1.0,
        max: true,
        repeat: false,
        jsonl: Some(replayed_path.clone()),
        no_server: true,
    };
    tikrelay::app::replay(&common, args, std::future::pending())
        .await
        .unwrap();
    let strip = |v: &Value| {
        let mut v = v.clone();
        // A replay is its own stream (the file's stem), from its own source.
        for k in ["ts", "source", "stream"] {
            v.as_object_mut().unwrap().remove(k);
        }
        v
    };
    let replayed: Vec<Value> = std::fs::read_to_string(&replayed_path)
        .unwrap()
        .lines()
        .map(|l| strip(&serde_json::from_str(l).unwrap()))
        .collect();
    let from_messages: Vec<Value> = live_events
        .iter()
        .filter(|e| !matches!(e["type"].as_str(), Some("connected" | "disconnected")))
        .map(strip)
        .collect();
    assert_eq!(replayed.len(), from_messages.len());
    for (r, l) in replayed.iter().zip(&from_messages) {
        // Combo ids name the same key; live and replay agree on them.
        assert_eq!(r, l);
    }
}

/// Runs the binary to its exit; returns (exit code, stdout, stderr).
fn run_binary(args: &[&str]) -> (Option<i32>, String, String) {
    let mut child = binary_command()
        .args(args)
        .env("RUST_LOG", "info")
        .env_remove("TIKRELAY_SIGN_API_KEY")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start tikrelay");
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn fake_flags(fake: &FakeTikTok) -> Vec<String> {
    let url = fake.url();
    [
        "--port",
        "0",
        "--tiktok-web-url",
        &url,
        "--tiktok-webcast-url",
        &url,
        "--sign-url",
        &url,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

async fn binary_outcome(fake: &FakeTikTok, target: &str) -> (Option<i32>, String, String) {
    let mut args = vec!["live".to_string(), target.to_string()];
    args.extend(fake_flags(fake));
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(&args)
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn unknown_and_offline_users_exit_with_code_3_and_one_line_of_advice() {
    let fake = FakeTikTok::start().await;
    fake.open_gate();
    fake.set_live("sleepy", false, 4242);

    let (code, _, stderr) = binary_outcome(&fake, "@nobody").await;
    assert_eq!(code, Some(3), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("error:"))
        .unwrap_or_default();
    assert_eq!(
        line,
        "error: @nobody does not exist on TikTok (check the spelling of the handle)"
    );

    let (code, _, stderr) = binary_outcome(&fake, "sleepy").await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains(
            "error: @sleepy is not live right now (use --wait-live to wait for the stream)"
        ),
        "{stderr}"
    );

    let (code, _, stderr) = binary_outcome(&fake, "room:4242").await;
    assert_eq!(code, Some(3), "{stderr}");
    assert!(
        stderr.contains("room 4242 is not live right now"),
        "{stderr}"
    );

    let (code, _, stderr) = binary_outcome(&fake, "not a handle!").await;
    assert_eq!(code, Some(2), "bad usage: {stderr}");
}

#[tokio::test]
async fn at_the_end_of_the_live_the_binary_keeps_serving_until_ctrl_c_then_exits_0() {
    let fake = FakeTikTok::start().await;
    fake.open_gate();
    fake.push_script(vec![
        msgs(vec![wc::chat(1, 1, "bye")], true),
        msgs(vec![wc::control(9, 3)], true),
    ]);
    let mut args = vec!["live".to_string(), "@streamer".to_string()];
    args.extend(fake_flags(&fake));
    let args_ref: Vec<&str> = args.iter().map(String::as_str).collect();
    let mut relay = crate::support::RelayProcess::start(&args_ref);
    fake.wait_until("a clean close after the end", |s| {
        s.connections.first().is_some_and(|c| c.client_closed)
    })
    .await;
    // The source stopped: no new sign request, while the server still answers.
    let base = relay.url("");
    let deadline = tokio::time::Instant::now() + WAIT;
    let events = loop {
        let events: Value = get_json(format!("{base}/api/events?limit=50")).await;
        if events
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["type"] == "disconnected")
            || tokio::time::Instant::now() > deadline
        {
            break events;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        ["connected", "comment", "live_ended", "disconnected"]
    );
    let state: Value = get_json(format!("{base}/api/state")).await;
    assert_eq!(state["connection"]["state"], "disconnected");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    fake.with(|s| assert_eq!(s.sign_calls.len(), 1, "no reconnect after the end"));
    assert_eq!(relay.interrupt(), Some(0));
}

#[tokio::test]
async fn with_exit_on_end_the_binary_exits_0_when_the_live_ends() {
    let fake = FakeTikTok::start().await;
    fake.open_gate();
    fake.push_script(vec![msgs(vec![wc::control(9, 4)], true)]);
    let mut args = vec![
        "live".to_string(),
        "@streamer".to_string(),
        "--exit-on-end".to_string(),
    ];
    args.extend(fake_flags(&fake));
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_binary(&args)
    })
    .await
    .unwrap();
    assert_eq!(code, Some(0), "{stderr}");
    assert!(
        stdout.starts_with("listening on http://127.0.0.1:"),
        "{stdout}"
    );
}
