//! Connection limits: how long a connection may take to send a request head, how long it may
//! sit idle between requests, and how many connections the relay holds at once. Without them
//! a few hundred clients that send headers slowly, or a thousand idle TCP connections, used up
//! every file descriptor and even `/healthz` hung.
//!
//! Each accepted connection takes a [`Slot`]. At the cap, the longest-idle HTTP connection
//! (no request in flight, not a websocket) is closed to make room; only when every slot is
//! busy is the new connection refused. Both are logged, at most once per [`LOG_EVERY`].
//! A websocket keeps its slot until it closes (it holds a descriptor too) but no timeout of
//! this module applies to it: the hub's own limits and the client's pings do.
//!
//! All timing is tokio time, so tests can pause it.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::Notify;
use tokio::time::Instant;

/// Time to send a whole request head, counted from its first byte (or from the connect).
pub const DEFAULT_HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Time a keep-alive connection may wait for its next request, and a request may go without a
/// byte moving.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Connections (HTTP and websocket) held at once, before the file-descriptor fit below.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
/// Descriptors kept for everything but clients: data files, recordings, the theme watcher,
/// the TikTok connection, the listener.
pub const FD_RESERVE: u64 = 64;
/// The cap never goes below this, however low the descriptor limit.
const MIN_CONNECTIONS: usize = 16;
/// At most one log line per this long about the cap.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// The limits one server applies.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            header_timeout: DEFAULT_HEADER_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Raises the soft open-file limit to the hard one where the OS allows; returns the soft limit
/// now in force (`None` where there is no such limit to read, e.g. Windows).
#[cfg(unix)]
pub fn raise_fd_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        return None;
    }
    let before = lim.rlim_cur;
    if lim.rlim_cur < lim.rlim_max {
        let mut wanted = lim;
        wanted.rlim_cur = lim.rlim_max;
        // SAFETY: as above.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
            lim.rlim_cur = lim.rlim_max;
        } else if cfg!(target_os = "macos") {
            // macOS refuses more than OPEN_MAX for the soft limit, even when the hard one is
            // "unlimited".
            wanted.rlim_cur = lim.rlim_max.min(10_240);
            // SAFETY: as above.
            if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &wanted) } == 0 {
                lim.rlim_cur = wanted.rlim_cur;
            }
        }
    }
    // rlim_t is u64 on Linux and macOS but not on every unix.
    #[allow(clippy::useless_conversion)]
    let soft = u64::try_from(lim.rlim_cur).unwrap_or(u64::MAX);
    if lim.rlim_cur != before {
        tracing::debug!("open-file limit raised from {before} to {soft}");
    }
    Some(soft)
}

#[cfg(not(unix))]
pub fn raise_fd_limit() -> Option<u64> {
    None
}

/// The cap that fits in `fd_limit` descriptors, keeping [`FD_RESERVE`] for the rest.
pub fn fit_cap(wanted: usize, fd_limit: Option<u64>) -> usize {
    let fits = fd_limit.map_or(usize::MAX, |l| {
        usize::try_from(l.saturating_sub(FD_RESERVE)).unwrap_or(usize::MAX)
    });
    wanted.min(fits).max(MIN_CONNECTIONS)
}

/// Timing state of one connection, shared by its I/O, its service and its watchdog.
#[derive(Debug)]
pub struct ConnState {
    in_flight: AtomicUsize,
    upgraded: AtomicBool,
    evicting: AtomicBool,
    times: Mutex<Times>,
    /// Wakes the connection's task to close it (evicted at the cap).
    pub evict: Notify,
}

#[derive(Debug, Clone, Copy)]
struct Times {
    /// Last byte read or written.
    last_io: Instant,
    /// When the request head now arriving started (the connect, for a new connection).
    head_started: Option<Instant>,
}

/// What the watchdog found.
pub enum Expiry {
    /// Not yet; look again at this instant (or when woken).
    At(Option<Instant>),
    /// The request head took too long.
    SlowHead,
    /// No byte moved for too long (between requests, or in a stalled one).
    Idle,
}

