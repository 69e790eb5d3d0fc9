//! The one event type of the whole program, and the code that makes events.
//!
//! Every source (live TikTok, demo, replay, `/api/test`) produces [`Event`]s and every output
//! (websocket, recorder, stats, triggers) consumes them. The JSON form is the public contract of
//! DESIGN.md: an envelope (`v`, `type`, `id`, `ts`, `source`, `stream`, `room_id`, `user`) plus the fields
//! of the event kind; 64-bit ids are strings. [`normalise`] turns decoded webcast messages into
//! events and owns the gift combo rules ([`combo`]) and message de-duplication ([`dedupe`]).
//! [`details`] holds the nested parts of the kinds the full schema brought (goals, polls, top
//! viewers, battle item cards and tasks).
//!
//! Each kind of event is declared once, in the `event_kinds!` block below (the macro is in
//! `declare.rs`): its variant, `type` name, whether a viewer sends it, and its fields. The type
//! names list, [`EventKind::type_name`], the JSON shape (serde's derive) and what `/api/test`
//! fills in all come from there; `json.rs` is a faster writer of the same bytes.

#[macro_use]
mod declare;
pub mod combo;
pub mod dedupe;
pub mod details;
mod json;
pub mod normalise;
pub mod roles;

use serde::{Deserialize, Serialize};

pub use details::{BattleCard, BattleTask, PollOption, PollPhase, SubGoal, TopViewer};

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
    /// The avatar through the relay's image cache (`/media/…`, see [`crate::media`]); set for
    /// every `http(s)` `avatar_url`, so pages keep showing it after TikTok's link expires.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub avatar: Option<String>,
    /// Viewer roles ([`roles`]): each only where TikTok sent what it is read from, never
    /// guessed, so `None` means "not known" and is left out of the JSON.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_moderator: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_subscriber: Option<bool>,
    /// 0 does not follow the host, 1 follows, 2 friends (they follow each other).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub follow_role: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gifter_level: Option<u32>,
    /// Level in the host's fan team (fans club).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub team_level: Option<u32>,
    /// 1 for the room's top gifter, 2, 3 … for the next.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub top_gifter_rank: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub is_new_gifter: Option<bool>,
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
    /// The gift image through the relay's image cache (`/media/…`), like [`User::avatar`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
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
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BattlePhase {
    #[default]
    Start,
    Score,
    End,
    /// An item card was used or awarded (`card` says which).
    ItemCard,
    /// A battle task started, progressed or settled (`task` says how).
    Task,
}

/// One side of a battle.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BattleTeam {
    pub host: User,
    pub score: u64,
}

