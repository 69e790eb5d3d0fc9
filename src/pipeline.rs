//! The pipeline task: the one place where raw input becomes published events.
//!
//! Sources send [`Input`]s (raw push frames, fetch results they have decoded, or ready events
//! such as lifecycle and test events) into one channel; this task decodes and normalises them in
//! arrival order, ends timed-out combos on tokio time, and publishes every event to the hub. A
//! frame that does not decode is logged with its reason and skipped; the stream goes on.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::Event;
use crate::events::normalise::Normaliser;
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

/// What the pipeline did, returned when it stops (the replay benchmark prints it).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PipelineReport {
    pub normalise: crate::events::normalise::NormaliseStats,
    /// Events published.
    pub events: u64,
}

/// Feeds one input through the normaliser; decode failures are logged and skipped.
pub fn process(normaliser: &mut Normaliser, input: Input, now: Instant, out: &mut Vec<Event>) {
    match input {
        Input::PushFrame(bytes) => match frame::decode_push_frame(&bytes) {
            Ok(f) if !frame::carries_messages(&f.payload_type) => {}
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

/// Runs until every sender is dropped.
pub async fn run(
    mut input: mpsc::Receiver<Input>,
    mut normaliser: Normaliser,
    hub: Arc<Hub>,
) -> PipelineReport {
    let mut out = Vec::with_capacity(64);
    let mut events = 0u64;
    loop {
        let deadline = normaliser.next_deadline();
        tokio::select! {
            item = input.recv() => match item {
                Some(item) => {
                    // Combos due by now end before anything newer is published.
                    let now = Instant::now();
                    normaliser.expire(now, &mut out);
                    process(&mut normaliser, item, now, &mut out);
                }
                None => break,
            },
            _ = sleep_until(deadline) => normaliser.expire(Instant::now(), &mut out),
        }
        events += out.len() as u64;
        for mut event in out.drain(..) {
            // Relay URLs for images are set here, for every source alike (issue 10).
            crate::media::link(&mut event);
            hub.publish(event);
        }
    }
    PipelineReport {
        normalise: normaliser.stats(),
        events,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
