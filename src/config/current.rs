//! The config a running relay uses right now, and the file it comes from. A reload (a save
//! noticed by [`super::watch`], or the relay's own edit) parses the file again: a good file
//! replaces the config, a broken one is kept as the current problem (file, line, column) while
//! the last good config goes on running. Whoever applies configs (the trigger engine, goals)
//! follows [`ConfigState::subscribe`]; the dashboard reads [`ConfigState::status`].

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::{Config, ConfigError};

/// What is wrong with the config file, for the log and the dashboard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl From<&ConfigError> for ConfigProblem {
    fn from(e: &ConfigError) -> Self {
        match e {
            ConfigError::Invalid {
                file,
                line,
                column,
                message,
            } => ConfigProblem {
                file: file.clone(),
                line: Some(*line),
                column: Some(*column),
                message: message.clone(),
            },
            ConfigError::Read { file, .. }
            | ConfigError::NotAFile { file, .. }
            | ConfigError::TooLarge { file } => ConfigProblem {
                file: file.clone(),
                line: None,
                column: None,
                message: e.to_string(),
            },
        }
    }
}

impl std::fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{l}:{c}: {}", self.file, self.message),
            _ => f.write_str(&self.message),
        }
    }
}

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reloaded {
    /// The file is as last loaded (e.g. a save without changes).
    Unchanged,
    /// A new config is in use.
    Applied,
    /// The file is broken; the last good config stays.
    Kept(ConfigProblem),
}

struct Inner {
    config: Arc<Config>,
    /// The text the config was parsed from (`None`: the built-in default).
    text: Option<String>,
    problem: Option<ConfigProblem>,
}

/// The current config and where it comes from.
pub struct ConfigState {
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// Bumped after every reload that changed the config or its problem.
    changed: watch::Sender<u64>,
}

impl ConfigState {
    /// `config` was loaded from `path` (`None`: the built-in default, never reloaded).
    pub fn new(path: Option<PathBuf>, config: Arc<Config>) -> Arc<ConfigState> {
        let text = path
            .as_ref()
            .and_then(|p| super::read_bounded(p, &p.display().to_string()).ok());
        Arc::new(ConfigState {
            path,
            inner: Mutex::new(Inner {
                config,
                text,
                problem: None,
            }),
            changed: watch::channel(0).0,
        })
    }

    /// The config file, if the relay uses one.
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// The config in use.
    pub fn get(&self) -> Arc<Config> {
        self.lock().config.clone()
    }

    /// What is wrong with the file since the last save, if anything.
    pub fn problem(&self) -> Option<ConfigProblem> {
        self.lock().problem.clone()
    }

    /// The sign server's API key from the file (`[live] sign_api_key`).
    pub fn sign_api_key(&self) -> Option<String> {
        self.lock().config.sign_api_key.clone()
    }

    /// Changes after every reload that applied a config or found a problem.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Reads and parses the file again. Logs what happened (never the file's secrets).
    pub fn reload(&self) -> Reloaded {
        let Some(path) = &self.path else {
            return Reloaded::Unchanged;
        };
        let file = path.display().to_string();
        let parsed = super::read_bounded(path, &file)
            .and_then(|text| Config::parse(&text, &file).map(|c| (text, c)));
        let mut inner = self.lock();
        let outcome = match parsed {
            Ok((text, _)) if inner.text.as_ref() == Some(&text) && inner.problem.is_none() => {
                return Reloaded::Unchanged;
            }
            Ok((text, config)) => {
                tracing::info!(
                    "config reloaded from {file}: {} trigger(s); queues: {}",
                    config.triggers.len(),
                    config.queues.keys().cloned().collect::<Vec<_>>().join(", ")
                );
                if inner.problem.is_some() {
                    tracing::info!("the config file is fixed");
                }
                inner.config = Arc::new(config);
                inner.text = Some(text);
                inner.problem = None;
                Reloaded::Applied
            }
            Err(e) => {
                let problem = ConfigProblem::from(&e);
                if inner.problem.as_ref() == Some(&problem) {
                    return Reloaded::Unchanged;
                }
                tracing::error!("{e}; the last good config keeps running until the file is fixed");
                inner.problem = Some(problem.clone());
                Reloaded::Kept(problem)
            }
        };
        drop(inner);
        self.changed.send_modify(|n| *n += 1);
        outcome
    }

    /// The dashboard's view: the file, its problem, the triggers, and the sign key masked.
    pub fn status(&self) -> Value {
        let inner = self.lock();
        let triggers: Vec<Value> = inner
            .config
            .triggers
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut actions = Vec::new();
                if let Some(a) = &t.alert {
                    actions.push(format!("alert on {}", a.queue));
                }
                if !t.rcon.is_empty() {
                    actions.push("rcon".to_string());
                }
                if t.webhook.is_some() {
                    actions.push("webhook".to_string());
                }
                if t.streamerbot.is_some() {
                    actions.push("streamerbot".to_string());
                }
                if t.obs.is_some() {
                    actions.push("obs".to_string());
                }
                json!({"index": i, "name": t.name, "on": t.on, "actions": actions})
            })
            .collect();
        json!({
            "file": self.path.as_ref().map(|p| p.display().to_string()),
            "ok": inner.problem.is_none(),
            "error": inner.problem,
            "triggers": triggers,
            "sign_api_key": masked(inner.config.sign_api_key.as_deref()),
        })
    }
}

/// `{"set": bool, "masked": "••••••3f9a" | null}`: all any API shows of the key.
pub fn masked(key: Option<&str>) -> Value {
    json!({"set": key.is_some(), "masked": key.map(super::mask_key)})
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broken_save_keeps_the_last_good_config_until_fixed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("c.toml");
        std::fs::write(&path, super::super::DEFAULT_CONFIG).unwrap();
        let config = super::super::load(Some(&path)).unwrap();
        let state = ConfigState::new(Some(path.clone()), Arc::new(config));
        let mut rx = state.subscribe();
        assert_eq!(state.reload(), Reloaded::Unchanged);

        std::fs::write(
            &path,
            "[[trigger]]\non = \"folow\"\nalert = { title = \"x\" }\n",
        )
        .unwrap();
        let Reloaded::Kept(p) = state.reload() else {
            panic!("not kept")
        };
        assert_eq!((p.line, p.column), (Some(2), Some(6)), "{p}");
        assert_eq!(state.get().triggers.len(), 3, "last good config");
        assert!(rx.has_changed().unwrap());
        rx.mark_unchanged();
        assert_eq!(state.reload(), Reloaded::Unchanged, "same problem");
        assert_eq!(state.status()["error"]["line"], 2);

        std::fs::write(
            &path,
            "[[trigger]]\non = \"follow\"\nalert = { title = \"x\" }\n",
        )
        .unwrap();
        assert_eq!(state.reload(), Reloaded::Applied);
        assert_eq!(state.get().triggers.len(), 1);
        assert_eq!(state.problem(), None);
        assert!(rx.has_changed().unwrap());
    }

    #[test]
    fn the_status_masks_the_sign_key() {
        let text = "[live]\nsign_api_key = \"euler_0123456789abcdefXYZW\"\n[[trigger]]\non = \"follow\"\nalert = { title = \"x\" }\n";
        let state = ConfigState::new(None, Arc::new(Config::parse(text, "t").unwrap()));
        let status = state.status().to_string();
        assert!(!status.contains("euler_0123"), "{status}");
        assert!(status.contains("XYZW"), "{status}");
        assert_eq!(
            state.sign_api_key().as_deref(),
            Some("euler_0123456789abcdefXYZW")
        );
    }
}
