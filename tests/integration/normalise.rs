//! Decoding and normalising: frames built here with prost (gzip and plain) for every message
//! type the relay maps, odd users, unknown methods and bytes that are not protobuf; and the gift
//! combo rules on paused tokio time, both on the normaliser and through the pipeline task.

use std::sync::Arc;
use std::time::Duration;

use prost::Message;
use serde_json::{Value, json};
use tikrelay::events::normalise::Normaliser;
use tikrelay::events::{EndReason, Event, EventKind, Source};
use tikrelay::hub::Hub;
use tikrelay::pipeline::{self, Input};
use tikrelay::proto;
use tikrelay::stats::Stats;
use tikrelay::tiktok::frame;
use tokio::time::Instant;

const ROOM: i64 = 7_123_456_789_012_345_678;

fn common(msg_id: i64, key: &str) -> Option<proto::CommonMessageData> {
    Some(proto::CommonMessageData {
        msg_id,
        room_id: ROOM,
        create_time: 1_760_000_000_000_i64.wrapping_add(msg_id).max(1),
        display_text: Some(proto::Text {
            key: key.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn viewer(id: i64, nickname: &str) -> Option<proto::User> {
    Some(proto::User {
        id,
        nickname: nickname.into(),
        display_id: format!("handle{id}"),
        avatar_thumb: Some(proto::ImageModel {
            url_list: vec!["https://example.invalid/a.jpg".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
}

fn gift(id: i64, name: &str, diamonds: i32, streakable: bool) -> Option<proto::Gift> {
    Some(proto::Gift {
        id,
        name: name.into(),
        diamond_count: diamonds,
        r#type: if streakable { 1 } else { 2 },
        ..Default::default()
    })
}

fn gift_msg(msg_id: i64, user: i64, group: i64, count: i32, end: bool) -> proto::BaseProtoMessage {
    let m = proto::WebcastGiftMessage {
        common: common(msg_id, ""),
        gift_id: 5655,
        repeat_count: count,
        repeat_end: end as i32,
        group_id: group,
        user: viewer(user, "Gifter"),
        gift: gift(5655, "Rose", 1, true),
        ..Default::default()
    };
    frame::base_message("WebcastGiftMessage", msg_id, &m)
}

/// One message of every kind the relay maps by hand, and what it must become.
fn every_message() -> Vec<(proto::BaseProtoMessage, Value)> {
    let mut out = Vec::new();
    let chat = proto::WebcastChatMessage {
        common: common(1, ""),
        user: viewer(11, "Ana"),
        content: "hi <b>there</b>\nsecond line".into(),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastChatMessage", 1, &chat),
        json!({"type": "comment", "text": "hi <b>there</b>\nsecond line"}),
    ));
    let emote = proto::WebcastEmoteChatMessage {
        common: common(2, ""),
        user: viewer(12, "Bo"),
        emote_list: vec![proto::EmoteModel {
            emote_id: "e1".into(),
            ..Default::default()
        }],
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastEmoteChatMessage", 2, &emote),
        json!({"type": "emote", "emote_ids": ["e1"]}),
    ));
    let follow = proto::WebcastSocialMessage {
        common: common(3, "pm_main_follow_message_viewer_2"),
        user: viewer(13, ""),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastSocialMessage", 3, &follow),
        json!({"type": "follow"}),
    ));
    let share = proto::WebcastSocialMessage {
        common: common(4, "pm_mt_guidance_share"),
        user: viewer(14, "Cy"),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastSocialMessage", 4, &share),
        json!({"type": "share"}),
    ));
    let like = proto::WebcastLikeMessage {
        common: common(5, ""),
        count: 15,
        total: 1500,
        user: viewer(15, "Di"),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastLikeMessage", 5, &like),
        json!({"type": "like", "count": 15, "total": 1500}),
    ));
    let join = proto::WebcastMemberMessage {
        common: common(6, "live_room_enter_toast"),
        user: viewer(16, "Ed"),
        member_count: 321,
        action: 1,
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastMemberMessage", 6, &join),
        json!({"type": "join", "member_count": 321}),
    ));
    let seq = proto::WebcastRoomUserSeqMessage {
        common: common(7, ""),
        total: 250,
        total_user: 9000,
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastRoomUserSeqMessage", 7, &seq),
        json!({"type": "viewers", "viewers": 250, "total_viewers": 9000}),
    ));
    for (id, action, ty) in [
        (8, 1, "live_paused"),
        (9, 2, "live_resumed"),
        (10, 3, "live_ended"),
    ] {
        let control = proto::WebcastControlMessage {
            common: common(id, ""),
            action,
            ..Default::default()
        };
        out.push((
            frame::base_message("WebcastControlMessage", id, &control),
            json!({"type": ty}),
        ));
    }
    let single = proto::WebcastGiftMessage {
        common: common(11, ""),
        gift_id: 11046,
        repeat_count: 1,
        user: viewer(17, "Fay"),
        gift: gift(11046, "Galaxy", 1000, false),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastGiftMessage", 11, &single),
        json!({"type": "gift", "count": 1, "diamonds_total": 1000, "gift": {"id": 11046, "name": "Galaxy", "diamonds": 1000, "image_url": null, "streakable": false}}),
    ));
    let barrage = proto::WebcastBarrageMessage {
        common: common(12, ""),
        content: Some(proto::Text {
            key: "ttlive_superfan_x".into(),
            ..Default::default()
        }),
        user: viewer(18, "Gus"),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastBarrageMessage", 12, &barrage),
        json!({"type": "super_fan"}),
    ));
    let sub = proto::WebcastSubNotifyMessage {
        common: common(13, ""),
        user: viewer(19, "Hal"),
        sub_month: 3,
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastSubNotifyMessage", 13, &sub),
        json!({"type": "subscribe", "months": 3}),
    ));
    let question = proto::WebcastQuestionNewMessage {
        common: common(14, ""),
        data: Some(proto::Question {
            content: "what game?".into(),
            user: viewer(20, "Ivy"),
            ..Default::default()
        }),
    };
    out.push((
        frame::base_message("WebcastQuestionNewMessage", 14, &question),
        json!({"type": "question", "text": "what game?"}),
    ));
    let envelope = proto::WebcastEnvelopeMessage {
        common: common(15, ""),
        envelope_info: Some(proto::MessageRedEnvelopInfo {
            diamond_count: 500,
            people_count: 20,
            ..Default::default()
        }),
        display: 1,
    };
    out.push((
        frame::base_message("WebcastEnvelopeMessage", 15, &envelope),
        json!({"type": "envelope", "diamonds": 500, "people": 20}),
    ));
    let pin = proto::WebcastRoomPinMessage {
        common: common(16, ""),
        chat_message: Some(proto::WebcastChatMessage {
            content: "pinned!".into(),
            user: viewer(21, "Jo"),
            ..Default::default()
        }),
        action: 1,
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastRoomPinMessage", 16, &pin),
        json!({"type": "pin", "text": "pinned!"}),
    ));
    let intro = proto::WebcastLiveIntroMessage {
        common: common(17, ""),
        content: "welcome to my stream".into(),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastLiveIntroMessage", 17, &intro),
        json!({"type": "webcast", "method": "WebcastLiveIntroMessage"}),
    ));
    let unknown = proto::WebcastChatMessage {
        common: common(18, ""),
        ..Default::default()
    };
    out.push((
        frame::base_message("WebcastBrandNewThing", 18, &unknown),
        json!({"type": "unknown", "method": "WebcastBrandNewThing"}),
    ));
    out
}

