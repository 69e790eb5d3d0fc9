//! The replay source: plays a recording through the same pipeline as a live stream.
//!
//! Three formats are recognised by their first bytes: a `--record` file (`TIKREC1\n`, frames
//! with their receive times), JSON lines of events (`{`; timed by their `ts`), and a bare
//! stream of `[u32 BE length][push frame]` records (no times: played at
//! [`BARE_FRAMES_PER_SECOND`]). Fetch results in a recording get the backlog rule the live
//! client applied when it received them (first one as a first connection, later ones as
//! reconnects after the recorded gap), so a replay relays what the live relay relayed.
//!
//! Pacing is real time, `--speed X` times faster, or none at all (`--max`), on tokio time.
//! Each wait is computed from the gap to the previous item with checked float arithmetic and
//! is at most [`MAX_GAP`] (a longer gap, e.g. a recording with broken times, is shortened and
//! logged), so no recording can make a replay panic or hang. Input that cannot be used is
//! skipped with a warning that names its byte offset in the file, and counted.
//! `--loop` starts over at the end and tells the pipeline to forget the msg_ids it has seen
//! ([`Input::Rewind`]), or the second pass would be all duplicates.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::events::{Event, Source};
use crate::pipeline::{Feed, Input};
use crate::recorder::{self, RecordKind, RecordReader};
use crate::sources::live::backlog::{self, Connection};
use crate::tiktok::frame::{self, MAX_FRAME_BYTES};

/// Pace of a bare frame stream, which carries no times.
pub const BARE_FRAMES_PER_SECOND: f64 = 10.0;
/// The longest wait between two items of a replay; longer gaps are shortened to this (logged).
pub const MAX_GAP: Duration = Duration::from_secs(60);
/// The slowest `--speed`.
pub const MIN_SPEED: f64 = 0.01;
/// The fastest `--speed` (`--max` plays without any pacing).
pub const MAX_SPEED: f64 = 10_000.0;
/// The longest JSONL line read; a longer one is skipped (an event is a few KiB).
pub const MAX_JSONL_LINE: usize = 16 * 1024 * 1024;

/// What a replay file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Recording,
    BareFrames,
    Jsonl,
}

/// Checks `--speed`: a finite factor from [`MIN_SPEED`] to [`MAX_SPEED`].
pub fn validate_speed(speed: f64) -> Result<(), String> {
    if speed.is_finite() && (MIN_SPEED..=MAX_SPEED).contains(&speed) {
        return Ok(());
    }
    Err(format!(
        "--speed {speed} is out of range; give a factor from {MIN_SPEED} to {MAX_SPEED}, e.g. --speed 2 (or --max for no pacing)"
    ))
}

/// What a replay did: items sent, input skipped, gaps shortened.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ReplayReport {
    pub sent: u64,
    /// JSONL lines that were not events (not UTF-8, not JSON, too long).
    pub skipped: u64,
    /// Gaps longer than [`MAX_GAP`] (after `--speed`) that were shortened.
    pub shortened_gaps: u64,
}

#[derive(Debug, Clone, Copy)]
pub struct ReplayOptions {
    /// Times the recorded speed; ignored with `max`.
    pub speed: f64,
    pub max: bool,
    pub repeat: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error(transparent)]
    Recording(#[from] recorder::ReadError),
    #[error("{0}")]
    Speed(String),
    #[error(
        "{path}: the record at byte offset {offset} (record {index}) claims {len} bytes, over the {MAX_FRAME_BYTES}-byte frame limit; is this really a frame stream?"
    )]
    BareTooLarge {
        path: String,
        index: usize,
        offset: u64,
        len: usize,
    },
}

/// Tells the format from the first bytes of the file.
pub fn detect(path: &Path) -> Result<Format, ReplayError> {
    let mut head = [0u8; 64];
    let mut file = File::open(path).map_err(|source| io_error(path, source))?;
    let n = read_up_to(&mut file, &mut head).map_err(|source| io_error(path, source))?;
    let head = &head[..n];
    if head.starts_with(recorder::MAGIC) {
        return Ok(Format::Recording);
    }
    match head.iter().find(|b| !b.is_ascii_whitespace()) {
        Some(b'{') => Ok(Format::Jsonl),
        _ => Ok(Format::BareFrames),
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..])? {
            0 => break,
            n => got += n,
        }
    }
    Ok(got)
}

