//! Issue 9's sources and streams: several sources side by side (two live sources against two
//! fake TikToks, one dropping while the other goes on), sources started and stopped over
//! `/api/sources` while clients watch, bad requests refused without a change, `/ws?stream=`,
//! triggers limited to a stream, per-stream totals; and the same through the real binary
//! (`tikrelay demo` plus a demo over the API, `tikrelay live @a @b` against two fakes).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use serde_json::{Value, json};
use warp::Filter;

use crate::support::fake_tiktok::{FakeTikTok, Step, test_timings};
use crate::support::webcast as wc;
use crate::support::{InProcess, RelayProcess, WAIT, WsClient, get_json, http};
use tikrelay::sources::live::{Endpoints, LiveConfig, Target};

fn msgs(messages: Vec<tikrelay::proto::BaseProtoMessage>) -> Step {
    Step::Msgs {
        messages,
        gzip: true,
    }
}

fn chats(ids: std::ops::RangeInclusive<i64>) -> Vec<tikrelay::proto::BaseProtoMessage> {
    ids.map(|id| wc::chat(id, id, &format!("c{id}"))).collect()
}

/// A fake TikTok where `user` is live in `room`.
async fn fake_with(user: &str, room: i64) -> FakeTikTok {
    let fake = FakeTikTok::start().await;
    fake.with(|s| s.users.clear());
    fake.set_live(user, true, room);
    fake
}

fn live_config(fake: &FakeTikTok, target: &str) -> LiveConfig {
    let url = fake.url();
    LiveConfig {
        target: Target::parse(target).unwrap(),
        endpoints: Endpoints::new(&url, &url, &url),
        sign_api_key: None,
        wait_live: false,
        timings: test_timings(),
    }
}

/// Relay events (messages with a `stream`) until `done` says the collection is complete.
async fn events_until(
    ws: &mut WsClient,
    done: impl Fn(&[Value]) -> bool,
    what: &str,
) -> Vec<Value> {
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while !done(&got) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Some(msg) = ws.try_next_json(left).await else {
            panic!("{what}: timed out; got {got:#?}");
        };
        if msg.get("stream").is_some() && msg["type"] != "alert" {
            got.push(msg);
        }
    }
    got
}

fn of_stream<'a>(events: &'a [Value], stream: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["stream"] == stream).collect()
}

fn comment_ids(events: &[&Value]) -> Vec<String> {
    events
        .iter()
        .filter(|e| e["type"] == "comment")
        .map(|e| e["id"].as_str().unwrap().to_string())
        .collect()
}

fn ended(events: &[Value], stream: &str) -> bool {
    events.iter().any(|e| {
        e["stream"] == stream && e["type"] == "disconnected" && e["will_reconnect"] == false
    })
}

fn ids(range: std::ops::RangeInclusive<i64>) -> Vec<String> {
    range.map(|i| i.to_string()).collect()
}

