//! Issue 10's schema coverage: one frame per declared method (62 from the reference clients,
//! plus battle item cards), built here with prost, none decoding to `unknown`; the typed events
//! equal the README's examples field by field; a field whose wire type differs between schema
//! versions still decodes; the same stream through the fake TikTok; and `comment_deleted`
//! taking a comment off the chat page in headless Chromium.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, SerializeOptions, Value as PValue};
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

/// The message methods TikTokLive's `EVENT_MAPPINGS` and TikTok-Live-Connector's event map
/// know between them (the connector's 61 and TikTokLive's `WebcastHourlyRankMessage`).
const METHODS: [&str; 62] = [
    "WebcastAccessControlMessage",
    "WebcastAccessRecallMessage",
    "WebcastBarrageMessage",
    "WebcastBoostCardMessage",
    "WebcastBottomMessage",
    "WebcastCapsuleMessage",
    "WebcastCaptionMessage",
    "WebcastChatMessage",
    "WebcastControlMessage",
    "WebcastEmoteChatMessage",
    "WebcastEnvelopeMessage",
    "WebcastGameRankNotifyMessage",
    "WebcastGiftBroadcastMessage",
    "WebcastGiftDynamicRestrictionMessage",
    "WebcastGiftMessage",
    "WebcastGiftPanelUpdateMessage",
    "WebcastGiftPromptMessage",
    "WebcastGoalUpdateMessage",
    "WebcastGuideMessage",
    "WebcastHourlyRankRewardMessage",
    "WebcastHourlyRankMessage",
    "WebcastImDeleteMessage",
    "WebcastInRoomBannerMessage",
    "WebcastLikeMessage",
    "WebcastLinkLayerMessage",
    "WebcastLinkMessage",
    "WebcastLinkMicArmies",
    "WebcastLinkMicBattle",
    "WebcastLinkMicBattlePunishFinish",
    "WebcastLinkMicFanTicketMethod",
    "WebcastLinkMicLayoutStateMessage",
    "WebcastLinkMicMethod",
    "WebcastLinkStateMessage",
    "WebcastLinkmicBattleTaskMessage",
    "WebcastLiveGameIntroMessage",
    "WebcastLiveIntroMessage",
    "WebcastMarqueeAnnouncementMessage",
    "WebcastMemberMessage",
    "WebcastMsgDetectMessage",
    "WebcastNoticeMessage",
    "WebcastOecLiveShoppingMessage",
    "WebcastPartnershipDropsUpdateMessage",
    "WebcastPartnershipGameOfflineMessage",
    "WebcastPartnershipPunishMessage",
    "WebcastPerceptionMessage",
    "WebcastPollMessage",
    "WebcastQuestionNewMessage",
    "WebcastRankTextMessage",
    "WebcastRankUpdateMessage",
    "WebcastRoomMessage",
    "WebcastRoomNotifyMessage",
    "WebcastRoomPinMessage",
    "WebcastRoomUserSeqMessage",
    "WebcastRoomVerifyMessage",
    "WebcastSocialMessage",
    "WebcastSpeakerMessage",
    "WebcastSubNotifyMessage",
    "WebcastSubPinEventMessage",
    "WebcastSystemMessage",
    "WebcastToastMessage",
    "WebcastUnauthorizedMemberMessage",
    "WebcastViewerPicksUpdateMessage",
];

/// Methods TikTok uses beyond the 62: battle item cards.
const EXTRA_METHODS: [&str; 1] = ["WebcastLinkMicBattleItemCard"];

const ROOM: i64 = 7_450_000_000_000_000_001;
const TS: i64 = 1_767_225_600_000;

fn common(msg_id: i64) -> Option<proto::CommonMessageData> {
    Some(proto::CommonMessageData {
        msg_id,
        room_id: ROOM,
        create_time: TS,
        ..Default::default()
    })
}

fn user(id: i64, handle: &str, nickname: &str) -> Option<proto::User> {
    Some(proto::User {
        id,
        display_id: handle.into(),
        nickname: nickname.into(),
        ..Default::default()
    })
}

fn text(key: &str, pattern: &str, pieces: Vec<proto::TextPiece>) -> Option<proto::Text> {
    Some(proto::Text {
        key: key.into(),
        default_pattern: pattern.into(),
        pieces,
        ..Default::default()
    })
}

fn string_piece(s: &str) -> proto::TextPiece {
    proto::TextPiece {
        string_value: s.into(),
        ..Default::default()
    }
}

