//! The source manager: any number of sources (live, demo, replay) feeding the one pipeline,
//! started and stopped while the relay runs.
//!
//! Each source runs in its own task with its own [`Feed`], so it reconnects on its own and one
//! failing or dropping never disturbs another; its stream name (the live host's handle, the
//! demo's name, the replay file's stem) tags every event it produces. Two running sources never
//! share a stream. A stopped or finished source stays listed with its state and reason (the
//! newest [`KEEP_FINISHED`] of them), so the dashboard can say what happened; deleting a
//! finished source removes it from the list.
//!
//! Requests are checked before anything starts: an unknown kind, a bad target or name, a
//! missing or unreadable file, a speed out of range are [`SourceError::BadRequest`] and change
//! nothing.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;
use tokio::sync::{mpsc, watch};

use super::live::ws::Outputs;
use super::live::{Endpoints, LiveConfig, Target, Timings, client};
use super::{demo, replay};
use crate::events::{Event, EventKind, Source, local_id, now_ms};
use crate::pipeline::{Feed, Input, SourceState, SourceStatus, Tagged};
use crate::recorder::FrameRecorder;

/// Finished sources kept in the list (oldest dropped first).
pub const KEEP_FINISHED: usize = 20;
/// Longest stream name a demo may be given.
pub const MAX_STREAM_NAME: usize = 64;
/// Highest demo rate accepted over the API (messages per second).
pub const MAX_DEMO_RATE: f64 = 10_000.0;

/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Live,
    Demo,
    Replay,
}

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

/// A source as `/api/sources` shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SourceInfo {
    pub id: String,
    pub kind: SourceKind,
    /// `@user` or `room ID` for live, the name for a demo, the file for a replay.
    pub target: String,
    pub stream: String,
    pub state: SourceState,
    /// The current step in words (live: looking up the room, signing, connecting, connected;
    /// the error when it fails).
    pub detail: String,
    /// Why it failed or ended.
    pub reason: Option<String>,
    /// Events relayed from this source.
    pub events: u64,
    /// When the state last changed (ms since the epoch).
    pub since: i64,
    /// When the source was started (ms since the epoch).
    pub started: i64,
}

/// What a live source started over the API connects to (the `live` flags, or defaults).
#[derive(Debug, Clone, Default)]
pub struct LiveDefaults {
    pub endpoints: Endpoints,
    pub sign_api_key: Option<String>,
    pub timings: Timings,
}

/// How a source's task ended: `Err` with the message when it failed.
pub type Outcome = Result<(), String>;

struct Entry {
    id: String,
    kind: SourceKind,
    target: String,
    feed: Feed,
    started: i64,
    task: tokio::task::AbortHandle,
    done: Arc<watch::Sender<Option<Outcome>>>,
}

impl Entry {
    fn info(&self) -> SourceInfo {
        let SourceStatus {
            state,
            detail,
            reason,
            since,
        } = self.feed.origin().status();
        SourceInfo {
            id: self.id.clone(),
            kind: self.kind,
            target: self.target.clone(),
            stream: self.feed.stream().to_string(),
            state,
            detail,
            reason,
            events: self.feed.origin().relayed(),
            since,
            started: self.started,
        }
    }

    fn is_over(&self) -> bool {
        self.feed.origin().status().state.is_over()
    }
}

/// The sources of one relay.
pub struct SourceManager {
    pipeline: mpsc::Sender<Tagged>,
    live: LiveDefaults,
    /// The sign server key for live sources started from now on; replaceable, because the
    /// dashboard can store one in the config file while the relay runs.
    sign_api_key: Mutex<Option<String>>,
    entries: Mutex<Vec<Entry>>,
    next_id: AtomicU64,
}

