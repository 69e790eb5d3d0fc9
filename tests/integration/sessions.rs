//! Sessions follow the LIVE (issue 12): against the fake TikTok, a new room for the same handle
//! starts the totals from zero and lists the last LIVE under `/api/sessions` (and in
//! `sessions.json`); a reconnect or a restart within one room keeps the totals. The dashboard's
//! "new session" route and `--new-session` archive the running session.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::fake_tiktok::{FakeTikTok, LiveOpts, LiveRelay, Step};
use crate::support::webcast as wc;
use crate::support::{InProcess, WAIT, WsClient, get_json, http, post_test_event};

fn msgs(messages: Vec<tikrelay::proto::BaseProtoMessage>) -> Step {
    Step::Msgs {
        messages,
        gzip: true,
    }
}

fn is_type(ty: &'static str) -> impl Fn(&Value) -> bool {
    move |e| e["type"] == ty
}

/// A follow by viewer 2 and a 5-diamond gift by viewer 3, ids from `base`.
fn follow_and_gift(base: i64) -> Vec<tikrelay::proto::BaseProtoMessage> {
    vec![
        wc::social(base, 2, "pm_main_follow_message_viewer_2"),
        wc::gift(base + 1, 3, (5760, 5, false), (base + 2, 1, false)),
    ]
}

fn wait_live(data_dir: &Path) -> LiveOpts {
    LiveOpts {
        wait_live: true,
        exit_on_end: false,
        data_dir: Some(data_dir.to_path_buf()),
        ..LiveOpts::default()
    }
}

async fn state(addr: std::net::SocketAddr) -> Value {
    get_json(format!("http://{addr}/api/state")).await
}

async fn sessions(addr: std::net::SocketAddr) -> Value {
    get_json(format!("http://{addr}/api/sessions")).await
}

/// Reads a JSON file of the data dir, waiting (up to the test bound) until `ready` holds: the
/// relay saves in the background.
async fn saved(path: &Path, ready: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let value = std::fs::read(path)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok());
        if let Some(v) = value.filter(|v| ready(v)) {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} never got what the test waits for",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn a_new_live_of_the_same_handle_starts_from_zero_and_lists_the_last_one() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTikTok::start().await;
    fake.set_live("streamer", false, 7777);
    fake.push_script(vec![
        msgs(follow_and_gift(100)),
        msgs(vec![wc::control(109, 3)]),
    ]);
    fake.push_script(vec![msgs(vec![wc::chat(200, 4, "second live")])]);
    let mut relay = LiveRelay::start(&fake, "@streamer", wait_live(dir.path())).await;
    fake.set_live("streamer", true, 7777);
    let first = relay.events_until(is_type("live_ended")).await;
    // The LIVE ended; the relay waits for the next one (it looks again after the poll
    // interval), which TikTok gives a new room.
    fake.set_live("streamer", true, 8888);
    assert!(first.iter().any(|e| e["type"] == "gift"), "{first:?}");
    let second = relay.events_until(is_type("comment")).await;
    let connected = second.iter().find(|e| e["type"] == "connected");
    assert_eq!(connected.unwrap()["room_id"], "8888", "{second:?}");

    let now = state(relay.addr).await;
    assert_eq!(now["connection"]["room_id"], "8888", "{now}");
    let t = &now["totals"];
    assert_eq!(
        (&t["follows"], &t["diamonds"], &t["gifts"], &t["comments"]),
        (&json!(0), &json!(0), &json!(0), &json!(1)),
        "{now}"
    );
    assert_eq!(now["top_gifters"], json!([]), "{now}");
    // The built-in config's goals follow the session's totals.
    assert_eq!(now["goals"]["follows"]["current"], 0, "{now}");
    assert_eq!(now["goals"]["diamonds"]["current"], 0, "{now}");

    let listed = sessions(relay.addr).await;
    assert_eq!(listed["current"][0]["room_id"], "8888", "{listed}");
    let past = listed["sessions"].as_array().unwrap();
    assert_eq!(past.len(), 1, "{listed}");
    let last = &past[0];
    assert_eq!(last["unique_id"], "streamer");
    assert_eq!(last["stream"], "streamer");
    assert_eq!(last["room_id"], "7777");
    assert_eq!(last["source"], "tiktok");
    assert_eq!(last["totals"]["follows"], 1);
    assert_eq!(last["totals"]["diamonds"], 5);
    assert_eq!(last["top_gifters"][0]["user"]["unique_id"], "viewer3");
    assert_eq!(last["top_gifters"][0]["score"], 5);
    assert!(last["ended"].as_i64() >= last["started"].as_i64(), "{last}");

    relay.stop().await.unwrap();
    let archive = saved(&dir.path().join("sessions.json"), |v| {
        v["sessions"].as_array().is_some_and(|s| !s.is_empty())
    })
    .await;
    assert_eq!(archive["sessions"][0]["room_id"], "7777");
    let session = saved(&dir.path().join("session.json"), |_| true).await;
    assert_eq!(session["connection"]["room_id"], "8888");
    assert_eq!(session["totals"]["comments"], 1);
    assert_eq!(session["totals"]["follows"], 0);
}

