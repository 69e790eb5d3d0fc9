//! End to end over real sockets: the demo binary, the event websocket, `/api/test`, slow
//! clients, overlay pages and the CLI's error paths.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};
use tikrelay::events::{Event, EventKind, Source};
use tikrelay::pipeline::Input;

use crate::support::{InProcess, RelayProcess, WsClient, get_json, http, post_test_event};

/// Checks the envelope of DESIGN.md on one event.
fn assert_envelope(ev: &Value) {
    assert_eq!(ev["v"], 1, "{ev}");
    assert!(ev["type"].is_string(), "{ev}");
    assert!(
        ev["id"].as_str().is_some_and(|s| !s.is_empty()),
        "id is a string: {ev}"
    );
    assert!(
        ev["ts"].as_i64().is_some_and(|t| t > 1_600_000_000_000),
        "ts in ms: {ev}"
    );
    assert!(ev["source"].is_string(), "{ev}");
    if let Some(room) = ev.get("room_id") {
        assert!(room.is_string(), "room_id is a string: {ev}");
    }
    if let Some(user) = ev.get("user") {
        for key in ["id", "unique_id", "nickname"] {
            assert!(user[key].is_string(), "user.{key} is a string: {ev}");
        }
        assert!(
            user["avatar_url"].is_string() || user["avatar_url"].is_null(),
            "{ev}"
        );
    }
}

/// Checks the fields each type owns.
fn assert_own_fields(ev: &Value) {
    let num = |k: &str| assert!(ev[k].is_u64(), "{k} is a number: {ev}");
    match ev["type"].as_str().unwrap() {
        "comment" => assert!(ev["text"].is_string()),
        "like" => {
            num("count");
            num("total");
        }
        "join" => num("member_count"),
        "viewers" => {
            num("viewers");
            num("total_viewers");
        }
        "gift" => {
            num("count");
            num("diamonds_total");
            assert!(
                ev["gift"]["id"].is_u64() && ev["gift"]["name"].is_string(),
                "{ev}"
            );
            assert!(ev["gift"]["streakable"].is_boolean(), "{ev}");
            if ev["gift"]["streakable"] == true {
                assert!(ev["combo_id"].is_string(), "{ev}");
            }
        }
        "combo" => {
            num("count");
            assert!(
                ev["combo_id"].is_string() && ev["ended"].is_boolean(),
                "{ev}"
            );
        }
        "emote" => assert!(ev["emote_ids"].is_array()),
        "connected" => assert!(ev["unique_id"].is_string()),
        _ => {}
    }
}

#[tokio::test]
async fn demo_binary_streams_hello_then_five_event_types() {
    let relay = RelayProcess::start(&["demo", "--port", "0", "--rate", "40", "--seed", "7"]);
    assert!(relay.stdout_lines[0].starts_with("listening on http://127.0.0.1:"));
    assert!(
        relay
            .stdout_lines
            .iter()
            .any(|l| l.contains("/overlays/default/alerts")),
        "overlay URLs are printed: {:?}",
        relay.stdout_lines
    );
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    let hello = ws.next_json().await;
    assert_eq!(hello["type"], "hello");
    assert_eq!(hello["v"], 1);
    assert!(hello["state"]["totals"].is_object(), "{hello}");

    let mut types = BTreeSet::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while types.len() < 6 && tokio::time::Instant::now() < deadline {
        let msg = ws.next_json().await;
        // Relay messages (totals, alert queue changes) interleave with events.
        if msg["type"] == "state" || msg["type"] == "queue" {
            continue;
        }
        assert_envelope(&msg);
        assert_own_fields(&msg);
        assert_eq!(msg["source"], "demo");
        types.insert(msg["type"].as_str().unwrap().to_string());
    }
    assert!(types.len() >= 5, "only {types:?} within ten seconds");
}

