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

    let listed = sessions(relay.addr).await;
    assert_eq!(listed["current"]["room_id"], "8888", "{listed}");
    let past = listed["sessions"].as_array().unwrap();
    assert_eq!(past.len(), 1, "{listed}");
    let last = &past[0];
    assert_eq!(last["unique_id"], "streamer");
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
    assert_eq!(body["archived"]["totals"]["follows"], 1, "{body}");
    assert_eq!(body["archived"]["totals"]["diamonds"], 3, "{body}");
    assert_eq!(
        body["archived"]["top_gifters"][0]["user"]["unique_id"],
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
    assert_eq!(again["archived"], Value::Null, "{again}");
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
