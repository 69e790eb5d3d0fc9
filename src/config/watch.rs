//! Hot reload of the config file: a save reloads it into [`ConfigState`] within a fraction of
//! a second, like themes (see `themes::watch`).
//!
//! The file's folder is watched, not the file: editors save by writing a temporary file and
//! renaming it over the original, which takes a watch on the file itself with it. Only events
//! that name the config file count, so other files in the folder (a data dir, editor backups)
//! cause no reload. A burst of events (save, format-on-save) is debounced into one reload; a
//! save that leaves the text as it was changes nothing.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use notify::RecursiveMode;
use notify_debouncer_full::{DebounceEventResult, Debouncer, RecommendedCache, new_debouncer_opt};
use tokio::sync::mpsc;

use super::current::ConfigState;

/// Quiet time that ends a burst of saves.
pub const DEBOUNCE: Duration = Duration::from_millis(100);

/// Why the config file cannot be watched.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch the config folder {}: {source}", path.display())]
pub struct WatchError {
    pub path: PathBuf,
    pub source: notify::Error,
}

/// Keeps the watch alive; dropping it stops hot reload.
pub struct ConfigWatcher {
    _debouncer: Debouncer<notify::RecommendedWatcher, RecommendedCache>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ConfigWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Watches the file of `state` (nothing to watch for the built-in config: `Ok(None)`). Must
/// run inside a tokio runtime.
pub fn spawn(state: Arc<ConfigState>) -> Result<Option<ConfigWatcher>, WatchError> {
    let Some(path) = state.path() else {
        return Ok(None);
    };
    let path = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = path
        .parent()
        .map(|d| d.to_path_buf())
        .unwrap_or_else(|| PathBuf::from("."));
    let dir = dir.canonicalize().unwrap_or(dir);
    let name = path.file_name().map(|n| n.to_os_string());
    let (tx, mut rx) = mpsc::unbounded_channel::<()>();
    let mut debouncer = new_debouncer_opt(
        DEBOUNCE,
        None,
        move |result: DebounceEventResult| match result {
            Ok(events) => {
                let ours = events
                    .iter()
                    .flat_map(|e| e.event.paths.iter())
                    .any(|p| p.file_name().map(|n| n.to_os_string()) == name);
                if ours {
                    let _ = tx.send(());
                }
            }
            Err(errors) => {
                for e in errors {
                    tracing::warn!("config folder watch: {e}");
                }
            }
        },
        RecommendedCache::new(),
        notify::Config::default(),
    )
    .map_err(|source| WatchError {
        path: dir.clone(),
        source,
    })?;
    debouncer
        .watch(&dir, RecursiveMode::NonRecursive)
        .map_err(|source| WatchError {
            path: dir.clone(),
            source,
        })?;
    let task = tokio::spawn(async move {
        while rx.recv().await.is_some() {
            while rx.try_recv().is_ok() {}
            // Parsing is quick, but reading may touch a slow disk: off the async threads.
            let state = state.clone();
            let _ = tokio::task::spawn_blocking(move || state.reload()).await;
        }
    });
    Ok(Some(ConfigWatcher {
        _debouncer: debouncer,
        task,
    }))
}
