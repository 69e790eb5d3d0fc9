//! Test support that drives a real headless Chromium over the Chrome DevTools
//! Protocol (CDP), so overlay tests can load pages from the relay, run
//! JavaScript in them, watch their console, tell a hot swap from a reload and
//! take screenshots. One websocket to the browser carries every page: pages are
//! attached with `flatten: true` and their traffic is told apart by `sessionId`,
//! so any number of pages can be open at once. A background task reads the
//! socket, answers calls by id and files events under the page they belong to.
//! Helpers panic with a message naming the CDP method or the JavaScript
//! expression, because in a test a clear panic is the most useful error.
//!
//! ```ignore
//! let Some(chromium) = require_browser() else { return };
//! let browser = Browser::launch(&chromium).await;
//! let page = browser.new_page(&format!("http://{addr}/overlay/alerts")).await;
//! page.wait_for("document.querySelector('.alert') !== null", Duration::from_secs(15)).await;
//! assert!(page.console_errors().is_empty(), "{:#?}", page.console_errors());
//! ```
//!
//! Timeouts run on tokio's clock, so do not use these helpers under
//! `start_paused`: paused time would fire every timeout while Chromium works.

#![allow(dead_code)]

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Upper bound for any single CDP call; generous because CI machines are slow
/// and a hung browser should fail the test, not stall it forever.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// Size of every page's viewport: what OBS renders a browser source at.
pub const VIEWPORT: (u32, u32) = (1920, 1080);

/// Turns each `securitypolicyviolation` into a console error.
const CSP_REPORTER: &str = "document.addEventListener('securitypolicyviolation', function (e) { \
    console.error('CSP violation: ' + e.violatedDirective + ' blocked ' + (e.blockedURI || 'inline') \
    + ' at ' + e.sourceFile + ':' + e.lineNumber); });";

const LAUNCH_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// Flags for a quiet, deterministic browser in a root container without
/// network. The throttling switches matter because several pages are open at
/// once and only one can be "in front": without them background pages get
/// their timers and rendering throttled, which makes waits and screenshots
/// flaky.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--disable-background-timer-throttling",
    "--disable-backgrounding-occluded-windows",
    "--disable-renderer-backgrounding",
    "--password-store=basic",
    "--hide-scrollbars",
    "--mute-audio",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
    "--window-size=1920,1080",
];

/// Finds a Chromium binary. `CHROMIUM` (a path or a name in `PATH`) wins and is
/// the only candidate when set, so a wrong override is noticed instead of
/// quietly falling back to another browser.
pub fn chromium_path() -> Option<PathBuf> {
    if let Some(over) = std::env::var_os("CHROMIUM").filter(|v| !v.is_empty()) {
        let over = PathBuf::from(over);
        return if over.components().count() > 1 {
            is_executable(&over).then_some(over)
        } else {
            find_in_path(over.to_str()?)
        };
    }
    let debian = PathBuf::from("/usr/bin/chromium");
    if is_executable(&debian) {
        return Some(debian);
    }
    [
        "chromium",
        "chromium-browser",
        "google-chrome",
        "google-chrome-stable",
    ]
    .into_iter()
    .find_map(find_in_path)
}

/// Returns the browser to test with, or `None` when a local run has to skip.
/// In CI a missing browser is a broken setup, so it fails instead of letting a
/// whole class of tests pass by skipping.
pub fn require_browser() -> Option<PathBuf> {
    if let Some(path) = chromium_path() {
        return Some(path);
    }
    let wanted = match std::env::var("CHROMIUM") {
        Ok(v) if !v.is_empty() => format!("CHROMIUM={v} is not an executable"),
        _ => "no chromium, chromium-browser or google-chrome found".to_owned(),
    };
    if in_ci() {
        panic!("chromium is required in CI: apt-get install chromium ({wanted})");
    }
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    // Not eprintln!: libtest captures that for passing tests, and a skip that
    // nobody sees is how a suite silently stops testing anything.
    let _ = writeln!(
        std::io::stderr(),
        "\n************************************************************\n\
         SKIPPED: browser test `{test}`: {wanted} (install chromium: apt-get install chromium)\n\
         ************************************************************\n"
    );
    None
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Whether `CI` is set: there a missing tool is a broken setup, not a reason to skip.
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !matches!(v.as_str(), "" | "0" | "false"))
}

