//! Sessions follow the LIVE: where one session ends and the next begins, and the archive of
//! past sessions in the data dir.
//!
//! A session is one LIVE of one stream. Its totals, leaderboards and goals live in
//! [`crate::stats`] (saved as `session.json`, so a restart or a reconnect within the LIVE keeps
//! them), each stream's on its own and all streams' combined. When a stream's source connects to
//! another room than its session's ([`starts_new`]), [`track`] ends that stream's session: its
//! counters start from zero and the combined ones are counted again from the streams. The
//! streamer can end every session at once (the dashboard's button, `--new-session`:
//! [`end_all`]). Each ended session is handed over as a [`PastSession`]; [`Sessions`] keeps
//! those in `sessions.json`, newest first, at most [`MAX_ARCHIVED`], each with its totals and
//! top viewers (not the whole leaderboards, which can hold thousands), and lists them for
//! `/api/sessions`.
//!
//! This file says where sessions end and what an ended one leaves; [`archive`] keeps them.

mod archive;

pub use archive::{MAX_ARCHIVED, SESSIONS_FILE, Sessions};

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind, Source};
use crate::stats::{
    LEADERBOARD_KEEP, LEADERBOARD_SIZE, LeaderEntry, MAX_STREAMS, SessionState, StreamState,
    Totals, keep_best,
};

/// Ended sessions the stats hold until the archive takes them. The archiver takes each one as
/// it ends, so this bound only matters if that task is gone.
pub const MAX_UNARCHIVED: usize = 16;

/// Where a stream's session stands; saved with the stream's counters in `session.json`.
#[derive(Debug, Clone, Serialize, Deserialize, Default, PartialEq, Eq)]
pub struct StreamSession {
    /// The room (the LIVE) the session belongs to.
    pub room_id: Option<String>,
    /// The handle the source connected with.
    pub unique_id: Option<String>,
    /// `tiktok`, `demo`, `replay` (`test` for a stream only test events fed).
    pub source: String,
    /// When the session began and when it last counted an event (ms since the epoch).
    pub started: i64,
    pub updated: i64,
}

/// Whether `event` begins a new session of a stream whose session is in `current_room`: the
/// source connected to another room. A reconnect to the same room, the first connection of a
/// session that has no room yet, and test events never do.
pub fn starts_new(current_room: Option<&str>, event: &Event) -> bool {
    let Some(room) = connects_to(event) else {
        return false;
    };
    current_room.is_some_and(|old| !old.is_empty() && old != room)
}

/// The room a (non-test) `connected` event connects to.
fn connects_to(event: &Event) -> Option<&str> {
    if !matches!(event.kind, EventKind::Connected { .. }) || event.source == Source::Test {
        return None;
    }
    event.room_id.as_deref().filter(|r| !r.is_empty())
}

/// Follows sessions as events arrive, before the stats count `event`: records the room a
/// stream connects to and when its session counts, and ends the stream's session when it
/// connects to another room. Returns `None` when no session ended, else what ended sessions
/// leave for the archive (empty when they had counted nothing).
pub fn track(state: &mut SessionState, event: &Event) -> Option<Vec<PastSession>> {
    let mut ended = None;
    // A session saved before streams existed is one for the whole relay, and its room is the
    // connection's.
    if state.streams.is_empty() && starts_new(state.connection.room_id.as_deref(), event) {
        ended = Some(end_all(state, event.ts));
    }
    // A `disconnected` (e.g. waiting for the LIVE to start) is time outside the LIVE.
    let counts_time = !matches!(event.kind, EventKind::Disconnected { .. });
    if counts_time {
        touch(&mut state.started, &mut state.updated, event.ts);
    }
    let room = connects_to(event);
    let known = state.streams.contains_key(&event.stream);
    if !known && (room.is_none() || state.streams.len() >= MAX_STREAMS) {
        // The stats add the stream when it counts something; its session starts with the next
        // event.
        return ended;
    }
    let name = event.stream.clone();
    let stream = state.streams.entry(name.clone()).or_default();
    if let Some(room) = room {
        if starts_new(stream.session.room_id.as_deref(), event) {
            let past = summary(&name, &stream.session, stream);
            let counted = has_counted(stream);
            reset_stream(stream, event.ts);
            combine(state);
            ended
                .get_or_insert_with(Vec::new)
                .extend(counted.then_some(past));
        }
        let stream = state.streams.get_mut(&name).expect("the stream is there");
        let s = &mut stream.session;
        s.room_id = Some(room.to_string());
        if let EventKind::Connected { unique_id } = &event.kind
            && !unique_id.is_empty()
        {
            s.unique_id = Some(unique_id.clone());
        }
        s.source = event.source.as_str().to_string();
    }
    let s = &mut state
        .streams
        .get_mut(&name)
        .expect("the stream is there")
        .session;
    if s.source.is_empty() {
        s.source = event.source.as_str().to_string();
    }
    if counts_time {
        touch(&mut s.started, &mut s.updated, event.ts);
    }
    ended
}

