//! Turns decoded webcast messages into [`Event`]s.
//!
//! The rules follow what the two reference clients do (protocol.md section 3), minus their
//! known bugs: follow and share come from a *social* message's display-text key (not from any
//! message whose key happens to contain "follow"), super fans from the barrage's `Text.key`,
//! pause/resume/end from control actions. A method the hand-written rules do not cover but the
//! schema knows becomes a `webcast` event carrying every decoded field; a method the schema does
//! not know becomes `unknown`. A message that fails to decode is an error value for that message
//! only. Messages seen before (same `msg_id`) are dropped first; gifts then go through the combo
//! tracker.

use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tokio::time::Instant;

use super::combo::{ComboTracker, GiftMessage};
use super::dedupe::Dedupe;
use super::{BattlePhase, BattleTeam, Event, EventKind, GiftInfo, Source, User, local_id, now_ms};
use crate::proto;

/// A message that could not be turned into events. The stream goes on without it.
#[derive(Debug, thiserror::Error)]
#[error("{method} payload does not decode ({source}); message skipped")]
pub struct MessageError {
    pub method: String,
    #[source]
    pub source: prost::DecodeError,
}

/// Counters a source can report (and the replay benchmark prints).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NormaliseStats {
    pub messages: u64,
    pub duplicates: u64,
    /// Messages whose payload does not decode, and whole frames or fetch results that do not
    /// (the pipeline reports those through [`Normaliser::count_undecodable`]).
    pub undecodable: u64,
}

pub struct Normaliser {
    source: Source,
    room_id: Option<String>,
    dedupe: Dedupe,
    combos: ComboTracker,
    combo_timeout: Duration,
    stats: NormaliseStats,
    /// The last room id seen and its text: every message of a stream names the same room.
    room_text: (i64, String),
}

impl Normaliser {
    pub fn new(source: Source, combo_timeout: Duration) -> Normaliser {
        Normaliser {
            source,
            room_id: None,
            dedupe: Dedupe::default(),
            combos: ComboTracker::new(combo_timeout),
            combo_timeout,
            stats: NormaliseStats::default(),
            room_text: (0, String::new()),
        }
    }

    fn room_text(&mut self, room: i64) -> String {
        if self.room_text.0 != room {
            self.room_text = (room, int_text(room));
        }
        self.room_text.1.clone()
    }

    /// Forgets seen msg_ids and open combos (a replay starting over). Counters are kept.
    pub fn reset(&mut self) {
        self.dedupe = Dedupe::default();
        self.combos = ComboTracker::new(self.combo_timeout);
    }

    /// The room events belong to when a message does not say.
    pub fn set_room_id(&mut self, room_id: Option<String>) {
        self.room_id = room_id;
    }

    pub fn source(&self) -> Source {
        self.source
    }

    pub fn stats(&self) -> NormaliseStats {
        self.stats
    }

    /// Counts input skipped before it reached the normaliser (a frame that does not decode).
    pub fn count_undecodable(&mut self) {
        self.stats.undecodable = self.stats.undecodable.saturating_add(1);
    }