pub fn find_in_path(name: &str) -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// A running Chromium with its own throwaway profile. Dropping it kills the
/// process and then removes the profile.
pub struct Browser {
    conn: Arc<Conn>,
    port: u16,
    log_path: PathBuf,
    child: ChildGuard,
    dir: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        // Kill before the TempDir field is dropped: a running Chromium would
        // keep writing into the profile while it is being removed.
        self.child.kill();
    }
}

impl Browser {
    /// Starts Chromium and connects to its browser websocket.
    pub async fn launch(path: impl AsRef<Path>) -> Browser {
        let path = path.as_ref();
        let dir = tempfile::Builder::new()
            .prefix("tikrelay-chromium-")
            .tempdir()
            .expect("create a temporary Chromium profile directory");
        let profile = dir.path().join("profile");
        // Chromium's stderr is noisy (dbus, GPU probing), so it goes to a file
        // that is only shown when the launch fails.
        let log_path = dir.path().join("chromium.log");
        let log = File::create(&log_path).expect("create the Chromium log file");
        let log2 = log.try_clone().expect("clone the Chromium log file handle");

        let mut cmd = Command::new(path);
        cmd.args(FLAGS)
            .arg(format!("--user-data-dir={}", profile.display()))
            .arg("about:blank")
            // Debian's build always starts crashpad, which keeps its database
            // under $XDG_CONFIG_HOME; point that into the temp dir too.
            .env("XDG_CONFIG_HOME", dir.path().join("config"))
            .env("XDG_CACHE_HOME", dir.path().join("cache"))
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2);
        let mut child = ChildGuard(
            cmd.spawn()
                .unwrap_or_else(|e| panic!("could not start {}: {e}", path.display())),
        );

