//! Sessions follow the LIVE: where one session ends and the next begins, and the archive of
//! past sessions in the data dir.
//!
//! A session is one LIVE. Its totals, leaderboards and goals live in [`crate::stats`] (saved as
//! `session.json`, so a restart or a reconnect within the LIVE keeps them). When the source
//! connects to another room than the session's ([`starts_new`]), or the streamer asks for a new
//! session (the dashboard's button, `--new-session`), the stats hand the old session over as a
//! [`PastSession`] and start from zero. [`Sessions`] keeps those in `sessions.json`, newest
//! first, at most [`MAX_ARCHIVED`], each with its totals and top viewers (not the whole
//! leaderboards, which can hold thousands), and lists them for `/api/sessions`.
//!
//! The archive is written by its own task, off the pipeline, as soon as a session ends, and
//! again at shutdown if a write failed. Entries carry an id (start time and room), so a session
//! archived twice (a crash between the archive and `session.json` being saved) is listed once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::events::{Event, EventKind, Source};
use crate::persist::{DataDir, SESSION_FILE};
use crate::stats::{Connection, LEADERBOARD_SIZE, LeaderEntry, SessionState, Stats, Totals};

/// The archive of past sessions in the data dir.
pub const SESSIONS_FILE: &str = "sessions.json";
/// Past sessions kept; older ones are dropped from the archive.
pub const MAX_ARCHIVED: usize = 100;
/// Ended sessions the stats hold until the archive takes them. The archiver takes each one as
/// it ends, so this bound only matters if that task is gone.
pub const MAX_UNARCHIVED: usize = 16;

/// Whether `event` begins a new session: the source connected to a room other than the one the
/// current session belongs to. A reconnect to the same room, the first connection of a session
/// that has no room yet, and test events never do.
pub fn starts_new(current: &Connection, event: &Event) -> bool {
    if !matches!(event.kind, EventKind::Connected { .. }) || event.source == Source::Test {
        return false;
    }
    let Some(room) = event.room_id.as_deref().filter(|r| !r.is_empty()) else {
        return false;
    };
    current
        .room_id
        .as_deref()
        .is_some_and(|old| !old.is_empty() && old != room)
}

