//! Minecraft/Source RCON: the wire format, a client that logs in and runs commands
//! ([`RconClient`]), and a background worker ([`spawn_worker`]) that owns one connection and a
//! bounded, ordered queue of commands.
//!
//! Triggers fire from the event pipeline, which must never wait on a game server, and a gift
//! that should spawn something must neither vanish nor run twice because the server restarted.
//! So callers only enqueue through [`RconHandle::send`] (never blocks), and the worker runs the
//! queue one command at a time, paces it, reconnects with exponential backoff and retries the
//! command that failed, up to [`RconWorkerConfig::max_attempts`].
//!
//! Delivery is at-least-once only in one narrow case: if the connection breaks after the server
//! received a command but before its answer came back, the retry runs it again. A connection
//! that breaks between commands (the usual restart) loses and doubles nothing.

use std::fmt;
use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;

const TYPE_AUTH: i32 = 3;
const TYPE_EXECCOMMAND: i32 = 2;
const TYPE_AUTH_RESPONSE: i32 = 2;
const TYPE_RESPONSE_VALUE: i32 = 0;

/// Longest command body Minecraft accepts: its 1460-byte read buffer minus the 14-byte frame.
pub const MAX_COMMAND_LEN: usize = 1446;

/// Largest length field we accept from a server. Real answers are at most 4096 body bytes per
/// packet (a few times that in UTF-8 from servers that split by characters); anything bigger
/// means the stream is not RCON or is out of step, and allocating it would let a bad peer
/// exhaust memory.
pub const MAX_PACKET_LEN: usize = 64 * 1024;

/// Request id, type and the two NUL terminators: a packet with an empty body.
const MIN_PACKET_LEN: usize = 10;

/// What went wrong talking to an RCON server. The messages are shown to streamers, so each says
/// what to check.
#[derive(Debug, thiserror::Error)]
pub enum RconError {
    #[error(
        "could not connect to the RCON server at {addr}: {source}; is the Minecraft server running with enable-rcon=true?"
    )]
    Connect { addr: String, source: io::Error },
    #[error("RCON login refused: wrong rcon.password")]
    AuthFailed,
    #[error("RCON connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("RCON protocol error: {0}; does the address point at the server's rcon.port?")]
    Protocol(String),
    #[error("RCON command is {len} bytes but the server accepts at most {max}; shorten it")]
    CommandTooLong { len: usize, max: usize },
    #[error("the RCON server did not answer in time; is it frozen or overloaded?")]
    Timeout,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Packet {
    id: i32,
    kind: i32,
    body: Vec<u8>,
}

fn encode(buf: &mut Vec<u8>, id: i32, kind: i32, body: &[u8]) -> Result<(), RconError> {
    let len = i32::try_from(body.len() + MIN_PACKET_LEN)
        .map_err(|_| RconError::Protocol(format!("{} byte body cannot be framed", body.len())))?;
    buf.extend_from_slice(&len.to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&kind.to_le_bytes());
    buf.extend_from_slice(body);
    buf.extend_from_slice(&[0, 0]);
    Ok(())
}

async fn read_packet<R: AsyncRead + Unpin>(r: &mut R) -> Result<Packet, RconError> {
    let raw_len = r.read_i32_le().await.map_err(eof_as_closed)?;
    // Checked before allocating: the length comes straight from the peer.
    let len = usize::try_from(raw_len)
        .ok()
        .filter(|l| (MIN_PACKET_LEN..=MAX_PACKET_LEN).contains(l))
        .ok_or_else(|| {
            RconError::Protocol(format!(
                "packet length {raw_len} is outside {MIN_PACKET_LEN}..={MAX_PACKET_LEN}"
            ))
        })?;
    let mut buf = vec![0; len];
    r.read_exact(&mut buf).await.map_err(eof_as_closed)?;
    let id = i32::from_le_bytes([buf[0], buf[1], buf[2], buf[3]]);
    let kind = i32::from_le_bytes([buf[4], buf[5], buf[6], buf[7]]);
    // The terminators are how a stream that slipped out of step shows itself early.
    if buf[len - 2..] != [0, 0] {
        return Err(RconError::Protocol(format!(
            "packet (id {id}, type {kind}) does not end with two NUL bytes"
        )));
    }
    buf.truncate(len - 2);
    buf.drain(..8);
    Ok(Packet {
        id,
        kind,
        body: buf,
    })
}

