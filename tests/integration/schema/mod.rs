//! Issue 10's schema coverage: one frame per declared method (62 from the reference clients,
//! plus battle item cards), built here with prost, none decoding to `unknown`; the typed events
//! equal the README's examples field by field; a field whose wire type differs between schema
//! versions still decodes; the same stream through the fake TikTok; and `comment_deleted`
//! taking a comment off the chat page in headless Chromium.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message;
use prost_reflect::{DynamicMessage, SerializeOptions};
use serde_json::{Value, json};
use tikrelay::events::normalise::{Normaliser, descriptor_pool};
use tikrelay::events::{Event, Source};
use tikrelay::proto;
use tikrelay::tiktok::frame::base_message;
use tokio::time::Instant;

use crate::support::browser::{Browser, require_browser};
use crate::support::fake_tiktok::{FakeTikTok, LiveOpts, LiveRelay, SignReply, Step};
use crate::support::webcast as wc;
use crate::support::{InProcess, WAIT, post_test_event};

mod frames;

use frames::{
    METHODS, common, every_method_filled, readme_frames, string_piece, text, user, user_piece,
};

fn run(messages: &[proto::BaseProtoMessage]) -> Vec<Event> {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    for m in messages {
        n.message(m, Instant::now(), &mut out)
            .unwrap_or_else(|e| panic!("{}: {e}", m.method));
    }
    out
}

fn json_of(e: &Event) -> Value {
    serde_json::from_str(&e.to_json()).unwrap()
}

#[test]
fn the_62_methods_are_declared_and_none_decodes_to_unknown() {
    let unique: BTreeSet<&str> = METHODS.iter().copied().collect();
    assert_eq!(unique.len(), 62, "62 different methods");
    let messages = every_method_filled(1000);
    let pool = descriptor_pool();
    let mut typed = BTreeMap::new();
    for msg in &messages {
        let events = run(std::slice::from_ref(msg));
        assert!(!events.is_empty(), "{} gave no event", msg.method);
        for e in &events {
            let json = json_of(e);
            assert_ne!(json["type"], "unknown", "{}: {json}", msg.method);
            if json["type"] == "webcast" {
                // Every decoded field, under its proto name, 64-bit numbers as strings.
                assert_eq!(json["method"], msg.method.as_str());
                let desc = pool
                    .get_message_by_name(&format!("webcast.{}", msg.method))
                    .unwrap();
                let sent = DynamicMessage::decode(desc, msg.payload.as_ref()).unwrap();
                let options = SerializeOptions::new()
                    .use_proto_field_name(true)
                    .stringify_64_bit_integers(true)
                    .skip_default_fields(true);
                let want = sent
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .unwrap();
                assert_eq!(json["data"], want, "{}", msg.method);
                let fields = json["data"].as_object().unwrap().len();
                let set = sent.fields().count();
                assert_eq!(fields, set, "{}: every field set is in data", msg.method);
            } else {
                typed.insert(msg.method.clone(), json["type"].clone());
            }
        }
    }
    // Filled with arbitrary values, these still take their typed form.
    for (method, ty) in [
        ("WebcastChatMessage", "comment"),
        ("WebcastImDeleteMessage", "comment_deleted"),
        ("WebcastRoomMessage", "system"),
        ("WebcastSystemMessage", "system"),
        ("WebcastRoomUserSeqMessage", "viewers"),
        ("WebcastLinkMicBattleItemCard", "battle"),
    ] {
        assert_eq!(typed.get(method), Some(&json!(ty)), "{method}: {typed:?}");
    }
}

/// The JSON examples of the README's "Events from the full schema" section, by event id.
fn readme_examples() -> BTreeMap<String, Value> {
    let readme = include_str!("../../../README.md");
    let start = readme
        .find("### Events from the full schema")
        .expect("README section");
    let end = start + readme[start..].find("#### Schema coverage").unwrap();
    let mut out = BTreeMap::new();
    for block in readme[start..end].split("```json\n").skip(1) {
        let body = block.split("```").next().unwrap();
        let v: Value = serde_json::from_str(body.trim())
            .unwrap_or_else(|e| panic!("README example is not JSON ({e}): {body}"));
        let id = v["id"].as_str().unwrap().to_string();
        assert!(
            out.insert(id.clone(), v).is_none(),
            "two examples with id {id}"
        );
    }
    out
}