fn io_error(path: &Path, source: io::Error) -> ReplayError {
    ReplayError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Items of one pass, each with its time from the start of the recording; `Skip` is input
/// that was logged and left out.
enum Item {
    Play(Option<Duration>, Input),
    Skip,
    /// An empty line between JSON lines: nothing to play, nothing wrong.
    Blank,
}

/// Reads one line of at most `max` bytes into `line` (without the newline). Returns the bytes
/// consumed and whether the line was too long (then `line` is empty and the rest of the line
/// was read past), or `None` at the end of the file.
fn read_line_bounded(
    r: &mut impl BufRead,
    max: usize,
    line: &mut Vec<u8>,
) -> io::Result<Option<(u64, bool)>> {
    line.clear();
    let mut consumed = 0u64;
    let mut too_long = false;
    loop {
        let buf = match r.fill_buf() {
            Ok(b) => b,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if buf.is_empty() {
            return Ok((consumed > 0).then_some((consumed, too_long)));
        }
        let newline = buf.iter().position(|&b| b == b'\n');
        let take = newline.map_or(buf.len(), |p| p + 1);
        if !too_long {
            let content = newline.unwrap_or(take);
            if line.len() + content > max {
                too_long = true;
                line.clear();
            } else {
                line.extend_from_slice(&buf[..content]);
            }
        }
        r.consume(take);
        consumed += take as u64;
        if newline.is_some() {
            return Ok(Some((consumed, too_long)));
        }
    }
}

/// Reads one pass of the file as a stream of items.
fn items(
    path: &Path,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Result<Item, ReplayError>> + Send>, ReplayError> {
    let pathbuf = path.to_path_buf();
    Ok(match format {
        Format::Recording => {
            let mut first = true;
            let mut last_at = 0u64;
            Box::new(RecordReader::open(path)?.map(move |r| {
                let r = r?;
                let at = Duration::from_micros(r.at_us);
                let input = match r.kind {
                    RecordKind::PushFrame => Input::PushFrame(r.bytes),
                    RecordKind::FetchResult => {
                        let connection = if first {
                            Connection::First
                        } else {
                            Connection::Reconnect {
                                gap: Duration::from_micros(r.at_us.saturating_sub(last_at)),
                            }
                        };
                        first = false;
                        fetch_result(r.bytes, connection)
                    }
                };
                last_at = r.at_us;
                Ok(Item::Play(Some(at), input))
            }))
        }
        Format::BareFrames => {
            let mut reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
            let mut index = 0u32;
            let mut offset = 0u64;
            let step = Duration::from_millis((1000.0 / BARE_FRAMES_PER_SECOND) as u64);
            Box::new(std::iter::from_fn(move || {
                let mut len = [0u8; 4];
                match read_up_to(&mut reader, &mut len) {
                    Ok(0) => return None,
                    Ok(4) => {}
                    Ok(_) => {
                        tracing::warn!(
                            "{}: the last frame (byte offset {offset}) is cut short; ignored",
                            pathbuf.display()
                        );
                        return None;
                    }
                    Err(e) => return Some(Err(io_error(&pathbuf, e))),
                }
                let len = u32::from_be_bytes(len) as usize;
                if len > MAX_FRAME_BYTES {
                    return Some(Err(ReplayError::BareTooLarge {
                        path: pathbuf.display().to_string(),
                        index: index as usize,
                        offset,
                        len,
                    }));
                }
                let mut bytes = vec![0u8; len];
                if let Err(e) = reader.read_exact(&mut bytes) {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        tracing::warn!(
                            "{}: the last frame (byte offset {offset}) is cut short; ignored",
                            pathbuf.display()
                        );
                        return None;
                    }
                    return Some(Err(io_error(&pathbuf, e)));
                }
                let at = step.saturating_mul(index);
                index = index.saturating_add(1);
                offset += 4 + len as u64;
                Some(Ok(Item::Play(Some(at), Input::PushFrame(bytes))))
            }))
        }
        Format::Jsonl => {
            let mut reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
            let mut first_ts: Option<i64> = None;
            let mut last_at = Duration::ZERO;
            let mut line = Vec::new();
            let mut number = 0u64;
            let mut offset = 0u64;
            Box::new(std::iter::from_fn(move || {
                let (consumed, too_long) =
                    match read_line_bounded(&mut reader, MAX_JSONL_LINE, &mut line) {
                        Ok(Some(l)) => l,
                        Ok(None) => return None,
                        Err(e) => return Some(Err(io_error(&pathbuf, e))),
                    };
                let at_offset = offset;
                offset += consumed;
                number += 1;
                let skip = |why: &dyn std::fmt::Display| {
                    tracing::warn!(
                        "{} line {number} (byte offset {at_offset}): {why}; skipped",
                        pathbuf.display()
                    );
                    Some(Ok(Item::Skip))
                };
                if too_long {
                    return skip(&format_args!("longer than {MAX_JSONL_LINE} bytes"));
                }
                let text = match std::str::from_utf8(&line) {
                    Ok(t) => t,
                    Err(e) => return skip(&format_args!("not UTF-8 text ({e})")),
                };
                if text.trim().is_empty() {
                    return Some(Ok(Item::Blank));
                }
                let mut event: Event = match serde_json::from_str(text) {
                    Ok(e) => e,
                    Err(e) => return skip(&format_args!("not an event ({e})")),
                };
                event.source = Source::Replay;
                let first = *first_ts.get_or_insert(event.ts);
                // Out-of-order times never make the replay go back; absurd ones never overflow.
                let ms = u64::try_from(event.ts.saturating_sub(first)).unwrap_or(0);
                let at = Duration::from_millis(ms).max(last_at);
                last_at = at;
                Some(Ok(Item::Play(Some(at), Input::Event(Box::new(event)))))
            }))
        }
    })
}

/// A recorded fetch result with the backlog rule applied, as the live client relayed it. It is
/// decoded here, once: the pipeline takes the decoded result (or why it did not decode, which
/// it logs and counts).
fn fetch_result(bytes: Vec<u8>, connection: Connection) -> Input {
    Input::FetchResult(frame::decode_fetch_result(bytes).map(|mut result| {
        backlog::drop_backlog(&mut result, connection);
        Box::new(result)
    }))
}

/// How long to wait for a gap of `gap` in the recording at `speed`: checked float arithmetic,
/// at most [`MAX_GAP`]; `true` when the gap was shortened.
fn scaled_wait(gap: Duration, speed: f64) -> (Duration, bool) {
    match Duration::try_from_secs_f64(gap.as_secs_f64() / speed) {
        Ok(wait) if wait <= MAX_GAP => (wait, false),
        _ => (MAX_GAP, true),
    }
}

/// Plays the file. Stops early when the pipeline goes away.
pub async fn run(
    path: PathBuf,
    options: ReplayOptions,
    tx: Feed,
) -> Result<ReplayReport, ReplayError> {
    if !options.max {
        validate_speed(options.speed).map_err(ReplayError::Speed)?;
    }
    let format = detect(&path)?;
    tracing::info!("replaying {} ({format:?})", path.display());
    let mut report = ReplayReport::default();
    loop {
        // Each wait runs from when the previous item was due, not from when it was sent, so
        // a slow pipeline does not stretch the replay.
        let mut due = Instant::now();
        let mut previous = Duration::ZERO;
        for item in items(&path, format)? {
            let (at, input) = match item? {
                Item::Play(at, input) => (at, input),
                Item::Skip => {
                    report.skipped += 1;
                    continue;
                }
                Item::Blank => continue,
            };
            if !options.max
                && let Some(at) = at
            {
                let gap = at.saturating_sub(previous);
                previous = previous.max(at);
                let (wait, shortened) = scaled_wait(gap, options.speed);
                if shortened {
                    report.shortened_gaps += 1;
                    if report.shortened_gaps == 1 || report.shortened_gaps.is_multiple_of(100) {
                        tracing::warn!(
                            "{}: a gap of {:.0} s at {:.0} s into the recording is shortened to {} s ({} gaps so far)",
                            path.display(),
                            gap.as_secs_f64(),
                            at.as_secs_f64(),
                            MAX_GAP.as_secs(),
                            report.shortened_gaps
                        );
                    }
                }
                due += wait;
                tokio::time::sleep_until(due).await;
            }
            if tx.send(input).await.is_err() {
                return Ok(report);
            }
            report.sent += 1;
        }
        if !options.repeat {
            return Ok(report);
        }
        if tx.send(Input::Rewind).await.is_err() {
            return Ok(report);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_recorded_fetch_result_reaches_the_pipeline_decoded_with_its_backlog_dropped() {
        use crate::events::normalise::Normaliser;
        use crate::proto::{CommonMessageData, ProtoMessageFetchResult, WebcastChatMessage};
        use prost::Message as _;

        let now = 1_800_000_000_000;
        let chat = |id: i64, created: i64, history: bool| {
            let m = WebcastChatMessage {
                common: Some(CommonMessageData {
                    msg_id: id,
                    create_time: created,
                    ..Default::default()
                }),
                content: format!("hi {id}"),
                ..Default::default()
            };
            let mut b = frame::base_message("WebcastChatMessage", id, &m);
            b.is_history = history;
            b
        };
        let recorded = ProtoMessageFetchResult {
            messages: vec![chat(1, now - 5_000, true), chat(2, now - 1_000, false)],
            now,
            ..Default::default()
        }
        .encode_to_vec();
        let input = fetch_result(recorded, Connection::First);
        let Input::FetchResult(Ok(result)) = &input else {
            panic!("not decoded: {input:?}");
        };
        let ids: Vec<i64> = result.messages.iter().map(|m| m.msg_id).collect();
        assert_eq!(ids, vec![2], "the history message is the backlog");
        let mut normaliser = Normaliser::new(Source::Replay, Duration::from_secs(10));
        let mut out = Vec::new();
        crate::pipeline::process(&mut normaliser, input, Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].id, "2");

        // Bytes that are no fetch result reach the pipeline as the reason, counted there.
        let input = fetch_result(vec![0xff; 7], Connection::First);
        assert!(matches!(input, Input::FetchResult(Err(_))), "{input:?}");
        crate::pipeline::process(&mut normaliser, input, Instant::now(), &mut out);
        assert_eq!(out.len(), 1);
        assert_eq!(normaliser.stats().undecodable, 1);
    }

    #[test]
    fn speeds_out_of_range_are_refused() {
        for bad in [1e-30, 0.0, -1.0, f64::NAN, f64::INFINITY, 1e300, 0.009] {
            assert!(validate_speed(bad).is_err(), "{bad}");
        }
        for good in [MIN_SPEED, 0.5, 1.0, 4.0, MAX_SPEED] {
            assert!(validate_speed(good).is_ok(), "{good}");
        }
    }

    #[test]
    fn waits_are_capped_and_never_built_from_unchecked_floats() {
        assert_eq!(
            scaled_wait(Duration::from_secs(2), 2.0),
            (Duration::from_secs(1), false)
        );
        assert_eq!(scaled_wait(Duration::MAX, MIN_SPEED), (MAX_GAP, true));
        assert_eq!(scaled_wait(Duration::from_secs(61), 1.0), (MAX_GAP, true));
        assert_eq!(scaled_wait(Duration::from_secs(1), 1e-30), (MAX_GAP, true));
    }

    #[test]
    fn long_lines_are_read_past_and_short_ones_kept() {
        let text = b"abc\n0123456789\n\nxy";
        let mut r = &text[..];
        let mut line = Vec::new();
        assert_eq!(
            read_line_bounded(&mut r, 5, &mut line).unwrap(),
            Some((4, false))
        );
        assert_eq!(line, b"abc");
        assert_eq!(
            read_line_bounded(&mut r, 5, &mut line).unwrap(),
            Some((11, true))
        );
        assert!(line.is_empty());
        assert_eq!(
            read_line_bounded(&mut r, 5, &mut line).unwrap(),
            Some((1, false))
        );
        assert_eq!(
            read_line_bounded(&mut r, 5, &mut line).unwrap(),
            Some((2, false))
        );
        assert_eq!(line, b"xy");
        assert_eq!(read_line_bounded(&mut r, 5, &mut line).unwrap(), None);
    }
}
