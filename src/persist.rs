//! The data dir (`--data-dir`): pending alerts, alert history and session totals, saved so a
//! crash or restart in the middle of a stream loses no alert and no total.
//!
//! Files are JSON, written atomically: a temp file in the same folder, flushed to disk, then
//! renamed over the old one, so a crash mid-write leaves the previous version, never half a file.
//! [`Saver`] writes when something changed, debounced (a like storm becomes one write a second),
//! and once more at shutdown. A file that does not parse is kept aside as `NAME.bad` and the relay
//! starts fresh instead of refusing to start.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
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
    pub fn write_atomic(&self, name: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.dir.join(name);
        let tmp = self.dir.join(format!(".{name}.tmp"));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, &path)
    }

    pub fn save<T: Serialize>(&self, name: &str, value: &T) -> std::io::Result<()> {
        let bytes = serde_json::to_vec(value).map_err(std::io::Error::other)?;
        self.write_atomic(name, &bytes)
    }
}

/// Keeps the [`SAVED_LEADERS`] best entries of a leaderboard.
fn trim_board(board: &mut HashMap<String, LeaderEntry>) {
    if board.len() <= SAVED_LEADERS {
        return;
    }
    let mut scores: Vec<u64> = board.values().map(|e| e.score).collect();
    let cut = scores.len() - SAVED_LEADERS;
    let (_, threshold, _) = scores.select_nth_unstable(cut);
    let threshold = *threshold;
    board.retain(|_, e| e.score >= threshold);
    // Ties at the threshold may leave more; drop the excess among them.
    let excess = board.len().saturating_sub(SAVED_LEADERS);
    let ties: Vec<String> = board
        .iter()
        .filter(|(_, e)| e.score == threshold)
        .map(|(k, _)| k.clone())
        .take(excess)
        .collect();
    for key in ties {
        board.remove(&key);
    }
}

/// Saves alerts and totals when they change, debounced, and on demand at shutdown.
pub struct Saver {
    dir: DataDir,
    stats: Arc<Stats>,
    alerts: Weak<AlertQueues>,
    dirty: Notify,
}

impl Saver {
    pub fn new(dir: DataDir, stats: Arc<Stats>, alerts: &Arc<AlertQueues>) -> Arc<Saver> {
        Arc::new(Saver {
            dir,
            stats,
            alerts: Arc::downgrade(alerts),
            dirty: Notify::new(),
        })
    }

    pub fn dir(&self) -> &DataDir {
        &self.dir
    }

    /// Something changed; a save follows within [`DEBOUNCE`].
    pub fn mark_dirty(&self) {
        self.dirty.notify_one();
    }

    /// Writes both files now.
    pub fn save_now(&self) {
        let mut session = self.stats.session_state();
        trim_board(&mut session.gifters);
        trim_board(&mut session.likers);
        if let Err(e) = self.dir.save(SESSION_FILE, &session) {
            tracing::error!(
                "cannot save session totals in {}: {e}",
                self.dir.path().display()
            );
        }
        if let Some(alerts) = self.alerts.upgrade()
            && let Err(e) = self.dir.save(ALERTS_FILE, &alerts.saved())
        {
            tracing::error!(
                "cannot save pending alerts in {}: {e}",
                self.dir.path().display()
            );
        }
    }

    /// Saves after each burst of changes until the relay's alert queues are gone.
    pub async fn run(self: Arc<Self>) {
        loop {
            self.dirty.notified().await;
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