#[test]
fn typed_events_are_exactly_the_readme_examples() {
    let mut examples = readme_examples();
    assert_eq!(examples.len(), 12, "one example per frame below");
    for mut event in run(&readme_frames()) {
        // The pipeline stamps the stream of the source the frame came from.
        event.stream = "host".into();
        let json = json_of(&event);
        let id = json["id"].as_str().unwrap();
        let want = examples
            .remove(id)
            .unwrap_or_else(|| panic!("no README example with id {id}: {json}"));
        assert_eq!(json, want, "the event differs from the README example");
        // And it reads back as the same event (JSONL replay).
        assert_eq!(serde_json::from_value::<Event>(json).unwrap(), event);
    }
    assert!(
        examples.is_empty(),
        "examples without a frame: {examples:?}"
    );
}

#[test]
fn system_rank_poll_and_envelope_variants_field_by_field() {
    let system = proto::WebcastSystemMessage {
        common: common(1),
        message: "The LIVE is being recorded".into(),
    };
    let notice = proto::WebcastNoticeMessage {
        common: common(2),
        content: "plain fallback".into(),
        notice_content: text(
            "live_notice_rules",
            "{0:user}, please follow the {1:string}",
            vec![
                user_piece(user(5, "ana", "")),
                string_piece("community guidelines"),
            ],
        ),
        ..Default::default()
    };
    let marquee = proto::WebcastMarqueeAnnouncementMessage {
        common: common(3),
        message_scene: "scene".into(),
        message_entity: vec![proto::MessageEntity {
            notify: Some(proto::WebcastRoomNotifyMessage {
                content: "Big sale tonight".into(),
                ..Default::default()
            }),
        }],
    };
    // The room message under the name TikTok really uses, with its text in the header.
    let bare = proto::WebcastRoomMessage {
        common: Some(proto::CommonMessageData {
            display_text: text(
                "live_room_welcome",
                "Welcome, {0:user}!",
                vec![user_piece(user(6, "bo", "Bo"))],
            ),
            ..common(4).unwrap()
        }),
        content: "ignored: the template wins".into(),
        ..Default::default()
    };
    let rank_text = proto::WebcastRankTextMessage {
        common: common(5),
        owner_idx_after_update: 7,
        rank_type: 1,
        self_get_badge_msg: text(
            "k",
            "You are No. {0:string} this week",
            vec![string_piece("7")],
        ),
        ..Default::default()
    };
    let reward = proto::WebcastHourlyRankRewardMessage {
        common: common(6),
        winners: vec![
            proto::HourlyRankRewardInfo {
                user_id: 42,
                asset_id: 0,
                notify: Some(proto::WebcastRoomNotifyMessage {
                    content: "Top of the hour!".into(),
                    ..Default::default()
                }),
            },
            proto::HourlyRankRewardInfo {
                user_id: 43,
                ..Default::default()
            },
        ],
    };
    let poll_end = proto::WebcastPollMessage {
        common: common(7),
        poll_basic_info: Some(proto::PollBasicInfo {
            title: "Next game?".into(),
            poll_id_str: "99".into(),
            ..Default::default()
        }),
        end_content: Some(proto::PollEndContent {
            end_type: 1,
            option_list: vec![proto::PollOptionInfo {
                votes: 30,
                display_content: "A".into(),
                option_idx: 0,
            }],
            operator: None,
        }),
        ..Default::default()
    };
    let chest = proto::WebcastEnvelopeMessage {
        common: common(8),
        envelope_info: Some(proto::MessageRedEnvelopInfo {
            business_type: 0,
            diamond_count: 10,
            ..Default::default()
        }),
        display: 1,
    };
    let settle = proto::WebcastLinkmicBattleTaskMessage {
        common: common(9),
        task_message_type: 2,
        task_settle: Some(proto::BattleTaskSettle {
            result: 1,
            ..Default::default()
        }),
        battle_id: 3,
        ..Default::default()
    };
    let events = run(&[
        base_message("WebcastSystemMessage", 1, &system),
        base_message("WebcastNoticeMessage", 2, &notice),
        base_message("WebcastMarqueeAnnouncementMessage", 3, &marquee),
        base_message("RoomMessage", 4, &bare),
        base_message("WebcastRankTextMessage", 5, &rank_text),
        base_message("WebcastHourlyRankRewardMessage", 6, &reward),
        base_message("WebcastPollMessage", 7, &poll_end),
        base_message("WebcastEnvelopeMessage", 8, &chest),
        base_message("WebcastLinkmicBattleTaskMessage", 9, &settle),
    ]);
    let got: Vec<Value> = events
        .iter()
        .map(|e| {
            let mut j = json_of(e);
            for k in ["v", "ts", "source", "stream", "room_id"] {
                j.as_object_mut().unwrap().remove(k);
            }
            j
        })
        .collect();
    let want = vec![
        json!({"type": "system", "method": "WebcastSystemMessage", "key": "", "text": "The LIVE is being recorded", "id": "1"}),
        json!({"type": "system", "method": "WebcastNoticeMessage", "key": "live_notice_rules", "text": "ana, please follow the community guidelines", "id": "2"}),
        json!({"type": "system", "method": "WebcastMarqueeAnnouncementMessage", "key": "", "text": "Big sale tonight", "id": "3"}),
        json!({"type": "system", "method": "WebcastRoomMessage", "key": "live_room_welcome", "text": "Welcome, Bo!", "id": "4"}),
        json!({"type": "rank", "kind": "text", "list": "weekly", "rank": 7, "text": "You are No. 7 this week", "id": "5"}),
        json!({"type": "rank", "kind": "reward", "list": "hourly", "text": "Top of the hour!", "id": "6",
               "user": {"id": "42", "unique_id": "", "nickname": "", "avatar_url": null}}),
        json!({"type": "rank", "kind": "reward", "list": "hourly", "text": "", "id": "6-1",
               "user": {"id": "43", "unique_id": "", "nickname": "", "avatar_url": null}}),
        json!({"type": "poll", "phase": "end", "poll_id": "99", "title": "Next game?", "options": [{"text": "A", "votes": 30}], "id": "7"}),
        json!({"type": "envelope", "diamonds": 10, "people": 0, "super_fan_box": false, "id": "8"}),
        json!({"type": "battle", "phase": "task", "battle_id": "3", "teams": [], "task": {"stage": "settle", "result": "failed"}, "id": "9"}),
    ];
    assert_eq!(got, want);
}