/// True when every field of `expected` appears with the same value in `actual`.
fn contains(actual: &Value, expected: &Value) -> bool {
    match (actual, expected) {
        (Value::Object(a), Value::Object(e)) => e
            .iter()
            .all(|(k, v)| a.get(k).is_some_and(|av| contains(av, v))),
        _ => actual == expected,
    }
}

fn normalise_frame(n: &mut Normaliser, bytes: Vec<u8>) -> Vec<Event> {
    let mut out = Vec::new();
    pipeline::process(n, Input::PushFrame(bytes), Instant::now(), &mut out);
    out
}

#[tokio::test]
async fn every_message_type_decodes_from_gzip_and_plain_frames() {
    for compress in [true, false] {
        let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
        let cases = every_message();
        let result = proto::ProtoMessageFetchResult {
            messages: cases.iter().map(|(m, _)| m.clone()).collect(),
            ..Default::default()
        };
        let bytes = frame::msg_frame(1, 1, &result, compress).encode_to_vec();
        let events = normalise_frame(&mut n, bytes);
        assert_eq!(
            events.len(),
            cases.len(),
            "compress={compress}: {events:#?}"
        );
        for (event, (_, expected)) in events.iter().zip(&cases) {
            let json: Value = serde_json::from_str(&event.to_json()).unwrap();
            assert!(
                contains(&json, expected),
                "compress={compress}: {json} lacks {expected}"
            );
            assert_eq!(json["room_id"], ROOM.to_string());
            assert_eq!(json["source"], "tiktok");
            assert_eq!(json["v"], 1);
            // The JSON form reads back as the same event (JSONL replay relies on it).
            let back: Event = serde_json::from_value(json.clone()).unwrap();
            assert_eq!(&back, event);
        }
        let follow = &events[2];
        let user = follow.user.as_ref().unwrap();
        assert_eq!(user.nickname, "", "an empty nickname stays empty");
        assert_eq!(user.display_name(), "handle13", "and shows the handle");
        assert_eq!(user.id, "13");
        let webcast: Value = serde_json::from_str(&events[16].to_json()).unwrap();
        assert_eq!(
            webcast["data"]["content"], "welcome to my stream",
            "{webcast}"
        );
    }
}