    /// When the next open combo times out.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.combos.next_deadline()
    }

    /// Ends combos whose timeout has passed.
    pub fn expire(&mut self, now: Instant, out: &mut Vec<Event>) {
        self.combos.expire(now, out);
    }

    /// Normalises every message of a fetch result. Messages that fail are returned as errors
    /// after the others were processed.
    pub fn fetch_result(
        &mut self,
        result: &proto::ProtoMessageFetchResult,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> Vec<MessageError> {
        let mut errors = Vec::new();
        for msg in &result.messages {
            if let Err(e) = self.message(msg, now, out) {
                errors.push(e);
            }
        }
        errors
    }

    /// Normalises one message.
    pub fn message(
        &mut self,
        msg: &proto::BaseProtoMessage,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        self.stats.messages += 1;
        let result = self.decode(msg, now, out);
        if result.is_err() {
            self.stats.undecodable += 1;
        }
        result
    }

    fn decode(
        &mut self,
        msg: &proto::BaseProtoMessage,
        now: Instant,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        let bytes = msg.payload.as_ref();
        let err = |source| MessageError {
            method: msg.method.clone(),
            source,
        };
        // `default` + `merge` is what `decode` does, but builds the message in place: webcast
        // messages are up to ~2 KiB of inline fields, and `decode` returning one through a
        // `Result` copied it twice per message.
        macro_rules! decode {
            ($ty:ty) => {{
                let mut m = <$ty>::default();
                m.merge(bytes).map_err(err)?;
                m
            }};
        }
        match msg.method.as_str() {
            "WebcastChatMessage" => {
                let m = decode!(proto::WebcastChatMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    out.push(env.event(EventKind::Comment { text: m.content }, user(m.user)));
                }
            }
            "WebcastEmoteChatMessage" => {
                let m = decode!(proto::WebcastEmoteChatMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let emote_ids = m.emote_list.into_iter().map(|e| e.emote_id).collect();
                    out.push(env.event(EventKind::Emote { emote_ids }, user(m.user)));
                }
            }
            "WebcastSocialMessage" => {
                let m = decode!(proto::WebcastSocialMessage);
                let key = display_key(m.common.as_ref());
                let kind = if key.contains("follow") {
                    EventKind::Follow
                } else if key.contains("share") {
                    EventKind::Share
                } else {
                    return self.pass_through(msg, m.common.as_ref(), out);
                };
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    out.push(env.event(kind, user(m.user)));
                }
            }
            "WebcastLikeMessage" => {
                let m = decode!(proto::WebcastLikeMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let kind = EventKind::Like {
                        count: m.count.max(0) as u64,
                        total: m.total.max(0) as u64,
                    };
                    out.push(env.event(kind, user(m.user)));
                }
            }
            "WebcastMemberMessage" => {
                let m = decode!(proto::WebcastMemberMessage);
                // Action 1 is "joined" in every published schema; other values disagree
                // between schema versions, so they pass through undecided.
                if m.action > 1 {
                    return self.pass_through(msg, m.common.as_ref(), out);
                }
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let kind = EventKind::Join {
                        member_count: m.member_count.max(0) as u64,
                    };
                    out.push(env.event(kind, user(m.user)));
                }
            }
            "WebcastRoomUserSeqMessage" => {
                let m = decode!(proto::WebcastRoomUserSeqMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let kind = EventKind::Viewers {
                        viewers: m.total.max(0) as u64,
                        total_viewers: m.total_user.max(0) as u64,
                    };
                    out.push(env.event(kind, None));
                }
            }
            "WebcastControlMessage" => {
                let m = decode!(proto::WebcastControlMessage);
                let kind = match m.action {
                    1 => EventKind::LivePaused,
                    2 => EventKind::LiveResumed,
                    3 | 4 => EventKind::LiveEnded,
                    _ => return self.pass_through(msg, m.common.as_ref(), out),
                };
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    out.push(env.event(kind, None));
                }
            }
            "WebcastGiftMessage" => {
                let m = decode!(proto::WebcastGiftMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let gift = gift_info(m.gift, m.gift_id);
                    let gift_msg = GiftMessage {
                        id: env.id,
                        ts: env.ts,
                        source: self.source,
                        room_id: env.room_id,
                        user: user(m.user),
                        gift,
                        group_id: m.group_id,
                        repeat_count: m.repeat_count.max(0) as u64,
                        repeat_end: m.repeat_end == 1,
                    };
                    self.combos.observe(gift_msg, now, out);
                }
            }
            "WebcastBarrageMessage" => {
                let m = decode!(proto::WebcastBarrageMessage);
                let keys = [m.content.as_ref(), m.common_barrage_content.as_ref()];
                let super_fan = keys
                    .iter()
                    .flatten()
                    .any(|t| t.key.to_ascii_lowercase().contains("ttlive_superfan"));
                if !super_fan {
                    return self.pass_through(msg, m.common.as_ref(), out);
                }
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    out.push(env.event(EventKind::SuperFan, user(m.user)));
                }
            }
            "WebcastSubNotifyMessage" => {
                let m = decode!(proto::WebcastSubNotifyMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let months = (m.sub_month > 0).then_some(m.sub_month as u64);
                    out.push(env.event(EventKind::Subscribe { months }, user(m.user)));
                }
            }
            "WebcastLinkMicBattle" => {
                let m = decode!(proto::WebcastLinkMicBattle);
                let phase = match m.action {
                    // 5 finish, 6 cut short.
                    5 | 6 => BattlePhase::End,
                    _ if !m.battle_result.is_empty() => BattlePhase::End,
                    // 4 open; 0 when TikTok leaves the action out.
                    0 | 4 => BattlePhase::Start,
                    // Invite, reject, cancel, accept: negotiation, not yet a battle.
                    _ => return self.pass_through(msg, m.common.as_ref(), out),
                };
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let teams = battle_teams(&m);
                    let kind = EventKind::Battle {
                        phase,
                        battle_id: m.battle_id.to_string(),
                        teams,
                    };
                    out.push(env.event(kind, None));
                }
            }
            "WebcastLinkMicArmies" => {
                let m = decode!(proto::WebcastLinkMicArmies);
                let phase = if m.trigger_reason == 2 {
                    BattlePhase::End
                } else {
                    BattlePhase::Score
                };
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let teams = m
                        .armies
                        .iter()
                        .map(|(host_id, armies)| BattleTeam {
                            host: User {
                                id: host_id.to_string(),
                                ..User::default()
                            },
                            score: armies.hostscore.max(0) as u64,
                        })
                        .collect();
                    let kind = EventKind::Battle {
                        phase,
                        battle_id: m.battle_id.to_string(),
                        teams,
                    };
                    out.push(env.event(kind, None));
                }
            }
            "WebcastEnvelopeMessage" => {
                let m = decode!(proto::WebcastEnvelopeMessage);
                // display 2 hides a chest that was already announced.
                if m.display == 2 {
                    return self.pass_through(msg, m.common.as_ref(), out);
                }
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let info = m.envelope_info.unwrap_or_default();
                    let sender = (!info.send_user_id.is_empty() || !info.send_user_name.is_empty())
                        .then(|| User {
                            id: info.send_user_id.clone(),
                            unique_id: String::new(),
                            nickname: info.send_user_name.clone(),
                            avatar_url: image_url(info.send_user_avatar.as_ref()),
                        });
                    let kind = EventKind::Envelope {
                        diamonds: info.diamond_count.max(0) as u64,
                        people: info.people_count.max(0) as u64,
                    };
                    out.push(env.event(kind, sender));
                }
            }
            "WebcastQuestionNewMessage" => {
                let m = decode!(proto::WebcastQuestionNewMessage);
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let q = m.data.unwrap_or_default();
                    out.push(env.event(EventKind::Question { text: q.content }, user(q.user)));
                }
            }
            "WebcastRoomPinMessage" => {
                let m = decode!(proto::WebcastRoomPinMessage);
                // 2 unpins; a pinned gift or like (no chat message) has no text to show.
                if m.action == 2 || m.chat_message.is_none() {
                    return self.pass_through(msg, m.common.as_ref(), out);
                }
                if let Some(env) = self.envelope(msg, m.common.as_ref()) {
                    let chat = m.chat_message.unwrap_or_default();
                    let kind = EventKind::Pin { text: chat.content };
                    out.push(env.event(kind, user(chat.user)));
                }
            }
            _ => return self.pass_through(msg, None, out),
        }
        Ok(())
    }

    /// A message without a rule of its own: `webcast` with all fields when the schema knows the
    /// method, `unknown` otherwise.
    fn pass_through(
        &mut self,
        msg: &proto::BaseProtoMessage,
        common: Option<&proto::CommonMessageData>,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        let descriptor = descriptor_pool().get_message_by_name(&format!("webcast.{}", msg.method));
        let kind = match descriptor {
            Some(desc) => {
                let dynamic =
                    DynamicMessage::decode(desc, msg.payload.as_ref()).map_err(|source| {
                        MessageError {
                            method: msg.method.clone(),
                            source,
                        }
                    })?;
                // snake_case field names like the rest of the event JSON; 64-bit integers as
                // strings (ids exceed 2^53); default values left out.
                let options = SerializeOptions::new()
                    .use_proto_field_name(true)
                    .stringify_64_bit_integers(true)
                    .skip_default_fields(true);
                let data = dynamic
                    .serialize_with_options(serde_json::value::Serializer, &options)
                    .unwrap_or(serde_json::Value::Null);
                EventKind::Webcast {
                    method: msg.method.clone(),
                    data,
                }
            }
            None => EventKind::Unknown {
                method: msg.method.clone(),
            },
        };
        // Every webcast message carries the common header at field 1, so its id and time can be
        // read even from a message this relay has no rule for.
        let common = match common {
            Some(c) => Some(c.clone()),
            None => CommonOnly::decode(msg.payload.as_ref())
                .ok()
                .and_then(|m| m.common),
        };
        if let Some(env) = self.envelope(msg, common.as_ref()) {
            out.push(env.event(kind, None));
        }
        Ok(())
    }

    /// The envelope for a message, or `None` when its id was seen before.
    fn envelope(
        &mut self,
        msg: &proto::BaseProtoMessage,
        common: Option<&proto::CommonMessageData>,
    ) -> Option<Envelope> {
        let common_id = common.map_or(0, |c| c.msg_id);
        let msg_id = if common_id != 0 {
            common_id
        } else {
            msg.msg_id
        };
        if !self.dedupe.first_time(msg_id) {
            self.stats.duplicates += 1;
            return None;
        }
        let id = if msg_id != 0 {
            int_text(msg_id)
        } else {
            local_id("msg")
        };
        let ts = common
            .map(|c| c.create_time)
            .filter(|&t| t > 0)
            .unwrap_or_else(now_ms);
        let room_id = match common.map_or(0, |c| c.room_id) {
            0 => self.room_id.clone(),
            r => Some(self.room_text(r)),
        };
        Some(Envelope {
            id,
            ts,
            source: self.source,
            room_id,
        })
    }
}

