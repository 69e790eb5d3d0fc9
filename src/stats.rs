//! Session totals and the state snapshot: connection, counters, leaderboards.
//!
//! Totals, leaderboards and goals are kept combined (the top-level fields, what a page that
//! knows nothing of streams shows) and per stream (`streams.NAME`, for a page that follows one
//! stream with `?stream=NAME`).
//!
//! Every published event passes through [`Stats::apply`], so the snapshot that `/api/state` and
//! the websocket `hello` carry is always current. Changes are collected per part and pushed as
//! throttled `state` messages by the hub, so a like storm does not flood overlays. The totals
//! are one session's (one LIVE's): [`crate::sessions`] says where a session ends, and the ended
//! one is handed over through [`Stats::take_ended`].
//!
//! Memory stays bounded on a stream of any size: each leaderboard keeps at most
//! [`MAX_LEADERBOARD_ENTRIES`] viewers (when it grows past that, the lowest scores are dropped
//! down to [`LEADERBOARD_KEEP`], logged once per board), and every total saturates instead of
//! wrapping around on absurd values.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use tokio::sync::Notify;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::Goals;
use crate::events::{Event, EventKind, User, now_ms};

/// How many entries the leaderboards show.
pub const LEADERBOARD_SIZE: usize = 10;
/// Viewers a leaderboard holds in memory at most. 100,000 distinct likers once took 79 MB;
/// only the top [`LEADERBOARD_SIZE`] are ever shown, and [`crate::persist`] saves 1,000.
pub const MAX_LEADERBOARD_ENTRIES: usize = 5_000;
/// What a full leaderboard is trimmed to (the best by score), so trimming, which costs a pass
/// over the board, happens once per 1,000 new viewers rather than on each.
pub const LEADERBOARD_KEEP: usize = 4_000;

/// Where the source stands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Connection {
    /// `starting`, `connected`, `disconnected`, `paused` or `ended`.
    pub state: String,
    pub source: String,
    pub unique_id: Option<String>,
    pub room_id: Option<String>,
    /// When the state last changed (ms since the epoch).
    pub since: i64,
}

/// Counters of this session.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, Default)]
pub struct Totals {
    /// Likes counted from like messages during this session.
    pub likes: u64,
    /// TikTok's own total for the room, from the latest like message.
    pub room_likes: u64,
    pub follows: u64,
    pub shares: u64,
    pub comments: u64,
    pub joins: u64,
    pub gifts: u64,
    pub diamonds: u64,
    pub viewers: u64,
    pub peak_viewers: u64,
    pub total_viewers: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LeaderEntry {
    pub user: User,
    pub score: u64,
}

/// Everything the snapshot is made of; serialisable so it can be saved and restored.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct SessionState {
    pub connection: Connection,
    pub totals: Totals,
    pub gifters: HashMap<String, LeaderEntry>,
    pub likers: HashMap<String, LeaderEntry>,
    /// When this session began (ms since the epoch; 0 before its first event). A session is
    /// one LIVE: [`crate::sessions`] decides where one ends.
    #[serde(default)]
    pub started: i64,
    /// When the last event was folded in (ms since the epoch), for the session's duration.
    #[serde(default)]
    pub updated: i64,
    /// The same counters for each stream on its own.
    #[serde(default)]
    pub streams: BTreeMap<String, StreamState>,
}

/// One stream's counters and leaderboards.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct StreamState {
    pub totals: Totals,
    pub gifters: HashMap<String, LeaderEntry>,
    pub likers: HashMap<String, LeaderEntry>,
    /// The stream's session: the LIVE it belongs to and when it began and last counted
    /// (see [`crate::sessions`]).
    #[serde(default)]
    pub session: crate::sessions::StreamSession,
}

/// Streams kept at most; past that the totals of new streams count only in the combined ones
/// (a relay runs a handful of sources, so this only bounds memory against a runaway client).
pub const MAX_STREAMS: usize = 64;