fn eof_as_closed(e: io::Error) -> RconError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        RconError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the server closed the connection",
        ))
    } else {
        RconError::Io(e)
    }
}

/// One logged-in RCON connection.
///
/// After any error other than [`RconError::CommandTooLong`], or if a [`command`](Self::command)
/// future is dropped before it finishes, the connection is in an unknown state: further commands
/// fail, and the caller should connect again.
pub struct RconClient {
    stream: BufReader<TcpStream>,
    addr: String,
    timeout: Duration,
    next_id: i32,
    // Set while a request is in flight, so a failed or cancelled call cannot leave half an answer
    // to be read as the next command's.
    poisoned: bool,
}

impl fmt::Debug for RconClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RconClient")
            .field("addr", &self.addr)
            .field("timeout", &self.timeout)
            .field("next_id", &self.next_id)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl RconClient {
    /// Connects to `addr` (`host:port`) and logs in. `timeout` bounds the connect and every
    /// later read or write on this connection.
    pub async fn connect(addr: &str, password: &str, timeout: Duration) -> Result<Self, RconError> {
        let stream = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(source)) => {
                return Err(RconError::Connect {
                    addr: addr.to_string(),
                    source,
                });
            }
            Err(_) => {
                return Err(RconError::Connect {
                    addr: addr.to_string(),
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {timeout:?}"),
                    ),
                });
            }
        };
        // Requests are tiny and answered one by one; Nagle would only add latency.
        stream.set_nodelay(true)?;
        let mut client = RconClient {
            stream: BufReader::new(stream),
            addr: addr.to_string(),
            timeout,
            next_id: 1,
            poisoned: true,
        };
        client.login(password).await?;
        client.poisoned = false;
        Ok(client)
    }

    /// Runs `cmd` (without the leading `/`) and returns the server's whole answer, however many
    /// packets it was split into.
    pub async fn command(&mut self, cmd: &str) -> Result<String, RconError> {
        if cmd.len() > MAX_COMMAND_LEN {
            return Err(RconError::CommandTooLong {
                len: cmd.len(),
                max: MAX_COMMAND_LEN,
            });
        }
        if self.poisoned {
            return Err(RconError::Io(io::Error::new(
                io::ErrorKind::NotConnected,
                "an earlier failed or cancelled request left this RCON connection out of step; reconnect",
            )));
        }
        self.poisoned = true;

        let id = self.take_ids(2);
        // The server answers in order and never marks the last packet of a split answer, so an
        // extra request right behind the command tells where the answer ends: its reply comes
        // only after every part of the command's.
        let sentinel = id + 1;
        let mut buf = Vec::with_capacity(cmd.len() + 2 * (MIN_PACKET_LEN + 4));
        encode(&mut buf, id, TYPE_EXECCOMMAND, cmd.as_bytes())?;
        encode(&mut buf, sentinel, TYPE_RESPONSE_VALUE, b"")?;
        self.write(&buf).await?;

        // Bytes, not text: a server may split a multi-byte character across packets.
        let mut answer = Vec::new();
        loop {
            let p = self.read().await?;
            if p.id == sentinel {
                break;
            }
            if p.id == id && p.kind == TYPE_RESPONSE_VALUE {
                answer.extend_from_slice(&p.body);
                continue;
            }
            // Source servers answer an empty RESPONSE_VALUE with two packets; the second one of
            // an earlier sentinel shows up here.
            if p.id > 0 && p.id < id {
                tracing::trace!(id = p.id, "skipping late RCON packet of an earlier request");
                continue;
            }
            return Err(RconError::Protocol(format!(
                "got a packet with id {} and type {} while waiting for the answer to request {id}",
                p.id, p.kind
            )));
        }
        self.poisoned = false;
        Ok(String::from_utf8_lossy(&answer).into_owned())
    }

    async fn login(&mut self, password: &str) -> Result<(), RconError> {
        let id = self.take_ids(1);
        let mut buf = Vec::with_capacity(password.len() + MIN_PACKET_LEN + 4);
        encode(&mut buf, id, TYPE_AUTH, password.as_bytes())?;
        self.write(&buf).await?;
        loop {
            let p = self.read().await?;
            match (p.id, p.kind) {
                (-1, _) => return Err(RconError::AuthFailed),
                (i, TYPE_AUTH_RESPONSE) if i == id => return Ok(()),
                // Source servers send an empty RESPONSE_VALUE ahead of the AUTH_RESPONSE.
                (i, TYPE_RESPONSE_VALUE) if i == id => continue,
                (i, kind) => {
                    return Err(RconError::Protocol(format!(
                        "got a packet with id {i} and type {kind} while logging in"
                    )));
                }
            }
        }
    }

    fn take_ids(&mut self, n: i32) -> i32 {
        // Ids stay positive: -1 is the server's "not logged in", and the late-packet check in
        // `command` relies on ids growing within a connection.
        if self.next_id > i32::MAX - n {
            self.next_id = 1;
        }
        let first = self.next_id;
        self.next_id += n;
        first
    }

    async fn write(&mut self, buf: &[u8]) -> Result<(), RconError> {
        tokio::time::timeout(self.timeout, self.stream.get_mut().write_all(buf))
            .await
            .map_err(|_| RconError::Timeout)??;
        Ok(())
    }

    async fn read(&mut self) -> Result<Packet, RconError> {
        tokio::time::timeout(self.timeout, read_packet(&mut self.stream))
            .await
            .map_err(|_| RconError::Timeout)?
    }
}