        let (port, ws_path) = wait_for_devtools_port(&profile, &mut child, &log_path).await;
        let url = format!("ws://127.0.0.1:{port}{ws_path}");
        // Screenshots arrive as one base64 message of several MiB; the default
        // 16 MiB frame limit is too tight for a detailed 1920x1080 PNG.
        let config = WebSocketConfig::default()
            .max_message_size(Some(512 << 20))
            .max_frame_size(Some(512 << 20));
        let (ws, _) = tokio_tungstenite::connect_async_with_config(&url, Some(config), true)
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "could not connect to Chromium's DevTools at {url}: {e}\n{}",
                    log_tail(&log_path)
                )
            });
        let (mut sink, mut stream) = ws.split();

        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<String>();
        let conn = Arc::new(Conn {
            next_id: AtomicU64::new(1),
            out: out_tx,
            pending: Mutex::new(Some(HashMap::new())),
            sessions: Mutex::new(HashMap::new()),
        });

        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if sink.send(Message::Text(text.into())).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let reader = Arc::clone(&conn);
        tokio::spawn(async move {
            while let Some(msg) = stream.next().await {
                match msg {
                    Ok(Message::Text(text)) => reader.handle(text.as_str()),
                    Ok(Message::Close(_)) | Err(_) => break,
                    Ok(_) => {}
                }
            }
            reader.shut_down("the browser's DevTools connection closed (did Chromium crash?)");
        });

        Browser {
            conn,
            port,
            log_path,
            child,
            dir,
        }
    }

    /// Opens a new tab, attaches to it and loads `url`, returning once the
    /// load event fired. Domains are enabled on `about:blank` first so that
    /// nothing the page logs while loading is missed.
    pub async fn new_page(&self, url: &str) -> Page {
        // newWindow gives each page its own visible window: a background tab
        // stops producing frames, and screenshots of it can hang.
        let created = self
            .call(
                "Target.createTarget",
                json!({ "url": "about:blank", "newWindow": true }),
            )
            .await;
        let target_id = str_field(&created, "targetId", "Target.createTarget");
        let attached = self
            .call(
                "Target.attachToTarget",
                json!({ "targetId": target_id, "flatten": true }),
            )
            .await;
        let session_id = str_field(&attached, "sessionId", "Target.attachToTarget");

        let state = Arc::new(PageState::default());
        lock(&self.conn.sessions).insert(session_id.clone(), Arc::clone(&state));
        let page = Page {
            conn: Arc::clone(&self.conn),
            session_id,
            target_id,
            state,
        };

        let (width, height) = VIEWPORT;
        let setup = [
            ("Page.enable", json!({})),
            ("Runtime.enable", json!({})),
            ("Log.enable", json!({})),
            ("Inspector.enable", json!({})),
            (
                "Emulation.setDeviceMetricsOverride",
                json!({ "width": width, "height": height, "deviceScaleFactor": 1, "mobile": false }),
            ),
            // Overlays are composited over the stream in OBS, so a screenshot
            // has to show what is transparent, not Chromium's white default.
            (
                "Emulation.setDefaultBackgroundColorOverride",
                json!({ "color": { "r": 0, "g": 0, "b": 0, "a": 0 } }),
            ),
            // Only one window has real focus; pages that check document.hasFocus()
            // or listen for blur should all behave as if they were in front.
            (
                "Emulation.setFocusEmulationEnabled",
                json!({ "enabled": true }),
            ),
        ];
        for (method, params) in setup {
            page.call(method, params).await;
        }
        // A Content-Security-Policy violation is an error of the page: Chromium logs most of
        // them, and this makes sure every one (inline style attributes too) reaches the
        // console error list. Injected by the browser, so the policy does not apply to it.
        page.call(
            "Page.addScriptToEvaluateOnNewDocument",
            json!({ "source": CSP_REPORTER }),
        )
        .await;

        // The tab's initial about:blank is not a commit that Page reports, so
        // this load is navigation 1.
        page.navigate(url).await;
        page
    }

    /// Sends a raw CDP command on the browser session.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.conn
            .call(None, method, params, CALL_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// The product string, e.g. `Chrome/156.0.8078.108`, for test logs.
    pub async fn version(&self) -> String {
        let v = self.call("Browser.getVersion", json!({})).await;
        v["product"].as_str().unwrap_or_default().to_owned()
    }

    /// The DevTools port, for tests that want to poke at `/json` themselves.
    pub fn devtools_port(&self) -> u16 {
        self.port
    }

    /// The tail of Chromium's own stderr, for failure messages.
    pub fn log_tail(&self) -> String {
        log_tail(&self.log_path)
    }

    /// Asks Chromium to exit in an orderly way and waits up to 5 s for it.
    /// Dropping a `Browser` kills it instead, which is fine for most tests.
    pub async fn close(mut self) {
        let _ = self
            .conn
            .call(None, "Browser.close", json!({}), Duration::from_secs(5))
            .await;
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.0.try_wait(), Ok(Some(_))) {
                break;
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }
}

