//! The OBS worker: one connection and a bounded, ordered queue of [`ObsCommand`]s, so triggers
//! never wait on OBS. Like the RCON worker it connects (at start, and again whenever the
//! connection is gone), identifies again after every reconnect, backs off (doubling up to `max_backoff`) while OBS is closed, waits slowly while
//! the password is wrong, and retries a command whose connection broke. The switch-backs of
//! timed actions run from the same loop, so they stay in order with everything else; the
//! rules for overlapping ones are in [`super::holds`].
//!
//! A timed action that waited in the queue longer than its own duration (OBS was closed) is
//! dropped: its moment has passed, and running it late would switch scenes at random.
//! Requests OBS refuses (a scene name that does not exist) are logged with OBS's reason and not
//! retried. A command reads what it will change (the scene on program, whether a source is
//! visible) once and keeps it across its retries: if the connection broke after OBS switched but
//! before it answered, the retry must not take the new scene for the one to return to.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::client::{ObsClient, ObsError};
use super::holds::{Holds, ItemKey};
use super::{ObsCommand, ObsSettings};

/// Settings of the worker: where OBS is, plus retry timing.
#[derive(Debug, Clone)]
pub struct ObsWorkerConfig {
    pub settings: ObsSettings,
    /// Tries of one command whose connection broke before it is dropped.
    pub max_attempts: u32,
    /// First wait after a failed connect; doubles up to `max_backoff`, resets once connected.
    pub initial_backoff: Duration,
    /// Longest wait between connects; also the wait after a refused password.
    pub max_backoff: Duration,
}

impl ObsWorkerConfig {
    pub fn new(settings: ObsSettings) -> ObsWorkerConfig {
        ObsWorkerConfig {
            settings,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
        }
    }
}

struct Job {
    command: ObsCommand,
    trigger: String,
    queued_at: Instant,
}

/// Cheap to clone; the worker stops once every handle is dropped and the queue has drained.
#[derive(Debug, Clone)]
pub struct ObsHandle {
    tx: mpsc::Sender<Job>,
    rejected: Arc<AtomicU64>,
}

impl std::fmt::Debug for Job {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Job")
            .field("command", &self.command)
            .field("trigger", &self.trigger)
            .finish()
    }
}

impl ObsHandle {
    /// Queues `command` without waiting; a full queue drops it (logged) and returns false.
    pub fn send(&self, command: ObsCommand, trigger: &str) -> bool {
        let job = Job {
            command,
            trigger: trigger.to_string(),
            queued_at: Instant::now(),
        };
        match self.tx.try_send(job) {
            Ok(()) => true,
            Err(e) => {
                let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
                let why = match e {
                    mpsc::error::TrySendError::Full(_) => {
                        "OBS action queue is full (is OBS closed or frozen?)"
                    }
                    mpsc::error::TrySendError::Closed(_) => "OBS worker has stopped",
                };
                // A storm against a closed OBS would otherwise write one line per gift.
                if n == 1 || n.is_multiple_of(100) {
                    tracing::warn!(rejected_total = n, trigger, "{why}; action dropped");
                } else {
                    tracing::debug!(rejected_total = n, trigger, "{why}; action dropped");
                }
                false
            }
        }
    }

    /// Actions refused by [`send`](Self::send) so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }
}

/// Starts the worker on the current tokio runtime.
pub fn spawn_worker(config: ObsWorkerConfig) -> ObsHandle {
    let (tx, rx) = mpsc::channel(config.settings.queue_capacity.max(1));
    let worker = Worker {
        backoff: config.initial_backoff,
        config,
        rx,
        conn: None,
        holds: Holds::default(),
        memo: None,
    };
    tokio::spawn(worker.run());
    ObsHandle {
        tx,
        rejected: Arc::new(AtomicU64::new(0)),
    }
}

struct Worker {
    config: ObsWorkerConfig,
    rx: mpsc::Receiver<Job>,
    conn: Option<ObsClient>,
    backoff: Duration,
    holds: Holds,
    /// What the command being run read from OBS before changing it, kept for its retries.
    memo: Option<Memo>,
}

enum Memo {
    Before(String),
    WasEnabled(bool),
}

/// What a step needs from OBS that failed.
enum StepError {
    /// OBS refused it (wrong name...): log, do not retry.
    Refused(ObsError),
    /// The connection broke or timed out: reconnect and retry.
    Connection(ObsError),
}

