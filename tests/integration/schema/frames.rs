//! The frames the schema tests send, built with prost: every declared method with every scalar
//! field set, and the messages the README's typed-event examples come from.

use prost::Message;
use prost_reflect::{DynamicMessage, Kind, MessageDescriptor, Value as PValue};
use tikrelay::events::normalise::descriptor_pool;
use tikrelay::proto;
use tikrelay::tiktok::frame::base_message;

/// The message methods TikTokLive's `EVENT_MAPPINGS` and TikTok-Live-Connector's event map
/// know between them (the connector's 61 and TikTokLive's `WebcastHourlyRankMessage`).
pub const METHODS: [&str; 62] = [
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
pub const EXTRA_METHODS: [&str; 1] = ["WebcastLinkMicBattleItemCard"];

pub const ROOM: i64 = 7_450_000_000_000_000_001;
pub const TS: i64 = 1_767_225_600_000;

pub fn common(msg_id: i64) -> Option<proto::CommonMessageData> {
    Some(proto::CommonMessageData {
        msg_id,
        room_id: ROOM,
        create_time: TS,
        ..Default::default()
    })
}

pub fn user(id: i64, handle: &str, nickname: &str) -> Option<proto::User> {
    Some(proto::User {
        id,
        display_id: handle.into(),
        nickname: nickname.into(),
        ..Default::default()
    })
}

pub fn text(key: &str, pattern: &str, pieces: Vec<proto::TextPiece>) -> Option<proto::Text> {
    Some(proto::Text {
        key: key.into(),
        default_pattern: pattern.into(),
        pieces,
        ..Default::default()
    })
}

pub fn string_piece(s: &str) -> proto::TextPiece {
    proto::TextPiece {
        string_value: s.into(),
        ..Default::default()
    }
}

pub fn user_piece(u: Option<proto::User>) -> proto::TextPiece {
    proto::TextPiece {
        user_value: Some(proto::TextPieceUser {
            user: u,
            with_colon: false,
        }),
        ..Default::default()
    }
}

/// A message of `desc` with the common header (`msg_id`) and every scalar field set to a value
/// other than its default, so each must reach a pass-through event's `data`.
pub fn filled(desc: &MessageDescriptor, msg_id: i64) -> DynamicMessage {
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
pub fn every_method_filled(first_id: i64) -> Vec<proto::BaseProtoMessage> {
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

/// The frames the README's examples come from.
pub fn readme_frames() -> Vec<proto::BaseProtoMessage> {
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