impl ConnState {
    fn new() -> ConnState {
        let now = Instant::now();
        ConnState {
            in_flight: AtomicUsize::new(0),
            upgraded: AtomicBool::new(false),
            evicting: AtomicBool::new(false),
            times: Mutex::new(Times {
                last_io: now,
                head_started: Some(now),
            }),
            evict: Notify::new(),
        }
    }

    fn times(&self) -> std::sync::MutexGuard<'_, Times> {
        self.times.lock().expect("connection times lock")
    }

    /// A request head is complete and its handler runs.
    pub fn request_started(&self) {
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.times().head_started = None;
    }

    /// Its response is ready.
    pub fn request_done(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.times().last_io = Instant::now();
    }

    /// The connection became a websocket: no HTTP timeout applies any more.
    pub fn upgraded(&self) {
        self.upgraded.store(true, Ordering::SeqCst);
    }

    fn read_some(&self) {
        let now = Instant::now();
        let busy = self.in_flight.load(Ordering::SeqCst) > 0;
        let mut t = self.times();
        t.last_io = now;
        if !busy && t.head_started.is_none() {
            t.head_started = Some(now);
        }
    }

    fn wrote_some(&self) {
        self.times().last_io = Instant::now();
    }

    fn evictable(&self) -> bool {
        self.in_flight.load(Ordering::SeqCst) == 0
            && !self.upgraded.load(Ordering::SeqCst)
            && !self.evicting.load(Ordering::SeqCst)
    }

    /// Whether a timeout has passed, or when to look again.
    pub fn check(&self, limits: &Limits) -> Expiry {
        if self.upgraded.load(Ordering::SeqCst) {
            return Expiry::At(None);
        }
        let now = Instant::now();
        let t = *self.times();
        let in_flight = self.in_flight.load(Ordering::SeqCst) > 0;
        // A request in flight may take its time, as long as bytes move (a body sent one
        // byte a minute would otherwise hold its slot forever).
        if let (false, Some(started)) = (in_flight, t.head_started) {
            let deadline = started + limits.header_timeout;
            return if now >= deadline {
                Expiry::SlowHead
            } else {
                Expiry::At(Some(deadline))
            };
        }
        let deadline = t.last_io + limits.idle_timeout;
        if now >= deadline {
            Expiry::Idle
        } else {
            Expiry::At(Some(deadline))
        }
    }
}

/// Every open connection of one server.
#[derive(Debug)]
pub struct Connections {
    cap: usize,
    open: Mutex<Open>,
    log: Mutex<CapLog>,
}

#[derive(Debug, Default)]
struct Open {
    next_id: u64,
    conns: HashMap<u64, Arc<ConnState>>,
}

#[derive(Debug, Default)]
struct CapLog {
    last: Option<Instant>,
    evicted: u64,
    refused: u64,
}

/// One connection's place under the cap; the last clone to drop frees it.
#[derive(Debug)]
pub struct Slot {
    id: u64,
    pub state: Arc<ConnState>,
    conns: Arc<Connections>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.conns
            .open
            .lock()
            .expect("connections lock")
            .conns
            .remove(&self.id);
    }
}