#[tokio::test]
async fn a_reconnect_within_one_room_keeps_the_totals() {
    let dir = tempfile::tempdir().unwrap();
    let fake = FakeTikTok::start().await;
    fake.push_script(vec![
        msgs(follow_and_gift(100)),
        Step::WaitAcks(1),
        Step::Drop,
    ]);
    fake.push_script(vec![msgs(vec![wc::chat(200, 4, "after the drop")])]);
    let opts = LiveOpts {
        exit_on_end: false,
        data_dir: Some(dir.path().to_path_buf()),
        ..LiveOpts::default()
    };
    let mut relay = LiveRelay::start(&fake, "@streamer", opts).await;
    let events = relay.events_until(is_type("comment")).await;
    assert!(
        events
            .iter()
            .any(|e| e["type"] == "disconnected" && e["will_reconnect"] == true),
        "the connection dropped and came back: {events:?}"
    );
    let now = state(relay.addr).await;
    let t = &now["totals"];
    assert_eq!(
        (&t["follows"], &t["diamonds"], &t["comments"]),
        (&json!(1), &json!(5), &json!(1)),
        "{now}"
    );
    assert_eq!(sessions(relay.addr).await["sessions"], json!([]));
    fake.with(|s| assert_eq!(s.connections.len(), 2));
    relay.stop().await.unwrap();
}

#[tokio::test]
async fn a_restart_keeps_the_live_and_a_restart_into_a_new_live_archives_it() {
    let dir = tempfile::tempdir().unwrap();
    let session_file = dir.path().join("session.json");

    // First run: room 7777, a follow and a gift; then tikrelay is stopped mid-LIVE.
    let fake = FakeTikTok::start().await;
    fake.push_script(vec![msgs(follow_and_gift(100))]);
    let mut relay = LiveRelay::start(&fake, "@streamer", wait_live(dir.path())).await;
    relay.events_until(is_type("gift")).await;
    relay.stop().await.unwrap();
    saved(&session_file, |v| v["totals"]["follows"] == 1).await;

    // Restarted within the same LIVE: the totals go on.
    let fake = FakeTikTok::start().await;
    fake.push_script(vec![msgs(vec![wc::chat(200, 4, "still the same live")])]);
    let mut relay = LiveRelay::start(&fake, "@streamer", wait_live(dir.path())).await;
    relay.events_until(is_type("comment")).await;
    let now = state(relay.addr).await;
    assert_eq!(now["totals"]["follows"], 1, "{now}");
    assert_eq!(now["totals"]["comments"], 1, "{now}");
    assert_eq!(sessions(relay.addr).await["sessions"], json!([]));
    relay.stop().await.unwrap();
    saved(&session_file, |v| v["totals"]["comments"] == 1).await;

    // Started again the next day: a new room, so the saved session is archived.
    let fake = FakeTikTok::start().await;
    fake.set_live("streamer", true, 9999);
    fake.push_script(vec![msgs(vec![wc::chat(300, 4, "the next day")])]);
    let mut relay = LiveRelay::start(&fake, "@streamer", wait_live(dir.path())).await;
    relay.events_until(is_type("comment")).await;
    let now = state(relay.addr).await;
    assert_eq!(now["totals"]["follows"], 0, "{now}");
    assert_eq!(now["totals"]["comments"], 1, "{now}");
    let listed = sessions(relay.addr).await;
    let past = listed["sessions"].as_array().unwrap();
    assert_eq!(past.len(), 1, "{listed}");
    assert_eq!(past[0]["room_id"], "7777");
    assert_eq!(past[0]["totals"]["follows"], 1);
    assert_eq!(past[0]["totals"]["comments"], 1);
    relay.stop().await.unwrap();
}

