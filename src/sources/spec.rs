//! What a request to start a source says, checked before anything starts: the kind and its
//! fields (`{"kind":"live","target":"@user"}`, `{"kind":"demo","name":…,"rate":4,"seed":1}`,
//! `{"kind":"replay","file":…,"speed":1.0,"loop":true}`), and the stream name each kind of
//! source gets. Anything wrong is a [`SourceError::BadRequest`] that names the field.

use std::path::{Path, PathBuf};

use serde_json::Value;

use super::live::Target;
use super::{demo, replay};

/// Longest stream name a demo may be given.
pub const MAX_STREAM_NAME: usize = 64;
/// Highest demo rate accepted over the API (messages per second).
pub const MAX_DEMO_RATE: f64 = 10_000.0;

/// A source to start, checked.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    Live {
        target: Target,
        /// Wait for the LIVE to start (and start again) instead of failing.
        wait_live: bool,
    },
    Demo {
        /// The stream name; `None` picks `demo` (or `demo-2`, … when taken).
        name: Option<String>,
        options: demo::DemoOptions,
    },
    Replay {
        file: PathBuf,
        options: replay::ReplayOptions,
    },
}

/// Why a request was refused or a source cannot be found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SourceError {
    #[error("{0}")]
    BadRequest(String),
    #[error("no source {0:?}; GET /api/sources lists the sources")]
    NotFound(String),
    #[error(
        "the stream {0:?} is already fed by source {1}; stop that one first or give another name"
    )]
    StreamTaken(String, String),
}

/// A live source's stream: the handle, or the room id.
pub fn live_stream(target: &Target) -> String {
    match target {
        Target::User(u) => u.clone(),
        Target::Room(r) => r.clone(),
    }
}

/// A replay's stream: the file's stem.
pub fn replay_stream(file: &Path) -> String {
    file.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "replay".into())
}

/// Checks a demo's stream name: letters, digits, `_`, `-`, `.`, at most [`MAX_STREAM_NAME`].
pub fn check_stream_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_STREAM_NAME
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a stream name; use up to {MAX_STREAM_NAME} letters, digits, _, - or ., e.g. \"demo2\""
        ))
    }
}

