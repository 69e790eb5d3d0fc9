//! The saved setup: what `tikrelay` without a command starts with (the handles last connected,
//! the config file, the port), kept as `setup.json` in the data dir. It is written when `live`
//! connects and when the streamer asks the dashboard to remember a handle, and read only by the
//! start without a command; nothing else depends on it, so deleting the file just means the next
//! start shows the dashboard's connect screen again.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::persist::DataDir;
use crate::sources::live::Target;

/// The file in the data dir.
pub const SETUP_FILE: &str = "setup.json";
/// Handles kept at most: a setup, not a history.
pub const MAX_HANDLES: usize = 16;

/// What the next start without a command uses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SavedSetup {
    /// Handles without the `@`, connected at start in this order.
    pub handles: Vec<String>,
    /// The config file given last (`--config`), used when none is given.
    pub config: Option<PathBuf>,
    /// The port given last (`--port`), used when none is given.
    pub port: Option<u16>,
}

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error("{0}")]
    BadHandle(String),
    #[error("no data folder, so nothing can be remembered; start tikrelay with --data-dir")]
    NoDataDir,
    #[error("cannot save {path}: {source}")]
    Write {
        path: String,
        source: std::io::Error,
    },
}

/// Normalises what a streamer typed (`@user`, `user`, a live link) to the bare handle; a room id
/// is refused because it changes with every LIVE.
pub fn handle_of(raw: &str) -> Result<String, SetupError> {
    match Target::parse(raw).map_err(SetupError::BadHandle)? {
        Target::User(u) => Ok(u),
        Target::Room(_) => Err(SetupError::BadHandle(format!(
            "{raw:?} is a room id, which changes with every LIVE; remember the @handle instead"
        ))),
    }
}

/// The saved setup in a data dir, read once and written through.
#[derive(Debug)]
pub struct SetupStore {
    dir: Option<DataDir>,
    current: Mutex<SavedSetup>,
    /// The config and port this start was given, saved along with a handle.
    start_config: Option<PathBuf>,
    start_port: Option<u16>,
    /// Started without a command: the dashboard offers its connect screen whenever no source
    /// runs. Other commands name their source, so their dashboards never do.
    offers_connect: AtomicBool,
}

impl SetupStore {
    /// Reads `setup.json` from `dir` (empty when absent; a file that does not parse is kept aside
    /// as `setup.json.bad`, as every data dir file is).
    pub fn open(dir: Option<DataDir>) -> SetupStore {
        let current = dir
            .as_ref()
            .and_then(|d| d.load::<SavedSetup>(SETUP_FILE))
            .unwrap_or_default();
        SetupStore {
            dir,
            current: Mutex::new(current),
            start_config: None,
            start_port: None,
            offers_connect: AtomicBool::new(false),
        }
    }

    /// Notes the config file and port this start was given (not defaulted): saving a handle
    /// saves them too, so the next start without a command runs the same way.
    pub fn with_start(mut self, config: Option<PathBuf>, port: Option<u16>) -> SetupStore {
        self.start_config = config;
        self.start_port = port;
        self
    }

    /// Marks this relay as started without a command (see `offers_connect`).
    pub fn offer_connect(&self) {
        self.offers_connect.store(true, Ordering::Relaxed);
    }

    pub fn offers_connect(&self) -> bool {
        self.offers_connect.load(Ordering::Relaxed)
    }

    pub fn get(&self) -> SavedSetup {
        self.current.lock().expect("setup lock").clone()
    }

    /// Changes the setup and saves it; on a failed write the change is kept in memory only.
    pub fn update(&self, change: impl FnOnce(&mut SavedSetup)) -> Result<SavedSetup, SetupError> {
        let dir = self.dir.as_ref().ok_or(SetupError::NoDataDir)?;
        let mut current = self.current.lock().expect("setup lock");
        let mut next = current.clone();
        change(&mut next);
        if let Some(c) = &self.start_config {
            next.config = Some(c.clone());
        }
        if let Some(p) = self.start_port {
            next.port = Some(p);
        }
        next.handles.truncate(MAX_HANDLES);
        if next == *current {
            return Ok(next);
        }
        let bytes = serde_json::to_vec_pretty(&next).expect("setup serialises");
        dir.write_atomic(SETUP_FILE, &bytes)
            .map_err(|source| SetupError::Write {
                path: dir.path().join(SETUP_FILE).display().to_string(),
                source,
            })?;
        *current = next.clone();
        Ok(next)
    }

    /// Adds a handle (the dashboard's "remember"); already there, nothing changes.
    pub fn remember(&self, raw: &str) -> Result<SavedSetup, SetupError> {
        let handle = handle_of(raw)?;
        self.update(|s| {
            if !s.handles.iter().any(|h| h.eq_ignore_ascii_case(&handle)) {
                s.handles.push(handle);
            }
        })
    }

    /// Makes `handles` the setup's (a `live` that connected); each is checked as a handle.
    pub fn replace_handles(&self, handles: Vec<String>) -> Result<SavedSetup, SetupError> {
        let handles = handles
            .iter()
            .map(|h| handle_of(h))
            .collect::<Result<Vec<_>, _>>()?;
        self.update(|s| s.handles = handles)
    }

    /// Removes a handle (the dashboard's "forget").
    pub fn forget(&self, raw: &str) -> Result<SavedSetup, SetupError> {
        let handle = handle_of(raw)?;
        self.update(|s| s.handles.retain(|h| !h.eq_ignore_ascii_case(&handle)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> SetupStore {
        SetupStore::open(Some(DataDir::open(dir).unwrap()))
    }

    #[test]
    fn remembered_handles_survive_a_restart() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        s.remember("@Alice").unwrap();
        s.remember("https://www.tiktok.com/@bob/live").unwrap();
        s.remember("alice").unwrap();
        let again = store(tmp.path()).get();
        assert_eq!(again.handles, ["Alice", "bob"]);
        assert_eq!(again.port, None);
        store(tmp.path()).forget("@ALICE").unwrap();
        assert_eq!(store(tmp.path()).get().handles, ["bob"]);
    }

    #[test]
    fn a_handle_is_saved_with_the_config_and_port_of_its_start() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path()).with_start(Some("/x/tikrelay.toml".into()), Some(9000));
        s.replace_handles(vec!["@a".into(), "b".into()]).unwrap();
        let again = store(tmp.path()).get();
        assert_eq!(again.handles, ["a", "b"]);
        assert_eq!(again.port, Some(9000));
        assert_eq!(again.config, Some(PathBuf::from("/x/tikrelay.toml")));
        // A later start without them keeps what was saved.
        store(tmp.path()).remember("@c").unwrap();
        assert_eq!(store(tmp.path()).get().port, Some(9000));
    }

    #[test]
    fn bad_handles_and_room_ids_are_refused_in_words() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path());
        let e = s.remember("not a handle!").unwrap_err().to_string();
        assert!(e.contains("is not a TikTok handle"), "{e}");
        let e = s.remember("room:123").unwrap_err().to_string();
        assert!(e.contains("room id"), "{e}");
        assert!(!tmp.path().join(SETUP_FILE).exists());
    }

    #[test]
    fn a_broken_file_is_kept_aside_and_the_setup_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join(SETUP_FILE), "{not json").unwrap();
        assert_eq!(store(tmp.path()).get(), SavedSetup::default());
        assert!(tmp.path().join("setup.json.bad").exists());
    }

    #[test]
    fn without_a_data_dir_remembering_says_what_to_do() {
        let s = SetupStore::open(None);
        let e = s.remember("@alice").unwrap_err().to_string();
        assert!(e.contains("--data-dir"), "{e}");
    }
}