/// Settings of the background worker. `Debug` hides the password.
#[derive(Clone)]
pub struct RconWorkerConfig {
    /// `host:port` of the server's RCON listener (Minecraft's `rcon.port`, default 25575).
    pub addr: String,
    /// Minecraft's `rcon.password`.
    pub password: String,
    /// Commands that may wait; further ones are refused by [`RconHandle::send`]. At least 1.
    pub queue_capacity: usize,
    /// Least time between the starts of two commands (retries included), so a gift storm does
    /// not swamp the game's main thread.
    pub min_interval: Duration,
    /// Bound on connecting and on every single read or write.
    pub timeout: Duration,
    /// Tries of one command before it is dropped with a warning. Only tries that sent the
    /// command count: while the server is unreachable the command waits, and so does the queue.
    pub max_attempts: u32,
    /// First wait after a failure; doubles on each further failure up to `max_backoff`, and
    /// resets after a command succeeds.
    pub initial_backoff: Duration,
    /// Longest wait between reconnects; also the wait after a refused login.
    pub max_backoff: Duration,
    /// Receives one [`CommandOutcome`] per command taken from the queue, in queue order.
    pub outcomes: Option<mpsc::UnboundedSender<CommandOutcome>>,
}

impl RconWorkerConfig {
    /// Defaults: queue of 1000, 50 ms between commands, 5 s timeout, 5 attempts, backoff
    /// 500 ms doubling to 30 s, no outcome channel.
    pub fn new(addr: impl Into<String>, password: impl Into<String>) -> Self {
        RconWorkerConfig {
            addr: addr.into(),
            password: password.into(),
            queue_capacity: 1000,
            min_interval: Duration::from_millis(50),
            timeout: Duration::from_secs(5),
            max_attempts: 5,
            initial_backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(30),
            outcomes: None,
        }
    }
}

impl fmt::Debug for RconWorkerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = if self.password.is_empty() {
            "<empty>"
        } else {
            "<hidden>"
        };
        f.debug_struct("RconWorkerConfig")
            .field("addr", &self.addr)
            .field("password", &password)
            .field("queue_capacity", &self.queue_capacity)
            .field("min_interval", &self.min_interval)
            .field("timeout", &self.timeout)
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("outcomes", &self.outcomes.is_some())
            .finish()
    }
}

