//! Recording: raw frames (`--record`, the TIKREC1 format of DESIGN.md) and relayed events
//! (`--record-events`, JSON lines), plus the reader for recordings.
//!
//! Format: the 8 bytes `TIKREC1\n`, then records of `[u64 LE microseconds since start][u8 kind:
//! 0 fetch result, 1 push frame][u32 LE length][bytes]`.
//!
//! Writing never slows the relay: records go through a bounded queue to a writer thread that
//! buffers them and flushes at least every second and when the recording is finished. When the
//! disk fails (full, removed) the error is logged once and the recording stops; relaying goes
//! on. When the disk is too slow and the queue fills, records are dropped and that is logged.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::time::Duration;

use tokio::sync::{broadcast, oneshot};
use tokio::time::Instant;

use crate::events::Event;

/// The first 8 bytes of a frame recording.
pub const MAGIC: &[u8; 8] = b"TIKREC1\n";
/// Records waiting for the writer before new ones are dropped.
const QUEUE: usize = 65_536;
/// The longest time written data stays in memory.
const FLUSH_EVERY: Duration = Duration::from_secs(1);
/// The largest record the reader accepts (a frame is at most a few MiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024 * 1024;

/// What a record holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordKind {
    /// A fetch result body (the sign server's answer).
    FetchResult = 0,
    /// A websocket binary message, as received.
    PushFrame = 1,
}

/// One record of a recording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub at_us: u64,
    pub kind: RecordKind,
    pub bytes: Vec<u8>,
}

enum Cmd {
    Data(Vec<u8>),
    Finish(oneshot::Sender<()>),
}

/// A file written by a background thread.
#[derive(Clone)]
struct Writer {
    tx: SyncSender<Cmd>,
    path: Arc<PathBuf>,
    failed: Arc<AtomicBool>,
    dropped: Arc<AtomicU64>,
}

impl Writer {
    fn create(path: &Path, header: &[u8]) -> io::Result<Writer> {
        let mut file = BufWriter::with_capacity(256 * 1024, File::create(path)?);
        // Buffered like everything else: the first flush (within a second) writes it.
        file.write_all(header)?;
        let (tx, rx) = sync_channel(QUEUE);
        let writer = Writer {
            tx,
            path: Arc::new(path.to_path_buf()),
            failed: Arc::new(AtomicBool::new(false)),
            dropped: Arc::new(AtomicU64::new(0)),
        };
        let (path, failed) = (writer.path.clone(), writer.failed.clone());
        std::thread::Builder::new()
            .name("recorder".into())
            .spawn(move || write_loop(file, rx, &path, &failed))?;
        Ok(writer)
    }

