//! The archive of past sessions: `sessions.json` in the data dir, newest first, at most
//! [`MAX_ARCHIVED`], and the running sessions' stats it takes them from.
//!
//! It is written by its own task, off the pipeline, as soon as a session ends, and again at
//! shutdown if a write failed. Entries carry an id (start time, stream and room), so a session
//! archived twice (a crash between the archive and `session.json` being saved) is listed once.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use super::PastSession;
use crate::persist::{DataDir, SESSION_FILE};
use crate::stats::{SessionState, Stats};

/// The archive of past sessions in the data dir.
pub const SESSIONS_FILE: &str = "sessions.json";
/// Past sessions kept; older ones are dropped from the archive.
pub const MAX_ARCHIVED: usize = 100;

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

    /// Ends the running sessions now (one per stream); the totals start from zero. Returns the
    /// archived sessions, newest first: those that had counted something (the others are not
    /// listed).
    pub fn new_session(&self) -> Vec<PastSession> {
        let ended = self.stats.new_session();
        if ended.is_empty() {
            tracing::info!("new session: the totals start from zero");
        }
        let mut newest_first = ended.clone();
        newest_first.reverse();
        self.add(ended);
        newest_first
    }

    /// Moves the sessions that ended into the archive and writes it (also when the last write
    /// failed). Returns how many were added.
    pub fn collect(&self) -> usize {
        self.add(self.stats.take_ended())
    }

    /// Puts `ended` (oldest first) into the archive and writes it (also when the last write
    /// failed). Returns how many were added.
    fn add(&self, ended: Vec<PastSession>) -> usize {
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

    /// The running sessions, summarised like the past ones: one per stream.
    pub fn current(&self) -> Vec<PastSession> {
        PastSession::current(&self.stats.session_state())
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
    use super::super::test_events::{connected, gift, in_stream};
    use super::*;
    use crate::events::Source;

    #[test]
    fn a_session_saved_before_streams_ends_with_the_next_room() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        let legacy = serde_json::json!({
            "connection": {"state": "ended", "source": "tiktok", "unique_id": "streamer",
                           "room_id": "7", "since": 5},
            "totals": {"likes": 0, "room_likes": 0, "follows": 3, "shares": 0, "comments": 0,
                       "joins": 0, "gifts": 0, "diamonds": 0, "viewers": 0,
                       "peak_viewers": 0, "total_viewers": 0},
            "gifters": {}, "likers": {},
        });
        std::fs::write(dir.path().join(SESSION_FILE), legacy.to_string()).unwrap();
        let sessions = Sessions::restore(Some(&data), false);
        let stats = sessions.stats();
        stats.apply(&in_stream(connected("7", Source::Tiktok), "streamer"));
        assert_eq!(
            stats.snapshot()["totals"]["follows"],
            3,
            "the same LIVE goes on"
        );
        let sessions = Sessions::restore(Some(&data), false);
        let stats = sessions.stats();
        stats.apply(&in_stream(connected("8", Source::Tiktok), "streamer"));
        assert_eq!(stats.snapshot()["totals"]["follows"], 0);
        let list = sessions.list();
        assert_eq!(list.len(), 1, "{list:?}");
        assert_eq!(list[0].unique_id.as_deref(), Some("streamer"));
        assert_eq!(list[0].room_id.as_deref(), Some("7"));
        assert_eq!(list[0].totals.follows, 3);
    }

    #[test]
    fn an_empty_session_is_not_archived() {
        let sessions = Sessions::restore(None, false);
        sessions.stats().apply(&connected("1", Source::Tiktok));
        sessions.stats().apply(&connected("2", Source::Tiktok));
        assert_eq!(sessions.new_session(), []);
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
