//! The one event type of the whole program, and the code that makes events.
//!
//! Every source (live TikTok, demo, replay, `/api/test`) produces [`Event`]s and every output
//! (websocket, recorder, stats, triggers) consumes them. The JSON form is the public contract of
//! DESIGN.md: an envelope (`v`, `type`, `id`, `ts`, `source`, `stream`, `room_id`, `user`) plus the fields
//! of the event kind; 64-bit ids are strings. [`normalise`] turns decoded webcast messages into
//! events and owns the gift combo rules ([`combo`]) and message de-duplication ([`dedupe`]).

pub mod combo;
pub mod dedupe;
mod json;
pub mod normalise;

use serde::{Deserialize, Serialize};

/// Version of the JSON event format, sent as `"v"` in every message.
pub const FORMAT_VERSION: u8 = 1;

/// Where an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    Tiktok,
    #[default]
    Demo,
    Replay,
    Test,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Tiktok => "tiktok",
            Source::Demo => "demo",
            Source::Replay => "replay",
            Source::Test => "test",
        }
    }
}

/// A viewer, as overlays see them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct User {
    /// TikTok's numeric user id, as a string because it exceeds 2^53.
    #[serde(default)]
    pub id: String,
    /// The @handle without the `@`.
    #[serde(default)]
    pub unique_id: String,
    /// Display name; may be empty, and is hostile text either way.
    #[serde(default)]
    pub nickname: String,
    #[serde(default)]
    pub avatar_url: Option<String>,
}

impl User {
    /// The name to show: the nickname, or the handle when the nickname is empty.
    pub fn display_name(&self) -> &str {
        if self.nickname.trim().is_empty() {
            &self.unique_id
        } else {
            &self.nickname
        }
    }
}

/// A gift as described by TikTok's gift catalogue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GiftInfo {
    #[serde(default)]
    pub id: u64,
    #[serde(default)]
    pub name: String,
    /// Diamonds (coins) per unit.
    #[serde(default)]
    pub diamonds: u64,
    #[serde(default)]
    pub image_url: Option<String>,
    /// Streakable gifts (TikTok `gift.type == 1`) arrive as combos.
    #[serde(default)]
    pub streakable: bool,
}

/// Why a combo ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EndReason {
    /// TikTok sent the streak's final message.
    RepeatEnd,
    /// No message for the combo within the combo timeout.
    Timeout,
}

/// Phase of a link-mic battle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BattlePhase {
    Start,
    Score,
    End,
}

/// One side of a battle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BattleTeam {
    pub host: User,
    pub score: u64,
}

/// What happened; serialised as `"type"` plus the kind's own fields.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The source is connected; the envelope's `room_id` names the room.
    Connected {
        #[serde(default)]
        unique_id: String,
    },
    Disconnected {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        will_reconnect: bool,
    },
    Comment {
        #[serde(default)]
        text: String,
    },
    Emote {
        #[serde(default)]
        emote_ids: Vec<String>,
    },
    Follow,
    Share,
    Join {
        #[serde(default)]
        member_count: u64,
    },
    Like {
        #[serde(default = "one")]
        count: u64,
        #[serde(default)]
        total: u64,
    },
    Viewers {
        #[serde(default)]
        viewers: u64,
        #[serde(default)]
        total_viewers: u64,
    },
    Gift {
        #[serde(default)]
        gift: GiftInfo,
        #[serde(default = "one")]
        count: u64,
        #[serde(default)]
        diamonds_total: u64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        combo_id: Option<String>,
    },
    Combo {
        #[serde(default)]
        gift: GiftInfo,
        #[serde(default)]
        combo_id: String,
        #[serde(default = "one")]
        count: u64,
        #[serde(default)]
        ended: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        end_reason: Option<EndReason>,
    },
    LivePaused,
    LiveResumed,
    LiveEnded,
    SuperFan,
    Subscribe {
        #[serde(default)]
        months: Option<u64>,
    },
    Battle {
        phase: BattlePhase,
        #[serde(default)]
        battle_id: String,
        #[serde(default)]
        teams: Vec<BattleTeam>,
    },
    Envelope {
        #[serde(default)]
        diamonds: u64,
        #[serde(default)]
        people: u64,
    },
    Question {
        #[serde(default)]
        text: String,
    },
    Pin {
        #[serde(default)]
        text: String,
    },
    /// Any other message the schema knows, every decoded field in `data`.
    Webcast {
        method: String,
        #[serde(default)]
        data: serde_json::Value,
    },
    /// A message whose method the schema does not know.
    Unknown {
        #[serde(default)]
        method: String,
    },
}