fn touch(started: &mut i64, updated: &mut i64, ts: i64) {
    if *started == 0 {
        *started = ts;
    }
    *updated = (*updated).max(ts);
}

/// Ends every session now (the dashboard's button, `--new-session`): all counters start from
/// zero at `now`; rooms and handles stay. Returns the sessions that had counted something.
pub fn end_all(state: &mut SessionState, now: i64) -> Vec<PastSession> {
    let mut ended = Vec::new();
    if state.streams.is_empty() {
        let c = &state.connection;
        let session = StreamSession {
            room_id: c.room_id.clone(),
            unique_id: c.unique_id.clone(),
            source: c.source.clone(),
            started: state.started,
            updated: state.updated,
        };
        let name = c.unique_id.clone().unwrap_or_else(|| c.source.clone());
        let combined = StreamState {
            totals: state.totals.clone(),
            gifters: std::mem::take(&mut state.gifters),
            likers: std::mem::take(&mut state.likers),
            session: session.clone(),
        };
        if has_counted(&combined) {
            ended.push(summary(&name, &session, &combined));
        }
    }
    for (name, stream) in &mut state.streams {
        if has_counted(stream) {
            ended.push(summary(name, &stream.session, stream));
        }
        reset_stream(stream, now);
    }
    state.totals = Totals::default();
    state.gifters.clear();
    state.likers.clear();
    state.started = now;
    state.updated = now;
    ended
}

/// A stream's counters from zero, its session beginning at `now` (room and handle stay).
fn reset_stream(stream: &mut StreamState, now: i64) {
    stream.totals = Totals::default();
    stream.gifters.clear();
    stream.likers.clear();
    stream.session.started = now;
    stream.session.updated = now;
}

/// Counts the combined totals and leaderboards again from the streams' (after one stream's
/// session ended). The peak of viewers becomes the sum of the streams' peaks.
fn combine(state: &mut SessionState) {
    let mut totals = Totals::default();
    let mut gifters = HashMap::new();
    let mut likers = HashMap::new();
    for stream in state.streams.values() {
        add_totals(&mut totals, &stream.totals);
        merge_board(&mut gifters, &stream.gifters);
        merge_board(&mut likers, &stream.likers);
    }
    keep_best(&mut gifters, LEADERBOARD_KEEP);
    keep_best(&mut likers, LEADERBOARD_KEEP);
    state.totals = totals;
    state.gifters = gifters;
    state.likers = likers;
}

fn add_totals(sum: &mut Totals, t: &Totals) {
    for (a, b) in [
        (&mut sum.likes, t.likes),
        (&mut sum.room_likes, t.room_likes),
        (&mut sum.follows, t.follows),
        (&mut sum.shares, t.shares),
        (&mut sum.comments, t.comments),
        (&mut sum.joins, t.joins),
        (&mut sum.gifts, t.gifts),
        (&mut sum.diamonds, t.diamonds),
        (&mut sum.viewers, t.viewers),
        (&mut sum.peak_viewers, t.peak_viewers),
        (&mut sum.total_viewers, t.total_viewers),
    ] {
        *a = a.saturating_add(b);
    }
}

fn merge_board(into: &mut HashMap<String, LeaderEntry>, from: &HashMap<String, LeaderEntry>) {
    for (key, entry) in from {
        let e = into.entry(key.clone()).or_insert_with(|| LeaderEntry {
            user: entry.user.clone(),
            score: 0,
        });
        e.score = e.score.saturating_add(entry.score);
    }
}

/// Whether a session counted anything worth listing later.
fn has_counted(s: &StreamState) -> bool {
    s.totals != Totals::default() || !s.gifters.is_empty() || !s.likers.is_empty()
}

/// The archive's entry for a stream's session.
fn summary(stream: &str, s: &StreamSession, counters: &StreamState) -> PastSession {
    let started = if s.started == 0 { s.updated } else { s.started };
    let ended = s.updated.max(started);
    PastSession {
        id: format!("{started}-{stream}-{}", s.room_id.as_deref().unwrap_or("0")),
        stream: stream.to_string(),
        source: s.source.clone(),
        unique_id: s.unique_id.clone(),
        room_id: s.room_id.clone(),
        started,
        ended,
        duration_secs: u64::try_from((ended - started) / 1000).unwrap_or(0),
        totals: counters.totals.clone(),
        top_gifters: top(&counters.gifters),
        top_likers: top(&counters.likers),
    }
}