/// Field 1 of any webcast message.
#[derive(Clone, PartialEq, prost::Message)]
struct CommonOnly {
    #[prost(message, optional, tag = "1")]
    common: Option<proto::CommonMessageData>,
}

struct Envelope {
    id: String,
    ts: i64,
    source: Source,
    room_id: Option<String>,
}

impl Envelope {
    fn event(self, kind: EventKind, user: Option<User>) -> Event {
        Event {
            v: super::FORMAT_VERSION,
            kind,
            id: self.id,
            ts: self.ts,
            source: self.source,
            stream: String::new(),
            room_id: self.room_id,
            user,
        }
    }
}

/// The schema compiled into the binary, for descriptor-driven decoding.
pub fn descriptor_pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(crate::proto::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set built by build.rs decodes")
    })
}

fn display_key(common: Option<&proto::CommonMessageData>) -> String {
    common
        .and_then(|c| c.display_text.as_ref())
        .map(|t| t.key.to_ascii_lowercase())
        .unwrap_or_default()
}

/// A proto user as overlays see it. A message without a user (or with an all-empty one) has
/// no `user` field.
pub fn user(u: Option<proto::User>) -> Option<User> {
    let u = u?;
    let id = if !u.id_str.is_empty() {
        u.id_str
    } else if u.id != 0 {
        int_text(u.id)
    } else {
        String::new()
    };
    if id.is_empty() && u.display_id.is_empty() && u.nickname.is_empty() {
        return None;
    }
    let avatar_url = take_image_url(u.avatar_thumb)
        .or_else(|| take_image_url(u.avatar_medium))
        .or_else(|| take_image_url(u.avatar_large));
    Some(User {
        id,
        unique_id: u.display_id,
        nickname: u.nickname,
        avatar_url,
    })
}

