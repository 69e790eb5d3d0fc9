//! The real OBS Studio for tests: Debian's `obs` (29, with obs-websocket 5.1 from
//! `obs-plugins`) under its own Xvfb with Mesa's software GL, a throwaway HOME holding
//! `global.ini` (websocket on, a known password, no first-run wizard) and a 640x360 profile,
//! on a free port. [`Obs::start`] waits until the websocket accepts connections; dropping it
//! kills OBS and Xvfb and removes the temp tree.
//!
//! OBS's program scene is global state, so only one OBS runs at a time: [`Obs::start`] waits for
//! the previous test's OBS to be gone. Without `obs`/`Xvfb`/obs-websocket a test skips with a
//! banner, or fails when `CI` is set (see [`require_obs`]).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{Value, json};
use tikrelay::obs::{ObsClient, ObsSettings};

pub const PASSWORD: &str = "tikrelay-obs-test";

const START_TIMEOUT: Duration = Duration::from_secs(60);

/// `obs` and `Xvfb`, or `None` when a local run has to skip.
pub fn require_obs() -> Option<(PathBuf, PathBuf)> {
    let obs = super::browser::find_in_path("obs");
    let xvfb = super::browser::find_in_path("Xvfb");
    // Debian puts plugins under /usr/lib/<multiarch triplet>/obs-plugins.
    let plugin = std::fs::read_dir("/usr/lib").is_ok_and(|dirs| {
        dirs.flatten()
            .any(|d| d.path().join("obs-plugins/obs-websocket.so").exists())
    }) || Path::new("/usr/lib/obs-plugins/obs-websocket.so").exists();
    if let (Some(obs), Some(xvfb), true) = (obs.clone(), xvfb.clone(), plugin) {
        return Some((obs, xvfb));
    }
    let missing: Vec<&str> = [
        (obs.is_none(), "obs (obs-studio)"),
        (xvfb.is_none(), "Xvfb (xvfb)"),
        (!plugin, "obs-websocket (obs-plugins)"),
    ]
    .into_iter()
    .filter_map(|(m, what)| m.then_some(what))
    .collect();
    let wanted = format!("missing {}", missing.join(", "));
    let hint = "apt-get install --no-install-recommends obs-studio obs-plugins xvfb";
    if super::browser::in_ci() {
        panic!("OBS is required in CI: {hint} ({wanted})");
    }
    let test = std::thread::current().name().unwrap_or("?").to_owned();
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "\n************************************************************\n\
         SKIPPED: OBS test `{test}`: {wanted} ({hint})\n\
         ************************************************************\n"
    );
    None
}

/// One OBS at a time: its scenes are shared by whoever connects.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A running OBS with its own Xvfb and config tree.
pub struct Obs {
    pub port: u16,
    obs: Child,
    xvfb: Child,
    dir: tempfile::TempDir,
    _turn: tokio::sync::MutexGuard<'static, ()>,
}

impl Drop for Obs {
    fn drop(&mut self) {
        // A throwaway config: a hard stop is fine (OBS 29 saves nothing on SIGTERM anyway).
        let _ = self.obs.kill();
        let _ = self.obs.wait();
        let _ = self.xvfb.kill();
        let _ = self.xvfb.wait();
    }
}

