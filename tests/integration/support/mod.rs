//! Shared test helpers: the relay run in-process (port 0) or as the real binary, a real
//! websocket client for `/ws`, and an HTTP client. Every server here listens on 127.0.0.1.
#![allow(dead_code)]

pub mod fake_tiktok;
pub mod obs;
pub mod obs_server;
pub mod rcon_server;
pub mod webcast;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub mod browser;

use tikrelay::cli::{Cli, CommonArgs};
use tikrelay::events::Source;

/// Generous bound for anything a test waits for; tests never assert on timing.
pub const WAIT: Duration = Duration::from_secs(20);

pub fn install_crypto() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

pub fn http() -> reqwest::Client {
    install_crypto();
    reqwest::Client::builder()
        .timeout(WAIT)
        .build()
        .expect("http client")
}

/// Common options for a relay on a free loopback port.
pub fn common_args(extra: &[&str]) -> CommonArgs {
    use clap::Parser;
    let mut args = vec!["tikrelay", "--port", "0"];
    args.extend_from_slice(extra);
    args.push("demo");
    Cli::parse_from(args).common
}

/// A relay running inside the test's runtime, with direct access to its hub and input.
pub struct InProcess {
    pub addr: SocketAddr,
    pub hub: Arc<tikrelay::hub::Hub>,
    /// Inputs sent here belong to the stream `demo`.
    pub input: tikrelay::pipeline::Feed,
    pub sources: Arc<tikrelay::sources::manager::SourceManager>,
    pub engine: Arc<tikrelay::triggers::Engine>,
    /// The TikFinity-compatible socket, when `--compat-port` was given.
    pub compat_addr: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    /// A fresh data dir unless the test passed `--data-dir`, so no test reads another's state.
    pub data_dir: Option<tempfile::TempDir>,
}

impl InProcess {
    pub async fn start(extra: &[&str]) -> InProcess {
        let data_dir =
            (!extra.contains(&"--data-dir")).then(|| tempfile::tempdir().expect("temp dir"));
        let mut args = extra.to_vec();
        if let Some(d) = &data_dir {
            args.push("--data-dir");
            args.push(d.path().to_str().expect("utf-8 temp path"));
        }
        let common = common_args(&args);
        let listener = tikrelay::app::bind(&common).await.expect("bind");
        let running = tikrelay::app::start(listener, &common, Source::Demo).expect("start");
        let (stop, stopped) = oneshot::channel::<()>();
        let addr = running.addr;
        let hub = running.hub.clone();
        let input = running.input.clone();
        let sources = running.sources.clone();
        let engine = running.engine.clone();
        let compat_addr = running.compat_addr;
        tokio::spawn(running.serve(async move {
            let _ = stopped.await;
        }));
        InProcess {
            addr,
            hub,
            input,
            sources,
            engine,
            compat_addr,
            stop: Some(stop),
            data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }
}

impl Drop for InProcess {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// The real `tikrelay` binary, killed when dropped. Its stderr is kept for assertions.
pub struct RelayProcess {
    pub child: Child,
    pub addr: SocketAddr,
    pub stdout_lines: Vec<String>,
    pub stderr: Arc<Mutex<String>>,
    /// Data dir given through the environment, so the real per-user folder is never touched.
    _data_dir: tempfile::TempDir,
}

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_tikrelay")
}

/// The binary, with its per-user config folder in a temp folder (see [`isolate_config`]).
pub fn binary_command() -> Command {
    let mut command = Command::new(binary());
    isolate_config(&mut command);
    command
}

/// Points the variables the per-user config file comes from (XDG_CONFIG_HOME, APPDATA, HOME)
/// at a temp folder kept for the whole test run, unless the test set them itself: a relay
/// started without `--config` creates its config file there, never in the real home.
pub fn isolate_config(command: &mut Command) {
    static HOME: OnceLock<tempfile::TempDir> = OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().expect("temp home"));
    let set: Vec<_> = command.get_envs().map(|(k, _)| k.to_os_string()).collect();
    for var in ["XDG_CONFIG_HOME", "APPDATA", "HOME"] {
        if !set.iter().any(|k| k == var) {
            command.env(var, home.path());
        }
    }
}

impl RelayProcess {
    /// Starts the binary and waits for its `listening on` line.
    pub fn start(args: &[&str]) -> RelayProcess {
        let mut command = Command::new(binary());
        command.args(args).env("RUST_LOG", "info");
        RelayProcess::start_command(command)
    }

    /// Starts the binary with at most `limit` open files (soft and hard: it cannot raise it).
    pub fn start_with_fd_limit(limit: u32, args: &[&str]) -> RelayProcess {
        let script = format!("ulimit -n {limit} && exec \"$0\" \"$@\"");
        let mut command = Command::new("sh");
        command
            .args(["-c", &script, binary()])
            .args(args)
            .env("RUST_LOG", "info");
        RelayProcess::start_command(command)
    }

