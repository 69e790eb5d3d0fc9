//! Named alert queues: one alert playing per queue, strictly in order, none lost.
//!
//! A page becomes a player of a queue (`/ws?queue=NAME` or `{"op":"play"}`); the websocket code
//! tells this module through [`ClientOp`]s, calling [`AlertQueues::client_op`] directly. The
//! head of a queue starts only when the queue has a player, is not paused and plays nothing; it goes to the queue's players as an `alert` message and ends
//! when a player answers `alert_done`, or after its `duration_ms` plus [`GRACE`] (a page that
//! crashed or never answers cannot stall the queue). While no page plays a queue its alerts
//! wait, up to `max_pending`; one more drops the oldest, with a log line. If the last player
//! leaves while an alert plays (OBS reloaded the page), that alert goes back to the front, so it
//! is shown rather than lost. Every change sends a `queue` message with the queue's state.
//!
//! State sits behind one mutex and every operation is a plain method, so the HTTP routes, the
//! websocket code, the trigger engine and the timer all see the same order of changes.
//! [`AlertQueues::run`] is the task that ends alerts whose time is up, on tokio time (tests
//! pause it). The queues send their `alert`, `alert_skip` and `queue` messages through the
//! [`Publisher`](crate::hub::Publisher) they are built with; the hub knows nothing of them.
//!
//! This file holds the alert protocol's types (alerts, controls, client ops, what is saved);
//! `queues.rs` holds the queues themselves.

mod queues;

pub use queues::AlertQueues;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::events::Event;
use crate::hub::{Audience, Outbound};

/// Extra time a page gets beyond `duration_ms` before the queue moves on without `alert_done`.
pub const GRACE: Duration = Duration::from_secs(1);
/// Played alerts kept for the history and replay.
pub const HISTORY: usize = 100;
/// Pending alerts per queue, whatever the config says (it refuses more; this holds for queues
/// built in code too).
pub const MAX_PENDING: usize = 100_000;

/// What a websocket client tells the alert queues.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOp {
    /// The client now plays this queue's alerts.
    Play { client: u64, queue: String },
    /// The client finished showing an alert.
    AlertDone { client: u64, alert_id: String },
    /// The client went away (it no longer plays anything).
    Left { client: u64 },
}

/// One alert, as players receive it and as it is saved.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    pub alert_id: String,
    pub queue: String,
    pub trigger: String,
    pub duration_ms: u64,
    pub event: Event,
    /// The trigger's rendered texts: title, subtitle, sound, image.
    pub vars: Value,
    pub created_ms: i64,
    /// The alert this one replays.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_of: Option<String>,
    /// How it ended (history only): done, timeout, skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

impl Alert {
    /// The `alert` message players receive.
    fn message(&self) -> Outbound {
        Outbound::relay(
            "alert",
            json!({
                "alert_id": self.alert_id,
                "queue": self.queue,
                "trigger": self.trigger,
                "stream": self.event.stream,
                "duration_ms": self.duration_ms,
                "event": self.event,
                "vars": self.vars,
                "replay_of": self.replay_of,
            }),
            Audience::QueuePlayers(self.queue.as_str().into()),
        )
    }

    /// A short form for queue states and the history list.
    pub fn summary(&self) -> Value {
        json!({
            "alert_id": self.alert_id,
            "queue": self.queue,
            "trigger": self.trigger,
            "stream": self.event.stream,
            "type": self.event.type_name(),
            "user": self.event.user.as_ref().map(|u| u.display_name().to_string()),
            "title": self.vars.get("title"),
            "subtitle": self.vars.get("subtitle"),
            "created_ms": self.created_ms,
            "outcome": self.outcome,
            "replay_of": self.replay_of,
        })
    }
}

/// Queue control requested over HTTP or the websocket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Control {
    Pause,
    Resume,
    /// End the playing alert now (or, if none plays, drop the next pending one).
    Skip,
    /// Drop every pending alert (the playing one finishes normally).
    Clear,
}

impl Control {
    pub fn parse(s: &str) -> Option<Control> {
        Some(match s {
            "pause" => Control::Pause,
            "resume" => Control::Resume,
            "skip" => Control::Skip,
            "clear" => Control::Clear,
            _ => return None,
        })
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ControlError {
    #[error("no alert queue named {name:?}; queues: {known}")]
    NoQueue { name: String, known: String },
    #[error(
        "no alert {0:?} is playing or in the history; only the last {HISTORY} played alerts can be replayed"
    )]
    NoAlert(String),
}

/// What is saved in the data dir and restored at start.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedAlerts {
    #[serde(default)]
    pub queues: BTreeMap<String, SavedQueue>,
    /// Played alerts, oldest first.
    #[serde(default)]
    pub history: Vec<Alert>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct SavedQueue {
    #[serde(default)]
    pub paused: bool,
    /// In play order; an alert that was playing when the relay stopped comes first.
    #[serde(default)]
    pub pending: Vec<Alert>,
}