#[tokio::test]
async fn two_live_sources_run_side_by_side_and_one_dropping_leaves_the_other_undisturbed() {
    let alice = fake_with("alice", 1111).await;
    let bob = fake_with("bob", 2222).await;
    // Both streams carry a message with id 5000: each stream relays its own.
    let mut alice_first = chats(101..=103);
    alice_first.push(wc::chat(5000, 1, "same id, alice"));
    // Acked before the drop, so the frame was read (a reset may discard unread bytes).
    alice.push_script(vec![msgs(alice_first), Step::WaitAcks(1), Step::Drop]);
    alice.push_script(vec![
        msgs(chats(104..=106)),
        msgs(vec![wc::control(199, 3)]),
    ]);
    let mut bob_first = chats(201..=203);
    bob_first.push(wc::chat(5000, 2, "same id, bob"));
    bob.push_script(vec![
        msgs(bob_first),
        Step::Sleep(Duration::from_millis(300)),
        msgs(chats(204..=206)),
        Step::Sleep(Duration::from_millis(300)),
        msgs(chats(207..=209)),
        msgs(vec![wc::control(299, 3)]),
    ]);

    crate::support::install_crypto();
    let relay = InProcess::start(&[]).await;
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let a = relay
        .sources
        .start_live(live_config(&alice, "@alice"), None)
        .unwrap();
    let b = relay
        .sources
        .start_live(live_config(&bob, "@bob"), None)
        .unwrap();
    assert_eq!((a.stream.as_str(), b.stream.as_str()), ("alice", "bob"));
    alice.open_gate();
    bob.open_gate();

    let events = events_until(
        &mut ws,
        |got| ended(got, "alice") && ended(got, "bob"),
        "both LIVEs to end",
    )
    .await;
    assert!(
        events
            .iter()
            .all(|e| e["stream"] == "alice" || e["stream"] == "bob"),
        "every event is tagged with its stream: {events:#?}"
    );
    let a_events = of_stream(&events, "alice");
    let b_events = of_stream(&events, "bob");
    // Each stream complete and in order, the shared id in both.
    let mut want_a = ids(101..=103);
    want_a.push("5000".into());
    want_a.extend(ids(104..=106));
    assert_eq!(comment_ids(&a_events), want_a);
    let mut want_b = ids(201..=203);
    want_b.push("5000".into());
    want_b.extend(ids(204..=209));
    assert_eq!(comment_ids(&b_events), want_b);
    // Alice dropped and reconnected; Bob never noticed.
    let reconnects = |evs: &[&Value]| {
        evs.iter()
            .filter(|e| e["type"] == "disconnected" && e["will_reconnect"] == true)
            .count()
    };
    assert_eq!(reconnects(&a_events), 1, "{a_events:#?}");
    assert_eq!(reconnects(&b_events), 0, "{b_events:#?}");
    assert_eq!(alice.with(|s| s.connections.len()), 2);
    assert_eq!(bob.with(|s| s.connections.len()), 1);

    // Per-stream totals, and the combined ones.
    let state = get_json(relay.url("/api/state")).await;
    assert_eq!(state["streams"]["alice"]["totals"]["comments"], 7);
    assert_eq!(state["streams"]["bob"]["totals"]["comments"], 10);
    assert_eq!(state["totals"]["comments"], 17);

    // Both sources say they ended, with the events each relayed.
    let listed = get_json(relay.url("/api/sources")).await;
    let by_stream: BTreeMap<String, Value> = listed["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap().to_string(), s.clone()))
        .collect();
    for (stream, count) in [("alice", a_events.len()), ("bob", b_events.len())] {
        let s = &by_stream[stream];
        assert_eq!(s["kind"], "live");
        assert_eq!(s["state"], "ended", "{s}");
        assert_eq!(s["events"], count as u64, "{s}");
    }
}

async fn post_source(base: &str, body: Value) -> (u16, Value) {
    let res = http()
        .post(format!("{base}/api/sources"))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn delete_source(base: &str, id: &str) -> (u16, Value) {
    let res = http()
        .delete(format!("{base}/api/sources/{id}"))
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

#[tokio::test]
async fn sources_start_and_stop_over_the_api_while_clients_watch() {
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");

    let (status, started) = post_source(
        &base,
        json!({"kind": "demo", "name": "second", "rate": 200, "seed": 3}),
    )
    .await;
    assert_eq!(status, 201, "{started}");
    assert_eq!(started["kind"], "demo");
    assert_eq!(started["stream"], "second");
    let id = started["id"].as_str().unwrap().to_string();
    let seen = events_until(
        &mut ws,
        |got| got.iter().filter(|e| e["type"] != "connected").count() >= 10,
        "the demo's events",
    )
    .await;
    assert!(seen.iter().all(|e| e["stream"] == "second"), "{seen:#?}");
    let listed = get_json(format!("{base}/api/sources")).await;
    let me = &listed["sources"][0];
    assert_eq!(me["id"], id.as_str());
    assert_eq!(me["state"], "live", "{me}");
    assert!(me["events"].as_u64().unwrap() >= 10, "{me}");

    // Bad requests: a 4xx with a message, and nothing changes.
    let before = get_json(format!("{base}/api/sources")).await["sources"]
        .as_array()
        .unwrap()
        .len();
    for (body, want) in [
        (json!({"kind": "radio"}), 400),
        (
            json!({"kind": "replay", "file": "/no/such/recording.tikrec"}),
            400,
        ),
        (json!({"kind": "live", "target": "not a handle"}), 400),
        (json!({"kind": "demo", "rate": "fast"}), 400),
        (json!({"kind": "demo", "name": "second"}), 409),
    ] {
        let (status, answer) = post_source(&base, body.clone()).await;
        assert_eq!(status, want, "{body}: {answer}");
        assert!(
            answer["error"].as_str().is_some_and(|m| !m.is_empty()),
            "{answer}"
        );
    }
    let (status, answer) = delete_source(&base, "s999").await;
    assert_eq!(status, 404, "{answer}");
    assert!(answer["error"].as_str().unwrap().contains("s999"));
    let foreign = http()
        .post(format!("{base}/api/sources"))
        .header("Origin", "https://evil.example")
        .json(&json!({"kind": "demo", "name": "evil"}))
        .send()
        .await
        .unwrap();
    assert_eq!(foreign.status().as_u16(), 403);
    let after = get_json(format!("{base}/api/sources")).await;
    assert_eq!(
        after["sources"].as_array().unwrap().len(),
        before,
        "{after}"
    );
    assert_eq!(after["sources"][0]["state"], "live");

    // Stopped: a last `disconnected`, then nothing more from it; its state says so.
    let (status, stopped) = delete_source(&base, &id).await;
    assert_eq!(status, 200, "{stopped}");
    assert_eq!(stopped["state"], "ended");
    assert_eq!(stopped["reason"], "stopped");
    events_until(&mut ws, |got| ended(got, "second"), "the stop").await;
    assert_eq!(
        crate::support::post_test_event(&base, json!({"type": "follow", "stream": "marker"})).await,
        200
    );
    let rest = events_until(
        &mut ws,
        |got| got.iter().any(|e| e["stream"] == "marker"),
        "the marker",
    )
    .await;
    assert_eq!(
        rest.len(),
        1,
        "nothing after the stop but the marker: {rest:#?}"
    );
    let listed = get_json(format!("{base}/api/sources")).await;
    assert_eq!(listed["sources"][0]["state"], "ended");
    assert_eq!(listed["sources"][0]["reason"], "stopped");
    // Deleting a source that is over forgets it.
    assert_eq!(delete_source(&base, &id).await.0, 200);
    let listed = get_json(format!("{base}/api/sources")).await;
    assert_eq!(listed["sources"], json!([]));
}

#[tokio::test]
async fn ws_stream_filters_and_per_stream_totals() {
    let relay = InProcess::start(&[]).await;
    let base = relay.url("");
    let mut only_a = WsClient::connect(&relay.ws_url("/ws?stream=alpha")).await;
    let mut all = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(only_a.next_json().await["type"], "hello");
    assert_eq!(all.next_json().await["type"], "hello");
    for (stream, text) in [
        ("beta", "b1"),
        ("alpha", "a1"),
        ("beta", "b2"),
        ("alpha", "a2"),
    ] {
        let event = json!({"type": "comment", "text": text, "stream": stream});
        assert_eq!(crate::support::post_test_event(&base, event).await, 200);
    }
    let got_all = events_until(&mut all, |g| g.len() == 4, "all four").await;
    let texts = |evs: &[Value]| {
        evs.iter()
            .map(|e| {
                format!(
                    "{}:{}",
                    e["stream"].as_str().unwrap(),
                    e["text"].as_str().unwrap()
                )
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        texts(&got_all),
        ["beta:b1", "alpha:a1", "beta:b2", "alpha:a2"]
    );
    let got_a = events_until(&mut only_a, |g| g.len() == 2, "alpha's two").await;
    assert_eq!(texts(&got_a), ["alpha:a1", "alpha:a2"]);
    // Nothing of beta trails behind: a last alpha event is the very next one.
    let event = json!({"type": "comment", "text": "a3", "stream": "alpha"});
    crate::support::post_test_event(&base, event).await;
    let next = events_until(&mut only_a, |g| g.len() == 1, "a3").await;
    assert_eq!(texts(&next), ["alpha:a3"]);

    let gift = |stream: &str, diamonds: u64| {
        json!({"type": "gift", "stream": stream, "count": 1,
               "gift": {"id": 1, "name": "G", "diamonds": diamonds},
               "user": {"id": format!("u-{stream}"), "unique_id": stream, "nickname": stream}})
    };
    crate::support::post_test_event(&base, gift("alpha", 5)).await;
    crate::support::post_test_event(&base, gift("beta", 100)).await;
    events_until(&mut all, |g| g.len() == 3, "a3 and two gifts").await;
    let state = get_json(format!("{base}/api/state")).await;
    assert_eq!(state["totals"]["comments"], 5);
    assert_eq!(state["totals"]["diamonds"], 105);
    assert_eq!(state["streams"]["alpha"]["totals"]["comments"], 3);
    assert_eq!(state["streams"]["alpha"]["totals"]["diamonds"], 5);
    assert_eq!(state["streams"]["beta"]["totals"]["diamonds"], 100);
    assert_eq!(
        state["streams"]["alpha"]["top_gifters"][0]["user"]["id"],
        "u-alpha"
    );
    assert_eq!(
        state["streams"]["beta"]["top_gifters"][0]["user"]["id"],
        "u-beta"
    );
    assert_eq!(
        state["streams"]["beta"]["top_gifters"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_trigger_with_a_stream_fires_only_for_that_stream_and_its_alert_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tikrelay.toml");
    std::fs::write(
        &config,
        r#"
[[trigger]]
name = "alpha follows"
on = "follow"
stream = "alpha"
alert = { queue = "main", title = "{{user.nickname}} on {{stream}}" }
"#,
    )
    .unwrap();
    let relay = InProcess::start(&["--config", config.to_str().unwrap()]).await;
    let base = relay.url("");
    // Events reach the triggers in order: once the second alpha alert is queued, both beta
    // follows before it have been seen too.
    for stream in ["beta", "alpha", "beta", "alpha"] {
        let event = json!({"type": "follow", "stream": stream});
        assert_eq!(crate::support::post_test_event(&base, event).await, 200);
    }
    let queued = || async {
        let q = get_json(format!("{base}/api/queues")).await;
        let main = &q["queues"]["main"];
        let mut alerts: Vec<Value> = main["next"].as_array().cloned().unwrap_or_default();
        if !main["playing"].is_null() {
            alerts.push(main["playing"].clone());
        }
        (alerts, q)
    };
    let deadline = tokio::time::Instant::now() + WAIT;
    let (alerts, q) = loop {
        let (alerts, q) = queued().await;
        if alerts.len() >= 2 || tokio::time::Instant::now() > deadline {
            break (alerts, q);
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    };
    assert_eq!(alerts.len(), 2, "{q}");
    for alert in &alerts {
        assert_eq!(alert["stream"], "alpha", "{q}");
        assert_eq!(alert["title"], "Test Viewer on alpha", "{q}");
    }
}

/// A tiny reverse proxy in front of two fake TikToks: requests that name `alice` (or her room)
/// go to the first, everything else to the second, so one set of `--tiktok-*-url` flags reaches
/// both (the websocket URL comes from each fake's sign answer and points at it directly).
async fn split_proxy(alice: SocketAddr, bob: SocketAddr) -> SocketAddr {
    let client = reqwest::Client::new();
    let route = warp::any()
        .and(warp::method())
        .and(warp::path::full())
        .and(warp::query::raw().or(warp::any().map(String::new)).unify())
        .and(warp::header::headers_cloned())
        .then(
            move |method: warp::http::Method,
                  path: warp::path::FullPath,
                  query: String,
                  headers: warp::http::HeaderMap| {
                let client = client.clone();
                async move {
                    let whole = format!("{}?{query}", path.as_str());
                    let to = if whole.contains("alice") || whole.contains("1111") {
                        alice
                    } else {
                        bob
                    };
                    let mut req = client.request(method, format!("http://{to}{whole}"));
                    for (k, v) in headers.iter() {
                        if k != "host" {
                            req = req.header(k, v);
                        }
                    }
                    let res = req.send().await.unwrap();
                    let mut out = warp::http::Response::builder().status(res.status());
                    for (k, v) in res.headers() {
                        out = out.header(k, v);
                    }
                    out.body(res.bytes().await.unwrap().to_vec()).unwrap()
                }
            },
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(warp::serve(route).incoming(listener).run());
    addr
}

#[tokio::test]
async fn the_binary_relays_two_lives_given_on_the_command_line() {
    let alice = fake_with("alice", 1111).await;
    let bob = fake_with("bob", 2222).await;
    alice.push_script(vec![
        Step::Sleep(Duration::from_millis(500)),
        msgs(chats(101..=105)),
        Step::Sleep(Duration::from_millis(60_000)),
    ]);
    bob.push_script(vec![
        Step::Sleep(Duration::from_millis(500)),
        msgs(chats(201..=205)),
        Step::Sleep(Duration::from_millis(60_000)),
    ]);
    alice.open_gate();
    bob.open_gate();
    let proxy = format!("http://{}", split_proxy(alice.addr, bob.addr).await);
    let relay = tokio::task::spawn_blocking(move || {
        RelayProcess::start(&[
            "--port",
            "0",
            "live",
            "@alice",
            "@bob",
            "--tiktok-web-url",
            &proxy,
            "--tiktok-webcast-url",
            &proxy,
            "--sign-url",
            &proxy,
        ])
    })
    .await
    .unwrap();
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let events = events_until(
        &mut ws,
        |got| {
            comment_ids(&of_stream(got, "alice")).len() == 5
                && comment_ids(&of_stream(got, "bob")).len() == 5
        },
        "both streams' comments",
    )
    .await;
    assert_eq!(comment_ids(&of_stream(&events, "alice")), ids(101..=105));
    assert_eq!(comment_ids(&of_stream(&events, "bob")), ids(201..=205));
    let listed = get_json(relay.url("/api/sources")).await;
    let streams: Vec<&str> = listed["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["stream"].as_str().unwrap())
        .collect();
    assert_eq!(streams, ["alice", "bob"]);
    assert!(
        listed["sources"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["state"] == "live"),
        "{listed}"
    );
}

#[tokio::test]
async fn the_binary_demo_takes_a_second_demo_over_the_api_and_stops_it_alone() {
    let relay = tokio::task::spawn_blocking(|| {
        RelayProcess::start(&["--port", "0", "demo", "--rate", "100"])
    })
    .await
    .unwrap();
    let base = relay.url("");
    let mut ws = WsClient::connect(&relay.ws_url("/ws")).await;
    assert_eq!(ws.next_json().await["type"], "hello");
    let (status, second) = post_source(
        &base,
        json!({"kind": "demo", "name": "two", "rate": 100, "seed": 9}),
    )
    .await;
    assert_eq!(status, 201, "{second}");
    let both = events_until(
        &mut ws,
        |got| {
            of_stream(got, "two").len() >= 10
                && got.iter().filter(|e| e["stream"] == "demo").count() >= 10
        },
        "both demos",
    )
    .await;
    assert!(
        both.iter()
            .all(|e| e["stream"] == "demo" || e["stream"] == "two")
    );
    let (status, _) = delete_source(&base, second["id"].as_str().unwrap()).await;
    assert_eq!(status, 200);
    events_until(&mut ws, |got| ended(got, "two"), "the stop").await;
    // The first demo goes on; the second says nothing more.
    let after = events_until(
        &mut ws,
        |got| got.iter().filter(|e| e["stream"] == "demo").count() >= 20,
        "the first demo going on",
    )
    .await;
    assert!(of_stream(&after, "two").is_empty(), "{after:#?}");
    let listed = get_json(format!("{base}/api/sources")).await;
    let states: Vec<(&str, &str)> = listed["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["stream"].as_str().unwrap(), s["state"].as_str().unwrap()))
        .collect();
    assert_eq!(states, [("demo", "live"), ("two", "ended")]);
}
