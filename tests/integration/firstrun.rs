//! `tikrelay` without a command, as a double-click starts it: the real binary in an empty home
//! (HOME, XDG_CONFIG_HOME, XDG_DATA_HOME and APPDATA point at a temp folder, so the real one is
//! never touched) with TikTok's URLs pointing at the fake TikTok. Nothing saved: it starts idle,
//! says where the dashboard is, opens the browser only when allowed and possible, and the
//! dashboard's first screen (in headless Chromium) connects, fails in words and remembers. A
//! remembered (or `live`-connected) handle is connected on the next start.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::browser::{Browser, require_browser};
use crate::support::fake_tiktok::FakeTikTok;
use crate::support::{RelayProcess, WAIT, WsClient, binary, get_json, http};

/// An empty per-user home for the binary: config, data and browser opener all inside it.
struct Home {
    dir: tempfile::TempDir,
}

impl Home {
    fn new() -> Home {
        Home {
            dir: tempfile::tempdir().expect("temp dir"),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn data_dir(&self) -> PathBuf {
        self.path().join("data")
    }

    fn setup(&self) -> Value {
        let text = std::fs::read_to_string(self.data_dir().join("setup.json"))
            .expect("setup.json in the data dir");
        serde_json::from_str(&text).expect("setup.json is JSON")
    }

    /// The binary with `args`, this home, no display, and the live client aimed at `fake`.
    fn command(&self, args: &[&str], fake: Option<&FakeTikTok>) -> Command {
        let mut c = Command::new(binary());
        let home = self.path();
        c.args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .env("RUST_LOG", "info")
            .env("HOME", home)
            .env("XDG_CONFIG_HOME", home.join("config"))
            .env("XDG_DATA_HOME", home.join("share"))
            .env("APPDATA", home.join("AppData"))
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY");
        for var in ["TIKRELAY_CONFIG", "TIKRELAY_PORT", "TIKRELAY_SIGN_API_KEY"] {
            c.env_remove(var);
        }
        if let Some(fake) = fake {
            for var in [
                "TIKRELAY_TIKTOK_WEB_URL",
                "TIKRELAY_TIKTOK_WEBCAST_URL",
                "TIKRELAY_SIGN_URL",
            ] {
                c.env(var, fake.url());
            }
        }
        c
    }

    fn start(&self, args: &[&str], fake: Option<&FakeTikTok>) -> RelayProcess {
        RelayProcess::start_command(self.command(args, fake))
    }

    /// A stand-in `xdg-open` on PATH that writes the URL it is given to a file.
    fn fake_opener(&self) -> (PathBuf, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let bin = self.path().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let opened = self.path().join("opened.txt");
        let script = bin.join("xdg-open");
        std::fs::write(
            &script,
            format!(
                "#!/bin/sh\nprintf '%s\\n' \"$1\" >> '{}'\n",
                opened.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        (bin, opened)
    }
}

fn path_with(dir: &Path) -> std::ffi::OsString {
    let mut paths = vec![dir.to_path_buf()];
    paths.extend(std::env::split_paths(
        &std::env::var_os("PATH").unwrap_or_default(),
    ));
    std::env::join_paths(paths).unwrap()
}

/// Waits until the relay's `/api/state` connection satisfies `cond`.
async fn wait_connection(relay: &RelayProcess, what: &str, cond: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let state = get_json(relay.url("/api/state")).await;
        if cond(&state["connection"]) {
            return state["connection"].clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what}: connection is {}; stderr:\n{}",
            state["connection"],
            relay.stderr.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn without_a_command_it_starts_idle_and_says_where_the_dashboard_is() {
    let home = Home::new();
    let mut relay = home.start(&["--port", "0", "--no-browser"], None);
    let last = relay.stdout_lines.last().unwrap().clone();
    assert_eq!(
        last,
        format!(
            "tikrelay is running: the dashboard is at {}; press Ctrl-C (or close this window) to stop",
            relay.url("/")
        ),
        "the console's last line names the dashboard and how to stop"
    );
    let c = wait_connection(&relay, "idle", |c| c["state"] == "idle").await;
    assert_eq!(c["source"], "none");
    // The config file is created where people look for it, with the built-in setup.
    let config = home.path().join("config/tikrelay/tikrelay.toml");
    let text = std::fs::read_to_string(&config).expect("the config file is created");
    assert!(text.contains("queue = \"main\""), "{text}");
    let status = get_json(relay.url("/api/config")).await;
    assert_eq!(status["file"], config.display().to_string());
    let setup = get_json(relay.url("/api/setup")).await;
    assert_eq!(
        setup,
        json!({"handles": [], "port": null, "remembered": false, "idle": true})
    );
    let page = http().get(relay.url("/")).send().await.unwrap();
    let html = page.text().await.unwrap();
    assert!(
        html.contains("id=\"connect-form\""),
        "the first screen is on the dashboard"
    );
    assert_eq!(relay.interrupt(), Some(0));
    assert!(
        !home.data_dir().join("setup.json").exists(),
        "nothing is saved until asked"
    );
}

#[tokio::test]
async fn the_browser_opens_only_with_a_display_and_without_no_browser() {
    let home = Home::new();
    let (bin, opened) = home.fake_opener();
    let start = |args: &[&str], display: Option<(&str, &str)>| {
        let mut c = home.command(args, None);
        c.env("PATH", path_with(&bin));
        if let Some((k, v)) = display {
            c.env(k, v);
        }
        RelayProcess::start_command(c)
    };
    let opened_urls = || std::fs::read_to_string(&opened).unwrap_or_default();

    // No display (a server, SSH, CI): nothing is opened, the log says why.
    let relay = start(&["--port", "0"], None);
    wait_connection(&relay, "idle", |c| c["state"] == "idle").await;
    assert_eq!(opened_urls(), "");
    assert!(relay.stderr.lock().unwrap().contains("no display"));
    drop(relay);

    // --no-browser with a display: nothing is opened.
    let relay = start(&["--port", "0", "--no-browser"], Some(("DISPLAY", ":99")));
    wait_connection(&relay, "idle", |c| c["state"] == "idle").await;
    assert_eq!(opened_urls(), "");
    drop(relay);

    // A display (X11 or Wayland) and nothing saved: the dashboard opens.
    for display in [("DISPLAY", ":99"), ("WAYLAND_DISPLAY", "wayland-0")] {
        let relay = start(&["--port", "0"], Some(display));
        let deadline = tokio::time::Instant::now() + WAIT;
        while !opened_urls().contains(&relay.url("/")) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{display:?}: the opener got {:?}",
                opened_urls()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    // A command (demo) never opens a browser.
    std::fs::remove_file(&opened).unwrap();
    let relay = start(&["demo", "--port", "0"], Some(("DISPLAY", ":99")));
    get_json(relay.url("/api/state")).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(opened_urls(), "");
}

#[tokio::test]
async fn a_handle_remembered_on_the_dashboard_is_connected_on_the_next_start() {
    let fake = FakeTikTok::start().await;
    fake.open_gate();
    let home = Home::new();
    let mut relay = home.start(&["--port", "0", "--no-browser"], Some(&fake));
    wait_connection(&relay, "idle", |c| c["state"] == "idle").await;
    let remember = |body: Value| {
        http()
            .post(relay.url("/api/setup/handles"))
            .json(&body)
            .send()
    };
    // Bad input is refused in words and saves nothing.
    let bad = remember(json!({"handle": "no spaces allowed"}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let e: Value = bad.json().await.unwrap();
    assert!(
        e["error"].as_str().unwrap().contains("not a TikTok handle"),
        "{e}"
    );
    assert!(!home.data_dir().join("setup.json").exists());
    // A page of another origin cannot plant a handle.
    let forged = http()
        .post(relay.url("/api/setup/handles"))
        .header("Origin", "http://evil.example")
        .json(&json!({"handle": "@attacker"}))
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 403);

    let ok = remember(json!({"handle": "@streamer"})).await.unwrap();
    assert_eq!(ok.status(), 200);
    let setup: Value = ok.json().await.unwrap();
    assert_eq!(setup["handles"], json!(["streamer"]));
    assert_eq!(home.setup()["handles"], json!(["streamer"]));
    assert_eq!(
        home.setup()["port"],
        json!(0),
        "the port this start was given"
    );
    assert_eq!(relay.interrupt(), Some(0));

    // The next start, without --port (the saved 0 picks a free one): the handle connects.
    let relay = home.start(&["--no-browser"], Some(&fake));
    assert_ne!(relay.addr.port(), 8642, "the saved port was used");
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    let c = wait_connection(&relay, "connected", |c| c["state"] == "connected").await;
    assert_eq!(c["unique_id"], "streamer");
    fake.wait_until("a socket from the relay", |s| !s.connections.is_empty())
        .await;
    let hello = ws.next_json().await;
    assert_eq!(hello["type"], "hello");
}

#[tokio::test]
async fn live_saves_its_handle_and_config_once_connected_and_not_when_it_fails() {
    let fake = FakeTikTok::start().await;
    fake.open_gate();
    let home = Home::new();
    let custom = home.path().join("my setup").join("stream.toml");
    std::fs::create_dir_all(custom.parent().unwrap()).unwrap();
    std::fs::copy(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/tikrelay.toml"),
        &custom,
    )
    .unwrap();
    let live = |target: &str| {
        let mut c = home.command(&["live", target, "--port", "0"], Some(&fake));
        c.arg("--config").arg(&custom);
        c
    };
    let relay = RelayProcess::start_command(live("@streamer"));
    wait_connection(&relay, "connected", |c| c["state"] == "connected").await;
    let deadline = tokio::time::Instant::now() + WAIT;
    while !home.data_dir().join("setup.json").exists() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "setup.json not written"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(home.setup()["handles"], json!(["streamer"]));
    assert_eq!(home.setup()["config"], custom.display().to_string());
    drop(relay);

    // A handle that does not exist never connects: the saved setup stays as it was.
    let out = live("@nobody_here")
        .stdout(std::process::Stdio::null())
        .output()
        .expect("run tikrelay live");
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(home.setup()["handles"], json!(["streamer"]));

    // The start without a command uses the saved config and connects the saved handle.
    let relay = home.start(&["--port", "0", "--no-browser"], Some(&fake));
    let status = get_json(relay.url("/api/config")).await;
    assert_eq!(status["file"], custom.display().to_string());
    wait_connection(&relay, "connected", |c| c["unique_id"] == "streamer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_screen_shows_while_idle_and_not_with_a_source() {
    let Some(chromium) = require_browser() else {
        return;
    };
    let home = Home::new();
    let relay = home.start(&["--port", "0", "--no-browser"], None);
    let demo = home.start(&["demo", "--port", "0", "--rate", "0"], None);
    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.wait_for(
        "!document.getElementById('firstrun').hidden && document.getElementById('connect-handle')",
        WAIT,
    )
    .await;
    let other = browser.new_page(&demo.url("/")).await;
    other
        .wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        other
            .eval("document.getElementById('firstrun').hidden")
            .await,
        json!(true),
        "a relay with a source shows no first screen"
    );
    let errors = page.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    browser.close().await;
}

#[test]
fn the_readme_opens_with_the_windows_download_and_the_double_click() {
    let readme = include_str!("../../README.md");
    let first_section = readme
        .lines()
        .find(|l| l.starts_with("## "))
        .expect("a section");
    assert_eq!(first_section, "## Download", "the README's first section");
    let download = &readme[readme.find("## Download").unwrap()..];
    let body = download["## Download".len()..]
        .trim_start()
        .split("\n## ")
        .next()
        .unwrap();
    assert!(
        body.starts_with("**Windows:**"),
        "the download section starts with Windows"
    );
    assert!(body.contains("Double-click `tikrelay.exe`"), "{body}");
    assert!(
        readme.find("## Quick start from source") > readme.find("## Download"),
        "building from source comes after the download"
    );
}

#[tokio::test]
async fn a_failed_start_without_a_command_says_why_and_exits() {
    // The port is taken: the error names it and what to do, and (no console of its own here)
    // the process ends instead of waiting for Enter.
    let busy = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = busy.local_addr().unwrap().port().to_string();
    let home = Home::new();
    let mut child = home
        .command(&["--port", &port, "--no-browser"], None)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(std::time::Instant::now() < deadline, "still running");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("--port"), "{stderr}");
    assert!(!stderr.contains("press Enter"), "{stderr}");
}

/// Types `text` into the handle field and submits the form, as a streamer does.
async fn connect_from_page(page: &crate::support::browser::Page, text: &str) {
    page.eval(&format!(
        "(function () {{ var i = document.getElementById('connect-handle'); i.disabled = false; i.value = {}; \
          document.getElementById('connect-form').requestSubmit(); return true; }})()",
        serde_json::to_string(text).unwrap()
    ))
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn from_nothing_to_a_connected_stream_through_the_dashboard() {
    let Some(chromium) = require_browser() else {
        return;
    };
    // The fake holds the sign step until the gate opens, so the page is seen on that step.
    let fake = FakeTikTok::start().await;
    let home = Home::new();
    let mut relay = home.start(&["--port", "0", "--no-browser"], Some(&fake));
    // The config file is created where people look for it, with the default setup.
    let config = home.path().join("config/tikrelay/tikrelay.toml");
    let text = std::fs::read_to_string(&config).expect("the config file is created");
    assert!(
        text.contains("[[trigger]]") || text.contains("[[triggers]]"),
        "{text}"
    );
    let sources = get_json(relay.url("/api/sources")).await;
    assert_eq!(sources["sources"], json!([]), "idle: no source");

    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.wait_for("!document.getElementById('firstrun').hidden", WAIT)
        .await;

    // A handle that does not exist: the error in words, nothing remembered.
    connect_from_page(&page, "@nobody_here").await;
    let error = page
        .wait_for(
            "(function () { var e = document.getElementById('connect-error'); return !e.hidden && e.textContent; })()",
            WAIT,
        )
        .await;
    let error = error.as_str().unwrap();
    assert!(
        error.contains("@nobody_here does not exist on TikTok"),
        "{error}"
    );
    assert!(!home.data_dir().join("setup.json").exists());

    // A sign server key entered there is stored, shown only masked, and used by the connect.
    let key = "frk_0123456789abcdef0123456789";
    page.eval(&format!(
        "(function () {{ document.getElementById('sign-key-box').open = true; \
          document.getElementById('sign-key').value = {}; \
          document.getElementById('sign-key-form').requestSubmit(); return true; }})()",
        serde_json::to_string(key).unwrap()
    ))
    .await;
    let shown = page
        .wait_for(
            "(function () { var t = document.getElementById('sign-key-status').textContent; \
               return t.indexOf('A key is saved') === 0 && t; })()",
            WAIT,
        )
        .await;
    let html = page.eval("document.documentElement.outerHTML").await;
    assert!(
        !html.as_str().unwrap().contains(key),
        "the key shows in the page"
    );
    assert!(!shown.as_str().unwrap().contains(key), "{shown}");
    assert!(
        std::fs::read_to_string(home.path().join("config/tikrelay/tikrelay.toml"))
            .unwrap()
            .contains(key),
        "the key is stored in the config file"
    );

    // The real handle: each step, then connected; the handle is remembered.
    connect_from_page(&page, "streamer").await;
    page.wait_for(
        "document.getElementById('connect-steps').textContent.indexOf('signing') >= 0",
        WAIT,
    )
    .await;
    assert_eq!(
        page.eval("document.getElementById('firstrun').dataset.state")
            .await,
        "connecting"
    );
    fake.open_gate();
    page.wait_for(
        "document.getElementById('firstrun').dataset.state === 'live'",
        WAIT,
    )
    .await;
    let steps = page
        .eval("Array.prototype.map.call(document.querySelectorAll('#connect-steps li'), function (li) { return li.className + ':' + li.textContent; })")
        .await;
    let steps: Vec<String> = serde_json::from_value(steps).unwrap();
    assert!(steps.len() >= 3, "steps shown: {steps:?}");
    assert!(steps.iter().all(|s| s.starts_with("done:")), "{steps:?}");
    assert!(steps.last().unwrap().contains("Connected"), "{steps:?}");
    let saved = page
        .wait_for(
            "(function () { var e = document.getElementById('connect-saved'); return !e.hidden && e.textContent; })()",
            WAIT,
        )
        .await;
    assert!(saved.as_str().unwrap().contains("@streamer"), "{saved}");
    assert_eq!(home.setup()["handles"], json!(["streamer"]));
    let used = fake.with(|s| s.sign_calls.last().map(|c| c.1.clone()));
    assert_eq!(
        used,
        Some(Some(key.to_string())),
        "the connect used the saved key"
    );
    assert!(
        !relay.stderr.lock().unwrap().contains(key),
        "the key is never logged"
    );
    let sources = get_json(relay.url("/api/sources")).await;
    let live: Vec<&Value> = sources["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["state"] == "live")
        .collect();
    assert_eq!(live.len(), 1, "{sources}");
    assert_eq!(live[0]["target"], "@streamer");
    page.wait_for("document.getElementById('firstrun').hidden", WAIT)
        .await;
    let errors: Vec<String> = page.console_errors();
    assert!(
        errors.iter().all(|e| !e.contains("Uncaught")),
        "{errors:#?}"
    );
    browser.close().await;
    assert_eq!(relay.interrupt(), Some(0));

    // The next start connects the remembered handle by itself.
    let relay = home.start(&["--port", "0", "--no-browser"], Some(&fake));
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let sources = get_json(relay.url("/api/sources")).await;
        let list = sources["sources"].as_array().unwrap();
        if list
            .iter()
            .any(|s| s["target"] == "@streamer" && s["state"] == "live")
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{sources}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