    fn write(&self, data: Vec<u8>) {
        if self.failed.load(Ordering::Relaxed) {
            return;
        }
        match self.tx.try_send(Cmd::Data(data)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                if self.dropped.fetch_add(1, Ordering::Relaxed) == 0 {
                    tracing::warn!(
                        "recording {} falls behind (the disk is too slow); records are dropped",
                        self.path.display()
                    );
                }
            }
            Err(TrySendError::Disconnected(_)) => {}
        }
    }

    /// Flushes and closes the file; waits for the writer thread.
    async fn finish(&self) {
        let (done, wait) = oneshot::channel();
        // A full queue still drains: the thread is writing. A blocking send would stall the
        // runtime, so poll for room.
        let mut cmd = Cmd::Finish(done);
        loop {
            match self.tx.try_send(cmd) {
                Ok(()) => break,
                Err(TrySendError::Full(c)) => {
                    cmd = c;
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        let _ = wait.await;
    }
}

fn write_loop(mut file: BufWriter<File>, rx: Receiver<Cmd>, path: &Path, failed: &AtomicBool) {
    let mut dirty = false;
    let mut last_flush = std::time::Instant::now();
    let fail = |e: io::Error| {
        if !failed.swap(true, Ordering::Relaxed) {
            tracing::error!(
                "recording to {} stopped: {e}; relaying goes on without it (free disk space and start again to record)",
                path.display()
            );
        }
    };
    loop {
        let cmd = rx.recv_timeout(FLUSH_EVERY);
        match cmd {
            Ok(Cmd::Data(data)) => {
                if failed.load(Ordering::Relaxed) {
                    continue;
                }
                match file.write_all(&data) {
                    Ok(()) => dirty = true,
                    Err(e) => fail(e),
                }
            }
            Ok(Cmd::Finish(done)) => {
                if dirty
                    && !failed.load(Ordering::Relaxed)
                    && let Err(e) = file.flush()
                {
                    fail(e);
                }
                let _ = done.send(());
                return;
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => {
                if dirty && !failed.load(Ordering::Relaxed) {
                    let _ = file.flush();
                }
                return;
            }
        }
        if dirty && last_flush.elapsed() >= FLUSH_EVERY && !failed.load(Ordering::Relaxed) {
            match file.flush() {
                Ok(()) => dirty = false,
                Err(e) => fail(e),
            }
            last_flush = std::time::Instant::now();
        } else if !dirty {
            last_flush = std::time::Instant::now();
        }
    }
}

/// Records raw frames in the TIKREC1 format. Cheap to clone; all clones write one file.
#[derive(Clone)]
pub struct FrameRecorder {
    writer: Writer,
    start: Instant,
}

impl FrameRecorder {
    pub fn create(path: &Path) -> io::Result<FrameRecorder> {
        Ok(FrameRecorder {
            writer: Writer::create(path, MAGIC)?,
            start: Instant::now(),
        })
    }

    /// Queues one record stamped now.
    pub fn record(&self, kind: RecordKind, bytes: &[u8]) {
        let at_us = self.start.elapsed().as_micros() as u64;
        self.writer.write(encode_record(at_us, kind, bytes));
    }

    /// Flushes everything recorded so far and closes the file.
    pub async fn finish(&self) {
        self.writer.finish().await;
    }
}

/// One record's bytes.
pub fn encode_record(at_us: u64, kind: RecordKind, bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(13 + bytes.len());
    out.extend_from_slice(&at_us.to_le_bytes());
    out.push(kind as u8);
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
    out
}

/// Writes every relayed event as one JSON line.
pub struct EventRecorder {
    writer: Writer,
    task: tokio::task::JoinHandle<()>,
    stop: oneshot::Sender<()>,
}

impl EventRecorder {
    /// Starts writing the events `events` delivers.
    pub fn start(
        path: &Path,
        mut events: broadcast::Receiver<Arc<Event>>,
    ) -> io::Result<EventRecorder> {
        let writer = Writer::create(path, b"")?;
        let w = writer.clone();
        let (stop, mut stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    biased;
                    item = events.recv() => item,
                    _ = &mut stopped => {
                        // Take what is already published, then stop.
                        while let Ok(event) = events.try_recv() {
                            w.write(event_line(&event));
                        }
                        return;
                    }
                };
                match item {
                    Ok(event) => w.write(event_line(&event)),
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::warn!(
                            "event recording fell behind; {n} events are missing from it"
                        )
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                }
            }
        });
        Ok(EventRecorder { writer, task, stop })
    }

    /// Writes what was published so far, flushes and closes the file.
    pub async fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.task.await;
        self.writer.finish().await;
    }
}

fn event_line(event: &Event) -> Vec<u8> {
    let mut line = event.to_json().into_bytes();
    line.push(b'\n');
    line
}

/// Why a recording cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: io::Error },
    #[error("{path} is not a tikrelay recording (it does not start with TIKREC1)")]
    NotARecording { path: String },
    #[error(
        "{path}: the record at byte offset {offset} (record {index}) has kind {kind}, expected 0 (fetch result) or 1 (push frame); the file is damaged from there on"
    )]
    BadKind {
        path: String,
        index: usize,
        offset: u64,
        kind: u8,
    },
    #[error(
        "{path}: the record at byte offset {offset} (record {index}) claims {len} bytes, over the {MAX_RECORD_BYTES}-byte limit; the file is damaged from there on"
    )]
    TooLarge {
        path: String,
        index: usize,
        offset: u64,
        len: usize,
    },
}

/// Reads the records of a TIKREC1 stream. A record cut short at the end (the recorder was
/// killed mid-write) ends the stream with a warning.
pub struct RecordReader<R: Read> {
    inner: R,
    path: String,
    index: usize,
    /// Byte offset of the next record, for messages.
    offset: u64,
    done: bool,
}

impl RecordReader<io::BufReader<File>> {
    pub fn open(path: &Path) -> Result<Self, ReadError> {
        let name = path.display().to_string();
        let file = File::open(path).map_err(|source| ReadError::Io {
            path: name.clone(),
            source,
        })?;
        RecordReader::new(io::BufReader::new(file), name)
    }
}