impl Connections {
    pub fn new(cap: usize) -> Arc<Connections> {
        Arc::new(Connections {
            cap: cap.max(1),
            open: Mutex::new(Open::default()),
            log: Mutex::new(CapLog::default()),
        })
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// Connections open now (websockets included).
    pub fn open(&self) -> usize {
        self.open.lock().expect("connections lock").conns.len()
    }

    /// A slot for a new connection: at the cap, the longest-idle HTTP connection is told to
    /// close; `None` when every slot is busy (the caller closes the new connection).
    pub fn admit(self: &Arc<Self>) -> Option<Arc<Slot>> {
        let mut open = self.open.lock().expect("connections lock");
        let leaving = open
            .conns
            .values()
            .filter(|c| c.evicting.load(Ordering::SeqCst))
            .count();
        if open.conns.len() - leaving >= self.cap {
            let victim = open
                .conns
                .values()
                .filter(|c| c.evictable())
                .min_by_key(|c| c.times().last_io)
                .cloned();
            match victim {
                Some(v) => {
                    v.evicting.store(true, Ordering::SeqCst);
                    // notify_one stores a permit, so a task not waiting yet still sees it.
                    v.evict.notify_one();
                    self.note(true);
                }
                None => {
                    drop(open);
                    self.note(false);
                    return None;
                }
            }
        }
        let id = open.next_id;
        open.next_id += 1;
        let state = Arc::new(ConnState::new());
        open.conns.insert(id, state.clone());
        Some(Arc::new(Slot {
            id,
            state,
            conns: self.clone(),
        }))
    }

    /// Counts an eviction or refusal and logs, at most once per [`LOG_EVERY`].
    fn note(&self, evicted: bool) {
        let mut log = self.log.lock().expect("cap log lock");
        if evicted {
            log.evicted += 1;
        } else {
            log.refused += 1;
        }
        let now = Instant::now();
        if log
            .last
            .is_some_and(|at| now.duration_since(at) < LOG_EVERY)
        {
            return;
        }
        tracing::warn!(
            "connection limit reached ({} open connections): closed {} idle connection(s) and refused {} new one(s) since the last report; if this is not an attack, raise --max-connections (and the open-file limit, ulimit -n)",
            self.cap,
            log.evicted,
            log.refused
        );
        *log = CapLog {
            last: Some(now),
            evicted: 0,
            refused: 0,
        };
    }
}

/// A socket that tells its connection's state when bytes move.
pub struct Tracked<T> {
    inner: T,
    state: Arc<ConnState>,
}

impl<T> Tracked<T> {
    pub fn new(inner: T, state: Arc<ConnState>) -> Tracked<T> {
        Tracked { inner, state }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Tracked<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let r = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(r, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.state.read_some();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Tracked<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write(cx, data);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        r
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(r, Poll::Ready(Ok(n)) if n > 0) {
            self.state.wrote_some();
        }
        r
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits() -> Limits {
        Limits {
            header_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_new_connection_has_the_header_timeout_then_the_idle_one() {
        let s = ConnState::new();
        let l = limits();
        assert!(matches!(s.check(&l), Expiry::At(Some(_))));
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(s.check(&l), Expiry::SlowHead));
        s.request_started();
        assert!(
            matches!(s.check(&l), Expiry::At(Some(_))),
            "in flight, bytes moved"
        );
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(s.check(&l), Expiry::Idle), "in flight, stalled");
        s.request_done();
        tokio::time::advance(Duration::from_secs(30)).await;
        assert!(matches!(s.check(&l), Expiry::At(Some(_))), "idle, not yet");
        s.read_some();
        tokio::time::advance(Duration::from_secs(11)).await;
        assert!(matches!(s.check(&l), Expiry::SlowHead), "a head started");
        s.request_started();
        s.request_done();
        tokio::time::advance(Duration::from_secs(61)).await;
        assert!(matches!(s.check(&l), Expiry::Idle));
        s.upgraded();
        assert!(matches!(s.check(&l), Expiry::At(None)), "websockets stay");
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_idlest_goes_and_busy_ones_stay() {
        let c = Connections::new(2);
        let a = c.admit().unwrap();
        tokio::time::advance(Duration::from_secs(1)).await;
        let b = c.admit().unwrap();
        let third = c.admit().expect("room made by evicting the idlest");
        assert!(a.state.evicting.load(Ordering::SeqCst));
        assert!(!b.state.evicting.load(Ordering::SeqCst));
        drop(a);
        b.state.request_started();
        third.state.upgraded();
        assert!(c.admit().is_none(), "every slot busy: refused");
        drop(third);
        assert_eq!(c.open(), 1);
        assert!(c.admit().is_some());
    }

    #[test]
    fn the_cap_fits_the_descriptor_limit() {
        assert_eq!(fit_cap(1024, Some(256)), 192);
        assert_eq!(fit_cap(1024, Some(1_048_576)), 1024);
        assert_eq!(fit_cap(1024, None), 1024);
        assert_eq!(fit_cap(1024, Some(10)), MIN_CONNECTIONS);
    }
}
