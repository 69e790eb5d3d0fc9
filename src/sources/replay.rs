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
//! `--loop` starts over at the end and tells the pipeline to forget the msg_ids it has seen
//! ([`Input::Rewind`]), or the second pass would be all duplicates.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prost::Message as _;
use tokio::sync::mpsc;
use tokio::time::Instant;

use crate::events::{Event, Source};
use crate::pipeline::Input;
use crate::proto::ProtoMessageFetchResult;
use crate::recorder::{self, RecordKind, RecordReader};
use crate::tiktok::backlog::{self, Connection};
use crate::tiktok::frame::MAX_FRAME_BYTES;

/// Pace of a bare frame stream, which carries no times.
pub const BARE_FRAMES_PER_SECOND: f64 = 10.0;

/// What a replay file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Recording,
    BareFrames,
    Jsonl,
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
    #[error(
        "{path}: record {index} claims {len} bytes, over the {MAX_FRAME_BYTES}-byte frame limit; is this really a frame stream?"
    )]
    BareTooLarge {
        path: String,
        index: usize,
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

/// Items of one pass, each with its time from the start of the recording.
type Item = (Option<Duration>, Input);

/// Reads one pass of the file as a stream of items.
fn items(
    path: &Path,
    format: Format,
) -> Result<Box<dyn Iterator<Item = Result<Item, ReplayError>>>, ReplayError> {
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
                Ok((Some(at), input))
            }))
        }
        Format::BareFrames => {
            let mut reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
            let mut index = 0usize;
            let step = Duration::from_secs_f64(1.0 / BARE_FRAMES_PER_SECOND);
            Box::new(std::iter::from_fn(move || {
                let mut len = [0u8; 4];
                match read_up_to(&mut reader, &mut len) {
                    Ok(0) => return None,
                    Ok(4) => {}
                    Ok(_) => {
                        tracing::warn!(
                            "{}: the last frame is cut short; ignored",
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
                        index,
                        len,
                    }));
                }
                let mut bytes = vec![0u8; len];
                if let Err(e) = reader.read_exact(&mut bytes) {
                    if e.kind() == io::ErrorKind::UnexpectedEof {
                        tracing::warn!(
                            "{}: the last frame is cut short; ignored",
                            pathbuf.display()
                        );
                        return None;
                    }
                    return Some(Err(io_error(&pathbuf, e)));
                }
                let at = step * index as u32;
                index += 1;
                Some(Ok((Some(at), Input::PushFrame(bytes))))
            }))
        }
        Format::Jsonl => {
            let reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
            let mut first_ts: Option<i64> = None;
            let mut last_at = Duration::ZERO;
            Box::new(reader.lines().enumerate().filter_map(move |(i, line)| {
                let line = match line {
                    Ok(l) => l,
                    Err(e) => return Some(Err(io_error(&pathbuf, e))),
                };
                if line.trim().is_empty() {
                    return None;
                }
                let mut event: Event = match serde_json::from_str(&line) {
                    Ok(e) => e,
                    Err(e) => {
                        tracing::warn!(
                            "{} line {}: not an event ({e}); skipped",
                            pathbuf.display(),
                            i + 1
                        );
                        return None;
                    }
                };
                event.source = Source::Replay;
                let first = *first_ts.get_or_insert(event.ts);
                // Out-of-order times never make the replay go back.
                let at = Duration::from_millis((event.ts - first).max(0) as u64).max(last_at);
                last_at = at;
                Some(Ok((Some(at), Input::Event(Box::new(event)))))
            }))
        }
    })
}

/// A recorded fetch result with the backlog rule applied, as the live client relayed it.
fn fetch_result(bytes: Vec<u8>, connection: Connection) -> Input {
    match ProtoMessageFetchResult::decode(bytes.as_slice()) {
        Ok(mut result) => {
            if backlog::drop_backlog(&mut result, connection) == 0 {
                Input::FetchResult(bytes)
            } else {
                Input::FetchResult(result.encode_to_vec())
            }
        }
        // The pipeline logs why it does not decode.
        Err(_) => Input::FetchResult(bytes),
    }
}

/// Plays the file; returns the number of items sent. Stops early when the pipeline goes away.
pub async fn run(
    path: PathBuf,
    options: ReplayOptions,
    tx: mpsc::Sender<Input>,
) -> Result<u64, ReplayError> {
    let format = detect(&path)?;
    tracing::info!("replaying {} ({format:?})", path.display());
    let mut sent = 0u64;
    loop {
        let start = Instant::now();
        for item in items(&path, format)? {
            let (at, input) = item?;
            if !options.max
                && let Some(at) = at
            {
                let speed = if options.speed > 0.0 {
                    options.speed
                } else {
                    1.0
                };
                tokio::time::sleep_until(start + at.div_f64(speed)).await;
            }
            if tx.send(input).await.is_err() {
                return Ok(sent);
            }
            sent += 1;
        }
        if !options.repeat {
            return Ok(sent);
        }
        if tx.send(Input::Rewind).await.is_err() {
            return Ok(sent);
        }
    }
}
