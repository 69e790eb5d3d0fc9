//! The normaliser's rules, one test per rule or edge; the JSON of every typed event is checked
//! field by field in `tests/integration/schema/`.

use super::*;
use crate::events::BattlePhase;
use crate::tiktok::frame::base_message;

fn run(msg: proto::BaseProtoMessage) -> Vec<Event> {
    let mut n = Normaliser::new(Source::Tiktok, Duration::from_secs(10));
    let mut out = Vec::new();
    n.message(&msg, Instant::now(), &mut out).unwrap();
    out
}

fn common(id: i64) -> Option<proto::CommonMessageData> {
    Some(proto::CommonMessageData {
        msg_id: id,
        ..Default::default()
    })
}

#[test]
fn battle_negotiation_is_not_a_battle_phase() {
    for (action, want) in [
        (4, "battle"),
        (0, "battle"),
        (1, "webcast"),
        (7, "webcast"),
        (5, "battle"),
    ] {
        let m = proto::WebcastLinkMicBattle {
            common: common(1),
            battle_id: 9,
            action,
            ..Default::default()
        };
        let out = run(base_message("WebcastLinkMicBattle", 1, &m));
        assert_eq!(out[0].type_name(), want, "action {action}");
    }
}

#[test]
fn battle_scores_come_from_results_or_armies() {
    let m = proto::WebcastLinkMicBattle {
        common: common(1),
        action: 4,
        anchors_info: vec![proto::BattleUserInfoWrapper {
            key: 11,
            value: None,
        }],
        armies: vec![proto::UserArmiesWrapper {
            key: 11,
            value: Some(proto::BattleUserArmies {
                hostscore: 40,
                ..Default::default()
            }),
        }],
        ..Default::default()
    };
    let out = run(base_message("WebcastLinkMicBattle", 1, &m));
    match &out[0].kind {
        EventKind::Battle { phase, teams, .. } => {
            assert_eq!(*phase, BattlePhase::Start);
            assert_eq!(teams[0].score, 40);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn unpinning_and_pinned_non_chat_messages_pass_through() {
    let pinned = |action, chat: bool| proto::WebcastRoomPinMessage {
        common: common(1),
        action,
        chat_message: chat.then(|| proto::WebcastChatMessage {
            content: "hello".into(),
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = run(base_message("WebcastRoomPinMessage", 1, &pinned(1, true)));
    assert_eq!(
        out[0].kind,
        EventKind::Pin {
            text: "hello".into()
        }
    );
    for m in [pinned(2, true), pinned(1, false)] {
        let out = run(base_message("WebcastRoomPinMessage", 1, &m));
        assert_eq!(out[0].type_name(), "webcast");
    }
}

#[test]
fn super_fan_keys_tell_becoming_one_from_joining() {
    use super::viewers::{SUPER_FAN_BECAME_KEY, SUPER_FAN_JOINED_KEY};
    let barrage =
        |content: Option<&str>, common_content: Option<&str>| proto::WebcastBarrageMessage {
            common: common(1),
            content: content.map(|k| proto::Text {
                key: k.into(),
                ..Default::default()
            }),
            common_barrage_content: common_content.map(|k| proto::Text {
                key: k.into(),
                ..Default::default()
            }),
            ..Default::default()
        };
    let type_of = |m: &proto::WebcastBarrageMessage| {
        run(base_message("WebcastBarrageMessage", 1, m))[0].type_name()
    };
    // The keys as TikTok spells them, in either text field.
    assert_eq!(
        type_of(&barrage(
            Some("ttlive_superFan_commentNotif_someoneBecameSuperFan"),
            None
        )),
        "super_fan"
    );
    assert_eq!(
        type_of(&barrage(None, Some(SUPER_FAN_BECAME_KEY))),
        "super_fan"
    );
    assert_eq!(
        type_of(&barrage(
            Some("ttlive_superFan_commentNotif_superFanJoined"),
            None
        )),
        "super_fan_join"
    );
    assert_eq!(
        type_of(&barrage(None, Some(SUPER_FAN_JOINED_KEY))),
        "super_fan_join"
    );
    // Any other banner is neither, super fan related or not.
    for other in [
        "ttlive_vip_entrance",
        "ttlive_superFan_viewer_commentNotif_introduceSuperFan_text",
        "ttlive_superfan_x",
    ] {
        assert_eq!(type_of(&barrage(Some(other), None)), "webcast", "{other}");
    }
    assert_eq!(type_of(&barrage(None, None)), "webcast");
}

#[test]
fn a_super_fan_banner_without_a_user_names_the_viewer_from_its_text() {
    let m = proto::WebcastBarrageMessage {
        common: common(1),
        content: Some(proto::Text {
            key: super::viewers::SUPER_FAN_BECAME_KEY.into(),
            default_pattern: "{0:user} became a Super Fan".into(),
            pieces: vec![proto::TextPiece {
                user_value: Some(proto::TextPieceUser {
                    user: Some(proto::User {
                        id: 42,
                        nickname: "Ana".into(),
                        ..Default::default()
                    }),
                    with_colon: false,
                }),
                ..Default::default()
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let out = run(base_message("WebcastBarrageMessage", 1, &m));
    let user = out[0]
        .user
        .as_ref()
        .expect("the viewer from the text piece");
    assert_eq!((user.id.as_str(), user.nickname.as_str()), ("42", "Ana"));
}

#[test]
fn webcast_data_uses_proto_field_names_and_string_ids() {
    let m = proto::WebcastRoomNotifyMessage {
        common: common(5),
        from_user_id: 7_400_000_000_000_000_001,
        content: String::new(),
        ..Default::default()
    };
    let out = run(base_message("WebcastRoomNotifyMessage", 5, &m));
    let json: serde_json::Value = serde_json::from_str(&out[0].to_json()).unwrap();
    assert_eq!(json["method"], "WebcastRoomNotifyMessage");
    assert_eq!(json["data"]["from_user_id"], "7400000000000000001");
    assert_eq!(json["data"]["common"]["msg_id"], "5");
    assert!(json["data"].get("content").is_none(), "defaults left out");
}
