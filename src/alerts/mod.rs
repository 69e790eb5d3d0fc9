//! Named alert queues: one alert playing per queue, strictly in order, none lost.
//!
//! A page becomes a player of a queue (`/ws?queue=NAME` or `{"op":"play"}`); the hub tells this
//! module through [`ClientOp`]s. The head of a queue starts only when the queue has a player, is
//! not paused and plays nothing; it goes to the queue's players as an `alert` message and ends
//! when a player answers `alert_done`, or after its `duration_ms` plus [`GRACE`] (a page that
//! crashed or never answers cannot stall the queue). While no page plays a queue its alerts
//! wait, up to `max_pending`; one more drops the oldest, with a log line. If the last player
//! leaves while an alert plays (OBS reloaded the page), that alert goes back to the front, so it
//! is shown rather than lost. Every change sends a `queue` message with the queue's state.
//!
//! State sits behind one mutex and every operation is a plain method, so the HTTP routes, the
//! trigger engine and the timer all see the same order of changes. [`AlertQueues::run`] is the
//! task that applies client ops and ends alerts whose time is up, on tokio time (tests pause it).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::config::QueueConfig;
use crate::events::{Event, local_id, now_ms};
use crate::hub::{Audience, ClientOp, Hub, Outbound};

/// Extra time a page gets beyond `duration_ms` before the queue moves on without `alert_done`.
pub const GRACE: Duration = Duration::from_secs(1);
/// Played alerts kept for the history and replay.
pub const HISTORY: usize = 100;
/// Pending alerts per queue, whatever the config says (it refuses more; this holds for queues
/// built in code too).
pub const MAX_PENDING: usize = 100_000;
/// Pending alerts listed in a queue's state (the count is always exact).
const LISTED_PENDING: usize = 20;

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

struct Playing {
    alert: Alert,
    deadline: Instant,
}

struct Queue {
    settings: QueueConfig,
    pending: VecDeque<Alert>,
    playing: Option<Playing>,
    paused: bool,
    players: HashSet<u64>,
    dropped: u64,
    played: u64,
    /// Drops since the queue last had room, to log an overflow once and then in summaries.
    overflow_run: u64,
}

impl Queue {
    /// The most alerts that may wait: `max_pending`, within 1 and [`MAX_PENDING`].
    fn cap(&self) -> usize {
        self.settings.max_pending.clamp(1, MAX_PENDING)
    }

    fn new(settings: QueueConfig) -> Queue {
        Queue {
            settings,
            pending: VecDeque::new(),
            playing: None,
            paused: false,
            players: HashSet::new(),
            dropped: 0,
            played: 0,
            overflow_run: 0,
        }
    }
}

struct State {
    queues: BTreeMap<String, Queue>,
    history: VecDeque<Alert>,
}

/// The alert queues of one relay.
pub struct AlertQueues {
    state: Mutex<State>,
    hub: Weak<Hub>,
    /// Wakes the timer task when a new deadline exists.
    wake: Notify,
    /// Called after every change (the data dir saver marks itself dirty).
    on_change: Mutex<Option<Box<dyn Fn() + Send + Sync>>>,
}

impl AlertQueues {
    pub fn new(queues: &BTreeMap<String, QueueConfig>, hub: &Arc<Hub>) -> Arc<AlertQueues> {
        Arc::new(AlertQueues {
            state: Mutex::new(State {
                queues: queues
                    .iter()
                    .map(|(name, s)| (name.clone(), Queue::new(s.clone())))
                    .collect(),
                history: VecDeque::new(),
            }),
            hub: Arc::downgrade(hub),
            wake: Notify::new(),
            on_change: Mutex::new(None),
        })
    }

    /// Registers the callback run after every change.
    pub fn on_change(&self, f: impl Fn() + Send + Sync + 'static) {
        *self.on_change.lock().expect("on_change lock") = Some(Box::new(f));
    }

    fn changed(&self) {
        if let Some(f) = &*self.on_change.lock().expect("on_change lock") {
            f();
        }
    }

    fn send(&self, out: Outbound) {
        if let Some(hub) = self.hub.upgrade() {
            hub.send(out);
        }
    }