/// Adds an ended session to the stats' queue for the archive, dropping the oldest (logged) when
/// the archive has not taken them.
pub fn queue_ended(queue: &mut Vec<PastSession>, ended: PastSession) {
    if queue.len() >= MAX_UNARCHIVED {
        let dropped = queue.remove(0);
        tracing::warn!(
            "{MAX_UNARCHIVED} ended sessions wait for the archive; dropping the oldest ({})",
            dropped.describe()
        );
    }
    queue.push(ended);
}

/// One ended session as the archive keeps it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PastSession {
    /// `STARTED-STREAM-ROOM`: the same session archived twice keeps one entry.
    pub id: String,
    /// The stream (a live source's handle, `demo`, a replay's file name).
    #[serde(default)]
    pub stream: String,
    /// `tiktok`, `demo`, `replay`.
    pub source: String,
    /// The handle, without `@`.
    pub unique_id: Option<String>,
    pub room_id: Option<String>,
    /// When the session began and its last event (ms since the epoch).
    pub started: i64,
    pub ended: i64,
    pub duration_secs: u64,
    pub totals: Totals,
    /// The best [`LEADERBOARD_SIZE`] of each board.
    pub top_gifters: Vec<LeaderEntry>,
    pub top_likers: Vec<LeaderEntry>,
}

impl PastSession {
    /// The running sessions: each stream's (or, before any stream counted, the relay's).
    pub fn current(state: &SessionState) -> Vec<PastSession> {
        if state.streams.is_empty() {
            let mut copy = state.clone();
            return end_all(&mut copy, 0);
        }
        state
            .streams
            .iter()
            .map(|(name, s)| summary(name, &s.session, s))
            .collect()
    }

    /// A line for the log: handle, room, duration and the main totals.
    fn describe(&self) -> String {
        let who = self
            .unique_id
            .as_deref()
            .map_or_else(|| self.stream.clone(), |u| format!("@{u}"));
        let room = self.room_id.as_deref().unwrap_or("no room");
        let mins = self.duration_secs / 60;
        format!(
            "{who}, room {room}, {} h {} min, {} follows, {} diamonds",
            mins / 60,
            mins % 60,
            self.totals.follows,
            self.totals.diamonds
        )
    }
}

/// The best entries of a board, as the leaderboards order them.
fn top(board: &HashMap<String, LeaderEntry>) -> Vec<LeaderEntry> {
    let mut entries: Vec<&LeaderEntry> = board.values().collect();
    entries.sort_by(|a, b| b.score.cmp(&a.score).then(a.user.id.cmp(&b.user.id)));
    entries
        .into_iter()
        .take(LEADERBOARD_SIZE)
        .cloned()
        .collect()
}

/// Events as sources make them, for the tests here and in [`archive`].
#[cfg(test)]
pub(crate) mod test_events {
    use crate::events::{Event, EventKind, Source, User};

    pub fn connected(room: &str, source: Source) -> Event {
        let mut e = Event::new(
            EventKind::Connected {
                unique_id: "streamer".into(),
            },
            "c1",
            source,
        );
        e.room_id = Some(room.into()).filter(|r: &String| !r.is_empty());
        e
    }

    pub fn gift(user: &str, diamonds: u64) -> Event {
        let mut e: Event = serde_json::from_value(serde_json::json!({
            "type": "gift", "id": format!("g{user}{diamonds}"), "ts": 1, "source": "tiktok",
            "count": 1, "diamonds_total": diamonds, "repeat_end": true,
            "gift": {"id": 1, "name": "Rose", "diamonds": diamonds, "image_url": null, "streakable": false},
        }))
        .unwrap();
        e.user = Some(User {
            id: user.into(),
            unique_id: user.into(),
            ..User::default()
        });
        e
    }

    pub fn in_stream(mut e: Event, stream: &str) -> Event {
        e.stream = stream.into();
        e
    }
}

#[cfg(test)]
mod tests {
    use super::test_events::{connected, gift, in_stream};
    use super::*;