fn one() -> u64 {
    1
}

impl EventKind {
    /// The `type` string of this kind.
    pub fn type_name(&self) -> &'static str {
        match self {
            EventKind::Connected { .. } => "connected",
            EventKind::Disconnected { .. } => "disconnected",
            EventKind::Comment { .. } => "comment",
            EventKind::Emote { .. } => "emote",
            EventKind::Follow => "follow",
            EventKind::Share => "share",
            EventKind::Join { .. } => "join",
            EventKind::Like { .. } => "like",
            EventKind::Viewers { .. } => "viewers",
            EventKind::Gift { .. } => "gift",
            EventKind::Combo { .. } => "combo",
            EventKind::LivePaused => "live_paused",
            EventKind::LiveResumed => "live_resumed",
            EventKind::LiveEnded => "live_ended",
            EventKind::SuperFan => "super_fan",
            EventKind::Subscribe { .. } => "subscribe",
            EventKind::Battle { .. } => "battle",
            EventKind::Envelope { .. } => "envelope",
            EventKind::Question { .. } => "question",
            EventKind::Pin { .. } => "pin",
            EventKind::Webcast { .. } => "webcast",
            EventKind::Unknown { .. } => "unknown",
        }
    }
}

/// Every event type name, in the order of the event reference.
pub const EVENT_TYPES: &[&str] = &[
    "connected",
    "disconnected",
    "comment",
    "emote",
    "follow",
    "share",
    "join",
    "like",
    "viewers",
    "gift",
    "combo",
    "live_paused",
    "live_resumed",
    "live_ended",
    "super_fan",
    "subscribe",
    "battle",
    "envelope",
    "question",
    "pin",
    "webcast",
    "unknown",
];

/// One event with its envelope.
///
/// Serialised by hand (below) to the JSON the derived form with `#[serde(flatten)]` gives:
/// flatten buffers every field into an intermediate map first, which made JSON the most costly
/// step of the pipeline. A test checks both forms agree for every kind.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct Event {
    #[serde(default = "format_version")]
    pub v: u8,
    #[serde(flatten)]
    pub kind: EventKind,
    /// Unique; TikTok's `msg_id` where there is one.
    pub id: String,
    /// Milliseconds since the Unix epoch.
    pub ts: i64,
    pub source: Source,
    /// Which stream the event belongs to: the host's handle for live, the demo's name, the
    /// replay file's stem (set by the pipeline from the source that fed it).
    #[serde(default)]
    pub stream: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