#[tokio::test]
async fn gzip_is_recognised_by_magic_bytes_without_the_header() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let result = proto::ProtoMessageFetchResult {
        messages: vec![every_message().remove(0).0],
        ..Default::default()
    };
    let mut f = frame::msg_frame(1, 1, &result, true);
    f.headers.clear();
    let events = normalise_frame(&mut n, f.encode_to_vec());
    assert_eq!(events.len(), 1);
}

#[tokio::test]
async fn a_missing_user_and_a_huge_id_are_handled() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let chat = proto::WebcastChatMessage {
        common: common(i64::MAX, ""),
        user: None,
        content: "no user".into(),
        ..Default::default()
    };
    let mut out = Vec::new();
    n.message(
        &frame::base_message("WebcastChatMessage", 0, &chat),
        Instant::now(),
        &mut out,
    )
    .unwrap();
    let json: Value = serde_json::from_str(&out[0].to_json()).unwrap();
    assert!(json.get("user").is_none(), "{json}");
    assert_eq!(json["id"], i64::MAX.to_string(), "64-bit ids are strings");
}

#[tokio::test]
async fn bad_bytes_are_error_values_and_the_stream_goes_on() {
    assert!(frame::decode_push_frame(b"\xff\xff\xff\xff not protobuf").is_err());
    assert!(frame::decode_push_frame(&vec![0u8; frame::MAX_FRAME_BYTES + 1]).is_err());
    let mut broken = frame::msg_frame(1, 1, &proto::ProtoMessageFetchResult::default(), true);
    broken.payload = vec![0x1f, 0x8b, 8, 0, 1, 2, 3, 4, 5];
    assert!(frame::frame_payload(&broken).is_err(), "corrupt gzip");
    let bomb = frame::gzip(&vec![0u8; frame::MAX_INFLATED_BYTES + 10]);
    assert!(matches!(
        frame::gunzip(&bomb),
        Err(frame::FrameError::InflatedTooLarge { .. })
    ));

    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let garbage = proto::BaseProtoMessage {
        method: "WebcastChatMessage".into(),
        payload: vec![0x0a, 0xff, 0xff].into(),
        msg_id: 99,
        ..Default::default()
    };
    let good = every_message().remove(0).0;
    let result = proto::ProtoMessageFetchResult {
        messages: vec![garbage, good],
        ..Default::default()
    };
    let mut out = Vec::new();
    let errors = n.fetch_result(&result, Instant::now(), &mut out);
    assert_eq!(errors.len(), 1);
    assert!(errors[0].to_string().contains("WebcastChatMessage"));
    assert_eq!(
        out.len(),
        1,
        "the good message after the bad one still counts"
    );

    // Through the pipeline: garbage frames are skipped, the next frame is relayed.
    let mut events = normalise_frame(&mut n, b"garbage".to_vec());
    events.extend(normalise_frame(&mut n, broken.encode_to_vec()));
    assert!(events.is_empty());
    let result = proto::ProtoMessageFetchResult {
        messages: vec![every_message().remove(4).0],
        ..Default::default()
    };
    let events = normalise_frame(
        &mut n,
        frame::msg_frame(2, 2, &result, true).encode_to_vec(),
    );
    assert_eq!(events.len(), 1);
}

