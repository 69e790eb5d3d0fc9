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
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
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

    use std::net::SocketAddr;
    use std::sync::Mutex;
    use std::sync::atomic::AtomicUsize;

    use tokio::net::{TcpListener, TcpStream};
    use tokio::sync::mpsc::UnboundedReceiver;
    use tokio::task::JoinHandle;

    /// Long enough never to fire on a healthy loopback server; the tests never wait for it.
    const TIMEOUT: Duration = Duration::from_secs(10);

    #[derive(Clone, Default)]
    struct ServerOptions {
        /// On the first connection, after the sentinel of this many commands: close every
        /// socket including the listener, then listen again on the same address.
        restart_after: Option<usize>,
        /// Bytes written verbatim instead of the answer to any command.
        raw_reply: Option<Vec<u8>>,
        /// Never answer commands.
        silent: bool,
    }

    #[derive(Default)]
    struct ServerState {
        password: Mutex<String>,
        /// Commands executed, in order (including "drop", which closes without answering).
        log: Mutex<Vec<String>>,
        connections: AtomicUsize,
        auth_failures: AtomicUsize,
    }

    /// A Minecraft-like RCON server on 127.0.0.1, serving one client at a time.
    struct TestServer {
        addr: SocketAddr,
        state: Arc<ServerState>,
        task: JoinHandle<()>,
    }

    impl Drop for TestServer {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl TestServer {
        async fn start(password: &str, opts: ServerOptions) -> TestServer {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            let state = Arc::new(ServerState::default());
            *state.password.lock().unwrap() = password.to_string();
            let task = tokio::spawn(accept_loop(listener, addr, state.clone(), opts));
            TestServer { addr, state, task }
        }

        fn addr(&self) -> String {
            self.addr.to_string()
        }

        fn log(&self) -> Vec<String> {
            self.state.log.lock().unwrap().clone()
        }
    }

    async fn accept_loop(
        mut listener: TcpListener,
        addr: SocketAddr,
        state: Arc<ServerState>,
        opts: ServerOptions,
    ) {
        loop {
            let (sock, _) = listener.accept().await.unwrap();
            // Otherwise Nagle plus the client's delayed ACK adds ~40 ms per answer.
            sock.set_nodelay(true).unwrap();
            let n = state.connections.fetch_add(1, Ordering::SeqCst);
            let restart_after = opts.restart_after.filter(|_| n == 0);
            let restart = serve(sock, &state, &opts, restart_after).await;
            if restart {
                drop(listener);
                // Down for a moment, so the client sees refused connects and backs off.
                tokio::time::sleep(Duration::from_millis(100)).await;
                listener = rebind(addr).await;
            }
        }
    }

    async fn rebind(addr: SocketAddr) -> TcpListener {
        for _ in 0..100 {
            if let Ok(l) = TcpListener::bind(addr).await {
                return l;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("could not listen on {addr} again");
    }

    async fn send_raw(sock: &mut TcpStream, id: i32, kind: i32, body: &[u8]) -> io::Result<()> {
        let mut buf = Vec::new();
        buf.extend_from_slice(&(body.len() as i32 + 10).to_le_bytes());
        buf.extend_from_slice(&id.to_le_bytes());
        buf.extend_from_slice(&kind.to_le_bytes());
        buf.extend_from_slice(body);
        buf.extend_from_slice(&[0, 0]);
        sock.write_all(&buf).await
    }

    fn answer_to(cmd: &str) -> String {
        match cmd.strip_prefix("long ") {
            Some(n) => (0..n.parse::<usize>().unwrap())
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect(),
            None => format!("ran {cmd}"),
        }
    }

    /// Serves one connection as Minecraft does; returns true if the server should "restart".
    async fn serve(
        mut sock: TcpStream,
        state: &ServerState,
        opts: &ServerOptions,
        restart_after: Option<usize>,
    ) -> bool {
        let mut authed = false;
        let mut done = 0;
        loop {
            let mut len = [0; 4];
            if sock.read_exact(&mut len).await.is_err() {
                return false;
            }
            let len = i32::from_le_bytes(len);
            // Minecraft's read buffer is 1460 bytes; it hangs up on anything else.
            if !(10..=1460).contains(&len) {
                return false;
            }
            let mut buf = vec![0; len as usize];
            if sock.read_exact(&mut buf).await.is_err() {
                return false;
            }
            let id = i32::from_le_bytes(buf[0..4].try_into().unwrap());
            let kind = i32::from_le_bytes(buf[4..8].try_into().unwrap());
            assert_eq!(
                &buf[buf.len() - 2..],
                &[0, 0],
                "client sent bad terminators"
            );
            let body = String::from_utf8(buf[8..buf.len() - 2].to_vec()).unwrap();
            let sent = match kind {
                3 => {
                    if body == *state.password.lock().unwrap() {
                        authed = true;
                        send_raw(&mut sock, id, 2, b"").await
                    } else {
                        state.auth_failures.fetch_add(1, Ordering::SeqCst);
                        send_raw(&mut sock, -1, 2, b"").await
                    }
                }
                _ if !authed => send_raw(&mut sock, -1, 2, b"").await,
                // Not even the sentinel: a hung server answers nothing.
                _ if opts.silent => continue,
                2 => {
                    if let Some(raw) = &opts.raw_reply {
                        let _ = sock.write_all(raw).await;
                        // Keep the socket open so the client fails on the bytes, not on EOF.
                        let mut sink = Vec::new();
                        let _ = sock.read_to_end(&mut sink).await;
                        return false;
                    }
                    state.log.lock().unwrap().push(body.clone());
                    if body == "drop" {
                        return false;
                    }
                    let answer = answer_to(&body);
                    let mut result = Ok(());
                    // Minecraft sends at least one packet, empty for an empty answer.
                    let chunks: Vec<&[u8]> = if answer.is_empty() {
                        vec![b""]
                    } else {
                        answer.as_bytes().chunks(4096).collect()
                    };
                    for chunk in chunks {
                        result = result.and(send_raw(&mut sock, id, 0, chunk).await);
                    }
                    done += 1;
                    result
                }
                other => {
                    let r = send_raw(
                        &mut sock,
                        id,
                        0,
                        format!("Unknown request {other:x}").as_bytes(),
                    )
                    .await;
                    if restart_after == Some(done) {
                        return true;
                    }
                    r
                }
            };
            if sent.is_err() {
                return false;
            }
        }
    }

    fn test_config(
        addr: String,
        password: &str,
    ) -> (RconWorkerConfig, UnboundedReceiver<CommandOutcome>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let config = RconWorkerConfig {
            queue_capacity: 1000,
            min_interval: Duration::from_millis(1),
            timeout: TIMEOUT,
            max_attempts: 5,
            initial_backoff: Duration::from_millis(10),
            max_backoff: Duration::from_millis(40),
            outcomes: Some(tx),
            ..RconWorkerConfig::new(addr, password)
        };
        (config, rx)
    }

    async fn collect(rx: &mut UnboundedReceiver<CommandOutcome>, n: usize) -> Vec<CommandOutcome> {
        let mut out = Vec::new();
        while out.len() < n {
            let next = tokio::time::timeout(Duration::from_secs(30), rx.recv()).await;
            out.push(
                next.expect("worker reported nothing for 30 s")
                    .expect("worker gone"),
            );
        }
        out
    }

    #[tokio::test]
    async fn login_and_command() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
            .await
            .unwrap();
        assert_eq!(client.command("list").await.unwrap(), "ran list");
        assert_eq!(
            client.command("time set day").await.unwrap(),
            "ran time set day"
        );
        assert_eq!(server.log(), ["list", "time set day"]);
    }

    #[tokio::test]
    async fn wrong_password_is_auth_failed() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let err = RconClient::connect(&server.addr(), "guess", TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, RconError::AuthFailed), "{err:?}");
        assert!(err.to_string().contains("rcon.password"));
    }

    #[tokio::test]
    async fn refused_connect_names_the_address() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        drop(listener);
        let err = RconClient::connect(&addr, "secret", TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, RconError::Connect { .. }), "{err:?}");
        assert!(err.to_string().contains(&addr));
        assert!(err.to_string().contains("enable-rcon=true"));
    }

    #[tokio::test]
    async fn multi_packet_answers_come_back_whole() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
            .await
            .unwrap();
        for n in [10_000, 4096, 4097, 8192, 0, 1] {
            let answer = client.command(&format!("long {n}")).await.unwrap();
            assert_eq!(answer.len(), n);
            assert_eq!(answer, answer_to(&format!("long {n}")));
        }
        // Still in step after the split answers.
        assert_eq!(client.command("list").await.unwrap(), "ran list");
    }

    #[tokio::test]
    async fn too_long_command_is_refused_before_sending() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
            .await
            .unwrap();
        let err = client
            .command(&"x".repeat(MAX_COMMAND_LEN + 1))
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                RconError::CommandTooLong {
                    len: 1447,
                    max: 1446
                }
            ),
            "{err:?}"
        );
        let longest = "y".repeat(MAX_COMMAND_LEN);
        assert_eq!(
            client.command(&longest).await.unwrap(),
            format!("ran {longest}")
        );
        assert_eq!(server.log(), [longest]);
    }

    #[tokio::test]
    async fn malformed_packets_are_protocol_errors() {
        let ten_mb = 10 * 1024 * 1024_i32;
        let mut missing_nul = Vec::new();
        missing_nul.extend_from_slice(&12_i32.to_le_bytes());
        missing_nul.extend_from_slice(&2_i32.to_le_bytes());
        missing_nul.extend_from_slice(&0_i32.to_le_bytes());
        missing_nul.extend_from_slice(b"okay");
        for raw in [
            (-5_i32).to_le_bytes().to_vec(),
            ten_mb.to_le_bytes().to_vec(),
            4_i32.to_le_bytes().to_vec(),
            missing_nul,
        ] {
            let opts = ServerOptions {
                raw_reply: Some(raw.clone()),
                ..Default::default()
            };
            let server = TestServer::start("secret", opts).await;
            let mut client = RconClient::connect(&server.addr(), "secret", TIMEOUT)
                .await
                .unwrap();
            let err = client.command("list").await.unwrap_err();
            assert!(matches!(err, RconError::Protocol(_)), "{raw:?}: {err:?}");
            // The connection is out of step now and says so instead of misreading.
            let again = client.command("list").await.unwrap_err();
            assert!(matches!(again, RconError::Io(_)), "{again:?}");
        }
    }

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

    #[tokio::test]
    async fn silent_server_times_out_on_paused_time() {
        let opts = ServerOptions {
            silent: true,
            ..Default::default()
        };
        let server = TestServer::start("secret", opts).await;
        let mut client = RconClient::connect(&server.addr(), "secret", Duration::from_secs(30))
            .await
            .unwrap();
        // Paused only now, so the real socket handshake above cannot race the auto-advancing clock.
        tokio::time::pause();
        let err = client.command("list").await.unwrap_err();
        assert!(matches!(err, RconError::Timeout), "{err:?}");
    }

    #[tokio::test]
    async fn worker_runs_commands_in_order_exactly_once() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let (config, mut outcomes) = test_config(server.addr(), "secret");
        let handle = spawn_worker(config);
        let commands: Vec<String> = (0..50).map(|i| format!("say {i}")).collect();
        for c in &commands {
            handle.send(c.clone()).unwrap();
        }
        let got = collect(&mut outcomes, commands.len()).await;
        assert_eq!(server.log(), commands);
        for (o, c) in got.iter().zip(&commands) {
            assert_eq!(o.command, *c);
            assert_eq!(o.result, Ok(format!("ran {c}")));
            assert_eq!(o.attempts, 1);
        }
        assert_eq!(server.state.connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn worker_survives_server_restart_without_loss_or_doubles() {
        let opts = ServerOptions {
            restart_after: Some(3),
            ..Default::default()
        };
        let server = TestServer::start("secret", opts).await;
        let (config, mut outcomes) = test_config(server.addr(), "secret");
        let handle = spawn_worker(config);
        let commands: Vec<String> = (0..10).map(|i| format!("give @a diamond {i}")).collect();
        for c in &commands {
            handle.send(c.clone()).unwrap();
        }
        let got = collect(&mut outcomes, commands.len()).await;
        assert_eq!(server.log(), commands);
        assert!(got.iter().all(|o| o.result.is_ok()), "{got:?}");
        assert_eq!(
            got.iter().map(|o| o.command.clone()).collect::<Vec<_>>(),
            commands
        );
        // The 4th went out on the dead connection, failed before the server read it, and was
        // retried once on the new one.
        let attempts: Vec<u32> = got.iter().map(|o| o.attempts).collect();
        assert_eq!(attempts, [1, 1, 1, 2, 1, 1, 1, 1, 1, 1]);
        assert!(server.state.connections.load(Ordering::SeqCst) >= 2);
    }

    #[tokio::test]
    async fn worker_drops_a_command_after_max_attempts_and_moves_on() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let (mut config, mut outcomes) = test_config(server.addr(), "secret");
        config.max_attempts = 3;
        let handle = spawn_worker(config);
        for c in ["before", "drop", "after"] {
            handle.send(c.to_string()).unwrap();
        }
        let got = collect(&mut outcomes, 3).await;
        assert_eq!(got[0].result, Ok("ran before".to_string()));
        assert_eq!(got[1].command, "drop");
        assert!(got[1].result.is_err(), "{:?}", got[1]);
        assert_eq!(got[1].attempts, 3);
        assert_eq!(got[2].result, Ok("ran after".to_string()));
        assert_eq!(server.log(), ["before", "drop", "drop", "drop", "after"]);
    }

    #[tokio::test]
    async fn worker_keeps_retrying_a_refused_login_until_the_password_is_fixed() {
        let server = TestServer::start("old", ServerOptions::default()).await;
        let (config, mut outcomes) = test_config(server.addr(), "secret");
        let handle = spawn_worker(config);
        handle.send("list".to_string()).unwrap();
        tokio::time::timeout(Duration::from_secs(30), async {
            while server.state.auth_failures.load(Ordering::SeqCst) < 3 {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
        .await
        .expect("worker stopped retrying the login");
        assert!(server.log().is_empty());
        *server.state.password.lock().unwrap() = "secret".to_string();
        let got = collect(&mut outcomes, 1).await;
        assert_eq!(got[0].result, Ok("ran list".to_string()));
        assert_eq!(got[0].attempts, 1);
    }

    #[tokio::test]
    async fn full_queue_is_reported_not_blocking() {
        let server = TestServer::start("secret", ServerOptions::default()).await;
        let (mut config, mut outcomes) = test_config(server.addr(), "secret");
        config.queue_capacity = 2;
        let handle = spawn_worker(config);
        // No await in between: on this single-threaded runtime the worker has not run yet.
        handle.send("a".to_string()).unwrap();
        handle.send("b".to_string()).unwrap();
        assert_eq!(handle.queued(), 2);
        let err = handle.send("c".to_string()).unwrap_err();
        assert_eq!(err.command, "c");
        assert!(!err.worker_stopped);
        assert_eq!(handle.rejected(), 1);
        let got = collect(&mut outcomes, 2).await;
        assert_eq!(got.len(), 2);
        assert_eq!(server.log(), ["a", "b"]);
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
