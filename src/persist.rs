//! The data dir (`--data-dir`): pending alerts, alert history and session totals, saved so a
//! crash or restart in the middle of a stream loses no alert and no total.
//!
//! Files are JSON, written atomically: a temp file in the same folder, flushed to disk, then
//! renamed over the old one, so a crash mid-write leaves the previous version, never half a file.
//! A write that fails (a full disk) removes its temp file; the state stays in memory and is
//! saved again on the next change, and the failure is logged once, with what to do, until a
//! save works again (logged too).
//! [`Saver`] writes when something changed, debounced (a like storm becomes one write a second),
//! and once more at shutdown. A file that does not parse is kept aside as `NAME.bad` and the relay
//! starts fresh instead of refusing to start.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::alerts::AlertQueues;
use crate::stats::{LeaderEntry, Stats};

/// Pending alerts and history.
pub const ALERTS_FILE: &str = "alerts.json";
/// Session totals and leaderboards.
pub const SESSION_FILE: &str = "session.json";
/// Least time between two saves while changes keep coming.
pub const DEBOUNCE: Duration = Duration::from_secs(1);
/// How often a failing save is tried again while nothing changes.
pub const RETRY: Duration = Duration::from_secs(5);
/// Leaderboard entries saved per board. A big stream has hundreds of thousands of likers, and
/// the file is rewritten every second while they like; below this rank nobody is shown anyway.
pub const SAVED_LEADERS: usize = 1000;

/// The per-user default: `$XDG_DATA_HOME/tikrelay`, `~/.local/share/tikrelay`, `%APPDATA%\tikrelay`
/// on Windows, `~/Library/Application Support/tikrelay` on macOS.
pub fn default_data_dir() -> Option<PathBuf> {
    let env = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    if cfg!(windows) {
        return env("APPDATA").map(|d| d.join("tikrelay"));
    }
    if cfg!(target_os = "macos") {
        return env("HOME").map(|h| h.join("Library/Application Support/tikrelay"));
    }
    env("XDG_DATA_HOME")
        .or_else(|| env("HOME").map(|h| h.join(".local/share")))
        .map(|d| d.join("tikrelay"))
}

/// An existing, writable folder.
#[derive(Debug, Clone)]
pub struct DataDir {
    dir: PathBuf,
}

impl DataDir {
    /// Creates the folder if needed and checks that a file can be written there.
    pub fn open(dir: &Path) -> std::io::Result<DataDir> {
        std::fs::create_dir_all(dir)?;
        let probe = dir.join(".tikrelay-write-test");
        std::fs::write(&probe, b"ok")?;
        let _ = std::fs::remove_file(&probe);
        Ok(DataDir {
            dir: dir.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Reads `name`; `None` when absent or unreadable (logged, and a bad file is kept aside).
    pub fn load<T: DeserializeOwned>(&self, name: &str) -> Option<T> {
        let path = self.dir.join(name);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!("cannot read {}: {e}; starting without it", path.display());
                return None;
            }
        };
        match serde_json::from_slice(&bytes) {
            Ok(v) => Some(v),
            Err(e) => {
                let aside = self.dir.join(format!("{name}.bad"));
                let _ = std::fs::rename(&path, &aside);
                tracing::warn!(
                    "{} does not parse ({e}); moved it to {} and starting without it",
                    path.display(),
                    aside.display()
                );
                None
            }
        }
    }

    /// Writes `bytes` to `name` atomically (temp file, fsync, rename).
    /// On failure the temp file is removed, so a full disk never collects empty files.
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        let written = std::fs::File::create(&tmp).and_then(|mut f| {
            f.write_all(bytes)?;
            f.sync_all()
        });
        let result = written.and_then(|()| std::fs::rename(&tmp, &path));
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }

    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        self.write_atomic(name, &bytes)
    }
}

/// Keeps the [`SAVED_LEADERS`] best entries of a leaderboard.
fn trim_board(board: &mut HashMap<String, LeaderEntry>) {
    crate::stats::keep_best(board, SAVED_LEADERS);
}