/// Whether a session counted anything worth listing later.
pub fn worth_archiving(s: &SessionState) -> bool {
    s.totals != Totals::default() || !s.gifters.is_empty() || !s.likers.is_empty()
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
    /// `STARTED-ROOM`: the same session archived twice keeps one entry.
    pub id: String,
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
    /// The summary of a session's state.
    pub fn from_state(s: &SessionState) -> PastSession {
        let c = &s.connection;
        let ended = s.updated.max(s.started);
        PastSession {
            id: format!("{}-{}", s.started, c.room_id.as_deref().unwrap_or("0")),
            source: c.source.clone(),
            unique_id: c.unique_id.clone(),
            room_id: c.room_id.clone(),
            started: s.started,
            ended,
            duration_secs: u64::try_from((ended - s.started) / 1000).unwrap_or(0),
            totals: s.totals.clone(),
            top_gifters: top(&s.gifters),
            top_likers: top(&s.likers),
        }
    }

    /// A line for the log: handle, room, duration and the main totals.
    fn describe(&self) -> String {
        let who = self
            .unique_id
            .as_deref()
            .map_or_else(|| self.source.clone(), |u| format!("@{u}"));
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

/// `sessions.json`.
#[derive(Debug, Default, Serialize, Deserialize)]
struct Archive {
    /// Newest first.
    sessions: Vec<PastSession>,
}

/// The current session's stats and the archive of past ones.
pub struct Sessions {
    stats: Arc<Stats>,
    dir: Option<DataDir>,
    /// Newest first, at most [`MAX_ARCHIVED`].
    archive: Mutex<Vec<PastSession>>,
    /// The last archive write failed: the next [`Sessions::collect`] writes again.
    failing: AtomicBool,
}

impl Sessions {
    /// The session saved in `dir` (if any) and the archive. With `new_session`
    /// (`--new-session`) the saved session is archived and the totals start from zero.
    pub fn restore(dir: Option<&DataDir>, new_session: bool) -> Arc<Sessions> {
        let saved = dir.and_then(|d| d.load::<SessionState>(SESSION_FILE));
        let stats = Arc::new(saved.map(Stats::from_state).unwrap_or_default());
        let mut archive = dir
            .and_then(|d| d.load::<Archive>(SESSIONS_FILE))
            .unwrap_or_default()
            .sessions;
        archive.truncate(MAX_ARCHIVED);
        let sessions = Arc::new(Sessions {
            stats,
            dir: dir.cloned(),
            archive: Mutex::new(archive),
            failing: AtomicBool::new(false),
        });
        if new_session {
            sessions.new_session();
        }
        sessions
    }

    pub fn stats(&self) -> &Arc<Stats> {
        &self.stats
    }

    /// Ends the current session now; the totals start from zero. Returns the archived session,
    /// or `None` when it had counted nothing (it is not listed).
    pub fn new_session(&self) -> Option<PastSession> {
        if !self.stats.new_session() {
            tracing::info!("new session: the totals start from zero");
            return None;
        }
        self.collect();
        self.archive.lock().expect("archive lock").first().cloned()
    }

    /// Moves the sessions that ended into the archive and writes it (also when the last write
    /// failed). Returns how many were added.
    pub fn collect(&self) -> usize {
        let ended = self.stats.take_ended();
        if ended.is_empty() && !self.failing.load(Ordering::Relaxed) {
            return 0;
        }
        let mut archive = self.archive.lock().expect("archive lock");
        let added = ended.len();
        for session in ended {
            tracing::info!(
                "session ended ({}); the totals start from zero and the last session is listed on the dashboard",
                session.describe()
            );
            archive.retain(|s| s.id != session.id);
            archive.insert(0, session);
        }
        archive.truncate(MAX_ARCHIVED);
        let Some(dir) = &self.dir else {
            return added;
        };
        let file = Archive {
            sessions: archive.clone(),
        };
        drop(archive);
        match dir.save(SESSIONS_FILE, &file) {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!("the archive of past sessions is saved again");
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "cannot save the past sessions in {}: {e}; they are kept in memory and saved again at the next session or at shutdown: free disk space there (or fix the folder's permissions)",
                        dir.path().join(SESSIONS_FILE).display()
                    );
                }
            }
        }
        added
    }

    /// Past sessions, newest first.
    pub fn list(&self) -> Vec<PastSession> {
        self.collect();
        self.archive.lock().expect("archive lock").clone()
    }

    /// The running session, summarised like the past ones.
    pub fn current(&self) -> PastSession {
        PastSession::from_state(&self.stats.session_state())
    }

    /// Archives each session as it ends, off the pipeline (file IO), for as long as `self`
    /// lives. Must run inside a tokio runtime.
    pub fn spawn_archiver(self: &Arc<Self>) {
        let weak = Arc::downgrade(self);
        let stats = self.stats.clone();
        tokio::spawn(async move {
            loop {
                stats.session_ended().await;
                let Some(me) = weak.upgrade() else { break };
                let _ = tokio::task::spawn_blocking(move || me.collect()).await;
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventKind, User};

    fn connected(room: &str, source: Source) -> Event {
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

    fn gift(user: &str, diamonds: u64) -> Event {
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

    fn room(room: Option<&str>) -> Connection {
        Connection {
            room_id: room.map(str::to_string),
            ..Connection::default()
        }
    }

    #[test]
    fn only_a_connection_to_another_room_starts_a_session() {
        let tiktok = Source::Tiktok;
        assert!(starts_new(&room(Some("1")), &connected("2", tiktok)));
        assert!(!starts_new(&room(Some("1")), &connected("1", tiktok)));
        assert!(!starts_new(&room(None), &connected("2", tiktok)));
        assert!(!starts_new(&room(Some("1")), &connected("", tiktok)));
        assert!(!starts_new(&room(Some("1")), &connected("2", Source::Test)));
        let mut follow = connected("2", tiktok);
        follow.kind = EventKind::Follow;
        assert!(!starts_new(&room(Some("1")), &follow));
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
        assert_eq!(sessions.current().room_id.as_deref(), Some("2"));
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

    #[test]
    fn an_empty_session_is_not_archived() {
        let sessions = Sessions::restore(None, false);
        sessions.stats().apply(&connected("1", Source::Tiktok));
        sessions.stats().apply(&connected("2", Source::Tiktok));
        assert_eq!(sessions.new_session(), None);
        assert_eq!(sessions.list(), []);
    }

    #[test]
    fn the_archive_is_saved_bounded_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let sessions = Sessions::restore(Some(&data), false);
        for n in 0..(MAX_ARCHIVED as u64 + 5) {
            let mut c = connected(&format!("{}", n + 1), Source::Tiktok);
            c.ts = n as i64 * 1000;
            sessions.stats().apply(&c);
            sessions.stats().apply(&gift("ann", n + 1));
            sessions.collect();
        }
        let list = sessions.list();
        assert_eq!(list.len(), MAX_ARCHIVED);
        // Newest first: the last session ended was room 104's (the current one is room 105).
        assert_eq!(list[0].room_id.as_deref(), Some("104"));
        let again = Sessions::restore(Some(&data), false);
        assert_eq!(again.list(), list);
    }

    #[test]
    fn new_session_archives_the_saved_session_once() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let sessions = Sessions::restore(Some(&data), false);
        sessions.stats().apply(&connected("9", Source::Tiktok));
        sessions.stats().apply(&gift("ann", 7));
        data.save(SESSION_FILE, &sessions.stats().session_state())
            .unwrap();
        // Archived, then (a crash before session.json was rewritten) archived again: one entry.
        for _ in 0..2 {
            let fresh = Sessions::restore(Some(&data), true);
            assert_eq!(fresh.stats().snapshot()["totals"]["diamonds"], 0);
            let list = fresh.list();
            assert_eq!(list.len(), 1, "{list:?}");
            assert_eq!(list[0].totals.diamonds, 7);
        }
    }
}