#[derive(Default)]
struct Inner {
    state: SessionState,
    /// Whether each board (gifters, likers) was trimmed already, to log it once.
    trimmed: [bool; 2],
    changed: BTreeSet<&'static str>,
    /// Targets from the config; goals follow the totals.
    goals: Goals,
    /// Sessions that ended and are not archived yet (taken by [`crate::sessions`]).
    ended: Vec<crate::sessions::PastSession>,
    /// How many sessions ended since the relay started.
    generation: u64,
}

#[derive(Default)]
pub struct Stats {
    inner: Mutex<Inner>,
    /// Woken when a session ends, so its archiver runs.
    session_ended: Notify,
}

impl Stats {
    /// Stats restored from a saved session.
    pub fn from_state(mut state: SessionState) -> Stats {
        // A saved file holds at most persist's 1,000 per board; a hand-edited one may not.
        keep_best(&mut state.gifters, LEADERBOARD_KEEP);
        keep_best(&mut state.likers, LEADERBOARD_KEEP);
        for s in state.streams.values_mut() {
            keep_best(&mut s.gifters, LEADERBOARD_KEEP);
            keep_best(&mut s.likers, LEADERBOARD_KEEP);
        }
        Stats {
            inner: Mutex::new(Inner {
                state,
                trimmed: [false; 2],
                changed: BTreeSet::new(),
                goals: Goals::default(),
                ended: Vec::new(),
                generation: 0,
            }),
            session_ended: Notify::new(),
        }
    }

    /// Ends the current session now (the dashboard's button, `--new-session`): it is handed to
    /// the archive and the totals, leaderboards and goals start from zero; the connection stays.
    /// Returns the sessions that ended (those that had counted something), oldest first.
    pub fn new_session(&self) -> Vec<crate::sessions::PastSession> {
        let mut inner = self.inner.lock().expect("stats lock");
        let ended = crate::sessions::end_all(&mut inner.state, now_ms());
        // Handed to the caller, not queued: the archiver must not take them first, or the
        // caller could not say what it archived.
        session_ended(&mut inner, Vec::new());
        ended
    }

    /// The ended sessions not archived yet, oldest first.
    pub fn take_ended(&self) -> Vec<crate::sessions::PastSession> {
        std::mem::take(&mut self.inner.lock().expect("stats lock").ended)
    }

    /// Changes each time a session ends, so consumers with per-session memory (triggers'
    /// `follow_once_per = "session"`) know to forget it.
    pub fn session_generation(&self) -> u64 {
        self.inner.lock().expect("stats lock").generation
    }

    /// Resolves when a session has ended since the last call (see [`Stats::take_ended`]).
    pub async fn session_ended(&self) {
        self.session_ended.notified().await;
    }

    /// Sets the goal targets (from the config); the snapshot then carries `goals`.
    pub fn set_goals(&self, goals: Goals) {
        let mut inner = self.inner.lock().expect("stats lock");
        inner.goals = goals;
        inner.changed.insert("goals");
    }

    /// Sets the connection state directly (sources call this as they start).
    pub fn set_connection(&self, source: &str, state: &str) {
        let mut inner = self.inner.lock().expect("stats lock");
        inner.state.connection.source = source.to_string();
        inner.state.connection.state = state.to_string();
        inner.state.connection.since = now_ms();
        inner.changed.insert("connection");
    }