impl SourceManager {
    pub fn new(pipeline: mpsc::Sender<Tagged>, live: LiveDefaults) -> Arc<SourceManager> {
        Arc::new(SourceManager {
            pipeline,
            sign_api_key: Mutex::new(live.sign_api_key.clone()),
            live,
            entries: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// Sets the sign server key that live sources started after this use.
    pub fn set_sign_api_key(&self, key: Option<String>) {
        *self.sign_api_key.lock().expect("sign key lock") = key;
    }

    /// Every source, oldest first.
    pub fn list(&self) -> Vec<SourceInfo> {
        let entries = self.entries.lock().expect("sources lock");
        entries.iter().map(Entry::info).collect()
    }

    pub fn get(&self, id: &str) -> Option<SourceInfo> {
        let entries = self.entries.lock().expect("sources lock");
        entries.iter().find(|e| e.id == id).map(Entry::info)
    }

    /// The streams of the sources that are running, oldest source first.
    pub fn streams(&self) -> Vec<String> {
        let entries = self.entries.lock().expect("sources lock");
        entries
            .iter()
            .filter(|e| !e.is_over())
            .map(|e| e.feed.stream().to_string())
            .collect()
    }

    /// A feed for inputs that belong to no source (test events), tagged with `stream`.
    pub fn feed(&self, stream: &str, source: Source) -> Feed {
        Feed::new(self.pipeline.clone(), stream, source)
    }

    /// Starts a source described by an API request body.
    pub fn start_json(&self, body: &Value) -> Result<SourceInfo, SourceError> {
        self.start(SourceSpec::from_json(body)?)
    }

    /// Starts a checked source.
    pub fn start(&self, spec: SourceSpec) -> Result<SourceInfo, SourceError> {
        match spec {
            SourceSpec::Live { target, wait_live } => {
                let config = LiveConfig {
                    target,
                    endpoints: self.live.endpoints.clone(),
                    sign_api_key: self.sign_api_key.lock().expect("sign key lock").clone(),
                    wait_live,
                    timings: self.live.timings.clone(),
                };
                self.start_live(config, None)
            }
            SourceSpec::Demo { name, options } => {
                let mut entries = self.entries.lock().expect("sources lock");
                let stream = match name {
                    Some(name) => {
                        check_free(&entries, &name)?;
                        name
                    }
                    None => free_name(&entries, "demo"),
                };
                let feed = self.feed(&stream, Source::Demo);
                let run_feed = feed.clone();
                Ok(
                    self.spawn(&mut entries, SourceKind::Demo, stream, feed, async move {
                        demo::run(options, run_feed).await;
                        Ok(())
                    }),
                )
            }
            SourceSpec::Replay { file, options } => {
                let mut entries = self.entries.lock().expect("sources lock");
                let stream = replay_stream(&file);
                check_free(&entries, &stream)?;
                let feed = self.feed(&stream, Source::Replay);
                feed.origin().set(
                    SourceState::Live,
                    &format!("playing {}", file.display()),
                    None,
                );
                let run_feed = feed.clone();
                let origin = feed.origin().clone();
                let target = file.display().to_string();
                Ok(
                    self.spawn(&mut entries, SourceKind::Replay, target, feed, async move {
                        let played = replay::run(file, options, run_feed).await;
                        let played = played.map_err(|e| e.to_string())?;
                        let done = format!(
                            "replay finished: {} items played, {} skipped",
                            played.sent, played.skipped
                        );
                        tracing::info!("{done}, {} gaps shortened", played.shortened_gaps);
                        origin.set(SourceState::Ended, &done, Some(done.clone()));
                        Ok(())
                    }),
                )
            }
        }
    }

    /// Starts a live source with a full configuration (the `live` command's flags), recording
    /// its frames when asked.
    pub fn start_live(
        &self,
        config: LiveConfig,
        recorder: Option<FrameRecorder>,
    ) -> Result<SourceInfo, SourceError> {
        let mut entries = self.entries.lock().expect("sources lock");
        let stream = live_stream(&config.target);
        check_free(&entries, &stream)?;
        let feed = self.feed(&stream, Source::Tiktok);
        let outputs = Outputs {
            input: feed.clone(),
            recorder,
        };
        let target = config.target.to_string();
        Ok(
            self.spawn(&mut entries, SourceKind::Live, target, feed, async move {
                client::run(config, outputs)
                    .await
                    .map_err(|e| e.to_string())
            }),
        )
    }

    fn spawn(
        &self,
        entries: &mut Vec<Entry>,
        kind: SourceKind,
        target: String,
        feed: Feed,
        run: impl Future<Output = Outcome> + Send + 'static,
    ) -> SourceInfo {
        let id = format!("s{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let done = Arc::new(watch::channel(None).0);
        let origin = feed.origin().clone();
        let task_done = done.clone();
        let who = format!("source {id} ({target})");
        // The source runs in a task of its own, watched by a second one: a source that panics
        // is reported as failed instead of staying "connecting" for ever.
        let task = tokio::spawn(run);
        let abort = task.abort_handle();
        tokio::spawn(async move {
            let outcome = match task.await {
                Ok(outcome) => outcome,
                // Stopped: `stop` has said so already.
                Err(e) if e.is_cancelled() => return,
                Err(e) => Err(format!("the source stopped unexpectedly ({e})")),
            };
            match &outcome {
                Ok(()) if origin.status().state.is_over() => {}
                Ok(()) => origin.set(SourceState::Ended, "ended", Some("ended".into())),
                Err(e) => {
                    tracing::error!("{who}: {e}");
                    origin.set(SourceState::Failed, e, Some(e.clone()))
                }
            }
            task_done.send_replace(Some(outcome));
        });
        let entry = Entry {
            id,
            kind,
            target,
            feed,
            started: now_ms(),
            task: abort,
            done,
        };
        let info = entry.info();
        tracing::info!(
            "source {} started: {:?} {} (stream {:?})",
            info.id,
            kind,
            info.target,
            info.stream
        );
        entries.push(entry);
        prune(entries);
        info
    }

    /// Stops a running source: its task ends, overlays get a final `disconnected`, and it stays
    /// listed as ended ("stopped"). Deleting a source that is already over removes it from the
    /// list. Either way the answer is the source as it was last seen.
    pub async fn stop(&self, id: &str) -> Result<SourceInfo, SourceError> {
        let (info, feed) = {
            let mut entries = self.entries.lock().expect("sources lock");
            let Some(at) = entries.iter().position(|e| e.id == id) else {
                return Err(SourceError::NotFound(id.to_string()));
            };
            let entry = &entries[at];
            if entry.is_over() {
                let entry = entries.remove(at);
                return Ok(entry.info());
            }
            entry.task.abort();
            let reason = "stopped";
            entry
                .feed
                .origin()
                .set(SourceState::Ended, reason, Some(reason.into()));
            entry.done.send_replace(Some(Ok(())));
            tracing::info!("source {id} ({}) stopped", entry.target);
            (entry.info(), entry.feed.clone())
        };
        let mut event = Event::new(
            EventKind::Disconnected {
                reason: "stopped".into(),
                will_reconnect: false,
            },
            local_id("disconnected"),
            feed.origin().source,
        );
        event.room_id = None;
        // Gone only when the relay shuts down, and then nobody listens anyway.
        let _ = feed.send(Input::Event(Box::new(event))).await;
        Ok(info)
    }

    /// Waits until the source's task ends (or it is stopped); `None` for an unknown id.
    pub async fn finished(&self, id: &str) -> Option<Outcome> {
        let mut rx = {
            let entries = self.entries.lock().expect("sources lock");
            entries.iter().find(|e| e.id == id)?.done.subscribe()
        };
        let outcome = rx.wait_for(Option::is_some).await.ok()?;
        outcome.clone()
    }

    /// Stops every source (the relay shuts down).
    pub fn abort_all(&self) {
        for e in self.entries.lock().expect("sources lock").iter() {
            e.task.abort();
        }
    }
}

impl Drop for SourceManager {
    fn drop(&mut self) {
        if let Ok(entries) = self.entries.get_mut() {
            for e in entries.iter() {
                e.task.abort();
            }
        }
    }
}

/// Drops the oldest finished sources beyond [`KEEP_FINISHED`].
fn prune(entries: &mut Vec<Entry>) {
    let finished = entries.iter().filter(|e| e.is_over()).count();
    let mut excess = finished.saturating_sub(KEEP_FINISHED);
    entries.retain(|e| {
        if excess > 0 && e.is_over() {
            excess -= 1;
            false
        } else {
            true
        }
    });
}

fn check_free(entries: &[Entry], stream: &str) -> Result<(), SourceError> {
    match entries
        .iter()
        .find(|e| !e.is_over() && e.feed.stream() == stream)
    {
        Some(e) => Err(SourceError::StreamTaken(stream.to_string(), e.id.clone())),
        None => Ok(()),
    }
}

/// `base`, or `base-2`, `base-3`, … whichever no running source uses.
fn free_name(entries: &[Entry], base: &str) -> String {
    let taken = |name: &str| {
        entries
            .iter()
            .any(|e| !e.is_over() && e.feed.stream() == name)
    };
    if !taken(base) {
        return base.to_string();
    }
    (2..)
        .map(|n| format!("{base}-{n}"))
        .find(|n| !taken(n))
        .expect("some suffix is free")
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

    #[tokio::test]
    async fn two_running_sources_never_share_a_stream_and_unnamed_demos_get_free_names() {
        let (tx, _rx) = crate::pipeline::channel();
        let m = SourceManager::new(tx, LiveDefaults::default());
        let demo = |name: Option<&str>| SourceSpec::Demo {
            name: name.map(str::to_string),
            options: demo::DemoOptions { rate: 0.0, seed: 1 },
        };
        let a = m.start(demo(None)).unwrap();
        let b = m.start(demo(None)).unwrap();
        assert_eq!((a.stream.as_str(), b.stream.as_str()), ("demo", "demo-2"));
        assert_eq!(
            m.start(demo(Some("demo"))),
            Err(SourceError::StreamTaken("demo".into(), a.id.clone()))
        );
        assert_eq!(m.list().len(), 2, "a refused request changes nothing");
        let stopped = m.stop(&a.id).await.unwrap();
        assert_eq!(stopped.state, SourceState::Ended);
        assert_eq!(stopped.reason.as_deref(), Some("stopped"));
        assert_eq!(m.finished(&a.id).await, Some(Ok(())));
        // The name is free again once its source is over.
        let c = m.start(demo(Some("demo"))).unwrap();
        assert_eq!(c.stream, "demo");
        assert_eq!(
            m.stop("s99").await,
            Err(SourceError::NotFound("s99".into()))
        );
        // Deleting a finished source removes it from the list.
        m.stop(&a.id).await.unwrap();
        assert!(m.get(&a.id).is_none());
        assert_eq!(m.streams(), ["demo-2", "demo"]);
    }
}