impl SourceSpec {
    /// Reads `{"kind":"live","target":"@user"}`, `{"kind":"demo","name":…,"rate":4,"seed":1}`
    /// or `{"kind":"replay","file":…,"speed":1.0,"loop":true}`; anything wrong is a
    /// [`SourceError::BadRequest`] naming the field.
    pub fn from_json(body: &Value) -> Result<SourceSpec, SourceError> {
        let bad = |m: String| SourceError::BadRequest(m);
        let Value::Object(obj) = body else {
            return Err(bad(
                "send a JSON object, e.g. {\"kind\":\"demo\"} or {\"kind\":\"live\",\"target\":\"@user\"}".into(),
            ));
        };
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
        let text = |field: &str| -> Result<Option<&str>, SourceError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(s.as_str())),
                Some(_) => Err(bad(format!("\"{field}\" must be a string"))),
            }
        };
        let number = |field: &str| -> Result<Option<f64>, SourceError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_f64()
                    .map(Some)
                    .ok_or_else(|| bad(format!("\"{field}\" must be a number"))),
            }
        };
        let flag = |field: &str| -> Result<bool, SourceError> {
            match obj.get(field) {
                None | Some(Value::Null) => Ok(false),
                Some(Value::Bool(b)) => Ok(*b),
                Some(_) => Err(bad(format!("\"{field}\" must be true or false"))),
            }
        };
        match kind {
            "live" => {
                let Some(raw) = text("target")? else {
                    return Err(bad(
                        "a live source needs a \"target\", e.g. {\"kind\":\"live\",\"target\":\"@user\"}".into(),
                    ));
                };
                let target = Target::parse(raw).map_err(bad)?;
                Ok(SourceSpec::Live {
                    target,
                    wait_live: flag("wait_live")?,
                })
            }
            "demo" => {
                let name = text("name")?.map(str::trim).filter(|n| !n.is_empty());
                if let Some(name) = name {
                    check_stream_name(name).map_err(bad)?;
                }
                let rate = number("rate")?.unwrap_or(4.0);
                if !(rate.is_finite() && (0.0..=MAX_DEMO_RATE).contains(&rate)) {
                    return Err(bad(format!(
                        "\"rate\" {rate} is not a rate; give messages per second from 0 to {MAX_DEMO_RATE}, e.g. 4"
                    )));
                }
                let seed = match obj.get("seed") {
                    None | Some(Value::Null) => 1,
                    Some(v) => v.as_u64().ok_or_else(|| {
                        bad("\"seed\" must be a whole number from 0 up, e.g. 1".into())
                    })?,
                };
                Ok(SourceSpec::Demo {
                    name: name.map(str::to_string),
                    options: demo::DemoOptions { rate, seed },
                })
            }
            "replay" => {
                let Some(file) = text("file")?.filter(|f| !f.trim().is_empty()) else {
                    return Err(bad(
                        "a replay needs a \"file\", e.g. {\"kind\":\"replay\",\"file\":\"stream.tikrec\"}".into(),
                    ));
                };
                let file = PathBuf::from(file);
                if !file.is_file() {
                    return Err(bad(format!(
                        "cannot read {}: no such file (give the path of a recording on this PC)",
                        file.display()
                    )));
                }
                replay::detect(&file).map_err(|e| bad(e.to_string()))?;
                let max = flag("max")?;
                let speed = number("speed")?.unwrap_or(1.0);
                if !max {
                    replay::validate_speed(speed)
                        .map_err(|e| bad(e.replace("--speed", "\"speed\"")))?;
                }
                Ok(SourceSpec::Replay {
                    file,
                    options: replay::ReplayOptions {
                        speed,
                        max,
                        repeat: flag("loop")?,
                    },
                })
            }
            "" => Err(bad(
                "the source needs a \"kind\": live, demo or replay".into()
            )),
            other => Err(bad(format!(
                "unknown source kind {other:?}; use live, demo or replay"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_are_checked_field_by_field() {
        let err = |v: Value| match SourceSpec::from_json(&v) {
            Err(SourceError::BadRequest(m)) => m,
            other => panic!("{v}: {other:?}"),
        };
        assert!(err(json!({"kind": "radio"})).contains("unknown source kind"));
        assert!(err(json!({})).contains("\"kind\""));
        assert!(err(json!([1])).contains("JSON object"));
        assert!(err(json!({"kind": "live"})).contains("\"target\""));
        assert!(err(json!({"kind": "live", "target": "a b"})).contains("not a TikTok handle"));
        assert!(err(json!({"kind": "demo", "rate": -1})).contains("\"rate\""));
        assert!(err(json!({"kind": "demo", "name": "<b>"})).contains("not a stream name"));
        assert!(err(json!({"kind": "demo", "seed": "x"})).contains("\"seed\""));
        assert!(err(json!({"kind": "replay"})).contains("\"file\""));
        assert!(
            err(json!({"kind": "replay", "file": "/no/such/file.tikrec"})).contains("no such file")
        );
        assert!(matches!(
            SourceSpec::from_json(&json!({"kind": "live", "target": "@alice"})),
            Ok(SourceSpec::Live { target: Target::User(u), wait_live: false }) if u == "alice"
        ));
        assert!(matches!(
            SourceSpec::from_json(&json!({"kind": "demo", "name": "b", "rate": 2, "seed": 7})),
            Ok(SourceSpec::Demo { name: Some(n), options }) if n == "b" && options.seed == 7
        ));
    }

    #[test]
    fn streams_are_named_after_what_they_play() {
        assert_eq!(live_stream(&Target::User("alice".into())), "alice");
        assert_eq!(replay_stream(Path::new("/x/show.tikrec")), "show");
        assert_eq!(replay_stream(Path::new("/x/events.jsonl")), "events");
    }
}