/// `field` encoded with the other wire type than the schema declares (or left out): a varint
/// where v3 has a string, and a string where v2 has an enum.
fn with_extra_field(payload: Vec<u8>, field: u32, as_varint: bool) -> Vec<u8> {
    let mut out = payload;
    if as_varint {
        prost::encoding::int32::encode(field, &3, &mut out);
    } else {
        prost::encoding::string::encode(field, &"welcome_scene".to_string(), &mut out);
    }
    out
}

#[test]
fn a_field_sent_with_the_other_wire_type_still_decodes() {
    for as_varint in [true, false] {
        // The room message's `scene` (6): a string in v3, an enum in v2.
        let room = proto::WebcastRoomMessage {
            common: common(1),
            content: "welcome".into(),
            ..Default::default()
        };
        // The barrage's `scene` (11): the same disagreement, on a super fan banner (typed) and
        // on another banner (passed through by the descriptor-driven decoder).
        let banner = |id, key: &str| proto::WebcastBarrageMessage {
            common: common(id),
            content: text(key, "", vec![]),
            user: user(9, "gus", "Gus"),
            ..Default::default()
        };
        let frames = [
            ("WebcastRoomMessage", 6, room.encode_to_vec()),
            (
                "WebcastBarrageMessage",
                11,
                banner(2, "ttlive_superFan_commentNotif_superFanJoined").encode_to_vec(),
            ),
            (
                "WebcastBarrageMessage",
                11,
                banner(3, "ttlive_vip_entrance").encode_to_vec(),
            ),
        ];
        let messages: Vec<proto::BaseProtoMessage> = frames
            .into_iter()
            .enumerate()
            .map(|(i, (method, field, bytes))| proto::BaseProtoMessage {
                method: method.into(),
                payload: with_extra_field(bytes, field, as_varint).into(),
                msg_id: i as i64 + 1,
                ..Default::default()
            })
            .collect();
        let types: Vec<String> = run(&messages)
            .iter()
            .map(|e| {
                let j = json_of(e);
                format!(
                    "{}:{}",
                    j["type"].as_str().unwrap(),
                    j["text"].as_str().unwrap_or("")
                )
            })
            .collect();
        assert_eq!(
            types,
            ["system:welcome", "super_fan_join:", "webcast:"],
            "scene as varint: {as_varint}"
        );
    }
}

