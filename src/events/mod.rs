//! The one event type of the whole program, and the code that makes events.
//!
//! Every source (live TikTok, demo, replay, `/api/test`) produces [`Event`]s and every output
//! (websocket, recorder, stats, triggers) consumes them. The JSON form is the public contract of
//! DESIGN.md: an envelope (`v`, `type`, `id`, `ts`, `source`, `room_id`, `user`) plus the fields
//! of the event kind; 64-bit ids are strings. [`normalise`] turns decoded webcast messages into
//! events and owns the gift combo rules ([`combo`]) and message de-duplication ([`dedupe`]).

pub mod combo;
pub mod dedupe;
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
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub room_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<User>,
}

fn format_version() -> u8 {
    FORMAT_VERSION
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
        serde_json::to_string(self).expect("events always serialise")
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
