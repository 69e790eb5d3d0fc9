//! The pipeline task: the one place where raw input becomes published events.
//!
//! Sources send [`Input`]s (raw push frames, fetch results they have decoded, or ready events
//! such as lifecycle and test events) through their [`Feed`] into one channel; each input is
//! tagged with the stream it belongs to. This task keeps one [`Normaliser`] per stream, so
//! combos, msg_id de-duplication and the backlog rule never mix two streams (one stream's
//! message id never hides another's), decodes and normalises inputs in arrival order, ends
//! timed-out combos on tokio time, stamps every event with its `stream`, and publishes it to the
//! hub. A frame that does not decode is logged with its reason and skipped; the stream goes on.
//!
//! A feed also carries its source's [`SourceStatus`]: the source writes its steps there, the
//! pipeline the states its lifecycle events mean (connected, paused, ended), and the source
//! manager reads it for `/api/sources`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::normalise::Normaliser;
use crate::events::{Event, EventKind, Source, now_ms};
use crate::hub::Hub;
use crate::proto::ProtoMessageFetchResult;
use crate::tiktok::frame::{self, FrameError};

/// Capacity of the input channel; sources wait when the pipeline is this far behind.
pub const INPUT_BUFFER: usize = 4096;

/// What sources send to the pipeline.
#[derive(Debug)]
pub enum Input {
    /// One websocket binary message from TikTok (or built like one).
    PushFrame(Vec<u8>),
    /// A fetch result (the sign server's first answer, or a pushed frame's payload) that the
    /// source has already decoded, to read its ack and end flags or apply the backlog rule, or
    /// why it did not decode. Passed on decoded so each result is decoded exactly once; the
    /// recorder has already written the bytes as they arrived.
    FetchResult(Result<Box<ProtoMessageFetchResult>, FrameError>),
    /// An event that needs no decoding (lifecycle, test, JSONL replay).
    Event(Box<Event>),
    /// The room that following messages belong to.
    Room(Option<String>),
    /// A replay starts over: forget seen msg_ids and open combos, or the next pass would be
    /// dropped as duplicates.
    Rewind,
}

impl Input {
    /// A fetch result the source decoded itself.
    pub fn fetch_result(result: ProtoMessageFetchResult) -> Input {
        Input::FetchResult(Ok(Box::new(result)))
    }
}

/// Feeds one input through the normaliser; decode failures are logged and skipped.
pub fn process(normaliser: &mut Normaliser, input: Input, now: Instant, out: &mut Vec<Event>) {
    match input {
        Input::PushFrame(bytes) => match frame::decode_push_frame(&bytes) {
            Ok(f) if f.payload_type != "msg" => {}
            Ok(f) => match frame::frame_fetch_result(&f) {
                Ok(result) => log_errors(normaliser.fetch_result(&result, now, out)),
                Err(e) => {
                    normaliser.count_undecodable();
                    tracing::warn!("push frame {} skipped: {e}", f.seq_id)
                }
            },
            Err(e) => {
                normaliser.count_undecodable();
                tracing::warn!("push frame skipped: {e}")
            }
        },
        Input::FetchResult(decoded) => match decoded {
            Ok(result) => log_errors(normaliser.fetch_result(&result, now, out)),
            Err(e) => {
                normaliser.count_undecodable();
                tracing::warn!("fetch result skipped: {e}")
            }
        },
        Input::Event(event) => out.push(*event),
        Input::Room(room) => normaliser.set_room_id(room),
        Input::Rewind => normaliser.reset(),
    }
}

fn log_errors(errors: Vec<crate::events::normalise::MessageError>) {
    for e in errors {
        tracing::warn!("{e}");
    }
}

/// What travels on the pipeline's channel: an input and the feed it came through.
#[derive(Debug)]
pub struct Tagged {
    pub origin: Arc<Origin>,
    pub input: Input,
}

/// Where a source stands, as `/api/sources` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceState {
    Connecting,
    Live,
    Reconnecting,
    Paused,
    Ended,
    Failed,
}