    /// Starts `command` (the binary, or a wrapper that ends in `exec`ing it) and waits for
    /// its `listening on` line. The data dir defaults to a fresh temp folder.
    pub fn start_command(mut command: Command) -> RelayProcess {
        let data_dir = tempfile::tempdir().expect("temp dir");
        isolate_config(&mut command);
        let mut child = command
            .env("TIKRELAY_DATA_DIR", data_dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tikrelay");
        let stderr = Arc::new(Mutex::new(String::new()));
        let err_pipe = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                eprintln!("[relay] {line}");
                let mut s = sink.lock().unwrap();
                s.push_str(&line);
                s.push('\n');
            }
        });
        let out = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| panic!("no listening line; stderr:\n{}", stderr.lock().unwrap()));
        let addr = first
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("first stdout line is {first:?}"))
            .parse()
            .expect("address");
        let mut stdout_lines = vec![first];
        while let Ok(line) = rx.recv_timeout(Duration::from_millis(300)) {
            stdout_lines.push(line);
        }
        RelayProcess {
            child,
            addr,
            stdout_lines,
            stderr,
            _data_dir: data_dir,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Sends SIGINT (as Ctrl-C does) and waits for the exit code.
    pub fn interrupt(&mut self) -> Option<i32> {
        self.signal("INT")
    }

    /// Sends the signal `name` (`INT`, `TERM`, `HUP`) and waits for the exit code (`None`
    /// when the signal killed the process, or it did not end within [`WAIT`]).
    pub fn signal(&mut self, name: &str) -> Option<i32> {
        let _ = Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status();
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for RelayProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A real websocket client of `/ws`.
pub struct WsClient {
    pub stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl WsClient {
    pub async fn connect(url: &str) -> WsClient {
        let (stream, _) = tokio::time::timeout(WAIT, tokio_tungstenite::connect_async(url))
            .await
            .expect("ws connect timed out")
            .unwrap_or_else(|e| panic!("ws connect to {url}: {e}"));
        WsClient { stream }
    }

    /// The next JSON text message; panics on timeout or close.
    pub async fn next_json(&mut self) -> Value {
        self.try_next_json(WAIT)
            .await
            .expect("websocket closed or timed out")
    }

    /// The next JSON text message, or `None` on close, error or timeout.
    pub async fn try_next_json(&mut self, wait: Duration) -> Option<Value> {
        loop {
            let msg = tokio::time::timeout(wait, self.stream.next())
                .await
                .ok()??
                .ok()?;
            match msg {
                Message::Text(t) => return Some(serde_json::from_str(t.as_str()).expect("JSON")),
                Message::Close(_) => return None,
                _ => continue,
            }
        }
    }

    /// The next message whose `type` is `ty`, skipping others.
    pub async fn next_of_type(&mut self, ty: &str) -> Value {
        loop {
            let msg = self.next_json().await;
            if msg["type"] == ty {
                return msg;
            }
        }
    }

    pub async fn send_json(&mut self, value: Value) {
        self.stream
            .send(Message::text(value.to_string()))
            .await
            .expect("ws send");
    }
}

/// POSTs a test event; returns the status code.
pub async fn post_test_event(base: &str, event: Value) -> u16 {
    http()
        .post(format!("{base}/api/test"))
        .json(&event)
        .send()
        .await
        .expect("POST /api/test")
        .status()
        .as_u16()
}

/// Sends a GET with the path exactly as given (no client-side normalisation); returns the status.
pub async fn raw_get_status(addr: SocketAddr, path: &str) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    let req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(req.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut buf))
        .await
        .expect("response timed out")
        .expect("read");
    let text = String::from_utf8_lossy(&buf);
    text.split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"))
}

/// The ids of the alerts waiting in `queue` (as `/api/queues` lists them, in play order), and
/// the whole answer for messages.
pub async fn pending_alert_ids(base: &str, queue: &str) -> (Vec<String>, Value) {
    let q: Value = get_json(format!("{base}/api/queues")).await;
    let ids = q["queues"][queue]["next"]
        .as_array()
        .unwrap_or_else(|| panic!("no queue {queue} in {q}"))
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect();
    (ids, q)
}

/// Sends `request` as written (any `Host`, any headers) and reads until the relay closes;
/// returns the status and the whole response text. Add `Connection: close` to the request.
pub async fn raw_http(addr: SocketAddr, request: &str) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(WAIT, stream.read_to_end(&mut buf))
        .await
        .expect("response timed out")
        .expect("read");
    let text = String::from_utf8_lossy(&buf).to_string();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {text:?}"));
    (status, text)
}

/// GETs a URL and parses the JSON answer.
pub async fn get_json(url: impl reqwest::IntoUrl) -> serde_json::Value {
    http()
        .get(url)
        .send()
        .await
        .expect("GET")
        .json()
        .await
        .expect("JSON body")
}

/// The config of the first ```toml block after `heading` in the README, parsed and validated:
/// the README's examples must stay valid.
pub fn readme_config(heading: &str) -> tikrelay::config::Config {
    let readme = include_str!("../../../README.md");
    let toml = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has no {heading:?}"))
        .split("```toml\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .unwrap_or_else(|| panic!("no toml block after {heading:?} in the README"));
    tikrelay::config::Config::parse(toml, "README.md").unwrap_or_else(|e| panic!("{e}"))
}