impl From<ObsError> for StepError {
    fn from(e: ObsError) -> Self {
        match e {
            ObsError::Request { .. } => StepError::Refused(e),
            other => StepError::Connection(other),
        }
    }
}

impl Worker {
    async fn run(mut self) {
        // Connect at once: the first action then pays no handshake, and a closed OBS or a
        // wrong password shows in the log at start, not at the first follow.
        self.ensure_connected().await;
        loop {
            let deadline = self.holds.next_deadline();
            tokio::select! {
                // Switch-backs first: a return that is due goes before newer actions.
                biased;
                _ = sleep_until_opt(deadline), if deadline.is_some() => {
                    self.attempt("the switch back", None).await;
                }
                job = self.rx.recv() => match job {
                    Some(job) => {
                        if let Some(hold) = timed(&job.command)
                            && job.queued_at.elapsed() >= hold
                        {
                            tracing::warn!(
                                trigger = job.trigger,
                                "OBS action dropped: it waited {:?} for OBS, longer than its own {hold:?}",
                                job.queued_at.elapsed()
                            );
                            continue;
                        }
                        let what = format!("trigger {:?}", job.trigger);
                        self.attempt(&what, Some(job.command)).await;
                    }
                    None => break,
                },
            }
        }
    }

    /// Runs one command (or, with `None`, the due switch-backs), reconnecting as needed.
    async fn attempt(&mut self, what: &str, command: Option<ObsCommand>) {
        self.memo = None;
        let mut attempts = 0;
        loop {
            let fresh = self.ensure_connected().await;
            attempts += 1;
            let result = match &command {
                Some(c) => self.execute(c).await,
                None => self.switch_back().await,
            };
            match result {
                Ok(()) => return,
                Err(StepError::Refused(e)) => {
                    tracing::warn!("OBS action of {what} not done: {e}");
                    return;
                }
                Err(StepError::Connection(e)) => {
                    self.conn = None;
                    if attempts >= self.config.max_attempts.max(1) {
                        tracing::warn!(
                            "OBS action of {what} dropped after {attempts} failed attempts: {e}"
                        );
                        return;
                    }
                    if fresh {
                        tracing::warn!(
                            "OBS action of {what} failed ({e}); retrying in {:?}",
                            self.backoff
                        );
                        self.sleep_backoff().await;
                    } else {
                        // The idle connection is the likely culprit (OBS restarted meanwhile).
                        tracing::info!("OBS connection lost ({e}); reconnecting");
                    }
                }
            }
        }
    }

