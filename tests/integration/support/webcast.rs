//! Builders of real webcast messages for tests, one per message type the relay normalises, so
//! a test can say what the fake sends and what the relay must make of it.
#![allow(dead_code)]

use prost::Message;
use tikrelay::proto::{self, BaseProtoMessage, CommonMessageData};
use tikrelay::tiktok::frame::base_message;

pub const ROOM: i64 = 7777;
pub const TS: i64 = 1_800_000_000_000;

pub fn common(id: i64, key: &str) -> Option<CommonMessageData> {
    Some(CommonMessageData {
        msg_id: id,
        room_id: ROOM,
        create_time: tikrelay::events::now_ms(),
        display_text: (!key.is_empty()).then(|| proto::Text {
            key: key.into(),
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn user(n: i64) -> Option<proto::User> {
    Some(proto::User {
        id: 6_900_000_000_000_000_000 + n,
        nickname: format!("Viewer <{n}>"),
        display_id: format!("viewer{n}"),
        avatar_thumb: Some(proto::ImageModel {
            url_list: vec![format!("https://p16.example/avatar{n}.webp")],
            ..Default::default()
        }),
        ..Default::default()
    })
}

pub fn user_id(n: i64) -> String {
    (6_900_000_000_000_000_000 + n).to_string()
}

fn wrap(method: &str, id: i64, m: &impl Message) -> BaseProtoMessage {
    base_message(method, id, m)
}

pub fn chat(id: i64, who: i64, text: &str) -> BaseProtoMessage {
    wrap(
        "WebcastChatMessage",
        id,
        &proto::WebcastChatMessage {
            common: common(id, ""),
            user: user(who),
            content: text.into(),
            ..Default::default()
        },
    )
}

pub fn social(id: i64, who: i64, key: &str) -> BaseProtoMessage {
    wrap(
        "WebcastSocialMessage",
        id,
        &proto::WebcastSocialMessage {
            common: common(id, key),
            user: user(who),
            ..Default::default()
        },
    )
}

pub fn like(id: i64, who: i64, count: i32, total: i64) -> BaseProtoMessage {
    wrap(
        "WebcastLikeMessage",
        id,
        &proto::WebcastLikeMessage {
            common: common(id, "pm_mt_msg_viewer"),
            user: user(who),
            count,
            total,
            ..Default::default()
        },
    )
}

pub fn join(id: i64, who: i64, members: i32) -> BaseProtoMessage {
    wrap(
        "WebcastMemberMessage",
        id,
        &proto::WebcastMemberMessage {
            common: common(id, "live_room_enter_toast"),
            user: user(who),
            member_count: members,
            action: 1,
            ..Default::default()
        },
    )
}

pub fn viewers(id: i64, now: i64, total: i64) -> BaseProtoMessage {
    wrap(
        "WebcastRoomUserSeqMessage",
        id,
        &proto::WebcastRoomUserSeqMessage {
            common: common(id, ""),
            total: now,
            total_user: total,
            ..Default::default()
        },
    )
}

pub fn emote(id: i64, who: i64, emote_id: &str) -> BaseProtoMessage {
    wrap(
        "WebcastEmoteChatMessage",
        id,
        &proto::WebcastEmoteChatMessage {
            common: common(id, ""),
            user: user(who),
            emote_list: vec![proto::EmoteModel {
                emote_id: emote_id.into(),
                ..Default::default()
            }],
            ..Default::default()
        },
    )
}

/// `kind` = (gift id, diamonds, streakable); `streak` = (group id, repeat count, repeat end).
pub fn gift(
    id: i64,
    who: i64,
    kind: (i64, i32, bool),
    streak: (i64, i32, bool),
) -> BaseProtoMessage {
    let ((gift_id, diamonds, streakable), (group, count, end)) = (kind, streak);
    wrap(
        "WebcastGiftMessage",
        id,
        &proto::WebcastGiftMessage {
            common: common(id, ""),
            gift_id,
            repeat_count: count,
            repeat_end: end as i32,
            group_id: group,
            user: user(who),
            gift: Some(proto::Gift {
                id: gift_id,
                name: format!("Gift{gift_id}"),
                diamond_count: diamonds,
                r#type: if streakable { 1 } else { 2 },
                ..Default::default()
            }),
            ..Default::default()
        },
    )
}

pub fn control(id: i64, action: i32) -> BaseProtoMessage {
    wrap(
        "WebcastControlMessage",
        id,
        &proto::WebcastControlMessage {
            common: common(id, ""),
            action,
            ..Default::default()
        },
    )
}

pub fn super_fan(id: i64, who: i64) -> BaseProtoMessage {
    wrap(
        "WebcastBarrageMessage",
        id,
        &proto::WebcastBarrageMessage {
            common: common(id, ""),
            msg_type: 100,
            // The marker is in Text.key (where TikTokLive 7 looks for a `display_type`): the
            // key of a viewer becoming a super fan.
            content: Some(proto::Text {
                key: "ttlive_superFan_commentNotif_someoneBecameSuperFan".into(),
                ..Default::default()
            }),
            user: user(who),
            ..Default::default()
        },
    )
}

pub fn subscribe(id: i64, who: i64, months: i64) -> BaseProtoMessage {
    wrap(
        "WebcastSubNotifyMessage",
        id,
        &proto::WebcastSubNotifyMessage {
            common: common(id, "pm_mt_subinfo_user"),
            user: user(who),
            sub_month: months,
            ..Default::default()
        },
    )
}

pub fn battle_start(id: i64, battle: i64, hosts: &[(i64, &str)]) -> BaseProtoMessage {
    wrap(
        "WebcastLinkMicBattle",
        id,
        &proto::WebcastLinkMicBattle {
            common: common(id, ""),
            battle_id: battle,
            action: 4,
            anchors_info: hosts
                .iter()
                .map(|(host, name)| proto::BattleUserInfoWrapper {
                    key: *host,
                    value: Some(proto::BattleUserInfo {
                        user: Some(proto::BattleBaseUserInfo {
                            user_id: *host,
                            nick_name: name.to_string(),
                            display_id: name.to_lowercase(),
                            ..Default::default()
                        }),
                    }),
                })
                .collect(),
            ..Default::default()
        },
    )
}

pub fn battle_score(id: i64, battle: i64, scores: &[(i64, i64)], end: bool) -> BaseProtoMessage {
    wrap(
        "WebcastLinkMicArmies",
        id,
        &proto::WebcastLinkMicArmies {
            common: common(id, ""),
            battle_id: battle,
            armies: scores
                .iter()
                .map(|(host, score)| {
                    (
                        *host,
                        proto::BattleUserArmies {
                            hostscore: *score,
                            ..Default::default()
                        },
                    )
                })
                .collect(),
            trigger_reason: if end { 2 } else { 1 },
            ..Default::default()
        },
    )
}

pub fn envelope(id: i64, diamonds: i32, people: i32) -> BaseProtoMessage {
    wrap(
        "WebcastEnvelopeMessage",
        id,
        &proto::WebcastEnvelopeMessage {
            common: common(id, ""),
            envelope_info: Some(proto::MessageRedEnvelopInfo {
                envelope_id: "env-1".into(),
                send_user_name: "Chest Giver".into(),
                send_user_id: "123".into(),
                diamond_count: diamonds,
                people_count: people,
                ..Default::default()
            }),
            display: 1,
        },
    )
}

pub fn question(id: i64, who: i64, text: &str) -> BaseProtoMessage {
    wrap(
        "WebcastQuestionNewMessage",
        id,
        &proto::WebcastQuestionNewMessage {
            common: common(id, ""),
            data: Some(proto::Question {
                question_id: 99,
                content: text.into(),
                user: user(who),
                ..Default::default()
            }),
        },
    )
}

pub fn pin(id: i64, who: i64, text: &str) -> BaseProtoMessage {
    let chat = proto::WebcastChatMessage {
        common: common(id + 1_000_000, ""),
        user: user(who),
        content: text.into(),
        ..Default::default()
    };
    wrap(
        "WebcastRoomPinMessage",
        id,
        &proto::WebcastRoomPinMessage {
            common: common(id, ""),
            chat_message: Some(chat),
            action: 1,
            method: "WebcastChatMessage".into(),
            ..Default::default()
        },
    )
}

/// The room's welcome text: relayed as `system`.
pub fn room_message(id: i64, text: &str) -> BaseProtoMessage {
    wrap(
        "WebcastRoomMessage",
        id,
        &proto::WebcastRoomMessage {
            common: common(id, ""),
            content: text.into(),
            ..Default::default()
        },
    )
}

/// A method the schema does not know: relayed as `unknown`.
pub fn unknown(id: i64, method: &str) -> BaseProtoMessage {
    wrap(
        method,
        id,
        &proto::WebcastChatMessage {
            common: common(id, ""),
            ..Default::default()
        },
    )
}
