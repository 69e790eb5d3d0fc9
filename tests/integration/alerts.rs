//! Alert queues: one alert at a time, `alert_done` and the duration + grace timeout, waiting for
//! a player, pause/resume/skip/clear, replay, overflow, the HTTP and websocket surface, and
//! pending alerts and totals surviving a restart of the real binary.
//!
//! Queue timing runs on paused tokio time against the real hub (clients registered as the
//! websocket code registers them); the surface tests use real sockets and real time.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use tikrelay::alerts::{AlertQueues, ClientOp, Control, GRACE};
use tikrelay::config::QueueConfig;
use tikrelay::events::{Event, EventKind, Source, User};
use tikrelay::hub::{ClientFilter, ClientHandle, Hub};

use crate::support::{InProcess, RelayProcess, WsClient, get_json, http, post_test_event};

const DURATION: u64 = 5000;

struct Rig {
    hub: Arc<Hub>,
    alerts: Arc<AlertQueues>,
}

impl Rig {
    fn new(max_pending: usize) -> Rig {
        let hub = Hub::new();
        let mut queues = BTreeMap::new();
        queues.insert(
            "main".to_string(),
            QueueConfig {
                default_duration_ms: DURATION,
                max_pending,
            },
        );
        let alerts = AlertQueues::new(&queues, hub.publisher());
        tokio::spawn(alerts.clone().run());
        Rig { hub, alerts }
    }

    fn add(&self, n: usize) -> String {
        let event =
            Event::new(EventKind::Follow, format!("ev{n}"), Source::Test).with_user(Some(User {
                id: n.to_string(),
                unique_id: format!("viewer{n}"),
                nickname: format!("Viewer {n}"),
                avatar_url: None,
                ..Default::default()
            }));
        self.alerts
            .enqueue(
                "main",
                "follow",
                None,
                event,
                json!({"title": format!("alert {n}")}),
            )
            .expect("queue main exists")
    }

    /// A client playing `main`, registered and announced as the websocket code does.
    fn player(&self) -> ClientHandle {
        let handle = self.hub.register(ClientFilter {
            queues: ["main".to_string()].into(),
            ..ClientFilter::default()
        });
        self.alerts.client_op(ClientOp::Play {
            client: handle.id,
            queue: "main".into(),
        });
        handle
    }

    fn done(&self, alert_id: &str) {
        self.alerts.client_op(ClientOp::AlertDone {
            client: 0,
            alert_id: alert_id.into(),
        });
    }

    fn pending(&self) -> u64 {
        self.alerts.snapshot()["main"]["pending"].as_u64().unwrap()
    }
}

/// Alert messages the client has received so far (other messages are skipped).
fn received_alerts(client: &mut ClientHandle) -> Vec<Value> {
    let mut out = Vec::new();
    while let Ok(m) = client.rx.try_recv() {
        if m.type_name.as_ref() == "alert" {
            out.push(serde_json::from_str(&m.json).unwrap());
        }
    }
    out
}