event_kinds! {
    /// What happened; serialised as `"type"` plus the kind's own fields.
    ///
    /// Each kind is declared once, here: its variant, its `type` name, whether a viewer sends it,
    /// and its fields (the JSON shape is serde's derive of them). Every field has a default, so a
    /// kind's sample is `{"type": name}` ([`EventKind::sample`]) and `/api/test` can fill the rest.
    /// Adding a kind is adding a variant here (plus the normaliser code that makes it).
    pub enum EventKind {
        /// The source is connected; the envelope's `room_id` names the room.
        Connected = "connected", from relay {
            #[serde(default)]
            unique_id: String,
        },
        Disconnected = "disconnected", from relay {
            #[serde(default)]
            reason: String,
            #[serde(default)]
            will_reconnect: bool,
        },
        Comment = "comment", from viewer {
            #[serde(default)]
            text: String,
        },
        Emote = "emote", from viewer {
            #[serde(default)]
            emote_ids: Vec<String>,
        },
        Follow = "follow", from viewer,
        Share = "share", from viewer,
        Join = "join", from viewer {
            #[serde(default)]
            member_count: u64,
        },
        Like = "like", from viewer {
            #[serde(default = "one")]
            count: u64,
            #[serde(default)]
            total: u64,
        },
        Viewers = "viewers", from room {
            #[serde(default)]
            viewers: u64,
            #[serde(default)]
            total_viewers: u64,
            /// The room's viewer ranking, best first (issue 10).
            #[serde(default)]
            top_viewers: Vec<TopViewer>,
        },
        Gift = "gift", from viewer {
            #[serde(default)]
            gift: GiftInfo,
            #[serde(default = "one")]
            count: u64,
            #[serde(default)]
            diamonds_total: u64,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            combo_id: Option<String>,
        },
        Combo = "combo", from viewer {
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
        LivePaused = "live_paused", from room,
        LiveResumed = "live_resumed", from room,
        LiveEnded = "live_ended", from room,
        SuperFan = "super_fan", from viewer,
        Subscribe = "subscribe", from viewer {
            #[serde(default)]
            months: Option<u64>,
        },
        Battle = "battle", from room {
            #[serde(default)]
            phase: BattlePhase,
            #[serde(default)]
            battle_id: String,
            #[serde(default)]
            teams: Vec<BattleTeam>,
            /// Phase `item_card` only (issue 10).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            card: Option<BattleCard>,
            /// Phase `task` only (issue 10).
            #[serde(default, skip_serializing_if = "Option::is_none")]
            task: Option<BattleTask>,
        },
        Envelope = "envelope", from viewer {
            #[serde(default)]
            diamonds: u64,
            #[serde(default)]
            people: u64,
            /// A Super Fan Box rather than an ordinary treasure chest (issue 10).
            #[serde(default)]
            super_fan_box: bool,
        },
        Question = "question", from viewer {
            #[serde(default)]
            text: String,
        },
        Pin = "pin", from viewer {
            #[serde(default)]
            text: String,
        },
        /// An existing super fan entered the LIVE (`super_fan` is a viewer *becoming* one).
        SuperFanJoin = "super_fan_join", from viewer,
        /// TikTok's own LIVE goal changed (GoalUpdate).
        Goal = "goal", from viewer {
            #[serde(default)]
            goal_id: String,
            #[serde(default)]
            description: String,
            #[serde(default)]
            sub_goals: Vec<SubGoal>,
            /// What the event's `user` added, where TikTok sends it.
            #[serde(default, skip_serializing_if = "Option::is_none")]
            contribution: Option<u64>,
        },
        Poll = "poll", from room {
            #[serde(default)]
            phase: PollPhase,
            #[serde(default)]
            poll_id: String,
            #[serde(default)]
            title: String,
            #[serde(default)]
            options: Vec<PollOption>,
        },
        /// A ranking change (RankUpdate, RankText, HourlyRankReward).
        Rank = "rank", from room {
            /// `update`, `text` or `reward`: which of the three messages.
            #[serde(default)]
            kind: String,
            /// The list: `hourly`, `weekly`, `daily`, ... (`rank_type_N` for a list without a name).
            #[serde(default)]
            list: String,
            #[serde(default, skip_serializing_if = "Option::is_none")]
            rank: Option<u64>,
            /// The text TikTok shows, rendered from its template.
            #[serde(default)]
            text: String,
        },
        /// The room's notices and welcome text (RoomMessage, SystemMessage, Notice,
        /// MarqueeAnnouncement).
        System = "system", from room {
            #[serde(default)]
            method: String,
            /// TikTok's display-text key, when the text came from a template.
            #[serde(default)]
            key: String,
            #[serde(default)]
            text: String,
        },
        /// A moderator or TikTok removed comments (ImDelete).
        CommentDeleted = "comment_deleted", from room {
            #[serde(default)]
            message_ids: Vec<String>,
            #[serde(default)]
            user_ids: Vec<String>,
        },
        /// Any other message the schema knows, every decoded field in `data`.
        Webcast = "webcast", from room {
            #[serde(default)]
            method: String,
            #[serde(default)]
            data: serde_json::Value,
        },
        /// A message whose method the schema does not know.
        Unknown = "unknown", from room {
            #[serde(default)]
            method: String,
        },
    }
}

fn one() -> u64 {
    1
}

impl EventKind {
    /// A kind of type `name` with every field at its default (the base `/api/test` fills in and
    /// tests go through); `None` for a name no kind has.
    pub fn sample(name: &str) -> Option<EventKind> {
        if !EVENT_TYPES.contains(&name) {
            return None;
        }
        serde_json::from_value(serde_json::json!({ "type": name })).ok()
    }
}

/// One event with its envelope: `v`, `type` and the kind's fields, `id`, `ts`, `source`,
/// `room_id`, `user`, in that order (serde's derive; [`Event::to_json`] writes the same bytes).
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

    /// The event's JSON: the bytes every output writes (`/ws`, `/api/events`, recordings,
    /// webhook bodies), the same as serde_json writes for the derived `Serialize`.
    pub fn to_json(&self) -> String {
        // Most events fit, so the buffer is not regrown on the way.
        let mut buf = Vec::with_capacity(512);
        json::write_event(&mut buf, self);
        // Only whole `&str`s, ASCII and serde_json's output go in, so this cannot fail; checking costs a pass over
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
mod serialise_tests;