impl SourceState {
    /// Ended and failed sources feed nothing more.
    pub fn is_over(self) -> bool {
        matches!(self, SourceState::Ended | SourceState::Failed)
    }
}

/// A source's state, the step it is at in words, and (failed or ended) why.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceStatus {
    pub state: SourceState,
    /// The current step, e.g. "looking up the room", "signing", "connected".
    pub detail: String,
    /// Why it failed or ended.
    pub reason: Option<String>,
    /// When the state last changed (ms since the epoch).
    pub since: i64,
}

/// Who feeds the pipeline: the stream, the kind of source, and what the source reports.
#[derive(Debug)]
pub struct Origin {
    pub stream: Arc<str>,
    pub source: Source,
    /// Events this feed's inputs became.
    relayed: AtomicU64,
    status: Mutex<SourceStatus>,
}

impl Origin {
    pub fn new(stream: &str, source: Source) -> Origin {
        Origin {
            stream: stream.into(),
            source,
            relayed: AtomicU64::new(0),
            status: Mutex::new(SourceStatus {
                state: SourceState::Connecting,
                detail: "starting".into(),
                reason: None,
                since: now_ms(),
            }),
        }
    }

    pub fn relayed(&self) -> u64 {
        self.relayed.load(Ordering::Relaxed)
    }

    pub fn status(&self) -> SourceStatus {
        self.status.lock().expect("status lock").clone()
    }

    /// Sets the state and the step (a changed state restarts `since`). A source that is over
    /// stays over: a late lifecycle event does not bring it back.
    pub fn set(&self, state: SourceState, detail: &str, reason: Option<String>) {
        let mut s = self.status.lock().expect("status lock");
        if s.state.is_over() && !state.is_over() {
            return;
        }
        if s.state != state {
            s.since = now_ms();
        }
        s.state = state;
        s.detail = detail.to_string();
        s.reason = reason;
    }

    /// Names the current step without changing the state.
    pub fn step(&self, detail: &str) {
        let mut s = self.status.lock().expect("status lock");
        if !s.state.is_over() {
            s.detail = detail.to_string();
        }
    }

    /// What a lifecycle event says about the source that sent it.
    fn follow(&self, event: &Event) {
        match &event.kind {
            EventKind::Connected { .. } => self.set(SourceState::Live, "connected", None),
            EventKind::Disconnected {
                reason,
                will_reconnect: true,
            } => self.set(SourceState::Reconnecting, reason, None),
            EventKind::Disconnected { reason, .. } => {
                self.set(SourceState::Ended, reason, Some(reason.clone()))
            }
            EventKind::LivePaused => {
                self.set(SourceState::Paused, "the host paused the LIVE", None)
            }
            EventKind::LiveResumed => self.set(SourceState::Live, "connected", None),
            EventKind::LiveEnded => self.set(
                SourceState::Ended,
                "the LIVE ended",
                Some("the LIVE ended".into()),
            ),
            _ => {}
        }
    }
}

/// A source's way into the pipeline: every input it sends is tagged with its stream.
#[derive(Debug, Clone)]
pub struct Feed {
    tx: mpsc::Sender<Tagged>,
    origin: Arc<Origin>,
}

impl Feed {
    pub fn new(tx: mpsc::Sender<Tagged>, stream: &str, source: Source) -> Feed {
        Feed {
            tx,
            origin: Arc::new(Origin::new(stream, source)),
        }
    }

    /// Sends one input; an error when the pipeline is gone (the relay shuts down).
    pub async fn send(&self, input: Input) -> Result<(), mpsc::error::SendError<Input>> {
        let tagged = Tagged {
            origin: self.origin.clone(),
            input,
        };
        self.tx
            .send(tagged)
            .await
            .map_err(|e| mpsc::error::SendError(e.0.input))
    }

    pub fn stream(&self) -> &str {
        &self.origin.stream
    }

    pub fn origin(&self) -> &Arc<Origin> {
        &self.origin
    }

    /// Free room in the pipeline's channel (all feeds share it).
    pub fn capacity(&self) -> usize {
        self.tx.capacity()
    }