fn user_piece(u: Option<proto::User>) -> proto::TextPiece {
    proto::TextPiece {
        user_value: Some(proto::TextPieceUser {
            user: u,
            with_colon: false,
        }),
        ..Default::default()
    }
}

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

/// A message of `desc` with the common header (`msg_id`) and every scalar field set to a value
/// other than its default, so each must reach a pass-through event's `data`.
fn filled(desc: &MessageDescriptor, msg_id: i64) -> DynamicMessage {
    let mut m = DynamicMessage::new(desc.clone());
    for field in desc.fields() {
        let value = match field.kind() {
            Kind::Message(common_desc) if field.name() == "common" => {
                let bytes = common(msg_id).unwrap().encode_to_vec();
                PValue::Message(DynamicMessage::decode(common_desc, bytes.as_slice()).unwrap())
            }
            Kind::Message(_) => continue,
            Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => PValue::I32(7),
            Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(7_400_000_000_000_000_007),
            Kind::Uint32 | Kind::Fixed32 => PValue::U32(7),
            Kind::Uint64 | Kind::Fixed64 => PValue::U64(7),
            Kind::Float => PValue::F32(1.5),
            Kind::Double => PValue::F64(2.5),
            Kind::Bool => PValue::Bool(true),
            Kind::String => PValue::String(format!("{} text", field.name())),
            Kind::Bytes => PValue::Bytes(b"raw".to_vec().into()),
            Kind::Enum(_) => PValue::EnumNumber(1),
        };
        let value = if field.is_list() {
            PValue::List(vec![value])
        } else {
            value
        };
        m.set_field(&field, value);
    }
    m
}