fn kinds(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .map(|e| match &e.kind {
            EventKind::Combo {
                count,
                ended,
                end_reason,
                ..
            } => match (ended, end_reason) {
                (true, Some(reason)) => format!("combo{count}:{reason:?}"),
                _ => format!("combo{count}"),
            },
            EventKind::Gift { count, .. } => format!("gift{count}"),
            other => other.type_name().to_string(),
        })
        .collect()
}

#[tokio::test(start_paused = true)]
async fn a_streak_to_five_gives_five_combos_and_one_gift() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    for count in 1..=5 {
        n.message(
            &gift_msg(100 + count as i64, 1, 77, count, false),
            Instant::now(),
            &mut out,
        )
        .unwrap();
        tokio::time::advance(Duration::from_millis(300)).await;
    }
    n.message(&gift_msg(200, 1, 77, 5, true), Instant::now(), &mut out)
        .unwrap();
    // The same end again (another msg_id) and a repeat of an old msg_id add nothing.
    n.message(&gift_msg(201, 1, 77, 5, true), Instant::now(), &mut out)
        .unwrap();
    n.message(&gift_msg(103, 1, 77, 3, false), Instant::now(), &mut out)
        .unwrap();
    tokio::time::advance(Duration::from_secs(60)).await;
    n.expire(Instant::now(), &mut out);
    assert_eq!(
        kinds(&out),
        [
            "combo1",
            "combo2",
            "combo3",
            "combo4",
            "combo5",
            "combo5:RepeatEnd",
            "gift5"
        ]
    );
    let EventKind::Gift {
        count,
        diamonds_total,
        combo_id,
        ..
    } = &out[6].kind
    else {
        unreachable!()
    };
    assert_eq!((*count, *diamonds_total), (5, 5));
    assert_eq!(combo_id.as_deref(), Some("1-5655-77"));
    assert_eq!(n.stats().duplicates, 1);
}

#[tokio::test(start_paused = true)]
async fn repeats_and_lower_counts_are_dropped() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    for (id, count) in [(1, 1), (2, 3), (3, 3), (4, 2), (5, 4)] {
        n.message(&gift_msg(id, 1, 5, count, false), Instant::now(), &mut out)
            .unwrap();
    }
    assert_eq!(kinds(&out), ["combo1", "combo3", "combo4"]);
}