    /// Returns once connected; true when the connection was made just now.
    async fn ensure_connected(&mut self) -> bool {
        if self.conn.as_ref().is_some_and(ObsClient::is_closed) {
            self.conn = None;
        }
        let fresh = self.conn.is_none();
        while self.conn.is_none() {
            let s = &self.config.settings;
            match ObsClient::connect(s, 0).await {
                Ok(client) => {
                    tracing::info!(
                        addr = %s.addr(),
                        "OBS connected (obs-websocket {})",
                        client.hello().obs_websocket_version
                    );
                    self.backoff = self.config.initial_backoff;
                    self.conn = Some(client);
                }
                Err(e @ (ObsError::AuthFailed | ObsError::PasswordNeeded)) => {
                    // The streamer may fix the password, so keep trying, slowly.
                    tracing::error!("{e}; retrying in {:?}", self.config.max_backoff);
                    tokio::time::sleep(self.config.max_backoff).await;
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in {:?}", self.backoff);
                    self.sleep_backoff().await;
                }
            }
        }
        fresh
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.config.max_backoff);
    }

    fn client(&mut self) -> Result<&mut ObsClient, StepError> {
        self.conn
            .as_mut()
            .ok_or_else(|| StepError::Connection(ObsError::ConnectionLost("not connected".into())))
    }

    async fn execute(&mut self, command: &ObsCommand) -> Result<(), StepError> {
        match command {
            ObsCommand::Scene { scene, hold } => {
                // What was live before, read once per command: if the connection breaks after
                // OBS switched but before it answered, the retry must not take the new scene
                // for the one to return to.
                let before = match &self.memo {
                    Some(Memo::Before(b)) => b.clone(),
                    _ => {
                        let b = self.current_scene().await?;
                        self.memo = Some(Memo::Before(b.clone()));
                        b
                    }
                };
                self.client()?
                    .request("SetCurrentProgramScene", json!({"sceneName": scene}))
                    .await?;
                match hold {
                    Some(hold) => self
                        .holds
                        .scene_timed(&before, scene, Instant::now() + *hold),
                    None => self.holds.scene_permanent(),
                }
                tracing::debug!(scene, from = before, "OBS scene switched");
            }
            ObsCommand::Source {
                source,
                scene,
                show_for,
            } => {
                let scene = match scene {
                    Some(s) => s.clone(),
                    None => self.current_scene().await?,
                };
                let item = self
                    .client()?
                    .request(
                        "GetSceneItemId",
                        json!({"sceneName": scene, "sourceName": source}),
                    )
                    .await?;
                let item_id = item["sceneItemId"]
                    .as_i64()
                    .ok_or_else(|| ObsError::Protocol("GetSceneItemId without an id".into()))?;
                let key: ItemKey = (scene.clone(), source.clone());
                // As for scenes: the state before the first show, read once per command.
                let was_enabled = match (self.holds.item(&key), &self.memo) {
                    (Some(hold), _) => hold.was_enabled,
                    (None, Some(Memo::WasEnabled(e))) => *e,
                    (None, _) if show_for.is_some() => {
                        let state = self
                            .client()?
                            .request(
                                "GetSceneItemEnabled",
                                json!({"sceneName": scene, "sceneItemId": item_id}),
                            )
                            .await?;
                        let e = state["sceneItemEnabled"].as_bool().unwrap_or(false);
                        self.memo = Some(Memo::WasEnabled(e));
                        e
                    }
                    (None, _) => false,
                };
                self.set_enabled(&scene, item_id, true).await?;
                match show_for {
                    Some(d) => {
                        self.holds
                            .item_timed(key, item_id, was_enabled, Instant::now() + *d)
                    }
                    None => self.holds.item_permanent(&key),
                }
            }
            ObsCommand::Text { input, text } => {
                self.client()?
                    .request(
                        "SetInputSettings",
                        json!({"inputName": input, "inputSettings": {"text": text}, "overlay": true}),
                    )
                    .await?;
            }
        }
        Ok(())
    }

    /// Puts back what timed actions changed, for those whose time is up.
    async fn switch_back(&mut self) -> Result<(), StepError> {
        // On a broken connection everything stays due, so the retry puts it all back.
        let saved = self.holds.clone();
        let result = self.put_back(Instant::now()).await;
        if let Err(StepError::Connection(_)) = &result {
            self.holds = saved;
        }
        result
    }

    async fn put_back(&mut self, now: Instant) -> Result<(), StepError> {
        for ((scene, source), hold) in self.holds.items_due(now) {
            if hold.was_enabled {
                continue;
            }
            match self.set_enabled(&scene, hold.item_id, false).await {
                Ok(()) => {}
                Err(StepError::Refused(e)) => {
                    tracing::warn!("could not hide {source:?} in {scene:?} again: {e}");
                }
                Err(e) => return Err(e),
            }
        }
        if self.holds.scene_is_due(now) {
            let current = self.current_scene().await?;
            if let Some(target) = self.holds.scene_due(now, &current) {
                self.client()?
                    .request("SetCurrentProgramScene", json!({"sceneName": target}))
                    .await?;
                tracing::debug!(scene = target, "OBS scene switched back");
            }
        }
        Ok(())
    }

    async fn current_scene(&mut self) -> Result<String, StepError> {
        let answer = self
            .client()?
            .request("GetCurrentProgramScene", Value::Null)
            .await?;
        Ok(scene_name(&answer)?)
    }

    async fn set_enabled(
        &mut self,
        scene: &str,
        item_id: i64,
        enabled: bool,
    ) -> Result<(), StepError> {
        self.client()?
            .request(
                "SetSceneItemEnabled",
                json!({"sceneName": scene, "sceneItemId": item_id, "sceneItemEnabled": enabled}),
            )
            .await?;
        Ok(())
    }
}

fn scene_name(answer: &Value) -> Result<String, ObsError> {
    answer["currentProgramSceneName"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| ObsError::Protocol("no currentProgramSceneName in the answer".into()))
}

/// How long a timed command lasts.
fn timed(command: &ObsCommand) -> Option<Duration> {
    match command {
        ObsCommand::Scene { hold, .. } => *hold,
        ObsCommand::Source { show_for, .. } => *show_for,
        ObsCommand::Text { .. } => None,
    }
}

async fn sleep_until_opt(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
