//! The parts of the event kinds that the full webcast schema brought (issue 10): goal
//! sub-goals, poll options, top viewers, battle item cards and tasks.
//!
//! They live beside [`EventKind`](super::EventKind) rather than in it so the kinds' declaration
//! stays one screen; every field is part of the public event JSON documented in the README's
//! event reference.

use serde::{Deserialize, Serialize};

use super::{GiftInfo, User};

/// One part of a LIVE goal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SubGoal {
    /// What is counted: `gift`, `like`, `follow`, `share`, `subscribe`, or `other`.
    #[serde(default)]
    pub kind: String,
    #[serde(default)]
    pub progress: u64,
    #[serde(default)]
    pub target: u64,
    /// The gift counted, for gift goals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gift: Option<GiftInfo>,
}

/// Phase of a poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PollPhase {
    #[default]
    Start,
    Update,
    End,
}

impl PollPhase {
    pub fn as_str(self) -> &'static str {
        match self {
            PollPhase::Start => "start",
            PollPhase::Update => "update",
            PollPhase::End => "end",
        }
    }
}

/// One answer of a poll and its votes so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PollOption {
    #[serde(default)]
    pub text: String,
    #[serde(default)]
    pub votes: u64,
}

/// One place of the room's viewer ranking (the room user sequence's `ranks`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct TopViewer {
    #[serde(default)]
    pub rank: u64,
    /// Coins given in this LIVE.
    #[serde(default)]
    pub score: u64,
    #[serde(default)]
    pub user: User,
}

/// A battle power-up: an item card used or awarded (phase `item_card`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BattleCard {
    /// `critical_strike`, `smoke`, `extra_time`, `special_effect`, `potion`, `wave`, `top_2`,
    /// `top_3`, `vault_glove`, `award`, `obtain_guide`, `special_effect_notice` or `other`.
    #[serde(default)]
    pub kind: String,
    /// The host the card was used by or on, where TikTok says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_id: Option<String>,
    /// The text TikTok shows for it.
    #[serde(default)]
    pub text: String,
}

/// A battle task (phase `task`): started, progressing, settled, or its reward settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BattleTask {
    /// `start`, `progress`, `settle` or `reward`.
    #[serde(default)]
    pub stage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u64>,
    /// For `settle`: `succeeded`, `failed` or `both_succeeded`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
}