async fn wait_for_devtools_port(
    profile: &Path,
    child: &mut ChildGuard,
    log_path: &Path,
) -> (u16, String) {
    // Port 0 avoids clashes between parallel tests; Chromium then reports the
    // port it chose in this file, which is steadier than scraping stderr.
    let port_file = profile.join("DevToolsActivePort");
    let deadline = Instant::now() + LAUNCH_TIMEOUT;
    loop {
        // The file can be seen half written, so only a complete one counts.
        if let Ok(text) = std::fs::read_to_string(&port_file) {
            let mut lines = text.lines();
            if let (Some(port), Some(path)) = (lines.next(), lines.next())
                && let Ok(port) = port.trim().parse::<u16>()
                && path.trim().starts_with("/devtools/browser/")
            {
                return (port, path.trim().to_owned());
            }
        }
        if let Ok(Some(status)) = child.0.try_wait() {
            panic!(
                "Chromium exited ({status}) before opening DevTools\n{}",
                log_tail(log_path)
            );
        }
        if Instant::now() >= deadline {
            panic!(
                "Chromium did not write {} within {LAUNCH_TIMEOUT:?}\n{}",
                port_file.display(),
                log_tail(log_path)
            );
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

fn log_tail(log_path: &Path) -> String {
    let text = std::fs::read_to_string(log_path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    format!(
        "--- last lines of Chromium's log ({}) ---\n{tail}",
        log_path.display()
    )
}

/// Kills Chromium when dropped, including on a panic halfway through
/// `launch`.
struct ChildGuard(Child);

impl ChildGuard {
    fn kill(&mut self) {
        if !matches!(self.0.try_wait(), Ok(None)) {
            return;
        }
        // The helpers (zygotes, renderers, network service) exit by themselves
        // once the browser is gone, but not at once: the network service still
        // flushes its disk cache index into the profile on the way out, which
        // would recreate the directory after its removal. So note them while
        // they are still the browser's children, and wait for them to go.
        let helpers = descendants(self.0.id());
        let _ = self.0.kill();
        let _ = self.0.wait();
        let deadline = Instant::now() + Duration::from_secs(5);
        while helpers.iter().any(|&(pid, start)| is_running(pid, start))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        self.kill();
    }
}

/// State, parent pid and start time of a process, from `/proc/<pid>/stat`.
/// The start time tells a process from a later one that reused its pid.
fn proc_stat(pid: u32) -> Option<(char, u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; fields after the
    // last ')' are plain. They start at field 3 (state); start time is 22.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let state = fields.first()?.chars().next()?;
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((state, ppid, start))
}

fn descendants(root: u32) -> Vec<(u32, u64)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let procs: Vec<(u32, u32, u64)> = entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| proc_stat(pid).map(|(_, ppid, start)| (pid, ppid, start)))
        .collect();
    let mut found = Vec::new();
    let mut parents = vec![root];
    while let Some(parent) = parents.pop() {
        for &(pid, ppid, start) in &procs {
            if ppid == parent {
                found.push((pid, start));
                parents.push(pid);
            }
        }
    }
    found
}

fn is_running(pid: u32, start: u64) -> bool {
    proc_stat(pid).is_some_and(|(state, _, s)| s == start && !matches!(state, 'Z' | 'X'))
}

/// One open tab. Dropping it closes the tab.
pub struct Page {
    conn: Arc<Conn>,
    session_id: String,
    target_id: String,
    state: Arc<PageState>,
}

impl Page {
    /// Sends a raw CDP command to this page's session.
    pub async fn call(&self, method: &str, params: Value) -> Value {
        self.try_call(method, params, CALL_TIMEOUT)
            .await
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Like [`Page::call`] but returns errors, and gives up as soon as the page
    /// is gone: a crashed renderer never answers, and waiting out the timeout
    /// would only hide the real cause.
    pub async fn try_call(
        &self,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Result<Value, String> {
        let mut nav = self.state.nav.subscribe();
        tokio::select! {
            reply = self.conn.call(Some(&self.session_id), method, params, limit) => reply,
            gone = nav.wait_for(|s| s.gone.is_some()) => {
                let why = gone.ok().and_then(|s| s.gone.clone()).unwrap_or_default();
                Err(format!("CDP {method}: {why}"))
            }
        }
    }

    /// Evaluates `js` as a global script and returns its completion value as
    /// JSON, awaiting it if it is a promise (for `await`, wrap the code in an
    /// async arrow and call it). Top-level `let`/`const` persist and cannot be
    /// declared twice, so wrap helpers in a `{ block }`. `undefined` and values
    /// without a JSON form come back as `null`; NaN, Infinity, -0 and BigInts
    /// as strings. Panics if the script throws or the promise rejects.
    pub async fn eval(&self, js: &str) -> Value {
        self.try_eval(js)
            .await
            .unwrap_or_else(|e| panic!("eval failed: {e}\n--- expression ---\n{js}"))
    }

    /// Like [`Page::eval`], but a thrown exception (or a protocol error) comes
    /// back as `Err` with its text, for tests that expect a script to fail.
    pub async fn try_eval(&self, js: &str) -> Result<Value, String> {
        self.evaluate(js, CALL_TIMEOUT)
            .await
            .map(|obj| remote_value(&obj))
    }

    /// Polls `js_condition` every 50 ms until it is truthy and returns its
    /// value. Throwing counts as not yet, so conditions may touch elements
    /// that do not exist yet. Panics on timeout with the last result.
    pub async fn wait_for(&self, js_condition: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let last = match self
                .evaluate(js_condition, remaining.max(POLL_INTERVAL))
                .await
            {
                Ok(obj) if is_truthy(&obj) => return remote_value(&obj),
                Ok(obj) => remote_value(&obj).to_string(),
                Err(e) => {
                    if let Some(gone) = self.gone() {
                        panic!("wait_for `{js_condition}`: {gone}");
                    }
                    format!("error: {e}")
                }
            };
            if Instant::now() >= deadline {
                panic!(
                    "wait_for timed out after {timeout:?}: `{js_condition}` never became truthy\n\
                     last result: {last}\nconsole errors: {:#?}",
                    self.console_errors()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// Everything the page reported as an error since it was opened:
    /// `console.error`/failed `console.assert`, uncaught exceptions and
    /// unhandled rejections, and browser-side errors such as a 404 on a
    /// stylesheet or a refused websocket.
    pub fn console_errors(&self) -> Vec<String> {
        lock(&self.state.console_errors).clone()
    }

    /// Forgets the errors seen so far, e.g. after a step that is expected to
    /// log one.
    pub fn clear_console_errors(&self) {
        lock(&self.state.console_errors).clear();
    }

    /// Waits until an error containing `needle` has been reported and returns
    /// it; errors arrive asynchronously, so asserting right away would race.
    pub async fn wait_for_console_error(&self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .console_errors()
                .into_iter()
                .find(|e| e.contains(needle))
            {
                return found;
            }
            if Instant::now() >= deadline {
                panic!(
                    "no console error containing {needle:?} within {timeout:?}; errors seen: {:#?}",
                    self.console_errors()
                );
            }
            tokio::time::sleep(POLL_INTERVAL).await;
        }
    }

    /// How many times the main frame loaded a new document; the load done by
    /// `new_page` is 1. Swapping a stylesheet or `history.pushState` leave it
    /// alone, a reload or navigation (even one the page starts itself) bumps it.
    pub fn navigation_count(&self) -> u64 {
        self.state.nav.borrow().navigations
    }

    /// Waits until the main frame navigated past `previous` (a value from
    /// [`Page::navigation_count`]) and the new document fired its load event;
    /// for reloads that the page triggers itself, e.g. on a template change.
    pub async fn wait_for_navigation(&self, previous: u64, timeout: Duration) -> u64 {
        self.wait_loaded(previous, timeout, "wait_for_navigation")
            .await
    }

    /// Reloads and waits for the new document's load event.
    pub async fn reload(&self) {
        let before = self.navigation_count();
        self.call("Page.reload", json!({})).await;
        self.wait_loaded(before, CALL_TIMEOUT, "reload").await;
    }

    /// Navigates and waits for the new document's load event. Panics if the
    /// URL cannot be loaded at all (refused connection, bad scheme); an HTTP
    /// error status still loads, as it would in OBS.
    pub async fn navigate(&self, url: &str) {
        let before = self.navigation_count();
        let result = self.call("Page.navigate", json!({ "url": url })).await;
        if let Some(err) = result["errorText"].as_str().filter(|e| !e.is_empty()) {
            panic!("navigating to {url} failed: {err}");
        }
        // A fragment-only change stays in the same document: no load follows.
        if result.get("loaderId").is_none() {
            return;
        }
        self.wait_loaded(before, CALL_TIMEOUT, &format!("navigate to {url}"))
            .await;
    }

    /// Saves a PNG of the 1920x1080 viewport to `path` (creating its parent
    /// directories) and returns the bytes. Unpainted areas are transparent.
    pub async fn screenshot(&self, path: &Path) -> Vec<u8> {
        let shot = self
            .call(
                "Page.captureScreenshot",
                json!({ "format": "png", "fromSurface": true, "captureBeyondViewport": false }),
            )
            .await;
        let data = shot["data"]
            .as_str()
            .expect("Page.captureScreenshot returned no data");
        let png = base64_decode(data).expect("Page.captureScreenshot returned invalid base64");
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        std::fs::write(path, &png).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        png
    }

    /// The document's title.
    pub async fn title(&self) -> String {
        match self.eval("document.title").await {
            Value::String(title) => title,
            other => panic!("document.title was not a string: {other}"),
        }
    }

    /// The CDP target id, for raw `Target.*` calls.
    pub fn target_id(&self) -> &str {
        &self.target_id
    }

    async fn evaluate(&self, js: &str, limit: Duration) -> Result<Value, String> {
        let params = json!({
            "expression": js,
            "returnByValue": true,
            "awaitPromise": true,
            // Lets scripts start media and fullscreen like a clicked page would.
            "userGesture": true,
        });
        let mut result = self.try_call("Runtime.evaluate", params, limit).await?;
        if let Some(details) = result.get("exceptionDetails") {
            return Err(exception_text(details));
        }
        Ok(result["result"].take())
    }

    async fn wait_loaded(&self, previous: u64, timeout: Duration, what: &str) -> u64 {
        let mut rx = self.state.nav.subscribe();
        let waited = tokio::time::timeout(
            timeout,
            rx.wait_for(|s| s.gone.is_some() || (s.navigations > previous && s.loaded)),
        )
        .await;
        let state = match waited {
            Ok(Ok(state)) => state.clone(),
            // The sender lives in PageState, which this page holds.
            Ok(Err(_)) => unreachable!("page state dropped while the page is alive"),
            Err(_) => panic!(
                "{what}: no new document finished loading within {timeout:?} \
                 (navigations: {})\nconsole errors: {:#?}",
                self.navigation_count(),
                self.console_errors()
            ),
        };
        if let Some(gone) = state.gone {
            panic!("{what}: {gone}");
        }
        state.navigations
    }

    fn gone(&self) -> Option<String> {
        self.state.nav.borrow().gone.clone()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        lock(&self.conn.sessions).remove(&self.session_id);
        // Fire and forget: Drop cannot await, and a tab that outlives the test
        // by a moment harms nothing.
        self.conn.send_only(
            None,
            "Target.closeTarget",
            json!({ "targetId": self.target_id }),
        );
    }
}

type Reply = Result<Value, String>;

struct Conn {
    next_id: AtomicU64,
    out: mpsc::UnboundedSender<String>,
    /// `None` once the socket is gone, so late calls fail at once instead of
    /// waiting out their timeout.
    pending: Mutex<Option<HashMap<u64, oneshot::Sender<Reply>>>>,
    sessions: Mutex<HashMap<String, Arc<PageState>>>,
}

#[derive(Default)]
struct PageState {
    console_errors: Mutex<Vec<String>>,
    nav: watch::Sender<NavState>,
}

#[derive(Clone, Default)]
struct NavState {
    navigations: u64,
    /// Whether the current document fired its load event.
    loaded: bool,
    /// Why the page can no longer answer (crash, detach, browser gone).
    gone: Option<String>,
}

impl Conn {
    async fn call(
        &self,
        session: Option<&str>,
        method: &str,
        params: Value,
        limit: Duration,
    ) -> Reply {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&self.pending).as_mut() {
            Some(pending) => pending.insert(id, tx),
            None => return Err(format!("CDP {method}: the browser connection is closed")),
        };
        // Unregisters the waiter however this future ends: answered, timed
        // out, or dropped by a select that found the page gone.
        let _forget = Forget { conn: self, id };
        if !self.send(id, session, method, params) {
            return Err(format!("CDP {method}: the browser connection is closed"));
        }
        match tokio::time::timeout(limit, rx).await {
            Ok(Ok(reply)) => reply.map_err(|e| format!("CDP {method} failed: {e}")),
            Ok(Err(_)) => Err(format!(
                "CDP {method}: the browser connection closed before it answered"
            )),
            Err(_) => Err(format!("CDP {method}: no answer within {limit:?}")),
        }
    }

    fn send_only(&self, session: Option<&str>, method: &str, params: Value) {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        self.send(id, session, method, params);
    }

    fn send(&self, id: u64, session: Option<&str>, method: &str, params: Value) -> bool {
        let mut msg = json!({ "id": id, "method": method, "params": params });
        if let Some(session) = session {
            msg["sessionId"] = Value::from(session);
        }
        self.out.send(msg.to_string()).is_ok()
    }

    fn handle(&self, text: &str) {
        let Ok(mut msg) = serde_json::from_str::<Value>(text) else {
            return;
        };
        if let Some(id) = msg["id"].as_u64() {
            let waiter = lock(&self.pending).as_mut().and_then(|p| p.remove(&id));
            if let Some(waiter) = waiter {
                let reply = match msg.get("error") {
                    Some(err) => Err(protocol_error(err)),
                    None => Ok(msg["result"].take()),
                };
                let _ = waiter.send(reply);
            }
            return;
        }
        let Some(method) = msg["method"].as_str() else {
            return;
        };
        let params = &msg["params"];
        if method == "Target.detachedFromTarget" {
            if let Some(page) = params["sessionId"].as_str().and_then(|s| self.page(s)) {
                page.mark_gone("the page was detached (tab closed?)");
            }
            return;
        }
        let Some(page) = msg["sessionId"].as_str().and_then(|s| self.page(s)) else {
            return;
        };
        match method {
            "Runtime.consoleAPICalled" => {
                let kind = params["type"].as_str().unwrap_or_default();
                if kind == "error" || kind == "assert" {
                    let args: Vec<String> = params["args"]
                        .as_array()
                        .map(|a| a.iter().map(describe_remote).collect())
                        .unwrap_or_default();
                    page.push_error(format!("console.{kind}: {}", args.join(" ")));
                }
            }
            "Runtime.exceptionThrown" => {
                let details = &params["exceptionDetails"];
                page.push_error(exception_text(details));
            }
            "Log.entryAdded" => {
                let entry = &params["entry"];
                // Chromium asks every origin for /favicon.ico on its own; a 404
                // there is not the page's fault and would be in every list.
                let favicon = entry["url"]
                    .as_str()
                    .is_some_and(|u| u.ends_with("/favicon.ico"));
                if entry["level"].as_str() == Some("error") && !favicon {
                    let text = entry["text"].as_str().unwrap_or_default();
                    let source = entry["source"].as_str().unwrap_or("log");
                    let mut line = format!("{source}: {text}");
                    if let Some(url) = entry["url"].as_str().filter(|u| !u.is_empty()) {
                        line.push_str(&format!(" ({url})"));
                    }
                    page.push_error(line);
                }
            }
            // Only the main frame: an iframe loading is not the page reloading.
            "Page.frameNavigated" if params["frame"].get("parentId").is_none() => {
                page.nav.send_modify(|s| {
                    s.navigations += 1;
                    s.loaded = false;
                });
            }
            "Page.loadEventFired" => page.nav.send_modify(|s| s.loaded = true),
            "Inspector.targetCrashed" => page.mark_gone("the page's renderer crashed"),
            _ => {}
        }
    }

    fn page(&self, session: &str) -> Option<Arc<PageState>> {
        lock(&self.sessions).get(session).cloned()
    }

    fn shut_down(&self, why: &str) {
        // Dropping the waiters wakes every pending call with "closed".
        lock(&self.pending).take();
        for page in lock(&self.sessions).values() {
            page.mark_gone(why);
        }
    }
}

struct Forget<'a> {
    conn: &'a Conn,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(pending) = lock(&self.conn.pending).as_mut() {
            pending.remove(&self.id);
        }
    }
}

impl PageState {
    fn push_error(&self, error: String) {
        lock(&self.console_errors).push(error);
    }

    fn mark_gone(&self, why: &str) {
        self.nav.send_modify(|s| {
            s.gone.get_or_insert_with(|| why.to_owned());
        });
    }
}

/// A poisoned lock only means another test thread panicked; the data is
/// still the best information there is.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn str_field(value: &Value, field: &str, method: &str) -> String {
    value[field]
        .as_str()
        .unwrap_or_else(|| panic!("CDP {method} returned no {field}: {value}"))
        .to_owned()
}

fn protocol_error(err: &Value) -> String {
    let message = err["message"].as_str().unwrap_or("unknown error");
    let code = err["code"].as_i64().unwrap_or_default();
    match err["data"].as_str() {
        Some(data) => format!("{message} (code {code}): {data}"),
        None => format!("{message} (code {code})"),
    }
}

fn exception_text(details: &Value) -> String {
    let text = details["text"].as_str().unwrap_or("exception");
    let exception = &details["exception"];
    // Error objects carry message and stack in `description`; a thrown
    // primitive only has a value.
    let what = exception["description"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| exception.get("value").map(|v| v.to_string()));
    let mut out = match what {
        Some(what) => format!("{text} {what}"),
        None => text.to_owned(),
    };
    if let Some(url) = details["url"].as_str().filter(|u| !u.is_empty()) {
        let line = details["lineNumber"].as_u64().unwrap_or_default() + 1;
        let column = details["columnNumber"].as_u64().unwrap_or_default() + 1;
        out.push_str(&format!(" ({url}:{line}:{column})"));
    }
    out
}

fn remote_value(obj: &Value) -> Value {
    if let Some(value) = obj.get("value") {
        return value.clone();
    }
    obj.get("unserializableValue")
        .cloned()
        .unwrap_or(Value::Null)
}

fn describe_remote(obj: &Value) -> String {
    match obj.get("value") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => obj["unserializableValue"]
            .as_str()
            .or_else(|| obj["description"].as_str())
            .or_else(|| obj["type"].as_str())
            .unwrap_or("?")
            .to_owned(),
    }
}

/// JavaScript truthiness, judged on the RemoteObject because NaN, -0 and 0n
/// only survive as `unserializableValue` strings.
fn is_truthy(obj: &Value) -> bool {
    if let Some(unserializable) = obj["unserializableValue"].as_str() {
        return !matches!(unserializable, "NaN" | "-0" | "0n" | "-0n");
    }
    match obj.get("value") {
        Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(Value::Number(n)) => n.as_f64().is_some_and(|n| n != 0.0),
        Some(Value::String(s)) => !s.is_empty(),
        Some(_) => true,
        // No value: undefined is falsy; objects without a JSON form are not.
        None => !matches!(obj["type"].as_str(), Some("undefined")),
    }
}

/// Standard base64 with padding: all the screenshot data needs, and not worth
/// a dependency.
fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    let mut acc: u32 = 0;
    let mut bits = 0;
    for &c in text.as_bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            b'=' => break,
            b'\r' | b'\n' => continue,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