impl Obs {
    /// Starts OBS with authentication on (password [`PASSWORD`]); waits for its websocket.
    pub async fn start(obs: &Path, xvfb: &Path) -> Obs {
        let turn = ONE_AT_A_TIME.lock().await;
        let dir = tempfile::Builder::new()
            .prefix("tikrelay-obs-")
            .tempdir()
            .expect("temp dir for OBS");
        let w = dir.path();
        let port = free_port();
        write_config(w, port);

        let disp_path = w.join("disp");
        let mut xvfb_child = Command::new(xvfb)
            .args([
                "-displayfd",
                "1",
                "-screen",
                "0",
                "1280x720x24",
                "-nolisten",
                "tcp",
            ])
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&disp_path).expect("disp file"))
            .stderr(std::fs::File::create(w.join("xvfb.log")).expect("xvfb log"))
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", xvfb.display()));
        let display = wait_for(START_TIMEOUT, "Xvfb to report its display", || {
            if let Ok(Some(status)) = xvfb_child.try_wait() {
                panic!(
                    "Xvfb exited with {status}: {}",
                    std::fs::read_to_string(w.join("xvfb.log")).unwrap_or_default()
                );
            }
            let text = std::fs::read_to_string(&disp_path).ok()?;
            text.ends_with('\n').then(|| text.trim().to_string())
        })
        .await;

        let log = std::fs::File::create(w.join("obs.out")).expect("obs log");
        let home = w.join("home");
        let mut obs_child = Command::new(obs)
            .args(["--multi", "--disable-missing-files-check"])
            .current_dir(w)
            .env("HOME", &home)
            .env("XDG_CONFIG_HOME", home.join(".config"))
            .env("XDG_RUNTIME_DIR", w.join("runtime"))
            .env("DISPLAY", format!(":{display}"))
            .env("QT_QPA_PLATFORM", "xcb")
            .env("LIBGL_ALWAYS_SOFTWARE", "1")
            .env("DBUS_SESSION_BUS_ADDRESS", "disabled:")
            // OBS fetches obsproject.com at every start; this makes that fail locally.
            .env("http_proxy", "http://127.0.0.1:9")
            .env("https_proxy", "http://127.0.0.1:9")
            .env("HTTPS_PROXY", "http://127.0.0.1:9")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log handle"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {}: {e}", obs.display()));
        let out = w.join("obs.out");
        wait_for(
            START_TIMEOUT,
            "OBS's websocket to accept connections",
            || {
                if let Ok(Some(status)) = obs_child.try_wait() {
                    panic!(
                        "OBS exited with {status}:\n{}",
                        std::fs::read_to_string(&out).unwrap_or_default()
                    );
                }
                std::net::TcpStream::connect(("127.0.0.1", port)).ok()
            },
        )
        .await;
        Obs {
            port,
            obs: obs_child,
            xvfb: xvfb_child,
            dir,
            _turn: turn,
        }
    }

    pub fn settings(&self, password: Option<&str>) -> ObsSettings {
        ObsSettings {
            port: self.port,
            password: password.map(str::to_string),
            timeout: super::WAIT,
            ..ObsSettings::default()
        }
    }

    /// The `[obs]` table of a relay config pointing here.
    pub fn config_table(&self) -> String {
        format!(
            "[obs]\nhost = \"127.0.0.1\"\nport = {}\npassword = \"{PASSWORD}\"\n",
            self.port
        )
    }

    /// A client of our own, subscribed to `subscriptions`.
    pub async fn client(&self, subscriptions: u32) -> ObsClient {
        ObsClient::connect(&self.settings(Some(PASSWORD)), subscriptions)
            .await
            .expect("connect to the test OBS")
    }

    /// Scenes `names` (the first goes on program, and its change event is awaited; `client`
    /// must subscribe to scene events) with Cut as the transition, chosen before
    /// any switch: changing it mid-transition loses scene events in OBS 29.
    pub async fn set_up_scenes(&self, client: &mut ObsClient, names: &[&str]) {
        for name in names {
            client
                .request("CreateScene", json!({"sceneName": name}))
                .await
                .unwrap_or_else(|e| panic!("CreateScene {name}: {e}"));
        }
        client
            .request(
                "SetCurrentSceneTransition",
                json!({"transitionName": "Cut"}),
            )
            .await
            .expect("Cut transition");
        // The client must hear scene events: the switch's event is awaited, so it cannot
        // arrive later and be taken for one of the test's.
        let mut events = client.events();
        client
            .request("SetCurrentProgramScene", json!({"sceneName": names[0]}))
            .await
            .expect("first scene on program");
        while next_event(&mut events, "CurrentProgramSceneChanged").await["sceneName"] != names[0] {
        }
    }

    /// A FreeType text source `name` in `scene`; returns its scene item id.
    pub async fn add_text(
        &self,
        client: &mut ObsClient,
        scene: &str,
        name: &str,
        text: &str,
        enabled: bool,
    ) -> i64 {
        let created = client
            .request(
                "CreateInput",
                json!({
                    "sceneName": scene,
                    "inputName": name,
                    "inputKind": "text_ft2_source_v2",
                    "inputSettings": {"text": text},
                    "sceneItemEnabled": enabled,
                }),
            )
            .await
            .unwrap_or_else(|e| panic!("CreateInput {name}: {e}"));
        created["sceneItemId"].as_i64().expect("sceneItemId")
    }

    /// OBS's log so far, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("obs.out")).unwrap_or_default()
    }
}

/// A port nothing listens on right now (OBS binds it on all interfaces).
fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("0.0.0.0:0").expect("bind a free port");
    l.local_addr().expect("addr").port()
}

fn write_config(w: &Path, port: u16) {
    let config = w.join("home/.config/obs-studio");
    let profile = config.join("basic/profiles/tikrelay");
    std::fs::create_dir_all(&profile).expect("profile dir");
    std::fs::create_dir_all(config.join("basic/scenes")).expect("scenes dir");
    std::fs::create_dir_all(w.join("runtime")).expect("runtime dir");
    // FirstRun=true means "the first run is done" (no wizard); obs-websocket 5.1 reads its
    // settings from [OBSWebSocket] here, and FirstLoad=false keeps it from making a password.
    let global = format!(
        "[General]\nFirstRun=true\nLastVersion=486539266\nConfirmOnExit=false\n\
         [Basic]\nProfile=tikrelay\nProfileDir=tikrelay\nSceneCollection=tikrelay\nSceneCollectionFile=tikrelay\n\
         [BasicWindow]\nPreviewEnabled=false\nSysTrayEnabled=false\n\
         [OBSWebSocket]\nFirstLoad=false\nServerEnabled=true\nServerPort={port}\nAlertsEnabled=false\n\
         AuthRequired=true\nServerPassword={PASSWORD}\n"
    );
    std::fs::write(config.join("global.ini"), global).expect("global.ini");
    std::fs::write(
        profile.join("basic.ini"),
        "[General]\nName=tikrelay\n[Video]\nBaseCX=640\nBaseCY=360\nOutputCX=640\nOutputCY=360\nFPSType=0\nFPSCommon=30\n",
    )
    .expect("basic.ini");
}

/// Polls `ready` every 50 ms until it gives a value; panics naming `what` after `limit`.
async fn wait_for<T>(limit: Duration, what: &str, mut ready: impl FnMut() -> Option<T>) -> T {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        if tokio::time::Instant::now() >= deadline {
            panic!("timed out after {limit:?} waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The next event of `event_type` from `events`, skipping others; panics after [`super::WAIT`].
pub async fn next_event(
    events: &mut tokio::sync::broadcast::Receiver<tikrelay::obs::ObsEvent>,
    event_type: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + super::WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline, events.recv())
            .await
            .unwrap_or_else(|_| panic!("no {event_type} event from OBS within {:?}", super::WAIT))
            .expect("OBS event stream");
        if ev.event_type == event_type {
            return ev.data;
        }
    }
}