fn format_version() -> u8 {
    FORMAT_VERSION
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut m = s.serialize_map(None)?;
        m.serialize_entry("v", &self.v)?;
        m.serialize_entry("type", self.kind.type_name())?;
        match &self.kind {
            EventKind::Connected { unique_id } => m.serialize_entry("unique_id", unique_id)?,
            EventKind::Disconnected {
                reason,
                will_reconnect,
            } => {
                m.serialize_entry("reason", reason)?;
                m.serialize_entry("will_reconnect", will_reconnect)?;
            }
            EventKind::Comment { text }
            | EventKind::Question { text }
            | EventKind::Pin { text } => m.serialize_entry("text", text)?,
            EventKind::Emote { emote_ids } => m.serialize_entry("emote_ids", emote_ids)?,
            EventKind::Follow
            | EventKind::Share
            | EventKind::LivePaused
            | EventKind::LiveResumed
            | EventKind::LiveEnded
            | EventKind::SuperFan => {}
            EventKind::Join { member_count } => m.serialize_entry("member_count", member_count)?,
            EventKind::Like { count, total } => {
                m.serialize_entry("count", count)?;
                m.serialize_entry("total", total)?;
            }
            EventKind::Viewers {
                viewers,
                total_viewers,
            } => {
                m.serialize_entry("viewers", viewers)?;
                m.serialize_entry("total_viewers", total_viewers)?;
            }
            EventKind::Gift {
                gift,
                count,
                diamonds_total,
                combo_id,
            } => {
                m.serialize_entry("gift", gift)?;
                m.serialize_entry("count", count)?;
                m.serialize_entry("diamonds_total", diamonds_total)?;
                if let Some(c) = combo_id {
                    m.serialize_entry("combo_id", c)?;
                }
            }
            EventKind::Combo {
                gift,
                combo_id,
                count,
                ended,
                end_reason,
            } => {
                m.serialize_entry("gift", gift)?;
                m.serialize_entry("combo_id", combo_id)?;
                m.serialize_entry("count", count)?;
                m.serialize_entry("ended", ended)?;
                if let Some(r) = end_reason {
                    m.serialize_entry("end_reason", r)?;
                }
            }
            EventKind::Subscribe { months } => m.serialize_entry("months", months)?,
            EventKind::Battle {
                phase,
                battle_id,
                teams,
            } => {
                m.serialize_entry("phase", phase)?;
                m.serialize_entry("battle_id", battle_id)?;
                m.serialize_entry("teams", teams)?;
            }
            EventKind::Envelope { diamonds, people } => {
                m.serialize_entry("diamonds", diamonds)?;
                m.serialize_entry("people", people)?;
            }
            EventKind::Webcast { method, data } => {
                m.serialize_entry("method", method)?;
                m.serialize_entry("data", data)?;
            }
            EventKind::Unknown { method } => m.serialize_entry("method", method)?,
        }
        m.serialize_entry("id", &self.id)?;
        m.serialize_entry("ts", &self.ts)?;
        m.serialize_entry("source", &self.source)?;
        m.serialize_entry("stream", &self.stream)?;
        if let Some(room) = &self.room_id {
            m.serialize_entry("room_id", room)?;
        }
        if let Some(user) = &self.user {
            m.serialize_entry("user", user)?;
        }
        m.end()
    }
}

impl Event {
    /// A new event stamped now, with no room and no user.
    pub fn new(kind: EventKind, id: impl Into<String>, source: Source) -> Event {
        Event {
            v: FORMAT_VERSION,
            kind,
            id: id.into(),
            ts: now_ms(),
            source,
            stream: String::new(),
            room_id: None,
            user: None,
        }
    }

    pub fn with_user(mut self, user: Option<User>) -> Event {
        self.user = user;
        self
    }

    pub fn type_name(&self) -> &'static str {
        self.kind.type_name()
    }

    /// The JSON text sent to overlays.
    pub fn to_json(&self) -> String {
        // Most events fit, so the buffer is not regrown on the way.
        let mut buf = Vec::with_capacity(512);
        json::write_event(&mut buf, self);
        // Only whole `&str`s and ASCII go in, so this cannot fail; checking costs a pass over
        // the bytes, the price of keeping `unsafe` out.
        String::from_utf8(buf).expect("the JSON writer writes UTF-8")
    }
}

/// Milliseconds since the Unix epoch, by the wall clock.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// A process-unique id for events that have no TikTok `msg_id` (lifecycle, test events).
pub fn local_id(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{:x}-{n}", now_ms())
}

#[cfg(test)]
mod serialise_tests {
    use super::*;