fn image_url(image: Option<&proto::ImageModel>) -> Option<String> {
    image?.url_list.iter().find(|u| !u.is_empty()).cloned()
}

/// Like [`image_url`], but moves the URL out of a message that is dropped afterwards.
fn take_image_url(image: Option<proto::ImageModel>) -> Option<String> {
    image?.url_list.into_iter().find(|u| !u.is_empty())
}

/// Decimal text of a 64-bit id; itoa, because `to_string` goes through the formatting
/// machinery and this runs for most messages.
fn int_text(n: i64) -> String {
    itoa::Buffer::new().format(n).to_owned()
}

fn gift_info(gift: Option<proto::Gift>, gift_id: i64) -> GiftInfo {
    let Some(g) = gift else {
        return GiftInfo {
            id: gift_id.max(0) as u64,
            ..GiftInfo::default()
        };
    };
    let id = if g.id != 0 { g.id } else { gift_id };
    GiftInfo {
        id: id.max(0) as u64,
        diamonds: g.diamond_count.max(0) as u64,
        streakable: g.r#type == 1,
        image_url: take_image_url(g.image).or_else(|| take_image_url(g.icon)),
        name: g.name,
    }
}

fn battle_teams(m: &proto::WebcastLinkMicBattle) -> Vec<BattleTeam> {
    let mut teams: Vec<BattleTeam> = m
        .anchors_info
        .iter()
        .map(|w| {
            let info = w.value.as_ref().and_then(|v| v.user.as_ref());
            let host = User {
                id: w.key.to_string(),
                unique_id: info.map(|i| i.display_id.clone()).unwrap_or_default(),
                nickname: info.map(|i| i.nick_name.clone()).unwrap_or_default(),
                avatar_url: info.and_then(|i| image_url(i.avatar_thumb.as_ref())),
            };
            let score = m
                .battle_result
                .get(&w.key)
                .map(|r| r.score)
                .or_else(|| {
                    m.armies
                        .iter()
                        .find(|a| a.key == w.key)
                        .and_then(|a| a.value.as_ref())
                        .map(|a| a.hostscore)
                })
                .map(|s| s.max(0) as u64)
                .unwrap_or(0);
            BattleTeam { host, score }
        })
        .collect();
    if teams.is_empty() {
        teams = m
            .battle_result
            .iter()
            .map(|(id, r)| BattleTeam {
                host: User {
                    id: id.to_string(),
                    ..User::default()
                },
                score: r.score.max(0) as u64,
            })
            .collect();
    }
    teams
}