    pub fn max_capacity(&self) -> usize {
        self.tx.max_capacity()
    }

    /// The channel feeds of other streams are made from.
    pub fn sender(&self) -> mpsc::Sender<Tagged> {
        self.tx.clone()
    }
}

/// What the pipeline did, returned when it stops (the replay benchmark prints it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineReport {
    pub normalise: crate::events::normalise::NormaliseStats,
    /// Events published.
    pub events: u64,
}

/// One stream's normaliser, and the feed whose counter its timed-out combos go to.
struct Lane {
    normaliser: Normaliser,
    origin: Arc<Origin>,
}

/// The pipeline's per-stream state.
struct Lanes {
    combo_timeout: Duration,
    lanes: HashMap<Arc<str>, Lane>,
    /// Events from streams that have since been idle: kept for the report.
    events: u64,
}

impl Lanes {
    fn next_deadline(&self) -> Option<Instant> {
        self.lanes
            .values()
            .filter_map(|l| l.normaliser.next_deadline())
            .min()
    }

    /// Ends every combo due by `now`, in every stream, stamped with its stream.
    fn expire(&mut self, now: Instant, out: &mut Vec<Event>) {
        for lane in self.lanes.values_mut() {
            let from = out.len();
            lane.normaliser.expire(now, out);
            stamp(&lane.origin, &mut out[from..]);
        }
    }

    fn process(&mut self, tagged: Tagged, now: Instant, out: &mut Vec<Event>) {
        let Tagged { origin, input } = tagged;
        let combo_timeout = self.combo_timeout;
        let lane = self
            .lanes
            .entry(origin.stream.clone())
            .or_insert_with(|| Lane {
                normaliser: Normaliser::new(origin.source, combo_timeout),
                origin: origin.clone(),
            });
        // Test events borrow a stream; its source keeps the combos it started.
        if origin.source != Source::Test {
            lane.origin = origin.clone();
        }
        let from = out.len();
        process(&mut lane.normaliser, input, now, out);
        for event in &out[from..] {
            origin.follow(event);
        }
        stamp(&origin, &mut out[from..]);
    }

    fn report(&self) -> PipelineReport {
        let mut normalise = crate::events::normalise::NormaliseStats::default();
        for lane in self.lanes.values() {
            let s = lane.normaliser.stats();
            normalise.messages += s.messages;
            normalise.duplicates += s.duplicates;
            normalise.undecodable += s.undecodable;
        }
        PipelineReport {
            normalise,
            events: self.events,
        }
    }
}

fn stamp(origin: &Origin, events: &mut [Event]) {
    for event in events.iter_mut() {
        event.stream = origin.stream.to_string();
    }
    origin
        .relayed
        .fetch_add(events.len() as u64, Ordering::Relaxed);
}

/// The pipeline's channel: a sender feeds are made from, and the receiver [`run`] takes.
pub fn channel() -> (mpsc::Sender<Tagged>, mpsc::Receiver<Tagged>) {
    mpsc::channel(INPUT_BUFFER)
}

/// Runs until every sender is dropped.
pub async fn run(
    mut input: mpsc::Receiver<Tagged>,
    combo_timeout: Duration,
    hub: Arc<Hub>,
) -> PipelineReport {
    let mut out = Vec::with_capacity(64);
    let mut lanes = Lanes {
        combo_timeout,
        lanes: HashMap::new(),
        events: 0,
    };
    loop {
        let deadline = lanes.next_deadline();
        tokio::select! {
            item = input.recv() => match item {
                Some(item) => {
                    // Combos due by now end before anything newer is published.
                    let now = Instant::now();
                    lanes.expire(now, &mut out);
                    lanes.process(item, now, &mut out);
                }
                None => break,
            },
            _ = sleep_until(deadline) => lanes.expire(Instant::now(), &mut out),
        }
        lanes.events += out.len() as u64;
        for event in out.drain(..) {
            hub.publish(event);
        }
    }
    lanes.report()
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