    /// Folds one event into the totals: the combined ones and its stream's.
    pub fn apply(&self, event: &Event) {
        let mut inner = self.inner.lock().expect("stats lock");
        if let Some(ended) = crate::sessions::track(&mut inner.state, event) {
            let archived = !ended.is_empty();
            session_ended(&mut inner, ended);
            if archived {
                self.session_ended.notify_one();
            }
        }
        let Inner {
            state,
            changed,
            trimmed,
            ..
        } = &mut *inner;
        match &event.kind {
            EventKind::Connected { unique_id } => {
                let c = &mut state.connection;
                c.state = "connected".into();
                c.source = event.source.as_str().into();
                c.unique_id = Some(unique_id.clone()).filter(|u| !u.is_empty());
                // The room tells sessions apart (crate::sessions): a test event never moves it.
                if event.source != crate::events::Source::Test && event.room_id.is_some() {
                    c.room_id = event.room_id.clone();
                }
                c.since = event.ts;
                changed.insert("connection");
            }
            EventKind::Disconnected { .. } => connection(state, changed, "disconnected", event),
            EventKind::LivePaused => connection(state, changed, "paused", event),
            EventKind::LiveResumed => connection(state, changed, "connected", event),
            EventKind::LiveEnded => connection(state, changed, "ended", event),
            _ => {}
        }
        let mut board = Board {
            totals: &mut state.totals,
            gifters: &mut state.gifters,
            likers: &mut state.likers,
            trimmed,
        };
        if !board.fold(event, changed) {
            return;
        }
        let streams = &mut state.streams;
        if !streams.contains_key(&event.stream) && streams.len() >= MAX_STREAMS {
            return;
        }
        let one = streams.entry(event.stream.clone()).or_default();
        // Trimming is logged once, for the combined boards.
        let mut quiet = [true; 2];
        Board {
            totals: &mut one.totals,
            gifters: &mut one.gifters,
            likers: &mut one.likers,
            trimmed: &mut quiet,
        }
        .fold(event, changed);
        changed.insert("streams");
    }

    /// The whole snapshot.
    pub fn snapshot(&self) -> Value {
        let inner = self.inner.lock().expect("stats lock");
        json!({
            "connection": inner.state.connection,
            "totals": inner.state.totals,
            "top_gifters": leaderboard(&inner.state.gifters),
            "top_likers": leaderboard(&inner.state.likers),
            "goals": goals(&inner.goals, &inner.state.totals),
            "streams": streams(&inner.goals, &inner.state.streams),
        })
    }

    /// A copy of the state, for saving.
    pub fn session_state(&self) -> SessionState {
        self.inner.lock().expect("stats lock").state.clone()
    }

    /// The parts changed since the last call, or `None` when nothing changed.
    pub fn take_changes(&self) -> Option<Value> {
        let mut inner = self.inner.lock().expect("stats lock");
        if inner.changed.is_empty() {
            return None;
        }
        let mut changed = std::mem::take(&mut inner.changed);
        if changed.contains("totals") {
            changed.insert("goals");
        }
        let mut out = serde_json::Map::new();
        for part in changed {
            let value = match part {
                "connection" => json!(inner.state.connection),
                "totals" => json!(inner.state.totals),
                "top_gifters" => leaderboard(&inner.state.gifters),
                "top_likers" => leaderboard(&inner.state.likers),
                "goals" => goals(&inner.goals, &inner.state.totals),
                "streams" => streams(&inner.goals, &inner.state.streams),
                _ => continue,
            };
            out.insert(part.into(), value);
        }
        Some(Value::Object(out))
    }
}

/// After [`crate::sessions`] ended a session (its counters are reset already): queues what it
/// archives and marks every part changed, so overlays redraw from zero.
fn session_ended(inner: &mut Inner, ended: Vec<crate::sessions::PastSession>) {
    inner.trimmed = [false; 2];
    inner.generation += 1;
    inner.changed.extend([
        "connection",
        "totals",
        "top_gifters",
        "top_likers",
        "goals",
        "streams",
    ]);
    for past in ended {
        crate::sessions::queue_ended(&mut inner.ended, past);
    }
}
/// One set of counters and leaderboards (the combined one or a stream's).
struct Board<'a> {
    totals: &'a mut Totals,
    gifters: &'a mut HashMap<String, LeaderEntry>,
    likers: &'a mut HashMap<String, LeaderEntry>,
    trimmed: &'a mut [bool; 2],
}