    /// The derived form the hand-written `Serialize` must reproduce.
    #[derive(Serialize)]
    struct Derived<'a> {
        v: u8,
        #[serde(flatten)]
        kind: &'a EventKind,
        id: &'a str,
        ts: i64,
        source: Source,
        stream: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        room_id: &'a Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        user: &'a Option<User>,
    }

    #[test]
    fn hand_written_json_matches_the_derived_form_for_every_kind() {
        let gift = GiftInfo {
            id: 5655,
            name: "Rose \"<b>\"".into(),
            diamonds: 1,
            image_url: None,
            streakable: true,
        };
        let host = User {
            id: "1".into(),
            unique_id: "h".into(),
            nickname: "H".into(),
            avatar_url: Some("u".into()),
        };
        let kinds = vec![
            EventKind::Connected {
                unique_id: "x".into(),
            },
            EventKind::Disconnected {
                reason: "r\n".into(),
                will_reconnect: true,
            },
            EventKind::Comment {
                text: "hi 👋 \u{0}".into(),
            },
            EventKind::Emote {
                emote_ids: vec!["1".into(), "2".into()],
            },
            EventKind::Follow,
            EventKind::Share,
            EventKind::Join { member_count: 3 },
            EventKind::Like { count: 2, total: 9 },
            EventKind::Viewers {
                viewers: 1,
                total_viewers: 2,
            },
            EventKind::Gift {
                gift: gift.clone(),
                count: 3,
                diamonds_total: 3,
                combo_id: Some("c".into()),
            },
            EventKind::Gift {
                gift: gift.clone(),
                count: 1,
                diamonds_total: 1,
                combo_id: None,
            },
            EventKind::Combo {
                gift: gift.clone(),
                combo_id: "c".into(),
                count: 2,
                ended: false,
                end_reason: None,
            },
            EventKind::Combo {
                gift,
                combo_id: "c".into(),
                count: 2,
                ended: true,
                end_reason: Some(EndReason::Timeout),
            },
            EventKind::LivePaused,
            EventKind::LiveResumed,
            EventKind::LiveEnded,
            EventKind::SuperFan,
            EventKind::Subscribe { months: Some(3) },
            EventKind::Subscribe { months: None },
            EventKind::Battle {
                phase: BattlePhase::Score,
                battle_id: "5".into(),
                teams: vec![BattleTeam {
                    host: host.clone(),
                    score: 7,
                }],
            },
            EventKind::Envelope {
                diamonds: 5,
                people: 6,
            },
            EventKind::Question { text: "q".into() },
            EventKind::Pin { text: "p".into() },
            EventKind::Webcast {
                method: "WebcastRoomMessage".into(),
                data: serde_json::json!({"a": [1, {"b": "c"}]}),
            },
            EventKind::Unknown { method: "M".into() },
        ];
        assert_eq!(
            kinds
                .iter()
                .map(|k| k.type_name())
                .collect::<std::collections::BTreeSet<_>>()
                .len(),
            EVENT_TYPES.len(),
            "every kind is covered"
        );
        for (i, kind) in kinds.into_iter().enumerate() {
            let mut e = Event::new(kind, format!("id{i}"), Source::Tiktok);
            e.stream = "ali\"ce".into();
            if i % 2 == 0 {
                e.room_id = Some("77".into());
                e.user = Some(host.clone());
            }
            let derived = serde_json::to_string(&Derived {
                v: e.v,
                kind: &e.kind,
                id: &e.id,
                ts: e.ts,
                source: e.source,
                stream: &e.stream,
                room_id: &e.room_id,
                user: &e.user,
            })
            .unwrap();
            assert_eq!(e.to_json(), derived);
            assert_eq!(e.to_json(), serde_json::to_string(&e).unwrap());
            let back: Event = serde_json::from_str(&e.to_json()).unwrap();
            assert_eq!(back, e);
        }
    }
}