fn ids(alerts: &[Value]) -> Vec<String> {
    alerts
        .iter()
        .map(|a| a["alert_id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(start_paused = true)]
async fn one_at_a_time_and_alert_done_advances_at_once() {
    let rig = Rig::new(100);
    let mut player = rig.player();
    let a = rig.add(1);
    let b = rig.add(2);
    let c = rig.add(3);
    let got = received_alerts(&mut player);
    assert_eq!(ids(&got), [a.as_str()], "only the first plays");
    assert_eq!(got[0]["queue"], "main");
    assert_eq!(got[0]["duration_ms"], DURATION);
    assert_eq!(got[0]["vars"]["title"], "alert 1");
    assert_eq!(got[0]["event"]["type"], "follow");
    assert_eq!(rig.pending(), 2);

    rig.done("not-playing");
    assert!(received_alerts(&mut player).is_empty());
    rig.done(&a);
    assert_eq!(ids(&received_alerts(&mut player)), [b.as_str()]);
    rig.done(&a); // a late second answer changes nothing
    assert!(received_alerts(&mut player).is_empty());
    rig.done(&b);
    assert_eq!(ids(&received_alerts(&mut player)), [c]);
}

#[tokio::test(start_paused = true)]
async fn a_missing_alert_done_advances_after_duration_plus_grace() {
    let rig = Rig::new(100);
    let mut player = rig.player();
    let a = rig.add(1);
    let b = rig.add(2);
    assert_eq!(ids(&received_alerts(&mut player)), [a]);
    let limit = Duration::from_millis(DURATION) + GRACE;
    tokio::time::sleep(limit - Duration::from_millis(1)).await;
    assert!(
        received_alerts(&mut player).is_empty(),
        "nothing new before duration + grace"
    );
    tokio::time::sleep(Duration::from_millis(2)).await;
    assert_eq!(ids(&received_alerts(&mut player)), [b]);
    assert_eq!(rig.alerts.history()[0]["outcome"], "timeout");
}

#[tokio::test(start_paused = true)]
async fn without_a_player_alerts_wait_then_play_in_order() {
    let rig = Rig::new(100);
    let expected: Vec<String> = (1..=3).map(|n| rig.add(n)).collect();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    assert_eq!(rig.pending(), 3, "nothing expires unseen");
    let mut player = rig.player();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let got = received_alerts(&mut player);
        assert_eq!(got.len(), 1, "one at a time");
        seen.extend(ids(&got));
        rig.done(seen.last().unwrap());
    }
    assert_eq!(seen, expected);
}

#[tokio::test(start_paused = true)]
async fn the_last_player_leaving_puts_the_playing_alert_back_first() {
    let rig = Rig::new(100);
    let mut first = rig.player();
    let a = rig.add(1);
    let b = rig.add(2);
    assert_eq!(ids(&received_alerts(&mut first)), [a.as_str()]);
    rig.hub.unregister(first.id);
    rig.alerts.client_op(ClientOp::Left { client: first.id });
    assert_eq!(rig.pending(), 2);
    let mut second = rig.player();
    assert_eq!(ids(&received_alerts(&mut second)), [a.as_str()]);
    rig.done(&a);
    assert_eq!(ids(&received_alerts(&mut second)), [b]);
}

#[tokio::test(start_paused = true)]
async fn pause_resume_skip_and_clear() {
    let rig = Rig::new(100);
    let mut player = rig.player();
    rig.alerts.control("main", Control::Pause).unwrap();
    let a = rig.add(1);
    let b = rig.add(2);
    let _c = rig.add(3);
    let d = rig.add(4);
    assert!(received_alerts(&mut player).is_empty(), "paused");
    assert_eq!(rig.alerts.snapshot()["main"]["paused"], true);

    // Skip with nothing playing drops the next pending alert.
    let state = rig.alerts.control("main", Control::Skip).unwrap();
    assert_eq!(state["pending"], 3);
    assert_eq!(rig.alerts.history()[0]["alert_id"], a);

    rig.alerts.control("main", Control::Resume).unwrap();
    assert_eq!(ids(&received_alerts(&mut player)), [b.as_str()]);

    // Skip while playing ends it at once, tells the player, and starts the next.
    rig.alerts.control("main", Control::Skip).unwrap();
    let mut skip_seen = false;
    let mut next = Vec::new();
    while let Ok(m) = player.rx.try_recv() {
        let v: Value = serde_json::from_str(&m.json).unwrap();
        match v["type"].as_str().unwrap() {
            "alert_skip" => {
                assert_eq!(v["alert_id"], b);
                skip_seen = true;
            }
            "alert" => next.push(v),
            _ => {}
        }
    }
    assert!(skip_seen);
    assert_eq!(next.len(), 1);

    let state = rig.alerts.control("main", Control::Clear).unwrap();
    assert_eq!(state["pending"], 0);
    assert!(!ids(&next).contains(&d));
    let playing = next[0]["alert_id"].as_str().unwrap().to_string();
    rig.done(&playing);
    assert!(
        received_alerts(&mut player).is_empty(),
        "cleared alerts never play"
    );
    assert!(matches!(
        rig.alerts.control("nope", Control::Pause),
        Err(tikrelay::alerts::ControlError::NoQueue { .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn replay_puts_a_past_alert_next() {
    let rig = Rig::new(100);
    let mut player = rig.player();
    let a = rig.add(1);
    let b = rig.add(2);
    let _ = received_alerts(&mut player);
    rig.done(&a);
    assert_eq!(ids(&received_alerts(&mut player)), [b.as_str()]);
    let c = rig.add(3);
    let again = rig.alerts.replay(&a).unwrap();
    assert_ne!(again, a);
    rig.done(&b);
    let got = received_alerts(&mut player);
    assert_eq!(
        ids(&got),
        [again.as_str()],
        "the replay comes before newer alerts"
    );
    assert_eq!(got[0]["replay_of"], a);
    assert_eq!(got[0]["vars"]["title"], "alert 1");
    rig.done(&again);
    assert_eq!(ids(&received_alerts(&mut player)), [c]);
    assert!(rig.alerts.replay("no-such-alert").is_err());
}

#[tokio::test(start_paused = true)]
async fn overflow_drops_the_oldest() {
    let rig = Rig::new(3);
    let added: Vec<String> = (1..=5).map(|n| rig.add(n)).collect();
    let state = &rig.alerts.snapshot()["main"];
    assert_eq!(state["pending"], 3);
    assert_eq!(state["dropped"], 2);
    let mut player = rig.player();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let got = ids(&received_alerts(&mut player));
        rig.done(&got[0]);
        seen.extend(got);
    }
    assert_eq!(seen, added[2..]);
}

#[tokio::test]
async fn alerts_reach_a_websocket_player_and_queues_are_controlled_over_http() {
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let mut player = WsClient::connect(&relay.ws_url("/ws?queue=main")).await;
    let hello = player.next_of_type("hello").await;
    assert!(hello["state"]["queues"]["main"].is_object(), "{hello}");
    assert_eq!(hello["state"]["goals"]["follows"]["target"], 100, "{hello}");
    let hostile =
        json!({"id": "9", "unique_id": "x", "nickname": "<b>Eve</b>", "avatar_url": null});
    for _ in 0..2 {
        assert_eq!(
            post_test_event(&base, json!({"type": "follow", "user": hostile})).await,
            200
        );
    }
    let first = player.next_of_type("alert").await;
    assert_eq!(first["queue"], "main");
    assert_eq!(first["trigger"], "follow");
    assert_eq!(
        first["vars"]["title"], "<b>Eve</b>",
        "text passes unchanged; pages use textContent"
    );
    assert_eq!(first["vars"]["subtitle"], "followed you!");

    let queues: Value = get_json(relay.url("/api/queues")).await;
    assert_eq!(queues["queues"]["main"]["pending"], 1, "{queues}");
    assert_eq!(
        queues["queues"]["main"]["playing"]["alert_id"],
        first["alert_id"]
    );
    assert_eq!(queues["queues"]["main"]["players"], 1);

    player
        .send_json(json!({"op": "alert_done", "alert_id": first["alert_id"]}))
        .await;
    let second = player.next_of_type("alert").await;
    assert_ne!(second["alert_id"], first["alert_id"]);

    // Control needs the relay's own origin (or none, like curl); a foreign page is refused.
    let refused = http()
        .post(relay.url("/api/queues/main/pause"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    let paused = http()
        .post(relay.url("/api/queues/main/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(paused.status(), 200);
    // Every change pushes a `queue` message; the pause shows up in one.
    loop {
        let queue_msg = player.next_of_type("queue").await;
        assert_eq!(queue_msg["queue"]["name"], "main");
        if queue_msg["queue"]["paused"] == true {
            break;
        }
    }
    let unknown = http()
        .post(relay.url("/api/queues/nope/pause"))
        .send()
        .await
        .unwrap();
    assert_eq!(unknown.status(), 404);
    let bad = http()
        .post(relay.url("/api/queues/main/explode"))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 404);

    // Replay over HTTP, then over the websocket op.
    player
        .send_json(json!({"op": "alert_done", "alert_id": second["alert_id"]}))
        .await;
    let replay_url = relay.url(&format!(
        "/api/alerts/{}/replay",
        first["alert_id"].as_str().unwrap()
    ));
    let replayed: Value = http()
        .post(replay_url)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replayed["ok"], true, "{replayed}");
    player
        .send_json(json!({"op": "resume", "queue": "main"}))
        .await;
    let again = player.next_of_type("alert").await;
    assert_eq!(again["alert_id"], replayed["alert_id"]);
    assert_eq!(again["replay_of"], first["alert_id"]);

    let state: Value = get_json(relay.url("/api/state")).await;
    assert_eq!(state["totals"]["follows"], 2);
    assert_eq!(state["goals"]["follows"]["current"], 2);
    assert!(
        state["queues"]["main"]["played"].as_u64().unwrap() >= 2,
        "{state}"
    );
}

#[tokio::test]
async fn playing_an_unknown_queue_is_an_error_to_that_page() {
    let relay = InProcess::start(&[]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws?queue=mian")).await;
    let err = ws.next_of_type("error").await;
    assert!(err["message"].as_str().unwrap().contains("main"), "{err}");
}

async fn pending_ids(base: &str) -> (Vec<String>, Value) {
    crate::support::pending_alert_ids(base, "main").await
}

#[tokio::test]
async fn pending_alerts_and_totals_survive_a_restart_of_the_binary() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["demo", "--rate", "0", "--port", "0", "--data-dir", data];
    let mut first = RelayProcess::start(&args);
    let base = first.url("");
    for i in 0..3 {
        let user = json!({"id": format!("{i}"), "unique_id": format!("v{i}"), "nickname": format!("Viewer {i}")});
        assert_eq!(
            post_test_event(&base, json!({"type": "follow", "user": user})).await,
            200
        );
    }
    assert_eq!(
        post_test_event(&base, json!({"type": "like", "count": 15, "total": 15})).await,
        200
    );
    let mut before = Vec::new();
    for _ in 0..100 {
        let (ids, _) = pending_ids(&base).await;
        if ids.len() == 3 {
            before = ids;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(before.len(), 3, "three follows wait for a player");
    assert_eq!(first.interrupt(), Some(0));
    // The demo keeps its files in a subfolder, away from live sessions.
    assert!(dir.path().join("demo").join("alerts.json").exists());
    assert!(dir.path().join("demo").join("session.json").exists());

    let second = RelayProcess::start(&args);
    let (after, q) = pending_ids(&second.url("")).await;
    assert_eq!(after, before, "same alerts, same order: {q}");
    let state: Value = get_json(second.url("/api/state")).await;
    assert_eq!(state["totals"]["follows"], 3, "{state}");
    assert_eq!(state["totals"]["likes"], 15, "{state}");

    let mut player = WsClient::connect(&second.ws_url("/ws?queue=main")).await;
    let alert = player.next_of_type("alert").await;
    assert_eq!(alert["alert_id"], before[0].as_str());
    assert_eq!(alert["vars"]["title"], "Viewer 0");
}

/// Headless Chromium, killed when dropped (before its profile folder is removed).
struct Browser {
    child: std::process::Child,
    _profile: tempfile::TempDir,
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| {
            std::process::Command::new(b)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

#[tokio::test]
async fn the_default_alerts_page_plays_the_queue_in_a_real_browser() {
    let Some(browser) = chromium() else {
        eprintln!("SKIPPED: no chromium on PATH");
        return;
    };
    let config = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::fs::write(
        config.path(),
        // Long enough that a page slowed by a loaded machine still answers in time: the point is
        // that the page itself reports each alert done, not how fast.
        "[[trigger]]\non = \"follow\"\nalert = { duration_ms = 3000, title = \"{{name}}\" }\n",
    )
    .unwrap();
    let relay = InProcess::start(&["--config", config.path().to_str().unwrap()]).await;
    for i in 0..3 {
        let user = json!({"id": format!("{i}"), "unique_id": format!("v{i}"), "nickname": format!("<img src=x onerror=alert({i})>")});
        assert_eq!(
            post_test_event(&relay.url(""), json!({"type": "follow", "user": user})).await,
            200
        );
    }
    let profile = tempfile::tempdir().unwrap();
    let child = std::process::Command::new(browser)
        .args([
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--autoplay-policy=no-user-gesture-required",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(relay.url("/overlays/default/alerts"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start chromium");
    let _browser = Browser {
        child,
        _profile: profile,
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let history = relay.engine.alerts.history();
        if history.len() == 3 {
            let outcomes: Vec<&str> = history
                .iter()
                .map(|h| h["outcome"].as_str().unwrap())
                .collect();
            assert_eq!(
                outcomes,
                ["done", "done", "done"],
                "the page answers alert_done itself"
            );
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "page played only {history:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_page_of_another_origin_cannot_play_a_queue() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let relay = InProcess::start(&[]).await;
    let mut request = relay
        .ws_url("/ws?queue=main")
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("Origin", "http://evil.example".parse().unwrap());
    let (stream, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut foreign = WsClient { stream };
    foreign.next_of_type("hello").await;
    foreign
        .send_json(json!({"op": "play", "queue": "main"}))
        .await;
    let err = foreign.next_of_type("error").await;
    assert!(
        err["message"].as_str().unwrap().contains("forbidden"),
        "{err}"
    );
    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "follow"})).await,
        200
    );
    // The follow's own event reaches the page, the alert does not: nobody plays the queue.
    foreign.next_of_type("follow").await;
    let q = relay.engine.alerts.snapshot();
    assert_eq!(q["main"]["players"], 0, "{q}");
    assert_eq!(q["main"]["pending"], 1, "{q}");
}

#[tokio::test]
async fn pending_alerts_survive_a_crash_once_saved() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let args = ["demo", "--rate", "0", "--port", "0", "--data-dir", data];
    let mut first = RelayProcess::start(&args);
    for i in 0..2 {
        let user = json!({"id": format!("{i}"), "nickname": format!("Fan {i}")});
        assert_eq!(
            post_test_event(&first.url(""), json!({"type": "share", "user": user})).await,
            200
        );
    }
    // The debounced save follows the changes within a second or so; no clean shutdown after.
    let file = dir.path().join("demo").join("alerts.json");
    let deadline = tokio::time::Instant::now() + crate::support::WAIT;
    let saved: Vec<String> = loop {
        if let Ok(bytes) = std::fs::read(&file) {
            let v: Value = serde_json::from_slice(&bytes).expect("never half a file");
            let pending = v["queues"]["main"]["pending"].as_array().unwrap().clone();
            if pending.len() == 2 {
                break pending
                    .iter()
                    .map(|a| a["alert_id"].as_str().unwrap().to_string())
                    .collect();
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "never saved");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    first.child.kill().unwrap();
    first.child.wait().unwrap();
    let second = RelayProcess::start(&args);
    let (after, _) = pending_ids(&second.url("")).await;
    assert_eq!(after, saved);
}