#[tokio::test(start_paused = true)]
async fn a_streak_without_an_end_ends_once_by_timeout() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    for count in 1..=3 {
        n.message(
            &gift_msg(count as i64, 1, 9, count, false),
            Instant::now(),
            &mut out,
        )
        .unwrap();
    }
    tokio::time::advance(Duration::from_secs(9)).await;
    n.expire(Instant::now(), &mut out);
    assert_eq!(out.len(), 3, "not yet");
    tokio::time::advance(Duration::from_secs(2)).await;
    n.expire(Instant::now(), &mut out);
    n.expire(Instant::now(), &mut out);
    // A late end for the same streak is ignored.
    n.message(&gift_msg(50, 1, 9, 3, true), Instant::now(), &mut out)
        .unwrap();
    assert_eq!(
        kinds(&out),
        ["combo1", "combo2", "combo3", "combo3:Timeout", "gift3"]
    );
    assert!(matches!(
        out[3].kind,
        EventKind::Combo {
            end_reason: Some(EndReason::Timeout),
            ..
        }
    ));
}

#[tokio::test(start_paused = true)]
async fn a_streak_that_goes_on_after_its_timeout_counts_only_new_units() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    n.message(&gift_msg(1, 1, 9, 2, false), Instant::now(), &mut out)
        .unwrap();
    tokio::time::advance(Duration::from_secs(11)).await;
    n.expire(Instant::now(), &mut out);
    n.message(&gift_msg(2, 1, 9, 5, true), Instant::now(), &mut out)
        .unwrap();
    assert_eq!(
        kinds(&out),
        [
            "combo2",
            "combo2:Timeout",
            "gift2",
            "combo3:RepeatEnd",
            "gift3"
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn combos_of_different_viewers_and_groups_are_separate() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    n.message(&gift_msg(1, 1, 9, 1, false), Instant::now(), &mut out)
        .unwrap();
    n.message(&gift_msg(2, 2, 9, 1, false), Instant::now(), &mut out)
        .unwrap();
    n.message(&gift_msg(3, 1, 10, 1, false), Instant::now(), &mut out)
        .unwrap();
    n.message(&gift_msg(4, 2, 9, 2, true), Instant::now(), &mut out)
        .unwrap();
    assert_eq!(
        kinds(&out),
        ["combo1", "combo1", "combo1", "combo2:RepeatEnd", "gift2"]
    );
    assert!(n.next_deadline().is_some(), "two combos stay open");
}

#[tokio::test(start_paused = true)]
async fn a_single_non_streakable_gift_is_one_gift_at_once() {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let cases = every_message();
    let mut out = Vec::new();
    n.message(&cases[10].0, Instant::now(), &mut out).unwrap();
    assert_eq!(kinds(&out), ["gift1"]);
    assert_eq!(n.next_deadline(), None, "nothing waits for a timeout");
}

#[tokio::test(start_paused = true)]
async fn the_pipeline_task_ends_combos_on_its_own_timer() {
    let hub = Hub::new(Arc::new(Stats::default()));
    let mut events = hub.subscribe_events();
    let (tx, rx) = pipeline::channel();
    tokio::spawn(pipeline::run(rx, Duration::from_secs(10), hub.clone()));
    let tx = pipeline::Feed::new(tx, "alice", Source::Tiktok);
    let result = proto::ProtoMessageFetchResult {
        messages: vec![gift_msg(1, 1, 9, 1, false), gift_msg(2, 1, 9, 4, false)],
        ..Default::default()
    };
    tx.send(Input::PushFrame(
        frame::msg_frame(1, 1, &result, true).encode_to_vec(),
    ))
    .await
    .unwrap();
    let mut got = Vec::new();
    for _ in 0..2 {
        got.push((*events.recv().await.unwrap()).clone());
    }
    // No more input: only the clock can end the combo.
    tokio::time::sleep(Duration::from_secs(11)).await;
    for _ in 0..2 {
        got.push((*events.recv().await.unwrap()).clone());
    }
    assert_eq!(kinds(&got), ["combo1", "combo4", "combo4:Timeout", "gift4"]);
    assert_eq!(hub.stats().snapshot()["totals"]["gifts"], 1);
}