    /// Applies reloaded queue settings (config hot reload): new queues are added, existing
    /// ones take their new settings; a queue no longer in the config keeps what it holds until
    /// a restart (logged), so no alert is lost to an edit.
    pub fn reconfigure(&self, queues: &BTreeMap<String, QueueConfig>) {
        let mut st = self.state.lock().expect("alerts lock");
        for (name, settings) in queues {
            match st.queues.get_mut(name) {
                Some(q) => q.settings = settings.clone(),
                None => {
                    st.queues.insert(name.clone(), Queue::new(settings.clone()));
                }
            }
        }
        for name in st.queues.keys().filter(|n| !queues.contains_key(*n)) {
            tracing::info!(
                "queue {name:?} is no longer in the config; it stays until tikrelay restarts"
            );
        }
    }

    /// Restores saved queues; alerts of queues the config no longer has are dropped (logged).
    pub fn restore(&self, saved: SavedAlerts) {
        let mut st = self.state.lock().expect("alerts lock");
        let mut restored = 0;
        for (name, q) in saved.queues {
            match st.queues.get_mut(&name) {
                Some(queue) => {
                    queue.paused = q.paused;
                    restored += q.pending.len();
                    queue.pending.extend(q.pending);
                    while queue.pending.len() > queue.cap() {
                        queue.pending.pop_front();
                        queue.dropped += 1;
                    }
                }
                None if q.pending.is_empty() => {}
                None => tracing::warn!(
                    "{} saved alerts of queue {name:?} dropped: the config has no such queue any more",
                    q.pending.len()
                ),
            }
        }
        st.history = saved.history.into_iter().collect();
        while st.history.len() > HISTORY {
            st.history.pop_front();
        }
        if restored > 0 {
            tracing::info!("restored {restored} pending alerts from the data dir");
        }
    }

    /// What to save: pending alerts (a playing one first, as it was not confirmed) and history.
    pub fn saved(&self) -> SavedAlerts {
        let st = self.state.lock().expect("alerts lock");
        SavedAlerts {
            queues: st
                .queues
                .iter()
                .map(|(name, q)| {
                    let mut pending: Vec<Alert> = Vec::with_capacity(q.pending.len() + 1);
                    if let Some(p) = &q.playing {
                        pending.push(p.alert.clone());
                    }
                    pending.extend(q.pending.iter().cloned());
                    (
                        name.clone(),
                        SavedQueue {
                            paused: q.paused,
                            pending,
                        },
                    )
                })
                .collect(),
            history: st.history.iter().cloned().collect(),
        }
    }

    pub fn queue_names(&self) -> Vec<String> {
        self.state
            .lock()
            .expect("alerts lock")
            .queues
            .keys()
            .cloned()
            .collect()
    }