#[tokio::test]
async fn a_stream_of_every_declared_method_through_the_fake_tiktok_has_no_unknown() {
    let fake = FakeTikTok::start().await;
    fake.push_sign(SignReply::Ok(vec![wc::chat(1, 1, "hello")]));
    let mut messages = every_method_filled(5000);
    messages.extend(readme_frames());
    let sent = messages.len();
    fake.push_script(vec![
        Step::Msgs {
            messages,
            gzip: true,
        },
        Step::Msgs {
            messages: vec![wc::control(9999, 3)],
            gzip: false,
        },
    ]);
    let mut relay = LiveRelay::start(&fake, "@streamer", LiveOpts::default()).await;
    let events = relay.events_until(|e| e["type"] == "live_ended").await;
    let unknown: Vec<&Value> = events.iter().filter(|e| e["type"] == "unknown").collect();
    assert!(unknown.is_empty(), "relayed as unknown: {unknown:#?}");
    // connected, the sign fetch's comment, at least one event per message, live_ended.
    assert!(
        events.len() >= sent + 3,
        "{} events for {sent} messages",
        events.len()
    );
    let types: BTreeSet<&str> = events.iter().filter_map(|e| e["type"].as_str()).collect();
    for ty in [
        "goal",
        "poll",
        "rank",
        "system",
        "comment_deleted",
        "super_fan",
        "super_fan_join",
        "envelope",
        "viewers",
        "battle",
        "webcast",
    ] {
        assert!(types.contains(ty), "no {ty} event: {types:?}");
    }
    relay.finished().await.expect("the LIVE ended cleanly");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comment_deleted_takes_comments_off_the_chat_page() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let viewer = |id: &str, name: &str| json!({"id": id, "unique_id": name, "nickname": name});
    let comments = [
        ("c1", "u1", "first comment"),
        ("c2", "u2", "second comment"),
        ("c3", "u2", "third comment"),
        ("c4", "u3", "stays"),
    ];
    // One comment arrives before the page opens, so it also comes from the backlog.
    let (id, who, text) = comments[0];
    let ev = json!({"type": "comment", "id": id, "user": viewer(who, who), "text": text});
    assert_eq!(post_test_event(&base, ev).await, 200);

    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/overlays/default/chat")).await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    for (id, who, text) in &comments[1..] {
        let ev = json!({"type": "comment", "id": id, "user": viewer(who, who), "text": text});
        assert_eq!(post_test_event(&base, ev).await, 200);
    }
    let shown = "[...document.querySelectorAll('.chat-text')].map(e => e.textContent).join('|')";
    page.wait_for(
        &format!("{shown} === 'first comment|second comment|third comment|stays'"),
        WAIT,
    )
    .await;

    // By message id, then every comment of a viewer.
    let by_id = json!({"type": "comment_deleted", "message_ids": ["c1"], "user_ids": []});
    assert_eq!(post_test_event(&base, by_id).await, 200);
    page.wait_for(
        &format!("{shown} === 'second comment|third comment|stays'"),
        WAIT,
    )
    .await;
    let by_user = json!({"type": "comment_deleted", "message_ids": [], "user_ids": ["u2"]});
    assert_eq!(post_test_event(&base, by_user).await, 200);
    page.wait_for(&format!("{shown} === 'stays'"), WAIT).await;

    // A page opened now does not bring them back from the backlog.
    page.reload().await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    page.wait_for(&format!("{shown} === 'stays'"), WAIT).await;
    let errors = page.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}