/// Saves alerts and totals when they change, debounced, and on demand at shutdown.
pub struct Saver {
    dir: DataDir,
    stats: Arc<Stats>,
    alerts: Weak<AlertQueues>,
    dirty: Notify,
    /// The last save failed (logged once until one works again).
    failing: AtomicBool,
}

impl Saver {
    pub fn new(dir: DataDir, stats: Arc<Stats>, alerts: &Arc<AlertQueues>) -> Arc<Saver> {
        Arc::new(Saver {
            dir,
            stats,
            alerts: Arc::downgrade(alerts),
            dirty: Notify::new(),
            failing: AtomicBool::new(false),
        })
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Something changed; a save follows within [`DEBOUNCE`].
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Writes both files now. A failure is logged once (and a success after it), the
    /// in-memory state is kept, and the next change tries again.
    pub fn save_now(&self) {
        let mut session = self.stats.session_state();
        trim_board(&mut session.gifters);
        trim_board(&mut session.likers);
        for s in session.streams.values_mut() {
            trim_board(&mut s.gifters);
            trim_board(&mut s.likers);
        }
        let mut result = self.dir.save(SESSION_FILE, &session);
        if let Some(alerts) = self.alerts.upgrade() {
            let saved = self.dir.save(ALERTS_FILE, &alerts.saved());
            result = result.and(saved);
        }
        let dir = self.dir.path().display();
        match result {
            Ok(()) => {
                if self.failing.swap(false, Ordering::Relaxed) {
                    tracing::info!(
                        "saving to {dir} works again: pending alerts and totals are saved"
                    );
                }
            }
            Err(e) => {
                if !self.failing.swap(true, Ordering::Relaxed) {
                    tracing::error!(
                        "cannot save pending alerts and totals in {dir}: {e}; they are kept in memory and saved as soon as it can be written to: free disk space there (or fix the folder's permissions), or they are lost when tikrelay stops"
                    );
                } else {
                    tracing::debug!("saving in {dir} still fails: {e}");
                }
            }
        }
    }

    /// Whether the last save failed.
    pub fn failing(&self) -> bool {
        self.failing.load(Ordering::Relaxed)
    }

    /// Saves after each burst of changes until the relay's alert queues are gone.
    pub async fn run(self: Arc<Self>) {
        loop {
            if self.failing() {
                // Retry without waiting for a change: the disk may have room again.
                tokio::select! {
                    _ = self.dirty.notified() => {}
                    _ = tokio::time::sleep(RETRY) => {}
                }
            } else {
                self.dirty.notified().await;
            }
            tokio::time::sleep(DEBOUNCE).await;
            if self.alerts.strong_count() == 0 {
                break;
            }
            let me = self.clone();
            // File IO off the async threads; a big leaderboard takes a moment to write.
            let _ = tokio::task::spawn_blocking(move || me.save_now()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::User;

    #[test]
    fn atomic_writes_replace_the_file_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(&dir.path().join("new")).unwrap();
        data.save("x.json", &vec![1, 2]).unwrap();
        data.save("x.json", &vec![3]).unwrap();
        assert_eq!(data.load::<Vec<u32>>("x.json"), Some(vec![3]));
        let names: Vec<_> = std::fs::read_dir(data.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["x.json"]);
    }

    #[test]
    fn a_file_that_does_not_parse_is_kept_aside() {
        let dir = tempfile::tempdir().unwrap();
        let data = DataDir::open(dir.path()).unwrap();
        std::fs::write(dir.path().join("x.json"), b"{half").unwrap();
        assert_eq!(data.load::<Vec<u32>>("x.json"), None);
        assert!(dir.path().join("x.json.bad").exists());
        assert_eq!(data.load::<Vec<u32>>("missing.json"), None);
    }

    #[test]
    fn saved_leaderboards_keep_the_best() {
        let mut board = HashMap::new();
        for i in 0..(SAVED_LEADERS as u64 + 500) {
            board.insert(
                i.to_string(),
                LeaderEntry {
                    user: User::default(),
                    score: i / 2,
                },
            );
        }
        trim_board(&mut board);
        assert_eq!(board.len(), SAVED_LEADERS);
        let lowest = board.values().map(|e| e.score).min().unwrap();
        assert_eq!(lowest, 250);
    }
}