/// Waits until `/api/state` shows `follows`.
async fn follows_become(relay: &InProcess, follows: u64) {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let s = get_json(relay.url("/api/state")).await;
        if s["totals"]["follows"] == follows {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "follows stay {s}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_new_session_route_archives_the_totals_and_only_the_dashboard_may_call_it() {
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    ws.next_of_type("hello").await;
    assert_eq!(post_test_event(&base, json!({"type": "follow"})).await, 200);
    assert_eq!(
        post_test_event(&base, json!({"type": "gift", "count": 3})).await,
        200
    );
    follows_become(&relay, 1).await;

    let refused = http()
        .post(relay.url("/api/sessions/new"))
        .header("Origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 403);
    follows_become(&relay, 1).await;

    let res = http()
        .post(relay.url("/api/sessions/new"))
        .header("Origin", format!("http://{}", relay.addr))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["archived"].as_array().unwrap().len(), 1, "{body}");
    let archived = &body["archived"][0];
    assert_eq!(archived["totals"]["follows"], 1, "{body}");
    assert_eq!(archived["totals"]["diamonds"], 3, "{body}");
    assert_eq!(archived["stream"], "demo", "{body}");
    assert_eq!(
        archived["top_gifters"][0]["user"]["unique_id"],
        "test_viewer"
    );
    follows_become(&relay, 0).await;
    // Overlays are told: a `state` push with the totals and leaderboards from zero.
    loop {
        let push = ws.next_of_type("state").await;
        if push["totals"]["follows"] == 0 {
            assert_eq!(push["totals"]["diamonds"], 0, "{push}");
            assert_eq!(push["top_gifters"], json!([]), "{push}");
            break;
        }
    }
    let listed = get_json(relay.url("/api/sessions")).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["sessions"][0]["totals"]["gifts"], 1);

    // Nothing counted since: the button starts over without listing an empty session.
    let again: Value = http()
        .post(relay.url("/api/sessions/new"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(again["archived"], json!([]), "{again}");
    let listed = get_json(relay.url("/api/sessions")).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
}

#[tokio::test]
async fn new_session_flag_archives_the_saved_session() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let relay = InProcess::start(&["--data-dir", data]).await;
    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "follow"})).await,
        200
    );
    follows_become(&relay, 1).await;
    drop(relay);
    // In-process relays keep the demo's data in `demo/`, as `tikrelay demo` does.
    saved(&dir.path().join("demo/session.json"), |v| {
        v["totals"]["follows"] == 1
    })
    .await;

    let relay = InProcess::start(&["--data-dir", data]).await;
    follows_become(&relay, 1).await;
    drop(relay);

    let relay = InProcess::start(&["--data-dir", data, "--new-session"]).await;
    follows_become(&relay, 0).await;
    let listed = get_json(relay.url("/api/sessions")).await;
    assert_eq!(listed["sessions"].as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed["sessions"][0]["totals"]["follows"], 1);
    drop(relay);

    // The archive outlives the run that made it.
    saved(&dir.path().join("demo/sessions.json"), |v| {
        v["sessions"].as_array().is_some_and(|s| s.len() == 1)
    })
    .await;
    let relay = InProcess::start(&["--data-dir", data]).await;
    let listed = get_json(relay.url("/api/sessions")).await;
    assert_eq!(listed["sessions"][0]["totals"]["follows"], 1, "{listed}");
}