/// What became of one queued command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandOutcome {
    pub command: String,
    /// The server's answer, or the last error's message if the command was dropped.
    pub result: Result<String, String>,
    /// Tries that sent the command (0 if it was refused before sending, e.g. too long).
    pub attempts: u32,
}

/// [`RconHandle::send`] could not queue the command; it will not run.
#[derive(Debug, thiserror::Error)]
#[error("{}", if *.worker_stopped {
    format!("RCON worker has stopped; command not run: {}", .command)
} else {
    format!("RCON queue is full; command not run: {} (is the server down or too slow?)", .command)
})]
pub struct QueueFull {
    pub command: String,
    /// The worker task is gone (it panicked or the runtime is shutting down), rather than busy.
    pub worker_stopped: bool,
}

/// Cheap to clone; the worker stops once every handle is dropped and the queue has drained.
#[derive(Debug, Clone)]
pub struct RconHandle {
    tx: mpsc::Sender<String>,
    rejected: Arc<AtomicU64>,
}

impl RconHandle {
    /// Queues `cmd` without waiting. A refusal is also logged, so callers may ignore it.
    pub fn send(&self, cmd: String) -> Result<(), QueueFull> {
        let (command, worker_stopped) = match self.tx.try_send(cmd) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Full(c)) => (c, false),
            Err(mpsc::error::TrySendError::Closed(c)) => (c, true),
        };
        let n = self.rejected.fetch_add(1, Ordering::Relaxed) + 1;
        let err = QueueFull {
            command,
            worker_stopped,
        };
        // A storm against a dead server would otherwise write one line per gift.
        if n == 1 || n.is_multiple_of(100) {
            tracing::warn!(rejected_total = n, "{err}");
        } else {
            tracing::debug!(rejected_total = n, "{err}");
        }
        Err(err)
    }

    /// Commands refused by [`send`](Self::send) so far.
    pub fn rejected(&self) -> u64 {
        self.rejected.load(Ordering::Relaxed)
    }

    /// Commands waiting in the queue (not counting the one running).
    pub fn queued(&self) -> usize {
        self.tx.max_capacity() - self.tx.capacity()
    }
}

/// The task behind an [`RconHandle`]. Most callers want [`spawn_worker`]; this exists for those
/// that run the task themselves (e.g. in a `JoinSet`).
pub struct RconWorker {
    config: RconWorkerConfig,
    rx: mpsc::Receiver<String>,
    conn: Option<RconClient>,
    backoff: Duration,
    next_start: Option<Instant>,
}

impl fmt::Debug for RconWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RconWorker")
            .field("config", &self.config)
            .field("connected", &self.conn.is_some())
            .field("backoff", &self.backoff)
            .finish_non_exhaustive()
    }
}

/// Starts the worker on the current tokio runtime.
pub fn spawn_worker(config: RconWorkerConfig) -> RconHandle {
    let (worker, handle) = RconWorker::new(config);
    tokio::spawn(worker.run());
    handle
}