#[cfg(test)]
mod tests {
    use super::*;
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
    fn super_fans_are_read_from_the_text_key_of_either_barrage_field() {
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
        for m in [
            barrage(Some("ttlive_superFan_x"), None),
            barrage(None, Some("ttlive_superfan_commentNotif_superFanJoined")),
        ] {
            assert_eq!(
                run(base_message("WebcastBarrageMessage", 1, &m))[0].type_name(),
                "super_fan"
            );
        }
        let vip = barrage(Some("ttlive_vip_entrance"), None);
        assert_eq!(
            run(base_message("WebcastBarrageMessage", 1, &vip))[0].type_name(),
            "webcast"
        );
    }

    #[test]
    fn webcast_data_uses_proto_field_names_and_string_ids() {
        let m = proto::WebcastImDeleteMessage {
            common: common(5),
            delete_msg_ids: vec![7_400_000_000_000_000_001],
            delete_user_ids: vec![],
        };
        let out = run(base_message("WebcastImDeleteMessage", 5, &m));
        let json: serde_json::Value = serde_json::from_str(&out[0].to_json()).unwrap();
        assert_eq!(json["method"], "WebcastImDeleteMessage");
        assert_eq!(json["data"]["delete_msg_ids"][0], "7400000000000000001");
        assert_eq!(json["data"]["common"]["msg_id"], "5");
        assert!(
            json["data"].get("delete_user_ids").is_none(),
            "defaults left out"
        );
    }
}
