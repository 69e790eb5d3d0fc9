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
//! Requests are checked before anything starts ([`super::spec`]): an unknown kind, a bad
//! target or name, a missing or unreadable file, a speed out of range are
//! [`SourceError::BadRequest`] and change nothing.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::Serialize;
use serde_json::Value;

pub use super::spec::{
    MAX_DEMO_RATE, MAX_STREAM_NAME, SourceError, SourceSpec, check_stream_name, live_stream,
    replay_stream,
};
use tokio::sync::{mpsc, watch};

use super::live::ws::Outputs;
use super::live::{Endpoints, LiveConfig, Timings, client};
use super::{demo, replay};
use crate::events::{Event, EventKind, Source, local_id, now_ms};
use crate::pipeline::{Feed, Input, SourceState, SourceStatus, Tagged};
use crate::recorder::FrameRecorder;

/// Finished sources kept in the list (oldest dropped first).
pub const KEEP_FINISHED: usize = 20;
/// What kind of source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Live,
    Demo,
    Replay,
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

#[cfg(test)]
mod tests {
    use super::*;

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
