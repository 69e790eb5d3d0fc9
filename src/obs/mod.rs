//! OBS Studio control over obs-websocket v5 (built into OBS 28 and later): the wire format
//! ([`protocol`]), one identified connection ([`client`]), the `[obs]` settings and trigger
//! actions as the config file writes them ([`config`]), the rules for timed actions that
//! overlap ([`holds`]) and the worker that runs actions in order ([`worker`]).
//!
//! Triggers never talk to OBS themselves: they hand an [`ObsCommand`] to the worker's bounded
//! queue and go on, so a closed or frozen OBS never delays an alert. [`check`] is the
//! dashboard's "Test OBS" button: a fresh connection that reports OBS's version or, in words,
//! what is wrong.

pub mod client;
pub mod config;
pub mod holds;
pub mod protocol;
pub mod worker;

use std::fmt;
use std::time::Duration;

use serde_json::{Value, json};

pub use client::{ObsClient, ObsError, ObsEvent};
pub use worker::{ObsHandle, ObsWorkerConfig, spawn_worker};

/// Environment variable that supplies the OBS websocket password (wins over the file).
pub const PASSWORD_ENV: &str = "TIKRELAY_OBS_PASSWORD";
pub const DEFAULT_HOST: &str = "127.0.0.1";
pub const DEFAULT_PORT: u16 = 4455;

/// Where OBS's websocket server is. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct ObsSettings {
    pub host: String,
    pub port: u16,
    /// OBS → Tools → WebSocket Server Settings → Server Password; `None` when OBS has
    /// authentication turned off.
    pub password: Option<String>,
    /// Bound on connecting and on every request.
    pub timeout: Duration,
    /// Actions that may wait while OBS is slow or away; more are dropped (logged).
    pub queue_capacity: usize,
}

impl Default for ObsSettings {
    fn default() -> Self {
        ObsSettings {
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            password: None,
            timeout: Duration::from_secs(5),
            queue_capacity: 100,
        }
    }
}

impl ObsSettings {
    /// `host:port` to connect to (IPv6 hosts in brackets).
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Debug for ObsSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ObsSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field(
                "password",
                &if self.password.is_some() {
                    "<hidden>"
                } else {
                    "<none>"
                },
            )
            .field("timeout", &self.timeout)
            .field("queue_capacity", &self.queue_capacity)
            .finish()
    }
}

/// A trigger's OBS action as configured; the text is the name of a compiled template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObsAction {
    /// `obs = { scene = "Boss fight", for_ms = 10000 }`
    Scene {
        scene: String,
        hold: Option<Duration>,
    },
    /// `obs = { source = "Confetti", scene = "Main", show_ms = 5000 }`
    Source {
        source: String,
        scene: Option<String>,
        show_for: Option<Duration>,
    },
    /// `obs = { text_source = "Last follower", text = "{{user.nickname}}" }`
    Text { input: String, template: String },
}

/// One thing for the worker to do in OBS, with its text rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObsCommand {
    /// Switch the program scene; with `hold`, switch back afterwards (see [`holds`]).
    Scene {
        scene: String,
        hold: Option<Duration>,
    },
    /// Show a scene item; with `show_for`, put it back as it was afterwards. `scene: None` is
    /// the scene on program when the command runs.
    Source {
        source: String,
        scene: Option<String>,
        show_for: Option<Duration>,
    },
    /// Set a text source's text.
    Text { input: String, text: String },
}

impl ObsAction {
    /// The command for one firing; `render` turns a template name into text (`None` when it
    /// failed, which it has logged).
    pub fn command(&self, render: impl FnOnce(&str) -> Option<String>) -> Option<ObsCommand> {
        Some(match self {
            ObsAction::Scene { scene, hold } => ObsCommand::Scene {
                scene: scene.clone(),
                hold: *hold,
            },
            ObsAction::Source {
                source,
                scene,
                show_for,
            } => ObsCommand::Source {
                source: source.clone(),
                scene: scene.clone(),
                show_for: *show_for,
            },
            ObsAction::Text { input, template } => ObsCommand::Text {
                input: input.clone(),
                text: render(template)?,
            },
        })
    }
}

/// Makes a template context plain text for OBS: control characters (line breaks, escapes,
/// bells) are removed from every string the event brings, so a nickname cannot add lines to a
/// label. Nothing is escaped: a text source shows characters, never markup, so `<b>` or `&amp;`
/// must arrive exactly as typed.
pub fn plain_text_context(value: &mut Value) {
    match value {
        Value::String(s) if s.chars().any(char::is_control) => {
            s.retain(|c| !c.is_control());
        }
        Value::Array(items) => items.iter_mut().for_each(plain_text_context),
        Value::Object(map) => map.values_mut().for_each(plain_text_context),
        _ => {}
    }
}

/// The dashboard's "Test OBS" check: connects with `settings` and reports OBS's version and
/// program scene, or the error in words.
pub async fn check(settings: &ObsSettings) -> Result<Value, ObsError> {
    let mut client = ObsClient::connect(settings, 0).await?;
    let version = client.request("GetVersion", Value::Null).await?;
    let scene = client
        .request("GetCurrentProgramScene", Value::Null)
        .await?;
    Ok(json!({
        "obs_version": version["obsVersion"],
        "websocket_version": version["obsWebSocketVersion"],
        "program_scene": scene["currentProgramSceneName"],
        "addr": settings.addr(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_the_password() {
        let s = ObsSettings {
            password: Some("hunter2-obs".into()),
            ..ObsSettings::default()
        };
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<hidden>"));
    }

    #[test]
    fn plain_text_keeps_markup_and_drops_control_characters() {
        let mut v = json!({"user": {"nickname": "<b>Ana</b>\n{{x}}\u{7}&amp;\u{202e}"}, "n": 3});
        plain_text_context(&mut v);
        assert_eq!(v["user"]["nickname"], "<b>Ana</b>{{x}}&amp;\u{202e}");
        assert_eq!(v["n"], 3);
    }
}