#[tokio::test]
async fn ctrl_c_ends_the_demo_cleanly_even_with_overlays_connected() {
    let mut relay = RelayProcess::start(&["demo", "--port", "0", "--rate", "5"]);
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let code = tokio::task::spawn_blocking(move || relay.interrupt())
        .await
        .unwrap();
    assert_eq!(code, Some(0));
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error_with_exit_code_2() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let out = crate::support::binary_command()
        .args(["demo", "--port", &port])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("--port"),
        "{err}"
    );
    assert!(!err.contains("panicked"), "{err}");
}

#[tokio::test]
async fn posted_test_events_reach_clients_filled_in() {
    let relay = InProcess::start(&[]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    let status = post_test_event(&relay.url(""), json!({"type": "follow"})).await;
    assert_eq!(status, 200);
    let ev = ws.next_of_type("follow").await;
    assert_envelope(&ev);
    assert_eq!(ev["source"], "test");
    assert!(ev["user"]["nickname"].is_string());

    let gift =
        json!({"type": "gift", "count": 3, "gift": {"id": 1, "name": "Lion", "diamonds": 100}});
    assert_eq!(post_test_event(&relay.url(""), gift).await, 200);
    let ev = ws.next_of_type("gift").await;
    assert_eq!(ev["diamonds_total"], 300);
    assert_eq!(ev["gift"]["name"], "Lion");

    assert_eq!(
        post_test_event(&relay.url(""), json!({"type": "nonsense"})).await,
        400
    );
    assert_eq!(post_test_event(&relay.url(""), json!([1, 2])).await, 400);

    // A page on another origin may not inject events.
    let res = http()
        .post(relay.url("/api/test"))
        .header("Origin", "https://evil.example")
        .json(&json!({"type": "follow"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);
    let body: Value = res.json().await.unwrap();
    assert!(body["error"].as_str().unwrap().contains("forbidden"));

    let events: Value = get_json(relay.url("/api/events?limit=5")).await;
    let types: Vec<&str> = events
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(types.ends_with(&["follow", "gift"]), "{types:?}");
    let state: Value = get_json(relay.url("/api/state")).await;
    assert_eq!(state["totals"]["follows"], 1);
    assert_eq!(state["totals"]["diamonds"], 300);
}

#[tokio::test]
async fn type_filters_narrow_what_a_page_receives() {
    let relay = InProcess::start(&[]).await;
    let mut gifts_only = WsClient::connect(&relay.ws_url("/ws?types=gift")).await;
    let mut by_op = WsClient::connect(&relay.ws_url("/ws")).await;
    gifts_only.next_json().await;
    by_op.next_json().await;
    by_op
        .send_json(json!({"op": "subscribe", "types": ["share"]}))
        .await;
    by_op.send_json(json!({"op": "dance"})).await;
    let err = by_op.next_of_type("error").await;
    assert!(err["message"].as_str().unwrap().contains("unknown op"));
    for ty in ["follow", "share", "gift"] {
        assert_eq!(
            post_test_event(&relay.url(""), json!({"type": ty})).await,
            200
        );
    }
    assert_eq!(gifts_only.next_of_type_skip_state().await["type"], "gift");
    assert_eq!(by_op.next_of_type_skip_state().await["type"], "share");
}

impl WsClient {
    /// The next message that is not a `state` or `queue` push.
    async fn next_of_type_skip_state(&mut self) -> Value {
        loop {
            let msg = self.next_json().await;
            if msg["type"] != "state" && msg["type"] != "queue" {
                return msg;
            }
        }
    }
}

#[tokio::test]
async fn a_client_that_never_reads_is_cut_off_while_another_gets_everything() {
    let relay = InProcess::start(&[]).await;
    let mut stalled = WsClient::connect(&relay.ws_url("/ws?types=comment")).await;
    let mut reader = WsClient::connect(&relay.ws_url("/ws?types=comment")).await;
    assert_eq!(stalled.next_json().await["type"], "hello");
    assert_eq!(reader.next_json().await["type"], "hello");

    // The reader counts comments in its own task; `stalled` is never polled again until the end.
    let (seen_tx, mut seen_rx) = tokio::sync::watch::channel(0usize);
    let reader_task = tokio::spawn(async move {
        let mut next = 0usize;
        while let Some(msg) = reader.try_next_json(Duration::from_secs(20)).await {
            if msg["type"] != "comment" {
                continue;
            }
            assert_eq!(msg["id"], format!("c{next}"), "in order, none lost");
            next += 1;
            seen_tx.send_replace(next);
            if next == TOTAL {
                break;
            }
        }
        next
    });

    const TOTAL: usize = 4000;
    let text = "x".repeat(8 * 1024);
    for i in 0..TOTAL {
        let ev = Event::new(
            EventKind::Comment { text: text.clone() },
            format!("c{i}"),
            Source::Test,
        );
        relay.input.send(Input::Event(Box::new(ev))).await.unwrap();
        // Keep the reader within its buffer: this test is about the stalled client.
        if i % 200 == 199 {
            let target = i + 1 - 200;
            let _ =
                tokio::time::timeout(Duration::from_secs(20), seen_rx.wait_for(|&n| n >= target))
                    .await;
        }
    }
    assert_eq!(reader_task.await.unwrap(), TOTAL);
    assert_eq!(
        relay.hub.client_count(),
        1,
        "the stalled client was removed"
    );

    // Reading the stalled socket now drains what the kernel held, then the close with a reason.
    let mut close_reason = None;
    loop {
        match tokio::time::timeout(
            Duration::from_secs(20),
            futures_util::StreamExt::next(&mut stalled.stream),
        )
        .await
        {
            Ok(Some(Ok(tokio_tungstenite::tungstenite::Message::Close(frame)))) => {
                close_reason = frame.map(|f| f.reason.to_string());
                break;
            }
            Ok(Some(Ok(_))) => continue,
            _ => break,
        }
    }
    if let Some(reason) = close_reason {
        assert!(reason.contains("too slow"), "{reason}");
    }
}

#[tokio::test]
async fn overlay_pages_are_html_no_store_and_escape_text() {
    let relay = InProcess::start(&[]).await;
    let hostile = "<img src=x onerror=alert(1)>";
    let res = http()
        .get(relay.url("/overlays/default/alerts"))
        .query(&[("follow_text", hostile)])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 200);
    assert!(
        res.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert_eq!(res.headers()["cache-control"], "no-store");
    let html = res.text().await.unwrap();
    assert!(html.contains("/relay.js"));
    assert!(!html.contains(hostile), "raw markup must not appear");
    assert!(
        html.contains("&lt;img src&#x3D;x onerror&#x3D;alert(1)&gt;"),
        "escaped in the page"
    );
    assert!(
        html.contains("\\u003cimg"),
        "escaped in the page's JSON config"
    );

    for (path, status) in [
        ("/overlays/default/style.css", 200),
        ("/overlays/default/images/gifts/rose.svg", 200),
        ("/overlays/default/alerts.hbs", 404),
        ("/overlays/nope/alerts", 404),
        ("/overlays/default/nope", 404),
    ] {
        let res = http().get(relay.url(path)).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{path}");
    }
    // Raw requests: an HTTP client would normalise these paths before sending them.
    for path in [
        "/overlays/default/%2e%2e/%2e%2e/Cargo.toml",
        "/overlays/default/..%2f..%2fCargo.toml",
        "/overlays/default/images/..%2F..%2F..%2Fsrc%2Fmain.rs",
        "/overlays/default/%2e%2e%5c%2e%2e%5cCargo.toml",
    ] {
        assert_eq!(
            crate::support::raw_get_status(relay.addr, path).await,
            404,
            "{path}"
        );
    }
    let js = http().get(relay.url("/relay.js")).send().await.unwrap();
    assert_eq!(js.status().as_u16(), 200);
    assert!(js.text().await.unwrap().contains("textContent"));
    let dash = http()
        .get(relay.url("/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(dash.contains("/overlays/default/alerts"));
    let health = http().get(relay.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
}