/// The dashboard's sessions list and "new session" button in headless Chromium: two clicks
/// archive the session, the list shows it (viewer names as text), the totals go back to zero.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_lists_past_sessions_and_its_button_starts_a_new_one() {
    use crate::support::browser::{Browser, require_browser};
    let Some(chromium) = require_browser() else {
        return;
    };
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let evil = "<img src=x onerror=\"document.title='pwned'\">";
    for event in [
        json!({"type": "follow"}),
        json!({"type": "gift", "count": 3, "user": {"id": "66", "unique_id": "evil", "nickname": evil}}),
    ] {
        assert_eq!(post_test_event(&base, event).await, 200);
    }
    follows_become(&relay, 1).await;

    let browser = Browser::launch(&chromium).await;
    let page = browser.new_page(&relay.url("/")).await;
    page.call(
        "Emulation.setDeviceMetricsOverride",
        json!({"width": 1400, "height": 900, "deviceScaleFactor": 1, "mobile": false}),
    )
    .await;
    page.wait_for("window.TikRelay && window.TikRelay.connected", WAIT)
        .await;
    page.wait_for(
        "document.getElementById('session-current').textContent.includes('demo since')",
        WAIT,
    )
    .await;
    let before = page
        .eval("[document.getElementById('sessions-list').children.length, !document.getElementById('sessions-empty').hidden]")
        .await;
    assert_eq!(before, json!([0, true]));

    // One click only arms the button.
    page.eval("document.getElementById('session-new').click()")
        .await;
    let armed = page
        .eval("document.getElementById('session-new').textContent")
        .await;
    assert_eq!(armed, "Click again to start from zero");
    follows_become(&relay, 1).await;
    page.eval("document.getElementById('session-new').click()")
        .await;
    page.wait_for(
        "document.getElementById('sessions-list').children.length === 1",
        WAIT,
    )
    .await;
    follows_become(&relay, 0).await;
    let row = page
        .eval(
            "Array.from(document.querySelectorAll('#sessions-list td')).map(function (td) { return td.textContent; })",
        )
        .await;
    let cells: Vec<&str> = row
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(cells.len(), 6, "{row}");
    assert_eq!(
        &cells[1..],
        // Test events count in the relay's own stream, `demo` here.
        ["demo", "0 min", "1", "3", &format!("{evil} (3 💎)")]
    );
    let markup = page
        .eval("[document.querySelectorAll('#sessions-list img').length, document.title, document.getElementById('sessions-empty').hidden]")
        .await;
    assert_eq!(markup, json!([0, "tikrelay dashboard", true]));
    page.wait_for(
        "document.querySelector('#totals .total b').textContent === '0'",
        WAIT,
    )
    .await;
    let status = page
        .eval("document.getElementById('session-status').textContent")
        .await;
    assert!(
        status.as_str().unwrap().starts_with("New session started"),
        "{status}"
    );
    let errors = page.console_errors();
    assert!(errors.is_empty(), "console errors: {errors:#?}");
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"))
        .join("screenshots");
    page.screenshot(&dir.join("dashboard-sessions.png")).await;
    browser.close().await;
}