impl Board<'_> {
    /// Counts the event; false when it counts nowhere.
    fn fold(&mut self, event: &Event, changed: &mut BTreeSet<&'static str>) -> bool {
        let t = &mut *self.totals;
        match &event.kind {
            EventKind::Comment { .. } => t.comments = t.comments.saturating_add(1),
            EventKind::Follow => t.follows = t.follows.saturating_add(1),
            EventKind::Share => t.shares = t.shares.saturating_add(1),
            EventKind::Join { .. } => t.joins = t.joins.saturating_add(1),
            EventKind::Like { count, total } => {
                t.likes = t.likes.saturating_add(*count);
                t.room_likes = t.room_likes.max(*total);
                if let Some(user) = &event.user {
                    add_score(
                        self.likers,
                        user,
                        *count,
                        &mut self.trimmed[1],
                        "top likers",
                    );
                    changed.insert("top_likers");
                }
            }
            EventKind::Viewers {
                viewers,
                total_viewers,
                ..
            } => {
                t.viewers = *viewers;
                t.peak_viewers = t.peak_viewers.max(*viewers);
                t.total_viewers = t.total_viewers.max(*total_viewers);
            }
            EventKind::Gift { diamonds_total, .. } => {
                t.gifts = t.gifts.saturating_add(1);
                t.diamonds = t.diamonds.saturating_add(*diamonds_total);
                if let Some(user) = &event.user {
                    add_score(
                        self.gifters,
                        user,
                        *diamonds_total,
                        &mut self.trimmed[0],
                        "top gifters",
                    );
                    changed.insert("top_gifters");
                }
            }
            _ => return false,
        }
        changed.insert("totals");
        true
    }
}

/// `{name: {totals, top_gifters, top_likers, goals}}` for each stream.
fn streams(g: &Goals, streams: &BTreeMap<String, StreamState>) -> Value {
    let mut out = serde_json::Map::new();
    for (name, s) in streams {
        out.insert(
            name.clone(),
            json!({
                "totals": s.totals,
                "top_gifters": leaderboard(&s.gifters),
                "top_likers": leaderboard(&s.likers),
                "goals": goals(g, &s.totals),
            }),
        );
    }
    Value::Object(out)
}

fn connection(
    state: &mut SessionState,
    changed: &mut BTreeSet<&'static str>,
    now: &str,
    event: &Event,
) {
    state.connection.state = now.into();
    state.connection.since = event.ts;
    changed.insert("connection");
}

fn add_score(
    board: &mut HashMap<String, LeaderEntry>,
    user: &User,
    score: u64,
    trimmed: &mut bool,
    name: &str,
) {
    let key = if user.id.is_empty() {
        user.unique_id.clone()
    } else {
        user.id.clone()
    };
    let entry = board.entry(key).or_insert_with(|| LeaderEntry {
        user: user.clone(),
        score: 0,
    });
    entry.user = user.clone();
    entry.score = entry.score.saturating_add(score);
    if board.len() > MAX_LEADERBOARD_ENTRIES {
        if !*trimmed {
            *trimmed = true;
            tracing::info!(
                "{name}: more than {MAX_LEADERBOARD_ENTRIES} viewers; keeping the best {LEADERBOARD_KEEP} in memory (the leaderboards show the top {LEADERBOARD_SIZE})"
            );
        }
        keep_best(board, LEADERBOARD_KEEP);
    }
}

/// Keeps the `keep` best entries of a board by score (ties at the cut go by key, so the
/// result does not depend on the map's order).
pub fn keep_best(board: &mut HashMap<String, LeaderEntry>, keep: usize) {
    if board.len() <= keep {
        return;
    }
    let mut ranked: Vec<(u64, &String)> = board.iter().map(|(k, e)| (e.score, k)).collect();
    // Best first: highest score, then smallest key.
    let cmp = |a: &(u64, &String), b: &(u64, &String)| b.0.cmp(&a.0).then(a.1.cmp(b.1));
    ranked.select_nth_unstable_by(keep, cmp);
    let dropped: Vec<String> = ranked[keep..].iter().map(|(_, k)| (*k).clone()).collect();
    for key in dropped {
        board.remove(&key);
    }
}