impl RconWorker {
    pub fn new(config: RconWorkerConfig) -> (Self, RconHandle) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.clamp(1, super::MAX_ACTION_BACKLOG));
        let worker = RconWorker {
            backoff: config.initial_backoff,
            config,
            rx,
            conn: None,
            next_start: None,
        };
        let handle = RconHandle {
            tx,
            rejected: Arc::new(AtomicU64::new(0)),
        };
        (worker, handle)
    }

    /// Runs queued commands in order until every handle is dropped and the queue is empty.
    pub async fn run(mut self) {
        while let Some(cmd) = self.rx.recv().await {
            let outcome = self.execute(cmd).await;
            if let Some(tx) = &self.config.outcomes {
                // Nobody listening is fine: outcomes are optional.
                let _ = tx.send(outcome);
            }
        }
    }

    async fn execute(&mut self, command: String) -> CommandOutcome {
        let max_attempts = self.config.max_attempts.max(1);
        let mut attempts = 0;
        loop {
            let fresh = self.conn.is_none();
            self.ensure_connected().await;
            self.pace().await;
            let Some(client) = self.conn.as_mut() else {
                continue;
            };
            attempts += 1;
            match client.command(&command).await {
                Ok(answer) => {
                    tracing::debug!(command = %command, answer = %answer, "RCON command ran");
                    self.backoff = self.config.initial_backoff;
                    return CommandOutcome {
                        command,
                        result: Ok(answer),
                        attempts,
                    };
                }
                Err(e @ RconError::CommandTooLong { .. }) => {
                    tracing::warn!(command = %command, "RCON command skipped: {e}");
                    return CommandOutcome {
                        command,
                        result: Err(e.to_string()),
                        attempts: 0,
                    };
                }
                Err(e) => {
                    self.conn = None;
                    if attempts >= max_attempts {
                        tracing::warn!(
                            command = %command,
                            "RCON command dropped after {attempts} failed attempts: {e}"
                        );
                        return CommandOutcome {
                            command,
                            result: Err(e.to_string()),
                            attempts,
                        };
                    }
                    if fresh {
                        tracing::warn!(command = %command, "RCON command failed ({e}); retrying in {:?}", self.backoff);
                        self.sleep_backoff().await;
                    } else {
                        // A connection that sat idle is the likely culprit (server restarted
                        // meanwhile), so reconnect straight away instead of waiting.
                        tracing::info!("RCON connection lost ({e}); reconnecting");
                    }
                }
            }
        }
    }

    /// Returns once `self.conn` is set; waits as long as the server takes to come back.
    async fn ensure_connected(&mut self) {
        while self.conn.is_none() {
            let c = &self.config;
            match RconClient::connect(&c.addr, &c.password, c.timeout).await {
                Ok(client) => {
                    tracing::info!(addr = %c.addr, "RCON connected");
                    self.conn = Some(client);
                }
                Err(RconError::AuthFailed) => {
                    // The streamer may fix server.properties and restart, so keep trying, slowly.
                    tracing::error!(
                        addr = %c.addr,
                        "RCON login refused: the configured password does not match rcon.password in server.properties; retrying in {:?}",
                        c.max_backoff
                    );
                    tokio::time::sleep(c.max_backoff).await;
                }
                Err(e) => {
                    tracing::warn!("{e}; retrying in {:?}", self.backoff);
                    self.sleep_backoff().await;
                }
            }
        }
    }

    async fn sleep_backoff(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(self.config.max_backoff);
    }

    async fn pace(&mut self) {
        if let Some(at) = self.next_start {
            tokio::time::sleep_until(at).await;
        }
        self.next_start = Some(Instant::now() + self.config.min_interval);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn read_packet_rejects_bad_frames_without_panicking() {
        let mut good = Vec::new();
        encode(&mut good, 7, 0, b"hello").unwrap();
        let p = read_packet(&mut good.as_slice()).await.unwrap();
        assert_eq!(
            p,
            Packet {
                id: 7,
                kind: 0,
                body: b"hello".to_vec()
            }
        );

        let truncated = &good[..good.len() - 3];
        let err = read_packet(&mut &truncated[..]).await.unwrap_err();
        assert!(matches!(err, RconError::Io(_)), "{err:?}");

        for len in [i32::MIN, -5, 0, 9, 64 * 1024 + 1, i32::MAX] {
            let mut bytes = len.to_le_bytes().to_vec();
            bytes.extend_from_slice(&[0; 16]);
            let err = read_packet(&mut bytes.as_slice()).await.unwrap_err();
            assert!(matches!(err, RconError::Protocol(_)), "{len}: {err:?}");
        }
    }

    #[test]
    fn debug_output_hides_the_password() {
        let config = RconWorkerConfig::new("127.0.0.1:25575", "hunter2-secret");
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<hidden>"));
        let (worker, handle) = RconWorker::new(config);
        assert!(!format!("{worker:?}").contains("hunter2"));
        assert!(!format!("{handle:?}").contains("hunter2"));
    }
}