    /// Puts a new alert at the end of `queue`; returns its id, or `None` for an unknown queue.
    pub fn enqueue(
        &self,
        queue: &str,
        trigger: &str,
        duration_ms: Option<u64>,
        event: Event,
        vars: Value,
    ) -> Option<String> {
        let mut st = self.state.lock().expect("alerts lock");
        let q = st.queues.get_mut(queue)?;
        let alert = Alert {
            alert_id: local_id("alert"),
            queue: queue.to_string(),
            trigger: trigger.to_string(),
            duration_ms: duration_ms.unwrap_or(q.settings.default_duration_ms),
            event,
            vars,
            created_ms: now_ms(),
            replay_of: None,
            outcome: None,
        };
        let id = alert.alert_id.clone();
        if q.pending.len() >= q.cap() {
            if let Some(old) = q.pending.pop_front() {
                q.dropped += 1;
                q.overflow_run += 1;
                let n = q.overflow_run;
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(
                        queue,
                        dropped = old.alert_id,
                        dropped_in_a_row = n,
                        "alert queue full ({} waiting): dropped the oldest alert; is a page playing this queue? (/ws?queue={queue})",
                        q.cap()
                    );
                }
            }
        } else {
            q.overflow_run = 0;
        }
        q.pending.push_back(alert);
        self.advance(&mut st, queue);
        self.publish_queue(&st, queue);
        drop(st);
        self.changed();
        Some(id)
    }

    /// Applies a client op from the hub.
    pub fn client_op(&self, op: ClientOp) {
        let mut st = self.state.lock().expect("alerts lock");
        let mut touched = Vec::new();
        match op {
            ClientOp::Play { client, queue } => match st.queues.get_mut(&queue) {
                Some(q) => {
                    q.players.insert(client);
                    touched.push(queue);
                }
                None => {
                    let known = st.queues.keys().cloned().collect::<Vec<_>>().join(", ");
                    self.send(Outbound::relay(
                        "error",
                        json!({"message": format!("no alert queue named {queue:?}; queues: {known} (add [queues.{queue}] to the config)")}),
                        Audience::QueuePlayers(queue.as_str().into()),
                    ));
                }
            },
            ClientOp::AlertDone { alert_id, .. } => {
                let name = st.queues.iter().find_map(|(name, q)| {
                    q.playing
                        .as_ref()
                        .filter(|p| p.alert.alert_id == alert_id)
                        .map(|_| name.clone())
                });
                match name {
                    Some(name) => {
                        Self::finish(&mut st, &name, "done");
                        touched.push(name);
                    }
                    None => {
                        tracing::debug!(alert_id, "alert_done for an alert that is not playing")
                    }
                }
            }
            ClientOp::Left { client } => {
                for (name, q) in st.queues.iter_mut() {
                    if q.players.remove(&client) {
                        if q.players.is_empty()
                            && let Some(p) = q.playing.take()
                        {
                            tracing::info!(
                                queue = name,
                                alert_id = p.alert.alert_id,
                                "the last player left while an alert played; it will play again first"
                            );
                            q.pending.push_front(p.alert);
                        }
                        touched.push(name.clone());
                    }
                }
            }
        }
        for name in &touched {
            self.advance(&mut st, name);
            self.publish_queue(&st, name);
        }
        drop(st);
        if !touched.is_empty() {
            self.changed();
        }
    }

    /// Pause, resume, skip or clear a queue; returns the queue's state after the change.
    pub fn control(&self, queue: &str, control: Control) -> Result<Value, ControlError> {
        let mut st = self.state.lock().expect("alerts lock");
        let Some(q) = st.queues.get_mut(queue) else {
            return Err(ControlError::NoQueue {
                name: queue.to_string(),
                known: st.queues.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        match control {
            Control::Pause => q.paused = true,
            Control::Resume => q.paused = false,
            Control::Clear => {
                let n = q.pending.len();
                q.pending.clear();
                tracing::info!(queue, "cleared {n} pending alerts");
            }
            Control::Skip => {
                if let Some(p) = &q.playing {
                    self.send(Outbound::relay(
                        "alert_skip",
                        json!({"alert_id": p.alert.alert_id, "queue": queue}),
                        Audience::QueuePlayers(queue.into()),
                    ));
                    Self::finish(&mut st, queue, "skipped");
                } else if let Some(mut next) = q.pending.pop_front() {
                    next.outcome = Some("skipped".into());
                    push_history(&mut st.history, next);
                }
            }
        }
        self.advance(&mut st, queue);
        self.publish_queue(&st, queue);
        let state = queue_state(&st.queues[queue], queue, Instant::now());
        drop(st);
        self.changed();
        Ok(state)
    }

    /// Puts a past alert back on its queue, to play next; returns the new alert's id.
    pub fn replay(&self, alert_id: &str) -> Result<String, ControlError> {
        let mut st = self.state.lock().expect("alerts lock");
        // The one playing counts too: the dashboard lists an alert as soon as it starts.
        let playing = st
            .queues
            .values()
            .filter_map(|q| q.playing.as_ref().map(|p| &p.alert));
        let Some(old) = st
            .history
            .iter()
            .chain(playing)
            .find(|a| a.alert_id == alert_id)
            .cloned()
        else {
            return Err(ControlError::NoAlert(alert_id.to_string()));
        };
        let queue = old.queue.clone();
        let Some(q) = st.queues.get_mut(&queue) else {
            return Err(ControlError::NoQueue {
                name: queue,
                known: st.queues.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        };
        let alert = Alert {
            alert_id: local_id("alert"),
            replay_of: Some(old.replay_of.clone().unwrap_or(old.alert_id.clone())),
            outcome: None,
            created_ms: now_ms(),
            ..old
        };
        let id = alert.alert_id.clone();
        q.pending.push_front(alert);
        // A replay goes first; on a full queue the newest waiting alert makes room for it.
        if q.pending.len() > q.cap()
            && let Some(newest) = q.pending.pop_back()
        {
            q.dropped += 1;
            tracing::warn!(
                queue,
                dropped = newest.alert_id,
                "alert queue full ({} waiting): the replayed alert took the place of the newest one",
                q.cap()
            );
        }
        self.advance(&mut st, &queue);
        self.publish_queue(&st, &queue);
        drop(st);
        self.changed();
        Ok(id)
    }

    /// Ends every alert whose time is up by `now`.
    pub fn expire(&self, now: Instant) {
        let mut st = self.state.lock().expect("alerts lock");
        let due: Vec<String> = st
            .queues
            .iter()
            .filter(|(_, q)| q.playing.as_ref().is_some_and(|p| p.deadline <= now))
            .map(|(n, _)| n.clone())
            .collect();
        for name in &due {
            if let Some(p) = &st.queues[name].playing {
                tracing::debug!(
                    queue = name,
                    alert_id = p.alert.alert_id,
                    "no alert_done within duration + grace; moving on"
                );
            }
            Self::finish(&mut st, name, "timeout");
            self.advance(&mut st, name);
            self.publish_queue(&st, name);
        }
        drop(st);
        if !due.is_empty() {
            self.changed();
        }
    }

    /// When the next playing alert runs out of time.
    pub fn next_deadline(&self) -> Option<Instant> {
        let st = self.state.lock().expect("alerts lock");
        st.queues
            .values()
            .filter_map(|q| q.playing.as_ref().map(|p| p.deadline))
            .min()
    }

    /// Every queue's state, by name (the `queues` part of the snapshot).
    pub fn snapshot(&self) -> Value {
        let st = self.state.lock().expect("alerts lock");
        let now = Instant::now();
        let map: serde_json::Map<String, Value> = st
            .queues
            .iter()
            .map(|(name, q)| (name.clone(), queue_state(q, name, now)))
            .collect();
        Value::Object(map)
    }

    /// Played alerts, newest first.
    pub fn history(&self) -> Vec<Value> {
        let st = self.state.lock().expect("alerts lock");
        st.history.iter().rev().map(Alert::summary).collect()
    }

    /// Applies client ops and ends timed-out alerts until the op channel closes.
    pub async fn run(self: Arc<Self>, mut ops: mpsc::UnboundedReceiver<ClientOp>) {
        loop {
            let deadline = self.next_deadline();
            tokio::select! {
                op = ops.recv() => match op {
                    Some(op) => self.client_op(op),
                    None => break,
                },
                _ = self.wake.notified() => {}
                _ = sleep_until(deadline) => self.expire(Instant::now()),
            }
        }
    }

    /// Moves the playing alert of `queue` to the history.
    fn finish(st: &mut State, queue: &str, outcome: &str) {
        let Some(q) = st.queues.get_mut(queue) else {
            return;
        };
        if let Some(p) = q.playing.take() {
            q.played += 1;
            let mut alert = p.alert;
            alert.outcome = Some(outcome.to_string());
            push_history(&mut st.history, alert);
        }
    }

    /// Starts the head of `queue` if it may start.
    fn advance(&self, st: &mut State, queue: &str) {
        let Some(q) = st.queues.get_mut(queue) else {
            return;
        };
        if q.playing.is_some() || q.paused || q.players.is_empty() {
            return;
        }
        let Some(alert) = q.pending.pop_front() else {
            return;
        };
        let deadline = Instant::now() + Duration::from_millis(alert.duration_ms) + GRACE;
        self.send(alert.message());
        q.playing = Some(Playing { alert, deadline });
        self.wake.notify_one();
    }

    fn publish_queue(&self, st: &State, queue: &str) {
        if let Some(q) = st.queues.get(queue) {
            self.send(Outbound::relay(
                "queue",
                json!({"queue": queue_state(q, queue, Instant::now())}),
                Audience::All,
            ));
        }
    }
}

fn push_history(history: &mut VecDeque<Alert>, alert: Alert) {
    if history.len() >= HISTORY {
        history.pop_front();
    }
    history.push_back(alert);
}

fn queue_state(q: &Queue, name: &str, now: Instant) -> Value {
    json!({
        "name": name,
        "paused": q.paused,
        "players": q.players.len(),
        "playing": q.playing.as_ref().map(|p| {
            let mut s = p.alert.summary();
            s["remaining_ms"] = json!(p.deadline.saturating_duration_since(now).as_millis() as u64);
            s
        }),
        "pending": q.pending.len(),
        "next": q.pending.iter().take(LISTED_PENDING).map(Alert::summary).collect::<Vec<_>>(),
        "max_pending": q.settings.max_pending,
        "dropped": q.dropped,
        "played": q.played,
    })
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