    #[test]
    fn only_a_connection_to_another_room_starts_a_session() {
        let tiktok = Source::Tiktok;
        assert!(starts_new(Some("1"), &connected("2", tiktok)));
        assert!(!starts_new(Some("1"), &connected("1", tiktok)));
        assert!(!starts_new(None, &connected("2", tiktok)));
        assert!(!starts_new(Some("1"), &connected("", tiktok)));
        assert!(!starts_new(Some("1"), &connected("2", Source::Test)));
        let mut follow = connected("2", tiktok);
        follow.kind = EventKind::Follow;
        assert!(!starts_new(Some("1"), &follow));
    }

    #[test]
    fn each_stream_follows_its_own_live() {
        let sessions = Sessions::restore(None, false);
        let stats = sessions.stats();
        let (a, b) = (
            |e: Event| in_stream(e, "alice"),
            |e: Event| in_stream(e, "bob"),
        );
        stats.apply(&a(connected("1", Source::Tiktok)));
        stats.apply(&b(connected("2", Source::Tiktok)));
        stats.apply(&a(gift("ann", 5)));
        stats.apply(&b(gift("ann", 30)));
        stats.apply(&b(gift("cy", 1)));
        // Both connections again (reconnects): nothing ends.
        stats.apply(&a(connected("1", Source::Tiktok)));
        stats.apply(&b(connected("2", Source::Tiktok)));
        assert_eq!(stats.snapshot()["totals"]["diamonds"], 36);
        assert_eq!(sessions.list(), []);
        // Bob goes live again: his session ends, Alice's goes on.
        stats.apply(&b(connected("3", Source::Tiktok)));
        let snap = stats.snapshot();
        assert_eq!(snap["totals"]["diamonds"], 5, "{snap}");
        assert_eq!(snap["top_gifters"][0]["score"], 5, "{snap}");
        assert_eq!(snap["streams"]["alice"]["totals"]["diamonds"], 5, "{snap}");
        assert_eq!(snap["streams"]["bob"]["totals"]["diamonds"], 0, "{snap}");
        let list = sessions.list();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(
            (list[0].stream.as_str(), list[0].room_id.as_deref()),
            ("bob", Some("2"))
        );
        assert_eq!(list[0].totals.diamonds, 31);
        assert_eq!(list[0].top_gifters[0].user.id, "ann");
        // The button ends both: one entry per stream that counted something.
        stats.apply(&b(gift("cy", 2)));
        assert_eq!(sessions.new_session().len(), 2);
        let list = sessions.list();
        let streams: Vec<&str> = list.iter().map(|s| s.stream.as_str()).collect();
        assert_eq!(streams.len(), 3, "{list:?}");
        assert!(streams[..2].contains(&"alice") && streams[..2].contains(&"bob"));
        assert_eq!(stats.snapshot()["totals"]["diamonds"], 0);
        let current = sessions.current();
        assert_eq!(current.len(), 2);
        assert_eq!(current[1].room_id.as_deref(), Some("3"));
    }

    #[test]
    fn a_new_room_hands_the_old_totals_to_the_archive() {
        let sessions = Sessions::restore(None, false);
        let stats = sessions.stats();
        stats.apply(&connected("1", Source::Tiktok));
        stats.apply(&gift("ann", 5));
        stats.apply(&gift("bob", 30));
        stats.apply(&connected("1", Source::Tiktok));
        assert_eq!(sessions.list(), []);
        stats.apply(&connected("2", Source::Tiktok));
        let snapshot = stats.snapshot();
        assert_eq!(snapshot["totals"]["diamonds"], 0);
        assert_eq!(snapshot["top_gifters"], serde_json::json!([]));
        assert_eq!(snapshot["connection"]["room_id"], "2");
        let list = sessions.list();
        assert_eq!(list.len(), 1);
        assert_eq!(list[0].room_id.as_deref(), Some("1"));
        assert_eq!(list[0].totals.diamonds, 35);
        assert_eq!(list[0].top_gifters[0].user.id, "bob");
        assert_eq!(sessions.current()[0].room_id.as_deref(), Some("2"));
    }

    #[test]
    fn test_events_never_move_the_session_to_another_room() {
        let sessions = Sessions::restore(None, false);
        let stats = sessions.stats();
        stats.apply(&connected("1", Source::Tiktok));
        stats.apply(&gift("ann", 5));
        stats.apply(&connected("2", Source::Test));
        stats.apply(&connected("", Source::Test));
        assert_eq!(stats.snapshot()["connection"]["room_id"], "1");
        // Back from a test: the same LIVE goes on.
        stats.apply(&connected("1", Source::Tiktok));
        assert_eq!(stats.snapshot()["totals"]["diamonds"], 5);
        assert_eq!(sessions.list(), []);
    }
}