impl<R: Read> RecordReader<R> {
    /// Checks the magic bytes and returns a reader positioned at the first record.
    pub fn new(mut inner: R, path: String) -> Result<Self, ReadError> {
        let mut magic = [0u8; 8];
        match inner.read_exact(&mut magic) {
            Ok(()) if &magic == MAGIC => {}
            Ok(()) => return Err(ReadError::NotARecording { path }),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                return Err(ReadError::NotARecording { path });
            }
            Err(source) => return Err(ReadError::Io { path, source }),
        }
        Ok(RecordReader {
            inner,
            path,
            index: 0,
            offset: MAGIC.len() as u64,
            done: false,
        })
    }

    fn read_record(&mut self) -> Result<Option<Record>, ReadError> {
        let mut head = [0u8; 13];
        let mut got = 0;
        while got < head.len() {
            match self.inner.read(&mut head[got..]) {
                Ok(0) if got == 0 => return Ok(None),
                Ok(0) => {
                    tracing::warn!(
                        "{}: the last record (byte offset {}) is cut short; ignored",
                        self.path,
                        self.offset
                    );
                    return Ok(None);
                }
                Ok(n) => got += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(source) => {
                    return Err(ReadError::Io {
                        path: self.path.clone(),
                        source,
                    });
                }
            }
        }
        let at_us = u64::from_le_bytes(head[0..8].try_into().expect("8 bytes"));
        let kind = match head[8] {
            0 => RecordKind::FetchResult,
            1 => RecordKind::PushFrame,
            kind => {
                return Err(ReadError::BadKind {
                    path: self.path.clone(),
                    index: self.index,
                    offset: self.offset,
                    kind,
                });
            }
        };
        let len = u32::from_le_bytes(head[9..13].try_into().expect("4 bytes")) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(ReadError::TooLarge {
                path: self.path.clone(),
                index: self.index,
                offset: self.offset,
                len,
            });
        }
        let mut bytes = vec![0u8; len];
        if let Err(e) = self.inner.read_exact(&mut bytes) {
            if e.kind() == io::ErrorKind::UnexpectedEof {
                tracing::warn!(
                    "{}: the last record (byte offset {}) is cut short; ignored",
                    self.path,
                    self.offset
                );
                return Ok(None);
            }
            return Err(ReadError::Io {
                path: self.path.clone(),
                source: e,
            });
        }
        self.index += 1;
        self.offset += 13 + len as u64;
        Ok(Some(Record { at_us, kind, bytes }))
    }
}

impl<R: Read> Iterator for RecordReader<R> {
    type Item = Result<Record, ReadError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        match self.read_record() {
            Ok(Some(r)) => Some(Ok(r)),
            Ok(None) => {
                self.done = true;
                None
            }
            Err(e) => {
                self.done = true;
                Some(Err(e))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn frames_round_trip_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rec.tikrec");
        let rec = FrameRecorder::create(&path).unwrap();
        rec.record(RecordKind::FetchResult, b"first");
        rec.record(RecordKind::PushFrame, b"");
        rec.record(RecordKind::PushFrame, &[7u8; 100_000]);
        rec.finish().await;
        let records: Vec<Record> = RecordReader::open(&path)
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0].kind, RecordKind::FetchResult);
        assert_eq!(records[0].bytes, b"first");
        assert!(records[1].bytes.is_empty());
        assert_eq!(records[2].bytes, vec![7u8; 100_000]);
        assert!(records.windows(2).all(|w| w[0].at_us <= w[1].at_us));
        let raw = std::fs::read(&path).unwrap();
        assert_eq!(&raw[..8], MAGIC);
        assert_eq!(raw[16], 0, "kind byte of the first record");
        assert_eq!(&raw[17..21], &5u32.to_le_bytes());
    }

    #[test]
    fn a_truncated_tail_is_ignored_and_garbage_is_refused() {
        let mut bytes = MAGIC.to_vec();
        bytes.extend(encode_record(1, RecordKind::PushFrame, b"abc"));
        bytes.extend(&encode_record(2, RecordKind::PushFrame, b"defgh")[..15]);
        let records: Vec<_> = RecordReader::new(&bytes[..], "t".into())
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        assert_eq!(records.len(), 1);
        assert!(RecordReader::new(&b"NOTREC!!xxxx"[..], "t".into()).is_err());
        let mut bad = MAGIC.to_vec();
        bad.extend(encode_record(1, RecordKind::PushFrame, b"x"));
        bad[16] = 9;
        let first = RecordReader::new(&bad[..], "t".into())
            .unwrap()
            .next()
            .unwrap();
        assert!(matches!(
            first,
            Err(ReadError::BadKind {
                kind: 9,
                offset: 8,
                ..
            })
        ));
    }

    #[tokio::test]
    async fn a_write_error_stops_recording_without_panicking() {
        // /dev/full accepts the open and fails every write with "no space left".
        let path = Path::new("/dev/full");
        if !path.exists() {
            return;
        }
        let rec = FrameRecorder::create(path).expect("opening /dev/full works");
        for _ in 0..1000 {
            rec.record(RecordKind::PushFrame, &[1u8; 1024]);
        }
        rec.finish().await;
        assert!(rec.writer.failed.load(Ordering::Relaxed));
    }
}