/// One frame per declared method, every scalar set.
fn every_method_filled(first_id: i64) -> Vec<proto::BaseProtoMessage> {
    METHODS
        .iter()
        .chain(&EXTRA_METHODS)
        .enumerate()
        .map(|(i, method)| {
            let desc = descriptor_pool()
                .get_message_by_name(&format!("webcast.{method}"))
                .unwrap_or_else(|| panic!("{method} is not declared in proto/webcast.proto"));
            base_message(
                method,
                first_id + i as i64,
                &filled(&desc, first_id + i as i64),
            )
        })
        .collect()
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
    let readme = include_str!("../../README.md");
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

/// The frames the README's examples come from.
fn readme_frames() -> Vec<proto::BaseProtoMessage> {
    let mut out = Vec::new();
    let goal = proto::WebcastGoalUpdateMessage {
        common: common(7_450_000_000_000_000_101),
        goal: Some(proto::LiveStreamGoal {
            id: 7_451_000_000_000_000_001,
            description: "Road to 1000 roses".into(),
            sub_goals: vec![proto::LiveStreamSubGoal {
                r#type: 1,
                id: 5655,
                progress: 420,
                target: 1000,
                gift: Some(proto::LiveStreamSubGoalGift {
                    name: "Rose".into(),
                    diamond_count: 1,
                    r#type: 1,
                    icon: None,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        contributor_id: 6_900_000_000_000_000_001,
        contributor_display_id: "ana.b".into(),
        contribute_count: 5,
        ..Default::default()
    };
    out.push(base_message("WebcastGoalUpdateMessage", 1, &goal));
    let option = |text: &str, votes: i64, idx: i32| proto::PollOptionInfo {
        votes,
        display_content: text.into(),
        option_idx: idx,
    };
    let poll_start = proto::WebcastPollMessage {
        common: common(7_450_000_000_000_000_102),
        poll_id: 7_452_000_000_000_000_001,
        start_content: Some(proto::PollStartContent {
            title: "Next game?".into(),
            // Sent out of order: the event keeps TikTok's option order.
            option_list: vec![option("Fortnite", 0, 1), option("Minecraft", 0, 0)],
            operator: user(6_900_000_000_000_000_100, "host", "Host"),
            ..Default::default()
        }),
        ..Default::default()
    };
    out.push(base_message("WebcastPollMessage", 1, &poll_start));
    let poll_update = proto::WebcastPollMessage {
        common: common(7_450_000_000_000_000_103),
        poll_id: 7_452_000_000_000_000_001,
        update_votes_content: Some(proto::PollUpdateVotesContent {
            option_list: vec![option("Minecraft", 12, 0), option("Fortnite", 7, 1)],
            operator: None,
        }),
        ..Default::default()
    };
    out.push(base_message("WebcastPollMessage", 1, &poll_update));
    let rank = proto::WebcastRankUpdateMessage {
        common: common(7_450_000_000_000_000_104),
        updates: vec![proto::RankUpdate {
            rank_type: 0,
            own_rank: 3,
            default_content: text(
                "ttlive_rank_hourly",
                "No. {0:string} in {1:string}",
                vec![string_piece("3"), string_piece("Hourly ranking")],
            ),
            ..Default::default()
        }],
        ..Default::default()
    };
    out.push(base_message("WebcastRankUpdateMessage", 1, &rank));
    let welcome = proto::WebcastRoomMessage {
        common: common(7_450_000_000_000_000_105),
        content: "Welcome to TikTok LIVE! Have fun interacting with others in real time.".into(),
        is_welcome: true,
        ..Default::default()
    };
    out.push(base_message("WebcastRoomMessage", 1, &welcome));
    let deleted = proto::WebcastImDeleteMessage {
        common: common(7_450_000_000_000_000_106),
        delete_msg_ids: vec![7_450_000_000_000_000_042],
        delete_user_ids: vec![6_900_000_000_000_000_009],
    };
    out.push(base_message("WebcastImDeleteMessage", 1, &deleted));
    let became = proto::WebcastBarrageMessage {
        common: common(7_450_000_000_000_000_107),
        content: text(
            "ttlive_superFan_commentNotif_someoneBecameSuperFan",
            "{0:user} became a Super Fan!",
            vec![user_piece(user(6_900_000_000_000_000_002, "bo", "Bo"))],
        ),
        ..Default::default()
    };
    out.push(base_message("WebcastBarrageMessage", 1, &became));
    let joined = proto::WebcastBarrageMessage {
        common: common(7_450_000_000_000_000_108),
        common_barrage_content: text(
            "ttlive_superFan_commentNotif_superFanJoined",
            "Super Fan {0:user} joined",
            vec![],
        ),
        user: user(6_900_000_000_000_000_003, "cy", "Cy"),
        ..Default::default()
    };
    out.push(base_message("WebcastBarrageMessage", 1, &joined));
    let chest = proto::WebcastEnvelopeMessage {
        common: common(7_450_000_000_000_000_109),
        envelope_info: Some(proto::MessageRedEnvelopInfo {
            business_type: 19,
            diamond_count: 500,
            people_count: 20,
            send_user_id: "6900000000000000004".into(),
            send_user_name: "Di".into(),
            ..Default::default()
        }),
        display: 1,
    };
    out.push(base_message("WebcastEnvelopeMessage", 1, &chest));
    let contributor =
        |rank: i64, score: i64, id: i64, handle: &str, name: &str| proto::Contributor {
            score,
            user: user(id, handle, name),
            rank,
            delta: 0,
        };
    let seq = proto::WebcastRoomUserSeqMessage {
        common: common(7_450_000_000_000_000_110),
        ranks: vec![
            contributor(2, 1200, 6_900_000_000_000_000_006, "fay", "Fay"),
            contributor(1, 3000, 6_900_000_000_000_000_005, "ed", "Ed"),
        ],
        total: 250,
        total_user: 9000,
        ..Default::default()
    };
    out.push(base_message("WebcastRoomUserSeqMessage", 1, &seq));
    let card = proto::WebcastLinkMicBattleItemCard {
        common: common(7_450_000_000_000_000_111),
        battle_id: 7_453_000_000_000_000_001,
        msg_type: 2,
        use_critical_strike_card: Some(proto::UseCriticalStrikeCard {
            anchor_id: 6_900_000_000_000_000_100,
            display_content: text(
                "pk_item_card_critical_strike",
                "{0:user} used a Critical Strike card: x2 points for 20s",
                vec![user_piece(user(6_900_000_000_000_000_100, "host", "Host"))],
            ),
        }),
        ..Default::default()
    };
    out.push(base_message("WebcastLinkMicBattleItemCard", 1, &card));
    let task = proto::WebcastLinkmicBattleTaskMessage {
        common: common(7_450_000_000_000_000_112),
        task_message_type: 1,
        task_update: Some(proto::BattleTaskUpdate {
            progress: 40,
            ..Default::default()
        }),
        battle_id: 7_453_000_000_000_000_001,
        ..Default::default()
    };
    out.push(base_message("WebcastLinkmicBattleTaskMessage", 1, &task));
    out
}

#[test]
fn typed_events_are_exactly_the_readme_examples() {
    let mut examples = readme_examples();
    assert_eq!(examples.len(), 12, "one example per frame below");
    for event in run(&readme_frames()) {
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
            for k in ["v", "ts", "source", "room_id"] {
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
