//! A Minecraft-like RCON server for tests, on 127.0.0.1: logs in with a password, runs
//! "commands" by logging them and answering `ran CMD` (or a long answer for `long N`, split in
//! 4096-byte packets as Minecraft does), and can restart, hang or send garbage on request.
#![allow(dead_code)]

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

#[derive(Clone, Default)]
pub struct ServerOptions {
    /// On the first connection, after the sentinel of this many commands: close every
    /// socket including the listener, then listen again on the same address.
    pub restart_after: Option<usize>,
    /// Bytes written verbatim instead of the answer to any command.
    pub raw_reply: Option<Vec<u8>>,
    /// Never answer commands.
    pub silent: bool,
}

#[derive(Default)]
pub struct ServerState {
    pub password: Mutex<String>,
    /// Commands executed, in order (including "drop", which closes without answering).
    pub log: Mutex<Vec<String>>,
    pub connections: AtomicUsize,
    pub auth_failures: AtomicUsize,
}

/// A Minecraft-like RCON server on 127.0.0.1, serving one client at a time.
pub struct TestServer {
    pub addr: SocketAddr,
    pub state: Arc<ServerState>,
    task: JoinHandle<()>,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestServer {
    pub async fn start(password: &str, opts: ServerOptions) -> TestServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(ServerState::default());
        *state.password.lock().unwrap() = password.to_string();
        let task = tokio::spawn(accept_loop(listener, addr, state.clone(), opts));
        TestServer { addr, state, task }
    }

    pub fn addr(&self) -> String {
        self.addr.to_string()
    }

    pub fn log(&self) -> Vec<String> {
        self.state.log.lock().unwrap().clone()
    }
}

pub async fn accept_loop(
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

pub async fn rebind(addr: SocketAddr) -> TcpListener {
    for _ in 0..100 {
        if let Ok(l) = TcpListener::bind(addr).await {
            return l;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("could not listen on {addr} again");
}

pub async fn send_raw(sock: &mut TcpStream, id: i32, kind: i32, body: &[u8]) -> io::Result<()> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&(body.len() as i32 + 10).to_le_bytes());
    buf.extend_from_slice(&id.to_le_bytes());
    buf.extend_from_slice(&kind.to_le_bytes());
    buf.extend_from_slice(body);
    buf.extend_from_slice(&[0, 0]);
    sock.write_all(&buf).await
}

pub fn answer_to(cmd: &str) -> String {
    match cmd.strip_prefix("long ") {
        Some(n) => (0..n.parse::<usize>().unwrap())
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect(),
        None => format!("ran {cmd}"),
    }
}

/// Serves one connection as Minecraft does; returns true if the server should "restart".
pub async fn serve(
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