/// `{name: {current, target, progress}}` for each goal with a target.
fn goals(goals: &Goals, t: &Totals) -> Value {
    let mut out = serde_json::Map::new();
    for (name, target, current) in [
        ("likes", goals.likes, t.likes.max(t.room_likes)),
        ("follows", goals.follows, t.follows),
        ("shares", goals.shares, t.shares),
        ("diamonds", goals.diamonds, t.diamonds),
    ] {
        if let Some(target) = target.filter(|t| *t > 0) {
            let progress = (current as f64 / target as f64).min(1.0);
            out.insert(
                name.into(),
                json!({"current": current, "target": target, "progress": progress}),
            );
        }
    }
    Value::Object(out)
}

fn leaderboard(board: &HashMap<String, LeaderEntry>) -> Value {
    let mut entries: Vec<&LeaderEntry> = board.values().collect();
    entries.sort_by(|a, b| b.score.cmp(&a.score).then(a.user.id.cmp(&b.user.id)));
    entries.truncate(LEADERBOARD_SIZE);
    json!(entries)
}

#[cfg(test)]
mod stream_tests {
    use super::*;
    use crate::events::{GiftInfo, Source};

    fn of(stream: &str, kind: EventKind, user: &str) -> Event {
        let mut e = Event::new(kind, "x", Source::Test).with_user(Some(User {
            id: user.into(),
            ..User::default()
        }));
        e.stream = stream.into();
        e
    }

    #[test]
    fn totals_and_boards_are_kept_per_stream_and_combined() {
        let stats = Stats::default();
        stats.set_goals(Goals {
            follows: Some(4),
            ..Goals::default()
        });
        let gift = |diamonds| EventKind::Gift {
            gift: GiftInfo {
                diamonds,
                ..GiftInfo::default()
            },
            count: 1,
            diamonds_total: diamonds,
            combo_id: None,
        };
        stats.apply(&of("a", EventKind::Follow, "1"));
        stats.apply(&of("b", EventKind::Follow, "2"));
        stats.apply(&of("b", EventKind::Follow, "3"));
        stats.apply(&of("a", gift(10), "1"));
        stats.apply(&of("b", gift(500), "2"));
        stats.apply(&of(
            "a",
            EventKind::Connected {
                unique_id: "a".into(),
            },
            "1",
        ));
        let snap = stats.snapshot();
        assert_eq!(snap["totals"]["follows"], 3);
        assert_eq!(snap["totals"]["diamonds"], 510);
        assert_eq!(snap["streams"]["a"]["totals"]["follows"], 1);
        assert_eq!(snap["streams"]["b"]["totals"]["follows"], 2);
        assert_eq!(snap["streams"]["b"]["goals"]["follows"]["current"], 2);
        assert_eq!(snap["streams"]["a"]["top_gifters"][0]["score"], 10);
        assert_eq!(snap["streams"]["b"]["top_gifters"][0]["score"], 500);
        assert_eq!(snap["top_gifters"].as_array().unwrap().len(), 2);
        // A push after a counted event carries the streams.
        let changes = stats.take_changes().unwrap();
        assert_eq!(changes["streams"]["a"]["totals"]["gifts"], 1);
        // Saving keeps them (goal targets come from the config, not the file).
        let restored = Stats::from_state(stats.session_state());
        let restored = restored.snapshot();
        for s in ["a", "b"] {
            assert_eq!(
                restored["streams"][s]["totals"],
                snap["streams"][s]["totals"]
            );
            assert_eq!(
                restored["streams"][s]["top_gifters"],
                snap["streams"][s]["top_gifters"]
            );
        }
    }
}