/// Alert titles waiting in queue `main`, once the last one is `last` (events are handled in
/// order, so everything posted before it has been handled too).
async fn titles_until(base: &str, last: &str) -> Vec<String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let (_, q) = crate::support::pending_alert_ids(base, "main").await;
        let titles: Vec<String> = q["queues"]["main"]["next"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a["title"].as_str().unwrap_or_default().to_string())
            .collect();
        if titles.last().is_some_and(|t| t == last) {
            return titles;
        }
        assert!(tokio::time::Instant::now() < deadline, "no {last:?} in {q}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_new_session_resets_follow_once_per_session_and_like_thresholds() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tikrelay.toml");
    std::fs::write(
        &config,
        r#"
[[trigger]]
on = "follow"
follow_once_per = "session"
alert = { title = "{{name}}" }

[[trigger]]
on = "like"
every_likes = 100
alert = { title = "likes {{total}}" }
"#,
    )
    .unwrap();
    let relay = InProcess::start(&["--config", config.to_str().unwrap()]).await;
    let base = relay.url("");
    // A like burst of 10 or 60 taking the room's total to `total`.
    let like = |count: u64, total: u64| json!({"type": "like", "count": count, "total": total});
    for event in [
        json!({"type": "follow"}),
        json!({"type": "follow"}),
        like(60, 150),
    ] {
        assert_eq!(post_test_event(&base, event).await, 200);
    }
    assert_eq!(
        titles_until(&base, "likes 150").await,
        ["Test Viewer", "likes 150"]
    );
    let res = http()
        .post(relay.url("/api/sessions/new"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The next LIVE's room counts its likes from zero: 105 passes 100 again.
    for event in [json!({"type": "follow"}), like(10, 105)] {
        assert_eq!(post_test_event(&base, event).await, 200);
    }
    assert_eq!(
        titles_until(&base, "likes 105").await,
        ["Test Viewer", "likes 150", "Test Viewer", "likes 105"]
    );
}

/// Waits for an event of `stream` with `type` on `ws`.
async fn event_of(ws: &mut WsClient, stream: &str, ty: &str) -> Value {
    loop {
        let msg = ws.next_json().await;
        if msg["stream"] == stream && msg["type"] == ty {
            return msg;
        }
    }
}

#[tokio::test]
async fn with_two_streams_a_new_live_of_one_archives_only_its_session() {
    use tikrelay::sources::live::{Endpoints, LiveConfig, Target};
    let live = |fake: &FakeTikTok, target: &str| {
        let url = fake.url();
        LiveConfig {
            target: Target::parse(target).unwrap(),
            endpoints: Endpoints::new(&url, &url, &url),
            sign_api_key: None,
            wait_live: true,
            timings: crate::support::fake_tiktok::test_timings(),
        }
    };
    let alice = FakeTikTok::start().await;
    alice.with(|s| s.users.clear());
    alice.set_live("alice", true, 1111);
    alice.push_script(vec![msgs(vec![wc::social(
        100,
        2,
        "pm_main_follow_message_viewer_2",
    )])]);
    let bob = FakeTikTok::start().await;
    bob.with(|s| s.users.clear());
    bob.set_live("bob", true, 2222);
    bob.push_script(vec![
        msgs(vec![wc::gift(200, 3, (5760, 5, false), (201, 1, false))]),
        msgs(vec![wc::control(209, 3)]),
    ]);
    bob.push_script(vec![msgs(vec![wc::chat(300, 4, "bob again")])]);

    crate::support::install_crypto();
    let relay = InProcess::start(&[]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    ws.next_of_type("hello").await;
    relay
        .sources
        .start_live(live(&alice, "@alice"), None)
        .unwrap();
    relay.sources.start_live(live(&bob, "@bob"), None).unwrap();
    alice.open_gate();
    bob.open_gate();
    event_of(&mut ws, "bob", "live_ended").await;
    // Bob's next LIVE, in a new room.
    bob.set_live("bob", true, 3333);
    event_of(&mut ws, "bob", "comment").await;
    // Alice's follow came before or after; wait for it through the totals.
    let deadline = tokio::time::Instant::now() + WAIT;
    let state = loop {
        let state = get_json(relay.url("/api/state")).await;
        if state["streams"]["alice"]["totals"]["follows"] == 1 {
            break state;
        }
        assert!(tokio::time::Instant::now() < deadline, "{state}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let bob_now = &state["streams"]["bob"]["totals"];
    assert_eq!(
        (&bob_now["diamonds"], &bob_now["comments"]),
        (&json!(0), &json!(1)),
        "{state}"
    );
    let t = &state["totals"];
    assert_eq!(
        (&t["follows"], &t["diamonds"], &t["comments"]),
        (&json!(1), &json!(0), &json!(1)),
        "the combined totals are Alice's session and Bob's new one: {state}"
    );

    let listed = get_json(relay.url("/api/sessions")).await;
    let past = listed["sessions"].as_array().unwrap();
    assert_eq!(past.len(), 1, "{listed}");
    assert_eq!(past[0]["stream"], "bob");
    assert_eq!(past[0]["room_id"], "2222");
    assert_eq!(past[0]["totals"]["diamonds"], 5);
    let mut rooms: Vec<(String, String)> = listed["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["stream"].as_str().unwrap().into(),
                c["room_id"].as_str().unwrap().into(),
            )
        })
        .collect();
    rooms.sort();
    assert_eq!(
        rooms,
        [
            ("alice".into(), "1111".into()),
            ("bob".into(), "3333".into())
        ]
    );
}
