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
//!
//! This file owns the normaliser's state, the dispatch by method and the pass-through; the
//! rules live by concern beside it: `viewers.rs` (what viewers do: chat, follows, likes, joins,
//! super fans, questions, pins, moderation), `gifts.rs` (gifts and treasure chests), `room.rs`
//! (viewer counts, stream state, system text, ranks, goals, polls), `battle.rs` (link-mic
//! battles, their item cards and tasks); `convert.rs` turns proto users, images, gifts and
//! display-text templates into their event form.

use std::sync::OnceLock;
use std::time::Duration;

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage, SerializeOptions};
use tokio::time::Instant;

use super::combo::ComboTracker;
use super::dedupe::Dedupe;
use super::{Event, EventKind, Source, User, local_id, now_ms};
use crate::proto;

/// Decodes `$msg`'s payload as `$ty`, or returns the [`MessageError`] from the calling rule.
/// `default` + `merge` is what `decode` does, but builds the message in place: webcast messages
/// are up to ~2 KiB of inline fields, and `decode` returning one through a `Result` copied it
/// twice per message. Declared before the rule modules so they can use it.
macro_rules! decode {
    ($msg:expr, $ty:ty) => {{
        let mut m = <$ty>::default();
        prost::Message::merge(&mut m, $msg.payload.as_ref()).map_err(|source| {
            $crate::events::normalise::MessageError {
                method: $msg.method.clone(),
                source,
            }
        })?;
        m
    }};
}

mod battle;
mod convert;
mod gifts;
mod room;
mod viewers;

use convert::int_text;
pub use convert::user;

/// Where the rules put the events a message becomes.
type Out<'a> = &'a mut Vec<Event>;

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
        match canonical_method(&msg.method).as_ref() {
            // viewers.rs
            "WebcastChatMessage" => self.chat(msg, out),
            "WebcastEmoteChatMessage" => self.emote(msg, out),
            "WebcastSocialMessage" => self.social(msg, out),
            "WebcastLikeMessage" => self.like(msg, out),
            "WebcastMemberMessage" => self.member(msg, out),
            "WebcastSubNotifyMessage" => self.subscribe(msg, out),
            "WebcastBarrageMessage" => self.barrage(msg, out),
            "WebcastQuestionNewMessage" => self.question(msg, out),
            "WebcastRoomPinMessage" => self.pin(msg, out),
            "WebcastImDeleteMessage" => self.im_delete(msg, out),
            // gifts.rs
            "WebcastGiftMessage" => self.gift(msg, now, out),
            "WebcastEnvelopeMessage" => self.treasure_chest(msg, out),
            // room.rs
            "WebcastRoomUserSeqMessage" => self.viewers(msg, out),
            "WebcastControlMessage" => self.control(msg, out),
            "WebcastRoomMessage" => self.room_message(msg, out),
            "WebcastSystemMessage" => self.system_text(msg, out),
            "WebcastNoticeMessage" => self.notice(msg, out),
            "WebcastMarqueeAnnouncementMessage" => self.marquee(msg, out),
            "WebcastRankUpdateMessage" => self.rank_update(msg, out),
            "WebcastRankTextMessage" => self.rank_text(msg, out),
            "WebcastHourlyRankRewardMessage" => self.hourly_rank_reward(msg, out),
            "WebcastGoalUpdateMessage" => self.goal(msg, out),
            "WebcastPollMessage" => self.poll(msg, out),
            // battle.rs
            "WebcastLinkMicBattle" => self.battle(msg, out),
            "WebcastLinkMicArmies" => self.armies(msg, out),
            "WebcastLinkmicBattleTaskMessage" => self.battle_task(msg, out),
            "WebcastLinkMicBattleItemCard" => self.battle_item_card(msg, out),
            _ => self.pass_through(msg, None, out),
        }
    }

    /// A message without a rule of its own: `webcast` with all fields when the schema knows the
    /// method, `unknown` otherwise.
    fn pass_through(
        &mut self,
        msg: &proto::BaseProtoMessage,
        common: Option<&proto::CommonMessageData>,
        out: &mut Vec<Event>,
    ) -> Result<(), MessageError> {
        let method = canonical_method(&msg.method);
        let descriptor = descriptor_pool().get_message_by_name(&format!("webcast.{method}"));
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
                    method: method.into_owned(),
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

#[derive(Clone)]
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
            // The pipeline stamps the stream of the feed the input came through.
            stream: String::new(),
            room_id: self.room_id,
            user,
        }
    }
}

/// The method name a message is handled as. TikTok sends some methods without the `Webcast`
/// prefix the schemas give them (`RoomMessage` for `WebcastRoomMessage`); such a name is read as
/// the prefixed one when the schema knows that and not the bare one.
fn canonical_method(method: &str) -> std::borrow::Cow<'_, str> {
    if method.starts_with("Webcast") {
        return method.into();
    }
    let pool = descriptor_pool();
    let prefixed = format!("Webcast{method}");
    if pool
        .get_message_by_name(&format!("webcast.{method}"))
        .is_none()
        && pool
            .get_message_by_name(&format!("webcast.{prefixed}"))
            .is_some()
    {
        prefixed.into()
    } else {
        method.into()
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

#[cfg(test)]
mod tests;
